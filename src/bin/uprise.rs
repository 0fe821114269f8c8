//! `uprise`: the daemon. `uprise --user` runs a session supervisor in the foreground;
//! run as PID 1 it is the system's init (system mode).

use std::path::PathBuf;
use std::process::ExitCode;

use log::LevelFilter;
use uprise::ctl::shell::daemon_options::{daemon_usage_text, takes_value};
use uprise::runtime::{self, Options, logger};

/// C's `pow` for the embedded Lua, so that the tuned daemon does not map libm at start: see
/// `uprise::lua::math`.
#[cfg(all(feature = "tuned", target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    uprise::lua::math::pow(x, y)
}

/// C's `frexp` for the embedded Lua: see `uprise::lua::math`.
///
/// # Safety
/// `exponent` must be valid for a write, as C's `frexp` requires.
#[cfg(all(feature = "tuned", target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn frexp(x: f64, exponent: *mut std::ffi::c_int) -> f64 {
    let (fraction, power) = uprise::lua::math::frexp(x);
    // SAFETY: the caller passes a valid pointer (C's contract for frexp).
    unsafe { exponent.write(power) };
    fraction
}

/// The functions of one `double` that Lua's `math` library calls, for the tuned daemon:
/// libm's own, found on first use (see `uprise::lua::math`).
macro_rules! libm_unary {
    ($($name:ident),+) => {
        $(
            #[cfg(all(feature = "tuned", target_os = "linux", target_env = "gnu"))]
            #[unsafe(no_mangle)]
            pub extern "C" fn $name(x: f64) -> f64 {
                static SLOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let name = concat!(stringify!($name), "\0");
                let name = std::ffi::CStr::from_bytes_with_nul(name.as_bytes()).expect("a C name");
                uprise::lua::math::unary(&SLOT, name, x)
            }
        )+
    };
}

libm_unary!(sin, cos, tan, asin, acos, exp, log, log2, log10, sinh, cosh, tanh);

/// C's `atan2` for Lua's `math.atan`: see `uprise::lua::math`.
#[cfg(all(feature = "tuned", target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
pub extern "C" fn atan2(y: f64, x: f64) -> f64 {
    uprise::lua::math::atan2(y, x)
}

/// C's `ldexp` for Lua's string formatting and `math.ldexp`: see `uprise::lua::math`.
#[cfg(all(feature = "tuned", target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
pub extern "C" fn ldexp(x: f64, exponent: std::ffi::c_int) -> f64 {
    uprise::lua::math::ldexp(x, exponent)
}

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

/// `--reexec-probe FD`: the old image asks whether this binary can take over its state: the
/// state is whole, in uprise's format, and of a version this binary reads (`Snapshot::check`).
fn probe(fd: &str) -> ExitCode {
    let Ok(fd) = fd.parse::<i32>() else {
        eprintln!("uprise: --reexec-probe takes a descriptor number");
        return ExitCode::from(2);
    };
    let result = uprise::sys::exec::read_state(fd)
        .map_err(|error| error.to_string())
        .and_then(|bytes| uprise::reexec::Snapshot::check(&bytes).map_err(|error| error.to_string()));
    match result {
        Ok(_) => {
            println!("{}", uprise::sys::exec::PROBE_ANSWER);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("uprise: {message}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, fd] = all.as_slice()
        && flag == "--reexec-probe"
    {
        return probe(fd);
    }
    // First, while fds 3 to 34 are still free: spawns stage what a child inherits there,
    // so a spawn does not copy the daemon's descriptor table (see `reserve_fd_slots`).
    uprise::sys::spawn::reserve_fd_slots();
    let mut mode: Option<bool> = None;
    let mut confdirs = Vec::new();
    let mut logdir = None;
    let mut statedir = None;
    let mut procfs = PathBuf::from("/proc");
    let mut lua_budget = uprise::lua::sandbox::DEFAULT_BUDGET;
    let mut lua_memory = uprise::lua::sandbox::DEFAULT_MEMORY;
    let mut socket = None;
    let mut startup_event = Some("startup".to_string());
    let mut log_level = logger::DEFAULT_PRIORITY;
    let mut restore_fd = None;
    let mut listener_fd = None;
    let mut metrics_listen = None;
    // The command line to re-exec with: everything but the re-exec options.
    let mut kept = Vec::new();
    let mut args = all.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        if matches!(flag.as_str(), "--restore-fd" | "--listener-fd") {
            let number = inline
                .clone()
                .or_else(|| args.next())
                .and_then(|value| value.parse::<i32>().ok());
            match (flag.as_str(), number) {
                ("--restore-fd", Some(fd)) => restore_fd = Some(fd),
                ("--listener-fd", Some(fd)) => listener_fd = Some(fd),
                _ => {
                    eprintln!("uprise: {flag} takes a descriptor number");
                    return ExitCode::from(2);
                }
            }
            continue;
        }
        kept.push(arg.clone());
        let takes_value = inline.is_none() && takes_value(&flag);
        let mut value = |name: &str| match inline.clone().or_else(|| args.next()) {
            Some(value) => {
                if takes_value {
                    kept.push(value.clone());
                }
                Ok(value)
            }
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
            "--statedir" => value("--statedir").map(|dir| statedir = Some(PathBuf::from(dir))),
            "--procfs" => value("--procfs").map(|dir| procfs = PathBuf::from(dir)),
            "--lua-budget" => value("--lua-budget").and_then(|text| match text.parse::<u64>() {
                Ok(budget) if budget > 0 => {
                    lua_budget = budget;
                    Ok(())
                }
                _ => Err(format!(
                    "--lua-budget takes a positive number of instructions, not `{text}`"
                )),
            }),
            "--lua-memory" => value("--lua-memory").and_then(|text| match parse_size(&text) {
                Some(size) if size > 0 => {
                    lua_memory = size;
                    Ok(())
                }
                _ => Err(format!("--lua-memory takes a size such as 512K or 4M, not `{text}`")),
            }),
            "--socket" => value("--socket").map(|path| socket = Some(PathBuf::from(path))),
            "--startup-event" => value("--startup-event").map(|name| startup_event = Some(name)),
            "--no-startup-event" => {
                startup_event = None;
                Ok(())
            }
            "--metrics-listen" => {
                value("--metrics-listen").and_then(|text| match text.parse::<std::net::SocketAddr>() {
                    Ok(addr) => {
                        metrics_listen = Some(addr);
                        Ok(())
                    }
                    Err(_) => Err(format!(
                        "--metrics-listen takes an address and port such as 127.0.0.1:9310, not `{text}`"
                    )),
                })
            }
            "-v" | "--verbose" => {
                log_level = LevelFilter::Debug;
                Ok(())
            }
            "--debug" => {
                log_level = LevelFilter::Trace;
                Ok(())
            }
            "-q" | "--quiet" => {
                log_level = LevelFilter::Error;
                Ok(())
            }
            "--version" => {
                println!("uprise {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                print!("{}", daemon_usage_text());
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown option: {other}")),
        };
        if let Err(message) = result {
            eprint!("uprise: {message}\n{}", daemon_usage_text());
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
    // A job dir named on the command line must be there: a session daemon that starts with
    // no jobs because of a typo helps nobody. As init, the daemon logs it and carries on
    // (the loader reports every dir it cannot read); so does a re-exec, which must never
    // refuse to run.
    if user_mode && restore_fd.is_none() {
        let missing = confdirs.iter().find(|dir| !dir.is_dir());
        if let Some(dir) = missing {
            let why = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            eprintln!("uprise: the job dir {} {why}", dir.display());
            return ExitCode::from(1);
        }
    }
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
    let statedir = statedir.unwrap_or_else(|| {
        if user_mode {
            home_dir(".local/state", "XDG_STATE_HOME").join("uprise")
        } else {
            PathBuf::from("/var/lib/uprise")
        }
    });
    let socket = socket.unwrap_or_else(|| {
        if user_mode {
            user_runtime_dir().join("uprise/control")
        } else {
            PathBuf::from("/run/uprise/control")
        }
    });
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let options = Options {
        user_mode,
        confdirs,
        logdir,
        statedir,
        procfs,
        lua_budget,
        lua_memory,
        socket,
        startup_event,
        log_level,
        restore_fd,
        listener_fd,
        metrics_listen,
        args: kept,
        exe,
    };
    let result = runtime::run(options);
    // Lines logged on the way out, or before an error ended the start-up.
    logger::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("uprise: {error}");
            ExitCode::from(1)
        }
    }
}

/// `4096`, `512K`, `4M`: bytes.
fn parse_size(text: &str) -> Option<usize> {
    let (number, unit) = match text.strip_suffix(['K', 'k']) {
        Some(number) => (number, 1024),
        None => match text.strip_suffix(['M', 'm']) {
            Some(number) => (number, 1024 * 1024),
            None => (text, 1),
        },
    };
    number.parse::<usize>().ok()?.checked_mul(unit)
}
