"""Run the test suite as N pytest processes side by side, one shard of test files each.

    python -m tests.parallel [-j N] [pytest args ...] [tests/test_x.py ...]

Why not pytest-xdist: its workers take their work through threads of execnet,
and our conftest monkey-patches the process with gevent (the agent's runtime
needs it), after which an xdist worker blocks for ever. Whole files, run by
plain pytest processes, need nothing of the sort: each shard is the same
`pytest` a developer runs, on a subset of the files.

Files are spread over the shards by their weight in tests/shard_weights.json
(seconds one file took in a whole run: --record-weights writes them after a
run, --weights-from from a `pytest --junitxml` report; a file not listed
weighs the median),
the heaviest first onto the lightest shard, so the shards end close together.
Each shard gets NOMAD_TEST_SHARD=<i> so tests/ports.py hands it ports from a
slice of the range no other shard uses. A shard's output is printed whole when
it ends; the last line sums the shards' counts the way pytest's own last line
reads, and the exit code is the first failing shard's (0 when all pass; pytest's
5, "no tests collected", only when no shard ran a test).
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WEIGHTS = TESTS / "shard_weights.json"
# Two shards: CI and the developers' machines have two cores, and each shard's
# real-process tests keep agents busy beside it; more shards than cores only
# slows the timing-sensitive process tests.
DEFAULT_JOBS = 2
# The words of pytest's summary line, in the order pytest prints them.
OUTCOMES = ("failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "errors")
_COUNT = re.compile(r"(\d+) (failed|passed|skipped|deselected|xfailed|xpassed|warnings?|errors?)\b")


def test_files() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in TESTS.glob("test_*.py"))


def load_weights(path: Path = WEIGHTS) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


def weights_from_junit(path: Path) -> dict[str, float]:
    """Seconds per test file from a ``pytest --junitxml`` report of a whole run."""
    import xml.etree.ElementTree as ET
    seconds: dict[str, float] = {}
    for case in ET.parse(path).iter("testcase"):
        module = case.get("classname", "").split(".")
        if len(module) >= 2 and module[0] == "tests":
            f = f"tests/{module[1]}.py"
            seconds[f] = seconds.get(f, 0.0) + float(case.get("time") or 0)
    return {f: round(t, 1) for f, t in sorted(seconds.items())}


def shard(files: list[str], weights: dict[str, float], n: int) -> list[list[str]]:
    """Longest-first onto the lightest shard; the same input gives the same shards."""
    default = statistics.median(weights.values()) if weights else 1.0
    order = sorted(files, key=lambda f: (-weights.get(f, default), f))
    shards: list[list[str]] = [[] for _ in range(max(1, n))]
    load = [0.0] * len(shards)
    for f in order:
        i = min(range(len(shards)), key=lambda k: (load[k], k))
        shards[i].append(f)
        load[i] += weights.get(f, default)
    return [sorted(s) for s in shards if s]


def summary_counts(output: str) -> dict[str, int]:
    """The counts of the last pytest summary line in ``output`` ({} if none)."""
    for line in reversed(output.splitlines()):
        found = _COUNT.findall(line)
        if found and (" in " in line or line.startswith("=")):
            counts: dict[str, int] = {}
            for num, word in found:
                word = {"warning": "warnings", "error": "errors"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(num)
            return counts
    return {}


def summary_line(counts: dict[str, int], seconds: float, codes: list[int] | None = None) -> str:
    parts = [f"{counts[w]} {w}" for w in OUTCOMES if counts.get(w)]
    if not parts and codes and any(c != 5 for c in codes):
        # Quiet twice over (-q beside setup.cfg's own -q), pytest prints no summary line: the shards'
        # exit codes still say what happened.
        outcome = "passed" if exit_code(codes, counts) == 0 else "failed"
        return f"{outcome} (pytest printed no counts) in {seconds:.2f}s"
    return f"{', '.join(parts) or 'no tests ran'} in {seconds:.2f}s"


def exit_code(codes: list[int], counts: dict[str, int]) -> int:
    failing = [c for c in codes if c not in (0, 5)]
    if failing:
        return failing[0]
    # A shard exits 0 only when it ran tests and all passed (5: it collected none) -- the test of it,
    # since with -qq its output holds no counts.
    ran = sum(counts.get(w, 0) for w in ("failed", "passed", "skipped", "xfailed", "xpassed", "errors"))
    return 0 if ran or 0 in codes else 5


# The project's packages, byte-compiled before a run (see precompile).
PACKAGES = ("actors", "runtime", "sim", "tests", "benchmarks")


def precompile(workers: int = DEFAULT_JOBS) -> bool:
    """Write the project's ``__pycache__`` byte code once, before the tests start processes.

    Nearly every test that starts an agent or runs the CLI starts a fresh
    Python, which imports hundreds of the project's modules. Where the
    environment sets PYTHONDONTWRITEBYTECODE (as some CI images do), no
    process ever writes their byte code, so each one compiles every module
    from source again: about 0.35 s more per agent start and 0.1 s per CLI
    command, a quarter of tests/test_cli_jobs.py's wall time. The variable
    stops only the import system's writing: byte code written here is read
    by every process, and a source edited since is compiled again as
    usual (its byte code no longer matches). Files up to date cost a stat.
    """
    ok = True
    for name in PACKAGES:
        if (ROOT / name).is_dir():
            ok = bool(compileall.compile_dir(ROOT / name, quiet=1, workers=workers)) and ok
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.parallel", description=__doc__.split("\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=DEFAULT_JOBS, help="how many pytest processes")
    parser.add_argument("--weights-from", metavar="JUNIT_XML", type=Path,
                        help=f"write {WEIGHTS.name} from a whole run's `pytest --junitxml` report, and exit")
    parser.add_argument("--record-weights", action="store_true",
                        help=f"after the run, write {WEIGHTS.name} from the seconds each file took in it")
    args, pytest_args = parser.parse_known_args(argv)
    if args.weights_from:
        WEIGHTS.write_text(json.dumps(weights_from_junit(args.weights_from), indent=1) + "\n")
        print(f"wrote {WEIGHTS}")
        return 0
    # Test files named on the command line are the ones sharded (all by default);
    # everything else goes to each pytest as it is.
    named = [a for a in pytest_args if a.endswith(".py") and (ROOT / a).is_file()]
    pytest_args = [a for a in pytest_args if a not in named]
    shards = shard(named or test_files(), load_weights(), args.jobs)
    started = time.monotonic()
    precompile(args.jobs)
    procs = []
    with tempfile.TemporaryDirectory(prefix="nomad-test-shards-") as tmp:
        for i, files in enumerate(shards):
            log = open(Path(tmp) / f"shard{i}.log", "w+")
            env = dict(os.environ, NOMAD_TEST_SHARD=str(i), NOMAD_TEST_PRECOMPILED="1")
            cmd = [sys.executable, "-m", "pytest", *pytest_args, *files]
            if args.record_weights:
                cmd.insert(3, f"--junitxml={Path(tmp) / f'shard{i}.xml'}")
            procs.append((i, files, log, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                                          stderr=subprocess.STDOUT)))
            print(f"shard {i}: {len(files)} files", flush=True)
        totals: dict[str, int] = {}
        codes = []
        try:
            for i, files, log, proc in procs:
                codes.append(proc.wait())
                log.seek(0)
                out = log.read()
                log.close()
                print(f"\n----- shard {i} ({len(files)} files) exited {codes[-1]} -----", flush=True)
                sys.stdout.write(out)
                for k, v in summary_counts(out).items():
                    totals[k] = totals.get(k, 0) + v
        except KeyboardInterrupt:
            for _, _, _, proc in procs:
                proc.terminate()
            raise
        if args.record_weights:
            weights = load_weights()
            for i in range(len(procs)):
                report = Path(tmp) / f"shard{i}.xml"
                if report.exists():
                    weights.update(weights_from_junit(report))
            known = set(test_files())
            WEIGHTS.write_text(json.dumps({f: t for f, t in sorted(weights.items()) if f in known}, indent=1)
                               + "\n")
            print(f"wrote {WEIGHTS}", flush=True)
    print(f"\n{summary_line(totals, time.monotonic() - started, codes)}", flush=True)
    return exit_code(codes, totals)


if __name__ == "__main__":
    sys.exit(main())
