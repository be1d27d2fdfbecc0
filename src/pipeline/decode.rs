//! Kafka message value → `LogEvent`: a JSON event, or one Apache/Nginx access-log line.
//! Anything that is not an event is an error with a reason, never a panic: the caller counts
//! it and sets it aside.

use crate::model::LogEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;

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
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
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
            DecodeError::InvalidTimestamp(_) => "invalid_timestamp",
            DecodeError::NotAccessLog(_) => "not_access_log",
        }
    }
}

/// The JSON event as producers write it: the README schema plus the aliases common in the wild.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEvent {
    #[serde(alias = "ts", alias = "time", alias = "@timestamp")]
    timestamp: Option<String>,
    #[serde(alias = "severity")]
    level: Option<String>,
    #[serde(alias = "service")]
    source: Option<String>,
    method: Option<String>,
    #[serde(alias = "path", alias = "url", alias = "uri")]
    endpoint: Option<String>,
    #[serde(alias = "statusCode", alias = "status_code")]
    status: Option<u16>,
    #[serde(
        alias = "response_time",
        alias = "response_time_ms",
        alias = "responseTimeMs",
        alias = "duration_ms",
        alias = "latency_ms"
    )]
    response_time: Option<f64>,
    #[serde(alias = "user_id")]
    user_id: Option<String>,
    #[serde(alias = "session_id")]
    session_id: Option<String>,
    #[serde(alias = "client_ip", alias = "remote_addr")]
    ip: Option<String>,
    #[serde(alias = "bytes_sent", alias = "size")]
    bytes: Option<u64>,
    #[serde(alias = "msg")]
    message: Option<String>,
}

/// One item of a message and what it decoded to.
#[derive(Debug)]
pub struct Item<'a> {
    pub raw: &'a [u8],
    pub decoded: Result<LogEvent, DecodeError>,
}

/// Decodes a message value: one event (a JSON object, even pretty-printed over several
/// lines, or an access-log line), or a batch of them, one per line.
pub fn decode_message(value: &[u8], arrival: DateTime<Utc>) -> Vec<Item<'_>> {
    let single = decode(value, arrival);
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
            decoded: decode(raw, arrival),
        })
        .collect()
}

/// Decodes one event. `arrival` stands in for a missing event time.
pub fn decode(value: &[u8], arrival: DateTime<Utc>) -> Result<LogEvent, DecodeError> {
    let start = value.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| value[i]) {
        None => Err(DecodeError::Empty),
        Some(b'{' | b'[') => {
            let text =
                std::str::from_utf8(value).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
            decode_json(text.trim(), arrival)
        }
        // Access logs carry whatever bytes clients sent (Latin-1 user agents, binary probes):
        // the line is still a request the server answered, so odd bytes are replaced, not fatal.
        Some(_) => parse_access_line(String::from_utf8_lossy(value).trim()),
    }
}

fn decode_json(text: &str, arrival: DateTime<Utc>) -> Result<LogEvent, DecodeError> {
    let raw: JsonEvent =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let status = raw.status.ok_or(DecodeError::MissingField("status"))?;
    let endpoint = raw.endpoint.ok_or(DecodeError::MissingField("endpoint"))?;
    let timestamp = match raw.timestamp {
        Some(ts) => DateTime::parse_from_rfc3339(&ts)
            .map_err(|_| DecodeError::InvalidTimestamp(ts))?
            .with_timezone(&Utc),
        None => arrival,
    };
    let method = raw.method.unwrap_or_else(|| "GET".to_owned());
    let message = raw
        .message
        .unwrap_or_else(|| format!("{method} {endpoint} {status}"));
    Ok(LogEvent {
        timestamp,
        level: raw
            .level
            .map(|l| l.to_ascii_uppercase())
            .unwrap_or_else(|| level_for_status(status).to_owned()),
        source: raw.source.unwrap_or_else(|| "unknown".to_owned()),
        method,
        endpoint,
        status,
        response_time: raw.response_time,
        user_id: raw.user_id,
        session_id: raw.session_id,
        ip: raw.ip,
        bytes: raw.bytes.unwrap_or(0),
        message,
        raw: None,
    })
}

/// One field of an access-log line: a bare word, a `[bracketed]` time or a `"quoted"` string
/// (with `\"` escapes, as Apache and nginx write them).
fn access_log_fields(line: &str) -> Result<Vec<&str>, DecodeError> {
    let mut fields = Vec::with_capacity(12);
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= bytes.len() {
                    return Err(DecodeError::NotAccessLog("unterminated quote"));
                }
                fields.push(&line[start..j]);
                i = j + 1;
            }
            b'[' => {
                let end = line[i..]
                    .find(']')
                    .ok_or(DecodeError::NotAccessLog("unterminated [time]"))?;
                fields.push(&line[i..=i + end]);
                i += end + 1;
            }
            _ => {
                let end = line[i..].find([' ', '\t']).map_or(line.len(), |e| i + e);
                fields.push(&line[i..end]);
                i = end;
            }
        }
    }
    Ok(fields)
}

/// Parses an Apache/Nginx access-log line: common or combined format, optionally led by a
/// virtual host (`vhost_combined`) and followed by extra fields such as nginx's
/// `$request_time` (decimal seconds, bare or as `rt=`/`request_time=`).
pub fn parse_access_line(line: &str) -> Result<LogEvent, DecodeError> {
    if line.is_empty() {
        return Err(DecodeError::Empty);
    }
    let fields = access_log_fields(line)?;
    let time_at = fields
        .iter()
        .take(5)
        // A quoted field may start with '[' too; only a whole `[...]` is a time.
        .position(|f| f.len() >= 2 && f.starts_with('[') && f.ends_with(']'))
        .ok_or(DecodeError::NotAccessLog("no [time] field"))?;
    let vhost = match time_at {
        3 => None,
        4 => Some(fields[0]),
        _ => return Err(DecodeError::NotAccessLog("unexpected fields before [time]")),
    };
    let host = fields[time_at - 3];
    let user = fields[time_at - 1];
    let rest = &fields[time_at + 1..];
    let [request, status, bytes, extra @ ..] = rest else {
        return Err(DecodeError::NotAccessLog("missing request, status or size"));
    };
    let time = &fields[time_at][1..fields[time_at].len() - 1];
    let timestamp = DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|_| DecodeError::InvalidTimestamp(time.to_owned()))?
        .with_timezone(&Utc);
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or(DecodeError::NotAccessLog("status is not an HTTP status"))?;
    let bytes = match *bytes {
        "-" => 0,
        b => b
            .parse()
            .map_err(|_| DecodeError::NotAccessLog("size is not a number"))?,
    };
    // A request line that is not `METHOD TARGET PROTOCOL` ("-", a TLS probe) was still answered.
    let mut parts = request.split(' ');
    let (method, endpoint) = match (parts.next(), parts.next()) {
        (Some(m), Some(target)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            let path = target.split(['?', '#']).next().unwrap_or(target);
            (m.to_owned(), path.to_owned())
        }
        _ => ("-".to_owned(), "-".to_owned()),
    };
    // After referer and user agent, the first decimal number of seconds is the request time.
    let response_time = extra.iter().skip(2).find_map(|f| {
        let value = f
            .strip_prefix("rt=")
            .or_else(|| f.strip_prefix("request_time="))
            .unwrap_or(f);
        value
            .contains('.')
            .then(|| value.parse::<f64>().ok())
            .flatten()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| s * 1000.0)
    });
    Ok(LogEvent {
        timestamp,
        level: level_for_status(status).to_owned(),
        source: vhost.unwrap_or("access-log").to_owned(),
        method,
        endpoint,
        status,
        response_time,
        user_id: (user != "-").then(|| user.to_owned()),
        session_id: None,
        ip: Some(host.to_owned()),
        bytes,
        message: request.to_string(),
        raw: Some(line.to_owned()),
    })
}

/// The level a status implies when the producer did not say.
pub fn level_for_status(status: u16) -> &'static str {
    match status {
        500.. => "ERROR",
        400..=499 => "WARN",
        _ => "INFO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn decodes_the_readme_schema() {
        let line = br#"{"timestamp":"2026-11-29T09:15:02.123Z","level":"INFO","source":"api-gateway","method":"POST","endpoint":"/api/orders","status":201,"responseTime":87.5,"userId":"u-17","sessionId":"s-9","ip":"203.0.113.7","bytes":512,"message":"order created"}"#;
        let event = decode(line, arrival()).unwrap();
        assert_eq!(
            event.timestamp.to_rfc3339(),
            "2026-11-29T09:15:02.123+00:00"
        );
        assert_eq!(event.method, "POST");
        assert_eq!(event.endpoint, "/api/orders");
        assert_eq!(event.status, 201);
        assert_eq!(event.response_time, Some(87.5));
        assert_eq!(event.session_id.as_deref(), Some("s-9"));
        assert_eq!(event.bytes, 512);
        assert!(!event.is_error());
    }

    #[test]
    fn accepts_snake_case_aliases_and_derives_level() {
        let line = br#"{"ts":"2026-11-29T09:15:02+01:00","path":"/login","status_code":503,"response_time_ms":1200,"session_id":"abc"}"#;
        let event = decode(line, arrival()).unwrap();
        assert_eq!(event.timestamp.to_rfc3339(), "2026-11-29T08:15:02+00:00");
        assert_eq!(event.level, "ERROR");
        assert_eq!(event.response_time, Some(1200.0));
        assert!(event.is_error());
    }

    #[test]
    fn missing_time_falls_back_to_arrival() {
        let event = decode(br#"{"endpoint":"/","status":404}"#, arrival()).unwrap();
        assert_eq!(event.timestamp, arrival());
        assert_eq!(event.level, "WARN");
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
        for (input, reason) in cases {
            let err = decode(input, arrival()).unwrap_err();
            assert_eq!(err.reason(), reason, "{input:?} gave {err}");
        }
    }

    #[test]
    fn parses_combined_lines_as_apache_and_nginx_write_them() {
        let apache = r#"203.0.113.9 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
        let e = parse_access_line(apache).unwrap();
        assert_eq!(e.timestamp.to_rfc3339(), "2000-10-10T20:55:36+00:00");
        assert_eq!(
            (e.method.as_str(), e.endpoint.as_str()),
            ("GET", "/apache_pb.gif")
        );
        assert_eq!((e.status, e.bytes), (200, 2326));
        assert_eq!(e.user_id.as_deref(), Some("frank"));
        assert_eq!(e.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.message, "GET /apache_pb.gif?x=1 HTTP/1.0");
        assert_eq!(e.response_time, None);
        assert_eq!(e.raw.as_deref(), Some(apache));

        // nginx with $request_time appended, IPv6 client, `-` size and no referer.
        let nginx = r#"2001:db8::7 - - [29/Nov/2026:09:01:02 +0000] "POST /api/login HTTP/2.0" 502 - "-" "curl/8.5.0" 0.250"#;
        let e = parse_access_line(nginx).unwrap();
        assert_eq!(e.ip.as_deref(), Some("2001:db8::7"));
        assert_eq!((e.status, e.bytes, e.level.as_str()), (502, 0, "ERROR"));
        assert_eq!(e.response_time, Some(250.0));
        assert_eq!(e.user_id, None);
    }

    #[test]
    fn parses_the_odd_lines_real_servers_write() {
        // Escaped quotes inside the user agent.
        let quoted = r#"198.51.100.4 - - [01/Jan/2026:00:00:01 +0100] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0 "quoted" agent""#;
        assert_eq!(parse_access_line(quoted).unwrap().status, 200);
        // Common log format: no referer, no user agent.
        let common = r#"127.0.0.1 - - [01/Jan/2026:00:00:01 +0000] "HEAD /health HTTP/1.1" 204 0"#;
        assert_eq!(parse_access_line(common).unwrap().method, "HEAD");
        // vhost_combined: the virtual host first.
        let vhost = r#"shop.example.com:443 192.0.2.1 - - [01/Jan/2026:00:00:01 +0000] "GET /cart HTTP/1.1" 301 0 "-" "bot""#;
        let e = parse_access_line(vhost).unwrap();
        assert_eq!(
            (e.source.as_str(), e.ip.as_deref()),
            ("shop.example.com:443", Some("192.0.2.1"))
        );
        // A TLS handshake sent to a plain-HTTP port: answered 400, no request line.
        let probe = r#"192.0.2.77 - - [01/Jan/2026:00:00:02 +0000] "\x16\x03\x01\x00\xa5\x01" 400 157 "-" "-""#;
        let e = parse_access_line(probe).unwrap();
        assert_eq!(
            (e.method.as_str(), e.endpoint.as_str(), e.status),
            ("-", "-", 400)
        );
        // Non-UTF-8 bytes in the user agent.
        let mut latin1 =
            br#"192.0.2.5 - - [01/Jan/2026:00:00:03 +0000] "GET /caf HTTP/1.1" 200 10 "-" "agent "#
                .to_vec();
        latin1.extend_from_slice(b"\xe9\"");
        assert_eq!(decode(&latin1, arrival()).unwrap().endpoint, "/caf");
        // key=value extras, as custom nginx formats log them.
        let kv = r#"192.0.2.6 - - [01/Jan/2026:00:00:04 +0000] "GET /q HTTP/1.1" 200 10 "-" "ua" rt=0.042 uct="0.001""#;
        assert_eq!(parse_access_line(kv).unwrap().response_time, Some(42.0));
    }

    #[test]
    fn rejects_lines_that_are_not_access_logs() {
        for line in [
            "hello world",
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" abc 12"#,
            r#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 12"#,
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1"#,
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000]"#,
            // Found by the fuzzer: a quoted "[" once passed for an empty [time] and panicked.
            r#"1.2.3.4 - - "[" "GET / HTTP/1.1" 200 12"#,
        ] {
            assert!(decode(line.as_bytes(), arrival()).is_err(), "{line}");
        }
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
        let outcome: Vec<_> = items
            .iter()
            .map(|i| {
                i.decoded
                    .as_ref()
                    .map(|e| e.endpoint.as_str())
                    .map_err(|e| e.reason())
            })
            .collect();
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
    fn a_pretty_printed_object_is_one_event_not_a_batch() {
        let pretty = b"{\n  \"endpoint\": \"/p\",\n  \"status\": 200\n}\n";
        let items = decode_message(pretty, arrival());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].decoded.as_ref().unwrap().endpoint, "/p");
        let items = decode_message(b"", arrival());
        assert_eq!(items[0].decoded.as_ref().unwrap_err().reason(), "empty");
    }

    #[test]
    fn wrong_types_are_invalid_not_panics() {
        let err = decode(br#"{"endpoint":"/","status":-1}"#, arrival()).unwrap_err();
        assert_eq!(err.reason(), "invalid_json");
        let err = decode(br#"[1,2,3]"#, arrival()).unwrap_err();
        assert_eq!(err.reason(), "invalid_json");
    }
}
