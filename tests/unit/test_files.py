"""Atomic output files: a failure part-way leaves the old file (or nothing), never half a file."""

from __future__ import annotations

import os
import stat

import pytest

from ir.files import atomic_write, write_text_atomic


def test_replaces_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new contents")
    assert target.read_text() == "new contents"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(target) as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failure_on_new_file_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "new.bin") as f:
        f.write(b"x")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
