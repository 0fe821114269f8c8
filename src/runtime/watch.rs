//! Watching the job dirs with inotify: any change under a job dir (or to its daemon file)
//! schedules a reload shortly after, so a burst of writes (an editor, a package manager)
//! costs one reload. Changed jobs take effect when their instances are idle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{Interest, Mode, PostAction};
use log::{debug, warn};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

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

/// Adds watches for a dir and every dir below it (re-adding an existing watch is harmless).
fn watch_tree(inotify: &Inotify, dir: &Path) {
    if inotify.add_watch(dir, watch_flags()).is_err() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if !hidden && entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            watch_tree(inotify, &path);
        }
    }
}

impl Daemon {
    /// Starts watching the job dirs; without inotify the daemon still reloads on SIGHUP.
    pub fn watch_confdirs(&mut self) {
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(inotify) => inotify,
            Err(error) => {
                warn!("cannot watch the job dirs ({error}); reload with SIGHUP or `uprisectl reload-configuration`");
                return;
            }
        };
        let dirs: Vec<PathBuf> = self.confdirs.clone();
        // A second handle on the same inotify instance adds watches for new sub-dirs later.
        if let Ok(fd) = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned() {
            // SAFETY: `fd` is a duplicate of a live inotify descriptor.
            self.watcher = Some(unsafe { Inotify::from_owned_fd(fd) });
        }
        for dir in &dirs {
            watch_tree(&inotify, dir);
            // The daemon file `DIR.conf` lives beside the dir.
            if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                let _ = inotify.add_watch(
                    parent,
                    AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE,
                );
            }
        }
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
    fn rewatch(&mut self) {
        if let Some(watcher) = &self.watcher {
            for dir in &self.confdirs {
                watch_tree(watcher, dir);
            }
        }
    }
}
