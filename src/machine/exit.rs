//! What a process exit means: failure, respawn or a normal end. Pure: the caller passes the
//! job's settings, the instance's goal and state, and the current time.

use crate::syntax::ast::{ExitItem, RespawnDelay, RespawnLimit};

use super::state::{Goal, State};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn is_success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// Listed in `normal exit`: a status, or a signal.
    pub fn is_listed(self, normal_exit: &[ExitItem]) -> bool {
        normal_exit.iter().any(|item| match (item, self) {
            (ExitItem::Status(listed), ExitStatus::Code(code)) => *listed == code,
            (ExitItem::Signal(listed), ExitStatus::Signal(signal)) => *listed == signal,
            _ => false,
        })
    }
}

/// The verdict on a main process that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MainExit {
    /// uprise was stopping it (`killed`) or is stopping anyway: carry on.
    Expected,
    /// It ended on its own without failing: the instance stops, `RESULT=ok`.
    Finished,
    /// It failed and the job does not respawn: the instance stops, `RESULT=failed`.
    Failed,
    /// It failed (or, for a respawning service, ended) and will be respawned.
    Respawn,
}

/// Upstart's rule: in `killed` or `stopping` an exit is expected. Otherwise, with goal start,
/// a non-zero exit — or any exit of a respawning service — is a failure unless `normal exit`
/// lists it; a failure respawns when the job has `respawn`.
pub fn classify_main_exit(
    state: State,
    goal: Goal,
    status: ExitStatus,
    task: bool,
    respawn: bool,
    normal_exit: &[ExitItem],
) -> MainExit {
    if matches!(state, State::Killed | State::Stopping) || goal == Goal::Stop {
        return MainExit::Expected;
    }
    let failure = (!status.is_success() || (respawn && !task)) && !status.is_listed(normal_exit);
    match (failure, respawn) {
        (false, _) => MainExit::Finished,
        (true, true) => MainExit::Respawn,
        (true, false) => MainExit::Failed,
    }
}

/// Counts respawns in a window, as Upstart's `respawn limit COUNT INTERVAL`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RespawnWindow {
    /// Start of the current window, in seconds of the daemon's monotonic clock.
    pub started: Option<u64>,
    pub count: u32,
}

impl RespawnWindow {
    /// Records a respawn at `now`; false when that is one too many for the limit.
    pub fn allow(&mut self, limit: RespawnLimit, now: u64) -> bool {
        let RespawnLimit::Limit { count, interval_secs } = limit else {
            return true;
        };
        if count == 0 || interval_secs == 0 {
            return true;
        }
        match self.started {
            Some(started) if now < started + u64::from(interval_secs) => {
                self.count += 1;
                self.count <= count
            }
            _ => {
                self.started = Some(now);
                self.count = 1;
                true
            }
        }
    }
}

/// How long a run must last for the respawn back-off to start over: the respawn limit's
/// interval, or 10 seconds without one (Upstart's default limit is 10 respawns in 5 s).
pub fn settled_after(limit: RespawnLimit) -> std::time::Duration {
    match limit {
        RespawnLimit::Limit { interval_secs, .. } if interval_secs > 0 => {
            std::time::Duration::from_secs(u64::from(interval_secs))
        }
        _ => std::time::Duration::from_secs(10),
    }
}

/// The count of respawns in a row once this one is counted: one more than `previous`, or 1
/// when the run that just ended lasted at least [`settled_after`] (`up_for`: how long it
/// was `running`; `None` when it never got there). A crash loop whose runs reach `running`
/// and die a second later still backs off: only a run that stayed up starts the count over.
pub fn respawn_streak(previous: u32, up_for: Option<std::time::Duration>, limit: RespawnLimit) -> u32 {
    match up_for {
        Some(up_for) if up_for >= settled_after(limit) => 1,
        _ => previous.saturating_add(1),
    }
}

/// The wait before respawn number `streak` (1 for the first): the initial delay doubled for
/// each consecutive respawn, capped at `max`, plus `random % jitter` (the caller passes any
/// random number). In milliseconds.
pub fn backoff_millis(delay: RespawnDelay, streak: u32, random: u64) -> u64 {
    let doublings = streak.saturating_sub(1).min(32);
    let mut millis = delay.initial.millis.saturating_mul(1u64 << doublings);
    if let Some(max) = delay.max {
        millis = millis.min(max.millis);
    }
    match delay.jitter {
        Some(jitter) if jitter.millis > 0 => millis.saturating_add(random % jitter.millis),
        _ => millis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExitStatus::*;
    use MainExit::*;

    #[test]
    fn the_streak_starts_over_only_after_a_run_that_stayed_up() {
        use std::time::Duration;
        let limit = RespawnLimit::Limit {
            count: 5,
            interval_secs: 30,
        };
        assert_eq!(respawn_streak(0, None, limit), 1);
        assert_eq!(respawn_streak(3, None, limit), 4);
        assert_eq!(respawn_streak(3, Some(Duration::from_secs(1)), limit), 4);
        assert_eq!(respawn_streak(3, Some(Duration::from_secs(29)), limit), 4);
        assert_eq!(respawn_streak(3, Some(Duration::from_secs(30)), limit), 1);
        assert_eq!(
            respawn_streak(3, Some(Duration::from_secs(9)), RespawnLimit::Unlimited),
            4
        );
        assert_eq!(
            respawn_streak(3, Some(Duration::from_secs(10)), RespawnLimit::Unlimited),
            1
        );
    }

    #[test]
    fn exits_while_stopping_are_expected() {
        for state in [State::Killed, State::Stopping] {
            assert_eq!(
                classify_main_exit(state, Goal::Start, Code(1), false, true, &[]),
                Expected
            );
        }
        assert_eq!(
            classify_main_exit(State::Running, Goal::Stop, Code(1), false, false, &[]),
            Expected
        );
    }

    #[test]
    fn upstart_failure_rules() {
        let run = |status, task, respawn, normal: &[ExitItem]| {
            classify_main_exit(State::Running, Goal::Start, status, task, respawn, normal)
        };
        assert_eq!(run(Code(0), false, false, &[]), Finished);
        assert_eq!(run(Code(1), false, false, &[]), Failed);
        assert_eq!(run(Signal(15), false, false, &[]), Failed);
        // A respawning service that exits 0 is respawned; a respawning task is done.
        assert_eq!(run(Code(0), false, true, &[]), Respawn);
        assert_eq!(run(Code(0), true, true, &[]), Finished);
        assert_eq!(run(Code(3), true, true, &[]), Respawn);
        // `normal exit` exempts statuses and signals.
        assert_eq!(run(Code(2), false, false, &[ExitItem::Status(2)]), Finished);
        assert_eq!(run(Signal(15), false, true, &[ExitItem::Signal(15)]), Finished);
        assert_eq!(run(Code(15), false, false, &[ExitItem::Signal(15)]), Failed);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_plus_jitter() {
        use crate::syntax::ast::Seconds;
        let delay = RespawnDelay {
            initial: Seconds { millis: 1000 },
            max: Some(Seconds { millis: 5000 }),
            jitter: None,
        };
        let waits: Vec<u64> = (1..=5).map(|streak| backoff_millis(delay, streak, 0)).collect();
        assert_eq!(waits, [1000, 2000, 4000, 5000, 5000]);
        let jittery = RespawnDelay {
            jitter: Some(Seconds { millis: 300 }),
            ..delay
        };
        assert_eq!(backoff_millis(jittery, 1, 1234), 1000 + 1234 % 300);
        let unbounded = RespawnDelay { max: None, ..delay };
        // Doublings stop at 2^32; without a maximum the delay is that large, not an overflow.
        assert_eq!(backoff_millis(unbounded, 100, 0), 1000u64 << 32);
    }

    #[test]
    fn respawn_limit_counts_within_the_window() {
        let limit = RespawnLimit::Limit {
            count: 2,
            interval_secs: 5,
        };
        let mut window = RespawnWindow::default();
        assert!(window.allow(limit, 100));
        assert!(window.allow(limit, 101));
        assert!(!window.allow(limit, 102));
        // A new window after the interval.
        let mut window = RespawnWindow::default();
        assert!(window.allow(limit, 100));
        assert!(window.allow(limit, 104));
        assert!(window.allow(limit, 106));
        assert!(RespawnWindow::default().allow(RespawnLimit::Unlimited, 0));
        let mut unlimited_by_zero = RespawnWindow::default();
        for now in 0..100 {
            assert!(unlimited_by_zero.allow(
                RespawnLimit::Limit {
                    count: 0,
                    interval_secs: 5
                },
                now
            ));
        }
    }
}
