"""Templates cannot hurt the client: whatever a job's template text, its functions' arguments or the
servers' data, runtime.gotemplate.render raises only TemplateError and render_task only reports an
error (review 13, finding 1 and the malformed server data)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.client.templates import Rendered, TemplateSpec, render_task
from runtime.gotemplate import MAX_JSON_DEPTH, MAX_NESTING, TemplateError, render


def task(text: str, data: dict[tuple[str, str], tuple[str, Any]] | None = None, **kw: Any) -> Rendered:
    return render_task((TemplateSpec(dest="x"),), (text,), {"A": "1"}, data or {}, "default", **kw)


@pytest.mark.parametrize(("text", "want"), [
    ("{{ 1e400 }}", "+Inf"),
    ("{{ -1e400 }}", "-Inf"),
    ('{{ parseFloat "nan" }}', "NaN"),
    ('{{ parseFloat "1e400" }}', "+Inf"),
    ("{{ multiply 1e308 10.0 }}", "+Inf"),
    ("{{ divide 0.5 1e400 }}", "+Inf"),
    ('{{ add 1 (parseFloat "inf") }}', "+Inf"),
    ('{{ parseFloat "1e400" | printf "%d" }}', "%!d(float64=+Inf)"),
    ("{{ 1000000.0 }} {{ 123456789.5 }} {{ 123456.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.5 }}",
     "1e+06 1.234567895e+08 123456 0.0001 1e-05 1.5"),
    ('{{ regexReplaceAll "a" "$1" "abc" }}', "bc"),  # no group 1: Go expands it to ""
    ('{{ regexReplaceAll "(a)(?P<n>b)" "${n}$1$$" "abc" }}', "ba$c"),
    ('{{ printf "%c" 65 }}{{ printf "%c" 1114112 }}{{ printf "%c" -1 }}', "A\ufffd\ufffd"),
    ('{{ printf "%c" "x" }}', "%!c(string=x)"),
    ('{{ printf "%.99999999s|%5.2f" "ab" 1.0 }}', "ab| 1.00"),
    ('{{ "a\\nb" | indent 2 }}', "  a\n  b"),
    ('{{ "a\\n\\nb\\n" | indent 2 }}', "  a\n\n  b\n"),
])
def test_values_go_prints_instead_of_exceptions(text: str, want: str) -> None:
    assert render(text) == want


@pytest.mark.parametrize(("text", "error"), [
    ('{{ indent "x" "y" }}', "error calling indent: indent: expected an integer"),
    ('{{ indent -1 "y" }}', "error calling indent: indent value must be a positive integer"),
    ('{{ "10" | indent 99999999999 }}', "error calling indent: result would be larger than"),
    ("{{ 10 | indent 2 }}", "error calling indent: wrong type for value; expected string; got int"),
    ('{{ printf "%999999999999d" 1 }}', "error calling printf: result would be larger than"),
    ('{{ printf "%.99999999f" 1.0 }}', "error calling printf: result would be larger than"),
    ('{{ $x := printf "%600000d" 1 }}{{ println $x $x $x $x $x }}', "error calling println: result would be"),
    ('{{ $x := printf "%600000d" 1 }}{{ print $x $x $x $x $x }}', "error calling print: result would be"),
    ('{{ toJSONPretty (parseJSON "' + "[" * 150 + "0" + ",0" * 5000 + "]" * 150 + '") }}',
     "error calling toJSONPretty: result would be larger than 1000000 bytes"),
    ('{{ replaceAll "" "xxxxxxxxxx" (printf "%1000000d" 1) }}', "error calling replaceAll: result would be"),
    ('{{ printf "%c" 100000000000000000000 }}', "100000000000000000000 overflows int"),
    ('{{ parseJSON "' + "[" * 100000 + '" }}', f"exceeded max depth ({MAX_JSON_DEPTH}"),
    ('{{ parseJSON "[1e400]" }}', "cannot unmarshal number 1e400"),
    ('{{ parseJSON "NaN" }}', "error calling parseJSON"),
    ("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}",
     f"max expression depth exceeded (this agent allows {MAX_NESTING})"),
    ("{{ if 1 }}" * 200 + "{{ end }}" * 200, "max expression depth exceeded"),
    ('{{ sha256Hex "\\ud800" }}', 'invalid syntax: "\\ud800"'),
    ("{{ range 1000000000000 }}{{ end }}", "template ran more than"),
    ('{{ range 100000 }}{{ printf "%100d" 1 }}{{ end }}', "rendered output is larger than 1000000 bytes"),
    ('{{ sha256Hex (env "S") }}', "error calling sha256Hex"),
])
def test_bad_templates_are_template_errors(text: str, error: str) -> None:
    funcs = {"env": lambda name: "\ud800"}
    with pytest.raises(TemplateError) as e:
        render(text, funcs=funcs, max_output=1_000_000)
    assert error in str(e.value)


def test_parse_json_numbers_are_float64_as_in_go() -> None:
    assert render('{{ (parseJSON "{\\"n\\":1000000}").n }} {{ (parseJSON "[3]") }}') == "1e+06 [3]"
    assert render('{{ eq (parseJSON "{\\"n\\":3}").n 3.0 }}') == "true"
    assert render('{{ toJSON (parseJSON "{\\"n\\":3,\\"f\\":1.5}") }}') == '{"f":1.5,"n":3}'
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{ eq (parseJSON "{\\"n\\":3}").n 3 }}')
    with pytest.raises(TemplateError, match="json: unsupported value: NaN"):
        render('{{ toJSON (parseFloat "nan") }}')


def test_a_function_that_raises_anything_is_gos_error_calling() -> None:
    def boom(*_: Any) -> Any:
        raise KeyError("nope")
    with pytest.raises(TemplateError, match=r"at <boom>: error calling boom: 'nope'"):
        render("{{ boom 1 }}", funcs={"boom": boom})


# review 13's reproduction (/tmp/fuzz_t.py): 13 of these 21 raised out of render_task
_REVIEW_CASES = [
    '{{ 1e400 }}', '{{ indent "x" "y" }}', '{{ printf "%c" 100000000000000000000 }}',
    '{{ regexReplaceAll "a" "$1" "a" }}', '{{ parseJSON "' + '[' * 100000 + '" }}',
    '{{' + '(' * 5000 + '1' + ')' * 5000 + '}}', '{{ divide 0.5 1e400 }}', '{{ multiply 1e308 10.0 }}',
    '{{ toJSON (parseJSON "[1e400]") }}', '{{ sha256Hex "\\ud800" }}', '{{ base64Encode "\\ud800" }}',
    '{{ printf "%x" -1.5 }}', '{{ modulo 0.0 5 }}', '{{ printf "%d" 10 | indent 99999999999 }}',
    '{{ slice "abc" 1 }}', '{{ range $i, $e := 3 }}{{$i}}{{end}}', '{{ "\\ud800" }}',
    '{{ printf "%q" "\\ud800" }}', '{{ parseFloat "nan" }}', '{{ parseFloat "1e400" | printf "%d" }}',
    '{{ add 1 (parseFloat "inf") }}']


@pytest.mark.parametrize("text", _REVIEW_CASES)
def test_the_reviews_templates_render_or_fail_the_render(text: str) -> None:
    r = task(text)
    assert isinstance(r, Rendered) and (r.complete or r.error.startswith("template: "))


def test_render_task_bounds_all_templates_together_and_fails_the_task() -> None:
    specs = (TemplateSpec(dest="a"), TemplateSpec(dest="b"))
    r = render_task(specs, ('{{ printf "%600d" 1 }}', '{{ printf "%600d" 1 }}'), {}, {}, "default",
                    max_output=1000)
    assert "larger than 400 bytes" in r.error and not r.complete
    r = render_task(specs, ('{{ printf "%400d" 1 }}', '{{ printf "%400d" 1 }}'), {}, {}, "default",
                    max_output=1000)
    assert r.complete and len(r.outputs[1]) == 400


@pytest.mark.parametrize(("data", "text"), [
    ({("var", "nomad/jobs/j"): ("", [1])}, '{{ nomadVar "nomad/jobs/j" }}'),
    ({("var", "nomad/jobs/j"): ("", {"Items": {"a": 1}})}, '{{ (nomadVar "nomad/jobs/j").a }}'),
    ({("var", "nomad/jobs/j"): ("", {"Items": ["a"]})}, '{{ nomadVarExists "nomad/jobs/j" }}'),
    ({("varlist", ""): ("", {"a": 1})}, "{{ nomadVarList }}"),
    ({("varlist", ""): ("", [3])}, "{{ nomadVarList }}"),
    ({("service", "db"): ("", {"x": 1})}, '{{ nomadService "db" }}'),
    ({("service", "db"): ("", [{"Tags": 5, "ID": "x"}])}, '{{ nomadService "db" }}'),
    ({("service", "db"): ("", [{"Port": 1}])}, '{{ nomadService 1 "k" "db" }}'),
    ({("services", ""): ("", [{"Tags": []}])}, "{{ nomadServices }}"),
    ({("services", ""): ("", "x")}, "{{ nomadServices }}"),
])
def test_server_data_of_the_wrong_shape_fails_the_render_with_a_clear_error(data: Any, text: str) -> None:
    r = task(text, data)
    assert "the server's answer is malformed" in r.error


# ------------------------------------------------------------ fuzz: nothing else escapes
_WORDS = ["{{", "}}", "{{-", "-}}", "(", ")", "|", " ", "$x", ":=", "=", ".", ".A", "$", '"s"', "`r`", "'c'",
          "1", "-1", "1e400", "0x10", "1.5", "nil", "true", "if", "else", "end", "range", "with", "break",
          "printf", '"%c"', '"%d"', '"%v"', '"%999d"', "indent", "parseJSON", "parseFloat", '"nan"', '"inf"',
          "regexReplaceAll", '"(a)"', '"$1"', '"$9"', "toJSON", "multiply", "divide", "modulo", "add",
          "index", "slice", "len", "eq", "lt", "and", "or", "not", "split", "join", "replaceAll", "sha256Hex",
          "base64Decode", "nomadVar", "nomadVarList", "nomadService", "nomadServices", "env", '"A"', '"p"',
          "toUpper", "print", "println", "html", "js", "urlquery", "/*", "*/", "\n", "'\\u0000'",
          '"\\xff"', "regexMatch", "loop", "splitToMap", "trim", "parseUint", "minimum", "maximum", "md5sum",
          "hmacSHA256Hex", "base64URLDecode", "base64URLEncode", "toUnescapedJSON", "toJSONPretty",
          "toUnescapedJSONPretty", "containsNone", "containsNotAll", "mustEnv", "envOrDefault", "plugin",
          "writeToFile", '"(a+)+$"', '"\\\\1"', "byTag",
          # consul-template's functions added later (runtime.gotemplate, actors.client.templates)
          "scratch", "scratch.Set", "scratch.SetX", "scratch.Get", "scratch.Key", "scratch.MapSet",
          "scratch.MapSetX", "scratch.MapValues", "scratch.Nope", '"m"', "mergeMap", "mergeMapWithOverride",
          "explodeMap", "explode", "byKey", "byMeta", "byPort", "toYAML", "toTOML", "parseYAML", '"a: [1]"',
          "timestamp", '"unix"', '"2006-01-02 .000 Z07:00"', "file", '"/etc/passwd"', '"a/b"', "nil"]

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                     max_leaves=8)
_data = st.dictionaries(
    st.tuples(st.sampled_from(["var", "varlist", "service", "services"]), st.sampled_from(["", "p", "A"])),
    st.tuples(st.sampled_from(["", "Permission denied"]), _json), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(_WORDS) | st.text(string.printable, max_size=3), max_size=25),
       data=_data, dot=_json)
def test_fuzz_render_raises_only_template_error_and_render_task_never(words: list[str], data: Any,
                                                                      dot: Any) -> None:
    text = "".join(words)
    try:
        render(text, dot=dot, max_output=10_000)
    except TemplateError:
        pass
    r = task(text, data, max_output=10_000)
    assert isinstance(r, Rendered)
    assert not r.error.startswith("template rendering failed"), r.error  # the last resort never needed
