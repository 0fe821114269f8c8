//! Timers: the temporal operands of `start on` and `stop on` firing.
//!
//! Each temporal operand of a class is named by a [`TimerId`]: the class, the expression it
//! is in (`start on` or `stop on`), and its place among that expression's temporal operands
//! in tree order (the matcher numbers its leaves the same way). A firing is an event named
//! `timer`, with `UPRISE_JOB`, `UPRISE_TIMER` (the operand) and `UPRISE_SCHEDULED` (the due time,
//! RFC 3339 with its offset), offered to that operand's leaf alone (`events.rs`,
//! `Event::target`): the leaf is matched as by any event, so `start on every day at 03:00
//! and net-up` waits for both, and a firing while the job runs is dropped as any matching
//! event is.
//!
//! - **Calendar and cron** operands are read on the wall clock, in the operand's zone, else
//!   the job's `timezone`, else the daemon's local zone, by the same engine as
//!   `uprisectl next-elapse` (`temporal::Schedule`). They wait in one queue ordered by due
//!   time, and one `CLOCK_REALTIME` timerfd is set for the soonest, with
//!   `TFD_TIMER_CANCEL_ON_SET`: a change of the clock wakes the daemon, which fires once
//!   whatever came due (however many due times it jumped over: `UPRISE_SCHEDULED` is the
//!   latest) and moves the rest. A clock set back never makes an operand fire at or before a
//!   time it fired at already, unless it went back more than a day (a wrong clock put right:
//!   the schedule starts afresh from the new time).
//! - **`every DURATION`** is elapsed time from the moment the job was loaded, on the
//!   monotonic clock (a deadline, `deadlines.rs`): a change of the wall clock does not move
//!   it; runs missed while the daemon was busy are not made up, the next is the next multiple.
//! - **`DURATION after EVENT`**: each event that matches `EVENT` arms a deadline of its own,
//!   whose firing carries that event's variables too; one in `stop on` is for the instance
//!   whose expression saw the event.
//! - **`jitter`** delays each firing by a random part of it; the next due time comes from
//!   the schedule, so the jitter never drifts it.
//! - **`catch up`**: the last due time each operand of such a job fired at is kept in the
//!   state directory (`timers.json`, written whole and renamed into place). When the job's
//!   timers are armed (the daemon starts, or the job is loaded anew) and a due time passed
//!   since, the job fires once, with the latest of them. Without `catch up` nothing is
//!   kept, and missed runs are skipped.
//!
//! Here: arming, firing and the clock timer. `queue.rs` holds the armed clock operands,
//! `record.rs` `catch up`'s record, `views.rs` what `uprisectl timers` and `status -v` show,
//! `handover.rs` the timers across a re-exec.

mod handover;
mod queue;
mod record;
mod views;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use calloop::generic::Generic;
use calloop::{Interest, Mode, PostAction, RegistrationToken};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use log::{debug, info, warn};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::model::Job;
use crate::model::job::{render_temporal, temporals};
use crate::syntax::ast::Temporal;
use crate::temporal::{Schedule, resolve_zone, schedule};

use super::daemon::Daemon;
use super::deadlines::{Deadline, DeadlineId};
use super::jobs::ClassId;
use queue::{WallQueue, class_range};
use record::{CatchUp, catch_up_key};

/// The expression a temporal operand is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Start,
    Stop,
}

impl Side {
    pub fn keyword(self) -> &'static str {
        match self {
            Side::Start => "start on",
            Side::Stop => "stop on",
        }
    }

    /// Its name in a re-exec snapshot.
    pub fn name(self) -> &'static str {
        match self {
            Side::Start => "start",
            Side::Stop => "stop",
        }
    }

    pub fn from_name(name: &str) -> Option<Side> {
        match name {
            "start" => Some(Side::Start),
            "stop" => Some(Side::Stop),
            _ => None,
        }
    }
}

/// One temporal operand of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    pub class: ClassId,
    pub side: Side,
    /// Its place among the expression's temporal operands, in tree order.
    pub index: u16,
}

/// Where a firing goes: the operand's leaf, in the class's `start on`, or in the `stop on`
/// of its instances (of the one named, for a timer its own `after` operand armed: the name
/// and the instance's serial).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTarget {
    pub timer: TimerId,
    pub instance: Option<(String, u64)>,
}

/// How far back a clock may be set before an operand forgets when it last fired.
const FORGET_AFTER_SETBACK: Duration = Duration::from_secs(24 * 3600);

/// The most clock operands fired in one turn of the loop: 1,000 due in the same second
/// start 1,000 jobs, and clients are served between batches. Measured with 10,000 armed
/// (`benches/timers.py burst`): 16 a turn fire the 1,000 in 0.49 s and keep `status` under
/// 30 ms; 64 a turn, 0.42 s and 90 ms; all at once, 0.55 s without an answer.
pub(super) const FIRE_BATCH: usize = 16;

/// The most due times looked through to find the latest one passed.
const MAX_MISSED: usize = 100_000;

/// The timers room's state.
pub struct Timers {
    /// The armed clock operands.
    wall: WallQueue,
    /// The `CLOCK_REALTIME` timerfd set for the soonest, once there is one.
    clock: Option<WallClock>,
    /// The zone of operands whose job and operand name none: the daemon's local zone, read
    /// at each load of the job dirs.
    pub local: TimeZone,
    /// The due time each operand last fired at, in this daemon's life (for the clock rule
    /// above, and for `uprisectl timers`).
    fired: BTreeMap<TimerId, Timestamp>,
    /// The deadlines each class's timers have in the queue (intervals, `after` timers,
    /// firings held back by jitter): taken out when the class goes or is armed again.
    deadlines: HashMap<ClassId, Vec<DeadlineId>>,
    /// What `catch up` keeps.
    catch_up: CatchUp,
}

impl Timers {
    /// When a class's operands last fired.
    fn wall_fired(&self, class: ClassId) -> impl Iterator<Item = (TimerId, Timestamp)> + '_ {
        self.fired.range(class_range(class)).map(|(timer, at)| (*timer, *at))
    }
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            wall: WallQueue::default(),
            clock: None,
            local: TimeZone::system(),
            fired: BTreeMap::new(),
            deadlines: HashMap::new(),
            catch_up: CatchUp::default(),
        }
    }
}

struct WallClock {
    fd: Rc<TimerFd>,
    /// The due time it is set for.
    set_for: Option<Timestamp>,
    _token: RegistrationToken,
}

/// A timerfd as its loop source sees it: the same descriptor as [`WallClock::fd`].
struct SharedTimer(Rc<TimerFd>);

impl AsFd for SharedTimer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The temporal operand `index` of one of a job's expressions.
pub fn operand(job: &Job, side: Side, index: u16) -> Option<Temporal> {
    let expr = match side {
        Side::Start => job.start_on.as_ref()?,
        Side::Stop => job.stop_on.as_ref()?,
    };
    let mut found = None;
    let mut at = 0u16;
    temporals(expr, &mut |temporal, _| {
        if at == index {
            found = Some(temporal.clone());
        }
        at += 1;
    });
    found
}

/// Every temporal operand of a job's expression, in tree order.
pub fn operands(job: &Job, side: Side) -> Vec<Temporal> {
    let expr = match side {
        Side::Start => job.start_on.as_ref(),
        Side::Stop => job.stop_on.as_ref(),
    };
    let mut out = Vec::new();
    if let Some(expr) = expr {
        temporals(expr, &mut |temporal, _| out.push(temporal.clone()));
    }
    out
}

/// Whether two definitions arm the same timers: the same temporal operands in the same
/// places, the same zone and jitter.
pub fn same_timers(a: &Job, b: &Job) -> bool {
    operands(a, Side::Start) == operands(b, Side::Start)
        && operands(a, Side::Stop) == operands(b, Side::Stop)
        && a.ext.timezone == b.ext.timezone
        && a.ext.jitter == b.ext.jitter
        && a.ext.catch_up == b.ext.catch_up
}

/// A due time, as `UPRISE_SCHEDULED` and `uprisectl timers` show it: RFC 3339 with the
/// offset of the zone the operand is read in.
pub fn show_time(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A `std` duration as jiff's, saturating.
fn signed(duration: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

/// How far ahead a time is, zero when it is past.
fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// The `count`-th end of a period from `anchor`.
fn period_end(anchor: Instant, period: Duration, count: u64) -> Instant {
    let nanos = period
        .as_nanos()
        .saturating_mul(u128::from(count))
        .min(u128::from(u64::MAX));
    anchor + Duration::from_nanos(nanos as u64)
}

impl Daemon {
    /// Reads `catch up`'s file in the state dir (at start, and after a re-exec).
    pub fn load_timer_state(&mut self, statedir: &Path) {
        self.timers.catch_up = CatchUp::load(statedir);
    }

    /// Reads the daemon's local zone again (at each load of the job dirs): when it changed,
    /// the clock operands that use it are scheduled in the new one.
    pub(super) fn refresh_local_zone(&mut self) {
        let zone = TimeZone::system();
        let now = self.host.wall_now();
        let same = |a: &TimeZone, b: &TimeZone| {
            let later = now + jiff::SignedDuration::from_hours(24 * 182);
            a.iana_name() == b.iana_name()
                && a.to_offset(now) == b.to_offset(now)
                && a.to_offset(later) == b.to_offset(later)
        };
        if same(&zone, &self.timers.local) {
            return;
        }
        info!(
            "the local time zone is now {}; clock operands are scheduled in it",
            zone.iana_name().unwrap_or("(unnamed)")
        );
        self.timers.local = zone;
        let armed: Vec<(Timestamp, TimerId)> = self.timers.wall.iter().collect();
        for (due, timer) in armed {
            match self.schedule_of(timer).and_then(|(_, found, _)| found.next_after(now)) {
                Some(next) if next == due => {}
                Some(next) => self.timers.wall.insert(timer, next),
                None => self.timers.wall.remove(timer),
            }
        }
        self.set_wall_clock();
    }

    /// The zone a job's clock operands are read in when they name none.
    fn job_zone(&self, job: &Job) -> TimeZone {
        resolve_zone(job.ext.timezone.as_deref(), &self.timers.local).unwrap_or_else(|_| self.timers.local.clone())
    }

    /// The schedule of a clock operand, and the zone its times are shown in.
    fn schedule_of(&self, timer: TimerId) -> Option<(Temporal, Schedule, TimeZone)> {
        let job = &self.classes.get(timer.class)?.job;
        let temporal = operand(job, timer.side, timer.index)?;
        let default = self.job_zone(job);
        match schedule(&temporal, &default) {
            Ok(Some(found)) => {
                let zone = found.zone().cloned().unwrap_or(default);
                Some((temporal, found, zone))
            }
            Ok(None) => None,
            Err(error) => {
                warn!("{}: {}: {error}", job.name, render_temporal(&temporal));
                None
            }
        }
    }

    /// The zone an operand's times are shown in: its own, else its job's.
    fn shown_zone(&self, timer: TimerId, job: &Job, temporal: &Temporal) -> TimeZone {
        match temporal {
            Temporal::Calendar(_) | Temporal::Cron { .. } => self
                .schedule_of(timer)
                .map_or_else(|| self.job_zone(job), |(_, _, zone)| zone),
            Temporal::Every { .. } | Temporal::After { .. } => self.job_zone(job),
        }
    }

    /// Arms the timers of a class (new, or with operands that changed); replaces whatever
    /// the class had armed. `after` operands are armed by their events.
    pub(super) fn arm_timers(&mut self, class_id: ClassId) {
        self.disarm_timers(class_id);
        let Some(class) = self.classes.get(class_id) else {
            return;
        };
        let job = class.job.clone();
        let wall_now = self.host.wall_now();
        let mut kept = Vec::new();
        for side in [Side::Start, Side::Stop] {
            for (index, temporal) in operands(&job, side).into_iter().enumerate() {
                let timer = TimerId {
                    class: class_id,
                    side,
                    index: index as u16,
                };
                let catch_up = side == Side::Start && job.ext.catch_up && !matches!(temporal, Temporal::After { .. });
                if catch_up {
                    kept.push(catch_up_key(&job, &render_temporal(&temporal)));
                }
                match &temporal {
                    Temporal::After { .. } => {}
                    Temporal::Every { interval } => {
                        let period = Duration::from_millis(interval.millis.max(1));
                        if catch_up {
                            self.catch_up_interval(timer, &job, &temporal, period, wall_now);
                        }
                        let anchor = self.host.now();
                        self.arm_every(timer, anchor, period, 1);
                    }
                    Temporal::Calendar(_) | Temporal::Cron { .. } => {
                        let Some((_, found, _)) = self.schedule_of(timer) else {
                            continue;
                        };
                        if catch_up {
                            self.catch_up_calendar(timer, &job, &temporal, &found, wall_now);
                        }
                        if let Some(next) = found.next_after(wall_now) {
                            self.timers.wall.insert(timer, next);
                        }
                    }
                }
            }
        }
        if self.timers.catch_up.file.forget(&job.name, &kept) {
            self.timers.catch_up.dirty = true;
        }
        self.timers.catch_up.save();
        self.set_wall_clock();
    }

    /// Takes every timer of a class out: its clock operands leave the queue, and so do its
    /// deadlines (intervals, `after` timers, firings held back by jitter).
    pub(super) fn disarm_timers(&mut self, class_id: ClassId) {
        for id in self.timers.deadlines.remove(&class_id).unwrap_or_default() {
            self.disarm(id);
        }
        let fired: Vec<TimerId> = self.timers.wall_fired(class_id).map(|(timer, _)| timer).collect();
        for timer in fired {
            self.timers.fired.remove(&timer);
        }
        if self.timers.wall.remove_class(class_id) {
            self.set_wall_clock();
        }
    }

    /// A class goes: its timers, and what `catch up` kept for it.
    pub(super) fn forget_timers(&mut self, class_id: ClassId) {
        self.disarm_timers(class_id);
        if let Some(class) = self.classes.get(class_id)
            && self.timers.catch_up.file.forget(&class.job.name, &[])
        {
            self.timers.catch_up.dirty = true;
            self.timers.catch_up.save();
        }
    }

    /// Arms a deadline for one of a class's timers.
    fn arm_timer_deadline(&mut self, class_id: ClassId, after: Duration, deadline: Deadline) {
        let id = self.arm(after, deadline);
        self.timers.deadlines.entry(class_id).or_default().push(id);
    }

    /// A deadline of a class's timers passed: it is no longer the class's.
    pub(super) fn timer_deadline_passed(&mut self, class_id: ClassId, id: DeadlineId) {
        if let Some(ids) = self.timers.deadlines.get_mut(&class_id) {
            ids.retain(|armed| *armed != id);
            if ids.is_empty() {
                self.timers.deadlines.remove(&class_id);
            }
        }
    }

    /// `every DURATION`: its `count`-th period from `anchor` ends next.
    pub(super) fn arm_every(&mut self, timer: TimerId, anchor: Instant, period: Duration, count: u64) {
        let at = period_end(anchor, period, count);
        let deadline = Deadline::Every {
            timer,
            anchor,
            period,
            count,
        };
        let after = at.saturating_duration_since(self.host.now());
        self.arm_timer_deadline(timer.class, after, deadline);
    }

    /// `every DURATION` fired at the end of its `count`-th period: the next is the first to
    /// end after now (a busy daemon makes up no runs).
    pub(super) fn every_passed(&mut self, timer: TimerId, anchor: Instant, period: Duration, count: u64) {
        let elapsed = self.host.now().saturating_duration_since(anchor);
        let next = (elapsed.as_nanos() / period.as_nanos().max(1)).min(u128::from(u64::MAX - 1)) as u64 + 1;
        self.arm_every(timer, anchor, period, next.max(count + 1));
    }

    /// `catch up` for a calendar or cron operand: when a due time passed since the last
    /// one it fired at (while the daemon was down), it fires once, with the latest.
    fn catch_up_calendar(&mut self, timer: TimerId, job: &Job, temporal: &Temporal, found: &Schedule, now: Timestamp) {
        let key = catch_up_key(job, &render_temporal(temporal));
        let Some(last) = self.timers.catch_up.file.get(&key) else {
            // First armed: from now on, missed runs are known.
            self.timers.catch_up.file.set(key, now);
            self.timers.catch_up.dirty = true;
            return;
        };
        let Some(first) = found.next_after(last).filter(|first| *first <= now) else {
            return;
        };
        let scheduled = latest_due(found, first, now);
        info!(
            "{}: `{}` was due at {} while uprise was not running; running it now (catch up)",
            job.name,
            render_temporal(temporal),
            show_time(scheduled, found.zone().unwrap_or(&self.timers.local))
        );
        self.fire_timer(TimerTarget { timer, instance: None }, scheduled, Vec::new());
    }

    /// `catch up` for `every DURATION`: when at least one period has passed since it last
    /// fired, it fires once.
    fn catch_up_interval(&mut self, timer: TimerId, job: &Job, temporal: &Temporal, period: Duration, now: Timestamp) {
        let key = catch_up_key(job, &render_temporal(temporal));
        let Some(last) = self.timers.catch_up.file.get(&key) else {
            self.timers.catch_up.file.set(key, now);
            self.timers.catch_up.dirty = true;
            return;
        };
        let elapsed = until(now, last);
        if elapsed < period {
            return;
        }
        let periods = elapsed.as_nanos() / period.as_nanos().max(1);
        let passed = Duration::from_nanos((period.as_nanos() * periods).min(u128::from(u64::MAX)) as u64);
        info!(
            "{}: `{}` was due while uprise was not running; running it now (catch up)",
            job.name,
            render_temporal(temporal)
        );
        self.fire_timer(TimerTarget { timer, instance: None }, last + signed(passed), Vec::new());
    }

    /// An operand is due at `scheduled`: its event goes out now, or after its job's jitter.
    pub(super) fn fire_timer(&mut self, target: TimerTarget, scheduled: Timestamp, env: Vec<String>) {
        let Some(class) = self.classes.get(target.timer.class) else {
            return;
        };
        let job = class.job.clone();
        self.timers.fired.insert(target.timer, scheduled);
        if target.timer.side == Side::Start
            && job.ext.catch_up
            && let Some(temporal) = operand(&job, target.timer.side, target.timer.index)
            && !matches!(temporal, Temporal::After { .. })
        {
            let key = catch_up_key(&job, &render_temporal(&temporal));
            self.timers.catch_up.file.set(key, scheduled);
            self.timers.catch_up.dirty = true;
        }
        match job.ext.jitter.map(|jitter| jitter.millis) {
            Some(jitter) if jitter > 0 => {
                // One firing held back at a time: with a jitter longer than the period, the
                // next would otherwise pile up behind it (and be dropped when it ran).
                if self.held_back(&target) {
                    debug!(
                        "{}: a firing is held back by jitter already; this one is dropped",
                        job.name
                    );
                    return;
                }
                let delay = Duration::from_millis(self.host.random() % jitter);
                let deadline = Deadline::Fire {
                    target: target.clone(),
                    scheduled,
                    env,
                    jittered: true,
                };
                self.arm_timer_deadline(target.timer.class, delay, deadline);
            }
            _ => self.emit_timer(target, scheduled, env),
        }
    }

    /// Whether a firing of `target` is held back by jitter now.
    fn held_back(&self, target: &TimerTarget) -> bool {
        let ids = self.timers.deadlines.get(&target.timer.class).into_iter().flatten();
        ids.filter_map(|id| self.deadlines.get(*id))
            .any(|deadline| matches!(deadline, Deadline::Fire { target: held, jittered: true, .. } if held == target))
    }

    /// The firing's event.
    pub(super) fn emit_timer(&mut self, target: TimerTarget, scheduled: Timestamp, extra: Vec<String>) {
        let Some(class) = self.classes.get(target.timer.class) else {
            return;
        };
        let job = class.job.clone();
        let Some(temporal) = operand(&job, target.timer.side, target.timer.index) else {
            return;
        };
        let zone = self.shown_zone(target.timer, &job, &temporal);
        let shown = render_temporal(&temporal);
        let late = self.host.wall_now().duration_since(scheduled).as_micros();
        let scheduled = show_time(scheduled, &zone);
        debug!(
            "{} {}: `{shown}` fires (due {scheduled}, {late} us after it)",
            job.name,
            target.timer.side.keyword()
        );
        let mut env = extra;
        env.extend([
            format!("UPRISE_JOB={}", job.name),
            format!("UPRISE_TIMER={shown}"),
            format!("UPRISE_SCHEDULED={scheduled}"),
        ]);
        self.emit_to("timer", env, Some(target));
    }

    /// An event matched an `after` operand: its timer is armed.
    pub(super) fn arm_after(&mut self, timer: TimerId, instance: Option<(String, u64)>, env: &[String]) {
        let Some(class) = self.classes.get(timer.class) else {
            return;
        };
        let Some(Temporal::After { delay, .. }) = operand(&class.job, timer.side, timer.index) else {
            return;
        };
        let after = Duration::from_millis(delay.millis);
        let deadline = Deadline::Fire {
            target: TimerTarget { timer, instance },
            scheduled: self.host.wall_now() + signed(after),
            env: env.to_vec(),
            jittered: false,
        };
        self.arm_timer_deadline(timer.class, after, deadline);
    }

    /// The clock operands whose time has come fire (once each, however late).
    /// At most [`FIRE_BATCH`] at a time: the clock timer is then set for a time passed, so
    /// that the loop serves its other sources (clients above all) before it fires the next.
    pub fn timers_due(&mut self) {
        let now = self.host.wall_now();
        let mut fired = 0;
        while fired < FIRE_BATCH
            && let Some((due, timer)) = self.timers.wall.pop_due(now)
        {
            fired += 1;
            let Some((_, found, _)) = self.schedule_of(timer) else {
                continue;
            };
            // A late wake-up, or a clock set forward over several due times: one firing,
            // for the latest of them.
            let scheduled = latest_due(&found, due, now);
            self.fire_timer(TimerTarget { timer, instance: None }, scheduled, Vec::new());
            if let Some(next) = found.next_after(now) {
                self.timers.wall.insert(timer, next);
            }
        }
        self.timers.catch_up.save();
        self.set_wall_clock();
    }

    /// The wall clock was set: what came due fires; what is still ahead is scheduled from
    /// the new time, but never at or before a time the operand fired at already (unless the
    /// clock went back more than a day).
    pub fn wall_clock_changed(&mut self) {
        let now = self.host.wall_now();
        let forget = now + signed(FORGET_AFTER_SETBACK);
        let ahead: Vec<(Timestamp, TimerId)> = self.timers.wall.iter().filter(|(due, _)| *due > now).collect();
        for (due, timer) in ahead {
            let Some((_, found, _)) = self.schedule_of(timer) else {
                continue;
            };
            let floor = match self.timers.fired.get(&timer) {
                Some(&fired) if fired > now && fired <= forget => fired,
                _ => now,
            };
            match found.next_after(floor) {
                Some(next) if next == due => {}
                Some(next) => self.timers.wall.insert(timer, next),
                None => self.timers.wall.remove(timer),
            }
        }
        info!("the wall clock was set; clock operands are scheduled from the new time");
        self.timers_due();
    }

    /// Sets the realtime timerfd for the soonest clock operand (made on first use).
    fn set_wall_clock(&mut self) {
        let next = self.timers.wall.first().map(|(due, _)| due);
        if self.timers.clock.is_none() {
            if next.is_none() {
                return;
            }
            let Some(clock) = self.make_wall_clock() else { return };
            self.timers.clock = Some(clock);
        }
        let Some(clock) = self.timers.clock.as_mut() else {
            return;
        };
        if clock.set_for == next {
            return;
        }
        clock.set_for = next;
        let result = match next {
            Some(due) => {
                let nanos = due.as_nanosecond().max(1);
                let spec = TimeSpec::new((nanos / 1_000_000_000) as i64, (nanos % 1_000_000_000) as i64);
                clock.fd.set(
                    Expiration::OneShot(spec),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
                )
            }
            None => clock.fd.unset(),
        };
        if let Err(error) = result {
            warn!("cannot set the clock timer: {error}");
        }
    }

    fn make_wall_clock(&mut self) -> Option<WallClock> {
        let fd = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|error| warn!("cannot make the clock timer ({error}); clock operands will not fire"))
        .ok()?;
        let fd = Rc::new(fd);
        let source = Generic::new(SharedTimer(fd.clone()), Interest::READ, Mode::Level);
        let token = self
            .handle
            .insert_source(source, |_, timer, daemon| {
                // SAFETY: the fd is only read here; NoIoDrop hands out a mutable reference.
                let timer = unsafe { timer.get_mut() }.0.clone();
                let mut count = [0u8; 8];
                // SAFETY: a read of 8 bytes into an 8-byte buffer from a timerfd.
                let read = unsafe { libc::read(timer.as_fd().as_raw_fd(), count.as_mut_ptr().cast(), 8) };
                let changed = read < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECANCELED);
                if let Some(clock) = daemon.timers.clock.as_mut() {
                    // Expired or cancelled: it must be set again.
                    clock.set_for = None;
                }
                if changed {
                    daemon.wall_clock_changed();
                } else {
                    daemon.timers_due();
                }
                // `monitor` clients see the firings as they go out, before the jobs they
                // start are spawned.
                daemon.flush_clients();
                daemon.settle();
                daemon.flush_clients();
                Ok(PostAction::Continue)
            })
            .map_err(|error| warn!("cannot watch the clock timer ({error}); clock operands will not fire"))
            .ok()?;
        Some(WallClock {
            fd,
            set_for: None,
            _token: token,
        })
    }
}

/// The latest due time of a schedule from `first` (due) up to `now`: one firing stands for
/// all of them when the daemon wakes late or the clock jumps over several.
fn latest_due(found: &Schedule, first: Timestamp, now: Timestamp) -> Timestamp {
    let mut scheduled = first;
    for _ in 0..MAX_MISSED {
        match found.next_after(scheduled) {
            Some(next) if next <= now => scheduled = next,
            _ => break,
        }
    }
    scheduled
}

/// Whether a job has temporal operands, in `start on` or `stop on`.
pub(super) fn has_timers(job: &Job) -> bool {
    [&job.start_on, &job.stop_on].into_iter().flatten().any(|expr| {
        let mut found = false;
        temporals(expr, &mut |_, _| found = true);
        found
    })
}
