"""``nomad operator raft info | logs | state <path>``: a stopped server's Raft store, read offline.

As Nomad's ``command/operator_raft_{info,logs,state}.go`` (``helper/raftutil``),
on this agent's store: SQLite at ``<data_dir>/server/raft/raft.db`` (see
:mod:`actors.raft.sqlite_store`), found as Nomad finds its ``raft.db``: under
``server/raft/``, ``raft/`` or directly in *path*, *path* itself when it names
a ``.db`` file, else anywhere below it.

* ``info`` prints Nomad's ``path`` / ``length`` / ``first index`` / ``last
  index`` lines, then what this store also knows: the last entry's term, the
  current term and vote, the snapshot's index and term, the file's size.
* ``logs [-pretty]`` prints each log entry as JSON, one a line (``-pretty``:
  indented), as Nomad's ``logMessage``: ``LogType`` (``LogCommand``,
  ``LogConfiguration``, ``LogNoop``), ``Term``, ``Index``, and for a command
  its ``CommandType`` (the state machine's op) and ``Body`` (the command's
  other fields; bytes as base64, as Go shows a ``[]byte``).
* ``state [-last-index=N]`` rebuilds the state machine from the snapshot and
  the log (up to index N; N <= 0 counts back from the last index) and prints
  its tables as JSON under Nomad's names (``Allocs``, ``Evals``, ``Jobs``,
  ``Nodes``, ``Indexes``, ...; a table Nomad has no name for under its own
  CamelCase name).  Variables are shown without their items (Nomad keeps
  them encrypted and leaves them out).  Nomad's ``CSIPlugins``,
  ``CSIVolumes``, ``JobSummaries`` and ``RootKeys`` have no table here.

A store a running agent holds is refused (the agent's lock on the file is
seen), as Nomad refuses one in use.  The store is never written: it is
copied into a temporary directory and opened, checked and read there with
the agent's own code (:class:`~actors.raft.sqlite_store.SqliteStorage`), so
a crashed server's WAL is replayed into the copy, not into its data dir.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import shutil
import struct
import sys
import tempfile
from typing import Any

import msgpack

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags

__all__ = ["RAFT_OFFLINE_COMMANDS", "find_raft_store", "go_json", "read_store", "state_as_map"]

ERR_ALREADY_OPEN = "unable to open raft logs that are in use"  # Nomad's errAlreadyOpen
LOG_TYPES = {0: "LogCommand", 1: "LogConfiguration", 2: "LogNoop"}  # actors.raft.messages kinds
# SQLite's lock bytes (its file format's lock-byte page): an agent holding the store locks a range here.
_SQLITE_LOCK_START, _SQLITE_LOCK_LEN = 0x40000000, 512


def find_raft_store(path: str) -> str:
    """Nomad's ``FindRaftStore`` for a ``raft.db``."""
    for candidate in (os.path.join(path, "server", "raft", "raft.db"), os.path.join(path, "raft", "raft.db"),
                      os.path.join(path, "raft.db")):
        if os.path.isfile(candidate):
            return candidate
    if os.path.isfile(path) and path.endswith(".db"):
        return path
    found = ""
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if "raft.db" in files:
            found = os.path.join(root, "raft.db")  # filepath.Walk's last match, as Nomad's
    if not found:
        raise CliError(f"no raft store (raft.db) found in {path}")
    return found


def _holder(path: str) -> int | None:
    """The process holding SQLite's lock on *path* (an agent with the store open), or None."""
    fd = os.open(path, os.O_RDONLY)
    try:
        probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, _SQLITE_LOCK_START, _SQLITE_LOCK_LEN, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def read_store(path: str) -> tuple[int, str, Any, list[Any], int]:
    """(term, vote, snapshot, entries, file size) of the stopped store at *path*; CliError if it cannot."""
    from actors.raft.sqlite_store import SqliteStorage
    from actors.raft.storage import StorageError

    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise CliError(f"failed to open raft logs: failed to stat {path}: {e.strerror or e}") from None
    try:
        holder = _holder(path)
    except OSError as e:
        raise CliError(f"failed to open raft logs: {e.strerror or e}") from None
    if holder is not None:
        raise CliError(f"failed to open raft logs: {ERR_ALREADY_OPEN} (process {holder} holds {path}: "
                       "stop that agent first)")
    with tempfile.TemporaryDirectory(prefix="nomad-raft-") as tmp:
        folder, base = os.path.split(os.path.abspath(path))
        copy = os.path.join(tmp, base)  # the same name: the snapshot row names its file by it
        try:
            shutil.copyfile(path, copy)
            if os.path.exists(path + "-wal"):  # a crashed server's last writes
                shutil.copyfile(path + "-wal", copy + "-wal")
            prefix = base + ".snapshot-"
            for name in os.listdir(folder):  # snapshots kept in files beside the store: read in place
                if name.startswith(prefix) and "." not in name[len(prefix):]:
                    os.symlink(os.path.join(folder, name), os.path.join(tmp, name))
        except OSError as e:
            raise CliError(f"failed to open raft logs: {e}") from None
        try:
            store = SqliteStorage(copy, check=True)
            try:
                term, vote, snapshot, entries = store.load()
            finally:
                store.close()
        except StorageError as e:
            raise CliError(f"failed to open raft logs: {str(e).replace(copy, os.path.abspath(path))}") \
                from None
    return term, vote, snapshot, entries, size


def _one_path(args: list[str], spec: dict[str, type], name: str) -> tuple[dict[str, Any], str]:
    flags, rest = parse_flags(args, spec)
    if len(rest) != 1:
        raise CliError(f"This command takes one argument: <path>\n"
                       f"For additional help try 'nomad {name} -help'")
    return flags, rest[0]


def raft_info(addr: str, args: list[str]) -> str:
    _, path = _one_path(args, {}, "operator raft info")
    raft_path = find_raft_store(path)
    term, vote, snapshot, entries, size = read_store(raft_path)
    first, last = (entries[0].index, entries[-1].index) if entries else (0, 0)
    last_term = entries[-1].term if entries else (snapshot[1] if snapshot else 0)
    snap = f"index {snapshot[0]}, term {snapshot[1]}, {len(snapshot[4])} bytes" if snapshot else "none"
    return "\n".join([f"path:        {raft_path}", f"length:      {len(entries)}",
                      f"first index: {first}", f"last index:  {last}", f"last term:   {last_term}",
                      f"term:        {term}", f"voted for:   {vote}", f"snapshot:    {snap}",
                      f"size:        {size} bytes"])


def _plain(value: Any) -> Any:
    """A decoded value as Go's JSON shows it: bytes as base64, map keys as strings, maps sorted."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def go_json(value: Any, indent: int | None = None) -> str:
    """Go's ``json.Encoder``: compact (or indented), UTF-8, with ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, default=_unjsonable,
                      separators=(",", ":") if indent is None else None)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _unjsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON")


def log_message(entry: Any) -> tuple[dict[str, Any], str]:
    """Nomad's ``logMessage`` of one entry, and a warning ("" when it decoded)."""
    from runtime import wire

    kind = LOG_TYPES.get(entry.kind, str(entry.kind))
    msg: dict[str, Any] = {"LogType": kind, "Term": entry.term, "Index": entry.index}
    if not entry.data:
        if entry.kind == 0:
            return msg, f"failed to decode log entry at index {entry.index}: command did not include data"
        return msg, ""
    try:
        if entry.kind == 0:
            cmd = msgpack.unpackb(entry.data, raw=False, strict_map_key=False)
            if not isinstance(cmd, dict):
                raise ValueError("the command is not a map")
            op = cmd.pop("op", "")
            if op:
                msg["CommandType"] = str(op)
            msg["Body"] = _plain(cmd)
        else:
            decoded = wire.decode(entry.data)
            is_record = dataclasses.is_dataclass(decoded) and not isinstance(decoded, type)
            msg["Body"] = _plain(dataclasses.asdict(decoded) if is_record else decoded)
    except Exception as e:  # any undecodable entry is reported, the rest still printed
        msg["Body"] = "FAILED TO DECODE DATA"
        return msg, (f"failed to decode log entry at index {entry.index}: failed to decode body of "
                     f"{kind}.{msg.get('CommandType', '')} {e}")
    return msg, ""


def raft_logs(addr: str, args: list[str]) -> str:
    flags, path = _one_path(args, {"pretty": bool}, "operator raft logs")
    _, _, _, entries, _ = read_store(find_raft_store(path))
    lines, warnings = [], []
    for e in entries:
        msg, warning = log_message(e)
        lines.append(go_json(msg, 2 if flags.get("pretty") else None))
        if warning:
            warnings.append(warning)
    for w in warnings:  # after the JSON stream, as Nomad prints them
        print(w, file=sys.stderr)
    return "\n".join(lines)


# Our tables under Nomad's StateAsMap names (a table not named here: its CamelCase name).
STATE_NAMES = {"acl_policies": "ACLPolicies", "acl_tokens": "ACLTokens", "acl_roles": "ACLRoles",
               "acl_auth_methods": "ACLAuthMethods", "acl_binding_rules": "ACLBindingRules",
               "acl_bootstrap": "ACLBootstrap", "allocs": "Allocs", "deployments": "Deployments",
               "evals": "Evals", "jobs": "Jobs", "nodes": "Nodes", "periodic_launch": "PeriodicLaunches",
               "scaling_event": "ScalingEvents", "scaling_policies": "ScalingPolicies",
               "node_pools": "NodePools", "variables": "Variables", "service_registrations": "Services",
               "scheduler_config": "SchedulerConfig", "autopilot_config": "AutopilotConfig",
               "cluster_meta": "ClusterMetadata", "kv": "KV"}


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def state_as_map(store: Any, keep: Any = None) -> dict[str, list[Any]]:
    """Nomad's ``StateAsMap``: each table's records (sorted by key), and ``Indexes``.

    *keep*, when given, is a filter each record must pass (``snapshot state -filter``).
    """
    tables = store.tables
    out: dict[str, list[Any]] = {}
    for name in sorted(tables):
        table = tables[name]
        if name == "job_versions":
            continue  # with the jobs below
        if name == "kv":
            records = [{"Key": k, "Value": table[k]} for k in sorted(table)]
        elif name == "variables":  # metadata only: the items are the secret
            records = [{k: v for k, v in table[k].items() if k != "Items"} for k in sorted(table)]
        else:
            records = [table[k] for k in sorted(table)]
        out[STATE_NAMES.get(name, _camel(name))] = records
    versions = []
    for job_id in sorted(set(tables["jobs"]) | set(tables.get("job_versions", {}))):
        job_versions = list(tables.get("job_versions", {}).get(job_id, []))
        if job_id in tables["jobs"]:
            job_versions.append(tables["jobs"][job_id])
        versions += sorted(job_versions, key=lambda j: j.get("Version", 0) if isinstance(j, dict) else 0)
    out["JobVersions"] = versions
    # Nomad's StateAsMap always has these: summaries counted from the allocations (a table of their
    # own in Nomad's store), and the CSI tables, empty here since the agent has no CSI.
    from actors.http_jobs import job_summaries
    out["JobSummaries"] = [s for _, s in sorted(job_summaries(store, sorted(tables["jobs"])).items())]
    out["CSIPlugins"], out["CSIVolumes"] = [], []
    if keep is not None:
        out = {name: [r for r in records if _kept(keep, r)] for name, records in out.items()}
    out["Indexes"] = [{"Key": t, "Value": store.table_index[t]} for t in sorted(store.table_index)]
    return dict(sorted(out.items()))


def _kept(keep: Any, record: Any) -> bool:
    try:
        return bool(keep(record))
    except Exception:  # as Nomad's FSMFilter: an expression that cannot apply excludes
        return False


def replay(snapshot: Any, entries: list[Any], last_index: int | None = None) -> Any:
    """A StateStore rebuilt from *snapshot* and the log entries after it, up to *last_index*."""
    from actors.raft.messages import NORMAL
    from actors.state.store import StateStore

    state = StateStore()
    if snapshot is not None:
        state.restore(snapshot[4], snapshot[0])
    for e in entries:
        if last_index is not None and e.index > last_index:
            break
        if e.index <= state.applied_index:
            continue  # kept by compaction: the snapshot covers it
        if e.kind == NORMAL:
            state.apply(e.index, e.data)
        else:
            state.applied_index = e.index
    return state


def raft_state(addr: str, args: list[str]) -> str:
    flags, path = _one_path(args, {"last-index": str}, "operator raft state")
    raw_last = flags.get("last-index")
    _, _, snapshot, entries, _ = read_store(find_raft_store(path))
    last = entries[-1].index if entries else (snapshot[0] if snapshot else 0)
    stop = None
    if raw_last is not None:
        try:
            n = int(raw_last)
        except ValueError:
            raise CliError(f'Failed to parse args: invalid value "{raw_last}" for flag -last-index: '
                           "parse error") from None
        stop = n if n > 0 else last + n
        if snapshot is not None and stop < snapshot[0]:
            raise CliError(f"last index {stop} is before the snapshot at index {snapshot[0]}: the log "
                           "before it is compacted away")
    try:
        state = replay(snapshot, entries, stop)
    except Exception as e:  # a store that cannot be replayed: say so, no traceback
        raise CliError(f"failed to replay the raft log: {type(e).__name__}: {e}") from None
    return go_json(state_as_map(state), 2)


RAFT_OFFLINE_COMMANDS = {
    ("operator", "raft", "info"): raft_info,
    ("operator", "raft", "logs"): raft_logs,
    ("operator", "raft", "state"): raft_state,
}
