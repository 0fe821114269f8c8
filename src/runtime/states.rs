//! Goals and state changes: an instance's goal changes, and the machine's decisions
//! (`machine::enter`, `machine::next_state`) are performed: the effects of entering each
//! state, failure, and answering what waited for the instance to reach its goal.

use std::time::Instant;

use log::debug;

use crate::control::proto::Reply;
use crate::machine::exit::ExitStatus;
use crate::machine::{
    self, Admission, Effect, Facts, Goal, GoalChange, GoalFacts, JobEvent, Matcher, State, Then, next_state,
};
use crate::model::Job;
use crate::syntax::ast::HookEvent;

use super::daemon::{Daemon, Key, Outgoing, PendingKill, WaitKind, Waiter};
use super::events::job_event_env;
use super::jobs::{Blocked, ClientId, Failure, result_env};
use super::role::Role;
use super::spawning::{SpawnChild, Spawning, Started};

impl Daemon {
    /// Changes an instance's goal; kicks the machine when the instance rests.
    pub fn change_goal(&mut self, key: &Key, goal: Goal) {
        let Some(instance) = self.instance_mut(key) else { return };
        if instance.goal == goal {
            return;
        }
        debug!("{} goal {} -> {}", key.1, instance.goal.name(), goal.name());
        instance.goal = goal;
        if goal == Goal::Stop {
            instance.restarting = false;
        }
        let facts = GoalFacts {
            state: instance.state,
            goal,
            main_alive: instance.main_alive(),
            in_backoff: instance.rare().delay.is_some(),
        };
        match machine::goal_changed(facts) {
            GoalChange::Wait => {}
            GoalChange::Move(next) => self.change_state(key, next),
            GoalChange::EndBackoff(next) => {
                instance.pending_delay = None;
                self.end_respawn_delay(key);
                self.change_state(key, next);
            }
            GoalChange::AbandonReadiness => self.abandon_readiness(key),
            GoalChange::GraceScript => self.arm_script_grace(key),
        }
    }

    /// Moves an instance into `state` and on, as far as it goes by itself. What each state
    /// does is the machine's decision (`machine::enter`); this performs it.
    pub fn change_state(&mut self, key: &Key, mut state: State) {
        let Some(instance) = self.instance(key) else { return };
        if instance.spawning {
            // Its process may still be on its way to exec: follow that up first, as if the
            // spawn had returned at once.
            let at = self.spawning.iter().position(|spawned| spawned.key == *key);
            match at.and_then(|at| self.spawning.remove(at)) {
                Some(spawned) => self.follow_up_spawn(spawned),
                None => {
                    if let Some(instance) = self.instance_mut(key) {
                        instance.spawning = false;
                    }
                }
            }
        }
        let class = self.class(key.0);
        let (job, defines) = (class.job.clone(), class.stages);
        let awaits_readiness = super::readiness::needs_readiness(&job);
        loop {
            let Some(instance) = self.instance(key) else { return };
            let facts = Facts {
                from: instance.state,
                goal: instance.goal,
                task: job.task,
                main_alive: instance.main_alive(),
                defines,
                awaits_readiness,
                respawn_delay: instance.pending_delay.is_some_and(|delay| delay > 0),
                admission: Admission::Now,
            };
            let facts = if state == State::Queued {
                Facts {
                    admission: self.admission_of(key),
                    ..facts
                }
            } else {
                facts
            };
            let entry = machine::enter(state, facts);
            if !matches!(entry.then, Then::Hold | Then::Pass) {
                self.enter_state(key, &job, state);
            }
            for &effect in entry.effects {
                self.perform(key, &job, effect);
            }
            let go_on = match entry.then {
                Then::Hold | Then::Rest => false,
                Then::Next | Then::Pass => true,
                Then::Run {
                    stage,
                    after,
                    failure_fails,
                } => match self.spawn_process(key, &job, &Role::Stage(stage)) {
                    Started::Now(spawned) => {
                        self.after_spawn(key, &job, &Role::Stage(stage), after, failure_fails, spawned)
                    }
                    Started::Later(pending, begun) => {
                        if let Some(instance) = self.instance_mut(key) {
                            instance.spawning = true;
                        }
                        self.spawning.push_back(Spawning {
                            key: key.clone(),
                            state,
                            role: Role::Stage(stage),
                            after,
                            failure_fails,
                            child: SpawnChild::InFlight(pending),
                            begun,
                        });
                        false
                    }
                },
            };
            if !go_on {
                return;
            }
            let Some(instance) = self.instance(key) else { return };
            state = next_state(state, instance.goal, instance.main_alive());
        }
    }

    /// Sets the instance's state, records the change (`history.rs`) and tells the monitors.
    pub(super) fn enter_state(&mut self, key: &Key, job: &Job, state: State) {
        let now = self.host.now();
        let Some(instance) = self.instance_mut(key) else { return };
        let from = instance.state;
        instance.state = state;
        let goal = instance.shown();
        debug!("{} ({}) state {from} -> {state}", job.name, key.1);
        let cause = (state == State::Starting).then(|| {
            let env = instance.start_env.as_ref().unwrap_or(&instance.env);
            super::history::cause_of(|key| env.get(key))
        });
        self.history
            .record(now, &job.name, &key.1, goal, state, cause.as_deref());
        // Built only for someone to send it to: a state change is frequent.
        if !self.monitors.is_empty() {
            let goal = goal.name().to_string();
            self.broadcast(Reply::Change {
                job: job.name.clone(),
                instance: key.1.clone(),
                goal,
                state: state.name().to_string(),
            });
        }
    }

    /// Performs one effect the machine decided on entering a state.
    pub(super) fn perform(&mut self, key: &Key, job: &Job, effect: Effect) {
        match effect {
            Effect::RespawnDelay => {
                let delay = self
                    .instance_mut(key)
                    .and_then(|instance| instance.pending_delay.take());
                if let Some(delay) = delay {
                    self.arm_respawn_delay(key, delay);
                }
            }
            Effect::BeginRun => {
                let Some(instance) = self.instance_mut(key) else { return };
                if instance.goal == Goal::Respawn {
                    instance.goal = Goal::Start;
                }
                instance.pending_delay = None;
                instance.restarting = false;
                instance.killing_scripts = false;
                if let Some(mut env) = instance.start_env.take() {
                    // It lives as long as the run: only the room it uses.
                    env.shrink_to_fit();
                    instance.env = env;
                }
                if let Some(rare) = instance.rare_if_any() {
                    rare.stop_env.clear();
                    rare.failed = None;
                }
                // A fresh stop matcher; holds of the old one (from before a respawn) go.
                let held = instance.stop_on.as_mut().map(Matcher::reset).unwrap_or_default();
                instance.stop_on = job.stop_on.as_ref().map(Matcher::new);
                for event in held {
                    self.release(event, false);
                }
            }
            Effect::EmitBlocking(which) => {
                let Some(instance) = self.instance(key) else { return };
                let (name, extra) = match which {
                    JobEvent::Starting => ("starting", Vec::new()),
                    JobEvent::Stopping => ("stopping", result_env(instance.rare().failed.as_ref())),
                };
                let env = job_event_env(job, instance, &extra);
                if !job.ext.hooks.is_empty() {
                    let hook = match which {
                        JobEvent::Starting => HookEvent::Starting,
                        JobEvent::Stopping => HookEvent::Stopping,
                    };
                    self.run_hooks(key, hook, &env);
                }
                let event = self.emit(name, env);
                if let Some(instance) = self.instance_mut(key) {
                    instance.blocker = Some(event);
                }
                self.event_waiters.entry(event).or_default().push(key.clone());
            }
            Effect::Started => {
                let Some(instance) = self.instance(key) else { return };
                let env = job_event_env(job, instance, &[]);
                if !job.ext.hooks.is_empty() {
                    self.run_hooks(key, HookEvent::Started, &env);
                }
                self.emit("started", env);
                self.next_seq += 1;
                let seq = self.next_seq;
                let now = self.host.now();
                if let Some(instance) = self.instance_mut(key) {
                    instance.started_seq = seq;
                    instance.running_since = Some(now);
                }
            }
            Effect::TaskDone => {
                if let Some(instance) = self.instance_mut(key)
                    && instance.goal == Goal::Start
                {
                    instance.goal = Goal::Stop;
                }
            }
            Effect::Finished => self.job_finished(key, false),
            Effect::KillMain => {
                let Some(&pid) = self.instance(key).and_then(|instance| instance.pids.get(&Role::MAIN)) else {
                    return;
                };
                let mut pids = vec![pid];
                pids.extend(self.signal_side_processes(key, job.kill_signal));
                // `stop exec|script` stops it instead of the signal; the kill timer runs all
                // the same.
                if !self.stop_with_command(key) {
                    let signal = crate::sys::process::signal_name(job.kill_signal);
                    let shown_pid = super::lua_processes::shown(pid);
                    debug!(
                        "Sending {signal} signal to {} main process ({shown_pid})",
                        self.display(key)
                    );
                    self.pending_kills.push(PendingKill {
                        pid,
                        signal: job.kill_signal,
                        spawned: self.spawned(pid),
                    });
                }
                self.arm_kill_timer(key, job.kill_timeout.millis, pids);
            }
            Effect::Retire => self.enter_waiting(key, job),
            Effect::Admit => self.admit(key),
            Effect::Queue => self.queue(key),
            Effect::Refuse => self.refuse_start(key),
        }
    }

    pub(super) fn enter_waiting(&mut self, key: &Key, job: &Job) {
        let instance = self.instance(key).expect("checked");
        let extra = result_env(instance.rare().failed.as_ref());
        let env = job_event_env(job, instance, &extra);
        let failed = instance.rare().failed.is_some();
        let mut result = extra.join(" ");
        if let Some((_, what)) = &instance.rare().last_exit {
            result.push_str(&format!("; {what}"));
        }
        if let Some(class) = self.classes.get_mut(key.0) {
            class.last_result = Some(Box::new((Instant::now(), result)));
        }
        self.leave_admission(key);
        self.kill_side_processes(key);
        if !job.ext.hooks.is_empty() {
            self.run_hooks(key, HookEvent::Stopped, &env);
            if failed {
                self.run_hooks(key, HookEvent::Failed, &env);
            }
        }
        self.emit("stopped", env);
        self.job_finished(key, failed);
        // Instances do not persist in `waiting`.
        let Some(class) = self.classes.get_mut(key.0) else {
            return;
        };
        let mut rerun = None;
        if let Some(mut instance) = class.instances.remove(&key.1) {
            rerun = instance.rare_if_any().and_then(|rare| rare.watershed.take());
            let held = instance.stop_on.as_mut().map(Matcher::reset).unwrap_or_default();
            if let Some((id, _)) = instance.rare_if_any().and_then(|rare| rare.kill_deadline.take()) {
                self.disarm(id);
            }
            if let Some(id) = instance.rare_if_any().and_then(|rare| rare.delay.take()) {
                self.disarm(id);
            }
            if let Some(mut pipe) = instance.log.take() {
                pipe.drain_now();
                for (_, token) in pipe.readers.drain(..) {
                    self.handle.remove(token);
                }
                // Output kept while the log dir was unwritable gets one more chance.
                pipe.log.flush_pending();
            }
            for event in held {
                self.release(event, false);
            }
        }
        self.consider_replacement(key.0);
        if let Some(env) = rerun {
            self.watershed_rerun(key.0, key.1.clone(), env);
        }
    }

    /// Marks an instance failed (the first failure wins) and sets its goal to stop.
    pub(super) fn fail(&mut self, key: &Key, process: &str, status: Option<ExitStatus>) {
        if self
            .instance(key)
            .is_some_and(|instance| instance.rare().failed.is_none())
        {
            let job = self.class(key.0).job.name.clone();
            self.metrics.failed(&job);
        }
        let Some(instance) = self.instance_mut(key) else { return };
        if instance.rare().failed.is_none() {
            instance.rare_mut().failed = Some(Failure {
                process: process.to_string(),
                status,
            });
        }
        let was_stop = instance.goal == Goal::Stop;
        instance.goal = Goal::Stop;
        instance.restarting = false;
        if !was_stop && matches!(instance.state, State::PreStart | State::PostStart) {
            self.arm_script_grace(key);
        }
    }

    /// Releases everything waiting on an instance: its goal is reached (or failed).
    pub(super) fn job_finished(&mut self, key: &Key, failed: bool) {
        let Some(instance) = self.instance_mut(key) else { return };
        let blocking = std::mem::take(&mut instance.blocking);
        for blocked in blocking {
            match blocked {
                Blocked::Event(event) => self.release(event, failed),
                Blocked::Client(client) => self.answer_waiting_client(client, key, failed),
            }
        }
    }

    pub(super) fn answer_waiting_client(&mut self, client: ClientId, key: &Key, failed: bool) {
        let Some(Waiter { kind, .. }) = self.client_waits.remove(&client) else {
            return;
        };
        if failed && kind != WaitKind::Stop {
            self.outgoing.push(Outgoing::Reply(
                client,
                Reply::Error {
                    message: "Job failed to start".into(),
                },
            ));
            self.outgoing.push(Outgoing::Finish(client));
        } else {
            self.reply_status(client, key);
        }
    }
}
