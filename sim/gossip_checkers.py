"""Cluster-wide gossip checkers: safety after every step, convergence at the end.

Safety (:class:`GossipChecker`, raised as :class:`GossipSafetyViolation`):

* every live core passes its own ``check_invariants(full=True)``;
* a member's own incarnation and Lamport clock never go back within one
  process lifetime (a restart starts a new lifetime);
* no member is ``left`` in anyone's view unless it left gracefully or was
  force-left (left is a promise the member made, never a guess).

Liveness (:func:`disagreements`): every live member sees every other live
member ``alive``; a stopped member (crashed, or left and stopped) is not
``alive`` anywhere; a member that left while the network was healthy is
``left`` or reaped (one that left during a partition may have told nobody).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.gossip.serf import S_ALIVE, S_FAILED, S_LEFT

if TYPE_CHECKING:
    from sim.gossip_cluster import GossipCluster


class GossipSafetyViolation(AssertionError):
    """A cluster-wide gossip guarantee was broken."""


@dataclass
class GossipChecker:
    incarnations: dict[tuple[str, int], int] = field(default_factory=dict)  # (addr, lifetime) -> inc
    clocks: dict[tuple[str, int], int] = field(default_factory=dict)
    checks: int = 0

    def check(self, cluster: GossipCluster, full: bool = True) -> None:
        self.checks += 1
        cores = cluster.live_cores()
        allowed_left = cluster.left_names | cluster.force_left_names
        for addr, core in cores.items():
            core.check_invariants(full=full)
            life = (addr, cluster.sched.nodes[addr].incarnation)
            self._monotonic(self.incarnations, life, core.swim.incarnation, "incarnation")
            self._monotonic(self.clocks, life, core.clock.time(), "Lamport clock")
            for name in core.left:
                if name not in allowed_left:
                    raise GossipSafetyViolation(
                        f"{core.name} sees {name} left, but it never left nor was force-left")

    @staticmethod
    def _monotonic(seen: dict[tuple[str, int], int], key: tuple[str, int], value: int, what: str) -> None:
        before = seen.get(key, 0)
        if value < before:
            raise GossipSafetyViolation(f"{key[0]}: {what} went back from {before} to {value}")
        seen[key] = value


def disagreements(cluster: GossipCluster, limit: int = 10) -> list[str]:
    """Why the views have not converged yet (empty when they have)."""
    out: list[str] = []
    running = cluster.running_names()
    stopped = cluster.stopped_names()
    for core in cluster.live_cores().values():
        if core.state != S_ALIVE:
            continue
        view = core.statuses()
        for name in sorted(running):
            if view.get(name) != S_ALIVE:
                out.append(f"{core.name} sees {name} {view.get(name, 'absent')}, want alive")
        for name in sorted(stopped):
            status = view.get(name)
            # A leave on a faulty network may reach nobody: then "failed" is all anyone can know.
            if status == S_ALIVE or (name in cluster.left_cleanly and status not in (None, S_LEFT)):
                want = "left or reaped" if name in cluster.left_cleanly else "failed, left or reaped"
                out.append(f"{core.name} sees stopped {name} {status}, want {want}")
        if len(out) >= limit:
            break
    return out[:limit]


def sees_all(cluster: GossipCluster, member: str, status: str = S_ALIVE) -> bool:
    """Every live, running member other than *member* has it in *status*."""
    for core in cluster.live_cores().values():
        if core.name == member or core.state != S_ALIVE:
            continue
        if core.statuses().get(member) != status:
            return False
    return True


def sees_gone(cluster: GossipCluster, member: str, statuses: tuple[str | None, ...] = (S_FAILED, S_LEFT, None)
              ) -> bool:
    """Every live, running member has *member* in one of *statuses* (None: reaped / unknown)."""
    for core in cluster.live_cores().values():
        if core.name == member or core.state != S_ALIVE:
            continue
        if core.statuses().get(member) not in statuses:
            return False
    return True


def summary(cluster: GossipCluster) -> dict[str, Any]:
    """Counters summed over live members (for reports)."""
    total: dict[str, Any] = {}
    for core in cluster.live_cores().values():
        for k, v in core.swim.stats.items():
            total[k] = total.get(k, 0) + v
    total["network"] = dict(cluster.sched.network.stats)
    return total
