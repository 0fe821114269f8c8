//! The history of state changes: a bounded ring of the last [`DEFAULT_CAPACITY`] changes of
//! goal or state of every instance, with the time of each, for `uprisectl plot` and
//! `uprisectl blame`. In memory only, carried across a re-exec.
//!
//! A change costs one entry of 48 bytes; names are shared (`Rc<str>`, one per instance and
//! one per cause in the ring), and the ring grows [`GROWTH`] entries at a time rather than
//! doubling, so it holds under half a MiB when full and about 250 KiB after 1,000
//! services came up. A change is recorded where the state is set (`Daemon::enter_state`),
//! so no path escapes it.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use crate::control::proto::TransitionRecord;
use crate::machine::{Goal, State};
use crate::reexec::{ChangeSnapshot, HistorySnapshot};

/// How many changes the ring keeps.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How many entries the ring grows by at a time.
const GROWTH: usize = 1024;

/// The name an instance is kept under: its job and its instance name, joined by a NUL
/// (which neither can hold), written into `into`.
fn who_into(into: &mut String, job: &str, instance: &str) {
    into.clear();
    into.push_str(job);
    into.push('\0');
    into.push_str(instance);
}

/// One change of goal or state.
struct Change {
    /// Milliseconds since the daemon first started (across re-execs).
    at_ms: u64,
    /// `JOB\0INSTANCE`.
    who: Rc<str>,
    goal: Goal,
    state: State,
    /// For `starting`: what started it (`startup`, `started db`, `timer every 15m`,
    /// `asked`).
    cause: Option<Rc<str>>,
}

/// The ring, and the clock its times are on.
pub struct History {
    ring: VecDeque<Change>,
    capacity: usize,
    /// The shared names: each instance and cause once.
    names: HashSet<Rc<str>>,
    /// When the daemon first started: on the monotonic clock of this image, and on the wall
    /// clock (milliseconds since the epoch).
    boot: Instant,
    boot_wall_ms: i64,
    /// Where an instance's name is written to be looked up, so that recording a change
    /// allocates only for a name not seen yet.
    scratch: String,
}

impl History {
    pub fn new(boot: Instant, boot_wall_ms: i64) -> History {
        History {
            ring: VecDeque::new(),
            capacity: DEFAULT_CAPACITY,
            names: HashSet::new(),
            boot,
            boot_wall_ms,
            scratch: String::new(),
        }
    }

    fn intern(&mut self, name: &str) -> Rc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        // Names no entry uses any more go, once there are more of them than entries.
        if self.names.len() >= self.capacity.max(64) * 2 {
            self.names.retain(|name| Rc::strong_count(name) > 1);
        }
        let shared: Rc<str> = Rc::from(name);
        self.names.insert(shared.clone());
        shared
    }

    /// An instance's shared name (see [`who_into`]).
    fn intern_who(&mut self, job: &str, instance: &str) -> Rc<str> {
        let mut scratch = std::mem::take(&mut self.scratch);
        who_into(&mut scratch, job, instance);
        let shared = self.intern(&scratch);
        self.scratch = scratch;
        shared
    }

    /// Records a change at `now`.
    pub fn record(&mut self, now: Instant, job: &str, instance: &str, goal: Goal, state: State, cause: Option<&str>) {
        if self.capacity == 0 {
            return;
        }
        self.make_room();
        let change = Change {
            at_ms: now.saturating_duration_since(self.boot).as_millis() as u64,
            who: self.intern_who(job, instance),
            goal,
            state,
            cause: cause.map(|cause| self.intern(cause)),
        };
        self.ring.push_back(change);
    }

    /// Room for one more entry: the oldest goes when the ring is full; else it grows by
    /// [`GROWTH`] when it must.
    fn make_room(&mut self) {
        if self.ring.len() >= self.capacity {
            self.ring.pop_front();
        } else if self.ring.len() == self.ring.capacity() {
            let more = GROWTH.min(self.capacity - self.ring.len());
            self.ring.reserve_exact(more);
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn boot_wall_ms(&self) -> i64 {
        self.boot_wall_ms
    }

    /// Milliseconds since the daemon first started.
    pub fn age_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.boot).as_millis() as u64
    }

    /// The changes at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: u64) -> impl Iterator<Item = TransitionRecord> + '_ {
        let first = self.ring.partition_point(|change| change.at_ms < since_ms);
        self.ring.range(first..).map(|change| {
            let (job, instance) = change.who.split_once('\0').unwrap_or((&change.who, ""));
            TransitionRecord {
                at_ms: change.at_ms,
                job: job.to_string(),
                instance: instance.to_string(),
                goal: change.goal.name().to_string(),
                state: change.state.name().to_string(),
                cause: change.cause.as_deref().map(str::to_string),
            }
        })
    }

    pub fn snapshot(&self, now: Instant) -> HistorySnapshot {
        HistorySnapshot {
            now_ms: self.age_ms(now),
            boot_wall_ms: self.boot_wall_ms,
            changes: self
                .since(0)
                .map(|change| ChangeSnapshot {
                    at_ms: change.at_ms,
                    job: change.job,
                    instance: change.instance,
                    goal: change.goal,
                    state: change.state,
                    cause: change.cause,
                })
                .collect(),
        }
    }

    /// The history an older image carried: its times stay on the same clock, the daemon's
    /// start, which lies `now_ms` before `now`.
    pub fn restore(&mut self, snapshot: HistorySnapshot, now: Instant) {
        self.boot = now
            .checked_sub(std::time::Duration::from_millis(snapshot.now_ms))
            .unwrap_or(now);
        self.boot_wall_ms = snapshot.boot_wall_ms;
        self.ring.clear();
        for change in snapshot.changes {
            let (Some(goal), Some(state)) = (Goal::from_name(&change.goal), State::from_name(&change.state)) else {
                continue;
            };
            self.make_room();
            let entry = Change {
                at_ms: change.at_ms,
                who: self.intern_who(&change.job, &change.instance),
                goal,
                state,
                cause: change.cause.as_deref().map(|cause| self.intern(cause)),
            };
            self.ring.push_back(entry);
        }
    }
}

/// What started an instance, for its `starting` entry: the events of its start (with the
/// job a job event names: `started db`), the timer that fired, or `asked` (a client).
/// `get` reads the start's environment.
pub fn cause_of<'a>(get: impl Fn(&str) -> Option<&'a str>) -> String {
    if let Some(timer) = get("UPRISE_TIMER").filter(|timer| !timer.is_empty()) {
        return format!("timer {timer}");
    }
    match get("UPSTART_EVENTS").filter(|events| !events.is_empty()) {
        Some(events) => {
            let job_event = events
                .split(' ')
                .any(|name| matches!(name, "starting" | "started" | "stopping" | "stopped"));
            match get("JOB").filter(|_| job_event) {
                Some(job) => format!("{events} {job}"),
                None => events.to_string(),
            }
        }
        None => "asked".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_ring_keeps_the_last_changes_and_shares_names() {
        let boot = Instant::now();
        let mut history = History::new(boot, 1_000);
        history.capacity = 3;
        for (ms, state) in [
            (0, State::Starting),
            (5, State::Spawned),
            (9, State::Running),
            (12, State::Stopping),
        ] {
            history.record(boot + Duration::from_millis(ms), "web", "", Goal::Start, state, None);
        }
        let states: Vec<String> = history.since(0).map(|change| change.state).collect();
        assert_eq!(states, ["spawned", "running", "stopping"]);
        assert_eq!(history.since(9).count(), 2);
        assert_eq!(history.names.len(), 1, "`web` once");
        assert_eq!(size_of::<Change>(), 48);
        // A re-exec: the new image's clock is another, the times stay the daemon's.
        let later = boot + Duration::from_secs(60);
        let snapshot = history.snapshot(later);
        let mut restored = History::new(later, 0);
        restored.capacity = 3;
        restored.restore(snapshot, later);
        assert_eq!(restored.boot_wall_ms(), 1_000);
        assert_eq!(restored.age_ms(later), 60_000);
        assert_eq!(
            restored.since(0).map(|change| change.at_ms).collect::<Vec<_>>(),
            [5, 9, 12]
        );
    }

    fn cause(env: &[&'static str]) -> String {
        let env: Vec<String> = env.iter().map(|entry| entry.to_string()).collect();
        let env = Box::leak(Box::new(env));
        cause_of(|key| crate::machine::environ::get(env, key))
    }

    #[test]
    fn causes_name_the_event_the_job_or_the_timer() {
        assert_eq!(cause(&["UPSTART_EVENTS=startup"]), "startup");
        assert_eq!(cause(&["JOB=db", "UPSTART_EVENTS=started"]), "started db");
        assert_eq!(cause(&["JOB=db", "UPSTART_EVENTS=net-up"]), "net-up");
        assert_eq!(cause(&["UPRISE_TIMER=every 15m", "UPSTART_EVENTS="]), "timer every 15m");
        assert_eq!(cause(&["PATH=/bin"]), "asked");
    }
}
