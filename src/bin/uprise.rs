//! `uprise`: the daemon. This build loads and checks its configuration the way the daemon
//! will, reports every diagnostic (including "not yet enforced" warnings), and stops: the
//! supervisor loop is not part of this build yet.

use std::path::PathBuf;
use std::process::ExitCode;

use uprise::model::{Config, ConfigSource};

fn main() -> ExitCode {
    let mut confdirs: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--confdir" => match args.next() {
                Some(dir) => confdirs.push(PathBuf::from(dir)),
                None => {
                    eprintln!("uprise: --confdir takes a directory");
                    return ExitCode::from(2);
                }
            },
            "--version" => {
                println!("uprise {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("Usage: uprise [--confdir DIR]...");
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
    if confdirs.is_empty() {
        confdirs.push(PathBuf::from("/etc/init"));
    }
    let sources: Vec<ConfigSource> = confdirs.into_iter().map(ConfigSource::Dir).collect();
    let config = Config::load(&sources);
    for diagnostic in &config.diagnostics {
        eprint!("{}", config.sources.render(diagnostic));
    }
    eprintln!(
        "uprise: loaded {} jobs; the supervisor is not part of this build",
        config.jobs.len()
    );
    ExitCode::from(1)
}
