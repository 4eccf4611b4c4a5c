"""Cron schedules for periodic jobs (Nomad's ``periodic { cron = "..." }``, gorhill/cronexpr).

Five fields -- minute, hour, day of month, month, day of week -- each ``*``,
a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of
those; months and weekdays also by name (``jan``, ``mon``); day of week 7 is
Sunday as 0 is.  As in cron, when both day fields are restricted a day
matching either runs.  Macros: ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``), ``@hourly``.  Times are computed in
the job's ``time_zone`` (an IANA name; UTC by default).  Pure: no clock is
read here, the caller passes the times.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
SEARCH_YEARS = 5  # a schedule with no time in this many years (Feb 30) is refused, not searched forever


class CronError(ValueError):
    """The expression does not parse, or never fires."""


def _field(text: str, lo: int, hi: int, names: dict[str, int], what: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not _is_number(step_s) or int(step_s) == 0:
                raise CronError(f"{what}: bad step {step_s!r}")
            step = int(step_s)
        if base == "*":
            first, last = lo, hi
        else:
            a, dash, b = base.partition("-")
            first, last = _value(a, names, what), _value(b, names, what) if dash else None
            if last is None:
                last = hi if step_s else first
        if not (lo <= first <= hi and lo <= last <= hi) or first > last:
            raise CronError(f"{what}: {part!r} is outside {lo}-{hi}")
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _value(text: str, names: dict[str, int], what: str) -> int:
    if text in names:
        return names[text]
    if not _is_number(text):
        raise CronError(f"{what}: {text!r} is not a number")
    return int(text)


def _is_number(text: str) -> bool:
    """ASCII digits: str.isdigit alone also takes "²", which int() refuses."""
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *
    zone: ZoneInfo

    def _day_ok(self, d: dt.date) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, t: float) -> float:
        """The first time strictly after *t* (Unix seconds) the schedule fires.

        Day by day in the schedule's zone, every wall time of a matching day
        is turned into an instant -- twice for the hour a fall-back repeats
        (fold 0 and 1), never for one a spring-forward skips -- and the
        earliest instant after *t* wins, so the answer never goes back in time.
        """
        day = dt.datetime.fromtimestamp(t, self.zone).date() - dt.timedelta(days=1)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for _ in range(366 * SEARCH_YEARS):
            if self._day_ok(day):
                best = None
                for hour in hours:
                    for minute in minutes:
                        at = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
                        for x in (at.replace(fold=0).timestamp(), at.replace(fold=1).timestamp()):
                            if x > t and (best is None or x < best) and _wall(x, self.zone) == (day, hour, minute):
                                best = x
                if best is not None:
                    return best
            day += dt.timedelta(days=1)
        raise CronError(f"the schedule has no time in the next {SEARCH_YEARS} years")


def _wall(ts: float, zone: ZoneInfo) -> tuple[dt.date, int, int]:
    local = dt.datetime.fromtimestamp(ts, zone)
    return local.date(), local.hour, local.minute


def parse_cron(spec: str, time_zone: str = "UTC") -> Cron:
    text = MACROS.get(spec.strip().lower(), spec.strip())
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"{spec!r}: want five fields (minute hour day-of-month month day-of-week) or a macro")
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {time_zone!r}") from None
    weekdays = frozenset(0 if d == 7 else d for d in _field(fields[4], 0, 7, _DAYS, "day of week"))
    cron = Cron(minutes=_field(fields[0], 0, 59, {}, "minute"), hours=_field(fields[1], 0, 23, {}, "hour"),
                days=_field(fields[2], 1, 31, {}, "day of month"), months=_field(fields[3], 1, 12, _MONTHS, "month"),
                weekdays=weekdays, any_day=fields[2] == "*", any_weekday=fields[4] == "*", zone=zone)
    cron.next_after(0.0)  # one that never fires (Feb 30) is refused here
    return cron


def periodic_specs(periodic: dict[str, Any]) -> list[str]:
    """A job's ``Periodic`` schedules: its ``Spec`` (``cron``), or else its ``Specs`` (``crons``)."""
    return [periodic["Spec"]] if periodic.get("Spec") else [str(s) for s in periodic.get("Specs") or ()]


def next_launch(periodic: dict[str, Any], after: float) -> float:
    """The first time strictly after *after* any of a job's schedules fires (Nomad's PeriodicConfig.Next:
    the earliest of its crons).  CronError when it has none, or one is bad."""
    specs = periodic_specs(periodic)
    if not specs:
        raise CronError("the periodic block has no cron spec")
    zone = periodic.get("TimeZone", "UTC")
    return min(parse_cron(spec, zone).next_after(after) for spec in specs)
