"""CSI volumes and plugins, and dynamic host volumes: the lists Nomad answers, for a cluster with none.

This agent has no CSI plugins and no dynamic host volumes (a client's static ``host_volume`` blocks
are in its node's ``HostVolumes``), so the web UI's storage views and ``nomad volume status`` /
``nomad plugin status`` are answered as a Nomad cluster without them answers:

* ``GET /v1/volumes``: ``[]`` (``?type=csi``, ``?type=host`` or none); another type is
  ``404 resource not found``; ``GET /v1/plugins``: ``[]`` (``?type=csi`` or none), ``null`` for another.
* ``GET /v1/volume/csi/<id>`` or ``/v1/volume/host/<id>``: ``404 volume not found``;
  ``GET /v1/plugin/csi/<id>``: ``404 plugin not found``.
* Creating, registering or changing a volume is refused with ``501`` and the reason, instead of
  being taken and ignored; deleting one that cannot exist is its 404.

ACLs: the namespace's ``csi-list-volume``/``host-volume-read`` (lists), ``csi-read-volume``/
``host-volume-read`` (one), and the ``plugin`` block's ``list``/``read`` (actors.acl), as Nomad's RPCs
check.
"""

from __future__ import annotations

from typing import Any

from actors.http_api import INVALID_METHOD, Answer, Api, CodedError, Request, query_meta, route

NOT_FOUND = "resource not found"  # Nomad's resourceNotFoundErr
NOT_SUPPORTED = "CSI and dynamic host volumes are not supported by this agent"


def _meta(api: Api) -> tuple[tuple[str, str], ...]:
    return query_meta(api, 1) if api.env.lookup("raft") is not None else (("X-Nomad-Index", "1"),)


@route("/v1/volumes")
def volumes_list(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    kind = (req.query.get("type") or [None])[0]
    if kind not in (None, "csi", "host"):
        raise CodedError(404, NOT_FOUND)
    return Answer([], _meta(api))


@route("/v1/volume/csi/")
@route("/v1/volume/host/")
def volume_request(req: Request, api: Api) -> Any:
    if req.method in ("PUT", "POST"):
        raise CodedError(501, NOT_SUPPORTED)
    if req.method not in ("GET", "DELETE"):
        raise CodedError(405, INVALID_METHOD)
    raise CodedError(404, "volume not found")


@route("/v1/volume/host/create")
@route("/v1/volume/host/register")
def host_volume_write(req: Request, api: Api) -> Any:
    if req.method not in ("PUT", "POST"):
        raise CodedError(405, INVALID_METHOD)
    raise CodedError(501, NOT_SUPPORTED)


@route("/v1/plugins")
def plugins_list(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    kind = (req.query.get("type") or [None])[0]
    return Answer([] if kind in (None, "csi") else None, _meta(api))


@route("/v1/plugin/csi/")
def plugin_request(req: Request, api: Api) -> Any:
    if req.method != "GET":
        raise CodedError(405, INVALID_METHOD)
    raise CodedError(404, "plugin not found")
