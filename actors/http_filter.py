"""List options of Nomad's list endpoints: ``?filter=`` expressions and ``?per_page=&next_token=`` pages.

``filter`` takes go-bexpr expressions (what Nomad's API and ``-filter`` flags
use), evaluated against each object of the answer as Nomad returns it:

    Status == "ready" and Datacenter in ["dc1", "dc2"]     (lists: also ``"dc1" in Datacenters``,
                                                            or with a bare word, ``dc1 in Datacenters``)
    Meta.rack != "r1" or not (Name matches "^web-")
    NodeResources.Cpu.CpuShares > 1000                      (selectors: dots, or ["key with spaces"])
    Drivers is not empty, Name contains "web", Name not contains "db"

Operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``, ``contains``,
``not contains``, ``matches``, ``not matches``, ``is empty``, ``is not empty``; ``and``, ``or``,
``not`` and parentheses.  A literal is compared as the type of the field it meets (``Priority ==
"50"`` and ``Priority == 50`` agree).  An expression that does not parse is refused with 400 and
the reason, never ignored.

Pages: objects are in ID order (as every list here is); ``next_token`` starts a page at that ID
and ``per_page`` caps it, with ``X-Nomad-NextToken`` naming the first ID of the next page.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from time import monotonic
from typing import Any

import regex  # like re, with a timeout per match (python-hcl2 needs it too)

from actors.http_api import Answer, CodedError, Request, query_flag

MAX_FILTER_BYTES = 4096  # an expression longer than this is refused (a filter is a line, not a program)
# Python's backtracking regex engine can take exponential time on some patterns
# (go-bexpr uses Go's linear RE2); every `matches` test of one request shares
# this budget, and a request that exhausts it is refused rather than freezing the agent.
MATCH_BUDGET_S = 0.25
MAX_NESTING = 64  # parentheses and `not` nest at most this deep


class FilterTooSlow(Exception):
    """A `matches` pattern used up the request's match budget."""

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<word>[A-Za-z_][\w\-/]*(?:\.[A-Za-z_0-9][\w\-/]*)*)
)""", re.VERBOSE)


class FilterError(ValueError):
    """The expression does not parse."""


class FieldMissing(FilterError):
    """A strict filter met a field its object does not have (go-bexpr's evaluation error)."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"unexpected {text[pos:].strip()[:20]!r}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "str":
            value = raw[1:-1] if raw[0] == "`" else re.sub(r"\\(.)", r"\1", raw[1:-1])
            out.append(("str", value))
        elif kind == "num":
            out.append(("num", float(raw) if "." in raw else int(raw)))
        elif kind == "op":
            out.append(("op", raw))
        else:
            out.append(("word", raw))
    return out


_MISSING = object()


def _select(obj: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return _MISSING
    return obj


def _select_strict(obj: Any, path: list[str]) -> Any:
    """go-bexpr 0.1.16's lookup: a key missing from a map that the rest of the path reaches is "not
    present" (_MISSING: each operator's NotPresentDisposition, as the lenient filter answers);
    anything else not found -- a path through a value that is not a map, a missing top-level field
    -- fails the whole evaluation (FieldMissing)."""
    for i, part in enumerate(path):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, dict) and i == len(path) - 1 and i > 0:
            return _MISSING
        else:
            raise FieldMissing(f"error finding value in datum: /{'/'.join(path)} not found")
    return obj


def _coerce(literal: Any, like: Any) -> Any:
    """The literal as the type of the field value it is compared with (go-bexpr's coercion)."""
    try:
        if isinstance(like, bool):
            return literal if isinstance(literal, bool) else str(literal).lower() == "true"
        if isinstance(like, int):
            return int(literal)
        if isinstance(like, float):
            return float(literal)
    except (TypeError, ValueError):
        return _MISSING
    if isinstance(like, str) and not isinstance(literal, str):
        return str(literal).lower() if isinstance(literal, bool) else str(literal)
    return literal


def _has(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, dict):
        return str(item) in container
    if isinstance(container, list):
        return any(_coerce(item, x) == x for x in container)
    return False


class _Parser:
    def __init__(self, text: str, strict: bool = False) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.budget_end = 0.0  # set when the filter runs (compile_filter)
        self.strict = strict
        self.select = _select_strict if strict else _select

    def peek(self, k: int = 0) -> tuple[str, Any] | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def word(self, *words: str) -> bool:
        t = self.peek()
        return t is not None and t[0] == "word" and t[1].lower() in words

    def take(self) -> tuple[str, Any]:
        t = self.peek()
        if t is None:
            raise FilterError("unexpected end of expression")
        self.i += 1
        return t

    def expect_op(self, op: str) -> None:
        t = self.take()
        if t != ("op", op):
            raise FilterError(f"expected {op!r}, got {t[1]!r}")

    def parse(self) -> Callable[[Any], bool]:
        fn = self.or_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return fn

    def or_expr(self) -> Callable[[Any], bool]:
        parts = [self.and_expr()]
        while self.word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda o: any(p(o) for p in parts))

    def and_expr(self) -> Callable[[Any], bool]:
        parts = [self.not_expr()]
        while self.word("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda o: all(p(o) for p in parts))

    def not_expr(self) -> Callable[[Any], bool]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FilterError(f"nested deeper than {MAX_NESTING}")
        try:
            return self._not_expr()
        finally:
            self.depth -= 1

    def _not_expr(self) -> Callable[[Any], bool]:
        if self.word("not"):
            self.take()
            inner = self.not_expr()
            return lambda o: not inner(o)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.or_expr()
            self.expect_op(")")
            return inner
        return self.match()

    def selector(self) -> list[str]:
        t = self.take()
        if t[0] != "word":
            raise FilterError(f"expected a field name, got {t[1]!r}")
        path = t[1].split(".")
        while self.peek() == ("op", "["):
            self.take()
            key = self.take()
            if key[0] != "str":
                raise FilterError("expected a quoted key inside [ ]")
            self.expect_op("]")
            path.append(key[1])
        return path

    def value(self) -> Any:
        t = self.take()
        if t[0] in ("str", "num"):
            return t[1]
        if t[0] == "word" and t[1].lower() in ("true", "false"):
            return t[1].lower() == "true"
        if t == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.value())
                if self.peek() == ("op", ","):
                    self.take()
            self.take()
            return items
        if t[0] == "word":
            return t[1]  # a bare word: go-bexpr takes it as a string
        raise FilterError(f"expected a value, got {t[1]!r}")

    def _bare_value_in(self) -> bool:
        """``word in selector`` / ``word not in selector`` (a field name follows, not a list)."""
        k = 2 if (self.peek(1) or ("", ""))[0] == "word" and str(self.peek(1)[1]).lower() == "not" else 1
        after_in = self.peek(k + 1)
        nxt = self.peek(k)
        return (nxt is not None and nxt[0] == "word" and nxt[1].lower() == "in"
                and after_in is not None and after_in[0] == "word")

    def match(self) -> Callable[[Any], bool]:
        first = self.peek()
        sel, strict = self.select, self.strict
        # value in selector / value not in selector
        if first is not None and (first[0] in ("str", "num") or first == ("op", "[")):
            value = self.value()
            negate = self.word("not")
            if negate:
                self.take()
            if not self.word("in"):
                raise FilterError("expected 'in' after a value")
            self.take()
            path = self.selector()
            return _in(value, path, negate, sel)
        if first is not None and first[0] == "word" and self._bare_value_in():
            # go-bexpr takes a bare word before `in` as a string: `engineering in list.groups`
            value = self.take()[1]
            negate = self.word("not")
            if negate:
                self.take()
            self.take()  # in
            return _in(value, self.selector(), negate, sel)
        path = self.selector()
        t = self.peek()
        if t is None:
            raise FilterError("expected an operator after the field name")
        if t[0] == "op" and t[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return _compare(path, t[1], self.value(), sel, strict)
        negate = False
        if self.word("is"):
            self.take()
            if self.word("not"):
                self.take()
                negate = True
            if not self.word("empty"):
                raise FilterError("expected 'empty' after 'is'")
            self.take()
            return lambda o: _empty(sel(o, path)) != negate
        if self.word("not"):
            self.take()
            negate = True
        if self.word("contains"):
            self.take()
            value = self.value()
            return lambda o: _has(sel(o, path), value) != negate
        if self.word("in"):
            self.take()
            value = self.value()
            if not isinstance(value, list):
                raise FilterError("'in' after a field needs a list")
            return lambda o: (sel(o, path) is not _MISSING
                              and any(_coerce(v, sel(o, path)) == sel(o, path) for v in value)) != negate
        if self.word("matches"):
            self.take()
            pattern = self.value()
            try:
                rx = regex.compile(str(pattern))
            except regex.error as e:
                raise FilterError(f"invalid regular expression {pattern!r}: {e}") from None
            parser = self

            def test(o: Any) -> bool:
                value = sel(o, path)
                if not isinstance(value, str):
                    if strict and value is not _MISSING:
                        raise FieldMissing(f"cannot match a regular expression against a "
                                           f"{type(value).__name__}")
                    return negate
                left = parser.budget_end - monotonic()
                try:
                    if left <= 0:
                        raise TimeoutError
                    return (rx.search(value, timeout=left) is not None) != negate
                except TimeoutError:
                    raise FilterTooSlow(f"regular expression {pattern!r} took longer than {MATCH_BUDGET_S}s") \
                        from None
            return test
        raise FilterError(f"unknown operator {t[1]!r}")


def _empty(v: Any) -> bool:
    return v is _MISSING or v is None or (isinstance(v, (str, list, dict)) and not v)


def _in(value: Any, path: list[str], negate: bool, sel: Any = _select) -> Callable[[Any], bool]:
    return lambda o: _has(sel(o, path), value) != negate


def _compare(path: list[str], op: str, literal: Any, sel: Any = _select,
             strict: bool = False) -> Callable[[Any], bool]:
    def test(o: Any) -> bool:
        field = sel(o, path)
        if field is _MISSING:
            return op == "!="
        v = _coerce(literal, field)
        if v is _MISSING:
            if strict:  # go-bexpr: the literal does not convert to the field's type, an evaluation error
                raise FieldMissing(f"cannot compare {literal!r} with the value at /{'/'.join(path)}")
            return op == "!="
        if op == "==":
            return field == v
        if op == "!=":
            return field != v
        try:
            return {"<": field < v, "<=": field <= v, ">": field > v, ">=": field >= v}[op]
        except TypeError:
            return False
    return test


def compile_filter(text: str, strict: bool = False) -> Callable[[Any], bool]:
    """The expression as a test of one object; FilterError when it does not parse.

    *strict*: evaluate as go-bexpr 0.1.16 does where Nomad uses its error (an ACL binding rule's
    selector): a key missing from a map still answers by the operator (``!=``, ``not in``, ``not
    matches``, ``is empty`` true; the others false), but a path through a value that is not a map,
    a missing top-level field, a literal that does not convert to the field's type or ``matches``
    on a non-string raise FieldMissing, through ``not``, ``and`` and ``or`` alike."""
    if len(text) > MAX_FILTER_BYTES:
        raise FilterError(f"filter longer than {MAX_FILTER_BYTES} bytes")
    parser = _Parser(text, strict)
    keep = parser.parse()

    def run(o: Any) -> bool:
        if not parser.budget_end:
            parser.budget_end = monotonic() + MATCH_BUDGET_S  # the request's regex budget starts now
        return keep(o)
    return run


def list_options_asked(req: Request) -> bool:
    return any(k in req.query for k in ("filter", "per_page", "next_token"))


def _created_key(o: dict[str, Any], id_key: str) -> tuple[int, str]:
    index = o.get("CreateIndex", 0)
    return (index if isinstance(index, int) else 0, str(o.get(id_key, "")))


def _created_target(token: str) -> tuple[int, str] | None:
    """A ``<create index>.<ID>`` token as Nomad's CreateIndexAndIDTokenizer compares it (None: one that
    is not, compared as a string)."""
    index, dot, rest = token.partition(".")
    if not dot or not index.lstrip("-").isdigit():
        return None
    return int(index), rest


def _token_of(o: dict[str, Any], id_key: str, namespaced: bool, created: bool) -> str:
    if created:
        index, oid = _created_key(o, id_key)
        return f"{index}.{oid}"
    return f"{o.get('Namespace', '')}.{o.get(id_key, '')}" if namespaced else str(o.get(id_key, ""))


def _from_token(token: str, id_key: str, namespaced: bool, created: bool,
                reverse: bool) -> Callable[[dict[str, Any]], bool]:
    """Whether an object is at or past *token* (Nomad's paginator skips those before it; after it,
    when reversed)."""
    target = _created_target(token) if created else None
    if target is not None:
        return lambda o: _created_key(o, id_key) <= target if reverse else _created_key(o, id_key) >= target
    return lambda o: (_token_of(o, id_key, namespaced, created) <= token if reverse
                      else _token_of(o, id_key, namespaced, created) >= token)


def apply_list_options(req: Request, answer: Answer, id_key: str = "ID", namespaced: bool = False,
                       created: bool = False) -> Answer:
    """Filter, then page, a list answer (Nomad filters before paging).  A *namespaced* list's tokens are
    ``<namespace>.<id>`` (Nomad's NamespaceIDTokenizer), so a page may end between namespaces.

    *created* (evaluations and allocations listed without a prefix, as Nomad's): the list in creation
    order, ``?reverse=true`` newest first, and tokens ``<create index>.<ID>``
    (CreateIndexAndIDTokenizer).  (With a prefix, Nomad's are in ID order with ID tokens: the caller
    does not ask for *created* then.)"""
    items = answer.value
    if not isinstance(items, list):
        return answer
    reverse = created and query_flag(req, "reverse")
    if created:
        items = sorted(items, key=lambda o: _created_key(o, id_key), reverse=reverse)
    text = (req.query.get("filter") or [""])[0]
    if text:
        try:
            keep = compile_filter(text)
        except FilterError as e:
            raise CodedError(400, f"failed to read filter expression: {e}") from None
        try:
            items = [o for o in items if keep(o)]
        except FilterTooSlow as e:
            raise CodedError(400, f"failed to apply filter expression: {e}") from None
    token = (req.query.get("next_token") or [""])[0]
    if token:
        after = _from_token(token, id_key, namespaced, created, reverse)
        items = [o for o in items if after(o)]
    return per_page(req, Answer(items, answer.headers),
                    lambda o: _token_of(o, id_key, namespaced, created))


def page_rows(req: Request, rows: list[Any], stubs: Callable[[list[Any]], list[dict[str, Any]]],
              order: Callable[[Any], Any], *, view: Callable[[Any], dict[str, Any]] = lambda r: r,
              id_key: str = "ID", namespaced: bool = False,
              created: bool = False) -> list[dict[str, Any]] | None:
    """Inside the state actor: the stubs of only the *rows* that :func:`apply_list_options` can answer
    with for *req* (the page's and the next one's, in the list's order), or None when every row's is
    needed (no ``per_page``, or options it refuses: it then answers the 400).

    A page then costs choosing its rows by their keys, not a stub of every row: *order* is the
    list's order of a row (unless *created*), *view* a row as far as its stub has the keys paging
    reads (``ID``/*id_key*, ``Namespace``, ``CreateIndex``: the same values), *stubs* the stubs of
    some rows.  :func:`apply_list_options` given the answer pages it as it would the whole list."""
    raw = (req.query.get("per_page") or [""])[0]
    try:
        n = int(raw) if raw else 0
    except ValueError:
        return None
    if n <= 0:
        return None
    try:
        reverse = created and query_flag(req, "reverse")
    except CodedError:  # a malformed ?reverse: apply_list_options answers its 400
        return None
    token = (req.query.get("next_token") or [""])[0]
    if token:
        after = _from_token(token, id_key, namespaced, created, reverse)
        rows = [r for r in rows if after(view(r))]
    key = (lambda r: _created_key(view(r), id_key)) if created else order
    text = (req.query.get("filter") or [""])[0]
    if not text:  # the first n + 1 (the next page's first names the token)
        pick = heapq.nlargest if reverse else heapq.nsmallest
        return stubs(pick(n + 1, rows, key=key))
    try:
        keep = compile_filter(text)
    except FilterError:
        return None
    ordered, out = sorted(rows, key=key, reverse=reverse), []
    for at in range(0, len(ordered), n + 1):  # a page's worth of stubs at a time, until n + 1 match
        for s in stubs(ordered[at:at + n + 1]):
            try:
                if not keep(s):
                    continue
            except Exception:  # apply_list_options meets it again over every row, and answers it
                return None
            out.append(s)
            if len(out) > n:
                return out
    return out


def per_page(req: Request, answer: Answer, token_of: Any) -> Answer:
    """``?per_page=N``: the first N items, and ``X-Nomad-NextToken`` (*token_of* the next one) when more."""
    items, headers = answer.value, answer.headers
    raw = (req.query.get("per_page") or [""])[0]
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise CodedError(400, f"per_page must be an integer, got {raw!r}") from None
        if n < 0:
            raise CodedError(400, "per_page must be >= 0")
        if n and len(items) > n:
            headers = (*headers, ("X-Nomad-NextToken", token_of(items[n])))
            items = items[:n]
    return Answer(items, headers)
