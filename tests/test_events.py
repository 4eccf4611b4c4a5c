"""The event stream: events made from applied writes, the buffer, subscriptions, ``/v1/event/stream``."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import msgpack
import pytest

from actors.state.events import (
    Batch,
    Event,
    EventBuffer,
    Subscription,
    Table,
    event_json,
    frame,
    parse_topics,
)
from actors.state.store import StateStore, command

pytestmark = pytest.mark.timeout(120)

JOB = {"ID": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
       "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                            "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}
NODE = {"ID": "n1", "SecretID": "s1", "Name": "n1", "Datacenter": "dc1", "Status": "ready",
        "SchedulingEligibility": "eligible", "NodeResources": {"Cpu": {"CpuShares": 1000},
                                                               "Memory": {"MemoryMB": 1024},
                                                               "Disk": {"DiskMB": 100_000}}}


def _store() -> StateStore:
    st = StateStore()
    st.enable_events(100)
    return st


def _kinds(batch: Batch | None) -> list[tuple[str, str, str]]:
    assert batch is not None
    return [(e.topic, e.type, e.key) for e in batch.events]


def _last(st: StateStore) -> Batch:
    assert st.events is not None
    got = st.events.since(st.events.last_index)
    assert got, "no events"
    return got[-1]


# ---------------------------------------------------------------- events from writes


def test_a_job_registration_makes_its_job_and_evaluation_events_at_its_index():
    st = _store()
    st.apply(1, command("job_register", job=JOB, now=1.0))
    b = _last(st)
    assert b.index == 1
    ev_id = next(iter(st.tables["evals"]))
    assert _kinds(b) == [("Job", "JobRegistered", "web"), ("Evaluation", "JobRegistered", ev_id)]
    job_ev, eval_ev = b.events
    assert job_ev.namespace == "default" and job_ev.filter_keys == ()
    assert eval_ev.filter_keys == ("web", "")  # an evaluation is found by its job too
    assert job_ev.payload["ID"] == "web" and job_ev.payload is not st.tables["jobs"]["web"]


def test_a_deployment_is_an_event_with_its_job_as_filter_key_and_the_apis_times():
    from actors.scheduler.broker import pending_evals, plan_command
    from actors.scheduler.job import canonical_job

    st = _store()
    st.apply(1, command("node_register", node=NODE, now=1.0))
    job = canonical_job({**JOB, "TaskGroups": [{**JOB["TaskGroups"][0], "Tasks": [
        {**JOB["TaskGroups"][0]["Tasks"][0], "Config": {"command": "/bin/sleep"}}]}]})
    st.apply(2, command("job_register", job=job, now=2.0))
    ((_, _, ev_id, _),) = pending_evals(st)
    data, _ = plan_command(st, ev_id, 3.0)
    st.apply(3, data)
    dep = next(e for e in _last(st).events if e.topic == "Deployment")
    assert dep.filter_keys == ("web",) and dep.namespace == "default"
    payload = json.loads(json.dumps(event_json(dep)))["Payload"]["Deployment"]
    assert payload["JobID"] == "web" and payload["CreateTime"] == 3_000_000_000
    assert payload["TaskGroups"]["g"]["RequireProgressBy"].endswith("Z")  # RFC3339, as Nomad's JSON
    st.apply(4, command("deployment_pause", deployment_id=dep.key, pause=True, now=4.0))
    assert ("Deployment", "DeploymentStatusUpdate", dep.key) in _kinds(_last(st))


def test_node_writes_are_typed_as_nomad_types_them_and_a_deleted_node_is_sent_as_it_was():
    st = _store()
    st.apply(1, command("node_register", node=NODE, now=1.0))
    assert _kinds(_last(st)) == [("Node", "NodeRegistration", "n1")]
    st.apply(2, command("node_update_status", node_id="n1", status="down", now=2.0))
    assert _kinds(_last(st)) == [("Node", "NodeStreamEvent", "n1")]
    st.apply(3, command("node_update_eligibility", node_id="n1", eligibility="ineligible", now=3.0))
    assert _kinds(_last(st)) == [("Node", "NodeEligibility", "n1")]  # Nomad's TypeNodeEligibilityUpdate
    st.apply(4, command("node_deregister", node_id="n1", now=4.0))
    b = _last(st)
    assert b.index == 4 and _kinds(b) == [("Node", "NodeDeregistration", "n1")]
    assert b.events[0].payload["SchedulingEligibility"] == "ineligible"  # the node as it was
    assert b.events[0].namespace == ""  # nodes belong to no namespace
    payload = event_json(b.events[0])["Payload"]["Node"]
    assert payload["ID"] == "n1" and payload.get("SecretID", "") == ""  # Nomad's Node.Sanitize blanks it


def test_a_nodes_status_updated_at_is_whole_unix_seconds_as_go_decodes_it():
    # Node.StatusUpdatedAt is an int64 (timeNow.Unix()): Go's api package cannot decode 1795955625.68
    # into it, so an event stream reader or `nomad node status` client built on it would fail.
    from actors.http_api import _public_node

    st = _store()
    st.apply(1, command("node_register", node=NODE, now=1795955625.68))
    payload = event_json(_last(st).events[0])["Payload"]["Node"]
    assert payload["StatusUpdatedAt"] == 1795955625 and isinstance(payload["StatusUpdatedAt"], int)
    st.apply(2, command("node_update_status", node_id="n1", status="down", now=1795955699.9))
    out = _public_node(st.tables["nodes"]["n1"])
    assert out["StatusUpdatedAt"] == 1795955699 and isinstance(out["StatusUpdatedAt"], int)
    assert json.dumps(out["StatusUpdatedAt"]) == "1795955699"


def test_writes_nomad_makes_no_events_for_make_none_and_a_refused_write_makes_none():
    st = _store()
    st.apply(1, command("kv_put", key="k", value=1))
    st.apply(2, command("job_register", job=JOB, now=1.0))
    st.apply(3, command("job_stability", job_id="web", version=0, stable=True))
    st.apply(4, command("node_update_status", node_id="missing", status="down", now=2.0))
    st.apply(5, command("no_such_op"))
    assert st.events is not None
    assert [b.index for b in st.events.since(0)] == [2]


def test_an_evaluation_changed_in_place_is_an_event_and_earlier_events_keep_what_they_saw():
    st = _store()
    st.apply(1, command("job_register", job=JOB, now=1.0))
    first = next(iter(st.tables["evals"]))
    plan = {"EvalID": first, "JobID": "web", "Stop": [], "Place": [],
            "Failed": {"g": {"NodesEvaluated": 0}}}
    st.apply(2, command("plan_apply", plan=plan, now=2.0))
    b2 = _last(st)
    blocked = [e for e in b2.events if e.topic == "Evaluation" and e.key != first]
    assert blocked and blocked[0].payload["Status"] == "blocked" and blocked[0].type == "PlanResult"
    # A deregistration cancels the blocked evaluation in place (the store's own record).
    st.apply(3, command("job_deregister", job_id="web", now=3.0))
    b3 = _last(st)
    canceled = [e for e in b3.events if e.key == blocked[0].key]
    assert canceled and canceled[0].payload["Status"] == "canceled"
    assert ("Job", "JobDeregistered", "web") in _kinds(b3)
    assert blocked[0].payload["Status"] == "blocked"  # the earlier event still says what it saw
    stopped = event_json(next(e for e in b3.events if e.topic == "Job"))["Payload"]
    assert stopped["Job"]["Stop"] is True and "Deleted" not in stopped  # stopped, still there
    st.apply(4, command("job_deregister", job_id="web", purge=True, now=4.0))
    purged = event_json(next(e for e in _last(st).events if e.topic == "Job"))
    assert (purged["Type"], purged["Payload"]["Deleted"]) == ("JobDeregistered", True)  # Nomad's JobEvent


def test_core_gc_deregisters_jobs_by_batch_and_reaps_evaluations_without_events():
    st = _store()
    st.apply(1, command("job_register", job=JOB, now=0.0))
    st.apply(2, command("job_deregister", job_id="web", now=0.0))
    for ev in st.tables["evals"].values():  # as the scheduler would have finished them
        ev.update(Status="complete")
    st.tables["jobs"]["web"] = {**st.tables["jobs"]["web"], "Status": "dead"}
    r = st.apply(3, command("core_gc", jobs=["web"], cutoff=100.0, batch_cutoff=100.0, job_cutoff=100.0))
    assert r["ok"] and r["jobs"] == ["web"] and len(r["evals"]) == 2
    b = _last(st)
    assert b.index == 3 and _kinds(b) == [("Job", "JobBatchDeregistered", "web")]
    assert b.events[0].payload["Status"] == "dead"  # the job as it was
    assert event_json(b.events[0])["Payload"]["Deleted"] is True


def test_node_pool_writes_are_events_and_a_pool_made_by_a_registration_rides_with_it():
    st = _store()
    st.apply(1, command("node_pool_upsert", pools=[{"Name": "prod", "Description": "p"}]))
    assert _kinds(_last(st)) == [("NodePool", "NodePoolUpserted", "prod")]
    assert event_json(_last(st).events[0])["Payload"]["NodePool"]["Description"] == "p"
    st.apply(2, command("node_register", node={**NODE, "NodePool": "gpu"}, now=1.0))
    assert _kinds(_last(st)) == [("Node", "NodeRegistration", "n1"), ("NodePool", "NodeRegistration", "gpu")]
    st.apply(3, command("node_pool_delete", names=["prod"]))
    assert _kinds(_last(st)) == [("NodePool", "NodePoolDeleted", "prod")]


def test_events_are_made_only_when_enabled_and_the_tables_snapshot_as_plain_maps():
    plain, evented = StateStore(), _store()
    for st in (plain, evented):
        st.apply(1, command("node_register", node=NODE, now=1.0))
        st.apply(2, command("job_register", job=JOB, now=1.0))
    assert plain.events is None
    assert plain.snapshot() == evented.snapshot()  # byte for byte: events change nothing replicated
    restored = _store()
    restored.restore(evented.snapshot(), 2)
    assert isinstance(restored.tables["nodes"], Table) and restored.tables["nodes"]["n1"]["ID"] == "n1"
    restored.apply(3, command("node_update_status", node_id="n1", status="down", now=3.0))
    assert _kinds(_last(restored)) == [("Node", "NodeStreamEvent", "n1")]
    assert msgpack.unpackb(restored.snapshot(), raw=False)["tables"]["nodes"]["n1"]["Status"] == "down"


# ---------------------------------------------------------------- the buffer


def _batch(i: int) -> Batch:
    return Batch(i, (Event("Node", "NodeStreamEvent", f"n{i}", "", (), i, {"ID": f"n{i}"}),))


def test_the_buffer_keeps_the_newest_batches_and_starts_an_old_index_at_the_oldest_kept():
    buf = EventBuffer(3)
    for i in (2, 4, 6, 8, 10):
        buf.append(_batch(i))
    assert [b.index for b in buf.since(0)] == [6, 8, 10]
    assert [b.index for b in buf.since(7)] == [8, 10]  # from the first at or after the index
    assert [b.index for b in buf.since(8)] == [8, 10]
    assert buf.since(11) == [] and buf.last_index == 10 and buf.dropped_upto == 4


def test_a_live_subscribers_unread_batches_stay_up_to_the_lag_cap_and_go_when_it_leaves():
    buf = EventBuffer(2, max_lag=5)
    buf.append(_batch(1))
    assert [b.index for b in buf.since(1, subscriber=7)] == [1]
    for i in range(2, 6):
        buf.append(_batch(i))
    assert [b.index for b in buf.since(1, subscriber=7)] == [1, 2, 3, 4, 5]  # nothing it has not read went
    for i in range(6, 9):
        buf.append(_batch(i))
    assert [b.index for b in buf.since(0)] == [4, 5, 6, 7, 8]  # the cap: a stalled reader holds at most 5
    assert buf.dropped_upto == 3
    buf.forget(7)
    buf.append(_batch(9))
    assert [b.index for b in buf.since(0)] == [8, 9]


def test_a_restore_from_a_snapshot_drops_the_kept_events_and_tells_subscribers():
    st = _store()
    st.apply(1, command("node_register", node=NODE, now=1.0))
    assert st.events is not None and len(st.events) == 1
    st.events.since(2, subscriber=1)  # a live reader waiting for index 2
    snap = st.snapshot()
    st.restore(snap, 5)  # as a follower installing the leader's snapshot
    assert len(st.events) == 0 and st.events.last_index == 5
    assert st.events.dropped_upto == 5  # what the reader wanted (index 2..5) made no events: it is lost


def test_deleting_a_pool_twice_in_one_write_deletes_it_once():
    st = _store()
    st.apply(1, command("node_pool_upsert", pools=[{"Name": "p1"}]))
    assert st.apply(2, command("node_pool_delete", names=["p1", "p1"]))["ok"]
    assert _kinds(_last(st)) == [("NodePool", "NodePoolDeleted", "p1")]


def test_variable_writes_are_events_of_their_metadata_never_their_items():
    st = _store()
    st.apply(1, command("var_set", namespace="default", path="app/db", items={"pass": "s3cret"}, now=1.0))
    b = _last(st)
    assert _kinds(b) == [("Variable", "VariableUpdated", "app/db")]
    e = event_json(b.events[0])
    assert e["Namespace"] == "default" and e["FilterKeys"] is None
    assert e["Payload"] == {"Metadata": {"Namespace": "default", "Path": "app/db", "CreateIndex": 1,
                                         "ModifyIndex": 1, "CreateTime": 1_000_000_000,
                                         "ModifyTime": 1_000_000_000}, "Deleted": False}
    assert b"s3cret" not in frame(b.index, list(b.events))
    # A lock's acquire and release are variable writes too (Nomad's VarApplyStateRequest); its lease
    # renewal writes only the lease, and makes none.
    st.apply(2, command("var_lock_acquire", namespace="default", path="app/lock", items={}, lock_id="L",
                        ttl=10**10, delay=0, now=2.0))
    got = event_json(_last(st).events[0])["Payload"]["Metadata"]
    assert got["Lock"] == {"ID": "L", "TTL": "10s", "LockDelay": ""}
    assert st.apply(3, command("var_lock_renew", namespace="default", path="app/lock", lock_id="L",
                               now=3.0))["ok"]
    assert _last(st).index == 2
    st.apply(4, command("var_lock_release", namespace="default", path="app/lock", lock_id="L", now=4.0))
    assert "Lock" not in event_json(_last(st).events[0])["Payload"]["Metadata"]
    st.apply(5, command("var_delete", namespace="default", path="app/db"))
    e = event_json(_last(st).events[0])
    assert (e["Type"], e["Key"], e["Payload"]["Deleted"]) == ("VariableUpdated", "app/db", True)
    assert e["Payload"]["Metadata"]["ModifyIndex"] == 1  # as it was
    st.apply(6, command("var_delete", namespace="default", path="app/db"))  # nothing there: no event
    assert _last(st).index == 5


def test_acl_role_auth_method_and_binding_rule_writes_are_events():
    from tests.test_acl_auth import _method

    st = _store()
    st.apply(1, command("acl_policy_upsert", policies=[{"Name": "ro", "Rules": 'node { policy = "read" }'}]))
    st.apply(2, command("acl_role_upsert", roles=[{"ID": "r-1", "Name": "ops", "Policies": [{"Name": "ro"}],
                                                   "Hash": "h"}], created=["r-1"]))
    b = _last(st)
    assert _kinds(b) == [("ACLRole", "ACLRoleUpserted", "r-1")]
    e = event_json(b.events[0])
    assert e["FilterKeys"] == ["ops"] and e["Payload"]["ACLRole"]["Name"] == "ops"
    assert e["Payload"]["ACLRole"]["Policies"] == [{"Name": "ro"}]
    method = _method()
    method["Config"]["OIDCClientSecret"] = "hush"
    st.apply(3, command("acl_auth_method_upsert", methods=[method]))
    e = event_json(_last(st).events[0])
    assert (e["Topic"], e["Type"], e["Key"]) == ("ACLAuthMethod", "ACLAuthMethodUpserted", "corp")
    assert e["Payload"]["AuthMethod"]["Config"]["OIDCClientSecret"] == "redacted"  # Nomad's Sanitize
    rule = {"ID": "b-1", "AuthMethod": "corp", "BindType": "role", "BindName": "ops", "Hash": "h"}
    st.apply(4, command("acl_binding_rule_upsert", rules=[rule], created=["b-1"]))
    e = event_json(_last(st).events[0])
    assert (e["Topic"], e["Type"], e["Key"], e["FilterKeys"]) == \
        ("ACLBindingRule", "ACLBindingRuleUpserted", "b-1", ["corp"])
    assert e["Payload"]["ACLBindingRule"]["BindName"] == "ops"
    st.apply(5, command("acl_binding_rule_delete", ids=["b-1"]))
    st.apply(6, command("acl_auth_method_delete", names=["corp"]))
    st.apply(7, command("acl_role_delete", ids=["r-1"]))
    assert [_kinds(b)[0][:2] for b in st.events.since(5)] == [
        ("ACLBindingRule", "ACLBindingRuleDeleted"), ("ACLAuthMethod", "ACLAuthMethodDeleted"),
        ("ACLRole", "ACLRoleDeleted")]


def test_a_variable_event_passes_a_subscriber_only_if_it_may_list_the_path():
    from actors.acl import compile_acl, parse_policy

    rules = 'namespace "default" { variables { path "app/*" { capabilities = ["list"] } } }'
    acl = compile_acl([parse_policy(rules)])
    mine = Event("Variable", "VariableUpdated", "app/db", "default", (), 3, {})
    other = Event("Variable", "VariableUpdated", "ops/db", "default", (), 4, {})
    sub = Subscription(parse_topics(["Variable"]), acl=acl)
    assert sub.wants(mine) and not sub.wants(other)
    assert Subscription(parse_topics(["Variable"])).wants(other)  # no ACLs: everything


def test_subscriptions_match_topics_keys_filter_keys_and_namespaces():
    alloc = Event("Allocation", "AllocationUpdated", "a1", "default", ("web", ""), 5, {})
    node = Event("Node", "NodeRegistration", "n1", "", (), 6, {})
    other_ns = Event("Job", "JobRegistered", "api", "prod", (), 7, {})
    everything = Subscription(parse_topics([]))
    assert everything.wants(alloc) and everything.wants(node) and not everything.wants(other_ns)
    assert Subscription(parse_topics([]), "*").wants(other_ns)
    by_job = Subscription(parse_topics(["Allocation:web"]))
    assert by_job.wants(alloc) and not by_job.wants(node)
    assert not Subscription(parse_topics(["Allocation:api"])).wants(alloc)
    assert Subscription(parse_topics(["Node", "Job:api"]), "prod").wants(node)  # nodes pass any namespace
    assert Subscription(parse_topics(["Node", "Job:api"]), "prod").wants(other_ns)
    assert parse_topics(["Node", "Node:n1", "Job:x"]) == (("Node", ("*", "n1")), ("Job", ("x",)))
    for bad in ("a:b:c", ":x"):
        with pytest.raises(ValueError, match="Invalid key value pair"):
            parse_topics([bad])


def test_a_frame_is_one_json_line_in_nomads_shape():
    st = _store()
    st.apply(1, command("node_register", node=NODE, now=1.0))
    b = _last(st)
    line = frame(b.index, list(b.events))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    got = json.loads(line)
    assert got["Index"] == 1
    e = got["Events"][0]
    assert set(e) == {"Topic", "Type", "Key", "Namespace", "FilterKeys", "Index", "Payload"}
    assert e["FilterKeys"] is None and e["Payload"]["Node"]["Name"] == "n1"


# ---------------------------------------------------------------- over HTTP, on a real agent

from tests.test_http_jobs import call, dev, sleep_job  # noqa: E402,F401


class _Lines:
    """A raw HTTP/1.1 GET whose chunked body is read line by line, with a deadline."""

    def __init__(self, port: int, path: str, token: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        extra = f"X-Nomad-Token: {token}\r\n" if token else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode()
        self.body = b""

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            got = self.sock.recv(65536)
            if not got:
                raise EOFError(self.buf[-200:])
            self.buf += got
        out, self.buf = self.buf.split(sep, 1)
        return out

    def line(self) -> bytes:
        while b"\n" not in self.body:
            size = int(self._until(b"\r\n"), 16)
            if size == 0:
                raise EOFError("stream ended")
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            self.body += self.buf[:size]
            self.buf = self.buf[size + 2:]
        out, self.body = self.body.split(b"\n", 1)
        return out

    def events_until(self, pred: Any, deadline_s: float = 20.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            msg = json.loads(self.line())
            seen.extend(msg.get("Events", []))
            if pred(seen):
                return seen
        raise AssertionError(f"not seen within {deadline_s}s: {[(e['Topic'], e['Type']) for e in seen]}")

    def close(self) -> None:
        self.sock.close()


def test_the_stream_sends_a_jobs_life_as_nomad_events(dev):  # noqa: F811
    s = _Lines(dev.http_port, "/v1/event/stream?index=0")
    try:
        assert s.status == 200 and "application/json" in s.head
        # From index 0: what the buffer holds, the node's registration first.
        seen = s.events_until(lambda ev: any(e["Type"] == "NodeRegistration" for e in ev))
        assert seen[0]["Topic"] == "Node" and seen[0]["Namespace"] == ""
        r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ev-life")})
        assert r.status == 200, r.text
        seen = s.events_until(lambda ev: any(e["Topic"] == "Allocation" and e["Type"] == "AllocationUpdated"
                                             and e["Payload"]["Allocation"]["ClientStatus"] == "running"
                                             for e in ev))
        kinds = [(e["Topic"], e["Type"]) for e in seen if "ev-life" in (e["Key"], *(e["FilterKeys"] or ()))]
        assert kinds[:2] == [("Job", "JobRegistered"), ("Evaluation", "JobRegistered")]
        assert ("Allocation", "PlanResult") in kinds
        alloc = next(e for e in seen if e["Topic"] == "Allocation")["Payload"]["Allocation"]
        assert alloc["Job"] is None and alloc["JobID"] == "ev-life"  # sent without its job, as Nomad's
        assert all(e["Index"] > 0 for e in seen)
    finally:
        s.close()
    assert call(dev.http_port, "DELETE", "/v1/job/ev-life?purge=true").status == 200


def test_a_topic_key_keeps_one_jobs_events_and_index_skips_what_came_before(dev):  # noqa: F811
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ev-other", count=0)})
    assert r.status == 200
    after = int(r.json()["Index"]) + 1
    s = _Lines(dev.http_port, f"/v1/event/stream?index={after}&topic=Job:ev-mine&topic=Evaluation:ev-mine")
    try:
        again = sleep_job("ev-other", count=0, Priority=60)
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": again}).status == 200
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ev-mine", count=0)}).status == 200
        seen = s.events_until(lambda ev: any(e["Topic"] == "Evaluation" for e in ev))
        assert {e["Topic"] for e in seen} <= {"Job", "Evaluation"}
        assert all(e["Key"] == "ev-mine" or "ev-mine" in (e["FilterKeys"] or ()) for e in seen)
        assert all(e["Index"] >= after for e in seen)
    finally:
        s.close()
    for j in ("ev-mine", "ev-other"):
        call(dev.http_port, "DELETE", f"/v1/job/{j}?purge=true")


def test_an_index_newer_than_every_kept_write_starts_at_the_newest_not_at_that_index(dev):  # noqa: F811
    # Nomad's EventBroker.Subscribe (StartAtClosest): a reader resuming with an index this server has not
    # reached (its state was rebuilt: a -dev agent restarted) gets the newest kept write and every later
    # one, not silence until the cluster's index catches up with it.
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ev-future", count=0)})
    assert r.status == 200
    far = int(r.json()["Index"]) + 1_000_000
    s = _Lines(dev.http_port, f"/v1/event/stream?index={far}&topic=Job:ev-future")
    try:
        again = sleep_job("ev-future", count=0, Priority=60)
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": again}).status == 200
        seen = s.events_until(lambda ev: any(e["Type"] == "JobRegistered"
                                             and e["Payload"]["Job"]["Priority"] == 60 for e in ev))
        assert all(e["Index"] < far for e in seen)
    finally:
        s.close()
    call(dev.http_port, "DELETE", "/v1/job/ev-future?purge=true")


def test_a_stream_gets_a_heartbeat_at_once_and_every_30s_events_or_not(monkeypatch):
    """Nomad's Event.Stream (NewJsonStream(ctx, 30*time.Second)): "{}" as the stream opens, before any
    event, then on a 30 s ticker whether events came or not; on a clock of its own, each blocking watch
    of the state answering at its timeout, one event at 12 s."""
    from types import SimpleNamespace

    from actors import http_events
    from actors.state.events import Event

    clock = [0.0]
    waits: list[float] = []
    job = Event("Job", "JobRegistered", "web", "default", (), 7, {})

    def watch(api: Any, ref: Any, start: int, wait_s: float, sid: int) -> tuple[int, list[Any], bool]:
        waits.append(wait_s)
        clock[0] += wait_s
        if clock[0] == 20.0:  # the second watch (10 s to 20 s) gets an event
            return 7, [Batch(index=7, events=(job,))], False
        return start, [], False
    monkeypatch.setattr(http_events, "_watch", watch)
    monkeypatch.setattr(http_events, "_forget", lambda api, ref, sid: None)
    api = SimpleNamespace(env=SimpleNamespace(now=lambda: clock[0]), ctx=SimpleNamespace(acl_enabled=False))
    stream = http_events._stream(None, api, None, Subscription(parse_topics([]), "default"), 1, 0, [])
    got: list[tuple[float, bytes]] = []
    for line in stream:
        got.append((clock[0], line))
        if len(got) == 4:
            break
    stream.close()
    assert [(at, line == http_events.HEARTBEAT_LINE) for at, line in got] == [
        (0.0, True), (20.0, False), (30.0, True), (60.0, True)]
    assert json.loads(got[1][1])["Index"] == 7
    assert max(waits) == http_events.EVENT_WATCH_S == 10.0 and http_events.EVENT_HEARTBEAT_S == 30.0


def test_a_stream_whose_raft_stopped_ends_without_a_traceback():
    """Raft gone under an open stream (the agent stopping, or Raft being restarted): the stream
    ends and the caller reconnects; the stopped actor's ActorDeadError was raised into pywsgi."""
    from types import SimpleNamespace

    import pykka

    from actors.http_events import _stream

    ref = pykka.ThreadingActor.start()
    ref.stop()
    api = SimpleNamespace(env=SimpleNamespace(now=time.monotonic, make_future=pykka.ThreadingFuture),
                          ctx=SimpleNamespace(acl_enabled=False))
    # The heartbeat that opens every stream, then the end.
    assert list(_stream(None, api, ref, Subscription(parse_topics([]), "default"), 1, 0, [])) == [b"{}\n"]


def test_bad_stream_requests_get_nomads_errors_and_the_agent_keeps_serving(dev):  # noqa: F811
    port = dev.http_port
    r = call(port, "GET", "/v1/event/stream?index=abc")
    assert r.status == 400 and "Unable to parse index" in r.text
    r = call(port, "GET", "/v1/event/stream?index=-1")
    assert r.status == 400
    for index in ("1_0", "%203", "%D9%A3", "18446744073709551616"):  # int() took the first three
        r = call(port, "GET", f"/v1/event/stream?index={index}")
        assert r.status == 400 and "Unable to parse index" in r.text, index
    r = call(port, "GET", "/v1/event/stream?topic=Node:a:b")
    assert r.status == 400 and "Invalid topic query" in r.text
    assert call(port, "PUT", "/v1/event/stream").status == 405
    assert call(port, "GET", "/v1/agent/health").status == 200


def test_python_nomad_streams_events_as_a_user_would(dev):  # noqa: F811
    import nomad

    n = nomad.Nomad(host="127.0.0.1", port=dev.http_port, timeout=20)
    thread, stop, events = n.event.stream.get_stream(index=0, topic={"Node": "*"})
    thread.daemon = True
    thread.start()
    try:
        got = events.get(timeout=15)
        assert got["Events"] and got["Events"][0]["Topic"] == "Node"
    finally:
        stop.set()
    # The library's thread looks at its stop flag after each message: a
    # node write gives it one, and it returns.
    node = call(dev.http_port, "GET", "/v1/nodes").json()[0]["ID"]
    for elig in ("ineligible", "eligible"):
        r = call(dev.http_port, "PUT", f"/v1/node/{node}/eligibility", {"NodeID": node, "Eligibility": elig})
        assert r.status == 200, r.text
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_a_server_with_the_event_broker_off_says_so(tmp_path):
    from tests.test_agent_process import AgentProc
    from tests.test_http_jobs import dev_agent_config

    args, port = dev_agent_config(tmp_path)
    cfg = tmp_path / "events-off.toml"
    cfg.write_text("[server]\nenable_event_broker = false\n")
    agent = AgentProc([*args, "-config", str(cfg)])
    agent.http_port = port
    try:
        agent.wait_healthy()
        r = call(port, "GET", "/v1/event/stream")
        assert (r.status, r.text) == (400, "event broker is disabled")
        assert call(port, "GET", "/v1/agent/health").status == 200
    finally:
        agent.kill()
