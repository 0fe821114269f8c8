//! `log JOB [KEY=VALUE...] [-f] [-n N]`: asks the daemon where the job's log is, then prints
//! it (or its last lines) and, with `-f`, follows it across rotations and truncations.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::proto::{Reply, Request};
use crate::ctl::client::Client;

use super::args::{Parsed, env_pairs};
use super::{Failure, failure, socket_path, usage};

/// `log`: checks the arguments, then prints the log (see `log`).
pub(super) fn run_log(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let Some((job, pairs)) = args.split_first() else {
        return Err(usage("missing job name"));
    };
    let lines = match &parsed.lines {
        None => None,
        Some(count) => Some(
            count
                .parse::<usize>()
                .map_err(|_| usage(format!("invalid number of lines: {count}")))?,
        ),
    };
    let request = Request::LogPath {
        job: job.clone(),
        env: env_pairs(pairs)?,
        instance: None,
    };
    let options = LogOptions {
        lines,
        follow: parsed.follow,
        poll: Duration::from_millis(100),
    };
    log(&socket_path(parsed, env), &request, job, options, out)
}

/// How `log` prints.
#[derive(Clone, Copy)]
struct LogOptions {
    /// Only the last N lines.
    lines: Option<usize>,
    follow: bool,
    /// How often a followed file is looked at.
    poll: Duration,
}

/// `log JOB [KEY=VALUE...]`: asks the daemon where the log is, then reads it.
fn log(socket: &Path, request: &Request, job: &str, options: LogOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let mut path = None;
    let mut client = Client::connect(socket).map_err(failure)?;
    client
        .request(request, |reply| {
            if let Reply::Text { text } = reply {
                path = Some(PathBuf::from(text));
            }
        })
        .map_err(failure)?;
    let path = path.ok_or_else(|| failure("Invalid reply from uprise: no log path"))?;
    print_log(&path, job, options, out)
}

/// Where the last `lines` lines of a file begin (a last line without a newline counts).
fn tail_start(file: &mut File, lines: usize) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    if lines == 0 {
        return Ok(len);
    }
    let mut needed = lines;
    let mut end = len;
    let mut buffer = vec![0u8; 64 * 1024];
    while end > 0 {
        let size = end.min(buffer.len() as u64) as usize;
        let start = end - size as u64;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buffer[..size])?;
        let mut chunk = &buffer[..size];
        // The newline that ends the file ends the last line; it does not start another.
        if end == len && chunk.last() == Some(&b'\n') {
            chunk = &chunk[..size - 1];
        }
        for (at, byte) in chunk.iter().enumerate().rev() {
            if *byte == b'\n' {
                needed -= 1;
                if needed == 0 {
                    return Ok(start + at as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// Why copying to stdout stopped.
enum Copied {
    /// The reader is exhausted.
    Done(u64),
    /// Stdout is gone (a closed pipe): stop quietly.
    Closed,
}

/// Copies `file` from `from` to its end onto `out`, flushed; returns where it ended.
fn copy_from(file: &mut File, from: u64, out: &mut dyn Write) -> Result<Copied, Failure> {
    let read_error = |error: io::Error| failure(format!("Cannot read log: {}", error_text(&error)));
    file.seek(SeekFrom::Start(from)).map_err(read_error)?;
    let mut position = from;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let count = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        if out.write_all(&buffer[..count]).is_err() {
            return Ok(Copied::Closed);
        }
        position += count as u64;
    }
    if out.flush().is_err() {
        return Ok(Copied::Closed);
    }
    Ok(Copied::Done(position))
}

/// An I/O error's text without Rust's ` (os error N)` suffix.
fn error_text(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// Prints a log file (or its last lines); with `follow`, goes on printing what is appended,
/// polling the path: when the file there is replaced (rotation: another inode) the rest of
/// the old one is printed, then the new one from its start; when it shrinks (truncation), it
/// is read again from its start. Returns only when stdout goes away.
fn print_log(path: &Path, job: &str, options: LogOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let open_error = |error: io::Error| failure(format!("Cannot read {}: {}", path.display(), error_text(&error)));
    let mut current: Option<(File, (u64, u64), u64)> = match File::open(path) {
        Ok(mut file) => {
            let meta = file.metadata().map_err(open_error)?;
            let start = match options.lines {
                Some(lines) => tail_start(&mut file, lines).map_err(open_error)?,
                None => 0,
            };
            match copy_from(&mut file, start, out)? {
                Copied::Done(position) => Some((file, (meta.dev(), meta.ino()), position)),
                Copied::Closed => return Ok(()),
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound && options.follow => None,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(failure(format!("No log for {job}"))),
        Err(error) => return Err(open_error(error)),
    };
    if !options.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(options.poll);
        // Looked at first: once another file is at the path, the old one gets no more output,
        // so draining it after this misses nothing.
        let meta = std::fs::metadata(path).ok();
        if let Some((file, _, position)) = current.as_mut() {
            match copy_from(file, *position, out)? {
                Copied::Done(end) => *position = end,
                Copied::Closed => return Ok(()),
            }
        }
        let Some(meta) = meta else {
            // Rotated away and not created again yet.
            continue;
        };
        let identity = (meta.dev(), meta.ino());
        if current.as_ref().is_none_or(|(_, known, _)| *known != identity) {
            let Ok(file) = File::open(path) else { continue };
            // The file opened, which may be newer still than the one looked at.
            let identity = file.metadata().map_or(identity, |meta| (meta.dev(), meta.ino()));
            current = Some((file, identity, 0));
        } else if let Some((_, _, position)) = current.as_mut()
            && meta.len() < *position
        {
            *position = 0;
        } else {
            continue;
        }
        if let Some((file, _, position)) = current.as_mut() {
            match copy_from(file, *position, out)? {
                Copied::Done(end) => *position = end,
                Copied::Closed => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::tests::{DONE, Daemon, run, text_reply};

    #[test]
    fn log_prints_the_file_or_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let path_text = path.to_str().unwrap();

        let daemon = Daemon::start(&[&text_reply(path_text), DONE]);
        let outcome = run(&["log", "web", "A=1", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "one\ntwo\nthree\n"));
        assert_eq!(
            daemon.request(),
            Request::LogPath {
                job: "web".into(),
                env: vec!["A=1".into()],
                instance: None
            }
        );
        for (args, expected) in [
            (&["-n", "1"][..], "three\n"),
            (&["-n2"], "two\nthree\n"),
            (&["--lines=9"], "one\ntwo\nthree\n"),
            (&["--lines", "0"], ""),
        ] {
            let daemon = Daemon::start(&[&text_reply(path_text), DONE]);
            let mut line = vec!["log", "web", "--socket", &daemon.path];
            line.extend_from_slice(args);
            let outcome = run(&line, &[]);
            assert_eq!((outcome.code, outcome.out.as_str()), (0, expected), "{args:?}");
            daemon.request();
        }

        let missing = dir.path().join("nothing.log");
        let daemon = Daemon::start(&[&text_reply(missing.to_str().unwrap()), DONE]);
        let outcome = run(&["log", "web", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.err.as_str()), (1, "uprisectl: No log for web\n"));
        daemon.request();

        assert_eq!(run(&["log", "web", "-n", "x", "--socket", "/nonexistent"], &[]).code, 2);
        assert_eq!(run(&["log", "web", "-n"], &[]).code, 2);
        assert_eq!(run(&["log", "web", "B", "--socket", "/nonexistent"], &[]).code, 2);
        assert_eq!(run(&["log", "--socket", "/nonexistent"], &[]).code, 2);
        // -n is still --no-wait for start.
        assert_eq!(run(&["start", "-n", "--socket", "/nonexistent", "web"], &[]).code, 1);
    }

    #[test]
    fn tail_start_counts_lines_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let tail = |text: &[u8], lines: usize| {
            std::fs::write(&path, text).unwrap();
            let mut file = File::open(&path).unwrap();
            let start = tail_start(&mut file, lines).unwrap() as usize;
            String::from_utf8(text[start..].to_vec()).unwrap()
        };
        assert_eq!(tail(b"a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), "b\nc");
        assert_eq!(tail(b"a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail(b"\n\n", 1), "\n");
        assert_eq!(tail(b"", 3), "");
        assert_eq!(tail(b"a\n", 0), "");
        // Longer than one read.
        let mut big = Vec::new();
        for n in 0..30_000 {
            big.extend_from_slice(format!("line {n}\n").as_bytes());
        }
        assert_eq!(tail(&big, 3), "line 29997\nline 29998\nline 29999\n");
        assert_eq!(tail(&big, 30_000).len(), big.len());
    }

    /// A stdout shared with the test thread; it closes once `until` has been written.
    struct Watched {
        seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        until: &'static str,
    }

    impl Write for Watched {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut seen = self.seen.lock().unwrap();
            if String::from_utf8_lossy(&seen).contains(self.until) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            seen.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            if String::from_utf8_lossy(&self.seen.lock().unwrap()).contains(self.until) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            Ok(())
        }
    }

    #[test]
    fn log_follow_sees_appends_rotation_and_truncation() {
        use std::sync::{Arc, Mutex};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        std::fs::write(&path, "old-1\nold-2\n").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut out = Watched {
            seen: seen.clone(),
            until: "end\n",
        };
        let follower_path = path.clone();
        let follower = std::thread::spawn(move || {
            let options = LogOptions {
                lines: Some(1),
                follow: true,
                poll: Duration::from_millis(5),
            };
            print_log(&follower_path, "svc", options, &mut out).map_err(|failure| failure.message)
        });
        let wait_for = |text: &str| {
            let start = std::time::Instant::now();
            while !String::from_utf8_lossy(&seen.lock().unwrap()).contains(text) {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "waiting for {text:?}, have {:?}",
                    String::from_utf8_lossy(&seen.lock().unwrap())
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        let append = |text: &str| {
            let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        wait_for("old-2\n");
        append("appended\n");
        wait_for("appended\n");
        // Rotation: the old file keeps its last line; a new one starts.
        append("last-of-old\n");
        std::fs::rename(&path, dir.path().join("svc.log.1")).unwrap();
        std::fs::write(&path, "new-1\n").unwrap();
        wait_for("new-1\n");
        // Truncation (the file is shorter than what was read): read again from the start.
        std::fs::write(&path, "t\n").unwrap();
        wait_for("new-1\nt\n");
        append("end\n");
        assert_eq!(follower.join().unwrap(), Ok(()));
        assert_eq!(
            String::from_utf8_lossy(&seen.lock().unwrap()),
            "old-2\nappended\nlast-of-old\nnew-1\nt\nend\n"
        );
    }

    #[test]
    fn log_follow_waits_for_a_missing_file() {
        use std::sync::{Arc, Mutex};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.log");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut out = Watched {
            seen: seen.clone(),
            until: "here\n",
        };
        let follower_path = path.clone();
        let follower = std::thread::spawn(move || {
            let options = LogOptions {
                lines: None,
                follow: true,
                poll: Duration::from_millis(5),
            };
            print_log(&follower_path, "late", options, &mut out).map_err(|failure| failure.message)
        });
        std::fs::write(&path, "here\n").unwrap();
        // The writer closes once it has seen the line; one more line makes the follower write.
        let start = std::time::Instant::now();
        while !follower.is_finished() {
            assert!(start.elapsed() < Duration::from_secs(20), "the follower did not end");
            let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(b"more\n").unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(follower.join().unwrap(), Ok(()));
        assert!(String::from_utf8_lossy(&seen.lock().unwrap()).starts_with("here\n"));
    }
}
