"""ephemeral_disk migrate across real processes: one server, two clients.

A service job whose group's disk is sticky and migrates writes a file into
``alloc/data`` and its task's ``local/`` on the node it lands on; that node is
drained; the replacement on the other node waits for the previous allocation
to stop, pulls its snapshot from the first node's HTTP API and starts with the
files there (its task copies what it found into a "seen" file) -- with ACLs,
so through the migrate token the servers issue.  Then the snapshot endpoint
itself: a tar of the previous allocation's disk for that token only, relayed
by the server too.  And with the previous node down, the replacement starts
at once with an empty disk and says why.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import tarfile
from typing import Any

import pytest

from actors.client.disk_migrate import migrate_token
from tests.test_agent_process import STAGGER, agents, free_port, wait_for  # noqa: F401
from tests.test_jobs_process import cluster, kill_tasks_under, nodes_by_name, request  # noqa: F401

pytestmark = pytest.mark.timeout(90)

SCRIPT = ('if [ -f "$NOMAD_ALLOC_DIR/data/f" ]; then '
          'cat "$NOMAD_ALLOC_DIR/data/f" local/l > "$NOMAD_ALLOC_DIR/data/seen"; '
          'else echo "written by $NOMAD_ALLOC_ID" > "$NOMAD_ALLOC_DIR/data/f"; echo local-too > local/l; fi; '
          'exec /bin/sleep 3600')
JOB = {"ID": "keeper", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
    "Name": "g", "Count": 1, "EphemeralDisk": {"Sticky": True, "Migrate": True, "SizeMB": 150},
    "Migrate": {"MaxParallel": 1, "MinHealthyTime": 1_000_000_000, "HealthyDeadline": 30_000_000_000},
    "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sh", "args": ["-c", SCRIPT]},
               "Resources": {"CPU": 50, "MemoryMB": 32}, "KillTimeout": 1_000_000_000}]}]}


def _call(agent: Any, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"X-Nomad-Token": token} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _json(agent: Any, path: str, token: str = "") -> Any:
    status, body = _call(agent, "GET", path, token=token)
    return json.loads(body) if status == 200 else None


def _allocs(srv: Any, token: str = "") -> list[dict[str, Any]]:
    out = _json(srv, "/v1/job/keeper/allocations", token)
    return out if isinstance(out, list) else []


def _cat(agent: Any, alloc_id: str, path: str, token: str = "") -> str:
    status, body = _call(agent, "GET", f"/v1/client/fs/cat/{alloc_id}?path={path}", token=token)
    return body.decode(errors="replace") if status == 200 else ""


@pytest.fixture
def acl_cluster(agents, tmp_path):  # noqa: F811
    """One server and two clients with acl.enabled; (server, alpha, beta, management secret, root)."""
    server = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    (tmp_path / "server.toml").write_text("\n".join([
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in server.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1", "[acl]", "enabled = true"]) + "\n")
    srv = agents(["-config", str(tmp_path / "server.toml")], http_port=server["http"]).wait_healthy()
    _, body = wait_for(lambda: (r := _call(srv, "POST", "/v1/acl/bootstrap"))[0] == 200 and r,
                            "the ACL bootstrap", 20)
    management = json.loads(body)["SecretID"]
    clients = []
    for name in ("alpha", "beta"):
        ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
        path = tmp_path / f"{name}.toml"
        path.write_text("\n".join([
            f'name = "{name}"', f'data_dir = "{tmp_path / name}"', 'bind_addr = "127.0.0.1"',
            "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
            "[client]", "enabled = true", STAGGER, f'servers = ["127.0.0.1:{server["rpc"]}"]',
            "[client.options]", '"driver.raw_exec.enable" = "1"', "[acl]", "enabled = true"]) + "\n")
        clients.append(agents(["-config", str(path)], http_port=ports["http"]))
    yield srv, clients[0], clients[1], management, str(tmp_path)
    kill_tasks_under(str(tmp_path))


def test_a_migrating_disk_follows_its_allocation_to_another_node_when_the_first_is_drained(acl_cluster):
    """With ACLs: the replacement's node pulls with the migrate token the servers issued; the previous
    node refuses any other token (a management one too, as Nomad's ValidateMigrateToken)."""
    srv, a, b, mgmt, root = acl_cluster
    nodes = wait_for(lambda: (n := {x["Name"]: x for x in _json(srv, "/v1/nodes", mgmt) or []}) and all(
        n.get(x, {}).get("Status") == "ready" for x in ("alpha", "beta")) and n, "both clients ready", 30,
                     lambda: a.detail() + b.detail())
    by_id = {nodes["alpha"]["ID"]: a, nodes["beta"]["ID"]: b}
    status, res = _call(srv, "PUT", "/v1/jobs", {"Job": JOB}, mgmt)
    assert status == 200, res
    first = wait_for(lambda: next((x for x in _allocs(srv, mgmt) if x["ClientStatus"] == "running"), None),
                     "the first allocation running", 30)
    old_node = by_id[first["NodeID"]]
    wait_for(lambda: _cat(old_node, first["ID"], "alloc/data/f", mgmt), "the task wrote its file", 10)

    status, res = _call(srv, "PUT", f"/v1/node/{first['NodeID']}/drain",
                        {"DrainSpec": {"Deadline": 30_000_000_000, "IgnoreSystemJobs": False},
                         "MarkEligible": False}, mgmt)
    assert status == 200, res
    second = wait_for(lambda: next((x for x in _allocs(srv, mgmt) if x["ID"] != first["ID"]
                                    and x["ClientStatus"] == "running"), None),
                      "the replacement running on the other node", 30, lambda: a.detail() + b.detail())
    assert second["NodeID"] != first["NodeID"] and second["PreviousAllocation"] == first["ID"]
    new_node = by_id[second["NodeID"]]
    seen = wait_for(lambda: _cat(new_node, second["ID"], "alloc/data/seen", mgmt),
                    "the replacement saw the file", 10)
    assert seen == f"written by {first['ID']}\nlocal-too\n"
    setup = [e["Message"] for e in second["TaskStates"]["t"]["Events"]
             if e["Type"] == "Task Setup" and e["Message"] != "Building Task Directory"]
    assert any(m.startswith("Migrated the ephemeral disk of previous allocation") for m in setup), setup

    # The snapshot endpoint: only the migrate token opens it -- on the node, and relayed by the server.
    path = f"/v1/client/allocation/{first['ID']}/snapshot"
    old_name = "alpha" if old_node is a else "beta"
    secret = open(os.path.join(root, old_name, "client", "secret-id"), encoding="ascii").read().strip()
    for agent in (old_node, srv):
        for token in ("", mgmt):
            status, body = _call(agent, "GET", path, token=token)
            assert status == 403 and b"Permission denied" in body, (status, body[:200])
        status, body = _call(agent, "GET", path, token=migrate_token(first["ID"], secret))
        assert status == 200, body[:200]
        with tarfile.open(fileobj=io.BytesIO(body)) as tf:
            names = tf.getnames()
            assert "alloc/data/f" in names and "t/local/l" in names, names


def test_when_the_previous_node_is_down_the_replacement_starts_with_an_empty_disk_and_says_why(cluster):  # noqa: F811
    srv, start, root = cluster
    a, b = start("alpha"), start("beta")
    nodes = wait_for(lambda: (n := nodes_by_name(srv)) and all(
        n.get(x, {}).get("Status") == "ready" for x in ("alpha", "beta")) and n, "both clients ready", 30,
                     lambda: a.detail() + b.detail())
    by_id = {nodes["alpha"]["ID"]: a, nodes["beta"]["ID"]: b}
    status, res = request(srv, "PUT", "/v1/jobs", {"Job": JOB})
    assert status == 200, res
    first = wait_for(lambda: next((x for x in _allocs(srv) if x["ClientStatus"] == "running"), None),
                     "the first allocation running", 30)
    wait_for(lambda: _cat(by_id[first["NodeID"]], first["ID"], "alloc/data/f"), "the task wrote its file", 10)
    by_id[first["NodeID"]].kill()  # its node is gone: the servers mark the allocation lost and replace it
    second = wait_for(lambda: next((x for x in _allocs(srv) if x["ID"] != first["ID"]
                                    and x["ClientStatus"] == "running"), None),
                      "the replacement running on the other node", 30)
    assert second["PreviousAllocation"] == first["ID"]
    setup = [e["Message"] for e in second["TaskStates"]["t"]["Events"]
             if e["Type"] == "Task Setup" and e["Message"] != "Building Task Directory"]
    assert any(m.startswith(f"Failed to migrate the ephemeral disk of previous allocation {first['ID'][:8]}")
               and m.endswith("the tasks start with an empty ephemeral disk") for m in setup), setup
    new_node = by_id[second["NodeID"]]
    assert wait_for(lambda: _cat(new_node, second["ID"], "alloc/data/f"), "a fresh file", 10) == \
        f"written by {second['ID']}\n"
    kill_tasks_under(root)
