//! The daemon side of `uprisectl graph`: each configured job's links (`model::links::Links`),
//! as JSON, for the client to draw. Open to whoever may read `show-config`: the links say no
//! more than `show-config` and `status -v` do (no command, script, environment or Lua code).

use crate::model::links::Links;

use super::daemon::Daemon;

impl Daemon {
    /// `graph`: one JSON object per job as configured now, sorted by name.
    pub fn request_graph(&self) -> Vec<String> {
        self.configured_jobs()
            .into_iter()
            .filter_map(|job| serde_json::to_string(&Links::of(job)).ok())
            .collect()
    }
}
