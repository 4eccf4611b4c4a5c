"""The HTTP API's answers have Nomad's JSON shapes: every key Nomad's structs always encode (no
``omitempty``), each with a value of the JSON type its Go type encodes to, so the Go ``api`` package,
python-nomad, the web UI and Terraform's provider read our answers as they read Nomad's.

The key sets below are Nomad's ``nomad/structs`` (what its HTTP server encodes with go-codec), one letter
per key for the JSON kind of its Go type:

    s string   b bool   n number   t time.Time (an RFC 3339 string; Go's zero time when unset)
    l slice (a list, or null when nil)   m map (an object, or null when nil)
    o pointer to a struct (an object, or null)   O a struct value (always an object)
    B []byte (a base64 string, or null when nil)

A trailing ``?`` marks ``omitempty``: the key may be left out, and is when its value is empty.
Keys we answer beyond Nomad's are allowed (clients ignore unknown keys); missing keys and wrong types are
what break them. One ``-dev`` agent (server and client, raw_exec) with one running job is shared by the
module; it is killed by PID at the end.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from tests.test_http_jobs import call, dev_agent_config, node_id, running_agent, sleep_job, wait_for

pytestmark = pytest.mark.timeout(90)

PLACE_DEADLINE_S = 20.0  # placement and the task's start: well under a second here; bound for a loaded box

NOMAD: dict[str, dict[str, str]] = {
    "JobListStub": {
        "ID": "s", "ParentID": "s", "Name": "s", "Namespace": "s?", "Datacenters": "l", "NodePool": "s",
        "Multiregion": "o", "Type": "s", "Priority": "n", "Periodic": "b", "ParameterizedJob": "b",
        "Stop": "b", "Status": "s", "StatusDescription": "s", "JobSummary": "o", "CreateIndex": "n",
        "ModifyIndex": "n", "JobModifyIndex": "n", "SubmitTime": "n", "Meta": "m?"},
    "JobSummary": {"JobID": "s", "Namespace": "s", "Summary": "m", "Children": "o", "CreateIndex": "n",
                   "ModifyIndex": "n"},
    "TaskGroupSummary": {"Queued": "n", "Complete": "n", "Failed": "n", "Running": "n", "Starting": "n",
                         "Lost": "n", "Unknown": "n"},
    "AllocListStub": {
        "ID": "s", "EvalID": "s", "Name": "s", "Namespace": "s", "NodeID": "s", "NodeName": "s", "JobID": "s",
        "JobType": "s", "JobVersion": "n", "TaskGroup": "s", "AllocatedResources": "o?", "DesiredStatus": "s",
        "DesiredDescription": "s", "ClientStatus": "s", "ClientDescription": "s", "DesiredTransition": "O",
        "TaskStates": "m", "DeploymentStatus": "o", "FollowupEvalID": "s", "NextAllocation": "s",
        "RescheduleTracker": "o", "PreemptedAllocations": "l", "PreemptedByAllocation": "s",
        "CreateIndex": "n", "ModifyIndex": "n", "CreateTime": "n", "ModifyTime": "n"},
    "Allocation": {
        "ID": "s", "Namespace": "s", "EvalID": "s", "Name": "s", "NodeID": "s", "NodeName": "s", "JobID": "s",
        "Job": "o", "TaskGroup": "s", "Resources": "o", "SharedResources": "o", "TaskResources": "m",
        "AllocatedResources": "o", "Metrics": "o", "DesiredStatus": "s", "DesiredDescription": "s",
        "DesiredTransition": "O", "ClientStatus": "s", "ClientDescription": "s", "TaskStates": "m",
        "AllocStates": "l", "PreviousAllocation": "s", "NextAllocation": "s", "DeploymentID": "s",
        "DeploymentStatus": "o", "RescheduleTracker": "o", "NetworkStatus": "o", "FollowupEvalID": "s",
        "PreemptedAllocations": "l", "PreemptedByAllocation": "s", "SigningKeyID": "s", "CreateIndex": "n",
        "ModifyIndex": "n", "AllocModifyIndex": "n", "CreateTime": "n", "ModifyTime": "n"},
    "TaskState": {"State": "s", "Failed": "b", "Restarts": "n", "LastRestart": "t", "StartedAt": "t",
                  "FinishedAt": "t", "Events": "l", "Paused": "s"},
    "TaskEvent": {
        "Type": "s", "Time": "n", "Message": "s", "DisplayMessage": "s", "Details": "m", "FailsTask": "b",
        "RestartReason": "s", "SetupError": "s", "DriverError": "s", "ExitCode": "n", "Signal": "n",
        "KillTimeout": "n", "KillError": "s", "KillReason": "s", "StartDelay": "n", "DownloadError": "s",
        "ValidationError": "s", "DiskLimit": "n", "FailedSibling": "s", "VaultError": "s",
        "TaskSignalReason": "s", "TaskSignal": "s", "DriverMessage": "s", "GenericSource": "s"},
    "DesiredTransition": {"Migrate": "o", "Reschedule": "o", "ForceReschedule": "o", "NoShutdownDelay": "o",
                          "MigrateDisablePlacement": "o"},
    "Evaluation": {
        "ID": "s", "Namespace": "s", "Priority": "n", "Type": "s", "TriggeredBy": "s", "JobID": "s",
        "JobModifyIndex": "n", "NodeID": "s", "NodeModifyIndex": "n", "DeploymentID": "s", "Status": "s",
        "StatusDescription": "s", "Wait": "n", "WaitUntil": "t", "NextEval": "s", "PreviousEval": "s",
        "BlockedEval": "s", "RelatedEvals": "l", "FailedTGAllocs": "m", "PlanAnnotations": "o",
        "ClassEligibility": "m", "QuotaLimitReached": "s", "MissingNonNodeResources": "l",
        "EscapedComputedClass": "b", "AnnotatePlan": "b", "QueuedAllocations": "m", "LeaderACL": "s",
        "SnapshotIndex": "n", "CreateIndex": "n", "ModifyIndex": "n", "CreateTime": "n", "ModifyTime": "n"},
    "NodeListStub": {
        "Address": "s", "ID": "s", "Attributes": "m?", "Datacenter": "s", "Name": "s", "NodePool": "s",
        "NodeClass": "s", "Version": "s", "Drain": "b", "SchedulingEligibility": "s", "Status": "s",
        "StatusDescription": "s", "Drivers": "m", "HostVolumes": "m", "NodeResources": "o?",
        "ReservedResources": "o?", "LastDrain": "o", "CreateIndex": "n", "ModifyIndex": "n"},
    "Node": {
        "ID": "s", "SecretID": "s", "Datacenter": "s", "Name": "s", "CgroupParent": "s", "HTTPAddr": "s",
        "TLSEnabled": "b", "Attributes": "m", "NodeResources": "o", "ReservedResources": "o", "Links": "m",
        "Meta": "m", "NodeClass": "s", "NodePool": "s", "ComputedClass": "s", "DrainStrategy": "o",
        "SchedulingEligibility": "s", "Status": "s", "StatusDescription": "s", "IdentitySigningKeyID": "s",
        "StatusUpdatedAt": "n", "Events": "l", "Drivers": "m", "CSIControllerPlugins": "m",
        "CSINodePlugins": "m", "HostVolumes": "m", "GCVolumesOnNodeGC": "b", "HostNetworks": "m",
        "LastDrain": "o", "NodeMaxAllocs": "n", "LastMissedHeartbeatIndex": "n", "LastAllocUpdateIndex": "n",
        "CreateIndex": "n", "ModifyIndex": "n"},
    "NodeResources": {"Cpu": "O", "Processors": "O", "Memory": "O", "Disk": "O", "Devices": "l",
                      "NodeNetworks": "l", "Networks": "l", "MinDynamicPort": "n", "MaxDynamicPort": "n"},
    "LegacyNodeCpuResources": {"CpuShares": "n", "TotalCpuCores": "n", "ReservableCpuCores": "l"},
    "NodeReservedResources": {"Cpu": "O", "Memory": "O", "Disk": "O", "Networks": "O"},
    "NodeReservedCpuResources": {"CpuShares": "n", "ReservedCpuCores": "l"},
    "AllocMetric": {
        "NodesEvaluated": "n", "NodesFiltered": "n", "NodesInPool": "n", "NodePool": "s",
        "NodesAvailable": "m", "ClassFiltered": "m", "ConstraintFiltered": "m", "NodesExhausted": "n",
        "ClassExhausted": "m", "DimensionExhausted": "m", "QuotaExhausted": "l", "ResourcesExhausted": "m",
        "Scores": "m", "ScoreMetaData": "l", "AllocationTime": "n", "CoalescedFailures": "n"},
    "NodeEvent": {"Message": "s", "Subsystem": "s", "Details": "m", "Timestamp": "t", "CreateIndex": "n"},
    "DriverInfo": {"Attributes": "m", "Detected": "b", "Healthy": "b", "HealthDescription": "s",
                   "UpdateTime": "t"},
    "Deployment": {
        "ID": "s", "Namespace": "s", "JobID": "s", "JobVersion": "n", "JobModifyIndex": "n",
        "JobSpecModifyIndex": "n", "JobCreateIndex": "n", "IsMultiregion": "b", "TaskGroups": "m",
        "Status": "s", "StatusDescription": "s", "EvalPriority": "n", "CreateIndex": "n", "ModifyIndex": "n",
        "CreateTime": "n", "ModifyTime": "n"},
    "DeploymentState": {
        "AutoRevert": "b", "AutoPromote": "b", "ProgressDeadline": "n", "RequireProgressBy": "t",
        "Promoted": "b", "PlacedCanaries": "l", "DesiredCanaries": "n", "DesiredTotal": "n",
        "PlacedAllocs": "n", "HealthyAllocs": "n", "UnhealthyAllocs": "n"},
    "ServerMembersResponse": {"ServerName": "s", "ServerRegion": "s", "ServerDC": "s", "Members": "l"},
    "ServerMember": {"Name": "s", "Addr": "s", "Port": "n", "Tags": "m", "Status": "s", "ProtocolMin": "n",
                     "ProtocolMax": "n", "ProtocolCur": "n", "DelegateMin": "n", "DelegateMax": "n",
                     "DelegateCur": "n"},
    "RaftConfigurationResponse": {"Servers": "l", "Index": "n"},
    "RaftServer": {"ID": "s", "Node": "s", "Address": "s", "Leader": "b", "Voter": "b", "RaftProtocol": "s"},
    "Namespace": {
        "Name": "s", "Description": "s", "Quota": "s", "Capabilities": "o", "NodePoolConfiguration": "o",
        "VaultConfiguration": "o", "ConsulConfiguration": "o", "Meta": "m", "Hash": "B", "CreateIndex": "n",
        "ModifyIndex": "n", "RequiredExtraClaims": "m", "OptionalExtraClaims": "m"},
    "NodePool": {"Name": "s", "Description": "s", "Meta": "m", "SchedulerConfiguration": "o",
                 "NodeIdentityTTL": "n", "Hash": "B", "CreateIndex": "n", "ModifyIndex": "n"},
    # The query's meta travels in the body too (structs.QueryMeta, embedded in the response).
    "JobVersionsResponse": {"Versions": "l", "Diffs": "l", "Index": "n", "LastContact": "n",
                            "KnownLeader": "b", "NextToken": "s"},
    "SchedulerConfigurationResponse": {"SchedulerConfig": "o", "Index": "n", "LastContact": "n",
                                       "KnownLeader": "b", "NextToken": "s"},
    "SchedulerConfiguration": {
        "SchedulerAlgorithm": "s", "PreemptionConfig": "O", "MemoryOversubscriptionEnabled": "b",
        "RejectJobRegistration": "b", "PauseEvalBroker": "b", "NodeLimitForFeasibilityChecks": "n",
        "CreateIndex": "n", "ModifyIndex": "n"},
    "Job": {
        "Stop": "b", "Region": "s", "Namespace": "s", "ID": "s", "ParentID": "s", "Name": "s", "Type": "s",
        "Priority": "n", "AllAtOnce": "b", "Datacenters": "l", "NodePool": "s", "Constraints": "l",
        "Affinities": "l", "Spreads": "l", "TaskGroups": "l", "Update": "O", "Multiregion": "o",
        "Periodic": "o", "ParameterizedJob": "o", "Dispatched": "b", "DispatchIdempotencyToken": "s",
        "Payload": "B", "Meta": "m", "ConsulNamespace": "s", "VaultNamespace": "s", "NomadTokenID": "s",
        "Status": "s", "StatusDescription": "s", "Stable": "b", "Version": "n", "SubmitTime": "n",
        "CreateIndex": "n", "ModifyIndex": "n", "JobModifyIndex": "n", "UI": "o", "VersionTag": "o"},
    "UpdateStrategy": {
        "Stagger": "n", "MaxParallel": "n", "HealthCheck": "s", "MinHealthyTime": "n", "HealthyDeadline": "n",
        "ProgressDeadline": "n", "AutoRevert": "b", "AutoPromote": "b", "Canary": "n"},
    "TaskGroup": {
        "Name": "s", "Count": "n", "Update": "o", "Migrate": "o", "Constraints": "l", "Scaling": "o",
        "RestartPolicy": "o", "Disconnect": "o", "Tasks": "l", "EphemeralDisk": "o", "Meta": "m",
        "ReschedulePolicy": "o", "Affinities": "l", "Spreads": "l", "Networks": "l", "Consul": "o",
        "Services": "l", "Volumes": "m", "ShutdownDelay": "o", "MaxRunDuration": "o",
        "StopAfterClientDisconnect": "o", "MaxClientDisconnect": "o", "PreventRescheduleOnLost": "b"},
    "Task": {
        "Name": "s", "Driver": "s", "User": "s", "Config": "m", "Env": "m", "Services": "l", "Vault": "o",
        "Secrets": "l", "Consul": "o", "Templates": "l", "Constraints": "l", "Affinities": "l",
        "Resources": "o", "RestartPolicy": "o", "DispatchPayload": "o", "Lifecycle": "o", "Meta": "m",
        "KillTimeout": "n", "LogConfig": "o", "Artifacts": "l", "Leader": "b", "ShutdownDelay": "n",
        "VolumeMounts": "l", "ScalingPolicies": "l", "KillSignal": "s", "Kind": "s", "CSIPluginConfig": "o",
        "Identity": "o", "Identities": "l", "Actions": "l", "Schedule": "o"},
    "Resources": {"CPU": "n", "Cores": "n", "MemoryMB": "n", "MemoryMaxMB": "n", "DiskMB": "n", "IOPS": "n",
                  "Networks": "l", "Devices": "l", "NUMA": "o", "SecretsMB": "n"},
    "RestartPolicy": {"Attempts": "n", "Interval": "n", "Delay": "n", "Mode": "s", "RenderTemplates": "b"},
    "Service": {
        "Name": "s", "TaskName": "s", "PortLabel": "s", "AddressMode": "s", "Address": "s",
        "EnableTagOverride": "b", "Tags": "l", "CanaryTags": "l", "Checks": "l", "Connect": "o", "Meta": "m",
        "CanaryMeta": "m", "Weights": "o", "TaggedAddresses": "m", "Namespace": "s", "OnUpdate": "s",
        "Provider": "s", "Cluster": "s", "Identity": "o", "Kind": "s"},
    "ServiceCheck": {
        "Name": "s", "Type": "s", "Command": "s", "Args": "l", "Path": "s", "Protocol": "s",
        "PortLabel": "s", "Expose": "b", "AddressMode": "s", "Interval": "n", "Timeout": "n",
        "InitialStatus": "s", "Notes": "s", "TLSServerName": "s", "TLSSkipVerify": "b", "Method": "s",
        "Header": "m", "CheckRestart": "o", "GRPCService": "s", "GRPCUseTLS": "b", "TaskName": "s",
        "SuccessBeforePassing": "n", "FailuresBeforeCritical": "n", "FailuresBeforeWarning": "n",
        "Body": "s", "OnUpdate": "s"},
    "Template": {
        "SourcePath": "s", "DestPath": "s", "EmbeddedTmpl": "s", "ChangeMode": "s", "ChangeSignal": "s",
        "ChangeScript": "o", "Once": "b", "Splay": "n", "Perms": "s", "Uid": "o", "Gid": "o",
        "LeftDelim": "s", "RightDelim": "s", "Envvars": "b", "VaultGrace": "n", "Wait": "o",
        "ErrMissingKey": "b"},
    "NetworkResource": {"Mode": "s", "Device": "s", "CIDR": "s", "IP": "s", "Hostname": "s?", "MBits": "n",
                        "DNS": "o", "ReservedPorts": "l", "DynamicPorts": "l", "CNI": "o"},
    "Port": {"Label": "s", "Value": "n", "To": "n", "HostNetwork": "s", "IgnoreCollision": "b"},
    # /v1/jobs/statuses (the web UI's jobs index): structs.JobStatusesJob and its parts.
    "JobStatusesJob": {
        "ID": "s", "Namespace": "s", "Name": "s", "Type": "s", "NodePool": "s", "Datacenters": "l",
        "Priority": "n", "Version": "n", "SubmitTime": "n", "ModifyIndex": "n", "Allocs": "l",
        "GroupCountSum": "n", "ChildStatuses": "l", "ParentID": "s", "LatestDeployment": "o", "Stop": "b",
        "IsPack": "b", "Status": "s"},
    "JobStatusesAlloc": {"ID": "s", "Group": "s", "ClientStatus": "s", "NodeID": "s", "DeploymentStatus": "O",
                         "JobVersion": "n", "FollowupEvalID": "s", "HasPausedTask": "b"},
    "JobStatusesDeployment": {"Canary": "b", "Healthy": "o"},
    "JobStatusesLatestDeployment": {"ID": "s", "IsActive": "b", "JobVersion": "n", "Status": "s",
                                    "StatusDescription": "s", "AllAutoPromote": "b",
                                    "RequiresPromotion": "b"},
    "JobRegisterResponse": {"EvalID": "s", "EvalCreateIndex": "n", "JobModifyIndex": "n", "Warnings": "s",
                            "Index": "n", "LastContact": "n", "KnownLeader": "b", "NextToken": "s"},
    "JobPlanResponse": {"Annotations": "o", "FailedTGAllocs": "m", "JobModifyIndex": "n", "CreatedEvals": "l",
                        "Diff": "o", "NextPeriodicLaunch": "t", "Warnings": "s", "Index": "n"},
    "PlanAnnotations": {"DesiredTGUpdates": "m", "PreemptedAllocs": "l"},
    "DesiredUpdates": {"Ignore": "n", "Place": "n", "Migrate": "n", "Stop": "n", "InPlaceUpdate": "n",
                       "DestructiveUpdate": "n", "Canary": "n", "Preemptions": "n", "Disconnect": "n",
                       "Reconnect": "n", "RescheduleNow": "n", "RescheduleLater": "n"},
    "VariableMetadata": {"Namespace": "s", "Path": "s", "Lock": "o?", "CreateIndex": "n", "CreateTime": "n",
                         "ModifyIndex": "n", "ModifyTime": "n"},
    "VariableDecrypted": {"Namespace": "s", "Path": "s", "Lock": "o?", "CreateIndex": "n", "CreateTime": "n",
                          "ModifyIndex": "n", "ModifyTime": "n", "Items": "m"},
    "VariableLock": {"ID": "s", "TTL": "s", "LockDelay": "s"},
    "JobVersionTag": {"Name": "s", "Description": "s", "TaggedTime": "n"},
    "JobTagResponse": {"Name": "s", "Description": "s", "TaggedTime": "n", "Index": "n", "LastContact": "n",
                       "KnownLeader": "b", "NextToken": "s"},
    "ServiceRegistration": {"ID": "s", "ServiceName": "s", "Namespace": "s", "NodeID": "s", "Datacenter": "s",
                            "JobID": "s", "AllocID": "s", "Tags": "l", "Address": "s", "Port": "n",
                            "CreateIndex": "n", "ModifyIndex": "n"},
    "ServiceRegistrationListStub": {"Namespace": "s", "Services": "l"},
    "ServiceRegistrationStub": {"ServiceName": "s", "Tags": "l"},
    "ACLPolicyListStub": {"Name": "s", "Description": "s", "JobACL": "o", "Hash": "B", "CreateIndex": "n",
                          "ModifyIndex": "n"},
    "ACLPolicy": {"Name": "s", "Description": "s", "Rules": "s", "RulesJSON": "o", "JobACL": "o", "Hash": "B",
                  "CreateIndex": "n", "ModifyIndex": "n"},
}

# Nomad's server gossip tags (nomad/server.go setupSerf): rpc_addr is the RPC address's IP alone.
SERVER_TAGS = {"role", "region", "dc", "build", "revision", "vsn", "raft_vsn", "id", "rpc_addr", "port"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _kind_ok(kind: str, v: Any) -> bool:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    return {"s": isinstance(v, str), "b": isinstance(v, bool), "n": number,
            "t": isinstance(v, str) and bool(RFC3339.match(v)),
            "l": v is None or isinstance(v, list), "m": v is None or isinstance(v, dict),
            "o": v is None or isinstance(v, dict), "O": isinstance(v, dict),
            "B": v is None or isinstance(v, str)}[kind]


def mismatches(value: Any, struct: str, where: str = "") -> list[str]:
    """How *value* differs from Nomad's *struct*: its missing keys and wrong-typed values."""
    where = where or struct
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, not an object"]
    out = []
    for key, spec in NOMAD[struct].items():
        kind, omitempty = spec.rstrip("?"), spec.endswith("?")
        if key not in value:
            if not omitempty:
                out.append(f"{where}.{key}: missing")
        elif omitempty and value[key] in ({}, [], "", 0, False, None):
            out.append(f"{where}.{key}: empty, which Nomad leaves out (omitempty)")
        elif not _kind_ok(kind, value[key]):
            out.append(f"{where}.{key}: {value[key]!r} is not a {struct} {kind!r}")
    return out


def each(values: Any, struct: str, where: str) -> list[str]:
    if isinstance(values, dict):
        values = list(values.values())
    return [m for i, v in enumerate(values or ()) for m in mismatches(v, struct, f"{where}[{i}]")]


# A job with a Nomad-provider service (and a check) on a dynamic port, for the service registration
# endpoints, and a template, for the job read's nested shapes.
SERVICE_JOB = {**sleep_job("conform-svc"), "Meta": {"tier": "web"}, "TaskGroups": [{
    **sleep_job("conform-svc")["TaskGroups"][0], "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
    "Services": [{"Name": "conform-web", "PortLabel": "http", "Provider": "nomad", "Tags": ["a"],
                  "Checks": [{"Name": "alive", "Type": "tcp", "Interval": 10_000_000_000,
                              "Timeout": 2_000_000_000}]}]}]}
SERVICE_JOB["TaskGroups"][0]["Tasks"] = [{**SERVICE_JOB["TaskGroups"][0]["Tasks"][0], "Templates": [
    {"EmbeddedTmpl": "hello", "DestPath": "local/hello.txt", "ChangeMode": "noop"}]}]


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    args, port = dev_agent_config(tmp_path_factory.mktemp("dev"))
    with running_agent(args, port) as agent:
        for job in (sleep_job("conform"), SERVICE_JOB):
            r = call(port, "PUT", "/v1/jobs", {"Job": job})
            assert r.status == 200, r.text
            if job is not SERVICE_JOB:
                agent.register_reply = r.json()
        for job_id in ("conform", SERVICE_JOB["ID"]):
            def running(job_id: str = job_id) -> list[Any]:
                return [a for a in call(port, "GET", f"/v1/job/{job_id}/allocations").json()
                        if a["ClientStatus"] == "running"]
            wait_for(running, f"{job_id}'s task running", PLACE_DEADLINE_S)
        yield agent


def get(dev: Any, path: str) -> Any:
    r = call(dev.http_port, "GET", path)
    assert r.status == 200, (path, r.status, r.text)
    return r.json()


def test_job_list_stub_and_summary_have_nomads_keys(dev):
    stubs = get(dev, "/v1/jobs")
    problems = each(stubs, "JobListStub", "jobs")
    summary = get(dev, "/v1/job/conform/summary")
    problems += mismatches(summary, "JobSummary") + each(summary["Summary"], "TaskGroupSummary", "Summary")
    assert problems == []
    assert stubs[0]["NodePool"] == "default"
    # The jobs' meta only when asked for (Nomad's ?meta=true), and only for a job that has some.
    assert "Meta" not in stubs[0]
    with_meta = {s["ID"]: s for s in get(dev, "/v1/jobs?meta=true")}
    assert with_meta["conform-svc"]["Meta"] == {"tier": "web"} and "Meta" not in with_meta["conform"]


def test_job_read_and_versions_have_nomads_keys(dev):
    job = get(dev, "/v1/job/conform")
    problems = mismatches(job, "Job") + mismatches(job["Update"], "UpdateStrategy", "Job.Update")
    for g in job["TaskGroups"]:
        problems += mismatches(g, "TaskGroup") + mismatches(g["RestartPolicy"], "RestartPolicy")
        problems += each(g["Tasks"], "Task", "Tasks")
        problems += [m for t in g["Tasks"] for m in mismatches(t["Resources"], "Resources")]
    svc = get(dev, "/v1/job/conform-svc")
    problems += each(svc["TaskGroups"][0]["Services"], "Service", "Services")
    problems += each(svc["TaskGroups"][0]["Services"][0]["Checks"], "ServiceCheck", "Checks")
    problems += each(svc["TaskGroups"][0]["Tasks"][0]["Templates"], "Template", "Templates")
    problems += each(svc["TaskGroups"][0]["Networks"], "NetworkResource", "Networks")
    problems += each(svc["TaskGroups"][0]["Networks"][0]["DynamicPorts"], "Port", "DynamicPorts")
    versions = get(dev, "/v1/job/conform/versions")
    problems += mismatches(versions, "JobVersionsResponse") + each(versions["Versions"], "Job", "Versions")
    assert problems == []
    # A service job's update strategy: Nomad's default stagger and parallelism, the rest unset.
    assert (job["Update"]["Stagger"], job["Update"]["MaxParallel"]) == (30_000_000_000, 1)


def test_allocations_have_nomads_keys_and_times(dev):
    stubs = get(dev, "/v1/allocations")
    problems = each(stubs, "AllocListStub", "allocations")
    alloc = get(dev, f"/v1/allocation/{stubs[0]['ID']}")
    problems += mismatches(alloc, "Allocation")
    for where, a in (("stub", stubs[0]), ("alloc", alloc)):
        problems += mismatches(a["DesiredTransition"], "DesiredTransition", f"{where}.DesiredTransition")
        problems += each(a["TaskStates"], "TaskState", f"{where}.TaskStates")
        problems += [m for ts in a["TaskStates"].values() for m in each(ts["Events"], "TaskEvent", where)]
    assert problems == []
    state = alloc["TaskStates"]["sleeper"]
    # A running task never restarted nor finished: Go's zero time, as Nomad shows an unset time.Time.
    assert (state["LastRestart"], state["FinishedAt"]) == ("0001-01-01T00:00:00Z",) * 2


def test_evaluations_have_nomads_keys(dev):
    evals = get(dev, "/v1/evaluations")
    problems = each(evals, "Evaluation", "evaluations")
    problems += mismatches(get(dev, f"/v1/evaluation/{evals[0]['ID']}"), "Evaluation")
    assert problems == []


def test_nodes_have_nomads_keys_and_event_times(dev):
    nid = node_id(dev.http_port)
    problems = each(get(dev, "/v1/nodes"), "NodeListStub", "nodes")
    for stub in get(dev, "/v1/nodes?resources=true"):  # the stubs' resources are the node's, in full
        problems += mismatches(stub["NodeResources"], "NodeResources", "stub.NodeResources")
        problems += mismatches(stub["ReservedResources"], "NodeReservedResources", "stub.ReservedResources")
    node = get(dev, f"/v1/node/{nid}")
    problems += mismatches(node, "Node") + each(node["Events"], "NodeEvent", "Node.Events")
    problems += each(node["Drivers"], "DriverInfo", "Node.Drivers")
    res, reserved = node["NodeResources"], node["ReservedResources"]
    problems += mismatches(res, "NodeResources") + mismatches(res["Cpu"], "LegacyNodeCpuResources")
    problems += mismatches(reserved, "NodeReservedResources")
    problems += mismatches(reserved["Cpu"], "NodeReservedCpuResources")
    assert problems == []
    cores = int(node["Attributes"]["cpu.numcores"])
    assert (res["Cpu"]["TotalCpuCores"], res["Cpu"]["ReservableCpuCores"]) == (cores, list(range(cores)))
    assert node["SecretID"] == ""  # Nomad blanks the node's secret on a read


def test_deployments_have_nomads_keys(dev):
    deps = get(dev, "/v1/deployments")
    problems = each(deps, "Deployment", "deployments")
    problems += [m for d in deps for m in each(d["TaskGroups"], "DeploymentState", "TaskGroups")]
    assert deps and problems == []


def test_agent_members_answer_nomads_server_tags(dev):
    members = get(dev, "/v1/agent/members")
    problems = mismatches(members, "ServerMembersResponse")
    problems += each(members["Members"], "ServerMember", "Members")
    assert problems == []
    self_member = get(dev, "/v1/agent/self")["member"]
    for m in (members["Members"][0], self_member):
        tags = m["Tags"]
        assert set(tags) - {"bootstrap", "expect"} == SERVER_TAGS
        assert tags["rpc_addr"] == "127.0.0.1"
    assert members["Members"][0]["Tags"] == self_member["Tags"]


def test_raft_configuration_has_nomads_keys(dev):
    conf = get(dev, "/v1/operator/raft/configuration")
    problems = mismatches(conf, "RaftConfigurationResponse") + each(conf["Servers"], "RaftServer", "Servers")
    assert problems == []


def test_namespaces_node_pools_and_scheduler_configuration_have_nomads_keys(dev):
    problems = each(get(dev, "/v1/namespaces"), "Namespace", "namespaces")
    problems += mismatches(get(dev, "/v1/namespace/default"), "Namespace")
    problems += each(get(dev, "/v1/node/pools"), "NodePool", "pools")
    problems += mismatches(get(dev, "/v1/node/pool/default"), "NodePool")
    conf = get(dev, "/v1/operator/scheduler/configuration")
    problems += mismatches(conf, "SchedulerConfigurationResponse")
    problems += mismatches(conf["SchedulerConfig"], "SchedulerConfiguration")
    assert problems == []


def test_scheduler_configuration_answers_the_feasibility_check_limit(dev):
    conf = get(dev, "/v1/operator/scheduler/configuration")["SchedulerConfig"]
    assert "NodeLimitForFeasibilityChecks" in conf


def _round_trip_jobs() -> list[dict[str, Any]]:
    service = sleep_job("rt-service", Meta={"team": "a"})
    batch = {**sleep_job("rt-batch"), "Type": "batch"}
    system = {**sleep_job("rt-system"), "Type": "system"}
    rolling = {**sleep_job("rt-system-rolling"), "Type": "system",
               "Update": {"MaxParallel": 1, "Stagger": 30_000_000_000}}
    own_restart = sleep_job("rt-restart")
    own_restart["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = {"Attempts": 1, "Mode": "fail"}
    static = sleep_job("rt-static")
    static["TaskGroups"][0]["Networks"] = [{"ReservedPorts": [{"Label": "db", "Value": 25432}]}]
    return [service, batch, system, rolling, own_restart, static, SERVICE_JOB]


@pytest.mark.parametrize("raw", _round_trip_jobs(), ids=lambda j: j["ID"])
def test_a_job_read_and_sent_back_unchanged_is_stored_unchanged(raw):
    """``nomad job inspect`` then ``nomad job run`` (or any tool's read-modify-write): the keys a read adds
    at Nomad's zero values are no edit, so the job is stored as it was and its plan shows no change."""
    from actors.http_jobs import job_in, job_out
    from actors.scheduler.job import canonical_job
    from actors.scheduler.jobdiff import job_diff

    stored = canonical_job(copy.deepcopy(raw))
    again = canonical_job(job_in(json.loads(json.dumps(job_out(stored)))))
    assert again == stored
    assert job_diff(stored, again)["Type"] == "None"


def test_job_register_and_plan_answers_have_nomads_keys(dev):
    problems = mismatches(dev.register_reply, "JobRegisterResponse")
    r = call(dev.http_port, "PUT", "/v1/job/conform/plan", {"Job": sleep_job("conform", count=2),
                                                             "Diff": True})
    assert r.status == 200, r.text
    plan = r.json()
    problems += mismatches(plan, "JobPlanResponse") + mismatches(plan["Annotations"], "PlanAnnotations")
    problems += each(plan["Annotations"]["DesiredTGUpdates"], "DesiredUpdates", "DesiredTGUpdates")
    assert problems == []


def test_variables_have_nomads_keys(dev):
    r = call(dev.http_port, "PUT", "/v1/var/conform/app", {"Path": "conform/app", "Items": {"k": "v"}})
    assert r.status == 200, r.text
    problems = mismatches(r.json(), "VariableDecrypted", "put")
    problems += mismatches(get(dev, "/v1/var/conform/app"), "VariableDecrypted", "read")
    problems += each(get(dev, "/v1/vars?prefix=conform"), "VariableMetadata", "vars")
    assert problems == []


def test_variable_locks_and_version_tags_have_nomads_keys(dev):
    r = call(dev.http_port, "PUT", "/v1/var/conform/locked?lock-acquire", {"Items": {"k": "v"}})
    assert r.status == 200, r.text
    problems = mismatches(r.json(), "VariableDecrypted", "acquire")
    problems += mismatches(r.json()["Lock"], "VariableLock", "acquire.Lock")
    read = get(dev, "/v1/var/conform/locked")
    problems += mismatches(read, "VariableDecrypted", "read")
    problems += mismatches(read["Lock"], "VariableLock", "Lock")
    mine = {"Lock": {"ID": read["Lock"]["ID"]}}
    renew = call(dev.http_port, "PUT", "/v1/var/conform/locked?lock-renew", mine)
    problems += mismatches(renew.json(), "VariableMetadata", "renew")
    rel = call(dev.http_port, "PUT", "/v1/var/conform/locked?lock-release", mine)
    problems += mismatches(rel.json(), "VariableMetadata", "release")
    r = call(dev.http_port, "PUT", "/v1/job/conform/versions/conform-tag/tag", {"Version": 0})
    assert r.status == 200, r.text
    problems += mismatches(r.json(), "JobTagResponse")
    tagged = [v for v in get(dev, "/v1/job/conform/versions")["Versions"] if v["VersionTag"]]
    problems += mismatches(tagged[0]["VersionTag"], "JobVersionTag")
    assert call(dev.http_port, "DELETE", "/v1/job/conform/versions/conform-tag/tag").status == 200
    assert problems == []


def test_service_registrations_have_nomads_keys(dev):
    listed = get(dev, "/v1/services")
    problems = each(listed, "ServiceRegistrationListStub", "services")
    problems += [m for ns in listed for m in each(ns["Services"], "ServiceRegistrationStub", "Services")]
    regs = wait_for(lambda: get(dev, "/v1/service/conform-web"), "the service registered", PLACE_DEADLINE_S)
    problems += each(regs, "ServiceRegistration", "service")
    assert problems == []


def test_acl_policy_list_stub_and_read_have_nomads_keys():
    from actors.http_acl import policy_out, policy_stub

    policy = {"Name": "ro", "Description": "", "Rules": 'namespace "default" { policy = "read" }',
              "Hash": "aGFzaA==", "CreateIndex": 3, "ModifyIndex": 3}
    assert mismatches(policy_stub(policy), "ACLPolicyListStub") == []
    assert [m for m in mismatches(policy_out(policy), "ACLPolicy") if "RulesJSON" not in m] == []


def test_acl_policy_read_answers_the_parsed_rules():
    """Nomad's ACL.GetPolicy fills RulesJSON from acl.Parse: blocks in order, shorthands expanded."""
    from actors.http_acl import policy_out

    rules = ('namespace "default" { policy = "read" capabilities = ["host-volume-create"]\n'
             '  variables { path "app/*" { capabilities = ["read"] } } }\n'
             'node_pool "prod" { policy = "write" }\noperator { policy = "read" }\nnode { policy = "deny" }')
    got = policy_out({"Name": "ro", "Rules": rules})["RulesJSON"]
    assert got == {
        "Namespaces": [{"Name": "default", "Policy": "read",
                        "Capabilities": ["host-volume-create", "list-jobs", "parse-job", "read-job",
                                         "csi-list-volume", "csi-read-volume", "read-job-scaling",
                                         "list-scaling-policies", "read-scaling-policy", "host-volume-read",
                                         "host-volume-read"],
                        "Variables": {"Paths": [{"PathSpec": "app/*", "Capabilities": ["read", "list"]}]}}],
        "NodePools": [{"Name": "prod", "Policy": "write", "Capabilities": ["delete", "read", "write"]}],
        "HostVolumes": None, "Agent": None, "Node": {"Policy": "deny"},
        "Operator": {"Policy": "read", "Capabilities": ["license-read", "keyring-read"]},
        "Sentinel": None, "Quota": None, "Plugin": None, "Raw": rules, "ExtraKeysHCL": None}
    as_json = json.dumps({"namespace": {"default": {"policy": "write"}}, "agent": {"policy": "read"}})
    got = policy_out({"Name": "j", "Rules": as_json})["RulesJSON"]
    assert got["Namespaces"][0]["Capabilities"][-2:] == ["host-volume-create", "host-volume-read"]
    assert got["Agent"] == {"Policy": "read"}


def test_an_acl_policy_event_carries_no_parsed_rules():
    """The event stream's ACLPolicy is the stored policy, whose RulesJSON Nomad leaves nil."""
    from actors.http_acl import policy_out

    assert policy_out({"Name": "ro", "Rules": 'node { policy = "read" }'}, parsed=False)["RulesJSON"] is None


def test_agent_self_config_has_the_version_and_consul_and_vault_lists(dev):
    config = get(dev, "/v1/agent/self")["config"]
    version = config["Version"]
    assert set(version) == {"BuildDate", "Revision", "Version", "VersionPrerelease", "VersionMetadata"}
    assert re.match(r"^\d+\.\d+\.\d+$", version["Version"]) and RFC3339.match(version["BuildDate"])
    assert all(_kind_ok("l", config[k]) for k in ("Consuls", "Vaults"))


@pytest.mark.parametrize(("method", "path", "body", "status", "text"), [
    ("GET", "/v1/var/", None, 400, "missing variable path"),
    ("DELETE", "/v1/var/", None, 400, "missing variable path"),
    ("PUT", "/v1/var/", b'{"Items": {"a": "b"}}', 400, "missing variable path"),
    ("PUT", "/v1/var/conform/x", b"", 400, "Request body is empty"),
    ("PUT", "/v1/var/conform/x", b"{}", 400, "variable missing required Items object"),
    ("PUT", "/v1/var/conform/x", b'{"Items": {}}', 400, "variable missing required Items object"),
])
def test_variable_request_errors_have_nomads_status_and_text(dev, method, path, body, status, text):
    r = call(dev.http_port, method, path, raw=body)
    assert (r.status, r.text) == (status, text)


def test_placement_failures_have_nomads_alloc_metric_keys(dev):
    port, job = dev.http_port, sleep_job("conform-huge")
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = 10_000_000  # more than any node has
    try:
        r = call(port, "PUT", "/v1/job/conform-huge/plan", {"Job": job})
        assert r.status == 200, r.text
        problems = each(r.json()["FailedTGAllocs"], "AllocMetric", "plan.FailedTGAllocs")
        assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200
        failed = wait_for(lambda: [e for e in get(dev, "/v1/job/conform-huge/evaluations")
                                   if e["FailedTGAllocs"]], "the placement failure", PLACE_DEADLINE_S)
        problems += each(failed[0]["FailedTGAllocs"], "AllocMetric", "eval.FailedTGAllocs")
        assert problems == []
    finally:
        call(port, "DELETE", "/v1/job/conform-huge?purge=true")


def test_a_placed_allocation_has_its_placement_metrics(dev):
    alloc = get(dev, f"/v1/allocation/{get(dev, '/v1/job/conform/allocations')[0]['ID']}")
    assert mismatches(alloc["Metrics"], "AllocMetric") == []


@pytest.mark.parametrize(("method", "path", "status", "text"), [
    # Nomad's operator endpoints answer a wrong method in three ways; tools key on the status.
    ("PUT", "/v1/operator/raft/configuration", 405, ""),  # a bare 405 (OperatorRaftConfiguration)
    ("PUT", "/v1/operator/autopilot/health", 404, "Invalid method"),  # CodedError(404, ErrInvalidMethod)
    ("GET", "/v1/operator/raft/peer", 404, "Invalid method"),
    ("DELETE", "/v1/operator/raft/peer", 400, "Must specify the peer's ID to remove"),
    ("DELETE", "/v1/operator/raft/peer?id=x&address=1.2.3.4:4647", 400,
     "Removing a peer by address is not supported in the current raft protocol version"),
    ("DELETE", "/v1/operator/raft/peer?address=1.2.3.4:4647", 400,
     "Removing a peer by address is not supported in the current raft protocol version"),
    ("PUT", "/v1/evaluations/count", 405, "Invalid method"),
])
def test_operator_errors_have_nomads_status_and_text(dev, method, path, status, text):
    r = call(dev.http_port, method, path)
    assert (r.status, r.text) == (status, text)


@pytest.mark.parametrize("path", ["/v1/namespaces", "/v1/namespace/default", "/v1/evaluations/count"])
def test_reads_carry_nomads_query_meta_headers(dev, path):
    """Nomad's setMeta: the Go api package reads X-Nomad-Index, then X-Nomad-LastContact (a missing one
    fails the parse and leaves KnownLeader unread), then X-Nomad-KnownLeader."""
    r = call(dev.http_port, "GET", path)
    assert r.status == 200, r.text
    assert r.headers["x-nomad-index"].isdigit() and r.headers["x-nomad-lastcontact"].isdigit()
    assert r.headers["x-nomad-knownleader"] == "true"
    if path.endswith("/count"):  # EvalCountResponse: the query meta in the body too
        assert set(r.json()) == {"Count", "Index", "LastContact", "KnownLeader", "NextToken"}


@pytest.mark.parametrize(("method", "path", "status", "text"), [
    # Nomad Community Edition's answers on its enterprise-only endpoints (the web UI asks the license).
    ("GET", "/v1/quotas", 501, "Nomad Enterprise only endpoint"),
    ("PUT", "/v1/quota/q1", 501, "Nomad Enterprise only endpoint"),
    ("GET", "/v1/sentinel/policies", 501, "Nomad Enterprise only endpoint"),
    ("GET", "/v1/recommendations", 501, "Nomad Enterprise only endpoint"),
    ("GET", "/v1/operator/license", 204, ""),
    ("PUT", "/v1/operator/license", 501, "Nomad Enterprise only endpoint"),
    ("DELETE", "/v1/operator/license", 405, "Invalid method"),
    ("POST", "/v1/operator/utilization", 501, "Nomad Enterprise only endpoint"),
])
def test_enterprise_only_endpoints_answer_as_nomad_ce(dev, method, path, status, text):
    r = call(dev.http_port, method, path)
    assert (r.status, r.text) == (status, text)


def test_job_statuses_answer_the_web_uis_jobs_index(dev):
    r = call(dev.http_port, "GET", "/v1/jobs/statuses")
    assert r.status == 200, r.text
    assert r.headers["x-nomad-index"].isdigit() and r.headers["x-nomad-knownleader"] == "true"
    jobs = r.json()
    problems = each(jobs, "JobStatusesJob", "statuses")
    for j in jobs:
        problems += each(j["Allocs"], "JobStatusesAlloc", f"{j['ID']}.Allocs")
        problems += [m for a in j["Allocs"] or ()
                     for m in mismatches(a["DeploymentStatus"], "JobStatusesDeployment", "DeploymentStatus")]
        if j["LatestDeployment"] is not None:
            problems += mismatches(j["LatestDeployment"], "JobStatusesLatestDeployment", "LatestDeployment")
    assert problems == []
    # Newest first (by ModifyIndex), as Nomad pages them; each with its group counts and allocations.
    assert [j["ModifyIndex"] for j in jobs] == sorted((j["ModifyIndex"] for j in jobs), reverse=True)
    conform = next(j for j in jobs if j["ID"] == "conform")
    assert conform["GroupCountSum"] == 1 and [a["ClientStatus"] for a in conform["Allocs"]] == ["running"]
    assert conform["LatestDeployment"]["Status"] in ("running", "successful")
    # A POST names the jobs wanted; per_page pages them with the next ModifyIndex as the token.
    r = call(dev.http_port, "POST", "/v1/jobs/statuses", {"Jobs": [{"ID": "conform"}]})
    assert r.status == 200 and [j["ID"] for j in r.json()] == ["conform"], r.text
    # The web UI's own body: lower-case keys, which Go's decoder matches as Nomad's does.
    r = call(dev.http_port, "POST", "/v1/jobs/statuses?namespace=*",
             {"jobs": [{"id": "conform-svc", "namespace": "default"}]})
    assert r.status == 200 and [j["ID"] for j in r.json()] == ["conform-svc"], r.text
    first = call(dev.http_port, "GET", "/v1/jobs/statuses?per_page=1")
    token = first.headers["x-nomad-nexttoken"]
    rest = call(dev.http_port, "GET", f"/v1/jobs/statuses?next_token={token}").json()
    assert [j["ID"] for j in first.json() + rest] == [j["ID"] for j in jobs]


@pytest.mark.parametrize(("method", "body", "status", "text"), [
    ("POST", {"Jobs": []}, 400, "no jobs in request"),
    ("DELETE", None, 405, "Invalid method"),
])
def test_job_statuses_errors_are_nomads(dev, method, body, status, text):
    r = call(dev.http_port, method, "/v1/jobs/statuses", body)
    assert (r.status, r.text) == (status, text)


@pytest.mark.parametrize(("method", "path", "status", "text"), [
    # ACLs are disabled on the shared agent: Nomad's answer on every ACL endpoint.
    ("GET", "/v1/acl/auth-methods", 400, "ACL support disabled"),
    ("GET", "/v1/acl/binding-rules", 400, "ACL support disabled"),
    ("GET", "/v1/acl/auth-method/oidc", 400, "ACL support disabled"),
])
def test_acl_auth_method_endpoints_exist_as_nomads(dev, method, path, status, text):
    r = call(dev.http_port, method, path)
    assert (r.status, r.text) == (status, text)


def test_acl_auth_methods_are_listed_empty_until_created():
    """The web UI's sign-in page lists the auth methods (anyone may); none exist on a new cluster."""
    from actors.http_acl_auth import auth_method, auth_methods, binding_rule
    from actors.http_api import CodedError, Request
    from actors.state.store import StateStore
    from tests.one_server_api import api_over

    api = api_over(StateStore(), acl_enabled=True)
    api.env.node = "n1"
    api.env.now = lambda: 0.0
    assert auth_methods(Request("GET", "/v1/acl/auth-methods", {}, "/v1/acl/auth-methods"), api).value == []
    for handler, method, path, status, text in [
            (auth_method, "GET", "/v1/acl/auth-method/oidc", 403, "Permission denied"),
            (auth_method, "PUT", "/v1/acl/auth-method/x", 403, "Permission denied"),
            (binding_rule, "DELETE", "/v1/acl/binding-rule/x", 403, "Permission denied")]:
        with pytest.raises(CodedError) as e:
            handler(Request(method, path, {}, path), api)
        assert (e.value.code, e.value.message) == (status, text)


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    # No CSI plugin nor dynamic host volume exists here: Nomad's answers for a cluster without them.
    ("GET", "/v1/volumes", 200, []),
    ("GET", "/v1/volumes?type=csi", 200, []),
    ("GET", "/v1/volumes?type=host", 200, []),
    ("GET", "/v1/volumes?type=nfs", 404, "resource not found"),
    ("GET", "/v1/volume/csi/vol1", 404, "volume not found"),
    ("GET", "/v1/volume/host/vol1", 404, "volume not found"),
    ("GET", "/v1/plugins?type=csi", 200, []),
    ("GET", "/v1/plugin/csi/ebs", 404, "plugin not found"),
    ("PUT", "/v1/volume/csi/vol1", 501, "CSI and dynamic host volumes are not supported by this agent"),
])
def test_volume_and_plugin_endpoints_answer_as_nomad_without_any(dev, method, path, status, body):
    r = call(dev.http_port, method, path, {} if method == "PUT" else None)
    assert r.status == status, r.text
    assert (r.json() if status == 200 else r.text) == body


@pytest.mark.parametrize(("method", "path"), [
    # (none left: fuzzy search, the agent's host data and its scheduling workers are served now)
    pytest.param("GET", "/v1/agent/schedulers/config"),
])
def test_endpoints_nomad_serves_that_are_missing_here(dev, method, path):
    """Endpoints real tools call that this agent does not serve yet: each answers 404 page not found."""
    r = call(dev.http_port, method, path, {"Text": "conform", "Context": "all"} if method == "POST" else None)
    assert r.status != 404, r.text


def test_fuzzy_search_matches_jobs_and_their_parts_with_nomads_scopes(dev):
    """The web UI's search box: Search.FuzzySearch's Matches {context: [{ID, Scope}]} and Truncations."""
    r = call(dev.http_port, "POST", "/v1/search/fuzzy", {"Text": "CONFORM", "Context": "all"})
    assert r.status == 200, r.text
    out = r.json()
    assert set(out) >= {"Matches", "Truncations", "Index", "KnownLeader", "LastContact"}
    # Sorted by where the text is found, then shorter names first; the scope starts with the namespace.
    assert out["Matches"]["jobs"][:2] == [{"ID": "conform", "Scope": ["default", "conform"]},
                                          {"ID": "conform-svc", "Scope": ["default", "conform-svc"]}]
    assert out["Truncations"]["jobs"] is False and out["Truncations"]["nodes"] is False
    assert out["Index"] > 0
    allocs = out["Matches"]["allocs"]
    assert allocs and all(a["Scope"][0] == "default" and a["ID"].startswith("conform") for a in allocs)
    parts = call(dev.http_port, "PUT", "/v1/search/fuzzy", {"Text": "slee", "Context": "jobs"}).json()
    assert {"ID": "sleeper", "Scope": ["default", "conform", "web"]} in parts["Matches"]["tasks"]
    assert {"ID": "/bin/sleep", "Scope": ["default", "conform", "web", "sleeper"]} \
        in parts["Matches"]["commands"]
    assert "nodes" not in parts["Truncations"]
    pools = call(dev.http_port, "POST", "/v1/search/fuzzy", {"Text": "defa", "Context": "node_pools"})
    pools = pools.json()
    assert pools["Matches"]["node_pools"] == [{"ID": "default", "Scope": ["default"]}]
    ns = call(dev.http_port, "POST", "/v1/search/fuzzy?namespace=*",
              {"Text": "defa", "Context": "namespaces"})
    assert ns.json()["Matches"]["namespaces"] == [{"ID": "default"}]


def test_agent_host_answers_nomads_host_data(dev):
    """``nomad operator debug``'s host.json: Nomad's HostData, the environment's secrets redacted."""
    data = get(dev, "/v1/agent/host")
    assert set(data) == {"OS", "Network", "ResolvConf", "Hosts", "Environment", "Disk"}
    assert data["OS"].split(" ")[3] == "Linux"
    assert any(n["address"] == "127.0.0.1" and n["type"] == "IPv4" for n in data["Network"])
    assert "PATH" in data["Environment"]
    assert all(set(d) == {"DiskMB", "UsedMB"} for d in data["Disk"].values())
    me = get(dev, "/v1/agent/self")
    node_id = me["stats"]["client"]["node_id"]
    mine = get(dev, f"/v1/agent/host?node_id={node_id}")
    assert mine["AgentID"] == node_id and set(mine["HostData"]) == set(data)
    assert get(dev, f"/v1/agent/host?server_id={me['member']['Name']}")["AgentID"] == me["member"]["Name"]
    both = call(dev.http_port, "GET", f"/v1/agent/host?node_id={node_id}&server_id=x")
    assert (both.status, both.text) == (400, "Can only forward to either client node or server")
    other = call(dev.http_port, "GET", "/v1/agent/host?node_id=elsewhere")
    assert other.status == 400 and "not forwarded" in other.text


def test_agent_schedulers_answer_the_workers_and_their_config(dev):
    info = get(dev, "/v1/agent/schedulers")
    config = get(dev, "/v1/agent/schedulers/config")
    me = get(dev, "/v1/agent/self")
    assert info["ServerID"] == config["ServerID"] == me["member"]["Name"]
    assert len(info["Schedulers"]) == config["NumSchedulers"] >= 1
    worker = info["Schedulers"][-1]
    assert set(worker) == {"ID", "EnabledSchedulers", "Started", "Status", "WorkloadStatus"}
    assert worker["Status"] == "Started" and worker["Started"].endswith("Z")
    # The dev agent leads: Nomad's pausableWorkers pauses the first 3/4 of its workers (none of one).
    paused = [w for w in info["Schedulers"] if w["Status"] == "Paused"]
    n = len(info["Schedulers"])
    assert len(paused) == (3 * n // 4 if n > 1 else 0)
    assert all(w["WorkloadStatus"] == "Paused" for w in paused)
    assert worker["WorkloadStatus"] in ("WaitingToDequeue", "Scheduling")
    assert "_core" in config["EnabledSchedulers"]
    assert config["EnabledSchedulers"] == worker["EnabledSchedulers"]
    # The answer round-trips into a PUT (ServerID ignored), as Nomad's; the pool changes at once.
    r = call(dev.http_port, "PUT", "/v1/agent/schedulers/config", {**config, "NumSchedulers": 1})
    assert r.status == 200, r.text
    assert r.json()["NumSchedulers"] == 1 and len(get(dev, "/v1/agent/schedulers")["Schedulers"]) == 1
    r = call(dev.http_port, "PUT", "/v1/agent/schedulers/config", config)
    assert r.json()["NumSchedulers"] == config["NumSchedulers"]
    for bad in ({"NumSchedulers": 1, "EnabledSchedulers": ["service"]},
                {"NumSchedulers": -1, "EnabledSchedulers": ["_core"]},
                {"NumSchedulers": 1, "EnabledSchedulers": ["_core", "bogus"]}):
        r = call(dev.http_port, "PUT", "/v1/agent/schedulers/config", bad)
        assert (r.status, r.text) == (400, "Invalid request")
    assert call(dev.http_port, "DELETE", "/v1/agent/schedulers/config").status == 405


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"Text": "c", "Context": "all"}, 500, "fuzzy search query must be at least 2 characters, got 1"),
    ({"Text": "co", "Context": "bogus"}, 500,  # Nomad's getEnterpriseFuzzyResourceIter error, uncoded
     "context must be one of [allocs jobs nodes node_pools evals deployment plugins volumes scaling_policy "
     "vars namespaces host_volumes] or 'all' for all contexts; got \"bogus\""),
])
def test_fuzzy_search_refuses_what_nomad_refuses(dev, body, status, text):
    r = call(dev.http_port, "POST", "/v1/search/fuzzy", body)
    assert r.status == status, r.text
    assert text is None or r.text == text
    assert call(dev.http_port, "GET", "/v1/search/fuzzy").status == 405


@pytest.mark.parametrize(("rules", "listed", "read"), [
    ('plugin { policy = "list" }', True, False),
    ('plugin { policy = "read" }', True, True),
    ('plugin { policy = "deny" }', False, False),
    ('node { policy = "read" }', False, False),
])
def test_the_plugin_acl_block_grants_listing_and_reading_plugins(rules, listed, read):
    """Nomad's plugin block: ``list`` lists the CSI plugins, ``read`` (or ``write``) reads them too."""
    from actors.acl import compile_acl, parse_policy, required

    acl = compile_acl([parse_policy(rules)])
    assert acl.allows(required("GET", "/v1/plugins")) is listed
    assert acl.allows(required("GET", "/v1/plugin/csi/ebs")) is read
