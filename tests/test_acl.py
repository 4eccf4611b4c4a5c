"""ACL policies, capability checks, route requirements and the ACL state-machine commands (no processes).

The reference is Nomad's ``acl/policy.go`` (parsing, shorthand expansion),
``acl/acl.go`` (merging: most privilege wins, deny always wins) and
``nomad/state/state_store_acl.go`` (bootstrap once, with its reset index).
"""

from __future__ import annotations

import json
import msgpack
import pytest

from actors.acl import (
    MANAGEMENT_ACL,
    OPEN,
    SELF_CHECKED,
    Need,
    PolicyError,
    compile_acl,
    parse_hcl,
    parse_policy,
    required,
)
from actors.state.store import StateStore, command

SUBMIT_RULES = '''
# a CI token: read jobs and submit them in the default namespace
namespace "default" {
  policy       = "read"
  capabilities = ["submit-job",]  // a trailing comma is fine
}
node { policy = "read" }
/* nothing on agents
   or operators */
'''


# ---------------------------------------------------------------- the HCL subset


def test_hcl_blocks_attributes_and_lists_parse_in_order():
    items = parse_hcl(SUBMIT_RULES)
    assert items == [
        ("namespace", (("default",), [("policy", "read"), ("capabilities", ["submit-job"])])),
        ("node", ((), [("policy", "read")])),
    ]


def test_hcl_strings_take_escapes_and_values_take_numbers_and_bools():
    assert parse_hcl('a = "x\\"y" b = 3 c = true d = []') == [("a", 'x"y'), ("b", 3), ("c", True), ("d", [])]


@pytest.mark.parametrize("text, where", [
    ('namespace "default" { policy = "read"', "end of rules"),
    ('node { policy = }', "expected a value"),
    ('node { policy "read" }', "expected '=' or '{'"),
    ('node { policy = "read" } }', "expected a key"),
    ('node { policy = ["read" "write"] }', "expected ',' or ']'"),
    ('node { policy = @ }', "unexpected character"),
])
def test_hcl_errors_say_what_was_expected(text, where):
    with pytest.raises(PolicyError, match=where):
        parse_hcl(text)


# ---------------------------------------------------------------- policies


def test_namespace_read_expands_and_capabilities_add_to_it():
    p = parse_policy(SUBMIT_RULES)
    caps = dict(p.namespaces)["default"]
    assert {"list-jobs", "read-job", "submit-job"} <= caps
    assert "dispatch-job" not in caps and "alloc-exec" not in caps
    assert (p.node, p.agent, p.operator) == ("read", "", "")


def test_write_grants_submit_and_deny_grants_only_deny():
    p = parse_policy('namespace "a" { policy = "write" }\nnamespace "b" { policy = "deny" }')
    ns = dict(p.namespaces)
    assert {"submit-job", "read-job", "dispatch-job", "alloc-lifecycle"} <= ns["a"]
    assert ns["b"] == frozenset({"deny"})


def test_json_rules_mean_the_same_as_hcl():
    as_json = '{"namespace": {"default": {"policy": "read", "capabilities": ["submit-job"]}}, ' \
              '"node": {"policy": "read"}}'
    assert parse_policy(as_json) == parse_policy(SUBMIT_RULES)


@pytest.mark.parametrize("rules, message", [
    ('namespace "default" { policy = "admin" }', "Invalid namespace policy"),
    ('namespace "default" { capabilities = ["fly"] }', "Invalid namespace capability 'fly'"),
    ('namespace "bad name" { policy = "read" }', "Invalid namespace name"),
    ('namespace { policy = "read" }', "expected one name"),
    ('node { policy = "scale" }', "Invalid node policy"),
    ('agent { level = "read" }', "unexpected key 'level'"),
    ('keyring { policy = "write" }', "unexpected key 'keyring'"),
    ('node { policy = "read" }\nnode { policy = "write" }', "given twice"),
    ("", "no rules"),
    ("   # only a comment", "Invalid policy"),
])
def test_bad_policies_are_refused_with_the_reason(rules, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(rules)


def test_quota_and_plugin_blocks_are_accepted_but_grant_nothing():
    p = parse_policy('quota { policy = "read" }\nplugin { policy = "list" }')
    assert compile_acl([p]).allows((Need("node", "read"),)) is False


# ---------------------------------------------------------------- compiled ACLs


def test_most_privilege_wins_across_policies_but_deny_always_wins():
    read, write, deny = (parse_policy(f'node {{ policy = "{x}" }}') for x in ("read", "write", "deny"))
    assert compile_acl([read, write]).allow_level("node", "write")
    assert compile_acl([write, read]).allow_level("node", "write")
    merged = compile_acl([write, deny])
    assert not merged.allow_level("node", "read") and not merged.allow_level("node", "write")


def test_write_implies_read_and_read_does_not_imply_write():
    acl = compile_acl([parse_policy('agent { policy = "read" }\noperator { policy = "write" }')])
    assert acl.allow_level("agent", "read") and not acl.allow_level("agent", "write")
    assert acl.allow_level("operator", "read") and acl.allow_level("operator", "write")
    assert not acl.allow_level("node", "read")


def test_namespace_deny_capability_overrides_what_another_policy_grants():
    acl = compile_acl([parse_policy('namespace "default" { policy = "write" }'),
                       parse_policy('namespace "default" { capabilities = ["deny"] }')])
    assert not acl.allow_namespace("default", "read-job")


def test_namespace_globs_match_and_the_closest_glob_wins():
    acl = compile_acl([parse_policy('namespace "*" { policy = "read" }\n'
                                    'namespace "prod-*" { policy = "deny" }\n'
                                    'namespace "prod-api" { policy = "write" }')])
    assert acl.allow_namespace("dev", "read-job") and not acl.allow_namespace("dev", "submit-job")
    assert not acl.allow_namespace("prod-db", "read-job")
    assert acl.allow_namespace("prod-api", "submit-job")


def test_no_policies_deny_everything_and_management_allows_everything():
    nothing = compile_acl([])
    for need in (Need("node", "read"), Need("namespace", "read-job"), Need("management")):
        assert not nothing.allows_one(need)
        assert MANAGEMENT_ACL.allows_one(need)


# ---------------------------------------------------------------- what each route needs


@pytest.mark.parametrize("method, path, needs", [
    ("GET", "/v1/jobs", [("namespace", "list-jobs")]),
    ("PUT", "/v1/jobs", [("namespace", "submit-job|register-job")]),  # Nomad 2.0's fine-grained ones too
    ("PUT", "/v1/validate/job", [("namespace", "read-job")]),
    ("GET", "/v1/job/web", [("namespace", "read-job")]),
    ("GET", "/v1/job/web/allocations", [("namespace", "read-job")]),
    ("POST", "/v1/job/web", [("namespace", "submit-job|register-job")]),
    ("DELETE", "/v1/job/web", [("namespace", "submit-job|purge-job|deregister-job")]),
    ("POST", "/v1/job/report/dispatch", [("namespace", "dispatch-job")]),
    ("PUT", "/v1/job/nightly/periodic/force",
     [("namespace", "dispatch-job|submit-job|force-periodic-job")]),  # Periodic.Force
    ("GET", "/v1/client/fs/logs/a1", [("namespace", "read-logs|read-fs")]),
    ("GET", "/v1/job/report/dispatch", [("namespace", "read-job")]),
    ("POST", "/v1/job/web/scale", [("namespace", "scale-job|submit-job")]),  # Job.Scale
    ("GET", "/v1/job/web/scale", [("namespace", "read-job-scaling|read-job")]),  # Job.ScaleStatus
    ("GET", "/v1/allocations", [("namespace", "read-job")]),
    ("GET", "/v1/evaluation/e1", [("namespace", "read-job")]),
    ("GET", "/v1/nodes", [("node", "read")]),
    ("GET", "/v1/node/n1", [("node", "read")]),
    ("PUT", "/v1/node/n1/drain", [("node", "write")]),
    ("PUT", "/v1/node/n1/eligibility", [("node", "write")]),
    ("GET", "/v1/node/n1/allocations", [("node", "read"), ("namespace", "read-job")]),
    ("GET", "/v1/agent/self", [("agent", "read")]),
    ("GET", "/v1/agent/members", [("node", "read")]),
    ("PUT", "/v1/agent/join", [("agent", "write")]),
    ("PUT", "/v1/agent/force-leave", [("agent", "write")]),
    ("GET", "/v1/agent/keyring/list", [("agent", "write")]),
    ("GET", "/v1/agent/pprof/goroutine", [("agent", "write")]),  # Nomad Agent.Profile
    ("GET", "/v1/operator/raft/configuration", [("operator", "read")]),
    ("DELETE", "/v1/operator/raft/peer", [("management", "")]),  # Nomad: IsManagement
    ("PUT", "/v1/operator/raft/transfer-leadership", [("management", "")]),  # Nomad: IsManagement
    ("POST", "/v1/operator/raft/transfer-leadership", [("management", "")]),
    ("PUT", "/v1/system/gc", [("management", "")]),
    ("GET", "/v1/some/new/endpoint", [("management", "")]),
])
def test_each_route_needs_what_nomad_checks(method, path, needs):
    got = required(method, path)
    assert [(n.area, n.what) for n in got] == needs


@pytest.mark.parametrize("path", ["/v1/status/leader", "/v1/status/peers", "/v1/regions", "/v1/metrics",
                                  "/v1/agent/health", "/"])
def test_status_regions_metrics_and_health_are_open(path):
    assert required("GET", path) == OPEN


def test_acl_endpoints_check_their_tokens_themselves():
    assert required("POST", "/v1/acl/bootstrap") is SELF_CHECKED
    assert required("GET", "/v1/acl/tokens") is SELF_CHECKED
    assert required("PUT", "/v1/search") is SELF_CHECKED  # per context, in actors.http_search
    # alloc-exec (and alloc-node-exec for raw_exec), checked by the node and refused on the WebSocket
    assert required("GET", "/v1/client/allocation/a1/exec") is SELF_CHECKED
    # Scaling.ListPolicies / GetPolicy: list-scaling-policies, or list-jobs and read-job; namespace=*
    # keeps the namespaces allowed (actors.http_scaling; tests/test_scaling_policies.py)
    assert required("GET", "/v1/scaling/policies", "*") is SELF_CHECKED
    assert required("GET", "/v1/scaling/policy/p1") is SELF_CHECKED


def test_the_namespace_of_a_request_scopes_its_job_needs():
    (need,) = required("GET", "/v1/jobs", "prod")
    acl = compile_acl([parse_policy('namespace "default" { policy = "write" }')])
    assert need.namespace == "prod" and not acl.allows((need,))
    assert acl.allows(required("GET", "/v1/jobs", ""))  # no ?namespace= is "default"


# ---------------------------------------------------------------- the state machine


def _token(accessor: str, secret: str = "", kind: str = "client", policies: tuple[str, ...] = ()) -> dict:
    t = {"AccessorID": accessor, "Type": kind, "Name": accessor, "Policies": list(policies), "Global": False}
    return {**t, "SecretID": secret} if secret else t


def test_bootstrap_happens_once_and_a_second_names_the_reset_index():
    st = StateStore()
    first = st.apply(3, command("acl_bootstrap", token=_token("a", "s1", "management"), now=1.0))
    assert first["ok"] and st.tables["acl_tokens"]["a"]["CreateIndex"] == 3
    again = st.apply(4, command("acl_bootstrap", token=_token("b", "s2", "management"), now=2.0))
    assert again == {"ok": False, "error": "ACL bootstrap already done (reset index: 3)", "code": 400}
    assert sorted(st.tables["acl_tokens"]) == ["a"]


def test_deleting_the_bootstrap_token_does_not_allow_a_second_bootstrap():
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("a", "s1", "management"), now=1.0))
    assert st.apply(2, command("acl_token_delete", accessor_ids=["a"]))["ok"]
    assert not st.apply(3, command("acl_bootstrap", token=_token("b", "s2", "management"), now=1.0))["ok"]
    # Nomad's reset: the operator names the reset index and may bootstrap again.
    assert st.apply(4, command("acl_bootstrap", token=_token("b", "s2", "management"), now=1.0,
                               reset_index=1))["ok"]


def test_a_token_naming_a_missing_policy_is_refused_and_changes_nothing():
    """A log entry written without allow_missing_policies (as every one was before it) still is."""
    st = StateStore()
    r = st.apply(1, command("acl_token_upsert", tokens=[_token("a", "s", policies=("ghost",))]))
    assert r == {"ok": False, "error": "cannot find policy ghost", "code": 400}
    assert st.tables["acl_tokens"] == {} and st.table_index["acl_tokens"] == 0


def test_a_token_update_keeps_its_secret_and_create_index():
    st = StateStore()
    st.apply(1, command("acl_policy_upsert", policies=[{"Name": "p", "Rules": 'node { policy = "read" }'}]))
    st.apply(2, command("acl_token_upsert", tokens=[_token("a", "secret", policies=("p",))]))
    st.apply(3, command("acl_token_upsert", tokens=[{**_token("a", policies=()), "Name": "renamed",
                                                      "Type": "management"}]))
    t = st.tables["acl_tokens"]["a"]
    assert (t["SecretID"], t["Name"], t["CreateIndex"], t["ModifyIndex"]) == ("secret", "renamed", 2, 3)


def test_updating_an_unknown_token_is_not_found_and_deleting_one_is_nomads_400():
    st = StateStore()
    assert st.apply(1, command("acl_token_upsert", tokens=[_token("nope")]))["code"] == 404
    # Nomad's ACL.DeleteTokens: 400 "Cannot delete nonexistent tokens: <accessors>", nothing deleted.
    st.apply(2, command("acl_token_upsert", tokens=[_token("a", "secret")]))
    got = st.apply(3, command("acl_token_delete", accessor_ids=["a", "nope", "gone"]))
    assert (got["code"], got["error"]) == (400, "Cannot delete nonexistent tokens: nope, gone")
    assert "a" in st.tables["acl_tokens"]


def test_deleting_an_unknown_policy_succeeds_as_nomads_delete_all_does():
    st = StateStore()
    st.apply(1, command("acl_policy_upsert", policies=[{"Name": "p", "Rules": 'node { policy = "read" }'}]))
    assert st.apply(2, command("acl_policy_delete", names=["nope"]))["ok"]
    assert st.apply(3, command("acl_policy_delete", names=["p", "nope"]))["ok"]
    assert st.tables["acl_policies"] == {}


def test_acl_tables_survive_a_snapshot_and_an_old_snapshot_restores_them_empty():
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("a", "s1", "management"), now=1.0))
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "p", "Rules": 'node { policy = "read" }'}]))
    copy = StateStore()
    copy.restore(st.snapshot(), 2)
    assert copy.digest() == st.digest()
    again = copy.apply(3, command("acl_bootstrap", token=_token("b", "s2", "management"), now=1.0))
    assert again["code"] == 400
    old = msgpack.packb({"v": 1, "applied": 5, "tables": {"kv": {"k": 1}}, "index": {"kv": 5}})
    fresh = StateStore()
    fresh.restore(old, 5)  # taken before the ACL tables existed
    assert fresh.tables["kv"] == {"k": 1} and fresh.tables["acl_tokens"] == {}
    assert fresh.apply(6, command("acl_bootstrap", token=_token("a", "s", "management"), now=1.0))["ok"]


# ---------------------------------------------------------------- the CLI sends the token


def test_cli_sends_the_token_with_every_urllib_request():
    import urllib.request

    from runtime.cli import _SendToken

    req = _SendToken("s3cr3t").http_request(urllib.request.Request("http://127.0.0.1:1/v1/jobs"))
    assert req.get_header("X-nomad-token") == "s3cr3t"
    mine = urllib.request.Request("http://127.0.0.1:1/", headers={"X-Nomad-Token": "other"})
    assert _SendToken("s3cr3t").http_request(mine).get_header("X-nomad-token") == "other"


# ---------------------------------------------------------------- the HTTP guard, on a real state store


class _Future:
    def __init__(self) -> None:
        self.value = None

    def set(self, value) -> None:
        self.value = value

    def get(self, timeout=None):
        return self.value


class _Raft:
    """Answers a Read at once from *state*, as the Raft actor would."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def is_alive(self) -> bool:
        return True

    def tell(self, read) -> None:
        read.reply.set((self.state.applied_index, read.query(self.state)))


class _Env:
    def __init__(self, state: StateStore) -> None:
        self.raft = _Raft(state)

    def lookup(self, name: str):
        return self.raft if name == "raft" else None

    def make_future(self) -> _Future:
        return _Future()

    def now(self) -> float:  # the runtime's clock (the HTTP edge's leader hold reads it)
        return 0.0


def _api(state: StateStore, enabled: bool = True):
    from types import SimpleNamespace

    return SimpleNamespace(env=_Env(state), ctx=SimpleNamespace(acl_enabled=enabled), ask_timeout_s=1.0)


def _req(method: str, path: str, token: str = "", body: bytes = b"", bearer: bool = False):
    import io

    from actors.http_api import Request

    environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    if token:
        key = "HTTP_AUTHORIZATION" if bearer else "HTTP_X_NOMAD_TOKEN"
        environ[key] = f"Bearer {token}" if bearer else token
    return Request(method=method, path=path, query={}, url=path, environ=environ)


def _guarded_state() -> StateStore:
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("root", "root-secret", "management"), now=1.0))
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "submit", "Rules": SUBMIT_RULES}]))
    st.apply(3, command("acl_token_upsert", tokens=[_token("ci", "ci-secret", policies=("submit",))]))
    return st


def _status(state: StateStore, req, enabled: bool = True) -> int:
    from actors.http_acl import acl_guard
    from actors.http_api import CodedError

    try:
        acl_guard(req, _api(state, enabled))
    except CodedError as e:
        return e.code
    return 200


def test_guard_refuses_anonymous_and_unknown_tokens_and_lets_management_through():
    from actors.http_acl import acl_guard
    from actors.http_api import CodedError

    st = _guarded_state()
    with pytest.raises(CodedError, match=r"^Permission denied$"):
        acl_guard(_req("PUT", "/v1/jobs"), _api(st))
    # Nomad's RPC handlers answer a secret they cannot authenticate as they answer a missing right
    with pytest.raises(CodedError, match=r"^Permission denied$") as refused:
        acl_guard(_req("GET", "/v1/jobs", "nope"), _api(st))
    assert refused.value.code == 403
    assert _status(st, _req("PUT", "/v1/system/gc", "root-secret")) == 200
    assert _status(st, _req("GET", "/v1/status/leader")) == 200  # open
    assert _status(st, _req("PUT", "/v1/jobs"), enabled=False) == 200  # ACLs off: nothing checked


def test_guard_applies_the_tokens_policies_from_either_header():
    st = _guarded_state()
    for bearer in (False, True):
        assert _status(st, _req("PUT", "/v1/jobs", "ci-secret", bearer=bearer)) == 200
        assert _status(st, _req("GET", "/v1/nodes", "ci-secret", bearer=bearer)) == 200
        assert _status(st, _req("PUT", "/v1/node/n1/drain", "ci-secret", bearer=bearer)) == 403
        assert _status(st, _req("GET", "/v1/agent/self", "ci-secret", bearer=bearer)) == 403


def test_guard_checks_a_registration_in_the_jobs_namespace_and_leaves_the_body_for_the_handler():
    import json

    from actors.http_api import read_body

    st = _guarded_state()
    prod = json.dumps({"Job": {"ID": "x", "Namespace": "prod"}}).encode()
    assert _status(st, _req("PUT", "/v1/jobs", "ci-secret", prod)) == 403
    default = json.dumps({"Job": {"ID": "x"}}).encode()
    req = _req("PUT", "/v1/job/x", "ci-secret", default)
    assert _status(st, req) == 200
    assert read_body(req) == default


def test_a_registration_is_checked_in_the_namespace_it_lands_in_query_then_request_then_job():
    """Nomad's namespaceForJob (?namespace=, then the request's Namespace, then the job's) names both the
    namespace a job is registered in and the one its token is checked in: a token of "prod" alone may not
    register into "default" by naming "prod" in the job."""
    import json

    st = _guarded_state()
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "prod",
                                                        "Rules": 'namespace "prod" { policy = "write" }'}]))
    st.apply(5, command("acl_token_upsert", tokens=[_token("p", "prod-secret", policies=("prod",))]))

    def req(path: str, body: dict, token: str, query: dict | None = None):
        r = _req("PUT", path, token, json.dumps(body).encode())
        r.query.update({k: [v] for k, v in (query or {}).items()})
        return r

    in_prod = {"Job": {"ID": "x", "Namespace": "prod"}}
    assert _status(st, req("/v1/jobs", in_prod, "prod-secret")) == 200
    assert _status(st, req("/v1/jobs", in_prod, "prod-secret", {"namespace": "default"})) == 403
    assert _status(st, req("/v1/job/x", {**in_prod, "Namespace": "default"}, "prod-secret")) == 403
    assert _status(st, req("/v1/job/x/plan", {**in_prod, "Namespace": "default"}, "prod-secret")) == 403
    assert _status(st, req("/v1/job/x/plan", in_prod, "prod-secret")) == 200
    # the CI token (default only): the job's namespace counts only when the request names none
    assert _status(st, req("/v1/jobs", {"Job": {"ID": "x"}}, "ci-secret", {"namespace": "prod"})) == 403
    assert _status(st, req("/v1/jobs", {"Job": {"ID": "x", "Namespace": "prod"}}, "ci-secret",
                           {"namespace": "default"})) == 200


def test_a_list_across_namespace_star_keeps_what_is_in_the_namespaces_the_token_may_list():
    """Nomad lists ?namespace=* in the namespaces the token may list (its allowedNSes; none: an empty
    list, not a refusal): the guard leaves the handler which namespaces those are."""
    from actors.http_api import listable

    st = _guarded_state()
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "only-a",
                                                        "Rules": 'namespace "a" { policy = "read" }'}]))
    st.apply(5, command("acl_token_upsert", tokens=[_token("a", "a-secret", policies=("only-a",))]))
    for path in ("/v1/jobs", "/v1/allocations", "/v1/evaluations", "/v1/deployments"):
        for token, allowed in (("a-secret", {"a"}), ("ci-secret", {"default"}), ("", set()),
                               ("root-secret", {"a", "b", "default"})):
            r = _req("GET", path, token)
            r.query["namespace"] = ["*"]
            assert _status(st, r) == 200, path
            assert {n for n in ("a", "b", "default") if listable(r)(n)} == allowed, (path, token)
        r = _req("GET", path, "a-secret")
        r.query["namespace"] = ["b"]
        assert _status(st, r) == 403, path  # a token with rights in "a" alone cannot read "b"
        r.query["namespace"] = ["a"]
        assert _status(st, r) == 200, path
    r = _req("PUT", "/v1/job/x/evaluate", "a-secret")
    r.query["namespace"] = ["b"]
    assert _status(st, r) == 403


def test_an_allocation_evaluation_or_deployment_named_by_id_is_checked_in_its_own_namespace():
    """Nomad's Alloc.GetAlloc, Eval.GetEval and Deployment.GetDeployment (and their writes) check the token
    in the object's namespace, whatever ?namespace= says."""
    st = _guarded_state()
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "writes-a",
                                                        "Rules": 'namespace "a" { policy = "write" }'}]))
    st.apply(5, command("acl_token_upsert", tokens=[_token("own-a", "own-a-secret", policies=("writes-a",))]))
    for n, (table, ns) in enumerate((("allocs", "a"), ("allocs", "b"), ("evals", "a"), ("deployments", "a"))):
        st.apply(6 + n, command("upsert", table=table, record={"ID": f"{table}-{ns}", "Namespace": ns,
                                                                "JobID": "j", "NodeID": ""}))
    assert _status(st, _req("GET", "/v1/allocation/allocs-a", "own-a-secret")) == 200
    assert _status(st, _req("POST", "/v1/allocation/allocs-a/stop", "own-a-secret")) == 200
    assert _status(st, _req("GET", "/v1/allocation/allocs-b", "own-a-secret")) == 403
    r = _req("GET", "/v1/allocation/allocs-b", "own-a-secret")
    r.query["namespace"] = ["a"]  # the allocation's own namespace counts, not the one asked for
    assert _status(st, r) == 403
    assert _status(st, _req("GET", "/v1/evaluation/evals-a", "own-a-secret")) == 200
    assert _status(st, _req("GET", "/v1/deployment/deployments-a", "own-a-secret")) == 200
    assert _status(st, _req("POST", "/v1/deployment/fail/deployments-a", "own-a-secret")) == 200
    assert _status(st, _req("GET", "/v1/allocation/missing", "own-a-secret")) == 403  # default's rights


def test_an_edited_policy_takes_effect_on_the_next_request():
    st = _guarded_state()
    assert _status(st, _req("PUT", "/v1/jobs", "ci-secret")) == 200
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "submit",
                                                        "Rules": 'namespace "default" { policy = "read" }'}]))
    assert _status(st, _req("PUT", "/v1/jobs", "ci-secret")) == 403
    st.apply(5, command("acl_token_delete", accessor_ids=["ci"]))
    assert _status(st, _req("GET", "/v1/jobs", "ci-secret")) == 403


def test_acl_endpoints_answer_acl_support_disabled_when_acls_are_off():
    from actors.http_acl import acl_bootstrap, acl_tokens
    from actors.http_api import CodedError

    for handler, method in ((acl_bootstrap, "POST"), (acl_tokens, "GET")):
        with pytest.raises(CodedError, match=r"^ACL support disabled$") as e:
            handler(_req(method, "/v1/acl/x"), _api(StateStore(), enabled=False))
        assert e.value.code == 400


def test_a_token_query_parameter_is_hidden_in_the_logged_url():
    from actors.http_api import hide_token

    assert hide_token("token=s3cr3t&index=4") == "token=<hidden>&index=4"
    assert hide_token("index=4&token=s3cr3t") == "index=4&token=<hidden>"
    assert hide_token("mytoken=x&prefix=token=") == "mytoken=x&prefix=token="


def test_task_logs_take_read_logs_or_read_fs():
    need = required("GET", "/v1/client/fs/logs/a1")
    for caps, allowed in ((["read-logs"], True), (["read-fs"], True), (["read-job"], False)):
        policy = parse_policy(f'namespace "default" {{ capabilities = {json.dumps(caps)} }}')
        assert compile_acl([policy]).allows(need) is allowed, caps


def test_search_contexts_follow_the_tokens_rights():
    from actors.acl import compile_acl, parse_policy
    from actors.http_search import _allowed

    jobs_only = compile_acl([parse_policy('namespace "default" { policy = "read" }')])
    assert _allowed(jobs_only, "default", "jobs") and _allowed(jobs_only, "default", "allocs")
    assert not _allowed(jobs_only, "default", "nodes") and not _allowed(jobs_only, "other", "jobs")
    nodes_only = compile_acl([parse_policy('node { policy = "read" }')])
    assert _allowed(nodes_only, "default", "nodes") and not _allowed(nodes_only, "default", "evals")
    assert _allowed(None, "default", "nodes")  # no ACLs: everything


# ---------------------------------------------------------------- variables and node pool rules

VARS_RULES = '''
namespace "default" {
  policy = "read"
  variables {
    path "project/*" { capabilities = ["write", "read", "destroy"] }
    path "system/*" { capabilities = ["read"] }
    path "system/secret" { capabilities = ["deny"] }
    path "audit/*" { capabilities = ["list"] }
  }
}
'''


def test_variables_blocks_grant_per_path_and_the_closest_glob_wins():
    acl = compile_acl([parse_policy(VARS_RULES)])
    assert acl.allow_variable("default", "project/a", "write")
    assert acl.allow_variable("default", "project/a", "destroy")
    assert acl.allow_variable("default", "project/a", "list")  # read and write include list
    assert acl.allow_variable("default", "system/x", "read")
    assert not acl.allow_variable("default", "system/x", "write")
    assert not acl.allow_variable("default", "system/secret", "read")  # the exact path beats the glob
    assert acl.allow_variable("default", "audit/1", "list")
    assert not acl.allow_variable("default", "audit/1", "read")
    assert not acl.allow_variable("default", "system", "read")  # "system/*" needs the slash
    assert not acl.allow_variable("other", "project/a", "read")
    assert acl.allow_variable_search("default") and not acl.allow_variable_search("other")
    # A namespace's policy grants no variables on its own.
    assert not compile_acl([parse_policy('namespace "default" { policy = "write" }')]).allow_variable(
        "default", "x", "read")
    # deny in any policy wins for that path.
    deny = parse_policy('namespace "default" { variables { path "project/*" { capabilities = ["deny"] } } }')
    assert not compile_acl([parse_policy(VARS_RULES), deny]).allow_variable("default", "project/a", "read")
    as_json = json.dumps({"namespace": {"default": {"variables": {"path": {
        "a/*": {"capabilities": ["read"]}}}}}})
    assert compile_acl([parse_policy(as_json)]).allow_variable("default", "a/b", "read")


def test_node_pool_rules_expand_as_nomads_and_node_read_still_reads_pools():
    acl = compile_acl([parse_policy('node_pool "prod-*" { policy = "write" }\nnode_pool "prod-db" '
                                    '{ policy = "deny" }\nnode_pool "dev" { capabilities = ["read"] }')])
    assert acl.allow_node_pool("prod-web", "write") and acl.allow_node_pool("prod-web", "delete")
    assert not acl.allow_node_pool("prod-db", "read")
    assert acl.allow_node_pool("dev", "read") and not acl.allow_node_pool("dev", "write")
    assert not acl.allow_node_pool("other", "read")
    reader = compile_acl([parse_policy('node { policy = "read" }')])
    assert reader.allow_node_pool("anything", "read") and not reader.allow_node_pool("anything", "write")


@pytest.mark.parametrize(("rules", "message"), [
    ('namespace "d" { variables { path "x" { capabilities = ["sudo"] } } }', "Invalid variable capabilities"),
    ('namespace "d" { variables { thing "x" {} } }', "unexpected key 'thing'"),
    ('node_pool "p" { policy = "scale" }', "Invalid node pool policy"),
    ('node_pool { policy = "read" }', "expected one name"),
])
def test_bad_variables_and_node_pool_rules_are_refused(rules, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(rules)


@pytest.mark.parametrize("method, path, needs", [
    ("GET", "/v1/var/project/a%20b", [("variable", "read", "project/a b")]),
    ("PUT", "/v1/var/project/a", [("variable", "write", "project/a")]),
    ("DELETE", "/v1/var/project/a", [("variable", "destroy", "project/a")]),
    ("GET", "/v1/node/pools", [("node_pool", "read", "")]),
    ("GET", "/v1/node/pool/prod", [("node_pool", "read", "prod")]),
    ("GET", "/v1/node/pool/prod/nodes", [("node_pool", "read", "prod"), ("node", "read", "")]),
    ("GET", "/v1/node/pool/prod/jobs", [("node_pool", "read", "prod"), ("namespace", "read-job", "")]),
    ("PUT", "/v1/node/pool/prod", [("node_pool", "write", "prod")]),
    ("DELETE", "/v1/node/pool/prod", [("node_pool", "delete", "prod")]),
])
def test_variable_and_node_pool_routes_name_their_target(method, path, needs):
    assert [(n.area, n.what, n.target) for n in required(method, path)] == needs
    assert required("PUT", "/v1/node/pools") is SELF_CHECKED  # the pool is named in the body
    assert required("GET", "/v1/vars") is SELF_CHECKED  # the list keeps what the token may list


def test_guard_lets_a_variables_policy_reach_only_its_paths():
    st = _guarded_state()
    st.apply(4, command("acl_policy_upsert", policies=[{"Name": "vars", "Rules": VARS_RULES}]))
    st.apply(5, command("acl_token_upsert", tokens=[_token("dev", "dev-secret", policies=("vars",))]))
    assert _status(st, _req("GET", "/v1/var/project/a", "dev-secret")) == 200
    assert _status(st, _req("PUT", "/v1/var/project/a", "dev-secret")) == 200
    assert _status(st, _req("PUT", "/v1/var/system/a", "dev-secret")) == 403
    assert _status(st, _req("GET", "/v1/var/system/secret", "dev-secret")) == 403
    assert _status(st, _req("GET", "/v1/vars", "dev-secret")) == 200
    # no variables rule at all: the guard lets the list through, its handler answers an empty list
    assert _status(st, _req("GET", "/v1/vars", "ci-secret")) == 200


def test_globs_match_only_stars_and_node_routes_are_not_taken_for_pools():
    acl = compile_acl([parse_policy('namespace "default" { variables { path "app/?ecret*" '
                                    '{ capabilities = ["read"] } } }\n'
                                    'node_pool "team-[ab]" { policy = "write" }')])
    assert acl.allow_variable("default", "app/?ecret1", "read")
    assert not acl.allow_variable("default", "app/xecret1", "read")  # "?" is a character, not a wildcard
    assert not acl.allow_node_pool("team-a", "write") and acl.allow_node_pool("team-[ab]", "write")
    needs = required("POST", "/v1/node/poolside/eligibility")
    assert [(n.area, n.what) for n in needs] == [("node", "write")]
