"""Service checks (Nomad's native ``provider = "nomad"`` checks): the client runs them.

A ``check`` block of a service (group or task level) is an ``http`` or
``tcp`` probe of the address and port the service offers, every
``interval``, each given ``timeout``.  As in Nomad (``client/allocrunner/
checks_hook.go``, ``client/serviceregistration/checks``):

* the checks of an allocation start when it is set to run -- each first
  runs at once, then ``interval`` after the previous result -- and stop,
  their results gone, when it stops;
* a result is ``success`` (tcp: connected; http: status 200 -- "nomad: http
  ok" -- or another below 400, whose body is the output), ``failure``
  (anything else; the error or the body, up to 3 KiB, is the output) or
  ``pending`` (not run yet);
* a check's mode is ``healthiness`` (``on_update = "require_healthy"``, the
  default) or ``readiness`` (``on_update = "ignore"``): only healthiness
  checks decide a deployment's allocation health (``health_check =
  "checks"``), where every one must pass, and keep passing for
  ``min_healthy_time``;
* a check with ``check_restart`` restarts its task (all the allocation's,
  for a group service's check without ``task``) once it has failed
  ``limit`` times in a row -- ``interval * (limit - 1)`` after its first
  failure -- not counting failures within ``grace`` of the task's start;
  the restart counts against the restart policy, as a failure (the
  AllocRunner decides, on :class:`CheckOutcome`);
* ``GET /v1/client/allocation/<id>/checks`` answers the latest results by
  check ID (``nomad alloc checks``).

The probing is an edge: a *prober* object, ``probe(spec, notify)``, starts
one check and calls ``notify(status, status_code, output)`` once when it
ends -- :class:`runtime.probes.SocketProber` over real sockets,
:class:`SimProber` in the simulator.  :class:`CheckRunner` holds the
schedule and the results and tells the AllocRunner when an allocation's
checks turn healthy or stop being so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from runtime.actor import NodeActor
from runtime.env import Env

log = logging.getLogger("nomad.client.checks")

CHECK_RUNNER = "check-runner"
SUCCESS, FAILURE, PENDING = "success", "failure", "pending"
HEALTHINESS, READINESS = "healthiness", "readiness"
# Nomad's outputSizeLimit: an http check keeps this much of a response body as its output.
OUTPUT_LIMIT = 3 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSpec:
    """One check of one allocation, with the address it probes resolved."""

    id: str
    alloc_id: str
    group: str  # the allocation's name, as Nomad reports it ("job.group[0]")
    task: str  # "" for a group service
    service: str
    name: str
    type: str  # "http" or "tcp"
    address: str
    port: int
    interval_s: float
    timeout_s: float
    mode: str = HEALTHINESS
    protocol: str = "http"
    method: str = "GET"
    path: str = ""
    body: str = ""
    header: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # check_restart: restart the task after this many failures in a row (0: never),
    # not counting those within restart_grace_s of its start.
    restart_limit: int = 0
    restart_grace_s: float = 0.0
    restart_task: str = ""  # the task it restarts: its service's, or its own ``task``; "": every task
    tls_skip_verify: bool = False  # an https check does not verify the server's certificate


def check_id(alloc_id: str, group: str, task: str, service: str, check: dict[str, Any]) -> str:
    """A check's ID: stable for the same check of the same allocation, and apart for two checks that
    differ in anything they probe (Nomad's NomadCheckID hashes the check's fields likewise)."""
    h = hashlib.md5(usedforsecurity=False)
    parts = (alloc_id, group, task, service, *(str(check.get(k, "")) for k in (
        "Name", "Type", "PortLabel", "Path", "Method", "Protocol", "OnUpdate", "AddressMode", "Interval",
        "Timeout")))
    if check.get("TLSSkipVerify"):  # only then: the IDs of checks without it stay as they were
        parts += ("TLSSkipVerify",)
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def alloc_checks(raw: dict[str, Any]) -> tuple[CheckSpec, ...]:
    """The checks of an allocation's services (server record, Nomad's API shape), in a stable order.

    The address is the one the check's port (or else its service's) was
    given on this node; a port given as a number is probed on the
    service's address, or loopback -- the check runs on the task's host.
    """
    job = raw.get("Job") if isinstance(raw.get("Job"), dict) else {}
    group = next((g for g in job.get("TaskGroups") or () if isinstance(g, dict)
                  and g.get("Name") == raw.get("TaskGroup")), None)
    if group is None:
        return ()
    ports = {p.get("Label"): p for p in raw.get("AllocatedPorts") or () if isinstance(p, dict)}
    owners = [("", group.get("Services") or ())]
    owners += [(t.get("Name", ""), t.get("Services") or ()) for t in group.get("Tasks") or ()
               if isinstance(t, dict)]
    out: list[CheckSpec] = []
    seen: set[str] = set()
    alloc_id, alloc_name = str(raw.get("ID", "")), str(raw.get("Name", ""))
    for task, services in owners:
        for svc in services:
            if not isinstance(svc, dict) or svc.get("Provider", "nomad") != "nomad":
                continue
            for c in svc.get("Checks") or ():
                if not isinstance(c, dict):
                    continue
                label = str(c.get("PortLabel") or svc.get("PortLabel") or "")
                address, port = str(svc.get("Address") or "127.0.0.1"), 0
                if label in ports:
                    port = int(ports[label].get("Value", 0))
                    address = str(ports[label].get("HostIP") or address)
                elif label.isascii() and label.isdigit():
                    port = int(label)
                name = str(c.get("Name", ""))
                restart = c.get("CheckRestart") if isinstance(c.get("CheckRestart"), dict) else {}
                cid = check_id(alloc_id, str(raw.get("TaskGroup", "")), task, str(svc.get("Name", "")), c)
                if cid in seen:
                    continue  # the very same check twice: one is run
                seen.add(cid)
                out.append(CheckSpec(
                    id=cid,
                    alloc_id=alloc_id, group=alloc_name, task=task, service=str(svc.get("Name", "")),
                    name=name,
                    type=str(c.get("Type", "")), address=address, port=port,
                    interval_s=int(c.get("Interval", 0)) / 1e9, timeout_s=int(c.get("Timeout", 0)) / 1e9,
                    mode=READINESS if c.get("OnUpdate") == "ignore" else HEALTHINESS,
                    protocol=str(c.get("Protocol") or "http"), method=str(c.get("Method") or "GET"),
                    path=str(c.get("Path", "")), body=str(c.get("Body", "")),
                    header=tuple(sorted((str(k), tuple(str(v) for v in vs))
                                        for k, vs in (c.get("Header") or {}).items())),
                    restart_limit=int(restart.get("Limit", 0)),
                    restart_task=task or str(c.get("TaskName") or ""),
                    restart_grace_s=int(restart.get("Grace", 0)) / 1e9,
                    tls_skip_verify=c.get("TLSSkipVerify") is True))
    return tuple(out)


# ------------------------------------------------------------ messages (local only)
@dataclass(frozen=True, slots=True)
class WatchChecks:
    """AllocRunner -> CheckRunner: run these checks of the allocation (replacing any it ran before)."""

    alloc_id: str
    checks: tuple[CheckSpec, ...]
    reply_to: str  # told ChecksHealth


@dataclass(frozen=True, slots=True)
class UnwatchChecks:
    """AllocRunner -> CheckRunner: the allocation stopped; stop its checks and forget their results."""

    alloc_id: str


@dataclass(frozen=True, slots=True)
class ChecksHealth:
    """CheckRunner -> AllocRunner: whether every healthiness check of the allocation passes now."""

    alloc_id: str
    healthy: bool


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """CheckRunner -> AllocRunner: a run of a check with ``check_restart`` ended (passed or not)."""

    alloc_id: str
    check_id: str
    ok: bool


@dataclass(frozen=True, slots=True)
class ProbeDone:
    """A prober -> CheckRunner: one run of a check ended."""

    check_id: str
    run: int
    status: str
    status_code: int
    output: str


@dataclass(frozen=True, slots=True)
class CheckRunnerStarted:
    """CheckRunner -> AllocRunner: it (re)started with no watches; tell it every allocation's checks."""

    name: str


@dataclass(frozen=True, slots=True)
class GetChecks:
    """Query (ask, from the HTTP edge): the allocation's latest results by check ID, in Nomad's shape."""

    alloc_id: str


@dataclass(slots=True)
class _Check:
    spec: CheckSpec
    result: dict[str, Any]
    run: int = 0
    in_flight: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRunnerConfig:
    # A probe must answer within its timeout; one whose prober has not
    # answered this long after its timeout is counted a failure, and the
    # check goes on (a backstop: probers enforce the timeout themselves).
    probe_grace_s: float = 1.0

    def __post_init__(self) -> None:
        if self.probe_grace_s <= 0:
            raise ValueError("probe_grace_s must be > 0")


def result_stub(spec: CheckSpec, status: str, timestamp: float, status_code: int = 0,
                output: str = "") -> dict[str, Any]:
    """A check's result in Nomad's CheckQueryResult shape (Timestamp: unix seconds)."""
    out: dict[str, Any] = {"ID": spec.id, "Mode": spec.mode, "Status": status, "Output": output,
                           "Timestamp": int(timestamp), "Group": spec.group, "Task": spec.task,
                           "Service": spec.service, "Check": spec.name}
    if status_code:
        out["StatusCode"] = status_code
    return out


class CheckRunner(NodeActor):
    """Runs the service checks of this client's allocations; see the module doc."""

    def __init__(self, env: Env, name: str, *, prober: Any, config: CheckRunnerConfig | None = None,
                 wall_clock: Callable[[], float] | None = None, runner: str = "") -> None:
        super().__init__(env, name)
        self.prober = prober
        self.cfg = config or CheckRunnerConfig()
        self._wall = wall_clock or env.now
        self.checks: dict[str, _Check] = {}  # check ID -> its state
        self.by_alloc: dict[str, tuple[str, ...]] = {}  # alloc ID -> its check IDs
        self.reply_to: dict[str, str] = {}
        self.healthy: dict[str, bool] = {}  # alloc ID -> as last told
        self._runs = 0  # every probe's number: a late answer of a replaced check's probe is never taken
        self.runner = runner
        self.stats = {"probes": 0, "failures": 0, "timeouts": 0}

    def on_start(self) -> None:
        # A runner started anew (the supervisor restarted it) holds no watch: the AllocRunner
        # tells it again what to run.  At the agent's start the AllocRunner is not up yet,
        # and tells it anyway.
        if self.runner:
            self.send(self.env.node, self.runner, CheckRunnerStarted(self.name))

    def receive(self, message: Any) -> Any:
        if isinstance(message, ProbeDone):
            self._done(message)
        elif isinstance(message, WatchChecks):
            self._watch(message)
        elif isinstance(message, UnwatchChecks):
            self._unwatch(message.alloc_id)
        elif isinstance(message, GetChecks):
            return {cid: dict(self.checks[cid].result) for cid in self.by_alloc.get(message.alloc_id, ())}
        elif message == "status":
            return {"allocs": len(self.by_alloc), "checks": len(self.checks), **self.stats}
        return None

    def on_timer(self, name: str) -> None:
        kind, _, cid = name.partition("/")
        c = self.checks.get(cid)
        if c is None:
            return
        if kind == "run":
            self._probe(c)
        elif kind == "deadline" and c.in_flight:
            self.stats["timeouts"] += 1
            self._record(c, FAILURE, 0, f"nomad: check timed out after {c.spec.timeout_s:g}s")

    # ------------------------------------------------------------ watching
    def _watch(self, m: WatchChecks) -> None:
        wanted = {s.id: s for s in m.checks}
        for cid in self.by_alloc.get(m.alloc_id, ()):
            c = self.checks.get(cid)
            if c is not None and wanted.get(cid) != c.spec:
                self._drop(cid)  # gone, or changed: a changed one starts over
        now = self._wall()
        for spec in m.checks:
            if spec.id not in self.checks:
                self.checks[spec.id] = _Check(spec, result_stub(spec, PENDING, now))
                self.set_timer(f"run/{spec.id}", 0.0)  # Nomad runs a new check at once
        self.by_alloc[m.alloc_id] = tuple(s.id for s in m.checks)
        self.reply_to[m.alloc_id] = m.reply_to
        self._tell_health(m.alloc_id, force=True)

    def _unwatch(self, alloc_id: str) -> None:
        for cid in self.by_alloc.pop(alloc_id, ()):
            self._drop(cid)
        self.reply_to.pop(alloc_id, None)
        self.healthy.pop(alloc_id, None)

    def _drop(self, cid: str) -> None:
        if self.checks.pop(cid, None) is not None:
            self.cancel_timer(f"run/{cid}")
            self.cancel_timer(f"deadline/{cid}")

    # ------------------------------------------------------------ probing
    def _probe(self, c: _Check) -> None:
        self._runs += 1
        c.run = self._runs
        c.in_flight = True
        self.stats["probes"] += 1
        done = ProbeDone  # bound here: the prober calls back from wherever the probe ends
        ref, cid, run = self.actor_ref, c.spec.id, c.run

        def notify(status: str, status_code: int, output: str) -> None:
            try:
                ref.tell(done(cid, run, status, status_code, output[:OUTPUT_LIMIT]))
            except pykka.ActorDeadError:
                pass  # the client is stopping

        self.set_timer(f"deadline/{cid}", c.spec.timeout_s + self.cfg.probe_grace_s)
        try:
            self.prober.probe(c.spec, notify)
        except Exception as exc:  # a prober that cannot even start is a failed check, not a dead actor
            self._record(c, FAILURE, 0, f"nomad: {exc}")

    def _done(self, m: ProbeDone) -> None:
        c = self.checks.get(m.check_id)
        if c is None or m.run != c.run or not c.in_flight:
            return  # a run given up on (timed out), or of a check since dropped
        self._record(c, m.status, m.status_code, m.output)

    def _record(self, c: _Check, status: str, status_code: int, output: str) -> None:
        c.in_flight = False
        self.cancel_timer(f"deadline/{c.spec.id}")
        if status != SUCCESS:
            self.stats["failures"] += 1
            if c.result["Status"] != FAILURE:
                log.info("%s: check %r of service %r (allocation %s) failed: %s", self.env.node, c.spec.name,
                         c.spec.service, c.spec.alloc_id[:8], output)
        c.result = result_stub(c.spec, status, self._wall(), status_code, output)
        self.set_timer(f"run/{c.spec.id}", c.spec.interval_s)
        self._tell_health(c.spec.alloc_id)
        reply = self.reply_to.get(c.spec.alloc_id)
        if c.spec.restart_limit > 0 and reply:
            self.send(self.env.node, reply, CheckOutcome(c.spec.alloc_id, c.spec.id, status == SUCCESS))

    def _tell_health(self, alloc_id: str, force: bool = False) -> None:
        ids = self.by_alloc.get(alloc_id, ())
        healthy = all(self.checks[cid].result["Status"] == SUCCESS for cid in ids
                      if cid in self.checks and self.checks[cid].spec.mode == HEALTHINESS)
        if force or self.healthy.get(alloc_id) != healthy:
            self.healthy[alloc_id] = healthy
            reply = self.reply_to.get(alloc_id)
            if reply:
                self.send(self.env.node, reply, ChecksHealth(alloc_id, healthy))


# ------------------------------------------------------------ the simulator's prober
class SimProber:
    """Checks in the simulator: a check passes while a live process of its allocation serves it.

    The process is the check's task's (any of the allocation's, for a group
    service), found on the client's :class:`~actors.client.drivers.SimDriver`.
    Its task config says how it answers (everything optional):

    * ``check_ready_after_s`` -- refuses connections until it has run this long;
    * ``check_status`` -- the HTTP status an http check gets (default 200);
    * ``check_fail`` -- every check of it fails (a service that is up but broken);
    * ``check_fail_after_s`` -- ... once it has run this long (a service that goes bad).

    The result is told through the simulator's event queue *latency_s* later.
    """

    def __init__(self, driver: Any, clock: Callable[[], float],
                 schedule: Callable[[float, Callable[[], None]], None], latency_s: float = 0.001) -> None:
        self.driver = driver
        self.clock = clock
        self.schedule = schedule
        self.latency_s = latency_s

    def probe(self, spec: CheckSpec, notify: Callable[[str, int, str], None]) -> None:
        now = self.clock()
        proc = None
        for p in self.driver.running():
            if p.alloc_id == spec.alloc_id and (not spec.task or p.task_name == spec.task):
                proc = p
                break
        refused = (FAILURE, 0, f"dial tcp {spec.address}:{spec.port}: connect: connection refused")
        if proc is None or now - proc.started_at < float(proc.config.get("check_ready_after_s", 0)):
            result = refused
        elif proc.config.get("check_fail") or ("check_fail_after_s" in proc.config
                                                and now - proc.started_at
                                                >= float(proc.config["check_fail_after_s"])):
            result = (FAILURE, 0 if spec.type == "tcp" else 500,
                      "simulated check failure" if spec.type == "http" else refused[2])
        elif spec.type == "tcp":
            result = (SUCCESS, 0, "nomad: tcp ok")
        else:
            code = int(proc.config.get("check_status", 200))
            output = "nomad: http ok" if code == 200 else f"HTTP {code}"
            result = (SUCCESS if code < 400 else FAILURE, code, output)
        self.schedule(now + self.latency_s, lambda: notify(*result))
