"""Variables: the rules of the state machine, ``/v1/vars`` and ``/v1/var/<path>``, python-nomad's
variables API, and ``nomad var list|get|put|purge``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from actors.state import variables as v
from actors.state.store import StateStore, command

pytestmark = pytest.mark.timeout(180)


def _put(st: StateStore, path: str, items: dict, cas: int | None = None, ns: str = "default") -> dict:
    return st.apply(st.applied_index + 1, command("var_set", namespace=ns, path=path, items=items, cas=cas,
                                                   now=1700000000.5))


# ---------------------------------------------------------------- the state machine


def test_a_write_replaces_the_whole_variable_and_keeps_its_creation():
    st = StateStore()
    first = _put(st, "app/config", {"a": "1", "b": "2"})["var"]
    assert (first["CreateIndex"], first["ModifyIndex"], first["CreateTime"]) == (1, 1, 1_700_000_000_500_000_000)
    second = _put(st, "app/config", {"c": "3"})["var"]
    assert second["Items"] == {"c": "3"} and (second["CreateIndex"], second["ModifyIndex"]) == (1, 2)
    assert st.index(v.TABLE) == 2
    assert [x["Path"] for x in v.listed(st.tables, "default", "app/")] == ["app/config"]
    assert v.listed(st.tables, "default", "other") == [] and len(v.listed(st.tables, "*", "")) == 1


def test_check_and_set_never_loses_a_concurrent_update():
    st = StateStore()
    assert _put(st, "x", {"k": "1"}, cas=0)["ok"]  # 0: only if new
    again = _put(st, "x", {"k": "2"}, cas=0)
    assert not again["ok"] and again["conflict"]["Items"] == {"k": "1"}
    assert _put(st, "x", {"k": "2"}, cas=1)["ok"]
    stale = _put(st, "x", {"k": "3"}, cas=1)  # a writer that read index 1 lost the race
    assert not stale["ok"] and stale["conflict"]["ModifyIndex"] == 3
    assert st.tables[v.TABLE]["default/x"]["Items"] == {"k": "2"}
    gone = st.apply(st.applied_index + 1, command("var_delete", namespace="default", path="x", cas=1))
    assert not gone["ok"] and "default/x" in st.tables[v.TABLE]
    assert st.apply(st.applied_index + 1, command("var_delete", namespace="default", path="x", cas=3))["ok"]
    assert "default/x" not in st.tables[v.TABLE]
    # Deleting what is not there is no error (Nomad's).
    assert st.apply(st.applied_index + 1, command("var_delete", namespace="default", path="x"))["ok"]


@pytest.mark.parametrize("path,items,why", [
    ("", {"a": "1"}, "variable requires path"),
    ("/lead", {"a": "1"}, "invalid path"),
    ("trail/", {"a": "1"}, "invalid path"),
    ("dou//ble", {"a": "1"}, "invalid path"),
    ("sp ace", {"a": "1"}, "invalid path"),
    ("x" * 129, {"a": "1"}, "invalid path"),
    ("nomad", {"a": "1"}, '"nomad" is a reserved top-level directory path'),
    ("nomad/other", {"a": "1"}, 'only paths at "nomad/jobs" or "nomad/job-templates" and below are valid'),
    ("nomad/job-templates", {"a": "1"}, '"nomad/job-templates" is a reserved directory path'),
    ("nomad/job-templates/a/b", {"a": "1"}, '"nomad/job-templates" is a reserved directory path'),
    ("ok", {}, "empty variables are invalid"),
    ("ok", {"a": 1}, "values must be strings"),
    ("ok", {"a": "x" * (64 * 1024)}, "limited to 64KiB"),
])
def test_a_bad_variable_is_refused_naming_why(path, items, why):
    st = StateStore()
    r = _put(st, path, items)
    assert not r["ok"] and why in r["error"]
    assert st.tables[v.TABLE] == {}


@pytest.mark.parametrize("path", ["nomad/jobs", "nomad/jobs/a/b/c", "nomad/sentinel/p",
                                  "nomad/job-templates/t"])
def test_nomads_reserved_directories_take_what_nomad_allows(path):
    assert _put(StateStore(), path, {"a": "1"})["ok"]


def test_nomad_jobs_paths_may_be_written_and_variables_survive_a_snapshot():
    st = StateStore()
    assert _put(st, "nomad/jobs", {"a": "1"})["ok"]
    assert _put(st, "nomad/jobs/web/g/t", {"b": "2"})["ok"]
    again = StateStore()
    again.restore(st.snapshot(), st.applied_index)
    assert again.tables[v.TABLE]["default/nomad/jobs/web/g/t"]["Items"] == {"b": "2"}


# ---------------------------------------------------------------- over HTTP, python-nomad and the CLI

from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev  # noqa: E402,F401


def nomad(port: int, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=60, input=stdin)


def test_the_variable_endpoints_answer_as_nomads(dev):  # noqa: F811
    port = dev.http_port
    r = call(port, "PUT", "/v1/var/http/one", {"Items": {"user": "admin", "pass": "s3cret"}})
    assert r.status == 200, r.text
    made = r.json()
    assert (made["Path"], made["Namespace"], made["Items"]["user"]) == ("http/one", "default", "admin")
    assert int(r.headers["x-nomad-index"]) == made["ModifyIndex"]
    got = call(port, "GET", "/v1/var/http/one")
    assert got.status == 200 and got.json()["Items"] == {"user": "admin", "pass": "s3cret"}
    listed = call(port, "GET", "/v1/vars?prefix=http/").json()
    assert [x["Path"] for x in listed] == ["http/one"] and "Items" not in listed[0]
    # Check-and-set: a stale index is a 409 carrying the variable as it is.
    stale = call(port, "PUT", f"/v1/var/http/one?cas={made['ModifyIndex'] - 1}", {"Items": {"x": "y"}})
    assert stale.status == 409 and stale.json()["Items"]["user"] == "admin"
    assert int(stale.headers["x-nomad-index"]) == made["ModifyIndex"]  # the conflict's index (Nomad's)
    fresh = call(port, "PUT", f"/v1/var/http/one?cas={made['ModifyIndex']}", {"Items": {"x": "y"}})
    assert fresh.status == 200 and fresh.json()["Items"] == {"x": "y"}
    assert call(port, "PUT", "/v1/var/http/one?cas=0", {"Items": {"x": "z"}}).status == 409
    # A blocking query wakes on the write.
    index = fresh.json()["ModifyIndex"]
    call(port, "PUT", "/v1/var/http/two", {"Items": {"a": "b"}})
    woke = call(port, "GET", f"/v1/var/http/one?index={index}&wait=1s")
    assert int(woke.headers["x-nomad-index"]) > index
    # Bad requests: Nomad's codes and one-line reasons; the agent keeps serving.
    assert call(port, "GET", "/v1/var/http/none").status == 404
    assert call(port, "PUT", "/v1/var/http/three", {"Items": {}}).status == 400
    assert call(port, "PUT", "/v1/var/nomad/secret", {"Items": {"a": "b"}}).status == 400
    assert call(port, "PUT", "/v1/var/http/three", raw=b"{nope").status == 400
    assert call(port, "PUT", "/v1/var/http/three", {"Path": "other", "Items": {"a": "b"}}).status == 400
    r = call(port, "PUT", "/v1/var/http/three?namespace=prod", {"Items": {"a": "b"}})
    assert (r.status, r.text) == (400, 'namespace "prod" not found')
    assert call(port, "PUT", "/v1/var/http/three?cas=x", {"Items": {"a": "b"}}).status == 400
    assert call(port, "DELETE", f"/v1/var/http/one?cas={index - 1}").status == 409
    assert call(port, "DELETE", "/v1/var/http/one").status == 204  # Nomad's No Content
    assert call(port, "DELETE", "/v1/var/http/two").status == 204
    assert call(port, "GET", "/v1/var/http/one").status == 404
    assert call(port, "GET", "/v1/agent/health").status == 200


def test_python_nomad_uses_variables_as_a_user_would(dev):  # noqa: F811
    import nomad as nomad_lib

    n = nomad_lib.Nomad(host="127.0.0.1", port=dev.http_port, timeout=10)
    made = n.variable.create_variable("lib/var", {"Items": {"k": "v"}})
    assert made["Items"] == {"k": "v"}
    assert n.variable.get_variable("lib/var")["Items"] == {"k": "v"}
    assert [x["Path"] for x in n.variables.get_variables(prefix="lib/")] == ["lib/var"]
    with pytest.raises(nomad_lib.api.exceptions.VariableConflict):
        n.variable.create_variable("lib/var", {"Items": {"k": "w"}}, cas=0)
    n.variable.delete_variable("lib/var")
    with pytest.raises(nomad_lib.api.exceptions.URLNotFoundNomadException):
        n.variable.get_variable("lib/var")


def test_the_cli_puts_gets_lists_and_purges_with_check_and_set(dev, tmp_path):  # noqa: F811
    port = dev.http_port
    out = nomad(port, "var", "put", "cli/app", "user=admin", "port=8080")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)  # piped: JSON, as Nomad's
    assert made["Items"] == {"user": "admin", "port": "8080"}
    again = nomad(port, "var", "put", "cli/app", "user=root")
    assert again.returncode == 1 and "Check-and-Set conflict" in again.stderr
    assert f"-check-index={made['ModifyIndex']}" in again.stderr
    forced = nomad(port, "var", "put", "-force", "-out=table", "cli/app", "user=root")
    assert forced.returncode == 0 and "user = root" in forced.stdout and "Check Index" in forced.stdout
    assert nomad(port, "var", "get", "cli/app", "user").stdout.strip() == "root"
    spec = tmp_path / "spec.json"
    spec.write_text(nomad(port, "var", "get", "-out=json", "cli/app").stdout)
    updated = nomad(port, "var", "put", f"@{spec}", "extra=1")  # the index it read makes the write safe
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["Items"] == {"user": "root", "extra": "1"}
    piped = json.loads(nomad(port, "var", "list", "cli/").stdout)  # piped: JSON, as Nomad's
    assert [v["Path"] for v in piped] == ["cli/app"]
    listed = nomad(port, "var", "list", "-out=table", "cli/").stdout.splitlines()
    assert listed[0].split() == ["Namespace", "Path", "Last", "Updated"] and listed[1].split()[:2] == \
        ["default", "cli/app"]
    assert nomad(port, "var", "get", "cli/app", "nope").returncode == 1
    assert nomad(port, "var", "get", "cli/none").returncode == 1
    bad = nomad(port, "var", "purge", "-check-index=1", "cli/app")
    assert bad.returncode == 1 and "Check-and-Set conflict" in bad.stderr
    out = nomad(port, "var", "purge", "cli/app")
    assert out.stdout.strip() == 'Successfully purged variable "cli/app"!', out.stderr
    assert nomad(port, "var", "list", "-out=table", "cli/").stdout.strip() == "No matching variables found"
