//! The `waiting` request: what a blocking `emit`, `start`, `stop` or `restart` waits for, in
//! words, for `uprisectl`'s status line on a terminal.
//!
//! For an event, each live event of that name and what holds it: a `start on` or `stop on`
//! whose leaf took it (`event A held by combo (start on A and (B or C))`), or an instance it
//! started or stopped that has not reached its goal (`event A held by web start/pre-start,
//! process 1234: waiting for its pre-start process to end`). For an instance, its status line
//! and why it is where it is, from what `status -v` computes (a queued start's reasons, its
//! own `starting` or `stopping` event and what holds that, readiness, the respawn back-off).
//!
//! The answer is read from the tables and bounded: at most [`MAX_LINES`] lines of at most
//! [`MAX_CHARS`] characters, from at most [`MAX_EVENTS`] events of one name. It names jobs,
//! instances, events and expressions, as `status -v` and `show-config` do, and never an
//! event's variables.

use crate::control::proto::status_line;
use crate::machine::EventId;
use crate::model::job::render_expr;
use crate::syntax::ast::EventExpr;

use super::daemon::{Daemon, Key};
use super::events::Progress;
use super::jobs::{Blocked, ClassId};

/// The most lines one answer holds.
pub(super) const MAX_LINES: usize = 8;
/// The longest line, in characters; a longer one is cut, with `…`.
pub(super) const MAX_CHARS: usize = 200;
/// The most live events of one name looked at.
pub(super) const MAX_EVENTS: usize = 4;

impl Daemon {
    /// The `waiting` request: the lines for `event`, or for the instance `job`, `env` and
    /// `instance` address (as `status` does). Exactly one of `job` and `event` is given.
    pub(super) fn request_waiting(
        &self,
        job: Option<&str>,
        env: &[String],
        instance: Option<&str>,
        event: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        match (job, event) {
            (Some(job), None) => {
                let (key, _) = self.addressed(job, env, instance)?;
                self.instance_waits(&key, true, &mut lines);
            }
            (None, Some(name)) => {
                let ids: Vec<EventId> = self
                    .events
                    .iter()
                    .filter(|(_, event)| event.name == name && event.progress != Progress::Finished)
                    .map(|(id, _)| *id)
                    .take(MAX_EVENTS)
                    .collect();
                for id in ids {
                    self.event_waits(id, true, &mut lines);
                }
            }
            _ => return Err("waiting needs exactly one of job and event".into()),
        }
        lines.truncate(MAX_LINES);
        for line in &mut lines {
            cut(line, MAX_CHARS);
        }
        Ok(lines)
    }

    /// What holds event `id`, a line each; with `deeper`, an instance that holds it also says
    /// what holds its own event.
    fn event_waits(&self, id: EventId, deeper: bool, lines: &mut Vec<String>) {
        let Some(event) = self.events.get(&id) else { return };
        let name = &event.name;
        match event.progress {
            Progress::Finished => return,
            Progress::Pending => {
                let ahead = self.queue.iter().take_while(|queued| **queued != id).count();
                lines.push(format!(
                    "event {name} not handled yet, {ahead} ahead of it in the queue"
                ));
                return;
            }
            Progress::Handling => {}
        }
        let found = lines.len();
        let start_classes = self.start_index.get(name).map(Vec::as_slice).unwrap_or_default();
        let stop_classes = self.stop_index.get(name).map(Vec::as_slice).unwrap_or_default();
        // `start on` matchers whose leaves took it.
        for class_id in start_classes {
            if lines.len() >= MAX_LINES {
                return;
            }
            let Some(class) = self.classes.get(*class_id) else {
                continue;
            };
            if let (Some(matcher), Some(expr)) = (&class.start_on, &class.job.start_on)
                && matcher.held().contains(&id)
            {
                lines.push(format!(
                    "event {name} held by {} (start on {})",
                    class.job.name,
                    bare(expr)
                ));
            }
        }
        // The `stop on` matchers of instances whose leaves took it.
        for class_id in stop_classes {
            let Some(class) = self.classes.get(*class_id) else {
                continue;
            };
            let Some(expr) = &class.job.stop_on else { continue };
            for instance in class.instances.values() {
                if lines.len() >= MAX_LINES {
                    return;
                }
                if instance
                    .stop_on
                    .as_ref()
                    .is_some_and(|matcher| matcher.held().contains(&id))
                {
                    let shown = Self::display_name(&class.job, &instance.name);
                    lines.push(format!("event {name} held by {shown} (stop on {})", bare(expr)));
                }
            }
        }
        // Instances it started or stopped, until they reach their goal.
        let mut classes: Vec<ClassId> = start_classes.iter().chain(stop_classes).copied().collect();
        classes.sort_unstable();
        classes.dedup();
        for class_id in classes {
            let Some(class) = self.classes.get(class_id) else {
                continue;
            };
            for instance in class.instances.values() {
                if lines.len() >= MAX_LINES {
                    return;
                }
                if instance.blocking.contains(&Blocked::Event(id)) {
                    let mut own = Vec::new();
                    self.instance_waits(&(class_id, instance.name.clone()), deeper, &mut own);
                    let mut own = own.into_iter();
                    if let Some(first) = own.next() {
                        lines.push(format!("event {name} held by {first}"));
                    }
                    lines.extend(own);
                }
            }
        }
        if lines.len() == found {
            lines.push(match event.blockers {
                0 => format!("event {name} finishing"),
                holds => format!("event {name} held {holds} time(s)"),
            });
        }
    }

    /// An instance's status line and why it is where it is: one line, then, with `deeper`,
    /// what holds its own `starting` or `stopping` event.
    fn instance_waits(&self, key: &Key, deeper: bool, lines: &mut Vec<String>) {
        let mut line = status_line(&self.instance_status(key)).replace("\n\t", ", ");
        let Some(instance) = self.instance(key) else {
            lines.push(line);
            return;
        };
        let mut reasons = Vec::new();
        if let Some((_, queued)) = self.queue_status(key) {
            reasons.extend(queued);
        }
        let blocker = instance
            .blocker
            .and_then(|id| self.events.get(&id).map(|event| (id, event)));
        if let Some((_, event)) = blocker {
            reasons.push(format!("waiting for its {} event to finish", event.name));
        }
        let state = instance.state.name();
        if let Some((role, _)) = instance.pids.iter().find(|(role, _)| role.to_string() == state) {
            reasons.push(format!("waiting for its {role} process to end"));
        }
        if let Some(awaiting) = &instance.awaiting {
            reasons.push(super::status::awaiting_line(awaiting));
        }
        if state == "killed" {
            reasons.push("waiting for the main process to end".to_string());
        }
        if let Some(at) = self.respawn_at(instance) {
            let left = at.saturating_duration_since(self.host.now()).as_secs();
            reasons.push(format!("respawning in {left}s"));
        }
        if let Some(failure) = &instance.rare().failed {
            reasons.push(format!("failed: process {}", failure.process));
        }
        if !reasons.is_empty() {
            line.push_str(": ");
            line.push_str(&reasons.join(", "));
        }
        lines.push(line);
        if deeper && let Some((id, _)) = blocker {
            self.event_waits(id, false, lines);
        }
    }
}

/// An expression as `show-config` writes it, without the brackets around the whole.
fn bare(expr: &EventExpr) -> String {
    let text = render_expr(expr);
    match expr {
        EventExpr::And { .. } | EventExpr::Or { .. } => text[1..text.len() - 1].to_string(),
        EventExpr::Event(_) | EventExpr::Temporal { .. } => text,
    }
}

/// Cuts `line` to at most `max` characters, the last one `…` when it was longer.
fn cut(line: &mut String, max: usize) {
    if let Some((at, _)) = line.char_indices().nth(max) {
        let end = line[..at].char_indices().next_back().map_or(0, |(end, _)| end);
        line.truncate(end);
        line.push('…');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::core_tests::Core;
    use super::{MAX_LINES, cut};
    use crate::model::load::Pool;

    fn for_event(core: &Core, name: &str) -> Vec<String> {
        core.daemon.request_waiting(None, &[], None, Some(name)).unwrap()
    }

    fn for_instance(core: &Core, job: &str, env: &[&str]) -> Vec<String> {
        let env: Vec<String> = env.iter().map(|entry| entry.to_string()).collect();
        core.daemon.request_waiting(Some(job), &env, None, None).unwrap()
    }

    #[test]
    fn an_event_held_by_a_start_on_then_by_the_instance_it_started() {
        let mut core = Core::new(&[("combo", "start on A and (B or C)\npre-start exec warm\nexec serve")]);
        core.emit("A");
        assert_eq!(
            for_event(&core, "A"),
            ["event A held by combo (start on A and (B or C))"]
        );
        // No event of another name is live.
        assert!(for_event(&core, "B").is_empty());
        core.emit("B");
        let pre_start = core.pid("combo", "pre-start");
        assert_eq!(
            for_event(&core, "A"),
            [format!(
                "event A held by combo start/pre-start, process {pre_start}: waiting for its pre-start process to end"
            )]
        );
        core.exit(pre_start, 0);
        assert_eq!(
            core.status("combo"),
            format!("combo start/running, process {}", pre_start + 1)
        );
        assert!(for_event(&core, "A").is_empty());
    }

    #[test]
    fn a_start_queued_on_a_pool_says_which() {
        let mut core = Core::new(&[("batch", "task\ninstance $N\nuses cpu 1\nexec work")]);
        let declared = BTreeMap::from([(
            "cpu".to_string(),
            Pool {
                max: 1.0,
                declared_in: Some("init.conf".into()),
            },
        )]);
        core.daemon.declare_pools(&declared);
        for n in ["N=0", "N=1"] {
            core.daemon
                .request_start(1, "batch", vec![n.into()], None, true, false)
                .unwrap();
            core.daemon.settle();
        }
        assert_eq!(
            for_instance(&core, "batch", &["N=0"]),
            ["batch (0) start/running, process 100"]
        );
        assert_eq!(
            for_instance(&core, "batch", &["N=1"]),
            ["batch (1) start/queued: waiting for pool cpu: needs 1, 1 of 1 in use, 0 ahead in the queue"]
        );
    }

    #[test]
    fn an_instance_waiting_for_its_starting_event_says_what_holds_that() {
        let mut core = Core::new(&[
            ("web", "exec serve"),
            ("db", "start on starting web\npre-start exec warm\nexec db"),
        ]);
        core.daemon
            .request_start(1, "web", Vec::new(), None, true, false)
            .unwrap();
        core.daemon.settle();
        let pre_start = core.pid("db", "pre-start");
        assert_eq!(
            for_instance(&core, "web", &[]),
            [
                "web start/starting: waiting for its starting event to finish".to_string(),
                format!(
                    "event starting held by db start/pre-start, process {pre_start}: waiting for its pre-start process to end"
                ),
            ]
        );
    }

    #[test]
    fn the_answer_is_bounded_and_asks_for_one_thing() {
        let mut core = Core::new(&[("worker", "instance $N\nstop on A and B\nexec work")]);
        for n in 0..20 {
            core.daemon
                .request_start(1, "worker", vec![format!("N={n}")], None, false, false)
                .unwrap();
            core.daemon.settle();
        }
        core.emit("A");
        let lines = for_event(&core, "A");
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], "event A held by worker (0) (stop on A and B)");
        let neither = core.daemon.request_waiting(None, &[], None, None);
        assert_eq!(neither, Err("waiting needs exactly one of job and event".to_string()));
        let unknown = core.daemon.request_waiting(Some("nope"), &[], None, None);
        assert_eq!(unknown, Err("Unknown job: nope".to_string()));
    }

    #[test]
    fn long_lines_are_cut_with_an_ellipsis() {
        let mut line = "abcdef".to_string();
        cut(&mut line, 6);
        assert_eq!(line, "abcdef");
        cut(&mut line, 4);
        assert_eq!(line, "abc…");
        let mut wide = "ééééé".to_string();
        cut(&mut wide, 3);
        assert_eq!(wide, "éé…");
    }
}
