//! Environment tables and the two small languages that read them: `$VAR` expansion and
//! fnmatch-style globs. Pure functions over `KEY=VALUE` vectors.

/// Looks a key up in a `KEY=VALUE` table; later entries win.
pub fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|entry| {
        let (entry_key, value) = entry.split_once('=')?;
        (entry_key == key).then_some(value)
    })
}

/// Sets `KEY=VALUE`, replacing an existing entry in place (keeping the order of first use).
pub fn set(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|existing| existing.split_once('=').is_some_and(|(k, _)| k == key))
    {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Appends every entry of `more`, each replacing an entry with the same key.
pub fn merge(env: &mut Vec<String>, more: &[String]) {
    for entry in more {
        match entry.split_once('=') {
            Some((key, value)) => set(env, key, value),
            None => set(env, entry, ""),
        }
    }
}

/// A `$NAME` that the table does not define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownParameter(pub String);

/// Expands `$X`, `${X}`, `${X:-default}`, `${X-default}`, `${X:+alt}`, `${X+alt}` (nesting
/// allowed inside defaults). An undefined `$X` or `${X}` is an error, as in Upstart.
pub fn expand(text: &str, env: &[String]) -> Result<String, UnknownParameter> {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() && bytes[i + 1] == b'$' {
            out.push('$');
            i += 2;
            continue;
        }
        if bytes[i] != b'$' {
            let ch = text[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        if i + 1 < bytes.len() && bytes[i + 1] == b'{' {
            let Some(close) = matching_brace(text, i + 1) else {
                out.push_str(&text[i..]);
                break;
            };
            out.push_str(&expand_braced(&text[i + 2..close], env)?);
            i = close + 1;
            continue;
        }
        let name_len = text[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len() - i - 1);
        if name_len == 0 {
            out.push('$');
            i += 1;
            continue;
        }
        let name = &text[i + 1..i + 1 + name_len];
        match get(env, name) {
            Some(value) => out.push_str(value),
            None => return Err(UnknownParameter(name.to_string())),
        }
        i += 1 + name_len;
    }
    Ok(out)
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, byte) in text.as_bytes()[open..].iter().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

fn expand_braced(inner: &str, env: &[String]) -> Result<String, UnknownParameter> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    let rest = &inner[name_len..];
    let value = get(env, name);
    let (colon, op, word) = if let Some(word) = rest.strip_prefix(":-") {
        (true, '-', word)
    } else if let Some(word) = rest.strip_prefix(":+") {
        (true, '+', word)
    } else if let Some(word) = rest.strip_prefix('-') {
        (false, '-', word)
    } else if let Some(word) = rest.strip_prefix('+') {
        (false, '+', word)
    } else {
        return value
            .map(str::to_string)
            .ok_or_else(|| UnknownParameter(name.to_string()));
    };
    // With a colon, an empty value counts as unset.
    let is_set = value.is_some_and(|value| !colon || !value.is_empty());
    match (op, is_set) {
        ('-', true) => Ok(value.unwrap_or_default().to_string()),
        ('-', false) | ('+', true) => expand(word, env),
        _ => Ok(String::new()),
    }
}

/// fnmatch(3) without flags: `*` and `?` match any character (including `/`), `[…]` a set
/// with ranges and `!` or `^` negation, `\x` a literal `x`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_at(&pattern, &text)
}

fn glob_at(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class_match(&pattern[p..], text[t]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (text[t] == '[').then_some(1),
            },
            Some('\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(2),
            Some(ch) => (*ch == text[t]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                p += len;
                t += 1;
            }
            None => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|ch| *ch == '*')
}

/// Matches one character against a `[…]` class at the start of `pattern`; returns whether it
/// matched and the class's length, or `None` when the `[` does not open a valid class.
fn class_match(pattern: &[char], ch: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let current = *pattern.get(i)?;
        if current == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|end| *end != ']') {
            let end = pattern[i + 2];
            if current <= ch && ch <= end {
                matched = true;
            }
            i += 3;
        } else {
            if current == ch {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|pair| pair.to_string()).collect()
    }

    #[test]
    fn expansion_forms() {
        let table = env(&["A=1", "EMPTY=", "JOB=net", "INTERFACE=eth0"]);
        assert_eq!(expand("x$A-${A}y", &table), Ok("x1-1y".into()));
        assert_eq!(expand("${B:-dflt}", &table), Ok("dflt".into()));
        assert_eq!(expand("${EMPTY:-dflt}", &table), Ok("dflt".into()));
        assert_eq!(expand("${EMPTY-dflt}", &table), Ok("".into()));
        assert_eq!(expand("${A:+alt}", &table), Ok("alt".into()));
        assert_eq!(expand("${B:+alt}", &table), Ok("".into()));
        assert_eq!(expand("${A+alt}", &table), Ok("alt".into()));
        assert_eq!(expand("${B:-${A}}", &table), Ok("1".into()));
        assert_eq!(
            expand("$JOB${INTERFACE:+/}${INTERFACE:-}", &table),
            Ok("net/eth0".into())
        );
        assert_eq!(expand("$MISSING", &table), Err(UnknownParameter("MISSING".into())));
        assert_eq!(expand("${MISSING}", &table), Err(UnknownParameter("MISSING".into())));
        assert_eq!(expand("cost $ 5 \\$A", &table), Ok("cost $ 5 $A".into()));
    }

    #[test]
    fn later_entries_win_and_set_replaces_in_place() {
        let mut table = env(&["A=1", "B=2", "A=3"]);
        assert_eq!(get(&table, "A"), Some("3"));
        set(&mut table, "B", "9");
        assert_eq!(table, env(&["A=1", "B=9", "A=3"]));
        merge(&mut table, &env(&["C=4", "B=5"]));
        assert_eq!(get(&table, "B"), Some("5"));
        assert_eq!(get(&table, "C"), Some("4"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("[2345]", "2"));
        assert!(!glob_match("[2345]", "6"));
        assert!(glob_match("[!2345]", "6"));
        assert!(!glob_match("[!016]", "0"));
        assert!(glob_match("ttyS*", "ttyS0"));
        assert!(glob_match("*", "a/b"));
        assert!(glob_match("?*", "x"));
        assert!(!glob_match("?*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "a"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("[", "["));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }
}
