//! The tests' fake daemon and command-line runner, shared with the parts' tests, and the tests
//! of what every command line has in common: exit statuses, messages, the socket, `--quiet`.

use super::*;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;

/// A fake daemon: accepts one connection, records the request line, answers `replies`.
pub(super) struct Daemon {
    _dir: tempfile::TempDir,
    pub(super) path: String,
    handle: JoinHandle<String>,
}

impl Daemon {
    pub(super) fn start(replies: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let listener = UnixListener::bind(&path).unwrap();
        let mut answer = String::new();
        for reply in replies {
            answer.push_str(reply);
            answer.push('\n');
        }
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            line
        });
        Daemon {
            _dir: dir,
            path: path.to_str().unwrap().to_string(),
            handle,
        }
    }

    /// The request the client sent.
    pub(super) fn request(self) -> Request {
        let line = self.handle.join().unwrap();
        assert!(line.ends_with('\n'), "request line is newline-terminated: {line:?}");
        serde_json::from_str(&line).unwrap()
    }
}

pub(super) struct Outcome {
    pub(super) code: i32,
    pub(super) out: String,
    pub(super) err: String,
}

pub(super) fn run_as(program: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |name: &str| env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(program, &args, &mut out, &mut err, &lookup);
    Outcome {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

pub(super) fn run(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    run_as("uprisectl", args, env)
}

pub(super) fn status_reply(instances: &[InstanceStatus]) -> String {
    serde_json::to_string(&Reply::Status {
        instances: instances.to_vec(),
    })
    .unwrap()
}

pub(super) fn instance(job: &str, name: &str, goal: &str, state: &str, processes: &[(&str, i32)]) -> InstanceStatus {
    InstanceStatus::example(job, name, goal, state, processes)
}

pub(super) const DONE: &str = r#"{"reply":"done"}"#;

pub(super) fn text_reply(text: &str) -> String {
    serde_json::to_string(&Reply::Text { text: text.into() }).unwrap()
}

#[test]
fn quiet_suppresses_output() {
    let daemon = Daemon::start(&[&status_reply(&[instance("a", "", "stop", "waiting", &[])]), DONE]);
    let outcome = run(&["list", "-q", "--socket", &daemon.path], &[]);
    assert_eq!((outcome.code, outcome.out.as_str()), (0, ""));
    daemon.request();
}

#[test]
fn error_reply_exits_1_with_program_prefix() {
    let daemon = Daemon::start(&[r#"{"reply":"error","message":"Unknown job: foo"}"#]);
    let outcome = run(&["start", "foo", "--socket", &daemon.path], &[]);
    assert_eq!((outcome.code, outcome.out.as_str()), (1, ""));
    assert_eq!(outcome.err, "uprisectl: Unknown job: foo\n");
    daemon.request();

    let daemon = Daemon::start(&[r#"{"reply":"error","message":"Event failed"}"#]);
    let outcome = run(&["emit", "--socket", &daemon.path, "up", "A=1"], &[]);
    assert_eq!((outcome.code, outcome.err.as_str()), (1, "uprisectl: Event failed\n"));
    assert_eq!(
        daemon.request(),
        Request::Emit {
            event: "up".into(),
            env: vec!["A=1".into()],
            wait: true
        }
    );
}

#[test]
fn program_name_prefixes_messages_when_invoked_as_start() {
    let daemon = Daemon::start(&[r#"{"reply":"error","message":"Unknown job: foo"}"#]);
    let outcome = run_as("start", &["start", "foo", "--socket", &daemon.path], &[]);
    assert_eq!((outcome.code, outcome.err.as_str()), (1, "start: Unknown job: foo\n"));
    daemon.request();
    let outcome = run_as("start", &["start", "--bogus"], &[]);
    assert_eq!(outcome.code, 2);
    assert_eq!(
        outcome.err,
        "start: unknown option: --bogus\nTry 'start --help' for more information.\n"
    );
    assert_eq!(implied_command("start"), Some("start"));
    assert_eq!(implied_command("telinit"), Some("telinit"));
    assert_eq!(implied_command("initctl"), None);
    assert_eq!(implied_command("uprisectl"), None);
}

#[test]
fn connection_refused_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control");
    drop(UnixListener::bind(&path).unwrap());
    let path = path.to_str().unwrap();
    let outcome = run(&["list", "--socket", path], &[]);
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.err,
        format!("uprisectl: Unable to connect to uprise at {path}: Connection refused\n")
    );
}

#[test]
fn socket_from_environment_and_equals_form() {
    let daemon = Daemon::start(&[r#"{"reply":"text","text":"init (uprise 0.1.0)"}"#, DONE]);
    let socket = format!("--socket={}", daemon.path);
    let outcome = run(&[&socket, "version"], &[]);
    assert_eq!((outcome.code, outcome.out.as_str()), (0, "init (uprise 0.1.0)\n"));
    assert_eq!(daemon.request(), Request::Version);

    let daemon = Daemon::start(&[DONE]);
    let path = daemon.path.clone();
    assert_eq!(run(&["reload-configuration"], &[("UPRISE_SOCKET", &path)]).code, 0);
    assert_eq!(daemon.request(), Request::ReloadConfiguration);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate", "--socket", "/nonexistent"][..],
        &["--bogus", "list"],
        &["list", "extra", "--socket", "/nonexistent"],
        &["reload", "-n", "web"],
        &["start", "--json", "web"],
        &["list", "--socket"],
        &["--quiet=yes", "list"],
        &[],
    ] {
        let outcome = run(args, &[]);
        assert_eq!(outcome.code, 2, "{args:?}");
        assert!(
            outcome.err.ends_with("Try 'uprisectl --help' for more information.\n"),
            "{args:?}"
        );
    }
    assert_eq!(
        run(&["frobnicate"], &[]).err,
        "uprisectl: unknown command: frobnicate\nTry 'uprisectl --help' for more information.\n"
    );
}

#[test]
fn status_lines_are_coloured_by_what_their_state_says() {
    let running = instance("web", "", "start", "running", &[("main", 42)]);
    assert_eq!(
        colour_status_line(&proto::status_line(&running), &running),
        "web \x1b[32mstart/running\x1b[0m, process 42"
    );
    let queued = instance("start", "a", "start", "queued", &[]);
    assert_eq!(
        colour_status_line(&proto::status_line(&queued), &queued),
        "start (a) \x1b[33mstart/queued\x1b[0m"
    );
    let mut failed = instance("db", "", "stop", "waiting", &[]);
    failed.detail.push("failed: process main".into());
    assert_eq!(
        colour_status_line(&proto::status_line(&failed), &failed),
        "db \x1b[31mstop/waiting\x1b[0m"
    );
    let waiting = instance("idle", "", "stop", "waiting", &[]);
    assert_eq!(colour_status_line("idle stop/waiting", &waiting), "idle stop/waiting");
    // Through run_with (a pipe, a test's buffer) nothing is ever coloured.
    let daemon = Daemon::start(&[&status_reply(std::slice::from_ref(&running)), DONE]);
    let outcome = run(&["list", "--socket", &daemon.path], &[]);
    assert_eq!(outcome.out, "web start/running, process 42\n");
    daemon.request();
}
