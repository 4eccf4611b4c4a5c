"""Agent: the supervisor that builds, restarts and stops the agent's actors.

**The plug-in point** is :func:`actors.agent_specs.child_specs` (re-exported
here): a declarative list of :class:`ChildSpec` -- name, class, arguments,
role, restart and leave flags -- built from the config.  The agent starts
the specs in list order and stops them in reverse, so later issues add an
actor by adding one spec where it belongs in that order.  Out-of-tree
plug-ins (and tests) append a factory to :data:`EXTRA_CHILD_SPECS`.

**Lifecycle** (Nomad ``Command.Run`` / ``handleSignals`` /
``terminateGracefully``; NOMAD.md §1.3)::

    STARTING --> RUNNING --Shutdown(leave)--> LEAVING --all LeaveDone--> STOPPING(0)
                    |                            |--timeout / 2nd signal--> STOPPING(1)
    LEAVING goes in stages, as Nomad's ``Agent.Leave`` does: the client
    children leave first (drain_on_shutdown drains the node through the
    servers), then the rest (raft removal, gossip leave).
                    |--Shutdown(no leave) / fatal child failure---------> STOPPING(1)
    STOPPING: first every child whose spec ``destroys`` (dev mode's alloc
    runner) gets Destroy, answered once its work is gone (at most
    client.max_kill_timeout + Supervision.destroy_margin_s); then children
    stopped one at a time, last started first, each flushing its state in
    on_stop; then ``hooks.exit(code)``.  A signal during STOPPING exits at
    once (force).

**Failures.**  A child that fails is restarted after a backoff when its
spec is ``restartable`` and it has not failed ``restart_max`` times within
``restart_window_s``; otherwise the agent stops cleanly with exit 1.

The agent never blocks on another actor: it waits for a child to stop by
polling ``is_alive()`` on a short timer (pykka futures take no callbacks),
and talks to children with tells only.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from actors.agent_messages import (
    ConfigReloaded,
    Destroy,
    Destroyed,
    GetHealth,
    GetSelf,
    GetStatus,
    Leave,
    LeaveDone,
    ProcessHooks,
    Reload,
    Shutdown,
)
from actors.agent_specs import (
    EXTRA_CHILD_SPECS,
    VERSION,
    AgentAddrs,
    AgentContext,
    ChildSpec,
    Supervision,
    child_specs,
)
from actors.gossip.member import JoinFailed
from runtime.actor import NodeActor
from runtime.config import LOG_LEVELS, Config, ConfigError, reloadable_diff, to_dict
from runtime.env import Env
from runtime.messages import ChildFailed

__all__ = ["EXTRA_CHILD_SPECS", "VERSION", "Agent", "AgentAddrs", "AgentContext", "ChildSpec",
           "Supervision", "child_specs"]

log = logging.getLogger("agent")

# How often the agent looks whether the child it is stopping has stopped:
# short, because shutdown waits on it (a few ms per child).
STOP_POLL_S = 0.005


class Agent(NodeActor):
    """The supervisor of one agent process (or one simulated node)."""

    def __init__(self, env: Env, name: str, config: Config, ctx: AgentContext,
                 specs: list[ChildSpec] | None = None) -> None:
        super().__init__(env, name)
        self.config = config
        self.ctx = ctx
        self.hooks: ProcessHooks = ctx.hooks
        self.sup = ctx.supervision
        all_specs = specs if specs is not None else child_specs(config, ctx)
        self.specs = [s for s in all_specs if s.wanted(config)]
        self.by_name = {s.name: s for s in self.specs}
        if len(self.by_name) != len(self.specs):
            raise ValueError("agent: two child specs share a name")
        self.phase = "starting"
        self.refs: dict[str, Any] = {}
        self.started: list[str] = []  # start order of children started at least once
        self.restart_times: dict[str, list[float]] = {}
        self.restarts: dict[str, int] = {}
        self.exit_code: int | None = None
        self._leave_corr = 0
        self._leave_waiting: set[str] = set()
        self._leave_stages: list[list[str]] = []  # the leavers still to be told, stage by stage
        self._stop_queue: list[str] = []
        self._stopping: tuple[str, Any, float] | None = None
        self._destroy_corr = 0
        self._destroy_waiting: set[str] = set()

    # ------------------------------------------------------------ start
    def on_start(self) -> None:
        log.info("starting %d actors: %s", len(self.specs),
                 ", ".join(s.name for s in self.specs))
        for spec in self.specs:
            if self.phase != "starting":
                break  # a child that cannot start has already stopped the agent
            self._start_child(spec)
        if self.phase == "starting":
            self.phase = "running"
            self.set_timer("watch", self.sup.watch_interval_s)

    def _start_child(self, spec: ChildSpec) -> None:
        if spec.name not in self.started:
            self.started.append(spec.name)
        try:
            self.refs[spec.name] = self.env.spawn(spec.cls, spec.name, *spec.args, **dict(spec.kwargs))
        except Exception as e:  # a constructor error: the same policy as a failure
            log.error("could not start %s: %s", spec.name, e)
            self.refs.pop(spec.name, None)
            self._child_failed(spec.name, f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, ChildFailed):
            self._child_failed(message.actor, message.error)
        elif isinstance(message, Shutdown):
            self._on_shutdown(message.reason)
        elif isinstance(message, Reload):
            if message.signal and self.phase == "leaving":
                self._on_shutdown("hangup")  # Nomad's terminateGracefully: any second signal ends the leave
            else:
                self._on_reload()
        elif isinstance(message, LeaveDone):
            self._on_leave_done(message)
        elif isinstance(message, Destroyed):
            self._on_destroyed(message)
        elif isinstance(message, GetStatus):
            return self.status()
        elif isinstance(message, GetHealth):
            return self.health()
        elif isinstance(message, GetSelf):
            return self.self_info()
        elif isinstance(message, JoinFailed):
            self._on_join_failed(message)
        else:
            return super().receive(message)
        return None

    def on_timer(self, name: str) -> None:
        if name == "watch":
            self._watch()
        elif name == "leave":
            log.warning("graceful leave did not finish within %gs",
                        self.config.graceful_timeout_s())
            self._begin_stop(1)
        elif name == "stop_poll":
            self._poll_stop()
        elif name == "destroy":
            if self.phase == "stopping" and self._destroy_waiting:
                log.warning("allocations not destroyed within %gs: %s; stopping anyway",
                            self.config.client.max_kill_timeout_s + self.sup.destroy_margin_s,
                            ", ".join(sorted(self._destroy_waiting)))
                self._stop_children()
        elif name.startswith("restart:"):
            child = name.removeprefix("restart:")
            if self.phase == "running":
                log.info("restarting %s", child)
                self._start_child(self.by_name[child])

    # ------------------------------------------------------------ failures
    def _child_failed(self, name: str, error: str) -> None:
        spec = self.by_name.get(name)
        if spec is None:
            log.error("actor %s (not a child of the agent) failed: %s", name, error)
            return
        if self.phase in ("stopping", "stopped"):
            log.warning("%s failed while stopping: %s", name, error)
            return
        ref = self.refs.get(name)
        if (ref is not None and ref.is_alive()) or self.timer_armed(f"restart:{name}"):
            return  # a late report of an incarnation already replaced or being replaced
        self.ctx.metrics.incr_counter(("agent", "child_failures"), 1, (("child", name),))
        if self.phase == "leaving" or not spec.restartable:
            why = "during the leave" if self.phase == "leaving" else "and cannot be restarted"
            log.error("%s failed %s: %s; shutting down", name, why, error)
            self._begin_stop(1)
            return
        now = self.env.now()
        recent = [t for t in self.restart_times.get(name, []) if now - t < self.sup.restart_window_s]
        if len(recent) >= self.sup.restart_max:
            log.error("%s failed %d times within %gs, giving up: %s; shutting down",
                      name, len(recent) + 1, self.sup.restart_window_s, error)
            self._begin_stop(1)
            return
        recent.append(now)
        self.restart_times[name] = recent
        self.restarts[name] = self.restarts.get(name, 0) + 1
        delay = min(self.sup.restart_backoff_max_s, self.sup.restart_backoff_s * 2 ** (len(recent) - 1))
        log.warning("%s failed: %s; restarting in %gs (%d/%d)", name, error, delay,
                    len(recent), self.sup.restart_max)
        self.set_timer(f"restart:{name}", delay)

    def _watch(self) -> None:
        if self.phase != "running":
            return
        for name in list(self.started):
            ref = self.refs.get(name)
            if (ref is None or not ref.is_alive()) and not self.timer_armed(f"restart:{name}"):
                self._child_failed(name, "stopped without reporting a failure")
        if self.phase == "running":
            self.set_timer("watch", self.sup.watch_interval_s)

    def _on_join_failed(self, failed: JoinFailed) -> None:
        """start_join reached no server, or retry_join used up retry_max: Nomad exits 1."""
        if self.phase not in ("starting", "running"):
            return
        self.hooks.error(failed.error)
        self._begin_stop(1)

    # ------------------------------------------------------------ reload
    def _on_reload(self) -> None:
        if self.phase != "running":
            log.warning("reload ignored while %s", self.phase)
            return
        self.hooks.notify("RELOADING=1")
        self.hooks.output("Reloading configuration...")
        try:
            new = self.hooks.load_config()
        except ConfigError as e:
            self.hooks.error(f"Failed to reload configs: {e}")
            self.hooks.notify("READY=1")
            return
        if new.log_level.upper() not in LOG_LEVELS:
            # Nomad's handleReload: report it, keep the running level, reload the rest.
            self.hooks.error(f"Invalid log level: {new.log_level.upper()}. "
                             f"Valid log levels are: [{' '.join(LOG_LEVELS)}]")
            new = dataclasses.replace(new, log_level=self.config.log_level)
        applied, needs_restart = reloadable_diff(self.config, new)
        for key in needs_restart:
            log.warning("config change needs a restart to take effect: key=%s", key)
        self.config = apply_keys(self.config, new, applied)
        if "log_level" in applied:
            self.hooks.set_log_level(self.config.log_level)
            log.info("log level changed: level=%s", self.config.log_level.upper())
        if self.ctx.tls is not None and self._reload_tls() \
                and not any(k == "tls" or k.startswith("tls.") for k in applied):
            applied = [*applied, "tls"]  # the same files, read again: they may have changed in place
        for name in self.started:
            ref = self.refs.get(name)
            if self.by_name[name].reloads and ref is not None and ref.is_alive():
                self.send(self.env.node, name, ConfigReloaded(config=self.config))
        self.ctx.metrics.incr_counter(("agent", "reloads"))
        log.info("reload complete: applied=%s restart_needed=%s",
                 ",".join(applied) or "-", ",".join(needs_restart) or "-")
        self.hooks.notify("READY=1")

    def _reload_tls(self) -> bool:
        """Nomad reloads the RPC and HTTP certificates on every SIGHUP (files may change in place):
        connections opened from now on use them.  A failure keeps the old ones."""
        from runtime.tls import TlsError, TlsSettings

        try:
            self.ctx.tls.reload(TlsSettings.from_config(self.config))
        except TlsError as e:
            self.hooks.error(f"Failed to reload TLS configuration: {e}")
            return False
        log.info("TLS certificates reloaded: cert_file=%s", self.config.tls.cert_file)
        return True

    # ------------------------------------------------------------ shutdown
    def _on_shutdown(self, reason: str) -> None:
        if self.phase in ("starting", "running"):
            leave = {"interrupt": self.config.leave_on_interrupt,
                     "terminated": self.config.leave_on_terminate}.get(reason, False)
            if leave:
                self._begin_leave()
            else:
                self._begin_stop(1)  # Nomad: a plain stop exits 1 (issue #10479)
        elif self.phase == "leaving":
            log.info("caught signal during graceful shutdown; not waiting for the leave")
            self._begin_stop(1)
        else:
            log.warning("caught signal while stopping; exiting now")
            self.hooks.exit(1, force=True)

    def _begin_leave(self) -> None:
        self.phase = "leaving"
        self.hooks.notify("STOPPING=1")
        self.hooks.output("Gracefully shutting down agent...")
        self._leave_corr += 1
        leavers = [n for n in self.started if self.by_name[n].leaves
                   and self.refs.get(n) is not None and self.refs[n].is_alive()]
        # Nomad's Agent.Leave runs the client's Leave (DrainSelf) to the end before the
        # server's: a server that left raft and gossip first could not serve its own drain.
        client = [n for n in leavers if self.by_name[n].role == "client"]
        self._leave_stages = [stage for stage in (client, [n for n in leavers if n not in client]) if stage]
        if not self._leave_stages:
            self._begin_stop(0)
            return
        self.set_timer("leave", self.config.graceful_timeout_s())
        self._next_leave_stage()

    def _next_leave_stage(self) -> None:
        stage = self._leave_stages.pop(0)
        self._leave_waiting = set(stage)
        for name in stage:
            self.send(self.env.node, name, Leave(reply_to=self.name, corr=self._leave_corr))

    def _on_leave_done(self, done: LeaveDone) -> None:
        if self.phase != "leaving" or done.corr != self._leave_corr:
            return
        if not done.ok:
            self.hooks.error(f"Error: {done.actor}: {done.error}")
            self._begin_stop(1)
            return
        self._leave_waiting.discard(done.actor)
        if self._leave_waiting:
            return
        if self._leave_stages:
            self._next_leave_stage()
            return
        log.info("graceful leave complete")
        self._begin_stop(0)

    def _begin_stop(self, code: int) -> None:
        if self.phase in ("stopping", "stopped"):
            return
        if self.phase != "leaving":
            self.hooks.notify("STOPPING=1")
        self.phase = "stopping"
        self.exit_code = code
        for name in sorted(self._timer_handles):
            if name != "stop_poll":
                self.cancel_timer(name)
        log.info("requesting shutdown")
        destroyers = [n for n in self.started if self.by_name[n].destroys
                      and self.refs.get(n) is not None and self.refs[n].is_alive()]
        if destroyers:
            self._destroy_corr += 1
            self._destroy_waiting = set(destroyers)
            for name in destroyers:
                self.send(self.env.node, name, Destroy(reply_to=self.name, corr=self._destroy_corr))
            self.set_timer("destroy", self.config.client.max_kill_timeout_s + self.sup.destroy_margin_s)
            return
        self._stop_children()

    def _on_destroyed(self, done: Destroyed) -> None:
        if self.phase != "stopping" or done.corr != self._destroy_corr:
            return
        self._destroy_waiting.discard(done.actor)
        if not self._destroy_waiting:
            self.cancel_timer("destroy")
            self._stop_children()

    def _stop_children(self) -> None:
        self._destroy_waiting = set()
        self._stop_queue = list(self.started)
        self._stop_next()

    def _stop_next(self) -> None:
        while self._stop_queue:
            name = self._stop_queue.pop()
            ref = self.refs.get(name)
            if ref is None or not ref.is_alive():
                continue
            log.debug("stopping %s", name)
            ref.stop(block=False)
            self._stopping = (name, ref, self.env.now() + self.sup.child_stop_timeout_s)
            self.set_timer("stop_poll", STOP_POLL_S)
            return
        self._stopping = None
        self.phase = "stopped"
        log.info("shutdown complete")
        self.hooks.exit(self.exit_code if self.exit_code is not None else 1)

    def _poll_stop(self) -> None:
        if self._stopping is None:
            return
        name, ref, deadline = self._stopping
        if ref.is_alive() and self.env.now() < deadline:
            self.set_timer("stop_poll", STOP_POLL_S)
            return
        if ref.is_alive():
            log.warning("%s did not stop within %gs; leaving it behind",
                        name, self.sup.child_stop_timeout_s)
        self._stop_next()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        # Nobody supervises the supervisor: end the process rather than run headless.
        self.hooks.error(f"Agent supervisor failed: {exception_value}")
        self.hooks.exit(1)

    # ------------------------------------------------------------ reports
    def status(self) -> dict[str, Any]:
        return {"phase": self.phase, "restarts": dict(self.restarts),
                "children": {n: bool(self.refs.get(n) is not None and self.refs[n].is_alive())
                             for n in self.started}}

    def _role_state(self, role: str) -> dict[str, Any]:
        if self.phase == "starting":
            return {"ok": False, "message": "agent is starting"}
        if self.phase != "running":
            return {"ok": False, "message": "agent is shutting down"}
        for name in self.started:
            ref = self.refs.get(name)
            if self.by_name[name].role in (role, "both") and (ref is None or not ref.is_alive()):
                return {"ok": False, "message": f"{name} is not running"}
        return {"ok": True, "message": "ok"}

    def known_servers(self) -> list[str]:
        """The client's servers: configured ones, plus this agent's own RPC when it is one."""
        servers = list(self.config.client.servers)
        if self.config.server.enabled:
            servers.append(self.ctx.addrs.rpc_adv)
        return sorted(set(servers))

    def health(self) -> dict[str, Any]:
        """Per role ``{"ok", "message"}`` (None when the role is off); the HTTP API shapes it.

        Until Raft exists the server is healthy when its actors run; the
        RaftPeer issue adds Nomad's ``no leader`` check here.
        """
        client = None
        if self.config.client.enabled:
            client = (self._role_state("client") if self.known_servers()
                      else {"ok": False, "message": "no known servers"})
        server = self._role_state("server") if self.config.server.enabled else None
        return {"server": server, "client": client}

    def self_info(self) -> dict[str, Any]:
        cfg, addrs = self.config, self.ctx.addrs
        stats: dict[str, dict[str, str]] = {}
        member: dict[str, Any] = {"Name": "", "Addr": None, "Port": 0, "Tags": None, "Status": "none",
                                  "ProtocolMin": 0, "ProtocolMax": 0, "ProtocolCur": 0,
                                  "DelegateMin": 0, "DelegateMax": 0, "DelegateCur": 0}
        if cfg.server.enabled:
            serf_ip, serf_port = addrs.serf_adv.rsplit(":", 1)
            rpc_ip, rpc_port = addrs.rpc_adv.rsplit(":", 1)
            tags = {"role": "nomad", "region": cfg.region, "dc": cfg.datacenter,
                    "build": self.ctx.version, "revision": "", "vsn": "1", "raft_vsn": "3",
                    "id": self.ctx.node_id, "rpc_addr": rpc_ip, "port": rpc_port}
            if cfg.server.bootstrap_expect == 1:
                tags["bootstrap"] = "1"
            if cfg.server.bootstrap_expect > 0:
                tags["expect"] = str(cfg.server.bootstrap_expect)
            # memberlist/serf protocol versions as Nomad's serf reports them.
            member.update(Name=f"{cfg.name}.{cfg.region}", Addr=serf_ip, Port=int(serf_port),
                          Tags=dict(sorted(tags.items())), Status="alive", ProtocolMin=1,
                          ProtocolMax=5, ProtocolCur=2, DelegateMin=2, DelegateMax=5, DelegateCur=4)
            stats["nomad"] = {"server": "true", "leader": "false", "leader_addr": "",
                              "bootstrap": str(cfg.server.bootstrap_expect == 1).lower(),
                              "known_regions": "1"}
            stats["raft"] = {}
            stats["serf"] = {}
        if cfg.client.enabled:
            stats["client"] = {"node_id": self.ctx.client_id,
                               "known_servers": ",".join(self.known_servers()),
                               "num_allocations": "0", "last_heartbeat": "", "heartbeat_ttl": "0s"}
        config = to_dict(cfg)
        # Nomad's agent Config also has the build's VersionInfo (the web UI and `nomad agent-info` read
        # it) and its consul and vault blocks as lists (Consuls, Vaults: one cluster each here).
        config["Version"] = {"BuildDate": "0001-01-01T00:00:00Z", "Revision": "", "Version": self.ctx.version,
                             "VersionPrerelease": "", "VersionMetadata": ""}
        for one, many in (("Consul", "Consuls"), ("Vault", "Vaults")):
            config[many] = [config[one]] if config.get(one) is not None else None
        return {"config": config, "member": member, "stats": stats}


def apply_keys(old: Config, new: Config, keys: list[str]) -> Config:
    """*old* with the dotted file keys in *keys* taken from *new* (the reloadable ones)."""
    out = old
    for key in keys:
        out = _replace_path(out, new, key.split("."))
    return out


def _replace_path(old: Any, new: Any, path: list[str]) -> Any:
    fields = {f.name[:-2] if f.metadata.get("dur") else f.name: f.name for f in dataclasses.fields(old)}
    attr = fields[path[0]]
    if len(path) == 1:
        value = getattr(new, attr)
    else:
        value = _replace_path(getattr(old, attr), getattr(new, attr), path[1:])
    return dataclasses.replace(old, **{attr: value})
