//! The line lexer: Upstart's (libnih's) lexical rules over one source text.
//!
//! It owns blanks, `\`-continuations, `#` comments, quoting and dequoting, verbatim command
//! lines and `script … end script` blocks. It knows nothing about stanzas. Positions are byte
//! offsets into the source; line and column are computed only when rendering.

use super::ast::Span;
use super::error::{ParseError, ParseErrorKind};

/// A word read from the source: dequoted text plus where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) span: Span,
    /// True when any part of the word was quoted; quoted words are never keywords or operators.
    pub(crate) quoted: bool,
}

impl Word {
    /// The word as a keyword: only an unquoted word can be one.
    pub(crate) fn keyword(&self) -> Option<&str> {
        (!self.quoted).then_some(self.text.as_str())
    }

    pub(crate) fn is(&self, keyword: &str) -> bool {
        self.keyword() == Some(keyword)
    }
}

/// A cursor over the source text.
#[derive(Clone)]
pub(crate) struct Lexer<'a> {
    pub(crate) src: &'a str,
    pub(crate) pos: usize,
}

fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r')
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes().get(self.pos + offset).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(crate) fn span_from(&self, lo: usize) -> Span {
        Span::new(lo, self.pos)
    }

    /// An empty span at the cursor.
    pub(crate) fn here(&self) -> Span {
        Span::new(self.pos, self.pos)
    }

    fn trailing_slash(&self) -> ParseError {
        ParseError::new(ParseErrorKind::TrailingSlash, Span::new(self.pos, self.pos + 1))
    }

    /// Skips blanks and `\`-newline continuations, but not newlines.
    pub(crate) fn skip_blanks(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(byte) if is_blank(byte) => self.pos += 1,
                Some(b'\\') => match self.peek_at(1) {
                    Some(b'\n') => self.pos += 2,
                    Some(b'\r') if self.peek_at(2) == Some(b'\n') => self.pos += 3,
                    None => return Err(self.trailing_slash()),
                    Some(_) => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Skips blanks, continuations, newlines and comments (inside parentheses).
    pub(crate) fn skip_blanks_and_newlines(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_blanks()?;
            match self.peek() {
                Some(b'\n') => self.pos += 1,
                Some(b'#') => self.skip_comment(),
                _ => return Ok(()),
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(byte) = self.peek() {
            if byte == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips blank lines and comment lines between stanzas.
    pub(crate) fn skip_empty_lines(&mut self) -> Result<(), ParseError> {
        self.skip_blanks_and_newlines()
    }

    /// Ends a stanza: blanks, an optional comment, then a newline or the end of the file.
    pub(crate) fn finish_line(&mut self) -> Result<(), ParseError> {
        self.skip_blanks()?;
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'#') => {
                self.skip_comment();
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
                Ok(())
            }
            Some(_) => {
                let lo = self.pos;
                let mut probe = self.clone();
                let hi = match probe.word(false) {
                    Ok(Some(word)) => word.span.hi as usize,
                    _ => lo + 1,
                };
                Err(ParseError::new(ParseErrorKind::UnexpectedToken, Span::new(lo, hi)))
            }
        }
    }

    /// Reads the next word on this logical line, or `None` at the end of the line.
    /// With `parens`, `(` and `)` end a word and are returned as one-character words.
    pub(crate) fn word(&mut self, parens: bool) -> Result<Option<Word>, ParseError> {
        self.skip_blanks()?;
        match self.peek() {
            None | Some(b'\n') | Some(b'#') => return Ok(None),
            Some(byte @ (b'(' | b')')) if parens => {
                let lo = self.pos;
                self.pos += 1;
                return Ok(Some(Word {
                    text: (byte as char).to_string(),
                    span: self.span_from(lo),
                    quoted: false,
                }));
            }
            _ => {}
        }
        let lo = self.pos;
        let mut text = Vec::new();
        let mut quoted = false;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => break,
                b'(' | b')' if parens => break,
                b'\\' => match self.peek_at(1) {
                    None => return Err(self.trailing_slash()),
                    Some(b'\n') => break,
                    Some(b'\r') if self.peek_at(2) == Some(b'\n') => break,
                    Some(escaped @ (b'\\' | b' ' | b'\t' | b'"' | b'\'')) => {
                        text.push(escaped);
                        self.pos += 2;
                    }
                    Some(_) => {
                        text.push(b'\\');
                        self.pos += 1;
                    }
                },
                b'"' | b'\'' => {
                    quoted = true;
                    self.quoted_part(byte, &mut text)?;
                }
                _ => {
                    text.push(byte);
                    self.pos += 1;
                }
            }
        }
        // Only whole UTF-8 sequences were copied, byte by byte, so this cannot fail.
        let text = String::from_utf8(text).unwrap_or_default();
        Ok(Some(Word {
            text,
            span: self.span_from(lo),
            quoted,
        }))
    }

    /// Reads a quoted part, the cursor on its opening quote, appending the dequoted text.
    fn quoted_part(&mut self, quote: u8, text: &mut Vec<u8>) -> Result<(), ParseError> {
        let lo = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => {
                    return Err(ParseError::new(
                        ParseErrorKind::UnterminatedQuote,
                        Span::new(lo, lo + 1),
                    ));
                }
                Some(byte) if byte == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.peek_at(1) {
                    None => return Err(self.trailing_slash()),
                    Some(b'\n') => {
                        self.pos += 2;
                        self.collapse_newline(text);
                    }
                    Some(escaped @ (b'\\' | b'"' | b'\'')) => {
                        text.push(escaped);
                        self.pos += 2;
                    }
                    Some(_) => {
                        text.push(b'\\');
                        self.pos += 1;
                    }
                },
                Some(b'\n') => {
                    self.pos += 1;
                    self.collapse_newline(text);
                }
                Some(byte) => {
                    text.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    /// A newline inside quotes, and the indentation after it, become one space.
    fn collapse_newline(&mut self, text: &mut Vec<u8>) {
        while matches!(self.peek(), Some(byte) if is_blank(byte)) {
            self.pos += 1;
        }
        text.push(b' ');
    }

    /// Reads a required argument.
    pub(crate) fn arg(&mut self) -> Result<Word, ParseError> {
        match self.word(false)? {
            Some(word) => Ok(word),
            None => Err(ParseError::new(ParseErrorKind::ExpectedToken, self.here())),
        }
    }

    /// Reads the rest of the logical line verbatim, for `exec` and friends.
    /// Quotes and backslashes stay; continuations become one space; a trailing comment and
    /// trailing blanks are dropped. Consumes the newline.
    pub(crate) fn rest_verbatim(&mut self) -> Result<(String, Span), ParseError> {
        self.skip_blanks()?;
        let lo = self.pos;
        let mut out = String::new();
        let mut quote: Option<u8> = None;
        let mut quote_at = lo;
        let mut last_content = lo;
        while let Some(byte) = self.peek() {
            match byte {
                b'\n' if quote.is_none() => break,
                b'\n' => {
                    self.pos += 1;
                    out.push(' ');
                    while matches!(self.peek(), Some(b) if is_blank(b)) {
                        self.pos += 1;
                    }
                }
                b'#' if quote.is_none() && (out.is_empty() || out.ends_with([' ', '\t'])) => {
                    self.skip_comment();
                    break;
                }
                b'\\' => match self.peek_at(1) {
                    None => return Err(self.trailing_slash()),
                    Some(b'\n') => {
                        self.pos += 2;
                        while matches!(self.peek(), Some(b) if is_blank(b)) {
                            self.pos += 1;
                        }
                        if !out.ends_with(' ') {
                            out.push(' ');
                        }
                    }
                    Some(_) => {
                        let next = self.src[self.pos + 1..].chars().next().unwrap_or('\\');
                        out.push('\\');
                        out.push(next);
                        self.pos += 1 + next.len_utf8();
                        last_content = self.pos;
                    }
                },
                b'"' | b'\'' => {
                    match quote {
                        None => {
                            quote = Some(byte);
                            quote_at = self.pos;
                        }
                        Some(open) if open == byte => quote = None,
                        Some(_) => {}
                    }
                    out.push(byte as char);
                    self.pos += 1;
                    last_content = self.pos;
                }
                _ => {
                    let ch = self.src[self.pos..].chars().next().unwrap_or(' ');
                    out.push(ch);
                    self.pos += ch.len_utf8();
                    if !is_blank(byte) {
                        last_content = self.pos;
                    }
                }
            }
        }
        if quote.is_some() {
            return Err(ParseError::new(
                ParseErrorKind::UnterminatedQuote,
                Span::new(quote_at, quote_at + 1),
            ));
        }
        let trimmed = out.trim_end_matches([' ', '\t', '\r']).to_string();
        let span = Span::new(lo, last_content.max(lo));
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }
        if trimmed.is_empty() {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, Span::new(lo, lo)));
        }
        Ok((trimmed, span))
    }

    /// 1-based line number of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> u32 {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() as u32 + 1
    }

    /// Reads a block body, the cursor at the start of the line after the opening line, up to
    /// and including the line `end WORD`. Returns the de-indented body and the first body line.
    /// `open` is the span reported when the end line is missing.
    pub(crate) fn block(&mut self, end_word: &str, open: Span) -> Result<(String, u32), ParseError> {
        let first_line = self.line_of(self.pos);
        let mut lines: Vec<&'a str> = Vec::new();
        loop {
            if self.at_end() {
                return Err(ParseError::new(ParseErrorKind::UnterminatedBlock, open));
            }
            let rest = &self.src[self.pos..];
            let (line, advance) = match rest.find('\n') {
                Some(newline) => (&rest[..newline], newline + 1),
                None => (rest, rest.len()),
            };
            self.pos += advance;
            if is_end_line(line, end_word) {
                return Ok((dedent(&lines), first_line));
            }
            lines.push(line);
        }
    }
}

/// True for `end WORD` with optional blanks around and an optional trailing comment.
pub(crate) fn is_end_line(line: &str, end_word: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t', '\r']);
    let Some(rest) = line.strip_prefix("end") else {
        return false;
    };
    let after = rest.trim_start_matches([' ', '\t', '\r']);
    if after.len() == rest.len() {
        return false;
    }
    let Some(tail) = after.strip_prefix(end_word) else {
        return false;
    };
    let tail = tail.trim_start_matches([' ', '\t', '\r']);
    tail.is_empty() || tail.starts_with('#')
}

/// Removes the longest common leading-whitespace prefix of the non-blank lines.
/// Blank lines do not count (Upstart let them cancel the de-indent; see docs/language.md).
fn dedent(lines: &[&str]) -> String {
    let mut prefix: Option<&str> = None;
    for line in lines.iter().filter(|line| !line.trim().is_empty()) {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        let indent = &line[..indent_len];
        prefix = Some(match prefix {
            None => indent,
            Some(current) => {
                let common = current.bytes().zip(indent.bytes()).take_while(|(a, b)| a == b).count();
                &current[..common]
            }
        });
    }
    let prefix_len = prefix.map_or(0, str::len);
    let mut body = String::new();
    for line in lines {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            body.push('\n');
        } else {
            body.push_str(&line[prefix_len.min(line.len())..]);
            body.push('\n');
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        while let Some(word) = lexer.word(false).unwrap() {
            out.push(word.text);
        }
        out
    }

    #[test]
    fn dequotes_and_escapes() {
        assert_eq!(words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(words(r#"FRODO="foo bar""#), ["FRODO=foo bar"]);
        assert_eq!(words(r"a\ b c\\d e\x"), ["a b", r"c\d", r"e\x"]);
        assert_eq!(words("a \\\n   b"), ["a", "b"]);
        assert_eq!(words("\"multi\n   line\""), ["multi line"]);
        assert_eq!(words(r#""say \"hi\"""#), [r#"say "hi""#]);
    }

    #[test]
    fn comment_ends_words() {
        assert_eq!(words("a b # c d"), ["a", "b"]);
        assert_eq!(words("a#b"), ["a#b"]);
    }

    #[test]
    fn unterminated_quote_points_at_the_quote() {
        let mut lexer = Lexer::new("a \"bc");
        lexer.word(false).unwrap();
        let err = lexer.word(false).unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::UnterminatedQuote);
        assert_eq!(err.span, Span::new(2, 3));
    }

    #[test]
    fn trailing_slash() {
        let mut lexer = Lexer::new("a \\");
        lexer.word(false).unwrap();
        assert_eq!(lexer.word(false).unwrap_err().kind, ParseErrorKind::TrailingSlash);
    }

    #[test]
    fn verbatim_keeps_quotes_and_drops_comments() {
        let mut lexer = Lexer::new("/bin/foo \"a b\" 'c' \\\n   --x  # note\nnext");
        let (text, _) = lexer.rest_verbatim().unwrap();
        assert_eq!(text, "/bin/foo \"a b\" 'c' --x");
        assert_eq!(&lexer.src[lexer.pos..], "next");
    }

    #[test]
    fn verbatim_keeps_hash_inside_words_and_quotes() {
        let mut lexer = Lexer::new("echo a#b '# not' # yes");
        assert_eq!(lexer.rest_verbatim().unwrap().0, "echo a#b '# not'");
    }

    #[test]
    fn unterminated_quote_in_a_verbatim_line_points_at_the_quote() {
        // Found by the property test: the span once split the multi-byte character.
        let mut lexer = Lexer::new("log \u{e000}\"");
        let err = lexer.rest_verbatim().unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::UnterminatedQuote);
        assert_eq!(err.span, Span::new(7, 8));
    }

    #[test]
    fn end_lines() {
        assert!(is_end_line("end script", "script"));
        assert!(is_end_line("  end   script  # done", "script"));
        assert!(!is_end_line("endscript", "script"));
        assert!(!is_end_line("end scripts", "script"));
        assert!(!is_end_line("end script x", "script"));
        assert!(is_end_line("end job", "job"));
    }

    #[test]
    fn dedent_keeps_relative_indentation_and_ignores_blank_lines() {
        assert_eq!(dedent(&["    a", "", "      b", "    c"]), "a\n\n  b\nc\n");
        assert_eq!(dedent(&["\tif x:", "\t    y"]), "if x:\n    y\n");
        assert_eq!(dedent(&[" a", "\tb"]), " a\n\tb\n");
    }
}
