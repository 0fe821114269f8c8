//! `uprise`: the daemon. `uprise --user` runs a session supervisor in the foreground;
//! run as PID 1 it is the system's init (system mode).

use std::path::PathBuf;
use std::process::ExitCode;

use uprise::runtime::{self, Options};

const USAGE: &str = "Usage: uprise [--user | --system] [--confdir DIR]... [--logdir DIR] [--socket PATH]
              [--startup-event NAME | --no-startup-event] [--debug]

  --user                run as a session supervisor (not PID 1)
  --system              run in system mode without being PID 1 (testing)
  --confdir DIR         read job files from DIR (repeatable)
  --logdir DIR          write job output to DIR/JOB.log
  --socket PATH         the control socket
  --startup-event NAME  the first event (default: startup)
  --no-startup-event    emit no first event
  --debug               log at debug priority";

fn user_runtime_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::geteuid())))
}

fn home_dir(sub: &str, xdg: &str) -> PathBuf {
    match std::env::var_os(xdg).filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(sub),
    }
}

fn main() -> ExitCode {
    let mut mode: Option<bool> = None;
    let mut confdirs = Vec::new();
    let mut logdir = None;
    let mut socket = None;
    let mut startup_event = Some("startup".to_string());
    let mut debug = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| match inline.clone().or_else(|| args.next()) {
            Some(value) => Ok(value),
            None => Err(format!("{name} takes a value")),
        };
        let result = match flag.as_str() {
            "--user" => {
                mode = Some(true);
                Ok(())
            }
            "--system" => {
                mode = Some(false);
                Ok(())
            }
            "--confdir" => value("--confdir").map(|dir| confdirs.push(PathBuf::from(dir))),
            "--logdir" => value("--logdir").map(|dir| logdir = Some(PathBuf::from(dir))),
            "--socket" => value("--socket").map(|path| socket = Some(PathBuf::from(path))),
            "--startup-event" => value("--startup-event").map(|name| startup_event = Some(name)),
            "--no-startup-event" => {
                startup_event = None;
                Ok(())
            }
            "--debug" => {
                debug = true;
                Ok(())
            }
            "--version" => {
                println!("uprise {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown option: {other}")),
        };
        if let Err(message) = result {
            eprintln!("uprise: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let user_mode = match mode {
        Some(user) => user,
        None if std::process::id() == 1 => false,
        None => {
            eprintln!(
                "uprise: not running as PID 1; use --user for a session supervisor (or --system to test system mode)"
            );
            return ExitCode::from(2);
        }
    };
    if confdirs.is_empty() {
        confdirs.push(if user_mode {
            home_dir(".config", "XDG_CONFIG_HOME").join("uprise")
        } else {
            PathBuf::from("/etc/init")
        });
    }
    let logdir = logdir.unwrap_or_else(|| {
        if user_mode {
            home_dir(".cache", "XDG_CACHE_HOME").join("uprise")
        } else {
            PathBuf::from("/var/log/uprise")
        }
    });
    let socket = socket.unwrap_or_else(|| {
        if user_mode {
            user_runtime_dir().join("uprise/control")
        } else {
            PathBuf::from("/run/uprise/control")
        }
    });
    let options = Options {
        user_mode,
        confdirs,
        logdir,
        socket,
        startup_event,
        debug,
    };
    match runtime::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("uprise: {error}");
            ExitCode::from(1)
        }
    }
}
