"""Review 15: template functions added today (scratch, toJSON/print of scratch values)."""

import itertools

import pytest

from runtime.gotemplate import TemplateError, render

# A scratch map holding the previous one under two keys, 40 deep: 2**40 maps once expanded.
DAG = ('{{ scratch.MapSet "m0" "k" "v" }}{{ range $i := loop 40 }}{{ $m := scratch.Get (print "m" $i) }}'
       '{{ scratch.MapSet (print "m" (add $i 1)) "k" $m }}{{ scratch.MapSet (print "m" (add $i 1)) "j" $m }}'
       '{{ end }}{{ $b := scratch.Get "m40" }}')


def _ticking_clock():
    ticks = itertools.count()
    return lambda: next(ticks) * 0.001  # 2 s of render time after 2000 looks at the clock


@pytest.mark.parametrize("action", ["toJSON $b", "toJSONPretty $b", "print $b", "printf \"%v\" $b", "$b"])
def test_printing_a_shared_scratch_map_is_bounded_by_the_render_time(action):
    # Before: print/toJSON expanded the DAG with no time check (the agent's memory grew ~90 MB/s for
    # toJSON, and the client's AllocRunner was held for hours).
    with pytest.raises(TemplateError, match="took longer than 2s to render"):
        render(DAG + "{{ " + action + " }}", clock=_ticking_clock())


def test_parse_yaml_of_a_long_flow_sequence_is_bounded_by_the_render_time():
    # Before: the flow parser never looked at the clock; 13 MB of nested [[...]] parsed for 6 s
    # against the 2 s bound. Here 3000 small lists with a clock ticking 1 ms per look.
    text = "[" + "[[[1]]]," * 3000 + "1]"
    with pytest.raises(TemplateError, match="took longer than 2s to render"):
        render('{{ parseYAML .y | len }}', dot={"y": text}, clock=_ticking_clock())


def _chain(p):
    return DAG.replace('"m', f'"{p}').replace('{{ $b := scratch.Get "' + p + '40" }}', "")


def test_in_compares_two_shared_scratch_maps_in_linear_time():
    # Before: `in`/containsAny compared with Python's ==, which walks both 2**40 expansions (hours).
    text = (_chain("m") + _chain("n") + '{{ scratch.MapSet "L" "x" (scratch.Get "m40") }}'
            '{{ in (scratch.MapValues "L") (scratch.Get "n40") }} '
            '{{ containsAny (scratch.MapValues "L") (list) }}')
    text = text.replace("(list)", "(scratch.MapValues \"L\")")
    assert render(text, clock=_ticking_clock()) == "true true"


def test_in_and_contains_still_compare_values_as_before():
    dot = {"l": [1, "a", [1, 2], {"k": [1]}], "t": (1, 2)}
    assert render('{{ in .l 1 }} {{ in .l "b" }} {{ in .l (index .l 2) }} {{ in .l (index .l 3) }}',
                  dot=dot) == "true false true true"
    assert render('{{ containsAny (index .l 2) .l }} {{ containsNone .l (index .l 2) }}',
                  dot=dot) == "true false"
    assert render('{{ in .l .t }}', dot=dot) == "false"  # a tuple is no list, as before
