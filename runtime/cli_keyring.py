"""``nomad operator gossip keyring``: generate a key, list / install / use / remove across the pool.

As Nomad's ``command/operator_gossip_keyring.go``: ``generate`` prints a new
base64 AES-256 key (no agent needed); ``-list``, ``-install <key>``,
``-use <key>`` and ``-remove <key>`` (or ``-flag=<key>``) call the agent's
``/v1/agent/keyring/...`` endpoints, which apply the operation on every
server of the gossip pool.  Rotating without downtime::

    nomad operator gossip keyring -install "$NEW"
    nomad operator gossip keyring -use "$NEW"
    nomad operator gossip keyring -remove "$OLD"

Nomad's newer subcommand forms do the same over the same endpoints:
``operator gossip keyring list``, ``install <key>``, ``use <key>`` and
``remove <key>`` (``command/operator_gossip_keyring_{list,install,use,remove}.go``):
the progress line first, then the keys (list) or the error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["KEYRING_COMMANDS"]

TIMEOUT_S = 40.0  # above the agent's own wait for every member (KEYRING_WAIT_S, 30 s)
_FLAGS = ("list", "install", "use", "remove")
_SAYS = {"list": "Gathering installed encryption keys...",
         "install": "Installing new gossip encryption key...",
         "use": "Changing primary gossip encryption key...",
         "remove": "Removing gossip encryption key..."}


def _cli_error(message: str) -> Exception:
    from runtime.cli import CliError

    return CliError(message)


def _request(addr: str, op: str, key: str) -> Any:
    url = f"{addr.rstrip('/')}/v1/agent/keyring/{op}"
    data = None if op == "list" else json.dumps({"Key": key}).encode()
    req = urllib.request.Request(url, method="GET" if op == "list" else "PUT", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        from runtime.cli import ApiError  # printed under the command's context: Nomad's "error: %s"

        text = e.read().decode(errors="replace").strip()
        raise ApiError(f"Unexpected response code: {e.code} ({text})") from None
    except (urllib.error.URLError, OSError) as e:
        from runtime.cli import unreachable

        raise unreachable(req.get_method(), url, e) from None
    return json.loads(body) if body.strip() else None


def _parse(args: list[str]) -> tuple[str, str]:
    """(operation, key) from exactly one of -list / -install / -use / -remove."""
    chosen: list[tuple[str, str]] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name not in _FLAGS:
            raise _cli_error(f"unexpected argument {arg!r}: want one of -list, -install <key>, "
                             "-use <key>, -remove <key>")
        if name != "list" and not eq:
            if not rest:
                raise _cli_error(f"-{name} needs a key")
            value = rest.pop(0)
        chosen.append((name, value))
    if len(chosen) != 1:
        raise _cli_error("Only a single action is allowed: one of -list, -install, -use, -remove")
    return chosen[0]


def keyring(addr: str, args: list[str]) -> str:
    op, key = _parse(args)
    got = _request(addr, op, key)
    if op != "list":
        return _SAYS[op]
    keys = sorted((got or {}).get("Keys") or {})
    return "\n".join([_SAYS[op], "Key", *keys])


def keyring_generate(addr: str, args: list[str]) -> str:
    if args:
        raise _cli_error("keyring generate takes no arguments")
    from runtime.gossip_crypto import generate_key  # here: the other commands start without it

    return generate_key()


def _subcommand(addr: str, op: str, args: list[str]) -> str:
    """Nomad's ``operator gossip keyring <op>``: say what is being done, then do it."""
    from runtime.cli_jobs import parse_flags

    _, rest = parse_flags(args, {})
    want = 0 if op == "list" else 1
    if len(rest) != want:
        raise _cli_error(("This command takes no arguments" if op == "list" else
                          "This command requires one argument: <key>") +
                         f"\nFor additional help try 'nomad operator gossip keyring {op} -help'")
    print(_SAYS[op], flush=True)  # before the call, as Nomad's Ui.Output
    got = _request(addr, op, rest[0] if rest else "")
    if op != "list":
        return ""
    from runtime.cli import table

    return table([["Key"], *([k] for k in sorted((got or {}).get("Keys") or {}))])


def _sub(op: str) -> Any:
    def run(addr: str, args: list[str]) -> str:
        return _subcommand(addr, op, args)
    run.__name__ = f"keyring_{op}"
    return run


KEYRING_COMMANDS = {
    ("operator", "gossip", "keyring"): keyring,
    ("operator", "gossip", "keyring", "generate"): keyring_generate,
    **{("operator", "gossip", "keyring", op): _sub(op) for op in _FLAGS},
}
