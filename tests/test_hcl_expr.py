"""HCL2 expressions in job files (runtime.hcl_expr, runtime.hcl_functions) through parse_hcl_job, against
what Nomad's jobspec2 gives for the same file (its parse_test.go cases are marked so)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.hcl_job import HclJobError, parse_hcl_job

NOMAD_FIXTURES = Path(__file__).parent / "data" / "jobspec2"


def _config_job(expr: str, pre: str = "") -> str:
    return (pre + 'job "x" {\n group "g" {\n  task "t" {\n   driver = "raw_exec"\n   config {\n    v = '
            + expr + '\n   }\n  }\n }\n}\n')


def value(expr: str, pre: str = "", **kwargs: object) -> object:
    """What *expr* evaluates to, as a task's config attribute (passed on as written)."""
    job = parse_hcl_job(_config_job(expr, pre), **kwargs)  # type: ignore[arg-type]
    return job["TaskGroups"][0]["Tasks"][0]["Config"]["v"]


@pytest.mark.parametrize(("expr", "expected"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("8 / 2", 4), ("-7 % 3", -1), ("0.1 + 0.2", 0.3),
    ('"5" + 1', 6), ("12345678901234567890 + 1", 12345678901234567891), ("-(2 - 5)", 3),
    ('1 == "1"', False), ("1 == 1.0", True), ('"a" != "b"', True), ("[1, 2] == [1, 2]", True),
    ("!false", True), ("3 > 2 && 1 < 0 || true", True), ("2 >= 2", True), ("1 <= 0", False),
    ('true ? "yes" : "no"', "yes"), ('1 > 2 ? "yes" : 1 > 0 ? "nested" : "no"', "nested"),
])
def test_operators_and_conditionals_follow_hcl_precedence_and_types(expr: str, expected: object) -> None:
    got = value(expr)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("expr", "expected"), [
    ('[for s in ["a", "", "c"] : upper(s) if s != ""]', ["A", "C"]),
    ('[for i, s in ["a", "b"] : "${i}=${s}"]', ["0=a", "1=b"]),
    ("{for k, v in {b = 1, a = 2} : k => v * 10}", {"a": 20, "b": 10}),
    ('{for s in ["a", "bb", "cc"] : strlen(s) => s...}', {"1": ["a"], "2": ["bb", "cc"]}),
    ("[for k, v in {b = 1, a = 2} : k]", ["a", "b"]),  # maps are walked in key order, as cty does
    ("[{n = 1}, {n = 2}][*].n", [1, 2]), ('{n = "x"}[*].n', ["x"]), ("[[1, 2], [3]][0][1]", 2),
    ('{a = {b = [5]}}.a.b[0]', 5), ('{a = {b = [5]}}["a"]["b"]', [5]), ("[1, 2, 3].1", 2),
    ("[[1, [2, 3]]].0.1.1", 3),  # legacy index steps: .0.1 is two of them, not the number 0.1
])
def test_for_expressions_splats_and_indexing(expr: str, expected: object) -> None:
    assert value(expr) == expected


def test_templates_interpolate_and_run_if_and_for_directives_with_strip_markers() -> None:
    assert value('"%{ for x in [1, 2] }<${x}>%{ endfor }"') == "<1><2>"
    assert value('"a %{ if true ~} b %{~ else } c %{ endif }d"') == "a bd"
    assert value('"%{ if 1 > 2 }big%{ else }small%{ endif }"') == "small"
    assert value('"${1 + 1} and ${"nested ${upper("x")}"}"') == "2 and nested X"
    assert value('"$${literal} %%{ literal }"') == "${literal} %{ literal }"
    with pytest.raises(HclJobError, match="Cannot include the given value in a string template"):
        value('"list: ${[1]}"')
    heredoc = ("<<EOT\n%{ for k, v in { b = 2, a = 1 } ~}\n${k}=${v}\n%{ endfor ~}\n"
               "%{ if false }never%{ endif }end\nEOT")
    assert value(heredoc) == "a=1\nb=2\nend\n"
    indented = "<<-EOT\n    hello ${upper(\"x\")}\n      %{~ if true ~}\n    yes\n    %{~ endif }\n    EOT"
    assert value(indented) == "hello Xyes\n"
    with pytest.raises(HclJobError, match="not a valid HCL file"):  # python-hcl2 refuses it first
        value('"%{ if true }x"')
    with pytest.raises(HclJobError, match="not a valid HCL file"):
        value('"curl -w %{http_code}"')  # Nomad wants %%{ here too
    assert value('"curl -w %%{http_code}"') == "curl -w %{http_code}"


def test_heredocs_inside_expressions_and_whole_numbers() -> None:
    pre = ('locals {\n a = trimspace(<<EOT\n  x ${upper("y")}\nEOT\n)\n'
           ' b = [for l in split("\\n", chomp(<<-EOT\n    one\n      two\n    EOT\n)) : upper(l)]\n}\n')
    assert value("[local.a, local.b]", pre=pre) == ["x Y", ["ONE", "  TWO"]]
    got = value("[1.0, 2.50, 1e3]")
    assert got == [1, 2.5, 1000] and isinstance(got[0], int)  # cty has one number type: 1.0 is 1


def test_an_attribute_set_to_null_is_not_set() -> None:
    job = parse_hcl_job('variable "r" { default = "" }\njob "x" {\n region = var.r != "" ? var.r : null\n'
                        ' group "g" {\n  count = null\n }\n}\n')
    assert "Region" not in job and "Count" not in job["TaskGroups"][0]


# Nomad's TestParse_UndefinedVariables: names that are not variables stay as their ${...} text for the client.
@pytest.mark.parametrize("text", [
    "plain", "foo-${BAR}", "foo-${attr.network.dev-us-east1-relay-vpc.external-ip.0}", '${env["BLAH"]}',
    '${mixed-indexing.0[3]["FOO"].5}', "${NOMAD_ALLOC_DIR}/x", "${node.unique.name}-${meta.rack}",
    "${device.attr.memory}",
])
def test_runtime_interpolations_stay_as_text(text: str) -> None:
    assert parse_hcl_job(f'job "example" {{\n  region = "{text}"\n}}')["Region"] == text


def test_an_unquoted_runtime_name_becomes_its_interpolation_and_functions_see_the_text() -> None:
    assert parse_hcl_job('job "example" {\n  region = meta.mytest\n}')["Region"] == "${meta.mytest}"
    # As in Nomad: the name is a string "${attr.x}" by the time a function sees it.
    assert value('upper("${attr.x}")') == "${ATTR.X}"
    assert value('"${attr.x}" == "${attr.x}"') is True


def test_unknown_functions_are_refused_by_name_with_where() -> None:
    with pytest.raises(HclJobError, match=r"job\['x'\].*config.v: Call to unknown function; There is no "
                                          r'function named "regexall"'):
        value('regexall("a", "b")')
    with pytest.raises(HclJobError, match=r'There is no function named "tostring"'):  # not in Nomad's table
        value("tostring(1)")
    with pytest.raises(HclJobError, match=r"the function bcrypt\(\) is not supported by this agent"):
        value('bcrypt("x")')


@pytest.mark.parametrize(("expr", "expected"), [
    # numbers
    ("abs(-2.5)", 2.5), ("ceil(1.2)", 2), ("floor(1.7)", 1), ("log(8, 2)", 3), ("max(1, 5, 3)", 5),
    ("min([4, 2]...)", 2), ('parseint("ff", 16)', 255), ("pow(2, 10)", 1024), ("signum(-3)", -1),
    # strings
    ('format("[%5s|%-5s|%.2s]", "a", "b", "cde")', "[    a|b    |cd]"),
    ('chomp("x\\n\\n")', "x"), ('format("%s=%03d %.2f %q %t %v", "a", 7, 1.5, "q", true, [1])',
                               'a=007 1.50 "q" true [1]'),
    ('formatlist("%s-%s", ["a", "b"], "x")', ["a-x", "b-x"]), ('indent(2, "a\\nb")', "a\n  b"),
    ('join("-", ["a"], ["b"])', "a-b"), ('lower("AB")', "ab"), ('replace("a.b.c", ".", "/")', "a/b/c"),
    ('replace("a1b22", "/[0-9]+/", "#")', "a#b#"), ('regex_replace("abc123", "[0-9]+", "-")', "abc-"),
    ('split(",", "a,b")', ["a", "b"]), ('strrev("abc")', "cba"), ('substr("hello", 1, 3)', "ell"),
    ('title("hello world-wide")', "Hello World-Wide"), ('trim("?!a?", "?!")', "a"),
    ('trimprefix("ab", "a")', "b"),
    ('trimsuffix("ab", "b")', "a"), ('trimspace("  a \\n")', "a"), ('upper("abc")', "ABC"),
    ('strlen("héllo")', 5),
    # collections
    ("chunklist([1, 2, 3], 2)", [[1, 2], [3]]), ('coalesce("", "x")', "x"), ("coalescelist([], [1])", [1]),
    ('compact(["a", "", "b"])', ["a", "b"]), ("concat([1], [2, 3])", [1, 2, 3]),
    ('contains(["a"], "a")', True), ("distinct([1, 2, 1])", [1, 2]), ('element(["a", "b"], 3)', "b"),
    ("flatten([[1, [2]], 3])", [1, 2, 3]), ('index(["a", "b"], "b")', 1),
    ("keys({b = 1, a = 2})", ["a", "b"]),
    ("length({a = 1})", 1), ('lookup({a = 1}, "b", 0)', 0),
    ("merge({a = 1}, {b = 2, a = 3})", {"a": 3, "b": 2}),
    ("range(1, 10, 3)", [1, 4, 7]), ("reverse([1, 2])", [2, 1]),
    ('setintersection(["a", "b"], ["b"])', ["b"]),
    ('setproduct(["a"], [1, 2])', [["a", 1], ["a", 2]]), ('setunion(["b"], ["a", "b"])', ["a", "b"]),
    ("slice([1, 2, 3, 4], 1, 3)", [2, 3]), ('sort(["b", "a"])', ["a", "b"]),
    ("values({b = 1, a = 2})", [2, 1]),
    ('zipmap(["b", "a"], [1, 2])', {"a": 2, "b": 1}),
    # encoding
    ('base64encode("hi")', "aGk="), ('base64decode("aGk=")', "hi"),
    ('csvdecode("a,b\\n1,2\\n")', [{"a": "1", "b": "2"}]),
    ('jsonencode({b = [1, "x", null, true], a = "<&>"})',
     '{"a":"\\u003c\\u0026\\u003e","b":[1,"x",null,true]}'),
    ('jsondecode("{\\"a\\": [1, 2.5]}")', {"a": [1, 2.5]}), ('urlencode("a b&c")', "a+b%26c"),
    ('yamlencode({foo = [1, 2], bar = "baz"})', '"bar": "baz"\n"foo":\n- 1\n- 2\n'),
    # dates
    ('timeadd("2017-11-22T00:00:00Z", "10m")', "2017-11-22T00:10:00Z"),
    ('timeadd("2017-11-22T00:00:00+01:00", "-1h30m")', "2017-11-21T22:30:00+01:00"),
    ('formatdate("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z")', "02 Jan 2018 23:12 UTC"),
    ("formatdate(\"MMM D, YYYY 'at' H:mm AA\", \"2018-01-02T23:12:01Z\")", "Jan 2, 2018 at 11:12 PM"),
    # hashes, uuids, networks, conversion, errors
    ('md5("x")', "9dd4e461268c8034f5c8564e155c67a6"),
    ('sha1("x")', "11f6ad8ec52a2984abaafd7c3b516503785c2072"),
    ('sha256("x")', "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),
    ('uuidv5("dns", "example.com")', "cfbff0d1-9375-5685-968c-48ce8b15ae17"),
    ('cidrhost("10.0.0.0/24", 5)', "10.0.0.5"), ('cidrnetmask("10.0.0.0/12")', "255.240.0.0"),
    ('cidrsubnet("10.0.0.0/16", 8, 2)', "10.0.2.0/24"),
    ('cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)',
     ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"]),
    ("convert(5, string)", "5"), ('convert(["b", "a", "b"], set(string))', ["a", "b"]),
    ('try(local.nope, "fallback")', "fallback"), ("can(1 + [])", False), ('can(upper("x"))', True),
])
def test_nomads_functions(expr: str, expected: object) -> None:
    assert value(expr) == expected


def test_yamldecode_reads_configuration_yaml(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text('''
# the app's settings
name: web
count: 3
ratio: 0.5
enabled: true
empty:
tags: [a, b, "c d"]
meta: {x: 1, y: two}
servers:
- host: a.example
  port: 1
- host: b.example
  port: 2
nested:
  deep:
    key: "quoted: yes"
    other: 'it''s'
script: |
  line one
  line two
folded: >-
  a
  b
url: http://x.y/z
''')
    got = value('yamldecode(file("app.yaml"))', base_dir=str(tmp_path))
    assert got == {"name": "web", "count": 3, "ratio": 0.5, "enabled": True, "empty": None,
                   "tags": ["a", "b", "c d"], "meta": {"x": 1, "y": "two"},
                   "servers": [{"host": "a.example", "port": 1}, {"host": "b.example", "port": 2}],
                   "nested": {"deep": {"key": "quoted: yes", "other": "it's"}},
                   "script": "line one\nline two\n", "folded": "a b", "url": "http://x.y/z"}
    assert value('yamldecode("- - 1\\n  - 2\\n- 3")') == [[1, 2], 3]
    with pytest.raises(HclJobError, match="anchors, aliases and tags are not supported"):
        value('yamldecode("a: &x 1")')
    with pytest.raises(HclJobError, match="several YAML documents"):
        value('yamldecode("a: 1\\n---\\nb: 2")')


def test_rsadecrypt_reads_what_the_public_key_encrypted() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    secret = base64.b64encode(key.public_key().encrypt(b"s3cret", padding.PKCS1v15())).decode()
    pre = f'locals {{\n key = <<EOT\n{pem}EOT\n}}\n'
    assert value(f'rsadecrypt("{secret}", local.key)', pre=pre) == "s3cret"
    with pytest.raises(HclJobError, match="failed to parse key"):
        value(f'rsadecrypt("{secret}", "nope")')


def test_a_failing_function_says_which_and_why() -> None:
    with pytest.raises(HclJobError, match=r'Call to function "element" failed: cannot use element function '
                                          "with an empty list"):
        value("element([], 0)")
    with pytest.raises(HclJobError, match=r"more than 1024 values"):
        value("range(5000)")


def test_file_functions_read_beside_the_job_file_and_are_refused_without_it(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.txt").write_text("hello\n")
    (tmp_path / "conf" / "b.txt").write_text("x")
    assert value('file("conf/a.txt")', base_dir=str(tmp_path)) == "hello\n"
    assert value('fileexists("conf/a.txt")', base_dir=str(tmp_path)) is True
    assert value('fileset("conf", "*.txt")', base_dir=str(tmp_path)) == ["a.txt", "b.txt"]
    assert value('filebase64("conf/b.txt")', base_dir=str(tmp_path)) == "eA=="
    assert value('basename("a/b/c.txt")', base_dir=str(tmp_path)) == "c.txt"
    assert value('dirname("a/b/c.txt")', base_dir=str(tmp_path)) == "a/b"
    with pytest.raises(HclJobError, match="failed to read missing"):
        value('file("missing")', base_dir=str(tmp_path))
    with pytest.raises(HclJobError, match="filesystem function disabled"):  # Nomad's TestParse_FileOperators
        value('file("conf/a.txt")')


def test_dynamic_blocks_as_nomads_parse_test() -> None:
    """Nomad's TestParseDynamic."""
    job = parse_hcl_job('''
job "example" {
  dynamic "group" {
    for_each = [
      { name = "groupA", idx = 1 },
      { name = "groupB", idx = 2 },
      { name = "groupC", idx = 3 },
    ]
    labels   = [group.value.name]
    content {
      count = group.value.idx
      service {
        port = group.value.name
      }
      task "simple" {
        driver  = "raw_exec"
        config {
          command = group.value.name
        }
        meta {
          VERSION = group.value.idx
        }
        env {
          ID = format("id:%s", group.value.idx)
        }
        resources {
          cpu = group.value.idx
        }
      }
    }
  }
}
''')
    groups = job["TaskGroups"]
    assert [g["Name"] for g in groups] == ["groupA", "groupB", "groupC"]
    assert [g["Count"] for g in groups] == [1, 2, 3]
    assert groups[0]["Tasks"][0]["Resources"]["CPU"] == 1
    assert groups[0]["Services"][0]["PortLabel"] == "groupA"
    assert groups[0]["Tasks"][0]["Config"]["command"] == "groupA"
    assert groups[0]["Tasks"][0]["Meta"]["VERSION"] == "1" and groups[2]["Tasks"][0]["Meta"]["VERSION"] == "3"
    assert [g["Tasks"][0]["Env"]["ID"] for g in groups] == ["id:1", "id:2", "id:3"]


def test_nested_dynamic_blocks_with_iterators_follow_the_static_ones() -> None:
    job = parse_hcl_job('''
locals {
  tasks = { web = ["8080", "8081"], api = ["9090"] }
}
job "x" {
  group "g" {
    constraint {
      attribute = "${attr.kernel.name}"
      value     = "linux"
    }
    dynamic "constraint" {
      for_each = ["a", "b"]
      content {
        attribute = "${meta.rack}-${constraint.value}"
        value     = constraint.key
      }
    }
    dynamic "task" {
      for_each = local.tasks
      iterator = t
      labels   = ["${t.key}-task"]
      content {
        driver = "raw_exec"
        config {
          command = "/bin/serve"
        }
        dynamic "template" {
          for_each = t.value
          iterator = port
          content {
            data        = "port=${port.value} of ${t.key}"
            destination = "local/${port.key}.conf"
          }
        }
      }
    }
  }
}
''')
    group = job["TaskGroups"][0]
    assert [(c["LTarget"], c["RTarget"]) for c in group["Constraints"]] == [
        ("${attr.kernel.name}", "linux"), ("${meta.rack}-a", "0"), ("${meta.rack}-b", "1")]
    assert [t["Name"] for t in group["Tasks"]] == ["api-task", "web-task"]  # a map is walked in key order
    web = group["Tasks"][1]
    assert [(t["EmbeddedTmpl"], t["DestPath"]) for t in web["Templates"]] == [
        ("port=8080 of web", "local/0.conf"), ("port=8081 of web", "local/1.conf")]


def test_a_dynamic_block_needs_for_each_and_content() -> None:
    with pytest.raises(HclJobError, match=r"dynamic\['task'\]: a dynamic block needs"):
        parse_hcl_job('job "x" {\n group "g" {\n  dynamic "task" {\n   for_each = [1]\n'
                      '   labels = ["t"]\n  }\n }\n}\n')


def test_locals_refer_to_each_other_in_any_order_and_to_variables() -> None:
    """Nomad's TestParse_Locals and TestParse_VarsAndFunctions (a ``variables`` block)."""
    text = '''
variables {
  region_var = "default_region"
}
locals {
  upper_region = upper(local.region)
  region = "${var.region_var}.example"
  dc = "local_dc"
}
job "example" {
  datacenters = [for s in [local.dc, "dc2"] : upper(s)]
  region      = local.upper_region
}
'''
    job = parse_hcl_job(text)
    assert job["Datacenters"] == ["LOCAL_DC", "DC2"] and job["Region"] == "DEFAULT_REGION.EXAMPLE"
    assert parse_hcl_job(text, var_args={"region_var": "set"})["Region"] == "SET.EXAMPLE"


def test_lookup_with_a_default_picks_the_environment() -> None:
    """Nomad's TestParseJob_JobWithFunctionsAndLookups."""
    text = '''
variable "env" {
  description = "target environment for the job"
}
locals {
  environments = {
    prod    = { count = 20, dcs = ["prod-dc1", "prod-dc2"] },
    staging = { count = 3, dcs = ["dc1"] },
  }
  env = lookup(local.environments, var.env, { count = 0, dcs = [] })
}
job "job-webserver" {
  datacenters = local.env.dcs
  group "group-webserver" {
    count = local.env.count
    task "server" {
      driver = "docker"
      config {
        image = "hashicorp/http-echo"
        args  = ["-text", "Hello from ${var.env}"]
      }
    }
  }
}
'''
    for env, dcs, count in (("prod", ["prod-dc1", "prod-dc2"], 20), ("staging", ["dc1"], 3),
    ("unknown", [], 0)):
        job = parse_hcl_job(text, var_args={"env": env})
        assert job["Datacenters"] == dcs and job["TaskGroups"][0]["Count"] == count
        assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["-text", f"Hello from {env}"]


def test_variables_are_converted_to_their_declared_types_element_by_element() -> None:
    pre = '''
variable "a" {
  type    = list(string)
  default = [1, true, "x"]
}
variable "b" {
  type    = map(number)
  default = { x = "3" }
}
variable "c" {
  type    = object({name = string, ports = list(number)})
  default = { name = 1, ports = ["80"], extra = 1 }
}
variable "d" {
  type    = set(string)
  default = ["b", "a", "b"]
}
variable "e" {
  type    = tuple([string, number])
  default = [1, "2"]
}
'''
    assert value("[var.a, var.b, var.c, var.d, var.e]", pre=pre) == [
        ["1", "true", "x"], {"x": 3}, {"name": "1", "ports": [80]}, ["a", "b"], ["1", 2]]
    with pytest.raises(HclJobError, match=r'variable "c" default: .* \(attribute "ports" is required\)'):
        value("var.c", pre=pre.replace(', ports = ["80"]', ""))
    with pytest.raises(HclJobError, match=r'variable "b" default.x: .* is not a valid number'):
        value("var.b", pre=pre.replace('x = "3"', 'x = "three"'))


def test_variable_values_are_constants_without_variables_or_function_calls() -> None:
    pre = 'variable "l" {\n type = list(string)\n default = ["a"]\n}\n'
    assert value("var.l", pre=pre, var_args={"l": '["a", "b"]'}) == ["a", "b"]
    for where, kwargs in (("-var l", {"var_args": {"l": '["a", upper("b")]'}}),
                          ("variable file: l", {"var_files": ['l = [lower("A")]\n']}),
                          ('variable "l" default', {})):
        text = pre if kwargs else pre.replace('["a"]', '[upper("a")]')
        with pytest.raises(HclJobError, match=f"{where}: Function calls not allowed"):
            value("var.l", pre=text, **kwargs)


VALIDATED = '''
variable "port" {
  type    = number
  default = 8080
  validation {
    condition     = var.port > 1024 && var.port < 65536
    error_message = "The port must be above 1024."
  }
}
job "x" { meta { port = var.port } }
'''


def test_variable_validation_passes_or_fails_with_nomads_message() -> None:
    assert parse_hcl_job(VALIDATED)["Meta"]["port"] == "8080"
    with pytest.raises(HclJobError, match=r"Invalid value for cmd variable; The port must be above 1024\.\n\n"
                                          r'This was checked by the validation rule in variable "port"'):
        parse_hcl_job(VALIDATED, var_args={"port": "80"})
    with pytest.raises(HclJobError, match="Invalid value for env variable"):
        parse_hcl_job(VALIDATED, env={"NOMAD_VAR_port": "22"})
    with pytest.raises(HclJobError, match="Invalid value for varfile variable"):
        parse_hcl_job(VALIDATED, var_files=["port = 1\n"])
    with pytest.raises(HclJobError, match="Invalid value for default variable"):
        parse_hcl_job(VALIDATED.replace("8080", "10"))


@pytest.mark.parametrize(("condition", "message", "error"), [
    ('var.other != ""', "x", 'can only refer to the variable itself, using var.v'),
    ("true", "x", "must refer to var.v in order to test incoming values"),
    # Nomad's TestParse_VariableValidationErrorMessage:
    ('var.v != ""', "   ", "Invalid validation error message"),
    ('var.v', "x", "Invalid variable validation result"),
])
def test_a_validation_rule_nomad_refuses_is_refused(condition: str, message: str, error: str) -> None:
    text = (f'variable "v" {{\n default = "a"\n validation {{\n  condition = {condition}\n'
            f'  error_message = "{message}"\n }}\n}}\njob "x" {{}}\n')
    with pytest.raises(HclJobError, match=error):
        parse_hcl_job(text)


def test_a_non_english_validation_message_is_kept() -> None:
    text = VALIDATED.replace("The port must be above 1024.", "ビルド番号を確認してください")
    with pytest.raises(HclJobError, match="ビルド番号を確認してください"):
        parse_hcl_job(text, var_args={"port": "1"})


def test_expression_errors_say_where() -> None:
    with pytest.raises(HclJobError, match=r"locals.b: .*a number is required"):
        parse_hcl_job('locals {\n a = "x"\n b = local.a + 1\n}\njob "x" {}')
    with pytest.raises(HclJobError, match=r"job\['x'\].group\['g'\].count: Invalid index"):
        parse_hcl_job('job "x" {\n group "g" {\n  count = [1][3]\n }\n}')


REGISTRY_JOB = """
variable "registry_address" {
  type    = string
  default = "localhost"
}
variable "registry_port" {
  type    = number
  default = "7511"
}
variable "user" { default = "auth_basic_user" }
variable "password" { default = "auth_basic_pass" }
locals {
  registry_auth = base64encode("${var.user}:${var.password}")
}
job "auth_basic" {
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "basic" {
    task "echo" {
      driver = "docker"
      config {
        image = "${var.registry_address}:${var.registry_port}/library/bash:private"
        auth {
          username = local.registry_auth
        }
      }
    }
  }
}
"""


def test_a_local_built_with_a_function_from_variables_as_nomads_e2e_registry_job() -> None:
    """The constructs of Nomad's e2e/docker/input/auth_basic.hcl: a number variable with a string
    default, a local from base64encode over a template of variables, runtime ${attr...} kept."""
    job = parse_hcl_job(REGISTRY_JOB)
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["image"] == "localhost:7511/library/bash:private"
    assert task["Config"]["auth"][0]["username"] == "YXV0aF9iYXNpY191c2VyOmF1dGhfYmFzaWNfcGFzcw=="
    assert job["Constraints"][0]["LTarget"] == "${attr.kernel.name}"


def test_heredoc_locals_keep_runtime_interpolations() -> None:
    """The constructs of Nomad's e2e/workload_id/input/api-auth.nomad.hcl: <<- heredoc locals holding
    ${NOMAD_SECRETS_DIR} and ${NOMAD_TOKEN}, used as "${local.x}" in a task's args."""
    text = ('locals {\n  script = <<-SCRIPT\n    curl -v \\\n'
            '      --unix-socket ${NOMAD_SECRETS_DIR}/api.sock \\\n'
            '      --header "X-Nomad-Token: ${NOMAD_TOKEN}"\n    sleep 1\n  SCRIPT\n}\n')
    args = value('["-c", "${local.script}"]', pre=text)
    assert args == ["-c", "curl -v \\\n  --unix-socket ${NOMAD_SECRETS_DIR}/api.sock \\\n"
                          '  --header "X-Nomad-Token: ${NOMAD_TOKEN}"\nsleep 1\n']


def test_nomads_jobspec2_fixtures_without_expressions_parse_unchanged() -> None:
    job = parse_hcl_job((NOMAD_FIXTURES / "template-wait-config.hcl").read_text())
    wait = job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["Wait"]
    assert wait == {"Min": 5_000_000_000, "Max": 60_000_000_000}
    job = parse_hcl_job((NOMAD_FIXTURES / "identity-compat.nomad.hcl").read_text())
    assert job["TaskGroups"][0]["Tasks"][0]["Identities"][0]["Name"] == "foo"


def test_job_run_output_of_a_file_using_functions_and_dynamic_blocks(tmp_path: Path) -> None:
    """``nomad job run -output`` from the CLI: the JSON job, with file() read beside the job file."""
    (tmp_path / "motd.txt").write_text("hello from a file\n")
    job_file = tmp_path / "web.nomad.hcl"
    job_file.write_text('''
variable "ports" {
  type    = list(number)
  default = [8080, 8081]
  validation {
    condition     = length(var.ports) > 0
    error_message = "Give at least one port."
  }
}
locals {
  names = [for p in var.ports : "web-${p}"]
}
job "web" {
  datacenters = ["dc1"]
  group "g" {
    dynamic "task" {
      for_each = zipmap(local.names, var.ports)
      labels   = [task.key]
      content {
        driver = "raw_exec"
        config {
          command = "/bin/sh"
          args    = ["-c", "echo ${trimspace(file("motd.txt"))} on ${task.value} in ${NOMAD_ALLOC_DIR}"]
        }
      }
    }
  }
}
''')
    repo = Path(__file__).resolve().parent.parent
    nomad = [sys.executable, str(repo / "bin" / "nomad"), "job", "run", "-output"]
    out = subprocess.run([*nomad, str(job_file)], capture_output=True, text=True, timeout=60,
                         cwd=str(tmp_path), check=False)
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["Job"]
    tasks = job["TaskGroups"][0]["Tasks"]
    assert [t["Name"] for t in tasks] == ["web-8080", "web-8081"]
    assert tasks[0]["Config"]["args"] == ["-c", "echo hello from a file on 8080 in ${NOMAD_ALLOC_DIR}"]
    bad = subprocess.run([*nomad, "-var", "ports=[]", str(job_file)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode != 0 and "Give at least one port." in bad.stderr + bad.stdout
