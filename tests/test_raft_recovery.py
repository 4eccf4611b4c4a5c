"""Outage recovery with peers.json (runtime.raft_recovery), as Nomad's setupRaft and hashicorp/raft's
RecoverCluster: the file's servers become the configuration, the state keeps every entry of the log."""

from __future__ import annotations

import json
import logging
import random

import pytest

from actors.raft.core import RaftCore
from actors.raft.messages import CONFIG, Entry
from actors.raft.sqlite_store import SqliteStorage
from actors.raft.storage import MemoryStorage
from actors.state.store import StateStore, command
from runtime.raft_recovery import (
    PEERS_INFO,
    RecoveryError,
    check_peers_json,
    read_peers_json,
    recover_cluster,
)

JOB = {"ID": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
       "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                            "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}
A, B, C = "10.0.0.1:4647", "10.0.0.2:4647", "10.0.0.3:4647"


def write(path, peers) -> None:
    path.write_text(json.dumps(peers))


def test_both_formats_are_read_and_hashicorps_rules_refuse_bad_configurations(tmp_path):
    f = tmp_path / "peers.json"
    write(f, [{"id": "a", "address": A, "non_voter": False}, {"id": "b", "address": B, "non_voter": True},
              {"id": "c", "address": C}])
    # Raft protocol 3: each server keeps the file's ID (its node ID), stored beside its address.
    assert read_peers_json(str(f)) == ((f"a@{A}", f"c@{C}"), (f"b@{B}",))
    write(f, [A, B])  # Raft protocol 2
    assert read_peers_json(str(f)) == ((A, B), ())
    for peers, why in [
        ({"id": "a"}, "expected a JSON array"),
        ([{"id": "", "address": A}], "empty ID in configuration"),
        ([{"id": "a", "address": A}, {"id": "a", "address": B}], "found duplicate ID in configuration: a"),
        ([{"id": "a"}], "empty address in configuration"),
        ([{"id": "a", "address": A}, {"id": "b", "address": A}], "found duplicate address in configuration"),
        ([{"id": "a", "address": A, "non_voter": True}], "need at least one voter in configuration"),
        ([{"id": "a", "address": "10.0.0.1"}], "is not host:port"),
        ([{"id": "a", "address": A, "non_voter": "no"}], "non_voter a boolean"),
        ([7], "expected an object"),
        ([{"id": "a", "address": "x@10.0.0.1:4647"}], "must not contain"),
    ]:
        write(f, peers)
        with pytest.raises(ValueError, match=why):
            read_peers_json(str(f))
    f.write_text("[{")
    with pytest.raises(ValueError):
        read_peers_json(str(f))


def _cluster_store(storage) -> None:
    """A three-server cluster's log: a snapshot holding a job, then more entries, a configuration change
    and one entry that never committed."""
    st = StateStore()
    st.apply(1, command("job_register", job=JOB, now=1.0))
    storage.save(hard_state=(3, A), snapshot=(1, 1, (A, B, C), (), st.snapshot()), truncate_from=None,
                 entries=[])
    job2 = {**JOB, "ID": "api"}
    storage.save(hard_state=None, snapshot=None, truncate_from=None, entries=[
        Entry(index=2, term=2, data=command("job_register", job=job2, now=2.0)),
        Entry(index=3, term=2, kind=CONFIG, data=b"\x00"),
        Entry(index=4, term=3, data=command("job_register", job={**JOB, "ID": "late"}, now=3.0))])


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_recovery_keeps_every_entry_and_sets_the_files_configuration(tmp_path, kind):
    storage = MemoryStorage() if kind == "memory" else SqliteStorage(str(tmp_path / "raft.db"))
    _cluster_store(storage)
    assert recover_cluster(storage, (A,), (B,), StateStore) == (4, 3)
    term, vote, snap, entries = storage.load()
    assert (term, vote) == (3, A) and entries == []  # the whole log went into the snapshot
    assert snap is not None and snap[:4] == (4, 3, (A,), (B,))
    st = StateStore()
    st.restore(snap[4], snap[0])
    assert sorted(st.tables["jobs"]) == ["api", "late", "web"]  # the uncommitted one too, as hashicorp's
    core = RaftCore(A, random.Random(1))  # a server started on it: the file's voters alone elect
    core.restore(term, vote, snap, entries)
    assert core.voters == (A,) and core.learners == (B,)
    storage.close()


def test_a_server_recovered_from_a_protocol_3_peers_json_keeps_its_node_id(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    (raft_dir / "peers.info").write_text(PEERS_INFO)
    node_id = "f627361f-e162-4108-aa42-86de205ae813"
    write(raft_dir / "peers.json", [{"id": node_id, "address": A, "non_voter": False}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is True
    assert f"configuration {A} (ID {node_id}) at index 4" in caplog.text
    term, vote, snap, entries = storage.load()
    core = RaftCore(node_id, random.Random(1))
    core.restore(term, vote, snap, entries)
    assert core.voters == (node_id,) and core.address_of(node_id) == A


def test_a_store_with_nothing_in_it_is_not_recovered():
    with pytest.raises(RecoveryError, match="refused to recover cluster with no initial state"):
        recover_cluster(MemoryStorage(), (A,), (), StateStore)


def test_the_first_start_writes_peers_info_and_deletes_a_peers_json_found_without_it(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    write(raft_dir / "peers.json", [{"id": "a", "address": A}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is False
    assert (raft_dir / "peers.info").read_text() == PEERS_INFO and not (raft_dir / "peers.json").exists()
    assert "deleted peers.json file (see peers.info for details)" in caplog.text
    assert storage.load()[2][2] == (A, B, C)  # not recovered


def test_a_peers_json_beside_peers_info_is_applied_once_and_deleted(tmp_path, caplog):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    assert check_peers_json(str(raft_dir), storage, StateStore) is False  # first start: the sentinel
    assert check_peers_json(str(raft_dir), storage, StateStore) is False  # no file: nothing to do
    write(raft_dir / "peers.json", [{"id": "a", "address": A}])
    with caplog.at_level(logging.INFO, logger="nomad.raft"):
        assert check_peers_json(str(raft_dir), storage, StateStore) is True
    assert "found peers.json file, recovering Raft configuration..." in caplog.text
    assert "deleted peers.json file after successful recovery" in caplog.text
    assert not (raft_dir / "peers.json").exists() and storage.load()[2][:3] == (4, 3, (f"a@{A}",))


def test_a_bad_peers_json_stops_the_start_with_nomads_message_and_changes_nothing(tmp_path):
    raft_dir = tmp_path
    storage = MemoryStorage()
    _cluster_store(storage)
    (raft_dir / "peers.info").write_text(PEERS_INFO)
    write(raft_dir / "peers.json", [{"id": "a", "address": A, "non_voter": True}])
    with pytest.raises(RecoveryError, match=r"recovery failed to parse peers\.json: need at least one voter"):
        check_peers_json(str(raft_dir), storage, StateStore)
    assert (raft_dir / "peers.json").exists() and storage.load()[2][2] == (A, B, C)
