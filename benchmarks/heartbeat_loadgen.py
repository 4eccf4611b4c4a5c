"""Load generator for `nomad-bench heartbeat`: N simulated Nomad clients over a server's real RPC port.

Run as its own process (``python -m benchmarks.heartbeat_loadgen ...``) so
the server's CPU is measured apart from the load's.  It speaks the client
protocol of ``actors/client/messages.py`` over the same length-framed
msgpack Envelopes as ``runtime/transport.py``:

* **register** each node (``RegisterNode`` with a realistic fingerprint from
  ``actors.client.fingerprint``), at most ``--register-inflight`` at a time,
  as a rack of clients starting together would;
* **follow the TTL** as our ClientNode (and Nomad's client) does: the next
  heartbeat is sent ``heartbeat_ttl_s`` after the previous answer arrived;
  the server's grace covers the trip.  A heartbeat answered with a Raft
  index means the node had been marked down and was restored: a false down,
  counted as it happens (``restored``);
* **saturate** (the throughput phase): a fixed window of heartbeats in
  flight, each answer immediately followed by the next node's heartbeat
  (never two in flight for one node), to find what the server sustains.

Simulated clients share ``--lanes`` connections: each lane is one outbound
connection to the server and one listener the server answers to (our RPC
answers go to the client's own RPC address).  One connection per client is
not possible here: at 10,000 clients the server would hold 20,000 sockets,
the whole fd limit of this machine (``ulimit -n`` = 20,000).

The last line printed is a JSON object of the results; progress goes to
stderr.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.lock  # noqa: E402
import gevent.socket  # noqa: E402
import psutil  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from actors.client.fingerprint import fake_facts, fingerprint  # noqa: E402
from actors.client.messages import (  # noqa: E402
    ERR_NODE_NOT_FOUND,
    NodeSpec,
    NodeUpdateResponse,
    RegisterNode,
    UpdateNodeStatus,
)
from actors.server import ENDPOINT, HEARTBEATS  # noqa: E402
from runtime.messages import Envelope  # noqa: E402
from runtime.transport import format_address, parse_address  # noqa: E402
from runtime.wire import FrameDecoder, encode_frame  # noqa: E402

REPLY_ACTOR = "client"
# An answer later than this is given up on and the RPC retried (our
# ClientNode's rpc_attempt_timeout_s is of the same order).
RPC_TIMEOUT_S = 10.0
# Retry delay after an error answer (Nomad's heartbeat retry floor is 1 s).
RETRY_S = 1.0
# ClientNodeConfig.initial_heartbeat_stagger_s: first heartbeat after registering.
INITIAL_STAGGER_S = 10.0
# The scheduler wakes at least this often to send what came due.
TICK_S = 0.005
# /v1/nodes reads may be slow with 10,000 nodes on a loaded server.
HTTP_TIMEOUT_S = 60.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


@dataclass(slots=True)
class Lane:
    """One connection to the server plus the listener it answers to."""

    addr: str = ""
    sock: Any = None
    lock: Any = field(default_factory=gevent.lock.Semaphore)
    buf: list[bytes] = field(default_factory=list)
    server: Any = None


@dataclass(slots=True)
class Stats:
    registered: int = 0
    heartbeats: int = 0  # successful heartbeat answers
    errors: int = 0
    timeouts: int = 0
    restored: int = 0  # heartbeats answered with a Raft index: the node had been marked down
    not_found: int = 0
    max_late_s: float = 0.0  # how late the generator sent a due heartbeat (its own lag)
    max_rtt_s: float = 0.0
    error_texts: dict[str, int] = field(default_factory=dict)


class LoadGen:
    def __init__(self, server: str, lanes: int, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.lanes = [Lane() for _ in range(lanes)]
        self.node_ids: list[str] = []
        self.specs: list[NodeSpec] = []
        self.ttl: list[float] = []
        self.beat: list[bool] = []  # a heartbeat of the node has been answered
        self.inflight: dict[int, tuple[int, float, str]] = {}  # req_id -> (node, sent_at, kind)
        self.busy: set[int] = set()  # nodes with an RPC in flight
        self.heap: list[tuple[float, int]] = []  # (due, node) heartbeats following the TTL
        self.mode = "ttl"  # or "saturate"
        self.rotor = 0  # next node for a saturating heartbeat
        self.window = 0
        self.next_req = 0
        self.st = Stats()
        self.rtts: list[float] = []
        self.registering: list[int] = []  # nodes still to register
        self.register_inflight = 0

    # ------------------------------------------------------------ plumbing
    def start(self) -> None:
        for lane in self.lanes:
            lane.server = StreamServer(("127.0.0.1", 0), self._serve)
            lane.server.start()
            lane.addr = format_address(*lane.server.address[:2])
            lane.sock = gevent.socket.create_connection(parse_address(self.server), timeout=10)
            lane.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        gevent.spawn(self._ticker)

    def _serve(self, sock: Any, _addr: Any) -> None:
        decoder = FrameDecoder()
        while True:
            data = sock.recv(256 * 1024)
            if not data:
                return
            for env in decoder.feed(data):
                if isinstance(env, Envelope) and isinstance(env.payload, NodeUpdateResponse):
                    self._answer(env.payload)
            self._flush_all()

    def _lane(self, node: int) -> Lane:
        return self.lanes[node % len(self.lanes)]

    def _send(self, node: int, kind: str) -> None:
        lane = self._lane(node)
        self.next_req += 1
        req = self.next_req
        if kind == "register":
            payload: Any = RegisterNode(req_id=req, reply_node=lane.addr, reply_actor=REPLY_ACTOR,
                                        node=self.specs[node])
            actor = ENDPOINT
        else:  # as ClientNode: a plain heartbeat goes to the server's HeartbeatMonitor
            payload = UpdateNodeStatus(req_id=req, reply_node=lane.addr, reply_actor=REPLY_ACTOR,
                                       node_id=self.node_ids[node])
            actor = HEARTBEATS
        lane.buf.append(encode_frame(Envelope(src=lane.addr, dst_actor=actor, payload=payload)))
        self.inflight[req] = (node, time.monotonic(), kind)
        self.busy.add(node)

    def _flush_all(self) -> None:
        for lane in self.lanes:
            if lane.buf:
                data = b"".join(lane.buf)
                lane.buf.clear()
                with lane.lock:
                    lane.sock.sendall(data)

    # ------------------------------------------------------------ answers
    def _answer(self, m: NodeUpdateResponse) -> None:
        got = self.inflight.pop(m.req_id, None)
        if got is None:
            return  # timed out and retried already
        node, sent, kind = got
        self.busy.discard(node)
        now = time.monotonic()
        rtt = now - sent
        self.st.max_rtt_s = max(self.st.max_rtt_s, rtt)
        if len(self.rtts) < 200_000:
            self.rtts.append(rtt)
        if not m.ok:
            self._error(node, kind, m.error, now)
            return
        self.ttl[node] = m.heartbeat_ttl_s
        if kind == "register":
            self.st.registered += 1
            self.register_inflight -= 1
            self._register_more()
        else:
            self.st.heartbeats += 1
            if m.index and self.beat[node]:
                # A Raft write answering a heartbeat of a node that was ready
                # already: it had been marked down in between.  (The first
                # heartbeat after registering writes initializing -> ready.)
                self.st.restored += 1
            self.beat[node] = True
        if self.mode == "saturate":
            self._saturate_one()
        elif kind == "register":
            # ClientNode: the first heartbeat within initial_heartbeat_stagger_s (10 s) of registering.
            delay = self.rng.random() * min(INITIAL_STAGGER_S, m.heartbeat_ttl_s)
            heapq.heappush(self.heap, (now + delay, node))
        else:
            heapq.heappush(self.heap, (now + m.heartbeat_ttl_s, node))

    def _error(self, node: int, kind: str, error: str, now: float) -> None:
        self.st.errors += 1
        self.st.error_texts[error] = self.st.error_texts.get(error, 0) + 1
        if ERR_NODE_NOT_FOUND in error:
            self.st.not_found += 1
            kind = "register"
        if kind == "register":
            self.register_inflight -= 1
            self.registering.append(node)
            gevent.spawn_later(RETRY_S, self._register_more)
            return
        heapq.heappush(self.heap, (now + RETRY_S, node))

    # ------------------------------------------------------------ the clock
    def _ticker(self) -> None:
        while True:
            now = time.monotonic()
            heap = self.heap
            while heap and heap[0][0] <= now:
                due, node = heapq.heappop(heap)
                if node in self.busy:
                    continue
                self.st.max_late_s = max(self.st.max_late_s, now - due)
                self._send(node, "heartbeat")
            self._expire(now)
            self._flush_all()
            gevent.sleep(TICK_S)

    def _expire(self, now: float) -> None:
        if not self.inflight:
            return
        first = next(iter(self.inflight))  # dict order is send order
        if now - self.inflight[first][1] < RPC_TIMEOUT_S:
            return
        for req in [r for r, v in self.inflight.items() if now - v[1] >= RPC_TIMEOUT_S]:
            node, _, kind = self.inflight.pop(req)
            self.busy.discard(node)
            self.st.timeouts += 1
            if kind == "register":
                self.register_inflight -= 1
                self.registering.append(node)
                self._register_more()
            elif self.mode == "ttl":
                heapq.heappush(self.heap, (now, node))

    # ------------------------------------------------------------ phases
    def add_nodes(self, n: int) -> list[int]:
        first = len(self.node_ids)
        for i in range(first, first + n):
            nid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            fp = fingerprint(fake_facts(f"lg-{i:05d}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),
                             nomad_version="2.0.6")
            self.node_ids.append(nid)
            self.ttl.append(0.0)
            self.beat.append(False)
            self.specs.append(NodeSpec(node_id=nid, secret_id=str(uuid.UUID(int=self.rng.getrandbits(128),
                                                                             version=4)),
                                       name=f"lg-{i:05d}", attributes=fp.attributes, drivers=fp.drivers,
                                       resources=fp.resources))
        return list(range(first, first + n))

    def register(self, nodes: list[int], inflight: int, deadline_s: float) -> float:
        """Register *nodes* with at most *inflight* outstanding; returns the seconds it took."""
        t0 = time.monotonic()
        target = self.st.registered + len(nodes)
        self.registering.extend(reversed(nodes))
        self.window = inflight
        self._register_more()
        self._flush_all()
        while self.st.registered < target:
            if time.monotonic() - t0 > deadline_s:
                raise RuntimeError(f"registration not done in {deadline_s}s ({self.st.registered}/{target})")
            gevent.sleep(0.05)
        return time.monotonic() - t0

    def _register_more(self) -> None:
        while self.registering and self.register_inflight < self.window:
            self.register_inflight += 1
            self._send(self.registering.pop(), "register")

    def saturate(self, window: int, seconds: float) -> int:
        """Heartbeats as fast as answered with *window* in flight; returns how many were answered."""
        self.mode = "saturate"
        self.heap.clear()  # TTL-following resumes from each node's last answer below
        self.window = window
        for _ in range(window):
            self._saturate_one()
        self._flush_all()
        start = self.st.heartbeats
        gevent.sleep(seconds)
        done = self.st.heartbeats - start
        self.mode = "ttl"
        while self.inflight:  # drain, so every node is back on its TTL below
            gevent.sleep(0.01)
        now = time.monotonic()
        for node in range(len(self.node_ids)):
            heapq.heappush(self.heap, (now + self.ttl[node], node))
        return done

    def _saturate_one(self) -> None:
        n = len(self.node_ids)
        for _ in range(n):
            node = self.rotor
            self.rotor = (self.rotor + 1) % n
            if node not in self.busy:
                self._send(node, "heartbeat")
                return


# ------------------------------------------------------------ the driver
def server_cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def node_statuses(http: str) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{http}/v1/nodes", timeout=HTTP_TIMEOUT_S) as r:
        nodes = json.loads(r.read())
    out: dict[str, int] = {}
    for n in nodes:
        out[n["Status"]] = out.get(n["Status"], 0) + 1
    return out


def rung_window_s(n: int, *, min_ttl_s: float, rate: float, grace_s: float, cycles: float) -> float:
    """Long enough for every node to heartbeat *cycles* times at its longest TTL (2 x base), plus grace."""
    base = max(n / rate, min_ttl_s)
    return cycles * 2 * base + grace_s


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="heartbeat_loadgen")
    p.add_argument("--server", required=True, help="the server's RPC address host:port")
    p.add_argument("--http", required=True, help="the server's HTTP address host:port")
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--lanes", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--register-inflight", type=int, default=128)
    p.add_argument("--throughput-nodes", type=int, default=1000)
    p.add_argument("--throughput-s", type=float, default=10.0)
    p.add_argument("--throughput-window", type=int, default=256)
    p.add_argument("--ladder", default="1000,2500,5000,10000")
    p.add_argument("--cycles", type=float, default=1.0, help="TTL cycles held at each rung")
    p.add_argument("--min-ttl", type=float, default=10.0, help="the server's min_heartbeat_ttl (seconds)")
    p.add_argument("--rate", type=float, default=50.0, help="the server's max_heartbeats_per_second")
    p.add_argument("--grace", type=float, default=10.0, help="the server's heartbeat_grace (seconds)")
    args = p.parse_args(argv)

    server = psutil.Process(args.server_pid)
    me = psutil.Process()
    gen = LoadGen(args.server, args.lanes, args.seed)
    gen.start()
    out: dict[str, Any] = {"lanes": args.lanes}

    # Throughput: saturate a registered population, server CPU measured around it.
    first = gen.add_nodes(args.throughput_nodes)
    reg_s = gen.register(first, args.register_inflight, deadline_s=600)
    out["register_per_s"] = round(len(first) / reg_s, 1)
    log(f"registered {len(first)} nodes in {reg_s:.2f}s ({len(first) / reg_s:.0f}/s)")
    gen.rtts.clear()
    cpu0, my0, t0 = server_cpu_s(server), server_cpu_s(me), time.monotonic()
    done = gen.saturate(args.throughput_window, args.throughput_s)
    elapsed = time.monotonic() - t0
    cpu = server_cpu_s(server) - cpu0
    out.update(heartbeats_per_s=round(done / elapsed, 1),
               cpu_ms_per_1000_heartbeats=round(cpu * 1000 / max(done, 1) * 1000, 1),
               server_cpu_util=round(cpu / elapsed, 2),
               loadgen_cpu_util=round((server_cpu_s(me) - my0) / elapsed, 2),
               saturate_rtt_p50_ms=round(pct(gen.rtts, 0.5) * 1000, 2),
               saturate_rtt_p99_ms=round(pct(gen.rtts, 0.99) * 1000, 2))
    log(f"saturated: {done} heartbeats in {elapsed:.1f}s = {done / elapsed:.0f}/s; server CPU "
        f"{cpu:.2f}s ({cpu / elapsed * 100:.0f}% of a core) = {cpu * 1e6 / max(done, 1):.0f} ms per 1,000")

    # The ladder: grow the population at the server's real TTLs; a rung holds
    # when, after a full TTL cycle of every node, none was ever marked down.
    rungs: list[dict[str, Any]] = []
    max_nodes = 0
    for n in [int(x) for x in args.ladder.split(",") if x]:
        if n > len(gen.node_ids):
            new = gen.add_nodes(n - len(gen.node_ids))
            reg_s = gen.register(new, args.register_inflight, deadline_s=600)
            log(f"rung {n}: registered {len(new)} more in {reg_s:.1f}s")
        window = rung_window_s(n, min_ttl_s=args.min_ttl, rate=args.rate, grace_s=args.grace,
                               cycles=args.cycles)
        hb0, cpu0, t0 = gen.st.heartbeats, server_cpu_s(server), time.monotonic()
        restored0, late0 = gen.st.restored, gen.st.max_late_s
        log(f"rung {n}: holding {window:.0f}s (every node heartbeats at least {args.cycles:g}x)")
        gevent.sleep(window)
        elapsed = time.monotonic() - t0
        statuses = node_statuses(args.http)
        hbs = gen.st.heartbeats - hb0
        cpu = server_cpu_s(server) - cpu0
        restored = gen.st.restored - restored0
        ok = statuses == {"ready": n} and restored == 0
        rung = {"nodes": n, "ok": ok, "held_s": round(elapsed, 1), "statuses": statuses, "restored": restored,
                "heartbeats_per_s": round(hbs / elapsed, 1), "server_cpu_util": round(cpu / elapsed, 3),
                "rss_mb": round(server.memory_info().rss / 2**20, 1),
                "loadgen_max_late_s": round(max(gen.st.max_late_s, late0), 3),
                "max_rtt_ms": round(gen.st.max_rtt_s * 1000, 1)}
        rungs.append(rung)
        log(f"rung {n}: {'HELD' if ok else 'FAILED'} {json.dumps(rung, sort_keys=True)}")
        if not ok:
            break
        max_nodes = n
    out.update(max_nodes=max_nodes, rungs=rungs, timeouts=gen.st.timeouts, errors=gen.st.errors,
               error_texts=gen.st.error_texts, loadgen_max_late_s=round(gen.st.max_late_s, 3))
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
