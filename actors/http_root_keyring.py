"""The servers' root keyring over HTTP (Nomad's ``/v1/operator/keyring/...``, keyring_endpoint.go).

The keys sign workload identities (:mod:`actors.state.root_keys`).  Each
route needs a management token when ACLs are enabled.

* ``GET /v1/operator/keyring/keys``: every key's ``RootKeyMeta``
  (``KeyID``, ``Algorithm``, ``CreateTime`` in Unix ns, ``CreateIndex``,
  ``ModifyIndex``, ``State`` active/inactive, ``PublishTime`` 0), a
  blocking query on the keyring table.
* ``PUT|POST /v1/operator/keyring/rotate``: a new active key, drawn here
  from the agent's RNG as the first key is, and written through Raft
  (``root_key_rotate``); the older keys stay, inactive, to verify what they
  signed.  Answers Nomad's ``{"Key": <RootKeyMeta>, "Index": n}``.
  ``?full`` (Nomad re-encrypts every variable with the new key) and
  ``?publish_time`` (a prepublished key) are refused with a 400 saying why.
* ``DELETE /v1/operator/keyring/key/<id>[?force=true]``: removes an inactive
  key; Nomad's errors (500) for an unknown key, the active key, and a key
  still in use without ``force``; answers ``{"Index": n}``.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import (
    INVALID_METHOD,
    Answer,
    Api,
    CodedError,
    Request,
    parse_go_bool,
    propose,
    require,
    route,
    state_query,
)
from actors.state import root_keys
from actors.state.store import command
from runtime.edge import wall_time

PREFIX = "/v1/operator/keyring/"
FULL_UNSUPPORTED = ("full rotation is not supported by this agent: it re-encrypts variables with the new "
                    "key, and variables here are not encrypted with the root keyring; rotate without -full")
PREPUBLISH_UNSUPPORTED = ("prepublished root keys are not supported by this agent: rotate with -now "
                          "(no publish_time); the new key is in the JWKS as soon as it signs")


def _operator(req: Request, api: Api, capability: str) -> None:
    """Nomad 2.0's keyring checks: the operator capability (operator write grants every one)."""
    from actors.http_acl import require_operator  # http_acl imports http_api

    require_operator(req, api, capability)


def _write(api: Api, op: str, **args: Any) -> int:
    index, result = propose(api, command(op, **args))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        raise CodedError(int(result.get("code") or 500),
                         str(result.get("error") or "refused by the state store"))
    return index


@route(PREFIX)
def root_keyring(req: Request, api: Api) -> Any:
    path = req.path[len(PREFIX):]
    if path.startswith("keys"):
        require(req, "GET")
        _operator(req, api, "keyring-read")  # Keyring.List
        return state_query(req, api, (root_keys.TABLE,), lambda st: [
            root_keys.meta(k) for _, k in sorted(st.tables[root_keys.TABLE].items(),
                                                 key=lambda kv: (kv[1].get("CreateIndex", 0), kv[0]))])
    if path.startswith("key"):
        key_id = req.path[len(PREFIX + "key/"):] if path.startswith("key/") else ""
        force_raw = req.query.get("force")
        force: bool | None = False
        if force_raw is not None:
            force = parse_go_bool(force_raw[0])
            if force is None:
                raise CodedError(422, "invalid force parameter")
        require(req, "DELETE")
        _operator(req, api, "keyring-delete")  # Keyring.Delete
        if not key_id:
            raise CodedError(500, "root key ID is required")
        index = _write(api, "root_key_delete", key_id=key_id, force=force)
        return Answer({"Index": index}, (("X-Nomad-Index", str(index)),))
    if path.startswith("rotate"):
        require(req, "PUT", "POST")
        _operator(req, api, "keyring-rotate")  # Keyring.Rotate
        if "full" in req.query:
            raise CodedError(400, FULL_UNSUPPORTED)
        publish = (req.query.get("publish_time") or [""])[0]
        if publish:
            try:
                publish_ns = int(publish)
            except ValueError:
                raise CodedError(500, f'invalid publish_time: strconv.ParseInt: parsing "{publish}": '
                                      "invalid syntax") from None
            if publish_ns != 0:
                raise CodedError(400, PREPUBLISH_UNSUPPORTED)
        key = root_keys.new_key(api.env.secret_rng, wall_time())  # the OS's CSPRNG (Env.secret_rng)
        index = _write(api, "root_key_rotate", **key)
        meta = {"KeyID": key["key_id"], "Algorithm": root_keys.ALGORITHM, "CreateTime": key["create_time"],
                "CreateIndex": index, "ModifyIndex": index, "State": root_keys.STATE_ACTIVE, "PublishTime": 0}
        return Answer({"Key": meta, "Index": index}, (("X-Nomad-Index", str(index)),))
    raise CodedError(405, INVALID_METHOD)
