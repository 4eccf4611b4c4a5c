"""The replicated autopilot configuration: the record, its API form, and what follows it.

Pure functions and the state machine first; then five servers in the
simulator (GossipMember + ServerMembership + RaftPeer, the agent's stack):
the leader seeds the record from its agent config, and every server's
dead-server cleanup, ``min_quorum`` floor, health thresholds and Raft
promotion settings follow what is written there.  Over HTTP and the CLI:
tests/test_cli_operator.py (a -dev agent) and tests/test_operator_cluster.py
(three servers).
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.raft.membership import AutopilotConfig, ServerMembership
from actors.raft.peer import Propose
from actors.state import autopilot_config as ap_cfg
from actors.state.store import StateStore, command
from sim.gossip_cluster import GossipCluster, member_addr
from tests.test_autopilot_sim import N, _cluster, _health, _leader, _run_until

pytestmark = pytest.mark.timeout(300)

AGENT = {"cleanup_dead_servers": True, "last_contact_threshold_s": 0.2, "max_trailing_logs": 250,
         "min_quorum": 0, "server_stabilization_time_s": 10.0}


# ---------------------------------------------------------------- Go durations


@pytest.mark.parametrize("ns,text", [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1_500, "1.5\u00b5s"), (200_000_000, "200ms"),
    (1_500_000, "1.5ms"), (10 * 10**9, "10s"), (1_500_000_000, "1.5s"), (90 * 10**9, "1m30s"),
    (3600 * 10**9, "1h0m0s"), (7384_500_000_000, "2h3m4.5s"), (-200_000_000, "-200ms"),
])
def test_durations_are_written_as_go_writes_them_and_read_back(ns, text):
    assert ap_cfg.go_duration(ns) == text
    assert ap_cfg.parse_go_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "abc", "10", "1x", "s", "1.2.3s"])
def test_a_bad_duration_is_refused_with_gos_message(bad):
    with pytest.raises(ValueError, match=r'^time: invalid duration "'):
        ap_cfg.parse_go_duration(bad)


# ---------------------------------------------------------------- the API form


def test_a_body_decodes_as_nomads_handler_decodes_it():
    got = ap_cfg.from_api({"CleanupDeadServers": True, "LastContactThreshold": "250ms", "MaxTrailingLogs": 10,
                           "ServerStabilizationTime": "1m", "Unknown": 1, "ModifyIndex": 99})
    assert got == {"CleanupDeadServers": True, "EnableRedundancyZones": False,
                   "DisableUpgradeMigration": False, "EnableCustomUpgrades": False, "MaxTrailingLogs": 10,
                   "MinQuorum": 0,
                   "LastContactThreshold": 250_000_000, "ServerStabilizationTime": 60 * 10**9}
    zero = ap_cfg.from_api({})  # omitted: Go's zero values, as Nomad's handler takes them
    assert zero == ap_cfg.from_api(None) == ap_cfg.from_api({"LastContactThreshold": "", "MinQuorum": None})
    assert not zero["CleanupDeadServers"] and zero["LastContactThreshold"] == 0 == zero["MaxTrailingLogs"]
    assert ap_cfg.to_api({**got, "CreateIndex": 3, "ModifyIndex": 7}) == {
        "CleanupDeadServers": True, "LastContactThreshold": "250ms", "MaxTrailingLogs": 10, "MinQuorum": 0,
        "ServerStabilizationTime": "1m0s", "EnableRedundancyZones": False, "DisableUpgradeMigration": False,
        "EnableCustomUpgrades": False, "CreateIndex": 3, "ModifyIndex": 7}


FIELD = "into Go struct field AutopilotConfiguration."


@pytest.mark.parametrize("body,why", [
    ([], "json: cannot unmarshal array into Go value of type api.AutopilotConfiguration"),
    ({"CleanupDeadServers": "yes"}, f"json: cannot unmarshal string {FIELD}CleanupDeadServers of type bool"),
    ({"MaxTrailingLogs": -1}, f"json: cannot unmarshal number -1 {FIELD}MaxTrailingLogs of type uint64"),
    ({"MinQuorum": 2.5}, f"json: cannot unmarshal number 2.5 {FIELD}MinQuorum of type uint"),
    ({"MinQuorum": "3"}, f"json: cannot unmarshal string {FIELD}MinQuorum of type uint"),
    ({"LastContactThreshold": 200000000},
     "json: cannot unmarshal number into Go struct field .LastContactThreshold of type string"),
    ({"ServerStabilizationTime": "soon"}, 'time: invalid duration "soon"'),
    ({"LastContactThreshold": "-1s"}, "LastContactThreshold: must not be negative, got -1s"),
])
def test_a_body_that_does_not_decode_says_why(body, why):
    with pytest.raises(ValueError) as e:
        ap_cfg.from_api(body)
    assert str(e.value).startswith(why)


# ---------------------------------------------------------------- the record in the state machine


def _set(st: StateStore, index: int, config: dict[str, Any], cas: int | None = None) -> dict:
    return st.apply(index, command("autopilot_set_config", config=config, cas=cas))


def test_a_seed_writes_only_where_none_is_and_cas_writes_only_over_its_index():
    st = StateStore()
    seed = ap_cfg.record(**AGENT)
    assert ap_cfg.current(st.tables) is None
    assert _set(st, 3, seed, cas=0) == {"ok": True, "updated": True, "index": 3}
    assert ap_cfg.current(st.tables) == {**seed, "CreateIndex": 3, "ModifyIndex": 3}
    assert st.index(ap_cfg.TABLE) == 3
    assert _set(st, 4, {**seed, "MinQuorum": 9}, cas=0) == {"ok": True, "updated": False}  # a second seed
    assert _set(st, 5, {**seed, "MinQuorum": 3}, cas=2) == {"ok": True, "updated": False}  # stale cas
    assert st.index(ap_cfg.TABLE) == 3 and ap_cfg.current(st.tables)["MinQuorum"] == 0
    assert _set(st, 6, {**seed, "MinQuorum": 3}, cas=3)["updated"]
    assert _set(st, 7, {})["updated"]  # no cas: replaced whole
    rec = ap_cfg.current(st.tables)
    assert (rec["CreateIndex"], rec["ModifyIndex"]) == (3, 7)
    assert (rec["MinQuorum"], rec["CleanupDeadServers"]) == (0, False)


@pytest.mark.parametrize("bad", [{"MaxTrailingLogs": -1}, {"LastContactThreshold": 0.2},
                                 {"CleanupDeadServers": 1}, {"MinQuorum": True}, "config"])
def test_the_state_machine_refuses_a_malformed_record_and_keeps_the_old(bad):
    st = StateStore()
    _set(st, 1, ap_cfg.record(**AGENT))
    r = _set(st, 2, bad)
    assert not r["ok"] and r["error"]
    assert ap_cfg.current(st.tables)["ModifyIndex"] == 1


def test_the_record_survives_a_snapshot():
    st = StateStore()
    _set(st, 1, {**ap_cfg.record(**AGENT), "MinQuorum": 2})
    again = StateStore()
    again.restore(st.snapshot(), 1)
    assert ap_cfg.current(again.tables)["MinQuorum"] == 2 and again.index(ap_cfg.TABLE) == 1


def test_membership_settings_follow_a_record_and_fall_back_to_the_agents():
    agent = AutopilotConfig(replicated=True, **AGENT)
    assert agent.record() == ap_cfg.record(**AGENT)
    assert agent.following(None) is agent
    got = agent.following({**agent.record(), "CleanupDeadServers": False, "LastContactThreshold": 10**9,
                           "MinQuorum": 4, "ServerStabilizationTime": 0})
    assert (got.cleanup_dead_servers, got.last_contact_threshold_s, got.min_quorum,
            got.server_stabilization_time_s) == (False, 1.0, 4, 0.0)


# ---------------------------------------------------------------- five servers in the simulator


def _peers(c: GossipCluster) -> dict[str, Any]:
    out = {}
    for i in range(N):
        node = c.sched.nodes[member_addr(i)]
        if node.up:
            out[member_addr(i)] = (c.sched.actor_of(node.actors["raft"]),
                                   c.sched.actor_of(node.actors["server-membership"]))
    return out


def _write(c: GossipCluster, via: str, config: dict[str, Any]) -> None:
    fut = c.sched.future_cls()
    c.sched.nodes[via].actors["raft"].tell(Propose(data=command("autopilot_set_config", config=config),
                                                   reply=fut))
    _, result = fut.get(timeout=10.0)
    assert result["updated"], result


def _everywhere(c: GossipCluster, want: dict[str, Any]) -> bool:
    """Every live server's membership and Raft use *want*'s settings."""
    for raft, member in _peers(c).values():
        ap: ServerMembership = member.ap
        if (ap.cleanup_dead_servers, ap.min_quorum, ap.max_trailing_logs) != \
                (want["CleanupDeadServers"], want["MinQuorum"], want["MaxTrailingLogs"]):
            return False
        if ap.last_contact_threshold_s != want["LastContactThreshold"] / 1e9:
            return False
        ticks = round(want["ServerStabilizationTime"] / 1e9 / raft.core.t.tick_s)
        t = raft.core.t
        if (t.stabilization_ticks, t.promote_max_trailing) != (ticks, want["MaxTrailingLogs"]):
            return False
    return True


def _started(seed: int) -> tuple[GossipCluster, dict[str, Any]]:
    # Raft ticks every 0.5 s in these clusters: health's threshold scales with it (test_autopilot_sim).
    agent = AutopilotConfig(replicated=True, last_contact_threshold_s=1.0, server_stabilization_time_s=2.0)
    c, _ = _cluster(seed, agent)
    assert _run_until(c, lambda: _leader(c) is not None and len(_leader(c)[1].core.voters) == N, 120.0)
    assert _run_until(c, lambda: all(ap_cfg.current(r.state.tables) for r, _ in _peers(c).values()), 30.0)
    return c, agent.record()


def test_the_leader_seeds_the_agents_settings_and_every_server_follows_a_change():
    c, seeded = _started(5)
    leader, _ = _leader(c)
    rec = ap_cfg.current(_peers(c)[leader][0].state.tables)
    assert {k: rec[k] for k in seeded} == seeded and rec["CreateIndex"] == rec["ModifyIndex"] > 0
    assert _everywhere(c, seeded)
    follower = next(a for a in _peers(c) if a != leader)
    changed = {**seeded, "MaxTrailingLogs": 7, "ServerStabilizationTime": 3 * 10**9, "MinQuorum": 2,
               "LastContactThreshold": 2 * 10**9}
    _write(c, follower, changed)  # a follower's write goes through the leader, as an operator's does
    assert _run_until(c, lambda: _everywhere(c, changed), 10.0)
    # A new leader keeps the record: it does not seed its own over it.
    c.crash(leader)
    assert _run_until(c, lambda: _leader(c) is not None and _leader(c)[0] != leader, 60.0)
    c.run(5.0, full=False)
    assert _everywhere(c, changed)
    assert ap_cfg.current(_leader(c)[1].state.tables)["ModifyIndex"] == \
        ap_cfg.current(_peers(c)[follower][0].state.tables)["ModifyIndex"]
    c.close()


def test_cleanup_and_its_min_quorum_floor_follow_the_replicated_record():
    c, seeded = _started(6)
    leader, _ = _leader(c)
    others = [a for a in _peers(c) if a != leader]
    _write(c, leader, {**seeded, "CleanupDeadServers": False})
    assert _run_until(c, lambda: _everywhere(c, {**seeded, "CleanupDeadServers": False}), 10.0)
    victim = others[0]
    c.crash(victim)
    c.run(60.0, full=False)  # gossip marks it failed; autopilot runs every 10 s
    assert victim in _leader(c)[1].core.voters  # kept: cleanup is off cluster-wide
    # min_quorum 5: removing one of five voters would leave four.
    _write(c, leader, {**seeded, "MinQuorum": 5})
    c.run(40.0, full=False)
    assert victim in _leader(c)[1].core.voters
    _write(c, leader, {**seeded, "MinQuorum": 4})
    assert _run_until(c, lambda: victim not in _leader(c)[1].core.voters, 60.0)
    c.close()


def test_health_thresholds_follow_the_replicated_record():
    c, seeded = _started(7)
    leader, _ = _leader(c)
    c.run(6.0, full=False)
    assert _health(c, leader)["Healthy"]
    _write(c, leader, {**seeded, "MaxTrailingLogs": 0, "LastContactThreshold": 1})  # 1 ns: nobody keeps up
    assert _run_until(c, lambda: not any(r["Healthy"] for r in _health(c, leader)["Servers"]
                                         if r["ID"] != leader), 10.0)
    _write(c, leader, seeded)
    assert _run_until(c, lambda: _health(c, leader)["Healthy"], 10.0)
    c.close()


def test_the_agents_autopilot_block_is_what_the_leader_seeds(tmp_path):
    from runtime.config import ConfigError, load_files, validate

    path = tmp_path / "ap.toml"
    path.write_text('[autopilot]\ncleanup_dead_servers = false\nlast_contact_threshold = "300ms"\n'
                    'max_trailing_logs = 9\nmin_quorum = 3\nserver_stabilization_time = "20s"\n')
    cfg, _, _ = load_files([str(path)])
    agent = AutopilotConfig.from_config(cfg.autopilot)
    assert agent.replicated
    assert ap_cfg.to_api(agent.record()) == {
        "CleanupDeadServers": False, "LastContactThreshold": "300ms", "MaxTrailingLogs": 9, "MinQuorum": 3,
        "ServerStabilizationTime": "20s", "EnableRedundancyZones": False, "DisableUpgradeMigration": False,
        "EnableCustomUpgrades": False, "CreateIndex": 0, "ModifyIndex": 0}
    path.write_text("[server]\nenabled = true\n[autopilot]\nmin_quorum = -1\n")
    with pytest.raises(ConfigError, match="^autopilot.min_quorum: "):
        validate(load_files([str(path)])[0])


def test_a_full_watch_table_does_not_make_membership_ask_again_and_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Raft answers a watch at once when it holds too many (max_watches): the membership actor then
    waits for its next reconcile tick instead of re-asking in the same instant, forever."""
    from dataclasses import replace

    c, _ = _cluster(5, AutopilotConfig(replicated=True))
    assert _run_until(c, lambda: _leader(c) is not None, 60)
    c.run(5.0, full=False)
    node = member_addr(1)
    raft = c.sched.actor_of(c.sched.nodes[node].actors["raft"])
    raft.cfg = replace(raft.cfg, max_watches=0)
    asked = {"n": 0}
    real = ServerMembership._watch_config

    def counting(self: ServerMembership) -> None:
        if self.env.node == node:
            asked["n"] += 1
            assert asked["n"] < 1000, f"re-asked {asked['n']} times by t={c.sched.now:.3f}"
        real(self)

    monkeypatch.setattr(ServerMembership, "_watch_config", counting)
    c.run(40.0, full=False)
    assert 0 < asked["n"] <= 50  # about one a reconcile tick
