//! The job environment commands: `set-env`, `get-env`, `list-env`, `unset-env` and
//! `reset-env`, on the global table or (inside a job, without `-g`) the instance's own.

use crate::control::proto::Request;

use super::args::{Parsed, no_more};
use super::{Failure, Show, usage};

/// `set-env [-g] [-r] VAR[=VALUE]...`.
pub(super) fn set_env(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    if args.is_empty() {
        return Err(usage("missing variable name"));
    }
    if let Some(bad) = args.iter().find(|arg| arg.starts_with('=')) {
        return Err(usage(format!("Env must be VAR or VAR=VALUE: {bad}")));
    }
    let (job, instance) = env_target(parsed.global, env);
    let request = Request::SetEnv {
        vars: args.to_vec(),
        retain: parsed.retain,
        job,
        instance,
    };
    Ok((request, Show::Text))
}

/// `get-env [-g] VAR`: prints the value.
pub(super) fn get_env(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    let Some((name, rest)) = args.split_first() else {
        return Err(usage("missing variable name"));
    };
    no_more(rest)?;
    let (job, instance) = env_target(parsed.global, env);
    let request = Request::GetEnv {
        name: name.clone(),
        job,
        instance,
    };
    Ok((request, Show::Text))
}

/// `list-env [-g]`: prints the table.
pub(super) fn list_env(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    let (job, instance) = env_target(parsed.global, env);
    Ok((Request::ListEnv { job, instance }, Show::Text))
}

/// `unset-env [-g] VAR...`.
pub(super) fn unset_env(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    if args.is_empty() {
        return Err(usage("missing variable name"));
    }
    let (job, instance) = env_target(parsed.global, env);
    let request = Request::UnsetEnv {
        names: args.to_vec(),
        job,
        instance,
    };
    Ok((request, Show::Text))
}

/// `reset-env [-g]`.
pub(super) fn reset_env(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Request, Show), Failure> {
    no_more(args)?;
    let (job, instance) = env_target(parsed.global, env);
    Ok((Request::ResetEnv { job, instance }, Show::Text))
}

/// Which table an environment command edits: the global one with `-g` or outside a job;
/// inside a job (`$UPSTART_JOB`), that instance's.
fn env_target(global: bool, env: &dyn Fn(&str) -> Option<String>) -> (Option<String>, Option<String>) {
    if global {
        return (None, None);
    }
    match env("UPSTART_JOB").filter(|job| !job.is_empty()) {
        Some(job) => (Some(job), Some(env("UPSTART_INSTANCE").unwrap_or_default())),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::tests::{DONE, Daemon, run, text_reply};

    #[test]
    fn set_env_sends_global_or_job_local_requests() {
        let daemon = Daemon::start(&[DONE]);
        let outcome = run(&["set-env", "A=1", "B", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str(), outcome.err.as_str()), (0, "", ""));
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=1".into(), "B".into()],
                retain: false,
                job: None,
                instance: None
            }
        );
        // Inside a job: that instance's table, unless -g.
        let inside = [("UPSTART_JOB", "web"), ("UPSTART_INSTANCE", "x")];
        let daemon = Daemon::start(&[DONE]);
        run(&["set-env", "-r", "A=2", "--socket", &daemon.path], &inside);
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=2".into()],
                retain: true,
                job: Some("web".into()),
                instance: Some("x".into())
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(&["set-env", "-gr", "A=2", "--socket", &daemon.path], &inside);
        assert_eq!(
            daemon.request(),
            Request::SetEnv {
                vars: vec!["A=2".into()],
                retain: true,
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[DONE]);
        run(
            &["set-env", "--global", "--retain", "A=2", "--socket", &daemon.path],
            &[],
        );
        assert!(matches!(
            daemon.request(),
            Request::SetEnv {
                retain: true,
                job: None,
                ..
            }
        ));

        let outcome = run(&["set-env", "=x", "--socket", "/nonexistent"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (
                2,
                "uprisectl: Env must be VAR or VAR=VALUE: =x\nTry 'uprisectl --help' for more information.\n"
            )
        );
        let outcome = run(&["set-env", "--socket", "/nonexistent"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (
                2,
                "uprisectl: missing variable name\nTry 'uprisectl --help' for more information.\n"
            )
        );
        assert_eq!(run(&["list", "-g", "--socket", "/nonexistent"], &[]).code, 2);
        assert_eq!(run(&["get-env", "-r", "A", "--socket", "/nonexistent"], &[]).code, 2);
    }

    #[test]
    fn get_list_unset_and_reset_env() {
        let daemon = Daemon::start(&[&text_reply("1"), DONE]);
        let outcome = run(&["get-env", "A", "--socket", &daemon.path], &[]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "1\n"));
        assert_eq!(
            daemon.request(),
            Request::GetEnv {
                name: "A".into(),
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[r#"{"reply":"error","message":"No such variable: Z"}"#]);
        let outcome = run(
            &["get-env", "-g", "Z", "--socket", &daemon.path],
            &[("UPSTART_JOB", "web")],
        );
        assert_eq!(
            (outcome.code, outcome.out.as_str(), outcome.err.as_str()),
            (1, "", "uprisectl: No such variable: Z\n")
        );
        assert!(matches!(daemon.request(), Request::GetEnv { job: None, .. }));
        assert_eq!(run(&["get-env", "A", "B", "--socket", "/nonexistent"], &[]).code, 2);

        let daemon = Daemon::start(&[&text_reply("A=1"), &text_reply("B="), DONE]);
        let outcome = run(&["list-env", "--socket", &daemon.path], &[("UPSTART_JOB", "web")]);
        assert_eq!((outcome.code, outcome.out.as_str()), (0, "A=1\nB=\n"));
        assert_eq!(
            daemon.request(),
            Request::ListEnv {
                job: Some("web".into()),
                instance: Some(String::new())
            }
        );

        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["unset-env", "A", "B", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::UnsetEnv {
                names: vec!["A".into(), "B".into()],
                job: None,
                instance: None
            }
        );
        let daemon = Daemon::start(&[DONE]);
        assert_eq!(run(&["reset-env", "-g", "--socket", &daemon.path], &[]).code, 0);
        assert_eq!(
            daemon.request(),
            Request::ResetEnv {
                job: None,
                instance: None
            }
        );
        assert_eq!(run(&["reset-env", "A", "--socket", "/nonexistent"], &[]).code, 2);
    }
}
