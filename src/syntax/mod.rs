//! syntax: text → `FileAst`. Owns the job language's lexical rules, grammar and parse errors.
//! Never touches the file system and never merges stanzas (that is `model`).

pub mod ast;
pub mod error;
pub(crate) mod lexer;
pub mod parser;
pub mod values;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind};
pub use parser::{parse_daemon_file, parse_file, parse_temporal};
