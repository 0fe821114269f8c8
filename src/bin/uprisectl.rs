//! `uprisectl`: the uprise client, `initctl`-compatible. Offline commands (`check`,
//! `next-elapse`) work without a daemon; the others talk to it over the control socket.
//!
//! Invoked through a link named `start`, `stop`, `restart`, `reload`, `status` or `telinit`,
//! the command is implied by the name; as `uprisectl` or `initctl` it is the first argument.
//!
//! The client starts once per query, often from scripts in loops, so its start-up is most of
//! a `status` round trip. It has a C `main` and skips the Rust runtime's set-up, which reads
//! `/proc/self/maps` to place a stack guard, installs an alternate signal stack and SIGSEGV
//! and SIGBUS handlers, and polls fds 0-2 (about 0.2 ms of a 2 ms round trip on the
//! benchmark VM). What it needs of that set-up it does itself: SIGPIPE is ignored (a daemon
//! that goes away mid-request is an error reply, not a silent death) and stdout is flushed
//! before exit. `std::env::args` still works: std captures argv itself on Linux.
// The test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

use std::path::Path;

use uprise::ctl::{commands, offline};

const PROGRAM: &str = "uprisectl";

/// The C entry point; the exit code is `run`'s.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    use std::io::Write;
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A panic must not unwind out of a C function: exit 101 as a Rust `main` would.
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    let _ = std::io::stdout().flush();
    code.clamp(0, 255)
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> i32 {
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
    match commands::implied_command(&program) {
        Some(command) => {
            args.insert(0, command.to_string());
            commands::run(&program, &args)
        }
        None => match args.split_first() {
            Some((command, rest)) if command == "check" => offline::check(&program, rest),
            Some((command, rest)) if command == "next-elapse" => offline::next_elapse(&program, rest),
            _ => commands::run(&program, &args),
        },
    }
}
