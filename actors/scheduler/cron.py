"""Cron schedules for periodic jobs (Nomad's ``periodic { cron = "..." }``, hashicorp/cronexpr).

As cronexpr: five to seven fields -- an optional second, then minute, hour,
day of month, month, day of week, and an optional year (five fields: second
0 and any year; six: the sixth is the year; seven: the first is the second;
fields beyond the seventh are ignored).  Each field is a comma list of ``*``
(or ``?``), a number, a range ``a-b``, or a step ``*/n``, ``a/n``,
``a-b/n``; months and weekdays also by name (``jan``, ``january``, ``mon``,
``monday``); day of week 7 is Sunday as 0 is.  Day of month also takes
``L`` (its last day), ``LW`` (its last weekday) and ``15W`` (the weekday
nearest the 15th, within the month); day of week ``5L`` (the month's last
Friday) and ``5#2`` (its second Friday).  As in cron, when both day fields
are restricted a day matching either runs.  Macros: ``@yearly``
(``@annually``), ``@monthly``, ``@weekly``, ``@daily``, ``@hourly``.  Times
are computed in the job's ``time_zone`` (an IANA name; UTC by default).
Pure: no clock is read here, the caller passes the times.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# cronexpr's cronNormalizer: a plain (case-sensitive) replacement by seven fields.
MACROS = {"@yearly": "0 0 0 1 1 * *", "@annually": "0 0 0 1 1 * *", "@monthly": "0 0 0 1 * * *",
          "@weekly": "0 0 0 * * 0 *", "@daily": "0 0 0 * * * *", "@hourly": "0 0 * * * * *"}
_MONTHS = {name: i + 1 for i, names in enumerate(
    "jan,january feb,february mar,march apr,april may jun,june jul,july aug,august sep,september "
    "oct,october nov,november dec,december".split()) for name in names.split(",")}
_DAYS = {name: i for i, names in enumerate(
    "sun,sunday mon,monday tue,tuesday wed,wednesday thu,thursday fri,friday sat,saturday".split())
    for name in names.split(",")}
# The largest gap between two wall times one instant apart: no zone's offset changes by this much at
# once, so a wall time this far before another is an earlier instant too.
_ZONE_JUMP_MINUTES = 180


class CronError(ValueError):
    """The expression does not parse, or never fires."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int]


_SECOND, _MINUTE, _HOUR = _Field("second", 0, 59, {}), _Field("minute", 0, 59, {}), _Field("hour", 0, 23, {})
_DOM, _MONTH = _Field("day-of-month", 1, 31, {}), _Field("month", 1, 12, _MONTHS)
_DOW, _YEAR = _Field("day-of-week", 0, 7, _DAYS), _Field("year", 1970, 2099, {})


def _value(text: str, f: _Field) -> int | None:
    """A number in the field's range (cronexpr's value patterns: "05" is 5, "005" is not) or a name."""
    if text in f.names:
        return f.names[text]
    if not (text.isascii() and text.isdigit()) or len(text) > (4 if f is _YEAR else 2):
        return None
    n = int(text)
    return n if f.lo <= n <= f.hi else None


def _directive(text: str, f: _Field) -> tuple[int, int, int] | None:
    """One comma entry as (first, last, step); None when it is none of cronexpr's generic layouts."""
    base, slash, step_s = text.partition("/")
    step = 1
    if slash:
        if not (step_s.isascii() and step_s.isdigit()):
            return None
        step = int(step_s)
        hi = 6 if f is _DOW else f.hi
        if not 1 <= step <= hi:
            raise CronError(f"invalid interval {text}")
    if base in ("*", "?"):
        return f.lo, 6 if f is _DOW else f.hi, step
    a, dash, b = base.partition("-")
    first = _value(a, f)
    last = _value(b, f) if dash else (f.hi if slash else first)
    if first is None or last is None:
        return None
    if f is _DOW:  # 7 is Sunday, but a span ending in it (or an open one, "1/2") ends on Saturday
        first, last = first % 7, 6 if (dash and last % 7 == 0) or (slash and not dash) else last % 7
    if first > last:
        raise CronError(f"{f.name} field: {text!r} is an empty range")
    return first, last, step


def _field(text: str, f: _Field, extra: Any = None) -> tuple[frozenset[int], bool]:
    """The field's values, and whether it is restricted (not a plain ``*``); *extra* takes what the
    generic layouts do not (day of month's ``L``/``W``, day of week's ``L``/``#``)."""
    out: set[int] = set()
    restricted = True
    for entry in text.lower().split(","):
        if not entry:
            continue
        d = _directive(entry, f)
        if d is None:
            if extra is None or not extra(entry):
                raise CronError(f"syntax error in {f.name} field: '{entry}'")
            continue
        if entry in ("*", "?"):
            restricted = False
        out.update(range(d[0], d[1] + 1, d[2]))
    return frozenset(out), restricted


@dataclass(frozen=True, slots=True)
class Cron:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    years: frozenset[int]
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *
    last_day: bool  # L
    last_workday: bool  # LW
    workdays: frozenset[int]  # 15W
    nth_weekdays: frozenset[tuple[int, int]]  # 5#2: (weekday, n)
    last_weekdays: frozenset[int]  # 5L
    zone: ZoneInfo

    def days_of(self, year: int, month: int) -> set[int]:
        """cronexpr's calculateActualDaysOfMonth: the month's days the schedule runs on."""
        first_wd, last = calendar.monthrange(year, month)
        first_wd = (first_wd + 1) % 7  # Monday=0 -> Sunday=0
        if self.any_day and self.any_weekday:
            return set(range(1, last + 1))
        out: set[int] = set()
        if not self.any_day:
            out.update(d for d in self.days if d <= last)
            if self.last_day:
                out.add(last)
            if self.last_workday:
                out.add(_workday(year, month, last, last))
            out.update(_workday(year, month, d, last) for d in self.workdays if d <= last)
        if not self.any_weekday:
            out.update(d for d in range(1, last + 1) if (first_wd + d - 1) % 7 in self.weekdays)
            for wd, n in self.nth_weekdays:
                d = 1 + (wd - first_wd) % 7 + 7 * (n - 1)
                if d <= last:
                    out.add(d)
            for wd in self.last_weekdays:
                out.add(last - (((first_wd + last - 1) % 7) - wd) % 7)
        return out

    def next_after(self, t: float) -> float:
        """The first time strictly after *t* (Unix seconds) the schedule fires.

        Day by day in the schedule's zone (only the days its years, months
        and day fields allow), every wall time of a matching day is turned
        into an instant -- twice for the hour a fall-back repeats (fold 0 and
        1), never for one a spring-forward skips -- and the earliest instant
        after *t* wins, so the answer never goes back in time.  CronError when
        there is none (its years have passed).
        """
        local = dt.datetime.fromtimestamp(t, self.zone)
        start = local.date() - dt.timedelta(days=1)
        now_key = local.toordinal() * 1440 + local.hour * 60 + local.minute
        for year in sorted(y for y in self.years if y >= start.year):
            for month in sorted(self.months):
                if (year, month) < (start.year, start.month):
                    continue
                for day in sorted(self.days_of(year, month)):
                    date = dt.date(year, month, day)
                    if date >= start:
                        best = self._first_in_day(date, t, now_key)
                        if best is not None:
                            return best
        raise CronError("the schedule has no next launch")

    def _first_in_day(self, day: dt.date, t: float, now_key: int) -> float | None:
        """The day's first time after *t*; *now_key* is *t*'s wall minute (ordinal * 1440 + minutes)."""
        if (day.toordinal() + 1) * 1440 <= now_key - _ZONE_JUMP_MINUTES:
            return None  # the whole day is before *t*
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        steady = midnight.utcoffset() == (midnight + dt.timedelta(days=1)).utcoffset()
        # On a day the offset does not change, wall order is instant order: minutes before *t*'s are past.
        floor = now_key if steady else now_key - _ZONE_JUMP_MINUTES
        best: float | None = None
        best_key = 0
        for hour in self.hours:
            if day.toordinal() * 1440 + hour * 60 + 59 < floor:
                continue
            for minute in self.minutes:
                key = day.toordinal() * 1440 + hour * 60 + minute
                if key < floor:
                    continue  # hours before *t* in any zone
                if best is not None and (steady or key > best_key + _ZONE_JUMP_MINUTES):
                    return best  # later wall times are later instants
                at = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
                for base in (at.replace(fold=0).timestamp(), at.replace(fold=1).timestamp()):
                    if _wall(base, self.zone) != (day, hour, minute):
                        continue  # a wall time a spring-forward skips
                    x = next((base + s for s in self.seconds if base + s > t), None)
                    if x is not None and (best is None or x < best):
                        best, best_key = x, key
        return best


def _workday(year: int, month: int, dom: int, last: int) -> int:
    """cronexpr's workdayOfMonth: a Saturday moves to Friday, a Sunday to Monday, within the month."""
    wd = dt.date(year, month, dom).isoweekday() % 7
    if wd == 6:
        return dom - 1 if dom > 1 else dom + 2
    if wd == 0:
        return dom + 1 if dom < last else dom - 2
    return dom


def _wall(ts: float, zone: ZoneInfo) -> tuple[dt.date, int, int]:
    local = dt.datetime.fromtimestamp(ts, zone)
    return local.date(), local.hour, local.minute


_LAST_DOW = re.compile(r"^(0?[0-7]|[a-z]+)l$")
_NTH_DOW = re.compile(r"^(0?[0-7]|[a-z]+)#([1-5])$")
_WORKDAY = re.compile(r"^(0?[1-9]|[12][0-9]|3[01])w$")


def _sorted(text: str, f: _Field) -> tuple[int, ...]:
    return tuple(sorted(_field(text, f)[0]))


def parse_cron(spec: str, time_zone: str = "UTC") -> Cron:
    text = spec
    for macro, fields7 in MACROS.items():
        text = text.replace(macro, fields7)
    fields = text.split()
    if len(fields) < 5:
        raise CronError("missing field(s)")
    fields = fields[:7]
    second = fields.pop(0) if len(fields) == 7 else "0"
    year = fields[5] if len(fields) == 6 else "*"
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {time_zone!r}") from None
    dom_extra: dict[str, Any] = {"last": False, "lastw": False, "w": set()}
    dow_extra: dict[str, set[Any]] = {"last": set(), "nth": set()}

    def dom_special(entry: str) -> bool:
        if entry in ("l", "lw"):
            dom_extra["last" if entry == "l" else "lastw"] = True
            return True
        m = _WORKDAY.match(entry)
        if m:
            dom_extra["w"].add(int(m.group(1)))
        return m is not None

    def dow_special(entry: str) -> bool:
        m = _LAST_DOW.match(entry) or _NTH_DOW.match(entry)
        wd = _value(m.group(1), _DOW) if m else None
        if m is None or wd is None:
            return False
        if m.re is _LAST_DOW:
            dow_extra["last"].add(wd % 7)
        else:
            dow_extra["nth"].add((wd % 7, int(m.group(2))))
        return True

    days, dom_restricted = _field(fields[2], _DOM, dom_special)
    weekdays, dow_restricted = _field(fields[4], _DOW, dow_special)
    cron = Cron(seconds=_sorted(second, _SECOND), minutes=_sorted(fields[0], _MINUTE),
                hours=_sorted(fields[1], _HOUR), days=days, months=_field(fields[3], _MONTH)[0],
                weekdays=frozenset(d % 7 for d in weekdays), years=_field(year, _YEAR)[0],
                any_day=not dom_restricted, any_weekday=not dow_restricted, last_day=dom_extra["last"],
                last_workday=dom_extra["lastw"], workdays=frozenset(dom_extra["w"]),
                nth_weekdays=frozenset(dow_extra["nth"]), last_weekdays=frozenset(dow_extra["last"]),
                zone=zone)
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
