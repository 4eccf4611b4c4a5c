"""Job-file keys of Nomad's job specification taken since the jobspec review: each is carried to the API
JSON, validated with Nomad's messages and honoured where Nomad acts on it."""

from __future__ import annotations

import pytest

from actors.scheduler.job import JobError, canonical_job
from runtime.hcl_job import parse_hcl_job
from tests.test_alloc_runner import Client, alloc, policy
from tests.test_alloc_runner import task as ar_task
from tests.test_check_validation import SEC, checks_of, http, job, tcp


# ------------------------------------------------------------ service on_update
def test_a_services_on_update_is_its_checks_unless_they_set_their_own() -> None:
    j = canonical_job(job(http(), tcp(OnUpdate="require_healthy"), svc={"OnUpdate": "ignore"}))
    own, inherited = checks_of(j)[1], checks_of(j)[0]
    assert inherited["OnUpdate"] == "ignore" and own["OnUpdate"] == "require_healthy"
    assert j["TaskGroups"][0]["Services"][0]["OnUpdate"] == "ignore"
    # A task's service too; none given: require_healthy, and the service keeps no OnUpdate.
    j = canonical_job(job(http(), svc={"OnUpdate": "ignore"}, task_svc=True))
    assert checks_of(j, task_svc=True)[0]["OnUpdate"] == "ignore"
    j = canonical_job(job(http()))
    assert checks_of(j)[0]["OnUpdate"] == "require_healthy"
    assert "OnUpdate" not in j["TaskGroups"][0]["Services"][0]


def test_a_services_on_update_nomad_refuses_is_refused_with_its_message() -> None:
    with pytest.raises(JobError, match='Service on_update must be "require_healthy", "ignore_warnings", '
                                       'or "ignore"; not "sometimes"'):
        canonical_job(job(http(), svc={"OnUpdate": "sometimes"}))
    # ignore_warnings is Consul's: the checks that inherit it are refused as Nomad's validateNomad does.
    with pytest.raises(JobError, match="on_update may only be set to ignore_warnings for Consul service"):
        canonical_job(job(http(), svc={"OnUpdate": "ignore_warnings"}))
    # ignore and a check_restart do not go together, inherited or not.
    with pytest.raises(JobError, match='on_update value "ignore" is not compatible with check_restart'):
        canonical_job(job(http(), svc={"OnUpdate": "ignore", "CheckRestart": {"Limit": 3}}))


def _service_file(service: str) -> str:
    return f'''
        job "web" {{
          group "g" {{
            network {{ port "http" {{}} }}
            service {{
              name = "api"
              port = "http"
              {service}
            }}
            task "t" {{
              driver = "raw_exec"
              config {{ command = "/bin/sleep" }}
            }}
          }}
        }}'''


def test_the_job_file_carries_a_services_on_update() -> None:
    j = parse_hcl_job(_service_file('on_update = "ignore"\n'
                                    'check {\n type = "tcp"\n interval = "10s"\n timeout = "2s"\n}'))
    svc = j["TaskGroups"][0]["Services"][0]
    assert svc["OnUpdate"] == "ignore" and "OnUpdate" not in svc["Checks"][0]
    assert canonical_job(j)["TaskGroups"][0]["Services"][0]["Checks"][0]["OnUpdate"] == "ignore"


# ------------------------------------------------------------ a task's restart block
def _restart_file() -> str:
    return '''
        job "web" {
          type = "batch"
          group "g" {
            restart {
              attempts = 5
              delay    = "10s"
            }
            task "main" {
              driver = "raw_exec"
              config { command = "/bin/true" }
              restart {
                attempts = 1
                mode     = "fail"
              }
            }
            task "other" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }'''


def test_a_tasks_restart_block_is_merged_over_its_groups() -> None:
    j = parse_hcl_job(_restart_file())
    main, other = j["TaskGroups"][0]["Tasks"]
    assert main["RestartPolicy"] == {"Attempts": 1, "Mode": "fail"} and "RestartPolicy" not in other
    g = canonical_job(j)["TaskGroups"][0]
    assert g["RestartPolicy"] == {"Attempts": 5, "Interval": 24 * 3600 * SEC, "Delay": 10 * SEC,
                                  "Mode": "fail"}
    main, other = g["Tasks"]
    assert main["RestartPolicy"] == {**g["RestartPolicy"], "Attempts": 1}
    assert "RestartPolicy" not in other  # it runs by its group's, stored as such a task always was


def test_a_tasks_restart_policy_is_validated_as_a_groups() -> None:
    j = parse_hcl_job(_restart_file())
    j["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = {"Mode": "sometimes"}
    with pytest.raises(JobError, match=r"Tasks\[0\]\.RestartPolicy\.Mode: must be one of"):
        canonical_job(j)
    j["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = {"Attempts": 100, "Delay": 3600 * SEC}
    with pytest.raises(JobError, match=r"Tasks\[0\]\.RestartPolicy: Delay \* Attempts must fit in Interval"):
        canonical_job(j)


def test_the_client_restarts_a_task_by_its_own_policy_and_one_without_by_its_groups() -> None:
    c = Client()
    own = {**ar_task("t", run_for_s=1, exit_code=2), "RestartPolicy": policy(1, 3600, 2)}
    c.set(alloc("a1", own, job_type="batch", restart=policy(3, 3600, 2)),
          alloc("a2", ar_task("t", run_for_s=1, exit_code=2), job_type="batch", restart=policy(3, 3600, 2)))
    c.until(lambda: c.status("a1") == "failed" and c.status("a2") == "failed", 120)
    assert c.task("a1").restarts == 1 and c.task("a2").restarts == 3
    assert "Exceeded allowed attempts 1 in interval 1h0m0s" in c.latest("a1").client_description
