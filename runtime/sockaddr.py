"""go-sockaddr templates (``hashicorp/go-sockaddr/template``) over the host's interfaces.

Nomad reads every address of its agent config (``bind_addr``,
``addresses.*``, ``advertise.*``) as a go-sockaddr template, and
consul-template's ``sockaddr`` function evaluates one in a job's template:
``{{ GetPrivateIP }}``, ``{{ GetInterfaceIP "eth0" }}``, ``{{
GetPrivateInterfaces | include "network" "10.0.0.0/8" | attr "address" }}``.
:func:`parse` runs such a template (Go's text/template: runtime.gotemplate,
with go-sockaddr's functions and no others) over a :class:`HostNet` -- the
interfaces, their addresses and flags, and the interface of the default
route -- that a provider gives: :func:`host_interfaces` reads this host
(psutil, /proc/net/route), tests give a fixed one.

The functions are go-sockaddr's, with its semantics and its messages:

* sources: ``GetAllInterfaces`` (also the template's ``.``),
  ``GetDefaultInterfaces``, ``GetPrivateInterfaces`` (forwardable, up, in
  RFC 6890: RFC 1918, 6598, 4193...; those of the default interface first),
  ``GetPublicInterfaces`` (the same, not in RFC 6890);
* strings: ``GetPrivateIP``/``GetPrivateIPs``, ``GetPublicIP``/
  ``GetPublicIPs``, ``GetInterfaceIP``/``GetInterfaceIPs`` (a regular
  expression naming the interface; ``GetInterfaceIP`` takes only a
  forwardable address, so never a loopback one, as go-sockaddr);
* on a list: ``sort`` (``address default name port private size type``, each
  ``+``/``-``, comma separated), ``include``/``exclude`` (``address flag(s)
  name network port rfc(s) size type``; ``|`` for several), ``unique``
  (``address name``), ``limit``, ``offset``, ``math`` (``address network
  mask``), ``attr`` and ``join`` (``address name flags network netmask
  mask_bits size port type string host broadcast first_usable last_usable
  binary hex octets uint32 uint128``).

Nomad's use of them (command/agent/config.go, go-secure-stdlib's
listenerutil): :func:`parse_single_ip_template` and
:func:`parse_multiple_ip_template`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.gotemplate import TemplateError, _regex, render
from runtime.gotemplate import parse as parse_go_template

TEMPLATE_NAME = "sockaddr.Parse"  # the name go-sockaddr gives its template (Go's error texts carry it)

# Go's net.Flags bits (net.FlagUp ...), as an interface's flags.
FLAG_UP, FLAG_BROADCAST, FLAG_LOOPBACK, FLAG_POINT_TO_POINT, FLAG_MULTICAST, FLAG_RUNNING = 1, 2, 4, 8, 16, 32
_FLAG_NAMES = ((FLAG_UP, "up"), (FLAG_BROADCAST, "broadcast"), (FLAG_LOOPBACK, "loopback"),
               (FLAG_POINT_TO_POINT, "pointtopoint"), (FLAG_MULTICAST, "multicast"),
               (FLAG_RUNNING, "running"))
# psutil's names of the kernel's IFF_* flags -> Go's.
_PSUTIL_FLAGS = {"up": FLAG_UP, "broadcast": FLAG_BROADCAST, "loopback": FLAG_LOOPBACK,
                 "pointopoint": FLAG_POINT_TO_POINT, "multicast": FLAG_MULTICAST, "running": FLAG_RUNNING}

TYPE_UNIX, TYPE_IPV4, TYPE_IPV6 = 1, 2, 4  # go-sockaddr's SockAddrType (its sort "type" order)
_TYPE_NAMES = {TYPE_UNIX: "UNIX", TYPE_IPV4: "IPv4", TYPE_IPV6: "IPv6"}


class SockaddrError(ValueError):
    """The template does not parse or run, or its result is not what the caller needs; go-sockaddr's
    (or Nomad's) message."""


# ------------------------------------------------------------------ the host


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface as Go's net.Interface sees it, with its addresses (``10.0.0.5/24``,
    ``fe80::1/64``)."""

    name: str
    addrs: tuple[str, ...] = ()
    index: int = 0
    mtu: int = 1500
    flags: int = FLAG_UP | FLAG_RUNNING
    hardware_addr: str = ""


@dataclass(frozen=True, slots=True)
class HostNet:
    """The interfaces a template sees, in Go's order (by index), and the name of the one holding the
    default route (None: no default route; ``GetDefaultInterfaces`` then fails, as go-sockaddr's)."""

    interfaces: tuple[Interface, ...] = ()
    default_interface: str | None = None


def _prefix_len(netmask: str | None, bits: int) -> int:
    if not netmask:
        return bits
    try:
        return bin(int(ipaddress.ip_address(netmask))).count("1")
    except ValueError:
        return bits


def default_route_interface(route: str = "/proc/net/route",
                            route6: str = "/proc/net/ipv6_route") -> str | None:
    """The interface of the IPv4 default route (through a gateway, as ``ip route``'s ``default via
    ... dev X`` that go-sockaddr reads; the lowest metric of several); without one, that of the IPv6
    default route; None when there is neither."""
    best: tuple[int, str] | None = None
    try:
        with open(route) as fh:
            for line in fh.read().splitlines()[1:]:
                f = line.split()
                if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000" and int(f[3], 16) & 0x3 == 0x3:
                    if best is None or int(f[6]) < best[0]:
                        best = (int(f[6]), f[0])
    except (OSError, ValueError):
        pass
    if best is not None:
        return best[1]
    try:
        with open(route6) as fh:
            for line in fh.read().splitlines():
                f = line.split()
                # dest ::/0, a next hop, the route up and through a gateway (RTF_UP|RTF_GATEWAY)
                if (len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[4] != "0" * 32
                        and int(f[8], 16) & 0x3 == 0x3 and (best is None or int(f[5], 16) < best[0])):
                    best = (int(f[5], 16), f[9])
    except (OSError, ValueError):
        pass
    return best[1] if best is not None else None


def host_interfaces() -> HostNet:
    """This host's interfaces (psutil) and its default route's interface (/proc): the production
    provider of :func:`parse_host`."""
    import psutil

    stats = psutil.net_if_stats()
    found: list[Interface] = []
    for name, entries in psutil.net_if_addrs().items():
        addrs: list[str] = []
        hw = ""
        for e in entries:
            if e.family == socket.AF_INET:
                addrs.append(f"{e.address}/{_prefix_len(e.netmask, 32)}")
            elif e.family == socket.AF_INET6:
                addrs.append(f"{e.address.split('%', 1)[0]}/{_prefix_len(e.netmask, 128)}")
            elif e.family == psutil.AF_LINK and e.address.strip("0:"):
                hw = e.address  # Go leaves an all-zero hardware address (loopback's) empty
        st = stats.get(name)
        flags = 0
        if st is not None:
            names = getattr(st, "flags", "")
            flags = sum(bit for n, bit in _PSUTIL_FLAGS.items() if n in names.split(",")) if names else \
                (FLAG_UP if st.isup else 0)
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            index = 0
        found.append(Interface(name=name, addrs=tuple(addrs), index=index, mtu=st.mtu if st else 0,
                               flags=flags, hardware_addr=hw))
    found.sort(key=lambda i: (i.index, i.name))
    return HostNet(interfaces=tuple(found), default_interface=default_route_interface())


# ------------------------------------------------------------------ addresses


_FULL = {TYPE_IPV4: (1 << 32) - 1, TYPE_IPV6: (1 << 128) - 1}
_BITS = {TYPE_IPV4: 32, TYPE_IPV6: 128}


@dataclass(frozen=True, slots=True)
class SockAddr:
    """go-sockaddr's IPv4Addr / IPv6Addr: an address, its mask bits and a port (0: none)."""

    type: int
    address: int
    mask_bits: int
    port: int = 0

    @property
    def bits(self) -> int:
        return _BITS[self.type]

    @property
    def mask(self) -> int:
        return _FULL[self.type] ^ ((1 << (self.bits - self.mask_bits)) - 1)

    @property
    def network(self) -> int:
        return self.address & self.mask

    @property
    def broadcast(self) -> int:
        return self.network | (_FULL[self.type] ^ self.mask)

    @property
    def go_type(self) -> str:
        return "sockaddr.IPv4Addr" if self.type == TYPE_IPV4 else "sockaddr.IPv6Addr"

    def net_ip(self) -> str:
        """Go's net.IP String() of the address (an IPv4-mapped IPv6 address prints as IPv4)."""
        return _ip_text(self.type, self.address)

    def string(self) -> str:
        """go-sockaddr's String(): ``ip:port`` / ``[ip]:port`` with a port, the bare address for a
        host mask, else ``ip/bits``."""
        ip = self.net_ip()
        if self.port:
            return f"{ip}:{self.port}" if self.type == TYPE_IPV4 else f"[{ip}]:{self.port}"
        return ip if self.mask_bits == self.bits else f"{ip}/{self.mask_bits}"

    def contains(self, other: SockAddr) -> bool:
        """go-sockaddr's Contains: *other*'s network lies inside this one's (same family only)."""
        return (other.type == self.type and self.network <= other.network
                and self.broadcast >= other.broadcast)

    def go_string(self) -> str:
        return self.string()

    def go_method(self, name: str) -> Callable[[], Any] | None:
        return {"NetIP": self.net_ip, "String": self.string, "Type": lambda: _TYPE_NAMES[self.type],
                "Maskbits": lambda: self.mask_bits, "IPPort": lambda: self.port}.get(name)


def _ip_text(kind: int, value: int) -> str:
    if kind == TYPE_IPV4:
        return str(ipaddress.IPv4Address(value))
    if value >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return ipaddress.IPv6Address(value).compressed


def parse_ip(text: str) -> SockAddr:
    """go-sockaddr's NewIPAddr: ``a.b.c.d[/n]``, ``a.b.c.d:port``, ``x::y[/n]``, ``[x::y]:port``."""
    s = text
    try:
        if ":" not in s.split("/", 1)[0] or re.fullmatch(r"[0-9.]+:\d+", s):
            host, sep, rest = s.partition(":")
            if sep:  # IPv4 with a port
                if not rest.isdigit() or int(rest) > 65535:
                    raise ValueError
                return SockAddr(TYPE_IPV4, int(ipaddress.IPv4Address(host)), 32, int(rest))
            iface = ipaddress.IPv4Interface(s)
            return SockAddr(TYPE_IPV4, int(iface.ip), iface.network.prefixlen)
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", s)
        if m:
            port = int(m.group(2) or 0)
            if port > 65535:
                raise ValueError
            ip6 = ipaddress.IPv6Address(m.group(1).split("%", 1)[0])
            return SockAddr(TYPE_IPV6, int(ip6), 128, port)
        addr, _, bits = s.partition("/")
        iface6 = ipaddress.IPv6Interface(f"{addr.split('%', 1)[0]}/{bits or 128}")
        return SockAddr(TYPE_IPV6, int(iface6.ip), iface6.network.prefixlen)
    except ValueError:
        raise SockaddrError(f"invalid IPAddr {text}") from None


# The RFCs go-sockaddr knows (its rfc.go KnownRFCs), and its pseudo-RFC of the blocks no router forwards.
FORWARDING_BLACKLIST = 4294967295
_RFC_NETS: dict[int, tuple[str, ...]] = {
    919: ("255.255.255.255/32",),
    1112: ("224.0.0.0/4",),
    1122: ("0.0.0.0/8", "127.0.0.0/8"),
    1918: ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
    2544: ("198.18.0.0/15",),
    2765: ("0:0:0:0:0:ffff:0:0/96",),
    2928: ("2001::/16",),
    3056: ("2002::/16",),
    3068: ("192.88.99.0/24", "2002:c058:6301::/120"),
    3171: ("224.0.0.0/4",),
    3330: ("0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.2.0/24",
           "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"),
    3849: ("2001:db8::/32",),
    3927: ("169.254.0.0/16",),
    4038: ("0:0:0:0:0:ffff::/96",),
    4193: ("fc00::/7",),
    4291: ("::/128", "::1/128", "::/96", "::ffff:0:0/96", "fe80::/10", "fec0::/10", "ff00::/8"),
    4380: ("2001:0000::/32",),
    4773: ("2001:0000::/23",),
    4843: ("2001:10::/28",),
    5180: ("2001:0200::/48",),
    5735: ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15"),
    5737: ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
    6052: ("64:ff9b::/96",),
    6333: ("192.0.0.0/29",),
    6598: ("100.64.0.0/10",),
    6666: ("0100::/64",),
    6890: ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
           "192.0.0.0/24", "192.0.0.0/29", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
           "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
           "::1/128", "::/128", "64:ff9b::/96", "::ffff:0:0/96", "100::/64", "2001::/16", "2002::/16",
           "fc00::/7", "fe80::/10"),
    7335: ("192.0.0.0/29",),
    FORWARDING_BLACKLIST: ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "192.0.0.0/24", "192.0.2.0/24",
                           "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
                           "::1/128", "::/128", "::ffff:0:0/96", "2001:db8::/32", "2001:10::/28",
                           "fe80::/10"),
}


@functools.cache
def _rfc(number: int) -> tuple[SockAddr, ...] | None:
    nets = _RFC_NETS.get(number)
    return None if nets is None else tuple(parse_ip(n) for n in nets)


def is_rfc(number: int, sa: SockAddr) -> bool:
    return any(net.contains(sa) for net in _rfc(number) or ())


# ------------------------------------------------------------------ interface addresses


class IfAddr:
    """go-sockaddr's IfAddr: one address of one interface (``.Name``, ``.SockAddr``, ``.Flags``...)."""

    __slots__ = ("iface", "sa")
    go_type = "sockaddr.IfAddr"

    def __init__(self, sa: SockAddr, iface: Interface) -> None:
        self.sa, self.iface = sa, iface

    @property
    def name(self) -> str:
        return self.iface.name

    def go_string(self) -> str:
        i = self.iface
        return f"{self.sa.string()} {{{i.index} {i.mtu} {i.name} {i.hardware_addr} {flags_text(i.flags)}}}"

    def go_method(self, name: str) -> Callable[[], Any] | None:
        i = self.iface
        return {"Name": lambda: i.name, "Index": lambda: i.index, "MTU": lambda: i.mtu,
                "HardwareAddr": lambda: i.hardware_addr, "Flags": lambda: flags_text(i.flags),
                "SockAddr": lambda: self.sa, "String": self.go_string,
                "Type": lambda: _TYPE_NAMES[self.sa.type]}.get(name)

    def __repr__(self) -> str:
        return f"IfAddr({self.go_string()})"


def flags_text(flags: int) -> str:
    """Go's net.Flags String(): ``up|broadcast|multicast``; ``0`` for none."""
    return "|".join(n for bit, n in _FLAG_NAMES if flags & bit) or "0"


def all_interfaces(host: HostNet) -> list[IfAddr]:
    """GetAllInterfaces: every address of every interface."""
    out = []
    for iface in host.interfaces:
        for a in iface.addrs:
            try:
                out.append(IfAddr(parse_ip(a), iface))
            except SockaddrError:
                shown = go_quote(a, plus=False)
                raise SockaddrError(f"unable to create an IP address from {shown}") from None
    return out


# ------------------------------------------------------------------ helpers


def go_quote(s: str, plus: bool = True) -> str:
    """Go's %q (with *plus*, %+q: ASCII only) of a string."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[c])
        elif 0x20 <= o < 0x7F or (o >= 0x80 and not plus and c.isprintable()):
            out.append(c)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out) + '"'


def _go_type(v: Any) -> str:
    if isinstance(v, list) and all(isinstance(x, IfAddr) for x in v):
        return "sockaddr.IfAddrs"
    if v is None:
        return "<nil>"
    for t, n in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string")):
        if isinstance(v, t):
            return n
    return getattr(v, "go_type", None) or ("[]interface {}" if isinstance(v, list) else
                                           "map[string]interface {}" if isinstance(v, dict) else
                                           type(v).__name__)


def _ifaddrs(v: Any) -> list[IfAddr]:
    if isinstance(v, list) and all(isinstance(x, IfAddr) for x in v):
        return v
    raise SockaddrError(f"wrong type for value; expected sockaddr.IfAddrs; got {_go_type(v)}")


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise SockaddrError(f"wrong type for value; expected string; got {_go_type(v)}")


def _int(v: Any, unsigned: bool = False) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        if unsigned and v < 0:
            raise SockaddrError(f"expected unsigned integer; found {v}")
        return v
    shown = go_quote(v, plus=False) if isinstance(v, str) else _go_type(v)
    raise SockaddrError(f"expected {'unsigned ' if unsigned else ''}integer; found {shown}")


def _parse_int(value: str, bits: int, unsigned: bool = False) -> int:
    """Go's strconv.ParseInt / ParseUint (base 10) with its errors."""
    fn = "ParseUint" if unsigned else "ParseInt"
    if not re.fullmatch(r"[0-9]+" if unsigned else r"[+-]?[0-9]+", value):
        raise ValueError(f"strconv.{fn}: parsing {go_quote(value, plus=False)}: invalid syntax")
    n = int(value)
    lo, hi = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if not lo <= n <= hi:
        raise ValueError(f"strconv.{fn}: parsing {go_quote(value, plus=False)}: value out of range")
    return n


def _search(kind: str, pattern: str) -> Callable[[str], bool]:
    try:
        rx = _regex(pattern)
    except Exception as e:  # gotemplate's Go-worded "error parsing regexp: ..."
        raise SockaddrError(f"unable to compile {kind} regexp {go_quote(pattern)}: {e}") from None
    return lambda s: rx.search(s) is not None


# ------------------------------------------------------------------ filters (go-sockaddr's IfBy*)


Split = tuple[list[IfAddr], list[IfAddr]]


def _by(pred: Callable[[IfAddr], bool], ifs: list[IfAddr]) -> Split:
    matched = [x for x in ifs if pred(x)]
    return matched, [x for x in ifs if not pred(x)]


def _by_port(pattern: str, ifs: list[IfAddr]) -> Split:
    match = _search("port", pattern)
    return _by(lambda x: match(str(x.sa.port)), ifs)


def _by_rfc(param: str, ifs: list[IfAddr]) -> Split:
    try:
        number = _parse_int(param, 64, unsigned=True)
    except ValueError as e:
        raise SockaddrError(f"unable to parse RFC number {go_quote(param, plus=False)}: {e}") from None
    if _rfc(number) is None:
        raise SockaddrError(f"unsupported RFC {number}")
    return _by(lambda x: is_rfc(number, x.sa), ifs)


def _by_rfcs(param: str, ifs: list[IfAddr]) -> Split:
    included: list[IfAddr] = []
    excluded: list[IfAddr] = []
    for rfc in param.split("|"):
        try:
            inc, exc = _by_rfc(rfc, ifs)
        except SockaddrError as e:
            raise SockaddrError(f"unable to lookup RFC number {go_quote(rfc, plus=False)}: {e}") from None
        included += inc
        excluded += exc
    return included, excluded


def _by_mask_size(param: str, ifs: list[IfAddr]) -> Split:
    try:
        size = _parse_int(param, 64, unsigned=True)
    except ValueError as e:
        raise SockaddrError(f"invalid exclude size argument ({go_quote(param, plus=False)}): {e}") from None
    for x in ifs:
        if size > x.sa.bits:
            raise SockaddrError(f"mask size out of bounds for {_TYPE_NAMES[x.sa.type]} address: {size}")
    return _by(lambda x: x.sa.mask_bits == size, ifs)


def _by_type(types: str, ifs: list[IfAddr]) -> Split:
    wanted = types.lower().split("|")
    for t in wanted:
        if t not in ("ip", "ipv4", "ipv6", "unix"):
            raise SockaddrError(f"unsupported type {go_quote(t, plus=False)} {go_quote(types, plus=False)}")
    bits = {"ip": TYPE_IPV4 | TYPE_IPV6, "ipv4": TYPE_IPV4, "ipv6": TYPE_IPV6, "unix": TYPE_UNIX}
    matched: list[IfAddr] = []
    rest: list[IfAddr] = []
    for x in ifs:  # as go-sockaddr: once per type asked for, so "ipv4|ipv6" lists each address twice
        for t in wanted:
            (matched if x.sa.type & bits[t] else rest).append(x)
    return matched, rest


def _ip_attrs(sa: SockAddr) -> dict[str, bool]:
    """Go's net.IP predicates of the address."""
    ip = ipaddress.ip_address(sa.address) if sa.type == TYPE_IPV4 else ipaddress.IPv6Address(sa.address)
    if sa.type == TYPE_IPV6 and ip.ipv4_mapped is not None:  # Go treats ::ffff:a.b.c.d as IPv4
        ip = ip.ipv4_mapped
    v4 = ip.version == 4
    first, second = ip.packed[0], ip.packed[1]
    loopback = ip.is_loopback
    multicast = ip.is_multicast
    link_local = ((ip in ipaddress.ip_network("169.254.0.0/16")) if v4 else
                  (first == 0xFE and second & 0xC0 == 0x80))
    unspecified = ip.is_unspecified
    return {
        "global unicast": not (unspecified or loopback or multicast or link_local
                               or (v4 and int(ip) == 0xFFFFFFFF)),
        "interface-local multicast": not v4 and first == 0xFF and second & 0x0F == 0x01,
        "link-local multicast": (ip in ipaddress.ip_network("224.0.0.0/24")) if v4 else
        (first == 0xFF and second & 0x0F == 0x02),
        "link-local unicast": link_local,
        "loopback": loopback,
        "multicast": multicast,
        "unspecified": unspecified,
        "forwardable": not is_rfc(FORWARDING_BLACKLIST, sa),
    }


def _by_flag(flags: str, ifs: list[IfAddr]) -> Split:
    """go-sockaddr's IfByFlag: an address matches when its interface has every interface flag asked
    for, or its IP has any of the address properties asked for ("up|forwardable": either)."""
    want_flags = 0
    attrs: list[str] = []
    check_flags = False
    for name in flags.lower().split("|"):
        if name in ("broadcast", "point-to-point", "up"):
            check_flags = True
            want_flags |= {"broadcast": FLAG_BROADCAST, "point-to-point": FLAG_POINT_TO_POINT,
                           "up": FLAG_UP}[name]
        elif name == "down":
            # go-sockaddr clears the up bit from the flags asked for: "down" alone matches every interface
            check_flags = True
            want_flags &= ~FLAG_UP
        elif name in ("loopback", "multicast"):
            check_flags = True
            want_flags |= FLAG_LOOPBACK if name == "loopback" else FLAG_MULTICAST
            attrs.append(name)
        elif name in ("forwardable", "global unicast", "interface-local multicast", "link-local multicast",
                      "link-local unicast", "unspecified"):
            attrs.append(name)
        else:
            raise SockaddrError(f"unknown interface flag: {go_quote(name)}")

    def pred(x: IfAddr) -> bool:
        if check_flags and x.iface.flags & want_flags == want_flags:
            return True
        if attrs:
            props = _ip_attrs(x.sa)
            return any(props[a] for a in attrs)
        return False
    return _by(pred, ifs)


def _by_network(param: str, ifs: list[IfAddr]) -> Split:
    included: list[IfAddr] = []
    excluded: list[IfAddr] = []
    for text in param.split("|"):
        try:
            net = parse_ip(text)
        except SockaddrError as e:
            raise SockaddrError(f"unable to create an IP address from {go_quote(text)}: {e}") from None
        inc, exc = _by(lambda x, net=net: net.contains(x.sa), ifs)
        included += inc
        excluded += exc
    return included, excluded


def _by_address(pattern: str, ifs: list[IfAddr]) -> Split:
    match = _search("address", pattern)
    return _by(lambda x: match(x.sa.string()), ifs)


def _by_name(pattern: str, ifs: list[IfAddr]) -> Split:
    match = _search("name", pattern)
    return _by(lambda x: match(x.name), ifs)


_SELECTORS: dict[str, Callable[[str, list[IfAddr]], Split]] = {
    "address": _by_address,
    "flag": _by_flag, "flags": _by_flag,
    "name": _by_name,
    "network": _by_network,
    "port": _by_port,
    "rfc": _by_rfcs, "rfcs": _by_rfcs,
    "size": _by_mask_size,
    "type": _by_type,
}


# ------------------------------------------------------------------ sorting (go-sockaddr's Asc*/Desc*)


Cmp = Callable[[IfAddr, IfAddr], int]


def _three(a: int, b: int) -> int:
    return -1 if a < b else 1 if a > b else 0


def _cmp_address(p: IfAddr, q: IfAddr) -> int:
    return _three(p.sa.address, q.sa.address) if p.sa.type == q.sa.type else 0


def _cmp_port(p: IfAddr, q: IfAddr) -> int:
    return _three(p.sa.port, q.sa.port)


def _cmp_private(p: IfAddr, q: IfAddr) -> int:
    a = is_rfc(6890, p.sa)
    if p.sa.type != q.sa.type:
        return -1 if a else 0
    b = is_rfc(6890, q.sa)
    return 0 if a == b else -1 if a else 1


def _cmp_size(p: IfAddr, q: IfAddr) -> int:
    return _three(p.sa.mask_bits, q.sa.mask_bits) if p.sa.type == q.sa.type else 0


def _cmp_type(p: IfAddr, q: IfAddr) -> int:
    return _three(p.sa.type, q.sa.type)


def _cmp_default(default: str | None) -> Cmp:
    def cmp(p: IfAddr, q: IfAddr) -> int:
        if default is None or (p.name == default) == (q.name == default):
            return 0  # go-sockaddr defers when it cannot find the default route, too
        return -1 if p.name == default else 1
    return cmp


def _desc(cmp: Cmp) -> Cmp:
    return lambda p, q: -cmp(p, q)


def _sorted(ifs: list[IfAddr], cmps: list[Cmp]) -> list[IfAddr]:
    """Go's sort.Sort with go-sockaddr's multi-key Less: insertion sort up to 12 elements (what Go's
    pdqsort does, so ties and the keys' deferrals come out as there), a stable sort beyond."""
    def less(p: IfAddr, q: IfAddr) -> bool:
        for cmp in cmps:
            c = cmp(p, q)
            if c:
                return c < 0
        return False
    out = list(ifs)
    if len(out) <= 12:
        for i in range(1, len(out)):
            j = i
            while j > 0 and less(out[j], out[j - 1]):
                out[j], out[j - 1] = out[j - 1], out[j]
                j -= 1
        return out
    return sorted(out, key=functools.cmp_to_key(lambda p, q: -1 if less(p, q) else 1 if less(q, p) else 0))


# ------------------------------------------------------------------ attributes


def _attr(x: IfAddr, name: str) -> str:
    """go-sockaddr's IfAddr.Attr: the interface's ``name``/``flags``, else the address's attribute."""
    name = name.lower()
    if name == "name" and x.name:
        return x.name
    if name == "flags":
        return flags_text(x.iface.flags)
    sa = x.sa
    if name == "address":
        return sa.net_ip()
    host = SockAddr(sa.type, sa.address, sa.bits, sa.port)
    v4_net = sa.type == TYPE_IPV4
    simple: dict[str, Callable[[], str]] = {
        "binary": lambda: format(sa.address, f"0{sa.bits}b"),
        "hex": lambda: format(sa.address, f"0{sa.bits // 4}x"),
        "host": host.string,
        "mask_bits": lambda: str(sa.mask_bits),
        "netmask": lambda: _ip_text(sa.type, sa.mask),
        "network": lambda: _ip_text(sa.type, sa.network),
        "octets": lambda: " ".join(str(b) for b in sa.address.to_bytes(sa.bits // 8, "big")),
        "port": lambda: str(sa.port),
        "size": lambda: str(1 << (sa.bits - sa.mask_bits)),
        "string": sa.string,
        "type": lambda: _TYPE_NAMES[sa.type],
        # an IPv4 /31 or /32 has no network and broadcast addresses to skip
        "first_usable": lambda: _ip_text(sa.type, sa.network + (v4_net and sa.mask_bits < 31)),
        "last_usable": lambda: _ip_text(sa.type, sa.broadcast - (v4_net and sa.mask_bits < 31)),
    }
    if sa.type == TYPE_IPV4:
        simple["broadcast"] = lambda: _ip_text(sa.type, sa.broadcast)
        simple["uint32"] = lambda: str(sa.address)
    else:
        simple["uint128"] = lambda: str(sa.address)
    if name in simple:
        return simple[name]()
    raise SockaddrError(f"unsupported attribute name {go_quote(name, plus=False)}")


# ------------------------------------------------------------------ math


_SIGN = re.compile(r"^\s*[+-]")


def _math_one(op: str, value: str, x: IfAddr) -> IfAddr:
    sa = x.sa
    full = _FULL[sa.type]
    v4 = sa.type == TYPE_IPV4
    kind = op.lower()
    if kind in ("address", "network"):
        if not _SIGN.match(value):
            raise SockaddrError(f"sign (+/-) is required for operation {go_quote(op, plus=False)}")
        try:
            i = _parse_int(value, 33 if v4 else 64)
        except ValueError as e:
            raise SockaddrError(f"unable to convert {go_quote(value, plus=False)} to int for operation "
                                f"{go_quote(op, plus=False)}: {e}") from None
        if kind == "address":
            address = (sa.address + i) & full
        elif v4:
            wrapped = i if i >= 0 else 1 + i + (full ^ sa.mask)
            address = (sa.network + ((wrapped & full) & ~sa.mask)) & full
        elif i > 0:
            address = sa.network + (i & ~sa.mask & full)
        else:
            address = sa.broadcast - ((-i - 1) & ~sa.mask & full)
        return IfAddr(SockAddr(sa.type, address, sa.mask_bits), x.iface)
    if kind == "mask":
        try:
            bits = _parse_int(value, 32, unsigned=True)
        except ValueError as e:
            raise SockaddrError(f"unable to convert {go_quote(value, plus=False)} to int for operation "
                                f"{go_quote(op, plus=False)}: {e}") from None
        if bits > sa.bits:  # (sic) go-sockaddr's text for IPv6 says 64
            bounds = ("ipv4 addresses must be between 0 and 32" if v4 else
                      "ipv6 addresses must be between 0 and 64")
            raise SockaddrError(f"parameter for operation {go_quote(op, plus=False)} on {bounds}")
        mask = full ^ ((1 << (sa.bits - bits)) - 1)
        return IfAddr(SockAddr(sa.type, sa.address & mask, min(bits, sa.mask_bits)), x.iface)
    raise SockaddrError(f"unsupported math operation: {go_quote(op, plus=False)}")


# ------------------------------------------------------------------ the template functions


def functions(host: HostNet) -> dict[str, Callable[..., Any]]:
    """go-sockaddr's template functions (SourceFuncs, SortFuncs, FilterFuncs, HelperFuncs) over *host*."""
    default = host.default_interface

    def get_all() -> list[IfAddr]:
        return all_interfaces(host)

    def get_default() -> list[IfAddr]:
        if default is None:
            raise SockaddrError("no default interface found")
        return [x for x in get_all() if x.name == default]

    def usable(ifs: list[IfAddr]) -> list[IfAddr]:
        ifs = _by_flag("forwardable", ifs)[0]
        ifs = _by_flag("up", ifs)[0]
        return _sorted(ifs, [_cmp_default(default), _cmp_type, _cmp_size])

    def get_private() -> list[IfAddr]:
        return _by_rfc("6890", usable(get_all()))[0]

    def get_public() -> list[IfAddr]:
        return _by_rfc("6890", usable(get_all()))[1]

    def first_ip(ifs: list[IfAddr]) -> str:
        return ifs[0].sa.net_ip() if ifs else ""

    def private_ips() -> str:
        ifs = _by_rfc("6890", _sorted(get_all(), [_cmp_type, _cmp_size]))[0]
        ifs = _by_rfc(str(FORWARDING_BLACKLIST), ifs)[1]
        return " ".join(x.sa.net_ip() for x in ifs)

    def public_ips() -> str:
        ifs = _by_rfc("6890", _sorted(get_all(), [_cmp_type, _cmp_size]))[1]
        return " ".join(x.sa.net_ip() for x in ifs)

    def interface_ip(name: Any) -> str:
        ifs = _SELECTORS["name"](_str(name), get_all())[0]
        ifs = _by_flag("forwardable", ifs)[0]
        ifs = _sorted(ifs, [_cmp_type, _cmp_size])
        return ifs[0].sa.net_ip() if ifs else ""

    def interface_ips(name: Any) -> str:
        ifs = _sorted(_SELECTORS["name"](_str(name), get_all())[0], [_cmp_type, _cmp_size])
        return " ".join(x.sa.net_ip() for x in ifs)

    sort_keys: dict[str, Cmp] = {"address": _cmp_address, "default": _cmp_default(default),
                                 "name": lambda p, q: _three(p.name, q.name), "port": _cmp_port,
                                 "private": _cmp_private, "size": _cmp_size, "type": _cmp_type}

    def sort(param: Any, ifs: Any) -> list[IfAddr]:
        ifs = _ifaddrs(ifs)
        cmps: list[Cmp] = []
        for clause in _str(param).split(","):
            key = clause.strip().lower()
            cmp = sort_keys.get(key[1:] if key[:1] in ("+", "-") else key)
            if cmp is None:
                raise SockaddrError(f"unknown sort type: {go_quote(clause, plus=False)}")
            cmps.append(_desc(cmp) if key.startswith("-") else cmp)
        return _sorted(ifs, cmps)

    def select(which: str) -> Callable[..., list[IfAddr]]:
        def call(selector: Any, param: Any, ifs: Any) -> list[IfAddr]:
            ifs = _ifaddrs(ifs)
            by = _SELECTORS.get(_str(selector).lower())
            if by is None:
                raise SockaddrError(f"invalid {which} selector {go_quote(selector, plus=False)}")
            matched, rest = by(_str(param), ifs)
            return matched if which == "include" else rest
        return call

    def unique(selector: Any, ifs: Any) -> list[IfAddr]:
        ifs = _ifaddrs(ifs)
        key = _str(selector).lower()
        if key not in ("address", "name"):
            raise SockaddrError(f"unsupported unique constraint {go_quote(selector)}")
        out: list[IfAddr] = []
        last = ""
        for x in ifs:
            value = x.sa.string() if key == "address" else x.name
            if last == "" or last != value:
                last = value
                out.append(x)
        return out

    def limit(n: Any, ifs: Any) -> list[IfAddr]:
        ifs = _ifaddrs(ifs)
        return ifs[:_int(n, unsigned=True)]

    def offset(n: Any, ifs: Any) -> list[IfAddr]:
        ifs = _ifaddrs(ifs)
        off = _int(n)
        if abs(off) > len(ifs):
            raise SockaddrError("unable to seek past the end of the interface array: offset "
                                f"({abs(off)}) exceeds the number of interfaces ({len(ifs)})")
        return ifs[len(ifs) - abs(off):] if off < 0 else ifs[off:]

    def attr(selector: Any, v: Any) -> str:
        name = _str(selector)
        if isinstance(v, IfAddr):
            return _attr(v, name)
        if isinstance(v, list) and all(isinstance(x, IfAddr) for x in v):
            return _attr(v[0], name) if v else ""
        from runtime.gotemplate import go_str
        raise SockaddrError(f"unable to obtain attribute {name} from type {_go_type(v)} ({go_str(v)})")

    def join(selector: Any, sep: Any, ifs: Any) -> str:
        ifs = _ifaddrs(ifs)
        name, sep = _str(selector), _str(sep)
        return sep.join(_attr(x, name) for x in ifs)

    def math(op: Any, value: Any, ifs: Any) -> list[IfAddr]:
        ifs = _ifaddrs(ifs)
        op, value = _str(op), _str(value)
        out = []
        for x in ifs:
            try:
                out.append(_math_one(op, value, x))
            except SockaddrError as e:
                shown = x.go_string()
                raise SockaddrError(f"unable to perform an IPMath operation on {shown}: {e}") from None
        return out

    return {
        "GetAllInterfaces": get_all, "GetDefaultInterfaces": get_default,
        "GetPrivateInterfaces": get_private, "GetPublicInterfaces": get_public,
        "sort": sort, "exclude": select("exclude"), "include": select("include"),
        "attr": attr, "join": join, "limit": limit, "offset": offset, "unique": unique, "math": math,
        "GetPrivateIP": lambda: first_ip(get_private()), "GetPrivateIPs": private_ips,
        "GetPublicIP": lambda: first_ip(get_public()), "GetPublicIPs": public_ips,
        "GetInterfaceIP": interface_ip, "GetInterfaceIPs": interface_ips,
    }


# ------------------------------------------------------------------ evaluation


def parse(text: str, host: HostNet) -> str:
    """go-sockaddr's ParseIfAddrs: *text* as a template over *host*'s interfaces (``.`` is all of
    their addresses); SockaddrError with go-sockaddr's message when it does not parse or run."""
    funcs = functions(host)
    try:
        parse_go_template(text, funcs=funcs, name=TEMPLATE_NAME, base_funcs={})
    except TemplateError as e:
        raise SockaddrError(f"unable to parse template {go_quote(text)}: {e}") from None
    try:
        dot = all_interfaces(host)
    except SockaddrError as e:
        raise SockaddrError(f"unable to query interface addresses: {e}") from None
    try:
        return render(text, funcs=funcs, dot=dot, name=TEMPLATE_NAME, missing_key_error=True, base_funcs={})
    except TemplateError as e:
        raise SockaddrError(f"unable to execute sockaddr input {go_quote(text)}: {e}") from None


Provider = Callable[[], HostNet]


def parse_host(text: str, provider: Provider | None = None) -> str:
    """go-sockaddr's Parse: *text* over the interfaces *provider* gives (this host's by default)."""
    try:
        host = (provider or host_interfaces)()
    except Exception as e:  # psutil's or the provider's failure: the template's error, as Go's
        raise SockaddrError(f"unable to query interface addresses: {e}") from None
    return parse(text, host)


def is_template(text: str) -> bool:
    """Whether *text* has an action to run (anything else is its own value, without asking the host)."""
    return "{{" in text


def _evaluate(text: str, provider: Provider | None) -> str:
    return parse_host(text, provider) if is_template(text) else text


def parse_single_ip_template(text: str, provider: Provider | None = None) -> str:
    """Nomad's (go-secure-stdlib listenerutil's) ParseSingleIPTemplate: one address, or an error."""
    try:
        out = _evaluate(text, provider)
    except SockaddrError as e:
        raise SockaddrError(f"unable to parse address template {go_quote(text, plus=False)}: {e}") from None
    ips = out.split(" ")
    if len(ips) > 1:
        raise SockaddrError(f"multiple addresses found ({go_quote(out, plus=False)}), please configure one")
    return ips[0].strip()


def parse_multiple_ip_template(text: str, provider: Provider | None = None) -> list[str]:
    """Nomad's parseMultipleIPTemplate: the addresses, space separated, each once."""
    try:
        out = _evaluate(text, provider)
    except SockaddrError as e:
        raise SockaddrError(f"Unable to parse address template {go_quote(text, plus=False)}: {e}") from None
    return list(dict.fromkeys(out.split(" ")))


# Nomad's message when there is nothing (Go's strings.Split never gives none: an empty template then
# binds every interface there; here it is this error instead).
NO_ADDRESS = "no addresses found, please configure one"
