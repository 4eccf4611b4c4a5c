"""Review 14: ephemeral disk migration (each test xfail(strict) until fixed)."""

from __future__ import annotations

import io
import os
import shutil

from actors.client.disk_migrate import (
    SnapshotError,
    SnapshotFetch,
    extract_snapshot,
    migrate,
    snapshot_chunks,
)
from tests.test_disk_migrate import MB, _alloc_dir, _link, _tar


def test_a_chain_of_links_that_leads_out_of_the_allocation_dir_is_refused(tmp_path):
    dest = tmp_path / "allocs" / "new1"
    archive = _tar([_link("alloc/data/a", ".."), _link("alloc/data/b", "a/../../..")])
    try:
        extract_snapshot(io.BytesIO(archive), str(dest), prev_alloc_id="prev", max_bytes=MB, max_entries=10)
    except SnapshotError:
        return  # refused: fine
    resolved = os.path.realpath(dest / "alloc" / "data" / "b")
    assert resolved == str(dest) or resolved.startswith(str(dest) + os.sep), resolved


def test_a_pull_that_ends_after_its_allocation_was_destroyed_leaves_no_directory(tmp_path):
    d = _alloc_dir(tmp_path)
    os.unlink(d / "alloc" / "data" / "bad-link")
    root = tmp_path / "allocs"
    (root / "new1" / "alloc").mkdir(parents=True)  # the replacement's directory, made by its runner
    good = b"".join(snapshot_chunks(str(d), "prev", ("t",)))

    class Slow(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            shutil.rmtree(root / "new1", ignore_errors=True)  # meanwhile: stopped, collected, destroyed
            return super().read(n)
    req = SnapshotFetch(alloc_id="new1", prev_alloc_id="prev", node_addr="x:1", token="",
                        alloc_root=str(root), tasks=("t",), max_bytes=MB, max_entries=100,
                        timeout_s=5, io_timeout_s=5)
    migrate(req, lambda r: Slow(good))
    assert not (root / "new1").exists(), os.listdir(root / "new1")
