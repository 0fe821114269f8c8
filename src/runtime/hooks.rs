//! Lua in the daemon: hooks on a job's events, and Lua gates, run in the sandbox
//! (`lua::sandbox`) with the daemon's budgets. A chunk reads the daemon through
//! [`DaemonView`] (`status`, `metric`, `now`); what it emits is queued as events once it has
//! returned, so a hook is never re-entered by its own events, and nothing it does blocks its
//! job: a hook that fails, runs past its budget or its memory is logged with its job, its
//! hook and its Lua line, and the job goes on.
//!
//! The sandbox is made when a job first needs it; a daemon whose jobs have no Lua never
//! makes one.

use log::{error, info, warn};

use crate::lua::sandbox::{Api, Outcome, Run, Sandbox};
use crate::machine::gate::Figures;
use crate::syntax::ast::{HookEvent, LuaCode, Metric};

use super::daemon::{Daemon, Key};

/// The daemon's Lua: the sandbox once made, and its budgets.
pub struct LuaRoom {
    pub(super) sandbox: Option<Sandbox>,
    /// The sandbox could not be made: said once.
    failed: bool,
    pub budget: u64,
    pub memory: usize,
    /// The running `script lua` processes (`lua_processes.rs`).
    pub processes: super::lua_processes::LuaProcesses,
}

impl Default for LuaRoom {
    fn default() -> Self {
        LuaRoom {
            sandbox: None,
            failed: false,
            budget: crate::lua::sandbox::DEFAULT_BUDGET,
            memory: crate::lua::sandbox::DEFAULT_MEMORY,
            processes: Default::default(),
        }
    }
}

impl LuaRoom {
    /// A job went or changed: its globals and compiled chunks go.
    pub fn forget(&self, job: &str) {
        if let Some(sandbox) = &self.sandbox {
            sandbox.forget(job);
        }
    }

    /// The bytes the Lua state holds (0 before it is made).
    pub fn used_memory(&self) -> usize {
        self.sandbox.as_ref().map_or(0, Sandbox::used_memory)
    }
}

/// The daemon as a chunk sees it.
pub(super) struct DaemonView<'a> {
    pub(super) daemon: &'a Daemon,
}

/// `memory some avg10` and the rest, read by the job language's own rules.
fn parse_metric(name: &str) -> Result<Metric, String> {
    let (file, errors) = crate::syntax::parse_file(&format!("gate {name} < 0\n"));
    let mut found = Vec::new();
    if let (true, Some(crate::syntax::Stanza::Gate(expr))) = (errors.is_empty(), file.stanzas.first().map(|s| &s.node))
    {
        crate::machine::gate::metrics(expr, &mut found);
    }
    match found.as_slice() {
        [metric] => Ok(metric.clone()),
        _ => Err(format!("metric: unknown metric `{name}`")),
    }
}

impl Api for DaemonView<'_> {
    fn status(&self, job: &str, instance: &str) -> Option<(String, String, Option<i32>)> {
        let class = *self.daemon.class_by_name.get(job)?;
        let status = self.daemon.instance_status(&(class, instance.to_string()));
        let main = status
            .processes
            .iter()
            .find(|process| process.kind == "main")
            .and_then(|process| process.pid);
        Some((status.goal, status.state, main))
    }

    fn metric(&self, name: &str) -> Result<f64, String> {
        let metric = parse_metric(name)?;
        // The gates' figures: a file read for a gate this tick is not read again.
        let mut figures = self.daemon.admission.figures.borrow_mut();
        figures.refresh(std::slice::from_ref(&metric), self.daemon.host.now());
        figures.value(&metric)
    }

    fn now(&self) -> f64 {
        self.daemon.host.wall_now().as_millisecond() as f64 / 1000.0
    }
}

impl Daemon {
    /// Sets the budgets (`uprise --lua-budget`, `--lua-memory`).
    pub fn set_lua_budgets(&mut self, budget: u64, memory: usize) {
        self.lua.budget = budget;
        self.lua.memory = memory;
    }

    /// The sandbox, made on first use; why not when it cannot be made (said once).
    pub(super) fn sandbox(&mut self) -> Result<&Sandbox, String> {
        if self.lua.sandbox.is_none() && !self.lua.failed {
            match Sandbox::new(self.lua.budget, self.lua.memory) {
                Ok(sandbox) => self.lua.sandbox = Some(sandbox),
                Err(why) => {
                    error!("cannot make the Lua sandbox: {why}; Lua hooks, gates and processes do not run");
                    self.lua.failed = true;
                }
            }
        }
        self.lua
            .sandbox
            .as_ref()
            .ok_or_else(|| "the Lua sandbox could not be made".to_string())
    }

    /// Runs a chunk of an instance's job: `what` names it in messages (`hook started`,
    /// `gate`). Returns what it returned, or why it failed (logged when `log_errors`: a gate
    /// weighed every second says its error once, where it changes).
    pub(super) fn run_lua(
        &mut self,
        key: &Key,
        what: &str,
        code: &LuaCode,
        env: &[String],
        log_errors: bool,
    ) -> Result<Option<bool>, String> {
        self.sandbox()?;
        let job = self.class(key.0).job.clone();
        let outcome: Outcome = {
            let Some(sandbox) = self.lua.sandbox.as_ref() else {
                return Err("no sandbox".into());
            };
            let run = Run {
                job: &job.name,
                instance: &key.1,
                what,
                code: &code.code,
                first_line: code.line,
                env,
            };
            sandbox.run(&run, &DaemonView { daemon: self })
        };
        let name = self.display(key);
        for message in &outcome.logs {
            info!("{name} {what}: {message}");
        }
        if let Err(why) = &outcome.result
            && log_errors
        {
            warn!("{name} {what}: {why}");
        }
        for (event, vars) in outcome.emits {
            self.emit(&event, vars);
        }
        outcome.result
    }

    /// Runs the job's hooks on `event`, with the event's environment.
    pub(super) fn run_hooks(&mut self, key: &Key, event: HookEvent, env: &[String]) {
        let job = self.class(key.0).job.clone();
        for hook in job.ext.hooks.iter().filter(|hook| hook.events.contains(&event)) {
            let what = format!("hook {}", hook_event_name(event));
            let _ = self.run_lua(key, &what, &hook.lua, env, true);
        }
    }
}

fn hook_event_name(event: HookEvent) -> &'static str {
    match event {
        HookEvent::Starting => "starting",
        HookEvent::Started => "started",
        HookEvent::Stopping => "stopping",
        HookEvent::Stopped => "stopped",
        HookEvent::Failed => "failed",
        HookEvent::Respawn => "respawn",
    }
}
