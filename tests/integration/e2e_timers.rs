//! Timers on a real daemon and the real clock: intervals, `after`, calendars, `catch up`
//! across a restart, a re-exec between arming and firing, and what `timers`, `status -v`
//! and `monitor` show.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{Timestamp, tz::TimeZone};

use crate::harness::Harness;

/// A time of day `ahead` from now, as `HH:MM:SS`, and the instant it names (UTC, whole
/// seconds).
fn time_ahead(ahead: Duration) -> (String, Timestamp) {
    let due = Timestamp::from_second(Timestamp::now().as_second() + ahead.as_secs() as i64 + 1).unwrap();
    (
        due.to_zoned_datetime(TimeZone::UTC).strftime("%H:%M:%S").to_string(),
        due,
    )
}

/// `UPRISE_SCHEDULED` of a due time, in UTC.
fn scheduled(due: Timestamp) -> String {
    due.to_zoned_datetime(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// The lines a job appended to a work file.
fn lines(h: &Harness, name: &str) -> Vec<String> {
    h.work_file(name).lines().map(str::to_string).collect()
}

/// A line of `timers`'s table, cut at its column gaps.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

/// Sleeps until the wall clock passes `at`.
fn sleep_past(at: Timestamp) {
    while Timestamp::now() <= at {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_every_second_task_runs_about_once_a_second() {
    let h = Harness::start(&[(
        "tick",
        "task\nstart on every 1s\nexec sh -c 'echo \"$UPRISE_TIMER\" >> $WORK/ticks'\n",
    )]);
    std::thread::sleep(Duration::from_secs(5));
    let ticks = lines(&h, "ticks");
    // Five periods end in five seconds; a loaded machine may start the last one late.
    assert!((3..=6).contains(&ticks.len()), "{ticks:?}\n{}", h.daemon_log());
    assert!(ticks.iter().all(|line| line == "every 1s"), "{ticks:?}");
}

#[test]
fn an_after_timer_fires_that_long_after_its_event() {
    let h = Harness::start(&[(
        "deployed",
        "task\nstart on 2s after deploy VERSION=2\nexec sh -c 'date +%s.%N > $WORK/ran; echo \"$VERSION $UPRISE_TIMER\" > $WORK/env'\n",
    )]);
    // Another version does not arm it.
    assert_eq!(h.ctl(&["emit", "deploy", "VERSION=1"]).code, Some(0));
    let emitted = Timestamp::now();
    assert_eq!(h.ctl(&["emit", "deploy", "VERSION=2"]).code, Some(0));
    h.wait_until("the timer's run", || !h.work_file("ran").is_empty());
    let ran: f64 = h.work_file("ran").trim().parse().unwrap();
    let after = ran - emitted.as_millisecond() as f64 / 1000.0;
    assert!((2.0..3.0).contains(&after), "ran {after} s after the event");
    assert_eq!(h.work_file("env"), "2 2s after deploy VERSION=2\n");
}

#[test]
fn a_calendar_fires_once_at_its_time_with_its_due_time() {
    let (at, due) = time_ahead(Duration::from_secs(2));
    let h = Harness::start(&[(
        "daily",
        &format!(
            "task\nstart on every day at {at} UTC\nexec sh -c 'echo \"$UPRISE_SCHEDULED $(date +%s.%N)\" >> $WORK/runs'\n"
        ),
    )]);
    h.wait_until("the calendar's run", || !h.work_file("runs").is_empty());
    sleep_past(due + jiff::SignedDuration::from_millis(1500));
    let runs = lines(&h, "runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (shown, ran) = runs[0].split_once(' ').unwrap();
    assert_eq!(shown, scheduled(due));
    let ran: f64 = ran.parse().unwrap();
    assert!(ran >= due.as_second() as f64, "ran at {ran}, due at {due}");
    // `timers` now says it fires tomorrow, and that it fired for today.
    let out = h.ctl(&["timers", "--json"]);
    let timers: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let tomorrow = due + jiff::SignedDuration::from_hours(24);
    assert_eq!(timers[0]["next"], scheduled(tomorrow));
    assert_eq!(timers[0]["last"], scheduled(due));
    assert_eq!(timers[0]["result"], "ok");
}

#[test]
fn catch_up_runs_a_job_missed_while_the_daemon_was_down() {
    let (at, due) = time_ahead(Duration::from_secs(2));
    let job = |catch_up: &str, file: &str| {
        format!(
            "task\nstart on every day at {at} UTC\n{catch_up}\nexec sh -c 'echo $UPRISE_SCHEDULED >> $WORK/{file}'\n"
        )
    };
    let mut h = Harness::start(&[("caught", &job("catch up", "caught")), ("skipped", &job("", "skipped"))]);
    assert_eq!(h.terminate(), Some(0));
    sleep_past(due + jiff::SignedDuration::from_millis(500));
    assert!(lines(&h, "caught").is_empty());
    h.spawn(&[]);
    h.wait_until("the caught-up run", || !h.work_file("caught").is_empty());
    assert_eq!(lines(&h, "caught"), [scheduled(due)]);
    // The daemon has answered since it started, and the other job ran nothing.
    assert_eq!(h.status("skipped"), "skipped stop/waiting");
    assert!(lines(&h, "skipped").is_empty());
    // A second restart finds nothing missed.
    assert_eq!(h.terminate(), Some(0));
    h.spawn(&[]);
    assert_eq!(h.status("caught"), "caught stop/waiting");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&h, "caught").len(), 1, "{}", h.daemon_log());
    assert!(h.path("state/timers.json").exists());
}

#[test]
fn a_corrupt_catch_up_record_is_reported_and_never_fatal() {
    let mut h = Harness::new(&[(
        "nightly",
        "task\nstart on every day at 03:00 UTC\ncatch up\nexec true\n",
    )]);
    std::fs::write(h.path("state/timers.json"), b"{\"version\": 1, \"last\": [").unwrap();
    h.spawn(&[]);
    assert_eq!(h.status("nightly"), "nightly stop/waiting");
    h.wait_until("the warning", || h.daemon_log().contains("timers.json: cannot read it"));
    // The record is written anew.
    h.wait_until("a good record", || {
        std::fs::read(h.path("state/timers.json"))
            .is_ok_and(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).is_ok())
    });
}

#[test]
fn timers_survive_a_reexec_between_arming_and_firing() {
    let (at, due) = time_ahead(Duration::from_secs(3));
    let h = Harness::start(&[
        (
            "later",
            "task\nstart on 3s after go\nexec sh -c 'date +%s.%N >> $WORK/later'\n",
        ),
        (
            "daily",
            &format!("task\nstart on every day at {at} UTC\nexec sh -c 'echo $UPRISE_SCHEDULED >> $WORK/daily'\n"),
        ),
    ]);
    let emitted = Timestamp::now();
    assert_eq!(h.ctl(&["emit", "go"]).code, Some(0));
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stderr, h.daemon_log());
    h.wait_until("both runs", || {
        !h.work_file("later").is_empty() && !h.work_file("daily").is_empty()
    });
    sleep_past(due.max(emitted + jiff::SignedDuration::from_secs(3)) + jiff::SignedDuration::from_millis(1500));
    let later = lines(&h, "later");
    assert_eq!(later.len(), 1, "{later:?}");
    let after = later[0].parse::<f64>().unwrap() - emitted.as_millisecond() as f64 / 1000.0;
    assert!((3.0..4.0).contains(&after), "ran {after} s after the event");
    assert_eq!(lines(&h, "daily"), [scheduled(due)]);
}

#[test]
fn timers_status_and_monitor_show_the_timers() {
    let h = Harness::start(&[
        ("nightly", "task\nstart on every day at 03:00 UTC\nexec true\n"),
        ("tick", "task\nstart on every 1s\nexec true\n"),
    ]);
    let out = h.ctl(&["timers"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let table: Vec<&str> = out.stdout.lines().collect();
    assert!(table[0].starts_with("NEXT "), "{}", out.stdout);
    // `tick` may have fired already (its LAST and RESULT are then filled in).
    assert!(
        cells(table[1]).ends_with(&["tick", "start on every 1s"]),
        "{}",
        out.stdout
    );
    assert_eq!(
        cells(table[2])[2..],
        ["-", "-", "nightly", "start on every day at 03:00 UTC"],
        "{}",
        out.stdout
    );
    assert_eq!(table.len(), 3);
    // One job's, as JSON.
    let out = h.ctl(&["timers", "--json", "nightly"]);
    let timers: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(timers.as_array().unwrap().len(), 1);
    assert_eq!(timers[0]["operand"], "every day at 03:00 UTC");
    assert!(timers[0]["next"].as_str().unwrap().ends_with("T03:00:00+00:00"));
    assert_eq!(h.ctl(&["timers", "nope"]).stderr, "uprisectl: Unknown job: nope\n");
    let out = h.ctl(&["status", "-v", "nightly"]);
    assert!(
        out.stdout
            .contains("  timer: start on every day at 03:00 UTC fires at "),
        "{}",
        out.stdout
    );
    // The monitor shows each firing.
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .arg("--socket")
        .arg(h.socket())
        .arg("monitor")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(monitor.stdout.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the monitor ended");
        if line.starts_with("event timer ") {
            break;
        }
        assert!(start.elapsed() < crate::harness::DEADLINE, "no firing seen");
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(
        line.starts_with("event timer UPRISE_JOB=tick UPRISE_TIMER=every 1s UPRISE_SCHEDULED="),
        "{line}"
    );
    assert!(!h.daemon_log().contains("not yet enforced"), "{}", h.daemon_log());
}
