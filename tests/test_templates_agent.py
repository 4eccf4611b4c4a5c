"""Task templates in a real -dev agent: an HCL job file's template reads a Nomad variable (HTTP
API), is written into the task's directory, and its env = true lines reach a raw_exec process."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.hcl_job import parse_hcl_job
from tests.test_agent_process import wait_for
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401  (the module's -dev agent)

pytestmark = pytest.mark.timeout(120)

JOB = '''
job "tmpl" {
  type = "batch"
  group "g" {
    restart { attempts = 0 }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "cat local/app.conf; echo \\"user=$DB_USER\\""]
      }
      template {
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/tmpl" -}}
          password={{ .password }}
          {{ end -}}
          task={{ env "NOMAD_TASK_NAME" }}
          EOT
        destination = "local/app.conf"
        perms       = "600"
      }
      template {
        data        = "DB_USER={{ with nomadVar \\"nomad/jobs/tmpl\\" }}{{ .user }}{{ end }}"
        destination = "secrets/db.env"
        env         = true
      }
    }
  }
}
'''


def test_a_job_files_templates_render_from_a_variable_before_a_raw_exec_task_starts(
        dev: Any) -> None:  # noqa: F811
    items = {"password": "s3cret", "user": "alice"}
    r = call(dev.http_port, "PUT", "/v1/var/nomad/jobs/tmpl", {"Items": items})
    assert r.status == 200, r.text
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": parse_hcl_job(JOB)})
    assert r.status == 200, r.text

    def ended() -> Any:
        allocs = call(dev.http_port, "GET", "/v1/job/tmpl/allocations").json()
        return next((a for a in allocs if a["ClientStatus"] in ("complete", "failed")), None)

    alloc = wait_for(ended, "the template job's task ended", PLACE_DEADLINE_S)
    assert alloc["ClientStatus"] == "complete", alloc["TaskStates"]
    out = call(dev.http_port, "GET", f"/v1/client/fs/cat/{alloc['ID']}?path=alloc/logs/t.stdout.0")
    assert out.text == "password=s3cret\ntask=t\nuser=alice\n"
    st = call(dev.http_port, "GET", f"/v1/client/fs/stat/{alloc['ID']}?path=t/local/app.conf").json()
    assert st["FileMode"] == "-rw-------", st  # its perms
