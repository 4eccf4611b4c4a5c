"""JobGC: Nomad's eval-gc and job-gc core jobs on the leader.

Every ``eval_gc_interval_s`` (Nomad: fixed 5 min) the leader scans for
terminal evaluations and allocations older than ``eval_gc_threshold`` (1 h;
batch 24 h), and every ``job_gc_interval`` (5 min) for dead jobs older than
``job_gc_threshold`` (4 h); the rules are :mod:`actors.state.core_gc`'s.
Each scan is a linearizable read; what it finds is removed by ``core_gc``
commands of at most ``MAX_IDS_PER_WRITE`` IDs, which re-check the rules
when they apply.

Every ``token_interval_s`` (Nomad: fixed 5 min) it also deletes expired ACL
tokens created longer than ``server.acl_token_gc_threshold`` (1 h) ago
(Nomad's ``expiredACLTokenGC``; :func:`~actors.state.acl_ops.expired_token_candidates`),
at most 4096 a pass, with ``acl_token_gc`` commands that re-check expiry.

A forced GC (``/v1/system/gc``, :class:`~actors.server.node_gc.ForceGC`)
runs all three with a 1 ms threshold and then hands the request to NodeGC, so
node GC runs last, as Nomad's ``force-gc`` does: a node whose allocations
were just collected can go in the same call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from actors.server import NODE_GC, RAFT, RaftReply, log
from actors.server.node_gc import ForceGC, LeaderGC
from actors.state import deployments
from actors.state.acl_ops import expired_token_candidates
from actors.state.core_gc import MAX_IDS_PER_WRITE, gc_scan
from actors.state.store import command
from runtime.config import ServerConfig
from runtime.env import Env

JOB_GC = "job-gc"  # JobGC's actor name on every server


@dataclass(frozen=True, slots=True, kw_only=True)
class JobGCConfig:
    # Nomad runs eval-gc every 5 min (no config key): terminal evaluations
    # leave the state within minutes of their threshold; the scan is cheap.
    eval_interval_s: float = 300.0
    # server.eval_gc_threshold: an hour keeps recent scheduling decisions
    # visible to `nomad eval status` and `job status`.
    eval_threshold_s: float = 3600.0
    # server.batch_eval_gc_threshold: a batch job's evaluations a day, so its
    # finished runs can still be inspected the next morning.
    batch_eval_threshold_s: float = 24 * 3600.0
    # server.job_gc_interval / job_gc_threshold: a stopped or finished job
    # stays listed four hours, then goes with its evaluations and allocations.
    job_interval_s: float = 300.0
    job_threshold_s: float = 4 * 3600.0
    # server.deployment_gc_threshold: an ended deployment stays an hour (with
    # eval-gc, as Nomad's deployment-gc runs every 5 min), long enough for an
    # operator to read how a rollout went.
    deployment_threshold_s: float = 3600.0
    # A forced collection (/v1/system/gc) uses Nomad's 1 ms threshold.
    force_threshold_s: float = 0.001
    batch_size: int = MAX_IDS_PER_WRITE  # IDs per Raft write (Nomad maxIdsPerReap)
    # How often the leader looks for running deployments past their progress
    # deadline (Nomad's deployment watcher holds a timer per deployment): a
    # deadline is minutes long (progress_deadline, 10 min by default); each look
    # (one read) also finds the next deadline and, when it is nearer than this,
    # looks again at it, so a deployment fails at its deadline.
    deployment_interval_s: float = 5.0
    # A deadline sooner than the interval gets its own look, at it; this floor
    # keeps a deadline the wall clock has not quite reached from spinning.
    deployment_min_wait_s: float = 0.01
    # Nomad's ACLTokenExpirationGCInterval (5 min, no config key): an expired
    # token is refused at once; collecting it only tidies the token list.
    token_interval_s: float = 300.0
    # server.acl_token_gc_threshold: an expired token created within the last
    # hour is kept, so `acl token list` shows it as expired for a while.
    token_threshold_s: float = 3600.0
    # acl.enabled: Nomad's expiredACLTokenGC does nothing when ACLs are off,
    # so neither the timer nor a forced GC looks at tokens then.
    acl_enabled: bool = False
    # Whether this region is the authoritative one (server.authoritative_region unset or this
    # region): only there are expired global tokens collected (Nomad's CoreJobGlobalTokenExpiredGC
    # runs only there); elsewhere they are replicated, and their deletion arrives by replication.
    authoritative: bool = True

    def __post_init__(self) -> None:
        for name in ("eval_interval_s", "eval_threshold_s", "batch_eval_threshold_s", "job_interval_s",
                     "job_threshold_s", "force_threshold_s", "deployment_interval_s",
                     "deployment_min_wait_s",
                     "deployment_threshold_s", "token_interval_s", "token_threshold_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    @classmethod
    def from_server(cls, server: ServerConfig, *, acl_enabled: bool = False, region: str = "") -> JobGCConfig:
        return cls(eval_threshold_s=server.eval_gc_threshold_s,
                   batch_eval_threshold_s=server.batch_eval_gc_threshold_s,
                   job_interval_s=server.job_gc_interval_s, job_threshold_s=server.job_gc_threshold_s,
                   deployment_threshold_s=server.deployment_gc_threshold_s,
                   token_threshold_s=server.acl_token_gc_threshold_s, acl_enabled=acl_enabled,
                   authoritative=server.authoritative_region in ("", region))


@dataclass(slots=True)
class _Run:
    cutoffs: dict[str, float]
    forced: bool
    reply: Any
    pending: int = 0
    removed: dict[str, list[str]] = field(default_factory=lambda: {"jobs": [], "evals": [], "allocs": [],
                                                                   "deployments": [], "acl_tokens": []})
    deployments: bool = False  # a progress-deadline check, not a collection
    token_gc: tuple[float, float] | None = None  # (now, cutoff) when expired ACL tokens are collected too


def _scan_with_tokens(state: Any, *, scan: Any, now: float, cutoff: float,
                      global_tokens: bool = True) -> dict[str, list[str]]:
    """The core GC scan plus the expired ACL tokens (a read query, inside Raft)."""
    return {**scan(state), "acl_tokens": expired_token_candidates(state, now, cutoff,
                                                                  global_tokens=global_tokens)}


class JobGC(LeaderGC):
    """Periodic eval-gc and job-gc on the leader, proposing ``core_gc`` through Raft."""

    def __init__(self, env: Env, name: str, *, config: JobGCConfig | None = None, raft: str = RAFT,
                 node_gc: str = NODE_GC, wall_clock: Any = None) -> None:
        self.cfg = config or JobGCConfig()
        super().__init__(env, name, raft=raft, wall_clock=wall_clock,
                         timers={"eval_gc": self.cfg.eval_interval_s, "job_gc": self.cfg.job_interval_s,
                                 "deployments": self.cfg.deployment_interval_s,
                                 **({"token_gc": self.cfg.token_interval_s} if self.cfg.acl_enabled else {})})
        self.node_gc = node_gc
        # totals (status, tests)
        self.removed = {"jobs": 0, "evals": 0, "allocs": 0, "deployments": 0, "acl_tokens": 0}
        self.deployments_failed = 0  # past their progress deadline (status, tests)

    def _force(self, reply: Any) -> None:
        t = self.cfg.force_threshold_s
        self._scan(t, t, t, jobs=True, evals=True, forced=True, reply=reply, deployment_threshold_s=t,
                   token_threshold_s=t if self.cfg.acl_enabled else None)

    def _status(self) -> dict[str, Any]:
        return {**self.removed, "deployments_failed": self.deployments_failed}

    def on_timer(self, name: str) -> None:
        if not self.is_leader:
            return
        c = self.cfg
        if name == "eval_gc":
            self._scan(c.eval_threshold_s, c.batch_eval_threshold_s, c.job_threshold_s,
                       jobs=False, evals=True, deployment_threshold_s=c.deployment_threshold_s)
            self.set_timer("eval_gc", c.eval_interval_s)
        elif name == "job_gc":
            self._scan(c.eval_threshold_s, c.batch_eval_threshold_s, c.job_threshold_s,
                       jobs=True, evals=False)
            self.set_timer("job_gc", c.job_interval_s)
        elif name == "token_gc":
            self._scan(c.eval_threshold_s, c.batch_eval_threshold_s, c.job_threshold_s,
                       jobs=False, evals=False, token_threshold_s=c.token_threshold_s)
            self.set_timer("token_gc", c.token_interval_s)
        elif name == "deployments":
            now = self._wall()
            self._start_run(_Run(cutoffs={"now": now}, forced=False, reply=None, deployments=True),
                            functools.partial(deployments.progress_scan, now=now))
            self.set_timer("deployments", c.deployment_interval_s)

    def _scan(self, threshold_s: float, batch_threshold_s: float, job_threshold_s: float, *, jobs: bool,
              evals: bool, forced: bool = False, reply: Any = None,
              deployment_threshold_s: float | None = None, token_threshold_s: float | None = None) -> None:
        now = self._wall()
        cutoffs = {"cutoff": now - threshold_s, "batch_cutoff": now - batch_threshold_s,
                   "job_cutoff": now - job_threshold_s}
        if deployment_threshold_s is not None:
            cutoffs["deployment_cutoff"] = now - deployment_threshold_s
        query = functools.partial(gc_scan, cutoff=cutoffs["cutoff"], batch_cutoff=cutoffs["batch_cutoff"],
                                  job_cutoff=cutoffs["job_cutoff"], jobs=jobs, evals=evals,
                                  deployment_cutoff=cutoffs.get("deployment_cutoff"))
        token_gc = None
        if token_threshold_s is not None:
            token_gc = (now, now - token_threshold_s)
            query = functools.partial(_scan_with_tokens, scan=query, now=now, cutoff=token_gc[1],
                                      global_tokens=self.cfg.authoritative)
        self._start_run(_Run(cutoffs=cutoffs, forced=forced, reply=reply, token_gc=token_gc), query)

    def _raft_reply(self, m: RaftReply) -> None:
        got = self._run_of(m)
        if got is None:
            return
        kind, seq, run = got
        if run.deployments:
            self._deployment_reply(kind, seq, run, m)
            return
        if kind == "scan":
            found = m.value[1]
            size = self.cfg.batch_size
            for key in ("jobs", "evals", "allocs", "deployments"):  # jobs first: each takes its evaluations
                ids = found.get(key, [])
                for i in range(0, len(ids), size):
                    run.pending += 1
                    self._write(seq, command("core_gc", **{key: ids[i:i + size]}, **run.cutoffs))
            tokens = found.get("acl_tokens", [])
            if tokens and run.token_gc is not None:
                run.pending += 1
                self._write(seq, command("acl_token_gc", accessor_ids=tokens, now=run.token_gc[0],
                                         cutoff=run.token_gc[1]))
        else:
            run.pending -= 1
            result = m.value[1]
            if isinstance(result, dict) and result.get("ok"):
                for key in ("jobs", "evals", "allocs", "deployments", "acl_tokens"):
                    run.removed[key].extend(result.get(key, ()))
        if run.pending == 0:
            self._done(seq, run)

    def _deployment_reply(self, kind: str, seq: int, run: _Run, m: RaftReply) -> None:
        """Fail each running deployment the scan found past its progress deadline (re-checked at apply)."""
        if kind == "scan":
            found = m.value[1]
            ahead = found["next"]
            if ahead is not None and ahead - run.cutoffs["now"] < self.cfg.deployment_interval_s:
                # Look again at the next deadline rather than the interval after it (Nomad fails at it).
                self.set_timer("deployments", max(ahead - run.cutoffs["now"], self.cfg.deployment_min_wait_s))
            for dep_id in found["overdue"]:
                run.pending += 1
                self._write(seq, command("deployment_fail", deployment_id=dep_id, now=run.cutoffs["now"],
                                         reason="progress"))
        else:
            run.pending -= 1
            result = m.value[1]
            if isinstance(result, dict) and result.get("ok") and not result.get("skipped"):
                self.deployments_failed += 1
                log.info("%s: deployment failed: progress deadline passed", self.env.node)
        if run.pending == 0:
            self._runs.pop(seq, None)

    def _done(self, seq: int, run: _Run) -> None:
        self._runs.pop(seq)
        counts = {k: len(v) for k, v in run.removed.items()}
        for k, n in counts.items():
            self.removed[k] += n
        if any(counts[k] for k in ("jobs", "evals", "allocs", "deployments")):
            log.info("%s: core GC removed %d jobs, %d evaluations, %d allocations", self.env.node,
                     counts["jobs"], counts["evals"], counts["allocs"])
        if counts["acl_tokens"]:
            log.info("%s: expired ACL token GC removed %d tokens", self.env.node, counts["acl_tokens"])
        if run.forced:
            # Node GC last (Nomad force-gc): it answers the caller.
            self.send(self.env.node, self.node_gc, ForceGC(reply=run.reply))
