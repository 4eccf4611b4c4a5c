"""Nomad HCL job files -> the API's JSON job (runtime.hcl_job)."""

from __future__ import annotations

import os

import pytest

from actors.scheduler.job import canonical_job
from runtime.hcl_job import HclJobError, parse_hcl_job

EXAMPLE = os.path.join(os.path.dirname(__file__), "data", "example.nomad.hcl")


def test_a_nomad_job_file_maps_onto_the_json_job() -> None:
    with open(EXAMPLE) as fh:
        job = parse_hcl_job(fh.read())
    assert job["ID"] == job["Name"] == "example" and job["Type"] == "service" and job["Priority"] == 60
    assert job["Datacenters"] == ["dc1"] and job["Meta"] == {"owner": "ops"}
    assert job["Constraints"] == [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
    (group,) = job["TaskGroups"]
    assert group["Name"] == "cache" and group["Count"] == 1
    assert group["RestartPolicy"] == {"Attempts": 2, "Interval": 1800 * 10**9, "Delay": 15 * 10**9, "Mode": "fail"}
    (task,) = group["Tasks"]
    assert task == {"Name": "redis", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["60"]},
                    "Env": {"FOO": "bar"}, "KillTimeout": 10 * 10**9, "Resources": {"CPU": 50, "MemoryMB": 32}}
    canonical_job(job)  # and the scheduler takes it


def test_attribute_maps_several_groups_and_tasks_and_defaults() -> None:
    job = parse_hcl_job('''
        job "multi" {
          type = "batch"
          meta = { a = 1, b = true }
          group "one" {
            task "a" {
              driver = "raw_exec"
              config { command = "/bin/true" }
              kill_signal = "SIGTERM"
              user = "nobody"
            }
            task "b" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
          group "two" {
            count = 3
            migrate { max_parallel = 2
                      min_healthy_time = "5s" }
            task "c" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert job["Meta"] == {"a": "1", "b": "true"}
    assert [g["Name"] for g in job["TaskGroups"]] == ["one", "two"]
    assert [t["Name"] for t in job["TaskGroups"][0]["Tasks"]] == ["a", "b"]
    assert job["TaskGroups"][0]["Tasks"][0]["KillSignal"] == "SIGTERM"
    assert job["TaskGroups"][0]["Tasks"][0]["User"] == "nobody"
    assert job["TaskGroups"][1]["Migrate"] == {"MaxParallel": 2, "MinHealthyTime": 5 * 10**9}
    assert "Count" not in job["TaskGroups"][0]  # Nomad's default (1) is applied where jobs are validated
    assert canonical_job(job)["TaskGroups"][0]["Count"] == 1


@pytest.mark.parametrize(("text", "message"), [
    ('job "x" { group "g" { network { port "http" {} } } }', "'network' not supported"),
    ('job "x" { update { max_parallel = 1 } }', "'update' not supported"),
    ('job "x" { periodic { cron = "* * * * *"\n spec_type = "cron" } }', "'spec_type' not supported"),
    ('job "x" { group "g" { task "t" { driver = "raw_exec"\n service { name = "web" } } } }',
     "'service' not supported"),
    ('job "x" { group "g" { task "t" { resources { cpu = 1\n cores = 2 } } } }', "'cores' not supported"),
    ('job "x" { group "g" { restart { delay = "soon" } } }', "invalid duration"),
    ('job "x" {', "not a valid HCL file"),
    ('job "a" {}\njob "b" {}', "exactly one job block"),
    ('variable "x" {}', "'variable' not supported"),
])
def test_what_this_agent_does_not_run_is_refused_with_where_it_is(text: str, message: str) -> None:
    with pytest.raises(HclJobError, match=message):
        parse_hcl_job(text)


def test_periodic_and_parameterized_blocks_map_onto_the_job() -> None:
    job = parse_hcl_job('job "p" {\n type = "batch"\n periodic {\n cron = "@daily"\n prohibit_overlap = true\n'
                        ' time_zone = "Europe/Paris"\n }\n group "g" {\n task "t" {\n driver = "raw_exec"\n'
                        ' config { command = "/bin/true" }\n }\n }\n}\n')
    assert job["Periodic"] == {"Spec": "@daily", "SpecType": "cron", "ProhibitOverlap": True,
                               "TimeZone": "Europe/Paris", "Enabled": True}
    assert canonical_job(job)["Periodic"]["Spec"] == "@daily"
    job = parse_hcl_job('job "d" {\n type = "batch"\n parameterized {\n payload = "required"\n'
                        ' meta_optional = ["x"]\n }\n}\n')
    assert job["ParameterizedJob"] == {"Payload": "required", "MetaRequired": [], "MetaOptional": ["x"]}
