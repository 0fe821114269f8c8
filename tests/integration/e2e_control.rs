//! End-to-end tests of the control commands beyond job control: the job environment
//! (`set-env` & co), `show-config`, `check-config`, `monitor` and `log`, run against the real
//! daemon with the real `uprisectl`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Harness};

/// A long-running `uprisectl` whose stdout lines arrive on a channel; killed when dropped.
struct Streaming {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn spawn(h: &Harness, args: &[&str]) -> Streaming {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uprisectl"))
            .arg("--socket")
            .arg(h.socket())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("uprisectl runs");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Collects lines until `wanted` holds for the lines seen so far, calling `nudge` between
    /// short waits (to provoke output), up to the deadline.
    fn wait_for(&mut self, what: &str, mut nudge: impl FnMut(), wanted: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while !wanted(&self.seen) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; lines so far: {:#?}",
                self.seen
            );
            nudge();
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("uprisectl ended while waiting for {what}; lines: {:#?}", self.seen)
                }
            }
        }
    }

    fn has(lines: &[String], line: &str) -> bool {
        lines.iter().any(|seen| seen == line)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn set_env_reaches_jobs_started_afterwards_and_round_trips() {
    let h = Harness::start(&[(
        "show",
        "task\nexec sh -c 'echo \"$GREETING|$EMPTY|${GONE-unset}\" >> $WORK/show'\n",
    )]);
    let initial = h.ctl(&["list-env"]);
    assert_eq!(initial.code, Some(0), "{}", initial.stderr);
    let mut sorted: Vec<&str> = initial.stdout.lines().collect();
    sorted.sort_unstable();
    assert_eq!(initial.stdout.lines().collect::<Vec<_>>(), sorted, "list-env is sorted");
    assert!(
        initial.stdout.lines().any(|line| line.starts_with("WORK=")),
        "{}",
        initial.stdout
    );

    assert_eq!(h.ctl(&["set-env", "GREETING=hello", "EMPTY"]).code, Some(0));
    assert_eq!(h.ctl(&["set-env", "-r", "GREETING=other"]).code, Some(0));
    assert_eq!(h.ctl(&["get-env", "GREETING"]).stdout, "hello\n");
    assert_eq!(h.ctl(&["get-env", "EMPTY"]).stdout, "\n");
    let listed = h.ctl(&["list-env"]).stdout;
    assert!(listed.lines().any(|line| line == "GREETING=hello"), "{listed}");
    assert!(listed.lines().any(|line| line == "EMPTY="), "{listed}");

    assert_eq!(h.ctl(&["start", "show"]).code, Some(0));
    assert_eq!(h.work_file("show"), "hello||unset\n");

    assert_eq!(h.ctl(&["set-env", "--global", "GONE=here"]).code, Some(0));
    assert_eq!(h.ctl(&["unset-env", "GONE"]).code, Some(0));
    let missing = h.ctl(&["get-env", "GONE"]);
    assert_eq!(
        (missing.code, missing.stdout.as_str(), missing.stderr.as_str()),
        (Some(1), "", "uprisectl: No such variable: GONE\n")
    );
    let again = h.ctl(&["unset-env", "GONE"]);
    assert_eq!(
        (again.code, again.stderr.as_str()),
        (Some(1), "uprisectl: No such variable: GONE\n")
    );

    assert_eq!(h.ctl(&["reset-env"]).code, Some(0));
    assert_eq!(h.ctl(&["get-env", "GREETING"]).code, Some(1));
    assert_eq!(h.ctl(&["list-env"]).stdout, initial.stdout);
    assert_eq!(h.ctl(&["start", "show"]).code, Some(0));
    assert_eq!(h.work_file("show"), "hello||unset\n||unset\n");
}

#[test]
fn set_env_inside_a_job_edits_that_instance_only() {
    let h = Harness::start(&[
        (
            "local",
            "pre-start script\n  uprisectl set-env LOCAL=mine\n  uprisectl set-env -g SHARED=all\nend script\n\
             exec sh -c 'echo \"$LOCAL\" > $WORK/local; exec sleep 300'\n",
        ),
        (
            "later",
            "task\nexec sh -c 'echo \"${LOCAL-none} $SHARED\" > $WORK/later'\n",
        ),
    ]);
    let out = h.ctl(&["start", "local"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    h.wait_until("the main process's output", || h.work_file("local") == "mine\n");
    assert_eq!(h.ctl(&["get-env", "SHARED"]).stdout, "all\n");
    assert_eq!(h.ctl(&["get-env", "LOCAL"]).code, Some(1));
    assert_eq!(h.ctl(&["start", "later"]).code, Some(0));
    assert_eq!(h.work_file("later"), "none all\n");
}

#[test]
fn show_config_prints_upstarts_static_view() {
    let h = Harness::start(&[
        (
            "alpha",
            "emits alpha-ready\nstart on startup or (started beta and custom A=1)\nstop on runlevel [016]\nexec sleep 300\n",
        ),
        ("beta", "task\nexec true\n"),
    ]);
    let out = h.ctl(&["show-config"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "alpha\n  emits alpha-ready\n  start on (startup or (started beta and custom A=1))\n  stop on runlevel [016]\nbeta\n"
    );
    let out = h.ctl(&["show-config", "-e"]);
    assert_eq!(
        out.stdout,
        "alpha\n  emits alpha-ready\n  start on startup (job:, env:)\n  start on started (job: beta, env:)\n  start on custom (job:, env: A=1)\n  stop on runlevel (job:, env: [016])\nbeta\n"
    );
    assert_eq!(h.ctl(&["show-config", "beta"]).stdout, "beta\n");
    let out = h.ctl(&["show-config", "nosuch"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(1), "uprisectl: Unknown job: nosuch\n")
    );
}

#[test]
fn check_config_reports_unknown_jobs_and_events() {
    let h = Harness::start(&[
        ("web", "start on started grape\nexec sleep 300\n"),
        (
            "fruit",
            "start on thing-up and stopped web\nstop on peach\nexec sleep 300\n",
        ),
        ("maker", "emits thing-*\ntask\nexec true\n"),
    ]);
    let out = h.ctl(&["check-config"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            Some(1),
            "fruit\n  stop on: unknown event peach\nweb\n  start on: unknown job grape\n",
            ""
        )
    );
    let out = h.ctl(&["check-config", "-i", "peach"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(1), "web\n  start on: unknown job grape\n")
    );
    let out = h.ctl(&["check-config", "--ignore-events=apple,peach", "fruit"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
    let out = h.ctl(&["check-config", "maker"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
}

#[test]
fn monitor_streams_events_and_state_changes() {
    let h = Harness::start(&[("x", "exec sleep 300\n")]);
    let mut monitor = Streaming::spawn(&h, &["monitor"]);
    // The monitor is listening once it has seen an event emitted after it started.
    monitor.wait_for(
        "the monitor to see a ping",
        || {
            h.ctl(&["emit", "ping", "--no-wait"]);
        },
        |lines| Streaming::has(lines, "event ping"),
    );
    let out = h.ctl(&["start", "x"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    monitor.wait_for(
        "x's starting event and running state",
        || {},
        |lines| Streaming::has(lines, "event starting JOB=x INSTANCE=") && Streaming::has(lines, "job x start/running"),
    );
    let starting = monitor
        .seen
        .iter()
        .position(|line| line == "event starting JOB=x INSTANCE=")
        .unwrap();
    let running = monitor
        .seen
        .iter()
        .position(|line| line == "job x start/running")
        .unwrap();
    assert!(starting < running, "{:#?}", monitor.seen);

    let mut json = Streaming::spawn(&h, &["monitor", "--json"]);
    json.wait_for(
        "a JSON event line",
        || {
            h.ctl(&["emit", "pong", "K=V", "--no-wait"]);
        },
        |lines| Streaming::has(lines, r#"{"reply":"event","name":"pong","env":["K=V"]}"#),
    );
}

#[test]
fn log_prints_a_jobs_output_and_follows_it() {
    let h = Harness::start(&[
        ("talker", "task\nexec sh -c 'echo one; echo two; echo three'\n"),
        ("never", "exec true\n"),
        (
            "ticker",
            "exec sh -c 'echo first; while [ ! -e $WORK/go ]; do sleep 0.05; done; echo second; exec sleep 300'\n",
        ),
    ]);
    assert_eq!(h.ctl(&["start", "talker"]).code, Some(0));
    h.wait_until("talker's log", || h.log_file("talker.log") == "one\ntwo\nthree\n");
    let out = h.ctl(&["log", "talker"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "one\ntwo\nthree\n"),
        "{}",
        out.stderr
    );
    assert_eq!(h.ctl(&["log", "talker", "-n", "1"]).stdout, "three\n");
    let out = h.ctl(&["log", "never"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(1), "uprisectl: No log for never\n")
    );
    assert_eq!(h.ctl(&["log", "nosuch"]).stderr, "uprisectl: Unknown job: nosuch\n");

    assert_eq!(h.ctl(&["start", "ticker"]).code, Some(0));
    h.wait_until("ticker's first line", || h.log_file("ticker.log") == "first\n");
    let mut follow = Streaming::spawn(&h, &["log", "-f", "ticker"]);
    follow.wait_for("the first line", || {}, |lines| Streaming::has(lines, "first"));
    std::fs::write(h.path("work/go"), "").unwrap();
    follow.wait_for("the appended line", || {}, |lines| Streaming::has(lines, "second"));
    assert_eq!(follow.seen, ["first", "second"]);
}
