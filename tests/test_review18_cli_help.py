"""Review 18: `-h` help (runtime/cli_help.py) for the commands merged alongside it."""

from __future__ import annotations

from runtime import cli, cli_help


def _options(words: tuple[str, ...]) -> list[str]:
    return [o[0] if isinstance(o, tuple) else o for o in cli_help.HELP[words].options]


def test_every_command_has_its_own_help():
    missing = [" ".join(w) for w in cli.COMMANDS if not w[0].startswith("-") and w not in cli_help.HELP]
    assert missing == []


def test_job_history_help_lists_the_diff_flags():
    opts = " ".join(_options(("job", "history")))
    assert "-diff-tag" in opts and "-diff-version" in opts


def test_job_revert_help_mentions_a_tag():
    assert "tag" in cli_help.HELP[("job", "revert")].usage
