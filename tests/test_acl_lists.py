"""What a token sees of lists that span namespaces: only what its policies let it read (Nomad's
``allowedNSes`` / ``AllowNsOpFunc`` filters), never the jobs of a namespace it is denied.

The reference is ``nomad/job_endpoint_statuses.go`` (Job.Statuses: ``read-job`` in the request's
namespace, or in the one every job the body names shares, then only the jobs of namespaces the
token may read them in).
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest

import actors.http_job_statuses  # noqa: F401  (registers its route)
from actors import http_acl
from actors.http_api import CodedError, Request, find_route
from tests.test_http_leader_hold import FakeEnv
from tests.test_scale_paging import StoreRaft
from tests.test_scheduler import Cluster, service

GLOB_RULES = ('namespace "*" { policy = "read" }\n'
              'namespace "prod" { policy = "deny" }\n')
DEFAULT_RULES = 'namespace "default" { policy = "read" }'


@pytest.fixture(scope="module")
def api() -> Any:
    c = Cluster()
    c.node(0)
    for ns in ("prod", "dev"):
        c.apply("namespace_upsert", namespaces=[{"Name": ns, "Description": ""}])
    for ns in ("default", "prod", "dev"):
        c.register(**service(f"web-{ns}", count=1, cpu=50, mem=32, Namespace=ns))
    c.apply("acl_policy_upsert", policies=[{"Name": "glob", "Rules": GLOB_RULES},
                                           {"Name": "default-read", "Rules": DEFAULT_RULES}])
    c.apply("acl_token_upsert", tokens=[
        {"AccessorID": f"{name}-acc", "SecretID": name, "Name": name, "Type": "client",
         "Policies": [policy], "Global": False, "CreateTime": 1.0}
        for name, policy in (("glob", "glob"), ("default-only", "default-read"))])
    env, raft = FakeEnv(), StoreRaft(c.state)
    env.node = "acl-lists-test"
    env.lookup = lambda name: raft if name == "raft" else None
    status = {"role": "leader", "leader": "x", "last_contact": 0}
    return SimpleNamespace(env=env, ask=lambda actor, what: status, ctx=SimpleNamespace(acl_enabled=True),
                           ask_timeout_s=5.0)


def statuses(api: Any, token: str, query: dict[str, str], body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "HTTP_X_NOMAD_TOKEN": token}
    path = "/v1/jobs/statuses"
    req = Request(method="POST" if body is not None else "GET", path=path,
                  query={k: [v] for k, v in query.items()}, url=path, environ=environ)
    try:
        http_acl.acl_guard(req, api)
        answer = find_route(path)(req, api)
    except CodedError as e:
        return e.code, str(e)
    return 200, sorted(f"{j['Namespace']}/{j['ID']}" for j in answer.value)


def test_job_statuses_of_every_namespace_leave_out_the_namespaces_the_token_may_not_read(api):
    assert statuses(api, "glob", {"namespace": "*"}) == (200, ["default/web-default", "dev/web-dev"])
    assert statuses(api, "default-only", {"namespace": "*"}) == (200, ["default/web-default"])
    assert statuses(api, "glob", {"namespace": "prod"}) == (403, "Permission denied")


def test_job_statuses_of_named_jobs_are_checked_in_their_own_namespace(api):
    prod_only = {"Jobs": [{"ID": "web-prod", "Namespace": "prod"}]}
    assert statuses(api, "default-only", {}, prod_only) == (403, "Permission denied")
    assert statuses(api, "glob", {}, prod_only) == (403, "Permission denied")
    both = {"Jobs": [{"ID": "web-prod", "Namespace": "prod"}, {"ID": "web-dev", "Namespace": "dev"}]}
    assert statuses(api, "glob", {}, both) == (200, ["dev/web-dev"])
    assert statuses(api, "default-only", {}, both) == (200, [])
