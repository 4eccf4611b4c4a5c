"""Variable locks (Nomad 1.7): the state machine's rules, the leader's expiry of unrenewed locks,
``PUT /v1/var/<path>?lock-acquire|lock-renew|lock-release`` and ``nomad var lock``."""

from __future__ import annotations

import select
import subprocess
import sys
import time

import pytest

from actors.state import variables as v
from actors.state.store import StateStore, command

pytestmark = pytest.mark.timeout(180)

S = 1_000_000_000
T0 = 1_700_000_000.0


def _apply(st: StateStore, op: str, **args) -> dict:
    return st.apply(st.applied_index + 1, command(op, **args))


def _acquire(st: StateStore, lock_id: str, now: float = T0, path: str = "lk", **kw) -> dict:
    args = {"namespace": "default", "path": path, "items": {}, "lock_id": lock_id, "ttl": 10 * S,
            "delay": 5 * S, "now": now, **kw}
    return _apply(st, "var_lock_acquire", **args)


# ---------------------------------------------------------------- the state machine


def test_a_held_lock_refuses_another_acquirer_writer_and_deleter_but_not_its_holder():
    st = StateStore()
    got = _acquire(st, "A", items={"k": "1"})
    assert got["ok"] and got["var"]["Lock"] == {"ID": "A", "TTL": 10 * S, "LockDelay": 5 * S}
    other = _acquire(st, "B")
    assert not other["ok"] and other["conflict"]["Path"] == "lk" and other["conflict"]["Items"] is None
    assert "Lock" not in other["conflict"]  # the conflict shows nothing of the holder's lock
    assert not _apply(st, "var_set", namespace="default", path="lk", items={"k": "2"}, now=T0)["ok"]
    assert not _apply(st, "var_delete", namespace="default", path="lk")["ok"]
    mine = _apply(st, "var_set", namespace="default", path="lk", items={"k": "2"}, now=T0, lock_id="A")
    assert mine["ok"] and mine["var"]["Lock"]["ID"] == "A"  # the holder's write keeps its lock
    assert v.metadata(st.tables[v.TABLE]["default/lk"])["Lock"]["ID"] == "A"
    # Release: a wrong ID is a conflict; the holder's frees it and keeps the items.
    wrong = _apply(st, "var_lock_release", namespace="default", path="lk", lock_id="B", now=T0)
    assert not wrong["ok"] and wrong["conflict"]["Lock"] == {"ID": "", "TTL": 0, "LockDelay": 0}
    freed = _apply(st, "var_lock_release", namespace="default", path="lk", lock_id="A", now=T0)
    assert freed["ok"] and "Lock" not in st.tables[v.TABLE]["default/lk"]
    assert st.tables[v.TABLE]["default/lk"]["Items"] == {"k": "2"} and st.tables[v.LOCKS_TABLE] == {}
    again = _apply(st, "var_lock_release", namespace="default", path="lk", lock_id="A", now=T0)
    assert (again["ok"], again["code"], again["error"]) == (False, 409, "variable doesn't hold a lock")
    assert _acquire(st, "B")["ok"]  # free now


def test_renewal_needs_the_holders_id_and_a_live_lease_and_expiry_waits_out_the_lock_delay():
    st = StateStore()
    assert _acquire(st, "A")["ok"]  # TTL 10 s: lost after 20 s unrenewed, freed 5 s later
    bad = _apply(st, "var_lock_renew", namespace="default", path="lk", lock_id="B", now=T0 + 1)
    assert (bad["ok"], bad["code"], bad["error"]) == (False, 409, "attempting to modify locked variable")
    missing = _apply(st, "var_lock_renew", namespace="default", path="none", lock_id="A", now=T0 + 1)
    assert (missing["code"], missing["error"]) == (404, "variable not found")
    ok = _apply(st, "var_lock_renew", namespace="default", path="lk", lock_id="A", now=T0 + 15)
    assert ok["ok"] and ok["var"]["Lock"]["ID"] == "A"
    modify = st.tables[v.TABLE]["default/lk"]["ModifyIndex"]
    assert modify == 1  # a renewal does not change the variable
    assert v.leases(st.tables) == {"default/lk": T0 + 15 + 20 + 5}
    # Lost at T0+35: a late renewal is refused, but nobody else takes it until the delay is over.
    late = _apply(st, "var_lock_renew", namespace="default", path="lk", lock_id="A", now=T0 + 36)
    assert not late["ok"] and late["code"] == 409
    assert not _acquire(st, "B", now=T0 + 37)["ok"]
    assert _apply(st, "var_lock_expire", now=T0 + 39)["freed"] == []
    assert _apply(st, "var_lock_expire", now=T0 + 40)["freed"] == ["default/lk"]
    assert "Lock" not in st.tables[v.TABLE]["default/lk"] and st.tables[v.LOCKS_TABLE] == {}
    assert _acquire(st, "B", now=T0 + 41)["ok"]


@pytest.mark.parametrize("ttl,delay,why", [
    (9 * S, 5 * S, "TTL must be between 10 seconds and 24 hours"),
    (25 * 3600 * S, 5 * S, "TTL must be between 10 seconds and 24 hours"),
    (10 * S, -1, "Lock delay and TTL must be positive"),
])
def test_a_lock_outside_nomads_bounds_is_refused(ttl, delay, why):
    st = StateStore()
    r = _acquire(st, "A", ttl=ttl, delay=delay)
    assert not r["ok"] and why in r["error"] and r["error"].startswith("1 error occurred:")
    assert st.tables[v.TABLE] == {}


def test_locks_survive_a_snapshot_and_deleting_a_free_variable_drops_nothing_else():
    st = StateStore()
    assert _acquire(st, "A")["ok"]
    again = StateStore()
    again.restore(st.snapshot(), st.applied_index)
    assert again.tables[v.LOCKS_TABLE]["default/lk"]["ID"] == "A"
    assert not _acquire(again, "B")["ok"]


# ---------------------------------------------------------------- the leader's expiry (simulated cluster)


def test_the_leader_frees_an_unrenewed_lock_after_twice_its_ttl_and_the_delay_even_after_failover():
    from actors.server.var_locks import VAR_LOCKS, VarLockConfig
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig

    cfg = JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=1), var_locks=VarLockConfig())
    c = JobCluster(3, cfg)
    c.run(20.0)
    now = c.sched.now
    for path, lock_id in (("a", "A"), ("b", "B")):
        _, r = c.propose(command("var_lock_acquire", namespace="default", path=path, items={},
                                 lock_id=lock_id, ttl=10 * S, delay=5 * S, now=now))
        assert r["ok"], r
    c.run(15.0)
    _, r = c.propose(command("var_lock_renew", namespace="default", path="b", lock_id="B", now=c.sched.now))
    assert r["ok"], r
    c.run(8.0)  # +23: "a" was lost at +20 (2 * TTL) but is held through its lock delay, to +25
    assert sorted(c.checker.replica.tables[v.LOCKS_TABLE]) == ["default/a", "default/b"]
    c.run(4.0)  # +27: "a" freed; "b", renewed at +15, lasts to +40
    assert sorted(c.checker.replica.tables[v.LOCKS_TABLE]) == ["default/b"]
    assert "Lock" not in c.checker.replica.tables[v.TABLE]["default/a"]
    assert c.actor(c.leader(), VAR_LOCKS).expired == ["default/a"]
    # The leader fails: the new one frees "b" from the lease in the state.
    c.crash(c.leader())
    c.run(20.0)
    assert c.checker.replica.tables[v.LOCKS_TABLE] == {}
    assert "Lock" not in c.checker.replica.tables[v.TABLE]["default/b"]
    c.close()


# ---------------------------------------------------------------- over HTTP and the CLI

from tests.test_agent_process import wait_for  # noqa: E402
from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev  # noqa: E402,F401


def test_the_lock_endpoints_answer_as_nomads(dev):  # noqa: F811
    port = dev.http_port
    r = call(port, "PUT", "/v1/var/locks/one?lock-acquire", {"Items": {"k": "v"}, "Lock": {"TTL": "12s"}})
    assert r.status == 200, r.text
    held = r.json()
    assert (held["Lock"]["TTL"], held["Lock"]["LockDelay"], len(held["Lock"]["ID"])) == ("12s", "15s", 36)
    lock_id = held["Lock"]["ID"]
    # Another acquirer, writer or deleter gets a 409 with the bare variable.
    other = call(port, "PUT", "/v1/var/locks/one?lock-acquire", {})
    assert other.status == 409 and other.json()["Path"] == "locks/one" and "Lock" not in other.json()
    assert call(port, "PUT", "/v1/var/locks/one", {"Items": {"x": "y"}}).status == 409
    assert call(port, "DELETE", "/v1/var/locks/one").status == 409
    # Reads show the lock (ACLs off: everyone is management, as in Nomad); lists too.
    assert call(port, "GET", "/v1/var/locks/one").json()["Lock"]["ID"] == lock_id
    assert call(port, "GET", "/v1/vars?prefix=locks/").json()[0]["Lock"]["ID"] == lock_id
    renew = call(port, "PUT", "/v1/var/locks/one?lock-renew", {"Lock": {"ID": lock_id}})
    assert renew.status == 200 and renew.json()["Lock"]["ID"] == lock_id
    bad = call(port, "PUT", "/v1/var/locks/one?lock-renew", {"Lock": {"ID": "nope"}})
    assert (bad.status, bad.text) == (409, "attempting to modify locked variable")
    r = call(port, "PUT", "/v1/var/locks/one?lock-renew", {})
    assert r.status == 400 and "missing lock ID" in r.text
    # Nomad's refusals.
    r = call(port, "PUT", "/v1/var/locks/one?lock-acquire&lock-renew", {})
    assert (r.status, r.text) == (400, "multiple lock operations")
    r = call(port, "PUT", "/v1/var/locks/one?lock-acquire&cas=3", {})
    assert (r.status, r.text) == (400, "CAS can't be used with lock operations")
    r = call(port, "PUT", "/v1/var/locks/two?lock-acquire", {"Lock": {"TTL": "1s"}})
    assert r.status == 400 and "TTL must be between 10 seconds and 24 hours" in r.text
    r = call(port, "PUT", "/v1/var/locks/one", {"Items": {"a": "b"}, "Lock": {"TTL": "20s"}})
    assert (r.status, r.text) == (400, "variable should not contain lock definition")
    assert call(port, "PUT", "/v1/var/locks/one?lock-release", {}).text == "missing lock information"
    # The holder writes (its ID in the body), then releases; the items stay.
    mine = call(port, "PUT", "/v1/var/locks/one", {"Items": {"x": "y"}, "Lock": {"ID": lock_id}})
    assert mine.status == 200 and mine.json()["Lock"]["ID"] == lock_id
    rel = call(port, "PUT", "/v1/var/locks/one?lock-release", {"Lock": {"ID": lock_id}})
    assert rel.status == 200 and "Lock" not in rel.json()
    got = call(port, "GET", "/v1/var/locks/one").json()
    assert got["Items"] == {"x": "y"} and "Lock" not in got
    r = call(port, "PUT", "/v1/var/locks/one?lock-release", {"Lock": {"ID": lock_id}})
    assert (r.status, r.text) == (409, "variable doesn't hold a lock")
    assert call(port, "DELETE", "/v1/var/locks/one").status == 204


def _nomad(port: int, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_var_lock_runs_the_child_holding_the_lock_and_a_second_one_waits(dev, tmp_path):  # noqa: F811
    port = dev.http_port
    gate = tmp_path / "gate"
    first = _nomad(port, "var", "lock", "-ttl=10s", "cli/lock", "sh", "-c",
                   f"'echo first; while [ ! -e {gate} ]; do sleep 0.05; done'")
    wait_for(lambda: _locked(port, "cli/lock") or first.poll() is not None, "the first holding the lock", 20)
    assert first.poll() is None, first.communicate()
    # The second waits (early-return: gives up at once, exit 0, without running its child).
    second = _nomad(port, "var", "lock", "-early-return", "-ttl=10s", "cli/lock", "echo", "second")
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0 and "second" not in out, err
    # A waiter retries while the first holds the lock (it says so with -verbose): its child runs only
    # after the first's ended (the gate exists by then; had it run before, it would print nothing).
    waiter = _nomad(port, "var", "lock", "-verbose", "-ttl=10s", "-backoff=200ms", "cli/lock", "test", "-e",
                    str(gate), "&&", "echo", "third")
    seen = []
    deadline = time.monotonic() + 30
    while not any("held by another" in line for line in seen):
        ready, _, _ = select.select([waiter.stderr], [], [], max(0.0, deadline - time.monotonic()))
        assert ready and waiter.poll() is None, seen
        seen.append(waiter.stderr.readline())
    gate.write_text("")
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0 and out.strip() == "first", err
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and out.strip() == "third", err
    got = call(port, "GET", "/v1/var/cli/lock").json()
    assert "Lock" not in got  # released on exit
    failing = _nomad(port, "var", "lock", "-ttl=10s", "cli/lock", "exit", "3")
    out, err = failing.communicate(timeout=30)
    assert failing.returncode == 1 and "Lock error:" in err
    assert not _locked(port, "cli/lock")


def _locked(port: int, path: str) -> bool:
    r = call(port, "GET", f"/v1/var/{path}")
    return r.status == 200 and "Lock" in r.json()


# ---------------------------------------------------------------- with ACLs (in process)


def test_with_acls_lock_operations_need_write_and_only_management_reads_see_the_lock():
    from actors.acl import Need, required
    from tests.test_acl_roles import _token
    from tests.test_acl_roles import call as acl_call

    assert required("PUT", "/v1/var/app/lock") == (Need("variable", "write", "default", "app/lock"),)
    assert required("PUT", "/v1/job/web/versions/golden/tag") == \
        (Need("namespace", "submit-job|tag-job-version", "default"),)
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("root", "root-secret", "management"), now=1.0))
    rules = 'namespace "default" { variables { path "app/*" { capabilities = ["write"] } } }'
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "vars", "Rules": rules}]))
    st.apply(3, command("acl_token_upsert", tokens=[_token("dev", "dev-secret", policies=("vars",))]))
    code, held = acl_call(st, "PUT", "/v1/var/app/lock?lock-acquire", "dev-secret", {"Items": {"k": "v"}})
    assert code == 200 and held["Lock"]["ID"]  # the holder is answered its lock
    code, read = acl_call(st, "GET", "/v1/var/app/lock", "dev-secret")
    assert code == 200 and "Lock" not in read and read["Items"] == {"k": "v"}
    code, listed = acl_call(st, "GET", "/v1/vars", "dev-secret")
    assert code == 200 and "Lock" not in listed[0]
    code, read = acl_call(st, "GET", "/v1/var/app/lock", "root-secret")
    assert code == 200 and read["Lock"]["ID"] == held["Lock"]["ID"]
    assert acl_call(st, "GET", "/v1/vars", "root-secret")[1][0]["Lock"]["ID"] == held["Lock"]["ID"]
