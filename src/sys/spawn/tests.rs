//! The tests that start real processes: the environment, argv, scripts, stdio, signals, the
//! set-up steps and their failures, no descriptor leaked; and the helpers the tests of the
//! other parts share.

use super::*;
use crate::sys::process::{Exit, kill_process, wait_for};
use nix::unistd::User;
use std::ffi::{CString, c_int};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};

static NO_LIMITS: BTreeMap<Rlimit, (LimitValue, LimitValue)> = BTreeMap::new();

pub(super) const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

pub(super) fn exec(command: &str) -> Command {
    Command::Exec {
        command: command.into(),
    }
}

pub(super) fn script(interpreter: &[&str], body: &str) -> Command {
    Command::Script {
        interpreter: interpreter.iter().map(|s| s.to_string()).collect(),
        body: body.into(),
        line: 0,
    }
}

pub(super) fn env(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|s| s.to_string()).collect()
}

pub(super) fn spec<'a>(command: &'a Command, env: &'a [String], stdio: Stdio) -> SpawnSpec<'a> {
    SpawnSpec {
        job_name: "test",
        what: "main",
        command,
        env,
        stdio,
        umask: 0o022,
        nice: None,
        oom_score: None,
        limits: &NO_LIMITS,
        chroot: None,
        chdir: None,
        setuid: None,
        setgid: None,
        extra_fds: Vec::new(),
    }
}

pub(super) fn pipe() -> (File, OwnedFd) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (File::from(read), write)
}

/// Spawns with stdout and stderr on a pipe; returns the output and the exit.
fn run_with(mut spec: SpawnSpec<'_>) -> (String, Exit) {
    let (mut read, write) = pipe();
    spec.stdio = Stdio::Log(write);
    let pid = spawn(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"));
    let mut output = String::new();
    read.read_to_string(&mut output).unwrap();
    (output, wait_for(pid).unwrap())
}

pub(super) fn run(command: &Command, env: &[String]) -> (String, Exit) {
    run_with(spec(command, env, Stdio::Null))
}

pub(super) fn spawn_error(spec: SpawnSpec<'_>) -> String {
    match spawn(spec) {
        Ok(pid) => panic!("spawned {pid}: {:?}", wait_for(pid)),
        Err(e) => e.to_string(),
    }
}

/// Starts a long-running process; the caller kills it.
pub(super) fn start(spec: SpawnSpec<'_>) -> i32 {
    spawn(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

pub(super) fn stop(pid: i32) {
    kill_process(pid, libc::SIGKILL).unwrap();
    assert_eq!(wait_for(pid).unwrap(), Exit::Signal(libc::SIGKILL));
}

/// The child's argv. `spawn` returns once the child's memory is replaced, which is a
/// moment before the kernel has laid out the new argv, so this waits for it.
fn cmdline(pid: i32) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        if !raw.is_empty() || std::time::Instant::now() > deadline {
            return raw
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
        }
        std::thread::yield_now();
    }
}

/// The child's open descriptors, by number, with what they point to, once it has
/// settled: blocked in its sleep (`sleep 30`) or in a wait for its child (a shell
/// running it). Until then its dynamic loader may hold a file of its own open for a
/// moment (`/etc/ld.so.cache`), which is not a leak.
pub(super) fn open_fds(pid: i32) -> BTreeMap<i32, String> {
    let settled = [libc::SYS_clock_nanosleep, libc::SYS_wait4, libc::SYS_waitid];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // the number of the system call the process is blocked in, first
        let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let number = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<libc::c_long>().ok());
        if number.is_some_and(|number| settled.contains(&number)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{pid} did not settle: {text}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // An fd that closes between the listing and the readlink was transient, not a leak.
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd = entry.file_name().to_string_lossy().parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Leaves some inheritable (non-close-on-exec) descriptors open in the test process.
pub(super) struct Leaks(Vec<c_int>);

impl Leaks {
    pub(super) fn open() -> Leaks {
        let mut fds = Vec::new();
        for _ in 0..3 {
            let mut pair = [0; 2];
            // SAFETY: `pair` has room for the two descriptors pipe writes.
            assert_eq!(unsafe { libc::pipe(pair.as_mut_ptr()) }, 0);
            fds.extend(pair);
        }
        Leaks(fds)
    }
}

impl Drop for Leaks {
    fn drop(&mut self) {
        for fd in &self.0 {
            // SAFETY: these descriptors were opened by `Leaks::open` and nothing else owns them.
            unsafe { libc::close(*fd) };
        }
    }
}

#[test]
fn environment_is_exactly_the_vector() {
    let env = env(&["B=2", "A=one two", "EMPTY=", PATH, "Z=last"]);
    let (output, exit) = run(&exec("/usr/bin/env"), &env);
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(output.lines().collect::<Vec<_>>(), env);
}

#[test]
fn a_nul_byte_in_the_environment_or_the_command_is_refused() {
    let sleeper = exec("sleep 1");
    let bad_env = env(&[PATH, "A=b\0c"]);
    assert_eq!(
        spawn_error(spec(&sleeper, &bad_env, Stdio::Null)),
        "unable to execute: the environment contains a NUL byte"
    );
    let bad_word = exec("sleep\0 1");
    let good_env = env(&[PATH]);
    assert_eq!(
        spawn_error(spec(&bad_word, &good_env, Stdio::Null)),
        "unable to execute: the command contains a NUL byte"
    );
}

#[test]
fn shell_characters_run_through_the_shell() {
    let (output, exit) = run(&exec("echo $HOME"), &env(&["HOME=/home/uprise-test", PATH]));
    assert_eq!((output.as_str(), exit), ("/home/uprise-test\n", Exit::Code(0)));
}

#[test]
fn plain_commands_are_execed_directly() {
    let env = env(&[PATH]);
    let command = exec("sleep 30");
    let pid = start(spec(&command, &env, Stdio::Null));
    assert_eq!(cmdline(pid), ["sleep", "30"]);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("sleep"), "{exe:?}");
    stop(pid);
}

#[test]
fn path_is_searched_in_the_jobs_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/bin/echo", dir.path().join("uprise-test-tool")).unwrap();
    let env = env(&[&format!("PATH=/nonexistent:{}", dir.path().display())]);
    let (output, exit) = run(&exec("uprise-test-tool from the job PATH"), &env);
    assert_eq!((output.as_str(), exit), ("from the job PATH\n", Exit::Code(0)));
    // Not the daemon's PATH.
    assert_eq!(
        spawn_error(spec(&exec("uprise-test-tool"), &[], Stdio::Null)),
        "unable to execute: No such file or directory"
    );
}

#[test]
fn a_file_without_interpreter_line_runs_through_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    std::fs::write(&path, "echo plain \"$1\"\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let command = exec(&format!("{} arg", path.display()));
    // Another test's fork may briefly hold the file's write descriptor (ETXTBSY).
    for _ in 0..100 {
        match spawn(spec(&command, &[], Stdio::Null)) {
            Err(e) if e.error.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
            Ok(pid) => {
                wait_for(pid).unwrap();
                let (output, exit) = run(&command, &[]);
                assert_eq!((output.as_str(), exit), ("plain arg\n", Exit::Code(0)));
                return;
            }
        }
    }
    panic!("text file stayed busy");
}

#[test]
fn shell_script_with_heredoc() {
    let body = "GREETING=hello\ncat <<EOF\nline one\n$GREETING world\nEOF\necho \"after: $0\"\n";
    let (output, exit) = run(&script(&[], body), &env(&[PATH]));
    assert_eq!(output, "line one\nhello world\nafter: /dev/fd/3\n");
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn shell_scripts_stop_at_the_first_error() {
    let (output, exit) = run(&script(&[], "echo one\nfalse\necho two\n"), &env(&[PATH]));
    assert_eq!((output.as_str(), exit), ("one\n", Exit::Code(1)));
}

#[test]
fn python_script_reads_its_body_from_fd_3() {
    let body = "import sys\nfor n in range(3):\n    print(n)\nprint(sys.argv)\n";
    let (output, exit) = run(&script(&["python3"], body), &env(&[PATH]));
    assert_eq!(output, "0\n1\n2\n['/dev/fd/3']\n");
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn script_body_is_not_on_argv() {
    let env = env(&[PATH]);
    let command = script(&[], "# secret body\nsleep 30\n");
    let pid = start(spec(&command, &env, Stdio::Null));
    assert_eq!(cmdline(pid), ["/bin/sh", "-e", "/dev/fd/3"]);
    stop(pid);
}

#[test]
fn signal_mask_is_empty_even_when_the_spawner_blocks_sigchld() {
    let mut blocked = nix::sys::signal::SigSet::empty();
    blocked.add(nix::sys::signal::Signal::SIGCHLD);
    blocked.add(nix::sys::signal::Signal::SIGTERM);
    let old = blocked
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .unwrap();
    let result = run(&exec("/bin/grep ^Sig /proc/self/status"), &[]);
    old.thread_set_mask().unwrap();
    let (output, exit) = result;
    assert_eq!(exit, Exit::Code(0));
    assert!(output.contains("SigBlk:\t0000000000000000\n"), "{output}");
}

#[test]
fn child_leads_its_own_session_and_group() {
    let env = env(&[PATH]);
    let command = exec("sleep 30");
    let pid = start(spec(&command, &env, Stdio::Null));
    let child = nix::unistd::Pid::from_raw(pid);
    assert_eq!(nix::unistd::getsid(Some(child)).unwrap(), child);
    assert_eq!(nix::unistd::getpgid(Some(child)).unwrap(), child);
    stop(pid);
}

#[test]
fn umask_nice_oom_score_and_limits_apply() {
    let mut limits = BTreeMap::new();
    limits.insert(Rlimit::Nofile, (LimitValue::Value(100), LimitValue::Value(200)));
    limits.insert(Rlimit::Core, (LimitValue::Unlimited, LimitValue::Unlimited));
    let env = env(&[PATH]);
    let command = script(
        &[],
        "umask\nnice\ncat /proc/self/oom_score_adj\nulimit -n\nulimit -Hn\nulimit -c\npwd\n",
    );
    let mut spec = spec(&command, &env, Stdio::Null);
    spec.umask = 0o027;
    spec.nice = Some(5);
    spec.oom_score = Some(500);
    spec.limits = &limits;
    spec.chdir = Some("/tmp");
    let (output, exit) = run_with(spec);
    assert_eq!(output, "0027\n5\n500\n100\n200\nunlimited\n/tmp\n");
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn failing_steps_are_named() {
    let env = env(&[PATH]);
    let command = exec("true");
    let mut missing_dir = spec(&command, &env, Stdio::Null);
    missing_dir.chdir = Some("/nonexistent/uprise");
    assert_eq!(
        spawn_error(missing_dir),
        "unable to change to working directory: No such file or directory"
    );

    let mut missing_root = spec(&command, &env, Stdio::Null);
    missing_root.chroot = Some("/nonexistent/uprise");
    assert_eq!(
        spawn_error(missing_root),
        "unable to change root directory: No such file or directory"
    );

    let missing = exec("/nonexistent/uprise-binary");
    assert_eq!(
        spawn_error(spec(&missing, &env, Stdio::Null)),
        "unable to execute: No such file or directory"
    );
    let missing = exec("uprise-no-such-binary --flag");
    assert_eq!(
        spawn_error(spec(&missing, &env, Stdio::Null)),
        "unable to execute: No such file or directory"
    );
    let not_executable = exec("/etc/passwd");
    assert_eq!(
        spawn_error(spec(&not_executable, &env, Stdio::Null)),
        "unable to execute: Permission denied"
    );

    let mut unknown_user = spec(&command, &env, Stdio::Null);
    unknown_user.setuid = Some("uprise-no-such-user");
    let message = spawn_error(unknown_user);
    assert!(message.starts_with("unable to find setuid user"), "{message}");
    let mut unknown_group = spec(&command, &env, Stdio::Null);
    unknown_group.setgid = Some("uprise-no-such-group");
    let message = spawn_error(unknown_group);
    assert!(message.starts_with("unable to find setgid group"), "{message}");

    let mut limits = BTreeMap::new();
    limits.insert(Rlimit::Nofile, (LimitValue::Value(200), LimitValue::Value(100)));
    let mut bad_limit = spec(&command, &env, Stdio::Null);
    bad_limit.limits = &limits;
    assert_eq!(
        spawn_error(bad_limit),
        "unable to set \"nofile\" resource limit: Invalid argument"
    );
}

#[test]
fn step_names_decode() {
    assert_eq!(step_name(Step::Exec as u8), "execute");
    assert_eq!(step_name(Step::Uid as u8), "set user id");
    for (index, resource) in RLIMITS.iter().enumerate() {
        assert_eq!(step_name(LIMIT_STEP + index as u8), rlimit_info(*resource).1);
    }
}

#[test]
fn setuid_drops_to_the_user_and_can_read_the_script() {
    if !nix::unistd::geteuid().is_root() {
        let command = exec("true");
        let mut other = spec(&command, &[], Stdio::Null);
        other.setuid = Some("0");
        // The user's groups are set first (after the user id changes, they could not be),
        // so that is the step a user other than root fails at.
        assert_eq!(spawn_error(other), "unable to set group id: Operation not permitted");
        return;
    }
    let Ok(Some(nobody)) = User::from_name("nobody") else {
        return;
    };
    let env = env(&[PATH]);
    let command = script(&[], "id -u\nid -g\nid -G\n");
    let mut spec = spec(&command, &env, Stdio::Null);
    spec.setuid = Some("nobody");
    let (output, exit) = run_with(spec);
    let groups = nix::unistd::getgrouplist(&CString::new("nobody").unwrap(), nobody.gid).unwrap();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    assert_eq!(
        output,
        format!("{}\n{}\n{}\n", nobody.uid, nobody.gid, groups.join(" "))
    );
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn no_descriptor_leaks_into_exec() {
    let _leaks = Leaks::open();
    let env = env(&[PATH]);
    let command = exec("sleep 30");
    let pid = start(spec(&command, &env, Stdio::Null));
    let fds = open_fds(pid);
    assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "{fds:?}");
    assert!(fds.values().all(|target| target == "/dev/null"), "{fds:?}");
    stop(pid);
}

#[test]
fn no_descriptor_leaks_into_scripts() {
    let _leaks = Leaks::open();
    let env = env(&[PATH]);
    let command = script(&[], "sleep 30\n");
    let pid = start(spec(&command, &env, Stdio::Null));
    // The shell opens /dev/fd/3, so it holds the script pipe twice: on 3 and on a
    // descriptor of its own (dash: 10 or above). Nothing else may be open.
    let fds = open_fds(pid);
    let script_pipe = &fds[&3];
    assert!(script_pipe.starts_with("pipe:"), "{fds:?}");
    for (fd, target) in &fds {
        match fd {
            0..=2 => assert_eq!(target, "/dev/null"),
            3 => {}
            _ => assert_eq!(target, script_pipe, "fd {fd} leaked: {fds:?}"),
        }
    }
    // What the script's own children inherit: exactly 0 to 3.
    let (output, _) = run(&script(&[], "ls /proc/self/fd/ | sort -n | tr '\\n' ' '\n"), &env);
    let listed: Vec<&str> = output.split_whitespace().collect();
    // `ls` opens the directory it lists (one more fd), and the pipeline's ends
    // are its stdout/stdin, so expect 0 1 2 3 and ls's own directory fd.
    assert_eq!(listed.len(), 5, "{output}");
    assert_eq!(&listed[..4], ["0", "1", "2", "3"], "{output}");
    stop(pid);
}

#[test]
fn extra_fds_arrive_as_4_and_5() {
    let _leaks = Leaks::open();
    let (four_read, four_write) = pipe();
    let (five_read, five_write) = pipe();
    let env = env(&[PATH]);
    let command = exec("sleep 30");
    let mut with_fds = spec(&command, &env, Stdio::Null);
    with_fds.extra_fds = vec![four_write.try_clone().unwrap(), five_write.try_clone().unwrap()];
    let pid = start(with_fds);
    let fds = open_fds(pid);
    assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 5], "{fds:?}");
    stop(pid);

    let command = script(&[], "echo four >&4\necho five >&5\n");
    let mut with_fds = spec(&command, &env, Stdio::Null);
    with_fds.extra_fds = vec![four_write, five_write];
    let (_, exit) = run_with(with_fds);
    assert_eq!(exit, Exit::Code(0));
    let mut four = BufReader::new(four_read);
    let mut five = BufReader::new(five_read);
    let (mut line4, mut line5) = (String::new(), String::new());
    four.read_line(&mut line4).unwrap();
    five.read_line(&mut line5).unwrap();
    assert_eq!((line4.as_str(), line5.as_str()), ("four\n", "five\n"));
}

#[test]
fn console_and_inherit_stdio_open() {
    let env = env(&[PATH]);
    let command = exec("true");
    let pid = spawn(spec(&command, &env, Stdio::Inherit)).unwrap();
    assert_eq!(wait_for(pid).unwrap(), Exit::Code(0));
    match spawn(spec(&command, &env, Stdio::Console)) {
        Ok(pid) => assert_eq!(wait_for(pid).unwrap(), Exit::Code(0)),
        Err(e) => assert_eq!(e.step, "open console"),
    }
}

#[test]
fn lua_and_empty_commands_are_refused() {
    let lua = script(&["lua"], "print(1)");
    assert!(spawn_error(spec(&lua, &[], Stdio::Null)).contains("Lua"));
    assert_eq!(
        spawn_error(spec(&exec("  "), &[], Stdio::Null)),
        "unable to execute: the command is empty"
    );
}

/// Wherever std's own error pipe lands (it is created at the lowest free numbers, maybe
/// on 3, 4 or 5, which the child overwrites), failures are still reported and successes
/// are not mistaken for failures. Runs alone in a fresh process, so the layout of free
/// descriptors is known.
#[test]
fn failures_are_reported_whatever_the_free_descriptors() {
    if !crate::sys::process::isolated("sys::spawn::tests::failures_are_reported_whatever_the_free_descriptors") {
        return;
    }
    let env = env(&[PATH]);
    let command = script(&[], "echo ok >&4\necho ok >&5\nexit 7\n");
    let missing = script(&["/nonexistent/interpreter"], "");
    for placeholders in 0..12 {
        // Push the caller's pipes up, then free the low numbers again: spawn's own
        // descriptors and std's pipe fill those holes (inherited stdio opens nothing).
        let held: Vec<File> = (0..placeholders).map(|_| File::open("/dev/null").unwrap()).collect();
        let (mut four_read, four) = pipe();
        let (mut five_read, five) = pipe();
        drop(held);

        let mut failing = spec(&command, &env, Stdio::Inherit);
        failing.chdir = Some("/nonexistent/uprise");
        failing.extra_fds = vec![four.try_clone().unwrap(), five.try_clone().unwrap()];
        assert_eq!(
            spawn_error(failing),
            "unable to change to working directory: No such file or directory"
        );

        let mut failing = spec(&missing, &env, Stdio::Inherit);
        failing.extra_fds = vec![four.try_clone().unwrap(), five.try_clone().unwrap()];
        assert_eq!(spawn_error(failing), "unable to execute: No such file or directory");

        let mut working = spec(&command, &env, Stdio::Inherit);
        working.extra_fds = vec![four, five];
        let pid = start(working);
        assert_eq!(
            wait_for(pid).unwrap(),
            Exit::Code(7),
            "with {placeholders} placeholders"
        );
        // Nothing but the job wrote into its descriptors.
        let (mut got4, mut got5) = (String::new(), String::new());
        four_read.read_to_string(&mut got4).unwrap();
        five_read.read_to_string(&mut got5).unwrap();
        assert_eq!(
            (got4.as_str(), got5.as_str()),
            ("ok\n", "ok\n"),
            "with {placeholders} placeholders"
        );
    }
}

/// Dispositions are process-wide, so this runs alone in a fresh test process.
#[test]
fn ignored_and_caught_signals_are_reset() {
    if !crate::sys::process::isolated("sys::spawn::tests::ignored_and_caught_signals_are_reset") {
        return;
    }
    // SAFETY: this process runs only this test; SIG_IGN involves no handler code.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let (output, exit) = run(&exec("/bin/grep ^Sig /proc/self/status"), &[]);
    assert_eq!(exit, Exit::Code(0));
    assert!(output.contains("SigIgn:\t0000000000000000\n"), "{output}");
    assert!(output.contains("SigBlk:\t0000000000000000\n"), "{output}");
}
