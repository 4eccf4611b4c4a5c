"""The agent raises its soft open-files limit to the hard one at start (Go's runtime does, so Nomad does)."""

from __future__ import annotations

import subprocess
import sys

from tests.test_agent_process import ROOT

SCRIPT = """
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
from runtime.agent_main import raise_open_files_limit
now = raise_open_files_limit()
assert now == resource.getrlimit(resource.RLIMIT_NOFILE), now
print(now[0] == hard or hard == resource.RLIM_INFINITY, now[0] > 256)
"""


def test_soft_open_files_limit_is_raised_to_the_hard_limit():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
