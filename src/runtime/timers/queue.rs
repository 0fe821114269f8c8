//! The queue of armed clock operands.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::super::jobs::ClassId;
use super::{Side, TimerId};

/// The armed clock operands: by due time, to find the soonest, and by operand, to find a
/// class's (for `status`, and to take them out when it goes) without a scan of all of them.
/// Due times are kept as nanoseconds since the epoch (8 bytes, where a `Timestamp` takes 16):
/// with one entry in each tree per operand, that is a third less per armed timer.
#[derive(Default)]
pub(super) struct WallQueue {
    by_due: BTreeSet<(i64, TimerId)>,
    by_timer: BTreeMap<TimerId, i64>,
}

/// A due time as the queue keeps it; `None` past the year 2262, which no operand is armed for.
fn due_nanos(at: Timestamp) -> Option<i64> {
    i64::try_from(at.as_nanosecond()).ok()
}

fn due_time(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::MAX)
}

impl WallQueue {
    /// Arms `timer` for `due`, in place of any due time it had.
    pub(super) fn insert(&mut self, timer: TimerId, due: Timestamp) {
        let Some(due) = due_nanos(due) else {
            self.remove(timer);
            return;
        };
        if let Some(old) = self.by_timer.insert(timer, due) {
            self.by_due.remove(&(old, timer));
        }
        self.by_due.insert((due, timer));
    }

    pub(super) fn remove(&mut self, timer: TimerId) {
        if let Some(due) = self.by_timer.remove(&timer) {
            self.by_due.remove(&(due, timer));
        }
    }

    /// A class's operands, in order, with their due times.
    pub(super) fn of_class(&self, class: ClassId) -> impl Iterator<Item = (TimerId, Timestamp)> + '_ {
        self.by_timer
            .range(class_range(class))
            .map(|(timer, due)| (*timer, due_time(*due)))
    }

    pub(super) fn remove_class(&mut self, class: ClassId) -> bool {
        let armed: Vec<TimerId> = self.of_class(class).map(|(timer, _)| timer).collect();
        for timer in &armed {
            self.remove(*timer);
        }
        !armed.is_empty()
    }

    pub(super) fn first(&self) -> Option<(Timestamp, TimerId)> {
        self.by_due.first().map(|(due, timer)| (due_time(*due), *timer))
    }

    /// Takes the soonest out if it is due by `now`.
    pub(super) fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, TimerId)> {
        let (due, timer) = self.first().filter(|(due, _)| *due <= now)?;
        self.remove(timer);
        Some((due, timer))
    }

    /// Every armed operand, soonest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Timestamp, TimerId)> + '_ {
        self.by_due.iter().map(|(due, timer)| (due_time(*due), *timer))
    }
}

/// Every operand of a class, as a range of ids.
pub(super) fn class_range(class: ClassId) -> std::ops::RangeInclusive<TimerId> {
    let first = TimerId {
        class,
        side: Side::Start,
        index: 0,
    };
    let last = TimerId {
        class,
        side: Side::Stop,
        index: u16::MAX,
    };
    first..=last
}
