"""Test set-up: gevent first (as bin/nomad-agent does), then both runtimes."""

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
import pytest  # noqa: E402

from runtime.prod import ProdNode  # noqa: E402
from sim.runtime import Scheduler  # noqa: E402


class ProdHarness:
    """Runs actors for real under gevent; waiting is real time."""

    name = "prod"

    def __init__(self) -> None:
        self.nodes: list[ProdNode] = []

    def node(self, name: str, supervisor: str | None = None) -> ProdNode:
        n = ProdNode(name, supervisor=supervisor, seed=1)
        self.nodes.append(n)
        return n

    def wait_for(self, cond, timeout_s: float = 5.0) -> bool:
        with gevent.Timeout(timeout_s, False):
            while not cond():
                gevent.sleep(0.001)
            return True
        return cond()

    def close(self) -> None:
        for n in self.nodes:
            n.stop_all(timeout_s=2.0)


class SimHarness:
    """Runs the same actors in the simulator; waiting is virtual time."""

    name = "sim"

    def __init__(self) -> None:
        self.sched = Scheduler(seed=7)

    def node(self, name: str, supervisor: str | None = None):
        n = self.sched.add_node(name)
        n.supervisor = supervisor
        return n.env

    def wait_for(self, cond, timeout_s: float = 5.0) -> bool:
        return self.sched.run_until(cond, timeout_s)

    def close(self) -> None:
        self.sched.close()


@pytest.fixture(params=["prod", "sim"])
def harness(request):
    h = ProdHarness() if request.param == "prod" else SimHarness()
    yield h
    h.close()


# Hypothesis profiles: HYPOTHESIS_PROFILE=dev|ci|nightly (default dev).
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config):
    """A plain ``pytest`` run byte-compiles the project first, as ``python -m tests.parallel`` does
    before its shards (tests.parallel.precompile: processes started by tests read that byte code)."""
    if not os.environ.get("NOMAD_TEST_PRECOMPILED"):
        from tests.parallel import precompile

        precompile()


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _urllib_opener_restored():
    """A test that runs the CLI in this process (``runtime.cli.main``) leaves urllib's global opener
    adding that command's ``-namespace``/``-region`` and token to every later request of the process
    (the CLI is a one-shot process, so it installs them globally): put the opener back after each test,
    or a later test's plain ``urlopen`` asks in namespace "*"."""
    import urllib.request
    saved = urllib.request._opener  # type: ignore[attr-defined]
    yield
    urllib.request.install_opener(saved)  # type: ignore[arg-type]
