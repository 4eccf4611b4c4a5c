"""Replication of global objects between two federated regions, with real server processes.

Region ``a`` is authoritative (``server.authoritative_region = "a"`` on both
servers); region ``b`` joins its gossip and carries ``a``'s management token
as ``acl.replication_token``.  What is created in ``a`` (a policy, a role, a global
token, a namespace, a node pool, an auth method and its binding rule) appears
in ``b`` and what is deleted there disappears; a local token stays in its region; a policy, a global token and
a namespace written to ``b`` land in ``a`` (Nomad sends these writes to the
authoritative region).  One server a region, free ports, killed by PID.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_acl_process import call
from tests.test_agent_process import agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(150)

# Gossip join, one election a region and the first replication round, on a loaded machine.
CLUSTER_DEADLINE_S = 40.0
# A change in a reaches b through a blocking query that returns at once, a diff and a Raft write.
REPLICATE_DEADLINE_S = 20.0
POLICY = 'namespace "default" { policy = "read" }'


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def server_config(tmp: Any, name: str, region: str, token: str = "", expect: int = 1) -> dict[str, Any]:
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    lines = [f'name = "{name}"', f'region = "{region}"', f'data_dir = "{tmp / f"data-{name}"}"',
             'bind_addr = "127.0.0.1"', "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
             "[server]", "enabled = true", f"bootstrap_expect = {expect}", 'authoritative_region = "a"',
             "[acl]", "enabled = true", *([f'replication_token = "{token}"'] if token else [])]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), **ports}


def names(port: int, path: str, key: str, token: str) -> list[str] | None:
    try:
        r = call(port, "GET", path, token=token)
    except OSError:
        return None
    return sorted(o[key] for o in r.json()) if r.status == 200 else None


def test_global_objects_replicate_from_the_authoritative_region_and_writes_go_to_it(agents, tmp_path):  # noqa: F811
    a_cfg = server_config(tmp_path, "a0", "a")
    a = agents(["-config", a_cfg["path"]], http_port=a_cfg["http"]).wait_healthy()
    wait_for(lambda: call(a.http_port, "GET", "/v1/status/leader").status == 200, "a leader in a",
             CLUSTER_DEADLINE_S, a.detail)
    boot = call(a.http_port, "POST", "/v1/acl/bootstrap")
    assert boot.status == 200, boot.text
    mgmt = boot.json()["SecretID"]
    pa, detail_a = a.http_port, a.detail

    r = call(pa, "POST", "/v1/acl/policy/readonly", {"Name": "readonly", "Rules": POLICY}, mgmt)
    assert r.status == 200, r.text
    r = call(pa, "POST", "/v1/acl/role", {"Name": "r1", "Policies": [{"Name": "readonly"}]}, mgmt)
    assert r.status == 200, r.text
    g1 = call(pa, "POST", "/v1/acl/token", {"Name": "g1", "Type": "client", "Policies": ["readonly"],
                                            "Roles": [{"Name": "r1"}], "Global": True}, mgmt).json()
    local = call(pa, "POST", "/v1/acl/token", {"Name": "l1", "Type": "client", "Policies": ["readonly"]},
                 mgmt).json()
    assert call(pa, "PUT", "/v1/namespace/ns1", {"Name": "ns1", "Description": "one"}, mgmt).status == 200
    assert call(pa, "PUT", "/v1/node/pools", {"Name": "pool1", "Description": "p"}, mgmt).status == 200
    method = {"Name": "corp", "Type": "JWT", "TokenLocality": "global", "MaxTokenTTL": "1h",
              "Config": {"JWTValidationPubKeys": [_pem()], "BoundAudiences": ["nomad"]}}
    r = call(pa, "PUT", "/v1/acl/auth-method", method, mgmt)
    assert r.status == 200, r.text
    r = call(pa, "PUT", "/v1/acl/binding-rule", {"AuthMethod": "corp", "BindType": "policy",
                                                 "BindName": "readonly"}, mgmt)
    assert r.status == 200, r.text
    rule_id = r.json()["ID"]

    b_cfg = server_config(tmp_path, "b0", "b", token=mgmt)
    b = agents(["-config", b_cfg["path"], "-join", f"127.0.0.1:{a_cfg['serf']}"], http_port=b_cfg["http"])
    pb = b.http_port
    detail = lambda: detail_a() + "\n" + b.detail()

    def tokens_in_b() -> list[str] | None:
        return names(pb, "/v1/acl/tokens", "Name", mgmt)

    # Everything global created in a before b existed reaches b; the local token does not.
    wait_for(lambda: tokens_in_b() == ["Bootstrap Token", "g1"], "a's global tokens in b",
             CLUSTER_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/acl/policies", "Name", mgmt) == ["readonly"], "a's policy in b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/namespaces", "Name", mgmt) == ["default", "ns1"], "a's namespace in b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/node/pools", "Name", mgmt) == ["all", "default", "pool1"],
             "a's node pool in b", REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/acl/roles", "Name", mgmt) == ["r1"], "a's role in b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/acl/auth-methods", "Name", mgmt) == ["corp"], "a's auth method in b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/acl/binding-rules", "ID", mgmt) == [rule_id], "a's binding rule in b",
             REPLICATE_DEADLINE_S, detail)
    got = call(pb, "GET", "/v1/acl/auth-method/corp", token=mgmt).json()
    want = call(pa, "GET", "/v1/acl/auth-method/corp", token=mgmt).json()
    assert {k: v for k, v in got.items() if not k.endswith("Index")} == \
        {k: v for k, v in want.items() if not k.endswith("Index")}
    # The replicated token works in b: it reads with its policy there.
    me = call(pb, "GET", "/v1/acl/token/self", token=g1["SecretID"]).json()
    assert me["AccessorID"] == g1["AccessorID"]
    assert me["Roles"] == [{"ID": g1["Roles"][0]["ID"], "Name": "r1"}]
    assert call(pb, "GET", "/v1/acl/token/self", token=local["SecretID"]).status == 403

    # Changes and deletes in a follow: the blocking list answers and b catches up.
    assert call(pa, "PUT", "/v1/namespace/ns1", {"Name": "ns1", "Description": "two"}, mgmt).status == 200
    assert call(pa, "DELETE", f"/v1/acl/token/{g1['AccessorID']}", token=mgmt).status == 200
    wait_for(lambda: tokens_in_b() == ["Bootstrap Token"], "the deleted global token gone from b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: call(pb, "GET", "/v1/namespace/ns1", token=mgmt).json()["Description"] == "two",
             "the namespace's change in b", REPLICATE_DEADLINE_S, detail)

    # Writes sent to b land in a (and come back to b by replication); a local token stays in b.
    r = call(pb, "POST", "/v1/acl/policy/fromb", {"Name": "fromb", "Rules": POLICY}, mgmt)
    assert r.status == 200, r.text
    assert names(pa, "/v1/acl/policies", "Name", mgmt) == ["fromb", "readonly"]
    gb = call(pb, "POST", "/v1/acl/token", {"Name": "gb", "Type": "client", "Policies": ["readonly"],
                                            "Global": True}, mgmt)
    assert gb.status == 200, gb.text
    lb = call(pb, "POST", "/v1/acl/token", {"Name": "lb", "Type": "client", "Policies": ["readonly"]}, mgmt)
    assert lb.status == 200, lb.text
    assert names(pa, "/v1/acl/tokens", "Name", mgmt) == ["Bootstrap Token", "gb", "l1"]
    assert call(pb, "PUT", "/v1/namespace/nsb", {"Name": "nsb"}, mgmt).status == 200
    assert names(pa, "/v1/namespaces", "Name", mgmt) == ["default", "ns1", "nsb"]
    wait_for(lambda: tokens_in_b() == ["Bootstrap Token", "gb", "lb"], "b's global token back in b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/namespaces", "Name", mgmt) == ["default", "ns1", "nsb"],
             "b's namespace back in b", REPLICATE_DEADLINE_S, detail)
    # Deleting a global token in b deletes it in a, and then in b.
    assert call(pb, "DELETE", f"/v1/acl/token/{gb.json()['AccessorID']}", token=mgmt).status == 200
    assert names(pa, "/v1/acl/tokens", "Name", mgmt) == ["Bootstrap Token", "l1"]
    wait_for(lambda: tokens_in_b() == ["Bootstrap Token", "lb"], "the global token deleted from b",
             REPLICATE_DEADLINE_S, detail)


def test_only_the_leader_replicates_and_a_new_leader_takes_over(agents, tmp_path):  # noqa: F811
    a_cfg = server_config(tmp_path, "a0", "a")
    a = agents(["-config", a_cfg["path"]], http_port=a_cfg["http"]).wait_healthy()
    wait_for(lambda: call(a.http_port, "GET", "/v1/status/leader").status == 200, "a leader in a",
             CLUSTER_DEADLINE_S, a.detail)
    mgmt = call(a.http_port, "POST", "/v1/acl/bootstrap").json()["SecretID"]
    b_cfgs = [server_config(tmp_path, f"b{i}", "b", token=mgmt, expect=3) for i in range(3)]
    b = [agents(["-config", c["path"], "-join", f"127.0.0.1:{a_cfg['serf']}"], http_port=c["http"])
         for c in b_cfgs]
    detail = lambda: "\n".join(p.detail() for p in [a, *b])
    b_rpcs = {f"127.0.0.1:{c['rpc']}": i for i, c in enumerate(b_cfgs)}

    def b_leader() -> int | None:
        try:
            r = call(b[0].http_port, "GET", "/v1/status/leader")
        except OSError:
            return None
        return b_rpcs.get(r.json()) if r.status == 200 else None

    def policies_in(i: int) -> list[str] | None:
        return names(b[i].http_port, "/v1/acl/policies", "Name", mgmt)

    r = call(a.http_port, "POST", "/v1/acl/policy/first", {"Name": "first", "Rules": POLICY}, mgmt)
    assert r.status == 200, r.text
    wait_for(lambda: b_leader() is not None and all(policies_in(i) == ["first"] for i in range(3)),
             "a's policy on every server of b", CLUSTER_DEADLINE_S, detail)
    leader = b_leader()
    started = "replicating acl_policies from authoritative region a"
    assert [any(started in line for line in p.out + p.err) for p in b] == [i == leader for i in range(3)]

    b[leader].kill()
    rest = [i for i in range(3) if i != leader]

    def new_leader() -> int | None:
        try:
            r = call(b[rest[0]].http_port, "GET", "/v1/status/leader")
        except OSError:
            return None
        got = b_rpcs.get(r.json()) if r.status == 200 else None
        return got if got != leader else None

    wait_for(lambda: new_leader() is not None, "a new leader in b", CLUSTER_DEADLINE_S, detail)
    r = call(a.http_port, "POST", "/v1/acl/policy/second", {"Name": "second", "Rules": POLICY}, mgmt)
    assert r.status == 200, r.text
    wait_for(lambda: all(policies_in(i) == ["first", "second"] for i in rest),
             "the new leader replicates", REPLICATE_DEADLINE_S, detail)


def test_a_namespace_or_node_pool_with_jobs_in_another_region_is_not_deleted(agents, tmp_path):  # noqa: F811
    """Nomad's DeleteNamespaces and DeleteNodePools ask every region for what still uses the namespace
    or pool before they write: one still used in b is refused in a, named with the region that uses it,
    and is deleted (there and, by replication, in b) once b's job is gone."""
    a_cfg = server_config(tmp_path, "a0", "a")
    a = agents(["-config", a_cfg["path"]], http_port=a_cfg["http"]).wait_healthy()
    pa = a.http_port
    wait_for(lambda: call(pa, "GET", "/v1/status/leader").status == 200, "a leader in a",
             CLUSTER_DEADLINE_S, a.detail)
    mgmt = call(pa, "POST", "/v1/acl/bootstrap").json()["SecretID"]
    assert call(pa, "PUT", "/v1/namespace/ns1", {"Name": "ns1"}, mgmt).status == 200
    assert call(pa, "PUT", "/v1/node/pools", {"Name": "pool1"}, mgmt).status == 200
    b_cfg = server_config(tmp_path, "b0", "b", token=mgmt)
    b = agents(["-config", b_cfg["path"], "-join", f"127.0.0.1:{a_cfg['serf']}"], http_port=b_cfg["http"])
    pb = b.http_port
    detail = lambda: a.detail() + "\n" + b.detail()
    wait_for(lambda: names(pb, "/v1/namespaces", "Name", mgmt) == ["default", "ns1"], "a's namespace in b",
             CLUSTER_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/node/pools", "Name", mgmt) == ["all", "default", "pool1"],
             "a's node pool in b", REPLICATE_DEADLINE_S, detail)
    job = {"ID": "j1", "Name": "j1", "Namespace": "ns1", "NodePool": "pool1", "Type": "batch",
           "Datacenters": ["dc1"],
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "exec",
                                                               "Config": {"command": "/bin/true"}}]}]}
    r = call(pb, "PUT", "/v1/jobs?namespace=ns1", {"Job": job}, mgmt)
    assert r.status == 200, r.text

    r = call(pa, "DELETE", "/v1/namespace/ns1", token=mgmt)
    assert r.status == 500, r.text
    assert 'namespace "ns1" has non-terminal jobs in regions: [b]' in r.text
    assert names(pa, "/v1/namespaces", "Name", mgmt) == ["default", "ns1"]
    r = call(pa, "DELETE", "/v1/node/pool/pool1", token=mgmt)
    assert (r.status, r.text) == (500, '1 error occurred:\n\t* node pool "pool1" has non-terminal jobs in '
                                       'regions: [b]\n\n'), r.text

    assert call(pb, "DELETE", "/v1/job/j1?namespace=ns1&purge=true", token=mgmt).status == 200
    r = call(pa, "DELETE", "/v1/node/pool/pool1", token=mgmt)
    assert r.status == 200, r.text
    r = call(pa, "DELETE", "/v1/namespace/ns1", token=mgmt)
    assert r.status == 200, r.text
    wait_for(lambda: names(pb, "/v1/namespaces", "Name", mgmt) == ["default"], "the namespace gone from b",
             REPLICATE_DEADLINE_S, detail)
    wait_for(lambda: names(pb, "/v1/node/pools", "Name", mgmt) == ["all", "default"], "the pool gone from b",
             REPLICATE_DEADLINE_S, detail)
