//! model: `FileAst` → `Job`s and diagnostics. Owns merging (last-wins, accumulate, overrides,
//! multi-job files), job naming, pools from the daemon file, and analysis. Reads files; never
//! spawns, never signals.

pub mod analyze;
pub mod diagnostic;
pub mod enforcement;
pub mod job;
pub mod links;
pub mod load;
pub mod small_map;
pub mod sparse;

pub use diagnostic::{Diagnostic, Severity, Sources};
pub use job::Job;
pub use load::{Config, ConfigSource, Pool};
