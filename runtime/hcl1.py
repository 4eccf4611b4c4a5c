"""Nomad's agent configuration language: HCL 1, read into plain tables.

Nomad reads its agent configuration (``nomad agent -config server.hcl``)
with HashiCorp's HCL 1, not HCL 2 (job files are HCL 2: runtime/hcl_job.py).
The two differ where agent files lean on HCL 1: a block may hold quoted keys
(``meta { "rack" = "r1" }``, ``options { "driver.allowlist" = "raw_exec" }``,
``chroot_env { "/bin" = "/bin" }``), which HCL 2 refuses.  This module reads
HCL 1 into the same nested tables a TOML file gives, so one loader checks
both (runtime/config.py):

* ``key = value`` -- a string (``"..."`` with Go's escapes; ``${...}`` is
  kept as written), a heredoc (``<<EOF`` / ``<<-EOF``), an integer or float,
  ``true``/``false``, a list ``[...]`` (a trailing comma is fine) or an
  object ``{...}``;
* ``key { ... }`` -- a block, the same as ``key = { ... }``;
* ``key "label" ... { ... }`` -- a labelled block, nested one table per label
  (``plugin "raw_exec" { config { ... } }`` is ``plugin.raw_exec.config``);
* a key given twice in one table: two blocks merge key by key, as HCL 1's
  decoder flattens repeated blocks into one structure, and two lists append;
  for anything else the later value wins;
* comments ``#``, ``//`` and ``/* ... */``; items may be separated by commas.

Errors are :class:`HclError` with the line and column, in HCL 1's own
``At 3:7: ...`` form.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["HclError", "loads"]


class HclError(ValueError):
    """The text is not HCL 1 (the message says where)."""


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>(?:\#|//)[^\n]*|/\*.*?\*/)
  | (?P<heredoc><<-?[A-Za-z_][A-Za-z0-9_-]*[ \t]*\r?\n)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.\-]))
  | (?P<ident>[^\W\d][\w.\-]*)
  | (?P<string>")
  | (?P<punct>[{}\[\]=,])
""", re.S | re.X)

class HclInt(int):
    """An integer as written (``text``): a string field takes the text, as HCL 1's decodeString does."""

    text: str

    def __new__(cls, value: int, text: str) -> HclInt:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class HclFloat(float):
    """A float as written (``text``)."""

    text: str

    def __new__(cls, value: float, text: str) -> HclFloat:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


def _number(raw: str) -> HclInt | HclFloat:
    """A number token: Go's literals (0x hex, a leading 0 octal), kept with its text; ValueError."""
    if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", raw):
        return HclInt(int(raw, 16), raw)
    if re.fullmatch(r"[-+]?0\d+", raw):
        return HclInt(int(raw, 8), raw)
    if re.fullmatch(r"[-+]?\d+", raw):
        return HclInt(int(raw), raw)
    return HclFloat(float(raw), raw)


MAX_DEPTH = 200  # nested lists and objects: deeper is refused (a traceback otherwise, and never a config)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.tokens: list[tuple[str, Any, int]] = []  # (kind, value, offset)
        self._lex()
        self.i = 0

    def where(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"At {line}:{col}"

    def fail(self, offset: int, what: str) -> HclError:
        return HclError(f"{self.where(offset)}: {what}")

    def _lex(self) -> None:
        text, n = self.text, len(self.text)
        pos = 0
        while pos < n:
            m = _TOKEN.match(text, pos)
            if m is None:
                if text.startswith("/*", pos):
                    raise self.fail(pos, "comment not terminated")
                raise self.fail(pos, f"illegal char {text[pos]!r}")
            kind = m.lastgroup
            if kind == "string":
                value, pos = self._string(pos + 1)
                self.tokens.append(("string", value, m.start()))
                continue
            if kind == "heredoc":
                value, pos = self._heredoc(m)
                self.tokens.append(("string", value, m.start()))
                continue
            if kind == "number":
                raw = m.group()
                try:
                    value: Any = _number(raw)
                except ValueError:
                    raise self.fail(m.start(), f"invalid number {raw!r}") from None
                self.tokens.append(("value", value, m.start()))
            elif kind == "ident":
                word = m.group()
                if word in ("true", "false"):
                    self.tokens.append(("value", word == "true", m.start()))
                else:
                    self.tokens.append(("ident", word, m.start()))
            elif kind == "punct":
                self.tokens.append((m.group(), None, m.start()))
            pos = m.end()
        self.tokens.append(("eof", None, n))

    def _string(self, pos: int) -> tuple[str, int]:
        """A double-quoted string from just after its quote: (value, offset after the closing quote).

        ``${ ... }`` is kept as written, braces and quotes inside it included, as HCL 1 does.
        """
        text, out, start, depth = self.text, [], pos - 1, 0
        while True:
            if pos >= len(text) or (text[pos] == "\n" and depth == 0):
                raise self.fail(start, "literal not terminated")
            c = text[pos]
            if depth == 0 and c == '"':
                return "".join(out), pos + 1
            if c == "$" and text.startswith("${", pos):
                depth += 1
                out.append("${")
                pos += 2
                continue
            if depth and c == "}":
                depth -= 1
            elif depth and c == "{":
                depth += 1
            if c == "\\" and depth == 0:
                esc = text[pos + 1:pos + 2]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    pos += 2
                    continue
                if esc in ("u", "U"):
                    width = 4 if esc == "u" else 8
                    digits = text[pos + 2:pos + 2 + width]
                    if not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
                        raise self.fail(pos, "illegal char escape")
                    out.append(chr(int(digits, 16)))
                    pos += 2 + width
                    continue
                raise self.fail(pos, "illegal char escape")
            out.append(c)
            pos += 1

    def _heredoc(self, m: re.Match[str]) -> tuple[str, int]:
        head = m.group().strip()
        indent, marker = head.startswith("<<-"), head.lstrip("<-")
        text, pos = self.text, m.end()
        lines: list[str] = []
        while True:
            if pos >= len(text):
                raise self.fail(m.start(), f"heredoc not terminated: no line holding only {marker!r}")
            end = text.find("\n", pos)
            line = text[pos:] if end < 0 else text[pos:end]
            if line.strip() == marker and (indent or line.rstrip("\r") == marker):
                pos = len(text) if end < 0 else end
                break
            lines.append(line.rstrip("\r"))
            pos = len(text) if end < 0 else end + 1
        if indent:
            widths = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
            cut = min(widths, default=0)
            lines = [ln[cut:] for ln in lines]
        return "".join(ln + "\n" for ln in lines), pos

    # -- the parser's view
    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok


def merge_into(base: dict[str, Any], key: str, value: Any) -> None:
    """HCL 1's decoding of a key given twice: tables merge key by key, lists append (decodeSlice over
    the repeated items), anything else the later wins."""
    prev = base.get(key)
    if isinstance(prev, dict) and isinstance(value, dict):
        for k, v in value.items():
            merge_into(prev, k, v)
    elif isinstance(prev, list) and isinstance(value, list):
        base[key] = prev + value
    else:
        base[key] = value


def _deeper(lx: _Lexer, at: int) -> None:
    lx.depth += 1
    if lx.depth > MAX_DEPTH:
        raise lx.fail(at, f"nesting deeper than {MAX_DEPTH} lists and objects")


def _object(lx: _Lexer, closing: str) -> dict[str, Any]:
    """Items up to *closing* (``}`` or end of file) into one table."""
    _deeper(lx, lx.peek()[2])
    try:
        return _items(lx, closing)
    finally:
        lx.depth -= 1


def _items(lx: _Lexer, closing: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    while True:
        kind, value, at = lx.peek()
        if kind == closing:
            lx.take()
            return out
        if kind == ",":
            lx.take()
            continue
        if kind == "eof":
            raise lx.fail(at, "object expected closing RBRACE got: EOF")
        keys: list[str] = []
        while kind in ("ident", "string"):
            keys.append(value)
            lx.take()
            kind, value, at = lx.peek()
        if not keys:
            raise lx.fail(at, f"expected: IDENT | STRING got: {_describe(kind, value)}")
        if kind == "=":
            if len(keys) > 1:
                raise lx.fail(at, f"nested object expected: LBRACE got: ASSIGN (after {' '.join(keys)!r})")
            lx.take()
            item = _value(lx)
        elif kind == "{":
            lx.take()
            item = _object(lx, "}")
        else:
            raise lx.fail(at, f"key '{' '.join(keys)}' expected start of object ('{{') or assignment ('=')")
        for label in reversed(keys[1:]):
            item = {label: item}
        merge_into(out, keys[0], item)


def _value(lx: _Lexer) -> Any:
    kind, value, at = lx.take()
    if kind in ("value", "string"):
        return value
    if kind == "{":
        return _object(lx, "}")
    if kind == "[":
        _deeper(lx, at)
        try:
            return _list(lx)
        finally:
            lx.depth -= 1
    raise lx.fail(at, f"Unknown token: {_describe(kind, value)}")


def _list(lx: _Lexer) -> list[Any]:
    items: list[Any] = []
    while True:
        kind, _, at = lx.peek()
        if kind == "]":
            lx.take()
            return items
        items.append(_value(lx))
        kind, value, at = lx.peek()
        if kind == ",":
            lx.take()
        elif kind != "]":
            raise lx.fail(at, f"list expected comma or RBRACK got: {_describe(kind, value)}")


def _describe(kind: str, value: Any) -> str:
    if kind == "eof":
        return "EOF"
    if kind in ("ident", "string", "value"):
        return f"{kind.upper()} {value!r}"
    return repr(kind)


def loads(text: str) -> dict[str, Any]:
    """*text* (HCL 1) as nested tables (dicts), lists and scalars."""
    return _object(_Lexer(text), "eof")
