"""``GET /v1/agent/host``: the agent's host, as ``nomad operator debug`` collects it (Nomad's ``HostData``).

``{OS, Network, ResolvConf, Hosts, Environment, Disk}`` as Nomad's
``host.MakeHostData``:

* ``OS`` -- uname's machine, node name, release, system and version, space-separated.
* ``Network`` -- one map per interface address, with go-sockaddr's dump keys
  (``type``, ``string``, ``address``, ``host``, ``port``, ``netmask``,
  ``network``, ``mask_bits``, ``size``, and ``broadcast`` for IPv4).
* ``ResolvConf`` and ``Hosts`` -- /etc/resolv.conf and /etc/hosts as text (the
  error's text when unreadable, as Nomad's ``slurp``).
* ``Environment`` -- the agent's environment; the values of Nomad's
  ``DefaultEnvDenyList`` and of any name holding ``TOKEN`` or ``SECRET`` are
  ``<redacted>``.
* ``Disk`` -- ``{mount point: {DiskMB, UsedMB}}`` per mounted partition,
  pseudo file systems (tmpfs, sysfs, ...) left out.

Measured with psutil at the HTTP edge.  Who may ask, as Nomad's
``AllowAgentDebug``: with ACLs, ``agent:read`` (actors.acl's ``/v1/agent/``
rule); without, only an agent started with ``enable_debug`` (else 403).

``?server_id=`` / ``?node_id=`` naming this agent answer Nomad's
``HostDataResponse {AgentID, HostData}``; naming another agent is refused
with 400 (this agent does not forward Agent.Host; ask that agent's own HTTP
address); both at once: Nomad's 400.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from actors.http_agent_id import own_agent_id
from actors.http_api import Api, CodedError, Request, require, route

# Nomad's host.DefaultEnvDenyList: redacted in Environment (and any name containing TOKEN or SECRET).
ENV_DENY = frozenset({
    "CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "NOMAD_TOKEN", "VAULT_TOKEN",
    "CONSUL_LICENSE", "NOMAD_LICENSE", "VAULT_LICENSE",
    "CONSUL_LICENSE_PATH", "NOMAD_LICENSE_PATH", "VAULT_LICENSE_PATH",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_METADATA_URL",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN"})
# The file systems Nomad's mountedPaths leaves out of Disk.
PSEUDO_FS = frozenset({"autofs", "binfmt_misc", "cgroup", "debugfs", "devpts", "devtmpfs", "fusectl",
                       "fuse.lxcfs", "hugetlbfs", "mqueue", "procfs", "pstore", "rpc_pipefs",
                       "securityfs", "sysfs", "tmpfs", "vboxsf", "ptyfs"})
REDACTED = "<redacted>"
_MB = 1048576


def environment(environ: dict[str, str]) -> dict[str, str]:
    return {k: REDACTED if k in ENV_DENY or "TOKEN" in k.upper() or "SECRET" in k.upper() else v
            for k, v in environ.items()}


def sockaddr_dump(address: str, netmask: str | None) -> dict[str, str] | None:
    """go-sockaddr's dump of one IP address (the keys Nomad's dumpSockAddr shows most tools read)."""
    address = address.split("%", 1)[0]  # an IPv6 zone
    try:
        if netmask and ":" in netmask:  # an IPv6 mask: ipaddress takes its prefix length only
            netmask = str(bin(int(ipaddress.IPv6Address(netmask))).count("1"))
        iface = ipaddress.ip_interface(f"{address}/{netmask}" if netmask else address)
    except ValueError:
        return None
    net, bits = iface.network, iface.network.prefixlen
    out = {"type": f"IPv{iface.version}", "string": str(iface) if iface.version == 4 or bits < 128
           else str(iface.ip), "address": str(iface.ip), "host": f"{iface.ip}/{net.max_prefixlen}",
           "port": "0", "netmask": str(net.netmask), "network": f"{net.network_address}/{bits}",
           "mask_bits": str(bits), "size": str(net.num_addresses)}
    if iface.version == 4:
        out["broadcast"] = str(net.broadcast_address)
    return out


def _slurp(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        return str(e)


def host_data() -> dict[str, Any]:
    import psutil

    u = os.uname()
    network = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                dumped = sockaddr_dump(a.address, a.netmask)
                if dumped is not None:
                    network.append(dumped)
    disk: dict[str, dict[str, int]] = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FS:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue  # Nomad skips a path it cannot measure
        disk[part.mountpoint] = {"DiskMB": usage.total // _MB, "UsedMB": (usage.total - usage.free) // _MB}
    return {"OS": " ".join((u.machine, u.nodename, u.release, u.sysname, u.version)), "Network": network,
            "ResolvConf": _slurp("/etc/resolv.conf"), "Hosts": _slurp("/etc/hosts"),
            "Environment": environment(dict(os.environ)), "Disk": disk}


@route("/v1/agent/host")
def agent_host(req: Request, api: Api) -> Any:
    require(req, "GET")
    if not api.ctx.acl_enabled and not api.ctx.enable_debug:
        raise CodedError(403, "Permission denied")  # Nomad's AllowAgentDebug without ACLs
    server_id = (req.query.get("server_id") or [""])[0]
    node_id = (req.query.get("node_id") or [""])[0]
    if server_id and node_id:
        raise CodedError(400, "Can only forward to either client node or server")
    if not server_id and not node_id:
        return host_data()
    key, other = ("server_id", server_id) if server_id else ("node_id", node_id)
    agent_id = own_agent_id(api, key, other)
    if agent_id:
        return {"AgentID": agent_id, "HostData": host_data()}
    raise CodedError(400, f"{key} {other!r} is not this agent: the host data of another agent is not "
                          "forwarded here; ask that agent's own HTTP address")
