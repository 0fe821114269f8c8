//! The daemon commands: `reload-configuration`, `reexec`, `version`, `log-priority`,
//! `shutdown` and `telinit`.

use crate::control::proto::{Request, ShutdownAction};

use super::args::{Parsed, env_pairs, no_more};
use super::{Failure, Show, usage};

/// The log priorities `log-priority` accepts.
pub const LOG_PRIORITIES: [&str; 6] = ["debug", "info", "message", "warn", "error", "fatal"];

/// `reload-configuration`.
pub(super) fn reload_configuration(args: &[String]) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    Ok((Request::ReloadConfiguration, Show::Text))
}

/// `reexec [--binary PATH]`.
pub(super) fn reexec(args: &[String], parsed: &Parsed) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    Ok((
        Request::Reexec {
            binary: parsed.binary.clone(),
        },
        Show::Text,
    ))
}

/// `version`: prints the daemon's version.
pub(super) fn version(args: &[String]) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    Ok((Request::Version, Show::Text))
}

/// `metrics`: the daemon's figures, in Prometheus's text format.
pub(super) fn metrics(args: &[String]) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    Ok((Request::Metrics, Show::Text))
}

/// `log-priority [LEVEL]`: prints the priority, or sets it.
pub(super) fn log_priority(args: &[String]) -> Result<(Request, Show), Failure> {
    let priority = match args {
        [] => None,
        [level] if LOG_PRIORITIES.contains(&level.as_str()) => Some(level.clone()),
        [level] => {
            return Err(usage(format!(
                "unknown log priority: {level} (use debug, info, message, warn, error or fatal)"
            )));
        }
        [_, extra, ..] => return Err(usage(format!("unexpected argument: {extra}"))),
    };
    Ok((Request::LogPriority { priority }, Show::Text))
}

/// `shutdown [--halt|--poweroff|--reboot]`: at most one action, which may be repeated.
pub(super) fn shutdown(args: &[String], parsed: &Parsed) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    let action = match parsed.shutdown.as_slice() {
        [] => ShutdownAction::default(),
        [first, others @ ..] if others.iter().all(|other| other == first) => *first,
        _ => return Err(usage("shutdown: give only one of --halt, --poweroff and --reboot")),
    };
    Ok((Request::Shutdown { action }, Show::Text))
}

/// `telinit N|S|q|u`: a runlevel change is the `runlevel` event; `q` reloads the configuration.
pub(super) fn telinit(
    args: &[String],
    extra_env: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Request, Failure> {
    let level = match args {
        [] => return Err(usage("missing runlevel")),
        [level] => level.as_str(),
        [_, extra, ..] => return Err(usage(format!("unexpected argument: {extra}"))),
    };
    match level {
        "0" | "1" | "2" | "3" | "4" | "5" | "6" | "S" | "s" => {
            let level = level.to_ascii_uppercase();
            let previous = env("RUNLEVEL")
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| "N".into());
            let mut event_env = vec![format!("RUNLEVEL={level}"), format!("PREVLEVEL={previous}")];
            event_env.extend(env_pairs(extra_env)?);
            Ok(Request::Emit {
                event: "runlevel".into(),
                env: event_env,
                wait: false,
            })
        }
        "q" | "Q" => Ok(Request::ReloadConfiguration),
        "u" | "U" => Ok(Request::Reexec { binary: None }),
        other => Err(usage(format!("illegal runlevel: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::tests::{DONE, Daemon, run, run_as};

    #[test]
    fn telinit_emits_runlevel() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["telinit", "2", "--socket", &daemon.path], &[("RUNLEVEL", "S")]);
        assert_eq!(outcome.code, 0);
        assert_eq!(
            daemon.request(),
            Request::Emit {
                event: "runlevel".into(),
                env: vec!["RUNLEVEL=2".into(), "PREVLEVEL=S".into()],
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run_as(
            "telinit",
            &["telinit", "s", "-e", "WHY=test", "--socket", &daemon.path],
            &[],
        );
        assert_eq!(
            daemon.request(),
            Request::Emit {
                event: "runlevel".into(),
                env: vec!["RUNLEVEL=S".into(), "PREVLEVEL=N".into(), "WHY=test".into()],
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["telinit", "q", "--socket", &daemon.path], &[]);
        assert_eq!(daemon.request(), Request::ReloadConfiguration);

        let daemon = Daemon::start(&[DONE]);
        run_as("telinit", &["telinit", "u", "--socket", &daemon.path], &[]);
        assert_eq!(daemon.request(), Request::Reexec { binary: None });
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(
            run(
                &["reexec", "--binary", "/usr/sbin/uprise", "--socket", &daemon.path],
                &[]
            )
            .code,
            0
        );
        assert_eq!(
            daemon.request(),
            Request::Reexec {
                binary: Some("/usr/sbin/uprise".into())
            }
        );
        assert_eq!(run(&["telinit", "7", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn log_priority_usage_and_shutdown_requests() {
        let daemon = Daemon::start(&[r#"{"reply":"text","text":"message"}"#, DONE]);
        let outcome = run(&["log-priority", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "message\n");
        assert_eq!(daemon.request(), Request::LogPriority { priority: None });

        let daemon = Daemon::start(&[DONE]);
        run(&["log-priority", "debug", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::LogPriority {
                priority: Some("debug".into())
            }
        );
        assert_eq!(run(&["log-priority", "loud", "--socket", "/nonexistent"], &[]).code, 2);

        let daemon = Daemon::start(&[r#"{"reply":"text","text":"Usage: tty DEV=ttyX"}"#, DONE]);
        let outcome = run(&["usage", "tty", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "Usage: tty DEV=ttyX\n");
        assert_eq!(daemon.request(), Request::Usage { job: "tty".into() });

        let daemon = Daemon::start(&[DONE]);
        run(&["shutdown", "--reboot", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::Shutdown {
                action: ShutdownAction::Reboot
            }
        );
        assert_eq!(
            run(&["shutdown", "--reboot", "--halt", "--socket", "/nonexistent"], &[]).code,
            2
        );
    }
}
