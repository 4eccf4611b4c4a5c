"""Replication from the authoritative region: the pure diff, the records it writes, and its config.

The loop itself runs against real processes in tests/test_replication_process.py.
"""

from __future__ import annotations

import msgpack
import pytest

from actors.server import replication
from actors.server.replication import KINDS, ReplicationConfig, content_hash, diff


def test_missing_objects_are_updated_and_vanished_ones_deleted():
    local = {"keep": "h1", "gone": "h2"}
    remote = [("keep", "h1", 5), ("new", "h9", 7)]
    assert diff(local, remote, 0) == (["gone"], ["new"])


def test_a_changed_hash_updates_only_when_modified_after_the_last_list():
    local = {"p": "old"}
    assert diff(local, [("p", "new", 10)], 9) == ([], ["p"])
    # Not modified since the previous list (index 10): our copy is taken as current, as Nomad's diff.
    assert diff(local, [("p", "new", 10)], 10) == ([], [])


def test_an_equal_hash_is_not_rewritten():
    assert diff({"p": "h"}, [("p", "h", 100)], 0) == ([], [])


def test_protected_keys_are_neither_deleted_nor_written():
    local = {"default": "a", "all": "b", "x": "c"}
    assert diff(local, [("default", "z", 9)], 0, protected=("default", "all")) == (["x"], [])


def test_the_diff_is_sorted_whatever_the_input_order():
    local = {k: "h" for k in ("c", "a", "b")}
    remote = [("z", "h", 1), ("y", "h", 1)]
    assert diff(local, remote, 0) == (["a", "b", "c"], ["y", "z"])


def test_content_hash_sees_the_defining_fields_only():
    fields = ("Description", "Meta")
    base = {"Name": "n", "Description": "d", "Meta": None, "ModifyIndex": 3}
    assert content_hash(base, fields) == content_hash({**base, "ModifyIndex": 9, "Meta": {}}, fields)
    assert content_hash(base, fields) != content_hash({**base, "Description": "e"}, fields)


def _kind(name: str) -> replication.Kind:
    return next(k for k in KINDS if k.name == name)


def test_a_fetched_global_token_becomes_an_upsert_with_its_secret_and_times():
    token = {"AccessorID": "acc", "SecretID": "sec", "Name": "g", "Type": "client", "Policies": ["p"],
             "Roles": None, "Global": True, "Hash": "h", "CreateTime": "2026-01-02T03:04:05.5Z",
             "ExpirationTime": None, "ExpirationTTL": "", "CreateIndex": 8, "ModifyIndex": 8}
    cmd = msgpack.unpackb(_kind("acl_tokens").upsert([token], {}), raw=False)
    assert cmd["op"] == "acl_token_upsert"
    (rec,) = cmd["tokens"]
    assert rec["SecretID"] == "sec" and rec["Global"] is True and rec["Hash"] == "h"
    assert rec["CreateTime"] == pytest.approx(1767323045.5)
    assert rec["ExpirationTime"] is None and rec["ExpirationTTL"] == 0


def test_only_global_tokens_are_listed_or_kept_locally():
    kind = _kind("acl_tokens")
    assert kind.keep_remote({"Global": True}) and not kind.keep_remote({"Global": False})

    class State:
        tables = {"acl_tokens": {"g": {"AccessorID": "g", "Global": True, "Hash": "x"},
                                 "l": {"AccessorID": "l", "Global": False, "Hash": "y"}}}

    assert kind.local(State()) == {"g": "x"}


def test_built_in_node_pools_and_the_default_namespace_are_protected():
    assert _kind("node_pools").protected == ("all", "default")
    assert _kind("namespaces").protected == ("default",)


def test_replication_is_active_only_outside_the_authoritative_region():
    assert not ReplicationConfig(region="a").active  # "" is this region
    assert not ReplicationConfig(region="a", authoritative_region="a").active
    assert ReplicationConfig(region="b", authoritative_region="a").active
    with pytest.raises(ValueError):
        ReplicationConfig(backoff_s=0)


@pytest.mark.parametrize("path,forwarded", [
    ("/v1/acl/policy/p", True), ("/v1/acl/role", True), ("/v1/acl/role/x", True), ("/v1/acl/token", True),
    ("/v1/acl/token/x", True), ("/v1/acl/bootstrap", True), ("/v1/namespace/ns", True),
    ("/v1/node/pools", True), ("/v1/node/pool/p/nodes", False), ("/v1/node/pool/p", True),
    ("/v1/jobs", False),
    ("/v1/acl/token/onetime/exchange", False), ("/v1/acl/auth-method/corp", True),
    ("/v1/acl/binding-rule", True), ("/v1/acl/binding-rules", False)])
def test_the_global_writes_sent_to_the_authoritative_region(path, forwarded):
    assert bool(replication._GLOBAL_WRITE.match(path)) == forwarded


def test_the_config_keys_are_real():
    from runtime.config_nomad_keys import ignored

    assert ignored("server.authoritative_region", "a", "f") is None
    assert ignored("acl.replication_token", "x", "f") is None


def test_expired_global_tokens_are_collected_only_in_the_authoritative_region():
    from actors.server.job_gc import JobGCConfig
    from actors.state.acl_ops import expired_token_candidates
    from actors.state.store import StateStore, command
    from runtime.config import ServerConfig

    st = StateStore()
    tokens = [{"AccessorID": a, "SecretID": f"{a}-s", "Name": a, "Type": "client", "Policies": [],
               "Global": a == "global", "CreateTime": 100.0, "ExpirationTime": 200.0}
              for a in ("global", "local")]
    assert st.apply(1, command("acl_token_upsert", tokens=tokens))["ok"]
    assert expired_token_candidates(st, 300.0, 150.0) == ["global", "local"]
    assert expired_token_candidates(st, 300.0, 150.0, global_tokens=False) == ["local"]
    assert JobGCConfig.from_server(ServerConfig(), region="b").authoritative
    assert JobGCConfig.from_server(ServerConfig(authoritative_region="b"), region="b").authoritative
    assert not JobGCConfig.from_server(ServerConfig(authoritative_region="a"), region="b").authoritative


def test_an_auth_method_read_through_the_api_is_stored_as_it_was_there():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from actors.acl_auth import canonical_method, method_out

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    body = {"Name": "corp", "Type": "JWT", "TokenLocality": "global", "MaxTokenTTL": "1h",
            "Config": {"JWTValidationPubKeys": [pem], "BoundAudiences": ["nomad"], "ExpirationLeeway": "30s",
                       "ClaimMappings": {"sub": "user"}}}
    stored = canonical_method(body, None, min_ttl_ns=10**9, max_ttl_ns=24 * 3600 * 10**9, now_s=1767323045.5)
    cmd = msgpack.unpackb(_kind("acl_auth_methods").upsert([method_out(stored)], {}), raw=False)
    (rec,) = cmd["methods"]
    assert rec == stored


def test_a_binding_rule_new_here_is_created_and_a_known_one_updated():
    from actors.acl_auth import rule_out

    rules = [rule_out({"ID": i, "AuthMethod": "corp", "BindType": "role", "BindName": "r", "Hash": "h",
                       "CreateTime": 100.0, "ModifyTime": 200.0}) for i in ("known", "new")]
    cmd = msgpack.unpackb(_kind("acl_binding_rules").upsert(rules, {"known": "old"}), raw=False)
    assert cmd["created"] == ["new"]
    assert cmd["rules"][0] == {"ID": "known", "Description": "", "AuthMethod": "corp", "Selector": "",
                               "BindType": "role", "BindName": "r", "Hash": "h", "CreateTime": 100.0,
                               "ModifyTime": 200.0}


def test_a_replicated_token_may_name_a_policy_or_role_not_here_yet():
    from actors.state.acl_ops import token_policy_names, token_view
    from actors.state.store import StateStore, command

    token = {"AccessorID": "acc", "SecretID": "sec", "Name": "g", "Type": "client", "Policies": ["later"],
             "Roles": [{"ID": "role-later", "Name": ""}], "Global": True, "Hash": "h"}
    st = StateStore()
    refused = st.apply(1, command("acl_token_upsert", tokens=[token]))
    assert refused["ok"] is False and "cannot find policy later" in refused["error"]
    assert st.apply(2, command("acl_token_upsert", tokens=[token], replicated=True))["ok"]
    stored = st.tables["acl_tokens"]["acc"]
    assert stored["Roles"] == [{"ID": "role-later"}]
    assert token_view(st, stored)["Roles"] == []  # shown once the role arrives
    # A replicated role may come before its policy too (Nomad's AllowMissingPolicies).
    role = {"ID": "role-later", "Name": "rl", "Description": "", "Policies": [{"ID": "", "Name": "later"}],
            "Hash": "rh", "CreateIndex": 3, "ModifyIndex": 3}  # as the authoritative region lists it
    assert st.apply(3, _kind("acl_roles").upsert([role], {}))["ok"]
    assert st.apply(4, command("acl_policy_upsert", policies=[{"Name": "later", "Rules": ""}]))["ok"]
    assert token_view(st, stored)["Roles"] == [{"ID": "role-later", "Name": "rl"}]
    assert token_policy_names(st, stored) == ["later"]


class _Ref:
    def is_alive(self) -> bool:
        return True


class _Api:
    """What forward_to_authoritative asks of the HTTP API: the replicator's status and acl_enabled."""

    def __init__(self, acl_enabled: bool, active: bool = True) -> None:
        import types

        self.ctx = types.SimpleNamespace(acl_enabled=acl_enabled)
        self.env = types.SimpleNamespace(lookup=lambda name: _Ref())
        self.active = active

    def ask(self, actor: str, message: object) -> dict:
        return {"active": self.active, "authoritative_region": "a"}


@pytest.mark.parametrize("method,path,acl,active,sent", [
    ("PUT", "/v1/namespace/ns", True, True, True),
    ("PUT", "/v1/namespace/ns", False, True, False),  # Nomad: written locally without ACLs
    ("PUT", "/v1/node/pools", False, True, False),
    ("POST", "/v1/acl/policy/p", True, True, True),
    ("POST", "/v1/acl/policy/p", True, False, False),  # the authoritative region answers itself
    ("GET", "/v1/acl/policy/p", True, True, False),
    ("POST", "/v1/jobs", True, True, False)])
def test_global_writes_are_sent_to_the_authoritative_region_with_it_in_the_url(
        monkeypatch, method, path, acl, active, sent):
    from actors import http_api

    seen = []
    monkeypatch.setattr(http_api, "forward_region", lambda req, environ, api: seen.append(req) or "sent")
    req = http_api.Request(method=method, path=path, query={"region": ["b"], "x": ["1"]},
                           url=path + "?region=b&x=1")
    got = replication.forward_to_authoritative(req, {}, _Api(acl, active))
    assert (got == "sent") == sent
    if sent:
        assert seen[0].query["region"] == ["a"] and seen[0].url == path + "?region=a&x=1"
