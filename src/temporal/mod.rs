//! When time-based job triggers fire.
//!
//! This module turns the parsed time operands of event expressions
//! ([`Temporal`]) into [`Schedule`]s and computes their firing instants. It is
//! pure: it never reads the clock (callers pass "now") and does no IO besides
//! reading the time zone database through jiff when a zone is resolved.
//!
//! * `mod.rs` (this file): [`Schedule`], [`schedule`] and [`resolve_zone`].
//! * `calendar.rs`: calendar schedules, their validation, and the wall-clock
//!   engine with the DST rules, shared with cron.
//! * `cron.rs`: cron expression parsing.
//!
//! # Semantics
//!
//! * **Interval** (`every 10m`): elapsed time, not wall-clock time.
//!   `next_after(t)` is simply `t + interval`; the daemon chooses the anchor.
//!   A zero interval is an error.
//! * **Calendar**, read on the wall clock of its zone (the calendar's own
//!   zone if given, else the default zone):
//!   * `every minute`: second 0 of every minute;
//!   * `every hour [at :MM[:SS]…]`: each given minute (default `:00`) of every
//!     hour;
//!   * `every day [at HH:MM[:SS]…]`: each given time (default 00:00), daily;
//!   * `every week`: the same, on Mondays;
//!   * weekday lists: the same, on those days of the week;
//!   * `every month [on D…]`: the same, on those days of the month (default
//!     the 1st). A day a month lacks (31 in April, 29 in a common February)
//!     is skipped in that month.
//! * **Cron**: the usual five-field cron rules (see `cron.rs`), read on the
//!   wall clock of its zone like a calendar.
//! * **After** (`15m after startup`) is relative to an event, not a clock
//!   schedule: [`schedule`] returns `Ok(None)` for it.
//!
//! Calendar and cron schedules walk civil dates a day at a time and look at
//! most about eight years ahead (`None` beyond that), so finding the next
//! February 29th is fast.
//!
//! # Daylight saving time
//!
//! Wall-clock times are turned into instants with jiff's "compatible"
//! disambiguation:
//!
//! * a time skipped when clocks spring forward fires once, shifted by the
//!   gap (a daily 02:30 in America/New_York fires at 03:30 EDT that day);
//! * a time repeated when clocks fall back fires once, at its first
//!   (earlier, still-DST) occurrence. So `every hour at :30` in New York on
//!   the fall-back day fires at 00:30 EDT, 01:30 EDT, then 02:30 EST: two
//!   hours of elapsed time pass between the last two, and the second 01:30
//!   (EST) does not fire. Likewise `every minute` stays silent during the
//!   repeated hour's second pass.
//!
//! Instants that coincide (a shifted 02:30 and a real 03:30) fire once, and
//! `next_after` results are strictly increasing.

mod calendar;
mod cron;

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::syntax::ast::Temporal;

pub use calendar::{CalendarSchedule, validate_calendar};
pub use cron::{CronError, CronSchedule, CronSpec};

/// A validated clock schedule, ready to compute firing instants.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `every day at 03:00 Europe/Paris` and friends, zone resolved.
    Calendar(CalendarSchedule),
    /// `every cron "*/5 * * * *" [ZONE]`, parsed, zone resolved.
    Cron(CronSchedule),
    /// `every 10m`: elapsed time, never zero.
    Interval(Duration),
}

impl Schedule {
    /// The first firing strictly after `after`. `None` when there is none
    /// within about eight years (or the instant would be out of jiff's
    /// range).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Calendar(c) => c.next_after(after),
            Schedule::Cron(c) => c.next_after(after),
            Schedule::Interval(d) => after.checked_add(*d).ok(),
        }
    }

    /// The next `n` firings after `after`, strictly increasing. Fewer when
    /// the schedule runs out (see [`Schedule::next_after`]).
    pub fn next_n(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut at = after;
        while out.len() < n {
            let Some(next) = self.next_after(at) else {
                break;
            };
            out.push(next);
            at = next;
        }
        out
    }

    /// The zone whose wall clock the schedule is read on; `None` for
    /// intervals.
    pub fn zone(&self) -> Option<&TimeZone> {
        match self {
            Schedule::Calendar(c) => Some(c.zone()),
            Schedule::Cron(c) => Some(c.zone()),
            Schedule::Interval(_) => None,
        }
    }
}

/// Resolves a zone name: `None` gives `default`, `"UTC"` gives UTC, `"local"`
/// gives the system zone, anything else is looked up in the IANA database.
pub fn resolve_zone(name: Option<&str>, default: &TimeZone) -> Result<TimeZone, String> {
    match name {
        None => Ok(default.clone()),
        Some("UTC") => Ok(TimeZone::UTC),
        Some("local") => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone '{name}'")),
    }
}

/// Builds the schedule of a time operand, validating everything (zone, cron
/// expression, calendar values, non-zero interval). `Ok(None)` for `After`,
/// which is not a clock schedule. Cron errors are rendered as
/// `cron expression "EXPR": MESSAGE`; use [`CronSpec::parse`] directly for
/// the byte offsets.
pub fn schedule(t: &Temporal, default_zone: &TimeZone) -> Result<Option<Schedule>, String> {
    match t {
        Temporal::After { .. } => Ok(None),
        Temporal::Every { interval } => {
            if interval.millis == 0 {
                return Err("interval must be longer than zero".to_string());
            }
            Ok(Some(Schedule::Interval(Duration::from_millis(interval.millis))))
        }
        Temporal::Calendar(c) => {
            validate_calendar(c)?;
            let zone = resolve_zone(c.zone.as_deref(), default_zone)?;
            Ok(Some(Schedule::Calendar(CalendarSchedule::new(c, zone)?)))
        }
        Temporal::Cron { expr, zone } => {
            let spec = CronSpec::parse(expr).map_err(|e| format!("cron expression \"{expr}\": {}", e.message))?;
            let zone = resolve_zone(zone.as_deref(), default_zone)?;
            let cron = CronSchedule::new(spec, zone).map_err(|e| format!("cron expression \"{expr}\": {e}"))?;
            Ok(Some(Schedule::Cron(cron)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::{Calendar, Period, Seconds, TimeOfDay};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn strings(v: &[Timestamp]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn daily(times: &[(u8, u8)], zone: Option<&str>) -> Temporal {
        Temporal::Calendar(Calendar {
            period: Period::Day,
            times: times
                .iter()
                .map(|&(h, m)| TimeOfDay {
                    hour: Some(h),
                    minute: m,
                    second: 0,
                })
                .collect(),
            zone: zone.map(str::to_string),
        })
    }

    fn cron(expr: &str, zone: Option<&str>) -> Temporal {
        Temporal::Cron {
            expr: expr.to_string(),
            zone: zone.map(str::to_string),
        }
    }

    #[test]
    fn interval_adds_elapsed_time() {
        let t = Temporal::Every {
            interval: Seconds { millis: 600_000 },
        };
        let s = schedule(&t, &ny()).unwrap().unwrap();
        assert_eq!(s, Schedule::Interval(Duration::from_secs(600)));
        assert_eq!(s.zone(), None);
        // Across the fall-back: pure elapsed time.
        assert_eq!(
            strings(&s.next_n(ts("2024-11-03T05:55:00Z"), 3)),
            ["2024-11-03T06:05:00Z", "2024-11-03T06:15:00Z", "2024-11-03T06:25:00Z"]
        );
        let t = Temporal::Every {
            interval: Seconds { millis: 1500 },
        };
        let s = schedule(&t, &TimeZone::UTC).unwrap().unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:00:00Z")),
            Some(ts("2024-01-01T00:00:01.5Z"))
        );
    }

    #[test]
    fn zero_interval_is_an_error() {
        let t = Temporal::Every {
            interval: Seconds { millis: 0 },
        };
        assert_eq!(
            schedule(&t, &TimeZone::UTC),
            Err("interval must be longer than zero".into())
        );
    }

    #[test]
    fn interval_at_the_end_of_time() {
        let s = Schedule::Interval(Duration::from_secs(60));
        assert_eq!(s.next_after(Timestamp::MAX), None);
        assert!(s.next_n(Timestamp::MAX, 3).is_empty());
    }

    #[test]
    fn resolve_zone_names() {
        let default = ny();
        assert_eq!(resolve_zone(None, &default), Ok(default.clone()));
        assert_eq!(resolve_zone(Some("UTC"), &default), Ok(TimeZone::UTC));
        assert_eq!(resolve_zone(Some("local"), &default), Ok(TimeZone::system()));
        let paris = resolve_zone(Some("Europe/Paris"), &default).unwrap();
        assert_eq!(paris.iana_name(), Some("Europe/Paris"));
        assert_eq!(
            resolve_zone(Some("Mars/Olympus_Mons"), &default),
            Err("unknown time zone 'Mars/Olympus_Mons'".into())
        );
    }

    #[test]
    fn unknown_zone_is_an_error_for_calendars_and_cron() {
        assert_eq!(
            schedule(&daily(&[(3, 0)], Some("Nowhere/Land")), &TimeZone::UTC),
            Err("unknown time zone 'Nowhere/Land'".into())
        );
        assert_eq!(
            schedule(&cron("* * * * *", Some("Nowhere/Land")), &TimeZone::UTC),
            Err("unknown time zone 'Nowhere/Land'".into())
        );
    }

    #[test]
    fn calendar_zone_overrides_the_default() {
        let s = schedule(&daily(&[(3, 0)], Some("Europe/Paris")), &ny())
            .unwrap()
            .unwrap();
        assert_eq!(s.zone().and_then(|z| z.iana_name()), Some("Europe/Paris"));
        assert_eq!(
            s.next_after(ts("2024-06-01T00:00:00Z")),
            Some(ts("2024-06-01T01:00:00Z"))
        );
        // No zone: the default.
        let s = schedule(&daily(&[(3, 0)], None), &ny()).unwrap().unwrap();
        assert_eq!(s.zone(), Some(&ny()));
        assert_eq!(
            s.next_after(ts("2024-06-01T00:00:00Z")),
            Some(ts("2024-06-01T07:00:00Z"))
        );
        // Explicit UTC.
        let s = schedule(&daily(&[(3, 0)], Some("UTC")), &ny()).unwrap().unwrap();
        assert_eq!(
            s.next_after(ts("2024-06-01T00:00:00Z")),
            Some(ts("2024-06-01T03:00:00Z"))
        );
    }

    #[test]
    fn calendar_values_are_validated() {
        assert_eq!(
            schedule(&daily(&[(25, 0)], None), &TimeZone::UTC),
            Err("hour 25 out of range 0-23 in '25:00'".into())
        );
        let t = Temporal::Calendar(Calendar {
            period: Period::Month(vec![32]),
            times: vec![],
            zone: None,
        });
        assert_eq!(
            schedule(&t, &TimeZone::UTC),
            Err("day of month 32 out of range 1-31".into())
        );
    }

    #[test]
    fn cron_errors_are_reported() {
        assert_eq!(
            schedule(&cron("61 * * * *", None), &TimeZone::UTC),
            Err("cron expression \"61 * * * *\": minute 61 out of range 0-59".into())
        );
        assert_eq!(
            schedule(&cron("0 0 31 2 *", None), &TimeZone::UTC),
            Err(
                "cron expression \"0 0 31 2 *\": cron expression never fires: no month it \
                 names has the days of the month it names"
                    .into()
            )
        );
    }

    #[test]
    fn cron_in_a_zone() {
        let s = schedule(&cron("30 2 * * *", Some("America/New_York")), &TimeZone::UTC)
            .unwrap()
            .unwrap();
        assert_eq!(
            strings(&s.next_n(ts("2024-03-09T00:00:00Z"), 3)),
            ["2024-03-09T07:30:00Z", "2024-03-10T07:30:00Z", "2024-03-11T06:30:00Z"]
        );
        // The default zone applies when none is given.
        let s = schedule(&cron("0 12 * * *", None), &ny()).unwrap().unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:00:00Z")),
            Some(ts("2024-01-01T17:00:00Z"))
        );
    }

    #[test]
    fn next_n_counts_and_orders() {
        let s = schedule(&daily(&[(18, 0), (6, 0)], Some("UTC")), &TimeZone::UTC)
            .unwrap()
            .unwrap();
        let v = s.next_n(ts("2024-01-01T12:00:00Z"), 5);
        assert_eq!(
            strings(&v),
            [
                "2024-01-01T18:00:00Z",
                "2024-01-02T06:00:00Z",
                "2024-01-02T18:00:00Z",
                "2024-01-03T06:00:00Z",
                "2024-01-03T18:00:00Z"
            ]
        );
        assert!(s.next_n(ts("2024-01-01T12:00:00Z"), 0).is_empty());
        let many = s.next_n(ts("2024-01-01T12:00:00Z"), 1000);
        assert_eq!(many.len(), 1000);
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn next_n_is_strictly_increasing_through_a_dst_year() {
        // Every 7 minutes of every hour, with a time in each DST gap, over a
        // whole year in New York: never repeats, never goes backwards.
        let times = vec![
            TimeOfDay {
                hour: None,
                minute: 7,
                second: 0,
            },
            TimeOfDay {
                hour: None,
                minute: 30,
                second: 0,
            },
        ];
        let t = Temporal::Calendar(Calendar {
            period: Period::Hour,
            times,
            zone: None,
        });
        let s = schedule(&t, &ny()).unwrap().unwrap();
        let v = s.next_n(ts("2024-01-01T00:00:00Z"), 2 * 24 * 367);
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        // 2024 has 8784 hours; the spring-forward day loses 02:07 and
        // 02:30 to coincidences with 03:07 and 03:30, the fall-back day
        // fires the repeated hour once.
        let in_2024 = v.iter().filter(|t| t.to_zoned_datetime(ny()).year() == 2024).count();
        assert_eq!(in_2024, 2 * 8784 - 2);
    }

    #[test]
    fn timing() {
        let zone = ny();
        let schedules = [
            ("every day at 02:30 NY", schedule(&daily(&[(2, 30)], None), &zone)),
            (
                "every minute NY",
                schedule(
                    &Temporal::Calendar(Calendar {
                        period: Period::Minute,
                        times: vec![],
                        zone: None,
                    }),
                    &zone,
                ),
            ),
            (
                "every month on 29 NY",
                schedule(
                    &Temporal::Calendar(Calendar {
                        period: Period::Month(vec![29]),
                        times: vec![],
                        zone: None,
                    }),
                    &zone,
                ),
            ),
            ("cron */5 * * * * NY", schedule(&cron("*/5 * * * *", None), &zone)),
            ("cron 0 0 29 2 * NY", schedule(&cron("0 0 29 2 *", None), &zone)),
            (
                "cron 0 9 * * mon-fri Paris",
                schedule(&cron("0 9 * * mon-fri", Some("Europe/Paris")), &zone),
            ),
        ];
        let start = ts("2025-03-01T12:34:56Z");
        const RUNS: u32 = 2000;
        for (name, s) in &schedules {
            let s = s.clone().unwrap().unwrap();
            let began = std::time::Instant::now();
            let mut found = 0;
            for i in 0..RUNS {
                // Spread the starting points over a few years.
                let from = start + jiff::SignedDuration::from_secs(i64::from(i) * 37_003);
                if s.next_after(from).is_some() {
                    found += 1;
                }
            }
            let per = began.elapsed() / RUNS;
            println!("timing: {name}: {per:?} per next_after ({found} found)");
            assert_eq!(found, RUNS);
        }
    }
}
