//! Readiness and respawn back-off with real processes: expect fork/daemon/stop/notify and
//! pid files, all without ptrace.

use crate::harness::{Harness, alive, pid_of};

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn expect_fork_tracks_the_forked_child() {
    let h = Harness::start(&[("forker", "expect fork\nexec sh -c 'sleep 301 & exit 0'\n")]);
    let out = h.ctl(&["start", "forker"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    let pid = pid_of(&out.stdout);
    assert!(cmdline(pid).starts_with("sleep 301"), "tracked {pid}: {}", cmdline(pid));
    assert_eq!(h.ctl(&["stop", "forker"]).stdout, "forker stop/waiting\n");
    h.wait_until("the daemon to die", || !alive(pid));
}

#[test]
fn expect_daemon_tracks_the_child_of_a_double_fork() {
    let h = Harness::start(&[(
        "double",
        "expect daemon\nexec sh -c 'sh -c \"sleep 302 & exit 0\" & exit 0'\n",
    )]);
    let out = h.ctl(&["start", "double"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    let pid = pid_of(&out.stdout);
    assert!(cmdline(pid).starts_with("sleep 302"), "tracked {pid}: {}", cmdline(pid));
    // It leads no process group of its own, and is still stopped.
    assert_eq!(h.ctl(&["stop", "double"]).code, Some(0));
    h.wait_until("the daemon to die", || !alive(pid));
}

#[test]
fn a_pid_file_written_late_names_the_main_process() {
    let h = Harness::start(&[(
        "pidf",
        "pid file $WORK/pidf.pid\nexec sh -c 'sleep 303 & p=$!; (sleep 0.3; echo $p > $WORK/pidf.pid) & exit 0'\n",
    )]);
    let out = h.ctl(&["start", "pidf"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    let pid = pid_of(&out.stdout);
    assert_eq!(h.work_file("pidf.pid").trim(), pid.to_string());
    assert!(cmdline(pid).starts_with("sleep 303"));
}

#[test]
fn late_pid_files_in_one_dir_each_name_their_own_main_process() {
    // Both wait on the same dir (one inotify watch), written at different times; a third
    // job waits there again after the watch went with its last waiter. Each writer stays
    // until the end (at most half a minute): an adopted process that exits makes uprise
    // look at the pid files too.
    let job = |name: &str, delay: &str| {
        format!(
            "pid file $WORK/run/{name}.pid\nexec sh -c 'mkdir -p $WORK/run; sleep 30{delay} & p=$!; \
             (sleep 0.{delay}; echo $p > $WORK/run/{name}.pid.new; mv $WORK/run/{name}.pid.new $WORK/run/{name}.pid; \
             i=0; until [ -e $WORK/done ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i+1)); done) & exit 0'\n"
        )
    };
    let (a, b, c) = (job("pa", "3"), job("pb", "6"), job("pc", "2"));
    let h = Harness::start(&[("pa", &a), ("pb", &b), ("pc", &c)]);
    assert_eq!(h.ctl(&["start", "pa", "--no-wait"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "pb", "--no-wait"]).code, Some(0));
    for (name, seconds) in [("pa", "303"), ("pb", "306")] {
        let status = h.wait_status(name, &format!("{name} start/running, process"));
        let pid = pid_of(&status);
        assert_eq!(h.work_file(&format!("run/{name}.pid")).trim(), pid.to_string());
        assert!(
            cmdline(pid).starts_with(&format!("sleep {seconds}")),
            "{}",
            cmdline(pid)
        );
    }
    let out = h.ctl(&["start", "pc"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    let pid = pid_of(&out.stdout);
    assert_eq!(h.work_file("run/pc.pid").trim(), pid.to_string());
    std::fs::write(h.path("work").join("done"), "").unwrap();
}

#[test]
fn a_daemon_that_never_appears_fails_after_the_pid_timeout() {
    let h = Harness::start(&[("ghost", "expect fork\npid timeout 300ms\nexec true\n")]);
    let out = h.ctl(&["start", "ghost"]);
    assert_eq!(out.code, Some(1));
    assert!(
        h.daemon_log()
            .contains("ghost: no main process found within the pid timeout"),
        "{}",
        h.daemon_log()
    );
}

#[test]
fn expect_stop_waits_for_sigstop_and_continues_the_process() {
    let h = Harness::start(&[(
        "stopper",
        "expect stop\nexec sh -c 'kill -STOP $$; echo continued > $WORK/stopper; exec sleep 304'\n",
    )]);
    let out = h.ctl(&["start", "stopper"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    h.wait_until("the process to continue", || h.work_file("stopper") == "continued\n");
}

#[test]
fn expect_notify_waits_for_ready() {
    let job = "expect notify
script python3
    import os, socket, time
    time.sleep(0.3)
    with open(os.environ['WORK'] + '/before', 'w') as f:
        f.write('not ready yet\\n')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b'STATUS=serving\\nREADY=1', os.environ['NOTIFY_SOCKET'])
    time.sleep(300)
end script
";
    let h = Harness::start(&[("notifier", job)]);
    let out = h.ctl(&["start", "notifier"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    // start returned only once READY=1 arrived, which comes after this file.
    assert_eq!(h.work_file("before"), "not ready yet\n");
    let verbose = h.ctl(&["status", "-v", "notifier"]).stdout;
    assert!(verbose.contains("  status: serving"), "{verbose}");
}

#[test]
fn a_process_dying_before_it_is_ready_is_respawned_not_left_running() {
    let h = Harness::start(&[(
        "early",
        "expect stop\nrespawn\nrespawn limit 2 60\nexec sh -c 'echo run >> $WORK/early; exit 1'\n",
    )]);
    assert_eq!(h.ctl(&["start", "early", "--no-wait"]).code, Some(0));
    h.wait_until("the respawn limit", || {
        h.daemon_log().contains("early respawning too fast, stopped")
    });
    assert_eq!(h.work_file("early").lines().count(), 3);
    h.wait_status("early", "early stop/waiting");
}

#[test]
fn respawn_back_off_waits_and_shows_a_countdown() {
    let h = Harness::start(&[(
        "backoff",
        "respawn\nrespawn delay 30s\nexec sh -c 'echo run >> $WORK/backoff; exit 1'\n",
    )]);
    assert_eq!(h.ctl(&["start", "backoff", "--no-wait"]).code, Some(0));
    h.wait_until("the back-off", || {
        h.status("backoff").starts_with("backoff respawn/post-stop")
    });
    let verbose = h.ctl(&["status", "-v", "backoff"]).stdout;
    assert!(verbose.contains("  respawning in "), "{verbose}");
    assert!(h.daemon_log().contains("backoff main process ended, respawning in 30s"));
    assert_eq!(h.work_file("backoff"), "run\n", "no second run during the back-off");
    // A stop ends the back-off at once.
    let out = h.ctl(&["stop", "backoff"]);
    assert_eq!(out.stdout, "backoff stop/waiting\n", "{}", out.stderr);
}

#[test]
fn a_pre_start_that_outlives_its_timeout_is_killed_and_fails_the_job() {
    let h = Harness::start(&[(
        "slow",
        "pre-start timeout 200ms\nkill timeout 1\npre-start exec sleep 300\nexec sleep 300\n",
    )]);
    let out = h.ctl(&["start", "slow"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "uprisectl: Job failed to start\n");
    assert!(
        h.daemon_log().contains("slow pre-start process ("),
        "{}",
        h.daemon_log()
    );
    assert!(h.daemon_log().contains("timed out after 200ms; killing it"));
}

#[test]
fn jobs_find_uprisectl_beside_the_daemon() {
    let mut h = Harness::new(&[("which", "task\nexec sh -c 'command -v uprisectl > $WORK/which'\n")]);
    // The daemon's own PATH does not name the build dir; the daemon adds its own dir.
    h.spawn_with_path(&[], "/usr/bin:/bin");
    assert_eq!(h.ctl(&["start", "which"]).code, Some(0));
    assert!(
        h.work_file("which").trim_end().ends_with("/uprisectl"),
        "{}",
        h.work_file("which")
    );
}

#[test]
fn stopping_a_deleted_job_during_its_back_off_answers_and_the_daemon_carries_on() {
    let h = Harness::start(&[("gone", "respawn\nrespawn delay 30s\nexec sh -c 'exit 1'\n")]);
    assert_eq!(h.ctl(&["start", "gone", "--no-wait"]).code, Some(0));
    h.wait_until("the back-off", || {
        h.status("gone").starts_with("gone respawn/post-stop")
    });
    std::fs::remove_file(h.path("init/gone.conf")).unwrap();
    h.wait_until("the reload", || h.daemon_log().matches("loaded ").count() >= 2);
    let out = h.ctl(&["stop", "gone", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "gone stop/waiting\n");
    assert_eq!(h.ctl(&["status", "gone"]).stderr, "uprisectl: Unknown job: gone\n");
    assert_eq!(h.ctl(&["version"]).code, Some(0), "the daemon is still up");
}
