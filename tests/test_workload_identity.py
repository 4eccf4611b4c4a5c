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
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.hashes import SHA256

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


_KEYS: dict[int, dict[str, Any]] = {}


def key(seed: int = 1, rsa: bool = True) -> dict[str, Any]:
    """A root key record (with its RSA key, as a new one has; without: one made before RS256 signing)."""
    if seed not in _KEYS:  # an RSA key drawn from a seeded RNG takes a few tenths of a second
        _KEYS[seed] = root_keys.new_key(random.Random(seed), 1_700_000_000.0)
    fields = _KEYS[seed]
    rec = {"KeyID": fields["key_id"], "Seed": fields["seed"], "State": "active", "Algorithm": "eddsa"}
    return {**rec, "RSAKey": fields["rsa_key"]} if rsa else rec


ALLOC = {"ID": "a1", "Namespace": "default", "JobID": "web", "TaskGroup": "g",
         "Job": {"ID": "web", "Region": "global"}, "ClientStatus": "running"}


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_a_signed_identity_verifies_and_carries_nomads_claims() -> None:
    k = key()
    token = sign(k, claims_for(ALLOC, "t", 1_700_000_000.5, "jti-1"))
    header = json.loads(_unb64(token.split(".")[0]))
    assert header == {"alg": "RS256", "kid": k["KeyID"], "typ": "JWT"}  # Nomad 1.7+'s default
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
    assert {f: jwk[f] for f in ("kty", "kid", "alg", "use")} == {
        "kty": "RSA", "kid": k["KeyID"], "alg": "RS256", "use": "sig"}
    token = sign(k, claims_for(ALLOC, "t", 100.0, "j"))
    head, body, sig = token.split(".")
    public = RSAPublicNumbers(int.from_bytes(_unb64(jwk["e"]), "big"),
                              int.from_bytes(_unb64(jwk["n"]), "big")).public_key()
    assert public.key_size == 2048  # Nomad's RSA key size
    public.verify(_unb64(sig), f"{head}.{body}".encode(), PKCS1v15(), SHA256())
    assert jwks({}) == {"keys": []}


def test_a_key_made_before_rs256_keeps_signing_and_verifying_eddsa() -> None:
    """A root key from an older log or snapshot has no RSA key: it signs EdDSA, the JWKS publishes it as
    an Ed25519 key, and a token may not claim the other algorithm for a key (no algorithm confusion)."""
    old, new = key(1, rsa=False), key(2)
    keys = {old["KeyID"]: old, new["KeyID"]: new}
    token = sign(old, claims_for(ALLOC, "t", 100.0, "j"))
    assert json.loads(_unb64(token.split(".")[0]))["alg"] == "EdDSA"
    assert verify(token, keys, 100.0)["nomad_task"] == "t"
    assert verify(sign(new, claims_for(ALLOC, "t", 100.0, "j")), keys, 100.0)["nomad_task"] == "t"
    jwk = {j["kid"]: j for j in jwks({root_keys.TABLE: keys})["keys"]}
    assert (jwk[old["KeyID"]]["kty"], jwk[old["KeyID"]]["alg"]) == ("OKP", "EdDSA")
    assert jwk[new["KeyID"]]["kty"] == "RSA"
    head, body, sig = token.split(".")
    Ed25519PublicKey.from_public_bytes(_unb64(jwk[old["KeyID"]]["x"])).verify(
        _unb64(sig), f"{head}.{body}".encode())
    lying = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": old["KeyID"], "typ": "JWT"})
                                     .encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="algorithm"):
        verify(f"{lying}.{body}.{sig}", keys, 100.0)


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
                     ({"Name": "no spaces"}, 'invalid name "no spaces". Must match regex'),
                     ({"Filepath": "x.jwt"}, "file parameter must be true in order to specify filepath"),
                     ({"Name": "x", "TTL": -1}, "ttl must be >= 0"),
                     ({"Name": "x", "File": True, "Filepath": "../../etc/x"}, "inside the task directory"),
                     ({"Name": "x", "ExtraClaims": ["a"]}, "extra_claims is not supported"),
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


# ---------------------------------------------------------------- named identities (Nomad 1.7+)

NAMED_JOB = '''job "web" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      identity {
        env = true
      }
      identity {
        name          = "vault_default"
        aud           = ["vault.io"]
        file          = true
        filepath      = "local/vault.jwt"
        ttl           = "1h"
        change_mode   = "signal"
        change_signal = "sighup"
      }
      identity {
        name = "api"
        aud  = ["api.example"]
        env  = true
        ttl  = "10m"
        change_mode = "restart"
      }
    }
  }
}'''


def test_named_identities_parse_from_hcl_and_json_as_nomads() -> None:
    task = canonical_job(parse_hcl_job(NAMED_JOB))["TaskGroups"][0]["Tasks"][0]
    assert task["Identity"]["Name"] == "default" and task["Identity"]["Env"] is True
    assert task["Identities"] == [
        {"Name": "vault_default", "Audience": ["vault.io"], "ChangeMode": "signal", "ChangeSignal": "SIGHUP",
         "Env": False, "File": True, "Filepath": "local/vault.jwt", "ServiceName": "",
         "TTL": 3_600_000_000_000, "ExtraClaims": None},
        {"Name": "api", "Audience": ["api.example"], "ChangeMode": "restart", "ChangeSignal": "", "Env": True,
         "File": False, "Filepath": "", "ServiceName": "", "TTL": 600_000_000_000, "ExtraClaims": None}]
    with pytest.raises(HclJobError, match="Extraneous label for identity"):
        parse_hcl_job('job "w" {\n group "g" {\n task "t" {\n driver = "raw_exec"\n'
                      ' identity "api" {\n env = true\n }\n }\n }\n}')
    # JSON: a default identity listed in Identities moves to Identity (Nomad's Task.Canonicalize).
    job = {"ID": "j", "Type": "batch", "TaskGroups": [{"Name": "g", "Tasks": [{
        "Name": "t", "Driver": "raw_exec", "Config": {"command": "x"},
        "Identities": [{"Name": "default", "File": True}, {"Name": "a", "Audience": ["x"], "TTL": 10**9}]}]}]}
    task = canonical_job(job)["TaskGroups"][0]["Tasks"][0]
    assert task["Identity"]["File"] is True and [w["Name"] for w in task["Identities"]] == ["a"]
    from actors.scheduler.job import JobError

    for ids, why in (([{"File": True}, {"Name": "default"}], "Duplicate default identities found"),
                     ([{"Name": "a"}, {"Name": "a"}], 'Duplicate identity "a" found'),
                     ([{"Name": "a", "ChangeMode": "signal"}],
                      'Identity "a" is invalid: change_signal must')):
        bad = {**job, "TaskGroups": [{"Name": "g", "Tasks": [{**job["TaskGroups"][0]["Tasks"][0],
                                                              "Identities": ids}]}]}
        with pytest.raises(JobError, match=why):
            canonical_job(bad)


def test_named_identities_warn_as_nomads_job_warnings() -> None:
    from actors.workload_identity import identity_warnings

    assert identity_warnings(canonical_job(parse_hcl_job(NAMED_JOB))) == []  # an audience and a TTL each
    job = canonical_job({"ID": "j", "TaskGroups": [{"Name": "g", "Tasks": [{
        "Name": "t", "Driver": "raw_exec", "Config": {"command": "x"},
        "Identities": [{"Name": "a", "Env": True}]}]}]})
    (warning,) = identity_warnings(job)
    assert warning.startswith('Group "g" has warnings: 1 error occurred:\n\t* Task "t" has warnings: 3 '
                              "errors")
    for text in ("Identity[a] identities without an audience are insecure",
                 "Identity[a] identities without an expiration are insecure",
                 'Identity[a] using env=true without change_mode="restart" may result in task not getting '
                 "updated identity"):
        assert text in warning


def test_a_named_identity_is_signed_with_its_audience_subject_and_expiry() -> None:
    k = key()
    wid = {"Name": "vault_default", "Audience": ["vault.io"], "TTL": 3_600_000_000_000}
    claims = verify(sign(k, claims_for(ALLOC, "t", 1_000.5, "j2", wid)), {k["KeyID"]: k}, 1_001.0)
    assert claims["aud"] == ["vault.io"] and claims["exp"] == 4_600
    assert claims["sub"] == "global:default:web:g:t:vault_default"
    assert "aud" not in claims_for(ALLOC, "t", 0, "j", {"Name": "x", "Audience": []})  # go-jose's omitempty
    token = sign(k, claims_for(ALLOC, "t", 1_000.0, "j", {**wid, "TTL": 10 * 10**9}))
    assert verify(token, {k["KeyID"]: k}, 1_010.0 + 59)["exp"] == 1_010  # go-jose's one-minute leeway
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, {k["KeyID"]: k}, 1_010.0 + 61)


def test_the_servers_sign_a_tasks_named_identities_for_its_node() -> None:
    from actors.workload_identity import sign_identities

    st = StateStore()
    fields = _KEYS.get(1) or root_keys.new_key(random.Random(1), 5.0)
    st.apply(1, command("root_key_create", **fields))
    job = canonical_job(parse_hcl_job(NAMED_JOB))
    st.tables["nodes"]["n1"] = {"ID": "n1", "SecretID": "s"}
    st.tables["allocs"]["a1"] = {**ALLOC, "NodeID": "n1", "Job": job}
    err, tokens, named = sign_identities(st, "n1", "s", "a1", ("t",), ("j1",), 2_000.0,
                                         (("t", "vault_default"), ("t", "api")), ("j2", "j3"))
    assert err == "" and [t for t, _ in tokens] == ["t"]
    assert [(t, n, exp) for t, n, _, exp in named] == [("t", "vault_default", 5_600), ("t", "api", 2_600)]
    keys = st.tables[root_keys.TABLE]
    assert verify(named[1][2], keys, 2_000.0)["aud"] == ["api.example"]
    assert sign_identities(st, "n1", "s", "a1", (), (), 2_000.0, (("t", "nope"),), ("j",))[0] == \
        "identity not found: t/nope"
    # A named identity's token is a Nomad workload identity as well (Nomad's VerifyClaim does not look
    # at the audience), as long as it has not expired.
    assert workload_claims(st, named[1][2], 2_000.0)[0] == ""
    assert workload_claims(st, named[1][2], 2_600.0 + 61)[0] == "token is expired"


def test_named_identities_diff_and_replace_the_allocation() -> None:
    from actors.scheduler.job import update_digest
    from actors.scheduler.jobdiff import job_diff

    old = canonical_job(parse_hcl_job(NAMED_JOB))
    new = canonical_job(parse_hcl_job(NAMED_JOB.replace('ttl  = "10m"', 'ttl  = "20m"')))
    assert update_digest(old, "g") != update_digest(new, "g")  # Nomad's tasksUpdated: "task identity"
    assert update_digest(old, "g") == update_digest(canonical_job(parse_hcl_job(NAMED_JOB)), "g")
    (task,) = job_diff(old, new, contextual=False)["TaskGroups"][0]["Tasks"]
    (ident,) = task["Objects"]
    assert ident["Name"] == "Identity" and ident["Type"] == "Edited"
    assert [(f["Name"], f["Old"], f["New"]) for f in ident["Fields"]] == [
        ("TTL", "600000000000", "1200000000000")]


# ---------------------------------------------------------------- named identities in the simulator

def _named_cluster(seed: int, wid: dict[str, Any], **config: Any) -> tuple[Any, Any]:
    """A one-server, one-client simulated cluster running a task with the named identity *wid* (renewals
    no sooner than 1 s), and its SimDriver."""
    from actors.client.alloc_runner import AllocRunnerConfig
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    c = JobCluster(seed, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1),
                                          runner=AllocRunnerConfig(identity_renew_min_wait_s=1.0)))
    c.run(30.0)
    j = sim_job(count=1)
    task = j["TaskGroups"][0]["Tasks"][0]
    task["Identities"] = [wid]
    task["Config"].update(args=[f"${{NOMAD_TOKEN_{wid['Name']}}}"], **config)
    c.register(canonical_job(j))
    driver = c.drivers["c0001"]
    end = c.sched.now + 60
    while not driver.procs:
        assert c.sched.now < end
        c.run(0.5)
    return c, driver


def _file(c: Any, path: str) -> str:
    return next(data for (_, _, p), data in c.alloc_dirs["c0001"].files.items() if p == path).decode()


def _task_events(c: Any) -> list[tuple[str, str]]:
    (alloc,) = c.allocs("web")
    return [(e["Type"], e.get("DisplayMessage") or e.get("Message") or "")
            for e in ((alloc.get("TaskStates") or {}).get("t") or {}).get("Events") or ()]


def test_a_named_identity_is_delivered_and_renewed_before_it_expires_with_its_signal() -> None:
    c, driver = _named_cluster(7, {"Name": "api", "Audience": ["api.example"], "Env": True, "File": True,
                                   "TTL": 10 * 10**9, "ChangeMode": "signal", "ChangeSignal": "SIGHUP"},
                               ignore_signals=True)
    (proc,) = driver.procs.values()
    first = proc.config["args"][0]  # NOMAD_TOKEN_api
    assert _file(c, "t/secrets/nomad_api.jwt") == first
    keys = c.checker.replica.tables[root_keys.TABLE]
    claims = verify(first, keys, c.sched.now)
    assert claims["aud"] == ["api.example"] and claims["sub"].endswith(":t:api")
    assert claims["exp"] == claims["iat"] + 10
    seen = {first}
    end = c.sched.now + 30
    while c.sched.now < end:  # the file always holds a token that has not expired
        c.run(0.5)
        token = _file(c, "t/secrets/nomad_api.jwt")
        assert verify(token, keys, c.sched.now)["exp"] > c.sched.now
        seen.add(token)
    assert len(seen) >= 5  # renewed half-way through each 10 s lifetime
    assert list(driver.procs) == [proc.pid] and proc.signals == ["SIGHUP"] * (len(seen) - 1)
    end = c.sched.now + 30
    while ("Signaling", "Identity[api]: new Identity token acquired") not in _task_events(c):
        assert c.sched.now < end
        c.run(0.5)


def test_a_renewed_identity_with_change_mode_restart_restarts_the_task_with_its_new_token() -> None:
    c, driver = _named_cluster(8, {"Name": "vault_x", "Audience": ["vault.io"], "Env": True, "File": True,
                                   "Filepath": "local/vault.jwt", "TTL": 20 * 10**9, "ChangeMode": "restart"})
    (proc,) = driver.procs.values()
    first = _file(c, "t/local/vault.jwt")
    assert proc.config["args"][0] == first
    end = c.sched.now + 30
    while len(driver.procs) < 2:
        assert c.sched.now < end
        c.run(0.5)
    second = _file(c, "t/local/vault.jwt")
    assert second != first and driver.procs[max(driver.procs)].config["args"][0] == second
    assert proc.signals  # the old one was stopped
    end = c.sched.now + 30
    while ("Restart Signaled", "Identity[vault_x]: new token acquired") not in _task_events(c):
        assert c.sched.now < end
        c.run(0.5)


def test_a_client_restart_keeps_renewing_a_running_tasks_identity() -> None:
    """Re-attached after its client restarts, the task's expiring identity is signed again and renewed
    (Nomad's widmgr restores and renews), with no change_mode for the re-delivery itself."""
    c, driver = _named_cluster(9, {"Name": "api", "Audience": ["api.example"], "File": True,
                                   "TTL": 10 * 10**9, "ChangeMode": "signal", "ChangeSignal": "SIGHUP"},
                               ignore_signals=True)
    (proc,) = driver.procs.values()
    c.crash("c0001")
    c.run(1.0)
    c.restart("c0001")
    keys = c.checker.replica.tables[root_keys.TABLE]
    seen = set()
    end = c.sched.now + 30
    while c.sched.now < end:
        c.run(0.5)
        token = _file(c, "t/secrets/nomad_api.jwt")
        seen.add(token)
    assert verify(token, keys, c.sched.now)["exp"] > c.sched.now  # still renewed
    assert len(seen) >= 4 and list(driver.procs) == [proc.pid]  # the same process throughout
    assert proc.signals and len(proc.signals) < len(seen) + 1
