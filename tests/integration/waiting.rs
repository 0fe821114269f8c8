//! A blocking command says what it waits for, on a terminal (a pseudo-terminal through
//! util-linux's `script`): `emit` held by a `start on`, `start` queued on a pool; the line is
//! erased before the command's own output, and nothing of it shows through a pipe.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Harness};

fn have_script() -> bool {
    Command::new("script").arg("--version").output().is_ok()
}

/// `uprisectl ARGS` on a pseudo-terminal, what it writes going to `typescript` (with
/// `NO_COLOR`, so that its status lines are plain).
fn on_a_terminal(h: &Harness, args: &str, typescript: &Path) -> Child {
    let line = format!(
        "'{}' --socket '{}' {args}",
        env!("CARGO_BIN_EXE_uprisectl"),
        h.socket().display()
    );
    Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        // Status lines plain, as initctl's, to compare.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(typescript).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("script runs")
}

/// `uprisectl ARGS` through pipes.
fn through_pipes(h: &Harness, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .arg("--socket")
        .arg(h.socket())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("uprisectl runs")
}

fn screen(typescript: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(typescript).unwrap_or_default()).into_owned()
}

/// Waits for `child` to end; its exit status.
fn finish(h: &Harness, child: &mut Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the client did not end\n--- daemon stderr ---\n{}", h.daemon_log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_blocked_emit_says_what_holds_its_event_on_a_terminal_only() {
    let h = Harness::start(&[("combo", "start on A and (B or C)\nexec sleep 300\n")]);
    if !have_script() {
        println!("skipped: `script` is not installed, so no pseudo-terminal to run the client on");
        return;
    }
    let typescript = h.path("emit.typescript");
    let mut emit = on_a_terminal(&h, "emit A", &typescript);
    let wanted = "waiting: event A held by combo (start on A and (B or C)), ";
    h.wait_until("the waiting line", || screen(&typescript).contains(wanted));
    assert_eq!(h.ctl(&["emit", "B"]).code, Some(0));
    assert_eq!(finish(&h, &mut emit), Some(0));
    h.wait_status("combo", "combo start/running");
    // The line was kept current in place, and erased at the end.
    let shown = screen(&typescript);
    let last = shown.rfind("waiting: ").unwrap();
    assert!(shown[last..].contains("\x1b[K\r\x1b[K"), "{shown:?}");
    assert!(!shown.contains('\n'), "emit prints nothing: {shown:?}");

    // Through a pipe: the same wait (combo's `start on` takes A again), nothing on stderr,
    // however long it waits.
    let mut piped = through_pipes(&h, &["emit", "A"]);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(piped.try_wait().unwrap(), None, "emit A waits for B or C");
    assert_eq!(h.ctl(&["emit", "C"]).code, Some(0));
    let out = piped.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_queued_start_says_which_pool_and_its_status_line_stays_clean() {
    let h = Harness::start(&[
        ("holder", "uses lock 1\nexec sleep 300\n"),
        ("web", "uses lock 1\nexec sleep 300\n"),
    ]);
    if !have_script() {
        println!("skipped: `script` is not installed, so no pseudo-terminal to run the client on");
        return;
    }
    assert_eq!(h.ctl(&["start", "holder"]).code, Some(0));
    let typescript = h.path("start.typescript");
    let mut start = on_a_terminal(&h, "start web", &typescript);
    let wanted = "waiting: web start/queued: waiting for pool lock: needs 1, 1 of 1 in use";
    h.wait_until("the waiting line", || screen(&typescript).contains(wanted));
    assert_eq!(h.ctl(&["stop", "holder"]).code, Some(0));
    assert_eq!(finish(&h, &mut start), Some(0));
    // The line is erased before the status line, which is initctl's, on a line of its own.
    let shown = screen(&typescript);
    let at = shown.find("web start/running, process ").expect("the status line");
    assert!(shown[..at].ends_with("\r\x1b[K"), "{shown:?}");
    assert!(!shown[at..].contains("waiting"), "{shown:?}");
}
