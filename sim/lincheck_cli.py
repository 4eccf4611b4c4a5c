"""``nomad-sim lincheck FILE...``: check Jepsen register histories.

Prints one line per file, ``<file> true|false <seconds>`` (parse + check
time), and exits 0 whatever the verdicts; a file that cannot be read or holds
no Jepsen register history is an error (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time

from sim.lincheck import check, load_jepsen


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nomad-sim lincheck",
        description="Check Jepsen register histories for linearizability.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="Jepsen log (one history per file)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on false, print the longest linearizable prefix")
    args = parser.parse_args(argv)
    for path in args.files:
        t0 = time.perf_counter()
        try:
            history = load_jepsen(path)
        except OSError as e:
            print(f"error: cannot read {path}: {e.strerror or e}", file=sys.stderr)
            return 2
        except (UnicodeDecodeError, ValueError) as e:
            print(f"error: {path}: not a Jepsen register history: {str(e).splitlines()[0][:200]}",
                  file=sys.stderr)
            return 2
        if not history:
            print(f"error: {path}: no Jepsen register operations in it (lines like "
                  f"'... jepsen.util - 0 :invoke :write 3')", file=sys.stderr)
            return 2
        result = check(history)
        dt = time.perf_counter() - t0
        print(f"{path} {'true' if result.linearizable else 'false'} {dt:.3f}", flush=True)
        if args.verbose and not result.linearizable:
            print(result.explain())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
