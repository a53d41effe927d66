"""Ways to damage a file: its bytes, a .npy header, a .npz archive, a JSON document.

Every function is deterministic given its Generator, so a saved case damages its files the
same way again. Some damage leaves a valid file (a Fortran-ordered .npy, a flipped bit in
array data): then the reader must give the right answer for what the file now says.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

BYTES_DAMAGE = ("truncate", "flip", "flip-start", "zeros", "garbage", "empty", "append")
NPY_DAMAGE = (
    *BYTES_DAMAGE,
    *("dtype-f64", "dtype-big-endian", "dtype-object", "dtype-str", "shape-extra"),
    *("shape-wrong", "shape-zero", "shape-huge", "fortran", "scalar", "header-garbage"),
    *("missing", "directory"),
)
NPZ_DAMAGE = (
    *BYTES_DAMAGE,
    *("zip-central", "missing-key", "extra-key", "member", "pickle", "not-zip"),
    *("missing", "directory", "npy-instead"),
)
JSON_DAMAGE = (
    *BYTES_DAMAGE,
    *("json-list", "json-null", "json-empty-object", "json-mutate", "missing", "directory"),
)


def damage_bytes(data: bytes, how: str, rng: np.random.Generator) -> bytes:
    n = len(data)
    at = int(rng.integers(0, max(n, 1)))
    if how == "truncate":
        return data[:at]
    if how in ("flip", "flip-start") and n:
        at = int(rng.integers(0, min(n, 128))) if how == "flip-start" else at
        return data[:at] + bytes([data[at] ^ (1 << int(rng.integers(0, 8)))]) + data[at + 1 :]
    if how == "zeros":
        length = int(rng.integers(1, 64))
        return data[:at] + bytes(min(length, n - at)) + data[at + length :]
    if how == "garbage":
        return rng.integers(0, 256, max(n, 16), dtype=np.uint8).tobytes()
    if how == "empty":
        return b""
    if how == "append":
        return data + rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    return data


def _npy(
    array: np.ndarray, header: dict[str, Any] | None = None, data: bytes | None = None
) -> bytes:
    """A .npy file; `header` overrides fields of the one `array` would get."""
    out = io.BytesIO()
    fields = {**np.lib.format.header_data_from_array_1_0(array), **(header or {})}
    np.lib.format.write_array_header_1_0(out, fields)
    out.write(
        array.tobytes(order="F" if fields["fortran_order"] else "C") if data is None else data
    )
    return out.getvalue()


def npy_bytes(array: np.ndarray, how: str, rng: np.random.Generator) -> bytes:
    """The .npy file of `array`, damaged as `how` says (files that are not bytes excluded)."""
    good = _npy(array)
    if how in BYTES_DAMAGE:
        return damage_bytes(good, how, rng)
    shape = list(array.shape)
    headers: dict[str, dict[str, Any]] = {
        "shape-extra": {"shape": (*shape, 1)},
        "shape-wrong": {"shape": tuple(d + 1 for d in shape)},
        "shape-zero": {"shape": (0, *shape[1:])},
        "shape-huge": {"shape": (99999999999, *shape[1:])},
    }
    if how in headers:
        return _npy(array, headers[how], array.tobytes())
    if how == "dtype-f64":
        return _npy(array.astype(np.float64) if array.dtype.kind == "f" else array.astype(np.int64))
    if how == "dtype-big-endian":
        return _npy(array.astype(array.dtype.newbyteorder(">")))
    if how == "dtype-object":
        out = io.BytesIO()
        np.save(out, array.astype(object), allow_pickle=True)
        return out.getvalue()
    if how == "dtype-str":
        return _npy(array.astype(str))
    if how == "fortran":  # valid: the reader must transpose the data back
        return _npy(np.asfortranarray(array), {"fortran_order": True})
    if how == "scalar":
        return _npy(np.asarray(array.reshape(-1)[0] if array.size else 0, array.dtype))
    if how == "header-garbage":
        return good[:10] + b"{'descr': ''<f4', 'shape': ((((}" + good[60:]
    raise ValueError(f"unknown .npy damage {how!r}")


def npz_bytes(arrays: dict[str, np.ndarray], how: str, rng: np.random.Generator) -> bytes:
    def archive(items: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for key, data in items.items():
                zf.writestr(key + ".npy", data)
        return out.getvalue()

    good = {k: _npy(v) for k, v in arrays.items()}
    if how in BYTES_DAMAGE:
        return damage_bytes(archive(good), how, rng)
    first = next(iter(arrays))
    if how == "zip-central":  # the central directory sits at the end of the archive
        data = archive(good)
        at = len(data) - int(rng.integers(1, min(len(data), 60)))
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    if how == "missing-key":
        return archive({k + "_renamed": v for k, v in good.items()})
    if how == "extra-key":
        return archive({**good, "unknown": _npy(np.zeros(3, np.float32))})
    if how == "member":
        key = first
        kinds = [h for h in NPY_DAMAGE if h not in ("missing", "directory", "dtype-object")]
        return archive({**good, key: npy_bytes(arrays[key], str(rng.choice(kinds)), rng)})
    if how == "pickle":
        out = io.BytesIO()
        np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return archive({**good, first: out.getvalue()})
    if how == "not-zip":
        return b"PK\x03\x04" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    if how == "npy-instead":
        return good[first]
    raise ValueError(f"unknown .npz damage {how!r}")


def mutate_json(value: Any, rng: np.random.Generator) -> tuple[Any, str]:
    """`value` with one randomly chosen field changed: a number nudged or made huge or negative,
    a string emptied or made a number, a list shortened, a key removed, a type swapped."""
    paths: list[tuple[Any, ...]] = []

    def walk(v: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, (*path, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, (*path, i))

    walk(value, ())
    path = paths[int(rng.integers(0, len(paths)))]
    parent: Any = None
    target: Any = value
    for step in path:
        parent, target = target, target[step]
    new = _mutated_leaf(target, rng)
    if parent is None:  # the document itself: "deleting" it leaves null
        new = None if new is _DELETE else new
        return new, f"document -> {str(new)[:40]}"
    parent[path[-1]] = new
    if new is _DELETE:
        del parent[path[-1]]
        return value, f"removed {'/'.join(map(str, path))}"
    return value, f"{'/'.join(map(str, path))}: {str(target)[:30]} -> {str(new)[:30]}"


_DELETE = object()


def _mutated_leaf(v: Any, rng: np.random.Generator) -> Any:
    choice = int(rng.integers(0, 4))
    if isinstance(v, bool):
        return [not v, 0, None, _DELETE][choice]
    if isinstance(v, int):
        return [v + 1, -1 - v, v * 1000 + 7, "7"][choice]
    if isinstance(v, float):
        return [v * 2, -v, 1e308, None][choice]
    if isinstance(v, str):
        return [v + "x", "", 123, _DELETE][choice]
    if isinstance(v, list):
        return [v[:-1], v + v[-1:], [], {}][choice]
    if isinstance(v, dict):
        return [{}, [], None, _DELETE][choice]
    return [0, "", [], _DELETE][choice]


def json_bytes(document: Any, how: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """A JSON file's new bytes and what changed."""
    good = json.dumps(document).encode()
    if how in BYTES_DAMAGE:
        return damage_bytes(good, how, rng), how
    if how == "json-list":
        return b"[]", how
    if how == "json-null":
        return b"null", how
    if how == "json-empty-object":
        return b"{}", how
    if how == "json-mutate":
        changed, what = mutate_json(json.loads(good), rng)
        return json.dumps(changed).encode(), what
    raise ValueError(f"unknown JSON damage {how!r}")


def replace_file(path: Path, data: bytes | None) -> None:
    """Write `data` to `path`; None removes it; b"<dir>" puts an empty folder in its place."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if data == b"<dir>":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)


def special_file(how: str) -> bytes | str | None:
    """The damage that is not about bytes: "missing" (None), "directory" (b"<dir>")."""
    return {"missing": None, "directory": b"<dir>"}.get(how, "bytes")
