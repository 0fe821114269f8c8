//! The daemon's own log: one line per message on stderr (user mode), prefixed `uprise: `.
//! Priorities follow Upstart's names: debug, info, message, warn, error, fatal.

use std::io::Write;

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
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "uprise: {}", record.args());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

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
