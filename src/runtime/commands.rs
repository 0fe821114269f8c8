//! The daemon side of the environment commands (`set-env`, `get-env`, `list-env`,
//! `unset-env`, `reset-env`), of `show-config` and `check-config` (static views of the
//! loaded jobs), and of `log` (where an instance's log file is).
//!
//! The environment commands edit the global job environment (the table every instance
//! starts from) or, when a job is named, one live instance's table, which its later
//! processes get. Unlike Upstart's PID 1, which refused to edit its table, uprise lets the
//! daemon's owner (and root) do so in system mode too.

use std::collections::HashSet;

use crate::machine::environ;
use crate::model::Job;
use crate::model::job::{render_expr, render_temporal};
use crate::syntax::ast::{EventArg, EventExpr, EventMatch};

use super::daemon::Daemon;
use super::jobs::ClassId;

/// Events the daemon emits on its own: `check-config` never reports them. Any `NAME/failed`
/// is built in too.
pub const BUILTIN_EVENTS: [&str; 9] = [
    "startup",
    "starting",
    "started",
    "stopping",
    "stopped",
    "runlevel",
    "control-alt-delete",
    "power-status-changed",
    "keyboard-request",
];

/// The events about a job, whose first value (or `JOB=`) names it.
const JOB_EVENTS: [&str; 4] = ["starting", "started", "stopping", "stopped"];

fn display(job: &str, instance: &str) -> String {
    if instance.is_empty() {
        job.to_string()
    } else {
        format!("{job} ({instance})")
    }
}

/// `VAR=VALUE`, or `VAR` for `VAR=`: the name and value.
fn parse_assignment(var: &str) -> Result<(&str, &str), String> {
    let (name, value) = var.split_once('=').unwrap_or((var, ""));
    if name.is_empty() {
        return Err(format!("Env must be VAR or VAR=VALUE: {var}"));
    }
    Ok((name, value))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') {
        return Err(format!("Invalid variable name: {name}"));
    }
    Ok(())
}

fn remove(env: &mut Vec<String>, name: &str) {
    env.retain(|entry| environ::key_of(entry) != name);
}

impl Daemon {
    /// The instance a job-local environment command addresses.
    fn env_instance(&self, job: &str, instance: Option<&str>) -> Result<(ClassId, String), String> {
        let class_id = self.lookup(job)?;
        let name = instance.unwrap_or_default().to_string();
        if !self.class(class_id).instances.contains_key(&name) {
            return Err(format!("Unknown instance: {}", display(job, &name)));
        }
        Ok((class_id, name))
    }

    /// The table an environment command reads: the global one, or an instance's.
    fn env_table(&self, job: Option<&str>, instance: Option<&str>) -> Result<Vec<String>, String> {
        let Some(job) = job else {
            return Ok(self.global_env.to_vec());
        };
        let (class_id, name) = self.env_instance(job, instance)?;
        Ok(self.class(class_id).instances[&name].env.to_vec())
    }

    /// Applies `edit` to the table an environment command changes. An instance's pending
    /// start environment (a start that has not reached `starting` yet) is edited too.
    fn edit_env(
        &mut self,
        job: Option<&str>,
        instance: Option<&str>,
        mut edit: impl FnMut(&mut Vec<String>),
    ) -> Result<(), String> {
        let Some(job) = job else {
            edit(std::rc::Rc::make_mut(&mut self.global_env));
            return Ok(());
        };
        let (class_id, name) = self.env_instance(job, instance)?;
        let instance = self
            .classes
            .get_mut(class_id)
            .and_then(|class| class.instances.get_mut(&name))
            .ok_or_else(|| format!("Unknown instance: {}", display(job, &name)))?;
        instance.env.edit(&mut edit);
        if let Some(start_env) = instance.start_env.as_mut() {
            start_env.edit(&mut edit);
        }
        Ok(())
    }

    /// `set-env [-r] VAR[=VALUE]...`: every argument is checked before anything changes.
    pub fn command_set_env(
        &mut self,
        vars: &[String],
        retain: bool,
        job: Option<&str>,
        instance: Option<&str>,
    ) -> Result<(), String> {
        if vars.is_empty() {
            return Err("missing variable name".into());
        }
        let pairs = vars
            .iter()
            .map(|var| parse_assignment(var))
            .collect::<Result<Vec<_>, _>>()?;
        self.edit_env(job, instance, |env| {
            // With `retain`, a variable already set (or set earlier in this request) stays.
            let mut set: HashSet<&str> = if retain {
                env.iter()
                    .filter_map(|entry| entry.split_once('='))
                    .map(|(key, _)| key)
                    .collect()
            } else {
                Default::default()
            };
            let entries: Vec<String> = pairs
                .iter()
                .filter(|(name, _)| !retain || set.insert(name))
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            environ::merge(env, &entries);
        })
    }

    /// `get-env VAR`: its value, or `No such variable: VAR`.
    pub fn command_get_env(&self, name: &str, job: Option<&str>, instance: Option<&str>) -> Result<String, String> {
        check_name(name)?;
        let table = self.env_table(job, instance)?;
        environ::get(&table, name)
            .map(str::to_string)
            .ok_or_else(|| format!("No such variable: {name}"))
    }

    /// `list-env`: the table's `KEY=VALUE` entries, sorted bytewise (as initctl's `strcmp`).
    pub fn command_list_env(&self, job: Option<&str>, instance: Option<&str>) -> Result<Vec<String>, String> {
        let mut entries = self.env_table(job, instance)?;
        entries.sort();
        Ok(entries)
    }

    /// `unset-env VAR...`: all or nothing; an unset variable is `No such variable: VAR`.
    pub fn command_unset_env(
        &mut self,
        names: &[String],
        job: Option<&str>,
        instance: Option<&str>,
    ) -> Result<(), String> {
        if names.is_empty() {
            return Err("missing variable name".into());
        }
        let table = self.env_table(job, instance)?;
        for name in names {
            check_name(name)?;
            if environ::get(&table, name).is_none() {
                return Err(format!("No such variable: {name}"));
            }
        }
        self.edit_env(job, instance, |env| {
            for name in names {
                remove(env, name);
            }
        })
    }

    /// `reset-env`: the global table goes back to what the daemon started with (rebuilt the
    /// same way); an instance's goes back to its job's defaults. Running instances keep their
    /// tables when the global one is reset, as in Upstart.
    pub fn command_reset_env(&mut self, job: Option<&str>, instance: Option<&str>) -> Result<(), String> {
        let Some(job_name) = job else {
            self.global_env = super::initial_environment(self.settings.user_mode).into();
            return Ok(());
        };
        let (class_id, name) = self.env_instance(job_name, instance)?;
        let defaults = self.job_env(class_id);
        if let Some(instance) = self
            .classes
            .get_mut(class_id)
            .and_then(|class| class.instances.get_mut(&name))
        {
            instance.env = defaults;
        }
        Ok(())
    }

    /// The jobs as configured now, sorted by name: a class waiting to be replaced shows its
    /// new definition; a deleted one is left out.
    fn configured_jobs(&self) -> Vec<&Job> {
        let mut jobs: Vec<&Job> = self
            .classes
            .iter()
            .map(|(_, class)| class)
            .filter(|class| !class.deleted)
            .map(|class| class.replacement.as_deref().unwrap_or(&class.job))
            .collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        jobs
    }

    /// `show-config [-e] [JOB]`: one text block per job.
    pub fn command_show_config(&self, job: Option<&str>, enumerate: bool) -> Result<Vec<String>, String> {
        let jobs = self.configured_jobs();
        let selected: Vec<&Job> = match job {
            Some(name) => vec![
                *jobs
                    .iter()
                    .find(|job| job.name == name)
                    .ok_or_else(|| format!("Unknown job: {name}"))?,
            ],
            None => jobs,
        };
        Ok(selected.into_iter().map(|job| show_job(job, enumerate)).collect())
    }

    /// `check-config [-i EVENTS] [-w] [JOB]`: one text block per job with findings.
    pub fn command_check_config(
        &self,
        job: Option<&str>,
        ignore: &[String],
        warn: bool,
    ) -> Result<Vec<String>, String> {
        let jobs = self.configured_jobs();
        if let Some(name) = job
            && !jobs.iter().any(|job| job.name == name)
        {
            return Err(format!("Unknown job: {name}"));
        }
        let known = Known::new(&jobs, ignore);
        Ok(jobs
            .iter()
            .filter(|candidate| job.is_none_or(|name| candidate.name == name))
            .filter_map(|job| check_job(job, &known, warn))
            .collect())
    }

    /// `log JOB [KEY=VALUE...]`: the path of the instance's log file (it may not exist).
    pub fn command_log_path(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<String, String> {
        if let Some(bad) = env.iter().find(|entry| !entry.contains('=')) {
            return Err(format!("Env must be KEY=VALUE pairs: {bad}"));
        }
        let class_id = self.lookup(job)?;
        let name = self.instance_name(class_id, env, instance)?;
        let job_name = &self.class(class_id).job.name;
        let path = self.settings.logdir.join(super::output::log_name(job_name, &name));
        Ok(path.to_string_lossy().into_owned())
    }
}

// ------------------------------------------------------------------ show-config

/// Upstart's `show-config` block of one job: its name, then `  emits X`, `  start on EXPR`
/// and `  stop on EXPR` lines; with `enumerate`, one `  start on NAME (job: J, env: E)` line
/// per event of the expressions instead.
pub fn show_job(job: &Job, enumerate: bool) -> String {
    let mut lines = vec![job.name.clone()];
    for emits in &job.lifecycle.emits {
        lines.push(format!("  emits {emits}"));
    }
    for (keyword, expr) in [("start on", &job.start_on), ("stop on", &job.stop_on)] {
        let Some(expr) = expr else { continue };
        if enumerate {
            let mut leaves = Vec::new();
            enumerate_leaves(expr, &mut leaves);
            for leaf in leaves {
                lines.push(format!("  {keyword} {leaf}"));
            }
        } else {
            lines.push(format!("  {keyword} {}", render_expr(expr)));
        }
    }
    lines.join("\n")
}

fn render_arg(arg: &EventArg) -> String {
    match arg {
        EventArg::Positional { value } => value.clone(),
        EventArg::Equal { key, value } => format!("{key}={value}"),
        EventArg::NotEqual { key, value } => format!("{key}!={value}"),
    }
}

/// The job an event about a job names (its first value, or `JOB=`), and the index of that
/// argument.
fn job_reference(event: &EventMatch) -> Option<(usize, &str)> {
    if !JOB_EVENTS.contains(&event.name.as_str()) {
        return None;
    }
    match event.args.first() {
        Some(EventArg::Positional { value }) => return Some((0, value)),
        Some(EventArg::Equal { key, value }) if key == "JOB" => return Some((0, value)),
        _ => {}
    }
    event.args.iter().enumerate().find_map(|(at, arg)| match arg {
        EventArg::Equal { key, value } if key == "JOB" => Some((at, value.as_str())),
        _ => None,
    })
}

/// `NAME (job:[ JOB], env:[ ARG]...)`, Upstart's enumerated form of one event.
fn enumerate_event(event: &EventMatch) -> String {
    let reference = job_reference(event);
    let mut out = format!("{} (job:", event.name);
    if let Some((_, job)) = reference {
        out.push(' ');
        out.push_str(job);
    }
    out.push_str(", env:");
    for (at, arg) in event.args.iter().enumerate() {
        if reference.is_some_and(|(skip, _)| skip == at) {
            continue;
        }
        out.push(' ');
        out.push_str(&render_arg(arg));
    }
    out.push(')');
    out
}

/// The operands of an expression in order: events (also the one of `DURATION after EVENT`)
/// in their enumerated form; other timers as written, with an empty job and env.
fn enumerate_leaves(expr: &EventExpr, out: &mut Vec<String>) {
    match expr {
        EventExpr::And { left, right } | EventExpr::Or { left, right } => {
            enumerate_leaves(left, out);
            enumerate_leaves(right, out);
        }
        EventExpr::Event(event) => out.push(enumerate_event(event)),
        EventExpr::Temporal { timer, .. } => match timer {
            crate::syntax::ast::Temporal::After { event, .. } => out.push(enumerate_event(event)),
            other => out.push(format!("{} (job:, env:)", render_temporal(other))),
        },
    }
}

// ------------------------------------------------------------------ check-config

/// What `check-config` checks against: the jobs, what they emit, what is ignored.
pub struct Known<'a> {
    jobs: HashSet<&'a str>,
    emits: Vec<&'a str>,
    ignore: Vec<String>,
}

impl<'a> Known<'a> {
    pub fn new(jobs: &[&'a Job], ignore: &[String]) -> Known<'a> {
        Known {
            jobs: jobs.iter().map(|job| job.name.as_str()).collect(),
            emits: jobs
                .iter()
                .flat_map(|job| job.lifecycle.emits.iter().map(String::as_str))
                .collect(),
            ignore: ignore.to_vec(),
        }
    }

    fn event_known(&self, name: &str) -> bool {
        BUILTIN_EVENTS.contains(&name)
            || name.ends_with("/failed")
            || self.ignore.iter().any(|ignored| ignored == name)
            || self.emits.iter().any(|pattern| environ::glob_match(pattern, name))
    }

    /// What is wrong with one event of an expression.
    fn findings(&self, event: &EventMatch) -> Vec<String> {
        let mut out = Vec::new();
        if !self.event_known(&event.name) {
            out.push(format!("unknown event {}", event.name));
        }
        if let Some((_, job)) = job_reference(event) {
            let literal = !job.contains(['*', '?', '[', '$']);
            if literal && !self.jobs.contains(job) {
                out.push(format!("unknown job {job}"));
            }
        }
        out
    }

    /// Whether `expr` can become true, and what stands in its way: `and` needs both sides,
    /// `or` either. Findings in an `or` branch are dropped when the other side can fire,
    /// unless `warn` asks for every unknown job and event.
    fn check(&self, expr: &EventExpr, warn: bool) -> (bool, Vec<String>) {
        match expr {
            EventExpr::And { left, right } => {
                let (left_ok, mut findings) = self.check(left, warn);
                let (right_ok, more) = self.check(right, warn);
                findings.extend(more);
                (left_ok && right_ok, findings)
            }
            EventExpr::Or { left, right } => {
                let (left_ok, mut findings) = self.check(left, warn);
                let (right_ok, more) = self.check(right, warn);
                let ok = left_ok || right_ok;
                findings.extend(more);
                if ok && !warn {
                    findings.clear();
                }
                (ok, findings)
            }
            EventExpr::Event(event) => {
                let findings = self.findings(event);
                (findings.is_empty(), findings)
            }
            EventExpr::Temporal { timer, .. } => match timer {
                crate::syntax::ast::Temporal::After { event, .. } => {
                    let findings = self.findings(event);
                    (findings.is_empty(), findings)
                }
                _ => (true, Vec::new()),
            },
        }
    }
}

/// Upstart's `check-config` block of one job (`JOB`, then `  start on: unknown job X` and
/// `  stop on: unknown event Y` lines), or `None` when both conditions can be satisfied.
pub fn check_job(job: &Job, known: &Known<'_>, warn: bool) -> Option<String> {
    let mut lines = vec![job.name.clone()];
    for (keyword, expr) in [("start on", &job.start_on), ("stop on", &job.stop_on)] {
        let Some(expr) = expr else { continue };
        let (_, findings) = known.check(expr, warn);
        let mut seen = HashSet::new();
        for finding in findings {
            if seen.insert(finding.clone()) {
                lines.push(format!("  {keyword}: {finding}"));
            }
        }
    }
    (lines.len() > 1).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, ConfigSource};

    fn jobs(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Job>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(format!("{name}.conf")), text).unwrap();
        }
        let config = Config::load(&[ConfigSource::Dir(dir.path().to_path_buf())]);
        let mut jobs = config.jobs;
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        (dir, jobs)
    }

    #[test]
    fn show_config_renders_upstart_blocks() {
        let (_dir, jobs) = jobs(&[
            (
                "a",
                "emits ev-a\nemits x-*\nstart on starting JOB=boo or B x=y\nstop on runlevel [016]\n",
            ),
            ("plain", "exec true\n"),
            ("t", "start on (started db and 5m after net-up) or every 10m\n"),
        ]);
        assert_eq!(
            show_job(&jobs[0], false),
            "a\n  emits ev-a\n  emits x-*\n  start on (starting JOB=boo or B x=y)\n  stop on runlevel [016]"
        );
        assert_eq!(
            show_job(&jobs[0], true),
            "a\n  emits ev-a\n  emits x-*\n  start on starting (job: boo, env:)\n  start on B (job:, env: x=y)\n  stop on runlevel (job:, env: [016])"
        );
        assert_eq!(show_job(&jobs[1], true), "plain");
        assert_eq!(
            show_job(&jobs[2], true),
            "t\n  start on started (job: db, env:)\n  start on net-up (job:, env:)\n  start on every 10m (job:, env:)"
        );
    }

    #[test]
    fn check_config_finds_what_cannot_happen() {
        let (_dir, jobs) = jobs(&[
            ("db", "emits db-ready\nemits net-*\n"),
            (
                "web",
                "start on started grape and db-ready\nstop on peach or stopping db\n",
            ),
            ("either", "start on started grape or net-up\nstop on peach or plum\n"),
            (
                "fine",
                "start on startup and stopped db RESULT=failed and runlevel [2345] and foo/failed\nstop on started web*\n",
            ),
        ]);
        let refs: Vec<&Job> = jobs.iter().collect();
        let known = Known::new(&refs, &[]);
        let by_name = |name: &str| jobs.iter().find(|job| job.name == name).unwrap();
        assert_eq!(
            check_job(by_name("web"), &known, false).as_deref(),
            Some("web\n  start on: unknown job grape")
        );
        assert_eq!(
            check_job(by_name("either"), &known, false).as_deref(),
            Some("either\n  stop on: unknown event peach\n  stop on: unknown event plum")
        );
        assert_eq!(
            check_job(by_name("either"), &known, true).as_deref(),
            Some(
                "either\n  start on: unknown job grape\n  stop on: unknown event peach\n  stop on: unknown event plum"
            )
        );
        assert_eq!(
            check_job(by_name("web"), &known, true).as_deref(),
            Some("web\n  start on: unknown job grape\n  stop on: unknown event peach")
        );
        assert_eq!(check_job(by_name("fine"), &known, true), None);
        let known = Known::new(&refs, &["peach".to_string(), "plum".to_string()]);
        assert_eq!(check_job(by_name("either"), &known, false), None);
    }

    #[test]
    fn assignments_and_names() {
        assert_eq!(parse_assignment("A=b=c"), Ok(("A", "b=c")));
        assert_eq!(parse_assignment("A"), Ok(("A", "")));
        assert!(parse_assignment("=x").is_err());
        assert!(check_name("A=b").is_err());
        assert!(check_name("").is_err());
        let mut env = vec!["A=1".to_string(), "AB=2".to_string()];
        remove(&mut env, "A");
        assert_eq!(env, vec!["AB=2".to_string()]);
    }
}
