"""Multi-region federation with real server processes on loopback.

Nomad's servers of every region share one WAN-tuned serf pool (NOMAD.md
§7.5); Raft stays per region.  Region ``a`` (three servers,
``bootstrap_expect = 3``) and region ``b`` (one server) are joined by
``-join`` from b to a server of a: every server then lists all four in
``/v1/agent/members`` with its region, ``/v1/regions`` names both, each
region has its own Raft peers and leader only, and ``?region=`` requests
are forwarded to the other region (``No path to region`` for an unknown
one).  A server whose ``-join`` reaches nobody, or whose ``retry_join``
runs out of ``retry_max``, exits 1 with the reason on stderr.

Every agent gets free ports and its own data dir, is waited for with
deadlines, and is killed by PID at the end (the ``agents`` fixture).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.test_agent_process import ROOT, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(150)

# Gossip joins, a bootstrap and an election in each region, on a loaded CI machine.
CLUSTER_DEADLINE_S = 40.0
# A dead -join address fails after the pool's join_timeout_s (5 s in the wan
# profile); start-up and the exit add a few seconds on a loaded machine.
JOIN_FAIL_DEADLINE_S = 25.0
NOMAD_CLI = os.path.join(ROOT, "bin", "nomad")


def server_config(tmp: Any, name: str, region: str, *, expect: int, serf: int = 0,
                  join: tuple[str, list[str]] | None = None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """A server's TOML config; *join* is ("start_join" or "retry_join", addresses)."""
    ports = {"http": free_port(), "rpc": free_port(), "serf": serf or free_port()}
    lines = [f'name = "{name}"', f'region = "{region}"', f'data_dir = "{tmp / f"data-{name}"}"',
             'bind_addr = "127.0.0.1"', "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
             "[server]", "enabled = true", f"bootstrap_expect = {expect}"]
    if join is not None:
        kind, addrs = join
        lines += ["[server.server_join]", f"{kind} = {json.dumps(addrs)}", *extra]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), **ports}


def get_json(agent: AgentProc, path: str) -> Any:
    try:
        status, body, _ = agent.get(path)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def member_regions(agent: AgentProc) -> dict[str, tuple[str, str]]:
    got = get_json(agent, "/v1/agent/members") or {"Members": []}
    return {m["Name"]: (m["Status"], m["Tags"].get("region", "")) for m in got["Members"]}


def nomad(agent: AgentProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, NOMAD_CLI, f"-address=http://127.0.0.1:{agent.http_port}", *args],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_two_regions_share_gossip_but_keep_raft_apart_and_forward_by_region(agents, tmp_path):
    serfs = [free_port() for _ in range(3)]
    a_join = [f"127.0.0.1:{p}" for p in serfs]
    a_cfgs = [server_config(tmp_path, f"a{i}", "a", expect=3, serf=serfs[i],
                            join=("retry_join", a_join), extra=('retry_interval = "1s"',))
              for i in range(3)]
    a = [agents(["-config", c["path"]], http_port=c["http"]) for c in a_cfgs]
    b_cfg = server_config(tmp_path, "b0", "b", expect=1)
    # -join on the command line: Nomad's start_join, to a server of the other
    # region.  It is one attempt, so only once that server answers (on a busy
    # machine a0 can take longer to come up than the join waits).
    a[0].wait_healthy()
    b = agents(["-config", b_cfg["path"], "-join", f"127.0.0.1:{serfs[0]}"], http_port=b_cfg["http"])
    everyone = [*a, b]
    detail = lambda: "\n".join(p.detail() for p in everyone)
    a_rpcs = sorted(f"127.0.0.1:{c['rpc']}" for c in a_cfgs)
    b_rpc = f"127.0.0.1:{b_cfg['rpc']}"

    want = {"a0.a": ("alive", "a"), "a1.a": ("alive", "a"), "a2.a": ("alive", "a"), "b0.b": ("alive", "b")}
    wait_for(lambda: all(member_regions(p) == want for p in everyone),
             "all four servers in every member list with their regions", CLUSTER_DEADLINE_S, detail)

    def raft_per_region() -> bool:
        a_peers = [sorted(get_json(p, "/v1/status/peers") or []) for p in a]
        a_leaders = {get_json(p, "/v1/status/leader") for p in a}
        return (all(x == a_rpcs for x in a_peers) and len(a_leaders) == 1 and a_leaders <= set(a_rpcs)
                and get_json(b, "/v1/status/peers") == [b_rpc] and get_json(b, "/v1/status/leader") == b_rpc)

    wait_for(raft_per_region, "one Raft cluster per region, no cross-region peers", CLUSTER_DEADLINE_S,
             detail)
    a_leader = get_json(a[0], "/v1/status/leader")

    # /v1/regions: both, sorted, from either side.
    assert get_json(a[1], "/v1/regions") == ["a", "b"]
    assert get_json(b, "/v1/regions") == ["a", "b"]

    # ?region= forwards to the other region; the own region answers locally.
    assert get_json(a[2], "/v1/status/leader?region=b") == b_rpc
    assert get_json(b, "/v1/status/leader?region=a") == a_leader
    assert sorted(get_json(b, "/v1/status/peers?region=a")) == a_rpcs
    assert get_json(a[0], "/v1/status/peers?region=a") == a_rpcs
    # Agent endpoints are the local agent's, whatever the region says.
    assert get_json(a[0], "/v1/agent/members?region=b")["ServerRegion"] == "a"
    status, body, _ = a[0].get("/v1/status/leader?region=nowhere")
    assert (status, body) == (500, b"No path to region")

    # The operator CLI lists both regions' servers, each region's leader marked.
    out = nomad(a[0], "server", "members")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["Name", "Address", "Port", "Status", "Leader", "Raft", "Version", "Build",
                                "Datacenter", "Region"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert [ln.split()[0] for ln in lines[1:]] == ["a0.a", "a1.a", "a2.a", "b0.b"]  # region, dc, name
    assert [r[-1] for r in rows.values()] == ["a", "a", "a", "b"]
    leaders = sorted(name for name, r in rows.items() if r[4] == "true")
    a_leader_name = next(f"a{i}.a" for i, c in enumerate(a_cfgs) if f"127.0.0.1:{c['rpc']}" == a_leader)
    assert leaders == sorted([a_leader_name, "b0.b"])

    # A job naming its region is registered there (Nomad's regionForJob), ?region= or not; a job with
    # ?region= of this region is this region's, whatever its body says.
    def put_job(agent: AgentProc, job_id: str, region: str, query: str = "") -> tuple[int, bytes]:
        job = {"ID": job_id, "Region": region, "Type": "batch", "Datacenters": ["dc1"],
               "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                       "Config": {"command": "/bin/true", "Region": "x"}}]}]}
        conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=30)
        try:
            conn.request("PUT", f"/v1/jobs{query}", json.dumps({"Job": job}))
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    assert put_job(a[0], "to-b", "b")[0] == 200
    assert (get_json(b, "/v1/job/to-b") or {}).get("Region") == "b"
    assert get_json(a[1], "/v1/job/to-b") is None and get_json(a[1], "/v1/job/to-b?region=b")["Region"] == "b"
    out = nomad(a[0], "job", "status", "-region", "b", "to-b")
    assert out.returncode == 0 and "to-b" in out.stdout, out.stderr
    assert put_job(a[0], "kept-in-a", "b", "?region=a")[0] == 200
    assert get_json(a[0], "/v1/job/kept-in-a")["Region"] == "a" and get_json(b, "/v1/job/kept-in-a") is None
    assert put_job(b, "global-job", "global")[0] == 200  # "global": the receiving agent's own region
    assert get_json(b, "/v1/job/global-job")["Region"] == "b"
    assert put_job(a[0], "lost", "nowhere") == (500, b"No path to region")

    # A join to an address nobody listens on fails at once, with the dial error, as memberlist's does.
    dead = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    status, body, _ = b.get(f"/v1/agent/join?address={dead}", method="PUT")
    got = json.loads(body)
    assert status == 200 and got["num_joined"] == 0, got
    assert got["error"] == f"Failed to join {dead}: dial tcp {dead}: connect: connection refused", got
    assert time.monotonic() - t0 < 4.0  # not the 5 s join timeout
    out = nomad(b, "server", "join", dead)
    assert out.returncode == 1 and f"Failed to join {dead}" in out.stderr, out


def test_start_join_to_a_dead_address_exits_1_with_the_reason(agents, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    cfg = server_config(tmp_path, "lonely", "global", expect=1)
    p = agents(["-config", cfg["path"], "-join", dead], http_port=cfg["http"])
    assert p.wait_exit(timeout_s=JOIN_FAIL_DEADLINE_S) == 1, p.detail()
    p.wait_line(rf"^==> Failed to join {dead}: dial tcp {dead}: connect: connection refused$", stream="err")


def test_retry_join_gives_up_after_retry_max_and_exits_1(agents, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    cfg = server_config(tmp_path, "patient", "global", expect=1, join=("retry_join", [dead]),
                        extra=('retry_interval = "1s"', "retry_max = 1"))
    p = agents(["-config", cfg["path"]], http_port=cfg["http"])
    # Two attempts (the first and one retry), each refused at once, one interval apart.
    assert p.wait_exit(timeout_s=2 * JOIN_FAIL_DEADLINE_S) == 1, p.detail()
    p.wait_line(r"==> max join retry exhausted, exiting", stream="err")


def test_two_regions_a_job_write_goes_where_nomads_region_for_job_says(monkeypatch):
    """Nomad's regionForJob: the request body's Region, then ?region=, then the job's; "global" is the
    receiving agent's own region, ?region=global included (other endpoints have no "global" region)."""
    import io
    from types import SimpleNamespace

    from actors import http_api
    from actors.http_api import CodedError, Request

    members = [{"Status": "alive", "Tags": {"region": r, "http_addr": f"{r}:1"}} for r in ("a", "b")]
    monkeypatch.setattr(http_api, "_gossip_members", lambda api: (members, members[0]))
    monkeypatch.setattr(http_api, "_local_region", lambda api, local: "a")
    sent: list[tuple[str, bytes]] = []
    monkeypatch.setattr(http_api, "_proxy",
                        lambda target, req, body, *rest: sent.append((target, body)) or "fwd")
    api = SimpleNamespace(ctx=SimpleNamespace(tls=None))

    def write(method: str, path: str, body: dict | None, region: str = "") -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        environ = {"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
        req = Request(method=method, path=path, query={"region": [region]} if region else {}, url=path,
                      environ=environ)
        return http_api.forward_region(req, environ, api)

    job_b = {"Job": {"ID": "x", "Region": "b"}}
    assert write("PUT", "/v1/jobs", job_b) == "fwd" and sent[-1][0] == "b:1"
    assert write("PUT", "/v1/jobs", job_b, "global") is None  # this region's, as Nomad's regionForJob
    assert write("PUT", "/v1/job/x/plan", job_b, "global") is None
    assert write("PUT", "/v1/jobs", job_b, "a") is None
    assert write("PUT", "/v1/jobs", {**job_b, "Region": "b"}, "a") == "fwd"  # the request's own Region wins
    assert write("PUT", "/v1/jobs", {"Region": "global", "Job": {"ID": "x", "Region": "b"}}, "b") is None
    with pytest.raises(CodedError, match="No path to region"):
        write("GET", "/v1/jobs", None, "global")


def test_regions_and_known_regions_count_only_regions_with_an_alive_server(monkeypatch):
    """Nomad's Server.Regions / RegionNum read the peer cache's alive peers: a region whose servers
    all failed (or are leaving, or left) is dropped from /v1/regions and agent-info's known_regions
    -- as ?region= to it has "No path to region" -- and comes back when one of them is alive again."""
    from types import SimpleNamespace

    from actors import http_api
    from actors.http_api import Request

    members = [{"Status": st, "Tags": {"region": r}} for r, st in
               (("a", "alive"), ("b", "failed"), ("b", "alive"), ("c", "failed"), ("d", "leaving"),
                ("e", "left"))]
    monkeypatch.setattr(http_api, "_gossip_members", lambda api: (members, members[0]))
    monkeypatch.setattr(http_api, "_local_region", lambda api, local: "a")
    monkeypatch.setattr(http_api, "_alive", lambda api, name: name == "raft")
    raft = {"status": {"leader": "10.0.0.1:4647", "role": "leader", "last_contact": 0, "term": 2,
                       "last_index": 5, "last_term": 2, "commit": 5, "applied": 5, "snap_index": 0,
                       "snap_term": 0, "config_index": 1, "voter_ids": ["s1"], "id": "s1"},
            "configuration": []}
    api = SimpleNamespace(ask=lambda actor, what: raft[what], env=None)
    req = Request(method="GET", path="/v1/regions", query={}, url="/v1/regions", environ={})
    assert http_api.regions_list(req, api) == ["a", "b"]
    stats = {"nomad": {"known_regions": "1"}}
    http_api._live_stats(api, stats)
    assert stats["nomad"]["known_regions"] == "2"
    members[2]["Status"] = "failed"  # b's last alive server fails
    assert http_api.regions_list(req, api) == ["a"]


def test_join_and_force_leave_answer_as_nomads_agent_endpoints(monkeypatch):
    """command/agent/agent_endpoint.go: on an agent without a server both are 501 "Invalid method"
    (ErrInvalidMethod); force-leave's prune is strconv.ParseBool'd -- "T" prunes, anything that is no
    Go bool is 400 "invalid prune value" -- and a missing node is 400 first."""
    from types import SimpleNamespace

    from actors import http_api
    from actors.http_api import CodedError, Request

    def put(path: str, query: dict[str, list[str]], gossip: Any) -> Any:
        api = SimpleNamespace(env=SimpleNamespace(lookup=lambda name: gossip))
        handler = http_api.agent_join if path == "/v1/agent/join" else http_api.agent_force_leave
        return handler(Request(method="PUT", path=path, query=query, url=path, environ={}), api)

    for path, query in (("/v1/agent/join", {"address": ["10.0.0.1:4648"]}),
                        ("/v1/agent/force-leave", {"node": ["s1.global"]})):
        with pytest.raises(CodedError) as e:
            put(path, query, None)
        assert (e.value.code, e.value.message) == (501, "Invalid method")
    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(http_api, "_await", lambda api, cls, **kw: sent.append((kw["name"], kw["prune"])))
    gossip = SimpleNamespace(is_alive=lambda: True)
    with pytest.raises(CodedError) as e:
        put("/v1/agent/force-leave", {"node": ["s1.global"], "prune": ["maybe"]}, gossip)
    assert (e.value.code, e.value.message) == (400, "invalid prune value")
    with pytest.raises(CodedError) as e:
        put("/v1/agent/force-leave", {"prune": ["maybe"]}, gossip)
    assert (e.value.code, e.value.message) == (400, "missing node to force leave")
    for flag, prune in (("T", True), ("1", True), ("False", False), ("", False)):
        put("/v1/agent/force-leave", {"node": ["s1.global"], "prune": [flag]}, gossip)
        assert sent.pop() == ("s1.global", prune)
    assert sent == []


def test_a_streamed_answer_from_another_region_is_passed_on_as_it_comes():
    """?region= on a streaming endpoint (the event stream): Nomad forwards the streaming RPC to the
    region.  The forward passes a chunked answer on piece by piece as a Stream -- it read the whole
    body first, so an endless event stream ended in 'failed forwarding to region ...: timed out'."""
    import http.server
    import threading

    from actors import http_api
    from actors.http_api import Request, Stream

    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"Index":1}\n', b"{}\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                release.wait(10.0)  # the stream goes on until the test has read the first piece
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        req = Request(method="GET", path="/v1/event/stream", query={"region": ["b"]},
                      url="/v1/event/stream?region=b", environ={})
        got = http_api._proxy(f"127.0.0.1:{server.server_address[1]}", req, b"", {}, 5.0)
        assert isinstance(got, Stream) and got.status == 200 and got.content_type == "application/json"
        assert next(got.chunks) == b'{"Index":1}\n'  # before the other region has ended its answer
        release.set()
        assert b"".join(got.chunks) == b"{}\n"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
