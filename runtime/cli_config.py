"""``nomad config validate``: check agent configuration files without starting an agent.

As Nomad's ``config validate``: every path (a file, or a directory of ``*.hcl``, ``*.json`` and ``*.toml``
files) is loaded as ``nomad-agent -config`` loads it and merged in order over
the defaults; load errors are all reported (go-multierror's shape), then the
merged configuration goes through the agent's own validation, whose warnings
are printed as the agent prints them. Exit 0 and "Configuration is valid!", or
1. No server is asked and no token is needed.
"""
from __future__ import annotations

import sys
from typing import Any

USAGE = "Usage: nomad config validate <config_path> [<config_path...>]"


def _multierror(errors: list[str]) -> str:
    """go-multierror's text: a count line, then one tab-indented bullet per error."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "\n" + "".join(f"\t* {e}\n" for e in errors)


def config_validate(addr: str, args: list[str]) -> tuple[str, int]:
    # The agent's configuration schema, imported only for this command: every other one starts faster.
    from runtime.config import Config, ConfigError, build_overlay, load_overlays, merge_overlays, validate

    del addr  # a local check: no agent is asked
    if any(a.startswith("-") for a in args):
        flag = next(a for a in args if a.startswith("-"))
        print(f"flag provided but not defined: {flag.split('=')[0]}\n{USAGE}", file=sys.stderr)
        return "", 1
    if not args:
        print("Must specify at least one config file or directory", file=sys.stderr)
        return "", 1
    overlay: dict[str, Any] = {}
    errors: list[str] = []
    for path in args:
        try:
            fragment, _loaded, warnings = load_overlays([path])
        except ConfigError as e:
            text = str(e)
            if not text.startswith("Error loading configuration"):
                text = f"Error loading configuration from {path}: {text}"
            errors.append(text)
            continue
        for w in warnings:  # "No configuration loaded from <path>"
            print(w, file=sys.stderr)
        overlay = merge_overlays(Config, overlay, fragment)
    if errors:
        print(_multierror(errors), file=sys.stderr)
        return "", 1
    try:
        cfg = build_overlay(Config, overlay)
        warnings = validate(cfg)
    except ConfigError as e:
        print(f"{e}\nConfiguration is invalid", file=sys.stderr)
        return "", 1
    for w in warnings:
        print(w, file=sys.stderr)
    return "Configuration is valid!", 0


CONFIG_COMMANDS = {("config", "validate"): config_validate}
