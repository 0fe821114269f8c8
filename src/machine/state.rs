//! The goal/state machine of one job instance.
//!
//! An instance has a *goal* (`start` or `stop`; `respawn` while a respawn is under way) and
//! a *state*. Only `waiting` and `running` are rest states: a goal change kicks the machine
//! only from those; in any other state the instance finishes what it is doing (a process
//! exiting, an event finishing) and then takes the branch the goal asks for.
//!
//! | state      | goal start | goal stop                                   |
//! |------------|------------|---------------------------------------------|
//! | waiting    | queued     | waiting                                     |
//! | queued     | starting   | waiting                                     |
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
//! (the main process died and must be replaced).
//!
//! `queued` is uprise's: a start that a gate, a resource pool or a required file holds back
//! waits there, before `starting` (no event is emitted and nothing runs until it is
//! admitted). A start nothing holds back passes through it without entering it (see
//! [`Admission`]), so a job without `gate`, `uses` or `requires` goes from `waiting` to
//! `starting` as in Upstart. Only a start from `waiting` is admitted: a respawn or a restart
//! keeps what the run was admitted with. Upstart's `security` state and its
//! transient `*-ing` spawn states do not exist here: the runtime follows every spawn up
//! before anything else happens to its instance (it does not wait for the exec, but a spawn
//! still on its way is finished first, as if it had returned at once), so to the machine a
//! spawn has worked or failed as soon as it is made.
//!
//! What entering a state *does* is decided here too: [`enter`] maps (state, facts about the
//! instance) to an [`Entry`], the effects the runtime performs in order and what follows
//! them. The runtime feeds the facts, performs the effects and reports back only what a
//! pure function cannot know: whether a spawn worked.
//!
//! This module decides; it never acts.

use std::fmt;

use super::stage::Stage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Goal {
    Start,
    Stop,
    Respawn,
}

impl Goal {
    pub const ALL: [Goal; 3] = [Goal::Start, Goal::Stop, Goal::Respawn];

    pub fn name(self) -> &'static str {
        match self {
            Goal::Start => "start",
            Goal::Stop => "stop",
            Goal::Respawn => "respawn",
        }
    }

    /// The goal [`Goal::name`] names.
    pub fn from_name(name: &str) -> Option<Goal> {
        Goal::ALL.into_iter().find(|goal| goal.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Waiting,
    Queued,
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
    pub const ALL: [State; 11] = [
        State::Waiting,
        State::Queued,
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
            State::Queued => "queued",
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

    /// The state [`State::name`] names.
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.name() == name)
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
        (Waiting, Start | Respawn) => Queued,
        (Waiting, Stop) => Waiting,
        (Queued, Start | Respawn) => Starting,
        (Queued, Stop) => Waiting,
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

/// The job events an instance emits and, for `starting` and `stopping`, blocks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEvent {
    Starting,
    Stopping,
}

/// Whether a start from `waiting` may go ahead: the admission room's answer, a fact of
/// entering `queued`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Nothing holds it back (or the operator insisted): it goes on to `starting` now.
    Now,
    /// A gate, a pool or a required file holds it back: it waits in `queued`.
    Later,
    /// It can never be admitted (an amount that is not a positive number, or more than a
    /// pool holds; a gate whose wait ran out with `gate expire skip`): the start fails.
    Never,
}

/// One thing the runtime does on entering a state, in the order [`Entry::effects`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The start is admitted: it takes its amounts of its pools and leaves the queue.
    Admit,
    /// The start waits for admission: it joins the queue.
    Queue,
    /// The start can never be admitted: it fails (the goal becomes stop), and leaves the
    /// queue if it was in it.
    Refuse,
    /// Arm the respawn back-off; the instance stays where it is until it fires.
    RespawnDelay,
    /// A new run begins: a respawn's goal becomes start; the last run's failure, restart and
    /// script-kill marks, stop environment, pending back-off and stop matcher are reset; the
    /// environment of the start request takes over.
    BeginRun,
    /// Emit the event and block the instance on it until it is finished.
    EmitBlocking(JobEvent),
    /// Emit `started` and note when and in which order the instance came up.
    Started,
    /// A task's main process has ended: a goal of start becomes stop.
    TaskDone,
    /// The instance reached its goal: clients waiting for `start` are answered.
    Finished,
    /// Send the job's kill signal to the main process and arm the kill timer.
    KillMain,
    /// Emit `stopped`, record the result, answer waiting clients and drop the instance
    /// (instances do not persist in `waiting`).
    Retire,
}

/// What follows an [`Entry`]'s effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Do not enter the state at all (the effects hold it off).
    Hold,
    /// Do not enter the state: go on at once to [`next_state`] for the goal as the effects
    /// left it (a start that `queued` does not hold back).
    Pass,
    /// Rest in the state until something outside moves the instance on: an event finishing,
    /// a process exiting, a timer, a goal change.
    Rest,
    /// Go on at once to [`next_state`] for the goal as the effects left it.
    Next,
    /// Spawn the job's process for `stage`. A spawn that fails marks the instance failed when
    /// `failure_fails`, and goes on like `Next`; so does a process that is not spawned (an
    /// in-process Lua script). A spawned process is followed by `after`.
    Run {
        stage: Stage,
        after: AfterSpawn,
        failure_fails: bool,
    },
}

/// What follows a process that was spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSpawn {
    /// Rest until it exits (the scripts).
    Exit,
    /// Rest until it is ready (`expect fork|daemon|stop|notify`, `pid file`).
    Ready,
    /// Go on at once (a main process that is ready when it runs).
    Next,
}

/// The facts about an instance and its job that decide an [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The state the instance leaves.
    pub from: State,
    pub goal: Goal,
    pub task: bool,
    /// The main process is running (or is being waited for).
    pub main_alive: bool,
    /// Which processes the job defines.
    pub defines: Processes,
    /// The job's main process needs a readiness wait after its spawn.
    pub awaits_readiness: bool,
    /// A respawn back-off is due before the next run.
    pub respawn_delay: bool,
    /// Whether the start may go ahead (it matters only entering `queued`).
    pub admission: Admission,
}

/// A set of [`Stage`]s: which processes a job defines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Processes(u8);

impl Processes {
    fn bit(stage: Stage) -> u8 {
        1 << (stage as u8)
    }

    pub fn with(self, stage: Stage) -> Processes {
        Processes(self.0 | Processes::bit(stage))
    }

    pub fn has(self, stage: Stage) -> bool {
        self.0 & Processes::bit(stage) != 0
    }
}

impl FromIterator<Stage> for Processes {
    fn from_iter<I: IntoIterator<Item = Stage>>(stages: I) -> Processes {
        stages.into_iter().fold(Processes::default(), Processes::with)
    }
}

/// What entering a state does: the effects, in order, and what follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub effects: &'static [Effect],
    pub then: Then,
}

const fn entry(effects: &'static [Effect], then: Then) -> Entry {
    Entry { effects, then }
}

/// What entering `state` does, given the facts. Only `running` looks at `from`: it emits
/// `started` when it comes from `post-start`, and not when a `pre-stop` is called off.
pub fn enter(state: State, facts: Facts) -> Entry {
    use {Effect::*, Stage as P, Then::*};
    let script = |stage: Stage, failure_fails: bool| {
        let wanted = facts.defines.has(stage) && (stage != P::PreStop || facts.main_alive);
        if wanted {
            entry(
                &[],
                Run {
                    stage,
                    after: AfterSpawn::Exit,
                    failure_fails,
                },
            )
        } else {
            entry(&[], Next)
        }
    };
    match state {
        State::Waiting => entry(&[Retire], Rest),
        State::Queued => match facts.admission {
            Admission::Now => entry(&[Admit], Pass),
            Admission::Later => entry(&[Queue], Rest),
            Admission::Never => entry(&[Refuse], Pass),
        },
        State::Starting if facts.goal == Goal::Respawn && facts.respawn_delay => entry(&[RespawnDelay], Hold),
        State::Starting => entry(&[BeginRun, EmitBlocking(JobEvent::Starting)], Rest),
        State::PreStart => script(P::PreStart, true),
        State::PostStart => script(P::PostStart, false),
        State::PreStop => script(P::PreStop, false),
        State::PostStop => script(P::PostStop, true),
        State::Spawned if facts.defines.has(P::Main) => entry(
            &[],
            Run {
                stage: P::Main,
                after: if facts.awaits_readiness {
                    AfterSpawn::Ready
                } else {
                    AfterSpawn::Next
                },
                failure_fails: true,
            },
        ),
        State::Spawned => entry(&[], Next),
        State::Running => {
            let up = facts.from == State::PostStart;
            if facts.task && !facts.main_alive {
                // A task is done once its main process has ended.
                entry(if up { &[Started, TaskDone] } else { &[TaskDone] }, Next)
            } else {
                let effects: &'static [Effect] = match (up, facts.task) {
                    (true, false) => &[Started, Finished],
                    (true, true) => &[Started],
                    (false, false) => &[Finished],
                    (false, true) => &[],
                };
                entry(effects, if facts.goal == Goal::Start { Rest } else { Next })
            }
        }
        State::Stopping => entry(&[EmitBlocking(JobEvent::Stopping)], Rest),
        State::Killed if facts.main_alive => entry(&[KillMain], Rest),
        State::Killed => entry(&[], Next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Goal::*;
    use State::*;

    fn facts(from: State, goal: Goal) -> Facts {
        Facts {
            from,
            goal,
            task: false,
            main_alive: false,
            defines: Processes::default(),
            awaits_readiness: false,
            respawn_delay: false,
            admission: Admission::Now,
        }
    }

    /// Every combination of facts, for every state.
    fn every_case() -> impl Iterator<Item = (State, Facts)> {
        let kinds = Stage::ALL;
        State::ALL.into_iter().flat_map(move |state| {
            State::ALL.into_iter().flat_map(move |from| {
                [Start, Stop, Respawn].into_iter().flat_map(move |goal| {
                    (0..3 << (kinds.len() + 4)).map(move |bits: u32| {
                        let defines = kinds
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| bits & (1 << i) != 0)
                            .map(|(_, kind)| kind)
                            .collect();
                        let flag = |n: usize| bits & (1 << (kinds.len() + n)) != 0;
                        let facts = Facts {
                            from,
                            goal,
                            task: flag(0),
                            main_alive: flag(1),
                            defines,
                            awaits_readiness: flag(2),
                            respawn_delay: flag(3),
                            admission: [Admission::Now, Admission::Later, Admission::Never]
                                [(bits >> (kinds.len() + 4)) as usize],
                        };
                        (state, facts)
                    })
                })
            })
        })
    }

    /// The entry table, row by row: each row is a state, the facts that matter for it, and
    /// the entry. Facts not named are irrelevant, which `entries_depend_only_on_their_facts`
    /// checks over every combination.
    #[test]
    fn entry_table() {
        use AfterSpawn as After;
        use Effect::*;
        use Stage as P;
        let all = Stage::ALL.into_iter().collect::<Processes>();
        let none = Processes::default();
        let run = |stage, after, failure_fails| Then::Run {
            stage,
            after,
            failure_fails,
        };
        #[rustfmt::skip]
        let rows: Vec<(State, Facts, Entry)> = vec![
            (Waiting, facts(PostStop, Stop), entry(&[Retire], Then::Rest)),
            (Queued, facts(Waiting, Start), entry(&[Admit], Then::Pass)),
            (Queued, Facts { admission: Admission::Later, ..facts(Waiting, Start) }, entry(&[Queue], Then::Rest)),
            (Queued, Facts { admission: Admission::Never, ..facts(Waiting, Start) }, entry(&[Refuse], Then::Pass)),
            // Admitted once it waited: the admission room enters `queued` again.
            (Queued, facts(Queued, Start), entry(&[Admit], Then::Pass)),
            (Starting, facts(Waiting, Start), entry(&[BeginRun, EmitBlocking(JobEvent::Starting)], Then::Rest)),
            (Starting, facts(PostStop, Respawn), entry(&[BeginRun, EmitBlocking(JobEvent::Starting)], Then::Rest)),
            (Starting, Facts { respawn_delay: true, ..facts(PostStop, Respawn) }, entry(&[RespawnDelay], Then::Hold)),
            // A back-off is for respawns only; a start request does not wait for it.
            (Starting, Facts { respawn_delay: true, ..facts(PostStop, Start) }, entry(&[BeginRun, EmitBlocking(JobEvent::Starting)], Then::Rest)),
            (PreStart, Facts { defines: all, ..facts(Starting, Start) }, entry(&[], run(P::PreStart, After::Exit, true))),
            (PreStart, Facts { defines: none, ..facts(Starting, Start) }, entry(&[], Then::Next)),
            (Spawned, Facts { defines: all, ..facts(PreStart, Start) }, entry(&[], run(P::Main, After::Next, true))),
            (Spawned, Facts { defines: all, awaits_readiness: true, ..facts(PreStart, Start) }, entry(&[], run(P::Main, After::Ready, true))),
            (Spawned, Facts { defines: none, awaits_readiness: true, ..facts(PreStart, Start) }, entry(&[], Then::Next)),
            (PostStart, Facts { defines: all, ..facts(Spawned, Start) }, entry(&[], run(P::PostStart, After::Exit, false))),
            (PostStart, Facts { defines: none, ..facts(Spawned, Start) }, entry(&[], Then::Next)),
            (Running, Facts { main_alive: true, ..facts(PostStart, Start) }, entry(&[Started, Finished], Then::Rest)),
            (Running, Facts { main_alive: true, ..facts(PostStart, Stop) }, entry(&[Started, Finished], Then::Next)),
            (Running, Facts { main_alive: true, ..facts(PreStop, Start) }, entry(&[Finished], Then::Rest)),
            (Running, Facts { main_alive: false, ..facts(PostStart, Start) }, entry(&[Started, Finished], Then::Rest)),
            (Running, Facts { task: true, ..facts(PostStart, Start) }, entry(&[Started, TaskDone], Then::Next)),
            (Running, Facts { task: true, ..facts(PreStop, Stop) }, entry(&[TaskDone], Then::Next)),
            (Running, Facts { task: true, main_alive: true, ..facts(PostStart, Start) }, entry(&[Started], Then::Rest)),
            (Running, Facts { task: true, main_alive: true, ..facts(PreStop, Start) }, entry(&[], Then::Rest)),
            (Running, Facts { task: true, main_alive: true, ..facts(PreStop, Respawn) }, entry(&[], Then::Next)),
            (PreStop, Facts { defines: all, main_alive: true, ..facts(Running, Stop) }, entry(&[], run(P::PreStop, After::Exit, false))),
            // No pre-stop once the main process is gone: there is nothing left to prepare.
            (PreStop, Facts { defines: all, main_alive: false, ..facts(Running, Stop) }, entry(&[], Then::Next)),
            (PreStop, Facts { defines: none, main_alive: true, ..facts(Running, Stop) }, entry(&[], Then::Next)),
            (Stopping, facts(Running, Stop), entry(&[EmitBlocking(JobEvent::Stopping)], Then::Rest)),
            (Killed, Facts { main_alive: true, ..facts(Stopping, Stop) }, entry(&[KillMain], Then::Rest)),
            (Killed, Facts { main_alive: false, ..facts(Stopping, Stop) }, entry(&[], Then::Next)),
            (PostStop, Facts { defines: all, ..facts(Killed, Stop) }, entry(&[], run(P::PostStop, After::Exit, true))),
            (PostStop, Facts { defines: none, ..facts(Killed, Stop) }, entry(&[], Then::Next)),
        ];
        for (state, facts, expected) in &rows {
            assert_eq!(enter(*state, *facts), *expected, "entering {state} with {facts:?}");
        }
        // Every state has rows.
        for state in State::ALL {
            assert!(rows.iter().any(|row| row.0 == state), "{state} has no row");
        }
    }

    /// Over every combination of facts: a fact changes an entry only where the table says it
    /// matters, a process is run only in its own state and only when the job defines it,
    /// and only `starting` holds an instance off.
    #[test]
    fn entries_depend_only_on_their_facts() {
        let mut cases = 0;
        for (state, facts) in every_case() {
            cases += 1;
            let got = enter(state, facts);
            let same = |other: Facts| assert_eq!(enter(state, other), got, "{state}: {facts:?} / {other:?}");
            if state != Running {
                same(Facts { from: Waiting, ..facts });
                same(Facts {
                    task: !facts.task,
                    ..facts
                });
            }
            if state != Spawned {
                same(Facts {
                    awaits_readiness: !facts.awaits_readiness,
                    ..facts
                });
            }
            if state != Starting {
                same(Facts {
                    respawn_delay: !facts.respawn_delay,
                    ..facts
                });
            }
            if state != Queued {
                for admission in [Admission::Now, Admission::Later, Admission::Never] {
                    same(Facts { admission, ..facts });
                }
            }
            if !matches!(state, PreStop | Running | Killed) {
                same(Facts {
                    main_alive: !facts.main_alive,
                    ..facts
                });
            }
            if let Then::Run { stage: kind, .. } = got.then {
                let own = match state {
                    PreStart => Stage::PreStart,
                    Spawned => Stage::Main,
                    PostStart => Stage::PostStart,
                    PreStop => Stage::PreStop,
                    PostStop => Stage::PostStop,
                    other => panic!("{other} runs {kind:?}"),
                };
                assert_eq!(kind, own);
                assert!(facts.defines.has(kind));
            }
            assert_eq!(
                got.then == Then::Hold,
                state == Starting && facts.goal == Respawn && facts.respawn_delay
            );
            assert_eq!(got.effects.contains(&Effect::Retire), state == Waiting);
            // Only `queued` lets a start pass without entering it, and only it admits.
            assert_eq!(
                got.then == Then::Pass,
                state == Queued && facts.admission != Admission::Later
            );
            assert_eq!(
                got.effects
                    .iter()
                    .any(|effect| matches!(effect, Effect::Admit | Effect::Queue | Effect::Refuse)),
                state == Queued
            );
        }
        assert_eq!(cases, 11 * 11 * 3 * 512 * 3);
    }

    /// A toy runtime driven by `enter` and `next_state` alone: spawns always work, processes
    /// run until the test ends them, events finish at once. It records what the runtime
    /// would do.
    struct Toy {
        state: State,
        goal: Goal,
        task: bool,
        defines: Processes,
        main: bool,
        log: Vec<String>,
    }

    impl Toy {
        fn new(task: bool, defines: Processes) -> Toy {
            Toy {
                state: Waiting,
                goal: Stop,
                task,
                defines,
                main: false,
                log: Vec::new(),
            }
        }

        /// Enters `state` and goes on until the instance rests.
        fn go(&mut self, mut state: State) {
            loop {
                let facts = Facts {
                    from: self.state,
                    goal: self.goal,
                    task: self.task,
                    main_alive: self.main,
                    defines: self.defines,
                    awaits_readiness: false,
                    respawn_delay: false,
                    admission: Admission::Now,
                };
                let entry = enter(state, facts);
                if entry.then != Then::Pass {
                    self.state = state;
                }
                for effect in entry.effects {
                    match effect {
                        Effect::BeginRun => {}
                        Effect::EmitBlocking(JobEvent::Starting) => self.log.push("starting".into()),
                        Effect::EmitBlocking(JobEvent::Stopping) => self.log.push("stopping".into()),
                        Effect::Started => self.log.push("started".into()),
                        Effect::TaskDone if self.goal == Start => self.goal = Stop,
                        Effect::KillMain => self.log.push("kill".into()),
                        Effect::Retire => self.log.push("stopped".into()),
                        _ => {}
                    }
                }
                match entry.then {
                    Then::Hold => return,
                    Then::Pass => {}
                    Then::Rest => match entry.effects.last() {
                        // The blocking events finish at once; a killed main process dies.
                        Some(Effect::EmitBlocking(_)) => {}
                        Some(Effect::KillMain) => self.main = false,
                        _ => return,
                    },
                    Then::Next => {}
                    Then::Run { stage: kind, .. } => {
                        self.log.push(kind.keyword().into());
                        if kind == Stage::Main {
                            self.main = true;
                        }
                        // A script runs to its end here; the main process keeps running.
                    }
                }
                state = next_state(state, self.goal, self.main);
            }
        }

        fn start(&mut self) {
            self.goal = Start;
            self.go(next_state(self.state, Start, self.main));
        }

        fn stop(&mut self) {
            self.goal = Stop;
            if self.state.is_rest() {
                self.go(next_state(self.state, Stop, self.main));
            }
        }
    }

    /// A service's life for every set of processes it may define: the job events and the
    /// processes come in Upstart's order, and only the defined processes run.
    #[test]
    fn a_service_lives_in_order_for_every_set_of_processes() {
        for bits in 0..32u32 {
            let defines: Processes = Stage::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, kind)| kind)
                .collect();
            let mut toy = Toy::new(false, defines);
            toy.start();
            assert_eq!(toy.state, Running);
            toy.stop();
            assert_eq!(toy.state, Waiting);
            let expected: Vec<&str> = [
                Some("starting"),
                defines.has(Stage::PreStart).then_some("pre-start"),
                defines.has(Stage::Main).then_some("main"),
                defines.has(Stage::PostStart).then_some("post-start"),
                Some("started"),
                (defines.has(Stage::PreStop) && defines.has(Stage::Main)).then_some("pre-stop"),
                Some("stopping"),
                defines.has(Stage::Main).then_some("kill"),
                defines.has(Stage::PostStop).then_some("post-stop"),
                Some("stopped"),
            ]
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(toy.log, expected, "processes {defines:?}");
        }
    }

    /// A task whose main process has ended goes on to stop by itself.
    #[test]
    fn a_task_stops_when_its_main_process_ends() {
        let mut toy = Toy::new(true, [Stage::Main].into_iter().collect());
        toy.start();
        assert_eq!((toy.state, toy.goal), (Running, Start));
        // The main process exits: the runtime re-enters running.
        toy.main = false;
        toy.go(Running);
        assert_eq!((toy.state, toy.goal), (Waiting, Stop));
        assert_eq!(toy.log, ["starting", "main", "started", "stopping", "stopped"]);
    }

    /// The whole table, row by row: (state, goal, main alive) -> next.
    #[test]
    fn transition_table_is_exhaustive() {
        let table: [(State, Goal, bool, State); 66] = [
            (Waiting, Start, false, Queued),
            (Waiting, Start, true, Queued),
            (Waiting, Stop, false, Waiting),
            (Waiting, Stop, true, Waiting),
            (Waiting, Respawn, false, Queued),
            (Waiting, Respawn, true, Queued),
            (Queued, Start, false, Starting),
            (Queued, Start, true, Starting),
            (Queued, Stop, false, Waiting),
            (Queued, Stop, true, Waiting),
            (Queued, Respawn, false, Starting),
            (Queued, Respawn, true, Starting),
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
        assert_eq!(seen, [Waiting, Queued, Starting, PreStart, Spawned, PostStart, Running]);
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
