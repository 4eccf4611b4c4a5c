"""A server with bootstrap_expect asks the servers it found whether they have Raft peers before it
bootstraps (Nomad's maybeBootstrap): one joining a running cluster never bootstraps a configuration
of its own, however few servers gossip has shown it yet."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from actors.raft.membership import ServerMembership
from actors.raft.messages import BootstrapPeersQuery, BootstrapPeersReply
from actors.raft.peer import Bootstrap, RaftInfo
from sim.raft_run import run_raft_seed


@dataclass
class _Member:
    name: str
    tags: tuple[tuple[str, str], ...]
    status: str = "alive"
    kind: str = "member-join"


class _Env:
    def __init__(self, node: str) -> None:
        self.node, self.t, self.sent = node, 0.0, []

    def now(self) -> float:
        return self.t

    def send(self, node: str, actor: str, msg: Any) -> None:
        self.sent.append((node, actor, msg))


def _server(addr: str) -> _Member:
    return _Member(name=f"s-{addr}", tags=(("role", "nomad"), ("region", "global"), ("rpc_addr", addr),
                                           ("expect", "3")))


class _Membership(ServerMembership):
    """The actor's logic alone, its receive called directly (no runtime starts it)."""

    def _create_actor_inbox(self) -> Any:
        return None

    def _create_future(self) -> Any:
        return None

    def _start_actor_loop(self) -> Any:
        return None


def _membership(node: str) -> tuple[ServerMembership, _Env]:
    env = _Env(node)
    return _Membership(env, "server-membership", region="global", bootstrap_expect=3), env


def _bootstraps(env: _Env) -> list[Any]:
    return [msg for _, _, msg in env.sent if isinstance(msg, Bootstrap)]


def test_a_joiner_that_hears_of_existing_peers_does_not_bootstrap():
    m, env = _membership("10.0.0.1:4647")  # sorts first: it is among the voters it would choose
    for addr in ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647"):
        m.receive(_server(addr))
    asks = [(node, msg) for node, _, msg in env.sent if isinstance(msg, BootstrapPeersQuery)]
    assert sorted(node for node, _ in asks) == ["10.0.0.2:4647", "10.0.0.3:4647"] and not _bootstraps(env)
    req = asks[0][1].req_id
    m.receive(BootstrapPeersReply(req_id=req, server="10.0.0.2:4647", has_peers=False))
    m.receive(BootstrapPeersReply(req_id=req, server="10.0.0.3:4647", has_peers=True))  # a running cluster
    assert not _bootstraps(env) and m.bootstrapped and m.stats["bootstrap_skipped"] == 1


def test_a_new_cluster_bootstraps_once_every_other_server_says_it_has_none():
    m, env = _membership("10.0.0.1:4647")
    for addr in ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647"):
        m.receive(_server(addr))
    req = next(msg for _, _, msg in env.sent if isinstance(msg, BootstrapPeersQuery)).req_id
    no = BootstrapPeersReply(req_id=req, server="10.0.0.2:4647", has_peers=False)
    m.receive(no)
    m.receive(no)  # a duplicated answer counts once
    assert not _bootstraps(env)
    m.receive(BootstrapPeersReply(req_id=req, server="10.0.0.3:4647", has_peers=False))
    (boot,) = _bootstraps(env)
    assert boot.voters == ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647")


def test_an_unanswered_check_is_asked_again_and_a_query_is_answered():
    m, env = _membership("10.0.0.1:4647")
    for addr in ("10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647"):
        m.receive(_server(addr))
    first = [msg.req_id for _, _, msg in env.sent if isinstance(msg, BootstrapPeersQuery)]
    env.t = m.bootstrap_check_timeout_s + 1
    m.set_timer = lambda *a, **k: None  # type: ignore[method-assign]  (no runtime here)
    m.on_timer("reconcile")
    again = [msg.req_id for _, _, msg in env.sent if isinstance(msg, BootstrapPeersQuery)]
    assert len(again) == 2 * len(first) and again[-1] > first[-1]
    # Asked by another: this server answers whether its Raft has a configuration.
    m.receive(RaftInfo(is_leader=False, term=3, leader="10.0.0.2:4647", voters=("10.0.0.2:4647",),
                       learners=()))
    m.receive(BootstrapPeersQuery(req_id=7, reply_node="10.0.0.9:4647", reply_actor="server-membership"))
    assert env.sent[-1] == ("10.0.0.9:4647", "server-membership",
                            BootstrapPeersReply(req_id=7, server="10.0.0.1:4647", has_peers=True))


# ------------------------------------------------------------ the simulator's joiner scenarios
# A fourth server (bootstrap_expect = 3) joins a running three-server cluster while gossip shows it just
# two of the others alive -- one of them out of sight (partial-joiner), or not yet heard of as member
# events arrive one at a time (fourth-server-joins); sim/scenarios.py MEMBERSHIP_SCENARIOS, played by
# sim/membership_run.py over GossipMember + ServerMembership + RaftPeer.  The leader adds it as a
# non-voter and promotes it, and every server's configuration comes from the cluster's one bootstrap
# (RaftChecker's Single Lineage).
JOINS = ("partial-joiner", "fourth-server-joins")


@pytest.mark.parametrize("scenario", JOINS)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_partially_informed_joiner_is_added_by_the_leader_and_never_bootstraps(scenario, seed):
    r = run_raft_seed(seed, scenario=scenario)
    assert r.ok, f"{r.error}\nreplay: {r.replay(60.0, 3)}"
    assert any("join s4" in f for f in r.faults)


def test_without_the_check_the_scenario_sees_the_joiner_bootstrap_a_second_lineage(monkeypatch):
    # The check made a no-op: every server answers that it has no Raft peers, so the joiner
    # bootstraps the three servers it sees, as it did before Nomad's maybeBootstrap check was added.
    real = ServerMembership._bootstrap_peers_reply
    monkeypatch.setattr(ServerMembership, "_bootstrap_peers_reply",
                        lambda self, m: real(self, replace(m, has_peers=False)))
    for seed, scenario in ((1, JOINS[0]), (2, JOINS[0]), (1, JOINS[1]), (2, JOINS[1])):
        r = run_raft_seed(seed, scenario=scenario)
        assert not r.ok and ("Single Lineage" in r.error or "bootstrapped a configuration of its own"
                             in r.error), r.error


def test_a_restarted_single_server_does_not_log_a_bootstrap_raft_refused(caplog):
    """bootstrap_expect = 1 restarted with its data dir: membership may ask for a bootstrap before
    Raft's first RaftInfo says it has state; Raft refuses, and nothing says "bootstrapped the
    cluster" (Nomad bootstraps only without existing state).  A real bootstrap is logged."""
    from actors.server import RaftReply

    for refused in (True, False):
        caplog.clear()
        env = _Env("10.0.0.1:4647")
        m = _Membership(env, "server-membership", region="global", bootstrap_expect=1)
        m.receive(_Member(name="s1.global", tags=(("role", "nomad"), ("region", "global"),
                                                  ("rpc_addr", "10.0.0.1:4647"), ("expect", "1"))))
        (boot,) = _bootstraps(env)
        with caplog.at_level("DEBUG", logger="nomad.server"):
            if refused:
                boot.reply.set_exception(RuntimeError("already bootstrapped"))
            else:
                boot.reply.set(True)
            (reply,) = [msg for _, _, msg in env.sent if isinstance(msg, RaftReply)]
            m.receive(reply)
        said = [r.getMessage() for r in caplog.records if "bootstrapped the cluster" in r.getMessage()]
        assert said == ([] if refused else ["10.0.0.1:4647: found 1 servers, bootstrapped the cluster with "
                                            "10.0.0.1:4647"])
