"""ACL policies attached to workloads (Nomad 1.4's JobACL): the state machine keeps JobACL, the matching
rules of Nomad's ResolvePoliciesForClaims, and ``nomad acl policy apply -namespace -job -group -task``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.state.acl_ops import job_acl_matches, job_policy_names
from actors.state.store import StateStore, command
from runtime import cli, cli_acl
from runtime.cli import CliError


@pytest.mark.parametrize(("job_acl", "matches"), [
    (None, False),
    ({"Namespace": "", "JobID": "", "Group": "", "Task": ""}, False),
    ({"Namespace": "default", "JobID": "", "Group": "", "Task": ""}, True),  # every workload of the namespace
    ({"Namespace": "ops", "JobID": "", "Group": "", "Task": ""}, False),
    ({"Namespace": "default", "JobID": "web", "Group": "", "Task": ""}, True),
    ({"Namespace": "default", "JobID": "api", "Group": "", "Task": ""}, False),
    ({"Namespace": "default", "JobID": "web", "Group": "g", "Task": ""}, True),
    ({"Namespace": "default", "JobID": "web", "Group": "h", "Task": ""}, False),
    ({"Namespace": "default", "JobID": "web", "Group": "g", "Task": "t"}, True),
    ({"Namespace": "default", "JobID": "web", "Group": "g", "Task": "u"}, False),
])
def test_a_job_acl_matches_as_nomads_resolve_policies_for_claims(job_acl: Any, matches: bool) -> None:
    assert job_acl_matches(job_acl, "default", "web", "g", "t") is matches


def test_the_store_keeps_a_policys_job_acl_and_finds_a_workloads_policies() -> None:
    st = StateStore()
    node = 'node { policy = "read" }'
    st.apply(1, command("acl_policy_upsert", policies=[
        {"Name": "plain", "Rules": node},
        {"Name": "web", "Rules": node, "JobACL": {"Namespace": "default", "JobID": "web"}},
        {"Name": "api", "Rules": node, "JobACL": {"Namespace": "default", "JobID": "api"}}]))
    assert st.tables["acl_policies"]["web"]["JobACL"] == {"Namespace": "default", "JobID": "web", "Group": "",
                                                          "Task": ""}
    assert "JobACL" not in st.tables["acl_policies"]["plain"]
    assert job_policy_names(st, "default", "web", "g", "t") == ["web"]
    bad = st.apply(2, command("acl_policy_upsert",
                              policies=[{"Name": "x", "Rules": "", "JobACL": {"JobID": 1}}]))
    assert "JobACL" in bad["error"] and "x" not in st.tables["acl_policies"]


class Recorder:
    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.answer = answer

    def __call__(self, addr: str, method: str, path: str, body: Any = None, **query: Any) -> Any:
        self.calls.append((method, path, body))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_acl_policy_apply_attaches_a_policy_to_a_job_group_and_task(tmp_path: Path, capsys: Any,
                                                                       monkeypatch: Any) -> None:
    rules = tmp_path / "p.hcl"
    rules.write_text('node { policy = "read" }\n')
    api = Recorder()
    monkeypatch.setattr(cli_acl, "request", api)
    code, out, _ = run(capsys, "acl", "policy", "apply", "-namespace", "default", "-job", "web",
                       "-group", "g", "-task", "t", "p", str(rules))
    assert (code, out) == (0, 'Successfully wrote "p" ACL policy!\n')
    assert api.calls == [("POST", "/v1/acl/policy/p", {
        "Name": "p", "Description": "", "Rules": 'node { policy = "read" }\n',
        "JobACL": {"Namespace": "default", "JobID": "web", "Group": "g", "Task": "t"}})]
    api.calls.clear()
    assert run(capsys, "acl", "policy", "apply", "p", str(rules))[0] == 0
    assert "JobACL" not in api.calls[0][2]  # no -namespace: not attached
    for flags, error in ((["-job", "web"], "-namespace is required if -job is set"),
                         (["-namespace", "default", "-group", "g"], "-job is required if -group is set"),
                         (["-namespace", "default", "-job", "w", "-task", "t"],
                          "-group is required if -task is set")):
        assert run(capsys, "acl", "policy", "apply", *flags, "p", str(rules))[2] == f"{error}\n"
    assert run(capsys, "acl", "policy", "apply", "p")[2].startswith(
        "This command takes two arguments: <name> and <path>\n")
    assert run(capsys, "acl", "policy", "apply", "p", str(tmp_path / "none"))[2].startswith(
        "Failed to read file: ")
    api.answer = CliError("Unexpected response code: 400 (policy 0 invalid)")
    assert run(capsys, "acl", "policy", "apply", "p", str(rules))[2] == \
        "Error writing ACL policy: Unexpected response code: 400 (policy 0 invalid)\n"


def test_acl_policy_info_shows_the_associated_workload(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(cli_acl, "request", Recorder({
        "Name": "p", "Description": "d", "Rules": "node {}", "CreateIndex": 3, "ModifyIndex": 4,
        "JobACL": {"Namespace": "default", "JobID": "web", "Group": "g", "Task": ""}}))
    code, out, _ = run(capsys, "acl", "policy", "info", "p")
    assert code == 0 and out.splitlines() == [
        "Name        = p", "Description = d", "CreateIndex = 3", "ModifyIndex = 4", "",
        "Associated Workload", "Namespace = default", "JobID     = web", "Group     = g",
        "Task      = <none>", "",  # Nomad's formatKV: an empty field is <none>
        "Rules", "", "node {}"]
