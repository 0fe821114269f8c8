//! The client's shell side: completion scripts (`uprisectl completions SHELL`) and manual
//! pages (`uprisectl man PAGE`), all made from the tables `--help` is made from (`commands`'
//! `COMMANDS` and `GLOBAL_OPTIONS`, `daemon_options`), so that none of them can say
//! something the parsers do not do. Both commands run offline and print to stdout.
//!
//! - `completions.rs`: bash, zsh and fish scripts; a JOB argument is completed from a
//!   running daemon (`uprisectl list`, errors ignored) at completion time;
//! - `man.rs`: `uprisectl(8)`, `uprise(8)` and `uprise-jobs(5)` (from `docs/language.md`);
//! - `roff.rs`: escaping for man(7) and the small markdown-to-roff converter;
//! - `daemon_options.rs`: the daemon's option table, which `uprise --help` prints.

mod completions;
pub mod daemon_options;
mod man;
mod roff;

use std::io::Write;

use super::commands::{USAGE_ERROR, help_text};

/// The shells `completions` writes for.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// The pages `man` prints.
pub const PAGES: [&str; 3] = ["uprisectl", "uprise", "uprise-jobs"];

/// `uprisectl completions bash|zsh|fish`.
pub fn completions_command(program: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    one_word(program, "completions", args, &SHELLS, out, err, |shell| {
        completions::script(shell)
    })
}

/// `uprisectl man uprisectl|uprise|uprise-jobs`.
pub fn man_command(program: &str, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    one_word(program, "man", args, &PAGES, out, err, man::page)
}

/// A command that takes one word of `choices` (or `--help`) and prints what `make` makes of it.
fn one_word(
    program: &str,
    command: &str,
    args: &[String],
    choices: &[&str],
    out: &mut dyn Write,
    err: &mut dyn Write,
    make: impl Fn(&str) -> String,
) -> i32 {
    let usage_error = |err: &mut dyn Write, message: String| {
        let _ = writeln!(err, "{program}: {command}: {message}");
        let _ = writeln!(err, "Try '{program} {command} --help' for more information.");
        USAGE_ERROR
    };
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        let _ = out.write_all(help_text(program, Some(command)).unwrap_or_default().as_bytes());
        return 0;
    }
    match args {
        [] => usage_error(err, format!("missing argument: one of {}", choices.join(", "))),
        [word] if choices.contains(&word.as_str()) => {
            let _ = out.write_all(make(word).as_bytes());
            0
        }
        [word] if word.starts_with('-') => usage_error(err, format!("unknown option: {word}")),
        [word] => usage_error(err, format!("unknown argument: {word} (one of {})", choices.join(", "))),
        [_, extra, ..] => usage_error(err, format!("unexpected argument: {extra}")),
    }
}
