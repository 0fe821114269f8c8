//! Integration tests, linked as one binary.

mod cli;
mod corpus;
mod e2e;
mod golden;
mod harness;
mod props;
mod tidy;
