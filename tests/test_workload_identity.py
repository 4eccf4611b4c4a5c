"""Workload identities: the servers' signed JWT for each task (Nomad 1.7+ ``identity`` block).

Pure parts (signing, verification, the JWK set, the jobspec block, the keyring's state) and, in the
simulator, a task with ``identity { env = true  file = true }`` getting its signed token in
NOMAD_TOKEN and secrets/nomad_token, and that token's implicit policy.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.acl import Need
from actors.state import root_keys
from actors.state.store import StateStore, command
from actors.workload_identity import (
    InvalidToken,
    canonical_identity,
    canonical_job,
    claims_for,
    jwks,
    sign,
    verify,
    workload_acl,
    workload_claims,
)
from runtime.hcl_job import HclJobError, parse_hcl_job

pytestmark = pytest.mark.timeout(60)


def key(seed: int = 1) -> dict[str, Any]:
    fields = root_keys.new_key(random.Random(seed), 1_700_000_000.0)
    return {"KeyID": fields["key_id"], "Seed": fields["seed"], "State": "active", "Algorithm": "eddsa"}


ALLOC = {"ID": "a1", "Namespace": "default", "JobID": "web", "TaskGroup": "g",
         "Job": {"ID": "web", "Region": "global"}, "ClientStatus": "running"}


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_a_signed_identity_verifies_and_carries_nomads_claims() -> None:
    k = key()
    token = sign(k, claims_for(ALLOC, "t", 1_700_000_000.5, "jti-1"))
    header = json.loads(_unb64(token.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": k["KeyID"], "typ": "JWT"}
    claims = verify(token, {k["KeyID"]: k}, 1_700_000_001.0)
    assert claims == {"nomad_namespace": "default", "nomad_job_id": "web", "nomad_allocation_id": "a1",
                      "nomad_task": "t", "sub": "global:default:web:g:t:default", "aud": ["nomadproject.io"],
                      "iat": 1_700_000_000, "nbf": 1_700_000_000, "jti": "jti-1"}
    # A dispatched job's identity is its parent's (Nomad's GetIDforWorkloadIdentity).
    child = {**ALLOC, "JobID": "web/dispatch-1", "Job": {"ID": "web/dispatch-1", "ParentID": "web"}}
    assert claims_for(child, "t", 0, "j")["nomad_job_id"] == "web"


def test_a_tampered_or_foreign_token_is_refused() -> None:
    k, other = key(1), key(2)
    keys = {k["KeyID"]: k}
    token = sign(k, claims_for(ALLOC, "t", 100.0, "j"))
    head, body, sig = token.split(".")
    forged_claims = {**json.loads(_unb64(body)), "nomad_job_id": "other"}
    forged_body = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    bad_sig = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    for bad in (f"{head}.{forged_body}.{sig}", f"{head}.{body}.{bad_sig}", f"{none_head}.{body}.",
                "not-a-token", token + "x", f"{head}.{body}"):
        with pytest.raises(InvalidToken):
            verify(bad, keys, 100.0)
    with pytest.raises(InvalidToken, match="key ID"):  # signed by a key the servers do not hold
        verify(sign({**other, "KeyID": "elsewhere"}, claims_for(ALLOC, "t", 100.0, "j")), keys, 100.0)
    with pytest.raises(InvalidToken, match="invalid signature"):  # same kid, another key
        verify(sign({**other, "KeyID": k["KeyID"]}, claims_for(ALLOC, "t", 100.0, "j")), keys, 100.0)
    with pytest.raises(InvalidToken, match="not valid yet"):
        verify(token, keys, 100.0 - 3600)


def test_the_jwks_publishes_the_public_keys_that_verify_tokens() -> None:
    k = key()
    doc = jwks({root_keys.TABLE: {k["KeyID"]: k}})
    (jwk,) = doc["keys"]
    assert {f: jwk[f] for f in ("kty", "crv", "kid", "alg", "use")} == {
        "kty": "OKP", "crv": "Ed25519", "kid": k["KeyID"], "alg": "EdDSA", "use": "sig"}
    token = sign(k, claims_for(ALLOC, "t", 100.0, "j"))
    head, body, sig = token.split(".")
    Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"])).verify(_unb64(sig), f"{head}.{body}".encode())
    assert jwks({}) == {"keys": []}


def test_the_keyring_keeps_its_first_key_and_snapshots_it() -> None:
    st = StateStore()
    first, second = root_keys.new_key(random.Random(1), 5.0), root_keys.new_key(random.Random(2), 6.0)
    r1 = st.apply(1, command("root_key_create", **first))
    r2 = st.apply(2, command("root_key_create", **second))
    assert r1["created"] and not r2["created"] and r2["KeyID"] == first["key_id"]
    assert st.apply(3, command("root_key_create", key_id="x", seed="y", create_time=1))["ok"] is False
    restored = StateStore()
    restored.restore(st.snapshot(), 3)
    assert root_keys.active(restored.tables)["Seed"] == first["seed"]


def test_the_identity_block_parses_and_is_validated_as_nomads() -> None:
    job = parse_hcl_job('''job "web" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      identity {
        env  = true
        file = true
        change_mode = "signal"
        change_signal = "sighup"
      }
    }
  }
}''')
    task = canonical_job(job)["TaskGroups"][0]["Tasks"][0]
    assert task["Identity"] == {"Name": "default", "Audience": ["nomadproject.io"], "ChangeMode": "signal",
                                "ChangeSignal": "SIGHUP", "Env": True, "File": True, "Filepath": "",
                                "ServiceName": "", "TTL": 0, "ExtraClaims": None}
    with pytest.raises(HclJobError, match="'bogus' not supported"):
        parse_hcl_job('job "w" {\n group "g" {\n task "t" {\n driver = "raw_exec"\n'
                      ' identity {\n bogus = 1\n }\n }\n }\n}')
    for raw, why in (({"TTL": 3_600_000_000_000}, "ttl for default identity not yet supported"),
                     ({"ChangeMode": "signal"}, "change_signal must be specified"),
                     ({"ChangeSignal": "SIGHUP"}, "can only use change_signal"),
                     ({"ChangeMode": "bounce"}, "invalid change_mode: bounce"),
                     ({"Name": "vault_default"}, "only the default identity"),
                     ({"Env": "yes"}, "must be a boolean")):
        with pytest.raises(ValueError, match=why):
            canonical_identity(raw, "Identity")


def test_a_workload_acl_reads_its_own_jobs_variables_and_services_only() -> None:
    claims = {"nomad_namespace": "default", "nomad_job_id": "web", "nomad_group": "g", "nomad_task": "t"}
    acl = workload_acl(claims, "GET", "/v1/var/nomad/jobs/web")
    for path in ("nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t"):
        assert acl.allows((Need("variable", "read", "default", path),)), path
    for path in ("nomad/jobs/other", "nomad/jobs/web/x", "app/config"):
        assert not acl.allows((Need("variable", "read", "default", path),)), path
    assert not acl.allows((Need("variable", "write", "default", "nomad/jobs/web"),))
    assert not acl.allows((Need("variable", "read", "other", "nomad/jobs/web"),))
    assert not acl.allows((Need("namespace", "read-job", "default"),))  # /v1/jobs: no
    services = workload_acl(claims, "GET", "/v1/services")
    assert services.allows((Need("namespace", "read-job", "default"),))
    assert not workload_acl(claims, "DELETE", "/v1/service/x/y").allows((Need("namespace", "submit-job",
                                                                              "default"),))


# ---------------------------------------------------------------- in the simulator

def _identity_cluster(seed: int) -> tuple[Any, str]:
    """A one-server, one-client simulated cluster running a task with identity { env file }, and the
    token the task got in NOMAD_TOKEN."""
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1)))
    c.run(30.0)
    j = sim_job(count=1)
    task = j["TaskGroups"][0]["Tasks"][0]
    task["Identity"] = {"Env": True, "File": True}
    task["Config"]["args"] = ["${NOMAD_TOKEN}"]
    c.register(canonical_job(j))
    end = c.sched.now + 60
    while not c.drivers["c0001"].procs:
        assert c.sched.now < end
        c.run(0.5)
    (proc,) = c.drivers["c0001"].procs.values()
    return c, proc.config["args"][0]


def test_a_task_gets_its_signed_identity_in_env_and_file_and_it_resolves_to_its_job() -> None:
    c, token = _identity_cluster(3)
    files = {path: data for (_, _, path), data in c.alloc_dirs["c0001"].files.items()}
    assert files["t/secrets/nomad_token"] == token.encode()
    state = c.checker.replica
    assert len(state.tables[root_keys.TABLE]) == 1  # the first identity made the keyring's key
    claims = verify(token, state.tables[root_keys.TABLE], c.sched.now)
    (alloc,) = c.allocs("web")
    assert claims["nomad_allocation_id"] == alloc["ID"] and claims["nomad_task"] == "t"
    assert claims["sub"] == "global:default:web:g:t:default"
    why, got = workload_claims(state, token, c.sched.now)
    assert why == "" and got["nomad_group"] == "g"
    c.stop_job("web")
    end = c.sched.now + 60
    while workload_claims(c.checker.replica, token, c.sched.now)[0] != "allocation is terminal":
        assert c.sched.now < end
        c.run(0.5)


def test_the_keyring_and_identities_are_the_seeds_alone_in_the_simulator() -> None:
    """The key comes from the env's RNG and the times from its clock: one seed, one token."""
    assert _identity_cluster(5)[1] == _identity_cluster(5)[1] != _identity_cluster(6)[1]


def test_a_new_identity_block_replaces_the_allocation_as_nomads_tasks_updated_does() -> None:
    from actors.scheduler.job import canonical_job, update_digest

    def job(**task_extra: object) -> dict:
        task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "x"}, **task_extra}
        return canonical_job({"ID": "j", "Type": "service", "TaskGroups": [{"Name": "g", "Count": 1,
                                                                            "Tasks": [task]}]})

    plain = update_digest(job(), "g")
    assert update_digest(job(), "g") == plain
    assert update_digest(job(Identity={"Env": True}), "g") != plain
    assert update_digest(job(Identity={"Env": True}), "g") == update_digest(job(Identity={"Env": True}), "g")
