//! `uprisectl notify`: readiness and status from a job's own scripts, on the daemon's notify
//! socket (`$NOTIFY_SOCKET`, set for `expect notify` jobs), in the sd_notify protocol: so a
//! service written in shell can say `READY=1` without another tool.
//!
//! The daemon hears a message only from a process of the job (one it started, or a
//! descendant of one): `uprisectl` run from the job's scripts is one. It must still live
//! when the daemon reads the message, so `notify` sends a pipe's end with it and waits until
//! the daemon has closed it (sd_notify's barrier).

use std::io::Write;
use std::os::unix::net::UnixDatagram;

/// Runs `notify ARGS`; returns the exit status.
pub fn notify(program: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let socket = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
    notify_to(program, &socket, args, out, err)
}

fn notify_to(program: &str, socket: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut lines = Vec::new();
    let mut args = args.iter();
    let usage_error = |err: &mut dyn Write, message: String| {
        let _ = writeln!(
            err,
            "{program}: {message}\nTry '{program} notify --help' for more information."
        );
        super::commands::USAGE_ERROR
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                let help = super::commands::help_text(program, Some("notify")).unwrap_or_default();
                let _ = out.write_all(help.as_bytes());
                return 0;
            }
            // It prints nothing but errors anyway.
            "-q" | "--quiet" => {}
            "--ready" => lines.push("READY=1".to_string()),
            "--status" | "--pid" => {
                let Some(value) = args.next() else {
                    return usage_error(err, format!("option '{arg}' needs a value"));
                };
                if arg == "--pid" && value.parse::<u32>().is_err() {
                    return usage_error(err, format!("not a process id: {value}"));
                }
                let key = if arg == "--pid" { "MAINPID" } else { "STATUS" };
                lines.push(format!("{key}={value}"));
            }
            assignment if assignment.contains('=') && !assignment.starts_with('-') => {
                lines.push(assignment.to_string());
            }
            other => return usage_error(err, format!("unexpected argument: {other}")),
        }
    }
    if lines.is_empty() {
        return usage_error(err, "nothing to send".into());
    }
    if lines.iter().any(|line| line.contains('\n')) {
        return usage_error(err, "a value may not hold a newline".into());
    }
    if socket.is_empty() {
        let _ = writeln!(
            err,
            "{program}: NOTIFY_SOCKET is not set (only jobs with `expect notify` get it)"
        );
        return 1;
    }
    let message = lines.join("\n") + "\n";
    match send_and_wait(socket, message.as_bytes()) {
        Ok(()) => 0,
        Err(error) => {
            let _ = writeln!(err, "{program}: cannot send to {socket}: {error}");
            1
        }
    }
}

/// How long `notify` waits for the daemon to have read its message.
const BARRIER_TIMEOUT_MS: u16 = 5000;

/// Sends the message with one end of a pipe attached, and waits until the daemon has closed
/// it, that is, has read the message: the daemon hears a process only while it lives (it
/// looks the sender up in `/proc`), and this one would otherwise be gone first.
fn send_and_wait(socket: &str, message: &[u8]) -> std::io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use std::os::fd::{AsFd, AsRawFd};
    let sender = UnixDatagram::unbound()?;
    let (barrier, held) = nix::unistd::pipe()?;
    let address = UnixAddr::new(socket).map_err(std::io::Error::from)?;
    let fds = [held.as_raw_fd()];
    sendmsg(
        sender.as_raw_fd(),
        &[std::io::IoSlice::new(message)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        Some(&address),
    )
    .map_err(std::io::Error::from)?;
    drop(held);
    // The read end sees its hang-up once the daemon's copy of the write end is closed. (A
    // daemon too old to close it lets the wait run out; the message was sent all the same.)
    let mut fds = [PollFd::new(barrier.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(BARRIER_TIMEOUT_MS));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(socket: &str, args: &[&str]) -> (i32, String) {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = notify_to("uprisectl", socket, &args, &mut out, &mut err);
        (code, String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn sends_one_datagram_with_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let (code, err) = run(
            path.to_str().unwrap(),
            &["--ready", "--status", "warming up", "--pid", "42", "X=1"],
        );
        assert_eq!((code, err.as_str()), (0, ""));
        let mut buffer = [0u8; 256];
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(
            std::str::from_utf8(&buffer[..length]).unwrap(),
            "READY=1\nSTATUS=warming up\nMAINPID=42\nX=1\n"
        );
    }

    #[test]
    fn errors_are_said_and_nothing_is_sent() {
        assert_eq!(run("", &["--ready"]).0, 1);
        assert!(run("", &["--ready"]).1.contains("NOTIFY_SOCKET is not set"));
        assert_eq!(run("/nonexistent", &[]).0, 2);
        assert_eq!(run("/nonexistent", &["--pid", "x"]).0, 2);
        assert_eq!(run("/nonexistent", &["bogus"]).0, 2);
        assert_eq!(run("/nonexistent/notify", &["--ready"]).0, 1);
    }
}
