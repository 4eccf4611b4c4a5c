"""``GET /v1/client/allocation/<id>/snapshot``: an allocation's ephemeral disk as a tar (Nomad allocSnapshot).

The node that ran the allocation answers with the tar of its ``alloc/data``
and each task's ``local/`` (:func:`actors.client.disk_migrate.snapshot_chunks`,
streamed): what a replacement on another node with ``ephemeral_disk {
migrate = true }`` pulls before its tasks start.

It is authorised as Nomad's: not by an ACL policy, but by the **migrate
token** the servers gave the replacement's node (``X-Nomad-Token``), checked
against this node's own secret (Nomad's ``ValidateMigrateToken``) when ACLs
are enabled: 403 ``Permission denied`` otherwise.  Without ACLs any caller
may take it, as in Nomad.  An allocation this client holds no directory of is
Nomad's 500 ``allocation not found``; an agent that is no client, Nomad's 400
``client not running``.  Asked of another agent (a server, say), the request
is relayed to the allocation's node as the other ``/v1/client/allocation/``
endpoints are (:mod:`actors.http_client_forward`), the token passed along.
"""

from __future__ import annotations

import os
from typing import Any

from actors.client.alloc_runner import GetSnapshotSource
from actors.client.disk_migrate import snapshot_chunks
from actors.http_acl import request_secret
from actors.http_api import Api, CodedError, Request, Stream, require

ALLOC_RUNNER = "alloc-runner"  # the client agent's AllocRunner (actors.agent_specs)
CLIENT_NOT_RUNNING = "client not running"  # Nomad's clientNotRunning (a 400)


def alloc_snapshot(req: Request, api: Api, alloc_id: str) -> Any:
    require(req, "GET")
    ref = api.env.lookup(ALLOC_RUNNER)
    logs = api.ctx.alloc_logs
    if ref is None or not ref.is_alive() or logs is None:
        raise CodedError(400, CLIENT_NOT_RUNNING)
    status, error, tasks = api.ask(ALLOC_RUNNER, GetSnapshotSource(
        alloc_id=alloc_id, token=request_secret(req), check_token=api.ctx.acl_enabled))
    if status != 200:
        raise CodedError(status, error)
    return Stream(200, snapshot_chunks(os.path.join(logs.root, alloc_id), alloc_id, tasks),
                  "application/x-tar")
