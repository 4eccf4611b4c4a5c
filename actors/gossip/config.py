"""Gossip configuration: memberlist's and Serf's tunables as named, validated fields.

Defaults are memberlist's ``DefaultLANConfig`` and Serf's ``DefaultConfig``;
:func:`wan_config`, :func:`local_config` and :func:`fast_config` (the "test" profile) derive from
it the way memberlist's ``DefaultWANConfig`` / ``DefaultLocalConfig`` do.
Every formula the protocol uses (retransmit limit, suspicion timeouts,
push-pull scaling) lives here too, next to the fields it reads, together
with the bounds the simulator tests hold the protocol to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

# memberlist pushPullScaleThreshold: push-pull intervals stretch above this many nodes.
PUSH_PULL_SCALE_THRESHOLD = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipConfig:
    """One pool's timings and limits (units last; seconds unless named otherwise)."""

    profile: str = "lan"  # which preset this came from, for logs and /v1/agent/self

    # ------------------------------------------------ SWIM failure detection (memberlist)
    probe_interval_s: float = 1.0  # LAN: one probe per second; failures surface within a few seconds
    probe_timeout_s: float = 0.5  # LAN: the 99th-percentile RTT, with room; then indirect probes start
    indirect_checks: int = 3  # LAN: members asked to probe indirectly; any one ack saves the target
    awareness_max_multiplier: int = 8  # Lifeguard: a struggling member stretches its probe interval up to 8x
    suspicion_mult: int = 4  # suspicion timeout = suspicion_mult * max(1, log10(N)) * probe_interval
    suspicion_max_timeout_mult: int = 6  # a lone suspicion waits up to 6x that (10k nodes: 120 s)

    # ------------------------------------------------ dissemination
    retransmit_mult: int = 4  # each broadcast is sent retransmit_mult * ceil(log10(N+1)) times
    gossip_interval_s: float = 0.2  # LAN: gossip pending broadcasts 5 times a second
    gossip_nodes: int = 3  # LAN: to 3 random members each time
    gossip_to_the_dead_s: float = 30.0  # keep gossiping to a dead member this long so it can refute
    push_pull_interval_s: float = 30.0  # full state sync with one random member (scaled above 32 members)
    stream_timeout_s: float = 10.0  # memberlist TCPTimeout: a push-pull waits this long for its answer
    # A join gives up on an address whose push-pull has not been answered by
    # then.  memberlist dials with TCPTimeout and learns of a refused
    # connection at once; our transport sends without telling the sender that
    # a connection was refused, so the exchange itself is bounded instead.  A
    # live peer answers in one round trip (milliseconds on a LAN, well under a
    # second between regions), so 5 s is ample and a dead -join address fails
    # start-up (and `server join`) in 5 s rather than TCPTimeout.
    join_timeout_s: float = 5.0
    max_packet_bytes: int = 1400  # memberlist UDPBufferSize: fits a 1500-byte MTU unfragmented
    # Bytes the transport adds to every packet when gossip is encrypted
    # (server.encrypt: runtime.gossip_crypto.OVERHEAD, 29); memberlist
    # subtracts its encryptOverhead from the UDP budget the same way, so an
    # encrypted packet still fits max_packet_bytes.  0: no encryption.
    encrypt_overhead_bytes: int = 0
    # serf QueryTimeoutMult: a keyring operation (serf's internal query)
    # waits gossip_interval * 16 * ceil(log10(N+1)) for every member's answer.
    query_timeout_mult: int = 16
    max_queue_depth: int = 4096  # serf MaxQueueDepth: broadcasts beyond this are pruned, oldest first

    # ------------------------------------------------ Serf
    broadcast_timeout_s: float = 5.0  # leave / force-leave wait this long for their broadcast to go out
    leave_propagate_delay_s: float = 1.0  # after leaving, keep answering probes while the news spreads
    reap_interval_s: float = 15.0  # how often failed / left members and old intents are reaped
    reconnect_interval_s: float = 30.0  # how often a failed member may be re-contacted (partition healing)
    reconnect_timeout_s: float = 24 * 3600.0  # a failed member is reaped after this long (serf: 24 h)
    tombstone_timeout_s: float = 24 * 3600.0  # a left member is kept as a tombstone this long (serf: 24 h)
    recent_intent_timeout_s: float = 300.0  # intents about unknown members are buffered this long
    # How often a changed Lamport clock is written to the serf snapshot (a
    # server with one; serf clockUpdateInterval: 500 ms).
    snapshot_clock_interval_s: float = 0.5

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Reject values and combinations the protocol cannot work with."""
        positive = ("probe_interval_s", "probe_timeout_s", "gossip_interval_s", "stream_timeout_s",
                    "join_timeout_s",
                    "broadcast_timeout_s", "reap_interval_s", "reconnect_interval_s",
                    "reconnect_timeout_s", "tombstone_timeout_s", "recent_intent_timeout_s",
                    "snapshot_clock_interval_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"gossip {name} must be > 0, got {getattr(self, name)}")
        for name in ("gossip_to_the_dead_s", "push_pull_interval_s", "leave_propagate_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"gossip {name} must be >= 0 (0 disables), got {getattr(self, name)}")
        at_least_one = ("indirect_checks", "awareness_max_multiplier", "retransmit_mult",
                        "suspicion_max_timeout_mult", "gossip_nodes", "max_queue_depth")
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"gossip {name} must be >= 1, got {getattr(self, name)}")
        if self.probe_timeout_s >= self.probe_interval_s:
            raise ValueError(f"gossip probe_timeout_s ({self.probe_timeout_s}) must be below "
                             f"probe_interval_s ({self.probe_interval_s}): indirect probes need the rest")
        if self.join_timeout_s > self.stream_timeout_s:
            raise ValueError(f"gossip join_timeout_s ({self.join_timeout_s}) must not exceed "
                             f"stream_timeout_s ({self.stream_timeout_s}): a join is one push-pull")
        if self.suspicion_mult < 2:
            raise ValueError(f"gossip suspicion_mult must be >= 2 (Lifeguard waits for "
                             f"suspicion_mult - 2 confirmations), got {self.suspicion_mult}")
        if self.max_packet_bytes < 512:
            raise ValueError(f"gossip max_packet_bytes must be >= 512, got {self.max_packet_bytes}")
        if not 0 <= self.encrypt_overhead_bytes <= self.max_packet_bytes // 4:
            raise ValueError(f"gossip encrypt_overhead_bytes must be 0..{self.max_packet_bytes // 4}, "
                             f"got {self.encrypt_overhead_bytes}")
        if self.query_timeout_mult < 1:
            raise ValueError(f"gossip query_timeout_mult must be >= 1, got {self.query_timeout_mult}")
        if self.reconnect_timeout_s < self.gossip_to_the_dead_s:
            raise ValueError("gossip reconnect_timeout_s must not be below gossip_to_the_dead_s: "
                             "a failed member would be reaped while it may still refute")
        if self.tombstone_timeout_s < self.gossip_to_the_dead_s:
            raise ValueError("gossip tombstone_timeout_s must not be below gossip_to_the_dead_s")

    # ------------------------------------------------------------ formulas
    @property
    def packet_budget_bytes(self) -> int:
        """What one packet's encoded Envelope may take: max_packet_bytes less the encryption overhead."""
        return self.max_packet_bytes - self.encrypt_overhead_bytes

    def query_timeout_s(self, n: int) -> float:
        """serf ``DefaultQueryTimeout``: gossip_interval * query_timeout_mult * ceil(log10(n + 1))."""
        return self.gossip_interval_s * self.query_timeout_mult * max(1, math.ceil(math.log10(max(0, n) + 1)))

    def retransmit_limit(self, n: int) -> int:
        """How many times a broadcast is sent: retransmit_mult * ceil(log10(n + 1))."""
        return self.retransmit_mult * math.ceil(math.log10(max(0, n) + 1))

    def suspicion_timeout_s(self, n: int) -> float:
        """The suspicion timeout once enough members confirm (memberlist ``suspicionTimeout``)."""
        node_scale = max(1.0, math.log10(max(1.0, float(n))))
        return self.suspicion_mult * math.floor(node_scale * 1000) / 1000 * self.probe_interval_s

    def suspicion_max_timeout_s(self, n: int) -> float:
        """What a suspicion nobody confirms waits: suspicion_max_timeout_mult times the minimum."""
        return self.suspicion_max_timeout_mult * self.suspicion_timeout_s(n)

    def suspicion_confirmations(self, n: int) -> int:
        """Lifeguard's k: confirmations that drive the timeout to its minimum (0 in tiny pools)."""
        k = self.suspicion_mult - 2
        return 0 if n - 2 < k else k

    def push_pull_interval_for(self, n: int) -> float:
        """memberlist ``pushPullScale``: one more interval per doubling above 32 members."""
        if n <= PUSH_PULL_SCALE_THRESHOLD:
            return self.push_pull_interval_s
        mult = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
        return mult * self.push_pull_interval_s

    # ------------------------------------------------------------ bounds (what the simulator checks)
    def dissemination_bound_s(self, n: int) -> float:
        """O(log N): a broadcast leaves every queue after retransmit_limit(n) sends.

        Each member sends a queued broadcast to ``gossip_nodes`` members per
        gossip interval (more when probes carry it), so once a member learns
        it, it is gone from that member's queue within
        ``retransmit_limit(n) / gossip_nodes`` intervals; infection-style
        spreading reaches everyone in about ``log(n) / log(gossip_nodes + 1)``
        hops.  ``retransmit_limit(n)`` gossip intervals covers both.
        """
        return self.retransmit_limit(n) * self.gossip_interval_s

    def failure_detection_bound_s(self, n: int) -> float:
        """A crashed member is dead in every view within this, on a healthy network.

        Some member probes it within a couple of probe intervals (each of the
        n - 1 others probes one member per interval in randomised round-robin),
        the scaled probe interval finishes the probe, the suspicion runs at
        most its maximum timeout, and the dead broadcast disseminates.
        """
        return (3 * self.probe_interval_s + self.suspicion_max_timeout_s(n)
                + self.dissemination_bound_s(n))

    def convergence_bound_s(self, n: int) -> float:
        """Views converge after faults heal within this: a reconnect, push-pulls and gossip."""
        return (self.reconnect_interval_s + 2 * self.push_pull_interval_for(n) + self.gossip_to_the_dead_s
                + self.failure_detection_bound_s(n))

    def with_(self, **changes: object) -> GossipConfig:
        """A copy with *changes* applied (and validated)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def lan_config() -> GossipConfig:
    """memberlist DefaultLANConfig with Serf's DefaultConfig: the LAN pool of a region."""
    return GossipConfig()


def wan_config() -> GossipConfig:
    """memberlist DefaultWANConfig: servers of all regions (slower probes, longer suspicion)."""
    return GossipConfig(
        profile="wan",
        stream_timeout_s=30.0,  # WAN round trips are long and lossy
        suspicion_mult=6,  # give a member across the WAN more time to refute
        push_pull_interval_s=60.0,
        probe_timeout_s=3.0,  # WAN RTTs reach hundreds of milliseconds
        probe_interval_s=5.0,
        gossip_nodes=4,  # gossip less often, to one more member
        gossip_interval_s=0.5,
        gossip_to_the_dead_s=60.0,
    )


def local_config() -> GossipConfig:
    """memberlist DefaultLocalConfig: loopback, where packets are fast and rarely lost."""
    return GossipConfig(
        profile="local",
        stream_timeout_s=1.0,
        join_timeout_s=1.0,  # loopback: an answer takes microseconds
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval_s=15.0,
        probe_timeout_s=0.2,
        probe_interval_s=1.0,
        gossip_interval_s=0.1,
        gossip_to_the_dead_s=15.0,
    )


def fast_config() -> GossipConfig:
    """The LAN protocol with every timing scaled down 5-50x, for tests and simulations.

    Ratios that matter are kept: probe timeout half the probe interval,
    suspicion multipliers as on a LAN, gossip five times per probe interval.
    Serf's hour- and day-long timeouts shrink to seconds so reaping and
    tombstones can be observed in a short run.
    """
    return GossipConfig(
        profile="test",
        probe_interval_s=0.2,
        probe_timeout_s=0.1,
        gossip_interval_s=0.04,
        gossip_to_the_dead_s=3.0,
        push_pull_interval_s=3.0,
        stream_timeout_s=1.0,
        join_timeout_s=1.0,
        broadcast_timeout_s=1.0,
        leave_propagate_delay_s=0.2,
        reap_interval_s=0.5,
        reconnect_interval_s=1.0,
        reconnect_timeout_s=20.0,
        tombstone_timeout_s=20.0,
        recent_intent_timeout_s=10.0,
    )


PROFILES = {"lan": lan_config, "wan": wan_config, "local": local_config, "test": fast_config}


def profile(name: str) -> GossipConfig:
    """The preset called *name* (lan, wan, local, test)."""
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(f"unknown gossip profile {name!r}; expected one of {sorted(PROFILES)}") from None
