"""``nomad ui [-authenticate] [-show-url] [<identifier>]``, as Nomad's ``command/ui.go``.

It builds the web UI's address from the agent's (``-address``, with ``?namespace=`` and
``?region=`` when the general flags or their environment variables give them); an identifier is
resolved by a prefix search over jobs, allocations and nodes (in that order, an exact ID first) to
``/ui/jobs/<id>`` (``<id>@<namespace>`` with a namespace), ``/ui/allocations/<id>`` or
``/ui/clients/<id>``.  ``-authenticate`` asks the agent for a one-time token
(``POST /v1/acl/token/onetime``) and adds it as ``?ott=``.  ``-show-url`` prints
``URL for web UI: <url>``; otherwise the command prints ``Opening URL "<url>"`` and opens it with
``xdg-open``, as Nomad does on Linux.  This agent serves no web UI: its ``/ui/`` pages say so and
point at the HTTP API, so the command still leads an operator somewhere that explains.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse

from runtime.cli import ACTIVE, CliError
from runtime.cli_jobs import parse_flags, request

__all__ = ["UI_COMMANDS"]

UI_CONTEXTS = ("jobs", "allocs", "nodes")  # Nomad's uiContexts, in its order
OPEN_TIMEOUT_S = 10.0  # xdg-open hands the URL to the desktop and returns; a hung one is an error
_HELP = "For additional help try 'nomad ui -help'"


def ui(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"authenticate": bool, "show-url": bool})
    if len(rest) > 1:
        raise CliError(f"This command takes no or one optional argument, [<identifier>]\n{_HELP}")
    parts = urllib.parse.urlsplit(addr)
    query = [(k, ACTIVE["query"][k]) for k in ("namespace", "region") if ACTIVE["query"].get(k)]
    path = parts.path
    ott = ""
    if flags.get("authenticate"):
        try:
            ott = (request(addr, "POST", "/v1/acl/token/onetime") or {}).get("OneTimeSecretID") or ""
        except CliError as e:
            raise CliError(f"Could not get one-time token: {e}") from None
    if rest:
        path = "/" + _ui_path(addr, rest[0])
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))
    said = f"Opening URL {json.dumps(url)}"
    if ott:
        said += " with one-time token"
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path,
                                       urllib.parse.urlencode([*query, ("ott", ott)]), ""))
    if flags.get("show-url"):
        return f"URL for web UI: {url}", 0
    print(said, flush=True)
    opener = shutil.which("xdg-open")
    if opener is None:
        print('Error opening URL: exec: "xdg-open": executable file not found in $PATH', file=sys.stderr)
        return "", 1
    try:
        done = subprocess.run([opener, url], capture_output=True, timeout=OPEN_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"Error opening URL: {e}", file=sys.stderr)
        return "", 1
    if done.returncode != 0:
        print(f"Error opening URL: exit status {done.returncode}", file=sys.stderr)
        return "", 1
    return "", 0


def _ui_path(addr: str, ident: str) -> str:
    """The UI page of the job, allocation or node *ident* names (an ID or a prefix), as ui.go finds it."""
    try:
        got = request(addr, "POST", "/v1/search", {"Prefix": ident, "Context": "all"})
    except CliError as e:
        raise CliError(f'Error querying search with id: "{e}"') from None
    matches = (got or {}).get("Matches")
    if matches is None:
        raise CliError('No matches returned for query: "<nil>"')
    match, full = "", ""
    count = 0
    for ctx in UI_CONTEXTS:
        ids = list(matches.get(ctx) or ())
        if ctx not in matches:
            continue
        if len(ids) == 1:
            match, full = ctx, ids[0]
            count += 1
        elif ids and ids[0] == ident:  # an exact match
            match, full = ctx, ids[0]
            break
        if count > 1 or len(ids) > 1:
            lines = [f'Multiple matches found for id "{ident}"']
            for c in UI_CONTEXTS:
                if matches.get(c):
                    lines += [f"\n{c.title()}:", ", ".join(matches[c])]
            raise CliError("\n".join(lines))
    ns = ACTIVE["query"].get("namespace") or ""
    if match == "nodes":
        return f"ui/clients/{full}"
    if match == "allocs":
        return f"ui/allocations/{full}"
    if match == "jobs":
        return f"ui/jobs/{full}@{ns}" if ns else f"ui/jobs/{full}"
    raise CliError(f'Unable to resolve ID: "{ident}"')


UI_COMMANDS = {("ui",): ui}
