"""``nomad operator snapshot save | inspect | restore``, as Nomad's ``command/operator_snapshot_*.go``.

* ``save [-stale] [<file>]`` fetches ``GET /v1/operator/snapshot``, checks
  the ``Digest`` header and the archive itself, and writes it to a temporary
  file beside the destination, fsynced, then renamed over it -- a crash or an
  error never leaves a partial snapshot under the destination's name.  As
  Nomad's, it refuses a destination that already exists and names one
  (``nomad-state-YYYYMMDD-<unix>.snap``) when none is given.
* ``inspect <file>`` verifies the file and prints its metadata, aligned as
  Nomad's ``formatKV``, then a record count and size per table.
* ``restore <file>`` verifies the file locally (a corrupt one never reaches
  the cluster) and sends it with ``PUT /v1/operator/snapshot``.
* ``state [-filter <expr>] <file>`` verifies the file, restores its state
  into a state store here and prints the tables as JSON, as ``operator raft
  state`` does (:func:`runtime.cli_raft_offline.state_as_map`), with the
  archive's metadata as ``SnapshotMeta``; ``-filter`` (Nomad's expression
  language) keeps only the records that match it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import kv


class _Archive:
    """actors.state.snapshot_archive, imported when a snapshot command first uses it: every other
    command starts without it (and the dataclasses and tarfile it brings)."""

    def __getattr__(self, name: str) -> Any:
        from actors.state import snapshot_archive

        return getattr(snapshot_archive, name)


archive: Any = _Archive()

__all__ = ["SNAPSHOT_COMMANDS"]

# A snapshot of a large cluster takes a while to encode, move and (restore)
# replicate; the HTTP call waits this long.  Well above the agent's own
# per-write leader wait (6 s) times a few hundred MB of chunks on loopback.
SNAPSHOT_TIMEOUT_S = 300.0
_PATH = "/v1/operator/snapshot"


def _request(addr: str, method: str, path: str, body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    url = f"{addr.rstrip('/')}{path}"
    headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
    req = urllib.request.Request(url, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=SNAPSHOT_TIMEOUT_S) as resp:
            return resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    except urllib.error.HTTPError as e:
        raise CliError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        from runtime.cli import unreachable  # Go's url.Error wording: Get "<url>": dial tcp ...

        raise CliError(str(unreachable(method, url, e))) from None


def _help_hint(what: str) -> str:
    """Nomad's ``commandErrorText``: the line after a misuse message."""
    return f"For additional help try 'nomad {what} -help'"


def _read_file(path: str, quoted: bool = False) -> bytes:
    """The file's bytes; an error as Go's ``*PathError`` reads (``open <path>: no such file or directory``),
    printed by restore with %q and by inspect with %s."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        reason = (e.strerror or str(e))
        text = f"open {path}: {reason[:1].lower()}{reason[1:]}"
        raise CliError(f"Error opening snapshot file: {json.dumps(text) if quoted else text}") from None


def _one_file(args: list[str], what: str) -> str:
    files = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise CliError(f"Failed to parse args: flag provided but not defined: {flags[0].partition('=')[0]}")
    if len(files) != 1:
        raise CliError(f"This command takes one argument: <filename>\n{_help_hint(what)}")
    return files[0]


def _write_atomically(path: str, data: bytes) -> None:
    """Temp file in the destination's directory, fsynced, renamed into place; never a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash once the directory is synced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def snapshot_save(addr: str, args: list[str]) -> str:
    stale = redact = False
    files = []
    for a in args:
        if a in ("-stale", "-stale=true"):
            stale = True
        elif a == "-stale=false":
            stale = False
        elif a in ("-redact", "-redact=true"):
            redact = True
        elif a == "-redact=false":
            redact = False
        elif a.startswith("-"):
            raise CliError(f"Failed to parse args: flag provided but not defined: {a.partition('=')[0]}")
        else:
            files.append(a)
    if len(files) > 1:
        raise CliError("This command takes either no arguments or one: <filename>\n"
                       + _help_hint("operator snapshot save"))
    now = time.time()
    # Nomad's default name: nomad-state-YYYYMMDD-<unix seconds>.snap
    default = f"{time.strftime('nomad-state-%Y%m%d', time.localtime(now))}-{int(now)}.snap"
    path = files[0] if files else default
    if os.path.lexists(path):
        raise CliError(f"Destination file already exists: {json.dumps(path)}\n"
                       + _help_hint("operator snapshot save"))
    try:
        body, headers = _request(addr, "GET", _PATH + ("?stale=true" if stale else ""))
    except CliError as e:
        raise CliError(f"Failed to get snapshot file: {e}") from None
    digest = headers.get("digest", "")
    if digest.startswith("sha-256="):
        want = base64.b64decode(digest[len("sha-256="):])
        if hashlib.sha256(body).digest() != want:
            raise CliError("Failed to download snapshot file: the body does not match its Digest header")
    try:
        archive.decode(body)
    except archive.ArchiveError as e:
        raise CliError(f"Failed to download snapshot file: {e}") from None
    said = ""
    if redact:  # Nomad's -redact: the root keyring's cleartext key material removed before writing
        said = "Redacting key material from snapshot\n"
        try:
            body = archive.redact(body)
        except (archive.ArchiveError, ValueError) as e:
            raise CliError(f"Could not redact snapshot: {e}") from None
    try:
        _write_atomically(path, body)
    except OSError as e:
        raise CliError(f"Failed to write snapshot file: {e}") from None
    return f"{said}State file written to {path}"


def _ibytes(n: int) -> str:
    """go-humanize's ``IBytes``: ``239 B``, ``1.2 KiB``, ``3.4 MiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n} B"  # not reached


def _created(snapshot_id: str) -> str:
    """extractTimeFromName + formatTime: local time as Go's ``2006-01-02T15:04:05Z07:00`` ("Z" in UTC)."""
    parts = snapshot_id.split("-")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1000:
        return ""
    when = dt.datetime.fromtimestamp(int(parts[2]) / 1000).astimezone()
    offset = when.strftime("%z")
    zone = "Z" if offset in ("+0000", "-0000", "") else f"{offset[:3]}:{offset[3:]}"
    return when.strftime("%Y-%m-%dT%H:%M:%S") + zone


def snapshot_inspect(addr: str, args: list[str]) -> str:
    """Nomad's ``operator snapshot inspect [-json] <file>``: the metadata, then each type's count and size,
    largest first (names alike by name), as its generateStats sorts them."""
    as_json = False
    if args and args[0] in ("-json", "--json", "-json=true", "--json=true"):
        as_json, args = True, args[1:]
    path = _one_file(args, "operator snapshot inspect")
    try:
        snap = archive.decode(_read_file(path))
        stats = sorted(archive.table_stats(snap.state), key=lambda s: (-s[2], s[0]))
    except archive.ArchiveError as e:
        raise CliError(f"Error inspecting snapshot: {e}") from None
    meta: dict[str, Any] = snap.meta
    if as_json:  # SnapshotInspectFormat{Meta: raft.SnapshotMeta, Stats: []typeStats}, Format's 4 spaces
        return json.dumps({"Meta": meta, "Stats": [{"Name": name, "Sum": size, "Count": count}
                                                   for name, count, size in stats]}, indent=4)
    head = kv([("Created", _created(snap.id) or "<none>"), ("ID", snap.id), ("Size", _ibytes(meta["Size"])),
               ("Index", meta["Index"]), ("Term", meta["Term"]), ("Version", meta["Version"])])
    rows = [["Type", "Count", "Size"]] + [[name, str(count), _ibytes(size)] for name, count, size in stats]
    rows += [["", "", ""], ["Total", str(sum(c for _, c, _ in stats)), _ibytes(sum(s for _, _, s in stats))]]
    return head + "\n\n" + table(rows)


def snapshot_restore(addr: str, args: list[str]) -> str:
    path = _one_file(args, "operator snapshot restore")
    body = _read_file(path, quoted=True)
    try:
        archive.decode(body)
    except archive.ArchiveError as e:
        raise CliError(f"Error verifying snapshot file: {e}") from None
    try:
        _request(addr, "PUT", _PATH, body)
    except CliError as e:
        raise CliError(f"Failed to get restore snapshot: {e}") from None  # Nomad's wording
    return "Snapshot Restored"


def snapshot_state(addr: str, args: list[str]) -> str:
    import actors.http_api  # noqa: F401  (first: http_filter is imported by, and imports from, http_api)
    from actors.http_filter import FilterError, compile_filter
    from actors.state.store import StateStore, check_snapshot
    from runtime.cli_jobs import parse_flags
    from runtime.cli_raft_offline import go_json, state_as_map

    try:
        flags, rest = parse_flags(args, {"filter": str})
    except CliError as e:
        raise CliError(f"Failed to parse args: {e}") from None
    keep = None
    if flags.get("filter"):
        try:
            keep = compile_filter(flags["filter"])
        except FilterError as e:
            raise CliError(f"Invalid filter expression {json.dumps(flags['filter'])}: {e}") from None
    if len(rest) != 1:
        raise CliError("This command takes one argument: <file>\n"
                       "For additional help try 'nomad operator snapshot state -help'")
    body = _read_file(rest[0])
    try:
        snap = archive.decode(body)
        check_snapshot(snap.state)
        state = StateStore()
        state.restore(snap.state, snap.index)
    except (archive.ArchiveError, ValueError) as e:
        raise CliError(f"Failed to read archive file: {e}") from None
    out = state_as_map(state, keep)
    out["SnapshotMeta"] = [snap.meta]
    return go_json(dict(sorted(out.items())), 2)


SNAPSHOT_COMMANDS = {
    ("operator", "snapshot", "save"): snapshot_save,
    ("operator", "snapshot", "inspect"): snapshot_inspect,
    ("operator", "snapshot", "restore"): snapshot_restore,
    ("operator", "snapshot", "state"): snapshot_state,
}
