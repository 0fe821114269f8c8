//! Diagnostics: errors and warnings about configuration files, and how they are printed.
//!
//! A diagnostic names a file and, when it can, a span. Rendering computes line and column
//! from the span and prints `FILE:LINE:COL: error: MESSAGE`, the source line, a caret line
//! and an optional `= help:` line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

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
    texts: HashMap<String, SourceText>,
}

/// One file's text, and where its lines start, found on first use: rendering a diagnostic
/// then costs a binary search, not a walk from the start of the file (10,000 diagnostics
/// in one file took seconds when each walked it).
#[derive(Clone, Debug)]
struct SourceText {
    text: Arc<str>,
    line_starts: OnceLock<Vec<u32>>,
}

impl SourceText {
    fn line_starts(&self) -> &[u32] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr_newlines(&self.text).map(|at| at as u32 + 1))
                .collect()
        })
    }

    /// The 0-based index of the line holding `offset`, and where that line starts.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let starts = self.line_starts();
        let index = starts
            .partition_point(|&start| start as usize <= offset)
            .saturating_sub(1);
        (index, starts[index] as usize)
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|(_, byte)| *byte == b'\n')
        .map(|(at, _)| at)
}

/// A diagnostic position: 1-based line and column (column counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// The most characters of a source line a rendered diagnostic quotes: a line of garbage a
/// megabyte long is quoted around the caret, not whole.
pub const MAX_QUOTED_CHARS: usize = 160;

impl Sources {
    pub fn insert(&mut self, file: &str, text: Arc<str>) {
        self.texts.insert(
            file.to_string(),
            SourceText {
                text,
                line_starts: OnceLock::new(),
            },
        );
    }

    pub fn get(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(|source| &*source.text)
    }

    /// Line and column of the start of a span.
    pub fn position(&self, file: &str, span: Span) -> Option<Position> {
        let source = self.texts.get(file)?;
        Some(position_in(source, span.lo as usize))
    }

    /// The span of line `line` (1-based) of a file, without its indentation.
    pub fn line_span(&self, file: &str, line: u32) -> Option<Span> {
        let source = self.texts.get(file)?;
        let text = &*source.text;
        let start = *source.line_starts().get(line.checked_sub(1)? as usize)? as usize;
        let end = text[start..].find('\n').map_or(text.len(), |at| start + at);
        let indent = text[start..end].len() - text[start..end].trim_start().len();
        Some(Span::new(start + indent, end))
    }

    /// Renders a diagnostic with its source line and caret.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let mut out = String::new();
        let located = diagnostic.span.zip(self.texts.get(&diagnostic.file));
        match located {
            Some((span, source)) => {
                let text = &*source.text;
                let position = position_in(source, span.lo as usize);
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
                let (_, line_start) = source.line_of(lo);
                let line_end = text[lo..].find('\n').map_or(text.len(), |at| lo + at);
                let hi = floor_boundary(text, (span.hi as usize).clamp(lo, line_end));
                // The quoted part: the whole line, or a window around the caret.
                let before: Vec<(usize, char)> = text[line_start..lo]
                    .char_indices()
                    .rev()
                    .take(MAX_QUOTED_CHARS / 2)
                    .collect();
                let (quote_start, cut_before) = match before.last() {
                    Some(&(at, _)) if before.len() == MAX_QUOTED_CHARS / 2 && at > 0 => (line_start + at, true),
                    _ => (line_start, false),
                };
                let room = MAX_QUOTED_CHARS - before.len().min(MAX_QUOTED_CHARS / 2);
                let quote_end = text[lo..line_end]
                    .char_indices()
                    .nth(room)
                    .map_or(line_end, |(at, _)| lo + at);
                let cut_after = quote_end < line_end;
                let gutter = position.line.to_string();
                let pad = " ".repeat(gutter.len());
                let ellipsis = |cut: bool| if cut { "…" } else { "" };
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(
                    out,
                    "{gutter} | {}{}{}",
                    ellipsis(cut_before),
                    text[quote_start..quote_end].trim_end_matches('\r'),
                    ellipsis(cut_after)
                );
                let width = text[lo..hi.min(quote_end).max(lo)].chars().count().max(1);
                let indent: String = std::iter::once(ellipsis(cut_before))
                    .filter(|mark| !mark.is_empty())
                    .map(|_| ' ')
                    .chain(
                        text[quote_start..lo]
                            .chars()
                            .map(|c| if c == '\t' { '\t' } else { ' ' }),
                    )
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

fn position_in(source: &SourceText, offset: usize) -> Position {
    let text = &*source.text;
    let offset = floor_boundary(text, offset);
    let (index, line_start) = source.line_of(offset);
    let column = text[line_start..offset].chars().count() as u32 + 1;
    Position {
        line: index as u32 + 1,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> Sources {
        let mut sources = Sources::default();
        sources.insert("f.conf", Arc::from(text));
        sources
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let sources = sources("ab\nçd\n\nx");
        let at = |offset: u32| {
            sources
                .position("f.conf", Span::new(offset as usize, offset as usize))
                .unwrap()
        };
        assert_eq!(at(0), Position { line: 1, column: 1 });
        assert_eq!(at(2), Position { line: 1, column: 3 });
        assert_eq!(at(3), Position { line: 2, column: 1 });
        // `ç` is two bytes and one column.
        assert_eq!(at(5), Position { line: 2, column: 2 });
        assert_eq!(at(7), Position { line: 3, column: 1 });
        assert_eq!(at(8), Position { line: 4, column: 1 });
        assert_eq!(at(99), Position { line: 4, column: 2 });
    }

    #[test]
    fn line_spans_skip_indentation() {
        let sources = sources("a\n  bc\nd");
        assert_eq!(sources.line_span("f.conf", 2), Some(Span::new(4, 6)));
        assert_eq!(sources.line_span("f.conf", 3), Some(Span::new(7, 8)));
        assert_eq!(sources.line_span("f.conf", 4), None);
        assert_eq!(sources.line_span("f.conf", 0), None);
    }

    #[test]
    fn a_short_line_is_quoted_whole() {
        let sources = sources("exec /bin/true\nbogus stanza\n");
        let diagnostic = Diagnostic::error("f.conf", Some(Span::new(15, 20)), "unknown stanza");
        assert_eq!(
            sources.render(&diagnostic),
            "f.conf:2:1: error: unknown stanza\n  |\n2 | bogus stanza\n  | ^^^^^\n"
        );
    }

    #[test]
    fn a_long_line_is_quoted_around_the_caret() {
        let line = format!("{}BAD{}", "x".repeat(5000), "y".repeat(5000));
        let sources = sources(&line);
        let diagnostic = Diagnostic::error("f.conf", Some(Span::new(5000, 5003)), "bad");
        let text = sources.render(&diagnostic);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "f.conf:1:5001: error: bad");
        let quoted = lines[2].strip_prefix("1 | ").unwrap();
        assert!(quoted.starts_with('…') && quoted.ends_with('…'), "{quoted}");
        assert!(quoted.chars().count() <= MAX_QUOTED_CHARS + 2, "{}", quoted.len());
        // The caret sits under `BAD`.
        let caret = lines[3].strip_prefix("  | ").unwrap();
        let column = caret.find('^').unwrap();
        assert_eq!(&quoted.chars().skip(column).take(3).collect::<String>(), "BAD");
        assert_eq!(caret.trim(), "^^^");
    }
}
