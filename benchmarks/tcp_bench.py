"""Two processes over loopback TCP: msgpack messages/s with 1 and 64 pings in flight."""

from __future__ import annotations

import tempfile
from typing import Any

from benchmarks.raft_bench import measure_raw_rate


def run_tcp(quick: bool = False) -> dict[str, Any]:
    seconds = 1.0 if quick else 3.0
    figures: dict[str, Any] = {}
    print("two processes over loopback TCP (TcpTransport, msgpack frames):")
    with tempfile.TemporaryDirectory(prefix="nomad-tcp-bench-") as base:
        for inflight in (1, 64):
            r = measure_raw_rate(base, seconds, inflight=inflight)
            msgs = r.get("messages_per_s") or r.get("msgs_per_s") or 0
            figures[f"tcp_msgs_per_s_inflight_{inflight}"] = round(msgs)
            print(f"  {inflight:>2} in flight: {round(msgs):>10,} messages/s  ({r})")
    figures["tcp_msgs_per_s"] = figures["tcp_msgs_per_s_inflight_64"]
    return figures
