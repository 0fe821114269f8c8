//! `plot [--since boot|all|DURATION] [--output FILE]`: an SVG timeline of the state changes
//! the daemon remembers, one row per instance, a bar per state; and `blame [--since …]`:
//! instances by the time they took from `starting` to `running`. Both read the daemon's
//! history (`Request::History`) and draw it here.
//!
//! **The boot.** The default window is the boot: from the daemon's start to the moment the
//! last instance of the startup chain reached `running` (or `waiting`, for a task that
//! ended). The chain is the instances started by the startup event, by a job event of an
//! instance in the chain (`started db`), or by any other event while the chain was still
//! coming up (an event a job of the chain emitted, such as `runlevel`). Starts asked for by
//! a client or a timer are not part of it. When no start came from the startup event, the
//! window is the whole history.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;

use crate::control::proto::{Reply, Request, TransitionRecord};
use crate::ctl::client::Client;

use super::args::{Parsed, no_more};
use super::{Failure, failure, socket_path, usage};

/// What `--since` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Since {
    /// The boot (the default).
    Boot,
    /// Everything the daemon remembers.
    All,
    /// The last this many milliseconds.
    Last(u64),
}

fn since(parsed: &Parsed) -> Result<Since, Failure> {
    match parsed.since.as_deref() {
        None | Some("boot" | "BOOT") => Ok(Since::Boot),
        Some("all") => Ok(Since::All),
        Some(text) => crate::syntax::values::duration_or_seconds(text)
            .map(|duration| Since::Last(duration.millis))
            .ok_or_else(|| {
                usage(format!(
                    "--since takes boot, all or a duration such as 10m, not `{text}`"
                ))
            }),
    }
}

/// The daemon's history: its changes, and its clock.
struct History {
    boot_wall_ms: i64,
    now_ms: u64,
    changes: Vec<TransitionRecord>,
}

fn fetch(parsed: &Parsed, env: &dyn Fn(&str) -> Option<String>) -> Result<History, Failure> {
    let mut history = History {
        boot_wall_ms: 0,
        now_ms: 0,
        changes: Vec::new(),
    };
    let mut client = Client::connect(socket_path(parsed, env)).map_err(failure)?;
    client
        .request(&Request::History { since_ms: None }, |reply| {
            if let Reply::History {
                boot_wall_ms,
                now_ms,
                changes,
            } = reply
            {
                history.boot_wall_ms = *boot_wall_ms;
                history.now_ms = *now_ms;
                history.changes.extend_from_slice(changes);
            }
        })
        .map_err(failure)?;
    Ok(history)
}

/// The command line's window (`--since`), the history, and the window's bounds.
fn windowed(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(History, Since, u64, u64), Failure> {
    no_more(args)?;
    let since = since(parsed)?;
    let history = fetch(parsed, env)?;
    let (from, to) = window(&history.changes, history.now_ms, since);
    Ok((history, since, from, to))
}

/// The window to show, in milliseconds of the daemon's life: `(from, to)`.
fn window(changes: &[TransitionRecord], now_ms: u64, since: Since) -> (u64, u64) {
    match since {
        Since::All => (changes.first().map_or(0, |change| change.at_ms), now_ms),
        Since::Last(millis) => (now_ms.saturating_sub(millis), now_ms),
        Since::Boot => match boot_end(changes) {
            Some(end) => (0, end),
            None => (changes.first().map_or(0, |change| change.at_ms), now_ms),
        },
    }
}

fn who(change: &TransitionRecord) -> String {
    crate::control::proto::instance_name(&change.job, &change.instance)
}

/// When the startup chain finished coming up (see the module's doc), if anything started
/// from the startup event.
fn boot_end(changes: &[TransitionRecord]) -> Option<u64> {
    let mut chain: HashSet<String> = HashSet::new();
    let mut jobs_in_chain: HashSet<&str> = HashSet::new();
    // Chain instances still coming up, and when the last one got there.
    let mut coming_up: HashSet<String> = HashSet::new();
    let mut end = None;
    for change in changes {
        let name = who(change);
        if change.state == "starting" {
            let cause = change.cause.as_deref().unwrap_or("asked");
            let job_event = cause
                .split_once(' ')
                .filter(|(event, _)| matches!(*event, "starting" | "started" | "stopping" | "stopped"))
                .map(|(_, job)| job);
            let joins = match (cause, job_event) {
                ("startup", _) => true,
                (_, Some(job)) => jobs_in_chain.contains(job),
                ("asked", _) => false,
                (timer, _) if timer.starts_with("timer ") => false,
                // Any other event, while the chain is still coming up.
                _ => !coming_up.is_empty(),
            };
            if joins {
                chain.insert(name.clone());
                jobs_in_chain.insert(&change.job);
                coming_up.insert(name);
            }
            continue;
        }
        if chain.contains(&name) && matches!(change.state.as_str(), "running" | "waiting") && coming_up.remove(&name) {
            end = Some(change.at_ms);
        }
    }
    end
}

/// One row of the plot: an instance, what started it, and its bars `(from, to, state)`.
struct Row {
    name: String,
    cause: Option<String>,
    bars: Vec<(u64, u64, String)>,
    /// Whether the last bar is still open (its state not left yet).
    open: bool,
}

impl Row {
    /// The instance entered `state` at `at`: the open bar ends, and a new one opens unless
    /// the state is `waiting`.
    fn enter(&mut self, at: u64, state: &str) {
        if self.open
            && let Some(last) = self.bars.last_mut()
        {
            last.1 = at;
        }
        self.open = state != "waiting";
        if self.open {
            self.bars.push((at, at, state.to_string()));
        }
    }
}

/// The rows in the window, in the order the instances first appear; bars still open end
/// at `to`.
fn rows(changes: &[TransitionRecord], from: u64, to: u64) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // The state each instance was in when the window opened, and what started it.
    let mut before: HashMap<String, (String, Option<String>)> = HashMap::new();
    for change in changes {
        let name = who(change);
        if change.at_ms < from {
            let cause = if change.state == "starting" {
                change.cause.clone()
            } else {
                before.get(&name).and_then(|(_, cause)| cause.clone())
            };
            before.insert(name, (change.state.clone(), cause));
            continue;
        }
        if change.at_ms > to {
            break;
        }
        let at = *index.entry(name.clone()).or_insert_with(|| {
            let (state, cause) = before.remove(&name).unwrap_or(("waiting".into(), None));
            let mut row = Row {
                name: name.clone(),
                cause,
                bars: Vec::new(),
                open: false,
            };
            row.enter(from, &state);
            rows.push(row);
            rows.len() - 1
        });
        let row = &mut rows[at];
        if change.state == "starting" && change.cause.is_some() {
            row.cause = change.cause.clone();
        }
        row.enter(change.at_ms, &change.state);
    }
    for row in &mut rows {
        if row.open
            && let Some(last) = row.bars.last_mut()
        {
            last.1 = to.max(last.0);
        }
    }
    rows
}

/// A state's colour.
fn colour(state: &str) -> &'static str {
    match state {
        "queued" => "#e8c547",
        "starting" => "#f4a259",
        "pre-start" => "#e07a5f",
        "spawned" => "#c8553d",
        "post-start" => "#d68c45",
        "running" => "#8cc084",
        "pre-stop" => "#9aa5b1",
        "stopping" => "#7b8794",
        "killed" => "#b23a48",
        "post-stop" => "#616e7c",
        _ => "#cccccc",
    }
}

const LEGEND: [&str; 10] = [
    "queued",
    "starting",
    "pre-start",
    "spawned",
    "post-start",
    "running",
    "pre-stop",
    "stopping",
    "killed",
    "post-stop",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1.234s`, `15ms`, `2m03s`.
fn seconds(millis: u64) -> String {
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.3}s", millis as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", millis / 60_000, millis / 1000 % 60)
    }
}

/// A round tick spacing (1, 2 or 5 times a power of ten) that gives at most about ten
/// ticks over `span` milliseconds.
fn tick_step(span: u64) -> u64 {
    let target = (span / 10).max(1);
    let mut magnitude: u64 = 1;
    loop {
        for factor in [1, 2, 5] {
            let step = magnitude.saturating_mul(factor);
            if step >= target {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

const ROW: u64 = 22;
const LABEL: u64 = 340;
const TOP: u64 = 70;

/// The SVG: a title, a time axis, a row per instance (its bars, its name and what started
/// it), and a legend.
fn render(title: &str, rows: &[Row], from: u64, to: u64) -> String {
    let span = (to - from).max(1);
    let plot_width: u64 = 1000;
    let width = LABEL + plot_width + 40;
    let height = TOP + rows.len() as u64 * ROW + 70;
    let x = |at: u64| LABEL as f64 + (at.saturating_sub(from)) as f64 * plot_width as f64 / span as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text class=\"title\" x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    // The time axis: a tick and its time every step, a faint line down the rows.
    let step = tick_step(span);
    let mut tick = from.div_ceil(step) * step;
    let bottom = TOP + rows.len() as u64 * ROW;
    while tick <= to {
        let at = x(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{}\" x2=\"{at:.1}\" y2=\"{bottom}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{at:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#52606d\">{}</text>",
            TOP - 6,
            TOP - 10,
            seconds(tick)
        );
        tick += step;
    }
    for (index, row) in rows.iter().enumerate() {
        let y = TOP + index as u64 * ROW;
        let _ = writeln!(svg, "<g class=\"row\" data-instance=\"{}\">", escape(&row.name));
        if index % 2 == 1 {
            let _ = writeln!(
                svg,
                "<rect x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{ROW}\" fill=\"#f5f7fa\"/>"
            );
        }
        let label = match &row.cause {
            Some(cause) => format!("{} ← {cause}", row.name),
            None => row.name.clone(),
        };
        let _ = writeln!(
            svg,
            "<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LABEL - 8,
            y + 15,
            escape(&label)
        );
        for (start, end, state) in &row.bars {
            let (left, right) = (x(*start), x(*end));
            let _ = writeln!(
                svg,
                "<rect class=\"bar\" data-state=\"{state}\" x=\"{left:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" \
                 fill=\"{}\"><title>{} {state} {}–{}</title></rect>",
                y + 4,
                (right - left).max(1.0),
                ROW - 8,
                colour(state),
                escape(&row.name),
                seconds(*start),
                seconds(*end)
            );
        }
        let _ = writeln!(svg, "</g>");
    }
    // The legend.
    let y = bottom + 30;
    let mut at = 10u64;
    for state in LEGEND {
        let _ = writeln!(
            svg,
            "<rect x=\"{at}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{state}</text>",
            y - 11,
            colour(state),
            at + 18,
            y
        );
        at += 30 + state.len() as u64 * 7;
    }
    svg.push_str("</svg>\n");
    svg
}

/// `plot`: draws the window as SVG, to `--output FILE` or stdout.
pub(super) fn run_plot(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (history, since, from, end) = windowed(args, parsed, env)?;
    let mut rows = rows(&history.changes, from, end);
    // Drawn a little past the boot's end, so that its last bars show.
    let to = if since == Since::Boot {
        end + (end - from) / 30 + 1
    } else {
        end
    };
    for row in rows.iter_mut().filter(|row| row.open) {
        if let Some(bar) = row.bars.last_mut() {
            bar.1 = to;
        }
    }
    let started = jiff::Timestamp::from_millisecond(history.boot_wall_ms + from as i64)
        .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let what = match since {
        Since::Boot => "boot",
        Since::All => "history",
        Since::Last(_) => "last",
    };
    let title = format!(
        "uprise {what}: {} instances, {} from {started}",
        rows.len(),
        seconds(to - from)
    );
    let svg = render(&title, &rows, from, to);
    match &parsed.output {
        Some(path) => std::fs::write(path, svg).map_err(|error| failure(format!("{path}: {error}")))?,
        None => {
            let _ = out.write_all(svg.as_bytes());
        }
    }
    Ok(())
}

/// Each instance's time from `starting` to `running` in the window (its last such run),
/// longest first.
fn blame(changes: &[TransitionRecord], from: u64, to: u64) -> Vec<(u64, String)> {
    let mut starting: HashMap<String, u64> = HashMap::new();
    let mut took: HashMap<String, u64> = HashMap::new();
    for change in changes.iter().filter(|change| (from..=to).contains(&change.at_ms)) {
        let name = who(change);
        match change.state.as_str() {
            "starting" => {
                starting.insert(name, change.at_ms);
            }
            "running" => {
                if let Some(began) = starting.remove(&name) {
                    took.insert(name, change.at_ms - began);
                }
            }
            _ => {}
        }
    }
    let mut list: Vec<(u64, String)> = took.into_iter().map(|(name, millis)| (millis, name)).collect();
    list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    list
}

/// `blame`: one line per instance, `  1.234s web`, longest first.
pub(super) fn run_blame(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (history, _, from, to) = windowed(args, parsed, env)?;
    for (millis, name) in blame(&history.changes, from, to) {
        let _ = writeln!(out, "{:>10} {name}", seconds(millis));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at_ms: u64, job: &str, state: &str, cause: Option<&str>) -> TransitionRecord {
        TransitionRecord {
            at_ms,
            job: job.into(),
            instance: String::new(),
            goal: "start".into(),
            state: state.into(),
            cause: cause.map(str::to_string),
        }
    }

    fn boot() -> Vec<TransitionRecord> {
        vec![
            change(0, "db", "starting", Some("startup")),
            change(10, "db", "spawned", None),
            change(30, "db", "running", None),
            change(31, "web", "starting", Some("started db")),
            change(40, "web", "pre-start", None),
            change(90, "web", "running", None),
            change(95, "cron", "starting", Some("asked")),
            change(120, "cron", "running", None),
            change(150, "cron", "stopping", None),
            change(150, "cron", "waiting", None),
            change(5000, "late", "starting", Some("net-up")),
            change(5100, "late", "running", None),
        ]
    }

    #[test]
    fn the_boot_ends_when_the_startup_chain_is_up() {
        let changes = boot();
        // `cron` was asked for and `late` came after the chain was up: neither counts.
        assert_eq!(boot_end(&changes), Some(90));
        assert_eq!(window(&changes, 9000, Since::Boot), (0, 90));
        assert_eq!(window(&changes, 9000, Since::Last(1000)), (8000, 9000));
        assert_eq!(window(&changes[6..], 9000, Since::Boot), (95, 9000));
    }

    #[test]
    fn rows_have_a_bar_per_state_and_the_cause() {
        let changes = boot();
        let rows = rows(&changes, 0, 90);
        let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        assert_eq!(rows[1].cause.as_deref(), Some("started db"));
        assert_eq!(
            rows[1].bars,
            [
                (31, 40, "starting".to_string()),
                (40, 90, "pre-start".to_string()),
                (90, 90, "running".to_string())
            ]
        );
        let svg = render("t", &rows, 0, 90);
        assert_eq!(svg.matches("class=\"row\"").count(), 2);
        assert_eq!(svg.matches("class=\"bar\"").count(), 6);
        assert!(svg.contains(">web ← started db</text>"));
        // A window that opens mid-run starts each row in the state it was in.
        let rows = rows_from(&changes, 35);
        assert_eq!(rows[0].name, "web");
        assert_eq!(rows[0].bars[0], (35, 40, "starting".to_string()));
    }

    fn rows_from(changes: &[TransitionRecord], from: u64) -> Vec<Row> {
        rows(changes, from, 200)
    }

    #[test]
    fn a_state_left_in_the_same_millisecond_ends_its_bar() {
        let rows = rows(&boot(), 0, 4000);
        let cron = rows.iter().find(|row| row.name == "cron").unwrap();
        assert!(!cron.open);
        assert_eq!(cron.bars.last(), Some(&(150, 150, "stopping".to_string())));
    }

    #[test]
    fn blame_is_longest_first() {
        let changes = boot();
        assert_eq!(
            blame(&changes, 0, 10_000),
            [
                (100, "late".to_string()),
                (59, "web".to_string()),
                (30, "db".to_string()),
                (25, "cron".to_string())
            ]
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(90), 10);
        assert_eq!(tick_step(1000), 100);
        assert_eq!(tick_step(2500), 500);
        assert_eq!(tick_step(7), 1);
    }
}
