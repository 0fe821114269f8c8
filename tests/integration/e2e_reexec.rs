//! Stateful re-exec with real processes: nothing is lost, and every failure leaves a working
//! daemon.

use std::process::{Command, Stdio};

use crate::harness::{Harness, alive, pid_of};

fn ctl_child(h: &Harness, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .arg("--socket")
        .arg(h.socket())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_child(h: &Harness, child: std::process::Child) -> (Option<i32>, String) {
    let mut child = child;
    h.wait_until("a waiting client to be answered", || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The host pid of the process that is `ns_pid` inside the namespace whose init is `init`.
fn host_pid(init: i32, ns_pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .is_some_and(|status| {
                    status
                        .lines()
                        .find(|line| line.starts_with("NSpid:"))
                        .and_then(|line| line.split_whitespace().last())
                        .is_some_and(|last| last == ns_pid.to_string())
                })
        })
}

fn lines_without(list: &str, job: &str) -> Vec<String> {
    list.lines()
        .filter(|line| !line.starts_with(&format!("{job} ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn reexec_keeps_every_job_event_and_waiting_client() {
    let mut jobs: Vec<(String, String)> = (1..=42)
        .map(|n| (format!("s{n}"), "start on startup\nexec sleep 1000\n".to_string()))
        .collect();
    jobs.push(("inst".into(), "instance $N\nexec sleep 1000\n".into()));
    jobs.push((
        "flaky".into(),
        "start on startup\nrespawn\nrespawn limit unlimited\nexec sleep 1000\n".into(),
    ));
    jobs.push((
        "ticker".into(),
        "start on startup\nexec sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.002; done'\n".into(),
    ));
    jobs.push((
        "slowsvc".into(),
        "post-start exec sh -c 'while [ ! -e $WORK/go ]; do sleep 0.02; done'\nexec sleep 1000\n".into(),
    ));
    jobs.push(("gated".into(), "task\nstart on go-task\nexec true\n".into()));
    jobs.push((
        "holder".into(),
        "task\nstart on starting gated\nexec sh -c 'while [ ! -e $WORK/release ]; do sleep 0.02; done'\n".into(),
    ));
    jobs.push(("ab".into(), "start on a and b\nexec sleep 1000\n".into()));
    let refs: Vec<(&str, &str)> = jobs.iter().map(|(name, text)| (name.as_str(), text.as_str())).collect();
    let h = Harness::start(&refs);
    for n in 1..=5 {
        assert_eq!(h.ctl(&["start", "inst", &format!("N={n}")]).code, Some(0));
    }
    for n in 1..=42 {
        h.wait_status(&format!("s{n}"), &format!("s{n} start/running, process"));
    }
    h.wait_status("ticker", "ticker start/running, process");
    let waiting_start = ctl_child(&h, &["start", "slowsvc"]);
    h.wait_until("slowsvc in post-start", || {
        h.status("slowsvc").starts_with("slowsvc start/post-start")
    });
    let waiting_emit = ctl_child(&h, &["emit", "go-task"]);
    h.wait_until("gated blocked in starting", || {
        h.status("gated").starts_with("gated start/starting")
    });
    h.wait_until("holder running", || {
        h.status("holder").starts_with("holder start/running")
    });
    assert_eq!(h.ctl(&["emit", "a", "--no-wait"]).code, Some(0));
    let flaky = pid_of(&h.wait_status("flaky", "flaky start/running, process"));
    let before = h.ctl(&["list"]).stdout;
    let running = before
        .lines()
        .filter(|line| line.contains("start/running, process"))
        .count();
    assert!(running >= 50, "{running} running services\n{before}");

    // A service dies right around the handover; its exit must not be lost.
    crate::harness::unsafe_kill(flaky, 9);
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    assert!(h.daemon_log().contains("re-exec complete"), "{}", h.daemon_log());
    let daemon = h.daemon.as_ref().unwrap().id();
    let cmdline = std::fs::read_to_string(format!("/proc/{daemon}/cmdline")).unwrap();
    assert!(
        cmdline.contains("--restore-fd"),
        "the same pid runs the new image: {cmdline}"
    );

    // Every pid and state is the same (the killed service aside).
    let after = h.ctl(&["list"]).stdout;
    assert_eq!(lines_without(&after, "flaky"), lines_without(&before, "flaky"));
    h.wait_until("flaky to be respawned", || {
        let status = h.status("flaky");
        status.starts_with("flaky start/running, process ") && pid_of(&status) != flaky
    });

    // Both waiting clients get their answers from the new image.
    std::fs::write(h.path("work/go"), "").unwrap();
    let (code, stdout) = wait_child(&h, waiting_start);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("slowsvc start/running, process "), "{stdout}");
    std::fs::write(h.path("work/release"), "").unwrap();
    let (code, _) = wait_child(&h, waiting_emit);
    assert_eq!(code, Some(0));

    // The partial `a and b` match survived.
    assert_eq!(h.ctl(&["emit", "b"]).code, Some(0));
    assert!(h.status("ab").starts_with("ab start/running, process "));

    // Not a line of output was lost or reordered.
    assert_eq!(h.ctl(&["stop", "ticker"]).code, Some(0));
    let log = h.log_file("ticker.log");
    let numbers: Vec<u64> = log.lines().map(|line| line.parse().unwrap()).collect();
    assert!(numbers.len() > 10, "{} lines", numbers.len());
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "the log has every line, in order");
}

/// An upgrade: a new file (a copy of the binary, so another inode) is probed, passes, and
/// takes over; re-executing the running file skips the probe.
#[test]
fn a_new_binary_is_probed_then_takes_over() {
    let h = Harness::start(&[("svc", "start on startup\nexec sleep 1000\n")]);
    let pid = pid_of(&h.wait_status("svc", "svc start/running, process"));
    let daemon = h.daemon.as_ref().unwrap().id();
    let upgraded = h.path("work/uprise-upgraded");
    std::fs::copy(env!("CARGO_BIN_EXE_uprise"), &upgraded).unwrap();
    assert_eq!(h.ctl(&["log-priority", "info"]).code, Some(0));
    let out = h.ctl(&["reexec", "--binary", upgraded.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_link(format!("/proc/{daemon}/exe")).unwrap(),
        upgraded,
        "the same daemon pid runs the new file"
    );
    assert_eq!(h.status("svc"), format!("svc start/running, process {pid}"));
    let log = h.daemon_log();
    assert!(log.contains(&format!("re-executing {}", upgraded.display())), "{log}");
    assert!(!log.contains("no probe"), "a new file is probed: {log}");
    // The running file (now the copy) again: no probe run, same outcome.
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(h.status("svc"), format!("svc start/running, process {pid}"));
    h.wait_until("the skipped probe to be logged", || {
        h.daemon_log()
            .contains(&format!("{} is the running binary; no probe", upgraded.display()))
    });
    assert!(alive(pid));
}

#[test]
fn a_failed_reexec_leaves_the_old_image_serving() {
    let h = Harness::start(&[("svc", "start on startup\nexec sleep 1000\n")]);
    let pid = pid_of(&h.wait_status("svc", "svc start/running, process"));
    let not_uprise = h.path("work/not-uprise.sh");
    std::fs::write(&not_uprise, "#!/bin/sh\necho 'cannot read this state' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&not_uprise, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cases: [(&str, &str); 4] = [
        ("/nonexistent/uprise", "cannot run /nonexistent/uprise"),
        ("/bin/false", "cannot take over (exit 1)"),
        ("/bin/true", "did not answer the probe"),
        (not_uprise.to_str().unwrap(), "cannot read this state"),
    ];
    for (binary, message) in cases {
        let out = h.ctl(&["reexec", "--binary", binary]);
        assert_eq!(out.code, Some(1), "{binary}");
        assert!(out.stderr.contains(message), "{binary}: {}", out.stderr);
        assert_eq!(h.status("svc"), format!("svc start/running, process {pid}"));
    }
    assert!(alive(pid));
    let _ = std::fs::remove_file(not_uprise);
}

#[test]
fn a_state_it_cannot_read_makes_the_new_image_start_without_it() {
    let h = Harness::new(&[("svc", "exec sleep 1000\n")]);
    for (name, state) in [
        (
            "corrupt",
            "{\"format\":\"uprise-state\",\"version\":1,\"events\":[{\"id\":".to_string(),
        ),
        ("future", "{\"format\":\"uprise-state\",\"version\":99}".to_string()),
    ] {
        let file = h.path(&format!("work/{name}.json"));
        std::fs::write(&file, state).unwrap();
        // The probe refuses it, so an old image would carry on…
        let probe = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {} --reexec-probe 3 3<{}",
                env!("CARGO_BIN_EXE_uprise"),
                file.display()
            ))
            .output()
            .unwrap();
        assert_eq!(probe.status.code(), Some(1), "{name}");
        let complaint = String::from_utf8_lossy(&probe.stderr);
        assert!(
            complaint.contains(if name == "future" { "version 99" } else { "corrupt" }),
            "{complaint}"
        );
        // …and a new image handed such a state starts without it and serves.
        let mut daemon = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {} --user --confdir {} --logdir {} --socket {} --restore-fd 3 3<{} 2>{}",
                env!("CARGO_BIN_EXE_uprise"),
                h.path("init").display(),
                h.path("log").display(),
                h.socket().display(),
                file.display(),
                h.path(&format!("work/{name}.err")).display(),
            ))
            .spawn()
            .unwrap();
        h.wait_until("the daemon to serve", || {
            h.ctl(&["status", "svc"]).stdout == "svc stop/waiting\n"
        });
        let log = std::fs::read_to_string(h.path(&format!("work/{name}.err"))).unwrap();
        assert!(log.contains("cannot read the handed-over state"), "{log}");
        crate::harness::unsafe_kill(daemon.id() as i32, 15);
        let _ = daemon.wait();
    }
}

#[test]
fn reexec_works_for_pid_1_in_a_pid_namespace() {
    if !crate::harness::root_or_skip("reexec_works_for_pid_1_in_a_pid_namespace") {
        return;
    }
    let mut h = Harness::new(&[]);
    let work = h.path("work");
    for n in 1..=5 {
        h.write_job(&format!("s{n}"), "start on startup\nexec sleep 1000\n");
    }
    h.write_job("flaky", "start on startup\nrespawn\nexec sleep 1000\n");
    h.write_job(
        "marker",
        &format!(
            "start on started s1\ntask\nexec sh -c 'echo ran >> {}/marker'\n",
            work.display()
        ),
    );
    h.spawn_system();
    for n in 1..=5 {
        h.wait_status(&format!("s{n}"), &format!("s{n} start/running, process"));
    }
    let flaky = pid_of(&h.wait_status("flaky", "flaky start/running, process"));
    let before = h.ctl(&["list"]).stdout;
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    assert_eq!(h.ctl(&["list"]).stdout, before);
    // The init of the namespace is still the same process, and still respawns.
    let init = h.namespace_init();
    assert!(
        std::fs::read_to_string(format!("/proc/{init}/cmdline"))
            .unwrap()
            .contains("--restore-fd")
    );
    // Status shows pids as the namespace sees them; signal the process by its host pid.
    let host_flaky = host_pid(init, flaky).expect("flaky runs in the namespace");
    crate::harness::unsafe_kill(host_flaky, 9);
    h.wait_until("flaky to be respawned", || {
        let status = h.status("flaky");
        status.starts_with("flaky start/running, process ") && status != format!("flaky start/running, process {flaky}")
    });
    assert_eq!(h.ctl(&["shutdown"]).code, Some(0));
    assert_eq!(h.wait_exit(), Some(0), "{}", h.daemon_log());
    assert_eq!(
        std::fs::read_to_string(work.join("marker")).unwrap(),
        "ran\n",
        "no second startup after the re-exec"
    );
}

#[test]
fn every_past_state_format_still_loads() {
    let dir = std::path::Path::new("tests/reexec");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let snapshot =
            uprise::reexec::Snapshot::from_bytes(&bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(!snapshot.classes.is_empty(), "{} carries jobs", path.display());
        // Every job can be rebuilt, whichever way it was written.
        for class in &snapshot.classes {
            let job = class
                .rebuild_job()
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert!(class.name.is_empty() || job.name == class.name);
            // Every output pipe has a read end to take over: version 1 kept one pipe per
            // instance (both ends), version 2 one read end per process.
            for instance in &class.instances {
                if let Some(log) = &instance.log {
                    let ends = log.read_fds.len() + usize::from(log.read_fd.is_some());
                    assert!(ends >= 1, "{}: {} has no read end", path.display(), class.name);
                    if snapshot.version >= 2 {
                        assert_eq!((log.read_fd, log.write_fd), (None, None), "{}", path.display());
                    }
                }
            }
        }
        // Version 3: the timers' times are readable, and name operands of jobs it carries.
        let jobs: Vec<&str> = snapshot.classes.iter().map(|class| class.name.as_str()).collect();
        for timer in &snapshot.timers {
            assert!(jobs.contains(&timer.operand.job.as_str()), "{}", path.display());
            for time in timer.due.iter().chain(&timer.last_fired) {
                time.parse::<jiff::Timestamp>()
                    .unwrap_or_else(|error| panic!("{}: {time}: {error}", path.display()));
            }
            assert!(timer.due.is_some() || timer.in_ms.is_some(), "{}", path.display());
        }
        for firing in &snapshot.firings {
            assert!(jobs.contains(&firing.operand.job.as_str()), "{}", path.display());
            firing.scheduled.parse::<jiff::Timestamp>().unwrap();
        }
        if snapshot.version == 3 {
            assert!(
                !snapshot.timers.is_empty() && !snapshot.firings.is_empty(),
                "{}",
                path.display()
            );
        }
        // Version 4: queued starts have tickets below the next one and readable times, a
        // holder's pools are known, and a watershed run is marked.
        if snapshot.version >= 4 {
            let instances = || snapshot.classes.iter().flat_map(|class| &class.instances);
            let queued: Vec<_> = instances().filter_map(|instance| instance.queued.as_ref()).collect();
            assert!(queued.len() >= 3, "{}", path.display());
            for start in &queued {
                assert!(
                    start.ticket >= 1 && start.ticket <= snapshot.next_ticket,
                    "{}",
                    path.display()
                );
                start.since.parse::<jiff::Timestamp>().unwrap();
            }
            assert!(queued.iter().any(|start| start.gate.is_some()));
            let declared: Vec<&str> = snapshot.pools.iter().map(|(name, _)| name.as_str()).collect();
            assert!(
                instances()
                    .flat_map(|instance| &instance.holds)
                    .all(|(pool, _)| declared.contains(&pool.as_str()))
            );
            assert!(instances().any(|instance| !instance.holds.is_empty()));
            assert!(instances().any(|instance| instance.watershed.is_some()));
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn timers_under_way_survive_a_reexec() {
    let h = Harness::start(&[
        (
            "slow",
            "pre-start timeout 1500ms\nkill timeout 1\npre-start exec sleep 300\nexec sleep 300\n",
        ),
        (
            "stubborn",
            "kill timeout 2\nexec sh -c 'trap \"\" TERM; touch $WORK/trapped; while :; do sleep 0.05; done'\n",
        ),
    ]);
    assert_eq!(h.ctl(&["start", "slow", "--no-wait"]).code, Some(0));
    h.wait_until("the pre-start", || {
        h.status("slow").starts_with("slow start/pre-start, process")
    });
    let stubborn = pid_of(&h.ctl(&["start", "stubborn"]).stdout);
    h.wait_until("the TERM trap", || h.path("work/trapped").exists());
    assert_eq!(h.ctl(&["stop", "stubborn", "--no-wait"]).code, Some(0));
    assert_eq!(h.ctl(&["reexec"]).code, Some(0), "{}", h.daemon_log());
    // The stage timeout fires in the new image, with the timeout as written.
    h.wait_until("the pre-start timeout", || {
        h.daemon_log().contains("slow pre-start process (")
    });
    h.wait_until("the timeout message", || {
        h.daemon_log().contains("timed out after 1s500ms; killing it")
    });
    h.wait_status("slow", "slow stop/waiting");
    // The pending SIGKILL is sent by the new image.
    h.wait_until("the stubborn process to be killed", || !alive(stubborn));
    h.wait_status("stubborn", "stubborn stop/waiting");
}

#[test]
fn the_job_dir_watch_carries_over_a_reexec() {
    let h = Harness::start(&[(
        "parent",
        "start on startup\nexec sh -c 'echo $PPID > $WORK/ppid; exec sleep 300'\n",
    )]);
    h.wait_until("the job", || h.work_file("ppid").ends_with('\n'));
    let daemon: i32 = h.work_file("ppid").trim().parse().unwrap();
    let inotify_fds = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .flatten()
            .filter(|entry| {
                std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:inotify")
            })
            .count()
    };
    let before = inotify_fds();
    assert_eq!(before, 2, "the loop's descriptor and the daemon's own");
    let loaded = h.daemon_log().matches("loaded 1 jobs").count();
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    // The new image reads the job dirs again right after it answers.
    h.wait_until("the reload after the re-exec", || {
        h.daemon_log().matches("loaded 1 jobs").count() > loaded
    });
    assert_eq!(inotify_fds(), before, "the instance was taken over, none left behind");
    // Only the watch can find a file written now.
    h.write_job("late", "exec sleep 300\n");
    h.wait_until("the new job file", || h.status("late") == "late stop/waiting");
}
