"""Node drain as an operator sees it: what the API and the CLI show of a drain.

Found by running agents and draining them with ``nomad node drain`` against
Nomad's ``command/node_drain.go``, ``command/node_status.go``,
``api/nodes.go`` and ``nomad/state/state_store.go``.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time

import runtime.cli  # noqa: F401  (the command table first: its modules import from it)
from actors.http_api import _public_node, node_stub
from runtime.cli_jobs import _format_drain

STARTED = 1795960023.682202
NODE = {"ID": "n1", "Name": "c1", "Attributes": {}, "Status": "ready", "SchedulingEligibility": "ineligible",
        "DrainStrategy": {"Deadline": 120 * 10**9, "IgnoreSystemJobs": False, "ForceDeadline": STARTED + 120,
                          "StartedAt": STARTED},
        "LastDrain": {"Status": "draining", "StartedAt": STARTED, "UpdatedAt": STARTED,
                      "Meta": {"message": "m"}}}


def _go_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_drain_times_are_go_times_in_the_node_json():
    # Nomad's DrainStrategy.ForceDeadline/StartedAt and DrainMetadata.StartedAt/UpdatedAt are time.Time:
    # a number there is what Go's api package cannot decode (the nomad CLI, Terraform, ...).
    out = _public_node(NODE)
    strategy, last = out["DrainStrategy"], out["LastDrain"]
    assert isinstance(strategy["ForceDeadline"], str) and isinstance(strategy["StartedAt"], str)
    assert abs(_go_time(strategy["ForceDeadline"]) - (STARTED + 120)) < 1e-3
    assert abs(_go_time(strategy["StartedAt"]) - STARTED) < 1e-3
    assert (last["Status"], last["Meta"], last["AccessorID"]) == ("draining", {"message": "m"}, "")
    assert abs(_go_time(last["StartedAt"]) - STARTED) < 1e-3 and isinstance(last["UpdatedAt"], str)
    assert node_stub(NODE)["LastDrain"] == last
    # No deadline, or a forced drain: Go's zero time, as Node.UpdateDrain leaves it unset.
    for deadline in (0, -10**9):
        node = {**NODE, "DrainStrategy": {**NODE["DrainStrategy"], "Deadline": deadline,
                                          "ForceDeadline": STARTED if deadline else 0.0}}
        assert _public_node(node)["DrainStrategy"]["ForceDeadline"] == "0001-01-01T00:00:00Z"
    assert NODE["DrainStrategy"]["ForceDeadline"] == STARTED + 120  # the stored node is left as it was


def test_node_status_shows_the_drain_as_nomads_format_drain():
    strategy = _public_node(NODE)["DrainStrategy"]
    deadline = dt.datetime.fromtimestamp(STARTED + 120, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _format_drain(strategy) == f"true; {deadline} deadline"
    assert _format_drain({**strategy, "IgnoreSystemJobs": True}) == \
        f"true; {deadline} deadline; ignoring system jobs"
    zero = "0001-01-01T00:00:00Z"
    assert _format_drain({**strategy, "Deadline": 0, "ForceDeadline": zero}) == "true; no deadline"
    assert _format_drain({**strategy, "Deadline": -1, "ForceDeadline": zero}) == "true; force drain"
    assert _format_drain(None) == "false"


def test_the_drain_monitor_tells_each_allocation_change_while_the_node_query_waits(monkeypatch, capsys):
    # The allocations change on their own clock (the drainer marks one, the scheduler stops it, its
    # client reports it complete) while the node's blocking query waits for the drain to end: Nomad's
    # MonitorDrain watches both at once, so each change gets its line ("marked for migration" too).
    from runtime import cli_jobs

    running = {"ID": "a1", "ClientStatus": "running", "DesiredStatus": "run", "DesiredTransition": {},
               "Job": {"Type": "service"}}
    marked = {**running, "DesiredTransition": {"Migrate": True}}
    steps = [[running], [marked], [{**marked, "DesiredStatus": "stop"}],
             [{**marked, "DesiredStatus": "stop", "ClientStatus": "complete"}]]
    changed = threading.Condition()
    state = {"step": 0, "node_done": False}
    step_s = 0.3  # far longer than a query's round trip here: each change is its own answer

    def cluster() -> None:
        for i in range(1, len(steps)):
            time.sleep(step_s)
            with changed:
                state["step"] = i
                changed.notify_all()
        time.sleep(step_s)
        with changed:
            state["node_done"] = True
            changed.notify_all()

    def request(addr, method, path, body=None, *, answer_meta=None, index=0, wait="", **_):
        deadline = time.monotonic() + 5  # a blocking query, answered at the first change
        with changed:
            if path.endswith("/allocations"):
                while state["step"] + 1 <= index and time.monotonic() < deadline:
                    changed.wait(0.05)
                answer_meta["index"] = state["step"] + 1
                return copy.deepcopy(steps[state["step"]])
            while not state["node_done"] and time.monotonic() < deadline:
                changed.wait(0.05)
            answer_meta["index"] = 100 if state["node_done"] else index
            return {"ID": "n1", "Status": "ready",
                    "DrainStrategy": None if state["node_done"] else {"Deadline": 0}}

    monkeypatch.setattr(cli_jobs, "request", request)
    threading.Thread(target=cluster, daemon=True).start()
    cli_jobs._monitor_drain("http://x", "n1", 7, False)
    lines = [ln.split(": ", 1)[1] for ln in capsys.readouterr().out.splitlines()]
    assert lines == ['Alloc "a1" marked for migration', 'Alloc "a1" draining',
                     'Alloc "a1" status running -> complete', 'All allocations on node "n1" have stopped',
                     "Drain complete for node n1"], lines


def test_node_drain_tells_the_allocations_the_drainer_marked_before_the_monitor_first_looked(
        monkeypatch, capsys):
    # This agent's drainer may mark the allocations within milliseconds of the drain being set
    # (Nomad's batches its marks for a second): the monitor tells them from the node's allocations
    # as they were before the drain, so the first ones moved still get "marked for migration".
    from runtime import cli_jobs

    running = {"ID": "a1", "ClientStatus": "running", "DesiredStatus": "run", "DesiredTransition": {},
               "Job": {"Type": "service"}}
    marked = {**running, "DesiredTransition": {"Migrate": True}, "DesiredStatus": "stop"}
    steps = [[running], [marked], [{**marked, "ClientStatus": "complete"}]]
    state = {"step": 0}
    lock = threading.Lock()

    def request(addr, method, path, body=None, *, answer_meta=None, index=0, **_):
        with lock:
            if method == "PUT":  # the drain, and at once the drainer's mark and the scheduler's stop
                state["step"] = 1
                return {"Index": 10}
            if path == "/v1/nodes":
                return [{"ID": "n1-full-id", "Name": "c1"}]
            if path.endswith("/allocations"):
                if index and index >= 10 + state["step"] and state["step"] < len(steps) - 1:
                    state["step"] += 1  # the client reports it stopped
                if answer_meta is not None:
                    answer_meta["index"] = 10 + state["step"]
                return copy.deepcopy(steps[state["step"]])
            done = state["step"] == len(steps) - 1
        if not done:
            time.sleep(0.01)  # the node's blocking query waits out its (short) wait
        with lock:
            if answer_meta is not None:
                answer_meta["index"] = 20 if done else 10
            return {"ID": "n1-full-id", "Status": "ready", "DrainStrategy": None if done else {"Deadline": 0}}

    monkeypatch.setattr(cli_jobs, "request", request)
    monkeypatch.setattr(cli_jobs, "DRAIN_MONITOR_WAIT", "10ms")
    monkeypatch.setattr(cli_jobs, "_node_arg", lambda addr, flags, rest, words="": {"ID": "n1-full-id"})
    cli_jobs.node_drain("http://x", ["-enable", "-yes", "n1-full-id"])
    lines = [ln.split(": ", 1)[1] for ln in capsys.readouterr().out.splitlines()]
    assert 'Alloc "a1" marked for migration' in lines, lines
    assert 'Alloc "a1" status running -> complete' in lines, lines


def test_a_drain_update_keeps_its_metadata_and_a_cancel_records_its_own():
    # Nomad's updateNodeDrainImpl: LastDrain.Meta is replaced only by an operation that brings some;
    # the CLI's `-disable -m why` sends the drain's metadata back with cancel_message added.
    from tests.test_scheduler import Cluster

    c = Cluster()
    nid = c.node(0)
    spec = {"Deadline": 3600 * 10**9}
    assert c.apply("node_update_drain", node_id=nid, drain_spec=spec, meta={"message": "first"},
                   keep_meta=True)["ok"]
    c.apply("node_update_drain", node_id=nid, drain_spec={"Deadline": 60 * 10**9}, meta={}, keep_meta=True)
    assert c.state.tables["nodes"][nid]["LastDrain"]["Meta"] == {"message": "first"}
    c.apply("node_update_drain", node_id=nid, drain_spec=None,
            meta={"message": "first", "cancel_message": "oops"}, keep_meta=True)
    last = c.state.tables["nodes"][nid]["LastDrain"]
    assert (last["Status"], last["Meta"]) == ("canceled", {"message": "first", "cancel_message": "oops"})
    # An entry written before (no keep_meta) applies as it did: an update's empty meta replaced it,
    # a cancel's was not recorded.
    old = Cluster()
    nid = old.node(0)
    old.apply("node_update_drain", node_id=nid, drain_spec=spec, meta={"message": "first"})
    old.apply("node_update_drain", node_id=nid, drain_spec=spec, meta={})
    assert old.state.tables["nodes"][nid]["LastDrain"]["Meta"] == {}
    old.apply("node_update_drain", node_id=nid, drain_spec=None, meta={"cancel_message": "x"})
    assert old.state.tables["nodes"][nid]["LastDrain"]["Meta"] == {}


def test_node_drain_disable_sends_the_drains_metadata_back_with_a_cancel_message(monkeypatch):
    from runtime import cli_jobs

    sent: list[dict] = []

    def request(addr, method, path, body=None, **_):
        if method == "PUT":
            sent.append(body)
            return {"Index": 3}
        raise AssertionError(path)

    monkeypatch.setattr(cli_jobs, "request", request)
    monkeypatch.setattr(cli_jobs, "_node_arg", lambda addr, flags, rest, words="": {
        "ID": "n1", "LastDrain": {"Status": "draining", "Meta": {"message": "first", "owner": "ops"}}})
    out = cli_jobs.node_drain("http://x", ["-disable", "-m", "oops", "-meta", "ticket", "-yes", "n1"])
    assert out == 'Node "n1" drain strategy unset'
    assert sent[-1]["Meta"] == {"message": "first", "owner": "ops", "cancel_message": "oops", "ticket": ""}
    cli_jobs.node_drain("http://x", ["-enable", "-detach", "-m", "go", "-meta", "k=v", "-yes", "n1"])
    assert sent[-1]["Meta"] == {"message": "go", "k": "v"}


def test_node_drain_words_a_failed_node_lookup_as_nomad_does():
    # command/node_drain.go: the node's lookup fails "Error toggling drain mode: ...", the drain's
    # update "Error updating drain specification: ...".
    from runtime.cli import ApiError, error_line

    lookup = ApiError('Get "http://127.0.0.1:1/v1/nodes?prefix=ab": connect: connection refused')
    line = error_line(("node", "drain"), ["-enable", "ab"], lookup)
    assert line.startswith("Error toggling drain mode: Get"), line


def test_last_drain_records_the_token_that_changed_the_drain():
    # Nomad's LastDrain.AccessorID: the request's identity (token:<accessor>); a completion keeps it.
    from actors.http_jobs import _drain_accessor
    from tests.test_acl import _api, _guarded_state, _req
    from tests.test_scheduler import Cluster

    st = _guarded_state()
    who = _drain_accessor(_req("PUT", "/v1/node/n1/drain", "root-secret"), _api(st))
    assert who == "token:root"  # the management token's accessor ID (tests.test_acl._token)
    assert _drain_accessor(_req("PUT", "/v1/node/n1/drain"), _api(st)) == ""  # anonymous
    assert _drain_accessor(_req("PUT", "/v1/node/n1/drain", "root-secret"), _api(st, False)) == ""
    c = Cluster()
    nid = c.node(0)
    c.apply("node_update_drain", node_id=nid, drain_spec={"Deadline": -1}, meta={}, keep_meta=True,
            accessor_id=who)
    c.apply("node_drain_complete", node_id=nid, deadline_reached=True)
    last = c.state.tables["nodes"][nid]["LastDrain"]
    assert (last["Status"], last["AccessorID"]) == ("complete", who)
    c.apply("node_update_drain", node_id=nid, drain_spec={"Deadline": -1}, meta={})  # an older entry
    assert "AccessorID" not in c.state.tables["nodes"][nid]["LastDrain"]
