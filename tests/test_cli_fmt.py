"""``nomad fmt`` (runtime/cli_fmt.py): hclwrite's canonical layout, and command/fmt.go's flags, output and
exit codes. No agent needed."""

from __future__ import annotations

import ast
import functools
import io
import os
import random
from pathlib import Path

import hcl2
import pytest
from hcl2.utils import SerializationOptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import cli
from runtime.cli_fmt import CHEREDOC, EOF, NEWLINE, _is_newline, fmt_command, format_hcl, tokenize
from runtime.hcl_job import parse_hcl_job

REPO = Path(__file__).resolve().parent.parent


def _meaning(text: str) -> object:
    """What python-hcl2 reads from *text*, comments aside."""
    return hcl2.loads(text, serialization_options=SerializationOptions(with_comments=False))

# Nomad's own fixture (command/testdata/fmt/job.in.hcl -> job.out.hcl)
NOMAD_IN = """# Copyright IBM Corp. 2015, 2026
# SPDX-License-Identifier: BUSL-1.1

  job    "job1"   {
  type          = "service"
  datacenters = [   "dc1"  ]
  group "group1"   {
    count = 1
    task "task1" {
      driver   = "exec"
      config   {
            command = "/bin/sleep"
      }
      resources {
            cpu    = 1000
          memory = 512
       }
}
}
}
"""
NOMAD_OUT = """# Copyright IBM Corp. 2015, 2026
# SPDX-License-Identifier: BUSL-1.1

job "job1" {
  type        = "service"
  datacenters = ["dc1"]
  group "group1" {
    count = 1
    task "task1" {
      driver = "exec"
      config {
        command = "/bin/sleep"
      }
      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }
}
"""

GOLDEN = [
    pytest.param(NOMAD_IN, NOMAD_OUT, id="nomad-fixture"),
    pytest.param(  # Nomad's command/testdata/fmt/nomad.in.hcl -> nomad.out.hcl
        "server {\n  enabled          =    true\n  bootstrap_expect    = 3\n}\n\nconsul    {\n"
        '  address    = "1.2.3.4:8500"\n}\n',
        'server {\n  enabled          = true\n  bootstrap_expect = 3\n}\n\nconsul {\n'
        '  address = "1.2.3.4:8500"\n}\n',
        id="nomad-agent-fixture"),
    pytest.param("client   {enabled = true}", "client { enabled = true }", id="one-line-block"),
    pytest.param(  # hclsyntax allows spaces after a heredoc's closing marker (python-hcl2 does not)
        "a = <<EOF\nx\nEOF  \n b=1\n", "a = <<EOF\nx\nEOF  \nb = 1\n", id="heredoc-marker-spaces"),
    pytest.param("a {}\nb {   }\n", "a {}\nb {}\n", id="empty-blocks"),
    pytest.param(  # alignment groups: a blank line, a nested block and a comment-only line end one
        'job "x" {\n  a = 1\n  long_name = 2\n\n  b = 3\n  ccc = 4\n  group "g" {\n  count = 1\n  }\n'
        '  d = 5\n  # note\n  eeee = 6\n}\n',
        'job "x" {\n  a         = 1\n  long_name = 2\n\n  b   = 3\n  ccc = 4\n  group "g" {\n'
        '    count = 1\n  }\n  d = 5\n  # note\n  eeee = 6\n}\n', id="alignment-groups"),
    pytest.param(  # comments kept; trailing comments of consecutive lines aligned
        "# hash\n// slashes\n/* block */ a = 1 # trailing\nbb = 2    // other\n"
        'job "j" {    # open\n      /* x */\n}\n',
        "# hash\n// slashes\n/* block */ a = 1 # trailing\nbb            = 2 // other\n"
        'job "j" {         # open\n  /* x */\n}\n', id="comments"),
    pytest.param(  # a heredoc's body and closing marker are kept as written
        'task "t" {\ntemplate {\ndata = <<EOF\n  key = {{ key "x" }}   \n   a=b  {\nEOF\n'
        'destination = "local/x"\n}\n}\n',
        'task "t" {\n  template {\n    data        = <<EOF\n  key = {{ key "x" }}   \n   a=b  {\nEOF\n'
        '    destination = "local/x"\n  }\n}\n', id="heredoc"),
    pytest.param(
        'x {\n    a = <<-EOT\n      one\n        two ${x}\n      EOT\n}\n',
        'x {\n  a = <<-EOT\n      one\n        two ${x}\n      EOT\n}\n', id="indented-heredoc"),
    pytest.param(  # strings holding = { # // kept; interpolations kept (the spaces inside ${ } go)
        'meta {\ns="a = { # // b }"\nt   =   "${var.x}-${ upper( "y" ) }"\nu = "%{ if true }yes%{ endif }"\n'
        'v = "$${not} %%{this} \\" ="\n}\n',
        'meta {\n  s = "a = { # // b }"\n  t = "${var.x}-${upper("y")}"\n  u = "%{if true}yes%{endif}"\n'
        '  v = "$${not} %%{this} \\" ="\n}\n', id="strings"),
    pytest.param(  # lists and maps over several lines
        'config {\nargs = [\n"-a",\n   "-b",\n]\nports = ["http","rpc"]\nenv = {\nA = "1"\n'
        '  BB = "2"\n}\n}\n',
        'config {\n  args = [\n    "-a",\n    "-b",\n  ]\n  ports = ["http", "rpc"]\n  env = {\n'
        '    A  = "1"\n    BB = "2"\n  }\n}\n', id="lists-maps"),
    pytest.param(  # operators, negation, calls, indexes, attribute access, conditionals, for
        'a = -1+2*-3\nb = !x&&y||z\nc = f( 1,2 )[0].k\nd = x ? "a":"b"\ne = [for s in [1] : s*2]\n'
        'f = a.*.b\ng = x[*].y\n',
        'a = -1 + 2 * -3\nb = !x && y || z\nc = f(1, 2)[0].k\nd = x ? "a" : "b"\ne = [for s in [1] : s * 2]\n'
        'f = a.*.b\ng = x[*].y\n', id="expressions"),
    pytest.param("a = 1   \n\n   \nb = 2\t\n", "a = 1\n\n\nb = 2\n", id="trailing-spaces"),
    pytest.param("a\t=\t1\r\nbb = 2\r\n", "a  = 1\r\nbb = 2\r\n", id="tabs-crlf"),
]


@pytest.mark.parametrize(("src", "want"), GOLDEN)
def test_golden(src: str, want: str) -> None:
    assert format_hcl(src) == want
    assert format_hcl(want) == want  # idempotent
    if "EOF  " not in src:
        assert _meaning(want) == _meaning(src)


def test_tokens_give_back_the_text() -> None:
    src = 'a = "x ${b} y"\nc = <<EOF\nl ${d}\nEOF\n# c\n'
    assert "".join(" " * t.spaces + t.text for t in tokenize(src)) == src


@functools.cache
def _job_texts() -> tuple[str, ...]:
    """Every job file in the repository, and every job text the tests hold."""
    texts = [p.read_text() for p in REPO.rglob("*") if p.suffix in (".nomad", ".hcl")
             and ".venv" not in p.parts and ".git" not in p.parts and p.is_file()]
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "job" in node.value \
                    and "{" in node.value and "\n" in node.value:
                texts.append(node.value)
    return tuple(texts)


def test_repository_jobs_keep_their_meaning() -> None:
    checked = 0
    for text in _job_texts():
        try:
            before = parse_hcl_job(text)
        except Exception:  # not a job file (or one the tests expect to be refused)
            continue
        out = format_hcl(text)
        assert parse_hcl_job(out) == before, text
        assert format_hcl(out) == out, text
        checked += 1
    assert checked >= 10


def _scramble(text: str, rng: random.Random) -> str:
    """*text* with its indentation and the spaces between tokens changed at random (never inside strings,
    heredocs or comments, never joining two tokens)."""
    tokens = tokenize(text)
    prev = None
    for t in tokens:
        line_start = prev is None or _is_newline(prev)
        if t.kind not in (CHEREDOC, EOF, NEWLINE) and (line_start or t.spaces > 0):
            t.spaces = rng.choice([0, 1, 3, 7]) if line_start else t.spaces + rng.choice([0, 1, 4])
        prev = t
    return "".join(" " * t.spaces + t.text for t in tokens)


def test_scrambled_canonical_text_formats_back() -> None:
    """Re-indented and re-spaced, canonical text formats back to itself. (The 369 .nomad/.hcl files of
    Nomad's repository that hclsyntax parses and that are canonical pass this too, checked once by hand.)"""
    rng = random.Random(7)
    checked = 0
    for text in _job_texts():
        canonical = format_hcl(text)
        if any(t.kind == "Invalid" for t in tokenize(text)):
            continue
        for _ in range(3):
            assert format_hcl(_scramble(canonical, rng)) == canonical
        checked += 1
    assert checked >= 10


# ---------------------------------------------------------------- hypothesis: idempotent, meaning kept

_IDENT = st.sampled_from(["a", "bb", "name", "long_name", "x-y", "c_d"])
_VALUE = st.one_of(
    st.integers(-5, 500).map(str),
    st.sampled_from(['"s"', '"a = { # b"', '"${x}"', '""', "true", '"// not"']),
    st.lists(st.sampled_from(["1", '"v"', "-2"]), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.sampled_from(["<<EOF\n  x = ${y}  \n {\nEOF", "<<-EOT\n    a\n   EOT", "[\n1,\n    2\n]",
                     '{\na = 1\n     bb = "x"\n}', "1 +   2*3", 'upper( "a" )']),
)
_SP = st.sampled_from(["", " ", "   ", "\t"])


@st.composite
def _body(draw: st.DrawFn, depth: int = 0) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["attr", "attr", "blank", "comment", "block"] if depth < 2 else
                                    ["attr", "blank", "comment"]))
        lead = draw(_SP)
        if kind == "attr":
            tail = draw(st.sampled_from(["", " # c", " // d"]))
            lines.append(f"{lead}{draw(_IDENT)}{draw(_SP)}={draw(_SP)}{draw(_VALUE)}{tail}")
        elif kind == "blank":
            lines.append(draw(_SP))
        elif kind == "comment":
            lines.append(lead + draw(st.sampled_from(["# note", "// x = 1", "/* y */"])))
        else:
            label = draw(st.sampled_from(["", ' "l"']))
            lines.append(f"{lead}{draw(_IDENT)}{label}{draw(_SP)}{{")
            lines.append(draw(_body(depth + 1)))
            lines.append(draw(_SP) + "}")
    return "\n".join(x for x in lines if x is not None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_body())
def test_formatting_is_idempotent_and_keeps_meaning(src: str) -> None:
    src += "\n"
    try:
        before = _meaning(src)
    except Exception:
        return  # e.g. an attribute set twice
    out = format_hcl(src)
    assert format_hcl(out) == out
    assert _meaning(out) == before
    if "<<" not in src:  # a heredoc's lines are kept as they are, trailing spaces too
        assert all(line == line.rstrip(" ") for line in out.split("\n"))


# ---------------------------------------------------------------- the command


def _run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fmt_command(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


UGLY = "client   {enabled = true}"
PRETTY = "client { enabled = true }"


def test_file_is_rewritten_and_listed(tmp_path: Path) -> None:
    f = tmp_path / "nomad.hcl"
    f.write_text(UGLY)
    assert _run([str(f)]) == (0, f"{f}\n", "")
    assert f.read_text() == PRETTY
    assert _run([str(f)]) == (0, "", "")  # already canonical: nothing listed


def test_check_exit_codes(tmp_path: Path) -> None:
    f = tmp_path / "job.nomad"
    f.write_text(UGLY)
    assert _run(["-check", str(f)]) == (1, f"{f}\n", "")
    assert f.read_text() == UGLY  # -check overrides -write
    f.write_text(PRETTY)
    assert _run(["-check", str(f)]) == (0, "", "")


def test_list_false_and_write_false_print_the_result(tmp_path: Path) -> None:
    f = tmp_path / "a.nomad.hcl"
    f.write_text(UGLY)
    assert _run(["-list=false", str(f)]) == (0, "", "")
    assert f.read_text() == PRETTY
    f.write_text(UGLY)
    assert _run(["-write=false", str(f)]) == (0, f"{f}\n", "")
    assert f.read_text() == UGLY
    assert _run(["-write=false", "-list=false", str(f)]) == (0, PRETTY, "")


def test_stdin() -> None:
    assert _run(["-"], UGLY) == (0, PRETTY, "")
    assert _run(["-check", "-"], UGLY) == (1, PRETTY, "")
    assert _run(["-check", "-"], PRETTY) == (0, PRETTY, "")


def test_directory_and_recursive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.nomad", "a.hcl", "sub/c.nomad.hcl", "skip.txt"):
        (tmp_path / name).write_text(UGLY)
    code, out, _ = _run([str(tmp_path)])
    assert (code, out) == (0, f"{tmp_path / 'a.hcl'}\n{tmp_path / 'b.nomad'}\n")
    assert (tmp_path / "sub/c.nomad.hcl").read_text() == UGLY
    assert (tmp_path / "skip.txt").read_text() == UGLY
    assert _run(["-recursive", str(tmp_path)]) == (0, f"{tmp_path / 'sub' / 'c.nomad.hcl'}\n", "")
    assert (tmp_path / "sub/c.nomad.hcl").read_text() == PRETTY
    (tmp_path / "d.hcl").write_text(UGLY)
    monkeypatch.chdir(tmp_path)
    assert _run(["-check"]) == (1, "d.hcl\n", "")  # no path: the current directory


def test_file_that_does_not_parse_is_left_alone(tmp_path: Path) -> None:
    f = tmp_path / "bad.hcl"
    f.write_text("client {enabled true }\n")
    good = tmp_path / "good.hcl"
    good.write_text(UGLY)
    code, out, err = _run([str(f), str(good)])
    assert code == 1
    assert out == f"{good}\n"  # the others are still formatted
    assert err.startswith(f"Error: Invalid HCL syntax\n\n  on {f} line 1:\n"
                          "    1: client {enabled true }\n\n")
    assert f.read_text() == "client {enabled true }\n"
    code, out, err = _run(["-"], "client {enabled true }")
    assert (code, out) == (1, "") and "Error:" in err


def test_missing_file_and_wrong_extension(tmp_path: Path) -> None:
    code, _, err = _run(["file/does/not/exist.hcl"])
    assert code == 1 and "No file or directory at file/does/not/exist.hcl" in err
    assert "For additional help try 'nomad fmt -help'" in err
    txt = tmp_path / "x.txt"
    txt.write_text(UGLY)
    code, _, err = _run([str(txt)])
    assert code == 1 and "Only .nomad and .hcl files can be processed using nomad fmt" in err


def test_registered_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "j.nomad"
    f.write_text(UGLY)
    assert cli.main(["fmt", "-check", str(f)]) == 1
    assert capsys.readouterr().out == f"{f}\n"
    assert cli.main(["fmt", "-bogus"]) == 1
    assert "flag provided but not defined: -bogus" in capsys.readouterr().err
    assert os.path.exists(f)
