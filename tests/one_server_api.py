"""An HTTP handler's ``api`` over a bare StateStore: a one-server Raft that applies each proposal at
the next index and answers each read at once (for in-process tests of the HTTP endpoints)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from actors.state.store import StateStore


class _Future:
    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self, timeout: float | None = None) -> Any:
        return self.value


class _Raft:
    """Answers a Read at once and applies a Propose at the next index, as a one-server Raft would."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def is_alive(self) -> bool:
        return True

    def tell(self, msg: Any) -> None:
        from actors.raft.peer import Propose

        if isinstance(msg, Propose):
            index = self.state.applied_index + 1
            msg.reply.set((index, self.state.apply(index, msg.data)))
        else:
            msg.reply.set((self.state.applied_index, msg.query(self.state)))


class _Env:
    def __init__(self, state: StateStore) -> None:
        self.raft = _Raft(state)

    def lookup(self, name: str) -> Any:
        return self.raft if name == "raft" else None

    def now(self) -> float:
        return 0.0  # never held: this Raft always leads

    def make_future(self) -> _Future:
        return _Future()


def api_over(state: StateStore, *, acl_enabled: bool) -> Any:
    return SimpleNamespace(env=_Env(state), ctx=SimpleNamespace(acl_enabled=acl_enabled), ask_timeout_s=1.0,
                           ask=lambda actor, what: {"role": "leader", "leader": "me", "last_contact": 0})
