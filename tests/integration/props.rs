//! Property tests: no input panics the parser or the checker, and rendered temporal
//! expressions read back as the same expression.

use proptest::prelude::*;
use uprise::model::Config;
use uprise::model::job::render_temporal;
use uprise::syntax::{parse_daemon_file, parse_file, parse_temporal};

/// Fragments that steer random input into the parser's interesting corners.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("start on ".to_string()),
        Just("stop on ".to_string()),
        Just("exec ".to_string()),
        Just("script".to_string()),
        Just("end script".to_string()),
        Just("script lua\n".to_string()),
        Just("job x\n".to_string()),
        Just("end job".to_string()),
        Just("every ".to_string()),
        Just(" after ".to_string()),
        Just("gate ".to_string()),
        Just("hook started lua ".to_string()),
        Just(" and ".to_string()),
        Just(" or ".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("\\\n".to_string()),
        Just("\n".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        Just("!=".to_string()),
        Just("$".to_string()),
        Just("${A:-".to_string()),
        Just("<".to_string()),
        Just("15m".to_string()),
        Just("03:00".to_string()),
        Just("mon-fri".to_string()),
        Just("respawn limit ".to_string()),
        Just("limit nofile ".to_string()),
        Just("uses cpu ".to_string()),
        "[a-z0-9 \t:,.%/*?\\[\\]-]{0,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..60).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_input_panics_the_parser(text in soup()) {
        let (_, errors) = parse_file(&text);
        for error in &errors {
            prop_assert!(error.span.lo <= error.span.hi);
            prop_assert!(error.span.hi as usize <= text.len());
        }
        let _ = parse_daemon_file(&text);
        let _ = parse_temporal(&text);
    }

    #[test]
    fn no_input_panics_the_checker_or_the_renderer(text in soup()) {
        let config = Config::from_text("fuzz", "fuzz.conf", &text);
        for diagnostic in &config.diagnostics {
            let rendered = config.sources.render(diagnostic);
            prop_assert!(rendered.starts_with("fuzz.conf"));
        }
        // A file with an error defines no job.
        prop_assert!(config.is_valid() || config.jobs.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::from_text("fuzz", "fuzz.conf", &text);
    }

    #[test]
    fn calendars_render_back_to_the_same_expression(
        period in prop_oneof![
            Just("day".to_string()), Just("week".to_string()),
            Just("mon,fri".to_string()), Just("sat-sun".to_string()), Just("weekday".to_string()),
            (1u8..=31, 1u8..=31).prop_map(|(a, b)| format!("month on {a},{b}")),
        ],
        times in prop::collection::vec((0u8..24, 0u8..60, 0u8..60), 0..3),
        zone in prop_oneof![Just(""), Just(" UTC"), Just(" Europe/Paris")],
    ) {
        let mut text = format!("every {period}");
        if !times.is_empty() {
            let list: Vec<String> = times.iter().map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}")).collect();
            text.push_str(&format!(" at {}", list.join(",")));
        }
        text.push_str(zone);
        let parsed = parse_temporal(&text).unwrap();
        let again = parse_temporal(&render_temporal(&parsed)).unwrap();
        prop_assert_eq!(parsed, again);
    }
}
