//! Matching events against a `start on`/`stop on` expression, with memory.
//!
//! Each leaf remembers the first event that matched it (and so holds it: the event does not
//! finish while a leaf holds it). When the whole expression becomes true, the caller takes
//! the events of its *true part* and only those leaves are reset.
//!
//! Difference from Upstart: Upstart reset the whole tree on firing, so with
//! `A and (B or C)`, after A+B fired, a later A+C did not fire unless A came again
//! (its documented bug). Here each firing consumes only the events that made the expression
//! true; partial matches elsewhere in the tree survive.

use crate::syntax::ast::{EventArg, EventExpr, EventMatch, Temporal};

use super::environ::{Lookup, expand, get, glob_match};

/// Identifies an event for the duration of its life in the daemon.
pub type EventId = u64;

/// An event as the matcher sees it: a name and its ordered `KEY=VALUE` environment.
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    pub id: EventId,
    pub name: &'a str,
    pub env: &'a [String],
}

#[derive(Clone, Debug)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Leaf {
        pattern: EventMatch,
        matched: Option<EventId>,
    },
    /// A clock operand (`every …`): matched only by its own timer's firing
    /// ([`Matcher::fire`]), `index` being its place among the expression's temporal
    /// operands in tree order.
    Timer {
        index: u16,
        matched: Option<EventId>,
    },
    /// `DURATION after EVENT`: an event matching `pattern` arms a timer (the offer reports
    /// it, and takes no hold); the leaf is matched by that timer's firing.
    After {
        index: u16,
        pattern: EventMatch,
        matched: Option<EventId>,
    },
}

/// The matching state of one expression.
#[derive(Clone, Debug)]
pub struct Matcher {
    root: Node,
}

/// Builds the tree; `temporal` numbers the temporal operands in tree order (left to right,
/// as `model::job::temporals` visits them).
fn build(expr: &EventExpr, temporal: &mut u16) -> Node {
    match expr {
        EventExpr::And { left, right } => {
            let left = build(left, temporal);
            Node::And(Box::new(left), Box::new(build(right, temporal)))
        }
        EventExpr::Or { left, right } => {
            let left = build(left, temporal);
            Node::Or(Box::new(left), Box::new(build(right, temporal)))
        }
        EventExpr::Event(pattern) => Node::Leaf {
            pattern: pattern.clone(),
            matched: None,
        },
        EventExpr::Temporal { timer, .. } => {
            let index = *temporal;
            *temporal += 1;
            match timer {
                Temporal::After { event, .. } => Node::After {
                    index,
                    pattern: event.clone(),
                    matched: None,
                },
                Temporal::Every { .. } | Temporal::Calendar(_) | Temporal::Cron { .. } => {
                    Node::Timer { index, matched: None }
                }
            }
        }
    }
}

/// Upstart's rule for one leaf: equal names; positional values against the values of the
/// event's entries in order; `KEY=VALUE` anywhere; a missing key never matches, not even
/// `!=`. Values are globs after `$VAR` expansion; an unknown variable means no match.
pub fn event_matches<L: Lookup + ?Sized>(pattern: &EventMatch, event: &EventRef<'_>, vars: &L) -> bool {
    if pattern.name != event.name {
        return false;
    }
    let mut position = 0;
    for arg in &pattern.args {
        let (value, wanted, equal) = match arg {
            EventArg::Positional { value } => {
                let Some(entry) = event.env.get(position) else {
                    return false;
                };
                position += 1;
                let actual = entry.split_once('=').map_or(entry.as_str(), |(_, value)| value);
                (value, actual, true)
            }
            EventArg::Equal { key, value } | EventArg::NotEqual { key, value } => {
                let Some(actual) = get(event.env, key) else {
                    return false;
                };
                (value, actual, matches!(arg, EventArg::Equal { .. }))
            }
        };
        let Ok(pattern) = expand(value, vars) else { return false };
        if glob_match(&pattern, wanted) != equal {
            return false;
        }
    }
    true
}

impl Node {
    fn value(&self) -> bool {
        match self {
            Node::And(left, right) => left.value() && right.value(),
            Node::Or(left, right) => left.value() || right.value(),
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => matched.is_some(),
        }
    }

    /// Offers an event to every leaf; returns how many leaves took it (each is one hold).
    /// The `after` leaves whose event it is are added to `armed`.
    fn offer<L: Lookup + ?Sized>(&mut self, event: &EventRef<'_>, vars: &L, armed: &mut Vec<u16>) -> usize {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.offer(event, vars, armed) + right.offer(event, vars, armed)
            }
            Node::Leaf { pattern, matched } => {
                if matched.is_none() && event_matches(pattern, event, vars) {
                    *matched = Some(event.id);
                    return 1;
                }
                0
            }
            Node::After { index, pattern, .. } => {
                if event_matches(pattern, event, vars) {
                    armed.push(*index);
                }
                0
            }
            Node::Timer { .. } => 0,
        }
    }

    /// A timer of temporal operand `index` fired, as event `id`: 1 when its leaf took it.
    fn fire(&mut self, index: u16, id: EventId) -> usize {
        match self {
            Node::And(left, right) | Node::Or(left, right) => left.fire(index, id) + right.fire(index, id),
            Node::Timer { index: own, matched }
            | Node::After {
                index: own, matched, ..
            } if *own == index && matched.is_none() => {
                *matched = Some(id);
                1
            }
            Node::Leaf { .. } | Node::Timer { .. } | Node::After { .. } => 0,
        }
    }

    /// Collects (and resets) the events of the true part, in tree order.
    fn take_true_part(&mut self, out: &mut Vec<EventId>) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                if left.value() {
                    left.take_true_part(out);
                }
                if right.value() {
                    right.take_true_part(out);
                }
            }
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => {
                if let Some(id) = matched.take() {
                    out.push(id);
                }
            }
        }
    }

    fn held(&self, out: &mut Vec<EventId>) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.held(out);
                right.held(out);
            }
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => {
                out.extend(*matched)
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.clear();
                right.clear();
            }
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => *matched = None,
        }
    }

    fn holds(&self, out: &mut Vec<Option<EventId>>) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.holds(out);
                right.holds(out);
            }
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => {
                out.push(*matched)
            }
        }
    }

    fn set_holds(&mut self, holds: &mut impl Iterator<Item = Option<EventId>>) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.set_holds(holds);
                right.set_holds(holds);
            }
            Node::Leaf { matched, .. } | Node::Timer { matched, .. } | Node::After { matched, .. } => {
                *matched = holds.next().flatten()
            }
        }
    }

    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::And(left, right) | Node::Or(left, right) => {
                left.names(out);
                right.names(out);
            }
            Node::Leaf { pattern, .. } | Node::After { pattern, .. } => out.push(&pattern.name),
            Node::Timer { .. } => {}
        }
    }
}

/// What happened when an event was offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// How many leaves took the event; each now holds it (one hold each).
    pub taken: usize,
    /// The whole expression is true.
    pub fired: bool,
    /// The `DURATION after EVENT` operands (by index) whose event it was: each arms a timer.
    pub armed: Vec<u16>,
}

impl Matcher {
    pub fn new(expr: &EventExpr) -> Matcher {
        Matcher {
            root: build(expr, &mut 0),
        }
    }

    /// Offers an event; `vars` expands `$VAR` in the expression's values.
    pub fn offer<L: Lookup + ?Sized>(&mut self, event: &EventRef<'_>, vars: &L) -> Offer {
        let mut armed = Vec::new();
        let taken = self.root.offer(event, vars, &mut armed);
        Offer {
            taken,
            fired: taken > 0 && self.root.value(),
            armed,
        }
    }

    /// The timer of temporal operand `index` fired, as event `id` (a clock operand's timer,
    /// or the timer an `after` operand's event armed). Taken only by that operand's leaf,
    /// and only if it is not matched already (a firing while it is, is dropped as any
    /// matching event is).
    pub fn fire(&mut self, index: u16, id: EventId) -> Offer {
        let taken = self.root.fire(index, id);
        Offer {
            taken,
            fired: taken > 0 && self.root.value(),
            armed: Vec::new(),
        }
    }

    pub fn is_true(&self) -> bool {
        self.root.value()
    }

    /// After firing: the holds of the leaves that made the expression true, in tree order
    /// (an event taken by two leaves appears twice); those leaves are reset, other partial
    /// matches stay.
    pub fn take_fired(&mut self) -> Vec<EventId> {
        let mut out = Vec::new();
        self.root.take_true_part(&mut out);
        out
    }

    /// Every event a leaf holds.
    pub fn held(&self) -> Vec<EventId> {
        let mut out = Vec::new();
        self.root.held(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets every partial match; returns the holds that were kept (one per leaf).
    pub fn reset(&mut self) -> Vec<EventId> {
        let mut holds = Vec::new();
        self.root.held(&mut holds);
        self.root.clear();
        holds
    }

    /// What each leaf holds, in tree order (for re-exec).
    pub fn leaf_holds(&self) -> Vec<Option<EventId>> {
        let mut out = Vec::new();
        self.root.holds(&mut out);
        out
    }

    /// A matcher for `expr` whose leaves hold what `holds` says, in tree order (re-exec).
    /// Missing entries leave leaves empty; extra ones are ignored.
    pub fn with_holds(expr: &EventExpr, holds: &[Option<EventId>]) -> Matcher {
        let mut matcher = Matcher::new(expr);
        matcher.root.set_holds(&mut holds.iter().copied());
        matcher
    }

    /// The event names the expression can match, for the dispatch index.
    pub fn event_names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.names(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{Stanza, parse_file};

    fn matcher(expr: &str) -> Matcher {
        let (ast, errors) = parse_file(&format!("start on {expr}\n"));
        assert!(errors.is_empty(), "{errors:?}");
        match &ast.stanzas[0].node {
            Stanza::StartOn(expr) => Matcher::new(expr),
            other => panic!("{other:?}"),
        }
    }

    fn env(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|entry| entry.to_string()).collect()
    }

    fn offer(matcher: &mut Matcher, id: EventId, name: &str, entries: &[&str]) -> Offer {
        let env = env(entries);
        matcher.offer(&EventRef { id, name, env: &env }, &[])
    }

    #[test]
    fn positional_named_negated_and_missing_keys() {
        let pattern = |expr: &str| match matcher(expr).root {
            Node::Leaf { pattern, .. } => pattern,
            other => panic!("{other:?}"),
        };
        let ev = |name, entries: &[&str]| (name, env(entries));
        let check = |expr: &str, (name, entries): (&str, Vec<String>)| {
            event_matches(
                &pattern(expr),
                &EventRef {
                    id: 1,
                    name,
                    env: &entries,
                },
                &[],
            )
        };
        assert!(check("stopped rc", ev("stopped", &["JOB=rc", "INSTANCE="])));
        assert!(check(
            "stopped rc RUNLEVEL=[2345]",
            ev("stopped", &["JOB=rc", "RUNLEVEL=2"])
        ));
        assert!(!check(
            "stopped rc RUNLEVEL=[2345]",
            ev("stopped", &["JOB=rc", "RUNLEVEL=6"])
        ));
        assert!(!check("started db", ev("stopped", &["JOB=db"])));
        assert!(check("net-up IFACE!=lo", ev("net-up", &["IFACE=eth0"])));
        assert!(!check("net-up IFACE!=lo", ev("net-up", &["IFACE=lo"])));
        // A missing key never matches, not even with !=.
        assert!(!check("net-up IFACE!=lo", ev("net-up", &[])));
        // More positional values than entries: no match.
        assert!(!check("started db x", ev("started", &["JOB=db"])));
        assert!(check("runlevel [!016]", ev("runlevel", &["RUNLEVEL=2", "PREVLEVEL=N"])));
        assert!(check("started foo bar", ev("started", &["JOB=foo", "INSTANCE=bar"])));
    }

    #[test]
    fn variables_expand_from_the_given_table_and_unknown_ones_never_match() {
        let mut m = matcher("device-removed DEVPATH=$DEVPATH");
        let event_env = env(&["DEVPATH=/dev/sda"]);
        let event = EventRef {
            id: 1,
            name: "device-removed",
            env: &event_env,
        };
        assert!(!m.clone().offer(&event, &[]).fired);
        assert!(!m.clone().offer(&event, &env(&["DEVPATH=/dev/sdb"])).fired);
        assert!(m.offer(&event, &env(&["DEVPATH=/dev/sda"])).fired);
    }

    #[test]
    fn and_holds_a_partial_match_until_the_other_side_comes() {
        let mut m = matcher("a and b");
        assert_eq!(
            offer(&mut m, 1, "a", &[]),
            Offer {
                taken: 1,
                fired: false,
                armed: Vec::new()
            }
        );
        assert_eq!(m.held(), [1]);
        // A second `a` is ignored while the leaf holds the first.
        assert_eq!(
            offer(&mut m, 2, "a", &[]),
            Offer {
                taken: 0,
                fired: false,
                armed: Vec::new()
            }
        );
        assert_eq!(
            offer(&mut m, 3, "b", &[]),
            Offer {
                taken: 1,
                fired: true,
                armed: Vec::new()
            }
        );
        assert_eq!(m.take_fired(), [1, 3]);
        assert!(m.held().is_empty());
    }

    #[test]
    fn the_a_and_b_or_c_bug_is_fixed() {
        let mut m = matcher("a and (b or c)");
        offer(&mut m, 1, "a", &[]);
        assert!(offer(&mut m, 2, "b", &[]).fired);
        assert_eq!(m.take_fired(), [1, 2]);
        offer(&mut m, 3, "a", &[]);
        // Upstart would not fire here unless `a` came again; uprise does.
        assert!(offer(&mut m, 4, "c", &[]).fired);
        assert_eq!(m.take_fired(), [3, 4]);
    }

    #[test]
    fn a_firing_keeps_unrelated_partial_matches() {
        let mut m = matcher("(a and b) or c");
        offer(&mut m, 1, "a", &[]);
        assert!(offer(&mut m, 2, "c", &[]).fired);
        assert_eq!(m.take_fired(), [2]);
        assert_eq!(m.held(), [1]);
        assert!(offer(&mut m, 3, "b", &[]).fired);
        assert_eq!(m.take_fired(), [1, 3]);
    }

    #[test]
    fn one_event_taken_by_two_leaves_is_held_twice() {
        let mut m = matcher("started x or started JOB=x");
        assert_eq!(
            offer(&mut m, 7, "started", &["JOB=x"]),
            Offer {
                taken: 2,
                fired: true,
                armed: Vec::new()
            }
        );
        assert_eq!(m.take_fired(), [7, 7]);
    }

    #[test]
    fn a_firing_on_one_side_keeps_the_other_sides_hold_on_a_shared_event() {
        let mut m = matcher("(a and x) or (a and y)");
        assert_eq!(offer(&mut m, 1, "a", &[]).taken, 2);
        assert!(offer(&mut m, 2, "x", &[]).fired);
        assert_eq!(m.take_fired(), [1, 2]);
        // The right-hand `a` still holds event 1: one hold is left to release.
        assert_eq!(m.reset(), [1]);
    }

    #[test]
    fn leaf_holds_round_trip() {
        let mut m = matcher("(a and b) or (c and 5m after d)");
        offer(&mut m, 4, "c", &[]);
        offer(&mut m, 9, "b", &[]);
        let holds = m.leaf_holds();
        assert_eq!(holds, [None, Some(9), Some(4), None]);
        let (ast, _) = parse_file("start on (a and b) or (c and 5m after d)\n");
        let Stanza::StartOn(expr) = &ast.stanzas[0].node else {
            panic!()
        };
        let mut restored = Matcher::with_holds(expr, &holds);
        assert_eq!(restored.leaf_holds(), holds);
        assert!(offer(&mut restored, 10, "a", &[]).fired);
    }

    #[test]
    fn names_index_and_reset() {
        let mut m = matcher("(a and b) or starting c or 5m after d");
        // `d` arms the `after` operand's timer: it is indexed too.
        assert_eq!(m.event_names(), ["a", "b", "d", "starting"]);
        offer(&mut m, 1, "a", &[]);
        assert_eq!(m.reset(), [1]);
        assert!(m.held().is_empty());
    }

    /// A clock operand's leaf is matched by its own timer's firing, never by an event, and
    /// combines with events as any leaf does.
    #[test]
    fn timers_match_only_their_own_firing() {
        let mut m = matcher("every day at 03:00 and (net-up or every 10m)");
        let none = offer(&mut m, 1, "timer", &[]);
        assert_eq!((none.taken, none.fired), (0, false));
        // The second operand (`every 10m`) fires: its leaf takes it; nothing is true yet.
        let second = m.fire(1, 2);
        assert_eq!((second.taken, second.fired), (1, false));
        // Firing again while matched is dropped.
        assert_eq!(m.fire(1, 3).taken, 0);
        let first = m.fire(0, 4);
        assert_eq!((first.taken, first.fired), (1, true));
        assert_eq!(m.take_fired(), vec![4, 2]);
        // An index no leaf has takes nothing.
        assert_eq!(m.fire(7, 5).taken, 0);
    }

    /// Each event an `after` operand names arms a timer (and is not held); the leaf is
    /// matched by the timer's firing.
    #[test]
    fn after_operands_arm_timers_on_their_events() {
        let mut m = matcher("10s after started db and net-up");
        assert_eq!(m.event_names(), vec!["net-up", "started"]);
        let db = offer(&mut m, 1, "started", &["db"]);
        assert_eq!((db.taken, db.fired, db.armed.clone()), (0, false, vec![0]));
        assert_eq!(offer(&mut m, 2, "started", &["web"]).armed, Vec::<u16>::new());
        assert_eq!(offer(&mut m, 3, "net-up", &[]).taken, 1);
        let fired = m.fire(0, 4);
        assert_eq!((fired.taken, fired.fired), (1, true));
        assert_eq!(m.take_fired(), vec![4, 3]);
    }
}
