//! `sys`: the one seam over fork/exec/kill/waitpid; only sys calls them.
//!
//! Everything else in uprise (the runtime, the machine) asks this module to start a process
//! ([`spawn::spawn`]), to signal one or its group ([`process::kill_process`],
//! [`process::kill_group`]) and to collect exit statuses ([`process::reap_any`], or blocking in a thread,
//! [`process::wait_any`]).
//! Keeping these calls in one place keeps the unsafe code, the async-signal-safety rules of
//! the forked child and the file-descriptor hygiene in one module that can be read in one
//! sitting.
//!
//! - `spawn/`: building a job process from a `SpawnSpec`: argv (Upstart's exec rule,
//!   scripts through fd 3), the environment, stdio, and the child's set-up between fork and
//!   exec (session, signals, limits, umask, nice, oom score, chroot, chdir, credentials,
//!   file descriptors), each failing step named in the `SpawnError`; a file per part (the
//!   spec and `begin`, argv, the parent's preparation, the child's plan, the fd slots, the
//!   stacks).
//! - `process.rs`: `kill(2)` on a process or its group, `waitpid(2)` decoded into `Exit`,
//!   the child-subreaper bit, signal names.
//! - `raw.rs`: system calls made directly, with no `errno`: for the cloned child and for
//!   `uprisectl`'s status path before glibc starts.

pub mod exec;
pub mod process;
pub mod procfs;
pub mod raw;
pub mod spawn;
