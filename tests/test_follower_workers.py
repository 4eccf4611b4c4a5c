"""Scheduling workers on follower servers (actors.scheduler.worker), in the simulator.

The leader's broker hands batches to its own few workers and to the followers' (Nomad's
Eval.Dequeue, Plan.Submit, Eval.Ack/Nack); a follower plans on its own applied state once it
reached the batch's index, and its plan entry commits through the leader's state machine.
"""

from __future__ import annotations

from typing import Any

from actors.http_agent_schedulers import workers_info
from actors.scheduler.broker import BROKER, BrokerConfig
from actors.scheduler.messages import PlanBatch
from actors.scheduler.worker import follower_plan, leader_workers
from runtime.messages import PeerLost
from sim.job_cluster import JobCluster, sim_job
from tests.test_jobs_sim import boot, settle


def broker(c: JobCluster, server: str) -> Any:
    return c.actor(server, BROKER)


def leader_of(c: JobCluster) -> str:
    leader = c.leader()
    assert leader is not None
    return leader


def run_until_remote(c: JobCluster, job_prefix: str, count: int = 2, tries: int = 12) -> tuple[str, str]:
    """Register jobs one at a time until the leader hands one's batch to a follower; returns
    (that follower, the job ID), with the batch still outstanding there."""
    leader = leader_of(c)
    for i in range(tries):
        job_id = f"{job_prefix}-{i}"
        ev_id = c.register(sim_job(job_id=job_id, count=count))["EvalID"]
        for _ in range(2000):
            remote = broker(c, leader).receive("status")["remote"]
            if remote:
                return remote[0], job_id
            if c.checker.replica.tables["evals"][ev_id]["Status"] != "pending":
                break
            c.run(0.001)
        assert settle(c) == []
    raise AssertionError("no batch went to a follower")


def placed(c: JobCluster, job_id: str) -> list[dict[str, Any]]:
    return [a for a in c.allocs(job_id) if a["DesiredStatus"] == "run"]


def test_leader_keeps_a_quarter_of_its_workers_as_nomads_pausable_workers_leave_it() -> None:
    assert [leader_workers(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 1, 2, 4]


def test_a_follower_worker_plans_and_its_plan_entry_commits() -> None:
    c = boot(seed=11)
    for i in range(8):
        c.register(sim_job(job_id=f"web-{i}", count=2))
        c.run(0.5)
    assert settle(c) == []
    leader = leader_of(c)
    followers = [s for s in c.servers if s != leader]
    assert sum(broker(c, s).stats["follower_batches"] for s in followers) > 0
    assert broker(c, leader).stats["remote_batches"] > 0
    assert broker(c, leader).stats["retries"] == 0
    for i in range(8):
        assert len(placed(c, f"web-{i}")) == 2
    assert sum(d.starts for d in c.drivers.values()) == 16


def test_the_leader_reports_three_quarters_of_its_workers_paused_and_a_follower_none() -> None:
    c = boot(seed=12, broker=BrokerConfig(num_workers=4))
    leader = leader_of(c)
    status = broker(c, leader).receive("status")
    assert status["paused_workers"] == 3
    info = workers_info("s", status)["Schedulers"]
    assert [w["Status"] for w in info] == ["Paused", "Paused", "Paused", "Started"]
    assert [w["WorkloadStatus"] for w in info][:3] == ["Paused"] * 3
    follower = next(s for s in c.servers if s != leader)
    fstatus = broker(c, follower).receive("status")
    assert fstatus["paused_workers"] == 0
    assert {w["Status"] for w in workers_info("s", fstatus)["Schedulers"]} == {"Started"}
    # Stepping down resumes them: the old leader, restarted as a follower, pauses none.
    c.crash(leader)
    c.run(30.0)
    c.restart(leader)
    c.run(30.0)
    assert leader_of(c) != leader
    assert broker(c, leader).receive("status")["paused_workers"] == 0
    assert broker(c, leader_of(c)).receive("status")["paused_workers"] == 3


def steer_next_batch_to(lb: Any, victim: str) -> None:
    """Put *victim*'s offered slots first in the leader's line: its next batch goes there."""
    lb._idle = {k: v for k, v in sorted(lb._idle.items(), key=lambda kv: kv[0][0] != victim)}


def test_a_batch_whose_follower_crashed_goes_back_when_its_connection_is_refused_and_is_placed_once() -> None:
    # One slot a server: the victim's is the one its batch was lost in.
    c = boot(seed=13, broker=BrokerConfig(num_workers=1))
    leader = leader_of(c)
    lb = broker(c, leader)
    victim = next(k[0] for k in lb._idle if k[0] != "")
    c.crash(victim)  # its offer is still good for ready_ttl_s
    steer_next_batch_to(lb, victim)
    retries = lb.stats["retries"]
    c.register(sim_job(job_id="crash", count=2))
    c.run(1.0)
    assert lb.stats["retries"] == retries + 1  # the runtime's PeerLost (a refused connect): at once
    assert len(placed(c, "crash")) == 2
    c.restart(victim)
    assert settle(c) == []
    ids = {a["ID"] for a in placed(c, "crash")}
    assert len(ids) == 2
    assert sum(1 for d in c.drivers.values() for p in d.running() if p.alloc_id in ids) == 2
    # Restarted, its workers (counting batches from 0 again) are given work again.
    for i in range(6):
        c.register(sim_job(job_id=f"after-{i}", count=1))
        c.run(0.5)
    assert settle(c) == []
    assert broker(c, victim).stats["follower_batches"] > 0


def test_a_batch_whose_follower_went_silent_is_redelivered_after_the_nack_timeout_and_placed_once() -> None:
    c = boot(seed=13, broker=BrokerConfig(nack_timeout_s=20.0))
    leader = leader_of(c)
    lb = broker(c, leader)
    victim = next(k[0] for k in lb._idle if k[0] != "")
    c.sched.network.partition([victim], [s for s in c.servers if s != victim])  # no PeerLost for this
    steer_next_batch_to(lb, victim)
    retries, t0 = lb.stats["retries"], c.sched.now
    c.register(sim_job(job_id="silent", count=2))
    c.run(1.0)
    assert lb.receive("status")["remote"] == (victim,) and placed(c, "silent") == []
    while not placed(c, "silent"):
        c.run(0.5)
    assert c.sched.now - t0 >= 20.0 and lb.stats["retries"] == retries + 1
    c.heal()
    assert settle(c) == []
    assert len(placed(c, "silent")) == 2


def test_a_batch_whose_followers_connection_is_lost_goes_back_at_once() -> None:
    c = boot(seed=14)
    leader = leader_of(c)
    victim, job_id = run_until_remote(c, "lost")
    retries = broker(c, leader).stats["retries"]
    c.sched.nodes[leader].actors[BROKER].tell(PeerLost(node=victim, reason="connection reset"))
    c.run(0.01)
    assert broker(c, leader).stats["retries"] == retries + 1
    assert settle(c) == []
    assert len(placed(c, job_id)) == 2  # the follower's plan (if it still committed) and the retry: once


def test_the_delivery_limit_still_fails_an_evaluation_nacked_by_followers() -> None:
    c = boot(seed=15, broker=BrokerConfig(delivery_limit=1))
    leader = leader_of(c)
    victim, job_id = run_until_remote(c, "limit")
    ev_id = next(e for e, w in broker(c, leader)._running.items() if w.job_id == job_id)
    c.sched.nodes[leader].actors[BROKER].tell(PeerLost(node=victim, reason="connection reset"))
    c.run(1.0)
    ev = c.checker.replica.tables["evals"][ev_id]
    if ev["Status"] == "complete":
        return  # the follower's plan committed before the nack: nothing to fail (see the stats below)
    assert ev["Status"] == "failed"
    assert "delivery limit" in ev["StatusDescription"]
    assert broker(c, leader).stats["failed"] == 1


def test_a_follower_plans_only_once_it_applied_the_batch_index_else_it_nacks() -> None:
    class State:
        applied_index = 10

    assert follower_plan(State(), min_index=11, eval_ids=("e",), now=0.0, max_place=1, max_stop=1) is None
    c = boot(seed=16, broker=BrokerConfig(min_index_wait_s=2.0))
    leader = leader_of(c)
    follower = next(s for s in c.servers if s != leader)
    fb = broker(c, follower)
    applied = c.actor(follower, "raft").state.applied_index
    ev_id = c.register(sim_job(job_id="far", count=1))["EvalID"]
    # A batch that needs an index far beyond what exists: the follower waits min_index_wait_s, then nacks.
    lb = broker(c, leader)
    lb._next_batch += 1  # the batch ID this test's batch takes, never the leader's
    c.sched.nodes[follower].actors[BROKER].tell(PlanBatch(
        term=fb._fterm, slot=0, batch=lb._next_batch, eval_ids=(ev_id,), min_index=applied + 1_000,
        max_place=10, max_stop=10))
    c.run(1.0)
    assert fb._fslots[0].busy  # still waiting for the index
    c.run(2.0)
    assert not fb._fslots[0].busy and fb.stats["follower_nacks"] == 1
    # Behind, it offers no worker until it caught up or catch_up_wait_s passed (Nomad's
    # slowServerSyncLimit): each batch given it meanwhile would be nacked, spending a delivery.
    assert fb._catching_up
    c.run(BrokerConfig().ready_ttl_s + 1.0)

    def offered() -> list[tuple[str, int]]:
        return [k for k, until in lb._idle.items() if k[0] == follower and until >= c.sched.now]

    assert offered() == []
    assert settle(c) == []
    assert len(placed(c, "far")) == 1
    c.run(BrokerConfig().catch_up_wait_s)
    assert not fb._catching_up and offered()


def test_a_follower_given_a_batch_ahead_of_its_state_waits_for_that_index_then_plans() -> None:
    from actors.state.store import command

    c = boot(seed=17)
    leader = leader_of(c)
    c.propose(command("scheduler_set_config", config={"PauseEvalBroker": True}))  # the leader plans nothing
    c.run(1.0)
    follower = next(s for s in c.servers if s != leader)
    fb = broker(c, follower)
    ev_id = c.register(sim_job(job_id="ahead", count=1))["EvalID"]
    c.run(1.0)
    applied = c.actor(follower, "raft").state.applied_index
    lb = broker(c, leader)
    lb._next_batch += 1
    c.sched.nodes[follower].actors[BROKER].tell(PlanBatch(
        term=fb._fterm, slot=0, batch=lb._next_batch, eval_ids=(ev_id,), min_index=applied + 1,
        max_place=10, max_stop=10))
    c.run(1.0)
    assert fb._fslots[0].busy  # nothing new applied yet: it waits
    c.register(sim_job(job_id="next", count=1))  # the next entry moves the evals table past the index
    c.run(0.5)
    assert not fb._fslots[0].busy and fb.stats["follower_nacks"] == 0
    # Its plan went to the leader's broker, which gave that batch to nobody and so dropped it.
    assert c.checker.replica.tables["evals"][ev_id]["Status"] == "pending" and placed(c, "ahead") == []


def test_a_followers_batch_waits_for_the_index_the_jobs_last_plan_was_applied_at() -> None:
    """Nomad's WaitIndex: a follower plans a job's next evaluation only on a state that holds the job's
    previous plan, else it would not see what that plan placed (a rolling update with max_parallel 1
    then had two replacements in flight)."""
    c = boot(seed=18)
    leader = leader_of(c)
    lb = broker(c, leader)
    sent: list[tuple[tuple[str, ...], int]] = []
    send_remote = lb._send_remote
    lb._send_remote = lambda key, batch, ids, min_index: (sent.append((ids, min_index)),
                                                          send_remote(key, batch, ids, min_index))
    first = c.register(sim_job(job_id="floor", count=2))["EvalID"]
    assert settle(c) == []
    done_at = c.checker.replica.tables["evals"][first]["ModifyIndex"]  # its plan entry's index
    # The job's wait index is that entry's, not only its evaluations' (an evaluation of the job made
    # before that entry, as a node update's can be, would otherwise be planned on a state without it).
    assert lb._job_floor["floor"] >= done_at > c.checker.replica.tables["evals"][first]["CreateIndex"]
    second = c.register(sim_job(job_id="floor", count=3))["EvalID"]
    assert settle(c) == []
    assert [m for ids, m in sent if second in ids] and all(m >= done_at for ids, m in sent if second in ids)
    assert len(placed(c, "floor")) == 3


def test_an_idle_leader_tells_the_follower_planning_a_batch_its_commit_at_once() -> None:
    # A follower plans a batch once it knows the batch's index committed.  An idle leader tells its
    # followers a commit only with its next heartbeat -- a Raft tick later (0.5 s in the simulator) --
    # so the broker asks Raft to share the commit as it hands a follower a batch (ShareCommit).
    c = boot(seed=21)
    leader = leader_of(c)
    waits = []
    for i in range(6):
        c.run(0.37 * (i + 1))  # at another phase of the heartbeat each time
        job_id = f"quick-{i}"
        start = c.sched.now
        c.register(sim_job(job_id=job_id, count=1))
        while not placed(c, job_id):
            c.run(0.002)
            assert c.sched.now - start < 5.0
        waits.append(c.sched.now - start)
    assert broker(c, leader).stats["remote_batches"] >= 3  # most of them planned on a follower
    assert max(waits) < 0.1, waits  # the plan linger (10 ms) and a few round trips, never a tick
