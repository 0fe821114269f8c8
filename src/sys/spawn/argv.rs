//! argv and the exec candidates: Upstart's exec rule, the `PATH` search, the C string arrays
//! `execve` takes, and the script body passed through a pipe on fd 3.

use std::ffi::{CString, c_char, c_int};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::SpawnError;
use crate::syntax::ast::Command;

/// Characters that make Upstart run an `exec` line through `/bin/sh`.
const SHELL_CHARS: &str = "~`!$^&*()=|\\{}[];\"'<>?";

/// The shell, and its flags for `exec` lines and default scripts.
const SHELL: &str = "/bin/sh";

/// Where a script's interpreter finds the body.
const SCRIPT_PATH: &str = "/dev/fd/3";

/// The fd a script body is read from, and the first fd of `extra_fds`.
pub(super) const SCRIPT_FD: RawFd = 3;
pub(super) const FIRST_EXTRA_FD: RawFd = 4;

/// The largest script body a pipe can hold (the default `/proc/sys/fs/pipe-max-size`).
const MAX_SCRIPT: usize = 1 << 20;

/// `PATH` when the job's environment has none (glibc's `execvp` default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The argv of a command (Upstart's exec rule; scripts read from `/dev/fd/3`).
pub(super) fn argv_of(command: &Command) -> Vec<String> {
    match command {
        Command::Exec { command } if command.bytes().any(|b| SHELL_CHARS.as_bytes().contains(&b)) => {
            vec![SHELL.into(), "-e".into(), "-c".into(), format!("exec {command}")]
        }
        Command::Exec { command } => command
            .split([' ', '\t', '\r', '\n'])
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect(),
        Command::Script { interpreter, .. } => {
            let mut argv: Vec<String> = if interpreter.is_empty() {
                vec![SHELL.into(), "-e".into()]
            } else {
                interpreter.clone()
            };
            argv.push(SCRIPT_PATH.into());
            argv
        }
    }
}

/// The paths `execvp` would try for `program`, searching the job's `PATH`.
pub(super) fn exec_candidates(program: &str, env: &[String]) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    let path = env
        .iter()
        .find_map(|entry| entry.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| match dir {
            "" => program.to_owned(),
            dir => format!("{}/{program}", dir.trim_end_matches('/')),
        })
        .collect()
}

pub(super) fn c_string(text: &str, what: &str) -> Result<CString, SpawnError> {
    CString::new(text).map_err(|_| {
        SpawnError::message(
            "execute",
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// A NULL-terminated array of pointers to C strings, which lie one after another in a
/// buffer of its own: two allocations for a whole environment, not one per variable.
pub(super) struct CStringArray {
    /// Owns the bytes `pointers` points to; it is not changed once they are taken.
    _bytes: Vec<u8>,
    pub(super) pointers: Vec<*const c_char>,
}

impl CStringArray {
    /// `what` names the strings in the error for one holding a NUL byte.
    pub(super) fn new<'s>(
        strings: impl Iterator<Item = &'s str> + Clone,
        what: &str,
    ) -> Result<CStringArray, SpawnError> {
        let (count, size) = strings
            .clone()
            .fold((0, 0), |(n, size), text| (n + 1, size + text.len() + 1));
        let mut bytes = Vec::with_capacity(size);
        // Where each string starts; made into pointers in place once `bytes` is complete.
        let mut starts = Vec::with_capacity(count + 1);
        for text in strings {
            if text.as_bytes().contains(&0) {
                return Err(SpawnError::message(
                    "execute",
                    io::ErrorKind::InvalidInput,
                    format!("{what} contains a NUL byte"),
                ));
            }
            starts.push(bytes.len());
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(0);
        }
        let base = bytes.as_ptr();
        // SAFETY: each start is an offset inside `bytes`.
        let mut pointers: Vec<*const c_char> = starts.into_iter().map(|at| unsafe { base.add(at) }.cast()).collect();
        pointers.push(std::ptr::null());
        Ok(CStringArray {
            _bytes: bytes,
            pointers,
        })
    }

    /// The pointers to the strings, without the final NULL.
    pub(super) fn strings(&self) -> &[*const c_char] {
        &self.pointers[..self.pointers.len() - 1]
    }
}

/// Writes the whole body into a new pipe and returns its read end.
pub(super) fn pass_script(body: &str) -> Result<OwnedFd, SpawnError> {
    const STEP: &str = "pass the script";
    if body.len() > MAX_SCRIPT {
        return Err(SpawnError::message(
            STEP,
            io::ErrorKind::InvalidInput,
            format!(
                "the script is {} bytes, more than the 1 MiB a pipe can hold",
                body.len()
            ),
        ));
    }
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::new(STEP, e.into()))?;
    // SAFETY: F_GETPIPE_SZ on a pipe we own has no memory-safety preconditions.
    let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if capacity < 0 {
        return Err(SpawnError::new(STEP, io::Error::last_os_error()));
    }
    if body.len() > capacity as usize {
        // SAFETY: F_SETPIPE_SZ on a pipe we own; the size is at most 1 MiB, so it fits a c_int.
        if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, body.len() as c_int) } < 0 {
            return Err(SpawnError::new(STEP, io::Error::last_os_error()));
        }
    }
    // Never block the daemon: should the body not fit after all, fail with EAGAIN.
    // SAFETY: F_SETFL on a descriptor we own; only the write end's file description changes.
    if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
        return Err(SpawnError::new(STEP, io::Error::last_os_error()));
    }
    File::from(write)
        .write_all(body.as_bytes())
        .map_err(|e| SpawnError::new(STEP, e))?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::Exit;
    use crate::sys::spawn::Stdio;
    use crate::sys::spawn::tests::{PATH, env, exec, run, script, spawn_error, spec};

    #[test]
    fn exec_rule_splits_plain_commands_and_shells_the_rest() {
        assert_eq!(argv_of(&exec("  sleep\t30  ")), ["sleep", "30"]);
        assert_eq!(argv_of(&exec("echo $HOME")), ["/bin/sh", "-e", "-c", "exec echo $HOME"]);
        for special in "~`!$^&*()=|\\{}[];\"'<>?".chars() {
            assert_eq!(argv_of(&exec(&format!("a {special}")))[0], "/bin/sh", "{special}");
        }
        assert_eq!(argv_of(&script(&[], "true")), ["/bin/sh", "-e", "/dev/fd/3"]);
        assert_eq!(
            argv_of(&script(&["python3", "-u"], "pass")),
            ["python3", "-u", "/dev/fd/3"]
        );
    }

    #[test]
    fn large_script_bodies_pass() {
        let mut body = String::new();
        while body.len() < 200 * 1024 {
            body.push_str("# padding padding padding padding padding padding padding padding\n");
        }
        body.push_str("echo done\n");
        let (output, exit) = run(&script(&[], &body), &env(&[PATH]));
        assert_eq!((output.as_str(), exit), ("done\n", Exit::Code(0)));

        let huge = "#".repeat(MAX_SCRIPT + 1);
        let message = spawn_error(spec(&script(&[], &huge), &[], Stdio::Null));
        assert!(message.starts_with("unable to pass the script: "), "{message}");
    }
}
