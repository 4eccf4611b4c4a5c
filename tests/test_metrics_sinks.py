"""telemetry.statsd_address and datadog_address: every metric also goes out as statsd lines over UDP."""

from __future__ import annotations

import re
import socket

import pytest

from actors.metrics import Metrics
from runtime.config import ConfigError, load_files, validate
from runtime.metrics_sinks import MAX_PACKET_BYTES, StatsdSink
from tests.test_agent_process import STEP_DEADLINE_S, AgentProc, agent_config, wait_for


@pytest.fixture
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(STEP_DEADLINE_S)
    yield s
    s.close()


def _address(s: socket.socket) -> str:
    return "%s:%d" % s.getsockname()


def test_statsd_lines_carry_label_values_in_the_key(udp):
    m = Metrics(clock=lambda: 0.0, hostname="web-1")
    sink = StatsdSink(_address(udp))
    m.sinks.append(sink)
    m.set_gauge(("raft", "appliedIndex"), 42)
    m.incr_counter(("agent", "signals"), 1, (("signal", "SIGHUP"),))
    m.add_sample(("raft", "commitTime"), 0.25)
    sink.flush()
    lines = udp.recv(65536).decode().splitlines()
    assert lines == ["nomad.raft.appliedIndex.web-1:42|g", "nomad.agent.signals.SIGHUP.web-1:1|c",
                     "nomad.raft.commitTime.web-1:0.250000|ms"]


def test_dogstatsd_lines_carry_labels_and_the_configured_tags(udp):
    m = Metrics(clock=lambda: 0.0)
    sink = StatsdSink(_address(udp), dogstatsd=True, tags=("env:prod",))
    m.sinks.append(sink)
    m.set_gauge(("client", "allocated", "cpu"), 500, (("node_id", "n1"), ("datacenter", "dc1")))
    m.set_gauge(("runtime", "num_goroutines"), 7)
    sink.flush()
    assert udp.recv(65536).decode().splitlines() == [
        "nomad.client.allocated.cpu:500|g|#env:prod,node_id:n1,datacenter:dc1",
        "nomad.runtime.num_goroutines:7|g|#env:prod"]


def test_lines_are_packed_into_datagrams_below_the_size_limit(udp):
    sink = StatsdSink(_address(udp))
    for i in range(200):
        sink.emit("gauge", f"nomad.test.gauge{i:03d}", i, ())
    packets = sink.packets()
    assert len(packets) > 1 and all(len(p) <= MAX_PACKET_BYTES for p in packets)
    lines = b"".join(packets).decode().splitlines()
    assert lines == [f"nomad.test.gauge{i:03d}:{i}|g" for i in range(200)]  # none lost, in order


def test_an_unreachable_server_costs_a_counted_send_not_the_caller():
    sink = StatsdSink("no-such-host.invalid:8125")
    sink.emit("gauge", "nomad.x", 1, ())
    sink.flush()
    assert sink.send_errors == 1 and not sink.lines


@pytest.mark.parametrize("value", ["localhost", "localhost:0", "localhost:99999", ":8125"])
def test_a_bad_sink_address_is_a_config_error(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(f'data_dir = "/var/lib/nomad"\n[server]\nenabled = true\nbootstrap_expect = 1\n'
                    f'[telemetry]\nstatsd_address = "{value}"\n')
    error = f'telemetry.statsd_address: want host:port, got "{value}"'
    with pytest.raises(ConfigError, match=re.escape(error)):
        cfg, _, _ = load_files([str(path)])
        validate(cfg)


def test_the_agent_sends_its_metrics_to_statsd(tmp_path, udp):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data",
                       tables=f'[telemetry]\nstatsd_address = "{_address(udp)}"\ndisable_hostname = true\n')
    agent = AgentProc(["-config", cfg["path"]])
    agent.http_port = cfg["http"]
    seen: set[str] = set()

    def got_raft_and_runtime() -> bool:
        try:
            for line in udp.recv(65536).decode().splitlines():
                seen.add(line.split(":", 1)[0])
        except TimeoutError:
            pass
        return {"nomad.raft.appliedIndex", "nomad.runtime.num_goroutines"} <= seen

    try:
        agent.wait_healthy()
        wait_for(got_raft_and_runtime, "raft and runtime gauges over statsd", 20.0, agent.detail)
    finally:
        agent.kill()


def test_prefix_filter_keeps_or_drops_by_the_longest_matching_prefix(udp):
    m = Metrics(clock=lambda: 0.0, prefix_filter=("-nomad.raft", "+nomad.raft.leader", "-nomad.client.host"))
    sink = StatsdSink(_address(udp))
    m.sinks.append(sink)
    for key in (("raft", "apply"), ("raft", "leader", "dispatchLog"), ("client", "host", "memory", "total"),
                ("client", "allocated", "cpu")):
        m.set_gauge(key, 1)
    names = {g["Name"] for g in m.summary()["Gauges"]}
    assert names == {"nomad.raft.leader.dispatchLog", "nomad.client.allocated.cpu"}
    sink.flush()
    assert {line.split(":")[0] for line in udp.recv(65536).decode().splitlines()} == names  # every sink
    only = Metrics(clock=lambda: 0.0, prefix_filter=("+nomad.raft",), filter_default=False)
    only.incr_counter(("raft", "apply"))
    only.incr_counter(("agent", "reloads"))
    assert [c["Name"] for c in only.summary()["Counters"]] == ["nomad.raft.apply"]


@pytest.mark.parametrize("value", ["nomad.raft", "+", "*nomad"])
def test_a_prefix_filter_without_a_sign_is_a_config_error(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(f'data_dir = "/var/lib/nomad"\n[server]\nenabled = true\nbootstrap_expect = 1\n'
                    f'[telemetry]\nprefix_filter = ["{value}"]\n')
    with pytest.raises(ConfigError, match="telemetry.prefix_filter"):
        cfg, _, _ = load_files([str(path)])
        validate(cfg)


def test_prometheus_drops_series_not_updated_for_a_minute():
    now = [0.0]
    m = Metrics(clock=lambda: now[0], interval_s=10.0)
    m.set_gauge(("client", "allocs", "memory", "rss"), 5, (("alloc_id", "gone"),))
    for t in range(0, 130, 10):  # the node's gauge is re-set all along; the allocation's stopped at 0
        now[0] = float(t)
        m.set_gauge(("client", "allocated", "cpu"), 100)
        m.incr_counter(("agent", "reloads")) if t == 0 else None
    text = m.prometheus_text()
    assert "nomad_client_allocated_cpu" in text
    assert 'alloc_id="gone"' not in text and "nomad_agent_reloads" not in text
    assert len(m._prom_seen) == 1  # and the memory they held is gone too
