//! The shared Upstart corpus, the stock jobs and the demo: real files that must load.

use std::io::Write;
use std::path::{Path, PathBuf};

use uprise::model::{Config, ConfigSource, Severity};

const CORPUS: &str = "../shared/corpus/upstart";
/// The one corpus file that SOURCES.md marks invalid, and the line Upstart rejects it at.
const INVALID: (&str, u32) = ("CameronNemo_upstart-jobs__monitoring_elasticsearch.conf", 14);

/// The corpus dir, or `None` (with a line saying the test is skipped) in a clone that has
/// no `../shared` beside it. CI clones the repo beside a copy of shared/, as in a
/// developer's checkout.
fn corpus_dir(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    if !dir.is_dir() {
        // Straight to stderr: libtest would hold back an `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: the Upstart corpus is not at {}",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

#[test]
fn every_corpus_file_but_the_invalid_one_is_accepted() {
    let Some(dir) = corpus_dir("every_corpus_file_but_the_invalid_one_is_accepted") else {
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".conf") {
            continue;
        }
        checked += 1;
        let config = Config::load(&[ConfigSource::File(path.clone())]);
        let errors: Vec<_> = config
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if name == INVALID.0 {
            assert!(config.jobs.is_empty(), "{name} must define no job");
            let first = errors.first().expect("the invalid file has errors");
            assert_eq!(first.message, "Expected token");
            let position = config.sources.position(&first.file, first.span.unwrap()).unwrap();
            assert_eq!(
                position.line, INVALID.1,
                "{name} is rejected at the line SOURCES.md names"
            );
        } else {
            let rendered: String = errors.iter().map(|d| config.sources.render(d)).collect();
            assert!(errors.is_empty(), "{name} must be accepted:\n{rendered}");
            assert_eq!(config.jobs.len(), 1, "{name} defines one job");
        }
    }
    assert_eq!(checked, 38, "the corpus has 38 job files");
}

#[test]
fn the_corpus_as_a_job_dir_loads_all_valid_jobs() {
    let Some(dir) = corpus_dir("the_corpus_as_a_job_dir_loads_all_valid_jobs") else {
        return;
    };
    let config = Config::load(&[ConfigSource::Dir(dir)]);
    assert_eq!(config.files_read, 38);
    assert_eq!(config.jobs.len(), 37);
    assert!(
        config
            .jobs
            .iter()
            .all(|job| job.name != INVALID.0.trim_end_matches(".conf"))
    );
}

#[test]
fn stock_jobs_and_the_demo_load_without_errors() {
    for dir in ["jobs", "examples/demo"] {
        let config = Config::load(&[ConfigSource::Dir(PathBuf::from(dir))]);
        let rendered: String = config.diagnostics.iter().map(|d| config.sources.render(d)).collect();
        assert!(config.is_valid(), "{dir}:\n{rendered}");
        assert!(config.jobs.len() >= 5, "{dir} has its jobs");
        assert_eq!(config.jobs.len(), config.files_read, "{dir}: every file is one job");
    }
}
