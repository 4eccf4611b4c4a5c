"""The client's allocation file access never blocks on a special file a task made (a FIFO)."""

from __future__ import annotations

import os

import pytest

from actors.client.alloc_logs import AllocFS, AllocLogs, LogNotFound, NotAFile

pytestmark = pytest.mark.timeout(20)  # a blocking open() would hang: fail instead


def test_a_fifo_in_the_alloc_dir_is_refused_without_blocking(tmp_path) -> None:
    alloc = tmp_path / "a1"
    (alloc / "alloc" / "data").mkdir(parents=True)
    (alloc / "alloc" / "logs").mkdir(parents=True)
    os.mkfifo(alloc / "alloc" / "data" / "pipe")
    os.mkfifo(alloc / "alloc" / "logs" / "t.stdout.0")
    (alloc / "alloc" / "data" / "plain.txt").write_text("hello\n")
    fs = AllocFS(str(tmp_path))
    info = fs.stat("a1", "alloc/data/pipe")  # answered from stat(2); the FIFO is never opened
    assert not info.is_dir and info.content_type == "application/octet-stream"
    with pytest.raises(NotAFile, match="not a regular file"):
        fs.open("a1", "alloc/data/pipe")
    f = fs.open("a1", "alloc/data/plain.txt")  # a regular file still reads
    try:
        assert f.read_at(0, 100) == b"hello\n"
    finally:
        f.close()
    with pytest.raises(LogNotFound, match="not a regular file"):
        AllocLogs(str(tmp_path)).read("a1", "t", "stdout")


def test_a_task_name_that_is_no_path_part_is_refused_naming_the_task_not_the_allocation(tmp_path) -> None:
    (tmp_path / "a1" / "alloc" / "logs").mkdir(parents=True)
    for task in ("../../x", "a b", ""):  # was 'Unknown allocation "a1"', for an allocation that is there
        with pytest.raises(LogNotFound, match=f"task {task!r} has no stdout log in allocation a1"):
            AllocLogs(str(tmp_path)).read("a1", task, "stdout")
