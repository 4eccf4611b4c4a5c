"""DiskAllocDirs' template files (review 13, finding 2): reading a source and writing a destination
never block the agent on a FIFO, never follow a link the task left, never write through a hard
link, and reading makes no directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from actors.client.alloc_runner import DiskAllocDirs


def _no_block(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn in a thread: it must finish within 5 s (a blocking open of a FIFO would not)."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as e:
            out["error"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(5.0)
    assert not th.is_alive(), "blocked"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


@pytest.fixture
def dirs(tmp_path: Path) -> DiskAllocDirs:
    (tmp_path / "a1" / "t" / "local").mkdir(parents=True)
    return DiskAllocDirs(str(tmp_path))


def test_a_fifo_as_template_source_is_refused_without_blocking(dirs: DiskAllocDirs, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a1/t/local/tpl")
    with pytest.raises(ValueError, match="source t/local/tpl is not a regular file"):
        _no_block(dirs.read_alloc_file, "a1", "t/local/tpl", 100)


def test_a_symlink_or_directory_as_source_is_refused(dirs: DiskAllocDirs, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("root only")
    os.symlink(tmp_path / "secret", tmp_path / "a1/t/local/tpl")
    with pytest.raises(OSError):
        dirs.read_alloc_file("a1", "t/local/tpl", 100)
    (tmp_path / "a1/t/local/d").mkdir()
    with pytest.raises((OSError, ValueError)):
        dirs.read_alloc_file("a1", "t/local/d", 100)
    (tmp_path / "a1/t/local/ok").write_text("hello")
    assert dirs.read_alloc_file("a1", "t/local/ok", 100) == b"hello"
    with pytest.raises(ValueError, match="larger than 3 bytes"):
        dirs.read_alloc_file("a1", "t/local/ok", 3)


def test_reading_a_source_makes_no_directory(dirs: DiskAllocDirs, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        dirs.read_alloc_file("a1", "t/local/no/such/dir/tpl", 100)
    assert not (tmp_path / "a1/t/local/no").exists()
    with pytest.raises(FileNotFoundError):
        dirs.read_alloc_file("a2", "t/tpl", 100)
    assert not (tmp_path / "a2").exists()


def test_a_fifo_or_symlink_at_the_old_temp_name_or_destination_is_replaced_not_used(
        dirs: DiskAllocDirs, tmp_path: Path) -> None:
    local = tmp_path / "a1/t/local"
    os.mkfifo(local / ".app.conf.tmp")  # the name the agent used to write to
    (tmp_path / "victim").write_text("keep")
    os.symlink(tmp_path / "victim", local / ".app.conf.tmp2")
    os.mkfifo(local / "app.conf")
    _no_block(dirs.write_alloc_file, "a1", "t/local/app.conf", b"new", 0o640)
    assert (local / "app.conf").read_bytes() == b"new" and not (local / "app.conf").is_symlink()
    assert oct((local / "app.conf").stat().st_mode & 0o777) == oct(0o640)
    os.unlink(local / "app.conf")
    os.symlink(tmp_path / "victim", local / "app.conf")
    _no_block(dirs.write_alloc_file, "a1", "t/local/app.conf", b"again", 0o644)
    assert (local / "app.conf").read_bytes() == b"again" and not (local / "app.conf").is_symlink()
    assert (tmp_path / "victim").read_text() == "keep"
    # no temporary file is left behind; the task's FIFO is left alone
    assert sorted(p.name for p in local.iterdir()) == [".app.conf.tmp", ".app.conf.tmp2", "app.conf"]


def test_a_hard_link_left_at_the_destination_is_not_written_through(dirs: DiskAllocDirs,
                                                                     tmp_path: Path) -> None:
    local = tmp_path / "a1/t/local"
    (tmp_path / "victim").write_text("keep")
    os.link(tmp_path / "victim", local / "app.conf")
    dirs.write_alloc_file("a1", "t/local/app.conf", b"rendered", 0o644)
    assert (local / "app.conf").read_bytes() == b"rendered"
    assert (tmp_path / "victim").read_text() == "keep"


def test_whatever_the_task_left_at_the_temp_name_is_unlinked_never_followed(
        dirs: DiskAllocDirs, tmp_path: Path) -> None:
    local = tmp_path / "a1/t/local"
    tmp = local / ".app.conf.nomad-template.tmp"
    (tmp_path / "victim").write_text("keep")
    for plant in (lambda: os.symlink(tmp_path / "victim", tmp), lambda: os.mkfifo(tmp),
                  lambda: os.link(tmp_path / "victim", tmp)):
        plant()
        _no_block(dirs.write_alloc_file, "a1", "t/local/app.conf", b"new", 0o640)
        assert (local / "app.conf").read_bytes() == b"new" and not tmp.exists() and not tmp.is_symlink()
        assert (tmp_path / "victim").read_text() == "keep"
        os.unlink(local / "app.conf")


def test_a_directory_destination_fails_cleanly_and_leaves_no_temp_file(
        dirs: DiskAllocDirs, tmp_path: Path) -> None:
    local = tmp_path / "a1/t/local"
    (local / "app.conf").mkdir()
    (local / "app.conf" / "x").write_text("")
    with pytest.raises(OSError):
        dirs.write_alloc_file("a1", "t/local/app.conf", b"x", 0o644)
    assert sorted(p.name for p in local.iterdir()) == ["app.conf"]  # the temp file removed
