"""The engines under test: tessel and its peers (NumPy, JAX, ONNX Runtime, Numba).

Each engine turns a workload and its inputs into a thunk: a no-argument callable that runs the
workload once and returns the result (for the compile workloads, the compiled object). All the
preparation that a real program would do once (compiling, putting inputs on the device, building
the ONNX session) happens in `prepare`, outside the timed thunk. A peer that is not installed, or
a workload an engine has no meaning for, raises `NotAvailable`; the table shows "n/a".

A thunk that must start cold on every call (the first call of a fresh jit) is a `ColdCall`: its
`reset` runs before each call, outside the timing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import loops, programs
from benchmarks.workloads import (
    JIT_FUNCTIONS,
    LOOP_KINDS,
    MLP_GRAPH,
    MLP_WEIGHTS,
    PROG_KINDS,
    Arrays,
    Workload,
    deep_params,
    mlp_weights,
    np_conv2d_same,
    np_elementwise,
    np_mlp,
    np_softmax,
    np_tiny,
)

Thunk = Callable[[], Any]


@dataclass(frozen=True)
class ColdCall:
    """A thunk whose calls are each timed from a cold start; `reset` runs first, untimed."""

    reset: Callable[[], Any]
    call: Thunk

    def __call__(self) -> Any:
        return self.call()


class NotAvailable(Exception):
    """The engine cannot run this workload; the message says why."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise NotAvailable(f"{module} is not installed (pip install -e '.[bench]')") from e


class Engine:
    """One engine. Subclasses name themselves and implement `prepare`."""

    name = ""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def version(self) -> str | None:
        """The version, or None when the engine is not installed."""
        raise NotImplementedError

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        raise NotImplementedError


# ---- tessel ------------------------------------------------------------------------------------


class Tessel(Engine):
    """Graph text: parse_module, the default CPU pipeline, one CpuExecutable that the thunk
    calls. The `dispatch`, `compile-deep` and `jit-*` workloads go through `@jit` instead."""

    name = "tessel"

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        # by graph text: a jit-KIND row's graph-file twin reuses KIND's executable
        self._executables: dict[str, Any] = {}

    def version(self) -> str | None:
        return _version("tessel")

    def _compile(self, module: Any) -> Any:
        from codegen.executable import CpuExecutable
        from compiler.targets import default_pipeline
        from passes import PassManager, parse_pipeline

        module = PassManager(parse_pipeline(default_pipeline("cpu"))).run(module)
        return CpuExecutable(module, threads=self.threads)

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        from compiler import jit

        if w.kind == "compile-deep":  # cache=False: the on-disk cache would answer later calls
            fn, x, params = w.numpy_function(), inputs["x"], deep_params(inputs)
            return lambda: jit(fn, cache=False)(x, params)
        if w.kind == "compile-cached":
            return self._from_disk_cache(w, inputs)
        if w.kind == "dispatch" or w.kind.startswith(("jit-", "loop-", "prog-")):
            jitted, args = jit(w.numpy_function(), cache=False), tuple(inputs.values())
            return lambda: jitted(*args)
        return self.prepare_graph(w, inputs)

    def _from_disk_cache(self, w: Workload, inputs: Arrays) -> Thunk:
        """A fresh @jit of the MLP each call, answered by the on-disk cache: trace, hash the
        graph, load the object code (no passes, no LLVM). The cache folder is this run's own."""
        import tempfile

        from compiler import jit

        self._cache_folder = tempfile.TemporaryDirectory(prefix="tessel-bench-")
        os.environ["TESSEL_CACHE_DIR"] = self._cache_folder.name  # read when a call compiles
        fn, x = JIT_FUNCTIONS["mlp"](w), inputs["x"]
        jit(fn, cache=True).lower(x)
        jit(fn, cache=True)(x)  # fills the cache (and builds the GEMM routine there once)
        return lambda: jit(fn, cache=True).compile(x)

    def prepare_graph(self, w: Workload, inputs: Arrays) -> Thunk:
        from ir.parser import parse_file, parse_module

        if w.kind == "compile":
            return lambda: self._compile(parse_file(MLP_GRAPH))
        text = w.graph()
        if not text:
            raise NotAvailable(f"no graph text for {w.kind}")
        exe = self._executables.get(text)
        if exe is None:
            exe = self._compile(parse_module(text, f"{w.name}.graph", MLP_GRAPH.parent))
            self._executables[text] = exe
        return lambda: exe(**inputs)[0]


class TesselGraph(Tessel):
    """Tessel through the graph text even where `Tessel` uses @jit: the "jit / graph" column."""

    name = "tessel-graph"

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        return self.prepare_graph(w, inputs)


# ---- NumPy -------------------------------------------------------------------------------------


class NumPy(Engine):
    """Plain NumPy in float32: OpenBLAS for the matmuls, im2col + matmul for the convolution."""

    name = "numpy"

    def version(self) -> str | None:
        return np.__version__

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        i = inputs
        kind = w.base_kind
        if kind == "elementwise":
            return lambda: np_elementwise(i["x"], i["a"], i["b"])
        if kind == "softmax":
            return lambda: np_softmax(i["x"])
        if kind == "matmul":
            return lambda: i["a"] @ i["b"]
        if kind == "mlp":
            weights = mlp_weights()
            return lambda: np_mlp(i["x"], weights)
        if kind == "conv2d":
            return lambda: np_conv2d_same(i["x"], i["w"])
        if kind == "dispatch":
            return lambda: np_tiny(i["x"])
        if kind in LOOP_KINDS or kind in PROG_KINDS:
            fn, args = w.numpy_function(), tuple(i.values())
            return lambda: fn(*args)
        if kind == "matmul-int8":  # measured once: 6.8 s at 1024, not worth waiting for
            raise NotAvailable("too slow: NumPy's integer matmul does not use BLAS (~7 s)")
        if kind == "conv2d-int8":
            raise NotAvailable("too slow: im2col's integer matmul does not use BLAS")
        if kind == "matmul-bf16":  # ml_dtypes' bfloat16 matmul is an element loop, no BLAS
            raise NotAvailable("no bf16 matmul: NumPy has no bf16 BLAS path")
        raise NotAvailable("NumPy runs eagerly: nothing to compile")


# ---- JAX ---------------------------------------------------------------------------------------


class Jax(Engine):
    """jax.jit on XLA:CPU; inputs are put on the device first, the thunk blocks until ready."""

    name = "jax"

    def version(self) -> str | None:
        try:
            return str(_import("jax").__version__)
        except NotAvailable:
            return None

    def _mlp(self) -> Callable[[Any], Any]:
        jax = _import("jax")
        jnp = jax.numpy
        wt = {k: jnp.asarray(v) for k, v in mlp_weights().items()}

        def mlp(x: Any) -> Any:
            h1 = jax.nn.relu(x @ wt["w1"] + wt["b1"])
            h2 = jax.nn.relu(h1 @ wt["w2"] + wt["b2"])
            return jax.nn.softmax(h2 @ wt["w3"] + wt["b3"], axis=-1)

        return mlp

    def _function(self, kind: str) -> Callable[..., Any]:
        jax = _import("jax")
        jnp = jax.numpy
        if kind == "dispatch":
            return lambda x: jnp.exp(x) * 2
        if kind == "elementwise":
            return lambda x, a, b: jax.nn.relu(x * a + b) * jax.nn.sigmoid(x) - 0.5 * jnp.tanh(x)
        if kind == "softmax":
            return lambda x: jax.nn.softmax(x, axis=-1)
        if kind == "matmul":
            return lambda a, b: a @ b
        if kind == "matmul-int8":
            return lambda a, b: jax.lax.dot(a, b, preferred_element_type=jnp.int32)
        if kind == "matmul-bf16":  # f32 accumulation, as tessel's bf16 dot_general
            return lambda a, b: jax.lax.dot(a, b, preferred_element_type=jnp.float32)
        if kind == "mlp":
            return self._mlp()
        if kind in ("conv2d", "conv2d-int8"):
            dims = ("NHWC", "HWIO", "NHWC")
            out = jnp.int32 if kind == "conv2d-int8" else None
            return lambda x, w: jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=dims, preferred_element_type=out
            )
        raise AssertionError(kind)

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        jax = _import("jax")
        if w.kind == "compile":  # a fresh function each time, so no cache can answer
            x = inputs["x"]
            return lambda: jax.jit(self._mlp()).lower(x).compile()
        if w.kind == "compile-cached":  # JAX's in-memory cache of lowered and compiled code
            jitted = jax.jit(self._mlp())
            jitted.lower(inputs["x"]).compile()
            return lambda: jitted.lower(inputs["x"]).compile()
        if w.kind == "compile-deep":
            # a new function object per call, and no in-memory cache left from the last one
            x, params = inputs["x"], deep_params(inputs)
            return ColdCall(
                jax.clear_caches,
                lambda: jax.jit(_fresh(_jax_deep_mlp))(x, params).block_until_ready(),
            )
        if w.kind in PROG_KINDS:
            return self._program(w, inputs)
        if w.kind in LOOP_KINDS:
            fn = loops.jax_function(w.kind, w.params)
        else:
            fn = jax.jit(self._function(w.base_kind))
        args = [jax.device_put(v) for v in inputs.values()]
        return lambda: fn(*args).block_until_ready()

    def _program(self, w: Workload, inputs: Arrays) -> Thunk:
        """A program in float64 (and uint32, complex128) as the other engines compute it: JAX
        would make them 32-bit without x64, which is a per-call setting of its jit cache."""
        jax = _import("jax")
        with jax.enable_x64(True):
            fn = programs.jax_function(w.kind, w.params)
            args = [jax.device_put(v) for v in inputs.values()]

        def call() -> Any:
            with jax.enable_x64(True):
                return fn(*args).block_until_ready()

        return call


def _jax_deep_mlp(x: Any, params: list[tuple[Any, Any]]) -> Any:
    jnp = _import("jax.numpy")
    for w, b in params:
        x = jnp.maximum(x @ w + b, 0)
    return x


def _fresh(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A new function object, so that no cache keyed on the function can answer."""

    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


# ---- ONNX Runtime ------------------------------------------------------------------------------

_OPSET = 17
_IR_VERSION = 8  # what opset 17 needs; newer onnx packages default to IRs older runtimes reject


def _onnx_int8_matmul(w: Workload, inputs: Arrays) -> Any:
    """MatMulInteger on u8 x s8, the pair ONNX Runtime's int8 kernels serve best: A is fed
    shifted by +128 into u8 with a zero point of 128, so (A' - 128) @ B is exactly a @ b."""
    onnx = _import("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    shape = list(inputs["a"].shape)
    graph_inputs = [
        helper.make_tensor_value_info("a", tp.UINT8, shape),
        helper.make_tensor_value_info("b", tp.INT8, list(inputs["b"].shape)),
    ]
    zero = onnx.numpy_helper.from_array(np.array(128, np.uint8), "a_zero")
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero"], ["y"])
    out = helper.make_tensor_value_info("y", tp.INT32, [shape[0], inputs["b"].shape[1]])
    graph = helper.make_graph([node], w.name, graph_inputs, [out], initializer=[zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _onnx_int8_conv(w: Workload, inputs: Arrays) -> Any:
    """ConvInteger on u8 x s8 (x shifted by +128, zero point 128: exactly the int8 conv), NCHW
    with transposes in and out as the float conv row; the filter is given as OIHW."""
    onnx = _import("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    x_shape = list(inputs["x"].shape)
    graph_inputs = [
        helper.make_tensor_value_info("x", tp.UINT8, x_shape),
        helper.make_tensor_value_info("w", tp.INT8, list(inputs["w"].transpose(3, 2, 0, 1).shape)),
    ]
    zero = onnx.numpy_helper.from_array(np.array(128, np.uint8), "x_zero")
    n = helper.make_node
    nodes = [
        n("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
        n("ConvInteger", ["xc", "w", "x_zero"], ["yc"], pads=[1, 1, 1, 1]),
        n("Transpose", ["yc"], ["y"], perm=[0, 2, 3, 1]),
    ]
    out = helper.make_tensor_value_info("y", tp.INT32, [*x_shape[:3], inputs["w"].shape[3]])
    graph = helper.make_graph(nodes, w.name, graph_inputs, [out], initializer=[zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _onnx_model(w: Workload, inputs: Arrays) -> Any:
    onnx = _import("onnx")
    helper, tp = onnx.helper, onnx.TensorProto
    f32 = tp.FLOAT
    graph_inputs = [helper.make_tensor_value_info(k, f32, list(v.shape)) for k, v in inputs.items()]
    init: list[Any] = []
    kind = "mlp" if w.kind.startswith("compile") else w.base_kind
    if kind == "conv2d":  # ONNX Conv is NCHW / OIHW: transpose in and out, filter given as OIHW
        oihw = list(inputs["w"].transpose(3, 2, 0, 1).shape)
        graph_inputs[1] = helper.make_tensor_value_info("w", f32, oihw)
    n = helper.make_node
    nodes = {
        "elementwise": [
            n("Mul", ["x", "a"], ["xa"]), n("Add", ["xa", "b"], ["z"]), n("Relu", ["z"], ["r"]),
            n("Sigmoid", ["x"], ["s"]), n("Mul", ["r", "s"], ["p"]), n("Tanh", ["x"], ["t"]),
            n("Mul", ["t", "half"], ["h"]), n("Sub", ["p", "h"], ["y"]),
        ],
        "softmax": [n("Softmax", ["x"], ["y"], axis=-1)],
        "matmul": [n("MatMul", ["a", "b"], ["y"])],
        "mlp": [
            n("MatMul", ["x", "w1"], ["z1"]), n("Add", ["z1", "b1"], ["a1"]),
            n("Relu", ["a1"], ["h1"]), n("MatMul", ["h1", "w2"], ["z2"]),
            n("Add", ["z2", "b2"], ["a2"]), n("Relu", ["a2"], ["h2"]),
            n("MatMul", ["h2", "w3"], ["z3"]), n("Add", ["z3", "b3"], ["logits"]),
            n("Softmax", ["logits"], ["y"], axis=-1),
        ],
        "conv2d": [
            n("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
            n("Conv", ["xc", "w"], ["yc"], pads=[1, 1, 1, 1], strides=[1, 1]),
            n("Transpose", ["yc"], ["y"], perm=[0, 2, 3, 1]),
        ],
    }[kind]  # fmt: skip
    if kind == "elementwise":
        init.append(onnx.numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    if kind == "mlp":
        with np.load(MLP_WEIGHTS) as archive:
            init += [onnx.numpy_helper.from_array(archive[k], k) for k in archive.files]
    # the result's shape
    shape = (
        [len(inputs["a"]), inputs["b"].shape[1]] if kind == "matmul" else list(inputs["x"].shape)
    )
    if kind == "mlp":
        shape[-1] = 10
    out = helper.make_tensor_value_info("y", f32, shape)
    graph = helper.make_graph(nodes, w.name, graph_inputs, [out], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


class OnnxRuntime(Engine):
    """An ONNX graph built with onnx.helper, one InferenceSession (all graph optimizations)."""

    name = "ort"

    def version(self) -> str | None:
        try:
            _import("onnx")
            return str(_import("onnxruntime").__version__)
        except NotAvailable:
            return None

    def _session(self, model_bytes: bytes) -> Any:
        ort = _import("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        _import("onnxruntime")
        if w.kind == "compile-cached":
            raise NotAvailable("no in-process compile cache")
        if w.kind in ("dispatch", "compile-deep"):
            raise NotAvailable("not measured: the @jit rows compare with JAX and Numba")
        if w.kind in LOOP_KINDS or w.kind in PROG_KINDS:
            raise NotAvailable("an ONNX graph has no Python loops to run")
        if w.kind == "matmul-bf16":
            raise NotAvailable("no bf16 MatMul kernel on ONNX Runtime's CPU provider")
        feed = dict(inputs)
        if w.kind in ("conv2d", "conv2d-int8"):  # filter layout is prepared once, like a weight
            feed["w"] = np.ascontiguousarray(inputs["w"].transpose(3, 2, 0, 1))
        model = _onnx_model
        # the u8 operand, as a quantizer would have produced it
        if w.kind == "matmul-int8":
            feed["a"] = (inputs["a"].astype(np.int16) + 128).astype(np.uint8)
            model = _onnx_int8_matmul
        if w.kind == "conv2d-int8":
            feed["x"] = (inputs["x"].astype(np.int16) + 128).astype(np.uint8)
            model = _onnx_int8_conv
        model_bytes = model(w, inputs).SerializeToString()
        if w.kind == "compile":
            return lambda: self._session(model_bytes)
        session = self._session(model_bytes)
        return lambda: session.run(None, feed)[0]


# ---- Numba -------------------------------------------------------------------------------------


class Numba(Engine):
    """numba.njit of the same NumPy function: the cost of a cached call (`dispatch`) and the
    loop and program workloads, which are what Numba is for.

    Single-threaded (no parallel=True): on four elements there is nothing to split, and a
    loop's iterations are sequential.
    """

    name = "numba"

    def version(self) -> str | None:
        try:
            return str(_import("numba").__version__)
        except NotAvailable:
            return None

    def prepare(self, w: Workload, inputs: Arrays) -> Thunk:
        numba = _import("numba")
        if w.kind in LOOP_KINDS or w.kind in PROG_KINDS:
            fn = w.numpy_function()
            if w.kind in PROG_KINDS:  # a Numba user's version where njit needs one
                fn = programs.numba_function(w.kind, w.params)
            loop, args = numba.njit(fn), tuple(inputs.values())
            return lambda: loop(*args)
        if w.kind != "dispatch":
            raise NotAvailable("numba is measured on dispatch, the loops and the programs only")
        fn, x = numba.njit(np_tiny), inputs["x"]
        return lambda: fn(x)


ENGINES: dict[str, type[Engine]] = {
    e.name: e for e in (Tessel, NumPy, Jax, OnnxRuntime, Numba, TesselGraph)
}
