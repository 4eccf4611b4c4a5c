"""``nomad var put|get|list|purge`` against fake API answers: their outputs and errors as Nomad's
``command/var_*.go`` print them."""

from __future__ import annotations

import json
from typing import Any

from runtime import cli, cli_variables  # cli first: it registers the var commands
from tests.test_cli_extra import FakeApi, run

# 2023-11-14T22:13:20Z
_T = 1_700_000_000_000_000_000
_VAR = {"Namespace": "default", "Path": "app/cfg", "CreateIndex": 7, "ModifyIndex": 9,
        "CreateTime": _T, "ModifyTime": _T, "Items": {"user": "admin", "a-b": "x\"y"}}


def _api(monkeypatch: Any, answers: dict) -> FakeApi:
    api = FakeApi(answers)
    monkeypatch.setattr(cli_variables, "request", api)
    return api


def test_a_check_and_set_conflict_is_nomads_paragraph(capsys: Any, monkeypatch: Any) -> None:
    _api(monkeypatch, {("PUT", "/v1/var/app/cfg"): cli.ApiError("Unexpected response code: 409 ({})"),
                       ("GET", "/v1/var/app/cfg"): _VAR,
                       ("DELETE", "/v1/var/app/cfg"): cli.ApiError("Unexpected response code: 409 ({})")})
    code, out, err = run(capsys, "var", "put", "app/cfg", "user=root")
    assert (code, out) == (1, "")
    assert err == ("\nCheck-and-Set conflict\n\n"
                   "    Your provided check-index (0) does not match the server-side index (9). The\n"
                   "    server-side item was last updated on 2023-11-14T22:13:20Z. If you are sure\n"
                   "    you want to perform this operation, add the -force or -check-index=9 flag\n"
                   "    before the positional arguments.\n\n")
    code, out, err = run(capsys, "var", "purge", "-check-index=3", "app/cfg")
    assert code == 1 and err.startswith("\nCheck-and-Set conflict\n\n    Your provided check-index (3) ")


def test_put_with_out_none_says_what_it_wrote(capsys: Any, monkeypatch: Any) -> None:
    _api(monkeypatch, {("PUT", "/v1/var/app/cfg"): _VAR})
    code, out, _ = run(capsys, "var", "put", "-force", "-out=none", "app/cfg", "user=admin")
    assert (code, out) == (0, 'Created variable "app/cfg" with modify index 9\n')
    # -verbose: what is read and written, on stderr; stdout keeps the variable.
    code, out, err = run(capsys, "var", "put", "-force", "-verbose", "-out=json", "app/cfg", "user=admin")
    assert code == 0 and json.loads(out)["Path"] == "app/cfg"
    assert err == 'Writing to path "app/cfg"\nCreated variable "app/cfg" with modify index 9\n'


def test_get_and_put_render_hcl_and_go_templates(capsys: Any, monkeypatch: Any, tmp_path: Any) -> None:
    api = _api(monkeypatch, {("GET", "/v1/var/app/cfg"): _VAR, ("PUT", "/v1/var/app/cfg"): _VAR})
    code, out, _ = run(capsys, "var", "get", "-out=hcl", "app/cfg")
    assert code == 0 and out == ('\nnamespace    = "default"\npath         = "app/cfg"\n'
                                 "create_index = 7  # Set by server\n"
                                 "modify_index = 9  # Set by server; consulted for check-and-set\n"
                                 f"create_time  = {_T}   # Set by server\n"
                                 f"modify_time  = {_T}   # Set by server\n"
                                 '\nitems = {\n   a-b = "x\\"y"\n  user = "admin"\n}\n\n')
    spec = tmp_path / "cfg.hcl"
    spec.write_text(out)
    code, out, _ = run(capsys, "var", "put", "-out=go-template", "-template={{.Path}}@{{.ModifyIndex}}",
                       f"@{spec}", "extra=1")
    assert (code, out) == (0, "app/cfg@9\n")
    assert api.calls[-1] == ("PUT", "/v1/var/app/cfg", {"cas": 9})  # the index the HCL carries
    got = run(capsys, "var", "get", "-out=go-template", "-template={{.Items.user}}", "app/cfg")
    assert got[1] == "admin\n"
    assert run(capsys, "var", "get", "-out=go-template", "app/cfg")[2] == \
        "A template must be supplied using '-template' when using go-template formatting\n"
    assert run(capsys, "var", "get", "-template=x", "app/cfg")[2] == \
        "The '-template' flag is only valid when using 'go-template' formatting\n"
    assert run(capsys, "var", "put", "-out=yaml", "app/cfg", "a=1")[2] == \
        'Invalid value for "-out"; valid values are [go-template, hcl, json, none, table]\n'


def _list_http(state: Any, query: str) -> Any:
    import urllib.parse

    from actors.http_api import Request
    from actors.http_variables import variables_list
    from tests.one_server_api import api_over

    req = Request(method="GET", path="/v1/vars", query={"stale": [""], **urllib.parse.parse_qs(query)},
                  url="/v1/vars", environ={})
    return variables_list(req, api_over(state, acl_enabled=False))


def test_the_variables_list_pages_with_nomads_namespace_dot_path_token() -> None:
    from actors.state.store import StateStore, command

    st = StateStore()
    for i, path in enumerate(("a/1", "a/2", "a/3")):
        st.apply(i + 1, command("var_set", namespace="default", path=path, items={"k": "v"}, cas=None,
                                now=1700000000.5))
    page = _list_http(st, "per_page=2")
    assert [x["Path"] for x in page.value] == ["a/1", "a/2"]
    assert ("X-Nomad-NextToken", "default.a/3") in page.headers  # NamespaceIDTokenizer
    assert [x["Path"] for x in _list_http(st, "per_page=2&next_token=default.a/3").value] == ["a/3"]


def test_var_list_pages_and_prints_the_next_token_on_stderr(capsys: Any, monkeypatch: Any) -> None:
    keys = ("Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime")
    stubs = [{k: _VAR[k] for k in keys}]
    calls = []

    def fake(addr: str, method: str, path: str, body: Any = None, *, answer_meta: Any = None,
             **query: Any) -> Any:
        calls.append({k: v for k, v in query.items() if v is not None})
        answer_meta.update(index=12, known_leader=True, next_token="default.app/zz")
        return stubs

    monkeypatch.setattr(cli_variables, "request", fake)
    code, out, err = run(capsys, "var", "list", "-per-page=1", "-page-token=default.app/a", "-out=terse",
                         "app/")
    assert (code, out, err) == (0, "app/cfg\n", "Next page token: default.app/zz\n")
    assert calls[-1] == {"prefix": "app/", "per_page": 1, "next_token": "default.app/a"}
    code, out, err = run(capsys, "var", "list", "-per-page=1", "-out=json")
    assert code == 0 and err == "" and json.loads(out) == {"Data": stubs, "QueryMeta": {
        "LastIndex": 12, "LastContact": 0, "KnownLeader": True, "RequestTime": 0,
        "NextToken": "default.app/zz"}}
    code, out, _ = run(capsys, "var", "list", "-out=go-template", "-template={{range .}}{{.Path}};{{end}}")
    assert (code, out) == (0, "app/cfg;\n")


def test_put_reads_key_value_pairs_as_nomads_kv_builder(capsys: Any, monkeypatch: Any, tmp_path: Any) -> None:
    import io

    api = _api(monkeypatch, {("PUT", "/v1/var/app/cfg"): _VAR})
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret"))
    assert run(capsys, "var", "put", "-force", "-out=none", "app/cfg", "pw=-", "lit=\\@home", "x=")[0] == 0
    assert api.calls[-1][:2] == ("PUT", "/v1/var/app/cfg")
    monkeypatch.setattr("sys.stdin", io.StringIO('{"j": "k"}'))
    bodies = []
    monkeypatch.setattr(cli_variables, "request",
                        lambda addr, method, path, body=None, **q: bodies.append(body) or _VAR)
    assert run(capsys, "var", "put", "-force", "-out=none", "app/cfg", "pw=-", "lit=\\@home")[0] == 0
    assert bodies[-1]["Items"] == {"pw": '{"j": "k"}', "lit": "@home"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"j": "k"}'))
    assert run(capsys, "var", "put", "-force", "-out=none", "app/cfg", "a=1", "-")[0] == 0
    assert bodies[-1]["Items"] == {"a": "1", "j": "k"}  # a bare "-" merges a JSON object from stdin
    # Go flags end at the path: a later "-out" is a K=V pair without "="
    code, _, err = run(capsys, "var", "put", "-force", "app/cfg", "a=1", "-out", "none")
    assert (code, err) == (1, 'Failed to parse K=V data: invalid key/value pair "-out": format must be '
                              "key=value\n")


def test_put_takes_a_specification_files_format_from_its_extension(capsys: Any, tmp_path: Any) -> None:
    spec = tmp_path / "spec.txt"
    spec.write_text('{"Items": {"a": "1"}}')
    code, _, err = run(capsys, "var", "put", "-in=json", f"@{spec}")
    assert (code, err) == (1, f"Unable to determine format of {spec}; Use the -in flag to specify it.\n")


def test_put_warns_of_item_keys_a_template_cannot_read_directly(capsys: Any, monkeypatch: Any) -> None:
    _api(monkeypatch, {("PUT", "/v1/var/app/cfg"): _VAR})
    code, out, err = run(capsys, "var", "put", "-force", "-out=none", "app/cfg", "my-key=1", "ok_1=2",
                         "a.b c=3")
    assert (code, out) == (0, 'Created variable "app/cfg" with modify index 9\n')
    tail = "that require the 'index' function for direct access in templates"
    assert err == ("Variable Warnings:\n2 warnings:\n\n"
                   f'* "a.b c" contains characters [" ","."] {tail}\n'
                   f'* "my-key" contains characters ["-"] {tail}\n\n')


def test_commands_on_one_variable_refuse_the_wildcard_namespace(capsys: Any, monkeypatch: Any) -> None:
    """Nomad's errWildcardNamespaceNotAllowed: var get, put, purge and lock with -namespace '*' ask nothing
    (a purge in "*" used to answer 'Successfully purged' and delete nothing)."""
    api = _api(monkeypatch, {})
    for argv in (("get", "app/cfg"), ("put", "app/cfg", "k=v"), ("purge", "app/cfg"),
                 ("lock", "app/cfg", "true")):
        code, out, err = run(capsys, "var", argv[0], "-namespace", "*", *argv[1:])
        assert (code, out, err) == (1, "", cli_variables.WILDCARD_NOT_ALLOWED + "\n"), argv
    monkeypatch.setenv("NOMAD_NAMESPACE", "*")
    assert run(capsys, "var", "purge", "app/cfg")[0] == 1
    assert api.calls == []
