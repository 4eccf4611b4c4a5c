"""Nomad's structured job diff (actors.scheduler.jobdiff) and ``nomad job plan``'s printing of it."""

from __future__ import annotations

import copy
from typing import Any

import runtime.cli  # noqa: F401 - runtime.cli_jobs is imported through it (they import each other)
from actors.scheduler.job import canonical_job
from actors.scheduler.jobdiff import annotate, job_diff
from runtime.cli_jobs import format_job_diff

SEC = 1_000_000_000


def _job(task_extra: dict[str, Any] | None = None, group_extra: dict[str, Any] | None = None,
         **extra: Any) -> dict[str, Any]:
    task = {"Name": "redis", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["60"]},
            "Env": {"FOO": "bar"}, "Resources": {"CPU": 500, "MemoryMB": 256}, **(task_extra or {})}
    group = {"Name": "cache", "Count": 1, "EphemeralDisk": {"SizeMB": 200}, "Tasks": [task],
             **(group_extra or {})}
    return canonical_job({"ID": "example", "Type": "service", "Datacenters": ["dc1"], "TaskGroups": [group],
                          "Meta": {"owner": "ops", "team": "a"}, **extra})


def _edit(job: dict[str, Any], fn: Any) -> dict[str, Any]:
    new = copy.deepcopy(job)
    fn(new, new["TaskGroups"][0], new["TaskGroups"][0]["Tasks"][0])
    return new


def _f(kind: str, name: str, old: str = "", new: str = "", notes: list[str] | None = None) -> dict[str, Any]:
    return {"Type": kind, "Name": name, "Old": old, "New": new, "Annotations": notes}


def _obj(diff: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [o for o in diff["Objects"] or () if o["Name"] == name]


def test_an_unchanged_job_is_none_whatever_the_servers_fields() -> None:
    old = _job()
    new = {**old, "Version": 3, "ModifyIndex": 99, "JobModifyIndex": 98, "Status": "running", "SubmitTime": 7}
    d = job_diff(old, new)
    assert d["Type"] == "None" and d["Fields"] is None and d["Objects"] is None
    (g,) = d["TaskGroups"]
    assert g["Type"] == "None" and g["Tasks"][0]["Type"] == "None" and g["Tasks"][0]["Objects"] is None


def test_a_scalar_change_is_one_edited_field_with_go_text() -> None:
    old = _job()
    d = job_diff(old, _edit(old, lambda j, g, t: (j.update(Priority=70, AllAtOnce=True),
                                                   t.update(KillTimeout=7 * SEC))))
    assert d["Type"] == "Edited"
    # a Go bool is always there: false to true is an edit
    assert d["Fields"] == [_f("Edited", "AllAtOnce", "false", "true"), _f("Edited", "Priority", "50", "70")]
    task = d["TaskGroups"][0]["Tasks"][0]
    assert task["Type"] == "Edited"
    assert task["Fields"] == [_f("Edited", "KillTimeout", "5000000000", "7000000000")]


def test_a_nested_object_edit_is_an_object_diff_contextual_or_not() -> None:
    old = _job()
    new = _edit(old, lambda j, g, t: (g["EphemeralDisk"].update(SizeMB=250), t["Resources"].update(CPU=600)))
    plain = job_diff(old, new, contextual=False)["TaskGroups"][0]
    assert _obj(plain, "EphemeralDisk") == [{"Type": "Edited", "Name": "EphemeralDisk", "Objects": None,
                                             "Fields": [_f("Edited", "SizeMB", "200", "250")]}]
    assert _obj(plain["Tasks"][0], "Resources")[0]["Fields"] == [_f("Edited", "CPU", "500", "600")]
    # contextual (what the plan asks for): the unchanged fields of the edited block come along, Type None
    ctx = job_diff(old, new, contextual=True)["TaskGroups"][0]
    assert _obj(ctx, "EphemeralDisk")[0]["Fields"] == [
        _f("None", "Migrate", "false", "false"), _f("Edited", "SizeMB", "200", "250"),
        _f("None", "Sticky", "false", "false")]
    # with Nomad's fields the job leaves out, at Go's zero values
    assert _obj(ctx["Tasks"][0], "Resources")[0]["Fields"] == [
        _f("Edited", "CPU", "500", "600"), _f("None", "Cores", "0", "0"), _f("None", "DiskMB", "0", "0"),
        _f("None", "IOPS", "0", "0"), _f("None", "MemoryMB", "256", "256"),
        _f("None", "MemoryMaxMB", "0", "0"), _f("None", "SecretsMB", "0", "0")]
    # blocks that did not change are not there at all, contextual or not
    assert {o["Name"] for o in ctx["Objects"]} == {"EphemeralDisk"}
    assert {o["Name"] for o in ctx["Tasks"][0]["Objects"]} == {"Resources"}


def test_map_keys_added_removed_and_edited_are_fields_named_by_key() -> None:
    old = _job()

    def edit(j: dict, g: dict, t: dict) -> None:
        j["Meta"] = {"owner": "dev", "new": "x"}           # owner edited, team removed, new added
        t["Env"] = {"FOO": "bar", "BAZ": "1"}
    d = job_diff(old, _edit(old, edit))
    assert d["Fields"] == [_f("Added", "Meta[new]", new="x"), _f("Edited", "Meta[owner]", "ops", "dev"),
                           _f("Deleted", "Meta[team]", old="a")]
    assert d["TaskGroups"][0]["Tasks"][0]["Fields"] == [_f("Added", "Env[BAZ]", new="1")]


def test_a_task_config_is_flattened_whole() -> None:
    old = _job()
    d = job_diff(old, _edit(old, lambda j, g, t: t["Config"].update(
        args=["61", "-v"], port_map=[{"db": 6379}])))
    (config,) = _obj(d["TaskGroups"][0]["Tasks"][0], "Config")
    assert config["Type"] == "Edited" and config["Fields"] == [
        _f("Edited", "args[0]", "60", "61"), _f("Added", "args[1]", new="-v"),
        _f("None", "command", "/bin/sleep", "/bin/sleep"), _f("Added", "port_map[0][db]", new="6379")]


def test_lists_of_blocks_are_sets_added_and_deleted_whole() -> None:
    linux = {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}
    old = _job(Constraints=[linux])
    new = _edit(old, lambda j, g, t: j.update(Constraints=[
        {"LTarget": "${attr.kernel.name}", "RTarget": "darwin", "Operand": "="}]))
    cons = job_diff(old, new)["Objects"]
    # a constraint is known by its text: an edit is the old one deleted and the new one added
    assert [(o["Name"], o["Type"]) for o in cons] == [("Constraint", "Added"), ("Constraint", "Deleted")]
    assert cons[0]["Fields"] == [_f("Added", "LTarget", new="${attr.kernel.name}"),
                                 _f("Added", "Operand", new="="), _f("Added", "RTarget", new="darwin")]
    assert cons[1]["Fields"][2] == _f("Deleted", "RTarget", old="linux")
    gone = job_diff(old, _edit(old, lambda j, g, t: j.update(Constraints=[])))
    assert [(o["Name"], o["Type"]) for o in gone["Objects"]] == [("Constraint", "Deleted")]


def test_templates_are_matched_by_destination_and_services_by_name() -> None:
    old = _job(task_extra={"Templates": [{"EmbeddedTmpl": "a", "DestPath": "local/a.txt"}]},
               group_extra={"Services": [{"Name": "web", "Tags": ["x"]}]})

    def edit(j: dict, g: dict, t: dict) -> None:
        t["Templates"][0]["EmbeddedTmpl"] = "b"
        t["Templates"].append({**t["Templates"][0], "DestPath": "local/b.txt"})
        g["Services"][0]["Tags"] = ["x", "y"]
    d = job_diff(old, _edit(old, edit), contextual=False)
    task = d["TaskGroups"][0]["Tasks"][0]
    kinds = sorted((o["Type"], next(f["New"] or f["Old"] for f in o["Fields"] if f["Name"] == "DestPath")
                    if o["Type"] == "Added" else "") for o in _obj(task, "Template"))
    assert kinds == [("Added", "local/b.txt"), ("Edited", "")]
    edited = next(o for o in _obj(task, "Template") if o["Type"] == "Edited")
    assert edited["Fields"] == [_f("Edited", "EmbeddedTmpl", "a", "b")]
    (service,) = _obj(d["TaskGroups"][0], "Service")
    assert service["Type"] == "Edited" and service["Fields"] is None
    assert service["Objects"] == [{"Type": "Added", "Name": "Tags", "Fields": [_f("Added", "Tags", new="y")],
                                   "Objects": None}]


def test_a_whole_group_or_task_added_and_deleted() -> None:
    old = _job()

    def edit(j: dict, g: dict, t: dict) -> None:
        g["Tasks"].append({**copy.deepcopy(t), "Name": "side"})
        j["TaskGroups"].append({**copy.deepcopy(g), "Name": "extra"})
    new = _edit(old, edit)
    d = annotate(job_diff(old, new), {"cache": {"InPlaceUpdate": 1}, "extra": {"Place": 1}})
    cache, extra = d["TaskGroups"]
    assert (cache["Name"], cache["Type"]) == ("cache", "Edited")
    assert (extra["Name"], extra["Type"]) == ("extra", "Added")
    assert [(t["Name"], t["Type"], t["Annotations"]) for t in cache["Tasks"]] == [
        ("redis", "None", None), ("side", "Added", ["forces create/destroy update"])]
    assert [(t["Name"], t["Type"], t["Annotations"]) for t in extra["Tasks"]] == [
        ("redis", "Added", ["forces create"]), ("side", "Added", ["forces create"])]
    assert extra["Updates"] == {"create": 1} and cache["Updates"] == {"in-place update": 1}
    assert _f("Added", "Count", new="1", notes=["forces create"]) in extra["Fields"]
    back = annotate(job_diff(new, old), {"cache": {}})
    assert [(g["Name"], g["Type"]) for g in back["TaskGroups"]] == [("cache", "Edited"), ("extra", "Deleted")]
    assert back["TaskGroups"][1]["Tasks"][0]["Annotations"] == ["forces destroy"]
    assert back["TaskGroups"][0]["Tasks"][1]["Type"] == "Deleted" and back["TaskGroups"][0]["Updates"] == {}
    added = job_diff(None, old)
    assert added["Type"] == "Added" and added["TaskGroups"][0]["Type"] == "Added"


def test_a_task_change_is_annotated_in_place_or_destructive_as_nomad() -> None:
    old = _job(task_extra={"Services": [{"Name": "db", "Tags": ["a"]}]})

    def note(fn: Any) -> list[str]:
        d = annotate(job_diff(old, _edit(old, fn)), {})
        return d["TaskGroups"][0]["Tasks"][0]["Annotations"]
    assert note(lambda j, g, t: t.update(KillTimeout=9 * SEC)) == ["forces in-place update"]
    assert note(lambda j, g, t: t["Services"][0].update(Tags=["b"])) == ["forces in-place update"]
    assert note(lambda j, g, t: t.update(Driver="exec")) == ["forces create/destroy update"]
    assert note(lambda j, g, t: t["Resources"].update(MemoryMB=300)) == ["forces create/destroy update"]


def test_nomad_job_plan_prints_the_diff_aligned_as_nomad() -> None:
    old = _job()

    def edit(j: dict, g: dict, t: dict) -> None:
        g["EphemeralDisk"]["SizeMB"] = 250
        t["Config"]["args"] = ["61"]
        t["Resources"]["CPU"] = 600
        j["Meta"]["owner"] = "dev"
    d = annotate(job_diff(old, _edit(old, edit)), {"cache": {"DestructiveUpdate": 1}})
    assert format_job_diff(d, verbose=False) == "\n".join([
        '+/- Job: "example"',
        '+/- Meta[owner]: "ops" => "dev"',
        '+/- Task Group: "cache" (1 create/destroy update)',
        '  +/- EphemeralDisk {',
        '        Migrate: "false"',
        '    +/- SizeMB:  "200" => "250"',
        '        Sticky:  "false"',
        '      }',
        '  +/- Task: "redis" (forces create/destroy update)',
        '    +/- Config {',
        '      +/- args[0]: "60" => "61"',
        '          command: "/bin/sleep"',
        '        }',
        '    +/- Resources {',
        '      +/- CPU:         "500" => "600"',
        '          Cores:       "0"',
        '          DiskMB:      "0"',
        '          IOPS:        "0"',
        '          MemoryMB:    "256"',
        '          MemoryMaxMB: "0"',
        '          SecretsMB:   "0"',
        '        }',
    ])


def test_nomad_job_plan_verbose_expands_what_is_added() -> None:
    old = _job()
    new = canonical_job(_edit(old, lambda j, g, t: g["Tasks"].append(
        {"Name": "side", "Driver": "raw_exec", "Config": {"command": "/bin/true"}})))
    d = annotate(job_diff(old, new), {"cache": {"DestructiveUpdate": 1}})
    short = format_job_diff(d, verbose=False)
    assert short == "\n".join([
        '+/- Job: "example"',
        '+/- Task Group: "cache" (1 create/destroy update)',
        '    Task: "redis"',  # aligned after the longest marker among the group's tasks ("+ ")
        '  + Task: "side" (forces create/destroy update)'])
    long = format_job_diff(d, verbose=True).splitlines()
    assert long[3:7] == ['  + Task: "side" (forces create/destroy update)',
                         '    + Driver:        "raw_exec"',
                         '    + KillTimeout:   "5000000000"',
                         '    + Leader:        "false"']
    assert '    + Config {' in long and '      + command: "/bin/true"' in long and '      }' in long
    new_job = annotate(job_diff(None, old), {"cache": {"Place": 1}})
    assert format_job_diff(new_job, verbose=False) == "\n".join([
        '+ Job: "example"', '+ Task Group: "cache" (1 create)', '  + Task: "redis" (forces create)'])
    same = annotate(job_diff(old, old), {"cache": {"Ignore": 1}})
    assert format_job_diff(same, verbose=False) == "\n".join([
        'Job: "example"', 'Task Group: "cache" (1 ignore)', '  Task: "redis"'])


def test_nomad_job_plan_aligns_unchanged_and_deleted_groups_after_the_longest_marker() -> None:
    old = _job()
    old["TaskGroups"].append({**copy.deepcopy(old["TaskGroups"][0]), "Name": "gone"})
    old["TaskGroups"].append({**copy.deepcopy(old["TaskGroups"][0]), "Name": "same"})

    def edit(j: dict, g: dict, t: dict) -> None:
        j["Datacenters"] = ["dc1", "dc2"]
        g["Count"] = 2
        del j["TaskGroups"][1]
    d = annotate(job_diff(old, _edit(old, edit)), {"cache": {"Place": 1, "Ignore": 1}, "gone": {"Stop": 1},
                                                   "same": {"Ignore": 1}})
    assert format_job_diff(d, verbose=False) == "\n".join([
        '+/- Job: "example"',
        '+   Datacenters {',
        '    + Datacenters: "dc2"',  # Nomad sorts fields by name, then old value ("" first)
        '      Datacenters: "dc1"',
        '    }',
        '+/- Task Group: "cache" (1 create, 1 ignore)',
        '  +/- Count: "1" => "2" (forces create)',
        '      Task: "redis"',
        '',
        '-   Task Group: "gone" (1 destroy)',
        '    - Task: "redis" (forces destroy)',  # a group's tasks start two past its own padding
        '',
        '    Task Group: "same" (1 ignore)',
        '      Task: "redis"',
    ])
