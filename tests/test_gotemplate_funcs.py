"""runtime.gotemplate: consul-template's functions beyond the basics -- scratch, mergeMap,
explodeMap, toYAML, toTOML, timestamp, and those of Consul's data (explode, byKey, byMeta) -- with
Go's results and error texts, within the renderer's bounds."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.gotemplate import MAX_JSON_DEPTH, TemplateError, go_time_format, render, timestamp_func

NOW = 1700000000.123456  # 2023-11-14 22:13:20.123456 UTC, a Tuesday


def r(text: str, **kw: Any) -> str:
    return render(text, **kw)


def err(text: str, **kw: Any) -> str:
    with pytest.raises(TemplateError) as e:
        render(text, **kw)
    return str(e.value)


def test_scratch_keeps_values_and_maps_for_one_rendering() -> None:
    assert r('{{ scratch.Set "a" "x" }}{{ scratch.Get "a" }} {{ scratch.Key "a" }} {{ scratch.Key "b" }}'
             '{{ scratch.SetX "a" "y" }} {{ scratch.Get "a" }}') == "x true false x"
    assert r('{{ scratch.MapSet "m" "b" 2 }}{{ scratch.MapSet "m" "a" 1 }}{{ scratch.MapSetX "m" "a" 9 }}'
             '{{ scratch.MapValues "m" }} {{ range $k, $v := scratch.Get "m" }}{{ $k }}={{ $v }};{{ end }}'
             ) == "[1 2] a=1;b=2;"
    assert r('{{ scratch.MapValues "none" }}|{{ scratch.Get "none" }}') == "[]|<no value>"
    assert r('{{ scratch.Key "a" }}') == "false"  # a rendering starts with an empty scratch
    assert err('{{ scratch.Set "a" 1 }}{{ scratch.MapSet "a" "x" 1 }}').endswith(
        'executing "" at <scratch.MapSet>: error calling MapSet: "a" is not a map')
    assert err("{{ scratch.Nope }}").endswith("can't evaluate field Nope in type *template.Scratch")
    assert err('{{ scratch.Set "a" }}').endswith("wrong number of args for Set: want 2 got 1")
    assert err("{{ scratch.Get 1 }}").endswith("wrong type for value; expected string; got int")


M = '{{ $m := parseJSON `{"a":{"b":1,"c":[1,2]},"x":"","s":"keep","n":null}` }}'
N = '{{ $n := parseJSON `{"a":{"b":2,"d":3,"c":[9]},"x":"y","s":"new","n":5,"z":null}` }}'


def test_merge_map_fills_what_is_missing_or_empty_and_with_override_replaces() -> None:
    assert r(M + N + "{{ mergeMap $m $n | toJSON }}") == \
        '{"a":{"b":1,"c":[1,2],"d":3},"n":5,"s":"keep","x":"y"}'
    assert r(M + N + "{{ mergeMapWithOverride $m $n | toJSON }}") == \
        '{"a":{"b":2,"c":[9],"d":3},"n":5,"s":"new","x":"y","z":null}'
    assert r(M + N + "{{ $_ := mergeMap $m $n }}{{ $m.x }}") == "y"  # dst changes in place, as Go's map
    assert r(N + "{{ mergeMap nil $n | len }}") == "4"  # a nil value is not merged without override
    assert err('{{ mergeMap "x" (parseJSON "{}") }}').endswith(
        "error calling mergeMap: wrong type for value; expected map[string]interface {}; got string")


def test_explode_map_nests_slash_separated_keys() -> None:
    assert r('{{ parseJSON `{"a/b/c":1,"a/d":"x","e":true,"f/":2}` | explodeMap | toJSON }}') == \
        '{"a":{"b":{"c":1},"d":"x"},"e":true,"f":{}}'
    assert err('{{ parseJSON `{"a":1,"a/b/c":2}` | explodeMap }}').endswith(
        'error calling explodeMap: explodeMap: not a map: "a/b/c": "a" already has value %!q(float64=1)')
    deep = "/".join(["k"] * (MAX_JSON_DEPTH + 2))
    assert "nested deeper than" in err(f'{{{{ parseJSON `{{"{deep}":1}}` | explodeMap }}}}')


def test_to_yaml_writes_as_yaml_v2() -> None:
    text = ('{{ parseJSON `{"a":{"b":[1,2.5,{"c":"d: e","n":null}],"t":"true"},"z":[],"e":{},'
            '"q":"it\'s","m":"l1\\nl2\\n","big":1e21,"k":"-x","dash":"- x"}` | toYAML }}')
    assert r(text) == (
        "a:\n  b:\n  - 1\n  - 2.5\n  - c: 'd: e'\n    \"n\": null\n  t: \"true\"\n"
        "big: 1e+21\ndash: '- x'\ne: {}\nk: -x\nm: |\n  l1\n  l2\nq: it's\nz: []")
    assert r("{{ parseJSON `[[1,2],{\"a\":\"\"}]` | toYAML }}") == "- - 1\n  - 2\n- a: \"\""
    assert r('{{ "plain" | toYAML }}|{{ 3 | toYAML }}') == "plain|3"


def test_to_toml_writes_as_burntsushi_toml() -> None:
    text = ('{{ parseJSON `{"a":{"b":1,"c":{"d":"x"}},"arr":[{"n":1},{"n":2}],"k":"v\\"q","l":[1,2],'
            '"sp ace":true,"nil":null}` | toTOML }}')
    assert r(text) == (
        'k = "v\\"q"\nl = [1.0, 2.0]\n"sp ace" = true\n\n[a]\n  b = 1.0\n  [a.c]\n    d = "x"\n\n'
        "[[arr]]\n  n = 1.0\n\n[[arr]]\n  n = 2.0")  # parseJSON's numbers are float64, as in Go
    assert err('{{ "x" | toTOML }}').endswith(
        "error calling toTOML: toTOML: toml: top-level values must be Go maps or structs")
    assert r('{{ parseJSON `{"big":1e21,"m":1000000,"f":0.5,"c":"\\u0001","in":[{"t":{"x":1},"a":2}, 3]}` '
             '| toTOML }}') == \
        'big = 1e+21\nc = "\\u0001"\nf = 0.5\nin = [{a = 2.0, t = {x = 1.0}}, 3.0]\nm = 1e+06'
    assert err("{{ parseJSON `{\"l\":[1,null]}` | toTOML }}").endswith(
        "toml: cannot encode array with nil element")


def test_timestamp_formats_the_injected_clock_by_go_layouts() -> None:
    funcs = {"timestamp": timestamp_func(lambda: NOW)}
    assert r("{{ timestamp }}", funcs=funcs) == "2023-11-14T22:13:20Z"
    assert r('{{ timestamp "unix" }}', funcs=funcs) == "1700000000"
    assert r('{{ timestamp "2006-01-02 15:04:05.000 MST" }}', funcs=funcs) == "2023-11-14 22:13:20.123 UTC"
    assert go_time_format(NOW, "Mon Jan _2 3:4:5 PM -0700 .999999 002") == \
        "Tue Nov 14 10:13:20 PM +0000 .123456 318"
    assert go_time_format(NOW, "Monday, January 2 06 pm") == "Tuesday, November 14 23 pm"
    assert err('{{ timestamp "a" "b" }}', funcs=funcs).endswith(
        "timestamp: wrong number of arguments, expected 0 or 1, but got 2")
    assert "no clock" in err("{{ timestamp }}")  # the renderer alone has no clock: the caller's


def test_consul_data_functions_take_only_consuls_values() -> None:
    """explode and byKey read ls/tree pairs, byMeta health services: Consul's, which this agent has not;
    nil gives an empty map as in Go, anything else is Go's type error."""
    text = "{{ explode .none | len }} {{ byKey .none | len }} {{ byMeta \"v\" .none | len }}"
    assert r(text, dot={}) == "0 0 0"
    assert err('{{ parseJSON "{}" | explode }}').endswith(
        "error calling explode: wrong type for value; expected []*dependency.KeyPair; "
        "got map[string]interface {}")
    assert err('{{ byMeta "v" (parseJSON "[]") }}').endswith(
        "expected []*dependency.HealthService; got []interface {}")


def test_new_functions_stay_within_the_renderers_bounds() -> None:
    big = "{{ parseJSON `[" + ",".join(['"' + "x" * 100 + '"'] * 100) + "]` | toYAML }}"
    assert "would be larger than 5000 bytes" in err(big, max_output=5000)
    assert "would be larger than 5000 bytes" in err(big.replace("toYAML", "toTOML"), max_output=5000) or \
        "top-level values" in err(big.replace("toYAML", "toTOML"), max_output=5000)
    table = "{{ range loop 200 }}{{ scratch.MapSet \"m\" (print .) \"xxxxxxxxxx\" }}" \
            "{{ end }}{{ scratch.Get \"m\" | toTOML }}"
    assert "would be larger than 3000 bytes" in err(table, max_output=3000)
    nested = "{{ scratch.MapSet \"m\" \"k\" 1 }}{{ range loop 300 }}{{ $m := scratch.Get \"m\" }}" \
             "{{ scratch.Set \"m\" (mergeMap (parseJSON \"{}\") $m) }}{{ end }}"
    assert r(nested) == ""
    cyclic = '{{ scratch.MapSet "m" "k" 1 }}{{ scratch.MapSet "m" "self" (scratch.Get "m") }}'
    for fn in ("toYAML", "toTOML"):
        assert "nested deeper than" in err(cyclic + f'{{{{ scratch.Get "m" | {fn} }}}}')
    assert "ran more than 1000 steps" in err('{{ range loop 5000 }}{{ scratch.MapSet "m" "k" . }}{{ end }}',
                                               max_steps=1000)


YAML = """# a service's configuration
db:
  host: db.internal   # comment
  port: 5432
  replicas: [a1, "b 2", {zone: z}]
  password: 'it''s'
enabled: yes
ratio: 1.5
none: ~
hex: 0x10
servers:
- name: s1
  tags:
    - web
- - nested
  - list
motd: |
  line one
  line two
folded: >-
  one
  two
quoted: "tab\\there"
"""


def test_parse_yaml_reads_configuration_as_yaml_v2() -> None:
    text = "{{ with parseYAML .y }}{{ .db.host }}:{{ .db.port }} {{ .db.replicas }} {{ .db.password }} " \
           "{{ .enabled }} {{ .ratio }} {{ .none }} {{ .hex }} {{ (index .servers 0).name }} " \
           "{{ index .servers 0 \"tags\" }} {{ index .servers 1 }} {{ .motd | toJSON }} {{ .folded }} " \
           "{{ .quoted | toJSON }}{{ end }}"
    assert r(text, dot={"y": YAML}) == (
        'db.internal:5432 [a1 b 2 map[zone:z]] it\'s true 1.5 <nil> 16 s1 [web] [nested list] '
        '"line one\\nline two\\n" one two "tab\\there"')
    assert r('{{ parseYAML "" | len }} {{ parseYAML "---\\n- 1\\n---\\n- 2" }} {{ parseYAML "x" }}') == \
        "0 [1] x"  # "" an empty map; the first document only
    assert r('{{ "a: 1\\nb: [x, \'y: z\']" | parseYAML | toYAML }}') == "a: 1\nb:\n- x\n- 'y: z'"


def test_to_yaml_breaks_long_values_past_80_columns_as_yaml_v2_and_parse_yaml_reads_them_back() -> None:
    long = " ".join(f"word{i}" for i in range(30))
    value = {"desc": long, "list": [long], "quoted": "k: " + long}
    text = r("{{ toYAML .v }}", dot={"v": value})
    assert text.split("\n")[:2] == [
        "desc: word0 word1 word2 word3 word4 word5 word6 word7 word8 word9 word10 word11 word12",
        "  word13 word14 word15 word16 word17 word18 word19 word20 word21 word22 word23 word24"]
    assert "quoted: 'k: word0" in text and all(len(line) < 90 for line in text.split("\n"))
    assert r("{{ toYAML .v | parseYAML | toJSON }}", dot={"v": value}) == \
        r("{{ toJSON .v }}", dot={"v": value})
    assert r("{{ parseYAML .d }}", dot={"d": "a: 'x\n  y'\nb: plain\n  more"}) == "map[a:x y b:plain more]"


@pytest.mark.parametrize("doc, message", [
    ("a: [1, 2", "yaml: line 1: did not find expected ',' or ']'"),
    ("a: 1\nb: 2\n  c: 3", "yaml: line 3: mapping values are not allowed in this context"),
    ("a: 1\n b: 2", "yaml: line 2: mapping values are not allowed in this context"),
    ("a: 'open", "yaml: line 1: found unexpected end of stream"),
    ("a: &x 1\nb: *x", "anchors, aliases, tags and complex keys are not supported by this agent"),
    ("a: !!str 1", "anchors, aliases, tags and complex keys are not supported by this agent"),
    ('a: "\\q"', "found unknown escape character"),
    ("a:\n\t- 1", "found character that cannot start any token"),
])
def test_parse_yaml_refuses_what_it_cannot_read_with_a_clear_error(doc: str, message: str) -> None:
    assert message in err("{{ parseYAML .d }}", dot={"d": doc})


def test_parse_yaml_stays_within_the_depth_bound() -> None:
    flow = "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5)
    assert "exceeded max depth" in err("{{ parseYAML .d }}", dot={"d": flow})
    block = "".join(" " * i + f"k{i}:\n" for i in range(MAX_JSON_DEPTH + 5))
    assert "exceeded max depth" in err("{{ parseYAML .d }}", dot={"d": block})


def test_spew_parses_and_fails_when_called() -> None:
    assert r("{{ if false }}{{ spew_dump . }}{{ end }}ok") == "ok"
    assert err('{{ spew_dump "x" }}').endswith(
        "error calling spew_dump: spew_dump is not supported by this agent")


def test_merge_map_with_override_replaces_a_scalar_by_a_map_but_merges_maps() -> None:
    d = '{{ $d := parseJSON `{"a":"x","b":{"k":1},"c":[1]}` }}'
    s = '{{ $s := parseJSON `{"a":{"n":1},"b":{"j":2},"c":"s"}` }}'
    assert r(d + s + "{{ mergeMap $d $s | toJSON }}") == '{"a":"x","b":{"j":2,"k":1},"c":[1]}'
    assert r(d + s + "{{ mergeMapWithOverride $d $s | toJSON }}") == '{"a":{"n":1},"b":{"j":2,"k":1},"c":"s"}'


def test_integer_math_is_gos_int64_truncating_and_modulo_takes_integers_only():
    from runtime.gotemplate import TemplateError, render

    assert render("{{ multiply 9223372036854775807 2 }}") == "-2"  # wraps, as Go's int64
    assert render("{{ add 9223372036854775807 1 }}") == "-9223372036854775808"
    assert render("{{ divide 2 -7 }} {{ modulo 2 -7 }}") == "-3 -1"  # -7 / 2 and -7 % 2 in Go
    assert render("{{ divide 2 7.0 }}") == "3.5"
    with pytest.raises(TemplateError, match=r"modulo: unknown type for '7.5' \(float64\)"):
        render("{{ modulo 2 7.5 }}")
    # Squaring in a loop ends at once (wrapped values), not in hours of big-integer arithmetic.
    assert render("{{ $x := 3 }}{{ range loop 64 }}{{ $x = multiply $x $x }}{{ end }}{{ $x }}") == \
        str(pow(3, 2 ** 64, 2 ** 64) - (2 ** 64 if pow(3, 2 ** 64, 2 ** 64) >= 2 ** 63 else 0))
