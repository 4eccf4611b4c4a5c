"""Review 21: what an attacker (or an odd identity provider) can send to the JWT login.

Each test names the defect it pinned (REVIEW21.md); the last one checks, against a real
agent, that a login waiting on a slow JWKS URL does not hold up the agent's other requests.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import http_acl_auth
from actors.acl_auth import LoginError, login_error_text, selector_data, validate_jwt
from tests.test_acl_auth import _RSA, NOW, _b64, _claims, _config, _jwk, sign, sign_raw

HEAD = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())


def _signed_body(body: str) -> str:
    return sign_raw(HEAD, _b64(body.encode()), _RSA, "RS256")


def _refusal(token: str, config: dict[str, Any] | None = None) -> str:
    with pytest.raises(LoginError) as e:
        validate_jwt(token, config or _config(), NOW)
    return login_error_text(e.value)


# ---------------------------------------------------------------- R1: nested JSON before the signature


def test_deeply_nested_token_json_is_refused_not_a_crash():
    """Anyone could send this: it must be a 401, not a RecursionError (a 500 and a traceback)."""
    deep = _b64(("[" * 20000 + "]" * 20000).encode())
    assert len(f"{HEAD}.{deep}.AA") < 65536
    text = _refusal(f"{HEAD}.{deep}.{_b64(b'sig')}")
    assert "no known key successfully validated the token signature" in text
    text = _refusal(f"{deep}.{_b64(b'{}')}.{_b64(b'sig')}")
    assert text.startswith("unable to validate provided token: unable to verify signature of JWT token: "
                           "error verifying token signature: ")


def test_the_claims_are_read_only_after_the_signature_verifies():
    """go-jose verifies before cap decodes the payload: an unsigned payload is never parsed."""
    text = _refusal(f"{HEAD}.{_b64(b'not json')}.{_b64(b'sig')}")
    assert text.endswith("error verifying token signature: no known key successfully validated the "
                         "token signature")


# ---------------------------------------------------------------- R2: numbers Go's JSON refuses


def test_non_finite_and_out_of_range_numbers_are_refused_as_go_decodes_them():
    body = json.dumps(_claims()).replace('"sub": "alice"', '"sub": NaN')
    assert "invalid character 'N' looking for beginning of value" in _refusal(_signed_body(body))
    body = json.dumps(_claims()).replace('"sub": "alice"', '"sub": 1' + "0" * 400)
    assert "json: cannot unmarshal number 1" in _refusal(_signed_body(body))
    body = json.dumps(_claims(exp=1)).replace('"exp": 1', '"exp": 1e400')
    assert "into Go value of type float64" in _refusal(_signed_body(body))


def test_big_numbers_are_mapped_as_gos_int64_conversion_makes_them():
    config = _config(ClaimMappings={"n": "n", "m": "m"})
    claims = validate_jwt(sign(_claims(n=1e300, m=12345678901234567890)), config, NOW)
    assert selector_data(config, claims)["value"] == {"n": "-9223372036854775808",
                                                      "m": "-9223372036854775808"}


# ---------------------------------------------------------------- R3: registered claims of the wrong type


@pytest.mark.parametrize(("extra", "text"), [
    ({"sub": 123}, "json: cannot unmarshal number into Go struct field Claims.sub of type string"),
    ({"jti": ["x"]}, "json: cannot unmarshal array into Go struct field Claims.jti of type string"),
    ({"aud": 5}, "go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience"),
    ({"aud": ["nomad", 5]}, "go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience"),
    ({"exp": "tomorrow"}, "go-jose/go-jose/jwt: expected number value to unmarshal NumericDate"),
])
def test_registered_claims_of_the_wrong_type_are_refused_as_cap_decodes_them(extra, text):
    config = _config(BoundIssuer=None, BoundAudiences=None)
    assert _refusal(sign(_claims(**extra)), config) == (
        f"unable to validate provided token: unable to verify signature of JWT token: {text}")


def test_a_fractional_time_claim_is_truncated_as_numericdate_is():
    """exp 0.5 is NumericDate 0: no exp, so it is derived from iat (cap), not 'expired'."""
    assert validate_jwt(sign(_claims(exp=0.5, iat=NOW - 10)), _config(), NOW)["sub"] == "alice"


# ---------------------------------------------------------------- R4: critical headers


def test_a_token_with_an_unknown_critical_header_is_refused():
    head = _b64(json.dumps({"alg": "RS256", "crit": ["exp"], "exp": 1}).encode())
    token = sign_raw(head, _b64(json.dumps(_claims()).encode()), _RSA, "RS256")
    assert _refusal(token).endswith("no known key successfully validated the token signature")


# ---------------------------------------------------------------- R5: list claim messages


def test_list_claim_items_that_are_not_scalars_are_named_as_go_prints_them():
    config = _config()
    for item, shown in ((None, "<nil>"), ({"a": 1}, "map[a:1]")):
        with pytest.raises(LoginError) as e:
            selector_data(config, validate_jwt(sign(_claims(groups=["eng", item])), config, NOW))
        assert str(e.value) == f'value {shown} in "groups" list claim could not be parsed as string'


# ---------------------------------------------------------------- R6/R7: fetching the keys


class _Server:
    """A loopback HTTP server whose GET handler is *handler(request_handler)*."""

    def __init__(self, handler: Any) -> None:
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handler(self)

            def log_message(self, *args: Any) -> None:
                pass

        from tests.ports import free_port

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Any]:
    made: list[_Server] = []

    def make(handler: Any) -> _Server:
        made.append(_Server(handler))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_trickling_key_set_is_cut_off_at_the_fetch_deadline(server, monkeypatch):
    """Each read arriving within the socket timeout must not stretch the fetch without end."""
    stop = threading.Event()

    def drip(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        h.wfile.flush()
        for _ in range(40):
            if stop.wait(0.1):
                return
            try:
                h.wfile.write(b" ")
                h.wfile.flush()
            except OSError:
                return

    s = server(drip)
    monkeypatch.setattr(http_acl_auth, "KEY_FETCH_TIMEOUT_S", 0.5)
    start = time.monotonic()
    try:
        with pytest.raises(LoginError, match="fetching keys"):
            http_acl_auth.remote_keys({"JWKSURL": f"{s.base}/jwks"})
        assert time.monotonic() - start < 1.5
    finally:
        stop.set()


def test_a_trickling_error_answer_is_cut_off_at_the_fetch_deadline(server, monkeypatch):
    stop = threading.Event()

    def drip(h: Any) -> None:
        h.send_response(500)
        h.end_headers()
        h.wfile.flush()
        for _ in range(40):
            if stop.wait(0.1):
                return
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return

    s = server(drip)
    monkeypatch.setattr(http_acl_auth, "KEY_FETCH_TIMEOUT_S", 0.5)
    start = time.monotonic()
    try:
        with pytest.raises(LoginError, match="context deadline exceeded"):  # go-oidc reads the body too
            http_acl_auth.remote_keys({"JWKSURL": f"{s.base}/jwks"})
        assert time.monotonic() - start < 1.5
    finally:
        stop.set()


def test_a_redirect_to_another_scheme_is_not_followed(server):
    """Go's client speaks http(s) only; urllib would follow a redirect to ftp://."""
    def redirect(h: Any) -> None:
        h.send_response(302)
        h.send_header("Location", "ftp://127.0.0.1:9/keys")
        h.end_headers()

    s = server(redirect)
    with pytest.raises(LoginError, match='unsupported protocol scheme "ftp"'):
        http_acl_auth.remote_keys({"JWKSURL": f"{s.base}/jwks"})


def test_a_redirect_to_http_is_still_followed(server):
    keys = {"keys": [_jwk(_RSA, "k")]}

    def handler(h: Any) -> None:
        if h.path == "/old":
            h.send_response(302)
            h.send_header("Location", "/jwks")
            h.end_headers()
            return
        body = json.dumps(keys).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    s = server(handler)
    assert [k for k, _ in http_acl_auth.remote_keys({"JWKSURL": f"{s.base}/old"})] == ["k"]


# ---------------------------------------------------------------- a real agent: a slow IdP blocks nothing


@pytest.mark.timeout(60)
def test_a_login_waiting_on_a_slow_jwks_url_does_not_hold_up_other_requests(tmp_path):
    from tests.test_acl_process import acl_dev_agent, call

    release = threading.Event()
    waiting = threading.Event()

    def slow(h: Any) -> None:
        waiting.set()
        release.wait(20)
        h.send_response(404)
        h.end_headers()

    idp = _Server(slow)
    try:
        with acl_dev_agent(tmp_path) as agent:
            port = agent.http_port
            root = call(port, "POST", "/v1/acl/bootstrap").json()["SecretID"]
            r = call(port, "POST", "/v1/acl/auth-method", {
                "Name": "slow", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
                "Config": {"JWKSURL": f"{idp.base}/jwks"}}, token=root)
            assert r.status == 200, r.text
            result: list[Any] = []
            login = threading.Thread(target=lambda: result.append(call(
                port, "POST", "/v1/acl/login", {"AuthMethodName": "slow", "LoginToken": sign(_claims())})))
            login.start()
            assert waiting.wait(10), "the login never asked the identity provider for its keys"
            start = time.monotonic()
            for path in ("/v1/agent/health", "/v1/acl/auth-methods", "/v1/status/leader"):
                assert call(port, "GET", path, token=root).status == 200, path
            assert time.monotonic() - start < 2.0
            assert login.is_alive()  # still waiting on the identity provider
            release.set()
            login.join(15)
            assert result and result[0].status == 401, result and result[0].text
            assert "404" in result[0].text
    finally:
        release.set()
        idp.close()



# ---------------------------------------------------------------- R8: the order of the login's refusals


def test_no_binding_is_said_before_a_token_name_that_does_not_format():
    """Nomad binds, refuses an empty binding (400), and only then formats the token name (500)."""
    from tests.test_acl_auth import _live, _state, call

    st = _state()
    code, got = call(st, "POST", "/v1/acl/auth-method", "root-secret", {
        "Name": "corp", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
        "TokenNameFormat": "${value.nope}", "Config": _config()})
    assert code == 200, got
    code, got = call(st, "POST", "/v1/acl/binding-rule", "root-secret",
                     {"AuthMethod": "corp", "BindType": "policy", "BindName": "missing-policy"})
    assert code == 200, got
    body = {"AuthMethodName": "corp", "LoginToken": sign(_live())}
    assert call(st, "POST", "/v1/acl/login", "", body) == (400, "no role or policy bindings matched")
    code, got = call(st, "POST", "/v1/acl/binding-rule", "root-secret",
                     {"AuthMethod": "corp", "BindType": "policy", "BindName": "node-read"})
    assert call(st, "POST", "/v1/acl/login", "", body) == (
        500, "failed to generate ACL token name: unknown variable accessed: value.nope")


# ---------------------------------------------------------------- R9: selectors go-bexpr cannot evaluate


def _data(**claims: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    config = _config(ClaimMappings={"sub": "user", "role": "role"}, ListClaimMappings={"groups": "groups"})
    return config, selector_data(config, validate_jwt(sign(_claims(**claims)), config, NOW))


def _binds(selector: str, config: dict[str, Any], data: dict[str, Any]) -> bool:
    from actors.acl_auth import bind

    rules = [{"ID": "1", "Selector": selector, "BindType": "policy", "BindName": "p"}]
    return bind(rules, config, data, {}, {"p"}) == (False, ["p"], [])


@pytest.mark.parametrize("selector", [
    'value.user.x != "a"', 'value.nope.x != "a"', 'nope != "a"', 'not (nope == "a")',
    'list.groups not matches "^x"', '"x" not in value.user.x',
])
def test_a_selector_go_bexpr_cannot_evaluate_matches_nothing(selector):
    """go-bexpr 0.1.16 (Nomad's) fails to evaluate a selector through a value that is not a map, a
    missing top-level field, or `matches` on a list, and Nomad's binder takes a failed evaluation
    as no match, negated or not."""
    config, data = _data(groups=["eng"])
    assert not _binds(selector, config, data)


def test_a_missing_claim_takes_go_bexprs_not_present_disposition():
    """A key missing from the value/list maps is not an error in go-bexpr 0.1.16: `==`, `in`,
    `matches` and `is not empty` are false, their negations and `is empty` true (NotPresentDisposition)."""
    config, data = _data()
    assert "role" not in data["value"] and "groups" not in data["list"]
    for selector, binds in (('value.role != "guest"', True), ('value.role == "guest"', False),
                            ('"contractors" not in list.groups', True), ('"eng" in list.groups', False),
                            ('value.role is empty', True), ('list.groups is not empty', False),
                            ('value.role not matches "^g"', True), ('value.role matches "^g"', False),
                            ('not (value.role == "guest")', True)):
        assert _binds(selector, config, data) is binds, selector


def test_selectors_over_claims_the_token_has_still_match():
    config, data = _data(role="dev", groups=["eng"])
    for selector in ('value.role != "guest"', '"contractors" not in list.groups', 'eng in list.groups',
                     'not (value.role == "guest")', 'value.role is not empty', 'value.role matches "^d"',
                     '"x" in list.groups or value.user == "alice"'):
        assert _binds(selector, config, data), selector


# ------------------------------------------------------------ R10: the login's token, checked as any new one


def _call_with_ttls(st: Any, path: str, body: Any, min_s: float, max_s: float) -> tuple[int, Any]:
    import io

    from actors.http_api import Answer, CodedError, Request, find_route
    from tests.one_server_api import api_over

    raw = json.dumps(body).encode()
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "REQUEST_METHOD": "POST"}
    api = api_over(st, acl_enabled=True)
    api.ctx.acl_token_min_expiration_ttl_s, api.ctx.acl_token_max_expiration_ttl_s = min_s, max_s
    api.env.now = time.time
    try:
        out = find_route(path)(Request(method="POST", path=path, query={}, url=path, environ=environ), api)
    except CodedError as e:
        return e.code, e.message
    return 200, out.value if isinstance(out, Answer) else out


def test_a_login_token_outside_the_servers_ttl_bounds_is_refused_as_upsert_tokens_does():
    """The method's MaxTokenTTL was valid when written; the server's acl.token_max_expiration_ttl
    was lowered since.  Nomad's Login creates the token through upsertTokens, whose Validate
    refuses it."""
    from tests.test_acl_auth import _live, _setup, _state

    st = _state()
    _setup(st)  # MaxTokenTTL 1h, a policy rule for the eng group
    body = {"AuthMethodName": "corp", "LoginToken": sign(_live(org={"team": "x"}, groups=["eng"]))}
    assert _call_with_ttls(st, "/v1/acl/login", body, 60.0, 86400.0)[0] == 200
    assert _call_with_ttls(st, "/v1/acl/login", body, 60.0, 1800.0) == (
        400, "token 0 invalid: 1 error occurred:\n\t* expiration time cannot be more than 30m0s in the "
             "future (was 1h0m0s)\n\n")


def test_a_login_token_survives_a_snapshot_with_its_expiry():
    """The login's token is an ordinary Raft-written token: a restored (or new leader's) state has it."""
    from actors.state.store import StateStore
    from tests.test_acl_auth import _live, _setup, _state, call

    st = _state()
    _setup(st)
    body = {"AuthMethodName": "corp", "LoginToken": sign(_live(groups=["ops"]))}
    code, token = call(st, "POST", "/v1/acl/login", "", body)
    assert code == 200, token
    copy = StateStore()
    copy.restore(st.snapshot(), st.applied_index)
    code, me = call(copy, "GET", "/v1/acl/token/self", token["SecretID"])
    assert code == 200, me
    assert (me["AccessorID"], me["ExpirationTime"], me["Roles"]) == (
        token["AccessorID"], token["ExpirationTime"], token["Roles"])


def test_a_json_pointer_index_is_read_as_pointerstructure_reads_it():
    config = _config(ClaimMappings={"/groups/\u00b2": "bad", "/groups/+1": "second", "/groups/-1": "neg"},
                     ListClaimMappings=None)
    claims = validate_jwt(sign(_claims(groups=["a", "b"])), config, NOW)
    assert selector_data(config, claims)["value"] == {"second": "b"}


def test_a_methods_client_assertion_secrets_are_redacted_as_sanitize_does():
    from tests.test_acl_auth import _state, call

    st = _state()
    assertion = {"KeySource": "private_key", "ClientSecret": "s3cret",
                 "PrivateKey": {"PemKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                                "KeyID": "k1"}}
    code, got = call(st, "POST", "/v1/acl/auth-method", "root-secret", {
        "Name": "corp", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
        "Config": _config(OIDCClientSecret="other", OIDCClientAssertion=assertion)})
    assert code == 200, got
    for answer in (got, call(st, "GET", "/v1/acl/auth-method/corp", "root-secret")[1]):
        c = answer["Config"]
        assert c["OIDCClientSecret"] == "redacted"
        assert c["OIDCClientAssertion"]["ClientSecret"] == "redacted"
        assert c["OIDCClientAssertion"]["PrivateKey"] == {"PemKey": "redacted", "KeyID": "k1"}
    assert st.tables["acl_auth_methods"]["corp"]["Config"]["OIDCClientAssertion"] == assertion
