"""The functions Nomad's HCL2 job files may call (jobspec2/functions.go), as cty's stdlib defines them.

:func:`functions` gives the table for one job file: the file functions
(``file``, ``fileexists``, ``fileset``, ``filebase64``, ``abspath``,
``basename``, ``dirname``, ``pathexpand``) read relative to the job file's
directory, and only when a directory is given -- as Nomad's CLI allows them
and its job-parse API does not ("filesystem function disabled").  Those of
Nomad's functions this agent does not implement (``bcrypt``) are refused
with their name; ``yamldecode`` reads the YAML runtime.hcl_yaml covers.
"""

from __future__ import annotations

import base64
import csv
import datetime
import glob
import hashlib
import io
import ipaddress
import json
import math
import os
import re
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from runtime.hcl_expr import (
    HclExprError,
    equal,
    norm_number,
    number_text,
    to_bool,
    to_number,
    to_string,
    type_name,
)
from runtime.hcl_yaml import yamldecode

# cty's range() refuses to build more elements than this (stdlib.RangeFunc's limit, so a typo cannot
# exhaust memory).
MAX_RANGE_ELEMENTS = 1024

# bcrypt needs a hash this agent does not carry (and gives a new salt each parse).
_UNIMPLEMENTED = ("bcrypt",)


def _list(v: Any, what: str = "list") -> list[Any]:
    if not isinstance(v, list):
        raise HclExprError(f"{what} required, not {type_name(v)}")
    return v


def _map(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise HclExprError(f"map required, not {type_name(v)}")
    return v


def _int(v: Any, what: str = "number") -> int:
    n = to_number(v)
    if not isinstance(n, int):
        raise HclExprError(f"{what} must be a whole number")
    return n


def to_set(values: list[Any]) -> list[Any]:
    """A cty set: unique, strings in lexical order and numbers in numeric order."""
    out: list[Any] = []
    for v in values:
        if not any(equal(v, o) for o in out):
            out.append(v)
    if all(isinstance(v, str) for v in out):
        return sorted(out)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out):
        return sorted(out)
    return out


def _json_encode(v: Any) -> str:
    if isinstance(v, float):
        return number_text(v)
    if isinstance(v, dict):
        return "{" + ",".join(f"{_json_str(k)}:{_json_encode(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_json_encode(x) for x in v) + "]"
    if isinstance(v, str):
        return _json_str(v)
    return json.dumps(v)


def _json_str(s: str) -> str:
    # Go's encoding/json escapes <, > and & for safe embedding in HTML, and so cty's jsonencode.
    return json.dumps(s, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_decode(s: Any) -> Any:
    try:
        value = json.loads(to_string(s), parse_float=float, parse_int=int)
    except json.JSONDecodeError as e:
        raise HclExprError(str(e)) from None
    return _normalize(value)


def _normalize(v: Any) -> Any:
    if isinstance(v, float):
        return norm_number(v)
    if isinstance(v, list):
        return [_normalize(x) for x in v]
    if isinstance(v, dict):
        return {k: _normalize(x) for k, x in v.items()}
    return v


def _yaml_encode(v: Any) -> str:
    """cty-yaml's yamlencode: block style, maps in key order, strings and keys double-quoted, a list under a
    map key not indented (``"foo":\n- 1``)."""
    return "\n".join(_yaml_lines(v)) + "\n"


def _yaml_lines(v: Any) -> list[str]:
    if isinstance(v, dict) and v:
        lines = []
        for k in sorted(v):
            x, key = v[k], json.dumps(k, ensure_ascii=False)
            if isinstance(x, dict) and x:
                lines += [f"{key}:", *("  " + ln for ln in _yaml_lines(x))]
            elif isinstance(x, list) and x:
                lines += [f"{key}:", *_yaml_lines(x)]
            else:
                lines.append(f"{key}: {_yaml_lines(x)[0]}")
        return lines
    if isinstance(v, list) and v:
        lines = []
        for x in v:
            inner = _yaml_lines(x)
            lines += ["- " + inner[0], *("  " + ln for ln in inner[1:])]
        return lines
    if isinstance(v, dict):
        return ["{}"]
    if isinstance(v, list):
        return ["[]"]
    if v is None:
        return ["null"]
    if isinstance(v, bool):
        return ["true" if v else "false"]
    if isinstance(v, (int, float)):
        return [number_text(v)]
    return [json.dumps(v, ensure_ascii=False)]


def _format(fmt: Any, *args: Any) -> str:
    """cty's format(): Go's fmt verbs %s %d %f %e %g %t %q %v %x %X %o %b %% with flags, width and
    precision, and %[n]s argument indexes."""
    text = to_string(fmt)
    out, arg_i, i = [], 0, 0
    verb = re.compile(r"%([-+# 0]*)(?:\[(\d+)\])?(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")
    while i < len(text):
        if text[i] != "%":
            j = text.find("%", i)
            j = len(text) if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        m = verb.match(text, i)
        if m is None:
            raise HclExprError(f"invalid format verb at offset {i}")
        i = m.end()
        flags, index, width, prec, v = m.groups()
        if v == "%":
            out.append("%")
            continue
        if index:
            arg_i = int(index) - 1
        if arg_i >= len(args):
            raise HclExprError(f"not enough arguments for %{v} at offset {m.start()}")
        arg = args[arg_i]
        arg_i += 1
        if v in "sq":
            s = to_string(arg)
            if v == "q":
                s = json.dumps(s, ensure_ascii=False)
            elif prec:
                s = s[:int(prec)]
            pad = int(width) if width and width != "*" else 0
            out.append(s.ljust(pad) if flags and "-" in flags else s.rjust(pad))
        elif v == "v":
            out.append(_json_encode(arg) if isinstance(arg, (list, dict)) else to_string(arg)
                       if arg is not None else "null")
        elif v == "t":
            out.append("true" if to_bool(arg) else "false")
        elif v in "dxXob":
            n = to_number(arg)
            if not isinstance(n, int):
                raise HclExprError(f"%{v} requires a whole number")
            out.append(format(n, _py_spec(flags, width, None) + {"d": "d"}.get(v, v)))
        elif v in "feEgG":
            digits = prec or ("6" if v in "feE" else None)
            out.append(format(float(to_number(arg)), _py_spec(flags, width, digits) + v))
        else:
            raise HclExprError(f"unsupported format verb %{v}")
    return "".join(out)


def _py_spec(flags: str | None, width: str | None, prec: str | None) -> str:
    flags = flags or ""
    spec = "<" if "-" in flags else ""
    spec += "+" if "+" in flags else " " if " " in flags else ""
    spec += "0" if "0" in flags and "-" not in flags else ""
    spec += width or ""
    return spec + (f".{prec}" if prec else "")


def _cidr(prefix: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(to_string(prefix), strict=False)
    except ValueError as e:
        raise HclExprError(f"invalid CIDR expression: {e}") from None


def _cidrhost(prefix: Any, hostnum: Any) -> str:
    net = _cidr(prefix)
    n = _int(hostnum)
    size = net.num_addresses
    if n < 0:
        n += size
    if not 0 <= n < size:
        raise HclExprError(f"prefix of {net.prefixlen} does not accommodate a host numbered {hostnum}")
    return str(net.network_address + n)


def _cidrsubnet(prefix: Any, newbits: Any, netnum: Any) -> str:
    net = _cidr(prefix)
    bits, num = _int(newbits), _int(netnum)
    new_len = net.prefixlen + bits
    if new_len > net.max_prefixlen:
        raise HclExprError(f"insufficient address space to extend prefix of {net.prefixlen} by {bits}")
    if not 0 <= num < 2 ** bits:
        raise HclExprError(f"prefix extension of {bits} does not accommodate a subnet numbered {num}")
    base = int(net.network_address) + (num << (net.max_prefixlen - new_len))
    return f"{ipaddress.ip_address(base) if net.version == 4 else ipaddress.IPv6Address(base)}/{new_len}"


def _cidrsubnets(prefix: Any, *newbits: Any) -> list[str]:
    net = _cidr(prefix)
    out, current = [], int(net.network_address)
    end = int(net.broadcast_address)
    for nb in newbits:
        length = net.prefixlen + _int(nb)
        if length > net.max_prefixlen:
            raise HclExprError(f"would extend prefix to {length} bits, which is too long")
        step = 1 << (net.max_prefixlen - length)
        current = (current + step - 1) // step * step  # align to the new subnet's size
        if current + step - 1 > end:
            raise HclExprError(f"not enough remaining address space for a subnet with a prefix of {length} "
                               "bits")
        out.append(f"{ipaddress.ip_address(current) if net.version == 4 else ipaddress.IPv6Address(current)}"
                   f"/{length}")
        current += step
    return out


def _substr(s: Any, offset: Any, length: Any) -> str:
    text, off, n = to_string(s), _int(offset), _int(length)
    if off < 0:
        off = max(len(text) + off, 0)
    if off > len(text):
        return ""
    return text[off:] if n < 0 else text[off:off + n]


def _replace(s: Any, old: Any, new: Any) -> str:
    text, old_s, new_s = to_string(s), to_string(old), to_string(new)
    if len(old_s) > 1 and old_s.startswith("/") and old_s.endswith("/"):
        return re.sub(old_s[1:-1], re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", new_s), text)
    return text.replace(old_s, new_s)


def _regex_replace(s: Any, pattern: Any, new: Any) -> str:
    return re.sub(to_string(pattern), re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", to_string(new)), to_string(s))


def _title(s: Any) -> str:
    """Go's strings.Title: each letter after a separator (neither a letter, a digit nor "_") in upper case."""
    return re.sub(r"(?<!\w)(\w)", lambda m: m.group(1).upper(), to_string(s))


def _flatten(v: Any) -> list[Any]:
    out: list[Any] = []
    for x in _list(v):
        out.extend(_flatten(x) if isinstance(x, list) else [x])
    return out


def _lookup(m: Any, key: Any, *default: Any) -> Any:
    d, k = _map(m), to_string(key)
    if k in d:
        return d[k]
    if default:
        return default[0]
    raise HclExprError(f'the given key "{k}" does not exist in the map and no default was given')


def _element(v: Any, i: Any) -> Any:
    items = _list(v)
    if not items:
        raise HclExprError("cannot use element function with an empty list")
    n = _int(i)
    if n < 0:
        raise HclExprError("cannot use element function with a negative index")
    return items[n % len(items)]


def _index(v: Any, x: Any) -> int:
    for i, item in enumerate(_list(v)):
        if equal(item, x):
            return i
    raise HclExprError("item not found")


def _slice(v: Any, start: Any, end: Any) -> list[Any]:
    items, a, b = _list(v), _int(start), _int(end)
    if a < 0 or b > len(items) or a > b:
        raise HclExprError(f"the index range [{a}:{b}] is out of bounds for a list of {len(items)} elements")
    return items[a:b]


def _range(*args: Any) -> list[int | float]:
    nums = [to_number(a) for a in args]
    if len(nums) == 1:
        start, stop, step = 0, nums[0], 1
    elif len(nums) == 2:
        start, stop = nums
        step = 1 if stop >= start else -1
    elif len(nums) == 3:
        start, stop, step = nums
    else:
        raise TypeError("range takes 1 to 3 arguments")
    if step == 0:
        raise HclExprError("step must not be zero")
    out: list[int | float] = []
    x = start
    while (x < stop) if step > 0 else (x > stop):
        out.append(norm_number(x))
        if len(out) > MAX_RANGE_ELEMENTS:
            raise HclExprError(f"more than {MAX_RANGE_ELEMENTS} values were generated; either decrease the "
                               "difference between start and end or use a smaller step")
        x += step
    return out


def _chunklist(v: Any, size: Any) -> list[list[Any]]:
    items, n = _list(v), _int(size)
    if n < 0:
        raise HclExprError("the size argument must be positive")
    if n == 0:
        return [items]
    return [items[i:i + n] for i in range(0, len(items), n)]


def _setintersection(first: Any, *others: Any) -> list[Any]:
    return to_set([x for x in _list(first) if all(any(equal(x, y) for y in _list(o)) for o in others)])


def _setproduct(*lists: Any) -> list[list[Any]]:
    out: list[list[Any]] = [[]]
    for lst in lists:
        out = [[*p, x] for p in out for x in _list(lst)]
    return out if lists else []


def _merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            out.update(_map(m))
    return dict(sorted(out.items()))


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None and a != "":
            return a
    raise HclExprError("no non-null, non-empty-string arguments")


def _csvdecode(s: Any) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(to_string(s))))
    if not rows:
        raise HclExprError("missing header line")
    head = rows[0]
    out = []
    for row in rows[1:]:
        if len(row) != len(head):
            raise HclExprError(f"wrong number of fields: expected {len(head)}, got {len(row)}")
        out.append(dict(zip(head, row, strict=True)))
    return out


def _parseint(s: Any, base: Any) -> int:
    b = _int(base)
    if not 2 <= b <= 62:
        raise HclExprError("base must be a whole number between 2 and 62 inclusive")
    text = to_string(s)
    try:
        return int(text, b)
    except ValueError:
        raise HclExprError(f"cannot parse {text!r} as a base {b} integer") from None


def _indent(n: Any, s: Any) -> str:
    pad = " " * _int(n)
    return to_string(s).replace("\n", "\n" + pad)


def _convert_type(v: Any, kind: str) -> Any:
    from runtime.hcl_expr import to_number as num

    base = kind.split("(")[0]
    if base == "string":
        return to_string(v)
    if base == "number":
        return num(v)
    if base == "bool":
        return to_bool(v)
    if base in ("list", "tuple"):
        return list(v.values()) if isinstance(v, dict) else _list(v)
    if base == "set":
        return to_set(_list(v))
    if base in ("map", "object"):
        return _map(v)
    if base == "any":
        return v
    raise HclExprError(f"unknown type {kind!r}")


def _timestamp(text: Any) -> datetime.datetime:
    raw = to_string(text)
    try:
        ts = datetime.datetime.fromisoformat(raw)
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None or "T" not in raw.upper():
        raise HclExprError(f'not a valid RFC3339 timestamp: {raw!r}')
    return ts


def _rfc3339(ts: datetime.datetime) -> str:
    offset = ts.utcoffset() or datetime.timedelta(0)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _timeadd(timestamp: Any, duration: Any) -> str:
    from runtime.config import parse_duration

    try:
        seconds = parse_duration(to_string(duration))
    except ValueError as e:
        raise HclExprError(str(e)) from None
    return _rfc3339(_timestamp(timestamp) + datetime.timedelta(seconds=seconds))


_DATE_VERB = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|[^A-Za-z']+")


def _formatdate(spec: Any, timestamp: Any) -> str:
    """cty's formatdate: YYYY YY MMMM MMM MM M DD D EEEE EEE hh h HH H AA aa mm m ss s ZZZZZ ZZZZ ZZZ Z,
    'quoted' literals."""
    ts, out = _timestamp(timestamp), []
    offset = int((ts.utcoffset() or datetime.timedelta(0)).total_seconds()) // 60
    sign, hours, mins = "+" if offset >= 0 else "-", abs(offset) // 60, abs(offset) % 60
    hour12, pm = ts.hour % 12 or 12, ts.hour >= 12
    colon, plain = f"{sign}{hours:02d}:{mins:02d}", f"{sign}{hours:02d}{mins:02d}"
    verbs = {"YYYY": f"{ts.year:04d}", "YY": f"{ts.year % 100:02d}", "MMMM": ts.strftime("%B"),
             "MMM": ts.strftime("%b"), "MM": f"{ts.month:02d}", "M": str(ts.month), "DD": f"{ts.day:02d}",
             "D": str(ts.day), "EEEE": ts.strftime("%A"), "EEE": ts.strftime("%a"), "hh": f"{ts.hour:02d}",
             "h": str(ts.hour), "HH": f"{hour12:02d}", "H": str(hour12), "AA": "PM" if pm else "AM",
             "aa": "pm" if pm else "am", "mm": f"{ts.minute:02d}", "m": str(ts.minute),
             "ss": f"{ts.second:02d}", "s": str(ts.second), "ZZZZZ": colon, "ZZZZ": plain,
             "ZZZ": "UTC" if not offset else plain, "Z": "Z" if not offset else colon}
    for m in _DATE_VERB.finditer(to_string(spec)):
        tok = m.group(0)
        if tok.startswith("'"):
            out.append(tok[1:-1].replace("''", "'"))
        elif m.group(1):
            if tok not in verbs:
                raise HclExprError(f"invalid date format verb {tok!r}")
            out.append(verbs[tok])
        else:
            out.append(tok)
    return "".join(out)


def _rsadecrypt(ciphertext: Any, private_key: Any) -> str:
    """go-cty-funcs' rsadecrypt: base64 ciphertext, PKCS #1 v1.5, decrypted with a PEM RSA private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        data = base64.b64decode(to_string(ciphertext), validate=True)
    except ValueError:
        raise HclExprError("failed to decode input: not valid base64") from None
    try:
        key = serialization.load_pem_private_key(to_string(private_key).encode(), password=None)
    except (ValueError, TypeError) as e:
        raise HclExprError(f"failed to parse key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise HclExprError("failed to parse key: not an RSA private key")
    try:
        return key.decrypt(data, padding.PKCS1v15()).decode("utf-8")
    except ValueError:
        raise HclExprError("failed to decrypt: the ciphertext does not match the key") from None


def _file_functions(base_dir: str | None) -> dict[str, Callable[..., Any]]:
    def disabled(*_args: Any) -> Any:
        raise HclExprError("filesystem function disabled")

    if base_dir is None:
        return {name: disabled for name in ("abspath", "basename", "dirname", "file", "filebase64",
                                            "fileexists", "fileset", "pathexpand")}

    def path(p: Any) -> str:
        return os.path.join(base_dir, os.path.expanduser(to_string(p)))

    def file(p: Any) -> str:
        try:
            with open(path(p), "rb") as f:
                data = f.read()
        except OSError as e:
            raise HclExprError(f"failed to read {to_string(p)}: {e.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise HclExprError(f"contents of {to_string(p)} are not valid UTF-8; use the filebase64 function "
                               "to obtain the Base64 encoded contents or the other file functions") from None

    def filebase64(p: Any) -> str:
        try:
            with open(path(p), "rb") as f:
                return base64.b64encode(f.read()).decode()
        except OSError as e:
            raise HclExprError(f"failed to read {to_string(p)}: {e.strerror}") from None

    def fileexists(p: Any) -> bool:
        full = path(p)
        if os.path.isdir(full):
            raise HclExprError(f"{to_string(p)} is a directory, not a file")
        return os.path.isfile(full)

    def fileset(p: Any, pattern: Any) -> list[str]:
        root = path(p)
        found = glob.glob(to_string(pattern), root_dir=root, recursive=True)
        return sorted(f for f in found if os.path.isfile(os.path.join(root, f)))

    return {
        "abspath": lambda p: os.path.abspath(to_string(p)),
        "basename": lambda p: os.path.basename(to_string(p).rstrip("/")) or "/",
        "dirname": lambda p: os.path.dirname(to_string(p).rstrip("/")) or ".",
        "file": file, "filebase64": filebase64, "fileexists": fileexists, "fileset": fileset,
        "pathexpand": lambda p: os.path.expanduser(to_string(p)),
    }


def _unimplemented(name: str) -> Callable[..., Any]:
    def refuse(*_args: Any) -> Any:
        raise HclExprError(f"the function {name}() is not supported by this agent")
    return refuse


def _hash(algo: str) -> Callable[[Any], str]:
    return lambda s: hashlib.new(algo, to_string(s).encode()).hexdigest()


def _strlen(s: Any) -> int:
    import unicodedata

    # cty counts grapheme clusters; combining marks join the character before them.
    return sum(1 for ch in to_string(s) if not unicodedata.combining(ch))


def _minmax(pick: Callable[..., Any]) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        if not args:
            raise HclExprError("must pass at least one number")
        return pick(to_number(a) for a in args)
    return f


def _log(x: Any, base: Any) -> int | float:
    return norm_number(math.log(to_number(x)) / math.log(to_number(base)))


def _keys(m: Any) -> list[str]:
    return sorted(_map(m))


def functions(base_dir: str | None) -> dict[str, Callable[..., Any]]:
    """Nomad's function table (jobspec2.Functions) for a job file in *base_dir* (None: file functions
    refused, as Nomad's job-parse API has them)."""
    table: dict[str, Callable[..., Any]] = {
        "abs": lambda x: abs(to_number(x)),
        "base64decode": lambda s: base64.b64decode(to_string(s), validate=True).decode("utf-8"),
        "base64encode": lambda s: base64.b64encode(to_string(s).encode()).decode(),
        "ceil": lambda x: math.ceil(to_number(x)),
        "chomp": lambda s: re.sub(r"(\r\n|\n|\r)+$", "", to_string(s)),
        "chunklist": _chunklist,
        "cidrhost": _cidrhost,
        "cidrnetmask": lambda p: str(_require_v4(_cidr(p)).netmask),
        "cidrsubnet": _cidrsubnet,
        "cidrsubnets": _cidrsubnets,
        "coalesce": _coalesce,
        "coalescelist": lambda *ls: next((x for x in ls if _list(x)), []) if ls else _fail("no arguments"),
        "compact": lambda v: [x for x in _list(v) if x is not None and x != ""],
        "concat": lambda *ls: [x for lst in ls for x in _list(lst)],
        "contains": lambda v, x: any(equal(i, x) for i in _list(v)),
        "csvdecode": _csvdecode,
        "distinct": lambda v: [x for i, x in enumerate(_list(v)) if not any(equal(x, y) for y in v[:i])],
        "element": _element,
        "flatten": _flatten,
        "floor": lambda x: math.floor(to_number(x)),
        "format": _format,
        "formatdate": _formatdate,
        "formatlist": _formatlist,
        "indent": _indent,
        "index": _index,
        "join": lambda sep, *ls: to_string(sep).join(to_string(x) for lst in ls for x in _list(lst)),
        "jsondecode": _json_decode,
        "jsonencode": _json_encode,
        "keys": _keys,
        "length": _length,
        "log": _log,
        "lookup": _lookup,
        "lower": lambda s: to_string(s).lower(),
        "max": _minmax(max),
        "merge": _merge,
        "min": _minmax(min),
        "parseint": _parseint,
        "pow": lambda x, y: norm_number(math.pow(to_number(x), to_number(y))),
        "range": _range,
        "reverse": lambda v: list(reversed(_list(v))),
        "rsadecrypt": _rsadecrypt,
        "replace": _replace,
        "regex_replace": _regex_replace,
        "setintersection": _setintersection,
        "setproduct": _setproduct,
        "setunion": lambda *ls: to_set([x for lst in ls for x in _list(lst)]),
        "sha256": _hash("sha256"),
        "sha512": _hash("sha512"),
        "signum": lambda x: (to_number(x) > 0) - (to_number(x) < 0),
        "slice": _slice,
        "sort": lambda v: sorted(to_string(x) for x in _list(v)),
        "split": lambda sep, s: to_string(s).split(to_string(sep)) if to_string(sep) else list(to_string(s)),
        "strlen": _strlen,
        "strrev": lambda s: to_string(s)[::-1],
        "substr": _substr,
        "timeadd": _timeadd,
        "title": _title,
        "trim": lambda s, chars: to_string(s).strip(to_string(chars)),
        "trimprefix": lambda s, p: to_string(s).removeprefix(to_string(p)),
        "trimspace": lambda s: to_string(s).strip(),
        "trimsuffix": lambda s, p: to_string(s).removesuffix(to_string(p)),
        "upper": lambda s: to_string(s).upper(),
        "urlencode": lambda s: urllib.parse.quote_plus(to_string(s), safe="-._~"),
        "uuidv4": lambda: str(uuid.uuid4()),
        "uuidv5": _uuidv5,
        "values": lambda m: [_map(m)[k] for k in sorted(_map(m))],
        "yamldecode": lambda s: yamldecode(to_string(s)),
        "yamlencode": _yaml_encode,
        "zipmap": lambda ks, vs: _zipmap(ks, vs),
        "md5": _hash("md5"),
        "sha1": _hash("sha1"),
        "convert": _convert_type,
        "tostring": lambda v: None if v is None else to_string(v),
        "tonumber": lambda v: None if v is None else to_number(v),
        "tobool": lambda v: None if v is None else to_bool(v),
        "tolist": lambda v: _convert_type(v, "list"),
        "toset": lambda v: _convert_type(v, "set"),
        "tomap": lambda v: _convert_type(v, "map"),
    }
    # tostring/tonumber/... are HCL's type conversion functions, which Nomad's table does not hold: without
    # them a file using one fails as Nomad's would.
    for name in ("tostring", "tonumber", "tobool", "tolist", "toset", "tomap"):
        del table[name]
    table.update(_file_functions(base_dir))
    table.update({name: _unimplemented(name) for name in _UNIMPLEMENTED})
    return table


def _require_v4(net: Any) -> Any:
    if net.version != 4:
        raise HclExprError("only IPv4 networks have a netmask")
    return net


def _length(v: Any) -> int:
    if isinstance(v, (list, dict)):
        return len(v)
    # cty's length takes collections only (a string's is strlen's), unlike Terraform's.
    raise HclExprError(f"collection must be a list, a map or a tuple, not {type_name(v)}")


def _formatlist(fmt: Any, *args: Any) -> list[str]:
    lengths = {len(a) for a in args if isinstance(a, list)}
    if len(lengths) > 1:
        raise HclExprError("all arguments must have the same number of elements")
    n = lengths.pop() if lengths else 1
    return [_format(fmt, *[a[i] if isinstance(a, list) else a for a in args]) for i in range(n)]


def _uuidv5(namespace: Any, name: Any) -> str:
    known = {"dns": uuid.NAMESPACE_DNS, "url": uuid.NAMESPACE_URL, "oid": uuid.NAMESPACE_OID,
             "x500": uuid.NAMESPACE_X500}
    ns = to_string(namespace)
    try:
        space = known[ns] if ns in known else uuid.UUID(ns)
    except ValueError:
        raise HclExprError(f"uuidv5() doesn't support namespace {ns}") from None
    return str(uuid.uuid5(space, to_string(name)))


def _zipmap(ks: Any, vs: Any) -> dict[str, Any]:
    keys, values = _list(ks), _list(vs)
    if len(keys) != len(values):
        raise HclExprError("number of keys must match number of values")
    return dict(sorted((to_string(k), v) for k, v in zip(keys, values, strict=True)))


def _fail(msg: str) -> Any:
    raise HclExprError(msg)
