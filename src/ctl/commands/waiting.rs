//! What a blocking command waits for, on a terminal: once `emit`, `start`, `stop` or
//! `restart` has waited a second, and while it goes on waiting, one line on stderr says what
//! for, kept current about once a second and erased when the command answers:
//! `waiting: event A held by combo (start on A and (B or C)), 3s`.
//!
//! A helper thread asks the daemon on a second connection (the `waiting` request, keyed by
//! the event's name or by the instance, as the command addressed it) and rewrites the line in
//! place (`\r`, the text cut to the terminal's width, then `\x1b[K`). The line is shown only
//! when `run` found stderr to be a terminal and `-q` was not given; never through a pipe, and
//! it never touches stdout or the exit status. It is erased for good before the command's
//! first output on stdout (a status line, `start --now`'s text) and when the command ends,
//! whichever comes first, so stdout's lines are exactly what they are without it. A daemon
//! that does not know the request (an older one), or any failure on the second connection,
//! ends the line quietly.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::control::proto::{Reply, Request};
use crate::ctl::client::Client;

use super::Failure;

/// Whether a blocking command may show its line: `run` sets it when stderr is a terminal.
/// `run_with` alone never shows one, so what goes to a test's buffers is unchanged.
pub(super) static SHOW: AtomicBool = AtomicBool::new(false);

/// How long a command waits before its line first shows, and between two updates.
const TICK: Duration = Duration::from_secs(1);

/// Whether the line is on the screen, and whether it may be drawn again.
#[derive(Default)]
struct Screen {
    shown: bool,
    over: bool,
}

type Shared = Arc<Mutex<Screen>>;

/// Writes `bytes` to fd 2 at once. Not through `io::stderr()`: `run` holds its lock for the
/// whole command, so the helper thread would wait for it until the command is over.
fn to_stderr(bytes: &[u8]) {
    // SAFETY: fd 2 stays open for the life of the process; `ManuallyDrop` never closes it.
    let mut err = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(2) });
    let _ = err.write_all(bytes);
}

/// Erases the line, if shown, and keeps it from being drawn again.
fn end(screen: &Shared) {
    let mut screen = screen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if screen.shown {
        to_stderr(b"\r\x1b[K");
        screen.shown = false;
    }
    screen.over = true;
}

/// The `waiting` request for what `request` waits for: `None` for a request that does not
/// wait.
pub(super) fn waiting_request(request: &Request) -> Option<Request> {
    let instance = |job: &String, env: &Vec<String>, instance: &Option<String>| Request::Waiting {
        job: Some(job.clone()),
        env: env.clone(),
        instance: instance.clone(),
        event: None,
    };
    match request {
        Request::Start {
            job,
            env,
            instance: named,
            wait: true,
            ..
        }
        | Request::Stop {
            job,
            env,
            instance: named,
            wait: true,
        }
        | Request::Restart {
            job,
            env,
            instance: named,
            wait: true,
        } => Some(instance(job, env, named)),
        Request::Emit { event, wait: true, .. } => Some(Request::Waiting {
            job: None,
            env: Vec::new(),
            instance: None,
            event: Some(event.clone()),
        }),
        _ => None,
    }
}

/// Runs `work` (the request's round trip, printing to the `&mut dyn Write` it is given), with
/// the waiting line on stderr while it blocks, when `request` waits and the line may show.
pub(super) fn while_waiting(
    socket: &Path,
    request: &Request,
    quiet: bool,
    out: &mut dyn Write,
    work: impl FnOnce(&mut dyn Write) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let ask = waiting_request(request).filter(|_| !quiet && SHOW.load(Ordering::Relaxed));
    let Some(ask) = ask else {
        return work(out);
    };
    let screen: Shared = Arc::default();
    let (stop, stopped) = mpsc::channel::<()>();
    let socket = socket.to_path_buf();
    let drawn = Arc::clone(&screen);
    // Not joined: a request under way on the second connection must not hold the answer up.
    // Once `end` has run, the thread draws nothing more.
    let spawned = std::thread::Builder::new()
        .name("waiting".into())
        .spawn(move || keep_current(&socket, &ask, &drawn, &stopped));
    if spawned.is_err() {
        return work(out);
    }
    let mut guarded = Guarded {
        out,
        screen: &screen,
        first: true,
    };
    let result = work(&mut guarded);
    drop(stop);
    end(&screen);
    result
}

/// stdout, with the line erased (for good) before the first byte written to it.
struct Guarded<'a> {
    out: &'a mut dyn Write,
    screen: &'a Shared,
    first: bool,
}

impl Write for Guarded<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.first {
            self.first = false;
            end(self.screen);
        }
        self.out.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The helper thread: after each tick, asks the daemon and redraws the line, until `stopped`
/// says the command is done (or the daemon cannot tell).
fn keep_current(socket: &PathBuf, ask: &Request, screen: &Shared, stopped: &mpsc::Receiver<()>) {
    let began = Instant::now();
    let mut client: Option<Client> = None;
    let mut next = began + TICK;
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        next += TICK;
        if client.is_none() {
            match Client::connect(socket) {
                Ok(connected) => client = Some(connected),
                Err(_) => return end(screen),
            }
        }
        let Some(connection) = client.as_mut() else { return };
        let mut lines = Vec::new();
        let answer = connection.request(ask, |reply| {
            if let Reply::Text { text } = reply {
                lines.push(text.clone());
            }
        });
        if answer.is_err() {
            return end(screen);
        }
        let text = (!lines.is_empty()).then(|| status_text(&lines, began.elapsed(), terminal_width()));
        let mut screen = screen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if screen.over {
            return;
        }
        match text {
            Some(text) => {
                to_stderr(format!("\r{text}\x1b[K").as_bytes());
                screen.shown = true;
            }
            None if screen.shown => {
                to_stderr(b"\r\x1b[K");
                screen.shown = false;
            }
            None => {}
        }
    }
}

/// The terminal's width in columns (stderr's), 80 when it cannot be told.
fn terminal_width() -> usize {
    // SAFETY: `winsize` is plain integers, for which all zeroes is a value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it is given, and nothing else.
    let read = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) };
    if read == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// The line for the daemon's `lines` after `waited`: `waiting: LINE; LINE, 3s`, with control
/// characters shown as `?`, and the lines cut (with `…`) so that the whole stays within
/// `width - 1` columns, the time always shown; the last column is left free, so that the
/// terminal never wraps the line and `\r` comes back to its start.
pub(super) fn status_text(lines: &[String], waited: Duration, width: usize) -> String {
    let head = "waiting: ";
    let tail = format!(", {}s", waited.as_secs());
    let what: String = lines
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let room = width
        .saturating_sub(1)
        .saturating_sub(head.chars().count() + tail.chars().count())
        .max(1);
    let what = if what.chars().count() > room {
        let mut cut: String = what.chars().take(room - 1).collect();
        cut.push('…');
        cut
    } else {
        what
    };
    format!("{head}{what}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_joins_the_answer_and_says_how_long() {
        let lines = ["event A held by combo (start on A and (B or C))".to_string()];
        assert_eq!(
            status_text(&lines, Duration::from_millis(3_400), 80),
            "waiting: event A held by combo (start on A and (B or C)), 3s"
        );
        let two = [
            "web start/starting: waiting for its starting event to finish".to_string(),
            "event starting held by db start/pre-start, process 7".to_string(),
        ];
        assert_eq!(
            status_text(&two, Duration::from_secs(12), 200),
            "waiting: web start/starting: waiting for its starting event to finish; event starting held by db \
             start/pre-start, process 7, 12s"
        );
    }

    #[test]
    fn the_line_fits_the_terminal_and_shows_no_control_character() {
        let lines = ["x".repeat(100)];
        let text = status_text(&lines, Duration::from_secs(61), 40);
        assert_eq!(text.chars().count(), 39);
        assert!(text.starts_with("waiting: xxx"), "{text}");
        assert!(text.ends_with("x…, 61s"), "{text}");
        let nasty = ["web\x1b[2J (a\rb\n)".to_string()];
        assert_eq!(status_text(&nasty, Duration::ZERO, 80), "waiting: web?[2J (a?b?), 0s");
        // A terminal too narrow for anything still gets the time and one character.
        assert_eq!(status_text(&lines, Duration::from_secs(5), 4), "waiting: …, 5s");
    }

    #[test]
    fn only_requests_that_wait_are_followed() {
        let start = Request::Start {
            job: "web".into(),
            env: vec!["N=1".into()],
            instance: None,
            wait: true,
            now: false,
        };
        assert_eq!(
            waiting_request(&start),
            Some(Request::Waiting {
                job: Some("web".into()),
                env: vec!["N=1".into()],
                instance: None,
                event: None,
            })
        );
        let restart = Request::Restart {
            job: "web".into(),
            env: Vec::new(),
            instance: Some("2".into()),
            wait: true,
        };
        assert!(matches!(
            waiting_request(&restart),
            Some(Request::Waiting { instance: Some(name), .. }) if name == "2"
        ));
        let emit = Request::Emit {
            event: "A".into(),
            env: vec!["SECRET=x".into()],
            wait: true,
        };
        // An event is named, never its variables.
        assert_eq!(
            waiting_request(&emit),
            Some(Request::Waiting {
                job: None,
                env: Vec::new(),
                instance: None,
                event: Some("A".into()),
            })
        );
        let no_wait = Request::Stop {
            job: "web".into(),
            env: Vec::new(),
            instance: None,
            wait: false,
        };
        assert_eq!(waiting_request(&no_wait), None);
        assert_eq!(waiting_request(&Request::List), None);
    }

    #[test]
    fn the_line_is_erased_before_the_first_output() {
        let screen: Shared = Arc::default();
        screen.lock().unwrap().shown = false;
        let mut buffer = Vec::new();
        let mut guarded = Guarded {
            out: &mut buffer,
            screen: &screen,
            first: true,
        };
        writeln!(guarded, "web start/running").unwrap();
        assert!(screen.lock().unwrap().over);
        assert_eq!(buffer, b"web start/running\n");
    }
}
