"""The operator's root keyring: rotate (a new active key; the old ones kept, inactive, verifying what they
signed and published in the JWKS), remove (Nomad's refusals: unknown key, the active key, a key in use
without force), and ``nomad operator root keyring list|rotate|remove`` (Nomad's output)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from actors.state import root_keys
from actors.state.store import StateStore, command
from actors.workload_identity import claims_for, jwks, sign, verify
from runtime import cli, cli_root_keyring

pytestmark = pytest.mark.timeout(60)

IDENTITY_JOB = {"ID": "web", "Region": "global", "TaskGroups": [
    {"Name": "g", "Tasks": [{"Name": "t", "Identity": {"Env": True}}]}]}


def new_key(seed: int, when: float) -> dict[str, Any]:
    return root_keys.new_key(random.Random(seed), when)


def test_rotation_keeps_the_old_key_to_verify_and_publish_and_makes_the_new_one_sign() -> None:
    st = StateStore()
    first, second = new_key(1, 5.0), new_key(2, 6.0)
    st.apply(1, command("root_key_create", **first))
    old = root_keys.active(st.tables)
    token = sign(old, claims_for({"ID": "a1", "JobID": "web", "TaskGroup": "g", "Job": IDENTITY_JOB}, "t",
                                 100.0, "j"))
    rotated = st.apply(2, command("root_key_rotate", **second))
    assert rotated == {"ok": True, "index": 2, "KeyID": second["key_id"]}
    assert root_keys.active(st.tables)["KeyID"] == second["key_id"]
    metas = {k["KeyID"]: root_keys.meta(k) for k in st.tables[root_keys.TABLE].values()}
    assert metas[first["key_id"]] == {"KeyID": first["key_id"], "Algorithm": "eddsa",
                                      "CreateTime": 5_000_000_000, "CreateIndex": 1, "ModifyIndex": 2,
                                      "State": "inactive", "PublishTime": 0}
    assert metas[second["key_id"]]["State"] == "active"
    assert verify(token, st.tables[root_keys.TABLE], 100.0)["nomad_job_id"] == "web"
    assert sorted(k["kid"] for k in jwks(st.tables)["keys"]) == sorted(metas)
    # root_key_create (the first identity's) leaves a rotated keyring alone
    assert st.apply(3, command("root_key_create", **new_key(3, 7.0)))["created"] is False
    assert st.apply(4, command("root_key_rotate", **second))["ok"] is False  # the same key twice
    assert st.apply(5, command("root_key_rotate", key_id="x", seed="y", create_time=1))["ok"] is False


def test_removing_a_key_refuses_the_active_one_an_unknown_one_and_one_in_use_without_force() -> None:
    st = StateStore()
    first, second = new_key(1, 5.0), new_key(2, 6.0)
    st.apply(1, command("root_key_create", **first))
    st.tables["allocs"]["a1"] = {"ID": "a1", "JobID": "web", "TaskGroup": "g", "Job": IDENTITY_JOB,
                                 "ClientStatus": "running", "CreateIndex": 1}
    assert st.apply(2, command("root_key_delete", key_id=first["key_id"])) == {
        "ok": False, "error": "active root key cannot be deleted - call rotate first", "code": 500}
    st.apply(3, command("root_key_rotate", **second))
    assert st.apply(4, command("root_key_delete", key_id="nope"))["error"] == "root key not found"
    assert st.apply(5, command("root_key_delete", key_id=first["key_id"]))["error"] == \
        "root key in use, cannot delete"
    st.tables["allocs"]["a1"]["ClientStatus"] = "complete"  # its identity is worthless now
    assert st.apply(6, command("root_key_delete", key_id=first["key_id"]))["ok"]
    assert list(st.tables[root_keys.TABLE]) == [second["key_id"]]


def test_force_removes_a_key_in_use_and_its_tokens_stop_verifying() -> None:
    st = StateStore()
    first, second = new_key(1, 5.0), new_key(2, 6.0)
    st.apply(1, command("root_key_create", **first))
    st.tables["allocs"]["a1"] = {"ID": "a1", "JobID": "web", "TaskGroup": "g", "Job": IDENTITY_JOB,
                                 "ClientStatus": "running", "CreateIndex": 1}
    token = sign(root_keys.active(st.tables), claims_for(st.tables["allocs"]["a1"], "t", 100.0, "j"))
    st.apply(2, command("root_key_rotate", **second))
    assert st.apply(3, command("root_key_delete", key_id=first["key_id"], force=True))["ok"]
    with pytest.raises(Exception, match="no root key"):
        verify(token, st.tables[root_keys.TABLE], 100.0)
    restored = StateStore()
    restored.restore(st.snapshot(), 3)
    assert list(restored.tables[root_keys.TABLE]) == [second["key_id"]]


class Api:
    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, addr: str, method: str, path: str, body: Any = None, **query: Any) -> Any:
        self.calls.append((method, path, query))
        got = self.answers[(method, path)]
        if isinstance(got, Exception):
            raise got
        return got


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


KEYS = [{"KeyID": "0e1c8d4a-5f2b-4c3d-9e8f-7a6b5c4d3e2f", "Algorithm": "eddsa",
         "CreateTime": 1_700_000_000_000_000_000, "State": "inactive", "PublishTime": 0},
        {"KeyID": "9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", "Algorithm": "eddsa",
         "CreateTime": 1_700_000_100_000_000_000, "State": "active", "PublishTime": 0}]


def test_the_cli_lists_rotates_and_removes_keys(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TZ", "UTC")
    api = Api({("GET", "/v1/operator/keyring/keys"): KEYS,
               ("PUT", "/v1/operator/keyring/rotate"): {"Key": KEYS[1], "Index": 9},
               ("DELETE", f"/v1/operator/keyring/key/{KEYS[0]['KeyID']}"): {"Index": 10}})
    monkeypatch.setattr(cli_root_keyring, "request", api)
    code, out, _ = run(capsys, "operator", "root", "keyring", "list")
    assert code == 0 and out.splitlines() == [
        "Key       State     Create Time           Publish Time",
        "0e1c8d4a  inactive  2023-11-14T22:13:20Z",
        "9a8b7c6d  active    2023-11-14T22:15:00Z"]
    assert run(capsys, "operator", "root", "keyring", "list", "-verbose")[1].splitlines()[2].startswith(
        KEYS[1]["KeyID"] + "  active")
    assert run(capsys, "operator", "root", "keyring", "rotate")[2].startswith(
        'One of "-now" or "-prepublish" must be used.')
    code, out, _ = run(capsys, "operator", "root", "keyring", "rotate", "-now")
    assert code == 0 and out.splitlines()[1] == "9a8b7c6d  active  2023-11-14T22:15:00Z"
    run(capsys, "operator", "root", "keyring", "rotate", "-now", "-full")
    assert api.calls[-1] == ("PUT", "/v1/operator/keyring/rotate", {"full": "true"})
    code, out, _ = run(capsys, "operator", "root", "keyring", "remove", "0E1C")  # a prefix, any case
    assert (code, out) == (0, f"Removed encryption key {KEYS[0]['KeyID']}\n")
    assert api.calls[-1] == ("DELETE", f"/v1/operator/keyring/key/{KEYS[0]['KeyID']}", {})
    run(capsys, "operator", "root", "keyring", "remove", "-force", KEYS[0]["KeyID"])
    assert api.calls[-1][2] == {"force": "true"}
    assert run(capsys, "operator", "root", "keyring", "remove", "ff")[2] == \
        'No encryption key(s) with prefix or ID "ff" found\n'
    assert run(capsys, "operator", "root", "keyring", "remove")[2].startswith(
        "This command requires one argument: <key ID>")
    twin = {**KEYS[1], "KeyID": "0e1d" + KEYS[1]["KeyID"][4:]}
    api.answers[("GET", "/v1/operator/keyring/keys")] = [KEYS[0], twin]
    assert run(capsys, "operator", "root", "keyring", "remove", "0e1")[2].startswith(
        "Prefix matched multiple keys\n\nKey")
    api.answers[("DELETE", f"/v1/operator/keyring/key/{KEYS[0]['KeyID']}")] = cli.ApiError(
        "Unexpected response code: 500 (root key in use, cannot delete)")
    assert run(capsys, "operator", "root", "keyring", "remove", KEYS[0]["KeyID"])[2] == \
        "error: Unexpected response code: 500 (root key in use, cannot delete)\n"
