"""runtime.sockaddr: go-sockaddr templates over a host's interfaces, the agent's address templates
(Nomad's normalizeAddrs and its messages), and consul-template's ``sockaddr`` in job templates."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import subprocess
import sys
import time

import pytest

from runtime.agent_main import main as agent_main
from runtime.agent_main import resolve_addr_templates, resolve_addrs
from runtime.config import dev_config
from runtime.gotemplate import TemplateError, render, sockaddr_func
from runtime.sockaddr import (
    FLAG_BROADCAST,
    FLAG_LOOPBACK,
    FLAG_MULTICAST,
    FLAG_POINT_TO_POINT,
    FLAG_RUNNING,
    FLAG_UP,
    HostNet,
    Interface,
    SockaddrError,
    default_route_interface,
    host_interfaces,
    parse,
    parse_host,
    parse_multiple_ip_template,
    parse_single_ip_template,
)
from tests.ports import free_port

UBM = FLAG_UP | FLAG_BROADCAST | FLAG_MULTICAST
V6 = "2406:7400:63:ef5:1415:8bc3:fa5e:2578"
HOST = HostNet(interfaces=(
    Interface("lo0", ("127.0.0.1/8", "::1/128", "fe80::1/64"), 1, 16384,
              FLAG_UP | FLAG_LOOPBACK | FLAG_MULTICAST),
    Interface("en0", ("fe80::2b:112f:ce21:7b6f/64", f"{V6}/64", "192.168.0.102/24"), 15, 1500, UBM,
              "60:3e:5f:48:75:ff"),
    Interface("en1", ("10.1.2.3/16", "100.64.0.9/10", "203.0.114.7/24"), 16, 9000, UBM | FLAG_RUNNING,
              "60:3e:5f:48:76:00"),
    Interface("tun0", ("10.8.0.2/32",), 17, 1400, FLAG_UP | FLAG_POINT_TO_POINT),
    Interface("eth9", ("172.16.5.5/24",), 18, 1500, FLAG_BROADCAST),  # down
), default_interface="en1")
PRIVATE_IPS = "100.64.0.9 10.1.2.3 192.168.0.102 172.16.5.5 10.8.0.2"


def ev(text: str, host: HostNet = HOST) -> str:
    return parse(text, host)


def fails(text: str, host: HostNet = HOST) -> str:
    with pytest.raises(SockaddrError) as e:
        parse(text, host)
    return str(e.value)


def v4(pipe: str) -> str:
    return ev('{{ GetAllInterfaces | include "type" "ipv4" | ' + pipe + ' }}')


def no_host() -> HostNet:
    raise AssertionError("a plain address must not look at the host")


# ---------------------------------------------------------------- go-sockaddr's own examples


# go-sockaddr's template tests (template_test.go) on its lo0: the same outputs here.
@pytest.mark.parametrize(("text", "out"), [
    ('{{. | include "name" "lo0" | printf "%v"}}',
     "[127.0.0.1/8 {1 16384 lo0  up|loopback|multicast} ::1 {1 16384 lo0  up|loopback|multicast} "
     "fe80::1/64 {1 16384 lo0  up|loopback|multicast}]"),
    ('{{. | include "name" "^(en|lo)0$" | exclude "name" "^en0$" | sort "type" | sort "address" | '
     'join "address" " " }}', "127.0.0.1 ::1 fe80::1"),
    ('{{range . | include "type" "IP" | include "name" "^lo0$"}}{{.Name}} {{.SockAddr}} {{end}}',
     "lo0 127.0.0.1/8 lo0 ::1 lo0 fe80::1/64 "),
    ('{{with $ifAddrs := . | exclude "rfc" "1918" | include "name" "lo0" | sort "type,address" }}'
     '{{range $ifAddrs }}{{.Name}}/{{.SockAddr.NetIP}} {{end}}{{end}}', "lo0/127.0.0.1 lo0/::1 lo0/fe80::1 "),
    ('{{. | exclude "rfc" "1918" | include "name" "lo0" | sort "type,address" | len | eq 3}}', "true"),
    ('{{ . | include "name" "lo0" | sort "type,-address" | join "address" " " }}', "127.0.0.1 fe80::1 ::1"),
    ('{{. | include "name" "lo0" | include "type" "IPv6" | sort "address" | limit 1 | len}}', "1"),
    ('{{. | include "name" "lo0" | include "flag" "up" | sort "-type,+address" | attr "address" }}', "::1"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "address" "+2" | sort "+type,+address" | '
     'join "address" " " }}', "127.0.0.3 ::3 fe80::3"),
    ('|{{- with $ifAddrs := . | include "name" "^lo0$" | include "type" "IP" | math "address" "+16777217" | '
     'sort "+type,+address" -}}{{- range $ifAddrs -}}{{- attr "address" . }} -- {{ attr "network" . }}/'
     '{{ attr "size" . }}|{{ end -}}{{- end -}}',
     "|128.0.0.2 -- 128.0.0.0/16777216|::100:2 -- ::100:2/1|fe80::100:2 -- fe80::/18446744073709551616|"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "address" "+4294967294" | '
     'sort "+type,+address" | join "address" " " }}', "126.255.255.255 ::ffff:ffff fe80::ffff:ffff"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "address" "-256" | sort "+type,+address" | '
     'join "address" " " }}',
     "126.255.255.1 fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ff01 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff01"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "address" "-4278190082" | '
     'sort "+type,+address" | join "address" " " }}',
     "127.255.255.255 fe7f:ffff:ffff:ffff:ffff:ffff:ff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ff:ffff"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "network" "+2" | sort "+type,+address" | '
     'join "address" " " }}', "127.0.0.2 ::1 fe80::2"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "network" "+4278255368" | '
     'sort "+type,+address" | join "address" " " }}', "127.0.255.8 ::1 fe80::ff00:ff08"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | math "network" "-2" | sort "+type,+address" | '
     'join "address" " " }}', "127.255.255.254 ::1 fe80::ffff:ffff:ffff:fffe"),
    ('{{. | include "name" "^lo0$" | include "type" "IP" | sort "+type,+address" | '
     'math "network" "-4278190088" | join "address" " " }}', "127.255.255.248 ::1 fe80::ffff:ffff:ff:fff8"),
])
def test_go_sockaddrs_own_examples_give_its_outputs(text, out):
    assert ev(text) == out


# ---------------------------------------------------------------- sources and helpers


def test_private_and_public_interfaces_and_ips():
    assert ev('{{ GetAllInterfaces | len }} {{ . | len }}') == "11 11"
    # forwardable, up (not eth9), RFC 6890; the default interface's first, then IPv4, larger networks first
    assert ev('{{ GetPrivateInterfaces | join "address" " " }}') == \
        "100.64.0.9 10.1.2.3 192.168.0.102 10.8.0.2"
    assert ev('{{ GetPublicInterfaces | join "address" " " }}') == f"203.0.114.7 {V6}"
    assert ev("{{ GetPrivateIP }}|{{ GetPublicIP }}") == "100.64.0.9|203.0.114.7"
    # the IPs of every interface (up or not), by type and size; private ones forwardable
    assert ev("{{ GetPrivateIPs }}") == PRIVATE_IPS
    assert ev("{{ GetPublicIPs }}") == f"203.0.114.7 {V6}"
    # another default interface comes first
    assert ev("{{ GetPrivateIP }}", dataclasses.replace(HOST, default_interface="en0")) == "192.168.0.102"


def test_default_interfaces_need_a_default_route():
    assert ev('{{ GetDefaultInterfaces | join "address" "," }}') == "10.1.2.3,100.64.0.9,203.0.114.7"
    nodefault = dataclasses.replace(HOST, default_interface=None)
    assert fails("{{ GetDefaultInterfaces }}", nodefault).endswith(
        'executing "sockaddr.Parse" at <GetDefaultInterfaces>: error calling GetDefaultInterfaces: '
        "no default interface found")
    assert ev("{{ GetPrivateIP }}", nodefault) == "100.64.0.9"  # sorting by default just defers
    assert ev('{{ GetPrivateInterfaces | sort "default" | attr "name" }}', nodefault) == "en1"


def test_interface_ip_takes_a_forwardable_address_of_the_named_interface():
    assert ev('{{ GetInterfaceIP "en1" }}|{{ GetInterfaceIP "^en" }}|{{ GetInterfaceIP "en0" }}') == \
        "100.64.0.9|100.64.0.9|192.168.0.102"
    assert ev('{{ GetInterfaceIP "lo0" }}|{{ GetInterfaceIP "nope" }}') == "|"  # loopback: not forwardable
    assert ev('{{ GetInterfaceIPs "en0" }}') == f"192.168.0.102 fe80::2b:112f:ce21:7b6f {V6}"
    assert ev('{{ GetInterfaceIPs "lo0" }}') == "127.0.0.1 fe80::1 ::1"
    assert "unable to compile name regexp" in fails('{{ GetInterfaceIP "(" }}')


def test_values_print_and_answer_fields_as_go_sockaddrs():
    assert ev('{{ GetAllInterfaces | include "name" "tun0" }}') == \
        "[10.8.0.2 {17 1400 tun0  up|pointtopoint}]"
    assert ev('{{ range GetDefaultInterfaces }}{{ .Name }}:{{ .MTU }}:{{ .Index }}:{{ .HardwareAddr }}:'
              '{{ .Flags }}:{{ .SockAddr.Maskbits }}:{{ .Type }} {{ end }}').split(" ")[0] == \
        "en1:9000:16:60:3e:5f:48:76:00:up|broadcast|multicast|running:16:IPv4"
    assert "can't evaluate field Nope in type sockaddr.IfAddr" in fails("{{ range . }}{{ .Nope }}{{ end }}")


# ---------------------------------------------------------------- sort


def test_sort_by_each_key_ascending_and_descending():
    assert v4('sort "-size" | join "address" " "') == \
        "10.8.0.2 192.168.0.102 203.0.114.7 172.16.5.5 10.1.2.3 100.64.0.9 127.0.0.1"
    assert v4('sort "name,-address" | join "address" " "') == \
        "192.168.0.102 203.0.114.7 100.64.0.9 10.1.2.3 172.16.5.5 127.0.0.1 10.8.0.2"
    assert v4('sort "-name" | join "name" " "') == "tun0 lo0 eth9 en1 en1 en1 en0"
    assert v4('sort "default" | join "address" " "') == \
        "10.1.2.3 100.64.0.9 203.0.114.7 127.0.0.1 192.168.0.102 10.8.0.2 172.16.5.5"
    assert v4('sort "-default" | attr "name"') == "lo0"
    assert ev('{{ GetAllInterfaces | include "name" "en1" | sort "-private" | join "address" " " }}') == \
        "203.0.114.7 10.1.2.3 100.64.0.9"
    assert ev('{{ GetAllInterfaces | include "name" "en1" | sort "private,+address" | '
              'join "address" " " }}') == "10.1.2.3 100.64.0.9 203.0.114.7"
    assert ev('{{ GetAllInterfaces | sort "-type" | attr "type" }}') == "IPv6"
    assert v4('sort "port" | attr "address"') == "127.0.0.1"
    assert fails('{{ sort "bogus" . }}').endswith('error calling sort: unknown sort type: "bogus"')


# ---------------------------------------------------------------- include / exclude


@pytest.mark.parametrize(("pipe", "out"), [
    ('include "name" "^en" | join "name" " "', "en0 en0 en0 en1 en1 en1"),
    ('exclude "flag" "up" | join "name" " "', "eth9"),
    ('include "flags" "point-to-point" | join "name" " "', "tun0"),
    ('include "flag" "broadcast|up" | unique "name" | join "name" " "', "en0 en1"),
    ('include "flag" "loopback" | join "address" " "', "127.0.0.1 ::1 fe80::1"),
    ('include "flag" "link-local unicast" | join "address" " "', "fe80::1 fe80::2b:112f:ce21:7b6f"),
    ('include "type" "ipv6" | include "flag" "global unicast" | join "address" " "', V6),
    ('include "flag" "forwardable" | include "type" "IPv6" | join "address" " "', V6),
    ('include "flag" "multicast|unspecified" | unique "name" | join "name" " "', "lo0 en0 en1"),
    ('include "network" "10.0.0.0/8" | join "address" " "', "10.1.2.3 10.8.0.2"),
    ('include "network" "10.0.0.0/8|192.168.0.0/16" | join "address" " "', "10.1.2.3 10.8.0.2 192.168.0.102"),
    ('include "network" "10.1.0.0/24" | len', "0"),  # 10.1.2.3/16: its network is not inside a /24
    ('include "network" "2406:7400:63::/48" | join "address" " "', V6),
    ('include "port" "^0$" | len', "11"),
    ('include "rfc" "1918" | include "type" "ipv4" | join "address" " "',
     "192.168.0.102 10.1.2.3 10.8.0.2 172.16.5.5"),
    ('include "rfcs" "1918|6598" | join "address" " "',
     "192.168.0.102 10.1.2.3 10.8.0.2 172.16.5.5 100.64.0.9"),
    ('include "RFC" "4193" | len', "0"),
    ('exclude "rfc" "6890" | join "address" " "', f"{V6} 203.0.114.7"),
    ('include "size" "24" | join "address" " "', "192.168.0.102 203.0.114.7 172.16.5.5"),
    ('include "type" "IPv4" | len', "7"),
    ('exclude "type" "IP" | len', "0"),
    (r'include "address" "^10\\." | join "address" " "', "10.1.2.3 10.8.0.2"),
    ('include "address" "/64$" | len', "3"),
])
def test_include_and_exclude_by_each_selector(pipe, out):
    assert ev("{{ GetAllInterfaces | " + pipe + " }}") == out


@pytest.mark.parametrize(("pipe", "message"), [
    ('include "bogus" "x"', 'error calling include: invalid include selector "bogus"'),
    ('exclude "bogus" "x"', 'error calling exclude: invalid exclude selector "bogus"'),
    ('include "flag" "bogus"', 'unknown interface flag: "bogus"'),
    ('include "network" "bogus"', 'unable to create an IP address from "bogus": invalid IPAddr bogus'),
    ('include "rfc" "x"', 'unable to lookup RFC number "x": unable to parse RFC number "x": '
                          'strconv.ParseUint: parsing "x": invalid syntax'),
    ('include "rfc" "99999999999"', 'unable to lookup RFC number "99999999999": unsupported RFC 99999999999'),
    ('include "size" "129"', "mask size out of bounds for IPv4 address: 129"),
    ('include "size" "x"',
     'invalid exclude size argument ("x"): strconv.ParseUint: parsing "x": invalid syntax'),
    ('include "type" "bogus"', 'unsupported type "bogus" "bogus"'),
    ('include "name" "("', 'unable to compile name regexp "(": error parsing regexp: missing closing ): `(`'),
    ('include "address" "["', 'unable to compile address regexp "["'),
])
def test_a_bad_selector_fails_with_go_sockaddrs_message(pipe, message):
    assert message in fails("{{ GetAllInterfaces | " + pipe + " }}")


# ---------------------------------------------------------------- unique, limit, offset, attr, join, math


def test_unique_limit_and_offset():
    assert ev('{{ GetAllInterfaces | sort "name" | unique "name" | join "name" " " }}') == \
        "en0 en1 eth9 lo0 tun0"
    assert ev('{{ GetAllInterfaces | include "network" "10.0.0.0/8|10.1.0.0/16" | sort "address" | '
              'unique "address" | join "string" " " }}') == "10.1.2.3/16 10.8.0.2"
    assert 'unsupported unique constraint "bogus"' in fails('{{ unique "bogus" . }}')
    assert v4('limit 2 | join "address" " "') == "127.0.0.1 192.168.0.102"
    assert v4('limit 99 | len') == "7"
    assert v4('offset 5 | join "address" " "') == "10.8.0.2 172.16.5.5"
    assert v4('offset -1 | join "address" " "') == "172.16.5.5"
    assert fails('{{ offset 9 (include "type" "ipv4" .) }}').endswith(
        "unable to seek past the end of the interface array: offset (9) exceeds the number of interfaces (7)")
    assert fails('{{ limit -1 . }}').endswith("expected unsigned integer; found -1")
    assert fails('{{ offset "-2" . }}').endswith('expected integer; found "-2"')


IPV4_ATTRS = {
    "address": "10.1.2.3", "name": "en1", "flags": "up|broadcast|multicast|running", "network": "10.1.0.0",
    "netmask": "255.255.0.0", "mask_bits": "16", "size": "65536", "broadcast": "10.1.255.255",
    "first_usable": "10.1.0.1", "last_usable": "10.1.255.254", "host": "10.1.2.3", "string": "10.1.2.3/16",
    "type": "IPv4", "port": "0", "uint32": "167838211", "hex": "0a010203",
    "binary": "00001010000000010000001000000011", "octets": "10 1 2 3", "ADDRESS": "10.1.2.3",
}
IPV6_ATTRS = {
    "address": V6, "network": "2406:7400:63:ef5::", "netmask": "ffff:ffff:ffff:ffff::", "mask_bits": "64",
    "size": "18446744073709551616", "first_usable": "2406:7400:63:ef5::",
    "last_usable": "2406:7400:63:ef5:ffff:ffff:ffff:ffff", "string": f"{V6}/64", "type": "IPv6",
    "uint128": str(int(ipaddress.IPv6Address(V6))), "hex": f"{int(ipaddress.IPv6Address(V6)):032x}",
    "octets": " ".join(str(b) for b in ipaddress.IPv6Address(V6).packed), "host": V6,
}


def test_attr_and_join_give_every_attribute():
    for name, value in IPV4_ATTRS.items():
        assert ev('{{ GetDefaultInterfaces | attr "' + name + '" }}') == value, name
    for name, value in IPV6_ATTRS.items():
        assert ev('{{ GetAllInterfaces | include "address" "^2406" | attr "' + name + '" }}') == value, name
    assert ev('{{ GetAllInterfaces | include "name" "tun0" | attr "first_usable" }}') == "10.8.0.2"  # /32
    assert ev('{{ GetDefaultInterfaces | join "mask_bits" "," }}') == "16,10,24"
    assert ev('{{ range GetDefaultInterfaces }}{{ attr "address" . }};{{ end }}') == \
        "10.1.2.3;100.64.0.9;203.0.114.7;"
    assert ev('{{ GetAllInterfaces | include "name" "none" | attr "address" }}') == ""
    assert fails('{{ GetAllInterfaces | attr "bogus" }}').endswith(
        'error calling attr: unsupported attribute name "bogus"')
    assert fails('{{ GetAllInterfaces | attr "uint128" }}').endswith('unsupported attribute name "uint128"')
    assert fails('{{ attr "address" "x" }}').endswith(
        "unable to obtain attribute address from type string (x)")
    assert fails('{{ join "address" " " "x" }}').endswith(
        "wrong type for value; expected sockaddr.IfAddrs; got string")


def test_math_mask_and_its_errors():
    assert ev('{{ GetDefaultInterfaces | math "mask" "8" | join "string" " " }}') == \
        "10.0.0.0/8 100.0.0.0/8 203.0.0.0/8"
    assert ev('{{ GetDefaultInterfaces | math "mask" "28" | attr "string" }}') == "10.1.2.0/16"
    assert ev('{{ GetAllInterfaces | include "address" "^2406" | math "mask" "32" | attr "string" }}') == \
        "2406:7400::/32"
    on = "unable to perform an IPMath operation on 10.1.2.3/16 {16 9000 en1 60:3e:5f:48:76:00 " \
         "up|broadcast|multicast|running}: "
    assert fails('{{ GetDefaultInterfaces | math "address" "1" }}').endswith(
        on + 'sign (+/-) is required for operation "address"')
    assert fails('{{ GetDefaultInterfaces | math "network" "+x" }}').endswith(
        on + 'unable to convert "+x" to int for operation "network": strconv.ParseInt: parsing "+x": '
        "invalid syntax")
    assert fails('{{ GetDefaultInterfaces | math "mask" "33" }}').endswith(
        on + 'parameter for operation "mask" on ipv4 addresses must be between 0 and 32')
    assert fails('{{ GetDefaultInterfaces | math "bogus" "+1" }}').endswith(
        on + 'unsupported math operation: "bogus"')


# ---------------------------------------------------------------- parsing, the host, Nomad's helpers


def test_only_go_sockaddrs_functions_and_gos_builtins_exist():
    assert fails("{{ nope }}") == 'unable to parse template "{{ nope }}": template: sockaddr.Parse:1: ' \
                                  'function "nope" not defined'
    assert 'function "toUpper" not defined' in fails('{{ toUpper "x" }}')  # consul-template's: not here
    assert 'function "Attr" not defined' in fails('{{ Attr "address" . }}')  # documented, not registered
    assert fails("{{ GetPrivateIP").startswith('unable to parse template "{{ GetPrivateIP": template: ')
    assert fails('{{ GetPrivateIP "x" }}').startswith('unable to execute sockaddr input "{{ GetPrivateIP ')
    assert ev('{{ if eq GetPrivateIP "100.64.0.9" }}{{ printf "%s!" GetPrivateIP }}{{ end }}') == \
        "100.64.0.9!"


def test_the_hosts_interfaces_and_its_default_route(tmp_path):
    host = host_interfaces()
    lo = next(i for i in host.interfaces if i.name == "lo")
    assert "127.0.0.1/8" in lo.addrs and lo.flags & (FLAG_UP | FLAG_LOOPBACK) == FLAG_UP | FLAG_LOOPBACK
    assert lo.hardware_addr == "" and lo.index > 0
    text = '{{ GetAllInterfaces | include "name" "^lo$" | include "type" "ipv4" | attr "address" }}'
    assert parse_host(text) == "127.0.0.1"
    route, route6 = tmp_path / "route", tmp_path / "ipv6_route"
    header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    route.write_text(header + "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
                     "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                     "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    assert default_route_interface(str(route), str(route6)) == "eth0"  # the lowest metric
    route.write_text(header)
    z = "0" * 32
    gateway = "fd000000000000000000000000000001"
    route6.write_text(f"{z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200       lo\n"
                      f"{z} 00 {z} 00 {gateway} 00000400 00000003 00000000 00000003 eth1\n")
    assert default_route_interface(str(route), str(route6)) == "eth1"  # no IPv4 default: IPv6's
    route6.write_text("")
    assert default_route_interface(str(route), str(route6)) is None
    assert default_route_interface(str(tmp_path / "none"), str(tmp_path / "none6")) is None


def test_a_provider_or_address_that_fails_is_the_templates_error():
    def broken() -> HostNet:
        raise OSError("no netlink")
    with pytest.raises(SockaddrError, match=r"^unable to query interface addresses: no netlink$"):
        parse_host("{{ GetPrivateIP }}", broken)
    bad = HostNet(interfaces=(Interface("x0", ("garbage",)),))
    assert fails("{{ GetPrivateIP }}", bad) == \
        'unable to query interface addresses: unable to create an IP address from "garbage"'


def test_nomads_single_and_multiple_ip_templates():
    def host() -> HostNet:
        return HOST
    assert parse_single_ip_template("10.0.0.1", no_host) == "10.0.0.1"
    assert parse_single_ip_template("{{ GetPrivateIP }}", host) == "100.64.0.9"
    assert parse_single_ip_template('{{ GetInterfaceIP "nope" }}', host) == ""
    with pytest.raises(SockaddrError) as e:
        parse_single_ip_template("{{ GetPrivateIPs }}", host)
    assert str(e.value) == f'multiple addresses found ("{PRIVATE_IPS}"), please configure one'
    with pytest.raises(SockaddrError) as e:
        parse_single_ip_template("{{ nope }}", host)
    assert str(e.value).startswith('unable to parse address template "{{ nope }}": unable to parse template')
    assert parse_multiple_ip_template('{{ GetInterfaceIPs "en1" }} 10.1.2.3', host) == \
        ["100.64.0.9", "10.1.2.3", "203.0.114.7"]
    with pytest.raises(SockaddrError, match=r'^Unable to parse address template "\{\{ nope \}\}": '):
        parse_multiple_ip_template("{{ nope }}", host)


# ---------------------------------------------------------------- the agent's addresses


def cfg_with(*, bind: str = "127.0.0.1", server: bool = True, **blocks: dict[str, str]):
    cfg = dataclasses.replace(dev_config(), bind_addr=bind)
    for block, values in blocks.items():
        cfg = dataclasses.replace(cfg, **{block: dataclasses.replace(getattr(cfg, block), **values)})
    return dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, enabled=server))


def resolved(cfg):
    return resolve_addr_templates(cfg, lambda: HOST)


def refusal(cfg) -> str:
    with pytest.raises(ValueError) as e:
        resolved(cfg)
    return str(e.value)


def test_templates_in_bind_addr_addresses_and_advertise_are_evaluated():
    cfg = resolved(cfg_with(bind="{{ GetPrivateIP }}", addresses={"rpc": '{{ GetInterfaceIP "en0" }}'},
                            advertise={"http": "{{ GetPublicIP }}", "rpc": '{{ GetInterfaceIP "en0" }}:9999',
                                       "serf": '{{ GetInterfaceIP "nope" }}'}))
    assert (cfg.bind_addr, cfg.addresses.rpc, cfg.advertise.http, cfg.advertise.rpc, cfg.advertise.serf) == \
        ("100.64.0.9", "192.168.0.102", "203.0.114.7", "192.168.0.102:9999", None)
    addrs = resolve_addrs(cfg, 4646)
    assert (addrs.http_bind, addrs.rpc_bind, addrs.serf_bind) == \
        ("100.64.0.9:4646", "192.168.0.102:4647", "100.64.0.9:4648")
    assert (addrs.http_adv, addrs.rpc_adv, addrs.serf_adv) == \
        ("203.0.114.7:4646", "192.168.0.102:9999", "100.64.0.9:4648")  # serf: empty, so from its bind
    http = resolved(cfg_with(addresses={"http": '{{ GetAllInterfaces | include "name" "tun0" | '
                                                'join "address" " " }}'}))
    assert http.addresses.http == "10.8.0.2"


def test_an_ipv6_advertise_address_gets_the_port_in_brackets():
    cfg = resolved(cfg_with(advertise={"rpc": '{{ GetPublicInterfaces | include "type" "ipv6" | '
                                              'attr "address" }}'}))
    assert cfg.advertise.rpc == V6 and resolve_addrs(cfg, 4646).rpc_adv == f"[{V6}]:4647"


def test_a_reload_evaluates_the_templates_again():
    from runtime.agent_main import Process

    lo = '{{ GetAllInterfaces | include "name" "^lo$" | include "type" "ipv4" | attr "address" }}'
    assert Process(["-dev", "-bind", lo], None, None).load_config().bind_addr == "127.0.0.1"  # type: ignore


def test_plain_addresses_are_kept_without_looking_at_the_host():
    cfg = cfg_with(bind="0.0.0.0", addresses={"http": "127.0.0.1", "rpc": "10.0.0.1"},
                   advertise={"http": "10.0.0.2", "rpc": "10.0.0.2:4000", "serf": "10.0.0.3"})
    assert resolve_addr_templates(cfg, no_host) == cfg


def test_a_client_does_not_evaluate_a_serf_advertise_template():
    cfg = resolved(cfg_with(server=False, advertise={"serf": "{{ nope }}"}))
    assert cfg.advertise.serf is None


@pytest.mark.parametrize(("cfg", "message"), [
    (cfg_with(bind="{{ GetPrivateIPs }}"),
     f'Bind address resolution failed: multiple addresses found ("{PRIVATE_IPS}"), please configure one'),
    (cfg_with(bind='{{ GetInterfaceIP "lo0" }}'),
     "Bind address resolution failed: no addresses found, please configure one"),
    (cfg_with(bind="{{ nope }}"),
     'Bind address resolution failed: unable to parse address template "{{ nope }}": unable to parse '
     'template "{{ nope }}": template: sockaddr.Parse:1: function "nope" not defined'),
    (cfg_with(addresses={"http": '{{ GetInterfaceIPs "en1" }}'}),
     "Failed to parse HTTP address: 3 addresses found (100.64.0.9 10.1.2.3 203.0.114.7); this agent serves "
     "HTTP on one address, please configure one"),
    (cfg_with(addresses={"http": "{{ nope }}"}),
     'Failed to parse HTTP address: Unable to parse address template "{{ nope }}": '),
    (cfg_with(addresses={"http": '{{ GetInterfaceIPs "nope" }}'}),
     "Failed to parse HTTP address: no addresses found, please configure one"),
    (cfg_with(addresses={"rpc": "{{ GetPrivateIPs }}"}),
     "Failed to parse RPC address: multiple addresses found ("),
    (cfg_with(addresses={"serf": "{{ GetDefaultInterfaces | attr \"address\" }}"}),
     "Failed to parse Serf address: unable to parse address template \"{{ GetDefaultInterfaces | attr "
     "\\\"address\\\" }}\": unable to execute sockaddr input"),
    (cfg_with(advertise={"http": "{{ GetPrivateIPs }}"}),
     "Failed to parse HTTP advertise address ({{ GetPrivateIPs }}, 127.0.0.1, 4646, true): Error parsing "
     f'advertise address template: multiple addresses found ("{PRIVATE_IPS}"), please configure one'),
    (cfg_with(advertise={"rpc": "{{ nope }}"}),
     'Failed to parse RPC advertise address: Error parsing advertise address template: unable to parse '
     'address template "{{ nope }}"'),
    (cfg_with(advertise={"serf": "{{ nope }}"}),
     "Failed to parse Serf advertise address: Error parsing advertise address template: "),
])
def test_a_template_that_does_not_give_one_address_stops_the_agent_with_nomads_message(cfg, message):
    host = HOST if "GetDefaultInterfaces" not in str(cfg.addresses.serf) else \
        dataclasses.replace(HOST, default_interface=None)
    with pytest.raises(ValueError) as e:
        resolve_addr_templates(cfg, lambda: host)
    assert str(e.value).startswith(message)


def test_config_validate_does_not_evaluate_address_templates(tmp_path, capsys):
    from runtime.cli import main as cli_main

    path = tmp_path / "agent.toml"
    path.write_text('bind_addr = "{{ GetInterfaceIP \\"no-such-if0\\" }}"\n'
                    f'data_dir = "{tmp_path}/data"\n[server]\nenabled = true\n')
    assert cli_main(["config", "validate", str(path)]) == 0
    assert capsys.readouterr().out == "Configuration is valid!\n"


def test_an_agent_whose_template_gives_no_address_exits_1_with_one_line(tmp_path, capsys):
    path = tmp_path / "agent.toml"
    path.write_text('bind_addr = "{{ GetInterfaceIP \\"lo\\" }}"\n')  # loopback is not forwardable
    assert agent_main(["-dev", "-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == (
        "", "==> Bind address resolution failed: no addresses found, please configure one\n")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_DEADLINE_S = 20.0  # a healthy start takes ~0.5 s; this bounds a loaded machine


@pytest.mark.timeout(60)
def test_a_real_agent_binds_the_address_its_template_gives(tmp_path):
    import http.client

    http_port, rpc, serf = free_port(), free_port(), free_port()
    path = tmp_path / "agent.toml"
    path.write_text(
        'bind_addr = "{{ GetAllInterfaces | include \\"name\\" \\"^lo$\\" | include \\"type\\" \\"ipv4\\" | '
        'attr \\"address\\" }}"\n'
        f'data_dir = "{tmp_path}/data"\n[ports]\nhttp = {http_port}\nrpc = {rpc}\nserf = {serf}\n'
        "[server]\nenabled = true\nbootstrap_expect = 1\n[client]\nenabled = true\n")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bin", "nomad-agent"), "-config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                conn.request("GET", "/v1/agent/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the agent did not become healthy"
            time.sleep(0.05)
        lines = []
        assert proc.stdout is not None
        while not any("Bind Addrs" in line for line in lines):
            lines.append(proc.stdout.readline())
        assert f"Bind Addrs: HTTP: [127.0.0.1:{http_port}]; RPC: 127.0.0.1:{rpc}; Serf: 127.0.0.1:{serf}" \
            in lines[-1]
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- consul-template's sockaddr


def test_sockaddr_in_a_job_template_evaluates_on_the_clients_interfaces():
    funcs = {"sockaddr": sockaddr_func(lambda: HOST)}
    assert render('{{ sockaddr "GetPrivateInterfaces | include \\"network\\" \\"10.0.0.0/8\\" | '
                  'attr \\"address\\"" }}', funcs=funcs) == "10.1.2.3"
    assert render('{{ sockaddr "GetInterfaceIP" "\\"en0\\"" }}:8080', funcs=funcs) == "192.168.0.102:8080"
    with pytest.raises(TemplateError) as e:
        render('{{ sockaddr "GetPrivateIP | nope" }}', funcs=funcs)
    assert str(e.value) == ('template: :1:3: executing "" at <sockaddr>: error calling sockaddr: unable to '
                            'parse template "{{ GetPrivateIP | nope }}": template: sockaddr.Parse:1: '
                            'function "nope" not defined')
    with pytest.raises(TemplateError, match="error calling sockaddr: wrong type for value; expected string; "
                                            "got int"):
        render("{{ sockaddr 1 }}", funcs=funcs)


def test_a_tasks_template_reads_the_client_hosts_interfaces():
    from actors.client.templates import TemplateSpec, render_task

    text = ('{{ sockaddr "GetAllInterfaces | include \\"name\\" \\"^lo$\\" | include \\"type\\" \\"ipv4\\" '
            '| attr \\"address\\"" }}')
    r = render_task((TemplateSpec(dest="local/addr"),), (text,), {}, {}, "default")
    assert r.error == "" and r.outputs == ("127.0.0.1",)


def test_a_clients_network_interface_may_be_a_template_naming_one_interface():
    def client(value: str, enabled: bool = True):
        return cfg_with(client={"enabled": enabled, "network_interface": value})

    assert resolved(client('{{ GetDefaultInterfaces | attr "name" }}')).client.network_interface == "en1"
    assert resolved(client("eth0")).client.network_interface == "eth0"  # a plain name: the host not asked
    assert refusal(client('{{ GetAllInterfaces | include "name" "nope" | attr "name" }}')) == \
        'Failed to parse network-interface: template "{{ GetAllInterfaces | include \\"name\\" ' \
        '\\"nope\\" | attr \\"name\\" }}" evaluated to empty result'
    assert refusal(client('{{ "wlan7" }}')) == \
        'Failed to parse network-interface: invalid interface name "wlan7"'
    # Not a client: not evaluated (Nomad skips it).
    assert resolved(client("{{ nope }}", enabled=False)).client.network_interface == "{{ nope }}"
