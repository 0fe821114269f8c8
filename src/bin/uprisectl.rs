//! `uprisectl`: the uprise client, `initctl`-compatible. Offline commands (`check`,
//! `next-elapse`) work without a daemon.

use std::process::ExitCode;

const PROGRAM: &str = "uprisectl";

fn usage() {
    println!("Usage: {PROGRAM} COMMAND [OPTION...] [ARG...]");
    println!();
    println!("Offline commands:");
    println!("  check FILE|DIR...          check job files; exit 1 if any is invalid");
    println!("  next-elapse EXPRESSION...  print when a temporal expression fires next");
    println!("  version                    print the version");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        usage();
        return ExitCode::from(2);
    };
    let code = match command.as_str() {
        "check" => uprise::ctl::offline::check(PROGRAM, rest),
        "next-elapse" => uprise::ctl::offline::next_elapse(PROGRAM, rest),
        "version" | "--version" => {
            println!("uprisectl (uprise {})", env!("CARGO_PKG_VERSION"));
            0
        }
        "help" | "--help" | "-h" => {
            usage();
            0
        }
        other => {
            eprintln!("{PROGRAM}: unknown command: {other}");
            eprintln!("Try '{PROGRAM} --help' for more information.");
            2
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
