"""TLS (issue 10): the tls block's validation, the cert CLI, and mutual TLS on the RPC transport in-process.

Certificates are made with :mod:`runtime.cli_tls` (what ``nomad tls ca
create`` / ``tls cert create`` run) in a temporary directory; the transport
tests use real loopback sockets under gevent.  Waits poll with deadlines.
"""

from __future__ import annotations

import os
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from cryptography import x509

from runtime import cli_tls
from runtime.cli import CliError
from runtime.config import (
    MTLS_WARNING,
    RELOADABLE,
    ConfigError,
    build_overlay,
    load_files,
    reloadable_diff,
    validate,
)
from runtime.config import Config as _Config
from runtime.messages import Envelope, Ping
from runtime.tls import TlsEdge, TlsError, TlsSettings, peer_names, rpc_names
from runtime.transport import TcpTransport, TransportConfig

pytestmark = pytest.mark.timeout(60)


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.005)


def make_pki(d: Path) -> Path:
    """A CA and server, client and cli certificates in *d*, as the CLI writes them."""
    d.mkdir(parents=True, exist_ok=True)
    cli_tls.create_ca(str(d))
    for role in ("server", "client", "cli"):
        cli_tls.create_cert(role, str(d), ca_file=str(d / cli_tls.CA_FILE),
                            ca_key_file=str(d / cli_tls.CA_KEY_FILE))
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("other-pki"))


def settings(d: Path, role: str = "server", **kw: object) -> TlsSettings:
    base = dict(rpc=True, ca_file=str(d / "nomad-agent-ca.pem"),
                cert_file=str(d / f"global-{role}-nomad.pem"),
                key_file=str(d / f"global-{role}-nomad-key.pem"), server=role == "server")
    return TlsSettings(**{**base, **kw})  # type: ignore[arg-type]


def cfg_with_tls(d: Path, **tls: object) -> _Config:
    block = {"rpc": True, "ca_file": str(d / "nomad-agent-ca.pem"),
             "cert_file": str(d / "global-server-nomad.pem"),
             "key_file": str(d / "global-server-nomad-key.pem"), **tls}
    return build_overlay(_Config, {"data_dir": "/tmp/x", "server": {"enabled": True, "bootstrap_expect": 3},
                                   "tls": block})


# ---------------------------------------------------------------- config


def test_tls_block_defaults_are_nomads_all_off(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text('data_dir = "/tmp/x"\n[server]\nenabled = true\n')
    cfg, _, _ = load_files([str(p)])
    t = cfg.tls
    assert (t.http, t.rpc, t.verify_server_hostname, t.verify_https_client) == (False,) * 4
    assert (t.ca_file, t.cert_file, t.key_file) == (None, None, None)
    assert cfg.limits.https_handshake_timeout_s == 5.0
    assert MTLS_WARNING in validate(cfg)


def test_tls_block_is_read_from_toml_and_unknown_keys_are_refused(tmp_path, pki):
    p = tmp_path / "a.toml"
    p.write_text(f'data_dir = "/tmp/x"\n[server]\nenabled = true\nbootstrap_expect = 3\n'
                 f'[tls]\nhttp = true\n'
                 f'rpc = true\nca_file = "{pki}/nomad-agent-ca.pem"\n'
                 f'cert_file = "{pki}/global-server-nomad.pem"\n'
                 f'key_file = "{pki}/global-server-nomad-key.pem"\nverify_server_hostname = true\n'
                 f'verify_https_client = true\n')
    cfg, _, _ = load_files([str(p)])
    assert cfg.tls.http and cfg.tls.rpc and cfg.tls.verify_server_hostname and cfg.tls.verify_https_client
    assert MTLS_WARNING not in validate(cfg)  # Nomad warns only while HTTP or RPC is plain
    p.write_text('[tls]\nrpc_upgrade = true\n')
    with pytest.raises(ConfigError, match=r'unknown key "tls\.rpc_upgrade"'):
        load_files([str(p)])


@pytest.mark.parametrize("missing", ["ca_file", "cert_file", "key_file"])
def test_enabled_tls_without_a_file_is_a_config_error_naming_the_key(pki, missing):
    cfg = cfg_with_tls(pki, **{missing: None})
    with pytest.raises(ConfigError, match=rf"tls.{missing}: required when tls.rpc or tls.http is on"):
        validate(cfg)


def test_unreadable_or_bad_tls_files_are_config_errors_naming_the_key(pki, tmp_path):
    with pytest.raises(ConfigError, match=r'tls.cert_file: cannot read "/nonexistent/c.pem": No such file'):
        validate(cfg_with_tls(pki, cert_file="/nonexistent/c.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"tls.ca_file: .* holds no PEM data"):
        validate(cfg_with_tls(pki, ca_file=str(junk)))
    # A key that is not the certificate's.
    with pytest.raises(ConfigError, match=r"tls.cert_file/key_file: cannot load"):
        validate(cfg_with_tls(pki, key_file=str(pki / "global-client-nomad-key.pem")))
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.pem"
        locked.write_bytes((pki / "nomad-agent-ca.pem").read_bytes())
        locked.chmod(0)
        with pytest.raises(ConfigError, match=r"tls.ca_file: cannot read .*Permission denied"):
            validate(cfg_with_tls(pki, ca_file=str(locked)))


def test_tls_files_are_not_read_while_tls_is_off():
    cfg = build_overlay(_Config, {"data_dir": "/tmp/x", "server": {"enabled": True},
                                  "tls": {"cert_file": "/nonexistent"}})
    validate(cfg)


def test_tls_min_version_defaults_to_tls12_and_bad_values_are_config_errors_naming_the_key(pki):
    assert cfg_with_tls(pki).tls.tls_min_version == "tls12"
    assert validate(cfg_with_tls(pki, tls_min_version="tls13")) is not None
    with pytest.raises(ConfigError, match=r'tls.tls_min_version: unsupported TLS version "tls1.2", valid'):
        validate(cfg_with_tls(pki, tls_min_version="tls1.2"))
    # checked even while TLS is off, as Nomad parses it
    off = build_overlay(_Config, {"data_dir": "/tmp/x", "server": {"enabled": True},
                                  "tls": {"tls_min_version": "ssl3"}})
    with pytest.raises(ConfigError, match=r"tls.tls_min_version"):
        validate(off)


def test_tls_min_version_sets_every_context_and_refuses_older_peers(pki):
    edge = TlsEdge(settings(pki, http=True, min_version="tls13"))
    assert edge._c.rpc_server.minimum_version == ssl.TLSVersion.TLSv1_3
    assert edge._c.rpc_client.minimum_version == ssl.TLSVersion.TLSv1_3
    assert TlsEdge(settings(pki)).__dict__["_c"].rpc_server.minimum_version == ssl.TLSVersion.TLSv1_2
    # a peer that offers at most TLS 1.2 cannot reach a tls13 agent
    server_ctx = edge._c.rpc_server
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.check_hostname = False
    client_ctx.load_verify_locations(str(pki / "nomad-agent-ca.pem"))
    a, b = __import__("socket").socketpair()
    try:
        def serve() -> None:
            with pytest.raises(ssl.SSLError):
                server_ctx.wrap_socket(b, server_side=True).do_handshake()

        g = gevent.spawn(serve)
        with pytest.raises(ssl.SSLError):
            client_ctx.wrap_socket(a).do_handshake()
        g.get(timeout=5)
    finally:
        a.close()
        b.close()


def test_sighup_reloads_the_tls_files_and_checks_but_not_the_switches(pki):
    assert {"tls.ca_file", "tls.cert_file", "tls.key_file", "tls.verify_server_hostname",
            "tls.verify_https_client", "tls.tls_min_version"} <= RELOADABLE
    old = cfg_with_tls(pki)
    new = cfg_with_tls(pki, cert_file="/other.pem", verify_server_hostname=True, http=True)
    applied, restart = reloadable_diff(old, new)
    assert applied == ["tls.cert_file", "tls.verify_server_hostname"] and restart == ["tls.http"]


# ---------------------------------------------------------------- cert CLI


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_tls_cli_writes_nomads_file_names_roles_and_sans(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = cli_tls.tls_ca_create("", [])
    assert "==> CA certificate saved to: nomad-agent-ca.pem" in out
    assert "==> CA certificate key saved to: nomad-agent-ca-key.pem" in out
    out = cli_tls.tls_cert_create("", ["-server", "-region", "west"])
    assert "==> Server Certificate saved to west-server-nomad.pem" in out and "WARNING" in out
    cli_tls.tls_cert_create("", ["-client"])
    cli_tls.tls_cert_create("", ["-cli"])
    ca = _cert(tmp_path / "nomad-agent-ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, dns, ips in (("west-server-nomad", "server.west.nomad", ["127.0.0.1"]),
                           ("global-client-nomad", "client.global.nomad", ["127.0.0.1"]),
                           ("global-cli-nomad", "cli.global.nomad", [])):
        cert = _cert(tmp_path / f"{name}.pem")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [dns, "localhost"]
        assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ips
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        assert stat.S_IMODE((tmp_path / f"{name}-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "nomad-agent-ca-key.pem").stat().st_mode) == 0o600


def test_tls_cli_never_overwrites_and_needs_exactly_one_role(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_tls.tls_ca_create("", [])
    with pytest.raises(CliError, match=r"CA certificate file 'nomad-agent-ca.pem' already exists"):
        cli_tls.tls_ca_create("", [])
    cli_tls.tls_cert_create("", ["-server"])
    with pytest.raises(CliError, match=r"global-server-nomad.pem already exists"):
        cli_tls.tls_cert_create("", ["-server"])
    for args in ([], ["-server", "-client"]):
        with pytest.raises(CliError, match=r"Please provide either -server, -client, or -cli"):
            cli_tls.tls_cert_create("", args)
    with pytest.raises(CliError, match=r"Error reading CA"):
        cli_tls.tls_cert_create("", ["-client", "-ca", "missing.pem"])


def test_cli_https_handler_only_for_https_and_clear_errors_for_bad_files(pki, tmp_path):
    assert cli_tls.tls_handlers("http://127.0.0.1:4646", {"-ca-cert": "/nonexistent"}) == []
    ca = {"-ca-cert": str(pki / "nomad-agent-ca.pem")}
    assert len(cli_tls.tls_handlers("https://127.0.0.1:4646", ca)) == 1
    # Nomad's api.NewClient errors (go-rootcerts, Go's tls), under "Error initializing client: ".
    bad = {
        (("-ca-cert", "/nonexistent"),):
            "Error initializing client: Error loading CA File: open /nonexistent: no such file or directory",
        (("-ca-cert", str(tmp_path / "README")),):
            f"Error initializing client: Error loading CA File: Couldn't parse PEM in: {tmp_path / 'README'}",
        (("-ca-cert", str(pki / "nomad-agent-ca.pem")), ("-client-cert", str(pki / "nomad-agent-ca.pem"))):
            "Error initializing client: Both client cert and client key must be provided",
        (("-client-cert", str(tmp_path / "gone.pem")), ("-client-key", str(pki / "nomad-agent-ca-key.pem"))):
            f"Error initializing client: open {tmp_path / 'gone.pem'}: no such file or directory",
        (("-client-cert", str(tmp_path / "README")), ("-client-key", str(pki / "nomad-agent-ca-key.pem"))):
            "Error initializing client: tls: failed to find any PEM data in certificate input",
        (("-client-cert", str(pki / "global-cli-nomad.pem")),
         ("-client-key", str(pki / "nomad-agent-ca-key.pem"))):
            "Error initializing client: tls: private key does not match public key",
    }
    (tmp_path / "README").write_text("not a certificate\n")
    for given, message in bad.items():
        with pytest.raises(CliError) as e:
            cli_tls.tls_handlers("https://127.0.0.1:4646", dict(given))
        assert str(e.value) == message, given


def test_cli_ca_path_trusts_every_pem_file_in_the_directory_as_nomads_does(pki, tmp_path):
    """-ca-path (NOMAD_CAPATH) is a directory of PEM CA files, any names (go-rootcerts' LoadCAPath), not
    OpenSSL's hashed-name directory; -ca-cert, when given too, wins."""
    import shutil

    cas = tmp_path / "cas"
    cas.mkdir()
    shutil.copy(pki / "nomad-agent-ca.pem", cas / "cluster-ca.pem")
    [handler] = cli_tls.tls_handlers("https://127.0.0.1:4646", {"-ca-path": str(cas)})
    assert [c["subject"] for c in handler._context.get_ca_certs()], "the CA in -ca-path is not trusted"
    (cas / "README").write_text("not a certificate\n")  # as go-rootcerts: every file must hold PEM
    with pytest.raises(CliError, match=r"Error loading CA Path: Couldn't parse PEM in: .*README"):
        cli_tls.tls_handlers("https://127.0.0.1:4646", {"-ca-path": str(cas)})
    with pytest.raises(CliError, match=r"^Error initializing client: lstat .*missing: no such file or dir"):
        cli_tls.tls_handlers("https://127.0.0.1:4646", {"-ca-path": str(tmp_path / "missing")})


def test_cli_tls_server_name_is_also_checked_on_alloc_execs_websocket(monkeypatch):
    """-tls-server-name names the certificate alloc exec's WebSocket checks too (it is not urllib's)."""
    import urllib.request

    from runtime import cli, cli_exec

    opened: list[tuple[str, dict]] = []
    monkeypatch.setattr(cli_exec, "connect",
                        lambda url, headers, **kw: opened.append((url, kw)) or ("ws", None))
    try:
        named = cli_tls._ServerNameHTTPSHandler(ssl.create_default_context(), "server.global.nomad")
        cli.use_token("", named)
        cli_exec._open("https://127.0.0.1:4646", "", "/v1/client/allocation/a/exec")
        assert opened[-1][1].get("server_hostname") == "server.global.nomad"
        cli.use_token("", urllib.request.HTTPSHandler(context=ssl.create_default_context()))
        cli_exec._open("https://127.0.0.1:4646", "", "/v1/client/allocation/a/exec")
        assert opened[-1][1].get("server_hostname") is None  # the URL's own host
    finally:
        cli.use_token("")


def test_cli_insecure_and_nomad_skip_verify_as_nomads_meta_reads_them(monkeypatch):
    """-insecure is -tls-skip-verify's other name; NOMAD_SKIP_VERIFY that is no boolean is ignored, and
    a false flag leaves a true NOMAD_SKIP_VERIFY alone (Nomad's meta sets Insecure only when true)."""
    from runtime import cli

    seen: list[str] = []
    monkeypatch.setattr(cli, "tls_handlers", lambda addr, files: seen.append(files["-tls-skip-verify"]) or [])
    monkeypatch.setitem(cli.COMMANDS, ("noop",), lambda addr, args: "")
    for env, argv, want in (("", ["-insecure"], "true"), ("", ["-insecure=false"], ""),
                            ("yes", [], ""), ("true", ["-tls-skip-verify=false"], "true"),
                            ("", ["--tls-skip-verify"], "true")):
        monkeypatch.setenv("NOMAD_SKIP_VERIFY", env)
        assert cli.main([*argv, "noop"]) == 0
        assert seen[-1] in ((want,) if want else ("", "false")), (env, argv, seen[-1])
    assert cli.main(["-tls-skip-verify=maybe", "noop"]) == 1


# ---------------------------------------------------------------- HTTPS


def _https_ok_server(pki: Path, max_conns_per_client: int,
                     handshake_timeout_s: float) -> tuple[object, TlsEdge]:
    """A started HTTPS server (this PKI's server certificate) answering 200 "ok", and its TLS edge."""
    from actors.http_limits import LimitedWSGIServer

    def app(environ: dict, start: Callable) -> list[bytes]:
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    edge = TlsEdge(settings(pki, rpc=False, http=True))
    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None, max_conns_per_client=max_conns_per_client)
    server.handle_admitted = edge.https_handler(  # type: ignore[method-assign]
        server.handle_admitted, handshake_timeout_s)
    server.start()
    return server, edge


def test_https_handshakes_hold_a_per_ip_slot_and_are_dropped_at_their_timeout(pki):
    import http.client
    import socket

    from actors.http_limits import HTTP_LIMIT_STATS

    server, edge = _https_ok_server(pki, 2, 0.5)
    ctx = ssl.create_default_context(cafile=str(pki / "nomad-agent-ca.pem"))

    def get() -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", server.server_port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        assert get() == 200
        refused = HTTP_LIMIT_STATS["refused_conn_limit"]
        silent = [socket.create_connection(("127.0.0.1", server.server_port), timeout=5) for _ in range(2)]
        gevent.sleep(0.1)  # both admitted, both waiting in their handshakes
        third = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        assert third.recv(12) == b"HTTP/1.1 429"  # over the cap before any handshake
        assert HTTP_LIMIT_STATS["refused_conn_limit"] == refused + 1
        t0 = time.monotonic()
        assert all(s.recv(1) == b"" for s in silent)  # dropped at the 0.5 s handshake timeout
        assert time.monotonic() - t0 < 3 and edge.stats["http_refused"] == 2
        assert get() == 200  # the slots are free again
        for s in (*silent, third):
            s.close()
    finally:
        server.stop()


def test_plain_http_to_the_https_api_is_answered_400_as_gos_http_server_does(pki):
    """An operator who forgets NOMAD_ADDR=https:// gets Go net/http's 400 for a TLS listener (its
    tlsRecordHeaderLooksLikeHTTP), which Nomad's CLI prints as 'Unexpected response code: 400 (Client
    sent an HTTP request to an HTTPS server.)', not a reset connection."""
    import socket

    server, _ = _https_ok_server(pki, 4, 2)
    try:
        for first in (b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n", b"PUT /v1/jobs HTTP/1.1\r\n\r\n",
                      b"POST /v1/jobs HTTP/1.1\r\n\r\n", b"HEAD / HTTP/1.1\r\n\r\n",
                      b"OPTIONS / HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
                s.sendall(first)
                got = b""
                while chunk := s.recv(4096):
                    got += chunk
            assert got == (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                           b"Client sent an HTTP request to an HTTPS server.\n"), first
        # Anything else is still a failed handshake (Go answers only those five openings).
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
            s.sendall(b"DELETE /v1/job/x HTTP/1.1\r\n\r\n")
            try:
                assert s.recv(4096) == b""
            except ConnectionResetError:
                pass  # closed with the request unread
        ctx = ssl.create_default_context(cafile=str(pki / "nomad-agent-ca.pem"))
        import http.client

        conn = http.client.HTTPSConnection("127.0.0.1", server.server_port, context=ctx, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200  # HTTPS itself unchanged
        conn.close()
    finally:
        server.stop()


def test_cli_tls_failures_are_worded_as_gos_http_client_words_them(pki, other_pki):
    """What Nomad's CLI prints for the TLS mistakes an operator makes (Go's crypto/tls and x509
    errors inside the url.Error), not OpenSSL's reason codes."""
    import http.server
    import threading

    from actors.http_limits import LimitedWSGIServer
    from runtime import cli

    def app(environ: dict, start: Callable) -> list[bytes]:
        start("200 OK", [("Content-Type", "application/json")])
        return [b'"ok"']

    edge = TlsEdge(settings(pki, rpc=False, http=True, verify_https_client=True))
    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None, max_conns_per_client=8)
    server.handle_admitted = edge.https_handler(server.handle_admitted, 2)  # type: ignore[method-assign]
    server.start()
    plain = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    ca, cli_pair = str(pki / "nomad-agent-ca.pem"), {"-client-cert": str(pki / "global-cli-nomad.pem"),
                                                    "-client-key": str(pki / "global-cli-nomad-key.pem")}

    def error(addr: str, files: dict[str, str]) -> str:
        opener = urllib.request.build_opener(*cli_tls.tls_handlers(addr, files))
        old = urllib.request._opener  # type: ignore[attr-defined]
        urllib.request.install_opener(opener)
        try:
            with pytest.raises(CliError) as e:
                cli.call(addr, "GET", "/v1/status/leader")
            return str(e.value)
        finally:
            urllib.request.install_opener(old)

    import urllib.request

    try:
        addr = f"https://127.0.0.1:{server.server_port}"
        url = f'Get "{addr}/v1/status/leader": '
        assert error(addr, {"-ca-cert": str(other_pki / "nomad-agent-ca.pem"), **cli_pair}) == (
            url + "tls: failed to verify certificate: x509: certificate signed by unknown authority")
        # The agent's alert, or the closed connection when the request was already on its way (the
        # agent closes a failed handshake at once, as Go's http server does: either may be read).
        assert error(addr, {"-ca-cert": ca}) in (url + "remote error: tls: certificate required", url + "EOF")
        alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
        alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
        assert cli_tls.go_tls_error(alert, addr) == "remote error: tls: certificate required"
        other_pair = {"-client-cert": str(other_pki / "global-cli-nomad.pem"),
                      "-client-key": str(other_pki / "global-cli-nomad-key.pem")}
        assert error(addr, {"-ca-cert": ca, **other_pair}) in (
            url + "remote error: tls: unknown certificate authority", url + "EOF")
        assert error(addr, {"-ca-cert": ca, **cli_pair, "-tls-server-name": "foo.example"}) == (
            url + "tls: failed to verify certificate: x509: certificate is valid for "
                  "server.global.nomad, localhost, not foo.example")
        ip = f"https://127.0.0.2:{server.server_port}"
        server2 = LimitedWSGIServer(("127.0.0.2", server.server_port), app, log=None, max_conns_per_client=8)
        server2.handle_admitted = edge.https_handler(server2.handle_admitted, 2)  # type: ignore[method-assign]
        server2.start()
        try:
            assert error(ip, {"-ca-cert": ca, **cli_pair}) == (
                f'Get "{ip}/v1/status/leader": tls: failed to verify certificate: x509: certificate is '
                "valid for 127.0.0.1, not 127.0.0.2")
        finally:
            server2.stop()
        http_addr = f"https://127.0.0.1:{plain.server_port}"
        assert error(http_addr, {"-ca-cert": ca}) == (
            f'Get "{http_addr}/v1/status/leader": http: server gave HTTP response to HTTPS client')
    finally:
        server.stop()
        plain.shutdown()


# ---------------------------------------------------------------- names


def test_verify_server_hostname_wants_the_server_name_on_connections_to_servers():
    client = TlsSettings(rpc=True, verify_server_hostname=True, region="west", server=False)
    server = TlsSettings(rpc=True, verify_server_hostname=True, region="west", server=True)
    assert rpc_names(client, inbound=False) == ("server.west.nomad",)
    assert rpc_names(client, inbound=True) == ("server.west.nomad",)  # only servers dial a client
    assert rpc_names(server, inbound=False) == ("server.west.nomad", "client.west.nomad")
    assert rpc_names(server, inbound=True) == ()  # clients register here: any CA-signed certificate
    assert rpc_names(TlsSettings(rpc=True), inbound=False) == ()


# ---------------------------------------------------------------- the RPC transport


def ping(seq: int) -> Envelope:
    return Envelope(src="127.0.0.1:1", dst_actor="x",
                    payload=Ping(seq=seq, reply_to_node="n", reply_to_actor="x"))


@pytest.fixture
def rpc() -> Iterator[Callable[..., tuple[TcpTransport, list[Envelope]]]]:
    made: list[TcpTransport] = []

    def make(tls: TlsEdge | None, **config: object) -> tuple[TcpTransport, list[Envelope]]:
        inbox: list[Envelope] = []
        t = TcpTransport("127.0.0.1:0", inbox.append, tls=tls,
                         config=TransportConfig(backoff_min_s=0.01, backoff_max_s=0.05, **config))  # type: ignore[arg-type]
        t.start()
        made.append(t)
        return t, inbox
    yield make
    for t in made:
        t.stop()


def test_mutual_tls_carries_envelopes_both_ways(rpc, pki):
    server, s_inbox = rpc(TlsEdge(settings(pki, verify_server_hostname=True)))
    client, c_inbox = rpc(TlsEdge(settings(pki, "client", verify_server_hostname=True)))
    for i in range(50):
        assert client.send(server.address, ping(i))
    wait_until(lambda: len(s_inbox) == 50, what="50 frames over TLS")
    assert [e.payload.seq for e in s_inbox] == list(range(50))
    server.send(client.address, ping(99))  # the server dials the client back (answers)
    wait_until(lambda: len(c_inbox) == 1, what="an answer over TLS")
    assert server.stats["tls_refused"] == client.stats["tls_refused"] == 0


def test_idle_tls_link_writes_at_once_and_a_write_openssl_leaves_pending_is_completed_whole(rpc, pki):
    server, inbox = rpc(TlsEdge(settings(pki)))
    client, _ = rpc(TlsEdge(settings(pki, "client")))
    client.send(server.address, ping(0))  # connects (and handshakes) in the sender greenlet
    wait_until(lambda: len(inbox) == 1, what="the first frame")
    link = client._links[server.address]
    assert client.send(server.address, ping(1))
    assert link.queue.empty() and client.stats["sent"] == 2  # written by send() through the record layer
    # Without yielding, the receiver cannot read: the socket buffer fills, OpenSSL
    # leaves a write pending (WANT_WRITE), and that frame and all after it are queued.
    body = bytes(range(256)) * 240  # 60 KiB: under the direct-write bound
    n = 400
    for i in range(2, n):
        assert client.send(server.address, Envelope(src="127.0.0.1:1", dst_actor="x", payload=Ping(
            seq=i, reply_to_node="n", reply_to_actor="x", body=body)))
    assert not link.queue.empty()
    wait_until(lambda: len(inbox) == n, timeout=20, what="every frame through TLS")
    assert [e.payload.seq for e in inbox] == list(range(n))
    assert all(e.payload.body == body for e in inbox[2:])
    assert client.stats["sent"] == n and server.stats["bad_frames"] == 0


def test_peer_without_a_certificate_from_our_ca_is_refused_logged_and_counted(rpc, pki, other_pki, caplog):
    server, inbox = rpc(TlsEdge(settings(pki)))
    plain, _ = rpc(None)
    stranger, _ = rpc(TlsEdge(settings(other_pki, "client")))
    with caplog.at_level("WARNING", logger="runtime.transport"):
        plain.send(server.address, ping(1))
        stranger.send(server.address, ping(2))
        wait_until(lambda: server.stats["tls_refused"] >= 2, what="two refused handshakes")
    assert inbox == []
    assert any("refusing RPC connection" in r.getMessage() and "TLS handshake failed" in r.getMessage()
               for r in caplog.records)
    # The server carries on: a peer with a good certificate still gets through.
    good, _ = rpc(TlsEdge(settings(pki, "client")))
    good.send(server.address, ping(3))
    wait_until(lambda: len(inbox) == 1, what="a good peer served after refusals")


def test_a_silent_peer_is_dropped_at_the_handshake_timeout(rpc, pki):
    import socket

    server, _ = rpc(TlsEdge(settings(pki)), handshake_timeout_s=0.3)
    host, port = server.address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(1) == b""  # closed by the server, not by our 5 s timeout
    assert time.monotonic() - t0 < 3
    wait_until(lambda: server.stats["tls_refused"] == 1, what="the timeout counted")
    s.close()


def test_a_client_refuses_a_server_posing_with_a_client_certificate(rpc, pki):
    # verify_server_hostname: a client-only agent dialling "a server" whose
    # certificate says client.global.nomad refuses it (Nomad's role check).
    impostor, inbox = rpc(TlsEdge(settings(pki, "client")))
    client, _ = rpc(TlsEdge(settings(pki, "client", verify_server_hostname=True)))
    client.send(impostor.address, ping(1))
    wait_until(lambda: client.stats["tls_refused"] >= 1, what="the client's refusal")
    assert inbox == []
    # Without the check the same certificate is accepted (any CA-signed one).
    lax, _ = rpc(TlsEdge(settings(pki, "client")))
    lax.send(impostor.address, ping(2))
    wait_until(lambda: len(inbox) == 1, what="accepted without verify_server_hostname")


def test_raft_messages_are_taken_only_from_server_certificates(rpc, pki):
    # Nomad's validateRaftTLS: a client's certificate passes the handshake (it
    # must register) but its messages to Raft are dropped and counted.
    edge = TlsEdge(settings(pki, verify_server_hostname=True), server_only=("raft",))
    server, inbox = rpc(edge)
    client, _ = rpc(TlsEdge(settings(pki, "client")))
    peer, _ = rpc(TlsEdge(settings(pki)))
    to_raft = Envelope(src="127.0.0.1:1", dst_actor="raft",
                       payload=Ping(seq=1, reply_to_node="n", reply_to_actor="x"))
    client.send(server.address, to_raft)
    client.send(server.address, ping(2))  # other actors: served
    wait_until(lambda: len(inbox) == 1, what="the client's non-Raft message")
    assert inbox[0].dst_actor == "x" and edge.stats["rpc_role_dropped"] == 1
    peer.send(server.address, to_raft)  # a server's certificate speaks Raft
    wait_until(lambda: len(inbox) == 2, what="a server's Raft message")
    assert inbox[1].dst_actor == "raft"


def test_reload_swaps_certificates_for_new_connections_and_keeps_old_ones_on_failure(rpc, pki, other_pki):
    edge = TlsEdge(settings(pki))
    server, inbox = rpc(edge)
    newcomer, _ = rpc(TlsEdge(settings(other_pki, "client")))
    newcomer.send(server.address, ping(1))
    wait_until(lambda: server.stats["tls_refused"] == 1, what="refused under the first CA")
    edge.reload(settings(other_pki))
    assert edge.stats["reloads"] == 1

    def resent() -> bool:  # sends are dropped while the refused link backs off: keep sending
        newcomer.send(server.address, ping(2))
        return len(inbox) >= 1

    wait_until(resent, what="accepted after the reload")
    with pytest.raises(TlsError, match=r"tls.cert_file: cannot read"):
        edge.reload(settings(pki, cert_file="/nonexistent.pem"))
    assert edge.settings.ca_file == str(other_pki / "nomad-agent-ca.pem")  # the old contexts stay


def test_peer_names_reads_sans_then_the_common_name(pki):
    cert = ssl._ssl._test_decode_cert(str(pki / "global-server-nomad.pem"))  # type: ignore[attr-defined]
    assert peer_names(cert) == ("server.global.nomad", "localhost", "server.global.nomad")
    assert peer_names(None) == ()


def test_a_tls_peer_that_closes_our_idle_link_is_reported_at_once(rpc, pki):
    server, inbox = rpc(TlsEdge(settings(pki)))
    client, _ = rpc(TlsEdge(settings(pki, "client")))
    lost: list[tuple[str, str, bool]] = []
    client.on_peer_lost = lambda node, why, unsent: lost.append((node, why, unsent))
    client.send(server.address, ping(0))
    wait_until(lambda: len(inbox) == 1, what="the first frame")
    for i in range(1, 20):  # idle between frames: no false report from our own writes
        assert client.send(server.address, ping(i))
    wait_until(lambda: len(inbox) == 20, what="20 frames")
    assert lost == []
    server.stop()  # the peer's process ends
    wait_until(lambda: bool(lost), what="the closed TLS connection reported")
    assert lost == [(server.address, "connection closed by the peer", False)]
