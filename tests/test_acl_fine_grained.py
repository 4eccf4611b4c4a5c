"""Nomad 2.0's fine-grained namespace capabilities (acl/policy.go): each lets a token make one write that
``submit-job`` allows -- register, revert, mark stable, evaluate, plan or deregister a job (purge-job
to purge it), fail, pause, promote or unblock a deployment, set its allocations' health, collect an
allocation, force a periodic launch, delete a service registration -- and nothing else.  References:
nomad/job_endpoint.go (Register, Revert, Stable, Evaluate, Plan, Deregister), deployment_endpoint.go,
client/alloc_endpoint.go GarbageCollect, periodic_endpoint.go Force, service_registration_endpoint.go."""

from __future__ import annotations

import pytest

from actors.acl import JOB_ACTION_SUFFIXES, compile_acl, parse_policy, required
from actors.state.store import command
from tests.test_acl import _guarded_state, _req, _status, _token

WRITES = {
    "register-job": [("PUT", "/v1/jobs"), ("POST", "/v1/job/web")],
    "revert-job": [("PUT", "/v1/job/web/revert")],
    "stable-job": [("PUT", "/v1/job/web/stable")],
    "evaluate-job": [("PUT", "/v1/job/web/evaluate")],
    "plan-job": [("PUT", "/v1/job/web/plan")],
    "deregister-job": [("DELETE", "/v1/job/web")],
    "purge-job": [("DELETE", "/v1/job/web"), ("DELETE", "/v1/job/web?purge=true")],
    "fail-deployment": [("PUT", "/v1/deployment/fail/d1")],
    "pause-deployment": [("PUT", "/v1/deployment/pause/d1")],
    "promote-deployment": [("PUT", "/v1/deployment/promote/d1")],
    "set-alloc-health-deployment": [("PUT", "/v1/deployment/allocation-health/d1")],
    "gc-allocation": [("GET", "/v1/client/allocation/a1/gc")],
    "force-periodic-job": [("PUT", "/v1/job/web/periodic/force")],
    "delete-service-registration": [("DELETE", "/v1/service/web/s1")],
}
EVERY_WRITE = sorted({w for ws in WRITES.values() for w in ws} | {("DELETE", "/v1/job/web?purge=true")})


def _state(capability: str):
    st = _guarded_state()
    index = 10 + sorted(WRITES).index(capability) * 3  # compiled ACLs are cached by policy index
    rules = f'namespace "default" {{ capabilities = ["{capability}"] }}'
    st.apply(index, command("acl_policy_upsert", policies=[{"Name": "fine", "Rules": rules}]))
    st.apply(index + 1, command("acl_token_upsert", tokens=[_token("f", "f-secret", policies=("fine",))]))
    return st


def _request(method: str, target: str):
    path, _, query = target.partition("?")
    req = _req(method, path, "f-secret")
    if query:
        key, _, value = query.partition("=")
        req.query[key] = [value]
    return req


@pytest.mark.parametrize("capability", sorted(WRITES))
def test_each_fine_grained_capability_allows_its_own_writes_and_no_other(capability):
    parse_policy(f'namespace "default" {{ capabilities = ["{capability}"] }}')  # valid, as in Nomad 2.0
    st = _state(capability)
    for method, target in EVERY_WRITE:
        allowed = (method, target) in WRITES[capability]
        assert _status(st, _request(method, target)) == (200 if allowed else 403), (method, target)


def test_submit_job_still_allows_every_one_of_them():
    acl = compile_acl([parse_policy('namespace "default" { policy = "write" }')])
    for method, target in EVERY_WRITE:
        path = target.partition("?")[0]
        assert acl.allows(required(method, path, "default")), (method, target)


def test_the_job_action_suffixes_are_the_job_endpoints_actions():
    """A /v1/job/<id>/<action> the ACL table does not know would be taken for the job itself (its
    register-job or deregister-job): the two lists must agree."""
    import actors.http_deployments  # (each adds its job actions)
    import actors.http_job_actions
    import actors.http_services  # noqa: F401
    from actors.http_jobs import JOB_ACTIONS

    assert set(JOB_ACTIONS) | {"tag"} == set(JOB_ACTION_SUFFIXES)


# ---------------------------------------------------------------- operator capabilities (Nomad 2.0)


@pytest.mark.parametrize("rules, allowed", [
    ('operator { capabilities = ["keyring-rotate"] }', {"keyring-rotate"}),
    ('operator { capabilities = ["snapshot-save", "keyring-read"] }', {"snapshot-save", "keyring-read"}),
    ('operator { policy = "read" }', {"keyring-read", "license-read"}),
    ('operator { policy = "write" }', {"snapshot-save", "license-read", "keyring-rotate", "keyring-read",
                                       "keyring-delete"}),
    ('operator { policy = "read" capabilities = ["deny"] }', set()),
])
def test_operator_capabilities_grant_their_operations_as_nomads(rules, allowed):
    from actors.acl import OPERATOR_CAPABILITIES

    acl = compile_acl([parse_policy(rules)])
    assert {c for c in OPERATOR_CAPABILITIES if c != "deny" and acl.allow_operator(c)} == allowed
    # operator:read (the other operator endpoints) comes from a policy only (Nomad's AllowOperatorRead)
    assert acl.allow_level("operator", "read") is ("policy" in rules)


def test_an_unknown_operator_capability_is_refused():
    with pytest.raises(Exception, match="Invalid operator capability 'fly'"):
        parse_policy('operator { policy = "read" capabilities = ["fly"] }')


def test_the_keyring_endpoints_need_their_operator_capability():
    import actors.http_root_keyring  # noqa: F401  (registers its route)
    from actors import http_acl
    from actors.http_api import CodedError, find_route
    from tests.test_acl_expiry import _api

    st = _guarded_state()
    st.apply(10, command("acl_policy_upsert", policies=[
        {"Name": "kr", "Rules": 'operator { capabilities = ["keyring-read"] }'}]))
    st.apply(11, command("acl_token_upsert", tokens=[_token("k", "k-secret", policies=("kr",))]))

    def status(method: str, path: str) -> int:
        req = _req(method, path, "k-secret")
        try:
            http_acl.acl_guard(req, _api(st))
            find_route(path)(req, _api(st))
        except CodedError as e:
            return e.code
        return 200
    assert status("GET", "/v1/operator/keyring/keys") == 200
    assert status("PUT", "/v1/operator/keyring/rotate") == 403
    assert status("DELETE", "/v1/operator/keyring/key/k1") == 403
    assert status("GET", "/v1/operator/raft/configuration") == 403  # no operator policy: no operator:read
