"""Tests for cnnx.utils.atomic: a file is either the old one or the complete new one."""

import os
import stat
import sys

import pytest

from cnnx.utils import atomic
from cnnx.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_text

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


def temp_leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_writes_new_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as f:
        f.write(b"hello ")
        f.write(b"world")
    assert target.read_bytes() == b"hello world"
    assert temp_leftovers(tmp_path) == []


def test_temp_file_is_hidden_next_to_target_until_exit(tmp_path):
    target = tmp_path / "model.npz"
    with atomic_write(target) as f:
        f.write(b"x")
        (tmp_name,) = temp_leftovers(tmp_path)
        assert tmp_name.startswith(".model.npz.tmp-")
        assert not target.exists()  # nothing at the final name before the block ends
    assert target.read_bytes() == b"x"
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_exception_mid_write_keeps_old_file_and_removes_temp(tmp_path, exc_type):
    target = tmp_path / "data.txt"
    target.write_bytes(b"old contents")
    with pytest.raises(exc_type), atomic_write(target) as f:
        f.write(b"new partial")
        f.flush()
        raise exc_type("stop")
    assert target.read_bytes() == b"old contents"
    assert temp_leftovers(tmp_path) == []


def test_an_interrupt_as_the_file_object_is_made_reaches_the_caller(tmp_path, monkeypatch):
    # A signal handler can raise after os.fdopen has made the file object and before it
    # is assigned: the object is dropped on the way out and closes the descriptor itself.
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    def interrupted(fd, *args, **kwargs):
        real_fdopen(fd, *args, **kwargs)  # made and dropped at once: fd is closed
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"old"
    assert temp_leftovers(tmp_path) == []


def test_exception_with_no_previous_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(ValueError, match="boom"), atomic_write(target) as f:
        f.write(b"abc")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_replace_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old")

    def failing_replace(src, dst):
        raise PermissionError(13, "denied", dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(PermissionError), atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"old"
    assert temp_leftovers(tmp_path) == []


def test_fsyncs_file_before_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with atomic_write(tmp_path / "f") as f:
        f.write(b"1")
    assert events[:2] == ["fsync", "replace"]


def test_caller_may_close_file_inside_block(tmp_path):
    target = tmp_path / "closed.bin"
    with atomic_write(target) as f:
        f.write(b"data")
        f.close()
    assert target.read_bytes() == b"data"
    assert temp_leftovers(tmp_path) == []


def test_text_mode_defaults_to_utf8(tmp_path):
    target = tmp_path / "t.txt"
    with atomic_write(target, "w", newline="\n") as f:
        f.write("손글씨 ✓\n")
    assert target.read_bytes() == "손글씨 ✓\n".encode()


def test_helpers_write_and_replace(tmp_path):
    target = tmp_path / "h.txt"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_text(target, "second é", newline="")
    assert target.read_bytes() == "second é".encode()
    atomic_write_bytes(target, memoryview(b"third"))
    assert target.read_bytes() == b"third"
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["r", "rb", "a", "ab", "r+b", "x"])
def test_rejects_non_write_modes(tmp_path, mode):
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "f", mode):
        pass
    assert list(tmp_path.iterdir()) == []


def test_rejects_encoding_for_binary_mode(tmp_path):
    with (
        pytest.raises(ValueError, match="text modes"),
        atomic_write(tmp_path / "f", "wb", encoding="utf-8"),
    ):
        pass


def test_directory_target_is_refused_without_leftovers(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError), atomic_write(tmp_path / "d"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_write(tmp_path / "no" / "f"):
        pass


def test_missing_directory_error_names_the_target_not_the_temp_file(tmp_path):
    # QA: `cnnx show curves r -o missing/c.png` said "No such file or directory:
    # 'missing/.c.png.tmp-18ffb1b2'", a name the user never gave.
    target = tmp_path / "no" / "f.png"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write_bytes(target, b"x")
    assert info.value.filename == str(target)
    assert ".tmp-" not in str(info.value)
    assert str(tmp_path / "no") in info.value.strerror


def test_long_basename_still_gets_a_temp_name(tmp_path):
    target = tmp_path / ("n" * 250)
    atomic_write_bytes(target, b"ok")
    assert target.read_bytes() == b"ok"


@posix_only
def test_keeps_permissions_of_replaced_file(tmp_path):
    target = tmp_path / "script.sh"
    target.write_bytes(b"old")
    target.chmod(0o751)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o751


@posix_only
def test_new_file_mode_follows_umask(tmp_path):
    old_umask = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


@posix_only
def test_symlink_is_kept_and_its_target_replaced(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "model.npz").write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real_dir / "model.npz")
    atomic_write_bytes(link, b"new")
    assert link.is_symlink()
    assert (real_dir / "model.npz").read_bytes() == b"new"
    assert temp_leftovers(tmp_path) == [] and temp_leftovers(real_dir) == []
