//! What a stranger on the machine, or careless input, can do to a running uprise: the
//! regression tests of the security and robustness review (issue 14), each against the real
//! daemon. The privilege tests run uprise as root, as PID 1 of a PID namespace, with an
//! unprivileged client or job (`nobody`); they are skipped when the tests do not run as root.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::harness::{Harness, NOBODY, alive, pid_of, proc_status, root_or_skip};

/// Writes a job whose text names the work dir as `$W` and the client as `$CTL` (system
/// mode gives jobs no environment from the test; a copy anyone can run).
fn system_job(h: &Harness, name: &str, body: &str) {
    let text = body
        .replace("$W", &h.path("work").to_string_lossy())
        .replace("$CTL", &h.shared_ctl().to_string_lossy())
        .replace("$NOTIFY", &h.path("run/notify").to_string_lossy());
    h.write_job(name, &text);
}

/// A forged notify message names another process as a job's main process: uprise must not
/// believe it, whatever the sender puts in its environment (`UPSTART_JOB`), and whether the
/// job expects notify or not; then `stop` must not signal the victim.
#[test]
fn a_forged_mainpid_from_another_user_is_ignored() {
    if !root_or_skip("a_forged_mainpid_from_another_user_is_ignored") {
        return;
    }
    let mut h = Harness::new(&[]);
    h.share_with_others();
    system_job(&h, "svc", "exec sleep 100000\n");
    system_job(
        &h,
        "ready",
        "expect notify\nexec sh -c '$CTL notify --ready --status up; exec sleep 100000'\n",
    );
    system_job(
        &h,
        "victim",
        "exec sh -c 'echo $$ > $W/victim.pid; exec sleep 100000'\n",
    );
    // As nobody, claiming to be each job in turn.
    system_job(
        &h,
        "attacker",
        "task\nsetuid nobody\nexec sh -c 'for job in svc ready; do \
         NOTIFY_SOCKET=$NOTIFY UPSTART_JOB=$job UPSTART_INSTANCE= $CTL notify --pid $(cat $W/victim.pid) --status pwned --ready; \
         done; echo sent > $W/attacked'\n",
    );
    h.spawn_system();
    for job in ["svc", "ready", "victim"] {
        assert_eq!(h.ctl(&["start", job]).code, Some(0), "{}", h.daemon_log());
    }
    let svc = pid_of(&h.status("svc"));
    let ready = pid_of(&h.status("ready"));
    let victim = pid_of(&h.status("victim"));
    let out = h.ctl(&["start", "attacker"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    assert_eq!(h.work_file("attacked"), "sent\n");
    // Nothing moved: each job still tracks its own process, and the forged STATUS= is not
    // shown.
    assert_eq!(pid_of(&h.status("svc")), svc);
    assert_eq!(pid_of(&h.status("ready")), ready);
    let verbose = h.ctl(&["status", "-v", "ready"]).stdout;
    assert!(
        verbose.contains("status: up") && !verbose.contains("pwned"),
        "{verbose}"
    );
    // Stopping them leaves the victim running.
    assert_eq!(h.ctl(&["stop", "svc"]).code, Some(0));
    assert_eq!(h.ctl(&["stop", "ready"]).code, Some(0));
    assert_eq!(pid_of(&h.status("victim")), victim, "{}", h.daemon_log());
}

/// A process of an `expect notify` job may still name its own child as the main process.
#[test]
fn mainpid_may_name_a_process_of_the_job() {
    let h = Harness::start(&[(
        "wrapper",
        "expect notify\nexec sh -c 'sleep 100001 & uprisectl notify --pid $! --ready; wait'\n",
    )]);
    let out = h.ctl(&["start", "wrapper"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, h.daemon_log());
    let pid = pid_of(&out.stdout);
    // `$!` is the shell's child, which becomes `sleep` when it execs.
    h.wait_until("the main process to be the sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.starts_with("sleep\u{0}100001"))
    });
}

/// `monitor` shows events with their variables: only the owner and root may watch it.
#[test]
fn monitor_is_refused_to_other_users() {
    if !root_or_skip("monitor_is_refused_to_other_users") {
        return;
    }
    let mut h = Harness::new(&[]);
    h.share_with_others();
    h.spawn_system();
    let out = h.ctl_as(NOBODY, &["monitor"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    // What others may do, they still can.
    assert_eq!(h.ctl_as(NOBODY, &["list"]).code, Some(0));
    let out = h.ctl_as(NOBODY, &["emit", "deploy", "DB_PASSWORD=hunter2"]);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
}

/// What admission and actions add to the protocol: `pools` is open to every user (it says
/// only what `list` does); `start --now`, `action` and `reload` of a job are the owner's and
/// root's.
#[test]
fn other_users_may_read_pools_but_not_skip_the_queue_or_run_actions() {
    if !root_or_skip("other_users_may_read_pools_but_not_skip_the_queue_or_run_actions") {
        return;
    }
    let mut h = Harness::new(&[(
        "web",
        "uses lock 1\nexec sleep 600\nreload exec true\naction rotate exec touch /tmp/uprise-rotated-by-nobody\n",
    )]);
    h.share_with_others();
    h.spawn_system();
    assert_eq!(h.ctl(&["start", "web"]).code, Some(0));
    let out = h.ctl_as(NOBODY, &["pools"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "lock 1/1 (undeclared): web 1\n");
    for args in [
        &["start", "--now", "web"][..],
        &["action", "web", "rotate"],
        &["reload", "web"],
    ] {
        let out = h.ctl_as(NOBODY, args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains("Permission denied"), "{args:?}: {}", out.stderr);
    }
    assert!(!std::path::Path::new("/tmp/uprise-rotated-by-nobody").exists());
}

/// Under umask 000 the daemon still makes private files: it sets its own umask, and jobs
/// get the `umask` stanza's (022 by default).
#[test]
fn the_daemon_does_not_inherit_a_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::new(&[("touch", "task\nexec sh -c 'touch $WORK/made'\n")]);
    let logdir = h.path("log/deeper");
    h.spawn_configured(&["--logdir", &logdir.to_string_lossy()], |command| {
        // SAFETY: umask is async-signal-safe and cannot fail.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
    });
    assert_eq!(h.ctl(&["start", "touch"]).code, Some(0), "{}", h.daemon_log());
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&logdir), 0o755);
    assert_eq!(mode(&h.path("work/made")), 0o644);
}

/// A client that pipelines requests and never reads the replies is no longer read once it
/// is behind: the daemon holds a bounded amount for it, and stays responsive.
#[test]
fn a_client_that_never_reads_costs_a_bounded_amount() {
    let jobs: Vec<(String, String)> = (0..50).map(|i| (format!("j{i}"), "exec sleep 1\n".into())).collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let h = Harness::start(&jobs);
    let pid = h.daemon_pid();
    let rss = || -> u64 {
        proc_status(pid, "VmRSS")
            .trim_end_matches(" kB")
            .parse::<u64>()
            .unwrap_or(0)
    };
    let before = rss();
    let mut stream = UnixStream::connect(h.socket()).unwrap();
    stream.set_nonblocking(true).unwrap();
    let request = b"{\"method\":\"list\"}\n".repeat(1000);
    let mut sent = 0usize;
    let start = Instant::now();
    // Write until the daemon stops taking requests (the socket buffers fill).
    let mut stalled = 0;
    while start.elapsed() < Duration::from_secs(10) && stalled < 50 {
        match stream.write(&request) {
            Ok(count) => {
                sent += count;
                stalled = 0;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stalled += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(stalled >= 50, "the daemon kept reading: {sent} bytes in 10 s");
    // The socket buffers hold a few hundred KiB; the daemon's own share is bounded too.
    assert!(sent < 8 << 20, "{sent} bytes taken");
    assert_eq!(h.ctl(&["status", "j1"]).stdout, "j1 stop/waiting\n");
    let grown = rss().saturating_sub(before);
    assert!(grown < 16 << 10, "the daemon grew by {grown} KiB");
    // It reads again once the client does.
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let mut read = 0;
    while read < 1 << 20 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(count) => read += count,
        }
    }
    assert!(read >= 1 << 20, "only {read} bytes of replies");
}

/// Connects `count` times to `socket` as `uid`, in a child that keeps the connections until
/// it is killed; returns the child and how many connections the daemon refused (answered with
/// an error and closed).
fn hold_connections_as(uid: u32, socket: &std::path::Path, count: usize) -> (std::process::Child, usize) {
    // A helper process is the simplest way to be another user: the test's own `sh` holding
    // descriptors open on the socket through `socat` is not on every machine, and python is.
    let script = format!(
        "import socket, time\n\
         held = []\n\
         for _ in range({count}):\n\
         \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20   s.connect({socket:?})\n\
         \x20   held.append(s)\n\
         time.sleep(0.5)\n\
         refused = 0\n\
         for s in held:\n\
         \x20   s.setblocking(False)\n\
         \x20   try:\n\
         \x20       refused += 1 if b'Too many connections' in s.recv(4096) else 0\n\
         \x20   except BlockingIOError:\n\
         \x20       pass\n\
         print(refused, flush=True)\n\
         time.sleep(300)\n",
        socket = socket.to_string_lossy(),
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .uid(uid)
        .gid(uid)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8];
    while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    (child, line.trim().parse().unwrap_or(usize::MAX))
}

/// One user other than root and the owner can hold 64 connections, not the daemon's table.
#[test]
fn another_user_cannot_take_every_connection() {
    if !root_or_skip("another_user_cannot_take_every_connection") {
        return;
    }
    let mut h = Harness::new(&[]);
    h.share_with_others();
    h.spawn(&[]);
    let (mut child, refused) = hold_connections_as(NOBODY, &h.socket(), 100);
    assert_eq!(refused, 36, "{}", h.daemon_log());
    // Root is still served.
    assert_eq!(h.ctl(&["version"]).code, Some(0));
    assert!(h.daemon_log().contains("refused"), "{}", h.daemon_log());
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts the daemon with a descriptor limit of 48. Root would raise it again, so as root
/// the daemon runs as `nobody`.
fn spawn_with_few_descriptors(h: &mut Harness) {
    let root = nix::unistd::geteuid().is_root();
    if root {
        h.share_with_others();
    }
    h.spawn_configured(&[], |command| {
        if root {
            command.uid(NOBODY).gid(NOBODY).env("HOME", "/");
        }
        few_descriptors(command);
    });
}

fn few_descriptors(command: &mut std::process::Command) {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
}

/// Out of descriptors (its jobs' log pipes took them), the daemon refuses connections
/// instead of spinning on its listener, logs that now and then (not at every attempt), still
/// serves the owner on the descriptor it keeps in reserve, and serves everyone again once
/// descriptors are free.
#[test]
fn out_of_descriptors_the_daemon_refuses_and_recovers() {
    let jobs: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("holder{i}"),
                "start on startup\nconsole log\nexec sleep 1000\n".into(),
            )
        })
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut h = Harness::new(&jobs);
    spawn_with_few_descriptors(&mut h);
    h.wait_until("the jobs to start", || {
        h.ctl(&["list"])
            .stdout
            .lines()
            .filter(|line| line.contains("start/"))
            .count()
            == 40
    });
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut stream = UnixStream::connect(h.socket()).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buffer = [0u8; 512];
        match stream.read(&mut buffer) {
            // Refused: an error line (or, at worst, the connection closed).
            Ok(count) => {
                let text = String::from_utf8_lossy(&buffer[..count]);
                assert!(count == 0 || text.contains("\"error\""), "{text}");
                refused += 1;
            }
            Err(_) => held.push(stream),
        }
    }
    assert!(refused > 80, "only {refused} of 100 refused");
    // Nor does it spin while they wait: it used to take a whole CPU, accepting in vain.
    let pid = h.daemon_pid();
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        fields.get(11).and_then(|utime| utime.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|stime| stime.parse::<u64>().ok()).unwrap_or(0)
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(1));
    let ticks = cpu() - before;
    assert!(
        ticks < 50,
        "the daemon used {ticks} clock ticks of CPU in a second, idle"
    );
    let lines = h.daemon_log().lines().filter(|line| line.contains("refused")).count();
    assert!((1..=3).contains(&lines), "{lines} lines:\n{}", h.daemon_log());
    drop(held);
    h.wait_until("the daemon to serve again", || h.ctl(&["version"]).code == Some(0));
    assert_eq!(h.ctl(&["stop", "holder1"]).code, Some(0));
}

/// A 50 MB file is refused unread, a file of 40,000 bad lines gets 100 diagnostics and a
/// count, and the other jobs load and run meanwhile.
#[test]
fn huge_and_garbage_job_files_are_refused_quickly_and_alone() {
    let h = Harness::new(&[("good", "exec sleep 1000\n")]);
    let big = std::fs::File::create(h.path("init/huge.conf")).unwrap();
    big.set_len(50 << 20).unwrap();
    let bad: String = (0..40_000).map(|i| format!("bogus stanza {i}\n")).collect();
    std::fs::write(h.path("init/bad.conf"), bad).unwrap();
    let mut h = h;
    h.spawn(&[]);
    assert_eq!(h.ctl(&["start", "good"]).code, Some(0));
    let log = h.daemon_log();
    assert!(log.contains("huge.conf: error: Error while loading configuration file: the file is larger than"));
    assert!(
        log.contains("39900 more diagnostic(s) in this file are not shown"),
        "{log}"
    );
    assert!(log.lines().count() < 600, "{} log lines", log.lines().count());
    assert!(h.ctl(&["status", "bad"]).stderr.contains("Unknown job"));
}

/// 60,000 `env` lines and 2,000 `export`s: status, start and stop are linear.
#[test]
fn a_job_with_a_huge_environment_is_handled_in_linear_time() {
    let mut text: String = (0..60_000).map(|i| format!("env V{i}={i}\n")).collect();
    text.extend((0..2_000).map(|i| format!("export V{i}\n")));
    text.push_str("exec sh -c 'echo $V59999 > $WORK/last; exec sleep 1000'\n");
    let h = Harness::start(&[("many", &text)]);
    let start = Instant::now();
    assert_eq!(h.status("many"), "many stop/waiting");
    assert_eq!(h.ctl(&["start", "many"]).code, Some(0), "{}", h.daemon_log());
    h.wait_until("the job's process", || h.work_file("last") == "59999\n");
    assert_eq!(h.ctl(&["stop", "many"]).code, Some(0));
    // Linear is well under a second on any machine; quadratic was minutes.
    assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
}

/// Signals with no meaning to uprise end neither a session daemon nor its jobs; the jobs it
/// starts afterwards get every signal at its default.
#[test]
fn stray_signals_do_not_end_a_user_daemon() {
    let h = Harness::start(&[("sleeper", "exec sleep 1000\n")]);
    let pid = h.daemon_pid();
    assert_eq!(h.ctl(&["start", "sleeper"]).code, Some(0));
    let signals = [
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGSTKFLT,
        libc::SIGABRT,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGRTMIN(),
        libc::SIGRTMIN() + 3,
        libc::SIGRTMAX(),
    ];
    for signal in signals {
        // SAFETY: kill takes plain numbers.
        unsafe { libc::kill(pid, signal) };
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(pid), "{}", h.daemon_log());
    assert_eq!(h.ctl(&["version"]).code, Some(0));
    assert_eq!(h.ctl(&["restart", "sleeper"]).code, Some(0));
    let job = pid_of(&h.status("sleeper"));
    assert_eq!(proc_status(job, "SigIgn"), "0000000000000000");
}

/// Out of descriptors, a job's output cannot be logged: the daemon says so, once per job,
/// and `status -v` says so; the job runs anyway.
#[test]
fn a_log_pipe_that_cannot_be_made_is_reported() {
    let jobs: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("chatty{i}"),
                "start on startup\nexec sh -c 'echo hello; exec sleep 1000'\n".into(),
            )
        })
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut h = Harness::new(&jobs);
    spawn_with_few_descriptors(&mut h);
    // Every job has started, or failed to (a spawn needs descriptors too).
    let mut list = String::new();
    h.wait_until("every start to be through", || {
        list = h.ctl(&["list"]).stdout;
        list.lines().count() == 60
            && list
                .lines()
                .all(|line| line.contains("start/running") || line.contains("stop/waiting"))
    });
    let log = h.daemon_log();
    let reported: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("cannot make a log pipe"))
        .collect();
    let running_unlogged = reported
        .iter()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("chatty")))
        .map(|job| job.trim_end_matches(':'))
        .find(|job| list.contains(&format!("{job} start/running")));
    let Some(job) = running_unlogged else {
        panic!("no running job without a log pipe:\n{list}\n{log}");
    };
    assert_eq!(
        reported.iter().filter(|line| line.contains(&format!("{job}:"))).count(),
        1
    );
    let verbose = h.ctl(&["status", "-v", job]).stdout;
    assert!(
        verbose.contains("output not logged: cannot make a log pipe"),
        "{verbose}"
    );
}

/// A job dir holding a symbolic-link loop and a directory named like a job file: both are
/// reported, the other jobs load.
#[test]
fn odd_entries_in_a_job_dir_are_reported() {
    let h = Harness::new(&[("fine", "exec sleep 1000\n")]);
    std::os::unix::fs::symlink("loop.conf", h.path("init/loop.conf")).unwrap();
    std::fs::create_dir(h.path("init/dir.conf")).unwrap();
    let mut h = h;
    h.spawn(&[]);
    let log = h.daemon_log();
    assert!(
        log.contains("loop.conf: error: Error while loading configuration file"),
        "{log}"
    );
    assert!(log.contains("dir.conf: warning: a directory, not a job file"), "{log}");
    assert_eq!(h.status("fine"), "fine stop/waiting");
}

/// Adding and removing many job files frees the classes' slots: the daemon does not grow
/// round after round, and names resolve to the right job throughout.
#[test]
fn deleted_jobs_leave_nothing_behind() {
    let h = Harness::start(&[("keeper", "exec sleep 1000\n")]);
    let pid = h.daemon_pid();
    // Anonymous memory only: the binary's own pages come and go with the page cache.
    let rss = || -> u64 {
        proc_status(pid, "RssAnon")
            .trim_end_matches(" kB")
            .parse::<u64>()
            .unwrap_or(0)
    };
    let mut samples = Vec::new();
    for round in 0..12 {
        for i in 0..300 {
            h.write_job(&format!("churn{i}"), &format!("# round {round}\nexec sleep 1000\n"));
        }
        assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
        assert_eq!(h.status("churn7"), "churn7 stop/waiting");
        for i in 0..300 {
            std::fs::remove_file(h.path(&format!("init/churn{i}.conf"))).unwrap();
        }
        assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
        assert!(h.ctl(&["status", "churn7"]).stderr.contains("Unknown job"));
        samples.push(rss());
    }
    // The least of rounds 1 to 3 against the least of rounds 9 to 11, so that memory held
    // for a moment at one sample does not count: eight rounds apart, a leak of 230 bytes a
    // job would be 540 KiB.
    let early = samples[1..4].iter().min().copied().unwrap_or(0);
    let late = samples[9..12].iter().min().copied().unwrap_or(0);
    let grown = late.saturating_sub(early);
    assert!(
        grown < 400,
        "the daemon grew by {grown} KiB over eight rounds: {samples:?}"
    );
    assert_eq!(h.status("keeper"), "keeper stop/waiting");
}

/// A log write cut short by a full disk is finished once there is room, not written again:
/// every line appears once, in order; the daemon says once that the dir is full and once
/// that it has room again. The log dir is a small tmpfs in a mount namespace of the daemon's.
#[test]
fn output_written_while_the_disk_fills_is_neither_lost_nor_doubled() {
    if !root_or_skip("output_written_while_the_disk_fills_is_neither_lost_nor_doubled") {
        return;
    }
    let mut h = Harness::new(&[(
        "burst",
        "console log\nexec sh -c 'i=0; while [ $i -lt 3000 ]; do echo \"burst line $i\"; i=$((i+1)); done; \
         while [ ! -e $WORK/go ]; do sleep 0.05; done; echo end; exec sleep 1000'\n",
    )]);
    let logdir = h.path("log").to_string_lossy().into_owned();
    let uprise = env!("CARGO_BIN_EXE_uprise");
    h.spawn_configured(&[], |command| {
        // `unshare` runs the wrapper in a new mount namespace, where the log dir is a
        // 64 KiB tmpfs; the wrapper then becomes the daemon (exec), keeping the pid.
        let shell = format!("mount -t tmpfs -o size=64k tmpfs {logdir} && exec {uprise} \"$@\"");
        let args: Vec<std::ffi::OsString> = command.get_args().map(|arg| arg.to_os_string()).collect();
        let mut wrapped = std::process::Command::new("unshare");
        wrapped
            .args(["--mount", "--propagation", "private", "sh", "-c", &shell, "uprise"])
            .args(args);
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        *command = wrapped;
    });
    let dir = format!("/proc/{}/root{logdir}", h.daemon_pid());
    // Fill most of the disk first, so the job's lines fill the rest.
    std::fs::write(format!("{dir}/filler"), vec![b'x'; 40 << 10]).unwrap();
    assert_eq!(h.ctl(&["start", "burst"]).code, Some(0), "{}", h.daemon_log());
    h.wait_until("the disk to fill", || h.daemon_log().contains("is full"));
    std::fs::remove_file(format!("{dir}/filler")).unwrap();
    std::fs::write(h.path("work/go"), "").unwrap();
    h.wait_until("the last line", || {
        std::fs::read_to_string(format!("{dir}/burst.log")).is_ok_and(|text| text.ends_with("end\n"))
    });
    let text = std::fs::read_to_string(format!("{dir}/burst.log")).unwrap();
    let expected: String = (0..3000).map(|i| format!("burst line {i}\n")).collect::<String>() + "end\n";
    assert!(
        text == expected,
        "the log differs: {} bytes, {} expected",
        text.len(),
        expected.len()
    );
    let log = h.daemon_log();
    assert_eq!(log.matches("is full").count(), 1, "{log}");
    assert_eq!(log.matches("has room again").count(), 1, "{log}");
}
