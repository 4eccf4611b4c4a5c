"""bin/nomad against a real agent: members, raft peers, join errors, unreachable agents."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.test_agent_process import ROOT, agent_config, agents  # noqa: F401

pytestmark = pytest.mark.timeout(60)
NOMAD = f"{ROOT}/bin/nomad"


def nomad(addr: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address={addr}", *args], capture_output=True, text=True,
                          timeout=30)


def test_cli_shows_members_and_raft_peers_and_reports_errors_in_one_line(agents, tmp_path):
    cfg = agent_config(tmp_path / "a.toml", tmp_path / "data", name="cli-node")
    agents(["-config", cfg["path"]], http_port=cfg["http"]).wait_healthy()
    addr = f"http://127.0.0.1:{cfg['http']}"
    out = nomad(addr, "server", "members")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split()[:4] == ["Name", "Address", "Port", "Status"]
    assert row.split()[:5] == ["cli-node.global", "127.0.0.1", str(cfg["serf"]), "alive", "true"]
    members = json.loads(nomad(addr, "server", "members", "-json").stdout)
    assert [m["Name"] for m in members] == ["cli-node.global"] and members[0]["Tags"]["role"] == "nomad"
    info = json.loads(nomad(addr, "agent-info", "-json").stdout)
    assert set(info) >= {"config", "member", "stats"} and info["config"]["NodeName"] == "cli-node"
    peers = nomad(addr, "operator", "raft", "list-peers")
    assert peers.returncode == 0 and f"127.0.0.1:{cfg['rpc']}" in peers.stdout and "leader" in peers.stdout
    bad = nomad(addr, "server", "join", "127.0.0.1:9")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "127.0.0.1:9" in bad.stderr
    gone = nomad("http://127.0.0.1:9", "server", "members")
    assert (gone.returncode, gone.stderr) == (1, 'Error querying servers: Get "http://127.0.0.1:9/v1/agent/members": '
                                              "dial tcp 127.0.0.1:9: connect: connection refused\n")


def test_server_members_detailed_has_nomads_column_order(monkeypatch):
    """Nomad's verboseOutput: ...|Leader|Protocol|Raft Version|Build|Datacenter|Region|Tags."""
    from runtime import cli

    member = {"Name": "s1.global", "Addr": "10.0.0.1", "Port": 4648, "Status": "alive", "ProtocolCur": 2,
              "Tags": {"region": "global", "dc": "dc1", "build": "2.0.6", "raft_vsn": "3", "port": "4647"}}

    def call(addr, method, path, accept=(), **query):
        return {"Members": [member]} if path == "/v1/agent/members" else "10.0.0.1:4647"

    monkeypatch.setattr(cli, "call", call)
    header, row = cli.server_members("http://x", ["-detailed"]).splitlines()
    assert re.split(r"\s{2,}", header) == [
        "Name", "Address", "Port", "Status", "Leader", "Protocol", "Raft Version", "Build", "Datacenter",
        "Region", "Tags"]
    assert row.split()[:10] == ["s1.global", "10.0.0.1", "4648", "alive", "true", "2", "3", "2.0.6", "dc1",
                                "global"]
    assert row.split()[10].startswith("build=2.0.6,dc=dc1,")
    assert "Protocol" not in cli.server_members("http://x", [])


def test_server_members_warns_and_exits_1_when_a_regions_leader_cannot_be_asked(monkeypatch, capsys):
    """command/server_members.go regionLeaders: every region with a member not left is asked for its
    leader; a failure (all of eu's servers failed: "No path to region") prints the list, an empty line,
    then warns "Error determining leaders" with go-multierror's list and exits 1.  A region whose
    members have all left is not asked.  -json tags each member Leader and exits 0 all the same."""
    from runtime import cli

    def member(name, addr, region, status):
        return {"Name": name, "Addr": addr, "Port": 4648, "Status": status, "ProtocolCur": 2,
                "Tags": {"region": region, "dc": "dc1", "build": "2.0.6", "raft_vsn": "3", "port": "4647"}}

    members = [member("g1.global", "10.0.0.1", "global", "alive"),
               member("e1.eu", "10.0.1.1", "eu", "failed"), member("o1.old", "10.0.2.1", "old", "left")]
    asked: list[str] = []

    def call(addr, method, path, accept=(), **query):
        if path == "/v1/agent/members":
            return {"Members": [dict(m, Tags=dict(m["Tags"])) for m in members]}
        asked.append(query.get("region", ""))
        if query.get("region") == "eu":
            raise cli.ApiError("Unexpected response code: 500 (No path to region)")
        return "10.0.0.1:4647"

    monkeypatch.setattr(cli, "call", call)
    assert cli.server_members("http://x", []) == ("", 1)
    assert sorted(asked) == ["eu", "global"]
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [ln.split()[:5] for ln in lines[1:4]] == [
        ["e1.eu", "10.0.1.1", "4648", "failed", "false"], ["g1.global", "10.0.0.1", "4648", "alive", "true"],
        ["o1.old", "10.0.2.1", "4648", "left", "false"]]
    assert out.endswith("\n\n")
    assert err == ('Error determining leaders: 1 error occurred:\n\t* Region "eu": Unexpected response code: '
                   "500 (No path to region)\n\n\n")
    got = json.loads(cli.server_members("http://x", ["-json"]))
    assert [(m["Name"], m["Tags"]["Leader"]) for m in got] == [
        ("e1.eu", "false"), ("g1.global", "true"), ("o1.old", "false")]
    assert next(iter(got[0]["Tags"])) == "Leader"  # a Go map marshals with its keys sorted


def test_server_join_and_force_leave_misuse_is_worded_as_nomad(monkeypatch):
    """command/server_join.go and server_force_leave.go: their own misuse lines, then commandErrorText;
    -prune is a flag (an unknown flag is refused, not taken for a node name)."""
    from runtime import cli

    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(cli, "call", lambda addr, method, path, accept=(), **q: sent.append((path, q)) or {})
    with pytest.raises(cli.CliError) as e:
        cli.server_join("http://x", [])
    assert str(e.value) == ("One or more node addresses must be given as arguments\n"
                            "For additional help try 'nomad server join -help'")
    for args in ([], ["a", "b"], ["-prune"]):
        with pytest.raises(cli.CliError) as e:
            cli.server_force_leave("http://x", args)
        assert str(e.value) == ("This command takes one argument: <node>\n"
                                "For additional help try 'nomad server force-leave -help'")
    with pytest.raises(cli.CliError, match="flag provided but not defined: -bogus"):
        cli.server_force_leave("http://x", ["-bogus", "s3.global"])
    assert sent == []
    cli.server_force_leave("http://x", ["-prune", "s3.global"])
    assert sent == [("/v1/agent/force-leave", {"node": "s3.global", "prune": "true"})]


def test_raft_list_peers_sorts_by_node_name_and_takes_stale(monkeypatch):
    """command/operator_raft_list.go: sort.Slice by Node; -stale sets AllowStale; other flags refused."""
    from runtime import cli

    asked: list[dict] = []
    servers = [{"Node": "s2.global", "ID": "b", "Address": "10.0.0.2:4647", "Leader": True, "Voter": True,
                "RaftProtocol": "3"},
               {"Node": "s1.global", "ID": "a", "Address": "10.0.0.1:4647", "Leader": False, "Voter": True,
                "RaftProtocol": "3"}]
    monkeypatch.setattr(cli, "call",
                        lambda addr, m, path, accept=(), **q: asked.append(q) or {"Servers": servers})
    out = cli.raft_list_peers("http://x", ["-stale"]).splitlines()
    assert [line.split()[0] for line in out] == ["Node", "s1.global", "s2.global"]
    assert asked == [{"stale": "true"}]
    with pytest.raises(cli.CliError, match="flag provided but not defined: -json"):
        cli.raft_list_peers("http://x", ["-json"])


def test_the_t_flag_formats_a_commands_json_output_with_a_go_template(monkeypatch, capsys):
    """Nomad's -t: the same data as -json, through text/template; both at once is refused."""
    from runtime import cli
    from runtime.cli_jobs import as_json, parse_flags

    def listing(addr: str, args: list[str]) -> str:
        flags, _ = parse_flags(args, {"json": bool, "verbose": bool})
        data = [{"ID": "a1", "Status": "running", "Count": 2}, {"ID": "b2", "Status": "dead", "Count": 0}]
        return as_json(data) if flags.get("json") else "table"

    def plain(addr: str, args: list[str]) -> str:
        parse_flags(args, {})
        return "x"

    monkeypatch.setitem(cli.COMMANDS, ("fake", "list"), listing)
    monkeypatch.setitem(cli.COMMANDS, ("fake", "plain"), plain)
    tmpl = '{{range .}}{{.ID}}={{.Status}}{{if gt .Count 0}} ({{.Count}}){{end}}\n{{end}}'
    assert cli.main(["fake", "list", "-verbose", "-t", tmpl]) == 0
    assert capsys.readouterr().out == "a1=running (2)\nb2=dead\n\n"
    assert cli.main(["fake", "list", "-t={{len .}}"]) == 0
    assert capsys.readouterr().out == "2\n"
    assert cli.main(["fake", "list", "-json", "-t", "{{.}}"]) == 1
    assert "Both json and template formatting are not allowed" in capsys.readouterr().err
    assert cli.main(["fake", "list", "-t", "{{.Nope"]) == 1
    assert "Error formatting the data: template: :1:" in capsys.readouterr().err
    assert cli.main(["fake", "plain", "-t", "{{.}}"]) == 1
    assert "flag provided but not defined: -t" in capsys.readouterr().err


def test_nomads_top_level_shorthands_run_their_commands_and_the_deprecated_ones_warn(monkeypatch, capsys):
    from runtime import cli

    seen: list[tuple[str, list[str]]] = []
    for words in set(cli.ALIASES.values()):
        assert words in cli.COMMANDS, words  # every shorthand names a real command
        monkeypatch.setitem(cli.COMMANDS, words, lambda addr, args, w=words: seen.append((" ".join(w), args)))
    assert cli.main(["run", "-detach", "web.nomad.hcl"]) == 0
    assert cli.main(["logs", "-stderr", "a1"]) == 0
    assert cli.main(["node-status", "-self"]) == 0
    assert seen == [("job run", ["-detach", "web.nomad.hcl"]), ("alloc logs", ["-stderr", "a1"]),
                    ("node status", ["-self"])]
    assert capsys.readouterr().err == ""
    assert cli.main(["server-members"]) == 0
    assert seen[-1] == ("server members", [])
    assert capsys.readouterr().err.startswith('WARNING! The "nomad server-members" command is deprecated. '
                                              'Please use "nomad server members" instead.')
