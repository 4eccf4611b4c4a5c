"""AllocEndpoint: the server actor clients ask for their allocations and report to.

Nomad's ``Node.GetClientAllocs``, ``Node.UpdateAlloc`` and
``Node.UpdateDrain`` (NOMAD.md §5.3), on every server:

* **GetClientAllocs** is a blocking query answered from this server's own
  state (Nomad allows stale reads for it: any server can hold the watch, so
  the leader does not carry every client's long poll).  The node's index is
  the highest ``AllocModifyIndex`` of its allocations -- it moves when the
  servers change what the node should run, not when the client reports --
  and the request parks on a Raft :class:`Watch` of the ``allocs`` table
  until that index passes the client's ``min_index`` or ``wait_s`` ends.
* **UpdateAlloc** and **UpdateDrain** are Raft writes: proposed here, and
  RaftPeer forwards a follower's proposal to the leader.  As Nomad's
  ``Node.UpdateAlloc`` does, reports arriving within ``update_batch_s`` of
  each other (50 ms, Nomad's batchUpdateInterval) go into one write, and
  each client is answered when it commits: when a plan lands on many nodes
  their clients all report at once, and one Raft entry (one fsync on every
  server) serves them all.  Each server batches the reports its own clients
  send (Nomad forwards a follower's report to the leader, whose batch takes
  the whole cluster's: tried on the 100-client simulation, it cut the
  report writes from 248 to 104 but the forwarded reports and relayed
  answers cost as much as the Raft writes saved).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgpack

from actors.client.disk_migrate import migrate_token
from actors.client.messages import (
    ClientAllocsResponse,
    GetClientAllocs,
    GetPrevAlloc,
    GetTemplateData,
    PrevAllocResponse,
    SignIdentities,
    SignIdentitiesResponse,
    TemplateDataResponse,
    UpdateAllocs,
    UpdateDrain,
    WriteResponse,
)
from actors.raft.peer import Propose, Read, Watch
from actors.server import RAFT, RaftReply, ReplyTo
from actors.state import root_keys
from actors.state import services as svc_state
from actors.state import variables as var_state
from actors.state.store import REPORT_REV, command
from actors.workload_identity import NO_KEY, new_jti, sign_identities, workload_may_read
from runtime.actor import NodeActor
from runtime.env import Env

ALLOC_ENDPOINT = "alloc-endpoint"


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocEndpointConfig:
    # Longest wait a client may ask for; Nomad caps blocking queries at 10 min
    # (structs.MaxBlockingRPCQueryTime) and clients ask for 5 min.
    max_wait_s: float = 600.0
    # Requests parked at once on this server; beyond it a request is answered
    # at once and the client polls (memory stays bounded).
    max_parked: int = 20_000
    # A follower that has not heard from a leader for this long does not
    # answer (the client asks another server): its state may predate
    # allocations the client already runs, and acting on it would stop them.
    # Several leader heartbeat rounds; far below the client's heartbeat grace.
    max_stale_s: float = 5.0
    # Client allocation reports are gathered this long into one Raft write
    # (Nomad's batchUpdateInterval, 50 ms): a client reports at most every
    # 200 ms anyway (allocSyncIntv), so the wait costs it little, and a plan
    # that lands on a hundred nodes takes one write instead of a hundred.
    # 0: each report is its own write.
    update_batch_s: float = 0.05
    # A batch holding this many allocation updates is written at once: it
    # bounds the Raft entry (a few hundred bytes an allocation with its task
    # states) and one apply's turn on every server.
    update_batch_max_allocs: int = 1024
    # ... or this many bytes of reports (as the clients encoded them): well
    # under the transport's frame limit (4 MiB), so the entry can always be
    # forwarded to the leader and replicated.
    update_batch_max_bytes: int = 512 * 1024
    # One task's template data query reads at most this many variables and
    # services: each is read again whenever the tables move, and a job's
    # templates read a handful; a client asking for more is refused.
    template_max_deps: int = 1000

    def __post_init__(self) -> None:
        if self.max_wait_s <= 0 or self.max_parked < 1 or self.max_stale_s <= 0:
            raise ValueError("max_wait_s and max_stale_s must be > 0 and max_parked >= 1")
        if self.template_max_deps < 1:
            raise ValueError("template_max_deps must be >= 1")
        if self.update_batch_s < 0 or self.update_batch_max_allocs < 1 or self.update_batch_max_bytes < 1:
            raise ValueError("update_batch_s must be >= 0, update_batch_max_allocs and "
                             "update_batch_max_bytes >= 1")


def node_alloc_index(state: Any, node_id: str) -> int:
    """Watch index: the node's highest AllocModifyIndex (0 before it has any)."""
    return state.node_alloc_index.get(node_id, 0)


def client_allocs(state: Any, node_id: str, secret_id: str, since: int = 0) -> tuple[str, int, bytes, bytes]:
    """Watch query: ("", node index, the allocations changed after *since*, every [ID, AllocModifyIndex]).

    Nomad's GetClientAllocs answers each allocation's AllocModifyIndex and
    the client pulls the changed ones; here the changed ones come along, so
    an answer costs what changed, not everything the node ever ran.  The
    indexes of the rest let the client see a copy it holds that no longer
    matches (an operator's snapshot restore takes records back to older
    indexes): it then asks for everything again.  An error is
    (error, 0, b"", b"").
    """
    node = state.tables["nodes"].get(node_id)
    if node is None:
        return "node not found", 0, b"", b""
    if node.get("SecretID") and node["SecretID"] != secret_id:
        return "node secret ID does not match", 0, b"", b""
    allocs = state.node_allocs(node_id)
    changed = allocs if not since else [a for a in allocs if _alloc_index(a) > since]
    # The watch index itself: it also moves when allocations are removed (job
    # GC), which the highest index among those left would not show.
    return ("", node_alloc_index(state, node_id), msgpack.packb(changed, use_bin_type=True),
            msgpack.packb([[a["ID"], _alloc_index(a)] for a in allocs], use_bin_type=True))


def _alloc_index(a: dict[str, Any]) -> int:
    return a.get("AllocModifyIndex", a.get("ModifyIndex", 0))


def template_data(state: Any, node_id: str, secret_id: str, alloc_id: str, task: str,
                  deps: tuple[tuple[str, str], ...]) -> tuple[str, bytes]:
    """Watch query: ("", msgpack [[kind, argument, error, value], ...]) for a task's templates, read
    with the task's identity (its allocation must be on the asking node); an error is (error, b"")."""
    node = state.tables["nodes"].get(node_id)
    if node is None:
        return "node not found", b""
    if node.get("SecretID") and node["SecretID"] != secret_id:
        return "node secret ID does not match", b""
    alloc = state.tables["allocs"].get(alloc_id)
    if alloc is None or alloc.get("NodeID") != node_id:
        return "Permission denied", b""
    job = alloc.get("Job") or {}
    ns = alloc.get("Namespace", "default")
    job_id = job.get("ParentID") or alloc.get("JobID", "")  # a dispatched job's identity is its parent's
    group = alloc.get("TaskGroup", "")
    out: list[list[Any]] = []
    for kind, arg in deps:
        if kind == "var":
            if not workload_may_read(ns, job_id, group, task, ns, arg):
                out.append([kind, arg, "Permission denied", None])
                continue
            var = state.tables.get(var_state.TABLE, {}).get(var_state.key(ns, arg))
            out.append([kind, arg, "", None if var is None else
                        {k: var[k] for k in ("Namespace", "Path", "Items", "CreateIndex", "ModifyIndex",
                                             "CreateTime", "ModifyTime") if k in var}])
        elif kind == "varlist":
            listed = [var_state.metadata(v) for v in var_state.listed(state.tables, ns, arg)
                      if workload_may_read(ns, job_id, group, task, v["Namespace"], v["Path"])]
            out.append([kind, arg, "", listed])
        elif kind == "service":
            # "<name>", or "<name>?ns=<namespace>" (nomadService "web?ns=other"): Nomad lets a workload
            # read the services of any namespace (acl.AllowServiceRegistrationReadList's isWorkload).
            name, sep, other = arg.partition("?ns=")
            want = other if sep else ns
            regs = state.tables.get(svc_state.TABLE, {})
            out.append([kind, arg, "", [dict(r, Tags=list(r.get("Tags") or ()))
                                        for _, r in sorted(regs.items())
                                        if r["ServiceName"] == name
                                        and r.get("Namespace", "default") == want]])
        else:  # "services": "", or "?ns=<namespace>" (nomadServices "?ns=other"; "*": every namespace)
            _, sep, other = arg.partition("?ns=")
            want = other if sep else ns
            tags: dict[tuple[str, str], set[str]] = {}
            for r in state.tables.get(svc_state.TABLE, {}).values():
                r_ns = r.get("Namespace", "default")
                if want in ("*", r_ns):
                    tags.setdefault((r["ServiceName"], r_ns), set()).update(r.get("Tags") or ())
            out.append([kind, arg, "", [{"Name": n, "Namespace": n_ns, "Tags": sorted(t)}
                                        for (n, n_ns), t in sorted(tags.items())]])
    return "", msgpack.packb(out, use_bin_type=True)


def prev_alloc(state: Any, node_id: str, secret_id: str, alloc_id: str) -> tuple[str, dict[str, Any]]:
    """Watch query: ("", PrevAllocResponse fields) about the previous allocation of *alloc_id* (which
    must be on the asking node), as Nomad's remotePrevAlloc reads it: whether it is terminal, the node
    it ran on and that node's HTTP address, and -- when *alloc_id* migrates its ephemeral disk and the
    previous one ran on another node -- the migrate token for it (Nomad's GetClientAllocs
    MigrateTokens: keyed with that node's secret, which only the servers and that node hold)."""
    node = state.tables["nodes"].get(node_id)
    if node is None:
        return "node not found", {}
    if node.get("SecretID") and node["SecretID"] != secret_id:
        return "node secret ID does not match", {}
    alloc = state.tables["allocs"].get(alloc_id)
    if alloc is None or alloc.get("NodeID") != node_id:
        return "Permission denied", {}
    prev_id = alloc.get("PreviousAllocation") or ""
    prev = state.tables["allocs"].get(prev_id) if prev_id else None
    if prev is None:
        return "", {"found": False}
    status = prev.get("ClientStatus", "")
    prev_node_id = prev.get("NodeID", "")
    prev_node = state.tables["nodes"].get(prev_node_id)
    out: dict[str, Any] = {"found": True, "client_status": status, "node_id": prev_node_id,
                           "terminal": status in ("complete", "failed", "lost", "unknown")}
    if prev_node is not None:
        out["node_http_addr"] = prev_node.get("HTTPAddr") or ""
        if _should_migrate(alloc) and prev_node_id != node_id:
            out["migrate_token"] = migrate_token(prev_id, prev_node.get("SecretID") or "")
    return "", out


def _should_migrate(alloc: dict[str, Any]) -> bool:
    """Nomad's Allocation.ShouldMigrate: a replacement not told to stop whose group migrates its disk."""
    if not alloc.get("PreviousAllocation") or alloc.get("DesiredStatus") in ("stop", "evict"):
        return False
    job = alloc.get("Job") or {}
    for g in job.get("TaskGroups") or ():
        if isinstance(g, dict) and g.get("Name") == alloc.get("TaskGroup"):
            return bool((g.get("EphemeralDisk") or {}).get("Migrate"))
    return False


@dataclass(slots=True)
class _Parked:
    req: GetClientAllocs | GetTemplateData | GetPrevAlloc
    deadline: float


class AllocEndpoint(NodeActor):
    def __init__(self, env: Env, name: str, *, config: AllocEndpointConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or AllocEndpointConfig()
        self.raft = raft
        self._wall = wall_clock or env.now
        self._parked: dict[int, _Parked] = {}
        self._writes: dict[int, tuple[str, str, int]] = {}
        # Reports waiting for the batch write, and the clients each batch written answers.
        self._batch: list[tuple[UpdateAllocs, list[Any]]] = []
        self._batch_allocs = 0
        self._batch_bytes = 0
        self._batches: dict[int, list[tuple[str, str, int]]] = {}
        self._next = 0
        self.stats = {"queries": 0, "template_queries": 0, "prev_alloc_queries": 0, "updates": 0,
                      "batches": 0, "drains": 0, "errors": 0, "sign_queries": 0, "root_keys_made": 0}
        # SignIdentities being answered: its read, or the root key write it waits for.
        self._signing: dict[int, SignIdentities] = {}

    def _id(self) -> int:
        self._next += 1
        return self._next

    def receive(self, message: Any) -> Any:
        if isinstance(message, GetClientAllocs):
            self.stats["queries"] += 1
            wait = min(message.wait_s, self.cfg.max_wait_s)
            if len(self._parked) >= self.cfg.max_parked:
                wait = 0.0
            pid = self._id()
            self._parked[pid] = _Parked(message, self.env.now() + wait)
            self._watch(pid, message.min_index, wait)
        elif isinstance(message, GetTemplateData):
            self.stats["template_queries"] += 1
            if len(message.deps) > self.cfg.template_max_deps:
                self.send(message.reply_node, message.reply_actor, TemplateDataResponse(
                    req_id=message.req_id, ok=False,
                    error=f"templates read more than {self.cfg.template_max_deps} variables and services"))
                return None
            wait = min(message.wait_s, self.cfg.max_wait_s)
            if len(self._parked) >= self.cfg.max_parked:
                wait = 0.0
            pid = self._id()
            self._parked[pid] = _Parked(message, self.env.now() + wait)
            query = functools.partial(template_data, node_id=message.node_id, secret_id=message.secret_id,
                                      alloc_id=message.alloc_id, task=message.task, deps=message.deps)
            self.send(self.env.node, self.raft, Watch(
                tables=(var_state.TABLE, svc_state.TABLE), min_index=message.min_index,
                reply=ReplyTo(self.env, self.name, ("watch", pid)), timeout_s=wait, query=query,
                max_stale_s=self.cfg.max_stale_s))
        elif isinstance(message, GetPrevAlloc):
            self.stats["prev_alloc_queries"] += 1
            wait = min(message.wait_s, self.cfg.max_wait_s)
            if len(self._parked) >= self.cfg.max_parked:
                wait = 0.0
            pid = self._id()
            self._parked[pid] = _Parked(message, self.env.now() + wait)
            query = functools.partial(prev_alloc, node_id=message.node_id, secret_id=message.secret_id,
                                      alloc_id=message.alloc_id)
            self.send(self.env.node, self.raft, Watch(
                tables=("allocs",), min_index=message.min_index,
                reply=ReplyTo(self.env, self.name, ("watch", pid)), timeout_s=wait, query=query,
                max_stale_s=self.cfg.max_stale_s))
        elif isinstance(message, SignIdentities):
            self.stats["sign_queries"] += 1
            if len(self._signing) >= self.cfg.max_parked:  # bounded as the parked queries: the client retries
                self.send(message.reply_node, message.reply_actor, SignIdentitiesResponse(
                    req_id=message.req_id, ok=False, error="server busy: too many identities being signed"))
                return None
            pid = self._id()
            self._signing[pid] = message
            self._sign(pid)
        elif isinstance(message, UpdateAllocs):
            self.stats["updates"] += 1
            try:
                updates = msgpack.unpackb(message.updates, raw=False)
                if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
                    raise ValueError("updates must be a list of maps")
            except (ValueError, msgpack.UnpackException) as exc:
                self._write_reply(message.reply_node, message.reply_actor, message.req_id,
                                  f"bad updates: {exc}")
                return None
            if self._batch and self._batch_bytes + len(message.updates) > self.cfg.update_batch_max_bytes:
                self._write_batch()  # this report would take the entry past its size: the rest go first
            self._batch.append((message, updates))
            self._batch_allocs += len(updates)
            self._batch_bytes += len(message.updates)
            if self.cfg.update_batch_s <= 0 or self._batch_allocs >= self.cfg.update_batch_max_allocs \
                    or self._batch_bytes >= self.cfg.update_batch_max_bytes:
                self._write_batch()
            elif not self.timer_armed("batch"):
                self.set_timer("batch", self.cfg.update_batch_s)
        elif isinstance(message, UpdateDrain):
            self.stats["drains"] += 1
            spec = {"Deadline": message.deadline_ns, "IgnoreSystemJobs": message.ignore_system} \
                if message.enable else None
            self._propose(message, command("node_update_drain", node_id=message.node_id, drain_spec=spec,
                                           mark_eligible=message.mark_eligible,
                                           meta={"message": "shutting down"} if message.enable else {},
                                           # Nomad's LastDrain.AccessorID: the client's identity
                                           accessor_id=f"client:{message.node_id}",
                                           now=self._wall(), pool_evals=True))
        elif isinstance(message, RaftReply):
            self._raft_reply(message)
        elif message == "status":
            return {"parked": len(self._parked), "signing": len(self._signing), **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        if name == "batch":
            self._write_batch()

    def _write_batch(self) -> None:
        """Propose the waiting client reports as one write."""
        self.cancel_timer("batch")
        batch, self._batch, self._batch_allocs, self._batch_bytes = self._batch, [], 0, 0
        if not batch:
            return
        self.stats["batches"] += 1
        wid = self._id()
        self._batches[wid] = [(m.reply_node, m.reply_actor, m.req_id) for m, _ in batch]
        # unblock: an allocation that finished frees capacity, so blocked evaluations get another go
        # (Nomad's FSM unblocks on a terminal client update); older log entries lack the flag, as
        # they lack rev (what applying them does: store.REPORT_REV).
        data = command("alloc_client_update_batch", now=self._wall(), unblock=True, rev=REPORT_REV, reports=[
            {"node_id": m.node_id, "secret_id": m.secret_id, "allocs": updates} for m, updates in batch])
        reply = ReplyTo(self.env, self.name, ("batch", wid))
        self.send(self.env.node, self.raft, Propose(data=data, reply=reply))

    def _watch(self, pid: int, min_index: int, timeout_s: float) -> None:
        p = self._parked[pid]
        query = functools.partial(client_allocs, node_id=p.req.node_id, secret_id=p.req.secret_id,
                                  since=min_index)
        # Wakes only when this node's allocations change (the store keeps a
        # per-node index), not on every change to the allocs table.
        index_fn = functools.partial(node_alloc_index, node_id=p.req.node_id)
        self.send(self.env.node, self.raft, Watch(tables=("allocs",), min_index=min_index,
                                                  reply=ReplyTo(self.env, self.name, ("watch", pid)),
                                                  timeout_s=timeout_s, query=query, index_fn=index_fn,
                                                  key=("allocs_node", p.req.node_id),
                                                  max_stale_s=self.cfg.max_stale_s))

    def _propose(self, m: UpdateAllocs | UpdateDrain, data: bytes) -> None:
        wid = self._id()
        self._writes[wid] = (m.reply_node, m.reply_actor, m.req_id)
        reply = ReplyTo(self.env, self.name, ("write", wid))
        self.send(self.env.node, self.raft, Propose(data=data, reply=reply))

    def _batch_reply(self, wid: int, m: RaftReply) -> None:
        dests = self._batches.pop(wid, None)
        if dests is None:
            return
        if not m.ok:  # not written (no leader, a timeout): every client retries its report
            for dest in dests:
                self._write_reply(*dest, error=m.error)
            return
        index, result = m.value
        errors = result.get("errors") if isinstance(result, dict) else None
        if not isinstance(errors, list) or len(errors) != len(dests):
            error = result.get("error", "write refused") if isinstance(result, dict) else "write refused"
            errors = [error] * len(dests)
        for dest, error in zip(dests, errors, strict=True):
            self._write_reply(*dest, error=error if isinstance(error, str) else "write refused", index=index)

    def _write_reply(self, node: str, actor: str, req_id: int, error: str = "", index: int = 0) -> None:
        if error:
            self.stats["errors"] += 1
        self.send(node, actor, WriteResponse(req_id=req_id, ok=not error, error=error, index=index))

    def _sign(self, pid: int) -> None:
        """Read the state for the tasks' signed identities (a linearizable read: the allocation may have
        just been placed); the JWT IDs come from the env's RNG."""
        r = self._signing[pid]
        query = functools.partial(sign_identities, node_id=r.node_id, secret_id=r.secret_id,
                                  alloc_id=r.alloc_id, tasks=r.tasks, now_s=self._wall(),
                                  jtis=tuple(new_jti(self.env.secret_rng) for _ in r.tasks),
                                  identities=r.identities,
                                  named_jtis=tuple(new_jti(self.env.secret_rng) for _ in r.identities))
        reply = ReplyTo(self.env, self.name, ("sign", pid))
        self.send(self.env.node, self.raft, Read(query=query, reply=reply))

    def _sign_reply(self, kind: str, pid: int, m: RaftReply) -> None:
        r = self._signing.get(pid)
        if r is None:
            return
        if m.ok and kind == "sign" and m.value[1][0] == NO_KEY:
            # The servers' first identity: make the keyring's key (kept by the first such write to
            # commit, whichever server proposed it), then read again.
            self.stats["root_keys_made"] += 1
            key = root_keys.new_key(self.env.secret_rng, self._wall())
            self.send(self.env.node, self.raft, Propose(data=command("root_key_create", **key),
                                                        reply=ReplyTo(self.env, self.name, ("rootkey", pid))))
            return
        if m.ok and kind == "rootkey":
            result = m.value[1]
            if isinstance(result, dict) and result.get("ok"):
                self._sign(pid)
                return
            error = result.get("error", "write refused") if isinstance(result, dict) else "write refused"
        else:
            error = m.error if not m.ok else m.value[1][0]
        del self._signing[pid]
        tokens, named = ((), ()) if error else (m.value[1][1], m.value[1][2])
        self.send(r.reply_node, r.reply_actor, SignIdentitiesResponse(
            req_id=r.req_id, ok=not error, error=error, tokens=tokens, named=named))

    def _raft_reply(self, m: RaftReply) -> None:
        kind, key = m.tag
        if kind in ("sign", "rootkey"):
            self._sign_reply(kind, key, m)
            return
        if kind == "batch":
            self._batch_reply(key, m)
            return
        if kind == "write":
            dest = self._writes.pop(key, None)
            if dest is None:
                return
            if not m.ok:
                self._write_reply(*dest, error=m.error)
                return
            index, result = m.value
            error = "" if isinstance(result, dict) and result.get("ok") else \
                (result.get("error", "write refused") if isinstance(result, dict) else "write refused")
            self._write_reply(*dest, error=error, index=index)
            return
        p = self._parked.get(key)
        if p is None:
            return
        r = p.req
        if isinstance(r, GetPrevAlloc):
            del self._parked[key]
            if not m.ok:
                self.send(r.reply_node, r.reply_actor, PrevAllocResponse(req_id=r.req_id, ok=False,
                                                                         error=m.error))
                return
            index, (error, fields) = m.value
            self.send(r.reply_node, r.reply_actor, PrevAllocResponse(
                req_id=r.req_id, ok=not error, error=error, index=index, **fields))
            return
        if isinstance(r, GetTemplateData):
            del self._parked[key]
            if not m.ok:
                failed_tmpl = TemplateDataResponse(req_id=r.req_id, ok=False, error=m.error)
                self.send(r.reply_node, r.reply_actor, failed_tmpl)
                return
            index, (error, data) = m.value
            self.send(r.reply_node, r.reply_actor, TemplateDataResponse(
                req_id=r.req_id, ok=not error, error=error, index=index, data=data))
            return
        if not m.ok:
            del self._parked[key]
            failed = ClientAllocsResponse(req_id=r.req_id, ok=False, error=m.error)
            self.send(r.reply_node, r.reply_actor, failed)
            return
        _, (error, node_index, data, ids) = m.value
        del self._parked[key]
        self.send(r.reply_node, r.reply_actor, ClientAllocsResponse(
            req_id=r.req_id, ok=not error, error=error, index=node_index, allocs=data, ids=ids))
