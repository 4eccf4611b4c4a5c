"""Least privilege for tasks: a task's ``User`` runs it as that user (the client runs as root for this)."""

from __future__ import annotations

import os
import pwd
import time

import pytest

from actors.client.alloc_runner import AllocRunnerConfig, parse_alloc
from actors.client.drivers import DriverError, RawExecDriver, resolve_user

DEADLINE_S = 10.0


def test_unknown_user_is_a_clear_start_error() -> None:
    with pytest.raises(DriverError, match="user 'no-such-user-x' does not exist"):
        resolve_user("raw_exec", "no-such-user-x")


def test_own_user_or_none_runs_as_the_agent() -> None:
    assert resolve_user("raw_exec", "") is None
    assert resolve_user("raw_exec", pwd.getpwuid(os.geteuid()).pw_name) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="needs a non-root agent")
def test_non_root_agent_refuses_another_user() -> None:
    with pytest.raises(DriverError, match="needs the client to run as root"):
        resolve_user("raw_exec", "root")


def test_the_task_user_field_reaches_the_driver() -> None:
    alloc = {"ID": "a1", "JobID": "j", "TaskGroup": "g", "DesiredStatus": "run", "Job": {
        "ID": "j", "Type": "service", "TaskGroups": [{"Name": "g", "Tasks": [
            {"Name": "t", "Driver": "raw_exec", "User": "nobody", "Config": {"command": "/bin/true"}}]}]}}
    spec = parse_alloc(alloc, AllocRunnerConfig())
    assert spec.tasks[0].user == "nobody"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_raw_exec_task_runs_as_its_user(tmp_path) -> None:
    nobody = pwd.getpwnam("nobody")
    drv = RawExecDriver()
    task_dir = tmp_path / "alloc1" / "t"
    h = drv.start("alloc1", "t", {"command": "/bin/sh", "args": ["-c", "id -u; touch local/made"]},
                  str(task_dir), {}, user="nobody")
    deadline = time.monotonic() + DEADLINE_S
    while drv.poll(h) is None:
        assert time.monotonic() < deadline, "task did not exit"
        time.sleep(0.02)
    out = (tmp_path / "alloc1" / "alloc" / "logs" / "t.stdout.0").read_text().strip()
    assert out == str(nobody.pw_uid)
    assert (task_dir / "local" / "made").stat().st_uid == nobody.pw_uid  # it could write its own dir
    assert (task_dir / "secrets").stat().st_mode & 0o777 == 0o700
