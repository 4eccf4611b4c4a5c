"""Client-only agents forward server-bound HTTP API requests to a server over RPC.

Nomad's client agent answers ``/v1/jobs``, ``/v1/nodes``, ``/v1/status/...``
and the rest of the server API by making the same RPC to one of its
servers (``client/rpc.go`` ``RPC``).  Here the request itself travels: the
client's HTTP handler hands the method, path, query, body and the headers
that matter to the local :class:`HttpForwarder`, which sends an
:class:`HttpForwardRequest` to a server's :class:`HttpEndpoint` over the RPC
port the client already talks to (so only the servers' RPC addresses are
needed, as in Nomad).  The endpoint acknowledges at once, runs the request
through the server's own WSGI application in a greenlet of its own (outside
any actor: the handler may wait on Raft), and sends the answer back in
chunks.  Both actors only ``tell``; the waiting happens in the client's HTTP
handler greenlet, with a deadline.

Failover: a server that does not acknowledge within
``FORWARD_ACK_TIMEOUT_S`` is taken as unreachable (the transport drops frames
to a dead peer silently) and the next server is tried -- only an
unacknowledged request is retried, so a write is never applied twice by
our retry.  With no server known the answer is Nomad's ``500 no servers``
(``client.noServersErr``); with none reachable, ``500`` naming each one.

Wire tags 400-449 (ONLY APPEND new tags).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.pool

from actors import http_api
from actors.http_api import (
    DEFAULT_QUERY_TIME_S,
    JITTER_FRACTION,
    MAX_BODY_BYTES,
    MAX_QUERY_TIME_S,
    PLAIN,
    REGION_FORWARD_TIMEOUT_S,
    Api,
    CodedError,
    HttpContext,
    Request,
    Response,
    read_body,
)
from runtime.actor import NodeActor
from runtime.env import Env
from runtime.wire import Message, message

__all__ = ["CLIENT_LOCAL_PATHS", "ENDPOINT", "FORWARDER", "NO_SERVERS", "HttpEndpoint", "HttpForwardAccepted",
           "HttpForwardRequest", "HttpForwardResponse", "HttpForwarder", "forward_to_server"]

log = logging.getLogger("agent.http.forward")

msg = dataclass(frozen=True, slots=True, kw_only=True)

FORWARDER = "http-forward"  # the client-side actor
ENDPOINT = "http-endpoint"  # the server-side actor
# Nomad's noServersErr (client/client.go): the client knows no server.
NO_SERVERS = "no servers"
# Answered by the client agent itself, as Nomad's agent endpoints are (the
# client's own health, self, servers list, metrics, keyring...).  Everything
# else needs a server's state and is forwarded; /v1/agent/members too, which
# Nomad answers on clients "through an RPC" (NOMAD.md §8).
CLIENT_LOCAL_PATHS = ("/v1/agent/", "/v1/metrics", "/v1/client/")
CLIENT_FORWARDED_AGENT_PATHS = ("/v1/agent/members",)
# A server acknowledges a forwarded request on receipt; none within this
# means the request never reached it (connect refused, or a dead link whose
# frames the transport drops), so the next server is tried.  A loopback or
# LAN round trip is ms; the transport's connect timeout is 2 s.
FORWARD_ACK_TIMEOUT_S = 2.0
# After the acknowledgement, the answer is awaited this long plus the
# blocking query's wait: the server's own leader wait (6 s) and its
# forwarding to another region fit in it (REGION_FORWARD_TIMEOUT_S, 10 s).
FORWARD_ANSWER_TIMEOUT_S = REGION_FORWARD_TIMEOUT_S
# The forwarder checks its deadlines this often (one timer, not one per request).
FORWARD_SWEEP_S = 0.1
# Requests a server runs for clients at once; beyond it the request is
# answered 500 at once.  The same bound as the HTTP server's own connections
# (actors.http_api.MAX_CONNECTIONS), so forwarded load cannot outgrow direct load.
FORWARD_MAX_INFLIGHT = http_api.MAX_CONNECTIONS
# Requests one client agent has in flight to its servers at once (its own
# HTTP server already bounds its connections by the same number).
FORWARDER_MAX_PENDING = http_api.MAX_CONNECTIONS
# An answer travels in pieces of at most this many bytes: a wire frame holds
# 4 MiB (runtime.wire.DEFAULT_MAX_FRAME_BYTES), and a large read such as
# /v1/allocations on a big cluster can exceed that.
FORWARD_CHUNK_BYTES = 1024 * 1024
# Answers above this are refused (500) rather than streamed: it bounds what
# one forwarded request can make the client buffer.
FORWARD_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Request headers carried to the server: the body's type and the ACL token
# (either header Nomad's parseToken reads); the server checks the token.
FORWARD_HEADERS = ("Content-Type", "X-Nomad-Token", "Authorization")
# The handler's own safety net over the forwarder's deadlines.
HANDLER_MARGIN_S = 2.0


# ---------------------------------------------------------------- wire messages


@message(400)
@msg
class HttpForwardRequest(Message):
    """An HTTP API request a client agent relays to a server (method, path with query, body)."""

    req_id: int
    reply_node: str
    reply_actor: str
    method: str
    url: str  # path and query string as the client received them
    headers: tuple[tuple[str, str], ...] = ()  # FORWARD_HEADERS present on the request
    body: bytes = b""

    def __post_init__(self) -> None:
        if not self.url.startswith("/"):
            raise ValueError("url must be an absolute path")


@message(401)
@msg
class HttpForwardAccepted(Message):
    """The server received the request and is running it: wait for the answer, do not fail over."""

    req_id: int


@message(402)
@msg
class HttpForwardResponse(Message):
    """One piece of the answer: ``seq`` counts from 0; ``last`` marks the end of the body."""

    req_id: int
    status: int
    content_type: str = PLAIN
    headers: tuple[tuple[str, str], ...] = ()  # X-Nomad-* response headers
    body: bytes = b""
    seq: int = 0
    last: bool = True

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError("seq must be >= 0")


# ---------------------------------------------------------------- client side: the HTTP hook


def _forwarded_path(path: str) -> bool:
    if path.startswith("/.well-known/"):  # the servers' public keys (actors.http_workload_identity)
        return True
    if path == "/" or not path.startswith("/v1/"):
        return False
    if path.startswith(CLIENT_FORWARDED_AGENT_PATHS):
        return True
    if path.startswith("/v1/job/") and path.endswith("/action"):
        return False  # a job action's WebSocket session: relayed to the node, as alloc exec's
    return not path.startswith(CLIENT_LOCAL_PATHS)


def _answer_timeout_s(req: Request) -> float:
    """How long the server may take: its own waits plus a blocking query's (Nomad ``TimeToBlock``)."""
    if not (req.query.get("index") or [""])[0]:
        return FORWARD_ANSWER_TIMEOUT_S
    from runtime.config import parse_duration

    try:
        wait = parse_duration((req.query.get("wait") or [""])[0] or "0s")
    except ValueError:
        wait = 0.0  # the server answers 400 at once
    block = MAX_QUERY_TIME_S if wait > MAX_QUERY_TIME_S else DEFAULT_QUERY_TIME_S if wait <= 0 else wait
    return FORWARD_ANSWER_TIMEOUT_S + block * (1 + 1 / JITTER_FRACTION)


def forward_to_server(req: Request, environ: dict[str, Any], api: Api) -> Response | None:
    """On a client-only agent, relay a server-bound request to a server; None: answer here.

    Runs in the request's greenlet (outside any actor), so it may wait.
    """
    if not _forwarded_path(req.path) or api.env.lookup("raft") is not None:
        return None
    if req.path == "/v1/event/stream" and "poll" not in req.query:
        return None  # the stream is relayed one long poll at a time (actors.http_events)
    ref = api.env.lookup(FORWARDER)
    if ref is None or not ref.is_alive():
        return None  # not a client agent: the handlers answer (501 where they need a server)
    servers = tuple(api.ask("client", "status")["servers"]) if api.env.lookup("client") else ()
    if not servers:
        raise CodedError(500, NO_SERVERS)
    body = read_body(req)
    headers = tuple((h, environ[k]) for h in FORWARD_HEADERS
                    if (k := "CONTENT_TYPE" if h == "Content-Type" else "HTTP_" + h.upper().replace("-", "_"))
                    in environ and environ[k])
    answer_s = _answer_timeout_s(req)
    fut = api.env.make_future()
    ref.tell(Forward(method=req.method, url=req.url, headers=headers, body=body, servers=servers,
                     answer_timeout_s=answer_s, reply=fut))
    import pykka

    try:
        outcome = fut.get(timeout=FORWARD_ACK_TIMEOUT_S * len(servers) + answer_s + HANDLER_MARGIN_S)
    except pykka.Timeout:
        raise CodedError(500, "timed out forwarding the request to a server") from None
    if isinstance(outcome, str):
        raise CodedError(500, outcome)
    return outcome


# ---------------------------------------------------------------- client side: the actor


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Local only (it carries a future): relay this request to the first of *servers* that takes it."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    servers: tuple[str, ...]
    answer_timeout_s: float
    reply: Any  # future: set to a Response, or to a str (the 500's reason)


@dataclass(slots=True)
class _Pending:
    fwd: Forward
    next_server: int  # index into fwd.servers of the next server to try
    server: str = ""
    deadline: float = 0.0  # the acknowledgement's, then the answer's
    accepted: bool = False
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    failed: list[str] = field(default_factory=list)


class HttpForwarder(NodeActor):
    """A client agent's side of forwarding: picks the server, fails over, reassembles the answer."""

    def __init__(self, env: Env, name: str, *, ack_timeout_s: float = FORWARD_ACK_TIMEOUT_S,
                 endpoint: str = ENDPOINT, max_pending: int = FORWARDER_MAX_PENDING) -> None:
        super().__init__(env, name)
        if ack_timeout_s <= 0 or max_pending <= 0:
            raise ValueError("ack_timeout_s and max_pending must be > 0")
        self.ack_timeout_s = ack_timeout_s
        self.endpoint = endpoint
        self.max_pending = max_pending
        self.pending: dict[int, _Pending] = {}
        self._next_req = 0
        self.stats = {"forwarded": 0, "failovers": 0, "unreachable": 0, "timeouts": 0, "refused": 0}

    def receive(self, message: Any) -> Any:
        if isinstance(message, Forward):
            self._forward(message)
        elif isinstance(message, HttpForwardAccepted):
            p = self.pending.get(message.req_id)
            if p is not None and not p.accepted:
                p.accepted = True
                p.deadline = self.env.now() + p.fwd.answer_timeout_s
        elif isinstance(message, HttpForwardResponse):
            self._piece(message)
        elif message == "status":
            return {"pending": len(self.pending), **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        if name != "sweep":
            return
        now = self.env.now()
        for req_id in sorted(self.pending):
            p = self.pending[req_id]
            if p.deadline > now:
                continue
            if p.accepted:
                self.stats["timeouts"] += 1
                self._finish(req_id, f"timed out waiting for server {p.server} to answer")
            else:
                p.failed.append(p.server)
                self.stats["failovers"] += 1
                self._attempt(req_id)
        self._arm()

    def _forward(self, fwd: Forward) -> None:
        if len(self.pending) >= self.max_pending:
            self.stats["refused"] += 1
            fwd.reply.set(f"too many requests in flight to the servers ({self.max_pending})")
            return
        if not fwd.servers:
            fwd.reply.set(NO_SERVERS)
            return
        self._next_req += 1
        self.pending[self._next_req] = _Pending(fwd, 0)
        self.stats["forwarded"] += 1
        self._attempt(self._next_req)
        self._arm()

    def _attempt(self, req_id: int) -> None:
        p = self.pending[req_id]
        if p.next_server >= len(p.fwd.servers):
            self.stats["unreachable"] += 1
            self._finish(req_id, "rpc error: no server answered: " + ", ".join(p.failed))
            return
        p.server = p.fwd.servers[p.next_server]
        p.next_server += 1
        p.deadline = self.env.now() + self.ack_timeout_s
        f = p.fwd
        self.send(p.server, self.endpoint, HttpForwardRequest(
            req_id=req_id, reply_node=self.env.node, reply_actor=self.name, method=f.method, url=f.url,
            headers=f.headers, body=f.body))

    def _piece(self, m: HttpForwardResponse) -> None:
        p = self.pending.get(m.req_id)
        if p is None:
            return  # an answer we gave up on
        p.accepted = True
        if m.seq != len(p.chunks):  # a piece was lost with a broken connection
            self._finish(m.req_id, f"incomplete answer from server {p.server}")
            return
        p.chunks.append(m.body)
        p.size += len(m.body)
        if p.size > FORWARD_MAX_RESPONSE_BYTES:
            self._finish(m.req_id, f"answer from {p.server} exceeds {FORWARD_MAX_RESPONSE_BYTES} bytes")
            return
        if m.last:
            self._finish(m.req_id, Response(m.status, b"".join(p.chunks), m.content_type, m.headers))

    def _finish(self, req_id: int, outcome: Response | str) -> None:
        p = self.pending.pop(req_id)
        try:
            p.fwd.reply.set(outcome)
        except Exception:  # the handler gave up and its future is gone: nothing to tell
            log.debug("forwarded request %d answered after its handler left", req_id)

    def _arm(self) -> None:
        if self.pending and not self.timer_armed("sweep"):
            self.set_timer("sweep", FORWARD_SWEEP_S)
        elif not self.pending:
            self.cancel_timer("sweep")

    def on_stop(self) -> None:
        for req_id in sorted(self.pending):
            self._finish(req_id, "agent shutting down")
        super().on_stop()


# ---------------------------------------------------------------- server side


def _environ(m: HttpForwardRequest, sender: str) -> dict[str, Any]:
    path, _, query = m.url.partition("?")
    env: dict[str, Any] = {"REQUEST_METHOD": m.method, "PATH_INFO": path, "QUERY_STRING": query,
                           "CONTENT_LENGTH": str(len(m.body)), "wsgi.input": io.BytesIO(m.body),
                           "REMOTE_ADDR": sender.rpartition(":")[0].strip("[]"),
                           "SERVER_PROTOCOL": "HTTP/1.1", "nomad.forwarded_from": sender}
    for name, value in m.headers:
        key = "CONTENT_TYPE" if name.lower() == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        env[key] = value
    return env


def run_forwarded(app: Callable[..., Any], m: HttpForwardRequest) -> list[HttpForwardResponse]:
    """Run one forwarded request through the WSGI *app*; the answer as pieces (never raises)."""
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got["status"], got["headers"] = status, headers

    try:
        body = b"".join(app(_environ(m, m.reply_node), start_response))
        status = int(got["status"].split(" ", 1)[0])
        headers = got["headers"]
    except Exception as e:  # a bug here must still answer the waiting client
        log.exception("forwarded request failed: method=%s path=%s", m.method, m.url)
        body, status, headers = f"internal error: {type(e).__name__}: {e}".encode(), 500, []
    content_type = next((v for k, v in headers if k.lower() == "content-type"), PLAIN)
    passed = tuple((k, v) for k, v in headers if k.lower().startswith("x-nomad-"))
    pieces = [body[i:i + FORWARD_CHUNK_BYTES] for i in range(0, len(body), FORWARD_CHUNK_BYTES)] or [b""]
    last = len(pieces) - 1
    return [HttpForwardResponse(req_id=m.req_id, status=status, content_type=content_type, headers=passed,
                                body=piece, seq=i, last=i == last) for i, piece in enumerate(pieces)]


class HttpEndpoint(NodeActor):
    """A server's side: acknowledges, then runs each request in a greenlet of its bounded pool.

    An edge actor like HttpApi: the greenlet is the outside world (it may
    wait on Raft with the handlers' deadlines) and only ``env.send``s the
    answer; it never touches this actor's state.
    """

    def __init__(self, env: Env, name: str, ctx: HttpContext, *,
                 max_inflight: int = FORWARD_MAX_INFLIGHT) -> None:
        super().__init__(env, name)
        if max_inflight <= 0:
            raise ValueError("max_inflight must be > 0")
        self.app = http_api.App(Api(env, ctx))
        self.pool = gevent.pool.Pool(max_inflight)
        self.stats = {"served": 0, "refused": 0}

    def receive(self, message: Any) -> Any:
        if isinstance(message, HttpForwardRequest):
            self._request(message)
        elif message == "status":
            return {"inflight": len(self.pool), **self.stats}
        return None

    def _request(self, m: HttpForwardRequest) -> None:
        self.send(m.reply_node, m.reply_actor, HttpForwardAccepted(req_id=m.req_id))
        if len(m.body) > MAX_BODY_BYTES:
            self._reply(m, 413, f"Request body too large: {len(m.body)} bytes (limit {MAX_BODY_BYTES})")
            return
        if not _forwarded_path(m.url.partition("?")[0]):
            # A client answers these itself and never relays them; a peer that
            # does is not a client of ours, so this server's own agent
            # endpoints (join, reload, keyring...) stay behind its HTTP port.
            self._reply(m, 403, f"{m.url.partition('?')[0]} is answered by the client agent, not forwarded")
            return
        if self.pool.full():
            self.stats["refused"] += 1
            self._reply(m, 500, f"server busy: {self.pool.size} forwarded requests in flight")
            return
        self.stats["served"] += 1
        self.pool.spawn(self._serve, m)

    def _reply(self, m: HttpForwardRequest, status: int, text: str) -> None:
        self.send(m.reply_node, m.reply_actor,
                  HttpForwardResponse(req_id=m.req_id, status=status, body=text.encode()))

    def _serve(self, m: HttpForwardRequest) -> None:  # in its own greenlet: outside the actor
        for piece in run_forwarded(self.app, m):
            self.env.send(m.reply_node, m.reply_actor, piece)

    def on_stop(self) -> None:
        self.pool.kill(block=False)
        super().on_stop()


http_api.FORWARDERS.append(forward_to_server)
