//! The seam between the daemon core and the machine it runs on: the clocks, starting
//! processes, and signals. The core asks these of its [`Host`] and nothing else, so a test
//! can drive a `Daemon` in-process with a fake one (spawns, exits, signals and the clock
//! under its control), as dinit's `bp_sys` does; the daemon runs on [`RealHost`], which is
//! `sys`.
//!
//! Reaping is not here: exits come in through `Daemon::child_changed`, which the signal
//! handler (or a test) calls. Nor are the `/proc` lookups of readiness (`expect fork`, pid
//! files, the notify socket's senders), which read what only a real process tree has.

use std::time::Instant;

use jiff::Timestamp;

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

    /// The wall clock, which calendar and cron operands are read on (it may jump).
    fn wall_now(&self) -> Timestamp;

    /// A random number (for `jitter`; not for anything secret).
    fn random(&mut self) -> u64;

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

    fn wall_now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn random(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        // SAFETY: the buffer is valid for 8 bytes; getrandom writes at most that many.
        let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), libc::GRND_NONBLOCK) };
        if filled == 8 {
            return u64::from_ne_bytes(bytes);
        }
        // No entropy yet (early boot): the clock's nanoseconds, mixed.
        let mut x = Timestamp::now().as_nanosecond() as u64 ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x << 13;
        x ^= x >> 7;
        x ^ (x << 17)
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
