//! The daemon commands of `uprisectl`, compatible with Upstart's `initctl` (and its `start`,
//! `stop`, `restart`, `reload`, `status` and `telinit` links): argument parsing, the request
//! each command sends, and the output printed from the replies.
//!
//! Global options may appear anywhere: `--socket PATH` (or `--socket=PATH`), `-q/--quiet`,
//! `-v/--verbose`, `-h/--help`, `--version`; `--` ends the options. Each command takes the
//! options its entry in `help`'s table lists, and no other: the parser asks the table.
//!
//! Exit status, the same for every command, the offline ones too: 0 on success; 1 when the
//! daemon answers with an error or cannot be reached (`PROGRAM: MESSAGE` on stderr), and
//! when `check` finds an invalid file (`check-config`, silently, when it reports anything);
//! 2 on a usage error (an unknown command or option, a missing or extra argument, a bad
//! option or argument value), followed by `Try 'PROGRAM --help' for more information.`.
//! Upstart's initctl exits 1 for a missing argument; uprise says 2 for every usage error
//! (docs/upstart-differences.md).
//!
//! On a terminal, `list` and `status` colour each line's `goal/state` (`COLOUR`): never
//! through a pipe, where the lines stay initctl's byte for byte, and never when `NO_COLOR` is
//! set and not empty.
//!
//! Here: the entry points, the failures and exit statuses, the dispatch of each command to
//! its subject, and the request-and-print round trip most commands share. `help` holds the
//! help texts; `args` the option parsing; `jobs`, `events`, `env` and `daemon` the commands
//! of those groups of the help (what each sends, and how its replies are shown); `log` the
//! `log` command, which reads the log file itself; `timers` the table of armed timers;
//! `pools` the resource pools; `waiting` the line a blocking command shows on a terminal
//! while it waits.

mod args;
mod daemon;
mod env;
mod events;
mod graph;
mod help;
mod jobs;
mod log;
mod plot;
mod pools;
#[cfg(test)]
mod tests;
mod timers;
mod waiting;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::control::proto::{self, InstanceStatus, Reply, Request};
use crate::ctl::client::{self, Client};

use args::{Parsed, parse, run_offline};
pub use daemon::LOG_PRIORITIES;
#[cfg(test)]
pub(crate) use help::command_help;
pub use help::usage_text;
pub(crate) use help::{COMMANDS, CommandHelp, GLOBAL_OPTIONS, OFFLINE, command_options, help_text};
pub(crate) use help::{GROUPS, NOTES, option_forms, option_value};

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
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    COLOUR.store(stdout.is_terminal() && !no_color, Ordering::Relaxed);
    let stderr = io::stderr();
    waiting::SHOW.store(stderr.is_terminal(), Ordering::Relaxed);
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
    let result = if parsed.help {
        write_help(program, parsed.words.first().map(String::as_str), out)
    } else if parsed.version {
        let _ = writeln!(out, "{program} (uprise {})", env!("CARGO_PKG_VERSION"));
        return 0;
    } else {
        match parsed.error.clone() {
            Some(failure) => Err(failure),
            None => {
                let mut sink = io::sink();
                let out: &mut dyn Write = if parsed.quiet { &mut sink } else { out };
                execute(program, &parsed, out, env)
            }
        }
    };
    report(program, result, err)
}

/// Prints the help for `command` (the full usage without one); an unknown command is a
/// usage error.
fn write_help(program: &str, command: Option<&str>, out: &mut dyn Write) -> Result<(), Failure> {
    let text =
        help_text(program, command).ok_or_else(|| usage(format!("unknown command: {}", command.unwrap_or(""))))?;
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// The exit status of `result`, with its message on `err`.
fn report(program: &str, result: Result<(), Failure>, err: &mut dyn Write) -> i32 {
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

/// Whether status lines are coloured: `run` sets it when stdout is a terminal and `NO_COLOR`
/// is unset or empty (no-color.org). `run_with` alone never colours, so what goes to a pipe
/// or a test's buffer is Upstart's text byte for byte.
static COLOUR: AtomicBool = AtomicBool::new(false);

/// `line`, the status line of `instance`, with its `goal/state` coloured when the state says
/// something at a glance: green for `start/running`, yellow for a start `queued` behind its
/// gate or pools, red for an instance whose details report a failure. Anything else, and
/// every other part of the line, is left as it is.
fn colour_status_line(line: &str, instance: &InstanceStatus) -> String {
    let colour = if instance.detail.iter().any(|detail| detail.starts_with("failed")) {
        "31"
    } else if instance.state == "queued" {
        "33"
    } else if instance.goal == "start" && instance.state == "running" {
        "32"
    } else {
        return line.to_string();
    };
    let word = format!("{}/{}", instance.goal, instance.state);
    match line.get(instance.job.len()..).and_then(|rest| rest.find(&word)) {
        Some(at) => {
            let at = instance.job.len() + at;
            let end = at + word.len();
            format!("{}\x1b[{colour}m{word}\x1b[0m{}", &line[..at], &line[end..])
        }
        None => line.to_string(),
    }
}

/// Why a command line failed: the message, the exit status, and whether to suggest `--help`.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    code: i32,
    hint: bool,
}

/// The exit status of every usage error, the offline commands' too.
pub(crate) const USAGE_ERROR: i32 = 2;

/// A usage error (an unknown command or option, a missing or extra argument, a bad value):
/// exit 2 with the `--help` hint.
fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: USAGE_ERROR,
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

/// Hands the command to its subject, which checks its arguments and builds its request; `send`
/// then prints the replies. `check-config`, `monitor` and `log` make their own round trip.
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
        "start" | "stop" | "restart" => jobs::start_stop_restart(command, args, wait, parsed.now, env)?,
        "reload" => jobs::reload(args, env)?,
        "action" => jobs::action(args)?,
        "status" => jobs::status(args, parsed, env)?,
        "list" => jobs::list(args, parsed)?,
        "emit" => events::emit(args, wait)?,
        "reload-configuration" => daemon::reload_configuration(args)?,
        "reexec" => daemon::reexec(args, parsed)?,
        "version" => daemon::version(args)?,
        "log-priority" => daemon::log_priority(args)?,
        "usage" => jobs::usage(args)?,
        "shutdown" => daemon::shutdown(args, parsed)?,
        "telinit" => (daemon::telinit(args, &parsed.extra_env, env)?, Show::Text),
        "set-env" => env::set_env(args, parsed, env)?,
        "get-env" => env::get_env(args, parsed, env)?,
        "list-env" => env::list_env(args, parsed, env)?,
        "unset-env" => env::unset_env(args, parsed, env)?,
        "reset-env" => env::reset_env(args, parsed, env)?,
        "show-config" => jobs::show_config(args, parsed)?,
        "check-config" => return jobs::run_check_config(args, parsed, env, out),
        "monitor" => return events::run_monitor(args, parsed, env, out),
        "log" => return log::run_log(args, parsed, env, out),
        "timers" => return timers::run_timers(args, parsed, env, out),
        "pools" => return pools::run_pools(args, parsed, env, out),
        "plot" => return plot::run_plot(args, parsed, env, out),
        "blame" => return plot::run_blame(args, parsed, env, out),
        "metrics" => daemon::metrics(args)?,
        "graph" => return graph::run_graph(args, parsed, env, out),
        "help" => {
            if let [_, extra, ..] = args {
                return Err(usage(format!("unexpected argument: {extra}")));
            }
            return write_help(program, args.first().map(String::as_str), out);
        }
        other => return Err(usage(format!("unknown command: {other}"))),
    };
    let socket = socket_path(parsed, env);
    waiting::while_waiting(&socket, &request, parsed.quiet, out, |out| {
        send(&socket, &request, show, out)
    })
}

/// The control socket: `--socket`, else the usual resolution.
fn socket_path(parsed: &Parsed, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match &parsed.socket {
        Some(path) => PathBuf::from(path),
        None => client::resolve_socket_path(None, env, nix::unistd::geteuid().as_raw()),
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
                    let colour = COLOUR.load(Ordering::Relaxed);
                    for instance in instances {
                        let line = proto::status_line(instance);
                        let line = if colour {
                            colour_status_line(&line, instance)
                        } else {
                            line
                        };
                        let _ = writeln!(out, "{line}");
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
            Reply::Text { .. }
            | Reply::Done
            | Reply::Error { .. }
            | Reply::Event { .. }
            | Reply::Change { .. }
            | Reply::Timers { .. }
            | Reply::Pools { .. }
            | Reply::History { .. }
            | Reply::Admission { .. } => {}
        })
        .map_err(failure)?;
    if show == Show::Json {
        print_json(out, &collected)?;
    }
    Ok(())
}

/// Prints `items` as one pretty JSON array.
fn print_json<T: serde::Serialize>(out: &mut dyn Write, items: &[T]) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(items).map_err(|error| failure(format!("cannot encode JSON: {error}")))?;
    let _ = writeln!(out, "{text}");
    Ok(())
}

/// Sends a request whose replies carry lists (`timers`, `pools`) and gathers them.
fn gather<T: Clone>(
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    request: &Request,
    pick: impl Fn(&Reply) -> Option<&[T]>,
) -> Result<Vec<T>, Failure> {
    let mut items = Vec::new();
    let mut client = Client::connect(socket_path(parsed, env)).map_err(failure)?;
    client
        .request(request, |reply| {
            if let Some(some) = pick(reply) {
                items.extend_from_slice(some);
            }
        })
        .map_err(failure)?;
    Ok(items)
}
