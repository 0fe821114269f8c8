//! Parse throughput over the Upstart corpus, and the time to load 10,000 job files.
//! Run with `cargo bench --bench parse`. Prints figures; asserts nothing about speed.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use uprise::model::{Config, ConfigSource};
use uprise::syntax::parse_file;

/// The Upstart corpus beside the repository; without it (a clone from a public host), the
/// stock jobs and the demo, with a line saying so.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dir = root.join("../shared/corpus/upstart");
    if !dir.is_dir() {
        eprintln!(
            "parse: the Upstart corpus is not at {}; measuring jobs/ instead",
            dir.display()
        );
        dir = root.join("jobs");
    }
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("the job files to parse")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "conf")
                .then(|| std::fs::read_to_string(path).ok())
                .flatten()
        })
        .collect();
    texts.sort();
    texts
}

/// Runs `work` until at least `budget` has passed; returns iterations and elapsed time.
fn measure(budget: Duration, mut work: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut iterations = 0;
    while start.elapsed() < budget {
        work();
        iterations += 1;
    }
    (iterations, start.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this runs once, small.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let budget = if quick {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3)
    };

    let texts = corpus();
    let bytes: usize = texts.iter().map(String::len).sum();
    let (iterations, elapsed) = measure(budget, || {
        for text in &texts {
            black_box(parse_file(black_box(text)));
        }
    });
    let mb_per_s = (bytes as f64 * iterations as f64) / elapsed.as_secs_f64() / 1e6;
    println!(
        "parse_corpus files={} bytes={bytes} iterations={iterations} throughput_mb_s={mb_per_s:.1}",
        texts.len()
    );

    let (iterations, elapsed) = measure(budget, || {
        for (index, text) in texts.iter().enumerate() {
            black_box(Config::from_text("bench", &format!("bench{index}.conf"), text));
        }
    });
    let mb_per_s = (bytes as f64 * iterations as f64) / elapsed.as_secs_f64() / 1e6;
    println!(
        "check_corpus files={} iterations={iterations} throughput_mb_s={mb_per_s:.1}",
        texts.len()
    );

    // 10,000 job files in one job dir, cycling through the corpus; the one invalid file
    // is included, so the error path is measured too.
    let count = if quick { 200 } else { 10_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    for index in 0..count {
        let text = &texts[index % texts.len()];
        std::fs::write(dir.path().join(format!("job{index:05}.conf")), text).expect("write job");
    }
    let runs = if quick { 1 } else { 5 };
    let mut best = Duration::MAX;
    let mut jobs = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let config = Config::load(&[ConfigSource::Dir(dir.path().to_path_buf())]);
        best = best.min(start.elapsed());
        jobs = config.jobs.len();
    }
    println!(
        "load_dir files={count} jobs={jobs} best_of={runs} seconds={:.3}",
        best.as_secs_f64()
    );
}
