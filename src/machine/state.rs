//! The goal/state machine of one job instance.
//!
//! An instance has a *goal* (`start` or `stop`; `respawn` while a respawn is under way) and
//! a *state*. Only `waiting` and `running` are rest states: a goal change kicks the machine
//! only from those; in any other state the instance finishes what it is doing (a process
//! exiting, an event finishing) and then takes the branch the goal asks for.
//!
//! | state      | goal start | goal stop                                   |
//! |------------|------------|---------------------------------------------|
//! | waiting    | starting   | waiting                                     |
//! | starting   | pre-start  | stopping                                    |
//! | pre-start  | spawned    | stopping                                    |
//! | spawned    | post-start | stopping                                    |
//! | post-start | running    | stopping                                    |
//! | running    | stopping   | pre-stop if the main process lives, else stopping |
//! | pre-stop   | running    | stopping                                    |
//! | stopping   | killed     | killed                                      |
//! | killed     | post-stop  | post-stop                                   |
//! | post-stop  | starting   | waiting                                     |
//!
//! `respawn` behaves as `start`, except that `post-start` and `pre-stop` go to `stopping`
//! (the main process died and must be replaced). Upstart's `security` state and its
//! transient `*-ing` spawn states do not exist here: uprise spawns synchronously and reports
//! a failed spawn at once.
//!
//! This module decides; it never acts.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Goal {
    Start,
    Stop,
    Respawn,
}

impl Goal {
    pub fn name(self) -> &'static str {
        match self {
            Goal::Start => "start",
            Goal::Stop => "stop",
            Goal::Respawn => "respawn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Waiting,
    Starting,
    PreStart,
    Spawned,
    PostStart,
    Running,
    PreStop,
    Stopping,
    Killed,
    PostStop,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Waiting,
        State::Starting,
        State::PreStart,
        State::Spawned,
        State::PostStart,
        State::Running,
        State::PreStop,
        State::Stopping,
        State::Killed,
        State::PostStop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::PreStart => "pre-start",
            State::Spawned => "spawned",
            State::PostStart => "post-start",
            State::Running => "running",
            State::PreStop => "pre-stop",
            State::Stopping => "stopping",
            State::Killed => "killed",
            State::PostStop => "post-stop",
        }
    }

    /// `waiting` and `running` are where an instance rests until its goal changes.
    pub fn is_rest(self) -> bool {
        matches!(self, State::Waiting | State::Running)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state that follows `state` for `goal`. `main_alive` matters only for `running` with
/// goal stop: a job whose main process already ended skips `pre-stop`.
pub fn next_state(state: State, goal: Goal, main_alive: bool) -> State {
    use {Goal::*, State::*};
    match (state, goal) {
        (Waiting, Start | Respawn) => Starting,
        (Waiting, Stop) => Waiting,
        (Starting, Start | Respawn) => PreStart,
        (Starting, Stop) => Stopping,
        (PreStart, Start | Respawn) => Spawned,
        (PreStart, Stop) => Stopping,
        (Spawned, Start | Respawn) => PostStart,
        (Spawned, Stop) => Stopping,
        (PostStart, Start) => Running,
        (PostStart, Stop | Respawn) => Stopping,
        (Running, Start | Respawn) => Stopping,
        (Running, Stop) if main_alive => PreStop,
        (Running, Stop) => Stopping,
        (PreStop, Start) => Running,
        (PreStop, Stop | Respawn) => Stopping,
        (Stopping, _) => Killed,
        (Killed, _) => PostStop,
        (PostStop, Start | Respawn) => Starting,
        (PostStop, Stop) => Waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Goal::*;
    use State::*;

    /// The whole table, row by row: (state, goal, main alive) -> next.
    #[test]
    fn transition_table_is_exhaustive() {
        let table: [(State, Goal, bool, State); 60] = [
            (Waiting, Start, false, Starting),
            (Waiting, Start, true, Starting),
            (Waiting, Stop, false, Waiting),
            (Waiting, Stop, true, Waiting),
            (Waiting, Respawn, false, Starting),
            (Waiting, Respawn, true, Starting),
            (Starting, Start, false, PreStart),
            (Starting, Start, true, PreStart),
            (Starting, Stop, false, Stopping),
            (Starting, Stop, true, Stopping),
            (Starting, Respawn, false, PreStart),
            (Starting, Respawn, true, PreStart),
            (PreStart, Start, false, Spawned),
            (PreStart, Start, true, Spawned),
            (PreStart, Stop, false, Stopping),
            (PreStart, Stop, true, Stopping),
            (PreStart, Respawn, false, Spawned),
            (PreStart, Respawn, true, Spawned),
            (Spawned, Start, false, PostStart),
            (Spawned, Start, true, PostStart),
            (Spawned, Stop, false, Stopping),
            (Spawned, Stop, true, Stopping),
            (Spawned, Respawn, false, PostStart),
            (Spawned, Respawn, true, PostStart),
            (PostStart, Start, false, Running),
            (PostStart, Start, true, Running),
            (PostStart, Stop, false, Stopping),
            (PostStart, Stop, true, Stopping),
            (PostStart, Respawn, false, Stopping),
            (PostStart, Respawn, true, Stopping),
            (Running, Start, false, Stopping),
            (Running, Start, true, Stopping),
            (Running, Stop, false, Stopping),
            (Running, Stop, true, PreStop),
            (Running, Respawn, false, Stopping),
            (Running, Respawn, true, Stopping),
            (PreStop, Start, false, Running),
            (PreStop, Start, true, Running),
            (PreStop, Stop, false, Stopping),
            (PreStop, Stop, true, Stopping),
            (PreStop, Respawn, false, Stopping),
            (PreStop, Respawn, true, Stopping),
            (Stopping, Start, false, Killed),
            (Stopping, Start, true, Killed),
            (Stopping, Stop, false, Killed),
            (Stopping, Stop, true, Killed),
            (Stopping, Respawn, false, Killed),
            (Stopping, Respawn, true, Killed),
            (Killed, Start, false, PostStop),
            (Killed, Start, true, PostStop),
            (Killed, Stop, false, PostStop),
            (Killed, Stop, true, PostStop),
            (Killed, Respawn, false, PostStop),
            (Killed, Respawn, true, PostStop),
            (PostStop, Start, false, Starting),
            (PostStop, Start, true, Starting),
            (PostStop, Stop, false, Waiting),
            (PostStop, Stop, true, Waiting),
            (PostStop, Respawn, false, Starting),
            (PostStop, Respawn, true, Starting),
        ];
        for (state, goal, alive, expected) in table {
            assert_eq!(
                next_state(state, goal, alive),
                expected,
                "{state} + {goal:?} (main alive: {alive})"
            );
        }
        // Every (state, goal, alive) combination is in the table exactly once.
        for state in State::ALL {
            for goal in [Start, Stop, Respawn] {
                for alive in [false, true] {
                    let rows = table
                        .iter()
                        .filter(|row| row.0 == state && row.1 == goal && row.2 == alive)
                        .count();
                    assert_eq!(rows, 1, "{state} {goal:?} {alive}");
                }
            }
        }
    }

    #[test]
    fn a_start_runs_through_every_stage_to_running() {
        let mut state = Waiting;
        let mut seen = vec![state];
        while state != Running {
            state = next_state(state, Start, true);
            seen.push(state);
        }
        assert_eq!(seen, [Waiting, Starting, PreStart, Spawned, PostStart, Running]);
    }

    #[test]
    fn a_stop_runs_through_every_stage_to_waiting() {
        let mut state = next_state(Running, Stop, true);
        let mut seen = vec![Running, state];
        while state != Waiting {
            state = next_state(state, Stop, false);
            seen.push(state);
        }
        assert_eq!(seen, [Running, PreStop, Stopping, Killed, PostStop, Waiting]);
    }

    #[test]
    fn only_waiting_and_running_rest() {
        let rests: Vec<State> = State::ALL.into_iter().filter(|state| state.is_rest()).collect();
        assert_eq!(rests, [Waiting, Running]);
    }
}
