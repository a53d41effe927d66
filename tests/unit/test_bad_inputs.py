"""Broken files and impossible sizes (issue 16, items 6 and 7): a located error or `error: ...`,
exit status 1, never a traceback.

  - a weights .npz/.npy that is empty, truncated, bit-flipped or not NumPy at all;
  - `--input` arrays likewise, and `--seed -1`;
  - types too large for any machine, and random inputs too large for this one.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from compiler.cli import main
from ir.arrayfiles import ArrayFileError, NpzArchive, read_array_file, read_npy
from ir.builder import parameter
from ir.diagnostics import GraphTypeError, InputError, TesselError
from ir.dtypes import DType
from ir.graph import Function
from ir.parser import parse_file, parse_module
from ir.types import MAX_BYTES, TensorType, format_bytes
from ir.verify import verify_function
from runtime.inputs import random_inputs

W = np.arange(6, dtype=np.float32).reshape(2, 3)


def _npz(compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, w=W, b=np.ones(3, np.float32))
    return buf.getvalue()


def _npy(array: np.ndarray = W) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0xFF
    return bytes(out)


def _npy_header(header: str) -> bytes:
    """A version 1.0 .npy header with `header` as its dict text (no data after it)."""
    text = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


NPZ, NPZC, NPY = _npz(), _npz(True), _npy()
_HUGE_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (39223372036854775807, 3), }"

# name -> (file suffix, contents, the message after "cannot read weights file 'w.npz': ")
VARIANTS: dict[str, tuple[str, bytes, str]] = {
    "npz-empty": (".npz", b"", "the file is empty"),
    "npy-empty": (".npy", b"", "the file is empty"),
    "npz-first-byte": (".npz", NPZ[:1], "it is not an .npz archive: it does not start with"),
    "npz-truncated-header": (".npz", NPZ[:30], "the .npz archive is truncated or damaged"),
    "npz-truncated-half": (".npz", NPZ[: len(NPZ) // 2], "the .npz archive is truncated"),
    "npz-truncated-last-byte": (".npz", NPZ[:-1], "the .npz archive is truncated or damaged"),
    "npz-compressed-truncated": (".npz", NPZC[:100], "the .npz archive is truncated"),
    "npz-flip-magic": (".npz", _flip(NPZ, 0), "it is not an .npz archive"),
    "npz-flip-member-name": (".npz", _flip(NPZ, 30), "its array 'w' is damaged"),
    "npz-flip-data-crc": (".npz", _flip(NPZ, 100), "its array 'w' is damaged (Bad CRC-32"),
    "npz-flip-central-dir": (".npz", _flip(NPZ, len(NPZ) - 10), "the .npz archive is"),
    "npz-flip-compressed": (".npz", _flip(NPZC, 64), "its array 'w' is damaged"),
    "npz-holds-npy": (".npz", NPY, "it is a single .npy array, not an .npz archive"),
    "npz-is-gzip": (
        ".npz",
        b"\x1f\x8b\x08\x00" + bytes(40),
        "it is not an .npz archive: it looks like gzip",
    ),
    "npy-truncated-magic": (".npy", NPY[:4], "it is truncated: 4 bytes, too few for a .npy"),
    "npy-truncated-header": (".npy", NPY[:60], "it is truncated: 60 bytes, too few for its .npy"),
    "npy-truncated-data": (".npy", NPY[:-1], "it is truncated: its header declares f32[2,3]"),
    "npy-flip-header": (".npy", _flip(NPY, 30), "it has a damaged .npy header"),
    "npy-holds-npz": (".npy", NPZ, "it is an .npz archive, not an .npy array"),
    "npy-text": (".npy", b"1 2 3 4 5 6\n", "it is not a .npy array: it does not start with"),
    "npy-huge-shape": (
        ".npy",
        _npy_header(_HUGE_HEADER),
        "it is truncated: its header declares f32[39223372",
    ),
    "npy-object": (
        ".npy",
        _npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"),
        "it holds Python objects, which tessel does not load",
    ),
    "npy-version-9": (
        ".npy",
        b"\x93NUMPY\x09\x00" + NPY[8:],
        "it is a .npy file of format version 9.0",
    ),
}


def _graph(tmp_path: Path, suffix: str) -> Path:
    key = '["w"]' if suffix == ".npz" else ""
    graph = tmp_path / "g.graph"
    graph.write_text(
        "func @main(%x: f32[2,3]) -> f32[2,3] {\n"
        f'  %w = constant "w{suffix}"{key} : f32[2,3]\n'
        "  %y = add(%x, %w)\n"
        "  return %y\n"
        "}\n"
    )
    return graph


@pytest.mark.parametrize("name", list(VARIANTS))
def test_corrupt_weights_are_a_located_error(name, tmp_path, capsys):
    suffix, data, message = VARIANTS[name]
    (tmp_path / f"w{suffix}").write_bytes(data)
    graph = _graph(tmp_path, suffix)
    with pytest.raises(GraphTypeError) as info:
        parse_file(graph)
    err = info.value
    assert err.message.startswith(f"cannot read weights file 'w{suffix}': {message}")
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) == (2, 17)  # the string naming the file
    for verb in ("check", "run"):
        assert main([verb, str(graph)]) == 1
        out, stderr = capsys.readouterr()
        assert stderr.startswith(f"{graph}:2:17: error: cannot read weights file 'w{suffix}'")
        assert stderr.splitlines()[2] == "  " + " " * 16 + "^"
        assert out == ""


@pytest.mark.parametrize("base", ["npz", "npz-compressed", "npy"])
def test_every_truncation_and_byte_flip_is_an_array_file_error(base, tmp_path):
    """Exhaustively: each prefix of a small file, and each byte flipped in turn, reads back
    as the array or fails with ArrayFileError; nothing else escapes."""
    data = {"npz": NPZ, "npz-compressed": NPZC, "npy": NPY}[base]
    path = tmp_path / ("w.npy" if base == "npy" else "w.npz")
    damaged = [data[:n] for n in range(len(data))]
    damaged += [_flip(data, i) for i in range(len(data))]
    messages = []
    for contents in damaged:
        path.write_bytes(contents)
        try:
            if base == "npy":
                read_npy(path)
            else:
                with NpzArchive(path) as archive:
                    for key in archive.files:
                        archive.read(key)
        except ArrayFileError as e:
            messages.append(str(e))
    assert len(messages) > len(data)  # every truncation, and most flips, are refused
    assert all(messages)


def test_npy_reader_matches_numpy(tmp_path):
    arrays = [
        W,
        np.asfortranarray(W),
        np.array(3.5, np.float64),
        np.zeros((0, 4), np.int8),
        np.arange(4, dtype=">i4"),
        np.array([1.5, -2.0], ml_dtypes.bfloat16),
    ]
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"a{i}.npy", a)
        got = read_npy(tmp_path / f"a{i}.npy")
        want = np.load(tmp_path / f"a{i}.npy")
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        assert got.flags.writeable
    np.savez(tmp_path / "all.npz", **{f"a{i}": a for i, a in enumerate(arrays[:4])})
    both = read_array_file(tmp_path / "all.npz")
    assert isinstance(both, dict)
    assert [k for k in both] == ["a0", "a1", "a2", "a3"]
    assert both["a1"].tolist() == W.tolist()


def test_empty_zip_is_an_archive_of_no_arrays(tmp_path):
    with zipfile.ZipFile(tmp_path / "none.npz", "w"):
        pass
    assert read_array_file(tmp_path / "none.npz") == {}


# --- --input and --seed ---------------------------------------------------------------------


SMALL = "func @main(%x: f32[2,3]) -> f32[2,3] {\n  %y = neg(%x)\n  return %y\n}\n"


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.graph"
    path.write_text(SMALL)
    return path


@pytest.mark.parametrize(
    ("spec", "contents", "message"),
    [
        ("x={}", b"", "error: cannot read input 'x' from {}: the file is empty"),
        ("{}", NPZ[:200], "error: cannot read inputs from {}: the .npz archive is truncated"),
        ("{}", _flip(NPZ, 100), "error: cannot read inputs from {}: its array 'w' is damaged"),
        ("x={}", NPY[:-4], "error: cannot read input 'x' from {}: it is truncated: its header"),
        ("x={}", b"hello\n", "error: cannot read input 'x' from {}: it is not a .npy array"),
    ],
    ids=["empty-npy", "truncated-npz", "bit-flipped-npz", "truncated-npy", "text"],
)
def test_broken_input_files(small, tmp_path, capsys, spec, contents, message):
    path = tmp_path / ("in.npz" if spec == "{}" else "in.npy")
    path.write_bytes(contents)
    assert main(["run", str(small), "--input", spec.format(path)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(message.format(path))
    assert out == ""


def test_negative_seed(small, capsys):
    assert main(["run", str(small), "--seed", "-1"]) == 1
    out, err = capsys.readouterr()
    assert err == "error: --seed must be a non-negative integer, got -1\n"
    assert out == ""
    fn = parse_file(small).entry_function
    with pytest.raises(InputError, match="non-negative integer, got -1"):
        random_inputs(fn, -1)


@pytest.mark.parametrize(
    ("spec", "contents", "message"),
    [
        ("{}", b"", "cannot read it (the file is empty)"),
        ("{}", None, "cannot read it"),
        ("{}", "npy", "expected an .npz of inputs by parameter name"),
        ("random:x", None, "expected random:N with N a whole number"),
    ],
    ids=["empty", "truncated", "npy-not-npz", "random-not-a-number"],
)
def test_broken_calibration_data(small, tmp_path, capsys, spec, contents, message):
    path = tmp_path / "calib.npz"
    if spec == "{}":
        data = {None: _npz()[:40], "npy": _npy()}.get(contents, contents)
        path.write_bytes(data)  # type: ignore[arg-type]
    out_file = tmp_path / "q.graph"
    code = main(["quantize", str(small), "-o", str(out_file), "--calibration", spec.format(path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: --calibration ")
    assert message in err
    assert "Traceback" not in err
    assert not out_file.exists()


# --- sizes ------------------------------------------------------------------------------------


def _type_error(tmp_path: Path, text: str) -> TesselError:
    with pytest.raises(TesselError) as info:
        parse_module(text, "t.graph", tmp_path)
    return info.value


def test_dimension_beyond_int64_is_located(tmp_path, capsys):
    text = (
        "func @main(%x: f32[2,3]) -> f32[2,3] {\n"
        "  %c = constant 1.0 : f32[39223372036854775807,3]\n"
        "  return %x\n"
        "}\n"
    )
    err = _type_error(tmp_path, text)
    assert err.format().splitlines() == [
        "t.graph:2:27: error: dimension 39223372036854775807 is too large (the limit is 2**62)",
        "    %c = constant 1.0 : f32[39223372036854775807,3]",
        "  " + " " * 26 + "^",
    ]
    graph = tmp_path / "huge.graph"
    graph.write_text(text)
    assert main(["check", str(graph)]) == 1
    assert capsys.readouterr().err.startswith(f"{graph}:2:27: error: dimension 3922")


def test_type_larger_than_any_memory_is_located(tmp_path):
    err = _type_error(
        tmp_path,
        "func @main(%x: f32[2000000000,2000000000,3]) -> f32[2] {\n"
        "  %y = reduce(%x) {kind = sum, axes = [0, 1]}\n"
        "  return %y\n"
        "}\n",
    )
    assert err.message == (
        "f32[2000000000,2000000000,3] is 41.6 EiB, more than any machine's memory "
        "(the limit is 2**62 bytes)"
    )
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) == (1, 16)


def test_empty_tensor_with_a_huge_dimension_is_refused(tmp_path):
    err = _type_error(
        tmp_path, "func @main(%x: f32[0,99999999999999999999]) -> f32[0,99999999999999999999] {\n"
        "  return %x\n}\n",
    )  # fmt: skip
    assert err.message == "dimension 99999999999999999999 is too large (the limit is 2**62)"
    assert err.loc is not None
    assert err.loc.col == 22


def test_op_result_too_large_is_located(tmp_path):
    err = _type_error(
        tmp_path,
        "func @main(%x: f32[2]) -> f32[2] {\n"
        "  %c = iota() {shape = [4000000000000000000, 3], dim = 0, dtype = f32}\n"
        "  return %x\n"
        "}\n",
    )
    assert err.message.startswith("iota: the result is too large: f32[4000000000000000000,3]")
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) == (2, 8)


def test_splat_constant_larger_than_memory_is_located(tmp_path):
    err = _type_error(
        tmp_path,
        "func @main(%x: f32[2]) -> f32[2] {\n"
        "  %c = constant 1.0 : f32[1000000000000,4]\n"
        "  return %x\n"
        "}\n",
    )
    assert err.message.startswith(
        "a constant of f32[1000000000000,4] is 14.6 TiB, more than this machine's memory"
    )
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) == (2, 17)


def test_splat_constant_the_process_cannot_allocate_is_located(tmp_path):
    """Within the machine's memory but not the process's (fuzz --kind parser, seed 20, case
    1674, under the fuzzer's address-space limit): a located error, not a traceback."""
    graph = tmp_path / "big.graph"
    graph.write_text(
        "func @main() -> i8[1000000000] {\n  %c = constant -128 : i8[1000000000]\n  return %c\n}\n"
    )
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (5 << 29, 5 << 29))"
    code = (
        f"{limit}\nfrom compiler.cli import main\nraise SystemExit(main(['check', {str(graph)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        f"{graph}:2:17: error: a constant of i8[1000000000] is 953.7 MiB, more than this process"
        in done.stderr
    )


def test_huge_parameter_checks_but_random_inputs_say_it_is_too_large(tmp_path, capsys):
    graph = tmp_path / "big.graph"
    graph.write_text(
        "func @main(%x: f32[100000000000,3]) -> f32[100000000000,3] {\n"
        "  %y = neg(%x)\n"
        "  return %y\n"
        "}\n"
    )
    assert main(["check", str(graph)]) == 0
    capsys.readouterr()
    assert main(["run", str(graph)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(
        "error: parameter %x: f32[100000000000,3] is 1.1 TiB, too large to make random values for"
    )
    assert out == ""


def test_random_inputs_when_the_os_does_not_say_how_much_memory(monkeypatch):
    """Without a memory figure the allocation itself fails ("array is too big"): same error."""
    monkeypatch.setattr("runtime.inputs.physical_memory", lambda: None)

    fn = Function("main", (parameter("x", TensorType((2**61,), DType.F32)),), (), ())
    with pytest.raises(
        InputError, match=r"^error: parameter %x: f32\[2305843009213693952\] is 8\.0 EiB"
    ):
        random_inputs(fn)


def test_size_limit_and_byte_formatting():
    assert TensorType((2**60,), DType.F32).size_problem() is None
    assert TensorType((2**60 + 1,), DType.F32).size_problem() is not None
    assert TensorType((MAX_BYTES + 1, 0), DType.F32).size_problem() == (
        f"dimension {MAX_BYTES + 1} is too large (the limit is 2**62)"
    )
    assert [format_bytes(n) for n in (1, 24, 1536, 3 * 2**40)] == [
        "1 byte",
        "24 bytes",
        "1.5 KiB",
        "3.0 TiB",
    ]


def test_verifier_refuses_a_parameter_no_machine_could_hold():
    x = parameter("x", TensorType((2**40, 2**40), DType.F32))
    fn = Function("main", (x,), (), (x,))
    with pytest.raises(TesselError, match=r"f32\[1099511627776,1099511627776\] is .* than any"):
        verify_function(fn)


@pytest.mark.parametrize("depth", [3, 100_000])
def test_a_literal_nested_deeper_than_its_type_is_located(tmp_path, depth):
    """Found by the fuzzers: a hundred thousand brackets exhausted Python's recursion limit."""
    literal = "[" * depth + "1.0" + "]" * depth
    err = _type_error(
        tmp_path,
        f"func @main() -> f32[1] {{\n  %c = constant {literal} : f32[1]\n  return %c\n}}\n",
    )
    assert isinstance(err, GraphTypeError)
    assert err.loc is not None
    assert (err.loc.line, err.loc.col) == (2, 19)  # the third "[": a list in a list of f32[1]
    assert "nested deeper than the rank of its type f32[1]" in err.message
