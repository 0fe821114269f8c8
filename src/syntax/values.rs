//! Value grammars inside one word: durations, times of day, day lists, numbers, signals,
//! variables and rates. Each is a nom parser over the word's text, wrapped by a function that
//! demands the whole word and returns `None` when it does not fit, so callers pick the message.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{all_consuming, map_res, opt, recognize};
use nom::multi::{many1, separated_list1};
use nom::sequence::{pair, preceded};
use nom::{IResult, Parser};

use super::ast::{Seconds, TimeOfDay};

type Res<'a, T> = IResult<&'a str, T>;

fn whole<'a, T>(
    parser: impl Parser<&'a str, Output = T, Error = nom::error::Error<&'a str>>,
    input: &'a str,
) -> Option<T> {
    all_consuming(parser).parse(input).ok().map(|(_, value)| value)
}

fn unsigned(input: &str) -> Res<'_, u64> {
    map_res(digit1, str::parse::<u64>).parse(input)
}

fn signed(input: &str) -> Res<'_, i64> {
    map_res(recognize(pair(opt(one_of("+-")), digit1)), str::parse::<i64>).parse(input)
}

/// `integer`: an optional sign and decimal digits.
pub(crate) fn integer(text: &str) -> Option<i64> {
    whole(signed, text)
}

/// `number`: decimal digits with an optional fraction.
pub(crate) fn number(text: &str) -> Option<f64> {
    let parsed = whole(recognize(pair(digit1, opt(pair(char('.'), digit1)))), text)?;
    parsed.parse().ok()
}

/// `octal`: octal digits.
pub(crate) fn octal(text: &str) -> Option<u32> {
    let digits = whole(take_while1(|c: char| c.is_digit(8)), text)?;
    u32::from_str_radix(digits, 8).ok()
}

fn duration_part(input: &str) -> Res<'_, u64> {
    let (rest, (count, unit)) = pair(
        unsigned,
        alt((tag("ms"), tag("s"), tag("m"), tag("h"), tag("d"), tag("w"))),
    )
    .parse(input)?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 604_800_000,
    };
    match count.checked_mul(scale) {
        Some(millis) => Ok((rest, millis)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        ))),
    }
}

/// `duration`: one or more `INTEGER UNIT` with units ms, s, m, h, d and w (`1h30m`).
pub(crate) fn duration(text: &str) -> Option<Seconds> {
    let parts = whole(many1(duration_part), text)?;
    let millis = parts.into_iter().try_fold(0u64, u64::checked_add)?;
    Some(Seconds { millis })
}

/// `duration_or_seconds`: Upstart's plain seconds, or a duration.
pub(crate) fn duration_or_seconds(text: &str) -> Option<Seconds> {
    if let Some(secs) = integer(text) {
        return u64::try_from(secs).ok().map(Seconds::from_secs);
    }
    duration(text)
}

fn two_digits(input: &str) -> Res<'_, u8> {
    map_res(take_while1(|c: char| c.is_ascii_digit()), |digits: &str| {
        if digits.len() <= 2 {
            digits.parse::<u8>().map_err(|_| ())
        } else {
            Err(())
        }
    })
    .parse(input)
}

fn time_of_day(input: &str) -> Res<'_, TimeOfDay> {
    alt((
        (
            two_digits,
            preceded(char(':'), two_digits),
            opt(preceded(char(':'), two_digits)),
        )
            .map(|(hour, minute, second)| TimeOfDay {
                hour: Some(hour),
                minute,
                second: second.unwrap_or(0),
            }),
        (preceded(char(':'), two_digits), opt(preceded(char(':'), two_digits))).map(|(minute, second)| TimeOfDay {
            hour: None,
            minute,
            second: second.unwrap_or(0),
        }),
    ))
    .parse(input)
}

/// `time_list`: `03:00,15:30`, `:15`, `:00,:30`. Ranges are checked by the caller.
pub(crate) fn time_list(text: &str) -> Option<Vec<TimeOfDay>> {
    whole(separated_list1(char(','), time_of_day), text)
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday(input: &str) -> Res<'_, u8> {
    let (rest, name) = take_while1(|c: char| c.is_ascii_alphabetic()).parse(input)?;
    let lower = name.to_ascii_lowercase();
    match WEEKDAYS
        .iter()
        .position(|day| *day == lower || (lower.len() > 3 && day_full(day) == lower))
    {
        Some(index) => Ok((rest, index as u8)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

fn day_full(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn day_spec(input: &str) -> Res<'_, Vec<u8>> {
    alt((
        tag("weekday").map(|_| vec![0, 1, 2, 3, 4]),
        tag("weekend").map(|_| vec![5, 6]),
        (weekday, opt(preceded(char('-'), weekday))).map(|(first, last)| match last {
            None => vec![first],
            // A wrapping range such as fri-mon runs through the weekend.
            Some(last) if last >= first => (first..=last).collect(),
            Some(last) => (first..7).chain(0..=last).collect(),
        }),
    ))
    .parse(input)
}

/// `day_list`: `mon,fri`, `mon-fri`, `weekday`, `weekend`; sorted and deduplicated.
pub(crate) fn day_list(text: &str) -> Option<Vec<u8>> {
    let groups = whole(separated_list1(char(','), day_spec), text)?;
    let mut days: Vec<u8> = groups.into_iter().flatten().collect();
    days.sort_unstable();
    days.dedup();
    Some(days)
}

/// `day_of_month` list: `1,15`. Ranges are checked by the caller.
pub(crate) fn month_days(text: &str) -> Option<Vec<u8>> {
    whole(separated_list1(char(','), two_digits), text)
}

/// `env_key`: letters, digits and `_`, not starting with a digit.
pub(crate) fn is_env_key(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `variable`: `$NAME`, `${NAME}`, `${NAME:-default}` (and the other `${…}` forms).
pub(crate) fn is_variable(text: &str) -> bool {
    if let Some(inner) = text.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) {
        let name_len = inner.find([':', '-', '+']).unwrap_or(inner.len());
        return is_env_key(&inner[..name_len]);
    }
    text.strip_prefix('$').is_some_and(is_env_key)
}

/// `pool_name`, `action_name`, `job_name` segments: letters, digits, `_`, `-` and `.`.
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['-', '.'])
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

const SIGNALS: [(&str, i32); 33] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// A signal name with or without `SIG` (`TERM`, `SIGTERM`), case-sensitive as in Upstart.
pub(crate) fn signal_by_name(text: &str) -> Option<i32> {
    let name = text.strip_prefix("SIG").unwrap_or(text);
    SIGNALS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, number)| *number)
}

/// The conventional name of a signal number, without `SIG`, for messages and events.
pub fn signal_name(number: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|(name, known)| *known == number && !matches!(*name, "IOT" | "CLD"))
        .map(|(name, _)| *name)
}

/// `signal`: a name, or a non-negative number.
pub(crate) fn signal(text: &str) -> Option<i32> {
    signal_by_name(text).or_else(|| integer(text).and_then(|n| i32::try_from(n).ok()).filter(|n| *n >= 0))
}

/// A rate unit's multiplier to bytes per second.
pub(crate) fn rate_unit(text: &str) -> Option<f64> {
    Some(match text {
        "B/s" => 1.0,
        "kB/s" => 1e3,
        "MB/s" => 1e6,
        "GB/s" => 1e9,
        "KiB/s" => 1024.0,
        "MiB/s" => 1024.0 * 1024.0,
        "GiB/s" => 1024.0 * 1024.0 * 1024.0,
        "kbit/s" => 1e3 / 8.0,
        "Mbit/s" => 1e6 / 8.0,
        "Gbit/s" => 1e9 / 8.0,
        _ => return None,
    })
}

/// A gate quantity split into its number and unit: `20%` → (20, "%"), `10MB/s` → (10, "MB/s").
pub(crate) fn quantity(text: &str) -> Option<(f64, &str)> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let value = number(&text[..number_len])?;
    Some((value, &text[number_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |text| duration(text).map(|d| d.millis);
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("30s"), Some(30_000));
        assert_eq!(ms("15m"), Some(900_000));
        assert_eq!(ms("1h30m"), Some(5_400_000));
        assert_eq!(ms("2d"), Some(172_800_000));
        assert_eq!(ms("1w"), Some(604_800_000));
        for bad in [
            "",
            "15",
            "m",
            "1.5h",
            "1h 30m",
            "10x",
            "-1s",
            "99999999999999999999s",
            "3000000000000000w",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
        assert_eq!(duration_or_seconds("5").map(|d| d.millis), Some(5_000));
        assert_eq!(duration_or_seconds("-5"), None);
    }

    #[test]
    fn times() {
        let t = |hour, minute, second| TimeOfDay { hour, minute, second };
        assert_eq!(time_list("03:00"), Some(vec![t(Some(3), 0, 0)]));
        assert_eq!(
            time_list("3:00,15:30:10"),
            Some(vec![t(Some(3), 0, 0), t(Some(15), 30, 10)])
        );
        assert_eq!(time_list(":15"), Some(vec![t(None, 15, 0)]));
        for bad in ["3", "03:", "003:00", "a:b", "03:00,", ""] {
            assert_eq!(time_list(bad), None, "{bad}");
        }
    }

    #[test]
    fn days() {
        assert_eq!(day_list("mon,fri"), Some(vec![0, 4]));
        assert_eq!(day_list("mon-fri"), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(day_list("fri-mon"), Some(vec![0, 4, 5, 6]));
        assert_eq!(day_list("weekend,mon"), Some(vec![0, 5, 6]));
        assert_eq!(day_list("Monday,SUN"), Some(vec![0, 6]));
        assert_eq!(day_list("day"), None);
        assert_eq!(day_list("mon,"), None);
        assert_eq!(month_days("1,15,31"), Some(vec![1, 15, 31]));
    }

    #[test]
    fn signals_and_numbers() {
        assert_eq!(signal("TERM"), Some(15));
        assert_eq!(signal("SIGPWR"), Some(30));
        assert_eq!(signal("0"), Some(0));
        assert_eq!(signal("term"), None);
        assert_eq!(signal("-1"), None);
        assert_eq!(signal_name(6), Some("ABRT"));
        assert_eq!(octal("022"), Some(0o22));
        assert_eq!(octal("999"), None);
        assert_eq!(number("1.5"), Some(1.5));
        assert_eq!(number("1."), None);
        assert_eq!(integer("-20"), Some(-20));
    }

    #[test]
    fn variables_and_names() {
        assert!(is_variable("$GPUS"));
        assert!(is_variable("${GPUS:-1}"));
        assert!(is_variable("${GPUS}"));
        assert!(!is_variable("$1X"));
        assert!(!is_variable("GPUS"));
        assert!(is_env_key("_A1"));
        assert!(!is_env_key("1A"));
        assert!(is_name("gpu-0.a"));
        assert!(!is_name("-x"));
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("20%"), Some((20.0, "%")));
        assert_eq!(quantity("10MB/s"), Some((10.0, "MB/s")));
        assert_eq!(quantity("2.5"), Some((2.5, "")));
        assert_eq!(quantity("x"), None);
        assert_eq!(rate_unit("Mbit/s"), Some(125_000.0));
    }
}
