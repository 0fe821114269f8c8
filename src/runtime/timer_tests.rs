//! The timers on a fake clock: what fires, when, with which `UPRISE_SCHEDULED`, through
//! daylight saving days, clock jumps, jitter, `catch up` and removed jobs.

use std::time::Duration;

use super::core_tests::{Core, jobs_config};

/// Runs the clocks on by `total` in steps of `step`; each task started meanwhile ends at
/// once (with status 0).
fn run(core: &mut Core, total: Duration, step: Duration) {
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        core.advance(step);
        elapsed += step;
        finish_tasks(core);
    }
}

/// Every process started so far that is still running exits with status 0.
fn finish_tasks(core: &mut Core) {
    loop {
        let live: Vec<i32> = core.daemon.pids.keys().copied().collect();
        let Some(pid) = live.first() else { return };
        core.exit(*pid, 0);
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn an_interval_fires_each_period_and_a_wall_clock_jump_does_not_move_it() {
    let mut core = Core::new(&[("tick", "task\nstart on every 10m\nexec tick")]);
    run(&mut core, Duration::from_secs(599), Duration::from_secs(1));
    assert!(core.spawned().is_empty());
    run(&mut core, Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(core.spawned(), ["tick main 100"]);
    assert_eq!(core.scheduled(), ["2026-03-29T00:10:00+00:00"]);
    // A day forward on the wall clock: nothing comes due.
    core.set_wall("2026-03-30T00:10:00Z");
    assert_eq!(core.spawned().len(), 1);
    run(&mut core, Duration::from_secs(599), Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 1);
    run(&mut core, Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 2);
}

#[test]
fn a_busy_daemon_makes_up_no_interval_runs() {
    let mut core = Core::new(&[("tick", "task\nstart on every 10s\nexec tick")]);
    // One wake-up 35 s late: one run, and the next is at 40 s, not 20 s.
    core.advance(Duration::from_secs(35));
    finish_tasks(&mut core);
    assert_eq!(core.spawned().len(), 1);
    run(&mut core, Duration::from_secs(4), Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 1);
    run(&mut core, Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 2);
}

/// Paris moves to summer time on 2026-03-29 at 02:00 (01:00 UTC) and back on 2026-10-25 at
/// 03:00 (01:00 UTC).
#[test]
fn a_paris_calendar_through_both_daylight_saving_days() {
    let job = [("night", "task\nstart on every day at 02:30 Europe/Paris\nexec night")];
    let mut core = Core::at("2026-03-27T12:00:00Z", None, &job);
    run(&mut core, 3 * 24 * HOUR, MINUTE);
    // 02:30 does not exist on the 29th: once, at 03:30.
    assert_eq!(
        core.scheduled(),
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:30:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ]
    );
    let mut core = Core::at("2026-10-23T12:00:00Z", None, &job);
    run(&mut core, 3 * 24 * HOUR, MINUTE);
    // 02:30 happens twice on the 25th: once, at the first.
    assert_eq!(
        core.scheduled(),
        [
            "2026-10-24T02:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00"
        ]
    );
}

/// New York moves to summer time on 2026-03-08 at 02:00 (07:00 UTC) and back on 2026-11-01
/// at 02:00 (06:00 UTC). The zone comes from the job's `timezone`.
#[test]
fn a_new_york_calendar_through_both_daylight_saving_days() {
    let job = [(
        "close",
        "task\ntimezone America/New_York\nstart on every day at 02:15\nexec close",
    )];
    let mut core = Core::at("2026-03-06T12:00:00Z", None, &job);
    run(&mut core, 3 * 24 * HOUR, MINUTE);
    assert_eq!(
        core.scheduled(),
        [
            "2026-03-07T02:15:00-05:00",
            "2026-03-08T03:15:00-04:00",
            "2026-03-09T02:15:00-04:00"
        ]
    );
    let job = [(
        "close",
        "task\ntimezone America/New_York\nstart on every day at 01:30\nexec close",
    )];
    let mut core = Core::at("2026-10-30T12:00:00Z", None, &job);
    run(&mut core, 3 * 24 * HOUR, MINUTE);
    assert_eq!(
        core.scheduled(),
        [
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00"
        ]
    );
}

#[test]
fn a_clock_set_forward_fires_once_and_set_back_fires_nothing_twice() {
    let job = [("nightly", "task\nstart on every day at 03:00 UTC\nexec nightly")];
    let mut core = Core::at("2026-03-29T02:00:00Z", None, &job);
    core.set_wall("2026-03-29T05:00:00Z");
    finish_tasks(&mut core);
    assert_eq!(core.scheduled(), ["2026-03-29T03:00:00+00:00"]);
    // Back before 03:00: it fired for 03:00 already, so 03:00 today does not fire again.
    core.set_wall("2026-03-29T02:30:00Z");
    run(&mut core, HOUR, MINUTE);
    assert_eq!(core.scheduled().len(), 1);
    // Forward over three due times: one run, for the latest.
    core.set_wall("2026-04-02T12:00:00Z");
    finish_tasks(&mut core);
    assert_eq!(
        core.scheduled(),
        ["2026-03-29T03:00:00+00:00", "2026-04-02T03:00:00+00:00"]
    );
    // Back by more than a day (a wrong clock put right): the schedule starts afresh.
    core.set_wall("2026-03-01T02:59:00Z");
    run(&mut core, 2 * MINUTE, MINUTE);
    assert_eq!(core.scheduled().last().unwrap(), "2026-03-01T03:00:00+00:00");
    assert_eq!(core.scheduled().len(), 3);
}

#[test]
fn jitter_delays_each_firing_within_its_bound_and_never_drifts_the_schedule() {
    let mut core = Core::new(&[("poll", "task\nstart on every 1m\njitter 30s\nexec poll")]);
    let mut delays = Vec::new();
    for _ in 0..20 * 60 {
        let before = core.spawned().len();
        core.advance(Duration::from_secs(1));
        if core.spawned().len() > before {
            let scheduled: jiff::Timestamp = core.scheduled().last().unwrap().parse().unwrap();
            delays.push(core.wall().duration_since(scheduled).as_secs());
        }
        finish_tasks(&mut core);
    }
    // The 20th minute's firing may still be held back.
    assert!(delays.len() >= 19, "{delays:?}");
    assert!(delays.iter().all(|delay| (0..=30).contains(delay)), "{delays:?}");
    let first = delays[0];
    assert!(delays.iter().any(|delay| *delay != first), "not random: {delays:?}");
    // Due on the minute, each one: the jitter never moved the schedule.
    for (index, scheduled) in core.scheduled().iter().enumerate() {
        assert_eq!(*scheduled, format!("2026-03-29T00:{:02}:00+00:00", index + 1));
    }
}

#[test]
fn each_matching_event_arms_its_own_after_timer() {
    let mut core = Core::new(&[("warm", "task\ninstance $N\nstart on 10s after go\nexec warm")]);
    core.daemon.emit("go", vec!["N=1".into()]);
    core.daemon.settle();
    core.advance(Duration::from_secs(3));
    core.daemon.emit("go", vec!["N=2".into()]);
    core.daemon.settle();
    core.advance(Duration::from_secs(6));
    assert!(core.spawned().is_empty());
    core.advance(Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 1);
    core.advance(Duration::from_secs(3));
    // The event's variables come with the firing: N names the second instance.
    assert_eq!(core.spawned().len(), 2);
    let class = core.daemon.lookup("warm").unwrap();
    assert!(core.daemon.instance(&(class, "2".to_string())).is_some());
}

#[test]
fn after_timers_are_cancelled_when_their_job_is_removed() {
    let job = ("warm", "task\nstart on 10s after go\nexec warm");
    let mut core = Core::new(&[job]);
    core.emit("go");
    core.advance(Duration::from_secs(5));
    assert_eq!(core.daemon.timer_statuses(None).len(), 1);
    core.daemon.install(jobs_config(&[]));
    assert!(core.daemon.lookup("warm").is_err());
    assert!(core.daemon.timer_statuses(None).is_empty());
    core.advance(Duration::from_secs(10));
    assert!(core.spawned().is_empty());
    // Back again: no firing is left over from before.
    core.daemon.install(jobs_config(&[job]));
    core.advance(Duration::from_secs(10));
    assert!(core.spawned().is_empty());
    assert!(core.daemon.deadlines.is_empty());
}

#[test]
fn a_stop_on_after_timer_stops_the_instance_that_saw_the_event() {
    let mut core = Core::new(&[("srv", "start on go\nstop on 2s after halt\nexec srv")]);
    core.emit("go");
    let pid = core.pid("srv", "main");
    core.emit("halt");
    core.advance(Duration::from_secs(1));
    assert!(core.signals().is_empty());
    core.advance(Duration::from_secs(1));
    assert_eq!(core.signals(), [(pid, libc::SIGTERM, true)]);
}

#[test]
fn a_firing_and_an_event_combine_through_and() {
    let mut core = Core::new(&[("sync", "task\nstart on every 10s and net-up\nexec sync")]);
    core.advance(Duration::from_secs(10));
    assert!(core.spawned().is_empty());
    core.emit("net-up");
    assert_eq!(core.spawned(), ["sync main 100"]);
    assert_eq!(core.scheduled(), ["2026-03-29T00:00:10+00:00"]);
}

#[test]
fn a_firing_while_the_job_runs_is_dropped() {
    let mut core = Core::new(&[("slow", "task\nstart on every 10s\nexec slow")]);
    core.advance(Duration::from_secs(10));
    core.advance(Duration::from_secs(10));
    core.advance(Duration::from_secs(10));
    assert_eq!(core.spawned().len(), 1);
    finish_tasks(&mut core);
    core.advance(Duration::from_secs(10));
    assert_eq!(core.spawned().len(), 2);
}

#[test]
fn catch_up_runs_a_missed_job_once_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let jobs = [
        (
            "nightly",
            "task\nstart on every day at 03:00 UTC\ncatch up\nexec nightly",
        ),
        ("plain", "task\nstart on every day at 03:00 UTC\nexec plain"),
        ("hourly", "task\nstart on every 1h\ncatch up\nexec hourly"),
    ];
    let core = Core::at("2026-03-29T00:00:00Z", Some(state.path()), &jobs);
    assert!(core.spawned().is_empty());
    drop(core);
    // Down over three nights: one run, for the last of them; none without `catch up`.
    let mut core = Core::at("2026-03-31T10:00:00Z", Some(state.path()), &jobs);
    let mut started: Vec<(String, String)> = core
        .spawned()
        .into_iter()
        .map(|line| line.split(' ').next().unwrap().to_string())
        .zip(core.scheduled())
        .collect();
    started.sort();
    assert_eq!(
        started,
        [
            ("hourly".to_string(), "2026-03-31T10:00:00+00:00".to_string()),
            ("nightly".to_string(), "2026-03-31T03:00:00+00:00".to_string()),
        ]
    );
    finish_tasks(&mut core);
    drop(core);
    // Nothing missed since.
    let core = Core::at("2026-03-31T10:30:00Z", Some(state.path()), &jobs);
    assert!(core.spawned().is_empty(), "{:?}", core.spawned());
    drop(core);
    // A corrupt record is logged and taken as empty: never fatal, nothing run.
    std::fs::write(state.path().join("timers.json"), b"{not json").unwrap();
    let core = Core::at("2026-04-05T10:30:00Z", Some(state.path()), &jobs);
    assert!(core.spawned().is_empty());
}

#[test]
fn the_timers_list_says_what_fires_next_soonest_first() {
    let mut core = Core::new(&[
        ("nightly", "task\nstart on every day at 03:00 UTC\nexec nightly"),
        ("tick", "task\nstart on every 90s\nexec tick"),
        ("warm", "task\nstart on 1h after go\nexec warm"),
    ]);
    core.emit("go");
    let rows: Vec<(String, String, String, u64, String)> = core
        .daemon
        .timer_statuses(None)
        .into_iter()
        .map(|row| (row.job, row.operand, row.next, row.left_ms, row.kind))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "tick".into(),
                "every 1m30s".into(),
                "2026-03-29T00:01:30+00:00".into(),
                90_000,
                "schedule".into()
            ),
            (
                "warm".into(),
                "1h after go".into(),
                "2026-03-29T01:00:00+00:00".into(),
                3_600_000,
                "after".into()
            ),
            (
                "nightly".into(),
                "every day at 03:00 UTC".into(),
                "2026-03-29T03:00:00+00:00".into(),
                3 * 3_600_000,
                "schedule".into()
            ),
        ]
    );
    run(&mut core, Duration::from_secs(90), Duration::from_secs(90));
    let tick = core.daemon.lookup("tick").unwrap();
    let detail = core.daemon.class_detail(tick);
    assert!(
        detail.iter().any(|line| line
            == "timer: start on every 1m30s fires at 2026-03-29T00:03:00+00:00 (in 1m30s); last fired for 2026-03-29T00:01:30+00:00"),
        "{detail:?}"
    );
}

#[test]
fn a_changed_schedule_is_armed_again_and_the_others_keep_theirs() {
    let mut core = Core::new(&[
        ("a", "task\nstart on every 10m\nexec a"),
        ("b", "task\nstart on every 10m\nexec b"),
    ]);
    core.advance(5 * MINUTE);
    core.daemon.install(jobs_config(&[
        ("a", "task\nstart on every 10m\nexec a --new"),
        ("b", "task\nstart on every 20m\nexec b"),
    ]));
    core.advance(5 * MINUTE);
    finish_tasks(&mut core);
    // `a` changed but not its schedule: it keeps its phase. `b` starts again from now.
    assert_eq!(core.spawned(), ["a main 100"]);
    run(&mut core, 20 * MINUTE, MINUTE);
    assert_eq!(core.spawned(), ["a main 100", "a main 101", "b main 102", "a main 103"]);
}

#[test]
fn a_jitter_longer_than_the_period_holds_back_one_firing_at_a_time() {
    let mut core = Core::new(&[("often", "task\nstart on every 10s\njitter 1h\nexec often")]);
    for _ in 0..60 {
        core.advance(Duration::from_secs(10));
        let held = core
            .daemon
            .timer_statuses(None)
            .into_iter()
            .filter(|row| row.kind == "jitter")
            .count();
        assert!(held <= 1, "{held} firings held back");
        finish_tasks(&mut core);
    }
    // 10 minutes on: the queue holds the interval and at most one held-back firing.
    assert!(
        core.daemon.deadlines.len() <= 2,
        "{} deadlines",
        core.daemon.deadlines.len()
    );
}

#[test]
fn many_timers_due_at_once_fire_a_batch_a_turn_and_all_of_them_in_the_end() {
    let names: Vec<String> = (0..40).map(|index| format!("t{index}")).collect();
    // Clock operands, then intervals (whose firings are deadlines).
    type NextTurn = fn(&mut super::daemon::Daemon);
    let next_turns: [(&str, NextTurn); 2] = [
        (
            "task\nstart on every day at 00:10 UTC\nexec t",
            super::daemon::Daemon::timers_due,
        ),
        ("task\nstart on every 10m\nexec t", super::daemon::Daemon::deadlines_due),
    ];
    for (text, next_turn) in next_turns {
        let jobs: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), text)).collect();
        let mut core = Core::new(&jobs);
        core.advance(10 * MINUTE);
        assert_eq!(core.spawned().len(), super::timers::FIRE_BATCH, "{text}");
        // The loop comes back at once for the rest (its timer is set for a time passed).
        for _ in 0..3 {
            next_turn(&mut core.daemon);
            core.daemon.settle();
        }
        assert_eq!(core.spawned().len(), 40, "{text}");
    }
}

#[test]
fn a_clock_operand_in_stop_on_stops_every_running_instance() {
    let mut core = Core::new(&[(
        "scrub",
        "instance $POOL\nstart on go\nstop on every day at 05:00 UTC\nexec scrub",
    )]);
    core.daemon.emit("go", vec!["POOL=a".into()]);
    core.daemon.emit("go", vec!["POOL=b".into()]);
    core.daemon.settle();
    let (a, b) = (core.pid("scrub", "main") - 1, core.pid("scrub", "main"));
    core.advance(5 * HOUR - MINUTE);
    assert!(core.signals().is_empty());
    core.advance(MINUTE);
    let mut signalled: Vec<i32> = core.signals().iter().map(|(pid, _, _)| *pid).collect();
    signalled.sort();
    assert_eq!(signalled, [a, b]);
}
