//! Loading configuration: job dirs and files → `Config` (jobs, pools, diagnostics).
//!
//! Owns job naming (path relative to the job dir, without `.conf`), `.override` merging,
//! multi-job files, the daemon file `DIR.conf` beside a job dir, and the rule that a file with
//! an error defines no job while every other file still loads. It reads files; it never
//! starts anything.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::syntax::{self, DaemonStanza, FileAst, JobBlock, Spanned, Stanza};

use super::analyze;
use super::diagnostic::{Diagnostic, Severity, Sources};
use super::job::{Job, JobSource};

/// A resource pool's capacity.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pool {
    pub max: f64,
    /// The daemon file that declared it; `None` for the implicit maximum of 1.0.
    pub declared_in: Option<String>,
}

/// The maximum of a pool that no daemon file declares.
pub const DEFAULT_POOL_MAX: f64 = 1.0;

/// Everything read from a set of job dirs and files.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub jobs: Vec<Job>,
    pub pools: BTreeMap<String, Pool>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    /// Job files read (`.conf`), whether or not they were valid.
    pub files_read: usize,
}

/// A job file to load: the job's name, and whether an `.override` lies beside it (`None`:
/// not known yet).
struct JobFile {
    name: String,
    path: PathBuf,
    has_override: Option<bool>,
}

/// What a directory entry is, symbolic links followed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dir,
    File,
}

/// Where to read jobs from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A job dir, walked recursively; `DIR.conf` beside it is its daemon file.
    Dir(PathBuf),
    /// One job file; its job is named after the file.
    File(PathBuf),
}

impl ConfigSource {
    /// A path as given on a command line: a dir or a file.
    pub fn from_path(path: &Path) -> ConfigSource {
        if path.is_dir() {
            ConfigSource::Dir(path.to_path_buf())
        } else {
            ConfigSource::File(path.to_path_buf())
        }
    }
}

/// Names a backup, editor or package-manager file that must not define a job.
fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || [".dpkg-", ".rpmnew", ".rpmsave", ".ucf-", ".bak"]
            .iter()
            .any(|part| name.contains(part))
}

/// The most a job file, an override or a daemon file may hold. A larger file is refused
/// with one error, unread: real job files are a few KiB, and the daemon reads its job dirs
/// on its loop, so a 50 MB file of garbage must not hold it up.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most diagnostics reported for one file; the rest are counted in one more line.
pub const MAX_DIAGNOSTICS_PER_FILE: usize = 100;

/// Reads a whole file of at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let too_large = || {
        std::io::Error::other(format!(
            "the file is larger than {MAX_FILE_BYTES} bytes, the most a job file may hold"
        ))
    };
    let size = file.metadata()?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow between the look and the read: read one byte past the limit at most.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The daemon file of a job dir: `/etc/init` → `/etc/init.conf`.
pub fn daemon_file_of(dir: &Path) -> PathBuf {
    let trimmed = dir.to_string_lossy().trim_end_matches('/').to_string();
    PathBuf::from(format!("{trimmed}.conf"))
}

impl Config {
    /// Loads every source in order; the first source to define a job name owns it.
    pub fn load(sources: &[ConfigSource]) -> Config {
        let mut config = Config::default();
        let mut files: Vec<JobFile> = Vec::new();
        for source in sources {
            match source {
                ConfigSource::Dir(dir) => {
                    config.load_daemon_file(&daemon_file_of(dir));
                    let mut found = Vec::new();
                    let mut visited = HashSet::new();
                    config.walk(dir, dir, &mut found, &mut visited);
                    files.extend(found);
                }
                ConfigSource::File(path) => {
                    let name = path
                        .file_name()
                        .map(|name| name.to_string_lossy().trim_end_matches(".conf").to_string())
                        .unwrap_or_default();
                    files.push(JobFile {
                        name,
                        path: path.clone(),
                        has_override: None,
                    });
                }
            }
        }
        let mut names = HashSet::new();
        for file in files {
            for job in config.load_job_file(&file).unwrap_or_default() {
                if !names.insert(job.name.clone()) {
                    config.diagnostics.push(Diagnostic::warning(
                        &job.file,
                        None,
                        format!(
                            "job `{}` is already defined by an earlier file; this one is ignored",
                            job.name
                        ),
                    ));
                    continue;
                }
                config.jobs.push(job);
            }
        }
        // References to other jobs mean something only for a whole job set.
        if sources.iter().any(|source| matches!(source, ConfigSource::Dir(_))) {
            config.diagnostics.extend(analyze::check_job_references(&config.jobs));
        }
        config
    }

    /// Orders the diagnostics from `first` on by file and position, as a reader expects them.
    fn sort_from(&mut self, first: usize) {
        let lo = |diagnostic: &Diagnostic| diagnostic.span.map(|span| span.lo);
        self.diagnostics[first..].sort_by(|a, b| a.file.cmp(&b.file).then_with(|| lo(a).cmp(&lo(b))));
    }

    /// Keeps the first [`MAX_DIAGNOSTICS_PER_FILE`] diagnostics of each file from `first`
    /// on (sorted by file), and says how many more there were.
    fn cap_from(&mut self, first: usize) {
        let mut kept = Vec::with_capacity(self.diagnostics.len() - first);
        let mut run: Option<(String, usize, Severity)> = None;
        let finish = |kept: &mut Vec<Diagnostic>, run: Option<(String, usize, Severity)>| {
            if let Some((file, dropped, severity)) = run.filter(|run| run.1 > 0) {
                let message = format!(
                    "{dropped} more diagnostic(s) in this file are not shown (the first {MAX_DIAGNOSTICS_PER_FILE} are)"
                );
                kept.push(Diagnostic {
                    severity,
                    ..Diagnostic::warning(&file, None, message)
                });
            }
        };
        let mut count = 0;
        for diagnostic in self.diagnostics.drain(first..) {
            if run.as_ref().is_none_or(|(file, ..)| *file != diagnostic.file) {
                finish(&mut kept, run.take());
                run = Some((diagnostic.file.clone(), 0, Severity::Warning));
                count = 0;
            }
            count += 1;
            if count <= MAX_DIAGNOSTICS_PER_FILE {
                kept.push(diagnostic);
            } else if let Some((_, dropped, severity)) = run.as_mut() {
                *dropped += 1;
                *severity = (*severity).min(diagnostic.severity);
            }
        }
        finish(&mut kept, run);
        self.diagnostics.extend(kept);
    }

    /// True when no diagnostic is an error.
    pub fn is_valid(&self) -> bool {
        self.diagnostics
            .iter()
            .all(|diagnostic| diagnostic.severity != Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == severity)
            .count()
    }

    fn walk(&mut self, root: &Path, dir: &Path, found: &mut Vec<JobFile>, visited: &mut HashSet<(u64, u64)>) {
        // Symbolic links are followed, so a link back up the tree must not loop.
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = fs::metadata(dir)
            && !visited.insert((meta.dev(), meta.ino()))
        {
            return;
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.diagnostics.push(Diagnostic::error(
                    &dir.display().to_string(),
                    None,
                    format!("Error while reading configuration directory: {error}"),
                ));
                return;
            }
        };
        // The directory says what each entry is, so a dir of 1,000 jobs costs no `stat` per
        // file; only symbolic links (followed: Upstart ignored them) and entries of unknown
        // type are looked up.
        let mut listed: Vec<(String, PathBuf, Kind)> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_ignored(&name) {
                continue;
            }
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(kind) if kind.is_dir() => Kind::Dir,
                Ok(kind) if kind.is_file() => Kind::File,
                _ => match fs::metadata(&path) {
                    Ok(meta) if meta.is_dir() => Kind::Dir,
                    Ok(meta) if meta.is_file() => Kind::File,
                    // A dangling link, a link loop, a socket or a device named like a job
                    // file is reported as an unreadable job file is; anything else is not a
                    // job's business.
                    Ok(_) if name.ends_with(".conf") => {
                        self.unreadable(&path, "not a regular file");
                        continue;
                    }
                    Err(error) if name.ends_with(".conf") => {
                        self.unreadable(&path, &error.to_string());
                        continue;
                    }
                    _ => continue,
                },
            };
            if kind == Kind::Dir && name.ends_with(".conf") {
                self.diagnostics.push(Diagnostic::warning(
                    &path.display().to_string(),
                    None,
                    "a directory, not a job file: it defines no job of this name (the job files in it are read as a sub-directory's)",
                ));
            }
            listed.push((name, path, kind));
        }
        listed.sort_by(|a, b| a.1.cmp(&b.1));
        let overrides: HashSet<&str> = listed
            .iter()
            .filter(|(name, _, kind)| *kind == Kind::File && name.ends_with(".override"))
            .map(|(name, _, _)| name.as_str())
            .collect();
        for (file_name, path, kind) in &listed {
            if *kind == Kind::Dir {
                self.walk(root, path, found, visited);
            } else if let Some(stem) = file_name.strip_suffix(".conf") {
                let relative = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
                let name = relative.trim_start_matches('/').trim_end_matches(".conf").to_string();
                let has_override = overrides.contains(format!("{stem}.override").as_str());
                found.push(JobFile {
                    name,
                    path: path.clone(),
                    has_override: Some(has_override),
                });
            }
        }
    }

    /// Records a job file that cannot be read, and why.
    fn unreadable(&mut self, path: &Path, why: &str) {
        self.diagnostics.push(Diagnostic::error(
            &path.display().to_string(),
            None,
            format!("Error while loading configuration file: {why}"),
        ));
    }

    fn read(&mut self, path: &Path) -> Option<Arc<str>> {
        let file = path.display().to_string();
        match read_bounded(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    let text: Arc<str> = Arc::from(text);
                    self.sources.insert(&file, text.clone());
                    Some(text)
                }
                Err(error) => {
                    self.diagnostics.push(Diagnostic::error(
                        &file,
                        None,
                        format!(
                            "Error while loading configuration file: not valid UTF-8 at byte {}",
                            error.utf8_error().valid_up_to()
                        ),
                    ));
                    None
                }
            },
            Err(error) => {
                self.diagnostics.push(Diagnostic::error(
                    &file,
                    None,
                    format!("Error while loading configuration file: {error}"),
                ));
                None
            }
        }
    }

    fn load_daemon_file(&mut self, path: &Path) {
        if !path.is_file() {
            return;
        }
        let Some(text) = self.read(path) else { return };
        let file = path.display().to_string();
        let (stanzas, errors) = syntax::parse_daemon_file(&text);
        for error in &errors {
            self.diagnostics.push(Diagnostic::from_parse(&file, error));
        }
        // The lines that are right apply, whatever is wrong with the others: one bad line
        // must not leave every pool at its default maximum.
        for stanza in stanzas {
            let DaemonStanza::Resource { name, max } = stanza.node;
            if let Some(previous) = self.pools.get(&name)
                && previous.declared_in.as_deref() == Some(file.as_str())
            {
                self.diagnostics.push(Diagnostic::warning(
                    &file,
                    Some(stanza.span),
                    format!("pool `{name}` is declared twice; the last one wins"),
                ));
            }
            self.pools.insert(
                name,
                Pool {
                    max,
                    declared_in: Some(file.clone()),
                },
            );
        }
    }

    /// Rebuilds the job `name` from the text it was read from (after a re-exec). The text was
    /// checked when it was first loaded, so only parsing and merging happen here.
    pub fn rebuild_job(source: &JobSource, name: &str) -> Result<Job, String> {
        let (ast, errors) = syntax::parse_file(&source.text);
        if let Some(error) = errors.first() {
            return Err(format!("{}: {}", source.file, error.kind.message()));
        }
        let override_ast = match (&source.override_file, &source.override_text) {
            (Some(file), Some(text)) => {
                let (ast, errors) = syntax::parse_file(text);
                if !errors.is_empty() {
                    return Err(format!("{file}: the override no longer parses"));
                }
                Some((file.clone(), ast))
            }
            _ => None,
        };
        let mut scratch = Config::default();
        let jobs = scratch
            .build_jobs(&source.base, &source.file, &ast, override_ast.as_ref())
            .ok_or_else(|| format!("{}: cannot rebuild its jobs", source.file))?;
        let mut job = jobs
            .into_iter()
            .map(|(job, _)| job)
            .find(|job| job.name == name)
            .ok_or_else(|| format!("{} no longer defines {name}", source.file))?;
        job.source = super::job::Provenance(Some(Arc::new(source.clone())));
        Ok(job)
    }

    /// Loads one job file from memory, as if read from `file` (tests, fuzzing, benchmarks).
    pub fn from_text(name: &str, file: &str, text: &str) -> Config {
        let mut config = Config {
            files_read: 1,
            ..Config::default()
        };
        config.sources.insert(file, Arc::from(text));
        if let Some(jobs) = config.load_job_text(name, file, Arc::from(text), None) {
            config.jobs = jobs;
        }
        config
    }

    /// Parses one `.conf` (and its `.override`) into jobs, or records why it defines none.
    fn load_job_file(&mut self, job_file: &JobFile) -> Option<Vec<Job>> {
        let JobFile {
            name,
            path,
            has_override,
        } = job_file;
        self.files_read += 1;
        let file = path.display().to_string();
        let text = self.read(path)?;
        let override_path = path.with_extension("override");
        let mut override_source = None;
        if has_override.unwrap_or_else(|| override_path.is_file())
            && let Some(override_text) = self.read(&override_path)
        {
            override_source = Some((override_path.display().to_string(), override_text));
        }
        self.load_job_text(name, &file, text, override_source)
    }

    fn load_job_text(
        &mut self,
        name: &str,
        file: &str,
        text: Arc<str>,
        override_source: Option<(String, Arc<str>)>,
    ) -> Option<Vec<Job>> {
        let first = self.diagnostics.len();
        // An override that does not parse is reported and ignored: the job loads without it.
        let mut override_ast = None;
        let mut override_kept = None;
        let mut ignored_errors = 0;
        if let Some((override_file, override_text)) = override_source {
            let (ast, override_errors) = syntax::parse_file(&override_text);
            for error in &override_errors {
                self.diagnostics.push(Diagnostic::from_parse(&override_file, error));
            }
            ignored_errors = override_errors.len();
            if override_errors.is_empty() {
                override_kept = Some((override_file.clone(), override_text));
                override_ast = Some((override_file, ast));
            }
        }
        let mut jobs = self.parse_and_build(name, file, &text, override_ast);
        if let Some(jobs) = jobs.as_mut() {
            let source = Arc::new(JobSource {
                file: file.to_string(),
                text,
                override_file: override_kept.as_ref().map(|(file, _)| file.clone()),
                override_text: override_kept.map(|(_, text)| text),
                base: name.to_string(),
            });
            for job in jobs {
                job.source = super::job::Provenance(Some(source.clone()));
            }
        }
        self.sort_from(first);
        // Everything from `first` on is about this file or its override.
        let errors = self.diagnostics[first..]
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Error)
            .count();
        self.cap_from(first);
        jobs.filter(|_| errors == ignored_errors)
    }

    fn parse_and_build(
        &mut self,
        name: &str,
        file: &str,
        text: &str,
        override_ast: Option<(String, FileAst)>,
    ) -> Option<Vec<Job>> {
        let file = file.to_string();
        let (ast, errors) = syntax::parse_file(text);
        for error in &errors {
            self.diagnostics.push(Diagnostic::from_parse(&file, error));
        }
        // Stanzas that parsed are checked even when others did not, so one run shows all.
        let mut findings = analyze::check_stanzas(&file, &ast, &self.pools, &self.sources);
        if let Some((override_file, override_ast)) = &override_ast {
            findings.extend(analyze::check_stanzas(
                override_file,
                override_ast,
                &self.pools,
                &self.sources,
            ));
        }
        self.diagnostics.extend(findings);
        if !errors.is_empty() {
            return None;
        }
        let jobs = self.build_jobs(name, &file, &ast, override_ast.as_ref())?;
        let mut accepted = Vec::new();
        for (job, origins) in jobs {
            self.diagnostics.extend(analyze::check_job(&job, &origins));
            accepted.push(job);
        }
        Some(accepted)
    }

    fn build_jobs(
        &mut self,
        name: &str,
        file: &str,
        ast: &FileAst,
        override_ast: Option<&(String, FileAst)>,
    ) -> Option<Vec<(Job, Vec<Origin>)>> {
        if ast.blocks.is_empty() {
            if let Some((override_file, override_ast)) = override_ast
                && let Some(block) = override_ast.blocks.first()
            {
                self.diagnostics.push(Diagnostic::error(
                    override_file,
                    Some(block.name.span),
                    format!(
                        "`{}` has no job blocks, so its override cannot name `job {}`",
                        file, block.name.node
                    ),
                ));
                return None;
            }
            let mut job = Job::new(name.to_string(), file.to_string());
            let mut origins = Vec::new();
            apply_all(&mut job, &mut origins, file, &ast.stanzas);
            if let Some((override_file, override_ast)) = override_ast {
                apply_all(&mut job, &mut origins, override_file, &override_ast.stanzas);
                job.about.override_file = Some(override_file.clone());
            }
            return Some(vec![(job, origins)]);
        }
        let mut seen: BTreeMap<&str, &JobBlock> = BTreeMap::new();
        for block in &ast.blocks {
            if seen.insert(&block.name.node, block).is_some() {
                self.diagnostics.push(Diagnostic::error(
                    file,
                    Some(block.name.span),
                    format!("job block `{}` is defined twice in this file", block.name.node),
                ));
                return None;
            }
        }
        if let Some((override_file, override_ast)) = override_ast {
            for block in &override_ast.blocks {
                if !seen.contains_key(block.name.node.as_str()) {
                    self.diagnostics.push(Diagnostic::error(
                        override_file,
                        Some(block.name.span),
                        format!("`{file}` has no job block `{}`", block.name.node),
                    ));
                    return None;
                }
            }
        }
        let mut jobs = Vec::new();
        for block in &ast.blocks {
            let mut job = Job::new(format!("{name}/{}", block.name.node), file.to_string());
            let mut origins = Vec::new();
            apply_all(&mut job, &mut origins, file, &ast.stanzas);
            apply_all(&mut job, &mut origins, file, &block.stanzas);
            if let Some((override_file, override_ast)) = override_ast {
                apply_all(&mut job, &mut origins, override_file, &override_ast.stanzas);
                for override_block in override_ast.blocks.iter().filter(|b| b.name.node == block.name.node) {
                    apply_all(&mut job, &mut origins, override_file, &override_block.stanzas);
                }
                job.about.override_file = Some(override_file.clone());
            }
            jobs.push((job, origins));
        }
        Some(jobs)
    }
}

/// Where a stanza that shaped a job was written, for job-level diagnostics.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: String,
    pub keyword: &'static str,
    pub span: syntax::Span,
}

fn apply_all(job: &mut Job, origins: &mut Vec<Origin>, file: &str, stanzas: &[Spanned<Stanza>]) {
    for stanza in stanzas {
        job.apply(&stanza.node);
        origins.push(Origin {
            file: file.to_string(),
            keyword: stanza.node.keyword(),
            span: stanza.span,
        });
    }
}
