//! The timers across a re-exec: captured into the snapshot, and armed again from it.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::model::job::render_temporal;
use crate::reexec::{FiringSnapshot, OperandSnapshot, TargetSnapshot, TimerSnapshot};
use crate::syntax::ast::Temporal;

use super::super::daemon::Daemon;
use super::super::deadlines::Deadline;
use super::super::jobs::ClassId;
use super::{Side, TimerId, TimerTarget, has_timers, operand, operands};

impl Daemon {
    /// The timers, for a re-exec: the armed clock and interval operands, and the firings
    /// still to go out.
    pub(in crate::runtime) fn capture_timers(&self) -> (Vec<TimerSnapshot>, Vec<FiringSnapshot>) {
        let now = self.host.now();
        let mut timers: HashMap<TimerId, TimerSnapshot> = HashMap::new();
        for (due, timer) in self.timers.wall.iter() {
            if let Some(entry) = self.timer_entry(&mut timers, timer) {
                entry.due = Some(due.to_string());
            }
        }
        let mut firings = Vec::new();
        for id in self.timers.deadlines.values().flatten() {
            let left = id.at.saturating_duration_since(now).as_millis() as u64;
            match self.deadlines.get(*id) {
                Some(Deadline::Every { timer, .. }) => {
                    if let Some(entry) = self.timer_entry(&mut timers, *timer) {
                        entry.in_ms = Some(left);
                    }
                }
                Some(Deadline::Fire {
                    target,
                    scheduled,
                    env,
                    jittered,
                }) => {
                    if let Some(operand) = self.operand_snapshot(target.timer) {
                        firings.push(FiringSnapshot {
                            operand,
                            instance: target.instance.as_ref().map(|(name, _)| name.clone()),
                            in_ms: left,
                            scheduled: scheduled.to_string(),
                            env: env.clone(),
                            jittered: *jittered,
                        });
                    }
                }
                _ => {}
            }
        }
        for (&timer, &fired) in &self.timers.fired {
            if let Some(entry) = self.timer_entry(&mut timers, timer) {
                entry.last_fired = Some(fired.to_string());
            }
        }
        let mut timers: Vec<TimerSnapshot> = timers.into_values().collect();
        timers.sort_by(|a, b| {
            (&a.operand.job, &a.operand.side, a.operand.index).cmp(&(&b.operand.job, &b.operand.side, b.operand.index))
        });
        (timers, firings)
    }

    /// A timer's record in the snapshot being made, begun on first use.
    fn timer_entry<'a>(
        &self,
        timers: &'a mut HashMap<TimerId, TimerSnapshot>,
        timer: TimerId,
    ) -> Option<&'a mut TimerSnapshot> {
        match timers.entry(timer) {
            std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => Some(entry.insert(TimerSnapshot {
                operand: self.operand_snapshot(timer)?,
                ..TimerSnapshot::default()
            })),
        }
    }

    fn operand_snapshot(&self, timer: TimerId) -> Option<OperandSnapshot> {
        let job = &self.classes.get(timer.class)?.job;
        Some(OperandSnapshot {
            job: job.name.clone(),
            side: timer.side.name().to_string(),
            index: timer.index,
            operand: render_temporal(&operand(job, timer.side, timer.index)?),
        })
    }

    /// The operand a snapshot names, if its job is here and still has that operand there.
    fn operand_of_snapshot(&self, snapshot: &OperandSnapshot) -> Option<TimerId> {
        let class = *self.class_by_name.get(&snapshot.job)?;
        let side = Side::from_name(&snapshot.side)?;
        let job = &self.classes.get(class)?.job;
        let temporal = operand(job, side, snapshot.index)?;
        (render_temporal(&temporal) == snapshot.operand).then_some(TimerId {
            class,
            side,
            index: snapshot.index,
        })
    }

    /// A timer's target from a snapshot: the instance (if one) must be here.
    pub(in crate::runtime) fn target_of_snapshot(&self, snapshot: &TargetSnapshot) -> Option<TimerTarget> {
        let timer = self.operand_of_snapshot(&snapshot.operand)?;
        let instance = match &snapshot.instance {
            Some(name) => {
                let instance = self.instance(&(timer.class, name.clone()))?;
                Some((name.clone(), instance.serial))
            }
            None => None,
        };
        Some(TimerTarget { timer, instance })
    }

    pub(in crate::runtime) fn target_snapshot(&self, target: &TimerTarget) -> Option<TargetSnapshot> {
        Some(TargetSnapshot {
            operand: self.operand_snapshot(target.timer)?,
            instance: target.instance.as_ref().map(|(name, _)| name.clone()),
        })
    }

    /// After a re-exec: every class's timers as the old image had them armed. An operand the
    /// snapshot does not name (a class new to this image, a definition that changed, or a
    /// snapshot from before timers) is armed afresh.
    pub(in crate::runtime) fn restore_timers(&mut self, timers: Vec<TimerSnapshot>, firings: Vec<FiringSnapshot>) {
        let with_timers: Vec<ClassId> = self
            .classes
            .iter()
            .filter(|(_, class)| has_timers(&class.job))
            .map(|(id, _)| id)
            .collect();
        let mut saved: HashMap<TimerId, TimerSnapshot> = HashMap::new();
        for timer in timers {
            if let Some(id) = self.operand_of_snapshot(&timer.operand) {
                saved.insert(id, timer);
            }
        }
        let now = self.host.now();
        for class_id in with_timers {
            let fresh = [Side::Start, Side::Stop].into_iter().any(|side| {
                operands(&self.classes.get(class_id).expect("listed").job, side)
                    .iter()
                    .enumerate()
                    .any(|(index, temporal)| {
                        !matches!(temporal, Temporal::After { .. })
                            && !saved.contains_key(&TimerId {
                                class: class_id,
                                side,
                                index: index as u16,
                            })
                    })
            });
            if fresh {
                // Armed as for a job loaded now (with `catch up` looking at its record).
                self.arm_timers(class_id);
                continue;
            }
            self.disarm_timers(class_id);
            let ids: Vec<TimerId> = saved.keys().filter(|timer| timer.class == class_id).copied().collect();
            for timer in ids {
                let entry = &saved[&timer];
                if let Some(fired) = entry.last_fired.as_deref().and_then(|at| at.parse().ok()) {
                    self.timers.fired.insert(timer, fired);
                }
                let temporal = self
                    .classes
                    .get(class_id)
                    .and_then(|class| operand(&class.job, timer.side, timer.index));
                match (temporal, entry.due.as_deref(), entry.in_ms) {
                    (Some(Temporal::Every { interval }), _, Some(left)) => {
                        let period = Duration::from_millis(interval.millis.max(1));
                        self.arm_every(timer, now + Duration::from_millis(left), period, 0);
                    }
                    (Some(Temporal::Calendar(_) | Temporal::Cron { .. }), Some(due), _) => {
                        if let Ok(due) = due.parse::<Timestamp>() {
                            self.timers.wall.insert(timer, due);
                        }
                    }
                    _ => {}
                }
            }
        }
        for firing in firings {
            let target = TargetSnapshot {
                operand: firing.operand,
                instance: firing.instance,
            };
            let (Some(target), Ok(scheduled)) = (self.target_of_snapshot(&target), firing.scheduled.parse()) else {
                continue;
            };
            let class = target.timer.class;
            let deadline = Deadline::Fire {
                target,
                scheduled,
                env: firing.env,
                jittered: firing.jittered,
            };
            self.arm_timer_deadline(class, Duration::from_millis(firing.in_ms), deadline);
        }
        self.set_wall_clock();
    }
}
