"""A task's log rotator (actors.client.logmon): rotation by size, pruning by count, as Nomad's logmon."""

from __future__ import annotations

import os
import subprocess
import sys

from actors.client import logmon
from actors.client.logmon import Rotator, indexes


def files(d) -> dict[int, bytes]:
    return {i: (d / f"web.stdout.{i}").read_bytes() for i in indexes(str(d), "web.stdout")}


def test_a_file_full_at_max_size_moves_output_to_the_next_index(tmp_path):
    rot = Rotator(str(tmp_path), "web.stdout", 10, 8)
    for line in (b"abc\n", b"defg\n", b"hi\n"):
        rot.write(line)
    rot.close()
    assert files(tmp_path) == {0: b"abc\ndefg", 1: b"\nhi\n"}


def test_only_the_newest_max_files_are_kept(tmp_path):
    rot = Rotator(str(tmp_path), "web.stdout", 3, 4)
    for i in range(10):
        rot.write(b"%03d\n" % i)
    rot.close()
    assert files(tmp_path) == {7: b"007\n", 8: b"008\n", 9: b"009\n"}


def test_partial_lines_are_joined_in_order_across_writes_and_files(tmp_path):
    rot = Rotator(str(tmp_path), "web.stdout", 10, 5)
    for part in (b"par", b"tial li", b"ne\nnext", b" one\n"):
        rot.write(part)
    rot.close()
    got = files(tmp_path)
    assert all(len(v) <= 5 for v in got.values()) and b"".join(got.values()) == b"partial line\nnext one\n"


def test_a_burst_larger_than_a_file_is_split_over_several_and_bounded(tmp_path):
    rot = Rotator(str(tmp_path), "web.stdout", 4, 1000)
    burst = bytes(range(256)) * 20  # 5120 bytes in one write
    rot.write(burst)
    rot.close()
    got = files(tmp_path)
    assert sorted(got) == [2, 3, 4, 5] and b"".join(got.values()) == burst[-len(b"".join(got.values())):]
    assert [len(v) for v in got.values()] == [1000, 1000, 1000, 120]


def test_a_new_rotator_goes_on_at_the_highest_index_left(tmp_path):
    rot = Rotator(str(tmp_path), "web.stdout", 10, 6)
    rot.write(b"12345678")
    rot.close()
    again = Rotator(str(tmp_path), "web.stdout", 10, 6)  # the task restarted in the same allocation
    again.write(b"ab")
    again.write(b"cdef")
    again.close()
    assert files(tmp_path) == {0: b"123456", 1: b"78abcd", 2: b"ef"}
    assert indexes(str(tmp_path), "web.stderr") == []


def test_a_failed_write_drops_that_output_and_the_rotator_goes_on(tmp_path):
    rot = Rotator(str(tmp_path / "gone"), "web.stdout", 3, 10)  # its directory is missing
    rot.write(b"lost\n")
    assert rot.dropped_bytes == 5
    os.mkdir(tmp_path / "gone")
    rot.write(b"kept\n")
    rot.close()
    assert (tmp_path / "gone" / "web.stdout.0").read_bytes() == b"kept\n"


def test_the_rotator_process_copies_its_stdin_until_end_of_file(tmp_path):
    data = b"".join(b"line %d\n" % i for i in range(2000))  # ~17 KB through a 4 KB-file rotation
    argv = [sys.executable, "-I", "-S", logmon.__file__, str(tmp_path), "web.stdout", "3", "4096", "-"]
    proc = subprocess.run(argv, input=data, timeout=30, check=True)
    assert proc.returncode == 0
    got = files(tmp_path)
    assert len(got) == 3 and all(len(v) <= 4096 for v in got.values())
    assert data.endswith(b"".join(got.values()))


def test_one_rotator_process_copies_both_streams_until_both_are_at_end_of_file(tmp_path):
    """stdout on its stdin, stderr on the descriptor it is given; the one still open keeps it running."""
    r_err, w_err = os.pipe()
    argv = [sys.executable, "-I", "-S", logmon.__file__, str(tmp_path), "web", "3", "4096", str(r_err)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, pass_fds=(r_err,))
    os.close(r_err)
    try:
        out = b"".join(b"out %d\n" % i for i in range(2000))
        proc.stdin.write(out)
        proc.stdin.close()  # stdout ends; stderr is still open
        os.write(w_err, b"err 1\n")
        os.write(w_err, b"err 2\n")
    finally:
        os.close(w_err)
    from tests.test_raw_exec import wait_for

    assert wait_for(lambda: proc.poll() is not None, 30)  # (gevent's wait() needs its hub to run)
    assert proc.returncode == 0
    got = files(tmp_path)
    assert len(got) == 3 and all(len(v) <= 4096 for v in got.values())
    assert b"".join(got.values()) == out[-len(b"".join(got.values())):]
    assert (tmp_path / "web.stderr.0").read_bytes() == b"err 1\nerr 2\n"


def test_the_rotator_refuses_a_wrong_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-S", logmon.__file__, str(tmp_path), "web"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2 and b"usage:" in proc.stderr


def test_a_link_or_fifo_planted_under_the_next_files_name_is_replaced_not_followed(tmp_path):
    """The log directory is one the task can write: the rotator (the agent's user) never writes elsewhere."""
    from actors.client.logmon import Rotator

    logs, outside = tmp_path / "logs", tmp_path / "outside"
    logs.mkdir()
    outside.mkdir()
    target = outside / "victim"
    r = Rotator(str(logs), "web.stdout", 5, 10)  # at web.stdout.0
    (logs / "web.stdout.1").symlink_to(target)  # the next files' names, planted before the rotation
    os.mkfifo(logs / "web.stdout.2")
    r.write(b"x" * 35)
    r.close_all()
    assert not target.exists()
    for n in (1, 2):
        p = logs / f"web.stdout.{n}"
        assert p.is_file() and not p.is_symlink() and p.read_bytes() == b"x" * 10
    assert (logs / "web.stdout.3").read_bytes() == b"x" * 5 and r.dropped_bytes == 0
    # A hard link to a file elsewhere (same filesystem) is replaced too: the other file keeps its bytes.
    other = outside / "kept"
    other.write_bytes(b"mine")
    os.link(other, logs / "web.stdout.4")
    r = Rotator(str(logs), "web.stdout", 5, 10)  # resumes at the highest index: the planted .4
    r.write(b"y" * 20)
    r.close_all()
    assert other.read_bytes() == b"mine" and (logs / "web.stdout.4").stat().st_nlink == 1
    assert (logs / "web.stdout.4").read_bytes() == b"y" * 10


def test_a_log_directory_that_is_a_symlink_gets_nothing_written(tmp_path):
    from actors.client.logmon import Rotator

    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "logs").symlink_to(real)
    r = Rotator(str(tmp_path / "logs"), "web.stdout", 2, 10)
    r.write(b"hello")
    r.close_all()
    assert list(real.iterdir()) == [] and r.dropped_bytes == 5
