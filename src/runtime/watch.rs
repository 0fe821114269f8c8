//! Watching the job dirs with inotify: any change under a job dir (or to its daemon file)
//! schedules a reload shortly after, so a burst of writes (an editor, a package manager)
//! costs one reload. Changed jobs take effect when their instances are idle.
//!
//! A shutdown removes every watch at its start. The kernel frees an inotify instance's
//! marks after an SRCU grace period, and closing an instance that still has marks waits
//! for one (0.8-17 ms measured at the daemon's exit). Removed early, the marks are freed
//! in the background while the jobs stop, and the close at exit finds nothing to wait for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{Interest, Mode, PostAction};
use log::{debug, warn};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::daemon::Daemon;

/// How long a burst of changes may last before the reload.
const SETTLE: Duration = Duration::from_millis(100);

fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ATTRIB
}

/// The daemon's own handle on the job-dir watches: a second descriptor of the instance the
/// loop reads, used to add watches for new sub-dirs and to remove them all.
pub struct DirWatch {
    inotify: Inotify,
    /// Every live watch, once each (adding an existing watch gives its descriptor again; a
    /// watch the kernel removed, `IN_IGNORED`, is dropped).
    watches: Vec<WatchDescriptor>,
}

impl DirWatch {
    fn add(&mut self, dir: &Path, flags: AddWatchFlags) -> bool {
        match self.inotify.add_watch(dir, flags) {
            Ok(watch) => {
                if !self.watches.contains(&watch) {
                    self.watches.push(watch);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Adds watches for a dir and every dir below it (re-adding an existing watch is harmless).
    fn add_tree(&mut self, dir: &Path) {
        if !self.add(dir, watch_flags()) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if !hidden && entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                self.add_tree(&path);
            }
        }
    }

    /// The instance's descriptor, handed to the new image at a re-exec.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.inotify))
    }

    /// Removes every watch; the instance stays open (see the module's doc).
    fn clear(&mut self) {
        for watch in self.watches.drain(..) {
            // A watch whose dir was deleted is gone already (EINVAL): nothing to undo.
            let _ = self.inotify.rm_watch(watch);
        }
    }
}

impl Daemon {
    /// Starts watching the job dirs; without inotify the daemon still reloads on SIGHUP.
    pub fn watch_confdirs(&mut self) {
        self.watch_confdirs_with(None);
    }

    /// Starts watching the job dirs, on the instance a re-exec handed over (`inherited`, an
    /// fd the previous image kept open for this process) if there is one: the exec did not
    /// have to wait for its watches to be freed, its watches stay (adding one again gives
    /// its descriptor back), and changes made during the exec are read from it.
    pub fn watch_confdirs_with(&mut self, inherited: Option<std::os::fd::RawFd>) {
        let inotify = match inherited {
            Some(fd) => {
                let _ = crate::sys::exec::set_cloexec(fd, true);
                // SAFETY: the previous image handed this fd over for this process to own.
                unsafe { Inotify::from_owned_fd(std::os::fd::FromRawFd::from_raw_fd(fd)) }
            }
            None => match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(inotify) => inotify,
                Err(error) => {
                    warn!(
                        "cannot watch the job dirs ({error}); reload with SIGHUP or `uprisectl reload-configuration`"
                    );
                    return;
                }
            },
        };
        let dirs: Vec<PathBuf> = self.confdirs.clone();
        // A second handle on the same inotify instance adds watches for new sub-dirs later.
        let Ok(fd) = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned() else {
            warn!(
                "cannot watch the job dirs (no descriptor left); reload with SIGHUP or `uprisectl reload-configuration`"
            );
            return;
        };
        // SAFETY: `fd` is a duplicate of a live inotify descriptor.
        let inotify_too = unsafe { Inotify::from_owned_fd(fd) };
        let mut watch = DirWatch {
            inotify: inotify_too,
            watches: Vec::new(),
        };
        for dir in &dirs {
            watch.add_tree(dir);
            // The daemon file `DIR.conf` lives beside the dir.
            if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                watch.add(
                    parent,
                    AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE,
                );
            }
        }
        self.watcher = Some(watch);
        let daemon_files: Vec<String> = dirs
            .iter()
            .filter_map(|dir| {
                crate::model::load::daemon_file_of(dir)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .collect();
        let source = Generic::new(inotify, Interest::READ, Mode::Level);
        let result = self.handle.insert_source(source, move |_, inotify, daemon| {
            // SAFETY: the fd is only read here; NoIoDrop hands out a mutable reference.
            let inotify: &mut Inotify = unsafe { inotify.get_mut() };
            let mut relevant = false;
            while let Ok(events) = inotify.read_events() {
                if events.is_empty() {
                    break;
                }
                for event in events {
                    if event.mask.contains(AddWatchFlags::IN_IGNORED)
                        && let Some(watcher) = &mut daemon.watcher
                    {
                        // The watch is gone (its dir was deleted): forget it.
                        watcher.watches.retain(|watch| *watch != event.wd);
                    }
                    let name = event
                        .name
                        .as_ref()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let is_dir = event.mask.contains(AddWatchFlags::IN_ISDIR);
                    if is_dir || name.ends_with(".conf") || name.ends_with(".override") || daemon_files.contains(&name)
                    {
                        relevant = true;
                    }
                }
            }
            if relevant {
                daemon.schedule_reload();
            }
            Ok(PostAction::Continue)
        });
        if let Err(error) = result {
            warn!("cannot watch the job dirs: {error}");
        }
    }

    pub(crate) fn schedule_reload(&mut self) {
        if self.reload_pending {
            return;
        }
        self.reload_pending = true;
        let _ = self.handle.insert_source(Timer::from_duration(SETTLE), |_, _, daemon| {
            daemon.reload_pending = false;
            debug!("job dirs changed; reloading");
            daemon.reload_configuration();
            daemon.rewatch();
            daemon.settle();
            daemon.flush_clients();
            TimeoutAction::Drop
        });
    }

    /// New sub-dirs need watches of their own; existing watches stay, so nothing is missed.
    /// Not while shutting down: the watches are gone for good then.
    fn rewatch(&mut self) {
        if self.shutting_down {
            return;
        }
        if let Some(watcher) = &mut self.watcher {
            for dir in &self.confdirs {
                watcher.add_tree(dir);
            }
        }
    }

    /// Stops watching the job dirs (a shutdown began; see the module's doc).
    pub(crate) fn stop_watching_confdirs(&mut self) {
        if let Some(watcher) = &mut self.watcher {
            watcher.clear();
        }
    }
}

impl Daemon {
    /// A new inotify instance, read on the loop by `read` (then `settle` and the clients'
    /// replies, as every callback ends); returns a second descriptor of it, for adding and
    /// removing watches. Pid files and required paths each have one.
    pub(super) fn inotify_on_loop(&self, read: fn(&mut Daemon, &Inotify)) -> Option<Inotify> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let fd = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned().ok()?;
        // SAFETY: `fd` is a duplicate of a live inotify descriptor.
        let ours = unsafe { Inotify::from_owned_fd(fd) };
        self.handle
            .insert_source(
                Generic::new(inotify, Interest::READ, Mode::Level),
                move |_, inotify, daemon| {
                    // SAFETY: the fd is only read here; NoIoDrop hands out a mutable reference.
                    let inotify: &mut Inotify = unsafe { inotify.get_mut() };
                    read(daemon, inotify);
                    daemon.settle();
                    daemon.flush_clients();
                    Ok(PostAction::Continue)
                },
            )
            .ok()?;
        Some(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(inotify: &Inotify) -> Vec<(WatchDescriptor, AddWatchFlags)> {
        let mut all = Vec::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            all.extend(events.into_iter().map(|event| (event.wd, event.mask)));
        }
        all
    }

    #[test]
    fn watches_every_visible_dir_once_and_clear_removes_them_from_the_kernel() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        let mut watch = DirWatch {
            inotify,
            watches: Vec::new(),
        };
        watch.add_tree(root);
        watch.add_tree(root);
        assert_eq!(watch.watches.len(), 3, "root, a and a/b; not .hidden; each once");

        std::fs::write(root.join("a/b/x.conf"), "").unwrap();
        let seen = events(&watch.inotify);
        assert!(
            seen.iter()
                .any(|(_, mask)| mask.contains(AddWatchFlags::IN_CLOSE_WRITE)),
            "{seen:?}"
        );

        watch.clear();
        assert!(watch.watches.is_empty());
        // The kernel confirms each removal with IN_IGNORED, and reports nothing after it.
        let removed = events(&watch.inotify);
        assert_eq!(
            removed
                .iter()
                .filter(|(_, mask)| mask.contains(AddWatchFlags::IN_IGNORED))
                .count(),
            3,
            "{removed:?}"
        );
        std::fs::write(root.join("a/b/y.conf"), "").unwrap();
        std::fs::write(root.join("z.conf"), "").unwrap();
        assert_eq!(events(&watch.inotify), Vec::new());
    }
}
