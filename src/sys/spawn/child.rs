//! The child's plan and everything the child runs between clone and exec: async-signal-safe,
//! with no allocation, no lock and no `errno`, on what the parent prepared.

use std::ffi::{CStr, CString, c_char, c_int};
use std::os::fd::RawFd;

use super::Step;
use super::argv::{CStringArray, FIRST_EXTRA_FD, SCRIPT_FD};
use super::parent::Credentials;

/// Everything the child does between clone and exec, prepared in the parent.
pub(super) struct ChildPlan {
    /// The step that failed and its errno, written by the child before it exits; read by
    /// the parent once the kernel has cleared the child's tid word (`InFlight::tid`).
    pub(super) failure: Option<(u8, c_int)>,
    /// The highest signal number (`SIGRTMAX`).
    pub(super) max_signal: c_int,
    pub(super) limits: Vec<(libc::__rlimit_resource_t, libc::rlimit, u8)>,
    pub(super) umask: libc::mode_t,
    pub(super) nice: Option<c_int>,
    /// The decimal text written to `oom_score_adj`.
    pub(super) oom_score: Option<Vec<u8>>,
    pub(super) chroot: Option<CString>,
    pub(super) chdir: CString,
    pub(super) credentials: Credentials,
    /// Sources of fds 0, 1 and 2 (`None`: the daemon's own); each is its target or lies
    /// above every target fd.
    pub(super) stdio: [Option<RawFd>; 3],
    /// The script's read end, above every target fd; it becomes fd 3.
    pub(super) script_fd: Option<RawFd>,
    /// Sources of fds 4, 5, …, above every target fd.
    pub(super) extra_fds: Vec<RawFd>,
    /// The highest fd the child keeps.
    pub(super) highest_fd: RawFd,
    /// With the staged descriptors (see [`reserve_fd_slots`]): the child shares the daemon's
    /// descriptor table until its first act, `close_range(N, ~0, CLOSE_RANGE_UNSHARE)`, which
    /// gives it a table of its own holding only the fds below N.
    ///
    /// [`reserve_fd_slots`]: super::reserve_fd_slots
    pub(super) unshare_below: Option<RawFd>,
    /// The daemon's `RLIMIT_NOFILE`, bounding the fallback when `close_range` is missing.
    pub(super) fd_limit: c_int,
    /// The paths to try, in order.
    pub(super) candidates: Vec<CString>,
    pub(super) argv: CStringArray,
    pub(super) envp: CStringArray,
    /// `/bin/sh PATH ARGS…` for a candidate that is not a binary (`ENOEXEC`), like `execvp`;
    /// slot 1 is filled in the child.
    pub(super) sh_argv: Vec<*const c_char>,
}

/// The child's system calls go through [`raw`]: until it execs, the child shares the
/// daemon's memory, and with it the daemon thread's `errno`, while the daemon runs on (see
/// [`begin`]), so it reads each error from the result, never from `errno`.
///
/// [`begin`]: super::begin
use crate::sys::raw;

/// Whether [`begin`] returns before the child has exec'd: where the child makes its system
/// calls without `errno` (see [`raw`]). Elsewhere the parent sleeps, as with `vfork`.
///
/// [`begin`]: super::begin
pub(super) const PIPELINED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

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

pub(super) const SHELL_C: &CStr = c"/bin/sh";

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

/// The cloned child's entry point: runs the plan, never returns.
pub(super) extern "C" fn child_main(plan: *mut libc::c_void) -> c_int {
    // SAFETY: `clone_child` passes the `ChildPlan` of an `InFlight`, which the parent keeps
    // and leaves alone until the kernel clears the child's tid word.
    let plan = unsafe { &mut *plan.cast::<ChildPlan>() };
    plan.run()
}
