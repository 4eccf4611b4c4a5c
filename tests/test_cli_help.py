"""``nomad <command> -h`` and group help (runtime/cli_help.py), as Nomad's CLI: no agent needed."""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import pytest

from runtime import cli, cli_help, cli_jobs

COMMANDS = {w: h for w, h in cli.COMMANDS.items() if not w[0].startswith("-")}  # -version: a flag
FLAG = re.compile(r"(?<![\w-])-([A-Za-z][\w-]*)")  # a flag's name in an option's head ("-n <lines>")
GROUP_PATHS = sorted({w[:i] for w in COMMANDS for i in range(1, len(w))})


def _listed_flags(words: tuple[str, ...]) -> set[str]:
    """The flag names a command's help lists under its own options."""
    return {m for head, _ in cli_help.HELP[words].options for m in FLAG.findall(head)}


class _Probe(Exception):
    pass


@pytest.fixture(scope="module")
def specs() -> dict[tuple[str, ...], dict[str, type] | None]:
    """Each handler's flag spec, as it hands it to parse_flags (None: it parses its flags itself).

    parse_flags is replaced by a recorder that stops the handler there, and the network by an error,
    so no handler gets further than reading its flags."""
    mp = pytest.MonkeyPatch()
    seen: dict[tuple[str, ...], dict[str, type] | None] = {}
    current: list[tuple[str, ...]] = [()]

    def record(args: list[str], spec: dict[str, type]) -> Any:
        seen.setdefault(current[0], dict(spec))
        raise _Probe

    def no_network(*a: Any, **k: Any) -> Any:
        raise _Probe

    real = cli_jobs.parse_flags
    for name, mod in list(sys.modules.items()):
        if name.startswith("runtime.cli"):
            if getattr(mod, "parse_flags", None) is real:
                mp.setattr(mod, "parse_flags", record)
            for fn in ("call", "request", "_request"):
                if hasattr(mod, fn):
                    mp.setattr(mod, fn, no_network)
    mp.setattr("urllib.request.urlopen", no_network)
    try:
        for words, handler in COMMANDS.items():
            current[0] = words
            try:
                handler("http://127.0.0.1:9", ["-zz-probe"])
            except (_Probe, cli.CliError):
                pass
            seen.setdefault(words, None)
    finally:
        mp.undo()
    return seen


def test_every_command_and_group_has_help() -> None:
    missing = [" ".join(w) for w in COMMANDS if w not in cli_help.HELP]
    assert not missing, f"commands without help in runtime/cli_help.py: {missing}"
    groups = [" ".join(g) for g in GROUP_PATHS if g not in cli_help.HELP and g not in cli_help.GROUPS]
    assert not groups, f"command groups without a description in runtime/cli_help.py: {groups}"
    stale = [" ".join(w) for w in [*cli_help.HELP, *cli_help.GROUPS]
             if w not in COMMANDS and w not in GROUP_PATHS]
    assert not stale, f"help for commands that do not exist: {stale}"
    for words, h in cli_help.HELP.items():
        assert h.synopsis and "\n" not in h.synopsis and h.description, words


# Flags a handler accepts that its help leaves out on purpose.
UNLISTED = {
    ("namespace", "inspect"): {"json"},  # its output is JSON already; -json is what main turns -t into
    ("job", "init"): {"json", "t"},  # its -json is parsed only to be refused with a clear message
    ("node", "pool", "apply"): {"t"},  # its -json is the format of the file it reads
    ("monitor",): {"t"},  # it streams until interrupted: nothing for a template to format
}


def test_listed_flags_are_the_ones_the_handler_parses(specs: dict[tuple[str, ...], Any],
                                                      tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a handler that gets past its flags (tls cert create) writes here
    problems: list[str] = []
    for words, handler in COMMANDS.items():
        if words not in cli_help.HELP:
            continue  # test_every_command_and_group_has_help names it
        listed = _listed_flags(words)
        spec = specs[words]
        if spec is not None:
            accepted = set(spec)
            if "json" in accepted and words not in cli.NOT_TEMPLATE_T:
                accepted.add("t")  # main's -t: a Go template over the -json output
            if listed - accepted:
                problems.append(f"nomad {' '.join(words)} -h lists flags it refuses: {listed - accepted}")
            if accepted - listed - UNLISTED.get(words, set()):
                problems.append(f"nomad {' '.join(words)} -h leaves out flags it accepts: "
                                f"{accepted - listed - UNLISTED.get(words, set())}")
            continue
        # A handler with its own parser: the flag is in its module's source, and passing it is not refused.
        source = inspect.getsource(inspect.getmodule(handler))
        for head, _ in cli_help.HELP[words].options:
            for name in FLAG.findall(head):
                if name == "t":
                    name = "json"  # main's -t needs the handler's -json
                if f'"-{name}' not in source and f'"{name}"' not in source:
                    problems.append(f"nomad {' '.join(words)} -h lists -{name}, not in its module")
                arg = f"-{name}=x" if "<" in head else f"-{name}"
                try:
                    handler("http://127.0.0.1:9", [arg])
                except cli.CliError as e:
                    if re.search(r"not defined|unknown|unexpected argument", str(e)):
                        problems.append(f"nomad {' '.join(words)} refuses {arg}: {e}")
                except Exception:  # got past its flags (no agent here): accepted
                    pass
    assert not problems, "\n".join(problems)


def test_dash_h_prints_the_commands_help_on_stdout_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    for words in COMMANDS:
        for flag in ("-h", "-help", "--help"):
            assert cli.main([*words, flag]) == 0, words
            out, err = capsys.readouterr()
            assert out.startswith(f"Usage: nomad {' '.join(words)}") and err == "", words
    assert cli.main(["node", "drain", "-enable", "-h", "abc"]) == 0  # anywhere in its arguments
    out = capsys.readouterr().out
    assert "General Options:" in out and "Node Drain Options:" in out and "  -deadline <duration>" in out
    assert cli.main(["run", "-h"]) == 0  # a shorthand: its command's help
    assert capsys.readouterr().out.startswith("Usage: nomad job run [options] <path>")


def test_help_flag_after_double_dash_belongs_to_the_command(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    got = []
    monkeypatch.setitem(cli.COMMANDS, ("brand-new",), lambda addr, args: "")  # no help written yet
    assert cli.main(["brand-new", "-h"]) == 0 and capsys.readouterr().out.startswith("Usage: nomad brand-new")
    monkeypatch.setitem(cli.COMMANDS, ("alloc", "exec"), lambda addr, args: got.append(args) or "ran")
    assert cli.main(["alloc", "exec", "abc", "--", "sh", "-h"]) == 0
    assert got == [["abc", "--", "sh", "-h"]] and capsys.readouterr().out == "ran\n"


def test_a_group_alone_lists_exactly_its_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    for group in GROUP_PATHS:
        want = sorted({w[len(group)] for w in COMMANDS if len(w) > len(group) and w[: len(group)] == group})
        code = cli.main(list(group))
        out, err = capsys.readouterr()
        if group in COMMANDS:  # also a command itself (nomad status): -h shows both
            assert cli.main([*group, "-h"]) == 0
            out = capsys.readouterr().out
        else:
            assert code == 1 and err == "", group
            assert out.startswith(f"Usage: nomad {' '.join(group)} <subcommand> [options] [args]"), group
        listed = [line.split()[0] for line in out.split("Subcommands:\n", 1)[1].splitlines()]
        assert listed == want, group
    assert cli.main(["alloc", "bogus"]) == 1  # not a subcommand: the group's help
    assert "Subcommands:\n    checks" in capsys.readouterr().out
    assert cli.main(["alloc", "-h"]) == 0
    assert capsys.readouterr().out.startswith("Usage: nomad alloc <subcommand>")


def test_top_level_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, code in (([], 127), (["bogus"], 127), (["-h"], 0), (["--help"], 0)):
        assert cli.main(argv) == code, argv
        out, err = capsys.readouterr()
        assert err == "" and out.startswith("Usage: nomad [-version] [-help] <command> [args]")
        common, other = out.split("Common commands:\n", 1)[1].split("\n\nOther commands:\n")
        assert [line.split()[0] for line in common.splitlines()] == list(cli_help.COMMON_COMMANDS)
        names = [line.split()[0] for line in other.splitlines()]
        assert names == sorted(names) and {"acl", "operator", "var", "agent-info"} <= set(names)
        assert "    agent       Run a Nomad agent" in common
        assert "alloc-status" not in names and "-version" not in names and "logs" not in names
    assert cli.main(["-version"]) == 0 and capsys.readouterr().out.startswith("Nomad v")


def test_a_flag_before_the_command_is_refused_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-verbose", "job", "status"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Invalid flags before the subcommand.") and "Usage: nomad job status" in out


def test_a_reader_that_goes_away_ends_the_cli_quietly():
    """``nomad -h | head -1``: the pipe closes under the CLI; no traceback, the exit code a SIGPIPE gives."""
    import os
    import subprocess
    from pathlib import Path

    read, write = os.pipe()
    os.close(read)  # nobody will read: the first write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "bin" / "nomad"), "-h"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""
