"""Go's durations, as Nomad's configuration, API and CLI read and print them.

Kept apart from :mod:`runtime.config` (which re-exports both) so the CLI can
read a ``-deadline 1h`` without importing the agent's whole configuration schema.
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
          "s": 1.0, "m": 60.0, "h": 3600.0}
_TERM = r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)"  # ASCII digits, as Go: \d takes any Unicode digit
_DURATION = re.compile(rf"([-+]?)((?:{_TERM})+)")
_MAX_DURATION_S = (2**63 - 1) / 1e9  # Go's maximum time.Duration


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds: ``"1h30m"`` -> 5400.0."""
    if text in ("0", "+0", "-0"):
        return 0.0
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid duration "{text}" (use e.g. "10s", "5m", "1h30m", "500ms")')
    total = sum(float(num) * _UNITS[unit] for num, unit in re.findall(_TERM, match[2]))
    if total > _MAX_DURATION_S:  # Go: a Duration is int64 nanoseconds; ParseDuration refuses overflow
        raise ValueError(f'invalid duration "{text}" (longer than a Go duration holds, about 292 years)')
    return -total if match[1] == "-" else total


def format_duration(seconds: float) -> str:
    """A Go-style duration string for messages: 5400 -> ``"1h30m"``."""
    if seconds == 0:
        return "0s"
    sign, rest = ("-" if seconds < 0 else ""), abs(seconds)
    if rest < 1:
        for unit, size in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
            if rest >= size or unit == "ns":
                return f"{sign}{rest / size:g}{unit}"
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{int(hours)}h" if hours else "", f"{int(minutes)}m" if minutes else ""]
    parts.append(f"{secs:g}s" if secs else "")
    return sign + "".join(parts)
