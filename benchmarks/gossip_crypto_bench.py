"""`nomad-bench gossip-crypto`: what gossip encryption (server.encrypt, AES-GCM) costs in CPU.

Three figures (issue 10, "Cost of encryption: gossip CPU with and without"):

1. **Per packet** (in-process): the time to seal and open one gossip payload
   of 64, 300 and 1371 bytes (1371 = the UDP budget left once the 29-byte
   overhead is taken from 1400) with the ``cryptography`` AES-256-GCM our
   transport uses, beside the msgpack encode + decode of a typical gossip
   packet that every packet pays anyway.
2. **Through the edge** (in-process, real sockets): CPU microseconds per
   gossip packet sent by one GossipTransport and received, opened, decoded
   and delivered by another over UDP loopback, plain and encrypted.
3. **A pool** (real processes): N members (``benchmarks/gossip_node.py``,
   memberlist's LAN profile: probe every 1 s, gossip every 0.2 s to 3) on
   loopback, formed, then the CPU all of them use over a steady window,
   plain and encrypted alternately; reported as CPU % per member and CPU
   microseconds per packet sent.  Every process is started and ended by
   us, by PID.

Run: ``nomad-bench gossip-crypto [--quick]`` or ``python -m benchmarks.gossip_crypto_bench``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from benchmarks.gossip_bench import (
    FORM_DEADLINE_S,
    OursMember,
    Watch,
    cpu_s,
    free_ports,
    wait_up,
)
from runtime.gossip_crypto import OVERHEAD, Keyring, generate_key

KEY = generate_key()
PAYLOADS = (64, 300, 1400 - OVERHEAD)
MICRO_ROUNDS = 20_000


class EncryptedMember(OursMember):
    kind = "ours-encrypted"

    def command(self, join: str | None) -> list[str]:
        return [*super().command(join), "--encrypt", KEY]


def micro(rounds: int = MICRO_ROUNDS) -> dict[str, Any]:
    """Microseconds to seal+open one payload, and to encode+decode a gossip packet (for scale)."""
    from actors.gossip.messages import Alive, Gossip, encode_tags
    from runtime import wire
    from runtime.messages import Envelope

    ring = Keyring([KEY])
    out: dict[str, Any] = {}
    for size in PAYLOADS:
        data = os.urandom(size)
        t0 = time.perf_counter()
        for _ in range(rounds):
            ring.open(ring.seal(data))
        out[f"seal_open_us_{size}B"] = round((time.perf_counter() - t0) / rounds * 1e6, 2)
    alive = Alive(name="node-3.global", addr="127.0.0.1:4648", incarnation=7,
                  meta=encode_tags((("dc", "dc1"), ("role", "nomad"))))
    env = Envelope(src="127.0.0.1:4648", dst_actor="gossip", payload=Gossip(src_name="node-1.global",
                                                                            gossip=(alive, alive)))
    encoded = wire.encode(env)
    t0 = time.perf_counter()
    for _ in range(rounds):
        wire.decode(wire.encode(env))
    out["msgpack_encode_decode_us"] = round((time.perf_counter() - t0) / rounds * 1e6, 2)
    out["typical_packet_bytes"] = len(encoded)
    return out


def edge(packets: int = 20_000, batch: int = 200) -> dict[str, Any]:
    """CPU per gossip packet through the real edge: GossipTransport -> UDP loopback -> GossipTransport.

    Both ends run in this process, so process CPU time covers encode, seal,
    sendto, recvfrom, open, decode and delivery of each packet.  Packets go
    in batches, each waited for, so the socket buffer never overflows.
    """
    import gevent

    from actors.gossip.messages import PUSH_PULL_TYPES, Alive, Gossip, encode_tags
    from runtime.gossip_crypto import GossipCrypto
    from runtime.messages import Envelope
    from runtime.transport import GossipTransport

    alive = Alive(name="node-3.global", addr="127.0.0.1:4648", incarnation=7,
                  meta=encode_tags((("dc", "dc1"), ("role", "nomad"))))
    out: dict[str, Any] = {}
    for kind in ("plain", "encrypted"):
        got = [0]

        def deliver(env: Envelope, got: list[int] = got) -> None:
            got[0] += 1
        crypto = (lambda: GossipCrypto([KEY])) if kind == "encrypted" else (lambda: None)
        a = GossipTransport("127.0.0.1:0", lambda e: None, stream_types=PUSH_PULL_TYPES, crypto=crypto())
        b = GossipTransport("127.0.0.1:0", deliver, stream_types=PUSH_PULL_TYPES, crypto=crypto())
        a.start()
        b.start()
        env = Envelope(src=a.address, dst_actor="gossip", payload=Gossip(src_name="node-1.global",
                                                                         gossip=(alive, alive)))
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            for start in range(0, packets, batch):
                for _ in range(batch):
                    a.send(b.address, env)
                deadline = time.monotonic() + 5.0
                while got[0] < start + batch and time.monotonic() < deadline:
                    gevent.sleep(0)
            c1, t1 = time.process_time(), time.perf_counter()
        finally:
            a.stop()
            b.stop()
        out[f"{kind}_cpu_us_per_packet"] = round((c1 - c0) / max(1, got[0]) * 1e6, 2)
        out[f"{kind}_packets_per_s"] = round(got[0] / (t1 - t0))
        out[f"{kind}_lost"] = packets - got[0]
    plain, enc = out["plain_cpu_us_per_packet"], out["encrypted_cpu_us_per_packet"]
    out["cpu_overhead_pct"] = round(100.0 * (enc - plain) / plain, 1)
    return out


def pool_trial(cls: type[OursMember], n: int, window_s: float, base: str) -> dict[str, Any]:
    """Form a pool of *n*, then CPU and packets over *window_s* of steady gossip."""
    ports = free_ports(2 * n)
    ms = [cls(f"node-{i}", ports[i], ports[n + i], os.path.join(base, f"{cls.kind}-{ports[0]}-{i}.log"))
          for i in range(n)]
    try:
        ms[0].start(None)
        wait_up(ms[:1])
        for m in ms[1:]:
            m.start(ms[0].addr)
        wait_up(ms)
        names = {m.name for m in ms}
        formed = Watch(ms, lambda v: {k for k, s in v.items() if s == "alive"} >= names, time.monotonic(),
                       FORM_DEADLINE_S).run()
        if formed is None:
            raise RuntimeError(f"{cls.kind}: pool of {n} did not form; log:\n{ms[-1].tail()}")
        time.sleep(1.0)  # let the join's dissemination burst pass: the window measures steady gossip
        sent0 = sum(_sent(m) for m in ms)
        cpu0, t0 = cpu_s(ms), time.monotonic()
        time.sleep(window_s)  # the measurement window itself: CPU is sampled at both ends
        cpu1, t1 = cpu_s(ms), time.monotonic()
        sent1 = sum(_sent(m) for m in ms)
        failed = sum((m.stats() or {}).get("transport", {}).get("udp_decrypt_failed", 0) for m in ms)
    finally:
        for m in ms:
            m.stop()
    packets = max(1, sent1 - sent0)
    return {"cpu_pct_per_member": 100.0 * (cpu1 - cpu0) / (t1 - t0) / n,
            "cpu_us_per_packet": (cpu1 - cpu0) / packets * 1e6, "packets_per_s": packets / (t1 - t0),
            "decrypt_failed": failed}


def _sent(m: OursMember) -> int:
    st = (m.stats() or {}).get("transport", {})
    return int(st.get("udp_sent", 0)) + int(st.get("tcp_sent", 0))


def run(quick: bool = False) -> dict[str, Any]:
    n, window_s, rounds = (5, 8.0, 1) if quick else (10, 20.0, 2)
    figures: dict[str, Any] = {"micro": micro(2_000 if quick else MICRO_ROUNDS)}
    print("per packet (in-process, AES-256-GCM via cryptography):", file=sys.stderr)
    for k, v in figures["micro"].items():
        print(f"  {k:28s} {v}", file=sys.stderr)
    figures["edge"] = edge(4_000 if quick else 20_000)
    e = figures["edge"]
    print("through the gossip edge (UDP loopback, both ends in one process):", file=sys.stderr)
    for kind in ("plain", "encrypted"):
        print(f"  {kind:10s} {e[f'{kind}_cpu_us_per_packet']:8.1f} CPU us/packet "
              f"{e[f'{kind}_packets_per_s']:8d} packets/s  lost {e[f'{kind}_lost']}", file=sys.stderr)
    print(f"  encryption CPU overhead per packet: {e['cpu_overhead_pct']}%", file=sys.stderr)
    base = tempfile.mkdtemp(prefix="gossip-crypto-bench-")
    trials: dict[str, list[dict[str, Any]]] = {"plain": [], "encrypted": []}
    try:
        for _ in range(rounds):
            trials["plain"].append(pool_trial(OursMember, n, window_s, base))
            trials["encrypted"].append(pool_trial(EncryptedMember, n, window_s, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    pool: dict[str, Any] = {"n": n, "window_s": window_s, "rounds": rounds}
    for kind, ts in trials.items():
        for key in ("cpu_pct_per_member", "cpu_us_per_packet", "packets_per_s"):
            pool[f"{kind}_{key}"] = round(statistics.median(t[key] for t in ts), 2)
        pool[f"{kind}_decrypt_failed"] = sum(t["decrypt_failed"] for t in ts)
    plain, enc = pool["plain_cpu_pct_per_member"], pool["encrypted_cpu_pct_per_member"]
    pool["cpu_overhead_pct"] = round(100.0 * (enc - plain) / plain, 1) if plain else None
    figures["pool"] = pool
    print(f"pool of {n} members, {window_s:g} s steady window, median of {rounds}:", file=sys.stderr)
    print(f"  {'':12s} {'CPU %/member':>13s} {'CPU us/packet':>14s} {'packets/s':>10s}", file=sys.stderr)
    for kind in ("plain", "encrypted"):
        print(f"  {kind:12s} {pool[f'{kind}_cpu_pct_per_member']:13.2f} "
              f"{pool[f'{kind}_cpu_us_per_packet']:14.1f} {pool[f'{kind}_packets_per_s']:10.1f}",
              file=sys.stderr)
    print(f"  encryption CPU overhead: {pool['cpu_overhead_pct']}%", file=sys.stderr)
    return figures


if __name__ == "__main__":
    import json

    from gevent import monkey

    monkey.patch_all()
    print(json.dumps(run(quick="--quick" in sys.argv), sort_keys=True))
