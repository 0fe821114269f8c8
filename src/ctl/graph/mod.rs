//! `uprisectl graph`: the jobs and the events between them, as a picture.
//!
//! The jobs come from the daemon (its `graph` request: each job's [`Links`]) or, with
//! `--offline DIR`, from job dirs read by the loader `uprisectl check` uses. `build` makes the
//! graph (and the part of it around some jobs); `dot` writes it for Graphviz; `svg` draws it
//! itself, with `layout`, a layered drawing of its own, so no Graphviz is needed.

pub mod build;
pub mod dot;
pub mod layout;
mod style;
pub mod svg;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::control::proto::{Reply, Request};
use crate::ctl::client::Client;
use crate::model::links::Links;
use crate::model::{Config, ConfigSource, Severity};

use build::Graph;

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Dot,
    Svg,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "dot" | "gv" => Some(Format::Dot),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }
}

/// Where the jobs come from.
pub enum Source<'a> {
    /// The daemon on this control socket.
    Daemon(&'a Path),
    /// These job dirs or files, read offline.
    Offline(&'a [PathBuf]),
}

/// The jobs' links.
pub fn load(source: &Source<'_>) -> Result<Vec<Links>, String> {
    match source {
        Source::Offline(paths) => {
            let sources: Vec<ConfigSource> = paths.iter().map(|path| ConfigSource::from_path(path)).collect();
            let config = Config::load(&sources);
            let errors = config.count(Severity::Error);
            if errors > 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "uprisectl: graph: {errors} error{} in the job files (see uprisectl check); their jobs are left out",
                    if errors == 1 { "" } else { "s" }
                );
            }
            Ok(config.jobs.iter().map(Links::of).collect())
        }
        Source::Daemon(socket) => {
            let mut texts = Vec::new();
            let mut client = Client::connect(socket)?;
            client.request(&Request::Graph, |reply| {
                if let Reply::Text { text } = reply {
                    texts.push(text.clone());
                }
            })?;
            texts
                .iter()
                .map(|text| serde_json::from_str(text).map_err(|error| format!("Invalid job from uprise: {error}")))
                .collect()
        }
    }
}

/// The drawing of `jobs` (of the part around `selected`, when any are named) in `format`.
pub fn render(jobs: &[Links], selected: &[String], format: Format) -> Result<String, String> {
    let mut graph = Graph::of_jobs(jobs);
    if !selected.is_empty() {
        graph = graph.around(selected)?;
    }
    Ok(match format {
        Format::Dot => dot::dot(&graph),
        Format::Svg => svg::svg(&graph),
    })
}

/// `graph`: loads, draws, and writes to `output` (else `out`).
pub fn run(
    source: &Source<'_>,
    selected: &[String],
    format: Format,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let jobs = load(source)?;
    let text = render(&jobs, selected, format)?;
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|error| format!("graph: cannot write {}: {error}", path.display()))
        }
        None => out
            .write_all(text.as_bytes())
            .map_err(|error| format!("graph: cannot write: {error}")),
    }
}
