"""yamldecode() for HCL job files: the YAML that configuration files are written in, read as cty-yaml does.

Covers block mappings and sequences (``- key: v`` items too), flow ``[...]``
and ``{...}`` collections, plain, single- and double-quoted scalars, ``|`` and
``>`` block scalars (with ``-`` / ``+`` chomping), comments, and the YAML 1.2
core schema's resolution of plain scalars (null / ~, true / false, ints,
0x / 0o ints, floats, .inf, .nan).  Anchors, aliases, tags and several
documents in one string are refused by name rather than misread.
"""

from __future__ import annotations

import json
import re
from typing import Any

from runtime.hcl_expr import HclExprError

# Nesting deeper than this is refused: no configuration needs it, and each level is a Python frame.
MAX_YAML_DEPTH = 64

_INT = re.compile(r"[-+]?[0-9]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_OCT = re.compile(r"0o[0-7]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _plain(text: str) -> Any:
    """A plain scalar as the YAML 1.2 core schema resolves it."""
    t = text.strip()
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    if t in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return t.lower() == "true"
    if _INT.fullmatch(t):
        return int(t)
    if _HEX.fullmatch(t):
        return int(t, 16)
    if _OCT.fullmatch(t):
        return int(t[2:], 8)
    if _FLOAT.fullmatch(t):
        f = float(t)
        return int(f) if f.is_integer() and abs(f) < 2 ** 53 else f
    if t.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        raise HclExprError(f"the YAML value {t} is not a number HCL can hold")
    if t[0] in "&*!":
        raise HclExprError(f"YAML anchors, aliases and tags are not supported by this agent ({t.split()[0]})")
    return t


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (a # inside quotes, or not after a space, is text)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").split("\n")
        self.i = 0

    def next_content(self) -> tuple[int, str] | None:
        """The next line with content, as (indent, text), skipping blanks, comments and ``---``."""
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            stripped = _strip_comment(raw)
            if stripped.strip() in ("", "---"):
                if stripped.strip() == "---" and self.i > 0 and any(
                        _strip_comment(x).strip() not in ("", "---") for x in self.lines[:self.i]):
                    raise HclExprError("several YAML documents in one string are not supported")
                self.i += 1
                continue
            if stripped.strip() == "...":
                self.i = len(self.lines)
                return None
            return len(stripped) - len(stripped.lstrip(" ")), stripped.strip()
        return None

    def node(self, indent: int, depth: int) -> Any:
        if depth > MAX_YAML_DEPTH:
            raise HclExprError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
        head = self.next_content()
        if head is None or head[0] < indent:
            return None
        at, text = head
        if text.startswith("- ") or text == "-":
            return self.sequence(at, depth)
        if _key_of(text) is not None:
            return self.mapping(at, depth)
        self.i += 1
        return _scalar(text, self, at)

    def sequence(self, indent: int, depth: int) -> list[Any]:
        out = []
        while (head := self.next_content()) is not None and head[0] == indent and (
                head[1].startswith("- ") or head[1] == "-"):
            rest = head[1][1:].lstrip(" ")
            if not rest:
                self.i += 1
                out.append(self.node(indent + 1, depth + 1))
                continue
            # "- key: v" (or "- - x"): the item is a node starting in this line, indented past the dash.
            item_indent = indent + (len(head[1]) - len(rest))
            self.lines[self.i] = " " * item_indent + rest
            out.append(self.node(item_indent, depth + 1))
        return out

    def mapping(self, indent: int, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while (head := self.next_content()) is not None and head[0] == indent:
            split = _key_of(head[1])
            if split is None:
                raise HclExprError(f"YAML line {self.i + 1}: expected a 'key: value' line, found {head[1]!r}")
            key, rest = split
            self.i += 1
            if key in out:
                raise HclExprError(f"YAML line {self.i}: duplicate key {key!r}")
            if rest:
                out[key] = _scalar(rest, self, indent)
                continue
            nxt = self.next_content()
            # A sequence may sit at its key's own indentation ("key:\n- a").
            if nxt is not None and (nxt[0] > indent or (nxt[0] == indent and nxt[1].startswith("-"))):
                out[key] = self.node(nxt[0], depth + 1)
            else:
                out[key] = None
        return out


def _key_of(text: str) -> tuple[str, str] | None:
    """("key", "rest") of a ``key: rest`` line, the key unquoted; None when the line is not one."""
    if text[0] in "'\"":
        end = _quoted_end(text, 0)
        if end < len(text) and text[end:end + 1] == ":" and (end + 1 == len(text) or text[end + 1] == " "):
            return _quoted(text[:end]), text[end + 1:].strip()
        return None
    if text[0] in "[{":
        return None
    m = re.match(r"([^:#]+?|[^:]*?[^ ]):( |$)", text)
    if m is None:
        return None
    return m.group(1).strip(), text[m.end():].strip()


def _quoted_end(text: str, i: int) -> int:
    q = text[i]
    j = i + 1
    while j < len(text):
        if q == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            if q == "'" and text[j + 1:j + 2] == "'":
                j += 2
                continue
            return j + 1
        j += 1
    raise HclExprError(f"unterminated quoted YAML string {text[i:]!r}")


def _quoted(text: str) -> str:
    if text[0] == "'":
        return text[1:-1].replace("''", "'")
    try:
        return json.loads(text.replace("\\/", "/"))
    except json.JSONDecodeError:
        raise HclExprError(f"invalid YAML double-quoted string {text}") from None


def _scalar(text: str, reader: _Reader, indent: int) -> Any:
    if text[0] in "|>":
        return _block_scalar(text, reader, indent)
    if text[0] in "'\"":
        end = _quoted_end(text, 0)
        if text[end:].strip():
            raise HclExprError(f"unexpected text after a quoted YAML string: {text[end:].strip()!r}")
        return _quoted(text)
    if text[0] in "[{":
        value, end = _flow(text, 0)
        if text[end:].strip():
            raise HclExprError(f"unexpected text after a YAML flow collection: {text[end:].strip()!r}")
        return value
    return _plain(text)


def _block_scalar(header: str, reader: _Reader, indent: int) -> str:
    """``|`` keeps the lines' newlines, ``>`` folds them into spaces; ``-`` drops the final newline, ``+``
    keeps every trailing one."""
    style, chomp = header[0], header[1:2]
    lines = []
    block_indent = None
    while reader.i < len(reader.lines):
        line = reader.lines[reader.i]
        if line.strip():
            width = len(line) - len(line.lstrip(" "))
            if block_indent is None:
                block_indent = width
            if width < block_indent or width <= indent:
                break
            lines.append(line[block_indent:])
        else:
            lines.append("")
        reader.i += 1
    body = lines
    trailing = 0
    while body and body[-1] == "":
        body = body[:-1]
        trailing += 1
    if style == "|":
        text = "\n".join(body)
    else:
        text = ""
        for k, ln in enumerate(body):
            if k == 0:
                text = ln
            elif ln == "" or body[k - 1] == "":
                text += "\n" + ln if ln else ""
            else:
                text += " " + ln
    if not body:
        return ""
    if chomp == "-":
        return text
    if chomp == "+":
        return text + "\n" * (trailing + 1)
    return text + "\n"


def _flow(text: str, i: int) -> tuple[Any, int]:
    """A flow collection or scalar starting at text[i]: (value, index after it)."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        raise HclExprError("unterminated YAML flow collection")
    c = text[i]
    if c in "'\"":
        end = _quoted_end(text, i)
        return _quoted(text[i:end]), end
    if c in "[{":
        close = "]" if c == "[" else "}"
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        i += 1
        while True:
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == close:
                return (items if c == "[" else mapping), i + 1
            value, i = _flow(text, i)
            while i < len(text) and text[i] == " ":
                i += 1
            if c == "{":
                if i >= len(text) or text[i] != ":":
                    raise HclExprError("expected ':' in a YAML flow mapping")
                item, i = _flow(text, i + 1)
                mapping[str(value)] = item
            else:
                items.append(value)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
            elif i >= len(text) or text[i] != close:
                raise HclExprError(f"expected ',' or {close!r} in a YAML flow collection")
    m = re.compile(r"[^,\]\}:]*(:(?! |$)[^,\]\}:]*)*").match(text, i)
    assert m is not None
    return _plain(m.group(0)), m.end()


def yamldecode(text: str) -> Any:
    reader = _Reader(text)
    first = reader.next_content()
    if first is None:
        return None
    value = reader.node(first[0], 0)
    rest = reader.next_content()
    if rest is not None:
        raise HclExprError(f"YAML line {reader.i + 1}: unexpected {rest[1]!r} (bad indentation?)")
    return value
