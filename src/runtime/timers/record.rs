//! `catch up`'s record: when each operand of a `catch up` job last fired, in the state dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use log::warn;
use serde::{Deserialize, Serialize};

use crate::model::Job;

/// The file `catch up` keeps its times in.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct CatchUpFile {
    version: u32,
    /// By `JOB`, a tab, and the operand as `uprisectl timers` shows it: the last due time
    /// fired at (or, before the first firing, when the operand was first armed), in UTC.
    last: BTreeMap<String, String>,
}

impl CatchUpFile {
    pub(super) fn get(&self, key: &str) -> Option<Timestamp> {
        self.last.get(key)?.parse().ok()
    }

    pub(super) fn set(&mut self, key: String, at: Timestamp) {
        self.last.insert(key, at.to_string());
    }

    /// Forgets what is kept for a job's operands other than `keep` (all of them when `keep`
    /// is empty); true when anything went.
    pub(super) fn forget(&mut self, job: &str, keep: &[String]) -> bool {
        let prefix = format!("{job}\t");
        let gone: Vec<String> = self
            .last
            .range(prefix.clone()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&prefix))
            .filter(|key| !keep.contains(key))
            .cloned()
            .collect();
        for key in &gone {
            self.last.remove(key);
        }
        !gone.is_empty()
    }
}

#[derive(Default)]
pub(super) struct CatchUp {
    path: Option<PathBuf>,
    pub(super) file: CatchUpFile,
    pub(super) dirty: bool,
}

impl CatchUp {
    const NAME: &str = "timers.json";

    /// Reads the state dir's file; a missing one is empty, an unreadable or corrupt one is
    /// logged and taken as empty (never fatal).
    pub(super) fn load(dir: &Path) -> CatchUp {
        let path = dir.join(Self::NAME);
        let read = std::fs::File::open(&path).and_then(|file| {
            use std::io::Read;
            let mut bytes = Vec::new();
            file.take(MAX_RECORD + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > MAX_RECORD {
                return Err(std::io::Error::other(format!("it is larger than {MAX_RECORD} bytes")));
            }
            Ok(bytes)
        });
        let file = match read {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                warn!(
                    "{}: cannot read it ({error}); missed runs are not caught up this time",
                    path.display()
                );
                CatchUpFile::default()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => CatchUpFile::default(),
            Err(error) => {
                warn!(
                    "{}: cannot read it ({error}); missed runs are not caught up this time",
                    path.display()
                );
                CatchUpFile::default()
            }
        };
        CatchUp {
            path: Some(path),
            file,
            dirty: false,
        }
    }

    /// Writes the file if anything changed: to a temporary file, synced, then renamed over
    /// the old one, so a crash leaves the old file or the new one, never half of one.
    pub(super) fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(path) = self.path.clone() else { return };
        self.file.version = 1;
        let result = (|| -> std::io::Result<()> {
            use std::io::Write;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let temporary = path.with_extension("json.new");
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&serde_json::to_vec_pretty(&self.file).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(error) = result {
            warn!(
                "{}: cannot write it ({error}); `catch up` may run a job twice or not at all after a restart",
                path.display()
            );
        }
    }
}

/// The most of `catch up`'s record read (a line per operand of a `catch up` job).
const MAX_RECORD: u64 = 16 << 20;

/// The key `catch up` keeps an operand's time under.
pub(super) fn catch_up_key(job: &Job, operand: &str) -> String {
    format!("{}\t{operand}", job.name)
}
