//! uprise: an event-driven init daemon and job supervisor that speaks Upstart's job language.
//! See docs/ARCHITECTURE.md for the map of the code.

pub mod control;
pub mod ctl;
pub mod lua;
pub mod machine;
pub mod model;
pub mod reexec;
pub mod runtime;
pub mod syntax;
pub mod sys;
pub mod temporal;
