//! What `uprisectl timers` and `status -v` say about the timers.

use std::time::Duration;

use jiff::Timestamp;

use crate::control::proto::TimerStatus;
use crate::machine::Goal;
use crate::model::job::render_temporal;

use super::super::daemon::Daemon;
use super::super::deadlines::Deadline;
use super::super::jobs::ClassId;
use super::{TimerId, has_timers, operand, show_time, signed, until};

impl Daemon {
    /// Every armed timer (of one class, or of all), soonest first, as `uprisectl timers`
    /// shows them.
    pub(in crate::runtime) fn timer_statuses(&self, only: Option<ClassId>) -> Vec<TimerStatus> {
        let now = self.host.now();
        let wall_now = self.host.wall_now();
        let mut rows: Vec<(Duration, TimerStatus)> = Vec::new();
        let armed: Vec<(Timestamp, TimerId)> = match only {
            Some(class) => self
                .timers
                .wall
                .of_class(class)
                .map(|(timer, due)| (due, timer))
                .collect(),
            None => self.timers.wall.iter().collect(),
        };
        for (due, timer) in armed {
            let left = until(due, wall_now);
            rows.extend(
                self.timer_status(timer, None, due, left, "schedule")
                    .map(|row| (left, row)),
            );
        }
        let classes: Vec<ClassId> = match only {
            Some(class) => vec![class],
            None => self.timers.deadlines.keys().copied().collect(),
        };
        for class in classes {
            for id in self.timers.deadlines.get(&class).into_iter().flatten() {
                let left = id.at.saturating_duration_since(now);
                let at = wall_now + signed(left);
                let row = match self.deadlines.get(*id) {
                    Some(Deadline::Every { timer, .. }) => self.timer_status(*timer, None, at, left, "schedule"),
                    Some(Deadline::Fire { target, jittered, .. }) => {
                        let instance = target.instance.as_ref().map(|(name, _)| name.clone());
                        let kind = if *jittered { "jitter" } else { "after" };
                        self.timer_status(target.timer, instance, at, left, kind)
                    }
                    _ => None,
                };
                rows.extend(row.map(|row| (left, row)));
            }
        }
        rows.sort_by(|(a, left), (b, right)| a.cmp(b).then_with(|| left.job.cmp(&right.job)));
        rows.into_iter().map(|(_, row)| row).collect()
    }

    fn timer_status(
        &self,
        timer: TimerId,
        instance: Option<String>,
        at: Timestamp,
        left: Duration,
        kind: &str,
    ) -> Option<TimerStatus> {
        let class = self.classes.get(timer.class)?;
        let temporal = operand(&class.job, timer.side, timer.index)?;
        let zone = self.shown_zone(timer, &class.job, &temporal);
        Some(TimerStatus {
            job: class.job.name.clone(),
            on: timer.side.keyword().to_string(),
            operand: render_temporal(&temporal),
            instance,
            next: show_time(at, &zone),
            left_ms: left.as_millis() as u64,
            kind: kind.to_string(),
            last: self.timers.fired.get(&timer).map(|fired| show_time(*fired, &zone)),
            result: self.run_result(timer.class),
        })
    }

    /// How a class's last run ended: `running` while an instance is started, else `ok` or
    /// `failed: …` from its last `stopped`.
    fn run_result(&self, class_id: ClassId) -> Option<String> {
        let class = self.classes.get(class_id)?;
        if class.instances.values().any(|instance| instance.goal == Goal::Start) {
            return Some("running".to_string());
        }
        let (_, result) = class.last_result.as_deref()?;
        if result.starts_with("RESULT=ok") {
            return Some("ok".to_string());
        }
        let why = result.split_once("; ").map_or(result.as_str(), |(_, why)| why);
        Some(format!("failed: {why}"))
    }

    /// `status -v`'s lines on a class's timers (those of the class, and those an instance's
    /// `stop on` armed, for `instance` or for all when `None`): when each fires next.
    pub(in crate::runtime) fn timer_details(&self, class_id: ClassId, instance: Option<&str>) -> Vec<String> {
        if !self.classes.get(class_id).is_some_and(|class| has_timers(&class.job)) {
            return Vec::new();
        }
        self.timer_statuses(Some(class_id))
            .into_iter()
            .filter(|timer| instance.is_none() || timer.instance.is_none() || timer.instance.as_deref() == instance)
            .map(|timer| {
                let left = crate::model::job::render_duration(crate::syntax::ast::Seconds {
                    millis: if timer.left_ms >= 1000 {
                        timer.left_ms / 1000 * 1000
                    } else {
                        timer.left_ms
                    },
                });
                let whose = timer.instance.map(|name| format!(" ({name})")).unwrap_or_default();
                let held = if timer.kind == "jitter" {
                    ", held back by jitter"
                } else {
                    ""
                };
                let mut line = format!(
                    "timer{whose}: {} {} fires at {} (in {left}{held})",
                    timer.on, timer.operand, timer.next
                );
                if let Some(last) = timer.last {
                    line.push_str(&format!("; last fired for {last}"));
                }
                line
            })
            .collect()
    }
}
