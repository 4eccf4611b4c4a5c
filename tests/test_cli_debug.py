"""``nomad operator debug``: the support bundle (runtime.cli_debug), its flags and a real capture."""

from __future__ import annotations

import json
import marshal
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime import cli
from runtime.cli import CliError
from runtime.cli_debug import _parse, debug, filter_servers, sanitize_uuid_prefix, topics_from_string

REPO = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9"  # flag errors are found before any request is made

# ---- flags: Nomad's messages, before anything is asked of the agent


@pytest.mark.parametrize(("args", "message"), [
    (["-duration=soon"], 'Error parsing duration: soon: time: invalid duration "soon"'),
    (["-interval=x"], 'Error parsing interval: x: time: invalid duration "x"'),
    (["-duration=1s", "-interval=2s"], "Error parsing interval: 2s is greater than duration 1s"),
    (["-pprof-duration=1"], 'Error parsing pprof duration: 1: time: invalid duration "1"'),
    (["-pprof-interval=q"], 'Error parsing pprof-interval: q: time: invalid duration "q"'),
    (["-log-lookback=1h", "-log-file-export"],
     "Error parsing inputs, -log-file-export and -log-lookback cannot be used together."),
    (["-log-lookback=yesterday"],
     'Error parsing -log-lookback: yesterday: time: invalid duration "yesterday"'),
    (["-event-index=-1"], "Event stream index must be greater than zero"),
    (["-event-index=x"],
     'Error parsing arguments: "invalid value \\"x\\" for flag -event-index: parse error"'),
    (["-max-nodes=many"],
     'Error parsing arguments: "invalid value \\"many\\" for flag -max-nodes: parse error"'),
    (["-event-topic=Job:a:b"],
     "Error parsing event topics: 1 error occurred:\n\t* Invalid key value pair for topic: \n\n"),
    (["-bogus"], 'Error parsing arguments: "flag provided but not defined: -bogus"'),
    (["-stale=maybe"], 'Error parsing arguments: "invalid boolean value \\"maybe\\" for -stale"'),
    (["extra"], "This command takes no arguments\nFor additional help try 'nomad debug -help'"),
])
def test_bad_flags_are_refused_with_nomads_messages(args: list[str], message: str) -> None:
    with pytest.raises(CliError) as e:
        debug(NOWHERE, args)
    assert str(e.value) == message


def test_defaults_and_clamps_are_nomads() -> None:
    opts = _parse([])
    assert (opts["duration_s"], opts["interval_s"], opts["max-nodes"]) == (300.0, 30.0, 10)
    assert (opts["log-level"], opts["log-include-location"], opts["node-id"], opts["server-id"]) == \
        ("TRACE", True, "all", "all")
    assert opts["topics"] is None and opts["pprof_duration_s"] == 1.0 and opts["pprof_interval_s"] == 30.0
    # pprof duration is at most the capture's; the pprof interval at least the pprof duration
    short = _parse(["-duration=500ms", "-interval=500ms", "-pprof-duration=3s", "-pprof-interval=100ms"])
    assert short["pprof_duration_s"] == 0.5 and short["pprof_interval_s"] == 0.5


def test_event_topics_server_selection_and_uuid_prefixes() -> None:
    assert topics_from_string("none") is None
    assert topics_from_string("all") == {"*": ["*"]}
    assert topics_from_string("job, evaluation:web,Job:api") == {"Job": ["*", "api"], "Evaluation": ["web"]}
    members = [{"Name": "a1.global", "Tags": {"region": "global"}},
               {"Name": "b1.eu", "Tags": {"region": "eu"}}]
    assert filter_servers(members, "all", "") == ["a1.global", "b1.eu"]
    assert filter_servers(members, "all", "eu") == ["b1.eu"]
    assert filter_servers(members, "leader,a", "") == ["leader", "a1.global"]
    assert filter_servers(members, "zz", "") == []
    assert [sanitize_uuid_prefix(p) for p in ("abc", "ab", "a")] == ["ab", "ab", "a"]
    assert sanitize_uuid_prefix("abcd-e") == "abcd-"  # Nomad drops the last character only


def test_a_flag_error_exits_1_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-address", NOWHERE, "operator", "debug", "-duration=1s", "-interval=5s"]) == 1
    assert capsys.readouterr().err == "Error parsing interval: 5s is greater than duration 1s\n"


# ---- a real capture from a -dev agent

GOSSIP_KEY = "HH5jp0IF3Zw3mTCYY2Dw3n2OU7CyRGV4PB8g0dH6nVk="
TOKEN = "5f1c0d6e-0000-4bad-8bad-5ecre7700001"


def _nomad(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "bin" / "nomad"), f"-address=http://127.0.0.1:{port}",
                           f"-token={TOKEN}", "operator", "debug", *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_a_capture_from_a_dev_agent_is_archived_in_nomads_layout_with_secrets_redacted(
        tmp_path: Path) -> None:
    from tests.test_agent_process import nomad_agent_dev, wait_for
    from tests.test_http_jobs import call

    agent = nomad_agent_dev(tmp_path, f'server {{\n  encrypt = "{GOSSIP_KEY}"\n}}\n')
    port = agent.http_port
    try:
        agent.wait_healthy()
        node = wait_for(lambda: call(port, "GET", "/v1/nodes").json(), "the dev node")[0]["ID"]
        server = call(port, "GET", "/v1/agent/members").json()["Members"][0]["Name"]
        run = _nomad(tmp_path, port, "-duration=2s", "-interval=1s", "-event-topic=Node",
                     f"-server-id=leader,{server}")
        assert run.returncode == 0, run.stderr
        out = run.stdout.splitlines()
        assert out[:2] == ["Starting debugger...", ""]
        assert f"          Servers: (2/1) [leader {server}]" in out
        assert f"          Clients: (1/1) [{node}]" in out
        assert "         Interval: 1s" in out and "         Duration: 2s" in out
        assert "     Event topics: map[Node:[*]]" in out
        assert "    Capture interval 0000" in out and "    Capture interval 0001" in out
        assert out[-1].startswith("Created debug archive: nomad-debug-") and out[-1].endswith("Z.tar.gz")
        archive = tmp_path / out[-1].split(": ", 1)[1]
        stamped = archive.name[: -len(".tar.gz")]
        with tarfile.open(archive) as tar:
            files = {m.name[len(stamped) + 1:]: tar.extractfile(m).read() for m in tar.getmembers()}
        for name in ("index.json", "index.html", "cluster/cli-flags.json", "cluster/agent-self.json",
                     "cluster/members.json", "cluster/leader.json", "cluster/nodes.json",
                     "cluster/regions.json", "cluster/namespaces.json", "cluster/eventstream.json",
                     f"server/{server}/agent-host.json", f"client/{node}/agent-host.json",
                     f"client/{node}/monitor.log", "server/leader/monitor.log",
                     "server/leader/goroutine-debug2_0000.txt", "server/leader/profile_0000.prof",
                     f"client/{node}/profile_0000.prof"):
            assert name in files, (name, sorted(files))
        for interval in ("0000", "0001"):
            for name in ("jobs.json", "allocations.json", "evaluations.json", "deployments.json",
                         "nodes.json", "metrics.json", "operator-raft.json", "operator-scheduler.json",
                         "operator-autopilot-health.json", "license.json", "csi-plugins.json"):
                assert f"interval/{interval}/{name}" in files
        # the manifest lists what was written, index files and streams aside, as Nomad's
        index = json.loads(files["index.json"])
        assert index[0] == "cluster/cli-flags.json" and "interval/0001/metrics.json" in index
        assert "index.json" not in index and "server/leader/monitor.log" not in index
        # contents
        assert json.loads(files["cluster/leader.json"]) == call(port, "GET", "/v1/status/leader").json()
        assert [json.loads(line)["ID"] for line in files["interval/0000/nodes.json"].splitlines()] == [node]
        assert json.loads(files["interval/0000/license.json"]) == {"Error": "Nomad Enterprise only endpoint"}
        assert json.loads(files["interval/0000/operator-raft.json"])["Servers"][0]["Leader"] is True
        assert "Gauges" in json.loads(files["interval/0001/metrics.json"])
        assert b"[DEBUG]" in files["server/leader/monitor.log"]  # the agent's log lines over the capture
        # Each agent's logs and stacks by its own name too (-dev turns enable_debug on, as Nomad's).
        for name in (f"server/{server}/monitor.log", f"client/{node}/monitor.log"):
            assert b"[DEBUG]" in files[name] and b"monitor: " not in files[name], files[name][:200]
        assert b"Greenlet" in files[f"server/{server}/goroutine-debug2_0000.txt"] or \
            files[f"server/{server}/goroutine-debug2_0000.txt"].strip()
        # the CPU profile is pstats's file: what `python -m pstats` opens
        profile = marshal.loads(files["server/leader/profile_0000.prof"])
        assert isinstance(profile, dict) and any(key[2] == "sleep" for key in profile), list(profile)[:5]
        host = json.loads(files[f"server/{server}/agent-host.json"])
        assert host["AgentID"] == server and "Disk" in host["HostData"]
        events = [json.loads(line) for line in files["cluster/eventstream.json"].splitlines()]
        assert events and {e["Topic"] for e in events} == {"Node"}
        # secrets: the token only as [redacted], the gossip key nowhere
        flags = json.loads(files["cluster/cli-flags.json"])
        assert flags["Actual"]["token"]["Value"] == "[redacted]"
        assert flags["Actual"]["duration"]["Value"] == "2s" and flags["Formal"]["max-nodes"]["Value"] == "10"
        assert json.loads(files["cluster/agent-self.json"])["config"]["Server"]["EncryptKey"] == "<redacted>"
        for name, body in files.items():
            assert TOKEN.encode() not in body and GOSSIP_KEY.encode() not in body, name
        # node selection by prefix: none found is Nomad's error, before any capture
        miss = _nomad(tmp_path, port, "-node-id=zz")
        assert miss.returncode == 1
        assert miss.stderr == ('No node(s) with prefix "zz" found\n'
                               "Failed to retrieve clients, 0 nodes found in list: zz\n")
        # a signal ends a long capture early, as Nomad's trap: the bundle is still written
        proc = subprocess.Popen([sys.executable, str(REPO / "bin" / "nomad"),
                                 f"-address=http://127.0.0.1:{port}", "operator", "debug", "-duration=5m",
                                 "-interval=1s", "-output", str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            for line in proc.stdout:
                if line.startswith("    Capture interval 0000"):
                    proc.send_signal(signal.SIGTERM)
                    break
            rest, _ = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0 and rest.startswith("Created debug directory: ")
        bundle = Path(rest.split(": ", 1)[1].strip())
        assert (bundle / "index.json").exists() and (bundle / "interval" / "0000" / "jobs.json").exists()
    finally:
        agent.kill()


def test_help_is_printed_without_asking_the_agent(capsys) -> None:
    from runtime.cli import main

    code = main([f"-address={NOWHERE}", "operator", "debug", "-help"])
    assert code == 0 and capsys.readouterr().out.startswith("Usage: nomad operator debug [options]")
