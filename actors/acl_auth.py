"""ACL auth methods, binding rules and the JWT login (Nomad 1.5+'s SSO), as pure functions.

The reference is Nomad's ``nomad/structs/acl.go`` (``ACLAuthMethod``,
``ACLAuthMethodConfig``, ``ACLBindingRule``: Merge, Canonicalize, Validate
and their messages), ``lib/auth/jwt`` with hashicorp/cap's JWT validator,
``lib/auth/claims.go`` (claim mappings), ``lib/auth/binder.go`` (selectors
and bind names) and ``ACL.Login`` in ``nomad/acl_endpoint.go``.

* An **auth method** of type ``JWT`` verifies a login JWT against the PEM
  public keys of ``JWTValidationPubKeys`` (RSA: RS256/384/512, PS256/384/512;
  ECDSA: ES256/384/512; Ed25519: EdDSA), or else the JSON Web Key Set its
  ``JWKSURL`` serves, or else the one its ``OIDCDiscoveryURL``'s discovery
  document names (the HTTP edge fetches them at each login, as Nomad does:
  :func:`jwk_keys` reads them), then ``BoundIssuer``, ``BoundAudiences``,
  ``SigningAlgs`` (RS256 when none) and the time claims with cap's leeways.
  The ``OIDC`` type (a browser flow against a provider) is refused when the
  method is written, rather than stored and failing every login.
* ``ClaimMappings`` / ``ListClaimMappings`` copy claims (a name, or a JSON
  pointer ``/a/b``) to ``value.<name>`` / ``list.<name>``, which a binding
  rule's ``Selector`` (a go-bexpr expression, :mod:`actors.http_filter`)
  tests and its ``BindName`` interpolates (``${value.name}``, HIL's syntax).
* Login binds every rule of the method whose selector matches: ``role`` and
  ``policy`` rules add the role or policy so named when it exists,
  ``management`` makes a management token.  No binding: Nomad's ``400 no
  role or policy bindings matched``.

Everything here is deterministic: the edge passes the time in.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import math
import re
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_pem_x509_certificate

from actors.state.acl_ops import multi_error
from actors.state.autopilot_config import go_duration, parse_go_duration

__all__ = ["AuthError", "LoginError", "bind", "canonical_method", "canonical_rule", "format_token_name",
           "interpolate", "method_out", "method_stub", "rule_out", "rule_stub", "selector_data",
           "validate_jwt"]

TYPE_JWT, TYPE_OIDC = "JWT", "OIDC"
METHOD_TYPES = (TYPE_OIDC, TYPE_JWT)  # Nomad's ValidACLAuthMethodTypes
LOCALITIES = ("local", "global")
DEFAULT_TOKEN_NAME_FORMAT = "${auth_method_type}-${auth_method_name}"
VALID_METHOD_NAME = re.compile(r"[a-zA-Z0-9-]{1,128}")  # Nomad's ValidACLAuthMethod
VALID_POLICY_NAME = re.compile(r"[a-zA-Z0-9-]{1,128}")  # ValidPolicyName
VALID_ROLE_NAME = re.compile(r"[a-zA-Z0-9-]{1,128}")  # ValidACLRoleName
MAX_RULE_DESCRIPTION_LENGTH = 256  # maxACLBindingRuleDescriptionLength
BIND_TYPES = ("role", "policy", "management")

# cap/jwt: the leeway when a claim is missing (DefaultLeewaySeconds) and go-jose's DefaultLeeway, the
# clock skew allowed on every time claim, both used when the method's leeway is 0; negative is none.
DEFAULT_MISSING_CLAIM_LEEWAY_S = 150
DEFAULT_CLOCK_SKEW_S = 60
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")
MAX_LOGIN_TOKEN_BYTES = 64 * 1024  # a login JWT longer than this is refused unparsed

# ACLAuthMethodConfig's fields: (JSON name, kind). Durations are stored in nanoseconds.
CONFIG_FIELDS: dict[str, str] = {
    "JWTValidationPubKeys": "list", "JWKSURL": "str", "OIDCDiscoveryURL": "str", "OIDCClientID": "str",
    "OIDCClientSecret": "str", "OIDCClientAssertion": "any", "OIDCEnablePKCE": "bool",
    "OIDCDisableUserInfo": "bool", "OIDCScopes": "list", "BoundAudiences": "list", "BoundIssuer": "list",
    "AllowedRedirectURIs": "list", "DiscoveryCaPem": "list", "JWKSCACert": "str", "SigningAlgs": "list",
    "ExpirationLeeway": "duration", "NotBeforeLeeway": "duration", "ClockSkewLeeway": "duration",
    "ClaimMappings": "map", "ListClaimMappings": "map", "VerboseLogging": "bool",
}
METHOD_FIELDS = ("Name", "Type", "TokenLocality", "TokenNameFormat", "MaxTokenTTL", "Default", "Config")
METHOD_READ_ONLY = ("Hash", "CreateTime", "ModifyTime", "CreateIndex", "ModifyIndex")
RULE_FIELDS = ("ID", "Description", "AuthMethod", "Selector", "BindType", "BindName")
RULE_READ_ONLY = ("Hash", "CreateTime", "ModifyTime", "CreateIndex", "ModifyIndex")  # a read's, sent back

URL_SCHEMES = ("http://", "https://")
UNSUPPORTED_OIDC = ("auth method type OIDC is not supported by this agent (its login is a browser "
                    "flow against an OIDC provider); use type JWT with JWTValidationPubKeys")


class AuthError(ValueError):
    """A request Nomad refuses: its HTTP status and text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class LoginError(ValueError):
    """Why a login JWT is not valid (cap's and Nomad's words)."""


# ---------------------------------------------------------------- decoding and shapes


def _duration(raw: Any, field: str) -> int:
    """A Go duration as Nomad's UnmarshalJSON takes it: a string ("" is 0) or nanoseconds."""
    if raw is None or raw == "":
        return 0
    if isinstance(raw, str):
        try:
            return parse_go_duration(raw)
        except ValueError as e:
            raise AuthError(400, str(e)) from None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw)
    raise AuthError(400, f"unexpected {field} type: {raw}")


def _config(raw: Any) -> dict[str, Any] | None:
    """The method's Config as stored: every field, Go's zero value where not given."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise AuthError(400, "Config must be a JSON object")
    unknown = sorted(set(raw) - set(CONFIG_FIELDS))
    if unknown:
        raise AuthError(400, f"unknown auth method Config fields: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, kind in CONFIG_FIELDS.items():
        value = raw.get(name)
        if kind == "duration":
            out[name] = _duration(value, name)
        elif kind == "str":
            if not isinstance(value, (str, type(None))):
                raise AuthError(400, f"Config.{name} must be a string")
            out[name] = value or ""
        elif kind == "bool":
            if not isinstance(value, (bool, type(None))):
                raise AuthError(400, f"Config.{name} must be a boolean")
            out[name] = bool(value)
        elif kind == "list":
            if value is not None and (not isinstance(value, list)
                                      or not all(isinstance(v, str) for v in value)):
                raise AuthError(400, f"Config.{name} must be a list of strings")
            out[name] = list(value) if value is not None else None
        elif kind == "map":
            if value is not None and (not isinstance(value, dict)
                                      or not all(isinstance(v, str) for v in value.values())):
                raise AuthError(400, f"Config.{name} must be a map of strings")
            out[name] = dict(value) if value is not None else None
        else:
            out[name] = value
    return out


def _hash(*parts: Any) -> str:
    """Nomad's SetHash: a blake2b-256 digest of the defining fields (base64, as Go's []byte)."""
    digest = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=32).digest()
    return base64.b64encode(digest).decode()


def _rfc3339(t: Any) -> Any:
    import datetime as dt

    if not isinstance(t, (int, float)) or isinstance(t, bool):
        return "0001-01-01T00:00:00Z"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dur_out(ns: int) -> str:
    return go_duration(ns) if ns else ""  # Nomad's MarshalJSON: "" for zero


def method_stub(m: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLAuthMethodStub``."""
    return {"Name": m["Name"], "Type": m.get("Type", ""), "Default": bool(m.get("Default")),
            "Hash": m.get("Hash", ""), "CreateIndex": m.get("CreateIndex", 0),
            "ModifyIndex": m.get("ModifyIndex", 0)}


def method_out(m: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLAuthMethod`` as its API answers it (``Sanitize``d: the OIDC client secret and the client
    assertion's secret and private key redacted);
    a copy, never sharing the store's lists."""
    cfg = m.get("Config")
    config = None
    if cfg is not None:
        config = {k: (_dur_out(cfg.get(k) or 0) if kind == "duration" else copy.deepcopy(cfg.get(k)))
                  for k, kind in CONFIG_FIELDS.items()}
        if config.get("OIDCClientSecret"):
            config["OIDCClientSecret"] = "redacted"
        assertion = config.get("OIDCClientAssertion")
        if isinstance(assertion, dict):  # Sanitize: its client secret and private key too
            if assertion.get("ClientSecret"):
                assertion["ClientSecret"] = "redacted"
            key = assertion.get("PrivateKey")
            if isinstance(key, dict) and key.get("PemKey"):
                key["PemKey"] = "redacted"
    return {"Name": m["Name"], "Type": m.get("Type", ""), "TokenLocality": m.get("TokenLocality", ""),
            "TokenNameFormat": m.get("TokenNameFormat", ""),
            "MaxTokenTTL": _dur_out(m.get("MaxTokenTTL") or 0),
            "Default": bool(m.get("Default")), "Config": config, "Hash": m.get("Hash", ""),
            "CreateTime": _rfc3339(m.get("CreateTime")), "ModifyTime": _rfc3339(m.get("ModifyTime")),
            "CreateIndex": m.get("CreateIndex", 0), "ModifyIndex": m.get("ModifyIndex", 0)}


def rule_stub(r: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLBindingRuleListStub``."""
    return {"ID": r["ID"], "Description": r.get("Description", ""), "AuthMethod": r.get("AuthMethod", ""),
            "Hash": r.get("Hash", ""), "CreateIndex": r.get("CreateIndex", 0),
            "ModifyIndex": r.get("ModifyIndex", 0)}


def rule_out(r: dict[str, Any]) -> dict[str, Any]:
    """Nomad's ``ACLBindingRule``."""
    return {"ID": r["ID"], "Description": r.get("Description", ""), "AuthMethod": r.get("AuthMethod", ""),
            "Selector": r.get("Selector", ""), "BindType": r.get("BindType", ""),
            "BindName": r.get("BindName", ""), "Hash": r.get("Hash", ""),
            "CreateTime": _rfc3339(r.get("CreateTime")), "ModifyTime": _rfc3339(r.get("ModifyTime")),
            "CreateIndex": r.get("CreateIndex", 0), "ModifyIndex": r.get("ModifyIndex", 0)}


# ---------------------------------------------------------------- auth methods


def _config_problems(method_type: str, cfg: dict[str, Any] | None) -> list[str]:
    """``ACLAuthMethodConfig.Validate``, and what this agent cannot do with a config."""
    if cfg is None:
        return ["missing auth method Config"]
    if method_type != TYPE_JWT:
        return []
    problems = []
    if not cfg["OIDCDiscoveryURL"] and not cfg["JWKSURL"] and not cfg["JWTValidationPubKeys"]:
        problems.append("JWT auth method requires either OIDCDiscoveryURL, or JWKS URL, or "
                        "JWTValidationPubKeys set")
    for field in ("JWKSURL", "OIDCDiscoveryURL"):
        if cfg[field] and not cfg[field].startswith(URL_SCHEMES):
            problems.append(f"{field} must be an http:// or https:// URL")
    for pem in cfg["JWTValidationPubKeys"] or []:
        try:
            parse_public_key(pem)
        except LoginError as e:
            problems.append(str(e))
            break
    for alg in cfg["SigningAlgs"] or []:
        if alg not in SUPPORTED_ALGS:
            problems.append(f"unsupported signing algorithm {alg!r} (supported: {', '.join(SUPPORTED_ALGS)})")
    return problems


def canonical_method(body: Any, existing: dict[str, Any] | None, *, min_ttl_ns: int, max_ttl_ns: int,
                     now_s: float) -> dict[str, Any]:
    """The method to store from a request body: merged with *existing* (an update: Nomad's ``Merge``),
    canonicalized and validated as ``UpsertAuthMethods`` does; AuthError with Nomad's text."""
    if not isinstance(body, dict):
        raise AuthError(400, "Request body must be a JSON object")
    unknown = sorted(set(body) - set(METHOD_FIELDS) - set(METHOD_READ_ONLY))
    if unknown:
        raise AuthError(400, f"unknown auth method fields: {', '.join(unknown)}")
    for field in ("Name", "Type", "TokenLocality", "TokenNameFormat"):
        if not isinstance(body.get(field) or "", str):
            raise AuthError(400, f"{field} must be a string")
    if not isinstance(body.get("Default", False), (bool, type(None))):
        raise AuthError(400, "Default must be a boolean")
    m: dict[str, Any] = {"Name": body.get("Name") or "", "Type": body.get("Type") or "",
                         "TokenLocality": body.get("TokenLocality") or "",
                         "TokenNameFormat": body.get("TokenNameFormat") or "",
                         "MaxTokenTTL": _duration(body.get("MaxTokenTTL"), "MaxTokenTTL"),
                         "Default": bool(body.get("Default")), "Config": _config(body.get("Config"))}
    if existing is not None:  # helper.Merge: a zero value takes the existing one's
        for field in ("Type", "TokenLocality", "TokenNameFormat", "MaxTokenTTL", "Config"):
            if not m[field]:
                m[field] = existing.get(field)
        m["CreateTime"] = existing.get("CreateTime")
    else:
        m["CreateTime"] = now_s
    m["ModifyTime"] = now_s
    m["TokenNameFormat"] = m["TokenNameFormat"] or DEFAULT_TOKEN_NAME_FORMAT
    problems = []
    if not VALID_METHOD_NAME.fullmatch(m["Name"]):
        problems.append(f"invalid name '{m['Name']}'")
    if m["TokenLocality"] not in LOCALITIES:
        problems.append(f"invalid token locality '{m['TokenLocality']}'")
    if m["Type"] not in METHOD_TYPES:
        problems.append(f"invalid token type '{m['Type']}'")
    elif m["Type"] == TYPE_OIDC:
        problems.append(UNSUPPORTED_OIDC)
    config_problems = _config_problems(m["Type"], m["Config"])
    if config_problems:
        text = config_problems[0] if len(config_problems) == 1 else multi_error(config_problems)
        problems.append(f"invalid config: {text}")
    if not min_ttl_ns <= m["MaxTokenTTL"] <= max_ttl_ns:
        problems.append(f"invalid MaxTokenTTL value '{go_duration(m['MaxTokenTTL'])}' (should be between "
                        f"{go_duration(min_ttl_ns)} and {go_duration(max_ttl_ns)})")
    if problems:
        raise AuthError(400, f"auth method 0 invalid: {multi_error(problems)}")
    m["Hash"] = _hash(*(m[k] for k in METHOD_FIELDS))
    return m


# ---------------------------------------------------------------- binding rules


def canonical_rule(body: Any, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The rule to store (no ID, times or indexes yet): merged with *existing* on an update and
    validated as ``UpsertBindingRules`` does; AuthError with Nomad's text."""
    if not isinstance(body, dict):
        raise AuthError(400, "Request body must be a JSON object")
    unknown = sorted(set(body) - set(RULE_FIELDS) - set(RULE_READ_ONLY))
    if unknown:
        raise AuthError(400, f"unknown binding rule fields: {', '.join(unknown)}")
    for field in RULE_FIELDS:
        if not isinstance(body.get(field) or "", str):
            raise AuthError(400, f"{field} must be a string")
    r = {k: body.get(k) or "" for k in RULE_FIELDS}
    if existing is not None:
        for field in ("BindName", "BindType", "AuthMethod"):  # ACLBindingRule.Merge
            r[field] = r[field] or existing.get(field, "")
        if r["AuthMethod"] != existing.get("AuthMethod"):
            raise AuthError(400, "cannot update auth method for binding rule, create a new rule instead")
    problems = []
    if not r["AuthMethod"]:
        problems.append("auth method is missing")
    if len(r["Description"]) > MAX_RULE_DESCRIPTION_LENGTH:
        problems.append(f"description longer than {MAX_RULE_DESCRIPTION_LENGTH}")
    if not r["BindType"]:
        problems.append("bind type is missing")
    elif r["BindType"] in ("role", "policy"):
        if not r["BindName"]:
            problems.append("bind name is missing")
    elif r["BindType"] == "management":
        if r["BindName"]:
            problems.append("bind name should be empty")
    else:
        problems.append(f'unsupported bind type: "{r["BindType"]}"')
    if r["Selector"]:
        from actors.http_filter import FilterError, compile_filter  # it imports the HTTP API

        try:
            compile_filter(r["Selector"])
        except FilterError as e:
            problems.append(f"selector is invalid: {e}")
    if problems:
        raise AuthError(400, f"binding rule 0 invalid: {multi_error(problems)}")
    return r


def rule_hash(r: dict[str, Any]) -> str:
    return _hash(*(r.get(k, "") for k in RULE_FIELDS))


# ---------------------------------------------------------------- JWT validation


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise binascii.Error("illegal base64 data")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_public_key(pem: str) -> Any:
    """cap's ``ParsePublicKeyPEM`` (PKIX public key or certificate; RSA, ECDSA, and Ed25519 here)."""
    data = pem.encode() if isinstance(pem, str) else pem
    key: Any = None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:
            key = load_pem_x509_certificate(data).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise LoginError("unable to parse public key for JWT auth: data does not contain any valid RSA, "
                         "ECDSA or Ed25519 public keys")
    return key


_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def _verifies(key: Any, alg: str, signature: bytes, data: bytes) -> bool:
    """go-jose's verification of *data* with *key* by the header's *alg*."""
    try:
        if alg[:2] in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey) and alg[2:] in _HASHES:
            digest = _HASHES[alg[2:]]()
            pad = (padding.PKCS1v15() if alg[:2] == "RS"
                   else padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO))
            key.verify(signature, data, pad, digest)
            return True
        if (alg in _CURVES and isinstance(key, ec.EllipticCurvePublicKey)
                and isinstance(key.curve, _CURVES[alg])):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[alg[2:]]()))
            return True
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
    except InvalidSignature:
        return False
    return False


def _json_kind(v: Any) -> str:
    """What Go's encoding/json calls a JSON value's kind in its errors."""
    if isinstance(v, bool):
        return "bool"
    return {str: "string", list: "array", dict: "object"}.get(type(v), "number")


def _go_number(text: str) -> float:
    """A JSON number as Go decodes it into an ``interface{}``: a float64, or refused when out of range."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def _no_constant(name: str) -> Any:
    """Python's json takes NaN and Infinity; Go's refuses them as invalid JSON."""
    raise ValueError(f"invalid character {name.lstrip('-')[0]!r} looking for beginning of value")


def _go_json(data: bytes) -> Any:
    """A token segment's JSON, decoded as Go's encoding/json does (numbers float64, NaN refused, a
    nesting Python cannot follow refused rather than raising RecursionError); ValueError."""
    try:
        return json.loads(data.decode("utf-8"), parse_float=_go_number, parse_int=_go_number,
                          parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("exceeded max depth") from None


def _go_int64(value: float) -> int:
    """Go's float64 to int64 conversion: truncation; out of range, amd64's 0x8000000000000000."""
    return int(value) if -(2**63) <= value < 2**63 else -(2**63)


def _numeric(claims: dict[str, Any], name: str) -> int:
    """A time claim as go-jose's NumericDate decodes it (truncated to seconds; missing: 0)."""
    value = claims.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LoginError("go-jose/go-jose/jwt: expected number value to unmarshal NumericDate")
    return _go_int64(value)


def _registered_claims(claims: dict[str, Any]) -> None:
    """cap decodes the token's registered claims into go-jose's ``jwt.Claims``: strings must be
    strings and the audience a string or a list of strings (null is no value, except for aud)."""
    for name in ("iss", "sub", "jti"):
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            raise LoginError(f"json: cannot unmarshal {_json_kind(value)} into Go struct field Claims.{name} "
                             "of type string")
    if "aud" in claims:
        aud = claims["aud"]
        if not isinstance(aud, str) and not (isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
            raise LoginError("go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience")


def _leeway(ns: int, default_s: float) -> float:
    return 0.0 if ns < 0 else default_s if ns == 0 else ns / 1e9


def _b64_int(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("not a base64url string")
    return int.from_bytes(_unb64(value), "big")


_JWK_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def _jwk_key(jwk: dict[str, Any]) -> Any:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_b64_int(jwk.get("e")), _b64_int(jwk.get("n"))).public_key()
    if kty == "EC" and jwk.get("crv") in _JWK_CURVES:
        curve = _JWK_CURVES[jwk["crv"]]()
        x, y = _b64_int(jwk.get("x")), _b64_int(jwk.get("y"))
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519" and isinstance(jwk.get("x"), str):
        return ed25519.Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    raise ValueError(f"unsupported key type {kty!r}")


def jwk_keys(document: Any) -> list[tuple[str, Any]]:
    """(kid, public key) of each signing key of a JSON Web Key Set; keys of other kinds or uses (an
    ``enc`` key) are left out; LoginError when the document is not a key set (go-oidc's words)."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise LoginError("oidc: failed to decode keys: the document has no \"keys\" list")
    out = []
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        try:
            out.append((str(jwk.get("kid") or ""), _jwk_key(jwk)))
        except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
            continue
    return out


def validate_jwt(token: str, config: dict[str, Any], now_s: float,
                 jwks: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
    """The claims of *token* if it is valid for the method's *config* (Nomad's ``jwt.Validate``);
    LoginError with the reason, in cap's words, otherwise.

    The keys are the config's PEM keys, else *jwks* (what the edge fetched from the method's
    JWKSURL or OIDC discovery: :func:`jwk_keys`), of which those with the token's ``kid`` when
    it names one (go-oidc's RemoteKeySet)."""
    if len(token) > MAX_LOGIN_TOKEN_BYTES:
        raise LoginError(f"error verifying token signature: token longer than {MAX_LOGIN_TOKEN_BYTES} bytes")
    keys = [parse_public_key(p) for p in config.get("JWTValidationPubKeys") or []]
    if not keys and jwks is None:
        raise LoginError("no JWTValidationPubKeys to verify the token with")
    parts = token.split(".")
    if len(parts) != 3:
        raise LoginError("error verifying token signature: go-jose/go-jose: compact JWS format must have "
                         "three parts")
    try:  # go-jose reads the header and the signature; the payload is read once the signature verifies
        header = _go_json(_unb64(parts[0]))
        signature = _unb64(parts[2])
        payload = _unb64(parts[1])
    except (binascii.Error, ValueError) as e:
        raise LoginError(f"error verifying token signature: {e}") from None
    if not isinstance(header, dict):
        raise LoginError("error verifying token signature: the token's header must be a JSON object")
    alg = header.get("alg") if isinstance(header.get("alg"), str) else ""
    data = f"{parts[0]}.{parts[1]}".encode()
    # go-jose refuses a signature whose "crit" names a header it does not implement (only "b64",
    # which changes what is signed: not taken here); its error then fails every key.
    crit = header.get("crit")
    verifiable = crit is None or (isinstance(crit, list) and all(c == "b64" for c in crit)
                                  and header.get("b64", True) is True)
    if keys:
        if not verifiable or not signature or not any(_verifies(k, alg, signature, data) for k in keys):
            raise LoginError("error verifying token signature: no known key successfully validated the "
                             "token signature")
    else:
        kid = header.get("kid") if isinstance(header.get("kid"), str) else ""
        candidates = [k for key_id, k in jwks or [] if not kid or key_id == kid]
        if not verifiable or not signature or not any(_verifies(k, alg, signature, data) for k in candidates):
            raise LoginError("error verifying token signature: failed to verify id token signature")
    try:
        claims = _go_json(payload)
    except ValueError as e:
        raise LoginError(f"error verifying token signature: {e}") from None
    if not isinstance(claims, dict):
        raise LoginError(f"error verifying token signature: json: cannot unmarshal {_json_kind(claims)} "
                         "into Go value of type map[string]interface {}")
    expected_algs = config.get("SigningAlgs") or ["RS256"]
    for a in expected_algs:
        if a not in SUPPORTED_ALGS:
            raise LoginError(f"invalid algorithm (alg) header parameter: unsupported signing algorithm {a!r}")
    if alg not in expected_algs:
        raise LoginError("invalid algorithm (alg) header parameter: token signed with unexpected algorithm")
    _registered_claims(claims)
    iat, exp, nbf = _numeric(claims, "iat"), _numeric(claims, "exp"), _numeric(claims, "nbf")
    audiences = config.get("BoundAudiences") or []
    if audiences:
        aud = claims.get("aud")
        aud_list = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in aud_list for a in audiences):
            raise LoginError("invalid audience (aud) claim: audience claim does not match any expected "
                             "audience")
    if not iat and not exp and not nbf:
        raise LoginError("no issued at (iat), not before (nbf), or expiration time (exp) claims in token")
    if not exp:  # cap: the latest of iat and nbf plus the leeway, in whole seconds
        exp = max(iat, nbf) + int(_leeway(config.get("ExpirationLeeway") or 0,
                                          DEFAULT_MISSING_CLAIM_LEEWAY_S))
    if not nbf:
        nbf = iat or exp - int(_leeway(config.get("NotBeforeLeeway") or 0, DEFAULT_MISSING_CLAIM_LEEWAY_S))
    skew = _leeway(config.get("ClockSkewLeeway") or 0, DEFAULT_CLOCK_SKEW_S)
    if now_s + skew < nbf:
        raise LoginError("invalid not before (nbf) claim: token not yet valid")
    if now_s - skew > exp:
        raise LoginError("invalid expiration time (exp) claim: token is expired")
    if iat and now_s + skew < iat:
        raise LoginError("invalid issued at (iat) claim: token issued in the future")
    issuers = config.get("BoundIssuer") or []
    if issuers:  # Nomad checks the issuer itself, after cap (so its message has no cap prefix)
        if "iss" not in claims:
            raise LoginError("auth method specifies BoundIssuers but the provided token does not contain "
                             "issuer information", )
        if not isinstance(claims["iss"], str):
            raise LoginError("unable to read iss property of provided token")
        if claims["iss"] not in issuers:
            raise LoginError(f"invalid JWT issuer: {claims['iss']}")
    return claims


def login_error_text(e: LoginError) -> str:
    """Nomad's 401 text: its wrapping of cap's error (the issuer checks are Nomad's own)."""
    text = str(e)
    own = ("auth method specifies BoundIssuers", "unable to read iss property", "invalid JWT issuer",
           "unable to parse public key", "unable to get validation keys from")
    inner = text if text.startswith(own) else f"unable to verify signature of JWT token: {text}"
    return f"unable to validate provided token: {inner}"


# ---------------------------------------------------------------- claims, selectors, bindings


def _claim(claims: dict[str, Any], source: str) -> Any:
    """A claim by name, or by JSON pointer when *source* starts with "/" (missing: None)."""
    if not source.startswith("/"):
        return claims.get(source)
    value: Any = claims
    for part in source[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and re.fullmatch(r"[+-]?[0-9]+", part) and 0 <= int(part) < len(value):
            value = value[int(part)]  # pointerstructure: strconv.ParseInt's decimal index, in range
        else:
            return None
    return value


def _go_type(v: Any) -> str:
    return "map[string]interface {}" if isinstance(v, dict) else "<nil>" if v is None else type(v).__name__


def _stringify(value: Any) -> str | None:
    """cap's ``stringifyClaimValue``: lists as JSON, numbers truncated to integers; None: not a scalar."""
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(_go_int64(value))
    return None


def _go_value(v: Any) -> str:
    """A decoded JSON value as Go's ``%v`` prints it (in Nomad's claim errors)."""
    if v is None:
        return "<nil>"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_value(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    return _stringify(v) or ""


def selector_data(config: dict[str, Any], claims: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Nomad's ``ACLAuthClaims``: ``{"value": {name: str}, "list": {name: [str]}}``; LoginError when a
    mapped claim cannot be a string (list)."""
    values: dict[str, Any] = {}
    for source, target in sorted((config.get("ClaimMappings") or {}).items()):
        raw = _claim(claims, source)
        if raw is None:
            continue
        text = _stringify(raw)
        if text is None:
            raise LoginError(f"error converting claim '{source}' to string from unknown type {_go_type(raw)}")
        values[target] = text
    lists: dict[str, Any] = {}
    for source, target in sorted((config.get("ListClaimMappings") or {}).items()):
        raw = _claim(claims, source)
        if raw is None:
            continue
        if isinstance(raw, dict):
            raise LoginError(f'"{source}" list claim could not be converted to string list')
        items = []
        for item in raw if isinstance(raw, list) else [raw]:
            text = _stringify(item)
            if text is None:
                raise LoginError(f'value {_go_value(item)} in "{source}" list claim could not be parsed as '
                                 'string')
            if text:
                items.append(text)
        lists[target] = items
    return {"value": values, "list": lists}


_HIL = re.compile(r"\$\$\{|\$\{([^}]*)\}")


def interpolate(text: str, variables: dict[str, str], lowercase: bool) -> str:
    """HIL's ``${name}`` interpolation of *variables* (``$${`` is a literal ``${``); ValueError."""
    if "${" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
            raise ValueError(f"unsupported interpolation ${{{m.group(1)}}}: only ${{variable}} is supported")
        if name not in variables:
            raise ValueError(f"unknown variable accessed: {name}")
        value = variables[name]
        return value.lower() if lowercase else value

    out = _HIL.sub(sub, text)
    rest = _HIL.sub("", text)
    if "${" in rest:
        raise ValueError("parse error: ${ without a closing }")
    return out


def format_token_name(fmt: str, method_type: str, method_name: str, values: dict[str, str]) -> str:
    """Nomad's ``formatTokenName``; AuthError (500) when the format does not interpolate."""
    variables = {"auth_method_type": method_type, "auth_method_name": method_name,
                 **{f"value.{k}": v for k, v in values.items()}}
    try:
        return interpolate(fmt or DEFAULT_TOKEN_NAME_FORMAT, variables, False)
    except ValueError as e:
        raise AuthError(500, f"failed to generate ACL token name: {e}") from None


def bind(rules: list[dict[str, Any]], config: dict[str, Any], data: dict[str, dict[str, Any]],
         role_ids_by_name: dict[str, str], policy_names: set[str] | frozenset[str]
         ) -> tuple[bool, list[str], list[str]]:
    """Nomad's ``Binder.Bind``: (management, policy names, role IDs) from the method's *rules* (in ID
    order) that match *data*; AuthError (500) for a bind name that does not interpolate or is invalid."""
    from actors.http_filter import FilterError, FilterTooSlow, compile_filter  # it imports the HTTP API

    variables = {f"value.{k}": "" for k in (config.get("ClaimMappings") or {}).values()}
    variables.update({f"value.{k}": v for k, v in data["value"].items()})
    policies: list[str] = []
    roles: list[str] = []
    for rule in rules:
        selector = rule.get("Selector") or ""
        if selector:
            try:
                if not compile_filter(selector, strict=True)(data):
                    continue
            except (FilterError, FilterTooSlow, TypeError, ValueError):
                # an invalid selector, or one go-bexpr fails to evaluate (through a claim value that is
                # not a map, ...: its error, through not/and/or), matches nothing (doesSelectorMatch)
                continue
        kind = rule.get("BindType", "")
        if kind == "management":
            return True, [], []
        try:
            name = interpolate(rule.get("BindName", ""), variables, True)
        except ValueError as e:
            raise AuthError(500, f'cannot compute "{kind}" bind name for bind target: {e}') from None
        valid = VALID_POLICY_NAME if kind == "policy" else VALID_ROLE_NAME
        if not valid.fullmatch(name):
            raise AuthError(500, f'computed "{kind}" bind name for bind target is invalid: "{name}"')
        if kind == "role" and name in role_ids_by_name and role_ids_by_name[name] not in roles:
            roles.append(role_ids_by_name[name])
        elif kind == "policy" and name in policy_names and name not in policies:
            policies.append(name)
    return False, policies, roles
