"""review17: defects found reviewing the ACL and workload identity code merged from widpolicy/endpoints."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from actors.http_search import _fuzzy_allowed, fuzzy_query
from actors.workload_identity import workload_acl

CLAIMS = {"nomad_namespace": "default", "nomad_job_id": "web", "nomad_group": "g", "nomad_task": "t",
          "nomad_allocation_id": "a1"}


def _state_with_variables(*paths: str) -> Any:
    tables = {"jobs": {}, "allocs": {}, "nodes": {}, "evals": {}, "deployments": {}, "scaling_policies": {},
              "node_pools": {},
              "variables": {f"default/{p}": {"Namespace": "default", "Path": p} for p in paths}}
    return SimpleNamespace(tables=tables, table_index={"variables": 3})


def test_a_workload_identity_cannot_fuzzy_search_other_jobs_variable_paths():
    acl = workload_acl(CLAIMS, "POST", "/v1/search/fuzzy")
    # The implicit policy reads its own job's variables only ...
    assert acl.allow_variable("default", "nomad/jobs/web", "read")
    assert not acl.allow_variable("default", "nomad/jobs/db/password", "list")
    # ... yet the handler lets it search the variables context of its namespace, and every path there
    # (other jobs' and any secret-named path) comes back.
    st = _state_with_variables("nomad/jobs/db/password", "prod/secret-dbpass", "nomad/jobs/web")
    allowed = _fuzzy_allowed(acl, "default", "vars")
    found: list[str] = []
    if allowed:
        matches, _, _ = fuzzy_query("s", "", ("vars",), (), "default", acl)(st)
        found = [m["ID"] for m in matches.get("vars", [])]
    assert "nomad/jobs/db/password" not in found and "prod/secret-dbpass" not in found
    # With namespace=* too (each row kept by allow_variable_search of its namespace).
    matches, _, _ = fuzzy_query("s", "", ("vars",), (), "*", acl)(st)
    assert [m["ID"] for m in matches.get("vars", [])
            if m["ID"] != "nomad/jobs/web"] == []
