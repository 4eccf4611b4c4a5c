"""The artifact fetcher (runtime.artifacts) against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from actors.client.artifacts import ArtifactFetch, FetchLimits
from runtime.artifacts import ArtifactError, HttpArtifactFetcher, fetch_artifact
from tests.test_http_jobs import dev  # noqa: F401  (the module's -dev agent)

pytestmark = pytest.mark.timeout(30)

LIMITS = FetchLimits(max_bytes=1 << 20, timeout_s=5.0, max_unpacked_bytes=1 << 20, max_unpacked_files=100)


class Server:
    """Serves ``files`` (path -> body, or (status, headers, body)); records each request's headers."""

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}
        self.seen: list[dict[str, str]] = []
        self.wsgi = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)
        self.wsgi.start()
        self.url = f"http://127.0.0.1:{self.wsgi.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "QUERY_STRING"})
        item = self.files.get(environ["PATH_INFO"], (404, [], b"not here"))
        status, headers, body = item if isinstance(item, tuple) else (200, [], item)
        start_response(f"{status} X", [("Content-Length", str(len(body))), *headers])
        return [body]


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.wsgi.stop()


def fetch(server: Server, tmp_path: Any, path: str, *, dest: str = "local", mode: str = "any",
          options: tuple[tuple[str, str], ...] = (), headers: tuple[tuple[str, str], ...] = (),
          limits: FetchLimits = LIMITS) -> str:
    root = str(tmp_path / "alloc")
    full = os.path.join(root, "task", dest)
    fetch_artifact(ArtifactFetch(source=server.url + path, options=options, headers=headers, mode=mode,
                                 dest=full, root=root), limits)
    return full


def tgz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_file_is_fetched_with_its_headers_and_its_checksum_verified(server: Server, tmp_path: Any) -> None:
    server.files["/dl/tool.sh"] = b"#!/bin/sh\necho hi\n"
    digest = hashlib.sha256(b"#!/bin/sh\necho hi\n").hexdigest()
    dest = fetch(server, tmp_path, "/dl/tool.sh", options=(("checksum", f"sha256:{digest}"), ("v", "2")),
                 headers=(("X-Token", "s3cret"),))
    with open(os.path.join(dest, "tool.sh"), "rb") as f:
        assert f.read() == b"#!/bin/sh\necho hi\n"
    assert server.seen[-1]["HTTP_X_TOKEN"] == "s3cret" and server.seen[-1]["QUERY_STRING"] == "v=2"
    with pytest.raises(ArtifactError, match=f"checksums did not match: expected md5:{'0' * 32}, got md5:"):
        fetch(server, tmp_path, "/dl/tool.sh", dest="other", options=(("checksum", "md5:" + "0" * 32),))
    assert not os.path.exists(tmp_path / "alloc" / "task" / "other" / "tool.sh")


def test_redirects_are_followed_and_any_answer_but_200_fails_with_its_status(server: Server,
                                                                               tmp_path: Any) -> None:
    server.files["/old"] = (302, [("Location", "/new/data.txt")], b"")
    server.files["/new/data.txt"] = b"moved"
    dest = fetch(server, tmp_path, "/old")
    with open(os.path.join(dest, "old"), "rb") as f:  # named after the URL asked for, as go-getter does
        assert f.read() == b"moved"
    with pytest.raises(ArtifactError, match=r"^bad response code: 404$"):
        fetch(server, tmp_path, "/missing.tgz")


def test_a_tar_gz_is_unpacked_into_the_destination_and_file_mode_keeps_it_as_it_is(server: Server,
                                                                                   tmp_path: Any) -> None:
    server.files["/app.tar.gz"] = tgz({"bin/app": b"binary", "README": b"read me"})
    dest = fetch(server, tmp_path, "/app.tar.gz", dest="local/app")
    with open(os.path.join(dest, "bin", "app"), "rb") as f:
        assert f.read() == b"binary"
    assert os.access(os.path.join(dest, "bin", "app"), os.X_OK)
    kept = fetch(server, tmp_path, "/app.tar.gz", dest="local/copy.tgz", mode="file")
    with open(kept, "rb") as f:
        assert f.read() == server.files["/app.tar.gz"]
    server.files["/notes.txt.gz"] = gzip.compress(b"notes")
    dest = fetch(server, tmp_path, "/notes.txt.gz", dest="local/n")
    with open(os.path.join(dest, "notes.txt"), "rb") as f:
        assert f.read() == b"notes"
    server.files["/plain.bin"] = b"x"
    with pytest.raises(ArtifactError, match='mode "dir" needs an archive'):
        fetch(server, tmp_path, "/plain.bin", mode="dir")


@pytest.mark.parametrize("path,body", [
    ("/evil.zip", zipped({"ok.txt": b"fine", "../../escaped.txt": b"pwned"})),
    ("/evil.tgz", tgz({"../../escaped.txt": b"pwned"})),
    ("/link.tgz", tgz({}, links={"etc": "/etc"})),
])
def test_archive_members_leaving_the_destination_are_refused(server: Server, tmp_path: Any, path: str,
                                                             body: bytes) -> None:
    server.files[path] = body
    with pytest.raises(ArtifactError, match=r"escapes the destination|archive member refused"):
        fetch(server, tmp_path, path)
    assert not (tmp_path / "alloc" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_zip_is_unpacked_and_what_it_may_take_is_bounded(server: Server, tmp_path: Any) -> None:
    server.files["/site.zip"] = zipped({"index.html": b"<p>", "css/a.css": b"p{}"})
    dest = fetch(server, tmp_path, "/site.zip", dest="local/www")
    assert sorted(os.listdir(dest)) == ["css", "index.html"]
    server.files["/bomb.zip"] = zipped({"zeros": b"\0" * 200_000})
    small = FetchLimits(max_bytes=1 << 20, timeout_s=5.0, max_unpacked_bytes=100_000, max_unpacked_files=100)
    with pytest.raises(ArtifactError, match="artifact_max_unpacked_bytes"):
        fetch(server, tmp_path, "/bomb.zip", dest="local/b", limits=small)
    server.files["/big.bin"] = b"x" * 5000
    tiny = FetchLimits(max_bytes=4096, timeout_s=5.0, max_unpacked_bytes=1 << 20, max_unpacked_files=100)
    with pytest.raises(ArtifactError, match=r"larger than this client's artifact_max_bytes \(4096 bytes\)"):
        fetch(server, tmp_path, "/big.bin", limits=tiny)


def test_a_destination_through_a_link_out_of_the_allocation_is_refused(server: Server, tmp_path: Any) -> None:
    server.files["/f.txt"] = b"data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "alloc" / "task").mkdir(parents=True)
    os.symlink(outside, tmp_path / "alloc" / "task" / "local")  # left there by the task
    with pytest.raises(ArtifactError, match="destination escapes allocation directory"):
        fetch(server, tmp_path, "/f.txt", dest="local/sub")
    assert os.listdir(outside) == []


def test_the_fetcher_fetches_in_order_and_tells_how_many_and_why_it_stopped(server: Server,
                                                                            tmp_path: Any) -> None:
    server.files["/a.txt"] = b"a"
    root = str(tmp_path / "alloc")

    def art(path: str) -> ArtifactFetch:
        return ArtifactFetch(source=server.url + path, options=(), headers=(), mode="any",
                             dest=os.path.join(root, "t", "local"), root=root)

    got: list[tuple[int, str]] = []
    HttpArtifactFetcher().fetch((art("/a.txt"), art("/gone.txt"), art("/a.txt")), LIMITS,
                                lambda n, err: got.append((n, err)))
    with gevent.Timeout(10):
        while not got:
            gevent.sleep(0.01)
    assert got == [(1, f'failed to download artifact "{server.url}/gone.txt": bad response code: 404')]
    assert os.path.exists(os.path.join(root, "t", "local", "a.txt"))


# ------------------------------------------------------------ a real -dev agent
def test_a_raw_exec_task_runs_on_what_its_artifact_unpacked_and_a_missing_one_fails_it(
        dev: Any, server: Server) -> None:  # noqa: F811
    from tests.test_agent_process import wait_for
    from tests.test_http_jobs import PLACE_DEADLINE_S, call

    body = tgz({"hello.txt": b"hello from the artifact\n"})
    server.files["/pkg/fetched.tgz"] = body  # the job "unfetched" finds nothing at its URL

    def job(job_id: str, source: str) -> dict[str, Any]:
        return {"ID": job_id, "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{
            "Name": "g", "RestartPolicy": {"Attempts": 0, "Mode": "fail"}, "Tasks": [{
                "Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/cat", "args": ["local/app/hello.txt"]},
                "Artifacts": [{"GetterSource": source, "RelativeDest": "local/app",
                               "GetterOptions": {"checksum": "sha256:" + hashlib.sha256(body).hexdigest()}}],
                "Resources": {"CPU": 20, "MemoryMB": 32}}]}]}

    def ended(job_id: str) -> Any:
        allocs = call(dev.http_port, "GET", f"/v1/job/{job_id}/allocations").json()
        return next((a for a in allocs if a["ClientStatus"] in ("complete", "failed")), None)

    for job_id in ("fetched", "unfetched"):
        r = call(dev.http_port, "PUT", "/v1/jobs",
                 {"Job": job(job_id, server.url + "/pkg/${NOMAD_JOB_ID}.tgz")})
        assert r.status == 200, r.text
    ok = wait_for(lambda: ended("fetched"), "the fetched job's task ended", PLACE_DEADLINE_S)
    assert ok["ClientStatus"] == "complete", ok
    out = call(dev.http_port, "GET", f"/v1/client/fs/cat/{ok['ID']}?path=alloc/logs/t.stdout.0")
    assert out.text == "hello from the artifact\n"
    assert [e["Type"] for e in ok["TaskStates"]["t"]["Events"]][:4] == \
        ["Received", "Task Setup", "Downloading Artifacts", "Started"]
    bad = wait_for(lambda: ended("unfetched"), "the unfetched job's task ended", PLACE_DEADLINE_S)
    events = bad["TaskStates"]["t"]["Events"]
    assert bad["ClientStatus"] == "failed" and "Started" not in [e["Type"] for e in events]
    failed = next(e for e in events if e["Type"] == "Failed Artifact Download")
    assert failed["Message"] == \
        f'failed to download artifact "{server.url}/pkg/unfetched.tgz": bad response code: 404'
