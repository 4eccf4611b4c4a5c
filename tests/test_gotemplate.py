"""runtime.gotemplate: Go's text/template as Nomad job files' templates use it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from runtime.gotemplate import TemplateError, render, sprintf


def r(text: str, dot: Any = None, **kw: Any) -> str:
    return render(text, dot=dot, **kw)


@pytest.mark.parametrize(("text", "dot", "want"), [
    ("plain text\n", None, "plain text\n"),
    ('a {{ "x" }} b', None, "a x b"),
    ("{{ .A }}-{{ .B.C }}", {"A": 1, "B": {"C": "z"}}, "1-z"),
    ("{{ .missing }}", {}, "<no value>"),
    ("{{ .missing.deeper }}", {}, "<no value>"),
    ("{{ .A }}", None, "<no value>"),
    ("{{ . }}", [1, "a", True], "[1 a true]"),
    ("{{ . }}", {"b": 1, "a": 2}, "map[a:2 b:1]"),
    ("{{ 1.5 }} {{ 2 }} {{ 0x10 }} {{ -3 }} {{ 'a' }}", None, "1.5 2 16 -3 97"),
    ("{{ `raw \\n` }}", None, "raw \\n"),
    ('{{ "esc\\t\\"q\\"" }}', None, 'esc\t"q"'),
])
def test_values_and_fields_print_as_go_prints_them(text: str, dot: Any, want: str) -> None:
    assert r(text, dot) == want


def test_trim_markers_eat_the_white_space_beside_the_action() -> None:
    assert r("a  \n {{- 1 -}} \n  b") == "a1b"
    assert r("a {{- 1 }} b") == "a1 b"
    assert r("a {{ 1 -}}\n\n b") == "a 1b"
    assert r("x{{-1}}") == "x-1"  # "{{-1" is the number -1, not a trim marker


def test_comments_write_nothing_and_trim_like_actions() -> None:
    assert r("a{{/* a comment\nover lines */}}b") == "ab"
    assert r("a \n{{- /* c */ -}}\n b") == "ab"


def test_if_else_if_else() -> None:
    t = "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else }}many{{ end }}"
    assert [r(t, {"N": n}) for n in (1, 2, 3)] == ["one", "two", "many"]
    assert r("{{ if .L }}y{{ else }}n{{ end }}", {"L": []}) == "n"
    assert r('{{ if and .A (not .B) }}y{{ end }}', {"A": "x", "B": ""}) == "y"


def test_range_over_lists_maps_with_variables_else_break_and_continue() -> None:
    assert r("{{ range . }}[{{ . }}]{{ end }}", ["a", "b"]) == "[a][b]"
    assert r("{{ range $i, $v := . }}{{ $i }}={{ $v }} {{ end }}", ["a", "b"]) == "0=a 1=b "
    assert r("{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}", {"b": "2", "a": "1"}) == "a=1;b=2;"
    assert r("{{ range . }}x{{ else }}empty{{ end }}", []) == "empty"
    t = ("{{ range . }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}"
         "{{ . }}{{ end }}")
    assert r(t, [1, 2, 3, 4, 5]) == "13"
    assert r("{{ range $x := . }}{{ $.P }}{{ $x }}{{ end }}", None) == ""


def test_with_sets_dot_and_else_with() -> None:
    assert r("{{ with .A }}{{ .B }}{{ end }}", {"A": {"B": "in"}}) == "in"
    assert r("{{ with .A }}a{{ else with .B }}{{ . }}{{ else }}none{{ end }}", {"A": "", "B": "b"}) == "b"
    assert r("{{ with .A }}a{{ else }}none{{ end }}", {}) == "none"


def test_variables_declare_assign_and_scope() -> None:
    assert r('{{ $x := "v" }}{{ $x }}{{ $x = "w" }}{{ $x }}') == "vw"
    assert r('{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}') == "2"
    assert r('{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}') == "21"


def test_pipelines_pass_the_value_as_the_last_argument() -> None:
    assert r('{{ "a,b,c" | split "," | join ";" }}') == "a;b;c"
    assert r('{{ "Hi" | toUpper | printf "%s!" }}') == "HI!"
    assert r('{{ (index . 1) | toLower }}', ["A", "B"]) == "b"


@pytest.mark.parametrize(("text", "want"), [
    ('{{ printf "%s-%d-%v-%q-%5.2f|%-3s|%03d" "s" 3 true "q" 3.14159 "x" 7 }}', 's-3-true-"q"- 3.14|x  |007'),
    ('{{ print 1 2 "a" "b" 3 }}', "1 2ab3"),
    ('{{ println "a" 1 }}', "a 1\n"),
    ("{{ len . }}", "3"),
    ('{{ index . 2 }}', "c"),
    ('{{ eq 1 1 }} {{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }}',
     "true true true true true true false"),
    ('{{ and 1 0 }} {{ or 0 "" "z" }} {{ not 0 }}', "0 z true"),
    ('{{ toUpper "abc" }} {{ toLower "ABC" }} {{ trimSpace "  x \\n" }}', "ABC abc x"),
    ('{{ replaceAll "a" "b" "banana" }} {{ contains "an" "banana" }} {{ "x" | contains "y" }}',
     "bbnbnb true false"),
    ('{{ split "," "a,b" }} {{ join "-" (split "," "a,b") }}', "[a b] a-b"),
    ('{{ base64Encode "hi" }} {{ base64Decode "aGk=" }}', "aGk= hi"),
    ('{{ (parseJSON "{\\"a\\": [1, 2]}").a }} {{ toJSON (parseJSON "{\\"b\\":1,\\"a\\":[true]}") }}',
     '[1 2] {"a":[true],"b":1}'),
    ('{{ parseJSON "{\\"a\\":1}" | toJSONPretty }}', '{\n  "a": 1\n}'),
    ('{{ "hello" | trimPrefix "he" }} {{ "a.conf" | trimSuffix ".conf" }} {{ toTitle "foo bar" }}',
     "llo a Foo Bar"),
    ('{{ regexReplaceAll "(a+)" "<$1>" "baaad" }} {{ regexMatch "^a" "abc" }} {{ indent 2 "a\\nb" }}',
     "b<aaa>d true   a\n  b"),
    ('{{ parseInt "42" | add 1 }} {{ 7 | subtract 2 }} {{ 7 | divide 2 }} {{ 7 | modulo 4 }} '
     '{{ 3 | multiply 2 }}',
     "43 5 3 3 6"),
    ('{{ parseBool "true" }} {{ parseFloat "1.5" }} {{ "b" | in . }} {{ containsAny (split "," "x,c") . }}',
     "true 1.5 true true"),
    ('{{ slice "abcdef" 1 3 }} {{ slice . 1 }} {{ html "<a href=\'x\'>&" }} {{ urlquery "a b&c" }}',
     "bc [b c] &lt;a href=&#39;x&#39;&gt;&amp; a+b%26c"),
    ('{{ sha256Hex "" }}', "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    # consul-template's toJSON is Go's json.Marshal: < > & escaped; toUnescapedJSON keeps them
    ('{{ toJSON "<a&b>" }} {{ toUnescapedJSON "<a&b>" }}', '"\\u003ca\\u0026b\\u003e" "<a&b>"'),
    ('{{ parseJSON "[\\"<\\"]" | toJSONPretty }} {{ parseJSON "[\\"<\\"]" | toUnescapedJSONPretty }}',
     '[\n  "\\u003c"\n] [\n  "<"\n]'),
    ('{{ range loop 3 }}{{ . }}{{ end }} {{ range $i := loop 2 "4" }}{{ $i }}{{ end }}', "012 23"),
    ('{{ splitToMap "," "=" "a=1,b=2,c" }} {{ trim "-" "--a-b--" }} {{ parseUint "" }} {{ parseUint "7" }}',
     "map[a:1 b:2] a-b 0 7"),
    ('{{ 3 | minimum 5 }} {{ 3 | maximum 5 }} {{ 2.5 | minimum 3 }}', "3 5 2.5"),
    ('{{ md5sum "a" }} {{ hmacSHA256Hex "msg" "key" }}',
     "0cc175b9c0f1b6a831c399e269772661 2d93cbc1be167bcb1637a4a23cbff01a7878f0c50ee833954ea5221bb1b8c628"),
    ('{{ base64URLEncode "??>" }} {{ base64URLDecode "Pz8-" }}', "Pz8- ??>"),
    ('{{ containsNone (split "," "x,y") . }} {{ containsNotAll (split "," "a,x") . }} '
     '{{ containsNotAll (split "," "a,b") . }}', "true true false"),
])
def test_functions(text: str, want: str) -> None:
    assert r(text, ["a", "b", "c"]) == want


def test_sprintf_reports_bad_verbs_and_extra_or_missing_args_as_go_does() -> None:
    assert sprintf("%d", "x") == "%!d(string=x)"
    assert sprintf("%s %s", "a") == "a %!s(MISSING)"
    assert sprintf("%s", "a", 1) == "a%!(EXTRA int=1)"
    assert sprintf("100%%") == "100%"


def test_other_delimiters() -> None:
    assert r("[[ .A ]] {{ .A }}", {"A": 5}, left="[[", right="]]") == "5 {{ .A }}"


def test_caller_functions_are_called_with_their_arguments() -> None:
    assert r('{{ env "HOME" }}', funcs={"env": lambda k: {"HOME": "/h"}.get(k, "")}) == "/h"


@pytest.mark.parametrize(("text", "error"), [
    ("{{ } }}", 'template: :1: unexpected "}" in operand'),
    ("{{ .A }", 'template: :1: unexpected "}" in operand'),
    ("a\n{{ foo 1 }}", 'template: :2: function "foo" not defined'),
    ("{{ if }}x{{ end }}", "template: :1: missing value for if"),
    ("{{ .A", "template: :1: unclosed action"),
    ("{{ if .A }}x", "template: :1: unexpected EOF"),
    ("x\n\n{{ end }}", "template: :3: unexpected {{end}}"),
    ('{{ "abc }}', "template: :1: unterminated quoted string"),
    ("{{ $x }}", 'template: :1: undefined variable "$x"'),
    ("{{ break }}", "template: :1: {{break}} outside {{range}}"),
    ("{{/* open", "template: :1: unclosed comment"),
    ("{{ (1 }}", "template: :1: unclosed left paren"),
])
def test_parse_errors_name_the_line_as_go_does(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as e:
        r(text, {})
    assert str(e.value) == error


def test_execution_errors_name_line_column_and_action() -> None:
    with pytest.raises(TemplateError,
                       match=r'^template: :1:3: executing "" at <.X>: map has no entry for key "X"$'):
        r("{{ .X }}", {}, missing_key_error=True)
    with pytest.raises(TemplateError, match=r"^template: :2:4: executing \"\" at <.A.B>: "
                                            r"can't evaluate field B in type int$"):
        r("\nab{{.A.B}}", {"A": 1})
    with pytest.raises(TemplateError, match=r'at <.A>: nil data; no entry for key "A"$'):
        r("{{ .A }}", None, missing_key_error=True)
    with pytest.raises(TemplateError, match=r"at <.A.B>: nil pointer evaluating interface \{\}.B$"):
        r("{{ .A.B }}", {"A": None})
    with pytest.raises(TemplateError, match="error calling index: index out of range: 5"):
        r("{{ index . 5 }}", [1])
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        r('{{ eq 1 "1" }}')
    with pytest.raises(TemplateError, match="wrong number of args for toUpper"):
        r('{{ toUpper "a" "b" }}')
    with pytest.raises(TemplateError, match="range can't iterate over x"):
        r("{{ range . }}{{ end }}", "x")


def test_a_data_function_error_is_an_execution_error_with_its_place() -> None:
    def fail(_: str) -> str:
        raise TemplateError("no such thing")
    with pytest.raises(TemplateError, match=r'^template: :1:3: executing "" at <get>: error calling get: '
                                            r"no such thing$"):
        r('{{ get "x" }}', funcs={"get": fail})


@pytest.mark.parametrize(("text", "error"), [
    ('{{ parseUint "-1" }}', 'parseUint: strconv.ParseUint: parsing "-1": invalid syntax'),
    ('{{ parseUint "18446744073709551616" }}', 'parsing "18446744073709551616": value out of range'),
    ('{{ base64URLDecode "Pz8+" }}', "base64URLDecode: illegal base64 data at input byte 3"),
    ("{{ loop 1 2 3 }}", "loop: wrong number of arguments, expected 1 or 2, but got 3"),
    ("{{ range $i, $v := loop 3 }}{{ end }}", "can't use a loop to iterate over more than one variable"),
    ('{{ minimum 1 "a" }}', "minimum: unknown type for 'a' (string)"),
])
def test_consul_template_helpers_fail_as_go_does(text: str, error: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(error)):
        r(text)


def test_a_huge_loop_is_bounded_by_the_steps() -> None:
    with pytest.raises(TemplateError, match="more than 1000000 steps"):
        r("{{ range loop 1000000000000 }}{{ end }}")
