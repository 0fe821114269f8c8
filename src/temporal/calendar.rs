//! Calendar schedules (`every day at 03:00 Europe/Paris`) and the wall-clock
//! engine shared with cron.
//!
//! This module owns:
//!
//! * [`validate_calendar`], the value checks on a parsed [`Calendar`];
//! * [`CalendarSchedule`], a validated calendar with its time zone resolved;
//! * `WallClock`, the engine that finds the next instant at which a set of
//!   civil dates and times of day occurs on a zone's wall clock. Cron
//!   schedules (see `cron.rs`) are compiled to the same engine, so both follow
//!   exactly the same DST rules.
//!
//! It does no IO besides reading the time zone database through jiff (and
//! that only happens when the zone is resolved, in `mod.rs`).
//!
//! # How the engine walks
//!
//! The engine never steps minute by minute. It converts the starting instant
//! to the zone's civil date and walks civil dates one day at a time (jumping
//! straight over months a rule excludes), checking each date against the rule
//! with plain integer arithmetic. Only on a matching date does it turn the
//! times of day into instants. The walk gives up after the end of the eighth
//! calendar year following the start (`next_after` then returns `None`),
//! which is enough to reach any February 29th.
//!
//! # Daylight saving time
//!
//! Each civil date and time is turned into an instant with jiff's
//! "compatible" disambiguation:
//!
//! * a wall-clock time that does not exist (clocks spring forward over it)
//!   fires once, shifted forward by the size of the gap: a daily 02:30 in
//!   America/New_York fires at 03:30 EDT on the spring-forward day;
//! * a wall-clock time that occurs twice (clocks fall back) fires once, at
//!   its earlier occurrence (the one still in daylight saving time). The
//!   second occurrence never fires, even when the daemon asks for the next
//!   instant from inside the repeated hour.
//!
//! Identical instants are reported once (a shifted 02:30 and a real 03:30
//! both land on 03:30 EDT), and results are strictly increasing. Because of
//! the shift, the instants of one day are not always in wall-clock order (a
//! shifted 02:30 lands after a real 03:15); the engine handles that.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::syntax::ast::{Calendar, Period, TimeOfDay};

/// How many calendar years past the starting one the walk looks at.
const SEARCH_YEARS: i32 = 8;

/// Seconds in a civil day.
const DAY_SECONDS: u32 = 24 * 60 * 60;

/// All twelve month bits (bit `m` for month `m`, 1-12).
pub(super) const ALL_MONTHS: u16 = 0b1_1111_1111_1110;
/// All thirty-one day-of-month bits (bit `d` for day `d`, 1-31).
pub(super) const ALL_DAYS: u32 = 0xFFFF_FFFE;
/// All seven weekday bits (bit 0 = Monday … bit 6 = Sunday).
pub(super) const ALL_WEEKDAYS: u8 = 0b111_1111;

/// Checks the values of a parsed calendar:
///
/// * hours 0-23, minutes 0-59, seconds 0-59;
/// * days of the month 1-31, weekdays 0-6 (0 = Monday), at least one weekday;
/// * `every minute` takes no times;
/// * `every hour` takes only `:MM[:SS]` times (minutes past the hour), and
///   every other period takes only full `HH:MM[:SS]` times.
pub fn validate_calendar(c: &Calendar) -> Result<(), String> {
    match &c.period {
        Period::Minute => {
            if let Some(t) = c.times.first() {
                return Err(format!("'every minute' takes no time of day, found '{}'", show_time(t)));
            }
        }
        Period::Hour => {
            for t in &c.times {
                if t.hour.is_some() {
                    return Err(format!(
                        "'every hour' takes minutes past the hour like ':{:02}', not '{}'",
                        t.minute,
                        show_time(t)
                    ));
                }
            }
        }
        Period::Day | Period::Week | Period::Month(_) | Period::Weekdays(_) => {
            for t in &c.times {
                if t.hour.is_none() {
                    return Err(format!(
                        "'{}' (minutes past every hour) only works with 'every hour'; \
                         give a full time like '00{}'",
                        show_time(t),
                        show_time(t)
                    ));
                }
            }
        }
    }
    for t in &c.times {
        if let Some(h) = t.hour
            && h > 23
        {
            return Err(format!("hour {h} out of range 0-23 in '{}'", show_time(t)));
        }
        if t.minute > 59 {
            return Err(format!("minute {} out of range 0-59 in '{}'", t.minute, show_time(t)));
        }
        if t.second > 59 {
            return Err(format!("second {} out of range 0-59 in '{}'", t.second, show_time(t)));
        }
    }
    match &c.period {
        Period::Month(days) => {
            for &d in days {
                if !(1..=31).contains(&d) {
                    return Err(format!("day of month {d} out of range 1-31"));
                }
            }
        }
        Period::Weekdays(days) => {
            if days.is_empty() {
                return Err("no days of the week given".to_string());
            }
            for &d in days {
                if d > 6 {
                    return Err(format!("weekday {d} out of range 0-6 (0 = Monday)"));
                }
            }
        }
        Period::Minute | Period::Hour | Period::Day | Period::Week => {}
    }
    Ok(())
}

/// Renders a time of day the way it is written: `HH:MM[:SS]` or `:MM[:SS]`.
fn show_time(t: &TimeOfDay) -> String {
    let mut s = match t.hour {
        Some(h) => format!("{h:02}:{:02}", t.minute),
        None => format!(":{:02}", t.minute),
    };
    if t.second != 0 {
        s.push_str(&format!(":{:02}", t.second));
    }
    s
}

/// A validated calendar schedule, evaluated on the wall clock of `zone`.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarSchedule {
    calendar: Calendar,
    zone: TimeZone,
    clock: WallClock,
}

impl CalendarSchedule {
    /// Validates `calendar` (see [`validate_calendar`]) and pairs it with an
    /// already-resolved zone. `calendar.zone` is not looked at here; resolve
    /// it with `resolve_zone` first.
    pub fn new(calendar: &Calendar, zone: TimeZone) -> Result<CalendarSchedule, String> {
        validate_calendar(calendar)?;
        Ok(CalendarSchedule {
            calendar: calendar.clone(),
            zone,
            clock: WallClock::from_calendar(calendar),
        })
    }

    /// The calendar as parsed.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The zone whose wall clock the calendar is read on.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The first firing strictly after `after`, or `None` if there is none
    /// within the search window (never happens for a validated calendar).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.clock.next_after(&self.zone, after)
    }
}

/// Which civil dates a wall-clock schedule fires on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DayRule {
    /// Bit `m` set: month `m` (1-12) matches.
    pub(super) months: u16,
    /// Bit `d` set: day of the month `d` (1-31) matches.
    pub(super) days_of_month: u32,
    /// Bit `w` set: weekday `w` (0 = Monday … 6 = Sunday) matches.
    pub(super) weekdays: u8,
    /// `true`: a date matches when its day of the month OR its weekday
    /// matches (cron's rule when both fields are restricted); `false`: both
    /// must match.
    pub(super) either: bool,
}

impl DayRule {
    /// Every date.
    pub(super) const EVERY_DAY: DayRule = DayRule {
        months: ALL_MONTHS,
        days_of_month: ALL_DAYS,
        weekdays: ALL_WEEKDAYS,
        either: false,
    };

    fn month_matches(&self, month: i8) -> bool {
        self.months & (1 << month) != 0
    }

    fn day_matches(&self, day: &Day) -> bool {
        let dom = self.days_of_month & (1 << day.day) != 0;
        let dow = self.weekdays & (1 << day.weekday) != 0;
        if self.either { dom || dow } else { dom && dow }
    }
}

/// A wall-clock rule: the dates of [`DayRule`] at each of a set of times of
/// day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WallClock {
    days: DayRule,
    /// Seconds since midnight, sorted, without duplicates, never empty.
    times: Vec<u32>,
}

impl WallClock {
    /// Builds a rule. `times` are seconds since midnight (below 86400); they
    /// are sorted and deduplicated here. An empty list means midnight.
    pub(super) fn new(days: DayRule, mut times: Vec<u32>) -> WallClock {
        times.retain(|&s| s < DAY_SECONDS);
        times.sort_unstable();
        times.dedup();
        if times.is_empty() {
            times.push(0);
        }
        WallClock { days, times }
    }

    /// Compiles a calendar that passed [`validate_calendar`].
    fn from_calendar(c: &Calendar) -> WallClock {
        let secs = |hour: u8, t: &TimeOfDay| u32::from(hour) * 3600 + u32::from(t.minute) * 60 + u32::from(t.second);
        let at_times = || -> Vec<u32> { c.times.iter().map(|t| secs(t.hour.unwrap_or(0), t)).collect() };
        match &c.period {
            Period::Minute => WallClock::new(DayRule::EVERY_DAY, (0..24 * 60).map(|m| m * 60).collect()),
            Period::Hour => {
                let default = [TimeOfDay {
                    hour: None,
                    minute: 0,
                    second: 0,
                }];
                let times: &[TimeOfDay] = if c.times.is_empty() { &default } else { &c.times };
                let all = (0..24u8).flat_map(|h| times.iter().map(move |t| secs(h, t))).collect();
                WallClock::new(DayRule::EVERY_DAY, all)
            }
            Period::Day => WallClock::new(DayRule::EVERY_DAY, at_times()),
            Period::Week => {
                let days = DayRule {
                    weekdays: 1,
                    ..DayRule::EVERY_DAY
                };
                WallClock::new(days, at_times())
            }
            Period::Weekdays(list) => {
                let weekdays = list.iter().filter(|&&d| d < 7).fold(0u8, |m, &d| m | 1 << d);
                WallClock::new(
                    DayRule {
                        weekdays,
                        ..DayRule::EVERY_DAY
                    },
                    at_times(),
                )
            }
            Period::Month(list) => {
                let days_of_month = if list.is_empty() {
                    1 << 1
                } else {
                    list.iter()
                        .filter(|&&d| (1..=31).contains(&d))
                        .fold(0u32, |m, &d| m | 1 << d)
                };
                WallClock::new(
                    DayRule {
                        days_of_month,
                        ..DayRule::EVERY_DAY
                    },
                    at_times(),
                )
            }
        }
    }

    /// The first instant strictly after `after` at which this rule occurs on
    /// the wall clock of `tz`, with the DST rules of the module docs.
    pub(super) fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let now = tz.to_datetime(after);
        let start = scan_start(tz, after, now);
        let last_year = i32::from(now.year()) + SEARCH_YEARS;
        let mut day = Day::new(start);
        let mut first_second = time_seconds(start);
        let mut best: Option<Timestamp> = None;
        // Once an instant shifted by a gap is found, a later wall-clock time
        // can still land earlier, but only within the size of the gap
        // (offsets stay within ±26h): look at a few more days, no further.
        let mut days_left: Option<u32> = None;
        while i32::from(day.year) <= last_year && days_left != Some(0) {
            if !self.days.month_matches(day.month) {
                day = day.first_of_next_month();
                first_second = 0;
                days_left = days_left.map(|n| n - 1);
                continue;
            }
            if self.days.day_matches(&day) {
                let from = self.times.partition_point(|&s| s < first_second);
                for &s in &self.times[from..] {
                    let Ok(dt) = day.at(s) else { return best };
                    let ambiguous = tz.to_ambiguous_timestamp(dt);
                    let gap = matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. });
                    let Ok(ts) = ambiguous.compatible() else {
                        return best;
                    };
                    if ts <= after {
                        continue;
                    }
                    best = Some(best.map_or(ts, |b| b.min(ts)));
                    if !gap {
                        // Wall-clock order and instant order agree from here
                        // on: nothing later can land before this one.
                        return best;
                    }
                    days_left.get_or_insert(3);
                }
            }
            day = day.next();
            first_second = 0;
            days_left = days_left.map(|n| n - 1);
        }
        best
    }
}

/// Where the walk starts: `now` (the wall-clock time of `after`), or earlier
/// when `after` falls just behind a spring-forward gap, since the skipped
/// wall-clock times of that gap fire after it.
fn scan_start(tz: &TimeZone, after: Timestamp, now: DateTime) -> DateTime {
    let mut start = now;
    let Ok(horizon) = after.checked_sub(jiff::SignedDuration::from_hours(60)) else {
        return start;
    };
    let probe = after.checked_add(jiff::SignedDuration::from_nanos(1)).unwrap_or(after);
    for transition in tz.preceding(probe) {
        let at = transition.timestamp();
        if at < horizon {
            break;
        }
        let Ok(just_before) = at.checked_sub(jiff::SignedDuration::from_nanos(1)) else {
            break;
        };
        let before = tz.to_offset(just_before);
        if transition.offset().seconds() > before.seconds() {
            // The gap's skipped wall-clock times start at `at` read with
            // the old offset.
            let gap_start = before.to_datetime(at);
            if gap_start < start {
                start = gap_start;
            }
        }
    }
    start
}

/// Seconds since midnight of a civil datetime (sub-seconds dropped).
fn time_seconds(dt: DateTime) -> u32 {
    // The casts cannot lose anything: hour, minute and second are small
    // non-negative numbers.
    dt.hour().unsigned_abs() as u32 * 3600 + dt.minute().unsigned_abs() as u32 * 60 + dt.second().unsigned_abs() as u32
}

/// A civil date with its weekday, stepped with plain arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Day {
    year: i16,
    month: i8,
    day: i8,
    /// 0 = Monday … 6 = Sunday.
    weekday: u8,
}

impl Day {
    fn new(dt: DateTime) -> Day {
        Day {
            year: dt.year(),
            month: dt.month(),
            day: dt.day(),
            weekday: dt.weekday().to_monday_zero_offset().unsigned_abs(),
        }
    }

    fn days_in_month(&self) -> i8 {
        days_in_month(self.year, self.month)
    }

    fn next(self) -> Day {
        let weekday = (self.weekday + 1) % 7;
        if self.day < self.days_in_month() {
            Day {
                day: self.day + 1,
                weekday,
                ..self
            }
        } else {
            self.first_of_next_month()
        }
    }

    fn first_of_next_month(self) -> Day {
        let remaining = (self.days_in_month() - self.day + 1).unsigned_abs();
        let weekday = (self.weekday + remaining % 7) % 7;
        if self.month == 12 {
            Day {
                year: self.year.saturating_add(1),
                month: 1,
                day: 1,
                weekday,
            }
        } else {
            Day {
                month: self.month + 1,
                day: 1,
                weekday,
                ..self
            }
        }
    }

    /// This date at `seconds` past midnight (below 86400).
    fn at(&self, seconds: u32) -> Result<DateTime, jiff::Error> {
        // Each part is below 60 (or 24), so the casts are exact.
        let hour = (seconds / 3600) as i8;
        let minute = (seconds / 60 % 60) as i8;
        let second = (seconds % 60) as i8;
        DateTime::new(self.year, self.month, self.day, hour, minute, second, 0)
    }
}

/// Days in `month` (1-12) of `year` in the proleptic Gregorian calendar.
pub(super) fn days_in_month(year: i16, month: i8) -> i8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_leap(year: i16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tod(hour: u8, minute: u8) -> TimeOfDay {
        TimeOfDay {
            hour: Some(hour),
            minute,
            second: 0,
        }
    }

    fn past(minute: u8) -> TimeOfDay {
        TimeOfDay {
            hour: None,
            minute,
            second: 0,
        }
    }

    fn cal(period: Period, times: Vec<TimeOfDay>) -> Calendar {
        Calendar {
            period,
            times,
            zone: None,
        }
    }

    fn sched(c: Calendar, zone: &str) -> CalendarSchedule {
        let tz = if zone == "UTC" {
            TimeZone::UTC
        } else {
            TimeZone::get(zone).unwrap()
        };
        CalendarSchedule::new(&c, tz).unwrap()
    }

    fn firings(s: &CalendarSchedule, from: &str, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = ts(from);
        for _ in 0..n {
            match s.next_after(at) {
                Some(next) => {
                    assert!(next > at);
                    out.push(next.to_string());
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn validate_accepts_good_calendars() {
        let ok = [
            cal(Period::Minute, vec![]),
            cal(Period::Hour, vec![]),
            cal(
                Period::Hour,
                vec![
                    past(15),
                    TimeOfDay {
                        hour: None,
                        minute: 59,
                        second: 59,
                    },
                ],
            ),
            cal(Period::Day, vec![tod(23, 59)]),
            cal(Period::Week, vec![tod(0, 0)]),
            cal(Period::Month(vec![1, 31]), vec![]),
            cal(Period::Weekdays(vec![0, 6]), vec![tod(12, 0)]),
        ];
        for c in &ok {
            assert_eq!(validate_calendar(c), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn validate_rejects_bad_values() {
        let err = |c: Calendar| validate_calendar(&c).unwrap_err();
        assert_eq!(
            err(cal(Period::Day, vec![tod(24, 0)])),
            "hour 24 out of range 0-23 in '24:00'"
        );
        assert_eq!(
            err(cal(Period::Day, vec![tod(3, 60)])),
            "minute 60 out of range 0-59 in '03:60'"
        );
        assert_eq!(
            err(cal(
                Period::Day,
                vec![TimeOfDay {
                    hour: Some(3),
                    minute: 0,
                    second: 60
                }]
            )),
            "second 60 out of range 0-59 in '03:00:60'"
        );
        assert_eq!(
            err(cal(Period::Hour, vec![past(60)])),
            "minute 60 out of range 0-59 in ':60'"
        );
        assert_eq!(
            err(cal(Period::Month(vec![0]), vec![])),
            "day of month 0 out of range 1-31"
        );
        assert_eq!(
            err(cal(Period::Month(vec![32]), vec![])),
            "day of month 32 out of range 1-31"
        );
        assert_eq!(
            err(cal(Period::Weekdays(vec![7]), vec![])),
            "weekday 7 out of range 0-6 (0 = Monday)"
        );
        assert_eq!(err(cal(Period::Weekdays(vec![]), vec![])), "no days of the week given");
    }

    #[test]
    fn validate_rejects_misplaced_times() {
        let err = |c: Calendar| validate_calendar(&c).unwrap_err();
        assert_eq!(
            err(cal(Period::Minute, vec![tod(1, 0)])),
            "'every minute' takes no time of day, found '01:00'"
        );
        assert_eq!(
            err(cal(Period::Hour, vec![tod(3, 15)])),
            "'every hour' takes minutes past the hour like ':15', not '03:15'"
        );
        assert_eq!(
            err(cal(Period::Day, vec![past(15)])),
            "':15' (minutes past every hour) only works with 'every hour'; give a full time like '00:15'"
        );
        assert!(validate_calendar(&cal(Period::Week, vec![past(1)])).is_err());
        assert!(validate_calendar(&cal(Period::Month(vec![]), vec![past(1)])).is_err());
        assert!(validate_calendar(&cal(Period::Weekdays(vec![1]), vec![past(1)])).is_err());
    }

    #[test]
    fn every_minute_fires_at_second_zero() {
        let s = sched(cal(Period::Minute, vec![]), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T10:00:00Z", 3),
            ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z", "2024-05-01T10:03:00Z"]
        );
        assert_eq!(firings(&s, "2024-05-01T10:00:59.999Z", 1), ["2024-05-01T10:01:00Z"]);
        assert_eq!(firings(&s, "2024-12-31T23:59:30Z", 1), ["2025-01-01T00:00:00Z"]);
    }

    #[test]
    fn every_hour_defaults_to_the_top_of_the_hour() {
        let s = sched(cal(Period::Hour, vec![]), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T10:00:00Z", 3),
            ["2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
        );
    }

    #[test]
    fn every_hour_at_15_crosses_hour_and_day_boundaries() {
        let s = sched(cal(Period::Hour, vec![past(15)]), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T10:15:00Z", 2),
            ["2024-05-01T11:15:00Z", "2024-05-01T12:15:00Z"]
        );
        assert_eq!(firings(&s, "2024-05-01T10:14:59Z", 1), ["2024-05-01T10:15:00Z"]);
        assert_eq!(
            firings(&s, "2024-05-01T23:20:00Z", 2),
            ["2024-05-02T00:15:00Z", "2024-05-02T01:15:00Z"]
        );
    }

    #[test]
    fn every_hour_with_several_minutes_and_seconds() {
        let times = vec![
            TimeOfDay {
                hour: None,
                minute: 45,
                second: 30,
            },
            past(5),
        ];
        let s = sched(cal(Period::Hour, times), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T10:50:00Z", 4),
            [
                "2024-05-01T11:05:00Z",
                "2024-05-01T11:45:30Z",
                "2024-05-01T12:05:00Z",
                "2024-05-01T12:45:30Z"
            ]
        );
    }

    #[test]
    fn every_day_defaults_to_midnight() {
        let s = sched(cal(Period::Day, vec![]), "UTC");
        assert_eq!(
            firings(&s, "2024-02-28T00:00:00Z", 3),
            ["2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"]
        );
    }

    #[test]
    fn several_times_a_day_are_sorted_and_deduplicated() {
        let times = vec![tod(18, 0), tod(6, 30), tod(12, 0), tod(6, 30)];
        let s = sched(cal(Period::Day, times), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T07:00:00Z", 5),
            [
                "2024-05-01T12:00:00Z",
                "2024-05-01T18:00:00Z",
                "2024-05-02T06:30:00Z",
                "2024-05-02T12:00:00Z",
                "2024-05-02T18:00:00Z"
            ]
        );
    }

    #[test]
    fn seconds_in_times_are_honoured() {
        let s = sched(
            cal(
                Period::Day,
                vec![TimeOfDay {
                    hour: Some(1),
                    minute: 2,
                    second: 3,
                }],
            ),
            "UTC",
        );
        assert_eq!(firings(&s, "2024-05-01T01:02:03Z", 1), ["2024-05-02T01:02:03Z"]);
        assert_eq!(firings(&s, "2024-05-01T01:02:02.5Z", 1), ["2024-05-01T01:02:03Z"]);
    }

    #[test]
    fn every_week_is_mondays() {
        // 2024-05-01 is a Wednesday.
        let s = sched(cal(Period::Week, vec![tod(9, 0)]), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T00:00:00Z", 3),
            ["2024-05-06T09:00:00Z", "2024-05-13T09:00:00Z", "2024-05-20T09:00:00Z"]
        );
        // Exactly at a firing: the next one is a week later.
        assert_eq!(firings(&s, "2024-05-06T09:00:00Z", 1), ["2024-05-13T09:00:00Z"]);
        // Earlier on a Monday: the same day.
        assert_eq!(firings(&s, "2024-05-06T08:59:59Z", 1), ["2024-05-06T09:00:00Z"]);
    }

    #[test]
    fn weekday_lists() {
        // Tuesday (1), Friday (4), Sunday (6). 2024-05-01 is a Wednesday.
        let s = sched(cal(Period::Weekdays(vec![1, 4, 6]), vec![tod(8, 0)]), "UTC");
        assert_eq!(
            firings(&s, "2024-05-01T00:00:00Z", 5),
            [
                "2024-05-03T08:00:00Z",
                "2024-05-05T08:00:00Z",
                "2024-05-07T08:00:00Z",
                "2024-05-10T08:00:00Z",
                "2024-05-12T08:00:00Z"
            ]
        );
    }

    #[test]
    fn month_defaults_to_the_first() {
        let s = sched(cal(Period::Month(vec![]), vec![]), "UTC");
        assert_eq!(
            firings(&s, "2024-11-15T00:00:00Z", 3),
            ["2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"]
        );
    }

    #[test]
    fn month_day_31_skips_short_months() {
        let s = sched(cal(Period::Month(vec![31]), vec![tod(12, 0)]), "UTC");
        assert_eq!(
            firings(&s, "2024-01-31T12:00:00Z", 6),
            [
                "2024-03-31T12:00:00Z",
                "2024-05-31T12:00:00Z",
                "2024-07-31T12:00:00Z",
                "2024-08-31T12:00:00Z",
                "2024-10-31T12:00:00Z",
                "2024-12-31T12:00:00Z"
            ]
        );
    }

    #[test]
    fn month_day_29_and_30_in_february() {
        let s = sched(cal(Period::Month(vec![29]), vec![]), "UTC");
        // Leap year: February 29th exists.
        assert_eq!(
            firings(&s, "2024-01-30T00:00:00Z", 2),
            ["2024-02-29T00:00:00Z", "2024-03-29T00:00:00Z"]
        );
        // Common year: February is skipped.
        assert_eq!(
            firings(&s, "2025-01-30T00:00:00Z", 2),
            ["2025-03-29T00:00:00Z", "2025-04-29T00:00:00Z"]
        );
        let s = sched(cal(Period::Month(vec![30, 15]), vec![]), "UTC");
        assert_eq!(
            firings(&s, "2025-01-30T00:00:00Z", 3),
            ["2025-02-15T00:00:00Z", "2025-03-15T00:00:00Z", "2025-03-30T00:00:00Z"]
        );
    }

    #[test]
    fn utc_has_no_dst() {
        let s = sched(cal(Period::Day, vec![tod(2, 30)]), "UTC");
        assert_eq!(
            firings(&s, "2024-03-09T12:00:00Z", 2),
            ["2024-03-10T02:30:00Z", "2024-03-11T02:30:00Z"]
        );
    }

    #[test]
    fn zone_offsets_are_applied() {
        let s = sched(cal(Period::Day, vec![tod(9, 0)]), "Asia/Tokyo");
        assert_eq!(firings(&s, "2024-05-01T00:00:00Z", 1), ["2024-05-02T00:00:00Z"]);
        assert_eq!(firings(&s, "2024-04-30T23:59:59Z", 1), ["2024-05-01T00:00:00Z"]);
    }

    #[test]
    fn new_york_spring_forward_daily_0230_fires_once_at_0330_edt() {
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let s = sched(cal(Period::Day, vec![tod(2, 30)]), "America/New_York");
        assert_eq!(
            firings(&s, "2024-03-09T00:00:00Z", 3),
            [
                "2024-03-09T07:30:00Z", // 02:30 EST
                "2024-03-10T07:30:00Z", // 03:30 EDT (shifted)
                "2024-03-11T06:30:00Z", // 02:30 EDT
            ]
        );
    }

    #[test]
    fn new_york_spring_forward_shifted_time_lands_after_a_later_time() {
        // 02:30 shifts to 03:30 EDT, after the real 03:15 EDT; 03:30 also
        // lands on 03:30 EDT and fires only once.
        let times = vec![tod(2, 30), tod(3, 15), tod(3, 30)];
        let s = sched(cal(Period::Day, times), "America/New_York");
        assert_eq!(
            firings(&s, "2024-03-10T06:00:00Z", 4),
            [
                "2024-03-10T07:15:00Z", // 03:15 EDT
                "2024-03-10T07:30:00Z", // 03:30 EDT, from 02:30 and 03:30
                "2024-03-11T06:30:00Z", // 02:30 EDT
                "2024-03-11T07:15:00Z",
            ]
        );
        // Asking from 03:20 EDT (after the real 03:15, wall clock past
        // 02:30) still finds the shifted 02:30.
        assert_eq!(firings(&s, "2024-03-10T07:20:00Z", 1), ["2024-03-10T07:30:00Z"]);
    }

    #[test]
    fn new_york_fall_back_daily_0130_fires_once_at_the_earlier() {
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let s = sched(cal(Period::Day, vec![tod(1, 30)]), "America/New_York");
        assert_eq!(
            firings(&s, "2024-11-02T00:00:00Z", 3),
            [
                "2024-11-02T05:30:00Z", // 01:30 EDT
                "2024-11-03T05:30:00Z", // 01:30 EDT, the first occurrence
                "2024-11-04T06:30:00Z", // 01:30 EST
            ]
        );
        // From inside the repeated hour (01:10 EST), the second 01:30 does
        // not fire.
        assert_eq!(firings(&s, "2024-11-03T06:10:00Z", 1), ["2024-11-04T06:30:00Z"]);
    }

    #[test]
    fn new_york_every_hour_at_30_across_fall_back() {
        // The repeated 01:30 fires only at its first (EDT) occurrence, so the
        // schedule pauses for two hours of elapsed time.
        let s = sched(cal(Period::Hour, vec![past(30)]), "America/New_York");
        assert_eq!(
            firings(&s, "2024-11-03T04:00:00Z", 4),
            [
                "2024-11-03T04:30:00Z", // 00:30 EDT
                "2024-11-03T05:30:00Z", // 01:30 EDT
                "2024-11-03T07:30:00Z", // 02:30 EST (01:30 EST skipped)
                "2024-11-03T08:30:00Z", // 03:30 EST
            ]
        );
    }

    #[test]
    fn new_york_every_hour_at_30_across_spring_forward() {
        // The missing 02:30 shifts onto 03:30 EDT, which fires once: elapsed
        // time between firings stays one hour.
        let s = sched(cal(Period::Hour, vec![past(30)]), "America/New_York");
        assert_eq!(
            firings(&s, "2024-03-10T05:00:00Z", 4),
            [
                "2024-03-10T05:30:00Z", // 00:30 EST
                "2024-03-10T06:30:00Z", // 01:30 EST
                "2024-03-10T07:30:00Z", // 03:30 EDT
                "2024-03-10T08:30:00Z", // 04:30 EDT
            ]
        );
    }

    #[test]
    fn new_york_every_minute_across_fall_back() {
        // Every minute of the repeated hour fires only during its first pass.
        let s = sched(cal(Period::Minute, vec![]), "America/New_York");
        assert_eq!(
            firings(&s, "2024-11-03T05:58:30Z", 3),
            [
                "2024-11-03T05:59:00Z", // 01:59 EDT
                "2024-11-03T07:00:00Z", // 02:00 EST
                "2024-11-03T07:01:00Z",
            ]
        );
    }

    #[test]
    fn paris_dst_transitions() {
        let s = sched(cal(Period::Day, vec![tod(2, 30)]), "Europe/Paris");
        // 2024-03-31: 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            firings(&s, "2024-03-30T00:00:00Z", 3),
            [
                "2024-03-30T01:30:00Z", // 02:30 CET
                "2024-03-31T01:30:00Z", // 03:30 CEST (shifted)
                "2024-04-01T00:30:00Z", // 02:30 CEST
            ]
        );
        // 2024-10-27: 03:00 CEST falls back to 02:00 CET.
        assert_eq!(
            firings(&s, "2024-10-26T00:00:00Z", 3),
            [
                "2024-10-26T00:30:00Z", // 02:30 CEST
                "2024-10-27T00:30:00Z", // 02:30 CEST, first occurrence
                "2024-10-28T01:30:00Z", // 02:30 CET
            ]
        );
    }

    #[test]
    fn paris_weekly_and_monthly() {
        let s = sched(cal(Period::Week, vec![tod(6, 0)]), "Europe/Paris");
        assert_eq!(
            firings(&s, "2024-03-20T00:00:00Z", 2),
            ["2024-03-25T05:00:00Z", "2024-04-01T04:00:00Z"]
        );
        let s = sched(cal(Period::Month(vec![1]), vec![]), "Europe/Paris");
        assert_eq!(
            firings(&s, "2024-12-31T22:59:59Z", 2),
            ["2024-12-31T23:00:00Z", "2025-01-31T23:00:00Z"]
        );
    }

    #[test]
    fn day_stepping_matches_jiff() {
        let mut day = Day::new("1999-12-25T00:00:00".parse().unwrap());
        let mut date: jiff::civil::Date = "1999-12-25".parse().unwrap();
        for _ in 0..(366 * 6) {
            assert_eq!(day, Day::new(date.to_datetime(jiff::civil::Time::midnight())));
            day = day.next();
            date = date.tomorrow().unwrap();
        }
        let mut day = Day::new("2023-01-17T00:00:00".parse().unwrap());
        for _ in 0..30 {
            day = day.first_of_next_month();
            let date = jiff::civil::date(day.year, day.month, 1);
            assert_eq!(day.weekday, date.weekday().to_monday_zero_offset().unsigned_abs());
        }
    }

    #[test]
    fn far_future_end_of_range_returns_none() {
        let s = sched(cal(Period::Day, vec![]), "UTC");
        assert_eq!(s.next_after(Timestamp::MAX), None);
        assert_eq!(s.next_after(ts("9999-12-30T00:00:00Z")), None);
        assert_eq!(
            s.next_after(ts("9999-12-29T12:00:00Z")),
            Some(ts("9999-12-30T00:00:00Z"))
        );
        let s = sched(cal(Period::Minute, vec![]), "America/New_York");
        assert_eq!(s.next_after(Timestamp::MAX), None);
        assert_eq!(s.next_after(Timestamp::MIN), Some(ts("-009999-01-02T02:00:02Z"))); // LMT -04:56:02
    }
}
