"""Namespaces: only Nomad's built-in "default" exists (none are managed here); lists honour ?namespace=."""

from __future__ import annotations

import pytest

from actors.scheduler.job import canonical_job
from tests.test_http_jobs import call, dev, sleep_job  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def test_a_job_in_a_namespace_that_does_not_exist_is_refused_naming_it():
    """The state store decides, at the registration's place in the log (Nomad's state store and its
    jobNamespaceConstraintCheckHook), so a namespace deleted meanwhile cannot be raced."""
    from actors.state.store import StateStore, command

    job = canonical_job(sleep_job("ns-job"))
    assert job["Namespace"] == "default"
    assert canonical_job({**sleep_job("ns-job"), "Namespace": "prod"})["Namespace"] == "prod"
    st = StateStore()
    got = st.apply(1, command("job_register", job={**job, "Namespace": "prod"}, now=1.0))
    assert got == {"ok": False, "error": 'job "ns-job" is in nonexistent namespace "prod"'}
    assert st.apply(2, command("namespace_upsert", namespaces=[{"Name": "prod"}]))["ok"]
    assert st.apply(3, command("job_register", job={**job, "Namespace": "prod"}, now=1.0))["ok"]


def test_job_list_filters_by_namespace_and_star_lists_all(dev):  # noqa: F811
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("ns-listed")})
    assert r.status == 200, r.text
    bad = call(dev.http_port, "PUT", "/v1/jobs", {"Job": {**sleep_job("ns-other"), "Namespace": "prod"}})
    assert bad.status == 400 and "nonexistent namespace" in bad.text
    ids = lambda q: [j["ID"] for j in call(dev.http_port, "GET", f"/v1/jobs{q}").json()]
    for q in ("", "?namespace=default", "?namespace=*"):
        assert "ns-listed" in ids(q), q
    assert ids("?namespace=prod") == []
    assert call(dev.http_port, "DELETE", "/v1/job/ns-listed?purge=true").status == 200


def test_namespaces_are_created_read_listed_updated_and_deleted_over_http(dev):  # noqa: F811
    port = dev.http_port
    listed = call(port, "GET", "/v1/namespaces")
    assert listed.status == 200 and [n["Name"] for n in listed.json()] == ["default"]
    assert listed.json()[0]["Description"] == "Default shared namespace"
    r = call(port, "PUT", "/v1/namespace", {"Name": "http-a", "Description": "team a", "Meta": {"k": "v"},
                                            "Capabilities": {"DisabledTaskDrivers": ["docker"]}})
    assert r.status == 200, r.text
    created = int(r.headers["x-nomad-index"])
    got = call(port, "GET", "/v1/namespace/http-a")
    assert got.status == 200 and int(got.headers["x-nomad-index"]) >= created
    ns = got.json()
    assert (ns["Name"], ns["Description"], ns["Meta"]) == ("http-a", "team a", {"k": "v"})
    assert ns["Capabilities"]["DisabledTaskDrivers"] == ["docker"]
    assert ns["CreateIndex"] == ns["ModifyIndex"] == created
    r = call(port, "POST", "/v1/namespace/http-a", {"Name": "http-a", "Description": "changed"})
    assert r.status == 200, r.text
    ns = call(port, "GET", "/v1/namespace/http-a").json()
    assert ns["Description"] == "changed" and ns["CreateIndex"] == created < ns["ModifyIndex"]
    assert [n["Name"] for n in call(port, "GET", "/v1/namespaces").json()] == ["default", "http-a"]
    assert [n["Name"] for n in call(port, "GET", "/v1/namespaces?prefix=http").json()] == ["http-a"]
    # Nomad's errors: a mismatched path, a bad name, the default, one that does not exist
    r = call(port, "PUT", "/v1/namespace/other", {"Name": "http-a"})
    assert (r.status, r.text) == (400, "Namespace name does not match request path")
    r = call(port, "PUT", "/v1/namespace", {"Name": "no spaces"})
    assert r.status == 500 and 'invalid name "no spaces". Must match regex ^[a-zA-Z0-9-]{1,128}$' in r.text
    r = call(port, "DELETE", "/v1/namespace/default")
    assert (r.status, r.text) == (500, "can not delete default namespace")
    assert call(port, "GET", "/v1/namespace/none").status == 404
    assert call(port, "DELETE", "/v1/namespace/none").text == "namespace not found"
    r = call(port, "DELETE", "/v1/namespace/http-a")
    assert r.status == 200 and int(r.headers["x-nomad-index"]) > created
    assert call(port, "GET", "/v1/namespace/http-a").status == 404


def test_a_blocking_namespace_list_wakes_on_a_new_namespace(dev):  # noqa: F811
    import threading

    port = dev.http_port
    index = int(call(port, "GET", "/v1/namespaces").headers["x-nomad-index"])
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(
        call(port, "GET", f"/v1/namespaces?index={index}&wait=20s")))
    waiter.start()
    assert call(port, "PUT", "/v1/namespace", {"Name": "blocking"}).status == 200
    waiter.join(30)
    assert got and "blocking" in [n["Name"] for n in got[0].json()]
    assert int(got[0].headers["x-nomad-index"]) > index
    assert call(port, "DELETE", "/v1/namespace/blocking").status == 200


def test_python_nomad_and_the_cli_manage_namespaces(dev, tmp_path):  # noqa: F811
    import subprocess
    import sys

    import nomad

    from tests.test_cli import NOMAD

    n = nomad.Nomad(host="127.0.0.1", port=dev.http_port, timeout=10)
    assert "default" in [x["Name"] for x in n.namespaces.get_namespaces()]
    assert n.namespace.get_namespace("default")["Name"] == "default"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{dev.http_port}", *args],
                              capture_output=True, text=True, timeout=60)

    out = cli("namespace", "list").stdout.splitlines()
    assert out[0].split() == ["Name", "Description"] and out[1].split()[0] == "default"
    shown = cli("namespace", "status", "default").stdout  # Nomad's formatNamespaceBasics
    assert "Name                   = default\n" in shown and "Enabled Drivers        = *\n" in shown
    r = cli("namespace", "apply", "-description", "the cli's", "cli-a")
    assert (r.returncode, r.stdout) == (0, 'Successfully applied namespace "cli-a"!\n'), r.stderr
    r = cli("namespace", "apply", "cli-a")  # a name alone keeps what the namespace has
    assert r.returncode == 0 and n.namespace.get_namespace("cli-a")["Description"] == "the cli's"
    spec = tmp_path / "ns.hcl"
    spec.write_text('name = "cli-b"\ndescription = "from a file"\ncapabilities {\n'
                    '  enabled_task_drivers = ["raw_exec"]\n}\nmeta {\n  owner = "ops"\n}\n')
    assert cli("namespace", "apply", str(spec)).returncode == 0
    shown = cli("namespace", "status", "cli-b").stdout
    assert "Enabled Drivers        = raw_exec\n" in shown and "Metadata\nowner = ops" in shown, shown
    js = tmp_path / "ns.json"
    js.write_text('{"Name": "cli-c", "Meta": {"a": "b"}}')
    assert cli("namespace", "apply", "-json", str(js)).returncode == 0
    assert '"owner": "ops"' in cli("namespace", "inspect", "cli-b").stdout
    assert cli("namespace", "list", "-t", "{{range .}}{{.Name}} {{end}}").stdout.split() == \
        ["cli-a", "cli-b", "cli-c", "default"]
    r = cli("namespace", "status", "cli")
    assert r.returncode == 1 and r.stderr.startswith("Prefix matched multiple namespaces"), r.stderr
    r = cli("namespace", "delete", "default")
    assert r.returncode == 1 and r.stderr == ("Error deleting namespace: Unexpected response code: 500 "
                                              "(can not delete default namespace)\n"), r.stderr
    r = cli("namespace", "apply", "bad_name")
    assert r.returncode == 1 and "Error applying namespace:" in r.stderr and "Must match regex" in r.stderr
    for name in ("cli-a", "cli-b", "cli-c"):
        r = cli("namespace", "delete", name)
        assert (r.returncode, r.stdout) == (0, f'Successfully deleted namespace "{name}"!\n'), r.stderr


def test_namespaces_survive_a_snapshot_and_an_old_snapshot_has_only_default():
    import msgpack

    from actors.state import namespaces
    from actors.state.store import StateStore, command

    st = StateStore()
    assert st.apply(1, command("namespace_upsert", namespaces=[{"Name": "snap", "Meta": {"a": "b"}}]))["ok"]
    again = StateStore()
    again.restore(st.snapshot(), 1)
    assert namespaces.get(again.tables, "snap")["Meta"] == {"a": "b"}
    assert again.table_index[namespaces.TABLE] == 1
    old = msgpack.unpackb(st.snapshot(), raw=False)
    del old["tables"][namespaces.TABLE]
    older = StateStore()
    older.restore(msgpack.packb(old, use_bin_type=True), 1)
    assert [n["Name"] for n in namespaces.listed(older.tables)] == ["default"]


def test_the_store_refuses_a_bad_namespace_write_and_changes_nothing():
    from actors.state import namespaces
    from actors.state.store import StateStore, command

    st = StateStore()
    got = st.apply(1, command("namespace_upsert", namespaces=[{"Name": "ok"}, {"Name": "not ok"}]))
    assert not got["ok"] and got["error"].startswith('Invalid namespace "not ok": invalid name')
    assert namespaces.get(st.tables, "ok") is None
    assert st.apply(2, command("namespace_delete", names=["default"]))["error"] == \
        "default namespace can not be deleted"
    assert st.apply(3, command("namespace_delete", names=["ok"]))["error"] == "namespace not found"


def test_the_general_region_and_namespace_flags_ride_on_every_request():
    from runtime import cli

    params = {"region": "eu", "namespace": "prod"}
    assert cli.with_general_query("http://a/v1/jobs", params) == "http://a/v1/jobs?region=eu&namespace=prod"
    # a request naming its own (service list -namespace '*', an alloc's namespace) keeps it
    assert (cli.with_general_query("http://a/v1/x?namespace=%2A&prefix=a", params)
            == "http://a/v1/x?namespace=%2A&prefix=a&region=eu")
    assert cli.with_general_query("http://a/v1/x", {"region": "", "namespace": ""}) == "http://a/v1/x"


def test_cli_namespace_and_region_flags_scope_each_command_as_nomads_do(dev, tmp_path):  # noqa: F811
    import json
    import os
    import subprocess
    import sys

    from tests.test_cli import NOMAD

    port = dev.http_port

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, **env})

    job_file = tmp_path / "ns-flags.json"
    job_file.write_text(json.dumps({"Job": sleep_job("ns-flags")}))
    # -namespace names the job's namespace (Nomad's namespaceForJob): one that does not exist is refused
    r = cli("job", "run", "-detach", "-namespace", "prod", str(job_file))
    assert r.returncode == 1 and 'job "ns-flags" is in nonexistent namespace "prod"' in r.stderr, r.stderr
    r = cli("job", "run", "-detach", "-namespace=default", "-no-color", str(job_file))
    assert r.returncode == 0, r.stderr
    assert "ns-flags" in cli("job", "status", "-namespace", "default").stdout
    # ... and finds jobs only there: the flag, or NOMAD_NAMESPACE
    assert cli("job", "status", "-namespace", "prod").stdout.strip() == "No running jobs"
    for r in (cli("job", "status", "-namespace", "prod", "ns-flags"),
              cli("job", "status", "ns-flags", NOMAD_NAMESPACE="prod")):
        assert r.returncode == 1 and 'No job(s) with prefix or ID "ns-flags" found' in r.stderr, r.stderr
    assert call(port, "GET", "/v1/job/ns-flags?namespace=prod").status == 404
    # Nomad's Job.Allocations lists by namespace and ID: none there
    assert call(port, "GET", "/v1/job/ns-flags/allocations?namespace=prod").json() == []
    for path in ("/v1/allocations", "/v1/evaluations"):
        assert call(port, "GET", f"{path}?namespace=prod").json() == [], path
        assert any(o["JobID"] == "ns-flags" for o in call(port, "GET", f"{path}?namespace=*").json()), path
    # -region (or NOMAD_REGION) sends ?region=: this region answers itself; another has no path here
    assert cli("job", "status", "-region", "global").returncode == 0
    for r in (cli("node", "status", "-region", "mars"), cli("node", "status", NOMAD_REGION="mars")):
        assert r.returncode == 1 and "No path to region" in r.stderr, r.stderr
    assert call(port, "DELETE", "/v1/job/ns-flags?purge=true").status == 200


def test_a_job_named_under_namespace_star_is_found_in_its_own_namespace(dev, tmp_path):  # noqa: F811
    """Nomad's JobIDByPrefix searches every namespace for '*' and the command then asks in the job's
    own one: `job status -namespace '*' <job>` shows it (``/v1/job/<id>?namespace=*`` itself is 404)."""
    import os
    import subprocess
    import sys

    from tests.test_cli import NOMAD

    port = dev.http_port
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("ns-star")}).status == 200

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, **env})

    r = cli("job", "status", "-namespace", "*", "ns-star")
    assert r.returncode == 0 and "ns-star" in r.stdout, r.stderr
    r = cli("job", "inspect", "ns-sta", NOMAD_NAMESPACE="*")
    assert r.returncode == 0 and '"ID": "ns-star"' in r.stdout, r.stderr
    assert call(port, "GET", "/v1/job/ns-star?namespace=*").status == 404
    assert call(port, "DELETE", "/v1/job/ns-star?purge=true").status == 200


def test_the_general_flags_are_not_taken_from_alloc_execs_command_nor_after_a_double_dash(monkeypatch):
    """Go's flag package stops at the first argument (and at "--"): the command alloc exec runs keeps
    its own flags (``aws s3 ls --region us-east-1``), as Nomad passes them through."""
    from runtime import cli

    seen: list[list[str]] = []
    monkeypatch.setitem(cli.COMMANDS, ("alloc", "exec"), lambda addr, args: (seen.append(args) or "", 0))
    monkeypatch.delenv("NOMAD_REGION", raising=False)
    monkeypatch.delenv("NOMAD_NAMESPACE", raising=False)
    assert cli.main(["alloc", "exec", "-task", "t", "-namespace", "default", "abc", "aws", "s3", "ls",
                     "--region", "us-east-1", "-no-color", "-token", "x"]) == 0
    assert seen[-1] == ["-task", "t", "abc", "aws", "s3", "ls", "--region", "us-east-1", "-no-color",
                        "-token", "x"]
    assert cli.ACTIVE["query"] == {"namespace": "default"} and cli.ACTIVE["token"] == ""
    assert cli.main(["exec", "-i=false", "-job", "web", "env", "-region=x"]) == 0  # Nomad's `exec` alias
    assert seen[-1] == ["-i=false", "-job", "web", "env", "-region=x"] and cli.ACTIVE["query"] == {}
    assert cli.main(["alloc", "exec", "-region", "global", "--", "abc", "sh", "-namespace", "x"]) == 0
    assert seen[-1] == ["--", "abc", "sh", "-namespace", "x"] and cli.ACTIVE["query"] == {"region": "global"}


def test_job_run_and_plan_ask_in_the_job_files_own_namespace_as_nomads_do(dev, tmp_path):  # noqa: F811
    """Nomad's job run and plan "force the namespace (and region) to be that of the job": a job file that
    names its namespace is registered there whatever NOMAD_NAMESPACE (or -namespace) says."""
    import json
    import os
    import subprocess
    import sys

    from tests.test_cli import NOMAD

    port = dev.http_port

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, **env})

    job_file = tmp_path / "ns-own.json"
    job_file.write_text(json.dumps({"Job": {**sleep_job("ns-own"), "Namespace": "default"}}))
    r = cli("job", "plan", str(job_file), NOMAD_NAMESPACE="prod")
    assert r.returncode == 1 and "+ Job: \"ns-own\"" in r.stdout, r.stderr  # 1: changes to apply
    r = cli("job", "run", "-detach", "-namespace", "prod", str(job_file))
    assert r.returncode == 0, r.stderr
    assert call(port, "GET", "/v1/job/ns-own").json()["Namespace"] == "default"
    assert call(port, "DELETE", "/v1/job/ns-own?purge=true").status == 200


def test_double_dash_address_and_token_are_read_as_their_single_dash_forms(monkeypatch):
    """Go's flag package takes --flag as -flag: --address and --token too, not only the newer flags."""
    from runtime import cli

    seen: list[str] = []
    monkeypatch.setitem(cli.COMMANDS, ("noop",), lambda addr, args: seen.append(addr) or "")
    try:
        assert cli.main(["--address=http://127.0.0.1:1", "--token", "s3cr3t", "noop"]) == 0
        assert seen == ["http://127.0.0.1:1"] and cli.ACTIVE["token"] == "s3cr3t"
        assert cli.main(["--address", "http://127.0.0.1:2", "--token=t2", "noop"]) == 0
        assert seen[-1] == "http://127.0.0.1:2" and cli.ACTIVE["token"] == "t2"
    finally:
        cli.use_token("")


def test_the_same_job_id_runs_in_two_namespaces_and_each_is_stopped_alone(dev):  # noqa: F811
    from tests.test_http_jobs import PLACE_DEADLINE_S, wait_for

    port = dev.http_port
    assert call(port, "PUT", "/v1/namespace", {"Name": "two-a"}).status == 200
    r = call(port, "PUT", "/v1/jobs", {"Job": {**sleep_job("twin"), "Namespace": "two-a"}})
    assert r.status == 200, r.text
    r = call(port, "PUT", "/v1/jobs?namespace=default", {"Job": sleep_job("twin")})
    assert r.status == 200, r.text

    def running(ns: str) -> list:
        return [a for a in call(port, "GET", f"/v1/job/twin/allocations?namespace={ns}").json()
                if a["ClientStatus"] == "running"]
    wait_for(lambda: running("two-a") and running("default"), "twin running in both", PLACE_DEADLINE_S)
    assert [a["Namespace"] for a in running("two-a")] == ["two-a"]
    assert call(port, "GET", "/v1/job/twin?namespace=two-a").json()["Namespace"] == "two-a"
    assert call(port, "GET", "/v1/job/twin").json()["Namespace"] == "default"
    listed = lambda q: [(j["ID"], j["Namespace"]) for j in call(port, "GET", f"/v1/jobs{q}").json()]
    assert listed("") == [("twin", "default")] and listed("?namespace=two-a") == [("twin", "two-a")]
    assert listed("?namespace=*") == [("twin", "default"), ("twin", "two-a")]
    evals = call(port, "GET", "/v1/evaluations?namespace=*").json()
    assert {(e["JobID"], e["Namespace"]) for e in evals} >= {("twin", "default"), ("twin", "two-a")}
    assert call(port, "GET", "/v1/job/twin/summary?namespace=two-a").json()["Namespace"] == "two-a"
    # a namespace with a live job cannot be deleted (Nomad's endpoint words)
    r = call(port, "DELETE", "/v1/namespace/two-a")
    assert r.status == 500 and 'namespace "two-a" has non-terminal jobs in regions: [global]' in r.text
    # stopping and purging one leaves the other running
    assert call(port, "DELETE", "/v1/job/twin?namespace=two-a&purge=true").status == 200
    wait_for(lambda: not running("two-a"), "two-a's twin stopped", PLACE_DEADLINE_S)
    assert call(port, "GET", "/v1/job/twin?namespace=two-a").status == 404
    assert running("default") and call(port, "GET", "/v1/job/twin").json()["Stop"] is False
    wait_for(lambda: call(port, "DELETE", "/v1/namespace/two-a").status == 200, "two-a deleted",
             PLACE_DEADLINE_S)
    assert call(port, "DELETE", "/v1/job/twin?purge=true").status == 200


def test_a_namespaces_capabilities_refuse_a_job_using_a_disabled_driver(dev):  # noqa: F811
    port = dev.http_port
    caps = {"DisabledTaskDrivers": ["raw_exec"]}
    assert call(port, "PUT", "/v1/namespace", {"Name": "no-raw", "Capabilities": caps}).status == 200
    r = call(port, "PUT", "/v1/jobs", {"Job": {**sleep_job("capped"), "Namespace": "no-raw"}})
    assert r.status == 400, r.text
    assert 'used task driver "raw_exec" is not allowed in namespace "no-raw"' in r.text
    # Nomad's Job.Validate runs the same admission checks and lists what they refuse
    capped = {"Job": {**sleep_job("capped"), "Namespace": "no-raw"}}
    got = call(port, "PUT", "/v1/validate/job", capped).json()
    assert got["ValidationErrors"] == ['used task driver "raw_exec" is not allowed in namespace "no-raw"']
    got = call(port, "PUT", "/v1/validate/job?namespace=nowhere", {"Job": sleep_job("capped")}).json()
    assert got["ValidationErrors"] == ['job "capped" is in nonexistent namespace "nowhere"']
    got = call(port, "PUT", "/v1/validate/job", {"Job": sleep_job("capped")}).json()
    assert got["ValidationErrors"] == []
    assert call(port, "DELETE", "/v1/namespace/no-raw").status == 200


def test_the_cli_runs_lists_and_stops_a_job_in_a_namespace(dev, tmp_path):  # noqa: F811
    import json
    import os
    import subprocess
    import sys

    from tests.test_cli import NOMAD

    port = dev.http_port

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, **env})

    assert cli("namespace", "apply", "cli-ns").returncode == 0
    job_file = tmp_path / "cli-twin.json"
    job_file.write_text(json.dumps({"Job": sleep_job("cli-twin")}))
    assert cli("job", "run", "-detach", str(job_file)).returncode == 0
    r = cli("job", "run", "-detach", str(job_file), NOMAD_NAMESPACE="cli-ns")
    assert r.returncode == 0, r.stderr
    out = cli("job", "status", "-namespace", "*").stdout.splitlines()
    assert out[0].split() == ["ID", "Namespace", "Type", "Priority", "Status", "Submit", "Date"]
    assert sorted(ln.split()[1] for ln in out[1:] if ln.startswith("cli-twin")) == ["cli-ns", "default"]
    assert cli("job", "status").stdout.splitlines()[0].split()[1] == "Type"  # one namespace: no column
    r = cli("job", "status", "-namespace", "*", "cli-twin")  # Nomad's JobIDByPrefix: ambiguous
    assert r.returncode == 1 and r.stderr.startswith('Prefix "cli-twin" matched multiple jobs'), r.stderr
    r = cli("job", "status", "-namespace", "cli-ns", "cli-twin")
    assert r.returncode == 0 and "Namespace     = cli-ns" in r.stdout, r.stderr
    r = cli("namespace", "delete", "cli-ns")
    assert r.returncode == 1 and "has non-terminal jobs" in r.stderr
    r = cli("job", "stop", "-purge", "-detach", "-namespace", "cli-ns", "cli-twin")
    assert r.returncode == 0, r.stderr
    assert call(port, "GET", "/v1/job/cli-twin").json()["Namespace"] == "default"
    r = cli("job", "run", "-detach", "-namespace", "nowhere", str(job_file))
    assert r.returncode == 1 and 'job "cli-twin" is in nonexistent namespace "nowhere"' in r.stderr
    assert call(port, "DELETE", "/v1/job/cli-twin?purge=true").status == 200


def test_job_keys_are_bare_in_default_and_composed_elsewhere():
    from actors.state.namespaces import job_key, job_key_of, key_of, split_key

    assert job_key("default", "web") == job_key(None, "web") == job_key("", "web") == "web"
    assert job_key("prod", "web") == "prod\x00web" and split_key("prod\x00web") == ("prod", "web")
    assert split_key("web") == ("default", "web")
    assert job_key_of({"ID": "web", "Namespace": "prod"}) == key_of({"JobID": "web", "Namespace": "prod"})
    assert key_of({"JobID": "web"}) == "web"  # a record from before namespaces: default


def test_a_log_without_namespaces_replays_into_default_and_indexes_stay_consistent():
    """Entries written before namespaces carry none: they apply to default, keyed as they always were;
    the same job ID in another namespace is a separate job with its own evaluation and indexes."""
    from actors.state.store import StateStore, command

    st = StateStore()
    job = canonical_job(sleep_job("replayed"))
    del job["Namespace"]  # as an old entry's job might lack it
    assert st.apply(1, command("job_register", job=job, now=1.0))["ok"]
    assert "replayed" in st.tables["jobs"]
    (ev,) = st.tables["evals"].values()
    assert (ev["JobID"], ev["Namespace"]) == ("replayed", "default")
    assert st.apply(2, command("namespace_upsert", namespaces=[{"Name": "other"}]))["ok"]
    assert st.apply(3, command("job_register", job={**job, "Namespace": "other"}, now=2.0))["ok"]
    assert set(st.tables["jobs"]) == {"replayed", "other\x00replayed"}
    assert [e["Namespace"] for e in st.pending_evals_of_job("other\x00replayed")] == ["other"]
    assert len(st.pending_evals_of_job("replayed")) == 1
    # a deregistration without a namespace (an old entry) stops default's, not other's
    assert st.apply(4, command("job_deregister", job_id="replayed", now=3.0))["ok"]
    assert st.tables["jobs"]["replayed"]["Stop"] and not st.tables["jobs"]["other\x00replayed"].get("Stop")
    assert st.apply(5, command("job_deregister", job_id="replayed", namespace="other", purge=True,
                               now=4.0))["ok"]
    assert set(st.tables["jobs"]) == {"replayed"}
    st.check_live_index()
    again = StateStore()
    again.restore(st.snapshot(), 5)
    assert set(again.tables["jobs"]) == {"replayed"} and again.tables == st.tables


def test_the_same_job_in_two_namespaces_is_placed_drained_stopped_and_collected_apart():
    """The simulated cluster: a job ID in default and in another namespace run side by side, a drain
    moves both, and stopping one leaves the other until job GC takes only the stopped one.  (The
    simulator's own convergence check counts allocations by job ID alone, so this one counts here.)"""
    from actors.state.store import command
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    hour = 3600.0
    c = JobCluster(7, JobClusterConfig(base=ClusterConfig(n_servers=3, n_clients=3)))
    try:
        c.run(30.0)
        _, r = c.propose(command("namespace_upsert", namespaces=[{"Name": "ns2"}]))
        assert r["ok"], r
        c.register(sim_job("web", count=2))
        c.register({**sim_job("web", count=2), "Namespace": "ns2"})
        c.run(120.0)

        def live(ns: str) -> list:
            return [a for a in c.checker.replica.tables["allocs"].values()
                    if a["JobID"] == "web" and a.get("Namespace", "default") == ns
                    and a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]
        assert len(live("default")) == 2 and len(live("ns2")) == 2
        c.drain(c.clients[0], deadline_s=60.0)
        c.run(300.0)
        assert len(live("default")) == 2 and len(live("ns2")) == 2
        assert not [a for a in live("default") + live("ns2") if a["NodeID"] == c.node_id(c.clients[0])]
        _, r = c.propose(command("job_deregister", job_id="web", namespace="ns2", now=c.sched.now))
        assert r["ok"], r
        c.run(120.0)
        assert live("ns2") == [] and len(live("default")) == 2
        c.run(5 * hour)  # past job_gc_threshold (4 h)
        jobs = c.checker.replica.tables["jobs"]
        assert list(jobs) == ["web"] and jobs["web"]["Namespace"] == "default"
        assert not [e for e in c.checker.replica.tables["evals"].values() if e.get("Namespace") == "ns2"]
        c.checker.replica.check_live_index()
    finally:
        c.close()
