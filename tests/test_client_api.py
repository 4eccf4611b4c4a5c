"""The client agent's own endpoints on a real ``-dev`` agent: an allocation's files, host stats, alloc GC.

``/v1/client/fs/{ls,stat,cat,readat,stream}``, ``/v1/client/stats``,
``/v1/client/allocation/<id>/gc`` and ``/v1/client/gc``, through raw HTTP,
the unmodified python-nomad library and ``nomad alloc fs``.  A raw_exec
service job writes files (and symlinks pointing out of its allocation
directory, and a secret) and keeps appending to one; batch jobs finish, to
be streamed and collected.  The ACL needs of the routes are checked without
an agent.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import marshal
import time
import urllib.parse
from typing import Any

import pytest

from actors import acl
from tests.test_agent_process import STEP_DEADLINE_S, wait_for
from tests.test_cli_jobs import nomad as nomad_cli
from tests.test_http_jobs import PLACE_DEADLINE_S, call, dev  # noqa: F401

nomad = pytest.importorskip("nomad", reason="python-nomad is in the test extras (pip install -e .[test])")
exceptions = pytest.importorskip("nomad.api.exceptions")

pytestmark = pytest.mark.timeout(120)
CLIENT_TIMEOUT_S = 10  # python-nomad's own default is 5 s; a loaded CI machine gets more
# A followed stream must show a line the task appends within this (it appends every 0.2 s; the
# stream polls every 0.25 s): the bound is for a loaded machine.
FOLLOW_DEADLINE_S = 10.0

WRITER = r"""
set -e
printf 'hello\n' > "$NOMAD_ALLOC_DIR/data.txt"
printf '{"a": 1}' > "$NOMAD_ALLOC_DIR/data.json"
ln -s /etc/passwd "$NOMAD_ALLOC_DIR/escape"
ln -s /etc "$NOMAD_ALLOC_DIR/etcdir"
ln -s data.txt "$NOMAD_ALLOC_DIR/inside"
mkdir -p "$NOMAD_ALLOC_DIR/sub"
echo s3cret > secrets/token
touch "$NOMAD_ALLOC_DIR/ready"
i=0
while :; do i=$((i+1)); echo "tick-$i" >> "$NOMAD_ALLOC_DIR/ticks.txt"; sleep 0.2; done
"""
FINISHER = r"""printf 'line-1\nline-2\n' > "$NOMAD_ALLOC_DIR/out.txt" """


def _job(job_id: str, kind: str, script: str, count: int = 1) -> dict[str, Any]:
    return {"ID": job_id, "Type": kind, "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "Count": count, "Tasks": [{
            "Name": "writer", "Driver": "raw_exec", "Config": {"command": "/bin/sh", "args": ["-c", script]},
            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}


def _allocs(port: int, job_id: str, status: str) -> list[dict[str, Any]]:
    allocs = call(port, "GET", f"/v1/job/{job_id}/allocations").json()
    return [a for a in allocs if a["ClientStatus"] == status]


def fs(port: int, op: str, alloc_id: str, **query: Any) -> Any:
    return call(port, "GET", f"/v1/client/fs/{op}/{alloc_id}?{urllib.parse.urlencode(query)}")


def frames(raw: bytes) -> list[dict[str, Any]]:
    """Concatenated StreamFrame JSON objects, as Nomad sends them."""
    text, out, i = raw.decode(), [], 0
    dec = json.JSONDecoder()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def stream_data(raw: bytes) -> bytes:
    return b"".join(base64.b64decode(f["Data"]) for f in frames(raw) if f.get("Data"))


def client(agent: Any, monkeypatch: Any) -> Any:
    for var in ("NOMAD_ADDR", "NOMAD_REGION", "NOMAD_TOKEN", "NOMAD_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    return nomad.Nomad(host="127.0.0.1", port=agent.http_port, timeout=CLIENT_TIMEOUT_S)


@pytest.fixture(scope="module")
def running(dev):  # noqa: F811
    """A running allocation whose files are written: its ID."""
    port = dev.http_port
    assert call(port, "PUT", "/v1/jobs", {"Job": _job("fs-svc", "service", WRITER)}).status == 200
    alloc_id = wait_for(lambda: (_allocs(port, "fs-svc", "running") or [None])[0], "fs-svc running",
                        PLACE_DEADLINE_S, dev.detail)["ID"]
    wait_for(lambda: fs(port, "stat", alloc_id, path="alloc/ready").status == 200, "the task's files",
             PLACE_DEADLINE_S, dev.detail)
    yield alloc_id
    call(port, "DELETE", "/v1/job/fs-svc?purge=true")


def finished(dev, job_id: str, count: int = 1) -> list[str]:  # noqa: F811
    """IDs of *count* completed batch allocations, each having written alloc/out.txt."""
    job = _job(job_id, "batch", FINISHER, count)
    assert call(dev.http_port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    done = wait_for(lambda: (a := _allocs(dev.http_port, job_id, "complete")) and len(a) == count and a,
                    f"{job_id} complete", PLACE_DEADLINE_S, dev.detail)
    return sorted(a["ID"] for a in done)


# ---------------------------------------------------------------- ls, stat, cat, readat


def test_ls_and_stat_answer_alloc_file_infos(dev, running):  # noqa: F811
    port = dev.http_port
    root = fs(port, "ls", running, path="/")
    assert root.status == 200 and root.headers["content-type"] == "application/json"
    by_name = {f["Name"]: f for f in root.json()}
    assert {"alloc", "writer"} <= set(by_name)
    assert set(by_name["alloc"]) == {"Name", "IsDir", "Size", "FileMode", "ModTime", "ContentType"}
    assert by_name["alloc"]["IsDir"] is True and by_name["alloc"]["FileMode"].startswith("d")
    assert fs(port, "ls", running).json() == root.json()  # no path: the allocation's root, as Nomad
    alloc = {f["Name"]: f for f in fs(port, "ls", running, path="/alloc").json()}
    assert [f["Name"] for f in fs(port, "ls", running, path="alloc").json()] == sorted(alloc)
    assert {"data.txt", "logs", "escape", "inside", "sub"} <= set(alloc)
    assert alloc["data.txt"] == {**alloc["data.txt"], "IsDir": False, "Size": 6, "ContentType": ""}
    assert alloc["escape"]["FileMode"].startswith("L")  # the link itself is listed, never followed
    assert alloc["data.txt"]["FileMode"][0] == "-" and len(alloc["data.txt"]["FileMode"]) == 10
    assert alloc["data.txt"]["ModTime"][:4].isdigit() and "T" in alloc["data.txt"]["ModTime"]

    st = fs(port, "stat", running, path="alloc/data.txt").json()
    assert st["Name"] == "data.txt" and st["Size"] == 6 and st["IsDir"] is False
    assert st["ContentType"] == "text/plain; charset=utf-8"
    assert fs(port, "stat", running, path="/alloc/data.json").json()["ContentType"] == "application/json"
    assert fs(port, "stat", running, path="alloc/inside").json()["Size"] == 6  # a link inside is followed
    d = fs(port, "stat", running, path="alloc/sub").json()
    assert d["IsDir"] is True and d["Name"] == "sub"
    assert fs(port, "stat", running, path="/").json()["Name"] == running  # the directory itself


def test_cat_and_readat_answer_the_bytes(dev, running):  # noqa: F811
    port = dev.http_port
    cat = fs(port, "cat", running, path="alloc/data.txt")
    assert cat.status == 200 and cat.body == b"hello\n"
    assert cat.headers["content-type"].startswith("text/plain")
    assert fs(port, "cat", running, path="alloc/inside").body == b"hello\n"
    assert fs(port, "readat", running, path="alloc/data.txt", offset=1, limit=3).body == b"ell"
    assert fs(port, "readat", running, path="alloc/data.txt", offset=2).body == b"llo\n"  # no limit: all
    assert fs(port, "readat", running, path="alloc/data.txt", offset=2, limit=0).body == b"llo\n"
    assert fs(port, "readat", running, path="alloc/data.txt", offset=99, limit=5).body == b""
    logs = fs(port, "cat", running, path="alloc/logs/writer.stdout.0")
    assert logs.status == 200


@pytest.mark.parametrize(("op", "query", "status", "text"), [
    ("stat", {}, 400, "must provide a file name"),
    ("cat", {}, 400, "must provide a file name"),
    ("readat", {"path": "alloc/data.txt"}, 400, "error parsing offset"),
    ("readat", {"path": "alloc/data.txt", "offset": "x"}, 400, "error parsing offset"),
    ("readat", {"path": "alloc/data.txt", "offset": "0", "limit": "-1"}, 400, "limit must be >= 0"),
    ("stream", {"path": "alloc/data.txt", "origin": "middle"}, 400, "origin must be start or end"),
    ("stream", {"path": "alloc/data.txt", "follow": "maybe"}, 400, "follow"),
    ("cat", {"path": "alloc"}, 400, 'file "alloc" is a directory'),
    ("stream", {"path": "alloc/sub"}, 400, "is a directory"),
    ("readat", {"path": "alloc", "offset": "0"}, 400, "is a directory"),
    ("ls", {"path": "alloc/data.txt"}, 400, "not a directory"),
    ("cat", {"path": "alloc/nope.txt"}, 404, "no such file or directory"),
    ("stat", {"path": "nope"}, 404, "no such file or directory"),
    ("ls", {"path": "nope"}, 404, "no such file or directory"),
])
def test_bad_requests_get_a_code_and_a_one_line_reason(dev, running, op, query, status, text):  # noqa: F811
    r = fs(dev.http_port, op, running, **query)
    assert r.status == status and text in r.text and "\n" not in r.text.strip()


@pytest.mark.parametrize("op", ["ls", "stat", "cat", "readat", "stream"])
@pytest.mark.parametrize("path", ["../../etc/passwd", "..", "/../..", "alloc/../../../etc/passwd",
                                  "alloc/escape", "alloc/etcdir", "alloc/etcdir/passwd",
                                  "alloc/etcdir/./passwd"])
def test_paths_leading_out_of_the_allocation_directory_are_refused(dev, running, op, path):  # noqa: F811
    r = fs(dev.http_port, op, running, path=path, offset=0, follow="false")
    assert r.status == 400, (r.status, r.body[:200])
    assert r.text == "Path escapes the alloc directory"
    assert b"root:" not in r.body


def test_absolute_paths_are_the_allocations_own_and_secrets_are_never_read(dev, running):  # noqa: F811
    port = dev.http_port
    host_passwd = fs(port, "cat", running, path="/etc/passwd")  # <alloc>/etc/passwd: no such file
    assert host_passwd.status == 404 and b"root:" not in host_passwd.body
    assert fs(port, "ls", running, path="/etc").status == 404
    assert fs(port, "cat", running, path="a\x00b").status == 400
    # ".." is resolved by name first, as Go's filepath.Join: this is alloc/, never /etc's parent.
    assert {f["Name"] for f in fs(port, "ls", running, path="alloc/etcdir/..").json()} >= {"data.txt"}
    secret = fs(port, "cat", running, path="writer/secrets/token")
    assert secret.status == 400 and secret.text == "Reading secret file prohibited: writer/secrets/token"
    assert fs(port, "readat", running, path="/writer/secrets/token", offset=0).status == 400
    assert fs(port, "stream", running, path="writer/secrets/token", follow="false").status == 400
    assert [f["Name"] for f in fs(port, "ls", running, path="writer/secrets").json()] == ["token"]


@pytest.mark.parametrize("op", ["ls", "stat", "cat", "readat", "stream"])
def test_unknown_allocations_are_404_and_ids_never_name_other_paths(dev, op):  # noqa: F811
    port = dev.http_port
    r = fs(port, op, "nope", path="alloc/data.txt", offset=0)
    assert r.status == 404 and r.text == 'Unknown allocation "nope"'
    for alloc_id in ("..", "%2E%2E", "..%2F..%2Fetc"):
        r = call(port, "GET", f"/v1/client/fs/{op}/{alloc_id}?path=passwd&offset=0")
        assert r.status in (400, 404) and b"root:" not in r.body
    r = call(port, "GET", f"/v1/client/fs/{op}/?path=x")
    assert r.status == 400 and r.text == "must provide a valid alloc id"
    assert call(port, "GET", "/v1/client/fs/bogus/x").status == 404
    assert call(port, "PUT", f"/v1/client/fs/{op}/nope?path=x").status == 405


# ---------------------------------------------------------------- stream


def test_stream_without_follow_ends_with_what_the_file_holds(dev, running):  # noqa: F811
    port = dev.http_port
    r = fs(port, "stream", running, path="alloc/data.txt", follow="false")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    (frame,) = frames(r.body)
    assert frame == {"Offset": 6, "Data": base64.b64encode(b"hello\n").decode(), "File": "alloc/data.txt"}
    tail = frames(fs(port, "stream", running, path="alloc/data.txt", follow="false", origin="end",
                     offset=3).body)
    assert stream_data(fs(port, "stream", running, path="alloc/data.txt", follow="false",
                          origin="end", offset=3).body) == b"lo\n" and tail[-1]["Offset"] == 6
    assert stream_data(fs(port, "stream", running, path="alloc/data.txt", follow="false",
                          offset=4).body) == b"o\n"


def test_stream_follows_a_running_allocations_file_until_the_caller_hangs_up(dev, running):  # noqa: F811
    conn = http.client.HTTPConnection("127.0.0.1", dev.http_port, timeout=STEP_DEADLINE_S)
    try:
        conn.request("GET", f"/v1/client/fs/stream/{running}?path=alloc/ticks.txt&origin=end&offset=0")
        r = conn.getresponse()
        assert r.status == 200
        got, deadline = b"", time.monotonic() + FOLLOW_DEADLINE_S
        while stream_data(got).count(b"tick-") < 3 and time.monotonic() < deadline:
            got += r.read1(65536)  # frames appear as the task appends (it started at the end)
        lines = stream_data(got).decode().split()
        assert len(lines) >= 3, got
        numbers = [int(x.split("-")[1]) for x in lines if x.startswith("tick-")]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # in order, none lost
    finally:
        conn.close()  # hanging up ends it; the agent goes on serving
    assert fs(dev.http_port, "cat", running, path="alloc/data.txt").body == b"hello\n"


def test_stream_of_a_finished_allocation_ends_once_everything_is_sent(dev):  # noqa: F811
    (alloc_id,) = finished(dev, "fs-done")
    started = time.monotonic()
    r = fs(dev.http_port, "stream", alloc_id, path="alloc/out.txt")  # follow (Nomad's default)
    assert r.status == 200 and stream_data(r.body) == b"line-1\nline-2\n"
    assert time.monotonic() - started < STEP_DEADLINE_S
    call(dev.http_port, "DELETE", "/v1/job/fs-done?purge=true")


# ---------------------------------------------------------------- host stats


def test_client_stats_answer_nomads_host_stats(dev):  # noqa: F811
    r = call(dev.http_port, "GET", "/v1/client/stats")
    assert r.status == 200
    s = r.json()
    assert {"Memory", "CPU", "DiskStats", "AllocDirStats", "DeviceStats", "Uptime", "Timestamp",
            "CPUTicksConsumed"} <= set(s)
    assert set(s["Memory"]) == {"Total", "Available", "Used", "Free"} and s["Memory"]["Total"] > 0
    assert s["CPU"] and all(set(c) == {"CPU", "User", "System", "Idle", "TotalPercent", "TotalTicks"}
                            for c in s["CPU"])
    assert s["CPUTicksConsumed"] == pytest.approx(sum(c["TotalTicks"] for c in s["CPU"]))
    assert s["CPU"][0]["CPU"] == "cpu0" and all(0.0 <= c["Idle"] <= 100.0 for c in s["CPU"])
    assert s["DiskStats"] and {"Device", "Mountpoint", "Size", "Used", "Available", "UsedPercent",
                               "InodesUsedPercent"} == set(s["DiskStats"][0])
    assert s["AllocDirStats"]["Size"] > 0 and 0.0 <= s["AllocDirStats"]["UsedPercent"] <= 100.0
    assert s["Uptime"] > 0 and abs(s["Timestamp"] / 1e9 - time.time()) < 60
    assert s["CPUTicksConsumed"] >= 0.0
    node = call(dev.http_port, "GET", "/v1/agent/self").json()["stats"]["client"]["node_id"]
    assert call(dev.http_port, "GET", f"/v1/client/stats?node_id={node}").status == 200
    assert call(dev.http_port, "GET", "/v1/client/stats?node_id=other").status == 400
    assert call(dev.http_port, "PUT", "/v1/client/stats").status == 405


def test_metrics_publish_the_nodes_and_the_running_tasks_figures(dev, running):  # noqa: F811
    """telemetry.publish_node_metrics and publish_allocation_metrics (the dev fixture sets both)."""
    port = dev.http_port
    node = call(port, "GET", "/v1/agent/self").json()["stats"]["client"]["node_id"]

    def gauges() -> dict[str, tuple[float, dict[str, str]]] | None:
        # Prometheus (on in dev mode) shows each gauge's latest value at once.
        text = call(port, "GET", "/v1/metrics?format=prometheus").body.decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("nomad_client_") and "{" in line:
                name, rest = line.split("{", 1)
                labels, value = rest.rsplit("} ", 1)
                pairs = dict(p.split("=", 1) for p in labels.split(",") if "=" in p)
                pairs = {k: v.strip('"') for k, v in pairs.items()}
                key = name + "".join(f";{pairs[k]}" for k in ("cpu", "disk", "alloc_id") if k in pairs)
                out[key] = (float(value), pairs)
        want = ("nomad_client_host_memory_total", "nomad_client_uptime", "nomad_client_allocated_cpu",
                "nomad_client_unallocated_memory", "nomad_client_allocations_running",
                f"nomad_client_allocs_memory_rss;{running}")
        return out if all(k in out for k in want) else None

    g = wait_for(gauges, "client gauges in /v1/metrics", 15.0, dev.detail)
    total, labels = g["nomad_client_host_memory_total"]
    assert total > 0 and labels["node_id"] == node and labels["node_status"] == "ready"
    assert any(k.startswith("nomad_client_host_cpu_idle;cpu0") for k in g)
    assert any(k.startswith("nomad_client_host_disk_size;") for k in g)
    assert g["nomad_client_allocations_running"][0] >= 1 and g["nomad_client_allocated_cpu"][0] >= 50
    rss, labels = g[f"nomad_client_allocs_memory_rss;{running}"]
    assert rss > 0 and labels["job"] == "fs-svc" and labels["task_group"] and labels["task"]


def test_pprof_goroutine_shows_every_greenlets_stack_and_the_go_profiles_say_why_not(dev):  # noqa: F811
    """The dev fixture sets enable_debug (no ACLs): /v1/agent/pprof/goroutine answers."""
    r = call(dev.http_port, "GET", "/v1/agent/pprof/goroutine?debug=2")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.body.decode()
    assert "Greenlet" in text or "greenlet" in text
    assert "http_pprof.py" in text  # the request's own greenlet is among them
    heap = call(dev.http_port, "GET", "/v1/agent/pprof/heap")
    assert heap.status == 501 and b"'goroutine'" in heap.body and b"'profile'" in heap.body
    assert call(dev.http_port, "GET", "/v1/agent/pprof/bogus").status == 404
    assert call(dev.http_port, "GET", "/v1/agent/pprof/goroutine?node_id=other").status == 400
    assert call(dev.http_port, "POST", "/v1/agent/pprof/goroutine").status == 405


def test_pprof_profile_is_a_cpu_profile_of_the_agent_one_at_a_time(dev):  # noqa: F811
    """/v1/agent/pprof/profile: cProfile over ?seconds, pstats's binary file or (debug=1) its table."""
    port = dev.http_port
    binary = call(port, "GET", "/v1/agent/pprof/profile?seconds=1")
    assert binary.status == 200 and binary.headers["content-type"] == "application/octet-stream"
    stats = marshal.loads(binary.body)
    # {(file, line, function): (calls, primitive calls, own time, cumulative time, callers)}
    assert stats and all(len(k) == 3 and len(v) == 5 for k, v in stats.items())
    assert any(k[2] == "sleep" for k in stats)  # the profile's own wait, where the idle time shows
    assert any("/actors/" in k[0] for k in stats)  # and the actors' work meanwhile (Raft's ticks...)
    text = call(port, "GET", "/v1/agent/pprof/profile?seconds=1&debug=1&sort=cumulative&lines=5")
    assert text.status == 200 and "function calls" in text.text and "cumulative" in text.text
    # a second profile while one runs is refused, as Go's "cpu profiling already in use"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: call(port, "GET", "/v1/agent/pprof/profile?seconds=3"), range(2)))
    assert sorted(r.status for r in both) == [200, 500], [(r.status, r.text[:80]) for r in both]
    assert "already in use" in next(r.text for r in both if r.status == 500)
    for bad in ("seconds=0", "seconds=x", "seconds=301", "debug=3", "sort=nope", "lines=0"):
        r = call(port, "GET", f"/v1/agent/pprof/profile?{bad}")
        assert r.status == 400, (bad, r.status, r.text)
    assert call(port, "GET", "/v1/agent/pprof/profile?seconds=1").status == 200  # the slot was freed


# ---------------------------------------------------------------- GC


def test_alloc_gc_collects_a_finished_allocation_and_refuses_a_running_one(dev, running):  # noqa: F811
    port = dev.http_port
    (done,) = finished(dev, "gc-one")
    refused = call(port, "GET", f"/v1/client/allocation/{running}/gc")
    assert refused.status == 500
    assert refused.text == "No such allocation on client, or allocation not eligible for GC"
    assert fs(port, "cat", running, path="alloc/data.txt").body == b"hello\n"  # untouched
    assert _allocs(port, "fs-svc", "running")[0]["ID"] == running
    unknown = call(port, "PUT", "/v1/client/allocation/nope/gc")
    assert unknown.status == 404 and unknown.text == 'Unknown allocation "nope"'

    assert fs(port, "cat", done, path="alloc/out.txt").body == b"line-1\nline-2\n"
    r = call(port, "POST", f"/v1/client/allocation/{done}/gc")
    assert r.status == 200 and r.body == b""
    gone = fs(port, "ls", done, path="/")
    assert gone.status == 404 and gone.text == f'Unknown allocation "{done}"'
    assert call(port, "GET", f"/v1/client/allocation/{done}/gc").status == 500  # already collected
    assert call(port, "DELETE", f"/v1/client/allocation/{done}/gc").status == 405
    call(port, "DELETE", "/v1/job/gc-one?purge=true")


def test_client_gc_collects_every_finished_allocation_only(dev, running):  # noqa: F811
    port = dev.http_port
    done = finished(dev, "gc-all", count=2)
    assert call(port, "PUT", "/v1/client/gc").status == 200
    for alloc_id in done:
        assert fs(port, "stat", alloc_id, path="alloc/out.txt").status == 404
    assert fs(port, "cat", running, path="alloc/data.txt").body == b"hello\n"
    assert call(port, "GET", "/v1/client/gc").status == 200  # nothing left: still fine
    assert call(port, "DELETE", "/v1/client/gc").status == 405
    call(port, "DELETE", "/v1/job/gc-all?purge=true")


# ---------------------------------------------------------------- python-nomad, unmodified


def test_python_nomad_client_calls_work_unmodified(dev, running, monkeypatch):  # noqa: F811
    n = client(dev, monkeypatch)
    names = {f["Name"] for f in n.client.ls.list_files(running)}
    assert {"alloc", "writer"} <= names
    assert "data.txt" in {f["Name"] for f in n.client.ls.list_files(running, path="/alloc")}
    assert n.client.stat.stat_file(running, path="/alloc/data.txt")["Size"] == 6
    assert n.client.cat.read_file(running, path="/alloc/data.txt") == "hello\n"
    assert n.client.read_at.read_file_offset(running, 1, 3, path="/alloc/data.txt") == "ell"
    stats = n.client.stats.read_stats()
    assert stats["Memory"]["Total"] > 0 and stats["CPU"]
    with pytest.raises(exceptions.BadRequestNomadException):
        n.client.cat.read_file(running, path="../../etc/passwd")
    with pytest.raises(exceptions.BadRequestNomadException):
        n.client.cat.read_file(running, path="/alloc/escape")
    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.client.ls.list_files("nope")
    with pytest.raises(exceptions.BaseNomadException):
        n.client.gc_allocation.garbage_collect(running)  # running: not collected

    first, second = finished(dev, "py-gc", count=2)
    framed = n.client.stream_file.stream(first, 0, "start", path="/alloc/out.txt")  # ends: finished
    assert stream_data(framed.encode()) == b"line-1\nline-2\n"
    tail = n.client.stream_file.stream(first, 7, "end", path="/alloc/out.txt")
    assert stream_data(tail.encode()) == b"line-2\n"
    n.client.gc_allocation.garbage_collect(first)
    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.client.stat.stat_file(first, path="/alloc/out.txt")
    assert n.client.cat.read_file(second, path="/alloc/out.txt") == "line-1\nline-2\n"
    n.client.gc_all_allocations.garbage_collect()
    with pytest.raises(exceptions.URLNotFoundNomadException):
        n.client.cat.read_file(second, path="/alloc/out.txt")
    assert n.client.cat.read_file(running, path="/alloc/data.txt") == "hello\n"
    call(dev.http_port, "DELETE", "/v1/job/py-gc?purge=true")


# ---------------------------------------------------------------- nomad alloc fs


def test_nomad_alloc_fs_lists_directories_and_prints_files(dev, running):  # noqa: F811
    root = nomad_cli(dev, "alloc", "fs", running[:8])
    assert root.returncode == 0, root.stderr
    lines = root.stdout.splitlines()
    assert lines[0].split() == ["Mode", "Size", "Modified", "Time", "Name"]
    assert any(line.endswith(" alloc/") and line.startswith("d") for line in lines[1:])
    listing = nomad_cli(dev, "alloc", "fs", running, "alloc").stdout.splitlines()
    row = next(line for line in listing if line.endswith(" data.txt"))
    assert " 6 B " in row and row.startswith("-rw")
    assert " 6 " in next(line for line in nomad_cli(dev, "alloc", "fs", "-H", running, "/alloc").stdout
                         .splitlines() if line.endswith(" data.txt"))
    cat = nomad_cli(dev, "alloc", "fs", running, "alloc/data.txt")
    assert cat.returncode == 0 and cat.stdout == "hello\n"
    stat = nomad_cli(dev, "alloc", "fs", "-stat", running, "alloc/data.txt").stdout.splitlines()
    assert len(stat) == 2 and stat[1].endswith(" data.txt")
    # Nomad's -stat columns: Mode|Size|Modified Time|Content Type|Name
    assert stat[0].split() == ["Mode", "Size", "Modified", "Time", "Content", "Type", "Name"]
    assert " text/plain; charset=utf-8 " in stat[1]
    bad = nomad_cli(dev, "alloc", "fs", running, "../../etc/passwd")
    assert bad.returncode == 1 and "Path escapes the alloc directory" in bad.stderr
    assert "root:" not in bad.stdout
    assert nomad_cli(dev, "alloc", "fs").returncode == 1


def test_nomad_alloc_fs_tails_and_follows_a_file(dev):  # noqa: F811
    (done,) = finished(dev, "fs-tail")
    path = "alloc/out.txt"  # "line-1\nline-2\n", the allocation finished
    last = nomad_cli(dev, "alloc", "fs", "-tail", "-n", "1", done, path)
    assert last.returncode == 0 and last.stdout == "line-2\n", last.stderr
    assert nomad_cli(dev, "alloc", "fs", "-tail", done, path).stdout == "line-1\nline-2\n"  # -n 10
    assert nomad_cli(dev, "alloc", "fs", "-tail", "-c", "3", done, path).stdout == "-2\n"
    assert nomad_cli(dev, "alloc", "fs", "-tail", "-c", "99", done, path).stdout == "line-1\nline-2\n"
    # -f: everything, then what is appended; a finished allocation's stream ends.
    followed = nomad_cli(dev, "alloc", "fs", "-f", done, path)
    assert followed.returncode == 0 and followed.stdout == "line-1\nline-2\n", followed.stderr
    tail_f = nomad_cli(dev, "alloc", "fs", "-f", "-tail", "-n", "1", done, path)
    assert tail_f.returncode == 0 and tail_f.stdout == "line-2\n", tail_f.stderr
    for bad, why in ((["-n", "2", done, path], "-n and -c need -tail"),
                     (["-tail", "-n", "x", done, path], 'invalid value "x" for flag -n'),
                     (["-tail", "-c", "-1", done, path], "-c must be zero or more"),
                     (["-tail", "-n", "1", "-c", "2", done, path], "Both -n and -c are not allowed"),
                     (["-f", done, "alloc"], "is a directory"),
                     (["-stat", "-tail", done, path], "-stat cannot be combined")):
        r = nomad_cli(dev, "alloc", "fs", *bad)
        assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)
    call(dev.http_port, "DELETE", "/v1/job/fs-tail?purge=true")


# ---------------------------------------------------------------- ACL needs (no agent)


@pytest.mark.parametrize(("method", "path", "needs"), [
    ("GET", "/v1/client/fs/ls/a1", [("namespace", "read-fs")]),
    ("GET", "/v1/client/fs/stat/a1", [("namespace", "read-fs")]),
    ("GET", "/v1/client/fs/cat/a1", [("namespace", "read-fs")]),
    ("GET", "/v1/client/fs/readat/a1", [("namespace", "read-fs")]),
    ("GET", "/v1/client/fs/stream/a1", [("namespace", "read-fs")]),
    ("GET", "/v1/client/fs/logs/a1", [("namespace", "read-logs|read-fs")]),
    ("GET", "/v1/client/stats", [("node", "read")]),
    ("GET", "/v1/client/gc", [("node", "write")]),
    ("PUT", "/v1/client/gc", [("node", "write")]),
    ("GET", "/v1/client/allocation/a1/gc", [("namespace", "submit-job|gc-allocation")]),
    ("PUT", "/v1/client/allocation/a1/gc", [("namespace", "submit-job|gc-allocation")]),
    ("GET", "/v1/client/allocation/a1/stats", [("namespace", "read-job")]),
])
def test_client_routes_need_what_nomad_checks(method, path, needs):
    assert [(n.area, n.what) for n in acl.required(method, path)] == needs
