//! The stacks cloned children run on until they exec, kept for the next ones, and the clone
//! itself.

use std::io;

use super::InFlight;
use super::child::{PIPELINED, child_main};

/// The size of the stack a cloned child runs on until it execs; the set-up needs a few KiB.
const CHILD_STACK: usize = 64 * 1024;

/// A child's stack, mapped on first need and kept in [`STACKS`] for the next child.
pub(super) struct ChildStack {
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
pub(super) static STACKS: std::sync::Mutex<Vec<ChildStack>> = std::sync::Mutex::new(Vec::new());

/// Unmaps the spare stacks but one: a burst of spawns in flight at once leaves a stack per
/// child behind, each with the pages its child touched.
pub fn release_spare_stacks() {
    let mut stacks = STACKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    stacks.truncate(1);
}

/// Starts a child that shares this process's memory until it execs, on a stack of its own,
/// to run `child.plan`. The kernel clears `child.tid` when the child is done with that
/// memory. With `PIPELINED` this returns at once; otherwise (`CLONE_VFORK`) once the child
/// exec'd or exited.
pub(super) fn clone_child(child: &mut InFlight, share_files: bool) -> io::Result<i32> {
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
