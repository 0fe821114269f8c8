//! Cron expressions (`every cron "*/5 * * * *" [ZONE]`).
//!
//! This module owns parsing the standard five-field expression
//! `MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK` into a [`CronSpec`], and
//! [`CronSchedule`], a spec paired with the zone whose wall clock it is read
//! on. Finding firings is left to the wall-clock engine in `calendar.rs`, so
//! cron and calendar schedules share one walk and one set of DST rules (see
//! the `calendar` module docs). It does no IO besides reading the time zone
//! database through jiff (done by the caller when resolving the zone).
//!
//! # Syntax
//!
//! Fields are separated by spaces or tabs. Each field is a comma-separated
//! list of items; an item is `*`, a number `N`, a range `A-B`, or one of
//! these followed by a step: `*/S`, `A-B/S`, and `A/S` (meaning `A` up to the
//! field's maximum). Months may be written `jan`..`dec` and days of the week
//! `sun`..`sat`, in any case. Day of the week 0 and 7 are both Sunday.
//! Ranges must not run backwards, and steps must be at least 1.
//!
//! The nicknames `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
//! `@yearly` and `@annually` stand for the usual expressions.
//!
//! # Day matching (Vixie cron)
//!
//! When both the day-of-month and the day-of-week fields are restricted, a
//! day matches if EITHER matches (`0 0 13 * fri` fires on every 13th and on
//! every Friday). Otherwise both must match. As in Vixie cron, a field counts
//! as unrestricted when it starts with `*`, so `*/2` is unrestricted for this
//! rule: `0 0 */2 * mon` fires on odd-numbered days that are Mondays.
//!
//! Seconds are always zero: cron has minute resolution.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::calendar::{DayRule, WallClock, days_in_month};

/// Why a cron expression did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    /// What is wrong, e.g. `minute 61 out of range 0-59`.
    pub message: String,
    /// Byte offset into the expression of the bad part: the offending list
    /// item of the bad field (the whole field when it has one item), or the
    /// whole expression for a wrong field count.
    pub offset: usize,
    /// Length in bytes of the bad part.
    pub len: usize,
}

impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronError {}

/// A parsed cron expression: the set of minutes, hours, days of the month,
/// months and days of the week it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSpec {
    /// Bit `n` set: minute `n` (0-59).
    minutes: u64,
    /// Bit `n` set: hour `n` (0-23).
    hours: u32,
    /// Bit `n` set: day of the month `n` (1-31).
    days_of_month: u32,
    /// Bit `n` set: month `n` (1-12).
    months: u16,
    /// Bit `n` set: day of the week `n`, 0 = Sunday … 6 = Saturday.
    days_of_week: u8,
    /// The day-of-month field starts with `*`.
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
}

/// The five fields, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const FIELDS: [Field; 5] = [
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest and largest value accepted (day of the week allows 7).
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// The range `*` stands for (day of the week: 0-6, Sunday once).
    fn star(self) -> (u32, u32) {
        match self {
            Field::DayOfWeek => (0, 6),
            other => other.bounds(),
        }
    }
}

/// Nicknames and what they stand for.
const NICKNAMES: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl CronSpec {
    /// Parses a five-field cron expression or a nickname.
    pub fn parse(s: &str) -> Result<CronSpec, CronError> {
        let words = split_words(s);
        if let Some(&(start, first)) = words.first()
            && first.starts_with('@')
        {
            return parse_nickname(s, &words, start, first);
        }
        if words.len() != 5 {
            let (offset, len) = match words.get(5) {
                Some(&(start, _)) => (start, s.trim_end().len() - start),
                None => (0, s.len()),
            };
            return Err(CronError {
                message: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    words.len()
                ),
                offset,
                len,
            });
        }
        let mut masks = [0u64; 5];
        for (i, &(start, text)) in words.iter().enumerate() {
            masks[i] = parse_field(FIELDS[i], text, start)?;
        }
        // Each mask only has bits within its field's bounds, so the casts
        // keep every bit.
        let dow = masks[4];
        let days_of_week = ((dow | dow >> 7) & 0x7F) as u8;
        Ok(CronSpec {
            minutes: masks[0],
            hours: masks[1] as u32,
            days_of_month: masks[2] as u32,
            months: masks[3] as u16,
            days_of_week,
            dom_star: words[2].1.starts_with('*'),
            dow_star: words[4].1.starts_with('*'),
        })
    }

    /// Whether some date and time matches: false for expressions such as
    /// `0 0 31 2 *` (February 31st) or `0 0 30 feb *`. February counts as
    /// having 29 days (leap years).
    pub fn can_fire(&self) -> bool {
        if self.either() {
            // Every month has every day of the week.
            return true;
        }
        (1..=12i8).any(|month| {
            self.months & (1 << month) != 0
                && (1..=days_in_month(2000, month)).any(|day| self.days_of_month & (1 << day) != 0)
        })
    }

    /// Whether the spec matches this civil datetime (seconds and below are
    /// ignored).
    pub fn matches(&self, dt: jiff::civil::DateTime) -> bool {
        let bit = |mask: u64, n: i8| n >= 0 && mask & (1 << n) != 0;
        let dom = bit(u64::from(self.days_of_month), dt.day());
        let dow = bit(u64::from(self.days_of_week), dt.weekday().to_sunday_zero_offset());
        let day = if self.either() { dom || dow } else { dom && dow };
        day && bit(self.minutes, dt.minute())
            && bit(u64::from(self.hours), dt.hour())
            && bit(u64::from(self.months), dt.month())
    }

    /// Vixie's rule: both day fields restricted means either may match.
    fn either(&self) -> bool {
        !self.dom_star && !self.dow_star
    }

    /// Compiles the spec for the wall-clock engine.
    pub(super) fn wall_clock(&self) -> WallClock {
        // Cron counts weekdays from Sunday; the engine from Monday.
        let sunday = self.days_of_week & 1;
        let weekdays = (self.days_of_week >> 1) | (sunday << 6);
        let days = DayRule {
            months: self.months,
            days_of_month: self.days_of_month,
            weekdays,
            either: self.either(),
        };
        let times = (0..24u32)
            .filter(|h| self.hours & (1 << h) != 0)
            .flat_map(|h| {
                (0..60u32)
                    .filter(|m| self.minutes & (1 << m) != 0)
                    .map(move |m| h * 3600 + m * 60)
            })
            .collect();
        WallClock::new(days, times)
    }
}

/// A cron spec read on the wall clock of a zone.
#[derive(Clone, Debug, PartialEq)]
pub struct CronSchedule {
    spec: CronSpec,
    zone: TimeZone,
    clock: WallClock,
}

impl CronSchedule {
    /// Pairs a spec with an already-resolved zone. Fails for a spec that can
    /// never fire (see [`CronSpec::can_fire`]).
    pub fn new(spec: CronSpec, zone: TimeZone) -> Result<CronSchedule, String> {
        if !spec.can_fire() {
            return Err(
                "cron expression never fires: no month it names has the days of the month it names".to_string(),
            );
        }
        let clock = spec.wall_clock();
        Ok(CronSchedule { spec, zone, clock })
    }

    pub fn spec(&self) -> &CronSpec {
        &self.spec
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The first firing strictly after `after`, or `None` if there is none
    /// within the engine's search window (about eight years).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.clock.next_after(&self.zone, after)
    }
}

/// Splits on ASCII whitespace, keeping each word's byte offset.
fn split_words(s: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_ascii_whitespace(), start) {
            (true, Some(st)) => {
                words.push((st, &s[st..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        words.push((st, &s[st..]));
    }
    words
}

fn parse_nickname(s: &str, words: &[(usize, &str)], start: usize, first: &str) -> Result<CronSpec, CronError> {
    if let Some(&(extra, _)) = words.get(1) {
        return Err(CronError {
            message: format!("unexpected text after '{first}'"),
            offset: extra,
            len: s.trim_end().len() - extra,
        });
    }
    let lower = first.to_ascii_lowercase();
    if let Some((_, expansion)) = NICKNAMES.iter().find(|(name, _)| *name == lower) {
        // The expansions are valid; errors cannot happen.
        return CronSpec::parse(expansion).map_err(|e| CronError {
            offset: start,
            len: first.len(),
            ..e
        });
    }
    let message = if lower == "@reboot" {
        "'@reboot' is not a time schedule".to_string()
    } else {
        format!(
            "unknown cron nickname '{first}' (expected @hourly, @daily, @midnight, @weekly, \
             @monthly, @yearly or @annually)"
        )
    };
    Err(CronError {
        message,
        offset: start,
        len: first.len(),
    })
}

/// Parses one field into a bit mask of the values it matches.
fn parse_field(field: Field, text: &str, start: usize) -> Result<u64, CronError> {
    let mut mask = 0u64;
    let mut offset = start;
    for item in text.split(',') {
        mask |= parse_item(field, item, offset)?;
        offset += item.len() + 1;
    }
    Ok(mask)
}

/// Parses one list item: `*`, `N`, `A-B`, each optionally `/STEP`.
fn parse_item(field: Field, item: &str, offset: usize) -> Result<u64, CronError> {
    let err = |message: String| CronError {
        message,
        offset,
        len: item.len(),
    };
    if item.is_empty() {
        return Err(err(format!("empty item in {} field", field.name())));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let (low, high) = if range == "*" {
        field.star()
    } else if let Some((a, b)) = range.split_once('-') {
        let low = parse_value(field, a).map_err(err)?;
        let high = parse_value(field, b).map_err(err)?;
        if low > high {
            return Err(err(format!(
                "{} range {range} runs backwards (write the smaller value first)",
                field.name()
            )));
        }
        (low, high)
    } else {
        let value = parse_value(field, range).map_err(err)?;
        match step {
            // `A/S` means from A to the field's maximum.
            Some(_) => (value, field.star().1.max(value)),
            None => (value, value),
        }
    };
    let step = match step {
        None => 1,
        Some(text) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("step '{text}' is not a number")));
            }
            let step = text.parse::<u32>().unwrap_or(u32::MAX);
            if step == 0 {
                return Err(err("step must be at least 1".to_string()));
            }
            step
        }
    };
    let mut mask = 0u64;
    let mut v = low;
    while v <= high {
        mask |= 1 << v;
        v = v.saturating_add(step);
    }
    Ok(mask)
}

/// Parses a number or (for months and days of the week) a name.
fn parse_value(field: Field, text: &str) -> Result<u32, String> {
    let (min, max) = field.bounds();
    if text.is_empty() {
        return Err(format!("missing {} value", field.name()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{} {text} out of range {min}-{max}", field.name())),
        };
    }
    let lower = text.to_ascii_lowercase();
    match field {
        Field::Month => MONTH_NAMES
            .iter()
            .position(|&n| n == lower)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| format!("unknown month name '{text}'")),
        Field::DayOfWeek => WEEKDAY_NAMES
            .iter()
            .position(|&n| n == lower)
            .map(|i| i as u32)
            .ok_or_else(|| format!("unknown day-of-week name '{text}'")),
        _ => Err(format!("{} '{text}' is not a number", field.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> CronSpec {
        CronSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn err(s: &str) -> (String, usize, usize) {
        let e = CronSpec::parse(s).unwrap_err();
        (e.message, e.offset, e.len)
    }

    fn bits(mask: u64) -> Vec<u32> {
        (0..64).filter(|b| mask & (1 << b) != 0).collect()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn firings(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let tz = if zone == "UTC" {
            TimeZone::UTC
        } else {
            TimeZone::get(zone).unwrap()
        };
        let s = CronSchedule::new(spec(expr), tz).unwrap();
        let mut out = Vec::new();
        let mut at = ts(from);
        for _ in 0..n {
            let Some(next) = s.next_after(at) else { break };
            assert!(next > at);
            out.push(next.to_string());
            at = next;
        }
        out
    }

    #[test]
    fn parses_stars_numbers_ranges_steps_and_lists() {
        let s = spec("*/15 0-23/6 1,15,31 */3 1-5");
        assert_eq!(bits(s.minutes), [0, 15, 30, 45]);
        assert_eq!(bits(s.hours.into()), [0, 6, 12, 18]);
        assert_eq!(bits(s.days_of_month.into()), [1, 15, 31]);
        assert_eq!(bits(s.months.into()), [1, 4, 7, 10]);
        assert_eq!(bits(s.days_of_week.into()), [1, 2, 3, 4, 5]);
        assert!(!s.dom_star);
        assert!(!s.dow_star);

        let s = spec("5/20 * * * *");
        assert_eq!(bits(s.minutes), [5, 25, 45]);
        let s = spec("10-20/4,59 3 * * *");
        assert_eq!(bits(s.minutes), [10, 14, 18, 59]);
        let s = spec("* * * * *");
        assert_eq!(bits(s.minutes).len(), 60);
        assert_eq!(bits(s.hours.into()).len(), 24);
        assert_eq!(bits(s.days_of_month.into()), (1..=31).collect::<Vec<_>>());
        assert_eq!(bits(s.months.into()), (1..=12).collect::<Vec<_>>());
        assert_eq!(bits(s.days_of_week.into()), (0..=6).collect::<Vec<_>>());
        assert!(s.dom_star && s.dow_star);
        // A step larger than the range leaves just the start.
        assert_eq!(bits(spec("7/100 * * * *").minutes), [7]);
        // Tabs and extra spaces separate fields too.
        assert_eq!(spec("  0\t12  * *   * "), spec("0 12 * * *"));
    }

    #[test]
    fn parses_names_case_insensitively() {
        let s = spec("0 0 * JAN,mar-May Mon-FRI");
        assert_eq!(bits(s.months.into()), [1, 3, 4, 5]);
        assert_eq!(bits(s.days_of_week.into()), [1, 2, 3, 4, 5]);
        assert_eq!(bits(spec("0 0 * * sun,sat").days_of_week.into()), [0, 6]);
        assert_eq!(bits(spec("0 0 * dec *").months.into()), [12]);
    }

    #[test]
    fn sunday_is_0_and_7() {
        assert_eq!(spec("0 0 * * 7"), spec("0 0 * * 0"));
        assert_eq!(bits(spec("0 0 * * 5-7").days_of_week.into()), [0, 5, 6]);
        assert_eq!(
            bits(spec("0 0 * * 0-7").days_of_week.into()),
            (0..=6).collect::<Vec<_>>()
        );
        assert_eq!(bits(spec("0 0 * * */2").days_of_week.into()), [0, 2, 4, 6]);
    }

    #[test]
    fn nicknames() {
        assert_eq!(spec("@hourly"), spec("0 * * * *"));
        assert_eq!(spec("@daily"), spec("0 0 * * *"));
        assert_eq!(spec("@midnight"), spec("0 0 * * *"));
        assert_eq!(spec("@weekly"), spec("0 0 * * 0"));
        assert_eq!(spec("@monthly"), spec("0 0 1 * *"));
        assert_eq!(spec("@yearly"), spec("0 0 1 1 *"));
        assert_eq!(spec("@annually"), spec("0 0 1 1 *"));
        assert_eq!(spec(" @DAILY "), spec("0 0 * * *"));
    }

    #[test]
    fn field_count_errors() {
        let msg = |n: usize| format!("expected 5 fields (minute hour day-of-month month day-of-week), found {n}");
        assert_eq!(err("0 0 * *"), (msg(4), 0, 7));
        assert_eq!(err(""), (msg(0), 0, 0));
        assert_eq!(err("0 0 * * * extra more"), (msg(7), 10, 10));
    }

    #[test]
    fn value_errors_point_at_the_bad_item() {
        assert_eq!(err("61 * * * *"), ("minute 61 out of range 0-59".into(), 0, 2));
        assert_eq!(err("0 24 * * *"), ("hour 24 out of range 0-23".into(), 2, 2));
        assert_eq!(err("0 0 0 * *"), ("day-of-month 0 out of range 1-31".into(), 4, 1));
        assert_eq!(err("0 0 32 * *"), ("day-of-month 32 out of range 1-31".into(), 4, 2));
        assert_eq!(err("0 0 * 13 *"), ("month 13 out of range 1-12".into(), 6, 2));
        assert_eq!(err("0 0 * * 8"), ("day-of-week 8 out of range 0-7".into(), 8, 1));
        assert_eq!(err("0 0 * foo *"), ("unknown month name 'foo'".into(), 6, 3));
        assert_eq!(
            err("0 0 * * funday"),
            ("unknown day-of-week name 'funday'".into(), 8, 6)
        );
        assert_eq!(err("0 x * * *"), ("hour 'x' is not a number".into(), 2, 1));
        // Names only belong to their own fields.
        assert_eq!(err("0 0 * mon *"), ("unknown month name 'mon'".into(), 6, 3));
        assert_eq!(err("0 0 * * jan"), ("unknown day-of-week name 'jan'".into(), 8, 3));
        // Within a list, the offending item is pointed at.
        assert_eq!(err("1,2,99 * * * *"), ("minute 99 out of range 0-59".into(), 4, 2));
        assert_eq!(
            err("0 0 1,15-99999999999999999999 * *"),
            ("day-of-month 99999999999999999999 out of range 1-31".into(), 6, 23)
        );
    }

    #[test]
    fn step_and_range_errors() {
        assert_eq!(err("*/0 * * * *"), ("step must be at least 1".into(), 0, 3));
        assert_eq!(err("0 1-5/0 * * *"), ("step must be at least 1".into(), 2, 5));
        assert_eq!(err("*/x * * * *"), ("step 'x' is not a number".into(), 0, 3));
        assert_eq!(err("*/ * * * *"), ("step '' is not a number".into(), 0, 2));
        assert_eq!(
            err("0 0 * * 5-1"),
            (
                "day-of-week range 5-1 runs backwards (write the smaller value first)".into(),
                8,
                3
            )
        );
        assert_eq!(err("1,,2 * * * *"), ("empty item in minute field".into(), 2, 0));
        assert_eq!(err("5- * * * *"), ("missing minute value".into(), 0, 2));
        assert_eq!(err("0 0 * * -"), ("missing day-of-week value".into(), 8, 1));
    }

    #[test]
    fn nickname_errors() {
        assert_eq!(
            err("@often"),
            (
                "unknown cron nickname '@often' (expected @hourly, @daily, @midnight, @weekly, \
                 @monthly, @yearly or @annually)"
                    .into(),
                0,
                6
            )
        );
        assert_eq!(err(" @reboot"), ("'@reboot' is not a time schedule".into(), 1, 7));
        assert_eq!(err("@daily 0"), ("unexpected text after '@daily'".into(), 7, 1));
    }

    #[test]
    fn offsets_count_bytes() {
        // A multi-byte character before the bad field shifts the offset by
        // its byte length.
        assert_eq!(err("é 0 * * *"), ("minute 'é' is not a number".into(), 0, 2));
    }

    #[test]
    fn can_fire() {
        assert!(!spec("0 0 31 2 *").can_fire());
        assert!(!spec("0 0 30,31 feb *").can_fire());
        assert!(!spec("0 0 31 4,6,9,11 *").can_fire());
        assert!(spec("0 0 29 2 *").can_fire());
        assert!(spec("0 0 31 2,3 *").can_fire());
        // Both day fields restricted: Fridays in February always exist.
        assert!(spec("0 0 31 2 fri").can_fire());
        // `*/2` counts as unrestricted, so the rule is AND and day 31 is
        // still impossible in February.
        assert!(!spec("0 0 31 2 */2").can_fire());
        assert!(spec("* * * * *").can_fire());
        let tz = TimeZone::UTC;
        assert!(CronSchedule::new(spec("0 0 31 2 *"), tz).is_err());
    }

    #[test]
    fn matches() {
        let dt = |s: &str| s.parse::<jiff::civil::DateTime>().unwrap();
        // 2024-09-13 is a Friday.
        let s = spec("30 9 13 * fri");
        assert!(s.matches(dt("2024-09-13T09:30")));
        assert!(s.matches(dt("2024-09-20T09:30:59")));
        assert!(s.matches(dt("2024-10-13T09:30")));
        assert!(!s.matches(dt("2024-10-14T09:30")));
        assert!(!s.matches(dt("2024-09-13T09:31")));
        let s = spec("30 9 13 * *");
        assert!(!s.matches(dt("2024-09-20T09:30")));
    }

    #[test]
    fn every_five_minutes() {
        assert_eq!(
            firings("*/5 * * * *", "UTC", "2024-05-01T10:03:00Z", 3),
            ["2024-05-01T10:05:00Z", "2024-05-01T10:10:00Z", "2024-05-01T10:15:00Z"]
        );
        assert_eq!(
            firings("*/5 * * * *", "UTC", "2024-05-01T23:57:00Z", 2),
            ["2024-05-02T00:00:00Z", "2024-05-02T00:05:00Z"]
        );
    }

    #[test]
    fn hours_and_minutes_lists() {
        assert_eq!(
            firings("15,45 8-9 * * *", "UTC", "2024-05-01T09:00:00Z", 4),
            [
                "2024-05-01T09:15:00Z",
                "2024-05-01T09:45:00Z",
                "2024-05-02T08:15:00Z",
                "2024-05-02T08:45:00Z"
            ]
        );
    }

    #[test]
    fn dom_or_dow_when_both_restricted() {
        // Every 13th and every Friday. 2024-09-13 is a Friday.
        assert_eq!(
            firings("0 0 13 * fri", "UTC", "2024-09-01T00:00:00Z", 6),
            [
                "2024-09-06T00:00:00Z", // Friday
                "2024-09-13T00:00:00Z", // Friday the 13th, once
                "2024-09-20T00:00:00Z",
                "2024-09-27T00:00:00Z",
                "2024-10-04T00:00:00Z",
                "2024-10-11T00:00:00Z",
            ]
        );
        assert_eq!(
            firings("0 0 13 * fri", "UTC", "2024-10-11T00:00:00Z", 2),
            ["2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z"] // Sunday the 13th
        );
    }

    #[test]
    fn dom_and_dow_when_one_is_star() {
        // Only the day of the week restricts.
        assert_eq!(
            firings("0 12 * * mon", "UTC", "2024-09-01T00:00:00Z", 2),
            ["2024-09-02T12:00:00Z", "2024-09-09T12:00:00Z"]
        );
        // `*/2` counts as a star (Vixie): odd days that are Mondays.
        assert_eq!(
            firings("0 0 */2 * mon", "UTC", "2024-09-01T00:00:00Z", 3),
            ["2024-09-09T00:00:00Z", "2024-09-23T00:00:00Z", "2024-10-07T00:00:00Z"]
        );
    }

    #[test]
    fn feb_29_finds_the_next_leap_year() {
        assert_eq!(
            firings("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
        // 2100 is not a leap year: eight years to 2104.
        assert_eq!(
            firings("0 0 29 2 *", "UTC", "2096-02-29T00:00:00Z", 1),
            ["2104-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn monthly_and_yearly() {
        assert_eq!(
            firings("@monthly", "UTC", "2024-01-15T00:00:00Z", 2),
            ["2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"]
        );
        assert_eq!(
            firings("@yearly", "UTC", "2024-01-01T00:00:00Z", 2),
            ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]
        );
        assert_eq!(
            firings("0 0 31 * *", "UTC", "2024-01-31T00:00:00Z", 2),
            ["2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z"]
        );
    }

    #[test]
    fn weekly_is_sunday() {
        // 2024-09-01 is a Sunday.
        assert_eq!(
            firings("@weekly", "UTC", "2024-09-01T00:00:00Z", 2),
            ["2024-09-08T00:00:00Z", "2024-09-15T00:00:00Z"]
        );
    }

    #[test]
    fn new_york_dst() {
        // Spring forward: 02:30 fires once at 03:30 EDT.
        assert_eq!(
            firings("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", 2),
            ["2024-03-10T07:30:00Z", "2024-03-11T06:30:00Z"]
        );
        // Fall back: 01:30 fires once, at the EDT occurrence.
        assert_eq!(
            firings("30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z", 2),
            ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"]
        );
        // Every 30 minutes across the fall-back: the repeated hour is
        // skipped on its second pass.
        assert_eq!(
            firings("*/30 * * * *", "America/New_York", "2024-11-03T05:00:00Z", 3),
            ["2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z", "2024-11-03T07:30:00Z"]
        );
    }

    #[test]
    fn paris() {
        assert_eq!(
            firings("0 9 * * 1-5", "Europe/Paris", "2024-03-29T12:00:00Z", 2),
            ["2024-04-01T07:00:00Z", "2024-04-02T07:00:00Z"] // CEST since 03-31
        );
    }

    /// Every firing found the slow way: each civil minute of four days
    /// starting the day before `center`'s wall-clock date, converted with
    /// "compatible" disambiguation, sorted and deduplicated.
    fn brute_force(spec: &CronSpec, tz: &TimeZone, center: Timestamp) -> Vec<Timestamp> {
        let mut dt = tz.to_datetime(center).start_of_day().yesterday().unwrap();
        let mut out = Vec::new();
        for _ in 0..4 * 24 * 60 {
            if spec.matches(dt) {
                out.push(tz.to_timestamp(dt).unwrap());
            }
            dt = dt.checked_add(jiff::Span::new().minutes(1)).unwrap();
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn agrees_with_brute_force_around_dst_changes() {
        let exprs = [
            "*/7 * * * *",
            "30 * * * *",
            "0,30 1-3 * * *",
            "15 2 * * *",
            "59 1 * * *",
            "0 3 * * *",
            "45 0,1,2,3 * * *",
        ];
        // Around each transition: New York, Paris, Lord Howe (30-minute
        // DST) and Apia (skipped 2011-12-30 entirely).
        let cases = [
            ("America/New_York", "2024-03-10T06:00:00Z"),
            ("America/New_York", "2024-11-03T04:30:00Z"),
            ("Europe/Paris", "2024-03-31T00:00:00Z"),
            ("Europe/Paris", "2024-10-27T00:00:00Z"),
            ("Australia/Lord_Howe", "2024-04-06T14:00:00Z"),
            ("Australia/Lord_Howe", "2024-10-05T15:00:00Z"),
            ("Pacific/Apia", "2011-12-29T08:00:00Z"),
        ];
        for expr in exprs {
            let spec = spec(expr);
            for (zone, center) in cases {
                let tz = TimeZone::get(zone).unwrap();
                let s = CronSchedule::new(spec.clone(), tz.clone()).unwrap();
                let center = ts(center);
                let all = brute_force(&spec, &tz, center);
                // Every 7 minutes over 5 hours on either side.
                for k in -43..=43i64 {
                    let after = center + jiff::SignedDuration::from_secs(k * 7 * 60);
                    let expected = all.iter().copied().find(|&t| t > after);
                    assert!(expected.is_some());
                    assert_eq!(s.next_after(after), expected, "{expr} in {zone} after {after}");
                }
            }
        }
    }
}
