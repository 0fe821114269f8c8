//! The job requests of the control protocol: `start`, `stop`, `restart`, `reload`, `status`
//! and `emit` (the environment requests and the configuration views are in `environment.rs`
//! and `views.rs`); and forgetting a client that went away.

use crate::control::proto::{InstanceStatus, Reply};
use crate::machine::{self, Goal, Stage, State};

use super::daemon::{Daemon, Key, Outgoing, WaitKind, Waiter};
use super::jobs::{Blocked, ClientId, Instance};
use super::role::Role;

impl Daemon {
    pub(super) fn check_env(env: &[String]) -> Result<(), String> {
        let bad = env.iter().find(|entry| {
            entry
                .split_once('=')
                .is_none_or(|(key, _)| !crate::syntax::values::is_env_key(key))
        });
        match bad {
            Some(bad) => Err(format!("Env must be KEY=VALUE pairs: {bad}")),
            None => Ok(()),
        }
    }

    pub fn request_start(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
        wait: bool,
        now: bool,
    ) -> Result<(), String> {
        Self::check_env(&env)?;
        if self.shutting_down {
            return Err("uprise is shutting down".into());
        }
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, &env, instance.as_deref())?;
        let key = (class_id, name.clone());
        let mut start_env = self.job_env(class_id);
        start_env.merge(&env);
        let class = self.classes.get_mut(class_id).expect("live class");
        let display = Self::display_name(&class.job, &name);
        let instance = class
            .instances
            .get_or_insert_with(name.clone(), || Box::new(Instance::new(name)));
        if instance.goal == Goal::Start {
            if now && instance.state == State::Queued {
                // The operator insists: the queued start goes past its gate and pools.
                self.say_admitted_now(client, &display);
                self.wait_for(client, &key, wait);
                self.admit_queued_now(&key);
                if !wait {
                    self.reply_status(client, &key);
                }
                return Ok(());
            }
            if self.watershed_start(&key, &start_env) {
                self.reply_status(client, &key);
                return Ok(());
            }
            return Err(format!("Job is already running: {display}"));
        }
        instance.start_env = Some(start_env);
        if now && super::admission::needs_admission(&class.job) {
            instance.rare_mut().admit_now = true;
            self.say_admitted_now(client, &display);
        }
        self.wait_for(client, &key, wait);
        self.change_goal(&key, Goal::Start);
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    /// `start --now` says that it went past the job's gate and pools.
    fn say_admitted_now(&mut self, client: ClientId, display: &str) {
        self.outgoing.push(Outgoing::Reply(
            client,
            Reply::Text {
                text: format!("{display}: started past its gate and pools (--now)"),
            },
        ));
    }

    /// A client that waits for an instance to reach its goal is answered when it does.
    fn wait_for(&mut self, client: ClientId, key: &Key, wait: bool) {
        let Some(instance) = self.instance_mut(key) else { return };
        if wait {
            instance.blocking.push(Blocked::Client(client));
            self.client_waits.insert(
                client,
                Waiter {
                    key: key.clone(),
                    kind: WaitKind::Start,
                },
            );
        }
    }

    /// What a command addresses: the class and instance, and how to name it in messages.
    pub(super) fn addressed(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<(Key, String), String> {
        Self::check_env(env)?;
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, env, instance)?;
        let display = Self::display_name(&self.class(class_id).job, &name);
        Ok(((class_id, name), display))
    }

    pub fn request_stop(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
        wait: bool,
    ) -> Result<(), String> {
        let (key, display) = self.addressed(job, &env, instance.as_deref())?;
        let Some(instance) = self.instance_mut(&key) else {
            return Err(format!("Unknown instance: {display}"));
        };
        if instance.goal == Goal::Stop {
            return Err(format!("Job has already been stopped: {display}"));
        }
        instance.rare_mut().stop_env = env;
        if wait {
            instance.blocking.push(Blocked::Client(client));
            self.client_waits.insert(
                client,
                Waiter {
                    key: key.clone(),
                    kind: WaitKind::Stop,
                },
            );
        }
        self.change_goal(&key, Goal::Stop);
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    pub fn request_restart(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
        wait: bool,
    ) -> Result<(), String> {
        let (key, display) = self.addressed(job, &env, instance.as_deref())?;
        let has_pre_stop = self.class(key.0).stages.has(Stage::PreStop);
        let Some(instance) = self.instance_mut(&key) else {
            return Err(format!("Unknown instance: {display}"));
        };
        if instance.goal != Goal::Start {
            return Err(format!("Job is not running: {display}"));
        }
        instance.restarting = true;
        instance.goal = Goal::Respawn;
        if wait {
            instance.blocking.push(Blocked::Client(client));
        }
        let next = machine::restart_from(instance.state, instance.main_alive(), has_pre_stop);
        if wait {
            self.client_waits.insert(
                client,
                Waiter {
                    key: key.clone(),
                    kind: WaitKind::Restart,
                },
            );
        }
        if let Some(next) = next {
            self.change_state(&key, next);
        }
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    /// Returns true when the reply waits for a reload process to end.
    pub fn request_reload(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
    ) -> Result<bool, String> {
        Self::check_env(&env)?;
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, &env, instance.as_deref())?;
        let key = (class_id, name.clone());
        let job = self.class(class_id).job.clone();
        let display = Self::display_name(&job, &name);
        let pid = self
            .instance(&key)
            .and_then(|instance| instance.pids.get(&Role::MAIN).copied());
        let Some(pid) = pid else {
            return Err(format!("Job is not running: {display}"));
        };
        match &job.lifecycle.reload {
            crate::model::job::Reload::Signal { signal } => {
                if *signal != 0 {
                    self.host
                        .signal(pid, *signal, false)
                        .map_err(|error| format!("Cannot reload {display}: {error}"))?;
                }
                Ok(false)
            }
            crate::model::job::Reload::Command { .. } => self.reload_command(client, &key).map(|()| true),
        }
    }

    pub fn request_status(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<InstanceStatus, String> {
        Self::check_env(env)?;
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, env, instance)?;
        let key = (class_id, name.clone());
        if self.instance(&key).is_none() && !name.is_empty() {
            let display = Self::display_name(&self.class(class_id).job, &name);
            return Err(format!("Unknown instance: {display}"));
        }
        Ok(self.instance_status(&key))
    }

    pub fn request_emit(&mut self, client: ClientId, name: &str, env: Vec<String>, wait: bool) -> Result<(), String> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err("Name may not be empty string".into());
        }
        if let Some(bad) = env.iter().find(|entry| !entry.contains('=')) {
            return Err(format!("Env must be KEY=VALUE pairs: {bad}"));
        }
        let id = self.emit(name, env);
        if wait {
            if let Some(event) = self.events.get_mut(&id) {
                event.waiting_clients.push(client);
            }
        } else {
            self.outgoing.push(Outgoing::Reply(client, Reply::Done));
            self.outgoing.push(Outgoing::Finish(client));
        }
        Ok(())
    }

    /// A client went away: forget what it waited for (the jobs carry on).
    pub fn forget_client(&mut self, client: ClientId) {
        self.monitors.retain(|monitor| *monitor != client);
        self.side_waits.retain(|_, waiting| *waiting != client);
        if let Some(Waiter { key, .. }) = self.client_waits.remove(&client)
            && let Some(instance) = self.instance_mut(&key)
        {
            instance.blocking.retain(|blocked| *blocked != Blocked::Client(client));
        }
        for event in self.events.values_mut() {
            event.waiting_clients.retain(|waiting| *waiting != client);
        }
    }
}
