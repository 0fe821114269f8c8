//! The daemon side of the configuration views: `show-config` and `check-config` (static views
//! of the loaded jobs, as Upstart's), and `log-path` (where an instance's log file is).

use std::collections::HashSet;

use crate::machine::environ;
use crate::model::Job;
use crate::model::job::{render_expr, render_temporal};
use crate::syntax::ast::{EventArg, EventExpr, EventMatch};

use super::daemon::Daemon;

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

impl Daemon {
    /// The jobs as configured now, sorted by name: a class waiting to be replaced shows its
    /// new definition; a deleted one is left out.
    pub(super) fn configured_jobs(&self) -> Vec<&Job> {
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
    pub fn request_show_config(&self, job: Option<&str>, enumerate: bool) -> Result<Vec<String>, String> {
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
    pub fn request_check_config(
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
    pub fn request_log_path(&self, job: &str, env: &[String], instance: Option<&str>) -> Result<String, String> {
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
/// and `  stop on EXPR` lines, then uprise's `  action NAME` lines; with `enumerate`, one `  start on NAME (job: J, env: E)` line
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
    // uprise's own: the job's actions (`uprisectl action JOB NAME`).
    for name in job.lifecycle.actions.keys() {
        lines.push(format!("  action {name}"));
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
}
