//! `Links`: what ties a job to events and to the other jobs, and nothing else: its `start on`,
//! `stop on` and `emits`, and what admits its starts (`gate`, `uses`, `requires`).
//!
//! It is what `uprisectl graph` draws, read offline from the jobs the loader makes, or from the
//! daemon's `graph` request, which answers with one job's `Links` as JSON per reply. It leaves
//! out what a job's links do not need and what only the daemon's owner should read: commands,
//! scripts, the environment, and the code of a Lua gate (only that there is one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Job;
use crate::model::job::Requirement;
use crate::syntax::ast::{Amount, EventExpr, GateExpr};

/// One job's links.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Links {
    pub name: String,
    /// A task runs to its end; a service stays up.
    #[serde(default)]
    pub task: bool,
    #[serde(default)]
    pub start_on: Option<EventExpr>,
    #[serde(default)]
    pub stop_on: Option<EventExpr>,
    #[serde(default)]
    pub emits: Vec<String>,
    /// The `gate` condition.
    #[serde(default)]
    pub gate: Option<GateExpr>,
    /// Whether it has a `gate lua` chunk.
    #[serde(default)]
    pub gate_lua: bool,
    #[serde(default)]
    pub uses: BTreeMap<String, Amount>,
    #[serde(default)]
    pub requires: Vec<Requirement>,
}

impl Links {
    pub fn of(job: &Job) -> Links {
        Links {
            name: job.name.clone(),
            task: job.task,
            start_on: job.start_on.clone(),
            stop_on: job.stop_on.clone(),
            emits: job.lifecycle.emits.clone(),
            gate: job.ext.gate.condition.clone(),
            gate_lua: job.ext.gate.lua.is_some(),
            uses: job.ext.uses.clone(),
            requires: job.ext.requires.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Config;

    #[test]
    fn links_keep_the_events_and_admission_and_travel_as_json() {
        let text = "start on started db and every 1h\nstop on stopping db\nemits ready\n\
                    gate load1 < 2\ngate script lua\n  return true\nend script\nuses cpu 0.5\n\
                    requires file /etc/x\nenv SECRET=1\nexec /bin/true\n";
        let config = Config::from_text("web", "web.conf", text);
        assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
        let links = Links::of(&config.jobs[0]);
        assert_eq!(links.emits, ["ready"]);
        assert!(links.gate.is_some() && links.gate_lua);
        assert_eq!(links.uses.len(), 1);
        assert_eq!(links.requires.len(), 1);
        let json = serde_json::to_string(&links).unwrap();
        assert!(!json.contains("SECRET") && !json.contains("return true"), "{json}");
        let back: Links = serde_json::from_str(&json).unwrap();
        assert_eq!(back, links);
    }
}
