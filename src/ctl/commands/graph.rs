//! `graph [--format dot|svg] [--output FILE] [--offline DIR] [JOB...]`: the options, handed to
//! `ctl::graph`, which does the drawing.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ctl::graph::{self, Format, Source};

use super::args::Parsed;
use super::{Failure, failure, socket_path, usage};

/// `graph`: the jobs from the daemon, or from `--offline` dirs, drawn as DOT or SVG.
pub(super) fn run_graph(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let output = parsed.output.as_deref().map(Path::new);
    let format = match parsed.format.as_deref() {
        Some(name) => {
            Format::parse(name).ok_or_else(|| usage(format!("graph: unknown format: {name} (dot or svg)")))?
        }
        None if output.is_some_and(|path| path.extension().is_some_and(|ext| ext == "svg")) => Format::Svg,
        None => Format::Dot,
    };
    let socket;
    let dirs: Vec<PathBuf>;
    let source = if parsed.offline.is_empty() {
        socket = socket_path(parsed, env);
        Source::Daemon(&socket)
    } else {
        dirs = parsed.offline.iter().map(PathBuf::from).collect();
        Source::Offline(&dirs)
    };
    graph::run(&source, args, format, output, out).map_err(failure)
}

#[cfg(test)]
mod tests {
    use crate::ctl::commands::tests::run;

    #[test]
    fn graph_offline_writes_dot_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db.conf"), "start on startup\nexec db\n").unwrap();
        std::fs::write(dir.path().join("web.conf"), "start on started db\nexec web\n").unwrap();
        let path = dir.path().to_str().unwrap();
        let outcome = run(&["graph", "--offline", path], &[]);
        assert_eq!(outcome.code, 0, "{}", outcome.err);
        assert!(outcome.out.starts_with("digraph \"uprise\" {\n"), "{}", outcome.out);
        assert!(outcome.out.contains("\"job:db\" -> \"event:started db\""));
        let outcome = run(&["graph", "--format=svg", "--offline", path, "web"], &[]);
        assert_eq!(outcome.code, 0, "{}", outcome.err);
        assert!(outcome.out.starts_with("<svg "));
        let outcome = run(&["graph", "--format", "png", "--offline", path], &[]);
        assert_eq!(outcome.code, 2);
        let outcome = run(&["graph", "--offline", path, "nope"], &[]);
        assert_eq!(
            (outcome.code, outcome.err.as_str()),
            (1, "uprisectl: Unknown job: nope\n")
        );
    }
}
