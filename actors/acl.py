"""Nomad's ACL system, the pure part: policy rules, compiled ACLs, what each route needs.

Pure code (no I/O, no actors): the HTTP edge (:mod:`actors.http_acl`)
resolves a token to its policies and asks this module whether a request may
run.  The reference is Nomad's ``acl/policy.go`` (parsing and the shorthand
``policy = ...`` expansions) and ``acl/acl.go`` (merging several policies
into one ACL: the most privilege wins, except ``deny``, which always wins).

**Policy rules** are Nomad's HCL, of which we read the subset policies use::

    namespace "default" {
      policy       = "read"                  # deny | read | write | scale
      capabilities = ["submit-job"]          # added to what the policy grants
    }
    node     { policy = "read" }             # deny | read | write
    agent    { policy = "write" }
    operator { policy = "read" }

``#``, ``//`` and ``/* */`` comments are allowed.  The same rules in HCL's
JSON form (``{"namespace": {"default": {"policy": "read"}}, ...}``) are
read too.  ``quota`` and ``plugin`` blocks are accepted and validated but
grant nothing here (no quotas or CSI plugins exist); any other key is an
error, as Nomad's strict parsing on policy writes makes it.

**Route requirements** (:func:`required`) map an HTTP method and path to
what Nomad's endpoint checks: ``read-job`` / ``list-jobs`` /
``submit-job`` in the request's namespace, ``node``, ``agent`` or
``operator`` read or write, or a management token.  Status, regions,
metrics and agent health are open, as in Nomad; the ``/v1/acl/`` endpoints
check tokens themselves.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACL", "ANONYMOUS_POLICY", "MANAGEMENT_ACL", "PERMISSION_DENIED", "TOKEN_EXPIRED", "TOKEN_NOT_FOUND",
    "Need", "Policy", "PolicyError", "compile_acl", "parse_hcl", "parse_policy", "required", "rules_json",
]

# Nomad's structs.ErrPermissionDenied and ErrTokenNotFound: both answered 403.
PERMISSION_DENIED = "Permission denied"
TOKEN_NOT_FOUND = "ACL token not found"
# Nomad's ErrTokenExpired: its HTTP layer maps no status to it, so an expired token is answered 500.
TOKEN_EXPIRED = "ACL token expired"
# Requests without a token get what this policy grants (Nomad's AnonymousACLToken).
ANONYMOUS_POLICY = "anonymous"
DEFAULT_NAMESPACE = "default"

DENY, READ, WRITE, SCALE = "deny", "read", "write", "scale"
COARSE_POLICIES = (DENY, READ, WRITE)  # node, agent, operator, quota, plugin
NAMESPACE_POLICIES = (DENY, READ, WRITE, SCALE)

# acl/policy.go isNamespaceCapabilityValid (Nomad 2.0's list).  Its fine-grained job capabilities
# (register-job ... delete-service-registration) each let a token make one of the writes submit-job
# allows (see required); no shorthand policy grants them.
NAMESPACE_CAPABILITIES = frozenset({
    "deny", "list-jobs", "parse-job", "read-job", "submit-job", "dispatch-job", "read-logs", "read-fs",
    "alloc-exec", "alloc-node-exec", "alloc-lifecycle", "csi-register-plugin", "csi-write-volume",
    "csi-read-volume", "csi-list-volume", "csi-mount-volume", "host-volume-create",
    "host-volume-register", "host-volume-read", "host-volume-write", "host-volume-delete",
    "list-scaling-policies", "read-scaling-policy", "read-job-scaling", "scale-job",
    "sentinel-override", "submit-recommendation", "tag-job-version",
    "register-job", "revert-job", "deregister-job", "purge-job", "evaluate-job", "plan-job", "stable-job",
    "fail-deployment", "pause-deployment", "promote-deployment", "unblock-deployment", "cancel-deployment",
    "set-alloc-health-deployment", "gc-allocation", "pause-allocation", "force-periodic-job",
    "delete-service-registration",
})
# acl/policy.go expandNamespacePolicy: what each shorthand grants.
_READ_CAPS = ("list-jobs", "parse-job", "read-job", "csi-list-volume", "csi-read-volume",
              "read-job-scaling", "list-scaling-policies", "read-scaling-policy", "host-volume-read")
_EXPAND = {
    DENY: ("deny",),
    READ: _READ_CAPS,
    WRITE: (*_READ_CAPS, "scale-job", "submit-job", "dispatch-job", "read-logs", "read-fs", "alloc-exec",
            "alloc-lifecycle", "csi-mount-volume", "csi-write-volume", "submit-recommendation",
            "host-volume-create"),
    SCALE: ("list-scaling-policies", "read-scaling-policy", "read-job-scaling", "scale-job", "read-job",
            "submit-recommendation"),
}
_VALID_NAMESPACE = re.compile(r"[a-zA-Z0-9\-*]{1,128}")  # acl/policy.go validNamespace
_COARSE_BLOCKS = ("node", "agent", "operator", "quota", "plugin")
# deny is handled apart: it always wins; "list" is the plugin block's level below read (Nomad's PolicyList)
_PRIVILEGE = {"": 0, "list": 1, READ: 2, WRITE: 3}


class PolicyError(ValueError):
    """Rules that cannot be parsed or name something Nomad does not know; the message says where."""


# ---------------------------------------------------------------- HCL subset


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
  | (?P<punct>[{}\[\]=,])
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PolicyError(f"line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return out


class _Parser:
    """``body := item*``; ``item := IDENT ('=' value | label* '{' body '}')``."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks, self.i = toks, 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PolicyError(f"unexpected end of rules, expected {what}")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take(repr(text))
        if tok.text != text:
            raise PolicyError(f"line {tok.line}: expected {text!r}, got {tok.text!r}")

    def body(self, closing: bool) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        while True:
            tok = self.peek()
            if tok is None:
                if closing:
                    raise PolicyError("unexpected end of rules, expected '}'")
                return items
            if tok.text == "}" and closing:
                self.i += 1
                return items
            items.append(self.item())

    def item(self) -> tuple[str, Any]:
        key = self.take("a key")
        if key.kind not in ("ident", "string"):
            raise PolicyError(f"line {key.line}: expected a key, got {key.text!r}")
        name = _unquote(key)
        labels: list[str] = []
        while (tok := self.take("'=' or '{'")).kind == "string" or tok.kind == "ident":
            labels.append(_unquote(tok))
        if tok.text == "=" and not labels:
            nxt = self.peek()
            if nxt is not None and nxt.text == "{":  # ``node = { ... }``: a block written as an object
                self.i += 1
                return name, ((), self.body(closing=True))
            return name, self.value()
        if tok.text != "{":
            raise PolicyError(f"line {tok.line}: expected '=' or '{{' after {name!r}, got {tok.text!r}")
        return name, (tuple(labels), self.body(closing=True))

    def value(self) -> Any:
        tok = self.take("a value")
        if tok.kind == "string":
            return _unquote(tok)
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.text == "[":
            values: list[Any] = []
            while True:
                nxt = self.peek()
                if nxt is not None and nxt.text == "]":
                    self.i += 1
                    return values
                values.append(self.value())
                sep = self.take("',' or ']'")
                if sep.text == "]":
                    return values
                if sep.text != ",":
                    raise PolicyError(f"line {sep.line}: expected ',' or ']', got {sep.text!r}")
        raise PolicyError(f"line {tok.line}: expected a value, got {tok.text!r}")


def _unquote(tok: _Tok) -> str:
    if tok.kind != "string":
        return tok.text
    try:
        return json.loads(tok.text)  # HCL's escapes are JSON's
    except ValueError:
        raise PolicyError(f"line {tok.line}: invalid string {tok.text}") from None


def parse_hcl(text: str) -> list[tuple[str, Any]]:
    """The HCL subset policies use, as ``[(key, value)]`` in order.

    An attribute's value is a string, number, bool or list; a block's is
    ``(labels, items)``: ``namespace "default" { policy = "read" }`` gives
    ``[("namespace", (("default",), [("policy", "read")]))]``.
    """
    return _Parser(_tokens(text)).body(closing=False)


def _from_json(doc: Any, where: str = "") -> list[tuple[str, Any]]:
    """HCL's JSON form -> the same items: an object is a block, nested objects are its labels."""
    if not isinstance(doc, dict):
        raise PolicyError(f"{where or 'rules'}: expected an object")
    items: list[tuple[str, Any]] = []
    for key, value in doc.items():
        labelled = key in ("namespace", "node_pool", "host_volume") and not where
        if labelled or (key == "path" and where == "variables"):
            if not isinstance(value, dict):
                raise PolicyError(f"{key}: expected an object of labelled blocks")
            items += [(key, ((label,), _from_json(body, f"{key} {label!r}")))
                      for label, body in value.items()]
        elif isinstance(value, dict):
            items.append((key, ((), _from_json(value, key))))
        else:
            items.append((key, value))
    return items


# ---------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy: capabilities per namespace (shorthands expanded) and the coarse levels."""

    namespaces: tuple[tuple[str, frozenset[str]], ...] = ()
    node: str = ""
    agent: str = ""
    operator: str = ""
    plugin: str = ""  # CSI plugins: list, read or write (Nomad's plugin block)
    # namespace -> ((variable path glob, capabilities), ...): its ``variables { path ... }`` block.
    variables: tuple[tuple[str, tuple[tuple[str, frozenset[str]], ...]], ...] = ()
    node_pools: tuple[tuple[str, frozenset[str]], ...] = ()  # pool name glob -> capabilities
    host_volumes: tuple[tuple[str, frozenset[str]], ...] = ()  # host volume name glob -> capabilities
    operator_caps: frozenset[str] = frozenset()  # the operator block's capabilities, its policy's expanded


# acl/policy.go: variables capabilities (read and write include list), node pool capabilities.
VARIABLE_CAPABILITIES = ("write", "read", "list", "destroy", "deny")
NODE_POOL_CAPABILITIES = ("read", "write", "delete", "deny")
_NODE_POOL_EXPAND = {DENY: ("deny",), READ: ("read",), WRITE: ("delete", "read", "write")}
# acl/policy.go host volume capabilities (what mounting a client's host volume into a job needs) and
# expandHostVolumePolicy; validVolume.
HOST_VOLUME_CAPABILITIES = ("deny", "mount-readonly", "mount-readwrite")
_HOST_VOLUME_EXPAND = {DENY: ("deny",), READ: ("mount-readonly",),
                       WRITE: ("mount-readonly", "mount-readwrite"), SCALE: ()}
_VALID_VOLUME = re.compile(r"[a-zA-Z0-9\-*]{1,128}")


def parse_policy(rules: str) -> Policy:
    """Nomad's ``acl.Parse`` with strict keys: HCL (or its JSON form) -> :class:`Policy`."""
    text = rules.strip()
    if not text:
        raise PolicyError("Invalid policy: no rules")
    if text.startswith("{"):
        try:
            items = _from_json(json.loads(text))
        except ValueError as e:
            raise PolicyError(f"rules are not valid JSON: {e}") from None
    else:
        items = parse_hcl(text)
    namespaces: dict[str, set[str]] = {}
    variables: dict[str, dict[str, set[str]]] = {}
    pools: dict[str, set[str]] = {}
    volumes: dict[str, set[str]] = {}
    coarse: dict[str, str] = {}
    operator_caps: frozenset[str] = frozenset()
    for key, value in items:
        if key == "namespace":
            name, caps, paths = _namespace_block(value)
            namespaces.setdefault(name, set()).update(caps)
            for path, pcaps in paths.items():
                variables.setdefault(name, {}).setdefault(path, set()).update(pcaps)
        elif key == "node_pool":
            name, caps = _node_pool_block(value)
            pools.setdefault(name, set()).update(caps)
        elif key == "host_volume":
            name, caps = _host_volume_block(value)
            volumes.setdefault(name, set()).update(caps)
        elif key in _COARSE_BLOCKS:
            if key in coarse:
                raise PolicyError(f"{key}: block given twice")
            coarse[key] = _coarse_block(key, value)
            if key == "operator":
                operator_caps = _operator_caps(value, coarse[key])
        else:
            raise PolicyError(f"unexpected key {key!r} (known: namespace, node_pool, host_volume, "
                              f"{', '.join(_COARSE_BLOCKS)})")
    if not namespaces and not coarse and not pools and not volumes:
        raise PolicyError(f"Invalid policy: {rules}")
    return Policy(namespaces=tuple(sorted((n, frozenset(c)) for n, c in namespaces.items())),
                  node=coarse.get("node", ""), agent=coarse.get("agent", ""),
                  operator=coarse.get("operator", ""), plugin=coarse.get("plugin", ""),
                  variables=tuple(sorted((n, tuple(sorted((p, frozenset(c)) for p, c in paths.items())))
                                         for n, paths in variables.items())),
                  node_pools=tuple(sorted((n, frozenset(c)) for n, c in pools.items())),
                  host_volumes=tuple(sorted((n, frozenset(c)) for n, c in volumes.items())),
                  operator_caps=operator_caps)


def _block(key: str, value: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise PolicyError(f"{key}: expected a block, like {key} {{ policy = \"read\" }}")
    labels, items = value
    body: dict[str, Any] = {}
    for k, v in items:
        if k in body:
            raise PolicyError(f"{key}: {k!r} given twice")
        body[k] = v
    return labels, body


def _namespace_block(value: Any) -> tuple[str, set[str], dict[str, set[str]]]:
    name, body, caps = _named_block("namespace", "namespace", "default", value, _VALID_NAMESPACE,
                                    ("policy", "capabilities", "variables"), NAMESPACE_POLICIES,
                                    NAMESPACE_CAPABILITIES, _EXPAND)
    paths = _variables_block(name, body["variables"]) if "variables" in body else {}
    return name, caps, paths


def _named_block(key: str, words: str, example: str, value: Any, valid_name: re.Pattern[str],
                 known: tuple[str, ...], policies: tuple[str, ...], capabilities: Any,
                 expand: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, Any], set[str]]:
    """A ``key "name" { policy = ..., capabilities = [...] }`` block (a namespace's, a host volume's):
    its name, its body and the capabilities it grants (its own and its policy's expansion), each part
    checked with Nomad's wording (*words* names the block in it)."""
    labels, body = _block(key, value)
    if len(labels) != 1:
        raise PolicyError(f'{key}: expected one name, like {key} "{example}" {{ ... }}')
    name = labels[0]
    if not valid_name.fullmatch(name):
        raise PolicyError(f"Invalid {words} name: {name!r}")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise PolicyError(f"{key} {name!r}: unexpected key {unknown[0]!r} (known: {', '.join(known)})")
    policy = body.get("policy", "")
    if policy and policy not in policies:
        raise PolicyError(f"Invalid {words} policy {policy!r} in {words} {name!r}: "
                          f"want one of {', '.join(NAMESPACE_POLICIES)}")
    caps = body.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise PolicyError(f"{key} {name!r}: capabilities must be a list of strings")
    for cap in caps:
        if cap not in capabilities:
            raise PolicyError(f"Invalid {words} capability {cap!r} in {words} {name!r}")
    return name, body, set(caps) | set(expand.get(policy, ()))


def _variables_block(namespace: str, value: Any) -> dict[str, set[str]]:
    """``variables { path "glob" { capabilities = [...] } }`` -> {glob: capabilities}, expanded as Nomad's."""
    labels, items = value if isinstance(value, tuple) and len(value) == 2 else ((), None)
    if labels or not isinstance(items, list):
        raise PolicyError(f"namespace {namespace!r}: variables: expected a block of path blocks")
    out: dict[str, set[str]] = {}
    for key, block in items:
        if key != "path":
            raise PolicyError(f"namespace {namespace!r}: variables: unexpected key {key!r} (known: path)")
        plabels, pbody = _block("path", block)
        if len(plabels) != 1:
            raise PolicyError(f'namespace {namespace!r}: variables: expected path "glob" {{ ... }}')
        unknown = sorted(set(pbody) - {"capabilities"})
        if unknown:
            raise PolicyError(f"namespace {namespace!r}: variables path {plabels[0]!r}: unexpected key "
                              f"{unknown[0]!r}")
        caps = pbody.get("capabilities", [])
        if not isinstance(caps, list) or not all(c in VARIABLE_CAPABILITIES for c in caps):
            raise PolicyError(f"Invalid variable capabilities {caps!r} in namespace {namespace!r} "
                              f"path {plabels[0]!r}: want some of {', '.join(VARIABLE_CAPABILITIES)}")
        got = set(caps)
        if "deny" in got:
            got = {"deny"}
        elif got & {"read", "write"}:
            got.add("list")
        out.setdefault(plabels[0], set()).update(got)
    return out


def _node_pool_block(value: Any) -> tuple[str, set[str]]:
    labels, body = _block("node_pool", value)
    if len(labels) != 1:
        raise PolicyError('node_pool: expected one name, like node_pool "default" { ... }')
    name = labels[0]
    unknown = sorted(set(body) - {"policy", "capabilities"})
    if unknown:
        raise PolicyError(f"node_pool {name!r}: unexpected key {unknown[0]!r} (known: policy, capabilities)")
    policy = body.get("policy", "")
    if policy and policy not in _NODE_POOL_EXPAND:
        raise PolicyError(f"Invalid node pool policy {policy!r} in node pool {name!r}: "
                          f"want one of {', '.join(_NODE_POOL_EXPAND)}")
    caps = body.get("capabilities", [])
    if not isinstance(caps, list) or not all(c in NODE_POOL_CAPABILITIES for c in caps):
        raise PolicyError(f"Invalid node pool capabilities {caps!r} in node pool {name!r}")
    return name, set(caps) | set(_NODE_POOL_EXPAND.get(policy, ()))


def _host_volume_block(value: Any) -> tuple[str, set[str]]:
    """``host_volume "glob" { policy = ..., capabilities = [...] }`` (Nomad 1.10's HostVolumePolicy)."""
    name, _, caps = _named_block("host_volume", "host volume", "data", value, _VALID_VOLUME,
                                 ("policy", "capabilities"), tuple(_HOST_VOLUME_EXPAND),
                                 HOST_VOLUME_CAPABILITIES, _HOST_VOLUME_EXPAND)
    return name, caps


def _coarse_block(key: str, value: Any) -> str:
    _, body = _block(key, value)
    unknown = sorted(set(body) - {"policy", "capabilities"} if key == "operator" else set(body) - {"policy"})
    if unknown:
        raise PolicyError(f"{key}: unexpected key {unknown[0]!r}")
    policy = body.get("policy")
    if key == "operator" and policy is None and "capabilities" in body:
        return ""  # Nomad 2.0: an operator block may grant capabilities alone
    allowed = COARSE_POLICIES + (("list",) if key == "plugin" else ())
    if policy not in allowed:
        raise PolicyError(f"Invalid {key} policy: {policy!r}: want one of {', '.join(allowed)}")
    return str(policy)


def _operator_caps(value: Any, policy: str) -> frozenset[str]:
    """The operator block's capabilities (acl/policy.go isOperatorCapabilityValid) with its policy's
    expansion (expandOperatorPolicy)."""
    caps = _block("operator", value)[1].get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise PolicyError("operator: capabilities must be a list of strings")
    for cap in caps:
        if cap not in OPERATOR_CAPABILITIES:
            raise PolicyError(f"Invalid operator capability {cap!r}")
    return frozenset(caps) | frozenset(_OPERATOR_EXPAND.get(policy, ()))


def rules_json(rules: str) -> dict[str, Any] | None:
    """Nomad's ``RulesJSON``: the policy as ``acl.Parse`` leaves it, generated on a policy read.

    Each block stays as written, in order (``Namespaces`` is a list, a
    namespace given twice appears twice), its ``Capabilities`` the written
    ones then the ``policy`` shorthand's expansion (and the host-volume
    implications), as Nomad's; a nil Go slice or pointer is null.  None for
    rules that do not parse (a stored policy always does).
    """
    try:
        parse_policy(rules)
        text = rules.strip()
        items = _from_json(json.loads(text)) if text.startswith("{") else parse_hcl(text)
    except (PolicyError, ValueError):
        return None
    out: dict[str, Any] = {"Namespaces": None, "NodePools": None, "HostVolumes": None, "Agent": None,
                           "Node": None, "Operator": None, "Sentinel": None, "Quota": None, "Plugin": None,
                           "Raw": rules, "ExtraKeysHCL": None}
    for key, value in items:
        labels, body = _block(key, value)
        policy = str(body.get("policy", ""))
        written = [str(c) for c in body.get("capabilities", [])]
        if key == "namespace":
            caps = written + list(_EXPAND.get(policy, ()))
            caps += [extra for c in caps for extra in _HOST_VOLUME_IMPLIES.get(c, ())]
            paths = None
            if "variables" in body:
                blocks = (_block("path", b) for _, b in body["variables"][1])
                paths = [{"PathSpec": plabels[0], "Capabilities": _variable_caps(pb.get("capabilities", []))}
                         for plabels, pb in blocks]
            out["Namespaces"] = [*(out["Namespaces"] or []), {
                "Name": labels[0], "Policy": policy, "Capabilities": caps or None,
                "Variables": {"Paths": paths} if paths is not None else None}]
        elif key == "node_pool":
            caps = written + list(_NODE_POOL_EXPAND.get(policy, ()))
            out["NodePools"] = [*(out["NodePools"] or []),
                                {"Name": labels[0], "Policy": policy, "Capabilities": caps or None}]
        elif key == "host_volume":
            caps = written + list(_HOST_VOLUME_EXPAND.get(policy, ()))
            out["HostVolumes"] = [*(out["HostVolumes"] or []),
                                  {"Name": labels[0], "Policy": policy, "Capabilities": caps or None}]
        elif key == "operator":
            caps = written + list(_OPERATOR_EXPAND.get(policy, ()))
            out["Operator"] = {"Policy": policy, "Capabilities": caps or None}
        else:  # agent, node, quota, plugin: a policy only
            out[key.capitalize()] = {"Policy": policy}
    return out


# acl/policy.go expandNamespaceCapabilities and expandOperatorPolicy, for RulesJSON.
_HOST_VOLUME_IMPLIES = {
    "host-volume-write": ("host-volume-register", "host-volume-create", "host-volume-delete",
                          "host-volume-read"),
    "host-volume-register": ("host-volume-create", "host-volume-read"),
    "host-volume-create": ("host-volume-read",),
}
OPERATOR_CAPABILITIES = ("deny", "snapshot-save", "license-read", "keyring-rotate", "keyring-read",
                         "keyring-delete")
_OPERATOR_EXPAND = {
    DENY: ("deny",), READ: ("license-read", "keyring-read"),
    WRITE: ("snapshot-save", "license-read", "keyring-rotate", "keyring-read", "keyring-delete"),
}


def _variable_caps(caps: list[Any]) -> list[str]:
    """acl/policy.go expandVariablesCapabilities: deny alone wins; read without list adds list."""
    caps = [str(c) for c in caps]
    if "deny" in caps:
        return ["deny"]
    return [*caps, "list"] if "read" in caps and "list" not in caps else caps


# ---------------------------------------------------------------- compiled ACLs


def _max_privilege(a: str, b: str) -> str:
    """acl.go maxPrivilege: deny beats everything, then write, then read."""
    if DENY in (a, b):
        return DENY
    return a if _PRIVILEGE[a] >= _PRIVILEGE[b] else b


@dataclass(frozen=True, slots=True)
class ACL:
    """Several policies merged (Nomad ``acl.NewACL``); a management ACL allows everything."""

    management: bool = False
    namespaces: tuple[tuple[str, frozenset[str]], ...] = ()  # exact names
    wildcards: tuple[tuple[str, frozenset[str]], ...] = ()  # names with '*'
    node: str = ""
    agent: str = ""
    operator: str = ""
    plugin: str = ""
    variables: tuple[tuple[str, tuple[tuple[str, frozenset[str]], ...]], ...] = ()
    node_pools: tuple[tuple[str, frozenset[str]], ...] = ()
    host_volumes: tuple[tuple[str, frozenset[str]], ...] = ()
    operator_caps: frozenset[str] = frozenset()

    def namespace_caps(self, namespace: str) -> frozenset[str]:
        """Exact name first, else the closest matching glob (acl.go findClosestMatchingGlob)."""
        for name, caps in self.namespaces:
            if name == namespace:
                return caps
        return _closest(self.wildcards, namespace) or frozenset()

    def allow_variable(self, namespace: str, path: str, capability: str) -> bool:
        """The closest namespace rule's variables block, then its closest path glob (exact first)."""
        if self.management:
            return True
        caps = _closest(_closest(self.variables, namespace) or (), path) or frozenset()
        return "deny" not in caps and capability in caps

    def allow_variable_search(self, namespace: str) -> bool:
        """Some variable in *namespace* may be listed (Nomad's AllowVariableSearch)."""
        if self.management:
            return True
        paths = _closest(self.variables, namespace) or ()
        return any("deny" not in caps and "list" in caps for _, caps in paths)

    def allow_node_pool(self, pool: str, capability: str) -> bool:
        if self.management:
            return True
        caps = _closest(self.node_pools, pool) or frozenset()
        if "deny" in caps:
            return False
        # node:read has read every pool here since pools came; a node_pool rule grants it alone too.
        return capability in caps or (capability == READ and self.allow_level("node", READ))

    def allow_host_volume(self, volume: str, capability: str) -> bool:
        """Nomad's AllowHostVolumeOperation: the exact or closest ``host_volume`` rule grants it."""
        if self.management:
            return True
        caps = _closest(self.host_volumes, volume) or frozenset()
        return "deny" not in caps and capability in caps

    def allow_namespace(self, namespace: str, capability: str) -> bool:
        if self.management:
            return True
        caps = self.namespace_caps(namespace)
        return "deny" not in caps and capability in caps

    def allow_scaling(self, namespace: str, capability: str) -> bool:
        """Nomad's Scaling.ListPolicies / GetPolicy: *capability* (list-scaling-policies or
        read-scaling-policy), or both list-jobs and read-job, in the namespace."""
        return self.allow_namespace(namespace, capability) or (
            self.allow_namespace(namespace, "list-jobs") and self.allow_namespace(namespace, "read-job"))

    def allow_level(self, area: str, level: str) -> bool:
        """``node`` / ``agent`` / ``operator`` / ``plugin`` at ``read`` or ``write`` (write implies read;
        a plugin's ``list`` is below read)."""
        if self.management:
            return True
        have = getattr(self, area)
        return have != DENY and _PRIVILEGE.get(have, 0) >= _PRIVILEGE[level]

    def allow_operator(self, capability: str) -> bool:
        """Nomad's AllowOperatorOperation: an operator write policy, or the capability (deny wins)."""
        if self.management or self.operator == WRITE:
            return True
        return "deny" not in self.operator_caps and capability in self.operator_caps

    def allows(self, needs: tuple[Need, ...]) -> bool:
        return all(self.allows_one(n) for n in needs)

    def allows_one(self, need: Need) -> bool:
        if need.area == "management":
            return self.management
        if need.area == "operator_op":
            return self.allow_operator(need.what)
        if need.area == "variable":
            if not need.target:  # a list: the handler keeps what may be listed
                return self.allow_variable_search(need.namespace)
            return self.allow_variable(need.namespace, need.target, need.what)
        if need.area == "node_pool":
            if not need.target:  # a list: the handler keeps what may be read
                return self.management or self.allow_level("node", READ) or any(
                    "deny" not in caps and READ in caps for _, caps in self.node_pools)
            return self.allow_node_pool(need.target, need.what)
        if need.area == "namespace":
            # "a|b": either capability will do (Nomad's task logs: read-logs or read-fs).
            return any(self.allow_namespace(need.namespace, what) for what in need.what.split("|"))
        return self.allow_level(need.area, need.what)


MANAGEMENT_ACL = ACL(management=True)
DENY_ALL_ACL = ACL()


def compile_acl(policies: list[Policy]) -> ACL:
    """Merge *policies* (a token's, the missing ones already left out) into one ACL."""
    caps: dict[str, set[str]] = {}
    levels = {"node": "", "agent": "", "operator": "", "plugin": ""}
    variables: dict[str, dict[str, set[str]]] = {}
    pools: dict[str, set[str]] = {}
    volumes: dict[str, set[str]] = {}
    operator_caps: set[str] = set()
    for p in policies:
        for name, granted in p.namespaces:
            caps.setdefault(name, set()).update(granted)
        for name, paths in p.variables:
            for path, granted in paths:
                variables.setdefault(name, {}).setdefault(path, set()).update(granted)
        for name, granted in p.node_pools:
            pools.setdefault(name, set()).update(granted)
        for name, granted in p.host_volumes:
            volumes.setdefault(name, set()).update(granted)
        operator_caps |= p.operator_caps
        for area in levels:
            mine = getattr(p, area)
            if mine:
                levels[area] = _max_privilege(levels[area], mine)
    merged = {n: frozenset({"deny"} if "deny" in c else c) for n, c in sorted(caps.items())}
    def deny_wins(c: set[str]) -> frozenset[str]:
        return frozenset({"deny"} if "deny" in c else c)
    return ACL(namespaces=tuple((n, c) for n, c in merged.items() if "*" not in n),
               wildcards=tuple((n, c) for n, c in merged.items() if "*" in n), **levels,
               variables=tuple((n, tuple((p, deny_wins(c)) for p, c in sorted(paths.items())))
                               for n, paths in sorted(variables.items())),
               node_pools=tuple((n, deny_wins(c)) for n, c in sorted(pools.items())),
               host_volumes=tuple((n, deny_wins(c)) for n, c in sorted(volumes.items())),
               operator_caps=deny_wins(operator_caps))


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """Nomad's globs: ``*`` matches any run of characters, every other character only itself
    (fnmatch's ``?`` and ``[...]`` would grant more than the rule names)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _closest(rules: Any, name: str) -> Any:
    """The value of *rules* ((pattern, value), ...) for *name*: an exact pattern, else the glob
    matching with the fewest characters left to its wildcards (acl.go findClosestMatchingGlob)."""
    best: tuple[int, Any] | None = None
    for pattern, value in rules:
        if pattern == name:
            return value
        if "*" in pattern and _glob(pattern).fullmatch(name):
            difference = len(name) - len(pattern.replace("*", ""))
            if best is None or difference < best[0]:
                best = (difference, value)
    return best[1] if best else None


# ---------------------------------------------------------------- what each route needs


@dataclass(frozen=True, slots=True)
class Need:
    """One permission: ``area`` is namespace / node / agent / operator / management."""

    area: str
    what: str = ""  # a namespace, variable or node pool capability, or read / write
    namespace: str = DEFAULT_NAMESPACE
    target: str = ""  # a variable's path, a node pool's name ("": a list, filtered by its handler)

    def __str__(self) -> str:
        if self.area == "namespace":
            return f"namespace {self.namespace!r}: {self.what}"
        return self.area if self.area == "management" else f"{self.area}:{self.what}"


OPEN: tuple[Need, ...] = ()  # no token needed
SELF_CHECKED = None  # the handler checks the token itself (the /v1/acl/ endpoints)
_OPEN_PATHS = ("/v1/status/", "/v1/regions", "/v1/metrics", "/v1/agent/health", "/.well-known/",
               # Nomad CE answers these before any token check (actors.http_enterprise)
               "/v1/sentinel/", "/v1/quota", "/v1/recommendation", "/v1/operator/license",
               "/v1/operator/utilization")
_READS = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class _Route:
    prefix: str
    read: tuple[tuple[str, str], ...]  # (area, what) for GET
    write: tuple[tuple[str, str], ...] = field(default=())  # for every other method


# Longest prefix wins; the job, alloc and eval families are namespace-scoped.
_ROUTES = sorted([
    _Route("/v1/agent/self", (("agent", READ),), (("agent", WRITE),)),
    _Route("/v1/agent/members", (("node", READ),), (("node", WRITE),)),
    _Route("/v1/agent/", (("agent", READ),), (("agent", WRITE),)),  # join, force-leave, reload, keyring
    _Route("/v1/operator/", (("operator", READ),), (("operator", WRITE),)),
    # Operator.TransferLeadershipToPeer: a management token, whatever the method.
    _Route("/v1/operator/raft/transfer-leadership", (("management", ""),), (("management", ""),)),
    # Operator.RaftRemovePeerByID: a management token too (reading the configuration is operator:read).
    _Route("/v1/operator/raft/peer", (("operator", READ),), (("management", ""),)),
    # Namespace.UpsertNamespaces / DeleteNamespaces: a management token (reads: see required).
    _Route("/v1/namespace", (("management", ""),), (("management", ""),)),
    _Route("/v1/nodes", (("node", READ),), (("node", WRITE),)),
    _Route("/v1/node/", (("node", READ),), (("node", WRITE),)),
    _Route("/v1/jobs", (("namespace", "list-jobs"),), (("namespace", "submit-job"),)),
    # CSIVolume.List / HostVolume.List, CSIVolume.Get / HostVolume.Get, CSIPlugin.List / Get
    # (actors.http_volumes).
    _Route("/v1/volumes", (("namespace", "csi-list-volume|host-volume-read"),),
           (("namespace", "csi-write-volume|host-volume-create"),)),
    _Route("/v1/volume/", (("namespace", "csi-read-volume|host-volume-read"),),
           (("namespace", "csi-write-volume|host-volume-create"),)),
    _Route("/v1/plugins", (("plugin", "list"),), (("plugin", WRITE),)),
    _Route("/v1/plugin/", (("plugin", READ),), (("plugin", WRITE),)),
    # Job.Statuses: read-job, a POST (the jobs wanted) being a read too.
    _Route("/v1/jobs/statuses", (("namespace", "read-job"),), (("namespace", "read-job"),)),
    _Route("/v1/validate/job", (("namespace", "read-job"),), (("namespace", "read-job"),)),
    _Route("/v1/job/", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    _Route("/v1/allocations", (("namespace", "read-job"),), (("namespace", "alloc-lifecycle"),)),
    _Route("/v1/allocation/", (("namespace", "read-job"),), (("namespace", "alloc-lifecycle"),)),
    # Eval.Delete alters the scheduler's own state: a management token only (Nomad's check).
    _Route("/v1/evaluations", (("namespace", "read-job"),), (("management", ""),)),
    _Route("/v1/evaluation/", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    # Deployments: Nomad's Deployment.* RPCs check read-job, and submit-job to fail, pause or promote.
    _Route("/v1/deployments", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    _Route("/v1/deployment/", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    # Services: Nomad's ServiceRegistration.List/GetService check read-job, DeleteByID submit-job.
    _Route("/v1/services", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    _Route("/v1/service/", (("namespace", "read-job"),), (("namespace", "submit-job"),)),
    _Route("/v1/client/fs/logs/", (("namespace", "read-logs|read-fs"),), (("namespace", "read-logs|read-fs"),)),
    _Route("/v1/client/fs/", (("namespace", "read-fs"),), (("namespace", "read-fs"),)),  # ls, stat, cat...
    _Route("/v1/client/stats", (("node", READ),), (("node", READ),)),  # Nomad ClientStats.Stats
    _Route("/v1/client/gc", (("node", WRITE),), (("node", WRITE),)),  # Allocations.GarbageCollectAll
    _Route("/v1/client/metadata", (("node", READ),), (("node", WRITE),)),  # NodeMeta.Read / NodeMeta.Apply
    _Route("/v1/client/allocation/", (("namespace", "read-job"),), (("namespace", "alloc-lifecycle"),)),
], key=lambda r: len(r.prefix), reverse=True)
# Agent keyring operations are agent:write even when listed (Nomad KeyringOperationRequest),
# and so are the profiles (Nomad Agent.Profile).
_ALWAYS_WRITE = ("/v1/agent/keyring/", "/v1/agent/pprof/")

# The suffixes of /v1/job/<id>/<action> (actors.http_jobs JOB_ACTIONS and the modules that add to it;
# a test keeps the two the same): a path with none of them is the job itself.
JOB_ACTION_SUFFIXES = ("allocations", "evaluations", "summary", "versions", "submission", "evaluate",
                       "plan", "scale", "stable", "revert", "dispatch", "periodic/force", "deployments",
                       "deployment", "actions", "action", "services", "tag")
# Nomad 2.0: the capability that, besides submit-job, allows each job write (nomad/job_endpoint.go
# Register, Revert, Stable, Evaluate, Plan), and each deployment write (deployment_endpoint.go).
_JOB_WRITES = {"": "submit-job|register-job", "revert": "submit-job|revert-job",
               "stable": "submit-job|stable-job", "evaluate": "submit-job|evaluate-job",
               "plan": "submit-job|plan-job"}
_DEPLOYMENT_WRITES = {"fail": "fail-deployment", "pause": "pause-deployment", "promote": "promote-deployment",
                      "unblock": "unblock-deployment", "allocation-health": "set-alloc-health-deployment"}
# Job.Deregister: submit-job, purge-job, or (without purge) deregister-job (the guard checks a purge).
JOB_DEREGISTER = "submit-job|purge-job|deregister-job"
JOB_PURGE = "submit-job|purge-job"


def job_action(path: str) -> str | None:
    """The action of a /v1/job/... path ("" for the job itself); None for another path."""
    if not path.startswith("/v1/job/"):
        return None
    rest = path[len("/v1/job/"):]
    for action in sorted(JOB_ACTION_SUFFIXES, key=len, reverse=True):
        if rest.endswith("/" + action) and len(rest) > len(action) + 1:
            return action
    return ""


def _fine_grained_write(method: str, path: str) -> str:
    """The namespace capabilities ("a|b": any) a job, deployment or service write needs, when Nomad 2.0
    lets a fine-grained capability stand in for submit-job there; "" otherwise."""
    if method in _READS:
        return ""
    if path == "/v1/jobs" and method in ("PUT", "POST"):
        return _JOB_WRITES[""]
    action = job_action(path)
    if action == "" and method == "DELETE":
        return JOB_DEREGISTER
    if action is not None:
        return _JOB_WRITES.get(action, "")
    if path.startswith("/v1/deployment/"):
        cap = _DEPLOYMENT_WRITES.get(path[len("/v1/deployment/"):].partition("/")[0])
        return f"submit-job|{cap}" if cap else ""
    if path.startswith("/v1/service/") and method == "DELETE":  # ServiceRegistration.DeleteByID
        return "submit-job|delete-service-registration"
    return ""


def _node_pool_needs(method: str, path: str, namespace: str) -> tuple[Need, ...] | None:
    """Nomad's NodePool.* checks: ``node_pool "glob"`` rules (``node:read`` reads pools too, as before)."""
    if path == "/v1/node/pools":
        # A list is filtered by what may be read; a write names its pool in the body (the handler checks).
        return (Need("node_pool", READ),) if method in _READS else SELF_CHECKED
    name, _, sub = path[len("/v1/node/pool/"):].partition("/")
    name = urllib.parse.unquote(name)
    if method in _READS:
        extra = {"jobs": (Need("namespace", "read-job", namespace),),
                 "nodes": (Need("node", READ),)}.get(sub, ())
        return (Need("node_pool", READ, target=name), *extra)
    return (Need("node_pool", "delete" if method == "DELETE" else "write", target=name),)


def required(method: str, path: str, namespace: str = DEFAULT_NAMESPACE) -> tuple[Need, ...] | None:
    """What a request needs: :data:`OPEN`, :data:`SELF_CHECKED` (None), or the needs, all required.

    A path no rule names needs a management token: a new endpoint is closed
    until someone decides who may call it.
    """
    if path == "/" or path.startswith(_OPEN_PATHS):
        return OPEN
    if path.startswith("/v1/acl/") or path in ("/v1/search", "/v1/search/fuzzy", "/v1/event/stream"):
        # search: per context (actors.http_search); events: per topic (actors.http_events)
        return SELF_CHECKED
    if path == "/v1/operator/snapshot" or path.startswith("/v1/operator/keyring/"):
        # Nomad 2.0's operator capabilities (snapshot-save, keyring-read|rotate|delete; operator write
        # grants each) or a management token (a restore): actors.http_snapshot, actors.http_root_keyring
        return SELF_CHECKED
    namespace = namespace or DEFAULT_NAMESPACE
    if path.startswith("/v1/job/") and path.endswith("/dispatch") and method not in _READS:
        return (Need("namespace", "dispatch-job", namespace),)  # Job.Dispatch
    if path.startswith("/v1/job/") and path.endswith("/periodic/force") and method not in _READS:
        # Periodic.Force (Nomad 1.0+; force-periodic-job 2.0)
        return (Need("namespace", "dispatch-job|submit-job|force-periodic-job", namespace),)
    if path.startswith("/v1/job/") and path.endswith("/tag") and method not in _READS:
        return (Need("namespace", "submit-job|tag-job-version", namespace),)  # Job.TagVersion
    if path.startswith("/v1/job/") and path.endswith("/scale"):  # Job.Scale / Job.ScaleStatus
        return (Need("namespace", "read-job-scaling|read-job" if method in _READS else "scale-job|submit-job",
                     namespace),)
    if path.startswith("/v1/node/") and path.endswith("/allocations") and method in _READS:
        return (Need("node", READ), Need("namespace", "read-job", namespace))  # Node.GetAllocs
    if path == "/v1/vars":
        # Variables.List (and listAllVariables for namespace=*) refuses no token: the handler keeps the
        # variables the token may list, an empty list when none (actors.http_variables).
        return SELF_CHECKED
    if path.startswith("/v1/var/"):  # Variables.Read / Apply / Delete on the variable's own path
        what = {"GET": "read", "HEAD": "read", "DELETE": "destroy"}.get(method, "write")
        return (Need("variable", what, namespace, urllib.parse.unquote(path[len("/v1/var/"):])),)
    if method in _READS and (path == "/v1/namespaces" or path.startswith("/v1/namespace/")):
        # Namespace.ListNamespaces keeps, and GetNamespace answers, what the token may use in some way
        # (Nomad's AllowNamespace): the handler checks (actors.http_namespaces).
        return SELF_CHECKED
    if path == "/v1/node/pools" or path.startswith("/v1/node/pool/"):
        return _node_pool_needs(method, path, namespace)
    if path.startswith(("/v1/scaling/policies", "/v1/scaling/policy/")):
        # Scaling.ListPolicies / GetPolicy: list-scaling-policies (read-scaling-policy), or list-jobs and
        # read-job, in the namespace; namespace=* lists the namespaces allowed (actors.http_scaling).
        return SELF_CHECKED
    if path.startswith("/v1/client/allocation/") and path.endswith("/exec"):
        # Allocations.Exec checks alloc-exec (and alloc-node-exec for raw_exec) on the node, in the
        # allocation's namespace, and answers a refusal on the WebSocket (actors.http_alloc_exec).
        return SELF_CHECKED
    if path.startswith("/v1/client/allocation/") and path.endswith("/snapshot"):
        # Nomad's allocSnapshot checks no policy but the migrate token (actors.http_client_snapshot).
        return SELF_CHECKED
    if path.startswith("/v1/client/allocation/") and path.endswith("/gc"):  # any method, as Nomad
        # client Allocations.GarbageCollect
        return (Need("namespace", "submit-job|gc-allocation", namespace),)
    fine = _fine_grained_write(method, path)
    if fine:
        return (Need("namespace", fine, namespace),)
    for r in _ROUTES:
        if path.startswith(r.prefix):
            reading = method in _READS and not path.startswith(_ALWAYS_WRITE)
            return tuple(Need(area, what, namespace) for area, what in (r.read if reading else r.write))
    return (Need("management"),)
