//! From jobs' links to a graph of jobs, events, timers and admission conditions, and the part
//! of it around some jobs.
//!
//! - A job is a node; so is each event a `start on` or `stop on` names, one per event *as
//!   written*, values included (`started db`, `runlevel [2345]`), so that the values can be read
//!   on the node and no edge needs a label.
//! - An event points to the jobs whose `start on` names it (`Start`) and whose `stop on` does
//!   (`Stop`).
//! - A job points to the events it emits: every event node its `emits` stanza matches by name
//!   (the stanza's names may be globs: `*`, `?`), a node of its own for a name nobody waits
//!   for; and its own `starting`, `started`, `stopping` and `stopped` events, but only those
//!   some `start on` or `stop on` names with the job's name as the first value (or `JOB=`):
//!   every job emits all four, and drawing them all would bury the links that matter.
//! - A temporal operand is a node of its own for its job (two jobs' `every 1h` are two
//!   timers); `15m after startup` is `startup` pointing to a `15m after` node.
//! - A job's admission conditions (`gate`, `gate lua`, `uses`, `requires`) are one node,
//!   pointing to the job (`Admits`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::job::{render_duration, render_expr, render_temporal};
use crate::model::links::Links;
use crate::syntax::ast::{
    Amount, CompareOp, EventArg, EventExpr, EventMatch, GateExpr, Metric, PathKind, PressureResource, Temporal,
};

/// The events every job emits about itself, whose first value names it.
const JOB_EVENTS: [&str; 4] = ["starting", "started", "stopping", "stopped"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Job,
    Event,
    Timer,
    Admission,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// From an event or timer to a job whose `start on` names it.
    Start,
    /// From an event or timer to a job whose `stop on` names it.
    Stop,
    /// From a job to an event it emits.
    Emits,
    /// From a job's admission conditions to the job.
    Admits,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique in the graph: `job:web`, `event:started db`, `timer:web:every 1h`, `admit:web`.
    pub id: String,
    pub kind: NodeKind,
    /// The lines of its label.
    pub label: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    /// The node with this id, made if it is new.
    fn node(&mut self, id: String, kind: NodeKind, label: Vec<String>) -> usize {
        if let Some(index) = self.nodes.iter().position(|node| node.id == id) {
            return index;
        }
        self.nodes.push(Node { id, kind, label });
        self.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize, kind: EdgeKind) {
        let edge = Edge { from, to, kind };
        if !self.edges.contains(&edge) {
            self.edges.push(edge);
        }
    }

    /// The graph of every job, in the order of their names.
    pub fn of_jobs(jobs: &[Links]) -> Graph {
        let mut jobs: Vec<&Links> = jobs.iter().collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut graph = Graph::default();
        let mut job_nodes = BTreeMap::new();
        for job in &jobs {
            let mut label = vec![job.name.clone()];
            if job.task {
                label.push("(task)".to_string());
            }
            job_nodes.insert(
                job.name.as_str(),
                graph.node(format!("job:{}", job.name), NodeKind::Job, label),
            );
        }
        // Events by name, with the event each node stands for.
        let mut events: Vec<(usize, EventMatch)> = Vec::new();
        for job in &jobs {
            let target = job_nodes[job.name.as_str()];
            for (expr, kind) in [(&job.start_on, EdgeKind::Start), (&job.stop_on, EdgeKind::Stop)] {
                if let Some(expr) = expr {
                    graph.operands(&job.name, expr, target, kind, &mut events);
                }
            }
        }
        for job in &jobs {
            let source = job_nodes[job.name.as_str()];
            for pattern in &job.emits {
                let mut matched = false;
                for (node, event) in &events {
                    if glob(pattern, &event.name) {
                        graph.edge(source, *node, EdgeKind::Emits);
                        matched = true;
                    }
                }
                if !matched {
                    let node = graph.node(format!("event:{pattern}"), NodeKind::Event, vec![pattern.clone()]);
                    graph.edge(source, node, EdgeKind::Emits);
                }
            }
        }
        for (node, event) in &events {
            if let Some(job) = job_named(event)
                && let Some(source) = job_nodes.get(job)
            {
                graph.edge(*source, *node, EdgeKind::Emits);
            }
        }
        for job in &jobs {
            let lines = admission(job);
            if !lines.is_empty() {
                let node = graph.node(format!("admit:{}", job.name), NodeKind::Admission, lines);
                graph.edge(node, job_nodes[job.name.as_str()], EdgeKind::Admits);
            }
        }
        graph
    }

    /// Adds the operands of one `start on` or `stop on` expression of `job`, each pointing to
    /// `target`.
    fn operands(
        &mut self,
        job: &str,
        expr: &EventExpr,
        target: usize,
        kind: EdgeKind,
        events: &mut Vec<(usize, EventMatch)>,
    ) {
        match expr {
            EventExpr::And { left, right } | EventExpr::Or { left, right } => {
                self.operands(job, left, target, kind, events);
                self.operands(job, right, target, kind, events);
            }
            EventExpr::Event(event) => {
                let node = self.event(event, events);
                self.edge(node, target, kind);
            }
            EventExpr::Temporal {
                timer: Temporal::After { delay, event },
                ..
            } => {
                let label = format!("{} after", render_duration(*delay));
                let timer = self.node(
                    format!(
                        "timer:{job}:{}",
                        render_temporal(&Temporal::After {
                            delay: *delay,
                            event: event.clone()
                        })
                    ),
                    NodeKind::Timer,
                    vec![label],
                );
                let node = self.event(event, events);
                self.edge(node, timer, kind);
                self.edge(timer, target, kind);
            }
            EventExpr::Temporal { timer, .. } => {
                let text = render_temporal(timer);
                let node = self.node(format!("timer:{job}:{text}"), NodeKind::Timer, vec![text]);
                self.edge(node, target, kind);
            }
        }
    }

    /// The node of an event as written: its name and values on the first line of its label,
    /// each `KEY=VALUE` or `KEY!=VALUE` on a line of its own.
    fn event(&mut self, event: &EventMatch, events: &mut Vec<(usize, EventMatch)>) -> usize {
        let text = render_expr(&EventExpr::Event(event.clone()));
        let mut label = vec![event.name.clone()];
        for arg in &event.args {
            match arg {
                EventArg::Positional { value } => {
                    label[0].push(' ');
                    label[0].push_str(value);
                }
                EventArg::Equal { key, value } => label.push(format!("{key}={value}")),
                EventArg::NotEqual { key, value } => label.push(format!("{key}!={value}")),
            }
        }
        let node = self.node(format!("event:{text}"), NodeKind::Event, label);
        if !events.iter().any(|(known, _)| *known == node) {
            events.push((node, event.clone()));
        }
        node
    }

    /// The part of the graph that leads to the named jobs and that follows from them: every
    /// node with a path to one of them, and every node with a path from one of them, with the
    /// edges between those nodes. An unknown name is an error.
    pub fn around(&self, names: &[String]) -> Result<Graph, String> {
        let mut seeds = Vec::new();
        for name in names {
            let id = format!("job:{name}");
            match self.nodes.iter().position(|node| node.id == id) {
                Some(index) => seeds.push(index),
                None => return Err(format!("Unknown job: {name}")),
            }
        }
        let forward = self.reach(&seeds, |edge| (edge.from, edge.to));
        let backward = self.reach(&seeds, |edge| (edge.to, edge.from));
        let keep: BTreeSet<usize> = forward.union(&backward).copied().collect();
        let mut renumber = BTreeMap::new();
        let mut graph = Graph::default();
        for &index in &keep {
            renumber.insert(index, graph.nodes.len());
            graph.nodes.push(self.nodes[index].clone());
        }
        for edge in &self.edges {
            if let (Some(&from), Some(&to)) = (renumber.get(&edge.from), renumber.get(&edge.to)) {
                graph.edges.push(Edge {
                    from,
                    to,
                    kind: edge.kind,
                });
            }
        }
        Ok(graph)
    }

    /// Every node reachable from `seeds` along the edges, each edge read as `(from, to)` by `ends`.
    fn reach(&self, seeds: &[usize], ends: impl Fn(&Edge) -> (usize, usize)) -> BTreeSet<usize> {
        let mut seen: BTreeSet<usize> = seeds.iter().copied().collect();
        let mut queue: VecDeque<usize> = seeds.iter().copied().collect();
        while let Some(node) = queue.pop_front() {
            for edge in &self.edges {
                let (from, to) = ends(edge);
                if from == node && seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        seen
    }
}

/// The job a `starting`/`started`/`stopping`/`stopped` event names: its first value, or `JOB=`.
fn job_named(event: &EventMatch) -> Option<&str> {
    if !JOB_EVENTS.contains(&event.name.as_str()) {
        return None;
    }
    event.args.iter().find_map(|arg| match arg {
        EventArg::Positional { value } => Some(value.as_str()),
        EventArg::Equal { key, value } if key == "JOB" => Some(value.as_str()),
        _ => None,
    })
}

/// fnmatch's `*` and `?`, enough for `emits` names such as `net-device-*`.
fn glob(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
            Some(('?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
            Some((letter, rest)) => name.first() == Some(letter) && matches(rest, &name[1..]),
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches(&pattern, &name)
}

/// One line per admission condition of a job.
fn admission(job: &Links) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(gate) = &job.gate {
        lines.push(format!("gate {}", gate_text(gate, true)));
    }
    if job.gate_lua {
        lines.push("gate lua".to_string());
    }
    for (pool, amount) in &job.uses {
        let amount = match amount {
            Amount::Fixed(value) => value.to_string(),
            Amount::Variable(text) => text.clone(),
        };
        lines.push(format!("uses {pool} {amount}"));
    }
    for requirement in &job.requires {
        let kind = match requirement.kind {
            PathKind::File => "file",
            PathKind::Dir => "dir",
            PathKind::Path => "path",
        };
        lines.push(format!("requires {kind} {}", requirement.path));
    }
    lines
}

/// A gate condition as a job file writes it; nested `and`/`or` in parentheses.
fn gate_text(gate: &GateExpr, top: bool) -> String {
    let joined = |terms: &[GateExpr], word: &str| {
        let text = terms
            .iter()
            .map(|term| gate_text(term, false))
            .collect::<Vec<_>>()
            .join(word);
        if top { text } else { format!("({text})") }
    };
    match gate {
        GateExpr::And { terms } => joined(terms, " and "),
        GateExpr::Or { terms } => joined(terms, " or "),
        GateExpr::Compare { metric, op, value } => {
            let op = match op {
                CompareOp::Lt => "<",
                CompareOp::Le => "<=",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
            };
            let (name, value) = match metric {
                Metric::Load { minutes } => (format!("load{minutes}"), value.to_string()),
                Metric::Pressure { resource, full, window } => {
                    let resource = match resource {
                        PressureResource::Cpu => "cpu",
                        PressureResource::Io => "io",
                        PressureResource::Memory => "memory",
                    };
                    let which = if *full { "full" } else { "some" };
                    (format!("{resource} {which} avg{window}"), format!("{value}%"))
                }
                Metric::Net { interface, tx } => {
                    let direction = if *tx { "tx" } else { "rx" };
                    let name = match interface {
                        Some(interface) => format!("net {interface} {direction}"),
                        None => format!("net {direction}"),
                    };
                    (name, rate(*value))
                }
            };
            format!("{name} {op} {value}")
        }
    }
}

/// Bytes per second in the largest unit that keeps the figure at 1 or more.
fn rate(value: f64) -> String {
    for (size, unit) in [(1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")] {
        if value >= size {
            return format!("{}{unit}", value / size);
        }
    }
    format!("{value}B/s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Config;

    pub(crate) fn links(files: &[(&str, &str)]) -> Vec<Links> {
        files
            .iter()
            .map(|(name, text)| {
                let config = Config::from_text(name, &format!("{name}.conf"), text);
                assert!(config.diagnostics.is_empty(), "{name}: {:?}", config.diagnostics);
                Links::of(&config.jobs[0])
            })
            .collect()
    }

    fn edges(graph: &Graph) -> Vec<String> {
        let mut out: Vec<String> = graph
            .edges
            .iter()
            .map(|edge| {
                format!(
                    "{} -{:?}-> {}",
                    graph.nodes[edge.from].id, edge.kind, graph.nodes[edge.to].id
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn events_timers_and_admission_become_nodes_and_edges() {
        let jobs = links(&[
            ("db", "start on startup\nemits db-ready\nexec db\n"),
            (
                "web",
                "start on started db and every 1h\nstop on stopping db or 5m after idle\n\
                 gate load1 < 2 and net eth0 tx < 10MB/s\nuses cpu 0.5\nrequires file /etc/web\nexec web\n",
            ),
            ("cache", "start on db-ready\nexec cache\n"),
        ]);
        let graph = Graph::of_jobs(&jobs);
        assert_eq!(
            edges(&graph),
            [
                "admit:web -Admits-> job:web",
                "event:db-ready -Start-> job:cache",
                "event:idle -Stop-> timer:web:5m after idle",
                "event:started db -Start-> job:web",
                "event:startup -Start-> job:db",
                "event:stopping db -Stop-> job:web",
                "job:db -Emits-> event:db-ready",
                "job:db -Emits-> event:started db",
                "job:db -Emits-> event:stopping db",
                "timer:web:5m after idle -Stop-> job:web",
                "timer:web:every 1h -Start-> job:web",
            ]
        );
        let admit = graph.nodes.iter().find(|node| node.id == "admit:web").unwrap();
        assert_eq!(
            admit.label,
            [
                "gate load1 < 2 and net eth0 tx < 10MB/s",
                "uses cpu 0.5",
                "requires file /etc/web"
            ]
        );
    }

    #[test]
    fn emits_globs_reach_every_event_of_that_name_and_unused_names_get_a_node() {
        let jobs = links(&[
            ("net", "emits net-device-*\nemits lonely\nexec net\n"),
            (
                "a",
                "start on net-device-up IFACE=lo\nstop on net-device-down IFACE=lo\nexec a\n",
            ),
        ]);
        assert_eq!(
            edges(&Graph::of_jobs(&jobs)),
            [
                "event:net-device-down IFACE=lo -Stop-> job:a",
                "event:net-device-up IFACE=lo -Start-> job:a",
                "job:net -Emits-> event:lonely",
                "job:net -Emits-> event:net-device-down IFACE=lo",
                "job:net -Emits-> event:net-device-up IFACE=lo",
            ]
        );
    }

    #[test]
    fn around_keeps_what_leads_to_and_follows_from_a_job() {
        let jobs = links(&[
            ("a", "start on startup\nexec a\n"),
            ("b", "start on started a\nexec b\n"),
            ("c", "start on started b\nexec c\n"),
            ("other", "start on runlevel\nexec o\n"),
        ]);
        let graph = Graph::of_jobs(&jobs);
        let part = graph.around(&["b".to_string()]).unwrap();
        let ids: Vec<&str> = part.nodes.iter().map(|node| node.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "job:a",
                "job:b",
                "job:c",
                "event:startup",
                "event:started a",
                "event:started b"
            ]
        );
        assert_eq!(part.edges.len(), 5);
        assert_eq!(
            graph.around(&["nope".to_string()]),
            Err("Unknown job: nope".to_string())
        );
    }

    #[test]
    fn globs() {
        assert!(glob("net-*", "net-device-up"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("net", "net-up"));
    }
}
