"""``nomad alloc exec [-task t] [-job] [-i=true] [-t] [-e '~'] <alloc> <command> [args...]``.

As Nomad's ``command/alloc_exec.go`` and its api's exec session: the
allocation (or, with ``-job``, a running allocation of the job at random) is
found through the servers, then a WebSocket is opened to
``/v1/client/allocation/<id>/exec`` on the node that runs it -- directly,
and through the agent (which relays it) when the node cannot be reached.
Its output frames go to stdout and stderr; the remote command's exit code
becomes this command's.

* ``-i`` (default true): stdin is sent; ``-i=false`` sends an end of input
  at once.
* ``-t`` (default: stdin and stdout are both terminals): a pseudo-terminal
  on the node; the local terminal is put in raw mode (restored at the end),
  its size sent at the start and on every SIGWINCH.
* ``-e`` (default ``~``, ``none`` for no escape): with a terminal, the
  escape character at the start of a line followed by ``.`` closes the
  connection (``Connection closed``); doubled, it sends itself.
* A heartbeat ``{}`` goes every :data:`HEARTBEAT_S` (Nomad's api
  heartbeatInterval), so the agent knows an idle session is still there.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import signal
import struct
import sys
import termios
import threading
import tty
import urllib.parse
from typing import Any

from runtime import cli
from runtime.cli import CliError
from runtime.cli_jobs import check_task_exists
from runtime.websocket import CLOSE_NORMAL, WsClosed, WsConn, WsHandshakeError, WsProtocolError, connect

HEARTBEAT_S = 10.0  # Nomad's api heartbeatInterval
STDIN_CHUNK_BYTES = 2048  # Nomad's api reads stdin 2 KiB at a time
HELP_TEXT = "For additional help try 'nomad alloc exec -help'"


def _is_tty() -> bool:
    return os.isatty(0) and os.isatty(1)


def _task_of(alloc: dict[str, Any], task: str) -> str:
    """The task named, checked; or the group's only task (Nomad's lookupAllocTask)."""
    job = alloc.get("Job") or {}
    groups = [g for g in job.get("TaskGroups") or () if g.get("Name") == alloc.get("TaskGroup")]
    names = [t.get("Name", "") for t in groups[0].get("Tasks") or ()] if groups else []
    if task:
        check_task_exists(alloc, task)  # Nomad's validateTaskExistsInAllocation
        return task
    if not groups:
        raise CliError(f"Could not find allocation task group: {alloc.get('TaskGroup', '')}")
    if len(names) == 1:
        return names[0]
    listed = "".join(f"  * {n}\n" for n in names)
    raise CliError(f'Allocation "{alloc["ID"][:8]}" is running the following tasks:\n{listed}\n'
                   "Please specify the task.")


def alloc_exec(addr: str, args: list[str]) -> tuple[str, int]:
    from runtime.cli_jobs import parse_flags, random_job_alloc, request, resolve

    flags, rest = parse_flags(args, {"task": str, "job": bool, "group": str, "i": bool, "t": bool, "e": str})
    stdin_on = flags.get("i", True)
    use_tty = flags.get("t", _is_tty())
    escape = flags.get("e", "~")
    if not rest:
        raise CliError(("A job ID is required" if flags.get("job") else "An allocation ID is required")
                       + "\n" + HELP_TEXT)
    if not flags.get("job") and len(rest[0]) == 1:
        raise CliError("Alloc ID must contain at least two characters")
    if len(rest) < 2:
        raise CliError("A command is required\n" + HELP_TEXT)
    if use_tty and not stdin_on:
        raise CliError("-i must be enabled if running with tty")
    if escape == "none":
        escape = ""
    if len(escape) > 1:
        raise CliError("-e requires 'none' or a single character")
    stub = random_job_alloc(addr, rest[0], flags.get("group", "")) if flags.get("job") \
        else resolve(addr, "allocation", rest[0])
    assert isinstance(stub, dict)
    alloc = request(addr, "GET", f"/v1/allocation/{stub['ID']}", namespace=stub.get("Namespace"))
    task = _task_of(alloc, flags.get("task", ""))
    query = urllib.parse.urlencode({"task": task, "tty": "true" if use_tty else "false",
                                    "command": json.dumps(rest[1:]),
                                    "namespace": alloc.get("Namespace") or "default"})
    return "", run_session(addr, alloc, f"/v1/client/allocation/{alloc['ID']}/exec?{query}", use_tty,
                           stdin_on, escape)


def run_session(addr: str, alloc: dict[str, Any], path: str, use_tty: bool, stdin_on: bool,
                escape: str) -> int:
    """An exec session on *path* (alloc exec's, or a job action's), on the node that runs *alloc* or
    through the agent; the remote command's exit code."""
    from runtime.cli_jobs import _node_url

    try:
        node_url = _node_url(addr, alloc)
    except CliError:  # the node is not readable with this token (node:read), or has no address
        node_url = ""
    try:
        ws, sock = _open(addr, node_url, path)
    except (WsHandshakeError, WsProtocolError, OSError) as e:
        raise CliError(f"failed to exec into task: {e}") from None
    old_term = signal.signal(signal.SIGTERM, _interrupted)
    try:
        with sock:
            return _Session(ws, use_tty, stdin_on, escape).run()
    except KeyboardInterrupt:  # Ctrl-C (without a terminal) or SIGTERM: Nomad cancels the session
        raise CliError("failed to exec into task: context canceled") from None
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _open(addr: str, node_url: str, path: str) -> tuple[WsConn, Any]:
    """The node directly; through the agent at *addr* (which relays it) when the node cannot be found
    or reached (Nomad's api: its node lookup needs node:read, and the fallback does not)."""
    headers = {"X-Nomad-Token": cli.ACTIVE["token"]} if cli.ACTIVE["token"] else {}
    tls = {"ssl_context": cli.ACTIVE["ssl_context"], "server_hostname": cli.ACTIVE.get("tls_server_name")}
    if node_url:
        try:
            return connect(node_url + path, headers, **tls)
        except OSError:
            pass
    return connect(addr.rstrip("/") + path, headers, **tls)


class _Session:
    """The CLI's half of an exec session: threads for stdin and heartbeats, output on this thread."""

    def __init__(self, ws: WsConn, use_tty: bool, stdin_on: bool, escape: str) -> None:
        self.ws, self.tty, self.stdin_on, self.escape = ws, use_tty, stdin_on, escape
        self.control: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.disconnected = threading.Event()
        self._restore: Any = None

    def run(self) -> int:
        old_winch = None
        try:
            if self.tty:
                self._raw_mode()
                old_winch = signal.signal(signal.SIGWINCH, lambda *_: self.control.put_nowait(self._size()))
                self.control.put(self._size())
            threading.Thread(target=self._control_loop, daemon=True).start()
            if self.stdin_on:
                threading.Thread(target=self._stdin_loop, daemon=True).start()
            else:
                self._send({"stdin": {"close": True}})
            return self._receive()
        finally:
            self.control.put(None)
            if old_winch is not None:
                signal.signal(signal.SIGWINCH, old_winch)
            self._cooked()

    def _raw_mode(self) -> None:
        fd = sys.stdin.fileno()
        try:
            saved = termios.tcgetattr(fd)
        except termios.error:
            raise CliError("failed to exec into task: not a terminal") from None
        tty.setraw(fd)
        self._restore = (fd, saved)

    def _cooked(self) -> None:
        if self._restore is not None:
            fd, saved = self._restore
            self._restore = None
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    @staticmethod
    def _size() -> dict[str, Any]:
        try:
            raw = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            rows, cols = struct.unpack("HHHH", raw)[:2]
        except OSError:
            cols, rows = os.get_terminal_size(0)
        return {"tty_size": {"height": rows, "width": cols}}

    def _send(self, frame: dict[str, Any]) -> None:
        try:
            self.ws.send_text(json.dumps(frame, separators=(",", ":")))
        except OSError:
            pass  # the connection is gone: the receiving side reports it

    def _control_loop(self) -> None:
        while True:
            try:
                item = self.control.get(timeout=HEARTBEAT_S)
            except queue.Empty:
                item = {}  # Nomad's heartbeat
            if item is None:
                return
            self._send(item)

    def _stdin_loop(self) -> None:
        at_line_start, held = True, False
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, STDIN_CHUNK_BYTES)
            except OSError:
                data = b""
            if not data:
                self._send({"stdin": {"close": True}})
                return
            if self.tty and self.escape:
                out = bytearray()
                esc = self.escape.encode()[0]
                for b in data:
                    if held:
                        held = False
                        if b == ord("."):
                            self._disconnect()
                            return
                        if b != esc:
                            out.append(esc)
                        out.append(b)
                    elif at_line_start and b == esc:
                        held = True
                        continue
                    else:
                        out.append(b)
                    at_line_start = b in (ord("\r"), ord("\n"))
                data = bytes(out)
                if not data:
                    continue
            self._send({"stdin": {"data": base64.b64encode(data).decode("ascii")}})

    def _disconnect(self) -> None:
        """``~.``: the terminal back to normal, the notice, and the connection closed."""
        self._cooked()
        sys.stderr.write("\nConnection closed\n")
        sys.stderr.flush()
        self.disconnected.set()
        self.ws.close(CLOSE_NORMAL)

    def _receive(self) -> int:
        out, err = sys.stdout.buffer, sys.stderr.buffer
        try:
            while True:
                _, payload = self.ws.recv()
                try:
                    frame = json.loads(payload)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                for name, stream in (("stdout", out), ("stderr", err)):
                    part = frame.get(name)
                    if isinstance(part, dict) and part.get("data"):
                        stream.write(base64.b64decode(part["data"]))
                        stream.flush()
                if frame.get("exited") and isinstance(frame.get("result"), dict):
                    return int(frame["result"].get("exit_code", 0))
        except WsClosed as e:
            if self.disconnected.is_set():
                raise CliError("failed to exec into task: context canceled") from None
            if e.reason:
                raise CliError(f"failed to exec into task: {e.reason}") from None
            raise CliError("failed to exec into task: websocket closed before receiving exit code: "
                           f"websocket: close {e.code}") from None
        except (WsProtocolError, OSError) as e:
            if self.disconnected.is_set():
                raise CliError("failed to exec into task: context canceled") from None
            raise CliError(f"failed to exec into task: {e}") from None


EXEC_COMMANDS = {("alloc", "exec"): alloc_exec}
