"""Unit tests of /v1/search/fuzzy, /v1/agent/host and /v1/agent/schedulers (their pure parts)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from actors.acl import READ, SELF_CHECKED, WRITE, Need, compile_acl, parse_policy, required
from actors.http_agent_host import REDACTED, environment, sockaddr_dump
from actors.http_agent_schedulers import valid_pool, workers_info
from actors.http_search import FUZZY_LIMIT_QUERY, fuzzy_query


def _job(job_id: str, namespace: str = "default", command: str = "/bin/sleep") -> dict[str, Any]:
    return {"ID": job_id, "Name": job_id, "Namespace": namespace, "TaskGroups": [
        {"Name": "web", "Services": [{"Name": f"{job_id}-http"}], "Tasks": [
            {"Name": "server", "Driver": "raw_exec", "Config": {"command": command}}]}]}


def _state(jobs: list[dict[str, Any]]) -> Any:
    tables = {"jobs": {j["ID"]: j for j in jobs}, "allocs": {}, "nodes": {}, "evals": {},
              "deployments": {}, "scaling_policies": {}, "variables": {}, "node_pools": {}}
    return SimpleNamespace(tables=tables, table_index={"jobs": 7})


def test_fuzzy_matches_are_sorted_and_scoped_as_nomads():
    st = _state([_job("api-web"), _job("web"), _job("webapp")])
    matches, truncations, index = fuzzy_query("web", "", ("jobs",), (), "default", None)(st)
    # Where the text is found first, then the shorter name, then alphabetically (Nomad's sortSet).
    assert [m["ID"] for m in matches["jobs"]] == ["web", "webapp", "api-web"]
    assert matches["jobs"][0]["Scope"] == ["default", "web"]
    assert matches["groups"][0] == {"ID": "web", "Scope": ["default", "api-web"]}
    assert {"ID": "web-http", "Scope": ["default", "web", "web"]} in matches["services"]
    assert truncations == {"jobs": False} and index == 7


def test_fuzzy_scans_at_most_limit_query_objects_and_says_so():
    st = _state([_job(f"job-{i:02}") for i in range(FUZZY_LIMIT_QUERY + 5)])
    matches, truncations, _ = fuzzy_query("job", "", ("jobs",), (), "default", None)(st)
    assert len(matches["jobs"]) == FUZZY_LIMIT_QUERY and truncations["jobs"] is True


def test_fuzzy_keeps_only_uuids_starting_with_the_text_as_nomads_prefix_matches():
    st = _state([_job("web")])
    ids = ["0a1b2c3d-0000-4000-8000-000000000001", "0a1b9999-0000-4000-8000-000000000002",
           "ffff0000-0000-4000-8000-000000000003"]
    st.tables["evals"] = {i: {"ID": i, "Namespace": "default"} for i in ids}
    matches, truncations, _ = fuzzy_query("web", "", ("jobs",), ("evals",), "default", None,
                                          raw_text="web")(st)
    assert matches["evals"] == [] and truncations["evals"] is False  # the key is there, with no IDs
    matches, _, _ = fuzzy_query("0a1b", "", (), ("evals",), "default", None, raw_text="0a1b")(st)
    assert [m["ID"] for m in matches["evals"]] == ids[:2]


def test_fuzzy_wildcard_namespace_keeps_what_the_token_may_read():
    st = _state([_job("web-a"), _job("web-b", namespace="secret")])
    acl = compile_acl([parse_policy('namespace "default" { policy = "read" }')])
    matches, _, _ = fuzzy_query("web", "", ("jobs", "namespaces"), (), "*", acl)(st)
    assert [m["ID"] for m in matches["jobs"]] == ["web-a"]
    everything, _, _ = fuzzy_query("web", "", ("jobs",), (), "*", None)(st)
    assert [m["Scope"][0] for m in everything["jobs"]] == ["default", "secret"]


def test_routes_need_what_nomad_checks():
    assert required("POST", "/v1/search/fuzzy") is SELF_CHECKED  # per context, in actors.http_search
    assert required("GET", "/v1/agent/host") == (Need("agent", READ),)
    assert required("GET", "/v1/agent/schedulers/config") == (Need("agent", READ),)
    assert required("PUT", "/v1/agent/schedulers/config") == (Need("agent", WRITE),)


def test_host_environment_is_redacted_as_nomads():
    env = environment({"PATH": "/bin", "NOMAD_TOKEN": "s", "MY_SECRET_KEY": "k", "gh_token": "t",
                       "AWS_ACCESS_KEY_ID": "a"})
    assert env == {"PATH": "/bin", "NOMAD_TOKEN": REDACTED, "MY_SECRET_KEY": REDACTED, "gh_token": REDACTED,
                   "AWS_ACCESS_KEY_ID": REDACTED}


def test_host_network_addresses_are_dumped_as_go_sockaddr():
    v4 = sockaddr_dump("10.1.2.3", "255.255.0.0")
    assert v4 is not None
    assert (v4["type"], v4["string"], v4["network"], v4["mask_bits"], v4["broadcast"]) == (
        "IPv4", "10.1.2.3/16", "10.1.0.0/16", "16", "10.1.255.255")
    v6 = sockaddr_dump("fe80::1%eth0", "ffff:ffff:ffff:ffff::")
    assert v6 is not None and v6["type"] == "IPv6" and v6["mask_bits"] == "64" and "broadcast" not in v6
    assert sockaddr_dump("not-an-ip", None) is None


def test_scheduler_pool_is_validated_as_nomads():
    assert valid_pool(2, ["service", "batch", "_core"], cpus=2)
    assert valid_pool(0, ["_core"], cpus=2)
    assert not valid_pool(3, ["_core"], cpus=2)  # more than the CPUs
    assert not valid_pool(1, ["service"], cpus=2)  # no _core
    assert not valid_pool(1, ["_core", "bogus"], cpus=2)
    assert not valid_pool(True, ["_core"], cpus=2) and not valid_pool("1", ["_core"], cpus=2)


def test_workers_info_shows_each_slot_of_the_broker():
    status = {"batches": 1, "schedulers": ("service", "_core"), "worker_started": (0.0, 1.5)}
    info = workers_info("s1.global", status)
    assert info["ServerID"] == "s1.global"
    assert [w["WorkloadStatus"] for w in info["Schedulers"]] == ["Scheduling", "WaitingToDequeue"]
    assert [w["Started"] for w in info["Schedulers"]] == ["1970-01-01T00:00:00Z", "1970-01-01T00:00:01.5Z"]
    assert info["Schedulers"][0]["EnabledSchedulers"] == ["service", "_core"]
    assert len({w["ID"] for w in info["Schedulers"]}) == 2


def test_scheduler_endpoints_on_a_client_answer_server_only():
    import pytest

    from actors.http_agent_schedulers import schedulers_config, schedulers_info
    from actors.http_api import CodedError, Request

    api = SimpleNamespace(env=SimpleNamespace(lookup=lambda name: None))
    for handler, path in ((schedulers_info, "/v1/agent/schedulers"),
                          (schedulers_config, "/v1/agent/schedulers/config")):
        with pytest.raises(CodedError) as e:
            handler(Request("GET", path, {}, path), api)  # type: ignore[arg-type]
        assert (e.value.code, e.value.message) == (400, "Server only endpoint")


def test_fuzzy_wildcard_namespace_hides_nodes_without_node_read():
    st = _state([])
    st.tables["nodes"] = {"n1": {"ID": "n1", "Name": "web-node"}}
    acl = compile_acl([parse_policy('namespace "default" { policy = "read" }')])
    assert fuzzy_query("web", "", ("nodes",), (), "*", acl)(st)[0] == {}
    reader = compile_acl([parse_policy('node { policy = "read" }')])
    assert fuzzy_query("web", "", ("nodes",), (), "*", reader)(st)[0] == {
        "nodes": [{"ID": "web-node", "Scope": ["n1"]}]}
