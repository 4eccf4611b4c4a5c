"""The server's serf snapshot: replay rules, compaction, and a restarted server rejoining by itself."""

from __future__ import annotations

import json
import os
import random
import signal

import pytest

from runtime.serf_snapshot import SerfSnapshot, replay_lines
from tests.test_agent_process import AgentProc, agents, free_port, wait_for  # noqa: F401
from tests.test_server_cluster import CLUSTER_DEADLINE_S, get_json, members, server_config


def test_replay_keeps_the_members_alive_at_the_end_and_the_clock():
    got = replay_lines(["alive: a.global 10.0.0.1:4648", "alive: b.global 10.0.0.2:4648", "clock: 7",
                        "not-alive: a.global", "# comment", "coordinate: x", "event-clock: 3",
                        "alive: name with spaces 10.0.0.3:4648", "clock: 9"], rejoin_after_leave=False)
    assert got.alive == {"b.global": "10.0.0.2:4648", "name with spaces": "10.0.0.3:4648"}
    assert got.clock == 9 and not got.left


def test_a_leave_forgets_the_members_unless_rejoin_after_leave():
    lines = ["alive: b.global 10.0.0.2:4648", "clock: 5", "leave"]
    assert replay_lines(lines, rejoin_after_leave=False).alive == {}
    assert replay_lines(lines, rejoin_after_leave=False).left
    kept = replay_lines(lines, rejoin_after_leave=True)
    assert kept.alive == {"b.global": "10.0.0.2:4648"} and kept.clock == 5 and not kept.left


def test_bad_lines_are_skipped_not_fatal(caplog):
    got = replay_lines(["alive: nospace", "clock: x", "gibberish", "alive: b 1.2.3.4:1"], False)
    assert got.alive == {"b": "1.2.3.4:1"} and got.clock == 0
    assert "unrecognised line 'gibberish'" in caplog.text


def test_the_file_records_events_and_survives_a_cut_last_line(tmp_path):
    path = str(tmp_path / "snapshot")
    s = SerfSnapshot(path)
    s.member_event("member-join", "a", "1.1.1.1:1")
    s.member_event("member-join", "b", "2.2.2.2:2")
    s.member_event("member-update", "b", "2.2.2.2:2")  # not a membership change: not recorded
    s.member_event("member-failed", "a", "1.1.1.1:1")
    s.update_clock(4)
    s.update_clock(3)  # never backwards
    s.close()
    assert open(path).read() == "alive: a 1.1.1.1:1\nalive: b 2.2.2.2:2\nnot-alive: a\nclock: 4\n"
    with open(path, "a") as f:
        f.write("alive: c 3.3.3.3:")  # the crash came mid-line
    s = SerfSnapshot(path)
    assert s.alive == {"b": "2.2.2.2:2"} and s.last_clock == 4
    s.member_event("member-join", "d", "4.4.4.4:4")
    s.close()
    assert SerfSnapshot(path).alive == {"b": "2.2.2.2:2", "d": "4.4.4.4:4"}
    assert SerfSnapshot(path).previous_members("d", random.Random(1)) == [("b", "2.2.2.2:2")]


def test_after_a_leave_nothing_more_is_recorded(tmp_path):
    path = str(tmp_path / "snapshot")
    s = SerfSnapshot(path)
    s.member_event("member-join", "b", "2.2.2.2:2")
    s.leave()
    s.member_event("member-join", "c", "3.3.3.3:3")
    s.close()
    assert open(path).read().endswith("leave\n")
    assert SerfSnapshot(path).replayed.left and SerfSnapshot(path).alive == {}


def test_the_file_is_compacted_to_the_live_members(tmp_path):
    path = str(tmp_path / "snapshot")
    s = SerfSnapshot(path, min_compact_bytes=400)
    for i in range(50):  # members flapping: the log grows, the live set does not
        s.member_event("member-join", "m", "9.9.9.9:9")
        s.member_event("member-failed", "m", "9.9.9.9:9")
    s.member_event("member-join", "keep", "1.1.1.1:1")
    s.update_clock(77)
    s.close()
    assert os.path.getsize(path) <= 400
    again = SerfSnapshot(path)
    assert again.alive == {"keep": "1.1.1.1:1"} and again.last_clock == 77


# ---------------------------------------------------------------- real servers


def _cluster(agents, tmp_path, extra: dict[int, list[str]] | None = None):
    """Three servers that know nothing of each other until `server join` tells them."""
    cfgs = [server_config(tmp_path, i, []) for i in range(3)]
    for i, lines in (extra or {}).items():
        path = cfgs[i]["path"]
        text = open(path).read().replace("[server]\n", "[server]\n" + "\n".join(lines) + "\n", 1)
        open(path, "w").write(text)
    procs = [agents(["-config", c["path"]], http_port=c["http"]) for c in cfgs]
    for p in procs:
        _up(p)
    for p in procs[1:]:
        status, body, _ = p.get(f"/v1/agent/join?address=127.0.0.1:{cfgs[0]['serf']}", method="PUT")
        assert status == 200 and json.loads(body)["num_joined"] == 1, body
    everyone = {f"s{i}.global" for i in range(3)}
    wait_for(lambda: all({n for n, st in members(p).items() if st == "alive"} == everyone for p in procs),
             "three servers in one gossip pool", CLUSTER_DEADLINE_S)
    return cfgs, procs, everyone


def _up(agent: AgentProc) -> AgentProc:
    """Serving HTTP (a server waiting for its peers has no leader yet, so is not healthy)."""
    wait_for(lambda: get_json(agent, "/v1/agent/members") is not None, "the agent's HTTP API", CLUSTER_DEADLINE_S,
             agent.detail)
    return agent


def _alive(agent: AgentProc) -> set[str]:
    return {n for n, st in members(agent).items() if st == "alive"}


@pytest.mark.timeout(120)
def test_a_restarted_server_rejoins_its_members_from_the_snapshot(agents, tmp_path):
    cfgs, procs, everyone = _cluster(agents, tmp_path)
    procs[2].send(signal.SIGKILL)  # no leave: the others see it fail
    procs[2].wait_exit()
    wait_for(lambda: "s2.global" not in _alive(procs[0]), "s2 failed in s0's view", CLUSTER_DEADLINE_S)
    again = _up(agents(["-config", cfgs[2]["path"]], http_port=cfgs[2]["http"]))
    again.wait_line("attempting re-join to previously known members")
    wait_for(lambda: _alive(again) == everyone and _alive(procs[0]) == everyone,
             "s2 back in every member list without a join", CLUSTER_DEADLINE_S, again.detail)
    wait_for(lambda: len(get_json(again, "/v1/status/peers") or []) == 3, "s2 a Raft peer again",
             CLUSTER_DEADLINE_S, again.detail)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rejoin", [False, True])
def test_a_server_that_left_rejoins_on_restart_only_with_rejoin_after_leave(agents, tmp_path, rejoin):
    cfgs, procs, everyone = _cluster(agents, tmp_path, {2: ["rejoin_after_leave = true"]} if rejoin else None)
    procs[2].send(signal.SIGINT)  # leave_on_interrupt: a graceful leave
    procs[2].wait_exit()
    wait_for(lambda: members(procs[0]).get("s2.global") == "left", "s2 left in s0's view", CLUSTER_DEADLINE_S)
    again = _up(agents(["-config", cfgs[2]["path"]], http_port=cfgs[2]["http"]))
    if rejoin:
        wait_for(lambda: _alive(again) == everyone, "s2 rejoined after its leave", CLUSTER_DEADLINE_S,
                 again.detail)
    else:
        again.wait_line("not rejoining previously known members")
        assert _alive(again) == {"s2.global"}
        assert members(procs[0]).get("s2.global") == "left"
