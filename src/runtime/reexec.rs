//! Stateful re-exec: capturing the daemon into a `reexec::Snapshot`, and rebuilding it in the
//! new image.
//!
//! The handover: the state is written to a memfd; the new binary first runs as a probe on
//! it (`--reexec-probe FD`) and must say it can read it; only then are the fds that carry
//! over (control listener, client connections, log pipes, notify socket, the state) made
//! inheritable and the daemon execs the new binary with `--restore-fd` and `--listener-fd`.
//! The pid stays the same, so every job stays uprise's child; SIGCHLD stays blocked and
//! pending across exec, so exits during the handover are reaped by the new image. If
//! anything fails before the exec, the old image restores close-on-exec and carries on.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::control::proto::Reply;
use crate::machine::environ::Environment;
use crate::machine::exit::{ExitStatus, RespawnWindow};
use crate::machine::{Goal, Matcher, Stage, State};
use crate::reexec::{
    AwaitingSnapshot, BlockedSnapshot, ClassSnapshot, EventSnapshot, ExitSnapshot, FailureSnapshot, InstanceSnapshot,
    LogSnapshot, Snapshot, SourceSnapshot, StageTimeoutSnapshot,
};
use crate::sys::exec;

use super::daemon::{Daemon, Outgoing, WaitKind, Waiter};
use super::events::{Event, Progress};
use super::jobs::{Blocked, Class, ClassId, ClientId, Failure, Instance, LogPipe, Tracked};
use super::output::JobLog;
use super::readiness::Awaiting;
use super::role::Role;

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How long the probe of the new binary may take.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

fn goal_name(goal: Goal) -> &'static str {
    goal.name()
}

/// The intern tables of `capture`: tens of thousands of lookups per re-exec, on the daemon's
/// own strings, so a fast multiplicative hash serves better than SipHash (whose resistance to
/// chosen keys a table that lives for one capture does not need).
type InternMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<WordHasher>>;

/// Folds input eight bytes at a time: rotate, xor, multiply by an odd constant.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Daemon {
    /// Handles `reexec`: returns an error when the old image must carry on; on success the
    /// process is replaced and this never returns.
    pub fn reexec(&mut self, client: ClientId, binary: Option<String>) -> Result<(), String> {
        if self.shutdown_phase.is_some() || self.shutting_down {
            return Err("cannot re-exec while shutting down".into());
        }
        let binary = match binary {
            Some(binary) => binary,
            None => self.exe.to_string_lossy().into_owned(),
        };
        let requested_at_us = unix_micros();
        self.settle();
        self.flush_clients();
        let settled_us = unix_micros();
        let mut snapshot = self.capture();
        snapshot.requester = Some(client);
        snapshot.requested_at_us = requested_at_us;
        let snapshot_us = unix_micros();
        let bytes = snapshot.to_bytes();
        let captured_us = unix_micros();
        log::debug!(
            "re-exec: settle {} us, capture {} us, encode {} us",
            settled_us - requested_at_us,
            snapshot_us - settled_us,
            captured_us - snapshot_us
        );
        // A debugging aid, as Upstart's --write-state-file: keep a copy of the state.
        if let Some(path) = std::env::var_os("UPRISE_WRITE_STATEFILE")
            && let Err(error) = std::fs::write(&path, &bytes)
        {
            warn!("cannot write the state file copy: {error}");
        }
        let state = exec::state_file(&bytes).map_err(|error| format!("cannot write the state: {error}"))?;
        let started = Instant::now();
        // The running binary's own file can read what it just wrote: the probe is for other
        // binaries (a file replaced by an upgrade is a new inode, and is probed).
        if exec::is_running_binary(&binary) {
            log::debug!("re-exec: {binary} is the running binary; no probe");
        } else {
            exec::probe(&binary, &state, PROBE_LIMIT)?;
        }
        let fds = self.handover_fds(&snapshot, state.as_raw_fd());
        for fd in &fds {
            let _ = exec::set_cloexec(*fd, false);
        }
        let mut args = vec!["--restore-fd".to_string(), state.as_raw_fd().to_string()];
        if let Some(listener) = snapshot.listener_fd {
            args.push("--listener-fd".into());
            args.push(listener.to_string());
        }
        args.extend(self.args.iter().cloned());
        info!(
            "re-executing {binary} ({} bytes of state; capture {} ms, probe {} ms)",
            bytes.len(),
            captured_us.saturating_sub(requested_at_us) / 1000,
            started.elapsed().as_millis()
        );
        // Nothing the daemon holds survives the exec: its log lines go out now.
        super::logger::flush();
        let failure = exec::exec(&binary, &args);
        // Still here: the exec failed; nothing was handed over.
        for fd in &fds {
            let _ = exec::set_cloexec(*fd, true);
        }
        Err(format!("cannot exec {binary}: {failure}"))
    }

    /// The fds that must stay open across the exec.
    fn handover_fds(&self, snapshot: &Snapshot, state: RawFd) -> Vec<RawFd> {
        let mut fds = vec![state];
        fds.extend(snapshot.listener_fd);
        fds.extend(snapshot.notify_fd);
        fds.extend(snapshot.watch_fd);
        fds.extend(snapshot.clients.iter().map(|client| client.fd));
        for class in &snapshot.classes {
            for instance in &class.instances {
                if let Some(log) = &instance.log {
                    fds.extend(&log.read_fds);
                }
            }
        }
        fds
    }

    /// The daemon's state as a snapshot.
    pub fn capture(&self) -> Snapshot {
        let mut snapshot = Snapshot::new();
        snapshot.listener_fd = self.listener_fd;
        snapshot.notify_fd = self.notify_fd;
        snapshot.watch_fd = self.watcher.as_ref().map(super::watch::DirWatch::raw_fd);
        snapshot.global_env = self.global_env.to_vec();
        snapshot.log_priority = super::logger::snapshot_level(log::max_level());
        snapshot.runlevel = self.runlevel.clone();
        snapshot.next_event = self.next_event;
        snapshot.next_seq = self.next_seq;
        snapshot.next_client = self.next_client();
        snapshot.history = (!self.history.is_empty()).then(|| self.history.snapshot(self.host.now()));
        snapshot.events = self
            .events
            .iter()
            .map(|(id, event)| EventSnapshot {
                id: *id,
                name: event.name.clone(),
                env: event.env.clone(),
                progress: match event.progress {
                    Progress::Pending => "pending",
                    Progress::Handling => "handling",
                    Progress::Finished => "finished",
                }
                .to_string(),
                blockers: event.blockers,
                failed: event.failed,
                waiting_clients: event.waiting_clients.clone(),
                target: event.target.as_ref().and_then(|target| self.target_snapshot(target)),
            })
            .collect();
        // Every class travels (compactly), so the new image can serve before it reads the job
        // dirs again; environment strings are interned, since every instance repeats most.
        snapshot.all_classes = true;
        let defaults = crate::reexec::job_defaults();
        let mut table: InternMap<&str, u32> = InternMap::default();
        let mut env_sets: InternMap<Vec<u32>, u32> = InternMap::default();
        // Instances that share a base table and add the same entries have the same
        // environment: found by pointer and the few own entries, without reading the rest.
        let mut by_layers: InternMap<(usize, &[String]), u32> = InternMap::default();
        self.capture_pools(&mut snapshot);
        for (class_id, class) in self.classes.iter() {
            let start_on_holds = class.start_on.as_ref().map(Matcher::leaf_holds).unwrap_or_default();
            let instances = class
                .instances
                .values()
                .map(|instance| {
                    let mut captured = self.capture_instance(instance);
                    self.capture_admission(&(class_id, instance.name.clone()), instance, &mut captured);
                    let layers = (Rc::as_ptr(instance.env.base()) as usize, instance.env.own());
                    let set = match by_layers.get(&layers) {
                        Some(set) => *set,
                        None => {
                            let ids: Vec<u32> = instance
                                .env
                                .entries()
                                .map(|entry| {
                                    let next = table.len() as u32;
                                    *table.entry(entry).or_insert_with(|| {
                                        snapshot.strings.push(entry.to_string());
                                        next
                                    })
                                })
                                .collect();
                            let next = env_sets.len() as u32;
                            let set = *env_sets.entry(ids.clone()).or_insert_with(|| {
                                snapshot.envs.push(ids);
                                next
                            });
                            by_layers.insert(layers, set);
                            set
                        }
                    };
                    captured.env_set = Some(set);
                    captured
                })
                .collect();
            let source = class.job.source.0.as_ref().map(|source| SourceSnapshot {
                file: source.file.clone(),
                text: source.text.to_string(),
                override_file: source.override_file.clone(),
                override_text: source.override_text.as_ref().map(|text| text.to_string()),
                base: source.base.clone(),
            });
            let job = if source.is_some() {
                None
            } else {
                Some(crate::reexec::compact_job_against(&class.job, &defaults))
            };
            snapshot.classes.push(ClassSnapshot {
                name: class.job.name.clone(),
                source,
                job,
                deleted: class.deleted,
                start_on_holds,
                instances,
            });
        }
        snapshot.clients = self.snapshot_clients();
        snapshot.side_waits = self.side_waits.iter().map(|(pid, client)| (*client, *pid)).collect();
        (snapshot.timers, snapshot.firings) = self.capture_timers();
        snapshot
    }

    fn capture_instance(&self, instance: &Instance) -> InstanceSnapshot {
        let now = self.host.now();
        InstanceSnapshot {
            name: instance.name.clone(),
            goal: goal_name(instance.goal).to_string(),
            state: instance.state.name().to_string(),
            // The environment travels interned (`env_set`), filled in by `capture`.
            env: Vec::new(),
            env_ids: Vec::new(),
            env_set: None,
            start_env: instance.start_env.as_ref().map(Environment::to_vec),
            stop_env: instance.rare().stop_env.clone(),
            stop_on_holds: instance.stop_on.as_ref().map(Matcher::leaf_holds).unwrap_or_default(),
            pids: instance
                .pids
                .iter()
                .map(|(role, pid)| (role.to_string(), *pid))
                .collect(),
            blocker: instance.blocker,
            blocking: instance
                .blocking
                .iter()
                .map(|blocked| match blocked {
                    Blocked::Event(id) => BlockedSnapshot::Event(*id),
                    Blocked::Client(id) => BlockedSnapshot::Client(*id),
                })
                .collect(),
            failed: instance.rare().failed.as_ref().map(|failure| FailureSnapshot {
                process: failure.process.clone(),
                exit: failure.status.map(|status| match status {
                    ExitStatus::Code(code) => ExitSnapshot::Code(code),
                    ExitStatus::Signal(signal) => ExitSnapshot::Signal(signal),
                }),
            }),
            respawn_window_start: instance.rare().respawn.started,
            respawn_count: instance.rare().respawn.count,
            respawn_streak: instance.rare().respawn_streak,
            restarting: instance.restarting,
            killing_scripts: instance.killing_scripts,
            log: instance.log.as_ref().map(|pipe| {
                let (pending, dropped) = pipe.log.pending();
                LogSnapshot {
                    read_fds: pipe.readers.iter().map(|(fd, _)| *fd).collect(),
                    read_fd: None,
                    write_fd: None,
                    pending: pending.to_vec(),
                    dropped,
                }
            }),
            last_exit: instance.rare().last_exit.as_ref().map(|(_, what)| what.clone()),
            awaiting: instance.awaiting.as_ref().map(|awaiting| match awaiting {
                Awaiting::Stop => AwaitingSnapshot::Stop,
                Awaiting::Notify => AwaitingSnapshot::Notify,
                Awaiting::Fork { original, exited, .. } => AwaitingSnapshot::Fork {
                    original: *original,
                    exited: *exited,
                },
            }),
            notify_status: instance.rare().notify_status.clone(),
            pending_delay_ms: instance.pending_delay,
            respawn_in_ms: instance
                .rare()
                .delay
                .map(|id| id.at.saturating_duration_since(now).as_millis() as u64),
            kill_in_ms: instance
                .rare()
                .kill_deadline
                .as_ref()
                .map(|(id, _)| id.at.saturating_duration_since(now).as_millis() as u64),
            kill_pids: instance
                .rare()
                .kill_deadline
                .as_ref()
                .map(|(_, pids)| pids.clone())
                .unwrap_or_default(),
            started_seq: instance.started_seq,
            stage_timeouts: instance
                .rare()
                .stage_deadlines
                .iter()
                .map(|deadline| StageTimeoutSnapshot {
                    stage: deadline.stage.keyword().to_string(),
                    pid: deadline.pid,
                    in_ms: deadline.due.saturating_duration_since(now).as_millis() as u64,
                    timeout_ms: deadline.timeout.as_millis() as u64,
                })
                .collect(),
            // Filled in by `capture_admission`, which knows the instance's key.
            queued: None,
            holds: Vec::new(),
            watershed: None,
        }
    }

    /// Rebuilds the daemon from a snapshot; the job dirs have been loaded already.
    pub fn restore(&mut self, mut snapshot: Snapshot) {
        self.restore_pools(&snapshot);
        if let Some(history) = snapshot.history.take() {
            self.history.restore(history, self.host.now());
        }
        if let Some(fd) = snapshot.notify_fd {
            // SAFETY: the previous image handed this fd over for this process to own.
            let socket = unsafe { UnixDatagram::from_raw_fd(fd) };
            let _ = exec::set_cloexec(fd, true);
            if let Err(error) = self.register_notify(socket) {
                warn!("cannot take over the notify socket: {error}");
            }
        }
        self.global_env = Rc::new(snapshot.global_env);
        if let Some(level) = super::logger::restore_level(&snapshot.log_priority) {
            log::set_max_level(level);
        }
        self.runlevel = if snapshot.runlevel.is_empty() {
            "N".into()
        } else {
            snapshot.runlevel
        };
        self.next_event = self.next_event.max(snapshot.next_event);
        self.next_seq = self.next_seq.max(snapshot.next_seq);
        self.set_next_client(snapshot.next_client);
        // Timers' firings name their operand and instance: found once the classes are back.
        let mut targets = Vec::new();
        for event in snapshot.events {
            if let Some(target) = event.target {
                targets.push((event.id, target));
            }
            let progress = match event.progress.as_str() {
                "pending" => Progress::Pending,
                "finished" => Progress::Finished,
                _ => Progress::Handling,
            };
            self.events.insert(
                event.id,
                Event {
                    name: event.name,
                    env: event.env,
                    progress,
                    blockers: event.blockers,
                    failed: event.failed,
                    waiting_clients: event.waiting_clients,
                    target: None,
                },
            );
            match progress {
                Progress::Pending => self.requeue(event.id),
                Progress::Handling if event.blockers == 0 => self.refinish(event.id),
                _ => {}
            }
        }
        let mut waits = Vec::new();
        let strings = std::mem::take(&mut snapshot.strings);
        let envs = std::mem::take(&mut snapshot.envs);
        // Each distinct environment becomes one table, shared by its instances.
        let mut shared_envs: Vec<Option<Rc<Vec<String>>>> = vec![None; envs.len()];
        let restore_started = Instant::now();
        for class in snapshot.classes {
            let job = match class.rebuild_job() {
                Ok(job) => job,
                Err(message) => {
                    error!(
                        "re-exec: job `{}` in the state cannot be read ({message}); it is left out",
                        class.name
                    );
                    continue;
                }
            };
            let class_id = self.adopt_class(job, class.deleted, &class.start_on_holds);
            for mut instance in class.instances {
                let env = if let Some(set) = instance.env_set
                    && let Some(ids) = envs.get(set as usize)
                {
                    let table = shared_envs[set as usize].get_or_insert_with(|| {
                        Rc::new(ids.iter().filter_map(|id| strings.get(*id as usize).cloned()).collect())
                    });
                    Environment::new(table.clone(), Vec::new())
                } else if !instance.env_ids.is_empty() {
                    let ids = &instance.env_ids;
                    Environment::from_vec(ids.iter().filter_map(|id| strings.get(*id as usize).cloned()).collect())
                } else {
                    Environment::from_vec(std::mem::take(&mut instance.env))
                };
                for blocked in &instance.blocking {
                    if let BlockedSnapshot::Client(client) = blocked {
                        waits.push(*client);
                    }
                }
                self.restore_instance(class_id, instance, env);
            }
        }
        for (id, target) in targets {
            match self.target_of_snapshot(&target) {
                Some(target) => {
                    if let Some(event) = self.events.get_mut(&id) {
                        event.target = Some(target);
                    }
                }
                // Its job or instance went: a firing not yet offered goes nowhere.
                None => {
                    if self
                        .events
                        .get(&id)
                        .is_some_and(|event| event.progress == Progress::Pending)
                    {
                        self.events.remove(&id);
                    }
                }
            }
        }
        self.restore_timers(
            std::mem::take(&mut snapshot.timers),
            std::mem::take(&mut snapshot.firings),
        );
        for client in &snapshot.clients {
            // SAFETY: the previous image handed this fd over for this process to own.
            let stream = unsafe { UnixStream::from_raw_fd(client.fd) };
            let _ = exec::set_cloexec(client.fd, true);
            self.restore_client(client, stream);
            if let Some((job, instance, kind)) = &client.wait
                && let Some(class_id) = self.class_by_name.get(job).copied()
            {
                let kind = match kind.as_str() {
                    "stop" => WaitKind::Stop,
                    "restart" => WaitKind::Restart,
                    _ => WaitKind::Start,
                };
                let key = (class_id, instance.clone());
                self.client_waits.insert(client.id, Waiter { key, kind });
            }
        }
        self.side_waits
            .extend(snapshot.side_waits.iter().map(|(client, pid)| (*pid, *client)));
        let restored_classes_us = restore_started.elapsed().as_micros();
        if let Some(requester) = snapshot.requester {
            self.outgoing.push(Outgoing::Reply(requester, Reply::Done));
            self.outgoing.push(Outgoing::Finish(requester));
        }
        log::debug!(
            "re-exec: restore took {} us ({} us for events, classes and clients)",
            restore_started.elapsed().as_micros(),
            restored_classes_us
        );
        let took = if snapshot.requested_at_us > 0 {
            format!(
                " in {} ms",
                unix_micros().saturating_sub(snapshot.requested_at_us) / 1000
            )
        } else {
            String::new()
        };
        info!(
            "re-exec complete{took}: {} events, {} processes, {} clients carried over",
            self.events.len(),
            self.pids.len(),
            snapshot.clients.len()
        );
        let _ = waits;
        self.settle();
        self.flush_clients();
        self.resume_clients();
    }

    /// Installs the definition the instances ran with. When the file on disk says something
    /// else, the disk version waits until the instances are idle, as after any edit.
    fn adopt_class(&mut self, job: crate::model::Job, deleted: bool, start_on_holds: &[Option<u64>]) -> ClassId {
        let (id, indexed) = match self.class_by_name.get(&job.name).copied() {
            Some(id) => {
                let class = self.classes.get_mut(id).expect("indexed class exists");
                if *class.job != job {
                    let on_disk = class.set_job(Rc::new(job));
                    class.replacement = Some(Box::new((*on_disk).clone()));
                }
                (id, true)
            }
            None => {
                let name = job.name.clone();
                // Without the job dirs read yet, trust the state; otherwise the file is gone.
                let deleted = if self.deferred_reload { deleted } else { true };
                let id = self.classes.insert(Class::new(job, None, deleted));
                self.class_by_name.insert(name, id);
                (id, false)
            }
        };
        let class = self.classes.get_mut(id).expect("live class");
        class.start_on = class
            .job
            .start_on
            .as_ref()
            .map(|expr| Matcher::with_holds(expr, start_on_holds));
        // A class new to this image only needs adding to the indexes.
        if indexed {
            self.reindex_class(id);
        } else {
            self.index_class(id);
        }
        id
    }

    fn restore_instance(&mut self, class_id: ClassId, mut snapshot: InstanceSnapshot, env: Environment) {
        let job = self.class(class_id).job.clone();
        let key = (class_id, snapshot.name.clone());
        let mut admission = InstanceSnapshot {
            queued: snapshot.queued.take(),
            holds: std::mem::take(&mut snapshot.holds),
            watershed: snapshot.watershed.take(),
            ..InstanceSnapshot::default()
        };
        // `Snapshot::check` refused a goal or state this build does not know; should one
        // come here all the same, the instance is not made up.
        let (Some(goal), Some(state)) = (Goal::from_name(&snapshot.goal), State::from_name(&snapshot.state)) else {
            error!(
                "re-exec: {} ({}) is in {}/{}, which this uprise does not know; not restored",
                self.class(class_id).job.name,
                snapshot.name,
                snapshot.goal,
                snapshot.state
            );
            return;
        };
        let mut instance = Instance::new(snapshot.name.clone());
        instance.goal = goal;
        instance.state = state;
        instance.env = env;
        instance.start_env = snapshot.start_env.map(Environment::from_vec);
        if !snapshot.stop_env.is_empty() {
            instance.rare_mut().stop_env = snapshot.stop_env;
        }
        instance.stop_on = job
            .stop_on
            .as_ref()
            .map(|expr| Matcher::with_holds(expr, &snapshot.stop_on_holds));
        let mut lua_processes = Vec::new();
        for (role, pid) in &snapshot.pids {
            if let Some(role) = Role::from_name(role) {
                if super::lua_processes::is_lua_id(*pid) {
                    lua_processes.push((role.clone(), *pid));
                }
                instance.pids.insert(role.clone(), *pid);
                let tracked = Tracked {
                    class: class_id,
                    instance: snapshot.name.clone(),
                    role,
                    spawned: false,
                };
                self.pids.insert(*pid, tracked);
            }
        }
        instance.blocker = snapshot.blocker;
        if let Some(event) = snapshot.blocker {
            self.event_waiters.entry(event).or_default().push(key.clone());
        }
        instance.blocking = snapshot
            .blocking
            .iter()
            .map(|blocked| match blocked {
                BlockedSnapshot::Event(id) => Blocked::Event(*id),
                BlockedSnapshot::Client(id) => Blocked::Client(*id),
            })
            .collect();
        let failed = snapshot.failed.map(|failure| Failure {
            process: failure.process,
            status: failure.exit.map(|exit| match exit {
                ExitSnapshot::Code(code) => ExitStatus::Code(code),
                ExitSnapshot::Signal(signal) => ExitStatus::Signal(signal),
            }),
        });
        let respawn = RespawnWindow {
            started: snapshot.respawn_window_start,
            count: snapshot.respawn_count,
        };
        if failed.is_some() || respawn != RespawnWindow::default() || snapshot.respawn_streak != 0 {
            let rare = instance.rare_mut();
            rare.failed = failed;
            rare.respawn = respawn;
            rare.respawn_streak = snapshot.respawn_streak;
        }
        instance.restarting = snapshot.restarting;
        instance.killing_scripts = snapshot.killing_scripts;
        if snapshot.last_exit.is_some() || snapshot.notify_status.is_some() {
            let rare = instance.rare_mut();
            rare.last_exit = snapshot.last_exit.map(|what| (Instant::now(), what));
            rare.notify_status = snapshot.notify_status;
        }
        instance.pending_delay = snapshot.pending_delay_ms;
        instance.started_seq = snapshot.started_seq;
        let awaiting = snapshot.awaiting.clone();
        let respawn_in = snapshot.respawn_in_ms;
        let kill_in = snapshot.kill_in_ms;
        let kill_pids = snapshot.kill_pids;
        let stage_timeouts = snapshot.stage_timeouts;
        let log = snapshot.log;
        if let Some(class) = self.classes.get_mut(class_id) {
            class.instances.insert(snapshot.name.clone(), Box::new(instance));
        }
        self.restore_admission(&key, &mut admission);
        // A coroutine cannot cross: each `script lua` process starts again.
        for (role, id) in lua_processes {
            self.restart_lua_process(&key, &role, id);
        }
        if let Some(log) = log {
            self.restore_log(&key, &job, log);
        }
        match awaiting {
            Some(AwaitingSnapshot::Stop) => self.set_awaiting(&key, Awaiting::Stop),
            Some(AwaitingSnapshot::Notify) => self.set_awaiting(&key, Awaiting::Notify),
            Some(AwaitingSnapshot::Fork { original, exited }) => {
                // The pid timeout starts again: the new image cannot know how much was left.
                if self.begin_readiness(&key, &job, original)
                    && let Some(Awaiting::Fork { exited: flag, .. }) =
                        self.instance_mut(&key).and_then(|instance| instance.awaiting.as_mut())
                {
                    *flag = exited;
                }
            }
            None => {}
        }
        // Timers go on with the time they had left.
        if let Some(millis) = kill_in {
            self.arm_kill_timer(&key, millis, kill_pids);
        }
        for stage in stage_timeouts {
            if let Some(kind) = Stage::from_keyword(&stage.stage) {
                let timeout = Duration::from_millis(stage.timeout_ms);
                self.arm_stage_timeout(&key, kind, stage.pid, timeout, Duration::from_millis(stage.in_ms));
            }
        }
        if let Some(millis) = respawn_in {
            self.arm_respawn_delay(&key, millis);
        }
    }

    fn set_awaiting(&mut self, key: &(ClassId, String), awaiting: Awaiting) {
        if let Some(instance) = self.instance_mut(key) {
            instance.awaiting = Some(awaiting);
        }
    }

    fn restore_log(&mut self, key: &(ClassId, String), job: &crate::model::Job, snapshot: LogSnapshot) {
        if let Some(fd) = snapshot.write_fd {
            // Version 1's daemon-held write end: the processes hold their own.
            // SAFETY: the previous image handed this fd over for this process to own.
            drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        }
        let mut log = JobLog::new(
            &self.settings.logdir,
            &job.name,
            &key.1,
            job.console == crate::syntax::ast::Console::Auto,
            self.settings.rotation,
        );
        log.restore_pending(snapshot.pending, snapshot.dropped);
        let mut readers = Vec::new();
        for fd in snapshot.read_fds.into_iter().chain(snapshot.read_fd) {
            let _ = exec::set_cloexec(fd, true);
            // SAFETY: the previous image handed this fd over for this process to own.
            let reader = unsafe { std::fs::File::from_raw_fd(fd) };
            match self.register_log_reader(key, reader) {
                Some(token) => readers.push((fd, token)),
                None => error!("{}: cannot take over an output pipe", self.display(key)),
            }
        }
        if let Some(instance) = self.instance_mut(key) {
            instance.log = Some(LogPipe { readers, log });
        }
    }

    /// Takes over the control socket's listener handed over by the previous image.
    pub fn restore_listener(&mut self, fd: RawFd) -> std::io::Result<()> {
        exec::set_cloexec(fd, true)?;
        // SAFETY: the previous image handed this fd over for this process to own.
        let listener = unsafe { UnixListener::from_raw_fd(fd) };
        listener.set_nonblocking(true)?;
        self.listen(listener)
    }
}
