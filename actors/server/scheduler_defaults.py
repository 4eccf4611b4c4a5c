"""The first leader writes the agent's ``default_scheduler_config`` (Nomad's ``getOrCreateSchedulerConfig``).

When a server with a ``server.default_scheduler_config`` block establishes
leadership, it reads the state (linearizably) and, when no scheduler
configuration was ever written, proposes that block's configuration with
``cas=0``: if an operator's ``PUT /v1/operator/scheduler/configuration``
got in first, the state keeps the operator's.  Once the state holds one,
the block is not consulted again, by this server or any other -- as in
Nomad, it only seeds a new cluster.  Without the block the state answers
Nomad's built-in defaults (actors.state.scheduler_config.DEFAULTS).
"""

from __future__ import annotations

from typing import Any

from actors.server import RAFT, log
from actors.server.cluster_id import LeaderEstablisher
from actors.state import scheduler_config
from actors.state.store import command
from runtime.env import Env

TAG = "sched-defaults"  # RaftReply tags: (TAG, (stage, generation))


def written_config(state: Any) -> Any:
    """Read query: the scheduler configuration written to the state (a copy), or None when none ever was."""
    rec = state.tables.get(scheduler_config.TABLE, {}).get(scheduler_config.KEY)
    return dict(rec) if rec else None


class SchedulerDefaultsEstablisher(LeaderEstablisher):
    """Seeds the state's scheduler configuration from the agent's config while this server leads."""

    __slots__ = ("config",)

    what = "default scheduler configuration"
    query = staticmethod(written_config)

    def __init__(self, env: Env, actor: str, *, config: dict[str, Any], raft: str = RAFT) -> None:
        super().__init__(env, actor, tag=TAG, raft=raft)
        self.config = config  # in the API's field names (SchedulerDefaults.as_api)

    def settled(self, result: Any) -> bool:
        return result is not None

    def proposal(self) -> Any:
        return command("scheduler_set_config", config=self.config, cas=0)

    def written(self, result: Any) -> bool:
        if isinstance(result, dict) and result.get("ok"):
            if result.get("updated"):
                log.info("%s: wrote the default scheduler configuration (algorithm %s)", self._env.node,
                         self.config.get("SchedulerAlgorithm"))
        else:
            error = result.get("error") if isinstance(result, dict) else result
            log.error("%s: failed to write the default scheduler configuration: %s", self._env.node, error)
        return True  # written, taken by an operator's first, or refused: nothing to retry
