//! reexec: the state that crosses a stateful re-exec.
//!
//! **API boundary.** These are dedicated snapshot types, versioned, never the runtime's own:
//! the runtime converts to and from them (`runtime/reexec.rs`). A new uprise must load every
//! snapshot an older one wrote (goldens in `tests/reexec/`), so fields are only ever added,
//! with `#[serde(default)]`; a change of meaning bumps `VERSION`. A snapshot from a newer
//! version is refused (the old image keeps running). See docs/reexec.md.
//!
//! Order matters for reading: events first, then classes and instances that refer to events
//! by id, then clients that refer to both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::{Goal, State};
use crate::model::Job;

/// The format's name, so a stray file is never mistaken for a snapshot.
pub const FORMAT: &str = "uprise-state";

/// The newest version this build writes and reads. Version 3 added the timers (`timers`,
/// `firings`, `EventSnapshot::target`); version 4 the `queued` state and admission
/// (`InstanceSnapshot::queued`, `holds`, `watershed`, `Snapshot::next_ticket`).
pub const VERSION: u32 = 4;

/// The first version that may name the `queued` state.
const QUEUED_SINCE: u32 = 4;

/// Everything the new image needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    /// The uprise version that wrote it, for messages.
    #[serde(default)]
    pub written_by: String,
    /// The control socket's listening fd, kept open across exec.
    #[serde(default)]
    pub listener_fd: Option<i32>,
    /// The `expect notify` socket's fd.
    #[serde(default)]
    pub notify_fd: Option<i32>,
    /// The job-dir inotify instance's fd, with its watches: closing it would make the exec
    /// wait for the kernel to free the watches (an SRCU grace period).
    #[serde(default)]
    pub watch_fd: Option<i32>,
    #[serde(default)]
    pub global_env: Vec<String>,
    /// The daemon's `log` level by its `log` name (`info`, `debug`, `trace`, …), not by
    /// Upstart's priority name: `info` here is Upstart's `message`.
    #[serde(default)]
    pub log_priority: String,
    #[serde(default)]
    pub runlevel: String,
    #[serde(default)]
    pub next_event: u64,
    #[serde(default)]
    pub next_seq: u64,
    /// The admission queue's next ticket, so that tickets keep growing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_ticket: u64,
    /// The pools the daemon files declare, with their maxima: in force until the job dirs
    /// are read again after the re-exec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<(String, f64)>,
    /// Clients waiting for a reload or action process to end: (client, pid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_waits: Vec<(u64, i32)>,
    #[serde(default)]
    pub next_client: u64,
    #[serde(default)]
    pub events: Vec<EventSnapshot>,
    #[serde(default)]
    pub classes: Vec<ClassSnapshot>,
    #[serde(default)]
    pub clients: Vec<ClientSnapshot>,
    /// The client that asked for the re-exec: it is answered by the new image.
    #[serde(default)]
    pub requester: Option<u64>,
    /// When the re-exec was asked for (Unix time in microseconds), to report how long the
    /// handover took.
    #[serde(default)]
    pub requested_at_us: u64,
    /// Strings shared by many instances' environments, referred to by `envs`.
    #[serde(default)]
    pub strings: Vec<String>,
    /// Environments shared by many instances (indexes into `strings`), referred to by
    /// `env_set`.
    #[serde(default)]
    pub envs: Vec<Vec<u32>>,
    /// The snapshot holds every class, not only those with something to carry: the new image
    /// may serve before it reads the job dirs again.
    #[serde(default)]
    pub all_classes: bool,
    /// The armed timers of calendar, cron and interval operands (version 3).
    #[serde(default)]
    pub timers: Vec<TimerSnapshot>,
    /// The history of state changes `uprisectl plot` draws (absent: it starts empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySnapshot>,
    /// Firings still to go out: `after` timers armed by their events, and firings held back
    /// by `jitter` (version 3).
    #[serde(default)]
    pub firings: Vec<FiringSnapshot>,
}

/// A temporal operand of a job: the expression it is in (`start` or `stop`), its place among
/// that expression's temporal operands, and the operand as written, so that a definition
/// that changed meanwhile never takes another operand's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperandSnapshot {
    pub job: String,
    pub side: String,
    pub index: u16,
    pub operand: String,
}

/// An armed calendar, cron or interval operand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSnapshot {
    #[serde(flatten)]
    pub operand: OperandSnapshot,
    /// A calendar or cron operand: the due time it is armed for (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// `every DURATION`: the time left until its period ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_ms: Option<u64>,
    /// The due time it last fired at (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<String>,
}

/// A firing still to go out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringSnapshot {
    #[serde(flatten)]
    pub operand: OperandSnapshot,
    /// The instance whose `stop on` it is for, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The time left until it goes out.
    pub in_ms: u64,
    /// Its due time (RFC 3339, UTC): `UPRISE_SCHEDULED`.
    pub scheduled: String,
    /// The variables of the event that armed an `after` timer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Held back by `jitter` (the event goes out as it is); otherwise an `after` timer.
    #[serde(default)]
    pub jittered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnapshot {
    pub id: u64,
    pub name: String,
    pub env: Vec<String>,
    /// `pending`, `handling` or `finished`.
    pub progress: String,
    pub blockers: usize,
    pub failed: bool,
    #[serde(default)]
    pub waiting_clients: Vec<u64>,
    /// A timer's firing: the operand (and instance) it is offered to alone (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSnapshot>,
}

/// Where a timer's firing goes: an operand, and the instance for one armed by an instance's
/// `stop on`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    #[serde(flatten)]
    pub operand: OperandSnapshot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// A job class with something to carry over: instances, or partial `start on` matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSnapshot {
    /// The job's name (also inside `job` when that is given).
    #[serde(default)]
    pub name: String,
    /// The text the definition was read from; the new image parses it again. Preferred to
    /// `job`, which is only written for a definition without a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSnapshot>,
    /// The definition the instances run with (it may differ from the file on disk by now),
    /// in the `check --json` schema. Fields equal to a job's defaults may be left out
    /// (`compact_job`); a complete job reads as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<serde_json::Value>,
    /// The class was not defined by any file any more: it goes once idle.
    #[serde(default)]
    pub deleted: bool,
    /// What each `start on` leaf holds, in tree order.
    #[serde(default)]
    pub start_on_holds: Vec<Option<u64>>,
    #[serde(default)]
    pub instances: Vec<InstanceSnapshot>,
}

/// A job file's text as it was read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub file: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_text: Option<String>,
    /// The name the file gives (the job's, or its prefix for a block of a multi-job file).
    pub base: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    pub name: String,
    pub goal: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The environment as indexes into `Snapshot::strings` (used instead of `env` when set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_ids: Vec<u32>,
    /// The environment as an index into `Snapshot::envs` (used instead of the others when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_set: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_on_holds: Vec<Option<u64>>,
    /// Process kind (`main`, `pre-start`, …) → pid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pids: BTreeMap<String, i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocker: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<BlockedSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailureSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respawn_window_start: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub respawn_count: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub respawn_streak: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub killing_scripts: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<AwaitingSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_delay_ms: Option<u64>,
    /// Time left of a respawn back-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respawn_in_ms: Option<u64>,
    /// Time left before SIGKILL, and to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_in_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kill_pids: Vec<i32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started_seq: u64,
    /// Stage timeouts under way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_timeouts: Vec<StageTimeoutSnapshot>,
    /// A start waiting in `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<QueuedSnapshot>,
    /// What the instance holds of each pool, by pool name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<(String, f64)>,
    /// `watershed`: one more run is marked, with this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watershed: Option<Vec<String>>,
}

/// A queued start: its place in the queue, what it asks of each pool, and its gate's
/// clocks. What it requires is expanded again from its start environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuedSnapshot {
    pub ticket: u64,
    /// When it was queued (RFC 3339).
    pub since: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amounts: Vec<(String, f64)>,
    /// `start --now` was asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub now: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSnapshot>,
}

/// A queued start's gate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSnapshot {
    /// How long it has been open without a break (for `gate hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_for_ms: Option<u64>,
    /// Time left of `gate wait`, and when it runs out by the wall clock (RFC 3339), as
    /// `status -v` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `gate expire start` ran out the wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waived: bool,
}

/// A `pre-start timeout` (or another stage's) still running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimeoutSnapshot {
    pub stage: String,
    pub pid: i32,
    pub in_ms: u64,
    /// The timeout as written, for messages.
    pub timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockedSnapshot {
    Event(u64),
    Client(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSnapshot {
    pub process: String,
    /// `{"code": n}` or `{"signal": n}`.
    #[serde(default)]
    pub exit: Option<ExitSnapshot>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitSnapshot {
    Code(i32),
    Signal(i32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AwaitingSnapshot {
    Stop,
    Notify,
    Fork { original: i32, exited: bool },
}

/// An instance's output: the read ends of its pipes stay open across exec, so no line is
/// lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSnapshot {
    /// Version 2: the read end of each process's pipe still open.
    #[serde(default)]
    pub read_fds: Vec<i32>,
    /// Version 1: the one pipe an instance had, both ends held by the daemon. A version-2
    /// image takes the read end over and closes the write end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_fd: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_fd: Option<i32>,
    /// Output kept while the log dir was unwritable.
    #[serde(default)]
    pub pending: Vec<u8>,
    #[serde(default)]
    pub dropped: u64,
}

/// A connected client, possibly in the middle of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSnapshot {
    pub id: u64,
    pub fd: i32,
    #[serde(default)]
    pub input: Vec<u8>,
    #[serde(default)]
    pub output: Vec<u8>,
    #[serde(default)]
    pub busy: bool,
    #[serde(default)]
    pub eof: bool,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub monitor: bool,
    /// Waiting on an instance: (job, instance, `start`|`stop`|`restart`).
    #[serde(default)]
    pub wait: Option<(String, String, String)>,
}

/// A job as JSON with every field equal to a new job's default left out.
pub fn compact_job(job: &Job) -> serde_json::Value {
    compact_job_against(job, &job_defaults())
}

/// A new job's fields as JSON, to compare many jobs against.
pub fn job_defaults() -> serde_json::Value {
    serde_json::to_value(Job::new(String::new(), String::new())).unwrap_or_default()
}

/// `compact_job` with the defaults computed once by the caller.
pub fn compact_job_against(job: &Job, defaults: &serde_json::Value) -> serde_json::Value {
    let full = serde_json::to_value(job).unwrap_or_default();
    match (full, defaults) {
        (serde_json::Value::Object(mut fields), serde_json::Value::Object(defaults)) => {
            fields.retain(|key, value| key == "name" || key == "file" || defaults.get(key) != Some(value));
            serde_json::Value::Object(fields)
        }
        (full, _) => full,
    }
}

impl ClassSnapshot {
    /// The definition the class travelled with: its source text parsed again, or its
    /// compact JSON expanded.
    pub fn rebuild_job(&self) -> Result<Job, String> {
        match (&self.source, &self.job) {
            (Some(source), _) => {
                let source = crate::model::job::JobSource {
                    file: source.file.clone(),
                    text: std::sync::Arc::from(source.text.as_str()),
                    override_file: source.override_file.clone(),
                    override_text: source.override_text.as_deref().map(std::sync::Arc::from),
                    base: source.base.clone(),
                };
                crate::model::Config::rebuild_job(&source, &self.name)
            }
            (None, Some(job)) => expand_job(job),
            (None, None) => Err("no definition".to_string()),
        }
    }
}

/// Reads a job written by `compact_job` (or in full).
pub fn expand_job(value: &serde_json::Value) -> Result<Job, String> {
    let mut merged = serde_json::to_value(Job::new(String::new(), String::new())).map_err(|error| error.to_string())?;
    if let (serde_json::Value::Object(merged), serde_json::Value::Object(fields)) = (&mut merged, value) {
        for (key, value) in fields {
            merged.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(merged).map_err(|error| error.to_string())
}

/// The history of state changes (`runtime/history.rs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistorySnapshot {
    /// Milliseconds since the daemon first started, when the snapshot was taken.
    pub now_ms: u64,
    /// When the daemon first started, in milliseconds since the epoch.
    pub boot_wall_ms: i64,
    pub changes: Vec<ChangeSnapshot>,
}

/// One change of goal or state, at `at_ms` after the daemon first started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSnapshot {
    pub at_ms: u64,
    pub job: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    pub goal: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Why a snapshot cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not JSON, truncated, or not a snapshot at all.
    Corrupt(String),
    /// Written by a newer uprise, in a format this one does not know.
    TooNew { version: u32 },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Corrupt(message) => write!(f, "the state is corrupt: {message}"),
            SnapshotError::TooNew { version } => {
                write!(
                    f,
                    "the state is version {version}; this uprise reads up to version {VERSION}"
                )
            }
        }
    }
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot {
            format: FORMAT.to_string(),
            version: VERSION,
            written_by: env!("CARGO_PKG_VERSION").to_string(),
            ..Snapshot::default()
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether this build can take over a snapshot: it is whole (well-formed from its first
    /// byte to its last), in this format, and of a version this build reads. The body's
    /// records are then readable by the format's rules: fields are only ever added, with
    /// defaults, a change of meaning bumps the version, and the goldens in `tests/reexec/`
    /// hold every past version to it. This is what the re-exec probe asks; it reads in
    /// place, without building the records.
    ///
    /// Every instance's goal and state must be one this build knows: a state it does not
    /// know (one a newer version added, in a snapshot that did not bump the version) fails
    /// the check, and is never read as `waiting`.
    pub fn check(bytes: &[u8]) -> Result<(), SnapshotError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
            #[serde(default)]
            classes: Vec<ClassStates>,
        }
        #[derive(Deserialize)]
        struct ClassStates {
            #[serde(default)]
            name: String,
            #[serde(default)]
            instances: Vec<InstanceStates>,
        }
        #[derive(Deserialize)]
        struct InstanceStates {
            #[serde(default)]
            name: String,
            goal: String,
            state: String,
        }
        // Unknown fields are skipped, but parsed: a truncated or garbled body fails here.
        let header: Header =
            serde_json::from_slice(bytes).map_err(|error| SnapshotError::Corrupt(error.to_string()))?;
        if header.format != FORMAT {
            return Err(SnapshotError::Corrupt(format!("unknown format '{}'", header.format)));
        }
        if header.version > VERSION {
            return Err(SnapshotError::TooNew {
                version: header.version,
            });
        }
        for class in &header.classes {
            for instance in &class.instances {
                let state = State::from_name(&instance.state);
                let too_early = state == Some(State::Queued) && header.version < QUEUED_SINCE;
                let unknown = if state.is_none() || too_early {
                    Some(("state", &instance.state))
                } else if Goal::from_name(&instance.goal).is_none() {
                    Some(("goal", &instance.goal))
                } else {
                    None
                };
                if let Some((what, name)) = unknown {
                    return Err(SnapshotError::Corrupt(format!(
                        "instance '{}' of {} has a {what} this uprise does not know: '{name}'",
                        instance.name, class.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads a snapshot, checking its format and version before its body.
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        Self::check(bytes)?;
        serde_json::from_slice(bytes).map_err(|error| SnapshotError::Corrupt(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut snapshot = Snapshot::new();
        snapshot.events.push(EventSnapshot {
            id: 3,
            name: "a".into(),
            env: vec!["X=1".into()],
            progress: "handling".into(),
            blockers: 1,
            failed: false,
            waiting_clients: vec![7],
            target: None,
        });
        assert_eq!(Snapshot::from_bytes(&snapshot.to_bytes()), Ok(snapshot));
    }

    #[test]
    fn compact_jobs_expand_to_the_same_job() {
        let config = crate::model::Config::from_text(
            "web",
            "web.conf",
            "start on started db\nrespawn\nenv A=1\nexec /bin/web --port 80\nkill timeout 9\n",
        );
        let job = &config.jobs[0];
        let compact = compact_job(job);
        assert!(compact.get("umask").is_none(), "defaults are left out: {compact}");
        assert_eq!(&expand_job(&compact).unwrap(), job);
        assert_eq!(&expand_job(&serde_json::to_value(job).unwrap()).unwrap(), job);
    }

    /// A state this build does not know is an error, never `waiting`: the old image keeps
    /// serving.
    #[test]
    fn refuses_a_state_it_does_not_know() {
        let mut snapshot = Snapshot::new();
        snapshot.classes.push(ClassSnapshot {
            name: "batch".into(),
            instances: vec![InstanceSnapshot {
                name: "7".into(),
                goal: "start".into(),
                state: "admitting".into(),
                ..InstanceSnapshot::default()
            }],
            source: None,
            job: None,
            deleted: false,
            start_on_holds: Vec::new(),
        });
        let bytes = snapshot.to_bytes();
        let expected = Err(SnapshotError::Corrupt(
            "instance '7' of batch has a state this uprise does not know: 'admitting'".into(),
        ));
        assert_eq!(Snapshot::check(&bytes), expected);
        assert_eq!(Snapshot::from_bytes(&bytes).map(|_| ()), expected);
        snapshot.classes[0].instances[0].state = "running".into();
        snapshot.classes[0].instances[0].goal = "linger".into();
        assert!(matches!(
            Snapshot::check(&snapshot.to_bytes()),
            Err(SnapshotError::Corrupt(_))
        ));
        snapshot.classes[0].instances[0].goal = "start".into();
        assert_eq!(Snapshot::check(&snapshot.to_bytes()), Ok(()));
        // `queued` is known from version 4: an older snapshot that names it is not one
        // this build wrote.
        snapshot.classes[0].instances[0].state = "queued".into();
        assert_eq!(Snapshot::check(&snapshot.to_bytes()), Ok(()));
        snapshot.version = 3;
        assert!(matches!(
            Snapshot::check(&snapshot.to_bytes()),
            Err(SnapshotError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_newer_corrupt_and_truncated_states() {
        let mut newer = Snapshot::new();
        newer.version = VERSION + 1;
        assert_eq!(
            Snapshot::from_bytes(&newer.to_bytes()),
            Err(SnapshotError::TooNew { version: VERSION + 1 })
        );
        assert!(matches!(
            Snapshot::from_bytes(b"{\"format\":\"other\",\"version\":1}"),
            Err(SnapshotError::Corrupt(_))
        ));
        let bytes = Snapshot::new().to_bytes();
        // The probe's check says the same as a full read, without building the records.
        assert_eq!(Snapshot::check(&bytes), Ok(()));
        assert!(matches!(
            Snapshot::check(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Corrupt(_))
        ));
        let mut future = Snapshot::new();
        future.version = VERSION + 1;
        assert_eq!(
            Snapshot::check(&future.to_bytes()),
            Err(SnapshotError::TooNew { version: VERSION + 1 })
        );
        let bytes = Snapshot::new().to_bytes();
        assert!(matches!(
            Snapshot::from_bytes(&bytes[..bytes.len() / 2]),
            Err(SnapshotError::Corrupt(_))
        ));
        assert!(matches!(
            Snapshot::from_bytes(b"garbage"),
            Err(SnapshotError::Corrupt(_))
        ));
    }
}
