//! The daemon commands of `uprisectl`, compatible with Upstart's `initctl` (and its `start`,
//! `stop`, `restart`, `reload`, `status` and `telinit` links): argument parsing, the request
//! each command sends, and the output printed from the replies.
//!
//! Global options may appear anywhere: `--socket PATH` (or `--socket=PATH`), `-q/--quiet`,
//! `-v/--verbose`, `--help`, `--version`; `--` ends the options. Exit status: 0 on success,
//! 1 when the daemon answers with an error or cannot be reached (`PROGRAM: MESSAGE` on
//! stderr), 2 on a usage error (followed by `Try 'PROGRAM --help' for more information.`).

use std::io::Write;
use std::path::PathBuf;

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
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
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
            let mut sink = std::io::sink();
            let out: &mut dyn Write = if parsed.quiet { &mut sink } else { out };
            execute(program, &parsed, out, env)
        }
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            let _ = writeln!(err, "{program}: {}", failure.message);
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
         instance ($UPSTART_JOB, $UPSTART_INSTANCE) and never wait.\n",
    );
    text
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Job,
    Event,
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
        name: "emit",
        args: "EVENT [KEY=VALUE...]",
        summary: "emit an event, wait until it has been handled",
        group: Group::Event,
        options: &[NO_WAIT],
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
}

impl Opt {
    /// Whether `command` takes this option (the global ones go with every command).
    fn accepted_by(&self, command: Option<&str>) -> bool {
        match self {
            Opt::Socket(_) | Opt::Quiet | Opt::Verbose | Opt::Help | Opt::Version => true,
            Opt::NoWait => matches!(command, Some("start" | "stop" | "restart" | "emit")),
            Opt::Json => matches!(command, Some("status" | "list")),
            Opt::Shutdown(_) => command == Some("shutdown"),
            Opt::Env(_) => command == Some("telinit"),
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
            None => short_options(&arg[1..], &mut iter),
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
        "quiet" => Opt::Quiet,
        "verbose" => Opt::Verbose,
        "help" => Opt::Help,
        "version" => Opt::Version,
        "no-wait" => Opt::NoWait,
        "json" => Opt::Json,
        "halt" => Opt::Shutdown(ShutdownAction::Halt),
        "poweroff" => Opt::Shutdown(ShutdownAction::Poweroff),
        "reboot" => Opt::Shutdown(ShutdownAction::Reboot),
        _ => return Err(usage(format!("unknown option: --{name}"))),
    };
    if inline.is_some() {
        return Err(usage(format!("option '--{name}' takes no value")));
    }
    Ok(opt)
}

/// A bundle of short options (`-qn`); `-e` takes the rest of the word or the next argument.
fn short_options<'a>(
    letters: &str,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<Vec<(Opt, String)>, Failure> {
    let mut found = Vec::new();
    for (at, letter) in letters.char_indices() {
        let opt = match letter {
            'q' => Opt::Quiet,
            'v' => Opt::Verbose,
            'h' => Opt::Help,
            'n' => Opt::NoWait,
            'e' => {
                let inline = &letters[at + 1..];
                let value = if inline.is_empty() {
                    rest.next().cloned()
                } else {
                    Some(inline.to_string())
                };
                let value = value
                    .filter(|value| !value.is_empty())
                    .ok_or_else(|| usage("option '-e' needs KEY=VALUE"))?;
                found.push((Opt::Env(value), "-e".to_string()));
                break;
            }
            other => return Err(usage(format!("unknown option: -{other}"))),
        };
        found.push((opt, format!("-{letter}")));
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
            (Request::Status { job, env, instance }, show)
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
        "help" => {
            let _ = out.write_all(help_text(program, args.first().map(String::as_str)).as_bytes());
            return Ok(());
        }
        other => return Err(usage(format!("unknown command: {other}"))),
    };
    let socket = match &parsed.socket {
        Some(path) => PathBuf::from(path),
        None => client::resolve_socket_path(None, env, nix::unistd::geteuid().as_raw()),
    };
    send(&socket, &request, show, out)
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
        "u" | "U" => Err(failure("re-exec is not available yet")),
        other => Err(usage(format!("illegal runlevel: {other}"))),
    }
}

/// Sends `request` and prints its replies as `show` says.
fn send(socket: &std::path::Path, request: &Request, show: Show, out: &mut dyn Write) -> Result<(), Failure> {
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
    use crate::control::proto::ProcessStatus;
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
        InstanceStatus {
            job: job.into(),
            instance: name.into(),
            goal: goal.into(),
            state: state.into(),
            processes: processes
                .iter()
                .map(|(kind, pid)| ProcessStatus {
                    kind: kind.to_string(),
                    pid: *pid,
                })
                .collect(),
            detail: Vec::new(),
        }
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
                instance: None
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

        let outcome = run_as("telinit", &["telinit", "u", "--socket", "/nonexistent"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (1, "telinit: re-exec is not available yet\n")
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
}
