"""``nomad fmt``: Nomad's HCL formatter (command/fmt.go over hclwrite's format pass).

``nomad fmt [-check] [-write=false] [-list=false] [-recursive] [<path>...]``
rewrites job and agent configuration files (``*.nomad``, ``*.hcl``; a
directory's such files, its subdirectories' with -recursive; ``-`` reads
stdin and prints the result) in the canonical layout: each line re-indented
two spaces per open bracket, tokens re-spaced (one space around ``=`` and
operators, none inside ``[]``/``()``, one inside ``{ }``), the ``=`` of
consecutive one-line attributes aligned, trailing comments aligned.  Only the
spaces between tokens change: strings, heredoc bodies and comments are kept
byte for byte (the spaces inside ``${ }`` go, as hclwrite's do).

A file is first parsed (python-hcl2), so one that does not parse is reported
and never rewritten.  The token scanner and the formatting rules are our own
code following hclsyntax's scanner and hclwrite/format.go.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from dataclasses import dataclass
from typing import TextIO

__all__ = ["FMT_COMMANDS", "fmt_command", "format_hcl", "tokenize"]

# Token kinds (hclsyntax's names, shortened).
NEWLINE, COMMENT, IDENT, NUMBER, EOF = "Newline", "Comment", "Ident", "Number", "EOF"
OQUOTE, CQUOTE, QLIT, SLIT = "OQuote", "CQuote", "QuotedLit", "StringLit"
OHEREDOC, CHEREDOC = "OHeredoc", "CHeredoc"
INTERP, CONTROL, SEQEND = "TemplateInterp", "TemplateControl", "TemplateSeqEnd"
OBRACE, CBRACE, OBRACK, CBRACK, OPAREN, CPAREN = "{", "}", "[", "]", "(", ")"
INVALID = "Invalid"

_OPERATORS = ("...", "::", "=>", "==", "!=", "<=", ">=", "&&", "||")
_SINGLE = set("{}[]()=<>!+-*/%.,?:")
_OPENERS = {OBRACE, OBRACK, OPAREN, CONTROL, INTERP}
_CLOSERS = {CBRACE, CBRACK, CPAREN, SEQEND}


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    spaces: int = 0  # hclwrite's SpacesBefore


def _is_ident_start(c: str) -> bool:
    return c == "_" or c.isidentifier()


def _is_ident_char(c: str) -> bool:
    return c in "_-" or ("a" + c).isidentifier()


class _Scanner:
    """hclsyntax's scanner, as far as formatting needs it: the token kinds and exact bytes of a file."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.tokens: list[Token] = []
        self.pending = 0  # spaces skipped before the next token

    def emit(self, kind: str, end: int) -> None:
        self.tokens.append(Token(kind, self.src[self.pos:end], self.pending))
        self.pending = 0
        self.pos = end

    def run(self) -> list[Token]:
        self.main(interp=False)
        self.tokens.append(Token(EOF, "", self.pending))
        return self.tokens

    def main(self, interp: bool) -> None:
        """Expression mode; inside a template interpolation it ends at the matching ``}``."""
        s, depth = self.src, 0
        while self.pos < len(s):
            c, p = s[self.pos], self.pos
            if c in " \t":
                self.pending += 1
                self.pos += 1
            elif c == "\n" or s.startswith("\r\n", p):
                self.emit(NEWLINE, p + (1 if c == "\n" else 2))
            elif c == "#" or s.startswith("//", p):
                nl = s.find("\n", p)
                self.emit(COMMENT, len(s) if nl < 0 else nl + 1)
            elif s.startswith("/*", p):
                end = s.find("*/", p + 2)
                self.emit(COMMENT if end >= 0 else INVALID, len(s) if end < 0 else end + 2)
            elif c == '"':
                self.emit(OQUOTE, p + 1)
                self.quoted()
            elif s.startswith("<<", p) and self.heredoc_start():
                pass
            elif interp and depth == 0 and (c == "}" or s.startswith("~}", p)):
                self.emit(SEQEND, p + (1 if c == "}" else 2))
                return
            elif _is_ident_start(c):
                end = p + 1
                while end < len(s) and _is_ident_char(s[end]):
                    end += 1
                self.emit(IDENT, end)
            elif c.isdigit():
                self.emit(NUMBER, self.number_end(p))
            elif (op := next((o for o in _OPERATORS if s.startswith(o, p)), None)) is not None:
                self.emit(op, p + len(op))
            elif c in _SINGLE:
                depth += 1 if c == "{" else -1 if c == "}" else 0
                self.emit(c, p + 1)
            else:
                self.emit(INVALID, p + 1)

    def number_end(self, p: int) -> int:
        s = self.src
        end = p
        while end < len(s) and s[end].isdigit():
            end += 1
        if end + 1 < len(s) and s[end] == "." and s[end + 1].isdigit():
            end += 1
            while end < len(s) and s[end].isdigit():
                end += 1
        if end < len(s) and s[end] in "eE":
            e = end + 1
            if e < len(s) and s[e] in "+-":
                e += 1
            if e < len(s) and s[e].isdigit():
                while e < len(s) and s[e].isdigit():
                    e += 1
                end = e
        return end

    def template_open(self, p: int) -> int:
        """The end of a ``${``/``%{`` (with its ``~``) at *p*, or -1; ``$${`` and ``%%{`` are literal."""
        s = self.src
        if s.startswith("$${", p) or s.startswith("%%{", p):
            return -1
        if s.startswith("${", p) or s.startswith("%{", p):
            return p + 3 if s.startswith("~", p + 2) else p + 2
        return -1

    def interpolation(self, end: int) -> None:
        self.emit(INTERP if self.src[self.pos] == "$" else CONTROL, end)
        self.main(interp=True)

    def quoted(self) -> None:
        s, start = self.src, self.pos
        while self.pos < len(s):
            p = self.pos
            c = s[p]
            if c == '"' or c == "\n" or (end := self.template_open(p)) >= 0:
                if p > start:
                    self.pos = start
                    self.emit(QLIT, p)
                if c == '"':
                    self.emit(CQUOTE, p + 1)
                    return
                if c == "\n":  # hclsyntax: a quoted string cannot span lines (a parse error)
                    return
                self.interpolation(end)
                start = self.pos
            elif c == "\\":
                self.pos += 2
            elif s.startswith("$${", p) or s.startswith("%%{", p):
                self.pos += 3
            else:
                self.pos += 1
        if self.pos > start:
            end, self.pos = self.pos, start
            self.emit(QLIT, end)

    def heredoc_start(self) -> bool:
        s, p = self.src, self.pos
        q = p + 2 + (1 if s.startswith("-", p + 2) else 0)
        if q >= len(s) or not _is_ident_start(s[q]):
            return False
        e = q + 1
        while e < len(s) and _is_ident_char(s[e]):
            e += 1
        marker = s[q:e]
        if s.startswith("\r\n", e):
            e += 1
        if not s.startswith("\n", e):
            return False
        self.emit(OHEREDOC, e + 1)
        self.heredoc(marker)
        return True

    def heredoc(self, marker: str) -> None:
        """A heredoc's body: a literal per line (split at interpolations), then its closing marker."""
        s = self.src
        line_start = True
        start = self.pos
        while self.pos < len(s):
            p = self.pos
            if line_start:
                line_start = False
                nl = s.find("\n", p)
                if nl >= 0 and s[p:nl + 1].strip() == marker:
                    self.emit(CHEREDOC, nl - 1 if s[nl - 1] == "\r" else nl)
                    self.emit(NEWLINE, nl + 1)
                    return
            if s[p] == "\n":
                self.pos = start
                self.emit(SLIT, p + 1)
                start, line_start = self.pos, True
            elif (end := self.template_open(p)) >= 0:
                if p > start:
                    self.pos = start
                    self.emit(SLIT, p)
                self.interpolation(end)
                start = self.pos
            elif s.startswith("$${", p) or s.startswith("%%{", p):
                self.pos += 3
            else:
                self.pos += 1
        if self.pos > start:
            end, self.pos = self.pos, start
            self.emit(SLIT, end)


def tokenize(src: str) -> list[Token]:
    """The file's tokens, each with the spaces before it; joined back they give *src* (tabs as spaces)."""
    return _Scanner(src).run()


# ---------------------------------------------------------------- hclwrite's format pass


def _bracket(t: Token) -> int:
    return 1 if t.kind in _OPENERS else -1 if t.kind in _CLOSERS else 0


def _is_newline(t: Token) -> bool:
    return t.kind == NEWLINE or (t.kind == COMMENT and t.text.endswith("\n"))


def _columns(tokens: list[Token]) -> int:
    return sum(t.spaces + sum(1 for ch in t.text if not unicodedata.combining(ch)) for t in tokens)


@dataclass(slots=True)
class _Line:
    lead: list[Token]
    assign: list[Token] | None = None
    comment: list[Token] | None = None


def _lines(tokens: list[Token]) -> list[_Line]:
    lines: list[_Line] = []
    start = 0
    for i, t in enumerate(tokens):
        if t.kind == EOF:
            lines.append(_Line(tokens[start:i]))
            break
        if _is_newline(t):
            lines.append(_Line(tokens[start:i + 1]))
            start = i + 1
    for line in lines:
        lead = line.lead
        if len(lead) > 1 and lead[-1].kind == COMMENT:
            line.comment, lead = lead[-1:], lead[:-1]
        for i, t in enumerate(lead):
            if i > 0 and t.kind == "=":
                if sum(_bracket(x) for x in lead[i:]) == 0:  # a whole expression, not a multi-line one
                    line.assign, lead = lead[i:], lead[:i]
                break
        line.lead = lead
    return lines


def _indent(lines: list[_Line]) -> None:
    indents: list[int] = []
    for line in lines:
        if not line.lead:
            continue
        if line.lead[0].kind == NEWLINE:
            line.lead[0].spaces = 0
            continue
        net = 0
        for t in line.lead:
            net += _bracket(t)
            if t.kind == OHEREDOC:
                break
        net += sum(_bracket(t) for t in line.assign or ())
        if net > 0:
            line.lead[0].spaces = 2 * len(indents)
            indents.append(net)
            continue
        closed = -net
        while closed > 0 and indents:
            if closed > indents[-1]:
                closed -= indents.pop()
            elif closed < indents[-1]:
                indents[-1] -= closed
                closed = 0
            else:
                indents.pop()
                closed = 0
        line.lead[0].spaces = 2 * len(indents)


_NIL = Token("Nil", "")
_NEGATION_AFTER = {"Nil", "(", "{", "[", "=", ":", ",", "?", "+", "*", "/", "%", "-",
                   "==", "!=", ">", ">=", "<", "<=", "&&", "||", "!"}
_IN_TEMPLATE = {QLIT, SLIT, OQUOTE, OHEREDOC}


def _space_after(subject: Token, before: Token, after: Token) -> bool:
    """hclwrite's spaceAfterToken: whether one space separates *subject* from *after*."""
    sk, ak = subject.kind, after.kind
    if ak in (NEWLINE, "Nil"):
        return False
    if sk == IDENT and ak == "(":
        return False
    if (sk == IDENT and ak == "::") or (sk == "::" and ak == IDENT):
        return False
    if sk == "." or ak == ".":
        return False
    if ak in (",", "..."):
        return False
    if sk == ",":
        return True
    if sk in _IN_TEMPLATE or ak in (QLIT, SLIT, CQUOTE, CHEREDOC):
        return False
    if sk == IDENT and subject.text == "in" and before.kind == IDENT:
        return True
    if ak == "[" and (sk in (IDENT, NUMBER) or _bracket(subject) < 0):
        return False
    if sk == "!":
        return False
    if sk == "-":
        return before.kind not in _NEGATION_AFTER
    if sk == "{" or ak == "}":
        return not (sk == "{" and ak == "}")
    if sk in (INTERP, CONTROL) and ak == "{":
        return True
    if sk == "}" and ak == SEQEND:
        return True
    if sk == SEQEND and ak in (INTERP, CONTROL):
        return False
    if _bracket(subject) > 0:
        return False
    if _bracket(after) < 0:
        return False
    return True


def _spaces(lines: list[_Line]) -> None:
    for line in lines:
        for cell, first in ((line.lead, False), (line.assign or [], True)):
            for i, t in enumerate(cell):
                if i == 0 and first:
                    t.spaces = 1
                if i == len(cell) - 1:
                    continue
                after = cell[i + 1]
                after.spaces = 1 if _space_after(t, cell[i - 1] if i > 0 else _NIL, after) else 0


def _cells(lines: list[_Line]) -> None:
    def chains(has: str) -> list[list[_Line]]:
        out: list[list[_Line]] = []
        run: list[_Line] = []
        for line in lines:
            if getattr(line, has) is None:
                if run:
                    out.append(run)
                run = []
            else:
                run.append(line)
        if run:
            out.append(run)
        return out

    for chain in chains("assign"):
        width = max(_columns(x.lead) for x in chain)
        for x in chain:
            assert x.assign is not None
            x.assign[0].spaces = width - _columns(x.lead) + 1
    for chain in chains("comment"):
        width = max(_columns(x.lead) + _columns(x.assign or []) for x in chain)
        for x in chain:
            assert x.comment is not None
            x.comment[0].spaces = width - _columns(x.lead) - _columns(x.assign or []) + 1


def format_hcl(src: str) -> str:
    """hclwrite.Format: *src* re-indented, re-spaced and aligned; only the spaces between tokens change."""
    tokens = tokenize(src)
    lines = _lines(tokens)
    _indent(lines)
    _spaces(lines)
    _cells(lines)
    return "".join(" " * t.spaces + t.text for t in tokens)


# ---------------------------------------------------------------- the command


class HclSyntaxError(Exception):
    pass


def _diagnostic(summary: str, path: str, src: str, line: int | None, detail: str) -> str:
    """An HCL diagnostic as hcl's text writer shows one: the summary, where, the source line, the detail."""
    if not line:
        return f"Error: {summary}\n\n  on {path}:\n\n{detail}"
    lines = src.splitlines()
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return f"Error: {summary}\n\n  on {path} line {line}:\n  {line:>3}: {text}\n\n{detail}"


def check_syntax(src: str, path: str) -> None:
    """Refuse a file that does not parse as HCL (python-hcl2), saying where and the parser's reason."""
    import hcl2

    # python-hcl2 refuses spaces after a heredoc's closing marker, which hclsyntax allows: parsed without
    tokens = tokenize(src)
    checked = "".join(" " * t.spaces + (t.text.rstrip(" \t") if t.kind == CHEREDOC else t.text)
                      for t in tokens)
    try:
        hcl2.loads(checked)
    except Exception as e:  # lark raises its own error types, with the line and column
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HclSyntaxError(_diagnostic("Invalid HCL syntax", path, src, getattr(e, "line", None),
                                         first)) from None
    line = 1
    for t in tokens:  # what python-hcl2 lets through but hclsyntax's scanner refuses
        if t.kind == INVALID:
            raise HclSyntaxError(_diagnostic("Invalid character", path, src, line,
                                             "This character is not used within the language."))
        line += t.text.count("\n")


def _is_nomad_file(name: str) -> bool:
    """Go's filepath.Ext of the base name is .nomad or .hcl (so a.nomad.hcl and .hcl are too)."""
    base = os.path.basename(name)
    return "." in base and base[base.rfind("."):] in (".nomad", ".hcl")


class _Fmt:
    def __init__(self, flags: dict[str, bool], out: TextIO) -> None:
        self.list = flags.get("list", True)
        self.check = flags.get("check", False)
        self.write_file = flags.get("write", True) and not self.check
        self.recursive = flags.get("recursive", False)
        self.write_stdout = False
        self.check_ok = True
        self.errors: list[str] = []
        self.diags: list[str] = []
        self.out = out

    def process(self, path: str, src: str) -> None:
        try:
            check_syntax(src, path)
        except HclSyntaxError as e:
            self.diags.append(str(e))
            return
        formatted = format_hcl(src)
        if formatted != src:
            if self.list:
                self.out.write(path + "\n")
            if self.check:
                self.check_ok = False
            if self.write_file:
                try:
                    with open(path, "w", encoding="utf-8", newline="") as f:
                        f.write(formatted)
                except OSError as e:
                    self.errors.append(f"Failed to write file {path}: {e.strerror or e}")
                    return
        if self.write_stdout:
            self.out.write(formatted)

    def process_path(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                src = f.read()
        except (OSError, UnicodeDecodeError) as e:
            self.errors.append(f"Failed to open file {path}: {getattr(e, 'strerror', None) or e}")
            return
        self.process(path, src)

    def process_dir(self, path: str) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            self.errors.append(f"Failed to list directory {path}")
            return
        for entry in entries:
            sub = os.path.normpath(os.path.join(path, entry.name))  # Go's filepath.Join cleans
            if entry.is_dir(follow_symlinks=False):  # as os.ReadDir's entries: a link is not followed
                if self.recursive:
                    self.process_dir(sub)
                continue
            if _is_nomad_file(entry.name):
                self.process_path(sub)


def fmt_command(args: list[str], stdin: TextIO | None = None, stdout: TextIO | None = None,
                stderr: TextIO | None = None) -> int:
    """Run ``nomad fmt`` with *args*; the exit code: 1 for an error, a file that does not parse, or
    with -check a file not in canonical format."""
    from runtime.cli_jobs import parse_flags

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    flags, rest = parse_flags(args, {"check": bool, "write": bool, "list": bool, "recursive": bool})
    f = _Fmt(flags, stdout)
    paths: list[str] = []
    if not rest:
        paths = ["."]
    elif rest[0] == "-":
        f.write_stdout, f.write_file, f.list = True, False, False
    else:
        paths = rest
    if not f.list and not f.write_file:
        f.write_stdout = True
    if not paths:
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()  # bytes: \r\n kept
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as e:
            f.errors.append(f"Failed to read file <stdin>: {e}")
        else:
            f.process("<stdin>", text)
    for path in paths:
        if not os.path.exists(path):
            f.errors.append(f"No file or directory at {path}")
        elif os.path.isdir(path):
            f.process_dir(path)
        elif _is_nomad_file(path):
            f.process_path(path)
        else:
            f.errors.append("Only .nomad and .hcl files can be processed using nomad fmt")
    stdout.flush()
    for d in f.diags:
        stderr.write(d + "\n\n")
    if f.errors:  # go-multierror's text, then Nomad's commandErrorText
        n = len(f.errors)
        items = "\n".join(f"\t* {e}" for e in f.errors)
        stderr.write(f"{n} error{' occurred' if n == 1 else 's occurred'}:\n{items}\n\n\n")
        stderr.write("For additional help try 'nomad fmt -help'\n")
    return 1 if f.diags or f.errors or not f.check_ok else 0


def _fmt(addr: str, args: list[str]) -> tuple[str, int]:
    return "", fmt_command(args)


FMT_COMMANDS = {("fmt",): _fmt}
