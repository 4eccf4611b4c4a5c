"""A read or write that finds no Raft leader is held, as Nomad's RPCs are (getLeaderForRPC).

Nomad holds an RPC that finds no leader for up to RPCHoldTimeout (5 s),
looking again after a jitter of up to hold/16, before ErrNoLeader; so a
request made during an election (a server restarted, the leader killed)
waits for the new leader instead of failing.  The HTTP edge's Raft calls
(``http_api.propose`` and the linearizable read of ``state_query``) do the
same; a write is tried again only on answers that say it reached no leader.
The runtime here is a fake with a virtual clock: a future nobody answers
times out by advancing it, so nothing sleeps.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pykka
import pytest

from actors import http_api
from actors.http_api import CodedError, Request
from actors.raft.peer import RaftError

RPC_HOLD_TIMEOUT_S = 5.0  # Nomad's RPCHoldTimeout (nomad/config.go)


class FakeEnv:
    """A virtual clock; a future answered by the fake Raft, or timing out by moving the clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def make_future(self) -> Any:
        env = self

        class Future:
            outcome: Any = None

            def set(self, value: Any) -> None:
                self.outcome = value

            def get(self, timeout: float) -> Any:
                if self.outcome is None:
                    env.t += timeout
                    raise pykka.Timeout("no answer")
                if isinstance(self.outcome, Exception):
                    raise self.outcome
                return self.outcome

        return Future()


class FakeRaft:
    """Answers each request with the next scripted outcome (the last one repeats)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes, self.asked = list(outcomes), 0

    def is_alive(self) -> bool:
        return True

    def tell(self, msg: Any) -> None:
        self.asked += 1
        out = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        msg.reply.set(RaftError(out) if isinstance(out, str) else out)


def fake_api(raft: FakeRaft) -> Any:
    env = FakeEnv()
    env.lookup = lambda name: raft if name == "raft" else None
    status = {"role": "leader", "leader": "x", "last_contact": 0}
    return SimpleNamespace(env=env, ask=lambda actor, what: status)


def test_the_hold_is_nomads_rpc_hold_timeout():
    assert http_api.RPC_HOLD_TIMEOUT_S == RPC_HOLD_TIMEOUT_S


def test_a_write_during_an_election_waits_for_the_new_leader():
    raft = FakeRaft("No cluster leader", "No cluster leader", "not leader", (7, "done"))
    api = fake_api(raft)
    assert http_api.propose(api, b"cmd") == (7, "done")
    assert raft.asked == 4 and api.env.t < RPC_HOLD_TIMEOUT_S


def test_no_leader_for_the_whole_hold_is_no_cluster_leader_after_it():
    raft = FakeRaft("No cluster leader")
    api = fake_api(raft)
    with pytest.raises(CodedError) as e:
        http_api.propose(api, b"cmd")
    assert (e.value.code, e.value.message) == (500, "No cluster leader")
    # Tried until the hold passed, each pause at most hold/16.
    assert raft.asked > 1 and RPC_HOLD_TIMEOUT_S <= api.env.t <= RPC_HOLD_TIMEOUT_S * (1 + 1 / 16)


def test_a_write_that_may_have_committed_is_not_tried_again():
    raft = FakeRaft("leadership lost while committing", (7, "done"))
    with pytest.raises(CodedError, match="leadership lost while committing"):
        http_api.propose(fake_api(raft), b"cmd")
    assert raft.asked == 1


def test_a_linearizable_read_is_held_too_and_retried_when_leadership_was_lost():
    raft = FakeRaft("No cluster leader", "leadership lost", (3, (3, True, ["job"])))
    api = fake_api(raft)
    req = Request(method="GET", path="/v1/jobs", query={}, url="/v1/jobs", environ={})
    got = http_api.state_query(req, api, ("jobs",), lambda st: ["job"])
    assert got.value == ["job"] and raft.asked == 3
