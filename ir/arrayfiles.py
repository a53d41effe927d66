"""Reading the .npy and .npz files a user names: weights in a graph file, `--input` arrays.

A file can be broken in many ways (empty, truncated, bit-flipped, not NumPy at all, a header
that claims more data than follows); each is an ArrayFileError whose message says in words what
is wrong. No zipfile, zlib or EOF error escapes, nothing pickled is loaded, and nothing larger
than the file itself is allocated however large a damaged header says the array is.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from ir.dtypes import DType
from ir.filekinds import NPY_MAGIC, ZIP_MAGICS, sniff_bytes
from ir.types import format_bytes

# what a damaged file can make numpy's header parser or the zip reader raise
_DAMAGED = (
    EOFError,
    ValueError,
    SyntaxError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    struct.error,
    tokenize.TokenError,  # numpy reads the header with the tokenizer
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a compression method that a flipped bit made up
    RuntimeError,  # "file is encrypted"
)
_CHUNK = 1 << 24


class ArrayFileError(ValueError):
    """A .npy or .npz file that cannot be read; the message says why, without the file name."""


def describe_array(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    """`f32[2,3]` for tessel's dtypes, numpy's name for the others."""
    try:
        name = DType.from_numpy(dtype).value
    except ValueError:
        name = str(dtype)
    return f"{name}[{','.join(map(str, shape))}]"


def read_npy(path: str | os.PathLike[str]) -> np.ndarray[Any, Any]:
    """The array in the .npy file at `path`."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(len(NPY_MAGIC))
        if head.startswith(ZIP_MAGICS):
            raise ArrayFileError("it is an .npz archive, not an .npy array: name one of its arrays")
        f.seek(0)
        return _read_npy(f, size, "it")


def read_array_file(
    path: str | os.PathLike[str],
) -> np.ndarray[Any, Any] | dict[str, np.ndarray[Any, Any]]:
    """An .npy file's array, or all of an .npz archive's arrays by key (decided by content)."""
    with _open(path) as f:
        head = f.read(len(NPY_MAGIC))
    if head.startswith(ZIP_MAGICS):
        with NpzArchive(path) as archive:
            return {key: archive.read(key) for key in archive.files}
    return read_npy(path)


class NpzArchive:
    """An open .npz archive; `read(key)` reads one array. Use it as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with _open(path) as f:
            head = f.read(4096)
        if not head.startswith(ZIP_MAGICS):
            if head.startswith(NPY_MAGIC):
                raise ArrayFileError("it is a single .npy array, not an .npz archive: drop the key")
            raise _not_numpy(head, self.path.suffix, "an .npz archive")
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = self._zip.infolist()
        except OSError as e:
            raise ArrayFileError(f"cannot read it: {e.strerror or e}") from None
        except _DAMAGED as e:
            raise ArrayFileError(f"the .npz archive is truncated or damaged ({_why(e)})") from None
        self._members = {m.filename.removesuffix(".npy"): m for m in members}

    @property
    def files(self) -> list[str]:
        return list(self._members)

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """The array `key` (KeyError if there is none such)."""
        info = self._members[key]
        what = f"its array '{key}'"
        try:
            with self._zip.open(info) as member:
                arr = _read_npy(member, info.file_size, what)
                while member.read(_CHUNK):  # to the end, where the zip module checks the CRC
                    pass
                return arr
        except ArrayFileError:
            raise
        except OSError as e:  # a damaged offset: a seek to nowhere
            raise ArrayFileError(f"{what} is damaged ({e.strerror or e})") from None
        except _DAMAGED as e:
            raise ArrayFileError(f"{what} is damaged ({_why(e)})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as e:
        raise ArrayFileError(f"cannot read it: {e.strerror or e}") from None


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _not_numpy(head: bytes, suffix: str, wanted: str) -> ArrayFileError:
    if not head:
        return ArrayFileError("the file is empty")
    kind = sniff_bytes(head, suffix)
    if kind.id in ("text", "binary", "json", "onnx"):
        magic = "a zip archive's" if suffix == ".npz" else "NumPy's"
        return ArrayFileError(
            f"it is not {wanted}: it does not start with {magic} magic bytes "
            "(damaged, or another kind of file)"
        )
    return ArrayFileError(f"it is not {wanted}: it looks like {kind.description}")


def _bytes(n: int) -> str:
    """Exact up to a MiB, where the count still means something to a person."""
    if n >= 2**20:
        return format_bytes(n)
    return "1 byte" if n == 1 else f"{n} bytes"


def _read_npy(f: IO[bytes], size: int, what: str) -> np.ndarray[Any, Any]:
    """The array of a .npy stream of `size` bytes in all (a file, or a member of a zip)."""
    shape, fortran, dtype = _read_header(f, size, what)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    left = size - f.tell()
    if nbytes > left:
        raise ArrayFileError(
            f"{what} is truncated: its header declares {describe_array(shape, dtype)} "
            f"({_bytes(nbytes)} of data), but only {_bytes(max(left, 0))} follow"
        )
    try:
        flat = np.empty(count, dtype)
    except (MemoryError, ValueError):
        raise ArrayFileError(
            f"{what} ({describe_array(shape, dtype)}, {_bytes(nbytes)}) does not fit in memory"
        ) from None
    if nbytes:
        _read_into(f, flat.view(np.uint8), what)
    if fortran:
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


def _read_header(f: IO[bytes], size: int, what: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype from a .npy header, checked for sense."""
    head = f.read(len(NPY_MAGIC) + 2)
    if len(head) < len(NPY_MAGIC) + 2 or not head.startswith(NPY_MAGIC):
        if head and NPY_MAGIC.startswith(head[: len(NPY_MAGIC)]):
            raise ArrayFileError(f"{what} is truncated: {_bytes(size)}, too few for a .npy header")
        if what == "it":
            raise _not_numpy(head, ".npy", "a .npy array")
        raise ArrayFileError(f"{what} is not a .npy array (no NumPy magic bytes)")
    version = (head[-2], head[-1])
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise ArrayFileError(
            f"{what} is a .npy file of format version {version[0]}.{version[1]}, "
            "which tessel does not read (it writes 1.0)"
        )
    width = 2 if version == (1, 0) else 4
    length = f.read(width)
    header_len = int.from_bytes(length, "little") if len(length) == width else -1
    header = f.read(header_len) if header_len >= 0 else b""
    if header_len < 0 or len(header) < header_len:
        raise ArrayFileError(f"{what} is truncated: {_bytes(size)}, too few for its .npy header")
    try:
        shape, fortran, dtype = readers[version](io.BytesIO(length + header))
    except _DAMAGED:
        raise ArrayFileError(f"{what} has a damaged .npy header") from None
    if any(d < 0 for d in shape):
        raise ArrayFileError(f"{what} has a damaged .npy header (a negative dimension)")
    if dtype.hasobject:
        raise ArrayFileError(f"{what} holds Python objects, which tessel does not load")
    return tuple(shape), bool(fortran), dtype


def _read_into(f: IO[bytes], buf: np.ndarray[Any, Any], what: str) -> None:
    """Fill the bytes of `buf` from `f`, a chunk at a time (no second copy of the data)."""
    view = memoryview(buf.data).cast("B")
    nbytes = len(view)
    done = 0
    while done < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - done))
        if not chunk:
            raise ArrayFileError(f"{what} is truncated: {done} of {_bytes(nbytes)} of data")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
