"""compat.replace_file, the registry write featctl gives Feast's file registry:
whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from featctl.agent import compat


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(compat.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    compat.replace_file(str(tmp_path / "registry.db"), b"0123456789" * 10)
    assert (tmp_path / "registry.db").read_bytes() == b"0123456789" * 10


def test_a_full_disk_leaves_the_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "registry.db"
    target.write_bytes(b"the registry it had")
    real_write = os.write
    calls = []

    def write(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, bytes(data[:4]))

    monkeypatch.setattr(compat.os, "write", write)
    with pytest.raises(OSError, match="No space left on device"):
        compat.replace_file(str(target), b"a bigger registry")
    assert target.read_bytes() == b"the registry it had"
    assert [p.name for p in tmp_path.iterdir()] == ["registry.db"]


def test_a_link_is_followed_and_the_mode_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    real.write_bytes(b"old")
    real.chmod(0o640)
    (tmp_path / "registry.db").symlink_to("real.db")
    compat.replace_file(str(tmp_path / "registry.db"), b"new")
    assert (tmp_path / "registry.db").is_symlink() and real.read_bytes() == b"new"
    assert real.stat().st_mode & 0o777 == 0o640
