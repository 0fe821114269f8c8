//! Parser and checker goldens.
//!
//! `tests/parse/ok/NAME.conf` must load without errors; `tests/parse/err/NAME.conf` must be
//! rejected. Each has a `NAME.golden` beside it: the merged jobs as JSON and every rendered
//! diagnostic. `tests/parse/dirs/NAME/` holds whole job dirs (`init/` plus an optional daemon
//! file `init.conf`) with `NAME.golden` beside the dir. A missing golden is written on the
//! first run; `UPDATE_GOLDEN=1 cargo test` rewrites them all. Every mismatch is reported at
//! the end, not only the first.

use std::fs;
use std::path::{Path, PathBuf};

use uprise::model::{Config, ConfigSource, Severity};

fn render(config: &Config) -> String {
    let mut out = String::from("== jobs\n");
    let jobs = serde_json::to_string_pretty(&config.jobs).expect("jobs encode as JSON");
    out.push_str(&jobs);
    out.push_str("\n== diagnostics\n");
    for diagnostic in &config.diagnostics {
        out.push_str(&config.sources.render(diagnostic));
    }
    out
}

fn compare(golden: &Path, actual: &str, failures: &mut Vec<String>) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    match fs::read_to_string(golden) {
        Ok(expected) if expected == actual => {}
        Ok(_) if !update => failures.push(format!(
            "{} differs; rerun with UPDATE_GOLDEN=1 and review the diff\n--- actual ---\n{actual}",
            golden.display()
        )),
        _ => {
            if std::env::var_os("CI").is_some() && !update {
                failures.push(format!("{} is missing", golden.display()));
            } else {
                fs::write(golden, actual).expect("write golden");
            }
        }
    }
}

fn cases(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("golden dir exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {dir}");
    paths
}

#[test]
fn accepted_forms() {
    let mut failures = Vec::new();
    for path in cases("tests/parse/ok", "conf") {
        let config = Config::load(&[ConfigSource::File(path.clone())]);
        if config.count(Severity::Error) > 0 || config.jobs.is_empty() {
            failures.push(format!("{} should be accepted:\n{}", path.display(), render(&config)));
            continue;
        }
        compare(&path.with_extension("golden"), &render(&config), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejected_forms() {
    let mut failures = Vec::new();
    for path in cases("tests/parse/err", "conf") {
        let config = Config::load(&[ConfigSource::File(path.clone())]);
        if config.count(Severity::Error) == 0 || !config.jobs.is_empty() {
            failures.push(format!(
                "{} should be rejected and define no job:\n{}",
                path.display(),
                render(&config)
            ));
            continue;
        }
        compare(&path.with_extension("golden"), &render(&config), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn job_dirs() {
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir("tests/parse/dirs")
        .expect("dirs exist")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let config = Config::load(&[ConfigSource::Dir(dir.join("init"))]);
        compare(&dir.with_extension("golden"), &render(&config), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
