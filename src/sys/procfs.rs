//! Reading `/proc`: a process's parent, group and session, its environment, and the
//! daemon's own children. Used to find the daemon a job forked without tracing it.

use std::fs;

/// The ids of a process from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// `Z` for a zombie, `T` for stopped, …
    pub state: char,
}

/// Parses the text of `/proc/PID/stat`; the command name may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    let sid = fields.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgid,
        sid,
        state,
    })
}

pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The effective user id of a process, from `/proc/PID/status` (the id the kernel reports
/// as a socket peer's).
pub fn euid(pid: i32) -> Option<u32> {
    parse_euid(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The effective user id in the text of `/proc/PID/status` (`Uid:` real, effective, saved,
/// file system).
pub fn parse_euid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One variable of a process's initial environment.
pub fn environ_var(pid: i32, key: &str) -> Option<String> {
    let bytes = fs::read(format!("/proc/{pid}/environ")).ok()?;
    bytes.split(|&byte| byte == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let (entry_key, value) = entry.split_once('=')?;
        (entry_key == key).then(|| value.to_string())
    })
}

/// The live (non-zombie) children of the calling process.
pub fn own_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut children = Vec::new();
    // `/proc/self/task/*/children` lists them directly when the kernel has it.
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                children.extend(text.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()));
            }
        }
        if !children.is_empty() {
            children.retain(|pid| stat(*pid).is_some_and(|stat| stat.state != 'Z'));
            return children;
        }
    }
    // Fallback: scan every process.
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(stat) = stat(pid)
                && stat.ppid == me
                && stat.state != 'Z'
            {
                children.push(pid);
            }
        }
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_uid_is_the_second_of_four() {
        let status = "Name:\tsleep\nState:\tS (sleeping)\nUid:\t1000\t65534\t65534\t65534\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_euid(status), Some(65534));
        assert_eq!(parse_euid("Name:\tx\n"), None);
        assert_eq!(euid(std::process::id() as i32), Some(nix::unistd::geteuid().as_raw()));
    }

    #[test]
    fn stat_lines_with_odd_command_names() {
        let parsed = parse_stat("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 ...").unwrap();
        assert_eq!(
            parsed,
            ProcStat {
                pid: 4242,
                ppid: 1,
                pgid: 4242,
                sid: 4242,
                state: 'S'
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id() as i32;
        let own = stat(me).unwrap();
        assert_eq!(own.pid, me);
        assert!(environ_var(me, "PATH").is_some() || std::env::var("PATH").is_err());
    }
}
