//! The client's shell side, run as the real binaries: the committed manual pages are what
//! the client prints, the bash completion completes (commands, each command's options, job
//! names from a running daemon), the zsh and fish scripts pass their shells' syntax check
//! where those shells are installed.

use std::path::Path;
use std::process::Command;

use crate::harness::{Harness, bin_dir};

fn uprisectl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .args(args)
        .output()
        .expect("uprisectl runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_committed_manual_pages_are_what_the_client_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (page, file) in [
        ("uprisectl", "man/uprisectl.8"),
        ("uprise", "man/uprise.8"),
        ("uprise-jobs", "man/uprise-jobs.5"),
    ] {
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(
            committed == uprisectl(&["man", page]),
            "{file} differs from `uprisectl man {page}`: run tools/gen-man and commit the result"
        );
    }
}

/// Runs the bash completion for `words` (the cursor on the last one) and returns COMPREPLY.
fn complete(script: &Path, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _uprisectl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env("PATH", path)
        .env("UPRISE_SOCKET", "/nonexistent/control")
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{words:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn the_bash_completion_completes_commands_options_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("uprisectl.bash");
    std::fs::write(&script, uprisectl(&["completions", "bash"])).unwrap();
    let has = |reply: &[String], word: &str| reply.iter().any(|got| got == word);

    let reply = complete(&script, &["uprisectl", ""], &[]);
    for command in ["start", "status", "list", "check", "completions", "man", "help"] {
        assert!(has(&reply, command), "{command} in {reply:?}");
    }
    let reply = complete(&script, &["uprisectl", "st"], &[]);
    assert!(
        has(&reply, "start") && has(&reply, "stop") && has(&reply, "status"),
        "{reply:?}"
    );
    assert!(!has(&reply, "list"), "{reply:?}");
    let reply = complete(&script, &["uprisectl", "-"], &[]);
    assert!(has(&reply, "--socket") && has(&reply, "--help"), "{reply:?}");
    let reply = complete(&script, &["uprisectl", "log", "-"], &[]);
    for option in ["-n", "--lines", "-f", "--follow", "--socket"] {
        assert!(has(&reply, option), "{option} in {reply:?}");
    }
    assert!(!has(&reply, "--no-wait"), "{reply:?}");
    let reply = complete(&script, &["uprisectl", "check", "--"], &[]);
    assert!(has(&reply, "--json") && !has(&reply, "--socket"), "{reply:?}");
    let reply = complete(&script, &["uprisectl", "completions", ""], &[]);
    assert_eq!(reply, ["bash", "zsh", "fish"]);
    let reply = complete(&script, &["uprisectl", "telinit", ""], &[]);
    assert_eq!(reply.join(" "), "0 1 2 3 4 5 6 S q u");
    let reply = complete(&script, &["uprisectl", "--socket", "/x", "help", "sta"], &[]);
    assert_eq!(reply, ["start", "status"]);
    assert!(complete(&script, &["uprisectl", "log", "-n", ""], &[]).is_empty());
    // No daemon: no job names, and no noise.
    assert!(complete(&script, &["uprisectl", "start", ""], &[]).is_empty());

    let h = Harness::start(&[("alpha", "exec sleep 300\n"), ("beta", "instance $N\nexec sleep 300\n")]);
    let socket = h.socket();
    let socket = socket.to_str().unwrap();
    let reply = complete(&script, &["uprisectl", "start", ""], &[("UPRISE_SOCKET", socket)]);
    assert_eq!(reply, ["alpha", "beta"]);
    let reply = complete(&script, &["uprisectl", "--socket", socket, "stop", "a"], &[]);
    assert_eq!(reply, ["alpha"]);
    // Only the first argument is a job.
    assert!(
        complete(
            &script,
            &["uprisectl", "start", "alpha", ""],
            &[("UPRISE_SOCKET", socket)]
        )
        .is_empty()
    );
}

/// Whether `program` can be run.
fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

#[test]
fn the_zsh_and_fish_scripts_pass_their_syntax_checks() {
    for shell in ["zsh", "fish"] {
        let text = uprisectl(&["completions", shell]);
        if !installed(shell) {
            println!("skipped: {shell} is not installed, so its script's syntax is not checked");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("uprisectl.{shell}"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(shell).arg("-n").arg(&file).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shell} -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `uprisectl ARGS` on a pseudo-terminal (through `script`), `NO_COLOR` as given, and
/// returns what it printed; `None` without `script`.
fn on_a_terminal(h: &Harness, args: &str, no_color: Option<&str>) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let line = format!(
        "'{}' --socket '{}' {args}",
        env!("CARGO_BIN_EXE_uprisectl"),
        h.socket().display()
    );
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let out = command.output().expect("script runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn list_and_status_are_coloured_on_a_terminal_only() {
    let h = Harness::start(&[
        ("web", "start on startup\nexec sleep 300\n"),
        ("idle", "exec sleep 300\n"),
    ]);
    h.wait_until("web running", || h.status("web").starts_with("web start/running"));
    let Some(list) = on_a_terminal(&h, "list", None) else {
        println!("skipped: `script` is not installed, so no pseudo-terminal to run the client on");
        return;
    };
    assert!(list.contains("web \x1b[32mstart/running\x1b[0m, process "), "{list:?}");
    assert!(list.contains("idle stop/waiting"), "{list:?}");
    let status = on_a_terminal(&h, "status web", None).unwrap();
    assert!(status.contains("\x1b[32mstart/running\x1b[0m"), "{status:?}");
    for args in ["list", "status web"] {
        let plain = on_a_terminal(&h, args, Some("1")).unwrap();
        assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
    }
    // An empty NO_COLOR is as good as none.
    assert!(on_a_terminal(&h, "list", Some("")).unwrap().contains('\x1b'));
    // Through a pipe, the lines are initctl's.
    let piped = h.ctl(&["list"]).stdout;
    assert!(
        !piped.contains('\x1b') && piped.contains("web start/running, process "),
        "{piped:?}"
    );
}
