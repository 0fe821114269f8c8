//! Process exits: what a process's end means for its instance (expected, finished, failed,
//! respawn), the respawn limit and back-off, and moving the instance on.

use std::time::Instant;

use log::{debug, info, warn};

use crate::machine::exit::{ExitStatus, MainExit, classify_main_exit};
use crate::machine::{self, AfterExit, ExitFacts, Goal, Stage, State};
use crate::model::Job;

use super::daemon::{Daemon, Key};
use super::jobs::{Tracked, describe_exit};

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
        let Some(Tracked {
            class,
            instance: instance_name,
            role,
            ..
        }) = self.pids.remove(&pid)
        else {
            return false;
        };
        let key = (class, instance_name);
        let Some(instance) = self.instance_mut(&key) else {
            if role.stage().is_none() {
                self.side_exited(pid, &key, &role, status);
            }
            return true;
        };
        instance.pids.remove(&role);
        let expected = matches!(instance.state, State::Killed | State::Stopping) || instance.killing_scripts;
        let job = self.class(class).job.clone();
        let name = self.display(&key);
        let described = describe_exit(status);
        let shown_pid = super::lua_processes::shown(pid);
        if status.is_success() {
            debug!("{name} {role} process ({shown_pid}) {described}");
        } else if expected {
            // uprise stopped it: worth a line, not a warning.
            info!("{name} {role} process ({shown_pid}) {described}");
        } else {
            warn!("{name} {role} process ({shown_pid}) {described}");
        }
        let instance = self.instance_mut(&key).expect("checked");
        if role.is_main() {
            instance.rare_mut().last_exit = Some((Instant::now(), format!("main process ({shown_pid}) {described}")));
        }
        if instance.pids.is_empty() {
            self.cancel_kill_timer(&key);
        }
        let Some(stage) = role.stage() else {
            // A reload, stop or action process: the run goes on.
            self.side_exited(pid, &key, &role, status);
            return true;
        };
        let instance = self.instance_mut(&key).expect("checked");
        let state = instance.state;
        if stage == Stage::Main && state == State::Spawned && self.forking_parent_exited(&key, pid, status) {
            return true;
        }
        // The verdict first: it may change the goal the machine then goes on with.
        let instance = self.instance_mut(&key).expect("checked");
        if stage == Stage::Main {
            match classify_main_exit(state, instance.goal, status, job.task, job.respawn, &job.normal_exit) {
                MainExit::Expected => {}
                MainExit::Finished => instance.goal = Goal::Stop,
                MainExit::Failed => self.fail(&key, "main", Some(status)),
                MainExit::Respawn => self.respawn(&key, &job, &name, status),
            }
        } else if machine::script_fails(stage, status.is_success(), instance.killing_scripts) {
            self.fail(&key, stage.keyword(), Some(status));
        }
        let instance = self.instance(&key).expect("checked");
        let facts = ExitFacts {
            state,
            goal: instance.goal,
            restarting: instance.restarting,
            main_alive: instance.main_alive(),
        };
        // (A script's state must still be the one it ran in: a goal change may have moved
        // the instance on meanwhile.)
        match machine::after_exit(stage, facts) {
            AfterExit::Stay => {}
            AfterExit::Move(_) if stage != Stage::Main && instance.state != state => {}
            AfterExit::Move(next) => self.change_state(&key, next),
            AfterExit::GiveUpReadiness => {
                self.end_awaiting(&key);
                self.change_state(&key, State::Stopping);
            }
        }
        true
    }

    pub(super) fn respawn(&mut self, key: &Key, job: &Job, name: &str, status: ExitStatus) {
        if self.shutting_down {
            self.fail(key, "main", Some(status));
            return;
        }
        let now = self.host.now();
        let seconds = now.saturating_duration_since(self.started_at).as_secs();
        let instance = self.instance_mut(key).expect("checked");
        if !instance.rare_mut().respawn.allow(job.respawn_limit, seconds) {
            warn!("{name} respawning too fast, stopped");
            self.fail(key, "respawn", None);
            return;
        }
        self.metrics.respawned(&job.name);
        let instance = self.instance_mut(key).expect("checked");
        instance.goal = Goal::Respawn;
        // The back-off grows with respawns in a row; a run that stayed up starts it over.
        let up_for = instance.running_since.map(|since| now.saturating_duration_since(since));
        let streak = machine::exit::respawn_streak(instance.rare().respawn_streak, up_for, job.respawn_limit);
        instance.rare_mut().respawn_streak = streak;
        match job.lifecycle.respawn_delay {
            Some(delay) => {
                let millis = machine::exit::backoff_millis(delay, instance.rare().respawn_streak, random());
                instance.pending_delay = Some(millis);
                let shown = crate::model::job::render_duration(crate::syntax::ast::Seconds { millis });
                info!("{name} main process ended, respawning in {shown}");
            }
            None => info!("{name} main process ended, respawning"),
        }
        if !job.ext.hooks.is_empty() {
            let env = self
                .instance(key)
                .map(|instance| instance.env.to_vec())
                .unwrap_or_default();
            self.run_hooks(key, crate::syntax::ast::HookEvent::Respawn, &env);
        }
    }
}
