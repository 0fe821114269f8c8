//! The parent's preparation before the clone: the child's stdio descriptors, and the
//! credentials it takes, looked up by name.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::unistd::{Gid, Group, Uid, User};

use super::argv::c_string;
use super::{SpawnError, Stdio};

/// A close-on-exec duplicate of `fd` numbered `min` or above.
pub(super) fn dup_above(fd: &impl AsRawFd, min: RawFd) -> io::Result<OwnedFd> {
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
pub(super) struct StdioFds {
    pub(super) sources: [Option<RawFd>; 3],
    _owned: Vec<OwnedFd>,
}

/// `/dev/null`, opened once per process (read-write, close-on-exec) and shared by every spawn.
pub(super) fn dev_null() -> Result<RawFd, SpawnError> {
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
pub(super) fn open_stdio(stdio: Stdio) -> Result<StdioFds, SpawnError> {
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
pub(super) struct Credentials {
    pub(super) uid: Option<libc::uid_t>,
    pub(super) gid: Option<libc::gid_t>,
    /// Supplementary groups, set only when the daemon is root and `setuid` is given.
    pub(super) groups: Option<Vec<libc::gid_t>>,
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
pub(super) fn credentials(setuid: Option<&str>, setgid: Option<&str>) -> Result<Credentials, SpawnError> {
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
