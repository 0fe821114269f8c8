//! The daemon's options, one table: `uprise --help` prints it, the daemon's parser asks it
//! which options take a value, and `uprise(8)` is made from it. It lives in the library so
//! that `uprisectl man uprise` can print the page without the daemon.

/// `(FORMS, MEANING)`, FORMS as shown (`--confdir DIR`); a word after the last form is the
/// value the option takes.
pub const DAEMON_OPTIONS: &[(&str, &str)] = &[
    ("--user", "run as a session supervisor (not PID 1)"),
    ("--system", "run in system mode without being PID 1 (testing)"),
    (
        "--confdir DIR",
        "read job files from DIR (repeatable; default: ~/.config/uprise, or /etc/init in system mode)",
    ),
    (
        "--logdir DIR",
        "write job output to DIR/JOB.log (default: ~/.cache/uprise, or /var/log/uprise)",
    ),
    (
        "--statedir DIR",
        "keep what must outlive the daemon (when `catch up` jobs last ran) in DIR (default: ~/.local/state/uprise, or /var/lib/uprise)",
    ),
    (
        "--procfs DIR",
        "read the figures gates weigh (loadavg, pressure/, net/dev) under DIR (default: /proc)",
    ),
    (
        "--lua-budget N",
        "VM instructions one run of a Lua hook or gate may execute (default: 1000000)",
    ),
    (
        "--lua-memory SIZE",
        "bytes one run may allocate, with a K or M suffix (default: 1M)",
    ),
    (
        "--socket PATH",
        "the control socket (default: $XDG_RUNTIME_DIR/uprise/control, or /run/uprise/control)",
    ),
    ("--startup-event NAME", "the first event (default: startup)"),
    ("--no-startup-event", "emit no first event"),
    (
        "--metrics-listen ADDR",
        "serve `uprisectl metrics` over HTTP at ADDR, such as 127.0.0.1:9310 (off by default; anyone who can reach ADDR can read the figures)",
    ),
    ("-v, --verbose", "log at info priority (the default is message)"),
    ("--debug", "log at debug priority"),
    ("-q, --quiet", "log at error priority only"),
    ("-h, --help", "print this help"),
    ("--version", "print the version"),
];

/// What `uprise` does, for `--help` and the manual page.
pub const DAEMON_SUMMARY: &str = "Supervises jobs: reads job files in Upstart's language, starts and stops their processes as events arrive, and answers uprisectl on the control socket. Run as PID 1 it is the system's init; otherwise it needs --user (a session supervisor) or --system.";

/// Whether the daemon's option `flag` (`--confdir`) takes a value.
pub fn takes_value(flag: &str) -> bool {
    DAEMON_OPTIONS
        .iter()
        .any(|(spec, _)| crate::ctl::commands::option_value(spec).is_some() && spec.split(' ').next() == Some(flag))
}

/// `uprise --help`.
pub fn daemon_usage_text() -> String {
    let mut text = String::from("Usage: uprise [--user | --system] [OPTION...]\n");
    text.push_str(&wrap(DAEMON_SUMMARY, 78, ""));
    text.push_str("\nOptions:\n");
    for (option, meaning) in DAEMON_OPTIONS {
        let indent = " ".repeat(24);
        let wrapped = wrap(meaning, 78 - 24, &indent);
        text.push_str(&format!("  {option:<21} {}", wrapped.trim_start()));
    }
    text
}

/// `text` in lines of at most `width` characters (a longer word stays whole), each line but
/// the first after `indent`, each ending in a newline.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valued_options_are_the_ones_with_a_value_word() {
        for flag in [
            "--confdir",
            "--logdir",
            "--statedir",
            "--procfs",
            "--lua-budget",
            "--lua-memory",
            "--socket",
            "--startup-event",
            "--metrics-listen",
        ] {
            assert!(takes_value(flag), "{flag}");
        }
        for flag in [
            "--user",
            "--system",
            "--no-startup-event",
            "--verbose",
            "-v",
            "--debug",
            "--quiet",
            "--help",
            "--bogus",
        ] {
            assert!(!takes_value(flag), "{flag}");
        }
    }

    #[test]
    fn usage_lists_every_option_within_the_width() {
        let text = daemon_usage_text();
        for (option, _) in DAEMON_OPTIONS {
            assert!(text.contains(option), "{option}");
        }
        for line in text.lines() {
            assert!(line.len() <= 80, "{line}");
        }
    }
}
