"""The foundation's demo run: pingers on N nodes, loss, then a partition.

``bin/nomad-sim --seed N`` (with no scenario) runs this; it is also what the
determinism test hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.pinger import Pinger
from sim.runtime import Scheduler


@dataclass(frozen=True)
class DemoResult:
    seed: int
    trace_hash: str
    virtual_s: float
    messages: int
    network: dict
    pings: dict


def run_demo(seed: int, *, nodes: int = 5, duration_s: float = 60.0, loss: float = 0.05,
             trace: bool = True) -> DemoResult:
    sched = Scheduler(seed, trace=trace)
    names = tuple(f"n{i}" for i in range(1, nodes + 1))
    refs = {}
    for name in names:
        node = sched.add_node(name)
        refs[name] = node.spawn(Pinger, "pinger", names, interval_s=0.2, timeout_s=0.1)
    sched.network.configure(loss=loss, duplicate=0.01, reorder=0.05)
    third = duration_s / 3
    sched.run_for(third)
    half = len(names) // 2
    sched.network.partition(list(names[:half]), list(names[half:]))
    sched.record("fault", "partition", names[:half], names[half:])
    sched.run_for(third)
    sched.network.heal()
    sched.record("fault", "heal")
    sched.run_for(duration_s - 2 * third)
    pings = {name: refs[name].ask("stats", timeout=1.0) for name in names}
    result = DemoResult(seed=seed, trace_hash=sched.trace_hash(), virtual_s=sched.now,
                        messages=sched.messages, network=dict(sched.network.stats), pings=pings)
    sched.close()
    return result
