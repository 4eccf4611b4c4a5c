"""Review 15: the template ``file`` function's reads are not bounded in total."""

from __future__ import annotations

import itertools

import pytest

from actors.client.templates import TemplateSpec, render_task

MB = 1024 * 1024


@pytest.mark.xfail(strict=True, reason="review15: file keeps every file it read for the rendering, and "
                                       "only each file's size is bounded (template_source_max_bytes), not "
                                       "their total: a template reading the task's many large files holds "
                                       "them all in the client agent's memory")
def test_the_files_a_rendering_reads_are_bounded_in_total():
    read = []

    def read_file(path: str) -> bytes:  # as DiskAllocDirs.read_alloc_file: each file up to 4 MB
        read.append(path)
        return b"x" * (4 * MB)

    ticks = itertools.count()
    text = '{{ range $i := loop 200 }}{{ $x := file (print "/a/t/local/f" $i) }}{{ end }}ok'
    got = render_task((TemplateSpec(dest="local/out"),), (text,), {}, {}, "default", read_file=read_file,
                      sandbox="/a/t", clock=lambda: next(ticks) * 0.0001)
    # 200 x 4 MB = 800 MB held at once while the output is "ok"; a bound on the total read (say the
    # output bound, 16 MB) would stop it after a few files.
    assert got.error and len(read) * 4 * MB <= 64 * MB, (got.error, len(read))
