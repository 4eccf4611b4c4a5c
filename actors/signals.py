"""SignalRouter: OS signals in, agent intents out (Nomad ``handleSignals``).

OS signals enter the process through ``gevent.signal_handler``, whose
handler only tells this actor :class:`OsSignal` (``runtime.agent_main``); in
the simulator a test tells the same message.  The router keeps no state of
its own beyond counters: the agent supervisor owns the lifecycle, so a
second SIGINT is simply a second :class:`Shutdown` and the agent decides
that it forces the exit.

| signal  | action (Nomad 2.0.6, NOMAD.md §1.3)                                  |
|---------|-----------------------------------------------------------------------|
| SIGHUP  | ``==> Caught signal: hangup``; the agent reloads the config (during a |
|         | graceful leave it is a second signal: exit 1 at once, as in Nomad)    |
| SIGINT  | ``==> Caught signal: interrupt``; stop, leaving if leave_on_interrupt |
| SIGTERM | ``==> Caught signal: terminated``; stop, leaving if leave_on_terminate|
| SIGUSR1 | the metrics dump to stderr (go-metrics ``InmemSignal``); no stop      |
| SIGQUIT | every greenlet's stack to stderr, exit 2 at once (Go's runtime default)|

SIGPIPE is ignored by the process (CPython sets ``SIG_IGN`` at start-up),
as Nomad ignores it.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.agent_messages import SIGNAL_NAMES, OsSignal, ProcessHooks, Reload, Shutdown
from actors.metrics import Metrics
from runtime.actor import NodeActor
from runtime.env import Env

__all__ = ["HANDLED_SIGNALS", "SIGQUIT_EXIT_CODE", "SignalRouter"]

log = logging.getLogger("agent")

# The signals the process routes here; the others keep their default action.
HANDLED_SIGNALS = ("SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGQUIT")
# Go's runtime exits 2 after dumping goroutines on SIGQUIT.
SIGQUIT_EXIT_CODE = 2


class SignalRouter(NodeActor):
    """Maps each signal to a console line and a message to the agent."""

    def __init__(self, env: Env, name: str, hooks: ProcessHooks, metrics: Metrics,
                 agent: str = "agent") -> None:
        super().__init__(env, name)
        self.hooks = hooks
        self.metrics = metrics
        self.agent = agent  # the supervisor's actor name on this node
        self.seen: dict[str, int] = {}

    def receive(self, message: Any) -> Any:
        if not isinstance(message, OsSignal):
            return super().receive(message)
        sig = message.name
        self.seen[sig] = self.seen.get(sig, 0) + 1
        self.metrics.incr_counter(("agent", "signals"), 1, (("signal", sig),))
        if sig == "SIGUSR1":
            self.hooks.write_stderr(self.metrics.dump_text())
        elif sig == "SIGQUIT":
            self._quit()
        elif sig in ("SIGHUP", "SIGINT", "SIGTERM"):
            go_name = SIGNAL_NAMES[sig]
            self.hooks.output(f"Caught signal: {go_name}")
            intent = Reload(signal=True) if sig == "SIGHUP" else Shutdown(reason=go_name)
            self.send(self.env.node, self.agent, intent)
        else:
            log.warning("signal router: ignoring unexpected signal %s", sig)
        return None

    def _quit(self) -> None:
        # Go's runtime prints "SIGQUIT: quit" then every goroutine; no
        # graceful stop, because a wedged agent is exactly when it is sent.
        self.hooks.write_stderr(f"SIGQUIT: quit\n\n{self.hooks.dump_stacks()}")
        self.hooks.exit(SIGQUIT_EXIT_CODE, force=True)
