"""HttpApi: Nomad's ``/v1/...`` HTTP API on gevent's WSGI server.

The actor only owns the server's lifetime (serve on its first message, stop
in ``on_stop``).  Each request runs in its own pywsgi greenlet -- the
outside world -- so a handler may ``ask`` an actor, always with
:data:`ASK_TIMEOUT_S`; it never touches an actor's state.

**Adding an endpoint**: write ``def handler(req: Request, api: Api) -> Any``
and register it with ``@route("/v1/...")`` (a path ending in ``/`` matches
its whole subtree, as Go's ``ServeMux`` does).  Return a JSON-able value,
a :class:`Response`, or None for an empty 200; raise :class:`CodedError`
for Nomad's plain-text errors (``Invalid method`` 405, 400, 415, 500...).
Errors are logged as Nomad's ``wrap`` logs them: DEBUG for 4xx, ERROR for
5xx, and every request ends with a DEBUG ``request complete`` line.
"""

from __future__ import annotations

import copy
import http.client
import io
import json
import logging
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent.pool
import pykka
from gevent.pywsgi import LoggingLogAdapter, WSGIServer

from actors.agent_messages import GetHealth, GetSelf, Reload
from actors.http_limits import CALLER_GONE, LimitedWSGIServer, close_when_gone
from actors.metrics import Metrics
from runtime.actor import NodeActor
from runtime.config import format_duration
from runtime.edge import edge_rng, monotonic
from runtime.env import Env

__all__ = ["ROUTES", "Answer", "Api", "CodedError", "HttpApi", "HttpContext", "Request", "Response",
           "Upgraded", "bind_listener", "route"]

log = logging.getLogger("agent.http")

# How long a handler waits for an actor's answer; Nomad's RPCs give up after
# RPCHoldTimeout = 5s too.
ASK_TIMEOUT_S = 5.0
# In-flight requests get this long to finish when the API stops; pywsgi
# cannot tell an idle keep-alive connection from a busy one, so it is short.
STOP_TIMEOUT_S = 1.0
# Concurrent connections served; more wait in the listen backlog.  Bounded so
# a connection flood cannot create unbounded greenlets (Nomad's
# limits.http_max_conns_per_client defaults to 100 per client IP).
MAX_CONNECTIONS = 1024
# Listen backlog: connections the kernel queues while all slots are busy.
BACKLOG = 1024

INVALID_METHOD = "Invalid method"  # Nomad's ErrInvalidMethod
PLAIN = "text/plain; charset=utf-8"
JSON = "application/json"


class CodedError(Exception):
    """An HTTP error with Nomad's shape: a status and a one-line plain-text body.

    *headers*: the query meta of a read that found nothing (Nomad's handlers set X-Nomad-Index and
    the rest before they answer 404, so a blocking reader waiting for an object to appear has the
    index to block on next).
    """

    def __init__(self, code: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    url: str  # path and query as sent, for logs
    environ: Any = None  # the WSGI environ, for the body (read_body)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = PLAIN
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Stream:
    """A streamed answer: *chunks* are sent as they come (chunked transfer encoding), until exhausted."""

    status: int
    chunks: Iterator[bytes]
    content_type: str = PLAIN


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The handler took the connection over (a WebSocket, actors.http_alloc_exec) and answered on it
    itself: the WSGI layer writes nothing more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpContext:
    """What the API serves from besides the actors: fixed at agent start."""

    metrics: Metrics
    prometheus: bool = False  # telemetry.prometheus_metrics (else 415, as Nomad)
    runtime_info: Callable[[], dict[str, str]] | None = None
    bind: tuple[str, int] = ("127.0.0.1", 4646)  # where to re-listen after a restart
    agent: str = "agent"  # the supervisor's actor name
    max_conns_per_client: int = 0  # limits.http_max_conns_per_client (actors.http_limits); 0: no cap
    acl_enabled: bool = False  # acl.enabled: every request's token is checked (actors.http_acl)
    acl_token_ttl_s: float = 30.0  # acl.token_ttl: a client-only agent's cache of a resolved token
    acl_policy_ttl_s: float = 30.0  # acl.policy_ttl: a client-only agent's cache of a policy
    acl_role_ttl_s: float = 30.0  # acl.role_ttl: a client-only agent's cache of a role's policy names
    acl_token_min_expiration_ttl_s: float = 60.0  # acl.token_min_expiration_ttl: a new token's shortest life
    acl_token_max_expiration_ttl_s: float = 24 * 3600.0  # acl.token_max_expiration_ttl: its longest
    acl_bootstrap_reset_file: str = ""  # <data_dir>/server/acl-bootstrap-reset, as Nomad's; "": none
    tls: Any = None  # tls.http: the runtime.tls.TlsEdge every connection is wrapped with; None: plain HTTP
    https_handshake_timeout_s: float = 5.0  # limits.https_handshake_timeout: the TLS handshake's bound
    alloc_logs: Any = None  # a client agent's actors.client.alloc_logs.AllocLogs; None: not a client
    response_headers: tuple[tuple[str, str], ...] = ()  # http_api_response_headers: on every answer
    enable_debug: bool = False  # enable_debug: /v1/agent/pprof/* served without ACLs
    stacks: Callable[[], str] | None = None  # the process's greenlet stacks (its edge); None: none


@dataclass(slots=True)
class Api:
    """A handler's view of the agent: asks with a timeout, shared metrics."""

    env: Env
    ctx: HttpContext
    ask_timeout_s: float = ASK_TIMEOUT_S

    def ask(self, actor: str, message: Any) -> Any:
        ref = self.env.lookup(actor)
        if ref is None or not ref.is_alive():
            raise CodedError(500, f"{actor} is not running")
        try:
            return ref.ask(message, timeout=self.ask_timeout_s)
        except pykka.ActorDeadError:
            raise CodedError(500, f"{actor} stopped before answering") from None
        except pykka.Timeout:
            raise CodedError(500, f"{actor} did not answer within {self.ask_timeout_s:g}s") from None


Handler = Callable[[Request, Api], Any]
ROUTES: dict[str, Handler] = {}


# Hooks tried before routing, after ?region= forwarding: ``fn(req, environ,
# api)`` answers a Response to relay, or None to answer here
# (actors.http_forward registers the client agent's relay to its servers).
FORWARDERS: list[Callable[[Request, dict[str, Any], Api], Response | Stream | None]] = []
# Checks run after routing, before the handler: ``fn(req, api)`` raises a
# CodedError to refuse (actors.http_acl registers the ACL token check).
GUARDS: list[Callable[[Request, Api], None]] = []


def route(path: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES[path] = fn
        return fn
    return register


# What /ui/ answers: this agent has no web UI (Nomad's binaries built without one answer the same way,
# 200 with a page saying so, so a browser pointed at the agent learns why).
NO_UI_HTML = (b"<!DOCTYPE html>\n<html>\n<p>This agent serves no web UI. Use its HTTP API (/v1/...) or the "
              b"<code>nomad</code> command line.</p>\n</html>\n")


def request_namespace(req: Request) -> str:
    """The request's ``?namespace=`` (the CLI's ``-namespace``); Nomad's default is "default"."""
    return (req.query.get("namespace") or ["default"])[0] or "default"


# The WSGI environ key under which actors.http_acl.acl_guard leaves, for a ``?namespace=*`` list under ACLs,
# which namespaces the token may list (Nomad's AllowNsOpFunc): ``fn(namespace) -> bool``.
LISTABLE_NAMESPACES = "nomad.listable_namespaces"


def listable(req: Request) -> Callable[[str], bool]:
    """Whether a ``?namespace=*`` list may show an object of a namespace (every one without ACLs)."""
    env = req.environ if isinstance(req.environ, dict) else {}
    return env.get(LISTABLE_NAMESPACES) or (lambda ns: True)


def find_route(path: str) -> Handler | None:
    """Exact path first, then the longest registered ``.../`` prefix (Go ServeMux)."""
    handler = ROUTES.get(path)
    if handler is not None:
        return handler
    prefixes = [p for p in ROUTES if p.endswith("/") and path.startswith(p)]
    return ROUTES[max(prefixes, key=len)] if prefixes else None


def require(req: Request, *methods: str) -> None:
    if req.method not in methods:
        raise CodedError(405, INVALID_METHOD)


def parse_uint(text: str, bits: int = 64) -> int | None:
    """Go's ``strconv.ParseUint(text, 10, bits)``: ASCII digits only (``str.isdigit`` also takes
    ``"²"``, which ``int`` refuses) and below ``2**bits``; None when *text* is not one."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value < 1 << bits else None


def parse_query_options(req: Request) -> None:
    """Nomad's ``parse``: reject malformed ``stale``, ``per_page``, ``wait``, ``index``."""
    q = req.query
    stale = q.get("stale", [""])[0]
    if stale and stale.lower() not in ("1", "t", "true", "0", "f", "false"):
        raise CodedError(400, "Expect `true` or `false` for `stale` query string parameter")
    per_page = q.get("per_page", [""])[0]
    if per_page and parse_uint(per_page.lstrip("+-")) is None:
        raise CodedError(400, "Expect a number for `per_page` query string parameter")
    wait = q.get("wait", [""])[0]
    if wait:
        from runtime.config import parse_duration
        try:
            parse_duration(wait)
        except ValueError:
            raise CodedError(400, "Invalid wait time") from None
    index = q.get("index", [""])[0]
    if index and parse_uint(index) is None:  # Nomad's ParseUint: digits, at most 2**64 - 1
        raise CodedError(400, "Invalid index")


# ---------------------------------------------------------------- endpoints


@route("/v1/agent/self")
def agent_self(req: Request, api: Api) -> Any:
    require(req, "GET")
    info = api.ask(api.ctx.agent, GetSelf())
    _live_stats(api, info["stats"])
    if api.ctx.runtime_info is not None:
        info["stats"]["runtime"] = api.ctx.runtime_info()
    return info


# Go's time.Since(time.Time{}): what Nomad's client shows as last_heartbeat before its first one.
_NEVER_NS = 2**63 - 1
_RAFT_STATES = {"leader": "Leader", "follower": "Follower", "candidate": "Candidate",
                "pre-candidate": "Candidate"}


def _since(api: Api, then: float) -> str:
    from actors.scheduler.job import go_duration

    return go_duration(max(0, int((api.env.now() - then) * 1e9)))


def _live_stats(api: Api, stats: dict[str, dict[str, str]]) -> None:
    """Fill Nomad's agent-info sections from the actors that own them (asked here, at the edge).

    nomad/raft as Nomad's Server.Stats() and hashicorp/raft Stats(), serf as serf's Stats(),
    client as Nomad's Client.Stats(); every value a string, as Nomad's.
    """
    if "nomad" in stats and _alive(api, "raft"):
        st = api.ask("raft", "status")
        leader = st.get("leader") or ""
        stats["nomad"].update(leader=str(st["role"] == "leader").lower(), leader_addr=leader,
                              known_regions=str(len(known_regions(api))))
        conf = " ".join(f"{{Suffrage:{'Voter' if s['Voter'] else 'Nonvoter'} ID:{s['ID']} "
                        f"Address:{s['Address']}}}" for s in api.ask("raft", "configuration"))
        if st["role"] == "leader":
            contact = "0"
        elif not st["last_contact"]:
            contact = "never"
        else:
            contact = _since(api, st["last_contact"])
        stats["raft"] = {
            "state": _RAFT_STATES.get(st["role"], st["role"].capitalize()), "term": str(st["term"]),
            "last_log_index": str(st["last_index"]), "last_log_term": str(st["last_term"]),
            "commit_index": str(st["commit"]), "applied_index": str(st["applied"]), "fsm_pending": "0",
            "last_snapshot_index": str(st["snap_index"]), "last_snapshot_term": str(st["snap_term"]),
            "latest_configuration": f"[{conf}]", "latest_configuration_index": str(st["config_index"]),
            "num_peers": str(len([v for v in st["voter_ids"] if v != st["id"]])), "last_contact": contact,
            "protocol_version": "3", "protocol_version_min": "0", "protocol_version_max": "3",
            "snapshot_version_min": "0", "snapshot_version_max": "1"}
    if "serf" in stats and _alive(api, "gossip"):
        g = api.ask("gossip", "stats") or {}
        members = api.ask("gossip", "members") or []
        status = [m.get("Status") for m in members]
        stats["serf"] = {
            "members": str(len(members)), "failed": str(status.count("failed")),
            "left": str(status.count("left")), "health_score": str(g.get("health_score", 0)),
            "member_time": str(g.get("ltime", 0)), "event_time": "1", "query_time": "1",
            "intent_queue": "0", "event_queue": "0", "query_queue": "0",
            "encrypted": str(bool(api.ask("gossip", "keyring"))).lower(), "coordinate_resets": "0"}
    if "client" in stats:
        if _alive(api, "client"):
            c = api.ask("client", "status")
            stats["client"].update(
                heartbeat_ttl=format_go(c["heartbeat_ttl"]),
                last_heartbeat=_since(api, c["last_heartbeat"]) if c["last_heartbeat"] else
                format_go_ns(_NEVER_NS))
        if _alive(api, "alloc-runner"):
            stats["client"]["num_allocations"] = str(api.ask("alloc-runner", "status")["allocs"])


def format_go(seconds: float) -> str:
    return format_go_ns(int(seconds * 1e9))


def format_go_ns(ns: int) -> str:
    from actors.scheduler.job import go_duration

    return go_duration(ns)


def _alive(api: Api, name: str) -> bool:
    ref = api.env.lookup(name)
    return ref is not None and ref.is_alive()


@route("/v1/agent/health")
def agent_health(req: Request, api: Api) -> Any:
    require(req, "GET")
    parse_query_options(req)
    health = api.ask(api.ctx.agent, GetHealth())
    server = health["server"]
    if server is not None and server["ok"] and api.env.lookup("raft") is not None:
        if not _raft_status(api)["leader"]:
            health["server"] = {"ok": False, "message": "no leader"}  # Nomad's wording
    want_client = want_server = True
    out: dict[str, Any] = {}
    if "type" in req.query:  # Nomad: a requested role that is off reports "not enabled"
        want_client = want_server = False
        for kind in req.query["type"]:
            if kind == "client":
                want_client = True
                out["client"] = {"ok": False, "message": "client not enabled"}
            elif kind == "server":
                want_server = True
                out["server"] = {"ok": False, "message": "server not enabled"}
    if want_client and health["client"] is not None:
        out["client"] = health["client"]
    if want_server and health["server"] is not None:
        out["server"] = health["server"]
    if all(v["ok"] for v in out.values()):
        return out
    raise CodedError(500, json.dumps(out, separators=(",", ":")))


@route("/v1/agent/reload")
def agent_reload(req: Request, api: Api) -> Any:
    """The SIGHUP path, without the signal (Nomad ``AgentReloadRequest``); answers once applied."""
    require(req, "PUT", "POST")
    api.ask(api.ctx.agent, Reload())
    return None


@route("/v1/metrics")
def metrics(req: Request, api: Api) -> Any:
    require(req, "GET")
    if req.query.get("format", [""])[0] == "prometheus":
        if not api.ctx.prometheus:
            raise CodedError(415, "Prometheus is not enabled")
        return Response(200, api.ctx.metrics.prometheus_text().encode(),
                        "text/plain; version=0.0.4; charset=utf-8")
    return api.ctx.metrics.summary()


# ---------------------------------------------------------------- WSGI


class App:
    """The WSGI application: routing, Nomad's error shape, request logs."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = monotonic()
        path = environ.get("PATH_INFO") or "/"
        raw_query = environ.get("QUERY_STRING", "")
        req = Request(method=environ.get("REQUEST_METHOD", "GET"), path=path,
                      query=urllib.parse.parse_qs(raw_query, keep_blank_values=True) if raw_query else {},
                      url=path + ("?" + hide_token(raw_query) if raw_query else ""), environ=environ)
        resp = self._respond(req, environ)
        if isinstance(resp, Upgraded):
            return []
        extra = self.api.ctx.response_headers
        if isinstance(resp, Stream):
            write = start_response(f"{resp.status} {_REASONS.get(resp.status, 'Unknown')}",
                                   [("Content-Type", resp.content_type), ("Cache-Control", "no-cache"), *extra])
            write(b"")  # the status and headers go now: a caller sees 200 before the first chunk
            return resp.chunks  # type: ignore[return-value]  # pywsgi writes each as it comes
        if log.isEnabledFor(logging.DEBUG):
            log.debug("request complete: method=%s path=%s duration=%s", req.method, req.url,
                      format_duration(monotonic() - started))
        headers = [("Content-Type", resp.content_type), ("Content-Length", str(len(resp.body))),
                   *resp.headers, *extra]
        start_response(f"{resp.status} {_REASONS.get(resp.status, 'Unknown')}", headers)
        return [resp.body]

    def _respond(self, req: Request, environ: dict[str, Any] | None = None) -> Response | Stream | Upgraded:
        try:
            if req.path == "/":  # Nomad redirects the root to its web UI
                target = "/ui/" + ("?" + req.url.partition("?")[2] if "?" in req.url else "")
                return Response(307, b"", PLAIN, (("Location", target),))
            if req.path.startswith("/ui/"):  # as a Nomad built without its UI: a page that says so
                return Response(200, NO_UI_HTML, "text/html; charset=utf-8")
            if req.path == "/ui":  # Go's ServeMux: the subtree's root without its slash
                return Response(301, b"", PLAIN, (("Location", "/ui/"),))
            forwarded = forward_region(req, environ or {}, self.api)
            for forward in FORWARDERS:  # e.g. a client-only agent relaying to a server
                forwarded = forwarded or forward(req, environ or {}, self.api)
            if forwarded is not None:
                return forwarded
            handler = find_route(req.path)
            if handler is None:
                return Response(404, b"404 page not found\n")
            for guard in GUARDS:
                guard(req, self.api)
            return self._encode(req, handler(req, self.api))
        except CodedError as e:
            # A request an actor of this agent sent itself (the replicator's lists, through
            # actors.http_forward) is logged by that actor when it fails, in its own words.
            own = (environ or {}).get("nomad.forwarded_from") == self.api.env.node
            level = logging.DEBUG if 400 <= e.code < 500 or own else logging.ERROR
            log.log(level, "request failed: method=%s path=%s error=%s code=%d",
                    req.method, req.url, e.message, e.code)
            return Response(e.code, e.message.encode(), headers=e.headers)
        except Exception as e:  # a handler bug must not take the server down
            log.exception("request failed: method=%s path=%s error=%r code=500", req.method, req.url, e)
            return Response(500, f"internal error: {type(e).__name__}: {e}".encode())

    @staticmethod
    def _encode(req: Request, result: Any) -> Response | Stream | Upgraded:
        if isinstance(result, (Response, Stream, Upgraded)):
            return result
        if result is None:
            return Response(200, b"")
        headers: tuple[tuple[str, str], ...] = ()
        if isinstance(result, Answer):
            result, headers = result.value, result.headers
        pretty = "pretty" in req.query and req.query["pretty"][0] != "0"
        if pretty:
            return Response(200, (json.dumps(result, indent=4) + "\n").encode(), JSON, headers)
        return Response(200, _COMPACT_JSON.encode(result).encode(), JSON, headers)


# json.dumps(separators=...) builds an encoder per call; one shared encoder gives the same text
# (encode keeps no state between calls) ~1.5 us sooner on every answer.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))

# A ``?token=`` parameter (which Nomad once read, and we never do) is hidden
# in the URL requests are logged and forwarded with, as Nomad's logs hide it.
_TOKEN_PARAM = re.compile(r"(^|&)(token=)[^&]*")


def hide_token(query: str) -> str:
    return _TOKEN_PARAM.sub(r"\1\2<hidden>", query) if "token=" in query else query


_REASONS = {200: "OK", 204: "No Content", 307: "Temporary Redirect", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
            415: "Unsupported Media Type",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


def bind_listener(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket (the process binds the first one, so a taken port fails start-up)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: the WSGI server writes headers and body
        # separately, and without it the body waits ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class _Serve:
    """Told to itself from on_start: binding can fail, and a failing on_start goes unreported."""


class HttpApi(NodeActor):
    """Owns the WSGI server's lifetime; requests are served by pywsgi's greenlets."""

    def __init__(self, env: Env, name: str, listener: socket.socket, ctx: HttpContext) -> None:
        super().__init__(env, name)
        self.listener = listener
        self.ctx = ctx
        self.server: WSGIServer | None = None

    def on_start(self) -> None:
        self.actor_ref.tell(_Serve())

    def receive(self, message: Any) -> Any:
        if not isinstance(message, _Serve):
            return super().receive(message)
        listener = self.listener
        if listener.fileno() == -1:  # closed by an earlier incarnation: this is a restart
            listener = bind_listener(*self.ctx.bind)
        # pywsgi's own error log reports clients' malformed requests (already
        # answered 400/414): a client's fault, so DEBUG, as Nomad logs 4xx.
        self.server = LimitedWSGIServer(listener, App(Api(self.env, self.ctx)), log=None,
                                        max_conns_per_client=self.ctx.max_conns_per_client,
                                        error_log=LoggingLogAdapter(log, logging.DEBUG),
                                        spawn=gevent.pool.Pool(MAX_CONNECTIONS))
        if self.ctx.tls is not None:  # tls.http: the handshake, within the per-IP cap, then the request
            self.server.handle_admitted = self.ctx.tls.https_handler(  # type: ignore[method-assign]
                self.server.handle_admitted, self.ctx.https_handshake_timeout_s)
        self.server.start()
        host, port = listener.getsockname()[:2]
        log.info("serving the HTTP API on %s:%d%s", host, port,
                 " (HTTPS)" if self.ctx.tls is not None else "")
        return None

    def _close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop(timeout=STOP_TIMEOUT_S)

    def on_stop(self) -> None:
        super().on_stop()
        self._close()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._close()
        super().on_failure(exception_type, exception_value, traceback)


# ---------------------------------------------------------------- status and raft operator


def _raft_status(api: Api) -> dict[str, Any]:
    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        raise CodedError(500, "No cluster leader")  # a client-only agent has no Raft
    return api.ask("raft", "status")


@route("/v1/status/leader")
def status_leader(req: Request, api: Api) -> Any:
    require(req, "GET")
    return _raft_status(api)["leader"]


@route("/v1/status/peers")
def status_peers(req: Request, api: Api) -> Any:
    """Nomad's Status.Peers: the address of every server in the Raft configuration, a non-voter too (a
    server that joined is one until autopilot promotes it, server_stabilization_time later)."""
    require(req, "GET")
    status = _raft_status(api)
    return sorted(status["voters"] + status["learners"])


@route("/v1/operator/raft/configuration")
def raft_configuration(req: Request, api: Api) -> Any:
    if req.method != "GET":  # Nomad's OperatorRaftConfiguration writes a bare 405, no body
        return Response(405, b"")
    parse_query_options(req)
    status = _raft_status(api)
    if not query_flag(req, "stale"):
        # Nomad forwards Operator.RaftGetConfiguration to the leader unless the query is stale: with no
        # leader it is held for one (RPC_HOLD_TIMEOUT_S), then 500 "No cluster leader" -- which is why
        # list-peers during an outage needs -stale.  A follower's answer comes from the leader.
        def attempt() -> tuple[bool, Any]:
            st = _raft_status(api)
            return not st.get("leader"), st

        again, status = hold_for_leader(api, attempt)
        if again:
            raise CodedError(500, "No cluster leader")
        if status.get("role") != "leader":
            forwarded = forward_to_leader(req, api)
            if forwarded is not None:
                return forwarded
    servers = api.ask("raft", "configuration")
    names: dict[str, str] = {}
    if api.env.lookup("server-membership") is not None:  # the gossip names of the servers
        known = api.ask("server-membership", "servers")
        names = {m["rpc_addr"]: name for name, m in known.items()}
        names.update({m["id"]: name for name, m in known.items() if m.get("id")})
    for s in servers:
        s.update(Node=names.get(s["ID"]) or names.get(s["Address"], "(unknown)"), RaftProtocol="3")
    return {"Servers": servers, "Index": status["commit"]}


@route("/v1/operator/autopilot/health")
def autopilot_health(req: Request, api: Api) -> Any:
    """Nomad's OperatorHealthReply, from the leader's autopilot (a follower asks the leader)."""
    if req.method != "GET":
        raise CodedError(404, INVALID_METHOD)  # Nomad's OperatorServerHealth: a 404, not a 405
    from actors.raft.membership import GetAutopilotHealth

    ref = api.env.lookup("server-membership")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")
    fut = api.env.make_future()
    ref.tell(GetAutopilotHealth(reply=fut))
    try:
        report = fut.get(timeout=api.ask_timeout_s)
    except pykka.Timeout:
        raise CodedError(500, "autopilot health did not come in time") from None
    except Exception as e:  # noqa: BLE001 - no leader, or not measured yet
        raise CodedError(500, str(e)) from None
    # Nomad's OperatorServerHealth answers 429 while the cluster is unhealthy (the body is the same),
    # so a load balancer or a script can tell from the status alone.
    if isinstance(report, dict) and report.get("Healthy") is False:
        return Response(429, json.dumps(report, separators=(",", ":")).encode(), JSON)
    return report


@route("/v1/operator/raft/peer")
def raft_remove_peer(req: Request, api: Api) -> Any:
    if req.method != "DELETE":
        raise CodedError(404, INVALID_METHOD)  # Nomad's OperatorRaftPeer: a 404, not a 405
    from actors.raft.peer import ChangeMembership, RaftError

    # Nomad (Raft protocol 3) removes by ID only; an address is refused whatever else is given.
    if "address" in req.query:
        raise CodedError(400, "Removing a peer by address is not supported in the current raft protocol "
                              "version")
    ids = req.query.get("id") or [""]
    if "id" not in req.query:
        raise CodedError(400, "Must specify the peer's ID to remove")
    # As Nomad's operator endpoint: a server not in the configuration is likely a typo, said so.
    servers = api.ask("raft", "configuration")
    if ids[0] not in {s.get("ID") for s in servers}:
        raise CodedError(500, f"id {json.dumps(ids[0])} was not found in the Raft configuration")
    fut = api.env.make_future()
    api.env.lookup("raft").tell(ChangeMembership(op="remove", node=ids[0], reply=fut))
    try:
        fut.get(timeout=api.ask_timeout_s)
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "timed out removing the peer") from None
    return None


# ---------------------------------------------------------------- gossip membership


def _gossip(api: Api) -> Any:
    ref = api.env.lookup("gossip")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")  # Nomad answers clients through an RPC
    return ref


def parse_go_bool(raw: str) -> bool | None:
    """Go's strconv.ParseBool (as Nomad's handlers read a boolean value); None: not a boolean."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _server_only(api: Api) -> None:
    """Nomad's agent join and force-leave on an agent that runs no server: 501 ``Invalid method``
    (its ErrInvalidMethod), as ``s.agent.Server() == nil`` answers there."""
    ref = api.env.lookup("gossip")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Invalid method")


# A join waits for each address's push-pull up to the pool's join_timeout_s
# (5 s in the lan and wan profiles, 1 s in local and test) before it can say
# none answered; leave a margin on top.
JOIN_WAIT_S = 12.0


def _await(api: Api, message_cls: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
    """Tell the gossip member a request with a reply future and wait for it (outside world)."""
    fut = api.env.make_future()
    _gossip(api).tell(message_cls(reply=fut, **kwargs))
    try:
        return fut.get(timeout=timeout_s or api.ask_timeout_s)
    except pykka.Timeout:
        raise CodedError(500, "gossip did not answer in time") from None


def _nomad_member(m: Any) -> Any:
    """A gossip member as Nomad's serf tags show it: ``rpc_addr`` is the RPC address's IP alone (ours
    carries the port too), ``revision`` is always there, and ``http_addr`` (ours, for forwarding) is not."""
    if not isinstance(m, dict) or not isinstance(m.get("Tags"), dict):
        return m
    tags = {k: v for k, v in m["Tags"].items() if k != "http_addr"}
    if tags.get("rpc_addr"):
        tags["rpc_addr"] = _split_host_port(tags["rpc_addr"])[0]
    tags.setdefault("revision", "")
    return {**m, "Tags": dict(sorted(tags.items()))}


def _split_host_port(addr: str) -> tuple[str, str]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); an address without a port is all host."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        return host, rest.lstrip(":")
    if addr.count(":") == 1:
        host, _, port = addr.partition(":")
        return host, port
    return addr, ""


@route("/v1/agent/members")
def agent_members(req: Request, api: Api) -> Any:
    require(req, "GET")
    members = [_nomad_member(m) for m in api.ask("gossip", "members")] if api.env.lookup("gossip") else []
    local = api.ask("gossip", "local") if api.env.lookup("gossip") else None
    tags = (local or {}).get("Tags") or {}
    name = (local or {}).get("Name", "")
    return {"ServerName": name.rsplit(".", 1)[0] if name else "", "ServerRegion": tags.get("region", ""),
            "ServerDC": tags.get("dc", ""), "Members": members}


@route("/v1/agent/join")
def agent_join(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    from actors.gossip.member import Join

    _server_only(api)
    addrs = tuple(a if ":" in a else f"{a}:4648" for a in req.query.get("address", []) if a)
    if not addrs:
        raise CodedError(400, "missing address to join")
    try:
        n = _await(api, Join, JOIN_WAIT_S, addresses=addrs)
    except CodedError:
        raise
    except Exception as e:  # noqa: BLE001 - a failed join is reported in the body, as Nomad does
        return {"num_joined": 0, "error": str(e), "warning": ""}
    return {"num_joined": n, "error": "", "warning": ""}


@route("/v1/agent/force-leave")
def agent_force_leave(req: Request, api: Api) -> Any:
    require(req, "PUT", "POST")
    from actors.gossip.member import ForceLeave

    _server_only(api)
    node = (req.query.get("node") or [""])[0]
    if not node:
        raise CodedError(400, "missing node to force leave")
    flag = (req.query.get("prune") or [""])[0]
    prune = parse_go_bool(flag) if flag else False
    if prune is None:  # Nomad's parseBool: strconv.ParseBool, else this 400
        raise CodedError(400, "invalid prune value")
    try:
        _await(api, ForceLeave, name=node, prune=prune)
    except CodedError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CodedError(500, str(e)) from None
    return None


# ---------------------------------------------------------------- regions (federation)

# Nomad's ErrNoRegionPath: no alive server of the asked region is known.
NO_REGION_PATH = "No path to region"
# Answered by this agent whatever ?region= says: Nomad's agent endpoints talk
# to the local agent, never through an RPC that forwardRegion would send on.
LOCAL_ONLY_PATHS = ("/v1/agent/", "/v1/regions", "/v1/metrics")
# A request forwarded to another region waits this long for the answer (plus a
# blocking query's ?wait): Nomad's RPCHoldTimeout (5 s) with room for a WAN
# round trip and the other region's own forwarding to its leader.
REGION_FORWARD_TIMEOUT_S = 10.0
# A streamed answer from the other region (the event stream) may be quiet this
# long between pieces before the forward gives up: six of the event stream's
# 10 s heartbeats.  A followed file (?follow=true) may be quiet indefinitely.
REGION_STREAM_IDLE_S = 60.0
# At most this much of a streamed answer is read and passed on at a time.
REGION_STREAM_CHUNK_BYTES = 64 * 1024
# Request headers passed on to the other region (the token, the body's type).
FORWARD_HEADERS = ("Content-Type", "X-Nomad-Token", "Authorization")
_forward_rng = edge_rng()  # which server of the region; an edge, so not seeded


def _gossip_members(api: Api) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(every Nomad server gossip knows, this member) -- empty on an agent without gossip."""
    ref = api.env.lookup("gossip")
    if ref is None or not ref.is_alive():
        return [], None
    members = [m for m in api.ask("gossip", "members") if (m.get("Tags") or {}).get("role") == "nomad"]
    return members, api.ask("gossip", "local")


def _local_region(api: Api, local: dict[str, Any] | None) -> str:
    region = ((local or {}).get("Tags") or {}).get("region")
    return region or api.ask(api.ctx.agent, GetSelf())["config"].get("Region", "global")


def known_regions(api: Api) -> list[str]:
    """Nomad's ``Server.Regions``: the regions with at least one alive server, sorted.  Its peer cache
    keeps a region among its alive peers only while one of its servers is alive: a region whose
    servers all failed, are leaving or left is not known (and ``?region=`` to it has no path)."""
    members, local = _gossip_members(api)
    known = {m["Tags"].get("region", "") for m in members if m["Status"] == "alive"}
    known.add(_local_region(api, local))
    return sorted(r for r in known if r)


@route("/v1/regions")
def regions_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    return known_regions(api)


def forward_region(req: Request, environ: dict[str, Any], api: Api) -> Response | Stream | None:
    """Nomad's ``forwardRegion``: a request for another region goes to a random alive server of it.

    None: answer here (no ``?region=``, this region, an agent endpoint, or an
    agent without gossip).  The request is proxied as it came, ``?region=``
    included, to the server's ``http_addr`` tag; that server is in the
    region, so it answers itself.  No alive server of the region: 500
    ``No path to region``.
    """
    region = (req.query.get("region") or [""])[0]
    job_write = req.method in ("PUT", "POST") and _JOB_WRITE_PATH.match(req.path) is not None
    if (not region and not job_write) or req.path.startswith(LOCAL_ONLY_PATHS):
        return None
    if job_write:
        region = _job_request_region(req, environ, region)
        if region in ("", "global"):  # Nomad's regionForJob: "global" is the agent's own region
            return None
    members, local = _gossip_members(api)
    if local is None or region == _local_region(api, local):
        return None
    targets = [m["Tags"]["http_addr"] for m in members if m["Status"] == "alive"
               and m["Tags"].get("region") == region and m["Tags"].get("http_addr")]
    if not targets:
        raise CodedError(500, NO_REGION_PATH)
    _forward_rng.shuffle(targets)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 and "wsgi.input" in environ else b""
    headers = {h: environ[k] for h in FORWARD_HEADERS
               if (k := "CONTENT_TYPE" if h == "Content-Type" else "HTTP_" + h.upper().replace("-", "_"))
               in environ}
    timeout_s = REGION_FORWARD_TIMEOUT_S + _wait_s(req)
    errors = []
    for target in targets:  # the first that answers; Nomad tries one, we try the rest on a dead link
        try:
            return _proxy(target, req, body, headers, timeout_s, api.ctx.tls)
        except OSError as e:
            errors.append(f"{target}: {e}")
    raise CodedError(500, f"failed forwarding to region {region}: {'; '.join(errors)}")


def ask_region(req: Request, api: Api, region: str, path: str, query: dict[str, list[str]]) -> Any:
    """The decoded answer of ``GET path?query`` asked of another *region* with *req*'s token, as
    Nomad's endpoints ask each region with an RPC before some writes (a namespace's or node pool's
    delete); its refusal or no path to it is a 500 with its error, as the RPC's error is."""
    keys = {"HTTP_" + h.upper().replace("-", "_") for h in FORWARD_HEADERS}
    environ = {k: v for k, v in (req.environ or {}).items() if k in keys}
    query = {**query, "region": [region]}
    asked = Request("GET", path, query, f"{path}?{urllib.parse.urlencode(query, doseq=True)}", environ)
    resp = forward_region(asked, environ, api)
    if not isinstance(resp, Response):
        raise CodedError(500, f"unexpected answer from region {region}")
    if resp.status != 200:
        raise CodedError(500, resp.body.decode(errors="replace"))
    return decode_json(resp.body) if resp.body else None


# A job registration or plan (``PUT /v1/jobs``, ``/v1/job/<id>``, ``/v1/job/<id>/plan``) goes to the
# region Nomad's regionForJob names: the request body's own Region, then ?region=, then the job's.
_JOB_WRITE_PATH = re.compile(r"^/v1/(?:jobs|job/[^/]+(?:/plan)?)$")
_REGION_ANY = re.compile(rb'"Region"\s*:')
_REGION_KEY = re.compile(rb'"Region"\s*:\s*(?:null|"([^"\\]*)")')


def _job_request_region(req: Request, environ: dict[str, Any], query_region: str) -> str:
    """The region a job write goes to ("" or "global": this one); the body stays readable for the
    handler or the proxy.  The body is decoded here only when some "Region" key in it may decide (one
    naming a region other than "global", or any when ?region= is given, or one this byte search cannot
    read): most registrations pass on the byte search."""
    if "wsgi.input" not in environ:
        return query_region
    body = read_body(req)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    plain = _REGION_KEY.findall(body)
    if len(plain) == len(_REGION_ANY.findall(body)) and (
            not plain or (not query_region and all(v in (b"", b"global") for v in plain))):
        return query_region
    try:
        doc = decode_json(body)
    except (UnicodeDecodeError, ValueError):
        return query_region  # the handler answers the malformed body
    if not isinstance(doc, dict):
        return query_region
    job = doc.get("Job")
    for region in (doc.get("Region"), query_region, job.get("Region") if isinstance(job, dict) else None):
        if isinstance(region, str) and region:
            return region
    return ""


def _wait_s(req: Request) -> float:
    from runtime.config import parse_duration

    try:
        return parse_duration((req.query.get("wait") or ["0s"])[0] or "0s")
    except ValueError:
        return 0.0


def _proxy(target: str, req: Request, body: bytes, headers: dict[str, str], timeout_s: float,
           tls: Any = None) -> Response | Stream:
    host, _, port = target.rpartition(":")
    if tls is not None:  # tls.http: the other region's API is HTTPS too; we show our own certificate
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host.strip("[]"), int(port), timeout=timeout_s, context=tls.http_client_context())
    else:
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout_s)
    try:
        conn.request(req.method, req.url, body=body if body or req.method in ("PUT", "POST") else None,
                     headers=headers)
        resp = conn.getresponse()
    except BaseException:
        conn.close()
        raise
    ctype = resp.getheader("Content-Type", PLAIN)
    if resp.getheader("Content-Length") is None and resp.chunked:
        # A streamed answer (the event stream, a followed file): passed on as it comes, as Nomad
        # forwards a streaming RPC to the region; quiet at most REGION_STREAM_IDLE_S (the event
        # stream's heartbeats come every 10 s), or for as long as a followed file is.
        if conn.sock is not None:
            follow = (req.query.get("follow") or [""])[0].lower() in ("1", "t", "true")
            conn.sock.settimeout(None if follow else REGION_STREAM_IDLE_S)
        gone = req.environ.get(CALLER_GONE) if req.environ else None
        return Stream(resp.status, _streamed(conn, resp, gone or (lambda: False)), ctype)
    try:
        data = resp.read()
    finally:
        conn.close()
    passed = tuple((k, v) for k, v in resp.getheaders() if k.lower().startswith("x-nomad-"))
    return Response(resp.status, data, ctype, passed)


def _streamed(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
              caller_gone: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """The other region's streamed answer, piece by piece; the connection closes when the caller goes
    (at the next piece's failed write, or, while nothing comes, when *caller_gone* says so)."""
    watcher = close_when_gone(caller_gone, conn)
    try:
        while piece := resp.read1(REGION_STREAM_CHUNK_BYTES):
            yield piece
    except (OSError, ValueError) as e:  # the other region's server went, or the caller did (closed above)
        if not caller_gone():
            log.warning("stream forwarded from another region ended: %s", e)
    finally:
        watcher.kill(block=False)
        conn.close()


# ---------------------------------------------------------------- state reads and writes (QueryOptions / QueryMeta)

# Nomad's structs.MaxBlockingRPCQueryTime and DefaultBlockingRPCQueryTime: a
# blocking query (?index=) waits at most 5 minutes, and 5 minutes when ?wait
# is absent (QueryOptions.TimeToBlock).
MAX_QUERY_TIME_S = 300.0
DEFAULT_QUERY_TIME_S = 300.0
# structs.JitterFraction: a random stagger of up to wait/16 is added to each
# blocking query so watchers that started together do not all return together.
JITTER_FRACTION = 16
# A read or write through the leader: Raft itself fails a forwarded request
# after forward_timeout_s (5 s, Nomad's RPCHoldTimeout) and answers "No
# cluster leader" at once when none is known (the handler then holds and asks
# again: RPC_HOLD_TIMEOUT_S); each try waits a second longer than Raft's own
# timeout, so Raft's answer is what the caller sees, never a hang.
LEADER_WAIT_S = 6.0
# Nomad's RPCHoldTimeout (nomad/config.go, 5 s) as getLeaderForRPC uses it: a
# read or write that finds no leader (an election under way: a server
# restarted, the leader died) is held and tried again, after a random pause
# of up to hold/JITTER_FRACTION (312 ms), until a leader is known or this long
# has passed since the first try -- then 500 "No cluster leader".  A rolling
# restart of the servers thus costs requests a short wait, not an error.
RPC_HOLD_TIMEOUT_S = 5.0
# Answers that say the request reached no leader, so trying again cannot
# apply a write twice: none known, or the one asked no longer leads.  A read
# may also be retried when the leader lost leadership before answering.
_RETRY_WRITE = ("No cluster leader", "not leader")
_RETRY_READ = (*_RETRY_WRITE, "leadership lost")
# A parked Watch is answered on Raft's first tick (0.1 s) after its deadline;
# the handler gives it this much more before calling it lost.
WATCH_MARGIN_S = 2.0
# Request bodies above this are refused with 413 before they are read.  A job
# is a few KB; one Raft entry must fit in a wire frame (4 MiB,
# runtime.wire.DEFAULT_MAX_FRAME_BYTES) with the batch it travels in, and
# etcd's --max-request-bytes default (1.5 MiB) makes the same trade.
MAX_BODY_BYTES = 1024 * 1024
_jitter = edge_rng()  # blocking-query stagger; an edge, so not seeded


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON value with Nomad's response headers (``X-Nomad-Index`` and the query meta)."""

    value: Any
    headers: tuple[tuple[str, str], ...] = ()


def read_body(req: Request, limit: int = MAX_BODY_BYTES, what: str = "Request body") -> bytes:
    """The request body, refused with 413 above *limit* bytes (before reading it, if its length is known)."""
    environ = req.environ or {}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise CodedError(400, "Invalid Content-Length header") from None
    if length > limit:
        raise CodedError(413, f"{what} too large: {length} bytes (limit {limit})")
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        body = stream.read(length) if length > 0 else stream.read(limit + 1)  # chunked: bounded
    except OSError as e:  # the client hung up before sending its Content-Length: its fault, no traceback
        raise CodedError(400, f"Failed to read the request body: {e}") from None
    if len(body) > limit:
        raise CodedError(413, f"{what} too large: over {limit} bytes")
    return body


# How deep a request body's JSON may nest.  Go's encoding/json allows 10000,
# but Python's decoder recurses once a level (the interpreter stops near
# 1000), and so do copy.deepcopy and msgpack (511) once a job is stored; a
# document deeper than this could be acknowledged and then never read back.
# A Nomad job's task Config sits some ten levels down.
MAX_JSON_DEPTH = 100


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (Python's decoder takes them; Go's refuses them): a body
    holding one is malformed, before any handler does arithmetic with it."""
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


# One decoder for every body: json.loads with a keyword builds a new decoder and scanner each call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _loads(raw: bytes | str) -> Any:
    """``json.loads(raw, parse_constant=_no_constant)`` on the shared decoder (the same checks, the same
    errors: a str opening with a BOM is refused, bytes are decoded as json.loads detects them)."""
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
        return _DECODER.decode(raw)
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {raw.__class__.__name__}")
    return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def decode_json(raw: bytes | str) -> Any:
    """``json.loads`` for a request body; nested past :data:`MAX_JSON_DEPTH` it is malformed
    too (a ValueError, Go's ``exceeded max depth``), so no handler answers it with a 500."""
    try:
        value = _loads(raw)
    except RecursionError:
        raise ValueError("exceeded max depth") from None
    # A document holding no more opening brackets than the limit cannot nest deeper than it (a bracket
    # inside a string only raises the count): most requests skip the walk.
    if isinstance(raw, str):
        if raw.count("{") + raw.count("[") <= MAX_JSON_DEPTH:
            return value
    elif raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH:
        return value
    stack = [(value, 1)]
    while stack:  # iterative: a recursive walk would be the problem it guards against
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"exceeded max depth ({MAX_JSON_DEPTH})")
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return value


def json_body(req: Request, what: str) -> Any:
    """The body decoded as JSON (None when empty), or 400 ``<what>: <the decoder's reason>``."""
    raw = read_body(req)
    if not raw.strip():
        return None
    try:
        return decode_json(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodedError(400, f"{what}: {e}") from None


def query_flag(req: Request, name: str) -> bool:
    """Nomad's boolean query parameters: ``?stale`` alone is true, else ``strconv.ParseBool``."""
    if name not in req.query:
        return False
    value = req.query[name][0]
    if value == "":
        return True
    low = value.lower()
    if low not in ("1", "t", "true", "0", "f", "false"):
        raise CodedError(400, f"Failed to parse value of {name!r} ({value}) as a bool")
    return low in ("1", "t", "true")


def time_to_block(req: Request) -> float:
    """Nomad's ``QueryOptions.TimeToBlock`` plus ``blockingRPC``'s jitter, in seconds."""
    from runtime.config import parse_duration

    wait = (req.query.get("wait") or [""])[0]
    block = parse_duration(wait) if wait else 0.0
    block = MAX_QUERY_TIME_S if block > MAX_QUERY_TIME_S else DEFAULT_QUERY_TIME_S if block <= 0 else block
    return block + _jitter.uniform(0.0, block / JITTER_FRACTION)


def _raft(api: Api) -> Any:
    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")  # clients forward by RPC in Nomad
    return ref


def _await_raft(fut: Any, timeout_s: float) -> Any:
    from actors.raft.peer import RaftError

    try:
        return fut.get(timeout=timeout_s)
    except RaftError as e:
        raise CodedError(500, str(e)) from None  # "No cluster leader" verbatim, as Nomad's ErrNoLeader
    except pykka.Timeout:
        raise CodedError(500, "timed out waiting for the leader") from None


def _guarded(query: Callable[[Any], Any], tables: tuple[str, ...]) -> Callable[[Any], Any]:
    """Runs inside the Raft actor: must never raise, and answers (table index, ok, value)."""
    def run(state: Any) -> tuple[int, bool, Any]:
        index = max([state.table_index.get(t, 0) for t in tables] + [1])  # never 0: it could not block
        try:
            return index, True, query(state)
        except Exception as e:  # a query bug is this request's 500, not the Raft actor's death
            return index, False, f"{type(e).__name__}: {e}"
    return run


def query_meta(api: Api, index: int) -> tuple[tuple[str, str], ...]:
    """``X-Nomad-Index``, ``X-Nomad-KnownLeader`` and ``X-Nomad-LastContact`` (Nomad ``setQueryMeta``)."""
    st = api.ask("raft", "status")
    if st["role"] == "leader":
        known, contact_ms = True, 0
    else:
        known = bool(st["leader"])
        contact_ms = int(max(0.0, api.env.now() - st["last_contact"]) * 1000) if st["last_contact"] else 0
    return (("X-Nomad-Index", str(index)), ("X-Nomad-KnownLeader", str(known).lower()),
            ("X-Nomad-LastContact", str(contact_ms)))


def query_meta_body(headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Nomad's ``QueryMeta`` as a response struct embeds it (``Index``, ``LastContact``, ``KnownLeader``,
    ``NextToken``), from an answer's headers."""
    meta = dict(headers)
    return {"Index": int(meta.get("X-Nomad-Index", "0")),
            "LastContact": int(meta.get("X-Nomad-LastContact", "0")),
            "KnownLeader": meta.get("X-Nomad-KnownLeader") == "true",
            "NextToken": meta.get("X-Nomad-NextToken", "")}


def state_query(req: Request, api: Api, tables: tuple[str, ...], query: Callable[[Any], Any], *,
                scoped: bool = False) -> Answer:
    """A read of *tables* with Nomad's query options: ``?stale``, ``?index=&wait=`` (blocking).

    Without ``?stale`` the read is linearizable (read index through the
    leader; none known: held up to RPC_HOLD_TIMEOUT_S for one, then 500
    ``No cluster leader``).  With ``?index=N``
    it returns once a table's index passes N or after the wait; a
    non-stale blocking query first does the linearizable read, so it fails
    the same way without a leader.  *query* runs inside the Raft actor on
    its state and must return copies, never the store's own records.

    *scoped*: the answer is about one object (or one job's, one node's): a
    blocking read that began at or below the tables' index then returns when
    its answer changes (or the wait ends), as Nomad's, which watches those
    objects alone, returns when they change -- not on every write to the
    tables, which in a busy cluster is a full answer per write to every
    parked query (see ScopedWait).
    """
    from actors.raft.peer import Read, Watch

    parse_query_options(req)
    stale = query_flag(req, "stale")
    min_index = int((req.query.get("index") or ["0"])[0] or 0)
    ref, guarded = _raft(api), _guarded(query, tables)
    _, (index, ok, value) = _held(api, lambda fut: ref.tell(Read(query=guarded, reply=fut, stale=stale)),
                                  _RETRY_READ)
    if min_index > 0 and index <= min_index:
        block = time_to_block(req)
        fut = api.env.make_future()
        if scoped and ok:
            wait = ScopedWait(guarded, tables, min_index, value)
            ref.tell(Watch(tables=tables, min_index=min_index, reply=fut, timeout_s=block, query=wait.answer,
                           index_fn=wait.index))
        else:
            ref.tell(Watch(tables=tables, min_index=min_index, reply=fut, timeout_s=block, query=guarded))
        _, (index, ok, value) = _await_raft(fut, block + WATCH_MARGIN_S)
    if not ok:
        raise CodedError(500, value)
    return Answer(value, query_meta(api, index))


class ScopedWait:
    """A scoped blocking read's wake-up test, run by the Raft actor (a Watch's ``index_fn``): the tables'
    index while their writes leave the read's answer as it was is *min_index* (keep waiting); once
    the answer differs (or fails), the tables' index.  The answer it made is kept for the Watch's
    query at the same applied index, so a wake-up runs the read once."""

    def __init__(self, guarded: Callable[[Any], Any], tables: tuple[str, ...], min_index: int,
                 seen: Any) -> None:
        self.guarded, self.tables, self.min_index, self.seen = guarded, tables, min_index, seen
        self.made: tuple[int, Any] | None = None  # (applied index, the guarded read's answer)

    def index(self, st: Any) -> int:
        moved = max([st.table_index.get(t, 0) for t in self.tables] + [1])
        if moved <= self.min_index:
            return moved
        got = self.answer(st)
        return self.min_index if got[1] and got[2] == self.seen else moved

    def answer(self, st: Any) -> Any:
        if self.made is None or self.made[0] != st.applied_index:
            self.made = (st.applied_index, self.guarded(st))
        return self.made[1]


def propose(api: Api, data: bytes) -> tuple[int, Any]:
    """Apply a state-machine command through Raft (a follower forwards it to the leader)."""
    from actors.raft.peer import Propose

    ref = _raft(api)
    return _held(api, lambda fut: ref.tell(Propose(data=data, reply=fut)), _RETRY_WRITE)


def _held(api: Api, ask: Callable[[Any], None], retry: tuple[str, ...]) -> Any:
    """Raft's answer to what *ask* sends (with a new future each try), held while no leader is known
    (hold_for_leader): an answer in *retry* is tried again."""
    from actors.raft.peer import RaftError

    def attempt() -> tuple[bool, Any]:
        fut = api.env.make_future()
        ask(fut)
        try:
            return False, fut.get(timeout=LEADER_WAIT_S)
        except RaftError as e:
            if str(e) in retry:
                return True, str(e)
            raise CodedError(500, str(e)) from None
        except pykka.Timeout:
            raise CodedError(500, "timed out waiting for the leader") from None

    again, value = hold_for_leader(api, attempt)
    if again:
        raise CodedError(500, value)  # "No cluster leader" verbatim: Nomad's ErrNoLeader
    return value


def hold_for_leader(api: Api, attempt: Callable[[], tuple[bool, Any]]) -> tuple[bool, Any]:
    """Nomad's getLeaderForRPC hold: *attempt* answers (try again?, value); one that found no leader
    is made again after a random pause of up to RPC_HOLD_TIMEOUT_S / JITTER_FRACTION until
    RPC_HOLD_TIMEOUT_S has passed since the first try, whose last (True, value) is then returned."""
    first = api.env.now()  # Nomad's firstCheck (its check is instant; an attempt here may take a while)
    while True:
        again, value = attempt()
        if not again:
            return again, value
        if api.env.now() - first >= RPC_HOLD_TIMEOUT_S:
            return again, value
        try:  # a future nobody answers: the runtime's own clock times the pause
            api.env.make_future().get(timeout=_jitter.uniform(0.0, RPC_HOLD_TIMEOUT_S / JITTER_FRACTION))
        except pykka.Timeout:
            pass


# ---------------------------------------------------------------- nodes


def _stale_read(api: Api, query: Callable[[Any], Any]) -> tuple[int, Any]:
    """A read of the local state store (Nomad's ?stale); the index for X-Nomad-Index."""
    from actors.raft.peer import RaftError, Read

    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")  # clients forward by RPC in Nomad
    fut = api.env.make_future()
    ref.tell(Read(query=query, reply=fut, stale=True))
    try:
        return fut.get(timeout=api.ask_timeout_s)
    except RaftError as e:
        raise CodedError(500, str(e)) from None
    except pykka.Timeout:
        raise CodedError(500, "state store did not answer in time") from None


# Node fields Nomad always answers with; these are their values where this agent has nothing to say.
_NODE_DEFAULTS = {"StatusDescription": "", "DrainStrategy": None, "LastDrain": None, "TLSEnabled": False,
                  "Links": {}, "HostVolumes": {}, "HostNetworks": {},
                  "CSIControllerPlugins": None, "CSINodePlugins": None, "LastMissedHeartbeatIndex": 0,
                  "LastAllocUpdateIndex": 0, "Meta": {}, "Events": [], "CgroupParent": "",
                  "IdentitySigningKeyID": "", "GCVolumesOnNodeGC": False, "NodeMaxAllocs": 0}


def _public_node(n: dict[str, Any]) -> dict[str, Any]:
    from actors.http_jobs import rfc3339
    from actors.scheduler.scheduler import computed_class

    out = copy.deepcopy(n)
    out["SecretID"] = ""  # Nomad's Node.Sanitize: the key stays, the node secret is blanked
    for k, v in _NODE_DEFAULTS.items():
        if out.get(k) is None:
            out[k] = copy.deepcopy(v)
    for ev in out["Events"]:  # NodeEvent.Timestamp is a time.Time: RFC 3339, as Go's api package decodes it
        if isinstance(ev, dict) and not isinstance(ev.get("Timestamp"), str):
            ev["Timestamp"] = rfc3339(ev.get("Timestamp"))
    out["DrainStrategy"] = drain_times(out["DrainStrategy"])
    out["LastDrain"] = last_drain_out(out["LastDrain"])
    # StatusUpdatedAt is an int64 of Unix seconds in Nomad (timeNow.Unix()); the store keeps the
    # exact time the command carried, for the GC and the checkers, and the API answers whole seconds.
    out["StatusUpdatedAt"] = int(out.get("StatusUpdatedAt") or 0)
    out["ComputedClass"] = computed_class(n)  # Nomad's: what the scheduler groups alike nodes by
    _node_resources_keys(out)
    return out


def drain_times(strategy: Any) -> Any:
    """A node's ``DrainStrategy`` as Nomad's JSON has it: ``ForceDeadline`` and ``StartedAt`` are Go
    ``time.Time`` values (RFC 3339; the zero time for no deadline or a forced drain), not the store's
    seconds, which Go's api package could not decode."""
    from actors.http_jobs import ZERO_TIME, rfc3339

    if not isinstance(strategy, dict):
        return strategy
    force = strategy.get("ForceDeadline")
    # Nomad sets ForceDeadline only for a positive deadline (Node.UpdateDrain).
    return {**strategy, "ForceDeadline": rfc3339(force) if strategy.get("Deadline", 0) > 0 else ZERO_TIME,
            "StartedAt": rfc3339(strategy.get("StartedAt"))}


def last_drain_out(meta: Any) -> Any:
    """A node's ``LastDrain`` (Nomad's DrainMetadata): its times in RFC 3339, every key there."""
    from actors.http_jobs import rfc3339

    if not isinstance(meta, dict):
        return meta
    return {"StartedAt": rfc3339(meta.get("StartedAt")), "UpdatedAt": rfc3339(meta.get("UpdatedAt")),
            "Status": meta.get("Status", ""), "AccessorID": meta.get("AccessorID", ""),
            "Meta": copy.deepcopy(meta.get("Meta"))}


def _node_resources_keys(node: dict[str, Any]) -> None:
    """Nomad's NodeResources and NodeReservedResources keys the client does not fingerprint: the CPU's
    cores (from ``cpu.numcores``; every one reservable, as no core is reserved here), no NUMA topology,
    devices or host networks."""
    res, reserved = node.get("NodeResources"), node.get("ReservedResources")
    if isinstance(res, dict):
        cpu = res.setdefault("Cpu", {})
        cores = str((node.get("Attributes") or {}).get("cpu.numcores", "0"))
        total = int(cores) if cores.isdecimal() else 0
        cpu.setdefault("TotalCpuCores", total)
        cpu.setdefault("ReservableCpuCores", list(range(total)))
        res.setdefault("Processors", {"Topology": None})
        for k in ("Devices", "NodeNetworks", "Networks"):
            res.setdefault(k, None)
    if isinstance(reserved, dict):
        reserved.setdefault("Cpu", {}).setdefault("ReservedCpuCores", None)


def node_stub(n: dict[str, Any], *, resources: bool = False, os_name: bool = False) -> dict[str, Any]:
    """Nomad's ``NodeListStub`` (``?resources=true`` adds the resources, ``?os=true`` the OS name)."""
    attrs = n.get("Attributes") or {}
    stub = {"Address": attrs.get("unique.network.ip-address", ""), "ID": n["ID"],
            "Datacenter": n.get("Datacenter", ""), "Name": n.get("Name", ""), "NodeClass": n.get("NodeClass", ""),
            "NodePool": n.get("NodePool", "default"), "Version": attrs.get("nomad.version", ""),
            "Drain": bool(n.get("DrainStrategy")), "SchedulingEligibility": n.get("SchedulingEligibility", ""),
            "Status": n.get("Status", ""), "StatusDescription": n.get("StatusDescription", ""),
            "Drivers": copy.deepcopy(n.get("Drivers") or {}),
            "HostVolumes": copy.deepcopy(n.get("HostVolumes")),
            "LastDrain": last_drain_out(n.get("LastDrain")),
            "CreateIndex": n.get("CreateIndex", 0), "ModifyIndex": n.get("ModifyIndex", 0)}
    if os_name:
        stub["Attributes"] = {"os.name": attrs["os.name"]} if "os.name" in attrs else {}
    if resources:
        full = {"Attributes": attrs, "NodeResources": copy.deepcopy(n.get("NodeResources")),
                "ReservedResources": copy.deepcopy(n.get("ReservedResources"))}
        _node_resources_keys(full)
        stub["NodeResources"], stub["ReservedResources"] = full["NodeResources"], full["ReservedResources"]
    return stub


@route("/v1/nodes")
def nodes_list(req: Request, api: Api) -> Any:
    require(req, "GET")
    prefix = (req.query.get("prefix") or [""])[0]
    resources, os_name = query_flag(req, "resources"), query_flag(req, "os")

    def stubs(st: Any) -> list[dict[str, Any]]:
        nodes = st.tables["nodes"]
        return [node_stub(n, resources=resources, os_name=os_name)
                for i, n in sorted(nodes.items()) if i.startswith(prefix)]
    from actors.http_filter import apply_list_options, list_options_asked, page_rows

    def page(st: Any) -> list[dict[str, Any]]:  # a page's stubs alone, as apply_list_options pages them
        rows = [n for i, n in st.tables["nodes"].items() if i.startswith(prefix)]
        out = page_rows(req, rows, lambda some: [node_stub(n, resources=resources, os_name=os_name)
                                                 for n in some], lambda n: n["ID"])
        return stubs(st) if out is None else out
    if list_options_asked(req):  # ?filter= / ?per_page= / ?next_token=
        return apply_list_options(req, state_query(req, api, ("nodes",), page))
    from actors.http_cache import cached_state_query  # the encoded list is reused while unchanged

    return cached_state_query(req, api, "nodes", ("nodes",), stubs)


# Sub-resources ``/v1/node/<id>/<action>`` (Nomad's nodeSpecificRequest), registered
# by actors.http_jobs: ``handler(req, api, node_id)``.
NODE_ACTIONS: dict[str, Callable[[Request, Api, str], Any]] = {}


@route("/v1/node/")
def node_read(req: Request, api: Api) -> Any:
    node_id, _, action = req.path[len("/v1/node/"):].partition("/")
    if action in NODE_ACTIONS:
        return NODE_ACTIONS[action](req, api, node_id)
    require(req, "GET")
    if not node_id:
        raise CodedError(400, "missing node ID")
    if action:  # Nomad reads "<id>/<unknown>" as a node ID, which matches none
        raise CodedError(404, "node not found")
    answer = state_query(req, api, ("nodes",), lambda st: st.get("nodes", node_id), scoped=True)
    if answer.value is None:
        raise CodedError(404, "node not found", answer.headers)
    return Answer(_public_node(answer.value), answer.headers)


@route("/v1/system/gc")
def system_gc(req: Request, api: Api) -> Any:
    require(req, "PUT")  # Nomad: PUT only
    from actors.server.node_gc import ForceGC

    # Job GC (evaluations, allocations, jobs) runs first and hands over to node GC.
    ref = api.env.lookup("job-gc") or api.env.lookup("node-gc")
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Server only endpoint")
    fut = api.env.make_future()
    ref.tell(ForceGC(reply=fut))
    try:
        fut.get(timeout=api.ask_timeout_s)
    except pykka.Timeout:
        raise CodedError(500, "garbage collection did not finish in time") from None
    except Exception as e:  # noqa: BLE001 - e.g. not the leader
        if str(e) == "not leader":  # Nomad forwards System.GarbageCollect to the leader
            forwarded = forward_to_leader(req, api)
            if forwarded is not None:
                return forwarded
        raise CodedError(500, str(e)) from None
    return None


# Set on a request one server proxies to the leader, so the leader never sends it on again (a stale
# view of who leads would otherwise bounce it between servers).
LEADER_FORWARDED = "X-Nomad-Leader-Forwarded"


def forward_to_leader(req: Request, api: Api) -> Response | None:
    """A leader-only request asked of a follower, proxied as it came to the leader's HTTP address (its
    gossip ``http_addr`` tag), as Nomad forwards the RPC; None when no leader is known or this request
    was already forwarded once."""
    environ = req.environ or {}
    if environ.get("HTTP_" + LEADER_FORWARDED.upper().replace("-", "_")):
        return None
    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        return None
    leader = api.ask("raft", "status").get("leader")
    members, _ = _gossip_members(api)
    target = next((m["Tags"]["http_addr"] for m in members if m.get("Status") == "alive" and leader
                   and m["Tags"].get("rpc_addr") == leader and m["Tags"].get("http_addr")), None)
    if target is None:
        return None
    headers = {h: environ[k] for h in FORWARD_HEADERS
               if (k := "CONTENT_TYPE" if h == "Content-Type" else "HTTP_" + h.upper().replace("-", "_"))
               in environ}
    headers[LEADER_FORWARDED] = "1"
    try:
        return _proxy(target, req, b"", headers, REGION_FORWARD_TIMEOUT_S + _wait_s(req), api.ctx.tls)
    except OSError as e:
        raise CodedError(500, f"failed forwarding to the leader {leader}: {e}") from None


# The job, allocation, evaluation and node drain/eligibility endpoints register
# their routes on import (a module of their own; it uses the plumbing above).
import actors.http_acl  # noqa: E402,F401  (ACL endpoints and the token check)
import actors.http_client_fs  # noqa: E402,F401  (task logs from the client that runs them)
import actors.http_monitor  # noqa: E402,F401  (this agent's logs, streamed)
import actors.http_pprof  # noqa: E402,F401  (this agent's stacks)
import actors.http_search  # noqa: E402,F401  (prefix search)
import actors.http_events  # noqa: E402,F401  (the event stream)
import actors.http_scheduler_config  # noqa: E402,F401  (operator scheduler get/set-config)
import actors.http_node_pools  # noqa: E402,F401  (node pools)
import actors.http_scaling  # noqa: E402,F401  (scaling policies)
import actors.http_variables  # noqa: E402,F401  (variables)
import actors.http_namespaces  # noqa: E402,F401  (namespaces: the built-in default)
import actors.http_client_host  # noqa: E402,F401  (host stats and alloc GC, on the client)
import actors.http_client_alloc  # noqa: E402,F401  (alloc stats, restart and signal, on the client)
import actors.http_client_forward  # noqa: E402,F401  (client routes relayed to the allocation's node)
import actors.http_client_meta  # noqa: E402,F401  (dynamic node metadata, on the client or relayed to it)
import actors.http_forward  # noqa: E402,F401  (client agents relay server-bound requests)
import actors.http_jobs  # noqa: E402,F401
import actors.http_keyring  # noqa: E402,F401  (gossip keyring endpoints)
import actors.http_servers  # noqa: E402,F401  (a client's server list)
import actors.http_snapshot  # noqa: E402,F401  (operator snapshot save and restore)
import actors.http_raft_transfer  # noqa: E402,F401  (operator raft transfer-leadership)
import actors.http_autopilot_config  # noqa: E402,F401  (operator autopilot get/set-config)
import actors.http_workload_identity  # noqa: E402,F401  (JWKS; workload identity tokens)
import actors.http_enterprise  # noqa: E402,F401  (Nomad CE's answers on enterprise-only endpoints)
import actors.http_job_statuses  # noqa: E402,F401  (the web UI's jobs index)
import actors.http_acl_auth  # noqa: E402,F401  (ACL auth methods and binding rules: none here)
import actors.http_volumes  # noqa: E402,F401  (CSI volumes and plugins, host volumes: none)
import actors.http_root_keyring  # noqa: E402,F401  (operator root keyring: list, rotate, remove)
import actors.http_agent_schedulers  # noqa: E402,F401  (the scheduling workers: info and pool config)
import actors.http_agent_host  # noqa: E402,F401  (the agent's host data, for operator debug)
