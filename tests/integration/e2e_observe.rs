//! Looking at a running daemon: `plot` and `blame` from its history of state changes (and
//! that history across a re-exec), `metrics` and the HTTP endpoint of `--metrics-listen`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::Harness;

/// A boot chain: `db` on startup, `web` on `started db` (with a slow pre-start), `cache` on
/// `started web`; `cron` is started by hand later and is not part of the boot.
const CHAIN: [(&str, &str); 4] = [
    ("db", "start on startup\nexec sleep 600\n"),
    ("web", "start on started db\npre-start exec sleep 0.3\nexec sleep 600\n"),
    ("cache", "start on started web\nexec sleep 600\n"),
    ("cron", "exec sleep 600\n"),
];

#[test]
fn plot_and_blame_show_the_boot_chain_and_survive_a_reexec() {
    let h = Harness::start(&CHAIN);
    h.wait_status("cache", "cache start/running");
    assert_eq!(h.ctl(&["start", "cron"]).code, Some(0));
    let svg_path = h.path("work/boot.svg");
    let out = h.ctl(&["plot", "--output", svg_path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    // One row per instance of the boot, labelled with what started it; `cron` came after.
    assert_eq!(svg.matches("class=\"row\"").count(), 3, "{svg}");
    for label in ["db ← startup", "web ← started db", "cache ← started web"] {
        assert!(svg.contains(&format!(">{label}</text>")), "{label} in {svg}");
    }
    assert!(!svg.contains("cron"));
    // A bar per state each went through (a job without a pre-start passes through the
    // state all the same).
    for state in ["starting", "pre-start", "spawned", "post-start", "running"] {
        let bars = svg.matches(&format!("data-state=\"{state}\"")).count();
        assert_eq!(bars, 3, "{state} in {svg}");
    }
    assert_eq!(svg.matches("class=\"bar\"").count(), 15);
    // All of it, to stdout.
    let all = h.ctl(&["plot", "--since", "all"]).stdout;
    assert!(all.contains("cron ← asked"), "{all}");
    let blame = h.ctl(&["blame"]).stdout;
    let order: Vec<&str> = blame
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(order.first(), Some(&"web"), "{blame}");
    assert_eq!(order.len(), 3, "{blame}");
    assert_eq!(h.ctl(&["plot", "--since", "soon"]).code, Some(2));
    // The history crosses a re-exec: the same boot afterwards.
    assert_eq!(h.ctl(&["reexec"]).code, Some(0));
    let again = h.ctl(&["plot"]).stdout;
    assert_eq!(again.matches("class=\"row\"").count(), 3, "{again}");
    assert_eq!(h.ctl(&["blame"]).stdout, blame);
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_states_failures_and_spawns_and_are_served_over_http() {
    let mut h = Harness::new(&[
        ("up", "exec sleep 600\n"),
        ("bad", "task\nexec false\n"),
        ("flaky", "respawn\nrespawn limit 3 60\nexec false\n"),
    ]);
    h.spawn(&["--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(h.ctl(&["start", "up"]).code, Some(0));
    assert_ne!(h.ctl(&["start", "bad"]).code, Some(0));
    let _ = h.ctl(&["start", "flaky"]);
    h.wait_until("flaky to give up", || h.status("flaky") == "flaky stop/waiting");
    let text = h.ctl(&["metrics"]).stdout;
    assert_eq!(metric(&text, "uprise_jobs"), Some(3.0), "{text}");
    assert_eq!(
        metric(&text, "uprise_instances{state=\"running\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "uprise_job_failures_total{job=\"bad\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "uprise_job_respawns_total{job=\"flaky\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(
        metric(&text, "uprise_spawn_duration_seconds_count").unwrap() >= 6.0,
        "{text}"
    );
    assert!(metric(&text, "uprise_events_emitted_total").unwrap() > 0.0, "{text}");
    assert!(text.contains("# TYPE uprise_spawn_duration_seconds histogram"));
    // Over HTTP: the address the daemon says it took.
    let log = h.daemon_log();
    let addr = log
        .split("serving metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no endpoint in {log}"))
        .to_string();
    let get = |request: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let answer = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("uprise_job_failures_total{job=\"bad\"} 1"), "{answer}");
    assert!(get("GET /other HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
    // A client that sends half a request and waits holds nothing up.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /met").unwrap();
    assert!(get("GET / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert_eq!(h.ctl(&["status", "up"]).code, Some(0));
    drop(idle);
}

#[test]
fn other_users_may_read_history_and_metrics() {
    if !crate::harness::root_or_skip("other_users_may_read_history_and_metrics") {
        return;
    }
    let mut h = Harness::new(&[("up", "exec sleep 600\n")]);
    h.share_with_others();
    h.spawn_system();
    assert_eq!(h.ctl(&["start", "up"]).code, Some(0));
    let out = h.ctl_as(crate::harness::NOBODY, &["blame", "--since", "all"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("up"), "{}", out.stdout);
    let out = h.ctl_as(crate::harness::NOBODY, &["metrics"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // `waiting` has no command of its own (the client asks it on a terminal): sent raw, as
    // the same user, it is answered; `monitor` beside it is refused.
    let raw = |request: &str| -> Option<String> {
        use std::os::unix::process::CommandExt;
        let script = "import socket, sys\n\
                      s = socket.socket(socket.AF_UNIX)\n\
                      s.connect(sys.argv[1])\n\
                      s.sendall(sys.argv[2].encode() + b'\\n')\n\
                      s.settimeout(10)\n\
                      data = b''\n\
                      while b'\"done\"' not in data and b'\"error\"' not in data:\n\
                      \x20   chunk = s.recv(65536)\n\
                      \x20   if not chunk: break\n\
                      \x20   data += chunk\n\
                      print(data.decode())\n";
        let output = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(h.socket())
            .arg(request)
            .uid(crate::harness::NOBODY)
            .gid(crate::harness::NOBODY)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let Some(answer) = raw(r#"{"method":"waiting","job":"up"}"#) else {
        println!("skipped the raw `waiting` request: python3 is not installed");
        return;
    };
    assert!(answer.contains(r#""reply":"done""#), "{answer}");
    assert!(answer.contains("up start/running"), "{answer}");
    let refused = raw(r#"{"method":"monitor"}"#).unwrap();
    assert!(refused.contains("Permission denied"), "{refused}");
}

#[test]
fn monitor_json_streams_events_state_changes_timers_and_admission() {
    let h = Harness::start(&[
        ("tick", "task\nstart on every 1s\nexec true\n"),
        ("wanting", "task\nrequires file $WORK/go\nexec true\n"),
    ]);
    let out = std::fs::File::create(h.path("work/monitor.json")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .arg("--socket")
        .arg(h.socket())
        .args(["monitor", "--json"])
        .stdout(out)
        .spawn()
        .unwrap();
    let lines = || -> Vec<serde_json::Value> {
        h.work_file("monitor.json")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}")))
            .collect()
    };
    let has = |want: &dyn Fn(&serde_json::Value) -> bool| lines().iter().any(want);
    h.wait_until("the monitor", || {
        let _ = h.ctl(&["emit", "-n", "monitor-check"]);
        has(&|line| line["reply"] == "event" && line["name"] == "monitor-check")
    });
    assert_eq!(h.ctl(&["start", "-n", "wanting"]).code, Some(0));
    h.wait_until("the queued line", || {
        has(&|line| line["reply"] == "admission" && line["verdict"] == "queued")
    });
    std::fs::write(h.path("work/go"), "").unwrap();
    h.wait_until("the admission", || {
        has(&|line| line["reply"] == "admission" && line["job"] == "wanting" && line["verdict"] == "admitted")
    });
    h.wait_until("a timer's firing", || {
        has(&|line| {
            line["reply"] == "event"
                && line["name"] == "timer"
                && line["env"]
                    .as_array()
                    .is_some_and(|env| env.iter().any(|entry| entry == "UPRISE_TIMER=every 1s"))
        })
    });
    h.wait_until("a state change", || {
        has(&|line| line["reply"] == "change" && line["job"] == "tick" && line["state"] == "running")
    });
    let queued = lines()
        .into_iter()
        .find(|line| line["reply"] == "admission" && line["verdict"] == "queued")
        .unwrap();
    let file = format!("file {}", h.path("work/go").display());
    assert_eq!(queued["on"], serde_json::json!([file]), "{queued}");
    let _ = child.kill();
    let _ = child.wait();
}
