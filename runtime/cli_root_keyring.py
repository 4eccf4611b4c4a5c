"""``nomad operator root keyring list|rotate|remove``: the servers' root keys (Nomad's
``command/operator_root_keyring_*.go``) over ``/v1/operator/keyring/...`` (actors.http_root_keyring).

* ``list [-verbose]``: a ``Key  State  Create Time  Publish Time`` table, the
  key IDs shortened to 8 characters unless ``-verbose``.
* ``rotate -now [-verbose]``: a new active key, printed as one row of that
  table.  As in Nomad one of ``-now`` or ``-prepublish`` is required;
  ``-prepublish`` and ``-full`` are sent and the agent refuses them, saying
  why (no prepublished keys, no variable re-encryption here).
* ``remove [-force] <key ID>``: a key ID or a unique prefix of one;
  ``Removed encryption key <id>``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from actors.state.autopilot_config import parse_go_duration
from runtime.cli import CliError, table
from runtime.cli_jobs import parse_flags, request

__all__ = ["ROOT_KEYRING_COMMANDS"]

SHORT_ID = 8  # Nomad's shortId
NEEDS_NOW_OR_PREPUBLISH = '''
One of "-now" or "-prepublish" must be used.

If a key has been leaked use "-now" to force immediate rotation.

Otherwise please use "-prepublish <duration>" to ensure the new key is not used
to sign workload identities before JWKS endpoints are updated.
'''
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _help(words: str) -> str:
    return f"For additional help try 'nomad operator root keyring {words} -help'"


def _unix_nano_time(nano: Any) -> str:
    """Nomad's formatUnixNanoTime: RFC 3339 in the local zone ("Z" for UTC); "" before the epoch's 1 s."""
    if not isinstance(nano, int) or nano < 1_000_000_000:
        return ""
    t = dt.datetime.fromtimestamp(nano // 1_000_000_000, dt.UTC).astimezone()
    offset = t.strftime("%z")
    zone = "Z" if offset in ("+0000", "-0000", "") else f"{offset[:3]}:{offset[3:]}"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + zone


def render_keys(keys: list[dict[str, Any]], verbose: bool) -> str:
    """Nomad's renderVariablesKeysResponse."""
    rows = [["Key", "State", "Create Time", "Publish Time"]]
    for k in keys:
        key_id = str(k.get("KeyID", ""))
        rows.append([key_id if verbose else key_id[:SHORT_ID], str(k.get("State", "")),
                     _unix_nano_time(k.get("CreateTime")),
                     _unix_nano_time(k.get("PublishTime")) if k.get("PublishTime") else ""])
    return table(rows)


def keyring_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"verbose": bool})
    if rest:
        raise CliError(f"This command takes no arguments\n{_help('list')}")
    return render_keys(request(addr, "GET", "/v1/operator/keyring/keys") or [], bool(flags.get("verbose")))


def keyring_rotate(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"full": bool, "now": bool, "verbose": bool, "prepublish": str})
    if rest:
        raise CliError(f"This command takes no arguments\n{_help('rotate')}")
    prepublish_ns = 0
    if "prepublish" in flags:
        try:
            prepublish_ns = parse_go_duration(flags["prepublish"])
        except ValueError as e:
            raise CliError(f'invalid value "{flags["prepublish"]}" for flag -prepublish: {e}') from None
    now = bool(flags.get("now"))
    if (not now and prepublish_ns == 0) or (now and prepublish_ns != 0):
        raise CliError(NEEDS_NOW_OR_PREPUBLISH.strip())
    query: dict[str, Any] = {}
    if flags.get("full"):
        query["full"] = "true"
    if prepublish_ns > 0:
        query["publish_time"] = str(int(dt.datetime.now(dt.UTC).timestamp() * 1e9) + prepublish_ns)
    got = request(addr, "PUT", "/v1/operator/keyring/rotate", **query) or {}
    return render_keys([got.get("Key") or {}], bool(flags.get("verbose")))


def keyring_remove(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"force": bool})
    if len(rest) != 1 or not rest[0]:
        raise CliError(f"This command requires one argument: <key ID>\n{_help('remove')}")
    key_id = rest[0].lower()
    if not _UUID.fullmatch(key_id):  # a prefix: resolve it (Nomad's abbreviated key IDs)
        keys = request(addr, "GET", "/v1/operator/keyring/keys") or []
        matches = [k for k in keys if str(k.get("KeyID", "")).startswith(key_id)]
        if not matches:
            raise CliError(f'No encryption key(s) with prefix or ID "{key_id}" found')
        if len(matches) > 1:
            raise CliError(f"Prefix matched multiple keys\n\n{render_keys(matches, True)}")
        key_id = matches[0]["KeyID"]
    request(addr, "DELETE", f"/v1/operator/keyring/key/{key_id}", **({"force": "true"} if flags.get("force")
                                                                      else {}))
    return f"Removed encryption key {key_id}"


ROOT_KEYRING_COMMANDS = {
    ("operator", "root", "keyring", "list"): keyring_list,
    ("operator", "root", "keyring", "rotate"): keyring_rotate,
    ("operator", "root", "keyring", "remove"): keyring_remove,
}
