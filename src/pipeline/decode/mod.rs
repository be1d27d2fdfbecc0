//! Kafka message value → `LogEvent`: a JSON event, or one Apache/Nginx access-log line.
//! Anything that is not an event is an error with a reason, never a panic: the caller counts
//! it and sets it aside.

mod access_log;
mod json;
mod log_format;
mod user_agent;

pub use access_log::parse_access_line;
pub use log_format::{LogFormat, LogFormatError, HTTP_METHODS, HTTP_PROTOCOLS};
pub use user_agent::{classify, Client};

use crate::model::LogEvent;
use chrono::format::{Item as FormatItem, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use std::sync::LazyLock;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("message is not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` holds no usable value: {1}")]
    InvalidField(&'static str, String),
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error(
        "event time {0} is more than {MAX_TIME_AHEAD_MINUTES} minutes ahead of this server's clock"
    )]
    FutureTimestamp(DateTime<Utc>),
    #[error("not an access-log line: {0}")]
    NotAccessLog(&'static str),
}

impl DecodeError {
    /// A short stable label to count malformed messages by.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::NotUtf8(_) => "not_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::InvalidField(..) => "invalid_field",
            DecodeError::InvalidTimestamp(_) => "invalid_timestamp",
            DecodeError::FutureTimestamp(_) => "future_timestamp",
            DecodeError::NotAccessLog(_) => "not_access_log",
        }
    }
}

/// One item of a message and what it decoded to.
#[derive(Debug)]
pub struct Item<'a> {
    pub raw: &'a [u8],
    pub decoded: Result<LogEvent, DecodeError>,
}

/// Decodes a message value: one event (a JSON object, even pretty-printed over several
/// lines, or an access-log line), or a batch of them, one per line or as a JSON array.
pub fn decode_message(value: &[u8], arrival: DateTime<Utc>) -> Vec<Item<'_>> {
    decode_message_as(value, arrival, None)
}

/// [`decode_message`], with access-log lines read by `format` when one is given.
pub fn decode_message_as<'a>(
    value: &'a [u8],
    arrival: DateTime<Utc>,
    format: Option<&LogFormat>,
) -> Vec<Item<'a>> {
    if let Some(elements) = json_array_elements(value) {
        return elements
            .into_iter()
            .map(|element| {
                let raw = element.get().as_bytes();
                // A string element is one line: an access-log line, or an event as JSON text.
                let decoded = match serde_json::from_str::<String>(element.get()) {
                    Ok(line) => decode_as(line.as_bytes(), arrival, format),
                    Err(_) => decode_as(raw, arrival, format),
                };
                Item { raw, decoded }
            })
            .collect();
    }
    let single = decode_as(value, arrival, format);
    let multi_line = value.trim_ascii().contains(&b'\n');
    if !multi_line || single.is_ok() && value.trim_ascii_start().starts_with(b"{") {
        return vec![Item {
            raw: value,
            decoded: single,
        }];
    }
    value
        .split(|b| *b == b'\n')
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|raw| Item {
            raw,
            decoded: decode_as(raw, arrival, format),
        })
        .collect()
}

/// The elements of a non-empty JSON array, as shippers that batch over HTTP send events.
fn json_array_elements(value: &[u8]) -> Option<Vec<&serde_json::value::RawValue>> {
    let value = value.trim_ascii();
    if !value.starts_with(b"[") {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text)
        .ok()
        .filter(|elements| !elements.is_empty())
}

/// Decodes one event. `arrival` stands in for a missing event time.
pub fn decode(value: &[u8], arrival: DateTime<Utc>) -> Result<LogEvent, DecodeError> {
    decode_as(value, arrival, None)
}

/// [`decode`], with an access-log line read by `format` when one is given.
pub fn decode_as(
    value: &[u8],
    arrival: DateTime<Utc>,
    format: Option<&LogFormat>,
) -> Result<LogEvent, DecodeError> {
    let start = value.iter().position(|b| !b.is_ascii_whitespace());
    let mut event = match start.map(|i| value[i]) {
        None => Err(DecodeError::Empty),
        Some(b'{') => json_event(value, arrival),
        // A JSON array, or an access-log line whose client is an IPv6 address in brackets
        // (`[::1] - - [...]`, as GoAccess reads it).
        Some(b'[') => json_event(value, arrival)
            .or_else(|error| access_line(value, format).map_err(|_| error)),
        Some(_) => access_line(value, format),
    }?;
    user_agent::add_client(&mut event);
    within_calendar(event)
}

fn json_event(value: &[u8], arrival: DateTime<Utc>) -> Result<LogEvent, DecodeError> {
    let text = std::str::from_utf8(value).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    json::decode_json(text.trim(), arrival)
}

/// Access logs carry whatever bytes clients sent (Latin-1 user agents, binary probes): the
/// line is still a request the server answered, so odd bytes are replaced, not fatal.
fn access_line(value: &[u8], format: Option<&LogFormat>) -> Result<LogEvent, DecodeError> {
    // `from_utf8` first: it checks ASCII a word at a time, the lossy reading byte by byte.
    let line = match std::str::from_utf8(value) {
        Ok(line) => std::borrow::Cow::Borrowed(line),
        Err(_) => String::from_utf8_lossy(value),
    };
    let line = line.trim_end_matches(['\r', '\n']);
    match format {
        Some(format) => format.parse_line(line),
        None => parse_access_line(line),
    }
}

/// The years an event time may have: a web server logged it after 1970, and RFC 3339, in
/// which events are published and read back, writes four-digit years. Parsers accept more
/// (`29/Nov/-026`, found by the fuzzer), which would not survive the round trip.
fn within_calendar(event: LogEvent) -> Result<LogEvent, DecodeError> {
    match (1970..=9999).contains(&event.timestamp.year()) {
        true => Ok(event),
        false => Err(DecodeError::InvalidTimestamp(event.timestamp.to_rfc3339())),
    }
}

/// The access-log time as chrono's format string reads it.
const ACCESS_LOG_TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S%.f %z";

/// An access-log time (`10/Oct/2000:13:55:36 -0700`, a fraction of a second allowed), in the
/// form web servers write and JSON producers copy. The format is read once: chrono's
/// `parse_from_str` reads its format string again for every line it parses.
fn parse_access_log_time(text: &str) -> chrono::ParseResult<DateTime<FixedOffset>> {
    if let Some(time) = usual_access_log_time(text) {
        return Ok(time);
    }
    static FORMAT: LazyLock<Vec<FormatItem<'static>>> =
        LazyLock::new(|| StrftimeItems::new(ACCESS_LOG_TIME_FORMAT).collect());
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, FORMAT.iter())?;
    parsed.to_datetime()
}

/// The months as `%b` writes them.
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The time as nearly every server writes it (`10/Oct/2000:13:55:36 -0700`, perhaps with a
/// fraction of a second), read byte by byte: a fifth of an access line's decoding went to
/// chrono's general parser. None for any other form or any doubt (a leap second, an
/// impossible date), which chrono then reads; what this accepts, chrono reads alike.
fn usual_access_log_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let bytes = text.as_bytes();
    let number = |at: usize, len: usize| -> Option<u32> {
        bytes.get(at..at + len)?.iter().try_fold(0, |value, digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let separators = [(2, b'/'), (6, b'/'), (11, b':'), (14, b':'), (17, b':')];
    if separators
        .iter()
        .any(|(at, sep)| bytes.get(*at) != Some(sep))
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| m[..] == bytes[3..6])? as u32 + 1;
    let (day, year) = (number(0, 2)?, number(7, 4)?);
    let (hour, minute, second) = (number(12, 2)?, number(15, 2)?, number(18, 2)?);
    let mut at = 20;
    let mut nanos = 0;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = number(at + 1, digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    if bytes.len() != at + 6 || bytes[at] != b' ' || second > 59 {
        return None;
    }
    let sign = match bytes[at + 1] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (offset_hours, offset_minutes) = (number(at + 2, 2)?, number(at + 4, 2)?);
    if offset_minutes > 59 {
        return None;
    }
    let offset = FixedOffset::east_opt(sign * (offset_hours * 3600 + offset_minutes * 60) as i32)?;
    NaiveDate::from_ymd_opt(year as i32, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?
        .and_local_timezone(offset)
        .single()
}

/// Longer than this is not a response time (about 115 days): a sum of them stays finite
/// whatever the number of events.
const MAX_RESPONSE_MS: f64 = 1e10;

/// `ms` if it can be a response time in milliseconds, from any decoder.
fn plausible_response_ms(ms: f64) -> Option<f64> {
    (ms.is_finite() && (0.0..=MAX_RESPONSE_MS).contains(&ms)).then_some(ms)
}

/// How far an event time may run ahead of lakepulse's clock: clocks of different hosts drift
/// (Loki allows ten minutes too). Further ahead, the time is wrong, and a single such event
/// would carry every live window into the future, away from all the others.
const MAX_TIME_AHEAD_MINUTES: i64 = 10;

/// Whether `time` is too far ahead of `now` to be true.
pub fn too_far_ahead(time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    time > now + chrono::TimeDelta::minutes(MAX_TIME_AHEAD_MINUTES)
}

/// The event, unless its time is too far ahead of `now` to be true.
pub fn within_clock(event: LogEvent, now: DateTime<Utc>) -> Result<LogEvent, DecodeError> {
    match too_far_ahead(event.timestamp, now) {
        true => Err(DecodeError::FutureTimestamp(event.timestamp)),
        false => Ok(event),
    }
}

/// The level a status implies when the producer did not say.
pub fn level_for_status(status: u16) -> &'static str {
    match status {
        500.. => "ERROR",
        400..=499 => "WARN",
        _ => "INFO",
    }
}

/// A field's value; `-` (and nothing) is how access logs write that there is none.
fn given(field: &str) -> Option<String> {
    (!field.is_empty() && field != "-").then(|| field.to_owned())
}

/// A request target as its path and its query string (without the `?`; none when empty). A
/// `#fragment` is no part of either: browsers do not send one, but hand-made requests do.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split('#').next().unwrap_or(target);
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
        None => (target, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn arrival() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_usual_time_reads_as_chrono_reads_it_and_leaves_the_rest_to_chrono() {
        let chrono_reads = |text: &str| {
            let mut parsed = Parsed::new();
            let format = StrftimeItems::new(ACCESS_LOG_TIME_FORMAT);
            chrono::format::parse(&mut parsed, text, format)
                .and_then(|_| parsed.to_datetime())
                .ok()
        };
        for usual in [
            "10/Oct/2000:13:55:36 -0700",
            "29/Nov/2026:08:00:00.250 +0000",
            "01/Jan/1970:00:00:00.123456789 +2359",
            "29/Feb/2024:23:59:59 -1230",
            "31/Dec/9999:23:59:59 +0100",
        ] {
            let fast = usual_access_log_time(usual);
            assert!(fast.is_some(), "{usual} is read by the fast path");
            assert_eq!(fast, chrono_reads(usual), "{usual}");
        }
        for unusual in [
            "29/Feb/2023:00:00:00 +0000",
            "10/Oct/2000:24:00:00 +0000",
            "10/Oct/2000:13:55:60 +0000",
            "10/oct/2000:13:55:36 +0000",
            "10/October/2000:13:55:36 +0000",
            "1/Oct/2000:13:55:36 +0000",
            "10/Oct/2000:13:55:36 +00:00",
            "10/Oct/2000:13:55:36 +0060",
            "10/Oct/2000:13:55:36 +2400",
            "10/Oct/2000:13:55:36.1234567891 +0000",
            "10/Oct/2000:13:55:36. +0000",
            "10/Oct/2000:13:55:36 +0000 ",
            "10/Oct/2000:13:55:36",
            "10/Oct/-200:13:55:36 +0000",
            "2026-11-29T08:00:00Z",
        ] {
            assert_eq!(usual_access_log_time(unusual), None, "{unusual}");
        }
        assert!(parse_access_log_time("10/Oct/2000:13:55:36.1234567891 +0000").is_ok());
    }

    #[test]
    fn rejects_what_is_not_an_event_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"   \n", "empty"),
            (b"{\"a\":\"\xff\xfe\"}", "not_utf8"),
            (br#"{"endpoint":"/","status":"#, "invalid_json"),
            (br#"{"endpoint":"/"}"#, "missing_field"),
            (
                br#"{"endpoint":"/","status":200,"timestamp":"yesterday"}"#,
                "invalid_timestamp",
            ),
        ];
        let outside_the_calendar: [&[u8]; 3] = [
            br#"{"time_local":"29/Nov/-026:09:01:42 +0100","request":"GET / HTTP/1.1","status":"200"}"#,
            br#"{"endpoint":"/","status":200,"timestamp":"1900-01-01T00:00:00Z"}"#,
            b"192.0.2.1 - - [01/Jan/0099:00:00:01 +0000] \"GET / HTTP/1.1\" 200 1",
        ];
        for input in outside_the_calendar {
            let err = decode(input, arrival()).unwrap_err();
            assert_eq!(err.reason(), "invalid_timestamp", "{input:?} gave {err}");
        }
        for (input, reason) in cases {
            let err = decode(input, arrival()).unwrap_err();
            assert_eq!(err.reason(), reason, "{input:?} gave {err}");
        }
    }

    #[test]
    fn deep_nesting_is_read_without_recursion_and_huge_values_are_kept() {
        let depth = 5_000;
        let nested = |inner: &str| format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
        // Nesting where the status belongs: refused, for the status it hides.
        let buried = format!(r#"{{"endpoint":"/deep","status":{}}}"#, nested("200"));
        let err = decode(buried.as_bytes(), arrival()).unwrap_err();
        assert_eq!(err.reason(), "invalid_field", "{err}");
        assert!(err.to_string().starts_with("field `status`"), "{err}");
        // Nesting in a field lakepulse does not read: skipped without recursing, the event kept.
        let aside = format!(
            r#"{{"endpoint":"/deep","status":200,"context":{}}}"#,
            nested("")
        );
        assert_eq!(
            decode(aside.as_bytes(), arrival()).unwrap().endpoint,
            "/deep"
        );
        // A huge value is data: kept whole.
        let message = "x".repeat(20_000);
        let huge = format!(r#"{{"endpoint":"/huge","status":200,"message":"{message}"}}"#);
        assert_eq!(decode(huge.as_bytes(), arrival()).unwrap().message, message);
    }

    /// Each item's endpoint, or why it is not an event.
    fn endpoints_or_reasons<'a>(items: &'a [Item]) -> Vec<Result<&'a str, &'static str>> {
        items
            .iter()
            .map(|i| {
                i.decoded
                    .as_ref()
                    .map(|e| e.endpoint.as_str())
                    .map_err(|e| e.reason())
            })
            .collect()
    }

    #[test]
    fn a_message_may_carry_a_batch_of_lines_of_either_kind() {
        let batch = concat!(
            r#"{"endpoint":"/a","status":200}"#,
            "\r\n\n",
            r#"192.0.2.1 - - [01/Jan/2026:00:00:01 +0000] "GET /b HTTP/1.1" 404 12 "-" "ua""#,
            "\n",
            "garbage\n",
            r#"{"endpoint":"/c","status":503}"#,
            "\n",
            r#"192.0.2.2 - - [01/Jan/2026:00:00:02 +0000] "GET /d HTTP/1.1" 200 12"#,
        );
        let items = decode_message(batch.as_bytes(), arrival());
        let outcome = endpoints_or_reasons(&items);
        assert_eq!(
            outcome,
            [
                Ok("/a"),
                Ok("/b"),
                Err("not_access_log"),
                Ok("/c"),
                Ok("/d")
            ]
        );
        let two_lines = concat!(
            r#"192.0.2.1 - - [01/Jan/2026:00:00:01 +0000] "GET /x HTTP/1.1" 200 1 "-" "ua""#,
            "\n",
            r#"192.0.2.1 - - [01/Jan/2026:00:00:02 +0000] "GET /y HTTP/1.1" 200 1 "-" "ua""#,
        );
        assert_eq!(decode_message(two_lines.as_bytes(), arrival()).len(), 2);
        assert_eq!(items[2].raw, b"garbage");
    }

    #[test]
    fn an_event_time_far_ahead_of_the_clock_is_set_aside() {
        let event = |at: &str| {
            decode(
                format!(r#"{{"timestamp":"{at}","endpoint":"/","status":200}}"#).as_bytes(),
                arrival(),
            )
            .unwrap()
        };
        // arrival() is 10:00; a few minutes of drift is normal.
        assert!(within_clock(event("2026-11-29T10:09:00Z"), arrival()).is_ok());
        let error = within_clock(event("2099-01-01T00:00:00Z"), arrival()).unwrap_err();
        assert_eq!(error.reason(), "future_timestamp");
        assert!(error.to_string().contains("2099-01-01"), "{error}");
    }

    #[test]
    fn a_json_array_is_a_batch_of_its_elements() {
        let array = concat!(
            "[\n",
            r#"  {"endpoint":"/a","status":200},"#,
            "\n",
            r#"  {"endpoint":"/b"},"#,
            "\n",
            r#"  "192.0.2.1 - - [01/Jan/2026:00:00:01 +0000] \"GET /c HTTP/1.1\" 200 1""#,
            "\n]\n",
        );
        let items = decode_message(array.as_bytes(), arrival());
        let outcome = endpoints_or_reasons(&items);
        assert_eq!(outcome, [Ok("/a"), Err("missing_field"), Ok("/c")]);
        assert_eq!(items[1].raw, br#"{"endpoint":"/b"}"#);
        for not_a_batch in [&b"[]"[..], b"[{\"endpoint\":\"/a\",", b"[\xff]"] {
            let items = decode_message(not_a_batch, arrival());
            assert_eq!(items.len(), 1, "{not_a_batch:?}");
            assert!(items[0].decoded.is_err(), "{not_a_batch:?}");
        }
    }

    #[test]
    fn a_pretty_printed_object_is_one_event_not_a_batch() {
        let pretty = b"{\n  \"endpoint\": \"/p\",\n  \"status\": 200\n}\n";
        let items = decode_message(pretty, arrival());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].decoded.as_ref().unwrap().endpoint, "/p");
        let items = decode_message(b"", arrival());
        assert_eq!(items[0].decoded.as_ref().unwrap_err().reason(), "empty");
    }
}
