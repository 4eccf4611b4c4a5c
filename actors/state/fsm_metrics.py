"""Nomad's ``nomad.fsm.<message type>`` timers: which of Nomad's names each of our commands is.

Nomad's FSM times every Raft message it applies, under a name per message
type (``fsm.go``: ``nomad.fsm.register_node``, ``nomad.fsm.apply_plan_results``,
...), in milliseconds, on every server.  Our commands are not Nomad's message
types one for one, so each op is timed under the name of the Nomad message
that does its work: a dispatch, a revert and a scale are job registrations
there, a node's drain being done is a batch drain update, an allocation stop
is a desired-transition update.  Ops with no Nomad counterpart (the generic
table writes, the operator's snapshot restore, no-ops) are not timed: a
dashboard built for Nomad would not know their names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FSM_NAMES", "fsm_key"]

Labels = tuple[tuple[str, str], ...]

# Our op -> the last part of Nomad's metric name (nomad.fsm.<it>).
FSM_NAMES: dict[str, str] = {
    "node_register": "register_node",
    "node_update_status": "node_status_update",
    "node_deregister": "deregister_node",
    "node_gc": "batch_deregister_node",  # the core scheduler's node GC: NodeBatchDeregisterRequestType
    "node_evaluate": "update_eval",  # Node.Evaluate writes its evaluations as an EvalUpdate
    "node_update_drain": "node_drain_update",
    "node_update_eligibility": "node_eligibility_update",
    "node_drain_complete": "batch_node_drain_update",  # the drainer's NodesDrainComplete
    "job_register": "register_job",
    "job_revert": "register_job",  # Job.Revert registers the old version
    "job_dispatch": "register_job",  # Job.Dispatch registers the child
    "periodic_launch": "register_job",  # the periodic dispatcher registers the child
    "job_scale": "register_job",  # Job.Scale registers the job with its new count
    "job_deregister": "deregister_job",
    "job_evaluate": "update_eval",  # Job.Evaluate writes its evaluation as an EvalUpdate
    "job_stability": "apply_job_stability",
    "job_version_tag": "apply_job_version_tag",
    "plan_apply": "apply_plan_results",
    "plan_apply_batch": "apply_plan_results",
    "alloc_client_update": "alloc_client_update",
    "alloc_client_update_batch": "alloc_client_update",
    "alloc_migrate": "alloc_update_desired_transition",
    "alloc_stop": "alloc_update_desired_transition",  # Alloc.Stop sets the desired transition
    "eval_update": "update_eval",
    "eval_delete": "delete_eval",
    "core_gc": "delete_eval",  # the core scheduler's eval/alloc GC: EvalDeleteRequestType
    "scheduler_set_config": "apply_scheduler_config",
    "autopilot_set_config": "autopilot",
    "cluster_meta_set": "cluster_meta",
    "node_pool_upsert": "apply_node_pool_upsert",
    "node_pool_delete": "apply_node_pool_delete",
    "namespace_upsert": "apply_namespace_upsert",
    "namespace_delete": "apply_namespace_delete",
    "deployment_fail": "apply_deployment_status_update",
    "deployment_pause": "apply_deployment_status_update",
    "deployment_promote": "apply_deployment_promotion",
    "deployment_alloc_health": "apply_deployment_alloc_health",
    "service_delete": "apply_service_registration_delete_id",
    "acl_bootstrap": "apply_acl_token_bootstrap",
    "acl_token_upsert": "apply_acl_token_upsert",
    "acl_token_delete": "apply_acl_token_delete",
    "acl_token_gc": "apply_acl_token_delete",  # the leader's expired-token GC deletes them
    "acl_policy_upsert": "apply_acl_policy_upsert",
    "acl_policy_delete": "apply_acl_policy_delete",
    "acl_role_upsert": "apply_acl_role_upsert",
    "acl_role_delete": "apply_acl_role_delete_by_id",
    "acl_auth_method_upsert": "apply_acl_auth_method_upsert",
    "acl_auth_method_delete": "apply_acl_auth_method_delete",
    "acl_binding_rule_upsert": "apply_acl_binding_rule_upsert",
    "acl_binding_rule_delete": "apply_acl_binding_rule_delete",
    "root_key_create": "apply_wrapped_root_key_upsert",
    "root_key_rotate": "apply_wrapped_root_key_upsert",
    "root_key_delete": "apply_wrapped_root_key_delete",
}

# Variable writes: one Nomad name, apply_sv_operation, labelled with Nomad's VarOp.
_VAR_OPS: dict[str, str] = {
    "var_set": "set",
    "var_delete": "delete",
    "var_lock_acquire": "lock-acquire",
    "var_lock_release": "lock-release",
    "var_lock_expire": "lock-release",  # the leader releases an expired lock
}

_KEYS: dict[str, tuple[tuple[str, ...], Labels]] = {
    **{op: (("nomad", "fsm", name), ()) for op, name in FSM_NAMES.items()},
    **{op: (("nomad", "fsm", "apply_sv_operation"), (("op", var_op),)) for op, var_op in _VAR_OPS.items()},
}


def fsm_key(cmd: dict[str, Any]) -> tuple[tuple[str, ...], Labels] | None:
    """(metric key, labels) timing *cmd*'s apply, or None for an op Nomad has no name for."""
    op = cmd.get("op")
    if op in _VAR_OPS and cmd.get("cas") is not None and op in ("var_set", "var_delete"):
        return ("nomad", "fsm", "apply_sv_operation"), (("op", "cas" if op == "var_set" else "delete-cas"),)
    return _KEYS.get(op) if isinstance(op, str) else None
