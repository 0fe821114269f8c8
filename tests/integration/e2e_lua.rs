//! Lua hooks and Lua gates on a real daemon: what a hook emits starts other jobs; a runaway,
//! a forbidden call or an endless allocation is cut off and logged while the job runs on;
//! jobs do not see each other's globals; a Lua gate holds a start until it says yes.

use std::time::Duration;

use crate::harness::Harness;

/// A task that writes `WHO VALUE` for each `seen` event.
const RECORDER: (&str, &str) = (
    "recorder",
    "task\ninstance $WHO-$VALUE\nstart on seen\nexec sh -c 'echo \"$WHO $VALUE\" >> $WORK/seen'\n",
);

fn seen(h: &Harness) -> Vec<String> {
    let mut lines: Vec<String> = h.work_file("seen").lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_hook_emits_an_event_that_starts_another_job() {
    let h = Harness::start(&[
        (
            "db",
            "exec sleep 600\nhook started lua emit('db-ready', {PORT = 5432, NAME = job.name, LOG = math.log(8, 2) + math.sin(0)})\n",
        ),
        (
            "app",
            "start on db-ready PORT=5432 LOG=3\nexec sh -c 'echo $NAME > $WORK/app; exec sleep 600'\n",
        ),
    ]);
    assert_eq!(h.ctl(&["start", "db"]).code, Some(0));
    h.wait_status("app", "app start/running");
    h.wait_until("app's file", || h.work_file("app") == "db\n");
}

#[test]
fn runaway_forbidden_and_greedy_hooks_are_cut_off_and_the_jobs_run() {
    let h = Harness::start(&[
        ("spin", "exec sleep 600\nhook started lua while true do end\n"),
        (
            "escape",
            "exec sleep 600\nhook started lua os.execute('touch $WORK/escaped')\nhook starting lua io.open('/etc/passwd')\nhook stopping lua require('os')\n",
        ),
        (
            "greedy",
            "exec sleep 600\nhook started script lua\n  local t = {}\n  while true do t[#t + 1] = string.rep('x', 4096) .. #t end\nend script\n",
        ),
    ]);
    for job in ["spin", "escape", "greedy"] {
        let out = h.ctl(&["start", job]);
        assert_eq!(out.code, Some(0), "{job}: {}", out.stderr);
        assert!(h.status(job).starts_with(&format!("{job} start/running")));
    }
    assert_eq!(h.ctl(&["stop", "escape"]).code, Some(0));
    h.wait_until("the log lines", || h.daemon_log().contains("escape hook stopping"));
    let log = h.daemon_log();
    assert!(
        log.contains("spin hook started: cut off after 1000000 instructions"),
        "{log}"
    );
    assert!(
        log.contains("escape hook started:2: attempt to index a nil value (global 'os')"),
        "{log}"
    );
    assert!(
        log.contains("escape hook starting:3: attempt to index a nil value (global 'io')"),
        "{log}"
    );
    assert!(
        log.contains("escape hook stopping:4: attempt to call a nil value (global 'require')"),
        "{log}"
    );
    assert!(
        log.contains("greedy hook started: cut off at its memory limit of 1048576 bytes"),
        "{log}"
    );
    assert!(!h.path("work/escaped").exists());
}

#[test]
fn jobs_do_not_see_each_others_globals() {
    let h = Harness::start(&[
        RECORDER,
        (
            "a",
            "task\nhook started lua secret = (secret or 0) + 1; emit('seen', {WHO = 'a', VALUE = secret})\nexec true\n",
        ),
        (
            "b",
            "task\nhook started lua emit('seen', {WHO = 'b', VALUE = tostring(secret)})\nexec true\n",
        ),
    ]);
    assert_eq!(h.ctl(&["start", "a"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "a"]).code, Some(0));
    assert_eq!(h.ctl(&["start", "b"]).code, Some(0));
    h.wait_until("three records", || seen(&h).len() == 3);
    // `a` kept its global from one run to the next; `b` never saw it.
    assert_eq!(seen(&h), ["a 1", "a 2", "b nil"]);
}

#[test]
fn a_lua_gate_holds_the_start_until_it_says_yes() {
    let h = Harness::start(&[(
        "maintenance",
        "task\ngate lua return job.env('GO') == '1'\nexec touch $WORK/ran\n",
    )]);
    assert_eq!(h.ctl(&["start", "-n", "maintenance"]).code, Some(0));
    assert_eq!(h.status("maintenance"), "maintenance start/queued");
    let detail = h.ctl(&["status", "-v", "maintenance"]).stdout;
    assert!(detail.contains("waiting for gate: gate lua returned false"), "{detail}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!h.path("work/ran").exists());
    assert_eq!(h.ctl(&["set-env", "GO=1"]).code, Some(0));
    h.wait_until("the run", || h.path("work/ran").exists());
}
