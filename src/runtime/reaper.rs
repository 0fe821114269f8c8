//! The shutdown reaper: while a user-mode shutdown stops every job, a second thread reaps
//! the children as they die, and the loop handles what it reaped.
//!
//! Why: a stop of many services is kernel work. Reaping a child (`release_task`, and
//! dropping its `/proc` entries when anything looked at them) was a third of the daemon's
//! time per stopped service, and all of it came after the last kill, on one CPU while the
//! other sat idle. The thread does that part; the loop keeps the state machine, the log
//! pipes and the events, as always.
//!
//! Only during a user-mode shutdown: no re-exec can happen then (it is refused), and no job
//! starts, so the one thing the thread could race with is a post-stop or pre-stop script
//! started by the loop. `child_changed` follows up every spawn before it looks at a reaped
//! pid, as the `SIGCHLD` handler does, so such a pid is always known first. A pid the
//! thread reaped is handled at the loop's next pass; the kernel hands pids out in turn, so
//! it comes back for a new process only after the whole pid range has been used since.
//!
//! While the thread runs, the `SIGCHLD` handler leaves reaping to it. The thread ends once
//! no child is left (`ECHILD`): it clears `running`, then wakes the loop, which reaps
//! whatever died since, and the handler takes over again. A child started just before the
//! thread ends, whose `SIGCHLD` the handler skipped, is reaped by that wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use calloop::ping::{Ping, make_ping};
use log::debug;

use super::daemon::Daemon;
use crate::sys::process::{Exit, reap_any, wait_any};

/// What the thread shares with the loop.
pub(crate) struct Reaper {
    /// Reaped, not handled yet.
    list: Mutex<Vec<(i32, Exit)>>,
    /// Wakes the loop when the list stops being empty, and when the thread ends.
    ping: Ping,
    /// The thread still reaps.
    running: AtomicBool,
}

impl Reaper {
    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// The thread's stack: it makes one system call in a loop.
const STACK: usize = 64 * 1024;

impl Daemon {
    /// Starts the reaper thread (see the module's doc). Without it (no thread, no eventfd)
    /// the `SIGCHLD` handler reaps everything, only later.
    pub(crate) fn start_reaper(&mut self) {
        let (ping, source) = match make_ping() {
            Ok(pair) => pair,
            Err(error) => {
                debug!("no shutdown reaper: {error}");
                return;
            }
        };
        let shared = Arc::new(Reaper {
            list: Mutex::new(Vec::new()),
            ping,
            running: AtomicBool::new(true),
        });
        let ours = Arc::clone(&shared);
        let token = match self.handle.insert_source(source, move |_, _, daemon| {
            let reaped = std::mem::take(&mut *ours.list.lock().unwrap_or_else(PoisonError::into_inner));
            for (pid, exit) in reaped {
                daemon.child_changed(pid, exit);
            }
            if !ours.running() {
                while let Some((pid, exit)) = reap_any() {
                    daemon.child_changed(pid, exit);
                }
            }
        }) {
            Ok(token) => token,
            Err(error) => {
                debug!("no shutdown reaper: {error}");
                return;
            }
        };
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("uprise-reaper".into())
            .stack_size(STACK)
            .spawn(move || {
                while let Some(change) = wait_any() {
                    let mut list = theirs.list.lock().unwrap_or_else(PoisonError::into_inner);
                    let first = list.is_empty();
                    list.push(change);
                    drop(list);
                    if first {
                        theirs.ping.ping();
                    }
                }
                theirs.running.store(false, Ordering::SeqCst);
                theirs.ping.ping();
            });
        match thread {
            Ok(_) => self.reaper = Some(shared),
            Err(error) => {
                debug!("no shutdown reaper: {error}");
                self.handle.remove(token);
            }
        }
    }

    /// Whether the shutdown's reaper thread collects the children (so `SIGCHLD` needs no
    /// reaping from the loop).
    pub(crate) fn reaper_running(&self) -> bool {
        self.reaper.as_ref().is_some_and(|reaper| reaper.running())
    }
}
