//! A process's role in its instance, the runtime's own name for what a process is for: one
//! of the run's stages (the machine's [`Stage`]), or a process a request starts beside them
//! (`reload`, `stop`, a custom `action NAME`). It keys an instance's processes, the pid
//! table and the re-exec snapshot.
//!
//! The job language names processes with its own closed enum (`syntax::ast::ProcessKind`);
//! the runtime maps it to stages once, when it installs a job ([`stages_of`]), and back
//! only to look a stage's command up ([`command_for`]).

use std::fmt;
use std::rc::Rc;

use crate::machine::{Processes, Stage};
use crate::model::Job;
use crate::syntax::ast::{Command, ProcessKind};

/// What a process of an instance is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A stage of the run: `pre-start`, `main`, `post-start`, `pre-stop`, `post-stop`.
    Stage(Stage),
    /// `reload exec|script`, run by `uprisectl reload`.
    Reload,
    /// `stop exec|script`, run instead of the kill signal.
    Stop,
    /// `action NAME exec|script`, run by `uprisectl action`.
    Action(Rc<str>),
}

impl Role {
    /// The main process's role.
    pub const MAIN: Role = Role::Stage(Stage::Main);

    /// The stage, when the role is one.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Role::Stage(stage) => Some(*stage),
            Role::Reload | Role::Stop | Role::Action(_) => None,
        }
    }

    /// Whether this is the main process's role.
    pub fn is_main(&self) -> bool {
        *self == Role::MAIN
    }

    /// The role read back from [`Role`]'s `Display` (the snapshot's name for it).
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "reload" => Some(Role::Reload),
            "stop" => Some(Role::Stop),
            _ => match name.strip_prefix("action ") {
                Some(action) if !action.is_empty() => Some(Role::Action(Rc::from(action))),
                _ => Stage::from_keyword(name).map(Role::Stage),
            },
        }
    }
}

/// `main`, `pre-start`, …, `reload`, `stop`, `action NAME`: the name in messages, in
/// `status -v`, in `PROCESS=` and in the snapshot.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Stage(stage) => f.write_str(stage.keyword()),
            Role::Reload => f.write_str("reload"),
            Role::Stop => f.write_str("stop"),
            Role::Action(name) => write!(f, "action {name}"),
        }
    }
}

/// The stage of a process the job language names.
pub fn stage_of(kind: ProcessKind) -> Stage {
    match kind {
        ProcessKind::PreStart => Stage::PreStart,
        ProcessKind::Main => Stage::Main,
        ProcessKind::PostStart => Stage::PostStart,
        ProcessKind::PreStop => Stage::PreStop,
        ProcessKind::PostStop => Stage::PostStop,
    }
}

fn kind_of(stage: Stage) -> ProcessKind {
    match stage {
        Stage::PreStart => ProcessKind::PreStart,
        Stage::Main => ProcessKind::Main,
        Stage::PostStart => ProcessKind::PostStart,
        Stage::PreStop => ProcessKind::PreStop,
        Stage::PostStop => ProcessKind::PostStop,
    }
}

/// The stages a job defines a process for (computed when the job is installed).
pub fn stages_of(job: &Job) -> Processes {
    job.processes.keys().map(|kind| stage_of(*kind)).collect()
}

/// The timeout of a stage (`pre-start timeout` and friends), if the job sets one.
pub fn stage_timeout(job: &Job, stage: Stage) -> Option<std::time::Duration> {
    let timeout = job.lifecycle.process_timeouts.get(&kind_of(stage))?;
    Some(std::time::Duration::from_millis(timeout.millis))
}

/// The command a role runs, if the job defines one.
pub fn command_for<'a>(job: &'a Job, role: &Role) -> Option<&'a Command> {
    match role {
        Role::Stage(stage) => job.processes.get(&kind_of(*stage)),
        Role::Reload => match &job.lifecycle.reload {
            crate::model::job::Reload::Command { command } => Some(command),
            crate::model::job::Reload::Signal { .. } => None,
        },
        Role::Stop => job.lifecycle.stop_action.as_ref(),
        Role::Action(name) => job.lifecycle.actions.get(&**name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let roles = Stage::ALL.into_iter().map(Role::Stage).chain([
            Role::Reload,
            Role::Stop,
            Role::Action(Rc::from("rotate logs")),
        ]);
        for role in roles {
            assert_eq!(Role::from_name(&role.to_string()), Some(role.clone()), "{role}");
        }
        assert_eq!(Role::from_name("action "), None);
        assert_eq!(Role::from_name("bogus"), None);
    }

    #[test]
    fn stages_and_kinds_map_both_ways() {
        for kind in ProcessKind::ALL {
            assert_eq!(kind_of(stage_of(kind)), kind);
            assert_eq!(stage_of(kind).keyword(), kind.keyword());
        }
    }
}
