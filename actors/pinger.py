"""Pinger: a small liveness prober used by the demo simulation and benchmarks.

Every ``interval_s`` it pings one peer chosen by the node's RNG and counts
the pongs that come back within ``timeout_s``.  It exercises everything a
protocol actor needs -- timers, the RNG, remote sends -- with no protocol of
its own, so the runtimes can be checked and measured before Raft and SWIM.
"""

from __future__ import annotations

from typing import Any

from runtime.actor import NodeActor
from runtime.env import Env
from runtime.messages import Ping, Pong


class Pinger(NodeActor):
    def __init__(self, env: Env, name: str, peers: tuple[str, ...], *,
                 interval_s: float = 0.5, timeout_s: float = 0.25) -> None:
        super().__init__(env, name)
        self.peers = tuple(p for p in peers if p != env.node)
        self.interval_s = interval_s  # how often to probe; SWIM's default probe interval is 1 s
        self.timeout_s = timeout_s  # a pong later than this counts as a miss
        self.seq = 0
        self.outstanding: dict[int, float] = {}
        self.acked = 0
        self.missed = 0

    def on_start(self) -> None:
        # Desynchronise nodes: the first probe lands anywhere in one interval.
        self.set_timer("probe", self.env.rng.uniform(0, self.interval_s))

    def on_timer(self, name: str) -> None:
        if name != "probe":
            return
        now = self.env.now()
        for seq in sorted(self.outstanding):
            if now - self.outstanding[seq] > self.timeout_s:
                del self.outstanding[seq]
                self.missed += 1
        if self.peers:
            self.seq += 1
            peer = self.peers[self.env.rng.randrange(len(self.peers))]
            self.outstanding[self.seq] = now
            self.send(peer, self.name, Ping(seq=self.seq, reply_to_node=self.env.node,
                                            reply_to_actor=self.name))
        self.set_timer("probe", self.interval_s)

    def receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            self.send(message.reply_to_node, message.reply_to_actor,
                      Pong(seq=message.seq, src=self.env.node))
        elif isinstance(message, Pong):
            if self.outstanding.pop(message.seq, None) is not None:
                self.acked += 1
        elif message == "stats":
            return {"acked": self.acked, "missed": self.missed, "sent": self.seq}
        return None
