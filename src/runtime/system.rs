//! System mode (PID 1): the clean shutdown sequence, runlevels, and the final halt,
//! poweroff or reboot.
//!
//! Shutdown (SIGTERM, `telinit 0|6`, `uprisectl shutdown`) runs in phases:
//! 1. the `runlevel` event (RUNLEVEL=0 or 6) is emitted first and handled like any other, so
//!    jobs' own `stop on runlevel [06]` rules (and SysV `rc`) run; uprise waits for it to
//!    finish, at most `RUNLEVEL_WAIT`;
//! 2. nothing new starts; the remaining instances are stopped one at a time, the most
//!    recently started first, each given its kill timeout (and a little more);
//! 3. every process left is sent SIGTERM, then SIGKILL;
//! 4. the file systems are synced; inside a PID namespace (a container) uprise then exits,
//!    on a real machine it halts, powers off or reboots.
//!
//! User mode skips all this: SIGTERM stops every job at once and the daemon exits.

use std::time::{Duration, Instant};

use calloop::timer::{TimeoutAction, Timer};
use log::{info, warn};

use crate::control::proto::ShutdownAction;
use crate::machine::{EventId, Goal};

use super::daemon::{Daemon, Key};
use super::jobs::ClassId;

/// The longest wait for the runlevel event's consequences.
const RUNLEVEL_WAIT: Duration = Duration::from_secs(30);
/// The grace after SIGTERM to everything before SIGKILL.
const FINAL_GRACE: Duration = Duration::from_secs(2);

/// Where a system-mode shutdown is.
pub enum Phase {
    /// Waiting for the runlevel event to finish.
    Runlevel {
        event: EventId,
        since: Instant,
    },
    /// Stopping the remaining instances, most recently started first.
    Stopping {
        current: Option<((ClassId, String), Instant)>,
    },
    /// SIGTERM sent to every remaining process; SIGKILL follows.
    Killing {
        since: Instant,
    },
    Done,
}

/// The inode of the kernel's initial PID namespace (`PROC_PID_INIT_INO`), fixed since 3.8.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// True when this process runs in a PID namespace other than the machine's own (a
/// container, `unshare --pid`). Its own `/proc` cannot tell, but the namespace's inode can.
pub fn in_nested_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|meta| meta.ino() != INITIAL_PID_NAMESPACE)
}

impl Daemon {
    /// Starts a shutdown. `existing` is a runlevel event already under way (telinit).
    pub fn begin_shutdown(&mut self, action: ShutdownAction, existing: Option<EventId>) {
        if self.settings.user_mode {
            self.shutdown();
            return;
        }
        if self.shutdown_phase.is_some() {
            return;
        }
        info!("shutting down ({action:?})");
        self.shutdown_action = action;
        let event = match existing {
            Some(event) => event,
            None => {
                let level = if action == ShutdownAction::Reboot { "6" } else { "0" };
                let previous = self.runlevel.clone();
                self.emit(
                    "runlevel",
                    vec![format!("RUNLEVEL={level}"), format!("PREVLEVEL={previous}")],
                )
            }
        };
        self.shutdown_phase = Some(Phase::Runlevel {
            event,
            since: Instant::now(),
        });
        self.tick_shutdown_in(RUNLEVEL_WAIT);
    }

    /// Runs `advance_shutdown` after `delay`, so deadlines are met without other activity.
    fn tick_shutdown_in(&mut self, delay: Duration) {
        let _ = self.handle.insert_source(Timer::from_duration(delay), |_, _, daemon| {
            daemon.settle();
            daemon.flush_clients();
            TimeoutAction::Drop
        });
    }

    /// Moves the shutdown on; called by `settle()`. A phase that is complete at once gives
    /// way to the next within the same call.
    pub fn advance_shutdown(&mut self) {
        for _ in 0..4 {
            let Some(phase) = self.shutdown_phase.take() else {
                return;
            };
            let (next, moved) = match phase {
                Phase::Runlevel { event, since } => {
                    if self.events.contains_key(&event) && since.elapsed() < RUNLEVEL_WAIT {
                        (Phase::Runlevel { event, since }, false)
                    } else {
                        if self.events.contains_key(&event) {
                            warn!("the runlevel event did not finish in time; stopping the remaining jobs");
                        }
                        self.shutting_down = true;
                        (Phase::Stopping { current: None }, true)
                    }
                }
                Phase::Stopping { current } => {
                    let next = self.stop_next(current);
                    let moved = !matches!(next, Phase::Stopping { .. });
                    (next, moved)
                }
                Phase::Killing { since } => {
                    if since.elapsed() >= FINAL_GRACE {
                        if std::process::id() == 1 {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(-1),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                        self.finish_system_shutdown();
                        (Phase::Done, false)
                    } else {
                        (Phase::Killing { since }, false)
                    }
                }
                Phase::Done => (Phase::Done, false),
            };
            self.shutdown_phase = Some(next);
            if !moved {
                return;
            }
        }
    }

    /// Stops the most recently started instance still present, one at a time.
    fn stop_next(&mut self, current: Option<((ClassId, String), Instant)>) -> Phase {
        if let Some((key, since)) = current {
            let grace = self.classes.get(key.0).map_or(Duration::from_secs(5), |class| {
                Duration::from_millis(class.job.kill_timeout.millis.saturating_mul(2)) + Duration::from_secs(1)
            });
            if self.instance(&key).is_some() && since.elapsed() < grace {
                return Phase::Stopping {
                    current: Some((key, since)),
                };
            }
            if self.instance(&key).is_some() {
                warn!("{} did not stop in time; moving on", self.display(&key));
            }
        }
        let next = self
            .live_instances()
            .filter(|(_, instance)| instance.goal != Goal::Stop || instance.state != crate::machine::State::Waiting)
            .max_by_key(|(_, instance)| instance.started_seq)
            .map(|(id, instance)| (id, instance.name.clone()));
        match next {
            Some(key) => {
                info!("stopping {}", self.display(&key));
                // Read before the goal changes: a deleted class goes once its instance stops.
                let grace = self.class(key.0).job.kill_timeout.millis.saturating_mul(2) + 1000;
                self.change_goal(&key, Goal::Stop);
                self.tick_shutdown_in(Duration::from_millis(grace));
                if self.instance(&key).is_none() {
                    // Stopped at once; look for the next one.
                    return self.stop_next(None);
                }
                Phase::Stopping {
                    current: Some((key, Instant::now())),
                }
            }
            None => {
                info!("all jobs stopped; ending remaining processes");
                if std::process::id() == 1 {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), nix::sys::signal::Signal::SIGTERM);
                }
                self.tick_shutdown_in(FINAL_GRACE);
                Phase::Killing { since: Instant::now() }
            }
        }
    }

    fn finish_system_shutdown(&mut self) {
        nix::unistd::sync();
        let action = self.shutdown_action;
        if std::process::id() != 1 || in_nested_pid_namespace() {
            info!("shutdown complete; exiting");
            self.stop_signal.stop();
            return;
        }
        info!("shutdown complete; {action:?}");
        super::logger::flush();
        let result = match action {
            ShutdownAction::Reboot => nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT),
            ShutdownAction::Poweroff => nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF),
            ShutdownAction::Halt => nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_HALT_SYSTEM),
        };
        // reboot(2) returns only when it failed.
        let Err(error) = result;
        warn!("cannot {action:?}: {error}; exiting instead");
        self.stop_signal.stop();
    }

    /// Tracks the runlevel; in system mode, runlevel 0 or 6 starts a shutdown.
    pub fn observe_runlevel(&mut self, event: EventId, env: &[String]) {
        let Some(level) = crate::machine::environ::get(env, "RUNLEVEL") else {
            return;
        };
        let level = level.to_string();
        self.runlevel = level.clone();
        if self.settings.user_mode || self.shutdown_phase.is_some() {
            return;
        }
        match level.as_str() {
            "0" => self.begin_shutdown(ShutdownAction::Poweroff, Some(event)),
            "6" => self.begin_shutdown(ShutdownAction::Reboot, Some(event)),
            _ => {}
        }
    }
}

impl Daemon {
    /// Stops every job (honouring kill timeouts); the loop ends when none is left.
    pub fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        info!("stopping all jobs");
        self.shutting_down = true;
        self.stop_watching_confdirs();
        let keys: Vec<Key> = self
            .live_instances()
            .map(|(id, instance)| (id, instance.name.clone()))
            .collect();
        // A job's hung script must not keep the daemon up for ever: after the longest kill
        // timeout (twice, plus a margin) whatever is left is killed and the daemon exits.
        let longest = self
            .classes
            .iter()
            .map(|(_, class)| class)
            .map(|class| class.job.kill_timeout.millis)
            .max()
            .unwrap_or(5000);
        let deadline = Duration::from_millis(longest.saturating_mul(2)) + Duration::from_secs(5);
        let _ = self
            .handle
            .insert_source(Timer::from_duration(deadline), |_, _, daemon| {
                warn!("jobs did not stop in time; killing what is left and exiting");
                let left: Vec<(i32, bool)> = daemon
                    .pids
                    .iter()
                    .map(|(&pid, tracked)| (pid, tracked.spawned))
                    .collect();
                for (pid, spawned) in left {
                    daemon.signal_main(pid, libc::SIGKILL, spawned);
                }
                daemon.exiting = true;
                daemon.stop_signal.stop();
                TimeoutAction::Drop
            });
        self.start_reaper();
        for key in keys {
            self.change_goal(&key, Goal::Stop);
        }
        self.settle();
    }
}
