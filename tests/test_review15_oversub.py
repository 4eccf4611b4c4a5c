"""Review 15: memory oversubscription and in-place updates."""

from __future__ import annotations

import pytest

from tests.test_memory_oversub import _allocs, mem_job
from tests.test_scheduler import Cluster


@pytest.mark.xfail(strict=True, reason="review15: an in-place update keeps the allocation's old "
                                       "AllocatedResources; Nomad's inplaceUpdate takes the bin-pack "
                                       "option's, which has no memory_max once oversubscription is off")
def test_an_in_place_update_after_oversubscription_is_disabled_drops_memory_max() -> None:
    c = Cluster()
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": True})
    c.node(0)
    c.register(**mem_job(256, 1024, count=1))
    c.schedule()
    (first,) = _allocs(c)
    assert first["Resources"]["MemoryMaxMB"] == 1024
    c.apply("scheduler_set_config", config={"MemoryOversubscriptionEnabled": False})
    c.register(**mem_job(256, 1024, count=2))  # a count change: the running allocation is updated in place
    c.schedule()
    allocs = _allocs(c)
    assert len(allocs) == 2 and first["ID"] in {a["ID"] for a in allocs}
    assert all(a["JobVersion"] == 1 for a in allocs)
    # The new one has none; the one updated in place still carries 1024 (Nomad: none on both).
    assert [a["Resources"].get("MemoryMaxMB") for a in allocs] == [None, None]
