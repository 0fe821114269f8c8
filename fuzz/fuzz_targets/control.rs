//! Feeds arbitrary bytes to the daemon's control connection, in-process: a real `Daemon` on
//! a real calloop loop with a few process-less jobs, one client on a socket pair. Checks that
//! nothing panics and that every line the daemon writes back is a reply the protocol knows.
//!
//! Lines that parse as `reexec` or `shutdown` are left out: the first runs another binary,
//! the second ends the daemon (a reaper thread per input). Everything else, malformed lines
//! included, goes through the framing, the permission check and the request handlers.

#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use calloop::EventLoop;
use libfuzzer_sys::fuzz_target;
use uprise::control::proto::{Reply, Request};
use uprise::model::Config;
use uprise::runtime::output::Rotation;
use uprise::runtime::{Daemon, Settings};

const JOBS: [(&str, &str); 4] = [
    ("task", "task\nstart on go\n"),
    ("service", "start on started task and ready\nstop on halt\nexport SERVICE\nenv SERVICE=1\n"),
    ("inst", "instance $N\nusage: inst N=NUMBER\nstop on stopped task\n"),
    ("manual", "manual\nemits ready\n"),
];

fn config() -> Config {
    let mut jobs = Vec::new();
    for (name, text) in JOBS {
        jobs.extend(Config::from_text(name, &format!("{name}.conf"), text).jobs);
    }
    Config {
        jobs,
        ..Config::default()
    }
}

/// The input's lines, without those that parse as a request left out (see the module doc).
fn kept(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&byte| byte == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if matches!(
            serde_json::from_slice::<Request>(body),
            Ok(Request::Reexec { .. } | Request::Shutdown { .. })
        ) {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else { return };
    let dir = std::env::temp_dir().join("uprise-fuzz-control");
    let mut event_loop: EventLoop<'static, Daemon> = EventLoop::try_new().expect("event loop");
    let settings = Settings {
        user_mode: true,
        logdir: dir.join("log"),
        socket: dir.join("control"),
        rotation: Rotation::default(),
    };
    let mut daemon = Daemon::new(settings, event_loop.handle(), event_loop.get_signal());
    daemon.install(config());
    let (mut ours, theirs) = UnixStream::pair().expect("socket pair");
    daemon.accept_client(theirs);
    ours.set_nonblocking(true).expect("non-blocking");
    let input = kept(data);
    let mut written = 0;
    let mut replies = Vec::new();
    // Write, run the loop, read, until the input is in and nothing more comes back.
    for round in 0..64 {
        if written < input.len()
            && let Ok(count) = ours.write(&input[written..])
        {
            written += count;
        }
        if written == input.len() && flags & 1 == 1 {
            // Half-close, as `socat` does when its input ends.
            let _ = ours.shutdown(std::net::Shutdown::Write);
        }
        let _ = event_loop.dispatch(Some(Duration::ZERO), &mut daemon);
        daemon.settle();
        daemon.flush_clients();
        let mut buffer = [0u8; 65536];
        let mut quiet = true;
        while let Ok(count) = ours.read(&mut buffer) {
            if count == 0 {
                break;
            }
            quiet = false;
            replies.extend_from_slice(&buffer[..count]);
        }
        if quiet && written == input.len() && round > 2 {
            break;
        }
    }
    for line in replies.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        if let Err(error) = serde_json::from_slice::<Reply>(line) {
            panic!("the daemon wrote a line that is no reply ({error}): {}", String::from_utf8_lossy(line));
        }
    }
    drop(ours);
    drop(daemon);
    drop(event_loop);
});
