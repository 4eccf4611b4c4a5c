"""review16: workload identity signing key generation."""

from __future__ import annotations

import random

import pytest

from actors.state import root_keys
from runtime.prod import ProdNode


def _untemper(y: int) -> int:
    """Invert MT19937's output tempering (one 32-bit word back to its state word)."""
    y ^= y >> 18
    y ^= (y << 15) & 0xEFC60000
    t = y
    for _ in range(5):
        t = y ^ ((t << 7) & 0x9D2C5680)
    y = t
    t = y
    for _ in range(3):
        t = y ^ (t >> 11)
    return t & 0xFFFFFFFF


def test_the_production_root_key_is_not_predictable_from_the_rngs_other_outputs() -> None:
    env = ProdNode("review16")
    seen = [env.rng.getrandbits(32) for _ in range(624)]  # what IDs drawn from the same RNG reveal
    # The servers draw a root key (and identities' jti) from secret_rng: the OS's CSPRNG in production.
    assert isinstance(env.secret_rng, random.SystemRandom)
    key = root_keys.new_key(env.secret_rng, 0.0)
    clone = random.Random()
    clone.setstate((3, (*(_untemper(w) for w in seen), 624), None))
    predicted = root_keys.new_key(clone, 0.0)
    assert predicted["seed"] != key["seed"]


def test_a_client_only_agent_lets_the_servers_judge_a_workload_identity(monkeypatch) -> None:
    import io
    import json
    from types import SimpleNamespace

    from actors import http_acl
    from actors.http_api import CodedError, Request, Response
    from actors.workload_identity import claims_for, sign

    k = root_keys.new_key(random.Random(1), 0.0)
    rec = {"KeyID": k["key_id"], "Seed": k["seed"], "State": "active"}
    alloc = {"ID": "a1", "Namespace": "default", "JobID": "web", "TaskGroup": "g", "Job": {"ID": "web"}}
    jwt = sign(rec, claims_for(alloc, "t", 0.0, "jti"))
    stand_in = {"AccessorID": "", "Name": "workload:x", "Type": "client", "Policies": [], "Global": False}

    def ask_server(api, path, secret):  # what a server would answer the client's questions
        if path == "/v1/acl/token/self":
            return Response(200, json.dumps(stand_in).encode(), "application/json")
        return Response(404, b"not found", "text/plain")

    monkeypatch.setattr(http_acl, "_ask_server", ask_server)
    for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
        cache.clear()
    env = SimpleNamespace(lookup=lambda name: None, node="client-1")
    api = SimpleNamespace(env=env, ask_timeout_s=1.0, ctx=SimpleNamespace(
        acl_enabled=True, acl_token_ttl_s=30.0, acl_policy_ttl_s=30.0, acl_role_ttl_s=30.0))
    def guard(path: str, token: str = jwt) -> None:
        environ = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0", "HTTP_X_NOMAD_TOKEN": token}
        http_acl.acl_guard(Request(method="GET", path=path, query={}, url=path, environ=environ), api)

    try:
        guard("/v1/var/nomad/jobs/web")  # its own job's variables: the implicit workload policy
        with pytest.raises(CodedError) as e:
            guard("/v1/var/nomad/jobs/other")  # another job's: refused
        assert e.value.code == 403
        refused = jwt[:-4] + "AAAA"  # a forged signature: the server says so, the client refuses
        stand_in.clear()

        def ask_refusing(api, path, secret):
            return Response(403, b"failed to verify workload identity: invalid signature", "text/plain")

        monkeypatch.setattr(http_acl, "_ask_server", ask_refusing)
        with pytest.raises(CodedError) as e:
            guard("/v1/var/nomad/jobs/web", refused)
        assert e.value.code == 403 and "failed to verify" in e.value.message
    finally:
        for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
            cache.clear()


def test_the_token_file_is_readable_by_the_tasks_user() -> None:
    from actors.workload_identity import canonical_job
    from sim.client_cluster import ClusterConfig
    from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

    c = JobCluster(5, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1)))
    c.run(30.0)
    j = sim_job(count=1)
    task = j["TaskGroups"][0]["Tasks"][0]
    task["Identity"] = {"Env": False, "File": True}
    task["User"] = "nobody"
    c.register(canonical_job(j))
    end = c.sched.now + 60
    while not c.drivers["c0001"].procs:
        assert c.sched.now < end
        c.run(0.5)
    dirs = c.alloc_dirs["c0001"]
    (alloc_id,) = {a for (a, path) in dirs.perms if path == "t/secrets/nomad_token"}
    key = (alloc_id, "t/secrets/nomad_token")
    owner = dirs.owners.get(key, (-1, -1))
    assert owner != (-1, -1) or dirs.perms[key] & 0o004, (owner, oct(dirs.perms[key]))
