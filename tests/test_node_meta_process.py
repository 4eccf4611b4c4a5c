"""Dynamic node metadata on real agents: ``/v1/client/metadata``, ``nomad node meta``, relaying, restarts.

One ``-dev`` agent (static ``client.meta`` rack = "r1") is shared by the
module's HTTP, CLI and scheduling tests; the relay and restart test runs a
server and a client-only agent with data dirs, the client restarted.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from tests.test_agent_process import AgentProc, agents, free_port, wait_for  # noqa: F401
from tests.test_cli_jobs import nomad
from tests.test_client_forwarding import REGISTER_DEADLINE_S, client_agent, server_agent
from tests.test_http_jobs import PLACE_DEADLINE_S, call, node_id, running_agent, sleep_job

pytestmark = pytest.mark.timeout(180)
# The servers see a change after the client's node-update debounce: 1 s in dev
# mode, 5 s plus a stagger of up to 5 s otherwise; the rest is a loaded machine.
DEV_UPDATE_DEADLINE_S = 15.0
UPDATE_DEADLINE_S = 30.0
PATH = "/v1/client/metadata"


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("meta-dev")
    port = free_port()
    path = tmp / "agent.toml"
    path.write_text(f"[ports]\nhttp = {port}\nrpc = {free_port()}\nserf = {free_port()}\n"
                    '[client.meta]\nrack = "r1"\n')
    with running_agent(["-dev", "-config", str(path)], port) as agent:
        yield agent


def _server_meta(port: int, nid: str) -> dict[str, str]:
    return call(port, "GET", f"/v1/node/{nid}").json()["Meta"]


def test_read_and_apply_over_http_reach_the_servers_node(dev):
    port = dev.http_port
    nid = node_id(port)
    r = call(port, "GET", PATH)
    assert r.status == 200, r.text
    assert r.json() == {"Meta": {"rack": "r1"}, "Dynamic": {}, "Static": {"rack": "r1"}}
    assert call(port, "GET", f"{PATH}?node_id={nid}").json() == r.json()

    r = call(port, "POST", PATH, {"Meta": {"role": "db", "rack": None}})
    assert r.status == 200, r.text
    assert r.json() == {"Meta": {"role": "db"}, "Dynamic": {"rack": None, "role": "db"},
                        "Static": {"rack": "r1"}}
    wait_for(lambda: _server_meta(port, nid) == {"role": "db"}, "the node meta", DEV_UPDATE_DEADLINE_S)

    r = call(port, "PUT", PATH, {"NodeID": nid, "Meta": {"rack": "r2", "role": None}})
    assert r.status == 200, r.text
    assert r.json()["Meta"] == {"rack": "r2"} and r.json()["Dynamic"] == {"rack": "r2", "role": None}
    wait_for(lambda: _server_meta(port, nid) == {"rack": "r2"}, "the node meta", DEV_UPDATE_DEADLINE_S)
    assert call(port, "GET", PATH).json()["Dynamic"] == {"rack": "r2", "role": None}
    call(port, "POST", PATH, {"Meta": {"rack": "r1"}})  # as it was, for the other tests


def test_error_paths_answer_with_nomads_reasons(dev):
    port = dev.http_port
    bad = call(port, "POST", PATH, raw=b"{not json")
    assert bad.status == 400 and bad.text.startswith("Failed to decode request body"), bad.text
    empty = call(port, "POST", PATH, raw=b"")
    assert (empty.status, empty.text) == (400, "Request body is empty")
    assert call(port, "POST", PATH, {"Meta": {}}).text == "missing required Meta object"
    key = call(port, "POST", PATH, {"Meta": {"bad key": "x"}})
    assert (key.status, key.text) == \
        (400, '"bad key" is invalid; metadata keys must be valid dotted hcl identifiers')
    typed = call(port, "POST", PATH, {"Meta": {"n": 1}})
    assert typed.status == 400 and "cannot unmarshal number" in typed.text
    unknown = call(port, "GET", f"{PATH}?node_id=00000000-0000-0000-0000-000000000000")
    assert (unknown.status, unknown.text) == (404, "Unknown node 00000000-0000-0000-0000-000000000000")
    unknown = call(port, "POST", PATH, {"NodeID": "nope", "Meta": {"a": "1"}})
    assert (unknown.status, unknown.text) == (404, "Unknown node nope")
    assert call(port, "DELETE", PATH).status == 405
    assert "a" not in call(port, "GET", PATH).json()["Meta"]  # nothing refused was applied


def _sections(out: str) -> dict[str, dict[str, str]]:
    """``nomad node meta read``'s titled blocks of ``key = value`` lines, checked aligned as formatKV does."""
    blocks: dict[str, dict[str, str]] = {}
    for block in out.strip("\n").split("\n\n"):
        title, *rows = block.splitlines()
        assert len({row.index(" = ") for row in rows}) == 1, block
        blocks[title] = dict((k.rstrip(), v) for k, _, v in (row.partition(" = ") for row in rows))
    return blocks


def test_cli_applies_unsets_and_reads_as_nomad_prints_it(dev):
    port = dev.http_port
    nid = node_id(port)
    r = nomad(dev, "node", "meta", "apply", "-unset", "rack", "tier=gold", "empty")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = nomad(dev, "node", "meta", "read")
    assert r.returncode == 0, r.stderr
    meta = call(port, "GET", PATH).json()
    assert meta["Meta"] == {"empty": "", "tier": "gold"} and meta["Static"] == {"rack": "r1"}
    assert {"empty": "", "rack": None, "tier": "gold"}.items() <= meta["Dynamic"].items()
    sections = _sections(r.stdout)
    assert list(sections) == ["All Meta", "Dynamic Meta", "Static Meta"]
    shown = lambda v: "<unset>" if v is None else v or "<none>"  # noqa: E731  (Nomad's formatKV: empty is <none>)
    assert sections["All Meta"] == {k: shown(v) for k, v in meta["Meta"].items()}
    assert sections["Static Meta"] == {k: shown(v) for k, v in meta["Static"].items()}
    assert sections["Dynamic Meta"] == {k: shown(v) for k, v in meta["Dynamic"].items()}
    r = nomad(dev, "node", "meta", "read", "-json", "-node-id", nid[:6])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == meta
    r = nomad(dev, "node", "meta", "apply", "bad/key=1")
    assert r.returncode == 1
    assert r.stderr.strip() == ('Error applying dynamic node metadata: Unexpected response code: 400 '
                                '("bad/key" is invalid; metadata keys must be valid dotted hcl identifiers)')
    r = nomad(dev, "node", "meta", "apply")
    assert r.returncode == 1 and "Must specify -unset or at least 1 key=value pair" in r.stderr
    r = nomad(dev, "node", "meta", "read", "-node-id", "x")
    assert r.returncode == 1 and "Node ID must contain at least two characters." in r.stderr
    r = nomad(dev, "node", "meta", "apply", "-node-id", nid, "-unset", "tier,empty,rack")
    assert r.returncode == 0, r.stderr
    assert call(port, "GET", PATH).json()["Meta"] == {}
    call(port, "POST", PATH, {"Meta": {"rack": "r1"}})  # as it was


def test_a_job_constrained_on_meta_is_placed_only_once_the_meta_is_applied(dev):
    port = dev.http_port
    nid = node_id(port)
    gate = [{"LTarget": "${meta.pool}", "RTarget": "blue", "Operand": "="}]
    assert call(port, "PUT", "/v1/jobs", {"Job": sleep_job("meta-gated", Constraints=gate)}).status == 200
    wait_for(lambda: any(e["Status"] == "blocked"
                         for e in call(port, "GET", "/v1/job/meta-gated/evaluations").json()),
             "the job blocked", PLACE_DEADLINE_S)
    assert call(port, "GET", "/v1/job/meta-gated/allocations").json() == []
    assert call(port, "POST", PATH, {"Meta": {"pool": "blue"}}).status == 200

    def running() -> list[dict[str, Any]]:
        return [a for a in call(port, "GET", "/v1/job/meta-gated/allocations").json()
                if a["ClientStatus"] == "running"]
    placed = wait_for(running, "the job placed", DEV_UPDATE_DEADLINE_S + PLACE_DEADLINE_S)
    assert [a["NodeID"] for a in placed] == [nid]
    assert call(port, "DELETE", "/v1/job/meta-gated?purge=true").status == 200
    call(port, "POST", PATH, {"Meta": {"pool": None}})


def test_a_server_relays_by_node_id_and_the_meta_survives_a_client_restart(agents, tmp_path):  # noqa: F811
    srv, rpc = server_agent(agents, tmp_path)
    cli = client_agent(agents, tmp_path, "cli", [f"127.0.0.1:{rpc}"]).wait_healthy()
    nid = wait_for(lambda: next((n["ID"] for n in call(srv.http_port, "GET", "/v1/nodes").json()
                                 if n["Name"] == "cli" and n["Status"] == "ready"), None),
                   "the client registered", REGISTER_DEADLINE_S)
    # The server is no client: it needs a node, then relays to it.
    none = call(srv.http_port, "GET", PATH)
    assert (none.status, none.text) == (400, "No local Node and node_id not provided")
    r = call(srv.http_port, "POST", f"{PATH}?node_id={nid}", {"Meta": {"role": "cache"}})
    assert r.status == 200, r.text
    assert r.json() == {"Meta": {"role": "cache"}, "Dynamic": {"role": "cache"}, "Static": {}}
    assert call(cli.http_port, "GET", PATH).json()["Dynamic"] == {"role": "cache"}
    assert call(srv.http_port, "GET", f"{PATH}?node_id={nid}").json()["Dynamic"] == {"role": "cache"}
    bad = call(srv.http_port, "POST", PATH, {"NodeID": nid, "Meta": {"1x": "y"}})  # the node's refusal
    assert (bad.status, bad.text) == \
        (400, '"1x" is invalid; metadata keys must be valid dotted hcl identifiers')
    wait_for(lambda: _server_meta(srv.http_port, nid) == {"role": "cache"}, "the servers' node meta",
             UPDATE_DEADLINE_S)
    saved = tmp_path / "cli" / "client" / "node-meta.json"
    assert json.loads(saved.read_text()) == {"role": "cache"}
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600"

    cli.send(signal.SIGTERM)
    cli.wait_exit()
    again = client_agent(agents, tmp_path, "cli", [f"127.0.0.1:{rpc}"]).wait_healthy()
    r = call(again.http_port, "GET", PATH)
    assert r.json() == {"Meta": {"role": "cache"}, "Dynamic": {"role": "cache"}, "Static": {}}
    assert call(srv.http_port, "GET", f"{PATH}?node_id={nid}").json()["Meta"] == {"role": "cache"}
    assert _server_meta(srv.http_port, nid) == {"role": "cache"}
