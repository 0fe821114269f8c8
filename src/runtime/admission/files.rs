//! Required paths: a start that waits for `requires file|dir|path PATH` is woken by inotify
//! on the nearest directory of the path that exists, never by polling. When a directory on
//! the way appears, the start is looked at again and watches the next one down. One inotify
//! instance serves every start, created the first time one waits for a path.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use log::warn;
use nix::sys::inotify::{AddWatchFlags, Inotify, WatchDescriptor};

use super::super::daemon::Daemon;

/// The watches of required paths.
#[derive(Default)]
pub struct Watches {
    /// A second descriptor of the instance the loop reads; None until first needed.
    inotify: Option<Inotify>,
    /// The tickets waiting on each watched directory.
    waiting: HashMap<WatchDescriptor, BTreeSet<u64>>,
    /// The directory each ticket waits on, and its watch.
    by_ticket: HashMap<u64, (WatchDescriptor, PathBuf)>,
}

impl Watches {
    /// The ticket no longer waits on a path.
    pub fn forget(&mut self, ticket: u64) {
        let Some((watch, _)) = self.by_ticket.remove(&ticket) else {
            return;
        };
        if let Some(tickets) = self.waiting.get_mut(&watch) {
            tickets.remove(&ticket);
            if tickets.is_empty() {
                self.waiting.remove(&watch);
                if let Some(inotify) = &self.inotify {
                    // Gone already when its directory went.
                    let _ = inotify.rm_watch(watch);
                }
            }
        }
    }
}

/// The nearest directory of `path` that exists: the path's parent, or the one above it.
fn nearest_dir(path: &Path) -> Option<&Path> {
    path.ancestors().skip(1).find(|dir| dir.is_dir())
}

impl Daemon {
    /// Watches for a required path (`what` is `KIND PATH`, as `first_missing` gives it).
    pub(super) fn watch_required(&mut self, ticket: u64, what: &str) {
        let path = Path::new(what.split_once(' ').map_or(what, |(_, path)| path));
        let Some(dir) = nearest_dir(path).map(Path::to_path_buf) else {
            return;
        };
        if self
            .admission
            .files
            .by_ticket
            .get(&ticket)
            .is_some_and(|(_, watched)| *watched == dir)
        {
            // Watched already (a gate's tick looks at the start again).
            return;
        }
        let Some(inotify) = self.required_inotify() else { return };
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        let watch = match inotify.add_watch(&dir, flags) {
            Ok(watch) => watch,
            Err(error) => {
                warn!("cannot watch {} for a required path: {error}", dir.display());
                return;
            }
        };
        let files = &mut self.admission.files;
        files.forget(ticket);
        files.by_ticket.insert(ticket, (watch, dir.clone()));
        files.waiting.entry(watch).or_default().insert(ticket);
        // It may have appeared between the look and the watch.
        if path.exists() || nearest_dir(path) != Some(dir.as_path()) {
            self.admission.recheck.push(ticket);
        }
    }

    fn required_inotify(&mut self) -> Option<&Inotify> {
        if self.admission.files.inotify.is_none() {
            self.admission.files.inotify = self.inotify_on_loop(Daemon::required_events);
        }
        self.admission.files.inotify.as_ref()
    }

    /// Something changed in a watched directory: its starts are looked at again.
    fn required_events(&mut self, inotify: &Inotify) {
        let mut touched: BTreeSet<WatchDescriptor> = BTreeSet::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                touched.insert(event.wd);
            }
        }
        for watch in touched {
            let files = &mut self.admission.files;
            let Some(tickets) = files.waiting.get(&watch) else {
                continue;
            };
            let tickets: Vec<u64> = tickets.iter().copied().collect();
            // The directory may be gone: each start watches again from what it finds.
            for ticket in &tickets {
                files.forget(*ticket);
            }
            self.admission.recheck.extend(tickets);
        }
    }
}
