"""Templates' regular expressions are Go's (RE2): linear time whatever the pattern, RE2's syntax and
semantics, and Go's error texts for what RE2 refuses (backreferences, lookaround...)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.client.templates import TemplateSpec, render_task
from runtime.gotemplate import TemplateError, render


def test_a_catastrophic_pattern_for_a_backtracking_engine_finishes_at_once() -> None:
    start = time.monotonic()
    text = "a" * 200_000 + "b"
    assert render('{{ regexMatch "(a+)+$" .s }}', dot={"s": text}) == "false"
    assert render('{{ regexMatch "^(a|aa)*c$" .s }}', dot={"s": text}) == "false"
    assert render('{{ regexReplaceAll "(x+x+)+y" "-" .s }}', dot={"s": "x" * 50_000}) == "x" * 50_000
    assert time.monotonic() - start < 0.5


def test_the_same_in_a_tasks_rendering() -> None:
    start = time.monotonic()
    r = render_task((TemplateSpec(dest="x"),), ('{{ env "A" | regexMatch "(a+)+$" }}',),
                    {"A": "a" * 100_000 + "b"}, {}, "default")
    assert (r.error, r.outputs) == ("", ("false",))
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize(("text", "want"), [
    ('{{ regexMatch "^a$" "a\\n" }}', "false"),  # Go's $ is the end of the text, not before a last \n
    ('{{ regexMatch "(?m)^b$" "a\\nb\\n" }}', "true"),
    ('{{ regexMatch "a\\\\z" "a" }}', "true"),  # \z is Go's (Python's re has \Z instead)
    ('{{ regexMatch "\\\\d" "\u0663" }}', "false"),  # \d, \w, \s are ASCII in Go
    ('{{ regexMatch "\\\\pL" "\u00e9" }}', "true"),
    ('{{ regexMatch "[[:alpha:]]" "x" }}', "true"),
    ('{{ regexReplaceAll "(?U)a+" "-" "aaa" }}', "---"),  # (?U) swaps greedy and lazy
    ('{{ regexReplaceAll "a*" "-" "baaac" }}', "-b-c-"),  # no empty match right after a match
    ('{{ regexReplaceAll "" "-" "\u00e9b" }}', "-\u00e9-b-"),
    ('{{ regexReplaceAll "(?P<x>a)(b)?" "[$x|$2|${1}|$1x|$$|$]" "xaab" }}', "x[a||a||$|$][a|b|a||$|$]"),
    ('{{ regexReplaceAll "(a)" "$01" "a" }}', ""),  # a leading zero makes it a name: no such group
    ('{{ regexReplaceAll "(?<n>a)" "<${n}>" "ba" }}', "b<a>"),
    ('{{ regexReplaceAll "^" ">" "ab" }}', ">ab"),  # ^ matches once, not at each search position
])
def test_go_semantics(text: str, want: str) -> None:
    assert render(text) == want


@pytest.mark.parametrize(("pattern", "error"), [
    ("(a)\\\\1", "invalid escape sequence: `\\1`"),
    ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!a)", "invalid or unsupported Perl syntax: `(?!`"),
    ("(?<=a)b", "invalid or unsupported Perl syntax: `(?<=`"),
    ("(?>a)", "invalid or unsupported Perl syntax: `(?>`"),
    ("a++", "invalid nested repetition operator: `++`"),
    ("\\\\Z", "invalid escape sequence: `\\Z`"),
    ("\\\\C", "invalid escape sequence: `\\C`"),
    ("a(", "missing closing ): `a(`"),
    ("[a", "missing closing ]: `[a`"),
    ("a)", "unexpected ): `a)`"),
    ("*", "missing argument to repetition operator: `*`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    ("a\\\\", "trailing backslash at end of expression: ``"),
    ("[z-a]", "invalid character class range: `z-a`"),
])
def test_what_re2_refuses_fails_the_render_with_gos_error(pattern: str, error: str) -> None:
    with pytest.raises(TemplateError) as e:
        render(f'{{{{ regexMatch "{pattern}" "a" }}}}')
    assert str(e.value).endswith(f"error calling regexMatch: error parsing regexp: {error}")


def test_a_replacement_beyond_the_output_bound_fails() -> None:
    with pytest.raises(TemplateError, match="larger than 1000 bytes"):
        render('{{ regexReplaceAll "" "xxxxxxxxxx" .s }}', dot={"s": "a" * 200}, max_output=1000)


_ATOMS = ["a", "b", "(", ")", "*", "+", "?", "|", "{2}", "{1,3}", "[", "]", "^", "$", ".", "\\\\", "(?:",
          "(?i)", "(?P<n>", "\\\\1", "(?=", "\\\\b", "\\\\w", "$1", "${n}"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=st.lists(st.sampled_from(_ATOMS), max_size=12),
       repl=st.sampled_from(["", "-", "$1", "${n}$$"]), text=st.text("ab\n\u00e9", max_size=30))
def test_fuzz_patterns_render_or_fail_with_a_template_error_quickly(pattern: list[str], repl: str,
                                                                   text: str) -> None:
    p = "".join(pattern)
    start = time.monotonic()
    for tpl in ('{{ regexMatch .p .t }}', '{{ regexReplaceAll .p .r .t }}'):
        try:
            render(tpl, dot={"p": p, "r": repl, "t": text * 100})
        except TemplateError:
            pass
    assert time.monotonic() - start < 0.5


class Ticks:
    """A clock that moves *step* seconds each time it is read (a slow machine, deterministically)."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_a_replacement_whose_every_match_scans_the_rest_of_the_text_runs_out_of_time() -> None:
    # "a*b|a" on "aaa...": each match is one "a", found after scanning to the end for a "b" (quadratic,
    # in Go as well): the rendering stops at MAX_RENDER_S on the clock it is given
    with pytest.raises(TemplateError, match=r"error calling regexReplaceAll: template took longer than 2s"):
        render('{{ regexReplaceAll "a*b|a" "x" .s }}', dot={"s": "a" * 100_000}, clock=Ticks(0.1))
    assert render('{{ regexReplaceAll "a*b|a" "x" .s }}', dot={"s": "a" * 100}, clock=Ticks(0.1)) == "x" * 100


def test_a_long_rendering_runs_out_of_time_between_steps_and_all_templates_share_the_time() -> None:
    with pytest.raises(TemplateError, match=r"template took longer than 2s to render"):
        render("{{ range 100000 }}{{ end }}", clock=Ticks(0.1))  # read every step
    one, two = (TemplateSpec(dest="a"),), (TemplateSpec(dest="a"), TemplateSpec(dest="b"))
    text = "{{ range 1500 }}{{ end }}"  # the clock is read at each of its ~1,500 steps: ~1.5 s on Ticks(1ms)
    assert render_task(one, (text,), {}, {}, "default", clock=Ticks(0.001)).error == ""
    r = render_task(two, (text, text), {}, {}, "default", clock=Ticks(0.001))  # together: ~3 s
    assert "template took longer than 2s to render" in r.error, r.error


def test_a_search_beyond_the_work_bound_is_refused_and_a_large_dfa_pattern_runs_fast() -> None:
    with pytest.raises(TemplateError, match=r"regexp: a pattern of \d+ instructions over 1000000 characters"):
        render('{{ regexMatch "(?:[a-z]{1000})+x" .s }}', dot={"s": "ab" * 500_000})
    start = time.monotonic()
    assert render('{{ regexMatch "(?:[a-z]{1000})+x" .s }}', dot={"s": "ab" * 200_000}) == "false"
    assert time.monotonic() - start < 0.5  # RE2's DFA with 32 MiB: not the NFA's seconds
