"""Node pools: the built-ins, operator-made and client-made pools, what they refuse, placement by pool,
``/v1/node/pool(s)`` and ``nomad node pool ...``."""

from __future__ import annotations

import json
import subprocess
import sys
import pytest

from actors.scheduler.job import canonical_job
from actors.state import node_pools as pools
from actors.state.store import StateStore, command
from tests.test_scheduler import Cluster, service

pytestmark = pytest.mark.timeout(180)


def _node(st: StateStore, index: int, node_id: str, pool: str) -> None:
    rec = {"ID": node_id, "SecretID": "s", "Name": node_id, "Datacenter": "dc1", "NodePool": pool,
           "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
           "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 4096},
                             "Disk": {"DiskMB": 100_000}},
           "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}}}
    assert st.apply(index, command("node_register", node=rec, now=1.0))["ok"]


def _names(st: StateStore) -> list[str]:
    return [p["Name"] for p in pools.listed(st.tables)]


# ---------------------------------------------------------------- the state machine


def test_the_built_in_pools_always_exist_and_cannot_be_changed_or_deleted():
    st = StateStore()
    assert _names(st) == ["all", "default"]
    for name in ("all", "default"):
        r = st.apply(st.applied_index + 1,
                     command("node_pool_upsert", pools=[{"Name": name, "Description": "mine"}]))
        assert not r["ok"] and "is not allowed" in r["error"]
        r = st.apply(st.applied_index + 1, command("node_pool_delete", names=[name]))
        assert r == {"ok": False, "error": f'deleting node pool "{name}" is not allowed'}
    assert pools.get(st.tables, "default")["Description"] == "Default node pool."


def test_an_operator_pool_is_created_updated_and_keeps_its_create_index():
    st = StateStore()
    st.apply(1, command("node_pool_upsert", pools=[{"Name": "prod", "Description": "d1", "Meta": {"a": "1"}}]))
    st.apply(2, command("node_pool_upsert", pools=[{"Name": "prod", "Description": "d2"}]))
    p = pools.get(st.tables, "prod")
    assert (p["Description"], p["Meta"], p["CreateIndex"], p["ModifyIndex"]) == ("d2", None, 1, 2)
    assert _names(st) == ["all", "default", "prod"] and st.index(pools.TABLE) == 2


@pytest.mark.parametrize("bad,why", [
    ({"Name": "has space"}, "invalid name"),
    ({"Name": ""}, "invalid name"),
    ({"Name": "x" * 129}, "invalid name"),
    ({"Name": "ok", "Description": "d" * 257}, "description longer than 256"),
    ({"Name": "ok", "Meta": {"a": 1}}, "Meta: must be a map of strings"),
    ({"Name": "ok", "SchedulerConfiguration": {"SchedulerAlgorithm": "spread"}}, "not supported"),
])
def test_a_bad_pool_is_refused_naming_why_and_nothing_is_written(bad, why):
    st = StateStore()
    r = st.apply(1, command("node_pool_upsert", pools=[{"Name": "good"}, bad]))
    assert not r["ok"] and why in r["error"]
    assert _names(st) == ["all", "default"]  # all or none


def test_a_client_registering_into_a_new_pool_creates_it_once_and_an_operators_pool_is_kept():
    st = StateStore()
    _node(st, 1, "n1", "gpu")
    gpu = pools.get(st.tables, "gpu")
    assert gpu is not None and (gpu["Description"], gpu["CreateIndex"]) == ("", 1)
    _node(st, 2, "n2", "gpu")
    assert pools.get(st.tables, "gpu")["ModifyIndex"] == 1
    st.apply(3, command("node_pool_upsert", pools=[{"Name": "prod", "Description": "kept"}]))
    _node(st, 4, "n3", "prod")
    assert pools.get(st.tables, "prod")["Description"] == "kept"
    _node(st, 5, "n4", "default")
    assert _names(st) == ["all", "default", "gpu", "prod"]


def test_a_job_in_a_pool_that_does_not_exist_is_refused():
    st = StateStore()
    job = canonical_job({**service("web"), "NodePool": "gpu"})
    r = st.apply(1, command("job_register", job=job, now=1.0))
    assert r == {"ok": False, "error": 'job "web" is in nonexistent node pool "gpu"'}
    assert "web" not in st.tables["jobs"]
    st.apply(2, command("node_pool_upsert", pools=[{"Name": "gpu"}]))
    assert st.apply(3, command("job_register", job=job, now=1.0))["ok"]
    everywhere = canonical_job({**service("any"), "NodePool": "all"})
    assert st.apply(4, command("job_register", job=everywhere, now=1.0))["ok"]


def test_a_pool_in_use_cannot_be_deleted_and_an_empty_one_can():
    st = StateStore()
    _node(st, 1, "n1", "gpu")
    r = st.apply(2, command("node_pool_delete", names=["gpu"]))
    assert r == {"ok": False, "error": 'node pool "gpu" has nodes'}
    st.apply(3, command("node_deregister", node_id="n1", now=2.0))
    st.apply(4, command("job_register", job=canonical_job({**service("web"), "NodePool": "gpu"}), now=2.0))
    r = st.apply(5, command("node_pool_delete", names=["gpu"]))
    assert r == {"ok": False, "error": 'node pool "gpu" has non-terminal jobs'}
    st.apply(6, command("job_deregister", job_id="web", purge=True, now=3.0))
    assert "web" not in st.tables["jobs"]
    assert st.apply(7, command("node_pool_delete", names=["gpu"]))["ok"]
    assert pools.get(st.tables, "gpu") is None
    r = st.apply(8, command("node_pool_delete", names=["gpu"]))
    assert r == {"ok": False, "error": "node pool gpu not found"}


def test_pools_survive_a_snapshot():
    st = StateStore()
    st.apply(1, command("node_pool_upsert", pools=[{"Name": "prod", "Meta": {"env": "p"}}]))
    again = StateStore()
    again.restore(st.snapshot(), 1)
    assert pools.get(again.tables, "prod")["Meta"] == {"env": "p"}


def test_a_job_is_placed_only_on_its_pools_nodes_and_all_reaches_every_node():
    c = Cluster()
    ids = {}
    for i, pool in enumerate(("default", "gpu", "gpu")):
        nid = f"pool-node-{i}"
        rec = {"ID": nid, "SecretID": "s", "Name": nid, "Datacenter": "dc1", "NodePool": pool,
               "Attributes": {"kernel.name": "linux"},
               "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
               "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 4096},
                             "Disk": {"DiskMB": 100_000}},
               "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}}}
        c.apply("node_register", node=rec)
        c.apply("node_update_status", node_id=nid, status="ready")
        ids[nid] = pool
    c.register(**service("gpu-job", count=4, cpu=100, mem=64), NodePool="gpu")
    c.register(**service("any-job", count=6, cpu=100, mem=64), NodePool="all")
    c.schedule()
    assert {ids[a["NodeID"]] for a in c.running("gpu-job")} == {"gpu"} and len(c.running("gpu-job")) == 4
    assert len(c.running("any-job")) == 6


# ---------------------------------------------------------------- over HTTP and the CLI

from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev, sleep_job  # noqa: E402,F401


def nomad(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_pool_endpoints_answer_as_nomads(dev):  # noqa: F811
    port = dev.http_port
    listed = call(port, "GET", "/v1/node/pools")
    assert listed.status == 200 and [p["Name"] for p in listed.json()][:2] == ["all", "default"]
    assert int(listed.headers["x-nomad-index"]) >= 1
    r = call(port, "PUT", "/v1/node/pools", {"Name": "http-pool", "Description": "via http", "Meta": {"k": "v"}})
    assert r.status == 200, r.text
    got = call(port, "GET", "/v1/node/pool/http-pool").json()
    assert (got["Description"], got["Meta"], got["SchedulerConfiguration"]) == ("via http", {"k": "v"}, None)
    assert [p["Name"] for p in call(port, "GET", "/v1/node/pools?prefix=http").json()] == ["http-pool"]
    assert call(port, "GET", "/v1/node/pool/nope").status == 404
    missing = call(port, "GET", "/v1/node/pool/nope/nodes")  # Nomad: an empty list, not a 404
    assert (missing.status, missing.json()) == (200, [])
    assert call(port, "GET", "/v1/node/pool/nope/jobs").json() == []
    r = call(port, "GET", "/v1/node/pool/default/nodes?prefix=a")
    assert (r.status, r.text) == (400, "prefix argument not allowed")
    node = call(port, "GET", "/v1/node/pool/default/nodes").json()
    assert len(node) == 1 and node[0]["NodePool"] == "default"
    assert [n["ID"] for n in call(port, "GET", "/v1/node/pool/all/nodes").json()] == [node[0]["ID"]]
    assert call(port, "GET", "/v1/node/pool/http-pool/nodes").json() == []
    # A job in the pool: listed under it; the pool cannot go while it lives.
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("pooled", count=0, NodePool="http-pool")}).status == 200
    assert [j["ID"] for j in call(port, "GET", "/v1/node/pool/http-pool/jobs").json()] == ["pooled"]
    second = sleep_job("pooled2", count=0, NodePool="http-pool")
    assert call(port, "PUT", "/v1/jobs", {"Job": second}).status == 200
    page = call(port, "GET", "/v1/node/pool/http-pool/jobs?per_page=1")  # Nomad's NamespaceIDTokenizer
    assert [j["ID"] for j in page.json()] == ["pooled"]
    assert page.headers["x-nomad-nexttoken"] == "default.pooled2"
    assert [j["ID"] for j in call(port, "GET", "/v1/node/pool/http-pool/jobs?next_token=default.pooled2")
            .json()] == ["pooled2"]
    pages = nomad(port, "node", "pool", "jobs", "-per-page=1", "http-p")  # a prefix names the pool
    assert pages.returncode == 0 and pages.stdout.splitlines()[1].split()[0] == "pooled"
    assert "Results have been paginated. To get the next page run:" in pages.stdout
    assert pages.stdout.rstrip().endswith("node pool jobs -per-page=1 http-p -page-token default.pooled2")
    filtered = nomad(port, "node", "pool", "jobs", "-filter", 'ID == "pooled2"', "http-pool").stdout
    assert [line.split()[0] for line in filtered.splitlines()[1:]] == ["pooled2"]
    assert nomad(port, "node", "pool", "nodes", "-filter", 'Status == "nope"', "all").stdout == "No nodes\n"
    assert call(port, "DELETE", "/v1/job/pooled2?purge=true").status == 200
    r = call(port, "DELETE", "/v1/node/pool/http-pool")
    assert (r.status, r.text) == (500, '1 error occurred:\n\t* node pool "http-pool" has non-terminal '
                                       'jobs in regions: [global]\n\n')  # Nomad's DeleteNodePools
    assert call(port, "DELETE", "/v1/job/pooled?purge=true").status == 200
    assert call(port, "DELETE", "/v1/node/pool/http-pool").status == 200
    assert call(port, "GET", "/v1/node/pool/http-pool").status == 404
    r = call(port, "PUT", "/v1/jobs", {"Job": sleep_job("lost", count=0, NodePool="http-pool")})
    assert (r.status, r.text) == (400, 'job "lost" is in nonexistent node pool "http-pool"')
    r = call(port, "PUT", "/v1/job/lost/plan", {"Job": sleep_job("lost", count=1, NodePool="http-pool")})
    assert (r.status, r.text) == (400, 'job "lost" is in nonexistent node pool "http-pool"')  # Job.Plan's hooks
    # Bad requests: Nomad's codes, and the agent keeps serving.
    assert call(port, "PUT", "/v1/node/pools", {"Name": "bad name"}).status == 400
    assert call(port, "PUT", "/v1/node/pools", raw=b"{nope").status == 400
    assert call(port, "PUT", "/v1/node/pools", {"Name": "default", "Description": "x"}).status == 400
    assert call(port, "DELETE", "/v1/node/pool/all").status == 400
    assert call(port, "POST", "/v1/node/pool/default/nodes").status == 405
    assert call(port, "GET", "/v1/agent/health").status == 200


def test_the_cli_applies_lists_shows_and_deletes_pools(dev, tmp_path):  # noqa: F811
    port = dev.http_port
    spec = tmp_path / "prod.hcl"
    spec.write_text('node_pool "cli-prod" {\n  description = "Production"\n  meta {\n    env = "prod"\n  }\n}\n')
    out = nomad(port, "node", "pool", "apply", str(spec))
    assert (out.returncode, out.stdout.strip()) == (0, 'Successfully applied node pool "cli-prod"!'), out.stderr
    as_json = tmp_path / "dev.json"
    as_json.write_text(json.dumps({"Name": "cli-dev", "Description": "Development"}))
    assert nomad(port, "node", "pool", "apply", "-json", str(as_json)).returncode == 0
    listed = nomad(port, "node", "pool", "list").stdout.splitlines()
    assert listed[0].split() == ["Name", "Description"]
    assert [line.split()[0] for line in listed[1:]] == ["all", "cli-dev", "cli-prod", "default"]
    paged = nomad(port, "node", "pool", "list", "-per-page", "2", "-filter", 'Name != "all"').stdout
    assert [line.split()[0] for line in paged.splitlines()[1:3]] == ["cli-dev", "cli-prod"], paged
    assert "Results have been paginated" in paged and paged.rstrip().endswith("-page-token default")
    info = nomad(port, "node", "pool", "info", "cli-p").stdout  # a unique prefix (Nomad's nodePoolByPrefix)
    assert info.splitlines() == ["Name              = cli-prod", "Description       = Production",
                                 "Node Identity TTL = 24h0m0s", "", "Metadata", "env = prod", "",
                                 "Scheduler Configuration", "No scheduler configuration"]
    several = nomad(port, "node", "pool", "info", "cli-")
    assert several.returncode == 1 and several.stderr.startswith("Prefix matched multiple node pools\n\n")
    none = nomad(port, "node", "pool", "info", "zz")
    assert none.stderr == 'Error retrieving node pool: No node pool with prefix "zz" found\n'
    shown = json.loads(nomad(port, "node", "pool", "info", "-json", "cli-dev").stdout)  # api.NodePool's JSON
    assert list(shown) == ["NodeIdentityTTL", "Name", "Description", "Meta", "SchedulerConfiguration",
                           "CreateIndex", "ModifyIndex"] and shown["NodeIdentityTTL"] == "24h0m0s"
    raw = call(port, "GET", "/v1/node/pool/cli-dev").json()  # structs.NodePool's field order
    assert list(raw) == ["Name", "Description", "Meta", "SchedulerConfiguration", "NodeIdentityTTL", "Hash",
                         "CreateIndex", "ModifyIndex"]
    nodes = nomad(port, "node", "pool", "nodes", "default").stdout.splitlines()
    assert nodes[0].split()[:2] == ["ID", "Node"] and len(nodes) == 2
    assert nomad(port, "node", "pool", "jobs", "cli-prod").stdout.strip() == "No jobs"
    for name in ("cli-prod", "cli-dev"):
        out = nomad(port, "node", "pool", "delete", name)
        assert out.stdout.strip() == f'Successfully deleted node pool "{name}"!', out.stderr
    bad = nomad(port, "node", "pool", "delete", "default")
    assert bad.returncode == 1 and 'deleting node pool "default" is not allowed' in bad.stderr
    broken = tmp_path / "broken.hcl"
    broken.write_text("node_pool {")
    out = nomad(port, "node", "pool", "apply", str(broken))
    assert out.returncode == 1 and "Failed to parse node pool" in out.stderr


def test_node_pool_apply_reads_the_specification_from_stdin_with_a_dash(monkeypatch, tmp_path):
    """Nomad's node pool apply: "-" is stdin (HCL, or JSON with -json); a missing file is named."""
    import io

    from runtime import cli, cli_node_pools

    assert cli.COMMANDS
    sent: list = []
    monkeypatch.setattr(cli_node_pools, "request",
                        lambda addr, method, path, body=None, **q: sent.append(body))
    monkeypatch.setattr("sys.stdin", io.StringIO('node_pool "prod" {\n  description = "p"\n}\n'))
    assert cli_node_pools.pool_apply("http://x", ["-"]) == 'Successfully applied node pool "prod"!'
    monkeypatch.setattr("sys.stdin", io.StringIO('{"Name": "prod2"}'))
    assert cli_node_pools.pool_apply("http://x", ["-json", "-"]) == 'Successfully applied node pool "prod2"!'
    assert [b["Name"] for b in sent] == ["prod", "prod2"] and sent[0]["Description"] == "p"
    missing = str(tmp_path / "nope.hcl")
    with pytest.raises(cli.CliError, match=f'^Failed to read file "{missing}": open {missing}: no such file'):
        cli_node_pools.pool_apply("http://x", [missing])
