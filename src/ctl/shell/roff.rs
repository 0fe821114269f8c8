//! man(7) text: escaping, inline markup, and a converter from the markdown of `docs/` to
//! roff: headings become `.SH` and `.SS`, paragraphs `.PP`, list items `.IP`, fenced code
//! `.nf`/`.fi` blocks, tables one `.TP` entry per row (no tbl), inline code bold, links their
//! text. It reads only what `docs/` writes, one sentence per line; anything else is text.

/// `text` escaped for roff: backslashes written `\e`, other characters than ASCII as
/// `\[uXXXX]` (a page may then be read without knowing its encoding), and `-` as `\-` when
/// `minus` (options and code, which are typed as written).
pub(super) fn escape(text: &str, minus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => out.push_str(r"\e"),
            '-' if minus => out.push_str(r"\-"),
            other if !other.is_ascii() => out.push_str(&format!(r"\[u{:04X}]", u32::from(other))),
            other => out.push(other),
        }
    }
    out
}

/// A line of text: one that would begin with `.` or `'` (a request) begins with `\&`.
pub(super) fn text_line(line: &str) -> String {
    if line.starts_with(['.', '\'']) {
        format!("\\&{line}\n")
    } else {
        format!("{line}\n")
    }
}

/// `text` in bold (an option, a command), escaped.
pub(super) fn bold(text: &str) -> String {
    format!(r"\fB{}\fR", escape(text, true))
}

/// Inline markdown to roff: `` `code` `` bold, `**strong**` bold, `[text](target)` its text;
/// the rest escaped.
pub(super) fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(character) = rest.chars().next() {
        if character == '`' {
            let ticks = rest.len() - rest.trim_start_matches('`').len();
            let fence = &rest[..ticks];
            if let Some(end) = rest[ticks..].find(fence) {
                let code = &rest[ticks..ticks + end];
                let code = if code.starts_with(' ') && code.ends_with(' ') && code.len() > 1 {
                    &code[1..code.len() - 1]
                } else {
                    code
                };
                out.push_str(&bold(code));
                rest = &rest[ticks + end + ticks..];
                continue;
            }
            out.push_str(&escape(fence, false));
            rest = &rest[ticks..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("**")
            && let Some(end) = after.find("**")
        {
            out.push_str(&format!(r"\fB{}\fR", inline(&after[..end])));
            rest = &after[end + 2..];
            continue;
        }
        if character == '['
            && let Some(close) = rest.find("](")
            && let Some(end) = rest[close..].find(')')
        {
            out.push_str(&inline(&rest[1..close]));
            rest = &rest[close + end + 1..];
            continue;
        }
        out.push_str(&escape(&character.to_string(), false));
        rest = &rest[character.len_utf8()..];
    }
    out
}

/// Markdown (as `docs/` writes it) to roff. The first `#` heading is left out: the page's
/// `.TH` and NAME say it.
pub(super) fn markdown(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines().peekable();
    let mut in_paragraph = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            in_paragraph = false;
            continue;
        }
        if let Some(fence) = trimmed.strip_prefix("```") {
            let _language = fence;
            out.push_str(".PP\n.RS 4\n.nf\n");
            for code in lines.by_ref() {
                if code.trim_end() == "```" {
                    break;
                }
                out.push_str(&text_line(&escape(code, true)));
            }
            out.push_str(".fi\n.RE\n");
            in_paragraph = false;
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("# ") {
            let _ = title;
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("## ") {
            let plain = escape(&title.replace('`', "").to_uppercase(), false);
            out.push_str(&format!(".SH \"{}\"\n", plain.replace('"', "\\(dq")));
            in_paragraph = false;
            continue;
        }
        if let Some(title) = trimmed
            .strip_prefix("###")
            .map(|rest| rest.trim_start_matches('#').trim())
        {
            out.push_str(&format!(".SS \"{}\"\n", inline(title).replace('"', "\\(dq")));
            in_paragraph = false;
            continue;
        }
        if trimmed.starts_with('|') {
            let mut rows = vec![trimmed.to_string()];
            while let Some(next) = lines.peek().filter(|next| next.trim_start().starts_with('|')) {
                rows.push(next.trim_end().to_string());
                lines.next();
            }
            out.push_str(&table(&rows));
            in_paragraph = false;
            continue;
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        let body = trimmed.trim_start();
        if let Some(item) = body.strip_prefix("- ").or_else(|| body.strip_prefix("* ")) {
            let (tag, width) = if indent > 0 { (r"\(en", 6) } else { (r"\(bu", 2) };
            if indent > 0 {
                out.push_str(&format!(".RS 2\n.IP {tag} {width}\n{}.RE\n", text_line(&inline(item))));
            } else {
                out.push_str(&format!(".IP {tag} {width}\n{}", text_line(&inline(item))));
            }
            in_paragraph = true;
            continue;
        }
        if let Some((number, item)) = body.split_once(". ")
            && !number.is_empty()
            && number.chars().all(|digit| digit.is_ascii_digit())
        {
            out.push_str(&format!(".IP {number}. 4\n{}", text_line(&inline(item))));
            in_paragraph = true;
            continue;
        }
        if !in_paragraph {
            out.push_str(".PP\n");
            in_paragraph = true;
        }
        out.push_str(&text_line(&inline(body)));
    }
    out
}

/// A markdown table as one `.TP` entry per row: the first cell the tag, the others each
/// after its column's heading.
fn table(rows: &[String]) -> String {
    let cells = |row: &str| -> Vec<String> {
        let row = row.trim().trim_start_matches('|').trim_end_matches('|');
        split_cells(row)
            .into_iter()
            .map(|cell| cell.trim().to_string())
            .collect()
    };
    let mut rows = rows.iter();
    let Some(header) = rows.next() else {
        return String::new();
    };
    let header = cells(header);
    let mut out = String::new();
    for row in rows {
        let row = cells(row);
        if row.iter().all(|cell| cell.chars().all(|c| matches!(c, '-' | ':'))) {
            continue;
        }
        let Some((first, rest)) = row.split_first() else {
            continue;
        };
        out.push_str(&format!(".TP\n{}", text_line(&inline(first))));
        let described: Vec<String> = rest
            .iter()
            .enumerate()
            .filter(|(_, cell)| !cell.is_empty())
            .map(
                |(column, cell)| match header.get(column + 1).filter(|_| rest.len() > 1) {
                    Some(heading) => format!("{}: {}", inline(heading), inline(cell)),
                    None => inline(cell),
                },
            )
            .collect();
        out.push_str(&text_line(&described.join("; ")));
    }
    out
}

/// A table row's cells: split at `|` outside inline code (`` `a|b` `` is one cell).
fn split_cells(row: &str) -> Vec<&str> {
    let mut cells = Vec::new();
    let mut start = 0;
    let mut in_code = false;
    let mut previous = '\0';
    for (at, character) in row.char_indices() {
        match character {
            '`' => in_code = !in_code,
            '|' if !in_code && previous != '\\' => {
                cells.push(&row[start..at]);
                start = at + 1;
            }
            _ => {}
        }
        previous = character;
    }
    cells.push(&row[start..]);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_backslashes_are_escaped() {
        assert_eq!(text_line(".conf files"), "\\&.conf files\n");
        assert_eq!(text_line("'quoted'"), "\\&'quoted'\n");
        assert_eq!(escape(r"a\b", false), r"a\eb");
        assert_eq!(escape("--now", true), r"\-\-now");
        assert_eq!(escape("a…b", false), r"a\[u2026]b");
    }

    #[test]
    fn inline_markup_becomes_fonts() {
        assert_eq!(inline("run `start on` [here](x.md)"), r"run \fBstart on\fR here");
        assert_eq!(inline("``a`b``"), r"\fBa`b\fR");
        assert_eq!(inline("**not** a `-v`"), r"\fBnot\fR a \fB\-v\fR");
        assert_eq!(inline("no close `here"), "no close `here");
    }

    #[test]
    fn blocks_become_requests() {
        let roff = markdown(
            "# Title\n\nIntro line.\n.dot line\n\n## Some part\n\n### `exec`\n\n- one\n  - two\n1. first\n\n```job\nexec echo \\\n.x\n```\n\n| a | b | c |\n|---|---|---|\n| `x|y` | 1 | 2 |\n",
        );
        assert_eq!(
            roff,
            ".PP\nIntro line.\n\\&.dot line\n.SH \"SOME PART\"\n.SS \"\\fBexec\\fR\"\n.IP \\(bu 2\none\n.RS 2\n.IP \\(en 6\ntwo\n.RE\n.IP 1. 4\nfirst\n.PP\n.RS 4\n.nf\nexec echo \\e\n\\&.x\n.fi\n.RE\n.TP\n\\fBx|y\\fR\nb: 1; c: 2\n"
        );
    }
}
