"""``/v1/client/allocation/<id>/exec``: a command run beside a task, over a WebSocket (Nomad's alloc exec).

``GET ...?task=<t>&tty=<bool>&command=<JSON array>`` with the WebSocket
upgrade headers (and ``ws_handshake=true``: the token comes in the first
message, ``{"version": 1, "auth_token": ...}``).  As Nomad's HTTP agent (``command/agent/alloc_endpoint.go``
allocExec): a ``command`` that is not a JSON array of strings, or a ``tty``
that is not a boolean, is a plain HTTP 500 before the upgrade; a request
that is not a WebSocket one a 400.  Everything else is answered on the
WebSocket: after the 101, the checks of Nomad's client ``Allocations.Exec``
run, in its order, and a failure is a close frame with the message as its
reason -- code 1011 for a 500, 1008 (policy violation) for any other:

* ``Unknown allocation "<id>"`` (404);
* with ACLs, ``Permission denied`` without ``alloc-exec`` in the
  allocation's namespace (500, as Nomad, whose error has no code);
* ``must provide task name`` (400), ``command is not present`` (400);
* ``unknown task name "<t>"`` (400);
* with ACLs, ``Permission denied`` without ``alloc-node-exec`` too when the
  task's driver has no file-system isolation (``raw_exec``);
* ``task "<t>" not started yet.`` (404), ``task "<t>" is not running.`` (404).

Messages are JSON text frames, as Nomad's: in ``{"stdin": {"data": <base64>,
"close": bool}}``, ``{"tty_size": {"height": h, "width": w}}`` and the
heartbeat ``{}``; out ``{"stdout": {"data": <base64>}}`` / ``{"stderr": ...}``
(``{"close": true}`` at the stream's end) and, last,
``{"exited": true, "result": {"exit_code": n}}`` followed by a normal close.
An input frame that is not such JSON (or whose data is not base64), or a
``tty_size`` without a tty (Nomad's ``attempted to resize a non-tty
session``), ends the session with close 1011 and the reason -- Nomad reports
the error only once the command has exited; here the command is killed at
once -- and the agent itself is unaffected.  A command killed by a signal
exits with 128 + the signal's number, as Nomad's ``cmdExitResult``.

The command runs as raw_exec runs its task (Nomad's executor ``Exec``): in
the task directory, with the task's environment, as the task's ``user``, in
a session of its own.  With ``tty=true`` it gets a pseudo-terminal (its
controlling terminal; ``tty_size`` sets its window size), else stdin,
stdout and stderr pipes.  ``stdin.close`` closes its stdin (on a tty: an
end-of-file character, as a terminal's Ctrl-D).  When the WebSocket closes
or drops, or the peer stays silent for :data:`EXEC_IDLE_TIMEOUT_S`, the
command's process group is killed.

Into an ``exec`` task (file-system isolation: ``alloc-exec`` is enough, as
Nomad's) the command runs inside the task, as Nomad's executor
ExecStreaming runs it in the task's container: the launcher's ``enter``
helper (``actors.client.exec_launcher``) joins the task's cgroups (its
limits count it), its IPC, PID and mount namespaces (its ``ps`` shows the
task's processes, PID 1 the task) and its chroot (``/local``, ``/alloc``,
``/secrets``), in its ``work_dir``, as its user with its capabilities and
environment; a bare command name is looked up on the task's ``$PATH``
inside the chroot.  With a tty the command takes the pty as its controlling
terminal there.  Closing the session kills the command and what it started.

The process I/O runs in the request's greenlets (the HTTP edge, outside any
actor); the allocation runner is only asked, once, for the task's state,
directory, environment and user (:class:`GetExecTarget`).

An allocation this agent does not hold is relayed, as the other client
routes (``actors.http_client_forward``): the upgrade request goes to the
node that runs it, and once the node switches protocols the bytes are
copied both ways unchanged (the frames are end to end).
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import termios
import urllib.parse
from typing import Any

import gevent
import gevent.lock
import gevent.os
import gevent.subprocess

from actors.acl import Need
from actors.agent_messages import GetSelf
from actors.client.alloc_runner import ExecTarget, GetExecTarget
from actors.client.drivers import DriverError, resolve_user
from actors.http_api import Api, CodedError, Request, Response, Upgraded, parse_go_bool
from actors.http_limits import TAKE_OVER
from runtime.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    OP_TEXT,
    WsClosed,
    WsConn,
    WsProtocolError,
    accept_key,
)

log = logging.getLogger("agent.http.alloc_exec")

ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)
# Drivers whose tasks a command can be run beside (exec: inside), and whether each isolates
# the file system (Nomad's DriverCapabilities.FSIsolation): raw_exec does
# not, so its exec needs alloc-node-exec as well as alloc-exec; exec does (a chroot).
EXEC_DRIVERS = {"raw_exec": False, "exec": True}
# Output is read and sent in pieces at most this big (before base64): Nomad's
# executor reads 32 KiB at a time.
OUTPUT_CHUNK_BYTES = 32 * 1024
# A session whose peer sent nothing -- not even the heartbeat Nomad's client
# sends every 10 s -- for this long is taken as gone (a laptop that vanished
# sends no FIN): it is ended and its command killed.
EXEC_IDLE_TIMEOUT_S = 300.0
# Once the command has exited, what it wrote is still sent until its output
# ends; a child it left holding the terminal or pipes is waited for at most
# this long before the exit is reported (and the child killed with the session).
EXEC_DRAIN_S = 2.0
# How long the relay waits for the allocation's node to connect and answer the upgrade.
RELAY_CONNECT_TIMEOUT_S = 10.0
RELAY_CHUNK_BYTES = 64 * 1024
FORWARDED_HEADER = "X-Nomad-Client-Forwarded"
_FORWARDED_ENVIRON = "HTTP_X_NOMAD_CLIENT_FORWARDED"
_PASSED = (("HTTP_X_NOMAD_TOKEN", "X-Nomad-Token"), ("HTTP_AUTHORIZATION", "Authorization"),
           ("HTTP_SEC_WEBSOCKET_KEY", "Sec-WebSocket-Key"),
           ("HTTP_SEC_WEBSOCKET_VERSION", "Sec-WebSocket-Version"))
PERMISSION_DENIED = "Permission denied"  # Nomad's ErrPermissionDenied
MAX_RELAY_HEAD_BYTES = 64 * 1024  # the node's answer to the upgrade: its status line and headers
# How long entering an exec task (its namespaces, chroot, user) may take before the command runs:
# milliseconds normally, the helper's interpreter start some tens; beyond, the session fails.
ENTER_TIMEOUT_S = 10.0


class ExecError(Exception):
    """An exec check failed: the session ends with a close frame (Nomad's codes: 500 -> 1011, else 1008)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _query(req: Request, name: str) -> str:
    return (req.query.get(name) or [""])[0]


def alloc_exec(req: Request, api: Api, alloc_id: str) -> Any:
    """The exec endpoint (routed from actors.http_client_alloc)."""
    if req.method != "GET":
        raise CodedError(405, "Invalid method")
    environ = req.environ or {}
    try:
        command = json.loads(_query(req, "command"))
    except ValueError as e:
        raise CodedError(500, f"failed to marshal command into json: {e}") from None
    if command is None:
        command = []
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise CodedError(500, "failed to marshal command into json: command must be an array of strings")
    tty = False
    if _query(req, "tty"):
        raw = _query(req, "tty")
        parsed = parse_go_bool(raw)
        if parsed is None:
            raise CodedError(500, f'tty value is not a boolean: strconv.ParseBool: parsing "{raw}": '
                                  "invalid syntax")
        tty = parsed
    _check_websocket(environ)
    if not environ.get(_FORWARDED_ENVIRON) and not _held_here(api, alloc_id):
        return _relay(req, api, alloc_id, environ)
    ws, _sock = _upgrade(environ, ())
    try:
        _handshake(ws, environ, _query(req, "ws_handshake"))
        _run_session(req, api, ws, alloc_id, _query(req, "task"), command, tty,
                     action=_query(req, "action"), job=_query(req, "job"))
    except ExecError as e:
        log.info("task exec session ended with an error: alloc_id=%s error=%s code=%d", alloc_id, e, e.code)
        ws.close(CLOSE_INTERNAL_ERROR if e.code == 500 else CLOSE_POLICY_VIOLATION, str(e))
    except (WsClosed, WsProtocolError, OSError) as e:  # the peer went: its command was killed
        log.info("task exec session ended: alloc_id=%s: %s", alloc_id, e)
    except Exception as e:  # a bug must not reach the WSGI layer, which no longer owns the connection
        log.exception("task exec session failed: alloc_id=%s", alloc_id)
        ws.close(CLOSE_INTERNAL_ERROR, f"internal error: {type(e).__name__}: {e}")
    return Upgraded()


def _check_websocket(environ: dict[str, Any]) -> None:
    """gorilla's Upgrader checks (Nomad answers a plain request with its 400)."""
    prefix = "websocket: the client is not using the websocket protocol: "
    if "upgrade" not in [t.strip().lower() for t in str(environ.get("HTTP_CONNECTION", "")).split(",")]:
        raise CodedError(400, prefix + "'upgrade' token not found in 'Connection' header")
    if str(environ.get("HTTP_UPGRADE", "")).lower() != "websocket":
        raise CodedError(400, prefix + "'websocket' token not found in 'Upgrade' header")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "") != "13":
        raise CodedError(400, "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' "
                              "header")
    key = str(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""))
    try:
        ok = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise CodedError(400, "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be "
                              "Base64 encoded value of 16-byte length")
    if TAKE_OVER not in environ:
        raise CodedError(500, "websocket: this server cannot take the connection over")


def _upgrade(environ: dict[str, Any], extra: tuple[tuple[str, str], ...]) -> tuple[WsConn, Any]:
    key = str(environ["HTTP_SEC_WEBSOCKET_KEY"])
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key)),
               *extra]
    sock, rfile = environ[TAKE_OVER]("101 Switching Protocols", headers)
    sock.settimeout(EXEC_IDLE_TIMEOUT_S)
    return WsConn(rfile.read, sock.sendall, client=False, lock=gevent.lock.Semaphore()), sock


def _held_here(api: Api, alloc_id: str) -> bool:
    """This agent runs the allocation (its runner knows it)."""
    if api.ctx.alloc_logs is None or api.env.lookup(ALLOC_RUNNER) is None:
        return False
    try:
        return bool(api.ask(ALLOC_RUNNER, GetExecTarget(alloc_id=alloc_id, task="")).found)
    except CodedError:
        return False


def _handshake(ws: WsConn, environ: dict[str, Any], flag: str) -> None:
    """Nomad's readWsHandshake: with ``ws_handshake=true`` (a browser cannot set headers on a
    WebSocket) the first message is ``{"version": 1, "auth_token": "<secret>"}``, the request's token."""
    if not flag:
        return
    wanted = parse_go_bool(flag)
    if wanted is None:
        raise ExecError(400, f'ws_handshake value is not a boolean: strconv.ParseBool: parsing "{flag}": '
                             "invalid syntax")
    if not wanted:
        return
    try:
        _, payload = ws.recv()
        message = json.loads(payload)
    except ValueError as e:
        raise ExecError(400, f"invalid handshake message: {e}") from None
    version = message.get("version") if isinstance(message, dict) else None
    if version != 1:
        raise ExecError(400, f"unexpected handshake value: {version if version is not None else 0}")
    token = message.get("auth_token")
    environ["HTTP_X_NOMAD_TOKEN"] = token if isinstance(token, str) else ""
    environ.pop("HTTP_AUTHORIZATION", None)


# ---------------------------------------------------------------- the checks


def _target(api: Api, alloc_id: str, task: str) -> ExecTarget:
    if api.env.lookup(ALLOC_RUNNER) is None:
        raise ExecError(404, f'Unknown allocation "{alloc_id}"')
    try:
        target = api.ask(ALLOC_RUNNER, GetExecTarget(alloc_id=alloc_id, task=task))
    except CodedError as e:
        raise ExecError(e.code, e.message) from None
    if not target.found:
        raise ExecError(404, f'Unknown allocation "{alloc_id}"')
    return target


def _allowed(req: Request, api: Api, namespace: str, capability: str) -> None:
    if not api.ctx.acl_enabled:
        return
    from actors.http_acl import resolve

    try:
        _token, acl = resolve(req, api)
    except CodedError as e:
        raise ExecError(500, e.message) from None
    if not acl.allows((Need("namespace", capability, namespace),)):
        raise ExecError(500, PERMISSION_DENIED)


def _remote_exec_disabled(api: Api) -> bool:
    """This client's ``client.disable_remote_exec`` (Nomad: no task of this node can be entered)."""
    client = (api.ask(api.ctx.agent, GetSelf()).get("config") or {}).get("Client") or {}
    return bool(client.get("DisableRemoteExec"))


def _checked(req: Request, api: Api, alloc_id: str, task: str, command: list[str], action: str = "",
             job: str = "") -> tuple[ExecTarget, list[str]]:
    """Nomad's client Allocations.Exec checks, in its order; the target and the command to run (with
    *action*, the task's job action's command and arguments, as ``nomad job action`` asks)."""
    if _remote_exec_disabled(api):
        raise ExecError(500, PERMISSION_DENIED)  # ErrPermissionDenied with no code: 500, as the ACL check
    target = _target(api, alloc_id, task)
    _allowed(req, api, target.namespace, "alloc-exec")
    if not task:
        raise ExecError(400, "must provide task name")
    if job and job != target.job_id:
        raise ExecError(400, f"job {job} does not have allocation {alloc_id}")
    if action:
        if not target.task_known:
            raise ExecError(400, f"task {task} not found in allocation {alloc_id}")
        found = dict(target.actions).get(action)
        if found is None:
            raise ExecError(400, f"action {action} not found in task {task}")
        command = list(found)
    if not command:
        raise ExecError(400, "command is not present")
    if not target.task_known:
        raise ExecError(400, f"unknown task name {json.dumps(task)}")
    if target.driver not in EXEC_DRIVERS:
        raise ExecError(400, f"driver {target.driver!r} does not support exec (ExecTaskStreaming)")
    if not EXEC_DRIVERS[target.driver]:  # no file-system isolation: the node itself is reached
        _allowed(req, api, target.namespace, "alloc-node-exec")
    if not target.started:
        raise ExecError(404, f"task {json.dumps(task)} not started yet.")
    if not target.running:
        raise ExecError(404, f"task {json.dumps(task)} is not running.")
    return target, command


# ---------------------------------------------------------------- the session


def _run_session(req: Request, api: Api, ws: WsConn, alloc_id: str, task: str, command: list[str],
                 tty: bool, *, action: str = "", job: str = "") -> None:
    target, command = _checked(req, api, alloc_id, task, command, action, job)
    log.info("task exec session starting: alloc_id=%s task=%s command=%s tty=%s", alloc_id, task, command,
             tty)
    session = _Session(ws, target, command, tty)
    session.start()
    try:
        code = session.run()
    finally:
        session.kill()
    ws.send_text(json.dumps({"exited": True, "result": {"exit_code": code}}))
    ws.close(CLOSE_NORMAL)
    log.info("task exec session ended: alloc_id=%s task=%s exit_code=%d", alloc_id, task, code)


class _Session:
    """One exec'd command and its I/O (greenlets of the request: the HTTP edge)."""

    def __init__(self, ws: WsConn, target: ExecTarget, command: list[str], tty: bool) -> None:
        self.ws, self.target, self.command, self.tty = ws, target, command, tty
        self.proc: Any = None
        self.stdin_fd = -1
        self.master = -1
        self.outputs: list[tuple[str, int]] = []
        self.failure: ExecError | None = None

    def start(self) -> None:
        enter: dict[str, Any] = json.loads(self.target.enter) if self.target.enter else {}
        if "error" in enter:
            raise ExecError(500, str(enter["error"]))
        ids: dict[str, Any] = {}
        if not enter:
            try:
                run_as = resolve_user(self.target.driver, self.target.user)
            except DriverError as e:
                raise ExecError(500, str(e)) from None
            if run_as is not None:
                ids = {"user": run_as[0], "group": run_as[1], "extra_groups": run_as[2]}
        env = {**os.environ, **dict(self.target.env)}
        child_fds: list[int] = []
        try:
            if self.tty:
                self.master, slave = os.openpty()
                child_fds.append(slave)
                # gevent's Popen calls setsid after preexec_fn: the new session comes from _controlling_tty.
                stdio = {"stdin": slave, "stdout": slave, "stderr": slave, "preexec_fn": _controlling_tty,
                         "start_new_session": False}
                self.stdin_fd = self.master
                self.outputs = [("stdout", self.master)]
            else:
                in_r, in_w = os.pipe()
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                child_fds += [in_r, out_w, err_w]
                stdio = {"stdin": in_r, "stdout": out_w, "stderr": err_w}
                self.stdin_fd = in_w
                self.outputs = [("stdout", out_r), ("stderr", err_r)]
            for _, fd in self.outputs:
                gevent.os.make_nonblocking(fd)
            gevent.os.make_nonblocking(self.stdin_fd)
            if enter:  # an isolated task (exec): the command runs inside it
                stdio.pop("preexec_fn", None)  # the helper's child takes the terminal, in the task
                self._enter({**enter, "task_dir": os.path.abspath(self.target.task_dir), "env": env,
                             "argv": self.command, "tty": self.tty}, stdio)
                return
            try:
                self.proc = gevent.subprocess.Popen(self.command, cwd=self.target.task_dir, env=env,
                                                    close_fds=True, **{"start_new_session": True, **stdio},
                                                    **ids)
            except FileNotFoundError:
                why = f'exec: "{self.command[0]}": executable file not found in $PATH'
                raise ExecError(500, why) from None
            except OSError as e:
                raise ExecError(500, f'exec: "{self.command[0]}": {e.strerror or e}') from None
        except BaseException:
            self._close_fds()
            raise
        finally:
            for fd in child_fds:
                os.close(fd)

    def _enter(self, spec: dict[str, Any], stdio: dict[str, Any]) -> None:
        """Start the launcher's ``enter`` helper (actors.client.exec_launcher): it joins the task's
        cgroups, namespaces and chroot and runs the command there as the task's user.  The spec goes
        through a pipe (the task's environment may hold secrets); a failure before the command runs
        comes back on the status pipe, closed (nothing said) once it runs."""
        from actors.client import exec_launcher

        status_r, status_w = os.pipe()
        spec_r, spec_w = os.pipe()
        try:
            try:
                self.proc = gevent.subprocess.Popen(
                    [sys.executable, "-I", "-S", exec_launcher.__file__, "enter", str(spec_r), str(status_w)],
                    cwd="/", env={}, close_fds=True, pass_fds=(spec_r, status_w),
                    **{"start_new_session": True, **stdio})
            except OSError as e:
                raise ExecError(500, f"failed to start the exec helper: {e.strerror or e}") from None
            finally:
                os.close(spec_r)
                os.close(status_w)
            data = memoryview(json.dumps(spec).encode())
            gevent.os.make_nonblocking(spec_w)  # a large environment: written as the helper reads it
            try:
                with gevent.Timeout(ENTER_TIMEOUT_S, False):
                    while data:
                        data = data[gevent.os.nb_write(spec_w, data):]
            except OSError:
                pass  # the helper is gone: its status says why
            os.close(spec_w)
            spec_w = -1
            gevent.os.make_nonblocking(status_r)
            said, ended = b"", False
            with gevent.Timeout(ENTER_TIMEOUT_S, False):
                while chunk := gevent.os.nb_read(status_r, 4096):
                    said += chunk
                ended = True
            if said or not ended:
                why = said.decode("utf-8", "replace") or (
                    f"the command was not running in the task after {ENTER_TIMEOUT_S:g} s")
                self.kill()
                raise ExecError(500, why)
        finally:
            for fd in (status_r, spec_w):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def run(self) -> int:
        pumps = [gevent.spawn(self._pump, name, fd) for name, fd in self.outputs]
        reader = gevent.spawn(self._read_input)
        waiter = gevent.spawn(self.proc.wait)
        # Ends when the command exits, or the peer goes (reader ends first).
        gevent.joinall([waiter, reader], count=1)
        if not waiter.ready():  # the peer closed or dropped: the command is killed
            # The pumps go before their descriptors are closed: a pump still waiting on a number that
            # is closed and then reused by another part of the agent would read that one's data.
            reader.kill()
            gevent.killall(pumps)
            self.kill()
            waiter.join(EXEC_DRAIN_S)
            if self.failure is not None:
                raise self.failure
            raise WsClosed(1006, "peer gone")
        gevent.joinall(pumps, timeout=EXEC_DRAIN_S)
        gevent.killall(pumps)
        reader.kill()
        if self.failure is not None:
            raise self.failure
        rc = self.proc.returncode
        if rc is None:
            return -2  # Nomad's code when the process state is unknown
        return rc if rc >= 0 else 128 - rc  # killed by a signal: 128 + its number, as Nomad's cmdExitResult

    def _send(self, frame: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    def _pump(self, name: str, fd: int) -> None:
        try:
            while True:
                try:
                    data = gevent.os.nb_read(fd, OUTPUT_CHUNK_BYTES)
                except OSError as e:
                    if e.errno == errno.EIO:  # a pty whose last holder closed it: its end
                        break
                    raise
                if not data:
                    break
                self._send({name: {"data": base64.b64encode(data).decode("ascii")}})
            self._send({name: {"close": True}})
        except OSError:
            pass  # the peer is gone: the reader notices

    def _read_input(self) -> None:
        """Input frames until the peer closes; a malformed one ends the session (Nomad's 500)."""
        try:
            while True:
                opcode, payload = self.ws.recv()
                self._input(opcode, payload)
        except ExecError as e:
            self.failure = e
        except (WsClosed, WsProtocolError):
            pass
        except (TimeoutError, OSError):
            pass

    def _input(self, opcode: int, payload: bytes) -> None:
        try:
            msg = json.loads(payload.decode("utf-8") if opcode == OP_TEXT else payload)
        except (UnicodeDecodeError, ValueError) as e:
            raise ExecError(500, f"invalid exec input: {e}") from None
        if not isinstance(msg, dict):
            raise ExecError(500, "invalid exec input: not a JSON object")
        stdin, size = msg.get("stdin"), msg.get("tty_size")
        if stdin is not None:
            if not isinstance(stdin, dict):
                raise ExecError(500, "invalid exec input: stdin must be an object")
            raw = stdin.get("data") or ""
            try:
                data = base64.b64decode(raw, validate=True) if raw else b""
            except (binascii.Error, ValueError, TypeError) as e:
                raise ExecError(500, f"invalid exec input: illegal base64 data in stdin: {e}") from None
            if data:
                self._write_stdin(data)
            if stdin.get("close"):
                self._close_stdin()
        if size is not None and not self.tty:
            raise ExecError(500, "attempted to resize a non-tty session")  # Nomad's handleStdin
        if size is not None and self.master >= 0:
            try:
                h, w = int(size.get("height", 0)), int(size.get("width", 0))
            except (AttributeError, TypeError, ValueError):
                raise ExecError(500, "invalid exec input: tty_size needs numbers height and width") from None
            if 0 <= h < 65536 and 0 <= w < 65536:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))

    def _write_stdin(self, data: bytes) -> None:
        if self.stdin_fd < 0:
            return  # closed: what comes after is dropped, as a closed pipe would refuse it
        view = memoryview(data)
        try:
            while view:
                n = gevent.os.nb_write(self.stdin_fd, view)
                view = view[n:]
        except OSError:  # the command closed its stdin or exited
            pass

    def _close_stdin(self) -> None:
        if self.tty:
            self._write_stdin(b"\x04")  # a terminal's end of file (Ctrl-D)
            return
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def kill(self) -> None:
        """Kill the command's process group (it led its own session) and release the descriptors."""
        proc = self.proc
        if proc is not None:
            try:  # inside an exec task the command leads its own group with a terminal: that too
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    inner = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                inner = []
            for pid in inner:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.wait(timeout=EXEC_DRAIN_S)
            except Exception:
                pass
        self._close_fds()

    def _close_fds(self) -> None:
        fds = {fd for _, fd in self.outputs} | ({self.stdin_fd} if self.stdin_fd >= 0 else set())
        if self.master >= 0:
            fds.add(self.master)
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.outputs, self.stdin_fd, self.master = [], -1, -1


def _controlling_tty() -> None:
    """In the child: a session of its own, its pty (fd 0) its controlling terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


# ---------------------------------------------------------------- the relay to the allocation's node


def _relay(req: Request, api: Api, alloc_id: str, environ: dict[str, Any]) -> Any:
    from actors.http_client_forward import _locate

    try:
        found = _locate(api, environ, alloc_id)
        if found is None:
            raise ExecError(404, f'Unknown allocation "{alloc_id}"')
        node_id, target, namespace = found
        if not target:
            raise ExecError(500, f"node {node_id} has no HTTP address to relay to")
    except (ExecError, CodedError) as e:
        ws, _sock = _upgrade(environ, ())
        code = e.code
        ws.close(CLOSE_INTERNAL_ERROR if code == 500 else CLOSE_POLICY_VIOLATION, str(e))
        return Upgraded()
    query = {k: v for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
             .items() if k != "namespace"}
    query["namespace"] = [namespace]
    path = urllib.parse.quote(req.path, safe="/:@-._~!$&'()*+,;=")
    url = path + "?" + urllib.parse.urlencode(query, doseq=True)
    host, _, port = target.rpartition(":")
    try:
        node = socket.create_connection((host.strip("[]"), int(port)), timeout=RELAY_CONNECT_TIMEOUT_S)
        if api.ctx.tls is not None:
            node = api.ctx.tls.http_client_context().wrap_socket(node, server_hostname=host.strip("[]"))
        lines = [f"GET {url} HTTP/1.1", f"Host: {target}", "Upgrade: websocket", "Connection: Upgrade",
                 f"{FORWARDED_HEADER}: 1"]
        lines += [f"{name}: {environ[k]}" for k, name in _PASSED if k in environ]
        node.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reader = node.makefile("rb")
        status, headers, body = _read_head(reader)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise CodedError(500, f"failed relaying to node {node_id} at {target}: {e}") from None
    if status != 101:
        node.close()
        ctype = headers.get("content-type", "text/plain; charset=utf-8")
        return Response(status, body, ctype)
    answer = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Accept", headers.get("sec-websocket-accept", ""))]
    sock, rfile = environ[TAKE_OVER]("101 Switching Protocols", answer)
    sock.settimeout(None)
    node.settimeout(None)
    up = gevent.spawn(_copy, rfile, node)
    down = gevent.spawn(_copy, reader, sock)
    gevent.joinall([up, down], count=1)
    gevent.killall([up, down])
    for s in (node, sock):
        try:
            s.close()
        except OSError:
            pass
    return Upgraded()


def _read_head(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """The node's status, headers (lower-cased names) and -- for a non-101 answer -- its body."""
    status_line = reader.readline(MAX_RELAY_HEAD_BYTES).decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"malformed answer {status_line.strip()!r}")
    headers: dict[str, str] = {}
    total = len(status_line)
    while True:
        line = reader.readline(MAX_RELAY_HEAD_BYTES).decode("latin-1")
        total += len(line)
        if total > MAX_RELAY_HEAD_BYTES:
            raise ValueError("answer headers too long")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(parts[1])
    body = b""
    if status != 101:
        body = reader.read(min(int(headers.get("content-length", "0") or 0), MAX_RELAY_HEAD_BYTES))
    return status, headers, body


def _copy(src: Any, dst: Any) -> None:
    try:
        while data := src.read1(RELAY_CHUNK_BYTES):
            dst.sendall(data)
    except (OSError, ValueError):
        pass
