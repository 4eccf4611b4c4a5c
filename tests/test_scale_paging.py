"""Paged lists (``?per_page=&next_token=``, with ``?filter=`` and ``?reverse=``) answer exactly what
paging the whole list answers, while building the stubs of the page's rows alone (and the next
page's first, which names the token): a page of a cluster's allocations, evaluations, jobs or nodes
costs choosing its rows by their keys, not a stub of every row.

The handlers run over a real state store through a fake Raft that runs each read's query on it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import actors.http_api  # first: the list modules it imports import it
import actors.http_deployments
import actors.http_filter
import actors.http_job_statuses
import actors.http_jobs
from actors.http_api import Answer, Request, find_route
from tests.test_http_leader_hold import FakeEnv
from tests.test_scheduler import Cluster, service


class StoreRaft:
    """Answers a read by running its query on the store (a leader's read at the store's index)."""

    def __init__(self, st: Any) -> None:
        self.st = st

    def is_alive(self) -> bool:
        return True

    def tell(self, msg: Any) -> None:
        msg.reply.set((1, msg.query(self.st)))


@pytest.fixture(scope="module")
def api() -> Any:
    c = Cluster()
    for i in range(7):
        c.node(i)
    for j in range(12):
        c.register(**service(f"web{j:02d}", count=1 + j % 3, cpu=50, mem=32))
    c.register(**service("batch1", count=2, cpu=50, mem=32, Type="batch"))
    c.schedule()
    c.client()
    c.register(**service("web03", count=4, cpu=50, mem=32, Meta={"v": "2"}))  # a second version
    c.schedule()
    env, raft = FakeEnv(), StoreRaft(c.state)
    env.node = "paging-test"  # the list cache's key (actors.http_cache)
    env.lookup = lambda name: raft if name == "raft" else None
    status = {"role": "leader", "leader": "x", "last_contact": 0}
    return SimpleNamespace(env=env, ask=lambda actor, what: status, ctx=SimpleNamespace(acl_enabled=False),
                           ask_timeout_s=5.0)


def get(api: Any, path: str, query: dict[str, str]) -> Answer:
    req = Request(method="GET", path=path, query={k: [v] for k, v in query.items()}, url=path, environ={})
    answer = find_route(path)(req, api)
    assert isinstance(answer, Answer), answer
    return answer


def pages(api: Any, path: str, query: dict[str, str]) -> list[Answer]:
    """Every page, following X-Nomad-NextToken."""
    out, token = [], ""
    while True:
        answer = get(api, path, {**query, **({"next_token": token} if token else {})})
        out.append(answer)
        token = dict(answer.headers).get("X-Nomad-NextToken", "")
        if not token:
            return out
        assert len(out) < 200


def whole_list_paged(monkeypatch: Any) -> None:
    """The way pages were made before: every row's stub, then paged."""
    monkeypatch.setattr(actors.http_jobs, "page_rows", lambda *a, **k: None)
    monkeypatch.setattr(actors.http_filter, "page_rows", lambda *a, **k: None)
    monkeypatch.setattr(actors.http_deployments, "_page_rows", lambda *a, **k: None)
    monkeypatch.setattr(actors.http_job_statuses, "_page_limit", lambda req: 0)


CASES = [
    ("/v1/allocations", {"per_page": "3"}),
    ("/v1/allocations", {"per_page": "4", "reverse": "true"}),
    ("/v1/allocations", {"per_page": "2", "filter": 'ClientStatus == "running"'}),
    ("/v1/allocations", {"per_page": "1", "prefix": "a"}),
    ("/v1/allocations", {"per_page": "1", "task_states": "false"}),
    ("/v1/evaluations", {"per_page": "3"}),
    ("/v1/evaluations", {"per_page": "3", "reverse": "true", "filter": 'Status == "complete"'}),
    ("/v1/evaluations", {"per_page": "1", "job": "web03"}),
    ("/v1/jobs", {"per_page": "4"}),
    ("/v1/jobs", {"per_page": "2", "filter": 'Type == "service"'}),
    ("/v1/jobs", {"per_page": "3", "prefix": "web0"}),
    ("/v1/jobs", {"per_page": "5", "namespace": "*"}),
    ("/v1/nodes", {"per_page": "2"}),
    ("/v1/nodes", {"per_page": "3", "filter": 'Status == "ready"'}),
    ("/v1/deployments", {"per_page": "3"}),
    ("/v1/deployments", {"per_page": "4", "ascending": "true"}),
    ("/v1/deployments", {"per_page": "2", "filter": 'JobID != "web05"'}),
    ("/v1/jobs/statuses", {"per_page": "3"}),
    ("/v1/jobs/statuses", {"per_page": "4", "reverse": "true"}),
    ("/v1/jobs/statuses", {"per_page": "2", "filter": 'Type == "service"'}),
]


@pytest.mark.parametrize(("path", "query"), CASES)
def test_each_page_is_the_page_of_the_whole_list(api: Any, monkeypatch: Any, path: str,
                                                 query: dict[str, str]) -> None:
    got = [(a.value, a.headers) for a in pages(api, path, query)]
    assert len(got) > 1  # more than one page: the tokens are exercised
    with monkeypatch.context() as m:
        whole_list_paged(m)
        want = [(a.value, a.headers) for a in pages(api, path, query)]
    assert got == want


@pytest.mark.parametrize("token", ["zz", "0.x", "12", "7.", "default.web05", "not-a-token"])
def test_any_next_token_starts_where_the_whole_list_would(api: Any, monkeypatch: Any, token: str) -> None:
    for path, created in (("/v1/allocations", True), ("/v1/evaluations", True), ("/v1/jobs", False),
                          ("/v1/nodes", False), ("/v1/deployments", False)):
        if path == "/v1/deployments" and not token.partition(".")[0].isdigit():
            continue  # refused (test_refused_options_are_refused_as_before)
        for reverse in ("true", "false") if created else ("false",):
            query = {"per_page": "2", "next_token": token, "reverse": reverse}
            got = get(api, path, query)
            with monkeypatch.context() as m:
                whole_list_paged(m)
                want = get(api, path, query)
            assert (got.value, got.headers) == (want.value, want.headers), (path, query)


@pytest.mark.parametrize("path", ["/v1/allocations", "/v1/deployments"])
@pytest.mark.parametrize("query", [{"per_page": "x"}, {"per_page": "-1"},
                                   {"per_page": "2", "filter": "Status =="}])
def test_refused_options_are_refused_as_before(api: Any, path: str, query: dict[str, str]) -> None:
    from actors.http_api import CodedError

    with pytest.raises(CodedError) as e:
        get(api, path, query)
    assert e.value.code == 400


@pytest.mark.parametrize("path", ["/v1/allocations", "/v1/evaluations"])
def test_a_page_with_a_malformed_reverse_is_refused(api: Any, path: str) -> None:
    from actors.http_api import CodedError

    with pytest.raises(CodedError) as e:
        get(api, path, {"per_page": "2", "reverse": "bogus"})
    assert e.value.code == 400


def test_a_deployments_page_with_a_token_that_is_no_index_is_refused(api: Any) -> None:
    from actors.http_api import CodedError

    with pytest.raises(CodedError) as e:
        get(api, "/v1/deployments", {"per_page": "2", "next_token": "zz"})
    assert e.value.code == 400


def test_a_page_builds_the_stubs_of_its_own_rows_only(api: Any, monkeypatch: Any) -> None:
    built = {"alloc": 0, "eval": 0, "job": 0, "node": 0}

    def counting(name: str, fn: Any) -> Any:
        def wrapped(*a: Any, **k: Any) -> Any:
            built[name] += 1
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(actors.http_jobs, "alloc_stub", counting("alloc", actors.http_jobs.alloc_stub))
    monkeypatch.setattr(actors.http_jobs, "eval_out", counting("eval", actors.http_jobs.eval_out))
    monkeypatch.setattr(actors.http_jobs, "job_stub", counting("job", actors.http_jobs.job_stub))
    monkeypatch.setattr(actors.http_api, "node_stub", counting("node", actors.http_api.node_stub))
    built["deployment"] = built["status"] = 0
    monkeypatch.setattr(actors.http_job_statuses, "job_status",
                        counting("status", actors.http_job_statuses.job_status))
    monkeypatch.setattr(actors.http_deployments, "deployment_out",
                        counting("deployment", actors.http_deployments.deployment_out))
    for path in ("/v1/allocations", "/v1/evaluations", "/v1/jobs", "/v1/nodes", "/v1/deployments",
                 "/v1/jobs/statuses"):
        assert len(get(api, path, {"filter": 'ID != ""'}).value) > 6  # the whole list (never a cached one)
    whole = dict(built)
    built.update(dict.fromkeys(built, 0))
    for path in ("/v1/allocations", "/v1/evaluations", "/v1/jobs", "/v1/nodes", "/v1/deployments",
                 "/v1/jobs/statuses"):
        assert len(get(api, path, {"per_page": "2"}).value) == 2
    assert built == dict.fromkeys(built, 3), (built, whole)


@pytest.mark.parametrize("query", [{"job": "web03"}, {"job": "web03", "status": "complete"}, {"job": "nope"},
                                   {"job": "web03", "namespace": "*"}, {"job": "web03", "namespace": "other"},
                                   {"job": "web03", "per_page": "1"}])
def test_one_jobs_evaluations_come_from_its_index_as_a_scan_finds_them(api: Any, monkeypatch: Any,
                                                                       query: dict[str, str]) -> None:
    got = get(api, "/v1/evaluations", query)
    with monkeypatch.context() as m:
        m.setattr(actors.http_jobs, "_evals_in_id_order",
                  lambda st, prefix, job_id, ns: actors.http_jobs.by_id(st.tables["evals"], prefix))
        want = get(api, "/v1/evaluations", query)
    assert (got.value, got.headers) == (want.value, want.headers)
    assert query["job"] == "nope" or query.get("namespace") == "other" or got.value


def test_one_jobs_evaluations_read_its_own(api: Any, monkeypatch: Any) -> None:
    seen = []
    monkeypatch.setattr(actors.http_jobs, "eval_out", lambda e: seen.append(e["ID"]) or {"ID": e["ID"]})
    monkeypatch.setattr(actors.http_jobs, "by_id", lambda *a: pytest.fail("every evaluation was read"))
    assert len(get(api, "/v1/evaluations", {"job": "web03"}).value) == len(seen) >= 2


def test_a_list_of_deployments_is_copied_as_plain_trees(api: Any, monkeypatch: Any) -> None:
    """The whole list is made inside the state actor: each deployment is copied without deepcopy's
    memo (2.5x faster), into the same answer."""
    import copy

    want = get(api, "/v1/deployments", {}).value
    assert len(want) > 6
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: pytest.fail("copy.deepcopy of a plain record"))
    assert get(api, "/v1/deployments", {}).value == want
