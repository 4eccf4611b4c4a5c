"""Review 15: the template ``file`` function's reads are bounded in total (the output bound)."""

from __future__ import annotations

import itertools

from actors.client.templates import TemplateSpec, render_task

MB = 1024 * 1024


def test_the_files_a_rendering_reads_are_bounded_in_total():
    read = []

    def read_file(path: str) -> bytes:  # as DiskAllocDirs.read_alloc_file: each file up to 4 MB
        read.append(path)
        return b"x" * (4 * MB)

    ticks = itertools.count()
    text = '{{ range $i := loop 200 }}{{ $x := file (print "/a/t/local/f" $i) }}{{ end }}ok'
    got = render_task((TemplateSpec(dest="local/out"),), (text,), {}, {}, "default", read_file=read_file,
                      sandbox="/a/t", clock=lambda: next(ticks) * 0.0001)
    # Before: 200 x 4 MB = 800 MB held at once while the output was "ok".  Now all the files together
    # count against the output bound (16 MB): the fifth file fails the rendering.
    assert len(read) == 5, len(read)
    assert got.error.endswith("error calling file: file(/a/t/local/f4): the files this rendering read would "
                              "be larger than 16777216 bytes"), got.error


def test_files_within_the_bound_still_render():
    data = {"/a/t/local/a": b"x" * MB, "/a/t/local/b": b"y"}
    text = '{{ file "/a/t/local/a" | len }} {{ file "/a/t/local/b" }} {{ file "/a/t/local/a" | len }}'
    got = render_task((TemplateSpec(dest="local/out"),), (text,), {}, {}, "default",
                      read_file=data.__getitem__, sandbox="/a/t")
    assert got.outputs == (f"{MB} y {MB}",), got.error
