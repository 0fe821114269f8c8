//! The daemon commands of `uprisectl`, compatible with Upstart's `initctl` (and its `start`,
//! `stop`, `restart`, `reload`, `status` and `telinit` links): argument parsing, the request
//! each command sends, and the output printed from the replies.
//!
//! Global options may appear anywhere: `--socket PATH` (or `--socket=PATH`), `-q/--quiet`,
//! `-v/--verbose`, `--help`, `--version`; `--` ends the options. Exit status: 0 on success,
//! 1 when the daemon answers with an error or cannot be reached (`PROGRAM: MESSAGE` on
//! stderr), 2 on a usage error (followed by `Try 'PROGRAM --help' for more information.`).
//! `check-config` also exits 1, silently, when it reports anything.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::proto::{self, InstanceStatus, Reply, Request, ShutdownAction};
use crate::ctl::client::{self, Client};
use crate::ctl::offline;

/// The log priorities `log-priority` accepts.
pub const LOG_PRIORITIES: [&str; 6] = ["debug", "info", "message", "warn", "error", "fatal"];

/// The command a program name implies when the binary is invoked through a link: `start`,
/// `stop`, `restart`, `reload`, `status` and `telinit`. `None` for `uprisectl`, `initctl` and
/// anything else (the command is then the first argument).
pub fn implied_command(program: &str) -> Option<&'static str> {
    ["start", "stop", "restart", "reload", "status", "telinit"]
        .into_iter()
        .find(|command| *command == program)
}

/// Runs a command line (`args[0]`, after any global options, is the command) and returns the
/// exit status. Prints to stdout and stderr; messages are prefixed with `program`.
pub fn run(program: &str, args: &[String]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_with(program, args, &mut stdout.lock(), &mut stderr.lock(), &|name| {
        std::env::var(name).ok()
    })
}

/// `run` with the output streams and the environment given. The offline commands (`check`,
/// `next-elapse`) are handed to `ctl::offline`, which prints to the process's stdout/stderr.
pub fn run_with(
    program: &str,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> i32 {
    if let Some(code) = run_offline(program, args) {
        return code;
    }
    let parsed = parse(args);
    if parsed.help {
        let _ = out.write_all(help_text(program, parsed.words.first().map(String::as_str)).as_bytes());
        return 0;
    }
    if parsed.version {
        let _ = writeln!(out, "{program} (uprise {})", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let result = match parsed.error.clone() {
        Some(failure) => Err(failure),
        None => {
            let mut sink = io::sink();
            let out: &mut dyn Write = if parsed.quiet { &mut sink } else { out };
            execute(program, &parsed, out, env)
        }
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            if !failure.message.is_empty() {
                let _ = writeln!(err, "{program}: {}", failure.message);
            }
            if failure.hint {
                let _ = writeln!(err, "Try '{program} --help' for more information.");
            }
            failure.code
        }
    }
}

/// The full usage text (`--help`), listing every command, the offline ones too.
pub fn usage_text(program: &str) -> String {
    let mut text = format!("Usage: {program} [OPTION...] COMMAND [OPTION...] [ARG...]\n");
    text.push_str("Controls the uprise daemon; compatible with Upstart's initctl.\n");
    for (heading, group) in [
        ("Job commands", Group::Job),
        ("Event commands", Group::Event),
        ("Job environment commands", Group::Env),
        ("Daemon commands", Group::Daemon),
        ("Offline commands (no daemon needed)", Group::Offline),
    ] {
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
    text.push_str(
        "\nInvoked as start, stop, restart, reload, status or telinit, the command is implied.\n\
         Without JOB inside a job, start, stop, restart, reload and status act on the job's own\n\
         instance ($UPSTART_JOB, $UPSTART_INSTANCE) and never wait.\n\
         \n\
         The environment commands edit the global job environment, which every job starts from;\n\
         run inside a job without -g, they edit that instance's own table instead (its later\n\
         processes see the change). Unlike Upstart's PID 1, uprise lets root (and the daemon's\n\
         owner) change the global table in system mode too.\n",
    );
    text
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Job,
    Event,
    Env,
    Daemon,
    Offline,
}

struct CommandHelp {
    name: &'static str,
    args: &'static str,
    summary: &'static str,
    group: Group,
    options: &'static [(&'static str, &'static str)],
}

const NO_WAIT: (&str, &str) = ("-n, --no-wait", "do not wait for the command to finish");
const GLOBAL_ENV: (&str, &str) = (
    "-g, --global",
    "the global table even inside a job (there, the default is the job's own)",
);

const GLOBAL_OPTIONS: [(&str, &str); 6] = [
    (
        "--socket PATH",
        "the control socket (else $UPRISE_SOCKET, or the default)",
    ),
    ("-q, --quiet", "print nothing but errors"),
    ("-v, --verbose", "more detail (status: the reasons behind each state)"),
    ("--help", "print this help"),
    ("--version", "print the version of this program"),
    ("--", "end of options"),
];

const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "start",
        args: "JOB [KEY=VALUE...]",
        summary: "start a job, wait until it is running",
        group: Group::Job,
        options: &[NO_WAIT],
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
        summary: "send a job its reload signal",
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
        options: &[],
    },
    CommandHelp {
        name: "next-elapse",
        args: "[-n N] [--zone Z] [--from T] EXPR...",
        summary: "print when a temporal expression fires next",
        group: Group::Offline,
        options: &[],
    },
];

/// The help for `command` when it is known, else the full usage text.
fn help_text(program: &str, command: Option<&str>) -> String {
    let Some(help) = command.and_then(|name| COMMANDS.iter().find(|help| help.name == name)) else {
        return usage_text(program);
    };
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
    for (option, meaning) in help.options.iter().chain(GLOBAL_OPTIONS.iter()) {
        text.push_str(&format!("  {option:<34} {meaning}\n"));
    }
    text
}

/// Why a command line failed: the message, the exit status, and whether to suggest `--help`.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    code: i32,
    hint: bool,
}

/// A usage error: exit 2 with the `--help` hint.
fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
        hint: true,
    }
}

/// A missing argument: exit 1 (as initctl) with the `--help` hint.
fn missing(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
        hint: true,
    }
}

/// An error: exit 1.
fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
        hint: false,
    }
}

/// The offline commands, when one is the command: they get the raw arguments that follow it
/// (`-q`/`--quiet` given before the command is passed on).
fn run_offline(program: &str, args: &[String]) -> Option<i32> {
    let mut quiet = Vec::new();
    let mut iter = args.iter().enumerate();
    while let Some((index, arg)) = iter.next() {
        match arg.as_str() {
            "--socket" => {
                iter.next();
            }
            "-q" | "--quiet" => quiet.push(arg.clone()),
            "--" => {
                let (index, command) = iter.next()?;
                return offline_command(program, command, quiet, &args[index + 1..]);
            }
            option if option.starts_with('-') && option.len() > 1 => {}
            command => return offline_command(program, command, quiet, &args[index + 1..]),
        }
    }
    None
}

fn offline_command(program: &str, command: &str, mut prefix: Vec<String>, rest: &[String]) -> Option<i32> {
    prefix.extend_from_slice(rest);
    match command {
        "check" => Some(offline::check(program, &prefix)),
        "next-elapse" => Some(offline::next_elapse(program, &prefix)),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Opt {
    Socket(String),
    Quiet,
    Verbose,
    Help,
    Version,
    NoWait,
    Json,
    Shutdown(ShutdownAction),
    Env(String),
    Global,
    Retain,
    Enumerate,
    IgnoreEvents(String),
    Warn,
    Follow,
    Lines(String),
    Binary(String),
}

impl Opt {
    /// Whether `command` takes this option (the global ones go with every command).
    fn accepted_by(&self, command: Option<&str>) -> bool {
        match self {
            Opt::Socket(_) | Opt::Quiet | Opt::Verbose | Opt::Help | Opt::Version => true,
            Opt::NoWait => matches!(command, Some("start" | "stop" | "restart" | "emit")),
            Opt::Json => matches!(command, Some("status" | "list" | "monitor")),
            Opt::Binary(_) => matches!(command, Some("reexec")),
            Opt::Shutdown(_) => command == Some("shutdown"),
            Opt::Env(_) => command == Some("telinit"),
            Opt::Global => matches!(
                command,
                Some("set-env" | "get-env" | "list-env" | "unset-env" | "reset-env")
            ),
            Opt::Retain => command == Some("set-env"),
            Opt::Enumerate => command == Some("show-config"),
            Opt::IgnoreEvents(_) | Opt::Warn => command == Some("check-config"),
            Opt::Follow | Opt::Lines(_) => command == Some("log"),
        }
    }
}

/// A parsed command line. `words[0]` is the command.
#[derive(Default)]
struct Parsed {
    socket: Option<String>,
    quiet: bool,
    verbose: bool,
    help: bool,
    version: bool,
    no_wait: bool,
    json: bool,
    shutdown: Vec<ShutdownAction>,
    extra_env: Vec<String>,
    global: bool,
    retain: bool,
    enumerate: bool,
    ignore_events: Vec<String>,
    warn: bool,
    follow: bool,
    lines: Option<String>,
    binary: Option<String>,
    words: Vec<String>,
    /// The first error met; `--help` anywhere still wins over it.
    error: Option<Failure>,
}

fn parse(args: &[String]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut options: Vec<(Opt, String)> = Vec::new();
    let mut error = None;
    let mut ended = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if ended || !arg.starts_with('-') || arg == "-" {
            parsed.words.push(arg.clone());
            continue;
        }
        if arg == "--" {
            ended = true;
            continue;
        }
        let result = match arg.strip_prefix("--") {
            Some(long) => long_option(long, &mut iter).map(|opt| vec![(opt, arg.clone())]),
            None => short_options(&arg[1..], &mut iter, parsed.words.first().map(String::as_str)),
        };
        match result {
            Ok(found) => options.extend(found),
            Err(failure) => {
                error.get_or_insert(failure);
            }
        }
    }
    let command = parsed.words.first().map(String::as_str);
    for (opt, written) in options {
        if !opt.accepted_by(command) {
            let name = written.split('=').next().unwrap_or(&written).to_string();
            error.get_or_insert(usage(format!("unknown option: {name}")));
            continue;
        }
        match opt {
            Opt::Socket(path) => parsed.socket = Some(path),
            Opt::Quiet => parsed.quiet = true,
            Opt::Verbose => parsed.verbose = true,
            Opt::Help => parsed.help = true,
            Opt::Version => parsed.version = true,
            Opt::NoWait => parsed.no_wait = true,
            Opt::Json => parsed.json = true,
            Opt::Shutdown(action) => parsed.shutdown.push(action),
            Opt::Env(pair) => parsed.extra_env.push(pair),
            Opt::Global => parsed.global = true,
            Opt::Retain => parsed.retain = true,
            Opt::Enumerate => parsed.enumerate = true,
            Opt::IgnoreEvents(list) => parsed.ignore_events.push(list),
            Opt::Warn => parsed.warn = true,
            Opt::Follow => parsed.follow = true,
            Opt::Lines(count) => parsed.lines = Some(count),
            Opt::Binary(path) => parsed.binary = Some(path),
        }
    }
    parsed.error = error;
    parsed
}

fn long_option<'a>(long: &str, rest: &mut impl Iterator<Item = &'a String>) -> Result<Opt, Failure> {
    let (name, inline) = match long.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (long, None),
    };
    let mut value = |what: &str| -> Result<String, Failure> {
        let value = match inline {
            Some(value) => Some(value.to_string()),
            None => rest.next().cloned(),
        };
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| usage(format!("option '--{name}' needs {what}")))
    };
    let opt = match name {
        "socket" => return value("a PATH").map(Opt::Socket),
        "env" => return value("KEY=VALUE").map(Opt::Env),
        "ignore-events" => return value("a LIST").map(Opt::IgnoreEvents),
        "lines" => return value("a number").map(Opt::Lines),
        "binary" => return value("a PATH").map(Opt::Binary),
        "quiet" => Opt::Quiet,
        "verbose" => Opt::Verbose,
        "help" => Opt::Help,
        "version" => Opt::Version,
        "no-wait" => Opt::NoWait,
        "json" => Opt::Json,
        "halt" => Opt::Shutdown(ShutdownAction::Halt),
        "poweroff" => Opt::Shutdown(ShutdownAction::Poweroff),
        "reboot" => Opt::Shutdown(ShutdownAction::Reboot),
        "global" => Opt::Global,
        "retain" => Opt::Retain,
        "enumerate" => Opt::Enumerate,
        "warn" => Opt::Warn,
        "follow" => Opt::Follow,
        _ => return Err(usage(format!("unknown option: --{name}"))),
    };
    if inline.is_some() {
        return Err(usage(format!("option '--{name}' takes no value")));
    }
    Ok(opt)
}

/// A bundle of short options (`-qn`); `-e` (with `telinit`), `-i` and `-n` (with `log`) take
/// the rest of the word or the next argument. `command` is the command named so far, if any:
/// `-e` is `--enumerate` for `show-config`, `-n` is `--lines` for `log`.
fn short_options<'a>(
    letters: &str,
    rest: &mut impl Iterator<Item = &'a String>,
    command: Option<&str>,
) -> Result<Vec<(Opt, String)>, Failure> {
    let mut found = Vec::new();
    for (at, letter) in letters.char_indices() {
        let mut value = |what: &str| -> Result<String, Failure> {
            let inline = &letters[at + 1..];
            let value = if inline.is_empty() {
                rest.next().cloned()
            } else {
                Some(inline.to_string())
            };
            value
                .filter(|value| !value.is_empty())
                .ok_or_else(|| usage(format!("option '-{letter}' needs {what}")))
        };
        let (opt, takes_rest) = match letter {
            'q' => (Opt::Quiet, false),
            'v' => (Opt::Verbose, false),
            'h' => (Opt::Help, false),
            'n' if command == Some("log") => (Opt::Lines(value("a number")?), true),
            'n' => (Opt::NoWait, false),
            'e' if command == Some("show-config") => (Opt::Enumerate, false),
            'e' => (Opt::Env(value("KEY=VALUE")?), true),
            'i' => (Opt::IgnoreEvents(value("a LIST")?), true),
            'g' => (Opt::Global, false),
            'r' => (Opt::Retain, false),
            'w' => (Opt::Warn, false),
            'f' => (Opt::Follow, false),
            other => return Err(usage(format!("unknown option: -{other}"))),
        };
        found.push((opt, format!("-{letter}")));
        if takes_rest {
            break;
        }
    }
    Ok(found)
}

/// Checks `KEY=VALUE` arguments (before anything is sent).
fn env_pairs(args: &[String]) -> Result<Vec<String>, Failure> {
    if args
        .iter()
        .all(|arg| arg.split_once('=').is_some_and(|(key, _)| !key.is_empty()))
    {
        Ok(args.to_vec())
    } else {
        Err(failure("Env must be KEY=VALUE pairs"))
    }
}

/// What a job command acts on: `JOB [KEY=VALUE...]`, or without JOB, inside a job, the job's
/// own instance from `$UPSTART_JOB`/`$UPSTART_INSTANCE`.
struct Target {
    job: String,
    env: Vec<String>,
    instance: Option<String>,
    /// From the environment: the command must not wait (it would wait on itself).
    own: bool,
}

fn target(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Failure> {
    if let Some((job, pairs)) = args.split_first() {
        return Ok(Target {
            job: job.clone(),
            env: env_pairs(pairs)?,
            instance: None,
            own: false,
        });
    }
    match env("UPSTART_JOB").filter(|job| !job.is_empty()) {
        Some(job) => Ok(Target {
            job,
            env: Vec::new(),
            instance: Some(env("UPSTART_INSTANCE").unwrap_or_default()),
            own: true,
        }),
        None => Err(missing("missing job name")),
    }
}

fn no_more(args: &[String]) -> Result<(), Failure> {
    match args.first() {
        Some(extra) => Err(usage(format!("unexpected argument: {extra}"))),
        None => Ok(()),
    }
}

/// How a command shows its replies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    /// Status lines; with details (`status -v`) when `true`.
    Status(bool),
    /// The instances as one JSON array, once the request is done.
    Json,
    /// Text replies only.
    Text,
}

fn execute(
    program: &str,
    parsed: &Parsed,
    out: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Failure> {
    let Some((command, args)) = parsed.words.split_first() else {
        return Err(usage("missing command"));
    };
    let wait = !parsed.no_wait;
    let (request, show) = match command.as_str() {
        "start" | "stop" | "restart" => {
            let Target {
                job,
                env,
                instance,
                own,
            } = target(args, env)?;
            let wait = wait && !own;
            let request = match command.as_str() {
                "start" => Request::Start {
                    job,
                    env,
                    instance,
                    wait,
                },
                "stop" => Request::Stop {
                    job,
                    env,
                    instance,
                    wait,
                },
                _ => Request::Restart {
                    job,
                    env,
                    instance,
                    wait,
                },
            };
            (request, Show::Status(false))
        }
        "reload" => {
            let Target { job, env, instance, .. } = target(args, env)?;
            (Request::Reload { job, env, instance }, Show::Text)
        }
        "status" => {
            let Target { job, env, instance, .. } = target(args, env)?;
            let show = if parsed.json {
                Show::Json
            } else {
                Show::Status(parsed.verbose)
            };
            let request = Request::Status {
                job,
                env,
                instance,
                text: false,
            };
            (request, show)
        }
        "list" => {
            no_more(args)?;
            (
                Request::List,
                if parsed.json { Show::Json } else { Show::Status(false) },
            )
        }
        "emit" => {
            let Some((event, pairs)) = args.split_first() else {
                return Err(missing("missing event name"));
            };
            let request = Request::Emit {
                event: event.clone(),
                env: env_pairs(pairs)?,
                wait,
            };
            (request, Show::Text)
        }
        "reload-configuration" => {
            no_more(args)?;
            (Request::ReloadConfiguration, Show::Text)
        }
        "reexec" => {
            no_more(args)?;
            (
                Request::Reexec {
                    binary: parsed.binary.clone(),
                },
                Show::Text,
            )
        }
        "version" => {
            no_more(args)?;
            (Request::Version, Show::Text)
        }
        "log-priority" => {
            let priority = match args {
                [] => None,
                [level] if LOG_PRIORITIES.contains(&level.as_str()) => Some(level.clone()),
                [level] => {
                    return Err(usage(format!(
                        "unknown log priority: {level} (use debug, info, message, warn, error or fatal)"
                    )));
                }
                [_, extra, ..] => return Err(usage(format!("unexpected argument: {extra}"))),
            };
            (Request::LogPriority { priority }, Show::Text)
        }
        "usage" => {
            let Some((job, rest)) = args.split_first() else {
                return Err(missing("missing job name"));
            };
            no_more(rest)?;
            (Request::Usage { job: job.clone() }, Show::Text)
        }
        "shutdown" => {
            no_more(args)?;
            let action = match parsed.shutdown.as_slice() {
                [] => ShutdownAction::default(),
                [first, others @ ..] if others.iter().all(|other| other == first) => *first,
                _ => return Err(usage("shutdown: give only one of --halt, --poweroff and --reboot")),
            };
            (Request::Shutdown { action }, Show::Text)
        }
        "telinit" => (telinit(args, &parsed.extra_env, env)?, Show::Text),
        "set-env" => {
            if args.is_empty() {
                return Err(missing("missing variable name"));
            }
            if let Some(bad) = args.iter().find(|arg| arg.starts_with('=')) {
                return Err(failure(format!("Env must be VAR or VAR=VALUE: {bad}")));
            }
            let (job, instance) = env_target(parsed.global, env);
            let request = Request::SetEnv {
                vars: args.to_vec(),
                retain: parsed.retain,
                job,
                instance,
            };
            (request, Show::Text)
        }
        "get-env" => {
            let Some((name, rest)) = args.split_first() else {
                return Err(missing("missing variable name"));
            };
            no_more(rest)?;
            let (job, instance) = env_target(parsed.global, env);
            let request = Request::GetEnv {
                name: name.clone(),
                job,
                instance,
            };
            (request, Show::Text)
        }
        "list-env" => {
            no_more(args)?;
            let (job, instance) = env_target(parsed.global, env);
            (Request::ListEnv { job, instance }, Show::Text)
        }
        "unset-env" => {
            if args.is_empty() {
                return Err(missing("missing variable name"));
            }
            let (job, instance) = env_target(parsed.global, env);
            let request = Request::UnsetEnv {
                names: args.to_vec(),
                job,
                instance,
            };
            (request, Show::Text)
        }
        "reset-env" => {
            no_more(args)?;
            let (job, instance) = env_target(parsed.global, env);
            (Request::ResetEnv { job, instance }, Show::Text)
        }
        "show-config" => {
            let job = optional_job(args)?;
            let request = Request::ShowConfig {
                job,
                enumerate: parsed.enumerate,
            };
            (request, Show::Text)
        }
        "check-config" => {
            let job = optional_job(args)?;
            let ignore = parsed
                .ignore_events
                .iter()
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|event| !event.is_empty())
                .map(str::to_string)
                .collect();
            let request = Request::CheckConfig {
                job,
                ignore,
                warn: parsed.warn,
            };
            return check_config(&socket_path(parsed, env), &request, out);
        }
        "monitor" => {
            no_more(args)?;
            return monitor(&socket_path(parsed, env), parsed.json, out);
        }
        "log" => {
            let Some((job, pairs)) = args.split_first() else {
                return Err(missing("missing job name"));
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
            return log(&socket_path(parsed, env), &request, job, options, out);
        }
        "help" => {
            let _ = out.write_all(help_text(program, args.first().map(String::as_str)).as_bytes());
            return Ok(());
        }
        other => return Err(usage(format!("unknown command: {other}"))),
    };
    send(&socket_path(parsed, env), &request, show, out)
}

/// The control socket: `--socket`, else the usual resolution.
fn socket_path(parsed: &Parsed, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match &parsed.socket {
        Some(path) => PathBuf::from(path),
        None => client::resolve_socket_path(None, env, nix::unistd::geteuid().as_raw()),
    }
}

/// `[JOB]`: at most one argument.
fn optional_job(args: &[String]) -> Result<Option<String>, Failure> {
    match args {
        [] => Ok(None),
        [job] => Ok(Some(job.clone())),
        [_, extra, ..] => Err(usage(format!("unexpected argument: {extra}"))),
    }
}

/// Which table an environment command edits: the global one with `-g` or outside a job;
/// inside a job (`$UPSTART_JOB`), that instance's.
fn env_target(global: bool, env: &dyn Fn(&str) -> Option<String>) -> (Option<String>, Option<String>) {
    if global {
        return (None, None);
    }
    match env("UPSTART_JOB").filter(|job| !job.is_empty()) {
        Some(job) => (Some(job), Some(env("UPSTART_INSTANCE").unwrap_or_default())),
        None => (None, None),
    }
}

/// `check-config`: prints the daemon's findings; exit 1 (without a message) if there are any.
fn check_config(socket: &Path, request: &Request, out: &mut dyn Write) -> Result<(), Failure> {
    let mut found = false;
    let mut client = Client::connect(socket).map_err(failure)?;
    client
        .request(request, |reply| {
            if let Reply::Text { text } = reply {
                found = true;
                let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
            }
        })
        .map_err(failure)?;
    if found {
        return Err(Failure {
            message: String::new(),
            code: 1,
            hint: false,
        });
    }
    Ok(())
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
        } => {
            let mut line = format!("job {job}");
            if !instance.is_empty() {
                line.push_str(&format!(" ({instance})"));
            }
            line.push_str(&format!(" {goal}/{state}"));
            Some(line)
        }
        Reply::Status { .. } | Reply::Text { .. } | Reply::Done | Reply::Error { .. } => None,
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

/// `telinit N|S|q|u`: a runlevel change is the `runlevel` event; `q` reloads the configuration.
fn telinit(args: &[String], extra_env: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Request, Failure> {
    let level = match args {
        [] => return Err(usage("missing runlevel")),
        [level] => level.as_str(),
        [_, extra, ..] => return Err(usage(format!("unexpected argument: {extra}"))),
    };
    match level {
        "0" | "1" | "2" | "3" | "4" | "5" | "6" | "S" | "s" => {
            let level = level.to_ascii_uppercase();
            let previous = env("RUNLEVEL")
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| "N".into());
            let mut event_env = vec![format!("RUNLEVEL={level}"), format!("PREVLEVEL={previous}")];
            event_env.extend(env_pairs(extra_env)?);
            Ok(Request::Emit {
                event: "runlevel".into(),
                env: event_env,
                wait: false,
            })
        }
        "q" | "Q" => Ok(Request::ReloadConfiguration),
        "u" | "U" => Ok(Request::Reexec { binary: None }),
        other => Err(usage(format!("illegal runlevel: {other}"))),
    }
}

/// Sends `request` and prints its replies as `show` says.
fn send(socket: &Path, request: &Request, show: Show, out: &mut dyn Write) -> Result<(), Failure> {
    let mut collected: Vec<InstanceStatus> = Vec::new();
    let mut client = Client::connect(socket).map_err(failure)?;
    client
        .request(request, |reply| match reply {
            Reply::Status { instances } => match show {
                Show::Status(verbose) => {
                    for instance in instances {
                        let _ = writeln!(out, "{}", proto::status_line(instance));
                        if verbose {
                            for detail in &instance.detail {
                                let _ = writeln!(out, "  {detail}");
                            }
                        }
                    }
                }
                Show::Json => collected.extend(instances.iter().cloned()),
                Show::Text => {}
            },
            Reply::Text { text } if show != Show::Json => {
                let _ = out.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = out.write_all(b"\n");
                }
            }
            Reply::Text { .. } | Reply::Done | Reply::Error { .. } | Reply::Event { .. } | Reply::Change { .. } => {}
        })
        .map_err(failure)?;
    if show == Show::Json {
        let text = serde_json::to_string_pretty(&collected)
            .map_err(|error| failure(format!("cannot encode JSON: {error}")))?;
        let _ = writeln!(out, "{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    /// A fake daemon: accepts one connection, records the request line, answers `replies`.
    struct Daemon {
        _dir: tempfile::TempDir,
        path: String,
        handle: JoinHandle<String>,
    }

    impl Daemon {
        fn start(replies: &[&str]) -> Daemon {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("control");
            let listener = UnixListener::bind(&path).unwrap();
            let mut answer = String::new();
            for reply in replies {
                answer.push_str(reply);
                answer.push('\n');
            }
            let handle = std::thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                reader.get_mut().write_all(answer.as_bytes()).unwrap();
                line
            });
            Daemon {
                _dir: dir,
                path: path.to_str().unwrap().to_string(),
                handle,
            }
        }

        /// The request the client sent.
        fn request(self) -> Request {
            let line = self.handle.join().unwrap();
            assert!(line.ends_with('\n'), "request line is newline-terminated: {line:?}");
            serde_json::from_str(&line).unwrap()
        }
    }

    struct Outcome {
        code: i32,
        out: String,
        err: String,
    }

    fn run_as(program: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with(program, &args, &mut out, &mut err, &lookup);
        Outcome {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Outcome {
        run_as("uprisectl", args, env)
    }

    fn status_reply(instances: &[InstanceStatus]) -> String {
        serde_json::to_string(&Reply::Status {
            instances: instances.to_vec(),
        })
        .unwrap()
    }

    fn instance(job: &str, name: &str, goal: &str, state: &str, processes: &[(&str, i32)]) -> InstanceStatus {
        InstanceStatus::example(job, name, goal, state, processes)
    }

    const DONE: &str = r#"{"reply":"done"}"#;

    #[test]
    fn start_with_env_and_no_wait_sends_the_request_and_prints_the_status() {
        let reply = status_reply(&[instance("web", "", "start", "running", &[("main", 42)])]);
        let daemon = Daemon::start(&[&reply, DONE]);
        let outcome = run(
            &[
                "start",
                "web",
                "PORT=80",
                "A=b=c",
                "--no-wait",
                "--socket",
                &daemon.path,
            ],
            &[],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (0, "web start/running, process 42\n", "")
        );
        assert_eq!(
            daemon.request(),
            Request::Start {
                job: "web".into(),
                env: vec!["PORT=80".into(), "A=b=c".into()],
                instance: None,
                wait: false,
            }
        );
    }

    #[test]
    fn stop_and_restart_wait_by_default() {
        let daemon = Daemon::start(&[&status_reply(&[instance("web", "", "stop", "waiting", &[])]), DONE]);
        let outcome = run(&["--socket", &daemon.path, "stop", "web"], &[]);
        assert_eq!(outcome.out, "web stop/waiting\n");
        assert_eq!(
            daemon.request(),
            Request::Stop {
                job: "web".into(),
                env: vec![],
                instance: None,
                wait: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["restart", "-n", "web", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::Restart {
                job: "web".into(),
                env: vec![],
                instance: None,
                wait: false
            }
        );
    }

    #[test]
    fn status_lines_are_initctl_lines() {
        let reply = status_reply(&[
            instance("tty", "tty1", "start", "running", &[("main", 3648)]),
            instance(
                "drogo",
                "foo",
                "stop",
                "pre-stop",
                &[("main", 6312), ("pre-stop", 8609)],
            ),
            instance("test", "", "start", "post-start", &[("post-start", 2137)]),
        ]);
        let daemon = Daemon::start(&[&reply, DONE]);
        let outcome = run(&["status", "tty", "TTY=tty1", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.code, 0);
        assert_eq!(
            outcome.out,
            "tty (tty1) start/running, process 3648\n\
             drogo (foo) stop/pre-stop, process 6312\n\tpre-stop process 8609\n\
             test start/post-start, (post-start) process 2137\n"
        );
        assert_eq!(
            daemon.request(),
            Request::Status {
                job: "tty".into(),
                env: vec!["TTY=tty1".into()],
                instance: None,
                text: false,
            }
        );
    }

    #[test]
    fn status_verbose_prints_details_after_each_instance() {
        let mut first = instance("web", "", "start", "running", &[("main", 7), ("post-start", 8)]);
        first.detail = vec!["started by: startup".into(), "respawns: 0".into()];
        let second = instance("db", "", "stop", "waiting", &[]);
        let daemon = Daemon::start(&[&status_reply(&[first, second]), DONE]);
        let outcome = run(&["-v", "status", "web", "--socket", &daemon.path], &[]);
        assert_eq!(
            outcome.out,
            "web start/running, process 7\n\tpost-start process 8\n  started by: startup\n  respawns: 0\ndb stop/waiting\n"
        );
        daemon.request();
    }

    #[test]
    fn list_prints_every_line_and_json_on_request() {
        let daemon = Daemon::start(&[
            &status_reply(&[instance("a", "", "stop", "waiting", &[])]),
            &status_reply(&[instance("b", "x", "start", "running", &[("main", 5)])]),
            DONE,
        ]);
        let outcome = run(&["list", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "a stop/waiting\nb (x) start/running, process 5\n");
        assert_eq!(daemon.request(), Request::List);

        let listed = vec![instance("a", "", "stop", "waiting", &[])];
        let daemon = Daemon::start(&[&status_reply(&listed), DONE]);
        let outcome = run(&["list", "--json", "--socket", &daemon.path], &[]);
        let parsed: Vec<InstanceStatus> = serde_json::from_str(&outcome.out).unwrap();
        assert_eq!(parsed, listed);
        assert!(outcome.out.contains("\n  "), "pretty JSON: {}", outcome.out);
        daemon.request();
    }

    #[test]
    fn quiet_suppresses_output() {
        let daemon = Daemon::start(&[&status_reply(&[instance("a", "", "stop", "waiting", &[])]), DONE]);
        let outcome = run(&["list", "-q", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, ""));
        daemon.request();
    }

    #[test]
    fn error_reply_exits_1_with_program_prefix() {
        let daemon = Daemon::start(&[r#"{"reply":"error","message":"Unknown job: foo"}"#]);
        let outcome = run(&["start", "foo", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (1, ""));
        assert_eq!(outcome.err, "uprisectl: Unknown job: foo\n");
        daemon.request();

        let daemon = Daemon::start(&[r#"{"reply":"error","message":"Event failed"}"#]);
        let outcome = run(&["emit", "--socket", &daemon.path, "up", "A=1"], &[]);
        assert_eq!((outcome.code, outcome.err.as_str()), (1, "uprisectl: Event failed\n"));
        assert_eq!(
            daemon.request(),
            Request::Emit {
                event: "up".into(),
                env: vec!["A=1".into()],
                wait: true
            }
        );
    }

    #[test]
    fn program_name_prefixes_messages_when_invoked_as_start() {
        let daemon = Daemon::start(&[r#"{"reply":"error","message":"Unknown job: foo"}"#]);
        let outcome = run_as("start", &["start", "foo", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.err.as_str()), (1, "start: Unknown job: foo\n"));
        daemon.request();
        let outcome = run_as("start", &["start", "--bogus"], &[]);
        assert_eq!(outcome.code, 2);
        assert_eq!(
            outcome.err,
            "start: unknown option: --bogus\nTry 'start --help' for more information.\n"
        );
        assert_eq!(implied_command("start"), Some("start"));
        assert_eq!(implied_command("telinit"), Some("telinit"));
        assert_eq!(implied_command("initctl"), None);
        assert_eq!(implied_command("uprisectl"), None);
    }

    #[test]
    fn bad_env_argument_is_an_error_before_connecting() {
        let outcome = run(&["start", "web", "PORT", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (1, "uprisectl: Env must be KEY=VALUE pairs\n")
        );
        let outcome = run(&["emit", "up", "=x", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (1, "uprisectl: Env must be KEY=VALUE pairs\n")
        );
    }

    #[test]
    fn missing_job_inside_a_job_uses_its_own_instance_without_waiting() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(
            &["stop", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")],
        );
        assert_eq!(outcome.code, 0);
        assert_eq!(
            daemon.request(),
            Request::Stop {
                job: "web".into(),
                env: vec![],
                instance: Some("x".into()),
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["start", "--socket", &daemon.path], &[("UPSTART_JOB", "web")]);
        assert_eq!(
            daemon.request(),
            Request::Start {
                job: "web".into(),
                env: vec![],
                instance: Some(String::new()),
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(
            &["reload", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")],
        );
        assert_eq!(
            daemon.request(),
            Request::Reload {
                job: "web".into(),
                env: vec![],
                instance: Some("x".into())
            }
        );
    }

    #[test]
    fn missing_job_outside_a_job_is_an_error() {
        let outcome = run(&["start", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(outcome.code, 1);
        assert_eq!(
            outcome.err,
            "uprisectl: missing job name\nTry 'uprisectl --help' for more information.\n"
        );
        assert_eq!(run(&["emit", "--socket", "/nonexistent/socket"], &[]).code, 1);
    }

    #[test]
    fn connection_refused_is_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        drop(UnixListener::bind(&path).unwrap());
        let path = path.to_str().unwrap();
        let outcome = run(&["list", "--socket", path], &[]);
        assert_eq!(outcome.code, 1);
        assert_eq!(
            outcome.err,
            format!("uprisectl: Unable to connect to uprise at {path}: Connection refused\n")
        );
    }

    #[test]
    fn socket_from_environment_and_equals_form() {
        let daemon = Daemon::start(&[r#"{"reply":"text","text":"init (uprise 0.1.0)"}"#, DONE]);
        let socket = format!("--socket={}", daemon.path);
        let outcome = run(&[&socket, "version"], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "init (uprise 0.1.0)\n"));
        assert_eq!(daemon.request(), Request::Version);

        let daemon = Daemon::start(&[DONE]);
        let path = daemon.path.clone();
        assert_eq!(run(&["reload-configuration"], &[("UPRISE_SOCKET", &path)]).code, 0);
        assert_eq!(daemon.request(), Request::ReloadConfiguration);
    }

    #[test]
    fn telinit_emits_runlevel() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["telinit", "2", "--socket", &daemon.path], &[("RUNLEVEL", "S")]);
        assert_eq!(outcome.code, 0);
        assert_eq!(
            daemon.request(),
            Request::Emit {
                event: "runlevel".into(),
                env: vec!["RUNLEVEL=2".into(), "PREVLEVEL=S".into()],
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run_as(
            "telinit",
            &["telinit", "s", "-e", "WHY=test", "--socket", &daemon.path],
            &[],
        );
        assert_eq!(
            daemon.request(),
            Request::Emit {
                event: "runlevel".into(),
                env: vec!["RUNLEVEL=S".into(), "PREVLEVEL=N".into(), "WHY=test".into()],
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["telinit", "q", "--socket", &daemon.path], &[]);
        assert_eq!(daemon.request(), Request::ReloadConfiguration);

        let daemon = Daemon::start(&[DONE]);
        run_as("telinit", &["telinit", "u", "--socket", &daemon.path], &[]);
        assert_eq!(daemon.request(), Request::Reexec { binary: None });
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(
            run(
                &["reexec", "--binary", "/usr/sbin/uprise", "--socket", &daemon.path],
                &[]
            )
            .code,
            0
        );
        assert_eq!(
            daemon.request(),
            Request::Reexec {
                binary: Some("/usr/sbin/uprise".into())
            }
        );
        assert_eq!(run(&["telinit", "7", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn log_priority_usage_and_shutdown_requests() {
        let daemon = Daemon::start(&[r#"{"reply":"text","text":"message"}"#, DONE]);
        let outcome = run(&["log-priority", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "message\n");
        assert_eq!(daemon.request(), Request::LogPriority { priority: None });

        let daemon = Daemon::start(&[DONE]);
        run(&["log-priority", "debug", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::LogPriority {
                priority: Some("debug".into())
            }
        );
        assert_eq!(run(&["log-priority", "loud", "--socket", "/nonexistent"], &[]).code, 2);

        let daemon = Daemon::start(&[r#"{"reply":"text","text":"Usage: tty DEV=ttyX"}"#, DONE]);
        let outcome = run(&["usage", "tty", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "Usage: tty DEV=ttyX\n");
        assert_eq!(daemon.request(), Request::Usage { job: "tty".into() });

        let daemon = Daemon::start(&[DONE]);
        run(&["shutdown", "--reboot", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::Shutdown {
                action: ShutdownAction::Reboot
            }
        );
        assert_eq!(
            run(&["shutdown", "--reboot", "--halt", "--socket", "/nonexistent"], &[]).code,
            2
        );
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["frobnicate", "--socket", "/nonexistent"][..],
            &["--bogus", "list"],
            &["list", "extra", "--socket", "/nonexistent"],
            &["reload", "-n", "web"],
            &["start", "--json", "web"],
            &["list", "--socket"],
            &["--quiet=yes", "list"],
            &[],
        ] {
            let outcome = run(args, &[]);
            assert_eq!(outcome.code, 2, "{args:?}");
            assert!(
                outcome.err.ends_with("Try 'uprisectl --help' for more information.\n"),
                "{args:?}"
            );
        }
        assert_eq!(
            run(&["frobnicate"], &[]).err,
            "uprisectl: unknown command: frobnicate\nTry 'uprisectl --help' for more information.\n"
        );
    }

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
        let outcome = run(&["--version"], &[]);
        assert_eq!(
            outcome.out,
            format!("uprisectl (uprise {})\n", env!("CARGO_PKG_VERSION"))
        );
    }

    fn text_reply(text: &str) -> String {
        serde_json::to_string(&Reply::Text { text: text.into() }).unwrap()
    }

    #[test]
    fn set_env_sends_global_or_job_local_requests() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["set-env", "A=1", "B", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str(), outcome.err.as_str()), (0, "", ""));
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=1".into(), "B".into()],
                retain: false,
                job: None,
                instance: None
            }
        );
        // Inside a job: that instance's table, unless -g.
        let inside = [("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")];
        let daemon = Daemon::start(&[DONE]);
        run(&["set-env", "-r", "A=2", "--socket", &daemon.path], &inside);
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=2".into()],
                retain: true,
                job: Some("web".into()),
                instance: Some("x".into())
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["set-env", "-gr", "A=2", "--socket", &daemon.path], &inside);
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=2".into()],
                retain: true,
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(
            &["set-env", "--global", "--retain", "A=2", "--socket", &daemon.path],
            &[],
        );
        assert!(matches!(
            daemon.request(),
            Request::SetEnv {
                retain: true,
                job: None,
                ..
            }
        ));

        let outcome = run(&["set-env", "=x", "--socket", "/nonexistent"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (1, "uprisectl: Env must be VAR or VAR=VALUE: =x\n")
        );
        let outcome = run(&["set-env", "--socket", "/nonexistent"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (
                1,
                "uprisectl: missing variable name\nTry 'uprisectl --help' for more information.\n"
            )
        );
        assert_eq!(run(&["list", "-g", "--socket", "/nonexistent"], &[]).code, 2);
        assert_eq!(run(&["get-env", "-r", "A", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn get_list_unset_and_reset_env() {
        let daemon = Daemon::start(&[&text_reply("1"), DONE]);
        let outcome = run(&["get-env", "A", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "1\n"));
        assert_eq!(
            daemon.request(),
            Request::GetEnv {
                name: "A".into(),
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[r#"{"reply":"error","message":"No such variable: Z"}"#]);
        let outcome = run(
            &["get-env", "-g", "Z", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web")],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (1, "", "uprisectl: No such variable: Z\n")
        );
        assert!(matches!(daemon.request(), Request::GetEnv { job: None, .. }));
        assert_eq!(run(&["get-env", "A", "B", "--socket", "/nonexistent"], &[]).code, 2);

        let daemon = Daemon::start(&[&text_reply("A=1"), &text_reply("B="), DONE]);
        let outcome = run(&["list-env", "--socket", &daemon.path], &[("UPSTART_JOB", "web")]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "A=1\nB=\n"));
        assert_eq!(
            daemon.request(),
            Request::ListEnv {
                job: Some("web".into()),
                instance: Some(String::new())
            }
        );

        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["unset-env", "A", "B", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::UnsetEnv {
                names: vec!["A".into(), "B".into()],
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["reset-env", "-g", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::ResetEnv {
                job: None,
                instance: None
            }
        );
        assert_eq!(run(&["reset-env", "A", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn show_config_and_the_meaning_of_dash_e() {
        let daemon = Daemon::start(&[&text_reply("a\n  emits x\n  start on startup"), &text_reply("b"), DONE]);
        let outcome = run(&["show-config", "-e", "--socket", &daemon.path], &[]);
        assert_eq!(
            (outcome.code, outcome.out.as_str()),
            (0, "a\n  emits x\n  start on startup\nb\n")
        );
        assert_eq!(
            daemon.request(),
            Request::ShowConfig {
                job: None,
                enumerate: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["show-config", "web", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::ShowConfig {
                job: Some("web".into()),
                enumerate: false
            }
        );
        assert_eq!(run(&["show-config", "a", "b", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn check_config_exits_1_when_it_reports() {
        let daemon = Daemon::start(&[&text_reply("web\n  start on: unknown job grape"), DONE]);
        let outcome = run(
            &[
                "check-config",
                "-i",
                "a, b",
                "--ignore-events=c",
                "-w",
                "--socket",
                &daemon.path,
            ],
            &[],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (1, "web\n  start on: unknown job grape\n", "")
        );
        assert_eq!(
            daemon.request(),
            Request::CheckConfig {
                job: None,
                ignore: vec!["a".into(), "b".into(), "c".into()],
                warn: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["check-config", "web", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, ""));
        assert_eq!(
            daemon.request(),
            Request::CheckConfig {
                job: Some("web".into()),
                ignore: vec![],
                warn: false
            }
        );
        assert_eq!(run(&["check-config", "-i", "--socket", "/nonexistent"], &[]).code, 1);
    }

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
        assert_eq!(run(&["log", "web", "B", "--socket", "/nonexistent"], &[]).code, 1);
        assert_eq!(run(&["log", "--socket", "/nonexistent"], &[]).code, 1);
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
