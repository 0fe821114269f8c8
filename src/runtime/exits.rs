//! Process exits: what a process's end means for its instance (expected, finished, failed,
//! respawn), the respawn limit and back-off, and moving the instance on.

use std::time::Instant;

use log::{debug, info, warn};

use crate::machine::exit::{ExitStatus, MainExit, classify_main_exit};
use crate::machine::{self, Goal, State, next_state};
use crate::model::Job;
use crate::syntax::ast::ProcessKind;

use super::daemon::{Daemon, Key};
use super::jobs::describe_exit;

/// A cheap random number for jitter (not for anything secret).
fn random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

impl Daemon {
    /// A child uprise started has ended.
    /// Returns false when uprise did not start the process (an adopted orphan).
    pub fn process_exited(&mut self, pid: i32, status: ExitStatus) -> bool {
        let Some((class_id, instance_name, kind, _)) = self.pids.remove(&pid) else {
            return false;
        };
        let key = (class_id, instance_name);
        let Some(instance) = self.instance_mut(&key) else {
            return true;
        };
        instance.pids.remove(&kind);
        let expected = matches!(instance.state, State::Killed | State::Stopping) || instance.killing_scripts;
        let job = self.class(class_id).job.clone();
        let name = if key.1.is_empty() {
            job.name.clone()
        } else {
            format!("{} ({})", job.name, key.1)
        };
        let described = describe_exit(status);
        if status.is_success() {
            debug!("{name} {} process ({pid}) {described}", kind.keyword());
        } else if expected {
            // uprise stopped it: worth a line, not a warning.
            info!("{name} {} process ({pid}) {described}", kind.keyword());
        } else {
            warn!("{name} {} process ({pid}) {described}", kind.keyword());
        }
        let instance = self.instance_mut(&key).expect("checked");
        if kind == ProcessKind::Main {
            instance.rare_mut().last_exit = Some((Instant::now(), format!("main process ({pid}) {described}")));
        }
        if instance.pids.is_empty() {
            self.cancel_kill_timer(&key);
        }
        let instance = self.instance_mut(&key).expect("checked");
        let state = instance.state;
        if kind == ProcessKind::Main && state == State::Spawned && self.forking_parent_exited(&key, pid, status) {
            return true;
        }
        let instance = self.instance_mut(&key).expect("checked");
        match kind {
            ProcessKind::Main => {
                let verdict = classify_main_exit(state, instance.goal, status, job.task, job.respawn, &job.normal_exit);
                match verdict {
                    MainExit::Expected => {}
                    MainExit::Finished => {
                        instance.goal = Goal::Stop;
                    }
                    MainExit::Failed => self.fail(&key, "main", Some(status)),
                    MainExit::Respawn => self.respawn(&key, &job, &name, status),
                }
                // Move on from the states that wait for the main process.
                let instance = self.instance(&key).expect("checked");
                match state {
                    State::Running if instance.goal != Goal::Start => {
                        let next = next_state(State::Running, instance.goal, false);
                        self.change_state(&key, next);
                    }
                    State::Killed => {
                        let next = next_state(State::Killed, instance.goal, false);
                        self.change_state(&key, next);
                    }
                    // Died before it was ready: Upstart went on to `running` with no process
                    // (and never respawned it); uprise stops, and respawns when asked to.
                    State::Spawned if instance.goal != Goal::Start => {
                        self.end_awaiting(&key);
                        self.change_state(&key, State::Stopping);
                    }
                    _ => {}
                }
            }
            ProcessKind::PreStart | ProcessKind::PostStop => {
                let killed_by_us = instance.killing_scripts;
                if !status.is_success() && !killed_by_us {
                    self.fail(&key, kind.keyword(), Some(status));
                }
                let instance = self.instance(&key).expect("checked");
                if instance.state == state && matches!(state, State::PreStart | State::PostStop) {
                    let next = next_state(state, instance.goal, instance.main_alive());
                    self.change_state(&key, next);
                }
            }
            ProcessKind::PostStart | ProcessKind::PreStop => {
                let instance = self.instance(&key).expect("checked");
                let waiting_state = if kind == ProcessKind::PostStart {
                    State::PostStart
                } else {
                    State::PreStop
                };
                if state == waiting_state {
                    let goal = if instance.restarting {
                        Goal::Respawn
                    } else {
                        instance.goal
                    };
                    let next = next_state(state, goal, instance.main_alive());
                    self.change_state(&key, next);
                }
            }
        }
        true
    }

    pub(super) fn respawn(&mut self, key: &Key, job: &Job, name: &str, status: ExitStatus) {
        if self.shutting_down {
            self.fail(key, "main", Some(status));
            return;
        }
        let now = self.started_at.elapsed().as_secs();
        let instance = self.instance_mut(key).expect("checked");
        if !instance.rare_mut().respawn.allow(job.respawn_limit, now) {
            warn!("{name} respawning too fast, stopped");
            self.fail(key, "respawn", None);
            return;
        }
        instance.goal = Goal::Respawn;
        // The back-off grows with consecutive respawns; a job that stayed up for the respawn
        // limit's interval (10 s without one) starts over.
        let settled = match job.respawn_limit {
            crate::syntax::ast::RespawnLimit::Limit { interval_secs, .. } if interval_secs > 0 => {
                u64::from(interval_secs)
            }
            _ => 10,
        };
        if instance
            .running_since
            .is_some_and(|since| since.elapsed().as_secs() >= settled)
        {
            instance.rare_mut().respawn_streak = 0;
        }
        instance.rare_mut().respawn_streak += 1;
        match job.lifecycle.respawn_delay {
            Some(delay) => {
                let millis = machine::exit::backoff_millis(delay, instance.rare().respawn_streak, random());
                instance.pending_delay = Some(millis);
                let shown = crate::model::job::render_duration(crate::syntax::ast::Seconds { millis });
                info!("{name} main process ended, respawning in {shown}");
            }
            None => info!("{name} main process ended, respawning"),
        }
    }
}
