"""``nomad eval delete [-filter <expr>] [-yes] [<eval_id>]`` (Nomad's command/eval_delete.go).

Deletes one evaluation by its full ID, or every deletable evaluation a filter
matches, while the eval broker is paused (checked first, with Nomad's hint of
how to pause it). A filter asks for confirmation, with the count of matching
evaluations, unless ``-yes``; only an exact ``y`` confirms. Prints
"Successfully deleted N evaluation(s)" or "No evaluations were deleted".
"""
from __future__ import annotations

import sys

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags, request

PAUSE_HINT = ('To delete evaluations you must first pause the eval broker by running '
              '"nomad operator scheduler set-config -pause-eval-broker=true"\n'
              'After the deletion is complete, unpause the eval broker by running '
              '"nomad operator scheduler set-config -pause-eval-broker=false"')


def _ask(question: str, no_answer: str = "") -> tuple[int, bool]:
    """Nomad's askQuestion: (exit code, confirmed)."""
    print(question, end=" ", flush=True)
    try:
        answer = sys.stdin.readline() if sys.stdin else ""
    except (OSError, ValueError):
        answer = ""
    answer = answer.strip()
    if not answer or answer.lower().startswith("n"):
        if no_answer:
            print(no_answer)
        return 0, False
    if answer.lower().startswith("y") and len(answer) > 1:
        print("For confirmation, an exact \u2018y\u2019 is required.")  # Nomad's curly quotes
        return 0, False
    if answer != "y":
        print("No confirmation detected. For confirmation, an exact 'y' is required.")
        return 1, False
    return 0, True


def eval_delete(addr: str, args: list[str]) -> tuple[str, int]:
    flags, rest = parse_flags(args, {"filter": str, "yes": bool})
    text, yes = flags.get("filter", ""), flags.get("yes", False)
    if (not text and not rest) or (text and rest):
        raise CliError("Error validating command args and flags: evaluation ID or filter flag required")
    if len(rest) > 1:
        raise CliError(f"Error validating command args and flags: expected 1 argument, got {len(rest)}")
    config = request(addr, "GET", "/v1/operator/scheduler/configuration")
    if not ((config or {}).get("SchedulerConfig") or {}).get("PauseEvalBroker"):
        print("Eval broker is not paused", file=sys.stderr)
        return PAUSE_HINT, 1
    deleted, code = 0, 0
    try:
        if rest:
            ev = request(addr, "GET", f"/v1/evaluation/{rest[0]}")
            deleted = request(addr, "DELETE", "/v1/evaluations", {"EvalIDs": [ev["ID"]]})["Count"]
        else:
            go = True
            if not yes:
                count = request(addr, "GET", "/v1/evaluations/count", filter=text)["Count"]
                code, go = _ask(f"Are you sure you want to delete {count} evals? [y/N]",
                                "Cancelling eval deletion")
                print()
            if go:
                deleted = request(addr, "DELETE", "/v1/evaluations", {"Filter": text})["Count"]
    except CliError as e:
        print(f"Error deleting evaluations: {e}", file=sys.stderr)
        return "", 1
    if deleted:
        return f"Successfully deleted {deleted} {'evaluations' if deleted > 1 else 'evaluation'}", code
    return "No evaluations were deleted", code


EVAL_DELETE_COMMANDS = {("eval", "delete"): eval_delete}
