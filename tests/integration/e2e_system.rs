//! System mode: uprise as PID 1 of a PID namespace (as in a container). These tests need
//! root and `unshare` (util-linux), and say they are skipped when not run as root; CI runs
//! as root.

use crate::harness::{Harness, alive};

fn job(h: &Harness, name: &str, body: &str) {
    let work = h.path("work");
    h.write_job(name, &body.replace("$W", &work.to_string_lossy()));
}

fn system_harness() -> Harness {
    let h = Harness::new(&[]);
    job(
        &h,
        "a",
        "start on startup\npost-stop exec sh -c 'echo a >> $W/order'\nexec sleep 300\n",
    );
    job(
        &h,
        "b",
        "start on started a\npost-stop exec sh -c 'echo b >> $W/order'\nexec sleep 300\n",
    );
    job(
        &h,
        "c",
        "start on started b\npost-stop exec sh -c 'echo c >> $W/order'\nexec sleep 300\n",
    );
    job(
        &h,
        "d",
        "start on startup\nstop on runlevel [06]\npost-stop exec sh -c 'echo d >> $W/order'\nexec sleep 300\n",
    );
    job(
        &h,
        "nostop",
        "start on startup\nexec sh -c 'trap \"\" TERM; while :; do sleep 0.05; done'\nkill timeout 1\n",
    );
    h
}

fn wait_all_running(h: &Harness) {
    for name in ["a", "b", "c", "d", "nostop"] {
        h.wait_status(name, &format!("{name} start/running, process"));
    }
}

#[test]
fn shutdown_runs_runlevel_stop_rules_first_then_stops_in_reverse_start_order() {
    if !crate::harness::root_or_skip("shutdown_runs_runlevel_stop_rules_first_then_stops_in_reverse_start_order") {
        return;
    }
    let mut h = system_harness();
    h.spawn_system();
    wait_all_running(&h);
    let out = h.ctl(&["shutdown", "--poweroff"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(h.wait_exit(), Some(0), "{}", h.daemon_log());
    let order = h.work_file("order");
    let lines: Vec<&str> = order.lines().collect();
    // d stops on the runlevel event itself; then the most recently started first.
    assert_eq!(lines, ["d", "c", "b", "a"], "{}", h.daemon_log());
    assert!(
        h.daemon_log().contains("shutdown complete; exiting"),
        "{}",
        h.daemon_log()
    );
}

#[test]
fn sigterm_to_pid_1_shuts_down_cleanly() {
    if !crate::harness::root_or_skip("sigterm_to_pid_1_shuts_down_cleanly") {
        return;
    }
    let mut h = system_harness();
    h.spawn_system();
    wait_all_running(&h);
    let init = h.namespace_init();
    crate::harness::unsafe_kill(init, 15);
    assert_eq!(h.wait_exit(), Some(0), "{}", h.daemon_log());
    assert_eq!(h.work_file("order").lines().count(), 4);
    assert!(!alive(init));
}

#[test]
fn pid_1_reaps_orphans_and_maps_sigint_to_control_alt_delete() {
    if !crate::harness::root_or_skip("pid_1_reaps_orphans_and_maps_sigint_to_control_alt_delete") {
        return;
    }
    let mut h = Harness::new(&[]);
    // The subshell exits at once; its sleep is orphaned to PID 1, which must reap it.
    job(
        &h,
        "orphans",
        "start on startup\nexec sh -c '(sleep 0.2 &); (sleep 0.2 &); exec sleep 300'\n",
    );
    job(
        &h,
        "cad",
        "task\nstart on control-alt-delete\nexec sh -c 'echo pressed > $W/cad'\n",
    );
    h.spawn_system();
    h.wait_status("orphans", "orphans start/running, process");
    let init = h.namespace_init();
    let zombies = || {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
            })
            .count()
    };
    h.wait_until("the orphans to be adopted and reaped", || {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        children.split_whitespace().count() == 1 && zombies() == 0
    });
    crate::harness::unsafe_kill(init, 2);
    h.wait_until("the control-alt-delete job", || h.work_file("cad") == "pressed\n");
    assert_eq!(h.ctl(&["shutdown"]).code, Some(0));
    assert_eq!(h.wait_exit(), Some(0));
}
