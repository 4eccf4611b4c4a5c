"""``nomad var put|get|list|purge`` against fake API answers: their outputs and errors as Nomad's
``command/var_*.go`` print them."""

from __future__ import annotations

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
