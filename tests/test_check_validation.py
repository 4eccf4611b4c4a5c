"""Service checks in a job (actors.scheduler.job): Nomad's native http/tcp checks, validated and canonical.

The rules and messages are Nomad's ServiceCheck.Canonicalize, validateCommon
and validateNomad (provider "nomad"); what only Consul checks take is
refused.  check_restart is merged from the service as Nomad's api does.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from actors.scheduler.job import JobError, canonical_job, go_duration

SEC = 1_000_000_000


def job(*checks: dict[str, Any], svc: dict[str, Any] | None = None, task_svc: bool = False) -> dict[str, Any]:
    """A service job whose group has a dynamic port "http" and one service (on it) with these checks."""
    service = {"Name": "api", "PortLabel": "http", "Checks": list(checks), **(svc or {})}
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["1000"]}}
    group: dict[str, Any] = {"Name": "g", "Count": 1, "Tasks": [task],
                             "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}]}
    if task_svc:
        task["Services"] = [service]
    else:
        group["Services"] = [service]
    return {"ID": "web", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [group]}


def http(**extra: Any) -> dict[str, Any]:
    return {"Type": "http", "Path": "/health", "Interval": 10 * SEC, "Timeout": 2 * SEC, **extra}


def tcp(**extra: Any) -> dict[str, Any]:
    return {"Type": "tcp", "Interval": 10 * SEC, "Timeout": 2 * SEC, **extra}


def checks_of(j: dict[str, Any], task_svc: bool = False) -> list[dict[str, Any]]:
    g = j["TaskGroups"][0]
    owner = g["Tasks"][0] if task_svc else g
    return owner["Services"][0]["Checks"]


def refused(message: str, *checks: dict[str, Any], **kw: Any) -> None:
    with pytest.raises(JobError, match=message):
        canonical_job(job(*checks, **kw))


# ------------------------------------------------------------ defaults
def test_a_minimal_check_gets_nomads_defaults() -> None:
    (h, t) = checks_of(canonical_job(job(http(), tcp())))
    assert h == {"Name": 'service: "api" check', "Type": "http", "Path": "/health", "Method": "GET",
                 "Protocol": "http", "PortLabel": "", "Interval": 10 * SEC, "Timeout": 2 * SEC,
                 "OnUpdate": "require_healthy", "AddressMode": "", "Header": {}, "Body": "", "TaskName": "",
                 "CheckRestart": None}
    assert t == {**h, "Type": "tcp", "Path": ""}


def test_a_check_keeps_what_it_was_given() -> None:
    c = http(Name="alive", Type="HTTP", Path="/v1/health?deep=1", Method="POST", Protocol="https",
             PortLabel="http", OnUpdate="ignore", AddressMode="host",
             Header={"Authorization": ["Basic xyz"], "X-Many": ["a", "b"]}, Body='{"ping": 1}', TaskName="t")
    (out,) = checks_of(canonical_job(job(c)))
    assert out == {"Name": "alive", "Type": "http", "Path": "/v1/health?deep=1", "Method": "POST",
                   "Protocol": "https", "PortLabel": "http", "Interval": 10 * SEC, "Timeout": 2 * SEC,
                   "OnUpdate": "ignore", "AddressMode": "host",
                   "Header": {"Authorization": ["Basic xyz"], "X-Many": ["a", "b"]}, "Body": '{"ping": 1}',
                   "TaskName": "t", "CheckRestart": None}


def test_a_numeric_port_label_becomes_a_string_and_alloc_mode_is_accepted() -> None:
    (out,) = checks_of(canonical_job(job(tcp(PortLabel=8080, AddressMode="alloc"))))
    assert out["PortLabel"] == "8080" and out["AddressMode"] == "alloc"


def test_a_task_services_check_is_named_after_the_task_as_nomad_does() -> None:
    j = canonical_job(job(http(), svc={"Name": ""}, task_svc=True))
    (out,) = checks_of(j, task_svc=True)
    assert out["Name"] == 'service: "web-g-t" check' and out["TaskName"] == "t"


def test_nomads_own_zero_valued_fields_are_accepted_and_not_kept() -> None:
    # What `nomad job run` sends for a check: every field, the unset ones zero.
    c = http(Command="", Args=None, Expose=False, InitialStatus="", Notes="", TLSServerName="",
             TLSSkipVerify=False, CheckRestart=None, GRPCService="", GRPCUseTLS=False, SuccessBeforePassing=0,
             FailuresBeforeCritical=0, FailuresBeforeWarning=0, Advertise="", Unknown="x")
    (out,) = checks_of(canonical_job(job(c)))
    assert out == checks_of(canonical_job(job(http())))[0]
    assert checks_of(canonical_job(job(http(CheckRestart={"Limit": 0, "Grace": 0}))))[0] == out


def test_a_service_without_checks_has_none() -> None:
    svc = canonical_job(job())["TaskGroups"][0]["Services"][0]
    assert "Checks" not in svc


def test_canonical_checks_are_a_fixed_point() -> None:
    for task_svc in (False, True):
        raw = job(http(Method="HEAD", Header={"A": ["1"]}), tcp(PortLabel=9000, Name="raw"),
                  task_svc=task_svc)
        once = canonical_job(raw)
        again = canonical_job(copy.deepcopy(once))
        assert again == once
        assert checks_of(again, task_svc) == checks_of(once, task_svc)


# ------------------------------------------------------------ refused, with Nomad's messages
@pytest.mark.parametrize(("check", "message"), [
    (http(Type="script"), r'Checks\[0\]\.Type: invalid check type \("script"\), must be one of tcp, http'),
    (http(Type="GRPC"), r'invalid check type \("grpc"\), must be one of tcp, http'),
    (http(Type=""), r'invalid check type \(""\)'),
    (http(Path=""), r"Checks\[0\]\.Path: http type must have http path"),
    (http(Path="http://example.com/health"), r"Path: http type must have relative http path"),
    (http(Path="//example.com/health"), r"Path: http type must have relative http path"),
    (http(Path="http://[::1"), r"Path: http type must have valid http path"),
    (http(Interval=0), r"Interval: missing required value interval\. Interval cannot be less than 1s"),
    (http(Interval=None), r"Interval: missing required value interval\. Interval cannot be less than 1s"),
    (http(Interval=SEC // 2), r"Interval: interval \(500ms\) cannot be lower than 1s"),
    (tcp(Interval=-SEC), r"interval \(-1s\) cannot be lower than 1s"),
    (tcp(Interval="10s"), r"Interval: must be an integer"),
    (http(Timeout=0), r"Timeout: missing required value timeout\. Timeout cannot be less than 1s"),
    (tcp(Timeout=1500), r"Timeout: timeout \(1\.5\u00b5s\) is lower than required minimum timeout 1s"),
    (http(Method="get"), r'Method: method type "get" not supported in Nomad http check'),
    (http(Method="FETCH"), r'method type "FETCH" not supported in Nomad http check'),
    (http(Protocol="ftp"), r'Protocol: protocol must be "http" or "https"; got "ftp"'),
    (http(OnUpdate="ignore_warnings"),
     r"OnUpdate: on_update may only be set to ignore_warnings for Consul service checks"),
    (http(OnUpdate="sometimes"),
     r'OnUpdate: on_update must be "require_healthy", "ignore_warnings", or "ignore"; got "sometimes"'),
    (http(AddressMode="driver"),
     r"AddressMode: address_mode = driver may only be set for Consul service checks"),
    (http(AddressMode="auto"), r'AddressMode: invalid address_mode "auto" - auto only valid for services'),
    (http(AddressMode="moon"), r'AddressMode: invalid address_mode "moon"'),
    (http(InitialStatus="ok"), r'invalid initial check state \(ok\), must be one of "passing", "warning", '
                               r'"critical" or empty'),
    (http(SuccessBeforePassing=2),
     r"SuccessBeforePassing: success_before_passing may only be set for Consul service checks"),
    (tcp(FailuresBeforeCritical=3),
     r"FailuresBeforeCritical: failures_before_critical may only be set for Consul service checks"),
    (tcp(FailuresBeforeWarning=1),
     r"FailuresBeforeWarning: failures_before_warning may only be set for Consul service checks"),
    (http(TLSServerName="example.com"),
     r"TLSServerName: tls_server_name may only be set for Consul service checks"),
    (http(TLSSkipVerify="yes"), r"TLSSkipVerify: must be a boolean"),
    (http(Expose=True), r"Expose: expose may only be set for Consul service checks"),
    (http(GRPCService="svc"), r"GRPCService: grpc_service is not used by nomad service checks"),
    (tcp(GRPCUseTLS=True), r"GRPCUseTLS: grpc_use_tls is not used by nomad service checks"),
    (tcp(Command="/bin/true"), r"Command: command is not used by nomad service checks"),
    (tcp(Args=["-x"]), r"Args: args is not used by nomad service checks"),
    (http(CheckRestart={"Limit": -1}),
     r"CheckRestart\.Limit: limit must be greater than or equal to 0 but found -1"),
    (http(CheckRestart={"Limit": 2, "Grace": -5}),
     r"CheckRestart\.Grace: grace period must be greater than or equal to 0 but found -5"),
    (http(CheckRestart={"Limit": 2, "IgnoreWarnings": True}),
     r"ignore_warnings on check_restart only supported for Consul service checks"),
    (http(CheckRestart={"Limit": 2}, OnUpdate="ignore"),
     r'OnUpdate: on_update value "ignore" is not compatible with check_restart'),
    (http(Header={"A": "b"}), r"Header\.A: must be a list"),
    (http(Header={"A": [1]}), r"Header\.A: must be a list of strings"),
    (tcp(PortLabel=True), r"PortLabel: must be a port label or a port number"),
    (tcp(Name=5), r"Name: must be a string"),
])
def test_what_nomad_refuses_in_a_check_is_refused_with_its_message(check: dict[str, Any],
                                                                   message: str) -> None:
    refused(message, check)


def test_the_error_names_the_service_and_check() -> None:
    refused(r"^TaskGroups\[0\]\.Services\[0\]\.Checks\[1\]\.Path: http type must have http path$",
            tcp(), http(Path=""))
    refused(r"^TaskGroups\[0\]\.Tasks\[0\]\.Services\[0\]\.Checks\[0\]\.Interval: ", http(Interval=1),
            task_svc=True)


def test_a_checks_port_must_be_a_network_label_or_a_number() -> None:
    refused(r"TaskGroups\[0\]\.Services: port label 'admin' referenced by check 'alive' of service 'api' "
            r"does not exist in the group's network", tcp(Name="alive", PortLabel="admin"))
    refused(r"TaskGroups\[0\]\.Tasks\[t\]\.Services: port label 'admin' referenced by check",
            tcp(PortLabel="admin"), task_svc=True)
    assert checks_of(canonical_job(job(tcp(PortLabel="9000"))))[0]["PortLabel"] == "9000"


def test_a_check_needs_a_port_from_itself_or_its_service() -> None:
    refused(r'Checks\[0\]: Check service: "api" check invalid: check requires a port but neither check nor '
            r'service "api" have a port', tcp(), svc={"PortLabel": ""})
    (out,) = checks_of(canonical_job(job(tcp(PortLabel="http"), svc={"PortLabel": ""})))
    assert out["PortLabel"] == "http"


def test_checks_must_be_a_list_of_objects() -> None:
    with pytest.raises(JobError, match=r"Services\[0\]\.Checks: must be a list"):
        canonical_job(job(svc={"Checks": {"Type": "tcp"}}))
    with pytest.raises(JobError, match=r"Checks\[0\]: must be an object"):
        canonical_job(job(svc={"Checks": ["tcp"]}))


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1_500, "1.5\u00b5s"), (500_000_000, "500ms"),
    (1_250_000, "1.25ms"), (SEC, "1s"), (90 * SEC, "1m30s"), (3600 * SEC + 1, "1h0m0.000000001s"),
    (-SEC // 2, "-500ms"),
])
def test_durations_print_as_gos(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_check_restart_is_the_checks_over_its_services_as_nomads_merge() -> None:
    (out,) = checks_of(canonical_job(job(http(CheckRestart={"Limit": 3, "Grace": 30 * SEC}))))
    assert out["CheckRestart"] == {"Limit": 3, "Grace": 30 * SEC, "IgnoreWarnings": False}
    (out,) = checks_of(canonical_job(job(http(CheckRestart={"Limit": 2}))))
    assert out["CheckRestart"] == {"Limit": 2, "Grace": SEC, "IgnoreWarnings": False}  # grace defaults to 1s
    # A service's check_restart goes to each of its checks; a check's own limit or grace wins.
    j = canonical_job(job(http(), tcp(CheckRestart={"Grace": 5 * SEC}), tcp(Name="own", CheckRestart={"Limit": 9}),
                          svc={"CheckRestart": {"Limit": 4, "Grace": 20 * SEC}}))
    assert [c["CheckRestart"] for c in checks_of(j)] == [
        {"Limit": 4, "Grace": 20 * SEC, "IgnoreWarnings": False},
        {"Limit": 4, "Grace": 5 * SEC, "IgnoreWarnings": False},
        {"Limit": 9, "Grace": 20 * SEC, "IgnoreWarnings": False}]
    assert "CheckRestart" not in j["TaskGroups"][0]["Services"][0]
    assert canonical_job(copy.deepcopy(j)) == j  # idempotent
    # Limit 0 restarts nothing: none.
    assert checks_of(canonical_job(job(http(CheckRestart={"Limit": 0, "Grace": 9 * SEC}))))[0]["CheckRestart"] is None
