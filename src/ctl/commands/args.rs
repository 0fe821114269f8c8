//! The command line's options and arguments: parsing (global options anywhere, `--`, bundled
//! short options, the options each command takes), the offline commands handed on before
//! that, and the shapes of arguments the commands share (`JOB [KEY=VALUE...]`, `[JOB]`, none).

use crate::control::proto::ShutdownAction;
use crate::ctl::offline;

use super::{Failure, help, usage};

/// The offline commands, when one is the command: they get the raw arguments that follow it,
/// after any options given before it, which their own parsers judge as they judge the rest;
/// but `--socket PATH` before the command is left out (an alias may well add it to every
/// command line), though none of them takes it after.
pub(super) fn run_offline(program: &str, args: &[String]) -> Option<i32> {
    let mut before = Vec::new();
    let mut iter = args.iter().enumerate();
    while let Some((index, arg)) = iter.next() {
        match arg.as_str() {
            "--socket" => {
                iter.next();
            }
            socket if socket.starts_with("--socket=") => {}
            "--" => {
                let (index, command) = iter.next()?;
                return offline_command(program, command, before, &args[index + 1..]);
            }
            option if option.starts_with('-') && option.len() > 1 => before.push(arg.clone()),
            command => return offline_command(program, command, before, &args[index + 1..]),
        }
    }
    None
}

fn offline_command(program: &str, command: &str, mut prefix: Vec<String>, rest: &[String]) -> Option<i32> {
    prefix.extend_from_slice(rest);
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match command {
        "check" => Some(offline::check(program, &prefix)),
        "next-elapse" => Some(offline::next_elapse(program, &prefix)),
        "notify" => Some(crate::ctl::notify::notify(program, &prefix, &mut out, &mut err)),
        "completions" => Some(crate::ctl::shell::completions_command(
            program, &prefix, &mut out, &mut err,
        )),
        "man" => Some(crate::ctl::shell::man_command(program, &prefix, &mut out, &mut err)),
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
    /// The option's long form, by which the help's table names it.
    fn long(&self) -> &'static str {
        match self {
            Opt::Socket(_) => "--socket",
            Opt::Quiet => "--quiet",
            Opt::Verbose => "--verbose",
            Opt::Help => "--help",
            Opt::Version => "--version",
            Opt::NoWait => "--no-wait",
            Opt::Now => "--now",
            Opt::Json => "--json",
            Opt::Shutdown(ShutdownAction::Halt) => "--halt",
            Opt::Shutdown(ShutdownAction::Poweroff) => "--poweroff",
            Opt::Shutdown(ShutdownAction::Reboot) => "--reboot",
            Opt::Env(_) => "--env",
            Opt::Global => "--global",
            Opt::Retain => "--retain",
            Opt::Enumerate => "--enumerate",
            Opt::IgnoreEvents(_) => "--ignore-events",
            Opt::Warn => "--warn",
            Opt::Follow => "--follow",
            Opt::Lines(_) => "--lines",
            Opt::Binary(_) => "--binary",
            Opt::Since(_) => "--since",
            Opt::Output(_) => "--output",
            Opt::Format(_) => "--format",
            Opt::Offline(_) => "--offline",
        }
    }

    /// Whether `command` takes this option, written `form` (`-n`, `--lines`): the help's table
    /// is the one list of what each command takes (the global options go with every one).
    fn accepted_by(&self, command: Option<&str>, form: &str) -> bool {
        help::accepts(command, self.long()) && help::accepts(command, form)
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
        let name = written.split('=').next().unwrap_or(&written).to_string();
        if !opt.accepted_by(command, &name) {
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
        Err(usage("Env must be KEY=VALUE pairs"))
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
        None => Err(usage("missing job name")),
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
    use super::*;
    use crate::ctl::commands::help::{COMMANDS, OFFLINE, command_options, option_forms, option_value};
    use crate::ctl::commands::tests::run;

    /// A value for an option's value word.
    fn sample(value: &str) -> &'static str {
        match value {
            "N" => "3",
            "Z" => "UTC",
            "T" => "2026-01-01T00:00:00Z",
            "KEY=VALUE" => "A=1",
            "PID" => "1",
            _ => "x",
        }
    }

    /// Every option the help lists for a daemon command parses, each of its forms to the same
    /// option; every option the parser knows is refused by the commands that do not list it.
    #[test]
    fn the_parser_takes_exactly_the_options_the_help_lists() {
        let every_long: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|help| command_options(help))
            .flat_map(|(spec, _)| {
                option_forms(spec)
                    .filter(|form| form.starts_with("--"))
                    .collect::<Vec<_>>()
            })
            .collect();
        for help in COMMANDS.iter().filter(|help| !OFFLINE.contains(&help.name)) {
            let options = command_options(help);
            for (spec, _) in &options {
                let value: Vec<String> = option_value(spec)
                    .map(|value| sample(value).to_string())
                    .into_iter()
                    .collect();
                let mut parsed_forms = Vec::new();
                for form in option_forms(spec) {
                    let opt = match form.strip_prefix("--") {
                        Some(long) => long_option(long, &mut value.iter()).map(|opt| vec![(opt, form.to_string())]),
                        None => short_options(&form[1..], &mut value.iter(), Some(help.name)),
                    };
                    let opt = opt.unwrap_or_else(|_| panic!("{} {form}: not parsed", help.name));
                    assert!(
                        opt[0].0.accepted_by(Some(help.name), form),
                        "{} {form}: refused",
                        help.name
                    );
                    parsed_forms.push(opt[0].0.clone());
                }
                parsed_forms.dedup();
                assert!(parsed_forms.len() <= 1, "{} {spec}: the forms differ", help.name);
            }
            for long in &every_long {
                let listed = options
                    .iter()
                    .any(|(spec, _)| option_forms(spec).any(|form| form == *long));
                let args = vec![help.name.to_string(), long.to_string(), "x".to_string()];
                let refused = parse(&args)
                    .error
                    .is_some_and(|failure| failure.message == format!("unknown option: {long}"));
                assert_eq!(refused, !listed, "{} {long}", help.name);
            }
        }
    }

    /// The offline commands take the options the help lists and refuse others (exit 2).
    #[test]
    fn offline_commands_take_exactly_the_options_the_help_lists() {
        for help in COMMANDS.iter().filter(|help| OFFLINE.contains(&help.name)) {
            let positional = match help.name {
                "check" => "/nonexistent",
                "next-elapse" => "every 1h",
                "completions" => "bash",
                "man" => "uprise",
                _ => "X=1",
            };
            let run_one = |args: &[String]| -> i32 {
                let mut args = args.to_vec();
                args.push(positional.to_string());
                match help.name {
                    "check" => offline::check("uprisectl", &args),
                    "next-elapse" => offline::next_elapse("uprisectl", &args),
                    "notify" => crate::ctl::notify::notify("uprisectl", &args, &mut Vec::new(), &mut Vec::new()),
                    "completions" => {
                        crate::ctl::shell::completions_command("uprisectl", &args, &mut Vec::new(), &mut Vec::new())
                    }
                    _ => crate::ctl::shell::man_command("uprisectl", &args, &mut Vec::new(), &mut Vec::new()),
                }
            };
            for (spec, _) in help.options {
                for form in option_forms(spec).filter(|form| *form != "-h" && *form != "--help") {
                    let mut args = vec![form.to_string()];
                    args.extend(option_value(spec).map(|value| sample(value).to_string()));
                    assert_ne!(run_one(&args), 2, "{} {form}", help.name);
                }
            }
            for stranger in ["--socket", "-v", "--bogus"] {
                assert_eq!(
                    run_one(&[stranger.to_string(), "x".to_string()]),
                    2,
                    "{} {stranger}",
                    help.name
                );
            }
        }
    }

    #[test]
    fn bad_env_argument_is_a_usage_error_before_connecting() {
        let outcome = run(&["start", "web", "PORT", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (
                2,
                "uprisectl: Env must be KEY=VALUE pairs\nTry 'uprisectl --help' for more information.\n"
            )
        );
        let outcome = run(&["emit", "up", "=x", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (
                2,
                "uprisectl: Env must be KEY=VALUE pairs\nTry 'uprisectl --help' for more information.\n"
            )
        );
    }
}
