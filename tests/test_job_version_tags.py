"""Job version tags (Nomad 1.9): the state machine's rules (duplicate names, unknown versions, tags
kept past job_tracked_versions, a revert's new version untagged), ``PUT|DELETE
/v1/job/<id>/versions/<name>/tag``, ``nomad job tag apply|unset``, ``job history`` and ``job revert
<job> <tag>``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actors.scheduler.job import canonical_job
from actors.state.store import StateStore, command

pytestmark = pytest.mark.timeout(180)


def _job(i: int, job_id: str = "j", **extra) -> dict:
    return canonical_job({"ID": job_id, "Meta": {"v": str(i)}, **extra, "TaskGroups": [{
        "Name": "g", "Count": 0, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                            "Config": {"command": "/bin/true"}}]}]})


def _apply(st: StateStore, op: str, **args) -> dict:
    return st.apply(st.applied_index + 1, command(op, **args))


def _tag(st: StateStore, name: str, version: int = 0, latest: bool = False, job_id: str = "j") -> dict:
    return _apply(st, "job_version_tag", job_id=job_id, name=name, version=version, latest=latest,
                  tag={"Name": name, "Description": f"about {name}", "TaggedTime": 7})


def _tags(st: StateStore, job_id: str = "j") -> dict[int, str]:
    return {v["Version"]: v["VersionTag"]["Name"] for v in st.job_versions(job_id) if v.get("VersionTag")}


def test_a_tag_names_one_version_refuses_duplicates_and_unknown_versions_and_can_be_unset():
    st = StateStore()
    for i in range(3):
        assert _apply(st, "job_register", job=_job(i), now=1.0)["ok"]
    r = _tag(st, "golden", version=1)
    assert r["ok"] and r["tag"] == {"Name": "golden", "Description": "about golden", "TaggedTime": 7}
    assert _tags(st) == {1: "golden"}
    assert st.job_versions("j")[1]["ModifyIndex"] == st.applied_index
    dup = _tag(st, "golden", version=2)
    assert dup["error"] == 'tag "golden" already exists on a different version of job "j"'
    assert _tag(st, "golden", version=1)["ok"]  # the same version again: a new description, say
    assert _tag(st, "x", version=9)["error"] == 'job "j" version 9 not found'
    assert _tag(st, "latest", latest=True)["ok"] and _tags(st) == {1: "golden", 2: "latest"}
    assert st.tables["jobs"]["j"]["VersionTag"]["Name"] == "latest"  # the current version is the job
    gone = _apply(st, "job_version_tag", job_id="j", name="nope", tag=None)
    assert gone["error"] == 'tag "nope" not found on job "j"'
    assert _apply(st, "job_version_tag", job_id="j", name="latest", tag=None)["ok"]
    assert _tags(st) == {1: "golden"} and st.tables["jobs"]["j"]["VersionTag"] is None


def test_tagged_versions_outlive_job_tracked_versions_and_new_versions_carry_no_tag():
    st = StateStore(job_tracked_versions=3)
    assert _apply(st, "job_register", job=_job(0), now=1.0)["ok"]
    assert _tag(st, "first")["ok"]
    for i in range(1, 6):
        assert _apply(st, "job_register", job=_job(i), now=1.0)["ok"]
    # Three untagged versions (the current one among them), and the tagged one however old.
    assert [v["Version"] for v in st.job_versions("j")] == [5, 4, 3, 0]
    assert _tags(st) == {0: "first"}
    r = _apply(st, "job_revert", job_id="j", version=0, now=2.0)
    assert r["ok"], r
    current = st.tables["jobs"]["j"]
    assert current["Version"] == 6 and current["Meta"] == {"v": "0"} and not current.get("VersionTag")
    assert _tags(st) == {0: "first"}
    # A registration with a VersionTag of its own (a job inspected and run again) gets none.
    assert _apply(st, "job_register", job=_job(9, VersionTag={"Name": "first"}), now=3.0)["ok"]
    assert _tags(st) == {0: "first"}


def test_job_gc_keeps_a_dead_job_with_a_tagged_version():
    from actors.state.core_gc import job_gc_candidates

    st = StateStore()
    for i in range(2):
        assert _apply(st, "job_register", job=_job(i), now=1.0)["ok"]
    assert _tag(st, "keep", version=0)["ok"]
    # Dead, its evaluations done (as the scheduler and its allocations ending would leave it).
    st.tables["jobs"]["j"] = {**st.tables["jobs"]["j"], "Status": "dead"}
    for eid, ev in list(st.tables["evals"].items()):
        st.tables["evals"][eid] = {**ev, "Status": "complete", "ModifyTime": 0.0}
    assert job_gc_candidates(st.tables, cutoff=1e12) == []
    gc = dict(cutoff=1e12, batch_cutoff=1e12, job_cutoff=1e12)
    assert _apply(st, "core_gc", jobs=["j"], **gc)["ok"] and "j" in st.tables["jobs"]  # re-checked at apply
    assert _apply(st, "job_version_tag", job_id="j", name="keep", tag=None)["ok"]
    assert job_gc_candidates(st.tables, cutoff=1e12) == ["j"]
    assert _apply(st, "core_gc", jobs=["j"], **gc)["ok"] and "j" not in st.tables["jobs"]


# ---------------------------------------------------------------- over HTTP and the CLI

from tests.test_cli import NOMAD  # noqa: E402
from tests.test_http_jobs import call, dev, sleep_job  # noqa: E402,F401


def nomad(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, NOMAD, f"-address=http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=60)


def test_version_tags_over_http_and_the_cli(dev):  # noqa: F811
    port = dev.http_port
    for meta in ("a", "b"):
        job = {**sleep_job("tagged", count=0), "Meta": {"m": meta}}
        assert call(port, "PUT", "/v1/jobs", {"Job": job}).status == 200
    r = call(port, "PUT", "/v1/job/tagged/versions/golden/tag", {"Version": 0, "Description": "first"})
    assert r.status == 200, r.text
    body = r.json()
    assert (body["Name"], body["Description"]) == ("golden", "first") and body["TaggedTime"] > 10 ** 18
    assert int(r.headers["x-nomad-index"]) == body["Index"]
    versions = call(port, "GET", "/v1/job/tagged/versions").json()["Versions"]
    assert [(v["Version"], (v["VersionTag"] or {}).get("Name")) for v in versions] == \
        [(1, None), (0, "golden")]
    dup = call(port, "PUT", "/v1/job/tagged/versions/golden/tag", {"Version": 1})
    assert (dup.status, dup.text) == \
        (500, 'tag "golden" already exists on a different version of job "tagged"')
    r = call(port, "PUT", "/v1/job/tagged/versions/x/tag", {"Version": 1, "Latest": True})
    assert (r.status, r.text) == (400, "version must be zero when tagging latest, got: 1")
    r = call(port, "PUT", "/v1/job/tagged/versions/x/tag", {"Version": 7})
    assert r.text == 'job "tagged" version 7 not found'
    assert call(port, "PUT", "/v1/job/tagged/versions/tag", {"Version": 0}).status == 404  # Nomad's 4 parts
    # The CLI: tag the current version, see the tags in history, revert by name, unset.
    out = nomad(port, "job", "tag", "apply", "-name", "second", "-description", "the b one", "tagged")
    assert (out.returncode, out.stdout.strip()) == (0, 'Job version 1 tagged with name "second"'), out.stderr
    hist = nomad(port, "job", "history", "tagged").stdout
    assert "Tag Name        = second" in hist and "Tag Description = the b one" in hist
    assert "Tag Name        = golden" in hist
    # Diffs against a tagged version (Nomad 1.9's diff_tag / diff_version, job history -diff-tag).
    got = call(port, "GET", "/v1/job/tagged/versions?diffs=true&diff_tag=golden").json()
    assert [d["Type"] for d in got["Diffs"]] == ["Edited", "None"]
    got = call(port, "GET", "/v1/job/tagged/versions?diffs=true&diff_version=1").json()
    assert [d["Type"] for d in got["Diffs"]] == ["None", "Edited"]
    r = call(port, "GET", "/v1/job/tagged/versions?diffs=true&diff_tag=nope")
    assert (r.status, r.text) == (404, 'tag "nope" not found')
    hist = nomad(port, "job", "history", "-p", "-diff-tag", "golden", "tagged")
    assert hist.returncode == 0 and 'Meta[m]: "a" => "b"' in hist.stdout, hist.stderr
    assert "-diff-tag and -diff-version can only be used with -p" in \
        nomad(port, "job", "history", "-diff-tag", "golden", "tagged").stderr
    out = nomad(port, "job", "tag", "apply", "tagged")
    assert out.returncode == 1 and "A version tag name is required" in out.stderr
    out = nomad(port, "job", "revert", "-detach", "tagged", "golden")
    assert out.returncode == 0, out.stderr
    job = call(port, "GET", "/v1/job/tagged").json()
    assert (job["Version"], job["Meta"], job["VersionTag"]) == (2, {"m": "a"}, None)
    out = nomad(port, "job", "revert", "tagged", "nope")
    assert out.returncode == 1 and "version tag nope not found for job tagged" in out.stderr
    out = nomad(port, "job", "tag", "unset", "-name", "second", "tagged")
    assert (out.returncode, out.stdout.strip()) == (0, 'Tag "second" removed from job "tagged"'), out.stderr
    out = nomad(port, "job", "tag", "unset", "-name", "second", "tagged")
    assert out.returncode == 1 and 'tag "second" not found on job "tagged"' in out.stderr
    assert call(port, "DELETE", "/v1/job/tagged/versions/golden/tag").status == 200
    versions = call(port, "GET", "/v1/job/tagged/versions").json()["Versions"]
    assert all(v["VersionTag"] is None for v in versions)
