"""Review 14: a template that still holds the client (each test xfail(strict) until fixed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ROOT = __file__.rsplit("/tests/", 1)[0]


@pytest.mark.xfail(strict=True, reason="review14: consul-template's multiply works on Go's int64 (it wraps); "
                   "here on Python's unbounded ints, so squaring a variable in a loop grows it to 2^27 "
                   "digits in 27 steps -- one multiplication takes minutes and GBs, inside one step, where "
                   "neither MAX_STEPS nor MAX_RENDER_S is checked, on the AllocRunner's thread")
def test_squaring_in_a_loop_fails_within_the_render_time_bound():
    script = textwrap.dedent("""
        import time
        from runtime.gotemplate import render, TemplateError
        t = '{{ $x := 3 }}{{ range loop 27 }}{{ $x = multiply $x $x }}{{ end }}done'
        try:
            print(render(t, clock=time.monotonic))
        except TemplateError as e:
            print("refused", e)
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                              timeout=4)
    except subprocess.TimeoutExpired:
        pytest.fail("the rendering held its thread for more than 4 s (MAX_RENDER_S is 2 s)")
    # Go: int64 arithmetic wraps, the loop ends at once.
    assert proc.returncode == 0 and (proc.stdout.strip() == "done" or proc.stdout.startswith("refused"))
