//! The help texts: the full usage text (`--help`), one command's help (`help COMMAND`,
//! `COMMAND --help`), and the table of commands and options both are made from.

use super::implied_command;

/// The full usage text (`--help`), listing every command, the offline ones too.
pub fn usage_text(program: &str) -> String {
    let mut text = format!("Usage: {program} [OPTION...] COMMAND [OPTION...] [ARG...]\n");
    text.push_str("Controls the uprise daemon; compatible with Upstart's initctl.\n");
    for (heading, group) in GROUPS {
        text.push_str(&format!("\n{heading}:\n"));
        for command in COMMANDS.iter().filter(|command| command.group == group) {
            let synopsis = format!("{} {}", command.name, command.args);
            text.push_str(&format!("  {:<34} {}\n", synopsis.trim_end(), command.summary));
        }
    }
    text.push_str("\nOptions:\n");
    for (option, meaning) in GLOBAL_OPTIONS {
        text.push_str(&format!("  {option:<34} {meaning}\n"));
    }
    text.push('\n');
    text.push_str(NOTES);
    text
}

/// The groups of commands, in the order the usage text and the manual page show them.
pub(crate) const GROUPS: [(&str, Group); 5] = [
    ("Job commands", Group::Job),
    ("Event commands", Group::Event),
    ("Job environment commands", Group::Env),
    ("Daemon commands", Group::Daemon),
    ("Offline commands (no daemon needed)", Group::Offline),
];

/// What the usage text says after the options (the manual page says it too).
pub(crate) const NOTES: &str = "\
Invoked as start, stop, restart, reload, status or telinit, the command is implied.
Without JOB inside a job, start, stop, restart, reload and status act on the job's own
instance ($UPSTART_JOB, $UPSTART_INSTANCE) and never wait.

On a terminal, emit, start, stop and restart that have waited a second say on stderr
what they wait for (the jobs holding the event, why the instance is where it is), on
one line kept current and erased when they end; never through a pipe, nor with -q.

The environment commands edit the global job environment, which every job starts from;
run inside a job without -g, they edit that instance's own table instead (its later
processes see the change). Unlike Upstart's PID 1, uprise lets root (and the daemon's
owner) change the global table in system mode too.
";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Job,
    Event,
    Env,
    Daemon,
    Offline,
}

/// One command of the help: its synopsis, summary, group and own options. Each option is
/// `(FORMS, MEANING)`, FORMS as shown (`-n, --lines N`): the parser accepts exactly the forms
/// listed (`accepts`), and the completions and the manual page are made from the same entries.
pub(crate) struct CommandHelp {
    pub(crate) name: &'static str,
    pub(crate) args: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) group: Group,
    pub(crate) options: &'static [(&'static str, &'static str)],
}

const NO_WAIT: (&str, &str) = ("-n, --no-wait", "do not wait for the command to finish");
const GLOBAL_ENV: (&str, &str) = (
    "-g, --global",
    "the global table even inside a job (there, the default is the job's own)",
);

/// The options every daemon command takes (the offline commands, `OFFLINE`, take only their
/// own).
pub(crate) const GLOBAL_OPTIONS: [(&str, &str); 6] = [
    (
        "--socket PATH",
        "the control socket (else $UPRISE_SOCKET, or the default)",
    ),
    ("-q, --quiet", "print nothing but errors"),
    ("-v, --verbose", "more detail (status: the reasons behind each state)"),
    ("-h, --help", "print this help"),
    ("--version", "print the version of this program"),
    ("--", "end of options"),
];

/// The commands that run without the daemon: each parses its own options, and takes none of
/// `GLOBAL_OPTIONS` unless its entry lists it.
pub(crate) const OFFLINE: [&str; 5] = ["check", "next-elapse", "notify", "completions", "man"];

pub(crate) const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "start",
        args: "JOB [KEY=VALUE...]",
        summary: "start a job, wait until it is running",
        group: Group::Job,
        options: &[
            NO_WAIT,
            (
                "--now",
                "go past the job's gate and pools (also for a start already queued)",
            ),
        ],
    },
    CommandHelp {
        name: "stop",
        args: "JOB [KEY=VALUE...]",
        summary: "stop a job, wait until it has stopped",
        group: Group::Job,
        options: &[NO_WAIT],
    },
    CommandHelp {
        name: "restart",
        args: "JOB [KEY=VALUE...]",
        summary: "restart a running job",
        group: Group::Job,
        options: &[NO_WAIT],
    },
    CommandHelp {
        name: "reload",
        args: "JOB [KEY=VALUE...]",
        summary: "send a job its reload signal, or run its reload command and wait for it",
        group: Group::Job,
        options: &[],
    },
    CommandHelp {
        name: "status",
        args: "JOB [KEY=VALUE...]",
        summary: "print a job's status",
        group: Group::Job,
        options: &[
            ("-v, --verbose", "also print why each instance is where it is"),
            ("--json", "print the instances as JSON"),
        ],
    },
    CommandHelp {
        name: "list",
        args: "",
        summary: "print the status of every job",
        group: Group::Job,
        options: &[("--json", "print the instances as JSON")],
    },
    CommandHelp {
        name: "usage",
        args: "JOB",
        summary: "print a job's usage text",
        group: Group::Job,
        options: &[],
    },
    CommandHelp {
        name: "show-config",
        args: "[-e] [JOB]",
        summary: "print the jobs' emits, start on and stop on",
        group: Group::Job,
        options: &[("-e, --enumerate", "one line per event: NAME (job: JOB, env: VALUES)")],
    },
    CommandHelp {
        name: "check-config",
        args: "[-i LIST] [-w] [JOB]",
        summary: "report conditions that cannot be met; exit 1 if any",
        group: Group::Job,
        options: &[
            ("-i, --ignore-events LIST", "comma-separated events to take as emitted"),
            (
                "-w, --warn",
                "report every unknown job and event, even in an `or` that can fire",
            ),
        ],
    },
    CommandHelp {
        name: "log",
        args: "JOB [KEY=VALUE...] [-f] [-n N]",
        summary: "print a job's log",
        group: Group::Job,
        options: &[
            ("-n, --lines N", "print only the last N lines"),
            (
                "-f, --follow",
                "keep printing what is appended (across rotations) until interrupted",
            ),
        ],
    },
    CommandHelp {
        name: "notify",
        args: "[--ready] [--status TEXT] [--pid PID] [VAR=VALUE...]",
        summary: "from an `expect notify` job: tell the daemon it is ready",
        group: Group::Job,
        options: &[
            ("--ready", "READY=1"),
            ("--status TEXT", "STATUS=TEXT, shown by status -v"),
            ("--pid PID", "MAINPID=PID"),
            ("-q, --quiet", "print nothing but errors (as without it)"),
            ("-h, --help", "print this help"),
        ],
    },
    CommandHelp {
        name: "action",
        args: "JOB NAME [KEY=VALUE...]",
        summary: "run a job's `action NAME`, wait for it, print how it ended",
        group: Group::Job,
        options: &[],
    },
    CommandHelp {
        name: "timers",
        args: "[--json] [JOB]",
        summary: "print the armed timers, soonest first",
        group: Group::Job,
        options: &[("--json", "print the timers as JSON")],
    },
    CommandHelp {
        name: "pools",
        args: "[--json]",
        summary: "print each resource pool: maximum, use, holders and queue",
        group: Group::Job,
        options: &[("--json", "print the pools as JSON")],
    },
    CommandHelp {
        name: "plot",
        args: "[--since boot|all|DURATION] [-o FILE]",
        summary: "draw the state changes as an SVG timeline (default: the boot)",
        group: Group::Job,
        options: &[
            (
                "--since WHEN",
                "boot (the default), all, or a DURATION such as 10m: the last 10 minutes",
            ),
            ("-o, --output FILE", "write the SVG to FILE instead of stdout"),
        ],
    },
    CommandHelp {
        name: "blame",
        args: "[--since boot|all|DURATION]",
        summary: "list instances by the time they took from starting to running",
        group: Group::Job,
        options: &[(
            "--since WHEN",
            "boot (the default), all, or a DURATION such as 10m: the last 10 minutes",
        )],
    },
    CommandHelp {
        name: "graph",
        args: "[--format dot|svg] [--output FILE] [--offline DIR] [JOB...]",
        summary: "draw the jobs and the events between them (with JOBs, what leads to and follows them)",
        group: Group::Job,
        options: &[
            (
                "--format dot|svg",
                "Graphviz's DOT, or SVG drawn here (default: by --output's name, else dot)",
            ),
            ("--output FILE", "write to FILE instead of standard output"),
            (
                "--offline DIR",
                "read the job files in DIR (or a file) instead of asking the daemon",
            ),
        ],
    },
    CommandHelp {
        name: "emit",
        args: "EVENT [KEY=VALUE...]",
        summary: "emit an event, wait until it has been handled",
        group: Group::Event,
        options: &[NO_WAIT],
    },
    CommandHelp {
        name: "monitor",
        args: "[--json]",
        summary: "print events and job state changes as they happen",
        group: Group::Event,
        options: &[("--json", "print the daemon's JSON lines as they are received")],
    },
    CommandHelp {
        name: "set-env",
        args: "[-g] [-r] VAR[=VALUE]...",
        summary: "set variables (VAR alone: empty) in the job environment",
        group: Group::Env,
        options: &[GLOBAL_ENV, ("-r, --retain", "keep a variable that is already set")],
    },
    CommandHelp {
        name: "get-env",
        args: "[-g] VAR",
        summary: "print a variable of the job environment",
        group: Group::Env,
        options: &[GLOBAL_ENV],
    },
    CommandHelp {
        name: "list-env",
        args: "[-g]",
        summary: "print the job environment, sorted",
        group: Group::Env,
        options: &[GLOBAL_ENV],
    },
    CommandHelp {
        name: "unset-env",
        args: "[-g] VAR...",
        summary: "remove variables from the job environment",
        group: Group::Env,
        options: &[GLOBAL_ENV],
    },
    CommandHelp {
        name: "reset-env",
        args: "[-g]",
        summary: "restore the job environment to its defaults",
        group: Group::Env,
        options: &[GLOBAL_ENV],
    },
    CommandHelp {
        name: "reexec",
        args: "[--binary PATH]",
        summary: "replace the daemon with its binary (or PATH), keeping every job and client",
        group: Group::Daemon,
        options: &[("--binary PATH", "the new binary (default: the daemon's own path)")],
    },
    CommandHelp {
        name: "reload-configuration",
        args: "",
        summary: "reread the job files",
        group: Group::Daemon,
        options: &[],
    },
    CommandHelp {
        name: "metrics",
        args: "",
        summary: "print the daemon's figures in Prometheus's text format",
        group: Group::Daemon,
        options: &[],
    },
    CommandHelp {
        name: "version",
        args: "",
        summary: "print the daemon's version",
        group: Group::Daemon,
        options: &[],
    },
    CommandHelp {
        name: "log-priority",
        args: "[LEVEL]",
        summary: "print or set the log priority",
        group: Group::Daemon,
        options: &[("LEVEL", "debug, info, message, warn, error or fatal")],
    },
    CommandHelp {
        name: "shutdown",
        args: "[--halt|--poweroff|--reboot]",
        summary: "stop every job, then exit or halt",
        group: Group::Daemon,
        options: &[
            ("--halt", "halt the machine (system mode; the default)"),
            ("--poweroff", "power the machine off (system mode)"),
            ("--reboot", "reboot the machine (system mode)"),
        ],
    },
    CommandHelp {
        name: "telinit",
        args: "0-6|S|q|u",
        summary: "change runlevel (q: reload configuration)",
        group: Group::Daemon,
        options: &[("-e, --env KEY=VALUE", "add KEY=VALUE to the runlevel event")],
    },
    CommandHelp {
        name: "help",
        args: "[COMMAND]",
        summary: "print this help, or a command's",
        group: Group::Daemon,
        options: &[],
    },
    CommandHelp {
        name: "check",
        args: "[--json] [-q] FILE|DIR...",
        summary: "check job files; exit 1 if any is invalid",
        group: Group::Offline,
        options: &[
            ("--json", "print the jobs and diagnostics as JSON (see docs/check.md)"),
            ("-q, --quiet", "print only errors, no warnings and no summary"),
            ("-h, --help", "print this help"),
        ],
    },
    CommandHelp {
        name: "next-elapse",
        args: "[-n N] [--zone Z] [--from T] EXPR...",
        summary: "print when a temporal expression fires next",
        group: Group::Offline,
        options: &[
            ("-n, --count N", "print the next N times (default 5)"),
            ("-z, --zone Z", "the time zone (default: the local one)"),
            (
                "--from T",
                "count from T (2026-11-26T10:00, or with Z or an offset), not now",
            ),
            ("-h, --help", "print this help"),
        ],
    },
    CommandHelp {
        name: "completions",
        args: "bash|zsh|fish",
        summary: "print a completion script for the shell",
        group: Group::Offline,
        options: &[("-h, --help", "print this help")],
    },
    CommandHelp {
        name: "man",
        args: "uprisectl|uprise|uprise-jobs",
        summary: "print a manual page as roff (man -l - reads it)",
        group: Group::Offline,
        options: &[("-h, --help", "print this help")],
    },
];

/// The forms of an option entry: `-n, --lines N` has `-n` and `--lines` (`--`, the end of
/// options, has none; nor has an entry that is not an option).
pub(crate) fn option_forms(spec: &str) -> impl Iterator<Item = &str> {
    spec.split(", ")
        .filter_map(|form| form.split(' ').next())
        .filter(|form| form.starts_with('-') && *form != "--")
}

/// What an option entry takes, if anything: `N` for `-n, --lines N`.
pub(crate) fn option_value(spec: &str) -> Option<&str> {
    spec.rsplit(", ")
        .next()
        .and_then(|form| form.split_once(' '))
        .map(|(_, value)| value)
}

/// A command's entry in the table.
pub(crate) fn command_help(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|help| help.name == name)
}

/// Every option `command` takes: its own, then (unless it runs offline) the global ones it
/// does not list itself.
pub(crate) fn command_options(help: &CommandHelp) -> Vec<(&'static str, &'static str)> {
    let mut options = help.options.to_vec();
    if !OFFLINE.contains(&help.name) {
        for global in GLOBAL_OPTIONS {
            let listed = option_forms(global.0).any(|form| {
                help.options
                    .iter()
                    .any(|own| option_forms(own.0).any(|other| other == form))
            });
            if !listed {
                options.push(global);
            }
        }
    }
    options
}

/// Whether `command` takes the option written `form` (`--json`, `-n`), as the table says: with
/// no command, or one the table does not know, only the global options.
pub(super) fn accepts(command: Option<&str>, form: &str) -> bool {
    let global = GLOBAL_OPTIONS
        .iter()
        .any(|(spec, _)| option_forms(spec).any(|f| f == form));
    match command.and_then(command_help) {
        Some(help) => command_options(help)
            .iter()
            .any(|(spec, _)| option_forms(spec).any(|f| f == form)),
        None => global,
    }
}

/// The help for `command`, or the full usage text without one; `None` for a command the
/// table does not know.
pub(crate) fn help_text(program: &str, command: Option<&str>) -> Option<String> {
    let Some(name) = command else {
        return Some(usage_text(program));
    };
    let help = command_help(name)?;
    let invocation = if implied_command(program) == Some(help.name) {
        program.to_string()
    } else {
        format!("{program} {}", help.name)
    };
    let mut text = format!("Usage: {invocation} [OPTION...] {}\n", help.args).replace(" \n", "\n");
    let mut summary = help.summary.to_string();
    if let Some(first) = summary.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    text.push_str(&format!("{summary}.\n\nOptions:\n"));
    for (option, meaning) in command_options(help) {
        text.push_str(&format!("  {option:<34} {meaning}\n"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use crate::ctl::commands::tests::{run, run_as};

    #[test]
    fn help_and_version() {
        let outcome = run(&["--help"], &[]);
        assert_eq!(outcome.code, 0);
        for command in [
            "start",
            "stop",
            "status",
            "list",
            "emit",
            "telinit",
            "check",
            "next-elapse",
            "set-env",
            "get-env",
            "list-env",
            "unset-env",
            "reset-env",
            "show-config",
            "check-config",
            "monitor",
            "log",
            "timers",
            "pools",
            "graph",
            "action",
            "--socket",
        ] {
            assert!(outcome.out.contains(command), "{command} in help");
        }
        assert_eq!(run(&["help"], &[]).out, outcome.out);
        let outcome = run_as("start", &["start", "--help", "--bogus"], &[]);
        assert_eq!(outcome.code, 0);
        assert!(
            outcome.out.starts_with("Usage: start [OPTION...] JOB [KEY=VALUE...]\n"),
            "{}",
            outcome.out
        );
        assert!(outcome.out.contains("--no-wait"));
        let outcome = run(&["help", "check"], &[]);
        assert!(
            outcome.out.contains("--json") && outcome.out.contains("-q, --quiet"),
            "{}",
            outcome.out
        );
        assert!(
            !outcome.out.contains("--socket") && !outcome.out.contains("--verbose"),
            "{}",
            outcome.out
        );
        let outcome = run(&["help", "status"], &[]);
        assert_eq!(outcome.out.matches("--verbose").count(), 1, "{}", outcome.out);
        let outcome = run(&["--version"], &[]);
        assert_eq!(
            outcome.out,
            format!("uprisectl (uprise {})\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn help_for_an_unknown_command_is_a_usage_error() {
        for args in [&["help", "bogus"][..], &["bogus", "--help"], &["help", "start", "stop"]] {
            let outcome = run(args, &[]);
            assert_eq!((outcome.code, outcome.out.as_str()), (2, ""), "{args:?}");
            assert!(outcome.err.starts_with("uprisectl: "), "{}", outcome.err);
        }
        assert!(run(&["help", "bogus"], &[]).err.contains("unknown command: bogus"));
    }
}
