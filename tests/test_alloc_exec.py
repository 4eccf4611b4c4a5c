"""``alloc exec``: the WebSocket framing (unit), the exec endpoint and the CLI against one -dev agent."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import urllib.parse
from typing import Any

import pytest

from runtime.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    WsClosed,
    WsConn,
    WsHandshakeError,
    WsProtocolError,
    accept_key,
    connect,
    encode_frame,
)
from tests.test_agent_process import AgentProc, free_port, wait_for  # noqa: F401
from tests.test_cli_jobs import nomad
from tests.test_http_jobs import call
from tests.test_http_jobs import PLACE_DEADLINE_S, call, running_agent

pytestmark = pytest.mark.timeout(180)

# ---------------------------------------------------------------- framing (unit)


def _pair(incoming: bytes, *, client: bool, max_message: int = 1 << 20) -> tuple[WsConn, io.BytesIO]:
    out = io.BytesIO()
    src = io.BytesIO(incoming)
    return WsConn(src.read, out.write, client=client, max_message=max_message,
                  mask_source=lambda n: b"\x01\x02\x03\x04"), out


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_masked_client_frame_is_unmasked_and_a_server_sends_unmasked() -> None:
    frame = encode_frame(OP_TEXT, b"Hello", mask_key=b"\x37\xfa\x21\x3d")
    assert frame == bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])  # RFC 5.7
    server, out = _pair(frame, client=False)
    assert server.recv() == (OP_TEXT, b"Hello")
    server.send_text("Hi")
    assert out.getvalue() == b"\x81\x02Hi"


def test_lengths_of_16_and_64_bits() -> None:
    for n in (125, 126, 65535, 65536):
        data = bytes(range(256)) * (n // 256 + 1)
        server, _ = _pair(encode_frame(OP_BINARY, data[:n], mask_key=b"abcd"), client=False)
        assert server.recv() == (OP_BINARY, data[:n])


def test_fragments_are_joined_and_a_ping_between_them_answered() -> None:
    key = b"kkkk"
    stream = (encode_frame(OP_TEXT, b"hel", mask_key=key, fin=False)
              + encode_frame(0x9, b"p", mask_key=key)
              + encode_frame(0x0, b"lo", mask_key=key, fin=False)
              + encode_frame(0x0, b"!", mask_key=key))
    server, out = _pair(stream, client=False)
    assert server.recv() == (OP_TEXT, b"hello!")
    assert out.getvalue() == b"\x8a\x01p"  # the pong, unmasked


def test_a_close_is_answered_and_reported_with_its_code_and_reason() -> None:
    server, out = _pair(encode_frame(OP_CLOSE, struct.pack("!H", 1001) + b"bye", mask_key=b"abcd"),
                        client=False)
    with pytest.raises(WsClosed) as e:
        server.recv()
    assert (e.value.code, e.value.reason) == (1001, "bye")
    assert out.getvalue() == b"\x88\x02\x03\xe9"  # our close, with its code
    server.send_text("late")  # nothing is sent after a close
    assert out.getvalue() == b"\x88\x02\x03\xe9"


def test_a_client_sees_the_servers_close_reason() -> None:
    frame = encode_frame(OP_CLOSE, struct.pack("!H", CLOSE_POLICY_VIOLATION) + b"no")
    client, out = _pair(frame, client=True)
    with pytest.raises(WsClosed) as e:
        client.recv()
    assert (e.value.code, e.value.reason) == (CLOSE_POLICY_VIOLATION, "no")
    assert out.getvalue()[:2] == b"\x88\x82"  # a client's close is masked


def test_an_oversize_frame_is_refused_before_its_payload_is_read() -> None:
    head = bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 40)  # claims a terabyte, sends nothing more
    server, out = _pair(head, client=False, max_message=1024)
    with pytest.raises(WsProtocolError) as e:
        server.recv()
    assert e.value.code == CLOSE_TOO_BIG
    assert out.getvalue()[:4] == b"\x88" + bytes([len(out.getvalue()) - 2]) + struct.pack("!H", CLOSE_TOO_BIG)


def test_fragments_over_the_limit_together_are_refused() -> None:
    stream = b"".join(encode_frame(OP_TEXT if i == 0 else 0, b"x" * 600, mask_key=b"abcd", fin=i == 2)
                      for i in range(3))
    server, _ = _pair(stream, client=False, max_message=1024)
    with pytest.raises(WsProtocolError) as e:
        server.recv()
    assert e.value.code == CLOSE_TOO_BIG


@pytest.mark.parametrize("frame", [
    encode_frame(OP_TEXT, b"x"),  # a client's frame must be masked
    bytes([0xC1, 0x80]) + b"abcd",  # a reserved bit
    encode_frame(0x0, b"x", mask_key=b"abcd"),  # a continuation of nothing
    encode_frame(0x3, b"x", mask_key=b"abcd"),  # an unknown opcode
])
def test_framing_violations_are_protocol_errors(frame: bytes) -> None:
    server, out = _pair(frame, client=False)
    with pytest.raises(WsProtocolError):
        server.recv()
    assert out.getvalue().startswith(b"\x88")


def test_a_dropped_connection_is_an_abnormal_close() -> None:
    server, _ = _pair(encode_frame(OP_TEXT, b"hello", mask_key=b"abcd")[:4], client=False)
    with pytest.raises(WsClosed) as e:
        server.recv()
    assert e.value.code == 1006


# ---------------------------------------------------------------- the endpoint, against a -dev agent

SESSION_DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exec-dev")
    port = free_port()
    path = tmp / "agent.toml"
    path.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n")
    with running_agent(["-dev", "-config", str(path)], port) as agent:
        yield agent


def _job(job_id: str, tasks: tuple[str, ...] = ("main",), **task_extra: Any) -> dict[str, Any]:
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
                "Name": t, "Driver": "raw_exec", "Env": {"EXEC_MARK": "from-task"}, **task_extra,
                "Config": {"command": "/bin/sleep", "args": ["3600"]},  # outlives the module's tests
                "Resources": {"CPU": 20, "MemoryMB": 16}} for t in tasks]}]}


def _running_alloc(port: int, job: dict[str, Any]) -> str:
    r = call(port, "PUT", "/v1/jobs", {"Job": job})
    assert r.status == 200, r.text

    def running() -> str | None:
        for a in call(port, "GET", f"/v1/job/{job['ID']}/allocations").json():
            states = a.get("TaskStates") or {}
            if states and all(s["State"] == "running" for s in states.values()):
                return a["ID"]
        return None
    return wait_for(running, f"{job['ID']} running", PLACE_DEADLINE_S)


@pytest.fixture(scope="module")
def alloc(dev) -> str:
    return _running_alloc(dev.http_port, _job("exec-one"))


def _open(port: int, alloc_id: str, command: list[str], task: str = "main", tty: bool = False,
          headers: dict[str, str] | None = None, extra: str = "") -> tuple[WsConn, Any]:
    q = urllib.parse.urlencode({"task": task, "tty": "true" if tty else "false",
                                "command": json.dumps(command)})
    ws, sock = connect(f"http://127.0.0.1:{port}/v1/client/allocation/{alloc_id}/exec?{q}{extra}", headers)
    sock.settimeout(SESSION_DEADLINE_S)
    return ws, sock


def _session(ws: WsConn) -> tuple[bytes, bytes, int | None, tuple[int, str] | None]:
    """(stdout, stderr, exit code, (close code, reason)) of a session, read to its end."""
    out, err, code = b"", b"", None
    try:
        while True:
            _, payload = ws.recv()
            frame = json.loads(payload)
            if "stdout" in frame:
                out += base64.b64decode(frame["stdout"].get("data") or "")
            elif "stderr" in frame:
                err += base64.b64decode(frame["stderr"].get("data") or "")
            elif frame.get("exited"):
                code = frame["result"]["exit_code"]
    except WsClosed as e:
        return out, err, code, (e.code, e.reason)
    return out, err, code, None


def _stdin(ws: WsConn, data: bytes = b"", close: bool = False) -> None:
    ws.send_text(json.dumps({"stdin": {"data": base64.b64encode(data).decode(), "close": close}}))


def test_echo_runs_in_the_task_dir_with_its_env_and_exits_zero(dev, alloc) -> None:
    script = 'echo "$EXEC_MARK $NOMAD_TASK_NAME"; pwd; echo oops >&2'
    ws, sock = _open(dev.http_port, alloc, ["/bin/sh", "-c", script])
    with sock:
        out, err, code, closed = _session(ws)
    lines = out.decode().splitlines()
    assert lines[0] == "from-task main"
    assert lines[1].endswith(f"/{alloc}/main")
    assert err == b"oops\n" and code == 0 and closed == (CLOSE_NORMAL, "")


def test_stdin_is_piped_through_and_its_close_ends_cat(dev, alloc) -> None:
    ws, sock = _open(dev.http_port, alloc, ["cat"])
    with sock:
        _stdin(ws, b"hello ")
        ws.send_text("{}")  # a heartbeat: nothing happens
        _stdin(ws, b"world\n", close=True)
        out, _, code, _ = _session(ws)
    assert out == b"hello world\n" and code == 0


def test_a_non_zero_exit_code_is_reported(dev, alloc) -> None:
    ws, sock = _open(dev.http_port, alloc, ["sh", "-c", "exit 7"])
    with sock:
        assert _session(ws)[2] == 7
    ws, sock = _open(dev.http_port, alloc, ["sh", "-c", "kill -TERM $$"])
    with sock:
        assert _session(ws)[2] == 128 + 15  # killed by a signal: 128 + its number, as Nomad's


def test_tty_mode_runs_under_a_pty_with_the_size_sent(dev, alloc) -> None:
    script = "read x; stty size; tty -s && echo is-a-tty; echo got $x"
    ws, sock = _open(dev.http_port, alloc, ["sh", "-c", script], tty=True)
    with sock:
        ws.send_text(json.dumps({"tty_size": {"height": 33, "width": 101}}))
        _stdin(ws, b"abc\n")
        out, err, code, _ = _session(ws)
    text = out.decode().replace("\r\n", "\n")
    assert "33 101\n" in text and "is-a-tty\n" in text and "got abc\n" in text
    assert err == b"" and code == 0


@pytest.mark.parametrize(("task", "command", "reason", "code"), [
    ("", ["true"], "must provide task name", CLOSE_POLICY_VIOLATION),
    ("main", [], "command is not present", CLOSE_POLICY_VIOLATION),
    ("nope", ["true"], 'unknown task name "nope"', CLOSE_POLICY_VIOLATION),
    ("main", ["/no/such/cmd"], 'exec: "/no/such/cmd": executable file not found in $PATH',
     CLOSE_INTERNAL_ERROR),
])
def test_errors_are_close_frames_with_nomads_reasons(dev, alloc, task, command, reason, code) -> None:
    ws, sock = _open(dev.http_port, alloc, command, task=task)
    with sock:
        assert _session(ws)[3] == (code, reason)


def test_an_unknown_allocation_is_refused_on_the_websocket(dev) -> None:
    ws, sock = _open(dev.http_port, "6a0b0b9c-0000-0000-0000-000000000000", ["true"])
    with sock:
        assert _session(ws)[3] == (CLOSE_POLICY_VIOLATION,
                                   'Unknown allocation "6a0b0b9c-0000-0000-0000-000000000000"')


def test_a_task_that_is_not_running_is_refused(dev) -> None:
    port = dev.http_port
    job = _job("exec-done")
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/bin/true"}
    job["Type"] = "batch"
    call(port, "PUT", "/v1/jobs", {"Job": job})

    def dead() -> str | None:
        for a in call(port, "GET", "/v1/job/exec-done/allocations").json():
            if (a.get("TaskStates") or {}).get("main", {}).get("State") == "dead":
                return a["ID"]
        return None
    alloc_id = wait_for(dead, "exec-done finished", PLACE_DEADLINE_S)
    ws, sock = _open(port, alloc_id, ["true"])
    with sock:
        assert _session(ws)[3] == (CLOSE_POLICY_VIOLATION, 'task "main" is not running.')


def test_request_errors_before_the_upgrade_are_plain_http(dev, alloc) -> None:
    port = dev.http_port
    r = call(port, "GET", f"/v1/client/allocation/{alloc}/exec?task=main&command=%5B%22true%22%5D")
    assert r.status == 400 and "not using the websocket protocol" in r.text
    with pytest.raises(WsHandshakeError) as e:
        connect(f"http://127.0.0.1:{port}/v1/client/allocation/{alloc}/exec?task=main&command=notjson")
    assert e.value.status == 500 and e.value.body.startswith("failed to marshal command into json")
    with pytest.raises(WsHandshakeError) as e:
        connect(f"http://127.0.0.1:{port}/v1/client/allocation/{alloc}/exec?task=main&tty=maybe&command=[]")
    assert e.value.status == 500 and e.value.body.startswith("tty value is not a boolean")


@pytest.mark.parametrize(("frame", "reason"), [
    (b"not json", "invalid exec input"),
    (json.dumps({"stdin": {"data": "%%%not base64"}}).encode(), "illegal base64 data"),
    (json.dumps({"tty_size": {"height": 10, "width": 10}}).encode(), "attempted to resize a non-tty session"),
])
def test_malformed_input_ends_the_session_with_a_reason_and_the_agent_keeps_serving(dev, alloc, frame,
                                                                                   reason) -> None:
    ws, sock = _open(dev.http_port, alloc, ["sleep", "30"])
    with sock:
        ws.send_frame(OP_TEXT, frame)
        closed = _session(ws)[3]
    assert closed is not None and closed[0] == CLOSE_INTERNAL_ERROR and reason in closed[1]
    ws, sock = _open(dev.http_port, alloc, ["echo", "still here"])
    with sock:
        assert _session(ws)[:3] == (b"still here\n", b"", 0)


def test_closing_the_websocket_kills_the_command(dev, alloc, tmp_path) -> None:
    marker = tmp_path / "pid"
    ws, sock = _open(dev.http_port, alloc, ["sh", "-c", f"echo $$ > {marker}; exec sleep 30"])
    with sock:
        pid = int(wait_for(lambda: marker.exists() and marker.read_text().strip(), "the command's pid"))
        ws.close()
    import os

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie not yet reaped by the agent counts as gone
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")
        except OSError:
            return True
    wait_for(gone, "the exec'd command killed")


def test_cli_exec_exit_code_becomes_the_cli_s(dev, alloc) -> None:
    r = nomad(dev, "alloc", "exec", "-i=false", alloc, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n" and r.stderr == "err\n"


def test_cli_exec_pipes_stdin(dev, alloc) -> None:
    r = nomad(dev, "alloc", "exec", "-task", "main", alloc[:8], "cat", stdin="piped\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "piped\n"


def test_cli_exec_errors_are_nomads(dev, alloc) -> None:
    r = nomad(dev, "alloc", "exec", alloc)
    assert r.returncode == 1 and "A command is required" in r.stderr
    r = nomad(dev, "alloc", "exec")
    assert r.returncode == 1 and "An allocation ID is required" in r.stderr
    r = nomad(dev, "alloc", "exec", "-t=true", "-i=false", alloc, "true")
    assert r.returncode == 1 and "-i must be enabled if running with tty" in r.stderr
    r = nomad(dev, "alloc", "exec", "-e", "ab", alloc, "true")
    assert r.returncode == 1 and "-e requires 'none' or a single character" in r.stderr
    r = nomad(dev, "alloc", "exec", "-task", "nope", alloc, "true")
    assert r.returncode == 1 and "Could not find task named: nope, found:\n" in r.stderr  # and its tasks
    r = nomad(dev, "alloc", "exec", "-i=false", alloc, "/no/such")
    assert r.returncode == 1
    assert 'failed to exec into task: exec: "/no/such": executable file not found in $PATH' in r.stderr


def _read_until(fd: int, want: bytes, deadline_s: float = SESSION_DEADLINE_S) -> bytes:
    """What the pty shows until *want* appears (or the CLI ends)."""
    import os
    import select
    import time

    seen = b""
    end = time.monotonic() + deadline_s
    while want not in seen:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {want!r}; saw {seen!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the CLI closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_cli_exec_with_a_terminal_sends_its_size_and_disconnects_on_tilde_dot(dev, alloc) -> None:
    import fcntl
    import os
    import signal
    import subprocess
    import sys
    import termios

    from tests.test_cli_jobs import NOMAD

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    argv = [sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", "alloc", "exec", alloc,
            "/bin/sh"]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        _read_until(master, b"$ " if os.getuid() else b"# ")  # the remote shell's prompt: raw mode is on
        os.write(master, b"stty size; echo mark-$((6*7))\r")
        seen = _read_until(master, b"mark-42")
        assert b"40 120" in seen
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        proc.send_signal(signal.SIGWINCH)  # as the terminal does on a resize
        os.write(master, b"sleep 0.2; stty size; echo mark-$((7*7))\r")
        assert b"50 132" in _read_until(master, b"mark-49")
        os.write(master, b"\r~.")
        seen = _read_until(master, b"context canceled")
        assert b"Connection closed" in seen
        assert proc.wait(timeout=SESSION_DEADLINE_S) == 1
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def test_cli_exec_job_picks_a_running_allocation(dev, alloc) -> None:
    r = nomad(dev, "alloc", "exec", "-i=false", "-job", "exec-one", "sh", "-c", "echo $NOMAD_ALLOC_ID")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == alloc
    # -group narrows the pick to that group (Nomad's getRandomJobAlloc with a group); so do logs and fs.
    group = call(dev.http_port, "GET", f"/v1/allocation/{alloc}").json()["TaskGroup"]
    r = nomad(dev, "alloc", "exec", "-i=false", "-job", "-group", group, "exec-one", "true")
    assert r.returncode == 0, r.stderr
    r = nomad(dev, "alloc", "exec", "-i=false", "-job", "-group", "nope", "exec-one", "true")
    assert r.returncode == 1 and 'task group "nope" doesn\'t exist' in r.stderr, r.stderr
    for cmd in (["alloc", "fs", "-job", "-group", group, "exec-one", "/"],
                ["alloc", "logs", "-job", "-group", "nope", "exec-one"]):
        r = nomad(dev, *cmd)
        assert (r.returncode == 0) == (cmd[4] == group), (cmd, r.stderr)


def test_cli_exec_interrupted_cancels_and_the_command_is_killed(dev, alloc, tmp_path) -> None:
    import signal
    import subprocess
    import sys

    from tests.test_cli_jobs import NOMAD

    marker = tmp_path / "pid"
    argv = [sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", "alloc", "exec", "-i=false",
            alloc, "sh", "-c", f"echo $$ > {marker}; exec sleep 30"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = int(wait_for(lambda: marker.exists() and marker.read_text().strip(), "the command's pid"))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=SESSION_DEADLINE_S)
        assert proc.returncode == 1 and "failed to exec into task: context canceled" in err
    finally:
        proc.kill()
        proc.wait()

    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")
        except OSError:
            return True
    wait_for(gone, "the exec'd command killed")


# ---------------------------------------------------------------- into an exec-driver task
def _exec_ready() -> str:
    from tests.test_exec_driver import _WHY_NOT

    return _WHY_NOT


_EXEC_WHY_NOT = _exec_ready()
needs_exec = pytest.mark.skipif(bool(_EXEC_WHY_NOT), reason=_EXEC_WHY_NOT or "runs")


@pytest.fixture(scope="module")
def exec_alloc(dev) -> str:
    if _EXEC_WHY_NOT:
        pytest.skip(_EXEC_WHY_NOT)
    job = _job("exec-isolated")
    job["TaskGroups"][0]["Tasks"][0].update({
        "Driver": "exec",
        "Config": {"command": "/bin/sh", "args": ["-c", "echo from-local > /local/mark; exec sleep 3600"]}})
    return _running_alloc(dev.http_port, job)


@needs_exec
def test_exec_enters_an_exec_tasks_chroot_pid_namespace_and_cgroup_as_its_user(dev, exec_alloc) -> None:
    script = ('cat /local/mark; echo "init=$(tr "\\0" " " < /proc/1/cmdline)"; id -un; pwd; '
              'echo "dirs=$NOMAD_TASK_DIR $EXEC_MARK"; echo "pids=$(ls /proc | grep -c "^[0-9]")"; '
              'grep memory /proc/self/cgroup; test -e "$HOST_ONLY" || echo no-host-tree')
    ws, sock = _open(dev.http_port, exec_alloc, ["/bin/sh", "-c", script])
    with sock:
        out, err, code, closed = _session(ws)
    text = out.decode()
    assert code == 0 and closed == (CLOSE_NORMAL, ""), (text, err)
    lines = text.splitlines()
    assert lines[0] == "from-local"  # the task's /local
    assert lines[1] == "init=sleep 3600 "  # PID 1 of the namespace is the task itself
    assert lines[2:5] == ["nobody", "/", "dirs=/local from-task"]  # its user, work_dir and environment
    assert int(lines[5].split("=")[1]) <= 6, text  # the task's processes only, not the host's
    assert lines[6].endswith(f"/nomad/{exec_alloc}.main"), text  # in the task's cgroup (its limits)


@needs_exec
def test_exec_into_an_exec_task_with_a_terminal_and_a_bare_command_name(dev, exec_alloc) -> None:
    # The size is sent once the session is open, so the command may start before it lands (Nomad's
    # CLI does the same): wait for it (at most ~5 s) rather than race it.
    script = ('tty -s && echo is-a-tty; i=0; while [ "$(stty size)" = "0 0" ] && [ $i -lt 100 ]; '
              'do sleep 0.05; i=$((i+1)); done; stty size; cat')
    ws, sock = _open(dev.http_port, exec_alloc, ["sh", "-c", script], tty=True)
    with sock:
        ws.send_text(json.dumps({"tty_size": {"height": 20, "width": 70}}))
        _stdin(ws, b"typed\n", close=True)
        out, _, code, closed = _session(ws)
    text = out.decode().replace("\r\n", "\n")
    assert "is-a-tty\n" in text and "20 70\n" in text and "typed\n" in text and code == 0, (text, closed)
    ws, sock = _open(dev.http_port, exec_alloc, ["no-such-cmd"])
    with sock:
        assert _session(ws)[3] == (CLOSE_INTERNAL_ERROR,
                                   'exec: "no-such-cmd": executable file not found in $PATH')
    r = nomad(dev, "alloc", "exec", "-i=false", exec_alloc, "sh", "-c", "cat /local/mark; exit 4")
    assert r.returncode == 4 and r.stdout == "from-local\n", r.stderr


@needs_exec
@pytest.mark.parametrize("tty", [False, True])
def test_closing_the_websocket_kills_a_command_inside_an_exec_task(dev, exec_alloc, tty) -> None:
    from actors.client.exec_driver import detect_cgroups

    cg, _ = detect_cgroups()
    assert cg is not None
    procs = os.path.join(cg.task_paths(exec_alloc, "main")[0], "cgroup.procs")

    def members() -> list[str]:
        with open(procs) as f:
            return f.read().split()

    before = len(members())
    ws, sock = _open(dev.http_port, exec_alloc, ["sh", "-c", "sleep 300 & echo started; wait"], tty=tty)
    with sock:
        _, payload = ws.recv()
        assert b"stdout" in payload
        assert len(members()) > before  # the command and its child are in the task's cgroup
        ws.close()
    wait_for(lambda: len(members()) == before or None, "the exec'd command and its child killed")


def test_a_client_with_disable_remote_exec_refuses_every_exec_session(tmp_path) -> None:
    port = free_port()
    path = tmp_path / "agent.hcl"
    path.write_text(f"ports {{\n  http = {port}\n  rpc = {free_port()}\n  serf = {free_port()}\n}}\n"
                    "client {\n  disable_remote_exec = true\n}\n")
    with running_agent(["-dev", "-config", str(path)], port):
        assert call(port, "GET", "/v1/agent/self").json()["config"]["Client"]["DisableRemoteExec"] is True
        alloc_id = _running_alloc(port, _job("no-exec"))
        ws, sock = _open(port, alloc_id, ["true"])
        with sock:
            assert _session(ws)[3] == (CLOSE_INTERNAL_ERROR, "Permission denied")


# ---------------------------------------------------------------- job actions (Nomad 1.7)

ACTIONS = [{"Name": "greet", "Command": "/bin/sh",
            "Args": ["-c", 'echo "hi from $NOMAD_TASK_NAME"; exit 4']},
           {"Name": "pwd", "Command": "/bin/pwd"}]


@pytest.fixture(scope="module")
def action_alloc(dev) -> str:
    return _running_alloc(dev.http_port, _job("exec-actions", Actions=ACTIONS))


def test_job_actions_are_listed_and_run_in_the_task(dev, action_alloc) -> None:
    port = dev.http_port
    listed = call(port, "GET", "/v1/job/exec-actions/actions").json()
    where = {"TaskName": "main", "TaskGroupName": "g"}
    assert listed == [{"Name": "greet", "Command": "/bin/sh", "Args": ACTIONS[0]["Args"], **where},
                      {"Name": "pwd", "Command": "/bin/pwd", "Args": None, **where}]
    r = call(port, "GET", "/v1/job/no-such-job/actions")
    assert (r.status, r.text) == (500, 'Unknown job "no-such-job"')
    # The CLI picks a running allocation of the group, or takes the one given; the action's exit
    # code is the command's.
    got = nomad(dev, "job", "action", "-i=false", "-job", "exec-actions", "-group", "g", "-task", "main",
                "greet")
    assert (got.returncode, got.stdout) == (4, "hi from main\n")
    got = nomad(dev, "action", "-i=false", "-job", "exec-actions", "-alloc", action_alloc[:8], "pwd")
    assert got.returncode == 0 and got.stdout.strip().endswith(f"{action_alloc}/main")


@pytest.mark.parametrize("args, error", [
    (("-job", "exec-actions", "-group", "g", "-task", "main", "nope"),
     "failed to exec into task: action nope not found in task main"),
    (("-job", "exec-one", "-alloc", "ALLOC", "greet"), "failed to exec into task: job exec-one does not have "
                                                       "allocation ALLOC"),
    (("-job", "exec-actions", "greet"), "A group name is required if no allocation is provided"),
    (("-job", "exec-actions", "-group", "g", "greet"),
     "A task name is required if no allocation is provided"),
    (("greet",), "A job ID is required"),
    (("-job", "exec-actions"), "An action name is required"),
])
def test_job_action_errors_say_what_is_wrong(dev, action_alloc, args, error) -> None:
    args = tuple(a.replace("ALLOC", action_alloc) for a in args)
    got = nomad(dev, "job", "action", "-i=false", *args)
    assert got.returncode == 1 and got.stderr.startswith(error.replace("ALLOC", action_alloc)), got.stderr
