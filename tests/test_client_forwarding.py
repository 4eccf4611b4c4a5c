"""A client-only agent answers the server API by relaying each request to a server over RPC.

The forwarder actor alone runs in the simulator (failover past a silent
server, an answer in pieces, the deadlines); the rest uses real processes.

Real processes on loopback: one server (``bootstrap_expect = 1``) and one
client-only agent whose ``client.servers`` names it.  Every request below
goes to the CLIENT's HTTP port; the answers are the server's (same bodies,
same ``X-Nomad-*`` headers).  Then the server is killed: the client answers
``500`` naming the unreachable server within the acknowledgement timeout,
never hangs; a client that knows no server answers Nomad's ``500 no servers``.
Every agent is killed by PID at the end (the ``agents`` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import gevent
import pytest

from actors.http_forward import (
    ENDPOINT,
    FORWARD_ACK_TIMEOUT_S,
    FORWARDER,
    Forward,
    HttpForwardAccepted,
    HttpForwarder,
    HttpForwardRequest,
    HttpForwardResponse,
)
from runtime.actor import NodeActor
from sim.runtime import Scheduler
from tests.test_agent_process import ROOT, STAGGER, agents, free_port, wait_for  # noqa: F401
from tests.test_http_jobs import call, sleep_job

pytestmark = pytest.mark.timeout(120)

NOMAD = f"{ROOT}/bin/nomad"
CLI_TIMEOUT_S = 60  # the CLI monitors an evaluation for at most 30 s
REGISTER_DEADLINE_S = 20.0  # the client registers once fingerprinted: a second or two here
ACK_TIMEOUT_S = 2.0  # actors.http_forward.FORWARD_ACK_TIMEOUT_S
SLACK_S = 2.0  # scheduling and process start-up on a loaded 2-core machine


def _write(path: Any, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _ports() -> dict[str, int]:
    return {"http": free_port(), "rpc": free_port(), "serf": free_port()}


def client_agent(agents, tmp_path, name: str, servers: list[str], *extra: str) -> Any:  # noqa: F811
    """A client-only agent; *extra* config lines go at the end (e.g. ``[client.options]``, ``[acl]``)."""
    ports = _ports()
    path = _write(tmp_path / f"{name}.toml", [
        f'name = "{name}"', f'data_dir = "{tmp_path / name}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        "[client]", "enabled = true", STAGGER, f"servers = {json.dumps(servers)}", *extra])
    return agents(["-config", path], http_port=ports["http"])


def server_agent(agents, tmp_path, *extra: str) -> tuple[Any, int]:  # noqa: F811
    """A one-server cluster, healthy; (agent, its RPC port)."""
    ports = _ports()
    path = _write(tmp_path / "server.toml", [
        'name = "srv"', f'data_dir = "{tmp_path / "srv"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1", *extra])
    return agents(["-config", path], http_port=ports["http"]).wait_healthy(), ports["rpc"]


@pytest.fixture
def pair(agents, tmp_path):  # noqa: F811
    srv, rpc = server_agent(agents, tmp_path)
    cli = client_agent(agents, tmp_path, "cli", [f"127.0.0.1:{rpc}"]).wait_healthy()
    wait_for(lambda: any(n["Name"] == "cli" and n["Status"] == "ready"
                         for n in call(srv.http_port, "GET", "/v1/nodes").json()),
             "the client registered", REGISTER_DEADLINE_S)
    return srv, cli


def nomad(agent: Any, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{agent.http_port}", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_client_agent_relays_reads_and_writes_to_its_server_with_the_servers_answer(pair):
    srv, cli = pair
    nodes = call(cli.http_port, "GET", "/v1/nodes")
    assert nodes.status == 200, nodes.text
    assert [n["Name"] for n in nodes.json()] == ["cli"]
    assert int(nodes.headers["x-nomad-index"]) > 0 and nodes.headers["x-nomad-knownleader"] == "true"
    assert call(cli.http_port, "GET", "/v1/status/leader").json() == \
        call(srv.http_port, "GET", "/v1/status/leader").json()

    reg = call(cli.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("fwd", count=0)})
    assert reg.status == 200, reg.text
    assert reg.json()["EvalID"] and reg.json()["JobModifyIndex"] > 0
    assert call(srv.http_port, "GET", "/v1/job/fwd").json()["ID"] == "fwd"  # written on the server
    assert call(cli.http_port, "GET", "/v1/job/fwd").json()["ID"] == "fwd"
    assert [j["ID"] for j in call(cli.http_port, "GET", "/v1/jobs").json()] == ["fwd"]

    # The server's errors come back as they are: status and one-line reason.
    missing = call(cli.http_port, "GET", "/v1/job/nope")
    assert (missing.status, missing.text) == (404, "job not found")
    bad = call(cli.http_port, "PUT", "/v1/jobs", raw=b"{not json")
    assert bad.status == 400, bad.text
    # The client's own endpoints stay local: its health is the client's, not the server's.
    health = call(cli.http_port, "GET", "/v1/agent/health")
    assert health.status == 200 and set(health.json()) == {"client"}
    assert call(cli.http_port, "DELETE", "/v1/job/fwd?purge=true").status == 200
    assert call(srv.http_port, "GET", "/v1/job/fwd").status == 404
    # The servers' public keys (workload identities) are the servers' answer, through the client too.
    jwks = call(cli.http_port, "GET", "/.well-known/jwks.json")
    assert (jwks.status, jwks.json()) == (200, call(srv.http_port, "GET", "/.well-known/jwks.json").json())


def test_blocking_query_through_the_client_wakes_on_a_change(pair):
    _, cli = pair
    index = int(call(cli.http_port, "GET", "/v1/jobs").headers["x-nomad-index"])
    waiter = gevent.spawn(call, cli.http_port, "GET", f"/v1/jobs?index={index}&wait=20s", None, None, 30.0)
    gevent.sleep(0.3)  # parked on the server before the change
    assert not waiter.ready()
    started = time.monotonic()
    assert call(cli.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("woken", count=0)}).status == 200
    woke = waiter.get(timeout=10.0)
    assert woke.status == 200 and int(woke.headers["x-nomad-index"]) > index
    assert [j["ID"] for j in woke.json()] == ["woken"]
    assert time.monotonic() - started < 5.0  # the change wakes it, long before its 20 s wait
    call(cli.http_port, "DELETE", "/v1/job/woken?purge=true")


def test_nomad_cli_pointed_at_the_client_runs_jobs_and_lists_nodes(pair, tmp_path):
    srv, cli = pair
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"Job": sleep_job("cli-fwd", count=0)}))
    run = nomad(cli, "job", "run", str(job))  # monitors its evaluation through the client too
    assert run.returncode == 0, run.stdout + run.stderr
    assert call(srv.http_port, "GET", "/v1/job/cli-fwd").status == 200
    status = nomad(cli, "node", "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split()[0] == "ID" and any(" cli " in f" {ln} " and "ready" in ln for ln in lines[1:])
    jobs = nomad(cli, "job", "status")
    assert jobs.returncode == 0 and "cli-fwd" in jobs.stdout, jobs.stderr
    assert nomad(cli, "job", "stop", "-purge", "-detach", "cli-fwd").returncode == 0


def test_with_its_server_gone_the_client_answers_500_within_the_ack_timeout(pair):
    srv, cli = pair
    srv.kill()
    started = time.monotonic()
    r = call(cli.http_port, "GET", "/v1/nodes", timeout_s=ACK_TIMEOUT_S + 10)
    assert time.monotonic() - started < ACK_TIMEOUT_S + SLACK_S
    assert r.status == 500 and r.text.startswith("rpc error: no server answered"), r.text
    assert call(cli.http_port, "GET", "/v1/agent/health?type=client").status in (200, 500)  # still serving


def test_a_client_that_knows_no_server_answers_no_servers(agents, tmp_path):  # noqa: F811
    cli = client_agent(agents, tmp_path, "lonely", [])
    wait_for(lambda: _answers(cli), "the client's HTTP API", 20.0, cli.detail)
    for method, path in [("GET", "/v1/jobs"), ("GET", "/v1/nodes"), ("PUT", "/v1/jobs")]:
        r = call(cli.http_port, method, path, {"Job": sleep_job("x")} if method == "PUT" else None)
        assert (r.status, r.text) == (500, "no servers"), path


def _answers(agent: Any) -> bool:
    try:
        return call(agent.http_port, "GET", "/v1/agent/self", timeout_s=2.0).status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- the forwarder actor, simulated

SIM_DEADLINE_S = 60.0  # virtual seconds


class PiecesEndpoint(NodeActor):
    """A server that acknowledges and answers in pieces (or, with ack=False, never answers at all)."""

    def __init__(self, env: Any, name: str, pieces: tuple[bytes, ...], ack: bool = True) -> None:
        super().__init__(env, name)
        self.pieces, self.ack = pieces, ack

    def receive(self, message: Any) -> Any:
        if isinstance(message, HttpForwardRequest) and self.ack:
            self.send(message.reply_node, message.reply_actor, HttpForwardAccepted(req_id=message.req_id))
            for i, piece in enumerate(self.pieces):
                self.send(message.reply_node, message.reply_actor, HttpForwardResponse(
                    req_id=message.req_id, status=200, headers=(("X-Nomad-Index", "7"),), body=piece, seq=i,
                    last=i == len(self.pieces) - 1))
        return None


def _forward(sched: Scheduler, ref: Any, servers: tuple[str, ...], answer_timeout_s: float = 5.0) -> Any:
    fut = sched.future_cls()
    ref.tell(Forward(method="GET", url="/v1/jobs?prefix=a", headers=(), body=b"", servers=servers,
                     answer_timeout_s=answer_timeout_s, reply=fut))
    assert sched.run_until(lambda: fut._done, SIM_DEADLINE_S)
    return fut.get()


def test_forwarder_fails_over_past_a_silent_server_and_reassembles_the_pieces():
    sched = Scheduler(seed=3)
    client = sched.add_node("c").env
    sched.add_node("dead")  # no endpoint: the request is never acknowledged
    sched.add_node("s").env.spawn(PiecesEndpoint, ENDPOINT, pieces=(b"[1,", b"2,", b"3]"))
    ref = client.spawn(HttpForwarder, FORWARDER)
    started = sched.now
    got = _forward(sched, ref, ("dead", "s"))
    assert (got.status, got.body, got.headers) == (200, b"[1,2,3]", (("X-Nomad-Index", "7"),))
    assert sched.now - started >= FORWARD_ACK_TIMEOUT_S  # waited out the silent server first
    assert ref.ask("status")["failovers"] == 1 and ref.ask("status")["pending"] == 0


def test_forwarder_names_every_unreachable_server_and_gives_up_on_a_mute_one():
    sched = Scheduler(seed=4)
    client = sched.add_node("c").env
    sched.add_node("a")
    sched.add_node("b")
    ref = client.spawn(HttpForwarder, FORWARDER)
    assert _forward(sched, ref, ("a", "b")) == "rpc error: no server answered: a, b"
    assert _forward(sched, ref, ()) == "no servers"
    # Acknowledged but never answered: the answer's own deadline, not a failover.
    sched.add_node("mute").env.spawn(PiecesEndpoint, ENDPOINT, pieces=())
    got = _forward(sched, ref, ("mute",), answer_timeout_s=3.0)
    assert got == "timed out waiting for server mute to answer"


def test_a_server_refuses_to_run_agent_endpoints_relayed_over_rpc():
    """Only what a client relays is run: a peer cannot reach a server's /v1/agent/reload through RPC."""
    from actors.http_api import HttpContext
    from actors.http_forward import HttpEndpoint
    from actors.metrics import Metrics

    sched = Scheduler(seed=5)
    client = sched.add_node("c").env
    sched.add_node("s").env.spawn(HttpEndpoint, ENDPOINT, HttpContext(metrics=Metrics(clock=lambda: 0.0)))
    ref = client.spawn(HttpForwarder, FORWARDER)
    fut = sched.future_cls()
    ref.tell(Forward(method="PUT", url="/v1/agent/reload", headers=(), body=b"", servers=("s",),
                     answer_timeout_s=5.0, reply=fut))
    assert sched.run_until(lambda: fut._done, SIM_DEADLINE_S)
    got = fut.get()
    assert got.status == 403 and b"/v1/agent/reload" in got.body


# ---------------------------------------------------------------- client routes relayed to the node


WRITES = r"""printf 'one\ntwo\n' > "$NOMAD_ALLOC_DIR/out.txt"; echo started; exec sleep 60"""


def _raw_exec_pair(agents, tmp_path):  # noqa: F811
    srv, rpc = server_agent(agents, tmp_path)
    cli = client_agent(agents, tmp_path, "cli", [f"127.0.0.1:{rpc}"],
                       "[client.options]", '"driver.raw_exec.enable" = "1"').wait_healthy()
    wait_for(lambda: any(n["Name"] == "cli" and n["Status"] == "ready"
                         for n in call(srv.http_port, "GET", "/v1/nodes").json()),
             "the client registered", REGISTER_DEADLINE_S)
    return srv, cli


def test_a_server_relays_client_routes_to_the_node_that_runs_the_allocation(agents, tmp_path):  # noqa: F811
    srv, cli = _raw_exec_pair(agents, tmp_path)
    job = {"ID": "relayed", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                             "Config": {"command": "/bin/sh", "args": ["-c", WRITES]},
                                             "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    assert call(srv.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    allocs = "/v1/job/relayed/allocations"
    alloc_id = wait_for(lambda: next((a["ID"] for a in call(srv.http_port, "GET", allocs)
                                      .json() if a["ClientStatus"] == "running"), None),
                        "the allocation running", REGISTER_DEADLINE_S)
    at_client = f"/v1/client/fs/cat/{alloc_id}?path=alloc/out.txt"
    wait_for(lambda: call(cli.http_port, "GET", at_client).status == 200, "the task's file",
             REGISTER_DEADLINE_S)
    # The server runs no allocation: it answers what the node answers.
    cat = call(srv.http_port, "GET", at_client)
    assert (cat.status, cat.text) == (200, "one\ntwo\n")
    listing = call(srv.http_port, "GET", f"/v1/client/fs/ls/{alloc_id}?path=/alloc")
    assert listing.status == 200 and "out.txt" in {f["Name"] for f in listing.json()}
    stats = call(srv.http_port, "GET", f"/v1/client/allocation/{alloc_id}/stats")
    assert stats.status == 200 and "ResourceUsage" in stats.json(), stats.text
    # A stream is passed on as it comes: the log so far, then the node's heartbeat frames.
    logs = call(srv.http_port, "GET", f"/v1/client/fs/logs/{alloc_id}?task=t&type=stdout&plain=true")
    assert (logs.status, logs.text) == (200, "started\n")
    stream = call(srv.http_port, "GET", f"/v1/client/fs/stream/{alloc_id}?path=alloc/out.txt&follow=false")
    assert stream.status == 200 and '"Data"' in stream.text, stream.text
    # The node's errors come back as they are; an allocation nobody knows is Nomad's 404.
    escape = call(srv.http_port, "GET", f"/v1/client/fs/cat/{alloc_id}?path=../../etc/passwd")
    assert (escape.status, escape.text) == (400, "Path escapes the alloc directory")
    nobody = "00000000-0000-0000-0000-000000000000"
    unknown = call(srv.http_port, "GET", f"/v1/client/fs/cat/{nobody}?path=x")
    assert (unknown.status, unknown.text) == (404, f'Unknown allocation "{nobody}"')
    # An exec WebSocket is relayed to the node byte for byte; one for an unknown allocation is refused on it.
    from tests.test_alloc_exec import _open, _session

    ws, sock = _open(srv.http_port, alloc_id, ["sh", "-c", "cat; exit 5"], task="t")
    with sock:
        ws.send_text(json.dumps({"stdin": {"data": "cmVsYXllZA==", "close": True}}))  # "relayed"
        assert _session(ws)[:3] == (b"relayed", b"", 5)
    ws, sock = _open(srv.http_port, nobody, ["true"], task="t")
    with sock:
        assert _session(ws)[3] == (1008, f'Unknown allocation "{nobody}"')
    cli_exec = nomad(srv, "alloc", "exec", "-i=false", alloc_id, "sh", "-c", "echo via-server")
    assert cli_exec.returncode == 0 and cli_exec.stdout == "via-server\n", cli_exec.stderr
    # A write is relayed with its body: the task restarts in place on the node.
    restart = call(srv.http_port, "PUT", f"/v1/client/allocation/{alloc_id}/restart", {"TaskName": "t"})
    assert restart.status == 200, restart.text
    wait_for(lambda: (call(cli.http_port, "GET", f"/v1/allocation/{alloc_id}").json()
                      .get("TaskStates", {}).get("t", {}).get("Restarts", 0) >= 1),
             "the relayed restart", REGISTER_DEADLINE_S)
    # The CLI pointed at the server reads the node's files through it too.
    fs = nomad(srv, "alloc", "fs", alloc_id, "alloc/out.txt")
    assert fs.returncode == 0 and fs.stdout == "one\ntwo\n", fs.stderr
    assert call(srv.http_port, "DELETE", "/v1/job/relayed?purge=true").status == 200


@pytest.mark.parametrize(("method", "path", "relayed"), [
    ("GET", "/v1/client/fs/cat/a1", "a1"),
    ("GET", "/v1/client/fs/logs/a1", "a1"),
    ("PUT", "/v1/client/fs/cat/a1", ""),  # the local handler's 405
    ("GET", "/v1/client/fs/bogus/a1", ""),  # the local handler's 404
    ("GET", "/v1/client/fs/ls/", ""),  # no ID: the local handler's 400
    ("GET", "/v1/client/allocation/a1/stats", "a1"),
    ("PUT", "/v1/client/allocation/a1/restart", "a1"),
    ("GET", "/v1/client/allocation/a1/restart", ""),
    ("GET", "/v1/client/stats", ""),  # the agent's own host
    ("GET", "/v1/jobs", ""),
])
def test_which_client_requests_are_relayed(method, path, relayed):
    from actors.http_client_forward import alloc_id_of

    assert alloc_id_of(method, path) == relayed


def test_a_relayed_request_is_answered_where_it_arrives():
    from actors.http_api import Request
    from actors.http_client_forward import forward_client_route

    req = Request(method="GET", path="/v1/client/fs/cat/a1", query={}, url="/v1/client/fs/cat/a1")
    # Not consulted at all (no API needed): the marker stops a second relay.
    assert forward_client_route(req, {"HTTP_X_NOMAD_CLIENT_FORWARDED": "1"}, None) is None  # type: ignore[arg-type]


def hcall(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """``call`` with request headers (the ACL token)."""
    import http.client

    from tests.test_http_jobs import Resp

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.read(), {k.lower(): v for k, v in r.getheaders()})
    finally:
        conn.close()


def test_with_acls_a_relay_needs_only_what_the_node_needs_in_the_allocations_namespace(agents, tmp_path):  # noqa: F811
    srv, rpc = server_agent(agents, tmp_path, "[acl]", "enabled = true")
    cli = client_agent(agents, tmp_path, "cli", [f"127.0.0.1:{rpc}"], "[client.options]",
                       '"driver.raw_exec.enable" = "1"', "[acl]", "enabled = true").wait_healthy()
    boot = hcall(srv.http_port, "POST", "/v1/acl/bootstrap")
    assert boot.status == 200, boot.text
    mgmt = {"X-Nomad-Token": boot.json()["SecretID"]}
    wait_for(lambda: any(n["Name"] == "cli" and n["Status"] == "ready"
                         for n in hcall(srv.http_port, "GET", "/v1/nodes", headers=mgmt).json()),
             "the client registered", REGISTER_DEADLINE_S)
    rules = 'namespace "default" { capabilities = ["read-job", "read-fs", "read-logs"] }'  # no node:read
    policy = hcall(srv.http_port, "POST", "/v1/acl/policy/ro", {"Name": "ro", "Rules": rules}, headers=mgmt)
    assert policy.status == 200, policy.text
    spec = {"Name": "ro", "Type": "client", "Policies": ["ro"]}
    token = hcall(srv.http_port, "POST", "/v1/acl/token", spec, headers=mgmt)
    ro = {"X-Nomad-Token": token.json()["SecretID"]}
    job = {"ID": "acl-relay", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                             "Config": {"command": "/bin/sh", "args": ["-c", WRITES]},
                                             "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    assert hcall(srv.http_port, "PUT", "/v1/jobs", {"Job": job}, headers=mgmt).status == 200
    allocs = "/v1/job/acl-relay/allocations"
    alloc_id = wait_for(lambda: next((a["ID"] for a in hcall(srv.http_port, "GET", allocs, headers=mgmt)
                                      .json() if a["ClientStatus"] == "running"), None),
                        "the allocation running", REGISTER_DEADLINE_S)
    path = f"/v1/client/fs/cat/{alloc_id}?path=alloc/out.txt"
    wait_for(lambda: hcall(cli.http_port, "GET", path, headers=mgmt).status == 200, "the task's file",
             REGISTER_DEADLINE_S)
    through = hcall(srv.http_port, "GET", path, headers=ro)
    assert (through.status, through.text) == (200, "one\ntwo\n")
    assert hcall(srv.http_port, "GET", path).status == 403  # no token: refused on the server already
    nobody = "00000000-0000-0000-0000-000000000000"
    assert hcall(srv.http_port, "GET", f"/v1/client/fs/cat/{nobody}?path=x").status == 403  # learns nothing
    assert hcall(srv.http_port, "GET", f"/v1/client/fs/cat/{nobody}?path=x", headers=ro).status == 404
    # Rights in another namespace do not reach this one's files by naming it (node or server).
    other = hcall(srv.http_port, "POST", "/v1/acl/policy/prod",
                  {"Name": "prod", "Rules": 'namespace "prod" { capabilities = ["read-job", "read-fs"] }'},
                  headers=mgmt)
    assert other.status == 200, other.text
    prod = {"X-Nomad-Token": hcall(srv.http_port, "POST", "/v1/acl/token",
                                  {"Name": "prod", "Type": "client", "Policies": ["prod"]}, headers=mgmt)
            .json()["SecretID"]}
    assert hcall(cli.http_port, "GET", path + "&namespace=prod", headers=prod).status == 403
    assert hcall(srv.http_port, "GET", path + "&namespace=prod", headers=prod).status == 403
    assert hcall(cli.http_port, "GET", path + "&namespace=default", headers=ro).status == 200
    assert hcall(srv.http_port, "DELETE", "/v1/job/acl-relay?purge=true", headers=mgmt).status == 200


def test_a_client_agent_relays_the_event_stream_from_its_server(pair):
    from tests.test_events import _Lines

    srv, cli = pair
    s = _Lines(cli.http_port, "/v1/event/stream?index=0&topic=Node&topic=Job:relayed")
    try:
        assert s.status == 200
        seen = s.events_until(lambda ev: any(e["Type"] == "NodeRegistration" for e in ev))
        assert seen[0]["Payload"]["Node"]["Name"] == "cli"
        assert call(cli.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("relayed", count=0)}).status == 200
        seen = s.events_until(lambda ev: any(e["Type"] == "JobRegistered" for e in ev))
        assert {e["Topic"] for e in seen} <= {"Node", "Job"}
        indexes = [e["Index"] for e in seen]
        assert indexes == sorted(indexes)  # in order, each write once
        assert len({(e["Index"], e["Key"]) for e in seen}) == len(seen)
    finally:
        s.close()
    bad = call(cli.http_port, "GET", "/v1/event/stream?topic=a:b:c")
    assert bad.status == 400 and "Invalid topic query" in bad.text
    assert call(cli.http_port, "DELETE", "/v1/job/relayed?purge=true").status == 200


def test_a_client_in_a_pool_nobody_made_creates_it_and_jobs_there_run_on_it(agents, tmp_path):  # noqa: F811
    srv, rpc = server_agent(agents, tmp_path)
    client_agent(agents, tmp_path, "gpu1", [f"127.0.0.1:{rpc}"], 'node_pool = "gpu"',
                 "[client.options]", '"driver.raw_exec.enable" = "1"').wait_healthy()
    wait_for(lambda: any(n["Name"] == "gpu1" and n["Status"] == "ready"
                         for n in call(srv.http_port, "GET", "/v1/nodes").json()),
             "the client registered", REGISTER_DEADLINE_S)
    pool = call(srv.http_port, "GET", "/v1/node/pool/gpu")
    assert pool.status == 200 and pool.json()["Name"] == "gpu"
    assert [n["Name"] for n in call(srv.http_port, "GET", "/v1/node/pool/gpu/nodes").json()] == ["gpu1"]
    r = call(srv.http_port, "PUT", "/v1/jobs", {"Job": sleep_job("on-gpu", NodePool="gpu")})
    assert r.status == 200, r.text
    wait_for(lambda: [a["ClientStatus"] for a in call(srv.http_port, "GET", "/v1/job/on-gpu/allocations").json()]
             == ["running"], "the job running on the pool's node", REGISTER_DEADLINE_S)
    r = call(srv.http_port, "DELETE", "/v1/node/pool/gpu")  # it has a job and a node: Nomad's 500 multierror
    assert (r.status, r.text) == (500, '2 errors occurred:\n\t* node pool "gpu" has non-terminal jobs in '
                                       'regions: [global]\n\t* node pool "gpu" has nodes in regions: '
                                       '[global]\n\n')
    assert call(srv.http_port, "DELETE", "/v1/job/on-gpu").status == 200
    wait_for(lambda: [a["ClientStatus"] for a in call(srv.http_port, "GET", "/v1/job/on-gpu/allocations").json()]
             == ["complete"], "the task stopped", REGISTER_DEADLINE_S)  # no task outlives the test


def test_a_relayed_quiet_stream_closes_its_node_connection_once_the_caller_hung_up():
    """A relayed plain follow of a quiet task blocks reading the node, which sends nothing: no write
    to the caller ever failed, so each hung-up relay held its greenlet and both connections (and kept
    the node's follower alive) for the task's life.  Now the relay closes the node's connection once
    the caller is gone, and the node sees it closed."""
    import socket

    import gevent

    from actors.http_client_forward import _relay
    from actors.http_limits import CALLER_GONE_POLL_S

    node = socket.create_server(("127.0.0.1", 0))
    node_saw_close = []

    def serve() -> None:
        conn, _ = node.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        node_saw_close.append(conn.recv(1) == b"")  # the task stays quiet: nothing more is sent
        conn.close()

    server = gevent.spawn(serve)
    gone = [False]
    stream = _relay(f"127.0.0.1:{node.getsockname()[1]}", "GET", "/v1/client/fs/logs/a?follow=true",
                    b"", {}, None, follow=True, caller_gone=lambda: gone[0])
    pieces = gevent.spawn(lambda: list(stream.chunks))
    gevent.sleep(0.2)
    assert not pieces.ready() and not node_saw_close  # the caller is there: the relay waits on
    gone[0] = True
    pieces.join(timeout=CALLER_GONE_POLL_S + SLACK_S)
    server.join(timeout=SLACK_S)
    node.close()
    assert pieces.ready() and pieces.value == [] and node_saw_close == [True]
