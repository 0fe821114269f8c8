//! Admission on a real daemon, with real processes: resource pools, gates weighed from a
//! procfs dir the test writes (`uprise --procfs`), `requires`, `watershed`, stop and
//! `start --now` of a queued start, `uprisectl pools`, and the queue across a re-exec.

use std::time::{Duration, Instant};

use crate::harness::Harness;

/// A harness whose daemon reads its gates' figures from `DIR/proc`, with `daemon_file` as
/// the daemon file (`init.conf`) beside the job dir.
fn start_with(jobs: &[(&str, &str)], daemon_file: &str, loadavg: &str) -> Harness {
    let mut h = Harness::new(jobs);
    std::fs::create_dir_all(h.path("proc")).unwrap();
    set_load(&h, loadavg);
    std::fs::write(h.path("init.conf"), daemon_file).unwrap();
    let procfs = h.path("proc");
    h.spawn(&["--procfs", procfs.to_str().unwrap()]);
    h
}

fn set_load(h: &Harness, load1: &str) {
    let path = h.path("proc/loadavg");
    let next = h.path("proc/loadavg.new");
    std::fs::write(&next, format!("{load1} 1.00 1.00 1/100 4242\n")).unwrap();
    std::fs::rename(next, path).unwrap();
}

fn lines(h: &Harness, name: &str) -> Vec<String> {
    h.work_file(name).lines().map(str::to_string).collect()
}

/// `uprisectl monitor` writing to `work/monitor`, connected (it has seen an event) when
/// this returns.
fn monitor(h: &Harness) -> std::process::Child {
    let out = std::fs::File::create(h.path("work/monitor")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .arg("--socket")
        .arg(h.socket())
        .arg("monitor")
        .stdout(out)
        .spawn()
        .unwrap();
    h.wait_until("the monitor", || {
        let _ = h.ctl(&["emit", "-n", "monitor-check"]);
        h.work_file("monitor").contains("event monitor-check")
    });
    child
}

fn verbose(h: &Harness, job: &str) -> String {
    h.ctl(&["status", "-v", job]).stdout
}

#[test]
fn ten_tasks_on_a_pool_of_two_run_two_at_a_time_in_order() {
    let h = start_with(
        &[(
            "batch",
            "task\ninstance $N\nuses cpu 1\nexec sh -c 'echo start $N >> $WORK/order; sleep 1; echo end $N >> $WORK/order'\n",
        )],
        "resource cpu 2\n",
        "0.00",
    );
    let mut watching = monitor(&h);
    for n in 0..10 {
        let out = h.ctl(&["start", "-n", "batch", &format!("N={n}")]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let mut most = 0;
    let started = Instant::now();
    while lines(&h, "order").iter().filter(|line| line.starts_with("end")).count() < 10 {
        let list = h.ctl(&["list"]).stdout;
        let running = list.lines().filter(|line| line.contains("start/running")).count();
        most = most.max(running);
        assert!(running <= 2, "{list}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{list}\n{}",
            h.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most, 2);
    let order = lines(&h, "order");
    // Never more than two between a start and its end, and the starts in the order queued.
    let mut running = 0;
    for line in &order {
        running += if line.starts_with("start") { 1 } else { -1 };
        assert!(running <= 2, "{order:?}");
    }
    // The monitor shows each queued start and its admission, in the order they were queued.
    let _ = watching.kill();
    let _ = watching.wait();
    let shown = h.work_file("monitor");
    let of = |state: &str| -> Vec<String> {
        shown
            .lines()
            .filter_map(|line| {
                line.strip_prefix("job batch (")?
                    .strip_suffix(&format!(") start/{state}"))
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        of("starting"),
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "{shown}"
    );
    assert_eq!(of("queued"), ["2", "3", "4", "5", "6", "7", "8", "9"], "{shown}");
    let pools = h.ctl(&["pools"]).stdout;
    assert_eq!(pools, "cpu 0/2\n");
}

#[test]
fn amounts_from_the_environment_wait_for_room() {
    let h = start_with(
        &[(
            "train",
            "task\ninstance $MODEL\nuses gpu ${GPUS:-1}\nexec sh -c 'echo $MODEL >> $WORK/ran; while [ ! -e $WORK/done-$MODEL ]; do sleep 0.05; done'\n",
        )],
        "resource gpu 4\n",
        "0.00",
    );
    assert_eq!(h.ctl(&["start", "-n", "train", "MODEL=a", "GPUS=2"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "train", "MODEL=b", "GPUS=3"]).code, Some(0));
    h.wait_until("a to run", || lines(&h, "ran") == ["a"]);
    let list = h.ctl(&["list"]).stdout;
    assert!(list.contains("train (b) start/queued\n"), "{list}");
    let detail = h.ctl(&["status", "-v", "train", "MODEL=b"]).stdout;
    assert!(
        detail.contains("waiting for pool gpu: needs 3, 2 of 4 in use, 0 ahead in the queue"),
        "{detail}"
    );
    let json: serde_json::Value = serde_json::from_str(&h.ctl(&["pools", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["pool"], "gpu");
    assert_eq!(json[0]["used"], 2.0);
    assert_eq!(json[0]["holders"][0][0], "train (a)");
    assert_eq!(json[0]["queue"][0], serde_json::json!(["train (b)", 3.0]));
    std::fs::write(h.path("work/done-a"), "").unwrap();
    h.wait_until("b to run", || lines(&h, "ran") == ["a", "b"]);
    // More than the pool holds fails at once, with the reason.
    let out = h.ctl(&["start", "train", "MODEL=c", "GPUS=5"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("Job failed to start"), "{}", out.stderr);
    assert!(
        h.daemon_log().contains("more than the pool's maximum of 4"),
        "{}",
        h.daemon_log()
    );
}

#[test]
fn a_gate_holds_a_start_until_the_load_drops() {
    let h = start_with(
        &[(
            "nightly",
            "task\ngate load1 < 2\nexec sh -c 'date +%s.%N > $WORK/ran'\n",
        )],
        "",
        "5.00",
    );
    assert_eq!(h.ctl(&["start", "-n", "nightly"]).code, Some(0));
    assert_eq!(h.status("nightly"), "nightly start/queued");
    let detail = verbose(&h, "nightly");
    assert!(
        detail.contains("waiting for gate: load1 is 5.00, needs < 2"),
        "{detail}"
    );
    let json: serde_json::Value = serde_json::from_str(&h.ctl(&["status", "--json", "nightly"]).stdout).unwrap();
    assert_eq!(json[0]["queue"]["gate"]["verdict"], "shut");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(h.work_file("ran").is_empty());
    set_load(&h, "0.50");
    let lowered = Instant::now();
    h.wait_until("the run", || !h.work_file("ran").is_empty());
    assert!(lowered.elapsed() < Duration::from_secs(4), "{:?}", lowered.elapsed());
}

#[test]
fn gate_hold_and_gate_wait_on_a_real_clock() {
    let h = start_with(
        &[
            (
                "held",
                "task\ngate load1 < 2\ngate hold 2s\nexec sh -c 'date +%s.%N > $WORK/held'\n",
            ),
            (
                "skipped",
                "task\ngate load5 < 0.5\ngate wait 2s\ngate expire skip\nexec touch $WORK/skipped\n",
            ),
        ],
        "",
        "0.10",
    );
    let asked = Instant::now();
    assert_eq!(h.ctl(&["start", "-n", "held"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "skipped"]).code, Some(0));
    let detail = verbose(&h, "held");
    assert!(
        detail.contains("gate held since ") && detail.contains("(gate hold 2s)"),
        "{detail}"
    );
    let detail = verbose(&h, "skipped");
    assert!(
        detail.contains("gate expires at ") && detail.contains("(gate wait 2s)"),
        "{detail}"
    );
    h.wait_until("held to run", || !h.work_file("held").is_empty());
    assert!(asked.elapsed() >= Duration::from_secs(2), "{:?}", asked.elapsed());
    h.wait_status("skipped", "skipped stop/waiting");
    let detail = verbose(&h, "skipped");
    assert!(
        detail.contains("RESULT=failed PROCESS=gate; gate expired after 2s"),
        "{detail}"
    );
    assert!(h.work_file("skipped").is_empty());
}

#[test]
fn a_required_file_admits_the_start_when_it_appears() {
    let h = start_with(
        &[(
            "app",
            "instance $VOLUME\nrequires file $WORK/data/$VOLUME/app.toml\nexec sh -c 'date +%s.%N > $WORK/ran; exec sleep 600'\n",
        )],
        "",
        "0.00",
    );
    assert_eq!(h.ctl(&["start", "-n", "app", "VOLUME=v1"]).code, Some(0));
    let list = h.ctl(&["list"]).stdout;
    assert!(list.contains("app (v1) start/queued"), "{list}");
    let data = h.path("work/data/v1");
    let detail = h.ctl(&["status", "-v", "app", "VOLUME=v1"]).stdout;
    assert!(
        detail.contains(&format!("waiting for file {}", data.join("app.toml").display())),
        "{detail}"
    );
    // The directories on the way appear first, then a file that goes again.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("other"), "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.work_file("ran").is_empty());
    let appeared = Instant::now();
    std::fs::write(data.join("app.toml"), "").unwrap();
    h.wait_until("the run", || !h.work_file("ran").is_empty());
    assert!(appeared.elapsed() < Duration::from_secs(1), "{:?}", appeared.elapsed());
}

#[test]
fn watershed_five_starts_during_a_run_make_one_more_run() {
    let h = start_with(
        &[(
            "index",
            "task\nwatershed\nstart on changed\nexec sh -c 'echo run >> $WORK/runs; while [ ! -e $WORK/go ]; do sleep 0.05; done; rm -f $WORK/go'\n",
        )],
        "",
        "0.00",
    );
    assert_eq!(h.ctl(&["emit", "-n", "changed"]).code, Some(0));
    h.wait_until("the first run", || lines(&h, "runs").len() == 1);
    for _ in 0..5 {
        assert_eq!(h.ctl(&["emit", "-n", "changed"]).code, Some(0));
    }
    std::fs::write(h.path("work/go"), "").unwrap();
    h.wait_until("the second run", || lines(&h, "runs").len() == 2);
    std::fs::write(h.path("work/go"), "").unwrap();
    h.wait_status("index", "index stop/waiting");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&h, "runs").len(), 2);
}

#[test]
fn stop_of_a_queued_start_runs_nothing_and_start_now_goes_past() {
    let h = start_with(
        &[
            ("holder", "uses lock 1\nexec sleep 600\n"),
            (
                "waiter",
                "uses lock 1\nexec sh -c 'touch $WORK/waiter; exec sleep 600'\n",
            ),
            (
                "gated",
                "gate load1 < 1\nexec sh -c 'touch $WORK/gated; exec sleep 600'\n",
            ),
        ],
        "",
        "9.00",
    );
    assert_eq!(h.ctl(&["start", "holder"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "waiter"]).code, Some(0));
    assert_eq!(h.status("waiter"), "waiter start/queued");
    let out = h.ctl(&["stop", "waiter"]);
    assert_eq!(out.stdout, "waiter stop/waiting\n", "{}", out.stderr);
    assert!(h.work_file("waiter").is_empty());
    assert_eq!(h.ctl(&["pools"]).stdout, "lock 1/1 (undeclared): holder 1\n");
    // A start on the command line waits through the queue; --now goes past it, and says so.
    assert_eq!(h.ctl(&["start", "-n", "gated"]).code, Some(0));
    let out = h.ctl(&["start", "--now", "gated"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("gated: started past its gate and pools (--now)\ngated start/running, process "),
        "{}",
        out.stdout
    );
    h.wait_until("gated to run", || h.path("work/gated").exists());
}

#[test]
fn the_queue_and_the_pools_cross_a_reexec() {
    let h = start_with(
        &[
            ("holder", "uses cpu 2\nexec sleep 600\n"),
            ("big", "task\nuses cpu 2\nexec touch $WORK/big\n"),
            ("small", "task\nuses cpu 1\nexec touch $WORK/small\n"),
            ("gated", "task\ngate load1 < 1\ngate wait 1h\nexec touch $WORK/gated\n"),
        ],
        "resource cpu 3\n",
        "4.00",
    );
    assert_eq!(h.ctl(&["start", "holder"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "big"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "small"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "gated"]).code, Some(0));
    let before = (
        h.ctl(&["list"]).stdout,
        h.ctl(&["pools"]).stdout,
        verbose(&h, "small"),
        verbose(&h, "gated"),
    );
    assert!(before.0.contains("small start/queued"), "{}", before.0);
    assert_eq!(before.1, "cpu 2/3: holder 2; queue: big 2, small 1\n");
    let out = h.ctl(&["reexec"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stderr, h.daemon_log());
    let after = (
        h.ctl(&["list"]).stdout,
        h.ctl(&["pools"]).stdout,
        verbose(&h, "small"),
        verbose(&h, "gated"),
    );
    assert_eq!(before, after, "{}", h.daemon_log());
    // The order holds: `big` first, then `small`, once the holder ends.
    assert_eq!(h.ctl(&["stop", "holder"]).code, Some(0));
    h.wait_until("both runs", || {
        h.path("work/big").exists() && h.path("work/small").exists()
    });
    set_load(&h, "0.20");
    h.wait_until("the gated run", || h.path("work/gated").exists());
}

#[test]
fn the_daemon_file_declares_pools_its_errors_are_logged_and_a_reload_changes_them() {
    let h = start_with(
        &[
            ("work", "uses cpu 2\nexec sleep 600\n"),
            ("more", "uses cpu 1\nexec sleep 600\n"),
        ],
        "resource cpu 3\nresource gpu -1\nbogus 3\n",
        "0.00",
    );
    h.wait_until("the daemon file's errors", || h.daemon_log().contains("init.conf:2:"));
    let log = h.daemon_log();
    assert!(log.contains("init.conf:3:1: error: Unknown stanza"), "{log}");
    // The good line applies all the same.
    assert_eq!(h.ctl(&["pools"]).stdout, "cpu 0/3\n");
    assert_eq!(h.ctl(&["start", "work"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "more"]).code, Some(0));
    assert_eq!(h.ctl(&["pools"]).stdout, "cpu 3/3: more 1, work 2\n");
    // A lower maximum stops no one; it admits nothing until there is room.
    std::fs::write(h.path("init.conf"), "resource cpu 2\n").unwrap();
    assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
    assert_eq!(h.ctl(&["pools"]).stdout, "cpu 3/2: more 1, work 2\n");
    assert!(h.status("work").starts_with("work start/running"));
    assert_eq!(h.ctl(&["stop", "more"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "-n", "more"]).code, Some(0));
    assert_eq!(h.status("more"), "more start/queued");
    // A higher one admits at once what fits.
    std::fs::write(h.path("init.conf"), "resource cpu 4\n").unwrap();
    assert_eq!(h.ctl(&["reload-configuration"]).code, Some(0));
    h.wait_status("more", "more start/running");
}
