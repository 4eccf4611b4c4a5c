"""The agent process (Nomad ``command/agent/command.go`` ``Command.Run``).

``bin/nomad-agent`` patches gevent and calls :func:`main`, which:

1. parses flags and files (one ``==> <reason>`` line on stderr and exit 1
   when they are bad), evaluates the go-sockaddr templates of its addresses
   (:func:`resolve_addr_templates`), prints the warnings and ``Loaded
   configuration from ...``;
2. sets up Nomad-shaped logging, held back until the banner;
3. creates and locks the data dir and loads or creates the node IDs;
4. binds the HTTP listener (so a taken port fails here, clearly);
5. spawns the :class:`~actors.agent.Agent` supervisor on a
   :class:`~runtime.prod.ProdNode`, which starts the actor tree;
6. prints the banner, releases the logs, routes OS signals to the signal
   router, tells systemd ``READY=1``, and waits for the agent's exit code.

Everything the actors need from the process goes through :class:`Process`,
the production :class:`~actors.agent_messages.ProcessHooks`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import platform
import signal
import socket
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import gevent
import gevent.event
import gevent.util
import psutil
import pykka

from actors.agent import VERSION, Agent, AgentAddrs, AgentContext
from actors.agent_messages import GetStatus, OsSignal
from actors.gossip.keyring import normalize_key
from actors.http_api import bind_listener
from actors.metrics import Metrics
from actors.raft.sqlite_store import SqliteStorage
from actors.raft.storage import MemoryStorage, StorageError
from actors.signals import HANDLED_SIGNALS, SIGQUIT_EXIT_CODE
from runtime.config import Config, ConfigError, parse_args
from runtime.datadir import AgentState, DataDirError, open_state
from runtime.gossip_crypto import GossipCrypto, KeyringError, load_keyring_file, save_keyring_file
from runtime.logging_setup import LogControl, LogFileHandler, setup_logging, syslog_handler
from runtime.metrics_sinks import StatsdSink
from runtime.prod import ProdNode
from runtime.serf_snapshot import SerfSnapshot
from runtime.snapshotter import ForkSnapshotter
from runtime.sockaddr import (
    NO_ADDRESS,
    Provider,
    SockaddrError,
    go_quote,
    host_interfaces,
    is_template,
    parse,
    parse_multiple_ip_template,
    parse_single_ip_template,
)
from runtime.tls import TlsEdge, TlsError, TlsSettings
from runtime.transport import GossipTransport, TcpTransport, TransportConfig

__all__ = ["Console", "Process", "banner_info", "main", "resolve_addr_templates", "resolve_addrs"]

log = logging.getLogger("agent")

# Building the actor tree takes milliseconds; an agent not running after
# this has a wedged child, and start-up fails rather than hangs.
STARTUP_TIMEOUT_S = 10.0
# The final sweep over whatever actors remain after the agent has stopped its
# children (normally only the agent itself): per actor.
TEARDOWN_TIMEOUT_S = 2.0
# Nomad's info-block key column width (command.go: padding := 18).
BANNER_PADDING = 18
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386"}


class Console:
    """Nomad's ``PrefixedUi``: ``==> `` output on stdout, errors on stderr.

    With ``-log-json`` Nomad sends UI output through the logger instead
    (``HcLogUI``), so machines see only JSON lines.
    """

    def __init__(self, out: TextIO, err: TextIO, *, json_log: bool = False) -> None:
        self.out, self.err, self.json_log = out, err, json_log

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # the terminal went away; keep running
            pass

    def output(self, line: str) -> None:
        if self.json_log:
            if line.strip():
                log.info(line.strip())
        else:
            self._write(self.out, f"==> {line}" if line else "")

    def info(self, line: str) -> None:
        if self.json_log:
            if line.strip():
                log.info(line.strip())
        else:
            self._write(self.out, f"    {line}" if line else "")

    def warn(self, line: str) -> None:
        if self.json_log:
            log.warning(line)
        else:
            self._write(self.err, line)

    def error(self, line: str) -> None:
        if self.json_log:
            log.error(line)
        else:
            self._write(self.err, f"==> {line}")


class Process:
    """The production :class:`~actors.agent_messages.ProcessHooks`."""

    def __init__(self, argv: list[str], console: Console, logs: LogControl,
                 state: AgentState | None = None) -> None:
        self.argv = argv
        self.console = console
        self.logs = logs
        self.state = state
        self.done: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def output(self, line: str) -> None:
        self.console.output(line)

    def error(self, line: str) -> None:
        self.console.error(line)

    def write_stderr(self, text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def load_config(self) -> Config:
        cfg, _, _ = parse_args(self.argv, reload=True)
        return resolve_addr_templates(resolve_name(cfg))

    def set_log_level(self, level: str) -> None:
        self.logs.set_level(level)

    def notify(self, state: str) -> None:
        if state.startswith("RELOADING"):
            state += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        sd_notify(state)

    def dump_stacks(self) -> str:
        return "\n".join(gevent.util.format_run_info()) + "\n"

    def exit(self, code: int, *, force: bool = False) -> None:
        if not force:
            if not self.done.ready():
                self.done.set(code)
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        if self.state is not None:
            self.state.release()
        os._exit(code)

    def wait(self) -> int:
        return int(self.done.get())


def sd_notify(state: str) -> None:
    """systemd's notify protocol: a datagram to ``$NOTIFY_SOCKET`` (no-op without it)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(state.encode())
    except OSError as e:
        log.debug("notify socket could not be accessed: error=%s", e)


# ---------------------------------------------------------------- config → facts


def resolve_name(cfg: Config) -> Config:
    """``name`` defaults to the hostname (Nomad ``DefaultConfig``)."""
    return cfg if cfg.name else dataclasses.replace(cfg, name=socket.gethostname())


class AddrTemplateError(ConfigError):
    """An address template that does not evaluate to what its key needs (Nomad's normalizeAddrs)."""


def resolve_addr_templates(cfg: Config, host: Provider = host_interfaces) -> Config:
    """*cfg* with its addresses' go-sockaddr templates evaluated over *host*'s interfaces, as Nomad's
    ``normalizeAddrs`` does when the agent starts (``bind_addr = "{{ GetPrivateIP }}"``, ``addresses``
    and ``advertise`` alike); a plain address is kept as it is.  AddrTemplateError with Nomad's message
    (``Bind address resolution failed: unable to parse address template ...``) when a template does
    not parse or run, gives several addresses where one is needed, or (unlike Nomad, which then binds
    every interface) none at all.  An advertise template that gives nothing is as if it were unset.
    The serf advertise address is evaluated on servers only, as Nomad's."""
    def single(value: str, prefix: str) -> str:
        try:
            out = parse_single_ip_template(value, host)
        except SockaddrError as e:
            raise AddrTemplateError(f"{prefix}{e}") from None
        if not out:
            raise AddrTemplateError(f"{prefix}{NO_ADDRESS}")
        return out

    bind = single(cfg.bind_addr, "Bind address resolution failed: ")
    addresses = {}
    http = cfg.addresses.http
    if http is not None:
        try:
            https = [a for a in parse_multiple_ip_template(http, host) if a]
        except SockaddrError as e:
            raise AddrTemplateError(f"Failed to parse HTTP address: {e}") from None
        if not https:
            raise AddrTemplateError(f"Failed to parse HTTP address: {NO_ADDRESS}")
        if len(https) > 1:  # Nomad serves HTTP on each; this agent has one HTTP listener
            raise AddrTemplateError(f"Failed to parse HTTP address: {len(https)} addresses found "
                                    f"({' '.join(https)}); this agent serves HTTP on one address, "
                                    "please configure one")
        addresses["http"] = https[0]
    for svc, name in (("rpc", "RPC"), ("serf", "Serf")):
        value = getattr(cfg.addresses, svc)
        if value is not None:
            addresses[svc] = single(value, f"Failed to parse {name} address: ")
    advertise = {}
    for svc, name in (("http", "HTTP"), ("rpc", "RPC"), ("serf", "Serf")):
        value = getattr(cfg.advertise, svc)
        if value is None:
            continue
        if svc == "serf" and not cfg.server.enabled:  # Nomad skips a client's: it has no serf
            if is_template(value):
                advertise[svc] = None
            continue
        where = (f"Failed to parse HTTP advertise address ({value}, {addresses.get('http') or bind}, "
                 f"{cfg.ports.http}, {str(cfg.dev_mode).lower()}): " if svc == "http" else
                 f"Failed to parse {name} advertise address: ")
        try:
            advertise[svc] = parse_single_ip_template(value, host) or None
        except SockaddrError as e:
            raise AddrTemplateError(f"{where}Error parsing advertise address template: {e}") from None
    client = cfg.client
    if client.enabled and client.network_interface:  # Nomad's parseSingleInterfaceTemplate
        client = dataclasses.replace(client, network_interface=_interface_template(client.network_interface,
                                                                                   host))
    return dataclasses.replace(cfg, bind_addr=bind,
                               addresses=dataclasses.replace(cfg.addresses, **addresses),
                               advertise=dataclasses.replace(cfg.advertise, **advertise), client=client)


def _interface_template(text: str, host: Provider) -> str:
    """``client.network_interface`` as Nomad takes it: a go-sockaddr template giving one interface's
    name (``{{ GetDefaultInterfaces | attr "name" }}``), or a name; the name must be the host's."""
    where = "Failed to parse network-interface: "
    if not is_template(text):
        return text
    try:
        net = host()
        out = parse(text, net).strip()
    except SockaddrError as e:
        raise AddrTemplateError(f"{where}{e}") from None
    except Exception as e:  # the host's interfaces could not be read
        raise AddrTemplateError(f"{where}unable to query interface addresses: {e}") from None
    if not out:
        raise AddrTemplateError(f"{where}template {go_quote(text, plus=False)} evaluated to empty result")
    if out not in {i.name for i in net.interfaces}:
        raise AddrTemplateError(f"{where}invalid interface name {go_quote(out, plus=False)}")
    return out


def detect_ip() -> str:
    """An address to advertise when bound to a wildcard: Nomad's ``GetPrivateIP``.

    The first private IPv4 address of an interface that is up, else any
    non-loopback IPv4 address, else loopback.
    """
    candidates: list[str] = []
    stats = psutil.net_if_stats()
    for iface, addrs in sorted(psutil.net_if_addrs().items()):
        if iface in stats and not stats[iface].isup:
            continue
        candidates += [a.address for a in addrs if a.family == socket.AF_INET
                       and not a.address.startswith("127.")]
    private = [ip for ip in candidates if ip.startswith(("10.", "192.168."))
               or (ip.startswith("172.") and 16 <= int(ip.split(".")[1]) <= 31)]
    return (private or candidates or ["127.0.0.1"])[0]


def resolve_addrs(cfg: Config, http_port: int) -> AgentAddrs:
    """Bind and advertise ``ip:port`` per service (Nomad ``normalizeAddrs``)."""
    detected: list[str] = []

    def advertise(bind: str, override: str | None) -> str:
        if override:
            return override
        if bind not in ("0.0.0.0", "::", ""):
            return bind
        if not detected:
            detected.append(detect_ip())
        return detected[0]

    def join(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    out: dict[str, str] = {}
    for svc, port in (("http", http_port), ("rpc", cfg.ports.rpc), ("serf", cfg.ports.serf)):
        bind = getattr(cfg.addresses, svc) or cfg.bind_addr
        adv = advertise(bind, getattr(cfg.advertise, svc))
        out[f"{svc}_bind"] = join(bind, port)
        # with a port: "[v6]:port" or "host:port"; a bare IPv6 address (two colons or more) gets the
        # port, as Nomad's normalizeAdvertise does on SplitHostPort's "too many colons"
        has_port = "]:" in adv if adv.startswith("[") else adv.count(":") == 1
        out[f"{svc}_adv"] = adv if has_port else join(adv.removeprefix("[").removesuffix("]"), port)
    return AgentAddrs(**out)


def banner_info(cfg: Config, addrs: AgentAddrs, node_id: str) -> list[str]:
    """The ``Nomad agent configuration:`` block: sorted keys, Title Case, right-aligned."""
    server = cfg.server.enabled
    rpc_serf = f"; RPC: {addrs.rpc_adv}; Serf: {addrs.serf_adv}" if server else ""
    info = {
        "advertise addrs": f"HTTP: {addrs.http_adv}{rpc_serf}",
        "bind addrs": f"HTTP: [{addrs.http_bind}]"
                      + (f"; RPC: {addrs.rpc_bind}; Serf: {addrs.serf_bind}" if server else ""),
        "client": str(cfg.client.enabled).lower(),
        "log level": cfg.log_level,
        "region": f"{cfg.region} (DC: {cfg.datacenter})",
        "server": str(server).lower(),
        "version": VERSION,
    }
    if server:
        info["node id"] = node_id
    return [f"{' ' * (BANNER_PADDING - len(k))}{k.title()}: {info[k]}" for k in sorted(info)]


# ---------------------------------------------------------------- runtime stats


# The census (greenlets started and not finished, memory blocks allocated)
# costs ~1.5 ms at 12 million blocks; the gauges it feeds are trends, so a
# census this old is reused.  (It once walked every gc-tracked object: 157 ms
# at 3 million objects, a stall of the whole agent every period on a server
# holding a large state.)
CENSUS_MAX_AGE_S = 10.0


# A collection that holds every greenlet this long is reported in the log:
# it is a stall of the whole agent (Raft heartbeats, HTTP answers), and past
# the Raft heartbeat timeout (1 s) it costs an election.
GC_PAUSE_LOG_S = 0.2


class RuntimeProbe:
    """Reads this process for the runtime gauges and ``stats.runtime`` (an edge)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.proc = psutil.Process()
        self._census: tuple[float, tuple[int, int]] | None = None
        # Every gevent Greenlet started since watch_greenlets() (weakly held):
        # Go's NumGoroutine without walking the heap.
        self._greenlets: weakref.WeakSet[Any] = weakref.WeakSet()
        # go-metrics' total_gc_pause_ns, measured around each collection
        # (gc.callbacks: "start" and "stop" bracket the collection itself).
        self.gc_pause_ns = 0
        self._gc_started = 0
        # (generation, seconds, collected) of long collections, not yet logged
        self._long_pauses: list[tuple[int, float, int]] = []

    def watch_greenlets(self) -> None:
        gevent.Greenlet.add_spawn_callback(self._greenlets.add)

    def unwatch_greenlets(self) -> None:
        gevent.Greenlet.remove_spawn_callback(self._greenlets.add)

    def watch_gc(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # Runs inside the allocation that triggered the collection: no logging here.
        if phase == "start":
            self._gc_started = time.perf_counter_ns()
        elif self._gc_started:
            took = time.perf_counter_ns() - self._gc_started
            self._gc_started = 0
            self.gc_pause_ns += took
            if took >= GC_PAUSE_LOG_S * 1e9 and len(self._long_pauses) < 16:
                self._long_pauses.append((info.get("generation", -1), took / 1e9, info.get("collected", 0)))

    def log_long_pauses(self) -> None:
        pauses, self._long_pauses = self._long_pauses, []
        for generation, seconds, collected in pauses:
            log.warning("garbage collection (generation %d) held the agent for %.0f ms; %d objects freed",
                        generation, seconds * 1e3, collected)

    def census(self) -> tuple[int, int]:
        """(greenlets, gc-tracked objects), at most :data:`CENSUS_MAX_AGE_S` old."""
        now = time.monotonic()
        if self._census is None or now - self._census[0] >= CENSUS_MAX_AGE_S:
            t0 = time.perf_counter()
            self._census = (now, self._take_census())
            took = time.perf_counter() - t0
            if took >= GC_PAUSE_LOG_S:
                log.warning("heap census (%d objects) held the agent for %.0f ms",
                            self._census[1][1], took * 1e3)
        return self._census[1]

    def _take_census(self) -> tuple[int, int]:
        """(live greenlets, allocated memory blocks: Go's heap_objects counts allocations too)."""
        live = sum(1 for g in list(self._greenlets) if not g.dead)
        return live + 2, sys.getallocatedblocks()  # + the main greenlet and the hub

    def sample(self) -> Iterable[tuple[tuple[str, ...], float]]:
        """go-metrics' runtime gauges, in Python terms (num_goroutines = greenlets)."""
        self.log_long_pauses()
        greenlets, objects = self.census()
        mem = self.proc.memory_info()
        return [(("runtime", "num_goroutines"), greenlets),
                (("runtime", "total_gc_pause_ns"), self.gc_pause_ns),
                (("runtime", "sys_bytes"), mem.rss),
                # Go's heap bytes in use; here the process's private resident memory (RSS less the
                # shared pages of the interpreter and libraries), read with RSS.
                (("runtime", "alloc_bytes"), max(0, mem.rss - getattr(mem, "shared", 0))),
                (("runtime", "heap_objects"), objects),
                (("runtime", "total_gc_runs"), sum(s["collections"] for s in gc.get_stats())),
                (("agent", "uptime"), time.monotonic() - self.started)]

    def info(self) -> dict[str, str]:
        """Nomad's ``RuntimeStats()`` map for ``/v1/agent/self``."""
        return {"kernel.name": sys.platform, "arch": _GO_ARCH.get(platform.machine(), platform.machine()),
                "version": f"{platform.python_implementation()} {platform.python_version()}",
                "max_procs": "1",  # greenlets run on one OS thread
                "goroutines": str(self.census()[0]), "cpu_count": str(os.cpu_count() or 1)}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)  # journald and tests read lines as they come
    plain = Console(sys.stdout, sys.stderr)
    if any(a in ("-h", "-help", "--help") for a in argv):
        sys.stdout.write(usage())
        return 0
    try:
        cfg, loaded, warnings = parse_args(argv)
    except ConfigError as e:
        plain.error(str(e))
        return 1
    try:
        cfg = resolve_addr_templates(resolve_name(cfg))
    except AddrTemplateError as e:
        plain.error(str(e))
        return 1
    console = Console(sys.stdout, sys.stderr, json_log=cfg.log_json)
    logs = setup_logging(cfg.log_level, json_format=cfg.log_json, include_location=cfg.log_include_location)
    sinks: list[tuple[str, Callable[[], logging.Handler]]] = []
    if cfg.log_file is not None:
        sinks.append(("log_file", lambda: LogFileHandler(
            cfg.log_file or "", duration_s=cfg.log_rotate_duration_s, max_bytes=cfg.log_rotate_bytes,
            max_files=cfg.log_rotate_max_files)))
    if cfg.enable_syslog:
        sinks.append(("syslog", lambda: syslog_handler(cfg.syslog_facility)))
    for what, make in sinks:
        try:
            logs.add(make(), cfg.log_json)
        except OSError as e:  # Nomad exits 1 when its log file or syslog cannot be set up
            plain.error(f"Error setting up {what}: {e}")
            logs.close()
            return 1
    for warning in warnings:
        (console.error if warning.startswith("WARNING") else console.warn)(warning)
    console.output(f"Loaded configuration from {', '.join(loaded)}" if loaded
                   else "No configuration files loaded")
    console.output("Starting Nomad agent...")
    raise_open_files_limit()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        state = open_state(cfg)
    except DataDirError as e:
        console.error(f"Error starting agent: {e}")
        logs.open_gate()
        return 1
    try:
        return _run(argv, cfg, console, logs, state)
    finally:
        logs.open_gate()
        state.release()


# Python's cyclic collector runs a young-generation pass every 700 net
# allocations by default; a busy server allocates that many in well under a
# millisecond (messages, frames, records), so the passes cost 7-11% of its
# CPU.  Every 50,000 keeps the young generation to a few MB and cut CPU per
# job registration from 550 to 436 us in-process (nomad-bench api).
# A middle-generation pass scans every object that survived the young
# passes since the last one: after 20 of them (up to a million objects of a
# growing state store) a server was held 244 ms under nomad-bench api.
# After 4 the longest pass is ~5x shorter for the same total work (a model
# of the register load: 229 -> 68 ms); the full collection is still
# considered every 400 young passes (4 x 100), as with 20 x 20.
GC_THRESHOLDS = (50_000, 4, 100)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go (and so Nomad) does at start.

    A server holds a connection per client talking to it plus Raft, gossip
    and HTTP sockets; the usual soft limit of 1,024 would stop a cluster of
    a few hundred nodes.  Returns the (soft, hard) limits now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as e:
            logging.getLogger("agent").warning("cannot raise the open files limit from %d to %d: %s",
                                               soft, want, e)
    return soft, hard


def usage() -> str:
    """``nomad agent -h``, abridged: the flags this agent accepts."""
    from runtime.config_flags import FLAGS

    names = ["-dev", "-config=<path>", *(f"-{n}" if k is bool else f"-{n}=<{_KIND.get(k, 'value')}>"
                                         for n, (_, k) in sorted(FLAGS.items()))]
    return ("Usage: nomad-agent [options]\n\n"
            "  Starts a Nomad agent: a server, a client, or both (-dev), configured by\n"
            "  Nomad's HCL or JSON config files, or TOML with the same keys (-config,\n"
            "  repeatable, merged in order; a directory's *.hcl, *.json and *.toml files)\n"
            "  and these flags, merged over the files:\n\n"
            + "".join(f"  {n}\n" for n in names))


_KIND = {int: "int", str: "string", "dur": "duration", "list": "value, repeatable",
         "csv": "a,b", "kv": "key=value, repeatable"}


def _run(argv: list[str], cfg: Config, console: Console, logs: LogControl, state: AgentState) -> int:
    http_host = cfg.addresses.http or cfg.bind_addr
    try:
        listener = bind_listener(http_host, cfg.ports.http)
    except OSError as e:
        console.error(f"Error starting http server: listen tcp {http_host}:{cfg.ports.http}: "
                      f"{e.strerror or e}")
        return 1
    addrs = resolve_addrs(cfg, listener.getsockname()[1])
    tel = cfg.telemetry
    metrics = Metrics(clock=time.time, interval_s=tel.in_memory_collection_interval_s,
                      retain_s=max(tel.in_memory_retention_period_s, tel.in_memory_collection_interval_s),
                      hostname=None if tel.disable_hostname else socket.gethostname(),
                      prefix_filter=tel.prefix_filter, filter_default=tel.filter_default)
    if tel.statsd_address:
        metrics.sinks.append(StatsdSink(tel.statsd_address))
    if tel.datadog_address:
        metrics.sinks.append(StatsdSink(tel.datadog_address, dogstatsd=True, tags=tel.datadog_tags))
    for sink in metrics.sinks:
        sink.start()
    process = Process(argv, console, logs, state)
    probe = RuntimeProbe()
    probe.watch_greenlets()  # before the edges and actors start theirs
    node = ProdNode(addrs.rpc_adv, supervisor="agent")
    try:
        # tls block: the contexts the RPC transport and the HTTP server wrap sockets with.
        tls = (TlsEdge(TlsSettings.from_config(cfg), server_only=RAFT_ACTORS)
               if cfg.tls.rpc or cfg.tls.http else None)
    except TlsError as e:
        console.error(f"Error starting agent: {e}")
        listener.close()
        probe.unwatch_greenlets()
        return 1
    try:
        raft_storage, transport = _server_edges(cfg, addrs, state, node, tls)
    except (OSError, StorageError, KeyringError) as e:
        console.error(f"Error starting agent: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
        listener.close()
        probe.unwatch_greenlets()
        return 1
    if transport is not None and addrs.rpc_bind.endswith(":0"):
        # Port 0 (tests): advertise the port the kernel gave us.
        port = transport.address.rsplit(":", 1)[1]
        addrs = dataclasses.replace(addrs, rpc_bind=transport.address,
                                    rpc_adv=addrs.rpc_adv.rsplit(":", 1)[0] + ":" + port)
        node.node = addrs.rpc_adv
    if isinstance(transport, _Both) and addrs.serf_bind.endswith(":0"):
        port = transport.gossip.address.rsplit(":", 1)[1]
        addrs = dataclasses.replace(addrs, serf_bind=transport.gossip.address,
                                    serf_adv=addrs.serf_adv.rsplit(":", 1)[0] + ":" + port)
    bootstrap = (addrs.rpc_adv,) if cfg.server.enabled and cfg.server.bootstrap_expect == 1 else ()
    crypto = transport.gossip.crypto if isinstance(transport, _Both) else None
    ctx = AgentContext(hooks=process, metrics=metrics, node_id=state.node_id,
                       client_id=state.client_id, client_secret_id=state.secret_id, addrs=addrs,
                       http_listener=listener,
                       sampler=_edge_sampler(probe, transport, tls), runtime_info=probe.info,
                       gossip_keyring=crypto.keyring.keys if crypto is not None else (),
                       gossip_keyring_sink=crypto.install if crypto is not None else None,
                       raft_storage=raft_storage, raft_bootstrap=bootstrap,
                       raft_snapshotter=ForkSnapshotter() if raft_storage is not None else None,
                       serf_snapshot=_serf_snapshot(cfg, state) if raft_storage is not None else None,
                       client_state_dir=_client_state_dir(cfg, state), tls=tls)
    # Routed from here on: a stop signal during start-up ends the process at
    # once (there is nothing to leave yet) instead of raising KeyboardInterrupt.
    watchers = _route_signals(node, process)
    probe.watch_gc()
    try:
        agent = node.spawn(Agent, "agent", cfg, ctx)
        try:
            phase = agent.ask(GetStatus(), timeout=STARTUP_TIMEOUT_S)["phase"]
        except pykka.Timeout:
            phase = f"not running after {STARTUP_TIMEOUT_S:g}s"
        if phase != "running":
            console.error(f"Error starting agent: the agent is {phase} (see the log)")
            logs.open_gate()
            process.done.wait(STARTUP_TIMEOUT_S)
            return 1
        console.output("Nomad agent configuration:\n")
        for line in banner_info(cfg, addrs, state.node_id):
            console.info(line)
        console.output("")
        console.output("Nomad agent started! Log data will stream in below:\n")
        logs.open_gate()
        process.notify("READY=1")
        return process.wait()
    finally:
        for watcher in watchers:
            watcher.cancel()
        node.stop_all(timeout_s=TEARDOWN_TIMEOUT_S)
        if transport is not None:
            transport.stop()
        listener.close()
        probe.unwatch_gc()
        probe.unwatch_greenlets()


def _server_edges(cfg: Config, addrs: AgentAddrs, state: AgentState,
                  node: ProdNode, tls: TlsEdge | None = None) -> tuple[Any, Any]:
    """A server's Raft store and RPC transport; (None, None) on a client.

    The store is opened here, before any actor starts, so a corrupt or locked
    store is one clear error line and exit 1 (``StorageCorrupt`` names the
    file).  ``-dev`` keeps Raft in memory, as Nomad's dev mode does.
    """
    if not cfg.server.enabled:
        if not cfg.client.enabled:
            return None, None
        # A client-only agent listens on its RPC port too: servers answer
        # registrations and heartbeats to it there.
        rpc = TcpTransport(addrs.rpc_bind, node.deliver_envelope, config=rpc_transport_config(cfg), tls=tls)
        rpc.on_peer_lost = node.peer_lost
        try:
            rpc.start()
        except OSError as e:
            raise _listen_error(addrs.rpc_bind, e) from None
        node.transport = rpc
        return None, rpc
    if cfg.dev_mode or state.data_dir is None:
        storage: Any = MemoryStorage()
    else:
        raft_dir = os.path.join(state.data_dir, "server", "raft")
        os.makedirs(raft_dir, mode=0o700, exist_ok=True)
        storage = SqliteStorage(os.path.join(raft_dir, "raft.db"), use_threadpool=True)
        try:
            storage.verify()
            # Outage recovery (Nomad's setupRaft): a peers.json beside the store sets the configuration.
            from actors.state.store import StateStore
            from runtime.raft_recovery import check_peers_json

            check_peers_json(raft_dir, storage, StateStore)
        except StorageError:
            storage.close()
            raise
    transport = TcpTransport(addrs.rpc_bind, node.deliver_envelope, config=rpc_transport_config(cfg),
                             tls=tls)
    transport.on_peer_lost = node.peer_lost
    try:
        transport.start()
    except OSError as e:
        storage.close()
        raise _listen_error(addrs.rpc_bind, e) from None
    node.transport = transport
    from actors.gossip.messages import PUSH_PULL_TYPES

    try:
        crypto = gossip_crypto(cfg, state)
    except KeyringError:
        transport.stop()
        storage.close()
        raise
    gossip = GossipTransport(addrs.serf_bind, node.deliver_envelope, stream_types=PUSH_PULL_TYPES,
                             crypto=crypto, config=_gossip_transport_config(cfg))
    gossip.on_peer_lost = node.peer_lost
    try:
        gossip.start()
    except OSError as e:
        transport.stop()
        storage.close()
        raise OSError(e.errno, f"listen udp/tcp {addrs.serf_bind}: {e.strerror or e}") from None
    node.routes["gossip"] = gossip
    return storage, _Both(transport, gossip)


def _serf_snapshot(cfg: Config, state: AgentState) -> SerfSnapshot | None:
    """Nomad's ``<data_dir>/server/serf/snapshot``, replayed now; none in -dev mode."""
    if cfg.dev_mode or state.data_dir is None:
        return None
    serf_dir = os.path.join(state.data_dir, "server", "serf")
    os.makedirs(serf_dir, mode=0o755, exist_ok=True)
    return SerfSnapshot(os.path.join(serf_dir, "snapshot"), rejoin_after_leave=cfg.server.rejoin_after_leave)


# ---------------------------------------------------------------- security edges (issue 10)

KEYRING_FILE = "serf.keyring"  # Nomad: <data_dir>/server/serf.keyring
# Actors only servers may message with tls.verify_server_hostname (Nomad's validateRaftTLS).
RAFT_ACTORS = ("raft",)


def gossip_crypto(cfg: Config, state: AgentState) -> GossipCrypto | None:
    """The gossip keyring, as Nomad's ``setupKeyrings``; None when gossip is not encrypted.

    An existing ``serf.keyring`` wins (it holds keys rotated since the first
    start); otherwise ``server.encrypt`` starts it, and the file is written so
    a restart keeps what later rotations change.  -dev keeps it in memory.
    """
    path = None
    if not cfg.dev_mode and state.data_dir is not None:
        path = os.path.join(state.data_dir, "server", KEYRING_FILE)
    if path is not None and os.path.exists(path):
        keys = load_keyring_file(path)
        if cfg.server.encrypt and normalize_key(cfg.server.encrypt) not in keys:
            log.warning("server.encrypt is not in the keyring %s: using the keyring's keys "
                        "(they survive rotation; remove the file to start from server.encrypt)", path)
        return GossipCrypto(keys, path=path)
    if not cfg.server.encrypt:
        return None
    crypto = GossipCrypto([normalize_key(cfg.server.encrypt)], path=path)
    if path is not None:
        save_keyring_file(path, crypto.keyring.keys)
    return crypto


def rpc_transport_config(cfg: Config) -> TransportConfig:
    """The RPC port's limits: per-IP connections and the first-frame deadline (``limits``)."""
    return TransportConfig(max_conns_per_client=cfg.limits.rpc_max_conns_per_client,
                           handshake_timeout_s=cfg.limits.rpc_handshake_timeout_s)


def _gossip_transport_config(cfg: Config) -> TransportConfig:
    """Gossip streams take the same per-IP and handshake limits as RPC (Nomad applies them to the
    RPC listener only; the serf port is as exposed, so we bound it too)."""
    return rpc_transport_config(cfg)


def _edge_sampler(probe: RuntimeProbe, transport: Any, tls: TlsEdge | None = None) -> Any:
    """The runtime gauges plus the network edges' refusals (decrypt failures, limits, timeouts)."""
    def sample() -> list[tuple[tuple[str, ...], float]]:
        out = list(probe.sample())
        rpc = transport.rpc if isinstance(transport, _Both) else transport
        if isinstance(rpc, TcpTransport):
            st = rpc.stats
            out += [(("rpc", "conn_limit_refused"), st["refused_conn_limit"]),
                    (("rpc", "handshake_timeouts"), st["handshake_timeouts"]),
                    (("rpc", "bad_frames"), st["bad_frames"]),
                    (("rpc", "tls_refused"), st["tls_refused"])]
        if isinstance(transport, _Both):
            st = transport.gossip.stats
            out += [(("memberlist", "decrypt_failed"),
                     st.get("udp_decrypt_failed", 0) + st.get("tcp_decrypt_failed", 0)),
                    (("memberlist", "bad_packets"),
                     st.get("udp_bad_frames", 0) + st.get("tcp_bad_frames", 0))]
        from actors.http_limits import HTTP_LIMIT_STATS

        out.append((("http", "conn_limit_refused"), HTTP_LIMIT_STATS["refused_conn_limit"]))
        if tls is not None:  # refused HTTPS handshakes; Raft messages dropped for a non-server certificate
            out += [(("http", "tls_refused"), tls.stats["http_refused"]),
                    (("rpc", "tls_role_dropped"), tls.stats["rpc_role_dropped"])]
        return out
    return sample


def _listen_error(addr: str, e: OSError) -> OSError:
    """Go's wording for a port that cannot be listened on: ``listen tcp <addr>: bind: <reason>``
    (not Python's ``[Errno 98] ...: ('127.0.0.1', 4647)``)."""
    reason = os.strerror(e.errno).lower() if e.errno else str(e)
    return OSError(e.errno, f"Failed to start RPC layer: listen tcp {addr}: bind: {reason}")


def _client_state_dir(cfg: Config, state: AgentState) -> str | None:
    if not cfg.client.enabled:
        if cfg.server.enabled and os.geteuid() == 0 and not cfg.dev_mode:
            logging.getLogger("agent").warning(
                "running a server-only agent as root: a server needs no privileges; run it as an "
                "unprivileged user owning only its data_dir (docs/nomad-server.service)")
        return None
    from actors.client.node import client_permission_warnings

    for warning in client_permission_warnings(os.geteuid()):
        logging.getLogger("nomad.client").warning(warning)
    path = cfg.client.state_dir or os.path.join(state.data_dir or "", "client")
    alloc = cfg.client.alloc_dir or os.path.join(state.data_dir or "", "alloc")
    # The client's state dir is 0700 and the agent's own (Nomad's StateDir).  The alloc dir is Nomad's
    # 0711: nobody may list it, but a task running as another user (``user = "nobody"``) must be able
    # to pass through it to its own NOMAD_TASK_DIR and NOMAD_ALLOC_DIR, by their absolute paths.
    for d, mode in ((path, 0o700), (alloc, 0o711)):
        os.makedirs(d, mode=mode, exist_ok=True)
        os.chmod(d, mode)
    return path


class _Both:
    """Stops the RPC and gossip transports together."""

    def __init__(self, rpc: TcpTransport, gossip: GossipTransport) -> None:
        self.rpc, self.gossip = rpc, gossip

    @property
    def address(self) -> str:
        return self.rpc.address

    def stop(self) -> None:
        self.gossip.stop()
        self.rpc.stop()


def _route_signals(node: ProdNode, process: Process) -> list[Any]:
    """``gevent.signal_handler`` for each handled signal; the handler only tells the router."""

    def deliver(name: str) -> None:
        ref = node.lookup("signals")
        if ref is not None and ref.is_alive():
            node.deliver("signals", OsSignal(name=name))
            return
        # No router (start-up, a restart, or the very end of the shutdown): a
        # stop signal must still stop the process.
        if name in ("SIGINT", "SIGTERM", "SIGQUIT"):
            process.write_stderr(f"==> Caught signal {name} without a signal router; exiting\n")
            process.exit(SIGQUIT_EXIT_CODE if name == "SIGQUIT" else 1, force=True)

    return [gevent.signal_handler(getattr(signal, name), deliver, name) for name in HANDLED_SIGNALS]
