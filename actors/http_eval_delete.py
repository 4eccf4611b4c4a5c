"""``DELETE /v1/evaluations`` and ``GET /v1/evaluations/count`` (Nomad ``Eval.Delete``, ``Eval.Count``).

Deleting: a body of ``{"EvalIDs": [...]}`` or ``{"Filter": "<expr>"}`` (not
both, one of them), a management token, and the eval broker paused (see
:mod:`actors.state.eval_delete` for what may go). A filter is matched here, on
the state this server reads, against each evaluation as the API shows it; the
deletable matches go to Raft in pages of ``MAX_IDS_PER_COMMAND``, each
re-checked by the apply. The answer is ``{"Count": n, "Index": i}``.

Counting: ``?filter=`` over the evaluations this token may read (read-job),
``{"Count": n, "Index": i}`` as a blocking query on the evaluations table.
"""
from __future__ import annotations

from typing import Any

from actors.http_api import (
    ROUTES,
    Answer,
    Api,
    CodedError,
    Request,
    propose,
    query_meta,
    query_meta_body,
    require,
    route,
    state_query,
)
from actors.http_filter import FilterError, FilterTooSlow, compile_filter
from actors.http_jobs import _json_body, eval_out
from actors.state import eval_delete
from actors.state.store import command


def _matcher(text: str) -> Any:
    try:
        return compile_filter(text)
    except FilterError as e:
        raise CodedError(400, f"failed to read filter expression: {e}") from None


def _matching(api: Api, req: Request, text: str, deletable: bool) -> tuple[list[str], int]:
    keep = _matcher(text) if text else None

    def query(st: Any) -> list[str]:
        out = []
        for eid, ev in sorted(st.tables["evals"].items()):
            if deletable and not eval_delete.delete_safe(st, ev):
                continue
            if keep is None or keep(eval_out(ev)):
                out.append(eid)
        return out
    try:
        answer = state_query(req, api, ("evals",), query)
    except FilterTooSlow as e:
        raise CodedError(400, f"failed to apply filter expression: {e}") from None
    return answer.value, int(dict(answer.headers).get("X-Nomad-Index", "0"))


def _propose_delete(api: Api, ids: list[str], by_filter: bool) -> tuple[int, int]:
    index, result = propose(api, command("eval_delete", evals=ids, by_filter=by_filter))
    if not isinstance(result, dict):
        raise CodedError(500, f"unexpected result from the state store: {result!r}")
    if not result.get("ok"):
        # Nomad answers its RPC's refusals ("eval not found" too) with 500.
        raise CodedError(500, str(result.get("error") or "refused by the state store"))
    return index, int(result.get("count", 0))


def evaluations_delete(req: Request, api: Api) -> Any:
    body = _json_body(req)
    ids, text = body.get("EvalIDs") or [], body.get("Filter") or ""
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CodedError(400, "EvalIDs: must be a list of strings")
    if not isinstance(text, str):
        raise CodedError(400, "Filter: must be a string")
    if text and ids:
        raise CodedError(400, "evals cannot be deleted by both ID and filter")
    if not text and not ids:
        raise CodedError(400, "evals must be deleted by either ID or filter")
    if len(ids) > eval_delete.MAX_IDS_PER_REQUEST:
        raise CodedError(400, f"request includes {len(ids)} evaluation IDs, must be "
                              f"{eval_delete.MAX_IDS_PER_REQUEST} or fewer")
    if ids:
        index, count = _propose_delete(api, ids, by_filter=False)
    else:
        matched, index = _matching(api, req, text, deletable=True)
        count = 0
        if not matched:  # nothing to delete: the broker must still be paused, as Nomad's apply insists
            index, _ = _propose_delete(api, [], by_filter=True)
        page = eval_delete.MAX_IDS_PER_COMMAND
        for start in range(0, len(matched), page):
            index, n = _propose_delete(api, matched[start:start + page], by_filter=True)
            count += n
    return Answer({"Count": count, "Index": index}, (("X-Nomad-Index", str(index)),))


_list_evaluations = ROUTES["/v1/evaluations"]


@route("/v1/evaluations")
def evaluations(req: Request, api: Api) -> Any:
    if req.method == "DELETE":
        return evaluations_delete(req, api)
    return _list_evaluations(req, api)


@route("/v1/evaluations/count")
def evaluations_count(req: Request, api: Api) -> Any:
    require(req, "GET")
    text = (req.query.get("filter") or [""])[0]
    ids, index = _matching(api, req, text, deletable=False)
    headers = query_meta(api, index)  # Nomad's setMeta; its EvalCountResponse embeds the QueryMeta too
    return Answer({"Count": len(ids), **query_meta_body(headers)}, headers)
