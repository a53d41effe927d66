"""Outputs of several files, all or nothing: staged in a temporary folder beside the
destination, moved into place only when every file was written (`tessel compile`, for the CPU
and the TPU alike)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from codegen.aot import scratch_folder
from ir.diagnostics import TesselError
from ir.files import umask


def write_atomically(out: Path, write: Callable[[Path], list[str]]) -> int:
    """Have `write` fill a staging folder beside `out`, then move its files into `out`: on any
    error nothing is left behind (not even folders made for the purpose)."""
    if out.exists() and not out.is_dir():
        raise TesselError(f"-o {out}: exists and is not a directory")
    created = _first_missing(out.parent)  # made for the staging folder: removed on error
    try:
        staging = scratch_folder(out.parent if not out.exists() else out)
    except OSError as e:
        raise TesselError(f"-o {out}: cannot write there ({e.strerror}: {e.filename})") from None
    done = False
    try:
        written = write(staging)
        _commit(staging, out, written)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and created is not None:
            shutil.rmtree(created, ignore_errors=True)
    for f in written:
        print(f"wrote {out / f}", file=sys.stderr)
    return 0


def _commit(staging: Path, out: Path, files: list[str]) -> None:
    """Move the finished files into `out`: one rename of the whole folder when it is new."""
    if not out.exists():
        staging.chmod(0o777 & ~umask())  # mkdtemp made it private
        os.replace(staging, out)
        staging.mkdir()  # the caller removes it again
        return
    if not out.is_dir():
        raise TesselError(f"-o {out}: exists and is not a directory")
    for f in files:
        os.replace(staging / f, out / f)


def _first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet, if any."""
    missing = None
    for p in [folder, *folder.parents]:
        if p.exists():
            break
        missing = p
    return missing
