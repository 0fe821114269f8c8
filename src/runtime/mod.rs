//! runtime: the calloop loop that owns everything: signals, the control socket, timers,
//! job output pipes. Callbacks stay thin; the daemon core (`daemon.rs`) decides with the
//! pure `machine` and acts through `sys`.

mod actions;
pub mod admission;
#[cfg(test)]
mod admission_tests;
mod classes;
pub mod control;
#[cfg(test)]
mod core_tests;
pub mod daemon;
pub mod deadlines;
mod environment;
mod events;
mod exits;
mod graph;
mod history;
mod hooks;
pub mod host;
pub mod jobs;
pub mod logger;
mod lua_processes;
mod metrics;
pub mod output;
pub mod readiness;
mod reaper;
pub mod reexec;
mod requests;
pub mod role;
mod spawning;
mod states;
mod status;
pub mod system;
#[cfg(test)]
mod timer_tests;
pub mod timers;
mod views;
mod waiting;
pub mod watch;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use calloop::generic::Generic;
use calloop::{EventLoop, Interest, Mode, PostAction};
use log::{error, info, warn};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::machine::exit::ExitStatus;
use crate::model::{Config, ConfigSource};
use crate::sys::process::{Exit, reap_any};

pub use daemon::{Daemon, Settings};

/// How the daemon was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub user_mode: bool,
    pub confdirs: Vec<PathBuf>,
    pub logdir: PathBuf,
    /// What outlives the daemon: `catch up`'s record of when timers fired (`timers/record.rs`).
    pub statedir: PathBuf,
    /// Where the figures gates weigh are read (`--procfs`, default `/proc`).
    pub procfs: PathBuf,
    /// Lua's budgets: instructions and bytes one run may use (`--lua-budget`, `--lua-memory`).
    pub lua_budget: u64,
    pub lua_memory: usize,
    pub socket: PathBuf,
    /// `None` with `--no-startup-event`.
    pub startup_event: Option<String>,
    /// The daemon's log priority (see `logger`); a re-exec keeps the running one instead.
    pub log_level: log::LevelFilter,
    /// Re-exec: the state file handed over by the previous image.
    pub restore_fd: Option<i32>,
    /// Re-exec: the control listener handed over, used even when the state cannot be read.
    pub listener_fd: Option<i32>,
    /// `--metrics-listen`: where to serve the figures over HTTP (off when `None`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The command line to re-exec with (without the program and the re-exec options).
    pub args: Vec<String>,
    /// The daemon's binary.
    pub exe: PathBuf,
}

/// Descriptors the daemon holds besides one log pipe per job: the staging slots, the loop's,
/// the sockets', and those of children in flight.
const FD_HEADROOM: usize = 128;

const HANDLED_SIGNALS: [Signal; 7] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGPWR,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
];

impl Daemon {
    /// Re-reads every job dir; changed jobs take effect when their instances are idle.
    pub fn reload_configuration(&mut self) {
        let sources: Vec<ConfigSource> = self.confdirs.iter().cloned().map(ConfigSource::Dir).collect();
        let config = Config::load(&sources);
        self.report_diagnostics(&config);
        info!("loaded {} jobs from {} files", config.jobs.len(), config.files_read);
        self.refresh_local_zone();
        self.install(config);
        // Room for a log pipe per job, and the daemon's own: see `make_fd_room`.
        crate::sys::spawn::make_fd_room(self.classes.len() + FD_HEADROOM);
    }

    /// Logs what a load found, file by file: a file's diagnostics when the file is new or has
    /// changed since the last load said them (or they did), not at every reload (the job-dir
    /// watch reloads at every write).
    fn report_diagnostics(&mut self, config: &Config) {
        use std::hash::{Hash, Hasher};
        let mut by_file: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
        for diagnostic in &config.diagnostics {
            let text = config.sources.render(diagnostic);
            by_file.entry(&diagnostic.file).or_default().push(text);
        }
        let mut reported = HashMap::with_capacity(by_file.len());
        for (file, texts) in by_file {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            config.sources.get(file).hash(&mut hasher);
            texts.hash(&mut hasher);
            let fingerprint = hasher.finish();
            if self.reported.get(file) != Some(&fingerprint) {
                for text in &texts {
                    warn!("{}", text.trim_end());
                }
            }
            reported.insert(file.to_string(), fingerprint);
        }
        self.reported = reported;
    }

    /// A child reaped (by the `SIGCHLD` handler, or the shutdown's reaper thread) changed
    /// state.
    pub(crate) fn child_changed(&mut self, pid: i32, exit: Exit) {
        // A process started since the last follow-up may be the one reaped: its pid must be
        // known first.
        self.follow_up_spawns();
        let status = match exit {
            Exit::Code(code) => ExitStatus::Code(code),
            Exit::Signal(signal) => ExitStatus::Signal(signal),
            Exit::Stopped(_) => {
                self.process_stopped(pid);
                return;
            }
            Exit::Continued => return,
        };
        if !self.process_exited(pid, status) {
            // An adopted orphan: a forking job may have finished forking.
            self.adopted_exited();
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGCHLD if self.reaper_running() => {}
            Signal::SIGCHLD => {
                while let Some((pid, exit)) = reap_any() {
                    self.child_changed(pid, exit);
                }
            }
            Signal::SIGTERM => self.begin_shutdown(crate::control::proto::ShutdownAction::Poweroff, None),
            Signal::SIGINT if self.settings.user_mode => self.shutdown(),
            Signal::SIGINT => {
                self.emit("control-alt-delete", Vec::new());
            }
            Signal::SIGHUP => self.reload_configuration(),
            Signal::SIGPWR => {
                self.emit("power-status-changed", Vec::new());
            }
            Signal::SIGWINCH => {
                self.emit("keyboard-request", Vec::new());
            }
            _ => {}
        }
    }
}

/// Runs the daemon until it is told to stop. Errors here are setup failures; once the loop
/// runs, nothing a job or a client does makes it return.
pub fn run(options: Options) -> io::Result<()> {
    logger::init(options.log_level);
    let machine_init = !options.user_mode && std::process::id() == 1 && !system::in_nested_pid_namespace();
    if machine_init {
        logger::use_kernel_log();
        // Ctrl-Alt-Del becomes SIGINT (the control-alt-delete event) instead of a reboot.
        if let Err(error) = nix::sys::reboot::set_cad_enabled(false) {
            warn!("cannot take over Ctrl-Alt-Del: {error}");
        }
    }
    // Block the handled signals before anything else so that none is lost; children get
    // an empty mask back from sys::spawn.
    let mut mask = SigSet::empty();
    for signal in HANDLED_SIGNALS {
        mask.add(signal);
    }
    mask.thread_block().map_err(io::Error::from)?;
    ignore_stray_signals();
    // The daemon's own files (its log dir, a socket dir it makes) do not take the mask of
    // whoever started it; jobs get theirs from the `umask` stanza (022 by default).
    // SAFETY: umask takes a number and cannot fail.
    unsafe { libc::umask(DAEMON_UMASK) };
    let signal_fd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
    if let Err(error) = crate::sys::process::set_child_subreaper() {
        warn!("cannot become a child subreaper: {error}");
    }
    std::fs::create_dir_all(&options.logdir)
        .unwrap_or_else(|error| warn!("cannot create log dir {}: {error}", options.logdir.display()));

    let job_nofile = raise_nofile_limit();
    let mut event_loop: EventLoop<'static, Daemon> =
        EventLoop::try_new().map_err(|error| io::Error::other(error.to_string()))?;
    let settings = Settings {
        user_mode: options.user_mode,
        logdir: options.logdir.clone(),
        socket: options.socket.clone(),
        rotation: output::Rotation::default(),
    };
    let mut daemon = Daemon::new(settings, event_loop.handle(), event_loop.get_signal());
    daemon.confdirs = options.confdirs.clone();
    daemon.job_nofile = job_nofile;
    daemon.global_env = initial_environment(options.user_mode).into();
    daemon.load_timer_state(&options.statedir);
    daemon.admission.set_procfs(options.procfs.clone());
    daemon.set_lua_budgets(options.lua_budget, options.lua_memory);
    // An endpoint that cannot be had is said, and the daemon runs on without it: as init,
    // a taken port must not take the machine down.
    if let Some(addr) = options.metrics_listen
        && let Err(error) = daemon.listen_metrics(addr)
    {
        error!("cannot serve metrics on {addr}: {error}");
    }

    event_loop
        .handle()
        .insert_source(
            Generic::new(signal_fd, Interest::READ, Mode::Level),
            |_, signal_fd, daemon| {
                // SAFETY: the fd is only read here; NoIoDrop hands out a mutable reference.
                let signal_fd: &mut SignalFd = unsafe { signal_fd.get_mut() };
                while let Ok(Some(info)) = signal_fd.read_signal() {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        daemon.on_signal(signal);
                    }
                }
                daemon.settle();
                daemon.flush_clients();
                Ok(PostAction::Continue)
            },
        )
        .map_err(|error| io::Error::other(error.to_string()))?;

    daemon.args = options.args.clone();
    daemon.exe = options.exe.clone();
    let started_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let restored = options.restore_fd.map(|fd| {
        crate::sys::exec::read_state(fd)
            .map_err(|error| error.to_string())
            .and_then(|bytes| crate::reexec::Snapshot::from_bytes(&bytes).map_err(|error| error.to_string()))
    });
    match restored {
        Some(Ok(snapshot)) => {
            if snapshot.requested_at_us > 0 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                info!(
                    "re-exec: new image running {} ms after the request, state read {} ms after",
                    started_us.saturating_sub(snapshot.requested_at_us) / 1000,
                    now.saturating_sub(snapshot.requested_at_us) / 1000
                );
            }
            if let Some(fd) = snapshot.listener_fd.or(options.listener_fd) {
                daemon.restore_listener(fd)?;
            }
            let watch_fd = snapshot.watch_fd;
            if snapshot.all_classes {
                // Serve first; the job dirs are read right after, and changes take effect
                // when their instances are idle, as after any edit.
                daemon.deferred_reload = true;
                daemon.restore(snapshot);
                daemon.deferred_reload = false;
                daemon.watch_confdirs_with(watch_fd);
                daemon.schedule_reload();
            } else {
                daemon.reload_configuration();
                daemon.watch_confdirs_with(watch_fd);
                daemon.restore(snapshot);
            }
        }
        Some(Err(message)) => {
            // Never a dead daemon: carry on without the state, keeping the socket.
            error!("re-exec: cannot read the handed-over state ({message}); continuing without it");
            match options.listener_fd {
                Some(fd) => daemon.restore_listener(fd)?,
                None => daemon.listen(control::bind(&options.socket, options.user_mode)?)?,
            }
            if let Err(error) = daemon.listen_notify() {
                warn!("cannot open the notify socket ({error})");
            }
            daemon.reload_configuration();
            daemon.watch_confdirs();
        }
        None => {
            let listener = control::bind(&options.socket, options.user_mode)?;
            daemon.listen(listener)?;
            if let Err(error) = daemon.listen_notify() {
                warn!("cannot open the notify socket ({error}); `expect notify` jobs will not become ready");
            }
            info!("listening on {}", options.socket.display());
            // The first event is queued before the jobs are loaded (it is handled once they
            // are): runs `catch up` owes go after it, so a job that starts on it is on its way
            // before a missed nightly run starts.
            if let Some(name) = &options.startup_event {
                daemon.emit(name, Vec::new());
            }
            daemon.reload_configuration();
            daemon.watch_confdirs();
        }
    }
    daemon.settle();
    daemon.flush_clients();

    // The last line of defence: a bug that panics must not take the machine down with PID 1.
    // The panic is logged and the loop goes on serving from the state as it is.
    let result = loop {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // No timeout: an idle daemon sleeps until something happens (every deadline
            // and timer is a source of its own), never waking to poll.
            event_loop.run(None, &mut daemon, |daemon| {
                daemon.settle();
                daemon.flush_clients();
            })
        }));
        match run {
            Ok(result) => break result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                error!("internal error ({what}); uprise carries on, please report this");
                logger::flush();
            }
        }
    };
    if let Err(error) = result {
        error!("event loop failed: {error}");
        return Err(io::Error::other(error.to_string()));
    }
    let _ = std::fs::remove_file(&options.socket);
    let _ = std::fs::remove_file(options.socket.with_file_name("notify"));
    // Every job is stopped and every reply sent; nothing here flushes on drop. The process
    // exits next, and the kernel frees its memory and descriptors at once, faster than
    // dropping every job, instance, event and loop source one by one (with 1,000 services,
    // 10-20 ms of the time from SIGTERM to exit).
    std::mem::forget(daemon);
    std::mem::forget(event_loop);
    Ok(())
}

/// The daemon's own umask, whatever it inherited.
const DAEMON_UMASK: libc::mode_t = 0o022;

/// Signals whose default action ends the process, that the daemon gives no meaning to and
/// ignores, in both modes: a stray `kill -USR2` or `kill -ALRM` must not end a session
/// daemon and orphan its jobs (PID 1 is shielded by the kernel; a user daemon is not). The
/// real-time signals from `SIGRTMIN` up are ignored too. `SIGSEGV` and `SIGBUS` keep Rust's
/// handler (a stack overflow is reported before the process ends); a fault cannot be
/// ignored. Every process the daemon starts gets every disposition back at its default
/// (`sys::spawn`), so jobs see none of this.
const IGNORED_SIGNALS: [libc::c_int; 15] = [
    libc::SIGQUIT,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGSYS,
];

/// Ignores [`IGNORED_SIGNALS`] and the real-time signals.
fn ignore_stray_signals() {
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for signal in IGNORED_SIGNALS.into_iter().chain(realtime) {
        // SAFETY: SIG_IGN runs no handler code; the signal numbers are valid on Linux.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// The descriptor limit a root daemon raises itself to, when its hard limit is lower.
const ROOT_NOFILE: u64 = 65536;

/// Raises the daemon's descriptor limit to the hard limit (every service holds a log pipe,
/// every client a connection), and as root to at least [`ROOT_NOFILE`]; returns the limit
/// jobs should get back.
fn raise_nofile_limit() -> Option<(crate::syntax::ast::LimitValue, crate::syntax::ast::LimitValue)> {
    use crate::syntax::ast::LimitValue;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // Root may raise the hard limit too (PID 1 starts with the kernel's 1,024 / 4,096).
    let wanted = if nix::unistd::geteuid().is_root() {
        hard.max(ROOT_NOFILE)
    } else {
        hard
    };
    if soft >= wanted {
        return None;
    }
    let raised =
        setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, hard, hard));
    if let Err(error) = raised {
        warn!("cannot raise the descriptor limit: {error}");
        return None;
    }
    let value = |limit: u64| {
        if limit == libc::RLIM_INFINITY {
            LimitValue::Unlimited
        } else {
            LimitValue::Value(limit)
        }
    };
    Some((value(soft), value(hard)))
}

/// The environment every job starts from. User mode passes the daemon's own environment on,
/// as a session supervisor should; system mode gives Upstart's minimal PATH and TERM.
pub(crate) fn initial_environment(user_mode: bool) -> Vec<String> {
    let mut env: Vec<String> = if user_mode {
        let mut env: Vec<String> = std::env::vars()
            .filter(|(key, _)| key != "UPRISE_SOCKET")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        // Jobs find `uprisectl` beside the daemon, wherever it was installed or built.
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.to_string_lossy().into_owned()));
        if let Some(dir) = exe_dir {
            let path = crate::machine::environ::get(&env, "PATH")
                .unwrap_or("/usr/bin:/bin")
                .to_string();
            if !path.split(':').any(|entry| entry == dir) {
                crate::machine::environ::set(&mut env, "PATH", &format!("{path}:{dir}"));
            }
        }
        env
    } else {
        let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin".to_string()];
        if let Ok(term) = std::env::var("TERM") {
            env.push(format!("TERM={term}"));
        }
        env
    };
    if !env.iter().any(|entry| entry.starts_with("LANG="))
        && let Some(lang) = system_lang()
    {
        env.push(format!("LANG={lang}"));
    }
    env
}

/// `LANG` from the system locale files, for a daemon whose own environment lacks it.
fn system_lang() -> Option<String> {
    for path in ["/etc/default/locale", "/etc/locale.conf"] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            if let Some(value) = line.trim().strip_prefix("LANG=") {
                return Some(value.trim_matches(['"', '\'']).to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    /// The loop's last line of defence is `catch_unwind`, and this crate's binaries take
    /// libgcc's unwinder from its archive (`tools/uprise-gcc`): a panic must still unwind
    /// to the catch, with the value it was raised with. (This test binary is linked the
    /// way the daemon is.)
    #[test]
    fn a_panic_unwinds_to_the_catch() {
        let caught = std::panic::catch_unwind(|| -> u32 { std::panic::panic_any(7_u32) });
        let value = caught.expect_err("the closure panicked");
        assert_eq!(value.downcast_ref::<u32>(), Some(&7));
    }
}
