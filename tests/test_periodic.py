"""Periodic jobs: cron schedules, the store's launches, and the leader's PeriodicDispatcher in the simulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from actors.raft.peer import Propose, RaftPeer
from actors.raft.storage import MemoryStorage
from actors.scheduler.cron import CronError, parse_cron
from actors.scheduler.job import JobError, canonical_job
from actors.scheduler.periodic import PERIODIC, PeriodicDispatcher
from actors.state.store import command
from sim.runtime import Scheduler
from tests.test_scheduler import Cluster, service

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 26, 19, 31, 20, tzinfo=UTC).timestamp()  # a Thursday


def at(spec: str, zone: str = "UTC", after: float = T0) -> str:
    return dt.datetime.fromtimestamp(parse_cron(spec, zone).next_after(after), UTC).strftime("%a %Y-%m-%d %H:%M")


@pytest.mark.parametrize(("spec", "zone", "want"), [
    ("*/5 * * * *", "UTC", "Thu 2026-11-26 19:35"),
    ("0 9 * * mon-fri", "UTC", "Fri 2026-11-27 09:00"),
    ("0 9 * * 6,7", "UTC", "Sat 2026-11-28 09:00"),
    ("@daily", "UTC", "Fri 2026-11-27 00:00"),
    ("@hourly", "UTC", "Thu 2026-11-26 20:00"),
    ("30 2 1 * *", "UTC", "Tue 2026-12-01 02:30"),
    ("0 0 29 2 *", "UTC", "Tue 2028-02-29 00:00"),
    ("0 12 13 * fri", "UTC", "Fri 2026-11-27 12:00"),  # both day fields restricted: either matches
    ("0 9 * * *", "America/New_York", "Fri 2026-11-27 14:00"),
    ("0-10/5 20 * jan,nov *", "UTC", "Thu 2026-11-26 20:00"),
])
def test_cron_next_launch(spec: str, zone: str, want: str) -> None:
    assert at(spec, zone) == want


@pytest.mark.parametrize(("spec", "zone", "want"), [  # after Thu 2026-11-26 19:31:20 UTC
    ("*/15 * * * * * *", "UTC", "19:31:30"),  # seven fields: the first is seconds
    ("10 * * * * *", "UTC", "20:10:00"),  # six: minute .. day of week, then the year
    ("0 0 0 1 1 * 2028", "UTC", "2028-01-01 00:00:00"),
    ("0 0 1 1 * 2030-2040/5", "UTC", "2030-01-01 00:00:00"),
    ("0 0 L * *", "UTC", "2026-11-30 00:00:00"),  # the month's last day
    ("0 0 LW 1 *", "UTC", "2027-01-29 00:00:00"),  # last weekday: the 31st is a Sunday
    ("0 0 1W * *", "UTC", "2026-12-01 00:00:00"),  # Tuesday: itself
    ("0 0 15W 8 *", "UTC", "2027-08-16 00:00:00"),  # the 15th is a Sunday: Monday the 16th
    ("0 0 1W 5 *", "UTC", "2027-05-03 00:00:00"),  # Saturday the 1st: not back into April
    ("0 0 * * 5L", "UTC", "2026-11-27 00:00:00"),  # the last Friday of November
    ("0 0 * * fri#2", "UTC", "2026-12-11 00:00:00"),
    ("0 0 * * 1/2", "UTC", "2026-11-27 00:00:00"),  # Mon, Wed, Fri -- not Sunday (7)
    ("0 0 * * 5-7", "UTC", "2026-11-27 00:00:00"),
    ("0 9 ? * MONDAY", "UTC", "2026-11-30 09:00:00"),
    ("0 0 1 january *", "UTC", "2027-01-01 00:00:00"),
    ("@weekly", "UTC", "2026-11-29 00:00:00"),
    ("*/20 * * * * * *", "Asia/Kolkata", "19:31:40"),
])
def test_cron_takes_cronexprs_seconds_years_and_special_days(spec: str, zone: str, want: str) -> None:
    got = dt.datetime.fromtimestamp(parse_cron(spec, zone).next_after(T0), UTC)
    assert got.strftime("%H:%M:%S" if len(want) == 8 else "%Y-%m-%d %H:%M:%S") == want


def test_cron_across_daylight_saving_changes_never_goes_back_in_time() -> None:
    ny = "America/New_York"
    second_125 = dt.datetime(2024, 11, 3, 6, 25, tzinfo=UTC).timestamp()  # 01:25 EST, the hour's second pass
    first_125 = dt.datetime(2024, 11, 3, 5, 25, tzinfo=UTC).timestamp()  # 01:25 EDT, its first
    assert at("*/20 * * * *", ny, second_125) == "Sun 2024-11-03 06:40"  # 01:40 EST, not 01:40 EDT
    assert at("*/20 * * * *", ny, first_125) == "Sun 2024-11-03 05:40"  # 01:40 EDT
    before_gap = dt.datetime(2024, 3, 10, 6, 0, tzinfo=UTC).timestamp()  # 01:00 EST; 02:xx never exists
    assert at("30 2 * * *", ny, before_gap) == "Mon 2024-03-11 06:30"  # skipped that day
    t = second_125
    for _ in range(20):  # strictly increasing through the change
        nxt = parse_cron("*/20 * * * *", ny).next_after(t)
        assert nxt > t
        t = nxt


@pytest.mark.parametrize("spec", ["* * *", "61 * * * *", "0 0 30 2 *", "* * * * funday", "*/0 * * * *",
                                  "5-1 * * * *", "@midnight", "* * * * * 1969", "* * * * * 2100",
                                  "60 * * * * * *", "* * * 31W * *", "* * * * 8L", "* * * * 5#6",
                                  "*/² * * * *", "* * * ² *"])  # "²": str.isdigit, not int()
def test_bad_cron_specs_are_refused(spec: str) -> None:
    with pytest.raises(CronError):
        parse_cron(spec)
    with pytest.raises(CronError):
        parse_cron("* * * * *", "Mars/Olympus")


def periodic(spec: str = "*/5 * * * *", **extra: Any) -> dict[str, Any]:
    return canonical_job({**service(job_id="nightly", count=1, Type="batch"),
                          "Periodic": {"Spec": spec, **extra}})


def test_a_periodic_job_runs_only_its_launches_each_once() -> None:
    c = Cluster()
    c.node(0)
    c.now = T0
    assert c.apply("job_register", job=periodic())["EvalID"] == ""  # the parent never runs itself
    c.now = T0 + 220
    res = c.apply("periodic_launch", job_id="nightly", launch=T0 + 220)
    assert res["ok"] and res["JobID"] == f"nightly/periodic-{int(T0 + 220)}" and res["EvalID"]
    child = c.state.tables["jobs"][res["JobID"]]
    assert child["ParentID"] == "nightly" and "Periodic" not in child and child["Type"] == "batch"
    c.now = T0 + 221
    assert c.apply("periodic_launch", job_id="nightly", launch=T0 + 220)["skipped"]
    c.schedule()
    assert len(c.running(res["JobID"])) == 1 and c.running("nightly") == []
    assert c.state.tables["periodic_launch"]["nightly"]["Launch"] == T0 + 220


def a_running_launch_that_prohibits_overlap() -> tuple[Cluster, str]:
    """A periodic job with ProhibitOverlap, launched at T0, its child running: (cluster, child ID)."""
    c = Cluster()
    c.node(0)
    c.apply("job_register", job=periodic(ProhibitOverlap=True))
    c.now = T0
    first = c.apply("periodic_launch", job_id="nightly", launch=T0)["JobID"]
    c.schedule()
    c.client("running")
    return c, first


def test_prohibit_overlap_skips_a_launch_while_the_last_child_runs_unless_forced() -> None:
    c, first = a_running_launch_that_prohibits_overlap()
    assert c.state.tables["jobs"][first]["Status"] == "running"
    c.now = T0 + 300
    skipped = c.apply("periodic_launch", job_id="nightly", launch=T0 + 300)
    assert skipped["skipped"] == f"{first} still running"
    c.now = T0 + 301
    forced = c.apply("periodic_launch", job_id="nightly", launch=T0 + 301, force=True)
    assert forced["JobID"] == f"nightly/periodic-{int(T0 + 301)}"
    # Forced again within the same second (`nomad job periodic force` twice): Nomad's ForceEval registers
    # the same derived job again, with an evaluation; it was refused (409 "not launched: ... exists").
    again = c.apply("periodic_launch", job_id="nightly", launch=T0 + 301.5, force=True)
    assert again["ok"] and not again.get("skipped") and again["EvalID"] and again["JobID"] == forced["JobID"]
    c.now = T0
    assert c.apply("periodic_launch", job_id="nope", launch=T0)["error"] == "job not found"
    c.register(**service())
    c.now = T0
    assert c.apply("periodic_launch", job_id="web", launch=T0, force=True)["error"] == \
        "can't force launch non-periodic job"  # Periodic.Force's words
    c.apply("job_deregister", job_id="nightly")
    assert c.apply("periodic_launch", job_id="nightly", launch=T0 + 400, force=True)["error"] == \
        'force launch for job "nightly" failed: can\'t force run non-tracked job "nightly" (default)'


def test_periodic_jobs_are_validated() -> None:
    for job, message in [({**service(), "Periodic": {"Spec": "@daily"}},
                          'Periodic can only be used with "batch" or "sysbatch" scheduler'),
                         ({**service(Type="batch"), "Periodic": {"Spec": "61 * * * *"}}, "Periodic.Spec"),
                         ({**service(Type="batch"), "Periodic": {}}, "Periodic.Spec"),
                         ({**service(Type="batch"), "Periodic": {"Spec": "@daily", "TimeZone": "Nowhere"}},
                          "unknown time zone")]:
        with pytest.raises(JobError, match=message):
            canonical_job(job)


def test_the_leaders_dispatcher_launches_on_schedule_in_virtual_time() -> None:
    sched = Scheduler(7)
    base = dt.datetime(2026, 11, 26, 19, 30, 30, tzinfo=UTC).timestamp()
    wall = lambda: base + sched.now  # noqa: E731 - the dispatcher's wall clock, in virtual time

    def boot(env: Any) -> None:
        env.spawn(RaftPeer, "raft", storage=MemoryStorage(), bootstrap=("s1",),
                  leadership_subscribers=(PERIODIC,))
        env.spawn(PeriodicDispatcher, PERIODIC, wall_clock=wall)
    node = sched.add_node("s1", boot)
    sched.run_for(10.0)  # a leader
    fut = sched.future_cls()
    node.actors["raft"].tell(Propose(data=command("job_register", job=periodic(), now=wall()), reply=fut))
    fut.get(timeout=10.0)
    sched.run_for(16 * 60.0)  # 19:30:40 .. 19:46:40: launches at :35, :40 and :45
    state = sched.actor_of(node.actors["raft"]).state
    children = sorted(j for j in state.tables["jobs"] if j.startswith("nightly/"))
    want = [dt.datetime(2026, 11, 26, 19, m, tzinfo=UTC).timestamp() for m in (35, 40, 45)]
    assert children == [f"nightly/periodic-{int(t)}" for t in want]
    dispatcher = sched.actor_of(node.actors[PERIODIC])
    assert dispatcher.stats["launches"] == 3
    assert dispatcher.next["nightly"] == dt.datetime(2026, 11, 26, 19, 50, tzinfo=UTC).timestamp()
    node.actors["raft"].tell(Propose(data=command("job_deregister", job_id="nightly", now=wall()), reply=None))
    sched.run_for(10 * 60.0)
    assert dispatcher.next == {} and dispatcher.stats["launches"] == 3  # stopped: no more launches
    sched.close()


def test_a_new_leader_makes_one_late_launch_for_the_time_no_leader_ran_not_every_missed_one() -> None:
    """Nomad's restorePeriodicDispatcher: a job whose next launch passed while no leader ran is force-run
    once, now (its child named for now), and then scheduled from now -- an hour's outage of a five-minute
    job is one launch, not a burst of twelve."""
    from actors.server import LeadershipChanged

    sched = Scheduler(7)
    base = dt.datetime(2026, 11, 26, 19, 30, 30, tzinfo=UTC).timestamp()
    skew = [0.0]
    wall = lambda: base + skew[0] + sched.now  # the dispatcher's wall clock, in virtual time

    def boot(env: Any) -> None:
        env.spawn(RaftPeer, "raft", storage=MemoryStorage(), bootstrap=("s1",),
                  leadership_subscribers=(PERIODIC,))
        env.spawn(PeriodicDispatcher, PERIODIC, wall_clock=wall)
    node = sched.add_node("s1", boot)
    sched.run_for(10.0)
    fut = sched.future_cls()
    node.actors["raft"].tell(Propose(data=command("job_register", job=periodic(), now=wall()), reply=fut))
    fut.get(timeout=10.0)
    node.actors[PERIODIC].tell(LeadershipChanged(is_leader=False, term=1))
    sched.run_for(1.0)
    skew[0] = 3600.0  # an hour passes with no leader dispatching
    node.actors[PERIODIC].tell(LeadershipChanged(is_leader=True, term=2))
    sched.run_for(60.0)
    state = sched.actor_of(node.actors["raft"]).state
    children = sorted(j for j in state.tables["jobs"] if j.startswith("nightly/"))
    assert len(children) == 1, children
    launched = int(children[0].rsplit("-", 1)[1])
    assert base + 3600 < launched < base + 3600 + 60  # when the new leader took over
    dispatcher = sched.actor_of(node.actors[PERIODIC])
    assert dispatcher.next["nightly"] == dt.datetime(2026, 11, 26, 20, 35, tzinfo=UTC).timestamp()
    sched.close()


def test_a_late_launch_of_a_missed_time_is_skipped_when_the_last_leader_made_it() -> None:
    """The new leader's view may predate the last leader's final launch: its late launch names the due
    time it found missed, and the log (applied in order) skips it when that launch is already recorded."""
    c = Cluster()
    c.node(0)
    c.apply("job_register", job=periodic())
    c.now = T0 + 220
    assert c.apply("periodic_launch", job_id="nightly", launch=T0 + 220)["JobID"]  # the last leader's
    c.now = T0 + 250
    late = c.apply("periodic_launch", job_id="nightly", launch=T0 + 250, due=T0 + 220)
    assert late["skipped"] == "already launched"
    assert sorted(j for j in c.state.tables["jobs"] if j.startswith("nightly/")) == \
        [f"nightly/periodic-{int(T0 + 220)}"]
    c.now = T0 + 560
    made = c.apply("periodic_launch", job_id="nightly", launch=T0 + 560, due=T0 + 520)  # truly missed
    assert made["JobID"] == f"nightly/periodic-{int(T0 + 560)}"


def test_parents_are_not_evaluated_and_gc_drops_their_launch_record() -> None:
    c = Cluster()
    c.apply("job_register", job=periodic())
    assert c.apply("job_evaluate", job_id="nightly")["error"] == "can't evaluate periodic job"
    c.now = T0
    c.apply("periodic_launch", job_id="nightly", launch=T0)
    c.apply("job_deregister", job_id="nightly", purge=True)
    assert "nightly" not in c.state.tables["periodic_launch"]


def test_a_plan_of_a_periodic_job_says_when_it_would_launch_next() -> None:
    from actors.scheduler.dryrun import plan_job

    c = Cluster()
    c.node(0)
    out = plan_job(c.state, periodic("0 3 * * *"), False, now=T0)
    assert out["NextPeriodicLaunch"] == "2026-11-27T03:00:00Z"
    # Go's JSON of a time in the job's location: with its offset.
    zoned = plan_job(c.state, periodic("0 3 * * *", TimeZone="America/New_York"), False, now=T0)
    assert zoned["NextPeriodicLaunch"] == "2026-11-27T03:00:00-05:00"
    assert out["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 0  # the parent places nothing
    assert plan_job(c.state, canonical_job(service()), False, now=T0)["NextPeriodicLaunch"] == \
        "0001-01-01T00:00:00Z"


def test_only_periodic_writes_move_the_dispatchers_index_and_restore_rebuilds_it() -> None:
    from actors.state.store import StateStore

    c = Cluster()
    c.apply("job_register", job=periodic())
    at_register = c.state.periodic_index
    assert c.state.periodic_ids == {"nightly"} and at_register == c.index
    for i in range(3):
        c.register(**service(job_id=f"plain{i}"))
    assert c.state.periodic_index == at_register  # other jobs never wake the dispatcher
    c.now = T0
    c.apply("periodic_launch", job_id="nightly", launch=T0)
    assert c.state.periodic_index == c.index
    copy = StateStore()
    copy.restore(c.state.snapshot(), c.index)
    assert copy.periodic_ids == {"nightly"} and copy.periodic_index == c.index
    c.apply("job_deregister", job_id="nightly", purge=True)
    assert c.state.periodic_ids == set() and c.state.periodic_index == c.index
