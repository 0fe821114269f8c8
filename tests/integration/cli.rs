//! `uprisectl`'s offline commands, run as the real binary.

use std::process::{Command, Output};

fn uprisectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("uprisectl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_a_valid_dir_and_exits_zero() {
    let out = uprisectl(&["check", "jobs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("0 errors"));
}

#[test]
fn check_reports_every_error_with_file_line_column_and_caret() {
    let out = uprisectl(&["check", "tests/parse/err/events.conf"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches(": error: ").count(), 10, "{stderr}");
    assert!(
        stderr.contains("tests/parse/err/events.conf:1:10: error: Expected event\n"),
        "{stderr}"
    );
    assert!(stderr.contains("1 | start on or foo\n"), "{stderr}");
    assert!(stderr.contains("  |          ^^\n"), "{stderr}");
}

#[test]
fn one_bad_file_does_not_stop_the_others() {
    let out = uprisectl(&["check", "--json", "tests/parse/dirs/isolation/init"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let names: Vec<&str> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["also-good", "good", "refs"]);
    assert_eq!(report["valid"], false);
    assert_eq!(report["diagnostics"][0]["line"], 2);
    assert_eq!(report["diagnostics"][0]["message"], "Unknown stanza");
}

#[test]
fn check_json_describes_the_merged_job() {
    let out = uprisectl(&["check", "--json", "tests/parse/ok/time.conf"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["version"], 1);
    let job = &report["jobs"][0];
    assert_eq!(job["name"], "time");
    assert_eq!(job["task"], true);
    assert_eq!(job["timezone"], "Europe/Paris");
    assert_eq!(job["start_on"]["type"], "or");
    assert_eq!(job["start_on"]["left"]["timer"]["type"], "after");
    // Time is enforced: nothing to warn about.
    assert_eq!(text(&out.stderr), "");
    // Warnings do not change the exit status, but they are printed.
    let out = uprisectl(&["check", "--json", "tests/parse/ok/time-not-temporal.conf"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: this is an event named `every`, not a schedule"));
}

#[test]
fn check_usage_errors_exit_two() {
    assert_eq!(uprisectl(&["check"]).status.code(), Some(2));
    assert_eq!(uprisectl(&["check", "--bogus", "x"]).status.code(), Some(2));
    assert_eq!(uprisectl(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn check_reports_a_missing_file() {
    let out = uprisectl(&["check", "/nonexistent/job.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/job.conf: error: Error while loading configuration file"));
}

#[test]
fn next_elapse_prints_the_next_times_in_the_given_zone() {
    let out = uprisectl(&[
        "next-elapse",
        "-n",
        "3",
        "--zone",
        "Europe/Paris",
        "--from",
        "2026-03-28T12:00:00Z",
        "every",
        "day",
        "at",
        "02:30",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "every day at 02:30");
    // 2026-03-29 is the spring-forward day in Paris: 02:30 does not exist and fires at 03:30.
    assert!(lines[1].starts_with("  Sun 2026-03-29 03:30:00 CEST"), "{stdout}");
    assert!(lines[2].starts_with("  Mon 2026-03-30 02:30:00 CEST"), "{stdout}");
    assert_eq!(lines.len(), 4);
}

#[test]
fn next_elapse_reads_cron_given_as_one_word() {
    let out = uprisectl(&[
        "next-elapse",
        "-n",
        "2",
        "--zone",
        "UTC",
        "--from",
        "2026-01-01T00:01:00Z",
        "every",
        "cron",
        "*/30 * * * *",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Thu 2026-01-01 00:30:00 UTC  (in 29m)"), "{stdout}");
    assert!(stdout.contains("Thu 2026-01-01 01:00:00 UTC  (in 59m)"), "{stdout}");
}

#[test]
fn next_elapse_rejects_a_bad_expression_with_a_caret() {
    let out = uprisectl(&["next-elapse", "every", "day", "at", "25:00"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<expression>:1:14: error: Illegal time of day"),
        "{stderr}"
    );
}

#[test]
fn symbolic_links_to_job_files_overrides_and_dirs_are_followed() {
    // The walk reads each entry's type from the directory; a link is looked up.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.conf"), "exec /bin/true\n").unwrap();
    std::fs::write(outside.path().join("x.override"), "respawn\n").unwrap();
    std::fs::create_dir(outside.path().join("more")).unwrap();
    std::fs::write(outside.path().join("more/y.conf"), "exec /bin/true\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(outside.path().join(target), dir.path().join(name)).unwrap()
    };
    link("x.conf", "x.conf");
    link("x.override", "x.override");
    link("more", "sub");
    link("missing.conf", "dangling.conf");
    std::fs::write(dir.path().join("plain.conf"), "exec /bin/true\n").unwrap();
    let out = uprisectl(&["check", "--json", dir.path().to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = report["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|job| job["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plain", "sub/y", "x"], "{report}");
    let x = jobs.iter().find(|job| job["name"] == "x").unwrap();
    assert_eq!(x["respawn"], true, "{report}");
    let plain = jobs.iter().find(|job| job["name"] == "plain").unwrap();
    assert_eq!(plain["override_file"], serde_json::Value::Null, "{report}");
}

#[test]
fn a_symbolic_link_loop_in_a_job_dir_is_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conf"), "exec /bin/true\n").unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    let out = uprisectl(&["check", "--json", dir.path().to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"].as_array().unwrap().len(), 1, "{report}");
}

/// Every usage error exits 2, whatever the command, the offline ones too; an unreachable
/// daemon is an error, 1.
#[test]
fn every_usage_error_exits_two() {
    let socket = "--socket=/nonexistent/control";
    for args in [
        &["bogus"][..],
        &["help", "bogus"],
        &["bogus", "--help"],
        &["start"],
        &["start", "--bogus", "web"],
        &["start", "web", "PORT"],
        &["list", "extra"],
        &["emit"],
        &["set-env"],
        &["telinit", "9"],
        &["log-priority", "loud"],
        &["log", "web", "-n", "x"],
        &["check"],
        &["check", "-v", "jobs"],
        &["next-elapse"],
        &["next-elapse", "--zone", "No/Where", "every", "1h"],
        &["next-elapse", "-x", "every", "1h"],
        &["notify"],
        &["notify", "--pid", "x"],
        &["completions"],
        &["completions", "tcsh"],
        &["man", "nope"],
        &["man", "uprise", "extra"],
    ] {
        let mut with_socket = vec![socket];
        with_socket.extend_from_slice(args);
        let out = uprisectl(&with_socket);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("for more information"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = uprisectl(&[socket, "status", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
