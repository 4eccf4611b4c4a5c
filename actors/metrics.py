"""Metrics: go-metrics' in-memory sink, read by /v1/metrics, SIGUSR1 and Prometheus.

**Why a shared object and not an actor.**  Every method here runs to
completion without yielding -- no I/O, no locks, no sleeps -- so under gevent
no greenlet can ever see a half-made update, and the simulator is single
threaded anyway.  An update is then a dict write (about a microsecond)
rather than a tell and a context switch, and the HTTP greenlet reads it
without an ``ask``.  Each agent process (or simulated node) owns one
:class:`Metrics`; the agent hands it to the children that report.  Pure
protocol cores never take it: the actor hosting a core updates it from the
core's effects.

**Shape.**  As go-metrics' ``InmemSink`` configured the way Nomad configures
it (``setupTelemetry``): keys get the service prefix ``nomad``; every
metric gets a ``host`` label unless ``telemetry.disable_hostname``; values
aggregate into intervals of ``in_memory_collection_interval`` (10 s) kept
for ``in_memory_retention_period`` (1 m); an interval starts at wall time
truncated to the interval and is created lazily, on first use.
``/v1/metrics`` shows the newest *finished* interval (the current one if it
is the only one), ``DisplayMetrics``.  Prometheus counters and summaries are
cumulative since start, as the Prometheus sink keeps them.

The clock is injected: wall time in production, virtual time in the simulator.
"""

from __future__ import annotations

import datetime
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.actor import NodeActor
from runtime.env import Env

__all__ = ["AggregateSample", "Metrics", "RuntimeStats"]

Labels = tuple[tuple[str, str], ...]
# Metric names remembered by Metrics._name; past it the memory starts over.
_NAME_CACHE_MAX = 4096
# A Prometheus series not updated this long is dropped (go-metrics' prometheus
# sink default expiration): gauges are re-set every collection interval, so
# only the series of what is gone (an allocation, a label value) expire.
PROMETHEUS_EXPIRY_S = 60.0
# go-metrics' Prometheus sink makes each sample a client_golang Summary with
# these objectives over a window of this age (its SummaryOpts MaxAge): the
# quantiles describe the last 10 s, _sum and _count everything.
PROMETHEUS_QUANTILES = (0.5, 0.9, 0.99)
PROMETHEUS_SUMMARY_MAX_AGE_S = 10.0
# The observations a series keeps for its quantiles (the newest, within the
# window): a bound on memory and on the sort at each scrape when a series is
# sampled thousands of times in 10 s (Raft's, under load).
PROMETHEUS_SUMMARY_WINDOW_MAX = 2048
Key = str | Sequence[str]
# The label sets Metrics.set_gauges remembers the series names of: one per task group of every
# job (the leader's job summaries, each second), so tens of thousands of jobs are published
# without making their names again; past it the memory starts over.  A set costs about 200
# bytes beside its series (measured: 3.1 KB a task group with it, 2.9 without; it shares their
# names while they are kept, ~0.7 KB more for the seven names of a set whose series expired),
# so at most some 15-60 MB.
_GAUGE_SETS_MAX = 65536
# What Metrics.set_gauges remembers of a label set: the labels with the host's, and each key's
# series name (None where the prefix filter drops it).
_GaugeSet = tuple[tuple[tuple[str, str], ...], tuple[str | None, ...]]


@dataclass(slots=True)
class AggregateSample:
    """go-metrics ``AggregateSample``: a rolled-up view of a counter or sample."""

    count: int = 0
    rate: float = 0.0  # sum per second of the interval (go-metrics rateDenom)
    sum: float = 0.0
    sumsq: float = 0.0
    min: float = 0.0
    max: float = 0.0
    last_updated: float = 0.0  # wall seconds

    def ingest(self, value: float, rate_denom: float, now: float) -> None:
        self.count += 1
        self.sum += value
        self.sumsq += value * value
        if self.count == 1 or value < self.min:
            self.min = value
        if self.count == 1 or value > self.max:
            self.max = value
        self.rate = self.sum / rate_denom
        self.last_updated = now

    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def stddev(self) -> float:
        div = self.count * (self.count - 1)
        if div == 0:
            return 0.0
        return math.sqrt(max(0.0, (self.count * self.sumsq - self.sum * self.sum) / div))

    def go_string(self) -> str:
        """``AggregateSample.String()``, as the SIGUSR1 dump prints it."""
        if self.count == 0:
            return "Count: 0"
        when = go_time(self.last_updated, fraction=True)
        if self.stddev() == 0:
            return f"Count: {self.count} Sum: {self.sum:0.3f} LastUpdated: {when}"
        return (f"Count: {self.count} Min: {self.min:0.3f} Mean: {self.mean():0.3f} "
                f"Max: {self.max:0.3f} Stddev: {self.stddev():0.3f} Sum: {self.sum:0.3f} "
                f"LastUpdated: {when}")


@dataclass(slots=True)
class Interval:
    """One aggregation interval (go-metrics ``IntervalMetrics``)."""

    start: float  # wall seconds, a multiple of the interval length
    gauges: dict[str, tuple[str, float, Labels]] = field(default_factory=dict)
    counters: dict[str, tuple[str, Labels, AggregateSample]] = field(default_factory=dict)
    samples: dict[str, tuple[str, Labels, AggregateSample]] = field(default_factory=dict)


def go_time(t: float, *, fraction: bool = False) -> str:
    """Go's ``time.Time.String()`` in UTC: ``2026-11-26 09:30:00.5 +0000 UTC``."""
    d = datetime.datetime.fromtimestamp(t, datetime.UTC)
    text = d.strftime("%Y-%m-%d %H:%M:%S")
    if fraction and d.microsecond:
        text += f".{d.microsecond:06d}".rstrip("0")
    return text + " +0000 UTC"


def _go_number(v: float) -> float | int:
    """Go prints a float32 ``23.0`` as ``23`` in JSON; keep integers integral."""
    return int(v) if v.is_integer() and abs(v) < 1e15 else v


class Metrics:
    """The agent's metrics registry; see the module docstring for why it is shared."""

    def __init__(self, *, clock: Callable[[], float], interval_s: float = 10.0,
                 retain_s: float = 60.0, service: str = "nomad", hostname: str | None = None,
                 prefix_filter: Sequence[str] = (), filter_default: bool = True,
                 prometheus_expiry_s: float = PROMETHEUS_EXPIRY_S) -> None:
        if interval_s <= 0 or retain_s < interval_s:
            raise ValueError("metrics: need 0 < interval_s <= retain_s")
        self._clock = clock
        self._interval_s = interval_s
        self._max_intervals = max(1, int(retain_s // interval_s))
        self._service = service
        self._host: Labels = (("host", hostname),) if hostname else ()
        self._intervals: list[Interval] = []
        # Cumulative state for Prometheus: last gauge value, counter totals,
        # sample (count, sum).
        self._prom_gauges: dict[str, tuple[str, Labels, float]] = {}
        self._prom_counters: dict[str, tuple[str, Labels, float]] = {}
        self._prom_samples: dict[str, tuple[str, Labels, int, float]] = {}
        # Each sample series' recent observations (time, value), for its quantiles.
        self._prom_windows: dict[str, deque[tuple[float, float]]] = {}
        # When each Prometheus series was last updated: one not updated for
        # prometheus_expiry_s is dropped (a finished allocation's, a gone
        # node's), or the output and the memory would grow with every label
        # value ever seen.
        self._prom_seen: dict[str, float] = {}
        self._prom_expiry_s = prometheus_expiry_s
        # (key, labels) -> what _name makes of them: the Raft actor reports
        # a few samples per flush, and building the strings each time cost
        # more than the update itself.
        self._names: dict[tuple[Any, Labels], tuple[str, str, Labels]] = {}
        # labels -> (the labels with the host's, their part of a series' name): one label set is
        # often several series (the broker's three timers of an evaluation, per job).
        self._label_sets: dict[Labels, tuple[Labels, str]] = {}
        # (keys, labels) -> set_gauges' (labels with the host's, ((index, name, series name), ...)).
        self._gauge_sets: dict[tuple[tuple[Key, ...], Labels], _GaugeSet] = {}
        self._gauge_names: dict[tuple[Key, ...], tuple[str, ...]] = {}  # keys -> their names (set_gauges)
        # Other sinks told every update (statsd, DogStatsD: runtime.metrics_sinks),
        # as go-metrics' FanoutSink; each only buffers, its I/O is its own.
        self.sinks: list[Any] = []
        # telemetry.prefix_filter ("+nomad.raft" keeps, "-nomad.client" drops) and
        # filter_default (for a name no prefix matches), go-metrics' longest-prefix
        # rule on the full name; each name's verdict is remembered.
        self._filters = tuple(sorted(((f[1:], f[0] == "+") for f in prefix_filter), key=lambda p: -len(p[0])))
        self._filter_default = filter_default
        self._allowed: dict[str, bool] = {}

    # ------------------------------------------------------------ updates
    def set_gauge(self, key: Key, value: float, labels: Labels = ()) -> None:
        name, flat, labels = self._name(key, labels)
        if not self._allow(name):
            return
        self._current().gauges[flat] = (name, float(value), labels)
        self._prom_gauges[flat] = (name, labels, float(value))
        self._prom_seen[flat] = self._clock()
        for sink in self.sinks:
            sink.emit("gauge", name, value, labels)

    def set_gauges(self, keys: Sequence[Key], values: Sequence[float], labels: Labels = ()) -> None:
        """:meth:`set_gauge` of each key with its value, all with *labels*: as many calls, but each
        key's series name is made once per label set (remembered, see ``_GAUGE_SETS_MAX``), the
        interval and the clock read once, and an unchanged Prometheus value keeps its record.
        For the leader's job summaries (seven gauges per task group, every job, every second),
        whose label sets are more than the name cache holds."""
        ck = (keys if isinstance(keys, tuple) else tuple(keys), tuple(labels))
        try:
            made = self._gauge_sets.get(ck)
        except TypeError:  # a key given as a list
            ck = (tuple(k if isinstance(k, str) else tuple(k) for k in ck[0]), ck[1])
            made = self._gauge_sets.get(ck)
        if made is None:
            made = self._gauge_set(*ck)
        full, flats = made
        names = self._gauge_names[ck[0]]
        now, gauges, prom, seen = self._clock(), self._current().gauges, self._prom_gauges, self._prom_seen
        for name, flat, value in zip(names, flats, values, strict=True):
            if flat is None:  # the prefix filter drops it
                continue
            v = float(value)
            gauges[flat] = (name, v, full)
            old = prom.get(flat)
            if old is None or old[2] != v or old[1] is not full:
                prom[flat] = (name, full, v)
            seen[flat] = now
            for sink in self.sinks:
                sink.emit("gauge", name, value, full)

    def _gauge_set(self, keys: tuple[Key, ...], labels: Labels) -> _GaugeSet:
        """What set_gauges makes of (*keys*, *labels*): the labels with the host's, and each key's
        series name (None where the prefix filter drops it); the keys' names are kept apart, once."""
        names = self._gauge_names.get(keys)
        if names is None:
            names = self._gauge_names[keys] = tuple(self._name(key, ())[0] for key in keys)
        full = labels + self._host
        suffix = "".join(f";{k}={v}" for k, v in full).replace(" ", "_")
        flats = tuple(name + suffix if self._allow(name) else None for name in names)
        if len(self._gauge_sets) >= _GAUGE_SETS_MAX:
            self._gauge_sets.clear()  # more label sets than that: a bound, not a working set
        made = self._gauge_sets[(keys, labels)] = (full, flats)
        return made

    def incr_counter(self, key: Key, value: float = 1.0, labels: Labels = ()) -> None:
        name, flat, labels = self._name(key, labels)
        if not self._allow(name):
            return
        self._ingest(self._current().counters, name, flat, labels, float(value))
        _, _, total = self._prom_counters.get(flat, (name, labels, 0.0))
        self._prom_counters[flat] = (name, labels, total + value)
        self._prom_seen[flat] = self._clock()
        for sink in self.sinks:
            sink.emit("counter", name, value, labels)

    def add_sample(self, key: Key, value: float, labels: Labels = ()) -> None:
        # The clock is read once and the helpers inlined: every timer (Raft's, the FSM's per
        # command, the scheduler's per evaluation) comes through here.
        name, flat, labels = self._name(key, labels)
        if not self._allow(name):
            return
        now, v = self._clock(), float(value)
        table = self._current(now).samples
        entry = table.get(flat)
        if entry is None:
            entry = table[flat] = (name, labels, AggregateSample())
        entry[2].ingest(v, self._interval_s, now)
        prom = self._prom_samples.get(flat)
        self._prom_samples[flat] = (name, labels, 1, v) if prom is None else (name, labels, prom[2] + 1,
                                                                                prom[3] + v)
        self._prom_seen[flat] = now
        window = self._prom_windows.get(flat)
        if window is None:
            window = self._prom_windows[flat] = deque(maxlen=PROMETHEUS_SUMMARY_WINDOW_MAX)
        window.append((now, v))
        if window[0][0] < now - PROMETHEUS_SUMMARY_MAX_AGE_S:
            _trim_window(window, now)
        for sink in self.sinks:
            sink.emit("sample", name, value, labels)

    def _allow(self, name: str) -> bool:
        ok = self._allowed.get(name)
        if ok is None:
            matches = (keep for prefix, keep in self._filters if name.startswith(prefix))
            ok = next(matches, self._filter_default)
            if len(self._allowed) >= _NAME_CACHE_MAX:
                self._allowed.clear()
            self._allowed[name] = ok
        return ok

    def _ingest(self, table: dict, name: str, flat: str, labels: Labels, value: float) -> None:
        entry = table.get(flat)
        if entry is None:
            entry = table[flat] = (name, labels, AggregateSample())
        entry[2].ingest(value, self._interval_s, self._clock())

    def _name(self, key: Key, labels: Labels) -> tuple[str, str, Labels]:
        """(display name, unique key with labels, labels incl. host) as go-metrics makes them."""
        ck = (key if isinstance(key, str) else tuple(key), tuple(labels))
        made = self._names.get(ck)
        if made is None:
            if len(self._names) >= _NAME_CACHE_MAX:
                self._names.clear()  # labels with many values: a bound, not a working set
            made = self._names[ck] = self._make_name(key, labels)
        return made

    def _expire_prometheus(self) -> None:
        """Drop the Prometheus series not updated within the expiry (each new interval, and before output)."""
        cutoff = self._clock() - self._prom_expiry_s
        stale = [flat for flat, seen in self._prom_seen.items() if seen < cutoff]
        for flat in stale:
            del self._prom_seen[flat]
            self._prom_gauges.pop(flat, None)
            self._prom_counters.pop(flat, None)
            self._prom_samples.pop(flat, None)
            self._prom_windows.pop(flat, None)

    def _make_name(self, key: Key, labels: Labels) -> tuple[str, str, Labels]:
        parts = [key] if isinstance(key, str) else list(key)
        name = ".".join([self._service, *parts] if self._service else parts).replace(" ", "_")
        labels = tuple(labels)
        made = self._label_sets.get(labels)
        if made is None:
            if len(self._label_sets) >= _NAME_CACHE_MAX:
                self._label_sets.clear()  # as _names: a bound, not a working set
            full = labels + self._host
            made = self._label_sets[labels] = (full, "".join(f";{k}={v}" for k, v in full).replace(" ", "_"))
        return name, name + made[1], made[0]

    def _current(self, now: float | None = None) -> Interval:
        start = math.floor((self._clock() if now is None else now) / self._interval_s) * self._interval_s
        if self._intervals and self._intervals[-1].start == start:
            return self._intervals[-1]
        interval = Interval(start=start)
        self._intervals.append(interval)
        self._expire_prometheus()
        del self._intervals[:-self._max_intervals]
        return interval

    # ------------------------------------------------------------ reads
    def intervals(self) -> list[Interval]:
        """The retained intervals, oldest first; the last is still aggregating."""
        self._current()
        return list(self._intervals)

    def summary(self) -> dict[str, Any]:
        """``/v1/metrics`` JSON: go-metrics ``DisplayMetrics`` of one interval."""
        data = self.intervals()
        iv = data[-2] if len(data) > 1 else data[-1]

        def sampled(table: dict) -> list[dict[str, Any]]:
            return [{"Name": name, "Count": a.count, "Rate": a.rate, "Sum": a.sum, "Min": a.min,
                     "Max": a.max, "Mean": a.mean(), "Stddev": a.stddev(), "Labels": dict(labels)}
                    for _, (name, labels, a) in sorted(table.items())]

        return {
            "Timestamp": go_time(round(iv.start)),
            "Gauges": [{"Name": name, "Value": _go_number(value), "Labels": dict(labels)}
                       for _, (name, value, labels) in sorted(iv.gauges.items())],
            "Points": [],
            "Counters": sampled(iv.counters),
            "Samples": sampled(iv.samples),
        }

    def dump_text(self) -> str:
        """The SIGUSR1 dump (go-metrics ``InmemSignal.dumpStats``).

        go-metrics skips the interval still being aggregated, so for the first
        interval (10 s) after start it prints nothing, which looks like a lost
        signal; we print the current interval when it is the only one.
        """
        data = self.intervals()
        shown = data[:-1] if len(data) > 1 else data
        out: list[str] = []
        for iv in shown:
            when = go_time(iv.start)
            for _, (name, value, labels) in sorted(iv.gauges.items()):
                out.append(f"[{when}][G] '{_flatten(name, labels)}': {value:0.3f}")
            for kind, table in (("C", iv.counters), ("S", iv.samples)):
                for _, (name, labels, agg) in sorted(table.items()):
                    out.append(f"[{when}][{kind}] '{_flatten(name, labels)}': {agg.go_string()}")
        return "".join(line + "\n" for line in out)

    def prometheus_text(self) -> str:
        """Prometheus text exposition (format 0.0.4) of the cumulative values.

        Names as go-metrics' Prometheus sink makes them (``.`` and anything
        not ``[a-zA-Z0-9_]`` become ``_``), help text is the name, samples are
        summaries with the quantiles of the last PROMETHEUS_SUMMARY_MAX_AGE_S (NaN when nothing came
        in it), then ``_sum`` and ``_count``, as client_golang writes a Summary.
        """
        self._expire_prometheus()
        now = self._clock()
        families: dict[str, tuple[str, list[str]]] = {}
        for name, labels, value in self._prom_gauges.values():
            _family(families, name, "gauge").append(f"{_prom(name)}{_prom_labels(labels)} {_num(value)}")
        for name, labels, total in self._prom_counters.values():
            _family(families, name, "counter").append(f"{_prom(name)}{_prom_labels(labels)} {_num(total)}")
        for flat, (name, labels, count, total) in self._prom_samples.items():
            window = self._prom_windows.get(flat, deque())
            _trim_window(window, now)
            recent = sorted(v for _, v in window)
            base, quantiles = _prom(name), []
            for q in PROMETHEUS_QUANTILES:
                value = recent[max(0, math.ceil(q * len(recent)) - 1)] if recent else math.nan
                quantiles.append(f"{base}{_prom_labels(labels, ('quantile', repr(q)))} {_num(value)}")
            # One block per series, so sorting the family keeps its lines in client_golang's order.
            _family(families, name, "summary").append("\n".join([
                *quantiles, f"{base}_sum{_prom_labels(labels)} {_num(total)}",
                f"{base}_count{_prom_labels(labels)} {count}"]))
        out: list[str] = []
        for fam in sorted(families):
            kind, lines = families[fam]
            out += [f"# HELP {fam} {fam}", f"# TYPE {fam} {kind}", *sorted(lines)]
        return "".join(line + "\n" for line in out)


def _flatten(name: str, labels: Labels) -> str:
    """InmemSignal.flattenLabels: ``name.value1.value2`` with spaces and ``:`` as ``_``."""
    return name + "".join("." + v.replace(" ", "_").replace(":", "_") for _, v in labels)


_PROM_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _prom(name: str) -> str:
    return _PROM_BAD.sub("_", name)


def _prom_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    """``{k="v",...}`` sorted by name; *extra* (a summary's quantile) last, as client_golang writes it."""
    pairs = sorted(labels) + ([extra] if extra else [])
    if not pairs:
        return ""
    body = ",".join(f'{_prom(k)}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _trim_window(window: deque[tuple[float, float]], now: float) -> None:
    cutoff = now - PROMETHEUS_SUMMARY_MAX_AGE_S
    while window and window[0][0] < cutoff:
        window.popleft()


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"  # Go's strconv formatting, which the text format uses
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _family(families: dict[str, tuple[str, list[str]]], name: str, kind: str) -> list[str]:
    return families.setdefault(_prom(name), (kind, []))[1]


# ---------------------------------------------------------------------------
# Runtime gauges


Sampler = Callable[[], Iterable[tuple[str, float]]]


class RuntimeStats(NodeActor):
    """Publishes runtime gauges every ``telemetry.collection_interval`` (1 s).

    go-metrics' ``emitRuntimeStats`` does this for Go; the *sampler* is the
    edge that reads the process (greenlet count for ``num_goroutines``, RSS
    for ``sys_bytes``, ...), injected so this actor touches no OS state and
    runs in the simulator with a fake.
    """

    def __init__(self, env: Env, name: str, metrics: Metrics, sampler: Sampler,
                 interval_s: float) -> None:
        super().__init__(env, name)
        self.metrics = metrics
        self.sampler = sampler
        self.interval_s = interval_s  # telemetry.collection_interval (Nomad default 1s)

    def on_start(self) -> None:
        self.set_timer("collect", 0.0)  # publish at once, so /v1/metrics is never empty

    def on_timer(self, name: str) -> None:
        if name != "collect":
            return
        for key, value in self.sampler():
            self.metrics.set_gauge(key, value)
        self.set_timer("collect", self.interval_s)
