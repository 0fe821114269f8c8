//! `timers [--json] [JOB]`: every armed timer, soonest first, one line each: when it fires
//! next, how long until then, when it last fired and how the job's last run ended, the job,
//! and the operand.

use std::io::Write;

use crate::control::proto::{Reply, Request, TimerStatus};

use super::args::{Parsed, optional_job};
use super::{Failure, gather, print_json};

/// `timers`: asks for the timers and prints them as a table (or JSON).
pub(super) fn run_timers(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let job = optional_job(args)?;
    let timers = gather(parsed, env, &Request::Timers { job }, |reply| match reply {
        Reply::Timers { timers } => Some(timers),
        _ => None,
    })?;
    if parsed.json {
        print_json(out, &timers)?;
    } else {
        let _ = out.write_all(table(&timers).as_bytes());
    }
    Ok(())
}

/// How long until a timer fires, to the second (to the millisecond under a second).
fn left(millis: u64) -> String {
    let rounded = if millis >= 1000 { millis / 1000 * 1000 } else { millis };
    crate::model::job::render_duration(crate::syntax::ast::Seconds { millis: rounded })
}

/// The table: a header, then a line per timer, columns padded to their widest cell.
fn table(timers: &[TimerStatus]) -> String {
    let header = ["NEXT", "LEFT", "LAST", "RESULT", "JOB", "OPERAND"];
    let rows: Vec<[String; 6]> = timers
        .iter()
        .map(|timer| {
            let job = match &timer.instance {
                Some(instance) if !instance.is_empty() => format!("{} ({instance})", timer.job),
                _ => timer.job.clone(),
            };
            let operand = match timer.kind.as_str() {
                "jitter" => format!("{} {} (jitter)", timer.on, timer.operand),
                _ => format!("{} {}", timer.on, timer.operand),
            };
            [
                timer.next.clone(),
                left(timer.left_ms),
                timer.last.clone().unwrap_or_else(|| "-".into()),
                timer.result.clone().unwrap_or_else(|| "-".into()),
                job,
                operand,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut out = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    if timers.is_empty() {
        text = "no timers armed\n".to_string();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_and_says_when_there_is_nothing() {
        assert_eq!(table(&[]), "no timers armed\n");
        let timers = [
            TimerStatus {
                job: "backup".into(),
                on: "start on".into(),
                operand: "every day at 03:00".into(),
                next: "2026-12-08T03:00:00+01:00".into(),
                left_ms: 5 * 3_600_000 + 2 * 60_000 + 999,
                kind: "schedule".into(),
                last: Some("2026-12-07T03:00:00+01:00".into()),
                result: Some("ok".into()),
                ..TimerStatus::default()
            },
            TimerStatus {
                job: "scrub".into(),
                on: "stop on".into(),
                operand: "10s after started db".into(),
                instance: Some("tank".into()),
                next: "2026-12-07T22:00:10+01:00".into(),
                left_ms: 400,
                kind: "after".into(),
                ..TimerStatus::default()
            },
        ];
        assert_eq!(
            table(&timers),
            "NEXT                       LEFT   LAST                       RESULT  JOB           OPERAND\n\
             2026-12-08T03:00:00+01:00  5h2m   2026-12-07T03:00:00+01:00  ok      backup        start on every day at 03:00\n\
             2026-12-07T22:00:10+01:00  400ms  -                          -       scrub (tank)  stop on 10s after started db\n"
        );
    }
}
