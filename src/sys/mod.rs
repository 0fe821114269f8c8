//! `sys`: the one place that forks, execs, kills and waits for job processes, and reads the
//! process table. The runtime reaches it through its host seam (`runtime::host`), so that
//! the daemon core can be driven without it in tests; the machine, the syntax and the model
//! never call it.
//!
//! Keeping these calls in one place keeps the unsafe code, the async-signal-safety rules of
//! the cloned child and the file-descriptor hygiene in one module that can be read in one
//! sitting.
//!
//! - `spawn/`: building a job process from a `SpawnSpec`: argv (Upstart's exec rule,
//!   scripts through fd 3), the environment, stdio, and the child's set-up between its
//!   clone and its exec (session, signals, limits, umask, nice, oom score, chroot, chdir,
//!   credentials, file descriptors), each failing step named in the `SpawnError`; a file per
//!   part (the spec and `begin`, argv, the parent's preparation, the child's plan, the fd
//!   slots, the stacks).
//! - `process.rs`: `kill(2)` on a process or its group, `waitpid(2)` decoded into `Exit`,
//!   the child-subreaper bit, signal names.
//! - `procfs.rs`: `/proc/PID/stat` (parent, group, session), the effective user, one
//!   variable of a process's environment, the daemon's own children.
//! - `metrics.rs`: the figures gates weigh (load averages, pressure, network counters),
//!   read under a procfs root.
//! - `exec.rs`: the re-exec: the memfd that carries the state, close-on-exec toggling, the
//!   probe run of the new binary, and `execv`.
//! - `raw.rs`: system calls made directly, with no `errno`: for the cloned child and for
//!   `uprisectl`'s status path before glibc starts.

pub mod exec;
pub mod metrics;
pub mod process;
pub mod procfs;
pub mod raw;
pub mod spawn;
