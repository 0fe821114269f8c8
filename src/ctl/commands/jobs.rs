//! The job commands: `start`, `stop`, `restart`, `reload`, `status`, `list`, `usage`,
//! `show-config` and `check-config`: the request each sends, and how its replies are shown
//! (status lines, with `status -v` the details, or `--json`).

use std::io::Write;
use std::path::Path;

use crate::control::proto::{Reply, Request};
use crate::ctl::client::Client;

use super::args::{Parsed, Target, no_more, optional_job, target};
use super::{Failure, Show, failure, socket_path};

/// `start`, `stop` or `restart` (`command`): waits unless `wait` is false or the job is the
/// caller's own instance; prints the status lines.
pub(super) fn start_stop_restart(
    command: &str,
    args: &[String],
    wait: bool,
    now: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    let Target {
        job,
        env,
        instance,
        own,
    } = target(args, env)?;
    let wait = wait && !own;
    let request = match command {
        "start" => Request::Start {
            job,
            env,
            instance,
            wait,
            now,
        },
        "stop" => Request::Stop {
            job,
            env,
            instance,
            wait,
        },
        _ => Request::Restart {
            job,
            env,
            instance,
            wait,
        },
    };
    Ok((request, Show::Status(false)))
}

/// `reload`: prints the text replies.
pub(super) fn reload(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<(Request, Show), Failure> {
    let Target { job, env, instance, .. } = target(args, env)?;
    Ok((Request::Reload { job, env, instance }, Show::Text))
}

/// `action JOB NAME [KEY=VALUE...]`: runs a job's action; prints how it ended.
pub(super) fn action(args: &[String]) -> Result<(Request, Show), Failure> {
    let [job, name, pairs @ ..] = args else {
        return Err(super::usage("missing job name and action name"));
    };
    let env = super::args::env_pairs(pairs)?;
    let request = Request::Action {
        job: job.clone(),
        name: name.clone(),
        env,
        instance: None,
    };
    Ok((request, Show::Text))
}

/// `status`: status lines, with details under `-v`, or JSON under `--json`.
pub(super) fn status(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    let Target { job, env, instance, .. } = target(args, env)?;
    let show = if parsed.json {
        Show::Json
    } else {
        Show::Status(parsed.verbose)
    };
    let request = Request::Status {
        job,
        env,
        instance,
        text: false,
    };
    Ok((request, show))
}

/// `list`: every job's status lines, or JSON under `--json`.
pub(super) fn list(args: &[String], parsed: &Parsed) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    Ok((
        Request::List,
        if parsed.json { Show::Json } else { Show::Status(false) },
    ))
}

/// `usage JOB`: prints the job's usage text.
pub(super) fn usage(args: &[String]) -> Result<(Request, Show), Failure> {
    let Some((job, rest)) = args.split_first() else {
        return Err(super::usage("missing job name"));
    };
    no_more(rest)?;
    Ok((Request::Usage { job: job.clone() }, Show::Text))
}

/// `show-config [-e] [JOB]`: prints the text replies.
pub(super) fn show_config(args: &[String], parsed: &Parsed) -> Result<(Request, Show), Failure> {
    let job = optional_job(args)?;
    let request = Request::ShowConfig {
        job,
        enumerate: parsed.enumerate,
    };
    Ok((request, Show::Text))
}

/// `check-config [-i LIST] [-w] [JOB]`: sends the request itself (see `check_config`).
pub(super) fn run_check_config(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let job = optional_job(args)?;
    let ignore = parsed
        .ignore_events
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|event| !event.is_empty())
        .map(str::to_string)
        .collect();
    let request = Request::CheckConfig {
        job,
        ignore,
        warn: parsed.warn,
    };
    check_config(&socket_path(parsed, env), &request, out)
}

/// `check-config`: prints the daemon's findings; exit 1 (without a message) if there are any.
fn check_config(socket: &Path, request: &Request, out: &mut dyn Write) -> Result<(), Failure> {
    let mut found = false;
    let mut client = Client::connect(socket).map_err(failure)?;
    client
        .request(request, |reply| {
            if let Reply::Text { text } = reply {
                found = true;
                let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
            }
        })
        .map_err(failure)?;
    if found {
        return Err(Failure {
            message: String::new(),
            code: 1,
            hint: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::InstanceStatus;
    use crate::ctl::commands::tests::{DONE, Daemon, instance, run, status_reply, text_reply};

    #[test]
    fn start_with_env_and_no_wait_sends_the_request_and_prints_the_status() {
        let reply = status_reply(&[instance("web", "", "start", "running", &[("main", 42)])]);
        let daemon = Daemon::start(&[&reply, DONE]);
        let outcome = run(
            &[
                "start",
                "web",
                "PORT=80",
                "A=b=c",
                "--no-wait",
                "--socket",
                &daemon.path,
            ],
            &[],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (0, "web start/running, process 42\n", "")
        );
        assert_eq!(
            daemon.request(),
            Request::Start {
                job: "web".into(),
                env: vec!["PORT=80".into(), "A=b=c".into()],
                instance: None,
                wait: false,
                now: false,
            }
        );
    }

    #[test]
    fn stop_and_restart_wait_by_default() {
        let daemon = Daemon::start(&[&status_reply(&[instance("web", "", "stop", "waiting", &[])]), DONE]);
        let outcome = run(&["--socket", &daemon.path, "stop", "web"], &[]);
        assert_eq!(outcome.out, "web stop/waiting\n");
        assert_eq!(
            daemon.request(),
            Request::Stop {
                job: "web".into(),
                env: vec![],
                instance: None,
                wait: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["restart", "-n", "web", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::Restart {
                job: "web".into(),
                env: vec![],
                instance: None,
                wait: false
            }
        );
    }

    #[test]
    fn status_lines_are_initctl_lines() {
        let reply = status_reply(&[
            instance("tty", "tty1", "start", "running", &[("main", 3648)]),
            instance(
                "drogo",
                "foo",
                "stop",
                "pre-stop",
                &[("main", 6312), ("pre-stop", 8609)],
            ),
            instance("test", "", "start", "post-start", &[("post-start", 2137)]),
        ]);
        let daemon = Daemon::start(&[&reply, DONE]);
        let outcome = run(&["status", "tty", "TTY=tty1", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.code, 0);
        assert_eq!(
            outcome.out,
            "tty (tty1) start/running, process 3648\n\
             drogo (foo) stop/pre-stop, process 6312\n\tpre-stop process 8609\n\
             test start/post-start, (post-start) process 2137\n"
        );
        assert_eq!(
            daemon.request(),
            Request::Status {
                job: "tty".into(),
                env: vec!["TTY=tty1".into()],
                instance: None,
                text: false,
            }
        );
    }

    #[test]
    fn status_verbose_prints_details_after_each_instance() {
        let mut first = instance("web", "", "start", "running", &[("main", 7), ("post-start", 8)]);
        first.detail = vec!["started by: startup".into(), "respawns: 0".into()];
        let second = instance("db", "", "stop", "waiting", &[]);
        let daemon = Daemon::start(&[&status_reply(&[first, second]), DONE]);
        let outcome = run(&["-v", "status", "web", "--socket", &daemon.path], &[]);
        assert_eq!(
            outcome.out,
            "web start/running, process 7\n\tpost-start process 8\n  started by: startup\n  respawns: 0\ndb stop/waiting\n"
        );
        daemon.request();
    }

    #[test]
    fn list_prints_every_line_and_json_on_request() {
        let daemon = Daemon::start(&[
            &status_reply(&[instance("a", "", "stop", "waiting", &[])]),
            &status_reply(&[instance("b", "x", "start", "running", &[("main", 5)])]),
            DONE,
        ]);
        let outcome = run(&["list", "--socket", &daemon.path], &[]);
        assert_eq!(outcome.out, "a stop/waiting\nb (x) start/running, process 5\n");
        assert_eq!(daemon.request(), Request::List);

        let listed = vec![instance("a", "", "stop", "waiting", &[])];
        let daemon = Daemon::start(&[&status_reply(&listed), DONE]);
        let outcome = run(&["list", "--json", "--socket", &daemon.path], &[]);
        let parsed: Vec<InstanceStatus> = serde_json::from_str(&outcome.out).unwrap();
        assert_eq!(parsed, listed);
        assert!(outcome.out.contains("\n  "), "pretty JSON: {}", outcome.out);
        daemon.request();
    }

    #[test]
    fn missing_job_inside_a_job_uses_its_own_instance_without_waiting() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(
            &["stop", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")],
        );
        assert_eq!(outcome.code, 0);
        assert_eq!(
            daemon.request(),
            Request::Stop {
                job: "web".into(),
                env: vec![],
                instance: Some("x".into()),
                wait: false
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["start", "--socket", &daemon.path], &[("UPSTART_JOB", "web")]);
        assert_eq!(
            daemon.request(),
            Request::Start {
                job: "web".into(),
                env: vec![],
                instance: Some(String::new()),
                wait: false,
                now: false,
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(
            &["reload", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")],
        );
        assert_eq!(
            daemon.request(),
            Request::Reload {
                job: "web".into(),
                env: vec![],
                instance: Some("x".into())
            }
        );
    }

    #[test]
    fn missing_job_outside_a_job_is_an_error() {
        let outcome = run(&["start", "--socket", "/nonexistent/socket"], &[]);
        assert_eq!(outcome.code, 2);
        assert_eq!(
            outcome.err,
            "uprisectl: missing job name\nTry 'uprisectl --help' for more information.\n"
        );
        assert_eq!(run(&["emit", "--socket", "/nonexistent/socket"], &[]).code, 2);
    }

    #[test]
    fn show_config_and_the_meaning_of_dash_e() {
        let daemon = Daemon::start(&[&text_reply("a\n  emits x\n  start on startup"), &text_reply("b"), DONE]);
        let outcome = run(&["show-config", "-e", "--socket", &daemon.path], &[]);
        assert_eq!(
            (outcome.code, outcome.out.as_str()),
            (0, "a\n  emits x\n  start on startup\nb\n")
        );
        assert_eq!(
            daemon.request(),
            Request::ShowConfig {
                job: None,
                enumerate: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["show-config", "web", "--socket", &daemon.path], &[]);
        assert_eq!(
            daemon.request(),
            Request::ShowConfig {
                job: Some("web".into()),
                enumerate: false
            }
        );
        assert_eq!(run(&["show-config", "a", "b", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn check_config_exits_1_when_it_reports() {
        let daemon = Daemon::start(&[&text_reply("web\n  start on: unknown job grape"), DONE]);
        let outcome = run(
            &[
                "check-config",
                "-i",
                "a, b",
                "--ignore-events=c",
                "-w",
                "--socket",
                &daemon.path,
            ],
            &[],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (1, "web\n  start on: unknown job grape\n", "")
        );
        assert_eq!(
            daemon.request(),
            Request::CheckConfig {
                job: None,
                ignore: vec!["a".into(), "b".into(), "c".into()],
                warn: true
            }
        );
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["check-config", "web", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, ""));
        assert_eq!(
            daemon.request(),
            Request::CheckConfig {
                job: Some("web".into()),
                ignore: vec![],
                warn: false
            }
        );
        assert_eq!(run(&["check-config", "-i", "--socket", "/nonexistent"], &[]).code, 1);
    }
}
