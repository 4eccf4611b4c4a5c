"""``nomad operator api [-X METHOD] [-H 'Name: value']... [-dryrun] <path>``: curl for the agent's API.

As Nomad's: *path* is ``/v1/...`` (or a whole URL); the address, token and
TLS files are the CLI's own, so a request needs none of them spelled out.
A PUT or POST sends standard input as the body when it is not a terminal.
The answer's body is printed as it came, whatever its status, and the
command exits 0, as Nomad's (curl without ``--fail``): only a request that
cannot be made or answered is an error (exit 1).  ``-dryrun`` prints the
equivalent curl command instead.
"""

from __future__ import annotations

import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

from runtime.cli import TIMEOUT_S, CliError
from runtime.cli_jobs import parse_flags

__all__ = ["OPERATOR_API_COMMANDS"]


def operator_api(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"X": str, "H": list, "dryrun": bool, "filter": str, "verbose": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <path>")
    target = rest[0]
    url = target if "://" in target else addr.rstrip("/") + "/" + target.lstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"invalid URL {target!r}")
    if flags.get("filter"):  # Nomad's -filter: the query's ?filter=, over any the path has
        parts = urllib.parse.urlsplit(url)
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                 if k != "filter"]
        query.append(("filter", flags["filter"]))
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    method = (flags.get("X") or "GET").upper()
    headers: dict[str, str] = {}
    for h in flags.get("H", []):
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise CliError(f"invalid header {h!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    body = None
    if method in ("PUT", "POST"):
        body = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    if flags.get("dryrun"):
        parts = ["curl", "-X", method, *(x for k, v in headers.items() for x in ("-H", f"{k}: {v}")), url]
        return " ".join(shlex.quote(p) for p in parts) + (" --data-binary @-" if body else "")
    req = urllib.request.Request(url, method=method, data=body, headers=headers)
    verbose = bool(flags.get("verbose"))

    def say(line: str) -> None:  # Nomad's -verbose: curl's, on stderr, stdout left to the answer
        if verbose:
            print(line, file=sys.stderr)
    if body:
        say("* Reading request body from stdin.")
    say(f"> {method} {urllib.parse.urlsplit(url).path} HTTP/1.1")
    for k, v in headers.items():
        say(f"> {k}: {v}")
    say(">")
    say("* Sending request and receiving response...")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            say(f"< HTTP/1.1 {resp.status} {resp.reason}")
            for k, v in resp.headers.items():
                say(f"< {k}: {v}")
            return resp.read().decode(errors="replace").rstrip("\n")
    except urllib.error.HTTPError as e:  # an answer, if not a happy one: its body, exit 0
        say(f"< HTTP/1.1 {e.code} {e.reason}")
        for k, v in e.headers.items():
            say(f"< {k}: {v}")
        return e.read().decode(errors="replace").rstrip("\n")
    except (urllib.error.URLError, OSError) as e:
        from runtime.cli import unreachable  # Go's url.Error wording: Get "<url>": dial tcp ...

        raise CliError(f"Error performing request: {unreachable(method, url, e)}") from None


OPERATOR_API_COMMANDS = {("operator", "api"): operator_api}
