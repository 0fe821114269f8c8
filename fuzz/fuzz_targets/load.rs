//! Loads arbitrary text as one job file and renders every diagnostic. Checks that neither
//! panics and that a config with an error defines no job.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = uprise::model::Config::from_text("fuzz", "fuzz.conf", &text);
    for diagnostic in &config.diagnostics {
        let _ = config.sources.render(diagnostic);
    }
    assert!(
        config.is_valid() || config.jobs.is_empty(),
        "a config with errors defined {} job(s)",
        config.jobs.len()
    );
});
