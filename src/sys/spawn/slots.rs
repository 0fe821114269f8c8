//! The low descriptors reserved for staging what a child inherits, so that it shares the
//! daemon's descriptor table instead of copying it, and the room made ahead in that table.

use std::ffi::c_int;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::argv::{FIRST_EXTRA_FD, SCRIPT_FD};
use super::child::ChildPlan;
use super::parent::{dev_null, dup_above};

/// The first and one past the last of the low descriptors reserved for staging.
const SLOT_FIRST: RawFd = 3;
const SLOT_END: RawFd = 35;

pub(super) enum SlotState {
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

pub(super) static FD_SLOTS: std::sync::Mutex<SlotState> = std::sync::Mutex::new(SlotState::Untried);

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
pub(super) fn stage_fds(plan: &mut ChildPlan, placeholder: RawFd, free: u64) -> io::Result<Option<Vec<RawFd>>> {
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
pub(super) fn release_slots(staged: &[RawFd]) {
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
pub(super) fn fd_limit() -> c_int {
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
pub(super) fn keep_fd_room(fd: RawFd, busy: u64) {
    let room = FD_ROOM.load(std::sync::atomic::Ordering::Relaxed);
    if busy == 0 && room > 0 && fd + FD_ROOM_MARGIN >= room {
        make_fd_room(room as usize * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::wait_for;
    use crate::sys::spawn::tests::{Leaks, PATH, env, exec, open_fds, pipe, script, spawn_error, spec, start, stop};
    use crate::sys::spawn::{Stdio, begin};
    use std::io::{BufRead, BufReader, Read};

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

    /// With the low fds reserved (as the daemon does first thing), a child gets exactly its
    /// stdio, script and extra fds through the staged path, failures are still reported, and
    /// the reserved fds hold their placeholders again afterwards. Runs alone in a fresh
    /// process, where fds 3 to 34 are free.
    #[test]
    fn staged_descriptors_reach_the_child_and_nothing_else() {
        if !crate::sys::process::isolated(
            "sys::spawn::slots::tests::staged_descriptors_reach_the_child_and_nothing_else",
        ) {
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
            "sys::spawn::slots::tests::children_in_flight_together_keep_their_own_descriptors_and_errors",
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
}
