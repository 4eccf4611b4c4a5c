"""The snapshot archive of ``nomad operator snapshot save | restore | inspect``.

The file format is Nomad's (``helper/snapshot/archive.go``, itself Consul's):
a gzip-compressed tar holding three members --

* ``meta.json``: the snapshot's metadata (``Version``, ``ID``, ``Index``,
  ``Term``, ``Size``, the Raft ``Configuration``), as hashicorp/raft's
  ``SnapshotMeta``;
* ``state.bin``: the state store's own snapshot (:meth:`StateStore.snapshot`,
  msgpack);
* ``SHA256SUMS``: ``<hex sha256>  <name>`` for the two above.

Reading checks everything before anything is trusted: gzip and tar framing
(a truncated file ends early and is refused), only the three known
members, every checksum, the metadata's ``Size`` against the state's, and a
bound on the decompressed size so a small hostile file cannot inflate into
all of memory.  Every failure is an :class:`ArchiveError` with one line that
says what is wrong.  Pure functions of bytes: no files, no clock (the caller
passes the creation time), no randomness.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = ["ARCHIVE_VERSION", "MAX_STATE_BYTES", "ArchiveError", "Snapshot", "decode", "digest_header",
           "encode", "snapshot_id", "table_stats"]

ARCHIVE_VERSION = 1  # meta.json's Version: hashicorp/raft's SnapshotVersion (1), the only one there is
# The largest state a snapshot may hold once decompressed.  Bounds what a
# hostile or damaged file can make inflate (gzip reaches ~1000:1); well
# above any state this agent keeps in memory today (a few hundred MB would
# already be a very large cluster).
MAX_STATE_BYTES = 1024 * 1024 * 1024
# The metadata and checksum members are a few hundred bytes; more is not ours.
MAX_SMALL_MEMBER_BYTES = 1024 * 1024
META, STATE, SUMS = "meta.json", "state.bin", "SHA256SUMS"
_MEMBERS = (META, STATE, SUMS)
# gzip level: 6 is gzip's and Go's compress/gzip default (DefaultCompression),
# the usual balance of time and size.
GZIP_LEVEL = 6


class ArchiveError(ValueError):
    """The archive cannot be trusted: corrupt, truncated, tampered with, or not a snapshot."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified archive: its metadata (meta.json's map) and the state store's snapshot bytes."""

    meta: dict[str, Any]
    state: bytes

    @property
    def index(self) -> int:
        return int(self.meta["Index"])

    @property
    def term(self) -> int:
        return int(self.meta["Term"])

    @property
    def id(self) -> str:
        return str(self.meta["ID"])


def snapshot_id(term: int, index: int, created_ms: int) -> str:
    """hashicorp/raft's snapshot ID: ``<term>-<index>-<unix ms>`` (inspect reads the time back from it)."""
    return f"{term}-{index}-{created_ms}"


def encode(state: bytes, *, index: int, term: int, created_ms: int, voters: tuple[str, ...] = (),
           learners: tuple[str, ...] = ()) -> bytes:
    """The archive of *state* taken at Raft *index* / *term* (deterministic for equal arguments)."""
    # Members as a Raft snapshot names them: "ID@address", or an address alone that is also the ID
    # (split at the last '@', as actors.raft.core.parse_member: an address never holds one).
    servers = [{"Suffrage": suffrage, "ID": sid if sep else addr, "Address": addr}
               for suffrage, group in ((0, voters), (1, learners))
               for sid, sep, addr in (s.rpartition("@") for s in group)]
    meta = {"Version": ARCHIVE_VERSION, "ID": snapshot_id(term, index, created_ms), "Index": index,
            "Term": term, "Peers": None, "Configuration": {"Servers": servers}, "ConfigurationIndex": 0,
            "Size": len(state)}
    meta_bytes = (json.dumps(meta) + "\n").encode()  # Go's json.Encoder ends with a newline
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in ((META, meta_bytes), (STATE, state))).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((META, meta_bytes), (STATE, state), (SUMS, sums)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, created_ms // 1000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=GZIP_LEVEL, mtime=created_ms // 1000)


def digest_header(archive: bytes) -> str:
    """The ``Digest`` header Nomad's API sends with a snapshot (RFC 3230 ``sha-256=<base64>``)."""
    return "sha-256=" + base64.b64encode(hashlib.sha256(archive).digest()).decode()


def _gunzip(archive: bytes, limit: int) -> bytes:
    # Inflated in bounded steps: a bomb is refused once past the limit, not after.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing only
    out = bytearray()
    data = archive
    try:
        while data:
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise ArchiveError(f"snapshot is larger than {limit} bytes once decompressed")
            data = d.unconsumed_tail
            if d.eof:
                break
    except zlib.error as e:
        raise ArchiveError(f"snapshot is not a valid gzip stream: {e}") from None
    if not d.eof:
        raise ArchiveError("snapshot is truncated: the gzip stream ends early")
    if d.unused_data.strip(b"\0"):
        raise ArchiveError("snapshot has trailing data after its gzip stream")
    return bytes(out)


def _members(tar_bytes: bytes) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for info in tar:
                if info.name not in _MEMBERS:
                    raise ArchiveError(f"unexpected file {info.name!r} in snapshot")
                if not info.isreg():
                    raise ArchiveError(f"snapshot member {info.name!r} is not a regular file")
                if info.name in got:
                    raise ArchiveError(f"snapshot holds {info.name!r} twice")
                f = tar.extractfile(info)
                data = f.read() if f is not None else b""
                if len(data) != info.size:
                    raise ArchiveError(f"snapshot is truncated: {info.name!r} is cut short")
                got[info.name] = data
    except tarfile.TarError as e:
        raise ArchiveError(f"snapshot is not a valid tar archive: {e}") from None
    for name in _MEMBERS:
        if name not in got:
            raise ArchiveError(f"snapshot is missing {name!r}")
    for name in (META, SUMS):
        if len(got[name]) > MAX_SMALL_MEMBER_BYTES:
            raise ArchiveError(f"snapshot member {name!r} is implausibly large ({len(got[name])} bytes)")
    return got


def _verify_sums(got: dict[str, bytes]) -> None:
    seen: dict[str, str] = {}
    try:
        text = got[SUMS].decode("ascii")
    except UnicodeDecodeError:
        raise ArchiveError("snapshot checksum list is not text") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or name not in (META, STATE):
            raise ArchiveError(f"snapshot checksum list has a malformed line: {line[:100]!r}")
        seen[name] = digest.lower()
    for name in (META, STATE):
        if name not in seen:
            raise ArchiveError(f"snapshot checksum list is missing a hash for {name!r}")
        if hashlib.sha256(got[name]).hexdigest() != seen[name]:
            raise ArchiveError(f"snapshot checksum mismatch for {name!r}: the file is corrupt")


def _meta(raw: bytes, state_len: int) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ArchiveError(f"snapshot metadata is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ArchiveError("snapshot metadata is not a JSON object")
    for key in ("Version", "Index", "Term", "Size"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ArchiveError(f"snapshot metadata field {key!r} must be a non-negative integer")
    if not isinstance(meta.get("ID"), str):
        raise ArchiveError("snapshot metadata field 'ID' must be a string")
    if meta["Version"] != ARCHIVE_VERSION:
        raise ArchiveError(f"unsupported snapshot version {meta['Version']} "
                           f"(this agent reads {ARCHIVE_VERSION})")
    if meta["Size"] != state_len:
        raise ArchiveError(f"snapshot state is {state_len} bytes but its metadata says {meta['Size']}")
    return meta


def decode(archive: bytes, *, max_state_bytes: int = MAX_STATE_BYTES) -> Snapshot:
    """Verify and open an archive; :class:`ArchiveError` says what is wrong with a bad one."""
    if not archive:
        raise ArchiveError("snapshot is empty")
    got = _members(_gunzip(archive, max_state_bytes + 2 * MAX_SMALL_MEMBER_BYTES))
    if len(got[STATE]) > max_state_bytes:
        raise ArchiveError(f"snapshot state is larger than {max_state_bytes} bytes")
    _verify_sums(got)
    return Snapshot(meta=_meta(got[META], len(got[STATE])), state=got[STATE])


def table_stats(state: bytes) -> list[tuple[str, int, int]]:
    """(table, records, encoded bytes) per non-empty table of a state snapshot, for inspect."""
    try:
        snap = msgpack.unpackb(state, raw=False)
        tables = snap["tables"]
        out = [(name, len(t), len(msgpack.packb(t, use_bin_type=True)))
               for name, t in sorted(tables.items()) if t]
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as e:
        raise ArchiveError(f"snapshot state cannot be decoded: {type(e).__name__}: {e}") from None
    return out


# What a root key record holds in clear (actors.state.root_keys): its private keys.
_KEY_MATERIAL = ("Seed", "RSAKey")


def redact(archive: bytes) -> bytes:
    """The archive with the root keyring's cleartext key material removed (Nomad's
    ``operator snapshot save -redact``, raftutil.RedactSnapshot): every root key keeps its ID, state and
    times, not its private keys -- such a snapshot is for inspection and sharing, and a cluster
    restored from it cannot sign with those keys.  Taken, term, index and members are kept."""
    snap = decode(archive)
    state = msgpack.unpackb(snap.state, raw=False)
    keys = (state.get("tables") or {}).get("root_keys") or {}
    for rec in keys.values():
        if isinstance(rec, dict):
            for field in _KEY_MATERIAL:
                if field in rec:
                    rec[field] = ""
    servers = (snap.meta.get("Configuration") or {}).get("Servers") or []
    members = {0: [], 1: []}
    for s in servers:
        sid, addr = str(s.get("ID", "")), str(s.get("Address", ""))
        members.setdefault(int(s.get("Suffrage", 0)), []).append(addr if sid == addr else f"{sid}@{addr}")
    created_ms = int(str(snap.meta.get("ID", "0-0-0")).rsplit("-", 1)[-1] or 0)
    return encode(msgpack.packb(state, use_bin_type=True), index=snap.index, term=snap.term,
                  created_ms=created_ms, voters=tuple(members[0]), learners=tuple(members[1]))
