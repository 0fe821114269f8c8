//! Status replies: an instance's status line and the details `status -v` shows, and `list`.

use super::role::Role;
use crate::control::proto::{InstanceStatus, ProcessStatus, Reply};
use crate::model::Job;

use super::daemon::{Daemon, Key, Outgoing};
use super::jobs::{ClassId, ClientId};

impl Daemon {
    pub(super) fn display_name(job: &Job, instance: &str) -> String {
        crate::control::proto::instance_name(&job.name, instance)
    }

    pub fn instance_status(&self, key: &Key) -> InstanceStatus {
        let Some(class) = self.classes.get(key.0) else {
            // The class went away (its file was deleted and its last instance stopped).
            return InstanceStatus {
                job: self.classes.gone_name(key.0).unwrap_or_default().to_string(),
                instance: key.1.clone(),
                goal: "stop".into(),
                state: "waiting".into(),
                processes: Vec::new(),
                detail: Vec::new(),
                queue: None,
            };
        };
        let job = &class.job;
        match self.instance(key) {
            Some(instance) => {
                // The main process first (its pid ends Upstart's status line), then the
                // rest in the order of their roles.
                let main = instance.pids.get(&Role::MAIN).map(|pid| (&Role::MAIN, pid));
                let others = instance.pids.iter().filter(|(role, _)| !role.is_main());
                let processes = main
                    .into_iter()
                    .chain(others)
                    .map(|(role, pid)| ProcessStatus {
                        kind: role.to_string(),
                        pid: (!super::lua_processes::is_lua_id(*pid)).then_some(*pid),
                    })
                    .collect();
                let mut detail = Vec::new();
                let queue = self.queue_status(key).map(|(queue, lines)| {
                    detail.extend(lines);
                    queue
                });
                if let Some(event) = instance.blocker.and_then(|id| self.events.get(&id)) {
                    detail.push(format!("waiting for its `{}` event to finish", event.name));
                }
                if let Some(failure) = &instance.rare().failed {
                    detail.push(format!("failed: process {}", failure.process));
                }
                if let Some((when, what)) = &instance.rare().last_exit {
                    detail.push(format!("{what}, {}s ago", when.elapsed().as_secs()));
                }
                if instance.rare().respawn_streak > 0 {
                    detail.push(format!("respawned {} time(s) in a row", instance.rare().respawn_streak));
                }
                if let Some(at) = self.respawn_at(instance) {
                    let left = at.saturating_duration_since(self.host.now()).as_millis() as u64;
                    let shown = crate::model::job::render_duration(crate::syntax::ast::Seconds { millis: left });
                    detail.push(format!("respawning in {shown}"));
                }
                if let Some(awaiting) = &instance.awaiting {
                    detail.push(awaiting_line(awaiting));
                }
                if let Some(error) = &instance.rare().log_error {
                    detail.push(format!("output not logged: {error}"));
                }
                if let Some(status) = &instance.rare().notify_status {
                    detail.push(format!("status: {status}"));
                }
                detail.extend(self.timer_details(key.0, Some(&instance.name)));
                detail.extend(actions_line(job));
                InstanceStatus {
                    job: job.name.clone(),
                    instance: instance.name.clone(),
                    goal: instance.shown_goal().to_string(),
                    state: instance.state.name().to_string(),
                    processes,
                    detail,
                    queue,
                }
            }
            None => InstanceStatus {
                job: job.name.clone(),
                instance: key.1.clone(),
                goal: "stop".into(),
                state: "waiting".into(),
                processes: Vec::new(),
                detail: self.class_detail(key.0),
                queue: None,
            },
        }
    }

    pub(super) fn class_detail(&self, class_id: ClassId) -> Vec<String> {
        let class = self.class(class_id);
        let mut detail = Vec::new();
        if let Some((when, result)) = class.last_result.as_deref() {
            detail.push(format!("last stopped {}s ago: {result}", when.elapsed().as_secs()));
        }
        match (&class.job.start_on, &class.start_on) {
            (None, _) => detail.push("no `start on`: starts only when asked".to_string()),
            (Some(expr), Some(matcher)) => {
                let held: Vec<String> = matcher
                    .held()
                    .iter()
                    .filter_map(|id| self.events.get(id))
                    .map(|event| event.name.clone())
                    .collect();
                let expr = crate::model::job::render_expr(expr);
                if held.is_empty() {
                    detail.push(format!("waiting for: start on {expr}"));
                } else {
                    detail.push(format!(
                        "waiting for: start on {expr} (already seen: {})",
                        held.join(", ")
                    ));
                }
            }
            (Some(_), None) => {}
        }
        detail.extend(self.timer_details(class_id, None));
        detail.extend(actions_line(&class.job));
        detail
    }

    /// Every class and instance, sorted by job name.
    pub fn list(&self) -> Vec<InstanceStatus> {
        let mut names: Vec<(&String, &ClassId)> = self.class_by_name.iter().collect();
        names.sort();
        let mut out = Vec::new();
        for (_, id) in names {
            let class = self.class(*id);
            if class.instances.is_empty() {
                out.push(self.instance_status(&(*id, String::new())));
            }
            for name in class.instances.keys() {
                out.push(self.instance_status(&(*id, name.clone())));
            }
        }
        out
    }

    pub(super) fn reply_status(&mut self, client: ClientId, key: &Key) {
        let status = self.instance_status(key);
        self.outgoing.push(Outgoing::Reply(
            client,
            Reply::Status {
                instances: vec![status],
            },
        ));
        self.outgoing.push(Outgoing::Reply(client, Reply::Done));
        self.outgoing.push(Outgoing::Finish(client));
    }
}

/// What a main process in `spawned` is waiting for, in words (`status -v`, `waiting`).
pub(super) fn awaiting_line(awaiting: &super::readiness::Awaiting) -> String {
    match awaiting {
        super::readiness::Awaiting::Stop => "waiting for the main process to stop itself (expect stop)".to_string(),
        super::readiness::Awaiting::Notify => "waiting for READY=1 (expect notify)".to_string(),
        super::readiness::Awaiting::Fork { .. } => {
            "waiting for the daemon to fork (expect fork/daemon, pid file)".to_string()
        }
    }
}

/// `actions: rotate, flush`, for a job that has any (`uprisectl action JOB NAME`).
fn actions_line(job: &Job) -> Option<String> {
    let names: Vec<&str> = job.lifecycle.actions.keys().map(String::as_str).collect();
    (!names.is_empty()).then(|| format!("actions: {}", names.join(", ")))
}
