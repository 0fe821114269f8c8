//! The seam between the daemon core and the machine it runs on: the clock, starting
//! processes, and signals. The core asks these of its [`Host`] and nothing else, so a test
//! can drive a `Daemon` in-process with a fake one (spawns, exits, signals and the clock
//! under its control), as dinit's `bp_sys` does; the daemon runs on [`RealHost`], which is
//! `sys`.
//!
//! Reaping is not here: exits come in through `Daemon::child_changed`, which the signal
//! handler (or a test) calls. Nor are the `/proc` lookups of readiness (`expect fork`, pid
//! files, the notify socket's senders), which read what only a real process tree has.

use std::time::Instant;

use crate::sys::process::{kill_group, kill_process};
use crate::sys::procfs;
use crate::sys::spawn::{self, Pending, SpawnError, SpawnSpec};

/// A started process: known to be through its exec (or its failure), or perhaps still on
/// its way (see `sys::spawn::begin`).
pub enum Begun {
    Done(Result<i32, SpawnError>),
    InFlight(Pending),
}

/// What the daemon core asks of the system.
pub trait Host {
    /// The monotonic clock every deadline is set and checked against.
    fn now(&self) -> Instant;

    /// Starts a process.
    fn spawn(&mut self, spec: SpawnSpec<'_>) -> Result<Begun, SpawnError>;

    /// Sends `signal` to `pid`'s process group (`group`), or to the process alone.
    fn signal(&mut self, pid: i32, signal: i32, group: bool) -> std::io::Result<()>;

    /// Whether `pid` leads its process group (asked of a main process uprise did not spawn
    /// itself: a daemon found after a double fork leads none).
    fn leads_group(&self, pid: i32) -> bool;
}

/// The real system, through `sys`.
pub struct RealHost;

impl Host for RealHost {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn spawn(&mut self, spec: SpawnSpec<'_>) -> Result<Begun, SpawnError> {
        let pending = spawn::begin(spec)?;
        Ok(if pending.is_done() {
            Begun::Done(pending.wait())
        } else {
            Begun::InFlight(pending)
        })
    }

    fn signal(&mut self, pid: i32, signal: i32, group: bool) -> std::io::Result<()> {
        // `kill_*` refuse pids 0, 1 and -1.
        if group {
            kill_group(pid, signal)
        } else {
            kill_process(pid, signal)
        }
    }

    fn leads_group(&self, pid: i32) -> bool {
        procfs::stat(pid).is_some_and(|stat| stat.pgid == pid)
    }
}
