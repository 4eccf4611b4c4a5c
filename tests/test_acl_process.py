"""ACLs against a real ``-dev`` agent with ``acl.enabled``: tokens, policies, refusals, the CLI.

One agent is shared by the module and bootstrapped once (the ``management``
fixture); each test leaves no job, policy or token behind but its own
named ones.  Every wait has a deadline; the agent is killed by PID at the
end.  The last test reads everything the agent printed for the secrets it
handed out.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_agent_process import ROOT, STAGGER, STEP_DEADLINE_S, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(120)

NOMAD = f"{ROOT}/bin/nomad"
SUBMIT_POLICY = 'namespace "default" {\n  policy = "read"\n  capabilities = ["submit-job"]\n}\n' \
                'node { policy = "read" }\n'
UNKNOWN_SECRET = "00000000-0000-4000-8000-000000000000"
SECRETS: list[str] = []  # every secret handed out, looked for in the agent's output at the end


class Resp:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(port: int, method: str, path: str, body: Any = None, token: str = "", bearer: bool = False) -> Resp:
    headers = {}
    if token:
        headers = {"Authorization": f"Bearer {token}"} if bearer else {"X-Nomad-Token": token}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STEP_DEADLINE_S)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return Resp(r.status, r.read(), {k.lower(): v for k, v in r.getheaders()})
    finally:
        conn.close()


def idle_job(job_id: str) -> dict[str, Any]:
    """A job with no allocations to place: registration is all these tests need."""
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "web", "Count": 0, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                              "Config": {"command": "/bin/true"}}]}]}


@contextlib.contextmanager
def acl_dev_agent(tmp: Any) -> Iterator[AgentProc]:
    """A ``-dev`` agent with ``acl.enabled``, its config in *tmp*, healthy; killed by PID at the end."""
    port = free_port()
    cfg = tmp / "acl.toml"
    cfg.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n\n"
                   # A 1 s floor on token lifetimes, so an expiring token can be seen to expire.
                   '[acl]\nenabled = true\ntoken_min_expiration_ttl = "1s"\n')
    proc = AgentProc(["-dev", "-config", str(cfg)])
    proc.http_port = port
    try:
        proc.wait_healthy()  # /v1/agent/health is open, as in Nomad
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with acl_dev_agent(tmp_path_factory.mktemp("acl")) as proc:
        yield proc


@pytest.fixture(scope="module")
def management(agent):
    r = call(agent.http_port, "POST", "/v1/acl/bootstrap")
    assert r.status == 200, r.text
    token = r.json()
    SECRETS.append(token["SecretID"])
    return token["SecretID"]


def jobs(agent: AgentProc, token: str) -> list[str]:
    r = call(agent.http_port, "GET", "/v1/jobs", token=token)
    assert r.status == 200, r.text
    return [j["ID"] for j in r.json()]


def purge(agent: AgentProc, token: str, job_id: str) -> None:
    assert call(agent.http_port, "DELETE", f"/v1/job/{job_id}?purge=true", token=token).status == 200


def client_token(agent: AgentProc, management: str, name: str, policy: str, rules: str) -> dict[str, Any]:
    r = call(agent.http_port, "POST", f"/v1/acl/policy/{policy}", {"Name": policy, "Rules": rules},
             token=management)
    assert r.status == 200, r.text
    r = call(agent.http_port, "POST", "/v1/acl/token", {"Name": name, "Type": "client", "Policies": [policy]},
             token=management)
    assert r.status == 200, r.text
    SECRETS.append(r.json()["SecretID"])
    return r.json()


# ---------------------------------------------------------------- tests


def test_job_registration_without_a_token_is_refused_and_registers_nothing(agent, management):
    r = call(agent.http_port, "PUT", "/v1/jobs", {"Job": idle_job("anon-job")})
    assert (r.status, r.text) == (403, "Permission denied")
    r = call(agent.http_port, "PUT", "/v1/job/anon-job", {"Job": idle_job("anon-job")})
    assert r.status == 403
    assert "anon-job" not in jobs(agent, management)


def test_an_unknown_token_is_refused_as_nomads_rpc_handlers_refuse_it(agent, management):
    for bearer in (False, True):
        r = call(agent.http_port, "GET", "/v1/jobs", token=UNKNOWN_SECRET, bearer=bearer)
        assert (r.status, r.text) == (403, "Permission denied")


def test_the_management_token_registers_a_job(agent, management):
    r = call(agent.http_port, "PUT", "/v1/jobs", {"Job": idle_job("mgmt-job")}, token=management)
    assert r.status == 200, r.text
    assert "mgmt-job" in jobs(agent, management)
    # The same secret as a bearer token.
    assert call(agent.http_port, "GET", "/v1/job/mgmt-job", token=management, bearer=True).status == 200
    purge(agent, management, "mgmt-job")


def test_a_second_bootstrap_is_refused_with_the_reset_index(agent, management):
    r = call(agent.http_port, "POST", "/v1/acl/bootstrap")
    assert r.status == 400
    assert r.text.startswith("ACL bootstrap already done (reset index: ") and r.text.endswith(")")
    # Nomad's ACL.Bootstrap checks the reset index before the operator's secret: a second bootstrap
    # with a secret that is no UUID is still told the reset index, not 'invalid acl token'.
    bad = call(agent.http_port, "POST", "/v1/acl/bootstrap", {"BootstrapSecret": "not-a-uuid"})
    assert (bad.status, bad.text) == (400, r.text)


def test_a_submit_job_token_registers_but_cannot_drain_a_node(agent, management):
    ci = client_token(agent, management, "ci", "submit", SUBMIT_POLICY)
    port, secret = agent.http_port, ci["SecretID"]
    r = call(port, "PUT", "/v1/jobs", {"Job": idle_job("ci-job")}, token=secret)
    assert r.status == 200, r.text
    assert "ci-job" in jobs(agent, secret)
    # Checked in the job's own namespace, whatever ?namespace= says.
    r = call(port, "PUT", "/v1/jobs", {"Job": {**idle_job("prod-job"), "Namespace": "prod"}}, token=secret)
    assert (r.status, r.text) == (403, "Permission denied")
    assert "prod-job" not in jobs(agent, management)

    node = wait_for(lambda: next(iter(call(port, "GET", "/v1/nodes", token=secret).json()), None), "a node")
    drain = {"DrainSpec": {"Deadline": 3_600_000_000_000}}
    r = call(port, "PUT", f"/v1/node/{node['ID']}/drain", drain, token=secret)
    assert (r.status, r.text) == (403, "Permission denied")
    after = call(port, "GET", f"/v1/node/{node['ID']}", token=secret).json()
    assert not after.get("DrainStrategy") and after["SchedulingEligibility"] == "eligible"
    # Nor agent or operator endpoints, nor other tokens.
    assert call(port, "GET", "/v1/agent/self", token=secret).status == 403
    assert call(port, "GET", "/v1/operator/raft/configuration", token=secret).status == 403
    assert call(port, "GET", "/v1/acl/tokens", token=secret).status == 403
    me = call(port, "GET", "/v1/acl/token/self", token=secret).json()
    assert (me["AccessorID"], me["Policies"]) == (ci["AccessorID"], ["submit"])
    purge(agent, management, "ci-job")


def test_the_anonymous_policy_grants_reads_and_nothing_more(agent, management):
    port = agent.http_port
    assert call(port, "GET", "/v1/jobs").status == 403
    rules = 'namespace "default" { policy = "read" }\nnode { policy = "read" }'
    assert call(port, "PUT", "/v1/acl/policy/anonymous", {"Name": "anonymous", "Rules": rules},
                token=management).status == 200
    try:
        assert call(port, "GET", "/v1/jobs").status == 200
        assert call(port, "GET", "/v1/nodes").status == 200
        r = call(port, "PUT", "/v1/jobs", {"Job": idle_job("anon-read")})
        assert r.status == 403
        assert call(port, "GET", "/v1/agent/self").status == 403
    finally:
        assert call(port, "DELETE", "/v1/acl/policy/anonymous", token=management).status == 200
    assert call(port, "GET", "/v1/jobs").status == 403
    assert "anon-read" not in jobs(agent, management)


def test_event_stream_topics_each_need_their_own_permission(agent, management):
    from tests.test_events import _Lines

    port = agent.http_port
    assert (call(port, "GET", "/v1/event/stream?topic=Node").status, "anonymous") == (403, "anonymous")
    reader = client_token(agent, management, "events", "events-node", 'node { policy = "read" }')["SecretID"]
    for topic in ("*", "Job", "ACLToken"):  # another topic, or all of them: refused before any event
        r = call(port, "GET", f"/v1/event/stream?topic={topic}", token=reader)
        assert (r.status, r.text) == (403, "Permission denied"), topic
    s = _Lines(port, "/v1/event/stream?index=0&topic=Node", token=reader)
    try:
        assert s.status == 200
        seen = s.events_until(lambda ev: bool(ev))
        assert {e["Topic"] for e in seen} == {"Node"}
    finally:
        s.close()
    # Management sees ACL objects, the token without its secret.
    s = _Lines(port, "/v1/event/stream?index=0&topic=ACLToken", token=management)
    try:
        seen = s.events_until(lambda ev: any(e["Payload"]["ACLToken"]["Name"] == "events" for e in ev))
        assert all(e["Payload"]["ACLToken"]["SecretID"] == "" for e in seen)
        assert all(e["Type"] == "ACLTokenUpserted" for e in seen)
    finally:
        s.close()


def test_every_namespace_stream_needs_read_job_in_each_namespace_there_is(agent, management):
    # Nomad's validateACL checks namespace=* against every namespace in the state: a token that may read
    # jobs in each of them may subscribe to all, one that may read only some may not.
    from tests.test_events import _Lines

    port = agent.http_port
    assert call(port, "PUT", "/v1/namespace/ev-ops", {"Name": "ev-ops"}, token=management).status == 200
    try:
        rules = 'namespace "default" { policy = "read" }\nnamespace "ev-ops" { policy = "read" }'
        both = client_token(agent, management, "ev-both", "ev-both", rules)["SecretID"]
        one = client_token(agent, management, "ev-one", "ev-one",
                           'namespace "default" { policy = "read" }')["SecretID"]
        r = call(port, "GET", "/v1/event/stream?topic=Job&namespace=*", token=one)
        assert (r.status, r.text) == (403, "Permission denied")
        s = _Lines(port, "/v1/event/stream?topic=Job&namespace=*", token=both)
        try:
            assert s.status == 200
            assert call(port, "PUT", "/v1/jobs", {"Job": {**idle_job("ev-all"), "Namespace": "ev-ops"}},
                        token=management).status == 200
            seen = s.events_until(lambda ev: any(e["Key"] == "ev-all" for e in ev))
            assert {e["Namespace"] for e in seen if e["Key"] == "ev-all"} == {"ev-ops"}
        finally:
            s.close()
        call(port, "DELETE", "/v1/job/ev-all?purge=true&namespace=ev-ops", token=management)
    finally:
        call(port, "DELETE", "/v1/namespace/ev-ops", token=management)


def test_variable_events_reach_only_who_may_list_their_paths(agent, management):
    from tests.test_events import _Lines

    port = agent.http_port
    rules = 'namespace "default" { variables { path "app/*" { capabilities = ["list"] } } }'
    lister = client_token(agent, management, "var-events", "var-events", rules)["SecretID"]
    for topic in ("ACLRole", "ACLAuthMethod", "ACLBindingRule", "Job"):  # management's, or read-job
        r = call(port, "GET", f"/v1/event/stream?topic={topic}", token=lister)
        assert (r.status, r.text) == (403, "Permission denied"), topic
    plain = client_token(agent, management, "no-vars", "no-vars", 'node { policy = "read" }')["SecretID"]
    assert call(port, "GET", "/v1/event/stream?topic=Variable", token=plain).status == 403
    for path in ("ops/secret", "app/db"):
        r = call(port, "PUT", f"/v1/var/{path}", {"Items": {"pass": "hunter2"}}, token=management)
        assert r.status == 200, r.text
    s = _Lines(port, "/v1/event/stream?index=0&topic=Variable", token=lister)
    try:
        assert s.status == 200
        seen = s.events_until(lambda ev: any(e["Key"] == "app/db" for e in ev))
        assert [(e["Type"], e["Key"]) for e in seen] == [("VariableUpdated", "app/db")]  # not ops/secret
        assert "Items" not in seen[0]["Payload"]["Metadata"] and seen[0]["Payload"]["Deleted"] is False
    finally:
        s.close()
    for path in ("ops/secret", "app/db"):
        assert call(port, "DELETE", f"/v1/var/{path}", token=management).status == 204


def test_rejected_registrations_spare_only_management_tokens(agent, management):
    port, path = agent.http_port, "/v1/operator/scheduler/configuration"
    ci = client_token(agent, management, "ci-rejected", "submit-rejected", SUBMIT_POLICY)["SecretID"]
    assert call(port, "PUT", path, {"RejectJobRegistration": True}, token=ci).status == 403  # operator:write
    assert call(port, "PUT", path, {"RejectJobRegistration": True}, token=management).json()["Updated"]
    try:
        r = call(port, "PUT", "/v1/jobs", {"Job": idle_job("shed")}, token=ci)
        assert (r.status, r.text) == (403, "Job registration, dispatch, and scale are disabled by the "
                                           "scheduler configuration")
        assert call(port, "PUT", "/v1/jobs", {"Job": idle_job("shed")}, token=management).status == 200
    finally:
        assert call(port, "PUT", path, {}, token=management).status == 200
    assert call(port, "PUT", "/v1/jobs", {"Job": idle_job("shed")}, token=ci).status == 200
    purge(agent, management, "shed")


def test_a_leadership_transfer_needs_a_management_token(agent, management):
    port = agent.http_port
    operator = client_token(agent, management, "ops-transfer", "operator-write",
                            'operator { policy = "write" }')["SecretID"]
    leader = call(port, "GET", "/v1/status/leader").json()
    path = f"/v1/operator/raft/transfer-leadership?address={leader}"
    for token in ("", operator):  # Nomad: IsManagement, not operator:write
        assert (call(port, "PUT", path, token=token).status, token) == (403, token)
    r = call(port, "PUT", path, token=management)
    assert r.status == 200 and r.json()["Noop"] is True, r.text


def test_the_autopilot_configuration_needs_operator_read_and_write(agent, management):
    port, path = agent.http_port, "/v1/operator/autopilot/configuration"
    reader = client_token(agent, management, "ops-read", "operator-read", 'operator { policy = "read" }')
    writer = client_token(agent, management, "ops-write", "operator-write-ap", 'operator { policy = "write" }')
    assert call(port, "GET", path).status == 403  # anonymous
    got = call(port, "GET", path, token=reader["SecretID"])
    assert got.status == 200, got.text
    body = {**got.json(), "MinQuorum": 1}
    assert call(port, "PUT", path, body, token=reader["SecretID"]).status == 403
    r = call(port, "PUT", path, body, token=writer["SecretID"])
    assert (r.status, r.json()) == (200, True), r.text
    assert call(port, "PUT", path, got.json(), token=management).json() is True


def test_node_pools_follow_node_pool_rules_and_node_read_still_reads_them(agent, management):
    port = agent.http_port
    reader = client_token(agent, management, "pools", "pools-node", 'node { policy = "write" }')["SecretID"]
    assert call(port, "GET", "/v1/node/pools").status == 403  # anonymous
    assert [p["Name"] for p in call(port, "GET", "/v1/node/pools", token=reader).json()] == ["all", "default"]
    r = call(port, "PUT", "/v1/node/pools", {"Name": "acl-pool"}, token=reader)
    assert (r.status, r.text) == (403, "Permission denied")
    # A node_pool rule grants what it names, on the pools its glob matches.
    owner = client_token(agent, management, "pool-owner", "pools-team",
                         'node_pool "team-*" { policy = "write" }')["SecretID"]
    assert call(port, "PUT", "/v1/node/pools", {"Name": "team-a"}, token=owner).status == 200
    assert call(port, "PUT", "/v1/node/pools", {"Name": "acl-pool"}, token=owner).status == 403
    assert [p["Name"] for p in call(port, "GET", "/v1/node/pools", token=owner).json()] == ["team-a"]
    assert call(port, "GET", "/v1/node/pool/default", token=owner).status == 403
    assert call(port, "DELETE", "/v1/node/pool/team-a", token=reader).status == 403
    assert call(port, "DELETE", "/v1/node/pool/team-a", token=owner).status == 200
    assert call(port, "PUT", "/v1/node/pools", {"Name": "acl-pool"}, token=management).status == 200
    assert call(port, "DELETE", "/v1/node/pool/acl-pool", token=management).status == 200


def test_variables_are_reached_through_a_policys_variables_paths_only(agent, management):
    port = agent.http_port
    # As in Nomad, a namespace's read or write policy grants no variables: its variables block does.
    reader = client_token(agent, management, "vars-reader", "vars-read",
                          'namespace "default" { policy = "read" }')["SecretID"]
    writer = client_token(agent, management, "vars-writer", "vars-write", SUBMIT_POLICY)["SecretID"]
    team = client_token(agent, management, "vars-team", "vars-team", '''namespace "default" {
      variables {
        path "team/*" { capabilities = ["read", "write", "destroy"] }
        path "shared/*" { capabilities = ["list"] }
      }
    }''')["SecretID"]
    for path in ("acl/v", "shared/v"):
        assert call(port, "PUT", f"/v1/var/{path}", {"Items": {"a": "b"}}, token=management).status == 200
    for token in ("", reader, writer):
        assert call(port, "GET", "/v1/var/acl/v", token=token).status == 403
        # Nomad's Variables.List refuses no token: it keeps what the token may list (here nothing)
        listed = call(port, "GET", "/v1/vars", token=token)
        assert (listed.status, listed.json()) == (200, []), listed.text
        listed = call(port, "GET", "/v1/vars?namespace=*", token=token)
        assert (listed.status, listed.json()) == (200, []), listed.text
        r = call(port, "PUT", "/v1/var/acl/v", {"Items": {"a": "c"}}, token=token)
        assert (r.status, r.text) == (403, "Permission denied")
        assert call(port, "DELETE", "/v1/var/acl/v", token=token).status == 403
    assert call(port, "PUT", "/v1/var/team/db", {"Items": {"pw": "x"}}, token=team).status == 200
    assert call(port, "GET", "/v1/var/team/db", token=team).json()["Items"] == {"pw": "x"}
    assert call(port, "GET", "/v1/var/acl/v", token=team).status == 403
    assert call(port, "GET", "/v1/var/shared/v", token=team).status == 403  # list only: no contents
    listed = call(port, "GET", "/v1/vars", token=team).json()
    assert sorted(v["Path"] for v in listed) == ["shared/v", "team/db"]
    listed = call(port, "GET", "/v1/vars?namespace=*", token=team).json()  # every namespace, filtered
    assert sorted(v["Path"] for v in listed) == ["shared/v", "team/db"]
    assert call(port, "DELETE", "/v1/var/team/db", token=team).status == 204
    assert call(port, "GET", "/v1/var/acl/v", token=management).json()["Items"] == {"a": "b"}
    for path in ("acl/v", "shared/v"):
        assert call(port, "DELETE", f"/v1/var/{path}", token=management).status == 204


def test_an_event_stream_ends_when_its_token_is_deleted(agent, management):
    from tests.test_events import _Lines

    port = agent.http_port
    made = client_token(agent, management, "events-gone", "events-gone-node", 'node { policy = "read" }')
    assert call(port, "GET", "/v1/event/stream?topic=NodePool", token=made["SecretID"]).status == 403
    s = _Lines(port, "/v1/event/stream?topic=Node", token=made["SecretID"])
    try:
        assert s.status == 200
        assert call(port, "DELETE", f"/v1/acl/token/{made['AccessorID']}", token=management).status == 200
        # The stream looks at the token again at least every heartbeat (10 s) and ends.
        with pytest.raises(EOFError):
            for _ in range(5):
                s.line()
    finally:
        s.close()


def test_status_metrics_and_health_stay_open(agent, management):
    for path in ("/v1/status/leader", "/v1/regions", "/v1/metrics", "/v1/agent/health"):
        assert call(agent.http_port, "GET", path).status == 200, path


def nomad(agent: AgentProc, *args: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NOMAD_TOKEN"}
    env["NOMAD_ADDR"] = f"http://127.0.0.1:{agent.http_port}"
    if token is not None:
        env["NOMAD_TOKEN"] = token
    return subprocess.run([sys.executable, NOMAD, *args], env=env, capture_output=True, text=True,
                          timeout=STEP_DEADLINE_S * 3)


def test_the_cli_manages_policies_and_tokens_with_nomad_token(agent, management, tmp_path):
    rules = tmp_path / "ops.hcl"
    rules.write_text('node { policy = "write" }\nagent { policy = "read" }\n')
    denied = nomad(agent, "acl", "policy", "apply", "ops", str(rules), token=None)
    assert denied.returncode == 1 and "403" in denied.stderr

    applied = nomad(agent, "acl", "policy", "apply", "-description=operators", "ops", str(rules),
                    token=management)
    assert applied.returncode == 0, applied.stderr
    assert 'Successfully wrote "ops" ACL policy!' in applied.stdout
    created = nomad(agent, "acl", "token", "create", "-name=ops-token", "-policy=ops", "-type=client",
                    token=management)
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(" = ", 1) for line in created.stdout.splitlines() if " = " in line)
    assert {k.strip(): v for k, v in fields.items()}["Policies"] == "[ops]"  # Nomad's %v of a []string
    secret = {k.strip(): v for k, v in fields.items()}["Secret ID"]
    SECRETS.append(secret)

    # acl token update: what a flag names replaces the token's, the rest is kept (the secret too).
    accessor = {k.strip(): v for k, v in fields.items()}["Accessor ID"]
    renamed = nomad(agent, "acl", "token", "update", "-name=ops-token-2", accessor, token=management)
    assert renamed.returncode == 0, renamed.stderr
    got = {k.strip(): v for k, v in (ln.split(" = ", 1) for ln in renamed.stdout.splitlines() if " = " in ln)}
    assert (got["Name"], got["Policies"], got["Secret ID"]) == ("ops-token-2", "[ops]", secret)
    gone = nomad(agent, "acl", "token", "update", "-name=x", "no-such-accessor", token=management)
    assert gone.returncode == 1 and "Error fetching token" in gone.stderr
    back = nomad(agent, "acl", "token", "update", "-name=ops-token", accessor, token=management)
    assert back.returncode == 0

    listed = nomad(agent, "acl", "token", "list", token=management)
    assert listed.returncode == 0 and "ops-token" in listed.stdout and "Bootstrap Token" in listed.stdout
    assert secret not in listed.stdout  # a list shows accessors only

    # The new token's own powers, through -token this time.
    status = subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{agent.http_port}",
                             f"-token={secret}", "node", "status"], capture_output=True, text=True,
                            timeout=STEP_DEADLINE_S * 3)
    assert status.returncode == 0, status.stderr
    refused = nomad(agent, "acl", "bootstrap", token=None)
    assert refused.returncode == 1 and "ACL bootstrap already done" in refused.stderr


def test_an_expiring_token_expires_is_refused_and_goes_with_a_forced_gc(agent, management):
    port = agent.http_port
    r = call(port, "POST", "/v1/acl/token", {"Name": "brief", "Type": "management", "ExpirationTTL": "1s"},
             token=management)
    assert r.status == 200, r.text
    brief = r.json()
    SECRETS.append(brief["SecretID"])
    assert brief["ExpirationTTL"] == "1s" and brief["ExpirationTime"] > brief["CreateTime"]
    too_long = call(port, "POST", "/v1/acl/token", {"Type": "management", "ExpirationTTL": "25h"},
                    token=management)
    assert (too_long.status, too_long.text) == (400, "token 0 invalid: 1 error occurred:\n\t* expiration "
                                                     "time cannot be more than 24h0m0s in the future (was "
                                                     "25h0m0s)\n\n")
    expired = wait_for(lambda: (r := call(port, "GET", "/v1/acl/token/self", token=brief["SecretID"])).status
                       != 200 and r, "the 1 s token to expire")
    assert (expired.status, expired.text) == (500, "ACL token expired")  # Nomad's ACL.WhoAmI says why
    jobs = call(port, "GET", "/v1/jobs", token=brief["SecretID"])
    assert (jobs.status, jobs.text) == (403, "Permission denied")  # as Nomad's RPC handlers answer it
    listed = {t["AccessorID"]: t for t in call(port, "GET", "/v1/acl/tokens", token=management).json()}
    assert listed[brief["AccessorID"]]["ExpirationTime"] == brief["ExpirationTime"]
    # Under acl_token_gc_threshold (1 h) it stays listed, as expired; a forced GC takes it now.
    out = nomad(agent, "acl", "token", "list", token=management)
    row = next(line for line in out.stdout.splitlines() if brief["AccessorID"] in line)
    assert row.split()[-1] == "true"
    assert call(port, "PUT", "/v1/system/gc", token=management).status == 200
    gone = wait_for(lambda: (r := call(port, "GET", "/v1/acl/token/self", token=brief["SecretID"])).status
                    == 403 and r, "the expired token collected")
    assert gone.text == "Permission denied"

    created = nomad(agent, "acl", "token", "create", "-name=hourly", "-type=management", "-ttl=1h",
                    token=management)
    assert created.returncode == 0, created.stderr
    fields = {k.strip(): v for k, v in (ln.split(" = ", 1) for ln in created.stdout.splitlines()
                                        if " = " in ln)}
    SECRETS.append(fields["Secret ID"])
    assert fields["Expiry Time"].endswith(" +0000 UTC") and fields["Expiry Time"] > fields["Create Time"]
    assert call(port, "DELETE", f"/v1/acl/token/{fields['Accessor ID']}", token=management).status == 200


def test_the_cli_manages_roles_and_a_token_gets_its_roles_policies(agent, management, tmp_path):
    """nomad acl role create/list/info/update/delete and acl token create -role-name (Nomad 1.4)."""
    rules = tmp_path / "nodes.hcl"
    rules.write_text('node { policy = "read" }\n')
    assert nomad(agent, "acl", "policy", "apply", "role-nodes", str(rules), token=management).returncode == 0
    agent_rules = tmp_path / "agent.hcl"
    agent_rules.write_text('agent { policy = "read" }\n')
    applied = nomad(agent, "acl", "policy", "apply", "role-agent", str(agent_rules), token=management)
    assert applied.returncode == 0

    missing = nomad(agent, "acl", "role", "create", "-name=readers", "-policy=ghost", token=management)
    assert missing.returncode == 1
    assert "Error creating ACL role: Unexpected response code: 400 (cannot find policy ghost)" \
        in missing.stderr
    created = nomad(agent, "acl", "role", "create", "-name=readers", "-description=read nodes",
                    "-policy=role-nodes", token=management)
    assert created.returncode == 0, created.stderr
    fields = {k.strip(): v for k, v in (line.split(" = ", 1) for line in created.stdout.splitlines())}
    assert (fields["Name"], fields["Description"]) == ("readers", "read nodes")
    assert fields["Policies"] == "role-nodes"
    role_id = fields["ID"]
    listed = nomad(agent, "acl", "role", "list", token=management)
    assert listed.stdout.splitlines()[0].split() == ["ID", "Name", "Description", "Policies"]
    assert role_id in listed.stdout
    as_json = json.loads(nomad(agent, "acl", "role", "list", "-json", token=management).stdout)
    assert [r["Name"] for r in as_json] == ["readers"]
    info = nomad(agent, "acl", "role", "info", "-by-name", "readers", token=management)
    assert info.returncode == 0 and f"ID           = {role_id}" in info.stdout

    token = nomad(agent, "acl", "token", "create", "-name=role-token", "-role-name=readers", token=management)
    assert token.returncode == 0, token.stderr
    assert "\nRoles\nID" in token.stdout and f"{role_id}  readers" in token.stdout
    secret = {k.strip(): v for k, v in (line.split(" = ", 1) for line in token.stdout.splitlines()
                                        if " = " in line)}["Secret ID"]
    SECRETS.append(secret)
    assert call(agent.http_port, "GET", "/v1/nodes", token=secret).status == 200  # through the role
    assert call(agent.http_port, "GET", "/v1/agent/self", token=secret).status == 403

    updated = nomad(agent, "acl", "role", "update", "-policy=role-agent", role_id, token=management)
    assert updated.returncode == 0, updated.stderr
    assert "Policies     = role-agent,role-nodes" in updated.stdout
    assert call(agent.http_port, "GET", "/v1/agent/self", token=secret).status == 200  # the role's new policy
    mine = nomad(agent, "acl", "token", "self", token=secret)
    assert f"{role_id}  readers" in mine.stdout

    deleted = nomad(agent, "acl", "role", "delete", role_id, token=management)
    assert deleted.stdout.strip() == f"ACL role {role_id} successfully deleted"
    assert call(agent.http_port, "GET", "/v1/nodes", token=secret).status == 403
    assert "Roles\n<none>" in nomad(agent, "acl", "token", "self", token=secret).stdout
    for name in ("role-nodes", "role-agent"):
        assert call(agent.http_port, "DELETE", f"/v1/acl/policy/{name}", token=management).status == 200


def test_the_cli_manages_auth_methods_and_binding_rules_and_logs_in_with_a_jwt(agent, management, tmp_path):
    """nomad acl auth-method / binding-rule create, list, delete and nomad login with the default method."""
    import time

    from tests.test_acl_auth import _OTHER_RSA, _RSA, _pem, sign

    r = call(agent.http_port, "POST", "/v1/acl/policy/sso-nodes", {"Name": "sso-nodes",
                                                                  "Rules": 'node { policy = "read" }'},
             token=management)
    assert r.status == 200, r.text
    config = tmp_path / "jwt.json"
    config.write_text(json.dumps({"JWTValidationPubKeys": [_pem(_RSA)], "BoundAudiences": ["nomad"],
                                  "ClaimMappings": {"sub": "user"},
                                  "ListClaimMappings": {"groups": "groups"}}))
    created = nomad(agent, "acl", "auth-method", "create", "-name=corp", "-type=jwt", "-max-token-ttl=1h",
                    "-token-locality=local", "-default", "-token-name-format=sso-${value.user}",
                    f"-config=@{config}", token=management)
    assert created.returncode == 0, created.stderr
    fields = {k.strip(): v for k, v in (line.split(" = ", 1) for line in created.stdout.splitlines()
                                        if " = " in line)}
    assert (fields["Name"], fields["Type"], fields["Max Token TTL"], fields["Default"]) == \
        ("corp", "JWT", "1h0m0s", "true")
    assert "\nAuth Method Config\n" in created.stdout and fields["Bound audiences"] == "nomad"
    listed = nomad(agent, "acl", "auth-method", "list", token=None)  # anyone may list them
    assert listed.stdout.splitlines()[0].split() == ["Name", "Type", "Default"]
    assert listed.stdout.splitlines()[1].split() == ["corp", "JWT", "true"]
    rule = nomad(agent, "acl", "binding-rule", "create", "-auth-method=corp",
                 "-selector=engineering in list.groups",
                 "-bind-type=policy", "-bind-name=sso-nodes", "-json", token=management)
    assert rule.returncode == 0, rule.stderr
    rule_id = json.loads(rule.stdout)["ID"]
    assert rule_id in nomad(agent, "acl", "binding-rule", "list", token=management).stdout
    described = nomad(agent, "acl", "binding-rule", "update", "-description=engineers", rule_id,
                      token=management)
    assert described.returncode == 0, described.stderr
    assert "Description  = engineers" in described.stdout
    assert 'Selector     = "engineering in list.groups"' in described.stdout
    longer = nomad(agent, "acl", "auth-method", "update", "-max-token-ttl=2h", "-default=true", "corp",
                   token=management)
    assert longer.returncode == 0, longer.stderr
    assert "Max Token TTL     = 2h0m0s" in longer.stdout
    assert "Bound audiences            = nomad" in longer.stdout

    now = time.time()
    jwt = sign({"sub": "alice", "aud": "nomad", "groups": ["engineering"], "iat": now, "exp": now + 120})
    logged = nomad(agent, "login", f"-login-token={jwt}", token=None)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.startswith("Successfully logged in via JWT and corp\n\n")
    got = {k.strip(): v for k, v in (line.split(" = ", 1) for line in logged.stdout.splitlines()
                                     if " = " in line)}
    assert (got["Name"], got["Type"], got["Policies"]) == ("sso-alice", "client", "[sso-nodes]")
    SECRETS.append(got["Secret ID"])
    assert call(agent.http_port, "GET", "/v1/nodes", token=got["Secret ID"]).status == 200
    assert call(agent.http_port, "GET", "/v1/agent/self", token=got["Secret ID"]).status == 403
    forged = sign({"sub": "mallory", "aud": "nomad", "groups": ["engineering"], "iat": now, "exp": now + 120},
                  _OTHER_RSA)
    refused = nomad(agent, "login", "-method=corp", f"-login-token={forged}", token=None)
    assert refused.returncode == 1
    assert "Error performing login: Unexpected response code: 401 (unable to validate provided token: " \
           "unable to verify signature of JWT token: error verifying token signature: no known key " \
           "successfully validated the token signature)" in refused.stderr

    deleted = nomad(agent, "acl", "binding-rule", "delete", rule_id, token=management)
    assert deleted.stdout.strip() == f"ACL binding rule {rule_id} successfully deleted"
    deleted = nomad(agent, "acl", "auth-method", "delete", "corp", token=management)
    assert deleted.stdout.strip() == "ACL auth method corp successfully deleted"
    emptied = nomad(agent, "acl", "auth-method", "list", token=None)
    assert emptied.stdout.strip() == "No ACL auth methods found"
    assert call(agent.http_port, "DELETE", "/v1/acl/policy/sso-nodes", token=management).status == 200


def test_a_token_with_rights_in_one_namespace_cannot_touch_another(agent, management):
    port = agent.http_port
    for name in ("acl-a", "acl-b"):
        assert call(port, "PUT", "/v1/namespace", {"Name": name}, token=management).status == 200
    rules = 'namespace "acl-a" { policy = "write" }'
    tok = client_token(agent, management, "ns-a", "ns-a", rules)["SecretID"]
    # only a management token manages namespaces; a token sees the namespaces it may use
    assert call(port, "PUT", "/v1/namespace", {"Name": "acl-c"}, token=tok).status == 403
    assert [n["Name"] for n in call(port, "GET", "/v1/namespaces", token=tok).json()] == ["acl-a"]
    assert call(port, "GET", "/v1/namespace/acl-b", token=tok).status == 403
    assert call(port, "GET", "/v1/namespace/acl-a", token=tok).status == 200
    for ns in ("acl-a", "acl-b"):
        r = call(port, "PUT", "/v1/jobs", {"Job": {**idle_job("same-id"), "Namespace": ns}}, token=management)
        assert r.status == 200, r.text
    r = call(port, "PUT", "/v1/jobs", {"Job": {**idle_job("other"), "Namespace": "acl-b"}}, token=tok)
    assert r.status == 403
    assert call(port, "GET", "/v1/job/same-id?namespace=acl-b", token=tok).status == 403
    assert call(port, "DELETE", "/v1/job/same-id?namespace=acl-b", token=tok).status == 403
    assert call(port, "GET", "/v1/job/same-id?namespace=acl-a", token=tok).json()["Namespace"] == "acl-a"
    listed = call(port, "GET", "/v1/jobs?namespace=*", token=tok)
    assert listed.status == 200
    assert [(j["ID"], j["Namespace"]) for j in listed.json()] == [("same-id", "acl-a")]
    every = call(port, "GET", "/v1/jobs?namespace=*", token=management).json()
    assert {j["Namespace"] for j in every} >= {"acl-a", "acl-b"}
    assert call(port, "GET", "/v1/jobs?namespace=*").json() == []  # anonymous: no namespace to list
    for ns in ("acl-a", "acl-b"):
        r = call(port, "DELETE", f"/v1/job/same-id?namespace={ns}&purge=true", token=management)
        assert r.status == 200, r.text
        assert call(port, "DELETE", f"/v1/namespace/{ns}", token=management).status == 200


def test_no_secret_appears_in_the_agent_output_or_agent_self(agent, management):
    # A secret in ?token= is not read (Nomad removed it) and not logged with the URL.
    assert call(agent.http_port, "GET", f"/v1/jobs?token={management}").status == 403
    r = call(agent.http_port, "GET", "/v1/agent/self", token=management)
    assert r.status == 200
    assert r.json()["config"]["ACL"] == {"Enabled": True, "TokenTTL": 30 * 10**9, "PolicyTTL": 30 * 10**9,
                                         "RoleTTL": 30 * 10**9, "TokenMinExpirationTTL": 10**9,
                                         "TokenMaxExpirationTTL": 24 * 3600 * 10**9,
                                         "ReplicationToken": ""}  # Nomad: "<redacted>" once set
    assert len(SECRETS) >= 3
    printed = "\n".join(agent.out + agent.err)
    assert "request complete" in printed  # dev mode logs every request at DEBUG: the lines were checked
    for secret in SECRETS:
        assert secret not in r.text
        assert secret not in printed


# ---------------------------------------------------------------- a client-only agent


def test_a_client_only_agent_checks_tokens_through_its_server(agents, tmp_path):  # noqa: F811
    """The client relays server-bound requests (the server checks them) and asks the server for its own."""
    ports = {role: {"http": free_port(), "rpc": free_port(), "serf": free_port()} for role in ("srv", "cli")}

    def config(role: str, extra: list[str]) -> str:
        path = tmp_path / f"{role}.toml"
        lines = [f'name = "{role}"', f'data_dir = "{tmp_path / role}"', 'bind_addr = "127.0.0.1"',
                 "[ports]", *(f"{k} = {v}" for k, v in ports[role].items()), *extra,
                 "[acl]", "enabled = true", 'token_ttl = "1s"', 'policy_ttl = "1s"',
                 'role_ttl = "1s"']
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    agents(["-config", config("srv", ["[server]", "enabled = true", "bootstrap_expect = 1"])],
           http_port=ports["srv"]["http"]).wait_healthy()
    servers = json.dumps([f"127.0.0.1:{ports['srv']['rpc']}"])
    cli = agents(["-config", config("cli", ["[client]", "enabled = true", STAGGER, f"servers = {servers}"])],
                 http_port=ports["cli"]["http"]).wait_healthy()
    port = cli.http_port
    boot = wait_for(lambda: (r := call(port, "POST", "/v1/acl/bootstrap")).status == 200 and r,
                    "a bootstrap through the client (the server elected)", STEP_DEADLINE_S * 2)
    secret = boot.json()["SecretID"]

    assert call(port, "PUT", "/v1/jobs", {"Job": idle_job("via-client")}).status == 403  # the server said no
    assert call(port, "GET", "/v1/agent/self").status == 403  # the client asked the server who this is
    assert call(port, "GET", "/v1/agent/self", token=UNKNOWN_SECRET).text == "ACL token not found"
    assert call(port, "GET", "/v1/agent/self", token=secret).status == 200
    assert call(port, "PUT", "/v1/jobs", {"Job": idle_job("via-client")}, token=secret).status == 200

    ops = client_token(cli, secret, "agent-reader", "agent-read", 'agent { policy = "read" }')
    assert call(port, "GET", "/v1/agent/self", token=ops["SecretID"]).status == 200
    assert call(port, "PUT", "/v1/agent/reload", token=ops["SecretID"]).status == 403
    # Revoked: the client's cache forgets it within acl.token_ttl (1 s here).
    assert call(port, "DELETE", f"/v1/acl/token/{ops['AccessorID']}", token=secret).status == 200
    wait_for(lambda: call(port, "GET", "/v1/agent/self", token=ops["SecretID"]).status == 403,
             "the revoked token refused by the client")

    # A token with a role: the client looks the role up on the server and applies its policies;
    # once the role is deleted its policies stop applying within acl.role_ttl.
    r = call(port, "POST", "/v1/acl/role", {"Name": "agent-readers", "Policies": [{"Name": "agent-read"}]},
             token=secret)
    assert r.status == 200, r.text
    role_id = r.json()["ID"]
    r = call(port, "POST", "/v1/acl/token", {"Type": "client", "Roles": [{"Name": "agent-readers"}]},
             token=secret)
    assert r.status == 200, r.text
    role_secret = r.json()["SecretID"]
    assert call(port, "GET", "/v1/agent/self", token=role_secret).status == 200
    assert call(port, "PUT", "/v1/agent/reload", token=role_secret).status == 403
    assert call(port, "DELETE", f"/v1/acl/role/{role_id}", token=secret).status == 200
    wait_for(lambda: call(port, "GET", "/v1/agent/self", token=role_secret).status == 403,
             "the deleted role's policies no longer applied by the client")


def test_the_bootstrap_reset_file_allows_one_more_bootstrap(agents, tmp_path):  # noqa: F811
    """Nomad's recovery for lost management tokens: the refused bootstrap's reset index, written to a file."""
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    path = tmp_path / "srv.toml"
    path.write_text("\n".join([f'data_dir = "{tmp_path / "data"}"', 'bind_addr = "127.0.0.1"', "[ports]",
                               *(f"{k} = {v}" for k, v in ports.items()),
                               "[server]", "enabled = true", "bootstrap_expect = 1",
                               "[acl]", "enabled = true"]) + "\n")
    port = agents(["-config", str(path)], http_port=ports["http"]).wait_healthy().http_port
    first = wait_for(lambda: (r := call(port, "POST", "/v1/acl/bootstrap")).status == 200 and r,
                     "a bootstrap (the server elected)", STEP_DEADLINE_S * 2).json()
    refused = call(port, "POST", "/v1/acl/bootstrap")
    assert refused.status == 400
    reset_index = int(re.fullmatch(r"ACL bootstrap already done \(reset index: (\d+)\)", refused.text)[1])
    assert reset_index == first["CreateIndex"]

    (tmp_path / "data" / "server" / "acl-bootstrap-reset").write_text(f"{reset_index}\n")
    again = call(port, "POST", "/v1/acl/bootstrap")
    assert again.status == 200, again.text
    assert again.json()["SecretID"] != first["SecretID"] and again.json()["Type"] == "management"
    # The file's index is used up: the next attempt names the new one.
    third = call(port, "POST", "/v1/acl/bootstrap")
    assert third.status == 400
    assert third.text == (f"Invalid bootstrap reset index (specified {reset_index}, "
                          f"reset index: {again.json()['CreateIndex']})")
    # Both management tokens work; the first was not revoked by the reset.
    for secret in (first["SecretID"], again.json()["SecretID"]):
        assert call(port, "GET", "/v1/acl/tokens", token=secret).status == 200


def test_alloc_exec_into_an_exec_task_needs_only_alloc_exec(agent, management):
    """exec isolates the file system (Nomad's FSIsolationChroot): alloc-exec is enough, no alloc-node-exec."""
    from tests.test_alloc_exec import _EXEC_WHY_NOT, _open, _session

    if _EXEC_WHY_NOT:
        pytest.skip(_EXEC_WHY_NOT)
    port = agent.http_port
    job = {"ID": "acl-exec-iso", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "exec",
                                            "Resources": {"CPU": 20, "MemoryMB": 32},
                                            "Config": {"command": "/bin/sleep", "args": ["60"]}}]}]}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}, token=management).status == 200
    try:
        def running() -> str | None:
            for a in call(port, "GET", "/v1/job/acl-exec-iso/allocations", token=management).json():
                if (a.get("TaskStates") or {}).get("t", {}).get("State") == "running":
                    return a["ID"]
            return None
        alloc_id = wait_for(running, "acl-exec-iso running", 20.0)
        writer = client_token(agent, management, "iso-writer", "iso-write",
                              'namespace "default" { policy = "write" }')["SecretID"]
        ws, sock = _open(port, alloc_id, ["true"], task="t", headers={"X-Nomad-Token": ""})
        with sock:
            assert _session(ws)[3] == (1011, "Permission denied")
        ws, sock = _open(port, alloc_id, ["echo", "in"], task="t", headers={"X-Nomad-Token": writer})
        with sock:
            assert _session(ws)[:3] == (b"in\n", b"", 0)
    finally:
        purge(agent, management, "acl-exec-iso")


def test_alloc_exec_needs_alloc_exec_and_for_raw_exec_alloc_node_exec(agent, management):
    """Nomad's client Allocations.Exec: alloc-exec in the allocation's namespace, and alloc-node-exec too
    for a driver without file-system isolation (raw_exec); a refusal is the WebSocket's close reason."""
    from tests.test_alloc_exec import _open, _session

    port = agent.http_port
    job = {"ID": "acl-exec", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                            "Resources": {"CPU": 20, "MemoryMB": 16},
                                            "Config": {"command": "/bin/sleep", "args": ["60"]}}]}]}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}, token=management).status == 200
    try:
        def running() -> str | None:
            for a in call(port, "GET", "/v1/job/acl-exec/allocations", token=management).json():
                if (a.get("TaskStates") or {}).get("t", {}).get("State") == "running":
                    return a["ID"]
            return None
        alloc_id = wait_for(running, "acl-exec running", 20.0)
        writer = client_token(agent, management, "exec-writer", "exec-write",
                              'namespace "default" { policy = "write" }')["SecretID"]
        node_exec = client_token(agent, management, "exec-node", "exec-node",
                                 'namespace "default" { capabilities = ["alloc-exec", "alloc-node-exec", '
                                 '"read-job", "list-jobs"] }')["SecretID"]
        for secret in ("", writer):  # none, and write (alloc-exec without alloc-node-exec)
            ws, sock = _open(port, alloc_id, ["true"], task="t", headers={"X-Nomad-Token": secret})
            with sock:
                assert _session(ws)[3] == (1011, "Permission denied")
        ws, sock = _open(port, alloc_id, ["echo", "in"], task="t", headers={"X-Nomad-Token": node_exec})
        with sock:
            assert _session(ws)[:3] == (b"in\n", b"", 0)
        # A browser's way: the token in the first message (ws_handshake=true), not a header.
        ws, sock = _open(port, alloc_id, ["echo", "shaken"], task="t", extra="&ws_handshake=true")
        with sock:
            ws.send_text(json.dumps({"version": 1, "auth_token": node_exec}))
            assert _session(ws)[:3] == (b"shaken\n", b"", 0)
        ws, sock = _open(port, alloc_id, ["true"], task="t", extra="&ws_handshake=true")
        with sock:
            ws.send_text(json.dumps({"version": 2, "auth_token": node_exec}))
            assert _session(ws)[3] == (1008, "unexpected handshake value: 2")
        r = nomad(agent, "alloc", "exec", "-i=false", alloc_id, "sh", "-c", "exit 4", token=node_exec)
        assert r.returncode == 4, r.stderr
    finally:
        purge(agent, management, "acl-exec")


def test_a_namespace_token_without_node_read_reads_its_allocations_logs_files_and_stats(agent, management):
    """Nomad's api asks the node directly only when it can look the node up (node:read); otherwise it asks
    the agent, which relays: a namespace's write policy is enough for alloc logs, fs and status -stats."""
    port = agent.http_port
    assert call(port, "PUT", "/v1/namespace", {"Name": "acl-logs"}, token=management).status == 200
    job = {"ID": "acl-logs", "Namespace": "acl-logs", "Type": "service", "Datacenters": ["dc1"],
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
               "Name": "t", "Driver": "raw_exec", "Resources": {"CPU": 20, "MemoryMB": 16},
               "Config": {"command": "/bin/sh", "args": ["-c", "echo logged; exec sleep 60"]}}]}]}
    assert call(port, "PUT", "/v1/jobs", {"Job": job}, token=management).status == 200
    try:
        def running() -> str | None:
            for a in call(port, "GET", "/v1/job/acl-logs/allocations?namespace=acl-logs",
                          token=management).json():
                if (a.get("TaskStates") or {}).get("t", {}).get("State") == "running":
                    return a["ID"]
            return None
        alloc_id = wait_for(running, "acl-logs running", 20.0)
        tok = client_token(agent, management, "ns-logs", "ns-logs",
                           'namespace "acl-logs" { policy = "write" }')["SecretID"]
        logs = wait_for(lambda: (lambda r: r if "logged" in r.stdout else None)(
            nomad(agent, "alloc", "logs", "-namespace", "acl-logs", alloc_id, token=tok)), "logs", 10.0)
        assert logs.returncode == 0, logs.stderr
        r = nomad(agent, "alloc", "fs", "-namespace", "acl-logs", alloc_id, "alloc/logs", token=tok)
        assert r.returncode == 0 and "t.stdout.0" in r.stdout, r.stderr
        r = nomad(agent, "alloc", "status", "-namespace", "acl-logs", "-stats", alloc_id, token=tok)
        assert r.returncode == 0 and "Couldn't retrieve stats" not in r.stderr, r.stderr
        assert "MHz" in r.stdout
    finally:
        r = call(port, "DELETE", "/v1/job/acl-logs?namespace=acl-logs&purge=true", token=management)
        assert r.status == 200, r.text


def test_acl_reads_that_find_nothing_name_the_index_to_block_on(agent, management):
    # Nomad's ACL handlers set the query meta before their 404 (setMeta, then "... not found").
    for path in ("/v1/acl/policy/nope", "/v1/acl/token/00000000-0000-0000-0000-000000000000",
                 "/v1/acl/role/00000000-0000-0000-0000-000000000000", "/v1/acl/auth-method/nope",
                 "/v1/acl/binding-rule/00000000-0000-0000-0000-000000000000"):
        r = call(agent.http_port, "GET", path, token=management)
        assert r.status == 404 and int(r.headers["x-nomad-index"]) >= 1, (path, r.status, r.headers)
