"""ACL token expiration (Nomad 1.4): the state commands, the HTTP endpoints and the CLI, in process.

The reference is Nomad's ``nomad/structs/acl.go`` (ACLToken Canonicalize,
Validate, IsExpired and its JSON), ``nomad/acl_endpoint.go`` (upsertTokens),
``nomad/auth`` (an expired token is ``ACL token expired``, which the HTTP
layer answers 500), ``nomad/core_sched.go`` (expiredACLTokenGC) and
``command/acl_bootstrap.go`` / ``acl_token_list.go`` (the CLI's output).
The clock is the edge's ``wall_time``, replaced here by a settable one.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest

from actors import http_acl
from actors.http_api import Answer, CodedError, Request, find_route
from actors.state.acl_ops import expired_token_candidates, token_expired
from actors.state.store import StateStore, command
from tests.one_server_api import _Env

T0 = 1_800_000_000.0  # the test clock's start (2027-01-15T08:00:00Z)
HOUR = 3600.0


def _token(accessor: str, *, created: float = T0, expires: float | None = None, ttl_ns: int = 0,
           kind: str = "management") -> dict:
    t = {"AccessorID": accessor, "SecretID": f"{accessor}-secret", "Name": accessor, "Type": kind,
         "Policies": [], "Global": False, "CreateTime": created}
    if expires is not None:
        t["ExpirationTime"] = expires
    if ttl_ns:
        t["ExpirationTTL"] = ttl_ns
    return t


# ---------------------------------------------------------------- the state commands


def test_a_token_is_expired_only_past_its_expiration_time():
    assert not token_expired(_token("a"), T0 + 10 * HOUR)  # no expiry: never
    t = _token("a", expires=T0 + 60)
    assert not token_expired(t, T0 + 59) and not token_expired(t, T0 + 60)
    assert token_expired(t, T0 + 60.001)


def test_gc_candidates_are_expired_and_created_before_the_cutoff_soonest_expiry_first():
    st = StateStore()
    tokens = [_token("late", expires=T0 + 300), _token("early", expires=T0 + 120),
              _token("young", created=T0 + 50, expires=T0 + 110), _token("live", expires=T0 + 9 * HOUR),
              _token("never")]
    assert st.apply(1, command("acl_token_upsert", tokens=tokens))["ok"]
    now = T0 + 400
    assert expired_token_candidates(st, now, cutoff=T0 + 10) == ["early", "late"]
    assert expired_token_candidates(st, now, cutoff=T0 + 60) == ["young", "early", "late"]
    assert expired_token_candidates(st, now, cutoff=T0 + 60, limit=1) == ["young"]


def test_acl_token_gc_checks_again_and_skips_tokens_gone_or_not_eligible():
    st = StateStore()
    st.apply(1, command("acl_token_upsert", tokens=[_token("a", expires=T0 + 60),
                                                    _token("b", expires=T0 + 600)]))
    st.apply(2, command("acl_token_delete", accessor_ids=["a"]))  # deleted by an operator meanwhile
    r = st.apply(3, command("acl_token_gc", accessor_ids=["a", "b"], now=T0 + 120, cutoff=T0 + 100))
    assert r == {"ok": True, "index": 3, "acl_tokens": []}  # "b" not yet expired at the command's now
    assert st.table_index["acl_tokens"] == 2
    r = st.apply(4, command("acl_token_gc", accessor_ids=["b"], now=T0 + 601, cutoff=T0 + 100))
    assert r["acl_tokens"] == ["b"] and st.tables["acl_tokens"] == {}


def test_an_update_keeps_the_expiry_and_refuses_to_change_it():
    st = StateStore()
    st.apply(1, command("acl_token_upsert", tokens=[_token("a", expires=T0 + HOUR, ttl_ns=int(HOUR * 1e9))]))
    renamed = {k: v for k, v in _token("a", ttl_ns=int(HOUR * 1e9)).items() if k != "SecretID"}
    assert st.apply(2, command("acl_token_upsert", tokens=[{**renamed, "Name": "b"}]))["ok"]
    t = st.tables["acl_tokens"]["a"]
    assert (t["Name"], t["ExpirationTime"], t["ExpirationTTL"]) == ("b", T0 + HOUR, int(HOUR * 1e9))
    r = st.apply(3, command("acl_token_upsert", tokens=[{**renamed, "ExpirationTTL": 60 * 10**9,
                                                         "ExpirationTime": T0 + 5}]))
    assert r == {"ok": False, "code": 400, "error": "token 0 invalid: 2 errors occurred:\n\t* cannot update "
                 "expiration TTL\n\t* cannot update expiration time\n\n"}
    assert st.tables["acl_tokens"]["a"]["ModifyIndex"] == 2


# ---------------------------------------------------------------- the HTTP endpoints


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(http_acl, "wall_time", c)
    return c


@pytest.fixture
def st() -> StateStore:
    st = StateStore()
    root = {k: v for k, v in _token("root").items() if k != "CreateTime"}
    st.apply(1, command("acl_bootstrap", token={**root, "SecretID": "root-secret"}, now=1.0))
    st.apply(2, command("acl_policy_upsert",
                        policies=[{"Name": "node-read", "Rules": 'node { policy = "read" }'}]))
    return st


def _api(state: StateStore, min_s: float = 60.0, max_s: float = 24 * HOUR) -> Any:
    return SimpleNamespace(env=_Env(state), ask_timeout_s=1.0, ctx=SimpleNamespace(
        acl_enabled=True, acl_token_min_expiration_ttl_s=min_s, acl_token_max_expiration_ttl_s=max_s),
        ask=lambda actor, what: {"role": "leader", "leader": "me", "last_contact": 0})


def call(state: StateStore, method: str, path: str, token: str = "", body: Any = None,
         **bounds: float) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "REQUEST_METHOD": method}
    if token:
        environ["HTTP_X_NOMAD_TOKEN"] = token
    req = Request(method=method, path=path, query={}, url=path, environ=environ)
    api = _api(state, **bounds)
    try:
        http_acl.acl_guard(req, api)
        out = find_route(path)(req, api)
    except CodedError as e:
        return e.code, str(e)
    return 200, out.value if isinstance(out, Answer) else out


def guard(state: StateStore, method: str, path: str, token: str) -> tuple[int, str]:
    """What the token check every request passes answers (200: the handler would run)."""
    environ = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0", "HTTP_X_NOMAD_TOKEN": token}
    try:
        req = Request(method=method, path=path, query={}, url=path, environ=environ)
        http_acl.acl_guard(req, _api(state))
    except CodedError as e:
        return e.code, str(e)
    return 200, ""


def _create(st: StateStore, **fields: Any) -> tuple[int, Any]:
    return call(st, "POST", "/v1/acl/token", "root-secret",
                {"Name": "t", "Type": "client", "Policies": ["node-read"], **fields})


def test_a_ttl_sets_the_expiration_time_and_reads_show_both(st, clock):
    code, token = _create(st, ExpirationTTL="1h")
    assert code == 200, token
    assert token["CreateTime"] == "2027-01-15T08:00:00.000000Z"
    assert (token["ExpirationTTL"], token["ExpirationTime"]) == ("1h0m0s", "2027-01-15T09:00:00.000000Z")
    _, read = call(st, "GET", f"/v1/acl/token/{token['AccessorID']}", "root-secret")
    assert (read["ExpirationTTL"], read["ExpirationTime"]) == ("1h0m0s", "2027-01-15T09:00:00.000000Z")
    _, listed = call(st, "GET", "/v1/acl/tokens", "root-secret")
    stubs = {t["AccessorID"]: t for t in listed}
    assert stubs[token["AccessorID"]]["ExpirationTime"] == "2027-01-15T09:00:00.000000Z"
    assert stubs["root"]["ExpirationTime"] is None and "ExpirationTTL" not in stubs["root"]
    _, root = call(st, "GET", "/v1/acl/token/self", "root-secret")
    assert (root["ExpirationTTL"], root["ExpirationTime"]) == ("", None)  # Go's "" for no TTL


def test_a_ttl_in_nanoseconds_and_an_expiration_time_are_taken_too(st, clock):
    code, token = _create(st, ExpirationTTL=90 * 10**9)  # the api's JSON number form
    assert code == 200 and token["ExpirationTTL"] == "1m30s"
    assert token["ExpirationTime"] == "2027-01-15T08:01:30.000000Z"
    code, token = _create(st, ExpirationTime="2027-01-15T10:30:00.25Z")
    assert code == 200 and token["ExpirationTTL"] == ""
    assert token["ExpirationTime"] == "2027-01-15T10:30:00.250000Z"
    code, token = _create(st, Type="management", Policies=[], ExpirationTTL="2h")  # Nomad lets these expire
    assert code == 200 and token["ExpirationTime"] == "2027-01-15T10:00:00.000000Z"


@pytest.mark.parametrize("fields, bounds, problems", [
    ({"ExpirationTTL": "48h"}, {}, ["expiration time cannot be more than 24h0m0s in the future "
                                    "(was 48h0m0s)"]),
    ({"ExpirationTTL": "30s"}, {}, ["expiration time cannot be less than 1m0s in the future (was 30s)"]),
    ({"ExpirationTTL": "10m"}, {"min_s": 900.0}, ["expiration time cannot be less than 15m0s in the future "
                                                 "(was 10m0s)"]),
    ({"ExpirationTTL": "-1h"}, {}, ["token expiration TTL '-1h0m0s' should not be negative",
                                    "expiration time cannot be before create time",
                                    "expiration time cannot be less than 1m0s in the future (was -1h0m0s)"]),
    ({"ExpirationTime": "2027-01-15T07:00:00Z"}, {}, [
        "expiration time cannot be before create time",
        "expiration time cannot be less than 1m0s in the future (was -1h0m0s)"]),
    ({"ExpirationTTL": "1h", "Policies": []}, {}, ["client token missing policies or roles"]),
    ({"ExpirationTTL": "2s", "Type": "other"}, {}, ["token type must be client or management",
                                                    "expiration time cannot be less than 1m0s in the future "
                                                    "(was 2s)"]),
])
def test_expiry_outside_the_servers_bounds_is_refused_with_nomads_messages(st, clock, fields, bounds,
                                                                           problems):
    code, error = call(st, "POST", "/v1/acl/token", "root-secret",
                       {"Name": "t", "Type": "client", "Policies": ["node-read"], **fields}, **bounds)
    plural = "s" if len(problems) > 1 else ""
    points = "\n\t".join(f"* {p}" for p in problems)
    assert (code, error) == (400, f"token 0 invalid: {len(problems)} error{plural} occurred:\n\t{points}\n\n")
    assert sorted(st.tables["acl_tokens"]) == ["root"]


@pytest.mark.parametrize("fields, error", [
    ({"ExpirationTTL": "soon"}, 'time: invalid duration "soon"'),
    ({"ExpirationTTL": True}, 'ExpirationTTL must be a duration string, like "1h", or nanoseconds'),
    ({"ExpirationTime": "tomorrow"}, 'parsing time "tomorrow" as "2006-01-02T15:04:05Z07:00": not an RFC '
                                     "3339 time"),
])
def test_undecodable_expiry_fields_are_refused(st, clock, fields, error):
    assert _create(st, **fields) == (400, error)


def test_an_expired_token_is_refused_on_every_request_until_it_is_collected(st, clock):
    _, token = _create(st, ExpirationTTL="1m")
    secret = token["SecretID"]
    clock.now = T0 + 60  # at its ExpirationTime: still good (Nomad: expired only after it)
    assert call(st, "GET", "/v1/acl/token/self", secret)[0] == 200
    assert guard(st, "GET", "/v1/nodes", secret) == (200, "")
    clock.now = T0 + 61
    # Nomad's RPC handlers answer an expired token "Permission denied" (403); only ACL.WhoAmI and
    # ACL.GetToken, and the agent's own endpoints, hand the expiry on (500).
    assert call(st, "GET", "/v1/acl/token/self", secret) == (500, "ACL token expired")
    assert call(st, "GET", f"/v1/acl/token/{token['AccessorID']}", secret) == (500, "ACL token expired")
    assert call(st, "GET", "/v1/acl/policies", secret) == (403, "Permission denied")
    for method, path in (("GET", "/v1/nodes"), ("GET", "/v1/jobs"), ("PUT", "/v1/jobs")):
        assert guard(st, method, path, secret) == (403, "Permission denied"), path
    assert guard(st, "GET", "/v1/agent/self", secret) == (500, "ACL token expired")
    # The management token can still read it (and see it has expired), and delete it.
    code, read = call(st, "GET", f"/v1/acl/token/{token['AccessorID']}", "root-secret")
    assert code == 200 and read["ExpirationTime"] == "2027-01-15T08:01:00.000000Z"
    st.apply(st.applied_index + 1, command("acl_token_gc", accessor_ids=[token["AccessorID"]],
                                           now=clock.now, cutoff=clock.now))
    assert call(st, "GET", "/v1/acl/token/self", secret) == (403, "Permission denied")


def test_an_expiring_token_round_trips_through_an_update(st, clock):
    """``nomad acl token update`` reads the token and writes it back whole: its expiry must pass."""
    _, token = _create(st, ExpirationTTL="1h")
    clock.now = T0 + 600
    code, updated = call(st, "POST", f"/v1/acl/token/{token['AccessorID']}", "root-secret",
                         {**token, "Name": "renamed"})
    assert code == 200, updated
    assert (updated["Name"], updated["ExpirationTime"], updated["ExpirationTTL"]) == (
        "renamed", token["ExpirationTime"], "1h0m0s")
    code, error = call(st, "POST", f"/v1/acl/token/{token['AccessorID']}", "root-secret",
                       {**token, "ExpirationTTL": "2h"})
    assert (code, error) == (400, "token 0 invalid: 1 error occurred:\n\t* cannot update expiration TTL\n\n")


def test_a_client_agent_refuses_a_cached_token_once_it_has_expired(st, clock, monkeypatch):
    from actors.http_api import Response

    _, token = _create(st, ExpirationTTL="2m")

    def ask_server(api: Any, path: str, secret: str) -> Response:
        code, value = call(st, "GET", path, secret)
        return Response(code, json.dumps(value).encode() if code == 200 else str(value).encode(),
                        "application/json")

    for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
        cache.clear()
    monkeypatch.setattr(http_acl, "_ask_server", ask_server)
    api = SimpleNamespace(ctx=SimpleNamespace(acl_token_ttl_s=3600.0, acl_policy_ttl_s=30.0,
                                              acl_role_ttl_s=30.0))
    assert http_acl._remote_lookup(api, token["SecretID"])[0] == "ok"
    clock.now = T0 + 121  # the cached answer is still fresh (token_ttl 1h), the token is not
    assert http_acl._remote_lookup(api, token["SecretID"])[0] == "expired"
    for cache in (http_acl._remote_tokens, http_acl._remote_roles, http_acl._remote_policies):
        cache.clear()


# ---------------------------------------------------------------- the CLI


def test_cli_token_create_sends_the_ttl_and_prints_the_expiry_time(monkeypatch):
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl
    from runtime.cli import CliError

    sent: list[Any] = []
    answer = {"AccessorID": "acc", "SecretID": "sec", "Name": "ci", "Type": "client", "Policies": ["p"],
              "Roles": None, "Global": False, "CreateTime": "2027-01-15T08:00:00.123456Z",
              "ExpirationTime": "2027-01-15T09:00:00.123456Z", "ExpirationTTL": "1h0m0s",
              "CreateIndex": 7, "ModifyIndex": 7}

    def request(addr: str, method: str, path: str, body: Any = None) -> Any:
        sent.append(body)
        return answer

    monkeypatch.setattr(cli_acl, "request", request)
    out = cli_acl.token_create("http://x", ["-name=ci", "-policy=p", "-ttl=60m"])
    assert sent[-1]["ExpirationTTL"] == "1h0m0s"
    lines = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    lines = {k.strip(): v for k, v in lines.items()}
    assert lines["Create Time"] == "2027-01-15 08:00:00.123456 +0000 UTC"
    assert lines["Expiry Time"] == "2027-01-15 09:00:00.123456 +0000 UTC"
    assert "Expiry TTL" not in lines  # Nomad prints the time only
    assert lines["Policies"] == "[p]"  # Nomad's outputACLToken: Policies|%v of the []string
    answer["Policies"] = ["a", "b"]
    out = cli_acl.token_create("http://x", ["-name=ci", "-policy=a", "-policy=b"])
    assert "Policies     = [a b]\n" in out
    answer["Policies"] = None
    assert "Policies     = []\n" in cli_acl.token_create("http://x", ["-name=ci", "-policy=p"])
    answer["Policies"] = ["p"]
    cli_acl.token_create("http://x", ["-name=ci", "-policy=p"])
    assert "ExpirationTTL" not in sent[-1]
    with pytest.raises(CliError, match=r'^Failed to parse TTL as time duration: time: invalid duration '
                                       r'"1 day"$'):
        cli_acl.token_create("http://x", ["-ttl", "1 day"])
    answer.update(ExpirationTime=None, ExpirationTTL="", CreateTime="2027-01-15T08:00:00.000000Z")
    out = cli_acl.token_self("http://x", [])
    lines = {k.strip(): v for k, v in (ln.split(" = ", 1) for ln in out.splitlines() if " = " in ln)}
    assert (lines["Expiry Time"], lines["Create Time"]) == ("<none>", "2027-01-15 08:00:00 +0000 UTC")


def test_cli_token_list_marks_expired_tokens(monkeypatch):
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl

    stubs = [{"AccessorID": "a1", "Name": "old", "Type": "client", "Global": False,
              "ExpirationTime": "2020-01-01T00:00:00.000000Z"},
             {"AccessorID": "a2", "Name": "new", "Type": "client", "Global": False,
              "ExpirationTime": "2999-01-01T00:00:00.000000Z"},
             {"AccessorID": "a3", "Name": "forever", "Type": "management", "Global": True,
              "ExpirationTime": None}]
    monkeypatch.setattr(cli_acl, "request", lambda *a, **k: stubs)
    rows = [line.split() for line in cli_acl.token_list("http://x", []).splitlines()]
    assert rows[0] == ["Name", "Type", "Global", "Accessor", "ID", "Expired"]
    assert [(r[0], r[-1]) for r in rows[1:]] == [("old", "true"), ("new", "false"), ("forever", "false")]


def test_cli_acl_bootstrap_takes_an_operator_secret_from_a_file_or_stdin_as_nomads(monkeypatch, tmp_path):
    """``nomad acl bootstrap [-json] [<path>]``: the secret in <path> ("-": stdin) is sent as the
    request's BootstrapSecret, its trailing newline cut (Nomad's ACLBootstrapCommand); no path sends
    an empty one (the servers draw it)."""
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl
    from runtime.cli import CliError

    sent: list[Any] = []
    uid = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a"
    answer = {"AccessorID": "acc", "SecretID": uid, "Name": "Bootstrap Token", "Type": "management",
              "Policies": None, "Roles": None, "Global": True,
              "CreateTime": "2027-01-15T08:00:00Z", "CreateIndex": 7, "ModifyIndex": 7}

    def request(addr: str, method: str, path: str, body: Any = None) -> Any:
        sent.append((method, path, body))
        return answer

    monkeypatch.setattr(cli_acl, "request", request)
    secret = tmp_path / "secret.txt"
    secret.write_text(uid + "\n")
    out = cli_acl.acl_bootstrap("http://x", [str(secret)])
    assert sent[-1] == ("PUT", "/v1/acl/bootstrap", {"BootstrapSecret": uid})
    assert f"Secret ID    = {uid}" in out
    cli_acl.acl_bootstrap("http://x", [])
    assert sent[-1][2] == {"BootstrapSecret": ""}
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n\n"))
    cli_acl.acl_bootstrap("http://x", ["-"])
    assert sent[-1][2] == {"BootstrapSecret": "from-stdin\n"}  # only one newline cut, as TrimSuffix
    assert json.loads(cli_acl.acl_bootstrap("http://x", ["-json"]))["SecretID"] == answer["SecretID"]
    with pytest.raises(CliError) as e:
        cli_acl.acl_bootstrap("http://x", [str(tmp_path / "gone")])
    gone = tmp_path / "gone"
    assert str(e.value) == f"Error reading provided token: open {gone}: no such file or directory"
    with pytest.raises(CliError) as e:
        cli_acl.acl_bootstrap("http://x", ["a", "b"])
    assert str(e.value).startswith("This command takes up to one argument")


def test_cli_token_create_and_list_take_json_and_a_template_as_nomads(monkeypatch, capsys):
    """``acl token create -json|-t`` prints api.ACLToken as Nomad's Format does (its MarshalJSON puts
    ExpirationTTL first, "" when none; ExpirationTime left out when none); ``acl token list -json|-t``
    the []ACLTokenListStub.  Scripts take the new secret with -t '{{.SecretID}}'."""
    import runtime.cli  # noqa: F401  (first: it imports runtime.cli_acl)
    from runtime import cli_acl
    from runtime.cli import main

    created = {"AccessorID": "acc", "SecretID": "sec", "Name": "ci", "Type": "client", "Policies": ["p"],
               "Roles": [{"ID": "r1", "Name": "ro"}], "Global": False, "CreateTime": "2027-01-15T08:00:00Z",
               "ExpirationTTL": "", "Hash": "aGFzaA==", "CreateIndex": 7, "ModifyIndex": 7}
    listed = [{"AccessorID": "acc", "Name": "ci", "Type": "client", "Policies": ["p"], "Roles": None,
               "Global": False, "CreateTime": "2027-01-15T08:00:00Z",
               "ExpirationTime": "2027-01-15T09:00:00Z",
               "Hash": "aGFzaA==", "CreateIndex": 7, "ModifyIndex": 7}]

    def request(addr: str, method: str, path: str, body: Any = None) -> Any:
        return created if method == "POST" else listed

    monkeypatch.setattr(cli_acl, "request", request)
    got = json.loads(cli_acl.token_create("http://x", ["-name=ci", "-policy=p", "-json"]))
    assert list(got) == ["ExpirationTTL", "AccessorID", "SecretID", "Name", "Type", "Policies", "Roles",
                         "Global", "CreateTime", "CreateIndex", "ModifyIndex"]
    assert got["ExpirationTTL"] == "" and got["Roles"] == [{"ID": "r1", "Name": "ro"}]
    got = json.loads(cli_acl.token_list("http://x", ["-json"]))
    assert [list(t) for t in got] == [["AccessorID", "Name", "Type", "Policies", "Roles", "Global",
                                       "CreateTime", "ExpirationTime", "CreateIndex", "ModifyIndex"]]
    assert main(["-address=http://x", "acl", "token", "create", "-name=ci", "-policy=p",
                 "-t", "{{.SecretID}}"]) == 0
    assert capsys.readouterr().out == "sec\n"
    assert main(["-address=http://x", "acl", "token", "list", "-t",
                 "{{range .}}{{.AccessorID}}{{end}}"]) == 0
    assert capsys.readouterr().out == "acc\n"
    assert main(["-address=http://x", "acl", "token", "list", "extra"]) == 1
    assert capsys.readouterr().err.startswith("This command takes no arguments")


def test_token_self_without_a_secret_names_the_anonymous_token(st, clock):
    """Nomad's ACL.WhoAmI: a request without a secret is the AnonymousACLToken (200), not a 404."""
    code, anonymous = call(st, "GET", "/v1/acl/token/self")
    assert code == 200, anonymous
    assert {k: anonymous[k] for k in ("AccessorID", "SecretID", "Name", "Type", "Policies", "Global",
                                      "CreateTime", "ExpirationTime")} == {
        "AccessorID": "anonymous", "SecretID": "", "Name": "Anonymous Token", "Type": "client",
        "Policies": ["anonymous"], "Global": False, "CreateTime": "0001-01-01T00:00:00Z",
        "ExpirationTime": None}
    assert call(st, "GET", "/v1/acl/token/self", "no-such-secret") == (403, "Permission denied")


def _list(st: StateStore, **query: str) -> tuple[int, Any, dict[str, str]]:
    req = Request(method="GET", path="/v1/acl/tokens", query={k: [v] for k, v in query.items()},
                  url="/v1/acl/tokens", environ={"HTTP_X_NOMAD_TOKEN": "root-secret"})
    try:
        out = find_route("/v1/acl/tokens")(req, _api(st))
    except CodedError as e:
        return e.code, str(e), {}
    return 200, [t["AccessorID"] for t in out.value], dict(out.headers)


def test_the_token_list_is_in_creation_order_filtered_and_paged_as_nomads(st, clock):
    """Nomad's ACL.ListTokens: creation order without a prefix (CreateIndexAndIDTokenizer), accessor
    order with one, and the list options every paginated list takes."""
    for i, accessor in enumerate(("c-second", "a-third", "b-fourth")):
        st.apply(10 + i, command("acl_token_upsert", tokens=[
            {**_token(accessor, kind="client"), "Policies": ["node-read"]}]))
    assert _list(st)[:2] == (200, ["root", "c-second", "a-third", "b-fourth"])
    assert _list(st, reverse="true")[1] == ["b-fourth", "a-third", "c-second", "root"]
    assert _list(st, prefix="")[1][0] == "root"
    code, page, headers = _list(st, per_page="2")
    assert (code, page, headers.get("X-Nomad-NextToken")) == (200, ["root", "c-second"], "11.a-third")
    assert _list(st, per_page="2", next_token="11.a-third")[1] == ["a-third", "b-fourth"]
    assert _list(st, filter='Type == "client" and Name != "a-third"')[1] == ["c-second", "b-fourth"]
    code, error, _ = _list(st, filter="Type ==")
    assert code == 400 and error.startswith("failed to read filter expression")
    st.apply(20, command("acl_token_upsert", tokens=[
        {**_token("a-fifth", kind="client"), "Policies": ["node-read"]}]))
    assert _list(st, prefix="a-")[1] == ["a-fifth", "a-third"]  # by accessor, with a prefix


def test_a_token_may_name_a_policy_written_later_as_nomads(st, clock):
    """Nomad's ACL.UpsertTokens checks the roles a token links but never its policies: the token is made,
    the missing policy grants nothing, and once it is written the token has what it grants."""
    code, token = call(st, "POST", "/v1/acl/token", "root-secret",
                       {"Name": "early", "Type": "client", "Policies": ["later"]})
    assert code == 200, token
    assert token["Policies"] == ["later"]
    assert guard(st, "GET", "/v1/nodes", token["SecretID"]) == (403, "Permission denied")
    st.apply(st.applied_index + 1, command("acl_policy_upsert",
                                           policies=[{"Name": "later", "Rules": 'node { policy = "read" }'}]))
    assert guard(st, "GET", "/v1/nodes", token["SecretID"]) == (200, "")
    # A role still must name policies that exist (Nomad's UpsertRoles), and a token roles that exist.
    refused = call(st, "POST", "/v1/acl/token", "root-secret",
                   {"Name": "r", "Type": "client", "Roles": [{"Name": "ghost"}]})
    assert refused == (400, "cannot find role ghost")


def test_a_client_token_with_its_own_uuids_is_uploaded_as_nomads(st, clock):
    """Nomad's upsertTokens: a token that is not here, with a UUID accessor and secret and of type client,
    is made with those IDs; any other unknown accessor is 400 ``cannot find token``."""
    accessor, secret = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000001"
    code, made = call(st, "POST", "/v1/acl/token", "root-secret",
                      {"AccessorID": accessor, "SecretID": secret, "Name": "moved", "Type": "client",
                       "Policies": ["node-read"], "ExpirationTTL": "1h"})
    assert code == 200, made
    assert (made["AccessorID"], made["SecretID"], made["Name"]) == (accessor, secret, "moved")
    assert made["ExpirationTime"] == "2027-01-15T09:00:00.000000Z"  # from its creation, as a new token's
    assert guard(st, "GET", "/v1/nodes", secret) == (200, "")
    # the same again is an update of it now (its secret kept)
    code, again = call(st, "POST", f"/v1/acl/token/{accessor}", "root-secret",
                       {"AccessorID": accessor, "Name": "renamed", "Type": "client",
                        "Policies": ["node-read"], "ExpirationTTL": "1h"})
    assert code == 200 and (again["Name"], again["SecretID"]) == ("renamed", secret), again
    for body in ({"AccessorID": "cccccccc-0000-4000-8000-000000000001", "SecretID": secret.replace("b", "d"),
                  "Type": "management"},
                 {"AccessorID": "cccccccc-0000-4000-8000-000000000002", "Type": "client", "Policies": ["x"]},
                 {"AccessorID": "not-a-uuid", "SecretID": "dddddddd-0000-4000-8000-000000000003",
                  "Type": "client", "Policies": ["x"]}):
        assert call(st, "POST", "/v1/acl/token", "root-secret", body) == (
            400, f"cannot find token {body['AccessorID']}")


def test_an_update_names_every_change_nomad_refuses_in_one_multierror(st, clock):
    """Nomad's ACLToken.Validate against the existing token: ``token 0 invalid:`` with each problem."""
    _, token = _create(st, ExpirationTTL="1h")
    code, error = call(st, "POST", f"/v1/acl/token/{token['AccessorID']}", "root-secret",
                       {**token, "Global": True, "ExpirationTTL": "2h"})
    assert (code, error) == (400, "token 0 invalid: 2 errors occurred:\n\t* cannot toggle global mode\n\t"
                                  "* cannot update expiration TTL\n\n")
    code, error = call(st, "POST", f"/v1/acl/token/{token['AccessorID']}", "root-secret",
                       {**token, "Global": True})
    assert (code, error) == (400, "token 0 invalid: 1 error occurred:\n\t* cannot toggle global mode\n\n")


def test_a_tokens_policies_keep_the_order_they_were_given_in(st, clock):
    """Nomad stores a token's Policies as written (`acl token create -policy b -policy a`: [b a])."""
    st.apply(st.applied_index + 1, command("acl_policy_upsert",
                                           policies=[{"Name": "b", "Rules": 'agent { policy = "read" }'}]))
    code, token = call(st, "POST", "/v1/acl/token", "root-secret",
                       {"Name": "ordered", "Type": "client", "Policies": ["node-read", "b"]})
    assert code == 200 and token["Policies"] == ["node-read", "b"], token  # not sorted
