"""Messages of the agent's own protocol (supervisor, signal router, leave).

They never cross the network -- signals, reloads and leave intents are
local to one process, and the asks carry nothing a peer could send -- so
they have no wire tag.  They are still frozen, slotted dataclasses: pykka
does not copy messages, so immutability is what keeps actors apart.

Also here: :class:`ProcessHooks`, the edge the agent's actors use for what
only the process can do (console, log level, exit); the production
implementation is :class:`runtime.agent_main.Process`, the simulator's a
recording fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runtime.config import Config

msg = dataclass(frozen=True, slots=True, kw_only=True)

# Go's names for the signals, as Nomad prints them (``==> Caught signal: interrupt``).
SIGNAL_NAMES = {"SIGHUP": "hangup", "SIGINT": "interrupt", "SIGTERM": "terminated",
                "SIGQUIT": "quit", "SIGUSR1": "user defined signal 1"}


@msg
class OsSignal:
    """An OS signal arrived (``name`` as ``signal.Signals(n).name``: ``SIGINT``)."""

    name: str


@msg
class Shutdown:
    """Stop the agent: told by the signal router for SIGINT/SIGTERM.

    ``reason`` is Go's signal name (``interrupt`` / ``terminated``): it picks
    ``leave_on_interrupt`` or ``leave_on_terminate``.  Told again while the
    agent is leaving or stopping, it forces the exit (Nomad: a second signal).
    """

    reason: str


@msg
class Reload:
    """Re-read the configuration (SIGHUP, or ``PUT /v1/agent/reload``).

    ``signal`` marks a SIGHUP: during a graceful leave it is a second signal,
    which ends the leave with exit 1 as in Nomad's ``terminateGracefully``;
    the HTTP reload is not.
    """

    signal: bool = False


@msg
class Leave:
    """Told to each child whose spec has ``leaves=True`` when a graceful leave starts.

    The child leaves its cluster (gossip leave, raft removal, client drain)
    and answers :class:`LeaveDone` to ``reply_to`` (an actor on this node)
    with the same ``corr``.  The agent waits at most
    ``Config.graceful_timeout_s()`` for every answer.
    """

    reply_to: str
    corr: int


@msg
class LeaveDone:
    actor: str
    corr: int
    ok: bool = True
    error: str = ""


@msg
class Destroy:
    """Told to each child whose spec has ``destroys=True`` when the agent stops, before any child stops.

    Dev mode's alloc runner kills every task (Nomad's ``client.Shutdown``
    destroys the allocation runners in dev mode) and answers
    :class:`Destroyed` to ``reply_to`` with the same ``corr`` once they are
    all dead.  The agent waits at most ``client.max_kill_timeout`` plus
    ``Supervision.destroy_margin_s``.
    """

    reply_to: str
    corr: int


@msg
class Destroyed:
    actor: str
    corr: int


@msg
class ConfigReloaded:
    """Told after a reload to each child whose spec has ``reloads=True``.

    ``config`` is the running config with the reloadable keys applied
    (``runtime.config.RELOADABLE``); frozen, so it can be shared.
    """

    config: Config


# Asks from the outside world (HTTP API, process main, tests): the return
# value of ``receive`` is the answer.

@msg
class GetStatus:
    """-> ``{"phase": str, "children": {name: alive}, "restarts": {name: n}}``."""


@msg
class GetHealth:
    """-> ``{"server": {"ok", "message"} | None, "client": ... | None}``."""


@msg
class GetSelf:
    """-> ``{"config", "member", "stats"}`` of ``/v1/agent/self`` (without runtime stats)."""


class ProcessHooks(Protocol):
    """What the agent's actors may ask of the process around them.

    Every method returns at once (console writes are line-sized).  Kept
    narrow so the same actors run in the simulator against a fake.
    """

    def output(self, line: str) -> None:
        """A console line with Nomad's ``==> `` prefix (stdout)."""

    def error(self, line: str) -> None:
        """An error line with the ``==> `` prefix (stderr)."""

    def write_stderr(self, text: str) -> None:
        """Raw text to stderr (metrics dump, stack dump)."""

    def load_config(self) -> Config:
        """The config re-read from the same flags and files; raises ConfigError."""

    def set_log_level(self, level: str) -> None:
        """Apply a (validated) log level to the process's logging."""

    def notify(self, state: str) -> None:
        """Tell systemd (``READY=1``, ``RELOADING=1``, ``STOPPING=1``); no-op outside it."""

    def dump_stacks(self) -> str:
        """Every greenlet's and thread's stack, as text."""

    def exit(self, code: int, *, force: bool = False) -> None:
        """End the process with *code*: after teardown, or at once when *force*."""
