//! Integration tests, linked as one binary.

mod cli;
mod corpus;
mod e2e;
mod e2e_actions;
mod e2e_admission;
mod e2e_control;
mod e2e_lua;
mod e2e_observe;
mod e2e_readiness;
mod e2e_reexec;
mod e2e_security;
mod e2e_system;
mod e2e_timers;
mod golden;
mod graph;
mod harness;
mod linking;
mod props;
mod shell;
mod tidy;
mod waiting;
