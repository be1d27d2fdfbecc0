//! Any Kafka message value: decoding never panics, every item is a slice of the message, and
//! an event decoded from JSON survives a round trip through the schema it is published in.
#![no_main]

use chrono::{TimeZone, Utc};
use lakepulse::pipeline::decode::{decode, decode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    let arrival = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let items = decode_message(value, arrival);
    assert!(!items.is_empty() || value.iter().all(u8::is_ascii_whitespace));
    let whole = value.as_ptr_range();
    for item in items {
        let part = item.raw.as_ptr_range();
        assert!(whole.start <= part.start && part.end <= whole.end);
        let Ok(event) = item.decoded else { continue };
        if event.raw.is_none() {
            let published = serde_json::to_vec(&event).expect("an event serializes");
            assert_eq!(decode(&published, arrival), Ok(event));
        }
    }
});
