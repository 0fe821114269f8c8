//! The stanza parser: a recursive-descent parser over the lexer's words, one function per
//! grammar rule of `grammar/jobs.ebnf` (same names). Value grammars inside a word are the nom
//! parsers of `values.rs`.
//!
//! Parsing never stops at the first error: after an error the parser skips the rest of the
//! stanza (its parenthesised continuation lines, or its script block) and carries on, so one
//! run reports every error in a file. A file with any error defines no job (`model` enforces it).

use super::ast::*;
use super::error::{ParseError, ParseErrorKind};
use super::lexer::{Lexer, Word};
use super::values;

type PResult<T> = Result<T, ParseError>;

/// Parses a job file. Returns the tree and every error found; the tree is only meaningful
/// when there are no errors.
pub fn parse_file(src: &str) -> (FileAst, Vec<ParseError>) {
    let mut parser = Parser {
        lex: Lexer::new(src),
        errors: Vec::new(),
    };
    let file = parser.job_file();
    (file, parser.errors)
}

/// Parses a daemon file (`DIR.conf` beside a job dir).
pub fn parse_daemon_file(src: &str) -> (Vec<Spanned<DaemonStanza>>, Vec<ParseError>) {
    let mut parser = Parser {
        lex: Lexer::new(src),
        errors: Vec::new(),
    };
    let stanzas = parser.daemon_file();
    (stanzas, parser.errors)
}

/// Parses one temporal operand on its own, such as `every day at 03:00`, for `next-elapse`.
pub fn parse_temporal(src: &str) -> PResult<Temporal> {
    let mut parser = Parser {
        lex: Lexer::new(src),
        errors: Vec::new(),
    };
    let tokens = parser.expr_tokens()?;
    let mut cursor = Tokens {
        words: &tokens,
        index: 0,
        end: parser.lex.here(),
    };
    let Some(timer) = parser.temporal(&mut cursor)? else {
        let span = tokens.first().map_or(cursor.end, |word| word.span);
        return Err(illegal(
            span,
            "Expected a temporal expression: `every …`, `every cron \"…\"` or `DURATION after EVENT`",
        ));
    };
    if let Some(word) = cursor.peek() {
        return Err(ParseError::new(ParseErrorKind::UnexpectedToken, word.span));
    }
    Ok(timer)
}

fn illegal(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Illegal(message.into()), span)
}

/// `Unknown stanza` for a word after a keyword (`start foo`): no keyword guessing.
fn unknown_stanza(word: &Word) -> ParseError {
    ParseError::new(ParseErrorKind::UnknownStanza, word.span)
}

/// `Unknown stanza` for the first word of a line, with a "did you mean" when one is close.
fn unknown_keyword(word: &Word) -> ParseError {
    let error = ParseError::new(ParseErrorKind::UnknownStanza, word.span);
    match (word.quoted, suggest(&word.text)) {
        (true, _) if KEYWORDS.contains(&word.text.as_str()) => error.with_help("keywords cannot be quoted"),
        (false, Some(keyword)) => error.with_help(format!("did you mean `{keyword}`?")),
        _ => error,
    }
}

/// Stanza keywords, for "did you mean" hints.
const KEYWORDS: [&str; 45] = [
    "start",
    "stop",
    "manual",
    "exec",
    "script",
    "pre-start",
    "post-start",
    "pre-stop",
    "post-stop",
    "task",
    "watershed",
    "respawn",
    "normal",
    "instance",
    "description",
    "author",
    "version",
    "usage",
    "emits",
    "env",
    "export",
    "expect",
    "pid",
    "kill",
    "reload",
    "action",
    "console",
    "umask",
    "nice",
    "oom",
    "limit",
    "chroot",
    "chdir",
    "setuid",
    "setgid",
    "apparmor",
    "cgroup",
    "debug",
    "gate",
    "uses",
    "requires",
    "hook",
    "catch",
    "jitter",
    "timezone",
];

fn suggest(text: &str) -> Option<&'static str> {
    // Two words whose lengths differ by more than two are more than two edits apart: most
    // keywords (and any long word of garbage) are ruled out without comparing.
    let length = text.chars().count();
    KEYWORDS
        .iter()
        .filter(|keyword| keyword.len().abs_diff(length) <= 2)
        .map(|keyword| (edit_distance(text, keyword), *keyword))
        .filter(|(distance, keyword)| *distance <= 2 && *distance < keyword.len() / 2 + 1)
        .min()
        .map(|(_, keyword)| keyword)
}

/// Levenshtein distance from `a` to `keyword` (ASCII, at most `MAX_KEYWORD` bytes).
fn edit_distance(a: &str, keyword: &str) -> usize {
    const MAX_KEYWORD: usize = 31;
    let keyword = &keyword.as_bytes()[..keyword.len().min(MAX_KEYWORD)];
    let mut row = [0usize; MAX_KEYWORD + 1];
    for (j, slot) in row.iter_mut().enumerate().take(keyword.len() + 1) {
        *slot = j;
    }
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in keyword.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != char::from(cb)))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[keyword.len()]
}

/// A cursor over the words of an event or gate expression.
struct Tokens<'t> {
    words: &'t [Word],
    index: usize,
    /// Where the expression ended, for "expected …" at the end.
    end: Span,
}

impl<'t> Tokens<'t> {
    fn peek(&self) -> Option<&'t Word> {
        self.words.get(self.index)
    }

    fn peek_at(&self, offset: usize) -> Option<&'t Word> {
        self.words.get(self.index + offset)
    }

    fn next(&mut self) -> Option<&'t Word> {
        let word = self.words.get(self.index);
        self.index += usize::from(word.is_some());
        word
    }

    fn here(&self) -> Span {
        self.peek().map_or(self.end, |word| word.span)
    }
}

fn is_operator(word: &Word) -> bool {
    word.is("and") || word.is("or")
}

fn is_paren(word: &Word) -> bool {
    word.is("(") || word.is(")")
}

/// True when the word can be a value inside an event or a zone: not an operator or parenthesis.
fn is_operand_word(word: &Word) -> bool {
    !is_operator(word) && !is_paren(word)
}

struct Parser<'a> {
    lex: Lexer<'a>,
    errors: Vec<ParseError>,
}

impl Parser<'_> {
    // ------------------------------------------------------------ files

    fn job_file(&mut self) -> FileAst {
        let mut file = FileAst::default();
        while let Some(keyword) = self.next_stanza_keyword() {
            let start = keyword.span.lo as usize;
            if keyword.is("job") {
                match self.job_block(&keyword) {
                    Ok(block) => file.blocks.push(block),
                    Err(error) => self.recover(start, &keyword, error),
                }
                continue;
            }
            if let Some(stanza) = self.stanza_or_recover(keyword) {
                file.stanzas.push(stanza);
            }
        }
        file
    }

    /// Skips blank and comment lines and reads the next stanza keyword.
    fn next_stanza_keyword(&mut self) -> Option<Word> {
        if let Err(error) = self.lex.skip_empty_lines() {
            self.errors.push(error);
            return None;
        }
        if self.lex.at_end() {
            return None;
        }
        match self.lex.word(false) {
            Ok(Some(word)) => Some(word),
            Ok(None) => None,
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    fn stanza_or_recover(&mut self, keyword: Word) -> Option<Spanned<Stanza>> {
        let start = keyword.span.lo as usize;
        match self.stanza(&keyword) {
            Ok(stanza) => Some(Spanned::new(stanza, self.lex.span_from(start))),
            Err(error) => {
                self.recover(start, &keyword, error);
                None
            }
        }
    }

    /// Records an error and moves past the broken stanza.
    fn recover(&mut self, start: usize, keyword: &Word, error: ParseError) {
        let fatal = matches!(
            error.kind,
            ParseErrorKind::UnterminatedQuote | ParseErrorKind::UnterminatedBlock | ParseErrorKind::TrailingSlash
        );
        // An expression whose parenthesis never closed ran to the end of the file: it ends
        // at the end of its own line instead, so the stanzas after it are read.
        let unclosed = error.kind == ParseErrorKind::MismatchedParens && self.lex.at_end();
        self.errors.push(error);
        if fatal {
            self.lex.pos = self.lex.src.len();
            return;
        }
        self.lex.pos = start;
        let expression = keyword.is("start") || keyword.is("stop") || keyword.is("gate");
        self.skip_stanza(expression && !unclosed);
    }

    /// Skips one logical line, its parenthesised continuation lines when `parens`, and the
    /// script block it opens, if any.
    fn skip_stanza(&mut self, parens: bool) {
        let mut depth = 0usize;
        let mut last: Option<Word> = None;
        loop {
            match self.lex.word(parens) {
                Ok(Some(word)) => {
                    if parens && word.is("(") {
                        depth += 1;
                    } else if parens && word.is(")") {
                        depth = depth.saturating_sub(1);
                    }
                    last = Some(word);
                }
                Ok(None) if depth > 0 && !self.lex.at_end() => {
                    if self.lex.skip_blanks_and_newlines().is_err() {
                        self.lex.pos = self.lex.src.len();
                        return;
                    }
                    if self.lex.at_end() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.lex.pos = self.lex.src.len();
                    return;
                }
            }
        }
        // Drop the comment and newline; finish_line cannot fail at the end of a line.
        let _ = self.lex.finish_line();
        if last.as_ref().is_some_and(|word| word.is("script")) {
            let open = self.lex.here();
            if self.lex.block("script", open).is_err() {
                self.lex.pos = self.lex.src.len();
            }
        }
    }

    fn job_block(&mut self, keyword: &Word) -> PResult<JobBlock> {
        let name = self.lex.arg()?;
        let segments_ok = name.text.split('/').all(values::is_name);
        if name.quoted || !segments_ok {
            return Err(illegal(
                name.span,
                "Illegal job name, expected letters, digits, '_', '-', '.' and '/'",
            ));
        }
        self.lex.finish_line()?;
        let mut stanzas = Vec::new();
        loop {
            let Some(word) = self.next_stanza_keyword() else {
                if self
                    .errors
                    .iter()
                    .any(|error| error.kind == ParseErrorKind::TrailingSlash)
                {
                    return Err(ParseError::new(ParseErrorKind::UnterminatedBlock, keyword.span));
                }
                return Err(ParseError::new(ParseErrorKind::UnterminatedBlock, keyword.span)
                    .with_help(format!("close the block with `end job` (opened for `{}`)", name.text)));
            };
            if word.is("end") {
                let mut probe = self.lex.clone();
                if let Ok(Some(next)) = probe.word(false)
                    && next.is("job")
                {
                    self.lex = probe;
                    self.lex.finish_line()?;
                    return Ok(JobBlock {
                        name: Spanned::new(name.text, name.span),
                        stanzas,
                    });
                }
            }
            if word.is("job") {
                let start = word.span.lo as usize;
                let error = ParseError::new(
                    ParseErrorKind::Misplaced("job blocks cannot be nested".into()),
                    word.span,
                )
                .with_help("close the previous block with `end job` first");
                self.recover(start, &word, error);
                continue;
            }
            if let Some(stanza) = self.stanza_or_recover(word) {
                stanzas.push(stanza);
            }
        }
    }

    fn daemon_file(&mut self) -> Vec<Spanned<DaemonStanza>> {
        let mut stanzas = Vec::new();
        while let Some(keyword) = self.next_stanza_keyword() {
            let start = keyword.span.lo as usize;
            let result = if keyword.is("resource") {
                self.daemon_stanza()
            } else {
                Err(ParseError::new(ParseErrorKind::UnknownStanza, keyword.span)
                    .with_help("the daemon file accepts `resource NAME MAX`"))
            };
            match result {
                Ok(stanza) => stanzas.push(Spanned::new(stanza, self.lex.span_from(start))),
                Err(error) => self.recover(start, &keyword, error),
            }
        }
        stanzas
    }

    fn daemon_stanza(&mut self) -> PResult<DaemonStanza> {
        self.resource_decl()
    }

    fn resource_decl(&mut self) -> PResult<DaemonStanza> {
        let name = self.pool_name()?;
        let max = self.lex.arg()?;
        let Some(value) = values::number(&max.text).filter(|value| *value > 0.0) else {
            return Err(illegal(
                max.span,
                "Illegal resource maximum, expected a positive number",
            ));
        };
        self.lex.finish_line()?;
        Ok(DaemonStanza::Resource { name, max: value })
    }

    fn pool_name(&mut self) -> PResult<String> {
        let word = self.lex.arg()?;
        if !values::is_name(&word.text) {
            return Err(illegal(
                word.span,
                "Illegal pool name, expected letters, digits, '_', '-' and '.'",
            ));
        }
        Ok(word.text)
    }

    // ------------------------------------------------------------ stanzas

    fn stanza(&mut self, keyword: &Word) -> PResult<Stanza> {
        let Some(name) = keyword.keyword() else {
            return Err(unknown_keyword(keyword));
        };
        match name {
            "start" => self.start_on(),
            "stop" => self.stop_on(),
            "manual" => self.manual(),
            "exec" => self.exec_stanza(),
            "script" => self.script_stanza(keyword),
            "pre-start" | "post-start" | "pre-stop" | "post-stop" => self.process_stanza(self.stage(name)),
            "task" => self.task(),
            "watershed" => self.watershed(),
            "respawn" => self.respawn(),
            "normal" => self.normal_exit(),
            "instance" => self.instance(),
            "description" => self.description(),
            "author" => self.author(),
            "version" => self.version(),
            "usage" => self.usage(),
            "emits" => self.emits(),
            "env" => self.env(),
            "export" => self.export(),
            "expect" => self.expect(),
            "pid" => self.pid_stanza(),
            "kill" => self.kill_stanza(),
            "reload" => self.reload_stanza(),
            "action" => self.action(),
            "console" => self.console(),
            "umask" => self.umask(),
            "nice" => self.nice(),
            "oom" => self.oom(),
            "limit" => self.limit(),
            "chroot" => self.chroot(),
            "chdir" => self.chdir(),
            "setuid" => self.setuid(),
            "setgid" => self.setgid(),
            "apparmor" => self.apparmor(),
            "cgroup" => self.cgroup(),
            "debug" => self.debug(),
            "gate" => self.gate_stanza(),
            "uses" => self.uses(),
            "requires" => self.requires(),
            "hook" => self.hook(),
            "catch" | "jitter" | "timezone" => self.timer_option(name),
            "end" => Err(self.stray_end(keyword)),
            _ => Err(unknown_keyword(keyword)),
        }
    }

    /// `end script` or `end job` with no block open.
    fn stray_end(&mut self, keyword: &Word) -> ParseError {
        let mut probe = self.lex.clone();
        match probe.word(false) {
            Ok(Some(word)) if word.is("script") || word.is("job") => ParseError::new(
                ParseErrorKind::Misplaced(format!("`end {}` without an open `{}` block", word.text, word.text)),
                Span::new(keyword.span.lo as usize, word.span.hi as usize),
            ),
            _ => unknown_keyword(keyword),
        }
    }

    fn flag(&mut self, stanza: Stanza) -> PResult<Stanza> {
        self.lex.finish_line()?;
        Ok(stanza)
    }

    /// A stanza with exactly one argument.
    fn single(&mut self, make: fn(String) -> Stanza) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        self.lex.finish_line()?;
        Ok(make(word.text))
    }

    /// The sub-keyword after a stanza keyword: `Expected token` if none.
    fn subkeyword(&mut self) -> PResult<Word> {
        self.lex.arg()
    }

    // ------------------------------------------------------------ events

    fn start_on(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        if !word.is("on") {
            return Err(unknown_stanza(&word).with_help("expected `start on EVENT…`"));
        }
        Ok(Stanza::StartOn(self.on_expression()?))
    }

    fn stop_on(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        if word.is("on") {
            return Ok(Stanza::StopOn(self.on_expression()?));
        }
        self.stop_action(&word)
    }

    fn manual(&mut self) -> PResult<Stanza> {
        self.flag(Stanza::Manual)
    }

    fn on_expression(&mut self) -> PResult<EventExpr> {
        let tokens = self.expr_tokens()?;
        let mut cursor = Tokens {
            words: &tokens,
            index: 0,
            end: self.lex.here(),
        };
        if tokens.is_empty() {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, cursor.end));
        }
        let expr = self.event_expr(&mut cursor, 0)?;
        self.lex.finish_line()?;
        Ok(expr)
    }

    /// Reads the words of an expression: to the end of the line, or further while parentheses
    /// are open. `(` and `)` come back as words of their own. A parenthesis still open at the
    /// end of the file is the error, reported where it opened (the recovery then ends the
    /// stanza at the end of its line, so the stanzas after it are read: see `recover`).
    fn expr_tokens(&mut self) -> PResult<Vec<Word>> {
        let mut words = Vec::new();
        let mut open: Vec<Span> = Vec::new();
        loop {
            if !open.is_empty() {
                self.lex.skip_blanks_and_newlines()?;
            }
            match self.lex.word(true)? {
                Some(word) => {
                    if word.is("(") {
                        open.push(word.span);
                    } else if word.is(")") {
                        open.pop();
                    }
                    words.push(word);
                }
                None => match open.first() {
                    Some(&first) => return Err(ParseError::new(ParseErrorKind::MismatchedParens, first)),
                    None => return Ok(words),
                },
            }
        }
    }

    fn event_expr(&mut self, tokens: &mut Tokens<'_>, depth: usize) -> PResult<EventExpr> {
        let mut left = self.operand(tokens, depth)?;
        loop {
            let Some(word) = tokens.peek() else { return Ok(left) };
            if word.is(")") {
                if depth > 0 {
                    return Ok(left);
                }
                return Err(ParseError::new(ParseErrorKind::MismatchedParens, word.span));
            }
            if !is_operator(word) {
                return Err(ParseError::new(ParseErrorKind::ExpectedOperator, word.span));
            }
            tokens.next();
            let right = Box::new(self.operand(tokens, depth)?);
            let left_box = Box::new(left);
            left = if word.is("and") {
                EventExpr::And { left: left_box, right }
            } else {
                EventExpr::Or { left: left_box, right }
            };
        }
    }

    fn operand(&mut self, tokens: &mut Tokens<'_>, depth: usize) -> PResult<EventExpr> {
        let Some(word) = tokens.peek() else {
            return Err(ParseError::new(ParseErrorKind::ExpectedEvent, tokens.end));
        };
        if word.is("(") {
            tokens.next();
            let inner = self.event_expr(tokens, depth + 1)?;
            match tokens.next() {
                Some(close) if close.is(")") => return Ok(inner),
                _ => {
                    return Err(ParseError::new(ParseErrorKind::MismatchedParens, tokens.end));
                }
            }
        }
        if !is_operand_word(word) {
            return Err(ParseError::new(ParseErrorKind::ExpectedEvent, word.span));
        }
        let lo = word.span.lo as usize;
        if let Some(timer) = self.temporal(tokens)? {
            let hi = tokens.words[tokens.index - 1].span.hi as usize;
            return Ok(EventExpr::Temporal {
                timer,
                span: Span::new(lo, hi),
            });
        }
        Ok(EventExpr::Event(self.event_match(tokens)?))
    }

    fn event_match(&mut self, tokens: &mut Tokens<'_>) -> PResult<EventMatch> {
        let name = match tokens.next() {
            Some(word) if is_operand_word(word) => self.event_name(word),
            _ => return Err(ParseError::new(ParseErrorKind::ExpectedEvent, tokens.here())),
        };
        let lo = tokens.words[tokens.index - 1].span.lo as usize;
        let mut args = Vec::new();
        let mut named = false;
        while let Some(word) = tokens.peek().filter(|word| is_operand_word(word)) {
            tokens.next();
            match self.key_value(word)? {
                Some(arg) => {
                    named = true;
                    args.push(arg);
                }
                None if named => {
                    return Err(ParseError::new(ParseErrorKind::ExpectedVariableName, word.span));
                }
                None => args.push(EventArg::Positional {
                    value: self.value(word),
                }),
            }
        }
        let hi = tokens.words[tokens.index - 1].span.hi as usize;
        Ok(EventMatch {
            name,
            args,
            span: Span::new(lo, hi),
        })
    }

    fn event_name(&self, word: &Word) -> String {
        word.text.clone()
    }

    fn value(&self, word: &Word) -> String {
        word.text.clone()
    }

    /// `KEY=VALUE` or `KEY!=VALUE`, split after dequoting as Upstart does.
    fn key_value(&self, word: &Word) -> PResult<Option<EventArg>> {
        let Some(equals) = word.text.find('=') else {
            return Ok(None);
        };
        let (key, negated) = match word.text[..equals].strip_suffix('!') {
            Some(key) => (key, true),
            None => (&word.text[..equals], false),
        };
        if key.is_empty() {
            return Err(ParseError::new(ParseErrorKind::ExpectedVariableName, word.span));
        }
        let key = key.to_string();
        let value = word.text[equals + 1..].to_string();
        Ok(Some(if negated {
            EventArg::NotEqual { key, value }
        } else {
            EventArg::Equal { key, value }
        }))
    }

    // ------------------------------------------------------------ time

    /// A temporal operand if the words have its shape, else `None` with the cursor unmoved.
    fn temporal(&mut self, tokens: &mut Tokens<'_>) -> PResult<Option<Temporal>> {
        let (Some(first), second) = (tokens.peek(), tokens.peek_at(1)) else {
            return Ok(None);
        };
        let second_kw = second.and_then(Word::keyword);
        if first.keyword().and_then(values::duration).is_some() && second_kw == Some("after") {
            return self.relative(tokens).map(Some);
        }
        if !first.is("every") {
            return Ok(None);
        }
        let Some(next) = second_kw else { return Ok(None) };
        if values::duration(next).is_some() {
            return self.interval(tokens).map(Some);
        }
        if next == "cron" {
            return self.cron(tokens).map(Some);
        }
        let is_period =
            matches!(next, "minute" | "hour" | "day" | "week" | "month") || values::day_list(next).is_some();
        if is_period {
            return self.calendar(tokens).map(Some);
        }
        Ok(None)
    }

    fn relative(&mut self, tokens: &mut Tokens<'_>) -> PResult<Temporal> {
        let delay = tokens.next().and_then(|word| values::duration(&word.text));
        tokens.next();
        let delay = delay.unwrap_or(Seconds { millis: 0 });
        let event = self.event_match(tokens)?;
        Ok(Temporal::After { delay, event })
    }

    fn interval(&mut self, tokens: &mut Tokens<'_>) -> PResult<Temporal> {
        tokens.next();
        let word = tokens.next().expect("checked by temporal()");
        let interval = self.duration(word)?;
        if interval.millis == 0 {
            return Err(illegal(
                word.span,
                "Illegal interval, `every` needs a duration longer than zero",
            ));
        }
        Ok(Temporal::Every { interval })
    }

    fn duration(&self, word: &Word) -> PResult<Seconds> {
        values::duration(&word.text).ok_or_else(|| {
            illegal(
                word.span,
                "Illegal duration, expected a number with a unit (ms, s, m, h, d, w)",
            )
        })
    }

    fn cron(&mut self, tokens: &mut Tokens<'_>) -> PResult<Temporal> {
        tokens.next();
        let keyword = tokens.next().expect("checked by temporal()");
        let Some(expr) = tokens.next().filter(|word| is_operand_word(word)) else {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, tokens.here())
                .with_help("quote the cron expression: every cron \"*/5 * * * *\""));
        };
        if expr.text.trim().is_empty() {
            return Err(illegal(expr.span, "Illegal cron expression, it is empty"));
        }
        let _ = keyword;
        let zone = self.zone(tokens);
        Ok(Temporal::Cron {
            expr: expr.text.clone(),
            zone,
        })
    }

    fn calendar(&mut self, tokens: &mut Tokens<'_>) -> PResult<Temporal> {
        tokens.next();
        let period_word = tokens.next().expect("checked by temporal()");
        let period = self.period(period_word, tokens)?;
        let mut times = Vec::new();
        if tokens.peek().is_some_and(|word| word.is("at")) {
            let at = tokens.next().expect("peeked");
            times = self.time_list(at, tokens)?;
            self.check_times(&period, period_word, &times)?;
        } else if period == Period::Minute {
            // `every minute` fires at second 0; nothing to add.
        }
        let zone = self.zone(tokens);
        Ok(Temporal::Calendar(Calendar { period, times, zone }))
    }

    fn period(&mut self, word: &Word, tokens: &mut Tokens<'_>) -> PResult<Period> {
        Ok(match word.text.as_str() {
            "minute" => Period::Minute,
            "hour" => Period::Hour,
            "day" => Period::Day,
            "week" => Period::Week,
            "month" => self.month(tokens)?,
            text => Period::Weekdays(self.day_list(text, word)?),
        })
    }

    fn month(&mut self, tokens: &mut Tokens<'_>) -> PResult<Period> {
        if !tokens.peek().is_some_and(|word| word.is("on")) {
            return Ok(Period::Month(Vec::new()));
        }
        tokens.next();
        let words = self.comma_list(tokens);
        let Some(first) = words.first() else {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, tokens.here()));
        };
        let text: String = words.iter().map(|word| word.text.as_str()).collect();
        let span = Span::new(first.span.lo as usize, words[words.len() - 1].span.hi as usize);
        let days = self.day_of_month(&text, span)?;
        Ok(Period::Month(days))
    }

    fn day_of_month(&self, text: &str, span: Span) -> PResult<Vec<u8>> {
        let days = values::month_days(text).filter(|days| days.iter().all(|day| (1..=31).contains(day)));
        let Some(mut days) = days else {
            return Err(illegal(
                span,
                "Illegal day of month, expected numbers from 1 to 31, like `on 1,15`",
            ));
        };
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    fn day_list(&self, text: &str, word: &Word) -> PResult<Vec<u8>> {
        values::day_list(text).ok_or_else(|| {
            illegal(
                word.span,
                "Illegal day, expected mon … sun, a range like mon-fri, weekday or weekend",
            )
        })
    }

    /// Words of a list that may be written `a,b` or `a, b`.
    fn comma_list<'t>(&self, tokens: &mut Tokens<'t>) -> Vec<&'t Word> {
        let mut words = Vec::new();
        while let Some(word) = tokens.peek().filter(|word| is_operand_word(word)) {
            let continues =
                words.last().is_none_or(|last: &&Word| last.text.ends_with(',')) || word.text.starts_with(',');
            if !continues {
                break;
            }
            words.push(word);
            tokens.next();
        }
        words
    }

    fn time_list(&mut self, at: &Word, tokens: &mut Tokens<'_>) -> PResult<Vec<TimeOfDay>> {
        let words = self.comma_list(tokens);
        let Some(first) = words.first() else {
            return Err(ParseError::new(
                ParseErrorKind::ExpectedToken,
                Span::new(at.span.hi as usize, at.span.hi as usize),
            ));
        };
        let text: String = words.iter().map(|word| word.text.as_str()).collect();
        let span = Span::new(first.span.lo as usize, words[words.len() - 1].span.hi as usize);
        let times = values::time_list(&text)
            .ok_or_else(|| illegal(span, "Illegal time of day, expected HH:MM, HH:MM:SS or :MM"))?;
        for time in &times {
            self.time_of_day(time, span)?;
        }
        Ok(times)
    }

    fn time_of_day(&self, time: &TimeOfDay, span: Span) -> PResult<()> {
        let hour_ok = time.hour.is_none_or(|hour| hour < 24);
        if !hour_ok || time.minute >= 60 || time.second >= 60 {
            return Err(illegal(
                span,
                "Illegal time of day, hours go to 23, minutes and seconds to 59",
            ));
        }
        Ok(())
    }

    fn check_times(&self, period: &Period, period_word: &Word, times: &[TimeOfDay]) -> PResult<()> {
        let span = period_word.span;
        match period {
            Period::Minute => Err(illegal(span, "`every minute` takes no `at` times")),
            Period::Hour if times.iter().any(|time| time.hour.is_some()) => {
                Err(illegal(span, "`every hour` takes minutes past the hour, like `at :15`"))
            }
            Period::Hour => Ok(()),
            _ if times.iter().any(|time| time.hour.is_none()) => {
                Err(illegal(span, "this period takes times of day, like `at 03:00`")
                    .with_help("`:MM` is for `every hour at :MM`"))
            }
            _ => Ok(()),
        }
    }

    /// An optional zone after a calendar or cron operand: the next word that is not an operator.
    fn zone(&self, tokens: &mut Tokens<'_>) -> Option<String> {
        let word = tokens.peek().filter(|word| is_operand_word(word))?;
        tokens.next();
        Some(word.text.clone())
    }

    fn timer_option(&mut self, keyword: &str) -> PResult<Stanza> {
        match keyword {
            "catch" => {
                let word = self.subkeyword()?;
                if !word.is("up") {
                    return Err(unknown_stanza(&word).with_help("did you mean `catch up`?"));
                }
                self.flag(Stanza::CatchUp)
            }
            "jitter" => {
                let word = self.lex.arg()?;
                let jitter = self.duration(&word)?;
                self.flag(Stanza::Jitter(jitter))
            }
            _ => self.single(Stanza::Timezone),
        }
    }

    // ------------------------------------------------------------ processes

    fn exec_stanza(&mut self) -> PResult<Stanza> {
        Ok(Stanza::Process(ProcessKind::Main, self.command_line()?))
    }

    fn command_line(&mut self) -> PResult<Command> {
        let (command, _) = self.lex.rest_verbatim()?;
        Ok(Command::Exec { command })
    }

    fn script_stanza(&mut self, keyword: &Word) -> PResult<Stanza> {
        Ok(Stanza::Process(ProcessKind::Main, self.script_body(keyword.span)?))
    }

    fn interpreter(&mut self) -> PResult<Vec<String>> {
        let mut words = Vec::new();
        while let Some(word) = self.lex.word(false)? {
            words.push(word.text);
        }
        Ok(words)
    }

    /// The rest of a `script` opening line (interpreter) and the block after it.
    fn script_body(&mut self, open: Span) -> PResult<Command> {
        let interpreter = self.interpreter()?;
        self.lex.finish_line()?;
        let (body, line) = self.lex.block("script", open)?;
        Ok(Command::Script {
            interpreter,
            body,
            line,
        })
    }

    fn stage(&self, keyword: &str) -> ProcessKind {
        match keyword {
            "pre-start" => ProcessKind::PreStart,
            "post-start" => ProcessKind::PostStart,
            "pre-stop" => ProcessKind::PreStop,
            _ => ProcessKind::PostStop,
        }
    }

    fn process_stanza(&mut self, kind: ProcessKind) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("exec") => Ok(Stanza::Process(kind, self.command_line()?)),
            Some("script") => Ok(Stanza::Process(kind, self.script_body(word.span)?)),
            Some("timeout") => {
                let value = self.lex.arg()?;
                let timeout = self.duration_or_seconds(&value)?;
                self.flag(Stanza::ProcessTimeout(kind, timeout))
            }
            _ => Err(unknown_stanza(&word).with_help(format!(
                "`{}` takes `exec COMMAND`, `script` or `timeout DURATION`",
                kind.keyword()
            ))),
        }
    }

    fn duration_or_seconds(&self, word: &Word) -> PResult<Seconds> {
        values::duration_or_seconds(&word.text)
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalInterval, word.span))
    }

    fn task(&mut self) -> PResult<Stanza> {
        self.flag(Stanza::Task)
    }

    fn watershed(&mut self) -> PResult<Stanza> {
        self.flag(Stanza::Watershed)
    }

    fn respawn(&mut self) -> PResult<Stanza> {
        let Some(word) = self.lex.word(false)? else {
            self.lex.finish_line()?;
            return Ok(Stanza::Respawn);
        };
        match word.keyword() {
            Some("limit") => {
                let count = self.lex.arg()?;
                if count.is("unlimited") {
                    return self.flag(Stanza::RespawnLimit(RespawnLimit::Unlimited));
                }
                let count = values::integer(&count.text)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalLimit, count.span))?;
                let interval = self.lex.arg()?;
                let interval_secs = values::integer(&interval.text)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalInterval, interval.span))?;
                self.flag(Stanza::RespawnLimit(RespawnLimit::Limit { count, interval_secs }))
            }
            Some("delay") => {
                let initial = self.lex.arg()?;
                let mut delay = RespawnDelay {
                    initial: self.duration(&initial)?,
                    max: None,
                    jitter: None,
                };
                while let Some(option) = self.lex.word(false)? {
                    let value = self.lex.arg()?;
                    match option.keyword() {
                        Some("max") => delay.max = Some(self.duration(&value)?),
                        Some("jitter") => delay.jitter = Some(self.duration(&value)?),
                        _ => {
                            return Err(ParseError::new(ParseErrorKind::UnexpectedToken, option.span)
                                .with_help("`respawn delay` takes `max DURATION` and `jitter DURATION`"));
                        }
                    }
                }
                self.flag(Stanza::RespawnDelay(delay))
            }
            _ => Err(unknown_stanza(&word).with_help("expected `respawn`, `respawn limit …` or `respawn delay …`")),
        }
    }

    fn normal_exit(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        if !word.is("exit") {
            return Err(unknown_stanza(&word).with_help("expected `normal exit STATUS|SIGNAL…`"));
        }
        let mut items = vec![self.exit_item()?];
        while let Some(word) = self.lex.word(false)? {
            items.push(self.parse_exit_item(&word)?);
        }
        self.flag(Stanza::NormalExit(items))
    }

    fn exit_item(&mut self) -> PResult<ExitItem> {
        let word = self.lex.arg()?;
        self.parse_exit_item(&word)
    }

    fn parse_exit_item(&self, word: &Word) -> PResult<ExitItem> {
        if let Some(signal) = values::signal_by_name(&word.text) {
            return Ok(ExitItem::Signal(signal));
        }
        values::integer(&word.text)
            .filter(|status| !word.text.starts_with(['-', '+']) && *status <= i64::from(i32::MAX))
            .map(|status| ExitItem::Status(status as i32))
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalExitStatus, word.span))
    }

    // ------------------------------------------------------------ identity and environment

    fn instance(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Instance)
    }

    fn description(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Description)
    }

    fn author(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Author)
    }

    fn version(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Version)
    }

    fn usage(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Usage)
    }

    fn emits(&mut self) -> PResult<Stanza> {
        let mut names = vec![self.lex.arg()?.text];
        while let Some(word) = self.lex.word(false)? {
            names.push(word.text);
        }
        self.flag(Stanza::Emits(names))
    }

    fn env(&mut self) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        let (key, value) = match word.text.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (word.text.clone(), None),
        };
        if !values::is_env_key(&key) {
            return Err(illegal(
                word.span,
                "Illegal variable name, expected letters, digits and '_'",
            ));
        }
        self.flag(Stanza::Env(EnvEntry { key, value }))
    }

    fn export(&mut self) -> PResult<Stanza> {
        let mut names = Vec::new();
        let mut word = Some(self.lex.arg()?);
        while let Some(current) = word {
            if !values::is_env_key(&current.text) {
                return Err(
                    illegal(current.span, "Illegal variable name, expected letters, digits and '_'")
                        .with_help("`export` takes variable names without `$`"),
                );
            }
            names.push(current.text);
            word = self.lex.word(false)?;
        }
        self.flag(Stanza::Export(names))
    }

    // ------------------------------------------------------------ readiness and stopping

    fn expect(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        let expect = match word.keyword() {
            Some("none") => Expect::None,
            Some("stop") => Expect::Stop,
            Some("fork") => Expect::Fork,
            Some("daemon") => Expect::Daemon,
            Some("notify") => Expect::Notify,
            _ => return Err(unknown_stanza(&word).with_help("expected stop, daemon, fork, notify or none")),
        };
        self.flag(Stanza::Expect(expect))
    }

    fn pid_stanza(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("file") => self.single(Stanza::PidFile),
            Some("timeout") => {
                let value = self.lex.arg()?;
                let timeout = self.duration_or_seconds(&value)?;
                self.flag(Stanza::PidTimeout(timeout))
            }
            _ => Err(unknown_stanza(&word).with_help("expected `pid file PATH` or `pid timeout DURATION`")),
        }
    }

    fn kill_stanza(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("timeout") => {
                let value = self.lex.arg()?;
                let timeout = self.duration_or_seconds(&value)?;
                self.flag(Stanza::KillTimeout(timeout))
            }
            Some("signal") => {
                let signal = self.signal()?;
                self.flag(Stanza::KillSignal(signal))
            }
            Some("abandon") => {
                let value = self.lex.arg()?;
                let after = self.duration_or_seconds(&value)?;
                self.flag(Stanza::KillAbandon(after))
            }
            _ => Err(unknown_stanza(&word).with_help("expected `kill timeout`, `kill signal` or `kill abandon`")),
        }
    }

    fn signal(&mut self) -> PResult<Signal> {
        let word = self.lex.arg()?;
        values::signal(&word.text)
            .map(|number| Signal { number })
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalSignal, word.span))
    }

    fn reload_stanza(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("signal") => {
                let signal = self.signal()?;
                self.flag(Stanza::ReloadSignal(signal))
            }
            Some("exec") => Ok(Stanza::Reload(self.command_line()?)),
            Some("script") => Ok(Stanza::Reload(self.script_body(word.span)?)),
            _ => Err(unknown_stanza(&word).with_help("expected `reload signal`, `reload exec` or `reload script`")),
        }
    }

    fn stop_action(&mut self, word: &Word) -> PResult<Stanza> {
        match word.keyword() {
            Some("exec") => Ok(Stanza::StopAction(self.command_line()?)),
            Some("script") => Ok(Stanza::StopAction(self.script_body(word.span)?)),
            _ => Err(unknown_stanza(word).with_help("expected `stop on`, `stop exec` or `stop script`")),
        }
    }

    fn action(&mut self) -> PResult<Stanza> {
        let name = self.lex.arg()?;
        if !values::is_name(&name.text) || name.quoted {
            return Err(illegal(
                name.span,
                "Illegal action name, expected letters, digits, '_', '-' and '.'",
            ));
        }
        let word = self.subkeyword()?;
        let command = match word.keyword() {
            Some("exec") => self.command_line()?,
            Some("script") => self.script_body(word.span)?,
            _ => return Err(unknown_stanza(&word).with_help("expected `action NAME exec …` or `action NAME script`")),
        };
        Ok(Stanza::Action(name.text, command))
    }

    // ------------------------------------------------------------ process attributes

    fn console(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        let console = match word.keyword() {
            Some("none") => Console::None,
            Some("output") => Console::Output,
            Some("owner") => Console::Owner,
            Some("log") => Console::Log,
            Some("auto") => Console::Auto,
            Some("inherit") => Console::Inherit,
            _ => {
                return Err(unknown_stanza(&word).with_help("expected none, output, owner, log, auto or inherit"));
            }
        };
        self.flag(Stanza::Console(console))
    }

    fn umask(&mut self) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        let mask = values::octal(&word.text)
            .filter(|mask| mask & !0o777 == 0)
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalUmask, word.span))?;
        self.flag(Stanza::Umask(mask))
    }

    fn nice(&mut self) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        let nice = values::integer(&word.text)
            .filter(|nice| (-20..=19).contains(nice))
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalNice, word.span))?;
        self.flag(Stanza::Nice(nice as i32))
    }

    fn oom(&mut self) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        let score = if word.is("score") {
            let value = self.lex.arg()?;
            if value.is("never") {
                -1000
            } else {
                values::integer(&value.text)
                    .filter(|score| (-1000..=1000).contains(score))
                    .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalOomScore, value.span))? as i32
            }
        } else if word.is("never") {
            -1000
        } else {
            let legacy = values::integer(&word.text)
                .filter(|adj| (-17..=15).contains(adj))
                .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalOomLegacy, word.span))?
                as i32;
            legacy * 1000 / if legacy < 0 { 17 } else { 15 }
        };
        self.flag(Stanza::OomScore(score))
    }

    fn limit(&mut self) -> PResult<Stanza> {
        let word = self.lex.arg()?;
        let resource = self.rlimit_name(&word)?;
        let soft = self.limit_value()?;
        let hard = self.limit_value()?;
        self.flag(Stanza::Limit(resource, soft, hard))
    }

    fn rlimit_name(&self, word: &Word) -> PResult<Rlimit> {
        Ok(match word.keyword() {
            Some("as") => Rlimit::As,
            Some("core") => Rlimit::Core,
            Some("cpu") => Rlimit::Cpu,
            Some("data") => Rlimit::Data,
            Some("fsize") => Rlimit::Fsize,
            Some("memlock") => Rlimit::Memlock,
            Some("msgqueue") => Rlimit::Msgqueue,
            Some("nice") => Rlimit::Nice,
            Some("nofile") => Rlimit::Nofile,
            Some("nproc") => Rlimit::Nproc,
            Some("rss") => Rlimit::Rss,
            Some("rtprio") => Rlimit::Rtprio,
            Some("sigpending") => Rlimit::Sigpending,
            Some("stack") => Rlimit::Stack,
            _ => return Err(unknown_stanza(word).with_help("unknown resource limit")),
        })
    }

    fn limit_value(&mut self) -> PResult<LimitValue> {
        let word = self
            .lex
            .arg()
            .map_err(|error| error.with_help("`limit` takes a soft and a hard value: limit nofile 4096 4096"))?;
        if word.is("unlimited") {
            return Ok(LimitValue::Unlimited);
        }
        values::integer(&word.text)
            .filter(|_| !word.text.starts_with(['-', '+']))
            .and_then(|value| u64::try_from(value).ok())
            .map(LimitValue::Value)
            .ok_or_else(|| ParseError::new(ParseErrorKind::IllegalLimit, word.span))
    }

    fn chroot(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Chroot)
    }

    fn chdir(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Chdir)
    }

    fn setuid(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Setuid)
    }

    fn setgid(&mut self) -> PResult<Stanza> {
        self.single(Stanza::Setgid)
    }

    fn apparmor(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("load") => self.single(Stanza::ApparmorLoad),
            Some("switch") => self.single(Stanza::ApparmorSwitch),
            _ => Err(unknown_stanza(&word).with_help("expected `apparmor load PROFILE` or `apparmor switch NAME`")),
        }
    }

    fn cgroup(&mut self) -> PResult<Stanza> {
        let mut words = vec![self.lex.arg()?.text];
        while let Some(word) = self.lex.word(false)? {
            if words.len() == 4 {
                return Err(ParseError::new(ParseErrorKind::UnexpectedToken, word.span));
            }
            words.push(word.text);
        }
        self.flag(Stanza::Cgroup(words))
    }

    fn debug(&mut self) -> PResult<Stanza> {
        self.flag(Stanza::Debug)
    }

    // ------------------------------------------------------------ admission

    fn gate_stanza(&mut self) -> PResult<Stanza> {
        let before = self.lex.pos;
        let word = self.subkeyword()?;
        match word.keyword() {
            Some("lua") => {
                let line = self.lex.line_of(self.lex.pos);
                let (code, _) = self.lex.rest_verbatim()?;
                Ok(Stanza::GateLua(LuaCode { code, line }))
            }
            Some("script") => {
                let interpreter = self.interpreter()?;
                if interpreter != ["lua"] {
                    return Err(
                        illegal(word.span, "gate scripts run in the embedded Lua").with_help("write `gate script lua`")
                    );
                }
                self.lex.finish_line()?;
                let (code, line) = self.lex.block("script", word.span)?;
                Ok(Stanza::GateLua(LuaCode { code, line }))
            }
            Some("hold") => {
                let value = self.lex.arg()?;
                let hold = self.duration(&value)?;
                self.flag(Stanza::GateHold(hold))
            }
            Some("wait") => {
                let value = self.lex.arg()?;
                let wait = self.duration(&value)?;
                self.flag(Stanza::GateWait(wait))
            }
            Some("expire") => {
                let value = self.lex.arg()?;
                let expire = match value.keyword() {
                    Some("start") => GateExpire::Start,
                    Some("skip") => GateExpire::Skip,
                    _ => return Err(illegal(value.span, "Illegal gate expiry, expected `start` or `skip`")),
                };
                self.flag(Stanza::GateExpire(expire))
            }
            _ => {
                self.lex.pos = before;
                let tokens = split_comparisons(self.expr_tokens()?);
                let mut cursor = Tokens {
                    words: &tokens,
                    index: 0,
                    end: self.lex.here(),
                };
                let expr = self.gate_expr(&mut cursor, 0)?;
                if let Some(word) = cursor.peek() {
                    let kind = if word.is(")") {
                        ParseErrorKind::MismatchedParens
                    } else {
                        ParseErrorKind::ExpectedOperator
                    };
                    return Err(ParseError::new(kind, word.span));
                }
                self.flag(Stanza::Gate(expr))
            }
        }
    }

    fn gate_expr(&mut self, tokens: &mut Tokens<'_>, depth: usize) -> PResult<GateExpr> {
        let mut terms = vec![self.gate_operand(tokens, depth)?];
        let mut joiner: Option<&Word> = None;
        while let Some(word) = tokens.peek().filter(|word| is_operator(word)) {
            if let Some(first) = joiner
                && first.text != word.text
            {
                return Err(illegal(word.span, "Mixed 'and' and 'or' need parentheses")
                    .with_help("group them: load1 < 2 and (cpu some avg10 < 20 or io some avg10 < 20)"));
            }
            joiner = Some(word);
            tokens.next();
            terms.push(self.gate_operand(tokens, depth)?);
        }
        Ok(match joiner {
            None => terms.pop().expect("one operand"),
            Some(word) if word.is("and") => GateExpr::And { terms },
            Some(_) => GateExpr::Or { terms },
        })
    }

    fn gate_operand(&mut self, tokens: &mut Tokens<'_>, depth: usize) -> PResult<GateExpr> {
        match tokens.peek() {
            Some(word) if word.is("(") => {
                tokens.next();
                let inner = self.gate_expr(tokens, depth + 1)?;
                match tokens.next() {
                    Some(close) if close.is(")") => Ok(inner),
                    Some(other) if !is_paren(other) => {
                        Err(ParseError::new(ParseErrorKind::ExpectedOperator, other.span))
                    }
                    _ => Err(ParseError::new(ParseErrorKind::MismatchedParens, tokens.end)),
                }
            }
            _ => self.comparison(tokens),
        }
    }

    fn comparison(&mut self, tokens: &mut Tokens<'_>) -> PResult<GateExpr> {
        let metric = self.metric(tokens)?;
        let op = self.compare_op(tokens)?;
        let value = self.quantity(&metric, tokens)?;
        Ok(GateExpr::Compare { metric, op, value })
    }

    fn metric(&mut self, tokens: &mut Tokens<'_>) -> PResult<Metric> {
        const HELP: &str =
            "metrics: load1, load5, load15; cpu|io|memory some|full avg10|avg60|avg300; net [IFACE] rx|tx";
        let Some(word) = tokens.next().filter(|word| !word.quoted) else {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, tokens.here()).with_help(HELP));
        };
        let metric = match word.text.as_str() {
            "load1" => Metric::Load { minutes: 1 },
            "load5" => Metric::Load { minutes: 5 },
            "load15" => Metric::Load { minutes: 15 },
            "cpu" | "io" | "memory" => {
                let resource = match word.text.as_str() {
                    "cpu" => PressureResource::Cpu,
                    "io" => PressureResource::Io,
                    _ => PressureResource::Memory,
                };
                let kind = tokens.next();
                let full = match kind.and_then(Word::keyword) {
                    Some("some") => false,
                    Some("full") => true,
                    _ => {
                        let span = kind.map_or(tokens.end, |word| word.span);
                        return Err(illegal(span, "Illegal pressure kind, expected `some` or `full`"));
                    }
                };
                let window_word = tokens.next();
                let window = match window_word.and_then(Word::keyword) {
                    Some("avg10") => 10,
                    Some("avg60") => 60,
                    Some("avg300") => 300,
                    _ => {
                        let span = window_word.map_or(tokens.end, |word| word.span);
                        return Err(illegal(
                            span,
                            "Illegal pressure window, expected avg10, avg60 or avg300",
                        ));
                    }
                };
                Metric::Pressure { resource, full, window }
            }
            "net" => {
                let mut interface = None;
                let mut direction = tokens.next();
                if let Some(word) = direction.filter(|word| !word.is("rx") && !word.is("tx") && is_operand_word(word)) {
                    interface = Some(word.text.clone());
                    direction = tokens.next();
                }
                match direction.and_then(Word::keyword) {
                    Some(dir @ ("rx" | "tx")) => Metric::Net {
                        interface,
                        tx: dir == "tx",
                    },
                    _ => {
                        let span = direction.map_or(tokens.end, |word| word.span);
                        return Err(illegal(
                            span,
                            "Illegal network metric, expected `net [IFACE] rx` or `net [IFACE] tx`",
                        ));
                    }
                }
            }
            _ => {
                return Err(illegal(word.span, format!("Unknown metric '{}'", word.text)).with_help(HELP));
            }
        };
        Ok(metric)
    }

    fn compare_op(&mut self, tokens: &mut Tokens<'_>) -> PResult<CompareOp> {
        let word = tokens.next();
        match word.and_then(Word::keyword) {
            Some("<") => Ok(CompareOp::Lt),
            Some("<=") => Ok(CompareOp::Le),
            Some(">") => Ok(CompareOp::Gt),
            Some(">=") => Ok(CompareOp::Ge),
            _ => {
                let span = word.map_or(tokens.end, |word| word.span);
                Err(illegal(span, "Expected a comparison: <, <=, > or >="))
            }
        }
    }

    fn quantity(&mut self, metric: &Metric, tokens: &mut Tokens<'_>) -> PResult<f64> {
        let Some(word) = tokens.next().filter(|word| is_operand_word(word)) else {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, tokens.here()));
        };
        let Some((value, attached)) = values::quantity(&word.text) else {
            return Err(illegal(word.span, "Illegal quantity, expected a number"));
        };
        let mut unit = attached.to_string();
        let mut span = word.span;
        if unit.is_empty()
            && let Some(next) = tokens.peek()
            && (next.text == "%" || values::rate_unit(&next.text).is_some())
        {
            unit = next.text.clone();
            span.hi = next.span.hi;
            tokens.next();
        }
        match metric {
            Metric::Load { .. } if unit.is_empty() => Ok(value),
            Metric::Load { .. } => Err(illegal(span, "a load average takes a plain number, like `load1 < 2.5`")),
            Metric::Pressure { .. } if (unit.is_empty() || unit == "%") && value <= 100.0 => Ok(value),
            Metric::Pressure { .. } => Err(illegal(span, "pressure is a percentage from 0 to 100, like `20%`")),
            Metric::Net { .. } if unit.is_empty() => Ok(value),
            Metric::Net { .. } => self.rate_unit(&unit, span).map(|scale| value * scale),
        }
    }

    fn rate_unit(&self, unit: &str, span: Span) -> PResult<f64> {
        values::rate_unit(unit).ok_or_else(|| {
            illegal(
                span,
                "Illegal rate unit, expected B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, kbit/s, Mbit/s or Gbit/s",
            )
        })
    }

    fn uses(&mut self) -> PResult<Stanza> {
        let pool = self.pool_name()?;
        let amount = self.amount()?;
        self.flag(Stanza::Uses(pool, amount))
    }

    fn amount(&mut self) -> PResult<Amount> {
        let word = self.lex.arg()?;
        if values::is_variable(&word.text) {
            return Ok(Amount::Variable(word.text));
        }
        values::number(&word.text)
            .filter(|amount| *amount > 0.0)
            .map(Amount::Fixed)
            .ok_or_else(|| illegal(word.span, "Illegal amount, expected a positive number or a $VARIABLE"))
    }

    fn requires(&mut self) -> PResult<Stanza> {
        let word = self.subkeyword()?;
        let kind = match word.keyword() {
            Some("file") => PathKind::File,
            Some("dir") => PathKind::Dir,
            Some("path") => PathKind::Path,
            _ => return Err(unknown_stanza(&word).with_help("expected `requires file|dir|path PATH`")),
        };
        let path = self.lex.arg()?;
        self.flag(Stanza::Requires(kind, path.text))
    }

    fn hook(&mut self) -> PResult<Stanza> {
        let mut events = Vec::new();
        let keyword = loop {
            let word = self.lex.arg()?;
            if word.is("lua") || word.is("script") {
                break word;
            }
            for name in word.text.split(',').filter(|name| !name.is_empty()) {
                events.push(self.hook_event(name, word.span)?);
            }
        };
        if events.is_empty() {
            return Err(ParseError::new(ParseErrorKind::ExpectedToken, keyword.span)
                .with_help("name the job events first: hook started lua …"));
        }
        if keyword.is("lua") {
            let line = self.lex.line_of(self.lex.pos);
            let (code, _) = self.lex.rest_verbatim()?;
            return Ok(Stanza::Hook(events, LuaCode { code, line }));
        }
        let interpreter = self.interpreter()?;
        if interpreter != ["lua"] {
            return Err(illegal(keyword.span, "hooks run in the embedded Lua")
                .with_help("write `hook EVENT script lua`; use post-start or post-stop for commands"));
        }
        self.lex.finish_line()?;
        let (code, line) = self.lex.block("script", keyword.span)?;
        Ok(Stanza::Hook(events, LuaCode { code, line }))
    }

    fn hook_event(&self, name: &str, span: Span) -> PResult<HookEvent> {
        Ok(match name {
            "starting" => HookEvent::Starting,
            "started" => HookEvent::Started,
            "stopping" => HookEvent::Stopping,
            "stopped" => HookEvent::Stopped,
            "failed" => HookEvent::Failed,
            "respawn" => HookEvent::Respawn,
            _ => {
                return Err(illegal(
                    span,
                    format!(
                        "Unknown hook event '{name}', expected starting, started, stopping, stopped, failed or respawn"
                    ),
                ));
            }
        })
    }
}

/// Splits unquoted words such as `load1<2` into `load1`, `<`, `2` for gate expressions.
fn split_comparisons(words: Vec<Word>) -> Vec<Word> {
    let mut out = Vec::with_capacity(words.len());
    for word in words {
        // Only words written plainly (no quotes or escapes) map text offsets to source offsets.
        let plain = (word.span.hi - word.span.lo) as usize == word.text.len();
        let Some(at) = word
            .text
            .find(['<', '>'])
            .filter(|_| !word.quoted && plain && word.text.len() > 1)
        else {
            out.push(word);
            continue;
        };
        let op_len = if word.text[at + 1..].starts_with('=') { 2 } else { 1 };
        let lo = word.span.lo as usize;
        let piece = |from: usize, to: usize| Word {
            text: word.text[from..to].to_string(),
            span: Span::new(
                (lo + from).min(word.span.hi as usize),
                (lo + to).min(word.span.hi as usize),
            ),
            quoted: false,
        };
        if at > 0 {
            out.push(piece(0, at));
        }
        out.push(piece(at, at + op_len));
        if at + op_len < word.text.len() {
            out.push(piece(at + op_len, word.text.len()));
        }
    }
    out
}
