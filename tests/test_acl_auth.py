"""ACL auth methods, binding rules and the JWT login (Nomad 1.5+), in process.

The reference is Nomad's ``nomad/structs/acl.go`` (Validate messages),
``nomad/acl_endpoint.go`` (UpsertAuthMethods, UpsertBindingRules, Login),
``lib/auth`` (claims, binder) and hashicorp/cap's JWT validator.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from actors import acl_auth, http_acl
from actors.acl_auth import (
    AuthError,
    LoginError,
    bind,
    canonical_method,
    canonical_rule,
    interpolate,
    selector_data,
    validate_jwt,
)
from actors.http_api import Answer, CodedError, Request, find_route
from actors.state.store import StateStore, command
from tests.one_server_api import api_over

NODE_READ = 'node { policy = "read" }'
HOUR_NS = 3600 * 10**9
MIN_NS, MAX_NS = 60 * 10**9, 24 * HOUR_NS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())
_ED = ed25519.Ed25519PrivateKey.generate()


def _pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(claims: dict[str, Any], key: Any = _RSA, alg: str = "RS256") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    data = f"{head}.{body}".encode()
    if alg == "RS256":
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        sig = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(data)
    return f"{head}.{body}.{_b64(sig)}"


NOW = 1_800_000_000.0


def _claims(**extra: Any) -> dict[str, Any]:
    return {"iss": "https://issuer.example", "aud": ["nomad"], "sub": "alice", "iat": NOW - 10,
            "exp": NOW + 300, **extra}


def _live(**extra: Any) -> dict[str, Any]:
    """Claims valid now (the HTTP endpoints verify on the wall clock)."""
    return _claims(**{"iat": time.time() - 5, "exp": time.time() + 600, **extra})


def _config(**extra: Any) -> dict[str, Any]:
    return {"JWTValidationPubKeys": [_pem(_RSA)], "BoundIssuer": ["https://issuer.example"],
            "BoundAudiences": ["nomad"], "ClaimMappings": {"sub": "user", "/org/team": "team"},
            "ListClaimMappings": {"groups": "groups"}, **extra}


def _method(**extra: Any) -> dict[str, Any]:
    body = {"Name": "corp", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
            "Config": _config(), **extra}
    return canonical_method(body, None, min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS, now_s=NOW)


# ---------------------------------------------------------------- validation


def test_a_method_is_canonicalized_with_nomads_defaults():
    m = _method()
    assert m["TokenNameFormat"] == "${auth_method_type}-${auth_method_name}"
    assert m["MaxTokenTTL"] == HOUR_NS and m["Config"]["JWKSURL"] == "" and m["Config"]["OIDCScopes"] is None
    out = acl_auth.method_out({**m, "CreateIndex": 5, "ModifyIndex": 5})
    assert out["MaxTokenTTL"] == "1h0m0s" and out["Config"]["ClockSkewLeeway"] == ""
    assert set(acl_auth.method_stub(out)) == {"Name", "Type", "Default", "Hash", "CreateIndex", "ModifyIndex"}


def test_a_bad_method_gets_every_problem_in_nomads_words():
    with pytest.raises(AuthError) as e:
        canonical_method({"Name": "bad name", "Type": "SAML", "TokenLocality": "cluster", "MaxTokenTTL": "1s",
                          "Config": {}}, None, min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS, now_s=NOW)
    assert e.value.code == 400
    assert e.value.message == (
        "auth method 0 invalid: 4 errors occurred:\n\t* invalid name 'bad name'\n"
        "\t* invalid token locality 'cluster'\n\t* invalid token type 'SAML'\n"
        "\t* invalid MaxTokenTTL value '1s' (should be between 1m0s and 24h0m0s)\n\n")
    with pytest.raises(AuthError) as e:
        canonical_method({"Name": "j", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
                          "Config": {}}, None, min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS, now_s=NOW)
    assert "invalid config: JWT auth method requires either OIDCDiscoveryURL, or JWKS URL, or " \
           "JWTValidationPubKeys set" in e.value.message


@pytest.mark.parametrize(("config", "text"), [
    ({"JWKSURL": "file:///etc/passwd"}, "JWKSURL must be an http:// or https:// URL"),
    ({"OIDCDiscoveryURL": "idp.example"}, "OIDCDiscoveryURL must be an http:// or https:// URL"),
    ({"JWTValidationPubKeys": ["not a pem"]}, "unable to parse public key for JWT auth"),
    ({"JWTValidationPubKeys": [_pem(_RSA)], "SigningAlgs": ["HS256"]},
     "unsupported signing algorithm 'HS256'"),
    ({"JWTValidationPubKeys": [_pem(_RSA)], "Bogus": 1}, "unknown auth method Config fields: Bogus"),
])
def test_configs_that_cannot_verify_are_refused_when_written(config, text):
    with pytest.raises(AuthError) as e:
        canonical_method({"Name": "j", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h",
                          "Config": config}, None, min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS, now_s=NOW)
    assert e.value.code == 400 and text in e.value.message


def test_oidc_methods_are_refused_with_the_reason():
    with pytest.raises(AuthError) as e:
        canonical_method({"Name": "o", "Type": "OIDC", "TokenLocality": "local", "MaxTokenTTL": "1h",
                          "Config": {"OIDCDiscoveryURL": "https://idp", "OIDCClientID": "x"}}, None,
                         min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS, now_s=NOW)
    assert "auth method type OIDC is not supported by this agent" in e.value.message


def test_an_update_keeps_what_it_leaves_empty():
    old = _method(TokenNameFormat="${value.user}")
    new = canonical_method({"Name": "corp", "MaxTokenTTL": "2h"}, old, min_ttl_ns=MIN_NS, max_ttl_ns=MAX_NS,
                           now_s=NOW + 1)
    assert (new["Type"], new["TokenLocality"], new["TokenNameFormat"]) == ("JWT", "local", "${value.user}")
    assert new["MaxTokenTTL"] == 2 * HOUR_NS and new["Config"] == old["Config"] and new["Hash"] != old["Hash"]
    assert new["CreateTime"] == NOW and new["ModifyTime"] == NOW + 1


def test_binding_rule_validation():
    with pytest.raises(AuthError) as e:
        canonical_rule({"BindType": "group", "Description": "x" * 300}, None)
    assert e.value.message == ("binding rule 0 invalid: 3 errors occurred:\n\t* auth method is missing\n"
                               "\t* description longer than 256\n\t* unsupported bind type: \"group\"\n\n")
    for body, text in [({"AuthMethod": "m", "BindType": "role"}, "bind name is missing"),
                       ({"AuthMethod": "m", "BindType": "management", "BindName": "x"},
                        "bind name should be empty"),
                       ({"AuthMethod": "m", "BindType": "policy", "BindName": "p", "Selector": "value.a =="},
                        "selector is invalid: ")]:
        with pytest.raises(AuthError) as e:
            canonical_rule(body, None)
        assert text in e.value.message
    with pytest.raises(AuthError, match="unknown binding rule fields: Selecter"):
        canonical_rule({"AuthMethod": "m", "BindType": "management", "Selecter": "x"}, None)
    old = {"ID": "r1", "AuthMethod": "m", "BindType": "policy", "BindName": "p"}
    assert canonical_rule({"ID": "r1", "Description": "d"}, old)["BindName"] == "p"
    with pytest.raises(AuthError, match="cannot update auth method for binding rule"):
        canonical_rule({"ID": "r1", "AuthMethod": "other"}, old)


# ---------------------------------------------------------------- JWTs


@pytest.mark.parametrize(("key", "alg"), [(_RSA, "RS256"), (_RSA, "PS256"), (_EC, "ES256"), (_ED, "EdDSA")])
def test_jwts_signed_by_each_supported_key_kind_verify(key, alg):
    claims = validate_jwt(sign(_claims(), key, alg), _config(JWTValidationPubKeys=[_pem(key)],
                                                             SigningAlgs=[alg]), NOW)
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(("token", "config", "now", "text"), [
    (sign(_claims(), _OTHER_RSA), {}, NOW,
     "error verifying token signature: no known key successfully validated the token signature"),
    ("abc.def", {}, NOW, "compact JWS format must have three parts"),
    (sign(_claims(), _EC, "ES256"), {"JWTValidationPubKeys": [_pem(_EC)]}, NOW,
     "invalid algorithm (alg) header parameter: token signed with unexpected algorithm"),
    (sign(_claims(aud="other")), {}, NOW,
     "invalid audience (aud) claim: audience claim does not match any expected audience"),
    (sign(_claims()), {}, NOW + 300 + 61, "invalid expiration time (exp) claim: token is expired"),
    (sign(_claims(nbf=NOW + 120)), {}, NOW, "invalid not before (nbf) claim: token not yet valid"),
    (sign({"sub": "x", "aud": "nomad"}), {}, NOW,
     "no issued at (iat), not before (nbf), or expiration time (exp) claims in token"),
    (sign(_claims(iss="https://evil")), {}, NOW, "invalid JWT issuer: https://evil"),
    (sign(_claims(exp=float("inf"))), {}, NOW, "invalid character 'I' looking for beginning of value"),
    (sign(_claims(exp="tomorrow")), {}, NOW,
     "go-jose/go-jose/jwt: expected number value to unmarshal NumericDate"),
])
def test_invalid_jwts_are_refused_with_caps_reason(token, config, now, text):
    with pytest.raises(LoginError) as e:
        validate_jwt(token, _config(**config), now)
    assert text in str(e.value)


def test_leeways_follow_cap():
    token = sign(_claims())
    validate_jwt(token, _config(), NOW + 300 + 59)  # the default 60 s clock skew
    with pytest.raises(LoginError):
        validate_jwt(token, _config(ClockSkewLeeway=-1), NOW + 301)
    validate_jwt(token, _config(ClockSkewLeeway=600 * 10**9), NOW + 800)
    no_exp = sign({"aud": "nomad", "iss": "https://issuer.example", "iat": NOW})
    validate_jwt(no_exp, _config(ClockSkewLeeway=-1), NOW + 149)  # exp := iat + 150 s
    with pytest.raises(LoginError, match="token is expired"):
        validate_jwt(no_exp, _config(ClockSkewLeeway=-1, ExpirationLeeway=10 * 10**9), NOW + 11)


# ---------------------------------------------------------------- claims and bindings


def test_claims_are_mapped_as_nomads_selector_data():
    claims = _claims(org={"team": "web"}, groups=["admins", "", 7], n=3.9)
    data = selector_data({"ClaimMappings": {"sub": "user", "/org/team": "team", "n": "n", "missing": "m"},
                          "ListClaimMappings": {"groups": "groups", "sub": "subs"}}, claims)
    assert data == {"value": {"user": "alice", "team": "web", "n": "3"},
                    "list": {"groups": ["admins", "7"], "subs": ["alice"]}}
    with pytest.raises(LoginError, match="error converting claim 'org' to string"):
        selector_data({"ClaimMappings": {"org": "org"}}, claims)


def test_interpolation_is_hils():
    names = {"value.user": "Alice", "auth_method_type": "JWT"}
    assert interpolate("dev-${value.user}", names, True) == "dev-alice"
    assert interpolate("${auth_method_type}-$${x}", names, False) == "JWT-${x}"
    with pytest.raises(ValueError, match=r"unknown variable accessed: list\.groups"):
        interpolate("${list.groups}", names, True)


def test_rules_bind_roles_policies_or_management():
    config = {"ClaimMappings": {"sub": "user", "team": "team"}}
    data = selector_data({**config, "ListClaimMappings": {"groups": "groups"}},
                         {"sub": "Alice", "groups": ["eng", "ops"]})
    rules = [{"ID": "1", "Selector": '"eng" in list.groups', "BindType": "policy",
              "BindName": "dev-${value.user}"},
             {"ID": "2", "Selector": "ops in list.groups", "BindType": "role", "BindName": "operators"},
             {"ID": "3", "Selector": '"sales" in list.groups', "BindType": "policy", "BindName": "sales"},
             {"ID": "4", "Selector": "", "BindType": "policy", "BindName": "missing-policy"},
             {"ID": "5", "Selector": "value.team == \"\"", "BindType": "policy",
              "BindName": "no-team${value.team}"}]
    got = bind(rules, config, data, {"operators": "role-id"}, {"dev-alice", "sales", "no-team"})
    assert got == (False, ["dev-alice"], ["role-id"])  # rule 5: value.team is missing, so no match (bexpr)
    admin = [*rules, {"ID": "6", "Selector": "value.user == Alice", "BindType": "management", "BindName": ""}]
    assert bind(admin, config, data, {}, set()) == (True, [], [])
    with pytest.raises(AuthError, match="computed \"policy\" bind name for bind target is invalid"):
        bind([{"ID": "1", "BindType": "policy", "BindName": "a b"}], config, data, {}, set())


# ---------------------------------------------------------------- the HTTP endpoints


def _state() -> StateStore:
    st = StateStore()
    st.apply(1, command("acl_bootstrap", token={"AccessorID": "root", "SecretID": "root-secret",
                                               "Type": "management", "Name": "root", "Policies": [],
                                               "Global": True}))
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "node-read", "Rules": NODE_READ},
                                                       {"Name": "eng-alice", "Rules": NODE_READ}]))
    st.apply(3, command("acl_role_upsert", roles=[{"ID": "r-ops", "Name": "ops",
                                                   "Policies": [{"Name": "node-read"}], "Hash": "h"}],
                        created=["r-ops"]))
    return st


def call(st: StateStore, method: str, path: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "REQUEST_METHOD": method}
    if token:
        environ["HTTP_X_NOMAD_TOKEN"] = token
    req = Request(method=method, path=path, query={}, url=path, environ=environ)
    api = api_over(st, acl_enabled=True)
    api.ctx.acl_token_min_expiration_ttl_s, api.ctx.acl_token_max_expiration_ttl_s = 60.0, 86400.0
    api.env.now = time.time
    try:
        out = find_route(path)(req, api)
    except CodedError as e:
        return e.code, e.message
    if isinstance(out, Answer):
        return 200, out.value
    return (out.status, out.body) if hasattr(out, "status") else (200, out)


def _setup(st: StateStore, **method: Any) -> dict[str, Any]:
    body = {"Name": "corp", "Type": "JWT", "TokenLocality": "local", "MaxTokenTTL": "1h", "Default": True,
            "TokenNameFormat": "${auth_method_type}-${value.user}", "Config": _config(), **method}
    code, got = call(st, "POST", "/v1/acl/auth-method", "root-secret", body)
    assert code == 200, got
    for rule in ({"Selector": '"eng" in list.groups', "BindType": "policy", "BindName": "eng-${value.user}"},
                 {"Selector": '"ops" in list.groups', "BindType": "role", "BindName": "ops"}):
        code, r = call(st, "POST", "/v1/acl/binding-rule", "root-secret", {"AuthMethod": "corp", **rule})
        assert code == 200, r
    return got


def test_methods_and_rules_are_stored_listed_read_and_deleted():
    st = _state()
    assert call(st, "GET", "/v1/acl/auth-methods") == (200, [])
    assert call(st, "POST", "/v1/acl/auth-method", "", {"Name": "x"}) == (403, "Permission denied")
    method = _setup(st)
    assert method["Name"] == "corp" and method["MaxTokenTTL"] == "1h0m0s" and method["CreateIndex"] == 4
    assert call(st, "GET", "/v1/acl/auth-methods")[1] == [acl_auth.method_stub(method)]  # anyone may list
    assert call(st, "GET", "/v1/acl/auth-method/corp")[0] == 403
    assert call(st, "GET", "/v1/acl/auth-method/corp", "root-secret") == (200, method)
    assert call(st, "GET", "/v1/acl/auth-method/nope", "root-secret") == (404, "ACL auth-method not found")
    code, other = call(st, "POST", "/v1/acl/auth-method", "root-secret",
                       {"Name": "other", "Type": "JWT", "TokenLocality": "global", "MaxTokenTTL": "10m",
                        "Default": True, "Config": _config()})
    assert (code, other) == (400, "default method already exists: corp")
    code, updated = call(st, "POST", "/v1/acl/auth-method/corp", "root-secret",
                         {"Name": "corp", "MaxTokenTTL": "2h"})
    assert code == 200 and updated["MaxTokenTTL"] == "2h0m0s" and updated["Default"] is False
    assert updated["CreateIndex"] == method["CreateIndex"] < updated["ModifyIndex"]
    assert call(st, "POST", "/v1/acl/auth-method/corp", "root-secret", {"Name": "x"})[1] == \
        "ACL auth-method name does not match request path"
    code, rules = call(st, "GET", "/v1/acl/binding-rules", "root-secret")
    assert code == 200 and [r["AuthMethod"] for r in rules] == ["corp", "corp"]
    rid = rules[0]["ID"]
    code, rule = call(st, "POST", f"/v1/acl/binding-rule/{rid}", "root-secret", {"Description": "engineers"})
    assert code == 200 and rule["Description"] == "engineers" and rule["BindType"] in ("policy", "role")
    assert call(st, "POST", "/v1/acl/binding-rule", "root-secret",
                {"AuthMethod": "ghost", "BindType": "management"}) == (400, "ACL auth method ghost not found")
    assert call(st, "GET", "/v1/acl/binding-rule/nope", "root-secret") == (404, "ACL binding rule not found")
    assert call(st, "DELETE", f"/v1/acl/binding-rule/{rid}", "root-secret")[0] == 200
    assert call(st, "DELETE", f"/v1/acl/binding-rule/{rid}", "root-secret") == \
        (500, "ACL binding rule not found")
    assert call(st, "DELETE", "/v1/acl/auth-method/corp", "root-secret")[0] == 200
    assert call(st, "GET", "/v1/acl/auth-methods") == (200, [])


def test_methods_and_rules_survive_a_snapshot():
    st = _state()
    _setup(st)
    copy = StateStore()
    copy.restore(st.snapshot(), st.applied_index)
    assert copy.tables["acl_auth_methods"] == st.tables["acl_auth_methods"]
    assert copy.tables["acl_binding_rules"] == st.tables["acl_binding_rules"] != {}


def test_login_with_a_signed_jwt_makes_a_working_token():
    st = _state()
    _setup(st)
    jwt = sign(_claims(groups=["eng", "ops"], iat=time.time() - 5, exp=time.time() + 300))
    code, token = call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": "corp", "LoginToken": jwt})
    assert code == 200, token
    assert token["Name"] == "JWT-alice" and token["Type"] == "client" and token["Global"] is False
    assert token["Policies"] == ["eng-alice"] and token["Roles"] == [{"ID": "r-ops", "Name": "ops"}]
    assert token["ExpirationTTL"] == "1h0m0s" and token["ExpirationTime"]
    code, me = call(st, "GET", "/v1/acl/token/self", token["SecretID"])
    assert code == 200 and me["AccessorID"] == token["AccessorID"]
    req = Request("GET", "/v1/nodes", {}, "/v1/nodes", {"HTTP_X_NOMAD_TOKEN": token["SecretID"]})
    api = api_over(st, acl_enabled=True)
    resolved, acl = http_acl.resolve(req, api)
    assert resolved["AccessorID"] == token["AccessorID"] and not acl.management


def test_a_management_rule_makes_a_management_token():
    st = _state()
    _setup(st)
    call(st, "POST", "/v1/acl/binding-rule", "root-secret",
         {"AuthMethod": "corp", "Selector": "value.user == alice", "BindType": "management"})
    jwt = sign(_claims(iat=time.time(), exp=time.time() + 60))
    code, token = call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": "corp", "LoginToken": jwt})
    assert code == 200 and token["Type"] == "management" and token["Policies"] == []


@pytest.mark.parametrize(("body", "code", "text"), [
    ({}, 400, "invalid login request: 2 errors occurred:\n\t* missing auth method name\n"
              "\t* missing login token\n\n"),
    ({"AuthMethodName": "nope", "LoginToken": "x"}, 400, 'auth-method "nope" not found'),
    ({"AuthMethodName": "corp", "Token": "x"}, 400, "unknown login request fields: Token"),
    ({"AuthMethodName": "corp", "LoginToken": sign(_live(), _OTHER_RSA)}, 401,
     "unable to validate provided token: unable to verify signature of JWT token: error verifying token "
     "signature: no known key successfully validated the token signature"),
    ({"AuthMethodName": "corp", "LoginToken": sign(_live(iss="https://evil"))}, 401,
     "unable to validate provided token: invalid JWT issuer: https://evil"),
    ({"AuthMethodName": "corp", "LoginToken": sign(_live(aud="web"))}, 401,
     "unable to validate provided token: unable to verify signature of JWT token: invalid audience (aud) "
     "claim: audience claim does not match any expected audience"),
    ({"AuthMethodName": "corp", "LoginToken": sign(_live(iat=1000, exp=2000))}, 401,
     "unable to validate provided token: unable to verify signature of JWT token: invalid expiration time "
     "(exp) claim: token is expired"),
    ({"AuthMethodName": "corp", "LoginToken": "fresh:sales"}, 400, "no role or policy bindings matched"),
])
def test_login_refusals_are_nomads(body, code, text):
    st = _state()
    _setup(st)
    if body.get("LoginToken") == "fresh:sales":
        body = {**body, "LoginToken": sign(_claims(groups=["sales"], iat=time.time(), exp=time.time() + 60))}
    assert call(st, "POST", "/v1/acl/login", "", body) == (code, text)
    assert len(st.tables["acl_tokens"]) == 1  # only the bootstrap token


def test_oidc_login_endpoints_say_why_not():
    st = _state()
    assert call(st, "POST", "/v1/acl/oidc/auth-url", "", {"AuthMethodName": "x"}) == \
        (400, 'auth-method "x" not found')


# ---------------------------------------------------------------- the state-machine commands


def test_the_store_keeps_one_default_and_leaves_unchanged_records_alone():
    st = _state()
    corp = {**_method(Default=True), "Name": "corp"}
    assert st.apply(4, command("acl_auth_method_upsert", methods=[corp]))["ok"]
    other = {**_method(Default=True), "Name": "other"}
    assert st.apply(5, command("acl_auth_method_upsert", methods=[other])) == {
        "ok": False, "error": "default ACL auth method already exists: corp", "code": 500}
    assert st.apply(6, command("acl_auth_method_upsert", methods=[dict(corp)]))["ok"]  # same hash
    assert st.tables["acl_auth_methods"]["corp"]["ModifyIndex"] == 4
    assert st.table_index["acl_auth_methods"] == 4
    rule = {"ID": "r1", "AuthMethod": "ghost", "BindType": "management", "Hash": "h"}
    assert st.apply(7, command("acl_binding_rule_upsert", rules=[rule], created=["r1"]))["error"] == \
        "ACL binding rule insert failed: ACL auth method not found"
    assert st.apply(8, command("acl_binding_rule_upsert", rules=[{**rule, "AuthMethod": "corp"}],
                               created=["r1"]))["ok"]
    update = command("acl_binding_rule_upsert", rules=[{**rule, "ID": "r2", "AuthMethod": "corp"}])
    assert st.apply(9, update)["error"] == "cannot find binding rule r2"
    gone = st.apply(10, command("acl_auth_method_delete", names=["nope"]))
    assert gone["error"] == "ACL auth method not found"
    assert st.apply(11, command("acl_auth_method_delete", names=["corp"]))["ok"]
    assert list(st.tables["acl_binding_rules"]) == ["r1"]  # a method's rules outlive it, as in Nomad


# ---------------------------------------------------------------- keys from a JWKS URL or OIDC discovery


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "e": _b64(n.e.to_bytes(3, "big")),
                "n": _b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big"))}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        return {"kty": "EC", "kid": kid, "crv": "P-256", "x": _b64(n.x.to_bytes(32, "big")),
                "y": _b64(n.y.to_bytes(32, "big"))}
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": _b64(raw)}


@pytest.fixture
def idp():
    """An identity provider on a loopback port: its OIDC discovery document and JWKS."""
    import http.server
    import threading

    served: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in served:
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b"no such document")
                return
            body = json.dumps(served[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    served["/jwks"] = {"keys": [_jwk(_EC, "ec-1"), _jwk(_RSA, "rsa-1"), {"kty": "oct", "k": "c2VjcmV0"}]}
    served["/.well-known/openid-configuration"] = {"issuer": base, "jwks_uri": f"{base}/jwks"}
    try:
        yield base, served
    finally:
        httpd.shutdown()
        httpd.server_close()


def _signed_with_kid(claims: dict[str, Any], key: Any, alg: str, kid: str) -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    return sign_raw(head, _b64(json.dumps(claims).encode()), key, alg)


def sign_raw(head: str, body: str, key: Any, alg: str) -> str:
    data = f"{head}.{body}".encode()
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(sig)}"


def test_jwks_keys_are_read_as_go_jose_reads_them():
    keys = acl_auth.jwk_keys({"keys": [_jwk(_RSA, "a"), _jwk(_EC, "b"), _jwk(_ED, "c"),
                                       {"kty": "RSA", "use": "enc", "n": "AQ", "e": "AQ"}, {"kty": "oct"}]})
    assert [k for k, _ in keys] == ["a", "b", "c"]
    with pytest.raises(LoginError, match="failed to decode keys"):
        acl_auth.jwk_keys({"keys": "none"})


def test_login_with_keys_from_a_jwks_url_and_from_oidc_discovery(idp):
    base, served = idp
    st = _state()
    for name, config in (("jwks", {"JWKSURL": f"{base}/jwks", "SigningAlgs": ["ES256", "RS256"]}),
                         ("discovery", {"OIDCDiscoveryURL": base, "SigningAlgs": ["ES256", "RS256"]})):
        code, got = call(st, "POST", "/v1/acl/auth-method", "root-secret",
                         {"Name": name, "Type": "JWT", "TokenLocality": "global", "MaxTokenTTL": "10m",
                          "Config": {**config, "BoundAudiences": ["nomad"],
                                     "ClaimMappings": {"sub": "user"}}})
        assert code == 200, got
        code, got = call(st, "POST", "/v1/acl/binding-rule", "root-secret",
                         {"AuthMethod": name, "BindType": "policy", "BindName": "node-read"})
        assert code == 200, got
        jwt = _signed_with_kid(_live(), _EC, "ES256", "ec-1")
        code, token = call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": name, "LoginToken": jwt})
        assert code == 200, token
        assert token["Policies"] == ["node-read"] and token["Global"] is True
        unnamed = {"AuthMethodName": name, "LoginToken": sign(_live())}
        assert call(st, "POST", "/v1/acl/login", "", unnamed)[0] == 200  # no kid: every key is tried
    wrong_kid = _signed_with_kid(_live(), _EC, "ES256", "rsa-1")
    assert call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": "jwks", "LoginToken": wrong_kid}) == (
        401, "unable to validate provided token: unable to verify signature of JWT token: error verifying "
             "token signature: failed to verify id token signature")
    del served["/jwks"]
    code, text = call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": "jwks",
                                                       "LoginToken": sign(_live())})
    assert (code, text) == (401, "unable to validate provided token: unable to verify signature of JWT "
                                 "token: error verifying token signature: fetching keys oidc: get keys "
                                 "failed: 404 Not Found: no such document")
    served["/.well-known/openid-configuration"]["issuer"] = "https://elsewhere"
    code, text = call(st, "POST", "/v1/acl/login", "", {"AuthMethodName": "discovery",
                                                       "LoginToken": sign(_live())})
    assert (code, text) == (401, "unable to validate provided token: unable to get validation keys from OIDC "
                                 f'provider: issuer did not match the returned issuer, expected "{base}" got '
                                 '"https://elsewhere"')
