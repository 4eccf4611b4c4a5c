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

from actors.client.alloc_runner import AllocRunner, AllocRunnerConfig, MemoryAllocDirs, MemoryAllocStore
from actors.client.alloc_sync import AllocSync, AllocSyncConfig
from actors.client.artifacts import SimArtifactFetcher
from actors.client.checks import CHECK_RUNNER, CheckRunner, SimProber
from actors.client.drivers import SimDriver
from actors.client.fingerprint import Fingerprinter
from actors.client.node import ClientNode
from actors.raft.peer import RaftPeer
from actors.scheduler.broker import BROKER, BrokerConfig, EvalBroker
from actors.scheduler.drainer import DRAINER, DrainerConfig, NodeDrainer
from actors.scheduler.job import canonical_job
from actors.scheduler.scheduler import STOP_UPDATE, TERMINAL_CLIENT, live, node_capacity
from actors.server import ENDPOINT, HEARTBEATS, NODE_GC, RAFT
from actors.server.alloc_endpoint import ALLOC_ENDPOINT, AllocEndpoint
from actors.server.heartbeat import HeartbeatMonitor
from actors.server.job_gc import JOB_GC, JobGC, JobGCConfig
from actors.server.node_endpoint import NodeEndpoint
from actors.server.node_gc import NodeGC
from actors.server.var_locks import VAR_LOCKS, VarLockConfig, VarLockReaper
from actors.state.services import TABLE as SERVICES
from actors.state.store import command
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


class JobCluster(ClientCluster):
    def __init__(self, seed: int, config: JobClusterConfig | None = None) -> None:
        self.jcfg = config or JobClusterConfig()
        # Created before the base class boots anyone; they outlive client crashes.
        n = self.jcfg.base.n_clients
        names = [f"c{i:04d}" for i in range(1, n + 1)]
        # Exits are told to the runner when they happen, through the event queue.
        self.drivers = {c: SimDriver(lambda: self.sched.now, name=DRIVER,
                                     schedule=lambda when, fn: self.sched.at(when, fn)) for c in names}
        self.alloc_stores = {c: MemoryAllocStore() for c in names}
        self.alloc_dirs = {c: MemoryAllocDirs() for c in names}
        self.overcommits: list[str] = []
        self.rollout_violations: list[str] = []
        self.service_violations: list[str] = []
        super().__init__(seed, self.jcfg.base)

    # ------------------------------------------------------------ boot
    def _boot_server(self, env: SimEnv) -> None:
        cfg = self.cfg
        locks = (VAR_LOCKS,) if self.jcfg.var_locks is not None else ()
        env.spawn(RaftPeer, RAFT, storage=self.disks[env.node], config=self.raft_cfg, bootstrap=self.servers,
                  leadership_subscribers=(ENDPOINT, HEARTBEATS, NODE_GC, JOB_GC, BROKER, DRAINER, *locks))
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
        # Every allocation, every slice, from the table itself (not the store's
        # indexes, which this checks); live() inlined: this loop is most of the
        # checker's cost once a run has placed a few thousand allocations.
        cpu_of: dict[str, int] = {}
        mem_of: dict[str, int] = {}
        disk_of: dict[str, int] = {}
        count_of: dict[str, int] = {}
        terminal = TERMINAL_CLIENT
        for a in state.tables["allocs"].values():
            if a.get("DesiredStatus") == "run" and a.get("ClientStatus") not in terminal:
                nid, r = a["NodeID"], a["Resources"]
                cpu_of[nid] = cpu_of.get(nid, 0) + r["CPU"]
                mem_of[nid] = mem_of.get(nid, 0) + r["MemoryMB"]
                disk_of[nid] = disk_of.get(nid, 0) + r.get("DiskMB", 0)
                count_of[nid] = count_of.get(nid, 0) + 1
        for nid, cpu in cpu_of.items():
            mem, disk = mem_of[nid], disk_of[nid]
            node = state.tables["nodes"].get(nid)
            if node is None:
                continue
            cap = node_capacity(node)
            count, most = count_of[nid], node.get("NodeMaxAllocs") or 0
            if cpu > cap[0] or mem > cap[1] or disk > cap[2] or (most and count > most):
                msg = (f"t={self.sched.now:.1f}: node {nid} over-committed: cpu {cpu}/{cap[0]} "
                       f"mem {mem}/{cap[1]} disk {disk}/{cap[2]} allocations {count}/{most or '-'}")
                self.overcommits.append(msg)
                raise AssertionError(msg)
        self._check_rollouts(state.tables)
        self._check_services(state.tables)

    def _check_services(self, tables: dict[str, Any]) -> None:
        """A service is registered exactly while its allocation runs: every registration is of a
        running allocation, and a running allocation whose group offers services has them."""
        regs = tables[SERVICES]
        allocs = tables["allocs"]
        by_alloc: dict[str, int] = {}
        for r in regs.values():
            a = allocs.get(r["AllocID"])
            if a is None or a.get("DesiredStatus") != "run" or a.get("ClientStatus") != "running":
                msg = (f"t={self.sched.now:.1f}: service {r['ServiceName']} registered for allocation "
                       f"{r['AllocID'][:8]}, which is {'gone' if a is None else a.get('ClientStatus')}")
                self.service_violations.append(msg)
                raise AssertionError(msg)
            by_alloc[r["AllocID"]] = by_alloc.get(r["AllocID"], 0) + 1
        for a in allocs.values():
            if a.get("DesiredStatus") != "run" or a.get("ClientStatus") != "running":
                continue
            groups = (a.get("Job") or {}).get("TaskGroups", ())
            group = next((g for g in groups if g["Name"] == a["TaskGroup"]), None) or {"Tasks": []}
            want = len(group.get("Services") or ()) + sum(len(t.get("Services") or ())
                                                          for t in group["Tasks"])
            if by_alloc.get(a["ID"], 0) != want:
                msg = (f"t={self.sched.now:.1f}: running allocation {a['ID'][:8]} of {a['JobID']} has "
                       f"{by_alloc.get(a['ID'], 0)} service registrations, its group offers {want}")
                self.service_violations.append(msg)
                raise AssertionError(msg)

    def _check_rollouts(self, tables: dict[str, Any]) -> None:
        """A running deployment never has more replacements of updated allocations in flight than
        max_parallel.

        In flight: live, in the deployment, not yet healthy, and replacing an
        allocation stopped for the update (replacements of lost or failed
        ones are not limited, as in Nomad).
        """
        active = {d["ID"]: d for d in tables["deployments"].values() if d["Status"] in ("running", "paused")}
        if not active:
            return
        allocs = tables["allocs"]
        in_flight: dict[tuple[str, str], int] = {}
        for a in allocs.values():
            dep = a.get("DeploymentID")
            if dep not in active or not live(a) or (a.get("DeploymentStatus") or {}).get("Healthy"):
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
                                         mark_eligible=False, now=self.sched.now))
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
                runs = [a for a in state.tables["allocs"].values() if a["JobID"] == job["ID"]
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
        return problems


def sim_job(job_id: str = "web", count: int = 4, *, cpu: int = 500, mem: int = 256, job_type: str = "service",
            run_for_s: float | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"command": "/bin/sleep", "args": ["3600"]}
    if run_for_s is not None:
        config["run_for_s"] = run_for_s
    return {"ID": job_id, "Type": job_type, "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": count,
        "Tasks": [{"Name": "t", "Driver": DRIVER, "Config": config, "Resources": {"CPU": cpu, "MemoryMB": mem}}],
        **extra}]}
