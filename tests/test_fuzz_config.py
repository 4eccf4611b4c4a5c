"""Fuzzing the config loader (issue 10): random TOML files and flags give a config or a clear ConfigError.

The documents are generated from the real schema (every table and key of
:class:`~runtime.config.Config`, plus unknown keys) with hostile values of
every TOML type -- huge and negative integers, ``inf`` and ``nan``, duration
strings of absurd size, nested tables where scalars belong -- so most of
them get past the TOML parser and reach the type checks and the
validation.  Flags are fuzzed the same way from ``FLAGS``.  Properties:

* loading and validating raises nothing but :class:`ConfigError`, whose
  message is one line;
* a config that validates has only finite floats and durations that fit a
  Go ``time.Duration``, so no timer downstream can be armed with ``nan`` or
  overflow.

Findings are kept below as named regression tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.config import Config, ConfigError, _schema, load_files, parse_args, parse_duration, validate
from runtime.config_flags import FLAGS

SETTINGS = settings(deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
GO_MAX_DURATION_S = (2**63 - 1) / 1e9

DURATIONS = st.one_of(
    st.sampled_from(["0", "10s", "5m", "1h30m", "500ms", "-1s", "1.5h", ".5s", "9999999999999999999h",
                     "1e3s", "10", "s", "", "1h1h", "+3m", "0.000000001ns", "9223372036s", "9223372037s"]),
    st.from_regex(r"[+-]?[0-9]{1,25}(\.[0-9]{0,5})?(ns|us|ms|s|m|h)", fullmatch=True),
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**63 - 1, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    DURATIONS,
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def _key_tree(cls: type, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A table of *cls*: some real keys (sub-tables recursively), sometimes an unknown one."""
    entries = []
    for key, (_, kind) in _schema(cls).items():
        if dataclasses.is_dataclass(kind) and depth < 3:
            entries.append(st.tuples(st.just(key), st.one_of(_key_tree(kind, depth + 1), VALUES)))
        else:
            entries.append(st.tuples(st.just(key), VALUES))
    entries.append(st.tuples(st.text(min_size=1, max_size=10), VALUES))
    return st.lists(st.one_of(*entries), max_size=6).map(dict)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """A TOML document: scalars and arrays first, then each sub-table as a [section]."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            path = (*prefix, k)
            lines.append("[" + ".".join(json.dumps(p) for p in path) + "]")
            lines.append(to_toml(v, path))
    return "\n".join(lines) + "\n"


def _check_loaded(cfg: Config) -> None:
    """A config that validated is safe to run with: finite floats, durations a Go Duration holds."""
    for key, (f, kind) in _schema(type(cfg)).items():
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(kind):
            if value is not None:
                _check_loaded(value)
        elif isinstance(value, float):
            assert math.isfinite(value), f"{key} = {value}"
            if kind == "dur":
                assert abs(value) <= GO_MAX_DURATION_S, f"{key} = {value}"
        elif isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63, f"{key} = {value}"


def _load(path: Path, extra: list[str] | None = None) -> None:
    try:
        cfg, _, _ = parse_args(["-config", str(path), *(extra or [])])
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return
    _check_loaded(cfg)


@SETTINGS
@given(doc=_key_tree(Config))
def test_random_config_documents_load_or_fail_with_a_config_error(tmp_path, doc):
    path = tmp_path / "fuzz.toml"
    path.write_text(to_toml(doc), encoding="utf-8", errors="surrogatepass")
    _load(path, ["-server", "-data-dir", str(tmp_path)])


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_config_file_fail_with_a_config_error(tmp_path, data):
    path = tmp_path / "bytes.toml"
    path.write_bytes(data)
    _load(path)


FLAG_NAMES = [*sorted(FLAGS), "dev", "config", "bogus"]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(FLAG_NAMES), st.one_of(st.none(), st.text(max_size=20), DURATIONS),
                          st.sampled_from(["-", "--"]), st.booleans()), max_size=6),
       st.lists(st.text(max_size=10), max_size=2))
def test_random_flags_give_a_config_or_a_config_error(tmp_path, flags, trailing):
    argv: list[str] = []
    for name, value, dash, joined in flags:
        if name == "config" and value is not None:
            value = str(tmp_path / "missing.toml")
        if value is None:
            argv.append(f"{dash}{name}")
        elif joined:
            argv.append(f"{dash}{name}={value}")
        else:
            argv += [f"{dash}{name}", value]
    try:
        cfg, _, _ = parse_args(argv + trailing)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return
    _check_loaded(cfg)


# ---------------------------------------------------------------- regressions found by the fuzzer


@pytest.mark.parametrize("line", [
    "max_heartbeats_per_second = nan", "max_heartbeats_per_second = inf",
])
def test_non_finite_numbers_are_refused(tmp_path, line):
    path = tmp_path / "a.toml"
    path.write_text(f"data_dir = \"{tmp_path}\"\n[server]\nenabled = true\n{line}\n")
    cfg, _, _ = load_files([str(path)])
    with pytest.raises(ConfigError, match=r"server\.max_heartbeats_per_second: must be a finite number"):
        validate(cfg)


def test_client_gc_thresholds_refuse_nan(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text(f"data_dir = \"{tmp_path}\"\n[client]\nenabled = true\ngc_disk_usage_threshold = nan\n")
    cfg, _, _ = load_files([str(path)])
    with pytest.raises(ConfigError, match="finite"):
        validate(cfg)


def test_durations_beyond_a_go_duration_are_invalid():
    assert parse_duration("2562047h") == 2562047 * 3600.0  # within int64 nanoseconds
    for text in ("2562048h", "9999999999999999999h", "9223372037s"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(text)


def test_integers_beyond_64_bits_are_refused(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text("[server]\nbootstrap_expect = 99999999999999999999999\n")
    with pytest.raises(ConfigError, match=r"server\.bootstrap_expect: .*64-bit"):
        load_files([str(path)])
