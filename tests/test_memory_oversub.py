"""Memory oversubscription (Nomad's ``memory_max`` / ``MemoryMaxMB`` and the scheduler configuration's
``MemoryOversubscriptionEnabled``): the job file, validation, placement, the allocation, the client's
task environment, the API and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from actors.client.alloc_runner import AllocError, AllocRunnerConfig, parse_alloc, task_env
from actors.http_jobs import allocated_resources
from actors.scheduler.dryrun import plan_job
from actors.scheduler.job import (
    JobError,
    canonical_job,
    memory_max_warnings,
    schedule_changed,
    task_memory_max,
    warnings_text,
)
from runtime.hcl_job import HclJobError, parse_hcl_job
from tests.test_scheduler import Cluster, service

WARNING = ('Memory oversubscription is not enabled; Task "g.t" memory_max value will be ignored. '
           "Update the Scheduler Configuration to allow oversubscription.")


def hcl(resources: str) -> str:
    return f'''
        job "web" {{
          group "g" {{
            task "t" {{
              driver = "raw_exec"
              config {{ command = "/bin/sleep" }}
              resources {{ {resources} }}
            }}
          }}
        }}'''


def mem_job(mem: int = 256, mem_max: int | None = 1024, count: int = 1, **extra: Any) -> dict[str, Any]:
    job = service(count=count, mem=mem, cpu=100, **extra)
    if mem_max is not None:
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = mem_max
    return job


# ------------------------------------------------------------ the job file and validation
def test_the_job_file_takes_memory_max_and_the_job_keeps_it() -> None:
    job = parse_hcl_job(hcl("cpu = 100\nmemory = 256\nmemory_max = 1024"))
    res = job["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert res == {"CPU": 100, "MemoryMB": 256, "MemoryMaxMB": 1024}
    assert canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == 1024
    with pytest.raises(HclJobError, match="memory_maxx"):
        parse_hcl_job(hcl("memory = 256\nmemory_maxx = 1024"))  # still refused by name


def test_memory_max_equal_to_memory_is_fine_and_zero_or_null_is_none_stored_as_submitted() -> None:
    assert canonical_job(mem_job(256, 256))["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == 256
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    for none in (0, None):  # kept as jobs were stored before memory_max was read: no new version on resubmit
        job = mem_job(256, 256, ID=f"none-{none}")
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = none
        assert canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == none
        c.register(**job)
        c.register(**job)
        assert c.state.tables["jobs"][job["ID"]]["Version"] == 0
    c.schedule()
    allocs = list(c.state.tables["allocs"].values())
    assert len(allocs) == 2
    for a in allocs:
        assert "MemoryMaxMB" not in a["Resources"] and "AllocatedResources" not in a
        assert "NOMAD_MEMORY_MAX_LIMIT" not in _env(a)
        assert memory_max_warnings(a["Job"], False) == []


@pytest.mark.parametrize("bad, why", [
    (100, "Task t validation failed: MemoryMaxMB value (100) should be larger than MemoryMB value (256)"),
    (-5, "MemoryMaxMB value (-5) should be larger than MemoryMB value (256)"),
    (-1, "memory_max = -1 (no memory limit) is not supported by this agent"),
    ("1024", "MemoryMaxMB: must be an integer, got str"),
    (True, "MemoryMaxMB: must be an integer, got bool"),
])
def test_bad_memory_max_gets_nomads_message(bad: Any, why: str) -> None:
    with pytest.raises(JobError, match=__import__("re").escape(why)):
        canonical_job(mem_job(256, bad))


def test_a_job_stored_before_memory_max_was_validated_holds_none_the_scheduler_would_place() -> None:
    for stored in ("1024", True, -1, 100, None, 0):
        assert task_memory_max({"Name": "t", "Resources": {"MemoryMB": 256, "MemoryMaxMB": stored}}) == 0
    assert task_memory_max({"Name": "t", "Resources": {"MemoryMB": 256, "MemoryMaxMB": 256}}) == 256


def test_the_warning_is_nomads_one_per_task_only_while_oversubscription_is_off() -> None:
    job = canonical_job(mem_job())
    assert memory_max_warnings(job, True) == []
    assert memory_max_warnings(canonical_job(mem_job(mem_max=None)), False) == []
    assert memory_max_warnings(job, False) == [WARNING]
    assert warnings_text([WARNING]) == f"1 warning:\n\n* {WARNING}"
    assert warnings_text(["a", "b "]) == "2 warnings:\n\n* a\n* b"
    assert warnings_text([]) == ""


# ------------------------------------------------------------ placement
def _allocs(c: Cluster) -> list[dict[str, Any]]:
    return sorted(c.running("web"), key=lambda a: a["Name"])


def test_oversubscription_off_places_without_memory_max() -> None:
    c = Cluster()
    c.node(0)
    c.register(**mem_job())
    c.schedule()
    (a,) = _allocs(c)
    assert a["Resources"] == {"CPU": 100, "MemoryMB": 256, "DiskMB": 300} and "AllocatedResources" not in a
    assert allocated_resources(a)["Tasks"]["t"]["Memory"] == {"MemoryMB": 256, "MemoryMaxMB": 0}
    # The job itself keeps it (Nomad keeps the job as submitted; only the allocation leaves it out).
    assert c.state.tables["jobs"]["web"]["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == 1024


def test_oversubscription_on_carries_memory_max_and_placement_counts_memory_only() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0, mem=1024)
    c.register(**mem_job(256, 4096, count=5))
    c.schedule()
    allocs = _allocs(c)
    assert len(allocs) == 4  # 4 x 256 MB fill the node: memory_max is not counted
    for a in allocs:
        assert a["Resources"] == {"CPU": 100, "MemoryMB": 256, "MemoryMaxMB": 4096, "DiskMB": 300}
        assert a["AllocatedResources"] == {"Tasks": {"t": {"Memory": {"MemoryMaxMB": 4096}}}}
        assert allocated_resources(a)["Tasks"]["t"]["Memory"] == {"MemoryMB": 256, "MemoryMaxMB": 4096}
    c.assert_not_overcommitted()
    ev = next(e for e in c.state.tables["evals"].values() if e.get("Status") == "blocked")
    assert ev["JobID"] == "web"  # the fifth waits for memory, as any placement would


def test_group_memory_max_adds_tasks_without_one_at_their_memory_and_lifecycle_tasks_as_nomad() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    job = mem_job(256, 1024)
    tasks = job["TaskGroups"][0]["Tasks"]
    tasks.append({**tasks[0], "Name": "side", "Resources": {"CPU": 100, "MemoryMB": 64}})
    tasks.append({**tasks[0], "Name": "init", "Resources": {"CPU": 100, "MemoryMB": 128, "MemoryMaxMB": 2048},
                  "Lifecycle": {"Hook": "prestart"}})
    c.register(**job)
    c.schedule()
    (a,) = _allocs(c)
    # main tasks 1024 + 64; the prestart task's 2048 runs before them, so the larger of the two counts.
    assert a["Resources"]["MemoryMB"] == 256 + 64 and a["Resources"]["MemoryMaxMB"] == 2048
    assert a["AllocatedResources"]["Tasks"] == {"t": {"Memory": {"MemoryMaxMB": 1024}},
                                                "init": {"Memory": {"MemoryMaxMB": 2048}}}


def test_a_system_job_carries_memory_max_too() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.node(1)
    c.register(**mem_job(Type="system"))
    c.schedule()
    allocs = _allocs(c)
    assert len(allocs) == 2 and all(a["Resources"]["MemoryMaxMB"] == 1024 for a in allocs)


def test_a_memory_max_change_replaces_the_allocations_as_nomads_task_memory_max_difference() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.register(**mem_job(256, 1024, count=2, Update={"MaxParallel": 0}))
    c.schedule()
    first = {a["ID"] for a in _allocs(c)}
    c.register(**mem_job(256, 2048, count=2, Update={"MaxParallel": 0}))
    c.schedule()
    now = _allocs(c)
    assert not first & {a["ID"] for a in now} and len(now) == 2
    assert all(a["Resources"]["MemoryMaxMB"] == 2048 for a in now)
    assert c.state.tables["jobs"]["web"]["Version"] == 1


def test_store_replay_is_unchanged_a_memory_max_only_change_keeps_the_schedule_index() -> None:
    """The store applies job writes with schedule_changed, which memory_max does not enter: a log entry
    written before memory_max was honoured (a JSON job could carry MemoryMaxMB) applies as it did."""
    old, new = canonical_job(mem_job(256, 512)), canonical_job(mem_job(256, 1024))
    assert not schedule_changed(old, new)
    c = Cluster()
    c.node(0)
    c.register(**mem_job(256, 512))
    before = c.state.tables["jobs"]["web"]["ScheduleIndex"]
    c.register(**mem_job(256, 1024))
    job = c.state.tables["jobs"]["web"]
    assert job["Version"] == 1 and job["ScheduleIndex"] == before


def test_plan_warns_and_counts_a_memory_max_change_as_a_destructive_update() -> None:
    c = Cluster()
    c.node(0)
    c.register(**mem_job(256, 1024, count=2))
    c.schedule()
    got = plan_job(c.state, canonical_job(mem_job(256, 2048, count=2)), diff=True)
    assert got["Warnings"] == f"1 warning:\n\n* {WARNING}"
    updates = got["Annotations"]["DesiredTGUpdates"]["g"]
    assert (updates["DestructiveUpdate"], updates["Ignore"]) == (1, 1)  # max_parallel 1: one at a time
    fields = {f["Name"]: f for o in got["Diff"]["TaskGroups"][0]["Tasks"][0]["Objects"]
              if o["Name"] == "Resources" for f in o["Fields"]}
    assert (fields["MemoryMaxMB"]["Old"], fields["MemoryMaxMB"]["New"]) == ("1024", "2048")
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    assert plan_job(c.state, canonical_job(mem_job(256, 2048, count=2)), diff=False)["Warnings"] == ""


# ------------------------------------------------------------ the client
def _raw_alloc(allocated: Any = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    t = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}, "Env": env or {},
         "Resources": {"CPU": 100, "MemoryMB": 256, "MemoryMaxMB": 1024}}
    raw = {"ID": "a1", "JobID": "web", "TaskGroup": "g", "DesiredStatus": "run", "ClientStatus": "pending",
           "AllocModifyIndex": 1, "Job": {"ID": "web", "Type": "service",
                                          "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [t]}]}}
    if allocated is not None:
        raw["AllocatedResources"] = allocated
    return raw


def _env(raw: dict[str, Any]) -> dict[str, str]:
    spec = parse_alloc(raw, AllocRunnerConfig())
    return task_env(spec, spec.tasks[0], "/a", "/a/t")


def test_the_task_env_has_nomad_memory_max_limit_only_when_the_allocation_holds_one() -> None:
    env = _env(_raw_alloc({"Tasks": {"t": {"Memory": {"MemoryMaxMB": 1024}}}}))
    assert env["NOMAD_MEMORY_LIMIT"] == "256" and env["NOMAD_MEMORY_MAX_LIMIT"] == "1024"
    # Placed while oversubscription was off: the job's memory_max is not the task's.
    env = _env(_raw_alloc())
    assert env["NOMAD_MEMORY_LIMIT"] == "256" and "NOMAD_MEMORY_MAX_LIMIT" not in env
    # Nor can the task's own env give it a hard limit the scheduler did not place.
    env = _env(_raw_alloc(None, {"NOMAD_MEMORY_MAX_LIMIT": "999999"}))
    assert "NOMAD_MEMORY_MAX_LIMIT" not in env
    with pytest.raises(AllocError, match="MemoryMaxMB must be a non-negative integer"):
        parse_alloc(_raw_alloc({"Tasks": {"t": {"Memory": {"MemoryMaxMB": "big"}}}}), AllocRunnerConfig())


def test_scheduler_to_client_end_to_end() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.register(**mem_job())
    c.schedule()
    (a,) = _allocs(c)
    assert _env(a)["NOMAD_MEMORY_MAX_LIMIT"] == "1024"


# ------------------------------------------------------------ the CLI
def test_alloc_status_shows_nomads_max_row_and_run_plan_validate_show_job_warnings(monkeypatch) -> None:
    from runtime import cli, cli_jobs  # cli first (it imports cli_jobs' commands), as bin/nomad does

    assert cli.COMMANDS
    alloc = {"ID": "a1", "EvalID": "e1", "Name": "web.g[0]", "NodeID": "n1", "JobID": "web",
             "ClientStatus": "running", "DesiredStatus": "run", "TaskGroup": "g",
             "Resources": {"CPU": 150, "MemoryMB": 320, "MemoryMaxMB": 1088, "DiskMB": 300},
             "AllocatedResources": {"Tasks": {
                 "t": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 256, "MemoryMaxMB": 1024}},
                 "s": {"Cpu": {"CpuShares": 50}, "Memory": {"MemoryMB": 64, "MemoryMaxMB": 0}}}},
             "TaskStates": {"t": {"State": "running"}, "s": {"State": "running"}}}
    monkeypatch.setattr(cli_jobs, "resolve", lambda addr, kind, prefix: {"ID": prefix})
    monkeypatch.setattr(cli_jobs, "request", lambda addr, method, path, *a, **k: alloc)
    out = cli_jobs.alloc_status("http://x", ["a1"]).splitlines()
    t = out.index('Task "t" is "running"')
    at = out.index("Task Resources:", t)
    assert out[at + 2].split() == ["100", "MHz", "256", "MiB", "300", "MiB"]
    assert out[at + 3].split() == ["Max:", "1.0", "GiB"]
    s = out.index('Task "s" is "running"')
    at = out.index("Task Resources:", s)
    assert out[at + 2].split() == ["50", "MHz", "64", "MiB", "300", "MiB"]
    assert not out[at + 3].strip().startswith("Max")
    warned = f"1 warning:\n\n* {WARNING}"
    assert cli_jobs.job_warnings({"Warnings": warned}) == f"Job Warnings:\n{warned}\n\n"
    assert cli_jobs.job_warnings({"Warnings": ""}) == ""


def test_job_run_plan_and_validate_print_the_job_warnings(monkeypatch, tmp_path) -> None:
    from runtime import cli, cli_jobs

    assert cli.COMMANDS
    path = tmp_path / "web.nomad.hcl"
    path.write_text(hcl("memory = 256\nmemory_max = 1024"))
    warned = f"1 warning:\n\n* {WARNING}"
    sent: list[tuple[str, Any]] = []

    def request(addr: str, method: str, url: str, body: Any = None, **k: Any) -> Any:
        sent.append((url, body))
        if url.endswith("/plan"):
            return {"Annotations": {"DesiredTGUpdates": {"g": {"Place": 1}}}, "Warnings": warned,
                    "JobModifyIndex": 0, "Diff": None}
        if url == "/v1/validate/job":
            return {"ValidationErrors": [], "Warnings": warned}
        return {"EvalID": "", "Warnings": warned}
    monkeypatch.setattr(cli_jobs, "request", request)
    out, _ = cli_jobs.job_plan("http://x", ["-diff=false", str(path)])
    lines = out.splitlines()
    at = lines.index("Job Warnings:")
    assert lines[at - 2] == "- All tasks successfully allocated." and lines[at - 1] == ""
    assert lines[at + 1:at + 4] == ["1 warning:", "", f"* {WARNING}"] and lines[at + 4] == ""
    assert lines[at + 5].startswith("Job Modify Index:")
    out, code = cli_jobs.job_run("http://x", ["-detach", str(path)])
    assert out.startswith(f"Job Warnings:\n{warned}\n\nJob registration successful") and code == 0
    out, _ = cli_jobs.job_validate("http://x", [str(path)])
    assert out == f"Job Warnings:\n{warned}\n\nJob validation successful"
    assert sent[0][1]["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == 1024
