"""``nomad operator debug``: a support bundle of the cluster, as Nomad's ``command/operator_debug.go``.

Over ``-duration`` (Nomad's default 5m) it captures, into ``nomad-debug-<UTC timestamp>``:

* ``cluster/``: ``cli-flags.json`` (the flags, sensitive ones ``[redacted]``), ``nodes.json``,
  ``members.json``, ``leader.json``, ``agent-self.json`` (the agent redacts its own secrets: the
  gossip key, tokens), ``namespaces.json``, ``regions.json`` and, with ``-event-topic``,
  ``eventstream.json`` (one event a line, from ``-event-index`` on).
* ``server/<name>/`` and ``client/<node id>/`` for the agents ``-server-id`` / ``-node-id``
  (``-node-class``, ``-max-nodes``) select: ``monitor.log`` (``/v1/agent/monitor`` at
  ``-log-level`` for the whole capture; an agent that refuses writes Nomad's ``monitor: <error>``
  line), ``agent-host.json`` (``/v1/agent/host``) and the pprof profiles the agent has.  This agent
  serves one: ``goroutine`` (its greenlets' stacks as text), saved as Nomad names the panic-format
  dump, ``goroutine-debug2_NNNN.txt``, every ``-pprof-interval``; Go's binary profiles (cpu, heap,
  trace, threadcreate) do not exist here and are not asked for.
* ``interval/NNNN/`` every ``-interval`` (the first at once): jobs, deployments, evaluations,
  allocations, nodes, CSI plugins and volumes (newline-delimited JSON), ``metrics.json``,
  ``operator-raft.json``, ``operator-scheduler.json``, ``operator-autopilot-health.json`` and
  ``license.json`` (CE: ``{"Error":"Nomad Enterprise only endpoint"}``, as Nomad's API client).
* Consul (``-consul-http-addr`` / ``CONSUL_HTTP_ADDR``) and Vault (``-vault-address`` /
  ``VAULT_ADDR``) status when an address is known, as Nomad's.
* ``index.json`` and ``index.html``: the files written, as Nomad's manifest.

A failed request is written into its file as ``{"Error": "..."}`` and the capture goes on, as
Nomad's.  Without ``-output`` the directory is built in a temporary directory and archived as
``nomad-debug-<timestamp>.tar.gz`` in the current directory; with ``-output <dir>`` the directory is
left there and no archive is made.  Ctrl-C ends the capture early and still writes the bundle.
"""

from __future__ import annotations

import datetime as dt
import html
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from actors.state.autopilot_config import go_duration, parse_go_duration
from runtime.cli import ACTIVE, CliError
from runtime.cli_jobs import parse_flags

__all__ = ["DEBUG_COMMANDS"]

REQUEST_TIMEOUT_S = 30.0  # one API request of the capture; a slow agent delays one file, not the bundle
STREAM_READ_TIMEOUT_S = 5.0  # a monitor/event stream silent this long (beyond its 1 s heartbeat) is dead
STREAM_JOIN_S = 5.0  # at the end, how long a stream's reader may take to finish its file
PERMISSION_DENIED = "Permission denied"  # Nomad's api.PermissionDeniedErrorContent
SENSITIVE = frozenset({"token", "consul-auth", "consul-token", "consul-client-key", "vault-token",
                       "vault-client-key", "client-key"})  # Nomad's sensitiveFlagNames

# name -> (type, default, environment variable or "")
FLAGS: dict[str, tuple[type, Any, str]] = {
    "duration": (str, "5m", ""), "event-index": (int, 0, ""), "event-topic": (str, "none", ""),
    "interval": (str, "30s", ""), "log-level": (str, "TRACE", ""), "log-include-location": (bool, True, ""),
    "log-lookback": (str, "", ""), "log-file-export": (bool, False, ""), "max-nodes": (int, 10, ""),
    "node-class": (str, "", ""), "node-id": (str, "all", ""), "server-id": (str, "all", ""),
    "stale": (bool, False, ""), "output": (str, "", ""), "pprof-duration": (str, "1s", ""),
    "pprof-interval": (str, "30s", ""), "verbose": (bool, False, ""),
    "region": (str, "", "NOMAD_REGION"), "namespace": (str, "", "NOMAD_NAMESPACE"),
    "consul-http-addr": (str, "", "CONSUL_HTTP_ADDR"), "consul-auth": (str, "", "CONSUL_HTTP_AUTH"),
    "consul-token": (str, "", "CONSUL_HTTP_TOKEN"), "consul-token-file": (str, "", "CONSUL_HTTP_TOKEN_FILE"),
    "consul-client-cert": (str, "", "CONSUL_CLIENT_CERT"),
    "consul-client-key": (str, "", "CONSUL_CLIENT_KEY"),
    "consul-ca-cert": (str, "", "CONSUL_CACERT"), "consul-ca-path": (str, "", "CONSUL_CAPATH"),
    "vault-address": (str, "", "VAULT_ADDR"), "vault-token": (str, "", "VAULT_TOKEN"),
    "vault-ca-cert": (str, "", "VAULT_CACERT"), "vault-ca-path": (str, "", "VAULT_CAPATH"),
    "vault-client-cert": (str, "", "VAULT_CLIENT_CERT"), "vault-client-key": (str, "", "VAULT_CLIENT_KEY"),
}


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def go_json(obj: Any) -> str:
    """Go's ``json.Marshal``: compact, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _go_bool(v: bool) -> str:
    return "true" if v else "false"


def _go_list(items: list[str] | None) -> str:
    return "[" + " ".join(items or []) + "]"  # Go's %v of a []string


def multierror(errors: list[str]) -> str:
    """go-multierror's text."""
    points = "\n\t".join(f"* {e}" for e in errors)
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} {noun} occurred:\n\t{points}\n\n"


def topics_from_string(text: str) -> dict[str, list[str]] | None:
    """Nomad's ``topicsFromString``: ``none``, ``all``, or ``Topic[:filter],...`` (topics title-cased)."""
    if text == "none":
        return None
    if text == "all":
        return {"*": ["*"]}
    topics: dict[str, list[str]] = {}
    errors = []
    for item in _split(text):
        parts = item.split(":")
        if len(parts) == 1:
            topic, flt = item, "*"
        elif len(parts) == 2:
            topic, flt = parts
        else:
            errors.append("Invalid key value pair for topic: ")  # Nomad's message, its topic still empty
            topic, flt = "", ""
        topics.setdefault(topic[:1].upper() + topic[1:].lower(), []).append(flt)
    if errors:
        raise CliError(f"Error parsing event topics: {multierror(errors)}")
    return topics


def _split(text: str) -> list[str]:
    """Nomad's ``stringToSlice``: comma separated, trimmed, empties left out."""
    return [s.strip() for s in text.split(",") if s.strip()]


def sanitize_uuid_prefix(prefix: str) -> str:
    """Nomad's ``sanitizeUUIDPrefix``: an odd-length prefix (hyphens aside) loses its last character."""
    length = len(prefix) - prefix.count("-")
    return prefix if length == 1 or length % 2 == 0 else prefix[:-1]


def filter_servers(members: list[dict[str, Any]], server_ids: str, region: str) -> list[str]:
    """Nomad's ``filterServerMembers``: "leader" first, then members by name prefix ("all": every one)."""
    prefixes = _split(server_ids)
    found = []
    if "leader" in prefixes:
        found.append("leader")
        prefixes = [p for p in prefixes if p.lower() != "leader"]
    for m in members:
        if region and (m.get("Tags") or {}).get("region") != region:
            continue
        if server_ids == "all" or any(m["Name"].startswith(p) for p in prefixes):
            found.append(m["Name"])
    return found


def _parse(args: list[str]) -> dict[str, Any]:
    spec = {name: (bool if kind is bool else str) for name, (kind, _, _) in FLAGS.items()}
    try:
        given, rest = parse_flags(args, spec)
    except CliError as e:
        raise CliError(f"Error parsing arguments: {json.dumps(str(e))}") from None
    opts = {name: (os.environ.get(env, default) if env else default)
            for name, (_, default, env) in FLAGS.items()}
    for name in ("region", "namespace"):  # the general flags, which runtime.cli.main takes off first
        opts[name] = ACTIVE["query"].get(name) or opts[name]
    for name, value in given.items():
        if FLAGS[name][0] is int:
            try:
                value = int(value, 0)
            except ValueError:
                raise CliError(f'Error parsing arguments: "invalid value \\"{value}\\" for flag -{name}: '
                               'parse error"') from None
        opts[name] = value
    opts["_given"] = sorted(given)
    opts["_rest"] = rest

    def dur(flag: str, what: str) -> float:
        try:
            return parse_go_duration(opts[flag]) / 1e9
        except ValueError as e:
            raise CliError(f"Error parsing {what}: {opts[flag]}: {e}") from None

    if opts["log-lookback"]:
        opts["log_lookback_s"] = dur("log-lookback", "-log-lookback")
    else:
        opts["log_lookback_s"] = 0.0
    if opts["log_lookback_s"] and opts["log-file-export"]:
        raise CliError("Error parsing inputs, -log-file-export and -log-lookback cannot be used together.")
    opts["duration_s"] = dur("duration", "duration")
    opts["interval_s"] = dur("interval", "interval")
    if opts["interval_s"] > opts["duration_s"]:
        raise CliError(f"Error parsing interval: {opts['interval']} is greater than duration "
                       f"{opts['duration']}")
    opts["pprof_duration_s"] = min(dur("pprof-duration", "pprof duration"), opts["duration_s"])
    opts["pprof_interval_s"] = max(dur("pprof-interval", "pprof-interval"), opts["pprof_duration_s"])
    opts["topics"] = topics_from_string(opts["event-topic"])
    if opts["event-index"] < 0:
        raise CliError("Event stream index must be greater than zero")
    if rest:
        raise CliError("This command takes no arguments\nFor additional help try 'nomad debug -help'")
    return opts


class Capture:
    """One run: the directory, its manifest and the requests made for it."""

    def __init__(self, addr: str, opts: dict[str, Any], root: str) -> None:
        self.addr = addr.rstrip("/")
        self.opts = opts
        self.root = root
        self.manifest: list[str] = []
        self.stop = threading.Event()  # the streams end
        self.cancel = threading.Event()  # a signal: the capture ends after the interval in progress
        self.threads: list[threading.Thread] = []
        self.open: list[Any] = []  # the streams' responses, cut at the end so no reader waits for a frame
        self.lock = threading.Lock()

    def finish(self) -> None:
        """End the streams: their connections shut (a blocked read returns at once), their files closed."""
        self.stop.set()
        with self.lock:
            responses = list(self.open)
        for resp in responses:
            sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(STREAM_JOIN_S)

    # ---- requests

    def query(self, **extra: Any) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if self.opts["stale"]:
            q["stale"] = "true"
        if self.opts["region"]:
            q["region"] = self.opts["region"]
        q.update(extra)
        return q

    def url(self, path: str, query: dict[str, Any] | list[tuple[str, Any]]) -> str:
        qs = urllib.parse.urlencode(query)
        return f"{self.addr}{path}" + (f"?{qs}" if qs else "")

    def raw(self, path: str, request_timeout_s: float = REQUEST_TIMEOUT_S, **query: Any) -> tuple[int, bytes]:
        """(status, body); an error answer raises CliError with Nomad's API client text."""
        req = urllib.request.Request(self.url(path, self.query(**query)))
        try:
            with urllib.request.urlopen(req, timeout=request_timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace").strip()
            raise CliError(f"Unexpected response code: {e.code} ({body})") from None
        except (urllib.error.URLError, OSError) as e:
            raise CliError(f"Get \"{req.full_url}\": {getattr(e, 'reason', e)}") from None

    def get(self, path: str, **query: Any) -> Any:
        _, body = self.raw(path, **query)
        return json.loads(body) if body.strip() else None

    # ---- files

    def _path(self, directory: str, name: str) -> str:
        name = "".join("_" if c in '/\\:*?"<>|' else c for c in name)  # Nomad's helper.CleanFilename
        rel = os.path.join(directory, name)
        full = os.path.normpath(os.path.join(self.root, rel))
        if not full.startswith(os.path.normpath(self.root) + os.sep):
            raise CliError(f"file path {full!r} escapes capture directory {self.root!r}")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with self.lock:
            self.manifest.append(rel)
        return full

    def write_bytes(self, directory: str, name: str, data: bytes) -> None:
        try:
            with open(self._path(directory, name), "wb") as f:
                f.write(data)
        except (OSError, CliError) as e:
            _err(str(e))

    def write_json(self, directory: str, name: str, obj: Any) -> None:
        self.write_bytes(directory, name, go_json(obj).encode())

    def write_or_error(self, directory: str, name: str, fetch: Callable[[], Any],
                       ndjson: bool = False) -> Any:
        """Nomad's writeResponse(Stream)OrErrorToFile: the answer, or ``{"Error": "..."}``."""
        try:
            got = fetch()
        except CliError as e:
            self.write_json(directory, name, {"Error": str(e)})
            return None
        if ndjson:
            self.write_bytes(directory, name, "".join(go_json(o) + "\n" for o in got or []).encode())
        else:
            self.write_json(directory, name, got)
        return got

    # ---- streams (monitor, event stream): frames read until the capture ends

    def stream(self, path: str, query: list[tuple[str, Any]], out: str, on_frame: Callable[[Any], bytes],
               error_line: Callable[[str], bytes] | None) -> None:
        def run() -> None:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as fh:
                try:
                    req = urllib.request.Request(self.url(path, query))
                    resp = urllib.request.urlopen(req, timeout=STREAM_READ_TIMEOUT_S)
                except urllib.error.HTTPError as e:
                    msg = f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})"
                    if error_line:
                        fh.write(error_line(msg))
                    else:
                        _err(f"Error capturing event stream: failed to stream events: {msg}")
                    return
                except (urllib.error.URLError, OSError) as e:
                    if error_line:
                        fh.write(error_line(str(getattr(e, "reason", e))))
                    return
                with self.lock:
                    self.open.append(resp)
                buf = ""
                decoder = json.JSONDecoder()
                with resp:
                    while not self.stop.is_set():
                        try:
                            chunk = resp.read1(65536)
                        except (OSError, ValueError, http.client.HTTPException) as e:
                            if error_line and not self.stop.is_set():
                                fh.write(error_line(str(e)))
                            return
                        if not chunk:
                            return
                        buf += chunk.decode(errors="replace")
                        while True:
                            buf = buf.lstrip()
                            if not buf:
                                break
                            try:
                                frame, end = decoder.raw_decode(buf)
                            except ValueError:
                                break  # a frame split across reads: wait for the rest
                            buf = buf[end:]
                            fh.write(on_frame(frame))
                            fh.flush()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)


def _monitor_frame(frame: Any) -> bytes:
    import base64

    return base64.b64decode(frame["Data"]) if isinstance(frame, dict) and frame.get("Data") else b""


def debug(addr: str, args: list[str]) -> tuple[str, int]:
    # -h/-help/--help never reach here: runtime.cli.main answers them for every command (runtime.cli_help).
    opts = _parse(args)
    output = opts["output"]
    now = dt.datetime.now(dt.UTC)
    timestamp = now.strftime("%Y-%m-%d-%H%M%SZ")  # Go's "2006-01-02-150405Z"
    stamped = "nomad-debug-" + timestamp
    if output:
        root = os.path.join(output, stamped)
        if os.path.lexists(root):
            _err("Output directory already exists")
            return "", 2
        os.makedirs(root)
    else:
        try:
            root = tempfile.mkdtemp(prefix=stamped)
        except OSError as e:
            _err(f"Error creating tmp directory: {e}")
            return "", 2
    try:
        return _run(addr, opts, root, stamped, timestamp, output)
    finally:
        if not output:
            shutil.rmtree(root, ignore_errors=True)


def _flag_export(addr: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Nomad's cli-flags.json: every flag (Formal), those given (Actual), those with a value (Effective)."""
    def safe(name: str, value: Any, default: Any) -> dict[str, str]:
        val = _go_bool(value) if isinstance(value, bool) else str(value)
        dflt = _go_bool(default) if isinstance(default, bool) else str(default)
        if name in SENSITIVE:
            val, dflt = ("[redacted]" if val else ""), ("[redacted]" if dflt else "")
        return {"Name": name, "Value": val, "DefValue": dflt, "Usage": ""}

    values = {name: opts[name] for name in FLAGS}
    defaults = {name: default for name, (_, default, _) in FLAGS.items()}
    values.update({"address": addr, "token": ACTIVE.get("token") or ""})
    defaults.update({"address": "", "token": ""})
    given = set(opts["_given"]) | ({"token"} if values["token"] else set())
    formal = {n: safe(n, values[n], defaults[n]) for n in sorted(values)}
    return {"Name": "debug", "Parsed": True,
            "Actual": {n: formal[n] for n in sorted(given)},
            "Formal": formal,
            "Effective": {n: f for n, f in formal.items() if f["Value"] != ""},
            "Args": opts["_rest"]}


def _run(addr: str, opts: dict[str, Any], root: str, stamped: str, timestamp: str,
         output: str) -> tuple[str, int]:
    from runtime.version import VERSION

    cap = Capture(addr, opts, root)
    cap.write_json("cluster", "cli-flags.json", _flag_export(addr, opts))
    try:
        nodes = cap.get("/v1/nodes") or []
    except CliError as e:
        raise CliError(f"Error querying node info: {e}") from None
    cap.write_json("cluster", "nodes.json", nodes)

    node_ids_flag = opts["node-id"]
    if opts["node-class"] and node_ids_flag == "":
        node_ids_flag = "all"
    node_ids: list[str] = []
    nodes_found = lookup_fails = 0
    for ident in _split(node_ids_flag):
        ident = "" if ident == "all" else sanitize_uuid_prefix(ident)
        try:
            found = cap.get("/v1/nodes", prefix=ident) or []
        except CliError as e:
            raise CliError(f"Error querying node info: {e}") from None
        if not found:
            _err(f"No node(s) with prefix {json.dumps(ident)} found")
            lookup_fails += 1
            continue
        nodes_found += len(found)
        for n in found:
            if opts["node-class"] and n.get("NodeClass") != opts["node-class"]:
                continue
            node_ids.append(n["ID"])
            if opts["max-nodes"] and len(node_ids) >= opts["max-nodes"]:
                break
    if node_ids_flag and not node_ids:
        if node_ids_flag == "all":
            _out('Note: "-node-id=all" specified but no clients found')
        else:
            raise CliError(f"Failed to retrieve clients, 0 nodes found in list: {node_ids_flag}")

    try:
        members = cap.get("/v1/agent/members")
    except CliError as e:
        raise CliError(f"Failed to retrieve server list; err: {e}") from None
    cap.write_json("cluster", "members.json", members)
    try:
        leader = cap.get("/v1/status/leader")
    except CliError as e:
        _err(f"Failed to retrieve leader; err: {e}")
        leader = ""
    if leader:
        cap.write_json("cluster", "leader.json", leader)
    if not isinstance(members, dict) or members.get("Members") is None:
        raise CliError("Failed to parse server list; err: Failed to parse server members, members==nil")
    server_ids = filter_servers(members["Members"], opts["server-id"], opts["region"])
    if opts["server-id"] and not server_ids:
        raise CliError(f"Failed to retrieve servers, 0 members found in list: {opts['server-id']}")

    _out("Starting debugger...")
    _out()
    _out(f"Nomad CLI Version: Nomad v{VERSION}")
    _out(f"           Region: {opts['region']}")
    _out(f"        Namespace: {opts['namespace']}")
    _out(f"          Servers: ({len(server_ids)}/{len(members['Members'])}) {_go_list(server_ids)}")
    _out(f"          Clients: ({len(node_ids)}/{nodes_found}) {_go_list(node_ids)}")
    if node_ids and len(node_ids) == opts["max-nodes"]:
        _out(f"                   Max node count reached ({opts['max-nodes']})")
    if lookup_fails:
        _out(f"Client fail count: {lookup_fails}")
    if opts["node-class"]:
        _out(f"       Node Class: {opts['node-class']}")
    _out(f"         Interval: {opts['interval']}")
    _out(f"         Duration: {opts['duration']}")
    _out(f"   pprof Interval: {opts['pprof-interval']}")
    if opts["pprof_duration_s"] != 1:
        _out(f"   pprof Duration: {go_duration(round(opts['pprof_duration_s'] * 1e9))}")
    if opts["topics"] is not None:
        shown = " ".join(f"{k}:{_go_list(v)}" for k, v in sorted(opts["topics"].items()))
        _out(f"     Event topics: map[{shown}]")
    _out()
    _out("Capturing cluster data...")

    targets = [("client", "node_id", n) for n in node_ids] + [("server", "server_id", s) for s in server_ids]
    started = time.monotonic()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Nomad's trap: a signal ends the capture (what is being fetched is finished); the bundle is written
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            previous[sig] = signal.signal(sig, lambda signum, frame: cap.cancel.set())
    try:
        _collect(cap, targets, members["Members"], nodes, started)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        cap.finish()
    _write_manifest(cap, timestamp)
    if output:
        return f"Created debug directory: {root}", 0
    archive = stamped + ".tar.gz"
    try:
        with tarfile.open(archive, "w:gz") as tar:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    if os.path.isfile(full) and not os.path.islink(full):
                        tar.add(full, arcname=os.path.join(stamped, os.path.relpath(full, root)))
    except OSError as e:
        _err(f"Error creating archive: {e}")
        return "", 2
    return f"Created debug archive: {archive}", 0


def _collect(cap: Capture, targets: list[tuple[str, str, str]], members: list[dict[str, Any]],
             nodes: list[dict[str, Any]], started: float) -> None:
    opts = cap.opts
    stale = [("stale", "true")] if opts["stale"] else []
    region = [("region", opts["region"])] if opts["region"] else []
    if opts["log_lookback_s"] or opts["log-file-export"]:
        for kind, key, ident in targets:
            q = [(key, ident), ("on_disk", _go_bool(opts["log-file-export"])),
                 ("logs_since", go_duration(round(opts["log_lookback_s"] * 1e9)))]
            if opts["log_lookback_s"] and not opts["log-file-export"]:
                q.append(("service_name", "nomad"))
            cap.stream("/v1/agent/monitor/export", q + stale + region,
                       os.path.join(cap.root, kind, ident, "monitor_export.log"), _monitor_frame,
                       lambda m: f"monitor: {m}\n".encode())
    for kind, key, ident in targets:
        q = [(key, ident), ("log_level", opts["log-level"]),
             ("log_include_location", _go_bool(opts["log-include-location"]))]
        cap.stream("/v1/agent/monitor", q + stale + region,
                   os.path.join(cap.root, kind, ident, "monitor.log"), _monitor_frame,
                   lambda m: f"monitor: {m}\n".encode())
    if opts["topics"] is not None:
        if opts["verbose"]:
            _out("Launching eventstream goroutine...")
        q = [("index", str(opts["event-index"]))]
        q += [("topic", f"{t}:{f}") for t, fs in opts["topics"].items() for f in fs]
        if opts["namespace"]:
            q.append(("namespace", opts["namespace"]))

        count = [0]

        def events(frame: Any) -> bytes:
            evs = frame.get("Events") or [] if isinstance(frame, dict) else []
            for e in evs:
                count[0] += 1
                if opts["verbose"]:
                    _out(f"Event: {count[0]:4d}, Index: {e.get('Index')}, Topic: {e.get('Topic', ''):<10}, "
                         f"Type: {e.get('Type')}, FilterKeys: {_go_list(e.get('FilterKeys'))}")
            return "".join(go_json(e) + "\n" for e in evs).encode()

        cap.stream("/v1/event/stream", q + stale + region,
                   os.path.join(cap.root, "cluster", "eventstream.json"), events, None)

    self_info = cap.write_or_error("cluster", "agent-self.json", lambda: cap.get("/v1/agent/self"))
    cap.write_or_error("cluster", "namespaces.json", lambda: cap.get("/v1/namespaces"))
    cap.write_or_error("cluster", "regions.json", lambda: cap.get("/v1/regions"))
    _collect_consul(cap, self_info)
    _collect_vault(cap, self_info)

    for kind, key, ident in targets:
        _collect_host(cap, kind, key, ident)

    pprof_ok = {t: True for t in targets}
    if opts["verbose"]:
        _out("pprof: this agent serves a CPU profile (cProfile, pstats format) and its goroutine "
             "(greenlet) stacks; Go's heap, trace and threadcreate profiles do not exist here")
    _out("    Capture pprofInterval 0000")
    _collect_pprofs(cap, targets, pprof_ok, 0)
    pprof_again = opts["pprof_interval_s"] != opts["pprof_duration_s"]
    pprof_started = time.monotonic()
    next_pprof, pprof_count = pprof_started + opts["pprof_interval_s"], 1

    end = time.monotonic() + opts["duration_s"]
    next_capture, count = time.monotonic(), 0
    while True:
        now = time.monotonic()
        if now >= end or cap.cancel.is_set():
            return
        if now >= next_capture:
            name = f"{count:04d}"
            _out(f"    Capture interval {name}")
            _collect_interval(cap, os.path.join("interval", name))
            count += 1
            next_capture = time.monotonic() + opts["interval_s"]
            continue
        if pprof_again and now >= next_pprof and now < pprof_started + opts["duration_s"]:
            _out(f"    Capture pprofInterval {pprof_count:04d}")
            _collect_pprofs(cap, targets, pprof_ok, pprof_count)
            pprof_count += 1
            next_pprof = time.monotonic() + opts["pprof_interval_s"]
            continue
        wake = min(end, next_capture, next_pprof if pprof_again else end)
        cap.cancel.wait(max(0.0, wake - time.monotonic()))


def _collect_host(cap: Capture, kind: str, key: str, ident: str) -> None:
    try:
        host = cap.get("/v1/agent/host", **{key: ident})
    except CliError as e:
        _err(f"{kind}/{ident}: Failed to retrieve agent host data, err: {e}")
        if PERMISSION_DENIED in str(e):
            _err("Agent host retrieval requires agent:read ACL or enable_debug=true.  See "
                 "https://developer.hashicorp.com/nomad/api-docs/agent#host for more information.")
        return
    cap.write_json(os.path.join(kind, ident), "agent-host.json", host)


def _collect_pprofs(cap: Capture, targets: list[tuple[str, str, str]], ok: dict[Any, bool],
                    interval: int) -> None:
    """The profiles this agent has, as Nomad names their files: ``profile_NNNN.prof`` (a CPU profile over
    the pprof duration: pstats's binary format, ``python -m pstats`` reads it) and
    ``goroutine-debug2_NNNN.txt`` (greenlet stacks, text: Nomad's debug=2 file)."""
    seconds = max(1, int(cap.opts["pprof_duration_s"]))  # Nomad's 0 s is the server's default, 1 s
    for target in targets:
        kind, key, ident = target
        directory = os.path.join(kind, ident)
        for name, path, query in ((f"profile_{interval:04d}.prof", "/v1/agent/pprof/profile", {}),
                                  (f"goroutine-debug2_{interval:04d}.txt", "/v1/agent/pprof/goroutine",
                                   {"debug": "2"})):
            if not ok[target]:
                break
            try:
                _, body = cap.raw(path, REQUEST_TIMEOUT_S + seconds, seconds=str(seconds), **query,
                                  **{key: ident})
            except CliError as e:
                _err(f"{directory}: Failed to retrieve pprof {name}, err: {e}")
                if PERMISSION_DENIED in str(e):
                    _err("Pprof retrieval requires agent:write ACL or enable_debug=true.  See "
                         "https://developer.hashicorp.com/nomad/api-docs/agent#agent-runtime-profiles "
                         "for more information.")
                    ok[target] = False  # Nomad: one permission failure is enough
                continue
            cap.write_bytes(directory, name, body)


def _collect_interval(cap: Capture, directory: str) -> None:
    for name, path in (("jobs.json", "/v1/jobs"), ("deployments.json", "/v1/deployments"),
                       ("evaluations.json", "/v1/evaluations"), ("allocations.json", "/v1/allocations"),
                       ("nodes.json", "/v1/nodes")):
        cap.write_or_error(directory, name, lambda p=path: cap.get(p), ndjson=True)
    plugins = cap.write_or_error(directory, "csi-plugins.json", lambda: cap.get("/v1/plugins", type="csi"),
                                 ndjson=True)
    for p in plugins or []:
        cap.write_or_error(directory, f"csi-plugin-id-{p['ID']}.json",
                           lambda i=p["ID"]: cap.get(f"/v1/plugin/csi/{urllib.parse.quote(i, safe='')}"))
    volumes = cap.write_or_error(directory, "csi-volumes.json", lambda: cap.get("/v1/volumes", type="csi"),
                                 ndjson=True)
    for v in volumes or []:
        cap.write_or_error(directory, f"csi-volume-id-{v['ID']}.json",
                           lambda i=v["ID"]: cap.get(f"/v1/volume/csi/{urllib.parse.quote(i, safe='')}"))
    cap.write_or_error(directory, "metrics.json", lambda: cap.get("/v1/metrics"))
    cap.write_or_error(directory, "operator-raft.json", lambda: cap.get("/v1/operator/raft/configuration"))
    cap.write_or_error(directory, "operator-scheduler.json",
                       lambda: cap.get("/v1/operator/scheduler/configuration"))
    cap.write_or_error(directory, "operator-autopilot-health.json", lambda: _autopilot_health(cap))
    cap.write_or_error(directory, "license.json", lambda: _license(cap))


def _autopilot_health(cap: Capture) -> Any:
    req = urllib.request.Request(cap.url("/v1/operator/autopilot/health", cap.query()))
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code == 429:  # answered: some server is unhealthy
            return json.loads(body)
        text = body.decode(errors="replace").strip()
        raise CliError(f"Unexpected response code: {e.code} ({text})") from None
    except (urllib.error.URLError, OSError) as e:
        raise CliError(str(getattr(e, "reason", e))) from None


def _license(cap: Capture) -> Any:
    status, body = cap.raw("/v1/operator/license")
    if status == 204:
        raise CliError("Nomad Enterprise only endpoint")  # Nomad's API client on CE's 204
    return json.loads(body) if body.strip() else None


def _external_get(url: str, headers: dict[str, str]) -> bytes:
    req = urllib.request.Request(url, headers={**headers, "User-Agent": "nomad operator debug"})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        return e.read()  # Nomad writes whatever body came back
    except (urllib.error.URLError, OSError) as e:
        raise CliError(f"Get \"{url}\": {getattr(e, 'reason', e)}") from None


def _with_scheme(address: str, ssl: bool) -> str:
    return address if "://" in address else ("https://" if ssl else "http://") + address


def _self_block(self_info: Any, key: str) -> dict[str, Any]:
    block = ((self_info or {}).get("config") or {}).get(key) if isinstance(self_info, dict) else None
    return block if isinstance(block, dict) else {}


def _collect_consul(cap: Capture, self_info: Any) -> None:
    opts = cap.opts
    address, token = opts["consul-http-addr"], opts["consul-token"]
    if not address:
        block = _self_block(self_info, "Consul")
        if block.get("Addr"):
            address = _with_scheme(block["Addr"], bool(block.get("EnableSSL")))
            token = token or block.get("Token") or ""
    if not address:
        _out("Consul - Skipping, no API address found")
        return
    address = _with_scheme(address, os.environ.get("CONSUL_HTTP_SSL", "").lower() in ("1", "t", "true"))
    if not token and opts["consul-token-file"]:
        try:
            with open(opts["consul-token-file"]) as f:
                token = f.read().strip()
        except OSError:
            token = ""
    _out(f"Consul - Collecting Consul API data from: {address}")
    headers = {"X-Consul-Token": token}
    try:
        leader = _external_get(address + "/v1/status/leader", headers)
    except CliError as e:
        _out(f"Unable to contact Consul leader, skipping: {e}")
        return
    cap.write_bytes("cluster", "consul-leader.json", leader)
    for path, name in (("/v1/agent/host", "consul-agent-host.json"),
                       ("/v1/agent/members", "consul-agent-members.json"),
                       ("/v1/agent/metrics", "consul-agent-metrics.json"),
                       ("/v1/agent/self", "consul-agent-self.json")):
        try:
            cap.write_bytes("cluster", name, _external_get(address + path, headers))
        except CliError as e:
            _err(f"Error collecting from Consul API: {e}")


def _collect_vault(cap: Capture, self_info: Any) -> None:
    address, token = cap.opts["vault-address"], cap.opts["vault-token"]
    if not address:
        block = _self_block(self_info, "Vault")
        if block.get("Addr"):
            address = _with_scheme(block["Addr"], bool(block.get("EnableSSL")))
            token = token or block.get("Token") or ""
    if not address:
        return
    address = _with_scheme(address, False)
    _out(f"Vault - Collecting Vault API data from: {address}")
    try:
        body = _external_get(address + "/v1/sys/health", {"X-Vault-Token": token})
    except CliError as e:
        cap.write_json("cluster", "vault-sys-health.json", {"Error": str(e)})
        return
    if body:
        cap.write_bytes("cluster", "vault-sys-health.json", body)


def _write_manifest(cap: Capture, timestamp: str) -> None:
    """Nomad's index.json (the files written, in order) and index.html (a list of links)."""
    with open(os.path.join(cap.root, "index.json"), "w") as f:
        f.write(go_json(cap.manifest) + "\n")
    esc = html.escape
    with open(os.path.join(cap.root, "index.html"), "w") as f:
        f.write(f"<html><head><title>{esc(timestamp)}</title></head>\n<body><h1>{esc(timestamp)}</h1>\n<ul>")
        for rel in cap.manifest:
            f.write(f'<li><a href="{esc(rel)}">{esc(rel)}</a></li>\n')
        f.write("</ul></body></html>\n")


DEBUG_COMMANDS = {("operator", "debug"): debug}
