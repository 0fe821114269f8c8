//! Admission driven in-process on the fake host: pools, gates (through a procfs dir the
//! test writes), `gate hold|wait|expire`, `start --now`, stop of a queued start, and
//! `watershed`. The end-to-end tests do the same with a real daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use super::core_tests::Core;
use crate::model::load::Pool;

fn declare(core: &mut Core, pools: &[(&str, f64)]) {
    let declared: BTreeMap<String, Pool> = pools
        .iter()
        .map(|(name, max)| {
            (
                name.to_string(),
                Pool {
                    max: *max,
                    declared_in: Some("init.conf".into()),
                },
            )
        })
        .collect();
    core.daemon.declare_pools(&declared);
    core.daemon.settle();
}

fn status_of(core: &Core, job: &str, instance: &str) -> String {
    let class = core.daemon.lookup(job).unwrap();
    crate::control::proto::status_line(&core.daemon.instance_status(&(class, instance.to_string())))
}

fn detail_of(core: &Core, job: &str, instance: &str) -> Vec<String> {
    let class = core.daemon.lookup(job).unwrap();
    core.daemon.instance_status(&(class, instance.to_string())).detail
}

/// What all pools hold together.
fn in_use(core: &Core) -> f64 {
    core.daemon.admission.pools.iter().map(|(_, pool)| pool.used).sum()
}

fn start(core: &mut Core, job: &str, env: &[&str]) {
    let env = env.iter().map(|entry| entry.to_string()).collect();
    core.daemon.request_start(1, job, env, None, false, false).unwrap();
    core.daemon.settle();
    core.replies(1);
}

#[test]
fn a_pool_admits_in_order_and_never_more_than_its_maximum() {
    let mut core = Core::new(&[("batch", "task\ninstance $N\nuses cpu 1\nexec work")]);
    declare(&mut core, &[("cpu", 2.0)]);
    for n in 0..6 {
        start(&mut core, "batch", &[&format!("N={n}")]);
    }
    assert_eq!(core.spawned(), ["batch main 100", "batch main 101"]);
    assert_eq!(status_of(&core, "batch", "2"), "batch (2) start/queued");
    assert_eq!(
        detail_of(&core, "batch", "4"),
        ["waiting for pool cpu: needs 1, 2 of 2 in use, 2 ahead in the queue"]
    );
    // Each end admits the next in line, in the order they came.
    for n in 2..6 {
        core.exit(100 + n - 2, 0);
        assert_eq!(core.pid("batch", "main"), 100 + n);
        assert_eq!(
            status_of(&core, "batch", &n.to_string()),
            format!("batch ({n}) start/running, process {}", 100 + n)
        );
    }
    assert_eq!(in_use(&core), 2.0);
    core.exit(104, 0);
    core.exit(105, 0);
    assert_eq!(in_use(&core), 0.0);
    assert!(core.daemon.admission.is_empty());
}

#[test]
fn amounts_come_from_the_environment_and_bad_ones_fail_the_start() {
    let mut core = Core::new(&[("train", "task\ninstance $MODEL\nuses gpu ${GPUS:-1}\nexec train")]);
    declare(&mut core, &[("gpu", 4.0)]);
    start(&mut core, "train", &["MODEL=a", "GPUS=2"]);
    start(&mut core, "train", &["MODEL=b", "GPUS=3"]);
    assert_eq!(core.spawned(), ["train main 100"]);
    assert_eq!(status_of(&core, "train", "b"), "train (b) start/queued");
    core.exit(100, 0);
    assert_eq!(core.spawned(), ["train main 100", "train main 101"]);
    // Not a number, not positive, more than the pool holds: the start fails at once.
    for (model, gpus, why) in [
        ("c", "many", "`many` is not a positive number"),
        ("d", "0", "`0` is not a positive number"),
        ("e", "5", "more than the pool's maximum of 4"),
    ] {
        core.daemon
            .request_start(
                9,
                "train",
                vec![format!("MODEL={model}"), format!("GPUS={gpus}")],
                None,
                true,
                false,
            )
            .unwrap();
        core.daemon.settle();
        assert_eq!(core.replies(9), ["error: Job failed to start"], "{gpus}");
        assert_eq!(
            status_of(&core, "train", model),
            format!("train ({model}) stop/waiting")
        );
        let detail = detail_of(&core, "train", model).join("\n");
        assert!(
            detail.contains("RESULT=failed PROCESS=pool") && detail.contains(why),
            "{detail}"
        );
    }
    assert_eq!(core.spawned().len(), 2);
}

#[test]
fn a_stop_takes_a_queued_start_out_of_the_queue_and_runs_nothing() {
    let mut core = Core::new(&[
        ("a", "uses lock 1\nexec a"),
        ("b", "uses lock 1\nexec b"),
        ("c", "uses lock 1\nexec c"),
    ]);
    start(&mut core, "a", &[]);
    start(&mut core, "b", &[]);
    start(&mut core, "c", &[]);
    assert_eq!(core.status("b"), "b start/queued");
    core.daemon.request_stop(2, "b", Vec::new(), None, true).unwrap();
    core.daemon.settle();
    assert_eq!(core.replies(2), ["status: b stop/waiting", "done"]);
    assert_eq!(core.status("c"), "c start/queued");
    assert_eq!(
        detail_of(&core, "c", "")[0],
        "waiting for pool lock: needs 1, 1 of 1 in use, 0 ahead in the queue"
    );
    let a = core.pid("a", "main");
    core.daemon.request_stop(2, "a", Vec::new(), None, false).unwrap();
    core.daemon.settle();
    core.exit(a, 0);
    assert_eq!(
        core.status("c"),
        format!("c start/running, process {}", core.pid("c", "main"))
    );
    assert!(!core.spawned().iter().any(|line| line.starts_with("b ")));
}

#[test]
fn start_now_goes_past_the_pool_and_says_so() {
    let mut core = Core::new(&[("a", "uses lock 1\nexec a"), ("b", "uses lock 1\nexec b")]);
    start(&mut core, "a", &[]);
    start(&mut core, "b", &[]);
    assert_eq!(core.status("b"), "b start/queued");
    core.daemon
        .request_start(3, "b", Vec::new(), None, false, true)
        .unwrap();
    core.daemon.settle();
    let replies = core.replies(3);
    assert!(
        replies[0].contains("b: started past its gate and pools (--now)"),
        "{replies:?}"
    );
    assert_eq!(
        core.status("b"),
        format!("b start/running, process {}", core.pid("b", "main"))
    );
    // It holds its amount all the same: the pool is over its maximum until one ends.
    let lock = core
        .daemon
        .admission
        .pools
        .iter()
        .find(|(_, pool)| pool.name == "lock")
        .unwrap()
        .1;
    assert_eq!(lock.used, 2.0);
}

#[test]
fn a_gate_opens_at_a_tick_and_reads_each_file_once_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let loadavg = dir.path().join("loadavg");
    std::fs::write(&loadavg, "5.00 5.00 5.00 1/1 1\n").unwrap();
    let jobs: Vec<(String, String)> = (0..20)
        .map(|n| (format!("g{n}"), "task\ngate load1 < 2\nexec g".to_string()))
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(name, text)| (name.as_str(), text.as_str())).collect();
    let mut core = Core::new(&jobs);
    core.daemon.admission.set_procfs(dir.path().to_path_buf());
    for n in 0..20 {
        start(&mut core, &format!("g{n}"), &[]);
    }
    assert_eq!(core.status("g7"), "g7 start/queued");
    assert_eq!(
        detail_of(&core, "g7", ""),
        ["waiting for gate: load1 is 5.00, needs < 2"]
    );
    let reads = core.daemon.admission.figures.borrow().reads;
    assert_eq!(reads, 1, "twenty starts in one tick read loadavg once");
    for _ in 0..3 {
        core.advance(Duration::from_secs(1));
    }
    assert_eq!(
        core.daemon.admission.figures.borrow().reads,
        reads + 3,
        "once a tick for all twenty"
    );
    assert!(core.spawned().is_empty());
    std::fs::write(&loadavg, "0.50 5.00 5.00 1/1 1\n").unwrap();
    core.advance(Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 20);
    // Nothing waits on a gate: no tick, nothing read.
    let reads = core.daemon.admission.figures.borrow().reads;
    core.advance(Duration::from_secs(5));
    assert_eq!(core.daemon.admission.figures.borrow().reads, reads);
    assert!(
        !core
            .daemon
            .deadlines
            .iter()
            .any(|(_, deadline)| matches!(deadline, super::deadlines::Deadline::GateTick))
    );
}

#[test]
fn gate_hold_waits_for_the_condition_to_hold_and_a_break_starts_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let loadavg = dir.path().join("loadavg");
    std::fs::write(&loadavg, "5.00 0 0 1/1 1\n").unwrap();
    let mut core = Core::new(&[("held", "task\ngate load1 < 2\ngate hold 3s\nexec held")]);
    core.daemon.admission.set_procfs(dir.path().to_path_buf());
    start(&mut core, "held", &[]);
    std::fs::write(&loadavg, "1.00 0 0 1/1 1\n").unwrap();
    core.advance(Duration::from_secs(1));
    core.advance(Duration::from_secs(1));
    let detail = detail_of(&core, "held", "").join("\n");
    assert!(
        detail.starts_with("gate held since 00:00:01, admits at 00:00:04 (gate hold 3s)"),
        "{detail}"
    );
    // A break: the hold starts again.
    std::fs::write(&loadavg, "3.00 0 0 1/1 1\n").unwrap();
    core.advance(Duration::from_secs(1));
    std::fs::write(&loadavg, "1.00 0 0 1/1 1\n").unwrap();
    core.advance(Duration::from_secs(1));
    core.advance(Duration::from_secs(2));
    assert_eq!(core.status("held"), "held start/queued");
    core.advance(Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 1, "{:?}", detail_of(&core, "held", ""));
}

#[test]
fn gate_wait_runs_out_with_skip_or_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("loadavg"), "5.00 0 0 1/1 1\n").unwrap();
    let mut core = Core::new(&[
        ("skipped", "task\ngate load1 < 2\ngate wait 2s\nexec skipped"),
        (
            "forced",
            "task\ngate load1 < 2\ngate wait 2s\ngate expire start\nexec forced",
        ),
    ]);
    core.daemon.admission.set_procfs(dir.path().to_path_buf());
    start(&mut core, "skipped", &[]);
    start(&mut core, "forced", &[]);
    let detail = detail_of(&core, "skipped", "");
    assert_eq!(detail[1], "gate expires at 00:00:02 (gate wait 2s)");
    core.advance(Duration::from_secs(1));
    assert_eq!(core.status("skipped"), "skipped start/queued");
    core.advance(Duration::from_secs(1));
    assert_eq!(core.status("skipped"), "skipped stop/waiting");
    let detail = detail_of(&core, "skipped", "").join("\n");
    assert!(
        detail.contains("RESULT=failed PROCESS=gate; gate expired after 2s"),
        "{detail}"
    );
    assert_eq!(core.spawned(), ["forced main 100"]);
}

#[test]
fn a_missing_figure_keeps_the_start_queued_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = Core::new(&[("psi", "task\ngate memory some avg10 < 10\nexec psi")]);
    core.daemon.admission.set_procfs(dir.path().to_path_buf());
    start(&mut core, "psi", &[]);
    core.advance(Duration::from_secs(1));
    assert_eq!(core.status("psi"), "psi start/queued");
    let detail = detail_of(&core, "psi", "").join("\n");
    assert!(
        detail.starts_with("waiting for gate: cannot weigh it: ") && detail.contains("pressure/memory"),
        "{detail}"
    );
    std::fs::create_dir(dir.path().join("pressure")).unwrap();
    std::fs::write(
        dir.path().join("pressure/memory"),
        "some avg10=1.00 avg60=0 avg300=0 total=1\n",
    )
    .unwrap();
    core.advance(Duration::from_secs(1));
    assert_eq!(core.spawned().len(), 1);
}

#[test]
fn watershed_makes_one_more_run_for_any_number_of_starts() {
    let mut core = Core::new(&[
        ("index", "task\nwatershed\nstart on changed\nexec index $WHAT"),
        ("plain", "task\nstart on changed\nexec plain"),
    ]);
    core.emit("changed");
    for n in 0..5 {
        core.daemon.emit("changed", vec![format!("WHAT={n}")]);
        core.daemon.settle();
    }
    assert_eq!(core.spawned(), ["index main 100", "plain main 101"]);
    core.exit(100, 0);
    assert_eq!(core.spawned(), ["index main 100", "plain main 101", "index main 102"]);
    core.exit(101, 0);
    core.exit(102, 0);
    assert_eq!(core.spawned().len(), 3, "one more run, not five");
    assert_eq!(core.status("index"), "index stop/waiting");
}
