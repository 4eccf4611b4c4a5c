"""`nomad-bench runtime`: actor tells/s (production vs bare pykka), simulator deliveries/s, TCP msgs/s."""

from __future__ import annotations

import time
from typing import Any

import pykka

from runtime.actor import NodeActor
from runtime.messages import Ping, Pong


class _Bouncer(NodeActor):
    """Ping-pong partner: answers each Ping with a Pong until the count runs out."""

    def __init__(self, env: Any, name: str, peer_node: str, peer: str, rounds: int, done: Any) -> None:
        super().__init__(env, name)
        self.peer_node, self.peer, self.left, self.done = peer_node, peer, rounds, done

    def receive(self, message: Any) -> Any:
        if isinstance(message, (Ping, Pong)):
            self.left -= 1
            if self.left <= 0:
                if self.done is not None:
                    self.done.set(True)
                return None
            self.send(self.peer_node, self.peer,
                      Ping(seq=message.seq + 1, reply_to_node=self.env.node, reply_to_actor=self.name))
        return None


def bench_prod_tells(rounds: int = 200_000) -> float:
    from runtime.prod import ProdNode

    node = ProdNode("bench", seed=1)
    done = pykka.ThreadingFuture()
    node.spawn(_Bouncer, "b", "bench", "a", rounds, None)
    a = node.spawn(_Bouncer, "a", "bench", "b", rounds, done)
    t0 = time.perf_counter()
    a.tell(Ping(seq=0, reply_to_node="bench", reply_to_actor="b"))
    done.get(timeout=120)
    dt = time.perf_counter() - t0
    node.stop_all()
    return (2 * rounds - 1) / dt


class _BarePing(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, rounds: int, done: Any) -> None:
        super().__init__()
        self.peer: Any = None
        self.left, self.done = rounds, done

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            self.peer = message[1]
            return None
        self.left -= 1
        if self.left <= 0:
            if self.done is not None:
                self.done.set(True)
            return None
        self.peer.tell(message + 1)
        return None


def bench_bare_pykka(rounds: int = 200_000) -> float:
    done = pykka.ThreadingFuture()
    a = _BarePing.start(rounds, done)
    b = _BarePing.start(rounds, None)
    a.tell(("peer", b))
    b.tell(("peer", a))
    t0 = time.perf_counter()
    a.tell(0)
    done.get(timeout=120)
    dt = time.perf_counter() - t0
    a.stop()
    b.stop()
    return (2 * rounds - 1) / dt


def bench_sim(rounds: int = 200_000, *, remote: bool) -> float:
    from sim.runtime import Scheduler

    sched = Scheduler(1, trace=False)
    n1 = sched.add_node("n1")
    n2 = sched.add_node("n2") if remote else n1
    n2.spawn(_Bouncer, "b", "n1", "a", rounds, None)
    a = n1.spawn(_Bouncer, "a", n2.name, "b", rounds, None)
    sched.run_until(lambda: False, 0.0)  # run the on_start turns
    t0 = time.perf_counter()
    before = sched.messages
    a.tell(Ping(seq=0, reply_to_node=n2.name, reply_to_actor="b"))
    while sched.step():
        pass
    dt = time.perf_counter() - t0
    n = sched.messages - before
    sched.close()
    return n / dt


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 20_000 if quick else 200_000
    figures: dict[str, Any] = {}
    print("actor-to-actor ping-pong, one process, gevent:")
    figures["tells_per_s"] = round(bench_prod_tells(rounds))
    figures["bare_pykka_tells_per_s"] = round(bench_bare_pykka(rounds))
    ratio = figures["bare_pykka_tells_per_s"] / figures["tells_per_s"]
    figures["bare_over_ours_ratio"] = round(ratio, 2)
    print(f"  ours (NodeActor, env.send):  {figures['tells_per_s']:>10,} tells/s")
    print(f"  bare pykka ThreadingActor:   {figures['bare_pykka_tells_per_s']:>10,} tells/s"
          f"  (bare/ours = {ratio:.2f}; goal <= 2)")
    print("simulator:")
    figures["sim_local_deliveries_per_s"] = round(bench_sim(rounds, remote=False))
    figures["sim_deliveries_per_s"] = round(bench_sim(rounds // 2, remote=True))
    print(f"  local deliveries:            {figures['sim_local_deliveries_per_s']:>10,} /s")
    print(f"  network deliveries (codec):  {figures['sim_deliveries_per_s']:>10,} /s  (goal >= 100,000)")
    try:
        from benchmarks.tcp_bench import run_tcp
    except ImportError:
        print("tcp: transport not available")
    else:
        figures.update(run_tcp(quick=quick))
    return figures
