//! The offline commands of `uprisectl`: `check` and `next-elapse`. They read files and the
//! clock, never the daemon.

use std::io::Write;
use std::path::PathBuf;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::job::{render_duration, render_temporal};
use crate::model::{Config, ConfigSource, Diagnostic, Job, Pool, Severity};
use crate::syntax::{self, Temporal};
use crate::temporal;

use super::commands::{USAGE_ERROR, help_text};

/// The JSON document printed by `uprisectl check --json` (schema: docs/check.md).
#[derive(Serialize)]
struct CheckReport<'a> {
    version: u32,
    valid: bool,
    files: usize,
    jobs: &'a [Job],
    pools: &'a std::collections::BTreeMap<String, Pool>,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    file: &'a str,
    line: Option<u32>,
    column: Option<u32>,
    message: &'a str,
    help: Option<&'a str>,
}

fn usage_error(program: &str, message: &str) -> i32 {
    eprintln!("{program}: {message}");
    eprintln!("Try '{program} --help' for more information.");
    USAGE_ERROR
}

/// Prints `command`'s help, from the table `--help` is made from.
fn print_help(program: &str, command: &str) -> i32 {
    print!("{}", help_text(program, Some(command)).unwrap_or_default());
    0
}

/// `uprisectl check [--json] [--quiet] FILE|DIR...`. Exit 0 when valid, 1 when not, 2 on a
/// usage error.
pub fn check(program: &str, args: &[String]) -> i32 {
    let mut json = false;
    let mut quiet = false;
    let mut paths = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            "-q" | "--quiet" => quiet = true,
            "-h" | "--help" => return print_help(program, "check"),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return usage_error(program, &format!("check: unknown option: {flag}"));
            }
            path => paths.push(PathBuf::from(path)),
        }
    }
    if paths.is_empty() {
        return usage_error(program, "check: missing FILE or DIR");
    }
    let sources: Vec<ConfigSource> = paths.iter().map(|path| ConfigSource::from_path(path)).collect();
    let config = Config::load(&sources);
    let mut stderr = std::io::stderr().lock();
    for diagnostic in &config.diagnostics {
        if quiet && diagnostic.severity == Severity::Warning {
            continue;
        }
        let _ = write!(stderr, "{}", config.sources.render(diagnostic));
    }
    let valid = config.is_valid();
    if json {
        let report = CheckReport {
            version: 1,
            valid,
            files: config.files_read,
            jobs: &config.jobs,
            pools: &config.pools,
            diagnostics: config
                .diagnostics
                .iter()
                .map(|diagnostic| json_diagnostic(&config, diagnostic))
                .collect(),
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("{program}: check: cannot encode JSON: {error}");
                return 1;
            }
        }
    } else if !quiet {
        println!(
            "{} file{}, {} job{}, {} error{}, {} warning{}",
            config.files_read,
            plural(config.files_read),
            config.jobs.len(),
            plural(config.jobs.len()),
            config.count(Severity::Error),
            plural(config.count(Severity::Error)),
            config.count(Severity::Warning),
            plural(config.count(Severity::Warning)),
        );
    }
    i32::from(!valid)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn json_diagnostic<'a>(config: &Config, diagnostic: &'a Diagnostic) -> JsonDiagnostic<'a> {
    let position = diagnostic
        .span
        .and_then(|span| config.sources.position(&diagnostic.file, span));
    JsonDiagnostic {
        severity: diagnostic.severity,
        file: &diagnostic.file,
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        message: &diagnostic.message,
        help: diagnostic.help.as_deref(),
    }
}

/// Joins command-line words into expression text, quoting words that hold blanks so that
/// `next-elapse every cron "0 3 * * *"` works however the shell split it.
fn join_words(words: &[String]) -> String {
    if let [single] = words {
        return single.clone();
    }
    words
        .iter()
        .map(|word| {
            let needs_quotes = word.contains([' ', '\t']) && !word.contains(['"', '\'']);
            if needs_quotes {
                format!("\"{word}\"")
            } else {
                word.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_instant(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp);
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|error| {
        format!("cannot read time '{text}': {error} (try 2026-11-26T10:00 or 2026-11-26T10:00:00Z)")
    })?;
    civil
        .to_zoned_datetime(zone.clone())
        .map(|zoned| zoned.timestamp())
        .map_err(|error| format!("cannot place '{text}' in the time zone: {error}"))
}

fn format_instant(instant: Timestamp, zone: &TimeZone, from: Timestamp) -> String {
    let zoned = instant.to_zoned_datetime(zone.clone());
    let shown = zoned.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string();
    let ahead = instant.as_millisecond().saturating_sub(from.as_millisecond()).max(0) as u64;
    let ahead = render_duration(syntax::Seconds {
        millis: ahead / 1000 * 1000,
    });
    format!("{shown}  (in {ahead})")
}

/// `uprisectl next-elapse [-n N] [--zone ZONE] [--from TIME] EXPRESSION...`
pub fn next_elapse(program: &str, args: &[String]) -> i32 {
    let mut count = 5usize;
    let mut zone_name: Option<String> = None;
    let mut from_text: Option<String> = None;
    let mut words = Vec::new();
    let mut ended = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if ended {
            words.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => ended = true,
            "-n" | "--count" => match iter.next().and_then(|value| value.parse().ok()) {
                Some(value) => count = value,
                None => return usage_error(program, "next-elapse: -n takes a number"),
            },
            "--zone" | "-z" => match iter.next() {
                Some(value) => zone_name = Some(value.clone()),
                None => return usage_error(program, "next-elapse: --zone takes a time zone"),
            },
            "--from" => match iter.next() {
                Some(value) => from_text = Some(value.clone()),
                None => return usage_error(program, "next-elapse: --from takes a time"),
            },
            "-h" | "--help" => return print_help(program, "next-elapse"),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return usage_error(program, &format!("next-elapse: unknown option: {flag}"));
            }
            _ => words.push(arg.clone()),
        }
    }
    if words.is_empty() {
        return usage_error(program, "next-elapse: missing EXPRESSION");
    }
    let text = join_words(&words);
    let zone = match temporal::resolve_zone(Some(zone_name.as_deref().unwrap_or("local")), &TimeZone::UTC) {
        Ok(zone) => zone,
        Err(message) => return usage_error(program, &format!("next-elapse: {message}")),
    };
    let from = match &from_text {
        Some(text) => match parse_instant(text, &zone) {
            Ok(instant) => instant,
            Err(message) => return usage_error(program, &format!("next-elapse: {message}")),
        },
        None => Timestamp::now(),
    };
    let timer = match syntax::parse_temporal(&text) {
        Ok(timer) => timer,
        Err(error) => {
            let mut sources = crate::model::Sources::default();
            sources.insert("<expression>", std::sync::Arc::from(text.as_str()));
            eprint!("{}", sources.render(&Diagnostic::from_parse("<expression>", &error)));
            return 1;
        }
    };
    println!("{}", render_temporal(&timer));
    match &timer {
        Temporal::After { delay, event } => {
            println!("  fires {} after each `{}` event", render_duration(*delay), event.name);
            let at = from
                .checked_add(jiff::SignedDuration::from_millis(delay.millis as i64))
                .unwrap_or(from);
            println!("  {}", format_instant(at, &zone, from));
            return 0;
        }
        Temporal::Every { interval } => {
            let mut at = from;
            for _ in 0..count {
                at = at
                    .checked_add(jiff::SignedDuration::from_millis(interval.millis as i64))
                    .unwrap_or(at);
                println!("  {}", format_instant(at, &zone, from));
            }
            return 0;
        }
        Temporal::Calendar(_) | Temporal::Cron { .. } => {}
    }
    let schedule = match temporal::schedule(&timer, &zone) {
        Ok(Some(schedule)) => schedule,
        Ok(None) => return 0,
        Err(message) => {
            eprintln!("{program}: next-elapse: {message}");
            return 1;
        }
    };
    let shown_zone = if zone_name.is_some() {
        zone.clone()
    } else {
        schedule.zone().cloned().unwrap_or(zone.clone())
    };
    let instants = schedule.next_n(from, count);
    if instants.is_empty() {
        println!("  never fires");
        return 1;
    }
    for instant in instants {
        println!("  {}", format_instant(instant, &shown_zone, from));
    }
    0
}
