"""NodeActor: the base of every actor class in ``actors/``.

It subclasses the abstract ``pykka.Actor``; a runtime makes it concrete
(``runtime.prod.concrete`` on ``pykka.ThreadingActor``, ``sim.runtime`` on
the simulated hooks).  It adds named timers with generations, a ``send``
shortcut, and failure reporting to the node's supervisor.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from runtime.env import Env, TimerHandle
from runtime.messages import TimerFired
from runtime.wire import Message, builder

log = logging.getLogger(__name__)
_timer_fired = builder(TimerFired)  # one is built per timer set


class NodeActor(pykka.Actor):
    """An actor hosted on one node with an injected environment."""

    def __init__(self, env: Env, name: str) -> None:
        super().__init__()
        self.env = env
        self.name = name
        self._timer_gen: dict[str, int] = {}
        self._timer_handles: dict[str, TimerHandle] = {}
        self.stale_timers = 0
        if type(self).send is NodeActor.send:
            # send() is env.send(): bound here, a send costs one call, not two.
            self.send = env.send  # type: ignore[method-assign]

    # ------------------------------------------------------------ timers
    def set_timer(self, name: str, delay_s: float) -> int:
        """(Re)arm timer *name*; an earlier arming of it can no longer fire."""
        gens = self._timer_gen
        gen = gens.get(name, 0) + 1
        gens[name] = gen
        handles = self._timer_handles
        old = handles.pop(name, None)
        if old is not None:
            old.cancel()
        handles[name] = self.env.call_later(delay_s, self._actor_ref, _timer_fired(name=name, generation=gen))
        return gen

    def cancel_timer(self, name: str) -> None:
        gens = self._timer_gen
        if name in gens:
            gens[name] += 1
        handle = self._timer_handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def timer_armed(self, name: str) -> bool:
        return name in self._timer_handles

    def on_timer(self, name: str) -> None:
        """Override: timer *name* fired (never called for a stale firing)."""

    # ------------------------------------------------------------ messages
    def _handle_receive(self, message: Any) -> Any:
        # pykka's dispatch, with the common case first: a wire message is
        # never one of pykka's own (stop, proxy call/get/set), which go on to it.
        if isinstance(message, Message):
            return self.on_receive(message)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        if type(message) is TimerFired:
            name = message.name
            if self._timer_gen.get(name) != message.generation:
                self.stale_timers += 1
                return None
            self._timer_handles.pop(name, None)
            return self.on_timer(name)
        return self.receive(message)

    def receive(self, message: Any) -> Any:
        """Override: handle one message (the return value answers an ask)."""
        log.debug("%s ignored %r", self.name, type(message).__name__)
        return None

    def send(self, node: str, actor: str, msg: Any) -> None:
        self.env.send(node, actor, msg)

    # ------------------------------------------------------------ lifecycle
    def _cancel_all_timers(self) -> None:
        for name in sorted(self._timer_handles):
            self.cancel_timer(name)

    def on_stop(self) -> None:
        self._cancel_all_timers()

    def _handle_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        # pykka calls this for a failure in on_start, on_receive or on_stop
        # (on_failure only for on_receive), so the supervisor hears of all three.
        super()._handle_failure(exception_type, exception_value, traceback)
        self._cancel_all_timers()
        self.env.report_failure(self.name, f"{getattr(exception_type, '__name__', '?')}: {exception_value}")
