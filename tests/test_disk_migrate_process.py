"""ephemeral_disk migrate across real processes: one server, two clients.

A service job whose group's disk is sticky and migrates writes a file into
``alloc/data`` and its task's ``local/`` on the node it lands on; that node is
drained; the replacement on the other node waits for the previous allocation
to stop, pulls its snapshot from the first node's HTTP API and starts with the
files there (its task copies what it found into a "seen" file).  Then the
snapshot endpoint itself: a tar of the previous allocation's disk, relayed by
the server too; an allocation nobody knows is the client relay's 404.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from tests.test_agent_process import agents, wait_for  # noqa: F401
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


def _allocs(srv: Any) -> list[dict[str, Any]]:
    status, out = request(srv, "GET", "/v1/job/keeper/allocations")
    return out if status == 200 and isinstance(out, list) else []


def _cat(agent: Any, alloc_id: str, path: str) -> str:
    status, out = request(agent, "GET", f"/v1/client/fs/cat/{alloc_id}?path={path}")
    return out if status == 200 and isinstance(out, str) else ""


def _raw(agent: Any, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_migrating_disk_follows_its_allocation_to_another_node_when_the_first_is_drained(cluster):  # noqa: F811
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
    old_node = by_id[first["NodeID"]]
    wait_for(lambda: _cat(old_node, first["ID"], "alloc/data/f"), "the task wrote its file", 10)

    status, res = request(srv, "PUT", f"/v1/node/{first['NodeID']}/drain",
                          {"DrainSpec": {"Deadline": 30_000_000_000, "IgnoreSystemJobs": False},
                           "MarkEligible": False})
    assert status == 200, res
    second = wait_for(lambda: next((x for x in _allocs(srv) if x["ID"] != first["ID"]
                                    and x["ClientStatus"] == "running"), None),
                      "the replacement running on the other node", 30, lambda: a.detail() + b.detail())
    assert second["NodeID"] != first["NodeID"] and second["PreviousAllocation"] == first["ID"]
    new_node = by_id[second["NodeID"]]
    seen = wait_for(lambda: _cat(new_node, second["ID"], "alloc/data/seen"), "the replacement saw the file",
                    10)
    assert seen == f"written by {first['ID']}\nlocal-too\n"
    setup = [e["Message"] for e in second["TaskStates"]["t"]["Events"]
             if e["Type"] == "Task Setup"]
    assert any(m.startswith("Migrated the ephemeral disk of previous allocation") for m in setup), setup

    # The snapshot endpoint: the previous node answers the tar; the server relays to it.
    for agent in (old_node, srv):
        status, body = _raw(agent, f"/v1/client/allocation/{first['ID']}/snapshot")
        assert status == 200, body[:200]
        with tarfile.open(fileobj=io.BytesIO(body)) as tf:
            names = tf.getnames()
            assert "alloc/data/f" in names and "t/local/l" in names, names
    status, body = _raw(old_node, "/v1/client/allocation/0000-nope/snapshot")
    assert status == 404 and b'Unknown allocation "0000-nope"' in body  # as the other client endpoints
    kill_tasks_under(root)


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
    setup = [e["Message"] for e in second["TaskStates"]["t"]["Events"] if e["Type"] == "Task Setup"]
    assert any(m.startswith(f"Failed to migrate the ephemeral disk of previous allocation {first['ID'][:8]}")
               and m.endswith("the tasks start with an empty ephemeral disk") for m in setup), setup
    new_node = by_id[second["NodeID"]]
    assert wait_for(lambda: _cat(new_node, second["ID"], "alloc/data/f"), "a fresh file", 10) == \
        f"written by {second['ID']}\n"
    kill_tasks_under(root)
