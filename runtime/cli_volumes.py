"""``nomad volume status`` and ``nomad plugin status``, as Nomad's CLI answers them here.

This agent runs no CSI plugins and creates no dynamic host volumes (a
client's static ``host_volume`` blocks are node configuration, shown by
``nomad node status``), so the servers' lists (``/v1/volumes?type=csi|host``,
``/v1/plugins?type=csi``) are empty and a lookup by ID finds nothing.  The
commands still ask the servers, and answer with Nomad's output for that
case: the section headers on stdout, "No CSI volumes" / "No dynamic host
volumes" / "No CSI plugins" on stderr (exit 0), and Nomad's errors for an ID
that matches nothing (exit 1).  The reference is Nomad's
command/volume_status*.go and command/plugin_status*.go.
"""

from __future__ import annotations

import sys
from typing import Any

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags, request

VOLUME_USAGE = "nomad volume status [options] <id>"
PLUGIN_USAGE = "nomad plugin status [options] <plugin>"


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def _listed(addr: str, path: str, kind: str, prefix: str = "") -> list[Any]:
    got = request(addr, "GET", path, type=kind, prefix=prefix or None)
    return got if isinstance(got, list) else []


def _ids(items: list[Any]) -> str:
    return "\n".join(str(i.get("ID", "")) for i in items if isinstance(i, dict))


def volume_status(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad volume status [-type csi|host] [-node <id>] [-node-pool <pool>] [-short] [-verbose] [-json]
    [<id>]``: both kinds of volumes (or the one ``-type`` names), or the volume with that ID."""
    flags, rest = parse_flags(args, {"type": str, "short": bool, "verbose": bool, "json": bool, "node": str,
                                     "node-pool": str})
    if len(rest) > 1:
        raise CliError("This command takes either no arguments or one: <id>\n"
                       "For additional help try 'nomad volume status -help'")
    kind = flags.get("type", "")
    vol_id = rest[0] if rest else ""
    headers = not flags.get("json")
    out: list[str] = []
    if kind not in ("", "csi", "host"):
        raise CliError(f'No such volume type "{kind}"')
    if kind == "csi" and (flags.get("node") or flags.get("node-pool")):
        raise CliError("-node and -node-pool can only be used with -type host")
    if vol_id and kind in ("", "host") and (flags.get("node") or flags.get("node-pool")):
        raise CliError("-node or -node-pool options can only be used when no ID is provided")

    failed = False

    def listing(path_kind: str, header: str, none: str, context: str) -> None:
        nonlocal failed
        if headers:
            out.append(header)
        try:
            found = _listed(addr, "/v1/volumes", path_kind)
        except CliError as e:  # Nomad prints each list's error and goes on to the next, then exits 1
            if out:  # what came before (the header), then the error, as Nomad's Ui.Output/Ui.Error
                print("\n".join(out), flush=True)
            out.clear()
            _err(f"{context}: {e}")
            failed = True
            return
        if found:
            out.append(_ids(found))
        else:
            print("\n".join(out), flush=True)  # keep Nomad's order: the header, then the stderr line
            out.clear()
            _err(none)

    if not vol_id:
        if kind in ("", "host"):
            listing("host", "Dynamic Host Volumes", "No dynamic host volumes", "Error querying host volumes")
        if kind == "":
            out.append("")
        if kind in ("", "csi"):
            listing("csi", "Container Storage Interface", "No CSI volumes", "Error querying CSI volumes")
        return "\n".join(out), 1 if failed else 0
    errors = []
    if kind in ("", "host") and not _listed(addr, "/v1/volumes", "host", vol_id):
        errors.append(f'Error listing host volumes: no volumes with prefix or ID "{vol_id}" found')
    if kind in ("", "csi") and not _listed(addr, "/v1/volumes", "csi", vol_id):
        errors.append(f'Error listing CSI volumes: no volumes with prefix or ID "{vol_id}" found')
    for line in errors:
        _err(line)
    return "", 1


def plugin_status(addr: str, args: list[str]) -> tuple[str, int]:
    """``nomad plugin status [-type csi] [-short] [-verbose] [-json] [<plugin>]``: the CSI plugins, or one."""
    flags, rest = parse_flags(args, {"type": str, "short": bool, "verbose": bool, "json": bool})
    if len(rest) > 1:
        raise CliError("This command takes either no arguments or one: <plugin>\n"
                       "For additional help try 'nomad plugin status -help'")
    kind = flags.get("type", "").lower()
    if kind not in ("", "csi"):
        raise CliError(f"Unsupported plugin type: {kind}")
    if rest:
        if not _listed(addr, "/v1/plugins", "csi", rest[0]):
            raise CliError(f'Error listing plugins: no plugins with prefix or ID "{rest[0]}" found')
        return "", 0
    if not flags.get("json"):
        print("Container Storage Interface", flush=True)
    found = _listed(addr, "/v1/plugins", "csi")
    if found:
        return _ids(found), 0
    _err("No CSI plugins")
    return "", 0


VOLUME_COMMANDS = {("volume", "status"): volume_status, ("plugin", "status"): plugin_status}
