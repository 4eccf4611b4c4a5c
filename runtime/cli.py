"""``nomad`` -- the operator CLI: Nomad's commands over the HTTP API.

Implemented: ``server members [-verbose]``, ``server join <addr>...``,
``server force-leave [-prune] <name>``, ``operator raft list-peers``, ``operator autopilot health``,
``operator raft remove-peer -peer-id <id>``, ``operator raft transfer-leadership``
(:mod:`runtime.cli_raft_transfer`), ``operator autopilot get-config|set-config``
(:mod:`runtime.cli_autopilot`),
``operator snapshot save|inspect|restore`` (:mod:`runtime.cli_snapshot`),
``operator scheduler get-config|set-config`` (:mod:`runtime.cli_scheduler`),
``node pool list|info|apply|delete|nodes|jobs`` (:mod:`runtime.cli_node_pools`),
``node meta read|apply`` (:mod:`runtime.cli_node_meta`),
``scaling policy list|info`` (:mod:`runtime.cli_scaling`),
``var list|get|put|purge`` (:mod:`runtime.cli_variables`),
``namespace list|status``, ``operator api`` (:mod:`runtime.cli_operator_api`),
``deployment list|status|fail|pause|resume|promote`` and ``job deployments``
(:mod:`runtime.cli_deployments`), ``service list|info|delete`` (:mod:`runtime.cli_services`),
``agent-info``, ``status leader``,
and the job, alloc and node commands of :mod:`runtime.cli_jobs`.
The address comes from ``-address`` or ``NOMAD_ADDR`` (default
``http://127.0.0.1:4646``), as Nomad's CLI does; the ACL token from ``-token``
or ``NOMAD_TOKEN``, sent as ``X-Nomad-Token`` with every request.  Errors print one line and
exit 1.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_ADDR = "http://127.0.0.1:4646"
TIMEOUT_S = 15.0  # above the agent's own join wait (JOIN_WAIT_S, 12 s) for unreachable addresses
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's status for a command ended by SIGINT


# Nomad's general API flags (every command takes them, anywhere among its flags) -> their environment
# variable: each request carries ?region= and ?namespace= unless it names its own.
GENERAL_VALUE_FLAGS = {"-region": "NOMAD_REGION", "-namespace": "NOMAD_NAMESPACE"}
TLS_BOOL_ALIASES = {"-insecure": "-tls-skip-verify"}  # Nomad's meta.go binds both to one setting
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
GO_BOOLS = GO_TRUE | {"0", "f", "F", "FALSE", "false", "False"}
IGNORED_BOOL_FLAGS = frozenset({"-no-color", "-force-color"})  # this CLI prints no colour either way
LOCAL_COMMANDS = frozenset({"tls"})  # commands that talk to no agent: their flags are all their own
# What use_token was given, for connections urllib does not make (alloc exec's WebSocket); the query
# parameters every request carries; the general flags given on the command line.
ACTIVE: dict[str, Any] = {"token": "", "ssl_context": None, "query": {}, "flags": {}, "namespace": ""}


class CliError(Exception):
    pass


class ApiError(CliError):
    """An HTTP API call that failed (an error status or no answer); its text is the raw API error, which
    ``main`` prefixes with the command's own context from ``API_ERROR_CONTEXT`` as Nomad's commands do."""


def unreachable(method: str, url: str, e: BaseException) -> ApiError:
    """No answer from the agent, worded as Go's ``url.Error`` (``Get "<url>": dial tcp <host>: connect:
    connection refused``), which Nomad's commands print under their context."""
    reason = e if isinstance(e, ssl.SSLError) else getattr(e, "reason", e)  # an SSLError's is a code name
    if isinstance(reason, ConnectionRefusedError):
        reason = f"dial tcp {urllib.parse.urlsplit(url).netloc}: connect: connection refused"
    elif isinstance(reason, ssl.SSLError):
        from runtime.cli_tls import go_tls_error

        reason = go_tls_error(reason, url) or reason
    return ApiError(f'{method.title()} "{url}": {reason}')


def _positional(args: list[str]) -> str:
    """The command's last non-flag argument (a job id, a node name), for contexts that name it."""
    return next((a for a in reversed(args) if not a.startswith("-")), "")


# Nomad's context for an API failure, per command (command/*.go's ``Error ...: %s`` where the call fails);
# a callable gets the command's arguments. Commands not listed print ``Error: <API error>``.
API_ERROR_CONTEXT: dict[tuple[str, ...], Any] = {
    ("status", "leader"): "Error querying leader",
    ("job", "run"): "Error submitting job",
    ("job", "plan"): "Error during plan",
    ("job", "status"): lambda a: "Error querying job" if _positional(a) else "Error querying jobs",
    # `nomad status` with no ID runs JobStatusCommand's list; with one it words its own errors.
    ("status",): lambda a: "" if _positional(a) else "Error querying jobs",
    ("job", "stop"): lambda a: f"Error deregistering job with id {_positional(a)} err",
    ("job", "allocs"): "Error querying job",
    ("job", "history"): "Error retrieving job versions",
    ("job", "inspect"): "Error inspecting job",
    ("job", "revert"): "Error retrieving job versions",
    ("job", "dispatch"): "Failed to dispatch job",
    ("job", "scale"): "Error submitting scaling request",
    ("node", "status"): lambda a: "Error querying node info" if _positional(a)
    else "Error querying node status",
    ("node", "drain"): "Error toggling drain mode",  # its node lookup; the update words its own
    ("node", "eligibility"): "Error updating scheduling eligibility",
    ("alloc", "status"): "Error querying allocation",
    ("alloc", "logs"): "Error querying allocation",
    ("alloc", "stop"): "Error stopping allocation",
    ("alloc", "restart"): "Error restarting allocation",
    ("alloc", "signal"): "Error signalling allocation",
    ("eval", "status"): "Error querying evaluation",
    ("eval", "list"): "Error querying evaluations",
    ("deployment", "status"): lambda a: "Error retrieving deployment" if _positional(a)
    else "Error retrieving deployments",
    ("deployment", "list"): "Error retrieving deployments",
    ("deployment", "promote"): "Error promoting deployment",
    ("deployment", "fail"): "Error failing deployment",
    ("deployment", "pause"): "Error pausing deployment",
    ("deployment", "resume"): "Error resuming deployment",
    ("server", "members"): "Error querying servers",
    ("server", "join"): "Error joining",
    ("server", "force-leave"): lambda a: f"Error force-leaving server {_positional(a)}",
    ("operator", "raft", "list-peers"): "Failed to retrieve raft configuration",
    ("operator", "raft", "remove-peer"): "Error removing peer",
    ("system", "gc"): "Error running system garbage-collection",
    ("system", "reconcile", "summaries"): "Error running system summary reconciliation",
    ("acl", "bootstrap"): "Error bootstrapping",
    ("operator", "autopilot", "health"): "Error querying Autopilot configuration",  # sic, Nomad's words
    ("operator", "metrics"): "Error querying metrics",  # -json; the raw body path words its own
    ("agent-info",): "Error querying agent info",
    ("var", "get"): "Error retrieving variable",
    ("var", "put"): "Error creating variable",
    ("var", "list"): "Error retrieving vars",
    ("var", "purge"): "Error purging variable",
    ("acl", "token", "self"): "Error fetching self token",
    ("acl", "token", "info"): "Error fetching token",
    ("acl", "token", "list"): "Error listing ACL tokens",
    ("acl", "token", "create"): "Error creating token",
    ("acl", "token", "delete"): "Error deleting token",
    ("acl", "token", "update"): "Error updating token",
    ("acl", "policy", "list"): "Error listing ACL policies",
    ("acl", "policy", "info"): "Error fetching info on ACL policy",
    ("acl", "policy", "delete"): "Error deleting ACL policy",
    ("acl", "policy", "apply"): "Error writing ACL policy",
    ("namespace", "list"): "Error retrieving namespaces",
    ("namespace", "status"): "Error retrieving namespaces",
    ("namespace", "inspect"): "Error retrieving namespaces",
    ("namespace", "apply"): "Error applying namespace",
    ("namespace", "delete"): "Error deleting namespace",
    ("node", "pool", "list"): "Error querying node pools",
    ("node", "pool", "info"): "Error retrieving node pool",
    ("node", "pool", "nodes"): "Error retrieving node pool",
    ("node", "pool", "jobs"): "Error retrieving node pool",
    ("node", "pool", "apply"): "Error applying node pool",
    ("node", "pool", "delete"): "Error deleting node pool",
    ("operator", "scheduler", "get-config"): "Error querying scheduler configuration",
    ("operator", "scheduler", "set-config"): "Error querying for scheduler configuration",
    ("service", "list"): "Error listing service registrations",
    ("service", "info"): "Error listing service registrations",
    ("service", "delete"): "Error deleting service registration",
    ("operator", "gossip", "keyring", "list"): "error",  # Nomad's keyring commands: a bare "error: %s"
    ("operator", "gossip", "keyring", "install"): "error",
    ("operator", "gossip", "keyring", "use"): "error",
    ("operator", "gossip", "keyring", "remove"): "error",
    ("operator", "root", "keyring", "list"): "error",
    ("operator", "root", "keyring", "rotate"): "error",
    ("operator", "root", "keyring", "remove"): "error",
}


# A command whose failures exit with other than 1: Nomad's job plan exits 255 on any error, as 1 already
# says "allocations would be created or destroyed" (command/job_plan.go).
ERROR_EXIT: dict[tuple[str, ...], int] = {("job", "plan"): 255}


def error_line(words: tuple[str, ...], args: list[str], e: CliError) -> str:
    """The line a failed command prints: an API error under its command's Nomad context, a message that
    carries its own context as it is, else ``Error: `` and the message."""
    ctx = API_ERROR_CONTEXT.get(words) if isinstance(e, ApiError) else None
    if callable(ctx):
        ctx = ctx(args)
    if ctx:
        return f"{ctx}: {e}"
    text = str(e)
    # Nomad's Ui.Error prints a command's message as it is ("No job(s) with prefix or ID ... found",
    # "Error writing ACL policy: ..."); only an API error that has no command context here gets one.
    return f"Error: {text}" if isinstance(e, ApiError) and not text.startswith("Error ") else text


def call(addr: str, method: str, path: str, accept: tuple[int, ...] = (), **query: Any) -> Any:
    """The JSON answer of a request; an error status is a CliError unless it is in *accept*."""
    q = urllib.parse.urlencode([(k, v) for k, vs in query.items()
                                for v in (vs if isinstance(vs, list) else [vs])])
    url = f"{addr.rstrip('/')}{path}" + (f"?{q}" if q else "")
    req = urllib.request.Request(url, method=method, data=b"" if method in ("PUT", "POST") else None)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        if e.code in accept:
            body = e.read()
            return json.loads(body) if body.strip() else None
        raise ApiError(f"Unexpected response code: {e.code} ({e.read().decode(errors='replace').strip()})") \
            from None
    except (urllib.error.URLError, OSError) as e:
        raise unreachable(method, url, e) from None
    return json.loads(body) if body.strip() else None


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def region_leaders(addr: str, members: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Each member region's leader (``/v1/status/leader?region=``) and the errors of the regions whose
    leader could not be asked, as Nomad's ``regionLeaders`` (command/server_members.go): a region whose
    members have all left is not asked; one that has no leader right now answers "" (no error)."""
    leaders, errors = {}, []
    regions = {(m.get("Tags") or {}).get("region", "") for m in members if m.get("Status") != "left"}
    for region in sorted(regions):
        try:
            leaders[region] = call(addr, "GET", "/v1/status/leader", **({"region": region} if region else {}))
        except CliError as e:
            errors.append(f"Region {json.dumps(region)}: {e}")
    return leaders, errors


def go_multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's ``ListFormatFunc``: what Nomad prints for a ``multierror.Error``."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    return f"{len(errors)} errors occurred:\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"


def _member_order(m: dict[str, Any]) -> tuple[str, str, str]:
    """Nomad's ``AgentMembersNameSort``: region, then datacenter, then name."""
    tags = m.get("Tags") or {}
    return tags.get("region", ""), tags.get("dc", ""), m["Name"]


def _is_leader(m: dict[str, Any], leaders: dict[str, str]) -> bool:
    """Nomad's ``isLeader``: the member's ``Addr:Tags[port]`` is its region's leader."""
    tags = m.get("Tags") or {}
    leader = leaders.get(tags.get("region", ""), "") or ""
    return bool(leader) and f"{m['Addr']}:{tags.get('port', '')}" == leader


def server_members(addr: str, args: list[str]) -> str | tuple[str, int]:
    verbose = "-verbose" in args or "-detailed" in args  # -detailed: Nomad's deprecated name
    got = call(addr, "GET", "/v1/agent/members")
    members = sorted(got["Members"], key=_member_order)
    leaders, errors = region_leaders(addr, members)
    if "-json" in args:  # Nomad's Format: the members, indented four spaces, each tagged Leader
        for m in members:  # (a Go map: its keys sorted, so "Leader" comes first)
            tags = {**(m.get("Tags") or {}), "Leader": str(_is_leader(m, leaders)).lower()}
            m["Tags"] = dict(sorted(tags.items()))
        return json.dumps(members, indent=4)
    # Nomad's verboseOutput puts Protocol after Leader, Tags last.
    head = ["Name", "Address", "Port", "Status", "Leader", *(["Protocol"] if verbose else []),
            "Raft Version", "Build", "Datacenter", "Region", *(["Tags"] if verbose else [])]
    rows = [head]
    for m in members:
        tags = m.get("Tags") or {}
        row = [m["Name"], m["Addr"], str(m["Port"]), m["Status"], str(_is_leader(m, leaders)).lower(),
               *([str(m.get("ProtocolCur", ""))] if verbose else []),
               tags.get("raft_vsn", "3"), tags.get("build", ""), tags.get("dc", ""), tags.get("region", "")]
        if verbose:
            row.append(",".join(f"{k}={v}" for k, v in sorted(tags.items())))
        rows.append(row)
    if not errors:
        return table(rows)
    # Nomad prints the list, an empty line, then warns and exits 1 (a region whose servers are all
    # failed has "No path to region").
    print(table(rows) + "\n", flush=True)
    print(f"Error determining leaders: {go_multierror(errors)}", file=sys.stderr)
    return "", 1


def server_join(addr: str, args: list[str]) -> str:
    from runtime.cli_jobs import parse_flags

    _, args = parse_flags(args, {})
    if not args:  # Nomad's server_join.go words, then commandErrorText
        raise CliError("One or more node addresses must be given as arguments\n"
                       "For additional help try 'nomad server join -help'")
    got = call(addr, "PUT", "/v1/agent/join", address=args)
    if got.get("error"):
        raise CliError(f"Error joining: {got['error']}")
    return f"Joined {got['num_joined']} servers successfully"


def server_force_leave(addr: str, args: list[str]) -> str:
    from runtime.cli_jobs import parse_flags

    flags, names = parse_flags(args, {"prune": bool})
    prune = bool(flags.get("prune"))
    if len(names) != 1:  # Nomad's server_force_leave.go words, then commandErrorText
        raise CliError("This command takes one argument: <node>\n"
                       "For additional help try 'nomad server force-leave -help'")
    call(addr, "PUT", "/v1/agent/force-leave", node=names[0], **({"prune": "true"} if prune else {}))
    return ""


def raft_list_peers(addr: str, args: list[str]) -> str:
    """Nomad's ``operator raft list-peers [-stale]`` (command/operator_raft_list.go): sorted by node name."""
    from runtime.cli_jobs import parse_flags

    flags, rest = parse_flags(args, {"stale": bool})
    if rest:
        raise CliError("This command takes no arguments")
    stale = {"stale": "true"} if flags.get("stale") else {}
    got = call(addr, "GET", "/v1/operator/raft/configuration", **stale)
    rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]]
    for s in sorted(got["Servers"], key=lambda s: s["Node"]):
        rows.append([s["Node"], s["ID"], s["Address"], "leader" if s["Leader"] else "follower",
                     str(s["Voter"]).lower(), s["RaftProtocol"]])
    return table(rows)


def raft_remove_peer(addr: str, args: list[str]) -> str:
    """Nomad's ``operator raft remove-peer -peer-id``: Raft protocol 3 removes a server by its ID only."""
    from runtime.cli_jobs import parse_flags

    flags, rest = parse_flags(args, {"peer-id": str})
    if rest:
        raise CliError("This command takes no arguments")
    peer = flags.get("peer-id", "")
    if not peer:
        raise CliError("Missing peer id required")
    call(addr, "DELETE", "/v1/operator/raft/peer", id=peer)
    return f"Removed peer with id {json.dumps(peer)}"


def _go_time(stamp: str) -> str:
    """An RFC 3339 time as Go's ``time.Time.String`` prints it (``2026-11-28 04:20:47.237976 +0000 UTC``)."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return str(stamp)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"


def autopilot_health(addr: str, args: list[str]) -> str:
    """``nomad operator autopilot health [-json]``: the leader's view of every server, in Nomad's
    formatAutopilotState layout."""
    if any(a not in ("-json", "--json") for a in args):
        bad = next(a for a in args if a not in ("-json", "--json"))
        raise CliError(f"flag provided but not defined: {bad}" if bad.startswith("-")
                       else "This command takes no arguments")
    got = call(addr, "GET", "/v1/operator/autopilot/health", accept=(429,))  # 429: answered, unhealthy
    if args:  # Nomad's -json: json.Marshal, on one line
        return json.dumps(got, separators=(",", ":"))
    rows = [["ID", "Name", "Address", "SerfStatus", "Version", "Leader", "Voter", "Healthy", "LastContact",
             "LastTerm", "LastIndex", "StableSince"]]
    for s in got["Servers"]:
        rows.append([s["ID"], s["Name"], s["Address"], s["SerfStatus"], s.get("Version") or "<none>",
                     str(s["Leader"]).lower(), str(s["Voter"]).lower(), str(s["Healthy"]).lower(),
                     s["LastContact"], str(s["LastTerm"]), str(s["LastIndex"]), _go_time(s["StableSince"])])
    # Nomad's renderServerIDList tabs each voter, but its columnize trims them: only the first keeps
    # the tab of the "Voters:  \n\t%s" around the list.
    voters = "\n".join(got.get("Voters") or ())
    return (f"Healthy: {str(got['Healthy']).lower()}\nFailureTolerance: {got['FailureTolerance']}\n"
            f"Leader: {got['Leader']}\nVoters:  \n\t{voters}\nServers: \n{table(rows)}\n")


def agent_info(addr: str, args: list[str]) -> str:
    got = call(addr, "GET", "/v1/agent/self")
    if "-json" in args:  # Nomad's Format: the whole /v1/agent/self answer
        return json.dumps(got, indent=4)
    lines = []
    for section in sorted(got.get("stats", {})):
        lines.append(section)
        for k, v in sorted(got["stats"][section].items()):
            lines.append(f"  {k} = {v}")
    return "\n".join(lines)


def status_leader(addr: str, args: list[str]) -> str:
    return call(addr, "GET", "/v1/status/leader") or ""


COMMANDS = {
    ("server", "members"): server_members,
    ("server", "join"): server_join,
    ("server", "force-leave"): server_force_leave,
    ("operator", "raft", "list-peers"): raft_list_peers,
    ("operator", "raft", "remove-peer"): raft_remove_peer,
    ("operator", "autopilot", "health"): autopilot_health,
    ("agent-info",): agent_info,
    ("status", "leader"): status_leader,
}

# Job, alloc and node commands: their own module, which uses the helpers above.
from runtime.cli_jobs import JOB_COMMANDS  # noqa: E402

COMMANDS.update(JOB_COMMANDS)

# ---- gossip keyring (issue 10): operator gossip keyring generate|-list|-install|-use|-remove
from runtime.cli_keyring import KEYRING_COMMANDS  # noqa: E402

COMMANDS.update(KEYRING_COMMANDS)
# ---- end gossip keyring

# ---- ACLs (issue 10): acl bootstrap|policy|token, and -token / NOMAD_TOKEN sent by every command
from runtime.cli_acl import ACL_COMMANDS  # noqa: E402

COMMANDS.update(ACL_COMMANDS)
TOKEN_HEADER = "X-Nomad-Token"


class _SendToken(urllib.request.BaseHandler):
    """Adds the token to each request urllib makes in this process, so every helper sends it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        if not req.has_header(TOKEN_HEADER.capitalize()):  # urllib stores names capitalized
            req.add_unredirected_header(TOKEN_HEADER, self.token)  # not replayed to a redirect's host
        return req

    https_request = http_request




class _AddQuery(urllib.request.BaseHandler):
    """Adds ``region=`` and ``namespace=`` (the general ``-region``/``-namespace`` flags) to each request
    that does not name its own, as Nomad's api client does with its config's Region and Namespace."""

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        req.full_url = with_general_query(req.full_url, self.params)
        return req

    https_request = http_request


def with_general_query(url: str, params: dict[str, str] | None = None) -> str:
    """*url* with the general flags' query parameters it does not already carry."""
    params = ACTIVE["query"] if params is None else params
    query = urllib.parse.urlsplit(url).query
    have = {k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    extra = [(k, v) for k, v in params.items() if v and k not in have]
    if not extra:
        return url
    return url + ("&" if query else "?") + urllib.parse.urlencode(extra)


def use_token(token: str, *handlers: urllib.request.BaseHandler, query: dict[str, str] | None = None) -> None:
    """Send *token* with every request from now on ("" sends none); *handlers*: e.g. HTTPS's (cli_tls);
    *query*: parameters every request carries unless it names its own (``region``, ``namespace``)."""
    ACTIVE["token"] = token
    ACTIVE["ssl_context"] = next((getattr(h, "_context", None) for h in handlers
                                  if isinstance(h, urllib.request.HTTPSHandler)), None)
    # -tls-server-name: the name the agent's certificate is checked against (None: the URL's host)
    ACTIVE["tls_server_name"] = next((getattr(h, "_server_name", None) for h in handlers
                                      if isinstance(h, urllib.request.HTTPSHandler)), None)
    ACTIVE["query"] = {k: v for k, v in (query or {}).items() if v}
    ACTIVE["namespace"] = ACTIVE["query"].get("namespace", "")  # as given ("*": resolve names the job's)
    # always: a command may scope what follows to a job's own region and namespace (cli_jobs.scope_to_job)
    extra = [*handlers, *([_SendToken(token)] if token else []), _AddQuery(ACTIVE["query"])]
    urllib.request.install_opener(urllib.request.build_opener(*extra))
# ---- end ACLs

# ---- TLS (issue 10): tls ca|cert create; -ca-cert / -client-cert / -client-key (NOMAD_CACERT...) for https://
from runtime.cli_tls import TLS_BOOL_FLAGS, TLS_COMMANDS, TLS_FLAGS, tls_handlers  # noqa: E402

COMMANDS.update(TLS_COMMANDS)
# ---- end TLS

# ---- operator snapshot save|inspect|restore (runtime.cli_snapshot)
from runtime.cli_snapshot import SNAPSHOT_COMMANDS  # noqa: E402

COMMANDS.update(SNAPSHOT_COMMANDS)
# ---- end operator snapshot

# ---- operator scheduler get-config|set-config (runtime.cli_scheduler)
from runtime.cli_scheduler import SCHEDULER_COMMANDS  # noqa: E402

COMMANDS.update(SCHEDULER_COMMANDS)
# ---- end operator scheduler

# ---- node pool list|info|apply|delete|nodes|jobs (runtime.cli_node_pools)
from runtime.cli_node_pools import NODE_POOL_COMMANDS  # noqa: E402

COMMANDS.update(NODE_POOL_COMMANDS)
# ---- end node pool

# ---- scaling policy list|info (runtime.cli_scaling)
from runtime.cli_scaling import SCALING_COMMANDS  # noqa: E402

COMMANDS.update(SCALING_COMMANDS)
# ---- end scaling policy

# ---- var list|get|put|purge (runtime.cli_variables)
from runtime.cli_variables import VARIABLE_COMMANDS  # noqa: E402

COMMANDS.update(VARIABLE_COMMANDS)
# ---- end var

# ---- namespace list|status|apply|delete (runtime.cli_namespaces)
from runtime.cli_namespaces import NAMESPACE_COMMANDS  # noqa: E402

COMMANDS.update(NAMESPACE_COMMANDS)
# ---- end namespace

# ---- deployment list|status|fail|pause|resume|promote, job deployments (runtime.cli_deployments)
from runtime.cli_deployments import DEPLOYMENT_COMMANDS  # noqa: E402

COMMANDS.update(DEPLOYMENT_COMMANDS)
# ---- end deployment

# ---- service list|info|delete (runtime.cli_services)
from runtime.cli_services import SERVICE_COMMANDS  # noqa: E402

COMMANDS.update(SERVICE_COMMANDS)
# ---- end service

# ---- operator raft transfer-leadership (runtime.cli_raft_transfer)
from runtime.cli_raft_transfer import TRANSFER_COMMANDS  # noqa: E402

COMMANDS.update(TRANSFER_COMMANDS)
# ---- end operator raft transfer-leadership

# ---- operator autopilot get-config|set-config (runtime.cli_autopilot)
from runtime.cli_autopilot import AUTOPILOT_COMMANDS  # noqa: E402

COMMANDS.update(AUTOPILOT_COMMANDS)
# ---- end operator autopilot config

# ---- node meta read|apply (runtime.cli_node_meta)
from runtime.cli_node_meta import NODE_META_COMMANDS  # noqa: E402

COMMANDS.update(NODE_META_COMMANDS)
# ---- end node meta

# ---- alloc exec (runtime.cli_exec)
from runtime.cli_exec import EXEC_COMMANDS  # noqa: E402

COMMANDS.update(EXEC_COMMANDS)
# ---- end alloc exec

# ---- operator api (runtime.cli_operator_api)
from runtime.cli_operator_api import OPERATOR_API_COMMANDS  # noqa: E402

COMMANDS.update(OPERATOR_API_COMMANDS)

# nomad check (a Nagios-style probe of the agent), license get and the Enterprise-only commands.
from runtime.cli_check import CHECK_COMMANDS  # noqa: E402

COMMANDS.update(CHECK_COMMANDS)

# nomad ui (the web UI's address: this agent's /ui/ pages say it serves none).
from runtime.cli_ui import UI_COMMANDS  # noqa: E402

COMMANDS.update(UI_COMMANDS)

# nomad job action / nomad action (a task's job action, run as alloc exec runs a command).
from runtime.cli_job_action import JOB_ACTION_COMMANDS  # noqa: E402

COMMANDS.update(JOB_ACTION_COMMANDS)
# ---- end operator api


# Commands whose -t is not Nomad's output template (alloc exec: a TTY).
# job run/plan/validate's -json says the job file is JSON; they have no -t (as Nomad's).
NOT_TEMPLATE_T = {("alloc", "exec"), ("job", "action"), ("action",), ("job", "run"), ("job", "plan"), ("job", "validate"), ("quota", "apply"),
                  ("namespace", "apply")}  # -json: the input is JSON (no output to template)


def template_flag(words: tuple[str, ...], args: list[str]) -> tuple[list[str], str | None]:
    """Nomad's ``-t <Go template>`` output flag, on every command that has ``-json``: taken out of
    *args* and replaced by ``-json``, whose output the template then formats (``Format`` in Nomad's
    command/helpers.go).  (args, None) when not given."""
    if words in NOT_TEMPLATE_T:
        return args, None
    out: list[str] = []
    tmpl = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            break
        if a in ("-t", "--t") and i + 1 < len(args):
            tmpl = args[i + 1]
            i += 2
            continue
        if a.startswith(("-t=", "--t=")):
            tmpl = a.split("=", 1)[1]
            i += 1
            continue
        out.append(a)
        i += 1
    if tmpl is None:
        return args, None
    if any(a in ("-json", "--json") or a.startswith(("-json=", "--json=")) for a in out):
        raise CliError("Both json and template formatting are not allowed")
    if not tmpl:
        raise CliError("template needs to be specified in golang's text/template format.")
    return ["-json", *out], tmpl  # first: flags end at the first argument (Go's flag package)


def render_template(tmpl: str, data: Any, error_prefix: str = "") -> str:
    """*data* rendered by a user's Go template; a template error is a CliError (after *error_prefix*)."""
    from runtime.gotemplate import TemplateError, render

    try:
        # the CLI formats what the user asked for, however large (the agent's bounds are for jobs' templates)
        return render(tmpl, dot=data, max_output=1 << 40, max_steps=1 << 40)
    except TemplateError as e:
        raise CliError(f"{error_prefix}{e}") from None


def format_template(tmpl: str, out: str) -> str:
    """The command's -json output formatted by a Go template (Nomad's TemplateFormat)."""
    try:
        data = json.loads(out) if out else None
    except ValueError:
        raise CliError("this command has no -json output to format with -t") from None
    return render_template(tmpl, data, "Error formatting the data: ")


# Nomad's top-level shorthands (command/commands.go): `nomad run job.hcl` is `nomad job run job.hcl`, ...
ALIASES: dict[str, tuple[str, ...]] = {
    "run": ("job", "run"), "stop": ("job", "stop"), "plan": ("job", "plan"), "validate": ("job", "validate"),
    "inspect": ("job", "inspect"), "init": ("job", "init"), "start": ("job", "start"),
    "logs": ("alloc", "logs"), "fs": ("alloc", "fs"), "exec": ("alloc", "exec"),
    "alloc-status": ("alloc", "status"), "eval-status": ("eval", "status"), "node-status": ("node", "status"),
    "node-drain": ("node", "drain"), "server-members": ("server", "members"),
    "server-join": ("server", "join"),
    "server-force-leave": ("server", "force-leave"), "client-config": ("node", "config"),
    "debug": ("operator", "debug"),  # Nomad's commands.go: the same OperatorDebugCommand, not deprecated
}
# Those Nomad wraps in its DeprecatedCommand (a warning on stderr first).
DEPRECATED_ALIASES = frozenset({"client-config", "server-force-leave", "server-join", "server-members"})


# Commands whose arguments after the first are another program's (alloc exec's command): Go's flag
# package stops at a command's first argument, so no general flag is read from there.  Their own flags
# that take a value (the rest are booleans).
PASSTHROUGH = {("alloc", "exec"): frozenset({"-task", "-e"})}


def _flags_end(argv: list[str]) -> int:
    """Where main stops reading the general flags: at "--" (Go's end of flags), or after a pass-through
    command's first argument; len(argv) otherwise."""
    takes_value = {*GENERAL_VALUE_FLAGS, *TLS_FLAGS, "-address", "-token"}
    words: list[str] = []
    command: tuple[str, ...] | None = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return i
        name = a.partition("=")[0]
        name = name[1:] if name.startswith("--") else name
        if a.startswith("-") and a != "-":
            if "=" not in a and (name in takes_value or (command and name in PASSTHROUGH[command])):
                i += 1
        elif command is not None:
            return i + 1  # the allocation (or job) ID; the program and its arguments follow
        else:
            words.append(a)
            expanded = (*ALIASES.get(words[0], (words[0],)), *words[1:])
            command = expanded if expanded in PASSTHROUGH else None
            if command is None and not any(k[:len(expanded)] == expanded for k in PASSTHROUGH):
                return len(argv) if "--" not in argv[i:] else i + argv[i:].index("--")
        i += 1
    return len(argv)


def main(argv: list[str]) -> int:
    addr = os.environ.get("NOMAD_ADDR", DEFAULT_ADDR)
    token = os.environ.get("NOMAD_TOKEN", "")
    tls_files = {flag: os.environ.get(env, "") for flag, env in (TLS_FLAGS | TLS_BOOL_FLAGS).items()}
    for flag in TLS_BOOL_FLAGS:  # Nomad's api.DefaultConfig ignores an environment value that is no bool
        if tls_files[flag] not in GO_BOOLS:
            tls_files[flag] = ""
    general = {flag: os.environ.get(env, "") for flag, env in GENERAL_VALUE_FLAGS.items()}
    given: dict[str, str] = {}  # the general flags on the command line (some commands read them as theirs)
    # Nomad's tls commands take no API flags: their -region is the certificate's own.
    local = next((a for a in argv if not a.startswith("-")), "") in LOCAL_COMMANDS
    rest = []
    end = _flags_end(argv)
    i = 0
    while i < len(argv):
        a = argv[i]
        if i >= end:  # "--", or the program alloc exec runs: its arguments are all its own
            rest += argv[i:]
            break
        name = a.partition("=")[0]
        if name.startswith("--"):  # Go's flag package takes -flag and --flag alike
            name = name[1:]
        name = TLS_BOOL_ALIASES.get(name, name)
        if name in TLS_BOOL_FLAGS or name in IGNORED_BOOL_FLAGS:
            value = a.partition("=")[2] if "=" in a else "true"
            if value not in GO_BOOLS:
                print(f'invalid boolean value "{value}" for {name}: parse error', file=sys.stderr)
                return 1
            if name in TLS_BOOL_FLAGS and value in GO_TRUE:  # Nomad's meta: only a true flag overrides
                tls_files[name] = "true"
        elif name in TLS_FLAGS and "=" in a:
            tls_files[name] = a.partition("=")[2]
        elif name in TLS_FLAGS and i + 1 < len(argv):
            tls_files[name] = argv[i + 1]
            i += 1
        elif local and name in GENERAL_VALUE_FLAGS:
            rest.append(a)
        elif name in GENERAL_VALUE_FLAGS and "=" in a:
            general[name] = given[name] = a.partition("=")[2]
        elif name in GENERAL_VALUE_FLAGS and i + 1 < len(argv):
            general[name] = given[name] = argv[i + 1]
            i += 1
        elif name == "-address" and "=" in a:
            addr = a.split("=", 1)[1]
        elif name == "-address" and i + 1 < len(argv):
            addr = argv[i + 1]
            i += 1
        elif name == "-token" and "=" in a:
            token = a.split("=", 1)[1]
        elif name == "-token" and i + 1 < len(argv):
            token = argv[i + 1]
            i += 1
        else:
            rest.append(a)
        i += 1
    ACTIVE["flags"] = given
    try:
        use_token(token, *tls_handlers(addr, tls_files),
                  query={"region": general["-region"], "namespace": general["-namespace"]})
    except CliError as e:  # a TLS file or flag: the message carries Nomad's own context
        print(e, file=sys.stderr)
        return 1
    if rest and rest[0] in ALIASES:
        old_name, new_words = rest[0], ALIASES[rest[0]]
        if old_name in DEPRECATED_ALIASES:  # Nomad's DeprecatedCommand warning, then the command itself
            print(f'WARNING! The "nomad {old_name}" command is deprecated. Please use "nomad '
                  f'{" ".join(new_words)}" instead. This command will be removed a later version of Nomad.\n',
                  file=sys.stderr)
        rest = [*new_words, *rest[1:]]
    from runtime.cli_help import intercept, top_usage  # -h, a group alone, an unknown command: as Nomad's

    if (helped := intercept(rest)) is not None:
        return helped
    for words in sorted(COMMANDS, key=len, reverse=True):
        if tuple(rest[: len(words)]) == words:
            try:
                args, tmpl = template_flag(words, rest[len(words):])
                try:
                    out = COMMANDS[words](addr, args)
                except CliError as e:
                    if tmpl is not None and str(e) == "flag provided but not defined: -json":
                        raise CliError("flag provided but not defined: -t") from None
                    raise
                if tmpl is not None:
                    text, code = out if isinstance(out, tuple) else (out, 0)
                    out = (format_template(tmpl, text), code)
            except CliError as e:
                print(error_line(words, rest[len(words):], e), file=sys.stderr)
                return ERROR_EXIT.get(words, 1)
            except KeyboardInterrupt:  # Ctrl-C ends a watch (a deployment, a restart): no traceback
                return EXIT_INTERRUPTED
            out, code = out if isinstance(out, tuple) else (out, 0)  # (output, exit code): job run's 2
            if out:
                print(out)
            return code
    print(top_usage())
    return 127  # Nomad's exit code for a command that does not exist

# ---- config validate (runtime.cli_config)
from runtime.cli_config import CONFIG_COMMANDS  # noqa: E402

COMMANDS.update(CONFIG_COMMANDS)
# ---- end config validate

# ---- eval delete (runtime.cli_eval_delete)
from runtime.cli_eval_delete import EVAL_DELETE_COMMANDS  # noqa: E402

COMMANDS.update(EVAL_DELETE_COMMANDS)
# ---- end eval delete

# ---- job start (runtime.cli_job_start)
from runtime.cli_job_start import JOB_START_COMMANDS  # noqa: E402

COMMANDS.update(JOB_START_COMMANDS)
# ---- end job start

# ---- var init, node pool init (runtime.cli_init_files)
from runtime.cli_init_files import INIT_FILE_COMMANDS  # noqa: E402

COMMANDS.update(INIT_FILE_COMMANDS)
# ---- end var init, node pool init

# ---- operator raft info|logs|state: a stopped server's raft store, offline (runtime.cli_raft_offline)
from runtime.cli_raft_offline import RAFT_OFFLINE_COMMANDS  # noqa: E402

COMMANDS.update(RAFT_OFFLINE_COMMANDS)
# ---- end operator raft info|logs|state

# ---- operator root keyring list|rotate|remove (runtime.cli_root_keyring)
from runtime.cli_root_keyring import ROOT_KEYRING_COMMANDS  # noqa: E402

COMMANDS.update(ROOT_KEYRING_COMMANDS)
# ---- end operator root keyring

# ---- operator debug (runtime.cli_debug)
from runtime.cli_debug import DEBUG_COMMANDS  # noqa: E402

COMMANDS.update(DEBUG_COMMANDS)
# ---- end operator debug

# ---- fmt (runtime.cli_fmt)
from runtime.cli_fmt import FMT_COMMANDS  # noqa: E402

COMMANDS.update(FMT_COMMANDS)
# ---- end fmt

# ---- volume status, plugin status (runtime.cli_volumes)
from runtime.cli_volumes import VOLUME_COMMANDS  # noqa: E402

COMMANDS.update(VOLUME_COMMANDS)
# ---- end volume status, plugin status

# ---- acl auth-method, acl binding-rule, login (runtime.cli_acl_auth)
from runtime.cli_acl_auth import ACL_AUTH_COMMANDS  # noqa: E402

COMMANDS.update(ACL_AUTH_COMMANDS)
# ---- end acl auth-method, acl binding-rule, login
