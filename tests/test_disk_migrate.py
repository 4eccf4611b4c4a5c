"""ephemeral_disk migrate across nodes: the snapshot tar both ways, its safety, the migrate token, the
server's answer about a previous allocation, and the AllocRunner's remote wait with an injected
migrator (in the simulator, virtual time)."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from typing import Any

import pytest

from actors.client.alloc_runner import AllocRunnerConfig, GetSnapshotSource, ServerLink
from actors.client.disk_migrate import (
    SnapshotError,
    SnapshotFetch,
    check_migrate_token,
    error_filename,
    extract_snapshot,
    install_snapshot,
    link_escapes,
    migrate,
    migrate_token,
    snapshot_chunks,
    staging_dir,
)
from actors.client.messages import GetPrevAlloc, PrevAllocResponse
from actors.server.alloc_endpoint import ALLOC_ENDPOINT, prev_alloc
from runtime.actor import NodeActor
from tests.test_alloc_runner import DiskClient, _disk_alloc, events

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024


# ------------------------------------------------------------ tokens
def test_a_migrate_token_is_nomads_keyed_blake2b_and_checks_only_with_the_same_secret_and_alloc():
    tok = migrate_token("alloc-1", "secret-a")
    assert len(tok) == 88 and tok == migrate_token("alloc-1", "secret-a")  # base64url of 64 bytes
    assert check_migrate_token("alloc-1", "secret-a", tok)
    assert not check_migrate_token("alloc-2", "secret-a", tok)
    assert not check_migrate_token("alloc-1", "secret-b", tok)
    assert not check_migrate_token("alloc-1", "secret-a", "")
    assert not check_migrate_token("alloc-1", "secret-a", "not base64 !!")
    assert migrate_token("alloc-1", "") == "" and migrate_token("a", "x" * 65) == ""


# ------------------------------------------------------------ the tar, served and unpacked
def _alloc_dir(root: Any) -> Any:
    d = root / "prev"
    (d / "alloc" / "data" / "sub").mkdir(parents=True)
    (d / "alloc" / "data" / "db.txt").write_text("rows")
    (d / "alloc" / "data" / "sub" / "x.bin").write_bytes(b"\x00\x01" * 40_000)
    os.symlink("db.txt", d / "alloc" / "data" / "link")
    os.symlink("/etc/passwd", d / "alloc" / "data" / "bad-link")  # stored as a link, never read
    (d / "alloc" / "logs").mkdir()
    (d / "alloc" / "logs" / "t.stdout.0").write_text("not data")  # logs do not migrate
    (d / "t" / "local").mkdir(parents=True)
    (d / "t" / "local" / "state").write_text("mine")
    (d / "t" / "secrets").mkdir()
    (d / "t" / "secrets" / "token").write_text("never")
    os.chmod(d / "t" / "local" / "state", 0o640)
    return d


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if info.isfile():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def test_the_snapshot_holds_alloc_data_and_the_tasks_local_dirs_only_with_links_as_links(tmp_path):
    d = _alloc_dir(tmp_path)
    data = b"".join(snapshot_chunks(str(d), "prev", ("t",)))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = {m.name: m for m in tf.getmembers()}
        assert sorted(names) == ["alloc/data", "alloc/data/bad-link", "alloc/data/db.txt", "alloc/data/link",
                                 "alloc/data/sub", "alloc/data/sub/x.bin", "t/local", "t/local/state"]
        assert names["alloc/data/bad-link"].issym() and names["alloc/data/bad-link"].linkname == "/etc/passwd"
        assert tf.extractfile("alloc/data/sub/x.bin").read() == b"\x00\x01" * 40_000
        assert names["t/local/state"].mode == 0o640


def test_a_task_that_replaced_its_local_dir_with_a_link_gives_nothing_from_it(tmp_path):
    d = tmp_path / "prev"
    (d / "alloc" / "data").mkdir(parents=True)
    (d / "t").mkdir()
    os.symlink("/etc", d / "t" / "local")
    with tarfile.open(fileobj=io.BytesIO(b"".join(snapshot_chunks(str(d), "prev", ("t",))))) as tf:
        assert tf.getnames() == ["alloc/data"]


def test_a_snapshot_round_trips_into_the_new_allocations_directory(tmp_path):
    d = _alloc_dir(tmp_path)
    stream = io.BytesIO(b"".join(snapshot_chunks(str(d), "prev", ("t",))))
    staging = tmp_path / "staging"
    # The bad link's target is absolute: refused (Nomad: "archive contains symlink that escapes").
    with pytest.raises(SnapshotError, match="symlink that escapes"):
        extract_snapshot(stream, str(staging), prev_alloc_id="prev", max_bytes=MB, max_entries=100)
    os.unlink(d / "alloc" / "data" / "bad-link")
    stream = io.BytesIO(b"".join(snapshot_chunks(str(d), "prev", ("t",))))
    n = extract_snapshot(stream, str(tmp_path / "staging2"), prev_alloc_id="prev", max_bytes=MB,
                         max_entries=100)
    assert n == 4 + 80_000 + 4
    new = tmp_path / "new"
    (new / "alloc" / "data").mkdir(parents=True)  # an empty one in the way gives way
    install_snapshot(str(tmp_path / "staging2"), str(new), ("t",))
    assert (new / "alloc" / "data" / "db.txt").read_text() == "rows"
    assert os.readlink(new / "alloc" / "data" / "link") == "db.txt"
    assert (new / "t" / "local" / "state").read_text() == "mine"
    assert (new / "t" / "local" / "state").stat().st_mode & 0o777 == 0o640
    assert not (new / "alloc" / "logs").exists() and not (new / "t" / "secrets").exists()


@pytest.mark.parametrize("entries,why", [
    ([_file("/etc/cron.d/x")], "escapes alloc dir"),
    ([_file("alloc/data/../../../x")], "escapes alloc dir"),
    ([_file("..")], "escapes alloc dir"),
    ([_link("alloc/data/l", "/etc")], "symlink that escapes"),
    ([_link("alloc/data/l", "../../../etc")], "symlink that escapes"),
    ([_link("alloc/data/l", "../..")], ""),  # the allocation directory itself: inside
    ([_link("alloc/data/l", "../.."), _file("alloc/data/l/x")], "through a link"),
    ([_link("alloc/data/h", "alloc/data/x", tarfile.LNKTYPE)], "unsupported type"),
    ([_link("alloc/data/dev", "", tarfile.CHRTYPE)], "unsupported type"),
    ([_file("alloc/data/big", b"x" * 2000)], "larger than the ephemeral disk"),
    ([_file(f"alloc/data/f{i}", b"") for i in range(12)], "more than 10 entries"),
    ([_file("alloc/data/a"), _file(error_filename("prev"), b"Error snapshotting: disk on fire")],
     "disk on fire"),
])
def test_an_unsafe_or_oversized_archive_is_refused_with_a_clear_error(tmp_path, entries, why):
    dest = tmp_path / "staging"
    stream = io.BytesIO(_tar(entries))
    if not why:
        extract_snapshot(stream, str(dest), prev_alloc_id="prev", max_bytes=1000, max_entries=10)
        return
    with pytest.raises(SnapshotError, match=why):
        extract_snapshot(stream, str(dest), prev_alloc_id="prev", max_bytes=1000, max_entries=10)
    assert not any(p.name == "x" for p in tmp_path.rglob("*")) or why == "through a link"
    assert not (tmp_path.parent / "etc").exists()


def test_an_existing_file_is_replaced_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious")
    stream = io.BytesIO(_tar([_link("alloc/data/f", "x"), _file("alloc/data/f", b"new")]))
    extract_snapshot(stream, str(tmp_path / "s"), prev_alloc_id="prev", max_bytes=100, max_entries=10)
    assert (tmp_path / "s" / "alloc" / "data" / "f").read_bytes() == b"new"
    assert not (tmp_path / "s" / "alloc" / "data" / "f").is_symlink()


def test_garbage_and_an_endless_stream_are_refused(tmp_path):
    with pytest.raises(SnapshotError):
        extract_snapshot(io.BytesIO(b"no tar at all" * 100), str(tmp_path / "a"), prev_alloc_id="p",
                         max_bytes=100, max_entries=10)

    # A member bigger than the disk is refused at its header, before its data is read.
    big = _tar([_file("alloc/data/f", b"y" * 5000)])
    with pytest.raises(SnapshotError):
        extract_snapshot(io.BytesIO(big), str(tmp_path / "b"), prev_alloc_id="p", max_bytes=100,
                         max_entries=10)
    assert link_escapes(["alloc", "data", "l"], "../../..") and not link_escapes(["a", "l"], "b/../c")


def test_migrate_leaves_nothing_behind_on_failure_and_installs_on_success(tmp_path):
    d = _alloc_dir(tmp_path)
    os.unlink(d / "alloc" / "data" / "bad-link")
    root = tmp_path / "allocs"
    root.mkdir()
    req = SnapshotFetch(alloc_id="new1", prev_alloc_id="prev", node_addr="x:1", token="",
                        alloc_root=str(root), tasks=("t",), max_bytes=MB, max_entries=100,
                        timeout_s=5, io_timeout_s=5)
    assert migrate(req, lambda r: io.BytesIO(_tar([_file("/abs")]))).startswith(
        "archive contains object that escapes")
    # Staging gone; the new allocation's directory (made as the pull starts) holds nothing.
    assert sorted(os.listdir(root)) == ["new1"] and os.listdir(root / "new1") == []

    def refused(r: SnapshotFetch) -> Any:
        raise SnapshotError("error getting snapshot from previous alloc 'prev': connection refused")
    assert "connection refused" in migrate(req, refused)
    good = b"".join(snapshot_chunks(str(d), "prev", ("t",)))
    assert migrate(req, lambda r: io.BytesIO(good)) == ""
    assert (root / "new1" / "alloc" / "data" / "db.txt").read_text() == "rows"
    assert not os.path.exists(staging_dir(str(root), "new1"))


# ------------------------------------------------------------ the servers' answer
class _State:
    def __init__(self, nodes: dict[str, Any], allocs: dict[str, Any]) -> None:
        self.tables = {"nodes": nodes, "allocs": allocs}


def _server_state(prev_status: str = "running", migrate_flag: bool = True) -> _State:
    job = {"TaskGroups": [{"Name": "g", "EphemeralDisk": {"Migrate": migrate_flag, "Sticky": True}}]}
    return _State(
        {"nA": {"SecretID": "sa", "HTTPAddr": "10.0.0.1:4646"}, "nB": {"SecretID": "sb", "HTTPAddr": "b:1"}},
        {"p1": {"ID": "p1", "NodeID": "nA", "ClientStatus": prev_status, "TaskGroup": "g", "Job": job},
         "n1": {"ID": "n1", "NodeID": "nB", "PreviousAllocation": "p1", "DesiredStatus": "run",
                "TaskGroup": "g", "Job": job}})


def test_the_server_answers_the_previous_node_and_a_migrate_token_only_for_a_migrating_replacement():
    err, out = prev_alloc(_server_state(), "nB", "sb", "n1")
    assert err == "" and out["found"] and not out["terminal"] and out["node_id"] == "nA"
    assert out["node_http_addr"] == "10.0.0.1:4646"
    assert check_migrate_token("p1", "sa", out["migrate_token"])  # keyed with the previous node's secret
    assert prev_alloc(_server_state("lost"), "nB", "sb", "n1")[1]["terminal"]
    assert "migrate_token" not in prev_alloc(_server_state(migrate_flag=False), "nB", "sb", "n1")[1]
    assert prev_alloc(_server_state(), "nB", "wrong", "n1")[0] == "node secret ID does not match"
    assert prev_alloc(_server_state(), "nA", "sa", "n1")[0] == "Permission denied"  # not the asker's
    st = _server_state()
    del st.tables["allocs"]["p1"]
    assert prev_alloc(st, "nB", "sb", "n1") == ("", {"found": False})


# ------------------------------------------------------------ the runner's remote wait
class FakeEndpoint(NodeActor):
    """A server's AllocEndpoint answering GetPrevAlloc from a script: answers[i] for the i-th query."""

    def __init__(self, env: Any, name: str, answers: list[dict[str, Any]], asked: list[GetPrevAlloc]) -> None:
        super().__init__(env, name)
        self.answers, self.asked = answers, asked

    def receive(self, message: Any) -> Any:
        if isinstance(message, GetPrevAlloc):
            self.asked.append(message)
            fields = self.answers[min(len(self.asked), len(self.answers)) - 1]
            delay = fields.get("delay", 0.0)
            resp = PrevAllocResponse(req_id=message.req_id,
                                     **{k: v for k, v in fields.items() if k != "delay"})
            if delay:
                self.later = (message.reply_node, message.reply_actor, resp)
                self.set_timer("later", delay)
            else:
                self.send(message.reply_node, message.reply_actor, resp)
        return None

    def on_timer(self, name: str) -> None:
        self.send(*self.later)


class FakeMigrator:
    """Answers each fetch *latency_s* later with *error* (writing db.txt into place when it succeeds)."""

    def __init__(self, c: Any, error: str = "", latency_s: float = 0.5, answer: bool = True) -> None:
        self.c, self.error, self.latency_s, self.answer = c, error, latency_s, answer
        self.reqs: list[SnapshotFetch] = []

    def fetch(self, req: SnapshotFetch, notify: Any) -> None:
        self.reqs.append(req)
        if not self.error:
            d = os.path.join(req.alloc_root, req.alloc_id, "alloc", "data")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "db.txt"), "w") as f:
                f.write("from node A")
        if self.answer:
            self.c.sched.at(self.c.sched.now + self.latency_s, lambda: notify(self.error))


class RemoteClient(DiskClient):
    def __init__(self, root: str, answers: list[dict[str, Any]], *, error: str = "", answer: bool = True,
                 config: AllocRunnerConfig | None = None) -> None:
        self.answers, self.asked = answers, []
        self.migrator: FakeMigrator | None = None
        self._error, self._answer = error, answer
        super().__init__(root, config=config)
        self.server = self.sched.add_node(
            "s1", lambda env: env.spawn(FakeEndpoint, ALLOC_ENDPOINT, self.answers, self.asked))
        self.node.actors["allocs"].tell(ServerLink(node_id="nB", secret_id="sb", servers=("s1",)))

    def _boot(self, env: Any) -> None:
        from actors.client.alloc_runner import AllocRunner
        from tests.test_alloc_runner import Reporter

        if self.migrator is None:
            self.migrator = FakeMigrator(self, self._error, answer=self._answer)
        env.spawn(Reporter, "reporter", self.got)
        env.spawn(AllocRunner, "allocs", driver_registry={"sim": self.driver}, state=self.store,
                  alloc_root=self.root, reporter="reporter", config=self.config, alloc_dirs=self.dirs,
                  migrator=self.migrator)


RUNNING = {"ok": True, "found": True, "client_status": "running", "node_id": "nA-node", "index": 5,
           "node_http_addr": "10.0.0.1:4646", "migrate_token": "tok"}
DONE = {**RUNNING, "client_status": "complete", "terminal": True, "index": 9}


def _setup(c: Any) -> list[str]:
    return [e.message for e in c.task("a2").events  # the migration's, not the task_dir hook's
            if e.type == "Task Setup" and e.message != "Building Task Directory"]


def test_the_replacement_waits_for_the_remote_previous_allocation_then_pulls_its_disk(tmp_path):
    c = RemoteClient(str(tmp_path), [RUNNING, {**RUNNING, "delay": 3.0}, DONE])
    c.set(_disk_alloc("a2", prev="p1-remote", sticky=True, migrate=True))
    c.run(2.0)
    assert c.starts_of("a2") == [] and c.task("a2").state == "pending"  # p1 still runs on node A
    assert [q.min_index for q in c.asked[:2]] == [0, 5] and c.asked[0].alloc_id == "a2"
    c.until(lambda: c.status("a2") == "running", 10)
    req = c.migrator.reqs[0]
    assert (req.prev_alloc_id, req.node_addr, req.token, req.tasks, req.max_bytes) == (
        "p1-remote", "10.0.0.1:4646", "tok", ("t",), 300 * MB)
    assert c.starts_of("a2")[0] >= 3.5  # after the terminal answer (3 s) and the pull (0.5 s)
    assert (tmp_path / "a2" / "alloc" / "data" / "db.txt").read_text() == "from node A"
    assert _setup(c) == ["Migrating the ephemeral disk of previous allocation p1-remot from node nA-node",
                         "Migrated the ephemeral disk of previous allocation p1-remot"]
    assert events(c.task("a2"))[-1] == "Started"


def test_a_failed_pull_is_a_task_event_and_the_tasks_start_with_an_empty_disk(tmp_path):
    c = RemoteClient(str(tmp_path), [DONE], error="error getting snapshot from previous alloc "
                                                  "'p1-remote': connection refused")
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.until(lambda: c.status("a2") == "running", 10)
    assert "connection refused; the tasks start with an empty ephemeral disk" in _setup(c)[-1]
    assert _setup(c)[-1].startswith("Failed to migrate the ephemeral disk of previous allocation p1-remot")


def test_a_migrator_that_never_answers_is_given_up_on_after_the_configured_timeout(tmp_path):
    cfg = AllocRunnerConfig(migrate_timeout_s=4.0, migrate_fetch_grace_s=1.0)
    c = RemoteClient(str(tmp_path), [DONE], answer=False, config=cfg)
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.run(4.5)
    assert c.starts_of("a2") == []
    c.until(lambda: c.status("a2") == "running", 10)
    assert "no answer within 4s" in _setup(c)[-1] and c.sched.now >= 5.0


@pytest.mark.parametrize("answer,says", [
    ({"ok": True, "found": False}, "was not migrated: it was garbage collected"),
    ({"ok": False, "error": "Permission denied"}, "unable to read previous alloc: Permission denied"),
    ({**DONE, "node_http_addr": ""}, 'node "nA-node" not found'),
    ({**DONE, "node_id": "nB"}, "was not migrated: its directory is gone"),
])
def test_what_cannot_be_pulled_says_why_and_starts_the_tasks(tmp_path, answer, says):
    c = RemoteClient(str(tmp_path), [answer])
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.until(lambda: c.status("a2") == "running", 10)
    assert says in _setup(c)[-1] and c.migrator.reqs == []


def test_a_failing_server_is_asked_again_and_a_stop_ends_the_wait(tmp_path):
    c = RemoteClient(str(tmp_path), [{"ok": False, "error": "No cluster leader"}, RUNNING])
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.run(3.0)
    assert len(c.asked) >= 2 and c.starts_of("a2") == []
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True, desired="stop", index=2), index=2)
    c.until(lambda: c.status("a2") == "complete", 10)
    assert c.starts_of("a2") == [] and c.migrator.reqs == []


def test_a_query_parked_on_a_server_that_dies_is_asked_again_of_the_next_at_once(tmp_path):
    # The previous allocation still runs: the first server parks the blocking query (migrate_wait_s,
    # 300 s, plus a margin).  Its process dies: the runtime says so (PeerLost) and the query goes to the
    # next server now, not when its timer runs out, some five minutes later.
    c = RemoteClient(str(tmp_path), [{**RUNNING, "delay": 1000.0}])
    other: list[GetPrevAlloc] = []
    c.sched.add_node("s2", lambda env: env.spawn(FakeEndpoint, ALLOC_ENDPOINT, [DONE], other))
    c.node.actors["allocs"].tell(ServerLink(node_id="nB", secret_id="sb", servers=("s1", "s2")))
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.run(2.0)
    assert len(c.asked) == 1 and other == [] and c.starts_of("a2") == []
    c.server.crash()
    c.until(lambda: c.status("a2") == "running", 10)
    assert len(other) == 1 and c.sched.now < 5.0


def test_without_a_server_link_the_query_waits_for_one_and_a_sticky_only_disk_is_not_pulled(tmp_path):
    c = RemoteClient(str(tmp_path), [DONE])
    c.set(_disk_alloc("a2", prev="p1-remote", sticky=True))  # sticky without migrate: nothing to pull
    c.until(lambda: c.status("a2") == "running", 10)
    assert c.asked == [] and c.migrator.reqs == [] and _setup(c) == []


def test_the_snapshot_source_checks_the_token_against_this_nodes_secret(tmp_path):
    c = RemoteClient(str(tmp_path), [DONE])
    c.set(_disk_alloc("a1"))
    c.until(lambda: c.status("a1") == "running", 5)
    ask = c.node.actors["allocs"].ask
    good = migrate_token("a1", "sb")
    assert ask(GetSnapshotSource(alloc_id="a1", token=good, check_token=True)) == (200, "", ("t",))
    assert ask(GetSnapshotSource(alloc_id="a1", token="x", check_token=True))[0] == 403
    assert ask(GetSnapshotSource(alloc_id="a1", token="", check_token=False)) == (200, "", ("t",))
    assert ask(GetSnapshotSource(alloc_id="zz", token="", check_token=False)) == (500, "allocation not found",
                                                                                 ())


# ------------------------------------------------------------ the agent's migrator over real sockets
def _fetch_req(root: Any, port: int, io_timeout_s: float = 2.0) -> SnapshotFetch:
    return SnapshotFetch(alloc_id="new1", prev_alloc_id="prev", node_addr=f"127.0.0.1:{port}", token="tok",
                         alloc_root=str(root), tasks=("t",), max_bytes=MB, max_entries=100, timeout_s=10,
                         io_timeout_s=io_timeout_s)


def _pull(req: SnapshotFetch) -> str:
    from actors.client.disk_migrate import HttpSnapshotFetcher

    got: list[str] = []
    HttpSnapshotFetcher()._run(req, got.append)  # the greenlet's body, here in the test's own thread
    return got[0]


def test_the_http_migrator_pulls_with_the_token_and_fails_fast_on_a_dead_or_silent_node(tmp_path):
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.ports import free_port

    d = _alloc_dir(tmp_path)
    os.unlink(d / "alloc" / "data" / "bad-link")
    body = b"".join(snapshot_chunks(str(d), "prev", ("t",)))
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("X-Nomad-Token", "")))
            self.send_response(200 if self.headers.get("X-Nomad-Token") == "tok" else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    root = tmp_path / "allocs"
    root.mkdir()
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert _pull(_fetch_req(root, port)) == ""
        assert seen == [("/v1/client/allocation/prev/snapshot", "tok")]
        assert (root / "new1" / "alloc" / "data" / "db.txt").read_text() == "rows"
        bad = dataclasses.replace(_fetch_req(root, port), alloc_id="new2", token="wrong")
        assert "Unexpected response code: 403" in _pull(bad)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "refused" in _pull(_fetch_req(root, free_port())).lower()  # nobody listens: a dead node
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers
    try:
        assert "timed out" in _pull(_fetch_req(root, silent.getsockname()[1], io_timeout_s=0.3))
    finally:
        silent.close()
    assert not [n for n in os.listdir(root) if n.startswith(".")]  # no staging left behind
    assert [n for n in os.listdir(root) if os.listdir(root / n)] == ["new1"]  # the failed pulls: empty


def test_a_truncated_snapshot_is_an_error_and_installs_nothing(tmp_path):
    root = tmp_path / "allocs"
    root.mkdir()
    whole = _tar([_file("alloc/data/a", b"1" * 3000), _file("alloc/data/b", b"2" * 3000)])
    req = SnapshotFetch(alloc_id="new1", prev_alloc_id="prev", node_addr="x:1", token="",
                        alloc_root=str(root), tasks=("t",), max_bytes=MB, max_entries=100,
                        timeout_s=5, io_timeout_s=5)
    error = migrate(req, lambda r: io.BytesIO(whole[:2000]))  # cut inside the first file's data
    assert error.startswith("error streaming previous alloc 'prev'")
    assert sorted(os.listdir(root)) == ["new1"] and os.listdir(root / "new1") == []


def test_a_server_answering_at_once_with_nothing_new_is_not_asked_in_a_tight_loop(tmp_path):
    c = RemoteClient(str(tmp_path), [RUNNING])  # every answer: still running, index 5
    c.set(_disk_alloc("a2", prev="p1-remote", migrate=True))
    c.run(5.0)
    assert 2 <= len(c.asked) <= 7 and c.starts_of("a2") == []  # about one a migrate_retry_s (1 s)


def test_links_are_checked_together_once_unpacked():
    from actors.client.disk_migrate import chained_link_escapes

    assert chained_link_escapes({("alloc", "data", "a"): "..", ("alloc", "data", "b"): "a/../../.."}) == \
        "alloc/data/b"
    assert chained_link_escapes({("alloc", "data", "a"): "..", ("alloc", "data", "b"): "a/data/x"}) == ""
    assert chained_link_escapes({("t", "local", "x"): "y", ("t", "local", "y"): "x"}) == "t/local/x"  # a loop
    assert chained_link_escapes({("t", "local", "in"): "../../alloc/data"}) == ""
