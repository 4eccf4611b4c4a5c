"""A simulated cluster that runs jobs: servers schedule, clients run tasks on SimDriver.

Builds on :class:`~sim.client_cluster.ClientCluster` (servers with Raft,
node endpoint, heartbeats, node GC; clients with fingerprinter and node) and
adds, as the agent wires them: on servers the AllocEndpoint, EvalBroker and
NodeDrainer; on clients the AllocRunner over a :class:`SimDriver` (kept
across client crashes, as real processes outlive an agent restart) and
AllocSync.

:class:`JobCheckers` assert, after every slice, that no node is ever
over-committed by the committed state and that no rolling update has more
of its replacements in flight (placed, not yet healthy) than its group's
``max_parallel``, and :meth:`JobCluster.converged`
is the liveness rule the property test checks after a healed phase: every
job's desired count runs exactly once, on live ready nodes, and the
simulated processes match (no lost and no duplicated work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from actors.client.alloc_runner import AllocRunner, AllocRunnerConfig, MemoryAllocDirs, SimAllocStore
from actors.client.alloc_sync import AllocSync, AllocSyncConfig
from actors.client.artifacts import SimArtifactFetcher
from actors.client.checks import CHECK_RUNNER, CheckRunner, SimProber
from actors.client.drivers import SimDriver
from actors.client.fingerprint import Fingerprinter
from actors.client.node import ClientNode
from actors.raft.peer import RaftPeer
from actors.scheduler.broker import BROKER, BrokerConfig, EvalBroker
from actors.scheduler.drainer import DRAINER, DrainerConfig, NodeDrainer
from actors.scheduler import preemption
from actors.scheduler.job import canonical_job
from actors.scheduler.scheduler import STOP_UPDATE, TERMINAL_CLIENT, alloc_cores, live, node_capacity
from actors.server import ENDPOINT, HEARTBEATS, NODE_GC, RAFT
from actors.server.alloc_endpoint import ALLOC_ENDPOINT, AllocEndpoint
from actors.server.heartbeat import HeartbeatMonitor
from actors.server.job_gc import JOB_GC, JobGC, JobGCConfig
from actors.server.node_endpoint import NodeEndpoint
from actors.server.node_gc import NodeGC
from actors.server.var_locks import VAR_LOCKS, VarLockConfig, VarLockReaper
from actors.state.namespaces import job_key_of, key_of
from actors.state.services import TABLE as SERVICES
from actors.state.store import StateStore, command
from sim.client_cluster import CLIENT, FINGERPRINT, ClientCluster, ClusterConfig
from sim.runtime import SimEnv

RUNNER = "alloc-runner"
SYNC = "alloc-sync"
DRIVER = "raw_exec"  # the jobs name raw_exec; in the simulator SimDriver plays it


@dataclass(frozen=True, slots=True, kw_only=True)
class JobClusterConfig:
    base: ClusterConfig = field(default_factory=lambda: ClusterConfig(n_servers=3, n_clients=5))
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    drainer: DrainerConfig = field(default_factory=DrainerConfig)
    runner: AllocRunnerConfig = field(default_factory=AllocRunnerConfig)
    sync: AllocSyncConfig = field(default_factory=lambda: AllocSyncConfig(wait_s=60.0))
    job_gc: JobGCConfig = field(default_factory=JobGCConfig)
    # The leader's variable lock expiry (actors.server.var_locks); off unless a run uses locks, so
    # the seeds of runs without them schedule exactly as before it existed.
    var_locks: VarLockConfig | None = None
    # Committed entries the servers' shared decoding keeps (SharedDecoder): every server applies an
    # entry within a few network delays of the others, so the last few hundred cover them all; a
    # server that lags further (restarted, catching up) decodes its own.  0: each decodes its own.
    shared_decodes: int = 256


class JobCluster(ClientCluster):
    def __init__(self, seed: int, config: JobClusterConfig | None = None) -> None:
        self.jcfg = config or JobClusterConfig()
        # Created before the base class boots anyone; they outlive client crashes.
        n = self.jcfg.base.n_clients
        names = [f"c{i:04d}" for i in range(1, n + 1)]
        # Exits are told to the runner when they happen, through the event queue.
        self.drivers = {c: SimDriver(lambda: self.sched.now, name=DRIVER,
                                     schedule=lambda when, fn: self.sched.at(when, fn)) for c in names}
        self.alloc_stores = {c: SimAllocStore() for c in names}
        self.alloc_dirs = {c: MemoryAllocDirs() for c in names}
        self.overcommits: list[str] = []
        self.rollout_violations: list[str] = []
        self.service_violations: list[str] = []
        self.preemption_violations: list[str] = []
        self._tracked: _Tracked | None = None  # what the checks keep between slices
        self.decoder = SharedDecoder(self.jcfg.shared_decodes) if self.jcfg.shared_decodes else None
        super().__init__(seed, self.jcfg.base)

    # ------------------------------------------------------------ boot
    def _boot_server(self, env: SimEnv) -> None:
        cfg = self.cfg
        locks = (VAR_LOCKS,) if self.jcfg.var_locks is not None else ()
        state = StateStore(decode=self.decoder.decode) if self.decoder is not None else None
        env.spawn(RaftPeer, RAFT, storage=self.disks[env.node], config=self.raft_cfg, bootstrap=self.servers,
                  leadership_subscribers=(ENDPOINT, HEARTBEATS, NODE_GC, JOB_GC, BROKER, DRAINER, *locks),
                  state=state)
        env.spawn(NodeEndpoint, ENDPOINT, servers=self.servers, config=cfg.endpoint)
        env.spawn(HeartbeatMonitor, HEARTBEATS, config=cfg.heartbeat)
        env.spawn(NodeGC, NODE_GC, config=cfg.gc)
        env.spawn(JobGC, JOB_GC, config=self.jcfg.job_gc)
        env.spawn(AllocEndpoint, ALLOC_ENDPOINT)
        env.spawn(EvalBroker, BROKER, config=self.jcfg.broker)
        env.spawn(NodeDrainer, DRAINER, config=self.jcfg.drainer)
        if self.jcfg.var_locks is not None:
            env.spawn(VarLockReaper, VAR_LOCKS, config=self.jcfg.var_locks)

    def _boot_client(self, env: SimEnv) -> None:
        c = env.node
        env.spawn(Fingerprinter, FINGERPRINT, probe=self.hosts[c], config=self.cfg.fingerprint, subscriber=CLIENT)
        env.spawn(AllocRunner, RUNNER, driver_registry={DRIVER: self.drivers[c]}, state=self.alloc_stores[c],
                  alloc_root=f"/sim/{c}/alloc", reporter=SYNC, config=self.jcfg.runner,
                  alloc_dirs=self.alloc_dirs[c], checker=CHECK_RUNNER,
                  fetcher=SimArtifactFetcher(lambda: self.sched.now,
                                             lambda when, fn: self.sched.at(when, fn)))
        env.spawn(CheckRunner, CHECK_RUNNER, runner=RUNNER,
                  prober=SimProber(self.drivers[c], lambda: self.sched.now, lambda when, fn: self.sched.at(when, fn)))
        env.spawn(AllocSync, SYNC, config=self.jcfg.sync, runner=RUNNER)
        env.spawn(ClientNode, CLIENT, config=self.client_cfg, identity=self.identities[c],
                  fingerprinter=FINGERPRINT, on_ack=self.checker.on_ack, listeners=(RUNNER, SYNC),
                  meta_store=self.meta_stores[c])

    # ------------------------------------------------------------ checks
    def check(self) -> None:
        super().check()
        state = self.checker.replica
        t = self._tracked
        if t is None or t.stale(state.tables):
            t = self._tracked = _Tracked(state.tables)
            # (and each allocation a registration names, there or not)
            allocs, nodes, regs = set(state.tables["allocs"]) | set(t.regs_of), set(state.tables["nodes"]), \
                set()
        else:
            allocs, nodes, regs = t.take()
        # Judged from the tables themselves (not the store's indexes, which this checks), for what
        # changed since the last check: a rule that held then holds still for what did not.  A
        # violation keeps the run's next check a whole one (it finds the violation again).
        ok = False
        try:
            nodes |= t.update_allocs(allocs)
            self._check_nodes(state.tables, t, sorted(nodes))
            self._check_preemptions(state.tables, allocs)
            self._check_rollouts(state.tables, t)
            self._check_services(state.tables, t, allocs | t.update_regs(regs))
            ok = True
        finally:
            if not ok:
                self._tracked = None

    def _check_nodes(self, tables: dict[str, Any], t: _Tracked, nids: list[str]) -> None:
        """No node over-committed by its live allocations (CPU, memory, disk, NodeMaxAllocs), nor a core
        reserved by two of them (Nomad's AllocsFit "cores")."""
        for nid in nids:
            shared = sorted((c, sorted(ids)) for c, ids in (t.cores.get(nid) or {}).items() if len(ids) > 1)
            if shared:
                msg = f"t={self.sched.now:.1f}: node {nid} core {shared[0][0]} reserved by {shared[0][1]}"
                self.overcommits.append(msg)
                raise AssertionError(msg)
            used = t.usage.get(nid)
            node = tables["nodes"].get(nid)
            if used is None or node is None:
                continue
            cpu, mem, disk, count = used
            cap = node_capacity(node)
            most = node.get("NodeMaxAllocs") or 0
            if cpu > cap[0] or mem > cap[1] or disk > cap[2] or (most and count > most):
                msg = (f"t={self.sched.now:.1f}: node {nid} over-committed: cpu {cpu}/{cap[0]} "
                       f"mem {mem}/{cap[1]} disk {disk}/{cap[2]} allocations {count}/{most or '-'}")
                self.overcommits.append(msg)
                raise AssertionError(msg)

    def _check_preemptions(self, tables: dict[str, Any], alloc_ids: set[str]) -> None:
        """An allocation is evicted only for a placement of another job on its node whose priority is
        at least PRIORITY_DELTA above its own, and that placement names it (Nomad's Preemptor rules)."""
        allocs = tables["allocs"]
        for aid in sorted(alloc_ids):
            a = allocs.get(aid)
            by = a.get("PreemptedByAllocation") if a is not None else None
            if not by:
                continue
            p = allocs.get(by)
            if p is None:
                continue  # collected since (a stopped job's allocations are)
            mine, theirs = preemption.alloc_priority(a), preemption.alloc_priority(p)
            # Evicted, or stopped since by a plan of its own job made before the eviction applied
            # (both terminal, as in Nomad's plan apply); never wanted running again.
            if a.get("DesiredStatus") not in ("evict", "stop"):
                wrong = "not evicted"
            elif p.get("NodeID") != a.get("NodeID"):
                wrong = "by an allocation on another node"
            elif (p.get("JobID"), p.get("Namespace")) == (a.get("JobID"), a.get("Namespace")):
                wrong = "by its own job"
            elif mine is None or theirs is None or theirs - mine < preemption.PRIORITY_DELTA:
                wrong = f"by priority {theirs} over {mine}"
            elif aid not in (p.get("PreemptedAllocations") or ()):
                wrong = "without the placement naming it"
            else:
                wrong = ""
            if wrong:
                msg = (f"t={self.sched.now:.1f}: allocation {aid[:8]} of {a.get('JobID')} preempted {wrong} "
                       f"({by[:8]} of {p.get('JobID')})")
                self.preemption_violations.append(msg)
                raise AssertionError(msg)

    def _check_services(self, tables: dict[str, Any], t: _Tracked, alloc_ids: set[str]) -> None:
        """A group's services are registered exactly while its client runs the allocation (running, or
        pending once it reported task states: a task restarting), a task's exactly while that task runs
        (Nomad's group and task service hooks): every registration is of such an owner, and each such
        owner has all of its services registered."""
        regs = tables[SERVICES]
        allocs = tables["allocs"]
        for aid in sorted(alloc_ids):
            a = allocs.get(aid)
            mine = sorted(t.regs_of.get(aid, ()))
            groups = ((a or {}).get("Job") or {}).get("TaskGroups", ())
            group = next((g for g in groups if g["Name"] == (a or {}).get("TaskGroup")), None) \
                or {"Tasks": []}
            states = (a or {}).get("TaskStates") or {}
            status = (a or {}).get("ClientStatus")
            group_on = a is not None and a.get("DesiredStatus") == "run" and (
                status == "running" or (status == "pending" and bool(states)))
            tasks_on = {task["Name"] for task in group["Tasks"] if group_on and (
                (states.get(task["Name"]) or {}).get("State") == "running"
                or (task["Name"] not in states and status == "running"))}
            prefix = f"_nomad-task-{aid}-"
            for key in mine:
                r = regs[key]
                owner = key[len(prefix):] if key.startswith(prefix) else ""
                ok = (group_on and owner.startswith(f"group-{group.get('Name')}-")) or any(
                    owner.startswith(f"{name}-") for name in tasks_on)
                if not ok:
                    msg = (f"t={self.sched.now:.1f}: service {r['ServiceName']} registered for allocation "
                           f"{r['AllocID'][:8]}, which is {'gone' if a is None else status}"
                           f" (task states {sorted((k, (v or {}).get('State')) for k, v in states.items())})")
                    self.service_violations.append(msg)
                    raise AssertionError(msg)
            if not group_on:
                continue
            want = len(group.get("Services") or ()) + sum(
                len(task.get("Services") or ()) for task in group["Tasks"] if task["Name"] in tasks_on)
            if len(mine) != want:
                msg = (f"t={self.sched.now:.1f}: {status} allocation {a['ID'][:8]} of {a['JobID']} has "
                       f"{len(mine)} service registrations, its group and running tasks offer {want}")
                self.service_violations.append(msg)
                raise AssertionError(msg)

    def _check_rollouts(self, tables: dict[str, Any], t: _Tracked) -> None:
        """A running deployment never has more replacements of updated allocations in flight than
        max_parallel.

        In flight: live, in the deployment, not yet healthy, and replacing an
        allocation stopped for the update (replacements of lost or failed
        ones are not limited, as in Nomad) -- and placed under this deployment
        (created at or after it).  A replacement still in flight when the job
        is registered again with only a count change is updated in place into
        the new deployment; Nomad's computeLimit counts a deployment's own
        unhealthy allocations, which that one was not yet when the new
        deployment started its first update, so both may be in flight at once.
        """
        deps = tables["deployments"]
        active = {d: deps[d] for d in t.active if d in deps and deps[d]["Status"] in ("running", "paused")}
        if not active:
            return
        allocs = tables["allocs"]
        in_flight: dict[tuple[str, str], int] = {}
        for dep in active:
            born = active[dep].get("CreateIndex", 0)
            for aid in t.by_dep.get(dep, ()):
                a = allocs[aid]
                if (not live(a) or (a.get("DeploymentStatus") or {}).get("Healthy")
                        or a.get("CreateIndex", 0) < born):
                    continue
                prev = allocs.get(a.get("PreviousAllocation") or "")
                if prev is not None and prev.get("DesiredDescription") == STOP_UPDATE:
                    key = (dep, a["TaskGroup"])
                    in_flight[key] = in_flight.get(key, 0) + 1
        for (dep, group), n in sorted(in_flight.items()):
            job = tables["jobs"].get(active[dep]["JobID"]) or {}
            strategy = next((g.get("Update") for g in job.get("TaskGroups", ()) if g["Name"] == group),
                            None) or {}
            limit = strategy.get("MaxParallel", 0)
            if job.get("Version") == active[dep]["JobVersion"] and limit and n > limit:
                msg = (f"t={self.sched.now:.1f}: deployment {dep[:8]} of {active[dep]['JobID']}.{group} has {n} "
                       f"replacements in flight, max_parallel {limit}")
                self.rollout_violations.append(msg)
                raise AssertionError(msg)

    # ------------------------------------------------------------ operator actions
    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        _, result = self.propose(command("job_register", job=canonical_job(job), now=self.sched.now))
        assert result["ok"], result
        return result

    def stop_job(self, job_id: str, purge: bool = False) -> dict[str, Any]:
        _, result = self.propose(command("job_deregister", job_id=job_id, purge=purge, now=self.sched.now))
        return result

    def drain(self, client: str, deadline_s: float = 3600.0, *, force: bool = False) -> dict[str, Any]:
        spec = {"Deadline": -1 if force else int(deadline_s * 1e9), "IgnoreSystemJobs": False}
        _, result = self.propose(command("node_update_drain", node_id=self.node_id(client), drain_spec=spec,
                                         mark_eligible=False, now=self.sched.now, pool_evals=True))
        return result

    # ------------------------------------------------------------ views
    def timeline_lanes(self) -> dict[str, tuple[str, int]]:
        """Client lanes for sim.timeline: the node's status as the servers see it (whether or not its
        agent runs: that is :meth:`timeline_agents_down`)."""
        out = {}
        for c in self.clients[:20]:
            st = self.status(c)
            out[c] = ("node-down" if st == "down" else st or "gone", 0)
        return out

    def timeline_agents_down(self) -> list[str]:
        """Client agents that are not running (crashed), for sim.timeline."""
        return [c for c in self.clients[:20] if not self.sched.nodes[c].up]

    def allocs(self, job_id: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.checker.replica.tables["allocs"].values() if job_id is None or a["JobID"] == job_id]

    def client_of(self, node_id: str) -> str | None:
        for c in self.clients:
            if self.node_id(c) == node_id:
                return c
        return None

    def running_tasks(self) -> dict[str, list[tuple[str, str]]]:
        """alloc ID -> (client, task) of each simulated process of it that runs."""
        out: dict[str, list[tuple[str, str]]] = {}
        for c, d in self.drivers.items():
            for p in d.running():
                out.setdefault(p.alloc_id, []).append((c, p.task_name))
        return out

    def converged(self, up: set[str] | None = None) -> list[str]:
        """What is wrong with the steady state (empty: every job runs its count exactly once)."""
        state = self.checker.replica
        problems = []
        procs = self.running_tasks()
        nodes = state.tables["nodes"]
        for job in state.tables["jobs"].values():
            if job.get("Stop"):
                continue
            for g in job["TaskGroups"]:
                want = g["Count"]
                if job["Type"] in ("system", "sysbatch"):  # one per node, not a count
                    continue
                key = job_key_of(job)  # the job in its namespace: the same ID may be in another
                runs = [a for a in state.tables["allocs"].values() if key_of(a) == key
                        and a["TaskGroup"] == g["Name"] and live(a)]
                running = [a for a in runs if a["ClientStatus"] == "running"
                           and nodes.get(a["NodeID"], {}).get("Status") == "ready"]
                names = [a["Name"] for a in runs]
                if len(running) != want or len(runs) != want:
                    problems.append(f"{job['ID']}.{g['Name']}: {len(running)} running / {len(runs)} live, want {want}")
                if len(set(names)) != len(names):
                    problems.append(f"{job['ID']}.{g['Name']}: duplicate names {sorted(names)}")
        wanted = {a["ID"] for a in state.tables["allocs"].values() if live(a)}
        for alloc_id, where in procs.items():
            if alloc_id not in wanted:
                problems.append(f"alloc {alloc_id[:8]} still runs on {where} but is not wanted")
            elif len(where) > len(set(where)) or len({c for c, _ in where}) > 1:
                # An allocation's tasks (a main task and its sidecar) run side by side on its one
                # client; the same task twice, or on two clients, is wrong.
                problems.append(f"alloc {alloc_id[:8]} runs on several clients / a task twice: {where}")
        for alloc_id in wanted:
            a = state.tables["allocs"][alloc_id]
            if a["ClientStatus"] == "running" and alloc_id not in procs:
                problems.append(f"alloc {alloc_id[:8]} reported running but no process runs it")
        client_of = {self.node_id(c): c for c in self.clients}
        for a in state.tables["allocs"].values():
            # One told to stop that its client ended must end on the servers too: a client retries its
            # reports until a server takes them (Nomad's allocSync), whatever a server restart lost.
            client = client_of.get(a["NodeID"])
            if a.get("DesiredStatus") != "run" and a["ClientStatus"] in ("pending", "running") \
                    and a["ID"] not in procs and client is not None and self.sched.nodes[client].up \
                    and nodes.get(a["NodeID"], {}).get("Status") == "ready":
                problems.append(f"alloc {a['ID'][:8]} was stopped and no process runs it, but the servers "
                                f"list it {a['ClientStatus']}")
        return problems


class SharedDecoder:
    """One decoding of each committed entry for every simulated server of a cluster.

    Each server still receives the entry through the real codec (its own
    bytes) and applies it to its own state store; only the msgpack decoding
    of the command, the same on every server for the same bytes, is made
    once: five servers applying each write decoded it five times.  Sharing is
    sound because a state store never changes a command it applies, nor the
    parts of it that it keeps in its tables (records are replaced, never
    changed in place): tests/test_jobs_sim.py (test_servers_share_one_decoding_...)
    re-encodes every shared decoding after a run and finds its bytes.

    Keyed by the bytes themselves (equal bytes decode equal): the newest
    *size* entries; *verify* keeps every one ever decoded, for that test.
    """

    __slots__ = ("decoded", "hits", "misses", "size", "verify")

    def __init__(self, size: int, *, verify: bool = False) -> None:
        self.size = size
        self.verify = verify
        self.decoded: dict[bytes, Any] = {}
        self.hits = self.misses = 0

    def decode(self, data: bytes) -> Any:
        if type(data) is not bytes:  # (a bytearray or memoryview is no key: decoded on its own)
            return msgpack.unpackb(data, raw=False)
        cmd = self.decoded.get(data)
        if cmd is not None:
            self.hits += 1
            return cmd
        self.misses += 1
        cmd = self.decoded[data] = msgpack.unpackb(data, raw=False)
        if len(self.decoded) > self.size and not self.verify:
            del self.decoded[next(iter(self.decoded))]
        return cmd

    def changed(self) -> list[bytes]:
        """The entries whose shared decoding no longer encodes to their bytes (something changed it)."""
        return [data for data, cmd in self.decoded.items() if msgpack.packb(cmd, use_bin_type=True) != data]


_WATCHED = ("allocs", "nodes", "deployments", SERVICES)


class _Tracked:
    """What JobCluster's checks keep of the checker's replica between slices, so a check costs what
    changed since the last one instead of a scan of every allocation ever placed (which grows all
    run long: stopped allocations stay until job GC).

    The replica's tables note the keys each write touches (events.Table's journal, which the
    replica, making no events, leaves set between writes); per live allocation its node and
    resources, per node their sums, per deployment its allocations, per allocation its service
    registrations.  New tables (a resync, an operator's restore) make a new one, which starts
    from a whole scan.
    """

    __slots__ = ("active", "by_dep", "contrib", "cores", "dep_of", "journal", "reg_alloc", "regs_of",
                 "tables", "usage")

    def __init__(self, tables: dict[str, Any]) -> None:
        self.tables = [tables[n] for n in _WATCHED]
        self.journal: dict[tuple[str, str], Any] = {}
        for table in self.tables:
            table.journal = self.journal
        self.contrib: dict[str, tuple[str, int, int, int]] = {}  # live alloc -> node, cpu, mem, disk
        self.usage: dict[str, list[int]] = {}  # node -> [cpu, mem, disk, live allocations]
        # node -> core -> the live allocations reserving it (resources.cores; only nodes with any)
        self.cores: dict[str, dict[int, set[str]]] = {}
        self.dep_of: dict[str, str] = {}  # alloc -> its DeploymentID
        self.by_dep: dict[str, set[str]] = {}
        self.active: set[str] = set(tables["deployments"])  # deployments to look at (status read each check)
        self.reg_alloc: dict[str, str] = {}  # service registration -> its AllocID
        self.regs_of: dict[str, set[str]] = {}
        self.update_regs(set(tables[SERVICES]))

    def stale(self, tables: dict[str, Any]) -> bool:
        return any(tables[n] is not t for n, t in zip(_WATCHED, self.tables, strict=True))

    def take(self) -> tuple[set[str], set[str], set[str]]:
        """The allocations, nodes and service registrations written since the last take (the
        deployments written are added to the ones looked at)."""
        allocs, nodes, regs = set(), set(), set()
        by_table = {"allocs": allocs, "nodes": nodes, SERVICES: regs, "deployments": self.active}
        for table, key in self.journal:
            by_table[table].add(key)
        self.journal.clear()
        return allocs, nodes, regs

    def update_allocs(self, ids: set[str]) -> set[str]:
        """Take the allocations *ids* as the table has them now; the nodes whose usage moved."""
        allocs = self.tables[0]
        moved = set()
        for aid in ids:
            a = allocs.get(aid)
            old = self.contrib.pop(aid, None)
            if old is not None:
                u = self.usage[old[0]]
                u[0] -= old[1]
                u[1] -= old[2]
                u[2] -= old[3]
                u[3] -= 1
                moved.add(old[0])
                held = self.cores.get(old[0])
                if held is not None:
                    for core in [c for c, ids in held.items() if aid in ids]:
                        held[core].discard(aid)
                        if not held[core]:
                            del held[core]
            dep = self.dep_of.pop(aid, None)
            if dep is not None:
                self.by_dep[dep].discard(aid)
            if a is None:
                continue
            if a.get("DesiredStatus") == "run" and a.get("ClientStatus") not in TERMINAL_CLIENT:
                nid, r = a["NodeID"], a["Resources"]
                new = self.contrib[aid] = (nid, r["CPU"], r["MemoryMB"], r.get("DiskMB", 0))
                u = self.usage.setdefault(nid, [0, 0, 0, 0])
                u[0] += new[1]
                u[1] += new[2]
                u[2] += new[3]
                u[3] += 1
                moved.add(nid)
                for core in alloc_cores(a):
                    self.cores.setdefault(nid, {}).setdefault(core, set()).add(aid)
            dep = a.get("DeploymentID")
            if dep:
                self.dep_of[aid] = dep
                self.by_dep.setdefault(dep, set()).add(aid)
        for nid in moved:
            if not self.usage[nid][3]:
                del self.usage[nid]
        # Deployments no longer running or paused stay out until written again.
        deps = self.tables[2]
        self.active = {d for d in self.active if d in deps and deps[d]["Status"] in ("running", "paused")}
        return moved

    def update_regs(self, keys: set[str]) -> set[str]:
        """Take the service registrations *keys* as the table has them now; the allocations whose
        registrations changed."""
        regs = self.tables[3]
        touched = set()
        for key in keys:
            old = self.reg_alloc.pop(key, None)
            if old is not None:
                self.regs_of[old].discard(key)
                if not self.regs_of[old]:
                    del self.regs_of[old]
                touched.add(old)
            r = regs.get(key)
            if r is not None:
                self.reg_alloc[key] = r["AllocID"]
                self.regs_of.setdefault(r["AllocID"], set()).add(key)
                touched.add(r["AllocID"])
        return touched


def sim_job(job_id: str = "web", count: int = 4, *, cpu: int = 500, mem: int = 256, job_type: str = "service",
            run_for_s: float | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"command": "/bin/sleep", "args": ["3600"]}
    if run_for_s is not None:
        config["run_for_s"] = run_for_s
    return {"ID": job_id, "Type": job_type, "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": count,
        "Tasks": [{"Name": "t", "Driver": DRIVER, "Config": config, "Resources": {"CPU": cpu, "MemoryMB": mem}}],
        **extra}]}
