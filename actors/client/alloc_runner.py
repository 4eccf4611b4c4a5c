"""AllocRunner: runs the allocations the servers assign this client node.

Nomad's ``client/allocrunner`` and ``taskrunner`` (NOMAD.md §6.2), as one
actor.  Each step -- a :class:`SetAllocs`, a timer, a query -- works on the
runner's private state and ends with :meth:`AllocRunner._flush`, whose order
is fixed: **persist, then report** (a client that crashes after reporting
must not forget a task it said is running).

* :class:`SetAllocs` is the full set the servers assign this node.  New
  allocations desired ``run`` start every task of their group through the
  driver each task names; ``stop``/``evict`` kill them (``KillSignal``,
  default SIGINT, then SIGKILL after ``KillTimeout``, default 5 s, capped by
  ``max_kill_timeout_s`` as Nomad's client ``max_kill_timeout``); an
  allocation absent from the set is killed and its local state removed,
  without further reports (the servers no longer know it).
* A task with ``Artifacts`` has them fetched into its directory before its
  first start (Nomad's artifact hook, :mod:`actors.client.artifacts`): the
  runner asks its ``fetcher`` and goes on when :class:`ArtifactsFetched`
  arrives; a failed fetch is a failed start to the restart policy, and
  what was fetched is never fetched again.
* A task's ``Templates`` are rendered into the allocation's directory
  before its first start (Nomad's template hook,
  :mod:`actors.client.templates`): the data they read (Nomad variables and
  services) is a ``GetTemplateData`` blocking query to a server
  (:class:`ServerLink` from AllocSync says which, and who this node is); a
  missing variable holds the task with Nomad's "Missing: ..." event; ``env
  = true`` templates add to the task's environment.  While the task lives
  the query is kept; a rendering that changed is written again and its
  ``change_mode`` applies (restart, signal, noop, or script: the driver's
  ``exec_in_task`` runs its change_script inside the task and answers with
  :class:`ScriptRan`), after its ``splay``.
* A task's exit is told by its driver when the driver can watch it
  (:class:`TaskExited`; the simulator's driver does), and otherwise found by
  polling the driver every ``poll_interval_s``.
  The restart policy is Nomad's ``RestartTracker``: at most ``Attempts``
  restarts within ``Interval``, each after ``Delay`` plus up to 25 % jitter;
  beyond that ``fail`` fails the task (and kills its siblings, as Nomad's
  "Sibling Task Failed") and ``delay`` waits for the interval to end.  A
  batch task exiting 0 is done, not restarted; service and system tasks are
  restarted whatever their exit code.
* A task's ``Lifecycle`` orders it around the group's main tasks (Nomad's
  task lifecycle coordinator, :func:`next_stage`): prestart tasks first;
  main tasks once every ephemeral prestart task has exited 0 (a failing one
  follows the restart policy, and the main tasks wait) and every prestart
  sidecar runs; poststart tasks once every main task has started; poststop
  tasks once every other task is dead -- after a stop too.  Sidecars are
  killed once the other tasks are dead ("Main Tasks Dead"); an ephemeral
  prestart or poststart task that succeeded is done, never restarted.
* An allocation replacing one on this node (``PreviousAllocation``)
  starts no task until the previous allocation has ended (its ports and
  resources are free then); if its group's ``ephemeral_disk`` is sticky or
  migrates, the previous ``alloc/data`` and each task's ``local/`` then move
  over (Nomad's prevAllocWatcher and migrator, through the ``alloc_dirs``
  edge).  One on another node, with ``migrate = true``, is waited for
  through the servers (a blocking ``GetPrevAlloc`` query, until it is
  terminal) and its data then pulled from that node's snapshot endpoint by
  the ``migrator`` edge (:mod:`actors.client.disk_migrate`); a failed pull is
  a "Task Setup" event and the tasks start with empty directories, as
  Nomad's soft-failed migration.
* Every change of an allocation's client state is told to the ``reporter``
  actor as one :class:`AllocUpdates` per step.
* Task handles and states are persisted through an :class:`AllocStateStore`;
  on start the runner loads them and re-attaches: a task whose process still
  lives (``driver.recover``) is not started again; a dead one is handled as
  the exit its driver recorded for it (``driver.recorded_exit``: the task's
  launcher, as Nomad's executor, outlives the agent and keeps it), else as
  an exit with an unknown code.
* Finished allocations' directories are garbage-collected by the client's
  GC (disk usage, ``gc_max_allocs``), or at once when asked
  (:class:`CollectAlloc`, :class:`CollectAllAllocs`: Nomad's
  ``/v1/client/allocation/<id>/gc`` and ``/v1/client/gc``); an allocation
  with a task still running is never collected.

Time comes from ``env.now()`` (``StartedAt``, event times... are seconds on
that clock, not wall time) and jitter from ``env.rng``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import msgpack
import pykka

from actors.agent_messages import Destroy, Destroyed
from actors.client.artifacts import (
    DOWNLOADING_MESSAGE,
    EV_DOWNLOAD_FAILED,
    EV_DOWNLOADING,
    ArtifactFetch,
    ArtifactsFetched,
    ArtifactSpec,
    FetchLimits,
    escapes,
    failure_message,
    parse_artifacts,
)
from actors.client.checks import (
    HEALTHINESS,
    CheckOutcome,
    CheckRunnerStarted,
    ChecksHealth,
    UnwatchChecks,
    WatchChecks,
    alloc_checks,
)
from actors.client.disk_migrate import DiskMigrated, SnapshotFetch, check_migrate_token
from actors.client.drivers import (
    CHROOT_TASK_DIRS,
    FS_ISOLATION_CHROOT,
    MOUNT_CONFIGS_NONE,
    Driver,
    DriverError,
    ExitResult,
    LogSettings,
    TaskHandle,
    TaskResources,
    cpuset,
    go_args,
    signal_number,
)
from actors.client.messages import (
    GetPrevAlloc,
    GetTemplateData,
    PrevAllocResponse,
    SignIdentities,
    SignIdentitiesResponse,
    TemplateDataResponse,
    is_retryable,
)
from actors.client.templates import (
    DEFAULT_FUNCTION_DENYLIST,
    EV_TEMPLATE,
    TOO_MANY_DEPS,
    Rendered,
    TemplateSpec,
    dep_name,
    missing_message,
    parse_env,
    parse_templates,
    quiescence,
    render_task,
    resolve_path,
    retry_delay,
)
from actors.scheduler.job import MIGRATE_DEFAULTS, go_duration
from actors.server.alloc_endpoint import ALLOC_ENDPOINT as ALLOC_ENDPOINT_NAME
from actors.workload_identity import (
    TOKEN_ENV,
    TOKEN_FILE,
    TOKEN_FILE_PERMS,
    named_token_file,
    task_identity,
    task_named_identities,
)
from runtime.actor import NodeActor
from runtime.config import format_duration
from runtime.env import Env
from runtime.messages import PeerLost

log = logging.getLogger("nomad.client.alloc")

NS = 1_000_000_000  # Nomad's durations are Go time.Duration: nanoseconds

# Nomad's structs: client statuses, task states, desired statuses.
PENDING, RUNNING, COMPLETE, FAILED, LOST = "pending", "running", "complete", "failed", "lost"
MAX_RUN_EXCEEDED = "allocation exceeded max_run_duration"  # Nomad's AllocTimeoutReasonMaxRunDuration
TASK_PENDING, TASK_RUNNING, TASK_DEAD = "pending", "running", "dead"
DESIRED_RUN, DESIRED_STOP, DESIRED_EVICT = "run", "stop", "evict"
JOB_TYPES = ("service", "batch", "system", "sysbatch")

# Task event types (Nomad's structs.Task* event constants).
EV_RECEIVED = "Received"
EV_STARTED = "Started"
EV_TERMINATED = "Terminated"
EV_RESTARTING = "Restarting"
EV_NOT_RESTARTING = "Not Restarting"
EV_KILLING = "Killing"
EV_KILLED = "Killed"
EV_DRIVER_FAILURE = "Driver Failure"
EV_SIBLING_FAILED = "Sibling Task Failed"
EV_RESTORE_FAILED = "Failed Restoring Task"
RESTORE_FAILED_WAIT = "failed to restore task; will not run until server is contacted"
EV_RESTART_SIGNALED = "Restart Signaled"  # Nomad TaskRestartSignal: an operator's alloc restart
EV_SIGNALING = "Signaling"  # Nomad TaskSignaling: an operator's alloc signal
EV_HOOK_FAILED = "Task hook failed"  # Nomad TaskHookFailed: a prestart hook (here: volumes) failed
EV_SHUTDOWN_DELAY = "Waiting for shutdown delay"  # Nomad TaskWaitingShuttingDownDelay
EV_SKIP_SHUTDOWN_DELAY = "Skipping shutdown delay"  # Nomad TaskSkippingShutdownDelay
EV_LEADER_DEAD = "Leader Task Dead"  # Nomad TaskLeaderDead: the leader ended, so do the others
EV_MAIN_DEAD = "Main Tasks Dead"  # Nomad TaskMainDead: the sidecars are killed once the main tasks are dead
BUILDING_TASK_DIR = "Building Task Directory"  # Nomad's TaskBuildingTaskDir: the task_dir hook's Task Setup
EV_SETUP = "Task Setup"  # Nomad TaskSetup: here, what became of the previous allocation's ephemeral disk
ERR_TASK_NOT_RUNNING = "Task not running"  # Nomad's ErrTaskNotRunning
ALL_TASKS_WHY = "User requested all tasks to restart"  # Nomad's RestartAllocation, its RestartReason
ERR_ALLOC_SHOULD_NOT_RUN = "restart of an alloc that should not run"  # Nomad's restartTasks, terminal
EV_RECONNECTED = "Reconnected"  # Nomad TaskClientReconnected: the servers had it unknown, and it is back
EV_TASK_HOOK_MESSAGE = "Task hook message"  # Nomad's TaskHookMessage
TASK_NOT_RUNNING = "Task not running"  # Nomad's ErrTaskNotRunning: a change_script's task is not running
SCRIPT_KILL_MESSAGE = "Template script failed, task is being killed"  # Nomad's handleScriptError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # alloc IDs become directory and file names


# ------------------------------------------------------------ messages (local, not on the wire)
@dataclass(frozen=True, slots=True, kw_only=True)
class SetAllocs:
    """ClientNode -> AllocRunner: the full set of allocations assigned to this node.

    Each alloc is a dict in Nomad's ``structs.Allocation`` shape, its ``Job``
    included; the runner never mutates them (nor may the sender, afterwards).
    ``index`` is the servers' index of the set: an older set is ignored.
    """

    allocs: tuple[dict[str, Any], ...]
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskEvent:
    type: str
    time: float  # env.now()
    message: str = ""
    exit_code: int | None = None
    signal: int = 0
    # Nomad's TaskEvent.Details (string values): a Terminated event's exit_code, signal, oom_killed.
    details: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, written out (see :meth:`TaskState.to_dict`)."""
        return {"type": self.type, "time": self.time, "message": self.message, "exit_code": self.exit_code,
                "signal": self.signal, "details": tuple([tuple(kv) for kv in self.details])}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskEvent:
        """A persisted event (JSON gives lists where tuples were; events from before details: none)."""
        return cls(**{**d, "details": tuple((str(k), str(v)) for k, v in d.get("details") or ())})


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """Nomad's ``structs.TaskState`` (times on env.now(); 0.0 = never)."""

    state: str  # pending | running | dead
    failed: bool = False
    restarts: int = 0
    last_restart: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    events: tuple[TaskEvent, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``: the same dict, keys in field order, events a tuple of dicts.

        Written out because the runner persists every task's state on every
        change, and asdict's recursion and per-value deepcopy were most of
        that cost.  Fields are primitives (deepcopy returns them as they
        are); tests/test_client_perf_alloc.py checks this against asdict.
        """
        events = self.events
        if type(events) is not tuple:
            return asdict(self)  # not built as annotated: let asdict decide
        return {"state": self.state, "failed": self.failed, "restarts": self.restarts,
                "last_restart": self.last_restart, "started_at": self.started_at, "finished_at": self.finished_at,
                "events": tuple([e.to_dict() for e in events])}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskState:
        events = tuple(TaskEvent.from_dict(e) for e in d.get("events", ()))
        return cls(state=d["state"], failed=bool(d.get("failed")), restarts=int(d.get("restarts", 0)),
                   last_restart=float(d.get("last_restart", 0.0)), started_at=float(d.get("started_at", 0.0)),
                   finished_at=float(d.get("finished_at", 0.0)), events=events)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocUpdate:
    alloc_id: str
    client_status: str  # pending | running | complete | failed (lost is the servers' call)
    client_description: str
    task_states: tuple[tuple[str, TaskState], ...]  # sorted by task name
    # A deployment's allocation: its health once decided (Nomad's
    # AllocDeploymentStatus.Healthy), and when (env.now()); None: not yet, or not tracked.
    deployment_healthy: bool | None = None
    deployment_ts: float = 0.0
    deployment_id: str = ""  # the deployment that health was decided for


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocUpdates:
    """AllocRunner -> reporter: the allocations whose client state changed in one step."""

    updates: tuple[AllocUpdate, ...]


@dataclass(frozen=True, slots=True)
class TaskExited:
    """A driver's watch -> AllocRunner: this run of the task (pid, start time) has exited (local only)."""

    alloc_id: str
    task: str
    pid: int
    start_time: float


@dataclass(frozen=True, slots=True)
class ScriptRan:
    """A driver's exec_in_task -> AllocRunner: a template's change_script ended (local only); *template*
    is its index among the task's templates, *error* "" when the command ran (then *exit_code* counts)."""

    alloc_id: str
    task: str
    template: int
    exit_code: int
    error: str
    pid: int = 0  # the task's run it ran in: a later run is not killed for it


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAllocStats:
    """Query (ask): resource usage of running tasks, {alloc_id: {task: stats}}; "" = all allocs."""

    alloc_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartTasks:
    """Query (ask): restart the allocation's running tasks, or only *task* (Nomad's alloc restart).

    Each is killed and started again at once, without counting against its
    restart policy.  With *all_tasks* (Nomad's RestartAll) every task but the
    poststop ones restarts, those that already ran and ended too, in
    lifecycle order: the prestart tasks first, the main tasks once they are
    done.  Answers "" or an error (unknown allocation or task, task not
    running).  With *reply* (a future of the runtime, the HTTP API's) the
    answer is also set there, and an answer of "" only once every task it
    kills has exited, as Nomad's Restart blocks until the task it kills
    exits (so ``nomad alloc restart`` returns after the old task ended).
    """

    alloc_id: str
    task: str = ""
    all_tasks: bool = False
    reply: Any = None


@dataclass(frozen=True, slots=True)
class ServerLink:
    """AllocSync -> runner: who this node is and its servers, for the templates' data queries (local)."""

    node_id: str
    secret_id: str
    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AllocRunnerStarted:
    """Runner -> AllocSync (local): it (re)started, its allocations restored from the client state but
    its node and servers unknown; AllocSync sends it the ServerLink again."""

    name: str


@dataclass(frozen=True, slots=True)
class AllocSyncStarted:
    """AllocSync -> runner and ClientNode (local): it (re)started empty -- a supervisor's restart loses
    the reports it held and the node it served.  The runner reports every allocation again; the node
    tells it its registration again (NodeRegistered)."""

    name: str


@dataclass(frozen=True, slots=True)
class HeartbeatOk:
    """ClientNode -> runner (local): a heartbeat was acknowledged at *at* (env.now()).  An allocation
    whose group has ``disconnect.stop_on_client_after`` is stopped by the client itself once no
    heartbeat has been acknowledged for that long (Nomad's client heartbeatStop)."""

    at: float


@dataclass(frozen=True, slots=True)
class NodeVars:
    """ClientNode -> runner (local): the node's values a task's config may name, as Nomad's task
    environment builder offers them -- ``node.unique.id``, ``node.unique.name``, ``node.datacenter``,
    ``node.class``, ``node.pool``, ``attr.<name>`` and ``meta.<key>``."""

    values: tuple[tuple[str, str], ...]
    # The node's host volumes (client host_volume blocks): (name, path, read_only), sorted.
    host_volumes: tuple[tuple[str, str, bool], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalTasks:
    """Query (ask): send *signal* to the allocation's running tasks, or only *task*; answers "" or an error."""

    alloc_id: str
    signal: str
    task: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GetTaskState:
    """Query (ask): the task's state (pending, running or dead); "" if this client has no such task."""

    alloc_id: str
    task: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GetExecTarget:
    """Query (ask): what ``alloc exec`` needs to run a command beside *task* -- an :class:`ExecTarget`."""

    alloc_id: str
    task: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecTarget:
    """The answer to GetExecTarget: the task's driver, state, directory, environment and user."""

    found: bool  # this client has the allocation
    namespace: str = ""
    task_known: bool = False  # the allocation has the task
    driver: str = ""
    started: bool = False  # it has started at least once (Nomad: TaskState.StartedAt set)
    running: bool = False  # it runs now
    task_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()  # the environment the task was started with
    user: str = ""
    # A driver that isolates its tasks (exec): JSON of what entering the running task needs
    # (ExecDriver.enter_spec), or of {"error": why} when it cannot be entered; "" otherwise.
    enter: str = ""
    job_id: str = ""  # the allocation's job
    actions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # the task's job actions (TaskSpec.actions)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetAllocNamespace:
    """Query (ask): the allocation's namespace; "" if this client has no such allocation."""

    alloc_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GetSnapshotSource:
    """Query (ask) of the snapshot endpoint: may *token* (a migrate token) take the allocation's ephemeral
    disk (checked against this node's secret when *check_token*: ACLs are enabled), and which tasks'
    ``local/`` go along.  The answer is (HTTP status, error, task names): 200 with the tasks, 403, or
    500 with Nomad's "allocation not found" when this client holds no directory of it."""

    alloc_id: str
    token: str
    check_token: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectAlloc:
    """Query (ask): garbage-collect one finished allocation's directory now (Nomad's alloc GC endpoint).

    Answers "" once collected, ``Unknown allocation "<id>"`` when this client
    has no such allocation, or :data:`NOT_ELIGIBLE_FOR_GC` when it is not
    finished (a task still runs, restarts or is being killed) or was already
    collected -- a running allocation is never collected.
    """

    alloc_id: str


@dataclass(frozen=True, slots=True)
class CollectAllAllocs:
    """Query (ask): garbage-collect every finished allocation's directory now; answers the IDs collected."""


# Nomad's client Allocations.GarbageCollect error for a known allocation it will not collect.
NOT_ELIGIBLE_FOR_GC = "No such allocation on client, or allocation not eligible for GC"


# ------------------------------------------------------------ config
@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    attempts: int
    interval_s: float
    delay_s: float
    mode: str  # "fail" | "delay"
    render_templates: bool = False  # a restart renders the task's templates afresh (fresh data, sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocRunnerConfig:
    # How soon a task's exit is seen.  Nomad waits on the driver instead; a
    # waitpid/psutil look per task per second costs nothing and bounds the
    # latency of restarts and status reports to one interval.
    poll_interval_s: float = 1.0
    # Nomad's task kill_timeout default: time between KillSignal and SIGKILL.
    default_kill_timeout_s: float = 5.0
    # Nomad's client max_kill_timeout (30 s): a job cannot hold a stop longer.
    max_kill_timeout_s: float = 30.0
    # Nomad's default task kill_signal.
    default_kill_signal: str = "SIGINT"
    # Nomad keeps the last 10 events per task (taskrunner maxEvents).
    max_events: int = 10
    # Nomad's restart jitter: Delay + up to 25 % of Delay, so tasks that
    # failed together do not restart in lock-step.
    restart_jitter_fraction: float = 0.25
    # Nomad's defaults when a group has no restart block (structs.DefaultServiceJobRestartPolicy
    # and DefaultBatchJobRestartPolicy); system jobs use the service one.
    service_restart: RestartPolicy = RestartPolicy(attempts=2, interval_s=1800.0, delay_s=15.0, mode="fail")
    batch_restart: RestartPolicy = RestartPolicy(attempts=3, interval_s=86400.0, delay_s=15.0, mode="fail")
    # Bounds one SetAllocs: more allocations than this on one client is an
    # upstream bug; the extras are reported failed rather than run.
    max_allocs: int = 10_000
    # Client-side alloc GC (Nomad's client.gc_*, client/gc.go): finished
    # allocations' directories stay for their logs until the servers remove
    # them, unless the disk needs the room first.  Every gc_interval_s the
    # oldest are removed while the alloc dir's disk or inode usage (percent)
    # is above its threshold; and when new allocations would make the client
    # hold more than gc_max_allocs, the oldest finished ones make room.
    gc_interval_s: float = 60.0
    gc_max_allocs: int = 50
    gc_disk_usage_threshold: float = 80.0
    gc_inode_usage_threshold: float = 70.0
    # Task artifacts (actors.client.artifacts), with the defaults of Nomad's
    # client ``artifact`` block, so a job fetching what it fetches on Nomad
    # fetches it here: one artifact may take artifact_timeout_s to download
    # and unpack (http_read_timeout, 30m) and be at most artifact_max_bytes
    # as downloaded (http_max_size, 100GB) and artifact_max_unpacked_bytes
    # and artifact_max_unpacked_files once unpacked
    # (decompression_size_limit, 100GB; decompression_file_count_limit,
    # 4096) -- a bound on what a wrong URL or a hostile archive (a zip
    # bomb) can put on this disk before it fails.
    artifact_timeout_s: float = 30 * 60.0
    artifact_max_bytes: int = 100 * 1000**3
    artifact_max_unpacked_bytes: int = 100 * 1000**3
    artifact_max_unpacked_files: int = 4096
    # A fetcher enforces the timeout itself; one that has not answered this
    # long after it is given up on, as a failed download (a backstop).
    artifact_fetch_grace_s: float = 10.0
    # The node's host volumes (client host_volume blocks: (name, path, read_only)), known from the
    # start: a task restored after an agent restart may start again before the ClientNode has
    # registered and told the runner its NodeVars (which then replace these).
    host_volumes: tuple[tuple[str, str, bool], ...] = ()
    # Task templates (actors.client.templates): the data they read is a
    # blocking query on a server (GetTemplateData) held this long, as the
    # client's allocation watch (5 min); an answer later than the wait plus
    # template_rpc_margin_s counts as a failed server, and after a failure the
    # query is sent again (to the next server) after a backoff:
    # client.template.nomad_retry (Nomad's 12 attempts, 250ms doubled up to
    # 1m); once the attempts in a row are spent (0: never) the task fails.
    template_wait_s: float = 300.0
    # client.template.wait (Nomad's 5s / 4m): how long a changed template's data must stay unchanged
    # before it is rendered again, and how long at most after the first change, for a template
    # without a wait block of its own (so a burst of changes restarts a task once).
    template_quiet_min_s: float = 5.0
    template_quiet_max_s: float = 240.0
    # client.template.wait_bounds (min, max; 0: none): a job template's own wait is kept within them.
    template_wait_bounds: tuple[float, float] = (0.0, 0.0)
    template_rpc_margin_s: float = 10.0
    template_retry_attempts: int = 12
    template_retry_backoff_s: float = 0.25
    template_retry_max_backoff_s: float = 60.0
    # A file a template reads (its file function) is looked at again this often while the task runs,
    # and a change re-renders the template (consul-template's FileQuerySleepTime, 2 s).
    template_file_poll_s: float = 2.0
    # A task with an identity block (env or file) waits for its signed workload identity before it
    # starts (Nomad's identity hook, Alloc.SignIdentities): a server's answer is waited for this long
    # (a linearizable read, and the cluster's first identity one Raft write more), and a failed
    # request is sent again, to the next server, after identity_retry_s, as long as the task waits.
    identity_rpc_timeout_s: float = 10.0
    identity_retry_s: float = 1.0
    # A named identity with a ttl is signed anew before it expires (Nomad's widmgr): half its remaining
    # lifetime on, plus up to 10% of that (spread), but never sooner than this (Nomad's minWait, 10 s:
    # a short ttl must not turn into a request storm on the servers); a failed renewal is tried again
    # after this doubled per failure, up to identity_renew_max_backoff_s (Nomad's helper.Backoff with
    # its one hour limit).
    identity_renew_min_wait_s: float = 10.0
    identity_renew_max_backoff_s: float = 3600.0
    # ... but a rendering that took long is looked at again at most this many times its time later
    # (a template rendering for 1.9 s of every 2 s would hold the client's allocations): at most ~5%
    # of the runner's time goes to watching files.
    template_file_poll_cost_factor: float = 20.0
    # A template's source file is read whole; one larger than this fails the
    # task rather than the client's memory (a template is a config file).
    template_source_max_bytes: int = 4 * 1024 * 1024
    # What a task's templates together may render (runtime.gotemplate's
    # MAX_OUTPUT_BYTES, 16 MiB): a template that would write more (e.g.
    # {{ "x" | indent 99999999999 }}) fails its task ("Template failed: ...")
    # instead of exhausting the client's memory.
    template_output_max_bytes: int = 16 * 1024 * 1024
    # ephemeral_disk migrate across nodes (actors.client.disk_migrate).  Whether the previous
    # allocation is terminal is a blocking query on a server held this long (as the template
    # queries); an answer later than it plus migrate_rpc_margin_s counts as a failed server, and
    # after a failure it is asked again (of the next server) after migrate_retry_s.  Nomad waits
    # for it without bound: a node that went down has its allocations marked lost by the servers,
    # which ends the wait.
    migrate_wait_s: float = 300.0
    migrate_rpc_margin_s: float = 10.0
    migrate_retry_s: float = 1.0
    # The snapshot pull from the previous node: each connect and read waits at most
    # migrate_io_timeout_s (a node that is down or unreachable fails that fast), and the whole pull
    # at most migrate_timeout_s (a node that trickles it); then the tasks start with empty
    # directories.  Nomad's API client has no such bound; a task held forever would be worse than
    # its data lost.  A migrator that has not answered migrate_fetch_grace_s after that is given up on.
    migrate_io_timeout_s: float = 10.0
    migrate_timeout_s: float = 600.0
    migrate_fetch_grace_s: float = 10.0
    # A snapshot with more entries than this is refused (its size is bounded by the group's
    # ephemeral_disk size): a hostile archive of empty files must not exhaust the inodes.
    migrate_max_entries: int = 100_000
    # client.template.function_denylist (Nomad's default): functions a template may not call.
    template_function_denylist: tuple[str, ...] = DEFAULT_FUNCTION_DENYLIST

    def __post_init__(self) -> None:
        for name in ("poll_interval_s", "max_kill_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not 0 <= self.default_kill_timeout_s <= self.max_kill_timeout_s:
            raise ValueError("need 0 <= default_kill_timeout_s <= max_kill_timeout_s")
        if self.max_events < 1 or self.max_allocs < 1:
            raise ValueError("max_events and max_allocs must be >= 1")
        if self.gc_interval_s <= 0 or self.gc_max_allocs < 0:
            raise ValueError("gc_interval_s must be > 0 and gc_max_allocs >= 0")
        for name in ("gc_disk_usage_threshold", "gc_inode_usage_threshold"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be a percentage within [0, 100]")
        if not 0 <= self.restart_jitter_fraction <= 1:
            raise ValueError("restart_jitter_fraction must be within [0, 1]")
        if min(self.template_wait_s, self.template_rpc_margin_s, self.template_retry_backoff_s) <= 0 \
                or self.template_source_max_bytes < 1 or self.template_output_max_bytes < 1:
            raise ValueError("template_wait_s, template_rpc_margin_s, template_retry_backoff_s, "
                             "template_source_max_bytes and template_output_max_bytes must be > 0")
        if self.identity_rpc_timeout_s <= 0 or self.identity_retry_s <= 0:
            raise ValueError("identity_rpc_timeout_s and identity_retry_s must be > 0")
        if not 0 < self.identity_renew_min_wait_s <= self.identity_renew_max_backoff_s:
            raise ValueError("need 0 < identity_renew_min_wait_s <= identity_renew_max_backoff_s")
        if self.template_file_poll_s <= 0 or self.template_file_poll_cost_factor < 0:
            raise ValueError("template_file_poll_s must be > 0 and template_file_poll_cost_factor >= 0")
        if self.template_retry_attempts < 0 or self.template_retry_max_backoff_s < 0:
            raise ValueError("template_retry_attempts and template_retry_max_backoff_s must be >= 0")
        if min(self.migrate_wait_s, self.migrate_rpc_margin_s, self.migrate_retry_s,
               self.migrate_io_timeout_s, self.migrate_timeout_s, self.migrate_fetch_grace_s) <= 0 \
                or self.migrate_max_entries < 1:
            raise ValueError("the migrate_* durations must be > 0 and migrate_max_entries >= 1")
        if self.artifact_timeout_s <= 0 or self.artifact_fetch_grace_s <= 0:
            raise ValueError("artifact_timeout_s and artifact_fetch_grace_s must be > 0")
        for name in ("artifact_max_bytes", "artifact_max_unpacked_bytes", "artifact_max_unpacked_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for p in (self.service_restart, self.batch_restart):
            if p.attempts < 0 or p.interval_s <= 0 or p.delay_s < 0 or p.mode not in ("fail", "delay"):
                raise ValueError(f"bad default restart policy {p}")


# ------------------------------------------------------------ pure rules
class AllocError(ValueError):
    """The allocation the servers sent is malformed (their fault, not ours)."""


@dataclass(frozen=True, slots=True)
class IdentitySpec:
    """A task's named workload identity (its ``identity { name = ... }`` block)."""

    name: str
    env: bool = False  # its token in NOMAD_TOKEN_<name>
    file: bool = False  # ... and in secrets/nomad_<name>.jwt, or the task directory's <filepath>
    filepath: str = ""
    ttl_s: float = 0.0  # 0: it never expires (and is never renewed)
    change_mode: str = ""  # what a renewed token does to the running task: restart, signal, noop ("")
    change_signal: str = ""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    driver: str
    config: dict[str, Any]
    env: tuple[tuple[str, str], ...]
    cpu: int
    memory_mb: int
    kill_timeout_s: float
    kill_signal: str
    # Its memory_max as the scheduler placed it (AllocatedResources; 0: none, or oversubscription
    # was off): NOMAD_MEMORY_MAX_LIMIT, which a driver with cgroups makes the hard memory limit.
    memory_max_mb: int = 0
    # The whole CPU cores the scheduler reserved for it (resources.cores; TaskCores): NOMAD_CPU_CORES,
    # and its cpu is then their MHz (Nomad's AllocatedTaskResources.Cpu).  Empty: none.
    reserved_cores: tuple[int, ...] = ()
    user: str = ""  # Nomad's task `user`: run the task as this user ("" = the agent's own)
    meta: tuple[tuple[str, str], ...] = ()  # job, group and task meta merged (NOMAD_META_*)
    payload_file: str = ""  # dispatch_payload.file: the job's payload goes to local/<this> ("": none)
    artifacts: tuple[ArtifactSpec, ...] = ()  # fetched before the task first starts
    hook: str = ""  # its lifecycle hook: prestart, poststart or poststop; "" for a main task
    sidecar: bool = False  # a lifecycle task that runs as long as the main tasks, not once
    logs: LogSettings = field(default_factory=LogSettings)  # its logs block (LogConfig): rotation
    # Its volume_mount blocks: (volume, destination, read_only, propagation mode).
    volume_mounts: tuple[tuple[str, str, bool, str], ...] = ()
    templates: tuple[TemplateSpec, ...] = ()  # rendered before it first starts, then kept up to date
    restart: RestartPolicy | None = None  # its own restart block, over the group's; None: the group's
    leader: bool = False  # Nomad's task `leader`: when it ends, the group's other tasks are stopped
    # Its shutdown_delay (s): when it is killed (not restarted), the wait between its services going
    # and its kill signal.
    shutdown_delay_s: float = 0.0
    # Its identity block (actors.workload_identity): its signed identity in NOMAD_TOKEN (env) and in
    # secrets/nomad_token (file).
    identity_env: bool = False
    identity_file: bool = False
    identity_filepath: str = ""  # its default identity's filepath (in the task directory) over nomad_token
    identities: tuple[IdentitySpec, ...] = ()  # its named identities, each signed for it
    # Its job actions (Nomad 1.7 ``action`` blocks): name -> the command and its arguments, which
    # ``nomad job action`` runs in the task as alloc exec runs a command.
    actions: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class AllocSpec:
    alloc_id: str
    job_id: str
    job_type: str
    group: str
    name: str
    namespace: str
    desired: str
    modify_index: int
    restart: RestartPolicy
    tasks: tuple[TaskSpec, ...]
    parent_id: str = ""  # a dispatched job's parameterized parent (NOMAD_JOB_PARENT_ID)
    job_name: str = ""  # the job's Name (NOMAD_JOB_NAME); its ID when the job has none
    # The job's region (NOMAD_REGION).  Nomad's is the client's region, which is the region of the
    # servers that placed the job: the same value.
    region: str = ""
    payload: bytes = b""  # a dispatched job's payload (decoded), for its tasks' dispatch_payload
    # The group's ports as the scheduler allocated them: (label, host port, port the task
    # uses, host IP), for NOMAD_PORT_<label> and its kin.
    ports: tuple[tuple[str, int, int, str], ...] = ()
    # The allocation this one replaces (PreviousAllocation), and the group's ephemeral_disk
    # sticky / migrate: whether its alloc/data and tasks' local/ directories come along.
    previous_alloc: str = ""
    sticky: bool = False
    migrate: bool = False
    disk_mb: int = 300  # ephemeral_disk size (Nomad's default 300 MB): a migrated snapshot is bounded by it
    # The group's host volume requests: (label, type, source, read_only, per_alloc), sorted by label.
    volumes: tuple[tuple[str, str, str, bool, bool], ...] = ()
    # The group's shutdown_delay (s): a stopping allocation waits this long (its services already
    # gone) before its tasks are killed.
    shutdown_delay_s: float = 0.0
    # A batch group's max_run_duration (s; 0: none) and the allocation's CreateTime (the servers'
    # wall clock, s): past that sum its tasks are killed and it is complete.
    max_run_s: float = 0.0
    create_time: float = 0.0


def _get(d: Any, key: str, typ: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if not isinstance(d, dict):
        raise AllocError(f"{where} must be an object")
    v = d.get(key, default)
    if v is ...:
        raise AllocError(f"{where}.{key} is missing")
    if v is None and default is not ...:
        v = default
    ok = isinstance(v, typ) and not (isinstance(v, bool) and typ in (int, (int, float)))
    if not ok:
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise AllocError(f"{where}.{key} must be {name}, got {type(v).__name__}")
    return v


def alloc_id_of(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise AllocError("allocation is not an object")
    aid = raw.get("ID")
    if not isinstance(aid, str) or not _SAFE_ID.match(aid):
        raise AllocError(f"allocation ID {aid!r} missing or not a safe identifier")
    return aid


def parse_restart_policy(raw: Any, default: RestartPolicy, where: str) -> RestartPolicy:
    if raw is None:
        return default
    w = f"{where}.RestartPolicy"
    attempts = _get(raw, "Attempts", int, w, default.attempts)
    interval = _get(raw, "Interval", (int, float), w, default.interval_s * NS) / NS
    delay = _get(raw, "Delay", (int, float), w, default.delay_s * NS) / NS
    mode = _get(raw, "Mode", str, w, default.mode)
    if attempts < 0:
        raise AllocError(f"{w}.Attempts must be >= 0")
    if interval <= 0 or delay < 0:
        raise AllocError(f"{w}: Interval must be > 0 and Delay >= 0 (nanoseconds)")
    if mode not in ("fail", "delay"):
        raise AllocError(f"{w}.Mode must be \"fail\" or \"delay\", got {mode!r}")
    render = _get(raw, "RenderTemplates", bool, w, default.render_templates)
    return RestartPolicy(attempts=attempts, interval_s=interval, delay_s=delay, mode=mode,
                         render_templates=render)


def parse_task(raw: Any, where: str, cfg: AllocRunnerConfig) -> TaskSpec:
    name = _get(raw, "Name", str, where)
    if not name or "/" in name or "\x00" in name or name in (".", ".."):
        raise AllocError(f"{where}.Name {name!r} is not a valid task name")
    w = f"{where}[{name}]"
    env = _get(raw, "Env", dict, w, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise AllocError(f"{w}.Env must map strings to strings")
    res = _get(raw, "Resources", dict, w, {})
    kill_timeout = _get(raw, "KillTimeout", (int, float), w, cfg.default_kill_timeout_s * NS) / NS
    if kill_timeout < 0:
        raise AllocError(f"{w}.KillTimeout must be >= 0")
    kill_signal = _get(raw, "KillSignal", str, w, "") or cfg.default_kill_signal
    try:
        signal_number(kill_signal)
    except DriverError as exc:
        raise AllocError(f"{w}.KillSignal: {exc}") from exc
    try:
        artifacts = parse_artifacts(raw.get("Artifacts"), w)
        templates = parse_templates(raw.get("Templates"), w)
    except ValueError as exc:
        raise AllocError(str(exc)) from None
    return TaskSpec(name=name, driver=_get(raw, "Driver", str, w), config=_get(raw, "Config", dict, w, {}),
                    env=tuple(sorted(env.items())), cpu=_get(res, "CPU", int, f"{w}.Resources", 0),
                    memory_mb=_get(res, "MemoryMB", int, f"{w}.Resources", 0),
                    kill_timeout_s=min(kill_timeout, cfg.max_kill_timeout_s),
                    kill_signal=kill_signal, user=_get(raw, "User", str, w, ""),
                    payload_file=_payload_file(raw, w), artifacts=artifacts, logs=_log_settings(raw, w),
                    volume_mounts=_volume_mounts(raw, w), templates=templates,
                    leader=_get(raw, "Leader", bool, w, False), shutdown_delay_s=_shutdown_delay(raw, w),
                    identity_env=task_identity(raw)[0], identity_file=task_identity(raw)[1],
                    identity_filepath=str((raw.get("Identity") or {}).get("Filepath") or ""),
                    identities=tuple(IdentitySpec(
                        name=w["Name"], env=bool(w.get("Env")), file=bool(w.get("File")),
                        filepath=str(w.get("Filepath") or ""), ttl_s=(w.get("TTL") or 0) / 1e9,
                        change_mode=str(w.get("ChangeMode") or ""),
                        change_signal=str(w.get("ChangeSignal") or ""))
                        for w in task_named_identities(raw)),
                    actions=_actions(raw, w), **_lifecycle(raw, w))


def _actions(raw: dict[str, Any], where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for i, a in enumerate(_get(raw, "Actions", list, where, []) or []):
        w = f"{where}.Actions[{i}]"
        args = _get(a, "Args", list, w, []) or []
        if not all(isinstance(x, str) for x in args):
            raise AllocError(f"{w}.Args must be a list of strings")
        out.append((_get(a, "Name", str, w), (_get(a, "Command", str, w), *args)))
    return tuple(out)


def _volume_mounts(raw: dict[str, Any], where: str) -> tuple[tuple[str, str, bool, str], ...]:
    out = []
    for i, m in enumerate(_get(raw, "VolumeMounts", list, where, []) or []):
        w = f"{where}.VolumeMounts[{i}]"
        out.append((_get(m, "Volume", str, w), _get(m, "Destination", str, w, ""),
                    _get(m, "ReadOnly", bool, w, False), _get(m, "PropagationMode", str, w, "private")))
    return tuple(out)


def _group_volumes(group: dict[str, Any], where: str) -> tuple[tuple[str, str, str, bool, bool], ...]:
    vols = _get(group, "Volumes", dict, where, {}) or {}
    return tuple((label, _get(v, "Type", str, f"{where}.Volumes[{label}]"),
                  _get(v, "Source", str, f"{where}.Volumes[{label}]", ""),
                  _get(v, "ReadOnly", bool, f"{where}.Volumes[{label}]", False),
                  _get(v, "PerAlloc", bool, f"{where}.Volumes[{label}]", False))
                 for label, v in sorted(vols.items()))


def alloc_suffix(name: str) -> str:
    """Nomad's AllocSuffix: the ``[<index>]`` an allocation's name ends with ("" if none)."""
    i = name.rfind("[")
    return name[i:] if i >= 0 else ""


def volume_hook_error(spec: AllocSpec, task: TaskSpec, driver_name: str, mount_configs: str,
                      host_volumes: dict[str, tuple[str, bool]]) -> str:
    """Nomad's task runner volume hook (``volumes``), before a task starts: "" or why it cannot.

    Every host volume the group asks for must be on this node (a per_alloc
    one with the allocation's ``[<index>]``): "host volume validation
    error: missing <source>".  Then a task that mounts one needs a driver
    that can mount (its MountConfigs capability): raw_exec's is
    MountConfigSupportNone -- it has no filesystem isolation to mount into
    -- so Nomad fails such a task with "task driver "raw_exec" for "<task>"
    does not support host volumes" rather than start it without the mount.
    This agent does exactly that for raw_exec and for the simulator's
    SimDriver (which stands in for raw_exec); a group volume no task mounts
    is checked for presence only, as in Nomad.
    """
    missing = []
    for _label, vtype, source, _ro, per_alloc in spec.volumes:
        if vtype != "host":
            continue
        name = source + alloc_suffix(spec.name) if per_alloc else source
        if name not in host_volumes:
            missing.append(f"missing {name}")
    if missing:
        # Go's multierror text, as Nomad prints it.
        errs = "".join(f"\t* {m}\n" for m in missing)
        n = len(missing)
        return f"host volume validation error: {n} error{'s' if n > 1 else ''} occurred:\n{errs}\n"
    host = {label for label, vtype, *_ in spec.volumes if vtype == "host"}
    if any(vol in host for vol, *_ in task.volume_mounts) and mount_configs == MOUNT_CONFIGS_NONE:
        return f'task driver "{driver_name}" for "{task.name}" does not support host volumes'
    return ""


def _log_settings(raw: Any, where: str) -> LogSettings:
    """The task's ``LogConfig`` (MaxFiles, MaxFileSizeMB, Disabled); none: Nomad's defaults."""
    lc = _get(raw, "LogConfig", dict, where, {}) or {}
    default = LogSettings()
    files = _get(lc, "MaxFiles", int, f"{where}.LogConfig", default.max_files)
    size_mb = _get(lc, "MaxFileSizeMB", int, f"{where}.LogConfig", default.max_file_bytes >> 20)
    if files < 1 or size_mb < 1:
        raise AllocError(f"{where}.LogConfig: MaxFiles and MaxFileSizeMB must be >= 1")
    return LogSettings(max_files=files, max_file_bytes=size_mb << 20,
                       disabled=_get(lc, "Disabled", bool, f"{where}.LogConfig", False))


def _lifecycle(raw: Any, where: str) -> dict[str, Any]:
    """The task's ``Lifecycle`` (Nomad's TaskLifecycleConfig) as TaskSpec fields; none: a main task."""
    lc = _get(raw, "Lifecycle", dict, where, {}) or {}
    if not lc:
        return {}
    hook = _get(lc, "Hook", str, f"{where}.Lifecycle", "")
    if hook not in HOOKS:
        raise AllocError(f"{where}.Lifecycle.Hook {hook!r} is not one of {', '.join(HOOKS)}")
    return {"hook": hook, "sidecar": _get(lc, "Sidecar", bool, f"{where}.Lifecycle", False)}


def _payload_file(raw: Any, where: str) -> str:
    """The task's dispatch_payload file, relative to its local directory; "" for none."""
    dp = _get(raw, "DispatchPayload", dict, where, {}) or {}
    f = _get(dp, "File", str, f"{where}.DispatchPayload", "")
    parts = f.replace("\\", "/").split("/")
    if f and (f.startswith("/") or "\x00" in f or ".." in parts or not f.strip("/. ")):
        raise AllocError(f"{where}.DispatchPayload.File {f!r} escapes the task's local directory")
    return f


def _meta(d: Any, where: str) -> dict[str, str]:
    meta = d.get("Meta") if isinstance(d, dict) else None
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise AllocError(f"{where}.Meta must be an object of strings")
    return meta


def _health_strategy(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The block the client decides the allocation's health by (Nomad's health hook getHealthParams):
    its group's ``update`` block when it is in a deployment, else -- a migration's replacement, or any
    other service or system allocation -- its group's ``migrate`` block, Nomad's defaults under it.
    None when the client decides none: already decided, not a service or system job's, or a
    deployment's with ``health_check = "manual"`` (set by ``deployment alloc-health``)."""
    if (raw.get("DeploymentStatus") or {}).get("Healthy") is not None:
        return None
    job = raw.get("Job") or {}
    group = next((g for g in job.get("TaskGroups") or () if isinstance(g, dict)
                  and g.get("Name") == raw.get("TaskGroup")), None)
    if group is None:
        return None
    if raw.get("DeploymentID"):
        u = group.get("Update") or {}
        return None if not isinstance(u, dict) or u.get("HealthCheck", "checks") == "manual" \
            else {"HealthCheck": "checks", "MinHealthyTime": 0, "HealthyDeadline": 300 * NS, **u}
    if job.get("Type") not in ("service", "system"):
        return None  # Nomad's health hook is a no-op for batch work: it is never migrated early
    # Nomad's DefaultMigrateStrategy under a group without one (a system job's, or one stored without).
    m = group.get("Migrate") or {}
    return {**MIGRATE_DEFAULTS, **m} if isinstance(m, dict) else None


def health_rules(raw: dict[str, Any]) -> tuple[float, float] | None:
    """(MinHealthyTime s, HealthyDeadline s) when the client decides this allocation's health: for its
    deployment, or outside one for the drainer, which migrates the next allocation once the replacement
    has its health (Nomad's drainer handleTaskGroup)."""
    s = _health_strategy(raw)
    if s is None:
        return None
    try:
        return float(s["MinHealthyTime"]) / 1e9, float(s["HealthyDeadline"]) / 1e9
    except (TypeError, ValueError):
        return None


def health_uses_checks(raw: dict[str, Any]) -> bool:
    """The allocation's health waits for its checks (``health_check = "checks"`` in the block it is
    decided by; see _health_strategy)."""
    s = _health_strategy(raw)
    return s is not None and s.get("HealthCheck") == "checks"


def _memory_max(raw: dict[str, Any], task: str) -> int:
    """A task's ``AllocatedResources.Tasks[task].Memory.MemoryMaxMB`` (0 when the scheduler set none)."""
    where = f"Allocation.AllocatedResources.Tasks[{task}].Memory"
    try:
        mb = raw.get("AllocatedResources", {})["Tasks"][task]["Memory"].get("MemoryMaxMB", 0)
    except (KeyError, TypeError, AttributeError):
        return 0
    if isinstance(mb, bool) or not isinstance(mb, int) or mb < 0:
        raise AllocError(f"{where}.MemoryMaxMB must be a non-negative integer, got {mb!r}")
    return mb


def _task_cores(raw: dict[str, Any], t: TaskSpec) -> TaskSpec:
    """*t* with the cores the scheduler reserved for it (``TaskCores[task]``: its ReservedCores, and
    their MHz as its CPU); as it is when none were (an allocation placed without cores has no TaskCores)."""
    held = raw.get("TaskCores")
    if not held:
        return t
    got = held.get(t.name) if isinstance(held, dict) else None
    if got is None:
        return t
    where = f"Allocation.TaskCores[{t.name}]"
    cores = got.get("ReservedCores") if isinstance(got, dict) else None
    shares = got.get("CpuShares") if isinstance(got, dict) else None
    if not isinstance(cores, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                              for c in cores):
        raise AllocError(f"{where}.ReservedCores must be a list of core numbers, got {cores!r}")
    if isinstance(shares, bool) or not isinstance(shares, int) or shares < 0:
        raise AllocError(f"{where}.CpuShares must be a non-negative integer, got {shares!r}")
    return replace(t, reserved_cores=tuple(sorted(set(cores))), cpu=shares)


def parse_alloc(raw: Any, cfg: AllocRunnerConfig) -> AllocSpec:
    """Validate an allocation dict; AllocError names the bad field."""
    aid = alloc_id_of(raw)
    desired = _get(raw, "DesiredStatus", str, "Allocation")
    if desired not in (DESIRED_RUN, DESIRED_STOP, DESIRED_EVICT):
        raise AllocError(f"Allocation.DesiredStatus {desired!r} is not run, stop or evict")
    job = _get(raw, "Job", dict, "Allocation")
    job_type = _get(job, "Type", str, "Job", "service")
    if job_type not in JOB_TYPES:
        raise AllocError(f"Job.Type {job_type!r} is not one of {', '.join(JOB_TYPES)}")
    group_name = _get(raw, "TaskGroup", str, "Allocation")
    groups = _get(job, "TaskGroups", list, "Job")
    group = next((g for g in groups if isinstance(g, dict) and g.get("Name") == group_name), None)
    if group is None:
        raise AllocError(f"Job.TaskGroups has no group named {group_name!r}")
    where = f"Job.TaskGroups[{group_name}]"
    default = cfg.batch_restart if job_type in ("batch", "sysbatch") else cfg.service_restart
    restart = parse_restart_policy(group.get("RestartPolicy"), default, where)
    raw_tasks = _get(group, "Tasks", list, where)
    if not raw_tasks:
        raise AllocError(f"{where}.Tasks is empty")
    tasks = tuple(parse_task(t, f"{where}.Tasks", cfg) for t in raw_tasks)
    # Nomad's meta precedence: the task's over the group's over the job's.
    shared = {**_meta(job, "Job"), **_meta(group, where)}
    tasks = tuple(replace(t, meta=tuple(sorted({**shared, **_meta(raw_t, f"{where}.Tasks[{t.name}]")}.items())))
                  for t, raw_t in zip(tasks, raw_tasks))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise AllocError(f"{where}.Tasks has duplicate task names")
    tasks = tuple(_task_cores(raw, replace(t, memory_max_mb=_memory_max(raw, t.name))) for t in tasks)
    # A task's own restart block (the servers merged the group's into it); None: the group's.
    tasks = tuple(replace(t, restart=parse_restart_policy(raw_t["RestartPolicy"], restart,
                                                          f"{where}.Tasks[{t.name}]"))
                  if isinstance(raw_t, dict) and raw_t.get("RestartPolicy") is not None else t
                  for t, raw_t in zip(tasks, raw_tasks, strict=True))
    disk = _get(group, "EphemeralDisk", dict, where, {})
    sticky, migrate = disk.get("Sticky", False), disk.get("Migrate", False)
    if not isinstance(sticky, bool) or not isinstance(migrate, bool):
        raise AllocError(f"{where}.EphemeralDisk.Sticky and .Migrate must be booleans")
    disk_mb = disk.get("SizeMB", 300)
    if disk_mb is None:
        disk_mb = 300
    if isinstance(disk_mb, bool) or not isinstance(disk_mb, int) or disk_mb < 0:
        raise AllocError(f"{where}.EphemeralDisk.SizeMB must be a non-negative integer")
    return AllocSpec(alloc_id=aid, job_id=_get(job, "ID", str, "Job", ""), job_type=job_type,
                     group=group_name,
                     name=_get(raw, "Name", str, "Allocation", ""),
                     namespace=_get(raw, "Namespace", str, "Allocation", "default"), desired=desired,
                     modify_index=_get(raw, "AllocModifyIndex", int, "Allocation", 0), restart=restart,
                     tasks=tasks, parent_id=_get(job, "ParentID", str, "Job", "") or "",
                     job_name=_get(job, "Name", str, "Job", "") or "",
                     region=_get(job, "Region", str, "Job", "") or "",
                     payload=_payload(job), ports=_ports(raw), volumes=_group_volumes(group, where),
                     previous_alloc=_get(raw, "PreviousAllocation", str, "Allocation", "") or "",
                     sticky=sticky, migrate=migrate, disk_mb=disk_mb,
                     shutdown_delay_s=_shutdown_delay(group, where),
                     max_run_s=_max_run(group, job_type, where),
                     create_time=float(_get(raw, "CreateTime", (int, float), "Allocation", 0.0)))


def _max_run(group: dict[str, Any], job_type: str, where: str) -> float:
    """A batch group's ``MaxRunDuration`` (ns) in seconds; 0 when none (or not a batch job's)."""
    ns = _get(group, "MaxRunDuration", int, where, 0)
    if ns < 0:
        raise AllocError(f"{where}.MaxRunDuration must be greater than zero")
    return ns / NS if job_type in ("batch", "sysbatch") else 0.0


def _shutdown_delay(raw: dict[str, Any], where: str) -> float:
    """A group's or task's ``ShutdownDelay`` (ns) in seconds; 0 when none."""
    ns = _get(raw, "ShutdownDelay", int, where, 0)
    if ns < 0:
        raise AllocError(f"{where}.ShutdownDelay must be a positive value")
    return ns / NS


def _ports(raw: dict[str, Any]) -> tuple[tuple[str, int, int, str], ...]:
    out = []
    for i, p in enumerate(_get(raw, "AllocatedPorts", list, "Allocation", []) or []):
        w = f"Allocation.AllocatedPorts[{i}]"
        label, value = _get(p, "Label", str, w), _get(p, "Value", int, w)
        to = _get(p, "To", int, w, 0)
        if not re.match(r"^[a-zA-Z0-9_]+$", label) or not 0 < value < 65536:
            raise AllocError(f"{w}: bad port {label!r}={value}")
        out.append((label, value, to if to > 0 else value, _get(p, "HostIP", str, w, "")))
    return tuple(out)


def _payload(job: dict[str, Any]) -> bytes:
    raw = job.get("Payload") or ""
    if not isinstance(raw, str):
        raise AllocError("Job.Payload must be base64 text")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise AllocError("Job.Payload is not valid base64") from None


@dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool
    delay_s: float
    failed: bool  # when not restarting: dead and failed, or dead and done
    reason: str
    count: int  # the tracker after this exit
    interval_start: float


# Nomad's restarts.ReasonWithinPolicy and ReasonDelay: a Restarting event's RestartReason.
REASON_WITHIN_POLICY = "Restart within policy"
REASON_DELAY = "Exceeded allowed attempts, applying a delay"


def restarting_message(reason: str, delay_s: float) -> str:
    """Nomad's ``PopulateEventDisplayMessage`` for ``Restarting``: ``Task restarting in 15.342181s`` (a Go
    duration), after ``<reason> - `` when the reason is not "Restart within policy" (nor empty)."""
    from actors.scheduler.job import go_duration

    text = f"Task restarting in {go_duration(round(delay_s * 1e9))}"
    return f"{reason} - {text}" if reason and reason != REASON_WITHIN_POLICY else text


def _go_duration(seconds: float) -> str:
    """Go's time.Duration String of *seconds* ("1h0m0s", "1m30s", "7.5s"), as Nomad's %v of one."""
    from actors.scheduler.job import go_duration

    return go_duration(round(seconds * 1e9))


def decide_restart(policy: RestartPolicy, *, count: int, interval_start: float | None, now: float,
                   successful: bool, restart_on_success: bool, recoverable: bool = True,
                   jitter: float = 0.0) -> RestartDecision:
    """Nomad's ``RestartTracker.GetState`` for one exit (or start error); *jitter* in [0, fraction)."""
    end = None if interval_start is None else interval_start + policy.interval_s
    if interval_start is None or end is None or now > end or interval_start > now:
        count, interval_start = 0, now  # a new interval (a clock that went back also starts one)
    assert interval_start is not None
    if successful and not restart_on_success:
        return RestartDecision(False, 0.0, False, "Restart unnecessary as task terminated successfully",
                               count, interval_start)
    if not recoverable:
        return RestartDecision(False, 0.0, True, "Error was unrecoverable", count, interval_start)
    if policy.attempts == 0:
        return RestartDecision(False, 0.0, True, "Policy allows no restarts", count, interval_start)
    count += 1
    if count <= policy.attempts:
        return RestartDecision(True, policy.delay_s * (1.0 + jitter), False, "Restart within policy",
                               count, interval_start)
    exceeded = f"Exceeded allowed attempts {policy.attempts} in interval {_go_duration(policy.interval_s)}"
    if policy.mode == "delay":
        return RestartDecision(True, max(0.0, interval_start + policy.interval_s - now), False,
                               REASON_DELAY, count, interval_start)
    return RestartDecision(False, 0.0, True, f"{exceeded} and mode is \"fail\"", count, interval_start)


def _multi_error(problems: list[str]) -> str:
    """Go's ``multierror.Error`` text ("1 error occurred:\n\t* ..."), as Nomad's client answers."""
    points = "\n\t".join(f"* {p}" for p in problems)
    return f"{len(problems)} error{'s' if len(problems) > 1 else ''} occurred:\n\t{points}\n\n"


def client_status(states: list[TaskState]) -> tuple[str, str]:
    """Nomad's ``getClientStatus``: failed > running > pending > complete."""
    if any(s.state == TASK_DEAD and s.failed for s in states):
        return FAILED, "Failed tasks"
    if any(s.state == TASK_RUNNING for s in states):
        return RUNNING, "Tasks are running"
    if any(s.state == TASK_PENDING for s in states):
        return PENDING, "No tasks have started"
    return COMPLETE, "All tasks have completed"


# ------------------------------------------------------------ task lifecycle (Nomad's tasklifecycle)
HOOK_PRESTART, HOOK_POSTSTART, HOOK_POSTSTOP = "prestart", "poststart", "poststop"
HOOKS = (HOOK_PRESTART, HOOK_POSTSTART, HOOK_POSTSTOP)
# The allocation's lifecycle stage, which only moves forward: prestart tasks run first; the main
# tasks once every ephemeral prestart task has succeeded and every prestart sidecar runs; the
# poststart tasks once every main task has started; "wait" once the ephemeral poststart tasks are
# done; poststop tasks once every other task is dead.
STAGES = ("prestart", "main", "poststart", "wait", "poststop")
# Which kinds of task a stage lets start (Nomad's gates); see task_kind.
_STAGE_STARTS = {
    "prestart": ("prestart", "prestart sidecar"),
    "main": ("prestart sidecar", "main"),
    "poststart": ("prestart sidecar", "main", "poststart", "poststart sidecar"),
    "wait": ("prestart sidecar", "main", "poststart sidecar"),
    "poststop": ("poststop",),
}


def task_kind(spec: TaskSpec) -> str:
    """main, prestart, prestart sidecar, poststart, poststart sidecar or poststop."""
    if not spec.hook:
        return "main"
    return f"{spec.hook} sidecar" if spec.sidecar and spec.hook != HOOK_POSTSTOP else spec.hook


def stage_starts(stage: str, spec: TaskSpec) -> bool:
    """May a task of this kind start while the allocation is at this stage?"""
    return task_kind(spec) in _STAGE_STARTS[stage]


def next_stage(stage: str, tasks: list[tuple[TaskSpec, TaskState]]) -> str:
    """The stage the allocation reaches from *stage* given its tasks' states (Nomad's
    Coordinator.TaskStateUpdated: it steps on while each stage's condition holds)."""
    while True:
        if all(s.state == TASK_DEAD for t, s in tasks if t.hook != HOOK_POSTSTOP):
            return "poststop"  # reachable from any stage: nothing but poststop tasks is left
        kinds = [(task_kind(t), s) for t, s in tasks]
        if stage == "prestart":
            # A sidecar need only have started once (Nomad's isPrestartDone): one restarting when
            # the ephemeral tasks finish holds nothing back.
            done = all(s.state == TASK_DEAD and not s.failed for k, s in kinds if k == "prestart") and \
                all(s.state == TASK_RUNNING or any(e.type == EV_STARTED for e in s.events)
                    for k, s in kinds if k == "prestart sidecar")
        elif stage == "main":
            done = all(s.state != TASK_PENDING for k, s in kinds if k == "main")
        elif stage == "poststart":
            done = all(s.state == TASK_DEAD for k, s in kinds if k == "poststart")
        else:
            return stage  # "wait" ends only with the other tasks; "poststop" is the last
        if not done:
            return stage
        stage = STAGES[STAGES.index(stage) + 1]


def restarts_on_success(job_type: str, spec: TaskSpec) -> bool:
    """Nomad's NewRestartTracker: a task that exits 0 is restarted in service and system jobs, but
    an ephemeral prestart or poststart task, and any poststop task, is done; a sidecar restarts."""
    if spec.hook in (HOOK_PRESTART, HOOK_POSTSTART):
        return spec.sidecar
    if spec.hook == HOOK_POSTSTOP:
        return False
    return job_type not in ("batch", "sysbatch")


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")


def interpolate(value: Any, env: dict[str, str], node: dict[str, str] | None = None) -> Any:
    """The task's driver config with ``${NAME}`` replaced by the task's environment, else by the node's
    values (*node*: ``${attr.kernel.name}``, ``${meta.rack}``, ``${node.unique.name}``) -- Nomad's
    ReplaceEnv: ``args = ["-port", "${NOMAD_PORT_http}"]``; an unknown name is left as written."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        node = node or {}

        def named(m: re.Match[str]) -> str:
            name = m.group(1)
            return env[name] if name in env else node.get(name, m.group(0))
        return _INTERP.sub(named, value)
    if isinstance(value, list):
        return [interpolate(v, env, node) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, node) for k, v in value.items()}
    return value


_ALLOC_INDEX = re.compile(r"\[(\d+)\]$")


def alloc_index(name: str) -> int:
    """The allocation's index within its group, from its name's ``[n]`` (Nomad's
    AllocIndexFromName); 0 for a name without one, as Nomad's."""
    m = _ALLOC_INDEX.search(name)
    return int(m.group(1)) if m else 0


def task_env(spec: AllocSpec, task: TaskSpec, alloc_dir: str, task_dir: str,
             node: dict[str, str] | None = None, dirs: dict[str, str] | None = None) -> dict[str, str]:
    """Nomad's task environment variables (the subset that applies).  The values of the task's
    ``env`` block and of its meta are interpolated as Nomad's taskenv buildEnv does: ``${NOMAD_ALLOC_ID}``,
    ``${NOMAD_META_x}`` from the variables built here, ``${node.unique.name}``, ``${meta.rack}``,
    ``${attr.kernel.name}`` from the node's values (*node*); an unknown name is left as written.
    *dirs* replaces the directories' variables with the task's own view of them (a chroot driver's
    ``/alloc``, ``/local``, ``/secrets``), which the env values then name, as Nomad's builder does."""
    node = node or {}
    env: dict[str, str] = {
        "NOMAD_ALLOC_ID": spec.alloc_id, "NOMAD_SHORT_ALLOC_ID": spec.alloc_id[:8],
        "NOMAD_ALLOC_NAME": spec.name, "NOMAD_ALLOC_INDEX": str(alloc_index(spec.name)),
        "NOMAD_JOB_ID": spec.job_id, "NOMAD_JOB_NAME": spec.job_name or spec.job_id,
        "NOMAD_GROUP_NAME": spec.group, "NOMAD_TASK_NAME": task.name,
        "NOMAD_NAMESPACE": spec.namespace, "NOMAD_ALLOC_DIR": posixpath.join(alloc_dir, "alloc"),
        "NOMAD_TASK_DIR": posixpath.join(task_dir, "local"),
        "NOMAD_SECRETS_DIR": posixpath.join(task_dir, "secrets"),
        "NOMAD_CPU_LIMIT": str(task.cpu), "NOMAD_MEMORY_LIMIT": str(task.memory_mb),
        **(dirs or {}),
    }
    if spec.parent_id:
        env["NOMAD_JOB_PARENT_ID"] = spec.parent_id
    if spec.region:
        env["NOMAD_REGION"] = spec.region
    if "node.datacenter" in node:
        env["NOMAD_DC"] = node["node.datacenter"]
    for label, host_port, port, ip in spec.ports:  # Nomad's port variables (host networking)
        env[f"NOMAD_PORT_{label}"] = str(port)
        env[f"NOMAD_HOST_PORT_{label}"] = str(host_port)
        env[f"NOMAD_IP_{label}"] = env[f"NOMAD_HOST_IP_{label}"] = ip
        env[f"NOMAD_ADDR_{label}"] = f"{ip}:{port}"
        env[f"NOMAD_HOST_ADDR_{label}"] = f"{ip}:{host_port}"
        env[f"NOMAD_ALLOC_PORT_{label}"] = str(port)
    for key, value in task.meta:  # Nomad sets each key as written and upper-cased
        clean = re.sub(r"[^A-Za-z0-9_]", "_", key)
        env[f"NOMAD_META_{clean}"] = env[f"NOMAD_META_{clean.upper()}"] = interpolate(value, node, env)
    nomad = dict(env)  # the task's own variables are set over these but may not replace them
    for key, value in task.env:
        if key not in nomad or key == "NOMAD_MEMORY_MAX_LIMIT":
            env[key] = interpolate(value, node, nomad)
    # Nomad sets it only when the allocation holds a memory_max.  A task's own env may not set it:
    # a driver with cgroups takes it as the hard memory limit the scheduler allowed.
    if task.memory_max_mb:
        env["NOMAD_MEMORY_MAX_LIMIT"] = str(task.memory_max_mb)
    else:
        env.pop("NOMAD_MEMORY_MAX_LIMIT", None)
    if task.reserved_cores:  # Nomad's taskenv: the reserved cores as a cpuset list
        env["NOMAD_CPU_CORES"] = cpuset(task.reserved_cores)
    return env


# ------------------------------------------------------------ state store (an edge)
class AllocStateStore(Protocol):
    def load_all(self) -> dict[str, dict[str, Any]]:
        """Every persisted allocation record, by alloc ID."""

    def put(self, alloc_id: str, record: dict[str, Any]) -> None:
        """Persist *record*.  Its ``"alloc"`` dict is never changed once put (the runner replaces
        it), so a store may keep that dict's encoding for as long as the same object comes back."""

    def delete(self, alloc_id: str) -> None: ...


# json.dumps(record, sort_keys=True) without building an encoder per call
# (json.dumps does for any non-default option); the output is the same.
_record_json = json.JSONEncoder(sort_keys=True).encode


class _RecordJson:
    """Records as JSON text, exactly ``json.dumps(record, sort_keys=True)``, keeping each allocation's
    encoded ``"alloc"`` dict while the same dict comes back (AllocStateStore.put's promise).

    Most writes change the runner's part of a record only (a task event, a health decision), while
    the allocation -- its whole job included -- is most of the text to encode.  With ``"alloc"`` the
    first key in sorted order, the text is its encoding followed by the rest's.
    """

    __slots__ = ("_alloc",)

    def __init__(self) -> None:
        self._alloc: dict[str, tuple[Any, str]] = {}  # alloc ID -> (the "alloc" dict, its JSON)

    def encode(self, alloc_id: str, record: dict[str, Any]) -> str:
        alloc = record.get("alloc")
        others = record.keys() - {"alloc"}
        try:
            first = isinstance(alloc, dict) and (not others or min(others) > "alloc")
        except TypeError:  # a key that is not a string: no order to rely on
            first = False
        if not first:
            self._alloc.pop(alloc_id, None)
            return _record_json(record)
        got = self._alloc.get(alloc_id)
        if got is not None and got[0] is alloc:
            text = got[1]
        else:
            text = _record_json(alloc)
            self._alloc[alloc_id] = (alloc, text)
        if len(record) == 1:
            return '{"alloc": ' + text + "}"
        rest = _record_json({k: v for k, v in record.items() if k != "alloc"})
        return '{"alloc": ' + text + ", " + rest[1:]

    def forget(self, alloc_id: str) -> None:
        self._alloc.pop(alloc_id, None)


@dataclass(slots=True)
class MemoryAllocStore:
    """The simulator's and tests' store; keep the object to survive a crash.

    Records are kept as JSON text, so what works here serialises on disk too.
    """

    data: dict[str, str] = field(default_factory=dict)
    fail: bool = False  # make writes raise, to test error handling
    _json: _RecordJson = field(default_factory=_RecordJson, repr=False, compare=False)

    def load_all(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in sorted(self.data.items())}

    def put(self, alloc_id: str, record: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("simulated state store failure")
        self.data[alloc_id] = self._json.encode(alloc_id, record)

    def delete(self, alloc_id: str) -> None:
        self.data.pop(alloc_id, None)
        self._json.forget(alloc_id)


@dataclass(slots=True)
class SimAllocStore:
    """The simulator's store: each record kept as the runner put it, made JSON when it is loaded.

    The runner builds a fresh record for every put, of values it never changes afterwards (its
    ``"alloc"`` dict included, AllocStateStore.put's promise), so keeping the record is keeping what
    was written; loading gives exactly what MemoryAllocStore's text would (``json.loads`` of
    ``json.dumps(record, sort_keys=True)``), and a record that does not serialise fails there.
    Encoding every write -- each allocation on each task event and on each in-place update of
    its job -- was a tenth of the 5 servers + 100 clients benchmark's CPU, for text read only when
    a simulated agent restarts.  Tests that read or plant the text use MemoryAllocStore.
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load_all(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(_record_json(v)) for k, v in sorted(self.records.items())}

    def put(self, alloc_id: str, record: dict[str, Any]) -> None:
        self.records[alloc_id] = record

    def delete(self, alloc_id: str) -> None:
        self.records.pop(alloc_id, None)


# ------------------------------------------------------------ allocation directories (an edge)
def _keep_read(t: _Task, r: Rendered) -> None:
    """After a complete rendering, keep only the data it read: what the templates no longer read (a
    variable an {{if}} stopped reaching) is neither kept nor asked for again."""
    t.tmpl_data = {d: t.tmpl_data[d] for d in r.deps if d in t.tmpl_data}


class AllocDirs(Protocol):
    def destroy(self, alloc_id: str) -> None:
        """Remove ``<alloc_dir>/<alloc_id>`` and everything in it (logs, task dirs); absent is fine."""

    def usage(self) -> tuple[float, float]:
        """(disk, inode) usage of the alloc dir's file system, in percent."""

    def write_task_file(self, alloc_id: str, task: str, path: str, data: bytes) -> None:
        """Write *data* to ``<alloc_id>/<task>/local/<path>`` (a dispatch payload); OSError or ValueError."""

    def move_disk(self, prev_id: str, alloc_id: str, tasks: tuple[str, ...]) -> bool:
        """Nomad's AllocDir.Move: ``<prev_id>/alloc/data`` and each of *tasks*' ``local/`` become
        *alloc_id*'s (renamed, not copied); False when *prev_id* has no directory left; OSError."""
    def write_alloc_file(self, alloc_id: str, path: str, data: bytes, perms: int,
                         owner: tuple[int, int] = (-1, -1)) -> None:
        """Write *data* to ``<alloc_id>/<path>`` (a rendered template) with *perms* and *owner* ((uid,
        gid), -1 the agent's), replacing what was there at once (a reader sees the old or the new file);
        OSError or ValueError."""

    def read_alloc_file(self, alloc_id: str, path: str, limit: int) -> bytes:
        """The contents of ``<alloc_id>/<path>`` (a template's source), at most *limit* bytes (ValueError
        beyond); OSError or ValueError."""

    def user_ids(self, user: str) -> tuple[int, int] | None:
        """(uid, gid) of the host's *user* (a name or a number), None when the host has no such user."""


@dataclass(slots=True)
class MemoryAllocDirs:
    """The simulator's and tests' twin: records what would have been removed; usage is set by hand."""

    destroyed: list[str] = field(default_factory=list)
    disk_percent: float = 10.0
    inode_percent: float = 1.0
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (alloc, task, path) -> data
    moved: list[tuple[str, str]] = field(default_factory=list)  # (from, to) of each move_disk
    perms: dict[tuple[str, str], int] = field(default_factory=dict)  # (alloc, path) -> file mode
    # (alloc, path) -> (uid, gid) of a template given an owner
    owners: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def destroy(self, alloc_id: str) -> None:
        self.destroyed.append(alloc_id)

    def move_disk(self, prev_id: str, alloc_id: str, tasks: tuple[str, ...]) -> bool:
        if prev_id in self.destroyed:
            return False
        self.moved.append((prev_id, alloc_id))
        for (aid, task, path) in sorted(self.files):
            if aid == prev_id and task in tasks:
                self.files[(alloc_id, task, path)] = self.files.pop((aid, task, path))
        return True

    def write_task_file(self, alloc_id: str, task: str, path: str, data: bytes) -> None:
        self.files[(alloc_id, task, path)] = data

    def write_alloc_file(self, alloc_id: str, path: str, data: bytes, perms: int,
                         owner: tuple[int, int] = (-1, -1)) -> None:
        self.files[(alloc_id, "", path)] = data
        self.perms[(alloc_id, path)] = perms
        if owner != (-1, -1):
            self.owners[(alloc_id, path)] = owner

    def read_alloc_file(self, alloc_id: str, path: str, limit: int) -> bytes:
        if (alloc_id, "", path) not in self.files:
            raise FileNotFoundError(f"{path}: no such file")
        data = self.files[(alloc_id, "", path)]
        if len(data) > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        return data

    def usage(self) -> tuple[float, float]:
        return self.disk_percent, self.inode_percent

    def user_ids(self, user: str) -> tuple[int, int] | None:
        return {"nobody": (65534, 65534), "root": (0, 0)}.get(user)


class DiskAllocDirs:
    """``<alloc_root>/<alloc_id>`` on disk, removed once its allocation is forgotten."""

    def __init__(self, alloc_root: str) -> None:
        self.root = alloc_root

    def user_ids(self, user: str) -> tuple[int, int] | None:
        import pwd

        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except (KeyError, ValueError):
            return None
        return pw.pw_uid, pw.pw_gid

    def destroy(self, alloc_id: str) -> None:
        if not _SAFE_ID.match(alloc_id) or alloc_id in (".", ".."):
            raise ValueError(f"unsafe allocation ID {alloc_id!r}")
        path = os.path.join(self.root, alloc_id)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return

    def move_disk(self, prev_id: str, alloc_id: str, tasks: tuple[str, ...]) -> bool:
        """Rename the previous allocation's ``alloc/data`` and tasks' ``local/`` into this one's,
        each replacing an empty directory there (Nomad's AllocDir.Move).  Links are moved as links,
        never followed: the agent renames within the allocation root only."""
        for aid in (prev_id, alloc_id):
            if not _SAFE_ID.match(aid) or aid in (".", ".."):
                raise ValueError(f"unsafe allocation ID {aid!r}")
        src_root, dst_root = os.path.join(self.root, prev_id), os.path.join(self.root, alloc_id)
        if not os.path.isdir(src_root) or os.path.islink(src_root):
            return False
        moves = [(os.path.join(src_root, "alloc"), os.path.join(dst_root, "alloc"), "data")]
        moves += [(os.path.join(src_root, t), os.path.join(dst_root, t), "local") for t in tasks
                  if "/" not in t and t not in ("", ".", "..", "alloc")]
        for src_parent, dst_parent, name in moves:
            src = os.path.join(src_parent, name)
            if os.path.islink(src_parent) or not os.path.lexists(src):
                continue
            os.makedirs(dst_parent, mode=0o755, exist_ok=True)
            dst = os.path.join(dst_parent, name)
            try:
                os.rmdir(dst)  # an empty one made meanwhile gives way, as Nomad's os.Remove
            except FileNotFoundError:
                pass
            os.rename(src, dst)
        return True

    def write_task_file(self, alloc_id: str, task: str, path: str, data: bytes) -> None:
        """Write under ``<alloc>/<task>/local`` without ever following a symlink on the way.

        The task's directory is the task's (chowned to its user): it may have
        replaced ``local`` or any directory under it with a link to /etc
        before a restart.  So the path is walked one directory at a time,
        each opened relative to the last with O_NOFOLLOW (a link there is an
        error, ELOOP or ENOTDIR), missing ones made, and the file opened the
        same way: the agent (root) writes only inside the real directory.
        """
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts or "/" in task or task in ("", ".", ".."):
            raise ValueError(f"{path!r} escapes the task's local directory")
        fd = self._walk(alloc_id, [task, "local", *parts[:-1]])
        try:
            out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        finally:
            os.close(fd)
        with os.fdopen(out, "wb") as f:
            f.write(data)

    def _walk(self, alloc_id: str, dirs: list[str], create: bool = True) -> int:
        """An fd of ``<root>/<alloc_id>/<dirs...>``, each made if missing (*create*) and opened with
        O_NOFOLLOW."""
        if not _SAFE_ID.match(alloc_id) or alloc_id in (".", ".."):
            raise ValueError(f"unsafe allocation ID {alloc_id!r}")
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in (alloc_id, *dirs):
                try:
                    if create:
                        os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(name, flags, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _parts(path: str) -> list[str]:
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise ValueError(f"{path!r} escapes the allocation's directory")
        return parts

    def write_alloc_file(self, alloc_id: str, path: str, data: bytes, perms: int,
                         owner: tuple[int, int] = (-1, -1)) -> None:
        """As write_task_file (no symlink followed), anywhere in the allocation's directory; written to
        a new temporary file and renamed over the destination, as Nomad's template runner does.

        The directory may be the task's: it can leave a FIFO, a symlink or a
        hard link to another file anywhere in it.  So the temporary file is a
        new one (O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK: whatever the task left
        at its name is unlinked -- the entry, never what a link points to --
        and the create tried again), never one opened through what is
        there, and the rename replaces the destination's directory
        entry (a FIFO, link or hard link there is replaced, never written
        through), so the agent never blocks on nor writes into the task's
        special files."""
        parts = self._parts(path)
        fd = self._walk(alloc_id, parts[:-1])
        tmp = f".{parts[-1][:200]}.nomad-template.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                out = os.open(tmp, flags, 0o600, dir_fd=fd)
            except FileExistsError:  # left by a crash, or planted by the task: its entry goes, not its target
                os.unlink(tmp, dir_fd=fd)
                out = os.open(tmp, flags, 0o600, dir_fd=fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
                if owner != (-1, -1):  # a template's uid / gid; before the mode, which a chown may clear
                    os.fchown(out, *owner)
                os.fchmod(out, perms)
            except BaseException:
                os.close(out)
                os.unlink(tmp, dir_fd=fd)
                raise
            os.close(out)
            try:
                os.rename(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                os.unlink(tmp, dir_fd=fd)
                raise
        finally:
            os.close(fd)

    def read_alloc_file(self, alloc_id: str, path: str, limit: int) -> bytes:
        """A template's source: opened with O_NONBLOCK|O_NOFOLLOW (a FIFO the task made there neither
        blocks the agent nor is read) and refused unless it is a regular file; no directory is made
        on the way (FileNotFoundError)."""
        parts = self._parts(path)
        fd = self._walk(alloc_id, parts[:-1], create=False)
        try:
            src = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        with os.fdopen(src, "rb") as f:
            if not stat.S_ISREG(os.fstat(src).st_mode):
                raise ValueError(f"source {path} is not a regular file")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        return data

    def usage(self) -> tuple[float, float]:
        st = os.statvfs(self.root)
        used = st.f_blocks - st.f_bfree
        avail = used + st.f_bavail  # as df: blocks reserved for root do not count as free
        disk = 100.0 * used / avail if avail else 0.0
        inodes = 100.0 * (st.f_files - st.f_ffree) / st.f_files if st.f_files else 0.0
        return disk, inodes


class FileAllocStore:
    """``<state_dir>/allocs/<alloc_id>.json``, each written atomically (temp, fsync, rename, dir fsync)."""

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "allocs")
        self._json = _RecordJson()
        # alloc ID -> the text this store last wrote for it: the same record again is not rewritten
        # (no fsyncs for a flush that changed nothing on disk; Nomad's client state DB skips such writes too)
        self._written: dict[str, str] = {}

    def _path(self, alloc_id: str) -> str:
        if not _SAFE_ID.match(alloc_id):
            raise ValueError(f"unsafe allocation ID {alloc_id!r}")
        return os.path.join(self.dir, f"{alloc_id}.json")

    def load_all(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for fname in names:
            if fname.startswith(".tmp-"):
                _unlink_quietly(os.path.join(self.dir, fname))  # a write cut short by a crash
                continue
            if not fname.endswith(".json") or fname.startswith("."):
                continue
            try:
                with open(os.path.join(self.dir, fname), encoding="utf-8") as f:
                    record = json.load(f)
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable allocation state %s: %s", fname, exc)
                continue
            if isinstance(record, dict):
                out[fname[: -len(".json")]] = record
        return out

    def put(self, alloc_id: str, record: dict[str, Any]) -> None:
        path = self._path(alloc_id)
        text = self._json.encode(alloc_id, record)
        if self._written.get(alloc_id) == text:
            return
        data = text.encode("utf-8")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        self._sync_dir()
        self._written[alloc_id] = text

    def delete(self, alloc_id: str) -> None:
        self._json.forget(alloc_id)
        self._written.pop(alloc_id, None)
        try:
            os.unlink(self._path(alloc_id))
        except FileNotFoundError:
            return
        self._sync_dir()

    def _sync_dir(self) -> None:
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------------------ the actor's private state
# A task's phase: what the runner is doing about it (finer than TaskState.state).
P_PENDING, P_RUNNING, P_RESTART_WAIT = "pending", "running", "restart_wait"
P_KILLING, P_DEAD = "killing", "dead"


@dataclass(slots=True)
class _Task:
    spec: TaskSpec
    phase: str = P_PENDING
    state: TaskState = TaskState(state=TASK_PENDING)
    handle: TaskHandle | None = None
    count: int = 0  # restart tracker: restarts in the current interval
    interval_start: float | None = None  # when the current interval opened (None: at the next exit)
    restart_at: float = 0.0  # when a restart_wait ends (env.now())
    escalated: bool = False  # SIGKILL sent
    fail_reason: str = ""
    watched: bool = False  # the driver tells this run's exit (no polling needed)
    restart_requested: bool = False  # being killed for an operator's restart: start again at once
    check_restart: str = ""  # being killed because this check failed (check_restart): the policy decides
    restart_reason: str = ""  # why restart_requested (its Restarting event); "" an operator's
    kill_fails: str = ""  # being killed for this reason, which fails it (a template that fails)
    # Its process was gone when the client restarted: it starts again only once the servers sent
    # the client's allocations (Nomad's waitOnServers).  Not persisted: a task pending at a restart
    # has no process to lose.
    restore_wait: bool = False
    shutdown_kill: tuple[str, str] | None = None  # (event, why) of the kill waiting out its shutdown_delay
    artifacts_fetched: int = 0  # how many of its artifacts are in its directory (fetched once, in order)
    fetch_run: int = 0  # the fetch of its artifacts in flight (its number), 0: none
    # Its templates (actors.client.templates): the servers' data they read ((kind, argument) -> (error,
    # value)) and its index; the query in flight (its req_id, 0: none); rendered and written once
    # (tmpl_ready); waiting for data before its first start (tmpl_wait); what each template last wrote,
    # the environment the env templates give, the last "Missing" event, a change_mode waiting out its
    # splay (restart, signals).
    tmpl_data: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)
    tmpl_index: int = 0
    tmpl_req: int = 0
    tmpl_server: str = ""  # the server the query in flight went to (PeerLost: it fails at once)
    tmpl_ready: bool = False
    tmpl_wait: bool = False
    tmpl_adopt: bool = False  # re-attached after a client restart: render and watch, without a change_mode
    tmpl_outputs: tuple[str, ...] = ()
    # Each template's text, its source file read once (as consul-template reads it when the task's
    # template runner starts): re-renders on data changes do not open the task's files again.
    tmpl_sources: tuple[str, ...] | None = None
    tmpl_env: dict[str, str] = field(default_factory=dict)
    tmpl_event: str = ""
    # a change_mode pending (after its splay): restart?, the signals, the templates whose scripts run
    tmpl_change: tuple[bool, tuple[str, ...], tuple[int, ...]] | None = None
    tmpl_first_change: float | None = None  # data changed since then, not rendered yet (wait { min, max })
    tmpl_retries: int = 0  # failed template data queries in a row (nomad_retry); an answer resets it
    tmpl_rendered_for: int = 0  # the run (its restarts count) its templates were first rendered for
    # Its signed workload identity ("" not yet), the request for it in flight (0: none), and whether
    # its start waits for it.
    wid_token: str = ""
    wid_req: int = 0
    wid_server: str = ""  # the server the request in flight went to (PeerLost: it fails at once)
    wid_wait: bool = False
    wid_ready: bool = False  # all its identities were signed once (then only renewals are asked)
    # Re-attached after a client restart with identities to renew: signed again (files rewritten, no
    # change_mode, as Nomad's restored identities), then renewed.
    wid_adopt: bool = False
    wid_named: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (JWT, exp Unix s; 0)
    wid_renew_failures: int = 0  # renewals failed in a row (the backoff's exponent)


@dataclass(slots=True)
class _Alloc:
    alloc_id: str
    raw: dict[str, Any]
    spec: AllocSpec | None  # None: the allocation was malformed
    invalid: str = ""
    tasks: dict[str, _Task] = field(default_factory=dict)
    removed: bool = False  # absent from the servers' set: kill, then forget
    heartbeat_stopped: bool = False  # stopped by the client itself (disconnect.stop_on_client_after)
    # Arrived with a terminal client status (a client whose state was lost):
    # never run, never reported, so the servers' status (lost, say) stands.
    quiet: bool = False
    # Finished, and its directory removed by the client's GC while the
    # servers still list it (Nomad's destroyed alloc runner).
    collected: bool = False
    # Deployment health (Nomad's allochealth tracker, task_states mode):
    # (MinHealthyTime s, the env.now() by which it must be healthy) while
    # undecided; then health is True or False, decided at health_at.
    health_rules: tuple[float, float] | None = None
    health: bool | None = None
    health_at: float = 0.0
    health_from: float = 0.0  # watched again (a new deployment) since then: MinHealthyTime runs from it
    # Service checks (actors.client.checks): the allocation's, those the
    # CheckRunner was last told to run (None: none running), whether its
    # deployment health waits for them (health_check = "checks" with a
    # healthiness check), and since when (env.now()) they all pass.
    checks: tuple[Any, ...] = ()
    checks_sent: tuple[Any, ...] | None = None
    health_checks: bool = False
    checks_healthy_since: float | None = None
    checks_failing: dict[str, float] = field(default_factory=dict)  # check_restart: check ID -> failing since
    stage: str = STAGES[0]  # its task lifecycle stage (see next_stage): which tasks may start
    ran: bool = False  # a task other than a poststop one has started: its poststop tasks run when it stops
    # The previous allocation (on this node) whose end this one waits for before its tasks start, then
    # to take over its ephemeral disk if sticky or migrate; "" once ended, or when there is none.
    prev_wait: str = ""
    # Waiting for a previous allocation on another node (migrate = true): "query" while the servers
    # are asked whether it is terminal (prev_req: the query in flight, prev_index: its min_index),
    # "fetch" while the migrator pulls its snapshot (migrate_run: that fetch), "done" once over.
    prev_remote: str = ""
    prev_req: int = 0
    prev_server: str = ""  # the server prev_req went to (PeerLost: it is asked again at once)
    prev_index: int = 0
    migrate_run: int = 0
    stop_why: str = ""  # why it is being stopped, while its leader task is killed before the others
    # A task of it failed (Nomad's TaskSiblingFailed, this its reason): its other tasks are being killed,
    # the leader first and the sidecars last (_kill_siblings), with no leader-dead or main-dead kill.
    sibling_failed: str = ""
    leader_ended: bool = False  # its leader task ended: every live task was told Leader Task Dead
    # The group's shutdown_delay: being waited out before its tasks are killed (shutdown_wait), or over.
    shutdown_wait: bool = False
    shutdown_waited: bool = False
    # The servers said to skip shutdown delays (Nomad's DesiredTransition.NoShutdownDelay: `job stop` or
    # `alloc stop` with -no-shutdown-delay): none is waited out, and one being waited out ends now.
    no_shutdown_delay: bool = False
    max_run_exceeded: bool = False  # its max_run_duration passed: its tasks are killed, and it is complete
    # What its spec's run settings (restarts, leader, shutdown delays, max_run) were parsed from
    # (_settings_key of that copy; None: not known): an in-place update with the same key changes none.
    settings_key: Any = None
    # (the alloc dict, its group's disconnect.stop_on_client_after in s or None), read on every heartbeat
    stop_after: tuple[dict[str, Any], float | None] | None = None

    @property
    def stopping(self) -> bool:
        """Its tasks are being ended for good: it is not to run, or its max_run_duration passed."""
        return not self.want_run or self.max_run_exceeded

    @property
    def want_run(self) -> bool:
        if self.spec is None or self.removed or self.quiet:
            return False
        return self.spec.desired == DESIRED_RUN

    def done(self) -> bool:
        return all(t.phase == P_DEAD for t in self.tasks.values())

    def update(self) -> AllocUpdate:
        if self.spec is None:
            return AllocUpdate(alloc_id=self.alloc_id, client_status=FAILED, client_description=self.invalid,
                               task_states=())
        states = [(n, self.tasks[n].state) for n in sorted(self.tasks)]
        status, desc = client_status([s for _, s in states])
        if self.max_run_exceeded:  # Nomad's clientAlloc: complete, whatever its tasks' states
            status, desc = COMPLETE, MAX_RUN_EXCEEDED
        if status == FAILED:
            why = [f"{n}: {t.fail_reason}" for n, t in sorted(self.tasks.items()) if t.fail_reason]
            if why:
                desc = f"{desc}: {'; '.join(why)}"
        return AllocUpdate(alloc_id=self.alloc_id, client_status=status, client_description=desc,
                           task_states=tuple(states), deployment_healthy=self.health,
                           deployment_ts=self.health_at,
                           deployment_id="" if self.health is None
                           else str(self.raw.get("DeploymentID") or ""))


# ------------------------------------------------------------ totals for ClientStats
@dataclass(frozen=True, slots=True)
class AllocTotalsQuery:
    """ClientStats -> AllocRunner: send me AllocTotals (local only); *tasks*: with each running task's usage."""

    reply_to: str
    tasks: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocTotals:
    """AllocRunner -> ClientStats: allocations by client status, and what the live ones hold."""

    pending: int = 0
    running: int = 0
    terminal: int = 0
    cpu_mhz: int = 0
    memory_mb: int = 0
    memory_max_mb: int = 0
    disk_mb: int = 0
    # Asked for: per running task (alloc ID, job, namespace, group, task, RSS bytes,
    # CPU percent, memory MB and CPU MHz it was given).
    tasks: tuple[tuple[str, str, str, str, str, int, float, int, int], ...] = ()


def alloc_totals(allocs: Iterable[tuple[dict[str, Any], str]]) -> AllocTotals:
    """AllocTotals of (server's allocation record, client status) pairs, as Nomad counts them.

    Pending, running and terminal (complete or failed) by client status;
    resources summed over the allocations neither the servers nor the client
    consider terminal.  An allocation's ``max_memory`` is its memory when it
    sets no higher ceiling (Nomad ``AllocatedMemoryResources.Add``).
    """
    pending = running = terminal = cpu = mem = mem_max = disk = 0
    for raw, status in allocs:
        if status == "pending":
            pending += 1
        elif status == "running":
            running += 1
        elif status in ("complete", "failed"):
            terminal += 1
        if status in ("complete", "failed", "lost") or raw.get("DesiredStatus", "run") != "run":
            continue
        r = raw.get("Resources") or {}
        cpu += int(r.get("CPU", 0))
        m = int(r.get("MemoryMB", 0))
        mem += m
        mem_max += int(r.get("MemoryMaxMB", 0)) or m
        disk += int(r.get("DiskMB", 0))
    return AllocTotals(pending=pending, running=running, terminal=terminal, cpu_mhz=cpu, memory_mb=mem,
                       memory_max_mb=mem_max, disk_mb=disk)


# ------------------------------------------------------------ the actor
class AllocRunner(NodeActor):
    """Runs this node's allocations through the drivers; see the module doc."""

    def __init__(self, env: Env, name: str, *, driver_registry: dict[str, Driver], state: AllocStateStore,
                 alloc_root: str, reporter: str, config: AllocRunnerConfig | None = None,
                 alloc_dirs: AllocDirs | None = None, checker: str | None = None,
                 fetcher: Any = None, migrator: Any = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        super().__init__(env, name)
        self.heartbeat_ok_at = 0.0  # when a heartbeat was last acknowledged (env.now(); see HeartbeatOk)
        # Unix seconds, for templates' timestamp (time.time in the agent); None: env.now (the
        # simulator's virtual time).
        self.wall_clock = wall_clock if wall_clock is not None else env.now
        # Pulls a previous allocation's ephemeral disk from another node (actors.client.disk_migrate's
        # HttpSnapshotFetcher in the agent); None: such a disk is not migrated (a Task Setup event).
        self.migrator = migrator
        self._prev_reqs: dict[int, str] = {}  # GetPrevAlloc req_id -> the allocation asking
        self._prev_next = 0
        self._migrate_runs = 0
        self.drivers = driver_registry
        # Fetches tasks' artifacts (actors.client.artifacts): runtime.artifacts.HttpArtifactFetcher
        # in the agent, SimArtifactFetcher in the simulator; None: a task with artifacts fails.
        self.fetcher = fetcher
        self._fetch_runs = 0
        # The CheckRunner actor that runs the allocations' service checks;
        # None: checks are not run (health_check = "checks" then means the task states).
        self.checker = checker
        # The node's values a task's config may name (NodeVars, from the ClientNode once it registers).
        self.node_vars: dict[str, str] = {}
        self._destroying: Destroy | None = None  # the agent's Destroy, answered once every task is dead
        # The servers the templates' data is read from, and who this node is (ServerLink, from AllocSync).
        self.link_node, self.link_secret, self.servers = "", "", []  # type: list[str]
        self._tmpl_reqs: dict[int, tuple[str, str]] = {}  # req_id -> (alloc, task)
        self._tmpl_next = 0
        self._watched: set[str] = set()  # the servers whose lost connections the runtime tells us of
        self._wid_reqs: dict[int, tuple[str, str]] = {}  # SignIdentities req_id -> (alloc, task)
        self.store = state
        self.alloc_root = alloc_root
        # Removes a forgotten allocation's directory (the agent passes
        # DiskAllocDirs); None keeps directories, for tests that inspect them.
        self.alloc_dirs = alloc_dirs
        self.reporter = reporter
        self.cfg = config or AllocRunnerConfig()
        # name -> (path, read_only): the node's host volumes (the config's, then NodeVars').
        self.host_volumes = {name: (path, ro) for name, path, ro in self.cfg.host_volumes}
        self.index = 0
        self.allocs: dict[str, _Alloc] = {}
        self._dirty: set[str] = set()
        # Some restored task waits for the servers' first word (restore_wait): the next allocation
        # update looks for them, and no later one need.
        self._restore_waiting = False
        self._reported: dict[str, AllocUpdate] = {}
        self._timers: dict[str, tuple[str, str, str]] = {}  # timer name -> (kind, alloc, task)
        self._waiters: dict[str, set[str]] = {}  # previous alloc ID -> allocations waiting for its end
        # RestartTasks replies set once their tasks were killed: (future, alloc ID, task names)
        self._restart_replies: list[tuple[Any, str, tuple[str, ...]]] = []
        self.stats = {"bad_allocs": 0, "stale_sets": 0, "starts": 0, "restarts": 0, "reattached": 0,
                      "persist_errors": 0, "driver_errors": 0, "reports": 0, "dirs_destroyed": 0,
                      "gc_collected": 0, "oom_killed": 0,  # oom_killed: Nomad's client.allocs.oom_killed
                      "exits_recorded": 0}  # tasks that ended while the client was down, exit recorded

    # ------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        # Nomad's heartbeatStop.watch: the client counts from its start until a first heartbeat.
        self.heartbeat_ok_at = self.env.now()
        try:
            records = self.store.load_all()
        except Exception as exc:  # a broken store must not stop the client; tasks then restart fresh
            log.error("%s: cannot load allocation state: %s", self.env.node, exc)
            records = {}
        for aid in sorted(records):
            try:
                self._restore(aid, records[aid])
            except Exception as exc:  # a corrupt record costs that allocation only
                self.stats["bad_allocs"] += 1
                log.error("%s: cannot restore allocation %s: %s; killing its tasks", self.env.node, aid, exc)
                self._kill_orphans(records[aid])
        if self.alloc_dirs is not None:
            self.set_timer("gc", self.cfg.gc_interval_s)
        self._arm_heartbeat_stop()
        self._flush()
        # Restarted by the agent's supervisor, it no longer knows its node and servers, which the
        # reporter sends only when the node registers.  (At the agent's start the reporter is not up
        # yet, or knows no node: nothing changes.)
        self.send(self.env.node, self.reporter, AllocRunnerStarted(self.name))

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, SetAllocs):
            self._set_allocs(message)
            self._flush()
        elif isinstance(message, TaskExited):
            self._exited(message)
            self._flush()
        elif isinstance(message, ArtifactsFetched):
            self._fetched(message)
            self._flush()
        elif isinstance(message, ScriptRan):
            self._script_ran(message)
            self._flush()
        elif isinstance(message, ChecksHealth):
            self._checks_health(message)
            self._flush()
        elif isinstance(message, CheckOutcome):
            self._check_outcome(message)
            self._flush()
        elif isinstance(message, CheckRunnerStarted) and message.name == self.checker:
            for a in self.allocs.values():  # it holds no watch: every allocation's checks again
                if a.checks_sent is not None:
                    a.checks_sent, a.checks_healthy_since = None, None
                    self._dirty.add(a.alloc_id)
            self._flush()
        elif isinstance(message, GetAllocStats):
            return self._stats(message.alloc_id)
        elif isinstance(message, AllocTotalsQuery):
            totals = alloc_totals((a.raw, a.update().client_status) for a in self.allocs.values()
                                  if a.spec is not None and not a.quiet and not a.collected)
            if message.tasks:
                totals = replace(totals, tasks=self._task_usage())
            self.send(self.env.node, message.reply_to, totals)
        elif isinstance(message, HeartbeatOk):
            self.heartbeat_ok_at = max(self.heartbeat_ok_at, message.at)
            self._arm_heartbeat_stop()
        elif isinstance(message, NodeVars):
            self.node_vars = dict(message.values)
            self.host_volumes = {name: (path, ro) for name, path, ro in message.host_volumes}
        elif isinstance(message, ServerLink):
            self._server_link(message)
            self._flush()
        elif isinstance(message, AllocSyncStarted) and message.name == self.reporter:
            # What it was told before is lost with it, and this runner reports only changes.
            self._reported.clear()
            self._dirty.update(self.allocs)
            self._flush()
        elif isinstance(message, TemplateDataResponse):
            self._template_data(message)
            self._flush()
        elif isinstance(message, PeerLost):
            self._peer_lost(message)
            self._flush()
        elif isinstance(message, SignIdentitiesResponse):
            self._signed(message)
            self._flush()
        elif isinstance(message, PrevAllocResponse):
            self._prev_answer(message)
            self._flush()
        elif isinstance(message, DiskMigrated):
            self._migrated(message)
            self._flush()
        elif isinstance(message, GetSnapshotSource):
            return self._snapshot_source(message)
        elif isinstance(message, Destroy):
            self._destroy_all(message)
            self._flush()
        elif isinstance(message, RestartTasks):
            error = self._operate(message.alloc_id, message.task, "restart", "", all_tasks=message.all_tasks)
            if message.reply is not None:
                if error:
                    message.reply.set(error)
                else:  # answered once the tasks it kills have exited (_answer_restarts, from _flush)
                    a = self.allocs[message.alloc_id]
                    killed = tuple(n for n in sorted(a.tasks) if a.tasks[n].restart_requested)
                    self._restart_replies.append((message.reply, message.alloc_id, killed))
            self._flush()
            return error
        elif isinstance(message, SignalTasks):
            error = self._operate(message.alloc_id, message.task, "signal", message.signal)
            self._flush()
            return error
        elif isinstance(message, GetTaskState):
            alloc = self.allocs.get(message.alloc_id)
            task = alloc.tasks.get(message.task) if alloc is not None else None
            return task.state.state if task is not None else ""
        elif isinstance(message, GetExecTarget):
            return self._exec_target(message.alloc_id, message.task)
        elif isinstance(message, GetAllocNamespace):
            alloc = self.allocs.get(message.alloc_id)
            return alloc.spec.namespace if alloc is not None and alloc.spec is not None else ""
        elif isinstance(message, CollectAlloc):
            error = self._collect_now(message.alloc_id)
            self._flush()
            return error
        elif isinstance(message, CollectAllAllocs):
            collected = tuple(a.alloc_id for a in self._finished()
                              if self.alloc_dirs is not None and self._collect(a, "forced collection"))
            self._flush()
            return collected
        elif message == "stats":
            return self._stats("")
        elif message == "allocs":
            return {aid: a.update() for aid, a in sorted(self.allocs.items())}
        elif message == "status":
            return {"allocs": len(self.allocs), "index": self.index, **self.stats}
        return None

    def _exec_target(self, alloc_id: str, task_name: str) -> ExecTarget:
        a = self.allocs.get(alloc_id)
        if a is None or a.spec is None or a.collected:
            return ExecTarget(found=False)
        t = a.tasks.get(task_name)
        if t is None:
            return ExecTarget(found=True, namespace=a.spec.namespace, job_id=a.spec.job_id)
        alloc_dir = posixpath.join(self.alloc_root, a.alloc_id)
        task_dir = posixpath.join(alloc_dir, t.spec.name)
        driver = self.drivers.get(t.spec.driver)
        chroot = getattr(driver, "fs_isolation", "") == FS_ISOLATION_CHROOT  # as the task saw them
        env = task_env(a.spec, t.spec, alloc_dir, task_dir, self.node_vars,
                       CHROOT_TASK_DIRS if chroot else None)
        env.update(t.tmpl_env)
        running = t.phase == P_RUNNING and t.handle is not None
        enter = ""
        if running and hasattr(driver, "enter_spec"):
            try:
                config = interpolate(t.spec.config, env, self.node_vars)
                spec = driver.enter_spec(t.handle, config, t.spec.user)
            except DriverError as exc:
                spec = {"error": str(exc)}
            enter = json.dumps(spec)
        return ExecTarget(found=True, namespace=a.spec.namespace, task_known=True, driver=t.spec.driver,
                          started=t.state.started_at > 0 or t.handle is not None,
                          running=running, task_dir=task_dir,
                          env=tuple(sorted(env.items())), user=t.spec.user, enter=enter,
                          job_id=a.spec.job_id, actions=t.spec.actions)

    def on_timer(self, name: str) -> None:
        if name == "heartbeat-stop":
            self._heartbeat_stop()
            self._flush()
        elif name == "poll":
            self._poll()
        elif name == "gc":
            self._gc_for_disk()
            self.set_timer("gc", self.cfg.gc_interval_s)
        else:
            key = self._timers.pop(name, None)
            if key is not None:
                kind, aid, task = key
                a = self.allocs.get(aid)
                t = a.tasks.get(task) if a is not None else None
                if kind == "health" and a is not None:
                    self._dirty.add(aid)  # _flush decides the allocation's health
                elif kind == "shutdown" and a is not None and not t:  # the group's shutdown_delay is over
                    a.shutdown_wait, a.shutdown_waited = False, True
                    self._dirty.add(aid)
                    if a.stopping:
                        self._stop_alloc(a, a.stop_why or "allocation is stopping")
                elif kind == "maxrun" and a is not None and not t:
                    self._max_run_over(a)
                elif kind == "prevq" and a is not None and a.prev_req:  # no answer: the next server
                    self._prev_lost(a)
                elif kind == "prevq_retry" and a is not None:
                    self._prev_query(a)
                elif kind == "migrate" and a is not None and a.migrate_run:
                    a.migrate_run = 0
                    self._migration_over(a, f"no answer within {self.cfg.migrate_timeout_s:g}s")
                elif a is not None and t is not None:
                    self._dirty.add(aid)
                    if kind == "restart":
                        self._restart_due(a, t)
                    elif kind == "kill":
                        self._escalate(a, t)
                    elif kind == "shutdown" and t.shutdown_kill is not None:  # its shutdown_delay is over
                        (ev, why), t.shutdown_kill = t.shutdown_kill, None
                        if t.phase == P_RUNNING:  # its Killing event came before the delay
                            self._end_task(a, t, ev, why, self.env.now(), silent=True)
                    elif kind == "tmpl" and t.tmpl_req:  # no answer: the next server, after a backoff
                        self._tmpl_reqs.pop(t.tmpl_req, None)
                        t.tmpl_req = 0
                        self._rotate()
                        self._tmpl_retry(a, t, "no answer from the server within "
                                         f"{self.cfg.template_wait_s + self.cfg.template_rpc_margin_s:g}s")
                    elif kind == "tmpl_retry":
                        self._tmpl_query(a, t)
                    elif kind == "wid" and t.wid_req:  # no answer: the next server, after a pause
                        self._wid_lost(a, t, "no answer from the server")
                    elif kind == "wid_retry" and (t.wid_wait or t.wid_adopt) and not t.wid_req \
                            and t.phase != P_DEAD:
                        self._wid_query(a, t)
                    elif kind == "wid_renew" and t.wid_ready and not t.wid_req and t.phase != P_DEAD:
                        self._wid_query(a, t)
                    elif kind == "tmpl_file":  # the files templates read: re-rendered if they changed
                        if t.tmpl_ready and t.phase != P_DEAD and t.tmpl_first_change is None:
                            self._rerender(a, t, self.env.now(), requery=False)
                        elif t.tmpl_ready and t.phase != P_DEAD:
                            self._set_task_timer("tmpl_file", a, t, self.cfg.template_file_poll_s)
                    elif kind == "tmpl_quiet":
                        t.tmpl_first_change = None
                        if t.tmpl_ready and t.phase != P_DEAD:
                            self._rerender(a, t, self.env.now())
                    elif kind == "tmpl_change":
                        self._template_change(a, t)
                    elif kind == "fetch" and t.fetch_run:
                        t.fetch_run = 0
                        why = f"no answer within {self.cfg.artifact_timeout_s:g}s per artifact"
                        self._fetch_failed(a, t, failure_message(t.spec.artifacts[t.artifacts_fetched].source,
                                                                 why), self.env.now())
        self._flush()

    # ------------------------------------------------------------ the servers' set
    def _set_allocs(self, m: SetAllocs) -> None:
        if m.index < self.index:
            self.stats["stale_sets"] += 1
            return
        self.index = m.index
        self._make_room(m.allocs)
        seen: set[str] = set()
        for raw in m.allocs:
            try:
                aid = alloc_id_of(raw)
            except AllocError as exc:
                self.stats["bad_allocs"] += 1
                log.warning("%s: dropping an allocation without a usable ID: %s", self.env.node, exc)
                continue
            if aid in seen:
                continue
            seen.add(aid)
            if aid not in self.allocs and len(self.allocs) >= self.cfg.max_allocs:
                self._add_invalid(aid, raw, f"client holds more than max_allocs={self.cfg.max_allocs}")
                continue
            try:
                self._apply(aid, raw)
            except Exception as exc:
                log.exception("%s: allocation %s could not be handled", self.env.node, aid)
                self._add_invalid(aid, raw, f"client error handling the allocation: {exc}")
        restore_waiting, self._restore_waiting = self._restore_waiting, False
        for aid in sorted(self.allocs):
            if restore_waiting:
                waiting = [t for t in self.allocs[aid].tasks.values() if t.restore_wait]
                for t in waiting:  # the servers answered: a task lost while the client was down may run
                    t.restore_wait = False
                if waiting and aid in seen:
                    self._coordinate(self.allocs[aid])
            if aid not in seen and not self.allocs[aid].removed:
                a = self.allocs[aid]
                a.removed = True
                self._stop_alloc(a, "allocation removed from the node")
                self._dirty.add(aid)

    def _apply(self, aid: str, raw: dict[str, Any]) -> None:
        a = self.allocs.get(aid)
        if a is None:
            try:
                spec = parse_alloc(raw, self.cfg)
            except AllocError as exc:
                self.stats["bad_allocs"] += 1
                self._add_invalid(aid, raw, f"invalid allocation: {exc}")
                return
            self._new_alloc(aid, raw, spec)
            return
        a.removed = False
        if a.spec is None:
            return  # malformed when it arrived: it stays failed
        desired = raw.get("DesiredStatus")
        index = raw.get("AllocModifyIndex", 0)
        if not isinstance(index, int) or index < a.spec.modify_index:
            return  # an older copy of the allocation
        transition = raw.get("DesiredTransition")
        if isinstance(transition, dict) and transition.get("NoShutdownDelay") is True \
                and not a.no_shutdown_delay:
            a.no_shutdown_delay = True
            self._skip_shutdown_delays(a)
        if desired in (DESIRED_STOP, DESIRED_EVICT) and a.spec.desired == DESIRED_RUN:
            a.raw = raw
            a.spec = _replace_desired(a.spec, desired, index)
            self._stop_alloc(a, f"allocation desired status is {desired}")
            self._dirty.add(aid)
        elif desired == DESIRED_RUN and index > a.spec.modify_index and a.spec.desired == DESIRED_RUN \
                and raw.get("ClientStatus") == "unknown":
            # The servers marked it unknown while this client could not reach them (Nomad's
            # allocRunner.Reconnect): each task records it, and its state is reported again.
            a.raw = raw
            a.spec = _replace_desired(a.spec, desired, index)
            now = self.env.now()
            for t in a.tasks.values():
                self._event(t, EV_RECONNECTED, now, "Client reconnected")
            self._dirty.add(aid)
        elif desired == DESIRED_RUN and index > a.spec.modify_index and a.spec.desired == DESIRED_RUN:
            # Updated in place (a new job version running the same tasks): keep the new record
            # (persisted as the allocation now is); its services' checks may have changed.
            moved = raw.get("DeploymentID") != a.raw.get("DeploymentID")
            a.raw = raw
            a.spec = _replace_desired(a.spec, desired, index)
            self._set_checks(a, raw)
            self._refresh_in_place(a, raw)
            if moved:
                self._watch_health_again(a, raw)
            self._dirty.add(aid)

    def _refresh_in_place(self, a: _Alloc, raw: dict[str, Any]) -> None:
        """An allocation updated in place: what its runner reads as it goes takes the new version's
        values, as Nomad's task runners' and hooks' Update do -- restart policies, leader, shutdown
        delays, max_run_duration (its deadline armed again).  The tasks keep running as they are."""
        assert a.spec is not None
        key = _settings_key(raw)
        if key is not None and key == a.settings_key:
            # The version changed nothing those settings are read from (a rescale changes the group's
            # count only): parsing it again would give what the runner already holds.
            self._cancel_alloc_timer("maxrun", a)
            self._arm_max_run(a)
            return
        try:
            new = parse_alloc(raw, self.cfg)
        except AllocError:
            return  # the servers validated it; a malformed copy changes nothing here
        a.settings_key = key
        a.spec = replace(a.spec, restart=new.restart, shutdown_delay_s=new.shutdown_delay_s,
                         max_run_s=new.max_run_s, create_time=new.create_time)
        for ts in new.tasks:
            t = a.tasks.get(ts.name)
            if t is not None:
                t.spec = replace(t.spec, restart=ts.restart, leader=ts.leader,
                                 shutdown_delay_s=ts.shutdown_delay_s)
        self._cancel_alloc_timer("maxrun", a)
        self._arm_max_run(a)

    def _stop_after_s(self, a: _Alloc) -> float | None:
        """The allocation's ``disconnect.stop_on_client_after`` (s) while it still runs here, else None."""
        if a.spec is None or a.removed or a.spec.desired != DESIRED_RUN or a.heartbeat_stopped or a.done():
            return None
        if a.stop_after is None or a.stop_after[0] is not a.raw:  # read once per copy of the allocation
            from actors.scheduler.disconnect import stop_on_client_after_s

            a.stop_after = (a.raw, stop_on_client_after_s(a.raw))
        return a.stop_after[1]

    def _arm_heartbeat_stop(self) -> None:
        """One timer at the earliest ``last heartbeat + stop_on_client_after`` of the allocations."""
        due = [self.heartbeat_ok_at + s for a in self.allocs.values()
               if (s := self._stop_after_s(a)) is not None]
        if due:
            self.set_timer("heartbeat-stop", max(0.0, min(due) - self.env.now()))
        else:
            self.cancel_timer("heartbeat-stop")

    def _heartbeat_stop(self) -> None:
        now = self.env.now()
        for aid in sorted(self.allocs):
            a = self.allocs[aid]
            s = self._stop_after_s(a)
            if s is not None and now >= self.heartbeat_ok_at + s:
                log.warning("%s: stopping allocation %s: no heartbeat acknowledged for %.0fs "
                            "(stop_on_client_after)", self.env.node, aid, now - self.heartbeat_ok_at)
                a.heartbeat_stopped = True
                self._stop_alloc(a, "stopped after the client lost contact with the servers")
                self._dirty.add(aid)
        self._arm_heartbeat_stop()

    def _add_invalid(self, aid: str, raw: Any, why: str) -> None:
        log.warning("%s: allocation %s failed: %s", self.env.node, aid, why)
        old = self.allocs.get(aid)
        if old is not None:
            self._stop_alloc(old, why)
            if not old.done():
                return  # leave it to finish dying; it is already tracked
        raw = raw if isinstance(raw, dict) else {}
        self.allocs[aid] = _Alloc(alloc_id=aid, raw=raw, spec=None, invalid=why)
        self._dirty.add(aid)

    def _new_alloc(self, aid: str, raw: dict[str, Any], spec: AllocSpec) -> None:
        a = _Alloc(alloc_id=aid, raw=raw, spec=spec, settings_key=_settings_key(raw))
        now = self.env.now()
        self._set_checks(a, raw)
        self._track_health(a, raw, now)
        for ts in spec.tasks:
            # Nomad's NewRestartTracker: the restart interval opens when the task runner is made (the
            # allocation received), not at the task's first exit.
            t = _Task(spec=ts, interval_start=now)
            self._event(t, EV_RECEIVED, now, "Task received by client")
            a.tasks[ts.name] = t
        self.allocs[aid] = a
        self._dirty.add(aid)
        if self._stop_after_s(a) is not None:  # Nomad's heartbeatStop.allocHook
            self._arm_heartbeat_stop()
        server_status = raw.get("ClientStatus")
        if server_status in (COMPLETE, FAILED, LOST):  # Nomad's shouldRun: terminal allocs never run
            a.quiet = True
            for name in sorted(a.tasks):
                why = f"Not run: the servers hold it as {server_status}"
                self._dead(a, a.tasks[name], EV_KILLED, why, now)
            return
        self._arm_max_run(a)
        if spec.desired != DESIRED_RUN:
            self._stop_alloc(a, f"allocation desired status is {spec.desired}")
        elif spec.previous_alloc:
            # Nomad's prevAllocWatcher: a replacement on the node of the allocation it replaces starts
            # once that one has ended (its ports, its resources), and then takes its ephemeral disk if
            # sticky or migrating.
            self._wait_for_previous(a, spec.previous_alloc)
        # Its tasks start in _flush, as their lifecycle stage allows (_coordinate).

    def _arm_max_run(self, a: _Alloc) -> None:
        """Nomad's max_run_duration hook: a batch allocation to run is ended at its CreateTime plus its
        group's max_run_duration (the servers' wall clock against this client's)."""
        if a.spec is None or a.spec.max_run_s <= 0 or not a.spec.create_time or a.stopping:
            return
        deadline = a.spec.create_time + a.spec.max_run_s
        self._set_alloc_timer("maxrun", a, max(0.0, deadline - self.wall_clock()))

    def _max_run_over(self, a: _Alloc) -> None:
        if a.spec is None or a.stopping or a.done():
            return
        assert a.spec.create_time and a.spec.max_run_s > 0
        if self.wall_clock() < a.spec.create_time + a.spec.max_run_s:
            self._arm_max_run(a)  # the wall clock stepped back: not yet
            return
        a.max_run_exceeded = True
        self._dirty.add(a.alloc_id)
        self._stop_alloc(a, MAX_RUN_EXCEEDED)

    # ------------------------------------------------------------ tasks
    def _start_task(self, a: _Alloc, t: _Task) -> None:
        assert a.spec is not None and t.handle is None
        now = self.env.now()
        driver = self.drivers.get(t.spec.driver)
        if driver is None:
            self._task_failed(a, t, EV_DRIVER_FAILURE, f"unknown driver {t.spec.driver!r}", now)
            return
        if not t.state.started_at and not t.state.restarts and not any(
                e.type == EV_SETUP and e.message == BUILDING_TASK_DIR for e in t.state.events):
            # Nomad's task_dir hook, once per task (Done after it; a restored task has it done).
            self._dirty.add(a.alloc_id)
            self._event(t, EV_SETUP, now, BUILDING_TASK_DIR)
        if a.spec.volumes:
            why = volume_hook_error(a.spec, t.spec, t.spec.driver,
                                    getattr(driver, "mount_configs", MOUNT_CONFIGS_NONE), self.host_volumes)
            if why:  # Nomad's prestart hook failure: not recoverable, the restart policy is not asked
                self._dirty.add(a.alloc_id)
                self._event(t, EV_HOOK_FAILED, now, f"volumes: {why}")
                self._after_exit(a, t, successful=False, recoverable=False, now=now, cause=why)
                return
        alloc_dir = posixpath.join(self.alloc_root, a.alloc_id)
        task_dir = posixpath.join(alloc_dir, t.spec.name)
        if t.spec.payload_file:  # Nomad's dispatch_payload hook: before the task starts, every start
            try:
                if self.alloc_dirs is None:
                    raise ValueError("this client keeps no allocation directories")
                self.alloc_dirs.write_task_file(a.alloc_id, t.spec.name, t.spec.payload_file, a.spec.payload)
            except (OSError, ValueError) as exc:
                self._start_failed(a, t, f"failed to write the dispatch payload: {exc}", False, now)
                return
        env = task_env(a.spec, t.spec, alloc_dir, task_dir, self.node_vars)
        if (t.spec.identity_env or t.spec.identity_file or t.spec.identities) and not t.wid_ready:
            t.wid_wait = True  # Nomad's identity hook: the task waits for its signed identities
            if not t.wid_req:
                self._wid_query(a, t)
            return
        if t.spec.identity_env:
            env[TOKEN_ENV] = t.wid_token
        for wid in t.spec.identities:  # the latest tokens: a restart after a renewal has the new ones
            if wid.env and wid.name in t.wid_named:
                env[f"{TOKEN_ENV}_{wid.name}"] = t.wid_named[wid.name][0]
        if t.artifacts_fetched < len(t.spec.artifacts):  # Nomad's artifact hook: until all are fetched
            self._fetch_artifacts(a, t, env, alloc_dir, task_dir, now)
            return
        policy = t.spec.restart or a.spec.restart
        if t.spec.templates and t.tmpl_ready and policy.render_templates \
                and t.tmpl_rendered_for != t.state.restarts:
            self._tmpl_reset(a, t)  # restart { render_templates = true }: a new template manager
        if t.spec.templates and not t.tmpl_ready:  # Nomad's template hook: until every one is rendered
            if not self._first_render(a, t, env, now):
                return
        if getattr(driver, "fs_isolation", "") == FS_ISOLATION_CHROOT:  # Nomad's task dir hook
            # the task's view of its directories, and its env values that name them (${NOMAD_TASK_DIR})
            env.update(task_env(a.spec, t.spec, alloc_dir, task_dir, self.node_vars, CHROOT_TASK_DIRS))
        env.update(t.tmpl_env)  # the env templates' variables, over the job's (Nomad's templateEnv)
        try:
            handle = driver.start(a.alloc_id, t.spec.name, interpolate(t.spec.config, env, self.node_vars),
                                  task_dir, env, user=t.spec.user, logs=t.spec.logs,
                                  # Limits from what was placed (Nomad's drivers.Resources), never
                                  # from env, which the job's env block and env templates can set.
                                  resources=TaskResources(cpu=t.spec.cpu, memory_mb=t.spec.memory_mb,
                                                          memory_max_mb=t.spec.memory_max_mb,
                                                          cores=t.spec.reserved_cores))
        except DriverError as exc:
            self._start_failed(a, t, str(exc), exc.recoverable, now)
            return
        except Exception as exc:
            self.stats["driver_errors"] += 1
            why = f"driver {t.spec.driver} failed: {type(exc).__name__}: {exc}"
            self._start_failed(a, t, why, False, now)
            return
        self.stats["starts"] += 1
        a.ran = a.ran or t.spec.hook != HOOK_POSTSTOP
        t.handle, t.phase, t.escalated = handle, P_RUNNING, False
        t.state = _state(t.state, state=TASK_RUNNING, started_at=now)
        self._event(t, EV_STARTED, now, "Task started by client")
        self._dirty.add(a.alloc_id)
        self._watch(a, t)

    # ------------------------------------------------------------ templates
    def _dirs(self, a: _Alloc, t: _Task) -> tuple[str, str, dict[str, str]]:
        assert a.spec is not None
        alloc_dir = posixpath.join(self.alloc_root, a.alloc_id)
        task_dir = posixpath.join(alloc_dir, t.spec.name)
        env = task_env(a.spec, t.spec, alloc_dir, task_dir, self.node_vars)
        return alloc_dir, task_dir, env

    def _render(self, a: _Alloc, t: _Task, env: dict[str, str]) -> Rendered:
        """Render the task's templates from the data fetched so far (actors.client.templates)."""
        assert a.spec is not None
        alloc_dir, task_dir, _ = self._dirs(a, t)
        # What the template's env functions read: the task's environment and the node's attributes
        # (Nomad's TaskEnv.All: `{{ env "node.unique.name" }}`, `{{ env "attr.kernel.name" }}`),
        # as the task sees it: a chroot driver's task has its directories at /alloc, /local, /secrets.
        tmpl_env = {**env, **self.node_vars}
        if getattr(self.drivers.get(t.spec.driver), "fs_isolation", "") == FS_ISOLATION_CHROOT:
            tmpl_env.update(task_env(a.spec, t.spec, alloc_dir, task_dir, self.node_vars, CHROOT_TASK_DIRS))

        def read_file(path: str) -> bytes:  # a template's file function: inside the task's directory
            if self.alloc_dirs is None:
                raise ValueError("this client keeps no allocation directories")
            return self.alloc_dirs.read_alloc_file(a.alloc_id, posixpath.relpath(path, alloc_dir),
                                                   self.cfg.template_source_max_bytes)
        if t.tmpl_sources is not None and t.tmpl_ready and any(s.once for s in t.spec.templates):
            # Nomad's once templates: rendered before the first start only; then the others alone
            # are rendered and watched, the once ones keeping what they wrote.
            watched = [i for i, s in enumerate(t.spec.templates) if not s.once]
            if not watched:
                return Rendered(outputs=t.tmpl_outputs)
            specs = tuple(t.spec.templates[i] for i in watched)
            r = render_task(specs, tuple(t.tmpl_sources[i] for i in watched),
                            tmpl_env, t.tmpl_data, a.spec.namespace, self.cfg.template_output_max_bytes,
                            denylist=self.cfg.template_function_denylist, clock=self.env.now,
                            wall_clock=self.wall_clock, read_file=read_file, sandbox=task_dir)
            if len(r.outputs) != len(watched):
                return r  # incomplete or failed: its outputs are not used
            outputs = list(t.tmpl_outputs)
            for i, text in zip(watched, r.outputs, strict=True):
                outputs[i] = text
            return replace(r, outputs=tuple(outputs))
        if t.tmpl_sources is not None:
            return render_task(t.spec.templates, t.tmpl_sources, tmpl_env, t.tmpl_data, a.spec.namespace,
                               self.cfg.template_output_max_bytes,
                               denylist=self.cfg.template_function_denylist, clock=self.env.now,
                               wall_clock=self.wall_clock, read_file=read_file, sandbox=task_dir)
        sources: list[str] = []
        for spec in t.spec.templates:
            if not spec.source:
                sources.append(spec.data)
                continue
            path = resolve_path(spec.source, env, alloc_dir, task_dir)
            try:
                if path is None or self.alloc_dirs is None:
                    raise ValueError("source escapes the allocation directory" if path is None else
                                     "this client keeps no allocation directories")
                raw = self.alloc_dirs.read_alloc_file(a.alloc_id, posixpath.relpath(path, alloc_dir),
                                                      self.cfg.template_source_max_bytes)
                sources.append(raw.decode("utf-8", "replace"))
            except (OSError, ValueError) as exc:
                return Rendered(error=f"failed to read template source {spec.source!r}: {exc}")
        t.tmpl_sources = tuple(sources)
        return render_task(t.spec.templates, t.tmpl_sources, tmpl_env, t.tmpl_data, a.spec.namespace,
                           self.cfg.template_output_max_bytes, denylist=self.cfg.template_function_denylist,
                           clock=self.env.now, wall_clock=self.wall_clock, read_file=read_file,
                           sandbox=task_dir)

    def _write_templates(self, a: _Alloc, t: _Task, r: Rendered, env: dict[str, str],
                         only: tuple[int, ...] | None = None) -> str:
        """Write the rendered templates (those in *only*) with their perms, and read the env ones
        back; "" or why not (Nomad's "Template failed: ..." reasons)."""
        alloc_dir, task_dir, _ = self._dirs(a, t)
        tmpl_env: dict[str, str] = {}
        for i, (spec, text) in enumerate(zip(t.spec.templates, r.outputs, strict=True)):
            if spec.env:
                try:
                    tmpl_env.update(parse_env(text))
                except ValueError as exc:
                    return (f"failed to read environment variables: error parsing env template "
                            f"{spec.dest!r}: {exc}")
            if only is not None and i not in only:
                continue
            dest = resolve_path(spec.dest, env, alloc_dir, task_dir)
            try:
                if dest is None:
                    raise ValueError("destination escapes allocation directory")
                if self.alloc_dirs is None:
                    raise ValueError("this client keeps no allocation directories")
                self.alloc_dirs.write_alloc_file(a.alloc_id, posixpath.relpath(dest, alloc_dir),
                                                 text.encode(), spec.perms, (spec.uid, spec.gid))
            except (OSError, ValueError) as exc:
                return f"failed writing template to {spec.dest!r}: {exc}"
        t.tmpl_env = tmpl_env
        t.tmpl_outputs = r.outputs
        return ""

    def _first_render(self, a: _Alloc, t: _Task, env: dict[str, str], now: float) -> bool:
        """Render before the task's first start: True once every template is written; otherwise the
        task waits for the servers' data (or failed: a template that cannot render kills it)."""
        r = self._render(a, t, env)
        if r.error:
            self._template_failed(a, t, r.error, now)
            return False
        if not r.complete:
            if r.missing:
                self._missing_event(t, r, now)
            t.tmpl_wait = True
            self._dirty.add(a.alloc_id)
            if not t.tmpl_req:
                self._tmpl_query(a, t, r.deps, blocking=not r.lacking)
            return False
        error = self._write_templates(a, t, r, env)
        if error:
            self._template_failed(a, t, error, now)
            return False
        _keep_read(t, r)
        t.tmpl_ready, t.tmpl_wait, t.tmpl_event = True, False, ""
        t.tmpl_rendered_for = t.state.restarts
        if any(s.once for s in t.spec.templates):  # what the others read is all that is watched
            r = self._render(a, t, env)
            _keep_read(t, r)
        if r.deps and not t.tmpl_req:  # watched from now on
            self._tmpl_query(a, t, r.deps, blocking=True)
        self._watch_files(a, t, r)
        return True

    def _tmpl_reset(self, a: _Alloc, t: _Task) -> None:
        """Forget what the task's templates read and rendered, as Nomad's template hook does on a restart
        with render_templates (it stops its template manager and starts a new one): the next render waits
        for fresh data from the servers and reads its source files again."""
        if t.tmpl_req:
            self._tmpl_reqs.pop(t.tmpl_req, None)
            t.tmpl_req = 0
        for kind in ("tmpl", "tmpl_retry", "tmpl_change", "tmpl_quiet", "tmpl_file"):
            self._cancel_task_timer(kind, a, t)
        t.tmpl_data, t.tmpl_index, t.tmpl_sources, t.tmpl_ready = {}, 0, None, False
        t.tmpl_change, t.tmpl_first_change, t.tmpl_retries, t.tmpl_event = None, None, 0, ""

    def _watch_files(self, a: _Alloc, t: _Task, r: Rendered, cost_s: float = 0.0) -> None:
        """Templates that read the client's files (file) look at them again after template_file_poll_s
        (or template_file_poll_cost_factor times *cost_s*, the time their rendering took, if longer)."""
        if r.files and f"tmpl_file/{a.alloc_id}/{t.spec.name}" not in self._timers:
            self._set_task_timer("tmpl_file", a, t, max(self.cfg.template_file_poll_s,
                                                        self.cfg.template_file_poll_cost_factor * cost_s))

    def _missing_event(self, t: _Task, r: Rendered, now: float) -> None:
        message = missing_message(r.missing)
        if message != t.tmpl_event:  # Nomad emits it again only when the set changes
            t.tmpl_event = message
            self._event(t, EV_TEMPLATE, now, message)

    def _template_failed(self, a: _Alloc, t: _Task, error: str, now: float) -> None:
        """Nomad's template manager: Kill with a TaskKilling event that fails the task."""
        log.info("%s: allocation %s task %s: template failed: %s", self.env.node, a.alloc_id[:8],
                 t.spec.name, error)
        self._dirty.add(a.alloc_id)
        t.tmpl_wait = False
        if t.phase in (P_RUNNING, P_KILLING):
            t.restart_requested, t.check_restart = False, ""
            t.kill_fails = f"Template failed: {error}"  # once it is dead, it is failed, not restarted
            if t.phase == P_RUNNING:
                self._end_task(a, t, EV_KILLING, t.kill_fails, now)
            else:  # already being killed: that kill ends it
                self._event(t, EV_KILLING, now, t.kill_fails)
        else:
            self._task_failed(a, t, EV_KILLING, f"Template failed: {error}", now)

    def _server_link(self, m: ServerLink) -> None:
        if not self.link_node:
            # The first link since this runner started: what it reported before (its restored
            # allocations, a health decided at restore) went out before the reporter was up -- the
            # agent starts this actor first -- and was lost.  Everything is reported again, as Nomad's
            # restored alloc runners send their state with the client's first allocation sync.
            self._reported.clear()
            self._dirty.update(self.allocs)
        self.link_node, self.link_secret = m.node_id, m.secret_id
        if sorted(m.servers) != sorted(self.servers):
            self.servers = list(m.servers)  # in the ClientNode's (shuffled) order
        for a in self.allocs.values():  # queries that waited for a server
            if a.prev_remote == "query" and not a.prev_req:
                self._prev_query(a)
            for t in a.tasks.values():
                if (t.tmpl_wait or t.tmpl_ready or t.tmpl_adopt) and not t.tmpl_req and t.phase != P_DEAD:
                    self._tmpl_query(a, t)
                if (t.wid_wait or t.wid_adopt) and not t.wid_req and t.phase != P_DEAD:
                    self._wid_query(a, t)

    def _rotate(self) -> None:
        if len(self.servers) > 1:
            self.servers.append(self.servers.pop(0))

    def _tmpl_query(self, a: _Alloc, t: _Task, deps: tuple[tuple[str, str], ...] | None = None, *,
                    blocking: bool = True) -> None:
        """Ask a server for the data the task's templates read (blocking on its index when *blocking*)."""
        self._cancel_task_timer("tmpl_retry", a, t)
        if t.tmpl_req:  # superseded: its answer, if it comes, is not waited for
            self._tmpl_reqs.pop(t.tmpl_req, None)
            t.tmpl_req = 0
            self._cancel_task_timer("tmpl", a, t)
        if deps is None:
            deps = tuple(t.tmpl_data) or self._render(a, t, self._dirs(a, t)[2]).deps
            blocking = all(d in t.tmpl_data for d in deps)
        if not deps and t.tmpl_adopt and t.phase == P_RUNNING:  # re-attached: nothing of the servers'
            self._adopt(a, t, self.env.now())  # to wait for (templates of files only): rendered now
            return
        if not deps or t.phase == P_DEAD or not self.servers or not self.link_node:
            return  # nothing to watch; or no server yet (ServerLink sends it)
        self._tmpl_next += 1
        t.tmpl_req = self._tmpl_next
        self._tmpl_reqs[t.tmpl_req] = (a.alloc_id, t.spec.name)
        wait = self.cfg.template_wait_s if blocking else 0.0
        t.tmpl_server = server = self._watched_server()
        self.send(server, ALLOC_ENDPOINT_NAME, GetTemplateData(
            req_id=t.tmpl_req, reply_node=self.env.node, reply_actor=self.name, node_id=self.link_node,
            secret_id=self.link_secret, alloc_id=a.alloc_id, task=t.spec.name, deps=tuple(deps),
            min_index=t.tmpl_index if blocking else 0, wait_s=wait))
        self._set_task_timer("tmpl", a, t, wait + self.cfg.template_rpc_margin_s)

    def _wid_query(self, a: _Alloc, t: _Task) -> None:
        """Ask a server to sign the task's workload identities (Nomad's Alloc.SignIdentities): its
        default and named ones before it first starts, then the named ones with a ttl (a renewal)."""
        if not self.servers or not self.link_node:
            if t.wid_ready:  # a renewal waits for a server as a failed one
                self._wid_renew_failed(a, t, "no server")
            return  # no server yet: ServerLink sends it
        if t.wid_ready:
            tasks, named = (), tuple((t.spec.name, w.name) for w in t.spec.identities if w.ttl_s > 0)
        else:
            tasks = (t.spec.name,) if t.spec.identity_env or t.spec.identity_file else ()
            named = tuple((t.spec.name, w.name) for w in t.spec.identities)
        if not tasks and not named:
            return
        self._tmpl_next += 1
        t.wid_req = self._tmpl_next
        self._wid_reqs[t.wid_req] = (a.alloc_id, t.spec.name)
        t.wid_server = self._watched_server()
        self.send(t.wid_server, ALLOC_ENDPOINT_NAME, SignIdentities(
            req_id=t.wid_req, reply_node=self.env.node, reply_actor=self.name, node_id=self.link_node,
            secret_id=self.link_secret, alloc_id=a.alloc_id, tasks=tasks, identities=named))
        self._set_task_timer("wid", a, t, self.cfg.identity_rpc_timeout_s)

    def _wid_renew_at(self, a: _Alloc, t: _Task) -> None:
        """Renew the task's expiring identities half their remaining lifetime on (plus up to 10%),
        no sooner than identity_renew_min_wait_s (plus up to a tenth of it): Nomad's ExpiryToRenewTime."""
        exps = [t.wid_named[w.name][1] for w in t.spec.identities if w.ttl_s > 0 and w.name in t.wid_named]
        if not exps or t.phase == P_DEAD:
            return
        half = (min(exps) - self.wall_clock()) / 2
        low = self.cfg.identity_renew_min_wait_s
        base = max(half, low)
        wait = base + self.env.rng.uniform(0, base / 10)
        self._set_task_timer("wid_renew", a, t, wait)

    def _wid_renew_failed(self, a: _Alloc, t: _Task, why: str) -> None:
        """A renewal failed: tried again after Nomad's backoff (min wait doubled per failure, capped)."""
        t.wid_renew_failures += 1
        low = self.cfg.identity_renew_min_wait_s
        wait = min(low * 2 ** min(t.wid_renew_failures, 40), self.cfg.identity_renew_max_backoff_s)
        wait += self.env.rng.uniform(0, low)
        log.warning("%s: renewing workload identities of %s/%s: %s (next in %.1fs)", self.env.node,
                    a.alloc_id[:8], t.spec.name, why, wait)
        if t.phase != P_DEAD:
            self._set_task_timer("wid_renew", a, t, wait)

    def _write_token(self, a: _Alloc, t: _Task, filepath: str, default_file: str, token: str) -> None:
        """Write *token* to the task directory's *filepath*, or its secrets/<default_file>: 0600 owned by
        the task's user (Nomad's users.WriteFileFor: an exec task runs as nobody by default; 0666 when
        that user cannot be found here); OSError or ValueError."""
        if self.alloc_dirs is None:
            raise ValueError("this client keeps no allocation directories")
        path = posixpath.join(t.spec.name, filepath) if filepath else \
            posixpath.join(t.spec.name, "secrets", default_file)
        user = t.spec.user or ("nobody" if t.spec.driver == "exec" else "")
        owner = self.alloc_dirs.user_ids(user) if user else None
        perms = TOKEN_FILE_PERMS if owner is not None or not user else 0o666
        self.alloc_dirs.write_alloc_file(a.alloc_id, path, token.encode(), perms, owner or (-1, -1))

    def _write_named(self, a: _Alloc, t: _Task, named: dict[str, tuple[str, int]]) -> None:
        """Write the named identities' tokens that have a file; a failure is told as a task event (Nomad
        logs it and carries on)."""
        for wid in t.spec.identities:
            if wid.file and wid.name in named:
                try:
                    self._write_token(a, t, wid.filepath, named_token_file(wid.name), named[wid.name][0])
                except (OSError, ValueError) as exc:
                    self._event(t, EV_TASK_HOOK_MESSAGE, self.env.now(),
                                f"identity: failed to write token for identity {wid.name!r}: {exc}")
                    self._dirty.add(a.alloc_id)

    def _renewed(self, a: _Alloc, t: _Task, named: dict[str, tuple[str, int]]) -> None:
        """Renewed tokens: written, kept for the task's next start, and each identity's change_mode applied
        to the running task (Nomad's identity hook: restart, or its signal; noop)."""
        self._write_named(a, t, named)
        t.wid_named.update(named)
        t.wid_renew_failures = 0
        changed = [w for w in t.spec.identities if w.name in named]
        now = self.env.now()
        if t.phase == P_RUNNING and t.handle is not None:  # else it starts with the new tokens anyway
            restart = next((w for w in changed if w.change_mode == "restart"), None)
            if restart is not None:
                self._dirty.add(a.alloc_id)
                t.restart_requested, t.restart_reason = True, f"Identity[{restart.name}]: new token acquired"
                self._event(t, EV_RESTART_SIGNALED, now, f"Identity[{restart.name}]: new token acquired")
                self._end_task(a, t, EV_KILLING, "Restarting", now, silent=True)
            else:
                for w in changed:
                    if w.change_mode == "signal":
                        self._dirty.add(a.alloc_id)
                        self._event(t, EV_SIGNALING, now, f"Identity[{w.name}]: new Identity token acquired")
                        self._signal(t, w.change_signal)
        self._wid_renew_at(a, t)

    def _answered_task(self, reqs: dict[int, tuple[str, str]], req_id: int,
                       field: str) -> tuple[_Alloc, _Task] | None:
        """The allocation and task a server's answer is for (its request taken off *reqs* and the task's
        *field*, the request in flight, cleared), or None when the task no longer waits for it."""
        key = reqs.pop(req_id, None)
        a = self.allocs.get(key[0]) if key else None
        t = a.tasks.get(key[1]) if a is not None and key else None
        if a is None or t is None or getattr(t, field) != req_id:
            return None
        setattr(t, field, 0)
        return a, t

    def _signed(self, m: SignIdentitiesResponse) -> None:
        """The task's signed identity: written to secrets/nomad_token (file = true), kept for NOMAD_TOKEN
        (env = true), and the task may start; a failure is asked again after identity_retry_s."""
        found = self._answered_task(self._wid_reqs, m.req_id, "wid_req")
        if found is None:
            return
        a, t = found
        self._cancel_task_timer("wid", a, t)
        if t.phase == P_DEAD or a.spec is None or not (t.wid_wait or t.wid_ready or t.wid_adopt):
            return
        named = {name: (jwt, exp) for task, name, jwt, exp in m.named if task == t.spec.name} if m.ok else {}
        if t.wid_ready:  # a renewal
            if not named:
                self._wid_renew_failed(a, t, m.error or "no tokens")
            else:
                self._renewed(a, t, named)
            return
        want_default = t.spec.identity_env or t.spec.identity_file
        token = dict(m.tokens).get(t.spec.name, "") if m.ok else ""
        if (want_default and not token) or len(named) < len(t.spec.identities):
            log.info("%s: workload identity for %s/%s: %s (retrying in %gs)", self.env.node, a.alloc_id[:8],
                     t.spec.name, m.error or "no token in the answer", self.cfg.identity_retry_s)
            if is_retryable(m.error) or m.error.startswith("stale"):
                self._rotate()
            self._set_task_timer("wid_retry", a, t, self.cfg.identity_retry_s)
            return
        if t.spec.identity_file:
            try:
                self._write_token(a, t, t.spec.identity_filepath, TOKEN_FILE, token)
            except (OSError, ValueError) as exc:
                self._dirty.add(a.alloc_id)
                if t.wid_adopt:  # it runs already: told, not failed
                    self._event(t, EV_TASK_HOOK_MESSAGE, self.env.now(),
                                f"identity: failed to write token: {exc}")
                else:
                    t.wid_wait = False
                    self._event(t, EV_HOOK_FAILED, self.env.now(), f"identity: failed to write token: {exc}")
                    self._after_exit(a, t, successful=False, recoverable=False, now=self.env.now(),
                                     cause=f"failed to write the workload identity: {exc}")
                    return
        self._write_named(a, t, named)
        t.wid_token, t.wid_named, t.wid_wait, t.wid_ready, t.wid_adopt = token, named, False, True, False
        self._dirty.add(a.alloc_id)  # its allocation's turn (_coordinate) starts it, in its lifecycle stage
        self._wid_renew_at(a, t)

    def _watched_server(self) -> str:
        """The server the next request goes to (the first of ours), watched: the runtime tells us when its
        connection ends (PeerLost), and what is in flight there is asked again without waiting out its
        timer."""
        server = self.servers[0]
        if server not in self._watched:
            self._watched.add(server)
            self.env.watch_peer(server, self.name)
        return server

    def _peer_lost(self, m: PeerLost) -> None:
        """The connection to a server ended (its process stopped or restarted): what this runner had in
        flight there fails now, not when its timer runs out -- a template query (template_wait_s plus a
        margin: it goes again after nomad_retry's backoff, as consul-template's blocking query sees its
        connection reset and retries at once), a query for a previous allocation on another node
        (migrate_wait_s plus a margin: asked again at once, of the next server) and a request to sign
        workload identities (identity_rpc_timeout_s: asked again after identity_retry_s)."""
        tasks = [(a, t) for _, a in sorted(self.allocs.items()) for _, t in sorted(a.tasks.items())]
        tmpl = [(a, t) for a, t in tasks if t.tmpl_req and t.tmpl_server == m.node]
        wid = [(a, t) for a, t in tasks if t.wid_req and t.wid_server == m.node]
        prev = [a for _, a in sorted(self.allocs.items()) if a.prev_req and a.prev_server == m.node]
        if (tmpl or wid or prev) and self.servers and self.servers[0] == m.node:
            self._rotate()
        why = f"connection to {m.node} lost: {m.reason}"
        for a, t in tmpl:
            self._tmpl_reqs.pop(t.tmpl_req, None)
            t.tmpl_req = 0
            self._cancel_task_timer("tmpl", a, t)
            self._tmpl_retry(a, t, why)
        for a, t in wid:
            self._cancel_task_timer("wid", a, t)
            self._wid_lost(a, t, why, rotate=False)
        for a in prev:
            self._cancel_alloc_timer("prevq", a)
            self._prev_lost(a, rotate=False)

    def _wid_lost(self, a: _Alloc, t: _Task, why: str, *, rotate: bool = True) -> None:
        """The request to sign the task's identities got no answer: the next server, after a pause (a
        renewal: after its backoff)."""
        self._wid_reqs.pop(t.wid_req, None)
        t.wid_req = 0
        if rotate:
            self._rotate()
        if t.wid_ready:
            self._wid_renew_failed(a, t, why)
        else:
            self._set_task_timer("wid_retry", a, t, self.cfg.identity_retry_s)

    def _prev_lost(self, a: _Alloc, *, rotate: bool = True) -> None:
        """The query for the previous allocation got no answer: asked again of the next server."""
        self._prev_reqs.pop(a.prev_req, None)
        a.prev_req = 0
        if rotate:
            self._rotate()
        self._prev_query(a)

    def _tmpl_retry(self, a: _Alloc, t: _Task, error: str) -> None:
        """A template data query failed: ask again after nomad_retry's backoff, or, its attempts spent,
        fail the task as Nomad does ("Template failed: <dependency>: <error>")."""
        if t.phase == P_DEAD:
            return
        cfg = self.cfg
        delay = retry_delay(t.tmpl_retries, cfg.template_retry_attempts, cfg.template_retry_backoff_s,
                            cfg.template_retry_max_backoff_s)
        if delay is None:
            assert a.spec is not None
            deps = tuple(t.tmpl_data) or self._render(a, t, self._dirs(a, t)[2]).deps
            name = dep_name(*deps[0], a.spec.namespace) + ": " if deps else ""
            t.tmpl_retries = 0
            self._template_failed(a, t, f"{name}{error}", self.env.now())
            return
        t.tmpl_retries += 1
        log.info("%s: template data for %s/%s: %s (retry attempt %d after %gs)", self.env.node,
                 a.alloc_id[:8], t.spec.name, error, t.tmpl_retries, delay)
        self._set_task_timer("tmpl_retry", a, t, delay)

    def _template_data(self, m: TemplateDataResponse) -> None:
        found = self._answered_task(self._tmpl_reqs, m.req_id, "tmpl_req")
        if found is None:
            return
        a, t = found
        self._cancel_task_timer("tmpl", a, t)
        if t.phase == P_DEAD or a.spec is None:
            return  # the watch ends with the task
        if not m.ok:
            log.info("%s: template data for %s/%s: %s", self.env.node, a.alloc_id[:8], t.spec.name, m.error)
            if m.error.startswith(TOO_MANY_DEPS):  # refused for good: asking again gets the same answer
                self._template_failed(a, t, m.error, self.env.now())
                return
            if is_retryable(m.error) or m.error.startswith("stale"):
                self._rotate()
            self._tmpl_retry(a, t, m.error)
            return
        try:
            rows = msgpack.unpackb(m.data, raw=False) if m.data else []
            data = {(str(k), str(arg)): (str(err), value) for k, arg, err, value in rows}
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            log.warning("%s: bad template data from a server: %s", self.env.node, exc)
            self._tmpl_retry(a, t, f"malformed answer from the server: {exc}")
            return
        t.tmpl_retries = 0  # consul-template's view: a successful contact resets its retries
        before = dict(t.tmpl_data)
        t.tmpl_data.update(data)
        t.tmpl_index = max(t.tmpl_index, m.index)
        now = self.env.now()
        self._dirty.add(a.alloc_id)
        if not t.tmpl_ready:
            if t.phase == P_PENDING and t.tmpl_wait:
                t.tmpl_wait = False
                self._start_task(a, t)  # renders again; starts it once nothing is lacking
            elif t.tmpl_adopt and t.phase == P_RUNNING:
                self._adopt(a, t, now)
            return
        if not data.items() <= before.items():  # wait { min, max }: render once the data settles
            first = t.tmpl_first_change if t.tmpl_first_change is not None else now
            delay = quiescence(t.spec.templates, first, now,
                               (self.cfg.template_quiet_min_s, self.cfg.template_quiet_max_s),
                               self.cfg.template_wait_bounds)
            if delay > 0:
                t.tmpl_first_change = first
                self._set_task_timer("tmpl_quiet", a, t, delay)
                self._tmpl_query(a, t, tuple(t.tmpl_data), blocking=True)
                return
        if t.tmpl_first_change is not None:
            return  # the quiescence timer renders it
        self._rerender(a, t, now)

    def _adopt(self, a: _Alloc, t: _Task, now: float) -> None:
        """A task re-attached after a client restart: its templates rendered and written as the data
        now is (Nomad's first render on restore: no change_mode), then watched."""
        _, _, env = self._dirs(a, t)
        r = self._render(a, t, env)
        if r.error:
            t.tmpl_adopt = False
            self._template_failed(a, t, r.error, now)
        elif not r.complete:
            if r.missing:
                self._missing_event(t, r, now)
            self._tmpl_query(a, t, r.deps, blocking=not r.lacking)
        else:
            error = self._write_templates(a, t, r, env)
            t.tmpl_adopt = False
            if error:
                self._template_failed(a, t, error, now)
                return
            _keep_read(t, r)
            t.tmpl_ready = True
            self._tmpl_query(a, t, r.deps, blocking=True)
            self._watch_files(a, t, r)

    def _rerender(self, a: _Alloc, t: _Task, now: float, *, requery: bool = True) -> None:
        """Data the task's templates read changed: write those whose rendering changed, then their
        change_mode (Nomad's handleTemplateRerenders), and watch again.  Without *requery* (a look at
        the files they read) the data query in flight stays, unless the templates now read more."""
        _, _, env = self._dirs(a, t)
        before = set(t.tmpl_data)
        started = self.env.now()
        r = self._render(a, t, env)
        self._watch_files(a, t, r, self.env.now() - started)
        if r.error:
            self._template_failed(a, t, r.error, now)
            return
        if not r.complete:  # a variable removed, or a new one read: the last rendering stays
            if r.missing:
                self._missing_event(t, r, now)
            if requery or not t.tmpl_req or r.lacking:
                self._tmpl_query(a, t, r.deps, blocking=not r.lacking)
            return
        t.tmpl_event = ""
        _keep_read(t, r)
        changed = tuple(i for i, (old, new) in enumerate(zip(t.tmpl_outputs, r.outputs, strict=True))
                        if old != new)
        if changed:
            error = self._write_templates(a, t, r, env, only=changed)
            if error:
                self._template_failed(a, t, error, now)
                return
            specs = [t.spec.templates[i] for i in changed]
            restart = any(s.change_mode == "restart" for s in specs)
            signals = tuple(sorted({s.change_signal for s in specs if s.change_mode == "signal"}))
            scripts = tuple(i for i in changed if t.spec.templates[i].change_mode == "script")
            if restart or signals or scripts:
                pending = t.tmpl_change or (False, (), ())
                t.tmpl_change = (pending[0] or restart, tuple(sorted(set(pending[1]) | set(signals))),
                                 tuple(sorted(set(pending[2]) | set(scripts))))
                splay = max(s.splay_s for s in specs if s.change_mode != "noop")
                if splay > 0:  # Nomad's splay: a random wait before the change_mode, so tasks differ
                    if f"tmpl_change/{a.alloc_id}/{t.spec.name}" not in self._timers:
                        self._set_task_timer("tmpl_change", a, t, self.env.rng.uniform(0, splay))
                else:
                    self._template_change(a, t)
        if requery or not t.tmpl_req or any(d not in before for d in r.deps):
            self._tmpl_query(a, t, r.deps, blocking=True)

    def _template_change(self, a: _Alloc, t: _Task) -> None:
        change, t.tmpl_change = t.tmpl_change, None
        if change is None:
            return
        restart, signals, scripts = change
        now = self.env.now()
        self._dirty.add(a.alloc_id)
        if t.phase != P_RUNNING or t.handle is None:
            for sig in signals:  # it starts again with the new files anyway
                self._event(t, EV_TASK_HOOK_MESSAGE, now,
                            f"Template skipped signal {sig}: task is not running")
            if not restart:
                for i in scripts:  # Nomad's Lifecycle.Exec: ErrTaskNotRunning, a failed script
                    self._script_ran(ScriptRan(a.alloc_id, t.spec.name, i, 0, TASK_NOT_RUNNING))
            return
        if restart:
            t.restart_requested, t.restart_reason = True, "Template re-rendered"
            self._event(t, EV_RESTART_SIGNALED, now, "Template with change_mode restart re-rendered")
            self._end_task(a, t, EV_KILLING, "Restarting", now, silent=True)
            return
        for sig in signals:
            self._event(t, EV_SIGNALING, now, "Template re-rendered")
            self._signal(t, sig)
        for i in scripts:
            self._run_script(a, t, i)

    def _run_script(self, a: _Alloc, t: _Task, index: int) -> None:
        """A template's change_script, run inside the task by its driver (as ``nomad alloc exec``);
        ScriptRan comes back when it ends -- the runner never waits on it."""
        script = t.spec.templates[index].script
        assert script is not None and t.handle is not None
        driver = self.drivers.get(t.handle.driver)
        run = getattr(driver, "exec_in_task", None)
        if run is None:
            self._script_ran(ScriptRan(a.alloc_id, t.spec.name, index, 0,
                                       f"driver {t.handle.driver} does not support exec"))
            return
        target = self._exec_target(a.alloc_id, t.spec.name)
        ref, key, pid = self.actor_ref, (a.alloc_id, t.spec.name, index), t.handle.pid
        if target.enter and "error" in json.loads(target.enter):
            self._script_ran(ScriptRan(*key, 0, str(json.loads(target.enter)["error"]), pid))
            return

        def notify(exit_code: int, error: str) -> None:
            # Called by the driver, from wherever the command ends: only a tell.
            try:
                ref.tell(ScriptRan(*key, exit_code, error, pid))
            except pykka.ActorDeadError:
                pass  # this runner is gone

        try:
            run(t.handle, script.command, script.args, script.timeout_s, notify, task_dir=target.task_dir,
                env=dict(target.env), user=target.user, enter=target.enter)
        except Exception as exc:  # a driver that cannot even start it: a failed script, not a dead runner
            self.stats["driver_errors"] += 1
            self._script_ran(ScriptRan(*key, 0, f"{type(exc).__name__}: {exc}", pid))

    def _script_ran(self, m: ScriptRan) -> None:
        """Nomad's processScript: a "Task hook message" when the script exited 0, else "Task hook
        failed" -- and with fail_on_error the task is killed, failed."""
        a = self.allocs.get(m.alloc_id)
        t = a.tasks.get(m.task) if a is not None else None
        if a is None or t is None or m.template >= len(t.spec.templates):
            return
        script = t.spec.templates[m.template].script
        if script is None:
            return
        now = self.env.now()
        self._dirty.add(a.alloc_id)
        cmd, args = script.command, go_args(script.args)
        if not m.error and m.exit_code == 0:
            self._event(t, EV_TASK_HOOK_MESSAGE, now, f"Template successfully ran script {cmd} with "
                        f"arguments: {args}. Exit code: 0")
            return
        if m.error:
            why = (f"Template failed to run script {cmd} with arguments {args} on change: {m.error}. "
                   f"Exit code: {m.exit_code}")
        else:
            why = (f"Template ran script {cmd} with arguments {args} on change but it exited with code: "
                   f"{m.exit_code}")
        log.info("%s: allocation %s task %s: %s", self.env.node, a.alloc_id[:8], t.spec.name, why)
        self._event(t, EV_HOOK_FAILED, now, why)
        same_run = t.handle is not None and (not m.pid or t.handle.pid == m.pid)
        if script.fail_on_error and same_run and t.phase in (P_RUNNING, P_KILLING) and not t.kill_fails:
            t.restart_requested, t.check_restart = False, ""
            t.kill_fails = SCRIPT_KILL_MESSAGE  # once it is dead, it is failed, not restarted
            if t.phase == P_RUNNING:
                self._end_task(a, t, EV_KILLING, t.kill_fails, now)
            else:
                self._event(t, EV_KILLING, now, t.kill_fails)

    # ------------------------------------------------------------ artifacts
    def _fetch_artifacts(self, a: _Alloc, t: _Task, env: dict[str, str], alloc_dir: str, task_dir: str,
                         now: float) -> None:
        """Ask the fetcher for the task's artifacts not fetched yet; _fetched goes on when it answers."""
        self._dirty.add(a.alloc_id)
        self._event(t, EV_DOWNLOADING, now, DOWNLOADING_MESSAGE)
        todo = []
        for spec in t.spec.artifacts[t.artifacts_fetched:]:
            source = interpolate(spec.source, env, self.node_vars)
            # Nomad's TaskEnv.ClientPath: an absolute path already inside the allocation's directory
            # (${NOMAD_TASK_DIR}/..., ${NOMAD_ALLOC_DIR}/...) is taken as it is; any other is joined
            # under the task's directory, as Go's filepath.Join.
            raw = interpolate(spec.dest, env, self.node_vars)
            dest = posixpath.normpath(raw)
            if not (posixpath.isabs(raw) and not escapes(alloc_dir, dest)):
                dest = posixpath.normpath(f"{task_dir}/{raw}")
            if escapes(alloc_dir, dest):
                why = "destination escapes allocation directory"
                self._fetch_failed(a, t, failure_message(source, why), now)
                return
            todo.append(ArtifactFetch(
                source=source, mode=spec.mode, dest=dest, root=alloc_dir,
                options=tuple((k, interpolate(v, env, self.node_vars)) for k, v in spec.options),
                headers=tuple((k, interpolate(v, env, self.node_vars)) for k, v in spec.headers),
                insecure=spec.insecure, chown_user=t.spec.user if spec.chown else ""))
        if self.fetcher is None:
            self._fetch_failed(a, t, failure_message(todo[0].source, "this client fetches no artifacts"), now,
                               recoverable=False)
            return
        c = self.cfg
        limits = FetchLimits(max_bytes=c.artifact_max_bytes, timeout_s=c.artifact_timeout_s,
                             max_unpacked_bytes=c.artifact_max_unpacked_bytes,
                             max_unpacked_files=c.artifact_max_unpacked_files)
        self._fetch_runs += 1
        t.fetch_run = self._fetch_runs
        ref, done, key = self.actor_ref, ArtifactsFetched, (a.alloc_id, t.spec.name, t.fetch_run)

        def notify(fetched: int, error: str) -> None:
            # Called by the fetcher, from wherever the fetch ends: only a tell.
            try:
                ref.tell(done(*key, fetched, error))
            except pykka.ActorDeadError:
                pass  # this runner is gone; its successor fetches what is missing again

        self._set_task_timer("fetch", a, t, c.artifact_timeout_s * len(todo) + c.artifact_fetch_grace_s)
        try:
            self.fetcher.fetch(tuple(todo), limits, notify)
        except Exception as exc:  # a fetcher that cannot even start is a failed download, not a dead runner
            t.fetch_run = 0
            self._cancel_task_timer("fetch", a, t)
            self._fetch_failed(a, t, failure_message(todo[0].source, f"{type(exc).__name__}: {exc}"), now)

    def _fetched(self, m: ArtifactsFetched) -> None:
        a = self.allocs.get(m.alloc_id)
        t = a.tasks.get(m.task) if a is not None else None
        if a is None or t is None or not t.fetch_run or t.fetch_run != m.run:
            return  # a fetch given up on, or of a task since stopped
        t.fetch_run = 0
        self._cancel_task_timer("fetch", a, t)
        self._dirty.add(a.alloc_id)
        total = len(t.spec.artifacts)
        t.artifacts_fetched = min(total, t.artifacts_fetched + max(0, m.fetched))
        now = self.env.now()
        if m.error or t.artifacts_fetched < total:
            source = t.spec.artifacts[min(t.artifacts_fetched, total - 1)].source
            self._fetch_failed(a, t, m.error or failure_message(source, "the fetcher stopped early"), now)
            return
        self._start_task(a, t)

    def _fetch_failed(self, a: _Alloc, t: _Task, error: str, now: float, *, recoverable: bool = True) -> None:
        """Nomad's TaskArtifactDownloadFailed; the restart policy rules on it as on a failed start."""
        log.info("%s: allocation %s task %s: %s", self.env.node, a.alloc_id[:8], t.spec.name, error)
        self._dirty.add(a.alloc_id)
        self._event(t, EV_DOWNLOAD_FAILED, now, error)
        self._after_exit(a, t, successful=False, recoverable=recoverable, now=now, cause=error)

    def _start_failed(self, a: _Alloc, t: _Task, error: str, recoverable: bool, now: float) -> None:
        self._event(t, EV_DRIVER_FAILURE, now, error)
        self._after_exit(a, t, successful=False, recoverable=recoverable, now=now, cause=error)

    def _on_exit(self, a: _Alloc, t: _Task, res: ExitResult, now: float) -> None:
        t.handle = None
        msg = f"Exit Code: {'unknown' if res.exit_code is None else res.exit_code}"
        if res.signal:
            msg += f", Signal: {res.signal}"
        if res.err:
            msg += f", Exit Message: {json.dumps(res.err, ensure_ascii=False)}"  # Nomad's %q
        # Nomad's emitExitResultEvent: the exit code, signal and whether the OOM killer acted.
        details = ((("exit_code", str(res.exit_code)),) if res.exit_code is not None else ()) + (
            ("signal", str(res.signal)), ("oom_killed", "true" if res.oom_killed else "false"))
        if res.err:
            details += (("exit_message", res.err),)
        if res.oom_killed:
            self.stats["oom_killed"] += 1
        self._event(t, EV_TERMINATED, now, msg, exit_code=res.exit_code, signal=res.signal,
                    details=tuple(sorted(details)))
        if t.phase == P_KILLING and t.restart_requested and a.want_run and not a.sibling_failed:
            # An operator's restart: start again now; the restart policy is not consulted.
            self._cancel_task_timer("kill", a, t)
            t.restart_requested = False
            t.state = _state(t.state, state=TASK_PENDING, restarts=t.state.restarts + 1, last_restart=now)
            t.restart_reason = ""  # a triggered restart: Nomad's tracker leaves the reason empty
            self._restarting_event(t, now, "", 0.0)
            self.stats["restarts"] += 1
            t.phase = P_PENDING
            if stage_starts(a.stage, t.spec):  # else _coordinate starts it in its turn (a restart of all)
                self._start_task(a, t)
            return
        t.restart_requested = False
        if t.phase == P_KILLING and t.check_restart and a.want_run:
            # Killed for a failing check: an exit the restart policy rules on, as a failure.
            self._cancel_task_timer("kill", a, t)
            why, t.check_restart = t.check_restart, ""
            self._after_exit(a, t, successful=False, recoverable=True, now=now, cause=why)
            return
        t.check_restart = ""
        if t.phase == P_KILLING and t.kill_fails:
            self._cancel_task_timer("kill", a, t)
            why, t.kill_fails = t.kill_fails, ""
            self._task_failed(a, t, EV_KILLED, why, now)
            return
        if t.phase == P_KILLING or t.shutdown_kill is not None or not self._may_run(a, t):
            self._cancel_task_timer("kill", a, t)
            self._dead(a, t, EV_KILLED, "Task successfully killed", now)
            return
        self._after_exit(a, t, successful=res.successful, recoverable=True, now=now, cause=msg)

    def _after_exit(self, a: _Alloc, t: _Task, *, successful: bool, recoverable: bool, now: float,
                    cause: str) -> None:
        """The restart policy's verdict on an exit or a start error."""
        assert a.spec is not None
        if not self._may_run(a, t):
            self._dead(a, t, EV_KILLED, "Task not restarted: allocation is stopping", now)
            return
        jitter = self.env.rng.random() * self.cfg.restart_jitter_fraction
        d = decide_restart(t.spec.restart or a.spec.restart, count=t.count, interval_start=t.interval_start,
                           now=now, successful=successful,
                           restart_on_success=restarts_on_success(a.spec.job_type, t.spec),
                           recoverable=recoverable, jitter=jitter)
        t.count, t.interval_start = d.count, d.interval_start
        if d.restart:
            t.phase, t.restart_at = P_RESTART_WAIT, now + d.delay_s
            t.state = _state(t.state, state=TASK_PENDING, restarts=t.state.restarts + 1, last_restart=now)
            self._restarting_event(t, now, d.reason, d.delay_s)
            self._set_task_timer("restart", a, t, d.delay_s)
        elif d.failed:
            # The event has the policy's reason, as Nomad's; the allocation's description adds the cause.
            self._task_failed(a, t, EV_NOT_RESTARTING, d.reason, now, cause=f"{d.reason} (last: {cause})")
        else:  # Nomad's TaskTerminated: dead without an event of its own (the reason is only logged)
            self._dead(a, t, "", d.reason, now)

    def _operate(self, alloc_id: str, task: str, op: str, signame: str, *, all_tasks: bool = False) -> str:
        """An operator's restart or signal of running tasks; "" or why not."""
        a = self.allocs.get(alloc_id)
        if a is None or a.removed:
            return f'Unknown allocation "{alloc_id}"'
        if task and task not in a.tasks:
            return f'Task "{task}" not found in allocation "{alloc_id}"'
        targets = [a.tasks[task]] if task else [a.tasks[n] for n in sorted(a.tasks)]
        running = [t for t in targets if t.phase == P_RUNNING and t.handle is not None]
        if op == "restart" and not task:  # Nomad's restartTasks (RestartRunning, RestartAll)
            if not a.want_run or a.update().client_status in (COMPLETE, FAILED, LOST):
                return ERR_ALLOC_SHOULD_NOT_RUN
            if not running:
                return ""  # each task's ErrTaskNotRunning is ignored
        if op == "signal":
            try:
                signal_number(signame)  # a name the driver would refuse fails the request, not the task
            except DriverError as exc:
                return str(exc)
        idle = []
        if op == "signal" and not task:  # Nomad's allocRunner.Signal: each task not running is an error
            idle = [f"Failed to signal task: {t.spec.name}, err: {ERR_TASK_NOT_RUNNING}"
                    for t in targets if t not in running]
            if not running:
                return _multi_error(idle)
        if not running or (task and not a.want_run):
            return ERR_TASK_NOT_RUNNING
        now = self.env.now()
        self._dirty.add(a.alloc_id)
        if all_tasks and op == "restart" and not task:
            self._restart_all(a, now)
            return ""
        for t in running:
            if op == "signal":
                self._event(t, EV_SIGNALING, now, f"Task being sent signal {signame}",
                            details=(("signal", signame),))  # Nomad's SetSignalText
                self._signal(t, signame)
            else:
                t.restart_requested = True
                # Nomad's client.RestartAllocation: its reason says whether one task or every running one
                why = "User requested task to restart" if task else "User requested running tasks to restart"
                self._event(t, EV_RESTART_SIGNALED, now, why, details=(("restart_reason", why),))
                self._end_task(a, t, EV_KILLING, "Restarting", now, silent=True)
        return _multi_error(idle) if idle else ""

    def _restart_all(self, a: _Alloc, now: float) -> None:
        """Nomad's RestartAll: the task coordinator starts over (so the prestart tasks run before the main
        ones again) and every task but the poststop ones restarts -- a running one once killed, one that
        ran and ended (an ephemeral prestart or poststart task) at once -- none counting against its
        restart policy."""
        a.stage = STAGES[0]
        for name in sorted(a.tasks):
            t = a.tasks[name]
            if t.spec.hook == HOOK_POSTSTOP:
                continue
            if t.phase == P_RUNNING and t.handle is not None:
                t.restart_requested = True
                self._event(t, EV_RESTART_SIGNALED, now, ALL_TASKS_WHY,
                            details=(("restart_reason", ALL_TASKS_WHY),))
                self._end_task(a, t, EV_KILLING, "Restarting", now, silent=True)
            elif t.phase == P_DEAD and not t.state.failed:
                self._event(t, EV_RESTART_SIGNALED, now, ALL_TASKS_WHY,
                            details=(("restart_reason", ALL_TASKS_WHY),))
                t.state = _state(t.state, state=TASK_PENDING, restarts=t.state.restarts + 1, last_restart=now,
                                 finished_at=0.0)
                self._restarting_event(t, now, "", 0.0)
                self.stats["restarts"] += 1
                t.phase = P_PENDING  # _coordinate starts it when its stage comes

    def _restart_due(self, a: _Alloc, t: _Task) -> None:
        if t.phase != P_RESTART_WAIT:
            return
        if not self._may_run(a, t):
            self._dead(a, t, EV_KILLED, "Task not restarted: allocation is stopping", self.env.now())
            return
        self.stats["restarts"] += 1
        t.phase = P_PENDING
        self._start_task(a, t)

    def _task_failed(self, a: _Alloc, t: _Task, ev: str, reason: str, now: float, *, cause: str = "") -> None:
        t.fail_reason = cause or reason
        self._dead(a, t, ev, reason, now, failed=True)
        if a.sibling_failed:
            self._kill_siblings(a, now)  # a second failure while the first one's kills go on
            return
        why = f'Task\'s sibling "{t.spec.name}" failed'  # Nomad's TaskSiblingFailed (Go's %q)
        a.sibling_failed = why
        for other in sorted(a.tasks):  # Nomad kills the siblings of a failed task; poststop ones still run
            sib = a.tasks[other]
            if sib is t or sib.spec.hook == HOOK_POSTSTOP:
                continue
            if sib.phase == P_RUNNING:  # Nomad: the kill event to every live task, then killTasks' kills
                self._event(sib, EV_SIBLING_FAILED, now, why)
            elif sib.phase != P_KILLING:
                self._end_task(a, sib, EV_SIBLING_FAILED, why, now, delay=True)
        self._kill_siblings(a, now)

    def _kill_siblings(self, a: _Alloc, now: float) -> None:
        """Nomad's killTasks after a task failed: the leader first (the others once it has ended), then
        the other tasks, and the sidecars last, once the rest are dead; poststop tasks run after."""
        why = a.sibling_failed
        live = [a.tasks[n] for n in sorted(a.tasks)
                if a.tasks[n].spec.hook != HOOK_POSTSTOP and a.tasks[n].phase != P_DEAD]
        leader = next((t for t in live if t.spec.leader), None)
        if leader is not None:
            if leader.phase == P_RUNNING:
                self._end_task(a, leader, EV_KILLING, why, now, delay=True, interrupt=True)
            return
        others = [t for t in live if not (t.spec.sidecar and t.spec.hook)]
        for t in others if others else live:
            if t.phase == P_RUNNING:
                self._end_task(a, t, EV_KILLING, why, now, delay=True, interrupt=True)

    def _dead(self, a: _Alloc, t: _Task, ev: str, message: str, now: float, *, failed: bool = False) -> None:
        self._cancel_task_timer("restart", a, t)
        self._cancel_task_timer("kill", a, t)
        self._cancel_task_timer("shutdown", a, t)
        t.shutdown_kill = None
        self._cancel_task_timer("fetch", a, t)
        t.fetch_run = 0  # a fetch in flight is no longer waited for
        t.tmpl_wait, t.tmpl_change = False, None  # nor template data (an answer then only ends the watch)
        t.wid_wait = t.wid_adopt = False  # nor its identity
        self._cancel_task_timer("wid_retry", a, t)
        self._cancel_task_timer("wid_renew", a, t)  # nor renewed: Nomad's identity hook stops with the task
        self._cancel_task_timer("tmpl_change", a, t)
        self._cancel_task_timer("tmpl_quiet", a, t)
        self._cancel_task_timer("tmpl_file", a, t)
        t.tmpl_first_change = None
        t.phase, t.handle = P_DEAD, None
        t.state = _state(t.state, state=TASK_DEAD, failed=failed or t.state.failed,
                         finished_at=t.state.finished_at or now)
        if ev == EV_NOT_RESTARTING and failed:  # Nomad's SetRestartReason(reason).SetFailsTask()
            self._event(t, ev, now, message, details=(("fails_task", "true"), ("restart_reason", message)))
        elif ev:
            self._event(t, ev, now, message)

    # ------------------------------------------------------------ task lifecycle
    def _may_run(self, a: _Alloc, t: _Task) -> bool:
        """The task may run (or be restarted): its allocation is to run, or it is a poststop task
        of a stopping allocation that ran (Nomad runs those after the others are killed)."""
        if a.max_run_exceeded:
            return False  # Nomad's max_run_duration: not even a poststop task starts
        if a.sibling_failed and t.spec.hook != HOOK_POSTSTOP:
            return False  # a task failed: the others are killed, never restarted (Nomad's killTasks)
        if a.want_run:
            return True
        return t.spec.hook == HOOK_POSTSTOP and a.ran and a.spec is not None and not a.removed and not a.quiet

    def _coordinate(self, a: _Alloc) -> None:
        """Start the tasks the allocation's lifecycle stage now allows, kill its sidecars once the
        other tasks are dead, and end the poststop tasks that will never run; until nothing changes."""
        if a.spec is None or a.quiet:
            return
        if a.prev_wait and not self._take_previous_disk(a):
            return  # its tasks wait for the previous allocation to end
        now = self.env.now()
        while True:
            a.stage = next_stage(a.stage, [(t.spec, t.state) for t in a.tasks.values()])
            live = [a.tasks[n] for n in sorted(a.tasks)
                    if a.tasks[n].spec.hook != HOOK_POSTSTOP and a.tasks[n].phase != P_DEAD]
            if a.sibling_failed and not a.stopping:
                self._kill_siblings(a, now)  # the next in Nomad's killTasks order, once the last are dead
                live = []
            if any(t.spec.leader and t.phase == P_DEAD and t.spec.hook != HOOK_POSTSTOP
                   for t in a.tasks.values()):
                # Its leader ended (Nomad's TaskLeaderDead), or was killed first as it stops: the
                # others are stopped, sidecars last (below, once the rest are dead).
                if not a.stopping and not a.leader_ended and not a.sibling_failed:
                    # Nomad's handleTaskStateUpdates tells every live task, sidecars too, at once.
                    a.leader_ended = True
                    for t in live:
                        if t.phase != P_KILLING and t.spec.sidecar and t.spec.hook:
                            self._event(t, EV_LEADER_DEAD, now, "Leader Task in Group dead")
                for t in live:
                    if t.phase == P_KILLING or (t.spec.sidecar and t.spec.hook):
                        continue
                    if not a.stopping:
                        self._event(t, EV_LEADER_DEAD, now, "Leader Task in Group dead")
                        self._end_task(a, t, EV_KILLING, "Leader Task in Group dead", now, delay=True,
                                       interrupt=True)
                    else:
                        why = a.stop_why or "allocation is stopping"
                        self._end_task(a, t, EV_KILLING, why, now, delay=True)
                live = [t for t in live if t.phase != P_DEAD]
            if live and all(t.spec.sidecar for t in live):  # Nomad's TaskMainDead
                for t in live:
                    if t.phase != P_KILLING:
                        if a.leader_ended:  # told Leader Task Dead already: killed last, for that
                            self._end_task(a, t, EV_KILLING, "Leader Task in Group dead", now, delay=True,
                                           interrupt=True)
                            continue
                        self._event(t, EV_MAIN_DEAD, now, "Main tasks in the group died")
                        self._end_task(a, t, EV_KILLING, "Main tasks dead", now, delay=True, interrupt=True)
            started = False
            for name in sorted(a.tasks):
                t = a.tasks[name]
                if t.phase != P_PENDING or t.fetch_run or t.tmpl_wait or t.wid_wait or t.restore_wait:
                    continue  # started, ended, waiting to restart, fetching artifacts, template data, identity
                if not self._may_run(a, t):
                    if t.spec.hook == HOOK_POSTSTOP:
                        self._end_task(a, t, EV_KILLING, "allocation is stopping before it ran", now)
                elif stage_starts(a.stage, t.spec):
                    self._start_task(a, t)
                    started = True
            if not started:
                return

    # ------------------------------------------------------------ ephemeral disk
    def _wait_for_previous(self, a: _Alloc, prev_id: str) -> None:
        a.prev_wait = prev_id
        self._waiters.setdefault(prev_id, set()).add(a.alloc_id)

    def _stop_waiting(self, a: _Alloc) -> None:
        waiting = self._waiters.get(a.prev_wait)
        if waiting is not None:
            waiting.discard(a.alloc_id)
            if not waiting:
                del self._waiters[a.prev_wait]
        a.prev_wait = ""

    def _take_previous_disk(self, a: _Alloc) -> bool:
        """Nomad's prevAllocWatcher and migrator: False while the previous allocation runs; once it has
        ended, with a sticky or migrating disk, its ``alloc/data`` and its tasks' ``local/`` move into
        *a*'s directory.  One on another node is waited for through the servers and, with ``migrate``,
        its disk pulled from that node (:meth:`_prev_query`, :meth:`_start_migration`); one that cannot
        be taken (collected, or no migrator) is a Task Setup event, and the tasks start all the same.
        An allocation told to stop waits no more."""
        assert a.spec is not None
        prev = self.allocs.get(a.prev_wait)
        local = prev is not None and prev.spec is not None
        if a.want_run and local and not prev.done():
            return False
        if a.want_run and not local and a.spec.migrate and self.migrator is not None \
                and a.prev_remote != "done":
            if not a.prev_remote:
                a.prev_remote = "query"
                self._prev_query(a)
            return False
        remote_done = a.prev_remote == "done"
        self._end_remote(a)
        prev_id = a.prev_wait
        self._stop_waiting(a)
        self._dirty.add(a.alloc_id)
        if not a.want_run or not (a.spec.sticky or a.spec.migrate) or remote_done:
            return True  # a remote migration said what became of it (_migration_over)
        now, short = self.env.now(), prev_id[:8]
        why = ""
        if prev is None or prev.spec is None:
            if a.spec.migrate:
                why = (f"Ephemeral disk of previous allocation {short} was not migrated: it ran on another "
                       "node, and this client migrates no data between nodes")
        elif prev.collected:
            why = f"Ephemeral disk of previous allocation {short} was not migrated: it was garbage collected"
        elif self.alloc_dirs is not None:
            try:
                moved = self.alloc_dirs.move_disk(prev_id, a.alloc_id, tuple(sorted(a.tasks)))
            except (OSError, ValueError) as exc:
                log.warning("%s: allocation %s: error migrating data from previous allocation %s: %s",
                            self.env.node, a.alloc_id, prev_id, exc)
                why = f"Failed to migrate the ephemeral disk of previous allocation {short}: {exc}"
            else:
                if not moved:
                    why = (f"Ephemeral disk of previous allocation {short} was not migrated: "
                           "its directory is gone")
        for name in sorted(a.tasks):
            if why:
                self._event(a.tasks[name], EV_SETUP, now, why)
        return True

    def _end_remote(self, a: _Alloc) -> None:
        """No more waiting for a previous allocation on another node: its query and fetch are let go."""
        if a.prev_req:
            self._prev_reqs.pop(a.prev_req, None)
            a.prev_req = 0
        a.migrate_run = 0
        for kind in ("prevq", "prevq_retry", "migrate"):
            self._cancel_alloc_timer(kind, a)
        if a.prev_remote != "done":
            a.prev_remote = ""

    def _prev_query(self, a: _Alloc) -> None:
        """Ask a server what became of the previous allocation (Nomad's remotePrevAlloc.Wait: a blocking
        Alloc.GetAlloc); sent once a server is known (ServerLink)."""
        self._cancel_alloc_timer("prevq_retry", a)
        if a.prev_req or a.prev_remote != "query" or not self.servers or not self.link_node:
            return
        self._prev_next += 1
        a.prev_req = self._prev_next
        self._prev_reqs[a.prev_req] = a.alloc_id
        wait = self.cfg.migrate_wait_s
        a.prev_server = self._watched_server()
        self.send(a.prev_server, ALLOC_ENDPOINT_NAME, GetPrevAlloc(
            req_id=a.prev_req, reply_node=self.env.node, reply_actor=self.name, node_id=self.link_node,
            secret_id=self.link_secret, alloc_id=a.alloc_id, min_index=a.prev_index, wait_s=wait))
        self._set_alloc_timer("prevq", a, wait + self.cfg.migrate_rpc_margin_s)

    def _prev_answer(self, m: PrevAllocResponse) -> None:
        aid = self._prev_reqs.pop(m.req_id, None)
        a = self.allocs.get(aid) if aid else None
        if a is None or a.prev_req != m.req_id:
            return
        a.prev_req = 0
        self._cancel_alloc_timer("prevq", a)
        if a.prev_remote != "query" or a.spec is None:
            return
        short = a.prev_wait[:8]
        if not m.ok:
            if m.error == "Permission denied":  # Nomad: "unable to read previous alloc; skipping migration"
                self._migration_over(a, f"Ephemeral disk of previous allocation {short} was not migrated: "
                                        f"unable to read previous alloc: {m.error}")
                return
            log.info("%s: previous allocation of %s: %s", self.env.node, a.alloc_id[:8], m.error)
            if is_retryable(m.error) or m.error.startswith("stale"):
                self._rotate()
            self._set_alloc_timer("prevq_retry", a, self.cfg.migrate_retry_s)
            return
        if not m.found:
            self._migration_over(a, f"Ephemeral disk of previous allocation {short} was not migrated: "
                                    "it was garbage collected")
            return
        if not m.terminal:  # wait on: the next answer once the allocations change
            if m.index <= a.prev_index:  # nothing moved (a wait that ended, or a server that cannot park it)
                self._set_alloc_timer("prevq_retry", a, self.cfg.migrate_retry_s)
                return
            a.prev_index = m.index
            self._prev_query(a)
            return
        if m.node_id == self.link_node:
            self._migration_over(a, f"Ephemeral disk of previous allocation {short} was not migrated: "
                                    "its directory is gone")
        elif not m.node_http_addr:
            self._migration_over(a, f"Failed to migrate the ephemeral disk of previous allocation {short}: "
                                    f'node "{m.node_id}" not found')
        else:
            self._start_migration(a, m)

    def _start_migration(self, a: _Alloc, m: PrevAllocResponse) -> None:
        """Have the migrator pull the previous allocation's snapshot from its node (Nomad's
        remotePrevAlloc.Migrate); _migrated goes on when it answers."""
        assert a.spec is not None
        now = self.env.now()
        self._migrate_runs += 1
        a.migrate_run, a.prev_remote = self._migrate_runs, "fetch"
        self._dirty.add(a.alloc_id)
        for name in sorted(a.tasks):
            self._event(a.tasks[name], EV_SETUP, now, f"Migrating the ephemeral disk of previous allocation "
                                                      f"{a.prev_wait[:8]} from node {m.node_id[:8]}")
        c = self.cfg
        req = SnapshotFetch(alloc_id=a.alloc_id, prev_alloc_id=a.prev_wait, node_addr=m.node_http_addr,
                            token=m.migrate_token, alloc_root=self.alloc_root, tasks=tuple(sorted(a.tasks)),
                            max_bytes=a.spec.disk_mb * 1024 * 1024, max_entries=c.migrate_max_entries,
                            timeout_s=c.migrate_timeout_s, io_timeout_s=c.migrate_io_timeout_s)
        ref, key = self.actor_ref, (a.alloc_id, a.migrate_run)

        def notify(error: str) -> None:
            # Called by the migrator, from wherever the fetch ends: only a tell.
            try:
                ref.tell(DiskMigrated(key[0], key[1], error))
            except pykka.ActorDeadError:
                pass  # this runner is gone; its successor asks again

        self._set_alloc_timer("migrate", a, c.migrate_timeout_s + c.migrate_fetch_grace_s)
        try:
            self.migrator.fetch(req, notify)
        except Exception as exc:  # a migrator that cannot even start is a failed migration
            a.migrate_run = 0
            self._cancel_alloc_timer("migrate", a)
            self._migration_over(a, f"Failed to migrate the ephemeral disk of previous allocation "
                                    f"{a.prev_wait[:8]}: {type(exc).__name__}: {exc}")

    def _migrated(self, m: DiskMigrated) -> None:
        a = self.allocs.get(m.alloc_id)
        if a is None or not a.migrate_run or a.migrate_run != m.run:
            return  # a fetch given up on, or of an allocation since stopped
        a.migrate_run = 0
        self._cancel_alloc_timer("migrate", a)
        short = a.prev_wait[:8]
        if m.error:
            log.warning("%s: allocation %s: error migrating data from previous allocation %s: %s",
                        self.env.node, a.alloc_id, a.prev_wait, m.error)
            self._migration_over(a, f"Failed to migrate the ephemeral disk of previous allocation {short}: "
                                    f"{m.error}")
        else:
            self._migration_over(a, "", f"Migrated the ephemeral disk of previous allocation {short}")

    def _migration_over(self, a: _Alloc, why: str, done: str = "") -> None:
        """The remote wait ended: *why* it did not bring the data ("" when it did; *done* then says so),
        as a Task Setup event on each task; _coordinate then starts them."""
        self._end_remote(a)
        a.prev_remote = "done"
        self._dirty.add(a.alloc_id)
        now = self.env.now()
        if why:
            why += "; the tasks start with an empty ephemeral disk"
        for name in sorted(a.tasks):
            if why or done:
                self._event(a.tasks[name], EV_SETUP, now, why or done)

    def _snapshot_source(self, m: GetSnapshotSource) -> tuple[int, str, tuple[str, ...]]:
        """Nomad's ValidateMigrateToken, then GetAllocFS: see GetSnapshotSource."""
        if m.check_token and not (self.link_secret and check_migrate_token(m.alloc_id, self.link_secret,
                                                                            m.token)):
            return 403, "Permission denied", ()
        a = self.allocs.get(m.alloc_id)
        if a is None or a.spec is None or a.collected:
            return 500, "allocation not found", ()
        return 200, "", tuple(sorted(a.tasks))

    # ------------------------------------------------------------ stopping
    def _stop_alloc(self, a: _Alloc, why: str) -> None:
        """Kill the allocation's tasks but its sidecars, which _coordinate kills once the others are
        dead (as Nomad's killTasks), and its poststop tasks, which then run."""
        now = self.env.now()
        delay = a.spec.shutdown_delay_s if a.spec is not None and not a.no_shutdown_delay else 0.0
        if delay > 0 and not a.shutdown_waited and any(
                t.phase == P_RUNNING for t in a.tasks.values() if t.spec.hook != HOOK_POSTSTOP):
            # Nomad's group service hook PreKill: its services are gone (the servers dropped them with
            # the stop); its tasks keep running for the group's shutdown_delay, then are killed.
            a.stop_why = why
            if not a.shutdown_wait:
                a.shutdown_wait = True
                self._set_alloc_timer("shutdown", a, delay)
            return
        leader = next((t for t in a.tasks.values() if t.spec.leader and t.spec.hook != HOOK_POSTSTOP), None)
        if leader is not None and leader.phase != P_DEAD:
            # Nomad's killTasks: the leader first; the others once it has ended (_coordinate).
            a.stop_why = why
            self._end_task(a, leader, EV_KILLING, why, now, delay=True)
            return
        for name in sorted(a.tasks):
            t = a.tasks[name]
            if t.spec.hook == HOOK_POSTSTOP or (t.spec.sidecar and t.spec.hook):
                continue
            self._end_task(a, t, EV_KILLING, why, now, delay=True)

    def _skip_shutdown_delays(self, a: _Alloc) -> None:
        """Nomad's shutdownDelayCancelFn: a group shutdown_delay being waited out ends now, and so does
        each task's (the task is killed at once)."""
        if a.shutdown_wait:
            self._cancel_alloc_timer("shutdown", a)
            a.shutdown_wait, a.shutdown_waited = False, True
            self._dirty.add(a.alloc_id)
            if a.stopping:
                self._stop_alloc(a, a.stop_why or "allocation is stopping")
        for name in sorted(a.tasks):
            t = a.tasks[name]
            if t.shutdown_kill is not None:
                self._cancel_task_timer("shutdown", a, t)
                (ev, why), t.shutdown_kill = t.shutdown_kill, None
                self._dirty.add(a.alloc_id)
                if t.phase == P_RUNNING:
                    self._end_task(a, t, ev, why, self.env.now(), silent=True)

    def _end_task(self, a: _Alloc, t: _Task, ev: str, why: str, now: float, *, delay: bool = False,
                  interrupt: bool = False, silent: bool = False) -> None:
        """Kill a running task (signal, then SIGKILL after its timeout); end one that is not running.

        *delay*: a kill, not a restart (Nomad's TaskRunner.Kill): a task with a shutdown_delay waits
        it out first (its services are already gone), as "pending".  *interrupt*: its Killing event
        is Nomad's killTasks' ("Sent interrupt. ..."), the reason having had its own event.  *silent*: no
        Killing event -- a restart's kill, after its Restart Signaled event (Nomad's restartImpl)."""
        self._dirty.add(a.alloc_id)
        if t.phase in (P_PENDING, P_RESTART_WAIT):
            self._dead(a, t, EV_KILLED, f"Task not running: {why}", now)
        elif t.phase == P_RUNNING and t.shutdown_kill is not None:
            return  # killed when its shutdown_delay is over
        elif t.phase == P_RUNNING and delay and t.spec.shutdown_delay_s > 0 and a.no_shutdown_delay:
            # Nomad's Kill with DesiredTransition.NoShutdownDelay: said, and not waited out.
            self._killing_event(t, ev, why, now, interrupt=interrupt)
            self._event(t, EV_SKIP_SHUTDOWN_DELAY, now, f"Skipping shutdown_delay of "
                        f"{go_duration(round(t.spec.shutdown_delay_s * 1e9))} before killing the task.")
            self._end_task(a, t, ev, why, now, silent=True)
        elif t.phase == P_RUNNING and delay and t.spec.shutdown_delay_s > 0:
            # Nomad's Kill: the Killing event at once, then the shutdown_delay's (its run loop's).
            t.shutdown_kill = (ev, why)
            self._killing_event(t, ev, why, now, interrupt=interrupt)
            t.state = _state(t.state, state=TASK_PENDING)
            self._event(t, EV_SHUTDOWN_DELAY, now, f"Waiting for shutdown_delay of "
                        f"{go_duration(round(t.spec.shutdown_delay_s * 1e9))} before killing the task.")
            self._set_task_timer("shutdown", a, t, t.spec.shutdown_delay_s)
        elif t.phase == P_RUNNING:
            assert t.handle is not None
            t.phase = P_KILLING
            if not silent:
                self._killing_event(t, ev, why, now, interrupt=interrupt)
            self._signal(t, t.spec.kill_signal)
            if not t.escalated:
                self._set_task_timer("kill", a, t, t.spec.kill_timeout_s)

    def _killing_event(self, t: _Task, ev: str, why: str, now: float, *, interrupt: bool) -> None:
        """Nomad's TaskKilling event: "Sent interrupt. Waiting 5s before force killing" when the
        allocation is stopped (or *interrupt*), else the kill's reason; kill_timeout (and kill_reason)
        in Details."""
        wait = format_duration(t.spec.kill_timeout_s)
        if interrupt or why.startswith(("allocation desired status is", "allocation removed from the node")):
            self._event(t, ev, now, f"Sent interrupt. Waiting {wait} before force killing",
                        details=(("kill_timeout", wait),))
        else:
            self._event(t, ev, now, why, details=(("kill_reason", why), ("kill_timeout", wait)))

    def _signal(self, t: _Task, signame: str) -> None:
        driver = self.drivers.get(t.handle.driver) if t.handle else None
        if driver is None or t.handle is None:
            return
        try:
            driver.signal(t.handle, signame)
        except Exception as exc:
            self.stats["driver_errors"] += 1
            log.warning("%s: %s on task %s failed (%s); killing it", self.env.node, signame, t.spec.name, exc)
            self._force_kill(t)

    def _escalate(self, a: _Alloc, t: _Task) -> None:
        if t.phase == P_KILLING and t.handle is not None:
            # No task event: Nomad's executor escalates silently, the Killed event follows the exit.
            log.info("%s: task %s outlived its kill timeout of %gs; SIGKILL", self.env.node, t.spec.name,
                     t.spec.kill_timeout_s)
            self._force_kill(t)
            self._arm_poll()  # SIGKILL again until it is gone

    def _force_kill(self, t: _Task) -> None:
        driver = self.drivers.get(t.handle.driver) if t.handle else None
        t.escalated = True
        if driver is None or t.handle is None:
            return
        try:
            driver.kill(t.handle)
        except Exception as exc:
            self.stats["driver_errors"] += 1
            log.warning("%s: SIGKILL of task %s failed: %s", self.env.node, t.spec.name, exc)

    # ------------------------------------------------------------ polling
    def _arm_poll(self) -> None:
        if not self.timer_armed("poll"):
            self.set_timer("poll", self.cfg.poll_interval_s)

    def _poll(self) -> None:
        now = self.env.now()
        live = False
        for aid in sorted(self.allocs):
            a = self.allocs[aid]
            for name in sorted(a.tasks):
                t = a.tasks[name]
                if t.handle is None or (t.watched and not t.escalated):
                    continue  # nothing runs, or its driver tells us when it exits
                res = self._poll_task(t)
                if res is not None:
                    self._dirty.add(aid)
                    self._on_exit(a, t, res, now)
                    continue
                if t.phase == P_KILLING and t.escalated:
                    self._force_kill(t)  # SIGKILL again until it is gone
                live = True
        if live:
            self._arm_poll()

    def _watch(self, a: _Alloc, t: _Task) -> None:
        """Ask the task's driver to tell us when this run exits; poll if it cannot."""
        assert t.handle is not None
        h = t.handle
        watch = getattr(self.drivers.get(h.driver), "watch", None)
        t.watched = False
        if watch is not None:
            seen = TaskExited(a.alloc_id, t.spec.name, h.pid, h.start_time)
            notify = functools.partial(self._tell_exited, seen)
            try:
                t.watched = bool(watch(h, notify))
            except Exception as exc:
                self.stats["driver_errors"] += 1
                log.warning("%s: watching task %s failed, polling it: %s", self.env.node, t.spec.name, exc)
        if not t.watched:
            self._arm_poll()

    def _tell_exited(self, m: TaskExited) -> None:
        # Called by the driver, from wherever it sees the exit: only a tell.
        try:
            self.actor_ref.tell(m)
        except pykka.ActorDeadError:
            pass  # this runner is gone; its successor re-attaches and watches again

    def _exited(self, m: TaskExited) -> None:
        a = self.allocs.get(m.alloc_id)
        t = a.tasks.get(m.task) if a is not None else None
        h = t.handle if t is not None else None
        if a is None or t is None or h is None or (h.pid, h.start_time) != (m.pid, m.start_time):
            return  # an earlier run of the task, handled already
        res = self._poll_task(t)
        if res is not None:
            self._dirty.add(a.alloc_id)
            self._on_exit(a, t, res, self.env.now())

    def _poll_task(self, t: _Task) -> ExitResult | None:
        assert t.handle is not None
        driver = self.drivers.get(t.handle.driver)
        if driver is None:
            return ExitResult(exit_code=None, err=f"driver {t.handle.driver!r} is gone")
        try:
            return driver.poll(t.handle)
        except Exception as exc:
            self.stats["driver_errors"] += 1
            log.warning("%s: polling task %s failed: %s", self.env.node, t.spec.name, exc)
            return None

    def _task_usage(self) -> tuple[tuple[str, str, str, str, str, int, float, int, int], ...]:
        """Each running task's resource use (its driver's stats) and allocation, for AllocTotals."""
        out = []
        for aid, tasks in self._stats("").items():
            spec = self.allocs[aid].spec
            if spec is None:
                continue
            given = {t.name: t for t in spec.tasks}
            for name, s in tasks.items():
                t = given.get(name)
                if not s or t is None:
                    continue  # gone, or not reported by its driver
                out.append((aid, spec.job_id, spec.namespace, spec.group, name, int(s.get("rss_bytes", 0)),
                            float(s.get("cpu_percent", 0.0)), t.memory_mb, t.cpu))
        return tuple(out)

    def _stats(self, only: str) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for aid in sorted(self.allocs):
            if only and aid != only:
                continue
            for name, t in sorted(self.allocs[aid].tasks.items()):
                driver = self.drivers.get(t.handle.driver) if t.handle else None
                if driver is None or t.handle is None:
                    continue
                try:
                    s = driver.stats(t.handle)
                except Exception:
                    s = {}
                out.setdefault(aid, {})[name] = s
        return out

    # ------------------------------------------------------------ timers per task
    def _set_task_timer(self, kind: str, a: _Alloc, t: _Task, delay_s: float) -> None:
        name = f"{kind}/{a.alloc_id}/{t.spec.name}"
        self._timers[name] = (kind, a.alloc_id, t.spec.name)
        self.set_timer(name, delay_s)

    def _cancel_task_timer(self, kind: str, a: _Alloc, t: _Task) -> None:
        name = f"{kind}/{a.alloc_id}/{t.spec.name}"
        if self._timers.pop(name, None) is not None:
            self.cancel_timer(name)

    def _restarting_event(self, t: _Task, now: float, reason: str, delay_s: float) -> None:
        """Nomad's ``Restarting`` event: ``RestartReason`` and ``StartDelay`` (ns) in its details too."""
        self._event(t, EV_RESTARTING, now, restarting_message(reason, delay_s),
                    details=(("restart_reason", reason), ("start_delay", str(round(delay_s * 1e9)))))

    def _event(self, t: _Task, typ: str, now: float, message: str, *, exit_code: int | None = None,
               signal: int = 0, details: tuple[tuple[str, str], ...] = ()) -> None:
        ev = TaskEvent(type=typ, time=now, message=message, exit_code=exit_code, signal=signal,
                       details=details)
        t.state = _state(t.state, events=(*t.state.events, ev)[-self.cfg.max_events:])

    # ------------------------------------------------------------ deployment health
    def _track_health(self, a: _Alloc, raw: dict[str, Any], now: float,
                      deadline_at: float | None = None) -> None:
        """Start deciding the allocation's health (Nomad's health hook and allochealth tracker).

        Tracked when the servers do not hold its health already and it is a
        deployment's allocation whose group checks health on the client
        (``update.health_check`` ``checks`` or ``task_states``; with no
        service checks both mean the task states), or a service or system
        allocation outside a deployment, decided by its group's ``migrate``
        block (see _health_strategy).
        """
        rules = health_rules(raw)
        if rules is None or a.quiet:
            return
        min_s, deadline_s = rules
        a.health_rules = (min_s, now + deadline_s if deadline_at is None else deadline_at)
        self._set_alloc_timer("health", a, max(0.0, a.health_rules[1] - now))

    def _watch_health_again(self, a: _Alloc, raw: dict[str, Any]) -> None:
        """Updated in place into another deployment: its health is decided again, for the new one
        (Nomad's health hook on an update whose DeploymentID changed: a new tracker, whose
        MinHealthyTime runs from now, however long the tasks have run)."""
        self._cancel_alloc_timer("health", a)
        self._cancel_alloc_timer("health_due", a)
        now = self.env.now()
        a.health, a.health_at, a.health_rules, a.health_from = None, 0.0, None, now
        self._track_health(a, raw, now)

    def _check_health(self, a: _Alloc) -> None:
        """Healthy once every task has run for MinHealthyTime since its last start; unhealthy when a
        task failed or ended, or at HealthyDeadline.  Decided once.  As Nomad's tracker, poststop
        tasks do not count, nor an ephemeral poststart task that succeeded, and an ephemeral
        prestart task that succeeded counts as started, not as ended."""
        assert a.health_rules is not None
        if a.spec is None or a.removed or a.spec.desired != DESIRED_RUN:
            a.health_rules = None  # stopping: nothing to decide
            self._cancel_alloc_timer("health", a)
            return
        now = self.env.now()
        min_s, deadline_at = a.health_rules
        tasks = [t for t in a.tasks.values() if _counts_for_health(t)]
        decided: bool | None = None
        if any(t.state.failed or (t.phase == P_DEAD and task_kind(t.spec) != HOOK_PRESTART) for t in tasks):
            decided = False
        elif all(t.phase in (P_RUNNING, P_DEAD) for t in tasks) and (not a.health_checks or
                                                                      a.checks_healthy_since is not None):
            # With checks, they too must have passed for MinHealthyTime (Nomad's tracker
            # wants tasks running and checks passing, together, that long).
            since = max(a.health_from, *(t.state.started_at for t in tasks))
            if a.health_checks and a.checks_healthy_since is not None:
                since = max(since, a.checks_healthy_since)
            due = since + min_s
            if now >= due:
                decided = True
            elif due < deadline_at:
                self._set_alloc_timer("health_due", a, due - now)
        if decided is None and now >= deadline_at:
            decided = False
        if decided is None:
            return
        a.health, a.health_at, a.health_rules = decided, now, None
        self._cancel_alloc_timer("health", a)
        self._cancel_alloc_timer("health_due", a)
        if not decided:
            log.info("%s: allocation %s is unhealthy%s", self.env.node, a.alloc_id,
                     " for its deployment" if a.raw.get("DeploymentID") else "")

    # ------------------------------------------------------------ service checks
    def _set_checks(self, a: _Alloc, raw: dict[str, Any]) -> None:
        if self.checker is None:
            return
        a.checks = alloc_checks(raw)
        a.health_checks = health_uses_checks(raw) and any(c.mode == HEALTHINESS for c in a.checks)

    def _sync_checks(self, a: _Alloc) -> None:
        """Tell the CheckRunner to run the allocation's checks while it is set to run, and to stop after."""
        want = bool(a.checks) and a.want_run and not a.done()
        if want and a.checks_sent != a.checks:
            a.checks_sent = a.checks
            a.checks_healthy_since = None
            self.send(self.env.node, self.checker, WatchChecks(a.alloc_id, a.checks, self.name))
        elif not want and a.checks_sent is not None:
            a.checks_sent, a.checks_healthy_since = None, None
            self.send(self.env.node, self.checker, UnwatchChecks(a.alloc_id))

    def _checks_health(self, m: ChecksHealth) -> None:
        a = self.allocs.get(m.alloc_id)
        if a is None or a.checks_sent is None:
            return  # stopped meanwhile
        if not m.healthy:
            a.checks_healthy_since = None
        elif a.checks_healthy_since is None:
            a.checks_healthy_since = self.env.now()
        self._dirty.add(a.alloc_id)

    def _check_outcome(self, m: CheckOutcome) -> None:
        """check_restart (Nomad's checkRestart.apply): restart the check's task once the check has
        failed ``limit`` times in a row, ``interval * (limit - 1)`` after the first failure counted;
        failures within ``grace`` of the task's (re)start do not count."""
        a = self.allocs.get(m.alloc_id)
        spec = next((c for c in a.checks if c.id == m.check_id), None) if a is not None else None
        if a is None or spec is None or not a.want_run:
            return
        names = [spec.restart_task] if spec.restart_task in a.tasks else sorted(a.tasks)
        running = [a.tasks[n] for n in names
                   if a.tasks[n].phase == P_RUNNING and a.tasks[n].handle is not None]
        if m.ok or not running:
            a.checks_failing.pop(m.check_id, None)
            return
        now = self.env.now()
        started = max(t.state.started_at for t in running)
        since = a.checks_failing.get(m.check_id)
        if since is None or since < started:  # not failing yet, or since before a restart: count anew
            if now < started + spec.restart_grace_s:
                a.checks_failing.pop(m.check_id, None)
                return
            a.checks_failing[m.check_id] = since = now
        if now < since + spec.interval_s * (spec.restart_limit - 1):
            return
        del a.checks_failing[m.check_id]
        why = f"healthcheck: check {json.dumps(spec.name, ensure_ascii=False)} unhealthy"  # Go's %q
        log.info("%s: allocation %s: restarting %s: %s", self.env.node, a.alloc_id[:8],
                 ", ".join(t.spec.name for t in running), why)
        self._dirty.add(a.alloc_id)
        for t in running:
            t.check_restart = why
            self._event(t, EV_RESTART_SIGNALED, now, why)
            self._end_task(a, t, EV_KILLING, "Restarting", now, silent=True)

    def _set_alloc_timer(self, kind: str, a: _Alloc, delay_s: float) -> None:
        name = f"{kind}/{a.alloc_id}/"
        self._timers[name] = ("health" if kind.startswith("health") else kind, a.alloc_id, "")
        self.set_timer(name, delay_s)

    def _cancel_alloc_timer(self, kind: str, a: _Alloc) -> None:
        name = f"{kind}/{a.alloc_id}/"
        if self._timers.pop(name, None) is not None:
            self.cancel_timer(name)

    # ------------------------------------------------------------ persist, then report
    def _answer_restarts(self) -> None:
        """Set each RestartTasks reply whose tasks are no longer being killed for it (or whose
        allocation is gone)."""
        waiting = []
        for reply, alloc_id, names in self._restart_replies:
            a = self.allocs.get(alloc_id)
            if a is not None and any(n in a.tasks and a.tasks[n].restart_requested for n in names):
                waiting.append((reply, alloc_id, names))
            else:
                reply.set("")
        self._restart_replies = waiting

    def _flush(self) -> None:
        if self._restart_replies:
            self._answer_restarts()
        dirty = sorted(self._dirty)
        self._dirty.clear()
        if self._waiters:
            # An allocation waiting for one that just ended goes first: it takes the directories
            # before the one it replaces may be forgotten (and its directory removed) below.
            woken = sorted({w for aid in dirty if aid in self._waiters for w in self._waiters[aid]})
            if woken:
                first = set(woken)
                dirty = woken + [aid for aid in dirty if aid not in first]
        updates = []
        for aid in dirty:
            a = self.allocs.get(aid)
            if a is None:
                continue
            self._coordinate(a)
            if a.removed and a.done():
                self._forget(a)
                continue
            if a.checks or a.checks_sent is not None:
                self._sync_checks(a)
            if a.health_rules is not None:
                self._check_health(a)
            self._persist(a)
            if a.removed or a.quiet:
                continue  # the servers no longer know it, or hold a terminal status: no reports
            u = a.update()
            last = self._reported.get(aid)
            if last != u:
                self._reported[aid] = u
                if u.deployment_healthy is None and last is not None and last.deployment_healthy is not None \
                        and replace(last, deployment_healthy=None, deployment_ts=u.deployment_ts,
                                    deployment_id=u.deployment_id) == u:
                    # Only its health was reset (it moved into a new deployment, whose servers cleared
                    # the health themselves): nothing to tell them until the new health is decided.
                    continue
                updates.append(u)
        self.check_invariants()
        if updates:
            self.stats["reports"] += 1
            self.send(self.env.node, self.reporter, AllocUpdates(updates=tuple(updates)))
        if self._destroying is not None and all(a.done() for a in self.allocs.values()):
            m, self._destroying = self._destroying, None
            self.send(self.env.node, m.reply_to, Destroyed(actor=self.name, corr=m.corr))

    def _destroy_all(self, m: Destroy) -> None:
        """The agent stops in dev mode: kill every task, start none again, run no poststop task (Nomad's
        client.Shutdown destroys its allocation runners in dev mode); Destroyed once all are dead."""
        self._destroying = m
        now = self.env.now()
        for aid in sorted(self.allocs):
            a = self.allocs[aid]
            a.removed = True  # killed, then forgotten: the servers are not told (they are stopping too)
            for name in sorted(a.tasks):
                self._end_task(a, a.tasks[name], EV_KILLING, "Agent shutting down (dev mode)", now)

    # ------------------------------------------------------------ client-side GC
    def _finished(self) -> list[_Alloc]:
        """Allocations whose tasks are all gone and whose directory is still here, oldest first."""
        done = [a for a in self.allocs.values() if not a.collected and not a.removed and a.done()
                and a.alloc_id not in self._waiters]  # a replacement takes its ephemeral disk first
        done.sort(key=lambda a: (a.spec.modify_index if a.spec else 0, a.alloc_id))
        return done

    def _collect(self, a: _Alloc, reason: str) -> bool:
        assert self.alloc_dirs is not None
        if a.alloc_id in self._waiters:
            return False  # its replacement takes its ephemeral disk first
        try:
            self.alloc_dirs.destroy(a.alloc_id)
        except Exception as exc:
            self.stats["persist_errors"] += 1
            log.error("%s: cannot remove the directory of allocation %s: %s", self.env.node, a.alloc_id, exc)
            return False
        log.info("%s: garbage collecting allocation alloc_id=%s reason=%r", self.env.node, a.alloc_id, reason)
        a.collected = True
        self.stats["gc_collected"] += 1
        self._dirty.add(a.alloc_id)
        return True

    def _collect_now(self, alloc_id: str) -> str:
        """Nomad's Client.CollectAllocation: a finished allocation's directory goes at once."""
        a = self.allocs.get(alloc_id)
        if a is None:
            return f'Unknown allocation "{alloc_id}"'
        if self.alloc_dirs is None or a.collected or a.removed or not a.done() or alloc_id in self._waiters:
            return NOT_ELIGIBLE_FOR_GC
        if not self._collect(a, "forced collection"):
            return f"cannot remove the directory of allocation {alloc_id}"
        return ""

    def _gc_for_disk(self) -> None:
        """Nomad keepUsageBelowThreshold: the oldest finished allocations go while usage is too high."""
        if self.alloc_dirs is None:
            return
        c = self.cfg
        for a in self._finished():
            try:
                disk, inodes = self.alloc_dirs.usage()
            except Exception as exc:
                log.warning("%s: cannot read the alloc dir's disk usage: %s", self.env.node, exc)
                return
            if disk < c.gc_disk_usage_threshold and inodes < c.gc_inode_usage_threshold:
                return
            reason = (f"disk usage of {disk:.0f}% is over gc_disk_usage_threshold"
                      if disk >= c.gc_disk_usage_threshold else
                      f"inode usage of {inodes:.0f}% is over gc_inode_usage_threshold")
            if not self._collect(a, reason):
                return

    def _make_room(self, allocs: tuple[Any, ...]) -> None:
        """Nomad MakeRoomFor: new allocations past gc_max_allocs push out the oldest finished ones."""
        if self.alloc_dirs is None:
            return
        new = sum(1 for raw in allocs if isinstance(raw, dict) and raw.get("ID") not in self.allocs)
        if new == 0:
            return
        held = sum(1 for a in self.allocs.values() if not a.collected and not a.removed)
        excess = held + new - self.cfg.gc_max_allocs
        if excess <= 0:
            return
        # The allocations the new ones replace stay: a sticky or migrating disk moves over from them.
        replaced = {raw.get("PreviousAllocation") for raw in allocs
                    if isinstance(raw, dict) and raw.get("ID") not in self.allocs}
        for a in [a for a in self._finished() if a.alloc_id not in replaced][:excess]:
            self._collect(a, f"new allocations and over max ({self.cfg.gc_max_allocs}) allocations")

    def _forget(self, a: _Alloc) -> None:
        if a.prev_wait:
            self._stop_waiting(a)
        for name in sorted(a.tasks):
            for kind in ("restart", "kill", "fetch", "tmpl", "tmpl_retry", "tmpl_change", "tmpl_quiet",
                         "tmpl_file", "shutdown", "wid", "wid_retry"):
                self._cancel_task_timer(kind, a, a.tasks[name])
            self._tmpl_reqs.pop(a.tasks[name].tmpl_req, None)
            self._wid_reqs.pop(a.tasks[name].wid_req, None)
        self._cancel_alloc_timer("health", a)
        self._cancel_alloc_timer("health_due", a)
        for kind in ("prevq", "prevq_retry", "migrate", "shutdown", "maxrun"):
            self._cancel_alloc_timer(kind, a)
        self._prev_reqs.pop(a.prev_req, None)
        if a.checks_sent is not None:
            self.send(self.env.node, self.checker, UnwatchChecks(a.alloc_id))
        del self.allocs[a.alloc_id]
        self._reported.pop(a.alloc_id, None)
        try:
            self.store.delete(a.alloc_id)
        except Exception as exc:
            self.stats["persist_errors"] += 1
            log.error("%s: cannot delete state of allocation %s: %s", self.env.node, a.alloc_id, exc)
        if self.alloc_dirs is not None and not a.collected:
            # The servers removed it (job GC) and its tasks are gone: its
            # directory -- logs included -- goes too, as Nomad's client GC does.
            try:
                self.alloc_dirs.destroy(a.alloc_id)
                self.stats["dirs_destroyed"] += 1
            except Exception as exc:
                self.stats["persist_errors"] += 1
                log.error("%s: cannot remove the directory of allocation %s: %s", self.env.node,
                          a.alloc_id, exc)

    def _persist(self, a: _Alloc) -> None:
        rest = {
            "version": 1, "invalid": a.invalid, "removed": a.removed, "quiet": a.quiet,
            "collected": a.collected, "stage": a.stage, "ran": a.ran,
            **({"prev_wait": a.prev_wait} if a.prev_wait else {}),
            **({"sibling_failed": a.sibling_failed} if a.sibling_failed else {}),
            **({"leader_ended": True} if a.leader_ended else {}),
            **({"max_run_exceeded": True} if a.max_run_exceeded else {}),
            "desired": a.spec.desired if a.spec else "", "modify_index": a.spec.modify_index if a.spec else 0,
            **({"health": a.health, "health_at": a.health_at} if a.health is not None else {}),
            **({"health_deadline": a.health_rules[1]} if a.health_rules is not None else {}),
            **({"health_from": a.health_from} if a.health_from else {}),
            "tasks": {n: {"phase": t.phase, "state": t.state.to_dict(),
                          "handle": t.handle.to_dict() if t.handle else None, "count": t.count,
                          "interval_start": t.interval_start, "restart_at": t.restart_at,
                          "escalated": t.escalated, "fail_reason": t.fail_reason,
                          **({"artifacts_fetched": t.artifacts_fetched} if t.artifacts_fetched else {}),
                          **({"kill_fails": t.kill_fails} if t.kill_fails else {})}
                      for n, t in sorted(a.tasks.items())},
        }
        try:
            self.store.put(a.alloc_id, {"alloc": a.raw, **rest})
        except Exception as exc:
            self.stats["persist_errors"] += 1
            log.error("%s: cannot persist allocation %s: %s", self.env.node, a.alloc_id, exc)

    # ------------------------------------------------------------ restore and re-attach
    def _restore(self, aid: str, rec: dict[str, Any]) -> None:
        raw = rec.get("alloc") or {}
        if rec.get("invalid"):
            self.allocs[aid] = _Alloc(alloc_id=aid, raw=raw, spec=None, invalid=rec["invalid"])
            self._dirty.add(aid)
            return
        spec = parse_alloc(raw, self.cfg)
        spec = _replace_desired(spec, rec.get("desired") or spec.desired, int(rec.get("modify_index", 0)))
        # A set from the servers older than what this node already ran is stale
        # (a lagging server's view): after a restart, do not take it either.
        self.index = max(self.index, spec.modify_index)
        a = _Alloc(alloc_id=aid, raw=raw, spec=spec, removed=bool(rec.get("removed")),
                   quiet=bool(rec.get("quiet")), collected=bool(rec.get("collected")),
                   settings_key=_settings_key(raw))
        self._set_checks(a, raw)
        if rec.get("stage") in STAGES:
            a.stage = rec["stage"]
        a.ran = bool(rec.get("ran"))
        if isinstance(rec.get("sibling_failed"), str):
            a.sibling_failed = rec["sibling_failed"]
        a.leader_ended = rec.get("leader_ended") is True
        if isinstance(rec.get("prev_wait"), str) and rec["prev_wait"]:
            self._wait_for_previous(a, rec["prev_wait"])
        saved = rec.get("tasks", {})
        for ts in spec.tasks:
            t = _Task(spec=ts)
            s = saved.get(ts.name)
            if s is not None:
                t.phase, t.state = s["phase"], TaskState.from_dict(s["state"])
                t.count, t.interval_start = int(s.get("count", 0)), s.get("interval_start")
                t.restart_at, t.escalated = float(s.get("restart_at", 0.0)), bool(s.get("escalated"))
                t.fail_reason = s.get("fail_reason", "")
                t.artifacts_fetched = min(len(ts.artifacts), max(0, int(s.get("artifacts_fetched", 0))))
                t.kill_fails = str(s.get("kill_fails") or "")
                t.handle = _handle_or_none(s.get("handle"))
            a.tasks[ts.name] = t
        self.allocs[aid] = a
        self._dirty.add(aid)
        now = self.env.now()
        if isinstance(rec.get("health"), bool):
            a.health, a.health_at = rec["health"], float(rec.get("health_at", 0.0))
        elif rec.get("health_deadline") is not None:
            a.health_from = float(rec.get("health_from") or 0.0)
            self._track_health(a, raw, now, deadline_at=float(rec["health_deadline"]))
        elif not a.done():  # not watched when it was persisted: Nomad's restored runner watches anew
            self._track_health(a, raw, now)
        a.max_run_exceeded = bool(rec.get("max_run_exceeded"))
        lost = [name for name in sorted(a.tasks) if self._reattach(a, a.tasks[name], now)]
        if not a.want_run:
            why = "allocation removed from the node" if a.removed else "allocation is stopping"
            self._stop_alloc(a, why)
        elif a.max_run_exceeded:
            self._stop_alloc(a, MAX_RUN_EXCEEDED)
        else:
            self._arm_max_run(a)
            if lost and not any(a.tasks[n].restore_wait for n in lost):
                self._coordinate(a)  # a system job's lost tasks start again at once

    def _kill_orphans(self, rec: Any) -> None:
        """Best effort: SIGKILL the live tasks of a record that cannot be restored."""
        tasks = rec.get("tasks") if isinstance(rec, dict) else None
        for s in (tasks or {}).values():
            handle = _handle_or_none(s.get("handle")) if isinstance(s, dict) else None
            driver = self.drivers.get(handle.driver) if handle else None
            if driver is None or handle is None:
                continue
            try:
                if driver.recover(handle):
                    driver.kill(handle)
            except Exception as exc:
                log.warning("%s: cannot kill orphaned task %s: %s", self.env.node, handle.task_name, exc)

    def _reattach(self, a: _Alloc, t: _Task, now: float) -> bool:
        """Find the task's process again; True when it was lost to a host reboot and is pending."""
        if t.phase in (P_RUNNING, P_KILLING):
            driver = self.drivers.get(t.handle.driver) if t.handle else None
            alive = False
            if driver is not None and t.handle is not None:
                try:
                    alive = driver.recover(t.handle)
                except Exception as exc:
                    self.stats["driver_errors"] += 1
                    log.warning("%s: re-attaching task %s failed: %s", self.env.node, t.spec.name, exc)
            if alive:
                self.stats["reattached"] += 1
                self._watch(a, t)
                if t.spec.templates and t.phase == P_RUNNING:  # its templates are watched again
                    t.tmpl_adopt = True
                    self._tmpl_query(a, t)
                if t.phase == P_RUNNING and any(w.ttl_s > 0 for w in t.spec.identities):
                    t.wid_adopt = True  # its expiring identities are renewed again
                    self._wid_query(a, t)
                if t.phase == P_KILLING or t.state.state == TASK_PENDING:
                    # Finish the kill the last incarnation began (or whose shutdown_delay it waited out).
                    t.phase = P_RUNNING
                    self._end_task(a, t, EV_KILLING, "resuming a kill after a client restart", now)
                return False
            recorded = self._recorded_exit(driver, t)
            if recorded is not None:
                # The task ended while the client was down and its launcher (Nomad's executor, which
                # outlives the agent) kept how: that exit, as if seen -- its restart policy decides.
                self.stats["exits_recorded"] += 1
                self._on_exit(a, t, recorded, now)
                return False
            lost = getattr(driver, "lost_to_reboot", None)
            rebooted = lost is not None and t.handle is not None and lost(t.handle)
            if t.phase == P_RUNNING and a.want_run and rebooted:
                # Nomad's restoreHandle failing (its executor went with the host): the task is pending
                # again, not restarted (no restart counted, no delay); it runs once the servers
                # answered, as they may have stopped it meanwhile -- a system job's at once (Nomad's
                # waitOnServers).  A task that merely exited while the client was down, its exit not
                # recorded (above), is an exit unseen: its restart policy decides (below).
                t.handle = None
                t.phase = P_PENDING
                t.state = _state(t.state, state=TASK_PENDING)
                self._event(t, EV_RESTORE_FAILED, now, RESTORE_FAILED_WAIT)
                t.restore_wait = a.spec is not None and a.spec.job_type != "system"
                self._restore_waiting = self._restore_waiting or t.restore_wait
                return True
            self._event(t, EV_RESTORE_FAILED, now, "task process was gone when the client restarted")
            self._on_exit(a, t, ExitResult(exit_code=None, err="task exited while the client was down"), now)
        elif t.phase == P_RESTART_WAIT:
            p = t.spec.restart or (a.spec.restart if a.spec else self.cfg.service_restart)
            bound = max(p.delay_s * (1 + self.cfg.restart_jitter_fraction), p.interval_s)
            self._set_task_timer("restart", a, t, min(max(0.0, t.restart_at - now), bound))
        # A pending task is started by _coordinate, when its lifecycle stage allows.
        return False

    def _recorded_exit(self, driver: Any, t: _Task) -> ExitResult | None:
        """The exit the task's driver recorded while no client watched it (a driver without records,
        or one that cannot read it: None)."""
        read = getattr(driver, "recorded_exit", None)
        if read is None or t.handle is None:
            return None
        try:
            return read(t.handle)
        except Exception as exc:
            self.stats["driver_errors"] += 1
            log.warning("%s: reading the recorded exit of task %s failed: %s", self.env.node, t.spec.name,
                        exc)
            return None

    # ------------------------------------------------------------ invariants
    def check_invariants(self) -> None:
        for aid, a in self.allocs.items():
            assert a.alloc_id == aid
            assert (a.spec is None) == bool(a.invalid), f"{aid}: malformed exactly when invalid"
            assert a.stage in STAGES, f"{aid}: lifecycle stage {a.stage!r}"
            for t in a.tasks.values():
                live = t.phase in (P_RUNNING, P_KILLING)
                assert live == (t.handle is not None), f"{aid}/{t.spec.name}: handle iff running ({t.phase})"
                assert (t.phase == P_DEAD) == (t.state.state == TASK_DEAD), f"{aid}/{t.spec.name}: dead"
                if t.phase == P_RESTART_WAIT:
                    assert f"restart/{aid}/{t.spec.name}" in self._timers, f"{aid}/{t.spec.name}: no timer"
                if t.fetch_run:
                    assert t.phase == P_PENDING, f"{aid}/{t.spec.name}: fetching artifacts while {t.phase}"
                    assert f"fetch/{aid}/{t.spec.name}" in self._timers, "no fetch timer"
                assert 0 <= t.artifacts_fetched <= len(t.spec.artifacts)
                assert len(t.state.events) <= self.cfg.max_events
                if t.tmpl_wait:
                    assert t.phase == P_PENDING and not t.tmpl_ready, f"{aid}/{t.spec.name}: template wait"
                if t.wid_wait:
                    assert t.phase == P_PENDING and not t.wid_ready, f"{aid}/{t.spec.name}: identity wait"
                if t.wid_req:
                    assert self._wid_reqs.get(t.wid_req) == (aid, t.spec.name), "identity request untracked"
                if t.tmpl_req:
                    assert self._tmpl_reqs.get(t.tmpl_req) == (aid, t.spec.name), "template query untracked"
                    assert f"tmpl/{aid}/{t.spec.name}" in self._timers, "template query without its timer"


def _counts_for_health(t: _Task) -> bool:
    """Does the task's state count for its allocation's deployment health (Nomad's allochealth
    tracker skips poststop tasks and ephemeral poststart tasks that succeeded)?"""
    kind = task_kind(t.spec)
    if kind == HOOK_POSTSTOP:
        return False
    return not (kind == HOOK_POSTSTART and t.phase == P_DEAD and not t.state.failed)


def _state(s: TaskState, **changes: Any) -> TaskState:
    d = {f: getattr(s, f) for f in TaskState.__dataclass_fields__}
    d.update(changes)
    return TaskState(**d)


def _settings_key(raw: Any) -> Any:
    """What parse_alloc reads the run settings an in-place update refreshes from (_refresh_in_place):
    the job's type, the allocation's CreateTime, and its group bar the group's Count (which the runner
    does not read).  None when the group is not there (the allocation is parsed, and refused, anew)."""
    job = raw.get("Job") if isinstance(raw, dict) else None
    if not isinstance(job, dict) or not isinstance(job.get("TaskGroups"), list):
        return None
    name = raw.get("TaskGroup")
    for g in job["TaskGroups"]:
        if isinstance(g, dict) and g.get("Name") == name:
            return job.get("Type"), raw.get("CreateTime"), {k: v for k, v in g.items() if k != "Count"}
    return None


def _replace_desired(spec: AllocSpec, desired: str, index: int) -> AllocSpec:
    return replace(spec, desired=desired, modify_index=max(index, 0))


def _handle_or_none(d: Any) -> TaskHandle | None:
    if d is None:
        return None
    try:
        return TaskHandle.from_dict(d)
    except ValueError as exc:
        log.warning("ignoring a corrupt task handle: %s", exc)
        return None
