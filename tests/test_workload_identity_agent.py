"""Workload identity in a real -dev agent with ACLs enabled: a raw_exec task with ``identity { env = true
file = true }`` gets its JWT in NOMAD_TOKEN and secrets/nomad_token; as X-Nomad-Token it reads its own
job's variable and is refused another job's and the job list; /.well-known/jwks.json verifies it; once
its job is stopped it is refused.  Rotating the root keyring (``nomad operator root keyring rotate -now``)
keeps the old key, which still verifies the token and is published, and cannot be removed while in use.
ACL policies attached to its job (``nomad acl policy apply -namespace -job [-group [-task]]``, Nomad's
JobACL) add to what it may do; those of another job or task do not."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.hashes import SHA256

from runtime.hcl_job import parse_hcl_job
from tests.test_acl_process import NOMAD, acl_dev_agent, call
from tests.test_agent_process import wait_for

pytestmark = pytest.mark.timeout(120)

PLACE_DEADLINE_S = 30.0
JOB = '''
job "wid" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "SCRIPT"]
      }
      identity {
        env  = true
        file = true
      }
      identity {
        name     = "api"
        aud      = ["api.example"]
        env      = true
        file     = true
        filepath = "local/api.jwt"
        ttl      = "1h"
        change_mode = "restart"
      }
    }
  }
}
'''.replace("SCRIPT", "; ".join(('printf %s \\"$NOMAD_TOKEN\\" > $NOMAD_ALLOC_DIR/env_token',
                                  'printf %s \\"$NOMAD_TOKEN_api\\" > $NOMAD_ALLOC_DIR/api_token',
                                  "exec sleep 300")))


# Attached to job "wid": read a variable outside the job's own paths, and node:read.
JOB_POLICY = ('namespace "default" {\n  variables {\n    path "shared/*" { capabilities = ["read"] }\n'
              '  }\n}\nnode { policy = "read" }\n')


OPERATOR_READ = 'operator { policy = "read" }'


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_a_tasks_identity_reaches_it_and_reads_only_its_own_jobs_variables(tmp_path: Any) -> None:
    with acl_dev_agent(tmp_path) as agent:
        port = agent.http_port
        r = call(port, "POST", "/v1/acl/bootstrap")
        assert r.status == 200, r.text
        mgmt = r.json()["SecretID"]

        def first_keys() -> Any:
            r = call(port, "GET", "/v1/operator/keyring/keys", token=mgmt)
            return r.json() if r.status == 200 and r.json() else None

        # The leader made the keyring's first key on taking leadership (Nomad's initializeKeyring),
        # before any task asked for an identity, and publishes it.
        keys = wait_for(first_keys, "the first root key", PLACE_DEADLINE_S)
        assert len(keys) == 1 and keys[0]["State"] == "active", keys
        first_kid = keys[0]["KeyID"]
        assert [k["kid"] for k in call(port, "GET", "/.well-known/jwks.json").json()["keys"]] == [first_kid]
        for path in ("nomad/jobs/wid", "nomad/jobs/other"):
            r = call(port, "PUT", f"/v1/var/{path}", {"Items": {"k": path}}, token=mgmt)
            assert r.status == 200, r.text
        r = call(port, "PUT", "/v1/jobs", {"Job": parse_hcl_job(JOB)}, token=mgmt)
        assert r.status == 200, r.text

        def running() -> Any:
            allocs = call(port, "GET", "/v1/job/wid/allocations", token=mgmt).json()
            return next((a for a in allocs if a["ClientStatus"] == "running"), None)

        alloc = wait_for(running, "the identity job runs", PLACE_DEADLINE_S)

        def env_token() -> Any:
            r = call(port, "GET", f"/v1/client/fs/cat/{alloc['ID']}?path=alloc/env_token", token=mgmt)
            return r.text if r.status == 200 and r.text else None

        token = wait_for(env_token, "the task wrote NOMAD_TOKEN", PLACE_DEADLINE_S)
        r = call(port, "GET", f"/v1/client/fs/stat/{alloc['ID']}?path=t/secrets/nomad_token", token=mgmt)
        assert r.status == 200 and r.json()["Size"] == len(token), r.text
        assert r.json()["FileMode"] == "-rw-------"

        head, body, sig = token.split(".")
        claims = json.loads(_unb64(body))
        assert claims["nomad_job_id"] == "wid" and claims["nomad_allocation_id"] == alloc["ID"]
        assert claims["sub"] == "global:default:wid:g:t:default" and claims["aud"] == ["nomadproject.io"]
        r = call(port, "GET", "/.well-known/jwks.json")  # no token needed
        assert r.status == 200, r.text
        (jwk,) = r.json()["keys"]
        assert json.loads(_unb64(head)) == {"alg": "RS256", "kid": jwk["kid"], "typ": "JWT"}
        assert jwk["kid"] == first_kid  # signed with the key made at leadership, not a new one
        assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")  # Nomad 1.7+'s
        public = RSAPublicNumbers(int.from_bytes(_unb64(jwk["e"]), "big"),
                                  int.from_bytes(_unb64(jwk["n"]), "big")).public_key()
        public.verify(_unb64(sig), f"{head}.{body}".encode(), PKCS1v15(), SHA256())
        _named_identity(port, mgmt, alloc["ID"], public)
        assert call(port, "GET", "/.well-known/openid-configuration").status == 404

        r = call(port, "GET", "/v1/var/nomad/jobs/wid", token=token)
        assert r.status == 200 and r.json()["Items"] == {"k": "nomad/jobs/wid"}, r.text
        r = call(port, "GET", "/v1/vars?prefix=nomad/jobs", token=token)
        assert r.status == 200 and [v["Path"] for v in r.json()] == ["nomad/jobs/wid"], r.text
        assert call(port, "GET", "/v1/var/nomad/jobs/other", token=token).status == 403
        assert call(port, "PUT", "/v1/var/nomad/jobs/wid", {"Items": {"k": "x"}}, token=token).status == 403
        assert call(port, "GET", "/v1/jobs", token=token).status == 403
        assert call(port, "GET", "/v1/services", token=token).status == 200
        _job_policies(port, mgmt, token, tmp_path)
        tampered = f"{head}.{body}.{sig[:-4]}AAAA"
        assert call(port, "GET", "/v1/var/nomad/jobs/wid", token=tampered).status == 403

        old_kid = _rotate(port, mgmt, token, json.loads(_unb64(head))["kid"])
        assert call(port, "DELETE", "/v1/job/wid", token=mgmt).status == 200

        def refused() -> bool:
            return call(port, "GET", "/v1/var/nomad/jobs/wid", token=token).status == 403

        wait_for(refused, "the stopped allocation's identity refused", PLACE_DEADLINE_S)
        r = call(port, "DELETE", f"/v1/operator/keyring/key/{old_kid}", token=mgmt)  # no longer in use
        assert r.status == 200 and r.json()["Index"] > 0, r.text
        assert len(call(port, "GET", "/.well-known/jwks.json").json()["keys"]) == 1


def _named_identity(port: int, mgmt: str, alloc_id: str, public: Any) -> None:
    """The task's named identity: its token in NOMAD_TOKEN_api and local/api.jwt, with its audience and
    expiry, verified by the published key; the job reads back with it."""
    def api_token() -> Any:
        r = call(port, "GET", f"/v1/client/fs/cat/{alloc_id}?path=alloc/api_token", token=mgmt)
        return r.text if r.status == 200 and r.text else None

    token = wait_for(api_token, "the task wrote NOMAD_TOKEN_api", PLACE_DEADLINE_S)
    r = call(port, "GET", f"/v1/client/fs/cat/{alloc_id}?path=t/local/api.jwt", token=mgmt)
    assert r.status == 200 and r.text == token, r.text
    head, body, sig = token.split(".")
    public.verify(_unb64(sig), f"{head}.{body}".encode(), PKCS1v15(), SHA256())
    claims = json.loads(_unb64(body))
    assert claims["aud"] == ["api.example"] and claims["sub"] == "global:default:wid:g:t:api"
    assert claims["exp"] == claims["iat"] + 3600
    (task,) = call(port, "GET", "/v1/job/wid", token=mgmt).json()["TaskGroups"][0]["Tasks"]
    assert [(w["Name"], w["Audience"], w["TTL"], w["Filepath"], w["ChangeMode"])
            for w in task["Identities"]] == [("api", ["api.example"], 3_600_000_000_000, "local/api.jwt",
                                              "restart")]
    assert task["Identity"]["Name"] == "default"


def _job_policies(port: int, mgmt: str, token: str, tmp_path: Any) -> None:
    """Policies attached to the job (one through the CLI) grant the workload what they say; others do not."""
    r = call(port, "PUT", "/v1/var/shared/config", {"Items": {"k": "v"}}, token=mgmt)
    assert r.status == 200, r.text
    assert call(port, "GET", "/v1/var/shared/config", token=token).status == 403
    assert call(port, "GET", "/v1/nodes", token=token).status == 403
    rules = tmp_path / "job.hcl"
    rules.write_text(JOB_POLICY)
    env = {**os.environ, "NOMAD_ADDR": f"http://127.0.0.1:{port}", "NOMAD_TOKEN": mgmt}
    run = subprocess.run([sys.executable, NOMAD, "acl", "policy", "apply", "-namespace", "default",
                          "-job", "wid", "wid-ops", str(rules)], env=env, capture_output=True, text=True,
                         timeout=30)
    assert (run.returncode, run.stdout) == (0, 'Successfully wrote "wid-ops" ACL policy!\n'), run.stderr
    others = {"other-job": {"Namespace": "default", "JobID": "other"},  # another job
              "other-task": {"Namespace": "default", "JobID": "wid", "Group": "g", "Task": "nope"},
              "other-ns": {"Namespace": "ops"}}  # every workload of namespace ops, not ours
    for name, job_acl in others.items():
        r = call(port, "PUT", f"/v1/acl/policy/{name}", {"Name": name, "Rules": OPERATOR_READ,
                                                         "JobACL": job_acl}, token=mgmt)
        assert r.status == 200, r.text
    r = call(port, "PUT", "/v1/acl/policy/bad",
             {"Name": "bad", "Rules": JOB_POLICY, "JobACL": {"JobID": "wid", "Task": "t"}}, token=mgmt)
    assert (r.status, r.text) == (400, "policy 0 invalid: 2 errors occurred:\n\t* namespace must be set to "
                                       "set job ID\n\t* group must be set to set task\n\n")
    r = call(port, "GET", "/v1/acl/policy/wid-ops", token=mgmt)
    assert r.json()["JobACL"] == {"Namespace": "default", "JobID": "wid", "Group": "", "Task": ""}, r.text

    r = call(port, "GET", "/v1/var/shared/config", token=token)
    assert r.status == 200 and r.json()["Items"] == {"k": "v"}, r.text
    assert call(port, "GET", "/v1/nodes", token=token).status == 200
    assert call(port, "GET", "/v1/operator/raft/configuration", token=token).status == 403
    assert call(port, "GET", "/v1/var/nomad/jobs/wid", token=token).status == 200  # the implicit policy stays
    r = call(port, "GET", "/v1/acl/policies", token=token)  # what `nomad acl policy self` lists
    assert r.status == 200 and [p["Name"] for p in r.json()] == ["wid-ops"], r.text

    # Attached to the group and then the task: still ours.
    r = call(port, "PUT", "/v1/acl/policy/other-task", {"Name": "other-task", "Rules": OPERATOR_READ,
                                                        "JobACL": {"Namespace": "default", "JobID": "wid",
                                                                   "Group": "g", "Task": "t"}}, token=mgmt)
    assert r.status == 200, r.text
    assert call(port, "GET", "/v1/operator/raft/configuration", token=token).status == 200
    assert call(port, "DELETE", "/v1/acl/policy/wid-ops", token=mgmt).status == 200
    assert call(port, "GET", "/v1/nodes", token=token).status == 403


def _rotate(port: int, mgmt: str, token: str, kid: str) -> str:
    """Rotate the keyring through the CLI; the workload's token (signed by the old key) still works.
    Answers the old key's ID."""
    # the workload's attached operator read policy lists the keys (Nomad 2.0's keyring-read), not rotate
    assert call(port, "PUT", "/v1/operator/keyring/rotate", token=token).status == 403
    (key,) = call(port, "GET", "/v1/operator/keyring/keys", token=mgmt).json()
    assert (key["KeyID"], key["State"], key["Algorithm"]) == (kid, "active", "eddsa")  # the record's
    env = {**os.environ, "NOMAD_ADDR": f"http://127.0.0.1:{port}", "NOMAD_TOKEN": mgmt}
    run = subprocess.run([sys.executable, NOMAD, "operator", "root", "keyring", "rotate", "-now", "-verbose"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    header, row = run.stdout.splitlines()
    assert header.split() == ["Key", "State", "Create", "Time", "Publish", "Time"]
    new_kid = row.split()[0]
    assert row.split()[1] == "active" and new_kid != kid
    keys = {k["KeyID"]: k["State"] for k in call(port, "GET", "/v1/operator/keyring/keys", token=mgmt).json()}
    assert keys == {kid: "inactive", new_kid: "active"}
    published = call(port, "GET", "/.well-known/jwks.json").json()["keys"]
    assert sorted(k["kid"] for k in published) == sorted(keys)
    assert call(port, "GET", "/v1/var/nomad/jobs/wid", token=token).status == 200  # the old key verifies
    r = call(port, "DELETE", f"/v1/operator/keyring/key/{new_kid}", token=mgmt)
    assert (r.status, r.text) == (500, "active root key cannot be deleted - call rotate first")
    r = call(port, "DELETE", f"/v1/operator/keyring/key/{kid}", token=mgmt)
    assert (r.status, r.text) == (500, "root key in use, cannot delete")
    assert call(port, "DELETE", f"/v1/operator/keyring/key/{kid}?force=maybe", token=mgmt).status == 422
    r = call(port, "PUT", "/v1/operator/keyring/rotate?full=true", token=mgmt)
    assert r.status == 400 and "full rotation is not supported" in r.text
    return kid
