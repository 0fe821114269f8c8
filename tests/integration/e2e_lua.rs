//! Lua hooks and Lua gates on a real daemon: what a hook emits starts other jobs; a runaway,
//! a forbidden call or an endless allocation is cut off and logged while the job runs on;
//! jobs do not see each other's globals; a Lua gate holds a start until it says yes;
//! `script lua` processes run as coroutines on the loop, fail on an error, stop, answer
//! as actions and start again after a re-exec.

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

#[test]
fn a_lua_task_sleeps_runs_and_ends() {
    let h = Harness::start(&[
        RECORDER,
        (
            "nap",
            "task\nscript lua\n  log('begins')\n  sleep('1s')\n  emit('seen', {WHO = job.env('UPSTART_JOB'), VALUE = 'woke'})\nend script\n",
        ),
        ("oops", "task\nscript lua\n  local x = 1\n  error('x')\nend script\n"),
    ]);
    assert_eq!(h.ctl(&["start", "-n", "nap"]).code, Some(0));
    assert_eq!(h.status("nap"), "nap start/running, lua process");
    let json = h.ctl(&["status", "--json", "nap"]).stdout;
    assert!(json.contains("\"pid\": null"), "{json}");
    h.wait_until("the task's end", || h.status("nap") == "nap stop/waiting");
    // The event it emitted starts the recorder, whose process writes on its own time.
    h.wait_until("the record", || seen(&h) == ["nap woke"]);
    let detail = h.ctl(&["status", "-v", "nap"]).stdout;
    assert!(detail.contains("RESULT=ok"), "{detail}");
    assert!(h.daemon_log().contains("nap main process: begins"));
    // An error "exits" 1: the start fails, and the log names the job file's line.
    let out = h.ctl(&["start", "oops"]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    let detail = h.ctl(&["status", "-v", "oops"]).stdout;
    assert!(detail.contains("RESULT=failed PROCESS=main EXIT_STATUS=1"), "{detail}");
    let log = h.daemon_log();
    assert!(log.contains("oops main process:4: x"), "{log}");
}

#[test]
fn lua_services_stop_answer_actions_and_start_again_after_a_reexec() {
    let h = Harness::start(&[
        RECORDER,
        (
            "beat",
            "script lua\n  emit('seen', {WHO = 'beat', VALUE = 'start'})\n  while true do sleep(60) end\nend script\n\
             action count script lua\n  emit('seen', {WHO = 'count', VALUE = job.env('N')})\nend script\n\
             action fail script lua\n  error('no')\nend script\n",
        ),
    ]);
    assert_eq!(h.ctl(&["start", "beat"]).code, Some(0));
    assert_eq!(h.status("beat"), "beat start/running, lua process");
    h.wait_until("the first record", || seen(&h) == ["beat start"]);
    let out = h.ctl(&["action", "beat", "count", "N=7"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("beat action count process (lua)"), "{}", out.stdout);
    let out = h.ctl(&["action", "beat", "fail"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("beat action fail process (lua) terminated with status 1"),
        "{}",
        out.stderr
    );
    // A coroutine cannot cross a re-exec: it starts again from the beginning.
    assert_eq!(h.ctl(&["reexec"]).code, Some(0));
    h.wait_until("the second start", || seen(&h).len() == 3);
    assert_eq!(seen(&h), ["beat start", "beat start", "count 7"]);
    assert_eq!(h.status("beat"), "beat start/running, lua process");
    assert!(
        h.daemon_log()
            .contains("starts again from the beginning after the re-exec")
    );
    // The stop ends it at once, as a signal ends a process.
    assert_eq!(h.ctl(&["stop", "beat"]).code, Some(0));
    assert_eq!(h.status("beat"), "beat stop/waiting");
}
