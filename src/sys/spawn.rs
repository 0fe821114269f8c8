//! Spawning one job process: argv, environment, stdio, and the child's set-up between clone
//! and exec (Upstart's `job_process_spawn`, with uprise's fixes).
//!
//! Everything the child needs is computed in the parent, before the clone: argv, envp and the
//! `PATH` candidates as `CString`s, the user's and group's ids and supplementary groups, the
//! script already written into its pipe, the stdio descriptors. The child then only makes
//! system calls, with no allocation and no lock, on that prepared plan.
//!
//! The child is made much as `posix_spawn` makes it: `clone(CLONE_VM)` on a small stack of
//! its own. It shares the daemon's memory until it execs, so no page table is copied (a
//! `fork` of a daemon holding a thousand jobs spent most of a start copying and then tearing
//! down its page tables). Unlike `posix_spawn`, the parent does not sleep until the exec
//! ([`begin`] returns a [`Pending`]): while one child sets itself up and execs, the daemon
//! prepares the next. The kernel tells the parent when a child no longer uses the shared
//! memory by clearing a word (`CLONE_CHILD_CLEARTID`, at exec or exit), and until then the
//! parent keeps the child's plan, stack and descriptors as they are. Sharing memory with a
//! parent that runs on sets the rules the child code keeps:
//! - it makes the kernel's system calls itself ([`raw`]) and reads each error from the
//!   result: glibc's wrappers would write `errno`, which is the parent's thread's, and
//!   glibc's `setuid` would signal the *parent's* other threads to change their ids too;
//! - it allocates nothing and takes no lock;
//! - every signal is blocked in the parent across the clone, so no handler ever runs on the
//!   child's stack; the child resets every disposition, then unblocks;
//! - a failing step writes its index and errno into the plan, which the parent reads once
//!   the word is clear; the child then exits with 127 and the parent reaps it.
//!
//! Where the child cannot do without `errno` (architectures other than x86-64 and AArch64),
//! `PIPELINED` is false: the clone adds `CLONE_VFORK` and [`begin`] returns after the exec.
//!
//! The child's descriptors: each source is moved above the highest target first, so no
//! `dup2` onto a target can replace a source that is still to be placed.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::unistd::{Gid, Group, Uid, User};

use crate::syntax::ast::{Command, LimitValue, ProcessKind, Rlimit};

/// Where the child's stdin, stdout and stderr go.
#[derive(Debug)]
pub enum Stdio {
    /// `/dev/null` for all three.
    Null,
    /// The daemon's own stdin, stdout and stderr.
    Inherit,
    /// `/dev/console` for all three (not made the controlling terminal).
    Console,
    /// stdin from `/dev/null`; stdout and stderr to this descriptor (a log pipe or file).
    Log(OwnedFd),
}

/// Everything needed to start one process of one job instance.
pub struct SpawnSpec<'a> {
    /// The job's name, for messages.
    pub job_name: &'a str,
    pub kind: ProcessKind,
    /// `Exec` or `Script`; Lua scripts run in the embedded Lua and are never passed here.
    pub command: &'a Command,
    /// The complete environment as `KEY=VALUE`, in order; nothing else is inherited.
    pub env: &'a [String],
    pub stdio: Stdio,
    pub umask: u32,
    pub nice: Option<i32>,
    /// Written to `/proc/self/oom_score_adj`.
    pub oom_score: Option<i32>,
    pub limits: &'a BTreeMap<Rlimit, (LimitValue, LimitValue)>,
    pub chroot: Option<&'a str>,
    /// `/` when None; relative to the new root after `chroot`.
    pub chdir: Option<&'a str>,
    /// A user name or a numeric uid.
    pub setuid: Option<&'a str>,
    /// A group name or a numeric gid.
    pub setgid: Option<&'a str>,
    /// Passed to the child as fds 4, 5, … in order (fd 3 is reserved for scripts).
    pub extra_fds: Vec<OwnedFd>,
}

/// Why a process could not be started: the step that failed and its error.
#[derive(Debug)]
pub struct SpawnError {
    /// What was being done, worded to follow "unable to": `"execute"`, `"set user id"`, …
    pub step: &'static str,
    pub error: io::Error,
}

impl SpawnError {
    fn new(step: &'static str, error: io::Error) -> SpawnError {
        SpawnError { step, error }
    }

    fn message(step: &'static str, kind: io::ErrorKind, text: String) -> SpawnError {
        SpawnError::new(step, io::Error::new(kind, text))
    }
}

impl fmt::Display for SpawnError {
    /// `unable to STEP: ERROR`, with a system error as plain `strerror` text (as Upstart
    /// words it: `unable to execute: No such file or directory`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error.raw_os_error() {
            Some(errno) => write!(
                f,
                "unable to {}: {}",
                self.step,
                nix::errno::Errno::from_raw(errno).desc()
            ),
            None => write!(f, "unable to {}: {}", self.step, self.error),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

// ------------------------------------------------------------------ steps

/// The steps the child can fail at; the discriminant is the byte it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Session,
    Priority,
    OomScore,
    Chroot,
    Chdir,
    ScriptOwner,
    Groups,
    Gid,
    Uid,
    Script,
    Fds,
    Exec,
}

/// The names of [`Step`]s, by discriminant.
const STEP_NAMES: [&str; 12] = [
    "start a new session",
    "set process priority",
    "set oom score",
    "change root directory",
    "change to working directory",
    "set up script",
    "set supplementary groups",
    "set group id",
    "set user id",
    "set up script",
    "set up file descriptors",
    "execute",
];

/// Reports of `setrlimit` failures are `LIMIT_STEP + index in RLIMITS`.
const LIMIT_STEP: u8 = 64;

const RLIMITS: [Rlimit; 14] = [
    Rlimit::As,
    Rlimit::Core,
    Rlimit::Cpu,
    Rlimit::Data,
    Rlimit::Fsize,
    Rlimit::Memlock,
    Rlimit::Msgqueue,
    Rlimit::Nice,
    Rlimit::Nofile,
    Rlimit::Nproc,
    Rlimit::Rss,
    Rlimit::Rtprio,
    Rlimit::Sigpending,
    Rlimit::Stack,
];

/// The `setrlimit` resource and the step name of one `limit` stanza.
fn rlimit_info(resource: Rlimit) -> (libc::__rlimit_resource_t, &'static str) {
    match resource {
        Rlimit::As => (libc::RLIMIT_AS, "set \"as\" resource limit"),
        Rlimit::Core => (libc::RLIMIT_CORE, "set \"core\" resource limit"),
        Rlimit::Cpu => (libc::RLIMIT_CPU, "set \"cpu\" resource limit"),
        Rlimit::Data => (libc::RLIMIT_DATA, "set \"data\" resource limit"),
        Rlimit::Fsize => (libc::RLIMIT_FSIZE, "set \"fsize\" resource limit"),
        Rlimit::Memlock => (libc::RLIMIT_MEMLOCK, "set \"memlock\" resource limit"),
        Rlimit::Msgqueue => (libc::RLIMIT_MSGQUEUE, "set \"msgqueue\" resource limit"),
        Rlimit::Nice => (libc::RLIMIT_NICE, "set \"nice\" resource limit"),
        Rlimit::Nofile => (libc::RLIMIT_NOFILE, "set \"nofile\" resource limit"),
        Rlimit::Nproc => (libc::RLIMIT_NPROC, "set \"nproc\" resource limit"),
        Rlimit::Rss => (libc::RLIMIT_RSS, "set \"rss\" resource limit"),
        Rlimit::Rtprio => (libc::RLIMIT_RTPRIO, "set \"rtprio\" resource limit"),
        Rlimit::Sigpending => (libc::RLIMIT_SIGPENDING, "set \"sigpending\" resource limit"),
        Rlimit::Stack => (libc::RLIMIT_STACK, "set \"stack\" resource limit"),
    }
}

/// The step name for a byte reported by the child.
fn step_name(byte: u8) -> &'static str {
    if let Some(index) = byte.checked_sub(LIMIT_STEP)
        && let Some(resource) = RLIMITS.get(usize::from(index))
    {
        return rlimit_info(*resource).1;
    }
    STEP_NAMES.get(usize::from(byte)).copied().unwrap_or("execute")
}

// ------------------------------------------------------------------ argv

/// Characters that make Upstart run an `exec` line through `/bin/sh`.
const SHELL_CHARS: &str = "~`!$^&*()=|\\{}[];\"'<>?";

/// The shell, and its flags for `exec` lines and default scripts.
const SHELL: &str = "/bin/sh";

/// Where a script's interpreter finds the body.
const SCRIPT_PATH: &str = "/dev/fd/3";

/// The fd a script body is read from, and the first fd of `extra_fds`.
const SCRIPT_FD: RawFd = 3;
const FIRST_EXTRA_FD: RawFd = 4;

/// The largest script body a pipe can hold (the default `/proc/sys/fs/pipe-max-size`).
const MAX_SCRIPT: usize = 1 << 20;

/// `PATH` when the job's environment has none (glibc's `execvp` default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The argv of a command (Upstart's exec rule; scripts read from `/dev/fd/3`).
fn argv_of(command: &Command) -> Vec<String> {
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
fn exec_candidates(program: &str, env: &[String]) -> Vec<String> {
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

fn c_string(text: &str, what: &str) -> Result<CString, SpawnError> {
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
struct CStringArray {
    /// Owns the bytes `pointers` points to; it is not changed once they are taken.
    _bytes: Vec<u8>,
    pointers: Vec<*const c_char>,
}

impl CStringArray {
    /// `what` names the strings in the error for one holding a NUL byte.
    fn new<'s>(strings: impl Iterator<Item = &'s str> + Clone, what: &str) -> Result<CStringArray, SpawnError> {
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
    fn strings(&self) -> &[*const c_char] {
        &self.pointers[..self.pointers.len() - 1]
    }
}

// ------------------------------------------------------------------ parent-side set-up

/// Writes the whole body into a new pipe and returns its read end.
fn pass_script(body: &str) -> Result<OwnedFd, SpawnError> {
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

/// A close-on-exec duplicate of `fd` numbered `min` or above.
fn dup_above(fd: &impl AsRawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; it creates a new descriptor or fails.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The descriptors the child's stdin, stdout and stderr come from; `None` keeps the
/// daemon's own. `_owned` keeps the opened ones alive until the child has them.
struct StdioFds {
    sources: [Option<RawFd>; 3],
    _owned: Vec<OwnedFd>,
}

/// `/dev/null`, opened once per process (read-write, close-on-exec) and shared by every spawn.
fn dev_null() -> Result<RawFd, SpawnError> {
    static DEV_NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| SpawnError::new("open /dev/null", e))?;
    Ok(DEV_NULL.get_or_init(|| file.into()).as_raw_fd())
}

/// The child's stdin, stdout and stderr.
fn open_stdio(stdio: Stdio) -> Result<StdioFds, SpawnError> {
    let all = |fd: RawFd, owned: Vec<OwnedFd>| StdioFds {
        sources: [Some(fd); 3],
        _owned: owned,
    };
    match stdio {
        Stdio::Inherit => Ok(StdioFds {
            sources: [None; 3],
            _owned: Vec::new(),
        }),
        Stdio::Null => Ok(all(dev_null()?, Vec::new())),
        Stdio::Console => {
            let console: OwnedFd = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open("/dev/console")
                .map_err(|e| SpawnError::new("open console", e))?
                .into();
            Ok(all(console.as_raw_fd(), vec![console]))
        }
        Stdio::Log(fd) => Ok(StdioFds {
            sources: [Some(dev_null()?), Some(fd.as_raw_fd()), Some(fd.as_raw_fd())],
            _owned: vec![fd],
        }),
    }
}

/// The credentials the child takes, looked up before the fork.
#[derive(Debug, Default, PartialEq)]
struct Credentials {
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
    /// Supplementary groups, set only when the daemon is root and `setuid` is given.
    groups: Option<Vec<libc::gid_t>>,
}

fn find_user(text: &str) -> Result<(libc::uid_t, Option<User>), SpawnError> {
    const STEP: &str = "find setuid user";
    match User::from_name(text) {
        Ok(Some(user)) => Ok((user.uid.as_raw(), Some(user))),
        Ok(None) => match text.parse::<libc::uid_t>() {
            Ok(uid) => Ok((uid, User::from_uid(Uid::from_raw(uid)).ok().flatten())),
            Err(_) => Err(SpawnError::message(
                STEP,
                io::ErrorKind::NotFound,
                format!("no user named \"{text}\""),
            )),
        },
        Err(errno) => Err(SpawnError::new(STEP, errno.into())),
    }
}

fn find_group(text: &str) -> Result<libc::gid_t, SpawnError> {
    const STEP: &str = "find setgid group";
    match Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => text
            .parse::<libc::gid_t>()
            .map_err(|_| SpawnError::message(STEP, io::ErrorKind::NotFound, format!("no group named \"{text}\""))),
        Err(errno) => Err(SpawnError::new(STEP, errno.into())),
    }
}

/// Upstart's rules: `setuid` also sets the user's primary group unless `setgid` names one;
/// a root daemon gives the child the user's supplementary groups (none for a uid with no
/// passwd entry), a non-root daemon leaves its groups alone.
fn credentials(setuid: Option<&str>, setgid: Option<&str>) -> Result<Credentials, SpawnError> {
    let user = setuid.map(find_user).transpose()?;
    let group = setgid.map(find_group).transpose()?;
    let gid = group.or_else(|| {
        user.as_ref()
            .and_then(|(_, entry)| entry.as_ref())
            .map(|u| u.gid.as_raw())
    });
    let groups = match &user {
        Some(_) if !nix::unistd::geteuid().is_root() => None,
        Some((_, Some(entry))) => {
            let name = c_string(&entry.name, "the user name")?;
            let primary = Gid::from_raw(gid.unwrap_or(entry.gid.as_raw()));
            let list = nix::unistd::getgrouplist(&name, primary)
                .map_err(|e| SpawnError::new("set supplementary groups", e.into()))?;
            Some(list.into_iter().map(Gid::as_raw).collect())
        }
        Some((_, None)) => Some(Vec::new()),
        None => None,
    };
    Ok(Credentials {
        uid: user.map(|(uid, _)| uid),
        gid,
        groups,
    })
}

// ------------------------------------------------------------------ the child

/// Everything the child does between clone and exec, prepared in the parent.
struct ChildPlan {
    /// The step that failed and its errno, written by the child before it exits; read by
    /// the parent once the kernel has cleared the child's tid word (`InFlight::tid`).
    failure: Option<(u8, c_int)>,
    /// The highest signal number (`SIGRTMAX`).
    max_signal: c_int,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlimit, u8)>,
    umask: libc::mode_t,
    nice: Option<c_int>,
    /// The decimal text written to `oom_score_adj`.
    oom_score: Option<Vec<u8>>,
    chroot: Option<CString>,
    chdir: CString,
    credentials: Credentials,
    /// Sources of fds 0, 1 and 2 (`None`: the daemon's own); each is its target or lies
    /// above every target fd.
    stdio: [Option<RawFd>; 3],
    /// The script's read end, above every target fd; it becomes fd 3.
    script_fd: Option<RawFd>,
    /// Sources of fds 4, 5, …, above every target fd.
    extra_fds: Vec<RawFd>,
    /// The highest fd the child keeps.
    highest_fd: RawFd,
    /// With the staged descriptors (see [`reserve_fd_slots`]): the child shares the daemon's
    /// descriptor table until its first act, `close_range(N, ~0, CLOSE_RANGE_UNSHARE)`, which
    /// gives it a table of its own holding only the fds below N.
    unshare_below: Option<RawFd>,
    /// The daemon's `RLIMIT_NOFILE`, bounding the fallback when `close_range` is missing.
    fd_limit: c_int,
    /// The paths to try, in order.
    candidates: Vec<CString>,
    argv: CStringArray,
    envp: CStringArray,
    /// `/bin/sh PATH ARGS…` for a candidate that is not a binary (`ENOEXEC`), like `execvp`;
    /// slot 1 is filled in the child.
    sh_argv: Vec<*const c_char>,
}

/// The child's system calls go through [`raw`]: until it execs, the child shares the
/// daemon's memory, and with it the daemon thread's `errno`, while the daemon runs on (see
/// [`begin`]), so it reads each error from the result, never from `errno`.
use super::raw;

/// Whether [`begin`] returns before the child has exec'd: where the child makes its system
/// calls without `errno` (see [`raw`]). Elsewhere the parent sleeps, as with `vfork`.
const PIPELINED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Ok when a system call returned zero or more, else the step and errno.
fn check(result: isize, step: u8) -> Result<(), (u8, c_int)> {
    if result < 0 {
        Err((step, -result as c_int))
    } else {
        Ok(())
    }
}

/// A pointer as a system call argument.
fn ptr<T>(pointer: *const T) -> usize {
    pointer as usize
}

impl ChildPlan {
    /// Runs in the cloned child: set up, exec, or record the failure and exit. Never
    /// returns.
    fn run(&mut self) -> ! {
        let failure = match self.unshare_fds().and_then(|()| self.set_up()) {
            Ok(()) => self.exec(),
            Err(failure) => failure,
        };
        // SAFETY: the plan stays the child's until the kernel clears the child's tid word,
        // which it does after this write, when the child exits; the fence orders the two.
        unsafe {
            std::ptr::write_volatile(&mut self.failure, Some(failure));
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        loop {
            // SAFETY: exit_group takes a status and does not return.
            unsafe { raw::call(libc::SYS_exit_group, [127]) };
        }
    }

    /// A descriptor table of the child's own, holding only fds `0..N`, before anything else
    /// touches a descriptor (until then the table is the daemon's).
    fn unshare_fds(&self) -> Result<(), (u8, c_int)> {
        let Some(below) = self.unshare_below else {
            return Ok(());
        };
        check(close_range_from(below, libc::CLOSE_RANGE_UNSHARE), Step::Fds as u8)
    }

    /// Upstart's order: session, signals, limits, umask, nice, oom score, chroot, chdir,
    /// credentials, file descriptors.
    fn set_up(&self) -> Result<(), (u8, c_int)> {
        // SAFETY: setsid takes no arguments.
        let result = unsafe { raw::call(libc::SYS_setsid, []) };
        check(result, Step::Session as u8)?;
        self.reset_signals();
        for (resource, limit, step) in &self.limits {
            let args = [0, *resource as usize, ptr(limit), 0];
            // SAFETY: prlimit64 on this process, reading the plan's rlimit.
            check(unsafe { raw::call(libc::SYS_prlimit64, args) }, *step)?;
        }
        // SAFETY: umask takes a number; it cannot fail, so it has no step of its own.
        unsafe { raw::call(libc::SYS_umask, [self.umask as usize]) };
        if let Some(nice) = self.nice {
            let args = [libc::PRIO_PROCESS as usize, 0, nice as isize as usize];
            // SAFETY: setpriority takes numbers.
            check(unsafe { raw::call(libc::SYS_setpriority, args) }, Step::Priority as u8)?;
        }
        if let Some(text) = &self.oom_score {
            write_oom_score(text).map_err(|error| (Step::OomScore as u8, error))?;
        }
        if let Some(dir) = &self.chroot {
            // SAFETY: a NUL-terminated path owned by the plan.
            let result = unsafe { raw::call(libc::SYS_chroot, [ptr(dir.as_ptr())]) };
            check(result, Step::Chroot as u8)?;
        }
        // SAFETY: a NUL-terminated path owned by the plan.
        let result = unsafe { raw::call(libc::SYS_chdir, [ptr(self.chdir.as_ptr())]) };
        check(result, Step::Chdir as u8)?;
        self.set_credentials()?;
        self.set_up_fds()
    }

    /// Every disposition back to `SIG_DFL`, then an empty signal mask: the daemon blocks
    /// SIGCHLD and friends for its signalfd, and a job must not inherit that. The kernel's
    /// own calls, so the signals glibc reserves for itself (32 and 33) are reset too.
    fn reset_signals(&self) {
        // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask (64 bytes
        // cover its layout on every architecture); and an empty kernel signal set.
        let kernel_default = [0u64; 8];
        let empty = [0u64; 2];
        let sigset_size = (self.max_signal as usize).div_ceil(8);
        for signal in 1..=self.max_signal {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                let args = [signal as usize, ptr(kernel_default.as_ptr()), 0, sigset_size];
                // SAFETY: a valid kernel sigaction and no old action asked for.
                unsafe { raw::call(libc::SYS_rt_sigaction, args) };
            }
        }
        let args = [libc::SIG_SETMASK as usize, ptr(empty.as_ptr()), 0, sigset_size];
        // SAFETY: a valid kernel signal set, at least `sigset_size` bytes.
        unsafe { raw::call(libc::SYS_rt_sigprocmask, args) };
    }

    /// The script's owner (so the new user can open `/dev/fd/3`), supplementary groups,
    /// gid, uid. The kernel's calls change only the calling process's ids; glibc's wrappers
    /// would signal the daemon's other threads to change theirs too.
    fn set_credentials(&self) -> Result<(), (u8, c_int)> {
        let Credentials { uid, gid, groups } = &self.credentials;
        if let Some(fd) = self.script_fd
            && (uid.is_some() || gid.is_some())
        {
            // -1 leaves an id unchanged.
            let owner = uid.unwrap_or(libc::uid_t::MAX) as usize;
            let group = gid.unwrap_or(libc::gid_t::MAX) as usize;
            // SAFETY: fchown takes numbers.
            let result = unsafe { raw::call(libc::SYS_fchown, [fd as usize, owner, group]) };
            check(result, Step::ScriptOwner as u8)?;
        }
        if let Some(groups) = groups {
            // SAFETY: the length and address of the plan's own group vector.
            let result = unsafe { raw::call(libc::SYS_setgroups, [groups.len(), ptr(groups.as_ptr())]) };
            check(result, Step::Groups as u8)?;
        }
        if let Some(gid) = gid {
            // SAFETY: setgid takes a number.
            let result = unsafe { raw::call(libc::SYS_setgid, [*gid as usize]) };
            check(result, Step::Gid as u8)?;
        }
        if let Some(uid) = uid {
            // SAFETY: setuid takes a number.
            let result = unsafe { raw::call(libc::SYS_setuid, [*uid as usize]) };
            check(result, Step::Uid as u8)?;
        }
        Ok(())
    }

    /// stdio on 0, 1 and 2, the script on 3, the extra fds on 4, 5, …; every other
    /// descriptor above 2 is marked close-on-exec (the exec closes them in one pass).
    fn set_up_fds(&self) -> Result<(), (u8, c_int)> {
        for (target, source) in (0..).zip(&self.stdio) {
            if let Some(source) = source {
                move_fd(*source, target).map_err(|e| (Step::Fds as u8, e))?;
            }
        }
        if let Some(fd) = self.script_fd {
            move_fd(fd, SCRIPT_FD).map_err(|e| (Step::Script as u8, e))?;
        }
        for (target, source) in (FIRST_EXTRA_FD..).zip(&self.extra_fds) {
            move_fd(*source, target).map_err(|e| (Step::Fds as u8, e))?;
        }
        if self.script_fd.is_none() && self.highest_fd >= SCRIPT_FD {
            set_cloexec(SCRIPT_FD);
        }
        let first = self.highest_fd + 1;
        if close_range_from(first, libc::CLOSE_RANGE_CLOEXEC) < 0 {
            for fd in first..self.fd_limit {
                set_cloexec(fd);
            }
        }
        Ok(())
    }

    /// `execve` each candidate in turn, with `execvp`'s rules; returns only on failure.
    fn exec(&mut self) -> (u8, c_int) {
        let step = Step::Exec as u8;
        let mut error = libc::ENOENT;
        let mut denied = false;
        let ChildPlan {
            candidates,
            argv,
            envp,
            sh_argv,
            ..
        } = self;
        let envp = ptr(envp.pointers.as_ptr());
        for candidate in candidates.iter() {
            let args = [ptr(candidate.as_ptr()), ptr(argv.pointers.as_ptr()), envp];
            // SAFETY: the path and both arrays are NUL-terminated and owned by the plan.
            let failure = -unsafe { raw::call(libc::SYS_execve, args) } as c_int;
            match failure {
                libc::ENOEXEC => {
                    if let Some(slot) = sh_argv.get_mut(1) {
                        *slot = candidate.as_ptr();
                    }
                    let args = [ptr(SHELL_C.as_ptr()), ptr(sh_argv.as_ptr()), envp];
                    // SAFETY: as above; `sh_argv` is NULL-terminated and points into the plan.
                    return (step, -unsafe { raw::call(libc::SYS_execve, args) } as c_int);
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => return (step, other),
            }
            error = failure;
        }
        (step, if denied { libc::EACCES } else { error })
    }
}

const SHELL_C: &CStr = c"/bin/sh";

/// `close_range(first, ~0, flags)` on the calling process's table: with
/// `CLOSE_RANGE_CLOEXEC` it marks, with `CLOSE_RANGE_UNSHARE` it first gives the caller a table
/// of its own holding only the fds below `first`. Negative on failure.
fn close_range_from(first: RawFd, flags: libc::c_uint) -> isize {
    let args = [first as usize, libc::c_uint::MAX as usize, flags as usize];
    // SAFETY: close_range only changes the descriptor table; no memory is involved.
    unsafe { raw::call(libc::SYS_close_range, args) }
}

/// Puts `source` on `target`, inheritable across exec.
fn move_fd(source: RawFd, target: RawFd) -> Result<(), c_int> {
    // SAFETY: fcntl and dup3 on descriptor numbers only change the descriptor table.
    let result = unsafe {
        if source == target {
            raw::call(libc::SYS_fcntl, [target as usize, libc::F_SETFD as usize, 0])
        } else {
            raw::call(libc::SYS_dup3, [source as usize, target as usize, 0])
        }
    };
    if result < 0 { Err(-result as c_int) } else { Ok(()) }
}

/// Marks `fd` close-on-exec if it is open.
fn set_cloexec(fd: RawFd) {
    // SAFETY: F_GETFD/F_SETFD on any number only read or change descriptor flags.
    unsafe {
        let flags = raw::call(libc::SYS_fcntl, [fd as usize, libc::F_GETFD as usize]);
        if flags >= 0 && flags & libc::FD_CLOEXEC as isize == 0 {
            let flags = (flags | libc::FD_CLOEXEC as isize) as usize;
            raw::call(libc::SYS_fcntl, [fd as usize, libc::F_SETFD as usize, flags]);
        }
    }
}

fn write_oom_score(text: &[u8]) -> Result<(), c_int> {
    let path = c"/proc/self/oom_score_adj";
    let flags = (libc::O_WRONLY | libc::O_CLOEXEC) as usize;
    // SAFETY: a static NUL-terminated path and the caller's bytes; the descriptor is
    // closed before returning.
    unsafe {
        let fd = raw::call(libc::SYS_openat, [libc::AT_FDCWD as usize, ptr(path.as_ptr()), flags]);
        if fd < 0 {
            return Err(-fd as c_int);
        }
        let written = raw::call(libc::SYS_write, [fd as usize, ptr(text.as_ptr()), text.len()]);
        raw::call(libc::SYS_close, [fd as usize]);
        if written < 0 { Err(-written as c_int) } else { Ok(()) }
    }
}

// ------------------------------------------------------------------ spawn

/// Starts one process; returns its pid once it has exec'd: [`begin`], then
/// [`Pending::wait`].
pub fn spawn(spec: SpawnSpec<'_>) -> Result<i32, SpawnError> {
    begin(spec)?.wait()
}

/// A child started by [`begin`]: its pid, and the memory it may still be using. Waiting
/// tells whether it exec'd; dropping it unwaited also waits for the child to be done with
/// that memory.
pub struct Pending {
    pid: i32,
    child: Box<InFlight>,
}

/// What a child reads until it execs, kept by the parent until then.
struct InFlight {
    /// The child's tid until the kernel clears it (`CLONE_CHILD_CLEARTID`) when the child
    /// lets go of the daemon's memory: at its exec, or at its exit after a failed step.
    /// A futex the parent can sleep on.
    tid: std::sync::atomic::AtomicI32,
    /// Written by the child (its failure, `sh_argv`) while the parent runs on, so the
    /// parent reaches it only through the cell's pointer, and only once the word is clear.
    plan: std::cell::UnsafeCell<ChildPlan>,
    stack: Option<ChildStack>,
    /// The slots holding the child's descriptors (see [`reserve_fd_slots`]), put back once
    /// it is done.
    staged: Vec<RawFd>,
    /// The parent's copies of the child's descriptors, open until it has its own.
    _fds: (StdioFds, Vec<OwnedFd>, Option<OwnedFd>, Vec<OwnedFd>),
}

impl InFlight {
    fn done(&self) -> bool {
        self.tid.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    /// Sleeps until the child is done with the plan.
    fn block(&self) {
        loop {
            let tid = self.tid.load(std::sync::atomic::Ordering::Acquire);
            if tid == 0 {
                return;
            }
            // SAFETY: FUTEX_WAIT on a live, aligned i32; it returns at once unless the word
            // still holds `tid`, and the kernel wakes it when it clears the word. The key is
            // shared, like the kernel's wake on clearing.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.tid.as_ptr(),
                    libc::FUTEX_WAIT,
                    tid,
                    std::ptr::null::<libc::timespec>(),
                );
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.block();
        if !self.staged.is_empty() {
            release_slots(&self.staged);
        }
        if let Some(stack) = self.stack.take() {
            STACKS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(stack);
        }
    }
}

impl Pending {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the child has exec'd or failed, so that [`Pending::wait`] returns at once.
    pub fn is_done(&self) -> bool {
        self.child.done()
    }

    /// Sleeps until the child has exec'd or failed. Its pid once it exec'd; else the step
    /// that failed, and the child has been reaped.
    pub fn wait(self) -> Result<i32, SpawnError> {
        let Pending { pid, child } = self;
        child.block();
        // SAFETY: the word is clear, so the child no longer touches the plan (see `run`).
        let failure = unsafe { std::ptr::read_volatile(&raw const (*child.plan.get()).failure) };
        drop(child);
        let Some((step, error)) = failure else {
            return Ok(pid);
        };
        // The child exits right after recording its failure; don't leave a zombie.
        let _ = super::process::wait_for(pid);
        Err(SpawnError::new(step_name(step), io::Error::from_raw_os_error(error)))
    }
}

/// Starts one process, and returns as soon as the child runs, where it may still be
/// setting up; [`Pending::wait`] says whether it exec'd. (Where the child cannot do without
/// `errno`, `PIPELINED` is false and this returns once it exec'd.)
///
/// The child is a session and process-group leader, with an empty signal mask, default
/// signal dispositions, exactly `spec.env`, and no descriptors but 0, 1, 2, the script's 3
/// and the extra fds. A failure in the parent or in the child is a [`SpawnError`] naming the
/// step.
pub fn begin(spec: SpawnSpec<'_>) -> Result<Pending, SpawnError> {
    let SpawnSpec {
        job_name,
        kind,
        command,
        env,
        stdio,
        umask,
        nice,
        oom_score,
        limits,
        chroot,
        chdir,
        setuid,
        setgid,
        extra_fds,
    } = spec;
    if command.is_lua() {
        return Err(SpawnError::message(
            "execute",
            io::ErrorKind::InvalidInput,
            "a Lua script runs in the embedded Lua, not as a process".into(),
        ));
    }
    let words = argv_of(command);
    let Some(program) = words.first() else {
        return Err(SpawnError::message(
            "execute",
            io::ErrorKind::InvalidInput,
            "the command is empty".into(),
        ));
    };
    log::debug!("spawning {job_name} {} process: {words:?}", kind.keyword());
    let argv = CStringArray::new(words.iter().map(String::as_str), "the command")?;
    let candidates: Vec<CString> = exec_candidates(program, env)
        .iter()
        .map(|p| c_string(p, "PATH"))
        .collect::<Result<_, _>>()?;
    let envp = CStringArray::new(env.iter().map(String::as_str), "the environment")?;
    let mut sh_argv: Vec<*const c_char> = vec![SHELL_C.as_ptr(), std::ptr::null()];
    sh_argv.extend(argv.strings().iter().skip(1));
    sh_argv.push(std::ptr::null());
    let chroot = chroot.map(|dir| c_string(dir, "the chroot directory")).transpose()?;
    let chdir = c_string(chdir.unwrap_or("/"), "the working directory")?;

    let credentials = credentials(setuid, setgid)?;
    let stdio = open_stdio(stdio)?;
    let script = match command {
        Command::Script { body, .. } => Some(pass_script(body)?),
        Command::Exec { .. } => None,
    };

    // Every source descriptor moves above the highest target (unless it is its own
    // target), so no dup2 onto a target can replace a source still to be placed.
    let highest_fd = match (extra_fds.len(), &script) {
        (0, None) => 2,
        (0, Some(_)) => SCRIPT_FD,
        (n, _) => FIRST_EXTRA_FD + n as RawFd - 1,
    };
    let above = highest_fd + 1;
    let fd_error = |e| SpawnError::new("set up file descriptors", e);
    let mut moved_stdio = Vec::new();
    let mut stdio_sources = stdio.sources;
    for (target, slot) in (0..).zip(stdio_sources.iter_mut()) {
        if let Some(source) = *slot
            && source != target
            && source <= highest_fd
        {
            // SAFETY: `source` is open for the whole call: the daemon's, or held by `stdio`.
            let copy = dup_above(&unsafe { std::os::fd::BorrowedFd::borrow_raw(source) }, above).map_err(fd_error)?;
            *slot = Some(copy.as_raw_fd());
            moved_stdio.push(copy);
        }
    }
    let script = script
        .map(|fd| dup_above(&fd, above))
        .transpose()
        .map_err(|e| SpawnError::new("pass the script", e))?;
    let extra_fds: Vec<OwnedFd> = extra_fds
        .into_iter()
        .map(|fd| {
            if fd.as_raw_fd() > highest_fd {
                Ok(fd)
            } else {
                dup_above(&fd, above)
            }
        })
        .collect::<io::Result<_>>()
        .map_err(fd_error)?;

    let fd_limit = fd_limit();
    let plan = ChildPlan {
        failure: None,
        max_signal: libc::SIGRTMAX(),
        limits: limits
            .iter()
            .map(|(resource, (soft, hard))| {
                let (id, _) = rlimit_info(*resource);
                let index = RLIMITS.iter().position(|r| r == resource).unwrap_or(0) as u8;
                let value = |v: &LimitValue| match v {
                    LimitValue::Unlimited => libc::RLIM_INFINITY,
                    LimitValue::Value(n) => *n,
                };
                let limit = libc::rlimit {
                    rlim_cur: value(soft),
                    rlim_max: value(hard),
                };
                (id, limit, LIMIT_STEP + index)
            })
            .collect(),
        umask: umask as libc::mode_t,
        nice,
        oom_score: oom_score.map(|score| score.to_string().into_bytes()),
        chroot,
        chdir,
        credentials,
        stdio: stdio_sources,
        script_fd: script.as_ref().map(AsRawFd::as_raw_fd),
        extra_fds: extra_fds.iter().map(AsRawFd::as_raw_fd).collect(),
        highest_fd,
        unshare_below: None,
        fd_limit,
        candidates,
        argv,
        envp,
        sh_argv,
    };

    let mut child = Box::new(InFlight {
        tid: std::sync::atomic::AtomicI32::new(-1),
        plan: std::cell::UnsafeCell::new(plan),
        stack: None,
        staged: Vec::new(),
        _fds: (stdio, moved_stdio, script, extra_fds),
    });
    let share_files = {
        let mut slots = FD_SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *slots {
            SlotState::Ready {
                placeholder,
                ours,
                busy,
            } => {
                let newest = child.plan.get_mut().stdio.iter().flatten().copied().max().unwrap_or(0);
                keep_fd_room(newest, *busy);
                match stage_fds(child.plan.get_mut(), *placeholder, *ours & !*busy) {
                    Ok(Some(staged)) => {
                        for slot in &staged {
                            *busy |= 1 << slot;
                        }
                        child.staged = staged;
                        true
                    }
                    Ok(None) => false,
                    Err(error) => {
                        child.tid.store(0, std::sync::atomic::Ordering::Release);
                        return Err(fd_error(error));
                    }
                }
            }
            _ => false,
        }
    };
    match clone_child(&mut child, share_files) {
        Ok(pid) => Ok(Pending { pid, child }),
        Err(error) => {
            // No child: nothing will clear the word.
            child.tid.store(0, std::sync::atomic::Ordering::Release);
            Err(SpawnError::new("spawn process", error))
        }
    }
}

// ------------------------------------------------------------------ staged descriptors

/// The first and one past the last of the low descriptors reserved for staging.
const SLOT_FIRST: RawFd = 3;
const SLOT_END: RawFd = 35;

enum SlotState {
    Untried,
    Unavailable,
    /// The fds of `SLOT_FIRST..SLOT_END` set in `ours` hold a `/dev/null` placeholder
    /// (close-on-exec; the others were taken before uprise started, by whoever started it);
    /// `placeholder` is one more, above them, to put back after a spawn. The slots set in
    /// `busy` hold the descriptors of children that have not exec'd yet.
    Ready {
        placeholder: RawFd,
        ours: u64,
        busy: u64,
    },
}

static FD_SLOTS: std::sync::Mutex<SlotState> = std::sync::Mutex::new(SlotState::Untried);

/// Reserves the free fds among 3 to 34 for staging what a child inherits; call it first
/// thing, before the process opens anything. Returns whether fd 3 (a script's) and so the
/// staged path is available (once tried, the answer stays).
///
/// Without it, every spawn copies the daemon's whole descriptor table (a thousand services
/// hold a thousand log pipes) and every exec closes the copies again, so a start costs more
/// the more services run. With it, a spawn puts the child's descriptors on the reserved
/// numbers (replacing the placeholders), clones with `CLONE_FILES` (no copy), and the
/// child's first act, `close_range(N, ~0, CLOSE_RANGE_UNSHARE)`, gives it a table of its own
/// holding only fds `0..N`: a spawn costs the same with 10 services or 10,000. The slots a
/// child uses stay its own until it has exec'd (children in flight together use different
/// slots), then take their placeholders back. Fds below N that uprise inherited from whoever
/// started it, and other children's staged fds (close-on-exec), are marked or left
/// close-on-exec in the child like every fd above its last target. A spawn that needs more
/// descriptors than are free, and every spawn when fd 3 was taken, copies the table.
pub fn reserve_fd_slots() -> bool {
    let mut slots = FD_SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if matches!(*slots, SlotState::Untried) {
        *slots = match try_reserve() {
            Some((placeholder, ours)) => SlotState::Ready {
                placeholder,
                ours,
                busy: 0,
            },
            None => SlotState::Unavailable,
        };
    }
    matches!(*slots, SlotState::Ready { .. })
}

/// Takes every free fd in the slot range with a `/dev/null` placeholder. `F_DUPFD` only
/// ever takes a free number, so an fd someone else holds (one the daemon inherited) is left
/// alone. None when fd 3, where a script's body goes, is not free.
fn try_reserve() -> Option<(RawFd, u64)> {
    let null = OpenOptions::new().read(true).write(true).open("/dev/null").ok()?;
    let placeholder = dup_above(&null, SLOT_END).ok()?;
    drop(null);
    let mut ours = 0u64;
    for wanted in SLOT_FIRST..SLOT_END {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; it creates a new descriptor or fails.
        let got = unsafe { libc::fcntl(placeholder.as_raw_fd(), libc::F_DUPFD_CLOEXEC, wanted) };
        if got == wanted {
            ours |= 1 << wanted;
        } else if got >= 0 {
            // SAFETY: a fresh descriptor above the one wanted, which someone else holds.
            unsafe { libc::close(got) };
        }
    }
    if ours & (1 << SLOT_FIRST) == 0 {
        for slot in SLOT_FIRST..SLOT_END {
            if ours & (1 << slot) != 0 {
                // SAFETY: a placeholder taken just above.
                unsafe { libc::close(slot) };
            }
        }
        return None;
    }
    // The slots and the placeholder stay open for the life of the process.
    Some((std::os::fd::IntoRawFd::into_raw_fd(placeholder), ours))
}

/// Puts the child's descriptors on the slots: the script on 3, the extra fds on 4, 5, …
/// (their own numbers), and each distinct stdio source above them. Returns the slots used,
/// or None when they do not fit (the plan is then unchanged).
fn stage_fds(plan: &mut ChildPlan, placeholder: RawFd, free: u64) -> io::Result<Option<Vec<RawFd>>> {
    let is_ours = |fd: RawFd| (SLOT_FIRST..SLOT_END).contains(&fd) && free & (1 << fd) != 0;
    let mut sources: Vec<RawFd> = Vec::new();
    for source in plan.stdio.iter().flatten() {
        if !sources.contains(source) {
            sources.push(*source);
        }
    }
    let mut moves: Vec<(RawFd, RawFd)> = Vec::new();
    if let Some(script) = plan.script_fd {
        moves.push((script, SCRIPT_FD));
    }
    for (target, source) in (FIRST_EXTRA_FD..).zip(&plan.extra_fds) {
        moves.push((*source, target));
    }
    if moves.iter().any(|(_, target)| !is_ours(*target)) {
        return Ok(None);
    }
    let mut free_slots = (plan.highest_fd + 1..SLOT_END).filter(|fd| is_ours(*fd));
    let mut stdio_slots = Vec::new();
    for source in &sources {
        let Some(slot) = free_slots.next() else {
            return Ok(None);
        };
        moves.push((*source, slot));
        stdio_slots.push(slot);
    }
    let end = moves
        .iter()
        .map(|(_, slot)| slot + 1)
        .max()
        .unwrap_or(0)
        .max(plan.highest_fd + 1);
    let mut staged = Vec::new();
    for (source, slot) in &moves {
        // SAFETY: dup3 replaces the slot's placeholder with a copy of an open descriptor,
        // atomically; the slot is never free for another thread to take.
        if unsafe { libc::dup3(*source, *slot, libc::O_CLOEXEC) } < 0 {
            let error = io::Error::last_os_error();
            unstage_fds(&staged, placeholder);
            return Err(error);
        }
        staged.push(*slot);
    }
    if plan.script_fd.is_some() {
        plan.script_fd = Some(SCRIPT_FD);
    }
    plan.extra_fds = (FIRST_EXTRA_FD..).take(plan.extra_fds.len()).collect();
    for source in plan.stdio.iter_mut().flatten() {
        let index = sources.iter().position(|s| s == source).unwrap_or(0);
        *source = stdio_slots[index];
    }
    plan.unshare_below = Some(end);
    Ok(Some(staged))
}

/// Puts the placeholders back on the slots of a child that is done with them, and frees
/// them for the next.
fn release_slots(staged: &[RawFd]) {
    let mut slots = FD_SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let SlotState::Ready { placeholder, busy, .. } = &mut *slots {
        unstage_fds(staged, *placeholder);
        for slot in staged {
            *busy &= !(1 << slot);
        }
    }
}

/// Puts the placeholders back on the slots a spawn used.
fn unstage_fds(staged: &[RawFd], placeholder: RawFd) {
    for slot in staged {
        // SAFETY: as in `stage_fds`: an atomic replacement of a descriptor we reserved.
        unsafe { libc::dup3(placeholder, *slot, libc::O_CLOEXEC) };
    }
}

/// The `RLIMIT_NOFILE` soft limit, read at the first spawn: the daemon raises its own limit
/// before it starts anything, and a system call per spawn is not needed to know it.
fn fd_limit() -> c_int {
    static LIMIT: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft.min(c_int::MAX as u64) as c_int)
    })
}

/// How many descriptors the table holds for sure (see [`make_fd_room`]); 0 until asked.
static FD_ROOM: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// When a spawn finds an fd this close to the room made, and no child shares the table, it
/// doubles the room.
const FD_ROOM_MARGIN: RawFd = 64;

/// Grows the descriptor table to hold `count` descriptors (at most the `RLIMIT_NOFILE` soft
/// limit) now. Call it where no child shares the table: at start-up and after loading jobs.
///
/// The kernel grows a table that runs out of room by doubling it, and when another task
/// shares the table (a child between its clone and its first act, see
/// [`reserve_fd_slots`]) it first waits for an RCU grace period: 14–18 ms on the 2-CPU
/// machine the benchmarks ran on, once per start of 1,000 services, with the daemon blocked
/// and, late in a start, both CPUs idle. Grown while nothing shares it, the table costs a
/// copy; its size is what the daemon would reach anyway.
pub fn make_fd_room(count: usize) {
    use std::sync::atomic::Ordering;
    let count = count.min(fd_limit() as usize) as c_int;
    if count <= FD_ROOM.load(Ordering::Relaxed) {
        return;
    }
    let Ok(null) = dev_null() else {
        return;
    };
    // F_DUPFD takes the lowest free fd at or above the number; the table grows to hold it.
    // Where it cannot (the limit is near), the kernel grows the table when it must, as
    // before; the room is noted all the same, so that spawns do not try again each time.
    let _ = dup_above(&null, count - 1);
    FD_ROOM.store(count, Ordering::Relaxed);
}

/// After a spawn took `fd`: with no child sharing the table (`busy` is 0), doubles the room
/// when `fd` comes near its end, so that the kernel never grows the table while one does.
fn keep_fd_room(fd: RawFd, busy: u64) {
    let room = FD_ROOM.load(std::sync::atomic::Ordering::Relaxed);
    if busy == 0 && room > 0 && fd + FD_ROOM_MARGIN >= room {
        make_fd_room(room as usize * 2);
    }
}

/// The size of the stack a cloned child runs on until it execs; the set-up needs a few KiB.
const CHILD_STACK: usize = 64 * 1024;

/// A child's stack, mapped on first need and kept in [`STACKS`] for the next child.
struct ChildStack {
    base: *mut libc::c_void,
}

// SAFETY: the mapping belongs to whoever holds the value; nothing else refers to it.
unsafe impl Send for ChildStack {}

impl ChildStack {
    fn map() -> io::Result<ChildStack> {
        // SAFETY: an anonymous private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // A guard page at the bottom: an overflow faults instead of writing the heap.
        // SAFETY: the first page of the mapping just made.
        unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) };
        Ok(ChildStack { base })
    }

    /// The initial stack pointer: the top of the mapping (stacks grow down).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, 16-byte aligned as the ABI wants.
        unsafe { self.base.cast::<u8>().add(CHILD_STACK).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, which no child uses any more.
        unsafe { libc::munmap(self.base, CHILD_STACK) };
    }
}

/// Stacks of children that are done, for the next ones: one per child not yet exec'd is
/// ever mapped.
static STACKS: std::sync::Mutex<Vec<ChildStack>> = std::sync::Mutex::new(Vec::new());

/// Unmaps the spare stacks but one: a burst of spawns in flight at once leaves a stack per
/// child behind, each with the pages its child touched.
pub fn release_spare_stacks() {
    let mut stacks = STACKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    stacks.truncate(1);
}

/// The cloned child's entry point: runs the plan, never returns.
extern "C" fn child_main(plan: *mut libc::c_void) -> c_int {
    // SAFETY: `clone_child` passes the `ChildPlan` of an `InFlight`, which the parent keeps
    // and leaves alone until the kernel clears the child's tid word.
    let plan = unsafe { &mut *plan.cast::<ChildPlan>() };
    plan.run()
}

/// Starts a child that shares this process's memory until it execs, on a stack of its own,
/// to run `child.plan`. The kernel clears `child.tid` when the child is done with that
/// memory. With `PIPELINED` this returns at once; otherwise (`CLONE_VFORK`) once the child
/// exec'd or exited.
fn clone_child(child: &mut InFlight, share_files: bool) -> io::Result<i32> {
    let spare = STACKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
    let stack = match spare {
        Some(stack) => stack,
        None => ChildStack::map()?,
    };
    let top = stack.top();
    child.stack = Some(stack);
    // SAFETY: sigset_t is a plain C struct; all zeroes is a valid (empty) value.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset initialises `all`; pthread_sigmask only changes this thread's
    // mask, and it is restored below on every path.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let flags = libc::CLONE_VM
        | libc::CLONE_CHILD_CLEARTID
        | libc::SIGCHLD
        | if PIPELINED { 0 } else { libc::CLONE_VFORK }
        | if share_files { libc::CLONE_FILES } else { 0 };
    // SAFETY: CLONE_VM: the child runs `child_main` on its own stack, on the plan, which
    // the caller keeps, with the stack, until the kernel clears the tid word. Every signal
    // is blocked, so no handler of the daemon runs in the child before it resets them.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            flags,
            child.plan.get().cast(),
            std::ptr::null_mut::<libc::pid_t>(),
            std::ptr::null_mut::<libc::c_void>(),
            child.tid.as_ptr(),
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 { Err(error) } else { Ok(pid) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{Exit, kill_process, wait_for};
    use std::io::{BufRead, BufReader, Read};

    static NO_LIMITS: BTreeMap<Rlimit, (LimitValue, LimitValue)> = BTreeMap::new();
    const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

    fn exec(command: &str) -> Command {
        Command::Exec {
            command: command.into(),
        }
    }

    fn script(interpreter: &[&str], body: &str) -> Command {
        Command::Script {
            interpreter: interpreter.iter().map(|s| s.to_string()).collect(),
            body: body.into(),
        }
    }

    fn env(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    fn spec<'a>(command: &'a Command, env: &'a [String], stdio: Stdio) -> SpawnSpec<'a> {
        SpawnSpec {
            job_name: "test",
            kind: ProcessKind::Main,
            command,
            env,
            stdio,
            umask: 0o022,
            nice: None,
            oom_score: None,
            limits: &NO_LIMITS,
            chroot: None,
            chdir: None,
            setuid: None,
            setgid: None,
            extra_fds: Vec::new(),
        }
    }

    fn pipe() -> (File, OwnedFd) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        (File::from(read), write)
    }

    /// Spawns with stdout and stderr on a pipe; returns the output and the exit.
    fn run_with(mut spec: SpawnSpec<'_>) -> (String, Exit) {
        let (mut read, write) = pipe();
        spec.stdio = Stdio::Log(write);
        let pid = spawn(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"));
        let mut output = String::new();
        read.read_to_string(&mut output).unwrap();
        (output, wait_for(pid).unwrap())
    }

    fn run(command: &Command, env: &[String]) -> (String, Exit) {
        run_with(spec(command, env, Stdio::Null))
    }

    fn spawn_error(spec: SpawnSpec<'_>) -> String {
        match spawn(spec) {
            Ok(pid) => panic!("spawned {pid}: {:?}", wait_for(pid)),
            Err(e) => e.to_string(),
        }
    }

    /// Starts a long-running process; the caller kills it.
    fn start(spec: SpawnSpec<'_>) -> i32 {
        spawn(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"))
    }

    fn stop(pid: i32) {
        kill_process(pid, libc::SIGKILL).unwrap();
        assert_eq!(wait_for(pid).unwrap(), Exit::Signal(libc::SIGKILL));
    }

    /// The child's argv. `spawn` returns once the child's memory is replaced, which is a
    /// moment before the kernel has laid out the new argv, so this waits for it.
    fn cmdline(pid: i32) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            if !raw.is_empty() || std::time::Instant::now() > deadline {
                return raw
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
            }
            std::thread::yield_now();
        }
    }

    /// The child's open descriptors, by number, with what they point to, once it has
    /// settled: blocked in its sleep (`sleep 30`) or in a wait for its child (a shell
    /// running it). Until then its dynamic loader may hold a file of its own open for a
    /// moment (`/etc/ld.so.cache`), which is not a leak.
    fn open_fds(pid: i32) -> BTreeMap<i32, String> {
        let settled = [libc::SYS_clock_nanosleep, libc::SYS_wait4, libc::SYS_waitid];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            // the number of the system call the process is blocked in, first
            let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            let number = text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<libc::c_long>().ok());
            if number.is_some_and(|number| settled.contains(&number)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{pid} did not settle: {text}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // An fd that closes between the listing and the readlink was transient, not a leak.
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let fd = entry.file_name().to_string_lossy().parse().ok()?;
                let target = std::fs::read_link(entry.path()).ok()?;
                Some((fd, target.to_string_lossy().into_owned()))
            })
            .collect()
    }

    /// Leaves some inheritable (non-close-on-exec) descriptors open in the test process.
    struct Leaks(Vec<c_int>);

    impl Leaks {
        fn open() -> Leaks {
            let mut fds = Vec::new();
            for _ in 0..3 {
                let mut pair = [0; 2];
                // SAFETY: `pair` has room for the two descriptors pipe writes.
                assert_eq!(unsafe { libc::pipe(pair.as_mut_ptr()) }, 0);
                fds.extend(pair);
            }
            Leaks(fds)
        }
    }

    impl Drop for Leaks {
        fn drop(&mut self) {
            for fd in &self.0 {
                // SAFETY: these descriptors were opened by `Leaks::open` and nothing else owns them.
                unsafe { libc::close(*fd) };
            }
        }
    }

    #[test]
    fn environment_is_exactly_the_vector() {
        let env = env(&["B=2", "A=one two", "EMPTY=", PATH, "Z=last"]);
        let (output, exit) = run(&exec("/usr/bin/env"), &env);
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(output.lines().collect::<Vec<_>>(), env);
    }

    #[test]
    fn a_nul_byte_in_the_environment_or_the_command_is_refused() {
        let sleeper = exec("sleep 1");
        let bad_env = env(&[PATH, "A=b\0c"]);
        assert_eq!(
            spawn_error(spec(&sleeper, &bad_env, Stdio::Null)),
            "unable to execute: the environment contains a NUL byte"
        );
        let bad_word = exec("sleep\0 1");
        let good_env = env(&[PATH]);
        assert_eq!(
            spawn_error(spec(&bad_word, &good_env, Stdio::Null)),
            "unable to execute: the command contains a NUL byte"
        );
    }

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
    fn shell_characters_run_through_the_shell() {
        let (output, exit) = run(&exec("echo $HOME"), &env(&["HOME=/home/uprise-test", PATH]));
        assert_eq!((output.as_str(), exit), ("/home/uprise-test\n", Exit::Code(0)));
    }

    #[test]
    fn plain_commands_are_execed_directly() {
        let env = env(&[PATH]);
        let command = exec("sleep 30");
        let pid = start(spec(&command, &env, Stdio::Null));
        assert_eq!(cmdline(pid), ["sleep", "30"]);
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.ends_with("sleep"), "{exe:?}");
        stop(pid);
    }

    #[test]
    fn path_is_searched_in_the_jobs_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/bin/echo", dir.path().join("uprise-test-tool")).unwrap();
        let env = env(&[&format!("PATH=/nonexistent:{}", dir.path().display())]);
        let (output, exit) = run(&exec("uprise-test-tool from the job PATH"), &env);
        assert_eq!((output.as_str(), exit), ("from the job PATH\n", Exit::Code(0)));
        // Not the daemon's PATH.
        assert_eq!(
            spawn_error(spec(&exec("uprise-test-tool"), &[], Stdio::Null)),
            "unable to execute: No such file or directory"
        );
    }

    #[test]
    fn a_file_without_interpreter_line_runs_through_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, "echo plain \"$1\"\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let command = exec(&format!("{} arg", path.display()));
        // Another test's fork may briefly hold the file's write descriptor (ETXTBSY).
        for _ in 0..100 {
            match spawn(spec(&command, &[], Stdio::Null)) {
                Err(e) if e.error.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
                Ok(pid) => {
                    wait_for(pid).unwrap();
                    let (output, exit) = run(&command, &[]);
                    assert_eq!((output.as_str(), exit), ("plain arg\n", Exit::Code(0)));
                    return;
                }
            }
        }
        panic!("text file stayed busy");
    }

    #[test]
    fn shell_script_with_heredoc() {
        let body = "GREETING=hello\ncat <<EOF\nline one\n$GREETING world\nEOF\necho \"after: $0\"\n";
        let (output, exit) = run(&script(&[], body), &env(&[PATH]));
        assert_eq!(output, "line one\nhello world\nafter: /dev/fd/3\n");
        assert_eq!(exit, Exit::Code(0));
    }

    #[test]
    fn shell_scripts_stop_at_the_first_error() {
        let (output, exit) = run(&script(&[], "echo one\nfalse\necho two\n"), &env(&[PATH]));
        assert_eq!((output.as_str(), exit), ("one\n", Exit::Code(1)));
    }

    #[test]
    fn python_script_reads_its_body_from_fd_3() {
        let body = "import sys\nfor n in range(3):\n    print(n)\nprint(sys.argv)\n";
        let (output, exit) = run(&script(&["python3"], body), &env(&[PATH]));
        assert_eq!(output, "0\n1\n2\n['/dev/fd/3']\n");
        assert_eq!(exit, Exit::Code(0));
    }

    #[test]
    fn script_body_is_not_on_argv() {
        let env = env(&[PATH]);
        let command = script(&[], "# secret body\nsleep 30\n");
        let pid = start(spec(&command, &env, Stdio::Null));
        assert_eq!(cmdline(pid), ["/bin/sh", "-e", "/dev/fd/3"]);
        stop(pid);
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

    #[test]
    fn signal_mask_is_empty_even_when_the_spawner_blocks_sigchld() {
        let mut blocked = nix::sys::signal::SigSet::empty();
        blocked.add(nix::sys::signal::Signal::SIGCHLD);
        blocked.add(nix::sys::signal::Signal::SIGTERM);
        let old = blocked
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .unwrap();
        let result = run(&exec("/bin/grep ^Sig /proc/self/status"), &[]);
        old.thread_set_mask().unwrap();
        let (output, exit) = result;
        assert_eq!(exit, Exit::Code(0));
        assert!(output.contains("SigBlk:\t0000000000000000\n"), "{output}");
    }

    #[test]
    fn child_leads_its_own_session_and_group() {
        let env = env(&[PATH]);
        let command = exec("sleep 30");
        let pid = start(spec(&command, &env, Stdio::Null));
        let child = nix::unistd::Pid::from_raw(pid);
        assert_eq!(nix::unistd::getsid(Some(child)).unwrap(), child);
        assert_eq!(nix::unistd::getpgid(Some(child)).unwrap(), child);
        stop(pid);
    }

    #[test]
    fn umask_nice_oom_score_and_limits_apply() {
        let mut limits = BTreeMap::new();
        limits.insert(Rlimit::Nofile, (LimitValue::Value(100), LimitValue::Value(200)));
        limits.insert(Rlimit::Core, (LimitValue::Unlimited, LimitValue::Unlimited));
        let env = env(&[PATH]);
        let command = script(
            &[],
            "umask\nnice\ncat /proc/self/oom_score_adj\nulimit -n\nulimit -Hn\nulimit -c\npwd\n",
        );
        let mut spec = spec(&command, &env, Stdio::Null);
        spec.umask = 0o027;
        spec.nice = Some(5);
        spec.oom_score = Some(500);
        spec.limits = &limits;
        spec.chdir = Some("/tmp");
        let (output, exit) = run_with(spec);
        assert_eq!(output, "0027\n5\n500\n100\n200\nunlimited\n/tmp\n");
        assert_eq!(exit, Exit::Code(0));
    }

    #[test]
    fn failing_steps_are_named() {
        let env = env(&[PATH]);
        let command = exec("true");
        let mut missing_dir = spec(&command, &env, Stdio::Null);
        missing_dir.chdir = Some("/nonexistent/uprise");
        assert_eq!(
            spawn_error(missing_dir),
            "unable to change to working directory: No such file or directory"
        );

        let mut missing_root = spec(&command, &env, Stdio::Null);
        missing_root.chroot = Some("/nonexistent/uprise");
        assert_eq!(
            spawn_error(missing_root),
            "unable to change root directory: No such file or directory"
        );

        let missing = exec("/nonexistent/uprise-binary");
        assert_eq!(
            spawn_error(spec(&missing, &env, Stdio::Null)),
            "unable to execute: No such file or directory"
        );
        let missing = exec("uprise-no-such-binary --flag");
        assert_eq!(
            spawn_error(spec(&missing, &env, Stdio::Null)),
            "unable to execute: No such file or directory"
        );
        let not_executable = exec("/etc/passwd");
        assert_eq!(
            spawn_error(spec(&not_executable, &env, Stdio::Null)),
            "unable to execute: Permission denied"
        );

        let mut unknown_user = spec(&command, &env, Stdio::Null);
        unknown_user.setuid = Some("uprise-no-such-user");
        let message = spawn_error(unknown_user);
        assert!(message.starts_with("unable to find setuid user"), "{message}");
        let mut unknown_group = spec(&command, &env, Stdio::Null);
        unknown_group.setgid = Some("uprise-no-such-group");
        let message = spawn_error(unknown_group);
        assert!(message.starts_with("unable to find setgid group"), "{message}");

        let mut limits = BTreeMap::new();
        limits.insert(Rlimit::Nofile, (LimitValue::Value(200), LimitValue::Value(100)));
        let mut bad_limit = spec(&command, &env, Stdio::Null);
        bad_limit.limits = &limits;
        assert_eq!(
            spawn_error(bad_limit),
            "unable to set \"nofile\" resource limit: Invalid argument"
        );
    }

    #[test]
    fn step_names_decode() {
        assert_eq!(step_name(Step::Exec as u8), "execute");
        assert_eq!(step_name(Step::Uid as u8), "set user id");
        for (index, resource) in RLIMITS.iter().enumerate() {
            assert_eq!(step_name(LIMIT_STEP + index as u8), rlimit_info(*resource).1);
        }
    }

    #[test]
    fn setuid_drops_to_the_user_and_can_read_the_script() {
        if !nix::unistd::geteuid().is_root() {
            let command = exec("true");
            let mut other = spec(&command, &[], Stdio::Null);
            other.setuid = Some("0");
            assert_eq!(spawn_error(other), "unable to set user id: Operation not permitted");
            return;
        }
        let Ok(Some(nobody)) = User::from_name("nobody") else {
            return;
        };
        let env = env(&[PATH]);
        let command = script(&[], "id -u\nid -g\nid -G\n");
        let mut spec = spec(&command, &env, Stdio::Null);
        spec.setuid = Some("nobody");
        let (output, exit) = run_with(spec);
        let groups = nix::unistd::getgrouplist(&CString::new("nobody").unwrap(), nobody.gid).unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        assert_eq!(
            output,
            format!("{}\n{}\n{}\n", nobody.uid, nobody.gid, groups.join(" "))
        );
        assert_eq!(exit, Exit::Code(0));
    }

    #[test]
    fn the_descriptor_table_grows_when_asked_and_keeps_no_descriptor() {
        let table_size = || -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|line| line.starts_with("FDSize:")).unwrap();
            line["FDSize:".len()..].trim().parse().unwrap()
        };
        let wanted = (table_size() * 4).min(fd_limit() as usize);
        make_fd_room(wanted);
        assert!(table_size() >= wanted, "{} < {wanted}", table_size());
        assert!(FD_ROOM.load(std::sync::atomic::Ordering::Relaxed) >= wanted as c_int);
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        assert!(unsafe { libc::fcntl(wanted as c_int - 1, libc::F_GETFD) } < 0);
    }

    #[test]
    fn no_descriptor_leaks_into_exec() {
        let _leaks = Leaks::open();
        let env = env(&[PATH]);
        let command = exec("sleep 30");
        let pid = start(spec(&command, &env, Stdio::Null));
        let fds = open_fds(pid);
        assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "{fds:?}");
        assert!(fds.values().all(|target| target == "/dev/null"), "{fds:?}");
        stop(pid);
    }

    #[test]
    fn no_descriptor_leaks_into_scripts() {
        let _leaks = Leaks::open();
        let env = env(&[PATH]);
        let command = script(&[], "sleep 30\n");
        let pid = start(spec(&command, &env, Stdio::Null));
        // The shell opens /dev/fd/3, so it holds the script pipe twice: on 3 and on a
        // descriptor of its own (dash: 10 or above). Nothing else may be open.
        let fds = open_fds(pid);
        let script_pipe = &fds[&3];
        assert!(script_pipe.starts_with("pipe:"), "{fds:?}");
        for (fd, target) in &fds {
            match fd {
                0..=2 => assert_eq!(target, "/dev/null"),
                3 => {}
                _ => assert_eq!(target, script_pipe, "fd {fd} leaked: {fds:?}"),
            }
        }
        // What the script's own children inherit: exactly 0 to 3.
        let (output, _) = run(&script(&[], "ls /proc/self/fd/ | sort -n | tr '\\n' ' '\n"), &env);
        let listed: Vec<&str> = output.split_whitespace().collect();
        // `ls` opens the directory it lists (one more fd), and the pipeline's ends
        // are its stdout/stdin, so expect 0 1 2 3 and ls's own directory fd.
        assert_eq!(listed.len(), 5, "{output}");
        assert_eq!(&listed[..4], ["0", "1", "2", "3"], "{output}");
        stop(pid);
    }

    #[test]
    fn extra_fds_arrive_as_4_and_5() {
        let _leaks = Leaks::open();
        let (four_read, four_write) = pipe();
        let (five_read, five_write) = pipe();
        let env = env(&[PATH]);
        let command = exec("sleep 30");
        let mut with_fds = spec(&command, &env, Stdio::Null);
        with_fds.extra_fds = vec![four_write.try_clone().unwrap(), five_write.try_clone().unwrap()];
        let pid = start(with_fds);
        let fds = open_fds(pid);
        assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 5], "{fds:?}");
        stop(pid);

        let command = script(&[], "echo four >&4\necho five >&5\n");
        let mut with_fds = spec(&command, &env, Stdio::Null);
        with_fds.extra_fds = vec![four_write, five_write];
        let (_, exit) = run_with(with_fds);
        assert_eq!(exit, Exit::Code(0));
        let mut four = BufReader::new(four_read);
        let mut five = BufReader::new(five_read);
        let (mut line4, mut line5) = (String::new(), String::new());
        four.read_line(&mut line4).unwrap();
        five.read_line(&mut line5).unwrap();
        assert_eq!((line4.as_str(), line5.as_str()), ("four\n", "five\n"));
    }

    #[test]
    fn console_and_inherit_stdio_open() {
        let env = env(&[PATH]);
        let command = exec("true");
        let pid = spawn(spec(&command, &env, Stdio::Inherit)).unwrap();
        assert_eq!(wait_for(pid).unwrap(), Exit::Code(0));
        match spawn(spec(&command, &env, Stdio::Console)) {
            Ok(pid) => assert_eq!(wait_for(pid).unwrap(), Exit::Code(0)),
            Err(e) => assert_eq!(e.step, "open console"),
        }
    }

    #[test]
    fn lua_and_empty_commands_are_refused() {
        let lua = script(&["lua"], "print(1)");
        assert!(spawn_error(spec(&lua, &[], Stdio::Null)).contains("Lua"));
        assert_eq!(
            spawn_error(spec(&exec("  "), &[], Stdio::Null)),
            "unable to execute: the command is empty"
        );
    }

    /// With the low fds reserved (as the daemon does first thing), a child gets exactly its
    /// stdio, script and extra fds through the staged path, failures are still reported, and
    /// the reserved fds hold their placeholders again afterwards. Runs alone in a fresh
    /// process, where fds 3 to 34 are free.
    #[test]
    fn staged_descriptors_reach_the_child_and_nothing_else() {
        if !crate::sys::process::isolated("sys::spawn::tests::staged_descriptors_reach_the_child_and_nothing_else") {
            return;
        }
        // Other tests of the parent leave inheritable fds open on purpose (`Leaks`); this
        // fresh process uses none of them.
        for fd in SLOT_FIRST..SLOT_END {
            // SAFETY: closing descriptors nothing in this process owns.
            unsafe { libc::close(fd) };
        }
        assert!(reserve_fd_slots(), "fds 3 to 34 are free");
        let _leaks = Leaks::open();
        let env = env(&[PATH]);
        // A plain command: exactly its stdio and its extra fd.
        let (_out_read, out) = pipe();
        let (_four_read, four) = pipe();
        let sleeper = exec("sleep 30");
        let mut with_fds = spec(&sleeper, &env, Stdio::Log(out));
        with_fds.extra_fds = vec![four];
        let pid = start(with_fds);
        let slots_hold_placeholders = || {
            for slot in SLOT_FIRST..SLOT_END {
                let target = std::fs::read_link(format!("/proc/self/fd/{slot}")).unwrap();
                assert_eq!(target, std::path::Path::new("/dev/null"), "slot {slot}");
            }
        };
        slots_hold_placeholders();
        let fds = open_fds(pid);
        assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 4], "{fds:?}");
        assert_eq!(fds[&0], "/dev/null");
        assert!(fds[&1].starts_with("pipe:") && fds[&1] == fds[&2], "{fds:?}");
        assert_ne!(fds[&1], fds[&4]);
        stop(pid);
        // A script: its body on 3, output to the log pipe, the extra fd on 4.
        let (mut out_read, out) = pipe();
        let (mut four_read, four) = pipe();
        let command = script(&[], "echo to-log\nls /proc/self/fd/ | sort -n | tr '\\n' ' ' >&4\n");
        let mut with_fds = spec(&command, &env, Stdio::Log(out));
        with_fds.extra_fds = vec![four];
        let pid = start(with_fds);
        let _ = wait_for(pid);
        let mut text = String::new();
        out_read.read_to_string(&mut text).unwrap();
        assert_eq!(text, "to-log\n");
        let mut listing = String::new();
        four_read.read_to_string(&mut listing).unwrap();
        // `ls` sees 0 to 4 and its own directory fd.
        let listed: Vec<&str> = listing.split_whitespace().collect();
        assert_eq!(listed.len(), 6, "{listing}");
        assert_eq!(&listed[..5], ["0", "1", "2", "3", "4"], "{listing}");
        // A failing step is still reported, and the slots hold their placeholders again.
        let mut failing = spec(&command, &env, Stdio::Null);
        failing.chdir = Some("/nonexistent/uprise");
        assert_eq!(
            spawn_error(failing),
            "unable to change to working directory: No such file or directory"
        );
        slots_hold_placeholders();
    }

    /// Children started one after another without waiting share the slots: each gets its
    /// own output pipe and nothing else, and each failure is its own, with its own errno
    /// (the children make their system calls while the parent runs on).
    #[test]
    fn children_in_flight_together_keep_their_own_descriptors_and_errors() {
        if !crate::sys::process::isolated(
            "sys::spawn::tests::children_in_flight_together_keep_their_own_descriptors_and_errors",
        ) {
            return;
        }
        for fd in SLOT_FIRST..SLOT_END {
            // SAFETY: closing descriptors nothing in this fresh process owns.
            unsafe { libc::close(fd) };
        }
        assert!(reserve_fd_slots(), "fds 3 to 34 are free");
        let sleeper = exec("sh -c 'echo child-$N; exec sleep 30'");
        let missing = exec("/nonexistent/uprise-program");
        let mut started = Vec::new();
        for n in 0..24 {
            let env = env(&[PATH, &format!("N={n}")]);
            let (read, write) = pipe();
            let command = if n % 4 == 3 { &missing } else { &sleeper };
            let mut each = spec(command, &env, Stdio::Log(write));
            if n % 4 == 1 {
                each.chdir = Some("/nonexistent/uprise-dir");
            }
            started.push((n, read, begin(each).unwrap_or_else(|e| panic!("child {n}: {e}"))));
        }
        let mut running = Vec::new();
        for (n, read, pending) in started {
            match (n % 4, pending.wait()) {
                (1, Err(error)) => assert_eq!(
                    error.to_string(),
                    "unable to change to working directory: No such file or directory",
                    "child {n}"
                ),
                (3, Err(error)) => {
                    assert_eq!(
                        error.to_string(),
                        "unable to execute: No such file or directory",
                        "child {n}"
                    )
                }
                (0 | 2, Ok(pid)) => running.push((n, read, pid)),
                (_, other) => panic!("child {n}: {:?}", other.map_err(|e| e.to_string())),
            }
        }
        for (n, read, pid) in running {
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).unwrap();
            assert_eq!(line, format!("child-{n}\n"));
            let fds = open_fds(pid);
            assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "child {n}: {fds:?}");
            assert_eq!(fds[&0], "/dev/null");
            assert!(fds[&1].starts_with("pipe:") && fds[&1] == fds[&2], "child {n}: {fds:?}");
            stop(pid);
        }
        for slot in SLOT_FIRST..SLOT_END {
            let target = std::fs::read_link(format!("/proc/self/fd/{slot}")).unwrap();
            assert_eq!(target, std::path::Path::new("/dev/null"), "slot {slot}");
        }
    }

    /// Wherever std's own error pipe lands (it is created at the lowest free numbers, maybe
    /// on 3, 4 or 5, which the child overwrites), failures are still reported and successes
    /// are not mistaken for failures. Runs alone in a fresh process, so the layout of free
    /// descriptors is known.
    #[test]
    fn failures_are_reported_whatever_the_free_descriptors() {
        if !crate::sys::process::isolated("sys::spawn::tests::failures_are_reported_whatever_the_free_descriptors") {
            return;
        }
        let env = env(&[PATH]);
        let command = script(&[], "echo ok >&4\necho ok >&5\nexit 7\n");
        let missing = script(&["/nonexistent/interpreter"], "");
        for placeholders in 0..12 {
            // Push the caller's pipes up, then free the low numbers again: spawn's own
            // descriptors and std's pipe fill those holes (inherited stdio opens nothing).
            let held: Vec<File> = (0..placeholders).map(|_| File::open("/dev/null").unwrap()).collect();
            let (mut four_read, four) = pipe();
            let (mut five_read, five) = pipe();
            drop(held);

            let mut failing = spec(&command, &env, Stdio::Inherit);
            failing.chdir = Some("/nonexistent/uprise");
            failing.extra_fds = vec![four.try_clone().unwrap(), five.try_clone().unwrap()];
            assert_eq!(
                spawn_error(failing),
                "unable to change to working directory: No such file or directory"
            );

            let mut failing = spec(&missing, &env, Stdio::Inherit);
            failing.extra_fds = vec![four.try_clone().unwrap(), five.try_clone().unwrap()];
            assert_eq!(spawn_error(failing), "unable to execute: No such file or directory");

            let mut working = spec(&command, &env, Stdio::Inherit);
            working.extra_fds = vec![four, five];
            let pid = start(working);
            assert_eq!(
                wait_for(pid).unwrap(),
                Exit::Code(7),
                "with {placeholders} placeholders"
            );
            // Nothing but the job wrote into its descriptors.
            let (mut got4, mut got5) = (String::new(), String::new());
            four_read.read_to_string(&mut got4).unwrap();
            five_read.read_to_string(&mut got5).unwrap();
            assert_eq!(
                (got4.as_str(), got5.as_str()),
                ("ok\n", "ok\n"),
                "with {placeholders} placeholders"
            );
        }
    }

    /// Dispositions are process-wide, so this runs alone in a fresh test process.
    #[test]
    fn ignored_and_caught_signals_are_reset() {
        if !crate::sys::process::isolated("sys::spawn::tests::ignored_and_caught_signals_are_reset") {
            return;
        }
        // SAFETY: this process runs only this test; SIG_IGN involves no handler code.
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGUSR2, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let (output, exit) = run(&exec("/bin/grep ^Sig /proc/self/status"), &[]);
        assert_eq!(exit, Exit::Code(0));
        assert!(output.contains("SigIgn:\t0000000000000000\n"), "{output}");
        assert!(output.contains("SigBlk:\t0000000000000000\n"), "{output}");
    }
}
