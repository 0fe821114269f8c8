//! The daemon core: events, classes, instances and their state changes.
//!
//! Everything here runs on the loop thread, inside `settle()` or a request handler; nothing
//! blocks. Events go through a queue (`pending` → `handling` → `finished`) and are handled to
//! a fixed point, never recursed into. A job's failure is a fact the machine handles, never an
//! error that leaves the loop: the daemon does not exit because a job misbehaved.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use calloop::{LoopHandle, LoopSignal};
use log::info;

use crate::control::proto::Reply;
use crate::machine::EventId;
use crate::sys::spawn;

use super::deadlines::Deadlines;
use super::events::Event;
use super::host::{Host, RealHost};
use super::jobs::{Class, ClassId, ClientId, Instance, Tracked};
use super::output::Rotation;
use super::spawning::Spawning;
use super::timers::Timers;

/// What a waiting client asked for, to answer it when the instance rests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Start,
    Stop,
    Restart,
}

/// A client waiting for an instance to reach its goal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub key: Key,
    pub kind: WaitKind,
}

/// A kill signal the machine asked for, sent once `settle` has nothing else to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingKill {
    pub pid: i32,
    pub signal: i32,
    /// uprise spawned the process (see [`Tracked::spawned`]).
    pub spawned: bool,
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

/// An instance: its class and its name.
pub(crate) type Key = (ClassId, String);

pub struct Daemon {
    pub settings: Settings,
    pub handle: LoopHandle<'static, Daemon>,
    pub stop_signal: LoopSignal,
    pub classes: super::jobs::ClassTable,
    pub class_by_name: HashMap<String, ClassId>,
    /// Classes whose `start on` names an event, by event name.
    pub(crate) start_index: HashMap<String, Vec<ClassId>>,
    /// Classes whose `stop on` names an event, by event name.
    pub(super) stop_index: HashMap<String, Vec<ClassId>>,
    pub events: BTreeMap<EventId, Event>,
    pub(super) queue: VecDeque<EventId>,
    pub(super) finished: VecDeque<EventId>,
    /// Processes started but not yet followed up, oldest first (see [`Daemon::spawn_process`]).
    /// Those not yet waited for are always the newest ones (see [`Daemon::in_flight`]).
    pub(super) spawning: VecDeque<Spawning>,
    /// Every instance's deadlines, soonest first; one loop timer serves them all (a stop of
    /// 1,000 services adds no loop source). See `deadlines.rs`.
    pub deadlines: Deadlines,
    /// The clock, spawning and signals: the system, or a test's fake (see `host.rs`).
    pub(super) host: Box<dyn Host>,
    /// The temporal operands' timers (see `timers/`).
    pub timers: Timers,
    pub admission: super::admission::Admission,
    pub lua: super::hooks::LuaRoom,
    /// Main processes to send their kill signal once `settle` has nothing else to do (see
    /// [`Daemon::send_kills`]).
    pub(super) pending_kills: Vec<PendingKill>,
    /// While shutting down (no instance starts any more): the classes before this index have
    /// no instance, so each `settle` looks only at the rest.
    pub(super) shutdown_cursor: usize,
    pub(crate) next_event: EventId,
    /// Every process uprise started (or adopted as a main process) and still waits for.
    pub pids: HashMap<i32, Tracked>,
    /// Environment every job starts from; instances share the table they started from
    /// (changes copy it first).
    pub global_env: std::rc::Rc<Vec<String>>,
    /// Clients waiting on an instance, and what they asked for.
    pub client_waits: HashMap<ClientId, Waiter>,
    /// Clients waiting for a reload or action process to end, by its pid (`actions.rs`).
    pub side_waits: HashMap<i32, ClientId>,
    pub outgoing: Vec<Outgoing>,
    pub shutting_down: bool,
    /// The loop has been told to stop.
    pub(super) exiting: bool,
    pub clients: super::control::Clients,
    pub confdirs: Vec<PathBuf>,
    /// Instances waiting for their own `starting`/`stopping` event, by event: finishing an
    /// event costs as much as the instances that wait on it, not all instances.
    pub(crate) event_waiters: HashMap<EventId, Vec<Key>>,
    pub reload_pending: bool,
    /// What the last load logged of each file with diagnostics (a fingerprint of its text
    /// and its diagnostics), so that a reload repeats none of it.
    pub(super) reported: HashMap<String, u64>,
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
    pub(super) started_at: Instant,
    /// The last state changes, for `uprisectl plot` (`history.rs`).
    pub history: super::history::History,
    /// Counters for `uprisectl metrics` and the metrics endpoint (`metrics.rs`).
    pub metrics: super::metrics::Metrics,
}

impl Daemon {
    /// Every instance of every loaded class, with its class.
    pub(super) fn live_instances(&self) -> impl Iterator<Item = (ClassId, &Instance)> {
        self.classes
            .iter()
            .flat_map(|(id, class)| class.instances.values().map(move |instance| (id, &**instance)))
    }

    /// Whether uprise spawned `pid` itself and has not reaped it (see `pids`).
    pub(super) fn spawned(&self, pid: i32) -> bool {
        self.pids.get(&pid).is_some_and(|tracked| tracked.spawned)
    }

    pub fn new(settings: Settings, handle: LoopHandle<'static, Daemon>, stop_signal: LoopSignal) -> Daemon {
        Daemon::with_host(settings, handle, stop_signal, Box::new(RealHost))
    }

    /// A daemon on another host than the real system: a test's fake (see `host.rs`).
    pub fn with_host(
        settings: Settings,
        handle: LoopHandle<'static, Daemon>,
        stop_signal: LoopSignal,
        host: Box<dyn Host>,
    ) -> Daemon {
        let started_at = host.now();
        let history = super::history::History::new(started_at, host.wall_now().as_millisecond());
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
            deadlines: Deadlines::default(),
            host,
            timers: Timers::default(),
            admission: Default::default(),
            lua: Default::default(),
            pending_kills: Vec::new(),
            shutdown_cursor: 0,
            next_event: 1,
            pids: HashMap::new(),
            global_env: Default::default(),
            client_waits: HashMap::new(),
            side_waits: HashMap::new(),
            outgoing: Vec::new(),
            shutting_down: false,
            exiting: false,
            clients: super::control::Clients::default(),
            confdirs: Vec::new(),
            event_waiters: HashMap::new(),
            reload_pending: false,
            reported: HashMap::new(),
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
            started_at,
            history,
            metrics: Default::default(),
        }
    }

    pub fn class(&self, id: ClassId) -> &Class {
        &self.classes[id]
    }

    pub(super) fn instance_mut(&mut self, key: &Key) -> Option<&mut Instance> {
        self.classes.get_mut(key.0)?.instances.get_mut(&key.1).map(|i| &mut **i)
    }

    pub(super) fn instance(&self, key: &Key) -> Option<&Instance> {
        self.classes.get(key.0)?.instances.get(&key.1).map(|i| &**i)
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
            if self.admission.has_work() {
                self.admission_step();
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
    pub(super) fn send_kills(&mut self) {
        for PendingKill { pid, signal, spawned } in std::mem::take(&mut self.pending_kills) {
            self.signal_main(pid, signal, spawned);
        }
    }

    /// Signals a main process: its group when it leads one, else the process alone (a daemon
    /// found after a double fork leads no group). `spawned`: uprise started it and has not
    /// reaped it, so it leads its group without asking `/proc`.
    pub(super) fn signal_main(&mut self, pid: i32, signal: i32, spawned: bool) {
        let group = spawned || (!super::lua_processes::is_lua_id(pid) && self.host.leads_group(pid));
        self.signal_process(pid, signal, group);
    }

    /// Sends a signal to a job's process (`group`: to its process group). Every signal the
    /// daemon sends a job goes through here, so the id of a `script lua` process never
    /// reaches `kill(2)`: it ends or leaves the coroutine instead (`lua_processes.rs`).
    pub(super) fn signal_process(&mut self, pid: i32, signal: i32, group: bool) {
        if super::lua_processes::is_lua_id(pid) {
            self.signal_lua_process(pid, signal);
            return;
        }
        // A process that is gone already needs no signal.
        let _ = self.host.signal(pid, signal, group);
    }

    /// While shutting down: whether every instance is gone. No instance starts once the
    /// shutdown began, so a class seen empty stays empty and is not looked at again.
    pub(super) fn no_instance_left(&mut self) -> bool {
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
}
