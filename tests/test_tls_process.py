"""TLS with real agent processes on loopback (issue 10).

Certificates come from the real CLI (``bin/nomad tls ca create`` / ``tls
cert create``).  A server with ``tls.rpc`` and ``verify_server_hostname``
registers a client holding a client certificate of its CA; a client with
no certificate, or one from another CA, never registers (the server logs
the refused handshake and keeps serving); the HTTPS API answers the CLI
with the CA and a client certificate; three TLS servers elect a leader;
SIGHUP reloads the certificates.  Every agent is killed by PID at the end;
every wait has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import pytest

from tests.test_agent_process import ROOT, STAGGER, AgentProc, agents, free_port, wait_for  # noqa: F401

pytestmark = pytest.mark.timeout(120)

NOMAD = os.path.join(ROOT, "bin", "nomad")
CLUSTER_DEADLINE_S = 40.0  # gossip joins, a bootstrap and an election with TLS, on a loaded machine
ABSENT_S = 6.0  # how long a refused client is watched not to register (many retries and heartbeats)


def cli(args: list[str], *, cwd: Any = ROOT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def make_pki(d: Path) -> Path:
    """A CA and server, client and cli certificates, written by the real CLI into *d*."""
    d.mkdir(parents=True, exist_ok=True)
    for args in (["tls", "ca", "create"], ["tls", "cert", "create", "-server"],
                 ["tls", "cert", "create", "-client"], ["tls", "cert", "create", "-cli"]):
        r = cli(args, cwd=d)
        assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("other-pki"))


def tls_lines(d: Path | None, role: str, *, http: bool = False, region: str = "global") -> list[str]:
    if d is None:
        return []
    return ["[tls]", f"http = {str(http).lower()}", "rpc = true",
            f'ca_file = "{d / "nomad-agent-ca.pem"}"', f'cert_file = "{d / f"{region}-{role}-nomad.pem"}"',
            f'key_file = "{d / f"{region}-{role}-nomad-key.pem"}"', "verify_server_hostname = true",
            f"verify_https_client = {str(http).lower()}"]


def write_server(tmp: Path, name: str, pki: Path | None, *, expect: int = 1, join: list[str] = (),
                 http: bool = False, region: str = "global") -> dict[str, Any]:
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    lines = [f'name = "{name}"', f'region = "{region}"', f'data_dir = "{tmp / name}"',
             'bind_addr = "127.0.0.1"',
             "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
             "[server]", "enabled = true", f"bootstrap_expect = {expect}", 'gossip_profile = "lan"',
             *(["[server.server_join]", f"retry_join = {json.dumps(list(join))}", 'retry_interval = "1s"']
               if join else []),
             *tls_lines(pki, "server", http=http, region=region)]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), **ports}


def write_client(tmp: Path, name: str, pki: Path | None, server_rpc: int, *,
                 role: str = "client") -> dict[str, Any]:
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    lines = [f'name = "{name}"', f'data_dir = "{tmp / name}"', 'bind_addr = "127.0.0.1"',
             "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
             "[client]", "enabled = true", STAGGER, f'servers = ["127.0.0.1:{server_rpc}"]',
             *tls_lines(pki, role)]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path), **ports}


def nodes(agent: AgentProc) -> dict[str, str]:
    try:
        status, body, _ = agent.get("/v1/nodes")
    except OSError:
        return {}
    return {n["Name"]: n["Status"] for n in json.loads(body)} if status == 200 else {}


def gauge(agent: AgentProc, name: str) -> float:
    status, body, _ = agent.get("/v1/metrics")
    return sum(g["Value"] for g in json.loads(body)["Gauges"] if g["Name"] == name) if status == 200 else 0.0


def https_get(port: int, path: str, ctx: ssl.SSLContext) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body or b"null") if resp.status == 200 else body.decode())
    finally:
        conn.close()


# ---------------------------------------------------------------- RPC


def test_client_with_a_certificate_of_our_ca_registers_ready_over_mutual_tls(agents, tmp_path, pki):
    s = write_server(tmp_path, "srv", pki)
    srv = agents(["-config", s["path"]], http_port=s["http"]).wait_healthy()
    c = write_client(tmp_path, "worker", pki, s["rpc"])
    client = agents(["-config", c["path"]], http_port=c["http"])
    wait_for(lambda: nodes(srv).get("worker") == "ready", "the TLS client ready", CLUSTER_DEADLINE_S,
             lambda: srv.detail() + "\n=== client\n" + client.detail())
    client.wait_healthy()
    assert not any("TLS handshake failed" in line for line in srv.out + srv.err)
    # RPC only: Nomad still warns while the HTTP API is plain.
    assert any("mTLS is not configured" in line for line in srv.err)


def test_clients_without_a_valid_certificate_cannot_register_and_the_server_keeps_running(
        agents, tmp_path, pki, other_pki):
    s = write_server(tmp_path, "srv", pki)
    srv = agents(["-config", s["path"]], http_port=s["http"]).wait_healthy()
    plain = write_client(tmp_path, "plain", None, s["rpc"])
    stranger = write_client(tmp_path, "stranger", other_pki, s["rpc"])
    agents(["-config", plain["path"]], http_port=plain["http"]).wait_healthy()
    agents(["-config", stranger["path"]], http_port=stranger["http"]).wait_healthy()
    srv.wait_line(r"refusing RPC connection from 127\.0\.0\.1:\d+: TLS handshake failed", timeout_s=20)
    deadline = time.monotonic() + ABSENT_S
    while time.monotonic() < deadline:
        assert not {"plain", "stranger"} & set(nodes(srv)), nodes(srv)
        gevent.sleep(0.5)
    assert srv.healthy()  # still serving, and a good client still registers
    wait_for(lambda: gauge(srv, "nomad.rpc.tls_refused") >= 2, "the refusals counted in the metrics")
    good = write_client(tmp_path, "good", pki, s["rpc"])
    agents(["-config", good["path"]], http_port=good["http"])
    wait_for(lambda: nodes(srv).get("good") == "ready", "a good client after the refusals",
             CLUSTER_DEADLINE_S, srv.detail)
    assert set(nodes(srv)) == {"good"}
    assert srv.proc.poll() is None and not any("Traceback" in line for line in srv.out + srv.err)


def test_three_tls_servers_elect_one_leader(agents, tmp_path, pki):
    serfs = [free_port() for _ in range(3)]
    join = [f"127.0.0.1:{p}" for p in serfs]
    procs = []
    for i in range(3):
        s = write_server(tmp_path, f"s{i}", pki, expect=3, join=join)
        # Pin the serf port the others join on.
        text = Path(s["path"]).read_text().replace(f"serf = {s['serf']}", f"serf = {serfs[i]}")
        Path(s["path"]).write_text(text)
        procs.append(agents(["-config", s["path"]], http_port=s["http"]))

    def leaders() -> set[str] | None:
        got = set()
        for p in procs:
            try:
                status, body, _ = p.get("/v1/status/leader")
            except OSError:
                return None
            if status != 200 or not json.loads(body):
                return None
            got.add(json.loads(body))
        return got if len(got) == 1 else None

    leader = wait_for(leaders, "one leader agreed by three TLS servers", CLUSTER_DEADLINE_S,
                      lambda: "\n".join(p.detail() for p in procs))
    assert len(leader) == 1
    for p in procs:
        status, body, _ = p.get("/v1/operator/raft/configuration")
        assert status == 200 and len(json.loads(body)["Servers"]) == 3


# ---------------------------------------------------------------- HTTPS


def test_https_api_answers_the_cli_with_the_ca_and_a_client_certificate(agents, tmp_path, pki):
    s = write_server(tmp_path, "srv", pki, http=True)
    srv = agents(["-config", s["path"]], http_port=s["http"])
    ctx = ssl.create_default_context(cafile=str(pki / "nomad-agent-ca.pem"))
    ctx.load_cert_chain(str(pki / "global-cli-nomad.pem"), str(pki / "global-cli-nomad-key.pem"))

    def healthy() -> bool:
        assert srv.proc.poll() is None, srv.detail()
        try:
            return https_get(s["http"], "/v1/agent/health", ctx)[0] == 200
        except OSError:
            return False

    wait_for(healthy, "a healthy HTTPS agent", CLUSTER_DEADLINE_S, srv.detail)
    assert not any("mTLS is not configured" in line for line in srv.err)  # HTTP and RPC on TLS
    addr = f"https://127.0.0.1:{s['http']}"
    flags = ["-address", addr, "-ca-cert", str(pki / "nomad-agent-ca.pem"),
             "-client-cert", str(pki / "global-cli-nomad.pem"),
             "-client-key", str(pki / "global-cli-nomad-key.pem")]
    r = cli([*flags, "status", "leader"])
    assert r.returncode == 0 and r.stdout.strip() == f"127.0.0.1:{s['rpc']}", r.stderr
    env = {"NOMAD_ADDR": addr, "NOMAD_CACERT": str(pki / "nomad-agent-ca.pem"),
           "NOMAD_CLIENT_CERT": str(pki / "global-cli-nomad.pem"),
           "NOMAD_CLIENT_KEY": str(pki / "global-cli-nomad-key.pem")}
    r = cli(["server", "members"], env=env)
    assert r.returncode == 0 and "srv" in r.stdout, r.stderr
    # verify_https_client: no client certificate, no answer (with TLS 1.3 the client may see the
    # server's alert or only the closed connection); the server logs why.
    r = cli(["-address", addr, "-ca-cert", str(pki / "nomad-agent-ca.pem"), "status", "leader"])
    assert r.returncode == 1 and r.stdout == "" and "Error querying" in r.stderr, r.stderr
    srv.wait_line(r"refusing HTTPS connection from 127\.0\.0\.1:\d+: TLS handshake failed: "
                  r"PEER_DID_NOT_RETURN_A_CERTIFICATE")
    # The CLI trusts only the CA it is given (or the system's): our CA is not among the system's.
    r = cli(["-address", addr, "status", "leader"])
    assert r.returncode == 1 and r.stderr.strip().endswith(
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"), r.stderr
    # Plain HTTP on the HTTPS port: Go's http server's 400, no traceback; the agent carries on.
    r = cli(["-address", f"http://127.0.0.1:{s['http']}", "status", "leader"])
    assert r.returncode == 1 and r.stdout == "" and r.stderr.strip().endswith(
        "Unexpected response code: 400 (Client sent an HTTP request to an HTTPS server.)"), r.stderr
    # -tls-skip-verify: no CA at all; -tls-server-name: the certificate is checked against that name
    no_ca = [*flags[:2], *flags[4:]]
    r = cli([*no_ca, "-tls-skip-verify", "status", "leader"])
    assert r.returncode == 0 and r.stdout.strip() == f"127.0.0.1:{s['rpc']}", r.stderr
    r = cli([*flags, "-tls-server-name", "server.global.nomad", "status", "leader"])
    assert r.returncode == 0, r.stderr
    r = cli([*flags, "-tls-server-name=elsewhere.example", "status", "leader"])
    assert r.returncode == 1 and r.stderr.strip().endswith(
        "x509: certificate is valid for server.global.nomad, localhost, not elsewhere.example"), r.stderr
    assert healthy() and not any("Traceback" in line for line in srv.out + srv.err)


def test_region_forwarding_speaks_https_to_the_other_regions_server(agents, tmp_path, pki):
    # Each region's server holds server.<its region>.nomad from the one CA; ?region= is proxied
    # over HTTPS with the forwarding server's own certificate (verify_https_client is on).
    assert cli(["tls", "cert", "create", "-server", "-region", "west"], cwd=pki).returncode == 0
    g = write_server(tmp_path, "g0", pki, http=True)
    w = write_server(tmp_path, "w0", pki, http=True, region="west", join=[])
    Path(w["path"]).write_text(Path(w["path"]).read_text() + "\n".join(
        ["[server.server_join]", f'retry_join = ["127.0.0.1:{g["serf"]}"]', 'retry_interval = "1s"']) + "\n")
    gp = agents(["-config", g["path"]], http_port=g["http"])
    wp = agents(["-config", w["path"]], http_port=w["http"])
    ctx = ssl.create_default_context(cafile=str(pki / "nomad-agent-ca.pem"))
    ctx.load_cert_chain(str(pki / "global-cli-nomad.pem"), str(pki / "global-cli-nomad-key.pem"))

    def west_leader() -> Any:
        try:
            status, body = https_get(g["http"], "/v1/status/leader?region=west", ctx)
        except OSError:
            return None
        return body if status == 200 and body else None

    got = wait_for(west_leader, "the west leader through the global server", CLUSTER_DEADLINE_S,
                   lambda: gp.detail() + "\n=== west\n" + wp.detail())
    assert got == f"127.0.0.1:{w['rpc']}"


# ---------------------------------------------------------------- start-up and reload


def test_unreadable_tls_files_stop_start_up_with_a_clear_error(agents, tmp_path, pki):
    s = write_server(tmp_path, "srv", pki)
    text = Path(s["path"]).read_text().replace(str(pki / "global-server-nomad.pem"),
                                               str(tmp_path / "gone.pem"))
    Path(s["path"]).write_text(text)
    agent = agents(["-config", s["path"]], http_port=s["http"])
    assert agent.wait_exit() == 1
    assert any(f'tls.cert_file: cannot read "{tmp_path / "gone.pem"}": No such file' in line
               for line in agent.err), agent.detail()


def test_sighup_reloads_the_certificates_for_new_connections(agents, tmp_path, pki, other_pki):
    # The server starts with the first CA; a client of the second CA is refused.
    s = write_server(tmp_path, "srv", pki)
    srv = agents(["-config", s["path"]], http_port=s["http"]).wait_healthy()
    c = write_client(tmp_path, "late", other_pki, s["rpc"])
    client = agents(["-config", c["path"]], http_port=c["http"]).wait_healthy()
    srv.wait_line(r"refusing RPC connection .*TLS handshake failed", timeout_s=20)
    assert "late" not in nodes(srv)
    # Rotate the server onto the second CA's files and SIGHUP: the client's next connection is accepted.
    Path(s["path"]).write_text(Path(s["path"]).read_text().replace(str(pki), str(other_pki)))
    mark = len(srv.out)
    srv.send(signal.SIGHUP)
    srv.wait_line(r"TLS certificates reloaded", after=mark)
    srv.wait_line(r"reload complete: applied=tls.ca_file,tls.cert_file,tls.key_file restart_needed=-",
                  after=mark)
    wait_for(lambda: nodes(srv).get("late") == "ready", "the client registered after the reload",
             CLUSTER_DEADLINE_S, lambda: srv.detail() + "\n=== client\n" + client.detail())
    # Nothing changed in the file: the certificates are read again all the same, and the summary says so.
    mark = len(srv.out)
    srv.send(signal.SIGHUP)
    srv.wait_line(r"reload complete: applied=tls restart_needed=-", after=mark)
    # A reload with a broken file keeps the running certificates and says why.
    Path(s["path"]).write_text(Path(s["path"]).read_text().replace(
        str(other_pki / "global-server-nomad.pem"), str(tmp_path / "gone.pem")))
    srv.send(signal.SIGHUP)
    srv.wait_line(r"Failed to reload configs: tls.cert_file: cannot read", stream="err")
    assert srv.healthy() and nodes(srv).get("late") == "ready"
