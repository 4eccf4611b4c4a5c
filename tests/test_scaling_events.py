"""Job scaling events (Nomad's ``scaling_event`` table): the ``job_scale`` entry that records them
(with and without a count), 20 kept per group, purge and GC, snapshots and old snapshots, the
replay of entries from before them, ``/v1/job/<id>/scale`` in process, and ``nomad job
scaling-events``."""

from __future__ import annotations

import io
import json
from typing import Any

import msgpack
import pytest

from actors.scheduler.job import canonical_job
from actors.state import scaling
from actors.state.store import StateStore, command
from tests.one_server_api import api_over

NOW = 1_700_000_000.5
NOW_NS = 1_700_000_000_500_000_000


def _job(job_id: str = "web", count: int = 2, **extra: Any) -> dict[str, Any]:
    return canonical_job({"ID": job_id, "Datacenters": ["dc1"], **extra, "TaskGroups": [
        {"Name": "g", "Count": count, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                 "Config": {"command": "/bin/true"}}]}]})


class Store:
    def __init__(self) -> None:
        self.st = StateStore()
        self.index = 0
        self.log: list[bytes] = []

    def apply(self, op: str, **args: Any) -> Any:
        self.index += 1
        data = command(op, **{"now": NOW, **args})
        self.log.append(data)
        return self.st.apply(self.index, data)

    def scale(self, count: int | None, message: str = "", error: bool = False, meta: Any = None,
              group: str = "g", **extra: Any) -> Any:
        return self.apply("job_scale", job_id="web", group=group, count=count, policy_bounds=True,
                          event={"Message": message, "Error": error, "Meta": meta}, **extra)

    def events(self, group: str = "g") -> list[dict[str, Any]] | None:
        return scaling.group_events(self.st.tables, "web", group)


def _registered(**extra: Any) -> Store:
    s = Store()
    assert s.apply("job_register", job=_job(**extra))["ok"]
    return s


def test_a_scale_with_a_count_records_nomads_event_and_evaluates_by_job_scaling() -> None:
    s = _registered()
    r = s.scale(3, "submitted using the Nomad CLI", meta={"reason": "load", "n": 1})
    assert r["ok"] and r["EvalID"] and r["EvalCreateIndex"] == 2 and r["JobModifyIndex"] == 2
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Count"] == 3
    assert s.st.tables["evals"][r["EvalID"]]["TriggeredBy"] == "job-scaling"
    assert s.events() == [{"Time": NOW_NS, "Count": 3, "PreviousCount": 2,
                           "Message": "submitted using the Nomad CLI", "Error": False,
                           "Meta": {"reason": "load", "n": 1}, "EvalID": r["EvalID"], "CreateIndex": 2}]
    rec = s.st.tables[scaling.EVENTS_TABLE]["web"]
    assert (rec["Namespace"], rec["JobID"], rec["ModifyIndex"]) == ("default", "web", 2)
    assert s.st.index(scaling.EVENTS_TABLE) == 2


def test_a_scale_to_the_same_count_is_a_new_version_as_nomads() -> None:
    """Nomad's Job.Scale registers the job whatever the count, and its state store gives every
    registration a new version: `job history` lists the scale, submitted at its time."""
    s = _registered()
    assert s.scale(3, always_new_version=True)["ok"]
    assert s.st.tables["jobs"]["web"]["Version"] == 1
    r = s.scale(3, always_new_version=True)
    job = s.st.tables["jobs"]["web"]
    assert r["ok"] and r["JobModifyIndex"] == job["JobModifyIndex"] == 3
    assert job["Version"] == 2 and job["TaskGroups"][0]["Count"] == 3
    assert [v["Version"] for v in s.st.job_versions("web")] == [2, 1, 0]
    # An entry written before always_new_version applies as it did: the same count keeps the version.
    assert s.scale(3)["ok"] and s.st.tables["jobs"]["web"]["Version"] == 2


def test_an_event_without_a_count_leaves_the_job_and_makes_no_evaluation() -> None:
    s = _registered()
    job, evals = s.st.tables["jobs"]["web"], dict(s.st.tables["evals"])
    r = s.scale(None, "cooldown: no action", error=True)
    assert r == {"ok": True, "index": 2, "EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 1}
    assert s.st.tables["jobs"]["web"] is job and s.st.tables["evals"] == evals
    assert s.events() == [{"Time": NOW_NS, "Count": None, "PreviousCount": 2,
                           "Message": "cooldown: no action", "Error": True,
                           "Meta": None, "EvalID": None, "CreateIndex": 2}]
    assert s.st.index("jobs") == 1


def test_each_group_keeps_its_newest_twenty_events_newest_first() -> None:
    s = _registered()
    for i in range(25):
        assert s.scale(None, f"m{i}")["ok"]
    events = s.events()
    assert len(events) == scaling.JOB_TRACKED_SCALING_EVENTS == 20
    assert [e["Message"] for e in events] == [f"m{i}" for i in range(24, 4, -1)]
    assert [e["CreateIndex"] for e in events] == list(range(26, 6, -1))


@pytest.mark.parametrize(("args", "error"), [
    ({"group": "nope", "count": 1}, 'task group "nope" specified for scaling does not exist in job'),
    ({"group": "nope", "count": None}, 'task group "nope" specified for scaling does not exist in job'),
    ({"job_id": "gone", "count": 1}, 'job "gone" not found'),
    ({"count": 3, "job_modify_index": 7},
     "Enforcing job modify index 7: job exists with conflicting job modify index: 1"),
])
def test_a_refused_scale_records_nothing_with_nomads_messages(args: dict[str, Any], error: str) -> None:
    s = _registered()
    cmd = {"job_id": "web", "group": "g", "policy_bounds": True, "event": {"Message": "x"}, **args}
    assert s.apply("job_scale", **cmd) == {"ok": False, "error": error}
    assert s.st.tables[scaling.EVENTS_TABLE] == {} and s.st.tables["jobs"]["web"]["Version"] == 0


def test_a_system_job_scales_between_zero_and_one_and_a_checked_index_that_matches_applies() -> None:
    s = _registered(Type="system", count=1)
    assert s.scale(2) == {"ok": False, "error": 'jobs of type "system" can only be scaled between 0 and 1'}
    assert s.scale(0, job_modify_index=1)["ok"]
    assert s.events()[0]["Count"] == 0


def test_an_active_deployment_of_the_job_blocks_a_count_but_not_an_event() -> None:
    from actors.state import deployments

    s = _registered()
    job = s.st.tables["jobs"]["web"]
    s.st.tables[deployments.TABLE]["d1"] = {"ID": "d1", "JobID": "web", "Status": "running",
                                            "JobCreateIndex": job["CreateIndex"], "JobVersion": 0}
    s.st.latest_deployment_of["web"] = "d1"
    assert s.scale(3) == {"ok": False, "error": "job scaling blocked due to active deployment"}
    assert s.scale(None, "waiting")["ok"] and len(s.events()) == 1


def test_a_periodic_job_scales_without_an_evaluation() -> None:
    s = _registered(Periodic={"Enabled": True, "SpecType": "cron", "Spec": "*/5 * * * *"}, Type="batch")
    r = s.scale(4)
    assert r["ok"] and r["EvalID"] == "" and s.events()[0]["EvalID"] is None
    assert s.st.tables["jobs"]["web"]["TaskGroups"][0]["Count"] == 4


def test_a_bad_meta_is_refused_before_anything_is_written() -> None:
    s = _registered()
    r = s.scale(3, meta=["x"])
    assert "Meta" in r["error"] and s.st.tables["jobs"]["web"]["Version"] == 0


def test_purge_and_gc_delete_a_jobs_events_and_a_stop_keeps_them() -> None:
    s = _registered()
    s.scale(3, "up")
    s.apply("job_deregister", job_id="web", purge=False)
    assert s.events() is not None
    s.apply("job_deregister", job_id="web", purge=True)
    assert s.st.tables[scaling.EVENTS_TABLE] == {} and s.st.index(scaling.EVENTS_TABLE) == s.index
    assert s.apply("job_register", job=_job())["ok"]
    assert s.events() is None  # a job registered again starts with none
    s.scale(None, "again")
    s.apply("job_deregister", job_id="web", purge=False)
    for ev in s.st.tables["evals"].values():
        ev.update(Status="complete")
    s.st.tables["jobs"]["web"]["Status"] = "dead"
    r = s.apply("core_gc", jobs=["web"], cutoff=1e12, batch_cutoff=1e12, job_cutoff=1e12)
    assert r["jobs"] == ["web"] and s.st.tables[scaling.EVENTS_TABLE] == {}


def test_snapshots_keep_the_events_and_one_from_before_the_table_restores_it_empty() -> None:
    s = _registered()
    s.scale(3, "up", meta={"k": "v"})
    s.scale(None, "hold")
    back = StateStore()
    back.restore(s.st.snapshot(), s.index)
    assert back.tables[scaling.EVENTS_TABLE] == s.st.tables[scaling.EVENTS_TABLE]
    assert back.index(scaling.EVENTS_TABLE) == s.st.index(scaling.EVENTS_TABLE)
    back.apply(s.index + 1, command("job_scale", job_id="web", group="g", count=None, event={"Message": "n"},
                                    now=NOW))
    assert [e["Message"] for e in scaling.group_events(back.tables, "web", "g")] == ["n", "hold", "up"]
    snap = msgpack.unpackb(s.st.snapshot(), raw=False)
    del snap["tables"][scaling.EVENTS_TABLE]
    del snap["index"][scaling.EVENTS_TABLE]
    old = StateStore()
    old.restore(msgpack.packb(snap, use_bin_type=True), s.index)
    assert old.tables[scaling.EVENTS_TABLE] == {} and old.index(scaling.EVENTS_TABLE) == 0
    assert old.tables["jobs"] == s.st.tables["jobs"]
    assert old.apply(s.index + 1, command("job_scale", job_id="web", group="g", count=None,
                                          event={"Message": "x"}, now=NOW))["ok"]


def test_entries_from_before_events_replay_as_they_always_did() -> None:
    s = _registered()
    # An older job_scale: a count and no event -- no event, a "job-register" evaluation, the old refusals.
    r = s.apply("job_scale", job_id="web", group="g", count=3, policy_bounds=True)
    assert r["ok"] and s.st.tables["evals"][r["EvalID"]]["TriggeredBy"] == "job-register"
    assert s.apply("job_scale", job_id="web", group="x", count=3) == {
        "ok": False, "error": "task group 'x' not found"}
    assert s.st.tables[scaling.EVENTS_TABLE] == {}
    s.apply("job_register", job=_job("cron", Type="batch",
                                     Periodic={"Enabled": True, "SpecType": "cron", "Spec": "* * * * *"}))
    assert s.apply("job_scale", job_id="cron", group="g", count=3)["error"] == \
        "cannot scale a periodic or parameterized job"
    s.scale(5, "new")
    replay = StateStore()
    for i, data in enumerate(s.log, start=1):
        replay.apply(i, data)
    assert replay.digest() == s.st.digest()
    assert scaling.EVENTS_TABLE in dict(msgpack.unpackb(replay.digest(), raw=False)[0])


# ------------------------------------------------------------ /v1/job/<id>/scale, in process
def _api(state: StateStore) -> Any:
    return api_over(state, acl_enabled=False)


def _http(state: StateStore, method: str, path: str, body: Any = None, query: str = "") -> tuple[int, Any]:
    import urllib.parse

    from actors.http_api import CodedError, Request
    from actors.http_jobs import job_request

    raw = json.dumps(body).encode() if body is not None else b""
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
    req = Request(method=method, path=path, query={"stale": [""], **urllib.parse.parse_qs(query)}, url=path,
                  environ=environ)
    try:
        return 200, job_request(req, _api(state)).value
    except CodedError as e:
        return e.code, e.message


def _http_state() -> StateStore:
    st = StateStore()
    job = _job()
    job["TaskGroups"].append({**job["TaskGroups"][0], "Name": "h", "Count": 1})
    assert st.apply(1, command("job_register", job=job, now=NOW))["ok"]
    return st


def test_put_scale_records_events_and_get_shows_them_per_group_as_nomads_json() -> None:
    st = _http_state()
    code, status = _http(st, "GET", "/v1/job/web/scale")
    assert code == 200 and status["TaskGroups"]["g"]["Events"] is None
    code, r = _http(st, "PUT", "/v1/job/web/scale", {"Count": 4, "Target": {"Group": "g", "Job": "web"},
                                                     "Message": "up", "Meta": {"by": "autoscaler"}})
    assert code == 200 and r["EvalID"] and r["Index"] == 2 and r["JobModifyIndex"] == 2, r
    code, r2 = _http(st, "POST", "/v1/job/web/scale", {"Target": {"Group": "g"}, "Message": "hold",
                                                       "Error": True})
    assert code == 200 and r2["EvalID"] == "" and r2["EvalCreateIndex"] == 0 and r2["Index"] == 3, r2
    code, status = _http(st, "GET", "/v1/job/web/scale")
    assert code == 200
    g = status["TaskGroups"]["g"]
    assert g["Desired"] == 4 and status["TaskGroups"]["h"]["Events"] is None
    got = [(e["Count"], e["PreviousCount"], e["Message"], e["Error"], e["CreateIndex"]) for e in g["Events"]]
    assert got == [(None, 4, "hold", True, 3), (4, 2, "up", False, 2)]
    assert g["Events"][1]["EvalID"] == r["EvalID"] and g["Events"][1]["Meta"] == {"by": "autoscaler"}
    assert isinstance(g["Events"][0]["Time"], int) and g["Events"][0]["Time"] > 1_600_000_000 * 10**9
    assert status["JobModifyIndex"] == st.tables["jobs"]["web"]["ModifyIndex"]


@pytest.mark.parametrize(("body", "query", "code", "message"), [
    ({"Count": 1}, "", 400, "missing task group name for scaling action"),
    ({"Count": -1, "Target": {"Group": "g"}}, "", 400, "scaling action count can't be negative"),
    ({"Count": 1, "Error": True, "Target": {"Group": "g"}}, "", 400,
     "scaling action should not contain count if error is true"),
    ({"Count": 1, "Target": {"Group": "g", "Job": "other"}}, "", 400, "job ID in payload did not match URL"),
    ({"Count": 1, "Target": {"Group": "g", "Namespace": "prod"}}, "", 400,
     "namespace in payload did not match header"),
    # the job is found by namespace and ID: "web" is in "default", not in "prod"
    ({"Count": 1, "Target": {"Group": "g", "Namespace": "prod"}}, "namespace=prod", 404, 'job "web" not found'),
    ({"Count": "1", "Target": {"Group": "g"}}, "", 400, "Count: must be an integer, got '1'"),
    ({"Target": {"Group": "g"}, "Meta": [1]}, "", 400, "Meta: must be an object"),
    ({"Target": {"Group": "g"}, "Error": "yes"}, "", 400, "Error: must be a boolean, got 'yes'"),
    ({"Target": {"Group": "nope"}, "Message": "m"}, "", 400,
     'task group "nope" specified for scaling does not exist in job'),
    # Nomad's Job.Scale answers this one with a plain error (500), not a coded 400
    ({"Count": 1, "Target": {"Group": "g"}, "JobModifyIndex": 9}, "", 500,
     "Enforcing job modify index 9: job exists with conflicting job modify index: 1"),
])
def test_put_scale_refuses_bad_requests_with_nomads_messages(body: dict[str, Any], query: str, code: int,
                                                            message: str | None) -> None:
    st = _http_state()
    got = _http(st, "PUT", "/v1/job/web/scale", body, query)
    assert got[0] == code and (message is None or got[1] == message), got


def test_scale_of_an_unknown_job_is_404() -> None:
    st = _http_state()
    assert _http(st, "PUT", "/v1/job/nope/scale", {"Target": {"Group": "g"}, "Message": "m"}) == \
        (404, 'job "nope" not found')
    assert _http(st, "GET", "/v1/job/nope/scale") == (404, "job not found")


def test_scale_status_counts_as_nomads_leaving_out_canaries_and_terminal_allocations() -> None:
    from actors.http_jobs import _scale_status

    st = _http_state()
    allocs = [{"TaskGroup": "g", "DesiredStatus": "run", "ClientStatus": "running",
               "DeploymentStatus": {"Healthy": True}},
              {"TaskGroup": "g", "DesiredStatus": "run", "ClientStatus": "pending",
               "DeploymentStatus": {"Healthy": False}},
              {"TaskGroup": "g", "DesiredStatus": "run", "ClientStatus": "running",
               "DeploymentStatus": {"Canary": True, "Healthy": True}},
              {"TaskGroup": "g", "DesiredStatus": "run", "ClientStatus": "complete"},
              {"TaskGroup": "g", "DesiredStatus": "stop", "ClientStatus": "running"}]
    st.job_allocs = lambda job_id: allocs  # type: ignore[method-assign]
    g = _scale_status(st, "web")["TaskGroups"]["g"]
    assert (g["Placed"], g["Running"], g["Healthy"], g["Unhealthy"]) == (2, 1, 1, 1)


# ------------------------------------------------------------ nomad job scaling-events / job scale
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> StateStore:
    """The CLI's HTTP calls answered in process by the handlers, on a fresh state."""
    import urllib.parse

    import runtime.cli  # before the command modules, which it imports
    import runtime.cli_jobs
    import runtime.cli_scaling

    CliError = runtime.cli.CliError

    st = _http_state()

    def request(addr: str, method: str, path: str, body: Any = None, **query: Any) -> Any:
        if path == "/v1/jobs":
            return [{"ID": j} for j in sorted(st.tables["jobs"]) if j.startswith(query.get("prefix") or "")]
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None and k != "answer_meta"})
        code, value = _http(st, method, path, body, q)
        if code != 200:
            raise CliError(f"Unexpected response code: {code} ({value})")
        return value

    for mod in (runtime.cli_jobs, runtime.cli_scaling):
        monkeypatch.setattr(mod, "request", request)
    return st


def test_job_scaling_events_lists_every_groups_events_newest_first_as_nomads(cli: StateStore) -> None:
    from runtime.cli_jobs import job_scale
    from runtime.cli_scaling import job_scaling_events

    assert job_scaling_events("http://x", ["web"]) == "No events found"
    assert job_scale("http://x", ["-detach", "we", "g", "3"])[0].startswith("Job scale successful")
    cli.apply(3, command("job_scale", job_id="web", group="h", count=None, now=4_000_000_000.0,
                         event={"Message": "cooldown", "Error": True}))
    out = job_scaling_events("http://x", ["web"]).splitlines()
    assert out[0].split() == ["Task", "Group", "Count", "PrevCount", "Date"]
    assert out[1].split() == ["h", "1", "2096-10-02T07:06:40Z"]  # no count: empty
    assert out[2].split()[:3] == ["g", "3", "2"]
    verbose = job_scaling_events("http://x", ["-verbose", "web"]).splitlines()
    assert verbose[0].split() == ["Task", "Group", "Count", "PrevCount", "Error", "Message", "Eval", "ID",
                                  "Date"]
    g = scaling.group_events(cli.tables, "web", "g")[0]
    assert g["Message"] == "submitted using the Nomad CLI"
    assert verbose[2].split()[:-1] == ["g", "3", "2", "false", "submitted", "using", "the", "Nomad", "CLI",
                                       g["EvalID"]]
    assert verbose[1].split() == ["h", "1", "true", "cooldown", "2096-10-02T07:06:40Z"]  # no count, no eval


def test_job_scale_checks_the_group_as_nomads_cli(cli: StateStore) -> None:
    from runtime.cli import CliError
    from runtime.cli_jobs import job_scale
    from runtime.cli_scaling import job_scaling_events

    with pytest.raises(CliError, match=r"^Group name required$"):
        job_scale("http://x", ["web", "3"])
    with pytest.raises(CliError, match=r"^Group nope not found within job$"):
        job_scale("http://x", ["web", "nope", "3"])
    with pytest.raises(CliError, match=r"^Command requires at least two arguments and no more than three$"):
        job_scale("http://x", ["web"])
    with pytest.raises(CliError, match="conflicting job modify index: 1"):
        job_scale("http://x", ["-check-index", "5", "-detach", "web", "g", "3"])
    with pytest.raises(CliError, match=r"^This command takes one argument: <job_id>"):
        job_scaling_events("http://x", [])
    with pytest.raises(CliError, match=r'No job\(s\) with prefix or ID "zz" found'):
        job_scaling_events("http://x", ["zz"])
