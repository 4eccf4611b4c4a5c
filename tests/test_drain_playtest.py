"""Node drain as an operator sees it: what the API and the CLI show of a drain.

Found by running agents and draining them with ``nomad node drain`` against
Nomad's ``command/node_drain.go``, ``command/node_status.go``,
``api/nodes.go`` and ``nomad/state/state_store.go``.
"""

from __future__ import annotations

import datetime as dt

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
