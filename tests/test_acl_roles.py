"""ACL roles (Nomad 1.4): the state-machine commands, token resolution and the HTTP endpoints, in process.

The reference is Nomad's ``nomad/acl_endpoint.go`` (UpsertRoles,
DeleteRolesByID, ListRoles, GetRoleByID/ByName, and upsertTokens' role
links), ``nomad/state/state_store_acl.go`` (fixTokenRoleLinks) and
``command/agent/acl_endpoint.go`` (routes, status codes, messages).
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from actors import http_acl
from actors.http_api import Answer, CodedError, Request, find_route
from actors.state.acl_ops import token_policy_names, token_view
from actors.state.store import StateStore, command
from tests.one_server_api import api_over

NODE_READ = 'node { policy = "read" }'
AGENT_READ = 'agent { policy = "read" }'
ROLE_A = "11111111-1111-4111-8111-111111111111"
ROLE_B = "22222222-2222-4222-8222-222222222222"


def _token(accessor: str, secret: str = "", kind: str = "client", policies: tuple[str, ...] = (),
           roles: tuple[dict, ...] = ()) -> dict:
    t = {"AccessorID": accessor, "Type": kind, "Name": accessor, "Policies": list(policies),
         "Roles": list(roles), "Global": False}
    return {**t, "SecretID": secret} if secret else t


def _role(role_id: str, name: str, *policies: str, description: str = "") -> dict:
    return {"ID": role_id, "Name": name, "Description": description,
            "Policies": [{"Name": p} for p in policies], "Hash": "h"}


def _state() -> StateStore:
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("root", "root-secret", "management"), now=1.0))
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "node-read", "Rules": NODE_READ},
                                                       {"Name": "agent-read", "Rules": AGENT_READ}]))
    return st


# ---------------------------------------------------------------- the state-machine commands


def test_a_role_is_created_with_the_edges_id_and_must_name_existing_policies():
    st = _state()
    r = st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "ghost")], created=[ROLE_A]))
    assert r == {"ok": False, "error": "cannot find policy ghost", "code": 400}
    assert st.tables["acl_roles"] == {} and st.table_index["acl_roles"] == 0
    r = st.apply(4, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "node-read", "node-read")],
                            created=[ROLE_A]))
    assert r["ok"] and r["IDs"] == [ROLE_A]
    role = st.tables["acl_roles"][ROLE_A]
    assert role["Policies"] == [{"Name": "node-read"}]  # deduplicated
    assert (role["CreateIndex"], role["ModifyIndex"]) == (4, 4)


def test_role_names_are_unique_and_an_update_needs_an_existing_role():
    st = _state()
    st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "node-read")], created=[ROLE_A]))
    dup = st.apply(4, command("acl_role_upsert", roles=[_role(ROLE_B, "ops", "node-read")], created=[ROLE_B]))
    assert dup == {"ok": False, "error": "role with name ops already exists", "code": 400}
    missing = st.apply(5, command("acl_role_upsert", roles=[_role(ROLE_B, "dev", "node-read")]))
    assert missing == {"ok": False, "error": f"cannot find role {ROLE_B}", "code": 400}
    # Renaming keeps the ID and CreateIndex; an unchanged write moves no index.
    assert st.apply(6, command("acl_role_upsert", roles=[_role(ROLE_A, "operators", "agent-read")]))["ok"]
    role = st.tables["acl_roles"][ROLE_A]
    assert (role["Name"], role["CreateIndex"], role["ModifyIndex"]) == ("operators", 3, 6)
    assert st.apply(7, command("acl_role_upsert", roles=[_role(ROLE_A, "operators", "agent-read")]))["ok"]
    assert st.tables["acl_roles"][ROLE_A]["ModifyIndex"] == 6 and st.table_index["acl_roles"] == 6


def test_deleting_a_missing_role_changes_nothing():
    st = _state()
    st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "node-read")], created=[ROLE_A]))
    r = st.apply(4, command("acl_role_delete", ids=[ROLE_A, ROLE_B]))
    assert r == {"ok": False, "error": "ACL role not found", "code": 500}
    assert list(st.tables["acl_roles"]) == [ROLE_A]
    assert st.apply(5, command("acl_role_delete", ids=[ROLE_A]))["ok"] and st.tables["acl_roles"] == {}


def test_a_token_links_roles_by_id_or_name_and_stores_ids_only():
    st = _state()
    st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "node-read")], created=[ROLE_A]))
    bad = st.apply(4, command("acl_token_upsert", tokens=[_token("t", "s", roles=({"Name": "nope"},))]))
    assert bad == {"ok": False, "error": "cannot find role nope", "code": 400}
    ok = st.apply(5, command("acl_token_upsert", tokens=[_token(
        "t", "s", roles=({"Name": "ops"}, {"ID": ROLE_A}))]))
    assert ok["ok"]
    assert st.tables["acl_tokens"]["t"]["Roles"] == [{"ID": ROLE_A}]
    # Readers see the role's current name; a renamed role keeps its tokens.
    st.apply(6, command("acl_role_upsert", roles=[_role(ROLE_A, "operators", "node-read")]))
    assert token_view(st, st.tables["acl_tokens"]["t"])["Roles"] == [{"ID": ROLE_A, "Name": "operators"}]


def test_a_tokens_policies_are_its_own_and_its_roles_and_deleted_ones_drop_out():
    st = _state()
    st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "node-read", "agent-read")],
                        created=[ROLE_A]))
    st.apply(4, command("acl_token_upsert", tokens=[_token("t", "s", roles=({"ID": ROLE_A},))]))
    token = st.tables["acl_tokens"]["t"]
    assert token_policy_names(st, token) == ["agent-read", "node-read"]
    st.apply(5, command("acl_policy_delete", names=["agent-read"]))
    assert token_policy_names(st, token) == ["node-read"]
    st.apply(6, command("acl_role_delete", ids=[ROLE_A]))
    assert token_policy_names(st, token) == []
    assert token_view(st, token)["Roles"] == []


def test_old_log_entries_apply_the_same_and_roles_survive_a_snapshot():
    st = StateStore()
    # A token write from before roles existed: no Roles key at all.
    old_token = {"AccessorID": "a", "SecretID": "s", "Type": "management", "Name": "x", "Global": True}
    assert st.apply(1, command("acl_bootstrap", token=old_token, now=1.0))["ok"]
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "p", "Rules": NODE_READ}]))
    st.apply(3, command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "p")], created=[ROLE_A]))
    replay = StateStore()
    for i, cmd in enumerate([command("acl_bootstrap", token=old_token, now=1.0),
                             command("acl_policy_upsert", policies=[{"Name": "p", "Rules": NODE_READ}]),
                             command("acl_role_upsert", roles=[_role(ROLE_A, "ops", "p")], created=[ROLE_A])],
                            start=1):
        replay.apply(i, cmd)
    assert replay.digest() == st.digest()
    copy = StateStore()
    copy.restore(st.snapshot(), 3)
    assert copy.digest() == st.digest() and copy.tables["acl_roles"][ROLE_A]["Name"] == "ops"
    # A snapshot from before the roles table restores it empty.
    snap = msgpack.unpackb(st.snapshot(), raw=False)
    del snap["tables"]["acl_roles"], snap["index"]["acl_roles"]
    fresh = StateStore()
    fresh.restore(msgpack.packb(snap), 3)
    assert fresh.tables["acl_roles"] == {} and "a" in fresh.tables["acl_tokens"]
    again = command("acl_role_upsert", roles=[_role(ROLE_B, "dev", "p")], created=[ROLE_B])
    assert fresh.apply(4, again)["ok"]


# ---------------------------------------------------------------- the HTTP endpoints, in process


def _api(state: StateStore) -> Any:
    return api_over(state, acl_enabled=True)


def call(state: StateStore, method: str, path: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    path, _, qs = path.partition("?")
    query = {k: [v] for k, _, v in (p.partition("=") for p in qs.split("&") if p)}
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "REQUEST_METHOD": method}
    if token:
        environ["HTTP_X_NOMAD_TOKEN"] = token
    req = Request(method=method, path=path, query=query, url=path, environ=environ)
    handler = find_route(path)
    assert handler is not None, path
    try:
        out = handler(req, _api(state))
    except CodedError as e:
        return e.code, str(e)
    if isinstance(out, Answer):
        return 200, out.value
    if hasattr(out, "status"):
        return out.status, out.body
    return 200, out


@pytest.fixture
def st() -> StateStore:
    return _state()


def _create(st: StateStore, name: str, *policies: str) -> dict:
    code, role = call(st, "POST", "/v1/acl/role", "root-secret",
                      {"Name": name, "Description": f"the {name} role",
                       "Policies": [{"Name": p} for p in policies]})
    assert code == 200, role
    return role


def test_http_creates_reads_lists_updates_and_deletes_a_role(st):
    role = _create(st, "ops", "node-read")
    assert set(role) == {"ID", "Name", "Description", "Policies", "Hash", "CreateIndex", "ModifyIndex"}
    assert len(role["ID"]) == 36 and role["Policies"] == [{"Name": "node-read"}]
    assert call(st, "GET", f"/v1/acl/role/{role['ID']}", "root-secret") == (200, role)
    assert call(st, "GET", "/v1/acl/role/name/ops", "root-secret") == (200, role)
    assert call(st, "GET", "/v1/acl/roles", "root-secret")[1] == [role]
    assert call(st, "GET", f"/v1/acl/roles?prefix={role['ID'][:4]}", "root-secret")[1] == [role]
    assert call(st, "GET", "/v1/acl/roles?prefix=zz", "root-secret")[1] == []
    code, updated = call(st, "POST", f"/v1/acl/role/{role['ID']}", "root-secret",
                         {"ID": role["ID"], "Name": "operators", "Policies": [{"Name": "agent-read"}]})
    assert code == 200 and updated["Name"] == "operators" and updated["ModifyIndex"] > role["ModifyIndex"]
    assert updated["CreateIndex"] == role["CreateIndex"] and updated["Hash"] != role["Hash"]
    assert call(st, "DELETE", f"/v1/acl/role/{role['ID']}", "root-secret")[0] == 200
    assert call(st, "GET", f"/v1/acl/role/{role['ID']}", "root-secret") == (404, "ACL role not found")
    assert call(st, "DELETE", f"/v1/acl/role/{role['ID']}", "root-secret") == (500, "ACL role not found")


@pytest.mark.parametrize("method, path, body, want", [
    ("POST", "/v1/acl/role", {"Name": "x", "Policies": [{"Name": "ghost"}]},
     (400, "cannot find policy ghost")),
    ("POST", "/v1/acl/role", {"Name": "bad name", "Policies": [{"Name": "node-read"}]},
     (400, "role 0 invalid: invalid name 'bad name'")),
    ("POST", "/v1/acl/role", {"Name": "x" * 129, "Policies": [{"Name": "node-read"}]},
     (400, f"role 0 invalid: invalid name '{'x' * 129}'")),
    ("POST", "/v1/acl/role", {"Name": "x", "Description": "d" * 257, "Policies": [{"Name": "node-read"}]},
     (400, "role 0 invalid: description longer than 256")),
    ("POST", "/v1/acl/role", {"Name": "x"}, (400, "role 0 invalid: at least one policy should be specified")),
    ("POST", f"/v1/acl/role/{ROLE_A}", {"ID": ROLE_B, "Name": "x", "Policies": [{"Name": "node-read"}]},
     (400, "ACL role ID does not match request path")),
    ("POST", f"/v1/acl/role/{ROLE_A}", {"ID": ROLE_A, "Name": "x", "Policies": [{"Name": "node-read"}]},
     (400, f"cannot find role {ROLE_A}")),
    ("GET", "/v1/acl/role/", None, (400, "missing ACL role ID")),
    ("GET", "/v1/acl/role/name/", None, (400, "missing ACL role name")),
    ("GET", "/v1/acl/role/nope/ops", None, (400, "invalid URI")),
    ("DELETE", "/v1/acl/role/name/ops", None, (405, "Invalid method")),
    ("GET", "/v1/acl/role", None, (405, "Invalid method")),
    ("GET", "/v1/acl/role/name/nope", None, (404, "ACL role not found")),
])
def test_http_refuses_bad_role_requests_with_nomads_code_and_message(st, method, path, body, want):
    assert call(st, method, path, "root-secret", body) == want


def test_http_a_second_role_with_the_same_name_is_refused(st):
    _create(st, "ops", "node-read")
    body = {"Name": "ops", "Policies": [{"Name": "node-read"}]}
    assert call(st, "POST", "/v1/acl/role", "root-secret", body) == (400, "role with name ops already exists")


def test_only_management_writes_roles_and_a_token_reads_only_its_own(st):
    ops, dev = _create(st, "ops", "node-read"), _create(st, "dev", "agent-read")
    code, token = call(st, "POST", "/v1/acl/token", "root-secret",
                       {"Name": "t", "Type": "client", "Roles": [{"Name": "ops"}]})
    assert code == 200, token
    secret = token["SecretID"]
    assert token["Roles"] == [{"ID": ops["ID"], "Name": "ops"}] and token["Policies"] == []
    assert call(st, "POST", "/v1/acl/role", secret, {"Name": "x", "Policies": [{"Name": "node-read"}]}) \
        == (403, "Permission denied")
    assert call(st, "DELETE", f"/v1/acl/role/{ops['ID']}", secret) == (403, "Permission denied")
    assert call(st, "GET", f"/v1/acl/role/{ops['ID']}", secret) == (200, ops)
    assert call(st, "GET", "/v1/acl/role/name/ops", secret) == (200, ops)
    assert call(st, "GET", f"/v1/acl/role/{dev['ID']}", secret) == (403, "Permission denied")
    assert call(st, "GET", "/v1/acl/role/name/dev", secret) == (403, "Permission denied")
    assert call(st, "GET", "/v1/acl/roles", secret) == (200, [ops])
    assert call(st, "GET", "/v1/acl/roles") == (200, [])  # anonymous: no roles
    # The role's policy may be read through the role (a client agent resolving the token needs it).
    assert call(st, "GET", "/v1/acl/policy/node-read", secret)[0] == 200
    assert call(st, "GET", "/v1/acl/policy/agent-read", secret) == (403, "Permission denied")
    assert [p["Name"] for p in call(st, "GET", "/v1/acl/policies", secret)[1]] == ["node-read"]


def test_token_validation_names_policies_or_roles(st):
    assert call(st, "POST", "/v1/acl/token", "root-secret", {"Type": "client"}) \
        == (400, "token 0 invalid: 1 error occurred:\n\t* client token missing policies or roles\n\n")
    _create(st, "ops", "node-read")
    body = {"Type": "management", "Roles": [{"Name": "ops"}]}
    assert call(st, "POST", "/v1/acl/token", "root-secret", body) == (
        400, "token 0 invalid: 1 error occurred:\n\t* management token cannot be associated with policies or "
             "roles\n\n")
    assert call(st, "POST", "/v1/acl/token", "root-secret", {"Type": "client", "Roles": [{"ID": ROLE_B}]}) \
        == (400, f"cannot find role {ROLE_B}")


def test_resolution_expands_roles_and_follows_role_and_policy_changes(st):
    from actors.acl import Need

    ops = _create(st, "ops", "node-read")
    _, token = call(st, "POST", "/v1/acl/token", "root-secret",
                    {"Name": "t", "Type": "client", "Roles": [{"ID": ops["ID"]}]})
    secret = token["SecretID"]
    req = Request(method="GET", path="/v1/nodes", query={}, url="", environ={"HTTP_X_NOMAD_TOKEN": secret})
    node_read, agent_read = (Need("node", "read"),), (Need("agent", "read"),)

    def acl() -> Any:
        return http_acl.resolve(req, _api(st))[1]

    assert acl().allows(node_read) and not acl().allows(agent_read)
    # The role gains a policy: existing tokens have it at once.
    call(st, "POST", f"/v1/acl/role/{ops['ID']}", "root-secret",
         {"ID": ops["ID"], "Name": "ops", "Policies": [{"Name": "node-read"}, {"Name": "agent-read"}]})
    assert acl().allows(node_read) and acl().allows(agent_read)
    # A deleted policy drops out, then a deleted role.
    call(st, "DELETE", "/v1/acl/policy/agent-read", "root-secret")
    assert acl().allows(node_read) and not acl().allows(agent_read)
    call(st, "DELETE", f"/v1/acl/role/{ops['ID']}", "root-secret")
    assert not acl().allows(node_read)
    code, me = call(st, "GET", "/v1/acl/token/self", secret)
    assert code == 200 and me["Roles"] is None and me["Policies"] == []


def test_a_client_agent_resolves_roles_through_its_server(st, monkeypatch):
    """_remote_lookup: token self, then each role, then each policy, cached (Nomad's client caches)."""
    from actors.acl import Need
    from actors.http_api import Response

    ops = _create(st, "ops", "node-read")
    _, token = call(st, "POST", "/v1/acl/token", "root-secret",
                    {"Name": "t", "Type": "client", "Roles": [{"Name": "ops"}]})
    asked: list[str] = []

    def ask_server(api: Any, path: str, secret: str) -> Response:
        asked.append(path)
        code, value = call(st, "GET", path, secret)
        body = json.dumps(value).encode() if code == 200 else str(value).encode()
        return Response(code, body, "application/json")

    for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
        cache.clear()
    monkeypatch.setattr(http_acl, "_ask_server", ask_server)
    api = SimpleNamespace(ctx=SimpleNamespace(acl_token_ttl_s=30.0, acl_policy_ttl_s=30.0,
                                              acl_role_ttl_s=30.0))
    status, got, policies = http_acl._remote_lookup(api, token["SecretID"])
    assert status == "ok" and got["Roles"] == [{"ID": ops["ID"], "Name": "ops"}]
    assert list(policies) == ["node-read"]
    assert http_acl._compile(policies).allows((Need("node", "read"),))
    assert asked == ["/v1/acl/token/self", f"/v1/acl/role/{ops['ID']}", "/v1/acl/policy/node-read"]
    http_acl._remote_lookup(api, token["SecretID"])
    assert len(asked) == 3  # all cached
    for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
        cache.clear()


def test_cli_prints_an_empty_description_as_none(monkeypatch):
    """Nomad's formatKV and formatList put columnize's ``<none>`` in an empty field: a policy or role
    made without -description shows ``Description = <none>`` and a ``<none>`` cell in its list."""
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl

    answers = {"/v1/acl/policy/p": {"Name": "p", "Description": "", "Rules": "", "CreateIndex": 5,
                                    "ModifyIndex": 5},
               "/v1/acl/policies": [{"Name": "p", "Description": ""}],
               "/v1/acl/role/r1": {"ID": "r1", "Name": "r", "Description": "", "Policies": [{"Name": "p"}],
                                   "CreateIndex": 6, "ModifyIndex": 6},
               "/v1/acl/roles": [{"ID": "r1", "Name": "r", "Description": "", "Policies": [{"Name": "p"}]}]}
    monkeypatch.setattr(cli_acl, "request", lambda addr, method, path, body=None: answers[path])
    assert cli_acl.policy_info("http://x", ["p"]).startswith(
        "Name        = p\nDescription = <none>\nCreateIndex = 5\nModifyIndex = 5\n")
    assert cli_acl.policy_list("http://x", []).splitlines()[1].split() == ["p", "<none>"]
    assert "Description  = <none>\n" in cli_acl.role_info("http://x", ["r1"])
    assert cli_acl.role_list("http://x", []).splitlines()[1].split() == ["r1", "r", "<none>", "p"]


def test_acl_policy_list_takes_json_and_no_arguments(monkeypatch):
    """Nomad's `acl policy list` has -json (api.ACLPolicyListStub, which -t formats) and no arguments."""
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl
    from runtime.cli import CliError

    stub = {"Name": "p", "Description": "d", "JobACL": None, "Hash": "h", "CreateIndex": 5, "ModifyIndex": 6}
    monkeypatch.setattr(cli_acl, "request", lambda addr, method, path, body=None: [stub])
    assert json.loads(cli_acl.policy_list("http://x", ["-json"])) == [
        {"Name": "p", "Description": "d", "JobACL": None, "CreateIndex": 5, "ModifyIndex": 6}]
    with pytest.raises(CliError, match="This command takes no arguments"):
        cli_acl.policy_list("http://x", ["extra"])
