//! The daemon's own log: one line per message, prefixed `uprise: `, on stderr in user mode
//! and in containers, and in the kernel log (`/dev/kmsg`) when uprise is a machine's PID 1.
//! Priorities follow Upstart's six names, each its own `log` level:
//!
//! | Upstart | `log` | kernel log |
//! |---|---|---|
//! | debug | trace | 7 (debug) |
//! | info | debug | 6 (info) |
//! | message (the default) | info | 5 (notice) |
//! | warn | warn | 4 |
//! | error | error | 3 |
//! | fatal | off | |
//!
//! So in the code `debug!` is Upstart's info (state and goal changes, signals sent, clean
//! exits) and `trace!` is Upstart's debug.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) || !record.target().starts_with("uprise") {
            return;
        }
        if let Some(kmsg) = KMSG.get() {
            let priority = match record.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 5,
                Level::Debug => 6,
                Level::Trace => 7,
            };
            // One write per line: the kernel takes each write as one record.
            let line = format!("<{priority}>uprise: {}\n", record.args());
            let _ = (&*kmsg).write_all(line.as_bytes());
            return;
        }
        // Lines gather in memory and go out in one write per pass of the event loop: a stop
        // of a thousand jobs logs a thousand lines, and a write each was a sixth of its time.
        let mut pending = pending();
        let _ = writeln!(pending, "uprise: {}", record.args());
        if pending.len() >= FLUSH_AT {
            write_out(&mut pending);
        }
    }

    fn flush(&self) {
        write_out(&mut pending());
    }
}

/// The pending lines, even after a panic while they were held (a `Display` that panicked
/// mid-line): the log must outlive a bug, so the lock's poison is ignored.
fn pending() -> std::sync::MutexGuard<'static, Vec<u8>> {
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lines logged to stderr since the last flush.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// A flush before the pass ends once this much is pending.
const FLUSH_AT: usize = 16 * 1024;

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(pending);
        pending.clear();
    }
    if pending.capacity() > FLUSH_AT {
        pending.shrink_to(FLUSH_AT);
    }
}

/// Writes the pending lines out. The event loop calls it after every pass (before replies go
/// to clients); so must anything that ends or replaces the process (exit, re-exec, reboot).
pub fn flush() {
    log::logger().flush();
}

static LOGGER: StderrLogger = StderrLogger;
static KMSG: OnceLock<std::fs::File> = OnceLock::new();

/// Sends the log to the kernel log from now on (a machine's PID 1).
pub fn use_kernel_log() {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = KMSG.set(file);
    }
}

/// The daemon's priority when no option says otherwise: Upstart's `message`.
pub const DEFAULT_PRIORITY: LevelFilter = LevelFilter::Info;

/// Installs the logger at `level` (see [`parse_priority`]).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Upstart's priority names to `log` levels.
pub fn parse_priority(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "debug" => LevelFilter::Trace,
        "info" => LevelFilter::Debug,
        "message" => LevelFilter::Info,
        "warn" => LevelFilter::Warn,
        "error" => LevelFilter::Error,
        "fatal" => LevelFilter::Off,
        _ => return None,
    })
}

/// The level as a state snapshot keeps it: by its `log` name, which means the same in every
/// image (an Upstart name would not: `info` once stood for `message` too).
pub fn snapshot_level(level: LevelFilter) -> String {
    level.as_str().to_ascii_lowercase()
}

/// A level from a snapshot; `fatal`, which no `log` name spells, is the only Upstart name that
/// older images wrote.
pub fn restore_level(name: &str) -> Option<LevelFilter> {
    name.parse()
        .ok()
        .or_else(|| (name == "fatal").then_some(LevelFilter::Off))
}

/// `log` levels to Upstart's priority names.
pub fn priority_name(level: LevelFilter) -> &'static str {
    match level.to_level() {
        Some(Level::Trace) => "debug",
        Some(Level::Debug) => "info",
        Some(Level::Info) => "message",
        Some(Level::Warn) => "warn",
        Some(Level::Error) => "error",
        None => "fatal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_six_upstart_priorities_are_six_levels() {
        let names = ["debug", "info", "message", "warn", "error", "fatal"];
        let levels: Vec<LevelFilter> = names.iter().map(|name| parse_priority(name).unwrap()).collect();
        for pair in levels.windows(2) {
            assert!(pair[0] > pair[1], "{levels:?}");
        }
        for (name, level) in names.iter().zip(&levels) {
            assert_eq!(priority_name(*level), *name);
        }
        assert_eq!(parse_priority("loud"), None);
        assert_eq!(priority_name(DEFAULT_PRIORITY), "message");
    }

    #[test]
    fn a_panic_while_a_line_is_held_does_not_silence_the_log() {
        let _ = std::thread::spawn(|| {
            let _held = pending();
            panic!("a Display that panics mid-line");
        })
        .join();
        assert!(PENDING.is_poisoned());
        pending().extend_from_slice(b"still logging\n");
        assert!(pending().ends_with(b"still logging\n"));
        pending().clear();
    }

    #[test]
    fn snapshots_keep_the_level_across_images() {
        for level in LevelFilter::iter() {
            assert_eq!(restore_level(&snapshot_level(level)), Some(level));
        }
        // What images before the six distinct priorities wrote: `info` was the default.
        assert_eq!(restore_level("info"), Some(DEFAULT_PRIORITY));
        assert_eq!(restore_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(restore_level("fatal"), Some(LevelFilter::Off));
        assert_eq!(restore_level("loud"), None);
    }
}
