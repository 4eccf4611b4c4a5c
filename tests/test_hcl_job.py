"""Nomad HCL job files -> the API's JSON job (runtime.hcl_job)."""

from __future__ import annotations

import os
import re

import pytest

from actors.scheduler.job import JobError, canonical_job
from runtime.hcl_job import HclJobError, parse_hcl_job

EXAMPLE = os.path.join(os.path.dirname(__file__), "data", "example.nomad.hcl")


def test_a_nomad_job_file_maps_onto_the_json_job() -> None:
    with open(EXAMPLE) as fh:
        job = parse_hcl_job(fh.read())
    assert job["ID"] == job["Name"] == "example" and job["Type"] == "service" and job["Priority"] == 60
    assert job["Datacenters"] == ["dc1"] and job["Meta"] == {"owner": "ops"}
    assert job["Constraints"] == [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
    (group,) = job["TaskGroups"]
    assert group["Name"] == "cache" and group["Count"] == 1 and group["Update"] == {"MinHealthyTime": 0}
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
    assert "Count" not in job["TaskGroups"][0]  # Nomad's default (1) is applied where jobs are validated
    assert canonical_job(job)["TaskGroups"][0]["Count"] == 1


def test_service_blocks_map_onto_nomad_services() -> None:
    job = parse_hcl_job('''
        job "web" {
          group "g" {
            network { port "http" {} }
            service {
              name = "web-${NOMAD_ALLOC_INDEX}"
              port = "http"
              tags = ["edge", "v1"]
              provider = "nomad"
            }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/sleep" }
              service { port = 8080
                        meta = { zone = "a" } }
            }
          }
        }''')
    g = job["TaskGroups"][0]
    assert g["Services"] == [{"Name": "web-${NOMAD_ALLOC_INDEX}", "Provider": "nomad", "PortLabel": "http",
                              "Tags": ["edge", "v1"]}]
    assert g["Tasks"][0]["Services"] == [{"PortLabel": "8080", "Meta": {"zone": "a"}}]
    svc = canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Services"][0]
    assert svc["Name"] == "web-g-t" and svc["Provider"] == "nomad"  # Nomad's default name: job-group-task


def test_service_canary_tags_and_canary_meta_map_and_are_kept_when_given() -> None:
    job = parse_hcl_job('''
        job "web" {
          group "g" {
            service {
              name        = "web"
              tags        = ["live"]
              canary_tags = ["canary"]
              canary_meta = { version = "2" }
            }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/sleep" }
            }
          }
        }''')
    svc = job["TaskGroups"][0]["Services"][0]
    assert (svc["CanaryTags"], svc["CanaryMeta"]) == (["canary"], {"version": "2"})
    svc = canonical_job(job)["TaskGroups"][0]["Services"][0]
    assert (svc["Tags"], svc["CanaryTags"], svc["CanaryMeta"]) == (["live"], ["canary"], {"version": "2"})
    job["TaskGroups"][0]["Services"][0].update(CanaryTags=[], CanaryMeta={})
    svc = canonical_job(job)["TaskGroups"][0]["Services"][0]
    assert "CanaryTags" not in svc and "CanaryMeta" not in svc  # Nomad's Canonicalize: empty is nil
    job["TaskGroups"][0]["Services"][0]["CanaryTags"] = [1]
    with pytest.raises(JobError, match=r"CanaryTags: must be a list of strings"):
        canonical_job(job)


def test_update_blocks_map_onto_the_update_strategy() -> None:
    job = parse_hcl_job('''
        job "web" {
          update {
            max_parallel     = 2
            min_healthy_time = "5s"
            healthy_deadline = "1m"
            auto_revert      = true
          }
          group "g" {
            update { max_parallel = 3
                     progress_deadline = "15m"
                     health_check = "task_states" }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/sleep" }
            }
          }
        }''')
    assert job["Update"] == {"MaxParallel": 2, "AutoRevert": True, "MinHealthyTime": 5 * 10**9,
                             "HealthyDeadline": 60 * 10**9}
    assert job["TaskGroups"][0]["Update"] == {"MaxParallel": 3, "HealthCheck": "task_states",
                                             "ProgressDeadline": 900 * 10**9}
    u = canonical_job(job)["TaskGroups"][0]["Update"]
    assert (u["MaxParallel"], u["AutoRevert"], u["MinHealthyTime"], u["HealthyDeadline"], u["ProgressDeadline"],
            u["HealthCheck"]) == (3, True, 5 * 10**9, 60 * 10**9, 900 * 10**9, "task_states")


def test_migrate_blocks_take_nomads_four_fields_merge_the_jobs_under_the_groups_and_fill_defaults() -> None:
    job = parse_hcl_job('''
        job "web" {
          migrate {
            health_check     = "task_states"
            healthy_deadline = "2m"
          }
          group "g" {
            migrate { max_parallel = 2
                      min_healthy_time = "15s" }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/sleep" }
            }
          }
          group "h" {
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/sleep" }
            }
          }
        }''')
    assert job["Migrate"] == {"HealthCheck": "task_states", "HealthyDeadline": 120 * 10**9}
    assert job["TaskGroups"][0]["Migrate"] == {"MaxParallel": 2, "MinHealthyTime": 15 * 10**9}
    g, h = canonical_job(job)["TaskGroups"]
    assert g["Migrate"] == {"MaxParallel": 2, "HealthCheck": "task_states", "MinHealthyTime": 15 * 10**9,
                            "HealthyDeadline": 120 * 10**9}
    assert h["Migrate"] == {"MaxParallel": 1, "HealthCheck": "task_states", "MinHealthyTime": 10 * 10**9,
                            "HealthyDeadline": 120 * 10**9}
    plain = parse_hcl_job('job "w" { group "g" { task "t" {\n driver = "raw_exec"\n'
                          ' config { command = "/bin/true" } } } }')
    assert canonical_job(plain)["TaskGroups"][0]["Migrate"] == {  # Nomad's DefaultMigrateStrategy
        "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * 10**9,
        "HealthyDeadline": 300 * 10**9}


@pytest.mark.parametrize(("block", "job_type", "message"), [
    ('health_check = "manual"', "service", r'Migrate\.HealthCheck: Invalid HealthCheck: "manual"'),
    ('health_check = ""', "service", r"Migrate\.HealthCheck: Missing HealthCheck"),
    ('min_healthy_time = "6m"', "service", "MinHealthyTime must be less than HealthyDeadline"),
    ('min_healthy_time = "20s"\n healthy_deadline = "10s"', "service",
     "MinHealthyTime must be less than HealthyDeadline"),
    ("max_parallel = -1", "service", "MaxParallel must be >= 0 but found -1"),
    ('healthy_deadline = "-1s"', "service", "HealthyDeadline is -1s and must be >= 0"),
    ("max_parallel = 2", "batch", 'Job type "batch" does not allow migrate block'),
    ("max_parallel = 2", "system", 'Job type "system" does not allow migrate block'),
])
def test_a_migrate_block_nomad_refuses_is_refused_with_its_message(block: str, job_type: str,
                                                                   message: str) -> None:
    job = parse_hcl_job(f'''
        job "web" {{
          type = "{job_type}"
          group "g" {{
            migrate {{ {block} }}
            task "t" {{
              driver = "raw_exec"
              config {{ command = "/bin/sleep" }}
            }}
          }}
        }}''')
    with pytest.raises(JobError, match=message):
        canonical_job(job)


def test_a_migrate_block_with_max_parallel_zero_may_leave_health_check_empty() -> None:
    job = parse_hcl_job('job "w" { group "g" {\n migrate { max_parallel = 0\n health_check = "" }\n'
                        ' task "t" { driver = "raw_exec"\n config { command = "/bin/true" } } } }')
    assert canonical_job(job)["TaskGroups"][0]["Migrate"]["HealthCheck"] == ""
    with pytest.raises(HclJobError, match=r"migrate: 'stagger' not supported"):
        parse_hcl_job('job "w" { group "g" { migrate { stagger = "1s" } } }')


CHECKS_JOB = """
job "checked" {
  group "g" {
    network {
      port "http" {}
      port "admin" { static = 9090 }
    }
    service {
      name = "api"
      port = "http"
      check {
        name     = "alive"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
        method   = "POST"
        protocol = "https"
        body     = "{}"
        header {
          Authorization = ["Basic xyz"]
          X-Single      = "one"
        }
      }
      check {
        type         = "tcp"
        port         = "admin"
        interval     = "5s"
        timeout      = "1s"
        on_update    = "ignore"
        address_mode = "host"
      }
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/sleep" }
      service {
        port = 8080
        check {
          type     = "tcp"
          interval = "1m"
          timeout  = 3000000000
          task     = "t"
        }
      }
    }
  }
}
"""


def test_service_checks_in_groups_and_tasks_map_onto_the_api_shape() -> None:
    job = parse_hcl_job(CHECKS_JOB)
    (group,) = job["TaskGroups"]
    assert group["Services"] == [{
        "Name": "api", "PortLabel": "http", "Checks": [
            {"Name": "alive", "Type": "http", "Path": "/health", "Interval": 10 * 10**9, "Timeout": 2 * 10**9,
             "Method": "POST", "Protocol": "https", "Body": "{}",
             "Header": {"Authorization": ["Basic xyz"], "X-Single": ["one"]}},
            {"Type": "tcp", "PortLabel": "admin", "Interval": 5 * 10**9, "Timeout": 10**9,
             "OnUpdate": "ignore", "AddressMode": "host"}]}]
    assert group["Tasks"][0]["Services"] == [{
        "PortLabel": "8080",
        "Checks": [{"Type": "tcp", "Interval": 60 * 10**9, "Timeout": 3 * 10**9, "TaskName": "t"}]}]
    # The scheduler takes it, with Nomad's defaults filled in.
    g = canonical_job(job)["TaskGroups"][0]
    alive, admin = g["Services"][0]["Checks"]
    assert alive == {"Name": "alive", "Type": "http", "Path": "/health", "Method": "POST",
                     "Protocol": "https", "PortLabel": "", "Interval": 10 * 10**9, "Timeout": 2 * 10**9,
                     "OnUpdate": "require_healthy", "AddressMode": "",
                     "Header": {"Authorization": ["Basic xyz"], "X-Single": ["one"]}, "Body": "{}",
                     "TaskName": "", "CheckRestart": None}
    assert admin["Name"] == 'service: "api" check' and admin["Method"] == "GET"
    assert admin["OnUpdate"] == "ignore" and admin["PortLabel"] == "admin"
    (task_check,) = g["Tasks"][0]["Services"][0]["Checks"]
    assert task_check["Name"] == 'service: "checked-g-t" check' and task_check["TaskName"] == "t"
    assert task_check["PortLabel"] == "" and task_check["Interval"] == 60 * 10**9


def test_a_check_nomad_refuses_is_refused_once_the_file_is_parsed() -> None:
    job = parse_hcl_job('job "x" { group "g" {\n network { port "http" {} }\n service {\n port = "http"\n'
                        ' check {\n type = "http"\n path = "/"\n interval = "500ms"\n timeout = "1s" } }\n'
                        ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" } } } }')
    with pytest.raises(JobError, match=r"Checks\[0\]\.Interval: interval \(500ms\) cannot be lower than 1s"):
        canonical_job(job)


@pytest.mark.parametrize(("text", "message"), [
    ('job "x" { group "g" { network { port "http" { host_network = "public"\n mtu = 1 } } } }',
     "'mtu' not supported"),
    ('job "x" { group "g" { network { dns { servers = ["1.1.1.1"] } } } }', "'dns' not supported"),
    ('job "x" { update { max_parallel = 1\n canaries = 1 } }', "'canaries' not supported"),
    ('job "x" { update { min_healthy_time = "later" } }', "invalid duration"),
    ('job "x" { periodic { cron = "* * * * *"\n spec_type = "cron" } }', "'spec_type' not supported"),
    ('job "x" { group "g" { task "t" { driver = "raw_exec"\n service {\n name = "web"\n'
     ' check { type = "http"\n check_restart { limit = 3\n grace_period = "1s" } } } } } }',
     r"service\[0\]\.check\[0\]\.check_restart: 'grace_period' not supported"),
    ('job "x" { group "g" { service {\n check {\n type = "tcp"\n notes = "Consul\'s" } } } }',
     "'notes' not supported"),
    ('job "x" { group "g" { service {\n check {\n type = "tcp"\n interval = "often" } } } }',
     r"check\[0\]\.interval: .*invalid duration"),
    ('job "x" { group "g" { task "t" { resources { cpu = 1\n numa { affinity = "require" } } } } }',
     "'numa' not supported"),
    ('job "x" { group "g" { restart { delay = "soon" } } }', "invalid duration"),
    ('job "x" {', "not a valid HCL file"),
    ('job "a" {}\njob "b" {}', "exactly one job block"),
    ('variable "x" { validation { condition = true } }', "'condition' not supported|error_message"),
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


VARS_JOB = """
variable "image" {
  type    = string
  default = "redis:7"
}
variable "count" {
  type    = number
  default = 2
}
variable "dcs" {
  type = list(string)
}
variable "debug" {
  type    = bool
  default = false
}
variable "labels" {
  default = { team = "ops", tier = "cache" }
}
locals {
  name    = "${var.image}-${local.suffix}"
  suffix  = "v1"
}
job "vars" {
  datacenters = var.dcs
  meta {
    team  = var.labels.team
    first = "${var.dcs[0]}"
    debug = var.debug
  }
  group "g" {
    count = var.count
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/echo"
        args    = ["${local.name}", "at ${NOMAD_ALLOC_DIR}", "${attr.kernel.name}"]
      }
    }
  }
}
"""


def test_variables_and_locals_are_filled_in_with_their_types() -> None:
    job = parse_hcl_job(VARS_JOB, var_args={"dcs": '["dc1", "dc2"]'})
    assert job["Datacenters"] == ["dc1", "dc2"]
    assert job["Meta"] == {"team": "ops", "first": "dc1", "debug": "false"}
    (group,) = job["TaskGroups"]
    assert group["Count"] == 2 and isinstance(group["Count"], int)
    # Locals refer to variables and to each other; Nomad's runtime ${...} stay as text.
    assert group["Tasks"][0]["Config"]["args"] == ["redis:7-v1", "at ${NOMAD_ALLOC_DIR}", "${attr.kernel.name}"]
    canonical_job(job)


def test_variable_values_take_precedence_default_env_file_then_var() -> None:
    env = {"NOMAD_VAR_image": "from-env", "NOMAD_VAR_count": "3", "NOMAD_VAR_dcs": '["env"]'}
    job = parse_hcl_job(VARS_JOB, env=env)
    assert job["Datacenters"] == ["env"] and job["TaskGroups"][0]["Count"] == 3
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"][0] == "from-env-v1"
    files = ['image = "from-file"\ncount = 4\n']
    job = parse_hcl_job(VARS_JOB, env=env, var_files=files)
    assert job["TaskGroups"][0]["Count"] == 4
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"][0] == "from-file-v1"
    job = parse_hcl_job(VARS_JOB, env=env, var_files=files, var_args={"image": "from-var", "debug": "true"})
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"][0] == "from-var-v1"
    assert job["Meta"]["debug"] == "true"


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    (VARS_JOB, {}, r'Unset variable "dcs"; A used variable must be set or have a default value; see https://'),
    (VARS_JOB, {"var_args": {"dcs": "[]", "nope": "1"}},
     'Undefined -var variable; A "nope" variable was passed in the command line but was not found'),
    (VARS_JOB, {"var_args": {"dcs": "[]"}, "var_files": ["count = 4\nnope = 1\n"]},
     'Undefined variable; A "nope" variable was set but was not found in known variables'),
    (VARS_JOB, {"var_args": {"dcs": "[]"}, "var_files": ['variable "count" {\n type = number\n}\n']},
     r'Variable declaration in a \.var file; .* To declare variable "count", place this block in one of your '
     r"job files\n\nTo set a value for this variable, use the definition syntax instead:"
     r"\n    count = <value>"),
    (VARS_JOB, {"var_args": {"dcs": "[]", "count": "many"}}, "'many' is not a valid number"),
    (VARS_JOB, {"var_args": {"dcs": "[]", "debug": "1"}}, "'1' is not a valid bool"),
    ('job "x" { datacenters = var.nope }', {}, 'undeclared variable "var.nope"'),
    ('job "x" { datacenters = local.nope }', {}, 'undeclared local value "local.nope"'),
    ('locals {\n a = local.b\n b = local.a\n}\njob "x" { region = local.a }', {}, "cycle: a -> b -> a"),
    ('variable "x" { default = "a" }\njob "x" { region = uper(var.x) }', {},
     'job.*region: Call to unknown function; There is no function named "uper"'),
    ('variable "x" { default = "a" }\njob "x" { region = "${var.x + 1}" }', {},
     "a number is required, not the string 'a'"),
    ('variable "x" { default = ["a"] }\njob "x" { region = "r-${var.x}" }', {},
     "Cannot include the given value in a string template: string required, not tuple"),
    ('variable "m" { default = { a = 1 } }\njob "x" { region = var.m.b }', {},
     'This object does not have an attribute named "b"'),
    ('variable "x" {}\nvariable "x" {}\njob "x" {}', {"var_args": {"x": "1"}}, "declared twice"),
])
def test_variable_mistakes_are_refused_with_what_is_wrong(text: str, kwargs: dict, message: str) -> None:
    with pytest.raises(HclJobError, match=message):
        parse_hcl_job(text, **kwargs)


def test_values_for_undeclared_variables_are_ignored_when_not_strict() -> None:
    # Nomad's -hcl2-strict=false and its parse API: only a warning, which nothing prints.
    job = parse_hcl_job(VARS_JOB, var_args={"dcs": '["dc1"]', "nope": "1"},
                        var_files=["count = 4\nalso = 1\n"], strict=False)
    assert job["TaskGroups"][0]["Count"] == 4


def test_variable_values_are_converted_to_the_declared_type_or_refused() -> None:
    text = 'variable "n" {\n type = number\n default = "3"\n}\njob "x" { group "g" { count = var.n } }'
    assert parse_hcl_job(text)["TaskGroups"][0]["Count"] == 3
    assert parse_hcl_job(text, var_files=['n = "4"\n'])["TaskGroups"][0]["Count"] == 4
    for bad in ('n = [1]\n', 'n = "x"\n'):
        with pytest.raises(HclJobError, match="is not a valid number"):
            parse_hcl_job(text, var_files=[bad])
    with pytest.raises(HclJobError, match="is not a valid number"):
        parse_hcl_job(text.replace('"3"', '"abc"'))
    lst = 'variable "l" { type = list(string) }\njob "x" { datacenters = var.l }'
    with pytest.raises(HclJobError, match="is not a valid list"):
        parse_hcl_job(lst, var_args={"l": '{ a = 1 }'})
    with pytest.raises(HclJobError, match="one line|not a valid"):
        parse_hcl_job(lst, var_args={"l": '["a"]\nx = 2'})
    with pytest.raises(HclJobError, match=r'variable "b" default: Variables not allowed.*\(var.a\)'):
        parse_hcl_job('variable "a" { default = "x" }\nvariable "b" { default = "${var.a}" }\njob "x" {}')


def test_an_escaped_interpolation_stays_literal_and_odd_locals_are_refused() -> None:
    job = parse_hcl_job('variable "x" { default = "v" }\n'
                        'job "j" { meta { a = "$${var.x}"\n b = "${var.x}-$${NOMAD_ALLOC_ID}" } }')
    assert job["Meta"] == {"a": "${var.x}", "b": "v-${NOMAD_ALLOC_ID}"}
    with pytest.raises(HclJobError):
        parse_hcl_job('locals = 5\njob "x" {}')


def test_check_restart_blocks_of_a_service_and_of_a_check() -> None:
    job = parse_hcl_job('''
job "restarty" {
  group "g" {
    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      check_restart {
        limit = 3
        grace = "30s"
      }
      check {
        type     = "tcp"
        interval = "5s"
        timeout  = "1s"
      }
      check {
        name     = "own"
        type     = "http"
        path     = "/"
        interval = "5s"
        timeout  = "1s"
        check_restart {
          limit = 1
        }
      }
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
    }
  }
}
''')
    svc = job["TaskGroups"][0]["Services"][0]
    assert svc["CheckRestart"] == {"Limit": 3, "Grace": 30 * 10**9}
    assert svc["Checks"][1]["CheckRestart"] == {"Limit": 1}
    checks = canonical_job(job)["TaskGroups"][0]["Services"][0]["Checks"]
    assert [c["CheckRestart"] for c in checks] == [{"Limit": 3, "Grace": 30 * 10**9, "IgnoreWarnings": False},
                                                   {"Limit": 1, "Grace": 30 * 10**9, "IgnoreWarnings": False}]


# ------------------------------------------------------------ artifact blocks (Nomad's TaskArtifact)
_SHA256 = "sha256:" + "ab" * 32


def _artifact_job(*artifacts: str) -> str:
    blocks = "\n".join(f"artifact {{\n{a}\n}}" for a in artifacts)
    return f'''job "a" {{ group "g" {{ task "t" {{
      driver = "raw_exec"
      config {{ command = "cat" }}
      {blocks}
    }} }} }}'''


def _artifacts_of(job: dict) -> list[dict]:
    return canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Artifacts"]


def test_artifact_blocks_map_onto_task_artifacts_with_nomads_defaults() -> None:
    job = parse_hcl_job(_artifact_job(
        f'source = "https://example.com/app.tar.gz"\ndestination = "local/bin"\n'
        f'options {{ checksum = "{_SHA256}" }}\nheaders {{ X-Token = "t" }}',
        'source = "https://example.com/dl/tool?v=1"\nmode = "file"',
        'source = "http://example.com/${NOMAD_META_x}/c.zip"'))
    assert job["TaskGroups"][0]["Tasks"][0]["Artifacts"][0] == {
        "GetterSource": "https://example.com/app.tar.gz", "RelativeDest": "local/bin",
        "GetterOptions": {"checksum": _SHA256}, "GetterHeaders": {"X-Token": "t"}}
    first, second, third = _artifacts_of(job)
    assert first["GetterMode"] == "any" and first["RelativeDest"] == "local/bin"
    assert second == {"GetterSource": "https://example.com/dl/tool?v=1", "GetterOptions": None,
                      "GetterHeaders": None, "GetterMode": "file", "RelativeDest": "local/tool"}
    assert third["RelativeDest"] == "local/" and third["GetterMode"] == "any"
    assert "Artifacts" not in canonical_job(parse_hcl_job(_artifact_job()))["TaskGroups"][0]["Tasks"][0]
    with pytest.raises(HclJobError, match=r"artifact\[0\]: 'chmod' not supported by this agent"):
        parse_hcl_job(_artifact_job('source = "https://e.com/x"\nchmod = true'))


@pytest.mark.parametrize("fields,message", [
    ({"GetterSource": ""}, "GetterSource: source must be specified"),
    ({"RelativeDest": "../../etc"}, "RelativeDest: destination escapes allocation directory"),
    ({"GetterMode": "tree"}, 'GetterMode: invalid artifact mode "tree"; must be one of: any, file, dir'),
    ({"GetterOptions": {"checksum": " "}}, "checksum value cannot be empty"),
    ({"GetterOptions": {"checksum": "abc"}}, 'checksum must be given as "type:value"; got "abc"'),
    ({"GetterOptions": {"checksum": "sha256:zz"}},
     "invalid checksum: encoding/hex: invalid byte: U+007A 'z'"),
    ({"GetterOptions": {"checksum": "crc32:abcd"}}, "unsupported checksum type: crc32"),
    ({"GetterOptions": {"checksum": "md5:abcd"}}, "invalid md5 checksum: abcd"),
    ({"GetterSource": "git::https://github.com/x/y"}, "is not supported by this agent"),
    ({"GetterSource": "s3::https://bucket.s3.amazonaws.com/x"}, "is not supported by this agent"),
    ({"GetterSource": "/tmp/file"}, "it fetches only http and https URLs"),
    ({"GetterHeaders": {"A": 1}}, "GetterHeaders.A: must be a string"),
    ({"GetterInsecure": "yes"}, "GetterInsecure: must be a boolean"),
])
def test_an_artifact_nomad_or_this_agent_refuses_is_refused_with_its_message(fields: dict,
                                                                            message: str) -> None:
    job = parse_hcl_job(_artifact_job('source = "https://example.com/x"'))
    job["TaskGroups"][0]["Tasks"][0]["Artifacts"] = [{"GetterSource": "https://example.com/x", **fields}]
    with pytest.raises(JobError) as e:
        canonical_job(job)
    assert str(e.value).startswith("TaskGroups[0].Tasks[0].Artifacts[0].") and message in str(e.value)


def test_an_artifact_destination_may_leave_the_task_for_the_shared_alloc_dir() -> None:
    job = parse_hcl_job(_artifact_job('source = "https://e.com/x"\ndestination = "../alloc/data"',
                                      'source = "https://e.com/y"\ndestination = "/abs/inside/task"'))
    assert [a["RelativeDest"] for a in _artifacts_of(job)] == ["../alloc/data", "/abs/inside/task"]


def test_reschedule_blocks_map_onto_the_jobs_and_the_groups_policy() -> None:
    job = parse_hcl_job('''
        job "r" {
          reschedule {
            delay          = "10s"
            delay_function = "constant"
          }
          group "g" {
            reschedule {
              attempts  = 3
              interval  = "1h"
              max_delay = "2m"
              unlimited = false
            }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert job["Reschedule"] == {"Delay": 10 * 10**9, "DelayFunction": "constant"}
    assert job["TaskGroups"][0]["ReschedulePolicy"] == {"Attempts": 3, "Unlimited": False,
                                                         "Interval": 3600 * 10**9, "MaxDelay": 120 * 10**9}
    rp = canonical_job(job)["TaskGroups"][0]["ReschedulePolicy"]
    assert rp == {"Attempts": 3, "Interval": 3600 * 10**9, "Delay": 10 * 10**9, "DelayFunction": "constant",
                  "MaxDelay": 120 * 10**9, "Unlimited": False}


_LIFECYCLE_JOB = '''
    job "lc" {
      group "g" {
        task "init" {
          lifecycle { hook = "prestart" }
          driver = "raw_exec"
          config { command = "/bin/true" }
        }
        task "proxy" {
          lifecycle {
            hook    = "prestart"
            sidecar = true
          }
          driver = "raw_exec"
          config { command = "/bin/sleep" }
        }
        task "main" {
          driver = "raw_exec"
          config { command = "/bin/sleep" }
        }
        task "cleanup" {
          lifecycle { hook = "poststop" }
          driver = "raw_exec"
          config { command = "/bin/true" }
        }
      }
    }
'''


def test_lifecycle_blocks_map_onto_the_tasks_lifecycle_and_a_main_task_has_none() -> None:
    job = canonical_job(parse_hcl_job(_LIFECYCLE_JOB))
    tasks = {t["Name"]: t for t in job["TaskGroups"][0]["Tasks"]}
    assert tasks["init"]["Lifecycle"] == {"Hook": "prestart", "Sidecar": False}
    assert tasks["proxy"]["Lifecycle"] == {"Hook": "prestart", "Sidecar": True}
    assert tasks["cleanup"]["Lifecycle"] == {"Hook": "poststop", "Sidecar": False}
    assert "Lifecycle" not in tasks["main"]
    with pytest.raises(HclJobError, match=r"lifecycle: 'when' not supported by this agent"):
        parse_hcl_job(_LIFECYCLE_JOB.replace('hook = "poststop"', 'when = "later"'))


@pytest.mark.parametrize("lifecycle,message", [
    ({"Sidecar": True}, "Tasks[0].Lifecycle: Lifecycle validation failed: no lifecycle hook provided"),
    ({"Hook": "prestop"}, "Tasks[0].Lifecycle.Hook: Lifecycle validation failed: invalid hook: prestop"),
    ({"Hook": "prestart", "Sidecar": "yes"}, "Tasks[0].Lifecycle.Sidecar: must be a boolean"),
])
def test_a_lifecycle_nomad_refuses_is_refused_with_its_message(lifecycle: dict, message: str) -> None:
    job = canonical_job(parse_hcl_job(_LIFECYCLE_JOB))
    job["TaskGroups"][0]["Tasks"][0]["Lifecycle"] = lifecycle
    with pytest.raises(JobError, match=re.escape(message)):
        canonical_job(job)


def test_a_group_of_lifecycle_tasks_only_has_no_main_task_and_is_refused() -> None:
    job = canonical_job(parse_hcl_job(_LIFECYCLE_JOB))
    group = job["TaskGroups"][0]
    group["Tasks"] = [t for t in group["Tasks"] if t["Name"] != "main"]
    with pytest.raises(JobError, match="Task group g must have at least one main task"):
        canonical_job(job)


def test_a_logs_block_maps_onto_log_config_and_a_task_without_one_has_nomads_defaults() -> None:
    text = _LIFECYCLE_JOB.replace('task "main" {', 'task "main" {\n logs {\n max_files = 3\n'
                                  ' max_file_size = 2\n disabled = false }')
    job = canonical_job(parse_hcl_job(text))
    tasks = {t["Name"]: t for t in job["TaskGroups"][0]["Tasks"]}
    assert tasks["main"]["LogConfig"] == {"MaxFiles": 3, "MaxFileSizeMB": 2, "Disabled": False}
    assert tasks["init"]["LogConfig"] == {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False}
    with pytest.raises(HclJobError, match=r"logs: 'enabled' not supported by this agent"):
        parse_hcl_job(text.replace("disabled = false", "enabled = true"))


@pytest.mark.parametrize("logs,message", [
    ({"MaxFiles": 0}, "Tasks[0].LogConfig.MaxFiles: minimum number of files is 1; got 0"),
    ({"MaxFileSizeMB": -1}, "Tasks[0].LogConfig.MaxFileSizeMB: minimum file size is 1MB; got -1"),
    ({"MaxFiles": "3"}, "Tasks[0].LogConfig.MaxFiles: must be an integer"),
    ({"MaxFiles": 10**9}, "Tasks[0].LogConfig.MaxFiles: must be <= 1000"),
    ({"Disabled": "yes"}, "Tasks[0].LogConfig.Disabled: must be a boolean"),
])
def test_a_log_config_nomad_refuses_is_refused_with_its_message(logs: dict, message: str) -> None:
    job = canonical_job(parse_hcl_job(_LIFECYCLE_JOB))
    job["TaskGroups"][0]["Tasks"][0]["LogConfig"] = logs
    with pytest.raises(JobError, match=re.escape(message)):
        canonical_job(job)


def test_a_log_config_change_replaces_the_allocation_and_a_task_stored_without_one_does_not() -> None:
    from actors.scheduler.job import spec_digest

    job = canonical_job(parse_hcl_job(_LIFECYCLE_JOB))
    old = spec_digest(job, "g")
    job["TaskGroups"][0]["Tasks"][2]["LogConfig"]["MaxFiles"] = 2
    assert spec_digest(job, "g") != old
    job["TaskGroups"][0]["Tasks"][2]["LogConfig"]["MaxFiles"] = 10
    assert spec_digest(job, "g") == old
    for t in job["TaskGroups"][0]["Tasks"]:
        del t["LogConfig"]  # stored before tasks had one: Nomad's defaults, so nothing is replaced
    assert spec_digest(job, "g") == old


def test_a_groups_ephemeral_disk_block_maps_to_its_ephemeral_disk() -> None:
    job = parse_hcl_job('''
        job "db" {
          group "g" {
            ephemeral_disk {
              size    = 500
              sticky  = true
              migrate = true
            }
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
          group "plain" {
            task "t" {
              driver = "raw_exec"
              config { command = "/bin/true" }
            }
          }
        }''')
    assert job["TaskGroups"][0]["EphemeralDisk"] == {"SizeMB": 500, "Sticky": True, "Migrate": True}
    assert "EphemeralDisk" not in job["TaskGroups"][1]
    canon = canonical_job(job)
    assert canon["TaskGroups"][0]["EphemeralDisk"] == {"Sticky": True, "SizeMB": 500, "Migrate": True}
    assert canon["TaskGroups"][1]["EphemeralDisk"] == {"Sticky": False, "SizeMB": 300, "Migrate": False}
    only_size = parse_hcl_job('job "x" { group "g" { ephemeral_disk { size = 300 } } }')
    assert only_size["TaskGroups"][0]["EphemeralDisk"] == {"SizeMB": 300}


@pytest.mark.parametrize(("hcl", "message"), [
    ('job "x" { group "g" { ephemeral_disk { size = 300\n sizes = 2 } } }',
     r'group\[\'g\'\]\.ephemeral_disk: Unsupported argument; An argument named "sizes" is not expected '
     r'here\. Did you mean "size"\?'),
    ('job "x" { group "g" {\n ephemeral_disk { size = 5 }\n'
     ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" } } } }',
     r"TaskGroups\[0\]\.EphemeralDisk\.SizeMB: minimum DiskMB value is 10; got 5"),
    ('job "x" { group "g" {\n ephemeral_disk { size = 100 }\n'
     ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" } } } }',
     r"TaskGroups\[0\]\.Tasks\[0\]\.LogConfig: log storage \(100 MB\) must be less than requested disk "
     r"capacity \(100 MB\)"),
    ('job "x" { group "g" {\n ephemeral_disk { sticky = "yes" }\n'
     ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" } } } }',
     r"ephemeral_disk\.sticky: Unsuitable value type; Unsuitable value: a bool is required"),
])
def test_a_bad_ephemeral_disk_is_refused_with_nomads_message(hcl: str, message: str) -> None:
    with pytest.raises((HclJobError, JobError), match=message):
        canonical_job(parse_hcl_job(hcl))


def _template_job(*blocks: str) -> str:
    body = "\n".join(f"template {{\n{b}\n}}" for b in blocks)
    return (f'job "t" {{ group "g" {{ task "t" {{\n driver = "raw_exec"\n'
            f' config {{ command = "/bin/sleep" }}\n{body}\n}} }} }}')


def _templates_of(job: dict) -> list[dict]:
    return canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Templates"]


def test_template_blocks_map_onto_task_templates_with_nomads_defaults() -> None:
    job = parse_hcl_job(_template_job(
        'data = <<EOH\npassword={{ with nomadVar "nomad/jobs/t" }}{{ .password }}{{ end }}\nEOH\n'
        'destination = "local/app.conf"\nperms = "600"\nchange_mode = "signal"\nchange_signal = "sighup"\n'
        'splay = "10s"\nwait {\n min = "2s"\n max = "10s"\n}',
        'data = <<-EOH\n    A="{{ env "NOMAD_TASK_NAME" }}"\n    EOH\n'
        'destination = "secrets/a.env"\nenv = true\n'
        'left_delimiter = "[["\nright_delimiter = "]]"\nerror_on_missing_key = true',
        'source = "local/in.tpl"\ndestination = "${NOMAD_ALLOC_DIR}/out"'))
    first, second, third = _templates_of(job)
    assert first == {"SourcePath": "", "DestPath": "local/app.conf",
                     "EmbeddedTmpl": 'password={{ with nomadVar "nomad/jobs/t" }}{{ .password }}{{ end }}\n',
                     "ChangeMode": "signal", "ChangeSignal": "SIGHUP", "Splay": 10 * 10**9, "Perms": "600",
                     "LeftDelim": "{{", "RightDelim": "}}", "Envvars": False, "ErrMissingKey": False,
                     "Wait": {"Min": 2 * 10**9, "Max": 10 * 10**9}}
    assert second["EmbeddedTmpl"] == 'A="{{ env "NOMAD_TASK_NAME" }}"\n' and second["Envvars"] is True
    assert (second["LeftDelim"], second["RightDelim"], second["ErrMissingKey"]) == ("[[", "]]", True)
    assert (third["ChangeMode"], third["Perms"], third["Splay"], third["Wait"]) == \
        ("restart", "0644", 5 * 10**9, None)
    assert third["SourcePath"] == "local/in.tpl"
    with pytest.raises(HclJobError,
                       match=r"change_script: 'run_on_first_render' not supported by this agent"):
        parse_hcl_job(_template_job('data = "x"\ndestination = "local/x"\nchange_mode = "script"\n'
                                    'change_script {\n command = "/x"\n run_on_first_render = true\n}'))


def test_change_mode_script_maps_its_change_script_with_nomads_defaults() -> None:
    job = parse_hcl_job(_template_job(
        'data = "a"\ndestination = "local/a"\nchange_mode = "script"\n'
        'change_script {\n command = "/bin/reload"\n args = ["-q", "now"]\n timeout = "20s"\n'
        ' fail_on_error = true\n}',
        'data = "b"\ndestination = "local/b"\nchange_mode = "script"\nchange_script {\n command = "/x"\n}'))
    first, second = _templates_of(job)
    assert first["ChangeMode"] == "script" and first["ChangeScript"] == {
        "Command": "/bin/reload", "Args": ["-q", "now"], "Timeout": 20 * 10**9, "FailOnError": True}
    assert second["ChangeScript"] == {"Command": "/x", "Args": [], "Timeout": 5 * 10**9, "FailOnError": False}
    # The JSON job's ChangeScript is canonicalized the same way.
    raw = parse_hcl_job(_template_job())
    raw["TaskGroups"][0]["Tasks"][0]["Templates"] = [
        {"EmbeddedTmpl": "x", "DestPath": "local/x", "ChangeMode": "script",
         "ChangeScript": {"Command": "/y"}}]
    assert canonical_job(raw)["TaskGroups"][0]["Tasks"][0]["Templates"][0]["ChangeScript"] == {
        "Command": "/y", "Args": [], "Timeout": 5 * 10**9, "FailOnError": False}


def test_a_job_without_templates_is_stored_as_before() -> None:
    job = parse_hcl_job(_template_job())
    assert "Templates" not in canonical_job(job)["TaskGroups"][0]["Tasks"][0]


@pytest.mark.parametrize("fields,message", [
    ({"EmbeddedTmpl": ""},
     "Template 1 validation failed: Must specify a source path or have an embedded template"),
    ({"DestPath": ""}, "Template 1 validation failed: Must specify a destination for the template"),
    ({"DestPath": "../../../etc/passwd"}, "destination escapes allocation directory"),
    ({"ChangeMode": "signal", "ChangeSignal": ""}, "Must specify signal value when change mode is signal"),
    ({"ChangeMode": "signal", "ChangeSignal": "SIGHUP", "Envvars": True},
     "cannot use signals with env var templates"),
    ({"ChangeMode": "bounce"},
     "Invalid change mode. Must be one of the following: noop, signal, script, restart"),
    ({"ChangeMode": "script"},
     "Template 1 validation failed: must specify change script configuration value when change mode is "
     "script"),
    ({"ChangeMode": "script", "ChangeScript": {"Args": ["x"]}},
     "Template 1 validation failed: must specify script path value when change mode is script"),
    ({"Splay": -1}, "Must specify positive splay value"),
    ({"Perms": "999"}, 'Failed to parse "999" as octal'),
    ({"Wait": {"Min": 10 * 10**9, "Max": 10**9}}, "wait min 10s is greater than max 1s"),
])
def test_a_template_nomad_refuses_is_refused_with_its_message(fields: dict, message: str) -> None:
    job = parse_hcl_job(_template_job())
    job["TaskGroups"][0]["Tasks"][0]["Templates"] = [{"EmbeddedTmpl": "x", "DestPath": "local/x", **fields}]
    with pytest.raises(JobError) as e:
        canonical_job(job)
    assert str(e.value).startswith("TaskGroups[0].Tasks[0].Templates[0]") and message in str(e.value)


def test_signal_mode_without_a_change_signal_sends_sighup_as_nomads_api_canonicalizes() -> None:
    job = parse_hcl_job(_template_job('data = "a"\ndestination = "local/x"\nchange_mode = "signal"'))
    assert _templates_of(job)[0]["ChangeSignal"] == "SIGHUP"


def test_two_templates_to_one_destination_are_refused() -> None:
    job = parse_hcl_job(_template_job('data = "a"\ndestination = "local/x"',
                                      'data = "b"\ndestination = "local/x"'))
    with pytest.raises(JobError, match="Template 2 has same destination as 1"):
        canonical_job(job)


def test_a_template_may_write_to_the_shared_alloc_dir() -> None:
    job = parse_hcl_job(_template_job('data = "a"\ndestination = "../alloc/x"'))
    assert _templates_of(job)[0]["DestPath"] == "../alloc/x"


def test_a_port_names_its_host_network_in_hcl_and_json() -> None:
    text = """job "web" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "http" { host_network = "public" }
      port "admin" {
        static = 8080
        host_network = "lo"
      }
      port "plain" {}
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}"""
    job = parse_hcl_job(text)
    net = job["TaskGroups"][0]["Networks"][0]
    assert net["DynamicPorts"] == [{"Label": "http", "HostNetwork": "public"}, {"Label": "plain"}]
    assert net["ReservedPorts"] == [{"Label": "admin", "Value": 8080, "HostNetwork": "lo"}]
    ports = canonical_job(job)["TaskGroups"][0]["Networks"][0]
    assert ports["DynamicPorts"][0]["HostNetwork"] == "public"
    assert "HostNetwork" not in ports["DynamicPorts"][1]
    assert ports["ReservedPorts"][0]["HostNetwork"] == "lo"
    job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["HostNetwork"] = "default"  # the node's address
    assert "HostNetwork" not in canonical_job(job)["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]
    job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["HostNetwork"] = "${meta.net}"
    with pytest.raises(JobError, match="interpolated host network names are not supported"):
        canonical_job(job)
    job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["HostNetwork"] = 3
    with pytest.raises(JobError, match="HostNetwork: must be a string"):
        canonical_job(job)


def test_action_blocks_map_onto_the_tasks_actions_and_are_checked_as_nomad_checks_them() -> None:
    text = '''
job "acts" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/sleep" }
      action "logs" {
        command = "/bin/tail"
        args    = ["-n", "20", "local/app.log"]
      }
      action "whoami" { command = "/usr/bin/id" }
    }
  }
}'''
    job = parse_hcl_job(text)
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Actions"] == [
        {"Name": "logs", "Command": "/bin/tail", "Args": ["-n", "20", "local/app.log"]},
        {"Name": "whoami", "Command": "/usr/bin/id", "Args": None}]
    assert canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Actions"] == task["Actions"]
    with pytest.raises(HclJobError, match=r"action\['x'\]: 'cmd' not supported"):
        parse_hcl_job(text.replace('action "whoami" { command', 'action "x" { cmd'))

    def refused(actions: list, message: str) -> None:
        bad = {**job, "TaskGroups": [{**job["TaskGroups"][0], "Tasks": [{**task, "Actions": actions}]}]}
        with pytest.raises(JobError, match=re.escape(message)):
            canonical_job(bad)
    refused([{"Name": "a"}], "Task t validation failed: Action a validation failed: command cannot be empty")
    refused([{"Name": "has space", "Command": "/bin/true"}],
            "Action has space validation failed: invalid name 'has space'")
    refused([{"Name": "a", "Command": "/bin/true"}] * 2,
            "Task t validation failed: Action a defined multiple times")
    refused([{"Name": "a", "Command": "/bin/true", "Args": [1]}], "Args: must be a list of strings")


@pytest.mark.parametrize(("line", "error"), [
    ("cont = 2",
     'Unsupported argument; An argument named "cont" is not expected here. Did you mean "count"?'),
    ('tsk "u" {\n  driver = "raw_exec"\n}',
     'Unsupported block type; Blocks of type "tsk" are not expected here. Did you mean "task"?'),
    ("frobnicate = 1", "'frobnicate' not supported by this agent (supported here: "),
])
def test_a_misspelt_name_is_answered_with_nomads_suggestion(line: str, error: str) -> None:
    """HCL's nameSuggestion (fewer than three edits from a name the block takes), in Nomad's words; a
    name far from any is listed against what this agent supports."""
    text = (f'job "j" {{\n  group "g" {{\n    {line}\n    task "t" {{\n      driver = "raw_exec"\n'
            '    }\n  }\n}\n')
    with pytest.raises(HclJobError) as got:
        parse_hcl_job(text)
    assert str(got.value).startswith("job['j'].group['g']: ") and error in str(got.value), str(got.value)


def test_a_task_reserving_whole_cores_asks_for_them_and_no_cpu_mhz() -> None:
    """``resources { cores = N }``: the task reserves N whole cores, and its CPU in MHz is 0 (Nomad's api
    Canonicalize), not the default 100; cpu and cores together are refused as Nomad refuses them."""
    task = 'job "x" { group "g" { task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" }\n'
    job = parse_hcl_job(task + ' resources {\n cores = 2\n memory = 64 } } } }')
    res = canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert (res["Cores"], res["CPU"], res["MemoryMB"]) == (2, 0, 64)
    both = parse_hcl_job(task + ' resources {\n cores = 1\n cpu = 500 } } } }')
    with pytest.raises(JobError, match=r"Task can only ask for 'cpu' or 'cores' resource, not both\."):
        canonical_job(both)


def test_number_fields_take_a_string_holding_a_number_as_nomads_decoder() -> None:
    # An untyped variable set by -var holds a string: Nomad's decoder converts it where a number goes.
    text = ('variable "n" {\n default = 1\n}\njob "x" {\n priority = "70"\n group "g" {\n count = var.n\n'
            ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" }\n'
            ' resources {\n cpu = "100"\n memory = 64.0\n }\n }\n }\n}\n')
    job = parse_hcl_job(text, var_args={"n": "3"})
    assert (job["Priority"], job["TaskGroups"][0]["Count"]) == (70, 3)
    assert job["TaskGroups"][0]["Tasks"][0]["Resources"] == {"CPU": 100, "MemoryMB": 64}
    with pytest.raises(HclJobError, match=r"group\['g'\]\.count: Unsuitable value type; Unsuitable value: a "
                                          "number is required"):
        parse_hcl_job(text, var_args={"n": "three"})
    with pytest.raises(HclJobError, match=r"count: .*value must be a whole number"):
        parse_hcl_job(text, var_args={"n": "2.5"})


def test_number_args_are_kept_as_written_and_accepted_for_the_driver_to_convert() -> None:
    job = parse_hcl_job('variable "port" {\n default = 8080\n}\njob "x" { group "g" { task "t" {\n'
                        ' driver = "raw_exec"\n config {\n command = "/bin/echo"\n'
                        ' args = ["-p", var.port] \n}\n'
                        '}}}\n')
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["-p", 8080]  # as Nomad's job keeps it
    assert canonical_job(job)["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["-p", 8080]


def test_a_task_written_in_the_job_is_a_group_of_its_own_name_ahead_of_the_groups() -> None:
    # Nomad's e2e/taskevents/input/simple_batch.nomad writes its task straight in the job block.
    job = parse_hcl_job('job "b" {\n type = "batch"\n group "later" {\n task "x" {\n driver = "raw_exec"\n'
                        ' config { command = "/bin/true" }\n }\n }\n task "alone" {\n driver = "raw_exec"\n'
                        ' config {\n command = "sleep"\n args = ["1"]\n }\n }\n}\n')
    assert [g["Name"] for g in job["TaskGroups"]] == ["alone", "later"]
    alone = {"Name": "alone", "Driver": "raw_exec", "Config": {"command": "sleep", "args": ["1"]}}
    assert job["TaskGroups"][0] == {"Name": "alone", "Tasks": [alone]}
    assert canonical_job(job)["TaskGroups"][0]["Count"] == 1


def test_bool_and_whole_fields_take_quoted_values_as_nomads_decoder() -> None:
    # Nomad's e2e/rescheduling inputs write unlimited = "true"; a quoted "false" must not read as true.
    job = parse_hcl_job('job "r" {\n periodic {\n crons = ["@daily"]\n prohibit_overlap = "false"\n'
                        ' enabled = "true"\n }\n group "g" {\n reschedule {\n unlimited = "true"\n'
                        ' delay = "5s"\n }\n update {\n max_parallel = "2"\n auto_revert = "true"\n }\n'
                        ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" }\n }\n }\n}\n')
    group = job["TaskGroups"][0]
    assert group["ReschedulePolicy"] == {"Unlimited": True, "Delay": 5 * 10**9}
    assert group["Update"] == {"MaxParallel": 2, "AutoRevert": True}
    assert (job["Periodic"]["ProhibitOverlap"], job["Periodic"]["Enabled"]) == (False, True)
    with pytest.raises(HclJobError, match=r"reschedule\.unlimited: .*a bool is required"):
        parse_hcl_job('job "r" { group "g" {\n reschedule { unlimited = "yes" }\n }\n}\n')


def test_restart_migrate_and_ephemeral_disk_take_quoted_values_as_nomads_decoder() -> None:
    job = parse_hcl_job('job "r" { group "g" {\n restart { attempts = "3" }\n'
                        ' migrate { max_parallel = "2" }\n'
                        ' ephemeral_disk {\n size = "300"\n sticky = "true"\n }\n'
                        ' task "t" {\n driver = "raw_exec"\n config { command = "/bin/true" }\n }\n }\n}\n')
    group = job["TaskGroups"][0]
    assert (group["RestartPolicy"]["Attempts"], group["Migrate"]["MaxParallel"]) == (3, 2)
    assert group["EphemeralDisk"] == {"SizeMB": 300, "Sticky": True}
    canonical_job(job)
