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


def _job(name: str, tmpl: str) -> dict[str, Any]:
    task: dict[str, Any] = {"Name": "t", "Driver": "raw_exec",
                            "Config": {"command": "/bin/sleep", "args": ["300"]}}
    if tmpl:
        task["Templates"] = [{"EmbeddedTmpl": tmpl, "DestPath": "local/x"}]
    return {"ID": name, "Name": name, "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                            "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                            "Tasks": [task]}]}


def test_a_template_that_cannot_render_fails_only_its_task(dev: Any) -> None:  # noqa: F811
    """Review 13: `{{ indent ... }}` of gigabytes, or a function raising, killed the client's
    AllocRunner: the bad allocation stayed pending and a healthy one on the node was lost."""
    def allocs(name: str) -> list[dict[str, Any]]:
        return call(dev.http_port, "GET", f"/v1/job/{name}/allocations").json()

    try:
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": _job("good", "")}).status == 200
        wait_for(lambda: [a for a in allocs("good") if a["ClientStatus"] == "running"], "good runs",
                 PLACE_DEADLINE_S)
        bad = _job("bad", '{{ "x" | indent 99999999999 }}')
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": bad}).status == 200
        failed = wait_for(lambda: [a for a in allocs("bad") if a["ClientStatus"] == "failed"], "bad fails",
                          PLACE_DEADLINE_S)[0]
        texts = [str(v) for e in failed["TaskStates"]["t"]["Events"] if e["Type"] == "Killing"
                 for v in e.values()]
        assert any(t.startswith("Template failed: ") and "larger than" in t for t in texts), texts
        (good,) = allocs("good")
        assert good["ClientStatus"] == "running"
        r = call(dev.http_port, "PUT", f"/v1/client/allocation/{good['ID']}/restart", {})
        assert r.status == 200, r.text
    finally:
        for name in ("good", "bad"):
            call(dev.http_port, "DELETE", f"/v1/job/{name}?purge=true")


def test_a_change_script_runs_in_a_raw_exec_tasks_directory_with_its_env(dev: Any) -> None:  # noqa: F811
    """change_mode = "script": a changed variable re-renders the template and the change_script runs in
    the task (its directory, its environment), leaving the task running."""
    job = parse_hcl_job('''
job "cscript" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["300"]
      }
      template {
        data          = "v={{ with nomadVar \\"nomad/jobs/cscript\\" }}{{ .v }}{{ end }}"
        destination   = "local/v.conf"
        change_mode   = "script"
        splay         = "0s"
        wait {
          min = "0s"
          max = "1s"
        }
        change_script {
          command = "/bin/sh"
          args    = ["-c", "cat local/v.conf > local/marker; echo \\" $NOMAD_TASK_NAME\\" >> local/marker"]
          timeout = "10s"
        }
      }
    }
  }
}
''')
    try:
        assert call(dev.http_port, "PUT", "/v1/var/nomad/jobs/cscript", {"Items": {"v": "1"}}).status == 200
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200

        def running() -> Any:
            allocs = call(dev.http_port, "GET", "/v1/job/cscript/allocations").json()
            return next((a for a in allocs if a["ClientStatus"] == "running"), None)

        alloc = wait_for(running, "the change_script job runs", PLACE_DEADLINE_S)
        assert call(dev.http_port, "PUT", "/v1/var/nomad/jobs/cscript", {"Items": {"v": "2"}}).status == 200

        def marker() -> str:
            r = call(dev.http_port, "GET", f"/v1/client/fs/cat/{alloc['ID']}?path=t/local/marker")
            return r.text if r.status == 200 else ""

        # The script writes the marker in two steps: wait for the second (a read between them sees "v=2").
        assert wait_for(lambda: (m := marker()).endswith("\n") and m, "the change_script wrote its marker",
                        30.0) == "v=2 t\n"
        want = ("Template successfully ran script /bin/sh with arguments: [-c cat local/v.conf > "
                'local/marker; echo " $NOMAD_TASK_NAME" >> local/marker]. Exit code: 0')

        def events() -> list[dict[str, Any]]:
            a = call(dev.http_port, "GET", f"/v1/allocation/{alloc['ID']}").json()
            return a["TaskStates"]["t"]["Events"]

        wait_for(lambda: any(e["Message"] == want for e in events()), "the script's event", 10.0,
                 lambda: str(events()))
        a = call(dev.http_port, "GET", f"/v1/allocation/{alloc['ID']}").json()
        assert a["ClientStatus"] == "running"
    finally:
        call(dev.http_port, "DELETE", "/v1/job/cscript?purge=true")


def test_a_templates_env_function_reads_the_nodes_attributes(dev: Any) -> None:  # noqa: F811
    """`{{ env "node.unique.name" }}` rendered empty: Nomad's template runner reads TaskEnv.All(), the
    task's environment and the node's attributes (node.*, attr.*, meta.*)."""
    job = parse_hcl_job('''
job "nodeattrs" {
  type = "batch"
  group "g" {
    restart { attempts = 0 }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/cat"
        args    = ["local/n.txt"]
      }
      template {
        data        = <<-EOT
          {{ env "node.unique.name" }}|{{ env "node.datacenter" }}
          {{ env "attr.kernel.name" }}|{{ env "NOMAD_TASK_NAME" }}
          EOT
        destination = "local/n.txt"
      }
    }
  }
}
''')
    try:
        assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200

        def ended() -> Any:
            allocs = call(dev.http_port, "GET", "/v1/job/nodeattrs/allocations").json()
            return next((a for a in allocs if a["ClientStatus"] in ("complete", "failed")), None)

        alloc = wait_for(ended, "the node attributes job ended", PLACE_DEADLINE_S)
        assert alloc["ClientStatus"] == "complete", alloc["TaskStates"]
        node = call(dev.http_port, "GET", f"/v1/node/{alloc['NodeID']}").json()
        out = call(dev.http_port, "GET", f"/v1/client/fs/cat/{alloc['ID']}?path=alloc/logs/t.stdout.0")
        assert out.text == f"{node['Name']}|dc1\n{node['Attributes']['kernel.name']}|t\n"
    finally:
        call(dev.http_port, "DELETE", "/v1/job/nodeattrs?purge=true")
