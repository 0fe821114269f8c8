//! Diagnostics: errors and warnings about configuration files, and how they are printed.
//!
//! A diagnostic names a file and, when it can, a span. Rendering computes line and column
//! from the span and prints `FILE:LINE:COL: error: MESSAGE`, the source line, a caret line
//! and an optional `= help:` line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::syntax::{ParseError, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub span: Option<Span>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &str, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(file: &str, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, span, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn from_parse(file: &str, error: &ParseError) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            span: Some(error.span),
            message: error.kind.message(),
            help: error.help.clone(),
        }
    }
}

/// The text of every file read, so diagnostics can quote it.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    texts: HashMap<String, Arc<str>>,
}

/// A diagnostic position: 1-based line and column (column counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Sources {
    pub fn insert(&mut self, file: &str, text: Arc<str>) {
        self.texts.insert(file.to_string(), text);
    }

    pub fn get(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(|text| &**text)
    }

    /// Line and column of the start of a span.
    pub fn position(&self, file: &str, span: Span) -> Option<Position> {
        let text = self.get(file)?;
        Some(position_in(text, span.lo as usize))
    }

    /// Renders a diagnostic with its source line and caret.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let mut out = String::new();
        let located = diagnostic.span.zip(self.get(&diagnostic.file));
        match located {
            Some((span, text)) => {
                let position = position_in(text, span.lo as usize);
                let _ = writeln!(
                    out,
                    "{}:{}:{}: {}: {}",
                    diagnostic.file,
                    position.line,
                    position.column,
                    diagnostic.severity.label(),
                    diagnostic.message
                );
                let lo = floor_boundary(text, span.lo as usize);
                let line_start = text[..lo].rfind('\n').map_or(0, |at| at + 1);
                let line_end = text[lo..].find('\n').map_or(text.len(), |at| lo + at);
                let line = &text[line_start..line_end];
                let gutter = position.line.to_string();
                let pad = " ".repeat(gutter.len());
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{gutter} | {}", line.trim_end_matches('\r'));
                let hi = floor_boundary(text, (span.hi as usize).clamp(lo, line_end));
                let width = text[lo..hi].chars().count().max(1);
                let indent: String = text[line_start..lo]
                    .chars()
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(width));
            }
            None => {
                let _ = writeln!(
                    out,
                    "{}: {}: {}",
                    diagnostic.file,
                    diagnostic.severity.label(),
                    diagnostic.message
                );
            }
        }
        if let Some(help) = &diagnostic.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// The nearest char boundary at or before `offset`, so a span can never split a character.
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn position_in(text: &str, offset: usize) -> Position {
    let offset = floor_boundary(text, offset);
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() as u32 + 1;
    Position { line, column }
}
