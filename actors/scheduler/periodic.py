"""PeriodicDispatcher: the leader launches periodic jobs on their cron schedules (Nomad ``nomad/periodic.go``).

On the leader it keeps a blocking query (Watch) on the store's
``periodic_index`` -- it moves only when a periodic job or a launch
changes, so registering other jobs does not wake it: each answer lists the
enabled periodic jobs
with their schedule and last launch, and the dispatcher arms one timer for
the earliest next launch.  When it fires, every job due is launched by
proposing ``periodic_launch`` (the store creates the child
``<job>/periodic-<unix time>`` with an evaluation, or skips it when
``ProhibitOverlap`` finds the previous child still running); the write
wakes the watch, and the next launch is armed.  Nothing happens while no
periodic job exists.

Launch times follow the wall clock (``wall_clock``: ``time.time`` in the
agent).  As Nomad's restorePeriodicDispatcher, a new leader's first plan
launches a job whose next launch passed while no leader ran once, now (its
child names the time it is made), and schedules it from then on: missed
launches are not caught up one by one.  While a leader runs, a launch made
late (a slow timer) is still named for the time it was due, and the next is
counted from that time, as Nomad's dispatch does.  A job's first launch is
the first time after it was registered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.raft.peer import InfoQuery, Propose, Watch
from actors.scheduler.cron import CronError, next_launch, periodic_specs
from actors.server import RAFT, LeadershipChanged, RaftInfo, RaftReply, ReplyTo
from actors.state.store import command
from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.periodic")

PERIODIC = "periodic-dispatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodicConfig:
    # The watch is re-asked at least this often even when nothing changes
    # (a backstop: every launch and registration wakes it at once).
    watch_timeout_s: float = 300.0
    # A launch is due when its time is at most this far in the future: the
    # timer may fire a little early on a clock that steps.
    slack_s: float = 0.001

    def __post_init__(self) -> None:
        if self.watch_timeout_s <= 0 or self.slack_s < 0:
            raise ValueError("watch_timeout_s must be > 0 and slack_s >= 0")


def periodic_index(state: Any) -> int:
    """The watch's index: it moves only when a periodic job or a launch changes, not with every job."""
    return int(state.periodic_index)


def periodic_view(state: Any) -> list[tuple[str, tuple[str, ...], str, float]]:
    """Watch query: (job ID, cron specs, time zone, launch after) for every enabled periodic job."""
    out = []
    launches = state.tables["periodic_launch"]
    jobs = state.tables["jobs"]
    for job_id in sorted(state.periodic_ids):
        job = jobs.get(job_id)
        p = job.get("Periodic") if job is not None else None
        if not p or job.get("Stop") or not p.get("Enabled", True):
            continue
        after = max(float(launches.get(job_id, {}).get("Launch", 0.0)), float(job.get("SubmitTime", 0.0)))
        out.append((job_id, tuple(periodic_specs(p)), p.get("TimeZone", "UTC"), after))
    return out


class PeriodicDispatcher(NodeActor):
    def __init__(self, env: Env, name: str, *, config: PeriodicConfig | None = None, raft: str = RAFT,
                 wall_clock: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or PeriodicConfig()
        self.raft = raft
        self._wall = wall_clock or env.now
        self.is_leader = False
        self._gen = 0
        self._index = 0
        self._restoring = False  # the first plan since this server became leader
        self.next: dict[str, float] = {}  # job ID -> its next launch (wall clock)
        self.missed: dict[str, float] = {}  # job ID -> the launch a new leader found missed (its due time)
        self.stats = {"launches": 0, "watches": 0, "bad_specs": 0, "late_launches": 0}

    def on_start(self) -> None:
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))

    def receive(self, message: Any) -> Any:
        if isinstance(message, (LeadershipChanged, RaftInfo)):
            if message.is_leader != self.is_leader:
                self.is_leader = message.is_leader
                self._gen += 1
                self.next = {}
                self.cancel_timer("launch")
                if self.is_leader:
                    self._index = 0
                    self._restoring = True
                    self._watch()
        elif isinstance(message, RaftReply):
            kind, gen = message.tag
            if gen != self._gen or not self.is_leader:
                return None
            if kind == "watch":
                if message.ok:
                    index, view = message.value
                    self._index = index
                    self._plan(view or [], restoring=self._restoring)
                    self._restoring = False
                    self._watch()
                else:
                    self.set_timer("rewatch", 1.0)  # e.g. leadership moving: ask again shortly
            elif kind == "launch" and not message.ok:
                log.warning("%s: periodic launch failed: %s", self.env.node, message.error)
        elif message == "status":
            return {"leader": self.is_leader, "next": dict(self.next), **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        if not self.is_leader:
            return
        if name == "rewatch":
            self._watch()
        elif name == "launch":
            self._launch_due()

    def _watch(self) -> None:
        self.stats["watches"] += 1
        self.send(self.env.node, self.raft, Watch(tables=("jobs", "periodic_launch"), min_index=self._index,
                                                  reply=ReplyTo(self.env, self.name, ("watch", self._gen)),
                                                  timeout_s=self.cfg.watch_timeout_s, query=periodic_view,
                                                  index_fn=periodic_index))

    def _plan(self, view: list[tuple[str, tuple[str, ...], str, float]], *, restoring: bool = False) -> None:
        self.next, self.missed = {}, {}
        now = self._wall()
        for job_id, specs, zone, after in view:
            try:  # the earliest of its crons
                at = next_launch({"Specs": list(specs), "TimeZone": zone}, after)
            except CronError as e:  # validated at registration; a zone database change could still do it
                self.stats["bad_specs"] += 1
                log.error("%s: periodic job %s: %s", self.env.node, job_id, e)
                continue
            if restoring and at < now:
                # Missed while no leader ran: one launch now (recorded as the last, so the next counts
                # from now), not one per missed time.
                self.stats["late_launches"] += 1
                self.missed[job_id] = at
                at = now
            self.next[job_id] = at
        self._arm()

    def _arm(self) -> None:
        if not self.next:
            self.cancel_timer("launch")
            return
        delay = max(0.0, min(self.next.values()) - self._wall())
        self.set_timer("launch", delay)

    def _launch_due(self) -> None:
        now = self._wall()
        for job_id, at in sorted(self.next.items()):
            if at <= now + self.cfg.slack_s:
                self.stats["launches"] += 1
                log.info("%s: launching periodic job %s for %.0f", self.env.node, job_id, at)
                # A missed launch carries its due time: the store skips it when a launch at or after that
                # time is already recorded (this leader's view may not yet hold the last leader's writes).
                due = self.missed.pop(job_id, None)
                self.send(self.env.node, self.raft, Propose(
                    data=command("periodic_launch", job_id=job_id, launch=at, now=now,
                                 **({"due": due} if due is not None else {})),
                    reply=ReplyTo(self.env, self.name, ("launch", self._gen))))
                del self.next[job_id]  # the write wakes the watch, which arms the next one
        self._arm()
