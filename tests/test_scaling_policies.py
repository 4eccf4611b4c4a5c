"""Group ``scaling`` blocks: HCL and JSON validation, the replicated scaling policies (register,
update, stop, purge, GC, snapshot restore, replay), ``job scale`` bounds, ``/v1/scaling/...`` and
``nomad scaling policy list|info``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from actors.scheduler.job import JobError, canonical_job
from actors.state import scaling
from actors.state.store import StateStore, command
from runtime.hcl_job import HclJobError, parse_hcl_job

pytestmark = pytest.mark.timeout(180)

HCL = '''
job "web" {
  group "g" {
    count = 3
    scaling {
      enabled = false
      min     = 1
      max     = 10
      policy {
        cooldown = "1m"
        evaluation_interval = "30s"
      }
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
'''


def _hcl(scaling_body: str, count: int = 3) -> str:
    return HCL.replace(HCL[HCL.index("    scaling {"):HCL.index("    task")], scaling_body).replace(
        "count = 3", f"count = {count}")


# ------------------------------------------------------------ job files and JSON
def test_a_scaling_block_maps_onto_nomads_json_with_its_defaults() -> None:
    job = parse_hcl_job(HCL)
    assert job["TaskGroups"][0]["Scaling"] == {"Enabled": False, "Min": 1, "Max": 10,
                                               "Policy": {"cooldown": "1m", "evaluation_interval": "30s"}}
    sc = canonical_job(job)["TaskGroups"][0]["Scaling"]
    assert sc == {"Type": "horizontal", "Target": {"Namespace": "default", "Job": "web", "Group": "g"},
                  "Min": 1, "Max": 10, "Enabled": False,
                  "Policy": {"cooldown": "1m", "evaluation_interval": "30s"}}
    # Enabled defaults to true, Min to the group's count, Policy to none (Nomad's ApiScalingPolicyToStructs).
    sc = canonical_job(parse_hcl_job(_hcl("    scaling {\n max = 5\n }\n")))["TaskGroups"][0]["Scaling"]
    assert (sc["Enabled"], sc["Min"], sc["Max"], sc["Policy"]) == (True, 3, 5, None)


def test_a_group_without_a_count_starts_at_its_policys_min() -> None:
    job = _job({"Min": 2, "Max": 5})
    del job["TaskGroups"][0]["Count"]
    assert canonical_job(job)["TaskGroups"][0]["Count"] == 2  # Nomad's TaskGroup.Canonicalize
    job["TaskGroups"][0]["Scaling"] = {"Max": 5}
    assert canonical_job(job)["TaskGroups"][0]["Count"] == 1


@pytest.mark.parametrize(("body", "error"), [
    ("    scaling {\n min = 1\n }\n", 'Missing required argument: The argument "max" is required'),
    ("    scaling {\n max = 1\n cooldown = 3\n }\n", "'cooldown' not supported by this agent"),
])
def test_hcl_refuses_a_scaling_block_without_max_or_with_unknown_keys(body: str, error: str) -> None:
    with pytest.raises(HclJobError, match=re.escape(error)):
        parse_hcl_job(_hcl(body))


def _job(sc: Any, count: int = 3) -> dict[str, Any]:
    return {"ID": "web", "TaskGroups": [{"Name": "g", "Count": count, "Scaling": sc, "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]}


FAIL = "TaskGroups[0].Scaling: Task group scaling policy validation failed: Scaling policy invalid: "


@pytest.mark.parametrize(("sc", "count", "error"), [
    ({"Min": 1}, 1, FAIL + "maximum count must be specified and non-negative"),
    ({"Min": 1, "Max": -2}, 1, FAIL + "maximum count must be specified and non-negative"),
    ({"Min": 5, "Max": 4}, 4, FAIL + "maximum count must not be less than minimum count"),
    ({"Min": -1, "Max": 4}, 1, FAIL + "minimum count must be specified and non-negative"),
    ({"Min": 1, "Max": 2}, 3,
     FAIL + "task group count must not be greater than maximum count in scaling policy"),
    ({"Min": 2, "Max": 5}, 1,
     FAIL + "task group count must not be less than minimum count in scaling policy"),
    ({"Max": 5, "Type": "vertical_cpu"}, 1, FAIL + 'scaling policy type "vertical_cpu" is not valid'),
    ({"Max": 5, "Enabled": "yes"}, 1, "TaskGroups[0].Scaling.Enabled: must be a boolean"),
    ({"Max": 5, "Policy": [1]}, 1, "TaskGroups[0].Scaling.Policy: must be an object"),
    ({"Max": 5, "Cooldown": 1}, 1, "TaskGroups[0].Scaling: unknown fields ['Cooldown']"),
    ({"Max": 2**64}, 1, "TaskGroups[0].Scaling.Max: must be <= 9223372036854775807"),
])
def test_json_scaling_validation_uses_nomads_messages(sc: dict[str, Any], count: int, error: str) -> None:
    with pytest.raises(JobError, match=re.escape(error)):
        canonical_job(_job(sc, count))


# ------------------------------------------------------------ the replicated policies
class Store:
    def __init__(self) -> None:
        self.st = StateStore()
        self.index = 0
        self.log: list[bytes] = []

    def apply(self, op: str, **args: Any) -> Any:
        self.index += 1
        data = command(op, now=1000.0, **args)
        self.log.append(data)
        return self.st.apply(self.index, data)

    def register(self, sc: Any, count: int = 3, job_id: str = "web") -> Any:
        job = canonical_job({**_job(sc, count), "ID": job_id})
        r = self.apply("job_register", job=job)
        assert r["ok"], r
        return r

    def policies(self) -> list[dict[str, Any]]:
        return list(self.st.tables[scaling.TABLE].values())


def test_registering_a_job_stores_its_policy_and_updates_keep_its_id() -> None:
    s = Store()
    s.register({"Min": 1, "Max": 10, "Policy": {"cooldown": "1m"}})
    (p,) = s.policies()
    assert p == {"ID": scaling.policy_id(1, "web", "g"), "Type": "horizontal",
                 "Target": {"Namespace": "default", "Job": "web", "Group": "g"}, "Policy": {"cooldown": "1m"},
                 "Min": 1, "Max": 10, "Enabled": True, "CreateIndex": 1, "ModifyIndex": 1}
    assert s.st.index(scaling.TABLE) == 1
    s.register({"Min": 1, "Max": 10, "Policy": {"cooldown": "1m"}}, count=3)  # unchanged: untouched
    assert s.policies() == [p] and s.st.index(scaling.TABLE) == 1
    s.register({"Min": 1, "Max": 20, "Policy": {"cooldown": "1m"}})
    (q,) = s.policies()
    assert (q["ID"], q["CreateIndex"], q["ModifyIndex"], q["Max"]) == (p["ID"], 1, 3, 20)
    s.register(None)  # the block removed: the policy goes
    assert s.policies() == [] and s.st.index(scaling.TABLE) == 4


def test_a_stopped_job_keeps_its_policies_and_a_purged_or_collected_one_loses_them() -> None:
    s = Store()
    s.register({"Max": 10})
    s.register({"Max": 10}, job_id="other")
    s.apply("job_deregister", job_id="web", purge=False)
    assert len(s.policies()) == 2
    # Nomad's FSM disables a stopped job's policies (and its groups' scaling blocks), so no autoscaler
    # acts on a stopped job; the other job's stays enabled.
    assert {p["Target"]["Job"]: p["Enabled"] for p in s.policies()} == {"web": False, "other": True}
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Scaling"]["Enabled"] is False
    s.apply("job_deregister", job_id="web", purge=True)
    assert [p["Target"]["Job"] for p in s.policies()] == ["other"]
    s.apply("job_deregister", job_id="other", purge=False)
    for ev in s.st.tables["evals"].values():
        ev.update(Status="complete")
    s.st.tables["jobs"]["other"]["Status"] = "dead"
    r = s.apply("core_gc", jobs=["other"], cutoff=1e9, batch_cutoff=1e9, job_cutoff=1e9)
    assert r["jobs"] == ["other"] and s.policies() == []


def test_policies_survive_a_snapshot_and_the_log_replays_to_the_same_state() -> None:
    s = Store()
    s.register({"Min": 1, "Max": 10})
    s.register({"Max": 4}, job_id="api")
    restored = StateStore()
    restored.restore(s.st.snapshot(), s.index)
    assert restored.tables[scaling.TABLE] == s.st.tables[scaling.TABLE]
    assert restored.index(scaling.TABLE) == s.st.index(scaling.TABLE)
    # The derived index is rebuilt: a purge after the restore takes the job's policy with it.
    restored.apply(s.index + 1, command("job_deregister", job_id="api", purge=True, now=1.0))
    assert [p["Target"]["Job"] for p in restored.tables[scaling.TABLE].values()] == ["web"]
    replay = StateStore()
    for i, data in enumerate(s.log, start=1):
        replay.apply(i, data)
    assert replay.digest() == s.st.digest()


def test_job_scale_refuses_a_count_outside_the_policy_with_nomads_messages() -> None:
    s = Store()
    s.register({"Min": 2, "Max": 5, "Enabled": False})
    r = s.apply("job_scale", job_id="web", group="g", count=6, policy_bounds=True)
    assert r == {"ok": False, "error": "group count was greater than scaling policy maximum: 6 > 5"}
    r = s.apply("job_scale", job_id="web", group="g", count=1, policy_bounds=True)
    assert r == {"ok": False, "error": "group count was less than scaling policy minimum: 1 < 2"}
    assert s.apply("job_scale", job_id="web", group="g", count=5, policy_bounds=True)["ok"]
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Count"] == 5
    assert s.policies()[0]["ModifyIndex"] == 1  # the policy did not change


# ------------------------------------------------------------ entries and snapshots from before policies
def _old_job(sc: Any, job_id: str = "web", count: int = 3) -> dict[str, Any]:
    """A job as canonical_job kept it before scaling policies: the group's Scaling as the user sent it."""
    job = canonical_job({**_job(None, count), "ID": job_id})
    job["TaskGroups"][0]["Scaling"] = sc
    return job


@pytest.mark.parametrize("sc", [[1], "x", 7, {"Min": 5, "Max": 1}, {"Min": "1", "Max": 3}, {"Max": True},
                                {"Min": -1, "Max": 3}, {"Max": 3, "Type": "vertical"},
                                {"Max": 3, "Type": [1]},
                                {"Max": 3, "Policy": [1]}, {"Max": 3, "Enabled": "yes"}, {"Max": 2**63}])
def test_an_old_job_register_with_a_malformed_scaling_applies_without_a_policy(sc: Any) -> None:
    s = Store()
    s.register({"Max": 10}, job_id="other")
    r = s.apply("job_register", job=_old_job(sc))  # as the older code wrote (and accepted) it
    assert r["ok"] and r["EvalID"], r
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Scaling"] == sc
    assert [p["Target"]["Job"] for p in s.policies()] == ["other"]
    # A later version (any entry) with no policy to make keeps the store whole, and scaling works.
    assert s.apply("job_register", job=_old_job(sc, count=4))["ok"]
    assert s.apply("job_scale", job_id="web", group="g", count=9, policy_bounds=True)["ok"]
    assert s.st.tables["jobs"]["web"]["Version"] == 2 and len(s.policies()) == 1
    replay = StateStore()
    for i, data in enumerate(s.log, start=1):
        replay.apply(i, data)
    assert replay.digest() == s.st.digest()


def test_an_old_job_scale_outside_the_policy_replays_as_it_was_applied() -> None:
    s = Store()
    s.register({"Min": 2, "Max": 5})
    r = s.apply("job_scale", job_id="web", group="g", count=9)  # written before the bounds were checked
    assert r["ok"], r
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Count"] == 9
    assert s.st.tables["jobs"]["web"]["Version"] == 1
    r = s.apply("job_scale", job_id="web", group="g", count=8, policy_bounds=True)  # this version's entry
    assert r == {"ok": False, "error": "group count was greater than scaling policy maximum: 8 > 5"}


def _history() -> Store:
    """A log with policies made, changed, added later, left alone by a stop, purged and malformed."""
    s = Store()
    s.register({"Min": 1, "Max": 10})                       # 1: web's policy made
    s.register({"Min": 1, "Max": 20})                       # 2: changed
    s.register(None, job_id="api")                          # 3: api without one
    s.register({"Max": 4}, job_id="api")                    # 4: api's made at its version 1
    s.apply("job_register", job=_old_job([1], "old"))       # 5: an older entry's malformed one
    s.apply("job_scale", job_id="web", group="g", count=7)  # 6: unchanged policy
    s.apply("job_deregister", job_id="api", purge=False)    # 7: stopped: kept
    s.register({"Max": 3}, job_id="gone")                   # 8
    s.apply("job_deregister", job_id="gone", purge=True)    # 9: purged
    s.apply("job_register", job=_old_job({"Max": 6}, "raw"))  # 10: an older entry's well-formed one
    s.register({"Max": 5}, job_id="api")                    # 11: api's changed after the stop
    return s


def _pre_table_snapshot(st: StateStore) -> bytes:
    """*st*'s snapshot as a server from before scaling policies wrote it: no table, no index."""
    import msgpack

    snap = msgpack.unpackb(st.snapshot(), raw=False)
    del snap["tables"][scaling.TABLE]
    del snap["index"][scaling.TABLE]
    return msgpack.packb(snap, use_bin_type=True)


def test_a_snapshot_from_before_the_table_restores_the_policies_a_replay_makes() -> None:
    s = _history()
    assert {p["Target"]["Job"] for p in s.policies()} == {"web", "api", "raw"}
    for upto in range(1, len(s.log) + 1):  # a snapshot taken after any entry
        replay = StateStore()
        for i, data in enumerate(s.log[:upto], start=1):
            replay.apply(i, data)
        restored = StateStore()
        restored.restore(_pre_table_snapshot(replay), upto)
        assert restored.tables[scaling.TABLE] == replay.tables[scaling.TABLE], upto
        assert restored.digest() == replay.digest(), upto
        # ...and the log after it applies alike on both (the derived job index is rebuilt too).
        for i, data in enumerate(s.log[upto:], start=upto + 1):
            assert restored.apply(i, data) == replay.apply(i, data)
        assert restored.digest() == replay.digest() == s.st.digest(), upto
    # An operator's restore of one (snapshot restore) makes the same policies, at the restore's index.
    user = StateStore()
    user.restore(_pre_table_snapshot(s.st), 99, user=True)
    assert user.tables[scaling.TABLE] == s.st.tables[scaling.TABLE]
    assert user.index(scaling.TABLE) == 99
    # A snapshot with the table restores it as it is.
    same = StateStore()
    same.restore(s.st.snapshot(), s.index)
    assert same.tables[scaling.TABLE] == s.st.tables[scaling.TABLE]
    assert same.index(scaling.TABLE) == s.st.index(scaling.TABLE)


def test_the_list_of_every_namespace_keeps_those_the_token_may_list() -> None:
    from actors.http_api import CodedError, Request
    from actors.http_scaling import scaling_policies, scaling_policy
    from tests.test_acl import _api, _guarded_state, _token

    st = _guarded_state()
    rules = ('namespace "default" { capabilities = ["list-scaling-policies"] }\n'
             'namespace "prod" { capabilities = ["list-jobs", "read-job"] }\n'
             'namespace "dev" { capabilities = ["list-jobs"] }\n'
             'namespace "qa" { capabilities = ["read-job"] }\n')
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "scaler", "Rules": rules}]))
    st.apply(5, command("acl_token_upsert", tokens=[_token("sc", "sc-secret", policies=("scaler",))]))
    ids = {}
    for ns in ("default", "prod", "dev", "qa"):
        ids[ns] = pid = scaling.policy_id(1, f"j-{ns}", "g")
        st.tables[scaling.TABLE][pid] = {"ID": pid, "Type": "horizontal", "Policy": None, "Min": 0,
                                         "Max": 1, "Enabled": True, "CreateIndex": 1, "ModifyIndex": 1,
                                         "Target": {"Namespace": ns, "Job": f"j-{ns}", "Group": "g"}}

    def get(handler, path: str, ns: str, token: str = "sc-secret") -> Any:
        import io

        environ = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0", "HTTP_X_NOMAD_TOKEN": token}
        req = Request(method="GET", path=path, query={"namespace": [ns], "stale": [""]}, url=path,
                      environ=environ)
        try:
            api = _api(st)
            api.ask = lambda actor, what: {"role": "leader"}
            return handler(req, api).value
        except CodedError as e:
            return e.code

    listed = get(scaling_policies, "/v1/scaling/policies", "*")
    assert sorted(p["Target"]["Namespace"] for p in listed) == ["default", "prod"]
    assert len(get(scaling_policies, "/v1/scaling/policies", "*", "root-secret")) == 4
    assert get(scaling_policies, "/v1/scaling/policies", "*", "") == []  # anonymous: none listable, empty
    assert [p["ID"] for p in get(scaling_policies, "/v1/scaling/policies", "prod")] == [ids["prod"]]
    assert get(scaling_policies, "/v1/scaling/policies", "dev") == 403  # list-jobs alone is not enough
    assert get(scaling_policies, "/v1/scaling/policies", "qa") == 403
    assert get(scaling_policy, f"/v1/scaling/policy/{ids['prod']}", "prod")["ID"] == ids["prod"]
    assert get(scaling_policy, f"/v1/scaling/policy/{ids['dev']}", "dev") == 403
    assert get(scaling_policy, f"/v1/scaling/policy/{ids['qa']}", "*") == 403
    assert get(scaling_policy, f"/v1/scaling/policy/{ids['prod']}", "*")["ID"] == ids["prod"]


def test_listing_filters_as_nomads_list_policies() -> None:
    s = Store()
    s.register({"Max": 10})
    s.register({"Max": 10}, job_id="api")
    tables = s.st.tables
    assert [p["Target"]["Job"] for p in scaling.listed(tables)] == \
        [p["Target"]["Job"] for p in sorted(s.policies(), key=lambda p: p["ID"])]
    assert [p["Target"]["Job"] for p in scaling.listed(tables, job="api")] == ["api"]
    assert scaling.listed(tables, job="api", type_="horiz") == []  # a job's type filter is exact
    assert len(scaling.listed(tables, type_="horiz")) == 2  # the namespace's is a prefix
    assert scaling.listed(tables, namespace="other") == [] and len(scaling.listed(tables, namespace="*")) == 2
    pid = scaling.policy_id(2, "api", "g")
    assert [p["ID"] for p in scaling.listed(tables, prefix=pid[:6])] == [pid]
    assert set(scaling.listed(tables)[0]) == {"ID", "Enabled", "Type", "Target", "CreateIndex", "ModifyIndex"}


# ------------------------------------------------------------ over HTTP and the CLI
from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev, sleep_job  # noqa: E402,F401


def nomad(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_scaling_endpoints_cli_and_job_scale_answer_as_nomads(dev):  # noqa: F811
    port = dev.http_port
    job = sleep_job("scaled", count=0)
    job["TaskGroups"][0]["Scaling"] = {"Min": 0, "Max": 2, "Policy": {"cooldown": "1m"}}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    listed = call(port, "GET", "/v1/scaling/policies")
    assert listed.status == 200 and int(listed.headers["x-nomad-index"]) >= 1
    (stub,) = [p for p in listed.json() if p["Target"]["Job"] == "scaled"]
    assert stub["Target"] == {"Namespace": "default", "Job": "scaled", "Group": "web"}
    assert stub["Enabled"] is True and stub["Type"] == "horizontal"
    assert [p["ID"] for p in call(port, "GET", "/v1/scaling/policies?job=scaled").json()] == [stub["ID"]]
    assert call(port, "GET", "/v1/scaling/policies?job=nope").json() == []
    assert call(port, "GET", "/v1/scaling/policies?type=vertical").json() == []
    sc = call(port, "GET", "/v1/job/scaled").json()["TaskGroups"][0]["Scaling"]
    assert (sc["ID"], sc["Namespace"], sc["Min"], sc["Max"]) == (stub["ID"], "default", 0, 2)
    assert (sc["CreateIndex"], sc["ModifyIndex"]) == (stub["CreateIndex"], stub["ModifyIndex"])
    resubmit = call(port, "GET", "/v1/job/scaled").json()  # a job read back registers as it is
    assert call(port, "PUT", "/v1/jobs", {"Job": resubmit}).status == 200
    assert call(port, "GET", "/v1/scaling/policies?job=scaled").json() == [stub]
    got = call(port, "GET", f"/v1/scaling/policy/{stub['ID']}").json()
    assert (got["Min"], got["Max"], got["Policy"]) == (0, 2, {"cooldown": "1m"})
    found = call(port, "PUT", "/v1/search", {"Prefix": stub["ID"][:5], "Context": "scaling_policy"}).json()
    assert found["Matches"] == {"scaling_policy": [stub["ID"]]}  # an odd prefix is cut to whole bytes
    found = call(port, "PUT", "/v1/search", {"Prefix": stub["ID"][:4], "Context": "all"}).json()
    assert found["Matches"]["scaling_policy"] == [stub["ID"]]
    r = call(port, "GET", "/v1/scaling/policy/00000000-0000-0000-0000-000000000000")
    assert (r.status, r.text) == (404, "policy not found")
    assert call(port, "PUT", "/v1/scaling/policies").status == 405
    r = call(port, "POST", "/v1/job/scaled/scale", {"Count": 3, "Target": {"Group": "web"}})
    assert (r.status, r.text) == (400, "group count was greater than scaling policy maximum: 3 > 2")
    assert call(port, "POST", "/v1/job/scaled/scale", {"Count": 0, "Target": {"Group": "web"}}).status == 200

    out = nomad(port, "scaling", "policy", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "Enabled", "Type", "Target"]
    assert lines[1].split() == [stub["ID"][:8], "true", "horizontal",
                                "Namespace:default,Job:scaled,Group:web"]
    assert nomad(port, "scaling", "policy", "list", "-job", "nope").stdout.strip() == "No policies found"
    assert json.loads(nomad(port, "scaling", "policy", "list", "-json").stdout)[0]["ID"] == stub["ID"]
    info = nomad(port, "scaling", "policy", "info", stub["ID"][:8])
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines()[:5] == [f"ID      = {stub['ID'][:8]}", "Enabled = true",
                                            "Target  = Namespace:default,Job:scaled,Group:web", "Min     = 0",
                                            "Max     = 2"]
    assert info.stdout.splitlines()[5:7] == ["", "Policy:"]
    assert json.loads("\n".join(info.stdout.splitlines()[7:])) == {"cooldown": "1m"}
    bad = nomad(port, "scaling", "policy", "info", "ffff")
    assert bad.returncode == 1 and 'no scaling policies with prefix or ID "ffff" found' in bad.stderr
    scale = nomad(port, "job", "scale", "-detach", "scaled", "web", "5")
    assert scale.returncode == 1
    assert "group count was greater than scaling policy maximum: 5 > 2" in scale.stderr
    snap = call(port, "GET", "/v1/operator/snapshot")
    assert snap.status == 200, f"{snap.text}\n{dev.detail()}"  # the agent's log, should it happen again
    assert call(port, "DELETE", "/v1/job/scaled?purge=true").status == 200
    left = call(port, "GET", "/v1/scaling/policies").json()
    assert [p for p in left if p["Target"]["Job"] == "scaled"] == []
    # An operator's restore brings the policy back as it was, ID and all; a purge then removes it again.
    assert call(port, "PUT", "/v1/operator/snapshot", raw=snap.body).status == 200
    back = call(port, "GET", f"/v1/scaling/policy/{stub['ID']}")
    assert back.status == 200 and back.json()["Target"]["Job"] == "scaled", back.text
    assert call(port, "DELETE", "/v1/job/scaled?purge=true").status == 200
    assert call(port, "GET", f"/v1/scaling/policy/{stub['ID']}").status == 404
