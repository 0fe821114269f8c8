//! `uprisectl`: the uprise client, `initctl`-compatible. Offline commands (`check`,
//! `next-elapse`) work without a daemon; the others talk to it over the control socket.
//!
//! Invoked through a link named `start`, `stop`, `restart`, `reload`, `status` or `telinit`,
//! the command is implied by the name; as `uprisectl` or `initctl` it is the first argument.

use std::path::Path;
use std::process::ExitCode;

use uprise::ctl::{commands, offline};

const PROGRAM: &str = "uprisectl";

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let program = argv
        .next()
        .as_deref()
        .and_then(|argv0| Path::new(argv0).file_name())
        .and_then(|name| name.to_str())
        .filter(|name| !name.is_empty())
        .unwrap_or(PROGRAM)
        .to_string();
    let mut args: Vec<String> = argv.collect();
    let code = match commands::implied_command(&program) {
        Some(command) => {
            args.insert(0, command.to_string());
            commands::run(&program, &args)
        }
        None => match args.split_first() {
            Some((command, rest)) if command == "check" => offline::check(&program, rest),
            Some((command, rest)) if command == "next-elapse" => offline::next_elapse(&program, rest),
            _ => commands::run(&program, &args),
        },
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
