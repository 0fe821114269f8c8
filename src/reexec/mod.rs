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

use crate::model::Job;

/// The format's name, so a stray file is never mistaken for a snapshot.
pub const FORMAT: &str = "uprise-state";

/// The newest version this build writes and reads.
pub const VERSION: u32 = 1;

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
    #[serde(default)]
    pub global_env: Vec<String>,
    #[serde(default)]
    pub log_priority: String,
    #[serde(default)]
    pub runlevel: String,
    #[serde(default)]
    pub next_event: u64,
    #[serde(default)]
    pub next_seq: u64,
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
}

/// A job class with something to carry over: instances, or partial `start on` matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSnapshot {
    /// The definition the instances run with (it may differ from the file on disk by now).
    pub job: Job,
    /// What each `start on` leaf holds, in tree order.
    #[serde(default)]
    pub start_on_holds: Vec<Option<u64>>,
    #[serde(default)]
    pub instances: Vec<InstanceSnapshot>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    pub name: String,
    pub goal: String,
    pub state: String,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub start_env: Option<Vec<String>>,
    #[serde(default)]
    pub stop_env: Vec<String>,
    #[serde(default)]
    pub stop_on_holds: Vec<Option<u64>>,
    /// Process kind (`main`, `pre-start`, …) → pid.
    #[serde(default)]
    pub pids: BTreeMap<String, i32>,
    #[serde(default)]
    pub blocker: Option<u64>,
    #[serde(default)]
    pub blocking: Vec<BlockedSnapshot>,
    #[serde(default)]
    pub failed: Option<FailureSnapshot>,
    #[serde(default)]
    pub respawn_window_start: Option<u64>,
    #[serde(default)]
    pub respawn_count: u32,
    #[serde(default)]
    pub respawn_streak: u32,
    #[serde(default)]
    pub restarting: bool,
    #[serde(default)]
    pub killing_scripts: bool,
    #[serde(default)]
    pub log: Option<LogSnapshot>,
    #[serde(default)]
    pub last_exit: Option<String>,
    #[serde(default)]
    pub awaiting: Option<AwaitingSnapshot>,
    #[serde(default)]
    pub notify_status: Option<String>,
    #[serde(default)]
    pub pending_delay_ms: Option<u64>,
    /// Time left of a respawn back-off.
    #[serde(default)]
    pub respawn_in_ms: Option<u64>,
    /// Time left before SIGKILL, and to whom.
    #[serde(default)]
    pub kill_in_ms: Option<u64>,
    #[serde(default)]
    pub kill_pids: Vec<i32>,
    #[serde(default)]
    pub started_seq: u64,
    /// Stage timeouts under way.
    #[serde(default)]
    pub stage_timeouts: Vec<StageTimeoutSnapshot>,
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

/// An instance's output pipe: both ends are kept open across exec, so no line is lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSnapshot {
    pub read_fd: i32,
    pub write_fd: i32,
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

    /// Reads a snapshot, checking its format and version before its body.
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
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
        });
        assert_eq!(Snapshot::from_bytes(&snapshot.to_bytes()), Ok(snapshot));
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
