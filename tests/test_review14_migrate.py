"""Review 14: ephemeral disk migration (each test xfail(strict) until fixed)."""

from __future__ import annotations

import io
import os

import pytest

from actors.client.disk_migrate import SnapshotError, extract_snapshot
from tests.test_disk_migrate import MB, _link, _tar


@pytest.mark.xfail(strict=True, reason="review14: link_escapes judges a link's target lexically, so a chain "
                   "of links each 'inside' (a -> .., b -> a/../../..) unpacks a link that resolves outside "
                   "the allocation directory, which extract_snapshot's contract says it refuses")
def test_a_chain_of_links_that_leads_out_of_the_allocation_dir_is_refused(tmp_path):
    dest = tmp_path / "allocs" / "new1"
    archive = _tar([_link("alloc/data/a", ".."), _link("alloc/data/b", "a/../../..")])
    try:
        extract_snapshot(io.BytesIO(archive), str(dest), prev_alloc_id="prev", max_bytes=MB, max_entries=10)
    except SnapshotError:
        return  # refused: fine
    resolved = os.path.realpath(dest / "alloc" / "data" / "b")
    assert resolved == str(dest) or resolved.startswith(str(dest) + os.sep), resolved
