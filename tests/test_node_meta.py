"""Dynamic node metadata: the pure rules, the file store, and (in the simulator) the node on the servers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from actors.client.node import ApplyNodeMeta, ClientNodeConfig, ReadNodeMeta
from actors.client.node_meta import (
    FileMetaStore,
    MemoryMetaStore,
    MetaStoreError,
    apply_changes,
    decode_changes,
    dynamic_size,
    merged,
    meta_response,
    validate_changes,
    without_stale_unsets,
)
from sim.client_cluster import CLIENT, ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

# ------------------------------------------------------------ the rules


def test_validation_takes_dotted_hcl_identifiers_only_with_nomads_messages():
    assert validate_changes({}) == "missing required Meta object"
    assert validate_changes({"": "x"}) == "metadata keys must not be empty"
    for good in ("a", "rack", "_x", "a.b.c", "node-role", "a1.b_2", "ünï"):
        assert validate_changes({good: "v"}) == "", good
    for bad in ("a..b", ".a", "a.", "1abc", "-a", "a b", "a/b", "a$", "x.1y"):
        assert validate_changes({bad: "v"}) == \
            f'"{bad}" is invalid; metadata keys must be valid dotted hcl identifiers', bad
    assert validate_changes({"ok": None, "also_ok": "1"}) == ""


def test_changes_copy_over_the_dynamic_map_and_a_null_hides_a_static_key():
    static = {"rack": "r1", "zone": "z1"}
    dyn = apply_changes({}, {"role": "db", "rack": None})
    assert dyn == {"rack": None, "role": "db"}
    assert merged(static, dyn) == {"role": "db", "zone": "z1"}
    dyn = apply_changes(dyn, {"rack": "r9", "role": None})
    assert dyn == {"rack": "r9", "role": None}
    assert merged(static, dyn) == {"rack": "r9", "zone": "z1"}
    assert meta_response(static, dyn) == {"Meta": {"rack": "r9", "zone": "z1"},
                                          "Dynamic": {"rack": "r9", "role": None},
                                          "Static": {"rack": "r1", "zone": "z1"}}


def test_decoding_a_request_meta_refuses_what_go_would_not_decode():
    assert decode_changes({"a": "1", "b": None}) == {"a": "1", "b": None}
    assert decode_changes(None) == {}
    for bad, kind in (({"a": 1}, "number"), ({"a": True}, "bool"), ({"a": ["x"]}, "array")):
        try:
            decode_changes(bad)
        except ValueError as e:
            assert f"cannot unmarshal {kind}" in str(e)
        else:
            raise AssertionError(bad)
    try:
        decode_changes(["a"])
    except ValueError as e:
        assert "cannot unmarshal array" in str(e)


def test_file_store_round_trips_nulls_privately_and_refuses_a_corrupt_file(tmp_path):
    d = tmp_path / "client"
    store = FileMetaStore(str(d))
    assert store.load() == {}
    store.save({"b": None, "a": "x ü"})
    assert FileMetaStore(str(d)).load() == {"a": "x ü", "b": None}
    path = d / "node-meta.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text()) == {"a": "x ü", "b": None}
    # Unreadable: the client does not start without it (Nomad: "error reading dynamic node
    # metadata"), rather than drop keys its jobs are placed by.
    for bad in ("{not json", "[1, 2]", '{"k": 5}'):
        path.write_text(bad)
        with pytest.raises(MetaStoreError, match="error reading dynamic node metadata"):
            FileMetaStore(str(d)).load()


def test_unsets_of_keys_without_a_static_value_are_forgotten_and_count_nothing():
    assert without_stale_unsets({"s": "1"}, {"s": None, "gone": None, "k": "v"}) == {"s": None, "k": "v"}
    assert dynamic_size({"k": "v", "gone": None}) == 2
    # A run of sets and unsets does not fill the map up.
    dyn: dict = {}
    for i in range(5000):
        dyn = apply_changes(dyn, {f"deploy.release_{i}": "x" * 8})
        dyn = apply_changes(dyn, {f"deploy.release_{i}": None})
    assert dynamic_size(dyn) == 0


def test_a_lone_surrogate_becomes_the_replacement_character_as_in_go():
    assert decode_changes({"k": "a\ud800b"}) == {"k": "a\ufffdb"}


def test_config_bounds_the_dynamic_meta():
    try:
        ClientNodeConfig(dynamic_meta_max_bytes=0)
    except ValueError as e:
        assert "dynamic_meta_max_bytes" in str(e)
    else:
        raise AssertionError("accepted 0")


# ------------------------------------------------------------ the simulator: ClientNode and the servers


def _cluster(seed: int) -> JobCluster:
    from dataclasses import replace

    base = ClusterConfig(n_servers=3, n_clients=3)
    base = replace(base, client=replace(base.client, meta=(("rack", "r1"),)))
    return JobCluster(seed, JobClusterConfig(base=base))


def _ask(c: JobCluster, client: str, msg: object) -> object:
    return c.sched.nodes[client].actors[CLIENT].ask(msg)


def test_a_meta_change_reaches_the_servers_node_record_and_survives_a_client_crash():
    c = _cluster(5)
    c.run(30.0)
    x = c.clients[0]
    nid = c.node_id(x)
    assert c.nodes()[nid]["Meta"] == {"rack": "r1"}
    err, resp = _ask(c, x, ApplyNodeMeta((("rack", None), ("role", "db"))))
    assert err == ""
    assert resp == {"Meta": {"role": "db"}, "Dynamic": {"rack": None, "role": "db"}, "Static": {"rack": "r1"}}
    c.run(12.0)  # the node-update debounce: 5 s + a stagger of up to 5 s
    assert c.nodes()[nid]["Meta"] == {"role": "db"}
    assert c.meta_stores[x].data == {"rack": None, "role": "db"}
    # Refused changes change nothing.
    err, resp = _ask(c, x, ApplyNodeMeta((("bad key", "v"),)))
    assert err == 'invalid: "bad key" is invalid; metadata keys must be valid dotted hcl identifiers'
    assert resp is None
    err, _ = _ask(c, x, ApplyNodeMeta((("big", "x" * 70_000),)))
    assert err.startswith("invalid: dynamic node metadata too large")
    # A restarted client loads it, and registers with it.
    c.crash(x)
    c.run(2.0)
    c.restart(x)
    c.run(10.0)
    assert _ask(c, x, ReadNodeMeta())["Meta"] == {"role": "db"}
    assert c.nodes()[nid]["Meta"] == {"role": "db"}
    assert c.nodes()[c.node_id(c.clients[1])]["Meta"] == {"rack": "r1"}
    c.close()


def test_a_job_constrained_on_meta_is_placed_once_the_meta_is_applied():
    c = _cluster(6)
    c.run(30.0)
    job = sim_job("db", count=1, cpu=100,
                  Constraints=[{"LTarget": "${meta.role}", "RTarget": "db", "Operand": "="}])
    c.register(job)
    c.run(15.0)
    assert [a for a in c.allocs("db") if a["DesiredStatus"] == "run"] == []
    target = c.clients[2]
    err, _ = _ask(c, target, ApplyNodeMeta((("role", "db"),)))
    assert err == ""
    c.run(30.0)
    placed = [a for a in c.allocs("db") if a["DesiredStatus"] == "run"]
    assert [a["NodeID"] for a in placed] == [c.node_id(target)]
    assert c.converged() == []
    c.close()


def test_memory_store_is_what_the_simulator_keeps():
    s = MemoryMetaStore()
    s.save({"a": None})
    assert s.load() == {"a": None}


def test_a_changed_ready_node_is_evaluated_only_by_entries_that_ask_for_it():
    """node_register with node_evals: a placement change of a ready node evaluates; older entries do not."""
    from actors.state.store import StateStore, command

    def store() -> StateStore:
        st = StateStore()
        ready = {"ID": "n1", "Meta": {"a": "1"}, "Status": "ready"}
        st.apply(1, command("node_register", node=ready, now=1.0))
        st.apply(2, command("upsert", table="evals", record={
            "ID": "blocked-1", "Namespace": "default", "JobID": "j", "Type": "service", "Status": "blocked"}))
        st.evals_by_status["blocked"].add("blocked-1")
        return st

    st = store()
    same = st.apply(3, command("node_register", node={"ID": "n1", "Meta": {"a": "1"}}, now=2.0,
                               node_evals=True))
    assert same["EvalIDs"] == []
    changed = st.apply(4, command("node_register", node={"ID": "n1", "Meta": {"a": "2"}}, now=3.0,
                                  node_evals=True))
    assert changed["EvalIDs"] == ["blocked-1"]
    assert st.tables["evals"]["blocked-1"]["Status"] == "pending"
    old = store()
    unasked = old.apply(3, command("node_register", node={"ID": "n1", "Meta": {"a": "2"}}, now=2.0))
    assert unasked["EvalIDs"] == []
    assert old.tables["evals"]["blocked-1"]["Status"] == "blocked"


def test_acl_reading_needs_node_read_and_changing_node_write():
    from actors import acl

    assert acl.required("GET", "/v1/client/metadata") == (acl.Need("node", acl.READ),)
    for method in ("POST", "PUT"):
        assert acl.required(method, "/v1/client/metadata") == (acl.Need("node", acl.WRITE),)


def test_a_change_while_registration_backs_off_waits_for_the_retry():
    """A client whose registration failed retries after its backoff; meta applied meanwhile rides
    on that retry instead of each apply starting a registration of its own."""
    c = _cluster(7)
    c.run(30.0)
    x = c.clients[0]
    c.crash(x)
    c.partition_clients([x])
    c.restart(x)
    node = c.actor(x, CLIENT)
    c.run(30.0)  # its registration attempts time out: it backs off
    assert not node.registered and node.timer_armed("register")
    sent = node._next_req
    for i in range(10):
        err, _ = _ask(c, x, ApplyNodeMeta(((f"k{i}", "v"),)))
        assert err == ""
    assert node._next_req == sent  # no registration started by the applies
    c.heal()
    c.run(60.0)
    assert node.registered and c.nodes()[c.node_id(x)]["Meta"]["k9"] == "v"
    c.close()
