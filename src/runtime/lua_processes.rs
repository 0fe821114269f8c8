//! `script lua` processes: a job's process (its main process, a stage, or a reload, stop or
//! action process) whose body runs in the daemon's Lua, as a coroutine resumed on the loop.
//!
//! Such a process has an id in the pid tables like any process, so the machine, the kill
//! timeout, stage timeouts, `status`, actions and the re-exec snapshot treat it as one. The
//! ids are above any pid the kernel hands out ([`FIRST_ID`] is past `PID_MAX_LIMIT`, 2^22),
//! so they never name a real process, and every signal the daemon sends goes through
//! [`Daemon::signal_process`], which never lets one reach `kill(2)`: a signal that would
//! end a process ends the coroutine, and the others are ignored.
//!
//! A process starts, "exits" and is signalled the way a real one is seen to: its first
//! slice and its end are handled on a later turn of the loop (a zero deadline), never in
//! the middle of the spawn or the kill that caused them. `sleep(DURATION)` arms a deadline
//! to resume it. It "exits" 0 when its chunk returns, 1 when it fails (an error, its
//! instruction budget for one slice, its memory), and is reported killed by the signal
//! that ended it. A re-exec cannot carry a coroutine: the new image starts each running
//! `script lua` process again from the beginning, under the same id.

use std::collections::HashMap;
use std::time::Duration;

use log::{info, warn};

use crate::lua::sandbox::{Coroutine, Resumed, Run, SleepFor, Slice, Wake};
use crate::machine::exit::ExitStatus;
use crate::model::Job;
use crate::syntax::ast::Command;

use super::daemon::{Daemon, Key};
use super::deadlines::{Deadline, DeadlineId};
use super::hooks::DaemonView;
use super::role::{self, Role};

/// The first id of a `script lua` process: past the largest pid Linux can hand out.
pub const FIRST_ID: i32 = 1 << 30;

/// The longest `sleep`: a year (a longer wait is a timer's job).
const LONGEST_SLEEP: Duration = Duration::from_secs(366 * 24 * 3600);

/// Whether `pid` is the id of a `script lua` process rather than a real process.
pub fn is_lua_id(pid: i32) -> bool {
    pid >= FIRST_ID
}

/// A process's id as messages show it: its pid, or `lua` for a `script lua` process.
pub fn shown(pid: i32) -> ShownPid {
    ShownPid(pid)
}

/// See [`shown`].
pub struct ShownPid(i32);

impl std::fmt::Display for ShownPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if is_lua_id(self.0) {
            f.write_str("lua")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// One running `script lua` process.
struct LuaProcess {
    key: Key,
    role: Role,
    /// What `job.env` reads: the process's environment, as a spawned one would get it.
    env: Vec<String>,
    /// Its coroutine; `None` while a slice runs.
    coroutine: Option<Coroutine>,
    /// What its next step is.
    next: Next,
    /// The deadline of that step.
    step: Option<DeadlineId>,
}

enum Next {
    Resume(Wake),
    /// It ended (killed, or its chunk gone): reported with this status.
    Exit(ExitStatus),
}

/// The running `script lua` processes, by id.
#[derive(Default)]
pub struct LuaProcesses {
    running: HashMap<i32, LuaProcess>,
    next_id: i32,
}

impl LuaProcesses {
    fn allocate(&mut self) -> i32 {
        let mut id = self.next_id.max(FIRST_ID);
        while self.running.contains_key(&id) {
            id = if id == i32::MAX { FIRST_ID } else { id + 1 };
        }
        self.next_id = if id == i32::MAX { FIRST_ID } else { id + 1 };
        id
    }

    /// How many run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// Whether a signal's default action ends a process: such a signal ends a `script lua`
/// process; the others (`SIGCHLD`, `SIGCONT`, `SIGURG`, `SIGWINCH`, and the stop signals,
/// which cannot stop a coroutine) are ignored.
fn ends_process(signal: i32) -> bool {
    !matches!(
        signal,
        0 | libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGURG
            | libc::SIGWINCH
            | libc::SIGSTOP
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    )
}

/// The body and first line of a `script lua` command.
fn lua_body(command: &Command) -> Option<(&str, u32)> {
    match command {
        Command::Script { body, line, .. } if command.is_lua() => Some((body, *line)),
        _ => None,
    }
}

impl Daemon {
    /// Starts a `script lua` process for `role` of an instance: returns its id, or why its
    /// chunk could not be made. Its first slice runs on a later turn of the loop.
    pub(super) fn start_lua_process(
        &mut self,
        key: &Key,
        job: &Job,
        role: &Role,
        env: Vec<String>,
    ) -> Result<i32, String> {
        let id = self.lua.processes.allocate();
        self.begin_lua_process(key, job, role, env, id)?;
        Ok(id)
    }

    /// Makes the coroutine of a `script lua` process under `id` and arms its first slice.
    fn begin_lua_process(
        &mut self,
        key: &Key,
        job: &Job,
        role: &Role,
        env: Vec<String>,
        id: i32,
    ) -> Result<(), String> {
        let command = role::command_for(job, role).ok_or_else(|| format!("no {role} process"))?;
        let (code, first_line) = lua_body(command).ok_or_else(|| format!("the {role} process is not Lua"))?;
        let sandbox = self.sandbox()?;
        let what = format!("{role} process");
        let coroutine = sandbox.coroutine(&Run {
            job: &job.name,
            instance: &key.1,
            what: &what,
            code,
            first_line,
            env: &env,
        })?;
        self.schedule_lua(id, key, role, env, Some(coroutine), Next::Resume(Wake::Start));
        Ok(())
    }

    /// Keeps a `script lua` process under `id`, its next step due on the loop's next turn.
    fn schedule_lua(
        &mut self,
        id: i32,
        key: &Key,
        role: &Role,
        env: Vec<String>,
        coroutine: Option<Coroutine>,
        next: Next,
    ) {
        let step = self.arm(Duration::ZERO, Deadline::LuaStep { id });
        let process = LuaProcess {
            key: key.clone(),
            role: role.clone(),
            env,
            coroutine,
            next,
            step: Some(step),
        };
        self.lua.processes.running.insert(id, process);
    }

    /// After a re-exec: the `script lua` processes the snapshot names start again from the
    /// beginning, under their ids; one whose job no longer has it is reported ended.
    pub(super) fn restart_lua_process(&mut self, key: &Key, role: &Role, id: i32) {
        let job = self.class(key.0).job.clone();
        self.lua.processes.next_id = self.lua.processes.next_id.max(id.saturating_add(1));
        let env = match self.instance(key) {
            Some(_) => self.process_env(key, &job, role),
            None => Vec::new(),
        };
        let name = self.display(key);
        match self.begin_lua_process(key, &job, role, env, id) {
            Ok(()) => info!("{name} {role} process (lua) starts again from the beginning after the re-exec"),
            Err(why) => {
                warn!("{name} {role} process (lua) cannot start again after the re-exec: {why}");
                self.schedule_lua(id, key, role, Vec::new(), None, Next::Exit(ExitStatus::Code(1)));
            }
        }
    }

    /// A signal sent to a `script lua` process: one that ends a process ends it (reported
    /// on the loop's next turn, as killed by that signal); the rest are ignored.
    pub(super) fn signal_lua_process(&mut self, id: i32, signal: i32) {
        if !ends_process(signal) {
            return;
        }
        let Some(process) = self.lua.processes.running.get_mut(&id) else {
            return;
        };
        if matches!(process.next, Next::Exit(_)) {
            return;
        }
        process.next = Next::Exit(ExitStatus::Signal(signal));
        process.coroutine = None;
        let old = process.step.take();
        if let Some(old) = old {
            self.disarm(old);
        }
        let step = self.arm(Duration::ZERO, Deadline::LuaStep { id });
        if let Some(process) = self.lua.processes.running.get_mut(&id) {
            process.step = Some(step);
        }
    }

    /// A `script lua` process's deadline passed: runs its next slice, or reports its end.
    pub(super) fn lua_step(&mut self, id: i32) {
        let Some(mut process) = self.lua.processes.running.remove(&id) else {
            return;
        };
        process.step = None;
        // Something took it out of the tables (its instance went, or `kill abandon`): it
        // is over, with no one to tell.
        if self.pids.get(&id).is_none_or(|tracked| tracked.role != process.role) {
            return;
        }
        let wake = match std::mem::replace(&mut process.next, Next::Resume(Wake::Slept)) {
            Next::Exit(status) => {
                self.process_exited(id, status);
                return;
            }
            Next::Resume(wake) => wake,
        };
        let Some(mut coroutine) = process.coroutine.take() else {
            self.process_exited(id, ExitStatus::Code(1));
            return;
        };
        let name = self.display(&process.key);
        let what = format!("{} process", process.role);
        let mut wake = wake;
        // A refused `sleep` argument raises its error in the chunk at once: the chunk may
        // catch it and go on, so the slice goes on in the same turn.
        let ended: Result<Option<Duration>, String> = loop {
            let Some(resumed) = self.resume_lua(&process, &mut coroutine, &what, wake) else {
                break Err("the Lua sandbox could not be made".into());
            };
            let Resumed { slice, emits, logs, .. } = resumed;
            for message in &logs {
                info!("{name} {what}: {message}");
            }
            for (event, vars) in emits {
                self.emit(&event, vars);
            }
            match slice {
                Slice::Sleep(asked) => match sleep_duration(&asked) {
                    Ok(duration) => break Ok(Some(duration)),
                    Err(why) => wake = Wake::Refused(why),
                },
                Slice::Returned => break Ok(None),
                Slice::Failed(why) => break Err(why),
            }
        };
        match ended {
            Ok(Some(duration)) => {
                let step = self.arm(duration, Deadline::LuaStep { id });
                process.step = Some(step);
                process.coroutine = Some(coroutine);
                process.next = Next::Resume(Wake::Slept);
                self.lua.processes.running.insert(id, process);
            }
            Ok(None) => {
                self.process_exited(id, ExitStatus::Code(0));
            }
            Err(why) => {
                warn!("{name} {what}: {why}");
                self.process_exited(id, ExitStatus::Code(1));
            }
        }
    }

    fn resume_lua(&self, process: &LuaProcess, coroutine: &mut Coroutine, what: &str, wake: Wake) -> Option<Resumed> {
        let sandbox = self.lua.sandbox.as_ref()?;
        let job = &self.class(process.key.0).job;
        let run = Run {
            job: &job.name,
            instance: &process.key.1,
            what,
            code: "",
            first_line: 0,
            env: &process.env,
        };
        Some(sandbox.resume(coroutine, &run, &DaemonView { daemon: self }, wake))
    }
}

/// A `sleep` argument as a duration: seconds, or the job language's durations.
fn sleep_duration(asked: &SleepFor) -> Result<Duration, String> {
    let duration = match asked {
        SleepFor::Seconds(seconds) if seconds.is_finite() && *seconds >= 0.0 => {
            Duration::try_from_secs_f64(*seconds).map_err(|_| format!("sleep: {seconds} seconds is too long"))?
        }
        SleepFor::Seconds(seconds) => return Err(format!("sleep: {seconds} is not a number of seconds")),
        SleepFor::Text(text) => match crate::syntax::values::duration_or_seconds(text.trim()) {
            Some(seconds) => Duration::from_millis(seconds.millis),
            None => {
                return Err(format!(
                    "sleep: `{text}` is not a duration (a number with a unit: ms, s, m, h, d, w)"
                ));
            }
        },
    };
    if duration > LONGEST_SLEEP {
        return Err("sleep: longer than a year; use a timer".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_pids_and_wrap_within_their_range() {
        // Linux's PID_MAX_LIMIT.
        assert!(!is_lua_id(1 << 22));
        let mut processes = LuaProcesses::default();
        let first = processes.allocate();
        assert_eq!(first, FIRST_ID);
        processes.next_id = i32::MAX;
        assert_eq!(processes.allocate(), i32::MAX);
        assert!(is_lua_id(processes.allocate()));
    }

    #[test]
    fn signals_that_end_a_process_end_a_coroutine() {
        for signal in [
            libc::SIGTERM,
            libc::SIGKILL,
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGQUIT,
        ] {
            assert!(ends_process(signal), "{signal}");
        }
        for signal in [0, libc::SIGCONT, libc::SIGCHLD, libc::SIGSTOP, libc::SIGWINCH] {
            assert!(!ends_process(signal), "{signal}");
        }
    }

    #[test]
    fn sleep_takes_seconds_and_durations() {
        assert_eq!(sleep_duration(&SleepFor::Seconds(1.5)), Ok(Duration::from_millis(1500)));
        assert_eq!(
            sleep_duration(&SleepFor::Text("1m30s".into())),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(sleep_duration(&SleepFor::Text("2".into())), Ok(Duration::from_secs(2)));
        assert_eq!(sleep_duration(&SleepFor::Seconds(0.0)), Ok(Duration::ZERO));
        assert!(sleep_duration(&SleepFor::Seconds(-1.0)).is_err());
        assert!(sleep_duration(&SleepFor::Seconds(f64::NAN)).is_err());
        assert!(
            sleep_duration(&SleepFor::Text("soon".into()))
                .unwrap_err()
                .contains("`soon`")
        );
        assert!(sleep_duration(&SleepFor::Text("400d".into())).is_err());
    }
}
