//! Events: emitting, handling (offered to the `stop on` matchers of instances, then to the
//! `start on` matchers of classes, through the dispatch indexes), holds, and finishing
//! (answering `emit` clients, `EVENT/failed`, instances waiting for their own event).
//!
//! Events are queued and handled to a fixed point by `settle`, never recursed into.

use std::collections::HashMap;

use log::{debug, warn};

use crate::control::proto::Reply;
use crate::machine::environ::{self, UnknownParameter};
use crate::machine::{EventId, EventRef, Goal, next_state};
use crate::model::Job;

use super::daemon::{Daemon, Key, Outgoing};
use super::jobs::{Blocked, ClassId, ClientId, Instance};
use super::timers::{Side, TimerId, TimerTarget};

/// Where an event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Pending,
    Handling,
    Finished,
}

/// A live event.
pub struct Event {
    pub name: String,
    pub env: Vec<String>,
    pub progress: Progress,
    /// Holds by expression leaves and by instances it started or stopped.
    pub blockers: usize,
    pub failed: bool,
    /// Clients of `emit` (with wait) to answer when it finishes.
    pub waiting_clients: Vec<ClientId>,
    /// A timer's firing: offered to its own operand's leaf only, not by name (see
    /// `timers/`). `None` for every other event.
    pub target: Option<TimerTarget>,
}

pub(super) fn job_event_env(job: &Job, instance: &Instance, extra: &[String]) -> Vec<String> {
    let mut env = vec![format!("JOB={}", job.name), format!("INSTANCE={}", instance.name)];
    env.extend_from_slice(extra);
    let export = &job.lifecycle.export;
    if export.len() <= 8 {
        for key in export {
            if let Some(value) = instance.env.get(key) {
                env.push(format!("{key}={value}"));
            }
        }
    } else {
        // Many exports: one pass over the table, not one per export.
        let table: HashMap<&str, &str> = instance
            .env
            .entries()
            .filter_map(|entry| entry.split_once('='))
            .collect();
        env.extend(
            export
                .iter()
                .filter_map(|key| table.get(key.as_str()).map(|value| format!("{key}={value}"))),
        );
    }
    env
}

impl Daemon {
    /// Queues an event; it is handled by the next `settle()`.
    pub fn emit(&mut self, name: &str, env: Vec<String>) -> EventId {
        self.emit_to(name, env, None)
    }

    /// Queues an event, offered to `target`'s leaf only when it is a timer's firing.
    pub(super) fn emit_to(&mut self, name: &str, env: Vec<String>, target: Option<TimerTarget>) -> EventId {
        let id = self.next_event;
        self.next_event += 1;
        self.metrics.event_emitted();
        debug!("event {name} {}", env.join(" "));
        if !self.monitors.is_empty() {
            self.broadcast(Reply::Event {
                name: name.to_string(),
                env: env.clone(),
            });
        }
        self.events.insert(
            id,
            Event {
                name: name.to_string(),
                env,
                progress: Progress::Pending,
                blockers: 0,
                failed: false,
                waiting_clients: Vec::new(),
                target,
            },
        );
        self.queue.push_back(id);
        id
    }

    /// Puts a restored pending event back in the queue.
    pub(super) fn requeue(&mut self, id: EventId) {
        self.queue.push_back(id);
    }

    /// Marks a restored event that nothing holds any more as finished.
    pub(super) fn refinish(&mut self, id: EventId) {
        self.finished.push_back(id);
    }

    pub(super) fn handle_event(&mut self, id: EventId) {
        let Some(event) = self.events.get_mut(&id) else {
            return;
        };
        event.progress = Progress::Handling;
        if let Some(target) = event.target.take() {
            self.offer_timer(id, target);
            if self.events.get(&id).is_some_and(|event| event.blockers == 0) {
                self.finished.push_back(id);
            }
            return;
        }
        // An event no class listens for costs a hash lookup, whatever the number of classes.
        let interested = self.stop_index.contains_key(&event.name)
            || self.start_index.contains_key(&event.name)
            || event.name == "runlevel";
        if !interested {
            if event.blockers == 0 {
                self.finished.push_back(id);
            }
            return;
        }
        let name = event.name.clone();
        let env = event.env.clone();
        if name == "runlevel" {
            self.observe_runlevel(id, &env);
        }
        // Stop first, then start, as Upstart does.
        let stop_classes = self.stop_index.get(&name).cloned().unwrap_or_default();
        for class_id in stop_classes {
            self.offer_stop(class_id, id, &name, &env);
        }
        let start_classes = self.start_index.get(&name).cloned().unwrap_or_default();
        for class_id in start_classes {
            self.offer_start(class_id, id, &name, &env);
        }
        if self.events.get(&id).is_some_and(|event| event.blockers == 0) {
            self.finished.push_back(id);
        }
    }

    pub(super) fn hold(&mut self, id: EventId) {
        if let Some(event) = self.events.get_mut(&id) {
            event.blockers += 1;
        }
    }

    /// Drops one hold on an event; it finishes when none remain.
    pub fn release(&mut self, id: EventId, failed: bool) {
        let Some(event) = self.events.get_mut(&id) else { return };
        event.blockers = event.blockers.saturating_sub(1);
        event.failed |= failed;
        if event.blockers == 0 && event.progress == Progress::Handling {
            self.finished.push_back(id);
        }
    }

    pub(super) fn finish_event(&mut self, id: EventId) {
        let Some(event) = self.events.get_mut(&id) else { return };
        if event.progress == Progress::Finished || event.blockers > 0 {
            return;
        }
        event.progress = Progress::Finished;
        let failed = event.failed;
        let clients = std::mem::take(&mut event.waiting_clients);
        let Some(Event { name, env, .. }) = self.events.remove(&id) else {
            return;
        };
        for client in clients {
            if failed {
                self.outgoing.push(Outgoing::Reply(
                    client,
                    Reply::Error {
                        message: "Event failed".into(),
                    },
                ));
            } else {
                self.outgoing.push(Outgoing::Reply(client, Reply::Done));
            }
            self.outgoing.push(Outgoing::Finish(client));
        }
        if failed && !name.ends_with("/failed") {
            self.emit(&format!("{name}/failed"), env);
        }
        // Instances waiting for their own starting/stopping event go on.
        for key in self.event_waiters.remove(&id).unwrap_or_default() {
            let Some(instance) = self.instance_mut(&key) else {
                continue;
            };
            if instance.blocker != Some(id) {
                continue;
            }
            instance.blocker = None;
            let next = next_state(instance.state, instance.goal, instance.main_alive());
            self.change_state(&key, next);
        }
    }

    /// The event environment of the fired events, plus `UPSTART_EVENTS`.
    pub(super) fn fired_env(&self, fired: &[EventId], list_key: &str) -> Vec<String> {
        let mut env = Vec::new();
        let mut names = Vec::new();
        let mut unique = fired.to_vec();
        unique.dedup();
        let mut seen = std::collections::HashSet::new();
        unique.retain(|id| seen.insert(*id));
        for id in &unique {
            if let Some(event) = self.events.get(id) {
                environ::merge(&mut env, &event.env);
                names.push(event.name.clone());
            }
        }
        env.push(format!("{list_key}={}", names.join(" ")));
        env
    }

    pub(super) fn offer_stop(&mut self, class_id: ClassId, id: EventId, name: &str, env: &[String]) {
        let Some(class) = self.classes.get_mut(class_id) else {
            return;
        };
        let event = EventRef { id, name, env };
        let mut holds = 0;
        let mut fired = Vec::new();
        let mut armed = Vec::new();
        for instance in class.instances.values_mut() {
            let Some(matcher) = instance.stop_on.as_mut() else {
                continue;
            };
            if instance.goal == Goal::Stop {
                continue;
            }
            let offer = matcher.offer(&event, &instance.env);
            holds += offer.taken;
            if offer.fired {
                fired.push((instance.name.clone(), matcher.take_fired()));
            }
            if !offer.armed.is_empty() {
                armed.push((instance.name.clone(), instance.serial, offer.armed));
            }
        }
        for _ in 0..holds {
            self.hold(id);
        }
        for (instance, serial, indexes) in armed {
            for index in indexes {
                let timer = TimerId {
                    class: class_id,
                    side: Side::Stop,
                    index,
                };
                self.arm_after(timer, Some((instance.clone(), serial)), env);
            }
        }
        for (instance, events) in fired {
            self.stop_fired(&(class_id, instance), &events);
        }
    }

    /// An instance's `stop on` became true with `events`: the instance stops, and holds
    /// them until it is at rest.
    fn stop_fired(&mut self, key: &Key, events: &[EventId]) {
        let stop_env = self.fired_env(events, "UPSTART_STOP_EVENTS");
        if let Some(instance) = self.instance_mut(key) {
            instance.rare_mut().stop_env = stop_env;
            instance
                .blocking
                .extend(events.iter().map(|event| Blocked::Event(*event)));
        }
        self.change_goal(key, Goal::Stop);
    }

    pub(super) fn offer_start(&mut self, class_id: ClassId, id: EventId, name: &str, env: &[String]) {
        let defaults = self.job_env(class_id);
        let Some(class) = self.classes.get_mut(class_id) else {
            return;
        };
        let Some(matcher) = class.start_on.as_mut() else { return };
        let offer = matcher.offer(&EventRef { id, name, env }, &defaults);
        let fired = if offer.fired { matcher.take_fired() } else { Vec::new() };
        for _ in 0..offer.taken {
            self.hold(id);
        }
        for index in offer.armed {
            let timer = TimerId {
                class: class_id,
                side: Side::Start,
                index,
            };
            self.arm_after(timer, None, env);
        }
        if offer.fired {
            self.start_fired(class_id, fired);
        }
    }

    /// A timer's firing (event `id`), offered to its own operand's leaf: in the class's
    /// `start on`, or in the `stop on` of its instances (of one instance, for the timer an
    /// `after` operand of that instance armed).
    fn offer_timer(&mut self, id: EventId, target: TimerTarget) {
        let TimerTarget { timer, instance } = target;
        let Some(class) = self.classes.get_mut(timer.class) else {
            return;
        };
        match timer.side {
            Side::Start => {
                let Some(matcher) = class.start_on.as_mut() else { return };
                let offer = matcher.fire(timer.index, id);
                let fired = if offer.fired { matcher.take_fired() } else { Vec::new() };
                for _ in 0..offer.taken {
                    self.hold(id);
                }
                if offer.fired {
                    self.start_fired(timer.class, fired);
                }
            }
            Side::Stop => {
                let mut holds = 0;
                let mut fired = Vec::new();
                for candidate in class.instances.values_mut() {
                    let addressed = instance
                        .as_ref()
                        .is_none_or(|(name, serial)| *name == candidate.name && *serial == candidate.serial);
                    let Some(matcher) = candidate.stop_on.as_mut() else {
                        continue;
                    };
                    if !addressed || candidate.goal == Goal::Stop {
                        continue;
                    }
                    let offer = matcher.fire(timer.index, id);
                    holds += offer.taken;
                    if offer.fired {
                        fired.push((candidate.name.clone(), matcher.take_fired()));
                    }
                }
                for _ in 0..holds {
                    self.hold(id);
                }
                for (name, events) in fired {
                    self.stop_fired(&(timer.class, name), &events);
                }
            }
        }
    }

    /// A class's `start on` became true with `fired`: the instance it names starts, and
    /// holds them until it is running (or released at once when it runs already).
    fn start_fired(&mut self, class_id: ClassId, fired: Vec<EventId>) {
        if self.shutting_down {
            for event in fired {
                self.release(event, false);
            }
            return;
        }
        let mut start_env = self.job_env(class_id);
        start_env.merge(&self.fired_env(&fired, "UPSTART_EVENTS"));
        let job_name = self.class(class_id).job.name.clone();
        let instance_name = match environ::expand(&self.class(class_id).job.instance, &start_env) {
            Ok(name) => name,
            Err(UnknownParameter(param)) => {
                warn!("Failed to obtain {job_name} instance: Unknown parameter: {param}");
                for event in fired {
                    self.release(event, false);
                }
                return;
            }
        };
        let key = (class_id, instance_name.clone());
        let class = self.classes.get_mut(class_id).expect("live class");
        let instance = class
            .instances
            .get_or_insert_with(instance_name.clone(), || Box::new(Instance::new(instance_name)));
        if instance.goal == Goal::Start {
            self.watershed_start(&key, &start_env);
            for event in fired {
                self.release(event, false);
            }
            return;
        }
        instance.start_env = Some(start_env);
        instance
            .blocking
            .extend(fired.iter().map(|event| Blocked::Event(*event)));
        self.change_goal(&key, Goal::Start);
    }

    /// Sends a monitor line to every monitoring client.
    pub(super) fn broadcast(&mut self, reply: Reply) {
        for client in self.monitors.clone() {
            self.outgoing.push(Outgoing::Reply(client, reply.clone()));
        }
    }
}
