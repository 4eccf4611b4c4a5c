# Recorded tests/data/pre_cluster_id_log.msgpack: run from a tree of commit 41a3290 (before cluster IDs) as
#   python record_pre_cluster_id_log.py > pre_cluster_id_log.msgpack
"""Records a Raft log and a state snapshot with the code before cluster IDs (run from that tree)."""
import sys
from typing import Any

import msgpack

from actors.scheduler.broker import pending_evals, plan_command
from actors.scheduler.job import canonical_job
from actors.state.store import StateStore, command

SEC = 1_000_000_000
state, log = StateStore(), []
now = 1000.0


def apply(data: bytes) -> Any:
    log.append(data)
    return state.apply(len(log), data)


def op(name: str, **args: Any) -> Any:
    return apply(command(name, now=now, **args))


def schedule() -> None:
    for _ in range(20):
        pending = sorted(pending_evals(state, now=None))
        if not pending:
            return
        for _, _, eval_id, _ in pending:
            data, _ = plan_command(state, eval_id, now)
            if data is not None:
                apply(data)
    raise AssertionError("did not settle")


def service(job_id: str, count: int, **extra: Any) -> dict[str, Any]:
    group = {"Name": "g", "Count": count,
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["9"]},
                        "Resources": {"CPU": 500, "MemoryMB": 256}}]}
    group.update(extra.pop("group", {}))
    return canonical_job({"ID": job_id, "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [group],
                          **extra})


for i in range(3):
    nid = f"node-{i}"
    op("node_register", node={
        "ID": nid, "SecretID": "s", "Name": f"n{i}", "Datacenter": "dc1", "NodePool": "default",
        "Attributes": {"kernel.name": "linux", "nomad.version": "2.0.6"},
        "Drivers": {"raw_exec": {"Detected": True, "Healthy": True}},
        "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192},
                          "Disk": {"DiskMB": 100000}},
        "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0}}})
    op("node_update_status", node_id=nid, status="ready")
assert op("job_register", job=service("web", 3, Update={"MaxParallel": 1}))["ok"]
assert op("job_register", job=service("scaled", 2, group={"Scaling": {"Min": 1, "Max": 5}}))["ok"]
param = service("report", 1, Type="batch")
param["ParameterizedJob"] = {"Payload": "optional", "MetaRequired": ["customer"], "MetaOptional": []}
assert op("job_register", job=canonical_job(param))["ok"]
assert op("job_dispatch", job_id="report", meta={"customer": "acme"})["ok"]
schedule()
now += 5
op("alloc_client_update", allocs=[{"ID": a["ID"], "ClientStatus": "running"}
                                  for a in sorted(state.tables["allocs"].values(), key=lambda a: a["ID"])])
schedule()
now += 5
op("node_update_status", node_id="node-1", status="down")
schedule()
snap_index = len(log)
snapshot = state.snapshot()
# One more entry after the snapshot: a restore of it followed by this entry must make the same eval.
after = command("job_register", now=now, job=service("late", 1))
res = state.apply(snap_index + 1, after)
wanted = {t: sorted(state.tables[t]) for t in ("evals", "allocs", "deployments", "scaling_policies", "jobs")}
out = {"log": log, "snapshot": snapshot, "after": after, "after_eval": res["EvalID"], "ids": wanted}
sys.stdout.buffer.write(msgpack.packb(out, use_bin_type=True))
