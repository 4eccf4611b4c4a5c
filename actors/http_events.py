"""``/v1/event/stream``: Nomad's event stream, newline-delimited JSON as state changes.

``GET /v1/event/stream?index=N&topic=T[:key]...&namespace=NS`` answers
``200`` and then, for as long as the caller reads, one line per Raft write
that made events the caller asked for: ``{"Index": N, "Events": [...]}``
(actors.state.events has the shapes), and a ``{}`` heartbeat line at
once (the stream is up) and every :data:`EVENT_HEARTBEAT_S` after it,
events or not, so a caller can tell a quiet cluster from a dead
connection.  As Nomad's:

* ``index``: start at the first kept write at or after it (0: the oldest
  kept); the server keeps ``event_buffer_size`` writes, so an older index
  starts at the oldest it has, and one newer than every kept write at the
  newest (sent again, as Nomad's ``StartAtClosest`` does).
* ``topic``: ``Node``, ``Job``, ``Allocation``, ``Evaluation``,
  ``Deployment``, ``Service``, ``Variable``, ``NodePool``, ``ACLToken``,
  ``ACLPolicy``, ``ACLRole``, ``ACLAuthMethod``, ``ACLBindingRule``, or
  ``*``; ``Topic:key`` keeps the events whose key, or one of whose filter
  keys (an allocation's or evaluation's job, a role's name, a binding
  rule's auth method), is *key*.  None given: everything.  A Variable
  event carries the variable's metadata and ``Deleted``, never its items.
* ``namespace``: ``default`` unless given; ``*`` every one.  Node and ACL
  events belong to none and always pass.
* With ACLs, each topic asked for needs its own permission: ``node:read``
  for Node; ``read-job`` in the namespace for Job, Allocation,
  Evaluation, Deployment and Service; for Variable, ``list`` on some
  variable path in the namespace, and then each event passes only if its
  path may be listed; a management token for the rest and for ``*``.
  Otherwise ``403 Permission denied``.
* A malformed index or topic is ``400``; a server started with
  ``enable_event_broker = false`` answers ``400 event broker is disabled``.

Any server serves the stream from the writes it applied itself.  A
client-only agent relays it: it asks one of its servers for each next
part, one blocking request at a time (``poll=true``, this agent's own
long-poll form of the endpoint: one line, at most EVENT_WATCH_S's wait), so
a server that fails is replaced by the next, which resumes from the index
the client reached.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import gevent
import pykka

from actors.acl import READ, Need
from actors.http_api import (
    Api,
    CodedError,
    Request,
    Response,
    Stream,
    parse_uint,
    query_flag,
    request_namespace,
    require,
    route,
)
from actors.state.events import (
    EVENT_TABLES,
    Batch,
    Subscription,
    frame,
    parse_topics,
)

# Nomad's event stream heartbeat (Event.Stream's NewJsonStream(ctx, 30*time.Second)): ``{}`` as the
# stream opens, then on a ticker this often, whether events were sent or not.
EVENT_HEARTBEAT_S = 30.0
# The longest one watch of the state (or one relayed poll) waits for events before the stream looks
# again: how soon a stream whose token was deleted, or whose server went, ends on a quiet cluster.
EVENT_WATCH_S = 10.0
# The Raft actor answers a parked watch when it times out; the handler waits
# this much longer before it takes the server for gone and ends the stream.
EVENT_WATCH_MARGIN_S = 5.0
# A watch answered at once with nothing new (the server's max_watches cap
# reached) is retried after this pause, not in a busy loop.
EVENT_RETRY_PAUSE_S = 0.5
HEARTBEAT_LINE = b"{}\n"

log = logging.getLogger("agent.http.events")
_subscriber_ids = itertools.count(1)

_NODE_TOPICS = ("Node",)  # NodePool events, as Nomad's, need a management token
_JOB_TOPICS = ("Job", "Allocation", "Evaluation", "Deployment", "Service")


def _allowed(acl: Any, sub: Subscription, namespaces: tuple[str, ...] = ()) -> bool:
    """Nomad's validateACL: every topic asked for must be readable in each namespace subscribed to
    (*namespaces*: for ``*``, every namespace there is; none given: the subscription's own)."""
    if acl is None:
        return True
    for ns in namespaces or (sub.namespace,):
        for topic, _ in sub.topics:
            if topic in _NODE_TOPICS:
                ok = acl.allows_one(Need("node", READ))
            elif topic in _JOB_TOPICS:
                ok = acl.allows_one(Need("namespace", "read-job", ns))
            elif topic == "Variable":
                ok = acl.allow_variable_search(ns)
            else:
                ok = bool(acl.management)
            if not ok:
                return False
    return True


def _subscribed_namespaces(req: Request, api: Api, sub: Subscription) -> tuple[str, ...]:
    """The namespaces the ACL check covers: for ``*``, every one in the state (Nomad's validateACL
    reads NamespaceNames), so a token reading each of them may subscribe to all."""
    if sub.namespace != "*":
        return (sub.namespace,)
    from actors.http_api import state_query
    from actors.state import namespaces as ns_state

    # A local read: the stream's own ?index= is not a blocking query on the namespaces.
    local = dataclasses.replace(req, query={"stale": ["true"]})
    answer = state_query(local, api, (ns_state.TABLE,),
                         lambda st: [n["Name"] for n in ns_state.listed(st.tables)])
    return tuple(answer.value)


def _parse(req: Request) -> tuple[int, Subscription]:
    raw = (req.query.get("index") or ["0"])[0] or "0"
    index = parse_uint(raw)  # as Go parses it: int() would take " 3", "1_0" and "٣"
    if index is None:
        raise CodedError(400, f"Unable to parse index: {raw!r} is not a non-negative integer")
    try:
        topics = parse_topics(req.query.get("topic") or [])
    except ValueError as e:
        raise CodedError(400, f"Invalid topic query: error parsing topics: {e}") from None
    namespace = request_namespace(req)
    return index, Subscription(topics, namespace)


@route("/v1/event/stream")
def event_stream(req: Request, api: Api) -> Any:
    require(req, "GET")
    start, sub = _parse(req)
    if api.ctx.acl_enabled:
        from actors.http_acl import resolve

        _, acl = resolve(req, api)
        if not _allowed(acl, sub, _subscribed_namespaces(req, api, sub) if acl is not None else ()):
            raise CodedError(403, "Permission denied")
        sub = dataclasses.replace(sub, acl=acl)
    ref = api.env.lookup("raft")
    if ref is None or not ref.is_alive():
        return _relay(req, api, start, sub)
    poll = query_flag(req, "poll")
    # The first look answers at once: whether events are kept here at all,
    # and what is kept from *start* on.  The stream registers as a subscriber
    # only once it runs (its generator's own watches), so a caller that hung
    # up before it started leaves nothing behind.
    index, batches, _ = _watch(api, ref, start, 0.0, None)
    if batches is None:
        raise CodedError(400, "event broker is disabled")
    if not poll and start > index:
        # Nomad's StartAtClosest: an index newer than every kept write (the reader's index is from
        # before this server's state was rebuilt) starts at the newest kept write, and the stream
        # goes on from there, rather than skip every write until the index is reached.
        start = index
        index, batches, _ = _watch(api, ref, start, 0.0, None)
    if poll:
        if not batches:
            index, batches, _ = _watch(api, ref, max(index + 1, start), EVENT_WATCH_S, None)
        return Response(200, _poll_body(batches or [], sub, start, index), "application/json")
    return Stream(200, _stream(req, api, ref, sub, start, index, batches), "application/json")


def _watch(api: Api, ref: Any, start: int, wait_s: float,
           sid: int | None) -> tuple[int, list[Batch] | None, bool]:
    """(newest kept index, batches from *start* on, whether some were dropped unread) once there are
    any or *wait_s* passed; batches None: this server makes no events."""
    from actors.http_api import _await_raft
    from actors.raft.peer import Watch

    def last(st: Any) -> int:
        return st.events.last_index if st.events is not None else 0

    def since(st: Any) -> tuple[list[Batch] | None, bool]:
        ev = st.events
        if ev is None:
            return None, False
        return ev.since(start, sid), start <= ev.dropped_upto

    fut = api.env.make_future()
    try:
        ref.tell(Watch(tables=EVENT_TABLES, min_index=start - 1, reply=fut, timeout_s=wait_s, query=since,
                       index_fn=last))
    except pykka.ActorDeadError:  # Raft stopped (the agent stops, or it is being restarted)
        raise CodedError(500, "raft stopped before answering") from None
    index, (batches, lost) = _await_raft(fut, wait_s + EVENT_WATCH_MARGIN_S)
    return index, batches, lost


def _forget(api: Api, ref: Any, sid: int) -> None:
    from actors.raft.peer import Read

    def forget(st: Any) -> None:
        if st.events is not None:
            st.events.forget(sid)

    try:
        ref.tell(Read(query=forget, reply=api.env.make_future(), stale=True))
    except pykka.ActorDeadError:
        pass  # Raft stopped: its state, and the subscriber kept in it, went with it


def _lines(batches: list[Batch], sub: Subscription, start: int) -> Iterator[tuple[int, bytes]]:
    for b in batches:
        if b.index < start:
            continue
        wanted = [e for e in b.events if sub.wants(e)]
        yield b.index, (frame(b.index, wanted) if wanted else b"")


def _still_allowed(req: Request, api: Api, sub: Subscription) -> Subscription | None:
    """The subscription with the stream's token as it is now, or None if the token no longer grants
    what it subscribed to (Nomad closes a subscription whose token was deleted, expired or lost the
    permission, and filters Variable events by the token's current policies)."""
    if not api.ctx.acl_enabled:
        return sub
    from actors.http_acl import resolve

    try:
        _, acl = resolve(req, api)
    except CodedError:
        return None
    if acl is not None and not _allowed(acl, sub, _subscribed_namespaces(req, api, sub)):
        return None
    return dataclasses.replace(sub, acl=acl)


def _stream(req: Request, api: Api, ref: Any, sub: Subscription, start: int, index: int,
            batches: list[Batch] | None) -> Iterator[bytes]:
    sid = next(_subscriber_ids)
    cursor = start  # the next index the caller may get
    next_beat = api.env.now()  # the first heartbeat goes at once, before any event
    try:
        while True:
            if api.env.now() >= next_beat:
                yield HEARTBEAT_LINE
                next_beat = api.env.now() + EVENT_HEARTBEAT_S
            for at, line in _lines(batches or [], sub, cursor):
                cursor = at + 1
                if line:
                    yield line
            cursor = max(cursor, index + 1)
            now_sub = _still_allowed(req, api, sub)
            if now_sub is None:
                return  # the token went or lost the permission: the stream ends
            sub = now_sub
            asked = api.env.now()
            wait_s = min(EVENT_WATCH_S, max(0.0, next_beat - asked))
            try:
                index, batches, lost = _watch(api, ref, cursor, wait_s, sid)
            except CodedError:
                return  # the server stopped answering: the caller reconnects with its last index + 1
            if lost:
                # Events from the cursor on are gone (the reader fell EVENT_SUBSCRIBER_MAX_LAG
                # writes behind, or the state was restored from a snapshot): the stream ends
                # rather than skip them silently; the caller starts again from what is kept.
                log.warning("event stream subscriber %d lost the events from index %d on; closing it",
                            sid, cursor)
                return
            if not batches and api.env.now() - asked < wait_s / 2:
                gevent.sleep(EVENT_RETRY_PAUSE_S)
    finally:  # the caller hung up (the write failed) or the agent stops
        _forget(api, ref, sid)


def _poll_body(batches: list[Batch], sub: Subscription, start: int, index: int) -> bytes:
    """One long-poll answer: the wanted events from *start* on, and the index to ask from next."""
    out = [line for _, line in _lines(batches, sub, start) if line]
    nxt = max([start, index + 1] + [b.index + 1 for b in batches])
    return json.dumps({"Next": nxt}).encode() + b"\n" + b"".join(out)


# ---------------------------------------------------------------- on a client-only agent


def _relay(req: Request, api: Api, start: int, sub: Subscription) -> Any:
    from actors.http_forward import FORWARDER

    if api.env.lookup(FORWARDER) is None:
        raise CodedError(501, "Server only endpoint")
    first = _poll_server(req, api, start)  # errors (no servers, no broker) are the answer's status
    return Stream(200, _relay_stream(req, api, first), "application/json")


def _poll_server(req: Request, api: Api, start: int) -> tuple[int, list[bytes]]:
    from actors.http_forward import forward_to_server

    query = [(k, v) for k, vs in req.query.items() if k not in ("index", "poll") for v in vs]
    query += [("index", str(start)), ("poll", "true")]
    url = "/v1/event/stream?" + urllib.parse.urlencode(query)
    polled = Request(method="GET", path="/v1/event/stream", url=url,
                     query=urllib.parse.parse_qs(url.split("?", 1)[1]), environ=req.environ)
    answer = forward_to_server(polled, req.environ, api)
    if answer is None:
        raise CodedError(500, "no server to relay the event stream from")
    if answer.status != 200:
        raise CodedError(answer.status, answer.body.decode(errors="replace").strip())
    head, _, rest = answer.body.partition(b"\n")
    nxt = int(json.loads(head)["Next"])
    return nxt, [line + b"\n" for line in rest.split(b"\n") if line]


def _relay_stream(req: Request, api: Api, first: tuple[int, list[bytes]]) -> Iterator[bytes]:
    nxt, lines = first
    next_beat = api.env.now()  # as the server's stream: a heartbeat at once, then on the ticker
    while True:
        if api.env.now() >= next_beat:
            yield HEARTBEAT_LINE
            next_beat = api.env.now() + EVENT_HEARTBEAT_S
        yield from lines
        asked = api.env.now()
        try:
            nxt, lines = _poll_server(req, api, nxt)
        except CodedError as e:
            if e.code in (401, 403, 400):
                return  # refused (the token went, or the server makes no events): the stream ends
            lines = []
            if api.env.now() - asked < EVENT_WATCH_S / 2:
                gevent.sleep(EVENT_RETRY_PAUSE_S)  # no server answered: ask again shortly
