//! Which stanzas the daemon enforces today. A stanza that parses but whose semantics are not
//! built yet is reported by `uprisectl check` and by the daemon as "parsed but not yet
//! enforced", so nothing is ignored silently. Update this table when a feature lands.

use crate::syntax::ast::{Console, Stanza};

/// Whether a stanza takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Its semantics are planned but not built; the text names the feature.
    Planned(&'static str),
}

/// `None` when the daemon enforces the stanza.
pub fn of(stanza: &Stanza) -> Option<Enforcement> {
    let feature = match stanza {
        Stanza::ApparmorLoad(_) | Stanza::ApparmorSwitch(_) => "`apparmor`",
        Stanza::Cgroup(_) => "`cgroup`",
        Stanza::Debug => "`debug`",
        Stanza::Console(Console::Owner) => "`console owner` (a controlling terminal)",
        _ => return None,
    };
    Some(Enforcement::Planned(feature))
}
