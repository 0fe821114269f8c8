//! Processes that run beside an instance's run, each with a role of its own: `reload
//! exec|script` (run by `uprisectl reload` instead of the reload signal), `stop exec|script`
//! (run instead of the kill signal), and `action NAME exec|script` (run by `uprisectl
//! action`). They get the main process's environment, user and console, their output goes
//! to the job's log, and they are in the pid table and the snapshot by role, as any process
//! of the instance. A client that asked for one waits for its end and gets its exit status.
//!
//! Invariants: an instance runs at most one process of each role; a side process never
//! moves the machine (its end is only reported); when the instance is stopped its reload
//! and action processes get the kill signal with the main process, and any still alive
//! when the instance reaches `waiting` are killed.

use log::{info, warn};

use crate::control::proto::Reply;
use crate::machine::State;
use crate::machine::exit::ExitStatus;

use super::daemon::{Daemon, Key, Outgoing, PendingKill};
use super::jobs::{ClientId, describe_exit};
use super::role::{self, Role};
use super::spawning::{Spawned, Started};

impl Daemon {
    /// Starts a side process of a live instance now (its exec waited for); returns its pid.
    fn start_side(&mut self, key: &Key, role: &Role, extra: &[String]) -> Result<i32, String> {
        let job = self.class(key.0).job.clone();
        let display = self.display(key);
        if role::command_for(&job, role).is_none() {
            return Err(format!("{display} has no {role} process"));
        }
        if let Some(pid) = self.instance(key).and_then(|instance| instance.pids.get(role)) {
            let shown_pid = super::lua_processes::shown(*pid);
            return Err(format!("{display} {role} process ({shown_pid}) is still running"));
        }
        let spawned = match self.spawn_process_with(key, &job, role, extra) {
            Started::Now(spawned) => spawned,
            Started::Later(pending, _) => self.spawn_started(key, &job, role, pending.wait()),
        };
        match spawned {
            Spawned::Running => self
                .instance(key)
                .and_then(|instance| instance.pids.get(role).copied())
                .ok_or_else(|| format!("{display} {role} process ended at once")),
            Spawned::Nothing => Err(format!("{display} has no {role} process")),
            Spawned::Failed => Err(format!(
                "{display} {role} process could not be started; see the daemon's log"
            )),
        }
    }

    /// `uprisectl reload` of a job with `reload exec|script`: runs it; the client gets its
    /// exit status when it ends.
    pub(super) fn reload_command(&mut self, client: ClientId, key: &Key) -> Result<(), String> {
        let pid = self.start_side(key, &Role::Reload, &[])?;
        self.side_waits.insert(pid, client);
        Ok(())
    }

    /// `uprisectl action JOB NAME [KEY=VALUE…]`: runs the action in the instance the
    /// arguments name; the client gets its exit status when it ends.
    pub fn request_action(
        &mut self,
        client: ClientId,
        job: &str,
        name: &str,
        env: Vec<String>,
        instance: Option<String>,
    ) -> Result<(), String> {
        let (key, display) = self.addressed(job, &env, instance.as_deref())?;
        let actions = &self.class(key.0).job.lifecycle.actions;
        if !actions.contains_key(name) {
            let known: Vec<&str> = actions.keys().map(String::as_str).collect();
            return Err(if known.is_empty() {
                format!("Unknown action: {display} has no action {name}")
            } else {
                format!(
                    "Unknown action: {display} has no action {name} (it has: {})",
                    known.join(", ")
                )
            });
        }
        let running = self
            .instance(&key)
            .is_some_and(|instance| !matches!(instance.state, State::Waiting | State::Queued));
        if !running {
            return Err(format!("Job is not running: {display}"));
        }
        let pid = self.start_side(&key, &Role::Action(name.into()), &env)?;
        self.side_waits.insert(pid, client);
        Ok(())
    }

    /// `stop exec|script`, instead of the kill signal: true when it started.
    pub(super) fn stop_with_command(&mut self, key: &Key) -> bool {
        let job = self.class(key.0).job.clone();
        if job.lifecycle.stop_action.is_none() {
            return false;
        }
        match self.start_side(key, &Role::Stop, &[]) {
            Ok(pid) => {
                let shown_pid = super::lua_processes::shown(pid);
                info!(
                    "{} stop process ({shown_pid}) runs instead of the kill signal",
                    self.display(key)
                );
                true
            }
            Err(error) => {
                warn!("{error}; sending the kill signal instead");
                false
            }
        }
    }

    /// The instance is being stopped: its reload and action processes get the kill signal
    /// too; returns their pids, for the kill timer.
    pub(super) fn signal_side_processes(&mut self, key: &Key, signal: i32) -> Vec<i32> {
        let pids: Vec<i32> = self
            .instance(key)
            .map(|instance| {
                instance
                    .pids
                    .iter()
                    .filter(|(role, _)| matches!(role, Role::Reload | Role::Action(_)))
                    .map(|(_, pid)| *pid)
                    .collect()
            })
            .unwrap_or_default();
        for &pid in &pids {
            self.pending_kills.push(PendingKill {
                pid,
                signal,
                spawned: self.spawned(pid),
            });
        }
        pids
    }

    /// The instance reached `waiting`: side processes still alive are killed, and are no
    /// longer the instance's.
    pub(super) fn kill_side_processes(&mut self, key: &Key) {
        let Some(instance) = self.instance_mut(key) else { return };
        let left: Vec<(Role, i32)> = instance
            .pids
            .iter()
            .filter(|(role, _)| role.stage().is_none())
            .map(|(role, pid)| (role.clone(), *pid))
            .collect();
        for (role, pid) in left {
            let shown_pid = super::lua_processes::shown(pid);
            warn!(
                "{} {role} process ({shown_pid}) outlived its job; killing it",
                self.display(key)
            );
            let spawned = self.spawned(pid);
            self.signal_main(pid, libc::SIGKILL, spawned);
            if let Some(instance) = self.instance_mut(key) {
                instance.pids.remove(&role);
            }
            self.pids.remove(&pid);
            self.answer_side(
                pid,
                format!("{role} process ({shown_pid}) was killed: its job stopped"),
                false,
            );
        }
    }

    /// A side process ended: the client that asked for it gets its exit status.
    pub(super) fn side_exited(&mut self, pid: i32, key: &Key, role: &Role, status: ExitStatus) {
        let shown_pid = super::lua_processes::shown(pid);
        let text = format!(
            "{} {role} process ({shown_pid}) {}",
            self.display(key),
            describe_exit(status)
        );
        self.answer_side(pid, text, status.is_success());
    }

    fn answer_side(&mut self, pid: i32, text: String, success: bool) {
        let Some(client) = self.side_waits.remove(&pid) else {
            return;
        };
        let reply = if success {
            Reply::Text { text }
        } else {
            Reply::Error { message: text }
        };
        self.outgoing.push(Outgoing::Reply(client, reply));
        if success {
            self.outgoing.push(Outgoing::Reply(client, Reply::Done));
        }
        self.outgoing.push(Outgoing::Finish(client));
    }
}
