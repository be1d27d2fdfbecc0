//! Any text as an access-log line: parsing never panics, and what it accepts is a request
//! with an HTTP status (or 0, none logged, as GoAccess counts a line cut before it), the level
//! that status implies and the line kept as it was.
#![no_main]

use lakepulse::pipeline::decode::{level_for_status, parse_access_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    let Ok(event) = parse_access_line(line) else {
        return;
    };
    assert!(event.status == 0 || (100..=599).contains(&event.status));
    assert_eq!(event.level, level_for_status(event.status));
    assert_eq!(event.raw.as_deref(), Some(line));
    assert!(event
        .response_time
        .is_none_or(|ms| ms.is_finite() && ms >= 0.0));
});
