//! Readiness: when a main process counts as started, and which pid is the main process.
//!
//! No ptrace, ever. uprise is a child subreaper, so a daemon whose parent exits is adopted
//! by uprise and can be found among uprise's own children:
//! - `expect fork` / `expect daemon`: once the spawned process has exited successfully, the
//!   job's daemon is the adopted child carrying the job's `UPSTART_JOB`/`UPSTART_INSTANCE` in
//!   its environment (or, failing that, the spawned process's session or group). The choice
//!   is made once no candidate has exited for a short settle time, so an intermediate child
//!   of a double fork is not mistaken for the daemon; the count of forks does not matter.
//! - `pid file PATH`: the pid in PATH, once the spawned process has exited; the file is
//!   watched with inotify until it appears, and the pid must be a live child of uprise. One
//!   inotify instance serves every pid file for the daemon's lifetime (`PidFileWatches`).
//! - `expect stop`: the main process stops itself with SIGSTOP; uprise continues it.
//! - `expect notify`: `READY=1` on `$NOTIFY_SOCKET` (the sd_notify protocol), from the main
//!   process or another process of the job; `MAINPID=` moves the main pid.
//!
//! Fork-style discovery gives up after `pid timeout`; the job then fails (`PROCESS=main`).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calloop::generic::Generic;
use calloop::{Interest, Mode, PostAction};
use log::{debug, info, warn};
use nix::sys::inotify::{AddWatchFlags, Inotify, WatchDescriptor};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, setsockopt, sockopt};

use crate::machine::exit::ExitStatus;
use crate::machine::{Goal, State, next_state};
use crate::model::Job;
use crate::syntax::ast::Expect;
use crate::sys::procfs;

use super::daemon::{Daemon, Key};
use super::deadlines::{Deadline, DeadlineId};
use super::jobs::Tracked;
use super::role::Role;

/// How long the candidates must stay put before the daemon of a forking job is chosen.
const SETTLE: Duration = Duration::from_millis(50);

/// How many parents up a notify sender is looked for among the processes uprise started.
const MAX_ANCESTRY: usize = 32;

/// Notify datagrams read per wake-up of the loop.
const NOTIFY_BATCH: usize = 64;

/// The longest notify datagram read; a longer one is dropped.
const NOTIFY_MAX: usize = 4096;

/// Descriptors a notify datagram may carry (a barrier needs one).
const NOTIFY_FDS: usize = 4;

/// The most characters of a `STATUS=` kept for `status -v`.
const NOTIFY_STATUS_MAX: usize = 256;

/// What an instance in `spawned` waits for.
pub enum Awaiting {
    /// `expect stop`.
    Stop,
    /// `expect notify`.
    Notify,
    /// `expect fork|daemon` or `pid file`: the spawned process `original` must exit first.
    Fork {
        original: i32,
        exited: bool,
        /// The user the spawned process ran as: a candidate found by its environment must
        /// run as that user too (any user can put `UPSTART_JOB` in an environment, and in
        /// system mode every orphan on the machine is adopted by uprise).
        uid: Option<u32>,
        deadline: Option<DeadlineId>,
        /// The watch on the pid file's dir, while the file is awaited.
        watch: Option<WatchDescriptor>,
    },
}

/// The pid files being waited for. One inotify instance serves them all, for the daemon's
/// lifetime: closing an instance that still has watches waits for an SRCU grace period in
/// the kernel (0.8-17 ms measured), which stalled the whole loop each time a late pid file
/// appeared, when each wait had an instance of its own. A watch that nobody waits on any
/// more is removed, which does not wait.
#[derive(Default)]
pub struct PidFileWatches {
    /// A second descriptor of the instance the loop reads; None until a pid file is first
    /// waited for.
    inotify: Option<Inotify>,
    /// Who waits on each watched dir: the instance and its pid file.
    waiting: HashMap<WatchDescriptor, Vec<(Key, PathBuf)>>,
}

/// True when the job needs more than the spawn to be ready.
pub fn needs_readiness(job: &Job) -> bool {
    job.expect != Expect::None || job.lifecycle.pid_file.is_some()
}

impl Daemon {
    /// Called right after the main process was spawned. Returns true when the instance must
    /// wait in `spawned`.
    pub fn begin_readiness(&mut self, key: &Key, job: &Job, pid: i32) -> bool {
        if !needs_readiness(job) {
            return false;
        }
        let awaiting = match (job.expect, &job.lifecycle.pid_file) {
            (Expect::Stop, None) => Awaiting::Stop,
            (Expect::Notify, None) => Awaiting::Notify,
            _ => {
                let serial = self.instance(key).map_or(0, |instance| instance.serial);
                let timeout = Duration::from_millis(job.pid_timeout.millis);
                let deadline = Some(self.arm(
                    timeout,
                    Deadline::PidTimeout {
                        key: key.clone(),
                        serial,
                    },
                ));
                // Read while the process lives; a job without `setuid` runs as the daemon.
                let uid =
                    procfs::euid(pid).or_else(|| job.context.setuid.is_none().then(|| nix::unistd::geteuid().as_raw()));
                Awaiting::Fork {
                    original: pid,
                    exited: false,
                    uid,
                    deadline,
                    watch: None,
                }
            }
        };
        if let Some(instance) = self.instance_mut(key) {
            instance.awaiting = Some(awaiting);
        }
        true
    }

    pub(super) fn readiness_timed_out(&mut self, key: &Key) {
        let Some(instance) = self.instance_mut(key) else { return };
        if !matches!(instance.awaiting, Some(Awaiting::Fork { .. })) {
            return;
        }
        let name = self.display(key);
        warn!("{name}: no main process found within the pid timeout");
        self.stop_candidates(key);
        self.end_awaiting(key);
        self.fail(key, "main", None);
        self.change_state(key, State::Stopping);
    }

    /// A forking job given up while its daemon was still being looked for: the processes
    /// that would have been its daemon are stopped, so none is left running untracked.
    fn stop_candidates(&mut self, key: &Key) {
        let forked = matches!(
            self.instance(key).and_then(|instance| instance.awaiting.as_ref()),
            Some(Awaiting::Fork { exited: true, .. })
        );
        if !forked {
            return;
        }
        let job = self.class(key.0).job.clone();
        let candidates = self.candidates(key, &job);
        if candidates.is_empty() {
            return;
        }
        for pid in &candidates {
            warn!(
                "{}: stopping process {pid}, which was starting as its daemon",
                self.display(key)
            );
            self.signal_main(*pid, job.kill_signal, false);
        }
        let grace = Duration::from_millis(job.kill_timeout.millis);
        self.arm(grace, Deadline::KillCandidates { pids: candidates });
    }

    /// Cancels what an instance waits for (timers and watches included).
    pub fn end_awaiting(&mut self, key: &Key) {
        let Some(instance) = self.instance_mut(key) else { return };
        if let Some(Awaiting::Fork { deadline, watch, .. }) = instance.awaiting.take() {
            if let Some(id) = deadline {
                self.disarm(id);
            }
            if let Some(watch) = watch {
                self.unwatch_pid_file(key, watch);
            }
        }
    }

    /// `key` no longer waits on `watch`; the watch goes with its last waiter.
    fn unwatch_pid_file(&mut self, key: &Key, watch: WatchDescriptor) {
        let watches = &mut self.pid_files;
        let Some(waiters) = watches.waiting.get_mut(&watch) else {
            return;
        };
        waiters.retain(|(waiter, _)| waiter != key);
        if waiters.is_empty() {
            watches.waiting.remove(&watch);
            if let Some(inotify) = &watches.inotify {
                let _ = inotify.rm_watch(watch);
            }
        }
    }

    /// The instance is ready: on to `post-start`.
    fn ready(&mut self, key: &Key) {
        self.end_awaiting(key);
        let Some(instance) = self.instance(key) else { return };
        if instance.state != State::Spawned {
            return;
        }
        let next = next_state(State::Spawned, instance.goal, instance.main_alive());
        self.change_state(key, next);
    }

    /// A child stopped itself (WUNTRACED): `expect stop` readiness.
    pub fn process_stopped(&mut self, pid: i32) {
        let key = match self.pids.get(&pid) {
            Some(tracked) if tracked.role.is_main() => (tracked.class, tracked.instance.clone()),
            _ => return,
        };
        if matches!(
            self.instance(&key).and_then(|instance| instance.awaiting.as_ref()),
            Some(Awaiting::Stop)
        ) {
            self.signal_process(pid, libc::SIGCONT, false);
            self.ready(&key);
        }
    }

    /// The spawned process of a forking job exited. Returns true when this exit was the
    /// expected one (the caller must not treat it as the main process ending).
    pub fn forking_parent_exited(&mut self, key: &Key, pid: i32, status: ExitStatus) -> bool {
        let Some(instance) = self.instance_mut(key) else {
            return false;
        };
        let Some(Awaiting::Fork { original, exited, .. }) = instance.awaiting.as_mut() else {
            return false;
        };
        if *original != pid || !status.is_success() {
            return false;
        }
        *exited = true;
        self.find_daemon(key);
        true
    }

    /// A process uprise did not start (an adopted orphan) ended: a forking job may have
    /// finished forking.
    pub fn adopted_exited(&mut self) {
        let waiting: Vec<Key> = self.forking_instances();
        for key in waiting {
            self.find_daemon(&key);
        }
    }

    fn forking_instances(&self) -> Vec<Key> {
        self.live_instances()
            .filter(|(_, instance)| matches!(instance.awaiting, Some(Awaiting::Fork { exited: true, .. })))
            .map(|(id, instance)| (id, instance.name.clone()))
            .collect()
    }

    fn find_daemon(&mut self, key: &Key) {
        let Some(instance) = self.instance(key) else { return };
        let Some(Awaiting::Fork { exited: true, .. }) = instance.awaiting else {
            return;
        };
        let job = self.class(key.0).job.clone();
        if let Some(path) = &job.lifecycle.pid_file {
            let expanded = crate::machine::environ::expand(path, &instance.env).unwrap_or_else(|_| path.clone());
            self.read_pid_file(key, Path::new(&expanded));
            return;
        }
        let candidates = self.candidates(key, &job);
        if candidates.is_empty() {
            return;
        }
        // Wait for the candidates to settle: an intermediate child of a double fork exits.
        let serial = instance.serial;
        let settle = Deadline::Settle {
            key: key.clone(),
            serial,
            candidates,
        };
        self.arm(SETTLE, settle);
    }

    /// Adopted children that belong to the instance: in the session or group of the spawned
    /// process (which cannot be joined from outside), or tagged with the instance in their
    /// environment and running as the spawned process's user.
    fn candidates(&self, key: &Key, job: &Job) -> Vec<i32> {
        let Some(Awaiting::Fork { original, uid, .. }) = self.instance(key).and_then(|i| i.awaiting.as_ref()) else {
            return Vec::new();
        };
        let (original, uid) = (*original, *uid);
        procfs::own_children()
            .into_iter()
            .filter(|pid| !self.pids.contains_key(pid))
            .filter(|pid| {
                if procfs::stat(*pid).is_some_and(|stat| stat.sid == original || stat.pgid == original) {
                    return true;
                }
                uid.is_some_and(|uid| procfs::euid(*pid) == Some(uid))
                    && procfs::environ_var(*pid, "UPSTART_JOB").as_deref() == Some(job.name.as_str())
                    && procfs::environ_var(*pid, "UPSTART_INSTANCE").unwrap_or_default() == key.1
            })
            .collect()
    }

    pub(super) fn choose_daemon(&mut self, key: &Key, seen: &[i32]) {
        let Some(instance) = self.instance(key) else { return };
        let Some(Awaiting::Fork { .. }) = instance.awaiting else {
            return;
        };
        let job = self.class(key.0).job.clone();
        let now = self.candidates(key, &job);
        if now.is_empty() || now != seen {
            // Something changed while settling; look again.
            self.find_daemon(key);
            return;
        }
        // Prefer a process that does not lead its session (the last child of a double fork).
        let chosen = now
            .iter()
            .copied()
            .find(|pid| procfs::stat(*pid).is_some_and(|stat| stat.sid != *pid))
            .unwrap_or(now[now.len() - 1]);
        if now.len() > 1 {
            warn!(
                "{}: several processes could be the main process ({now:?}); tracking {chosen}",
                self.display(key)
            );
        }
        self.adopt(key, chosen);
    }

    fn read_pid_file(&mut self, key: &Key, path: &Path) {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        // A pid file is a few bytes; one that is not is not read whole.
        let mut text = String::new();
        let owner = std::fs::File::open(path).ok().and_then(|file| {
            let owner = file.metadata().ok()?.uid();
            file.take(64).read_to_string(&mut text).ok()?;
            Some(owner)
        });
        let job_uid = match self.instance(key).and_then(|instance| instance.awaiting.as_ref()) {
            Some(Awaiting::Fork { uid, .. }) => *uid,
            _ => None,
        };
        // A file written by root or by the job's own user is trusted to name the job's
        // daemon; one that another user wrote (a pid file in a dir others can write) only
        // names a process running as that user, which that user could signal anyway.
        let trusted = |pid: i32| match owner {
            Some(0) => true,
            Some(owner) if Some(owner) == job_uid => true,
            Some(owner) => procfs::euid(pid) == Some(owner),
            None => false,
        };
        match text.trim().parse::<i32>() {
            Ok(pid)
                if pid > 1
                    && procfs::stat(pid).is_some_and(|stat| stat.ppid == std::process::id() as i32)
                    && trusted(pid) =>
            {
                self.adopt(key, pid);
            }
            Ok(pid) if pid > 1 && procfs::stat(pid).is_some() => {
                warn!(
                    "{}: pid file {} names process {pid}, which is not one of the job's",
                    self.display(key),
                    path.display()
                );
            }
            _ => self.watch_pid_file(key, path),
        }
    }

    /// Watches the pid file's directory until the file is written.
    fn watch_pid_file(&mut self, key: &Key, path: &Path) {
        let already = matches!(
            self.instance(key).and_then(|i| i.awaiting.as_ref()),
            Some(Awaiting::Fork { watch: Some(_), .. })
        );
        if already {
            return;
        }
        let Some(dir) = path.parent() else { return };
        let Some(inotify) = self.pid_file_inotify() else { return };
        let flags = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE;
        let Ok(watch) = inotify.add_watch(dir, flags) else {
            return;
        };
        self.pid_files
            .waiting
            .entry(watch)
            .or_default()
            .push((key.clone(), path.to_path_buf()));
        if let Some(instance) = self.instance_mut(key)
            && let Some(Awaiting::Fork { watch: slot, .. }) = instance.awaiting.as_mut()
        {
            *slot = Some(watch);
        }
    }

    /// The pid-file inotify instance, created and registered with the loop the first time.
    fn pid_file_inotify(&mut self) -> Option<&Inotify> {
        if self.pid_files.inotify.is_none() {
            self.pid_files.inotify = self.inotify_on_loop(Daemon::pid_file_events);
        }
        self.pid_files.inotify.as_ref()
    }

    /// Something happened in a watched dir: each instance waiting on it reads its pid file.
    fn pid_file_events(&mut self, inotify: &Inotify) {
        let mut touched: Vec<WatchDescriptor> = Vec::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The dir is gone, and its watch with it: its waiters wait for the pid
                    // timeout, as they would for a file that never appears.
                    self.pid_files.waiting.remove(&event.wd);
                } else if !touched.contains(&event.wd) {
                    touched.push(event.wd);
                }
            }
        }
        for watch in touched {
            let waiters = self.pid_files.waiting.get(&watch).cloned().unwrap_or_default();
            for (key, path) in waiters {
                let still_waiting = matches!(
                    self.instance(&key).and_then(|i| i.awaiting.as_ref()),
                    Some(Awaiting::Fork { watch: Some(w), .. }) if *w == watch
                );
                if still_waiting {
                    self.read_pid_file(&key, &path);
                } else {
                    // The instance went without saying so (it stopped or was removed).
                    self.unwatch_pid_file(&key, watch);
                }
            }
        }
    }

    /// Makes `pid` the main process and moves on.
    fn adopt(&mut self, key: &Key, pid: i32) {
        let name = self.display(key);
        info!("{name} main process is now {pid}");
        self.track_main(key, pid);
        self.ready(key);
    }

    /// Records `pid` as the instance's main process, one uprise did not spawn itself.
    fn track_main(&mut self, key: &Key, pid: i32) {
        let tracked = Tracked {
            class: key.0,
            instance: key.1.clone(),
            role: Role::MAIN,
            spawned: false,
        };
        self.pids.insert(pid, tracked);
        if let Some(instance) = self.instance_mut(key) {
            instance.pids.insert(Role::MAIN, pid);
        }
    }

    /// The `$NOTIFY_SOCKET` for `expect notify` jobs, next to the control socket.
    pub fn notify_socket_path(&self) -> PathBuf {
        self.settings.socket.with_file_name("notify")
    }

    /// Binds the notify socket and registers it with the loop.
    pub fn listen_notify(&mut self) -> std::io::Result<()> {
        let path = self.notify_socket_path();
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)?;
        // Jobs that run as other users must be able to send; a message only counts for the
        // instance its sender belongs to.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        self.register_notify(socket)
    }

    /// Registers the notify socket (new, or handed over by a re-exec) with the loop.
    pub fn register_notify(&mut self, socket: UnixDatagram) -> std::io::Result<()> {
        self.notify_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&socket));
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::PassCred, &true).map_err(std::io::Error::from)?;
        let source = Generic::new(socket, Interest::READ, Mode::Level);
        self.handle
            .insert_source(source, |_, socket, daemon| {
                // A bounded batch per wake-up: a flood of datagrams waits its turn behind the
                // rest of the loop's work (the source stays readable).
                for _ in 0..NOTIFY_BATCH {
                    let mut buffer = [0u8; NOTIFY_MAX];
                    // Room for the credentials and a few descriptors (`uprisectl notify`'s
                    // barrier); any more are closed by the kernel.
                    let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; NOTIFY_FDS]);
                    let mut iov = [IoSliceMut::new(&mut buffer)];
                    let received = recvmsg::<UnixAddr>(
                        std::os::fd::AsRawFd::as_raw_fd(&**socket),
                        &mut iov,
                        Some(&mut space),
                        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                    );
                    let Ok(message) = received else { break };
                    let mut sender = None;
                    // Descriptors sent along are closed once the message is handled: the
                    // sender waits for that (a barrier), and none is kept.
                    let mut passed: Vec<OwnedFd> = Vec::new();
                    if let Ok(cmsgs) = message.cmsgs() {
                        for cmsg in cmsgs {
                            match cmsg {
                                ControlMessageOwned::ScmCredentials(credentials) => {
                                    sender = Some((credentials.pid(), credentials.uid()));
                                }
                                ControlMessageOwned::ScmRights(fds) => {
                                    // SAFETY: the kernel installed these descriptors for
                                    // this process; nothing else owns them.
                                    passed.extend(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                                }
                                _ => {}
                            }
                        }
                    }
                    if message.flags.contains(MsgFlags::MSG_TRUNC) {
                        continue;
                    }
                    let length = message.bytes;
                    let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    if let Some((pid, uid)) = sender {
                        daemon.notify_message(pid, uid, &text);
                    }
                    drop(passed);
                }
                daemon.settle();
                daemon.flush_clients();
                Ok(PostAction::Continue)
            })
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(())
    }

    /// The instance a process belongs to, by the daemon's own knowledge: a process it
    /// started, or a descendant of one (the parent chain in `/proc`, up to
    /// [`MAX_ANCESTRY`] steps). Never by what the process says of itself (its environment):
    /// any user can set `UPSTART_JOB`.
    fn owner_of(&self, pid: i32) -> Option<Key> {
        let daemon = std::process::id() as i32;
        let mut current = pid;
        for _ in 0..MAX_ANCESTRY {
            if let Some(tracked) = self.pids.get(&current) {
                return Some((tracked.class, tracked.instance.clone()));
            }
            let parent = procfs::stat(current)?.ppid;
            // An orphan (adopted by uprise, or by PID 1) has lost its ancestry.
            if parent <= 1 || parent == daemon {
                return None;
            }
            current = parent;
        }
        None
    }

    /// Whether `MAINPID=pid`, sent by a process of the instance running as `sender_uid`, may
    /// name the instance's main process: one of the instance's own processes or their
    /// descendants, a process in the session or group of one of them (neither can be joined
    /// from outside), or an orphan uprise adopted (a double fork) that runs as the sender's
    /// user, which the sender could signal itself anyway.
    fn may_be_main(&self, key: &Key, pid: i32, sender_uid: u32) -> bool {
        let Some(stat) = procfs::stat(pid).filter(|stat| pid > 1 && stat.state != 'Z') else {
            return false;
        };
        if let Some(tracked) = self.pids.get(&pid) {
            return (tracked.class, &tracked.instance) == (key.0, &key.1);
        }
        if self.owner_of(pid).as_ref() == Some(key) {
            return true;
        }
        let Some(instance) = self.instance(key) else {
            return false;
        };
        if instance
            .pids
            .values()
            .any(|&known| stat.sid == known || stat.pgid == known)
        {
            return true;
        }
        stat.ppid == std::process::id() as i32 && procfs::euid(pid) == Some(sender_uid)
    }

    /// A datagram on the notify socket, from process `sender` running as `uid` (as the
    /// kernel says). Only a process of an instance of an `expect notify` job is heard.
    fn notify_message(&mut self, sender: i32, uid: u32, text: &str) {
        // The pid must still be the sender's: a process that sent and exited, its pid
        // taken since by another, does not speak for the newcomer.
        if procfs::euid(sender) != Some(uid) {
            debug!("notify: message from process {sender} (uid {uid}), which is gone; ignored");
            return;
        }
        let Some(key) = self.owner_of(sender) else {
            debug!("notify: message from process {sender} (uid {uid}), which is no job's; ignored");
            return;
        };
        if self.class(key.0).job.expect != Expect::Notify {
            debug!(
                "notify: message from {} (process {sender}), which does not `expect notify`; ignored",
                self.display(&key)
            );
            return;
        }
        let mut ready = false;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => ready = true,
                Some(("MAINPID", pid)) => {
                    let Ok(pid) = pid.trim().parse::<i32>() else { continue };
                    let current = self
                        .instance(&key)
                        .and_then(|instance| instance.pids.get(&Role::MAIN).copied());
                    if current == Some(pid) {
                        continue;
                    }
                    if !self.may_be_main(&key, pid, uid) {
                        warn!(
                            "{}: MAINPID={pid} (from process {sender}) names no process of the job; ignored",
                            self.display(&key)
                        );
                        continue;
                    }
                    // The old main pid is no longer the job's main process.
                    if let Some(old) = current {
                        self.pids.remove(&old);
                    }
                    self.track_main(&key, pid);
                }
                Some(("STATUS", status)) => {
                    if let Some(instance) = self.instance_mut(&key) {
                        instance.rare_mut().notify_status = Some(status.chars().take(NOTIFY_STATUS_MAX).collect());
                    }
                }
                _ => {}
            }
        }
        if ready
            && matches!(
                self.instance(&key).and_then(|instance| instance.awaiting.as_ref()),
                Some(Awaiting::Notify)
            )
        {
            self.ready(&key);
        }
    }

    pub fn display(&self, key: &Key) -> String {
        Daemon::display_name(&self.class(key.0).job, &key.1)
    }

    /// A goal change while waiting in `spawned`: stop waiting and stop the job.
    pub fn abandon_readiness(&mut self, key: &Key) {
        if self
            .instance(key)
            .is_some_and(|instance| instance.awaiting.is_some() && instance.state == State::Spawned)
        {
            self.stop_candidates(key);
            self.end_awaiting(key);
            if self.instance(key).is_some_and(|instance| instance.goal != Goal::Start) {
                self.change_state(key, State::Stopping);
            }
        }
    }
}
