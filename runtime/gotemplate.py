"""The part of Go's ``text/template`` that Nomad job files' templates use, as a pure module.

``render(text, funcs=..., dot=...)`` parses and executes a template the way
Go's ``text/template`` (with consul-template's functions) does:

* text and ``{{ actions }}``, with ``{{-`` / ``-}}`` trimming the white space
  beside them, and ``{{/* comments */}}``; other delimiters with
  ``left``/``right`` (Nomad's ``left_delimiter`` / ``right_delimiter``);
* pipelines (``a | b "x"``: the value goes in as the last argument),
  parenthesised pipelines, variables (``$x := ...``, ``$x = ...``, ``$``),
  ``.`` and field or map-key chains (``.Key``, ``$v.Address``, ``(f).Port``);
* ``if`` / ``else if`` / ``else`` / ``end``, ``range`` (lists, maps in key
  order, integers; ``$i, $v :=``; ``else``; ``break`` / ``continue``) and
  ``with`` (``else with`` too);
* Go's built-in functions (``and or not len index print printf println eq
  ne lt le gt ge``) and consul-template's plain ones (``toUpper toLower
  trimSpace trim split splitToMap join replaceAll contains toJSON
  toJSONPretty toUnescapedJSON toUnescapedJSONPretty parseJSON base64Encode
  base64Decode base64URLEncode base64URLDecode trimPrefix trimSuffix toTitle
  indent regexMatch regexReplaceAll parseInt parseUint parseFloat parseBool
  in containsAll containsAny containsNone containsNotAll loop add subtract
  multiply divide modulo minimum maximum sha256Hex md5sum hmacSHA256Hex
  mergeMap mergeMapWithOverride explodeMap toYAML toTOML parseYAML``
  (block and flow YAML, quoted and block scalars, values over several
  lines; anchors, aliases and tags are refused), ``scratch``
  (``scratch.Set "k" v``: a method call on a value, one scratch per
  rendering), ``timestamp`` (on a clock the caller gives: timestamp_func),
  ``sockaddr`` (a go-sockaddr template over the host's interfaces,
  runtime.sockaddr; another provider: sockaddr_func),
  and ``explode byKey byMeta``, which take only Consul's data (nil: an
  empty map; anything else Go's type error); the regular expressions are
  RE2's, as Go's, in linear time); data functions (``env``, ``nomadVar``,
  ``file``...) are the caller's, given in *funcs*.

Errors are :class:`TemplateError` with Go's texts: a parse error names the
line (``template: :1: unexpected "}" in operand``), as does a function that
is not defined (``template: :1: function "foo" not defined``); an execution
error names the line and column and the action (``template: :1:3:
executing "" at <.x>: map has no entry for key "x"`` with
``missing_key_error``).  A data function may raise :class:`TemplateError`
itself (its message is passed on with the action's place).

Values are Python's: str, int, float, bool, None (Go's nil, printed
``<no value>``), list, dict (key order when ranged or printed); an object
a dict with a ``go_type`` is a Go struct (another field is an error), one
with ``go_methods()`` answers more names than its keys (a Nomad variable's
``.Items``), one with ``go_zero`` gives that for a missing key.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextvars
import decimal
import hashlib
import hmac
import inspect
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2


class TemplateError(ValueError):
    """The template does not parse or does not execute; the message is Go's."""


# Limits: a template is a job's config file, rendered inside the client agent, so what it can make
# the agent do is bounded (each is an error of the template, never the agent's memory or stack).
# Go's parser stops at 10000 nested parentheses ("max expression depth exceeded"), which its growing
# goroutine stacks allow; Python's stack is about 1000 frames, and each level of parentheses or
# {{if}}/{{range}}/{{with}} costs a few, so nesting (the two together) stops at this depth.
MAX_NESTING = 100
# parseJSON: Go's encoding/json stops at 10000 levels; here the value is walked recursively when
# printed or turned back into JSON, so it stops earlier (real configuration data is far shallower).
MAX_JSON_DEPTH = 200
# What one rendering writes (and any string a function makes on the way): 16 MiB, four times the
# client's template_source_max_bytes; beyond it the rendering fails rather than the agent's memory.
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
# Steps of execution (actions, text nodes, loop iterations): a template runs inside the agent, so
# {{range 1000000000000}} fails after about a second instead of holding the client for ever.
MAX_STEPS = 1_000_000

# Time a rendering may take of the client, on the clock the caller gives (the agent's env.now; virtual,
# so never reached, in the simulator): checked between steps and between a regular expression's
# matches, so a template that is slow in another way than MAX_STEPS counts (a replacement whose every
# match scans the rest of a long text, as "a*b|a" on "aaa...": quadratic in Go as well) fails instead
# of holding the client's allocations.
MAX_RENDER_S = 2.0
# One regular expression search cannot be interrupted: RE2's DFA makes most linear and fast, but when
# its memory runs out it falls back to a slower NFA, up to ~7 ns per program instruction and text
# character.  A search whose instructions times characters are beyond this (~3 s at that rate) is
# refused rather than run.
MAX_REGEX_WORK = 500_000_000

_limit: contextvars.ContextVar[int] = contextvars.ContextVar("gotemplate_max_output",
                                                             default=MAX_OUTPUT_BYTES)
_deadline: contextvars.ContextVar[tuple[Callable[[], float], float] | None] = contextvars.ContextVar(
    "gotemplate_deadline", default=None)


_scratch: contextvars.ContextVar[Any] = contextvars.ContextVar("gotemplate_scratch", default=None)


def _check_time() -> None:
    d = _deadline.get()
    if d is not None and d[0]() > d[1]:
        raise _TimeUp(f"template took longer than {MAX_RENDER_S:g}s to render")


def _check_size(n: int, what: str = "result") -> None:
    limit = _limit.get()
    if n > limit:
        raise _ExecError(f"{what} would be larger than {limit} bytes")


class _Missing:
    """Go's "no value" (a missing map key): printed ``<no value>``, false."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ------------------------------------------------------------ lexer
@dataclass(slots=True)
class _Tok:
    kind: str  # text, left, right, space, ident, field, var, decl, assign, string, number, bool, nil,
    #            pipe, lparen, rparen, comma, dot, eof, keyword, char
    val: str
    pos: int
    line: int


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_NUM = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]+(?![.eE0-9])|"
                  r"(\d[\d_]*)?\.?\d[\d_]*([eE][+-]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Lexer:
    def __init__(self, text: str, left: str, right: str, name: str) -> None:
        self.text, self.left, self.right, self.name = text, left or "{{", right or "}}", name
        self.toks: list[_Tok] = []
        self.newlines = [m.start() for m in re.finditer("\n", text)]  # line_at in O(log n), not O(n)

    def error(self, line: int, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def run(self) -> list[_Tok]:
        text, left, right = self.text, self.left, self.right
        pos, n = 0, len(text)
        trim_next = False
        while pos <= n:
            at = text.find(left, pos)
            if at < 0:
                chunk = text[pos:]
                if trim_next:
                    chunk = chunk.lstrip(" \t\r\n")
                if chunk:
                    self.toks.append(_Tok("text", chunk, pos, self.line_at(pos)))
                break
            chunk = text[pos:at]
            after = at + len(left)
            trim_left = text.startswith("-", after) and after + 1 < n and text[after + 1] in " \t\r\n"
            if trim_next:
                chunk = chunk.lstrip(" \t\r\n")
            if trim_left:
                chunk = chunk.rstrip(" \t\r\n")
                after += 1
            if chunk:
                self.toks.append(_Tok("text", chunk, pos, self.line_at(pos)))
            # a comment: {{/* ... */}} (with optional trim markers)
            inner = after
            while inner < n and text[inner] in " \t\r\n" and trim_left:
                inner += 1
            if text.startswith("/*", inner):
                end = text.find("*/", inner + 2)
                if end < 0:
                    raise self.error(self.line_at(at), "unclosed comment")
                close = end + 2
                trim_right = False
                rest = close
                while rest < n and text[rest] in " \t\r\n":
                    rest += 1
                if text.startswith("-" + right, rest) and rest > close:
                    trim_right, close = True, rest + 1
                elif text.startswith(right, close):
                    pass
                else:
                    raise self.error(self.line_at(at), "comment ends before closing delimiter")
                pos = close + len(right)
                trim_next = trim_right
                continue
            self.toks.append(_Tok("left", left, at, self.line_at(at)))
            try:
                pos, trim_next = self._action(after)
            except TemplateError as e:  # as Go's lazy lexer: the parser may fail earlier, on what came before
                self.toks.append(_Tok("lexerr", str(e), pos, self.line_at(pos)))
                break
        self.toks.append(_Tok("eof", "", n, self.line_at(n)))
        return self.toks

    def _action(self, pos: int) -> tuple[int, bool]:
        text, right, n = self.text, self.right, len(self.text)
        depth = 0
        while True:
            if pos >= n:
                raise self.error(self.line_at(pos), "unclosed action")
            c = text[pos]
            if c in " \t\r\n":
                start = pos
                while pos < n and text[pos] in " \t\r\n":
                    pos += 1
                if text.startswith("-" + right, pos):
                    self.toks.append(_Tok("right", right, pos, self.line_at(pos)))
                    return pos + 1 + len(right), True
                self.toks.append(_Tok("space", text[start:pos], start, self.line_at(start)))
                continue
            if text.startswith(right, pos):
                if depth:
                    raise self.error(self.line_at(pos), "unclosed left paren")
                self.toks.append(_Tok("right", right, pos, self.line_at(pos)))
                return pos + len(right), False
            line = self.line_at(pos)
            if c == '"':
                end = pos + 1
                while end < n and text[end] != '"':
                    if text[end] == "\\":
                        end += 1
                    if end < n and text[end] == "\n":
                        raise self.error(line, "unterminated quoted string")
                    end += 1
                if end >= n:
                    raise self.error(line, "unterminated quoted string")
                self.toks.append(_Tok("string", text[pos:end + 1], pos, line))
                pos = end + 1
            elif c == "`":
                end = text.find("`", pos + 1)
                if end < 0:
                    raise self.error(line, "unterminated raw quoted string")
                self.toks.append(_Tok("string", text[pos:end + 1], pos, line))
                pos = end + 1
            elif c == "'":
                m = re.compile(r"'(\\.[^']*|[^'\\])'").match(text, pos)
                if m is None:
                    raise self.error(line, "unterminated character constant")
                self.toks.append(_Tok("char", m.group(0), pos, line))
                pos = m.end()
            elif c == "|":
                self.toks.append(_Tok("pipe", c, pos, line))
                pos += 1
            elif c == "(":
                depth += 1
                self.toks.append(_Tok("lparen", c, pos, line))
                pos += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.error(line, "unexpected right paren")
                self.toks.append(_Tok("rparen", c, pos, line))
                pos += 1
            elif c == ",":
                self.toks.append(_Tok("comma", c, pos, line))
                pos += 1
            elif c == ":" and text.startswith(":=", pos):
                self.toks.append(_Tok("decl", ":=", pos, line))
                pos += 2
            elif c == "=":
                self.toks.append(_Tok("assign", "=", pos, line))
                pos += 1
            elif c == "$":
                m = _IDENT.match(text, pos + 1)
                name = "$" + (m.group(0) if m else "")
                self.toks.append(_Tok("var", name, pos, line))
                pos += len(name)
            elif c == "." and (pos + 1 >= n or not text[pos + 1].isdigit()):
                m = _IDENT.match(text, pos + 1)
                if m:
                    self.toks.append(_Tok("field", "." + m.group(0), pos, line))
                    pos = m.end()
                else:
                    self.toks.append(_Tok("dot", ".", pos, line))
                    pos += 1
            elif c.isdigit() or (c in "+-." and pos + 1 < n and text[pos + 1] in "0123456789."):
                m = _NUM.match(text, pos)
                if m is None or not m.group(0) or m.group(0) in "+-":
                    raise self.error(line, f"bad number syntax: {text[pos:pos + 1]!r}")
                end = m.end()
                if end < n and (text[end].isalnum() or text[end] == "_"):
                    word = re.match(r"[^\s(){}|,]*", text[pos:]).group(0)  # type: ignore[union-attr]
                    raise self.error(line, f'bad number syntax: "{word}"')
                self.toks.append(_Tok("number", m.group(0), pos, line))
                pos = end
            elif c.isalpha() or c == "_":
                m = _IDENT.match(text, pos)
                assert m is not None
                word = m.group(0)
                kind = "keyword" if word in _KEYWORDS else "bool" if word in ("true", "false") else \
                    "nil" if word == "nil" else "ident"
                self.toks.append(_Tok(kind, word, pos, line))
                pos = m.end()
                # a chain after an identifier or a closing paren: .Field
            else:  # a character no operand starts with: the parser says where it is unexpected
                self.toks.append(_Tok("other", c, pos, line))
                pos += 1


# ------------------------------------------------------------ parse tree
@dataclass(slots=True)
class _Node:
    line: int
    pos: int


@dataclass(slots=True)
class _Text(_Node):
    text: str


@dataclass(slots=True)
class _Operand(_Node):
    kind: str  # field, var, dot, func, string, number, bool, nil, pipe
    value: Any = None
    chain: tuple[str, ...] = ()
    src: str = ""


@dataclass(slots=True)
class _Pipe(_Node):
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # $x = (not :=)
    cmds: list[list[_Operand]] = field(default_factory=list)
    src: str = ""


@dataclass(slots=True)
class _Action(_Node):
    pipe: _Pipe


@dataclass(slots=True)
class _Control(_Node):
    kind: str  # if, range, with
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None = None


@dataclass(slots=True)
class _Loop(_Node):
    kind: str  # break, continue


_BUILTIN_NAMES = ("and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt", "le",
                  "gt", "ge", "slice", "html", "js", "urlquery")


class _Parser:
    def __init__(self, toks: list[_Tok], lexer: _Lexer, funcs: dict[str, Any]) -> None:
        self.toks, self.i, self.lx, self.funcs = toks, 0, lexer, funcs
        self.vars: list[list[str]] = [["$"]]
        self.loops = 0
        self.depth = 0  # nested parentheses and {{if}}/{{range}}/{{with}} (MAX_NESTING)

    def nest(self, tok: _Tok) -> None:
        if self.depth >= MAX_NESTING:
            raise self.error(tok, f"max expression depth exceeded (this agent allows {MAX_NESTING})")
        self.depth += 1

    def peek(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind == "lexerr":
            raise TemplateError(t.val)
        return t

    def next(self) -> _Tok:
        t = self.peek()
        self.i += 1
        return t

    def next_non_space(self) -> _Tok:
        t = self.next()
        while t.kind == "space":
            t = self.next()
        return t

    def peek_non_space(self) -> _Tok:
        j = self.i
        while self.toks[j].kind == "space":
            j += 1
        if self.toks[j].kind == "lexerr":
            raise TemplateError(self.toks[j].val)
        return self.toks[j]

    def error(self, tok: _Tok, msg: str) -> TemplateError:
        return self.lx.error(tok.line, msg)

    def parse(self) -> list[_Node]:
        body, end = self.list_until(())
        if end is not None:
            raise self.error(end[1], f"unexpected {{{{{end[0]}}}}}")
        return body

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[_Node], tuple[str, _Tok] | None]:
        """Nodes until {{end}} / {{else}} (returned with the keyword), or the end of input."""
        out: list[_Node] = []
        while True:
            t = self.next()
            if t.kind == "eof":
                if stops:
                    raise self.error(t, "unexpected EOF")
                return out, None
            if t.kind == "text":
                out.append(_Text(t.line, t.pos, t.val))
                continue
            # t is a left delimiter
            k = self.peek_non_space()
            if k.kind == "keyword":
                self.next_non_space()
                if k.val in ("end", "else"):
                    if k.val not in stops:
                        raise self.error(k, f"unexpected {{{{{k.val}}}}}")
                    return out, (k.val, k)
                out.append(self.control(k))
                continue
            pipe = self.pipeline("command", k)
            out.append(_Action(k.line, k.pos, pipe))

    def control(self, k: _Tok) -> _Node:
        if k.val in ("break", "continue"):
            if not self.loops:
                raise self.error(k, f"{{{{{k.val}}}}} outside {{{{range}}}}")
            self.expect_right(k.val)
            return _Loop(k.line, k.pos, k.val)
        if k.val in ("define", "template", "block"):
            raise self.error(k, f"{{{{{k.val}}}}} is not supported by this agent's template renderer")
        return self.branch(k, k.val)

    def branch(self, k: _Tok, kind: str) -> _Node:
        self.nest(k)
        self.vars.append(list(self.vars[-1]))
        pipe = self.pipeline(kind, k)
        if kind == "range":
            self.loops += 1
        body, end = self.list_until(("end", "else"))
        if kind == "range":
            self.loops -= 1
        else_body = None
        assert end is not None
        if end[0] == "else":
            nxt = self.peek_non_space()
            if kind in ("if", "with") and nxt.kind == "keyword" and nxt.val == kind:
                # {{else if ...}} / {{else with ...}}: one more branch sharing this {{end}}
                self.next_non_space()
                self.vars[-1] = list(self.vars[-2])
                else_body = [self.branch(nxt, kind)]
            else:
                self.expect_right("else")
                self.vars[-1] = list(self.vars[-2])
                else_body, end2 = self.list_until(("end",))
                assert end2 is not None and end2[0] == "end"
                self.expect_right("end")
        else:
            self.expect_right("end")
        self.vars.pop()
        self.depth -= 1
        return _Control(k.line, k.pos, kind, pipe, body, else_body)

    def expect_right(self, ctx: str) -> None:
        t = self.next_non_space()
        if t.kind != "right":
            raise self.error(t, f"unexpected {self.describe(t)} in {ctx}")

    def describe(self, t: _Tok) -> str:
        if t.kind == "eof":
            return "EOF"
        if t.kind == "right":
            return "}}" if t.val == "}}" else t.val
        if t.kind == "keyword":
            return f"<{t.val}>"
        return json.dumps(t.val, ensure_ascii=False) if len(t.val) <= 10 else \
            json.dumps(t.val[:10], ensure_ascii=False) + "..."

    def pipeline(self, ctx: str, start: _Tok) -> _Pipe:
        pipe = _Pipe(start.line, start.pos)
        first = self.i
        # declarations: $x := / $x = / $i, $v :=
        save = self.i
        t = self.next_non_space()
        if t.kind == "var":
            names = [t.val]
            nxt = self.next_non_space()
            if nxt.kind == "comma" and ctx == "range":
                t2 = self.next_non_space()
                if t2.kind != "var":
                    raise self.error(t2, "range can only initialize variables")
                names.append(t2.val)
                nxt = self.next_non_space()
            if nxt.kind in ("decl", "assign") and (nxt.kind == "decl" or True):
                pipe.decl, pipe.assign = names, nxt.kind == "assign"
                if pipe.assign:
                    for n in names:
                        if n not in self.vars[-1]:
                            raise self.error(t, f"undefined variable: {n}")
            elif len(names) > 1:
                raise self.error(nxt, f"too many declarations in {ctx}")
            else:
                self.i = save
        else:
            self.i = save
        while True:
            cmd = self.command(ctx)
            pipe.cmds.append(cmd)
            t = self.next_non_space()
            if t.kind == "pipe":
                continue
            if t.kind in ("right", "rparen"):
                if t.kind == "rparen" and ctx != "paren":
                    raise self.error(t, "unexpected right paren")
                if t.kind == "right" and ctx == "paren":
                    raise self.error(t, "unclosed left paren")
                break
            raise self.error(t, f"unexpected {self.describe(t)} in {ctx}")
        if not pipe.decl or not pipe.assign:
            for n in pipe.decl:
                self.vars[-1].append(n)
        pipe.src = "".join(tok.val for tok in self.toks[first:self.i - 1]).strip()
        return pipe

    def command(self, ctx: str) -> list[_Operand]:
        """Go's parse.command: operands separated by spaces, up to a pipe, a closing paren or delimiter."""
        args: list[_Operand] = []
        while True:
            t = self.peek_non_space()
            if t.kind not in ("pipe", "right", "rparen", "eof", "other", "comma", "decl", "assign"):
                self.next_non_space()
                args.append(self.operand(t))
            nxt = self.peek()
            if nxt.kind == "space":
                self.next()
                continue
            if nxt.kind in ("right", "rparen", "pipe"):
                break
            if nxt.kind == "eof":
                raise self.error(nxt, "unclosed action")
            self.next()
            raise self.error(nxt, f"unexpected {self.describe(nxt)} in operand")
        if not args:
            raise self.error(nxt, f"missing value for {ctx if ctx != 'paren' else 'command'}")
        return args

    def operand(self, t: _Tok) -> _Operand:
        if t.kind == "field":
            op = _Operand(t.line, t.pos, "field", chain=tuple(t.val[1:].split(".")), src=t.val)
        elif t.kind == "var":
            if t.val not in self.vars[-1]:
                raise self.error(t, f"undefined variable \"{t.val}\"")
            op = _Operand(t.line, t.pos, "var", value=t.val, src=t.val)
        elif t.kind == "dot":
            op = _Operand(t.line, t.pos, "dot", src=".")
        elif t.kind == "ident":
            if t.val not in self.funcs and t.val not in _BUILTIN_NAMES:
                raise self.error(t, f'function "{t.val}" not defined')
            op = _Operand(t.line, t.pos, "func", value=t.val, src=t.val)
        elif t.kind == "string":
            op = _Operand(t.line, t.pos, "string", value=_unquote(t, self), src=t.val)
        elif t.kind == "char":
            op = _Operand(t.line, t.pos, "number", value=ord(_unquote(t, self)), src=t.val)
        elif t.kind == "number":
            op = _Operand(t.line, t.pos, "number", value=_number(t, self), src=t.val)
        elif t.kind == "bool":
            op = _Operand(t.line, t.pos, "bool", value=t.val == "true", src=t.val)
        elif t.kind == "nil":
            op = _Operand(t.line, t.pos, "nil", src="nil")
        elif t.kind == "lparen":
            self.nest(t)
            pipe = self.pipeline("paren", t)
            self.depth -= 1
            op = _Operand(t.line, t.pos, "pipe", value=pipe, src=f"({pipe.src})")
        elif t.kind == "keyword":
            raise self.error(t, f"unexpected <{t.val}> in command")
        else:
            raise self.error(t, f"unexpected {self.describe(t)} in operand")
        # a field chain right after: $x.Foo, (pipe).Bar
        while self.peek().kind == "field" and op.kind in ("var", "pipe", "field", "dot", "func"):
            f = self.next()
            op.chain = op.chain + tuple(f.val[1:].split("."))
            op.src += f.val
        return op


def _unquote(t: _Tok, p: _Parser) -> str:
    s = t.val
    if s.startswith("`"):
        return s[1:-1]
    if s.startswith("'"):
        body = s[1:-1]
        try:
            v = json.loads('"' + body.replace('"', '\\"') + '"') if body.startswith("\\") else body
        except ValueError:
            raise p.error(t, f"malformed character constant: {s}") from None
        if _SURROGATE.search(v) or len(v) != 1:
            raise p.error(t, f"malformed character constant: {s}")
        return v
    try:
        v = json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", s))
    except ValueError:
        raise p.error(t, f"invalid syntax: {s}") from None
    if _SURROGATE.search(v):  # Go's strconv.Unquote: a surrogate half is not a code point
        raise p.error(t, f"invalid syntax: {s}")
    return v


_SURROGATE = re.compile("[\ud800-\udfff]")


def _number(t: _Tok, p: _Parser) -> int | float:
    s = t.val.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", s):
            return int(s, 16)
        if re.fullmatch(r"[+-]?0[bB][01]+", s):
            return int(s, 2)
        if re.fullmatch(r"[+-]?0[oO]?[0-7]+", s) and len(s.lstrip("+-")) > 1:
            return int(s.replace("o", "").replace("O", ""), 8)
        if re.fullmatch(r"[+-]?\d+", s):
            return int(s)
        return float(s)
    except ValueError:
        raise p.error(t, f'bad number syntax: "{t.val}"') from None


# ------------------------------------------------------------ execution
def truth(v: Any) -> bool:
    """Go's template truth: false, 0, nil, an empty string, list or map are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def go_str(v: Any) -> str:
    """How Go's fmt prints a value (``%v``): what an action writes."""
    if v is None or v is NO_VALUE:
        return "<no value>" if v is NO_VALUE else "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        _check_time()  # a scratch map holding one map twice, 40 deep, prints 2**40 of them
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        _check_time()
        return "map[" + " ".join(f"{go_str(k)}:{go_str(x)}" for k, x in sorted(v.items(), key=_key)) + "]"
    s = getattr(v, "go_string", None)
    return s() if callable(s) else str(v)


def _go_float(v: float) -> str:
    """Go's %v of a float64 (strconv 'g', shortest): +Inf, -Inf, NaN; the shortest digits that read
    back, with an exponent (e+06, e-05) when it is below -4 or at least 6 (1e+06, 1.234567895e+08)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(v)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    exp = len(ds) + int(exponent) - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{neg}0.{'0' * (-exp - 1)}{ds}"
    if len(ds) <= exp + 1:
        return neg + ds + "0" * (exp + 1 - len(ds))
    return f"{neg}{ds[:exp + 1]}.{ds[exp + 1:]}"


def _key(kv: tuple[Any, Any]) -> Any:
    k = kv[0]
    return (0, k, "") if isinstance(k, (int, float)) and not isinstance(k, bool) else (1, 0, str(k))


def _basic(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _ExecError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic(a), _basic(b)
        if ka == "other" or kb == "other":
            if a is None or b is None:
                if a is b:
                    return True
                continue
            raise _ExecError("incompatible types for comparison" if ka != kb else "non-comparable types")
        if ka != kb and not ({ka, kb} <= {"int", "float"} and False):
            raise _ExecError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka in ("bool", "other") or kb in ("bool", "other"):
        raise _ExecError("invalid type for comparison")
    if ka != kb:
        raise _ExecError("incompatible types for comparison")
    return bool(a < b)


class _ExecError(Exception):
    """An error inside a function; the executor adds Go's place ("executing ... at <...>")."""


class _TimeUp(_ExecError):
    """The rendering ran out of MAX_RENDER_S."""



def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    raise _ExecError(f"len of type {_type_name(v)}")


def _type_name(v: Any) -> str:
    if v is None:
        return "<nil>"
    return {"bool": "bool", "int": "int", "float": "float64", "string": "string"}.get(_basic(v)) or \
        ("[]interface {}" if isinstance(v, (list, tuple)) else
         "map[string]interface {}" if isinstance(v, dict) else type(v).__name__)


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise _ExecError(f"cannot index slice/array with type {_type_name(k)}")
            if not 0 <= k < len(item):
                raise _ExecError(f"error calling index: index out of range: {k}")
            item = item[k] if not isinstance(item, str) else item.encode()[k]
        elif isinstance(item, dict):
            item = item.get(k, getattr(item, "go_zero", None))
        elif item is None:
            raise _ExecError("error calling index: index of untyped nil")
        else:
            raise _ExecError(f"error calling index: can't index item of type {_type_name(item)}")
    return item


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*))?([vsdqfFeEgGxXtTcbo%])")


def sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use (%v %s %d %q %f %e %g %x %X %t %c %b %o %T %%)."""
    out, i, argi, size = [], 0, 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[i:m.start()])
        i = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        spec = flags.replace("#", "") + (width or "") + (f".{prec}" if prec else "")
        _check_size(sum(int(x) for x in (width, prec if verb in "fFeEgG" else None) if x and x != "*"))
        try:
            if verb in "vs":
                s = go_str(a)
                if prec:
                    s = s[:int(prec)]
                out.append(format(s, ("<" if "-" in flags else ">") + (width or "")))
            elif verb == "q":
                out.append(format(json.dumps(a if isinstance(a, str) else go_str(a), ensure_ascii=False),
                                  ("<" if "-" in flags else ">") + (width or "")))
            elif verb == "d":
                if not isinstance(a, int) or isinstance(a, bool):
                    raise TypeError
                out.append(format(a, spec.replace("-", "<") + "d"))
            elif verb in "fFeEgG":
                if not isinstance(a, (int, float)) or isinstance(a, bool):
                    raise TypeError
                v = float(a)
                if verb in "fF" and not prec:
                    spec += ".6"
                out.append(format(v, spec.replace("-", "<") + verb.lower()))
            elif verb in "xX":
                if isinstance(a, str):
                    s = a.encode().hex()
                    out.append(s.upper() if verb == "X" else s)
                else:
                    if not isinstance(a, int) or isinstance(a, bool):
                        raise TypeError
                    out.append(("0x" if "#" in flags else "") + format(a, spec.replace("-", "<") + verb))
            elif verb in "bo":
                if not isinstance(a, int) or isinstance(a, bool):
                    raise TypeError
                out.append(format(a, spec.replace("-", "<") + verb))
            elif verb == "t":
                if not isinstance(a, bool):
                    raise TypeError
                out.append("true" if a else "false")
            elif verb == "c":
                if not isinstance(a, int) or isinstance(a, bool):
                    raise TypeError
                # Go's fmtC: a value that is not a Unicode code point prints as U+FFFD
                out.append(chr(a) if 0 <= a <= 0x10FFFF and not 0xD800 <= a <= 0xDFFF else "\ufffd")
            elif verb == "T":
                out.append(_type_name(a))
        except (TypeError, ValueError, OverflowError):
            out.append(f"%!{verb}({_type_name(a)}={go_str(a)})")
        size += len(out[-1]) + m.start() - i
        _check_size(size)
    out.append(fmt[i:])
    if argi < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_type_name(a)}={go_str(a)}" for a in args[argi:]) + ")")
    return "".join(out)


def sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out, size = [], 0
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
        size += len(out[-1]) + 1
        _check_size(size)
    return "".join(out)


def _println(*args: Any) -> str:
    """Go's fmt.Sprintln: operands separated by spaces, then a newline."""
    out, size = [], 1
    for a in args:
        out.append(go_str(a))
        size += len(out[-1]) + 1
        _check_size(size)
    return " ".join(out) + "\n"


def _split(sep: str, s: str) -> list[str]:
    s = s.strip() if isinstance(s, str) else s
    if not isinstance(s, str) or not isinstance(sep, str):
        raise _ExecError("split: arguments must be strings")
    if s == "":
        return []
    return s.split(sep) if sep else list(s)


def _join(sep: str, items: Any) -> str:
    if not isinstance(items, (list, tuple)):
        raise _ExecError(f"join: expected a list, got {_type_name(items)}")
    if not isinstance(sep, str):
        raise _ExecError(f"join: expected a string separator, got {_type_name(sep)}")
    parts = [go_str(x) for x in items]
    _check_size(sum(map(len, parts)) + len(sep) * max(0, len(parts) - 1))
    return sep.join(parts)


def _contains(v: Any, haystack: Any) -> bool:
    if isinstance(haystack, (list, tuple)):
        return any(_deep_eq(x, v, set()) for x in haystack)
    if isinstance(haystack, str) and isinstance(v, str):
        return v in haystack
    return False


def _deep_eq(a: Any, b: Any, seen: set[tuple[int, int]]) -> bool:
    """``a == b`` as Go's reflect.DeepEqual decides it on maps and lists: a pair of them met before
    counts as equal (so two scratch maps sharing their values compare in linear time, not 2**depth),
    and the render-time bound is looked at for each pair."""
    for kind in (dict, list, tuple):
        if isinstance(a, kind) and isinstance(b, kind):
            break
    else:
        return bool(a == b)
    if a is b or (id(a), id(b)) in seen:
        return True
    seen.add((id(a), id(b)))
    _check_time()
    if len(a) != len(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_deep_eq(a[k], b[k], seen) for k in a)
    return all(_deep_eq(x, y, seen) for x, y in zip(a, b, strict=True))


# Go's json.Marshal (consul-template's toJSON, toJSONPretty) escapes these, so the text is safe inside
# HTML; toUnescapedJSON / toUnescapedJSONPretty write them as they are.
_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                               "\u2029": "\\u2029"})


def _to_json(v: Any, pretty: bool = False, escape_html: bool = True, name: str = "toJSON") -> str:
    """Go's encoding/json of *v*: keys sorted; with *escape_html* < > & (and U+2028, U+2029) as
    \\u003c...; characters the escapes add count against the output bound."""
    text = _to_json_text(v, pretty, name)
    if escape_html:
        _check_size(len(text) + 5 * sum(text.count(c) for c in "<>&\u2028\u2029"))
        text = text.translate(_HTML_ESCAPES)
    return text


def _to_json_text(v: Any, pretty: bool, name: str) -> str:
    def plain(x: Any) -> Any:
        if x is NO_VALUE:
            return None
        f = getattr(x, "go_json", None)
        return plain(f()) if callable(f) else x
    try:
        v = _go_json(v)
        if pretty:  # its indentation can grow the text many times over: built piece by piece, bounded
            out, size = [], 0
            enc = json.JSONEncoder(default=plain, indent=2, sort_keys=True, ensure_ascii=False)
            for chunk in enc.iterencode(v):
                size += len(chunk)
                _check_size(size)
                out.append(chunk)
            return "".join(out)
        return json.dumps(v, default=plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise _ExecError(f"{name}: {e}") from None


def _go_json(v: Any) -> Any:
    """*v* with its floats as Go's encoding/json writes them: a whole number without ".0" (parseJSON's
    numbers are float64, as Go's), and +Inf / NaN refused ("json: unsupported value: NaN")."""
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"json: unsupported value: {_go_float(v)}")
        return int(v) if v == int(v) and abs(v) < 1e21 else v
    if isinstance(v, dict):
        _check_time()  # a DAG made with scratch.MapSet expands exponentially: bounded by the render time
        return {k: _go_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        _check_time()
        return [_go_json(x) for x in v]
    return v


def _parse_json(s: str) -> Any:
    if not isinstance(s, str):
        raise _ExecError("parseJSON: argument must be a string")
    if not s:
        return {}
    plain = _JSON_STRING.sub("", s)
    depth = max(itertools.accumulate(map(_JSON_NEST.get, plain, itertools.repeat(0))), default=0)
    if depth > MAX_JSON_DEPTH:
        raise _ExecError(f"parseJSON: exceeded max depth ({MAX_JSON_DEPTH} nested arrays or objects)")
    try:
        return json.loads(s, parse_constant=_json_constant, parse_float=_json_float, parse_int=_json_float)
    except ValueError as e:
        raise _ExecError(f"parseJSON: {e}") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_NEST = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _json_float(text: str) -> float:
    """A JSON number as Go's parseJSON (json.Unmarshal into interface{}) gives it: a float64."""
    v = float(text)
    if math.isinf(v):  # Go's encoding/json: out of float64's range
        raise ValueError(f"cannot unmarshal number {text} into Go value of type float64")
    return v


def _b64decode(s: str) -> str:
    try:
        return base64.b64decode(s.encode(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as e:
        raise _ExecError(f"base64Decode: {e}") from None


def _str_fn(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        for a in args:
            if not isinstance(a, str):
                raise _ExecError(f"wrong type for value; expected string; got {_type_name(a)}")
        return f(*args)
    call.__name__ = name
    return call


def _parse_int(s: str) -> int:
    try:
        return int(s.strip(), 0) if s.strip().lower().startswith(("0x", "0o", "0b")) else int(s.strip())
    except (ValueError, AttributeError):
        raise _ExecError(f'parseInt: strconv.ParseInt: parsing "{s}": invalid syntax') from None


def _parse_float(s: str) -> float:
    try:
        return float(s)
    except (ValueError, TypeError):
        raise _ExecError(f'parseFloat: strconv.ParseFloat: parsing "{s}": invalid syntax') from None


def _parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if s in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise _ExecError(f'parseBool: strconv.ParseBool: parsing "{s}": invalid syntax')


# Go's regexp package is RE2: no backtracking, so no pattern takes more than linear time, and what
# RE2 cannot do in linear time (backreferences, lookaround, possessive or atomic groups) is a syntax
# error.  Python's re backtracks ("(a+)+$" on "aaa...ab" would hold the client for ever), so the
# regex functions run on google-re2, the RE2 library itself: Go's syntax and semantics ("$" only at
# the end of the text, ASCII \d \w \s \b, (?U)), in linear time.  Its error messages are mapped to
# Go's (regexp/syntax's ErrorCode texts).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a template's bad pattern is its error, not a line on the agent's stderr
# RE2's memory for one pattern (its default is 8 MiB): with 32 MiB the DFA keeps patterns such as
# "(?:[a-z]{1000})+x" (8 s on 1 MB of text in the NFA it falls back to at 8 MiB) at 30 ms.
_RE2_OPTIONS.max_mem = 32 << 20
# Compiled patterns kept (their DFA memory with them): a template's loop compiles each once.
_RE2_CACHE_SIZE = 16
_re2_cache: dict[str, Any] = {}
_RE2_ERRORS = {
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}
_RE2_ANY_BYTE = re.compile(r"(?:^|[^\\])(?:\\\\)*(\\C)")  # RE2's \C (any byte): not Go's


def _regex(pattern: str) -> Any:
    """*pattern* compiled as Go's regexp.Compile does; its error as Go's ("error parsing regexp: ...")."""
    if _RE2_ANY_BYTE.search(pattern):
        raise _ExecError("error parsing regexp: invalid escape sequence: `\\C`")
    rx = _re2_cache.get(pattern)
    if rx is not None:
        return rx
    try:
        rx = re2._Regexp(pattern, _RE2_OPTIONS)  # not re2.compile: its cache keeps 128, each up to max_mem
    except UnicodeEncodeError:
        shown = pattern.encode("utf-8", "replace").decode()
        raise _ExecError(f"error parsing regexp: invalid UTF-8: `{shown}`") from None
    except re2.error as e:
        raw = e.args[0] if e.args else ""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        code, _, expr = text.partition(": ")
        code = _RE2_ERRORS.get(code, code)
        raise _ExecError(f"error parsing regexp: {code}: `{expr}`") from None
    if len(_re2_cache) >= _RE2_CACHE_SIZE:
        del _re2_cache[next(iter(_re2_cache))]  # the oldest
    _re2_cache[pattern] = rx
    return rx


def _regex_work(rx: Any, s: str) -> None:
    """Refuse a search that could take seconds (MAX_REGEX_WORK), and one past the rendering's time."""
    _check_time()
    work = rx.programsize * (len(s) + 1)
    if work > MAX_REGEX_WORK:
        raise _ExecError(f"regexp: a pattern of {rx.programsize} instructions over {len(s)} characters is "
                         f"more than a template may search ({MAX_REGEX_WORK} instructions times characters)")


def _regex_text(s: str) -> str:
    try:
        s.encode()
    except UnicodeEncodeError:
        raise _ExecError("the text is not valid UTF-8") from None
    return s


def _regex_match(pattern: str, s: str) -> bool:
    """consul-template's regexMatch: Go's MatchString (a match anywhere in *s*)."""
    rx = _regex(pattern)
    _regex_work(rx, _regex_text(s))
    return rx.search(s) is not None


def _int64(v: Any) -> Any:
    """Go's int64 wraps: so does an integer result here (Python's ints would grow without bound, and
    ``multiply $x $x`` in a loop would hold the client for hours inside one step)."""
    return ((v + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63) if type(v) is int else v


def _go_div(a: Any, b: Any) -> Any:
    """Go's ``/``: integers truncate toward zero (Python's ``//`` floors)."""
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)
        return q if (a < 0) == (b < 0) else -q
    return a / b


def _go_mod(a: Any, b: Any) -> Any:
    """Go's ``%``: the sign of the dividend (Python's follows the divisor); integers only, as
    consul-template's modulo."""
    for v in (a, b):
        if type(v) is not int:
            raise _ExecError(f"modulo: unknown type for {go_str(v)!r} ({_type_name(v)})")
    return a - b * _go_div(a, b)


def _math(name: str, op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """consul-template's math: ``{{ 5 | subtract 2 }}`` is 5 - 2 (the piped value comes last), on
    Go's int64 for integers."""
    def call(b: Any, a: Any) -> Any:
        for v in (a, b):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise _ExecError(f"{name}: unknown type for {go_str(v)!r} ({_type_name(v)})")
        if name in ("divide", "modulo") and b == 0:
            raise _ExecError(f"{name}: division by zero")
        return _int64(op(_int64(a), _int64(b)))
    return call


def _indent(n: Any, s: Any) -> str:
    """consul-template's indent: *n* spaces before each line of *s* that is not empty."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise _ExecError(f"indent: expected an integer number of spaces, got {_type_name(n)}")
    if n < 0:
        raise _ExecError("indent value must be a positive integer")
    if not isinstance(s, str):
        raise _ExecError(f"wrong type for value; expected string; got {_type_name(s)}")
    _check_size(len(s) + n * (s.count("\n") + 1))
    return "\n".join(" " * n + ln if ln else ln for ln in s.split("\n"))  # empty lines stay empty


def _replace_all(old: str, new: str, s: str) -> str:
    count = s.count(old) if old else len(s) + 1
    _check_size(len(s) + count * (len(new) - len(old)))
    return s.replace(old, new)


def _regex_replace(pattern: str, repl: str, s: str, literal: bool = False) -> str:
    """Go's Regexp.ReplaceAllString: each match of *pattern* in *s* replaced by *repl*, where $1, $name
    and ${name} expand to the group (empty when the group did not match or does not exist, as Go's
    Expand) and $$ to $; with *literal* (ReplaceAllLiteralString) *repl* is taken as it is.  As Go, an
    empty match right after the previous match is not replaced."""
    rx = _regex(pattern)
    _regex_work(rx, _regex_text(s))
    names = rx.groupindex
    out: list[str] = []
    size = 0
    last = 0
    for n, m in enumerate(rx.finditer(s)):
        if n % 16 == 15:
            _check_time()
        start, end = m.span()
        if end == last and start != 0:
            continue  # Go: no replacement for an empty match abutting the previous one
        out.append(s[last:start])
        text = repl if literal else _go_expand(repl, m, names)
        out.append(text)
        size += start - last + len(text)
        _check_size(size)
        last = end
    out.append(s[last:])
    return "".join(out)


_EXPAND = re.compile(r"\$(?:\{(\w+)\}|(\w+)|\$)")


def _go_expand(template: str, m: Any, names: dict[str, int]) -> str:
    """Go's Regexp.Expand: $1 / $name / ${name} is the group's text (the longest name: "$1x" is the
    group "1x"), a number with a leading zero is a name; $$ is $; another $ stays as it is."""
    def group(g: re.Match[str]) -> str:
        name = g.group(1) or g.group(2)
        if name is None:
            return "$"
        if name.isascii() and name.isdigit() and (name == "0" or name[0] != "0"):
            index = int(name)
        else:
            index = names.get(name, -1)
        if not 0 <= index <= len(m.groups()):
            return ""
        return m.group(index) or ""
    return _EXPAND.sub(group, template)


def _title(s: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _b64url_decode(s: str) -> str:
    bad = re.search(r"[+/]", s)  # the standard alphabet's; Go's URLEncoding refuses them
    if bad:
        raise _ExecError(f"base64URLDecode: illegal base64 data at input byte {bad.start()}")
    try:
        return base64.b64decode(s.encode(), altchars=b"-_", validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as e:
        raise _ExecError(f"base64URLDecode: {e}") from None


def _parse_uint(s: str) -> int:
    """Go's strconv.ParseUint(s, 10, 64); "" is 0 (consul-template's parseUint)."""
    if s == "":
        return 0
    if not re.fullmatch(r"[0-9]+", s):
        raise _ExecError(f'parseUint: strconv.ParseUint: parsing "{s}": invalid syntax')
    if int(s) >= 1 << 64:
        raise _ExecError(f'parseUint: strconv.ParseUint: parsing "{s}": value out of range')
    return int(s)


def _loop(*args: Any) -> range:
    """consul-template's loop: ``loop 3`` is 0, 1, 2; ``loop 2 5`` is 2, 3, 4 (a channel in Go: ranged
    with one variable only).  Ranged lazily, so MAX_STEPS ends a huge one."""
    if len(args) not in (1, 2):
        raise _ExecError(f"loop: wrong number of arguments, expected 1 or 2, but got {len(args)}")
    bounds = []
    for a in ((0, *args) if len(args) == 1 else args):
        if isinstance(a, str):
            a = _parse_int(a)
        if not isinstance(a, int) or isinstance(a, bool):
            raise _ExecError(f"loop: bad argument type: {_type_name(a)}")
        bounds.append(a)
    return range(bounds[0], bounds[1])


def _split_to_map(sep1: str, sep2: str, s: str) -> dict[str, str]:
    """consul-template's splitToMap: "a:1,b:2" by "," and ":" is map[a:1 b:2]; a part without sep2 is
    skipped."""
    s = s.strip()
    if not s:
        return {}
    if not sep1:
        raise _ExecError("splitToMap: the first separator is empty")
    out: dict[str, str] = {}
    for part in s.split(sep1):
        k, found, v = part.partition(sep2) if sep2 else ("", True, part)
        if found:
            out[k] = v
    return out


def _contains_some(ret_true: bool, invert: bool) -> Callable[..., bool]:
    """consul-template's containsAll / containsAny / containsNone / containsNotAll."""
    def call(vs: Any, haystack: Any) -> bool:
        for v in vs or ():
            if _contains(v, haystack) != invert:
                return not ret_true
        return ret_true
    return call


# ------------------------------------------------------------ more of consul-template's functions
def sockaddr_func(provider: Callable[[], Any] | None) -> Callable[..., str]:
    """consul-template's ``sockaddr``: its arguments, joined by spaces, as a go-sockaddr template's
    action (``{{ sockaddr "GetInterfaceIP \\"eth0\\"" }}``) evaluated over the interfaces *provider*
    gives (runtime.sockaddr.HostNet; None: the host this runs on, the client's)."""
    def sockaddr(*args: Any) -> str:
        from runtime.sockaddr import parse_host

        for a in args:
            if not isinstance(a, str):
                raise _ExecError(f"wrong type for value; expected string; got {_type_name(a)}")
        return parse_host("{{ " + " ".join(args) + " }}", provider)
    return sockaddr


def _not_supported(name: str) -> Callable[..., Any]:
    def call(*_args: Any) -> Any:
        raise _ExecError(f"{name} is not supported by this agent")
    call.__name__ = name
    return call


def _depth_error(name: str) -> _ExecError:
    return _ExecError(f"{name}: value nested deeper than {MAX_JSON_DEPTH} levels")


def _plain_map(name: str, v: Any, what: str = "map[string]interface {}") -> dict[str, Any]:
    """A Go map[string]interface{} argument: a plain map (nil: an empty one); another value is Go's
    type error."""
    if v is None:
        return {}
    if type(v) is not dict or not all(isinstance(k, str) for k in v):
        got = getattr(v, "go_type", None) or ("dependency.NomadVarItems" if isinstance(v, dict) and hasattr(
            v, "go_methods") else _type_name(v))
        raise _ExecError(f"wrong type for value; expected {what}; got {got}")
    return v


def _empty(v: Any) -> bool:
    """mergo's isEmptyValue: the zero value of its type."""
    return v is None or v is NO_VALUE or (not isinstance(v, bool) and v in ("", 0)) or v is False or (
        isinstance(v, (dict, list, tuple)) and not v)


def _merge_map(dst: Any, src: Any, override: bool, name: str) -> dict[str, Any]:
    """mergo.Map(&dst, src) (WithOverride for mergeMapWithOverride), as consul-template's mergeMap:
    into *dst* (changed in place, as Go's map is) go *src*'s keys that it lacks or holds empty; nested
    maps merge key by key; with *override* src's values replace dst's, except that a non-empty map
    of dst is merged into, never replaced."""
    dst, src = _plain_map(name, dst), _plain_map(name, src)
    stack = [(dst, src, 0)]
    while stack:
        d, s, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _depth_error(name)
        _check_time()
        for k, sv in s.items():
            dv = d.get(k, NO_VALUE)
            if sv is None:
                if override:
                    d[k] = None
                continue
            if isinstance(sv, dict):
                if isinstance(dv, dict) and sv is not dv:
                    stack.append((dv, sv, depth + 1))
                if isinstance(dv, dict) and dv:  # a map into a map: merged, never replaced
                    continue
            elif isinstance(sv, (list, tuple)) and not _empty(dv) and not override:
                continue
            if override or _empty(dv):
                d[k] = sv
    return dst


def _explode_into(out: dict[str, Any], key: str, value: Any, name: str) -> None:
    """consul-template's explodeHelper: "a/b/c" = v becomes {"a": {"b": {"c": v}}} in *out*."""
    parts = key.split("/")
    if len(parts) > MAX_JSON_DEPTH:
        raise _depth_error(name)
    m, path, cur = out, key, key  # Go's message names the key one level up (its recursion's p)
    for top in parts[:-1]:
        nest = m.setdefault(top, {})
        if not isinstance(nest, dict):
            shown = json.dumps(nest) if isinstance(nest, str) else f"%!q({_type_name(nest)}={go_str(nest)})"
            raise _ExecError(f"{name}: not a map: {json.dumps(path)}: {json.dumps(top)} already has value "
                             f"{shown}")
        m, path, cur = nest, cur, cur.partition("/")[2]
    if parts[-1]:
        m[parts[-1]] = value


def _explode_map(v: Any) -> dict[str, Any]:
    """explodeMap: a map whose keys are paths ("a/b") turned into nested maps, keys in sorted order."""
    src = _plain_map("explodeMap", v)
    out: dict[str, Any] = {}
    for k in sorted(src):
        _explode_into(out, k, src[k], "explodeMap")
    return out


def _consul_only(name: str, go_type: str, empty: Callable[[], Any]) -> Callable[..., Any]:
    """A function of Consul's data (``explode``, ``byKey``: ``ls``/``tree`` pairs; ``byMeta``: health
    services): nil gives an empty map as in Go; any other value is Go's type error (this agent has no
    Consul, so no value of that type exists)."""
    def call(*args: Any) -> Any:
        if args[-1] is None:
            return empty()
        raise _ExecError(f"wrong type for value; expected {go_type}; got {_type_name(args[-1])}")
    call.__name__ = name
    return call


def _by_meta(meta: Any, services: Any) -> Any:
    if not isinstance(meta, str):
        raise _ExecError(f"wrong type for value; expected string; got {_type_name(meta)}")
    return _consul_only("byMeta", "[]*dependency.HealthService", dict)(services)


# Go's time layouts (time.Format), longest first where one starts another.
_LAYOUT = re.compile(r"January|Jan|Monday|Mon|MST|2006|002|__2|_2|01|02|03|04|05|06|15|PM|pm|"
                     r"Z07:00:00|Z070000|Z07:00|Z0700|Z07|-07:00:00|-070000|-07:00|-0700|-07|"
                     r"[.,](?:0+|9+)(?!\d)|1|2|3|4|5")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def go_time_format(t: float, layout: str) -> str:
    """Go's time.Format of the Unix time *t* in UTC (consul-template's timestamp is UTC) by *layout*
    ("2006-01-02T15:04:05Z07:00" is RFC3339)."""
    import datetime

    d = datetime.datetime.fromtimestamp(t, datetime.UTC)
    h12 = d.hour % 12 or 12

    def chunk(m: re.Match[str]) -> str:
        s = m.group(0)
        if s[0] in ".,":  # fractional seconds: 0s keep their width, 9s drop trailing zeros
            digits = f"{d.microsecond:06d}000"[:len(s) - 1]
            if s[1] == "9":
                digits = digits.rstrip("0")
                return s[0] + digits if digits else ""
            return s[0] + digits
        if s[0] == "Z":
            return "Z"
        if s[0] == "-":
            return {"-07": "+00", "-0700": "+0000", "-07:00": "+00:00", "-070000": "+000000"}.get(
                s, "+00:00:00")
        return {"January": _MONTHS[d.month - 1], "Jan": _MONTHS[d.month - 1][:3],
                "Monday": _DAYS[d.weekday()], "Mon": _DAYS[d.weekday()][:3], "MST": "UTC",
                "2006": f"{d.year:04d}", "06": f"{d.year % 100:02d}",
                "002": f"{d.timetuple().tm_yday:03d}", "__2": f"{d.timetuple().tm_yday:3d}",
                "_2": f"{d.day:2d}", "01": f"{d.month:02d}", "1": str(d.month), "02": f"{d.day:02d}",
                "2": str(d.day), "15": f"{d.hour:02d}", "03": f"{h12:02d}", "3": str(h12),
                "04": f"{d.minute:02d}", "4": str(d.minute), "05": f"{d.second:02d}", "5": str(d.second),
                "PM": "PM" if d.hour >= 12 else "AM", "pm": "pm" if d.hour >= 12 else "am"}[s]
    _check_size(len(layout) * 3)
    return _LAYOUT.sub(chunk, layout)


def timestamp_func(clock: Callable[[], float] | None) -> Callable[..., str]:
    """consul-template's timestamp on *clock* (Unix seconds; the agent's, injected): RFC3339 with no
    argument, the Unix time with "unix", else the time formatted by a Go layout."""
    def timestamp(*args: Any) -> str:
        if len(args) > 1:
            raise _ExecError(f"timestamp: wrong number of arguments, expected 0 or 1, but got {len(args)}")
        for a in args:
            if not isinstance(a, str):
                raise _ExecError(f"wrong type for value; expected string; got {_type_name(a)}")
        if clock is None:
            raise _ExecError("timestamp: this renderer has no clock")
        now = clock()
        if args and args[0] == "unix":
            return str(math.floor(now))
        return go_time_format(now, args[0] if args else "2006-01-02T15:04:05Z07:00")
    return timestamp


class Scratch:
    """consul-template's scratch: a template's own key/value store while it renders (``scratch.Set "k"
    v``, ``scratch.Get "k"``, ``scratch.Key``, ``SetX``, ``MapSet``, ``MapSetX``, ``MapValues``)."""

    go_type = "*template.Scratch"

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def go_string(self) -> str:
        return "&{" + go_str(self.values) + "}"

    def go_method(self, name: str) -> Callable[..., Any] | None:
        return {"Key": self.key, "Get": self.get, "Set": self.set, "SetX": self.set_x, "MapSet": self.map_set,
                "MapSetX": self.map_set_x, "MapValues": self.map_values}.get(name)

    @staticmethod
    def _str(*args: Any) -> None:
        for a in args:
            if not isinstance(a, str):
                raise _ExecError(f"wrong type for value; expected string; got {_type_name(a)}")

    def key(self, k: str) -> bool:
        self._str(k)
        return k in self.values

    def get(self, k: str) -> Any:
        self._str(k)
        v = self.values.get(k)
        return NO_VALUE if v is None else v  # Go's nil interface{}: printed <no value>

    def set(self, k: str, v: Any) -> str:
        self._str(k)
        self.values[k] = v
        return ""

    def set_x(self, k: str, v: Any) -> str:
        self._str(k)
        self.values.setdefault(k, v)
        return ""

    def _map_set(self, k: str, mk: str, v: Any, override: bool) -> str:
        self._str(k, mk)
        typed = self.values.setdefault(k, {})
        if type(typed) is not dict:
            raise _ExecError(f'"{k}" is not a map')
        if override or mk not in typed:
            typed[mk] = v
        return ""

    def map_set(self, k: str, mk: str, v: Any) -> str:
        return self._map_set(k, mk, v, True)

    def map_set_x(self, k: str, mk: str, v: Any) -> str:
        return self._map_set(k, mk, v, False)

    def map_values(self, k: str) -> list[Any] | None:
        self._str(k)
        typed = self.values.get(k)
        if type(typed) is not dict:
            return []  # Go's nil []interface{}: printed []
        return [typed[x] for x in sorted(typed)]


# ---- toYAML (yaml.v2's Marshal: keys sorted, block style, sequences not indented under their key)
_YAML_SPECIAL = re.compile(r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|"
                           r"NO|on|On|ON|off|Off|OFF|[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|"
                           r"0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|"
                           r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|<<)$")


def _yaml_str(s: str) -> str:
    if not s or _YAML_SPECIAL.match(s):  # would read back as another type: yaml.v2 double-quotes it
        return json.dumps(s, ensure_ascii=False)
    indicator = s[:1] in "-?:,[]{}#&*!|>'\"%@`" and not (s[:1] in "-?:" and s[1:2] not in ("", " "))
    if not s or s != s.strip(" ") or not s.isprintable() or indicator or ": " in s or " #" in s \
            or s.endswith(":"):
        if any(c in s for c in "\n\r\t") or not s.replace("\n", "").isprintable():
            return json.dumps(s, ensure_ascii=False)
        return "'" + s.replace("'", "''") + "'"
    return s


def _yaml_literal(s: str, indent: str) -> str | None:
    """A string with line breaks as yaml.v2 writes it: a literal block (|, |- or |+), its lines at
    *indent*; None when one cannot hold it (a leading space, characters a block cannot carry)."""
    if s[:1] in " \t" or "\r" in s or not s.replace("\n", "").replace("\t", "").isprintable():
        return None
    body = s.rstrip("\n")
    chomp = "-" if body == s else "" if s.endswith("\n") and not s.endswith("\n\n") else "+"
    lines = (body + "\n" * (len(s) - len(body) - 1 if chomp == "+" else 0)).split("\n")
    return "|" + chomp + "".join("\n" + (indent + line if line else "") for line in lines)


def _yaml_scalar(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        return _go_float(v)
    return _yaml_str(go_str(v) if not isinstance(v, str) else v)


YAML_WIDTH = 80  # yaml.v2's emitter (best_width): a plain or single-quoted value breaks at a space past it


def _yaml_wrap(text: str, column: int, indent: int) -> str:
    """yaml.v2's line breaking of a plain or 'single-quoted' scalar written from *column*: at a space
    (not after one, nor before one) once past YAML_WIDTH, continued on a new line at *indent*."""
    if not text or text[0] in "\"|{[" or len(text) + column <= YAML_WIDTH or " " not in text:
        return text
    quoted, n = text[0] == "'", len(text)
    out: list[str] = []
    spaces = False
    for i, c in enumerate(text):
        if c == " ":
            inner = not quoted or 1 < i < n - 2
            if not spaces and column > YAML_WIDTH and inner and i + 1 < n and text[i + 1] != " ":
                out.append("\n" + " " * indent)
                column = indent
            else:
                out.append(c)
                column += 1
            spaces = True
        else:
            out.append(c)
            column += 1
            spaces = False
    return "".join(out)


def _to_yaml(v: Any) -> str:
    out: list[str] = []
    size = 0

    def put(text: str) -> None:
        nonlocal size
        size += len(text)
        _check_size(size)
        out.append(text)

    def block(x: Any, indent: str, depth: int) -> None:
        """*x* (a map or a non-empty list) as lines at *indent*."""
        if depth > MAX_JSON_DEPTH:
            raise _depth_error("toYAML")
        _check_time()
        items = [(None, e) for e in x] if not isinstance(x, dict) else sorted(
            # yaml.v2 names a struct's fields in lower case (NomadService's Address: address)
            ((k.lower(), e) for k, e in x.items()) if getattr(x, "go_type", None) else x.items(), key=_key)
        for k, e in items:
            head = indent + ("- " if k is None else _yaml_scalar(k) + ":")
            if isinstance(e, (dict, list, tuple)) and e:
                if k is None:  # a list's item: its first line follows the dash
                    sub: list[str] = []
                    inner = out
                    put(head)
                    mark = len(out)
                    block(e, indent + "  ", depth + 1)
                    sub = inner[mark:]
                    if sub:
                        sub[0] = sub[0][len(indent) + 2:]
                        inner[mark:] = sub
                else:
                    put(head + "\n")
                    block(e, indent if isinstance(e, (list, tuple)) else indent + "  ", depth + 1)
            else:
                text = "{}" if isinstance(e, dict) else "[]" if isinstance(e, (list, tuple)) else (
                    isinstance(e, str) and "\n" in e and _yaml_literal(e, indent + "  ")) or _yaml_wrap(
                    _yaml_scalar(e), len(head) + (k is not None), len(indent) + 2)
                put(head + ("" if k is None else " ") + text + "\n")

    if isinstance(v, (dict, list, tuple)) and v:
        block(v, "", 0)
    else:
        put(("{}" if isinstance(v, dict) else "[]" if isinstance(v, (list, tuple)) else (
            isinstance(v, str) and "\n" in v and _yaml_literal(v, "  ")) or _yaml_wrap(_yaml_scalar(v), 0, 2))
            + "\n")
    return "".join(out).strip()


# ---- toTOML (BurntSushi/toml's Encoder: keys sorted, values before tables, tables indented by depth)
_TOML_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(k: str) -> str:
    return k if _TOML_BARE.fullmatch(k) else _toml_string(k)


def _toml_string(s: str) -> str:
    esc = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
    return '"' + "".join(esc.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
                         for c in s) + '"'


def _is_table(v: Any) -> bool:
    return isinstance(v, dict)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(e, dict) for e in v)


def _toml_value(v: Any, depth: int) -> str:
    if depth > MAX_JSON_DEPTH:
        raise _depth_error("toTOML")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return ("-" if math.copysign(1.0, v) < 0 else "") + ("nan" if math.isnan(v) else "inf")
        text = _go_float(v)  # strconv 'g', then ".0" unless it has a point or an exponent
        return text if "." in text or "e" in text else text + ".0"
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        if any(e is None or e is NO_VALUE for e in v):
            raise _ExecError("toTOML: toml: cannot encode array with nil element")
        return "[" + ", ".join(_toml_value(e, depth + 1) for e in v) + "]"
    if isinstance(v, dict):  # an inline table: its plain values first, then its tables, each by key
        items = sorted(((k, e) for k, e in v.items() if e is not None and e is not NO_VALUE), key=lambda kv: (
            _is_table(kv[1]) or _is_table_array(kv[1]), _key(kv)))
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(e, depth + 1)}" for k, e in items) + "}"
    if v is None or v is NO_VALUE:
        raise _ExecError("toTOML: toml: cannot encode a nil value")
    return _toml_string(go_str(v))


def _to_toml(v: Any) -> str:
    if not isinstance(v, dict):
        raise _ExecError("toTOML: toml: top-level values must be Go maps or structs")
    out: list[str] = []
    size = 0

    def put(text: str) -> None:
        nonlocal size
        size += len(text)
        _check_size(size)
        out.append(text)

    def newline() -> None:
        if out:
            put("\n")

    def table(key: tuple[str, ...], m: dict[str, Any]) -> None:
        if len(key) > MAX_JSON_DEPTH:
            raise _depth_error("toTOML")
        _check_time()
        items = sorted(((k, e) for k, e in m.items() if e is not None and e is not NO_VALUE), key=_key)
        for k, e in items:
            if not isinstance(k, str):
                raise _ExecError("toTOML: toml: map keys must be strings")
            if not _is_table(e) and not _is_table_array(e):
                put("  " * len(key) + f"{_toml_key(k)} = {_toml_value(e, len(key))}\n")
        for k, e in items:
            sub = (*key, k)
            name = ".".join(map(_toml_key, sub))
            if _is_table(e):
                if not key:
                    newline()
                put("  " * len(key) + f"[{name}]\n")
                table(sub, e)
            elif _is_table_array(e):
                for elem in e:
                    newline()
                    put("  " * len(key) + f"[[{name}]]\n")
                    table(sub, elem)
    table((), v)
    return "".join(out).strip()


# ---- parseYAML: the YAML configuration files use (yaml.v2's Unmarshal of its first document)
class _YamlError(Exception):
    pass


_YAML_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)|[-+]?0b[01_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?0[0-7_]+")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")
_YAML_BOOLS = {**dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"),
                               True),
               **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"),
                               False)}


def _yaml_resolve(s: str) -> Any:
    """A plain scalar as yaml.v2 resolves it: null, bool, int, float, else the string."""
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in _YAML_BOOLS:
        return _YAML_BOOLS[s]
    if _YAML_INT.fullmatch(s):
        t = s.replace("_", "")
        sign = -1 if t.startswith("-") else 1
        t = t.lstrip("+-")
        v = sign * int(t[2:], 2 if t[1] == "b" else 16) if t[:2] in ("0b", "0x") else sign * (
            int(t, 8) if len(t) > 1 and t[0] == "0" else int(t))
        return v if -2**63 <= v < 2**64 else float(v)
    if _YAML_FLOAT.fullmatch(s) and any(c.isdigit() for c in s):
        return float(s.replace("_", ""))
    low = s.lower()
    if low in (".inf", "+.inf", "-.inf"):
        return -math.inf if low[0] == "-" else math.inf
    if low == ".nan":
        return math.nan
    return s


def _yaml_quoted(text: str, i: int, line: int) -> tuple[str, int]:
    """The quoted scalar starting at text[i] and the index after it."""
    q = text[i]
    out: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if q == "'" and c == "'":
            if text.startswith("''", j):
                out.append("'")
                j += 2
                continue
            return "".join(out), j + 1
        if q == '"' and c == '"':
            return "".join(out), j + 1
        if q == '"' and c == "\\" and j + 1 < len(text):
            e = text[j + 1]
            simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "/": "/", " ": " ",
                      "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v", "N": "\x85", "_": "\xa0"}
            if e in simple:
                out.append(simple[e])
                j += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            code = text[j + 2:j + 2 + width] if width else ""
            if not width or len(code) != width or not all(ch in "0123456789abcdefABCDEF" for ch in code):
                raise _YamlError(f"yaml: line {line}: found unknown escape character while parsing a quoted "
                                 "scalar")
            out.append(chr(min(int(code, 16), 0x10FFFF)))
            j += 2 + width
            continue
        out.append(c)
        j += 1
    raise _YamlError(f"yaml: line {line}: found unexpected end of stream")


def _yaml_flow(text: str, i: int, line: int, depth: int) -> tuple[Any, int]:
    """A flow value ([a, b], {k: v}, a quoted or plain scalar) at text[i]; the index after it."""
    if depth > MAX_JSON_DEPTH:
        raise _ExecError(f"parseYAML: exceeded max depth ({MAX_JSON_DEPTH} nested arrays or objects)")
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None, i
    c = text[i]
    if c in "[{":
        _check_time()  # a flow sequence of many small ones runs the parser for seconds otherwise
        close = "]" if c == "[" else "}"
        items: list[Any] = []
        m: dict[Any, Any] = {}
        i += 1
        while True:
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == close:
                return (items if c == "[" else m), i + 1
            v, i = _yaml_flow(text, i, line, depth + 1)
            while i < len(text) and text[i] == " ":
                i += 1
            if c == "{" or (i < len(text) and text[i] == ":"):
                if i >= len(text) or text[i] != ":":
                    m[v] = None
                else:
                    x, i = _yaml_flow(text, i + 1, line, depth + 1)
                    if c == "[":
                        v = {v: x}
                    else:
                        m[v] = x
            if c == "[":
                items.append(v)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
            elif i >= len(text) or text[i] != close:
                raise _YamlError(f"yaml: line {line}: did not find expected ',' or '{close}'")
    if c in "'\"":
        return _yaml_quoted(text, i, line)
    j = i
    while j < len(text) and text[j] not in ",]}" and not text.startswith(": ", j) and not (
            text[j] == ":" and j + 1 == len(text)):
        j += 1
    return _yaml_resolve(text[i:j].strip()), j


def _yaml_strip_comment(text: str) -> str:
    quote = ""
    for j, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"" and (j == 0 or text[j - 1] in " [{,:"):
            quote = c
        elif c == "#" and (j == 0 or text[j - 1] in " \t"):
            return text[:j].rstrip()
    return text.rstrip()


def _yaml_key(text: str, line: int) -> tuple[Any, str] | None:
    """"key: rest" -> (key, rest); None when the line is not a mapping entry."""
    if text[:1] in ("'", "\""):
        try:
            key, j = _yaml_quoted(text, 0, line)
        except _YamlError:  # not closed on this line: a quoted value going on, not a key
            return None
        rest = text[j:].lstrip(" ")
        return (key, rest[1:].strip()) if rest.startswith(":") and rest[1:2] in ("", " ") else None
    if text[:1] in "[{":
        return None
    j = text.find(": ")
    if j < 0 and text.endswith(":"):
        j = len(text) - 1
    if j < 0:
        return None
    return _yaml_resolve(text[:j].strip()), text[j + 1:].strip()


def _parse_yaml(s: Any) -> Any:
    """consul-template's parseYAML (yaml.v2): "" is an empty map; the first document's value.  Anchors,
    aliases, tags and complex keys are refused ("not supported by this agent")."""
    if not isinstance(s, str):
        raise _ExecError(f"wrong type for value; expected string; got {_type_name(s)}")
    if not s:
        return {}
    raw = s.replace("\r\n", "\n").split("\n")
    lines: list[list[Any]] = []  # [indent, text, line number, index in raw]
    started = False
    for n, text in enumerate(raw):
        if "\t" in text[:len(text) - len(text.lstrip(" \t"))]:
            raise _ExecError(f"yaml: line {n + 1}: found character that cannot start any token")
        body = _yaml_strip_comment(text)
        if body.strip() in ("---", "...") or body.startswith("--- ") or body.startswith("%"):
            if started:
                break  # yaml.v2's Unmarshal reads the first document only
            started = True
            if body.startswith("--- "):
                lines.append([0, body[4:].strip(), n + 1, n])
            continue
        if body.strip():
            started = True
            lines.append([len(body) - len(body.lstrip(" ")), body.strip(), n + 1, n])

    def unsupported(text: str, line: int) -> None:
        if text[:1] in ("&", "*", "!") or " &" in text or " *" in text[:2] or ": &" in text or ": *" in text \
                or ": !" in text or "- &" in text or "- *" in text or "- !" in text or text.startswith("? "):
            raise _ExecError(f"parseYAML: line {line}: anchors, aliases, tags and complex keys are not "
                             "supported by this agent")

    def block_scalar(header: str, k: int, parent: int, line: int) -> tuple[str, int]:
        style, chomp = header[0], header[1:2]
        if chomp not in ("", "-", "+") or len(header) > 2:
            raise _ExecError(f"parseYAML: line {line}: block scalar indicator {header!r} not supported by "
                             "this agent")
        start = lines[k - 1][3] + 1  # the raw line after the header's
        end = start
        body: list[str] = []
        indent = None
        while end < len(raw):
            text = raw[end]
            if text.strip():
                ind = len(text) - len(text.lstrip(" "))
                if ind <= parent:
                    break
                indent = ind if indent is None else indent
                if ind < indent:
                    break
                body.append(text[indent:])
            else:
                body.append("")
            end += 1
        while k < len(lines) and lines[k][3] < end:
            k += 1
        content = "\n".join(body).rstrip("\n")
        trailing = len(body) - len("\n".join(body).rstrip("\n").split("\n")) if content else len(body)
        if style == ">":
            content = re.sub(r"(?<=[^\n])\n(\n*)(?=[^ \n])", lambda m: m.group(1) or " ", content)
        if not content:
            return "", k
        return content + {"-": "", "": "\n", "+": "\n" * (trailing + 1)}[chomp], k

    def plain_lines(first: str, k: int, indent: int) -> tuple[Any, int]:
        """A plain scalar going on over the more-indented lines from k (as yaml.v2 writes one past 80
        columns): its lines joined by a space."""
        parts = [first]
        while k < len(lines) and lines[k][0] > indent:
            if _yaml_key(lines[k][1], lines[k][2]) is not None or lines[k][1][:2] == "- ":
                raise _ExecError(f"yaml: line {lines[k][2]}: mapping values are not allowed in this context")
            parts.append(lines[k][1])
            k += 1
        return _yaml_resolve(" ".join(parts)), k

    def value_of(rest: str, k: int, indent: int, line: int, depth: int) -> tuple[Any, int]:
        """A mapping value or sequence item that follows on line k-1 (*rest*), or the block below it."""
        unsupported(rest, line)
        if rest[:1] in ("|", ">"):
            return block_scalar(rest, k, indent, line)
        if rest:
            if rest[0] in "'\"":  # a quoted scalar may go on over more-indented lines (folded by a space)
                while True:
                    try:
                        v, j = _yaml_flow(rest, 0, line, depth)
                        break
                    except _YamlError as e:
                        if "end of stream" not in str(e) or k >= len(lines) or lines[k][0] <= indent:
                            raise
                        rest, k = rest + " " + lines[k][1], k + 1
            else:
                v, j = _yaml_flow(rest, 0, line, depth)
            if rest[j:].strip():
                raise _ExecError(f"yaml: line {line}: did not find expected key")
            if rest[0] not in "'\"[{" and k < len(lines) and lines[k][0] > indent:
                return plain_lines(rest, k, indent)
            return v, k
        if k < len(lines) and (lines[k][0] > indent or (lines[k][0] == indent and lines[k][1][:1] == "-"
                                                         and lines[k][1][1:2] in ("", " "))):
            return block(k, lines[k][0], depth + 1)
        return None, k

    def block(k: int, indent: int, depth: int) -> tuple[Any, int]:
        if depth > MAX_JSON_DEPTH:
            raise _ExecError(f"parseYAML: exceeded max depth ({MAX_JSON_DEPTH} nested arrays or objects)")
        _check_time()
        _, text, line, _ = lines[k]
        if text[:1] == "-" and text[1:2] in ("", " "):
            items: list[Any] = []
            while k < len(lines) and lines[k][0] == indent and lines[k][1][:1] == "-" \
                    and lines[k][1][1:2] in ("", " "):
                _, text, line, _ = lines[k]
                rest = text[1:].lstrip(" ")
                if rest and (_yaml_key(rest, line) is not None or rest[:2] == "- "):
                    lines[k] = [indent + len(text) - len(rest), rest, line, lines[k][3]]  # its own block
                    v, k = block(k, lines[k][0], depth + 1)
                else:
                    v, k = value_of(rest, k + 1, indent, line, depth)
                items.append(v)
            return items, k
        if _yaml_key(text, line) is not None:
            m: dict[Any, Any] = {}
            while k < len(lines) and lines[k][0] == indent:
                _, text, line, _ = lines[k]
                kv = _yaml_key(text, line)
                if kv is None:
                    raise _ExecError(f"yaml: line {line}: could not find expected ':'")
                unsupported(text, line)
                key, rest = kv
                if isinstance(key, (dict, list)):
                    raise _ExecError(f"parseYAML: line {line}: complex keys are not supported by this agent")
                v, k = value_of(rest, k + 1, indent, line, depth)
                m[key] = v
            return m, k
        return value_of(text, k + 1, indent - 1, line, depth)  # a document that is one scalar

    if not lines:
        return None
    try:
        value, k = block(0, lines[0][0], 0)
    except _YamlError as e:
        raise _ExecError(str(e)) from None
    if k < len(lines):
        raise _ExecError(f"yaml: line {lines[k][2]}: did not find expected key")
    return value


# consul-template's plain functions (no data sources).
CONSUL_TEMPLATE_FUNCS: dict[str, Callable[..., Any]] = {
    "toUpper": _str_fn("toUpper", str.upper),
    "toLower": _str_fn("toLower", str.lower),
    "trimSpace": _str_fn("trimSpace", str.strip),
    "split": _split,
    "join": _join,
    "replaceAll": _str_fn("replaceAll", lambda f, t, s: _replace_all(f, t, s)),
    "contains": _contains,
    "toJSON": _to_json,
    "toJSONPretty": lambda v: _to_json(v, True, name="toJSONPretty"),
    "toUnescapedJSON": lambda v: _to_json(v, escape_html=False, name="toUnescapedJSON"),
    "toUnescapedJSONPretty": lambda v: _to_json(v, True, escape_html=False, name="toUnescapedJSONPretty"),
    "parseJSON": _parse_json,
    "base64Encode": _str_fn("base64Encode", lambda s: base64.b64encode(s.encode()).decode()),
    "base64Decode": _str_fn("base64Decode", _b64decode),
    "trimPrefix": _str_fn("trimPrefix", lambda p, s: s.removeprefix(p)),
    "trimSuffix": _str_fn("trimSuffix", lambda p, s: s.removesuffix(p)),
    "toTitle": _str_fn("toTitle", _title),
    "indent": lambda n, s: _indent(n, s),
    "regexMatch": _str_fn("regexMatch", _regex_match),
    "regexReplaceAll": _str_fn("regexReplaceAll", lambda r, t, s: _regex_replace(r, t, s)),
    "parseInt": _str_fn("parseInt", _parse_int),
    "parseFloat": _str_fn("parseFloat", _parse_float),
    "parseBool": _str_fn("parseBool", _parse_bool),
    "in": lambda haystack, v: _contains(v, haystack),
    "containsAll": _contains_some(True, True),
    "containsAny": _contains_some(False, False),
    "containsNone": _contains_some(True, False),
    "containsNotAll": _contains_some(False, True),
    "add": _math("add", lambda a, b: a + b),
    "subtract": _math("subtract", lambda a, b: a - b),
    "multiply": _math("multiply", lambda a, b: a * b),
    "divide": _math("divide", _go_div),
    "modulo": _math("modulo", _go_mod),
    "sha256Hex": _str_fn("sha256Hex", lambda s: hashlib.sha256(s.encode()).hexdigest()),
    "md5sum": _str_fn("md5sum", lambda s: hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()),
    "hmacSHA256Hex": _str_fn("hmacSHA256Hex", lambda m, k: hmac.new(k.encode(), m.encode(),
                                                                     hashlib.sha256).hexdigest()),
    "base64URLEncode": _str_fn("base64URLEncode", lambda s: base64.urlsafe_b64encode(s.encode()).decode()),
    "base64URLDecode": _str_fn("base64URLDecode", _b64url_decode),
    "trim": _str_fn("trim", lambda cutset, s: s.strip(cutset)),
    "parseUint": _str_fn("parseUint", _parse_uint),
    "splitToMap": _str_fn("splitToMap", _split_to_map),
    "loop": _loop,
    "minimum": _math("minimum", lambda a, b: a if a < b else b),
    "maximum": _math("maximum", lambda a, b: a if a > b else b),
    "timestamp": timestamp_func(None),  # the caller gives one on its clock
    "toYAML": _to_yaml,
    "parseYAML": _parse_yaml,
    "toTOML": _to_toml,
    "mergeMap": lambda d, s: _merge_map(d, s, False, "mergeMap"),
    "mergeMapWithOverride": lambda d, s: _merge_map(d, s, True, "mergeMapWithOverride"),
    "explodeMap": _explode_map,
    "explode": _consul_only("explode", "[]*dependency.KeyPair", dict),
    "byKey": _consul_only("byKey", "[]*dependency.KeyPair", dict),
    "byMeta": _by_meta,
    "scratch": lambda: _scratch.get() or Scratch(),  # render() gives each rendering its own
    "sockaddr": sockaddr_func(None),  # this host's interfaces; a caller may give another provider
    # go-spew dumps (Go's internal representation of values) are not implemented: they parse and fail
    # when called.
    **{name: _not_supported(name) for name in ("spew_dump", "spew_printf", "spew_sdump", "spew_sprintf")},
}


class _Exec:
    def __init__(self, funcs: dict[str, Any], name: str, text: str, missing_key_error: bool,
                 max_steps: int = MAX_STEPS) -> None:
        self.funcs, self.name, self.text, self.strict = funcs, name, text, missing_key_error
        self.max_steps = max_steps
        self.out: list[str] = []
        self.size = 0  # characters in out (MAX_OUTPUT_BYTES, or render's max_output)
        self.steps = 0  # MAX_STEPS
        self.vars: list[tuple[str, Any]] = []
        self.top: Any = None

    def step(self, node: _Node) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise self.fail(node, "", f"template ran more than {self.max_steps} steps")
        try:  # every step: a clock read is cheap beside a step, and one heavy step can take long
            _check_time()
        except _TimeUp as e:
            raise self.fail(node, "", str(e)) from None

    def emit(self, node: _Node, src: str, text: str) -> None:
        self.size += len(text)
        if self.size > _limit.get():
            raise self.fail(node, src, f"rendered output is larger than {_limit.get()} bytes")
        self.out.append(text)

    def fail(self, node: _Node, src: str, msg: str) -> TemplateError:
        line_start = self.text.rfind("\n", 0, node.pos) + 1
        col = node.pos - line_start
        return TemplateError(f'template: {self.name}:{node.line}:{col}: executing "{self.name}" '
                             f'at <{src}>: {msg}')

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise _ExecError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise _ExecError(f"undefined variable: {name}")

    def walk(self, nodes: list[_Node], dot: Any) -> None:
        for n in nodes:
            self.step(n)
            if isinstance(n, _Text):
                self.emit(n, "", n.text)
            elif isinstance(n, _Action):
                v = self.pipe(n.pipe, dot)
                if not n.pipe.decl:
                    self.emit(n, n.pipe.src, go_str(v))
            elif isinstance(n, _Control):
                self.control(n, dot)
            elif isinstance(n, _Loop):
                raise _Break() if n.kind == "break" else _Continue()

    def control(self, n: _Control, dot: Any) -> None:
        mark = len(self.vars)
        try:
            v = self.pipe(n.pipe, dot, declare=n.kind != "range")
            if n.kind == "if":
                self.walk(n.body if truth(v) else (n.else_body or []), dot)
            elif n.kind == "with":
                if truth(v):
                    self.walk(n.body, v)
                else:
                    self.walk(n.else_body or [], dot)
            else:
                self.range(n, v, dot)
        finally:
            del self.vars[mark:]

    def range(self, n: _Control, v: Any, dot: Any) -> None:
        items: Any
        if v is None or v is NO_VALUE:
            items = []
        elif isinstance(v, dict):
            items = sorted(v.items(), key=_key)
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = ((i, i) for i in range(v)) if v > 0 else []  # lazily: MAX_STEPS ends a huge one
        elif isinstance(v, range):  # consul-template's loop: a channel in Go
            if len(n.pipe.decl) > 1:
                raise self.fail(n, n.pipe.src, "can't use a loop to iterate over more than one variable")
            items = ((i, i) for i in v) if len(v) else []
        else:
            raise self.fail(n, n.pipe.src, f"range can't iterate over {go_str(v)}")
        if not items:
            self.walk(n.else_body or [], dot)
            return
        mark = len(self.vars)
        for k, item in items:
            self.step(n)
            if len(n.pipe.decl) == 1:
                self.vars.append((n.pipe.decl[0], item))
            elif len(n.pipe.decl) == 2:
                self.vars.append((n.pipe.decl[0], k))
                self.vars.append((n.pipe.decl[1], item))
            try:
                self.walk(n.body, item)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark:]

    def pipe(self, p: _Pipe, dot: Any, *, declare: bool = True) -> Any:
        value: Any = _UNSET
        for cmd in p.cmds:
            value = self.command(cmd, dot, value)
        if p.decl and declare:
            if p.assign:
                try:
                    self.set_var(p.decl[0], value)
                except _ExecError as e:
                    raise self.fail(p, p.src, str(e)) from None
            else:
                self.vars.append((p.decl[0], value))
        return value

    def command(self, cmd: list[_Operand], dot: Any, final: Any) -> Any:
        first = cmd[0]
        if first.kind == "func" and not first.chain:
            return self.call(first, cmd[1:], dot, final)
        if first.chain and (len(cmd) > 1 or final is not _UNSET):  # a method with arguments: scratch.Set
            base = self.operand(first, dot, upto=len(first.chain) - 1)
            if callable(getattr(base, "go_method", None)):
                return self.method(first, base, first.chain[-1], cmd[1:], dot, final)
        if len(cmd) > 1 or final is not _UNSET:
            if first.kind in ("field",) and len(cmd) > 1:
                raise self.fail(first, first.src, f"can't give argument to non-function {first.src}")
            if first.kind not in ("field",):
                raise self.fail(first, first.src, f"can't give argument to non-function {first.src}")
        return self.operand(first, dot)

    def operand(self, op: _Operand, dot: Any, upto: int | None = None) -> Any:
        """*op*'s value; with *upto*, that of its base and only the first *upto* names of its chain."""
        if op.kind == "number" and isinstance(op.value, int) and not -2**63 <= op.value < 2**63:
            raise self.fail(op, op.src, f"{op.src} overflows int")
        if op.kind in ("string", "number", "bool"):
            return op.value
        if op.kind == "nil":
            raise self.fail(op, "nil", "nil is not a command")
        if op.kind == "func":
            base = self.call(op, [], dot, _UNSET)
        elif op.kind == "dot":
            base = dot
        elif op.kind == "var":
            base = self.lookup(op.value)
        elif op.kind == "pipe":
            base = self.pipe(op.value, dot)
        else:
            base = dot
        for name in op.chain[:upto]:
            base = self.field(op, base, name)
        return base

    def method(self, op: _Operand, base: Any, name: str, args: list[_Operand], dot: Any, final: Any) -> Any:
        """A method of a Go value (consul-template's scratch: ``scratch.MapSet "k" "mk" .v``)."""
        f = base.go_method(name)
        if f is None:
            raise self.fail(op, op.src, f"can't evaluate field {name} in type {base.go_type}")
        vals = [self.arg(a, dot) for a in args]
        if final is not _UNSET:
            vals.append(final)
        return self.invoke(op, name, f, [None if v is NO_VALUE else v for v in vals])

    def arg(self, op: _Operand, dot: Any) -> Any:
        """A function's argument: as an operand, and nil is Go's nil (for a map, slice or interface)."""
        return None if op.kind == "nil" else self.operand(op, dot)

    def field(self, op: _Operand, base: Any, name: str) -> Any:
        if callable(getattr(base, "go_method", None)):  # a method without arguments
            return self.method(op, base, name, [], None, _UNSET)
        if isinstance(base, dict):
            if name in base:
                return base[name]
            methods = getattr(base, "go_methods", None)
            if methods is not None and name in (found := methods()):
                return found[name]
            struct = getattr(base, "go_type", None)
            if struct is not None:
                raise self.fail(op, op.src, f"can't evaluate field {name} in type {struct}")
            if self.strict:
                raise self.fail(op, op.src, f'map has no entry for key "{name}"')
            return getattr(base, "go_zero", NO_VALUE)
        if base is NO_VALUE or (base is None and op.kind == "field" and self.top is None):
            # Go's invalid value (a missing key, nil data): no value, or missingkey=error's error
            if self.strict:
                raise self.fail(op, op.src, f'nil data; no entry for key "{name}"')
            return NO_VALUE
        if base is None:
            raise self.fail(op, op.src, f"nil pointer evaluating interface {{}}.{name}")
        raise self.fail(op, op.src, f"can't evaluate field {name} in type {_type_name(base)}")

    def call(self, fn: _Operand, args: list[_Operand], dot: Any, final: Any) -> Any:
        name = fn.value
        src = fn.src
        if name in ("and", "or"):  # short-circuit, as Go 1.18+
            ops = [lambda a=a: self.operand(a, dot) for a in args]
            if final is not _UNSET:
                ops.append(lambda: final)
            if not ops:
                raise self.fail(fn, src, f"wrong number of args for {name}: want at least 1 got 0")
            v: Any = None
            for get in ops:
                v = get()
                if truth(v) != (name == "and"):
                    return v
            return v
        vals = [self.arg(a, dot) for a in args]
        if final is not _UNSET:
            vals.append(final)
        vals = [None if v is NO_VALUE else v for v in vals]
        f = self.funcs.get(name) or _BUILTINS.get(name)
        if f is None:
            raise self.fail(fn, src, f'"{name}" is not a defined function')
        return self.invoke(fn, name, f, vals)

    def invoke(self, fn: _Operand, name: str, f: Callable[..., Any], vals: list[Any]) -> Any:
        src = fn.src
        try:
            result = f(*vals)
            if isinstance(result, str):
                _check_size(len(result))
            return result
        except _ExecError as e:
            msg = str(e)
            raise self.fail(fn, src, msg if msg.startswith("error calling") else
                            f"error calling {name}: {msg}") from None
        except TemplateError as e:
            raise self.fail(fn, src, f"error calling {name}: {e}") from None
        except TypeError as e:
            if "positional argument" in str(e) or "takes" in str(e) or "missing" in str(e):
                raise self.fail(fn, src, f"wrong number of args for {name}: {_arity(e, f)}got {len(vals)}") \
                    from None
            raise self.fail(fn, src, f"error calling {name}: {e}") from None
        except (_Break, _Continue):  # pragma: no cover - functions do not raise them
            raise
        except Exception as e:  # anything else a function raises is its error, as Go's
            raise self.fail(fn, src, f"error calling {name}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    if isinstance(e, RecursionError):
        return "value nested too deeply"
    if isinstance(e, MemoryError):
        return "out of memory"
    return str(e) or type(e).__name__


def _arity(e: TypeError, f: Any = None) -> str:
    m = re.search(r"takes (\d+) positional", str(e)) or re.search(r"missing (\d+) required", str(e))
    if m and "takes" in str(e):
        return f"want {m.group(1)} "
    try:  # "missing N required": Go names the count its function takes
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return ""
    if any(p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY) or p.default is not p.empty for p in params):
        return ""
    return f"want {len(params)} "


_UNSET = object()


def _not(v: Any) -> bool:
    return not truth(v)


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _ExecError(f"error calling slice: can't slice item of type {_type_name(item)}")
    if len(idx) > 2 or any(not isinstance(i, int) or isinstance(i, bool) for i in idx):
        raise _ExecError("error calling slice: indexes must be at most two integers")
    n = len(item)
    lo, hi = (list(idx) + [0, n][len(idx):])[:2]
    if not 0 <= lo <= hi <= n:
        raise _ExecError(f"error calling slice: index out of range: {hi if hi > n else lo}")
    return item[lo:hi]


def _html(*args: Any) -> str:
    """Go's template.HTMLEscapeString of the args printed as print does."""
    out = sprint(*args)
    for a, b in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"),
                 ("\0", "\ufffd")):
        out = out.replace(a, b)
    return out


def _js(*args: Any) -> str:
    """Go's template.JSEscapeString of the args printed as print does."""
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
             "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(c, c if c.isprintable() else f"\\u{ord(c):04X}") for c in sprint(*args))


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(sprint(*args))


_BUILTINS: dict[str, Callable[..., Any]] = {
    "not": _not, "len": _len, "index": _index, "print": sprint,
    "printf": lambda fmt, *a: sprintf(fmt, *a) if isinstance(fmt, str) else
    (_ for _ in ()).throw(_ExecError("wrong type for value; expected string")),
    "println": lambda *a: _println(*a),
    "slice": _slice, "html": _html, "js": _js, "urlquery": _urlquery,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "lt": _lt, "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_lt(a, b) or _eq(a, b)), "ge": lambda a, b: not _lt(a, b),
}


def parse(text: str, *, funcs: dict[str, Any] | None = None, left: str = "{{", right: str = "}}",
          name: str = "", base_funcs: dict[str, Any] | None = None) -> list[_Node]:
    """Parse *text*; TemplateError with Go's message when it does not parse.  *base_funcs*: the
    functions beside Go's built-in ones and *funcs* (consul-template's by default; {}: none, as a
    go-sockaddr template's, runtime.sockaddr)."""
    names = {**(CONSUL_TEMPLATE_FUNCS if base_funcs is None else base_funcs), **(funcs or {})}
    lx = _Lexer(text, left, right, name)
    return _Parser(lx.run(), lx, names).parse()


def render(text: str, *, funcs: dict[str, Any] | None = None, dot: Any = None, left: str = "{{",
           right: str = "}}", missing_key_error: bool = False, name: str = "",
           max_output: int = MAX_OUTPUT_BYTES, max_steps: int = MAX_STEPS,
           clock: Callable[[], float] | None = None, deadline: float | None = None,
           base_funcs: dict[str, Any] | None = None) -> str:
    """Parse and execute *text* with *dot* as ``.``; *funcs* add to (or replace) the built-in functions
    (*base_funcs* those beside Go's: consul-template's by default, see parse).
    Whatever goes wrong is a TemplateError: nesting beyond MAX_NESTING, output beyond *max_output*
    characters, more than *max_steps* steps, past *deadline* on *clock* (by default MAX_RENDER_S
    from now; no clock: no time bound), anything a function raises."""
    token = _limit.set(max_output)
    timer = _deadline.set(None if clock is None else
                          (clock, clock() + MAX_RENDER_S if deadline is None else deadline))
    scratch = _scratch.set(Scratch())  # consul-template's scratch: one per template rendering
    try:
        names = {**(CONSUL_TEMPLATE_FUNCS if base_funcs is None else base_funcs), **(funcs or {})}
        tree = parse(text, funcs=names, left=left, right=right, name=name, base_funcs={})
        ex = _Exec(names, name, text, missing_key_error, max_steps)
        ex.vars.append(("$", dot))
        ex.top = dot
        try:
            ex.walk(tree, dot)
        except (_Break, _Continue):  # pragma: no cover - the parser refuses them outside range
            pass
        return "".join(ex.out)
    except TemplateError:
        raise
    except Exception as e:  # a last resort: the renderer's own failure is the template's error
        raise TemplateError(f"template: {name}: {_reason(e)}") from None
    finally:
        _limit.reset(token)
        _deadline.reset(timer)
        _scratch.reset(scratch)
