//! End-to-end: the real daemon, real processes, real signals, driven through `uprisectl`.

use crate::harness::{Harness, alive, pid_of};

#[test]
fn a_service_starts_on_startup_and_stops_on_request() {
    let h = Harness::start(&[("web", "start on startup\nexec sleep 300\n")]);
    let status = h.wait_status("web", "web start/running, process ");
    let pid = pid_of(&status);
    assert!(alive(pid));
    let out = h.ctl(&["stop", "web"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "web stop/waiting\n");
    h.wait_until("the main process to be reaped", || !alive(pid));
    assert_eq!(h.status("web"), "web stop/waiting");
}

#[test]
fn start_waits_for_running_and_prints_upstart_status_lines() {
    let h = Harness::start(&[("svc", "exec sleep 300\n"), ("other", "exec sleep 300\n")]);
    assert_eq!(h.status("svc"), "svc stop/waiting");
    let out = h.ctl(&["start", "svc"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("svc start/running, process "), "{}", out.stdout);
    let again = h.ctl(&["start", "svc"]);
    assert_eq!(again.code, Some(1));
    assert_eq!(again.stderr, "uprisectl: Job is already running: svc\n");
    let list = h.ctl(&["list"]).stdout;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(lines[0], "other stop/waiting");
    assert!(lines[1].starts_with("svc start/running, process "));
}

#[test]
fn unknown_jobs_and_bad_requests_get_errors_and_the_daemon_carries_on() {
    let h = Harness::start(&[("svc", "exec sleep 300\n")]);
    let out = h.ctl(&["start", "nosuch"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "uprisectl: Unknown job: nosuch\n");
    // A malformed request on the raw socket.
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(h.socket()).unwrap();
    stream.write_all(b"{this is not json\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert!(
        line.contains("\"reply\":\"error\"") && line.contains("Malformed request"),
        "{line}"
    );
    // An oversized one.
    let mut stream = std::os::unix::net::UnixStream::connect(h.socket()).unwrap();
    let big = vec![b'x'; 2 << 20];
    let _ = stream.write_all(&big);
    let mut line = String::new();
    let _ = BufReader::new(&stream).read_line(&mut line);
    assert!(line.contains("Request too long"), "{line}");
    assert_eq!(h.ctl(&["status", "svc"]).stdout, "svc stop/waiting\n");
}

#[test]
fn a_task_chain_is_ordered_by_blocking_starting_events() {
    let h = Harness::start(&[
        (
            "first",
            "task\nstart on starting second\nexec sh -c 'sleep 0.3; echo first >> $WORK/order'\n",
        ),
        (
            "second",
            "task\nstart on startup\nexec sh -c 'echo second >> $WORK/order'\n",
        ),
        (
            "third",
            "task\nstart on stopped second RESULT=ok\nexec sh -c 'echo third >> $WORK/order'\n",
        ),
    ]);
    h.wait_until("the chain to finish", || h.work_file("order").lines().count() == 3);
    assert_eq!(h.work_file("order"), "first\nsecond\nthird\n");
}

#[test]
fn instances_are_named_from_their_environment() {
    let h = Harness::start(&[("worker", "instance $N\nusage \"worker N=<number>\"\nexec sleep 300\n")]);
    for n in ["1", "2"] {
        let out = h.ctl(&["start", "worker", &format!("N={n}")]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(
            out.stdout.starts_with(&format!("worker ({n}) start/running, process ")),
            "{}",
            out.stdout
        );
    }
    let list = h.ctl(&["list"]).stdout;
    assert_eq!(list.lines().count(), 2, "{list}");
    let status = h.ctl(&["status", "worker", "N=2"]);
    assert!(
        status.stdout.starts_with("worker (2) start/running"),
        "{}",
        status.stdout
    );
    let missing = h.ctl(&["status", "worker"]);
    assert_eq!(missing.code, Some(1));
    assert_eq!(
        missing.stderr,
        "uprisectl: Unknown parameter: N\nUsage: worker N=<number>\n"
    );
    assert_eq!(h.ctl(&["stop", "worker", "N=1"]).stdout, "worker (1) stop/waiting\n");
    assert_eq!(h.ctl(&["list"]).stdout.lines().count(), 1);
}

#[test]
fn a_failing_pre_start_fails_the_job_and_says_why() {
    let h = Harness::start(&[
        (
            "broken",
            "pre-start exec sh -c 'echo cannot >&2; exit 3'\nexec sleep 300\n",
        ),
        (
            "watcher",
            "task\nstart on stopped broken RESULT=failed PROCESS=pre-start EXIT_STATUS=3\nexec sh -c 'echo seen > $WORK/watcher'\n",
        ),
    ]);
    let out = h.ctl(&["start", "broken"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "uprisectl: Job failed to start\n");
    h.wait_until("the watcher", || h.work_file("watcher") == "seen\n");
    assert!(
        h.daemon_log().contains("broken pre-start process ("),
        "{}",
        h.daemon_log()
    );
    assert!(h.daemon_log().contains(") terminated with status 3"));
    assert_eq!(h.status("broken"), "broken stop/waiting");
    assert!(h.log_file("broken.log").contains("cannot"));
}

#[test]
fn a_spawn_failure_is_reported_with_its_step() {
    let h = Harness::start(&[("nobin", "exec /nonexistent/binary\n")]);
    let out = h.ctl(&["start", "nobin"]);
    assert_eq!(out.code, Some(1));
    h.wait_until("the spawn error in the log", || {
        h.daemon_log()
            .contains("Failed to spawn nobin main process: unable to execute: No such file or directory")
    });
}

#[test]
fn respawn_restarts_the_main_process_until_the_limit() {
    let h = Harness::start(&[(
        "flaky",
        "respawn\nrespawn limit 3 60\nexec sh -c 'echo run >> $WORK/runs; sleep 0.1; exit 1'\n",
    )]);
    assert_eq!(h.ctl(&["start", "flaky"]).code, Some(0));
    h.wait_until("the respawn limit", || {
        h.daemon_log().contains("flaky respawning too fast, stopped")
    });
    assert!(h.daemon_log().contains("flaky main process ended, respawning"));
    assert_eq!(h.work_file("runs").lines().count(), 4, "one run and three respawns");
    h.wait_status("flaky", "flaky stop/waiting");
    // Once the instance is gone, `status -v` still says why it stopped.
    let verbose = h.ctl(&["status", "-v", "flaky"]).stdout;
    assert!(verbose.contains("RESULT=failed PROCESS=respawn"), "{verbose}");
}

#[test]
fn a_respawned_service_gets_a_new_pid() {
    let h = Harness::start(&[("svc", "respawn\nexec sleep 300\n")]);
    let first = pid_of(&h.ctl(&["start", "svc"]).stdout);
    crate::harness::unsafe_kill(first, 9);
    h.wait_until("a new main process", || {
        let status = h.status("svc");
        status.starts_with("svc start/running, process ") && pid_of(&status) != first
    });
}

#[test]
fn emit_waits_for_the_jobs_it_starts_and_passes_its_environment() {
    let h = Harness::start(&[(
        "on-deploy",
        "task\nstart on deploy\nexec sh -c 'sleep 0.2; echo \"$VERSION $UPSTART_EVENTS $UPSTART_JOB\" > $WORK/deploy'\n",
    )]);
    let out = h.ctl(&["emit", "deploy", "VERSION=42"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The task finished before emit returned.
    assert_eq!(h.work_file("deploy"), "42 deploy on-deploy\n");
}

#[test]
fn emit_fails_when_a_job_it_started_fails() {
    let h = Harness::start(&[("bad-task", "task\nstart on go\nexec false\n")]);
    let out = h.ctl(&["emit", "go"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "uprisectl: Event failed\n");
}

#[test]
fn stop_on_an_event_stops_the_job_with_instance_variables() {
    let h = Harness::start(&[(
        "link",
        "instance $IFACE\nstart on link-up\nstop on link-down IFACE=$IFACE\nexec sleep 300\n",
    )]);
    assert_eq!(h.ctl(&["emit", "link-up", "IFACE=eth0"]).code, Some(0));
    assert_eq!(h.ctl(&["emit", "link-up", "IFACE=eth1"]).code, Some(0));
    assert_eq!(h.ctl(&["list"]).stdout.lines().count(), 2);
    assert_eq!(h.ctl(&["emit", "link-down", "IFACE=eth0"]).code, Some(0));
    let list = h.ctl(&["list"]).stdout;
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("link (eth1) start/running"), "{list}");
}

#[test]
fn a_process_that_ignores_term_is_killed_after_the_kill_timeout() {
    let mut h = Harness::new(&[(
        "stubborn",
        "kill timeout 1\nexec sh -c 'trap \"\" TERM; touch $WORK/trapped; while :; do sleep 0.05; done'\n",
    )]);
    // `Sending TERM signal` is at Upstart's info priority, shown with `--verbose`.
    h.spawn(&["--verbose"]);
    let pid = pid_of(&h.ctl(&["start", "stubborn"]).stdout);
    h.wait_until("the TERM trap", || h.path("work/trapped").exists());
    let out = h.ctl(&["stop", "stubborn"]);
    assert_eq!(out.stdout, "stubborn stop/waiting\n", "{}", out.stderr);
    assert!(!alive(pid));
    assert!(h.daemon_log().contains("Sending TERM signal to stubborn main process"));
    assert!(h.daemon_log().contains("did not stop in time; sending KILL"));
}

#[test]
fn kill_timeouts_of_several_jobs_fire_soonest_first() {
    // One timer serves every kill deadline: the later-stopped job with the shorter timeout
    // must not wait for the earlier one's deadline.
    let stubborn = |timeout: u32, mark: &str| {
        format!(
            "kill timeout {timeout}\nexec sh -c 'trap \"\" TERM; touch $WORK/{mark}; while :; do sleep 0.05; done'\n"
        )
    };
    let (slow, quick) = (stubborn(3, "slow"), stubborn(1, "quick"));
    let h = Harness::start(&[("slow", slow.as_str()), ("quick", quick.as_str())]);
    let slow_pid = pid_of(&h.ctl(&["start", "slow"]).stdout);
    let quick_pid = pid_of(&h.ctl(&["start", "quick"]).stdout);
    h.wait_until("both TERM traps", || {
        h.path("work/slow").exists() && h.path("work/quick").exists()
    });
    assert_eq!(h.ctl(&["stop", "--no-wait", "slow"]).code, Some(0));
    let out = h.ctl(&["stop", "quick"]);
    assert_eq!(out.stdout, "quick stop/waiting\n", "{}", out.stderr);
    assert!(!alive(quick_pid));
    assert!(alive(slow_pid), "the slow job's deadline is not due yet");
    h.wait_status("slow", "slow stop/waiting");
    assert!(!alive(slow_pid));
    let log = h.daemon_log();
    let killed = |pid: i32| log.find(&format!("({pid}) did not stop in time; sending KILL"));
    assert!(
        killed(quick_pid) < killed(slow_pid) && killed(quick_pid).is_some(),
        "{log}"
    );
}

#[test]
fn the_log_priority_is_upstarts_message_until_raised() {
    let h = Harness::start(&[("svc", "exec sleep 300\n")]);
    let start_and_stop = || {
        let pid = pid_of(&h.ctl(&["start", "svc"]).stdout);
        assert_eq!(h.ctl(&["stop", "svc"]).code, Some(0));
        (pid, h.daemon_log())
    };
    assert_eq!(h.ctl(&["log-priority"]).stdout, "message\n");
    let (pid, log) = start_and_stop();
    assert!(
        log.contains(&format!("svc main process ({pid}) killed by TERM signal")),
        "{log}"
    );
    assert!(!log.contains("Sending TERM signal"), "{log}");

    assert_eq!(h.ctl(&["log-priority", "info"]).code, Some(0));
    assert_eq!(h.ctl(&["log-priority"]).stdout, "info\n");
    let (pid, log) = start_and_stop();
    assert!(
        log.contains(&format!("Sending TERM signal to svc main process ({pid})")),
        "{log}"
    );
    assert!(!log.contains("(uid "), "Upstart's debug priority stays off: {log}");
}

#[test]
fn job_output_goes_to_the_log_dir() {
    let h = Harness::start(&[
        ("talker", "task\nexec sh -c 'echo hello; echo world >&2'\n"),
        ("inst", "instance $I\ntask\nexec echo inst-$I\n"),
    ]);
    assert_eq!(h.ctl(&["start", "talker"]).code, Some(0));
    h.wait_until("the log", || h.log_file("talker.log") == "hello\nworld\n");
    assert_eq!(h.ctl(&["start", "inst", "I=a/b"]).code, Some(0));
    h.wait_until("the instance log", || h.log_file("inst-a_b.log") == "inst-a/b\n");
}

/// Each process of an instance writes to a pipe of its own; the log still has every stage's
/// output in the order the stages ran, and the last stage's lines survive the instance.
#[test]
fn the_log_keeps_the_stages_in_order() {
    let h = Harness::start(&[(
        "stages",
        "task\n\
         pre-start script\n  for i in $(seq 1 300); do echo pre-$i; done\nend script\n\
         exec sh -c 'for i in $(seq 1 300); do echo main-$i; done'\n\
         post-stop script\n  for i in $(seq 1 300); do echo post-$i; done\nend script\n",
    )]);
    assert_eq!(h.ctl(&["start", "stages"]).code, Some(0));
    let expected: String = ["pre", "main", "post"]
        .iter()
        .flat_map(|stage| (1..=300).map(move |i| format!("{stage}-{i}\n")))
        .collect();
    h.wait_until("every line", || h.log_file("stages.log").len() >= expected.len());
    assert_eq!(h.log_file("stages.log"), expected);
}

#[test]
fn start_from_inside_a_job_acts_on_that_job_without_waiting() {
    let h = Harness::start(&[(
        "selfstop",
        "pre-start script\n  uprisectl stop\n  echo stopped-myself > $WORK/self\nend script\nexec sleep 300\n",
    )]);
    // As in Upstart, the cancelled start answers with the instance's status.
    let out = h.ctl(&["start", "selfstop"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "selfstop stop/waiting\n");
    // The script was not killed under its feet: it ran to the end.
    assert_eq!(h.work_file("self"), "stopped-myself\n");
    h.wait_status("selfstop", "selfstop stop/waiting");
}

#[test]
fn sigterm_stops_every_job_and_the_daemon_exits() {
    let mut h = Harness::start(&[
        ("a", "start on startup\nexec sleep 300\n"),
        (
            "b",
            "start on startup\npost-stop exec sh -c 'echo cleaned > $WORK/b'\nexec sleep 300\n",
        ),
    ]);
    let a = pid_of(&h.wait_status("a", "a start/running, process"));
    let b = pid_of(&h.wait_status("b", "b start/running, process"));
    assert_eq!(h.terminate(), Some(0));
    assert!(!alive(a) && !alive(b), "no job outlives the daemon");
    assert_eq!(h.work_file("b"), "cleaned\n");
}

#[test]
fn a_shutdown_follows_every_exit_and_stop_script_through() {
    // During a user-mode shutdown a second thread reaps; the loop still sees every exit in
    // order: each job's pre-stop runs, then its main process is killed, then its post-stop
    // runs, and the one that ignores TERM is killed after its kill timeout.
    const SCRIPTS: &str = "start on startup\n\
        pre-stop exec sh -c 'echo pre >> $WORK/$UPSTART_JOB'\n\
        post-stop exec sh -c 'echo post >> $WORK/$UPSTART_JOB'\n";
    let names: Vec<String> = (0..24).map(|i| format!("p{i}")).collect();
    let service = format!("{SCRIPTS}exec sleep 300\n");
    let stubborn = format!("{SCRIPTS}kill timeout 1\nexec sh -c 'trap \"\" TERM; while :; do sleep 1; done'\n");
    let mut jobs: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), service.as_str())).collect();
    jobs.push(("stubborn", stubborn.as_str()));
    let mut h = Harness::start(&jobs);
    let mut pids = Vec::new();
    for (name, _) in &jobs {
        pids.push(pid_of(&h.wait_status(name, &format!("{name} start/running, process"))));
    }
    assert_eq!(h.terminate(), Some(0));
    for (pid, (name, _)) in pids.iter().zip(&jobs) {
        assert!(!alive(*pid), "{name}'s process {pid} outlived the daemon");
        assert_eq!(h.work_file(name), "pre\npost\n", "{name}'s stop scripts");
    }
    let log = h.daemon_log();
    for (pid, name) in pids.iter().zip(&names) {
        let line = format!("{name} main process ({pid}) killed by TERM signal");
        assert!(log.contains(&line), "missing {line:?} in\n{log}");
    }
    let killed = format!("stubborn main process ({}) killed by KILL signal", pids[24]);
    assert!(log.contains(&killed), "missing {killed:?} in\n{log}");
    assert!(!log.contains("internal error"), "{log}");
}

#[test]
fn restart_with_a_pre_stop_really_restarts() {
    let h = Harness::start(&[("rs", "pre-stop exec true\nexec sleep 300\n")]);
    let first = pid_of(&h.ctl(&["start", "rs"]).stdout);
    let out = h.ctl(&["restart", "rs"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let second = pid_of(&out.stdout);
    assert_ne!(first, second, "Upstart left the old process running here");
    assert!(!alive(first));
}

#[test]
fn stop_does_not_wait_for_a_hung_pre_start() {
    let h = Harness::start(&[("hung", "kill timeout 1\npre-start exec sleep 300\nexec sleep 300\n")]);
    assert_eq!(h.ctl(&["start", "hung", "--no-wait"]).code, Some(0));
    h.wait_until("the pre-start", || {
        h.status("hung").starts_with("hung start/pre-start, process")
    });
    let out = h.ctl(&["stop", "hung"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "hung stop/waiting\n");
}

#[test]
fn start_on_values_expand_the_jobs_env() {
    let h = Harness::start(&[(
        "envmatch",
        "env WANT=blue\nstart on colour NAME=$WANT\ntask\nexec sh -c 'echo $NAME >> $WORK/colours'\n",
    )]);
    h.ctl(&["emit", "colour", "NAME=red"]);
    h.ctl(&["emit", "colour", "NAME=blue"]);
    h.wait_until("the blue run", || h.work_file("colours") == "blue\n");
}

#[test]
fn new_and_changed_job_files_are_picked_up_when_idle() {
    let h = Harness::start(&[("svc", "exec sleep 300\n")]);
    // A new file becomes a job without a reload command.
    h.write_job("late", "task\nexec sh -c 'echo late >> $WORK/late'\n");
    h.wait_until("the new job", || h.ctl(&["status", "late"]).code == Some(0));
    assert_eq!(h.ctl(&["start", "late"]).code, Some(0));
    assert_eq!(h.work_file("late"), "late\n");
    // A running job keeps its definition until it is idle.
    let first = pid_of(&h.ctl(&["start", "svc"]).stdout);
    h.write_job("svc", "exec sh -c 'echo v2 > $WORK/v2; exec sleep 300'\n");
    h.wait_until("the reload", || {
        h.daemon_log()
            .contains("svc changed; the new definition takes effect when its instances are idle")
    });
    assert_eq!(h.work_file("v2"), "");
    assert!(alive(first));
    assert_eq!(h.ctl(&["stop", "svc"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "svc"]).code, Some(0));
    h.wait_until("the new definition to run", || h.work_file("v2") == "v2\n");
    // A deleted file: the job disappears.
    std::fs::remove_file(h.path("init/late.conf")).unwrap();
    h.wait_until("the job to go", || {
        h.ctl(&["status", "late"]).stderr == "uprisectl: Unknown job: late\n"
    });
}

#[test]
fn scripts_run_in_any_interpreter_through_fd_3() {
    let h = Harness::start(&[(
        "py",
        "task\nscript python3\n    import os, sys\n    with open(os.environ['WORK'] + '/py', 'w') as out:\n        out.write(sys.argv[0] + '\\n')\nend script\n",
    )]);
    assert_eq!(h.ctl(&["start", "py"]).code, Some(0), "{}", h.daemon_log());
    assert_eq!(h.work_file("py"), "/dev/fd/3\n");
}

#[test]
fn a_request_followed_by_end_of_file_still_gets_its_answer() {
    use std::io::{Read, Write};
    let h = Harness::start(&[("svc", "exec sleep 300\n")]);
    for _ in 0..20 {
        let mut stream = std::os::unix::net::UnixStream::connect(h.socket()).unwrap();
        stream.write_all(b"{\"method\":\"status\",\"job\":\"svc\"}\n").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.contains("\"state\":\"waiting\"") && answer.ends_with("{\"reply\":\"done\"}\n"),
            "{answer}"
        );
    }
}

#[test]
fn a_second_daemon_does_not_take_over_a_live_socket() {
    let h = Harness::start(&[("svc", "exec sleep 300\n")]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uprise"))
        .args(["--user", "--confdir"])
        .arg(h.path("init"))
        .arg("--socket")
        .arg(h.socket())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another uprise is listening on"));
    assert_eq!(
        h.ctl(&["status", "svc"]).code,
        Some(0),
        "the first daemon still answers"
    );
}

/// A job dir named on the command line that is not there is a start-up error of a session
/// daemon, with the path: a typo must not leave a daemon running with no jobs.
#[test]
fn a_missing_job_dir_is_a_start_up_error_in_user_mode() {
    let h = Harness::new(&[]);
    let missing = h.path("nonexistent");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uprise"))
        .args(["--user", "--confdir"])
        .arg(&missing)
        .arg("--socket")
        .arg(h.socket())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("uprise: the job dir {} does not exist\n", missing.display())
    );
    assert!(!h.socket().exists(), "nothing was started");
}

/// The tuned daemon links no libm (see `uprise::lua::math`): a Lua chunk that raises to a
/// power loads it then. (An unoptimized build keeps Lua's math library, which calls libm's
/// other functions, so there libm is mapped from the start; a plain build links libm as
/// usual. `.ci/run` runs these tests on the tuned build.)
#[test]
fn libm_is_loaded_when_lua_first_raises_to_a_power() {
    if cfg!(debug_assertions) || !cfg!(feature = "tuned") {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"libm_is_loaded_when_lua_first_raises_to_a_power: skipped: only the tuned release build leaves libm out\n",
        );
        return;
    }
    let h = Harness::start(&[("plain", "exec sleep 300\n")]);
    let pid = h.daemon.as_ref().unwrap().id();
    let libm_mapped = || {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap()
            .lines()
            .any(|line| line.contains("/libm.so") || line.contains("/libm-"))
    };
    assert_eq!(h.ctl(&["status", "plain"]).code, Some(0));
    assert!(!libm_mapped(), "libm is not mapped at start");
    // Lua folds the constant 2^0.5 while it compiles the hook, which is part of loading it
    h.write_job("powered", "exec sleep 300\nhook started lua local x = 2^0.5\n");
    h.wait_until("the job with the hook to load", || {
        h.ctl(&["status", "powered"]).code == Some(0)
    });
    if cfg!(target_env = "gnu") {
        assert!(libm_mapped(), "libm is mapped once Lua needed pow");
    }
}

/// `status JOB` prints what `list` prints, tab-indented process lines included, under
/// either name. In the tuned build (`tools/build-tuned`), the client's fast path answers it,
/// before the C library starts, with the line the daemon formats (src/bin/uprisectl.rs,
/// `fast`); the daemon's log shows which client asked (the fast path asks for the line as
/// text), so this fails if the fast path gave up and the full client answered instead.
#[test]
fn the_fast_status_prints_what_the_full_client_prints() {
    let mut h = Harness::new(&[
        ("svc", "start on startup\nexec sleep 300\n"),
        ("warm", "start on startup\nexec sleep 300\npost-start exec sleep 300\n"),
        ("idle", "exec sleep 300\n"),
        ("net/eth", "start on startup\nexec sleep 300\n"),
    ]);
    h.spawn(&["--debug"]);
    h.wait_status("svc", "svc start/running");
    h.wait_status("warm", "warm start/post-start");
    h.wait_status("net/eth", "net/eth start/running");
    let list = h.ctl(&["list"]).stdout;
    // one block per instance: its line and the tab-indented process lines under it
    let mut blocks: Vec<String> = Vec::new();
    for line in list.lines() {
        match blocks.last_mut() {
            Some(block) if line.starts_with('\t') => block.push_str(&format!("{line}\n")),
            _ => blocks.push(format!("{line}\n")),
        }
    }
    let linked = h.path("status");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_uprisectl"), &linked).unwrap();
    for job in ["svc", "warm", "idle", "net/eth"] {
        let expected = blocks
            .iter()
            .find(|block| block.starts_with(&format!("{job} ")))
            .unwrap_or_else(|| panic!("{job} in {list}"));
        let fast = h.ctl(&["status", job]);
        assert_eq!((fast.code, &fast.stdout, fast.stderr.as_str()), (Some(0), expected, ""));
        let named = std::process::Command::new(&linked)
            .env("UPRISE_SOCKET", h.socket())
            .arg(job)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&named.stdout),
            expected.as_str(),
            "as `status {job}`"
        );
    }
    assert!(
        blocks.iter().any(|block| block.contains("\n\tpost-start process ")),
        "{list}"
    );
    let unknown = h.ctl(&["status", "nosuch"]);
    assert_eq!(
        (unknown.code, unknown.stderr.as_str()),
        (Some(1), "uprisectl: Unknown job: nosuch\n")
    );
    // Eight status requests for known jobs (each name, twice): by the fast path alone in
    // the tuned build, by the full client otherwise.
    let log = h.daemon_log();
    // (after the `list`: the waits above asked too)
    let after_list = log.split("): List").nth(1).unwrap_or_default();
    let asked = |text: bool| {
        after_list
            .lines()
            .filter(|line| line.contains("Status { job: ") && !line.contains("nosuch"))
            .filter(|line| line.contains(&format!("text: {text} }}")))
            .count()
    };
    if cfg!(all(feature = "tuned", target_arch = "x86_64")) {
        assert_eq!((asked(true), asked(false)), (8, 0), "{log}");
    } else {
        assert_eq!((asked(true), asked(false)), (0, 8), "{log}");
    }
}

#[test]
fn jobs_started_together_run_or_fail_each_on_their_own() {
    // One event starts them all, so the daemon starts each process while the ones before it
    // may still be on their way to exec, and follows each up on its own.
    let jobs: Vec<(String, String)> = (0..24)
        .map(|n| {
            let body = match n % 4 {
                1 => "start on go\nchdir /nonexistent/uprise-dir\nexec sleep 300\n".to_string(),
                3 => format!("start on go\nexec /nonexistent/binary-{n}\n"),
                _ => "start on go\nexec sh -c 'echo up-$UPSTART_JOB; exec sleep 300'\n".to_string(),
            };
            (format!("j{n}"), body)
        })
        .chain([(
            "after".to_string(),
            "task\nstart on started j22\nexec sh -c 'echo seen > $WORK/after'\n".to_string(),
        )])
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(name, body)| (name.as_str(), body.as_str())).collect();
    let h = Harness::start(&jobs);
    let emitted = h.ctl(&["emit", "go"]);
    // Some of the jobs it started failed, so the event did.
    assert_eq!(
        (emitted.code, emitted.stderr.as_str()),
        (Some(1), "uprisectl: Event failed\n")
    );
    let mut pids = std::collections::BTreeSet::new();
    for n in 0..24 {
        let job = format!("j{n}");
        match n % 4 {
            1 => h.wait_until("the chdir failure", || {
                h.daemon_log().contains(&format!(
                    "Failed to spawn {job} main process: unable to change to working directory: No such file or directory"
                ))
            }),
            3 => h.wait_until("the exec failure", || {
                h.daemon_log().contains(&format!(
                    "Failed to spawn {job} main process: unable to execute: No such file or directory"
                ))
            }),
            _ => {
                let status = h.wait_status(&job, &format!("{job} start/running, process "));
                assert!(pids.insert(pid_of(&status)), "{status}");
                h.wait_until("its output in its own log", || h.log_file(&format!("{job}.log")) == format!("up-{job}\n"));
            }
        }
        if n % 2 == 1 {
            h.wait_status(&job, &format!("{job} stop/waiting"));
        }
    }
    h.wait_until("the job started by `started j22`", || h.work_file("after") == "seen\n");
}

/// A reload (the job-dir watch reloads at every write) does not repeat what the last one
/// said about a file: a file's warnings and errors are logged when it is new or changed.
#[test]
fn a_reload_repeats_no_warning_about_an_unchanged_file() {
    let h = Harness::start(&[
        ("bad", "bogus stanza\n"),
        ("warned", "respawn limit 3 10\nexec sleep 300\n"),
        ("fine", "exec sleep 300\n"),
    ]);
    let count = |what: &str| h.daemon_log().matches(what).count();
    assert_eq!(count("bad.conf:1:1: error: Unknown stanza"), 1);
    assert_eq!(count("has no effect without `respawn`"), 1);
    for _ in 0..3 {
        assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
    }
    h.write_job("fine", "exec sleep 301\n");
    assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
    assert_eq!(count("bad.conf:1:1: error: Unknown stanza"), 1, "{}", h.daemon_log());
    assert_eq!(count("has no effect without `respawn`"), 1);
    // Changed, it is said again.
    h.write_job("bad", "# now with a comment\nbogus stanza\n");
    assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
    h.wait_until("the changed file's error", || {
        count("bad.conf:2:1: error: Unknown stanza") == 1
    });
}
