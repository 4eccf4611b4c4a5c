"""``/v1/client/allocation/<id>/{stats,checks,restart,signal,gc}``: served by the client agent that runs it.

(``.../exec`` and ``.../snapshot`` have modules of their own: actors.http_alloc_exec,
actors.http_client_snapshot.)

Nomad's ``ClientAllocations`` endpoints, answered by this agent's
AllocRunner (asked from the request's greenlet, the HTTP edge):

* ``GET .../stats`` (``?task=`` one task) -- ``AllocResourceUsage``: each
  running task's usage as Nomad's executor reports it, and their sum for
  the allocation (:class:`runtime.host_stats.TaskStatsProbe`): memory (an
  exec task's from its cgroup: RSS, cache, swap, usage, max usage, kernel
  usage; a raw_exec task's process tree's RSS and swap) and CPU (percent of
  one core since the previous sample, user and system mode, throttling, and
  ``TotalTicks``: that percent as MHz of the node, Nomad's
  ``TicksConsumed``), with each process's own figures under ``Pids``;
* ``GET .../checks`` -- the latest result of each of the allocation's
  service checks by check ID (Nomad's ``CheckQueryResult``: ID, Check,
  Service, Group, Task, Mode, Status, StatusCode, Output, Timestamp), from
  the CheckRunner; ``{}`` when it has none, or no longer runs;
* ``PUT|POST .../restart`` (``{"TaskName", "AllTasks"}``, both optional) -- the
  running tasks (or the named one) are killed and started again at once,
  without counting against the restart policy;
* ``PUT|POST .../signal`` (``{"Signal", "Task"}``) -- the signal goes to the
  running tasks (or the named one);
* ``GET|PUT|POST .../gc`` -- a finished allocation's directory (its logs and
  task dirs) is removed now (Nomad's ``ClientAllocations.GarbageCollect``;
  its files are then gone from ``/v1/client/fs``).  An allocation with a
  task still running (or restarting, or being killed) is not collected:
  500 with Nomad's ``No such allocation on client, or allocation not
  eligible for GC``, as for one already collected.  Answers an empty 200.

An unknown allocation or task is 404, a task that is not running 500
(Nomad's ``Task not running``), a malformed body or unknown signal 400.
``nomad alloc restart|signal`` ask the node that runs the allocation, found
through the servers, as ``nomad alloc logs`` does.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors.client.alloc_runner import CollectAlloc, GetAllocStats, RestartTasks, SignalTasks
from actors.client.checks import CHECK_RUNNER, GetChecks
from actors.http_api import Answer, Api, CodedError, Request, decode_json, read_body, require, route
from actors.http_client_host import override_mhz
from runtime.host_stats import TaskStatsProbe, node_compute

ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)
# How long a restart request waits for the tasks it kills to exit before answering anyway: the
# longest kill_timeout a client allows (max_kill_timeout, 30 s) plus a shutdown_delay's room.
# Nomad's wait is unbounded; an HTTP request should not be.
RESTART_KILL_WAIT_S = 60.0
# The running tasks' previous CPU samples, so each answer is the usage since the one before (Nomad's
# executor keeps its trackers the same way).  Module state at the edge: one agent per process.
TASK_STATS = TaskStatsProbe()


def _runner(api: Api) -> None:
    ref = api.env.lookup(ALLOC_RUNNER)
    if ref is None or not ref.is_alive():
        raise CodedError(501, "Invalid method")  # not a client agent (Nomad: s.agent.Client() == nil)


def _body(req: Request) -> dict[str, Any]:
    raw = read_body(req)
    if not raw.strip():
        return {}
    try:
        body = decode_json(raw)
    except ValueError as e:  # UnicodeDecodeError is one
        raise CodedError(400, f"Failed to decode request body: {e}") from None
    if not isinstance(body, dict):
        raise CodedError(400, "Failed to decode request body: expected an object")
    return body


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise CodedError(400, f"{key}: must be a string, got {type(value).__name__}")
    return value


def _restart(api: Api, message: RestartTasks) -> str:
    """The runner's answer to *message*, set once the tasks it kills have exited (Nomad's Restart
    blocks until then); still killing after RESTART_KILL_WAIT_S: answered as asked."""
    ref = api.env.lookup(ALLOC_RUNNER)
    if ref is None or not ref.is_alive():
        raise CodedError(500, f"{ALLOC_RUNNER} is not running")
    ref.tell(message)
    try:
        return message.reply.get(timeout=RESTART_KILL_WAIT_S)
    except pykka.Timeout:
        return ""  # the kill goes on (its kill_timeout, a shutdown_delay); the restart follows it


def _answer(error: str) -> Answer:
    if error:
        if "not found" in error or error.startswith("Unknown allocation"):
            raise CodedError(404, error)
        if error.startswith("unknown signal"):
            raise CodedError(400, error)
        raise CodedError(500, error)
    return Answer({"Index": 0})  # Nomad's GenericResponse


def _stats(req: Request, api: Api, alloc_id: str) -> Any:
    tasks = api.ask(ALLOC_RUNNER, GetAllocStats(alloc_id=alloc_id)).get(alloc_id)
    if tasks is None:
        known = api.ask(ALLOC_RUNNER, "allocs")
        if alloc_id not in known:
            raise CodedError(404, f'Unknown allocation "{alloc_id}"')
        tasks = {}
    only = (req.query.get("task") or [""])[0]
    if only:  # Nomad's ?task=: that task's usage alone (nothing when it is not running)
        tasks = {name: s for name, s in tasks.items() if name == only}
    return TASK_STATS.alloc_usage(alloc_id, tasks, node_compute(override_mhz(api)))


@route("/v1/client/allocation/")
def client_allocation(req: Request, api: Api) -> Any:
    alloc_id, _, action = req.path[len("/v1/client/allocation/"):].partition("/")
    if alloc_id and action == "exec":  # a WebSocket session (relayed, when another node runs it)
        from actors.http_alloc_exec import alloc_exec  # noqa: PLC0415 - a module of its own

        return alloc_exec(req, api, alloc_id)
    if alloc_id and action == "snapshot":  # an ephemeral disk migrating to another node
        from actors.http_client_snapshot import alloc_snapshot

        return alloc_snapshot(req, api, alloc_id)
    if not alloc_id or action not in ("stats", "checks", "restart", "signal", "gc"):
        raise CodedError(404, "404 page not found")
    _runner(api)
    if action == "stats":
        require(req, "GET")
        return _stats(req, api, alloc_id)
    if action == "checks":
        require(req, "GET")
        if alloc_id not in api.ask(ALLOC_RUNNER, "allocs"):
            raise CodedError(404, f'Unknown allocation "{alloc_id}"')
        return api.ask(CHECK_RUNNER, GetChecks(alloc_id))
    if action == "gc":
        require(req, "GET", "PUT", "POST")
        _answer(api.ask(ALLOC_RUNNER, CollectAlloc(alloc_id=alloc_id)))
        return None  # Nomad answers nothing (an empty 200)
    require(req, "PUT", "POST")
    body = _body(req)
    if action == "restart":
        task = _string(body, "TaskName")
        if body.get("AllTasks") and task:
            raise CodedError(400, "task name cannot be set when restarting all tasks")
        return _answer(_restart(api, RestartTasks(alloc_id=alloc_id, task=task,
                                                  all_tasks=bool(body.get("AllTasks")),
                                                  reply=api.env.make_future())))
    signame = _string(body, "Signal")
    if not signame:
        raise CodedError(400, "Signal: missing")
    return _answer(api.ask(ALLOC_RUNNER, SignalTasks(alloc_id=alloc_id, signal=signame,
                                                     task=_string(body, "Task"))))
