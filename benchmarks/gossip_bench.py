"""`nomad-bench gossip`: membership timings of our gossip beside HashiCorp's serf agent, on loopback.

Each system runs N members (N = 5 and 20; ``--quick``: N = 5 only), one
process per member on 127.0.0.1, driven through its control surface:

* ours: ``benchmarks/gossip_node.py`` -- a GossipMember (``lan_config()``) on a
  ProdNode with a GossipTransport; a small HTTP API (``/members``, ``/join``,
  ``/leave``);
* serf: ``serf agent -node NAME -bind 127.0.0.1:PORT -rpc-addr 127.0.0.1:RPC``
  (Debian's build, its default LAN profile), driven over its msgpack RPC
  (``handshake``, ``members``, ``join``, ``leave`` -- what ``serf members`` /
  ``serf join`` / ``serf leave`` send), so polling costs no process spawn.

Both use memberlist's LAN profile: probe every 1 s, probe timeout 0.5 s,
3 indirect checks, suspicion_mult 4 (Lifeguard max 6x), gossip every 0.2 s
to 3 members, retransmit_mult 4, push-pull every 30 s.

One trial for one system and one N:

1. Start member 0 (the seed); start members 1..N-2 joining it and member
   N-1 (the joiner) alone; wait until members 0..N-2 all see N-1 alive.
2. **join_converge_s**: the joiner is told to join the seed; the time from
   that request until every one of the N members lists the joiner alive.
3. Settle 2 s (idle): **rss_mb** (mean resident set per member process) and
   the CPU the members used while idle.
4. **failure_detect_s**: SIGKILL member 1; the time until every other member
   lists it ``failed``.
5. **leave_seen_s**: member 2 is told to leave gracefully; the time from the
   request until every remaining member lists it ``left``.

Every member's view is polled every 20 ms (one poller per member, persistent
connections, a member stops being polled once it satisfies the condition);
a time is when the last member's satisfying answer arrived.  Trials alternate
ours / serf; figures are medians over the trials.  Every process is started
by us and ended by us, by PID.

Goals (issue 5): every time at or below serf's median; RSS < 40 MB per member.
Run: ``nomad-bench gossip [--quick]`` or ``python -m benchmarks.gossip_bench``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_SCRIPT = os.path.join(REPO, "benchmarks", "gossip_node.py")
POLL_S = 0.02
UP_DEADLINE_S = 30.0
FORM_DEADLINE_S = 30.0
JOIN_DEADLINE_S = 20.0
FAIL_DEADLINE_S = 60.0
LEAVE_DEADLINE_S = 30.0
SETTLE_S = 2.0
GOAL_RSS_MB = 40.0
# Trials per N (alternating ours / serf): failure detection varies by a second or two from trial
# to trial; the whole full run stays under four minutes on 2 CPUs.
ROUNDS = {5: 4, 20: 4}
TAGS = {"role": "bench"}
KEYS = ("join_converge_s", "failure_detect_s", "leave_seen_s", "rss_mb")
DETAIL_KEYS = ("join_full_s", "failure_first_s", "join_reply_s", "leave_reply_s", "idle_cpu_pct_per_member")


def free_ports(n: int) -> list[int]:
    """n distinct ports free for both TCP and UDP on 127.0.0.1 (bound together, then released)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.bind(("127.0.0.1", 0))
            socks.append(t)
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                u.close()
                continue
            socks.append(u)
            ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


class ControlError(Exception):
    """A member's control surface did not answer (or answered an error)."""


# ================================================================ members
class Member:
    """One member process: its name, gossip address, control port and PID."""

    kind = ""

    def __init__(self, name: str, port: int, ctl: int, log_path: str) -> None:
        self.name, self.port, self.ctl, self.log_path = name, port, ctl, log_path
        self.addr = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, join: str | None) -> list[str]:
        raise NotImplementedError

    def start(self, join: str | None) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(join), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=REPO)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def up(self) -> bool:
        raise NotImplementedError

    def members(self) -> dict[str, str] | None:
        """This member's view, name -> status; None if it did not answer."""
        raise NotImplementedError

    def join(self, addrs: list[str]) -> int:
        raise NotImplementedError

    def leave(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any] | None:
        return None

    def close_conn(self) -> None:
        pass

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 3.0) -> None:
        self.close_conn()
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)

    def tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"


class OursMember(Member):
    kind = "ours"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self._conn: http.client.HTTPConnection | None = None

    def command(self, join: str | None) -> list[str]:
        cmd = [sys.executable, NODE_SCRIPT, "--name", self.name, "--bind", self.addr, "--http", str(self.ctl)]
        for k, v in TAGS.items():
            cmd += ["--tag", f"{k}={v}"]
        if join:
            cmd += ["--join", join]
        return cmd

    def _get(self, path: str, timeout: float = 5.0, persistent: bool = False) -> dict[str, Any]:
        conn = self._conn if persistent else None
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.ctl, timeout=timeout)
                if persistent:
                    self._conn = conn
            conn.request("GET", path)
            r = conn.getresponse()
            body = json.loads(r.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if persistent:
                self.close_conn()
            raise ControlError(f"{self.name} {path}: {type(exc).__name__}: {exc}") from None
        finally:
            if not persistent and conn is not None:
                conn.close()
        if r.status != 200:
            raise ControlError(f"{self.name} {path}: {r.status} {body.get('error')}")
        return body

    def close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def up(self) -> bool:
        try:
            self._get("/status", timeout=1)
            return True
        except ControlError:
            return False

    def members(self) -> dict[str, str] | None:
        try:
            return self._get("/members", persistent=True)["members"]
        except ControlError:
            return None

    def join(self, addrs: list[str]) -> int:
        return int(self._get(f"/join?addrs={','.join(addrs)}", timeout=20)["num"])

    def leave(self) -> None:
        self._get("/leave", timeout=30)

    def stats(self) -> dict[str, Any] | None:
        try:
            return self._get("/stats", timeout=5)
        except ControlError:
            return None


class SerfRPC:
    """A minimal client of serf's msgpack RPC (serf/client): handshake, then header [+ body] calls."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", strict_map_key=False)
        self.seq = 0
        self.call("handshake", {"Version": 1}, has_body=False)

    def _next(self) -> Any:
        while True:
            try:
                return next(self.unpacker)
            except StopIteration:
                pass
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("serf rpc closed")
            self.unpacker.feed(data)

    def call(self, command: str, body: Any = None, has_body: bool = True) -> Any:
        seq = self.seq
        self.seq += 1
        out = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            out += msgpack.packb(body)
        self.sock.sendall(out)
        header = self._next()
        resp = self._next() if has_body else None
        if header.get("Error"):
            raise ControlError(f"serf {command}: {header['Error']}")
        return resp

    def close(self) -> None:
        self.sock.close()


class SerfMember(Member):
    kind = "serf"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self._rpc: SerfRPC | None = None

    def command(self, join: str | None) -> list[str]:
        cmd = ["serf", "agent", "-node", self.name, "-bind", self.addr, "-rpc-addr", f"127.0.0.1:{self.ctl}",
               "-log-level", "warn"]
        for k, v in TAGS.items():
            cmd += ["-tag", f"{k}={v}"]
        if join:
            cmd += ["-join", join]
        return cmd

    def _one(self, command: str, body: Any = None, has_body: bool = True, timeout: float = 30.0) -> Any:
        try:
            rpc = SerfRPC(self.ctl, timeout=timeout)
        except OSError as exc:
            raise ControlError(f"{self.name}: {exc}") from None
        try:
            return rpc.call(command, body, has_body)
        except (OSError, ConnectionError, ValueError) as exc:
            raise ControlError(f"{self.name} {command}: {type(exc).__name__}: {exc}") from None
        finally:
            rpc.close()

    def close_conn(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None

    def up(self) -> bool:
        try:
            SerfRPC(self.ctl, timeout=1).close()
            return True
        except (OSError, ConnectionError, ValueError, ControlError):
            return False

    def members(self) -> dict[str, str] | None:
        try:
            if self._rpc is None:
                self._rpc = SerfRPC(self.ctl)
            resp = self._rpc.call("members")
            return {m["Name"]: m["Status"] for m in resp["Members"]}
        except (OSError, ConnectionError, ValueError, ControlError):
            self.close_conn()
            return None

    def join(self, addrs: list[str]) -> int:
        return int(self._one("join", {"Existing": addrs, "Replay": False})["Num"])

    def leave(self) -> None:
        self._one("leave", has_body=False)


KINDS: dict[str, type[Member]] = {"ours": OursMember, "serf": SerfMember}


# ================================================================ measuring
def wait_up(members: list[Member], deadline_s: float = UP_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    for m in members:
        while not m.up():
            if not m.alive():
                raise RuntimeError(f"{m.kind} {m.name} exited early; log:\n{m.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{m.kind} {m.name} did not come up in {deadline_s}s; log:\n{m.tail()}")
            time.sleep(0.02)


class Watch:
    """Poll every observer's view until *cond* holds at each; times are seconds after *t0*."""

    def __init__(self, observers: list[Member], cond: Callable[[dict[str, str]], bool], t0: float,
                 deadline_s: float) -> None:
        self.observers, self.cond, self.t0 = observers, cond, t0
        self.deadline = t0 + deadline_s
        self.seen: dict[str, float | None] = {m.name: None for m in observers}
        self.last: dict[str, dict[str, str] | None] = {m.name: None for m in observers}
        self.polls = 0

    def _poll(self, m: Member) -> None:
        while time.monotonic() < self.deadline:
            view = m.members()
            now = time.monotonic()
            self.polls += 1
            self.last[m.name] = view
            if view is not None and self.cond(view):
                self.seen[m.name] = now - self.t0
                return
            time.sleep(POLL_S)

    def run(self) -> float | None:
        threads = [threading.Thread(target=self._poll, args=(m,), daemon=True) for m in self.observers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if any(v is None for v in self.seen.values()):
            return None
        return max(v for v in self.seen.values() if v is not None)

    def laggards(self) -> dict[str, Any]:
        return {name: self.last[name] for name, v in self.seen.items() if v is None}


def cpu_s(members: list[Member]) -> float:
    total = 0.0
    for m in members:
        try:
            t = psutil.Process(m.pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def trial(kind: str, n: int, base: str, label: str) -> dict[str, Any]:
    """One trial for one system (see the module docstring); times are None when a deadline passed."""
    ports = free_ports(2 * n)
    cls = KINDS[kind]
    ms = [cls(f"node-{i}", ports[i], ports[n + i], os.path.join(base, f"{kind}-{n}-{ports[0]}-{i}.log"))
          for i in range(n)]
    seed, joiner, victim, leaver = ms[0], ms[-1], ms[1], ms[2]
    out: dict[str, Any] = {"n": n, "problems": []}
    try:
        t_start = time.monotonic()
        seed.start(None)
        wait_up([seed])
        for m in ms[1:-1]:
            m.start(seed.addr)
        joiner.start(None)
        wait_up(ms)
        out["startup_s"] = round(time.monotonic() - t_start, 3)

        # 1. form the cluster of N - 1
        core = ms[:-1]
        names = {m.name for m in core}
        w = Watch(core, lambda v: all(v.get(x) == "alive" for x in names), time.monotonic(), FORM_DEADLINE_S)
        formed = w.run()
        if formed is None:
            out["problems"].append(f"cluster of {n - 1} did not form in {FORM_DEADLINE_S}s: {w.laggards()}")
            return out
        out["form_s"] = round(formed, 3)
        time.sleep(SETTLE_S / 2)

        # 2. join
        t0 = time.monotonic()
        answer: dict[str, Any] = {}

        def do_join() -> None:
            try:
                answer["num"] = joiner.join([seed.addr])
            except ControlError as exc:
                answer["error"] = str(exc)
            answer["t"] = time.monotonic() - t0

        th = threading.Thread(target=do_join, daemon=True)
        th.start()
        w = Watch(ms, lambda v: v.get(joiner.name) == "alive", t0, JOIN_DEADLINE_S)
        out["join_converge_s"] = w.run()
        th.join(timeout=JOIN_DEADLINE_S)
        out["join_reply_s"] = round(answer.get("t", -1), 4)
        if "error" in answer:
            out["problems"].append(f"join answered {answer['error']}")
        if out["join_converge_s"] is None:
            out["problems"].append(f"join not seen by all in {JOIN_DEADLINE_S}s: {w.laggards()}")
        all_names = {m.name for m in ms}
        w = Watch(ms, lambda v: all(v.get(x) == "alive" for x in all_names), t0, JOIN_DEADLINE_S)
        full = w.run()
        out["join_full_s"] = full  # everyone sees everyone alive

        # 3. idle: memory and CPU
        c0, tc0 = cpu_s(ms), time.monotonic()
        time.sleep(SETTLE_S)
        out["idle_cpu_pct_per_member"] = round(100 * (cpu_s(ms) - c0) / (time.monotonic() - tc0) / n, 2)
        rss = []
        for m in ms:
            try:
                rss.append(psutil.Process(m.pid).memory_info().rss / 2**20)
            except psutil.Error:
                pass
        out["rss_mb"] = round(statistics.mean(rss), 1) if rss else None
        out["rss_max_mb"] = round(max(rss), 1) if rss else None

        # 4. SIGKILL
        others = [m for m in ms if m is not victim]
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        w = Watch(others, lambda v: v.get(victim.name) == "failed", t0, FAIL_DEADLINE_S)
        out["failure_detect_s"] = w.run()
        out["failure_first_s"] = min((v for v in w.seen.values() if v is not None), default=None)
        if out["failure_detect_s"] is None:
            out["problems"].append(f"SIGKILLed member not failed everywhere in {FAIL_DEADLINE_S}s: "
                                   f"{w.laggards()}")
        victim.proc.wait(timeout=5)  # type: ignore[union-attr]

        # 5. graceful leave
        others = [m for m in ms if m is not victim and m is not leaver]
        answer = {}
        t0 = time.monotonic()

        def do_leave() -> None:
            try:
                leaver.leave()
            except ControlError as exc:
                answer["error"] = str(exc)
            answer["t"] = time.monotonic() - t0

        th = threading.Thread(target=do_leave, daemon=True)
        th.start()
        w = Watch(others, lambda v: v.get(leaver.name) == "left", t0, LEAVE_DEADLINE_S)
        out["leave_seen_s"] = w.run()
        th.join(timeout=LEAVE_DEADLINE_S)
        out["leave_reply_s"] = round(answer.get("t", -1), 4)
        if "error" in answer:
            out["problems"].append(f"leave answered {answer['error']}")
        if out["leave_seen_s"] is None:
            out["problems"].append(f"leave not seen by all in {LEAVE_DEADLINE_S}s: {w.laggards()}")
        if kind == "ours":
            out["stats"] = summarize_stats([m.stats() for m in others])
        return out
    finally:
        for m in ms:
            m.close_conn()
        for m in ms:  # SIGTERM all first, then reap
            if m.alive():
                try:
                    os.kill(m.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for m in ms:
            m.stop(signal.SIGTERM, grace_s=3.0)
        for k in ("join_converge_s", "join_full_s", "failure_detect_s", "failure_first_s", "leave_seen_s"):
            if out.get(k) is not None:
                out[k] = round(out[k], 3)
        print(f"  {label:5} N={n:<3} " + "  ".join(
            f"{k.removesuffix('_s')} {_fmt(out.get(k))}"
            for k in ("join_converge_s", "failure_detect_s", "leave_seen_s"))
            + f"  rss {_fmt(out.get('rss_mb'), 'MB')}"
            + f"  idle cpu {_fmt(out.get('idle_cpu_pct_per_member'), '%')}"
            + (f"  PROBLEMS: {out['problems']}" if out["problems"] else ""), flush=True)


def summarize_stats(stats: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Totals of the survivors' gossip counters (evidence for slow detection or false suspicion)."""
    got = [s["member"] for s in stats if s]
    keys = ("probes", "acks", "indirect_probes", "nacks", "suspects", "dead", "refutes", "push_pulls",
            "gossip_sent", "packets")
    tot = {k: sum(int(s.get(k, 0)) for s in got) for k in keys}
    tot["max_health_score"] = max((int(s.get("health_score", 0)) for s in got), default=0)
    tot["max_queued_broadcasts"] = max((int(s.get("queued_broadcasts", 0)) for s in got), default=0)
    tot["bad_messages"] = sum(int(s.get("bad_messages", 0)) for s in got)
    return tot


def _fmt(v: Any, unit: str = "s") -> str:
    return "timeout" if v is None else f"{v:.3f}{unit}" if unit == "s" else f"{v:.1f}{unit}"


def _median(trials: list[dict[str, Any]], key: str) -> float | None:
    vals = [t[key] for t in trials if t.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else None


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _median(trials, k) for k in KEYS}
    for k in ("join_converge_s", "failure_detect_s", "leave_seen_s"):
        out[k.removesuffix("_s") + "_samples"] = [t.get(k) for t in trials]
    for k in ("join_full_s", "join_reply_s", "failure_first_s", "leave_reply_s", "form_s", "startup_s",
              "rss_max_mb", "idle_cpu_pct_per_member"):
        out[k] = _median(trials, k)
    out["timeouts"] = sum(1 for t in trials for k in KEYS[:3] if t.get(k) is None)
    out["problems"] = [p for t in trials for p in t.get("problems", [])]
    stats = [t["stats"] for t in trials if "stats" in t]
    if stats:  # ours: the survivors' counters, summed over the trials (maxima for max_*)
        out["stats"] = {k: (max if k.startswith("max_") else sum)(s.get(k, 0) for s in stats)
                        for k in stats[0]}
    return out


def serf_version() -> str | None:
    if shutil.which("serf") is None:
        return None
    try:
        r = subprocess.run(["serf", "version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0].strip() if r.stdout else "unknown"
    except (OSError, subprocess.SubprocessError):
        return None


def run(quick: bool = False) -> dict[str, Any]:
    rounds = {5: 1} if quick else dict(ROUNDS)
    sizes = tuple(rounds)
    version = serf_version()
    kinds = ["ours"] + (["serf"] if version else [])
    base = tempfile.mkdtemp(prefix="gossip-bench-")
    print(f"gossip on 127.0.0.1, one process per member; trials per N: {rounds}; "
          f"{os.cpu_count()} CPUs; logs in {base}", flush=True)
    if version:
        print(f"peer: serf {version} (default LAN profile)", flush=True)
    else:
        print("peer: serf is not installed (apt-get install -y serf); measuring ours only", flush=True)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {k: {n: [] for n in sizes} for k in kinds}
    t_begin = time.monotonic()
    try:
        for n in sizes:
            for _ in range(rounds[n]):
                for kind in kinds:
                    results[kind][n].append(trial(kind, n, base, kind))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary = {k: {n: summarize(results[k][n]) for n in sizes} for k in kinds}

    # ------------------------------------------------ table
    print(f"\nmedians over {rounds} trials per N ({time.monotonic() - t_begin:.0f} s in all):")
    print(f"  {'N':>3}  {'figure':22} {'ours':>9} {'serf':>9}  goal")
    for n in sizes:
        for key in KEYS:
            ours_v = summary["ours"][n][key]
            peer_v = summary["serf"][n][key] if "serf" in summary else None
            unit = "MB" if key == "rss_mb" else "s"
            if key == "rss_mb":
                goal = "met" if ours_v is not None and ours_v < GOAL_RSS_MB else "MISSED"
                goal += f" (< {GOAL_RSS_MB:.0f} MB)"
            elif peer_v is None:
                goal = "-"
            else:
                goal = "met" if ours_v is not None and ours_v <= peer_v else "MISSED"
                goal += " (<= serf)"
            peer_s = _fmt(peer_v, unit) if "serf" in summary else "-"
            print(f"  {n:>3}  {key:22} {_fmt(ours_v, unit):>9} {peer_s:>9}  {goal}")
        for key in DETAIL_KEYS:
            ours_v = summary["ours"][n][key]
            peer_v = summary["serf"][n][key] if "serf" in summary else None
            unit = "%" if "cpu" in key else "s"
            peer_s = _fmt(peer_v, unit) if "serf" in summary else "-"
            print(f"  {n:>3}  {key:22} {_fmt(ours_v, unit):>9} {peer_s:>9}  (detail)")

    # ------------------------------------------------ figures
    head = max(sizes)

    def flat(s: dict[int, dict[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {k: s[head][k] for k in KEYS}
        d["n"] = head
        for n in sizes:
            d[f"n{n}"] = s[n]
        return d

    figures = flat(summary["ours"])
    figures["trials"] = {f"n{n}": r for n, r in rounds.items()}
    if "serf" in summary:
        figures["peer"] = {"name": "serf", "version": version, **flat(summary["serf"])}
        goals = {}
        for n in sizes:
            for k in KEYS[:3]:
                o, p = summary["ours"][n][k], summary["serf"][n][k]
                goals[f"n{n}_{k}"] = o is not None and p is not None and o <= p
        figures["goal_times_met"] = all(goals.values())
        figures["goal_times"] = goals
    else:
        figures["peer"] = None
        figures["peer_note"] = "serf not installed; install the Debian package `serf`"
    figures["goal_rss_met"] = all(summary["ours"][n]["rss_mb"] is not None
                                  and summary["ours"][n]["rss_mb"] < GOAL_RSS_MB for n in sizes)
    figures["goal_rss_mb"] = GOAL_RSS_MB
    return figures


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), sort_keys=True))
