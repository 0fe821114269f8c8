//! Job output: the read side of each job process's log pipe, appended to `LOGDIR/JOB.log`
//! (`JOB-INSTANCE.log`, every `/` replaced by `_`).
//!
//! Logging never blocks or kills a job: the daemon drains the pipe whenever it is readable;
//! when the log file cannot be opened, output is kept in a bounded buffer (the oldest bytes
//! go first) and written once the file opens; `console auto` drops it instead (its fallback
//! is /dev/null). Files rotate by size: `JOB.log` → `JOB.log.1` … `JOB.log.N`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use log::warn;

/// Bytes kept per job while its log file cannot be written.
pub const PENDING_LIMIT: usize = 1 << 20;

/// Size limits for log files.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// Rotate when a file grows past this many bytes; 0 disables rotation.
    pub max_bytes: u64,
    /// How many rotated files to keep.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_bytes: 10 << 20,
            keep: 3,
        }
    }
}

/// The log file name of an instance.
pub fn log_name(job: &str, instance: &str) -> String {
    let job = job.replace('/', "_");
    if instance.is_empty() {
        format!("{job}.log")
    } else {
        format!("{job}-{}.log", instance.replace('/', "_"))
    }
}

/// One instance's log.
pub struct JobLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    pending: Vec<u8>,
    dropped: u64,
    /// `console auto`: no buffering; output that cannot be written is discarded.
    discard_when_closed: bool,
    /// The file could not be opened, and the daemon said so.
    open_failed: bool,
    rotation: Rotation,
}

impl JobLog {
    pub fn new(logdir: &Path, job: &str, instance: &str, discard_when_closed: bool, rotation: Rotation) -> JobLog {
        JobLog {
            path: logdir.join(log_name(job, instance)),
            file: None,
            written: 0,
            pending: Vec::new(),
            dropped: 0,
            discard_when_closed,
            open_failed: false,
            rotation,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.written = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) {
        self.file = None;
        for index in (1..self.rotation.keep).rev() {
            let from = rotated(&self.path, index);
            if from.exists() {
                let _ = std::fs::rename(&from, rotated(&self.path, index + 1));
            }
        }
        if self.rotation.keep > 0 {
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.written = 0;
    }

    /// Appends output; never fails: problems turn into buffering or dropping.
    pub fn append(&mut self, bytes: &[u8]) {
        if let Err(error) = self.open() {
            if !self.open_failed {
                self.open_failed = true;
                warn!(
                    "cannot open {} ({error}); {}",
                    self.path.display(),
                    if self.discard_when_closed {
                        "the job's output is dropped until it opens"
                    } else {
                        "the job's output is kept (up to 1 MiB) until it opens"
                    }
                );
            }
            self.keep(bytes);
            return;
        }
        self.open_failed = false;
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            if self.dropped > 0 {
                let note = format!(
                    "[uprise: {} bytes of output were dropped while the log could not be written]\n",
                    self.dropped
                );
                self.dropped = 0;
                self.write_file(note.as_bytes());
            }
            if !self.write_file(&pending) {
                // What was not written is kept, in order, before the new bytes.
                self.keep(bytes);
                return;
            }
        }
        self.write_file(bytes);
    }

    /// Writes `bytes` to the open file; what a failure leaves unwritten is kept, and only
    /// that (a write cut short by a full disk must not be written again). False when not
    /// all was written.
    fn write_file(&mut self, bytes: &[u8]) -> bool {
        let Some(file) = self.file.as_mut() else {
            self.keep(bytes);
            return false;
        };
        let mut done = 0;
        while done < bytes.len() {
            match file.write(&bytes[done..]) {
                Ok(0) => break,
                Ok(count) => {
                    done += count;
                    self.written += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                        note_full(&self.path, true);
                    }
                    break;
                }
            }
        }
        if done < bytes.len() {
            // A full disk, a deleted or unwritable file: reopen next time.
            self.file = None;
            self.keep(&bytes[done..]);
            return false;
        }
        note_full(&self.path, false);
        if self.rotation.max_bytes > 0 && self.written >= self.rotation.max_bytes {
            self.rotate();
        }
        true
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.discard_when_closed {
            self.dropped += bytes.len() as u64;
            return;
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > PENDING_LIMIT {
            let excess = self.pending.len() - PENDING_LIMIT;
            self.pending.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Tries to write buffered output (the log dir may have become writable).
    pub fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.append(&[]);
        }
    }

    /// Buffered output and the count of dropped bytes, for a re-exec snapshot.
    pub fn pending(&self) -> (&[u8], u64) {
        (&self.pending, self.dropped)
    }

    /// Puts back buffered output after a re-exec.
    pub fn restore_pending(&mut self, pending: Vec<u8>, dropped: u64) {
        self.pending = pending;
        self.dropped = dropped;
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// Whether the last write to a log found the disk full: the daemon says so once when it
/// fills and once when there is room again, not at every write of every job.
static LOG_DIR_FULL: AtomicBool = AtomicBool::new(false);

fn note_full(path: &Path, full: bool) {
    if LOG_DIR_FULL.swap(full, Ordering::Relaxed) == full {
        return;
    }
    let dir = path.parent().unwrap_or(path).display();
    if full {
        warn!("the log dir {dir} is full; job output is kept in memory (up to 1 MiB per job) until there is room");
    } else {
        warn!("the log dir {dir} has room again; kept job output is being written");
    }
}

fn rotated(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Reads everything available from a non-blocking fd into `log`. Returns false at end of file.
pub fn drain(source: &mut impl Read, log: &mut JobLog) -> bool {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match source.read(&mut buffer) {
            Ok(0) => return false,
            Ok(count) => log.append(&buffer[..count]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_replace_slashes() {
        assert_eq!(log_name("net/apache", ""), "net_apache.log");
        assert_eq!(log_name("foo/bar", "wib/ble"), "foo_bar-wib_ble.log");
    }

    #[test]
    fn buffers_while_the_dir_is_missing_then_flushes_in_order() {
        let temp = tempfile::tempdir().unwrap();
        let logdir = temp.path().join("later");
        let mut log = JobLog::new(&logdir, "job", "", false, Rotation::default());
        log.append(b"one\n");
        log.append(b"two\n");
        assert_eq!(log.pending_len(), 8);
        std::fs::create_dir(&logdir).unwrap();
        log.append(b"three\n");
        assert_eq!(
            std::fs::read_to_string(logdir.join("job.log")).unwrap(),
            "one\ntwo\nthree\n"
        );
    }

    #[test]
    fn the_buffer_is_bounded_and_says_what_it_dropped() {
        let temp = tempfile::tempdir().unwrap();
        let logdir = temp.path().join("later");
        let mut log = JobLog::new(&logdir, "job", "", false, Rotation::default());
        let chunk = vec![b'x'; PENDING_LIMIT / 2 + 1];
        log.append(&chunk);
        log.append(&chunk);
        log.append(&chunk);
        assert_eq!(log.pending_len(), PENDING_LIMIT);
        std::fs::create_dir(&logdir).unwrap();
        log.flush_pending();
        let text = std::fs::read_to_string(logdir.join("job.log")).unwrap();
        assert!(text.starts_with("[uprise: "), "{}", &text[..60]);
        assert!(text.contains("bytes of output were dropped"));
    }

    #[test]
    fn console_auto_drops_instead_of_buffering() {
        let temp = tempfile::tempdir().unwrap();
        let mut log = JobLog::new(&temp.path().join("missing"), "job", "", true, Rotation::default());
        log.append(b"lost\n");
        assert_eq!(log.pending_len(), 0);
    }

    #[test]
    fn rotates_by_size() {
        let temp = tempfile::tempdir().unwrap();
        let rotation = Rotation { max_bytes: 10, keep: 2 };
        let mut log = JobLog::new(temp.path(), "job", "", false, rotation);
        for line in ["aaaaaaaaaaaa\n", "bbbbbbbbbbbb\n", "cccccccccccc\n", "d\n"] {
            log.append(line.as_bytes());
        }
        let read = |name: &str| std::fs::read_to_string(temp.path().join(name)).unwrap_or_default();
        assert_eq!(read("job.log"), "d\n");
        assert_eq!(read("job.log.1"), "cccccccccccc\n");
        assert_eq!(read("job.log.2"), "bbbbbbbbbbbb\n");
        assert!(!temp.path().join("job.log.3").exists());
    }
}
