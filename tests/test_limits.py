"""Connection limits (issue 10): per-client-IP caps and the RPC handshake deadline, on real sockets.

Nomad's ``limits`` block: ``rpc_max_conns_per_client`` and
``http_max_conns_per_client`` (default 100) cap what one IP holds open --
beyond the cap a connection is refused, logged and counted; an RPC
connection that has not completed its first frame within
``rpc_handshake_timeout`` (5s) is dropped, so slow-loris clients cannot pin
connections.  The transport and the HTTP server are tested in-process, then
a real agent with a small ``[limits]`` block.  Waits poll with deadlines.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import gevent
import pytest

from actors.http_limits import HTTP_LIMIT_STATS, LimitedWSGIServer
from runtime.config import ConfigError, Limits, load_files, validate
from runtime.messages import Envelope, Ping
from runtime.transport import TcpTransport, TransportConfig
from runtime.wire import encode_frame
from tests.test_agent_process import AgentProc, agents, free_port  # noqa: F401

pytestmark = pytest.mark.timeout(90)


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.005)


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the server has closed its end (EOF or reset) within *timeout*."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def frame(seq: int) -> bytes:
    return encode_frame(Envelope(src="127.0.0.1:1", dst_actor="x",
                                 payload=Ping(seq=seq, reply_to_node="n", reply_to_actor="x")))


@pytest.fixture
def rpc() -> Iterator[Callable[..., tuple[TcpTransport, list[Envelope]]]]:
    made: list[TcpTransport] = []

    def make(**config: object) -> tuple[TcpTransport, list[Envelope]]:
        inbox: list[Envelope] = []
        t = TcpTransport("127.0.0.1:0", inbox.append, config=TransportConfig(**config))  # type: ignore[arg-type]
        t.start()
        made.append(t)
        return t, inbox
    yield make
    for t in made:
        t.stop()


def connect(t: TcpTransport) -> socket.socket:
    host, port = t.address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


# ---------------------------------------------------------------- RPC transport


def test_rpc_connections_beyond_the_per_ip_cap_are_refused_logged_and_counted(rpc, caplog):
    t, inbox = rpc(max_conns_per_client=3)
    held = [connect(t) for _ in range(3)]
    for i, s in enumerate(held):
        s.sendall(frame(i))
    wait_until(lambda: len(inbox) == 3, what="three connections served")
    with caplog.at_level("WARNING", logger="runtime.transport"):
        extra = [connect(t) for _ in range(5)]
        assert all(closed_by_server(s) for s in extra)
    assert t.stats["refused_conn_limit"] == 5
    refusals = [r.getMessage() for r in caplog.records if "rejecting connection" in r.getMessage()]
    assert len(refusals) == 1 and "limits.rpc_max_conns_per_client = 3" in refusals[0]  # rate-limited
    # The held connections still work, and a slot freed is a slot usable again.
    held[0].sendall(frame(10))
    wait_until(lambda: len(inbox) == 4, what="a held connection still served")
    held.pop().close()
    wait_until(lambda: t._conns_per_ip.get("127.0.0.1") == 2, what="the closed slot released")
    again = connect(t)
    again.sendall(frame(11))
    wait_until(lambda: len(inbox) == 5, what="a new connection in the freed slot")
    for s in [*held, again, *extra]:
        s.close()


def test_slow_loris_rpc_connection_is_dropped_at_the_handshake_deadline(rpc):
    t, inbox = rpc(handshake_timeout_s=0.3)
    slow = connect(t)
    data = frame(1)
    started = time.monotonic()
    closed = False
    for b in data[:-1]:  # one byte every 50 ms: never a whole frame within 0.3 s
        try:
            slow.sendall(bytes([b]))
        except OSError:
            closed = True
            break
        gevent.sleep(0.05)
        if time.monotonic() - started > 3:
            break
    assert closed or closed_by_server(slow)
    assert time.monotonic() - started < 3
    assert t.stats["handshake_timeouts"] == 1 and inbox == []
    slow.close()
    idle = connect(t)  # silent: dropped too
    assert closed_by_server(idle)
    assert t.stats["handshake_timeouts"] == 2
    idle.close()


def test_after_the_first_frame_an_idle_connection_stays_open(rpc):
    t, inbox = rpc(handshake_timeout_s=0.2)
    s = connect(t)
    s.sendall(frame(1))
    wait_until(lambda: len(inbox) == 1, what="first frame")
    gevent.sleep(0.5)  # idle past the handshake timeout: that is the property under test
    s.sendall(frame(2))
    wait_until(lambda: len(inbox) == 2, what="a frame after idling")
    assert t.stats["handshake_timeouts"] == 0
    s.close()


def test_a_flood_of_garbage_is_all_counted_but_logged_rate_limited(rpc, caplog):
    t, _ = rpc()
    with caplog.at_level("WARNING", logger="runtime.transport"):
        for _ in range(20):
            s = connect(t)
            s.sendall(b"\x00\x00\x00\x03abc")
            assert closed_by_server(s)
            s.close()
        wait_until(lambda: t.stats["bad_frames"] == 20, what="every bad connection counted")
    assert len([r for r in caplog.records if "bad frame" in r.getMessage()]) == 1


def test_frame_size_limit_closes_the_connection_before_buffering(rpc):
    t, _ = rpc(max_frame_bytes=1024)
    s = connect(t)
    s.sendall((10**9).to_bytes(4, "big") + b"x" * 100)  # a hostile length prefix
    assert closed_by_server(s)
    assert t.stats["bad_frames"] == 1
    s.close()


# ---------------------------------------------------------------- HTTP server


def test_http_connections_beyond_the_per_ip_cap_get_429_and_others_are_served():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None, max_conns_per_client=2)
    server.start()
    try:
        port = server.server_port
        before = HTTP_LIMIT_STATS["refused_conn_limit"]
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        wait_until(lambda: server._per_ip.get("127.0.0.1") == 2, what="two connections held")
        third = socket.create_connection(("127.0.0.1", port), timeout=5)
        third.settimeout(5)
        reply = third.recv(4096)
        assert reply.startswith(b"HTTP/1.1 429 ")
        assert HTTP_LIMIT_STATS["refused_conn_limit"] == before + 1
        third.close()
        held[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200 ")
        for s in held:
            s.close()
        wait_until(lambda: not server._per_ip, what="slots released")
        fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        fresh.settimeout(5)
        assert fresh.recv(4096).startswith(b"HTTP/1.1 200 ")
        fresh.close()
    finally:
        server.stop(timeout=1)


def test_http_answers_small_and_large_and_streamed_bodies_whole_on_one_keep_alive_connection():
    import http.client

    from actors.http_limits import SINGLE_SEND_MAX_BYTES

    bodies = {"/small": b"s" * 100, "/large": bytes(range(256)) * (SINGLE_SEND_MAX_BYTES // 128),
              "/edge": b"e" * SINGLE_SEND_MAX_BYTES}

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/stream":  # no Content-Length: pywsgi answers chunked
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"one,", b"two"])
        body = bodies[path]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        for _ in range(2):
            for path, body in [*bodies.items(), ("/stream", b"one,two")]:
                conn.request("GET", path)
                r = conn.getresponse()
                assert (r.status, r.read()) == (200, body), path
                assert r.getheader("Date")
        conn.close()
    finally:
        server.stop(timeout=1)


def test_http_header_block_the_parser_refuses_gets_431_and_no_traceback(capfd):
    """Over 100 header lines: http.client's parser raises an HTTPException, which pywsgi answered
    400 while printing its traceback to stderr (any client could fill the agent's log with them).
    Now Go's 431, and the server goes on serving."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 150 + b"\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        server.stop(timeout=1)
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------- config


def test_limits_have_nomads_defaults_and_reject_negative_values(tmp_path):
    assert Limits() == Limits(http_max_conns_per_client=100, rpc_max_conns_per_client=100,
                              rpc_handshake_timeout_s=5.0)
    path = tmp_path / "a.toml"
    path.write_text('[server]\nenabled = true\n[limits]\nrpc_max_conns_per_client = -1\n')
    cfg, _, _ = load_files([str(path)])
    with pytest.raises(ConfigError, match=r"limits\.rpc_max_conns_per_client: must be >= 0"):
        validate(cfg)
    path.write_text('[limits]\nrpc_handshake_timeout = 5\n')
    with pytest.raises(ConfigError, match=r"limits\.rpc_handshake_timeout: expected a duration"):
        load_files([str(path)])


# ---------------------------------------------------------------- a real agent


def test_agent_enforces_its_limits_block_and_keeps_serving(agents, tmp_path):
    ports = {"http": free_port(), "rpc": free_port(), "serf": free_port()}
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join([
        f'data_dir = "{tmp_path / "data"}"', 'bind_addr = "127.0.0.1"',
        "[ports]", *(f"{k} = {v}" for k, v in ports.items()),
        "[server]", "enabled = true", "bootstrap_expect = 1",
        "[telemetry]", 'collection_interval = "200ms"',
        "[limits]", "http_max_conns_per_client = 4", "rpc_max_conns_per_client = 3",
        'rpc_handshake_timeout = "500ms"']) + "\n")
    agent = agents(["-config", str(cfg)], http_port=ports["http"]).wait_healthy()

    # RPC: slow-loris and idle connections are dropped at the deadline; a 4th is refused.
    idle = [socket.create_connection(("127.0.0.1", ports["rpc"]), timeout=5) for _ in range(3)]
    refused = socket.create_connection(("127.0.0.1", ports["rpc"]), timeout=5)
    assert closed_by_server(refused, 5.0)
    assert all(closed_by_server(s, 5.0) for s in idle)  # the 500 ms handshake deadline
    for s in [*idle, refused]:
        s.close()

    # HTTP: 4 idle connections held, the 5th gets 429, the API keeps answering once they go.
    held = [socket.create_connection(("127.0.0.1", ports["http"]), timeout=5) for _ in range(4)]

    def fifth_refused() -> bool:
        # The agent accepts asynchronously: a 5th that arrives before all 4 are
        # accepted is served (it then waits for a request line); try again.
        s = socket.create_connection(("127.0.0.1", ports["http"]), timeout=5)
        s.settimeout(0.5)
        try:
            return s.recv(4096).startswith(b"HTTP/1.1 429 ")
        except TimeoutError:
            return False
        finally:
            s.close()

    wait_until(fifth_refused, 10.0, "a 5th HTTP connection refused with 429")
    for s in held:
        s.close()

    def metric(name: str) -> float:
        status, body, _ = agent.get("/v1/metrics")
        if status != 200:
            return 0.0
        return sum(g["Value"] for g in json.loads(body)["Gauges"] if g["Name"] == name)

    wanted = {"nomad.rpc.conn_limit_refused": 1, "nomad.rpc.handshake_timeouts": 3,
              "nomad.http.conn_limit_refused": 1}
    deadline = time.monotonic() + 10
    while True:
        seen = {name: metric(name) for name in wanted}
        if all(seen[name] >= floor for name, floor in wanted.items()):
            break
        assert time.monotonic() < deadline, f"limit gauges {seen}, wanted at least {wanted}\n{agent.detail()}"
        gevent.sleep(0.1)
    assert agent.healthy()
    assert any("rejecting connection" in line for line in agent.out + agent.err), agent.detail()
    assert any("rejecting HTTP connection" in line for line in agent.out + agent.err), agent.detail()


def test_the_request_header_reader_keeps_the_standard_librarys_answers_and_limits():
    """actors.http_limits.read_headers, pywsgi's MessageClass here (the email parser cost ~1/7 of a
    request's CPU): the first of repeated headers, names in any case, folded lines joined, the
    standard library's limits (a line too long: 400; over 100 lines: 431), a line without a colon
    refused."""
    import http.client
    import io

    from actors.http_limits import MAX_HEADER_LINE_BYTES, MAX_HEADER_LINES, read_headers

    block = (b"Host: x\r\nContent-Type: application/json\r\nX-Nomad-Token:  secret \r\n"
             b"Accept: a\r\nACCEPT: b\r\nX-Long: one\r\n  two\r\n\r\nBODY")
    fp = io.BytesIO(block)
    h = read_headers(fp)
    assert h.status == "" and fp.read() == b"BODY"  # the body is left where it was
    assert h.get("content-type") == h.typeheader == "application/json" and h.getheader("HOST") == "x"
    assert h.get("x-nomad-token") == "secret" and h.get("accept") == "a" and h.get("nope", "d") == "d"
    assert h.get("x-long") == "one two" and "Accept" in h
    del h["accept"]
    assert h.get("Accept") is None
    assert list(h.headers) == ["Host: x\r\n", "Content-Type: application/json\r\n",
                               "X-Nomad-Token: secret\r\n", "X-Long: one two\r\n"]
    assert read_headers(io.BytesIO(b"X: " + b"a" * MAX_HEADER_LINE_BYTES + b"\r\n\r\n")).status
    assert read_headers(io.BytesIO(b"no colon here\r\n\r\n")).status == "malformed MIME header line"
    assert read_headers(io.BytesIO(b" folded first\r\n\r\n")).status == "malformed MIME header line"
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADER_LINES + 1)) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="got more than 100 headers"):
        read_headers(io.BytesIO(many))
    assert read_headers(io.BytesIO(b"")).items == []  # the connection closed: no headers


def test_a_streamed_answer_that_writes_nothing_learns_that_its_caller_hung_up():
    """A quiet stream (a plain-text log follow) cannot find a closed connection by writing;
    CALLER_GONE tells it, and says no while the caller is still there."""
    from actors.http_limits import CALLER_GONE

    seen: list[bool] = []

    def quiet(environ):
        gone = environ[CALLER_GONE]
        while True:
            seen.append(gone())
            if seen[-1]:
                return
            gevent.sleep(0.02)
            yield from ()

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"")
        return quiet(environ)

    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    try:
        conn = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        conn.sendall(b"GET /follow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: len(seen) >= 5, what="the stream polled while the caller was there")
        assert not any(seen)
        conn.close()
        wait_until(lambda: seen[-1], what="the stream saw its caller hang up")
    finally:
        server.stop(timeout=1)


def test_the_caller_gone_check_holds_no_cycle_back_to_its_handler():
    """The check in every request's environ must not reference the handler that owns the environ:
    a cycle per request leaves each finished handler (and its environ) to the cyclic collector."""
    import gc
    import http.client

    from actors.http_limits import CALLER_GONE, HardenedWSGIHandler

    checks = []

    def app(environ, start_response):
        checks.append(environ[CALLER_GONE])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = LimitedWSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        server.stop(timeout=1)
    assert not [x for x in gc.get_referents(checks[0]) if isinstance(x, HardenedWSGIHandler)]
    assert not [x for x in gc.get_referents(*gc.get_referents(checks[0]))
                if isinstance(x, HardenedWSGIHandler)]
