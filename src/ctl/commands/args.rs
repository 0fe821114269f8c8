//! The command line's options and arguments: parsing (global options anywhere, `--`, bundled
//! short options, the options each command takes), the offline commands handed on before
//! that, and the shapes of arguments the commands share (`JOB [KEY=VALUE...]`, `[JOB]`, none).

use crate::control::proto::ShutdownAction;
use crate::ctl::offline;

use super::{Failure, failure, missing, usage};

/// The offline commands, when one is the command: they get the raw arguments that follow it
/// (`-q`/`--quiet` given before the command is passed on).
pub(super) fn run_offline(program: &str, args: &[String]) -> Option<i32> {
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
        "notify" => {
            // `-q` given before it means nothing to `notify`, which prints only errors.
            let rest: Vec<String> = prefix
                .into_iter()
                .filter(|arg| arg != "-q" && arg != "--quiet")
                .collect();
            Some(crate::ctl::notify::notify(
                program,
                &rest,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ))
        }
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
    Now,
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
    Since(String),
    Output(String),
    Format(String),
    Offline(String),
}

impl Opt {
    /// Whether `command` takes this option (the global ones go with every command).
    fn accepted_by(&self, command: Option<&str>) -> bool {
        match self {
            Opt::Socket(_) | Opt::Quiet | Opt::Verbose | Opt::Help | Opt::Version => true,
            Opt::NoWait => matches!(command, Some("start" | "stop" | "restart" | "emit")),
            Opt::Now => command == Some("start"),
            Opt::Json => matches!(command, Some("status" | "list" | "monitor" | "timers" | "pools")),
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
            Opt::Since(_) => matches!(command, Some("plot" | "blame")),
            Opt::Output(_) => matches!(command, Some("plot" | "graph")),
            Opt::Format(_) | Opt::Offline(_) => command == Some("graph"),
        }
    }
}

/// A parsed command line. `words[0]` is the command.
#[derive(Default)]
pub(super) struct Parsed {
    pub(super) socket: Option<String>,
    pub(super) quiet: bool,
    pub(super) verbose: bool,
    pub(super) help: bool,
    pub(super) version: bool,
    pub(super) no_wait: bool,
    pub(super) now: bool,
    pub(super) json: bool,
    pub(super) shutdown: Vec<ShutdownAction>,
    pub(super) extra_env: Vec<String>,
    pub(super) global: bool,
    pub(super) retain: bool,
    pub(super) enumerate: bool,
    pub(super) ignore_events: Vec<String>,
    pub(super) warn: bool,
    pub(super) follow: bool,
    pub(super) lines: Option<String>,
    pub(super) binary: Option<String>,
    pub(super) since: Option<String>,
    pub(super) output: Option<String>,
    pub(super) format: Option<String>,
    pub(super) offline: Vec<String>,
    pub(super) words: Vec<String>,
    /// The first error met; `--help` anywhere still wins over it.
    pub(super) error: Option<Failure>,
}

pub(super) fn parse(args: &[String]) -> Parsed {
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
            Opt::Now => parsed.now = true,
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
            Opt::Since(since) => parsed.since = Some(since),
            Opt::Output(path) => parsed.output = Some(path),
            Opt::Format(format) => parsed.format = Some(format),
            Opt::Offline(path) => parsed.offline.push(path),
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
        "since" => return value("boot, all or a DURATION").map(Opt::Since),
        "output" => return value("a FILE").map(Opt::Output),
        "format" => return value("dot or svg").map(Opt::Format),
        "offline" => return value("a DIR").map(Opt::Offline),
        "quiet" => Opt::Quiet,
        "verbose" => Opt::Verbose,
        "help" => Opt::Help,
        "version" => Opt::Version,
        "no-wait" => Opt::NoWait,
        "now" => Opt::Now,
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
            'o' if command == Some("plot") => (Opt::Output(value("a FILE")?), true),
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
pub(super) fn env_pairs(args: &[String]) -> Result<Vec<String>, Failure> {
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
pub(super) struct Target {
    pub(super) job: String,
    pub(super) env: Vec<String>,
    pub(super) instance: Option<String>,
    /// From the environment: the command must not wait (it would wait on itself).
    pub(super) own: bool,
}

pub(super) fn target(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Failure> {
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

pub(super) fn no_more(args: &[String]) -> Result<(), Failure> {
    match args.first() {
        Some(extra) => Err(usage(format!("unexpected argument: {extra}"))),
        None => Ok(()),
    }
}

/// `[JOB]`: at most one argument.
pub(super) fn optional_job(args: &[String]) -> Result<Option<String>, Failure> {
    match args {
        [] => Ok(None),
        [job] => Ok(Some(job.clone())),
        [_, extra, ..] => Err(usage(format!("unexpected argument: {extra}"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::ctl::commands::tests::run;

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
}
