//! The event commands: `emit`, and `monitor` with its lines (or the daemon's JSON lines).

use std::io::Write;
use std::path::Path;

use crate::control::proto::{self, Reply, Request};
use crate::ctl::client::Client;

use super::args::{Parsed, env_pairs, no_more};
use super::{Failure, Show, failure, socket_path, usage};

/// `emit EVENT [KEY=VALUE...]`: waits unless `wait` is false; prints the text replies.
pub(super) fn emit(args: &[String], wait: bool) -> Result<(Request, Show), Failure> {
    let Some((event, pairs)) = args.split_first() else {
        return Err(usage("missing event name"));
    };
    let request = Request::Emit {
        event: event.clone(),
        env: env_pairs(pairs)?,
        wait,
    };
    Ok((request, Show::Text))
}

/// `monitor [--json]`: streams the replies itself (see `monitor`).
pub(super) fn run_monitor(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    no_more(args)?;
    monitor(&socket_path(parsed, env), parsed.json, out)
}

/// One monitor line: `event NAME KEY=VALUE...` or `job JOB[ (INSTANCE)] GOAL/STATE`.
fn monitor_line(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Event { name, env } => {
            let mut line = format!("event {name}");
            for entry in env {
                line.push(' ');
                line.push_str(entry);
            }
            Some(line)
        }
        Reply::Change {
            job,
            instance,
            goal,
            state,
        } => Some(format!("job {} {goal}/{state}", proto::instance_name(job, instance))),
        Reply::Admission {
            job,
            instance,
            verdict,
            on,
            waited_ms,
        } => {
            let mut line = format!("admission {} {verdict}", proto::instance_name(job, instance));
            if !on.is_empty() {
                line.push_str(&format!(": {}", on.join(", ")));
            }
            if let Some(waited) = waited_ms {
                line.push_str(&format!(" after {waited} ms"));
            }
            Some(line)
        }
        Reply::Status { .. }
        | Reply::Text { .. }
        | Reply::Done
        | Reply::Error { .. }
        | Reply::Timers { .. }
        | Reply::Pools { .. }
        | Reply::History { .. } => None,
    }
}

/// `monitor`: one line per reply, flushed, until the daemon closes the connection or stdout
/// goes away (both exit 0).
fn monitor(socket: &Path, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let mut client = Client::connect(socket).map_err(failure)?;
    client
        .stream(&Request::Monitor, |reply, text| {
            let line = if json {
                text.to_string()
            } else {
                match monitor_line(reply) {
                    Some(line) => line,
                    None => return true,
                }
            };
            writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
        })
        .map_err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::run_with;
    use crate::ctl::commands::tests::{Daemon, run};
    use std::io;

    #[test]
    fn monitor_prints_one_line_per_reply_until_the_daemon_closes() {
        let event = r#"{"reply":"event","name":"starting","env":["JOB=x","INSTANCE="]}"#;
        let change = r#"{"reply":"change","job":"w","instance":"eth0","goal":"start","state":"running"}"#;
        let bare = r#"{"reply":"event","name":"startup","env":[]}"#;
        let daemon = Daemon::start(&[event, change, bare]);
        let outcome = run(&["monitor", "--socket", &daemon.path], &[]);
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (
                0,
                "event starting JOB=x INSTANCE=\njob w (eth0) start/running\nevent startup\n",
                ""
            )
        );
        assert_eq!(daemon.request(), Request::Monitor);

        let daemon = Daemon::start(&[event, change]);
        let outcome = run(&["monitor", "--json", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, format!("{event}\n{change}\n"));
        daemon.request();
    }

    /// A stdout whose reader goes away after `limit` lines.
    struct ClosedAfter {
        limit: usize,
        written: Vec<u8>,
    }

    impl Write for ClosedAfter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.written.iter().filter(|byte| **byte == b'\n').count() >= self.limit {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.written.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn monitor_ends_quietly_when_stdout_goes_away() {
        let event = r#"{"reply":"event","name":"up","env":[]}"#;
        let daemon = Daemon::start(&[event, event, event]);
        let mut out = ClosedAfter {
            limit: 1,
            written: Vec::new(),
        };
        let mut err = Vec::new();
        let args: Vec<String> = ["monitor", "--socket", &daemon.path]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
        let code = run_with("uprisectl", &args, &mut out, &mut err, &|_| None);
        assert_eq!((code, err.as_slice()), (0, &b""[..]));
        assert_eq!(out.written, b"event up\n");
        daemon.request();
    }
}
