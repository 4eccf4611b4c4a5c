"""HCL2 expressions and string templates, evaluated as Nomad's jobspec2 does (hashicorp/hcl v2 + cty).

python-hcl2 hands runtime.hcl_job each attribute as a Python value, an
expression as its source text inside ``"${...}"``, and a quoted string or
heredoc as its template text (escapes already read, ``$${`` / ``%%{`` kept).
This module parses that text -- operators, ``a ? b : c``, ``[for ...]`` and
``{for ...}``, splats, indexing, function calls, templates with
``${...}`` interpolations and ``%{ if }`` / ``%{ for }`` directives with
``~`` strip markers -- and evaluates it.

A name that is not a variable, a local or an iterator (``attr``, ``node``,
``meta``, ``NOMAD_*``, ``env``, ...) evaluates, as in Nomad's
``UndefinedVariable`` hook, to its own text ``"${attr.kernel.name}"``: the
client interpolates those when it runs the task.

Values are Python's: None (null), bool, int / float (an integral number is an
int, as cty has one number type and the JSON job writes 2, not 2.0), str,
list (HCL lists, tuples and sets; a set is kept sorted and unique, as cty
orders them) and dict (maps and objects, iterated in key order, as cty does).
Functions are Nomad's (jobspec2/functions.go); see runtime.hcl_functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class HclExprError(ValueError):
    """An expression that does not parse or evaluate; the message is HCL's summary and detail."""


# Nesting deeper than this is refused rather than recursed into: no job file needs it, and Python's own
# recursion limit (1000 frames, several per level here) would otherwise fail with a less helpful error.
MAX_NESTING = 64

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_OPS = ("...", "==", "!=", "<=", ">=", "&&", "||", "=>", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":",
        "(", ")", "[", "]", "{", "}", ",", ".", "=")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "ident", "num", "str" (raw template source between the quotes), "heredoc", "op", "eof"
    text: str
    pos: int


def _skip_string(src: str, i: int) -> int:
    """The index just past the closing quote of the string opening at src[i] (a quote)."""
    i += 1
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c in "$%" and src.startswith(c + c + "{", i):
            i += 3  # $${ / %%{: an escaped, literal ${ / %{
            continue
        if c in "$%" and src.startswith("{", i + 1):
            i = _skip_braced(src, i + 1)
            continue
        i += 1
    raise HclExprError("Unterminated template string; no closing quote")


def _skip_braced(src: str, i: int) -> int:
    """The index just past the "}" closing the "{" at src[i], strings inside skipped whole."""
    depth = 0
    while i < len(src):
        c = src[i]
        if c == '"':
            i = _skip_string(src, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise HclExprError("Unclosed template interpolation; no closing brace")


# A heredoc inside an expression (``trimspace(<<EOT ... EOT)``): its marker, its lines, its closing marker.
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\n(.*?)^[ \t]*\2(?![A-Za-z0-9_-])", re.S | re.M)


def _heredoc_body(body: str, indented: bool) -> str:
    """A heredoc's text as HCL reads it; ``<<-`` takes the smallest indentation of its non-blank lines off
    every line."""
    if not indented:
        return body
    lines = body.split("\n")
    cut = min((len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()), default=0)
    return "\n".join(ln[cut:] for ln in lines)


def _tokens(src: str) -> list[_Tok]:
    out, i = [], 0
    while i < len(src):
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c == "#" or src.startswith("//", i):
            while i < len(src) and src[i] != "\n":
                i += 1
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            i = len(src) if end < 0 else end + 2
        elif src.startswith("<<", i) and (m := _HEREDOC.match(src, i)):
            out.append(_Tok("heredoc", _heredoc_body(m.group(3), indented=bool(m.group(1))), i))
            i = m.end()
        elif c == '"':
            end = _skip_string(src, i)
            out.append(_Tok("str", src[i + 1:end - 1], i))
            i = end
        elif c.isdigit():
            after_dot = bool(out) and out[-1].kind == "op" and out[-1].text == "."
            m = (_DIGITS if after_dot else _NUMBER).match(src, i)
            assert m is not None
            out.append(_Tok("num", m.group(0), i))
            i = m.end()
        elif m := _IDENT.match(src, i):
            out.append(_Tok("ident", m.group(0), i))
            i = m.end()
        else:
            op = next((o for o in _OPS if src.startswith(o, i)), None)
            if op is None:
                raise HclExprError("Invalid character; This character is not used within the language: "
                                   f"{c!r}")
            out.append(_Tok("op", op, i))
            i += len(op)
    out.append(_Tok("eof", "", len(src)))
    return out


# Binary operators by precedence, loosest first (hclsyntax's binaryOps).
_BINARY = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))


class _Parser:
    """A recursive-descent parser over one expression's tokens; nodes are tuples tagged by their first
    item."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokens(src)
        self.i = 0
        self.depth = 0

    def peek(self, text: str | None = None, kind: str = "op") -> bool:
        t = self.toks[self.i]
        return t.kind == kind and (text is None or t.text == text)

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> _Tok:
        if not self.peek(text):
            t = self.toks[self.i]
            got = "end of expression" if t.kind == "eof" else repr(t.text)
            raise HclExprError(f"Invalid expression; expected {text!r}, found {got} in {self.src.strip()!r}")
        return self.take()

    def whole(self) -> tuple:
        node = self.expr()
        if not self.peek(kind="eof"):
            raise HclExprError(f"Extra characters after expression; {self.toks[self.i].text!r} in "
                               f"{self.src.strip()!r}")
        return node

    def expr(self) -> tuple:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise HclExprError(f"Expression too deeply nested (more than {MAX_NESTING} levels)")
        try:
            cond = self.binary(0)
            if self.peek("?"):
                self.take()
                a = self.expr()
                self.expect(":")
                return ("cond", cond, a, self.expr())
            return cond
        finally:
            self.depth -= 1

    def binary(self, level: int) -> tuple:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.toks[self.i].kind == "op" and self.toks[self.i].text in _BINARY[level]:
            op = self.take().text
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self) -> tuple:
        if self.peek("!") or self.peek("-"):
            op = self.take().text
            return ("un", op, self.unary())
        return self.postfix(self.primary())

    def primary(self) -> tuple:
        t = self.take()
        if t.kind == "num":
            return ("lit", _number(t.text))
        if t.kind == "str":
            return ("tmpl", parse_template(t.text, escapes=True))
        if t.kind == "heredoc":
            return ("tmpl", parse_template(t.text, escapes=False))
        if t.kind == "ident":
            if t.text in ("true", "false"):
                return ("lit", t.text == "true")
            if t.text == "null":
                return ("lit", None)
            if self.peek("("):
                return self.call(t.text)
            return self.traversal(t)
        if t.kind == "op" and t.text == "(":
            node = self.expr()
            self.expect(")")
            return ("paren", node)
        if t.kind == "op" and t.text == "[":
            return self.tuple_()
        if t.kind == "op" and t.text == "{":
            return self.object_()
        got = "end of expression" if t.kind == "eof" else repr(t.text)
        raise HclExprError(f"Invalid expression; expected the start of an expression, found {got} in "
                           f"{self.src.strip()!r}")

    def traversal(self, root: _Tok) -> tuple:
        """A name and the literal steps after it (``attr.kernel.name``, ``env["HOME"]``, ``l.0``): one
        traversal, kept with its source text for a name that is not defined."""
        steps: list[tuple] = []
        end = root.pos + len(root.text)
        while True:
            if self.peek(".") and self.toks[self.i + 1].kind in ("ident", "num"):
                self.take()
                t = self.take()
                steps.append(("attr", t.text) if t.kind == "ident" else ("idx", ("lit", _number(t.text))))
                end = t.pos + len(t.text)
            elif (self.peek("[") and self.toks[self.i + 1].kind in ("num", "str")
                  and self.toks[self.i + 2].kind == "op" and self.toks[self.i + 2].text == "]"
                  and "${" not in self.toks[self.i + 1].text and "%{" not in self.toks[self.i + 1].text):
                self.take()
                key = self.primary()
                end = self.take().pos + 1
                steps.append(("idx", key))
            else:
                break
        return ("trav", root.text, tuple(steps), self.src[root.pos:end], root.pos, end)

    def call(self, name: str) -> tuple:
        self.expect("(")
        args, expand = [], False
        while not self.peek(")"):
            args.append(self.expr())
            if self.peek("..."):
                self.take()
                expand = True
                break
            if not self.peek(","):
                break
            self.take()
        self.expect(")")
        return ("call", name, tuple(args), expand)

    def postfix(self, node: tuple) -> tuple:
        while True:
            if self.peek(".") and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "*":
                self.take()
                self.take()
                node = ("splat", node, self.splat_steps(attr_only=True))
            elif self.peek(".") and self.toks[self.i + 1].kind in ("ident", "num"):
                self.take()
                t = self.take()
                node = ("get", node, ("lit", t.text if t.kind == "ident" else _number(t.text)))
            elif self.peek("[") and self.toks[self.i + 1].text == "*" and self.toks[self.i + 1].kind == "op":
                self.take()
                self.take()
                self.expect("]")
                node = ("splat", node, self.splat_steps(attr_only=False))
            elif self.peek("["):
                self.take()
                key = self.expr()
                self.expect("]")
                node = ("get", node, key)
            else:
                return node

    def splat_steps(self, attr_only: bool) -> tuple:
        """The steps after ``[*]`` (or ``.*``), applied to each element."""
        steps = []
        while True:
            if self.peek(".") and self.toks[self.i + 1].kind in ("ident", "num"):
                self.take()
                t = self.take()
                steps.append(("lit", t.text if t.kind == "ident" else _number(t.text)))
            elif not attr_only and self.peek("[") and not (self.toks[self.i + 1].text == "*"):
                self.take()
                steps.append(self.expr())
                self.expect("]")
            else:
                return tuple(steps)

    def for_head(self) -> tuple[str | None, str, tuple]:
        self.take()  # "for"
        first = self.take()
        key, val = None, first.text
        if self.peek(","):
            self.take()
            key, val = first.text, self.take().text
        if not (self.peek("in", kind="ident")):
            raise HclExprError(f"Invalid 'for' expression; expected 'in' in {self.src.strip()!r}")
        self.take()
        coll = self.expr()
        self.expect(":")
        return key, val, coll

    def tuple_(self) -> tuple:
        if self.peek("for", kind="ident"):
            key, val, coll = self.for_head()
            body = self.expr()
            cond = self.for_cond()
            self.expect("]")
            return ("fortuple", key, val, coll, body, cond)
        items = []
        while not self.peek("]"):
            items.append(self.expr())
            if not self.peek(","):
                break
            self.take()
        self.expect("]")
        return ("tuple", tuple(items))

    def for_cond(self) -> tuple | None:
        if self.peek("if", kind="ident"):
            self.take()
            return self.expr()
        return None

    def object_(self) -> tuple:
        if self.peek("for", kind="ident"):
            key, val, coll = self.for_head()
            kexpr = self.expr()
            self.expect("=>")
            vexpr = self.expr()
            group = False
            if self.peek("..."):
                self.take()
                group = True
            cond = self.for_cond()
            self.expect("}")
            return ("forobj", key, val, coll, kexpr, vexpr, group, cond)
        items = []
        while not self.peek("}"):
            t = self.toks[self.i]
            after = self.toks[self.i + 1]
            if t.kind == "ident" and after.kind == "op" and after.text in ("=", ":"):
                self.take()
                kexpr: tuple = ("lit", t.text)  # a bare name as a key is the name, not a variable
            else:
                kexpr = self.expr()
            if not (self.peek("=") or self.peek(":")):
                raise HclExprError(f"Missing key/value separator; expected '=' in {self.src.strip()!r}")
            self.take()
            items.append((kexpr, self.expr()))
            if self.peek(","):
                self.take()
        self.expect("}")
        return ("object", tuple(items))


def _number(text: str) -> int | float:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def parse_expression(src: str) -> tuple:
    return _Parser(src).whole()


# --- templates ---------------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    """A quoted string's literal text with HCL's backslash escapes read."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            digits = text[i + 2:i + 2 + width]
            if len(digits) != width or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                raise HclExprError(f"Invalid escape sequence; \\{nxt} needs {width} hex digits")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise HclExprError(f"Invalid escape sequence; the symbol {nxt!r} is not a valid escape sequence "
                               "selector")
    return "".join(out)


def _template_items(text: str, escapes: bool) -> list[list]:
    """The template's pieces: ["str", text], ["interp", expr], ["dir", words, src]; strip markers applied."""
    items: list[list] = []
    lit: list[str] = []
    i = 0

    def flush() -> None:
        if lit:
            raw = "".join(lit)
            items.append(["str", _unescape(raw) if escapes else raw])
            lit.clear()

    while i < len(text):
        c = text[i]
        if escapes and c == "\\" and i + 1 < len(text):
            lit.append(text[i:i + 2])
            i += 2
            continue
        if c in "$%" and text.startswith(c + c + "{", i):
            lit.append(c + "{")  # $${ and %%{ are a literal ${ and %{
            i += 3
            continue
        if c in "$%" and text.startswith("{", i + 1):
            end = _skip_braced(text, i + 1)
            inner = text[i + 2:end - 1]
            strip_left = inner.startswith("~")
            strip_right = inner.endswith("~") and len(inner) > 1
            inner = inner[1:] if strip_left else inner
            inner = inner[:-1] if strip_right else inner
            flush()
            if strip_left and items and items[-1][0] == "str":
                items[-1][1] = items[-1][1].rstrip(" \t\r\n")
            if c == "$":
                node = parse_expression(inner)
                if node[0] == "trav":  # an undefined name keeps the whole ${ ... } as written, spaces too
                    node = (*node[:3], inner, *node[4:])
                items.append(["interp", node, strip_right])
            else:
                items.append(["dir", inner.strip(), strip_right])
            i = end
            continue
        lit.append(c)
        i += 1
    flush()
    # A right strip marker takes the whitespace at the start of the literal after it.
    for k, item in enumerate(items):
        if item[0] != "str" and item[2] and k + 1 < len(items) and items[k + 1][0] == "str":
            items[k + 1][1] = items[k + 1][1].lstrip(" \t\r\n")
    return items


_FOR_DIRECTIVE = re.compile(
    r"for\s+(" + _IDENT.pattern + r")\s*(?:,\s*(" + _IDENT.pattern + r")\s*)?in\s+(.*)", re.S)


def parse_template(text: str, *, escapes: bool) -> tuple:
    """A template's parts: ("str", s), ("interp", expr), ("if", cond, then, else), ("for", k, v, coll,
    parts)."""
    items = _template_items(text, escapes)
    pos = 0

    def parts(until: tuple[str, ...]) -> tuple[tuple, str]:
        nonlocal pos
        out: list[tuple] = []
        while pos < len(items):
            item = items[pos]
            pos += 1
            if item[0] == "str":
                if item[1]:
                    out.append(("str", item[1]))
                continue
            if item[0] == "interp":
                out.append(("interp", item[1]))
                continue
            words = item[1]
            head = words.split(None, 1)[0] if words else ""
            if head in until:
                return tuple(out), head
            if head == "if":
                cond = parse_expression(words[2:])
                then, ended = parts(("else", "endif"))
                other: tuple = ()
                if ended == "else":
                    other, ended = parts(("endif",))
                if ended != "endif":
                    raise HclExprError("Unterminated template directive; %{ if } has no %{ endif }")
                out.append(("if", cond, then, other))
            elif head == "for":
                m = _FOR_DIRECTIVE.fullmatch(words)
                if m is None:
                    raise HclExprError(f"Invalid template directive; %{{ {words} }}")
                key, val = (m.group(1), m.group(2)) if m.group(2) else (None, m.group(1))
                body, ended = parts(("endfor",))
                if ended != "endfor":
                    raise HclExprError("Unterminated template directive; %{ for } has no %{ endfor }")
                out.append(("for", key, val, parse_expression(m.group(3)), body))
            else:
                raise HclExprError(f"Invalid template directive; %{{ {words} }} is not if, else, endif, for "
                                   "or endfor, or is out of place")
        return tuple(out), ""

    result, ended = parts(())
    if ended:
        raise HclExprError(f"Unexpected template directive; %{{ {ended} }} without its opening directive")
    return ("template", result)


# --- evaluation --------------------------------------------------------------------------------------

_UNSET = object()


@dataclass
class Context:
    """What names mean while evaluating: *lookup(kind, name)* for ``var.x`` / ``local.x``, the
    iterators and ``for`` variables in scope, and the functions."""

    lookup: Callable[[str, str], Any]
    functions: dict[str, Callable[..., Any]] | None  # None: no calls at all (a variable's value, as Nomad's)
    names: dict[str, Any] = field(default_factory=dict)

    def with_names(self, **names: Any) -> Context:
        return Context(self.lookup, self.functions, {**self.names, **names})


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "tuple"
    return "object"


def norm_number(v: int | float) -> int | float:
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return v
        if v.is_integer():
            return int(v)
    return v


def to_number(v: Any, what: str = "number") -> int | float:
    if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
        raise HclExprError(f"Unsuitable value type; {what} required, not {type_name(v)}")
    if isinstance(v, (int, float)):
        return v
    text = v.strip()
    if _NUMBER_TEXT.fullmatch(text):
        return _number(text)
    raise HclExprError(f"Unsuitable value type; a number is required, not the string {v!r}")


_NUMBER_TEXT = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def number_text(v: int | float) -> str:
    if isinstance(v, int):
        return str(v)
    if v.is_integer():
        return str(int(v))
    return format(Decimal(repr(v)), "f")


def to_string(v: Any, what: str = "string") -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return number_text(v)
    raise HclExprError(f"Unsuitable value type; {what} required, not {type_name(v)}")


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise HclExprError(f"Unsuitable value type; bool required, not {type_name(v)}")


def equal(a: Any, b: Any) -> bool:
    """HCL's ==: values of different types are not equal (1 != "1", true != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


def _decimal(x: int | float) -> Decimal:
    return Decimal(x) if isinstance(x, int) else Decimal(repr(x))


def _arith(op: str, a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    if op in "+-*" and isinstance(x, int) and isinstance(y, int):
        return x + y if op == "+" else x - y if op == "-" else x * y
    if op in "+-*":
        # cty's numbers are decimal-exact big floats: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
        dx, dy = _decimal(x), _decimal(y)
        return norm_number(float(dx + dy if op == "+" else dx - dy if op == "-" else dx * dy))
    if y == 0:
        raise HclExprError("Error in function call; Call to function \"divide\" failed: can't divide by zero"
                           if op == "/" else "Error in function call; can't compute modulo of zero")
    if op == "/":
        if isinstance(x, int) and isinstance(y, int) and x % y == 0:
            return x // y
        return norm_number(float(_decimal(x) / _decimal(y)))
    # cty's modulo keeps the dividend's sign (Go's big.Int Rem / math.Mod), not Python's floor modulo.
    if isinstance(x, int) and isinstance(y, int):
        r = abs(x) % abs(y)
        return -r if x < 0 else r
    import math
    return norm_number(math.fmod(x, y))


def get(value: Any, key: Any) -> Any:
    """value[key] / value.key, with HCL's errors."""
    if isinstance(value, list):
        try:
            n = to_number(key)
        except HclExprError:
            raise HclExprError(f"Invalid index; the given key {key!r} is not a number") from None
        if not isinstance(n, int) or n < 0 or n >= len(value):
            raise HclExprError("Invalid index; The given key does not identify an element in this "
                               f"collection value (index {number_text(n)}, {len(value)} elements).")
        return value[n]
    if isinstance(value, dict):
        k = to_string(key)
        if k not in value:
            raise HclExprError(f'Unsupported attribute; This object does not have an attribute named "{k}".')
        return value[k]
    if value is None:
        raise HclExprError("Attempt to get attribute from null value; This value is null, so it does not "
                           "have any attributes or elements.")
    raise HclExprError(f"Unsupported attribute; a {type_name(value)} value has no attributes or elements "
                       f"(key {key!r})")


def iterate(coll: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs a for expression or %{ for } walks: index and element, or key and value in
    key order."""
    if isinstance(coll, list):
        return list(enumerate(coll))
    if isinstance(coll, dict):
        return [(k, coll[k]) for k in sorted(coll)]
    if coll is None:
        raise HclExprError("Iteration over null value; A null value cannot be used as the collection in a "
                           "'for' expression.")
    raise HclExprError(f"Iteration over non-iterable value; A value of type {type_name(coll)} cannot be used "
                       "as the collection in a 'for' expression.")


def evaluate(node: tuple, ctx: Context) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "paren":
        return evaluate(node[1], ctx)
    if kind in ("tmpl", "template"):
        return render(node[1] if kind == "tmpl" else node, ctx)
    if kind == "trav":
        return _traverse(node, ctx)
    if kind == "get":
        return get(evaluate(node[1], ctx), evaluate(node[2], ctx))
    if kind == "splat":
        return _splat(node, ctx)
    if kind == "call":
        return _call(node, ctx)
    if kind == "un":
        v = evaluate(node[2], ctx)
        return (not to_bool(v)) if node[1] == "!" else norm_number(-to_number(v))
    if kind == "bin":
        return _binary(node, ctx)
    if kind == "cond":
        cond = evaluate(node[1], ctx)
        if cond is None:
            raise HclExprError("Null condition; The condition value is null. Conditions must either be "
                               "true or false.")
        return evaluate(node[2] if to_bool(cond) else node[3], ctx)
    if kind == "tuple":
        return [evaluate(e, ctx) for e in node[1]]
    if kind == "object":
        out: dict[str, Any] = {}
        for kexpr, vexpr in node[1]:
            key = evaluate(kexpr, ctx)
            if key is None:
                raise HclExprError("Invalid object key; Key expression in object constructor must not be "
                                   "null.")
            out[to_string(key)] = evaluate(vexpr, ctx)
        return out
    if kind == "fortuple":
        _, key, val, coll, body, cond = node
        result = []
        for k, v in iterate(evaluate(coll, ctx)):
            inner = ctx.with_names(**({key: k} if key else {}), **{val: v})
            if cond is None or _for_cond(cond, inner):
                result.append(evaluate(body, inner))
        return result
    if kind == "forobj":
        return _for_object(node, ctx)
    raise AssertionError(f"unknown expression node {kind!r}")


def _for_cond(cond: tuple, ctx: Context) -> bool:
    v = evaluate(cond, ctx)
    if v is None:
        raise HclExprError("Condition is null; The value of the 'if' clause must not be null.")
    return to_bool(v)


def _for_object(node: tuple, ctx: Context) -> dict[str, Any]:
    _, key, val, coll, kexpr, vexpr, group, cond = node
    out: dict[str, Any] = {}
    for k, v in iterate(evaluate(coll, ctx)):
        inner = ctx.with_names(**({key: k} if key else {}), **{val: v})
        if cond is not None and not _for_cond(cond, inner):
            continue
        name = evaluate(kexpr, inner)
        if name is None:
            raise HclExprError("Invalid object key; Key expression in 'for' expression must not produce a "
                               "null value.")
        name = to_string(name)
        value = evaluate(vexpr, inner)
        if group:
            out.setdefault(name, []).append(value)
        elif name in out:
            raise HclExprError(f'Duplicate object key; Two different items produced the key "{name}" in '
                               "this 'for' expression. If duplicates are expected, use the ellipsis (...) "
                               "after the value expression to enable grouping by key.")
        else:
            out[name] = value
    return out


def _binary(node: tuple, ctx: Context) -> Any:
    _, op, left, right = node
    if op in ("&&", "||"):
        a = to_bool(evaluate(left, ctx))
        b = to_bool(evaluate(right, ctx))  # HCL evaluates both sides
        return (a and b) if op == "&&" else (a or b)
    a, b = evaluate(left, ctx), evaluate(right, ctx)
    if op == "==":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    if op in ("<", ">", "<=", ">="):
        x, y = to_number(a), to_number(b)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
    return _arith(op, a, b)


def _traverse(node: tuple, ctx: Context) -> Any:
    _, root, steps, src, _start, _end = node
    if root in ctx.names:
        value = ctx.names[root]
    elif root in ("var", "local"):
        if not steps or steps[0][0] != "attr":
            raise HclExprError(f"Invalid reference; {root} must be followed by .<name>")
        value = ctx.lookup(root, steps[0][1])
        steps = steps[1:]
    else:
        # Nomad's UndefinedVariable hook: the reference's own text, for the client to interpolate.
        return "${" + src + "}"
    for step in steps:
        value = get(value, step[1] if step[0] == "attr" else evaluate(step[1], ctx))
    return value


def _splat(node: tuple, ctx: Context) -> Any:
    _, source, steps = node
    value = evaluate(source, ctx)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        for step in steps:
            item = get(item, evaluate(step, ctx))
        out.append(item)
    return out


def _call(node: tuple, ctx: Context) -> Any:
    _, name, args, expand = node
    if ctx.functions is None:
        raise HclExprError("Function calls not allowed; Functions may not be called here.")
    if name in ("try", "can"):
        return _try(name, args, ctx)
    fn = ctx.functions.get(name)
    if fn is None:
        raise HclExprError(f'Call to unknown function; There is no function named "{name}".')
    if name == "convert" and len(args) == 2:  # its second argument is a type, not a value
        values = [evaluate(args[0], ctx), _type_text(args[1])]
    else:
        values = [evaluate(a, ctx) for a in args]
    if expand:
        last = values.pop() if values else None
        if not isinstance(last, list):
            raise HclExprError("Invalid expanding argument value; The expanding argument (indicated by ...) "
                               "must be of a tuple, list, or set type.")
        values.extend(last)
    try:
        return fn(*values)
    except HclExprError as e:
        raise HclExprError(f'Error in function call; Call to function "{name}" failed: {e}') from None
    except TypeError:
        raise HclExprError(f'Invalid function arguments; wrong number of arguments to function "{name}" '
                           f"({len(values)} given)") from None
    except (ValueError, ArithmeticError, IndexError, KeyError) as e:
        raise HclExprError(f'Error in function call; Call to function "{name}" failed: {e}') from None


def _type_text(node: tuple) -> str:
    """A type expression's text: ``string``, ``list(string)``, ``map(number)``..."""
    if node[0] == "trav" and not node[2]:
        return node[1]
    if node[0] == "call":
        return f"{node[1]}({', '.join(_type_text(a) for a in node[2])})"
    raise HclExprError("Invalid type specification; a type (string, number, bool, list(...), ...) is "
                       "expected")


def _try(name: str, args: tuple, ctx: Context) -> Any:
    if name == "can":
        if len(args) != 1:
            raise HclExprError('Invalid function arguments; function "can" takes one argument')
        try:
            evaluate(args[0], ctx)
        except HclExprError:
            return False
        return True
    if not args:
        raise HclExprError('Invalid function arguments; function "try" needs at least one argument')
    errors = []
    for arg in args:
        try:
            return evaluate(arg, ctx)
        except HclExprError as e:
            errors.append(str(e))
    raise HclExprError("Error in function call; Call to function \"try\" failed: no expression succeeded:\n"
                       + "\n".join(f"- {e}" for e in errors))


def render(template: tuple, ctx: Context) -> Any:
    """A template's value: a lone ``${expr}`` is the expression's own value (a list stays a list, as in
    HCL); anything else is the text of its parts joined."""
    parts = template[1]
    if len(parts) == 1 and parts[0][0] == "interp":
        return evaluate(parts[0][1], ctx)
    return "".join(_render_parts(parts, ctx))


def _render_parts(parts: tuple, ctx: Context) -> list[str]:
    out: list[str] = []
    for part in parts:
        kind = part[0]
        if kind == "str":
            out.append(part[1])
        elif kind == "interp":
            v = evaluate(part[1], ctx)
            if v is None:
                raise HclExprError("Invalid template interpolation value; The expression result is null. "
                                   "Cannot include a null value in a string template.")
            if isinstance(v, (list, dict)):
                raise HclExprError("Invalid template interpolation value; Cannot include the given value in "
                                   f"a string template: string required, not {type_name(v)}.")
            out.append(to_string(v))
        elif kind == "if":
            cond = evaluate(part[1], ctx)
            if cond is None:
                raise HclExprError("Invalid 'if' directive value; The condition is null.")
            out.extend(_render_parts(part[2] if to_bool(cond) else part[3], ctx))
        else:
            _, key, val, coll, body = part
            for k, v in iterate(evaluate(coll, ctx)):
                out.extend(_render_parts(body, ctx.with_names(**({key: k} if key else {}), **{val: v})))
    return out


def has_expression(text: str) -> bool:
    """Whether a string from python-hcl2 holds an expression or template (else it is plain text)."""
    return "${" in text or "%{" in text


def evaluate_text(text: str, ctx: Context) -> Any:
    """A string python-hcl2 gave: a template (with its ``${...}`` and ``%{...}``) or an expression."""
    if not has_expression(text):
        return text
    return render(parse_template(text, escapes=False), ctx)
