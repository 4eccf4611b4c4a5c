"""HCL2 expressions end to end: ``nomad job run`` of a file using functions, a dynamic block, a validated
variable and file() against a -dev agent, and ``nomad job inspect`` of what the servers keep."""

from __future__ import annotations

import json

from tests.test_cli_jobs import nomad
from tests.test_http_jobs import call, dev  # noqa: F401

JOB = '''
variable "messages" {
  type    = list(string)
  default = ["one", "two"]
  validation {
    condition     = length(var.messages) > 0
    error_message = "Give at least one message."
  }
}
locals {
  tasks = { for i, m in var.messages : "say-${m}" => { text = upper(m), n = i + 1 } }
}
job "hcl2-e2e" {
  type        = "batch"
  datacenters = ["dc1"]
  meta {
    motd  = trimspace(file("motd.txt"))
    total = length(var.messages) * 10
  }
  group "g" {
    dynamic "task" {
      for_each = local.tasks
      labels   = [task.key]
      content {
        driver = "raw_exec"
        config {
          command = "/bin/sh"
          args    = ["-c", "echo ${task.value.text} ${task.value.n} > ${NOMAD_ALLOC_DIR}/out"]
        }
        resources {
          cpu    = 50 * task.value.n
          memory = 32
        }
      }
    }
  }
}
'''


def test_job_run_of_a_file_with_expressions_keeps_the_evaluated_job(dev, tmp_path):  # noqa: F811
    (tmp_path / "motd.txt").write_text("  welcome  \n")
    path = tmp_path / "e2e.nomad.hcl"
    path.write_text(JOB)
    run = nomad(dev, "job", "run", "-detach", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    inspect = nomad(dev, "job", "inspect", "hcl2-e2e")
    assert inspect.returncode == 0, inspect.stderr
    job = json.loads(inspect.stdout)["Job"]
    assert job["Meta"] == {"motd": "welcome", "total": "20"}
    tasks = job["TaskGroups"][0]["Tasks"]
    assert [t["Name"] for t in tasks] == ["say-one", "say-two"]
    assert tasks[1]["Config"]["args"] == ["-c", "echo TWO 2 > ${NOMAD_ALLOC_DIR}/out"]
    assert [t["Resources"]["CPU"] for t in tasks] == [50, 100]
    refused = nomad(dev, "job", "run", "-detach", "-var", "messages=[]", str(path))
    assert refused.returncode == 1 and "Give at least one message." in refused.stderr
    # The job-parse API reads no files, as Nomad's.
    parsed = call(dev.http_port, "PUT", "/v1/jobs/parse", {"JobHCL": JOB})
    assert parsed.status == 400 and "filesystem function disabled" in parsed.text
    assert nomad(dev, "job", "stop", "-purge", "-detach", "hcl2-e2e").returncode == 0


def test_values_for_undeclared_variables_fail_the_cli_unless_not_strict_and_the_parse_api(dev, tmp_path):  # noqa: F811
    path = tmp_path / "e2e.nomad.hcl"
    path.write_text(JOB.replace('trimspace(file("motd.txt"))', '"hi"'))
    varfile = tmp_path / "extra.vars.hcl"
    varfile.write_text('messages = ["a"]\nmesages = ["typo"]\n')
    refused = nomad(dev, "job", "validate", "-var-file", str(varfile), str(path))
    assert refused.returncode == 1, refused.stdout
    assert 'Undefined variable; A "mesages" variable was set but was not found' in refused.stderr
    refused = nomad(dev, "job", "validate", "-var", "nope=1", str(path))
    assert refused.returncode == 1 and 'Undefined -var variable; A "nope" variable' in refused.stderr
    loose = nomad(dev, "job", "validate", "-hcl2-strict=false", "-var", "nope=1", "-var-file", str(varfile),
                  str(path))
    assert loose.returncode == 0, loose.stderr
    parsed = call(dev.http_port, "PUT", "/v1/jobs/parse",
                  {"JobHCL": path.read_text(), "Variables": varfile.read_text()})
    assert parsed.status == 200, parsed.text
    assert [t["Name"] for t in parsed.json()["TaskGroups"][0]["Tasks"]] == ["say-a"]
    failed = call(dev.http_port, "PUT", "/v1/jobs/parse",
                  {"JobHCL": path.read_text(), "Variables": "messages = []"})
    assert failed.status == 400 and failed.text.startswith("Failed to parse job: ")
