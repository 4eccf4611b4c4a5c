"""Review 18: defects in variable locks (actors/http_variables.py, actors/state/variables.py)."""

from __future__ import annotations

import json

import pytest

from actors.state.store import StateStore, command
from tests.test_acl_roles import _token
from tests.test_acl_roles import call as acl_call


def _cluster() -> tuple[StateStore, str]:
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token=_token("root", "root-secret", "management"), now=1.0))
    rules = 'namespace "default" { variables { path "app/*" { capabilities = ["write", "read"] } } }'
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "vars", "Rules": rules}]))
    st.apply(3, command("acl_token_upsert", tokens=[_token("dev", "dev-secret", policies=("vars",)),
                                                    _token("other", "other-secret", policies=("vars",))]))
    code, held = acl_call(st, "PUT", "/v1/var/app/lock?lock-acquire", "dev-secret", {"Items": {"k": "v"}})
    assert code == 200
    return st, held["Lock"]["ID"]


@pytest.mark.parametrize("method,body", [("PUT", {"Items": {"k": "x"}}), ("DELETE", None)])
def test_a_cas_conflict_does_not_hand_the_lock_id_to_another_token(method, body):
    st, lock_id = _cluster()
    code, out = acl_call(st, method, "/v1/var/app/lock?cas=999", "other-secret", body)
    assert code == 409
    assert lock_id not in (out.decode() if isinstance(out, bytes) else json.dumps(out))


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_a_non_finite_lock_ttl_is_a_400_not_a_crash(value):
    st, _ = _cluster()
    try:
        code, _out = acl_call(st, "PUT", "/v1/var/app/other?lock-acquire", "root-secret",
                              {"Lock": {"TTL": value}})
    except (OverflowError, ValueError) as e:
        pytest.fail(f"the handler raised {type(e).__name__}: {e}")
    assert code == 400
