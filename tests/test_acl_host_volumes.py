"""Host volume ACLs: Nomad's ``host_volume "<name>" { policy | capabilities }`` policy blocks (acl/policy.go
HostVolumePolicy, expandHostVolumePolicy) and what ``Job.Register`` checks with them: mounting a
client's host volume into a job needs ``mount-readwrite`` on its source, ``mount-readonly`` being
enough for a read-only volume (nomad/job_endpoint.go doRegister)."""

from __future__ import annotations

import json

import pytest

from actors.acl import PolicyError, compile_acl, parse_policy, rules_json
from actors.state.store import command
from tests.test_acl import _guarded_state, _req, _status, _token

SUBMIT = 'namespace "default" { policy = "write" }\n'


def test_host_volume_blocks_parse_expand_and_merge_as_nomads():
    acl = compile_acl([parse_policy(SUBMIT + 'host_volume "data" { policy = "read" }\n'
                                             'host_volume "scratch-*" { policy = "write" }\n'
                                             'host_volume "scratch-secret" { capabilities = ["deny"] }')])
    assert acl.allow_host_volume("data", "mount-readonly")
    assert not acl.allow_host_volume("data", "mount-readwrite")
    assert acl.allow_host_volume("scratch-1", "mount-readwrite")
    assert not acl.allow_host_volume("scratch-secret", "mount-readonly")  # exact rule, deny wins
    assert not acl.allow_host_volume("other", "mount-readonly")
    # deny in one policy wins over write in another
    both = compile_acl([parse_policy('host_volume "*" { policy = "write" }'),
                        parse_policy('host_volume "*" { policy = "deny" }')])
    assert not both.allow_host_volume("data", "mount-readonly")
    assert rules_json('host_volume "data" { policy = "write" }')["HostVolumes"] == [
        {"Name": "data", "Policy": "write", "Capabilities": ["mount-readonly", "mount-readwrite"]}]
    assert compile_acl([parse_policy('{"host_volume": {"data": {"policy": "read"}}}')]).allow_host_volume(
        "data", "mount-readonly")  # HCL's JSON form


@pytest.mark.parametrize("rules, error", [
    ('host_volume "data" { policy = "sudo" }', "Invalid host volume policy 'sudo'"),
    ('host_volume "data" { capabilities = ["mount"] }', "Invalid host volume capability 'mount'"),
    ('host_volume "da ta" { policy = "read" }', "Invalid host volume name"),
    ('host_volume "data" { policy = "read" other = 1 }', "unexpected key 'other'"),
])
def test_invalid_host_volume_blocks_are_refused(rules, error):
    with pytest.raises(PolicyError, match=error):
        parse_policy(rules)


def _job(read_only: bool, propagation: str = "private") -> bytes:
    return json.dumps({"Job": {"ID": "vol", "TaskGroups": [{
        "Name": "g", "Volumes": {"d": {"Type": "host", "Source": "data", "ReadOnly": read_only}},
        "Tasks": [{"Name": "t", "Driver": "exec", "VolumeMounts": [
            {"Volume": "d", "Destination": "/d", "PropagationMode": propagation}]}]}]}}).encode()


def _state_with(rules: str):
    """A store whose token v holds *rules*; each at its own index (compiled ACLs are cached by the
    policies' names and modify indexes, which within one cluster name one content)."""
    st = _guarded_state()
    index = 10 + len(_STATES)
    _STATES.append(rules)
    st.apply(index, command("acl_policy_upsert", policies=[{"Name": "vols", "Rules": SUBMIT + rules}]))
    st.apply(index + 100, command("acl_token_upsert", tokens=[_token("v", "v-secret", policies=("vols",))]))
    return st


_STATES: list[str] = []


def test_registering_a_job_that_mounts_a_host_volume_needs_the_host_volume_rule():
    st = _state_with("")  # submit-job alone, no host_volume rule
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(True))) == 403
    assert _status(st, _req("PUT", "/v1/job/vol", "v-secret", _job(False))) == 403
    assert _status(st, _req("PUT", "/v1/jobs", "root-secret", _job(False))) == 200  # management
    no_volumes = json.dumps({"Job": {"ID": "plain", "TaskGroups": [{"Name": "g", "Tasks": []}]}}).encode()
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", no_volumes)) == 200

    st = _state_with('host_volume "data" { policy = "read" }')
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(True))) == 200
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(False))) == 403  # read-write needs write

    st = _state_with('host_volume "d*" { policy = "write" }')
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(False))) == 200
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(True, "bidirectional"))) == 200

    st = _state_with('host_volume "data" { capabilities = ["mount-readonly"] }')
    assert _status(st, _req("PUT", "/v1/jobs", "v-secret", _job(True, "bidirectional"))) == 403


def test_reverting_to_a_version_that_mounts_a_host_volume_needs_the_host_volume_rule():
    """Nomad's Job.Revert registers the old version through Job.Register with the caller's token."""
    from actors.scheduler.job import canonical_job

    def version(volumes: dict) -> dict:
        return canonical_job({"ID": "vol", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [{
            "Name": "g", "Count": 1, "Volumes": volumes,
            "Tasks": [{"Name": "t", "Driver": "exec", "Config": {"command": "/bin/true"},
                       "Resources": {"CPU": 50, "MemoryMB": 32}}]}]})

    revert = json.dumps({"JobID": "vol", "JobVersion": 0}).encode()
    for rules, code in (("", 403), ('host_volume "data" { policy = "write" }', 200)):
        st = _state_with(rules)
        index = st.applied_index
        assert st.apply(index + 1, command("job_register", now=1.0, job=version(
            {"d": {"Type": "host", "Source": "data", "ReadOnly": False}})))["ok"]
        assert st.apply(index + 2, command("job_register", now=2.0, job=version({})))["ok"]
        assert _status(st, _req("PUT", "/v1/job/vol/revert", "v-secret", revert)) == code, rules
        no_volume = json.dumps({"JobID": "vol", "JobVersion": 1}).encode()
        assert _status(st, _req("PUT", "/v1/job/vol/revert", "v-secret", no_volume)) == 200
