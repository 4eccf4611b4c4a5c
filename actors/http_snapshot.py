"""``GET`` / ``PUT /v1/operator/snapshot``: save the cluster state to an archive, restore it from one.

Nomad's ``Operator.SnapshotSave`` and ``Operator.SnapshotRestore``
(``nomad/operator_endpoint.go``), both for a management token when ACLs
are on.

**Save** answers the archive of :mod:`actors.state.snapshot_archive` as a
binary body, with Nomad's ``Digest: sha-256=...`` header and the usual
``X-Nomad-Index`` (the index the state reflects).  Default is consistent:
the Raft peer reads it as a linearizable read (a follower asks the leader
for a read index and answers from its own state once applied that far --
the state the leader would have sent, without shipping it across servers);
``?stale`` answers from this server's state as it is, which works without
a leader.

**Restore** verifies the archive first (checksums, metadata, the state's
shape: 400 for anything wrong, nothing proposed), then sends the state
through the Raft log, so every server applies it at the same index and it
is as durable as any write.  One entry must fit in a wire frame (4 MiB,
``runtime.wire.DEFAULT_MAX_FRAME_BYTES``) with the batch it travels in, so
the state is cut into :data:`RESTORE_CHUNK_BYTES` chunks: each is an entry
``snapshot_restore`` that the state store stages, and the last one swaps
the whole state in at its own index (``StateStore._snapshot_restore``).
hashicorp/raft's user restore (``Raft.Restore``) instead installs the state
on the leader as a snapshot at a new index past a hole in the log, so
followers get it by InstallSnapshot; that needs the log to skip an index,
which our RaftCore does not do, while log entries need nothing new and are
committed by a quorum before anyone applies them.

Raft indexes must stay above every index in the restored records (blocking
queries and clients' allocation watches compare them): when the snapshot
was taken at an index this cluster has not reached (a restore into a new
cluster), ``noop`` entries first move the index past it, as
hashicorp/raft's restore moves its last index past the snapshot's.

After the last chunk is applied the leader re-asserts its leadership
(``RaftPeer._restored``), as Nomad's restore does through reassertLeaderCh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import gevent

from actors.http_api import (
    _RETRY_READ,
    LEADER_WAIT_S,
    Api,
    CodedError,
    Request,
    Response,
    _await_raft,
    _raft,
    hold_for_leader,
    parse_query_options,
    query_flag,
    query_meta,
    read_body,
    require,
    route,
)
from actors.state import snapshot_archive as archive
from actors.state.store import check_snapshot, command
from runtime.edge import new_id, wall_time

__all__ = ["MAX_SNAPSHOT_BYTES", "RESTORE_CHUNK_BYTES", "restore_commands"]

# A restore's request body above this is refused with 413 before it is read:
# the archive is held in memory, with its decompressed state and the chunks
# in flight.  The same bound as the largest answer a client agent relays
# (actors.http_forward.FORWARD_MAX_RESPONSE_BYTES), which a saved snapshot
# must pass through when saved via a client.
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
# The state travels in Raft entries of at most this many bytes: half the
# leader's per-message budget (RaftTimings.max_bytes_per_msg, 1 MiB), so an
# AppendEntries of chunks stays far below the 4 MiB wire frame.
RESTORE_CHUNK_BYTES = 512 * 1024
# How long a save waits for the Raft actor's answer: the leader's read, then the state encoded by
# the snapshotter in a forked child.  LEADER_WAIT_S (6 s, for finding a leader) is too short for
# that second part: a large state, or a busy machine, takes seconds to fork and encode, and the
# save then failed with "timed out waiting for the leader" while the leader was there all along.
SNAPSHOT_SAVE_WAIT_S = 120.0
# noop entries proposed at once while moving the index past a snapshot's
# (each is a few bytes; Raft folds them into a handful of batches).
PAD_BATCH = 1024
OCTETS = "application/octet-stream"


def _offload(fn: Callable[..., Any], *args: Any) -> Any:
    """CPU-bound work (compressing, checksumming many MB) off the gevent loop, as DESIGN §3 says.

    An exception comes back as a value and is raised here: gevent's pool
    would print the traceback of a client's bad archive to the agent's stderr.
    """
    def run() -> tuple[bool, Any]:
        try:
            return True, fn(*args)
        except Exception as e:  # noqa: BLE001 -- re-raised in the calling greenlet below
            return False, e

    ok, value = gevent.get_hub().threadpool.apply(run)
    if not ok:
        raise value
    return value


def _require_access(req: Request, api: Api) -> None:
    """A save needs Nomad 2.0's snapshot-save operator capability (operator write grants it); a restore
    a management token (Operator.SnapshotRestore's IsManagement)."""
    if api.ctx.acl_enabled:
        from actors.http_acl import _management, require_operator

        if req.method == "GET":
            require_operator(req, api, "snapshot-save")
        else:
            _management(req, api)


@route("/v1/operator/snapshot")
def operator_snapshot(req: Request, api: Api) -> Any:
    require(req, "GET", "PUT")
    _require_access(req, api)
    return snapshot_save(req, api) if req.method == "GET" else snapshot_restore(req, api)


# ---------------------------------------------------------------- save


def snapshot_save(req: Request, api: Api) -> Response:
    from actors.raft.peer import SnapshotRead

    parse_query_options(req)
    stale = query_flag(req, "stale")

    def attempt() -> tuple[bool, Any]:
        fut = api.env.make_future()
        _raft(api).tell(SnapshotRead(reply=fut, stale=stale))
        try:
            return False, _await_raft(fut, SNAPSHOT_SAVE_WAIT_S)
        except CodedError as e:
            if e.code == 500 and e.message in _RETRY_READ:
                return True, e
            raise

    # Nomad forwards Operator.SnapshotSave to the leader: with none known it is held for one
    # (RPC_HOLD_TIMEOUT_S) before "No cluster leader", as every other leader-bound request.
    again, got = hold_for_leader(api, attempt)
    if again:
        raise got
    _, (index, term, voters, learners, state) = got
    created_ms = int(wall_time() * 1000)
    data = _offload(lambda: archive.encode(state, index=index, term=term, created_ms=created_ms,
                                           voters=tuple(voters), learners=tuple(learners)))
    headers = (("Digest", archive.digest_header(data)), *query_meta(api, index))
    return Response(200, data, OCTETS, headers)


# ---------------------------------------------------------------- restore


def _read_archive(req: Request) -> bytes:
    return read_body(req, MAX_SNAPSHOT_BYTES, "Snapshot")


def _verify(body: bytes) -> archive.Snapshot:
    snap = archive.decode(body)
    try:
        check_snapshot(snap.state)
    except ValueError as e:
        raise archive.ArchiveError(f"snapshot state is not usable: {e}") from None
    return snap


def restore_commands(state: bytes, restore_id: str, chunk_bytes: int = RESTORE_CHUNK_BYTES) -> list[bytes]:
    """The ``snapshot_restore`` entries that carry *state* through the log, in order."""
    sha = hashlib.sha256(state).hexdigest()
    pieces = [state[i:i + chunk_bytes] for i in range(0, len(state), chunk_bytes)] or [b""]
    return [command("snapshot_restore", id=restore_id, seq=n, total=len(pieces), sha256=sha, data=piece)
            for n, piece in enumerate(pieces)]


def _propose(api: Api, data: bytes) -> dict[str, Any]:
    from actors.raft.peer import Propose

    fut = api.env.make_future()
    _raft(api).tell(Propose(data=data, reply=fut))
    _, result = _await_raft(fut, LEADER_WAIT_S)
    if not isinstance(result, dict) or not result.get("ok"):
        error = result.get("error") if isinstance(result, dict) else result
        raise CodedError(500, f"failed to restore from snapshot: {error}")
    return result


def _pad_past(api: Api, snapshot_index: int, entries: int) -> None:
    """Move the Raft index so the last of *entries* lands above *snapshot_index* (noops; usually none)."""
    from actors.raft.peer import Propose

    noop = command("noop")
    while True:
        index = _propose(api, noop)["index"]  # a barrier too: where the log stands now
        missing = snapshot_index - index - entries + 1
        if missing <= 0:
            return
        futures = []
        for _ in range(min(missing, PAD_BATCH)):
            fut = api.env.make_future()
            _raft(api).tell(Propose(data=noop, reply=fut))
            futures.append(fut)
        for fut in futures:
            _await_raft(fut, LEADER_WAIT_S)


def snapshot_restore(req: Request, api: Api) -> Response:
    body = _read_archive(req)
    try:
        snap = _offload(_verify, body)
    except archive.ArchiveError as e:
        raise CodedError(400, f"failed to read snapshot: {e}") from None
    restore_id = new_id()
    commands = _offload(restore_commands, snap.state, restore_id)
    _pad_past(api, snap.index, len(commands))
    result: dict[str, Any] = {}
    try:
        for data in commands:
            result = _propose(api, data)
    except CodedError:
        # Do not leave the chunks sent so far staged on every server until
        # the next restore: best effort, the error the caller sees is the first.
        try:
            _propose(api, command("snapshot_restore_abort", id=restore_id))
        except CodedError:
            pass
        raise
    if not result.get("restored"):
        raise CodedError(500, "failed to restore from snapshot: the last chunk did not restore the state")
    return Response(200, b"", headers=(("X-Nomad-Index", str(result["index"])),))
