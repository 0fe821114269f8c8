//! The daemon core: events, classes, instances and their state changes.
//!
//! Everything here runs on the loop thread, inside `settle()` or a request handler; nothing
//! blocks. Events go through a queue (`pending` → `handling` → `finished`) and are handled to
//! a fixed point, never recursed into. A job's failure is a fact the machine handles, never an
//! error that leaves the loop: the daemon does not exit because a job misbehaved.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use calloop::timer::{TimeoutAction, Timer};
use calloop::{LoopHandle, LoopSignal};
use log::{debug, info, warn};

use crate::control::proto::{InstanceStatus, ProcessStatus, Reply};
use crate::machine::environ::{self, Environment, UnknownParameter};
use crate::machine::exit::{ExitStatus, MainExit, classify_main_exit};
use crate::machine::{
    self, AfterSpawn, Effect, EventId, EventRef, Facts, Goal, JobEvent, Matcher, Processes, State, Then, next_state,
};
use crate::model::small_map::SmallMap;
use crate::model::{Config, Job};
use crate::syntax::ast::{Console, ProcessKind};
use crate::sys::spawn::{self, SpawnSpec, Stdio};

use super::jobs::{Blocked, Class, ClassId, ClientId, Failure, Instance, LogPipe, describe_exit, result_env};
use super::output::{JobLog, Rotation};

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
}

/// What a waiting client asked for, to answer it when the instance rests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Start,
    Stop,
    Restart,
}

/// Things the daemon wants done with clients once a handler returns.
pub enum Outgoing {
    Reply(ClientId, Reply),
    /// The final reply has been sent; the client may be closed or take another request.
    Finish(ClientId),
}

/// Daemon-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub user_mode: bool,
    pub logdir: PathBuf,
    pub socket: PathBuf,
    pub rotation: Rotation,
}

type Key = (ClassId, String);

pub struct Daemon {
    pub settings: Settings,
    pub handle: LoopHandle<'static, Daemon>,
    pub stop_signal: LoopSignal,
    pub classes: super::jobs::ClassTable,
    pub class_by_name: HashMap<String, ClassId>,
    /// Classes whose `start on` names an event, by event name.
    pub(crate) start_index: HashMap<String, Vec<ClassId>>,
    /// Classes whose `stop on` names an event, by event name.
    stop_index: HashMap<String, Vec<ClassId>>,
    pub events: BTreeMap<EventId, Event>,
    queue: VecDeque<EventId>,
    finished: VecDeque<EventId>,
    /// Processes started but not yet followed up, oldest first (see [`Daemon::spawn_process`]).
    /// Those not yet waited for are always the newest ones (see [`Daemon::in_flight`]).
    spawning: VecDeque<Spawning>,
    /// The kill deadline of every instance whose processes were sent the kill signal and
    /// may still be alive, soonest first (the instance's `Rare::kill_deadline` holds the
    /// pids). One loop timer serves them all: a stop of 1,000 services adds no loop source.
    kill_deadlines: std::collections::BTreeSet<(Instant, Key)>,
    /// The loop timer set for the soonest kill deadline, and when it fires.
    kill_timer: Option<(calloop::RegistrationToken, Instant)>,
    /// Main processes to send their kill signal (pid, signal, spawned by uprise), once
    /// `settle` has nothing else to do (see [`Daemon::send_kills`]).
    pending_kills: Vec<(i32, i32, bool)>,
    /// While shutting down (no instance starts any more): the classes before this index have
    /// no instance, so each `settle` looks only at the rest.
    shutdown_cursor: usize,
    pub(crate) next_event: EventId,
    /// Every process uprise started and still waits for. The flag: uprise spawned it itself,
    /// so it leads its own session and process group for as long as it is not reaped (a
    /// session leader cannot leave its group). False for a daemon found by `expect fork`,
    /// `expect daemon` or a pid file, and for processes taken over from a re-exec.
    pub pids: HashMap<i32, (ClassId, String, ProcessKind, bool)>,
    /// Environment every job starts from; instances share the table they started from
    /// (changes copy it first).
    pub global_env: std::rc::Rc<Vec<String>>,
    /// Clients waiting on an instance: what they asked for.
    pub client_waits: HashMap<ClientId, (ClassId, String, WaitKind)>,
    pub outgoing: Vec<Outgoing>,
    pub shutting_down: bool,
    /// The loop has been told to stop.
    exiting: bool,
    pub clients: super::control::Clients,
    pub confdirs: Vec<PathBuf>,
    /// Instances waiting for their own `starting`/`stopping` event, by event: finishing an
    /// event costs as much as the instances that wait on it, not all instances.
    pub(crate) event_waiters: HashMap<EventId, Vec<Key>>,
    pub reload_pending: bool,
    /// A re-exec restored the classes from the state; the job dirs are read after serving.
    pub deferred_reload: bool,
    pub watcher: Option<super::watch::DirWatch>,
    /// The pid files being waited for (see `readiness.rs`).
    pub(crate) pid_files: super::readiness::PidFileWatches,
    /// The shutdown's reaper thread, once started (see `reaper.rs`).
    pub(crate) reaper: Option<std::sync::Arc<super::reaper::Reaper>>,
    /// Clients streaming events and state changes (`uprisectl monitor`).
    pub monitors: Vec<ClientId>,
    /// The control socket's listening fd and the notify socket's fd (kept across re-exec).
    pub listener_fd: Option<std::os::fd::RawFd>,
    pub notify_fd: Option<std::os::fd::RawFd>,
    /// The daemon's own command line (without the program), to re-exec with.
    pub args: Vec<String>,
    /// The daemon's binary as it was started (re-exec runs what is at that path now).
    pub exe: PathBuf,
    /// The client whose `reexec` is under way.
    pub reexec_requester: Option<ClientId>,
    /// The descriptor limit jobs get (the daemon raised its own).
    pub job_nofile: Option<(crate::syntax::ast::LimitValue, crate::syntax::ast::LimitValue)>,
    /// System mode: where a shutdown is, and what it ends with.
    pub shutdown_phase: Option<super::system::Phase>,
    pub shutdown_action: crate::control::proto::ShutdownAction,
    /// The current runlevel (`N` until a `runlevel` event says otherwise).
    pub runlevel: String,
    /// Counts instances reaching `running`, for the reverse-order shutdown.
    pub(crate) next_seq: u64,
    started_at: Instant,
}

/// What [`Daemon::spawn_process`] did.
enum Started {
    Now(Result<bool, ()>),
    Later(spawn::Pending),
}

/// A process started in a state that the machine follows up once its spawn is known to have
/// succeeded or failed.
struct Spawning {
    key: Key,
    /// The state that ran it, and what follows.
    state: State,
    kind: ProcessKind,
    after: AfterSpawn,
    failure_fails: bool,
    child: SpawnChild,
}

impl Spawning {
    /// Whether following it up needs no wait.
    fn is_done(&self) -> bool {
        match &self.child {
            SpawnChild::InFlight(pending) => pending.is_done(),
            SpawnChild::Done(_) => true,
        }
    }
}

enum SpawnChild {
    /// Perhaps still between clone and exec.
    InFlight(spawn::Pending),
    /// Waited for: its pid, or why it could not start.
    Done(Result<i32, spawn::SpawnError>),
}

/// How many children may be between clone and exec at once. While one sets itself up and
/// execs, the daemon prepares the next. With a full window the daemon sleeps until the
/// oldest has exec'd, and on a busy machine a new child may wait its turn for a CPU for
/// milliseconds: with 8, a start of 1,000 services took about 5 % longer than with 16 or 24
/// (alternating runs). Each child in flight holds a stack and at least one of the 32
/// staging slots (`sys::spawn::reserve_fd_slots`); a child that finds none free copies the
/// descriptor table instead.
const SPAWN_WINDOW: usize = 16;

/// How long a process may survive SIGKILL before it is treated as gone (`kill abandon`).
const DEFAULT_ABANDON: Duration = Duration::from_secs(60);

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

fn job_event_env(job: &Job, instance: &Instance, extra: &[String]) -> Vec<String> {
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
    /// Every instance of every loaded class, with its class.
    pub(crate) fn live_instances(&self) -> impl Iterator<Item = (ClassId, &Instance)> {
        self.classes
            .iter()
            .flat_map(|(id, class)| class.instances.values().map(move |instance| (id, &**instance)))
    }

    /// Whether uprise spawned `pid` itself and has not reaped it (see `pids`).
    fn spawned(&self, pid: i32) -> bool {
        self.pids.get(&pid).is_some_and(|tracked| tracked.3)
    }

    pub fn new(settings: Settings, handle: LoopHandle<'static, Daemon>, stop_signal: LoopSignal) -> Daemon {
        Daemon {
            settings,
            handle,
            stop_signal,
            classes: Default::default(),
            class_by_name: HashMap::new(),
            start_index: HashMap::new(),
            stop_index: HashMap::new(),
            events: BTreeMap::new(),
            queue: VecDeque::new(),
            finished: VecDeque::new(),
            spawning: VecDeque::new(),
            kill_deadlines: Default::default(),
            kill_timer: None,
            pending_kills: Vec::new(),
            shutdown_cursor: 0,
            next_event: 1,
            pids: HashMap::new(),
            global_env: Default::default(),
            client_waits: HashMap::new(),
            outgoing: Vec::new(),
            shutting_down: false,
            exiting: false,
            clients: super::control::Clients::default(),
            confdirs: Vec::new(),
            event_waiters: HashMap::new(),
            reload_pending: false,
            deferred_reload: false,
            watcher: None,
            pid_files: Default::default(),
            reaper: None,
            monitors: Vec::new(),
            job_nofile: None,
            listener_fd: None,
            notify_fd: None,
            args: Vec::new(),
            exe: PathBuf::new(),
            reexec_requester: None,
            shutdown_phase: None,
            shutdown_action: crate::control::proto::ShutdownAction::Poweroff,
            runlevel: "N".to_string(),
            next_seq: 0,
            started_at: Instant::now(),
        }
    }

    // ------------------------------------------------------------------ classes

    /// Installs the loaded jobs. A class whose instances are busy keeps its old definition
    /// until they are idle, as in Upstart.
    pub fn install(&mut self, config: Config) {
        // The tables that grow with the job count get their size at once: growing them by
        // doubling left each smaller copy behind as a hole in the heap, among the jobs. (Not
        // the pid table: how many jobs will run is not known here.)
        let new = config
            .jobs
            .iter()
            .filter(|job| !self.class_by_name.contains_key(&job.name))
            .count();
        self.classes.reserve(new);
        self.class_by_name.reserve(new);
        let mut seen = std::collections::HashSet::with_capacity(config.jobs.len());
        for job in config.jobs {
            seen.insert(job.name.clone());
            match self.class_by_name.get(&job.name).copied() {
                Some(id) => {
                    let class = self.classes.get_mut(id).expect("indexed class exists");
                    class.deleted = false;
                    if *class.job != job {
                        if !class.instances.is_empty() {
                            info!(
                                "{} changed; the new definition takes effect when its instances are idle",
                                job.name
                            );
                        }
                        class.replacement = Some(Box::new(job));
                        self.consider_replacement(id);
                    }
                }
                None => {
                    let start_on = job.start_on.as_ref().map(Matcher::new);
                    let name = job.name.clone();
                    let id = self.classes.insert(Class {
                        job: std::rc::Rc::new(job),
                        start_on,
                        instances: SmallMap::new(),
                        replacement: None,
                        deleted: false,
                        last_result: None,
                    });
                    self.class_by_name.insert(name, id);
                    self.index_class(id);
                }
            }
        }
        let gone: Vec<ClassId> = self
            .class_by_name
            .iter()
            .filter(|(name, _)| !seen.contains(*name))
            .map(|(_, id)| *id)
            .collect();
        for id in gone {
            if let Some(class) = self.classes.get_mut(id) {
                class.deleted = true;
            }
            self.consider_replacement(id);
        }
    }

    fn index_class(&mut self, id: ClassId) {
        let Some(class) = self.classes.get(id) else { return };
        if let Some(matcher) = &class.start_on {
            for name in matcher.event_names() {
                self.start_index.entry(name.to_string()).or_default().push(id);
            }
        }
        if let Some(expr) = &class.job.stop_on {
            for name in Matcher::new(expr).event_names() {
                self.stop_index.entry(name.to_string()).or_default().push(id);
            }
        }
    }

    pub(crate) fn index_class_public(&mut self, id: ClassId) {
        self.index_class(id);
    }

    /// Re-reads a class's expressions into the dispatch indexes.
    pub(crate) fn reindex_class(&mut self, id: ClassId) {
        self.unindex_class(id);
        self.index_class(id);
    }

    /// Puts a restored pending event back in the queue.
    pub(crate) fn requeue(&mut self, id: EventId) {
        self.queue.push_back(id);
    }

    /// Marks a restored event that nothing holds any more as finished.
    pub(crate) fn refinish(&mut self, id: EventId) {
        self.finished.push_back(id);
    }

    pub(crate) fn arm_kill_timer_public(&mut self, key: &Key, millis: u64, pids: Vec<i32>) {
        self.arm_kill_timer(key, millis, pids);
    }

    fn unindex_class(&mut self, id: ClassId) {
        for index in [&mut self.start_index, &mut self.stop_index] {
            for ids in index.values_mut() {
                ids.retain(|known| *known != id);
            }
            index.retain(|_, ids| !ids.is_empty());
        }
    }

    /// Swaps in a pending definition, or drops a deleted class, once no instance is active.
    fn consider_replacement(&mut self, id: ClassId) {
        let Some(class) = self.classes.get_mut(id) else { return };
        if !class.instances.is_empty() {
            return;
        }
        if class.deleted {
            let held = class.start_on.as_mut().map(Matcher::reset).unwrap_or_default();
            let name = class.job.name.clone();
            self.classes.remove(id);
            self.class_by_name.remove(&name);
            self.unindex_class(id);
            for event in held {
                self.release(event, false);
            }
            return;
        }
        if let Some(job) = class.replacement.take() {
            // Partial matches of the old expression are kept only if it did not change.
            let held = if class.job.start_on == job.start_on {
                Vec::new()
            } else {
                let held = class.start_on.as_mut().map(Matcher::reset).unwrap_or_default();
                class.start_on = job.start_on.as_ref().map(Matcher::new);
                held
            };
            class.job = std::rc::Rc::from(job);
            self.unindex_class(id);
            self.index_class(id);
            for event in held {
                self.release(event, false);
            }
        }
    }

    pub fn class(&self, id: ClassId) -> &Class {
        &self.classes[id]
    }

    pub(crate) fn instance_mut(&mut self, key: &Key) -> Option<&mut Instance> {
        self.classes.get_mut(key.0)?.instances.get_mut(&key.1).map(|i| &mut **i)
    }

    pub(crate) fn instance(&self, key: &Key) -> Option<&Instance> {
        self.classes.get(key.0)?.instances.get(&key.1).map(|i| &**i)
    }

    // ------------------------------------------------------------------ events

    /// Queues an event; it is handled by the next `settle()`.
    pub fn emit(&mut self, name: &str, env: Vec<String>) -> EventId {
        let id = self.next_event;
        self.next_event += 1;
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
            },
        );
        self.queue.push_back(id);
        id
    }

    /// Handles queued and finished events until nothing changes.
    pub fn settle(&mut self) {
        let mut followed_up = false;
        loop {
            // Spawns that are through first: the instance goes on as soon as it can, and the
            // list stays as short as the window.
            if self.spawning.front().is_some_and(Spawning::is_done)
                && let Some(spawned) = self.spawning.pop_front()
            {
                self.follow_up_spawn(spawned);
                followed_up = true;
                continue;
            }
            if let Some(id) = self.queue.pop_front() {
                self.handle_event(id);
                continue;
            }
            if let Some(id) = self.finished.pop_front() {
                self.finish_event(id);
                continue;
            }
            if let Some(spawned) = self.spawning.pop_front() {
                self.follow_up_spawn(spawned);
                followed_up = true;
                continue;
            }
            break;
        }
        self.send_kills();
        // The burst of starts is over: keep one stack for the next.
        if followed_up {
            spawn::release_spare_stacks();
        }
        if self.shutdown_phase.is_some() {
            self.advance_shutdown();
            if !self.queue.is_empty() || !self.finished.is_empty() {
                self.settle();
            }
            return;
        }
        if self.shutting_down && !self.exiting && self.no_instance_left() {
            info!("all jobs stopped; exiting");
            self.exiting = true;
            self.stop_signal.stop();
        }
    }

    /// Sends the kill signals the machine asked for since the last call, all at once.
    ///
    /// Each kill wakes a process that may take the daemon's CPU to exit, so a stop of 1,000
    /// services that killed each one as its turn came sent its last kill after 91-139 ms
    /// (median 118 of 6 traced), the state machine's work for the rest waiting behind each
    /// exit. Sent here, after that work, they go out about as from a program that only
    /// kills (84-125 ms, median 90 of 3; the program: 86-92 ms). Nothing reads a
    /// process's state between the two points: its exit is seen only at the loop's next
    /// pass, and its pid is not handed out again before the whole pid range has been used
    /// (see `reaper.rs`). Every path out of the loop (a re-exec too) settles first.
    fn send_kills(&mut self) {
        for (pid, signal, spawned) in std::mem::take(&mut self.pending_kills) {
            super::readiness::signal_main(pid, signal, spawned);
        }
    }

    /// While shutting down: whether every instance is gone. No instance starts once the
    /// shutdown began, so a class seen empty stays empty and is not looked at again.
    fn no_instance_left(&mut self) -> bool {
        while self.shutdown_cursor < self.classes.slot_count() {
            if self
                .classes
                .at_slot(self.shutdown_cursor)
                .is_some_and(|class| !class.instances.is_empty())
            {
                return false;
            }
            self.shutdown_cursor += 1;
        }
        true
    }

    fn handle_event(&mut self, id: EventId) {
        let Some(event) = self.events.get_mut(&id) else {
            return;
        };
        event.progress = Progress::Handling;
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

    fn hold(&mut self, id: EventId) {
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

    fn finish_event(&mut self, id: EventId) {
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
    fn fired_env(&self, fired: &[EventId], list_key: &str) -> Vec<String> {
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

    fn offer_stop(&mut self, class_id: ClassId, id: EventId, name: &str, env: &[String]) {
        let Some(class) = self.classes.get_mut(class_id) else {
            return;
        };
        let event = EventRef { id, name, env };
        let mut holds = 0;
        let mut fired = Vec::new();
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
        }
        for _ in 0..holds {
            self.hold(id);
        }
        for (instance, events) in fired {
            let key = (class_id, instance);
            let stop_env = self.fired_env(&events, "UPSTART_STOP_EVENTS");
            if let Some(instance) = self.instance_mut(&key) {
                instance.rare_mut().stop_env = stop_env;
                instance
                    .blocking
                    .extend(events.iter().map(|event| Blocked::Event(*event)));
            }
            self.change_goal(&key, Goal::Stop);
        }
    }

    fn offer_start(&mut self, class_id: ClassId, id: EventId, name: &str, env: &[String]) {
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
        if !offer.fired {
            return;
        }
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

    /// The environment a job starts from: the global table and the job's `env` stanzas.
    pub fn job_env(&self, class_id: ClassId) -> Environment {
        let mut env = Environment::new(self.global_env.clone(), Vec::new());
        let Some(class) = self.classes.get(class_id) else {
            return env;
        };
        // One merge of them all: a job may have many `env` lines.
        let own: Vec<String> = class
            .job
            .env
            .iter()
            .filter_map(|entry| match &entry.value {
                Some(value) => Some(format!("{}={value}", entry.key)),
                None => std::env::var(&entry.key)
                    .ok()
                    .map(|value| format!("{}={value}", entry.key)),
            })
            .collect();
        env.merge(&own);
        env
    }

    // ------------------------------------------------------------------ goals and states

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
        let state = instance.state;
        if goal == Goal::Stop && instance.rare().delay_timer.is_some() {
            // A stop during the respawn back-off ends it.
            let token = instance.rare_if_any().and_then(|rare| {
                rare.respawn_at = None;
                rare.delay_timer.take()
            });
            instance.pending_delay = None;
            if let Some(token) = token {
                self.handle.remove(token);
            }
            let next = next_state(state, goal, false);
            self.change_state(key, next);
            return;
        }
        if state == State::Spawned && goal == Goal::Stop {
            self.abandon_readiness(key);
            return;
        }
        if state.is_rest() {
            let next = next_state(state, goal, instance.main_alive());
            self.change_state(key, next);
        } else if goal == Goal::Stop && matches!(state, State::PreStart | State::PostStart) {
            self.arm_script_grace(key);
        }
    }

    /// Upstart waited forever for a pre-start or post-start script once the goal was stop.
    /// uprise gives it the kill timeout to finish (a pre-start that calls `stop` and exits is
    /// the common case), then kills it.
    fn arm_script_grace(&mut self, key: &Key) {
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

    fn kill_scripts(&mut self, key: &Key) {
        let (signal, timeout) = {
            let job = &self.class(key.0).job;
            (job.kill_signal, job.kill_timeout)
        };
        let Some(instance) = self.instance_mut(key) else { return };
        let scripts: Vec<i32> = instance
            .pids
            .iter()
            .filter(|(kind, _)| matches!(kind, ProcessKind::PreStart | ProcessKind::PostStart))
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
    fn arm_kill_timer(&mut self, key: &Key, millis: u64, pids: Vec<i32>) {
        self.cancel_kill_timer(key);
        let deadline = Instant::now() + Duration::from_millis(millis);
        let Some(instance) = self.instance_mut(key) else { return };
        instance.rare_mut().kill_deadline = Some((deadline, pids));
        self.kill_deadlines.insert((deadline, key.clone()));
        self.schedule_kill_timer();
    }

    /// Forgets the instance's kill deadline: its processes are gone.
    fn cancel_kill_timer(&mut self, key: &Key) {
        let deadline = self
            .instance_mut(key)
            .and_then(Instance::rare_if_any)
            .and_then(|rare| rare.kill_deadline.take());
        if let Some((at, _)) = deadline {
            self.drop_kill_deadline(at, key);
        }
    }

    /// Removes one kill deadline, and the loop timer with the last.
    fn drop_kill_deadline(&mut self, at: Instant, key: &Key) {
        self.kill_deadlines.remove(&(at, key.clone()));
        if self.kill_deadlines.is_empty()
            && let Some((token, _)) = self.kill_timer.take()
        {
            self.handle.remove(token);
        }
    }

    /// Sets the loop timer for the soonest kill deadline, unless it is set for it already
    /// (or sooner: it then fires, finds nothing due, and is set again).
    fn schedule_kill_timer(&mut self) {
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
    fn kill_deadlines_due(&mut self) {
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

    fn kill_timeout(&mut self, key: &Key, pids: &[i32]) {
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
    pub(crate) fn arm_respawn_delay(&mut self, key: &Key, millis: u64) {
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
        let job = self.class(key.0).job.clone();
        let defines = job.processes.keys().copied().collect::<Processes>();
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
            };
            let entry = machine::enter(state, facts);
            if entry.then != Then::Hold {
                self.enter_state(key, &job, state);
            }
            for &effect in entry.effects {
                self.perform(key, &job, effect);
            }
            let go_on = match entry.then {
                Then::Hold | Then::Rest => false,
                Then::Next => true,
                Then::Run {
                    kind,
                    after,
                    failure_fails,
                } => match self.spawn_process(key, &job, kind) {
                    Started::Now(started) => self.after_spawn(key, &job, kind, after, failure_fails, started),
                    Started::Later(pending) => {
                        if let Some(instance) = self.instance_mut(key) {
                            instance.spawning = true;
                        }
                        self.spawning.push_back(Spawning {
                            key: key.clone(),
                            state,
                            kind,
                            after,
                            failure_fails,
                            child: SpawnChild::InFlight(pending),
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

    /// Whether the machine goes on after starting a process: `started` is what
    /// [`Daemon::spawn_started`] said.
    fn after_spawn(
        &mut self,
        key: &Key,
        job: &Job,
        kind: ProcessKind,
        after: AfterSpawn,
        failure_fails: bool,
        started: Result<bool, ()>,
    ) -> bool {
        match started {
            Ok(true) => match after {
                AfterSpawn::Exit => false,
                AfterSpawn::Ready => !self.await_ready(key, job),
                AfterSpawn::Next => true,
            },
            Ok(false) => true,
            Err(()) => {
                if failure_fails {
                    self.fail(key, kind.keyword(), None);
                }
                true
            }
        }
    }

    /// Follows up every start not yet followed up, waiting for the exec where needed.
    pub fn follow_up_spawns(&mut self) {
        while let Some(spawned) = self.spawning.pop_front() {
            self.follow_up_spawn(spawned);
        }
    }

    /// How many starts were not yet waited for. They are the newest entries of `spawning`:
    /// new starts go at the back, and the oldest of them is the one waited for
    /// (`wait_oldest_spawn`), so this looks at no more than `SPAWN_WINDOW` + 1 entries.
    fn in_flight(&self) -> usize {
        self.spawning
            .iter()
            .rev()
            .take_while(|spawned| matches!(spawned.child, SpawnChild::InFlight(_)))
            .count()
    }

    /// Waits for the oldest child still between clone and exec, keeping the outcome.
    fn wait_oldest_spawn(&mut self) {
        let oldest = self.spawning.len() - self.in_flight();
        let Some(spawned) = self.spawning.get_mut(oldest) else {
            return;
        };
        let SpawnChild::InFlight(pending) = std::mem::replace(&mut spawned.child, SpawnChild::Done(Ok(0))) else {
            return;
        };
        spawned.child = SpawnChild::Done(pending.wait());
    }

    /// Records how a spawn went and lets the machine go on from the state that spawned it,
    /// as `change_state` would have if the spawn had returned at once.
    fn follow_up_spawn(&mut self, spawned: Spawning) {
        let Spawning {
            key,
            state,
            kind,
            after,
            failure_fails,
            child,
        } = spawned;
        let result = match child {
            SpawnChild::InFlight(pending) => pending.wait(),
            SpawnChild::Done(result) => result,
        };
        let Some(instance) = self.instance_mut(&key) else {
            // Nothing removes an instance with a start not followed up (`change_state`
            // follows it up first); should one go, its process must not run unsupervised.
            if let Ok(pid) = result {
                warn!("process ({pid}) of a job instance that is gone; killing it");
                let _ = crate::sys::process::kill_group(pid, libc::SIGKILL);
            }
            return;
        };
        instance.spawning = false;
        let job = self.class(key.0).job.clone();
        let started = self.spawn_started(&key, &job, kind, result);
        if !self.after_spawn(&key, &job, kind, after, failure_fails, started) {
            return;
        }
        let Some(instance) = self.instance(&key) else { return };
        let next = next_state(state, instance.goal, instance.main_alive());
        self.change_state(&key, next);
    }

    /// Sets the instance's state and tells the monitors.
    fn enter_state(&mut self, key: &Key, job: &Job, state: State) {
        let Some(instance) = self.instance_mut(key) else { return };
        let from = instance.state;
        instance.state = state;
        let goal = instance.shown_goal();
        debug!("{} ({}) state {from} -> {state}", job.name, key.1);
        // Built only for someone to send it to: a state change is frequent.
        if !self.monitors.is_empty() {
            let goal = goal.to_string();
            self.broadcast(Reply::Change {
                job: job.name.clone(),
                instance: key.1.clone(),
                goal,
                state: state.name().to_string(),
            });
        }
    }

    /// Begins the readiness wait of a main process just spawned; false when there is
    /// nothing to wait for after all (its pid is not known).
    fn await_ready(&mut self, key: &Key, job: &Job) -> bool {
        let pid = self
            .instance(key)
            .and_then(|instance| instance.pids.get(&ProcessKind::Main).copied());
        pid.is_some_and(|pid| self.begin_readiness(key, job, pid))
    }

    /// Performs one effect the machine decided on entering a state.
    fn perform(&mut self, key: &Key, job: &Job, effect: Effect) {
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
                let event = self.emit(name, env);
                if let Some(instance) = self.instance_mut(key) {
                    instance.blocker = Some(event);
                }
                self.event_waiters.entry(event).or_default().push(key.clone());
            }
            Effect::Started => {
                let Some(instance) = self.instance(key) else { return };
                let env = job_event_env(job, instance, &[]);
                self.emit("started", env);
                self.next_seq += 1;
                let seq = self.next_seq;
                if let Some(instance) = self.instance_mut(key) {
                    instance.started_seq = seq;
                    instance.running_since = Some(Instant::now());
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
                let Some(&pid) = self
                    .instance(key)
                    .and_then(|instance| instance.pids.get(&ProcessKind::Main))
                else {
                    return;
                };
                let signal = crate::sys::process::signal_name(job.kill_signal);
                debug!("Sending {signal} signal to {} main process ({pid})", self.display(key));
                self.pending_kills.push((pid, job.kill_signal, self.spawned(pid)));
                self.arm_kill_timer(key, job.kill_timeout.millis, vec![pid]);
            }
            Effect::Retire => self.enter_waiting(key, job),
        }
    }

    fn enter_waiting(&mut self, key: &Key, job: &Job) {
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
        self.emit("stopped", env);
        self.job_finished(key, failed);
        // Instances do not persist in `waiting`.
        let Some(class) = self.classes.get_mut(key.0) else {
            return;
        };
        if let Some(mut instance) = class.instances.remove(&key.1) {
            let held = instance.stop_on.as_mut().map(Matcher::reset).unwrap_or_default();
            if let Some((at, _)) = instance.rare_if_any().and_then(|rare| rare.kill_deadline.take()) {
                self.drop_kill_deadline(at, key);
            }
            if let Some(token) = instance.rare_if_any().and_then(|rare| rare.delay_timer.take()) {
                self.handle.remove(token);
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
    }

    /// `fail` for the other runtime modules.
    pub(crate) fn fail_public(&mut self, key: &Key, process: &str, status: Option<ExitStatus>) {
        self.fail(key, process, status);
    }

    /// Marks an instance failed (the first failure wins) and sets its goal to stop.
    fn fail(&mut self, key: &Key, process: &str, status: Option<ExitStatus>) {
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
    fn job_finished(&mut self, key: &Key, failed: bool) {
        let Some(instance) = self.instance_mut(key) else { return };
        let blocking = std::mem::take(&mut instance.blocking);
        for blocked in blocking {
            match blocked {
                Blocked::Event(event) => self.release(event, failed),
                Blocked::Client(client) => self.answer_waiting_client(client, key, failed),
            }
        }
    }

    fn answer_waiting_client(&mut self, client: ClientId, key: &Key, failed: bool) {
        let Some((_, _, kind)) = self.client_waits.remove(&client) else {
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

    // ------------------------------------------------------------------ processes

    /// The environment of one process of an instance.
    fn process_env(&self, key: &Key, job: &Job, kind: ProcessKind) -> Vec<String> {
        let instance = self.instance(key).expect("live instance");
        let socket = self.settings.socket.to_string_lossy();
        let notify = (job.expect == crate::syntax::ast::Expect::Notify).then(|| self.notify_socket_path());
        let notify = notify.as_deref().map(std::path::Path::to_string_lossy);
        let mut fixed = vec![
            ("UPSTART_JOB", job.name.as_str()),
            ("UPSTART_INSTANCE", instance.name.as_str()),
            ("UPRISE_SOCKET", &*socket),
        ];
        if let Some(notify) = &notify {
            fixed.push(("NOTIFY_SOCKET", notify));
        }
        let stop_env = match kind {
            ProcessKind::PreStop | ProcessKind::PostStop => &instance.rare().stop_env[..],
            _ => &[],
        };
        if !stop_env.is_empty() {
            let mut env = instance.env.to_vec();
            environ::merge(&mut env, stop_env);
            for (name, value) in fixed {
                environ::set(&mut env, name, value);
            }
            return env;
        }
        // As `to_vec` and then `set` for each fixed entry, in one pass: a fixed entry takes
        // the place of the entry with its key, or goes at the end.
        let mut env = Vec::with_capacity(instance.env.base().len() + 8);
        let mut placed = [false; 4];
        for entry in instance.env.entries() {
            match fixed
                .iter()
                .position(|(name, _)| environ::value_for(entry, name).is_some())
            {
                Some(index) if !placed[index] => {
                    placed[index] = true;
                    env.push(format!("{}={}", fixed[index].0, fixed[index].1));
                }
                // `set` replaced only the first entry of a key.
                _ => env.push(entry.to_string()),
            }
        }
        for (_, (name, value)) in placed.iter().zip(&fixed).filter(|(placed, _)| !**placed) {
            env.push(format!("{name}={value}"));
        }
        env
    }

    /// Opens a pipe that carries one process's output to the instance's log; returns the
    /// write end for the process.
    fn log_fd(&mut self, key: &Key, job: &Job) -> Option<OwnedFd> {
        if !matches!(job.console, Console::Log | Console::Auto) {
            return None;
        }
        let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK) {
            Ok(pipe) => pipe,
            Err(error) => {
                // Said once per instance (and in `status -v`); the next process tries again.
                let message = format!("cannot make a log pipe ({})", error.desc());
                let name = self.display(key);
                let instance = self.instance_mut(key)?;
                if instance.rare().log_error.is_none() {
                    warn!("{name}: {message}; its output goes to /dev/null");
                }
                instance.rare_mut().log_error = Some(message);
                return None;
            }
        };
        if let Some(rare) = self.instance_mut(key).and_then(Instance::rare_if_any) {
            rare.log_error = None;
        }
        // The write side blocks: a job that outruns the daemon waits, it does not lose output.
        let _ = nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()));
        if let Some(pipe) = self.instance_mut(key).and_then(|instance| instance.log.as_mut()) {
            pipe.drain_now();
        }
        let new_log = match self.instance(key) {
            Some(instance) if instance.log.is_none() => Some(JobLog::new(
                &self.settings.logdir,
                &job.name,
                &key.1,
                job.console == Console::Auto,
                self.settings.rotation,
            )),
            Some(_) => None,
            None => return None,
        };
        let read_fd = std::os::fd::AsRawFd::as_raw_fd(&read);
        let token = self.register_log_reader(key, std::fs::File::from(read))?;
        let instance = self.instance_mut(key)?;
        if let Some(log) = new_log {
            // Most jobs run one process at a time: room for one read end, not four.
            instance.log = Some(LogPipe {
                readers: Vec::with_capacity(1),
                log,
            });
        }
        instance.log.as_mut()?.readers.push((read_fd, token));
        Some(write)
    }

    /// Registers the read end of an instance's output pipe with the loop.
    pub(crate) fn register_log_reader(
        &mut self,
        key: &Key,
        reader: std::fs::File,
    ) -> Option<calloop::RegistrationToken> {
        let source = calloop::generic::Generic::new(reader, calloop::Interest::READ, calloop::Mode::Level);
        let pipe_key = key.clone();
        self.handle
            .insert_source(source, move |_, reader, daemon| {
                let Some(instance) = daemon.instance_mut(&pipe_key) else {
                    return Ok(calloop::PostAction::Remove);
                };
                let Some(pipe) = instance.log.as_mut() else {
                    return Ok(calloop::PostAction::Remove);
                };
                // SAFETY: the fd is only read here; NoIoDrop hands out a mutable reference.
                let file: &mut std::fs::File = unsafe { reader.get_mut() };
                if super::output::drain(file, &mut pipe.log) {
                    return Ok(calloop::PostAction::Continue);
                }
                // End of file: no process writes to this pipe any more.
                let fd = std::os::fd::AsRawFd::as_raw_fd(file);
                pipe.readers.retain(|(reader_fd, _)| *reader_fd != fd);
                Ok(calloop::PostAction::Remove)
            })
            .ok()
    }

    /// Starts one process of an instance: `Now` with `Ok(true)` when a process runs,
    /// `Ok(false)` when there was none to start, `Err` when it could not be started (logged);
    /// `Later` with a child that may still be on its way to exec.
    ///
    /// A start does not wait for the child's exec, so the daemon prepares the next process
    /// while the last one sets itself up (up to [`SPAWN_WINDOW`] at once). The machine
    /// follows up each spawn before anything else happens to its instance, and `settle`
    /// follows up all of them before the loop sleeps: no process is left unaccounted for
    /// when a signal or a client is served.
    fn spawn_process(&mut self, key: &Key, job: &Job, kind: ProcessKind) -> Started {
        let Some(command) = job.processes.get(&kind) else {
            return Started::Now(Ok(false));
        };
        if command.is_lua() {
            warn!(
                "{} {} process: script lua is not yet enforced; skipped",
                job.name,
                kind.keyword()
            );
            return Started::Now(Ok(false));
        }
        while self.in_flight() >= SPAWN_WINDOW {
            self.wait_oldest_spawn();
        }
        let env = self.process_env(key, job, kind);
        let stdio = match job.console {
            Console::None => Stdio::Null,
            Console::Output | Console::Owner => Stdio::Console,
            Console::Inherit => Stdio::Inherit,
            Console::Log | Console::Auto => match self.log_fd(key, job) {
                Some(fd) => Stdio::Log(fd),
                None => Stdio::Null,
            },
        };
        // The daemon raised its own descriptor limit; jobs get the usual one back unless
        // they set `limit nofile`.
        let mut limits = job.context.limits.clone();
        if let Some(original) = self.job_nofile {
            limits.entry(crate::syntax::ast::Rlimit::Nofile).or_insert(original);
        }
        let spec = SpawnSpec {
            job_name: &job.name,
            kind,
            command,
            env: &env,
            stdio,
            umask: job.umask,
            nice: job.context.nice,
            oom_score: job.context.oom_score,
            limits: &limits,
            chroot: job.context.chroot.as_deref(),
            chdir: job.context.chdir.as_deref(),
            setuid: job.context.setuid.as_deref(),
            setgid: job.context.setgid.as_deref(),
            extra_fds: Vec::new(),
        };
        match spawn::begin(spec) {
            Ok(pending) if pending.is_done() => Started::Now(self.spawn_started(key, job, kind, pending.wait())),
            Ok(pending) => Started::Later(pending),
            Err(error) => Started::Now(self.spawn_started(key, job, kind, Err(error))),
        }
    }

    /// Takes note of a process that exec'd (its pid), or logs why it could not start.
    fn spawn_started(
        &mut self,
        key: &Key,
        job: &Job,
        kind: ProcessKind,
        result: Result<i32, spawn::SpawnError>,
    ) -> Result<bool, ()> {
        let name = if key.1.is_empty() {
            job.name.clone()
        } else {
            format!("{} ({})", job.name, key.1)
        };
        match result {
            Ok(pid) => {
                debug!("{name} {} process ({pid})", kind.keyword());
                self.pids.insert(pid, (key.0, key.1.clone(), kind, true));
                if let Some(instance) = self.instance_mut(key) {
                    instance.pids.insert(kind, pid);
                }
                if let Some(timeout) = job.lifecycle.process_timeouts.get(&kind) {
                    let timeout = Duration::from_millis(timeout.millis);
                    self.arm_stage_timeout(key, kind, pid, timeout, timeout);
                }
                Ok(true)
            }
            Err(error) => {
                warn!("Failed to spawn {name} {} process: {error}", kind.keyword());
                if let Some(instance) = self.instance_mut(key) {
                    instance.rare_mut().last_exit = Some((
                        Instant::now(),
                        format!("{} process failed to spawn: {error}", kind.keyword()),
                    ));
                }
                Err(())
            }
        }
    }

    /// `pre-start timeout` and friends: a stage still running after its timeout is killed
    /// (kill signal, then SIGKILL after the kill timeout); a killed pre-start fails the job.
    /// `timeout` is the stage's timeout as written; `due_in` how long is left of it (less
    /// than `timeout` after a re-exec).
    pub(crate) fn arm_stage_timeout(
        &mut self,
        key: &Key,
        kind: ProcessKind,
        pid: i32,
        timeout: Duration,
        due_in: Duration,
    ) {
        let timer_key = key.clone();
        if let Some(instance) = self.instance_mut(key) {
            instance
                .rare_mut()
                .stage_deadlines
                .push((kind, pid, Instant::now() + due_in, timeout));
        }
        let _ = self
            .handle
            .insert_source(Timer::from_duration(due_in), move |_, _, daemon| {
                if let Some(rare) = daemon.instance_mut(&timer_key).and_then(Instance::rare_if_any) {
                    rare.stage_deadlines.retain(|(_, known, _, _)| *known != pid);
                }
                let running = daemon
                    .instance(&timer_key)
                    .is_some_and(|instance| instance.pids.get(&kind) == Some(&pid));
                if running {
                    let job = daemon.class(timer_key.0).job.clone();
                    warn!(
                        "{} {} process ({pid}) timed out after {}; killing it",
                        daemon.display(&timer_key),
                        kind.keyword(),
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

    fn respawn(&mut self, key: &Key, job: &Job, name: &str, status: ExitStatus) {
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

    // ------------------------------------------------------------------ status

    fn display_name(job: &Job, instance: &str) -> String {
        if instance.is_empty() {
            job.name.clone()
        } else {
            format!("{} ({instance})", job.name)
        }
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
            };
        };
        let job = &class.job;
        match self.instance(key) {
            Some(instance) => {
                let processes = [
                    ProcessKind::Main,
                    ProcessKind::PreStart,
                    ProcessKind::PostStart,
                    ProcessKind::PreStop,
                    ProcessKind::PostStop,
                ]
                .into_iter()
                .filter_map(|kind| {
                    instance.pids.get(&kind).map(|pid| ProcessStatus {
                        kind: kind.keyword().to_string(),
                        pid: *pid,
                    })
                })
                .collect();
                let mut detail = Vec::new();
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
                if let Some(at) = instance.rare().respawn_at {
                    let left = at.saturating_duration_since(Instant::now()).as_millis() as u64;
                    let shown = crate::model::job::render_duration(crate::syntax::ast::Seconds { millis: left });
                    detail.push(format!("respawning in {shown}"));
                }
                if let Some(awaiting) = &instance.awaiting {
                    detail.push(match awaiting {
                        super::readiness::Awaiting::Stop => {
                            "waiting for the main process to stop itself (expect stop)".to_string()
                        }
                        super::readiness::Awaiting::Notify => "waiting for READY=1 (expect notify)".to_string(),
                        super::readiness::Awaiting::Fork { .. } => {
                            "waiting for the daemon to fork (expect fork/daemon, pid file)".to_string()
                        }
                    });
                }
                if let Some(error) = &instance.rare().log_error {
                    detail.push(format!("output not logged: {error}"));
                }
                if let Some(status) = &instance.rare().notify_status {
                    detail.push(format!("status: {status}"));
                }
                InstanceStatus {
                    job: job.name.clone(),
                    instance: instance.name.clone(),
                    goal: instance.shown_goal().to_string(),
                    state: instance.state.name().to_string(),
                    processes,
                    detail,
                }
            }
            None => InstanceStatus {
                job: job.name.clone(),
                instance: key.1.clone(),
                goal: "stop".into(),
                state: "waiting".into(),
                processes: Vec::new(),
                detail: self.class_detail(key.0),
            },
        }
    }

    fn class_detail(&self, class_id: ClassId) -> Vec<String> {
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

    // ------------------------------------------------------------------ commands

    /// Finds a class by name.
    pub fn lookup(&self, job: &str) -> Result<ClassId, String> {
        self.class_by_name
            .get(job)
            .copied()
            .ok_or_else(|| format!("Unknown job: {job}"))
    }

    /// The instance name a command addresses: given directly, or the template expanded
    /// against the job environment and the command's `KEY=VALUE`s.
    pub fn instance_name(&self, class_id: ClassId, env: &[String], instance: Option<&str>) -> Result<String, String> {
        if let Some(name) = instance {
            return Ok(name.to_string());
        }
        let mut table = self.job_env(class_id);
        table.merge(env);
        let job = &self.class(class_id).job;
        environ::expand(&job.instance, &table).map_err(|UnknownParameter(param)| {
            let mut message = format!("Unknown parameter: {param}");
            if let Some(usage) = &job.about.usage {
                message.push_str(&format!("\nUsage: {usage}"));
            }
            message
        })
    }

    fn check_env(env: &[String]) -> Result<(), String> {
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

    pub fn command_start(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
        wait: bool,
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
            return Err(format!("Job is already running: {display}"));
        }
        instance.start_env = Some(start_env);
        if wait {
            instance.blocking.push(Blocked::Client(client));
            self.client_waits
                .insert(client, (key.0, key.1.clone(), WaitKind::Start));
        }
        self.change_goal(&key, Goal::Start);
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    /// What a command addresses: the class and instance, and how to name it in messages.
    fn addressed(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<(Key, String), String> {
        Self::check_env(env)?;
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, env, instance)?;
        let display = Self::display_name(&self.class(class_id).job, &name);
        Ok(((class_id, name), display))
    }

    pub fn command_stop(
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
            self.client_waits.insert(client, (key.0, key.1.clone(), WaitKind::Stop));
        }
        self.change_goal(&key, Goal::Stop);
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    pub fn command_restart(
        &mut self,
        client: ClientId,
        job: &str,
        env: Vec<String>,
        instance: Option<String>,
        wait: bool,
    ) -> Result<(), String> {
        let (key, display) = self.addressed(job, &env, instance.as_deref())?;
        let has_pre_stop = self.class(key.0).job.processes.contains_key(&ProcessKind::PreStop);
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
        let state = instance.state;
        let main_alive = instance.main_alive();
        if wait {
            self.client_waits
                .insert(client, (key.0, key.1.clone(), WaitKind::Restart));
        }
        if state == State::Running {
            // Unlike Upstart, a pre-stop does not turn a restart into a no-op.
            let next = if main_alive && has_pre_stop {
                State::PreStop
            } else {
                State::Stopping
            };
            self.change_state(&key, next);
        }
        if !wait {
            self.reply_status(client, &key);
        }
        Ok(())
    }

    pub fn command_reload(&mut self, job: &str, env: Vec<String>, instance: Option<String>) -> Result<(), String> {
        Self::check_env(&env)?;
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, &env, instance.as_deref())?;
        let key = (class_id, name.clone());
        let job = self.class(class_id).job.clone();
        let display = Self::display_name(&job, &name);
        let pid = self
            .instance(&key)
            .and_then(|instance| instance.pids.get(&ProcessKind::Main).copied());
        let Some(pid) = pid else {
            return Err(format!("Job is not running: {display}"));
        };
        match &job.lifecycle.reload {
            crate::model::job::Reload::Signal { signal } => {
                if *signal != 0 {
                    crate::sys::process::kill_process(pid, *signal)
                        .map_err(|error| format!("Cannot reload {display}: {error}"))?;
                }
                Ok(())
            }
            crate::model::job::Reload::Command { .. } => Err("`reload exec|script` is not yet enforced".into()),
        }
    }

    pub fn command_status(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<InstanceStatus, String> {
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

    pub fn command_emit(&mut self, client: ClientId, name: &str, env: Vec<String>, wait: bool) -> Result<(), String> {
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

    fn reply_status(&mut self, client: ClientId, key: &Key) {
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

    /// Sends a monitor line to every monitoring client.
    fn broadcast(&mut self, reply: Reply) {
        for client in self.monitors.clone() {
            self.outgoing.push(Outgoing::Reply(client, reply.clone()));
        }
    }

    /// A client went away: forget what it waited for (the jobs carry on).
    pub fn forget_client(&mut self, client: ClientId) {
        self.monitors.retain(|monitor| *monitor != client);
        if let Some((class_id, name, _)) = self.client_waits.remove(&client)
            && let Some(instance) = self.instance_mut(&(class_id, name))
        {
            instance.blocking.retain(|blocked| *blocked != Blocked::Client(client));
        }
        for event in self.events.values_mut() {
            event.waiting_clients.retain(|waiting| *waiting != client);
        }
    }

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
                for (&pid, tracked) in &daemon.pids {
                    super::readiness::signal_main(pid, 9, tracked.3);
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
