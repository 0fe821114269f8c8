//! The daemon core driven in-process, on a fake [`Host`]: spawns, exits, signals and the
//! clock are the test's. What a job's life looks like to the core, decision by decision,
//! without a process: the end-to-end tests do the same with real ones.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use calloop::EventLoop;
use jiff::Timestamp;

use crate::control::proto::{Reply, status_line};
use crate::model::Config;
use crate::sys::process::Exit;
use crate::sys::spawn::{SpawnError, SpawnSpec};

use super::daemon::{Daemon, Outgoing, Settings};
use super::host::{Begun, Host};
use super::output::Rotation;

/// What the fake host saw and what it says the time is.
pub(super) struct Seen {
    pub(super) now: Instant,
    pub(super) wall: Timestamp,
    seed: u64,
    next_pid: i32,
    /// `JOB WHAT PID` for every process started, in order.
    spawned: Vec<String>,
    /// Each process's `UPRISE_SCHEDULED` (empty when it has none), in the same order.
    scheduled: Vec<String>,
    /// `(pid, signal, group)` for every signal sent, in order.
    signals: Vec<(i32, i32, bool)>,
}

#[derive(Clone)]
pub(super) struct FakeHost(pub(super) Rc<RefCell<Seen>>);

impl Host for FakeHost {
    fn now(&self) -> Instant {
        self.0.borrow().now
    }

    fn wall_now(&self) -> Timestamp {
        self.0.borrow().wall
    }

    fn random(&mut self) -> u64 {
        let mut seen = self.0.borrow_mut();
        seen.seed ^= seen.seed << 13;
        seen.seed ^= seen.seed >> 7;
        seen.seed ^= seen.seed << 17;
        seen.seed
    }

    fn spawn(&mut self, spec: SpawnSpec<'_>) -> Result<Begun, SpawnError> {
        let mut seen = self.0.borrow_mut();
        let pid = seen.next_pid;
        seen.next_pid += 1;
        seen.spawned.push(format!("{} {} {pid}", spec.job_name, spec.what));
        let scheduled = spec
            .env
            .iter()
            .find_map(|entry| entry.strip_prefix("UPRISE_SCHEDULED="));
        seen.scheduled.push(scheduled.unwrap_or_default().to_string());
        Ok(Begun::Done(Ok(pid)))
    }

    fn signal(&mut self, pid: i32, signal: i32, group: bool) -> std::io::Result<()> {
        self.0.borrow_mut().signals.push((pid, signal, group));
        Ok(())
    }

    fn leads_group(&self, _pid: i32) -> bool {
        true
    }
}

/// A daemon core with jobs installed, on a fake host.
pub(super) struct Core {
    pub(super) daemon: Daemon,
    pub(super) host: FakeHost,
    _event_loop: EventLoop<'static, Daemon>,
    _dir: tempfile::TempDir,
}

/// `(name, text)` job definitions, with `console none` added, so that no log pipe is made.
pub(super) fn jobs_config(jobs: &[(&str, &str)]) -> Config {
    let mut config = Config::default();
    for (name, text) in jobs {
        let one = Config::from_text(name, &format!("{name}.conf"), &format!("console none\n{text}"));
        assert!(one.is_valid(), "{name}: {:?}", one.diagnostics);
        config.jobs.extend(one.jobs);
    }
    config
}

impl Core {
    /// Installs `(name, text)` jobs; `console none` is added, so that no log pipe is made.
    pub(super) fn new(jobs: &[(&str, &str)]) -> Core {
        Core::at("2026-03-29T00:00:00Z", None, jobs)
    }

    /// A core whose wall clock reads `wall` (RFC 3339), with `catch up`'s state in `statedir`.
    pub(super) fn at(wall: &str, statedir: Option<&std::path::Path>, jobs: &[(&str, &str)]) -> Core {
        let dir = tempfile::tempdir().unwrap();
        let event_loop: EventLoop<'static, Daemon> = EventLoop::try_new().unwrap();
        let settings = Settings {
            user_mode: true,
            logdir: dir.path().join("log"),
            socket: dir.path().join("control"),
            rotation: Rotation::default(),
        };
        let host = FakeHost(Rc::new(RefCell::new(Seen {
            now: Instant::now(),
            wall: wall.parse().unwrap(),
            seed: 0x2545_F491_4F6C_DD1D,
            next_pid: 100,
            spawned: Vec::new(),
            scheduled: Vec::new(),
            signals: Vec::new(),
        })));
        let mut daemon = Daemon::with_host(
            settings,
            event_loop.handle(),
            event_loop.get_signal(),
            Box::new(host.clone()),
        );
        // The daemon's local zone, whatever the machine's: UTC.
        daemon.timers.local = jiff::tz::TimeZone::UTC;
        if let Some(statedir) = statedir {
            daemon.load_timer_state(statedir);
        }
        daemon.install(jobs_config(jobs));
        daemon.settle();
        Core {
            daemon,
            host,
            _event_loop: event_loop,
            _dir: dir,
        }
    }

    pub(super) fn status(&self, job: &str) -> String {
        let class = self.daemon.lookup(job).unwrap();
        status_line(&self.daemon.instance_status(&(class, String::new())))
    }

    pub(super) fn emit(&mut self, event: &str) {
        self.daemon.emit(event, Vec::new());
        self.daemon.settle();
    }

    /// The pid of the last process started for `job` as `what` (`main`, `pre-start`, …).
    pub(super) fn pid(&self, job: &str, what: &str) -> i32 {
        let prefix = format!("{job} {what} ");
        let seen = self.host.0.borrow();
        let line = seen.spawned.iter().rev().find(|line| line.starts_with(&prefix));
        line.and_then(|line| line[prefix.len()..].parse().ok())
            .unwrap_or_else(|| panic!("no {what} process of {job}: {:?}", seen.spawned))
    }

    pub(super) fn spawned(&self) -> Vec<String> {
        self.host.0.borrow().spawned.clone()
    }

    pub(super) fn signals(&self) -> Vec<(i32, i32, bool)> {
        self.host.0.borrow().signals.clone()
    }

    /// A process ends with `code`.
    pub(super) fn exit(&mut self, pid: i32, code: i32) {
        self.daemon.child_changed(pid, Exit::Code(code));
        self.daemon.settle();
    }

    /// Both clocks move on by `by`; what is due happens.
    pub(super) fn advance(&mut self, by: Duration) {
        {
            let mut seen = self.host.0.borrow_mut();
            seen.now += by;
            seen.wall += jiff::SignedDuration::try_from(by).unwrap();
        }
        self.daemon.deadlines_due();
        self.daemon.timers_due();
        self.daemon.settle();
    }

    /// Each process's `UPRISE_SCHEDULED`, in the order they started.
    pub(super) fn scheduled(&self) -> Vec<String> {
        self.host.0.borrow().scheduled.clone()
    }

    /// The wall clock is set to `wall` (the monotonic one does not move), as by
    /// `settimeofday`: the daemon hears of it as from its clock timer.
    pub(super) fn set_wall(&mut self, wall: &str) {
        self.host.0.borrow_mut().wall = wall.parse().unwrap();
        self.daemon.wall_clock_changed();
        self.daemon.settle();
    }

    /// The wall clock now.
    pub(super) fn wall(&self) -> Timestamp {
        self.host.0.borrow().wall
    }

    /// The replies queued for `client`, as `error: MESSAGE`, `status: LINE` or `done`.
    pub(super) fn replies(&mut self, client: u64) -> Vec<String> {
        let mut out = Vec::new();
        let mut others = Vec::new();
        for item in std::mem::take(&mut self.daemon.outgoing) {
            match item {
                Outgoing::Reply(id, reply) if id == client => out.push(match reply {
                    Reply::Error { message } => format!("error: {message}"),
                    Reply::Status { instances } => format!("status: {}", status_line(&instances[0])),
                    Reply::Done => "done".into(),
                    other => format!("{other:?}"),
                }),
                Outgoing::Finish(id) if id == client => {}
                other => others.push(other),
            }
        }
        self.daemon.outgoing = others;
        out
    }
}

#[test]
fn an_event_starts_a_chain_of_three_jobs_in_order() {
    let mut core = Core::new(&[
        ("c", "start on started b\nexec c"),
        ("a", "start on go\nexec a"),
        ("b", "start on started a\nexec b"),
    ]);
    core.emit("go");
    assert_eq!(core.spawned(), ["a main 100", "b main 101", "c main 102"]);
    for (job, pid) in [("a", 100), ("b", 101), ("c", 102)] {
        assert_eq!(core.status(job), format!("{job} start/running, process {pid}"));
    }
    // The `started` of each waited for nothing: no event is left.
    assert!(core.daemon.events.is_empty());
}

#[test]
fn a_stop_during_pre_start_runs_no_main_process() {
    let mut core = Core::new(&[("web", "pre-start exec warm\nexec serve")]);
    core.daemon
        .request_start(1, "web", Vec::new(), None, true, false)
        .unwrap();
    core.daemon.settle();
    let pre_start = core.pid("web", "pre-start");
    assert_eq!(core.status("web"), format!("web start/pre-start, process {pre_start}"));
    core.daemon.request_stop(2, "web", Vec::new(), None, true).unwrap();
    core.daemon.settle();
    // The script may finish: it has the kill timeout (5 s) to do so.
    assert_eq!(core.status("web"), format!("web stop/pre-start, process {pre_start}"));
    core.advance(Duration::from_secs(4));
    assert!(core.signals().is_empty());
    core.exit(pre_start, 0);
    assert_eq!(core.status("web"), "web stop/waiting");
    assert_eq!(core.spawned(), [format!("web pre-start {pre_start}")]);
    // Both clients hear where the instance came to rest: the start was called off, it did
    // not fail.
    assert_eq!(core.replies(1), ["status: web stop/waiting", "done"]);
    assert_eq!(core.replies(2), ["status: web stop/waiting", "done"]);
}

#[test]
fn a_pre_start_that_outlives_the_grace_is_killed() {
    let mut core = Core::new(&[("web", "pre-start exec warm\nexec serve\nkill timeout 2")]);
    core.daemon
        .request_start(1, "web", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    let pre_start = core.pid("web", "pre-start");
    core.daemon.request_stop(2, "web", Vec::new(), None, false).unwrap();
    core.daemon.settle();
    core.advance(Duration::from_millis(2001));
    assert_eq!(core.signals(), [(pre_start, libc::SIGTERM, true)]);
    core.exit(pre_start, 128 + libc::SIGTERM);
    assert_eq!(core.status("web"), "web stop/waiting");
}

#[test]
fn a_respawn_limit_stops_the_job() {
    let mut core = Core::new(&[("flaky", "respawn\nrespawn limit 2 60\nexec flaky")]);
    core.daemon
        .request_start(1, "flaky", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    for run in 0..2 {
        let pid = core.pid("flaky", "main");
        core.exit(pid, 1);
        assert_eq!(core.spawned().len(), run + 2, "respawned after exit {run}");
    }
    let pid = core.pid("flaky", "main");
    core.exit(pid, 1);
    assert_eq!(core.spawned().len(), 3, "no fourth run");
    assert_eq!(core.status("flaky"), "flaky stop/waiting");
    let verbose = core
        .daemon
        .instance_status(&(core.daemon.lookup("flaky").unwrap(), String::new()));
    assert!(
        verbose
            .detail
            .iter()
            .any(|line| line.contains("RESULT=failed PROCESS=respawn")),
        "{:?}",
        verbose.detail
    );
}

#[test]
fn a_stop_escalates_to_sigkill_and_then_gives_up() {
    let mut core = Core::new(&[("stubborn", "exec stubborn\nkill timeout 3\nkill abandon 10")]);
    core.daemon
        .request_start(1, "stubborn", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    let pid = core.pid("stubborn", "main");
    core.daemon.request_stop(2, "stubborn", Vec::new(), None, true).unwrap();
    core.daemon.settle();
    assert_eq!(core.signals(), [(pid, libc::SIGTERM, true)]);
    assert_eq!(core.status("stubborn"), format!("stubborn stop/killed, process {pid}"));
    core.advance(Duration::from_millis(2999));
    assert_eq!(core.signals().len(), 1, "not before the kill timeout");
    core.advance(Duration::from_millis(1));
    assert_eq!(core.signals(), [(pid, libc::SIGTERM, true), (pid, libc::SIGKILL, true)]);
    // It does not die (stuck in the kernel): after `kill abandon` it is treated as gone.
    core.advance(Duration::from_secs(9));
    assert_eq!(core.status("stubborn"), format!("stubborn stop/killed, process {pid}"));
    assert!(core.replies(2).is_empty());
    core.advance(Duration::from_secs(1));
    assert_eq!(core.status("stubborn"), "stubborn stop/waiting");
    assert_eq!(core.replies(2), ["status: stubborn stop/waiting", "done"]);
}

#[test]
fn a_client_waiting_on_an_instance_that_goes_gets_an_answer() {
    let mut core = Core::new(&[("doomed", "pre-start exec check\nexec serve")]);
    core.daemon
        .request_start(7, "doomed", Vec::new(), None, true, false)
        .unwrap();
    core.daemon.settle();
    assert!(core.replies(7).is_empty(), "the client waits");
    let pre_start = core.pid("doomed", "pre-start");
    core.exit(pre_start, 1);
    // The instance is gone (nothing persists in `waiting`), and the client heard why.
    assert_eq!(core.status("doomed"), "doomed stop/waiting");
    assert!(core.daemon.client_waits.is_empty());
    assert_eq!(core.replies(7), ["error: Job failed to start"]);
}

/// A deadline set for an instance never reaches a later instance of the same name.
#[test]
fn a_deadline_outlives_its_instance_harmlessly() {
    let mut core = Core::new(&[("web", "pre-start exec warm\nexec serve\nkill timeout 2")]);
    core.daemon
        .request_start(1, "web", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    let first = core.pid("web", "pre-start");
    core.daemon.request_stop(2, "web", Vec::new(), None, false).unwrap();
    core.daemon.settle();
    core.exit(first, 0);
    assert_eq!(core.status("web"), "web stop/waiting");
    // Started again, and stopped again while its new pre-start runs: the first run's grace
    // (due in 2 s) must not kill the second run's script early.
    core.advance(Duration::from_secs(1));
    core.daemon
        .request_start(3, "web", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    let second = core.pid("web", "pre-start");
    core.daemon.request_stop(4, "web", Vec::new(), None, false).unwrap();
    core.daemon.settle();
    core.advance(Duration::from_millis(1500));
    assert!(core.signals().is_empty(), "{:?}", core.signals());
    core.advance(Duration::from_millis(600));
    assert_eq!(core.signals(), [(second, libc::SIGTERM, true)]);
}

/// The respawn back-off doubles for respawns in a row, up to its maximum, and starts over
/// only after a run that stayed up for the respawn limit's interval: runs that reach
/// `running` and die a second later still back off.
#[test]
fn the_respawn_back_off_grows_until_a_run_stays_up() {
    let mut core = Core::new(&[(
        "ticker",
        "respawn\nrespawn delay 1s max 8s\nrespawn limit 100 30\nexec tick",
    )]);
    core.daemon
        .request_start(1, "ticker", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    let key = (core.daemon.lookup("ticker").unwrap(), String::new());
    let mut waits = Vec::new();
    for up_for in [1, 1, 1, 1, 1, 31, 1] {
        core.advance(Duration::from_secs(up_for));
        let pid = core.pid("ticker", "main");
        core.exit(pid, 1);
        assert_eq!(core.status("ticker"), "ticker respawn/post-stop");
        let detail = core.daemon.instance_status(&key).detail;
        let wait = detail
            .iter()
            .find_map(|line| line.strip_prefix("respawning in "))
            .unwrap_or_else(|| panic!("{detail:?}"))
            .to_string();
        waits.push(wait);
        // The wait passes; a new run starts.
        core.advance(Duration::from_secs(8));
        assert!(core.status("ticker").starts_with("ticker start/running, process "));
    }
    assert_eq!(waits, ["1s", "2s", "4s", "8s", "8s", "1s", "2s"]);
}

#[test]
fn lua_processes_run_on_the_clock_and_no_signal_reaches_the_host() {
    let mut core = Core::new(&[
        (
            "lt",
            "task\nscript lua\n  sleep('2s')\n  emit('slept', {BY = job.env('UPSTART_JOB')})\nend script",
        ),
        ("after", "start on slept BY=lt\nexec after"),
        (
            "svc",
            "pre-start script lua\n  sleep(1)\nend script\nscript lua\n  while true do sleep(60) end\nend script\nkill timeout 3",
        ),
        (
            "slow",
            "pre-start timeout 2s\npre-start script lua\n  sleep(60)\nend script\nexec serve",
        ),
        (
            "bad",
            "task\nscript lua\n  local ok, why = pcall(sleep, 'soon')\n  assert(not ok and why:find('soon'))\n  error('x')\nend script",
        ),
    ]);
    core.daemon
        .request_start(1, "lt", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    assert_eq!(core.status("lt"), "lt start/running, lua process");
    // Its first slice runs on the loop's next turn, and sleeps on the daemon's clock.
    core.advance(Duration::ZERO);
    core.advance(Duration::from_millis(1999));
    assert_eq!(core.status("lt"), "lt start/running, lua process");
    assert!(core.spawned().is_empty());
    core.advance(Duration::from_millis(1));
    assert_eq!(core.status("lt"), "lt stop/waiting");
    assert_eq!(core.spawned(), ["after main 100"]);

    // A stage and a main process in Lua; the stop ends the coroutine.
    core.daemon
        .request_start(2, "svc", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    assert_eq!(core.status("svc"), "svc start/pre-start, lua process");
    core.advance(Duration::ZERO);
    core.advance(Duration::from_secs(1));
    core.advance(Duration::ZERO);
    assert_eq!(core.status("svc"), "svc start/running, lua process");
    core.daemon.request_stop(3, "svc", Vec::new(), None, false).unwrap();
    core.daemon.settle();
    assert_eq!(core.status("svc"), "svc stop/killed, lua process");
    core.advance(Duration::ZERO);
    assert_eq!(core.status("svc"), "svc stop/waiting");

    // A stage timeout kills a Lua stage as any other; the job fails.
    core.daemon
        .request_start(4, "slow", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    core.advance(Duration::ZERO);
    core.advance(Duration::from_secs(2));
    core.advance(Duration::ZERO);
    assert_eq!(core.status("slow"), "slow stop/waiting");
    let key = (core.daemon.lookup("slow").unwrap(), String::new());
    let detail = core.daemon.instance_status(&key).detail;
    assert!(
        detail.iter().any(|line| line.contains("PROCESS=pre-start")),
        "{detail:?}"
    );

    // An error "exits" 1: the task fails.
    core.daemon
        .request_start(5, "bad", Vec::new(), None, false, false)
        .unwrap();
    core.daemon.settle();
    core.advance(Duration::ZERO);
    assert_eq!(core.status("bad"), "bad stop/waiting");
    let key = (core.daemon.lookup("bad").unwrap(), String::new());
    let detail = core.daemon.instance_status(&key).detail;
    assert!(
        detail.iter().any(|line| line.contains("PROCESS=main EXIT_STATUS=1")),
        "{detail:?}"
    );

    // Not one signal went to the host: a Lua process's id never reaches kill(2).
    assert!(core.signals().is_empty(), "{:?}", core.signals());
    assert!(core.daemon.lua.processes.is_empty());
}
