"""Raft snapshots encoded off the Raft actor's turn: the forked encoder, and a server using it."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gevent
import gevent.event
import msgpack
import pytest

from runtime.snapshotter import ForkSnapshotter, InlineSnapshotter
from tests.test_agent_process import agent_config, agents, wait_for  # noqa: F401
from tests.test_http_jobs import call, sleep_job

pytestmark = pytest.mark.timeout(60)


class Inbox:
    """Stands in for an actor ref: keeps what it is told."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.event = gevent.event.Event()

    def tell(self, msg: Any) -> None:
        self.got.append(msg)
        self.event.set()

    def wait(self, timeout_s: float = 20.0) -> Any:
        assert self.event.wait(timeout_s), "no answer from the snapshotter"
        return self.got[-1]


def _start(snap: ForkSnapshotter, encode) -> Inbox:
    inbox = Inbox()
    snap.start(None, inbox, encode, lambda data, error: (data, error))
    return inbox


def test_the_child_encodes_the_state_as_it_was_when_started():
    state = {"jobs": {f"j{i}": {"v": i, "blob": b"x" * 1000} for i in range(2000)}}
    snap = ForkSnapshotter()
    inbox = _start(snap, lambda: msgpack.packb(state))
    expected = msgpack.packb(state)
    # The Raft actor carries on at once, changing the state in place.
    state["jobs"]["j0"]["v"] = "changed"
    state["jobs"]["new"] = {}
    data, error = inbox.wait()
    assert error == "" and data == expected and snap.forks == 1 and snap.fallbacks == 0


def test_the_result_arrives_while_the_hub_reaps_children_itself():
    # A client agent's task processes start the hub's SIGCHLD watcher, which
    # reaps every child: the encoder's exit status must still reach us.
    import subprocess

    sleeper = subprocess.Popen(["sleep", "0.2"])  # gevent's subprocess: watched by the hub
    assert _start(ForkSnapshotter(), lambda: b"x" * 100_000).wait() == (b"x" * 100_000, "")
    assert sleeper.wait(timeout=10) == 0


def test_a_whole_output_is_the_answer_even_if_the_exit_status_never_comes(monkeypatch):
    """The exit status is waited for a bounded time once the output ended; a whole output needs none."""
    import gevent.os

    from runtime import snapshotter

    def never(pid: int, options: int) -> Any:
        gevent.sleep(3600)
    monkeypatch.setattr(gevent.os, "waitpid", never)
    monkeypatch.setattr(snapshotter, "EXIT_WAIT_S", 0.2)
    t0 = time.monotonic()
    assert _start(ForkSnapshotter(), lambda: b"y" * 5000).wait(10) == (b"y" * 5000, "")
    assert time.monotonic() - t0 < 5


def test_the_pipe_is_read_without_an_event_loop_watcher(monkeypatch):
    """Polled, not waited on through the loop (a descriptor number the loop still held for a closed
    one would never report readiness): nb_read must not be needed."""
    import gevent.os

    def broken(fd: int, n: int) -> bytes:
        raise AssertionError("nb_read used")
    monkeypatch.setattr(gevent.os, "nb_read", broken)
    assert _start(ForkSnapshotter(), lambda: b"z" * 3_000_000).wait() == (b"z" * 3_000_000, "")


def test_the_parent_runs_while_the_child_encodes():
    def slow() -> bytes:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # CPU work in the child (no gevent there)
            pass
        return b"done"

    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(1000)])
    t0 = time.monotonic()
    inbox = _start(ForkSnapshotter(), slow)
    assert time.monotonic() - t0 < 0.1  # start() returns at once
    assert inbox.wait() == (b"done", "")
    ticker.kill()
    assert len(ticks) >= 20  # the hub kept turning over during the 0.5 s encoding


def test_a_failing_encoding_is_reported_not_raised():
    def boom() -> bytes:
        raise ValueError("no")

    data, error = _start(ForkSnapshotter(), boom).wait()
    assert data is None and "exit code 1" in error


def test_a_hung_child_is_killed_after_the_timeout():
    def hang() -> bytes:
        while True:
            pass

    t0 = time.monotonic()
    data, error = _start(ForkSnapshotter(timeout_s=0.5), hang).wait()
    assert data is None and "longer than 0.5s and was killed" in error
    assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize("number_reused", [False, True])
def test_a_pipe_closed_behind_the_snapshotters_back_is_answered_at_once(monkeypatch, number_reused):
    """Another part of the agent closing a descriptor number it no longer owns (a double close:
    gevent's os.close closes a pipe's number a loop turn late, whatever holds it by then) can shut
    the snapshot's pipe.  The save used to get no answer at all -- the collector died on EBADF in its
    own close and the request waited out its whole deadline (the save "hangs" of full test runs) --
    and, had the number been handed on, it read and then closed someone else's descriptor."""
    pipes: list[tuple[int, int]] = []
    real_pipe = os.pipe

    def recording_pipe() -> tuple[int, int]:
        pipes.append(real_pipe())
        return pipes[-1]

    def slow() -> bytes:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # CPU work in the child: the close below comes first
            pass
        return b"late"

    def close(fd: int) -> None:  # the kernel's close, now (gevent's os.close would close the number later)
        os.closerange(fd, fd + 1)

    monkeypatch.setattr(os, "pipe", recording_pipe)
    inbox = _start(ForkSnapshotter(), slow)
    monkeypatch.undo()
    (r, _w), = pipes
    other_r, other_w = os.pipe()  # another part of the agent's pipe
    if number_reused:  # the snapshot's number is closed and given to that part
        os.dup2(other_r, r)
    else:
        close(r)  # the snapshot's number is closed behind its back
    os.write(other_w, b"not the snapshot's")
    t0 = time.monotonic()
    data, error = inbox.wait(10)
    assert data is None and "closed by another part of the agent" in error
    assert time.monotonic() - t0 < 1.0
    if number_reused:  # that one is neither read nor closed
        assert os.read(r, 100) == b"not the snapshot's"
        close(r)
    for fd in (other_r, other_w):
        close(fd)


def test_fork_failure_falls_back_to_encoding_inline(monkeypatch):
    import gevent.monkey

    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(gevent.monkey, "get_original", lambda mod, name: no_fork)
    snap = ForkSnapshotter()
    assert _start(snap, lambda: b"inline").wait() == (b"inline", "")
    assert snap.fallbacks == 1 and snap.forks == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ForkSnapshotter(timeout_s=0)
    with pytest.raises(ValueError):
        InlineSnapshotter(delay_s=-1)


def test_a_server_snapshots_in_a_child_and_restarts_from_it_with_its_trailing_log(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data")
    path = tmp_path / "a.toml"
    path.write_text(path.read_text().replace(
        "bootstrap_expect = 1", 'bootstrap_expect = 1\nraft_snapshot_threshold = 5\nraft_snapshot_interval = "1s"\n'
                                "raft_trailing_logs = 3"))
    a = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    for i in range(12):
        r = call(cfg["http"], "PUT", "/v1/jobs", {"Job": sleep_job(f"snap-{i}")})
        assert r.status == 200, r.text
    line = a.wait_line(r"snapshot at index \d+: \d+ bytes, encoded in a child process in \d+ ms")
    assert "failed" not in "\n".join(a.out)
    # The child also wrote it to its own file, which the store records by name.
    raft_dir = tmp_path / "data" / "server" / "raft"
    assert [n for n in os.listdir(raft_dir) if ".snapshot-" in n]
    a.send(signal.SIGKILL)
    a.wait_exit()
    b = agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()

    def jobs() -> set[str]:
        r = call(cfg["http"], "GET", "/v1/jobs")
        return {j["ID"] for j in r.json()} if r.status == 200 else set()
    wait_for(lambda: {f"snap-{i}" for i in range(12)} <= jobs(), "every job back after the restart", 20.0,
             b.detail)
    assert line >= 0
