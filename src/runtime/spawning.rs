//! Starting processes: the environment and output pipe of each, the spawn itself (through
//! `sys::spawn`, not waiting for the exec: up to `SPAWN_WINDOW` children set themselves up
//! while the daemon prepares the next), and following each start up once it is known to
//! have worked or failed.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use log::{debug, warn};

use crate::machine::environ::{self};
use crate::machine::{AfterSpawn, Stage, State, next_state};
use crate::model::Job;
use crate::syntax::ast::Console;
use crate::sys::spawn::{self, SpawnSpec, Stdio};

use super::daemon::{Daemon, Key};
use super::host::Begun;
use super::jobs::{Instance, LogPipe, Tracked};
use super::output::JobLog;
use super::role::{self, Role};

/// How a spawn went, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spawned {
    /// A process runs (its pid is in the tables).
    Running,
    /// The job defines no process for the role.
    Nothing,
    /// It could not be started (logged, and noted in `status -v`).
    Failed,
}

/// What [`Daemon::spawn_process`] did: a spawn known to be through, or a child that may
/// still be on its way to exec.
pub(super) enum Started {
    Now(Spawned),
    /// The child, and when its spawn began (for the spawn-time figure).
    Later(spawn::Pending, Instant),
}

/// A process started in a state that the machine follows up once its spawn is known to have
/// succeeded or failed.
pub(super) struct Spawning {
    pub(super) key: Key,
    /// The state that ran it, and what follows.
    pub(super) state: State,
    pub(super) role: Role,
    pub(super) after: AfterSpawn,
    pub(super) failure_fails: bool,
    pub(super) child: SpawnChild,
    /// When its spawn began.
    pub(super) begun: Instant,
}

impl Spawning {
    /// Whether following it up needs no wait.
    pub(super) fn is_done(&self) -> bool {
        match &self.child {
            SpawnChild::InFlight(pending) => pending.is_done(),
            SpawnChild::Done(_) => true,
        }
    }
}

pub(super) enum SpawnChild {
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

impl Daemon {
    /// Starts one process of an instance: `Now` when the spawn is through (or there was
    /// nothing to start), `Later` with a child that may still be on its way to exec.
    ///
    /// A start does not wait for the child's exec, so the daemon prepares the next process
    /// while the last one sets itself up (up to [`SPAWN_WINDOW`] at once). The machine
    /// follows up each spawn before anything else happens to its instance, and `settle`
    /// follows up all of them before the loop sleeps: no process is left unaccounted for
    /// when a signal or a client is served.
    pub(super) fn spawn_process(&mut self, key: &Key, job: &Job, role: &Role) -> Started {
        self.spawn_process_with(key, job, role, &[])
    }

    /// As [`Daemon::spawn_process`], with `extra` variables on top of the process's
    /// environment (an action's `KEY=VALUE` arguments).
    pub(super) fn spawn_process_with(&mut self, key: &Key, job: &Job, role: &Role, extra: &[String]) -> Started {
        let Some(command) = role::command_for(job, role) else {
            return Started::Now(Spawned::Nothing);
        };
        if command.is_lua() {
            let mut env = self.process_env(key, job, role);
            if !extra.is_empty() {
                environ::merge(&mut env, extra);
            }
            let started = self
                .start_lua_process(key, job, role, env)
                .map_err(|why| spawn::SpawnError {
                    step: "start the Lua chunk",
                    error: std::io::Error::other(why),
                });
            return Started::Now(self.spawn_started(key, job, role, started));
        }
        while self.in_flight() >= SPAWN_WINDOW {
            self.wait_oldest_spawn();
        }
        let mut env = self.process_env(key, job, role);
        if !extra.is_empty() {
            environ::merge(&mut env, extra);
        }
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
        let what = role.to_string();
        let spec = SpawnSpec {
            job_name: &job.name,
            what: &what,
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
        let begun = self.host.now();
        match self.host.spawn(spec) {
            Ok(Begun::Done(result)) => {
                if result.is_ok() {
                    self.metrics.spawned(self.host.now().saturating_duration_since(begun));
                }
                Started::Now(self.spawn_started(key, job, role, result))
            }
            Ok(Begun::InFlight(pending)) => Started::Later(pending, begun),
            Err(error) => Started::Now(self.spawn_started(key, job, role, Err(error))),
        }
    }

    /// Takes note of a process that exec'd (its pid), or logs why it could not start.
    pub(super) fn spawn_started(
        &mut self,
        key: &Key,
        job: &Job,
        role: &Role,
        result: Result<i32, spawn::SpawnError>,
    ) -> Spawned {
        let name = Daemon::display_name(job, &key.1);
        match result {
            Ok(pid) => {
                debug!("{name} {role} process ({pid})");
                let tracked = Tracked {
                    class: key.0,
                    instance: key.1.clone(),
                    role: role.clone(),
                    spawned: true,
                };
                self.pids.insert(pid, tracked);
                if let Some(instance) = self.instance_mut(key) {
                    instance.pids.insert(role.clone(), pid);
                }
                if let Some(stage) = role.stage()
                    && let Some(timeout) = role::stage_timeout(job, stage)
                {
                    self.arm_stage_timeout(key, stage, pid, timeout, timeout);
                }
                Spawned::Running
            }
            Err(error) => {
                warn!("Failed to spawn {name} {role} process: {error}");
                if let Some(instance) = self.instance_mut(key) {
                    instance.rare_mut().last_exit =
                        Some((Instant::now(), format!("{role} process failed to spawn: {error}")));
                }
                Spawned::Failed
            }
        }
    }

    /// Whether the machine goes on after starting a process: `spawned` is what
    /// [`Daemon::spawn_started`] said.
    pub(super) fn after_spawn(
        &mut self,
        key: &Key,
        job: &Job,
        role: &Role,
        after: AfterSpawn,
        failure_fails: bool,
        spawned: Spawned,
    ) -> bool {
        match spawned {
            Spawned::Running => match after {
                AfterSpawn::Exit => false,
                AfterSpawn::Ready => !self.await_ready(key, job),
                AfterSpawn::Next => true,
            },
            Spawned::Nothing => true,
            Spawned::Failed => {
                if failure_fails {
                    self.fail(key, &role.to_string(), None);
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
    pub(super) fn in_flight(&self) -> usize {
        self.spawning
            .iter()
            .rev()
            .take_while(|spawned| matches!(spawned.child, SpawnChild::InFlight(_)))
            .count()
    }

    /// Waits for the oldest child still between clone and exec, keeping the outcome.
    pub(super) fn wait_oldest_spawn(&mut self) {
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
    pub(super) fn follow_up_spawn(&mut self, spawned: Spawning) {
        let Spawning {
            key,
            state,
            role,
            after,
            failure_fails,
            child,
            begun,
        } = spawned;
        let result = match child {
            SpawnChild::InFlight(pending) => pending.wait(),
            SpawnChild::Done(result) => result,
        };
        if result.is_ok() {
            self.metrics.spawned(self.host.now().saturating_duration_since(begun));
        }
        let Some(instance) = self.instance_mut(&key) else {
            // Nothing removes an instance with a start not followed up (`change_state`
            // follows it up first); should one go, its process must not run unsupervised.
            if let Ok(pid) = result {
                warn!("process ({pid}) of a job instance that is gone; killing it");
                self.signal_process(pid, libc::SIGKILL, true);
            }
            return;
        };
        instance.spawning = false;
        let job = self.class(key.0).job.clone();
        let spawned = self.spawn_started(&key, &job, &role, result);
        if !self.after_spawn(&key, &job, &role, after, failure_fails, spawned) {
            return;
        }
        let Some(instance) = self.instance(&key) else { return };
        let next = next_state(state, instance.goal, instance.main_alive());
        self.change_state(&key, next);
    }

    /// Begins the readiness wait of a main process just spawned; false when there is
    /// nothing to wait for after all (its pid is not known).
    pub(super) fn await_ready(&mut self, key: &Key, job: &Job) -> bool {
        let pid = self
            .instance(key)
            .and_then(|instance| instance.pids.get(&Role::MAIN).copied());
        // A `script lua` process is ready when it starts: there is nothing to watch.
        pid.is_some_and(|pid| !super::lua_processes::is_lua_id(pid) && self.begin_readiness(key, job, pid))
    }

    /// The environment of one process of an instance.
    pub(super) fn process_env(&self, key: &Key, job: &Job, role: &Role) -> Vec<String> {
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
        // The stop event's (or command's) variables go to the processes that run because
        // of it.
        let stop_env = match role {
            Role::Stage(Stage::PreStop | Stage::PostStop) | Role::Stop => &instance.rare().stop_env[..],
            Role::Stage(Stage::PreStart | Stage::Main | Stage::PostStart) | Role::Reload | Role::Action(_) => &[],
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
    pub(super) fn log_fd(&mut self, key: &Key, job: &Job) -> Option<OwnedFd> {
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
    pub(super) fn register_log_reader(
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
}
