//! Event dispatch throughput of the daemon core, in-process (no socket, no processes).
//! Run with `cargo bench --bench dispatch`. Prints key=value lines; asserts nothing about speed.
//!
//! - `dispatch_nomatch`: `emit("nomatch")` + `settle()` with C job classes installed, each
//!   `start on ev-K` for a distinct K, so the event matches none. The rate should not depend
//!   on C (target: at least 1,000,000 events/s for both C = 10 and C = 10,000).
//! - `dispatch_task`: `emit("ev-1")` + `settle()` where class 1 is a `task` with no process
//!   at all: one instance goes starting → … → waiting, emitting `starting`, `started`,
//!   `stopping` and `stopped` without spawning. `events_per_s` counts `ev-1` only;
//!   `all_events_per_s` counts the five events each round handles.

use std::hint::black_box;
use std::time::{Duration, Instant};

use calloop::EventLoop;
use uprise::model::Config;
use uprise::runtime::output::Rotation;
use uprise::runtime::{Daemon, Settings};

/// Events each `ev-1` round handles: ev-1, starting, started, stopping, stopped.
const EVENTS_PER_TASK_ROUND: u64 = 5;

/// One job class per `(name, text)`, parsed and checked like a job file.
fn config(jobs: &[(String, String)]) -> Config {
    let mut all = Vec::with_capacity(jobs.len());
    for (name, text) in jobs {
        let one = Config::from_text(name, &format!("{name}.conf"), text);
        assert!(one.is_valid(), "{name}.conf does not load: {:?}", one.diagnostics);
        assert_eq!(one.jobs.len(), 1, "{name}.conf defines one job");
        all.extend(one.jobs);
    }
    Config {
        jobs: all,
        ..Config::default()
    }
}

/// `count` classes `sK`, `start on ev-K`; class 1 (`s1`) is a process-less task.
fn classes(count: usize) -> Vec<(String, String)> {
    (1..=count)
        .map(|k| {
            let text = if k == 1 {
                "start on ev-1\ntask\n".to_string()
            } else {
                format!("start on ev-{k}\nexec /bin/true\n")
            };
            (format!("s{k}"), text)
        })
        .collect()
}

/// A daemon as `runtime::run` builds one, without the signal fd, the socket or the confdirs.
/// The loop is returned too: the daemon's handle must not outlive it.
fn daemon(dir: &std::path::Path, jobs: &[(String, String)]) -> (EventLoop<'static, Daemon>, Daemon) {
    let event_loop: EventLoop<'static, Daemon> = EventLoop::try_new().expect("event loop");
    let settings = Settings {
        user_mode: true,
        logdir: dir.join("log"),
        socket: dir.join("control"),
        rotation: Rotation::default(),
    };
    let mut daemon = Daemon::new(settings, event_loop.handle(), event_loop.get_signal());
    daemon.install(config(jobs));
    assert_eq!(daemon.class_by_name.len(), jobs.len(), "every class installed");
    (event_loop, daemon)
}

/// Runs `round` in batches until `budget` has passed; returns rounds per second.
fn rate(budget: Duration, daemon: &mut Daemon, round: impl Fn(&mut Daemon)) -> (u64, f64) {
    // warm-up: grow the maps and queues to their working size
    for _ in 0..1000 {
        round(daemon);
    }
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < budget {
        for _ in 0..1000 {
            round(daemon);
        }
        rounds += 1000;
    }
    (rounds, rounds as f64 / start.elapsed().as_secs_f64())
}

fn nomatch(daemon: &mut Daemon) {
    black_box(daemon.emit("nomatch", Vec::new()));
    daemon.settle();
}

fn task_round(daemon: &mut Daemon) {
    black_box(daemon.emit("ev-1", Vec::new()));
    daemon.settle();
}

/// Checks once that `ev-1` really runs the task through: a witness class `start on stopped s1`
/// (no task, no process) stays in `start/running` only if `stopped JOB=s1` was emitted.
fn check_task_runs(dir: &std::path::Path) {
    let mut jobs = classes(10);
    jobs.push(("witness".into(), "start on stopped s1\n".into()));
    let (_event_loop, mut daemon) = daemon(dir, &jobs);
    task_round(&mut daemon);
    let s1 = daemon.class_by_name["s1"];
    let witness = daemon.class_by_name["witness"];
    let instances = |daemon: &Daemon, id| daemon.classes[id].instances.len();
    assert_eq!(instances(&daemon, s1), 0, "the task instance is gone once settled");
    assert_eq!(instances(&daemon, witness), 1, "the task went through to `stopped`");
    assert!(daemon.events.is_empty(), "no event is left over");
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this runs once, small.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let budget = if quick {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    check_task_runs(dir.path());

    for count in [10, 10_000] {
        let jobs = classes(count);
        let (_event_loop, mut daemon) = daemon(dir.path(), &jobs);
        let (rounds, per_s) = rate(budget, &mut daemon, nomatch);
        assert!(daemon.events.is_empty(), "every event finished");
        println!("dispatch_nomatch classes={count} events={rounds} events_per_s={per_s:.0}");

        let (rounds, per_s) = rate(budget, &mut daemon, task_round);
        assert!(daemon.events.is_empty(), "every event finished");
        println!(
            "dispatch_task classes={count} events={rounds} events_per_s={per_s:.0} all_events_per_s={:.0}",
            per_s * EVENTS_PER_TASK_ROUND as f64
        );
    }
}
