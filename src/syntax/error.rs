//! Parse errors: a kind (Upstart's message, or a new one for the extensions) and a span.
//!
//! Rendering with file, line, column and caret lives in `render.rs`; this module only
//! names what went wrong and where.

use super::ast::Span;

/// What went wrong. The messages of the Upstart kinds are Upstart's, word for word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The first word of a stanza is not a keyword (or a keyword was quoted).
    UnknownStanza,
    /// A stanza ended before a required argument.
    ExpectedToken,
    /// Something other than a comment follows a complete stanza.
    UnexpectedToken,
    /// A `'` or `"` was never closed.
    UnterminatedQuote,
    /// `script` (or `job`) without its `end` line.
    UnterminatedBlock,
    /// The file ends with a backslash.
    TrailingSlash,
    /// An operator or parenthesis where an event was due.
    ExpectedEvent,
    /// Parentheses do not pair up.
    MismatchedParens,
    /// Two operands without `and`/`or` between them.
    ExpectedOperator,
    /// A positional value after a `KEY=VALUE` one.
    ExpectedVariableName,
    IllegalInterval,
    IllegalLimit,
    IllegalExitStatus,
    IllegalSignal,
    IllegalUmask,
    IllegalNice,
    IllegalOomScore,
    IllegalOomLegacy,
    /// Extension value errors carry their own message.
    Illegal(String),
    /// `job` blocks inside `job` blocks, `end job` without `job`, and similar misuse.
    Misplaced(String),
}

impl ParseErrorKind {
    pub fn message(&self) -> String {
        let text = match self {
            ParseErrorKind::UnknownStanza => "Unknown stanza",
            ParseErrorKind::ExpectedToken => "Expected token",
            ParseErrorKind::UnexpectedToken => "Unexpected token",
            ParseErrorKind::UnterminatedQuote => "Unterminated quoted string",
            ParseErrorKind::UnterminatedBlock => "Unterminated block",
            ParseErrorKind::TrailingSlash => "Trailing slash in file",
            ParseErrorKind::ExpectedEvent => "Expected event",
            ParseErrorKind::MismatchedParens => "Mismatched parentheses",
            ParseErrorKind::ExpectedOperator => "Expected operator",
            ParseErrorKind::ExpectedVariableName => "Expected variable name before value",
            ParseErrorKind::IllegalInterval => "Illegal interval, expected number of seconds",
            ParseErrorKind::IllegalLimit => "Illegal limit, expected 'unlimited' or integer",
            ParseErrorKind::IllegalExitStatus => "Illegal exit status, expected integer",
            ParseErrorKind::IllegalSignal => "Illegal signal status, expected integer",
            ParseErrorKind::IllegalUmask => "Illegal file creation mask, expected octal integer",
            ParseErrorKind::IllegalNice => "Illegal nice value, expected -20 to 19",
            ParseErrorKind::IllegalOomScore => "Illegal oom score adjustment, expected -1000 to 1000 or 'never'",
            ParseErrorKind::IllegalOomLegacy => "Illegal oom adjustment, expected -17 to 15 or 'never'",
            ParseErrorKind::Illegal(message) | ParseErrorKind::Misplaced(message) => {
                return message.clone();
            }
        };
        text.to_string()
    }
}

/// One error in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub span: Span,
    pub kind: ParseErrorKind,
    pub help: Option<String>,
}

impl ParseError {
    pub fn new(kind: ParseErrorKind, span: Span) -> ParseError {
        ParseError { span, kind, help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> ParseError {
        self.help = Some(help.into());
        self
    }
}
