//! machine: decides, never acts. The goal/state table of an instance, event-expression
//! matching with memory, and the environment languages. No IO, no clocks, no processes;
//! the runtime feeds it facts and performs what it decides.

pub mod environ;
pub mod exit;
pub mod matcher;
pub mod state;

pub use matcher::{EventId, EventRef, Matcher, Offer};
pub use state::{AfterSpawn, Effect, Entry, Facts, JobEvent, Processes, Then, enter, next_state};
pub use state::{Goal, State};
