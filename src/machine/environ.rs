//! Environment tables and the two small languages that read them: `$VAR` expansion and
//! fnmatch-style globs. Pure functions over `KEY=VALUE` vectors.

use std::rc::Rc;

/// Looks a key up in a `KEY=VALUE` table; later entries win.
pub fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|entry| value_for(entry, key))
}

/// The value of a `KEY=VALUE` entry whose key is `key`. Comparing the prefix costs no search
/// for the `=`: a job's environment is built from a few dozen entries for every process.
pub fn value_for<'a>(entry: &'a str, key: &str) -> Option<&'a str> {
    entry.strip_prefix(key)?.strip_prefix('=')
}

/// The key of an entry: up to the first `=`, or all of a bare `KEY`.
pub fn key_of(entry: &str) -> &str {
    entry
        .bytes()
        .position(|byte| byte == b'=')
        .map_or(entry, |end| &entry[..end])
}

/// Whether an entry (`KEY=VALUE`, or a bare `KEY`) has the key `key`.
pub fn has_key(entry: &str, key: &str) -> bool {
    entry
        .strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
}

/// Something `$VAR`s can be looked up in: a plain table or a layered [`Environment`].
pub trait Lookup {
    fn lookup(&self, key: &str) -> Option<&str>;
}

impl Lookup for [String] {
    fn lookup(&self, key: &str) -> Option<&str> {
        get(self, key)
    }
}

impl<const N: usize> Lookup for [String; N] {
    fn lookup(&self, key: &str) -> Option<&str> {
        get(self, key)
    }
}

impl Lookup for Vec<String> {
    fn lookup(&self, key: &str) -> Option<&str> {
        get(self, key)
    }
}

/// An instance's environment: the global table it started from, shared with every instance
/// started since that table last changed, under entries of its own (the job's `env`
/// stanzas and the event's or the command's variables).
///
/// A thousand instances of a session daemon's environment would otherwise be a thousand
/// copies of the same few dozen strings. The table it reads as is [`merge`] of the base and
/// the own entries: base entries in their order (an own entry with the same key replacing
/// the value in place), then the own entries with new keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    base: Rc<Vec<String>>,
    own: Vec<String>,
}

impl Environment {
    pub fn new(base: Rc<Vec<String>>, own: Vec<String>) -> Environment {
        Environment { base, own }
    }

    /// A table of its own, sharing nothing.
    pub fn from_vec(own: Vec<String>) -> Environment {
        Environment {
            base: Rc::default(),
            own,
        }
    }

    pub fn base(&self) -> &Rc<Vec<String>> {
        &self.base
    }

    /// Gives back the room the own entries do not use.
    pub fn shrink_to_fit(&mut self) {
        self.own.shrink_to_fit();
    }

    pub fn own(&self) -> &[String] {
        &self.own
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        get(&self.own, key).or_else(|| get(&self.base, key))
    }

    /// Sets `KEY=VALUE` over whatever the base says.
    pub fn set(&mut self, key: &str, value: &str) {
        set(&mut self.own, key, value);
    }

    /// Sets every entry of `more`.
    pub fn merge(&mut self, more: &[String]) {
        merge(&mut self.own, more);
    }

    /// The table as one vector.
    pub fn to_vec(&self) -> Vec<String> {
        let mut table = Vec::with_capacity(self.base.len() + self.own.len());
        table.extend(self.entries().map(str::to_string));
        table
    }

    /// The entries of [`Environment::to_vec`], without copying them.
    ///
    /// A small table (the usual: a few own entries over a few dozen shared ones) is read by
    /// scanning; past `INDEXED` pairs to compare, through hash sets, so that a job with
    /// 100,000 `env` lines costs a pass, not a pass per entry.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        let indexed = self.own.len().saturating_mul(self.base.len() + self.own.len()) > INDEXED;
        let large = indexed.then(|| self.entries_indexed());
        let small = (!indexed).then(|| self.entries_scanned());
        large.into_iter().flatten().chain(small.into_iter().flatten())
    }

    fn entries_scanned(&self) -> impl Iterator<Item = &str> {
        let replaced = |entry: &str| {
            let key = key_of(entry);
            self.own.iter().rev().find(|own| has_key(own, key))
        };
        let base = self
            .base
            .iter()
            .map(move |entry| replaced(entry).map_or(entry.as_str(), String::as_str));
        let extra = self.own.iter().enumerate().filter_map(move |(index, entry)| {
            let key = key_of(entry);
            let in_base = get(&self.base, key).is_some();
            // Only the first own entry of a key shows; `set` never makes a second one.
            let first = !self.own[..index].iter().any(|earlier| has_key(earlier, key));
            (!in_base && first).then(|| replaced(entry).map_or(entry.as_str(), String::as_str))
        });
        base.chain(extra)
    }

    /// [`Environment::entries_scanned`]'s result, through hash sets.
    fn entries_indexed(&self) -> Vec<&str> {
        use std::collections::{HashMap, HashSet};
        // The last own entry of each key wins.
        let own: HashMap<&str, &str> = self.own.iter().map(|entry| (key_of(entry), entry.as_str())).collect();
        // The keys `get` finds in the base: those of entries with a value.
        let base_keys: HashSet<&str> = self
            .base
            .iter()
            .filter(|entry| entry.contains('='))
            .map(|entry| key_of(entry))
            .collect();
        let mut table = Vec::with_capacity(self.base.len() + own.len());
        for entry in self.base.iter() {
            table.push(own.get(key_of(entry)).copied().unwrap_or(entry));
        }
        let mut shown = HashSet::with_capacity(own.len());
        for entry in &self.own {
            let key = key_of(entry);
            if !base_keys.contains(key) && shown.insert(key) {
                table.push(own[key]);
            }
        }
        table
    }

    /// Changes the table as one vector (the environment commands edit, unset and reset
    /// entries, including the base's); the result shares nothing.
    pub fn edit(&mut self, edit: impl FnOnce(&mut Vec<String>)) {
        let mut table = self.to_vec();
        edit(&mut table);
        *self = Environment::from_vec(table);
    }
}

impl Lookup for Environment {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// How many key comparisons a table operation may make by scanning before it goes through a
/// hash index instead.
const INDEXED: usize = 1024;

/// Sets `KEY=VALUE`, replacing an existing entry in place (keeping the order of first use).
pub fn set(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|existing| value_for(existing, key).is_some()) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Appends every entry of `more`, each replacing an entry with the same key (an entry
/// without `=` sets its key to the empty value). As [`set`] for each, in one pass over
/// `env` when the tables are large.
pub fn merge(env: &mut Vec<String>, more: &[String]) {
    fn split(entry: &str) -> (&str, &str) {
        entry.split_once('=').unwrap_or((entry, ""))
    }
    if more.len().saturating_mul(env.len() + more.len()) <= INDEXED {
        for entry in more {
            let (key, value) = split(entry);
            set(env, key, value);
        }
        return;
    }
    // The first entry of each key is the one `set` replaces.
    let mut index: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(env.len() + more.len());
    // (An entry without `=` has no value for `set` to replace.)
    for (at, entry) in env.iter().enumerate().filter(|(_, entry)| entry.contains('=')) {
        index.entry(key_of(entry).to_string()).or_insert(at);
    }
    for entry in more {
        let (key, value) = split(entry);
        let entry = format!("{key}={value}");
        match index.get(key) {
            Some(&at) => env[at] = entry,
            None => {
                index.insert(key.to_string(), env.len());
                env.push(entry);
            }
        }
    }
}

/// A `$NAME` that the table does not define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownParameter(pub String);

/// Expands `$X`, `${X}`, `${X:-default}`, `${X-default}`, `${X:+alt}`, `${X+alt}` (nesting
/// allowed inside defaults). An undefined `$X` or `${X}` is an error, as in Upstart.
pub fn expand<L: Lookup + ?Sized>(text: &str, env: &L) -> Result<String, UnknownParameter> {
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
        match env.lookup(name) {
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

fn expand_braced<L: Lookup + ?Sized>(inner: &str, env: &L) -> Result<String, UnknownParameter> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    let rest = &inner[name_len..];
    let value = env.lookup(name);
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
    fn a_key_is_never_matched_by_a_longer_or_shorter_one() {
        let mut table = env(&["PATHX=1", "PATH=/bin", "PA=2", "BARE"]);
        assert_eq!(get(&table, "PATH"), Some("/bin"));
        assert_eq!(get(&table, "PATHX"), Some("1"));
        assert_eq!(get(&table, "P"), None);
        assert_eq!(get(&table, "BARE"), None);
        set(&mut table, "PATH", "/usr/bin");
        set(&mut table, "PAT", "3");
        assert_eq!(table, env(&["PATHX=1", "PATH=/usr/bin", "PA=2", "BARE", "PAT=3"]));
        assert_eq!(key_of("A=B=C"), "A");
        assert_eq!(key_of("BARE"), "BARE");
        assert!(has_key("BARE", "BARE") && has_key("A=", "A") && !has_key("AB=1", "A"));
        let layered = Environment::new(Rc::new(env(&["PATH=/bin", "PATHX=1"])), env(&["PATH=/sbin"]));
        assert_eq!(layered.to_vec(), env(&["PATH=/sbin", "PATHX=1"]));
    }

    /// Every base over keys A, B, C and every own table built by `set` over keys B, C, D: the
    /// layered environment reads exactly as the base with the own entries merged in.
    #[test]
    fn layered_environment_reads_as_the_merged_table() {
        let bases: Vec<Vec<String>> = vec![
            env(&[]),
            env(&["A=1"]),
            env(&["A=1", "B=2"]),
            env(&["B=2", "A=1", "C=3"]),
            env(&["C=3", "B=", "A=1"]),
        ];
        let owns: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("B", "x")],
            vec![("D", "y")],
            vec![("D", "y"), ("B", "x")],
            vec![("C", "z"), ("D", "y"), ("C", "w")],
            vec![("B", ""), ("D", "")],
        ];
        for base in &bases {
            let shared = Rc::new(base.clone());
            for own in &owns {
                let mut layered = Environment::new(shared.clone(), Vec::new());
                let mut flat = base.clone();
                for (key, value) in own {
                    layered.set(key, value);
                    set(&mut flat, key, value);
                }
                assert_eq!(layered.to_vec(), flat, "base {base:?} own {own:?}");
                for key in ["A", "B", "C", "D", "E"] {
                    assert_eq!(layered.get(key), get(&flat, key), "{key} in {base:?} + {own:?}");
                    assert_eq!(
                        expand(&format!("${{{key}:-none}}"), &layered),
                        expand(&format!("${{{key}:-none}}"), &flat)
                    );
                }
                assert!(Rc::ptr_eq(layered.base(), &shared), "the base is shared, not copied");
            }
        }
    }

    /// The hash-indexed paths give what the scans give, on tables large enough to take them
    /// and with keys repeated in both layers.
    #[test]
    fn large_tables_read_and_merge_as_small_ones() {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for round in 0..40 {
            let keys = 5 + next(300);
            let mut table = |most: u64| -> Vec<String> {
                let count = next(most);
                (0..count)
                    .map(|value| match next(10) {
                        0 => format!("K{}", next(keys)),
                        _ => format!("K{}={round}.{value}", next(keys)),
                    })
                    .collect()
            };
            let base = table(200);
            let own = table(400);
            let mut flat = base.clone();
            for entry in &own {
                let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                set(&mut flat, key, value);
            }
            let mut merged = base.clone();
            merge(&mut merged, &own);
            assert_eq!(merged, flat, "round {round}");
            let mut layered = Environment::new(Rc::new(base.clone()), Vec::new());
            layered.merge(&own);
            let scanned: Vec<&str> = layered.entries_scanned().collect();
            assert_eq!(layered.entries_indexed(), scanned, "round {round}");
            assert_eq!(layered.entries().collect::<Vec<_>>(), scanned, "round {round}");
        }
    }

    #[test]
    fn merging_into_a_layered_environment_sets_each_entry() {
        let mut layered = Environment::new(Rc::new(env(&["PATH=/bin", "TERM=linux"])), Vec::new());
        layered.merge(&env(&["TERM=vt100", "UPSTART_EVENTS=startup", "NOVALUE"]));
        assert_eq!(
            layered.to_vec(),
            env(&["PATH=/bin", "TERM=vt100", "UPSTART_EVENTS=startup", "NOVALUE="])
        );
        assert_eq!(
            layered.own(),
            env(&["TERM=vt100", "UPSTART_EVENTS=startup", "NOVALUE="])
        );
    }

    #[test]
    fn editing_a_layered_environment_flattens_it() {
        let shared = Rc::new(env(&["A=1", "B=2"]));
        let mut layered = Environment::new(shared.clone(), env(&["C=3"]));
        layered.edit(|table| table.retain(|entry| !entry.starts_with("A=")));
        assert_eq!(layered.to_vec(), env(&["B=2", "C=3"]));
        assert!(!Rc::ptr_eq(layered.base(), &shared));
        assert_eq!(
            *shared,
            env(&["A=1", "B=2"]),
            "other instances keep the table they started from"
        );
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
