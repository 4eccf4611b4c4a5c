"""``nomad node pool list | info | apply | delete | nodes | jobs``, as Nomad's ``command/node_pool_*.go``.

``apply <file>`` reads Nomad's node pool specification, HCL
(``node_pool "name" { description = "..." meta { k = "v" } }``) or, with
``-json`` or a ``.json`` file, the API's ``NodePool`` object.  ``info``,
``nodes`` and ``jobs`` take a name or a unique prefix of one; ``nodes`` and
``jobs`` take ``-filter``, ``-per-page`` and ``-page-token``.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from typing import Any

from runtime.cli import CliError, table
from runtime.cli_jobs import as_json, fmt_time, go_duration_ns, kv, one_arg, parse_flags, request, short

__all__ = ["NODE_POOL_COMMANDS"]


def _path(name: str) -> str:
    return f"/v1/node/pool/{urllib.parse.quote(name, safe='')}"


def api_pool(pool: dict[str, Any]) -> dict[str, Any]:
    """A pool as Nomad's CLI prints it with -json: api.NodePool's MarshalJSON puts the node identity TTL
    first, as a Go duration ("" when unset), and has no Hash."""
    ttl = pool.get("NodeIdentityTTL")
    out = {"NodeIdentityTTL": go_duration_ns(ttl) if ttl else ""}
    out.update((k, pool.get(k)) for k in ("Name", "Description", "Meta", "SchedulerConfiguration",
                                          "CreateIndex", "ModifyIndex"))
    return out


def pool_list(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool, "prefix": str, "filter": str, "per-page": str,
                                     "page-token": str})
    if rest:
        raise CliError("This command takes no arguments")
    try:
        per_page = int(flags.get("per-page") or 0)
    except ValueError:
        raise CliError(f'invalid value "{flags["per-page"]}" for flag -per-page: parse error') from None
    meta: dict[str, Any] = {}
    try:
        pools = request(addr, "GET", "/v1/node/pools", prefix=flags.get("prefix"),
                        filter=flags.get("filter") or None, per_page=per_page or None,
                        next_token=flags.get("page-token") or None, answer_meta=meta) or []
    except CliError as e:
        raise CliError(f"Error querying node pools: {e}") from None
    if flags.get("json"):
        return as_json([api_pool(p) for p in pools])
    if not pools:
        return "No node pools found"
    return table([["Name", "Description"]] + [[p["Name"], p.get("Description") or ""] for p in pools]) \
        + _next_page(meta, "")


def _by_prefix(addr: str, prefix: str) -> dict[str, Any]:
    """Nomad's nodePoolByPrefix: the one pool the prefix matches, or the exact name among several."""
    try:
        pools = request(addr, "GET", "/v1/node/pools", prefix=prefix) or []
    except CliError as e:
        raise CliError(f"Error retrieving node pool: {e}") from None
    exact = [p for p in pools if p["Name"] == prefix]
    if len(pools) == 1 or exact:
        return (exact or pools)[0]
    if not pools:
        raise CliError(f'Error retrieving node pool: No node pool with prefix "{prefix}" found')
    rows = [["Name", "Description"]] + [[p["Name"], p.get("Description") or ""] for p in pools]
    raise CliError("Prefix matched multiple node pools\n\n" + table(rows))


def pool_info(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <node-pool>")
    pool = _by_prefix(addr, rest[0])
    if flags.get("json"):
        return as_json(api_pool(pool))
    basic = [("Name", pool["Name"]), ("Description", pool.get("Description") or "")]
    if pool.get("NodeIdentityTTL"):
        basic.append(("Node Identity TTL", go_duration_ns(pool["NodeIdentityTTL"])))
    meta = pool.get("Meta") or {}
    sched = pool.get("SchedulerConfiguration")
    if sched:
        rows = [("Scheduler Algorithm", sched.get("SchedulerAlgorithm", ""))]
        if sched.get("MemoryOversubscriptionEnabled") is not None:
            rows.append(("Memory Oversubscription Enabled",
                         str(sched["MemoryOversubscriptionEnabled"]).lower()))
        sched_text = kv(rows)
    else:
        sched_text = "No scheduler configuration"
    return "\n".join([kv(basic), "", "Metadata", kv(sorted(meta.items())) if meta else "No metadata",
                      "", "Scheduler Configuration", sched_text])


def _spec(path: str, as_json_spec: bool) -> dict[str, Any]:
    """The pool *path* specifies; ``-``: read from stdin, as Nomad's node pool apply."""
    if path == "-":
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"Failed to read stdin: {e}") from None
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:  # Go's *PathError: "open <path>: no such file or directory"
            why = (e.strerror or str(e)).lower()
            raise CliError(f"Failed to read file {json.dumps(path)}: open {path}: {why}") from None
    if as_json_spec or path.endswith(".json"):
        try:
            spec = json.loads(text)
        except ValueError as e:
            raise CliError(f"Failed to parse node pool: {e}") from None
        if not isinstance(spec, dict):
            raise CliError("Failed to parse node pool: the file must hold one NodePool object")
        return spec
    from runtime.hcl_job import HclJobError, _load

    try:
        doc = _load(text, "node pool specification")
    except HclJobError as e:
        raise CliError(f"Failed to parse node pool: {e}") from None
    blocks = doc.get("node_pool") or []
    if len(blocks) != 1 or not isinstance(blocks[0], dict) or len(blocks[0]) != 1:
        raise CliError("Failed to parse node pool: the file must hold exactly one node_pool block")
    (name, body), = blocks[0].items()
    meta = body.get("meta") or {}
    if isinstance(meta, list):  # a block: [{k: v}]
        meta = {k: v for m in meta for k, v in m.items()}
    return {"Name": name, "Description": body.get("description", ""),
            "Meta": {str(k): str(v) for k, v in meta.items()} or None}


def pool_apply(addr: str, args: list[str]) -> str:
    flags, rest = parse_flags(args, {"json": bool})
    spec = _spec(one_arg(rest, "nomad node pool apply <file>"), bool(flags.get("json")))
    request(addr, "PUT", "/v1/node/pools", spec)
    return f"Successfully applied node pool {spec.get('Name')!r}!".replace("'", '"')


def pool_delete(addr: str, args: list[str]) -> str:
    _, rest = parse_flags(args, {})
    name = one_arg(rest, "nomad node pool delete <node-pool>")
    request(addr, "DELETE", _path(name))
    return f'Successfully deleted node pool "{name}"!'


_LIST_FLAGS = {"json": bool, "filter": str, "per-page": str, "page-token": str}


def _pool_list_of(addr: str, args: list[str], what: str, extra: dict[str, type]) -> tuple[Any, dict, dict]:
    """``node pool nodes|jobs``: the pool (a name or unique prefix) and its *what* with Nomad's -filter,
    -per-page and -page-token; (the list, the flags, the answer's meta)."""
    flags, rest = parse_flags(args, {**_LIST_FLAGS, **extra})
    if len(rest) != 1:
        raise CliError("This command takes one argument: <node-pool>")
    try:
        per_page = int(flags.get("per-page") or 0)
    except ValueError:
        raise CliError(f'invalid value "{flags["per-page"]}" for flag -per-page: parse error') from None
    pool = _by_prefix(addr, rest[0])
    meta: dict[str, Any] = {}
    try:
        found = request(addr, "GET", f"{_path(pool['Name'])}/{what}", filter=flags.get("filter") or None,
                        per_page=per_page or None, next_token=flags.get("page-token") or None,
                        answer_meta=meta) or []
    except CliError as e:
        raise CliError(f"Error querying {what}: {e}") from None
    return found, flags, meta


def _next_page(meta: dict[str, Any], indent: str) -> str:
    """Nomad's hint after a paged table: the command again (argsWithoutPageToken) with the next token."""
    if not meta.get("next_token"):
        return ""
    argv, skip = [], 0
    for a in sys.argv:
        if skip:
            skip -= 1
            continue
        if a.startswith("-page-token"):
            skip = 0 if "=" in a else 1
            continue
        argv.append(a)
    return (f"\n\n{indent}Results have been paginated. To get the next page run:\n\n"
            f"{indent}{' '.join(argv)} -page-token {meta['next_token']}")


def pool_nodes(addr: str, args: list[str]) -> str:
    nodes, flags, meta = _pool_list_of(addr, args, "nodes", {"verbose": bool})
    if not nodes:
        return "No nodes"
    if flags.get("json"):
        return as_json(nodes)
    verbose = bool(flags.get("verbose"))
    rows = [["ID", "Node Pool", "DC", "Name", "Class", "Drain", "Eligibility", "Status"]]
    rows += [[short(n["ID"], verbose), n.get("NodePool", "default"), n.get("Datacenter", ""),
              n.get("Name", ""), n.get("NodeClass") or "<none>", str(bool(n.get("Drain"))).lower(),
              n.get("SchedulingEligibility", ""), n.get("Status", "")] for n in nodes]
    return table(rows) + _next_page(meta, "")


def pool_jobs(addr: str, args: list[str]) -> str:
    jobs, flags, meta = _pool_list_of(addr, args, "jobs", {})
    if not jobs:
        return "No jobs"
    if flags.get("json"):
        return as_json(jobs)
    rows = [["ID", "Namespace", "Type", "Priority", "Status", "Submit Date"]]
    rows += [[j["ID"], j.get("Namespace", "default"), j.get("Type", ""), str(j.get("Priority", 50)),
              j.get("Status", ""), fmt_time(j.get("SubmitTime"))] for j in jobs]
    return table(rows) + _next_page(meta, " ")  # Nomad's jobs hint is indented by a space


NODE_POOL_COMMANDS = {
    ("node", "pool", "list"): pool_list,
    ("node", "pool", "info"): pool_info,
    ("node", "pool", "apply"): pool_apply,
    ("node", "pool", "delete"): pool_delete,
    ("node", "pool", "nodes"): pool_nodes,
    ("node", "pool", "jobs"): pool_jobs,
}
