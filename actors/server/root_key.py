"""The leader makes the keyring's first root key (Nomad's ``initializeKeyring``).

When a server establishes leadership it reads the state (linearizably) and,
when no key is active, proposes ``root_key_create`` with a new key drawn
from the env's ``secret_rng`` (the OS's CSPRNG in production), so a fresh
cluster lists its key (``nomad operator root keyring list``) and publishes
it (``/.well-known/jwks.json``) before any task asks for an identity, as
Nomad's does.  The state machine keeps the first key it is given, so of two
leaders racing only one key takes.

The agent turns this on for its servers.  The simulator's servers leave the
key to the first identity they sign (actors.server.alloc_endpoint): a key's
RSA primes drawn from a seeded RNG cost about 0.4 s, which every simulated
election would pay.
"""

from __future__ import annotations

from typing import Any

from actors.server import RAFT, log
from actors.server.cluster_id import LeaderEstablisher
from actors.state import root_keys
from actors.state.store import command
from runtime.env import Env

TAG = "root-key"  # RaftReply tags: (TAG, (stage, generation))


def active_key_id(state: Any) -> str:
    """Read query: the active root key's ID, "" while there is none."""
    rec = root_keys.active(state.tables)
    return rec["KeyID"] if rec else ""


class RootKeyEstablisher(LeaderEstablisher):
    """Makes sure the keyring holds an active root key while this server leads."""

    __slots__ = ("_wall",)

    what = "root keyring"
    query = staticmethod(active_key_id)

    def __init__(self, env: Env, actor: str, *, wall_clock: Any, raft: str = RAFT) -> None:
        super().__init__(env, actor, tag=TAG, raft=raft)
        self._wall = wall_clock

    def settled(self, result: Any) -> bool:
        return bool(result)

    def proposal(self) -> Any:
        return command("root_key_create", **root_keys.new_key(self._env.secret_rng, self._wall()))

    def written(self, result: Any) -> bool:
        if isinstance(result, dict) and result.get("ok"):
            if result.get("created"):
                log.info("%s: initialized keyring: id=%s", self._env.node, result.get("KeyID"))
        else:
            error = result.get("error") if isinstance(result, dict) else result
            log.error("%s: failed to initialize keyring: %s", self._env.node, error)
        return True  # written, another leader's key took, or refused: nothing to retry
