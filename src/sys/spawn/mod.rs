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
//!
//! The parts, a file each:
//! - `mod.rs`: the [`SpawnSpec`], the [`SpawnError`], the steps a child reports a failure
//!   at, and [`begin`], which puts the parts together and hands back a [`Pending`];
//! - `argv.rs`: argv (Upstart's exec rule), the `PATH` candidates, the C string arrays and the
//!   script's pipe;
//! - `parent.rs`: the parent's preparation before the clone: the stdio descriptors and the
//!   credentials;
//! - `child.rs`: the child's plan and everything the child runs between clone and exec,
//!   async-signal-safe;
//! - `slots.rs`: the low descriptors reserved for staging a child's descriptors
//!   ([`reserve_fd_slots`]), and the room made ahead in the descriptor table ([`make_fd_room`]);
//! - `stack.rs`: the children's stacks ([`release_spare_stacks`]) and the clone itself;
//! - `tests.rs`: the tests that start real processes (those of argv and of the slots are in
//!   their files).
//!
//! [`raw`]: super::raw

use std::collections::BTreeMap;
use std::ffi::{CString, c_char};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::syntax::ast::{Command, LimitValue, Rlimit};

mod argv;
mod child;
mod parent;
mod slots;
mod stack;

pub use slots::{make_fd_room, reserve_fd_slots};
pub use stack::release_spare_stacks;

use argv::{CStringArray, FIRST_EXTRA_FD, SCRIPT_FD, argv_of, c_string, exec_candidates, pass_script};
use child::{ChildPlan, SHELL_C};
use parent::{StdioFds, credentials, dup_above, open_stdio};
use slots::{FD_SLOTS, SlotState, fd_limit, keep_fd_room, release_slots, stage_fds};
use stack::{ChildStack, STACKS, clone_child};

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
    /// What the process is for (`main`, `pre-start`, `reload`, …), for messages.
    pub what: &'a str,
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
        what,
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
    log::debug!("spawning {job_name} {what} process: {words:?}");
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

#[cfg(test)]
mod tests;
