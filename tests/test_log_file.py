"""``log_file`` with Nomad's rotation, ``enable_syslog``, and their config keys."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from runtime.config import ConfigError, load_files
from runtime.logging_setup import LogFileHandler, TextFormatter, setup_logging, syslog_handler
from tests.test_agent_process import ROOT, AgentProc, agent_config


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("agent", logging.INFO, __file__, 1, msg, None, None)


def _handler(path: str, **kw: object) -> LogFileHandler:
    h = LogFileHandler(path, **{"duration_s": 3600.0, **kw})  # type: ignore[arg-type]
    h.setFormatter(TextFormatter())
    return h


def _archives(d: str, active: str = "nomad.log") -> list[str]:
    return sorted(n for n in os.listdir(d) if n != active)


def test_a_directory_path_writes_nomad_log_0640_and_appends_to_an_existing_one(tmp_path):
    d = tmp_path / "logs"
    h = _handler(f"{d}/")
    h.emit(_record("first"))
    h.close()
    h = _handler(f"{d}/")  # a restart appends
    h.emit(_record("second"))
    h.close()
    text = (d / "nomad.log").read_text()
    assert re.search(r"\[INFO\]  agent: first\n.*\[INFO\]  agent: second\n$", text, re.S)
    assert stat.S_IMODE(os.stat(d / "nomad.log").st_mode) == 0o640


def test_rotation_by_size_keeps_the_newest_archives_only(tmp_path):
    h = _handler(str(tmp_path / "agent.log"), max_bytes=200, max_files=2)
    for i in range(40):
        h.emit(_record(f"line {i:02d} " + "x" * 40))
    h.close()
    archives = _archives(str(tmp_path), "agent.log")
    assert len(archives) == 2 and all(re.fullmatch(r"agent-\d{19}\.log", a) for a in archives)
    assert (tmp_path / "agent.log").stat().st_size <= 200 + 100  # rotated before it grew past the limit
    # Nothing lost between the newest archives and the active file: the last lines are all there.
    tail = "".join((tmp_path / a).read_text() for a in archives) + (tmp_path / "agent.log").read_text()
    assert [int(n) for n in re.findall(r"line (\d\d)", tail)] == list(range(40 - len(re.findall("line", tail)), 40))


def test_rotation_by_age_and_no_pruning_when_max_files_is_zero(tmp_path):
    h = _handler(str(tmp_path / "nomad.log"), duration_s=60.0)
    for i in range(3):
        h.emit(_record(f"day {i}"))
        h._created -= 61.0  # as if a minute passed: the next write starts a new file
    h.emit(_record("today"))
    h.close()
    assert len(_archives(str(tmp_path))) == 3
    assert (tmp_path / "nomad.log").read_text().endswith("agent: today\n")


def test_a_failing_write_costs_its_line_not_the_caller(tmp_path, capsys):
    h = _handler(str(tmp_path / "nomad.log"))
    os.close(h._fd)  # type: ignore[arg-type]
    h._fd = 10_000  # a descriptor that is not open
    h.emit(_record("lost"))  # reported on stderr by logging, no exception
    assert "Logging error" in capsys.readouterr().err


def test_the_file_follows_the_console_level(tmp_path):
    import io

    logs = setup_logging("WARN", json_format=False, stream=io.StringIO())
    try:
        logs.add(_handler(str(tmp_path / "nomad.log")), False)
        logging.getLogger("agent").info("quiet")
        logging.getLogger("agent").warning("loud")
        logs.set_level("INFO")
        logging.getLogger("agent").info("now heard")
    finally:
        logs.close()
    text = (tmp_path / "nomad.log").read_text()
    assert "quiet" not in text and "[WARN]  agent: loud" in text and "now heard" in text


def test_syslog_sends_to_the_local_socket_with_the_facility(tmp_path):
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        h = syslog_handler("LOCAL3", address=path)
        h.setFormatter(TextFormatter())
        h.emit(_record("to syslog"))
        data = server.recv(4096).decode()
        h.close()
    finally:
        server.close()
    # <PRI> = facility * 8 + severity: local3 (19) and info (6).
    assert data.startswith(f"<{19 * 8 + 6}>nomad: ") and "agent: to syslog" in data


@pytest.mark.parametrize("text, error", [
    ('syslog_facility = "LOCAL9"\n', 'syslog_facility: unknown facility "LOCAL9"'),
    ('log_file = ""\n', "log_file: must not be empty"),
    ('log_rotate_bytes = -1\n', "log_rotate_bytes: must be >= 0"),
    ('log_rotate_duration = "0s"\n', "log_rotate_duration: must be > 0s"),
])
def test_bad_log_keys_are_refused(tmp_path, text, error):
    from runtime.config import validate

    path = tmp_path / "c.toml"
    path.write_text('data_dir = "/var/lib/nomad"\n' + text + "[server]\nenabled = true\nbootstrap_expect = 1\n")
    with pytest.raises(ConfigError, match=re.escape(error)):
        cfg, _, _ = load_files([str(path)])
        validate(cfg)


def test_the_agent_logs_to_its_file_and_exits_1_when_it_cannot_open_it(tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data", log_file=f"{tmp_path}/logs/")
    agent = AgentProc(["-config", cfg["path"]])
    agent.http_port = cfg["http"]
    try:
        agent.wait_healthy()
        assert "[INFO]  agent:" in (tmp_path / "logs" / "nomad.log").read_text()
        # Nomad's `monitor export -on-disk` (GET /v1/agent/monitor/export?on_disk=true): the file as it is.
        out = subprocess.run([sys.executable, f"{ROOT}/bin/nomad", f"-address=http://127.0.0.1:{cfg['http']}",
                              "monitor", "export", "-on-disk"], capture_output=True, text=True, timeout=30)
        head = (tmp_path / "logs" / "nomad.log").read_text()[:200]
        assert out.returncode == 0 and out.stdout.startswith(head)
        refused = subprocess.run([sys.executable, f"{ROOT}/bin/nomad",
                                  f"-address=http://127.0.0.1:{cfg['http']}", "monitor", "export"],
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1 and "Either -service-name or -on-disk must be set" in refused.stderr
    finally:
        agent.kill()
    # Without a log_file there is nothing on disk to export (Nomad's 400).
    cfg = agent_config(tmp_path / "c.toml", tmp_path / "data3")
    plain = AgentProc(["-config", cfg["path"]])
    plain.http_port = cfg["http"]
    try:
        plain.wait_healthy()
        with urllib.request.urlopen(f"http://127.0.0.1:{cfg['http']}/v1/agent/monitor/export?on_disk=true",
                                    timeout=10) as resp:
            raise AssertionError(f"answered {resp.status}")
    except urllib.error.HTTPError as e:
        assert (e.code, e.read().decode()) == (400, "No nomad log file defined")
    finally:
        plain.kill()
    (tmp_path / "blocker").write_text("a file where a directory should be")
    cfg = agent_config(tmp_path / "b.toml", tmp_path / "data2", log_file=f"{tmp_path}/blocker/nomad.log")
    bad = AgentProc(["-config", cfg["path"]])
    try:
        assert bad.wait_exit() == 1
        assert "Error setting up log_file" in bad.detail()
    finally:
        bad.kill()
