"""actors.client.templates: a task's templates rendered from the servers' data (the pure core)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.client.templates import (
    TemplateSpec,
    missing_message,
    parse_env,
    parse_templates,
    quiescence,
    render_task,
    resolve_path,
)

T = TemplateSpec(dest="local/x")
VAR = {"Namespace": "default", "Path": "nomad/jobs/web", "Items": {"password": "pw", "user": "u"},
       "CreateIndex": 3, "ModifyIndex": 7}


def render(text: str, data: dict[tuple[str, str], tuple[str, Any]], env: dict[str, str] | None = None,
           spec: TemplateSpec = T) -> Any:
    return render_task((spec,), (text,), env or {}, data, "default")


def test_nomad_var_reads_items_fields_ranges_and_metadata() -> None:
    data = {("var", "nomad/jobs/web"): ("", VAR)}
    text = ('{{ with nomadVar "nomad/jobs/web" }}{{ .password }}|{{ .nope }}|{{ .Parent.ModifyIndex }}'
            '|{{ range .Tuples }}{{ .K }}:{{ .V }} {{ end }}{{ end }}'
            '|{{ range $k, $v := nomadVar "nomad/jobs/web" }}{{ $k }}={{ $v }};{{ end }}'
            '|{{ (nomadVar "nomad/jobs/web").Items.user }}|{{ nomadVarExists "nomad/jobs/web" }}')
    r = render(text, data)
    assert r.complete and r.outputs == ("pw||7|password:pw user:u |password=pw;user=u;|u|true",)
    assert r.deps == (("var", "nomad/jobs/web"),)


def test_unfetched_data_is_lacking_and_an_absent_variable_is_missing() -> None:
    text = '{{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}'
    r = render(text, {})
    assert not r.complete and r.lacking == (("var", "nomad/jobs/web"),) and r.missing == ()
    r = render(text, {("var", "nomad/jobs/web"): ("", None)})
    assert not r.complete and r.missing == ("nomad.var.block(nomad/jobs/web@default.global)",)
    absent = {("var", "nomad/jobs/web"): ("", None)}
    assert render('{{ nomadVarExists "nomad/jobs/web" }}', absent).outputs == ("false",)
    assert missing_message(("d", "a", "c", "b", "e")) == "Missing: a, b, c, and 2 more"


def test_a_denied_variable_consul_and_vault_and_missing_keys_fail_the_render() -> None:
    r = render('{{ nomadVar "app/x" }}', {("var", "app/x"): ("Permission denied", None)})
    assert r.error.endswith("error calling nomadVar: nomad.var.block(app/x@default.global): "
                            "Permission denied")
    assert "Consul is not available" in render('{{ key "a/b" }}', {}).error
    assert "Vault is not available" in render('{{ with secret "kv/x" }}{{ end }}', {}).error
    strict = TemplateSpec(dest="local/x", err_missing_key=True)
    r = render('{{ with nomadVar "nomad/jobs/web" }}{{ .nope }}{{ end }}',
               {("var", "nomad/jobs/web"): ("", VAR)}, spec=strict)
    assert 'map has no entry for key "nope"' in r.error
    assert 'function "nosuchfunc" not defined' in render("{{ nosuchfunc }}", {}).error
    assert render("{{ sockaddr }}", {}).error.endswith(
        'error calling sockaddr: unable to parse template "{{  }}": template: sockaddr.Parse:1: '
        "missing value for command")


def test_nomad_services_and_a_chosen_subset() -> None:
    regs = [{"ID": f"id{i}", "ServiceName": "db", "Address": f"10.0.0.{i}", "Port": 5000 + i, "Tags": ["a"]}
            for i in range(5)]
    data = {("service", "db"): ("", regs), ("services", ""): ("", [{"Name": "db", "Tags": ["a"]}])}
    r = render('{{ range nomadServices }}{{ .Name }}{{ .Tags }}{{ end }} '
               '{{ range nomadService "db" }}{{ .Port }},{{ end }}', data)
    assert r.outputs == ("db[a] 5000,5001,5002,5003,5004,",)
    two = render('{{ range nomadService 2 "k" "db" }}{{ .Port }} {{ end }}', data).outputs[0].split()
    assert len(two) == 2 and two == render('{{ range nomadService 2 "k" "db" }}{{ .Port }} {{ end }}',
                                           data).outputs[0].split()


def test_nomad_service_entries_are_consul_templates_and_its_query_takes_a_tag() -> None:
    # consul-template's NomadService: Name and Node (not ServiceName, NodeID), tags sorted; the query
    # "<tag>.<name>?ns=<namespace>@<region>" keeps the instances with the tag.
    regs = [{"ID": "a", "ServiceName": "db", "NodeID": "n1", "Namespace": "default", "Datacenter": "dc1",
             "JobID": "j", "AllocID": "x", "Address": "10.0.0.1", "Port": 1, "Tags": ["z", "primary"]},
            {"ID": "b", "ServiceName": "db", "NodeID": "n2", "Namespace": "default", "Datacenter": "dc1",
             "JobID": "j", "AllocID": "y", "Address": "10.0.0.2", "Port": 2, "Tags": ["replica"]}]
    data = {("service", "db"): ("", regs)}
    r = render('{{ range nomadService "db" }}{{ .Name }} {{ .Node }} {{ .Tags }};{{ end }}', data)
    assert r.outputs == ("db n1 [primary z];db n2 [replica];",)
    assert render('{{ range nomadService "primary.db" }}{{ .Port }}{{ end }}', data).outputs == ("1",)
    own = render('{{ range nomadService "db?ns=default@global" }}{{ .Port }}{{ end }}', data)
    assert own.outputs == ("12",)
    assert render('{{ range nomadService 2 "k" "none.db" }}{{ .Port }}{{ end }}', data).outputs == ("",)
    assert r.deps == (("service", "db"),)
    assert render('{{ range nomadService "db" }}{{ .ServiceName }}{{ end }}', data).error
    assert render('{{ nomadService "db/x" }}', data).error.endswith(
        'error calling nomadService: nomad.service: invalid format: "db/x"')
    # Another namespace's instances are their own dependency (the servers answer for the namespace).
    other = render('{{ range nomadService "db?ns=prod" }}{{ .Port }}{{ end }}',
                   {**data, ("service", "db?ns=prod"): ("", regs[1:])})
    assert other.outputs == ("2",) and other.deps == (("service", "db?ns=prod"),)
    assert "own region (global)" in render('{{ nomadService "db@eu" }}', data).error


def test_env_reads_the_tasks_environment_only() -> None:
    r = render('{{ env "NOMAD_TASK_NAME" }}/{{ env "HOME" }}', {}, {"NOMAD_TASK_NAME": "t"})
    assert r.outputs == ("t/",)


def test_destinations_resolve_inside_the_allocation() -> None:
    env = {"NOMAD_ALLOC_DIR": "/a/id/alloc", "NOMAD_TASK_DIR": "/a/id/t/local"}
    assert resolve_path("local/x.conf", env, "/a/id", "/a/id/t") == "/a/id/t/local/x.conf"
    assert resolve_path("secrets/x", env, "/a/id", "/a/id/t") == "/a/id/t/secrets/x"
    assert resolve_path("${NOMAD_ALLOC_DIR}/x", env, "/a/id", "/a/id/t") == "/a/id/alloc/x"
    assert resolve_path("alloc/x", env, "/a/id", "/a/id/t") == "/a/id/alloc/x"
    assert resolve_path("../alloc/x", env, "/a/id", "/a/id/t") == "/a/id/alloc/x"
    assert resolve_path("/etc/x", env, "/a/id", "/a/id/t") == "/a/id/t/etc/x"
    assert resolve_path("../../../etc/x", env, "/a/id", "/a/id/t") is None


def test_env_files_are_read_as_nomads_envparse_does() -> None:
    assert parse_env('# c\n\nA=1\nexport B="x\\ny"\nC=\'q#r\'\nD= v # kept\n') == \
        {"A": "1", "B": "x\ny", "C": "q#r", "D": "v # kept"}
    with pytest.raises(ValueError, match="line 2: missing ="):
        parse_env("A=1\nnot a pair\n")


def test_specs_take_nomads_defaults_and_wait_bounds_the_quiescence() -> None:
    (spec,) = parse_templates([{"DestPath": "local/x", "EmbeddedTmpl": "x"}], "T")
    assert (spec.change_mode, spec.perms, spec.splay_s, spec.left, spec.right) == \
        ("restart", 0o644, 5.0, "{{", "}}")
    (w,) = parse_templates([{"DestPath": "x", "Wait": {"Min": 4 * 10**9, "Max": 10 * 10**9}}], "T")
    assert quiescence((w,), first_change=100.0, now=100.0) == 4.0
    assert quiescence((w,), first_change=100.0, now=108.0) == 2.0
    assert quiescence((spec,), first_change=100.0, now=100.0) == 0.0


def test_a_template_without_a_wait_block_re_renders_by_the_clients_template_wait():
    """Nomad's client.template.wait (5s / 4m) for templates with no wait of their own; a template's own
    wait, even { min = 0 }, wins."""
    from actors.client.templates import parse_templates, quiescence

    plain, own, off = parse_templates([
        {"DestPath": "local/a", "EmbeddedTmpl": "a"},
        {"DestPath": "local/b", "EmbeddedTmpl": "b", "Wait": {"Min": 2 * 10**9, "Max": 3 * 10**9}},
        {"DestPath": "local/c", "EmbeddedTmpl": "c", "Wait": {"Min": 0, "Max": 0}}], "t")
    default = (5.0, 240.0)
    assert (plain.own_wait, own.own_wait, off.own_wait) == (False, True, True)
    assert quiescence((plain,), 100.0, 100.0, default) == 5.0
    assert quiescence((plain,), 100.0, 339.0, default) == 1.0  # 4 minutes after the first change at most
    assert quiescence((own,), 100.0, 100.0, default) == 2.0
    assert quiescence((off,), 100.0, 100.0, default) == 0.0
    assert quiescence((plain,), 100.0, 100.0) == 0.0  # no client default: at once


def test_the_clients_template_wait_is_read_from_client_template_wait(tmp_path):
    from runtime.config import load_files

    path = tmp_path / "c.toml"
    path.write_text('[client.template.wait]\nmin = "2s"\nmax = "1m"\n')
    assert load_files([str(path)])[0].client.template.wait.min_s == 2.0
    assert load_files([str(path)])[0].client.template.wait.max_s == 60.0
    assert load_files([])[0].client.template.wait.min_s == 5.0


def test_reading_more_than_max_deps_variables_fails_the_render_where_it_happens() -> None:
    text = '{{ range $i := 4 }}{{ with nomadVar (printf "nomad/jobs/v%d" $i) }}{{ end }}{{ end }}'
    r = render_task((T,), (text,), {}, {}, "default", max_deps=3)
    assert r.error.endswith("error calling nomadVar: templates read more than 3 variables and services"), \
        r.error
    assert len(r.deps) == 3
    again = '{{ range 10 }}{{ with nomadVar "nomad/jobs/a" }}{{ end }}{{ end }}'  # the same one: one dep
    assert render_task((T,), (again,), {}, {}, "default", max_deps=1).error == ""


def test_nomads_default_function_denylist_parses_and_fails_only_when_called() -> None:
    """Nomad's client template.function_denylist (executeTemplate, plugin, writeToFile): as
    consul-template, a denied function is replaced by one that fails with "function is disabled"."""
    assert render('{{ if false }}{{ writeToFile "/etc/x" "" "" "" }}{{ end }}ok', {}).outputs == ("ok",)
    for fn in ("plugin", "writeToFile", "executeTemplate"):
        assert render(f'{{{{ {fn} "x" }}}}', {}).error.endswith(f"error calling {fn}: function is disabled")
    spec = (T,)
    allowed = render_task(spec, ('{{ plugin "x" }}',), {}, {}, "default", denylist=())
    assert allowed.error.endswith("plugin is not supported by this agent")


@pytest.mark.parametrize(("denylist", "text", "denied"), [
    (("env",), '{{ env "A" }}', True),
    (("nomad*",), '{{ nomadVarExists "nomad/jobs" }}', True),
    (("*JSON*",), '{{ toJSON 1 }}', True),
    (("*",), '{{ toUpper "a" }}', True),
    (("*",), '{{ printf "%s" "a" }}', False),  # Go's own functions are not consul-template's to deny
    (("toUpper",), '{{ toLower "A" }}', False),
])
def test_an_operators_function_denylist_takes_names_and_globs(denylist: tuple[str, ...], text: str,
                                                              denied: bool) -> None:
    r = render_task((T,), (text,), {"A": "1"}, {}, "default", denylist=denylist)
    assert r.error.endswith("function is disabled") == denied, r.error


def test_must_env_and_env_or_default_read_the_tasks_environment() -> None:
    env = {"A": "1", "E": ""}
    assert render('{{ mustEnv "A" }} {{ envOrDefault "B" "d" }} {{ envOrDefault "E" "d" }}', {},
                  env).outputs == ("1 d ",)
    assert render('{{ mustEnv "E" }}', {}, env).error.endswith("required environment variable E is empty")


def test_client_template_function_denylist_and_disable_file_sandbox_in_the_agents_config(tmp_path):
    from runtime.config import ConfigError, load_files, validate

    path = tmp_path / "c.toml"
    path.write_text('[client]\nenabled = true\n[client.template]\nfunction_denylist = ["env", "sprig_*"]\n')
    assert load_files([str(path)])[0].client.template.function_denylist == ("env", "sprig_*")
    assert load_files([])[0].client.template.function_denylist == ("executeTemplate", "plugin", "writeToFile")
    path.write_text('[client]\nenabled = true\n[client.template]\ndisable_file_sandbox = true\n')
    with pytest.raises(ConfigError, match=r"client\.template\.disable_file_sandbox: not supported"):
        validate(load_files([str(path)])[0])


def test_the_agent_gives_the_alloc_runner_the_clients_function_denylist(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics
    from runtime.config import load_files, validate

    path = tmp_path / "c.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n[client.template]\n'
                    'function_denylist = ["env"]\n')
    cfg = load_files([str(path)])[0]
    validate(cfg)
    ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                       client_state_dir=str(tmp_path))
    runner = {s.name: dict(s.kwargs) for s in client_specs(cfg, ctx)}["alloc-runner"]["config"]
    assert runner.template_function_denylist == ("env",)


def test_a_wait_without_max_waits_at_most_four_times_its_min() -> None:
    """consul-template's WaitConfig.Finalize: Max defaults to 4 * Min."""
    (w,) = parse_templates([{"DestPath": "x", "Wait": {"Min": 2 * 10**9, "Max": None}}], "T")
    assert (w.wait_min_s, w.wait_max_s) == (2.0, 8.0)
    assert quiescence((w,), first_change=100.0, now=107.0) == 1.0  # cut at 100 + 8


def test_the_clients_wait_bounds_keep_a_templates_own_wait_within_them() -> None:
    short, long_ = parse_templates([
        {"DestPath": "a", "Wait": {"Min": 1 * 10**9, "Max": 2 * 10**9}},
        {"DestPath": "b", "Wait": {"Min": 30 * 10**9, "Max": 600 * 10**9}}], "T")
    assert quiescence((short,), 100.0, 100.0, bounds=(5.0, 60.0)) == 2.0  # min raised to 5, max still 2
    assert quiescence((short,), 100.0, 100.0, bounds=(1.5, 0.0)) == 1.5
    assert quiescence((long_,), 100.0, 140.0, bounds=(0.0, 60.0)) == 20.0  # max cut to 60 s
    assert quiescence((long_,), 100.0, 140.0) == 30.0
    plain = TemplateSpec(dest="c")  # no wait of its own: the client's wait, not bounded
    assert quiescence((plain,), 100.0, 100.0, (1.0, 4.0), bounds=(5.0, 0.0)) == 1.0


def test_client_template_wait_bounds_are_read_checked_and_given_to_the_runner(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics
    from runtime.config import ConfigError, load_files, validate

    path = tmp_path / "c.toml"
    base = f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n'
    path.write_text(base + '[client.template.wait_bounds]\nmin = "2s"\nmax = "1m"\n')
    cfg = load_files([str(path)])[0]
    validate(cfg)
    ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                       client_state_dir=str(tmp_path))
    runner = {s.name: dict(s.kwargs) for s in client_specs(cfg, ctx)}["alloc-runner"]["config"]
    assert runner.template_wait_bounds == (2.0, 60.0)
    assert load_files([])[0].client.template.wait_bounds.max_s == 0.0  # no bounds by default
    path.write_text(base + '[client.template.wait_bounds]\nmin = "2m"\nmax = "1m"\n')
    with pytest.raises(ConfigError, match="wait_bounds: wait config min 120000000000 is greater than max"):
        validate(load_files([str(path)])[0])
    path.write_text(base + '[client.template.wait]\nmin = "10s"\nmax = "5s"\n')
    with pytest.raises(ConfigError, match=r"template\.wait: wait config min 10000000000 is greater"):
        validate(load_files([str(path)])[0])


def test_by_tag_groups_nomad_services_by_their_tags() -> None:
    regs = [{"ID": "a", "ServiceName": "db", "Address": "10.0.0.1", "Port": 1, "Tags": ["primary", "v1"]},
            {"ID": "b", "ServiceName": "db", "Address": "10.0.0.2", "Port": 2, "Tags": ["v1"]}]
    data = {("service", "db"): ("", regs), ("services", ""): ("", [{"Name": "db", "Tags": ["x"]}])}
    r = render('{{ range $tag, $s := nomadService "db" | byTag }}{{ $tag }}:{{ range $s }}{{ .Port }}'
               '{{ end }} {{ end }}{{ range $t, $_ := byTag nomadServices }}{{ $t }}{{ end }}', data)
    assert r.outputs == ("primary:1 v1:12 x",)
    assert render('{{ byTag "x" }}', {}).error.endswith("byTag: wrong argument type "
                                                       "(expected nomadService or nomadServices)")


def test_nomad_retry_backs_off_exponentially_within_max_backoff_then_gives_up() -> None:
    from actors.client.templates import UNBOUNDED_BACKOFF_CAP_S, retry_delay

    assert [retry_delay(i, 12, 0.25, 60.0) for i in range(13)] == [
        0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, None]  # Nomad's defaults
    assert retry_delay(10_000, 0, 0.25, 60.0) == 60.0  # attempts = 0: never gives up
    assert retry_delay(3, 0, 1.0, 0.0) == 8.0  # max_backoff = 0: no cap ...
    assert retry_delay(10_000, 0, 1.0, 0.0) == UNBOUNDED_BACKOFF_CAP_S  # ... but a timer can hold it
    assert retry_delay(0, 1, 5.0, 5.0) == 5.0 and retry_delay(1, 1, 5.0, 5.0) is None


def test_client_template_nomad_retry_is_read_checked_and_given_to_the_runner(tmp_path):
    from actors.agent_specs import AgentContext, client_specs
    from actors.metrics import Metrics
    from runtime.config import ConfigError, load_files, validate

    path = tmp_path / "c.toml"
    base = f'data_dir = "{tmp_path}"\n[client]\nenabled = true\n'
    defaults = load_files([])[0].client.template.nomad_retry
    assert (defaults.attempts, defaults.backoff_s, defaults.max_backoff_s) == (12, 0.25, 60.0)
    path.write_text(base + '[client.template.nomad_retry]\nattempts = 0\nbackoff = "2s"\n')
    cfg = load_files([str(path)])[0]
    validate(cfg)
    ctx = AgentContext(hooks=None, metrics=Metrics(clock=lambda: 0.0),  # type: ignore[arg-type]
                       client_state_dir=str(tmp_path))
    runner = {s.name: dict(s.kwargs) for s in client_specs(cfg, ctx)}["alloc-runner"]["config"]
    assert (runner.template_retry_attempts, runner.template_retry_backoff_s,
            runner.template_retry_max_backoff_s) == (0, 2.0, 60.0)  # max_backoff keeps its default
    path.write_text(base + '[client.template.nomad_retry]\nbackoff = "2m"\nmax_backoff = "1m"\n')
    with pytest.raises(ConfigError, match="nomad_retry: retry config backoff 120000000000 is greater than "
                                          "max_backoff 60000000000"):
        validate(load_files([str(path)])[0])
    path.write_text(base + '[client.template.nomad_retry]\nbackoff = "2m"\nmax_backoff = "0s"\n')
    validate(load_files([str(path)])[0])  # max_backoff = 0: no cap
    path.write_text(base + '[client.template.vault_retry]\nbackoff = "2m"\nmax_backoff = "1m"\n')
    with pytest.raises(ConfigError, match="vault_retry: retry config backoff 120000000000 is greater"):
        validate(load_files([str(path)])[0])
    path.write_text(base + '[client.template.consul_retry]\nattempts = 5\nbackoff = "5s"\n')
    validate(load_files([str(path)])[0])  # a Nomad client's configuration loads
    for bad in ('attempts = -1', 'backoff = "0s"', 'retries = 3'):
        path.write_text(base + f'[client.template.nomad_retry]\n{bad}\n')
        with pytest.raises(ConfigError, match="nomad_retry"):
            validate(load_files([str(path)])[0])


def test_by_port_groups_nomad_services_by_their_ports() -> None:
    regs = [{"ID": "a", "ServiceName": "db", "Address": "10.0.0.1", "Port": 8080, "Tags": []},
            {"ID": "b", "ServiceName": "db", "Address": "10.0.0.2", "Port": 80, "Tags": []},
            {"ID": "c", "ServiceName": "db", "Address": "10.0.0.3", "Port": 8080, "Tags": []}]
    r = render('{{ range $port, $s := nomadService "db" | byPort }}{{ $port }}:{{ range $s }}{{ .Address }},'
               '{{ end }} {{ end }}', {("service", "db"): ("", regs)})
    assert r.outputs == ("80:10.0.0.2, 8080:10.0.0.1,10.0.0.3, ",)
    assert render("{{ byPort nomadServices }}", {("services", ""): ("", [{"Name": "db"}])}).error.endswith(
        "byPort: wrong argument type []*dependency.NomadServicesSnippet")


def test_file_reads_only_inside_the_tasks_directory_once_per_rendering() -> None:
    """consul-template's file with Nomad's sandbox (the task's directory; disable_file_sandbox is refused
    by this agent's config)."""
    reads: list[str] = []
    disk = {"/a/t/local/conf": b"hello", "/a/t/../other": b"x"}

    def read(path: str) -> bytes:
        reads.append(path)
        if path not in disk:
            raise FileNotFoundError(path)
        return disk[path]

    def run(text: str) -> Any:
        return render_task((T,), (text,), {}, {}, "default", read_file=read, sandbox="/a/t")
    text = '{{ file "/a/t/local/conf" }}{{ file " /a/t/local/../local/conf " }}{{ file "" }}'
    assert run(text).outputs == ("hellohello",)
    assert reads == ["/a/t/local/conf"]
    assert run('{{ file "/a/t/../other" }}').error.endswith(
        "error calling file: '/a/t/../other' is outside of sandbox")
    assert run('{{ file "/etc/passwd" }}').error.endswith("'/etc/passwd' is outside of sandbox")
    assert run('{{ file "local/conf" }}').error.endswith("'local/conf' is outside of sandbox")
    assert run('{{ file "/a/t/none" }}').error.endswith(
        "error calling file: failed to resolve target path: lstat /a/t/none: no such file or directory")


def test_timestamp_reads_the_agents_wall_clock() -> None:
    r = render_task((T,), ('{{ timestamp }} {{ timestamp "unix" }}',), {}, {}, "default",
                    wall_clock=lambda: 86400.5)
    assert r.outputs == ("1970-01-02T00:00:00Z 86400",)


def test_the_new_map_functions_take_nomads_values_as_go_does() -> None:
    regs = [{"ID": "a", "ServiceName": "db", "Address": "10.0.0.1", "Port": 1, "Tags": ["x"]}]
    r = render('{{ nomadService "db" | toYAML }}', {("service", "db"): ("", regs)})
    assert r.outputs[0].startswith("- address: 10.0.0.1\n  allocid: null\n")  # yaml.v2: fields in lower case
    r = render('{{ mergeMap (nomadVar "nomad/jobs/web") (parseJSON "{}") }}',
               {("var", "nomad/jobs/web"): ("", VAR)})
    assert r.error.endswith("wrong type for value; expected map[string]interface {}; "
                            "got dependency.NomadVarItems")
    r = render('{{ (nomadVar "nomad/jobs/web").Items | toYAML }}', {("var", "nomad/jobs/web"): ("", VAR)})
    assert r.outputs == ("password: pw\nuser: u",)


def test_template_data_answers_a_service_of_another_namespace_when_asked_for_it() -> None:
    # nomadService "db?ns=prod": Nomad lets a workload read the services of any namespace.
    import msgpack

    from actors.server.alloc_endpoint import template_data

    def reg(i: str, ns: str) -> dict[str, Any]:
        return {"ID": i, "ServiceName": "db", "Namespace": ns, "Tags": [], "Port": 1}

    class State:
        tables = {"nodes": {"n": {"ID": "n", "SecretID": "s"}},
                  "allocs": {"a": {"ID": "a", "NodeID": "n", "Namespace": "default", "JobID": "j",
                                   "TaskGroup": "g", "Job": {"ID": "j"}}},
                  "service_registrations": {"r1": reg("r1", "default"), "r2": reg("r2", "prod")}}

    error, data = template_data(State(), "n", "s", "a", "t", (("service", "db"), ("service", "db?ns=prod")))
    rows = {(k, a): [r["ID"] for r in v] for k, a, _, v in msgpack.unpackb(data)}
    assert error == "" and rows == {("service", "db"): ["r1"], ("service", "db?ns=prod"): ["r2"]}
    # nomadServices: the task's namespace, another, or every one ("?ns=*").
    error, data = template_data(State(), "n", "s", "a", "t",
                                (("services", ""), ("services", "?ns=prod"), ("services", "?ns=*")))
    rows = {(k, a): [(s["Name"], s["Namespace"]) for s in v] for k, a, _, v in msgpack.unpackb(data)}
    assert error == "" and rows == {("services", ""): [("db", "default")],
                                    ("services", "?ns=prod"): [("db", "prod")],
                                    ("services", "?ns=*"): [("db", "default"), ("db", "prod")]}


def test_nomad_services_takes_consul_templates_query_and_gives_each_services_namespace() -> None:
    listed = [{"Name": "web", "Namespace": "default", "Tags": ["b", "a"]},
              {"Name": "db", "Namespace": "prod", "Tags": []}]
    r = render('{{ range nomadServices "?ns=*" }}{{ .Name }}@{{ .Namespace }}{{ .Tags }} {{ end }}',
               {("services", "?ns=*"): ("", listed)})
    assert r.outputs == ("db@prod[] web@default[a b] ",) and r.deps == (("services", "?ns=*"),)
    own = render('{{ range nomadServices "?ns=default" }}{{ .Name }}{{ end }}',
                 {("services", ""): ("", listed)})
    assert own.outputs == ("dbweb",) and own.deps == (("services", ""),)
    assert render('{{ nomadServices "web" }}', {}).error.endswith('nomad.services: invalid format: "web"')
