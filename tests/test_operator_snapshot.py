"""``nomad operator snapshot save | inspect | restore`` and ``/v1/operator/snapshot``.

Three levels: the archive format and the state store's restore entry
(pure, no runtime); a 3-server simulated cluster that saves, changes its
state, restores it through Raft and loses its leader; and a real ``-dev``
agent with ACLs on, driven over HTTP and through the CLI.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from typing import Any

import msgpack
import pytest

from actors.http_snapshot import restore_commands
from actors.raft.peer import SnapshotRead, Watch
from actors.server import HEARTBEATS, RAFT
from actors.server.alloc_endpoint import node_alloc_index
from actors.state import snapshot_archive as archive
from actors.state.store import TABLES, StateStore, check_snapshot, command
from sim.client_cluster import ClientCluster, ClusterConfig
from tests.test_acl_process import agent, call, client_token, management  # noqa: F401,F811 (fixtures)
from tests.test_agent_process import ROOT, STEP_DEADLINE_S, AgentProc, wait_for

pytestmark = pytest.mark.timeout(120)

NOMAD = os.path.join(ROOT, "bin", "nomad")
CREATED_MS = 1_700_000_000_123


def _store(n: int = 3) -> StateStore:
    s = StateStore()
    for i in range(1, n + 1):
        s.apply(i, command("kv_put", key=f"k{i}", value=i))
    s.apply(n + 1, command("upsert", table="allocs", record={"ID": "a1", "NodeID": "n1", "JobID": "j"}))
    return s


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


# ---------------------------------------------------------------- the archive


def test_archive_round_trip_keeps_the_state_and_its_metadata():
    s = _store()
    data = archive.encode(s.snapshot(), index=4, term=2, created_ms=CREATED_MS, voters=("s1", "s2"))
    snap = archive.decode(data)
    assert (snap.index, snap.term, snap.id) == (4, 2, f"2-4-{CREATED_MS}")
    assert snap.meta["Version"] == 1 and snap.meta["Size"] == len(snap.state)
    assert [s["ID"] for s in snap.meta["Configuration"]["Servers"]] == ["s1", "s2"]
    assert sorted(_members(data)) == ["SHA256SUMS", "meta.json", "state.bin"]  # Nomad's three members
    back = StateStore()
    back.restore(snap.state, snap.index)
    assert back.digest() == s.digest()
    assert archive.table_stats(snap.state)[0][:2] == ("allocs", 1)


def test_a_redacted_archive_keeps_everything_but_the_root_keys_private_material():
    """Nomad's operator snapshot save -redact: the keyring's cleartext key material removed, the
    snapshot otherwise as taken (index, term, time, members, every other record)."""
    s = _store()
    s.tables["root_keys"]["k1"] = {"KeyID": "k1", "Algorithm": "eddsa", "State": "active", "CreateTime": 5,
                                   "Seed": "c2VjcmV0", "RSAKey": "cnNh", "CreateIndex": 2, "ModifyIndex": 2}
    data = archive.encode(s.snapshot(), index=4, term=2, created_ms=CREATED_MS, voters=("s1", "id2@s2"),
                          learners=("s3",))
    red = archive.decode(archive.redact(data))
    before = archive.decode(data)
    assert (red.index, red.term, red.id, red.meta["Configuration"]) == \
        (before.index, before.term, before.id, before.meta["Configuration"])
    key = msgpack.unpackb(red.state, raw=False)["tables"]["root_keys"]["k1"]
    assert (key["Seed"], key["RSAKey"], key["KeyID"], key["State"]) == ("", "", "k1", "active")
    back = StateStore()
    back.restore(red.state, red.index)
    assert back.tables["kv"] == s.tables["kv"] and back.tables["allocs"] == s.tables["allocs"]


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -30, -1])
def test_a_truncated_archive_is_refused(cut):
    data = archive.encode(_store().snapshot(), index=4, term=2, created_ms=CREATED_MS)
    with pytest.raises(archive.ArchiveError, match=r"truncated|empty"):
        archive.decode(data[:cut])


def test_a_flipped_byte_is_refused():
    data = bytearray(archive.encode(_store().snapshot(), index=4, term=2, created_ms=CREATED_MS))
    data[len(data) // 2] ^= 0x40
    with pytest.raises(archive.ArchiveError):
        archive.decode(bytes(data))


def test_a_state_that_does_not_match_its_checksum_is_refused():
    m = _members(archive.encode(_store().snapshot(), index=4, term=2, created_ms=CREATED_MS))
    tampered = m["state.bin"][:-1] + bytes([m["state.bin"][-1] ^ 1])
    bad = _tar([("meta.json", m["meta.json"]), ("state.bin", tampered), ("SHA256SUMS", m["SHA256SUMS"])])
    with pytest.raises(archive.ArchiveError, match=r"checksum mismatch for 'state\.bin'"):
        archive.decode(bad)


@pytest.mark.parametrize("change,error", [
    (lambda m: {k: v for k, v in m.items() if k != "SHA256SUMS"}, "missing 'SHA256SUMS'"),
    (lambda m: {**m, "extra.txt": b"x"}, "unexpected file 'extra.txt'"),
    (lambda m: {**m, "SHA256SUMS": b"nonsense\n"}, "malformed line"),
    (lambda m: {**m, "SHA256SUMS": m["SHA256SUMS"].split(b"\n")[0] + b"\n"},
     r"missing a hash for 'state\.bin'"),
])
def test_an_archive_missing_or_adding_members_is_refused(change, error):
    m = change(_members(archive.encode(_store().snapshot(), index=4, term=2, created_ms=CREATED_MS)))
    with pytest.raises(archive.ArchiveError, match=error):
        archive.decode(_tar(list(m.items())))


def test_metadata_that_disagrees_with_the_state_is_refused():
    state = _store().snapshot()
    meta = json.dumps({"Version": 1, "ID": "1-1-1", "Index": 1, "Term": 1, "Size": len(state) + 1}).encode()
    sums = f"{hashlib.sha256(meta).hexdigest()}  meta.json\n{hashlib.sha256(state).hexdigest()}  state.bin\n"
    bad = _tar([("meta.json", meta), ("state.bin", state), ("SHA256SUMS", sums.encode())])
    with pytest.raises(archive.ArchiveError, match="metadata says"):
        archive.decode(bad)


@pytest.mark.parametrize("size", [200_000, 3 * 1024 * 1024])
def test_an_archive_inflating_past_the_limit_is_refused(size):
    data = archive.encode(b"\0" * size, index=1, term=1, created_ms=CREATED_MS)
    assert len(data) < size // 100
    with pytest.raises(archive.ArchiveError, match="larger than"):
        archive.decode(data, max_state_bytes=50_000)


# ---------------------------------------------------------------- the restore entry in the state store


def _restore(store: StateStore, state: bytes, first_index: int, chunk_bytes: int = 64) -> list[Any]:
    return [store.apply(first_index + i, c)
            for i, c in enumerate(restore_commands(state, "r1", chunk_bytes=chunk_bytes))]


def test_a_restore_in_chunks_replaces_the_state_and_lifts_every_table_index():
    saved = _store()
    state = saved.snapshot()
    live = _store(6)
    live.apply(20, command("delete", table="allocs", ids=["a1"]))
    live.apply(21, command("upsert", table="allocs", record={"ID": "a2", "NodeID": "n9", "JobID": "j"}))
    before = dict(live.table_index)
    results = _restore(live, state, 30)
    assert len(results) > 3 and all(r["ok"] for r in results)
    assert results[-1]["restored"] and not any(r.get("restored") for r in results[:-1])
    last = 30 + len(results) - 1
    assert live.digest() == saved.digest()
    assert live.table_index == {t: last for t in TABLES}
    assert all(live.table_index[t] >= before[t] for t in TABLES)
    # A client's allocation watch wakes, though its restored record is older.
    assert node_alloc_index(live, "n1") == last and node_alloc_index(live, "n9") == 0
    assert live.restore_staging is None and live.restore_index == last


def test_a_chunk_out_of_order_is_refused_and_changes_nothing():
    live = _store(6)
    cmds = restore_commands(_store().snapshot(), "r1", chunk_bytes=64)
    digest = live.digest()
    assert live.apply(30, cmds[0])["ok"]
    got = live.apply(31, cmds[2])
    assert got["ok"] is False and "out of order" in got["error"]
    other = restore_commands(_store(2).snapshot(), "r2", chunk_bytes=64)
    assert live.apply(32, other[0])["ok"]  # a newer restore takes over; the old one's chunks are refused
    assert live.apply(33, cmds[1])["ok"] is False
    assert live.digest() == digest


def test_an_abandoned_restore_is_dropped_and_changes_nothing():
    live = _store(6)
    digest = live.digest()
    cmds = restore_commands(_store().snapshot(), "r1", chunk_bytes=64)
    live.apply(30, cmds[0])
    assert live.apply(31, command("snapshot_restore_abort", id="other"))["dropped"] is False
    assert live.apply(32, command("snapshot_restore_abort", id="r1"))["dropped"] is True
    assert live.restore_staging is None and live.apply(33, cmds[1])["ok"] is False
    assert live.digest() == digest


def test_a_state_that_is_not_a_snapshot_is_refused_and_changes_nothing():
    live = _store(6)
    digest, index = live.digest(), dict(live.table_index)
    bad = msgpack.packb({"v": 1, "tables": {"allocs": {"a1": "not a record"}}, "index": {}})
    (got,) = _restore(live, bad, 30, chunk_bytes=1 << 20)
    assert got["ok"] is False and "cannot be restored" in got["error"]
    assert live.digest() == digest and live.table_index == index
    with pytest.raises(ValueError, match="does not know: secrets"):
        check_snapshot(msgpack.packb({"v": 1, "tables": {"secrets": {}}, "index": {}}))


def test_a_restore_half_staged_survives_a_raft_snapshot():
    """A server that installs a Raft snapshot between two chunks still has the first ones."""
    saved = _store()
    live = _store(6)
    cmds = restore_commands(saved.snapshot(), "r1", chunk_bytes=64)
    for i, c in enumerate(cmds[:2]):
        live.apply(30 + i, c)
    moved = StateStore()
    moved.restore(live.snapshot(), 31)
    for i, c in enumerate(cmds[2:]):
        assert moved.apply(32 + i, c)["ok"]
    assert moved.digest() == saved.digest()


# ---------------------------------------------------------------- a simulated 3-server cluster


class Got:
    """A reply target for RaftPeer's answers (``set`` / ``set_exception``), as futures are."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def set(self, value: Any = None) -> None:
        self.values.append(value)

    def set_exception(self, exc_info: Any = None) -> None:
        self.values.append(exc_info[1] if isinstance(exc_info, tuple) else exc_info)


def _ask(c: ClientCluster, node: str, make: Any, timeout_s: float = 30.0) -> Any:
    got = Got()
    c.sched.nodes[node].actors[RAFT].tell(make(got))
    assert c.sched.run_until(lambda: got.values, timeout_s), "no answer"
    assert not isinstance(got.values[0], Exception), got.values[0]
    return got.values[0]


def test_a_cluster_restores_a_saved_snapshot_on_every_server_through_raft():
    c = ClientCluster(7, ClusterConfig(n_clients=4))
    try:
        c.run(40.0)
        assert c.statuses() == {"ready": 4}
        c.propose(command("kv_put", key="before", value=1))
        c.add_alloc("a1", c.clients[0])
        leader = c.leader()
        follower = next(s for s in c.servers if s != leader)

        # Save, consistently, through a follower (it reads at the leader's read index).
        _, (index, term, voters, _, state) = _ask(c, follower, lambda r: SnapshotRead(reply=r))
        assert index >= c.live_peers()[leader].core.commit - 1 and term >= 1 and len(voters) == 3
        snap = archive.decode(archive.encode(state, index=index, term=term, created_ms=CREATED_MS))
        saved = StateStore()
        saved.restore(snap.state, snap.index)
        assert saved.tables["kv"] == {"before": 1} and "a1" in saved.tables["allocs"]

        # Change the state after the save.
        c.propose(command("kv_put", key="after", value=2))
        c.propose(command("delete", table="allocs", ids=["a1"]))
        c.run(1.0)  # the followers apply it too
        assert all(p.state.digest() != saved.digest() for p in c.live_peers().values())
        before = {s: dict(p.state.table_index) for s, p in c.live_peers().items()}
        # Blocking queries parked on a follower: one on a table, one on a node's allocations.
        kv_watch, node_watch = Got(), Got()
        fstate = c.live_peers()[follower].state
        nid = c.node_id(c.clients[0])
        c.sched.nodes[follower].actors[RAFT].tell(Watch(tables=("kv",), min_index=fstate.table_index["kv"],
                                                        reply=kv_watch, timeout_s=1e6))
        c.sched.nodes[follower].actors[RAFT].tell(Watch(
            tables=("allocs",), min_index=node_alloc_index(fstate, nid), reply=node_watch, timeout_s=1e6,
            index_fn=lambda st: node_alloc_index(st, nid)))
        c.run(1.0)
        assert not kv_watch.values and not node_watch.values
        initialized = c.actor(leader, HEARTBEATS).stats["initialized"]

        # Restore, in several chunks, through the leader.
        results = [c.propose(cmd)[1] for cmd in restore_commands(snap.state, "r1", chunk_bytes=512)]
        assert len(results) > 2 and results[-1]["restored"], results[-1]
        at = results[-1]["index"]
        c.run(5.0)
        for s, p in c.live_peers().items():
            assert p.state.digest() == saved.digest(), s
            assert all(p.state.table_index[t] >= max(at, before[s][t]) for t in TABLES), s
        assert kv_watch.values and kv_watch.values[0][0] >= at
        assert node_watch.values and node_watch.values[0][0] >= at
        # The leader re-asserted: heartbeat timers rebuilt for every restored node (failover TTL).
        assert c.actor(leader, HEARTBEATS).stats["initialized"] >= initialized + 4

        # Lose the leader: the next one serves the restored state, and the old one catches up.
        c.crash(leader)
        assert c.sched.run_until(lambda: c.leader() not in (None, leader), 60.0)
        c.propose(command("kv_put", key="later", value=3))
        new = c.live_peers()[c.leader()]
        assert new.state.tables["kv"] == {"before": 1, "later": 3} and "a1" in new.state.tables["allocs"]
        c.restart(leader)
        c.run(10.0)
        digests = {s: p.state.digest() for s, p in c.live_peers().items()}
        assert len(digests) == 3 and len(set(digests.values())) == 1, digests
        assert c.statuses() == {"ready": 4}  # no node was marked down by the restore or the failover
    finally:
        c.close()


def test_after_a_restore_the_clients_run_what_the_restored_state_says():
    """Work registered after the save stops on the clients (their allocation watches wake), and a
    pending evaluation in the snapshot is scheduled by the leader's re-asserted broker."""
    from actors.scheduler.broker import BROKER
    from sim.job_cluster import canonical_job, sim_job
    from tests.test_jobs_sim import boot, settle

    c = boot(3)
    try:
        _, (index, _, _, _, state) = _ask(c, c.leader(), lambda r: SnapshotRead(reply=r))
        # The snapshot holds a job whose evaluation was still pending when it was saved.
        scratch = StateStore()
        scratch.restore(state, index)
        scratch.apply(index + 1, command("job_register", job=canonical_job(sim_job("a", count=3)),
                                         now=c.sched.now))
        assert scratch.evals_with_status("pending")
        c.register(sim_job("b", count=4))
        assert settle(c) == []
        leader = c.leader()
        generation = c.actor(leader, BROKER)._gen
        results = [c.propose(cmd)[1] for cmd in restore_commands(scratch.snapshot(), "r1", chunk_bytes=4096)]
        assert results[-1]["restored"]
        assert settle(c, 60.0) == []  # every job's count runs exactly once, and nothing else runs
        running = [p for d in c.drivers.values() for p in d.procs.values() if p.result is None]
        allocs = c.checker.replica.tables["allocs"]
        assert sorted(allocs[p.alloc_id]["JobID"] for p in running) == ["a"] * 3
        assert c.actor(leader, BROKER)._gen == generation + 2  # revoked, then established again
    finally:
        c.close()


# ---------------------------------------------------------------- a real -dev agent, ACLs on


# The ACL tests' -dev agent (ACLs on) and its bootstrap management token, imported above.


def _job(job_id: str) -> dict[str, Any]:
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}
    return {"Job": {"ID": job_id, "Type": "service", "Datacenters": ["dc1"],
                    "TaskGroups": [{"Name": "g", "Count": 0, "Tasks": [task]}]}}


def _raw(agent: AgentProc, method: str, path: str, body: bytes | None = None,
         token: str = "") -> tuple[int, bytes, dict[str, str]]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", agent.http_port, timeout=STEP_DEADLINE_S)
    try:
        conn.request(method, path, body=body, headers={"X-Nomad-Token": token} if token else {})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def _jobs(agent: AgentProc, token: str) -> list[str]:
    r = call(agent.http_port, "GET", "/v1/jobs", token=token)
    assert r.status == 200, r.text
    return sorted(j["ID"] for j in r.json())


def _nomad(agent: AgentProc, *args: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NOMAD_ADDR": f"http://127.0.0.1:{agent.http_port}", "NOMAD_TOKEN": token}
    return subprocess.run([sys.executable, NOMAD, *args], capture_output=True, text=True, env=env,
                          timeout=STEP_DEADLINE_S, cwd=ROOT)


def test_the_api_saves_and_restores_and_refuses_bad_archives(agent, management):
    port = agent.http_port
    assert call(port, "PUT", "/v1/jobs", _job("kept"), token=management).status == 200
    status, data, headers = _raw(agent, "GET", "/v1/operator/snapshot", token=management)
    assert status == 200, data
    assert headers["digest"] == archive.digest_header(data)
    snap = archive.decode(data)
    assert int(headers["x-nomad-index"]) == snap.index
    stale = _raw(agent, "GET", "/v1/operator/snapshot?stale=true", token=management)
    assert stale[0] == 200 and archive.decode(stale[1]).index >= snap.index

    assert call(port, "PUT", "/v1/jobs", _job("dropped"), token=management).status == 200
    assert _jobs(agent, management) == ["dropped", "kept"]
    status, body, headers = _raw(agent, "PUT", "/v1/operator/snapshot", data, token=management)
    assert status == 200, body
    assert int(headers["x-nomad-index"]) > snap.index
    assert _jobs(agent, management) == ["kept"]

    # Bad bodies: 400 with the reason, nothing restored, the agent keeps serving.
    assert call(port, "PUT", "/v1/jobs", _job("stays"), token=management).status == 200
    for bad, why in ((data[: len(data) // 2], b"truncated"), (b"not a snapshot", b"gzip"), (b"", b"empty")):
        status, body, _ = _raw(agent, "PUT", "/v1/operator/snapshot", bad, token=management)
        assert status == 400 and why in body, (status, body)
    assert _jobs(agent, management) == ["kept", "stays"]
    assert _raw(agent, "POST", "/v1/operator/snapshot", b"", token=management)[0] == 405
    assert agent.healthy()


def test_a_snapshot_from_a_later_index_is_restored_above_it(agent, management):
    """A restore into a cluster that has not reached the snapshot's index moves the index past it first."""
    status, data, _ = _raw(agent, "GET", "/v1/operator/snapshot", token=management)
    assert status == 200
    snap = archive.decode(data)
    ahead = archive.encode(snap.state, index=snap.index + 300, term=snap.term, created_ms=CREATED_MS)
    status, body, headers = _raw(agent, "PUT", "/v1/operator/snapshot", ahead, token=management)
    assert status == 200, body
    assert int(headers["x-nomad-index"]) > snap.index + 300
    assert call(agent.http_port, "GET", "/v1/jobs", token=management).status == 200


def test_a_save_needs_snapshot_save_and_a_restore_a_management_token(agent, management):
    """Nomad 2.0: Operator.SnapshotSave checks the snapshot-save operator capability (operator write
    grants it), SnapshotRestore a management token."""
    writer = client_token(agent, management, "op", "operator-write", 'operator { policy = "write" }\n')
    saver = client_token(agent, management, "op-save", "operator-save",
                         'operator { capabilities = ["snapshot-save"] }\n')
    reader = client_token(agent, management, "op-read", "operator-read-snap",
                          'operator { policy = "read" }\n')
    status, data, _ = _raw(agent, "GET", "/v1/operator/snapshot", token=management)
    assert status == 200
    for token in (writer["SecretID"], saver["SecretID"]):
        assert _raw(agent, "GET", "/v1/operator/snapshot", token=token)[0] == 200
        assert _raw(agent, "PUT", "/v1/operator/snapshot", data, token=token)[0] == 403
    for token in ("", reader["SecretID"]):
        assert _raw(agent, "GET", "/v1/operator/snapshot", token=token)[0] == 403
        assert _raw(agent, "PUT", "/v1/operator/snapshot", data, token=token)[0] == 403


def test_the_cli_saves_inspects_and_restores(agent, management, tmp_path):
    path = str(tmp_path / "backup.snap")
    out = _nomad(agent, "operator", "snapshot", "save", path, token=management)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"State file written to {path}"
    assert os.listdir(tmp_path) == ["backup.snap"]  # the temporary file was renamed, none left behind
    again = _nomad(agent, "operator", "snapshot", "save", path, token=management)
    assert again.returncode == 1 and "already exists" in again.stderr
    redacted = str(tmp_path / "redacted.snap")
    out = _nomad(agent, "operator", "snapshot", "save", "-redact", redacted, token=management)
    assert out.returncode == 0 and out.stdout.splitlines() == ["Redacting key material from snapshot",
                                                               f"State file written to {redacted}"]
    assert archive.decode(open(redacted, "rb").read()).index >= 1
    os.remove(redacted)

    out = _nomad(agent, "operator", "snapshot", "inspect", path, token="")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("=")[0].rstrip() for line in lines[:6]] == ["Created", "ID", "Size", "Index", "Term",
                                                                   "Version"]
    assert len({line.index("=") for line in lines[:6]}) == 1  # aligned, as Nomad's formatKV
    assert any(line.startswith("jobs ") for line in lines)
    # The leader wrote the cluster's ID (Nomad's ClusterMetadata) once; the snapshot keeps it.
    assert any(line.split()[:2] == ["cluster_meta", "1"] for line in lines), out.stdout

    out = _nomad(agent, "operator", "snapshot", "restore", path, token=management)
    assert out.returncode == 0 and out.stdout.strip() == "Snapshot Restored", out.stderr

    bad = tmp_path / "bad.snap"
    bad.write_bytes(open(path, "rb").read()[:-20])
    for cmd in ("inspect", "restore"):
        out = _nomad(agent, "operator", "snapshot", cmd, str(bad), token=management)
        assert out.returncode == 1 and "truncated" in out.stderr and not out.stdout
    out = _nomad(agent, "operator", "snapshot", "save", str(tmp_path / "x.snap"), token="")
    assert out.returncode == 1 and "403" in out.stderr and not (tmp_path / "x.snap").exists()
    assert wait_for(agent.healthy, "the agent still healthy")


def test_after_a_restore_work_the_clients_already_finished_is_replaced_not_left_as_running():
    """The snapshot says a job's allocations run; since the save the job was stopped and the
    clients finished them.  After the restore the clients tell the servers again that those
    allocations are complete, and the job's count is run anew -- no allocation the servers
    think running is left without a process."""
    from sim.job_cluster import sim_job
    from tests.test_jobs_sim import boot, settle

    c = boot(3)
    try:
        c.register(sim_job("a", count=3))
        assert settle(c) == []
        _, (index, _, _, _, state) = _ask(c, c.leader(), lambda r: SnapshotRead(reply=r))
        before = set(c.checker.replica.tables["allocs"])
        c.stop_job("a")
        assert settle(c) == []
        c.run(30.0)
        assert all(c.checker.replica.tables["allocs"][a]["ClientStatus"] == "complete" for a in before)
        results = [c.propose(cmd)[1] for cmd in restore_commands(state, "r2", chunk_bytes=4096)]
        assert results[-1]["restored"]
        assert settle(c, 90.0) == []  # every allocation the servers think running has a process
        allocs = c.checker.replica.tables["allocs"]
        running = [p for d in c.drivers.values() for p in d.procs.values() if p.result is None]
        assert sorted(allocs[p.alloc_id]["JobID"] for p in running) == ["a"] * 3
        assert not {p.alloc_id for p in running} & before  # replacements, not the finished ones
        for alloc_id in before:  # the finished ones are known as finished again
            assert allocs[alloc_id]["ClientStatus"] in ("complete", "failed"), allocs[alloc_id]
    finally:
        c.close()


def test_the_cli_words_snapshot_misuse_and_file_errors_as_nomad(capsys, tmp_path, monkeypatch):
    """command/operator_snapshot_{save,restore,inspect}.go: misuse ends with commandErrorText's hint;
    an unopenable file is Go's *PathError text (%q in restore, %s in inspect)."""
    from runtime.cli import main

    def err(*args: str) -> str:
        assert main(["-address=http://127.0.0.1:9", "operator", "snapshot", *args]) == 1
        return capsys.readouterr().err

    assert err("restore") == ("This command takes one argument: <filename>\n"
                              "For additional help try 'nomad operator snapshot restore -help'\n")
    assert err("inspect", "a", "b").endswith("For additional help try 'nomad operator snapshot inspect -help'\n")
    missing = str(tmp_path / "none.snap")
    assert err("restore", missing) == f'Error opening snapshot file: "open {missing}: no such file or directory"\n'
    assert err("inspect", missing) == f"Error opening snapshot file: open {missing}: no such file or directory\n"
    (tmp_path / "have.snap").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert err("save", "have.snap") == ('Destination file already exists: "have.snap"\n'
                                        "For additional help try 'nomad operator snapshot save -help'\n")
    assert err("save", "a", "b").endswith("For additional help try 'nomad operator snapshot save -help'\n")


def test_inspect_sorts_types_largest_first_and_takes_json(tmp_path):
    """command/operator_snapshot_inspect.go: generateStats sorts by size, largest first (names alike by
    name); -json prints SnapshotInspectFormat {Meta, Stats}; Created is formatTime's ISO 8601 ("Z")."""
    import re

    from runtime import cli, cli_snapshot  # noqa: F401 (cli first: it imports cli_snapshot in its order)

    st = StateStore()
    st.apply(1, command("job_register", job={"ID": "web", "Type": "service", "Priority": 50,
                                             "Datacenters": ["dc1"], "TaskGroups": []}, now=1.0))
    st.apply(2, command("acl_policy_upsert", policies=[{"Name": "p", "Rules": ""}]))
    path = tmp_path / "a.snap"
    path.write_bytes(archive.encode(st.snapshot(), index=2, term=1, created_ms=1_795_915_190_874,
                                    voters=("n1@10.0.0.1:4647",)))
    sizes = {name: size for name, _, size in archive.table_stats(st.snapshot())}
    assert sizes["jobs"] > sizes["acl_policies"]
    out = cli_snapshot.snapshot_inspect("", [str(path)]).splitlines()
    assert re.fullmatch(r"Created = 2026-11-2[89]T\d\d:\d\d:50(Z|[+-]\d\d:\d\d)", out[0]), out[0]
    rows = [line.split()[0] for line in out[out.index("") + 2:]
            if line.strip() and not line.startswith("Total")]
    assert rows == sorted(sizes, key=lambda n: (-sizes[n], n))
    doc = json.loads(cli_snapshot.snapshot_inspect("", ["-json", str(path)]))
    assert doc["Meta"]["Index"] == 2 and doc["Meta"]["Term"] == 1 and doc["Meta"]["ID"] == "1-2-1795915190874"
    servers = doc["Meta"]["Configuration"]["Servers"]
    assert servers == [{"Suffrage": 0, "ID": "n1", "Address": "10.0.0.1:4647"}]
    assert [s["Name"] for s in doc["Stats"]] == rows
    assert doc["Stats"][0] == {"Name": rows[0], "Sum": sizes[rows[0]], "Count": 1}
