"""`while` and `for` loops on the CPU backend against the reference interpreter.

Each loop runs at every capability level this host can execute (generic, x86-64-v2, -v3, -v4,
the host), as written and after the default CPU pipeline (which fuses inside loop bodies), in
the runtime's single-call mode and its threaded mode, and a few through `tessel compile`'s
shared library. A loop's body runs as kernels the loop's own kernel calls, so the awkward
cases are about what the body hands back: a swap of two carried values, a value passed
through, a constant, a value the condition returns directly, an inner loop's element.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import runtime
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from compiler.targets import default_pipeline
from ir.diagnostics import IndexOutOfRange
from ir.dtypes import DType
from ir.graph import Module
from ir.parser import parse_module
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module
from tests.conftest import run_tessel

# This process's level: CI runs the whole suite again under each lower level (TESSEL_CPU), and
# a loop's own code does not depend on the level (only the kernels it calls do).
LEVELS = ["native"]
RTOL = {DType.F64: 1e-12, DType.F32: 1e-5, DType.F16: 2e-3, DType.BF16: 1.6e-2}


def counter_loop(counter: str, trips: int, carry: str, step: str, start: int = 0) -> str:
    """A loop that counts `counter` from `start` to `trips` and applies `step` (body lines
    computing %u from %v) to a carried `carry` each time round."""
    return f"""\
func @main(%x: {carry}) -> ({counter}[], {carry}) {{
  %start = constant {start} : {counter}[]
  %w = while(%start, %x) {{
    cond = func @cond(%i: {counter}[], %v: {carry}) -> bool[] {{
      %c = lt(%i, {trips}) : bool[]
      return %c
    }},
    body = func @body(%i: {counter}[], %v: {carry}) -> ({counter}[], {carry}) {{
      %j = add(%i, 1) : {counter}[]
      {step}
      return %j, %u
    }}
  }} : ({counter}[], {carry})
  %n = get(%w) {{index = 0}} : {counter}[]
  %r = get(%w) {{index = 1}} : {carry}
  return %n, %r
}}
"""


FLOAT_STEP = "%h = mul(%v, 0.5)\n      %u = add(%h, 1)"
BOOL_STEP = "%u = not(%v)"

SWAP = """\
func @main(%a: f32[3], %b: f32[3]) -> (f32[3], f32[3], i32[]) {
  %z = constant 0 : i32[]
  %w = while(%z, %a, %b) {
    cond = func @c(%i: i32[], %x: f32[3], %y: f32[3]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[3], %y: f32[3]) -> (i32[], f32[3], f32[3]) {
      %j = add(%i, 1) : i32[]
      return %j, %y, %x
    }
  } : (i32[], f32[3], f32[3])
  %r = get(%w) {index = 1} : f32[3]
  %s = get(%w) {index = 2} : f32[3]
  %n = get(%w) {index = 0} : i32[]
  return %r, %s, %n
}
"""

# a Fibonacci-like rotation: the new first value is computed, the second is the old first
ROTATE = """\
func @main(%a: i16[5], %b: i16[5]) -> (i16[5], i16[5]) {
  %z = constant 0 : u8[]
  %w = while(%z, %a, %b) {
    cond = func @c(%i: u8[], %x: i16[5], %y: i16[5]) -> bool[] {
      %k = lt(%i, 9) : bool[]
      return %k
    },
    body = func @b(%i: u8[], %x: i16[5], %y: i16[5]) -> (u8[], i16[5], i16[5]) {
      %j = add(%i, 1) : u8[]
      %s = add(%x, %y) : i16[5]
      return %j, %s, %x
    }
  } : (u8[], i16[5], i16[5])
  %r = get(%w) {index = 1} : i16[5]
  %s = get(%w) {index = 2} : i16[5]
  return %r, %s
}
"""

PASS_THROUGH_AND_CONSTANT = """\
func @main(%a: f32[3], %b: f32[5]) -> (f32[3], f32[5], i32[]) {
  %z = constant 0 : i32[]
  %w = while(%z, %a, %b) {
    cond = func @c(%i: i32[], %x: f32[3], %y: f32[5]) -> bool[] {
      %k = lt(%i, 4) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[3], %y: f32[5]) -> (i32[], f32[3], f32[5]) {
      %j = add(%i, 1) : i32[]
      %c = constant [1, 2, 3, 4, 5] : f32[5]
      return %j, %x, %c
    }
  } : (i32[], f32[3], f32[5])
  %r = get(%w) {index = 1} : f32[3]
  %s = get(%w) {index = 2} : f32[5]
  %n = get(%w) {index = 0} : i32[]
  return %r, %s, %n
}
"""

# the condition returns a carried flag the body computed the iteration before
COND_RETURNS_CARRIED = """\
func @main(%a: f32[3]) -> (f32[3], i32[], bool[]) {
  %t = constant true : bool[]
  %z = constant 0 : i32[]
  %w = while(%t, %z, %a) {
    cond = func @c(%f: bool[], %i: i32[], %x: f32[3]) -> bool[] {
      return %f
    },
    body = func @b(%f: bool[], %i: i32[], %x: f32[3]) -> (bool[], i32[], f32[3]) {
      %j = add(%i, 1) : i32[]
      %g = lt(%j, 6) : bool[]
      %y = add(%x, %x) : f32[3]
      return %g, %j, %y
    }
  } : (bool[], i32[], f32[3])
  %r = get(%w) {index = 2} : f32[3]
  %n = get(%w) {index = 1} : i32[]
  %f = get(%w) {index = 0} : bool[]
  return %r, %n, %f
}
"""

SIZE_ZERO_AND_ONE = """\
func @main(%a: f32[0], %b: f32[1], %c: i8[0, 3]) -> (f32[0], f32[1], i8[0, 3]) {
  %z = constant 0 : i32[]
  %w = while(%z, %a, %b, %c) {
    cond = func @c(%i: i32[], %x: f32[0], %y: f32[1], %e: i8[0, 3]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[0], %y: f32[1], %e: i8[0, 3])
        -> (i32[], f32[0], f32[1], i8[0, 3]) {
      %j = add(%i, 1) : i32[]
      %x2 = neg(%x) : f32[0]
      %y2 = mul(%y, 2) : f32[1]
      return %j, %x2, %y2, %e
    }
  } : (i32[], f32[0], f32[1], i8[0, 3])
  %r = get(%w) {index = 1} : f32[0]
  %s = get(%w) {index = 2} : f32[1]
  %t = get(%w) {index = 3} : i8[0, 3]
  return %r, %s, %t
}
"""

ONLY_EMPTY = """\
func @main(%a: f32[0]) -> f32[0] {
  %w = while(%a) {
    cond = func @c(%x: f32[0]) -> bool[] {
      %k = constant false : bool[]
      return %k
    },
    body = func @b(%x: f32[0]) -> (f32[0]) {
      return %x
    }
  } : (f32[0])
  %r = get(%w) {index = 0} : f32[0]
  return %r
}
"""

NESTED = """\
func @main(%a: f32[5]) -> (f32[5], i32[]) {
  %z = constant 0 : i32[]
  %w = while(%z, %a) {
    cond = func @c(%i: i32[], %x: f32[5]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[5]) -> (i32[], f32[5]) {
      %j = add(%i, 1) : i32[]
      %in = while(%i, %x) {
        cond = func @c2(%p: i32[], %q: f32[5]) -> bool[] {
          %k2 = lt(%p, 4) : bool[]
          return %k2
        },
        body = func @b2(%p: i32[], %q: f32[5]) -> (i32[], f32[5]) {
          %p2 = add(%p, 1) : i32[]
          %q2 = add(%q, 0.5) : f32[5]
          return %p2, %q2
        }
      } : (i32[], f32[5])
      %y = get(%in) {index = 1} : f32[5]
      %y2 = mul(%y, 1.5) : f32[5]
      return %j, %y2
    }
  } : (i32[], f32[5])
  %r = get(%w) {index = 1} : f32[5]
  %n = get(%w) {index = 0} : i32[]
  return %r, %n
}
"""

# two loops reading the same inputs; one loop's element is used by later ops and returned
# twice, next to a parameter
TWO_LOOPS = """\
func @main(%a: f32[1000]) -> (f32[1000], f32[1000], f32[1000], f32[1000]) {
  %z = constant 0 : i64[]
  %w = while(%z, %a) {
    cond = func @c(%i: i64[], %x: f32[1000]) -> bool[] {
      %k = lt(%i, 7) : bool[]
      return %k
    },
    body = func @b(%i: i64[], %x: f32[1000]) -> (i64[], f32[1000]) {
      %j = add(%i, 1) : i64[]
      %y = mul(%x, 0.9) : f32[1000]
      return %j, %y
    }
  } : (i64[], f32[1000])
  %w2 = while(%z, %a) {
    cond = func @c3(%i: i64[], %x: f32[1000]) -> bool[] {
      %k = lt(%i, 2) : bool[]
      return %k
    },
    body = func @b3(%i: i64[], %x: f32[1000]) -> (i64[], f32[1000]) {
      %j = add(%i, 1) : i64[]
      %y = add(%x, 1) : f32[1000]
      return %j, %y
    }
  } : (i64[], f32[1000])
  %r = get(%w) {index = 1} : f32[1000]
  %r2 = get(%w2) {index = 1} : f32[1000]
  %s = add(%r, %r2) : f32[1000]
  return %r, %s, %r, %a
}
"""

SAME_VALUE_TWICE = """\
func @main(%a: f32[4]) -> (f32[4], f32[4]) {
  %z = constant 0 : i32[]
  %w = while(%z, %a, %a) {
    cond = func @c(%i: i32[], %x: f32[4], %y: f32[4]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[4], %y: f32[4]) -> (i32[], f32[4], f32[4]) {
      %j = add(%i, 1) : i32[]
      %s = add(%x, %y) : f32[4]
      return %j, %s, %s
    }
  } : (i32[], f32[4], f32[4])
  %r = get(%w) {index = 1} : f32[4]
  %s = get(%w) {index = 2} : f32[4]
  return %r, %s
}
"""

# a body with a contraction, a reduction, gather, scatter and concatenate; the indices are
# carried through unchanged (bodies are closed: they see only their parameters)
HEAVY_BODY = """\
func @main(%a: f32[4, 3], %idx: i32[2, 1]) -> f32[4, 3] {
  %z = constant 0 : i32[]
  %w = while(%z, %a, %idx) {
    cond = func @c(%i: i32[], %x: f32[4, 3], %ix: i32[2, 1]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %x: f32[4, 3], %ix: i32[2, 1]) -> (i32[], f32[4, 3], i32[2, 1]) {
      %j = add(%i, 1) : i32[]
      %t = transpose(%x) {perm = [1, 0]} : f32[3, 4]
      %d = matmul(%x, %t) : f32[4, 4]
      %r = reduce(%d) {axes = [1], kind = "sum"} : f32[4]
      %rb = broadcast_in_dim(%r) {shape = [4, 3], dims = [0]} : f32[4, 3]
      %g = gather(%x, %ix) : f32[2, 3]
      %cc = concatenate(%g, %g) {axis = 0} : f32[4, 3]
      %s = scatter(%x, %ix, %g) {kind = "add"} : f32[4, 3]
      %m = add(%s, %cc) : f32[4, 3]
      %n = mul(%m, 0.01) : f32[4, 3]
      %rs = mul(%rb, 0.05) : f32[4, 3]
      %o = add(%n, %rs) : f32[4, 3]
      %p = tanh(%o) : f32[4, 3]
      return %j, %p, %ix
    }
  } : (i32[], f32[4, 3], i32[2, 1])
  %r = get(%w) {index = 1} : f32[4, 3]
  return %r
}
"""


# the condition runs a loop of its own
COND_WITH_A_LOOP = """\
func @main(%x: f32[3]) -> (f32[3], i32[]) {
  %z = constant 0 : i32[]
  %w = while(%z, %x) {
    cond = func @c(%i: i32[], %v: f32[3]) -> bool[] {
      %z2 = constant 0 : i32[]
      %in = while(%z2, %i) {
        cond = func @c2(%k: i32[], %acc: i32[]) -> bool[] { %kk = lt(%k, 2) : bool[] return %kk },
        body = func @b2(%k: i32[], %acc: i32[]) -> (i32[], i32[]) {
          %k2 = add(%k, 1) : i32[]
          %a2 = add(%acc, %acc) : i32[]
          return %k2, %a2
        }
      } : (i32[], i32[])
      %four = get(%in) {index = 1} : i32[]
      %k = lt(%four, 20) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %v: f32[3]) -> (i32[], f32[3]) {
      %j = add(%i, 1) : i32[]
      %u = add(%v, %v) : f32[3]
      return %j, %u
    }
  } : (i32[], f32[3])
  %r = get(%w) {index = 1} : f32[3]
  %n = get(%w) {index = 0} : i32[]
  return %r, %n
}
"""

# two inner loops, one after the other, in one body (they share its scratch memory); the
# first rotates its two values, and the outer body hands back elements of both, swapped
TWO_INNER_LOOPS = """\
func @main(%x: f32[6], %y: f32[6]) -> (f32[6], f32[6]) {
  %z = constant 0 : i32[]
  %w = while(%z, %x, %y) {
    cond = func @c(%i: i32[], %v: f32[6], %t: f32[6]) -> bool[] {
      %k = lt(%i, 2) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %v: f32[6], %t: f32[6]) -> (i32[], f32[6], f32[6]) {
      %j = add(%i, 1) : i32[]
      %a = while(%i, %v, %t) {
        cond = func @c2(%k: i32[], %p: f32[6], %q: f32[6]) -> bool[] {
          %kk = lt(%k, 3) : bool[]
          return %kk
        },
        body = func @b2(%k: i32[], %p: f32[6], %q: f32[6]) -> (i32[], f32[6], f32[6]) {
          %k2 = add(%k, 1) : i32[]
          %p2 = add(%p, %q) : f32[6]
          return %k2, %q, %p2
        }
      } : (i32[], f32[6], f32[6])
      %b = while(%i, %t) {
        cond = func @c3(%k: i32[], %p: f32[6]) -> bool[] { %kk = lt(%k, 4) : bool[] return %kk },
        body = func @b3(%k: i32[], %p: f32[6]) -> (i32[], f32[6]) {
          %k2 = add(%k, 1) : i32[]
          %p2 = mul(%p, 0.5) : f32[6]
          return %k2, %p2
        }
      } : (i32[], f32[6])
      %a1 = get(%a) {index = 2} : f32[6]
      %b1 = get(%b) {index = 1} : f32[6]
      return %j, %b1, %a1
    }
  } : (i32[], f32[6], f32[6])
  %r = get(%w) {index = 1} : f32[6]
  %s = get(%w) {index = 2} : f32[6]
  return %r, %s
}
"""

NEVER = """\
func @main(%x: f32[3]) -> f32[3] {
  %w = while(%x) {
    cond = func @c(%v: f32[3]) -> bool[] { %k = constant false : bool[] return %k },
    body = func @b(%v: f32[3]) -> (f32[3]) { %u = neg(%v) : f32[3] return %u }
  } : (f32[3])
  %r = get(%w) {index = 0} : f32[3]
  return %r
}
"""

# the flag is the only carried value: the body flips it, the condition returns it
FLAG_ONLY = """\
func @main(%x: bool[]) -> bool[] {
  %w = while(%x) {
    cond = func @c(%v: bool[]) -> bool[] { return %v },
    body = func @b(%v: bool[]) -> (bool[]) { %u = not(%v) : bool[] return %u }
  } : (bool[])
  %r = get(%w) {index = 0} : bool[]
  return %r
}
"""

# one loop's element starts the next loop, and both are returned
CHAINED = """\
func @main(%x: f32[3]) -> (f32[3], f32[3]) {
  %z = constant 0 : i32[]
  %w = while(%z, %x) {
    cond = func @c(%i: i32[], %v: f32[3]) -> bool[] { %k = lt(%i, 2) : bool[] return %k },
    body = func @b(%i: i32[], %v: f32[3]) -> (i32[], f32[3]) {
      %j = add(%i, 1) : i32[]
      %u = add(%v, 1) : f32[3]
      return %j, %u
    }
  } : (i32[], f32[3])
  %r = get(%w) {index = 1} : f32[3]
  %w2 = while(%z, %r) {
    cond = func @c(%i: i32[], %v: f32[3]) -> bool[] { %k = lt(%i, 2) : bool[] return %k },
    body = func @b(%i: i32[], %v: f32[3]) -> (i32[], f32[3]) {
      %j = add(%i, 1) : i32[]
      %u = add(%v, 1) : f32[3]
      return %j, %u
    }
  } : (i32[], f32[3])
  %r2 = get(%w2) {index = 1} : f32[3]
  return %r, %r2
}
"""


# convolution, pooling, slice, reverse, pad, iota and int8 (de)quantization in a body
MORE_OPS = """\
func @main(%x: f32[1, 6, 6, 2], %k: f32[3, 3, 2, 2]) -> f32[1, 6, 6, 2] {
  %z = constant 0 : i32[]
  %w = while(%z, %x, %k) {
    cond = func @c(%i: i32[], %v: f32[1, 6, 6, 2], %kk: f32[3, 3, 2, 2]) -> bool[] {
      %c = lt(%i, 2) : bool[]
      return %c
    },
    body = func @b(%i: i32[], %v: f32[1, 6, 6, 2], %kk: f32[3, 3, 2, 2])
        -> (i32[], f32[1, 6, 6, 2], f32[3, 3, 2, 2]) {
      %j = add(%i, 1) : i32[]
      %cv = conv2d(%v, %kk) {padding = same}
      %sl = slice(%cv) {start = [0, 0, 0, 0], limit = [1, 6, 6, 2]}
      %rv = reverse(%sl) {dims = [1]}
      %mp = max_pool(%rv) {window = [2, 2], strides = [2, 2]}
      %pd = pad(%mp, 0.0) {low = [0, 0, 0, 0], high = [0, 3, 3, 0], interior = [0, 0, 0, 0]}
      %io = iota() {shape = [1, 6, 6, 2], dtype = f32, dim = 2}
      %s = add(%pd, %io)
      %q = quantize(%s) {scale = [0.05], zero_point = [3]}
      %dq = dequantize(%q) {scale = [0.05], zero_point = [3]}
      %t = mul(%dq, 0.1)
      return %j, %t, %kk
    }
  }
  %r = get(%w) {index = 1}
  return %r
}
"""


def for_loop(index: str, lower: int, upper: int, carry: str, step: str) -> str:
    """A `for` from `lower` to `upper` (constants of dtype `index`) that applies `step` (body
    lines computing %u from %v and the index %i) to a carried `carry`."""
    return f"""\
func @main(%x: {carry}) -> {carry} {{
  %lo = constant {lower} : {index}[]
  %hi = constant {upper} : {index}[]
  %w = for(%lo, %hi, %x) {{
    body = func @body(%i: {index}[], %v: {carry}) -> ({carry}) {{
      {step}
      return %u
    }}
  }} : ({carry})
  %r = get(%w) {{index = 0}} : {carry}
  return %r
}}
"""


INDEX_STEP = (
    "%f = convert(%i) {dtype = f32} : f32[]\n      %h = mul(%v, 0.5)\n      %u = add(%h, %f)"
)

# the bounds are inputs; the index is used as a gather position; two values trade places
FOR_SWAP = """\
func @main(%lo: i64[], %hi: i64[], %a: f32[7], %b: f32[7]) -> (f32[7], f32[7]) {
  %w = for(%lo, %hi, %a, %b) {
    body = func @body(%i: i64[], %x: f32[7], %y: f32[7]) -> (f32[7], f32[7]) {
      %seven = constant 7 : i64[]
      %k = fmod(%i, %seven) : i64[]
      %at = reshape(%k) {shape = [1, 1]} : i64[1, 1]
      %g = gather(%x, %at) {mode = "clip"} : f32[1]
      %gb = broadcast_in_dim(%g) {shape = [7], dims = [0]} : f32[7]
      %u = add(%y, %gb) : f32[7]
      return %u, %x
    }
  } : (f32[7], f32[7])
  %r = get(%w) {index = 0} : f32[7]
  %s = get(%w) {index = 1} : f32[7]
  return %r, %s
}
"""


def _heavy_inputs() -> list[np.ndarray]:
    return [np.arange(12, dtype=np.float32).reshape(4, 3) / 10, np.array([[1], [-1]], np.int32)]


INT_COUNTERS = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
CASES: dict[str, str] = {
    **{f"counter-{c}": counter_loop(c, 100, "f32[3]", FLOAT_STEP) for c in INT_COUNTERS},
    **{f"f32[{n}]": counter_loop("i32", 5, f"f32[{n}]", FLOAT_STEP) for n in (0, 1, 17, 1000)},
    **{f"{d}[17]": counter_loop("i32", 5, f"{d}[17]", FLOAT_STEP) for d in ("f64", "f16", "bf16")},
    "bool[17]": counter_loop("i32", 5, "bool[17]", BOOL_STEP),
    "f32[2,3,5]": counter_loop("i32", 4, "f32[2,3,5]", FLOAT_STEP),
    "zero-trip": counter_loop("i32", 3, "f32[17]", "%u = exp(%v)", start=10),
    "swap": SWAP,
    "rotate": ROTATE,
    "pass-through-and-constant": PASS_THROUGH_AND_CONSTANT,
    "cond-returns-carried": COND_RETURNS_CARRIED,
    "size-0-and-1": SIZE_ZERO_AND_ONE,
    "only-empty": ONLY_EMPTY,
    "nested": NESTED,
    "two-loops": TWO_LOOPS,
    "same-value-twice": SAME_VALUE_TWICE,
    "heavy-body": HEAVY_BODY,
    "cond-with-a-loop": COND_WITH_A_LOOP,
    "two-inner-loops": TWO_INNER_LOOPS,
    "never": NEVER,
    "flag-only": FLAG_ONLY,
    "chained": CHAINED,
    "more-ops": MORE_OPS,
    **{f"for-{t}": for_loop(t, 3, 9, "f32[17]", INDEX_STEP) for t in ("i8", "u16", "i32", "u64")},
    "for-i8-to-its-max": for_loop("i8", 120, 127, "f32[5]", INDEX_STEP),
    "for-u8-to-its-max": for_loop("u8", 250, 255, "f32[5]", INDEX_STEP),
    "for-negative": for_loop("i32", -5, 2, "f32[3]", INDEX_STEP),
    "for-zero-trip": for_loop("i16", 4, -4, "f32[3]", INDEX_STEP),
    "for-swap": FOR_SWAP,
}


def _for_swap_inputs() -> list[np.ndarray]:
    a, b = np.arange(7, dtype=np.float32), np.linspace(-1, 1, 7, dtype=np.float32)
    return [np.array(-3, np.int64), np.array(10, np.int64), a, b]


INPUTS = {"heavy-body": _heavy_inputs, "for-swap": _for_swap_inputs}


def module_of(name: str) -> Module:
    return parse_module(CASES[name], f"{name}.graph")


def inputs_of(name: str, module: Module) -> list[np.ndarray]:
    make = INPUTS.get(name)
    return make() if make else random_inputs(module.entry_function, 0)


def assert_same(want: list[np.ndarray], got: list[np.ndarray] | np.ndarray, what: str) -> None:
    if isinstance(got, np.ndarray):  # a library returns its only result as itself
        got = [got]
    assert len(got) == len(want), what
    for k, (w, g) in enumerate(zip(want, got, strict=True)):
        assert g.dtype == w.dtype, (what, k)
        assert g.shape == w.shape, (what, k)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"{what} result {k}")
        else:
            rtol = RTOL[DType.from_numpy(w.dtype)] * 10  # the body's ops may be fused
            np.testing.assert_allclose(
                g.astype(np.float64), w.astype(np.float64), rtol=rtol, err_msg=f"{what} #{k}"
            )


def optimized(module: Module) -> Module:
    return PassManager(parse_pipeline(default_pipeline("cpu")), verify_each=True).run(module)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loop_matches_the_interpreter(name: str) -> None:
    """As written (threads=1), then after the CPU pipeline, once in one thread and once in the
    runtime's default (threaded) setting."""
    module = module_of(name)
    args = inputs_of(name, module)
    want = run_module(module, args)
    for cpu in LEVELS:
        ex = CpuExecutable(module, threads=1, target=host_target(cpu))
        assert_same(want, ex(*args), f"{name} at {cpu}")
    opt = optimized(module)
    ex = CpuExecutable(opt, threads=1)
    assert_same(want, ex(*args), f"{name} after the pipeline")
    again = CpuExecutable.from_payload(*ex.payload(), threads=2)
    assert_same(want, again(*args), f"{name} with 2 threads")
    assert_same(want, ex(*args), f"{name} called again")  # the loop's state starts afresh


def test_the_counters_reach_their_bound() -> None:
    """Not only equal to the interpreter: the interpreter against a NumPy loop."""
    for c in INT_COUNTERS:
        module = module_of(f"counter-{c}")
        x = np.array([1.0, -2.0, 8.0], np.float32)
        n, r = CpuExecutable(module, threads=1)(x)
        want = x.copy()
        for _ in range(100):
            want = want * np.float32(0.5) + np.float32(1)
        assert n.dtype == DType.parse(c).np
        assert int(n) == 100
        np.testing.assert_allclose(r, want, rtol=1e-6)


def test_a_long_loop() -> None:
    """10^5 iterations of a small body, against NumPy (the interpreter would take seconds)."""
    text = counter_loop("i64", 100_000, "i64[3]", "%u = add(%v, %i)")
    module = parse_module(text, "long.graph")
    x = np.array([1, -5, 7], np.int64)
    for threads in (1, 2):
        n, r = CpuExecutable(module, threads=threads)(x)
        assert int(n) == 100_000
        np.testing.assert_array_equal(r, x + sum(range(100_000)))


# A loop over a big carried value, then a big op outside it: the outside op is split across
# threads, so the runtime launches the kernels itself ("threaded") or, in one thread, makes
# one call of the whole program ("run").
THREADED = """\
func @main(%x: f32[65536], %s: f32[65536]) -> (f32[65536], f32[65536]) {
  %z = constant 0 : i32[]
  %w = while(%z, %x, %s) {
    cond = func @c(%i: i32[], %v: f32[65536], %t: f32[65536]) -> bool[] {
      %k = lt(%i, 3) : bool[]
      return %k
    },
    body = func @b(%i: i32[], %v: f32[65536], %t: f32[65536]) -> (i32[], f32[65536], f32[65536]) {
      %j = add(%i, 1) : i32[]
      %h = mul(%v, 0.5) : f32[65536]
      %u = add(%h, %t) : f32[65536]
      return %j, %u, %v
    }
  } : (i32[], f32[65536], f32[65536])
  %r = get(%w) {index = 1} : f32[65536]
  %q = get(%w) {index = 2} : f32[65536]
  %big = mul(%r, %q) : f32[65536]
  return %big, %q
}
"""


@pytest.mark.parametrize("cpu", LEVELS)
def test_threaded_and_single_call_modes(cpu: str) -> None:
    module = parse_module(THREADED, "threaded.graph")
    args = random_inputs(module.entry_function, 1)
    want = run_module(module, args)
    one = CpuExecutable(module, threads=1, target=host_target(cpu))
    two = CpuExecutable.from_payload(*one.payload(), threads=2)
    assert (one.mode, two.mode) == ("run", "threaded")
    assert_same(want, one(*args), f"run at {cpu}")
    assert_same(want, two(*args), f"threaded at {cpu}")


# --- index checks inside a loop body -------------------------------------------------------

CHECKED = """\
func @main(%x: f32[5, 3], %idx: i32[2, 1], %big: f32[{n}]) -> (f32[5, 3], f32[{n}]) {{
  %z = constant 0 : i32[]
  %w = while(%z, %x, %idx) {{
    cond = func @c(%i: i32[], %v: f32[5, 3], %ix: i32[2, 1]) -> bool[] {{
      %k = lt(%i, 3) : bool[]
      return %k
    }},
    body = func @b(%i: i32[], %v: f32[5, 3], %ix: i32[2, 1]) -> (i32[], f32[5, 3], i32[2, 1]) {{
      %j = add(%i, 1) : i32[]
      %g0 = gather(%v, %ix) : f32[2, 3]
      %s0 = reduce(%g0) {{axes = [0, 1], kind = "sum"}} : f32[]
      %ix2 = add(%ix, 1) : i32[2, 1]
      %g = gather(%v, %ix2) : f32[2, 3]
      %u = scatter(%v, %ix, %g) {{kind = "add"}} : f32[5, 3]
      %u2 = add(%u, %s0) : f32[5, 3]
      return %j, %u2, %ix2
    }}
  }} : (i32[], f32[5, 3], i32[2, 1])
  %r = get(%w) {{index = 1}} : f32[5, 3]
  %b2 = mul(%big, %big) : f32[{n}]
  return %r, %b2
}}
"""
FIRST_GATHER, SECOND_GATHER = 10, 13
GOOD = [[0], [1]]
# (indices at the start, the line of the gather that fails): the first gather reads idx, the
# second idx + 1, and idx grows by one each time round
BAD = [([[0], [2]], SECOND_GATHER), ([[-6], [0]], FIRST_GATHER), ([[4], [0]], SECOND_GATHER)]


def _checked_inputs(n: int, idx: list[list[int]]) -> list[np.ndarray]:
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    return [x, np.array(idx, np.int32), np.ones(n, np.float32)]


def _located(err: IndexOutOfRange, file: str, line: int) -> None:
    assert isinstance(err, IndexError)
    assert err.loc is not None
    assert (Path(err.loc.file).name, err.loc.line) == (file, line)
    assert "out of bounds" in err.message
    assert "gather" in err.message


@pytest.mark.parametrize("n", [4, 1 << 16])
def test_an_index_error_in_a_body_is_located_at_its_gather(n: int) -> None:
    module = parse_module(CHECKED.format(n=n), "checked.graph")
    one = CpuExecutable(module, threads=1)
    executables = [one, CpuExecutable.from_payload(*one.payload(), threads=2)]
    modes = [e.mode for e in executables]
    # a small program is one call, holding the GIL ("py") or not ("run": a loop may run long)
    assert set(modes) <= {"py", "run"} if n == 4 else modes == ["run", "threaded"]
    good = _checked_inputs(n, GOOD)
    want = run_module(module, good)
    for ex in executables:
        assert_same(want, ex(*good), ex.mode)
        for idx, line in BAD:
            bad = _checked_inputs(n, idx)
            with pytest.raises(IndexOutOfRange) as interp:
                run_module(module, bad)
            _located(interp.value, "checked.graph", line)
            with pytest.raises(IndexOutOfRange) as compiled:
                ex(*bad)
            _located(compiled.value, "checked.graph", line)
        assert_same(want, ex(*good), f"{ex.mode}, after an error")  # the status is reset


# --- ahead of time --------------------------------------------------------------------------

AOT_CASES = ("swap", "nested", "for-swap")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`tessel compile` of each AOT case and of the checked loop, in parallel."""
    root = tmp_path_factory.mktemp("loops")
    texts = {name.replace("-", "_"): CASES[name] for name in AOT_CASES}
    texts["checked"] = CHECKED.format(n=4)

    def build(name: str) -> tuple[str, Path]:
        graph = root / f"{name}.graph"
        graph.write_text(texts[name])
        proc = run_tessel("compile", str(graph), "-o", str(root / name))
        assert proc.returncode == 0, proc.stderr
        return name, root / name / f"lib{name}.so"

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(build, texts))


@pytest.mark.parametrize("name", AOT_CASES)
def test_aot_library_matches_the_interpreter(name: str, libraries: dict[str, Path]) -> None:
    module = module_of(name)
    args = inputs_of(name, module)
    lib = runtime.load(libraries[name.replace("-", "_")])
    assert_same(run_module(module, args), lib(*args), f"{name} ahead of time")


def test_aot_library_reports_an_index_error_in_a_body(libraries: dict[str, Path]) -> None:
    lib = runtime.load(libraries["checked"])
    module = parse_module(CHECKED.format(n=4), "checked.graph")
    good = _checked_inputs(4, GOOD)
    assert_same(run_module(module, good), lib(*good), "aot")
    for idx, line in BAD:
        with pytest.raises(IndexOutOfRange) as err:
            lib(*_checked_inputs(4, idx))
        _located(err.value, "checked.graph", line)
    assert_same(run_module(module, good), lib(*good), "aot, after an error")
