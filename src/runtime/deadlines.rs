//! Deadlines of instances: the kill timeout, `kill abandon` for a process that outlives
//! SIGKILL, the grace of a script whose goal changed under it, the respawn back-off, stage
//! timeouts, and readiness's waits (the pid timeout, the settling of a forking job's
//! candidates, the kill of candidates given up).
//!
//! They are kept in one ordered queue, and one loop timer is set for the soonest: calloop
//! finds a slot for a new source by a linear scan over all of them, so a timer source per
//! stopping instance cost a scan of the whole table each; and every deadline is set and
//! checked against the [`Host`](super::host::Host)'s clock, so a test can move time on.
//!
//! A deadline names its instance by key and by serial: an instance that went, and a new one
//! of the same name that came since, is not the one a deadline was set for. A deadline
//! whose instance went is left in the queue and does nothing when it passes; those an
//! instance keeps ids of (its kill timeout, its respawn back-off, its pid timeout) are
//! taken out when it goes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calloop::RegistrationToken;
use calloop::timer::{TimeoutAction, Timer};
use log::warn;

use crate::machine::exit::ExitStatus;
use crate::machine::{Goal, Stage, State};

use super::daemon::{Daemon, Key};
use super::jobs::{Instance, StageDeadline};
use super::role::Role;
use super::timers::{TimerId, TimerTarget};

/// How long a process may survive SIGKILL before it is treated as gone (`kill abandon`).
const DEFAULT_ABANDON: Duration = Duration::from_secs(60);

/// One deadline in the queue: when it is due, and its place among those due then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadlineId {
    pub at: Instant,
    seq: u64,
}

/// What happens when a deadline passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// The kill timeout: SIGKILL to those of `pids` still the instance's.
    Kill { key: Key, serial: u64 },
    /// `kill abandon`: processes that outlived SIGKILL for this long are treated as gone.
    Abandon {
        key: Key,
        serial: u64,
        pids: Vec<i32>,
        after: Duration,
    },
    /// A `pre-start` or `post-start` still running this long after the goal became stop
    /// is killed.
    ScriptGrace { key: Key, serial: u64 },
    /// The respawn back-off is over.
    Respawn { key: Key, serial: u64 },
    /// A stage's timeout: its process is killed if it still runs.
    StageTimeout {
        key: Key,
        serial: u64,
        stage: Stage,
        pid: i32,
        timeout: Duration,
    },
    /// `pid timeout`: no main process was found for a forking job.
    PidTimeout { key: Key, serial: u64 },
    /// A forking job's candidates have had time to settle.
    Settle {
        key: Key,
        serial: u64,
        candidates: Vec<i32>,
    },
    /// Candidates of a forking job given up that were sent the kill signal get SIGKILL.
    KillCandidates { pids: Vec<i32> },
    /// `every DURATION`: the `count`-th period from `anchor` is over (see `timers/`).
    Every {
        timer: TimerId,
        anchor: Instant,
        period: Duration,
        count: u64,
    },
    /// A timer's firing goes out: an `after` operand's delay is over (`jittered`: false),
    /// or a firing's jitter is (true).
    Fire {
        target: TimerTarget,
        scheduled: jiff::Timestamp,
        env: Vec<String>,
        jittered: bool,
    },
    /// The gates of queued starts are weighed again (see `admission/gates.rs`).
    GateTick,
    /// `gate wait` ran out for a start still queued.
    GateExpired { key: Key, serial: u64 },
    /// A `script lua` process's next slice, or its end (see `lua_processes.rs`).
    LuaStep { id: i32 },
}

/// The queue, and the loop timer set for its soonest deadline.
#[derive(Default)]
pub struct Deadlines {
    queue: BTreeMap<DeadlineId, Deadline>,
    next_seq: u64,
    timer: Option<(RegistrationToken, Instant)>,
}

impl Deadlines {
    /// The deadline an id names, while it is armed.
    pub fn get(&self, id: DeadlineId) -> Option<&Deadline> {
        self.queue.get(&id)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Every armed deadline, soonest first.
    pub fn iter(&self) -> impl Iterator<Item = (&DeadlineId, &Deadline)> {
        self.queue.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl Daemon {
    /// Arms a deadline `after` from now; returns its id, to disarm it.
    pub(super) fn arm(&mut self, after: Duration, deadline: Deadline) -> DeadlineId {
        let at = self.host.now() + after;
        let id = DeadlineId {
            at,
            seq: self.deadlines.next_seq,
        };
        self.deadlines.next_seq += 1;
        self.deadlines.queue.insert(id, deadline);
        self.schedule_deadline_timer();
        id
    }

    /// Disarms a deadline (it may have passed already).
    pub(super) fn disarm(&mut self, id: DeadlineId) {
        self.deadlines.queue.remove(&id);
        if self.deadlines.queue.is_empty()
            && let Some((token, _)) = self.deadlines.timer.take()
        {
            self.handle.remove(token);
        }
    }

    /// Sets the loop timer for the soonest deadline, unless it is set for it already (or
    /// sooner: it then fires, finds nothing due, and is set again).
    fn schedule_deadline_timer(&mut self) {
        let Some((&DeadlineId { at: next, .. }, _)) = self.deadlines.queue.first_key_value() else {
            return;
        };
        match self.deadlines.timer {
            Some((_, at)) if at <= next => return,
            Some((token, _)) => self.handle.remove(token),
            None => {}
        }
        let token = self.handle.insert_source(Timer::from_deadline(next), |_, _, daemon| {
            daemon.deadlines.timer = None;
            daemon.deadlines_due();
            daemon.settle();
            daemon.flush_clients();
            TimeoutAction::Drop
        });
        self.deadlines.timer = token.ok().map(|token| (token, next));
    }

    /// Acts on every deadline that has passed by the host's clock, in order, and sets the
    /// timer for the next.
    /// Timers' firings count against the same batch as clock operands' (see `timers/`,
    /// `FIRE_BATCH`): past it, the rest waits for the next turn of the loop.
    pub fn deadlines_due(&mut self) {
        let now = self.host.now();
        let mut firings = 0;
        while firings < super::timers::FIRE_BATCH
            && let Some(entry) = self.deadlines.queue.first_entry()
            && entry.key().at <= now
        {
            let (id, deadline) = entry.remove_entry();
            if matches!(deadline, Deadline::Every { .. } | Deadline::Fire { .. }) {
                firings += 1;
            }
            self.deadline_passed(id, deadline);
        }
        self.schedule_deadline_timer();
    }

    /// The live instance a deadline was set for, if it is still that one.
    fn instance_of_deadline(&self, key: &Key, serial: u64) -> Option<&Instance> {
        self.instance(key).filter(|instance| instance.serial == serial)
    }

    fn deadline_passed(&mut self, id: DeadlineId, deadline: Deadline) {
        match deadline {
            Deadline::Kill { key, serial } => {
                let pids = self
                    .instance_mut(&key)
                    .filter(|instance| instance.serial == serial)
                    .and_then(Instance::rare_if_any)
                    .and_then(|rare| rare.kill_deadline.take_if(|(armed, _)| *armed == id));
                if let Some((_, pids)) = pids {
                    self.kill_timeout(&key, &pids);
                }
            }
            Deadline::Abandon {
                key,
                serial,
                pids,
                after,
            } => {
                if self.instance_of_deadline(&key, serial).is_none() {
                    return;
                }
                for pid in pids {
                    if self.pids.contains_key(&pid) {
                        let shown_pid = super::lua_processes::shown(pid);
                        warn!(
                            "{} process ({shown_pid}) survived SIGKILL for {}s; treating it as gone",
                            self.display(&key),
                            after.as_secs()
                        );
                        self.process_exited(pid, ExitStatus::Signal(9));
                    }
                }
            }
            Deadline::ScriptGrace { key, serial } => {
                let still_stuck = self.instance_of_deadline(&key, serial).is_some_and(|instance| {
                    instance.goal == Goal::Stop && matches!(instance.state, State::PreStart | State::PostStart)
                });
                if still_stuck {
                    self.kill_scripts(&key);
                }
            }
            Deadline::Respawn { key, serial } => {
                let Some(instance) = self.instance_mut(&key).filter(|instance| instance.serial == serial) else {
                    return;
                };
                if let Some(rare) = instance.rare_if_any() {
                    rare.delay = None;
                }
                if instance.goal == Goal::Respawn {
                    self.change_state(&key, State::Starting);
                }
            }
            Deadline::StageTimeout {
                key,
                serial,
                stage,
                pid,
                timeout,
            } => self.stage_timed_out(&key, serial, stage, pid, timeout),
            Deadline::PidTimeout { key, serial } => {
                if self.instance_of_deadline(&key, serial).is_some() {
                    self.readiness_timed_out(&key);
                }
            }
            Deadline::Settle {
                key,
                serial,
                candidates,
            } => {
                if self.instance_of_deadline(&key, serial).is_some() {
                    self.choose_daemon(&key, &candidates);
                }
            }
            Deadline::KillCandidates { pids } => {
                for pid in pids {
                    self.signal_main(pid, libc::SIGKILL, false);
                }
            }
            Deadline::Every {
                timer,
                anchor,
                period,
                count,
            } => {
                self.timer_deadline_passed(timer.class, id);
                // The due time on the wall clock: as far before now as the monotonic one.
                let late = self.host.now().saturating_duration_since(id.at);
                let scheduled = self.host.wall_now() - jiff::SignedDuration::try_from(late).unwrap_or_default();
                self.fire_timer(TimerTarget { timer, instance: None }, scheduled, Vec::new());
                self.every_passed(timer, anchor, period, count);
            }
            Deadline::Fire {
                target,
                scheduled,
                env,
                jittered,
            } => {
                self.timer_deadline_passed(target.timer.class, id);
                if jittered {
                    self.emit_timer(target, scheduled, env);
                } else {
                    self.fire_timer(target, scheduled, env);
                }
            }
            Deadline::GateTick => self.gate_tick(),
            Deadline::GateExpired { key, serial } => self.gate_expired(&key, serial),
            Deadline::LuaStep { id } => self.lua_step(id),
        }
    }

    /// Upstart waited forever for a pre-start or post-start script once the goal was stop.
    /// uprise gives it the kill timeout to finish (a pre-start that calls `stop` and exits is
    /// the common case), then kills it.
    pub(super) fn arm_script_grace(&mut self, key: &Key) {
        let grace = Duration::from_millis(self.class(key.0).job.kill_timeout.millis);
        let Some(serial) = self.instance(key).map(|instance| instance.serial) else {
            return;
        };
        self.arm(
            grace,
            Deadline::ScriptGrace {
                key: key.clone(),
                serial,
            },
        );
    }

    pub(super) fn kill_scripts(&mut self, key: &Key) {
        let (signal, timeout) = {
            let job = &self.class(key.0).job;
            (job.kill_signal, job.kill_timeout)
        };
        let Some(instance) = self.instance_mut(key) else { return };
        let scripts: Vec<i32> = instance
            .pids
            .iter()
            .filter(|(role, _)| matches!(role, Role::Stage(Stage::PreStart | Stage::PostStart)))
            .map(|(_, pid)| *pid)
            .collect();
        if scripts.is_empty() {
            return;
        }
        instance.killing_scripts = true;
        let name = self.class(key.0).job.name.clone();
        for pid in &scripts {
            let shown_pid = super::lua_processes::shown(*pid);
            warn!(
                "{name} script process ({shown_pid}) did not finish after the goal changed to stop; sending {}",
                crate::sys::process::signal_name(signal)
            );
            self.signal_process(*pid, signal, true);
        }
        self.arm_kill_timer(key, timeout.millis, scripts);
    }

    /// Sends SIGKILL to `pids` after `millis` if they are still the instance's (its kill
    /// timeout); replaces an earlier deadline of the instance.
    pub(super) fn arm_kill_timer(&mut self, key: &Key, millis: u64, pids: Vec<i32>) {
        self.cancel_kill_timer(key);
        let Some(serial) = self.instance(key).map(|instance| instance.serial) else {
            return;
        };
        let id = self.arm(
            Duration::from_millis(millis),
            Deadline::Kill {
                key: key.clone(),
                serial,
            },
        );
        if let Some(instance) = self.instance_mut(key) {
            instance.rare_mut().kill_deadline = Some((id, pids));
        }
    }

    /// Forgets the instance's kill deadline: its processes are gone.
    pub(super) fn cancel_kill_timer(&mut self, key: &Key) {
        let deadline = self
            .instance_mut(key)
            .and_then(Instance::rare_if_any)
            .and_then(|rare| rare.kill_deadline.take());
        if let Some((id, _)) = deadline {
            self.disarm(id);
        }
    }

    pub(super) fn kill_timeout(&mut self, key: &Key, pids: &[i32]) {
        let name = self.classes.get(key.0).map(|class| class.job.name.clone());
        let Some(instance) = self.instance(key) else { return };
        let serial = instance.serial;
        let killed: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|pid| instance.pids.values().any(|known| known == pid))
            .collect();
        for pid in &killed {
            let shown_pid = super::lua_processes::shown(*pid);
            warn!(
                "{} process ({shown_pid}) did not stop in time; sending KILL",
                name.as_deref().unwrap_or("?")
            );
            self.signal_main(*pid, libc::SIGKILL, false);
        }
        if killed.is_empty() {
            return;
        }
        // A process can outlive SIGKILL (stuck in the kernel). Past the give-up time it is
        // treated as gone, so a stop never hangs for ever.
        let after = self
            .class(key.0)
            .job
            .lifecycle
            .kill_abandon
            .map_or(DEFAULT_ABANDON, |after| Duration::from_millis(after.millis));
        let deadline = Deadline::Abandon {
            key: key.clone(),
            serial,
            pids: killed,
            after,
        };
        self.arm(after, deadline);
    }

    /// Starts the instance again after `millis` (respawn back-off), unless its goal changes.
    pub(super) fn arm_respawn_delay(&mut self, key: &Key, millis: u64) {
        let Some(serial) = self.instance(key).map(|instance| instance.serial) else {
            return;
        };
        let id = self.arm(
            Duration::from_millis(millis),
            Deadline::Respawn {
                key: key.clone(),
                serial,
            },
        );
        if let Some(instance) = self.instance_mut(key) {
            instance.rare_mut().delay = Some(id);
        }
    }

    /// Ends the respawn back-off under way, if there is one.
    pub(super) fn end_respawn_delay(&mut self, key: &Key) {
        let delay = self
            .instance_mut(key)
            .and_then(Instance::rare_if_any)
            .and_then(|rare| rare.delay.take());
        if let Some(id) = delay {
            self.disarm(id);
        }
    }

    /// When the instance's respawn back-off ends, if one is under way.
    pub(super) fn respawn_at(&self, instance: &Instance) -> Option<Instant> {
        instance.rare().delay.map(|id| id.at)
    }

    /// `pre-start timeout` and friends: a stage still running after its timeout is killed
    /// (kill signal, then SIGKILL after the kill timeout); a killed pre-start fails the job.
    /// `timeout` is the stage's timeout as written; `due_in` how long is left of it (less
    /// than `timeout` after a re-exec).
    pub(super) fn arm_stage_timeout(&mut self, key: &Key, stage: Stage, pid: i32, timeout: Duration, due_in: Duration) {
        let now = self.host.now();
        let Some(instance) = self.instance_mut(key) else { return };
        let serial = instance.serial;
        instance.rare_mut().stage_deadlines.push(StageDeadline {
            stage,
            pid,
            due: now + due_in,
            timeout,
        });
        let deadline = Deadline::StageTimeout {
            key: key.clone(),
            serial,
            stage,
            pid,
            timeout,
        };
        self.arm(due_in, deadline);
    }

    fn stage_timed_out(&mut self, key: &Key, serial: u64, stage: Stage, pid: i32, timeout: Duration) {
        let Some(instance) = self.instance_mut(key).filter(|instance| instance.serial == serial) else {
            return;
        };
        if let Some(rare) = instance.rare_if_any() {
            rare.stage_deadlines.retain(|deadline| deadline.pid != pid);
        }
        if instance.pids.get(&Role::Stage(stage)) != Some(&pid) {
            return;
        }
        let job = self.class(key.0).job.clone();
        let shown_pid = super::lua_processes::shown(pid);
        warn!(
            "{} {stage} process ({shown_pid}) timed out after {}; killing it",
            self.display(key),
            crate::model::job::render_duration(crate::syntax::ast::Seconds {
                millis: timeout.as_millis() as u64
            })
        );
        self.signal_process(pid, job.kill_signal, true);
        self.arm_kill_timer(key, job.kill_timeout.millis, vec![pid]);
    }
}
