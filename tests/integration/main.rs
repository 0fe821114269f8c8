//! Integration tests, linked as one binary.

mod cli;
mod corpus;
mod golden;
mod props;
mod tidy;
