//! A real `uprise --user` in a temp dir (its own confdir, logdir and socket), driven by the
//! real `uprisectl`. Waits poll with a deadline; nothing sleeps as a way of waiting.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

#[must_use]
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub daemon: Option<Child>,
    stderr_path: PathBuf,
    /// The daemon's binary (a copy others can run, after [`Harness::share_with_others`]).
    uprise: PathBuf,
}

pub struct CtlOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Harness {
    /// A harness with job files written, not started yet.
    pub fn new(jobs: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["init", "log", "run", "work", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let stderr_path = dir.path().join("daemon.stderr");
        let harness = Harness {
            dir,
            daemon: None,
            stderr_path,
            uprise: PathBuf::from(env!("CARGO_BIN_EXE_uprise")),
        };
        for (name, text) in jobs {
            harness.write_job(name, text);
        }
        harness
    }

    /// Starts the daemon with `--startup-event startup` and waits for its socket.
    pub fn start(jobs: &[(&str, &str)]) -> Harness {
        let mut harness = Harness::new(jobs);
        harness.spawn(&[]);
        harness
    }

    pub fn spawn(&mut self, extra: &[&str]) {
        let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
        self.spawn_with_path(extra, &path);
    }

    /// Starts the daemon with exactly this `PATH`.
    pub fn spawn_with_path(&mut self, extra: &[&str], path: &str) {
        self.spawn_configured(extra, |command| {
            command.env("PATH", path);
        });
    }

    /// Starts `uprise --user` with `configure` applied to its command first (a `pre_exec`
    /// that lowers a limit, say).
    pub fn spawn_configured(&mut self, extra: &[&str], configure: impl FnOnce(&mut Command)) {
        let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
        let stderr = std::fs::File::create(&self.stderr_path).unwrap();
        let mut command = Command::new(&self.uprise);
        command
            .arg("--user")
            .args(self.dir_args())
            .args(extra)
            .env("WORK", self.path("work"))
            .env("PATH", path);
        configure(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("uprise starts");
        self.await_daemon(child);
    }

    /// The daemon's pid (as seen from the test; for a system harness, `unshare`'s).
    pub fn daemon_pid(&self) -> i32 {
        self.daemon.as_ref().expect("started").id() as i32
    }

    /// Lets other users reach the test's dirs (the socket, the work dir) and run the binaries
    /// (copies in `bin/`: the build dir may be private): for tests that run a client, a job or
    /// the daemon as `nobody`.
    pub fn share_with_others(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, built) in [
            ("uprise", env!("CARGO_BIN_EXE_uprise")),
            ("uprisectl", env!("CARGO_BIN_EXE_uprisectl")),
        ] {
            let copy = bin.join(name);
            if !copy.exists() {
                std::fs::copy(built, &copy).unwrap();
            }
        }
        self.uprise = bin.join("uprise");
        for sub in ["", "bin", "init", "log", "run", "work"] {
            let _ = std::fs::set_permissions(self.path(sub), std::fs::Permissions::from_mode(0o755));
        }
        for sub in ["log", "run", "work"] {
            let _ = std::fs::set_permissions(self.path(sub), std::fs::Permissions::from_mode(0o777));
        }
    }

    /// The client others can run (after [`Harness::share_with_others`]).
    pub fn shared_ctl(&self) -> PathBuf {
        self.path("bin/uprisectl")
    }

    /// Runs `uprisectl --socket … ARGS` as another user (after
    /// [`Harness::share_with_others`]).
    pub fn ctl_as(&self, uid: u32, args: &[&str]) -> CtlOutput {
        use std::os::unix::process::CommandExt;
        let output: Output = Command::new(self.shared_ctl())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .uid(uid)
            .gid(uid)
            .output()
            .expect("uprisectl runs");
        CtlOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The daemon's job dir, log dir and socket, all in the test's temp dir.
    fn dir_args(&self) -> [std::ffi::OsString; 8] {
        [
            "--confdir".into(),
            self.path("init").into(),
            "--logdir".into(),
            self.path("log").into(),
            "--statedir".into(),
            self.path("state").into(),
            "--socket".into(),
            self.socket().into(),
        ]
    }

    /// Keeps the started daemon and waits until its control socket answers.
    fn await_daemon(&mut self, child: Child) {
        self.daemon = Some(child);
        let socket = self.socket();
        self.wait_until("the control socket", || {
            socket.exists() && self.ctl(&["version"]).code == Some(0)
        });
    }

    /// Starts uprise in system mode as PID 1 of a new PID namespace (`unshare --pid --fork`).
    /// Jobs get no environment from the test: their files use absolute paths.
    pub fn spawn_system(&mut self) {
        let stderr = std::fs::File::create(&self.stderr_path).unwrap();
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(&self.uprise)
            .args(self.dir_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("unshare runs (util-linux, as root)");
        self.await_daemon(child);
    }

    /// The pid, outside the namespace, of the uprise that runs as PID 1 inside it.
    pub fn namespace_init(&self) -> i32 {
        let unshare = self.daemon.as_ref().expect("started").id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("unshare has forked uprise")
    }

    /// Waits for the daemon process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.daemon.take()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not exit\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("run/control")
    }

    pub fn write_job(&self, name: &str, text: &str) {
        let path = self.path("init").join(format!("{name}.conf"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Runs `uprisectl --socket … ARGS`.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        let output: Output = Command::new(env!("CARGO_BIN_EXE_uprisectl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("uprisectl runs");
        CtlOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `uprisectl status JOB`'s line.
    pub fn status(&self, job: &str) -> String {
        self.ctl(&["status", job]).stdout.trim_end().to_string()
    }

    pub fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}\n--- daemon stderr ---\n{}",
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_status(&self, job: &str, prefix: &str) -> String {
        let mut last = String::new();
        self.wait_until(&format!("`{job}` to reach `{prefix}`"), || {
            last = self.status(job);
            last.starts_with(prefix)
        });
        last
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn work_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path("work").join(name)).unwrap_or_default()
    }

    pub fn log_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path("log").join(name)).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.daemon.take()?;
        unsafe_kill(child.id() as i32, 15);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                unsafe_kill(child.id() as i32, 9);
                let _ = child.wait();
                panic!("uprise did not exit after SIGTERM\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // In a PID namespace, killing `unshare` does not reach the namespace's init.
        if self.daemon.is_some()
            && let Ok(children) = std::fs::read_to_string(format!(
                "/proc/{0}/task/{0}/children",
                self.daemon.as_ref().map_or(0, Child::id)
            ))
            && let Some(init) = children
                .split_whitespace()
                .next()
                .and_then(|pid| pid.parse::<i32>().ok())
            && std::fs::read_to_string(format!("/proc/{init}/cmdline")).is_ok_and(|cmd| cmd.contains("uprise"))
        {
            unsafe_kill(init, 15);
        }
        if let Some(mut child) = self.daemon.take() {
            unsafe_kill(child.id() as i32, 15);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the tests run as root; tests that need it print why they are skipped otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    // Straight to stderr: libtest would hold back an `eprintln!` of a passing test.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("{test}: skipped: needs root\n").as_bytes(),
    );
    false
}

/// The user tests run unprivileged clients and jobs as.
pub const NOBODY: u32 = 65534;

/// A line of `/proc/PID/status` (`VmRSS`, `SigIgn`, …), without its label.
pub fn proc_status(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(&format!("{field}:"))
                .map(|value| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// The dir holding the test binaries' uprisectl, so jobs can call it.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_uprisectl"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn unsafe_kill(pid: i32, signal: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::try_from(signal).ok(),
    );
}

/// True while a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    let Ok(mut file) = std::fs::File::open(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let state = text
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | None)
}

/// The pid at the end of a status line (`…, process 123`).
pub fn pid_of(status: &str) -> i32 {
    let first = status.lines().next().unwrap_or_default();
    first
        .rsplit(' ')
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in `{status}`"))
}
