"""Nomad's list options: go-bexpr ?filter= expressions and ?per_page=/?next_token= pages."""

from __future__ import annotations

import pytest

from actors.http_api import Answer, CodedError, Request
from actors.http_filter import FilterError, apply_list_options, compile_filter

NODES = [
    {"ID": "a1", "Name": "web-1", "Status": "ready", "Datacenter": "dc1", "Priority": 50, "Drain": False,
     "Meta": {"rack": "r1", "team name": "blue"}, "Datacenters": ["dc1", "dc2"], "Drivers": {"raw_exec": {}},
     "NodeResources": {"Cpu": {"CpuShares": 4000}}},
    {"ID": "b2", "Name": "db-1", "Status": "down", "Datacenter": "dc2", "Priority": 70, "Drain": True,
     "Meta": {}, "Datacenters": ["dc2"], "Drivers": {}, "NodeResources": {"Cpu": {"CpuShares": 1000}}},
    {"ID": "c3", "Name": "web-2", "Status": "ready", "Datacenter": "dc3", "Priority": 50, "Drain": False,
     "Meta": {"rack": "r2"}, "Datacenters": [], "Drivers": {"docker": {}},
     "NodeResources": {"Cpu": {"CpuShares": 2000}}},
]


def ids(expr: str) -> list[str]:
    keep = compile_filter(expr)
    return [n["ID"] for n in NODES if keep(n)]


@pytest.mark.parametrize(("expr", "want"), [
    ('Status == "ready"', ["a1", "c3"]),
    ('Status != "ready"', ["b2"]),
    ("Status == ready", ["a1", "c3"]),  # a bare word is a string
    ('Status == "ready" and Datacenter == "dc3"', ["c3"]),
    ('Datacenter == "dc2" or Name matches "^web-2$"', ["b2", "c3"]),
    ('not (Status == "ready")', ["b2"]),
    ("Priority == 50", ["a1", "c3"]),
    ('Priority == "70"', ["b2"]),  # the literal takes the field's type
    ("Priority > 60", ["b2"]),
    ("NodeResources.Cpu.CpuShares >= 2000", ["a1", "c3"]),
    ("Drain == true", ["b2"]),
    ('Meta.rack == "r1"', ["a1"]),
    ('Meta["team name"] == "blue"', ["a1"]),
    ('"dc2" in Datacenters', ["a1", "b2"]),
    ('"dc2" not in Datacenters', ["c3"]),
    ('Datacenters contains "dc1"', ["a1"]),
    ('Name contains "web"', ["a1", "c3"]),
    ('Name not contains "web"', ["b2"]),
    ('Datacenter in ["dc1", "dc3"]', ["a1", "c3"]),
    ('"raw_exec" in Drivers', ["a1"]),
    ("Drivers is empty", ["b2"]),
    ("Meta is not empty", ["a1", "c3"]),
    ("Datacenters is empty", ["c3"]),
    ('Name not matches "^web"', ["b2"]),
    ('Missing.field == "x"', []),
    ('Missing.field != "x"', ["a1", "b2", "c3"]),
    ('(Status == "ready" or Drain == true) and not Meta.rack == "r2"', ["a1", "b2"]),
])
def test_filter_expressions_select_what_go_bexpr_would(expr: str, want: list[str]) -> None:
    assert ids(expr) == want


@pytest.mark.parametrize("expr", ['Status ==', '(Status == "ready"', 'Status === "x"', 'Status is "x"',
                                  'Name matches "("', '"x" Status', 'Status == "ready" and', "Status ~ 1",
                                  'Datacenter in "dc1"', "x" * 5000])
def test_bad_expressions_are_refused_not_ignored(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(expr)


def _req(**query: str) -> Request:
    return Request(method="GET", path="/v1/nodes", query={k: [v] for k, v in query.items()}, url="/v1/nodes",
                   environ={})


def test_pages_follow_next_token_after_filtering() -> None:
    answer = Answer(NODES, (("X-Nomad-Index", "7"),))
    page = apply_list_options(_req(per_page="1", filter='Status == "ready"'), answer)
    assert [n["ID"] for n in page.value] == ["a1"] and ("X-Nomad-NextToken", "c3") in page.headers
    page = apply_list_options(_req(per_page="1", next_token="c3", filter='Status == "ready"'), answer)
    assert [n["ID"] for n in page.value] == ["c3"] and not any(h == "X-Nomad-NextToken" for h, _ in page.headers)
    assert [n["ID"] for n in apply_list_options(_req(next_token="b2"), answer).value] == ["b2", "c3"]
    for bad in (_req(per_page="x"), _req(per_page="-1"), _req(filter="Status ==")):
        with pytest.raises(CodedError) as e:
            apply_list_options(bad, answer)
        assert e.value.code == 400


def test_a_regex_that_backtracks_forever_is_refused_within_its_budget_not_run_for_ever() -> None:
    import time

    items = [{"ID": f"x{i}", "Name": "a" * 60 + "b"} for i in range(5)]
    started = time.monotonic()
    with pytest.raises(CodedError) as e:
        apply_list_options(_req(filter='Name matches "(a|aa)+$"'), Answer(items))
    assert e.value.code == 400 and "took longer" in e.value.message
    assert time.monotonic() - started < 2.0


def test_deep_nesting_is_refused_cleanly() -> None:
    with pytest.raises(FilterError, match="nested deeper"):
        compile_filter("(" * 200 + 'Name == "x"' + ")" * 200)
    with pytest.raises(FilterError, match="nested deeper"):
        compile_filter("not " * 200 + 'Name == "x"')


def test_a_bare_word_before_in_is_a_string_as_binding_rule_selectors_write_it() -> None:
    """go-bexpr reads ``engineering in list.groups`` as the string "engineering" (Nomad's docs' selectors)."""
    claims = {"value": {"user": "alice"}, "list": {"groups": ["nomad-engineering", "ops"]}}
    assert compile_filter("nomad-engineering in list.groups")(claims)
    assert compile_filter('"ops" in list.groups and value.user == alice')(claims)
    assert not compile_filter("sales in list.groups")(claims)
    assert compile_filter("sales not in list.groups")(claims)
    assert not compile_filter("ops in list.missing")(claims)
    with pytest.raises(FilterError):
        compile_filter("Name in 5")  # a field before `in` still needs a list


def test_evaluations_and_allocations_page_in_creation_order_with_index_tokens() -> None:
    """Nomad's CreateIndexAndIDTokenizer: a list without a prefix in (CreateIndex, ID) order, the index
    compared as a number (12 before 102), ``?reverse=true`` newest first, tokens ``<index>.<ID>``."""
    evals = [{"ID": "ccc", "CreateIndex": 12}, {"ID": "aaa", "CreateIndex": 102},
             {"ID": "bbb", "CreateIndex": 12}, {"ID": "ddd", "CreateIndex": 9}]
    answer = Answer(evals, ())
    page = apply_list_options(_req(per_page="2"), answer, created=True)
    assert [e["ID"] for e in page.value] == ["ddd", "bbb"] and ("X-Nomad-NextToken", "12.ccc") in page.headers
    page = apply_list_options(_req(per_page="2", next_token="12.ccc"), answer, created=True)
    assert [e["ID"] for e in page.value] == ["ccc", "aaa"] and not any(h == "X-Nomad-NextToken"
                                                                        for h, _ in page.headers)
    back = apply_list_options(_req(per_page="2", reverse="true"), answer, created=True)
    assert [e["ID"] for e in back.value] == ["aaa", "ccc"] and ("X-Nomad-NextToken", "12.bbb") in back.headers
    back = apply_list_options(_req(reverse="true", next_token="12.bbb"), answer, created=True)
    assert [e["ID"] for e in back.value] == ["bbb", "ddd"]
