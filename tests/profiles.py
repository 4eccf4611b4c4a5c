"""How many examples the simulator's property tests run, by Hypothesis profile.

The profiles are registered in tests/conftest.py: ``dev`` (a plain pytest run), ``ci`` (.ci/run:
small and derandomized) and ``nightly`` (long).  Select one with ``HYPOTHESIS_PROFILE=nightly`` or
``pytest --hypothesis-profile=nightly``.  A simulator property test runs a whole cluster per example,
so it keeps its own small count in the dev and ci runs and takes a share of the profile's count
under any profile that asks for more than ci (nightly).
"""

from __future__ import annotations

import os

from hypothesis import settings


def sim_examples(small: int, *, env: str | None = None, share: int = 4,
                 profile_examples: int | None = None) -> int:
    """*small* in the default and ci runs; ``max_examples // share`` (at least *small*) under nightly.

    ``env`` names an environment variable that overrides both (for one long local run);
    ``profile_examples`` stands in for the loaded profile's max_examples (tests).
    """
    if env and os.environ.get(env):
        return int(os.environ[env])
    wanted = settings.default.max_examples if profile_examples is None else profile_examples
    if wanted <= settings.get_profile("ci").max_examples:
        return small
    return max(small, wanted // share)
