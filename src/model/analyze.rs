//! Analysis: what the grammar cannot say. Values that need the world (time zones, cron
//! fields, Lua syntax, pool capacities), combinations of stanzas, and the "not yet enforced"
//! warnings. Collects every finding; never stops at the first.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;

use crate::syntax::ast::*;
use crate::temporal;

use super::diagnostic::{Diagnostic, Sources};
use super::enforcement::{self, Enforcement};
use super::job::{Job, event_matches, temporals};
use super::load::{DEFAULT_POOL_MAX, Origin, Pool};

/// The highest signal number on Linux (SIGRTMAX).
const MAX_SIGNAL: i32 = 64;

/// Checks each stanza of a parsed file on its own.
pub fn check_stanzas(file: &str, ast: &FileAst, pools: &BTreeMap<String, Pool>, sources: &Sources) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let all = ast
        .stanzas
        .iter()
        .chain(ast.blocks.iter().flat_map(|block| block.stanzas.iter()));
    for stanza in all {
        check_stanza(file, stanza, pools, sources, &mut out);
    }
    out
}

fn check_stanza(
    file: &str,
    stanza: &Spanned<Stanza>,
    pools: &BTreeMap<String, Pool>,
    sources: &Sources,
    out: &mut Vec<Diagnostic>,
) {
    let span = Some(stanza.span);
    if let Some(Enforcement::Planned(feature)) = enforcement::of(&stanza.node) {
        out.push(Diagnostic::warning(
            file,
            span,
            format!("{feature} is parsed but not yet enforced"),
        ));
    }
    match &stanza.node {
        Stanza::StartOn(expr) | Stanza::StopOn(expr) => {
            temporals(expr, &mut |timer, timer_span| {
                if let Err(message) = temporal::schedule(timer, &TimeZone::UTC) {
                    out.push(Diagnostic::error(file, Some(timer_span), message));
                }
            });
            event_matches(expr, &mut |event| {
                if event.name == "every" && !event.args.is_empty() {
                    out.push(
                        Diagnostic::warning(file, Some(event.span), "this is an event named `every`, not a schedule")
                            .with_help("a schedule is `every DURATION`, `every day|week|month|mon,fri… [at HH:MM]` or `every cron \"…\"`"),
                    );
                }
                if event.name.contains(['*', '?', '[']) {
                    out.push(
                        Diagnostic::warning(
                            file,
                            Some(event.span),
                            format!("event name `{}` is matched literally, not as a glob", event.name),
                        )
                        .with_help("only values are globs; event names must be equal"),
                    );
                }
            });
        }
        Stanza::Timezone(zone) => {
            if let Err(message) = temporal::resolve_zone(Some(zone), &TimeZone::UTC) {
                out.push(Diagnostic::error(file, span, message));
            }
        }
        Stanza::KillSignal(signal) | Stanza::ReloadSignal(signal) if signal.number > MAX_SIGNAL => {
            out.push(Diagnostic::error(
                file,
                span,
                format!("no such signal: {}", signal.number),
            ));
        }
        Stanza::NormalExit(items) => {
            for item in items {
                if let ExitItem::Status(status) = item
                    && *status > 255
                {
                    out.push(
                        Diagnostic::warning(
                            file,
                            span,
                            format!("exit status {status} can never happen; statuses go to 255"),
                        )
                        .with_help("a status above 255 is what a shell reports for a signal: name the signal instead"),
                    );
                }
            }
        }
        Stanza::Process(kind, command) if command.is_lua() => {
            if let Command::Script { body, .. } = command {
                // The body starts on the line after `script lua`.
                let first_line = sources
                    .position(file, stanza.span)
                    .map_or(1, |position| position.line + 1);
                check_lua(
                    file,
                    body,
                    first_line,
                    &format!("{} script", kind.keyword()),
                    sources,
                    out,
                );
            }
        }
        Stanza::GateLua(code) => check_lua(file, &code.code, code.line, "gate", sources, out),
        Stanza::Hook(_, code) => check_lua(file, &code.code, code.line, "hook", sources, out),
        Stanza::Requires(_, path) | Stanza::PidFile(path) if !is_absolute_or_variable(path) => {
            out.push(Diagnostic::error(
                file,
                span,
                format!("`{path}` is not an absolute path"),
            ));
        }
        Stanza::Env(entry)
            if entry.key.len() + entry.value.as_ref().map_or(0, |value| value.len() + 1) + 1 > MAX_ENV_ENTRY_BYTES =>
        {
            out.push(Diagnostic::error(
                file,
                span,
                format!(
                    "`env {}` is longer than the {MAX_ENV_ENTRY_BYTES} bytes one variable passed to a process may hold",
                    entry.key
                ),
            ));
        }
        Stanza::Chdir(path) | Stanza::Chroot(path) if !is_absolute_or_variable(path) => {
            out.push(Diagnostic::warning(
                file,
                span,
                format!("`{path}` is relative; it resolves against `/`"),
            ));
        }
        Stanza::Uses(pool, Amount::Fixed(amount)) => {
            let (max, declared) = match pools.get(pool) {
                Some(declared) => (declared.max, declared.declared_in.clone()),
                None => (DEFAULT_POOL_MAX, None),
            };
            if *amount > max {
                let origin = match declared {
                    Some(daemon_file) => format!("declared in {daemon_file}"),
                    None => "the default for an undeclared pool".to_string(),
                };
                out.push(
                    Diagnostic::error(file, span, format!("the job uses {amount} of pool `{pool}`, whose maximum is {max} ({origin}): it could never start"))
                        .with_help(format!("declare a larger pool with `resource {pool} {amount}` in the daemon file")),
                );
            }
        }
        _ => {}
    }
}

fn is_absolute_or_variable(path: &str) -> bool {
    path.starts_with('/') || path.starts_with('$')
}

fn check_lua(file: &str, code: &str, first_line: u32, what: &str, sources: &Sources, out: &mut Vec<Diagnostic>) {
    let Err(error) = crate::lua::check_syntax(code, what) else {
        return;
    };
    let file_line = error.line.map(|line| first_line + line.saturating_sub(1));
    let span = file_line.and_then(|line| sources.line_span(file, line));
    out.push(Diagnostic::error(
        file,
        span,
        format!("Lua syntax error in {what}: {}", error.message),
    ));
}

/// Checks a merged job: combinations of stanzas.
pub fn check_job(job: &Job, origins: &[Origin]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at = |keyword: &str| origins.iter().rev().find(|origin| origin.keyword == keyword);
    let mut warn = |keyword: &str, message: String, help: Option<&str>| {
        let (file, span) = match at(keyword) {
            Some(origin) => (origin.file.as_str(), Some(origin.span)),
            None => (job.file.as_str(), None),
        };
        let mut diagnostic = Diagnostic::warning(file, span, format!("job `{}`: {message}", job.name));
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        out.push(diagnostic);
    };
    if job.watershed && !job.task {
        warn(
            "watershed",
            "`watershed` only applies to tasks".into(),
            Some("add `task`"),
        );
    }
    if !job.respawn {
        if at("respawn limit").is_some() {
            warn(
                "respawn limit",
                "`respawn limit` has no effect without `respawn`".into(),
                None,
            );
        }
        if job.lifecycle.respawn_delay.is_some() {
            warn(
                "respawn delay",
                "`respawn delay` has no effect without `respawn`".into(),
                None,
            );
        }
    }
    let gate_options = job.ext.gate.hold.is_some() || job.ext.gate.wait.is_some() || job.ext.gate.expire.is_some();
    if gate_options && job.ext.gate.condition.is_none() && job.ext.gate.lua.is_none() {
        let keyword = ["gate hold", "gate wait", "gate expire"]
            .into_iter()
            .find(|k| at(k).is_some())
            .unwrap_or("gate");
        warn(
            keyword,
            "gate options without a `gate` condition have no effect".into(),
            None,
        );
    }
    let mut timed = false;
    if let Some(expr) = &job.start_on {
        temporals(expr, &mut |_, _| timed = true);
    }
    if !timed {
        if job.ext.catch_up {
            warn(
                "catch up",
                "`catch up` has no effect without a time in `start on`".into(),
                None,
            );
        }
        if job.ext.jitter.is_some() {
            warn(
                "jitter",
                "`jitter` has no effect without a time in `start on`".into(),
                None,
            );
        }
    }
    let lua_main = job.processes.get(&ProcessKind::Main).is_some_and(Command::is_lua);
    if lua_main && (job.expect != Expect::None || job.lifecycle.pid_file.is_some()) {
        let keyword = if job.expect != Expect::None {
            "expect"
        } else {
            "pid file"
        };
        warn(
            keyword,
            format!(
                "`{keyword}` has no effect on a `script lua` main process: it runs in the daemon and is ready when it starts"
            ),
            None,
        );
    }
    if job.expect == Expect::Notify && job.lifecycle.pid_file.is_some() {
        warn(
            "pid file",
            "`pid file` and `expect notify` both decide readiness; the pid file wins".into(),
            None,
        );
    }
    if let Some(expr) = &job.start_on {
        let defined: Vec<&str> = job.env.iter().map(|entry| entry.key.as_str()).collect();
        event_matches(expr, &mut |event| {
            for value in event.args.iter().map(|arg| match arg {
                EventArg::Positional { value } | EventArg::Equal { value, .. } | EventArg::NotEqual { value, .. } => {
                    value
                }
            }) {
                for name in variables_in(value) {
                    if !defined.contains(&name) {
                        warn(
                            "start on",
                            format!("`start on` uses ${name}, which no `env` stanza sets: that value can never match"),
                            Some("`start on` values expand the job's `env` defaults"),
                        );
                    }
                }
            }
        });
    }
    let env_bytes: usize = job
        .env
        .iter()
        .map(|entry| entry.key.len() + entry.value.as_ref().map_or(0, |value| value.len() + 1) + 1)
        .sum();
    if env_bytes > MAX_JOB_ENV_BYTES {
        let (file, span) = match at("env") {
            Some(origin) => (origin.file.as_str(), Some(origin.span)),
            None => (job.file.as_str(), None),
        };
        out.push(
            Diagnostic::error(
                file,
                span,
                format!(
                    "job `{}`: its `env` stanzas hold {env_bytes} bytes, more than the {MAX_JOB_ENV_BYTES} a process may be given",
                    job.name
                ),
            )
            .with_help("execve(2) takes at most a quarter of the stack limit for the arguments and the whole environment"),
        );
    }
    out
}

/// The most bytes one `env` entry may hold (`KEY=VALUE` and its NUL): Linux's limit on one
/// string passed to `execve` (`MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ENV_ENTRY_BYTES: usize = 32 * 4096;

/// The most bytes a job's `env` stanzas may hold together: half of what `execve` takes for
/// the arguments and the environment under the usual 8 MiB stack limit, so that the global
/// environment and the command line have room too.
pub const MAX_JOB_ENV_BYTES: usize = 1 << 20;

/// Checks `start on`/`stop on` references to other jobs (`started db`, `stopping JOB=db`)
/// against the jobs loaded together, as Upstart's `check-config` did.
pub fn check_job_references(jobs: &[Job]) -> Vec<Diagnostic> {
    const JOB_EVENTS: [&str; 4] = ["starting", "started", "stopping", "stopped"];
    let names: std::collections::HashSet<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
    let mut out = Vec::new();
    for job in jobs {
        for (keyword, expr) in [("start on", &job.start_on), ("stop on", &job.stop_on)] {
            let Some(expr) = expr else { continue };
            event_matches(expr, &mut |event| {
                if !JOB_EVENTS.contains(&event.name.as_str()) {
                    return;
                }
                let named = event.args.iter().find_map(|arg| match arg {
                    EventArg::Equal { key, value } if key == "JOB" => Some(value),
                    _ => None,
                });
                let positional = match event.args.first() {
                    Some(EventArg::Positional { value }) => Some(value),
                    _ => None,
                };
                let Some(target) = named.or(positional) else { return };
                let literal = !target.contains(['*', '?', '[', '$']);
                if literal && !names.contains(target.as_str()) {
                    out.push(Diagnostic::warning(
                        &job.file,
                        Some(event.span),
                        format!(
                            "job `{}`: `{keyword}` refers to job `{target}`, which is not defined",
                            job.name
                        ),
                    ));
                }
            });
        }
    }
    out
}

/// Names of the `$VAR` / `${VAR…}` references in a value.
fn variables_in(value: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if len > 0 && !body.starts_with(|c: char| c.is_ascii_digit()) {
            names.push(&body[..len]);
        }
        rest = &body[len..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_variables() {
        assert_eq!(variables_in("$A-${B:-x}/$1 $_C"), vec!["A", "B", "_C"]);
        assert!(variables_in("plain").is_empty());
    }
}
