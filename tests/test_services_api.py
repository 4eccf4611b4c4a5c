"""Native service discovery against a real ``-dev`` agent: the /v1/service(s) API and ``nomad service``.

One ``-dev`` agent (server and client, raw_exec) is shared by the module and
purged of its jobs at the end.  ``svc-job`` runs two allocations of a group
with a dynamic ``http`` port, a group service on it (tags ``web`` and
``i-<alloc index>``) and a task service on port 9100: four registrations,
read by every test and changed by none.  The deletes and the stop use a
job of their own, run from an HCL file.  Every wait is a blocking query or
a condition with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from typing import Any

import gevent
import pytest

from actors.acl import Need, required
from tests.test_agent_process import AgentProc, wait_for
from tests.test_cli_jobs import aligned, columns, nomad
from tests.test_deployments_api import acl_agent_with_reader, with_token
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401

pytestmark = pytest.mark.timeout(120)

SEC = 1_000_000_000
FIELDS = {"ID", "ServiceName", "Namespace", "NodeID", "Datacenter", "JobID", "AllocID", "Tags", "Address",
          "Port", "CreateIndex", "ModifyIndex"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"

SVC_JOB = {"ID": "svc-job", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
    "Name": "web", "Count": 2,
    "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
    "Services": [{"Name": "svc-web", "PortLabel": "http", "Tags": ["web", "i-${NOMAD_ALLOC_INDEX}"]}],
    "Tasks": [{"Name": "sleeper", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["3600"]},
               "Resources": {"CPU": 20, "MemoryMB": 16}, "KillTimeout": 1 * SEC,
               "Services": [{"Name": "svc-num", "PortLabel": "9100", "Tags": ["num"]}]}]}]}

GONE_HCL = """\
job "svc-gone" {
  datacenters = ["dc1"]
  group "g" {
    count = 2
    network {
      port "http" {}
    }
    service {
      name = "gone-web"
      port = "http"
      tags = ["x"]
    }
    task "t" {
      driver       = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


def get(port: int, path: str) -> Any:
    r = call(port, "GET", path)
    assert r.status == 200, (path, r.status, r.text)
    return r.json()


def await_registrations(agent: AgentProc, path: str, want: int) -> list[dict[str, Any]]:
    """*path*'s registrations once there are *want* of them: each look blocks until the table changes."""
    index = 0

    def done() -> tuple[list[dict[str, Any]]] | None:
        nonlocal index
        sep = "&" if "?" in path else "?"
        r = call(agent.http_port, "GET", f"{path}{sep}index={index}&wait=5s")
        assert r.status == 200, r.text
        index = int(r.headers["x-nomad-index"])
        return (r.json(),) if len(r.json()) == want else None  # a tuple: none is an answer too
    return wait_for(done, f"{want} registrations at {path}", PLACE_DEADLINE_S,
                    lambda: json.dumps(get(agent.http_port, path), indent=1) + agent.detail())[0]


@pytest.fixture(scope="module")
def svc(dev):  # noqa: F811
    """``svc-job`` running, with its four registrations and its allocations by ID."""
    r = call(dev.http_port, "PUT", "/v1/jobs", {"Job": SVC_JOB})
    assert r.status == 200, r.text
    web = await_registrations(dev, "/v1/service/svc-web", 2)
    num = await_registrations(dev, "/v1/service/svc-num", 2)
    allocs = {a["ID"]: get(dev.http_port, f"/v1/allocation/{a['ID']}")
              for a in get(dev.http_port, "/v1/job/svc-job/allocations")}
    return {"web": web, "num": num, "allocs": allocs}


# ---------------------------------------------------------------- reads


def test_services_list_is_one_entry_per_namespace_with_each_services_tags(dev, svc):  # noqa: F811
    port = dev.http_port
    r = call(port, "GET", "/v1/services")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    listed = r.json()
    assert [e["Namespace"] for e in listed] == ["default"] and set(listed[0]) == {"Namespace", "Services"}
    mine = [s for s in listed[0]["Services"] if s["ServiceName"].startswith("svc-")]
    assert mine == [{"ServiceName": "svc-num", "Tags": ["num"]},
                    {"ServiceName": "svc-web", "Tags": ["i-0", "i-1", "web"]}]  # the tags' union, sorted
    assert int(r.headers["x-nomad-index"]) >= max(x["ModifyIndex"] for x in svc["web"] + svc["num"])
    assert r.headers["x-nomad-knownleader"] == "true"
    assert get(port, "/v1/services?namespace=*") == listed
    assert get(port, "/v1/services?namespace=other") == []
    expr = urllib.parse.quote('Namespace == "default"')
    assert get(port, f"/v1/services?filter={expr}") == listed
    assert get(port, "/v1/services?filter=" + urllib.parse.quote('Namespace == "x"')) == []
    bad = call(port, "GET", "/v1/services?filter=" + urllib.parse.quote("Namespace =="))
    assert bad.status == 400 and bad.text.startswith("failed to read filter expression")
    assert (call(port, "POST", "/v1/services").status, call(port, "POST", "/v1/services").text) \
        == (405, "Invalid method")


def test_service_read_is_its_registrations_in_nomads_shape(dev, svc):  # noqa: F811
    port = dev.http_port
    web, num, allocs = svc["web"], svc["num"], svc["allocs"]
    assert [r["ID"] for r in web] == sorted(r["ID"] for r in web)
    node = get(port, "/v1/nodes")[0]
    for r in web + num:
        assert set(r) == FIELDS, r
        assert (r["Namespace"], r["JobID"], r["Datacenter"], r["NodeID"]) == ("default", "svc-job", "dc1",
                                                                             node["ID"])
        assert r["AllocID"] in allocs and r["CreateIndex"] <= r["ModifyIndex"]
        assert r["Address"] == node["Address"]
    assert {r["AllocID"] for r in web} == set(allocs) == {r["AllocID"] for r in num}
    for r in web:
        a = allocs[r["AllocID"]]
        ports = {p["Label"]: p["Value"] for p in a["AllocatedResources"]["Shared"]["Ports"]}
        index = a["Name"].rsplit("[", 1)[1].rstrip("]")
        assert (r["ServiceName"], r["Port"], r["Tags"]) == ("svc-web", ports["http"], ["web", f"i-{index}"])
        assert r["ID"] == f"_nomad-task-{a['ID']}-group-web-svc-web-http"
    for r in num:
        assert (r["ServiceName"], r["Port"], r["Tags"]) == ("svc-num", 9100, ["num"])
        assert r["ID"] == f"_nomad-task-{r['AllocID']}-sleeper-svc-num-9100"

    assert get(port, "/v1/service/no-such-service") == []
    assert get(port, "/v1/service/svc-web?namespace=other") == []
    expr = urllib.parse.quote('"i-1" in Tags')
    assert [r["Tags"] for r in get(port, f"/v1/service/svc-web?filter={expr}")] == [["web", "i-1"]]
    first = call(port, "GET", "/v1/service/svc-web?per_page=1")
    # Nomad's NamespaceIDTokenizer: <namespace>.<registration ID>
    assert first.json() == web[:1] and first.headers["x-nomad-nexttoken"] == "default." + web[1]["ID"]
    token = urllib.parse.quote("default." + web[1]["ID"])
    assert get(port, f"/v1/service/svc-web?per_page=1&next_token={token}") == web[1:]


def test_choose_picks_n_registrations_by_rendezvous_hashing(dev, svc):  # noqa: F811
    port = dev.http_port
    ids = {r["ID"] for r in svc["web"]}

    def chosen(param: str) -> list[str]:
        return [r["ID"] for r in get(port, "/v1/service/svc-web?choose=" + urllib.parse.quote(param))]
    picks = {key: chosen(f"1|{key}") for key in "abcdefghijklmnopqrstuvwxyz"}
    assert all(len(p) == 1 and p[0] in ids for p in picks.values())
    assert {p[0] for p in picks.values()} == ids  # keys spread over both (26 alike: 2^-25)
    assert all(chosen(f"1|{key}") == p for key, p in list(picks.items())[:5])  # stable per key
    both = chosen("5|alloc-1")
    assert sorted(both) == sorted(ids) and both[0] == chosen("1|alloc-1")[0]  # fewer than asked: all, ranked
    for param in ("x", "1", "|k", "one|k", "1|", "-1|k"):
        got = call(port, "GET", "/v1/service/svc-web?choose=" + urllib.parse.quote(param))
        assert (got.status, got.text) == (
            400, "failed to choose services: choose must be in the form <number>|<key>"), param


def test_a_jobs_and_an_allocations_services(dev, svc):  # noqa: F811
    port = dev.http_port
    every = sorted(svc["web"] + svc["num"], key=lambda r: r["ID"])
    r = call(port, "GET", "/v1/job/svc-job/services")
    assert r.status == 200 and r.json() == every and int(r.headers["x-nomad-index"]) > 0
    for alloc_id in svc["allocs"]:
        mine = [x for x in every if x["AllocID"] == alloc_id]
        assert get(port, f"/v1/allocation/{alloc_id}/services") == mine
    assert call(port, "PUT", "/v1/jobs", {"Job": {**SVC_JOB, "ID": "svc-idle", "TaskGroups": [
        {**SVC_JOB["TaskGroups"][0], "Count": 0}]}}).status == 200
    assert get(port, "/v1/job/svc-idle/services") == []  # a job with no running allocation: none
    for method, path, code, text in [
        ("GET", "/v1/job/no-such-job/services", 404, "job not found"),
        ("GET", "/v1/job/svc-job/services?namespace=other", 404, "job not found"),
        ("GET", f"/v1/allocation/{UNKNOWN}/services", 404, "alloc not found"),
        ("PUT", "/v1/job/svc-job/services", 405, "Invalid method"),
        ("DELETE", f"/v1/allocation/{next(iter(svc['allocs']))}/services", 405, "Invalid method"),
        ("GET", "/v1/service/", 400, "missing service name"),
        ("DELETE", "/v1/service/svc-web/", 400, "missing service id"),
        ("GET", "/v1/service/a/b/c", 400, "invalid URI"),
        ("PUT", "/v1/service/svc-web", 405, "Invalid method"),
        ("GET", f"/v1/service/svc-web/{svc['web'][0]['ID']}", 405, "Invalid method"),
        ("DELETE", f"/v1/service/svc-web/{UNKNOWN}", 404, "service registration not found"),
        # The ID must be the named service's, in the request's namespace.
        ("DELETE", f"/v1/service/svc-num/{svc['web'][0]['ID']}", 404, "service registration not found"),
        ("DELETE", f"/v1/service/svc-web/{svc['web'][0]['ID']}?namespace=other", 404,
         "service registration not found"),
    ]:
        got = call(port, method, path)
        assert (got.status, got.text) == (code, text), (method, path)
    assert len(get(port, "/v1/service/svc-web")) == 2  # the refused deletes deleted nothing


# ---------------------------------------------------------------- CLI reads


def test_cli_service_list_and_info(dev, svc):  # noqa: F811
    listing = nomad(dev, "service", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert columns(lines[0]) == ["Service Name", "Tags"] and aligned(lines)
    assert ["svc-num", "[num]"] in [columns(x) for x in lines]
    assert ["svc-web", "[i-0,i-1,web]"] in [columns(x) for x in lines]
    everywhere = nomad(dev, "service", "list", "-namespace", "*").stdout.splitlines()
    assert columns(everywhere[0]) == ["Service Name", "Namespace", "Tags"] and aligned(everywhere)
    assert ["svc-web", "default", "[i-0,i-1,web]"] in [columns(x) for x in everywhere]
    assert json.loads(nomad(dev, "service", "list", "-json").stdout) == get(dev.http_port, "/v1/services")
    assert nomad(dev, "service", "list", "-namespace=other").stdout == "No service registrations found\n"

    info = nomad(dev, "service", "info", "svc-web")
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert columns(lines[0]) == ["Job ID", "Address", "Tags", "Node ID", "Alloc ID"] and aligned(lines)
    want = [["svc-job", f"{r['Address']}:{r['Port']}", f"[{','.join(r['Tags'])}]", r["NodeID"][:8],
             r["AllocID"][:8]] for r in svc["web"]]
    assert sorted(columns(x) for x in lines[1:]) == sorted(want)

    verbose = nomad(dev, "service", "info", "-verbose", "svc-num")
    assert verbose.returncode == 0, verbose.stderr
    blocks = verbose.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    for block, r in zip(blocks, sorted(svc["num"], key=lambda r: r["ID"]), strict=True):
        fields = dict(re.match(r"^(\S.*?)\s+= (.*)$", x).groups() for x in block.splitlines())
        assert fields == {"ID": r["ID"], "Service Name": "svc-num", "Namespace": "default",
                          "Job ID": "svc-job", "Alloc ID": r["AllocID"], "Node ID": r["NodeID"],
                          "Datacenter": "dc1", "Address": f"{r['Address']}:9100", "Tags": "[num]"}
    assert json.loads(nomad(dev, "service", "info", "-json", "svc-num").stdout) == svc["num"]
    prefixed = nomad(dev, "service", "info", "svc-w")  # a unique prefix names the service (Nomad's)
    assert prefixed.returncode == 0 and prefixed.stdout == info.stdout
    several = nomad(dev, "service", "info", "svc-")
    assert several.returncode == 1 and several.stderr.startswith("Prefix matched multiple services\n\n")
    assert "svc-num" in several.stderr and "svc-web" in several.stderr
    filtered = nomad(dev, "service", "info", "-filter", '"nope" in Tags', "svc-web")
    assert (filtered.returncode, filtered.stdout) == (0, "No service registrations found\n")
    paged = nomad(dev, "service", "info", "-per-page=1", "svc-web")
    assert paged.returncode == 0 and paged.stdout.count("svc-job") == 1
    assert "Results have been paginated. To get the next page run: \n\n" in paged.stdout
    assert f"-page-token=default.{sorted(r['ID'] for r in svc['web'])[1]} svc-web" in paged.stdout

    usage = "\nFor additional help try 'nomad service {} -help'\n"  # Nomad's commandErrorText
    for args, message in [(("service", "info"), "This command takes one argument: <service_name>"
                           + usage.format("info")),
                          (("service", "list", "extra"),
                           "This command takes no arguments" + usage.format("list")),
                          (("service", "delete", "svc-web"),
                           "This command takes two arguments: <service_name> and <service_id>"
                           + usage.format("delete")),
                          (("service", "info", "-bogus", "svc-web"), "flag provided but not defined: -bogus"),
                          (("service", "info", "no-such-service"), "Error listing service registrations: "
                           'No service registrations with prefix "no-such-service" found'),
                          (("service", "delete", "svc-web", UNKNOWN),
                           "Error deleting service registration: Unexpected response code: 404 "
                           "(service registration not found)")]:
        got = nomad(dev, *args)
        assert got.returncode == 1 and got.stdout == "", args
        lines = message.count("\n") or 1
        assert got.stderr.startswith(message) and got.stderr.count("\n") == lines, got.stderr


def test_service_info_table_shows_a_portless_registration_by_its_address_alone():
    # Nomad's formatAddress: net.JoinHostPort unless the port is 0.
    from runtime import cli  # noqa: F401 (it loads the command modules: runtime.cli_services among them)
    from runtime.cli_services import format_registrations
    ids = {"NodeID": "n" * 36, "AllocID": "a" * 36}
    regs = [{"JobID": "j", "Address": "10.0.0.1", "Port": 0, "Tags": [], **ids},
            {"JobID": "j", "Address": "::1", "Port": 80, "Tags": ["x"], **ids}]
    rows = [columns(x) for x in format_registrations(regs).splitlines()[1:]]
    assert [r[1] for r in rows] == ["10.0.0.1", "[::1]:80"]


# ---------------------------------------------------------------- deletes and a stop


def test_deleted_registrations_go_and_a_stopped_job_takes_the_rest(dev, tmp_path):  # noqa: F811
    port = dev.http_port
    path = tmp_path / "gone.nomad.hcl"
    path.write_text(GONE_HCL)
    ran = nomad(dev, "job", "run", "-detach", str(path))
    assert ran.returncode == 0, ran.stderr
    regs = await_registrations(dev, "/v1/service/gone-web", 2)
    victim, kept = regs

    # A blocking list query wakes on the delete.
    index = int(call(port, "GET", "/v1/services").headers["x-nomad-index"])
    waiter = gevent.spawn(call, port, "GET", f"/v1/services?index={index}&wait=20s", None, None, 30.0)
    gevent.sleep(0)
    started = time.monotonic()
    r = call(port, "DELETE", f"/v1/service/gone-web/{urllib.parse.quote(victim['ID'])}")
    assert (r.status, r.body) == (200, b""), r.text
    deleted_at = int(r.headers["x-nomad-index"])
    assert deleted_at > index
    woke = waiter.get(timeout=15)
    assert int(woke.headers["x-nomad-index"]) >= deleted_at and time.monotonic() - started < 10
    assert get(port, "/v1/service/gone-web") == [kept]
    assert get(port, f"/v1/allocation/{victim['AllocID']}/services") == []
    # Its allocation runs on: only the registration went, and it stays gone.
    assert get(port, f"/v1/allocation/{victim['AllocID']}")["ClientStatus"] == "running"
    again = call(port, "DELETE", f"/v1/service/gone-web/{urllib.parse.quote(victim['ID'])}")
    assert (again.status, again.text) == (404, "service registration not found")

    # The CLI deletes the other; then the services list no longer names the service.
    out = nomad(dev, "service", "delete", "gone-web", kept["ID"])
    assert (out.returncode, out.stdout) == (0, "Successfully deleted service registration\n"), out.stderr
    assert get(port, "/v1/service/gone-web") == []
    assert not [s for e in get(port, "/v1/services") for s in e["Services"] if s["ServiceName"] == "gone-web"]

    # A new allocation registers again; stopping the job deregisters it.
    stopped = call(port, "PUT", f"/v1/allocation/{kept['AllocID']}/stop")
    assert stopped.status == 200, stopped.text
    fresh = await_registrations(dev, "/v1/service/gone-web", 1)
    assert fresh[0]["AllocID"] not in (victim["AllocID"], kept["AllocID"])
    assert call(port, "DELETE", "/v1/job/svc-gone").status == 200
    await_registrations(dev, "/v1/job/svc-gone/services", 0)
    assert get(port, "/v1/service/gone-web") == []
    assert call(port, "DELETE", "/v1/job/svc-gone?purge=true").status == 200
    gone = call(port, "GET", "/v1/job/svc-gone/services")
    assert (gone.status, gone.text) == (404, "job not found")


# ---------------------------------------------------------------- ACLs


def test_service_routes_need_read_job_to_read_and_submit_job_to_delete():
    read = (Need("namespace", "read-job", "default"),)
    for path in ("/v1/services", "/v1/service/web", "/v1/job/j/services", "/v1/allocation/a/services"):
        assert required("GET", path, "default") == read, path
    assert required("DELETE", "/v1/service/web/some-id", "default") == (
        Need("namespace", "submit-job|delete-service-registration", "default"),)  # or Nomad 2.0's capability
    assert required("GET", "/v1/services", "prod") == (Need("namespace", "read-job", "prod"),)


def test_acl_agent_refuses_service_reads_and_deletes_without_the_capability(tmp_path):
    with acl_agent_with_reader(tmp_path) as (port, root, reader):
        delete = f"/v1/service/web/{UNKNOWN}"

        assert with_token(port, "GET", "/v1/services") == (403, "Permission denied")  # anonymous: nothing
        assert with_token(port, "GET", "/v1/services", token=reader) == (200, "[]")
        assert with_token(port, "GET", "/v1/service/web", token=reader) == (200, "[]")
        assert with_token(port, "GET", "/v1/job/j/services", token=reader) == (404, "job not found")
        assert with_token(port, "DELETE", delete, token=reader) == (403, "Permission denied")
        assert with_token(port, "DELETE", delete, token=root) == (404, "service registration not found")
