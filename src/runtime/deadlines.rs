//! Deadlines of instances: kill timers (one loop timer for every instance's), the grace of a
//! script whose goal changed under it, the respawn back-off, stage timeouts, and `kill
//! abandon` for a process that outlives SIGKILL.

use std::time::{Duration, Instant};

use calloop::timer::{TimeoutAction, Timer};
use log::warn;

use crate::machine::exit::ExitStatus;
use crate::machine::{Goal, Stage, State};

use super::daemon::{Daemon, Key};
use super::jobs::{Instance, StageDeadline};
use super::role::Role;

/// How long a process may survive SIGKILL before it is treated as gone (`kill abandon`).
const DEFAULT_ABANDON: Duration = Duration::from_secs(60);

impl Daemon {
    /// Upstart waited forever for a pre-start or post-start script once the goal was stop.
    /// uprise gives it the kill timeout to finish (a pre-start that calls `stop` and exits is
    /// the common case), then kills it.
    pub(super) fn arm_script_grace(&mut self, key: &Key) {
        {
            let grace = self.class(key.0).job.kill_timeout.millis;
            let timer_key = key.clone();
            let _ = self.handle.insert_source(
                Timer::from_duration(Duration::from_millis(grace)),
                move |_, _, daemon| {
                    let still_stuck = daemon.instance(&timer_key).is_some_and(|instance| {
                        instance.goal == Goal::Stop && matches!(instance.state, State::PreStart | State::PostStart)
                    });
                    if still_stuck {
                        daemon.kill_scripts(&timer_key);
                        daemon.settle();
                        daemon.flush_clients();
                    }
                    TimeoutAction::Drop
                },
            );
        }
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
            warn!(
                "{name} script process ({pid}) did not finish after the goal changed to stop; sending {}",
                crate::sys::process::signal_name(signal)
            );
            let _ = crate::sys::process::kill_group(*pid, signal);
        }
        self.arm_kill_timer(key, timeout.millis, scripts);
    }

    /// Sends SIGKILL to `pids` after `millis` if they are still the instance's (its kill
    /// timeout); replaces an earlier deadline of the instance.
    pub(super) fn arm_kill_timer(&mut self, key: &Key, millis: u64, pids: Vec<i32>) {
        self.cancel_kill_timer(key);
        let deadline = Instant::now() + Duration::from_millis(millis);
        let Some(instance) = self.instance_mut(key) else { return };
        instance.rare_mut().kill_deadline = Some((deadline, pids));
        self.kill_deadlines.insert((deadline, key.clone()));
        self.schedule_kill_timer();
    }

    /// Forgets the instance's kill deadline: its processes are gone.
    pub(super) fn cancel_kill_timer(&mut self, key: &Key) {
        let deadline = self
            .instance_mut(key)
            .and_then(Instance::rare_if_any)
            .and_then(|rare| rare.kill_deadline.take());
        if let Some((at, _)) = deadline {
            self.drop_kill_deadline(at, key);
        }
    }

    /// Removes one kill deadline, and the loop timer with the last.
    pub(super) fn drop_kill_deadline(&mut self, at: Instant, key: &Key) {
        self.kill_deadlines.remove(&(at, key.clone()));
        if self.kill_deadlines.is_empty()
            && let Some((token, _)) = self.kill_timer.take()
        {
            self.handle.remove(token);
        }
    }

    /// Sets the loop timer for the soonest kill deadline, unless it is set for it already
    /// (or sooner: it then fires, finds nothing due, and is set again).
    pub(super) fn schedule_kill_timer(&mut self) {
        let Some(&(next, _)) = self.kill_deadlines.first() else {
            return;
        };
        match self.kill_timer {
            Some((_, at)) if at <= next => return,
            Some((token, _)) => self.handle.remove(token),
            None => {}
        }
        let token = self.handle.insert_source(Timer::from_deadline(next), |_, _, daemon| {
            daemon.kill_timer = None;
            daemon.kill_deadlines_due();
            daemon.settle();
            TimeoutAction::Drop
        });
        self.kill_timer = token.ok().map(|token| (token, next));
    }

    /// Sends SIGKILL where a kill deadline has passed, and sets the timer for the next.
    pub(super) fn kill_deadlines_due(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.kill_deadlines.first().cloned()
            && at <= now
        {
            self.kill_deadlines.pop_first();
            let pids = self
                .instance_mut(&key)
                .and_then(Instance::rare_if_any)
                .and_then(|rare| rare.kill_deadline.take_if(|(deadline, _)| *deadline == at));
            if let Some((_, pids)) = pids {
                self.kill_timeout(&key, &pids);
            }
        }
        self.schedule_kill_timer();
    }

    pub(super) fn kill_timeout(&mut self, key: &Key, pids: &[i32]) {
        let name = self.classes.get(key.0).map(|class| class.job.name.clone());
        let Some(instance) = self.instance_mut(key) else { return };
        let mut killed = Vec::new();
        for pid in pids {
            if instance.pids.values().any(|known| known == pid) {
                warn!(
                    "{} process ({pid}) did not stop in time; sending KILL",
                    name.as_deref().unwrap_or("?")
                );
                super::readiness::signal_main(*pid, 9, false);
                killed.push(*pid);
            }
        }
        if killed.is_empty() {
            return;
        }
        // A process can outlive SIGKILL (stuck in the kernel). Past the give-up time it is
        // treated as gone, so a stop never hangs for ever.
        let abandon = self
            .class(key.0)
            .job
            .lifecycle
            .kill_abandon
            .map_or(DEFAULT_ABANDON, |after| Duration::from_millis(after.millis));
        let timer_key = key.clone();
        let _ = self
            .handle
            .insert_source(Timer::from_duration(abandon), move |_, _, daemon| {
                for pid in &killed {
                    if daemon.pids.contains_key(pid) {
                        warn!(
                            "{} process ({pid}) survived SIGKILL for {}s; treating it as gone",
                            daemon.display(&timer_key),
                            abandon.as_secs()
                        );
                        daemon.process_exited(*pid, ExitStatus::Signal(9));
                    }
                }
                daemon.settle();
                daemon.flush_clients();
                TimeoutAction::Drop
            });
    }

    /// Starts the instance again after `millis` (respawn back-off), unless its goal changes.
    pub(super) fn arm_respawn_delay(&mut self, key: &Key, millis: u64) {
        let timer_key = key.clone();
        if let Some(instance) = self.instance_mut(key) {
            instance.rare_mut().respawn_at = Some(Instant::now() + Duration::from_millis(millis));
        }
        let token = self.handle.insert_source(
            Timer::from_duration(Duration::from_millis(millis)),
            move |_, _, daemon| {
                if let Some(instance) = daemon.instance_mut(&timer_key) {
                    if let Some(rare) = instance.rare_if_any() {
                        rare.delay_timer = None;
                        rare.respawn_at = None;
                    }
                    if instance.goal == Goal::Respawn {
                        daemon.change_state(&timer_key, State::Starting);
                    }
                }
                daemon.settle();
                daemon.flush_clients();
                TimeoutAction::Drop
            },
        );
        if let (Ok(token), Some(instance)) = (token, self.instance_mut(key)) {
            instance.rare_mut().delay_timer = Some(token);
        }
    }

    /// `pre-start timeout` and friends: a stage still running after its timeout is killed
    /// (kill signal, then SIGKILL after the kill timeout); a killed pre-start fails the job.
    /// `timeout` is the stage's timeout as written; `due_in` how long is left of it (less
    /// than `timeout` after a re-exec).
    pub(super) fn arm_stage_timeout(&mut self, key: &Key, stage: Stage, pid: i32, timeout: Duration, due_in: Duration) {
        let timer_key = key.clone();
        if let Some(instance) = self.instance_mut(key) {
            instance.rare_mut().stage_deadlines.push(StageDeadline {
                stage,
                pid,
                due: Instant::now() + due_in,
                timeout,
            });
        }
        let _ = self
            .handle
            .insert_source(Timer::from_duration(due_in), move |_, _, daemon| {
                if let Some(rare) = daemon.instance_mut(&timer_key).and_then(Instance::rare_if_any) {
                    rare.stage_deadlines.retain(|deadline| deadline.pid != pid);
                }
                let running = daemon
                    .instance(&timer_key)
                    .is_some_and(|instance| instance.pids.get(&Role::Stage(stage)) == Some(&pid));
                if running {
                    let job = daemon.class(timer_key.0).job.clone();
                    warn!(
                        "{} {stage} process ({pid}) timed out after {}; killing it",
                        daemon.display(&timer_key),
                        crate::model::job::render_duration(crate::syntax::ast::Seconds {
                            millis: timeout.as_millis() as u64
                        })
                    );
                    let _ = crate::sys::process::kill_group(pid, job.kill_signal);
                    daemon.arm_kill_timer(&timer_key, job.kill_timeout.millis, vec![pid]);
                }
                daemon.settle();
                daemon.flush_clients();
                TimeoutAction::Drop
            });
    }
}
