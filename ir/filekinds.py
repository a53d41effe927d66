"""What a file seems to be, from its first bytes: for the message when a verb is handed a file it
does not take (`tessel run model.onnx`, `tessel check weights.npz`), which then says what the
file looks like and which command takes it.

The guess is from magic numbers only (the file's name is a tie-breaker for ONNX): it is never
used to decide how to read a file, only to explain why it cannot be read as a graph.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 4096  # how much of a file the guess looks at

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive

_ARRAYS_HINT = (
    "arrays are weights, named by a constant in a graph file "
    '(%w = constant "FILE"["KEY"] : f32[...]), or inputs: tessel run GRAPH --input ...'
)
_ONNX_HINT = (
    "tessel cannot import ONNX models yet; write the model as a graph file "
    "(docs/graph-language.md), with its weights in an .npz"
)


@dataclass(frozen=True, slots=True)
class FileKind:
    """A guess at a file's format: a short id, how to say it, and what takes such a file."""

    id: str  # "graph-text", "npy", "npz", "zip", "gzip", "elf", "onnx", "aot-json", ...
    description: str  # "a NumPy .npz archive": follows "it looks like"
    hint: str = ""  # which tessel command takes it, or what to do instead


# (magic bytes at offset 0, id, description, hint)
_MAGICS: list[tuple[bytes, str, str, str]] = [
    (NPY_MAGIC, "npy", "a NumPy .npy array", _ARRAYS_HINT),
    (b"\x1f\x8b", "gzip", "gzip-compressed data", "decompress it first (gunzip FILE)"),
    (b"BZh", "bzip2", "bzip2-compressed data", "decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "xz", "xz-compressed data", "decompress it first (unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd-compressed data", "decompress it first (unzstd FILE)"),
    (
        b"\x7fELF",
        "elf",
        "an ELF binary (a program or shared library)",
        "a library built by `tessel compile` runs with `tessel run libNAME.so` "
        "(its NAME.json beside it)",
    ),
    (b"\xcf\xfa\xed\xfe", "macho", "a Mach-O binary", ""),
    (b"MZ", "pe", "a Windows executable or DLL", ""),
    (b"\x00asm", "wasm", "a WebAssembly module", ""),
    (b"\x89PNG\r\n\x1a\n", "png", "a PNG image", ""),
    (b"\xff\xd8\xff", "jpeg", "a JPEG image", ""),
    (b"GIF8", "gif", "a GIF image", ""),
    (b"%PDF", "pdf", "a PDF document", ""),
    (b"\x89HDF\r\n\x1a\n", "hdf5", "an HDF5 file (a Keras .h5 model?)", ""),
]


def sniff(path: str | os.PathLike[str]) -> FileKind:
    """A guess at what the file at `path` is; OSError if it cannot be opened."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    return sniff_bytes(head, Path(path).suffix)


def sniff_bytes(head: bytes, suffix: str = "") -> FileKind:
    """A guess from a file's first bytes (`HEAD_BYTES` of them or fewer) and its suffix."""
    if not head:
        return FileKind("empty", "an empty file")
    for magic, kind, description, hint in _MAGICS:
        if head.startswith(magic):
            if suffix == ".onnx":
                hint = _ONNX_HINT
            return FileKind(kind, description, hint)
    binary = _binary_kind(head)
    if binary is not None:
        return binary
    text = _text(head)
    if text is None:
        if suffix == ".onnx":
            return FileKind("onnx", "an ONNX model (protobuf)", _ONNX_HINT)
        return FileKind("binary", "binary data, not text", "")
    if text.lstrip().startswith(("{", "[")):
        return _json_kind(text)
    return FileKind("text", "text")


def _text(head: bytes) -> str | None:
    """`head` as text; None if it holds control characters or is mostly not UTF-8 (a stray
    Latin-1 byte in a comment still leaves a text file)."""
    text = head.decode(errors="replace")
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    if text.count("\N{REPLACEMENT CHARACTER}") * 20 > len(text):
        return None
    return text


def _binary_kind(head: bytes) -> FileKind | None:
    """Formats recognized by more than a magic prefix."""
    if head.startswith(ZIP_MAGICS):
        return _zip_kind(head)
    if head[4:8] == b"TFL3":
        return FileKind("tflite", "a TensorFlow Lite model", "")
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return FileKind("pickle", "a Python pickle", "tessel does not load pickles")
    if _safetensors(head):
        return FileKind("safetensors", "a safetensors file", "")
    if _onnx_like(head):
        return FileKind("onnx", "an ONNX model (protobuf)", _ONNX_HINT)
    return None


_PYTORCH_NAMES = ("data.pkl", "/version", "/byteorder")


def _zip_kind(head: bytes) -> FileKind:
    """An .npz is a zip of .npy members: the first member's name, in its local header, says."""
    if head.startswith(b"PK\x03\x04") and len(head) >= 30:
        (name_len,) = struct.unpack_from("<H", head, 26)
        name = head[30 : 30 + name_len].decode("utf-8", "replace")
        if name.endswith(".npy"):
            return FileKind("npz", "a NumPy .npz archive", _ARRAYS_HINT)
        if (
            name.endswith("data.pkl")
            or "/data/" in name
            or name.endswith(("/version", "/byteorder"))
        ):
            return FileKind("pytorch", "a PyTorch checkpoint (a zip of pickles)", "")
    elif head.startswith(b"PK\x05\x06"):
        return FileKind("npz", "an empty zip archive (an .npz of no arrays?)", _ARRAYS_HINT)
    return FileKind("zip", "a zip archive", "")


def _onnx_like(head: bytes) -> bool:
    """A protobuf ModelProto as exporters write it: ir_version (field 1, a small varint) first,
    then producer_name, graph or opset_import."""
    return (
        len(head) >= 3
        and head[0] == 0x08
        and head[1] < 0x80
        and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)
    )


def _safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack_from("<Q", head, 0)
    return 0 < n < 100_000_000 and head[8:10] == b'{"'


def _json_kind(text: str) -> FileKind:
    """JSON, and which of tessel's own JSON files it is, by its "format" key."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # longer than the head, or not JSON after all
        data = None
    fmt = _format_key(data, text)
    if fmt.startswith("tessel-tpu"):
        return FileKind(
            "tpu-json",
            "a compiled TPU program (from `tessel compile --target tpu`)",
            "run it with `tessel tpu-sim FILE`",
        )
    if fmt.startswith("tessel-aot"):
        return FileKind(
            "aot-json",
            "a compiled library's description (from `tessel compile`)",
            "run it with `tessel run NAME.json` (or libNAME.so)",
        )
    return FileKind("json", "JSON data", "")


def _format_key(data: object, text: str) -> str:
    if isinstance(data, dict):
        return str(data.get("format", ""))
    # a head cut short: look for the key near the start
    at = text.find('"format"')
    if at < 0:
        return ""
    rest = text[at + len('"format"') :].lstrip().removeprefix(":").lstrip()
    return rest[1:].split('"', 1)[0] if rest.startswith('"') else ""
