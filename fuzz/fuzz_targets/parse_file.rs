//! Feeds arbitrary text to the three syntax entry points and checks that they never panic
//! and that every error span lies inside the text (`lo <= hi <= text.len()`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use uprise::syntax::{ParseError, Span};

fn check_span(span: Span, len: usize, what: &str, text: &str) {
    let (lo, hi) = (span.lo as usize, span.hi as usize);
    assert!(
        lo <= hi && hi <= len,
        "{what}: error span {lo}..{hi} out of bounds for text of {len} bytes: {text:?}"
    );
}

fn check_errors(errors: &[ParseError], len: usize, what: &str, text: &str) {
    for error in errors {
        check_span(error.span, len, what, text);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let len = text.len();

    let (_file, errors) = uprise::syntax::parse_file(&text);
    check_errors(&errors, len, "parse_file", &text);

    let (_stanzas, errors) = uprise::syntax::parse_daemon_file(&text);
    check_errors(&errors, len, "parse_daemon_file", &text);

    if let Err(error) = uprise::syntax::parse_temporal(&text) {
        check_span(error.span, len, "parse_temporal", &text);
    }
});
