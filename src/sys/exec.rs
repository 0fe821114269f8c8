//! Re-exec support: the state file (a memfd), fds that survive exec, the probe run of the new
//! binary, and the exec itself. Nothing here knows what the state means.

use std::ffi::CString;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `bytes` into a new memfd (kept across exec) and rewinds it.
pub fn state_file(bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = CString::new("uprise-state").expect("no NUL");
    // SAFETY: `name` is a valid C string; flags 0 keeps the fd across exec.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(OwnedFd::from(file))
}

/// Reads a state file passed by number, from its start, and closes it.
pub fn read_state(fd: RawFd) -> io::Result<Vec<u8>> {
    if fd < 0 || set_cloexec(fd, true).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not open"),
        ));
    }
    // SAFETY: the fd was handed to this process for it to own (checked open above).
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Sets or clears close-on-exec on an fd: one `F_SETFD`, since `FD_CLOEXEC` is the only
/// descriptor flag (a re-exec sets it on thousands of fds). Fails on an fd that is not open.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl on an fd number has no memory effects; errors are reported.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `binary` is the very file this process runs (same device and inode as
/// `/proc/self/exe`). A running executable cannot be written (ETXTBSY), so the same inode
/// holds the same code; a package upgrade replaces the file with a new inode.
pub fn is_running_binary(binary: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(binary), std::fs::metadata("/proc/self/exe")) {
        (Ok(target), Ok(running)) => target.dev() == running.dev() && target.ino() == running.ino(),
        _ => false,
    }
}

/// What a new image prints when it can read the state it was probed with.
pub const PROBE_ANSWER: &str = "uprise-reexec-probe-ok";

/// Runs `binary --reexec-probe FD` and waits (at most `limit`) for it to say it can read
/// the state. Returns the probe's complaint when it cannot.
pub fn probe(binary: &str, state: &OwnedFd, limit: Duration) -> Result<(), String> {
    let fd = state.as_raw_fd();
    set_cloexec(fd, false).map_err(|error| format!("cannot pass the state: {error}"))?;
    let spawned = Command::new(binary)
        .arg("--reexec-probe")
        .arg(fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let _ = set_cloexec(fd, true);
    let mut child = spawned.map_err(|error| format!("cannot run {binary}: {error}"))?;
    // The answer is read as it comes (end of file: the probe exited), so the wait costs no
    // more than the probe takes; no polling interval is added to every re-exec.
    let mut answer = Vec::new();
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    if let Some(stdout) = child.stdout.as_mut() {
        let mut buffer = [0u8; 256];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready == 0 {
                timed_out = true;
                break;
            }
            if ready < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            match stdout.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) if answer.len() < 4096 => answer.extend_from_slice(&buffer[..count]),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    if timed_out {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{binary} did not answer within {}s", limit.as_secs()));
    }
    // Its stdout is closed: it has exited, or closed it and is about to.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{binary} did not answer within {}s", limit.as_secs()));
            }
            Err(error) => return Err(format!("cannot wait for {binary}: {error}")),
        }
    };
    let answer = String::from_utf8_lossy(&answer);
    // Exiting 0 is not enough (`/bin/true` does): the probe must say the word.
    if status.success() && answer.trim() == PROBE_ANSWER {
        return Ok(());
    }
    if status.success() {
        return Err(format!(
            "{binary} is not an uprise that can take over (it did not answer the probe)"
        ));
    }
    let mut complaint = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut complaint);
    }
    let complaint = complaint.lines().last().unwrap_or("").trim().to_string();
    Err(match status.code() {
        Some(code) => format!("{binary} cannot take over (exit {code}): {complaint}"),
        None => format!("{binary} cannot take over (killed by a signal)"),
    })
}

/// Replaces this process with `binary ARGS`; returns only on failure. The caller flushes
/// what it holds first (the daemon's log).
pub fn exec(binary: &str, args: &[String]) -> io::Error {
    let Ok(path) = CString::new(binary) else {
        return io::Error::new(io::ErrorKind::InvalidInput, "binary path holds a NUL byte");
    };
    let mut argv = vec![path.clone()];
    for arg in args {
        match CString::new(arg.as_str()) {
            Ok(arg) => argv.push(arg),
            Err(_) => return io::Error::new(io::ErrorKind::InvalidInput, "argument holds a NUL byte"),
        }
    }
    match nix::unistd::execv(&path, &argv) {
        Ok(never) => match never {},
        Err(errno) => io::Error::from(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_reads_back_from_the_start_however_often() {
        let fd = state_file(b"hello state").unwrap();
        let raw = fd.as_raw_fd();
        let duplicate = nix::unistd::dup(&fd).unwrap();
        // Reading once moves the shared offset; the reader rewinds first.
        std::mem::forget(fd);
        assert_eq!(read_state(raw).unwrap(), b"hello state");
        use std::os::fd::IntoRawFd;
        assert_eq!(read_state(duplicate.into_raw_fd()).unwrap(), b"hello state");
    }

    #[test]
    fn cloexec_toggles() {
        let fd = state_file(b"x").unwrap();
        let flags = |fd: RawFd| {
            // SAFETY: a plain fcntl query on an open fd.
            unsafe { libc::fcntl(fd, libc::F_GETFD) }
        };
        set_cloexec(fd.as_raw_fd(), true).unwrap();
        assert_ne!(flags(fd.as_raw_fd()) & libc::FD_CLOEXEC, 0);
        set_cloexec(fd.as_raw_fd(), false).unwrap();
        assert_eq!(flags(fd.as_raw_fd()) & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn a_missing_binary_fails_the_probe() {
        let fd = state_file(b"{}").unwrap();
        let error = probe("/nonexistent/uprise", &fd, Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("cannot run /nonexistent/uprise"), "{error}");
    }
}
