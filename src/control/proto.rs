//! The control protocol: requests and replies on the control socket.
//!
//! **API boundary.** These types are the wire format between `uprisectl` (or any client) and
//! the daemon; they are documented in `docs/protocol.md`. A field may be added (with a serde
//! default); nothing is removed or renamed without bumping `PROTOCOL_VERSION`.
//!
//! Framing: a Unix stream socket carrying JSON documents, one per line (`\n`-terminated).
//! A client sends one `Request` line and reads `Reply` lines until a final one (`Done` or
//! `Error`); `Monitor` replies stream until the client closes. Lines are limited to
//! `MAX_LINE` bytes.

use serde::{Deserialize, Serialize};

/// Bumped when a change is not backward compatible.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts; a longer request gets an error and the connection ends.
pub const MAX_LINE: usize = 1 << 20;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Request {
    /// Start an instance of `job`. `env` holds `KEY=VALUE` strings; `instance`, when given,
    /// names the instance directly (used by `start` from inside a job).
    Start {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default = "yes")]
        wait: bool,
        /// Past the job's gate and pools (`uprisectl start --now`).
        #[serde(default, skip_serializing_if = "is_false")]
        now: bool,
    },
    Stop {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    Restart {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Send the job's reload signal (or run its reload command).
    Reload {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    Status {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
        /// Answer with the status line as text (a `text` reply) instead of a `status` reply:
        /// for the client's fast path, which prints it without parsing an instance.
        #[serde(default, skip_serializing_if = "is_false")]
        text: bool,
    },
    List,
    Emit {
        event: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default = "yes")]
        wait: bool,
    },
    ReloadConfiguration,
    Version,
    /// Get (`priority` absent) or set the log priority.
    LogPriority {
        #[serde(default)]
        priority: Option<String>,
    },
    Usage {
        job: String,
    },
    /// Stop every job and exit (user mode) or halt/reboot/poweroff (system mode).
    Shutdown {
        #[serde(default)]
        action: ShutdownAction,
    },
    /// Replace the running daemon with `binary` (default: its own path), keeping every job,
    /// event and client. Answered by the new image.
    Reexec {
        #[serde(default)]
        binary: Option<String>,
    },
    /// Stream events and state changes (`Reply::Event`, `Reply::Change`) until the client
    /// closes the connection.
    Monitor,
    /// Set variables (`VAR=VALUE`, or `VAR` for `VAR=`) in the global job environment, or,
    /// with `job`, in that instance's environment (for its later processes). `retain` keeps
    /// a value that is already set.
    SetEnv {
        vars: Vec<String>,
        #[serde(default)]
        retain: bool,
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// One variable's value (`Reply::Text`); an unset variable is an error.
    GetEnv {
        name: String,
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// The whole table: one `Reply::Text` per `KEY=VALUE`, sorted.
    ListEnv {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// Remove variables; if any is unset, nothing is removed and the reply is an error.
    UnsetEnv {
        names: Vec<String>,
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// Restore the table: the global one to what the daemon started with, an instance's to
    /// its job's defaults (the global table and the job's `env` stanzas).
    ResetEnv {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// The static view of the jobs' `emits`, `start on` and `stop on`: one `Reply::Text`
    /// per job (all jobs, sorted, or just `job`); `enumerate` lists every event separately.
    ShowConfig {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        enumerate: bool,
    },
    /// `start on`/`stop on` conditions that cannot be satisfied: one `Reply::Text` per job
    /// with findings (none when all is well). `ignore` names events taken as emitted; `warn`
    /// reports every unknown job or event, even in a branch of `or` that can still fire.
    CheckConfig {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        ignore: Vec<String>,
        #[serde(default)]
        warn: bool,
    },
    /// The path of an instance's log file (`Reply::Text`), addressed as `status` is.
    LogPath {
        job: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// Every armed timer (`Reply::Timers`), soonest first; with `job`, that job's only.
    Timers {
        #[serde(default)]
        job: Option<String>,
    },
    /// Every resource pool (`Reply::Pools`), by name.
    Pools,
    /// The state changes the daemon remembers (`Reply::History`), oldest first; with
    /// `since_ms`, those at or after that many milliseconds after the daemon first started.
    History {
        #[serde(default)]
        since_ms: Option<u64>,
    },
    /// The daemon's figures in Prometheus's text format (`Reply::Text`, one per line).
    Metrics,
    /// Each job's links for `uprisectl graph`: one `Reply::Text` per job, sorted by name,
    /// holding a JSON object (`model::links::Links`: `start on`, `stop on`, `emits`, admission).
    Graph,
    /// Run a job's `action NAME`; answered with its exit status when it ends.
    Action {
        job: String,
        name: String,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
    },
    /// What a blocking `emit`, `start`, `stop` or `restart` waits for, in words: one
    /// `Reply::Text` per line, few and short (`uprisectl` shows them on a terminal while it
    /// waits). With `event`, the live events of that name and what holds each; otherwise the
    /// instance of `job` that `env` and `instance` address, as `status` does.
    Waiting {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default)]
        event: Option<String>,
    },
}

fn yes() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownAction {
    #[default]
    Halt,
    Poweroff,
    Reboot,
}

/// One process of an instance, as `status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// `main`, `pre-start`, `post-start`, `pre-stop`, `post-stop`, `reload`, `stop` or
    /// `action NAME`.
    pub kind: String,
    /// `None` for a `script lua` process, which runs in the daemon and has no pid.
    pub pid: Option<i32>,
}

impl ProcessStatus {
    /// `process PID`, or `lua process` for one that runs in the daemon.
    fn shown(&self) -> String {
        match self.pid {
            Some(pid) => format!("process {pid}"),
            None => "lua process".to_string(),
        }
    }
}

/// The status of one instance (or of a class with no instance: goal stop, state waiting).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub job: String,
    /// Empty for a singleton.
    pub instance: String,
    /// `start` or `stop`; `respawn` while a respawn is under way.
    pub goal: String,
    /// Upstart's state names: `waiting`, `starting`, `pre-start`, `spawned`, `post-start`,
    /// `running`, `pre-stop`, `stopping`, `killed`, `post-stop`.
    pub state: String,
    /// Live processes, in Upstart's order: main, pre-start, post-start, pre-stop, post-stop.
    pub processes: Vec<ProcessStatus>,
    /// Why the instance is where it is, for `status -v` (never part of the plain line).
    #[serde(default)]
    pub detail: Vec<String>,
    /// What a `queued` instance waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,
}

/// What a queued start waits for (`status --json`, `list --json`); `status -v` says the
/// same in words.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// When it was queued (RFC 3339).
    pub since: String,
    /// Its place in the order of arrival: a lower ticket came first.
    pub ticket: u64,
    /// Its gate, while it waits on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateStatus>,
    /// The pools whose line it stands in (once its gate and files let it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolWait>,
    /// The first required path that is not there: `file /srv/data/app.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A queued start's gate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GateStatus {
    /// `open`, `shut` (the condition is false) or `unknown` (a figure is missing).
    pub verdict: String,
    /// Why it is shut or unknown: `load1 is 3.20, needs < 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Open since (RFC 3339), and when `gate hold` lets it go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admits_at: Option<String>,
    /// When `gate wait` runs out (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A queued start in a pool's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolWait {
    pub pool: String,
    pub needs: f64,
    pub used: f64,
    pub max: f64,
    /// How many wait ahead of it in this pool's line.
    pub ahead: usize,
}

/// One resource pool (`uprisectl pools`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub pool: String,
    pub max: f64,
    /// Declared by a daemon file (else its maximum is the default, 1).
    pub declared: bool,
    pub used: f64,
    /// The instances holding some of it: `job` or `job (instance)`, and how much.
    pub holders: Vec<(String, f64)>,
    /// The starts in its line, first first, and what each asks of it.
    pub queue: Vec<(String, f64)>,
}

#[cfg(test)]
impl InstanceStatus {
    /// A status for tests: `processes` as (kind, pid) pairs, no detail.
    pub fn example(job: &str, instance: &str, goal: &str, state: &str, processes: &[(&str, i32)]) -> InstanceStatus {
        InstanceStatus {
            job: job.into(),
            instance: instance.into(),
            goal: goal.into(),
            state: state.into(),
            processes: processes
                .iter()
                .map(|(kind, pid)| ProcessStatus {
                    kind: kind.to_string(),
                    pid: Some(*pid),
                })
                .collect(),
            detail: Vec::new(),
            queue: None,
        }
    }
}

/// One armed timer, as `uprisectl timers` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerStatus {
    pub job: String,
    /// The expression it is in: `start on` or `stop on`.
    pub on: String,
    /// The temporal operand, as written in the job file's canonical form.
    pub operand: String,
    /// The instance whose `stop on` armed it (an `after` operand there), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// When it fires next: RFC 3339, with the offset of the zone the operand is read in.
    pub next: String,
    /// How long until then, in milliseconds.
    pub left_ms: u64,
    /// `schedule` (a calendar, cron or interval operand), `after` (armed by an event), or
    /// `jitter` (a firing due already, held back by the job's `jitter`).
    pub kind: String,
    /// The due time it last fired at, in this daemon's life (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// How the job's last run ended: `running`, `ok`, or `failed: …` (`None` before any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// A reply line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// Statuses (of `start`, `stop`, `restart`, `status`, `list`).
    Status { instances: Vec<InstanceStatus> },
    /// A text answer (`version`, `log-priority`, `usage`, `get-env`, one line of `list-env`,
    /// one job of `show-config` or `check-config`, `log-path`).
    Text { text: String },
    /// The request finished successfully; the final line.
    Done,
    /// The request failed; the final line. `message` is shown as `uprisectl: MESSAGE`.
    Error { message: String },
    /// Monitor stream: an event was emitted.
    Event { name: String, env: Vec<String> },
    /// Monitor stream: an instance changed goal or state.
    Change {
        job: String,
        instance: String,
        goal: String,
        state: String,
    },
    /// Monitor stream: a start joined the admission queue (`verdict` `queued`, `on` what
    /// holds it: `gate`, `pool NAME`, `file PATH`), left it (`admitted`, after `waited_ms`;
    /// `forced` by `start --now`), or was refused (`refused`, `on` why).
    Admission {
        job: String,
        instance: String,
        verdict: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        on: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited_ms: Option<u64>,
    },
    /// Armed timers (of `timers`), soonest first; several replies may follow each other.
    Timers { timers: Vec<TimerStatus> },
    /// Resource pools (of `pools`), by name; several replies may follow each other.
    Pools { pools: Vec<PoolStatus> },
    /// State changes (of `history`), oldest first; several replies may follow each other,
    /// each with the same clock: `now_ms` after the daemon first started, which was at
    /// `boot_wall_ms` (milliseconds since the epoch).
    History {
        boot_wall_ms: i64,
        now_ms: u64,
        changes: Vec<TransitionRecord>,
    },
}

/// One change of an instance's goal or state, as `history` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Milliseconds after the daemon first started (across re-execs).
    pub at_ms: u64,
    pub job: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    pub goal: String,
    pub state: String,
    /// For `starting`: what started the instance (`startup`, `started db`, `timer every
    /// 15m`, `asked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `JOB`, or `JOB (INSTANCE)` for a named instance: how every message names an instance.
pub fn instance_name(job: &str, instance: &str) -> String {
    if instance.is_empty() {
        job.to_string()
    } else {
        format!("{job} ({instance})")
    }
}

/// Formats one status line exactly as Upstart's `initctl` does:
/// `JOB[ (INSTANCE)] GOAL/STATE[, process PID]`, followed by tab-indented lines for further
/// processes. A `script lua` process, which has no pid, shows as `lua process`.
pub fn status_line(status: &InstanceStatus) -> String {
    let mut out = instance_name(&status.job, &status.instance);
    out.push_str(&format!(" {}/{}", status.goal, status.state));
    let mut processes = status.processes.iter();
    if let Some(first) = processes.next() {
        if matches!(first.kind.as_str(), "main" | "pre-start" | "post-stop") {
            out.push_str(&format!(", {}", first.shown()));
        } else {
            out.push_str(&format!(", ({}) {}", first.kind, first.shown()));
        }
    }
    for process in processes {
        out.push_str(&format!("\n\t{} {}", process.kind, process.shown()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(instance: &str, goal: &str, state: &str, processes: &[(&str, i32)]) -> InstanceStatus {
        InstanceStatus::example("test", instance, goal, state, processes)
    }

    #[test]
    fn status_lines_match_initctl() {
        assert_eq!(status_line(&status("", "stop", "waiting", &[])), "test stop/waiting");
        assert_eq!(
            status_line(&status("", "start", "running", &[("main", 3648)])),
            "test start/running, process 3648"
        );
        assert_eq!(
            status_line(&status("beetroot", "start", "running", &[("main", 3648)])),
            "test (beetroot) start/running, process 3648"
        );
        assert_eq!(
            status_line(&status("", "start", "post-start", &[("main", 1), ("post-start", 2137)])),
            "test start/post-start, process 1\n\tpost-start process 2137"
        );
        assert_eq!(
            status_line(&status("", "start", "post-start", &[("post-start", 2137)])),
            "test start/post-start, (post-start) process 2137"
        );
        // A `script lua` process has no pid.
        let mut lua = status("", "start", "post-start", &[("main", 1), ("post-start", 2)]);
        lua.processes[0].pid = None;
        lua.processes[1].pid = None;
        assert_eq!(
            status_line(&lua),
            "test start/post-start, lua process\n\tpost-start lua process"
        );
        lua.processes.remove(0);
        assert_eq!(status_line(&lua), "test start/post-start, (post-start) lua process");
        assert_eq!(
            status_line(&status("", "start", "pre-start", &[("pre-start", 1014)])),
            "test start/pre-start, process 1014"
        );
        assert_eq!(
            status_line(&status("", "stop", "post-stop", &[("post-stop", 9764)])),
            "test stop/post-stop, process 9764"
        );
        assert_eq!(
            status_line(&status("", "stop", "pre-stop", &[("pre-stop", 7864)])),
            "test stop/pre-stop, (pre-stop) process 7864"
        );
        assert_eq!(status_line(&status("", "start", "running", &[])), "test start/running");
    }

    #[test]
    fn requests_round_trip_and_default_wait() {
        let request: Request = serde_json::from_str(r#"{"method":"start","job":"web"}"#).unwrap();
        assert_eq!(
            request,
            Request::Start {
                job: "web".into(),
                env: vec![],
                instance: None,
                wait: true,
                now: false,
            }
        );
        let line = serde_json::to_string(&Request::Emit {
            event: "up".into(),
            env: vec!["A=1".into()],
            wait: false,
        })
        .unwrap();
        assert_eq!(line, r#"{"method":"emit","event":"up","env":["A=1"],"wait":false}"#);
    }
}
