"""A task's logs read across its rotated files (actors.client.alloc_logs, the followed stream of
actors.http_client_fs): offsets over the whole stream, origin=end, following onto the next index."""

from __future__ import annotations

import base64
import json

import pytest

from actors import http_client_fs
from actors.client.alloc_logs import AllocLogs

pytestmark = pytest.mark.timeout(20)


def logs_with(tmp_path, files: dict[int, bytes]) -> AllocLogs:
    d = tmp_path / "a1" / "alloc" / "logs"
    d.mkdir(parents=True, exist_ok=True)
    for i, data in files.items():
        (d / f"web.stdout.{i}").write_bytes(data)
    return AllocLogs(str(tmp_path))


def test_a_window_spans_the_files_from_the_lowest_index_kept(tmp_path):
    logs = logs_with(tmp_path, {2: b"abcde", 3: b"fghij", 4: b"kl"})  # 0 and 1 were pruned
    whole = logs.read("a1", "web", "stdout")
    assert (whole.data, whole.offset, whole.size) == (b"abcdefghijkl", 0, 12)
    assert (whole.file, whole.index, whole.file_end) == ("alloc/logs/web.stdout.4", 4, 2)
    mid = logs.read("a1", "web", "stdout", offset=3, limit=4)
    assert (mid.data, mid.offset, mid.file, mid.file_end) == (b"defg", 3, "alloc/logs/web.stdout.3", 2)
    at_boundary = logs.read("a1", "web", "stdout", offset=5, limit=5)
    assert (at_boundary.data, at_boundary.index, at_boundary.file_end) == (b"fghij", 3, 5)
    past = logs.read("a1", "web", "stdout", offset=100)
    assert (past.data, past.offset, past.index, past.file_end) == (b"", 12, 4, 2)


def test_origin_end_counts_back_across_files(tmp_path):
    logs = logs_with(tmp_path, {2: b"abcde", 3: b"fghij", 4: b"kl"})
    assert logs.read("a1", "web", "stdout", origin="end", offset=7).data == b"fghijkl"
    assert logs.read("a1", "web", "stdout", origin="end", offset=100).data == b"abcdefghijkl"
    assert logs.read("a1", "web", "stdout", origin="end", offset=0).data == b""


class FakeApi:
    """The task's state as the follower asks it; each ask first runs the next step of *steps*."""

    def __init__(self, steps: list) -> None:
        self.steps = steps

    def ask(self, actor: str, message: object) -> str:
        if self.steps:
            self.steps.pop(0)()
            return "running"
        return "dead"


def follow(logs: AllocLogs, steps: list, *, offset: int = 0) -> list[tuple[str, bytes]]:
    first = logs.read("a1", "web", "stdout", offset=offset)
    gen = http_client_fs._follow(FakeApi(steps), logs, "a1", "web", "stdout", first, plain=False)
    out = []
    for frame in gen:
        f = json.loads(frame)
        if f.get("Data"):
            out.append((f["File"].rsplit(".", 1)[1] + "@" + str(f["Offset"]), base64.b64decode(f["Data"])))
    return out


def test_follow_goes_onto_the_next_index_when_the_file_is_rotated(tmp_path, monkeypatch):
    monkeypatch.setattr(http_client_fs, "FOLLOW_POLL_S", 0.001)
    logs = logs_with(tmp_path, {0: b"one\n"})
    d = tmp_path / "a1" / "alloc" / "logs"

    def rotate() -> None:
        with open(d / "web.stdout.0", "ab") as f:
            f.write(b"two\n")  # the end of the full file, then the rotator moves on
        (d / "web.stdout.1").write_bytes(b"three\n")

    def more() -> None:
        with open(d / "web.stdout.1", "ab") as f:
            f.write(b"four\n")

    got = follow(logs, [lambda: None, rotate, more, lambda: None])
    assert b"".join(data for _, data in got) == b"one\ntwo\nthree\nfour\n"
    assert [where for where, _ in got] == ["0@4", "0@8", "1@11"]  # offsets within each file


def test_a_file_deleted_under_a_slow_follower_is_skipped_for_the_lowest_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(http_client_fs, "FOLLOW_POLL_S", 0.001)
    logs = logs_with(tmp_path, {0: b"old\n"})
    d = tmp_path / "a1" / "alloc" / "logs"

    def rotate_twice() -> None:
        (d / "web.stdout.1").write_bytes(b"lost\n")
        (d / "web.stdout.2").write_bytes(b"kept\n")
        (d / "web.stdout.0").unlink()  # max_files = 2: pruned before the follower got to it
        (d / "web.stdout.1").unlink()

    got = follow(logs, [rotate_twice], offset=4)
    assert got == [("2@5", b"kept\n")]


def test_a_link_the_task_planted_among_its_logs_is_never_read_through(tmp_path):
    """The logs directory is the task's to write: a link there must not serve a host file to `alloc logs`."""
    from actors.client.alloc_logs import LogNotFound

    secret = tmp_path / "host-secret"
    secret.write_bytes(b"root's secret")
    logs = logs_with(tmp_path, {0: b"abc"})
    (tmp_path / "a1" / "alloc" / "logs" / "web.stdout.1").symlink_to(secret)
    with pytest.raises(LogNotFound, match="is not a regular file"):
        logs.read("a1", "web", "stdout")
    with pytest.raises(LogNotFound, match="is not a regular file"):
        logs.read_file("a1", "web", "stdout", 1, 0, 100)
    # alloc/logs itself swapped for a link (to another allocation's logs, say): refused too.
    other = logs_with(tmp_path / "b", {0: b"someone else's"})
    del other
    real_logs = tmp_path / "a1" / "alloc" / "logs"
    real_logs.rename(tmp_path / "a1" / "alloc" / "moved")
    real_logs.symlink_to(tmp_path / "b" / "a1" / "alloc" / "logs")
    with pytest.raises(LogNotFound, match="is not a regular file"):
        logs.read("a1", "web", "stdout")


def test_a_plain_follow_of_a_quiet_task_ends_once_its_caller_hung_up(tmp_path, monkeypatch):
    """A plain follow sends no heartbeat frame whose failed write would end it: without asking
    whether its caller is gone, each hung-up `logs -f` of a quiet task polled for the task's life."""
    monkeypatch.setattr(http_client_fs, "FOLLOW_POLL_S", 0.001)
    monkeypatch.setattr(http_client_fs, "FOLLOW_HEARTBEAT_S", 0.0)
    logs = logs_with(tmp_path, {0: b"hello\n"})
    first = logs.read("a1", "web", "stdout")
    asked = []

    def gone() -> bool:
        asked.append(1)
        return len(asked) >= 3

    forever = [lambda: None] * 10_000  # the task keeps running, quietly
    gen = http_client_fs._follow(FakeApi(forever), logs, "a1", "web", "stdout", first, plain=True,
                                 caller_gone=gone)
    assert list(gen) == [b"hello\n"]
    assert len(asked) == 3 and len(forever) > 9_000
