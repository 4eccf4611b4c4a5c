"""Manual outage recovery with ``peers.json``, as Nomad's servers do it.

When a cluster has lost its quorum for good (most servers gone), Nomad's
documented recovery is: stop every remaining server, write
``<data_dir>/server/raft/peers.json`` on each with the servers that are to
form the cluster, and start them.  At start, before Raft runs, a server that
finds the file rewrites its Raft state to that configuration and deletes the
file (``nomad/server.go`` ``setupRaft``; hashicorp/raft ``RecoverCluster``):

* the state machine is rebuilt from the latest snapshot and *every* entry of
  the log after it (committed or not: the operator has chosen these servers'
  logs as the truth);
* a snapshot of that state is stored at the log's last index and term, with
  the file's servers as its configuration, and the whole log is dropped, so
  no configuration entry in it can undo the new configuration.

A server that was down through the recovery, not wiped, and was given no
file keeps its own log, and that may match the recovered servers' up to their
snapshot, so it is sent entries, not the snapshot.  It learns the recovered
configuration from the first entry a recovered server writes as leader: a
leader whose configuration is its snapshot's restates it whole there
(``actors.raft.core.RaftCore._become_leader``), so the configuration changes
that follow apply to the recovered configuration, not to its old one.

The file (Raft protocol 3) is a JSON list of ``{"id": "<node-id>",
"address": "<ip>:<rpc port>", "non_voter": false}``; the protocol-2 form, a
list of ``"<ip>:<port>"`` strings, is read too.  Each server keeps the file's
``id`` as its Raft ID (its node ID, so the recovered server is known by the
same ID it had before, and that ``nomad operator raft remove-peer -peer-id``
takes); a protocol-2 entry's ID is its address, as hashicorp/raft's.  IDs
and addresses must be given and unique, as hashicorp/raft checks.

``peers.info`` is Nomad's sentinel: written beside the store at a server's
first start, it explains the file.  A ``peers.json`` found where no
``peers.info`` was (a data dir from before the sentinel) is deleted, not used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from actors.raft.core import member, parse_member
from actors.raft.messages import NORMAL
from actors.raft.storage import StorageError

log = logging.getLogger("nomad.raft")

PEERS_INFO = """\
As of Nomad 0.5.5, the peers.json file is only used for recovery
after an outage. The format of this file depends on what the server has
configured for its Raft protocol version. Please see the server configuration
page at https://developer.hashicorp.com/nomad/docs/configuration/server#raft_protocol
for more details about this parameter.

For Raft protocol version 2 and earlier, this should be formatted as a JSON
array containing the address and port of each Nomad server in the cluster, like
this:

[
  "10.1.0.1:4647",
  "10.1.0.2:4647",
  "10.1.0.3:4647"
]

For Raft protocol version 3 and later, this should be formatted as a JSON
array containing the node ID, address:port, and suffrage information of each
Nomad server in the cluster, like this:

[
  {
    "id": "adf4238a-882b-9ddc-4a9d-5b6758e4159e",
    "address": "10.1.0.1:4647",
    "non_voter": false
  },
  {
    "id": "8b6dda82-3103-11e7-93ae-92361f002671",
    "address": "10.1.0.2:4647",
    "non_voter": false
  },
  {
    "id": "97e17742-3103-11e7-93ae-92361f002671",
    "address": "10.1.0.3:4647",
    "non_voter": false
  }
]

The "id" field is the node ID of the server. This can be found in the logs when
the server starts up, or in the "node-id" file inside the server's data
directory.

The "address" field is the address and port of the server.

The "non_voter" field controls whether the server is a non-voter, which is used
in some advanced Autopilot configurations, please see
https://developer.hashicorp.com/nomad/tutorials/manage-clusters/outage-recovery
for more information. If "non_voter" is omitted it will default to false, which
is typical for most clusters.

Under normal operation, the peers.json file will not be present.

When Nomad starts for the first time, it will create this peers.info file and
delete any existing peers.json file so that recovery doesn't occur on the first
startup.

Once this peers.info file is present, any peers.json file will be ingested at
startup, and will set the Raft peer configuration manually to recover from an
outage. It's crucial that all servers in the cluster are shut down before
creating the peers.json file, and that all servers receive the same
configuration. Once the peers.json file is successfully ingested and applied, it
will be deleted.

Please see https://developer.hashicorp.com/nomad/tutorials/manage-clusters/outage-recovery
for more information.
"""

# A peers.json larger than this is no list of servers: refused before it is parsed.
MAX_PEERS_JSON_BYTES = 1 << 20


class RecoveryError(StorageError):
    """peers.json could not be read or applied (the message says which, as Nomad's)."""


def read_peers_json(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(voters, non-voters) from a peers.json of either format, as the snapshot's member entries
    (``ID@address``, or the address alone when it is the ID: ``actors.raft.core.member``); ValueError
    if bad."""
    with open(path, "rb") as f:
        raw = f.read(MAX_PEERS_JSON_BYTES + 1)
    if len(raw) > MAX_PEERS_JSON_BYTES:
        raise ValueError(f"larger than {MAX_PEERS_JSON_BYTES} bytes")
    try:
        peers = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(str(e)) from None
    if not isinstance(peers, list):
        raise ValueError("expected a JSON array of servers")
    voters: list[str] = []
    learners: list[str] = []
    ids: set[str] = set()
    addresses: set[str] = set()
    for i, peer in enumerate(peers):
        if isinstance(peer, str):  # Raft protocol 2: the address is the ID
            sid, address, non_voter = peer, peer, False
        elif isinstance(peer, dict):
            sid, address = peer.get("id", ""), peer.get("address", "")
            non_voter = peer.get("non_voter", False)
            if not isinstance(sid, str) or not isinstance(address, str) or not isinstance(non_voter, bool):
                raise ValueError(f"server {i}: id and address must be strings and non_voter a boolean")
        else:
            raise ValueError(f"server {i}: expected an object with id, address and non_voter")
        # hashicorp/raft checkConfiguration's rules and messages.
        if not sid:
            raise ValueError("empty ID in configuration")
        if sid in ids:
            raise ValueError(f"found duplicate ID in configuration: {sid}")
        if not address:
            raise ValueError("empty address in configuration")
        if address in addresses:
            raise ValueError(f"found duplicate address in configuration: {address}")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"server {i}: address {address!r} is not host:port")
        ids.add(sid)
        addresses.add(address)
        (learners if non_voter else voters).append(member(sid, address))
    if not voters:
        raise ValueError("need at least one voter in configuration")
    return tuple(voters), tuple(learners)


def _described(entry: str) -> str:
    sid, address = parse_member(entry)
    return address if sid == address else f"{address} (ID {sid})"


def recover_cluster(storage: Any, voters: tuple[str, ...], learners: tuple[str, ...],
                    make_state: Callable[[], Any]) -> tuple[int, int]:
    """hashicorp/raft RecoverCluster on our store: rebuild the state from the snapshot and every entry
    after it, store it as a snapshot at the last index with this configuration, drop the whole log.
    Returns the snapshot's (index, term)."""
    _term, _vote, snapshot, entries = storage.load()
    if snapshot is None and not entries:
        raise RecoveryError("recovery failed: refused to recover cluster with no initial state, this is "
                            "probably an operator error")
    state = make_state()
    index = term = 0
    if snapshot is not None:
        index, term = snapshot[0], snapshot[1]
        state.restore(snapshot[4], index)
    for e in entries:
        if e.index <= index:
            continue  # trailing entries a compaction kept: the snapshot covers them
        if e.kind == NORMAL:
            state.apply(e.index, e.data)
        else:
            state.applied_index = max(state.applied_index, e.index)
        index, term = e.index, e.term
    storage.compact((index, term, voters, learners, state.snapshot()), keep_from=index + 1)
    return index, term


def check_peers_json(raft_dir: str, storage: Any, make_state: Callable[[], Any]) -> bool:
    """Nomad's start-up check (setupRaft): write peers.info the first time (deleting a peers.json found
    without it), else apply a peers.json and delete it.  True when a recovery was done; RecoveryError
    (with Nomad's message) when the file is bad or cannot be applied or deleted."""
    peers_json = os.path.join(raft_dir, "peers.json")
    peers_info = os.path.join(raft_dir, "peers.info")
    if not os.path.exists(peers_info):
        try:
            with open(peers_info, "w", encoding="utf-8") as f:
                f.write(PEERS_INFO)
        except OSError as e:
            raise RecoveryError(f"failed to write peers.info file: {e}") from None
        if os.path.exists(peers_json):
            try:
                os.remove(peers_json)
            except OSError as e:
                raise RecoveryError("failed to delete peers.json, please delete manually (see peers.info "
                                    f"for details): {e}") from None
            log.info("deleted peers.json file (see peers.info for details)")
        return False
    if not os.path.exists(peers_json):
        return False
    log.info("found peers.json file, recovering Raft configuration...")
    try:
        voters, learners = read_peers_json(peers_json)
    except (OSError, ValueError) as e:
        raise RecoveryError(f"recovery failed to parse peers.json: {e}") from None
    try:
        index, term = recover_cluster(storage, voters, learners, make_state)
    except RecoveryError:
        raise
    except Exception as e:  # the store or the state machine refused: nothing was changed
        raise RecoveryError(f"recovery failed: {e}") from None
    try:
        os.remove(peers_json)
    except OSError as e:
        raise RecoveryError("recovery failed to delete peers.json, please delete manually (see peers.info "
                            f"for details): {e}") from None
    log.info("deleted peers.json file after successful recovery: configuration %s at index %d (term %d)",
             ", ".join([_described(m) for m in voters] + [f"{_described(m)} (non-voter)" for m in learners]),
             index, term)
    return True
