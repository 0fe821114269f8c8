//! Reload commands, stop commands and custom actions on a real daemon: each runs as a process
//! of the instance with its own role, its output in the job's log, and the client that asked
//! gets its exit status, also across a re-exec.

use std::time::{Duration, Instant};

use crate::harness::{Harness, alive, pid_of};

const WEB: &str =
    "exec sh -c 'trap \"echo TERM >> $WORK/signals\" TERM; while [ ! -e $WORK/stop-now ]; do sleep 0.05; done'
reload exec sh -c 'echo reloaded >> $WORK/reloads; echo reload output'
stop exec touch $WORK/stop-now
action rotate exec sh -c 'echo rotated $WHY >> $WORK/rotate; exit 3'
action flush exec true
action long exec sleep 600
";

#[test]
fn reload_exec_runs_the_command_and_answers_its_exit_status() {
    let h = Harness::start(&[("web", WEB), ("plain", "exec sleep 600\nreload exec false\n")]);
    assert_eq!(h.ctl(&["start", "web"]).code, Some(0));
    let out = h.ctl(&["reload", "web"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("web reload process ("), "{}", out.stdout);
    assert!(out.stdout.ends_with(") exited normally\n"), "{}", out.stdout);
    assert_eq!(h.work_file("reloads"), "reloaded\n");
    h.wait_until("the output in the log", || {
        h.log_file("web.log").contains("reload output")
    });
    // No reload signal: the main process is the same and was not signalled.
    assert!(h.work_file("signals").is_empty());
    assert_eq!(h.ctl(&["start", "plain"]).code, Some(0));
    let out = h.ctl(&["reload", "plain"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("plain reload process (") && out.stderr.contains("terminated with status 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn stop_exec_stops_the_job_without_the_kill_signal() {
    let h = Harness::start(&[("web", WEB)]);
    assert_eq!(h.ctl(&["start", "web"]).code, Some(0));
    let out = h.ctl(&["stop", "web"]);
    assert_eq!(out.stdout, "web stop/waiting\n", "{}", out.stderr);
    assert!(h.path("work/stop-now").exists());
    assert!(h.work_file("signals").is_empty(), "no TERM: {}", h.work_file("signals"));
    assert!(h.daemon_log().contains("stop process ("), "{}", h.daemon_log());
}

#[test]
fn actions_run_wait_and_answer_their_exit_status() {
    let h = Harness::start(&[("web", WEB)]);
    let out = h.ctl(&["action", "web", "flush"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("Job is not running: web"), "{}", out.stderr);
    assert_eq!(h.ctl(&["start", "web"]).code, Some(0));
    let out = h.ctl(&["action", "web", "flush"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("web action flush process (") && out.stdout.ends_with("exited normally\n"));
    let out = h.ctl(&["action", "web", "rotate", "WHY=size"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("web action rotate process (") && out.stderr.contains("terminated with status 3"),
        "{}",
        out.stderr
    );
    assert_eq!(h.work_file("rotate"), "rotated size\n");
    let out = h.ctl(&["action", "web", "bogus"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Unknown action: web has no action bogus (it has: flush, long, rotate)"),
        "{}",
        out.stderr
    );
    let out = h.ctl(&["action", "nosuch", "x"]);
    assert!(out.stderr.contains("Unknown job: nosuch"), "{}", out.stderr);
    assert!(
        h.ctl(&["status", "-v", "web"])
            .stdout
            .contains("  actions: flush, long, rotate\n")
    );
    assert!(h.ctl(&["show-config", "web"]).stdout.contains("\n  action rotate\n"));
}

#[test]
fn an_action_still_running_is_killed_with_its_job() {
    let h = Harness::start(&[("web", WEB)]);
    assert_eq!(h.ctl(&["start", "web"]).code, Some(0));
    let socket = h.socket();
    let waiting = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_uprisectl"))
            .arg("--socket")
            .arg(socket)
            .args(["action", "web", "long"])
            .output()
            .unwrap()
    });
    let mut pid = 0;
    h.wait_until("the action", || {
        let status = h.ctl(&["status", "web"]).stdout;
        status
            .lines()
            .find(|line| line.contains("action long process"))
            .is_some_and(|line| {
                pid = pid_of(line);
                true
            })
    });
    // The action and the client waiting for it cross a re-exec.
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stderr, h.daemon_log());
    assert!(
        h.ctl(&["status", "web"])
            .stdout
            .contains(&format!("action long process {pid}"))
    );
    let started = Instant::now();
    assert_eq!(h.ctl(&["stop", "web"]).code, Some(0));
    let out = waiting.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("web action long process ("),
        "{out:?}"
    );
    h.wait_until("the action to go", || !alive(pid));
    assert!(started.elapsed() < Duration::from_secs(10));
}
