//! The machine's decisions on what happens to an instance outside a state's entry: a goal
//! that changes, a process that ends, a restart. Like [`super::enter`], each is a pure,
//! exhaustive function of the instance's state, so a new state is flagged by the compiler
//! in every one; the runtime gathers the facts and performs the answer.

use super::stage::Stage;
use super::state::{Goal, State, next_state};

/// What a goal change does, given the state the instance is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalChange {
    /// Nothing now: the instance finishes what it is doing (a process, an event), and then
    /// takes the branch the new goal asks for.
    Wait,
    /// Move on to this state now (the instance was at rest).
    Move(State),
    /// A stop during the respawn back-off: the back-off ends, and the instance moves on.
    EndBackoff(State),
    /// A stop while the main process is not yet ready: the wait is given up (and the
    /// processes that could have become the main one are stopped); the instance stops.
    AbandonReadiness,
    /// A stop while a `pre-start` or `post-start` runs: it gets the kill timeout to finish,
    /// and is killed after it (Upstart waited for ever).
    GraceScript,
}

/// The facts a goal change is decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoalFacts {
    pub state: State,
    /// The new goal.
    pub goal: Goal,
    pub main_alive: bool,
    /// A respawn back-off is under way.
    pub in_backoff: bool,
}

/// What the instance does when its goal changes to `facts.goal`.
pub fn goal_changed(facts: GoalFacts) -> GoalChange {
    use {Goal::*, State::*};
    let GoalFacts {
        state,
        goal,
        main_alive,
        in_backoff,
    } = facts;
    if goal == Stop && in_backoff {
        return GoalChange::EndBackoff(next_state(state, goal, false));
    }
    match (state, goal) {
        (Waiting | Running, _) => GoalChange::Move(next_state(state, goal, main_alive)),
        // A stop takes a start out of the queue; nothing else moves it but its admission.
        (Queued, Stop) => GoalChange::Move(Waiting),
        (Queued, Start | Respawn) => GoalChange::Wait,
        (Spawned, Stop) => GoalChange::AbandonReadiness,
        (PreStart | PostStart, Stop) => GoalChange::GraceScript,
        (Spawned | PreStart | PostStart, Start | Respawn) => GoalChange::Wait,
        (Starting | PreStop | Stopping | Killed | PostStop, _) => GoalChange::Wait,
    }
}

/// Where a `restart` takes an instance whose goal it sets to respawn. From `running` it
/// stops at once, through `pre-stop` when the job has one and the main process lives
/// (unlike Upstart, whose `pre-stop` turned a restart into a no-op); from any other state
/// the instance takes the respawn branch when it gets to it.
pub fn restart_from(state: State, main_alive: bool, has_pre_stop: bool) -> Option<State> {
    use State::*;
    match state {
        Running if main_alive && has_pre_stop => Some(PreStop),
        Running => Some(Stopping),
        Waiting | Queued | Starting | PreStart | Spawned | PostStart | PreStop | Stopping | Killed | PostStop => None,
    }
}

/// What follows a process's end, once its verdict is applied (a failure or a finished main
/// process has set the goal to stop; a respawn, to respawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    /// Nothing: the instance was not waiting for this process.
    Stay,
    /// Move on to this state.
    Move(State),
    /// The main process died before it was ready: the readiness wait is given up and the
    /// instance stops (Upstart went on to `running` with no process, and never respawned
    /// it).
    GiveUpReadiness,
}

/// The facts about an instance when one of its processes has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitFacts {
    /// The state the instance was in when the process ended.
    pub state: State,
    /// The goal, after the verdict.
    pub goal: Goal,
    /// A restart is under way (it turns the goal of `post-start` and `pre-stop` into
    /// respawn).
    pub restarting: bool,
    pub main_alive: bool,
}

/// The state each stage's process runs in.
pub fn state_of(stage: Stage) -> State {
    match stage {
        Stage::PreStart => State::PreStart,
        Stage::Main => State::Spawned,
        Stage::PostStart => State::PostStart,
        Stage::PreStop => State::PreStop,
        Stage::PostStop => State::PostStop,
    }
}

/// What an instance does when the process of `stage` ends.
pub fn after_exit(stage: Stage, facts: ExitFacts) -> AfterExit {
    use State::*;
    let ExitFacts {
        state,
        goal,
        restarting,
        main_alive,
    } = facts;
    match stage {
        // The states that wait for the main process.
        Stage::Main => match state {
            Running if goal != Goal::Start => AfterExit::Move(next_state(Running, goal, false)),
            Killed => AfterExit::Move(next_state(Killed, goal, false)),
            Spawned if goal != Goal::Start => AfterExit::GiveUpReadiness,
            Running | Spawned => AfterExit::Stay,
            Waiting | Queued | Starting | PreStart | PostStart | PreStop | Stopping | PostStop => AfterExit::Stay,
        },
        Stage::PreStart | Stage::PostStop if state == state_of(stage) => {
            AfterExit::Move(next_state(state, goal, main_alive))
        }
        Stage::PostStart | Stage::PreStop if state == state_of(stage) => {
            let goal = if restarting { Goal::Respawn } else { goal };
            AfterExit::Move(next_state(state, goal, main_alive))
        }
        Stage::PreStart | Stage::PostStop | Stage::PostStart | Stage::PreStop => AfterExit::Stay,
    }
}

/// Whether a script's end fails the instance: a `pre-start` or `post-stop` that did not
/// exit 0, unless uprise killed it because the goal changed under it. A `post-start` or
/// `pre-stop` never does (as in Upstart); the main process has its own verdict
/// (`exit::classify_main_exit`).
pub fn script_fails(stage: Stage, success: bool, killed_by_uprise: bool) -> bool {
    match stage {
        Stage::PreStart | Stage::PostStop => !success && !killed_by_uprise,
        Stage::PostStart | Stage::PreStop | Stage::Main => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Goal::*;
    use State::*;

    #[test]
    #[rustfmt::skip]
    fn goal_changes() {
        let facts = |state, goal| GoalFacts { state, goal, main_alive: true, in_backoff: false };
        let cases = [
            (facts(Waiting, Start), GoalChange::Move(Queued)),
            (facts(Waiting, Stop), GoalChange::Move(Waiting)),
            (facts(Queued, Stop), GoalChange::Move(Waiting)),
            (facts(Queued, Respawn), GoalChange::Wait),
            (facts(Running, Stop), GoalChange::Move(PreStop)),
            (GoalFacts { main_alive: false, ..facts(Running, Stop) }, GoalChange::Move(Stopping)),
            (facts(Running, Respawn), GoalChange::Move(Stopping)),
            (facts(Spawned, Stop), GoalChange::AbandonReadiness),
            (facts(Spawned, Start), GoalChange::Wait),
            (facts(PreStart, Stop), GoalChange::GraceScript),
            (facts(PostStart, Stop), GoalChange::GraceScript),
            (facts(PreStart, Start), GoalChange::Wait),
            (facts(Starting, Stop), GoalChange::Wait),
            (facts(PreStop, Start), GoalChange::Wait),
            (facts(Stopping, Stop), GoalChange::Wait),
            (facts(Killed, Start), GoalChange::Wait),
            (facts(PostStop, Stop), GoalChange::Wait),
            // A stop in the back-off ends it, wherever the instance waits.
            (GoalFacts { in_backoff: true, ..facts(Starting, Stop) }, GoalChange::EndBackoff(Stopping)),
            (GoalFacts { in_backoff: true, ..facts(PostStop, Stop) }, GoalChange::EndBackoff(Waiting)),
            (GoalFacts { in_backoff: true, ..facts(Starting, Start) }, GoalChange::Wait),
        ];
        for (facts, expected) in cases {
            assert_eq!(goal_changed(facts), expected, "{facts:?}");
        }
    }

    /// Only a state at rest moves at once (and a queued start, which a stop takes out of the
    /// queue), and a stop is the only goal that interrupts.
    #[test]
    fn only_rest_states_move_at_once() {
        for state in State::ALL {
            for goal in [Start, Stop, Respawn] {
                for main_alive in [false, true] {
                    let change = goal_changed(GoalFacts {
                        state,
                        goal,
                        main_alive,
                        in_backoff: false,
                    });
                    assert_eq!(
                        matches!(change, GoalChange::Move(_)),
                        state.is_rest() || (state == Queued && goal == Stop),
                        "{state} {goal:?}"
                    );
                    if goal != Stop {
                        assert!(
                            matches!(change, GoalChange::Move(_) | GoalChange::Wait),
                            "{state} {goal:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn restarts() {
        assert_eq!(restart_from(Running, true, true), Some(PreStop));
        assert_eq!(restart_from(Running, true, false), Some(Stopping));
        assert_eq!(restart_from(Running, false, true), Some(Stopping));
        for state in State::ALL.into_iter().filter(|state| *state != Running) {
            assert_eq!(restart_from(state, true, true), None, "{state}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn exits() {
        let facts = |state, goal| ExitFacts { state, goal, restarting: false, main_alive: false };
        let cases = [
            // The main process.
            (Stage::Main, facts(Running, Start), AfterExit::Stay),
            (Stage::Main, facts(Running, Stop), AfterExit::Move(Stopping)),
            (Stage::Main, facts(Running, Respawn), AfterExit::Move(Stopping)),
            (Stage::Main, facts(Killed, Stop), AfterExit::Move(PostStop)),
            (Stage::Main, facts(Killed, Respawn), AfterExit::Move(PostStop)),
            (Stage::Main, facts(Spawned, Stop), AfterExit::GiveUpReadiness),
            (Stage::Main, facts(Spawned, Respawn), AfterExit::GiveUpReadiness),
            (Stage::Main, facts(Spawned, Start), AfterExit::Stay),
            (Stage::Main, facts(PostStart, Stop), AfterExit::Stay),
            (Stage::Main, facts(Stopping, Stop), AfterExit::Stay),
            // Scripts move on from their own state only.
            (Stage::PreStart, facts(PreStart, Start), AfterExit::Move(Spawned)),
            (Stage::PreStart, facts(PreStart, Stop), AfterExit::Move(Stopping)),
            (Stage::PreStart, facts(Stopping, Stop), AfterExit::Stay),
            (Stage::PostStop, facts(PostStop, Stop), AfterExit::Move(Waiting)),
            (Stage::PostStop, facts(PostStop, Respawn), AfterExit::Move(Starting)),
            (Stage::PostStart, facts(PostStart, Start), AfterExit::Move(Running)),
            (Stage::PostStart, ExitFacts { restarting: true, ..facts(PostStart, Start) }, AfterExit::Move(Stopping)),
            (Stage::PreStop, facts(PreStop, Stop), AfterExit::Move(Stopping)),
            (Stage::PreStop, facts(PreStop, Start), AfterExit::Move(Running)),
            (Stage::PreStop, ExitFacts { restarting: true, ..facts(PreStop, Start) }, AfterExit::Move(Stopping)),
            (Stage::PreStop, facts(Running, Start), AfterExit::Stay),
        ];
        for (stage, facts, expected) in cases {
            assert_eq!(after_exit(stage, facts), expected, "{stage} {facts:?}");
        }
    }

    /// A script's end moves the instance on only from the state that script runs in.
    #[test]
    fn scripts_move_only_their_own_state() {
        for stage in [Stage::PreStart, Stage::PostStart, Stage::PreStop, Stage::PostStop] {
            for state in State::ALL {
                for goal in [Start, Stop, Respawn] {
                    let facts = ExitFacts {
                        state,
                        goal,
                        restarting: false,
                        main_alive: true,
                    };
                    let moved = after_exit(stage, facts) != AfterExit::Stay;
                    assert_eq!(moved, state == state_of(stage), "{stage} in {state}");
                }
            }
        }
    }

    #[test]
    fn which_scripts_fail() {
        assert!(script_fails(Stage::PreStart, false, false));
        assert!(!script_fails(Stage::PreStart, false, true));
        assert!(!script_fails(Stage::PreStart, true, false));
        assert!(script_fails(Stage::PostStop, false, false));
        assert!(!script_fails(Stage::PostStart, false, false));
        assert!(!script_fails(Stage::PreStop, false, false));
        assert!(!script_fails(Stage::Main, false, false));
    }
}
