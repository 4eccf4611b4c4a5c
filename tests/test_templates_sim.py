"""Task templates in the simulator: servers with Raft, a client running tasks on SimDriver.

A template reading a Nomad variable is rendered into the task's directory
before the task starts; an ``env = true`` one reaches the task's
environment; a task whose variable does not exist waits with Nomad's
"Missing" event until it is written; a variable's change re-renders the
template and restarts (or signals) the task.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from actors.client.alloc_runner import MemoryAllocDirs
from actors.state.store import command
from sim.client_cluster import ClusterConfig
from sim.job_cluster import JobCluster, JobClusterConfig, sim_job

pytestmark = pytest.mark.timeout(60)


def boot() -> JobCluster:
    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1)))
    c.run(30.0)
    assert c.statuses() == {"ready": 1}
    return c


def set_var(c: JobCluster, path: str, items: dict[str, str]) -> None:
    _, result = c.propose(command("var_set", namespace="default", path=path, items=items, cas=None,
                                  now=c.sched.now))
    assert result["ok"], result


def job(templates: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    j = sim_job(count=1)
    task = j["TaskGroups"][0]["Tasks"][0]
    task["Templates"] = templates
    task["Config"].update(config)
    return j


def until(c: JobCluster, cond: Any, bound_s: float = 60.0) -> None:
    end = c.sched.now + bound_s
    while not cond():
        assert c.sched.now < end, f"not within {bound_s}s"
        c.run(0.5)
        node = c.sched.nodes["c0001"]
        if node.up and "alloc-runner" in node.actors:
            c.sched.actor_of(node.actors["alloc-runner"]).check_invariants()


def procs(c: JobCluster) -> list[Any]:
    return sorted(c.drivers["c0001"].procs.values(), key=lambda p: p.pid)


def files(c: JobCluster) -> dict[str, bytes]:
    return {path: data for (_, task, path), data in c.alloc_dirs["c0001"].files.items() if not task}


def events(c: JobCluster) -> list[tuple[str, str]]:
    runner = c.sched.actor_of(c.sched.nodes["c0001"].actors["alloc-runner"])
    return [(e.type, e.message) for a in runner.allocs.values() for t in a.tasks.values()
            for e in t.state.events]


CONF = {"EmbeddedTmpl": '{{ with nomadVar "nomad/jobs/web" }}password={{ .password }}{{ end }}\n',
        "DestPath": "local/app.conf", "ChangeMode": "restart", "Splay": 0}
ENV = {"EmbeddedTmpl": '{{ with nomadVar "nomad/jobs/web/g" }}DB_USER={{ .user }}{{ end }}\n',
       "DestPath": "secrets/app.env", "Envvars": True, "ChangeMode": "noop"}


def test_templates_render_before_start_env_reaches_the_task_and_a_change_restarts_it() -> None:
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "s3cret"})
    set_var(c, "nomad/jobs/web/g", {"user": "alice"})
    c.register(job([CONF, ENV], args=["${DB_USER}"]))
    until(c, lambda: len(procs(c)) == 1)
    p = procs(c)[0]
    assert p.config["args"] == ["alice"]  # the env template's variable, interpolated at start
    out = files(c)
    assert out["t/local/app.conf"] == b"password=s3cret\n"
    assert out["t/secrets/app.env"] == b"DB_USER=alice\n"
    assert c.alloc_dirs["c0001"].perms[(p.alloc_id, "t/local/app.conf")] == 0o644
    set_var(c, "nomad/jobs/web", {"password": "n3w"})
    until(c, lambda: len(procs(c)) == 2)
    assert procs(c)[0].ended_at is not None and procs(c)[1].ended_at is None
    assert files(c)["t/local/app.conf"] == b"password=n3w\n"
    assert ("Restart Signaled", "Template with change_mode restart re-rendered") in events(c)
    # A change to what only a noop template reads is written, and nothing else happens.
    set_var(c, "nomad/jobs/web/g", {"user": "bob"})
    until(c, lambda: files(c)["t/secrets/app.env"] == b"DB_USER=bob\n")
    c.run(5.0)
    assert len(procs(c)) == 2


def test_a_missing_variable_blocks_the_task_until_it_is_written() -> None:
    c = boot()
    c.register(job([CONF]))
    until(c, lambda: ("Template", "Missing: nomad.var.block(nomad/jobs/web@default.global)") in events(c))
    c.run(10.0)
    assert procs(c) == []
    set_var(c, "nomad/jobs/web", {"password": "late"})
    until(c, lambda: len(procs(c)) == 1)
    assert files(c)["t/local/app.conf"] == b"password=late\n"


def test_signal_change_mode_signals_the_running_task() -> None:
    # The node must have the signal (Nomad's implied ${attr.os.signals} constraint), as a Linux host has.
    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1)))
    c.hosts["c0001"].update(signals=("SIGHUP", "SIGINT", "SIGKILL", "SIGTERM"))
    c.run(30.0)
    set_var(c, "nomad/jobs/web", {"password": "a"})
    c.register(job([{**CONF, "ChangeMode": "signal", "ChangeSignal": "SIGHUP"}]))
    until(c, lambda: len(procs(c)) == 1)
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: procs(c)[0].signals == ["SIGHUP"])
    assert len(procs(c)) == 1 and ("Signaling", "Template re-rendered") in events(c)


def test_a_variable_outside_the_tasks_identity_fails_the_task() -> None:
    c = boot()
    set_var(c, "nomad/jobs/other", {"password": "x"})
    other = '{{ with nomadVar "nomad/jobs/other" }}{{ .password }}{{ end }}'
    c.register(job([{**CONF, "EmbeddedTmpl": other}]))
    until(c, lambda: any(t == "Killing" and "Permission denied" in m for t, m in events(c)))
    assert procs(c) == []


def test_after_a_client_restart_a_running_tasks_templates_are_watched_again() -> None:
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "a"})
    c.register(job([CONF]))
    until(c, lambda: len(procs(c)) == 1)
    c.crash("c0001")
    c.run(2.0)
    c.restart("c0001")
    c.run(15.0)
    assert len(procs(c)) == 1  # re-attached, not started again
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: len(procs(c)) == 2)
    assert files(c)["t/local/app.conf"] == b"password=b\n"


def test_template_data_is_read_with_the_tasks_workload_identity() -> None:
    import msgpack

    from actors.server.alloc_endpoint import template_data

    c = boot()
    for path in ("nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t/x",
                 "nomad/jobs/other", "app/config"):
        set_var(c, path, {"k": path})
    c.register(job([{**CONF, "EmbeddedTmpl": "static"}]))
    until(c, lambda: len(procs(c)) == 1)
    state = c.checker.replica
    (alloc,) = c.allocs("web")
    node = state.tables["nodes"][alloc["NodeID"]]
    paths = ("nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t", "nomad/jobs/web/g/t/x",
             "nomad/jobs/other", "app/config", "nomad/jobs/web/x")
    deps = tuple(("var", p) for p in paths)
    error, data = template_data(state, alloc["NodeID"], node["SecretID"], alloc["ID"], "t",
                                (*deps, ("varlist", "")))
    rows = {(k, a): (e, v) for k, a, e, v in msgpack.unpackb(data)}
    assert error == ""
    readable = {a for (k, a), (e, v) in rows.items() if k == "var" and not e}
    assert readable == {"nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t"}
    assert rows[("var", "nomad/jobs/web/g/t")] == ("", None)  # its own, and absent
    assert rows[("var", "nomad/jobs/web")][1]["Items"] == {"k": "nomad/jobs/web"}
    for other in ("app/config", "nomad/jobs/other", "nomad/jobs/web/g/t/x", "nomad/jobs/web/x"):
        assert rows[("var", other)][0] == "Permission denied"
    listed = [m["Path"] for m in rows[("varlist", "")][1]]
    assert listed == ["nomad/jobs", "nomad/jobs/web", "nomad/jobs/web/g"]
    assert template_data(state, alloc["NodeID"], "wrong", alloc["ID"], "t", deps)[0] == \
        "node secret ID does not match"


def test_wait_renders_a_change_once_the_data_has_settled_and_splay_delays_the_restart() -> None:
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "a"})
    c.register(job([{**CONF, "Wait": {"Min": 4 * 10**9, "Max": 10 * 10**9}, "Splay": 3 * 10**9}]))
    until(c, lambda: len(procs(c)) == 1)
    for value in ("b", "c", "d", "e"):  # every 3 s: never quiet for 4 s, so max (10 s) renders it
        set_var(c, "nomad/jobs/web", {"password": value})
        c.run(3.0)
        if value in ("b", "c"):
            assert files(c)["t/local/app.conf"] == b"password=a\n"
    until(c, lambda: files(c)["t/local/app.conf"] != b"password=a\n", 5.0)
    written = c.sched.now
    assert len(procs(c)) == 1  # the restart waits out a random part of the splay
    until(c, lambda: len(procs(c)) == 2, 10.0)
    assert c.sched.now - written <= 3.0 + 5.5  # splay, plus the kill and the restart
    until(c, lambda: files(c)["t/local/app.conf"] == b"password=e\n", 10.0)


def test_a_missing_source_file_fails_the_task() -> None:
    c = boot()
    c.register(job([{"SourcePath": "local/in.tpl", "DestPath": "local/out"}]))
    until(c, lambda: any(t == "Killing" and "failed to read template source 'local/in.tpl'" in m
                         for t, m in events(c)))
    assert procs(c) == []


def test_nomad_service_lists_the_native_catalogs_registrations_and_follows_them() -> None:
    c = boot()
    db = sim_job("db", count=1, Services=[{"Name": "db", "PortLabel": "5432", "Provider": "nomad"}])
    c.register(db)
    until(c, lambda: len(procs(c)) == 1)
    text = ('{{ range nomadServices }}{{ .Name }} {{ end }}|'
            '{{ range nomadService "db" }}{{ .Address }}:{{ .Port }}{{ else }}none{{ end }}\n')
    c.register(job([{"EmbeddedTmpl": text, "DestPath": "local/db", "ChangeMode": "noop"}]))
    until(c, lambda: len(procs(c)) == 2)
    out = files(c)["t/local/db"].decode()
    assert out.startswith("db |") and out.endswith(":5432\n") and "none" not in out, out
    c.stop_job("db")
    until(c, lambda: files(c)["t/local/db"] == b"|none\n")
    assert [p.ended_at is None for p in procs(c)] == [False, True]  # noop: the task runs on


def test_a_template_that_stops_rendering_kills_and_fails_the_running_task() -> None:
    c = boot()
    set_var(c, "nomad/jobs/web", {"n": "1"})
    text = '{{ with nomadVar "nomad/jobs/web" }}{{ parseInt .n }}{{ end }}'
    c.register(job([{**CONF, "EmbeddedTmpl": text}]))
    until(c, lambda: len(procs(c)) == 1)
    set_var(c, "nomad/jobs/web", {"n": "x"})
    until(c, lambda: procs(c)[0].ended_at is not None)
    (alloc,) = c.allocs("web")
    until(c, lambda: c.allocs("web")[0]["ClientStatus"] == "failed")
    assert any(t == "Killing" and m.startswith("Template failed: ") and "parseInt" in m for t, m in events(c))
    assert len(procs(c)) == 1 and alloc["ID"] == c.allocs("web")[0]["ID"]


@pytest.mark.parametrize(("text", "out"), [
    ('{{ regexReplaceAll "a" "$1" "abc" }}{{ parseFloat "1e400" }}', "bc+Inf"),
    ('{{ "x" | indent 99999999999 }}', None),
    ('{{ parseJSON "' + "[" * 5000 + '" }}', None),
    ("{{" + "(" * 500 + "1" + ")" * 500 + "}}", None)])
def test_a_template_that_cannot_render_fails_its_task_and_leaves_the_node_alone(text: str,
                                                                                out: str | None) -> None:
    """Review 13: these templates crashed the AllocRunner, and with it every allocation on the node."""
    c = boot()
    c.register(sim_job("good", count=1))
    until(c, lambda: len(procs(c)) == 1)
    runner = c.sched.nodes["c0001"].actors["alloc-runner"]
    c.register(job([{"EmbeddedTmpl": text, "DestPath": "local/x", "Splay": 0}]))
    if out is not None:  # renders as Go does: the task runs
        until(c, lambda: len(procs(c)) == 2)
        assert files(c)["t/local/x"] == out.encode()
    else:
        until(c, lambda: bool(c.allocs("web")) and c.allocs("web")[0]["ClientStatus"] == "failed")
        assert any(t == "Killing" and m.startswith("Template failed: ") for t, m in events(c)), events(c)
    assert c.sched.nodes["c0001"].actors["alloc-runner"] == runner  # never restarted
    assert procs(c)[0].ended_at is None  # the healthy allocation runs on
    assert c.allocs("good")[0]["ClientStatus"] == "running"


def test_data_the_templates_no_longer_read_is_dropped() -> None:
    c = boot()
    set_var(c, "nomad/jobs/web", {"mode": "a"})
    set_var(c, "nomad/jobs/web/g", {"user": "alice"})
    text = ('{{ with nomadVar "nomad/jobs/web" }}{{ if eq .mode "a" }}{{ with nomadVar "nomad/jobs/web/g" }}'
            '{{ .user }}{{ end }}{{ end }}{{ end }}')
    c.register(job([{"EmbeddedTmpl": text, "DestPath": "local/x", "ChangeMode": "noop", "Splay": 0}]))
    until(c, lambda: len(procs(c)) == 1)
    runner = c.sched.actor_of(c.sched.nodes["c0001"].actors["alloc-runner"])
    (task,) = [t for a in runner.allocs.values() for t in a.tasks.values()]
    assert sorted(task.tmpl_data) == [("var", "nomad/jobs/web"), ("var", "nomad/jobs/web/g")]
    set_var(c, "nomad/jobs/web", {"mode": "b"})
    until(c, lambda: files(c)["t/local/x"] == b"")
    until(c, lambda: sorted(task.tmpl_data) == [("var", "nomad/jobs/web")])


def test_a_source_file_is_read_once_per_task_run_not_on_every_re_render(monkeypatch: Any) -> None:
    """consul-template reads a template's source when the task's runner starts; re-reading it on
    every change let a task swap in a FIFO that froze the agent (review 13)."""
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "one"})
    reads: list[str] = []

    def read(_self: Any, alloc_id: str, path: str, limit: int) -> bytes:
        reads.append(path)
        return b'{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}'
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", read)
    c.register(job([{"SourcePath": "local/in.tpl", "DestPath": "local/out", "ChangeMode": "noop",
                     "Splay": 0}]))
    until(c, lambda: len(procs(c)) == 1)
    assert files(c)["t/local/out"] == b"one"
    set_var(c, "nomad/jobs/web", {"password": "two"})
    until(c, lambda: files(c)["t/local/out"] == b"two")
    assert reads == ["t/local/in.tpl"]


def test_templates_reading_more_than_the_servers_allow_fail_the_task_instead_of_retrying(
        monkeypatch: Any) -> None:
    """The servers refuse a query for more than template_max_deps variables and services; asking again
    every second gets the same refusal, so the task fails with it as Nomad's template errors do."""
    from actors.server import alloc_endpoint

    base = alloc_endpoint.AllocEndpointConfig
    monkeypatch.setattr(alloc_endpoint, "AllocEndpointConfig", lambda: base(template_max_deps=2))
    c = boot()
    text = "".join(f'{{{{ with nomadVar "nomad/jobs/web/{i}" }}}}{{{{ end }}}}' for i in range(3))
    c.register(job([{**CONF, "EmbeddedTmpl": text}]))
    until(c, lambda: bool(c.allocs("web")) and c.allocs("web")[0]["ClientStatus"] == "failed", 30.0)
    assert ("Killing", "Template failed: templates read more than 2 variables and services") in events(c)
    assert procs(c) == []


def test_the_first_render_does_not_wait_for_quiescence() -> None:
    """consul-template arms a template's wait { min, max } only once every template has rendered
    (its runner's quiescence map is filled after allTemplatesRendered), so a task starts as soon as
    its data is there, and only later changes wait for the data to settle."""
    c = boot()
    c.register(job([{**CONF, "Wait": {"Min": 60 * 10**9, "Max": 120 * 10**9}}]))
    until(c, lambda: any(m.startswith("Missing: nomad.var.block") for _, m in events(c)))
    set_var(c, "nomad/jobs/web", {"password": "a"})  # the data arrives: rendered at once
    start = c.sched.now
    until(c, lambda: len(procs(c)) == 1, 15.0)  # well within wait.min
    assert files(c)["t/local/app.conf"] == b"password=a\n"
    set_var(c, "nomad/jobs/web", {"password": "b"})
    c.run(30.0)
    assert files(c)["t/local/app.conf"] == b"password=a\n"  # a change waits for min
    until(c, lambda: files(c)["t/local/app.conf"] == b"password=b\n", 40.0)
    assert c.sched.now - start < 120.0


def _failing_endpoint(monkeypatch: Any, failing: list[bool], times: list[float], c_ref: list[Any]) -> None:
    """The servers answer every template data query with an error while failing[0] is true."""
    from actors.client.messages import GetTemplateData, TemplateDataResponse
    from actors.server import alloc_endpoint

    real = alloc_endpoint.AllocEndpoint.receive

    def receive(self: Any, message: Any) -> Any:
        if isinstance(message, GetTemplateData) and failing[0]:
            times.append(c_ref[0].sched.now)
            self.send(message.reply_node, message.reply_actor, TemplateDataResponse(
                req_id=message.req_id, ok=False, error="Unexpected response code: 500 (boom)"))
            return None
        return real(self, message)
    monkeypatch.setattr(alloc_endpoint.AllocEndpoint, "receive", receive)


def boot_retry(attempts: int, backoff: float, max_backoff: float) -> JobCluster:
    from actors.client.alloc_runner import AllocRunnerConfig

    runner = AllocRunnerConfig(template_retry_attempts=attempts, template_retry_backoff_s=backoff,
                               template_retry_max_backoff_s=max_backoff)
    c = JobCluster(3, JobClusterConfig(base=ClusterConfig(n_servers=1, n_clients=1), runner=runner))
    c.run(30.0)
    assert c.statuses() == {"ready": 1}
    return c


def test_failing_template_queries_back_off_and_fail_the_task_once_nomad_retry_is_spent(
        monkeypatch: Any) -> None:
    """client.template.nomad_retry: a failed query is retried after backoff, doubled up to max_backoff;
    after `attempts` retries the task fails with the dependency's error (consul-template's view gives
    up, Nomad's template hook kills the task: "Template failed: ...")."""
    failing, times, ref = [True], [], [None]
    _failing_endpoint(monkeypatch, failing, times, ref)
    c = boot_retry(4, 1.0, 3.0)
    ref[0] = c
    c.register(job([CONF]))
    until(c, lambda: bool(c.allocs("web")) and c.allocs("web")[0]["ClientStatus"] == "failed", 60.0)
    assert len(times) == 5  # the query and 4 retries
    gaps = [round(b - a) for a, b in itertools.pairwise(times)]
    assert gaps == [1, 2, 3, 3]  # 1s, 2s, then max_backoff
    assert ("Killing", "Template failed: nomad.var.block(nomad/jobs/web@default.global): "
            "Unexpected response code: 500 (boom)") in events(c)
    assert procs(c) == []


def test_a_server_that_recovers_within_the_retries_starts_the_task_and_resets_them(monkeypatch: Any) -> None:
    failing, times, ref = [True], [], [None]
    _failing_endpoint(monkeypatch, failing, times, ref)
    c = boot_retry(3, 1.0, 60.0)
    ref[0] = c
    set_var(c, "nomad/jobs/web", {"password": "pw"})
    c.register(job([CONF]))
    until(c, lambda: len(times) == 3)  # two retries spent
    failing[0] = False
    until(c, lambda: len(procs(c)) == 1)
    runner = c.sched.actor_of(c.sched.nodes["c0001"].actors["alloc-runner"])
    assert [t.tmpl_retries for a in runner.allocs.values() for t in a.tasks.values()] == [0]
    failing[0] = True  # the watch fails again later: a fresh set of attempts, then the task fails
    set_var(c, "nomad/jobs/web", {"password": "pw2"})
    until(c, lambda: c.allocs("web")[0]["ClientStatus"] == "failed", 60.0)
    assert len(times) == 3 + 4


def test_file_reads_a_file_of_the_tasks_directory_and_timestamp_the_clients_clock(monkeypatch: Any) -> None:
    """consul-template's file, sandboxed to the task's directory as Nomad's (NOMAD_TASK_DIR is inside
    it; another allocation's file is not), read again on each re-render."""
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "one"})
    reads: list[tuple[str, str]] = []

    def read(_self: Any, alloc_id: str, path: str, limit: int) -> bytes:
        reads.append((alloc_id, path))
        return b"from-file"
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", read)
    text = ('{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }} '
            '{{ file (printf "%s/in.txt" (env "NOMAD_TASK_DIR")) }} {{ timestamp "unix" }}')
    c.register(job([{"EmbeddedTmpl": text, "DestPath": "local/out", "ChangeMode": "noop", "Splay": 0}]))
    until(c, lambda: len(procs(c)) == 1)
    pw, content, stamp = files(c)["t/local/out"].decode().split(" ")
    assert (pw, content) == ("one", "from-file") and 0 < int(stamp) <= c.sched.now
    assert set(reads) == {(procs(c)[0].alloc_id, "t/local/in.txt")}  # each rendering reads it
    before = len(reads)
    set_var(c, "nomad/jobs/web", {"password": "two"})
    until(c, lambda: files(c)["t/local/out"].startswith(b"two from-file "))
    assert len(reads) > before
    c.register(job([{"EmbeddedTmpl": '{{ file "/etc/passwd" }}', "DestPath": "local/out",
                     "ChangeMode": "noop", "Splay": 0}]))
    until(c, lambda: any("is outside of sandbox" in m for _, m in events(c)))


def test_a_file_a_template_reads_is_watched_and_its_change_re_renders_without_extra_queries(
        monkeypatch: Any) -> None:
    """consul-template looks at a file dependency every 2 s (FileQuerySleepTime); a change re-renders
    the template and applies its change_mode; the servers' data query is not sent again for it."""
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "pw"})
    content = [b"v1"]
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", lambda _self, _a, _p, _n: content[0])
    text = ('{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}-'
            '{{ file (printf "%s/in.txt" (env "NOMAD_TASK_DIR")) }}')
    c.register(job([{**CONF, "EmbeddedTmpl": text}]))
    until(c, lambda: len(procs(c)) == 1)
    assert files(c)["t/local/app.conf"] == b"pw-v1"
    from actors.server.alloc_endpoint import ALLOC_ENDPOINT

    endpoint = c.sched.actor_of(c.sched.nodes[c.servers[0]].actors[ALLOC_ENDPOINT])
    queries = endpoint.stats["template_queries"]
    c.run(20.0)
    assert endpoint.stats["template_queries"] == queries  # ten looks at the file, no new query
    content[0] = b"v2"
    until(c, lambda: files(c)["t/local/app.conf"] == b"pw-v2", 10.0)
    until(c, lambda: len(procs(c)) == 2)  # change_mode restart
    set_var(c, "nomad/jobs/web", {"password": "new"})  # the data watch still works
    until(c, lambda: files(c)["t/local/app.conf"] == b"new-v2")


def test_a_slow_template_that_reads_a_file_is_looked_at_less_often(monkeypatch: Any) -> None:
    """Watching a file re-renders the template; one whose rendering takes long is re-rendered at most
    every template_file_poll_cost_factor times that long, so it cannot hold the client's runner."""
    from actors.client import alloc_runner

    c = boot()
    renders: list[float] = []
    real = alloc_runner.AllocRunner._render

    def slow(self: Any, a: Any, t: Any, env: Any) -> Any:
        renders.append(c.sched.now)
        node = c.sched.nodes["c0001"]
        node.clock_offset += 1.0  # the rendering takes a second of the client's clock
        return real(self, a, t, env)
    monkeypatch.setattr(alloc_runner.AllocRunner, "_render", slow)
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", lambda _self, _a, _p, _n: b"x")
    text = '{{ file (printf "%s/in.txt" (env "NOMAD_TASK_DIR")) }}'
    c.register(job([{**CONF, "EmbeddedTmpl": text}]))
    until(c, lambda: len(procs(c)) == 1)
    start = len(renders)
    c.run(60.0)
    assert 1 <= len(renders) - start <= 4  # every ~20 s instead of every 2 s


def test_after_a_client_restart_a_template_reading_only_a_file_is_watched_again(monkeypatch: Any) -> None:
    c = boot()
    content = [b"v1"]
    monkeypatch.setattr(MemoryAllocDirs, "read_alloc_file", lambda _self, _a, _p, _n: content[0])
    text = '{{ file (printf "%s/in.txt" (env "NOMAD_TASK_DIR")) }}'
    c.register(job([{**CONF, "EmbeddedTmpl": text}]))
    until(c, lambda: len(procs(c)) == 1)
    c.crash("c0001")
    c.run(2.0)
    c.restart("c0001")
    c.run(15.0)
    assert len(procs(c)) == 1  # re-attached, not started again
    content[0] = b"v2"
    until(c, lambda: files(c)["t/local/app.conf"] == b"v2")
    until(c, lambda: len(procs(c)) == 2)


def test_a_template_query_parked_on_a_server_that_restarts_is_asked_again_at_once() -> None:
    # consul-template's blocking query sees its connection reset and retries: a change made after the
    # server is back is rendered in seconds, not when the lost query's timer (template_wait_s plus a
    # margin: 310 s) runs out.
    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "a"})
    c.register(job([CONF]))
    until(c, lambda: len(procs(c)) == 1)
    c.run(5.0)  # its query parked on the server
    (server,) = c.servers
    c.crash(server)
    c.run(2.0)
    c.restart(server)
    c.run(15.0)  # its leadership back
    set_var(c, "nomad/jobs/web", {"password": "b"})
    until(c, lambda: len(procs(c)) == 2, 40.0)
    assert files(c)["t/local/app.conf"] == b"password=b\n"


def test_a_restarted_alloc_runner_is_told_its_node_and_servers_again() -> None:
    """The agent restarts a failed alloc-runner as a new actor, which restores its allocations from
    the client state but no longer knows its node and servers (ServerLink, which alloc-sync sends when
    the node registers): told again, its tasks' templates read the servers."""
    from actors.client.alloc_runner import AllocRunner
    from actors.client.checks import CHECK_RUNNER
    from sim.job_cluster import DRIVER, RUNNER, SYNC

    c = boot()
    set_var(c, "nomad/jobs/web", {"password": "a"})
    node = c.sched.nodes["c0001"]
    old = c.sched.actor_of(node.actors[RUNNER])
    node.actors[RUNNER].stop()  # as a supervisor restarting it would, with the same arguments
    node.env.spawn(AllocRunner, RUNNER, driver_registry={DRIVER: c.drivers["c0001"]},
                   state=c.alloc_stores["c0001"], alloc_root=old.alloc_root, reporter=SYNC, config=old.cfg,
                   alloc_dirs=c.alloc_dirs["c0001"], checker=CHECK_RUNNER, fetcher=old.fetcher)
    c.register(job([CONF]))
    until(c, lambda: len(procs(c)) == 1, 90.0)
    assert files(c)["t/local/app.conf"] == b"password=a\n"
