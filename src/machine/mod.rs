//! machine: decides, never acts. The goal/state table of an instance, event-expression
//! matching with memory, and the environment languages. No IO, no clocks, no processes;
//! the runtime feeds it facts and performs what it decides.

pub mod decide;
pub mod environ;
pub mod exit;
pub mod gate;
pub mod matcher;
pub mod pools;
pub mod stage;
pub mod state;

pub use decide::{AfterExit, ExitFacts, GoalChange, GoalFacts, after_exit, goal_changed, restart_from, script_fails};
pub use matcher::{EventId, EventRef, Matcher, Offer};
pub use stage::Stage;
pub use state::{Admission, AfterSpawn, Effect, Entry, Facts, JobEvent, Processes, Then, enter, next_state};
pub use state::{Goal, State};
