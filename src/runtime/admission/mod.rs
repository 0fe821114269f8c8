//! Admission: whether a start from `waiting` may go ahead now, and the queue of those a
//! gate, a resource pool or a required file holds back.
//!
//! The machine asks, as a fact of entering `queued` ([`machine::Admission`]), and decides:
//! a start nothing holds back passes through without entering it (`Effect::Admit`), one
//! that waits joins the queue (`Effect::Queue`), one that can never go fails
//! (`Effect::Refuse`). This room answers the question, performs those effects, and, as the
//! machine's room changes (a holder ends, a gate opens at a tick, a file appears, a gate's
//! wait runs out), enters `queued` again for the starts that may go.
//!
//! - Each queued start has a ticket, a number that grows with each start queued: the queue
//!   (`queue`) is in ticket order, and so is each pool's line (`machine::pools`). A start is
//!   *ready* when its gate admits it and its files are there; only a ready start stands in
//!   its pools' lines, so one that waits for its gate or a file never holds up a pool.
//! - Gates are weighed at a tick of a second while any start waits on one (`gates.rs`),
//!   and not at all otherwise; the figures are read once a tick for all of them.
//! - Required paths are watched with inotify on their nearest existing parent (`files.rs`).
//! - What a start waits for is kept on its instance (`Instance::queued`), and goes with it.
//!
//! Invariants: an instance holds amounts of its pools from its admission until it is back
//! in `waiting` (`enter_waiting` gives them back, whichever way the run ended); a ticket is
//! in `queue` exactly while its instance is in `queued`; a ticket stands in its pools' lines
//! only while it is ready.

mod files;
mod gates;
mod handover;
pub(super) mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use log::{debug, info, warn};

use crate::control::proto::Reply;
use crate::machine::environ::{self, Environment};
use crate::machine::gate::Verdict;
use crate::machine::pools::{Amounts, PoolId, Pools};
use crate::machine::{Admission as Decision, Goal, State};
use crate::model::Job;
use crate::syntax::ast::{Amount, PathKind};

use super::daemon::{Daemon, Key};
use super::deadlines::{Deadline, DeadlineId};
use super::jobs::{ClassId, Instance};

pub use gates::FigureCache;

/// The admission room's state.
#[derive(Default)]
pub struct Admission {
    /// Every queued start, by ticket: the order of arrival.
    queue: BTreeMap<u64, Key>,
    next_ticket: u64,
    /// What running instances hold of each pool, and the lines.
    pub pools: Pools<Key>,
    /// The tickets whose gate is weighed at each tick.
    gated: BTreeSet<u64>,
    /// Tickets to look at again (a gate weighed, a file appeared), and pools with more room
    /// or another first in line: `settle` works them off.
    recheck: Vec<u64>,
    room: Vec<PoolId>,
    /// The figures gates and Lua's `metric()` weigh, read at most once a tick for all of
    /// them (a cell: a Lua chunk reads it through the daemon it only borrows).
    pub figures: std::cell::RefCell<FigureCache>,
    /// The tick, while any gate is weighed.
    tick: Option<DeadlineId>,
    /// The inotify watches of required paths.
    files: files::Watches,
    /// When a holder last gave room back, for the debug line that says how long its next
    /// admission took (`benches/admission.py` reads it).
    released_at: Option<Instant>,
}

/// A queued start: what it waits for. Kept on its instance.
#[derive(Debug)]
pub struct Queued {
    /// 0 until it joins the queue.
    pub ticket: u64,
    /// When it joined the queue.
    pub since: Timestamp,
    /// Its amounts of each pool, expanded.
    pub amounts: Amounts,
    /// Its gate, if it has one the start still waits on.
    pub gate: Option<Box<GateWait>>,
    /// Its required paths, expanded.
    pub requires: Box<[(PathKind, String)]>,
    /// The first required path that is not there (or not of its kind), when one is not.
    pub missing: Option<Box<str>>,
    /// Its pools let it go: it is admitted when it enters `queued` again.
    pub granted: bool,
    /// The operator said `start --now`: it goes past gates and pools.
    pub now: bool,
    /// It can never go: the process named in `stopped` (`pool`, `gate`, `requires`), and why.
    pub refusal: Option<Box<(String, String)>>,
}

/// A start waiting on its gate.
#[derive(Debug)]
pub struct GateWait {
    /// What the condition said when last weighed.
    pub verdict: Verdict,
    /// Since when it has been open without a break (for `gate hold`), by both clocks.
    pub open_since: Option<(Instant, Timestamp)>,
    /// `gate wait`: when the wait runs out.
    pub expires: Option<(DeadlineId, Timestamp)>,
    /// `gate expire start` ran out the wait: the gate no longer matters.
    pub waived: bool,
}

/// Whether a job's starts go through admission at all.
pub fn needs_admission(job: &Job) -> bool {
    has_gate(job) || !job.ext.uses.is_empty() || !job.ext.requires.is_empty()
}

/// Whether a job has a gate: a condition, a Lua gate, or both.
pub fn has_gate(job: &Job) -> bool {
    job.ext.gate.condition.is_some() || job.ext.gate.lua.is_some()
}

/// Whether a path is there as its kind asks.
fn present(kind: PathKind, path: &str) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => match kind {
            PathKind::File => meta.is_file(),
            PathKind::Dir => meta.is_dir(),
            PathKind::Path => true,
        },
        Err(_) => false,
    }
}

fn kind_name(kind: PathKind) -> &'static str {
    match kind {
        PathKind::File => "file",
        PathKind::Dir => "dir",
        PathKind::Path => "path",
    }
}

impl Admission {
    /// Sets where the gates' figures are read (`uprise --procfs DIR`).
    pub fn set_procfs(&mut self, root: PathBuf) {
        self.figures = std::cell::RefCell::new(FigureCache::new(root));
    }

    /// Whether `settle` has admission work to do.
    pub(super) fn has_work(&self) -> bool {
        !self.recheck.is_empty() || !self.room.is_empty()
    }

    /// How many starts are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl Daemon {
    /// The pools the daemon files declare (at each load of the job dirs): a maximum raised
    /// admits at once what fits.
    pub(super) fn declare_pools(&mut self, declared: &BTreeMap<String, crate::model::load::Pool>) {
        self.admission
            .pools
            .declare(declared.iter().map(|(name, pool)| (name.as_str(), pool.max)));
        let every: Vec<PoolId> = self.admission.pools.iter().map(|(id, _)| id).collect();
        self.admission.room.extend(every);
    }

    /// Whether a start may go ahead now: the fact the machine asks on entering `queued`.
    /// A start met for the first time is weighed here, and what it waits for is kept on
    /// its instance for the effect that follows.
    pub(super) fn admission_of(&mut self, key: &Key) -> Decision {
        let Some(class) = self.classes.get(key.0) else {
            return Decision::Now;
        };
        let job = class.job.clone();
        let Some(instance) = self.instance(key) else {
            return Decision::Now;
        };
        if let Some(queued) = instance.queued.as_deref() {
            // Entered again by this room: let go, refused, or (a file went meanwhile) not.
            if queued.refusal.is_some() {
                return Decision::Never;
            }
            if queued.now {
                return Decision::Now;
            }
            if !queued.granted && queued.amounts.is_empty() && queued.ticket != 0 {
                // A start with no pools is let go by its gate and files alone.
                return if self.admissible(key) {
                    Decision::Now
                } else {
                    Decision::Later
                };
            }
            if queued.granted {
                let missing = first_missing(&queued.requires);
                if let Some(path) = missing {
                    if let Some(queued) = self.queued_mut(key) {
                        queued.granted = false;
                        queued.missing = Some(path.into());
                    }
                    return Decision::Later;
                }
                return Decision::Now;
            }
            return Decision::Later;
        }
        let now_asked = instance.rare().admit_now;
        if !needs_admission(&job) && !now_asked {
            return Decision::Now;
        }
        let env = instance.start_env.as_ref().unwrap_or(&instance.env).to_vec();
        let mut queued = Queued {
            ticket: 0,
            since: self.host.wall_now(),
            amounts: Box::new([]),
            gate: None,
            requires: Box::new([]),
            missing: None,
            granted: false,
            now: now_asked,
            refusal: None,
        };
        match self.amounts_of(&job, &env) {
            Ok(amounts) => queued.amounts = amounts,
            Err(why) => queued.refusal = Some(Box::new(("pool".into(), why))),
        }
        match requirements(&job, &env) {
            Ok(requires) => queued.requires = requires.into(),
            Err(why) => queued.refusal = queued.refusal.or(Some(Box::new(("requires".into(), why)))),
        }
        let decision = if queued.refusal.is_some() {
            Decision::Never
        } else if queued.now {
            Decision::Now
        } else {
            queued.missing = first_missing(&queued.requires).map(Into::into);
            if has_gate(&job) {
                let verdict = self.weigh_gate(key, &job);
                let wall = self.host.wall_now();
                let open_since = (verdict == Verdict::Open).then(|| (self.host.now(), wall));
                queued.gate = Some(Box::new(GateWait {
                    verdict,
                    open_since,
                    expires: None,
                    waived: false,
                }));
            }
            let gate_open = queued.gate.as_ref().is_none_or(|gate| self.gate_admits(&job, gate));
            if gate_open && queued.missing.is_none() && self.admission.pools.fits_now(&queued.amounts) {
                Decision::Now
            } else {
                Decision::Later
            }
        };
        if let Some(instance) = self.instance_mut(key) {
            instance.queued = Some(Box::new(queued));
        }
        decision
    }

    fn queued_mut(&mut self, key: &Key) -> Option<&mut Queued> {
        self.instance_mut(key)?.queued.as_deref_mut()
    }

    /// The `uses` amounts, expanded from the start's environment.
    fn amounts_of(&mut self, job: &Job, env: &[String]) -> Result<Amounts, String> {
        let mut amounts = Vec::with_capacity(job.ext.uses.len());
        for (pool, amount) in &job.ext.uses {
            let value = match amount {
                Amount::Fixed(value) => *value,
                Amount::Variable(text) => {
                    let expanded = environ::expand(text, env)
                        .map_err(|error| format!("uses {pool} {text}: unknown variable {}", error.0))?;
                    match expanded.trim().parse::<f64>() {
                        Ok(value) if value.is_finite() && value > 0.0 => value,
                        _ => {
                            return Err(format!("uses {pool} {text}: `{expanded}` is not a positive number"));
                        }
                    }
                }
            };
            let id = self.admission.pools.id(pool);
            if let Some((_, asked)) = self.admission.pools.too_large(&[(id, value)]) {
                let max = self.admission.pools.get(id).max;
                return Err(format!(
                    "uses {pool} {asked}: more than the pool's maximum of {max}; it could never start"
                ));
            }
            amounts.push((id, value));
        }
        Ok(amounts.into())
    }

    /// Whether a gate lets its start go now: open (for its `gate hold` at least), or waived.
    fn gate_admits(&self, job: &Job, gate: &GateWait) -> bool {
        if gate.waived {
            return true;
        }
        let Some((since, _)) = gate.open_since else {
            return false;
        };
        let hold = job
            .ext
            .gate
            .hold
            .map_or(Duration::ZERO, |hold| Duration::from_millis(hold.millis));
        self.host.now().saturating_duration_since(since) >= hold
    }

    /// Whether a queued start is ready: its gate lets it go and its files are there.
    fn admissible(&self, key: &Key) -> bool {
        let Some(instance) = self.instance(key) else {
            return false;
        };
        let Some(queued) = instance.queued.as_deref() else {
            return false;
        };
        let job = &self.class(key.0).job;
        let gate = queued.gate.as_ref().is_none_or(|gate| self.gate_admits(job, gate));
        gate && first_missing(&queued.requires).is_none()
    }

    /// `Effect::Admit`: the start takes its amounts and leaves the queue.
    pub(super) fn admit(&mut self, key: &Key) {
        let Some(queued) = self.instance_mut(key).and_then(|instance| instance.queued.take()) else {
            return;
        };
        self.leave_queue(&queued);
        if let Some(rare) = self.instance_mut(key).and_then(|instance| instance.rare_if_any()) {
            rare.admit_now = false;
        }
        if !queued.amounts.is_empty() {
            self.admission.pools.take(key, &queued.amounts);
            if queued.ticket != 0
                && let Some(released) = self.admission.released_at.take()
            {
                debug!(
                    "{}: admitted {} us after a release, {} still queued",
                    self.display(key),
                    released.elapsed().as_micros(),
                    self.admission.queue.len()
                );
            }
        }
        if queued.now && queued.ticket != 0 {
            info!(
                "{}: admitted past its gate and pools at the operator's request",
                self.display(key)
            );
        }
        // A start that waited is worth a line to the monitors; one that passed straight
        // through is only its state changes.
        if queued.ticket != 0 && !self.monitors.is_empty() {
            let waited = self.host.wall_now().duration_since(queued.since).as_millis().max(0) as u64;
            let verdict = if queued.now { "forced" } else { "admitted" };
            self.tell_admission(key, verdict, Vec::new(), Some(waited));
        }
    }

    /// Tells the monitors of an admission decision.
    fn tell_admission(&mut self, key: &Key, verdict: &str, on: Vec<String>, waited_ms: Option<u64>) {
        let Some(class) = self.classes.get(key.0) else { return };
        let reply = Reply::Admission {
            job: class.job.name.clone(),
            instance: key.1.clone(),
            verdict: verdict.to_string(),
            on,
            waited_ms,
        };
        self.broadcast(reply);
    }

    /// What holds a queued start: `gate`, `pool NAME`, `file PATH`.
    fn held_by(&self, queued: &Queued) -> Vec<String> {
        let mut on = Vec::new();
        if queued.gate.is_some() {
            on.push("gate".to_string());
        }
        for (id, _) in queued.amounts.iter() {
            on.push(format!("pool {}", self.admission.pools.get(*id).name));
        }
        for (_, path) in queued.requires.iter() {
            on.push(format!("file {path}"));
        }
        on
    }

    /// `Effect::Queue`: the start joins the queue (or, let go and found wanting as it went,
    /// takes its place there again).
    pub(super) fn queue(&mut self, key: &Key) {
        let Some(job) = self.classes.get(key.0).map(|class| class.job.clone()) else {
            return;
        };
        let Some(ticket) = self.queued_mut(key).map(|queued| queued.ticket) else {
            return;
        };
        if ticket != 0 {
            // Back from a grant whose file went (the grant took it out of its lines): the
            // room it was given goes to the next.
            let pools: Vec<PoolId> = self
                .queued_mut(key)
                .map(|queued| queued.amounts.iter().map(|(id, _)| *id).collect())
                .unwrap_or_default();
            self.admission.room.extend(pools);
            self.admission.recheck.push(ticket);
            return;
        }
        self.admission.next_ticket += 1;
        let ticket = self.admission.next_ticket;
        self.admission.queue.insert(ticket, key.clone());
        let wait = job.ext.gate.wait.map(|wait| Duration::from_millis(wait.millis));
        let serial = self.instance(key).map_or(0, |instance| instance.serial);
        let expires = match (wait, has_gate(&job)) {
            (Some(wait), true) => {
                let id = self.arm(
                    wait,
                    Deadline::GateExpired {
                        key: key.clone(),
                        serial,
                    },
                );
                let wall = self.host.wall_now() + jiff::SignedDuration::try_from(wait).unwrap_or_default();
                Some((id, wall))
            }
            _ => None,
        };
        let gated = {
            let Some(queued) = self.queued_mut(key) else { return };
            queued.ticket = ticket;
            if let Some(gate) = queued.gate.as_mut() {
                gate.expires = expires;
            }
            queued.gate.is_some()
        };
        if gated {
            self.admission.gated.insert(ticket);
            self.schedule_gate_tick();
        }
        self.admission.recheck.push(ticket);
        if !self.monitors.is_empty() {
            let on = self
                .instance(key)
                .and_then(|instance| instance.queued.as_deref())
                .map(|queued| self.held_by(queued))
                .unwrap_or_default();
            self.tell_admission(key, "queued", on, None);
        }
    }

    /// `Effect::Refuse`: the start fails before it began.
    pub(super) fn refuse_start(&mut self, key: &Key) {
        let Some(queued) = self.instance_mut(key).and_then(|instance| instance.queued.take()) else {
            return;
        };
        self.leave_queue(&queued);
        let (process, why) = queued
            .refusal
            .map_or_else(|| ("gate".into(), "refused".into()), |refusal| *refusal);
        warn!("{}: {why}", self.display(key));
        if !self.monitors.is_empty() {
            self.tell_admission(key, "refused", vec![why.clone()], None);
        }
        if let Some(instance) = self.instance_mut(key) {
            let rare = instance.rare_mut();
            rare.admit_now = false;
            rare.last_exit = Some((Instant::now(), why));
        }
        self.fail(key, &process, None);
    }

    /// Takes a start out of the queue, its lines, its gate's tick and its file watches.
    fn leave_queue(&mut self, queued: &Queued) {
        if queued.ticket == 0 {
            return;
        }
        self.admission.queue.remove(&queued.ticket);
        self.admission.gated.remove(&queued.ticket);
        let changed = self.admission.pools.leave(queued.ticket);
        self.admission.room.extend(changed);
        self.admission.files.forget(queued.ticket);
        if let Some((id, _)) = queued.gate.as_ref().and_then(|gate| gate.expires) {
            self.disarm(id);
        }
    }

    /// An instance is back in `waiting` (or goes): what it holds goes back to its pools, and
    /// a start of it still queued leaves the queue.
    pub(super) fn leave_admission(&mut self, key: &Key) {
        let queued = self.instance_mut(key).and_then(|instance| instance.queued.take());
        if let Some(queued) = queued {
            self.leave_queue(&queued);
        }
        let freed = self.admission.pools.release(key);
        if !freed.is_empty() {
            self.admission.released_at = Some(Instant::now());
        }
        self.admission.room.extend(freed);
    }

    /// `settle`'s share: looks again at the starts something changed for, and admits what
    /// the pools with room let go, until nothing changes.
    pub(super) fn admission_step(&mut self) {
        while let Some(ticket) = self.admission.recheck.pop() {
            self.reconsider(ticket);
        }
        let mut touched = std::mem::take(&mut self.admission.room);
        touched.sort_unstable();
        touched.dedup();
        while let Some((ticket, amounts)) = self.admission.pools.next_admitted(&touched) {
            touched.extend(amounts.iter().map(|(id, _)| *id));
            touched.sort_unstable();
            touched.dedup();
            let Some(key) = self.admission.queue.get(&ticket).cloned() else {
                continue;
            };
            if let Some(queued) = self.queued_mut(&key) {
                queued.granted = true;
            }
            self.change_state(&key, State::Queued);
        }
    }

    /// A queued start whose gate or files may have changed: ready, it stands in its pools'
    /// lines (or, needing none, goes); not ready, it leaves them and waits for what it lacks.
    fn reconsider(&mut self, ticket: u64) {
        let Some(key) = self.admission.queue.get(&ticket).cloned() else {
            return;
        };
        let ready = self.admissible(&key);
        let in_lines = self.admission.pools.is_waiting(ticket);
        let Some(queued) = self.queued_mut(&key) else { return };
        if queued.granted {
            return;
        }
        queued.missing = first_missing(&queued.requires).map(Into::into);
        let missing = queued.missing.clone();
        if ready {
            if queued.amounts.is_empty() {
                self.change_state(&key, State::Queued);
                return;
            }
            if !in_lines {
                let amounts = queued.amounts.clone();
                self.admission.room.extend(amounts.iter().map(|(id, _)| *id));
                self.admission.pools.wait(ticket, amounts);
            }
            self.admission.files.forget(ticket);
            return;
        }
        if in_lines {
            let changed = self.admission.pools.leave(ticket);
            self.admission.room.extend(changed);
        }
        if let Some(path) = missing {
            self.watch_required(ticket, &path);
        }
    }

    /// `uprisectl start --now` of a start already queued: it goes at once.
    pub(super) fn admit_queued_now(&mut self, key: &Key) -> bool {
        let Some(queued) = self.queued_mut(key) else {
            return false;
        };
        queued.now = true;
        self.change_state(key, State::Queued);
        true
    }
}

/// The first required path that is not there as its kind asks.
fn first_missing(requires: &[(PathKind, String)]) -> Option<String> {
    requires
        .iter()
        .find(|(kind, path)| !present(*kind, path))
        .map(|(kind, path)| format!("{} {path}", kind_name(*kind)))
}

/// The `requires` paths, expanded from the start's environment.
fn requirements(job: &Job, env: &[String]) -> Result<Vec<(PathKind, String)>, String> {
    job.ext
        .requires
        .iter()
        .map(|requirement| {
            let path = environ::expand(&requirement.path, env)
                .map_err(|error| format!("requires {}: unknown variable {}", requirement.path, error.0))?;
            if !path.starts_with('/') {
                return Err(format!(
                    "requires {}: `{path}` is not an absolute path",
                    requirement.path
                ));
            }
            Ok((requirement.kind, path))
        })
        .collect()
}

impl Daemon {
    /// A start of an instance whose goal is start already: a `watershed` task that runs
    /// marks one more run, with this start's environment (the last start's wins). Returns
    /// whether it did.
    pub(super) fn watershed_start(&mut self, key: &Key, env: &Environment) -> bool {
        let job = &self.class(key.0).job;
        if !(job.watershed && job.task) {
            return false;
        }
        let Some(instance) = self.instance_mut(key) else {
            return false;
        };
        if matches!(instance.state, State::Waiting | State::Queued) {
            // Not running yet: the start under way is the one asked for.
            return false;
        }
        let first = instance.rare().watershed.is_none();
        instance.rare_mut().watershed = Some(env.to_vec());
        if first {
            info!(
                "{}: started again while it runs; one more run follows (watershed)",
                self.display(key)
            );
        }
        true
    }

    /// A `watershed` task retired with a run marked: the run starts now.
    pub(super) fn watershed_rerun(&mut self, class: ClassId, name: String, env: Vec<String>) {
        if self.shutting_down || self.classes.get(class).is_none_or(|class| class.deleted) {
            return;
        }
        let key = (class, name.clone());
        let Some(class) = self.classes.get_mut(class) else {
            return;
        };
        let instance = class
            .instances
            .get_or_insert_with(name.clone(), || Box::new(Instance::new(name)));
        if instance.goal == Goal::Start {
            return;
        }
        instance.start_env = Some(Environment::from_vec(env));
        self.change_goal(&key, Goal::Start);
    }
}
