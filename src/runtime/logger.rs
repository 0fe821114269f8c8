//! The daemon's own log: one line per message, prefixed `uprise: `, on stderr in user mode
//! and in containers, and in the kernel log (`/dev/kmsg`) when uprise is a machine's PID 1.
//! Priorities follow Upstart's names: debug, info, message, warn, error, fatal.

use std::io::Write;
use std::sync::OnceLock;

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
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            // One write per line: the kernel takes each write as one record.
            let line = format!("<{priority}>uprise: {}\n", record.args());
            let _ = (&*kmsg).write_all(line.as_bytes());
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "uprise: {}", record.args());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;
static KMSG: OnceLock<std::fs::File> = OnceLock::new();

/// Sends the log to the kernel log from now on (a machine's PID 1).
pub fn use_kernel_log() {
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = KMSG.set(file);
    }
}

/// Installs the logger; `debug` lowers the priority to debug.
pub fn init(debug: bool) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
}

/// Upstart's priority names to `log` levels.
pub fn parse_priority(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "debug" => LevelFilter::Debug,
        "info" => LevelFilter::Info,
        "message" => LevelFilter::Info,
        "warn" => LevelFilter::Warn,
        "error" => LevelFilter::Error,
        "fatal" => LevelFilter::Off,
        _ => return None,
    })
}

pub fn priority_name(level: LevelFilter) -> &'static str {
    match level.to_level() {
        Some(Level::Debug | Level::Trace) => "debug",
        Some(Level::Info) => "info",
        Some(Level::Warn) => "warn",
        Some(Level::Error) => "error",
        None => "fatal",
    }
}
