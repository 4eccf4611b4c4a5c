"""The sharded test runner (tests/parallel.py) and the ports each shard draws from."""
from __future__ import annotations

import itertools
import subprocess
import sys

from tests import parallel
from tests.ports import PORT_RANGE, port_range


def test_shards_hold_every_file_once_and_end_close_together():
    files = [f"tests/test_{c}.py" for c in "abcdefgh"]
    weights = {"tests/test_a.py": 30, "tests/test_b.py": 28, "tests/test_c.py": 10, "tests/test_d.py": 9,
               "tests/test_e.py": 8, "tests/test_f.py": 5}
    shards = parallel.shard(files, weights, 2)
    assert sorted(f for s in shards for f in s) == files
    median = 9.0  # of the listed weights; g and h are not listed and weigh that
    loads = [sum(weights.get(f, median) for f in s) for s in shards]
    assert abs(loads[0] - loads[1]) <= 10, loads
    assert "tests/test_a.py" in shards[0] and "tests/test_b.py" in shards[1]
    assert parallel.shard(files, weights, 2) == shards  # the same every time
    assert parallel.shard(files, {}, 3) == [files[0::3], files[1::3], files[2::3]]
    assert parallel.shard(files[:1], weights, 4) == [files[:1]]


def test_every_test_file_is_in_a_shard():
    files = parallel.test_files()
    assert "tests/test_parallel_runner.py" in files and "tests/conftest.py" not in files
    assert sorted(f for s in parallel.shard(files, parallel.load_weights(), 2) for f in s) == files


def test_summary_lines_are_read_and_summed_as_pytest_prints_them():
    out = "....F.\n= short test summary info =\nFAILED tests/test_x.py::t - assert 1\n" \
          "1 failed, 5 passed, 1 skipped, 2 deselected, 1 warning in 3.21s\n"
    assert parallel.summary_counts(out) == {"failed": 1, "passed": 5, "skipped": 1, "deselected": 2,
                                            "warnings": 1}
    assert parallel.summary_counts("==== 12 passed, 1 error in 0.50s ====\n") == {"passed": 12, "errors": 1}
    assert parallel.summary_counts("no summary here\n") == {}
    line = parallel.summary_line({"passed": 17, "failed": 1, "deselected": 2}, 65.4)
    assert line == "1 failed, 17 passed, 2 deselected in 65.40s"
    assert parallel.summary_counts(line) == {"failed": 1, "passed": 17, "deselected": 2}


def test_the_exit_code_is_a_failing_shards_and_no_tests_only_when_none_ran():
    assert parallel.exit_code([0, 0], {"passed": 3}) == 0
    assert parallel.exit_code([0, 1], {"passed": 3, "failed": 1}) == 1
    assert parallel.exit_code([5, 0], {"passed": 3}) == 0  # one shard's -k matched nothing
    assert parallel.exit_code([5, 5], {"deselected": 4}) == 5
    assert parallel.exit_code([2, 0], {"passed": 3}) == 2  # interrupted or a usage error
    # -q beside setup.cfg's -q: pytest prints no counts, and a shard's 0 says its tests ran and passed.
    assert parallel.exit_code([0, 0], {}) == 0 and parallel.exit_code([0, 5], {}) == 0
    assert parallel.summary_line({}, 2.0, [0, 0]) == "passed (pytest printed no counts) in 2.00s"
    assert parallel.summary_line({}, 2.0, [5, 5]) == "no tests ran in 2.00s"
    assert parallel.summary_line({}, 2.0, [1, 0]) == "failed (pytest printed no counts) in 2.00s"


def test_each_shard_draws_ports_from_its_own_slice():
    assert port_range("") == PORT_RANGE
    slices = [port_range(str(i)) for i in range(8)]
    for (lo, hi), (lo2, _) in itertools.pairwise(slices):
        assert PORT_RANGE[0] <= lo < hi < lo2 <= PORT_RANGE[1]
    assert port_range("8") == slices[0]


def test_the_runner_runs_shards_and_sums_them():
    """Two shards (this file and another), two quick tests chosen by -k, through the real entry point."""
    cmd = [sys.executable, "-m", "tests.parallel", "-j", "2", "-k", "summary_lines or exit_code",
           "tests/test_parallel_runner.py", "tests/test_ports.py"]
    proc = subprocess.run(cmd, cwd=parallel.ROOT, capture_output=True, text=True, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert parallel.summary_counts(last)["passed"] == 2, last


def test_weights_come_from_a_junit_report(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text('<testsuites><testsuite name="pytest">'
                      '<testcase classname="tests.test_a" name="t1" time="1.25"/>'
                      '<testcase classname="tests.test_a" name="t2" time="0.5"/>'
                      '<testcase classname="tests.test_b.TestX" name="t3" time="2"/>'
                      '<testcase classname="" name="collect" time="0.1"/>'
                      '</testsuite></testsuites>')
    assert parallel.weights_from_junit(report) == {"tests/test_a.py": 1.8, "tests/test_b.py": 2.0}


def test_the_project_is_byte_compiled_so_started_processes_need_not_compile_it(tmp_path):
    import importlib.util
    import os

    assert parallel.precompile()
    for module in ("runtime/cli.py", "actors/agent.py", "sim/runtime.py"):
        source = parallel.ROOT / module
        cached = importlib.util.cache_from_source(str(source))
        assert os.path.exists(cached) and os.path.getmtime(cached) >= os.path.getmtime(source), module
    # A process that may not write byte code (PYTHONDONTWRITEBYTECODE) still imports from it: the
    # import compiles no source file (only code some modules generate, named "<string>").
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    code = ("import builtins, sys; calls = []; real = builtins.compile\n"
            "builtins.compile = lambda *a, **k: calls.append(str(a[1])) or real(*a, **k)\n"
            "import runtime.cli; print([c for c in calls if c.endswith('.py')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=parallel.ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
