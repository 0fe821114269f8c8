//! Running processes: signalling them or their process group, collecting their exit
//! statuses, and the child-subreaper bit that makes orphaned daemons ours to reap.
//!
//! Signals are plain numbers (`i32`) throughout: real-time signals and anything a job file
//! names must pass, which rules out nix's `Signal` enum.

use std::io;

/// How a child changed state, as `waitpid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// A signal stopped it (`WIFSTOPPED`): what `expect stop` waits for. Also ptrace stops.
    Stopped(i32),
    /// `SIGCONT` resumed it.
    Continued,
}

impl Exit {
    fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else if libc::WIFSTOPPED(status) {
            Exit::Stopped(libc::WSTOPSIG(status))
        } else {
            Exit::Continued
        }
    }
}

fn send(target: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions; callers never pass 0 or -1.
    if unsafe { libc::kill(target, signal) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        e => Err(e),
    }
}

/// Sends `signal` to the process group `pid` leads (`kill(-pid, signal)`). A group that is
/// gone is not an error. `pid` must be above 1: `kill(0)` and `kill(-1)` would reach the
/// daemon's own group or every process.
pub fn kill_group(pid: i32, signal: i32) -> io::Result<()> {
    if pid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pid}"),
        ));
    }
    send(-pid, signal)
}

/// Sends `signal` to the process `pid`. A process that is gone is not an error. `pid` must
/// be positive.
pub fn kill_process(pid: i32, signal: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process {pid}"),
        ));
    }
    send(pid, signal)
}

/// Collects one state change of any child, without blocking
/// (`waitpid(-1, WNOHANG | WUNTRACED | WCONTINUED)`). None when no child has changed
/// state or there are no children. Call it until it returns None.
pub fn reap_any() -> Option<(i32, Exit)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid place for waitpid to write.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED) };
        if pid > 0 {
            return Some((pid, Exit::from_status(status)));
        }
        if pid < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Waits for a state change of any child and collects it, blocking
/// (`waitpid(-1, WUNTRACED | WCONTINUED)`). None once no child is left to wait for.
pub fn wait_any() -> Option<(i32, Exit)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid place for waitpid to write.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WUNTRACED | libc::WCONTINUED) };
        if pid > 0 {
            return Some((pid, Exit::from_status(status)));
        }
        if pid < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Waits for the child `pid` to exit or be killed, and reaps it.
pub(crate) fn wait_for(pid: i32) -> io::Result<Exit> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid place for waitpid to write.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(Exit::from_status(status));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Makes the daemon the reaper of its descendants' orphans (`PR_SET_CHILD_SUBREAPER`), so a
/// daemon that double-forks stays our child. Not needed as PID 1.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// `TERM`, `KILL`, …, or the number as text for a signal without a name.
pub fn signal_name(signal: i32) -> String {
    crate::syntax::values::signal_name(signal).map_or_else(|| signal.to_string(), str::to_owned)
}

/// For tests that touch process-wide state (`waitpid(-1)`, the subreaper bit, signal
/// dispositions): re-runs the test `name` alone in a fresh test process and asserts that
/// it passed. Returns true inside that process, where the test body should run, and
/// false in the caller, which should return.
#[cfg(test)]
pub(crate) fn isolated(name: &str) -> bool {
    const VAR: &str = "UPRISE_SYS_ISOLATED_TEST";
    if std::env::var(VAR).is_ok_and(|running| running == name) {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated run of {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Command;
    use crate::sys::spawn::{SpawnSpec, Stdio, spawn};
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    fn spawn_script(body: &str, stdio: Stdio) -> i32 {
        let command = Command::Script {
            interpreter: Vec::new(),
            body: body.into(),
            line: 0,
        };
        let env = ["PATH=/usr/bin:/bin".to_string()];
        let limits = BTreeMap::new();
        spawn(SpawnSpec {
            job_name: "test",
            what: "main",
            command: &command,
            env: &env,
            stdio,
            umask: 0o022,
            nice: None,
            oom_score: None,
            limits: &limits,
            chroot: None,
            chdir: None,
            setuid: None,
            setgid: None,
            extra_fds: Vec::new(),
        })
        .unwrap()
    }

    /// Polls `reap_any` until it reports `pid`.
    fn reap(pid: i32) -> Exit {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match reap_any() {
                Some((reaped, exit)) if reaped == pid => return exit,
                Some(other) => panic!("unexpected child {other:?}"),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("{pid} was never reaped");
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')))
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(15), "TERM");
        assert_eq!(signal_name(9), "KILL");
        assert_eq!(signal_name(200), "200");
    }

    #[test]
    fn refuses_to_signal_everything() {
        assert!(kill_group(0, 0).is_err());
        assert!(kill_group(1, 0).is_err());
        assert!(kill_group(-5, 0).is_err());
        assert!(kill_process(0, 0).is_err());
        assert!(kill_process(-1, 0).is_err());
    }

    #[test]
    fn kill_group_kills_the_whole_group() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let shell = spawn_script("sleep 1000 &\necho $!\nwait\n", Stdio::Log(write));
        let mut line = String::new();
        BufReader::new(std::fs::File::from(read)).read_line(&mut line).unwrap();
        let sleeper: i32 = line.trim().parse().unwrap();
        let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(sleeper))).unwrap();
        assert_eq!(group.as_raw(), shell);

        kill_group(shell, libc::SIGKILL).unwrap();
        assert_eq!(wait_for(shell).unwrap(), Exit::Signal(libc::SIGKILL));
        // The orphaned sleep is reparented (to init or a subreaper) and dies too.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(sleeper) {
            assert!(Instant::now() < deadline, "{sleeper} survived its group's SIGKILL");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A group that is gone is fine.
        kill_group(shell, libc::SIGTERM).unwrap();
    }

    /// `waitpid(-1)` and the subreaper bit are process-wide: this runs alone in a fresh test
    /// process.
    #[test]
    fn reap_any_reports_exits_stops_and_orphans() {
        if !isolated("sys::process::tests::reap_any_reports_exits_stops_and_orphans") {
            return;
        }
        assert_eq!(reap_any(), None);
        set_child_subreaper().unwrap();

        let exiting = spawn_script("exit 3\n", Stdio::Null);
        assert_eq!(reap(exiting), Exit::Code(3));

        // A shell and its background sleep: as subreaper we reap the orphan too.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let shell = spawn_script("sleep 1000 &\necho $!\nwait\n", Stdio::Log(write));
        let mut line = String::new();
        BufReader::new(std::fs::File::from(read)).read_line(&mut line).unwrap();
        let sleeper: i32 = line.trim().parse().unwrap();
        kill_group(shell, libc::SIGKILL).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < 2 && Instant::now() < deadline {
            match reap_any() {
                Some(reaped) => seen.push(reaped),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        seen.sort_by_key(|(pid, _)| *pid);
        let mut expected = vec![
            (shell, Exit::Signal(libc::SIGKILL)),
            (sleeper, Exit::Signal(libc::SIGKILL)),
        ];
        expected.sort_by_key(|(pid, _)| *pid);
        assert_eq!(seen, expected);

        // Stop and continue, for `expect stop`.
        let stopping = spawn_script("exec sleep 1000\n", Stdio::Null);
        kill_process(stopping, libc::SIGSTOP).unwrap();
        assert_eq!(reap(stopping), Exit::Stopped(libc::SIGSTOP));
        kill_process(stopping, libc::SIGCONT).unwrap();
        assert_eq!(reap(stopping), Exit::Continued);
        kill_process(stopping, libc::SIGTERM).unwrap();
        assert_eq!(reap(stopping), Exit::Signal(libc::SIGTERM));

        assert_eq!(reap_any(), None);
    }
}
