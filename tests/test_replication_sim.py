"""The replication loop in the simulator: a fake authoritative region behind the HTTP endpoint's name,
a fake Raft over a real StateStore.  Deterministic: virtual time, one seed."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from actors.http_forward import HttpForwardAccepted, HttpForwardRequest, HttpForwardResponse
from actors.raft.peer import InfoQuery, Propose, RaftInfo, Read
from actors.server.replication import REPLICATION, ReplicationConfig, Replicator
from actors.state.store import StateStore, command
from runtime.actor import NodeActor
from runtime.env import Env
from sim.runtime import Scheduler, SimEnv

NODE = "b0"
BACKOFF_S = 5.0


class FakeRaft(NodeActor):
    """Leads; applies proposals to a real StateStore; answers reads from it."""

    def __init__(self, env: Env, name: str) -> None:
        super().__init__(env, name)
        self.store = StateStore()
        self.index = 0

    def receive(self, message: Any) -> Any:
        if isinstance(message, InfoQuery):
            self.send(self.env.node, message.reply_to, RaftInfo(is_leader=True, term=1, leader=NODE,
                                                                 voters=(NODE,), learners=()))
        elif isinstance(message, Read):
            message.reply.set((self.index, message.query(self.store)))
        elif isinstance(message, Propose):
            self.index += 1
            message.reply.set((self.index, self.store.apply(self.index, message.data)))
        return None


class FakeRegion(NodeActor):
    """The authoritative region as seen through ``?region=``: its policies and namespaces, or failing."""

    def __init__(self, env: Env, name: str) -> None:
        super().__init__(env, name)
        self.index = 10
        self.policies: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {"default": {"Name": "default", "ModifyIndex": 1}}
        self.failing = False
        self.requests: list[str] = []

    def receive(self, m: Any) -> Any:
        if not isinstance(m, HttpForwardRequest):
            return None
        self.requests.append(m.url)
        self.send(m.reply_node, m.reply_actor, HttpForwardAccepted(req_id=m.req_id))
        path, _, query = m.url.partition("?")
        assert urllib.parse.parse_qs(query)["region"] == ["a"]
        assert dict(m.headers).get("X-Nomad-Token") == "repl-secret"
        status, body = 200, None
        if self.failing:
            status, body = 500, "No path to region"
        elif path == "/v1/acl/policies":
            body = [{k: p[k] for k in ("Name", "Hash", "ModifyIndex")}
                    for _, p in sorted(self.policies.items())]
        elif path.startswith("/v1/acl/policy/"):
            body = self.policies[urllib.parse.unquote(path.rsplit("/", 1)[1])]
        elif path == "/v1/namespaces":
            body = [ns for _, ns in sorted(self.namespaces.items())]
        else:
            body = []
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send(m.reply_node, m.reply_actor, HttpForwardResponse(
            req_id=m.req_id, status=status, body=data, headers=(("X-Nomad-Index", str(self.index)),)))
        return None

    def put_policy(self, name: str, rules: str) -> None:
        self.index += 1
        self.policies[name] = {"Name": name, "Description": "", "Rules": rules, "JobACL": None,
                               "Hash": f"h-{name}-{rules}", "ModifyIndex": self.index}


def cluster(seed: int = 7) -> tuple[Scheduler, FakeRaft, FakeRegion, Replicator]:
    sched = Scheduler(seed)
    cfg = ReplicationConfig(region="b", authoritative_region="a", token="repl-secret", acl_enabled=True,
                            backoff_s=BACKOFF_S)

    def boot(env: SimEnv) -> None:
        env.spawn(FakeRaft, "raft")
        env.spawn(FakeRegion, "http-endpoint")
        env.spawn(Replicator, REPLICATION, config=cfg)

    node = sched.add_node(NODE, boot)
    get = lambda name: sched.actor_of(node.actors[name])
    return sched, get("raft"), get("http-endpoint"), get(REPLICATION)


def test_the_leader_copies_the_authoritative_regions_objects_and_drops_what_it_lacks():
    sched, raft, region, repl = cluster()
    region.put_policy("readonly", "r1")
    region.namespaces["ns1"] = {"Name": "ns1", "Description": "one", "ModifyIndex": 11}
    raft.index += 1
    raft.store.apply(raft.index, command("acl_policy_upsert",
                                         policies=[{"Name": "stale", "Rules": "", "Hash": "x"}]))
    tables = raft.store.tables
    assert sched.run_until(lambda: sorted(tables["acl_policies"]) == ["readonly"]
                           and "ns1" in tables["namespaces"], 5.0)
    assert tables["acl_policies"]["readonly"]["Hash"] == "h-readonly-r1"
    assert tables["namespaces"]["ns1"]["Description"] == "one"

    # A change there (a newer ModifyIndex, another hash) is copied; an unchanged one is not rewritten.
    region.put_policy("readonly", "r2")
    assert sched.run_until(lambda: tables["acl_policies"]["readonly"]["Rules"] == "r2", 5.0)
    written = raft.index
    sched.run_for(3.0)
    assert raft.index == written
    assert repl.status()["kinds"]["acl_policies"]["errors"] == 0


def test_a_failing_region_is_retried_after_the_backoff_only():
    sched, raft, region, repl = cluster()
    region.failing = True
    sched.run_for(1.0)
    tried = len(region.requests)
    assert tried and repl.status()["kinds"]["acl_policies"]["last_error"].startswith("500")
    sched.run_for(BACKOFF_S - 1.5)
    assert len(region.requests) == tried  # no retry within the backoff
    region.failing = False
    region.put_policy("p", "r")
    assert sched.run_until(lambda: "p" in raft.store.tables["acl_policies"], BACKOFF_S)


def test_losing_leadership_stops_the_loops():
    sched, raft, region, repl = cluster()
    sched.run_for(1.0)
    assert region.requests
    repl.env.send(NODE, REPLICATION, RaftInfo(is_leader=False, term=2, leader="", voters=(NODE,),
                                              learners=()))
    sched.run_for(0.5)
    seen = len(region.requests)
    region.put_policy("late", "r")
    sched.run_for(10.0)
    assert len(region.requests) == seen
    assert "late" not in raft.store.tables["acl_policies"]


def _converged(raft: FakeRaft, region: FakeRegion) -> bool:
    tables = raft.store.tables
    return ({n: p["Rules"] for n, p in tables["acl_policies"].items()}
            == {n: p["Rules"] for n, p in region.policies.items()}
            and {n: ns.get("Description") or "" for n, ns in tables["namespaces"].items() if n != "default"}
            == {n: ns.get("Description") or "" for n, ns in region.namespaces.items() if n != "default"})


def test_after_random_changes_and_outages_the_region_converges_on_the_authoritative_one():
    import random

    for seed in range(5):
        sched, raft, region, repl = cluster(seed)
        rng = random.Random(f"replication-{seed}")
        for _ in range(40):
            what = rng.choice(("put", "put", "delete", "ns", "ns-delete", "outage", "heal"))
            name = f"o{rng.randrange(6)}"
            if what == "put":
                region.put_policy(name, f"r{rng.randrange(3)}")
            elif what == "delete" and name in region.policies:
                region.index += 1
                del region.policies[name]
            elif what == "ns":
                region.index += 1
                region.namespaces[name] = {"Name": name, "Description": f"d{rng.randrange(3)}",
                                           "ModifyIndex": region.index}
            elif what == "ns-delete" and name in region.namespaces:
                region.index += 1
                del region.namespaces[name]
            elif what in ("outage", "heal"):
                region.failing = what == "outage"
            sched.run_for(rng.uniform(0.0, 2.0))
        region.failing = False
        # Healed: within one backoff plus a few rounds, b holds exactly what a holds.
        healed = sched.run_until(lambda r=raft, g=region: _converged(r, g), BACKOFF_S + 5.0)
        assert healed, (seed, repl.status())
        written = raft.index
        sched.run_for(5.0)
        assert raft.index == written, seed  # and then stops writing


def test_a_refused_write_is_retried_soon_then_less_and_less_often():
    sched, raft, _, repl = cluster()
    raft.index += 1
    assert raft.store.apply(raft.index, command("namespace_upsert", namespaces=[{"Name": "busy"}]))["ok"]
    # A live job keeps the namespace here: the authoritative region no longer has it, the delete is refused.
    raft.store.tables["jobs"]["busy/web"] = {"ID": "web", "Namespace": "busy", "Status": "running"}
    sched.run_for(BACKOFF_S * 6)
    refused = raft.index - 1
    # 1, 2, 4 s then the 5 s backoff: about 9 refused writes in 30 s, not one a second.
    assert 4 <= refused <= 10, refused
    assert repl.status()["kinds"]["namespaces"]["last_error"].startswith("delete refused")
    del raft.store.tables["jobs"]["busy/web"]
    assert sched.run_until(lambda: "busy" not in raft.store.tables["namespaces"], BACKOFF_S + 1.0)


def test_a_regained_leadership_lists_everything_afresh():
    sched, raft, region, repl = cluster()
    region.put_policy("p", "r1")
    assert sched.run_until(lambda: "p" in raft.store.tables["acl_policies"], 5.0)
    lost = RaftInfo(is_leader=False, term=2, leader="", voters=(NODE,), learners=())
    repl.env.send(NODE, REPLICATION, lost)
    sched.run_for(0.5)
    # Meanwhile this region's copy diverged (another leader's write, a restore): the next term mends it.
    raft.index += 1
    raft.store.apply(raft.index, command("acl_policy_upsert",
                                         policies=[{"Name": "p", "Rules": "x", "Hash": "x"}]))
    won = RaftInfo(is_leader=True, term=3, leader=NODE, voters=(NODE,), learners=())
    repl.env.send(NODE, REPLICATION, won)
    assert sched.run_until(lambda: raft.store.tables["acl_policies"]["p"]["Rules"] == "r1", 5.0)
