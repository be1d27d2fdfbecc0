//! Apache and nginx access-log lines: common, combined and vhost_combined, with the extra
//! fields custom formats append.

use super::log_format::{split_request, LogFormat};
use super::{given, level_for_status, plausible_response_ms, split_target, DecodeError};
use crate::model::LogEvent;
use chrono::{DateTime, Utc};
use std::sync::LazyLock;

/// How far into a line the `[time]` may be: client, ident and user, after a virtual host or a
/// shipper's prefix (a syslog header is five fields, a CRI container log line three).
const MAX_FIELDS_BEFORE_TIME: usize = 10;

/// One field of an access-log line: a bare word, a `[bracketed]` time (brackets kept) or a
/// `"quoted"` string (quotes taken off; with `\"` escapes, as Apache and nginx write them).
#[derive(Clone, Copy)]
struct Field<'a> {
    text: &'a str,
    quoted: bool,
}

/// The fields of an access-log line.
fn access_log_fields(line: &str) -> Result<Vec<Field<'_>>, DecodeError> {
    let mut fields: Vec<Field> = Vec::with_capacity(12);
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let start = i + 1;
                let after_time = fields.last().is_some_and(|f| f.text.starts_with('['));
                let end = match after_time {
                    true => request_line_end(bytes, start),
                    false => closing_quote(bytes, start, |_| true),
                }
                .ok_or(DecodeError::NotAccessLog("unterminated quote"))?;
                fields.push(Field {
                    text: &line[start..end],
                    quoted: true,
                });
                i = end + 1;
            }
            b'[' => {
                let end = line[i..]
                    .find(']')
                    .ok_or(DecodeError::NotAccessLog("unterminated [time]"))?;
                fields.push(Field {
                    text: &line[i..=i + end],
                    quoted: false,
                });
                i += end + 1;
            }
            _ => {
                let end = memchr::memchr2(b' ', b'\t', &bytes[i..]).map_or(line.len(), |e| i + e);
                fields.push(Field {
                    text: &line[i..end],
                    quoted: false,
                });
                i = end;
            }
        }
    }
    Ok(fields)
}

/// The first unescaped `"` from `start` that `closes` accepts. `memchr2` skips the text
/// between quotes and escapes many bytes at a time: a user agent is a hundred bytes and more.
fn closing_quote(bytes: &[u8], start: usize, closes: impl Fn(usize) -> bool) -> Option<usize> {
    let mut j = start;
    while let Some(found) = bytes
        .get(j..)
        .and_then(|rest| memchr::memchr2(b'\\', b'"', rest))
    {
        j += found;
        match bytes[j] {
            b'\\' => j += 2,
            _ if closes(j) => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// Where the quoted request line after the time ends. Old Apache versions wrote a client's
/// quotes unescaped (`"GET /a"b HTTP/1.0" 200 12`), so the request ends at the quote that a
/// status follows; a line with no such quote ends at the first.
fn request_line_end(bytes: &[u8], start: usize) -> Option<usize> {
    let status_follows = |quote: usize| {
        let rest = &bytes[quote + 1..];
        let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
        rest.len() >= 3
            && rest[..3].iter().all(u8::is_ascii_digit)
            && rest.get(3).is_none_or(|b| *b == b' ' || *b == b'\t')
    };
    closing_quote(bytes, start, status_follows).or_else(|| closing_quote(bytes, start, |_| true))
}

/// Parses an Apache/Nginx access-log line: common or combined format, optionally led by a
/// virtual host (`vhost_combined`) or by what a shipper put in front (a syslog header, a
/// container runtime's time and stream), and followed by extra fields such as nginx's
/// `$request_time` (decimal seconds, bare or as `rt=`/`request_time=`). The time may be the
/// usual `[10/Oct/2000:13:55:36 -0700]`, with fractional seconds, or ISO 8601
/// (`$time_iso8601`).
///
/// A line this reading refuses is read as GoAccess reads the usual formats (`COMBINED`,
/// `VCOMBINED`, `COMMON`, `VCOMMON`), so every line GoAccess counts valid is an event.
pub fn parse_access_line(line: &str) -> Result<LogEvent, DecodeError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err(DecodeError::Empty);
    }
    read_any_shape(trimmed, line).or_else(|refused| {
        GOACCESS_FORMATS
            .iter()
            .find_map(|format| format.parse_line(line).ok())
            .ok_or(refused)
    })
}

/// The formats GoAccess users name, tried in turn on a line no other reading takes.
static GOACCESS_FORMATS: LazyLock<Vec<LogFormat>> = LazyLock::new(|| {
    ["COMBINED", "VCOMBINED", "COMMON", "VCOMMON"]
        .into_iter()
        .map(|name| name.parse().expect("GoAccess's own formats parse"))
        .collect()
});

/// Reads `line` (trimmed) in any of the shapes above; the event keeps `raw` as it came.
fn read_any_shape(line: &str, raw: &str) -> Result<LogEvent, DecodeError> {
    let fields = access_log_fields(line)?;
    let time_at = fields
        .iter()
        .take(MAX_FIELDS_BEFORE_TIME + 1)
        // A quoted field may be bracketed too; only a bare `[...]` is a time.
        .position(|f| {
            !f.quoted && f.text.len() >= 2 && f.text.starts_with('[') && f.text.ends_with(']')
        })
        .ok_or(DecodeError::NotAccessLog("no [time] field"))?;
    if time_at < 3 {
        return Err(DecodeError::NotAccessLog(
            "no client, ident and user before [time]",
        ));
    }
    let vhost = (time_at == 4).then(|| fields[0].text);
    let host = fields[time_at - 3].text;
    let user = fields[time_at - 1].text;
    let rest = &fields[time_at + 1..];
    let [request, status, bytes, extra @ ..] = rest else {
        return Err(DecodeError::NotAccessLog("missing request, status or size"));
    };
    let (request, status, bytes) = (request.text, status.text, bytes.text);
    let time = fields[time_at].text;
    let time = &time[1..time.len() - 1];
    let timestamp = super::parse_access_log_time(time)
        .or_else(|_| DateTime::parse_from_rfc3339(time))
        .map_err(|_| DecodeError::InvalidTimestamp(time.to_owned()))?
        .with_timezone(&Utc);
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or(DecodeError::NotAccessLog("status is not an HTTP status"))?;
    let bytes = match bytes {
        "-" => 0,
        b => b
            .parse()
            .map_err(|_| DecodeError::NotAccessLog("size is not a number"))?,
    };
    // As GoAccess splits a request line; then, past what it reads, an unknown method or a
    // request with no protocol (HTTP/0.9). A request line that is neither ("-", a TLS probe)
    // was still answered.
    let (method, target, protocol) = match split_request(request) {
        Some((method, target, protocol)) => (method.to_owned(), Some(target), Some(protocol)),
        None => {
            let mut parts = request.split_ascii_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(target), protocol, None) if is_method(m) => {
                    (m.to_ascii_uppercase(), Some(target), protocol)
                }
                _ => ("-".to_owned(), None, None),
            }
        }
    };
    let target = target.map(split_target);
    let (endpoint, query) = target.unwrap_or(("-", None));
    // Combined formats put the referer and the user agent, quoted, right after the size; a
    // bare word there is something else (Apache's `%D` after a common line).
    let quoted = |at: usize| extra.get(at).filter(|f| f.quoted).map(|f| f.text);
    let (referrer, user_agent) = (quoted(0), quoted(1).filter(|_| quoted(0).is_some()));
    // After referer and user agent, the first decimal number of seconds (nginx) or number of
    // milliseconds with its unit (Traefik's `12ms`) is the request time. A bare integer is
    // not: Apache's %D (µs), %T (s) and %I/%O (bytes) all look alike.
    let response_time = extra.iter().skip(2).find_map(|f| {
        let value = f
            .text
            .strip_prefix("rt=")
            .or_else(|| f.text.strip_prefix("request_time="))
            .unwrap_or(f.text);
        let millis = match value.strip_suffix("ms") {
            Some(millis) => millis.parse::<f64>().ok(),
            None if value.contains('.') => value.parse::<f64>().ok().map(|s| s * 1000.0),
            None => None,
        };
        millis.and_then(plausible_response_ms)
    });
    Ok(LogEvent {
        timestamp,
        level: level_for_status(status).to_owned(),
        source: vhost.unwrap_or("access-log").to_owned(),
        method,
        endpoint: endpoint.to_owned(),
        status,
        response_time,
        user_id: given(user),
        session_id: None,
        ip: Some(host.to_owned()),
        bytes,
        message: request.to_string(),
        raw: Some(raw.to_owned()),
        user_agent: user_agent.and_then(given),
        referrer: referrer.and_then(given),
        vhost: vhost.map(str::to_owned),
        protocol: protocol.and_then(given),
        query: query.map(str::to_owned),
        ..LogEvent::default()
    })
}

/// A method as servers log it, in any case (`get` is GET): letters and `-` (`M-SEARCH`).
fn is_method(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::super::{decode, tests::arrival};
    use super::*;

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
        assert_eq!(
            (e.protocol.as_deref(), e.query.as_deref()),
            (Some("HTTP/1.0"), Some("x=1"))
        );
        assert_eq!(
            e.referrer.as_deref(),
            Some("http://www.example.com/start.html")
        );
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
        );
        assert_eq!((e.vhost, e.attributes), (None, None));

        // nginx with $request_time appended, IPv6 client, `-` size and no referer.
        let nginx = r#"2001:db8::7 - - [29/Nov/2026:09:01:02 +0000] "POST /api/login HTTP/2.0" 502 - "-" "curl/8.5.0" 0.250"#;
        let e = parse_access_line(nginx).unwrap();
        assert_eq!(e.ip.as_deref(), Some("2001:db8::7"));
        assert_eq!((e.status, e.bytes, e.level.as_str()), (502, 0, "ERROR"));
        assert_eq!(e.response_time, Some(250.0));
        assert_eq!(e.user_id, None);
        assert_eq!(
            (e.referrer, e.user_agent.as_deref(), e.query),
            (None, Some("curl/8.5.0"), None)
        );
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
        assert_eq!(e.vhost.as_deref(), Some("shop.example.com:443"));
        assert_eq!(e.user_agent.as_deref(), Some("bot"));
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
        // Quotes from the client unescaped, as Apache before 2.0.46 wrote them (NASA's 1995
        // logs have such lines), and an empty request line.
        let unescaped = r#"pipe1.example.com - - [01/Aug/1995:00:12:37 -0400] "GET /apollo-13.html" HTTP/1.0" 200 1234"#;
        let e = parse_access_line(unescaped).unwrap();
        assert_eq!(
            (e.endpoint.as_str(), e.status, e.bytes),
            ("/apollo-13.html\"", 200, 1234)
        );
        let empty = r#"klothos.example.com - - [10/Jul/1995:16:45:50 -0400] "" 400 -"#;
        assert_eq!(parse_access_line(empty).unwrap().method, "-");
        // key=value extras, as custom nginx formats log them.
        let kv = r#"192.0.2.6 - - [01/Jan/2026:00:00:04 +0000] "GET /q HTTP/1.1" 200 10 "-" "ua" rt=0.042 uct="0.001""#;
        assert_eq!(parse_access_line(kv).unwrap().response_time, Some(42.0));
        // Traefik's common log format: request count, router, server URL, duration in ms.
        let traefik = r#"192.0.2.8 - - [01/Jan/2026:00:00:05 +0000] "GET /t HTTP/1.1" 200 10 "-" "ua" 17 "web@docker" "http://10.0.0.2:80" 12ms"#;
        assert_eq!(
            parse_access_line(traefik).unwrap().response_time,
            Some(12.0)
        );
        // ingress-nginx: request length, then $request_time, then upstream fields.
        let ingress = r#"192.0.2.9 - - [01/Jan/2026:00:00:06 +0000] "GET /i HTTP/1.1" 200 10 "-" "ua" 312 0.004 [default-web-80] [] 10.0.0.3:80 10 0.003 200 3f6c"#;
        assert_eq!(parse_access_line(ingress).unwrap().response_time, Some(4.0));
        // Apache with %D: a bare integer is not taken for a time.
        let apache_d =
            r#"192.0.2.10 - - [01/Jan/2026:00:00:07 +0000] "GET /a HTTP/1.1" 200 10 "-" "ua" 1534"#;
        assert_eq!(parse_access_line(apache_d).unwrap().response_time, None);
        // Common with %D appended: a bare word after the size is no referer; an HTTP/0.9
        // request line has no protocol; a fragment is no part of the query.
        let common_d =
            r#"192.0.2.10 - - [01/Jan/2026:00:00:07 +0000] "GET /a?q=1#top" 200 10 1534"#;
        let e = parse_access_line(common_d).unwrap();
        assert_eq!(
            (e.referrer, e.user_agent, e.protocol, e.query.as_deref()),
            (None, None, None, Some("q=1"))
        );
        // A duration no request takes is not one: two of these made the sum infinite.
        let absurd = r#"192.0.2.11 - - [01/Jan/2026:00:00:08 +0000] "GET /a HTTP/1.1" 200 10 "-" "ua" 1.7e308ms"#;
        assert_eq!(parse_access_line(absurd).unwrap().response_time, None);
    }

    #[test]
    fn reads_lines_behind_a_shippers_prefix_and_other_time_forms() {
        let expected = "2026-11-29T08:00:00.250+00:00";
        for line in [
            // nginx logging to syslog.
            r#"Nov 29 08:00:01 web-1 nginx[812]: 192.0.2.3 - - [29/Nov/2026:08:00:00.250 +0000] "GET /s HTTP/1.1" 200 5 "-" "ua""#,
            // A Kubernetes (CRI) container log line.
            r#"2026-11-29T08:00:01.000000001Z stdout F 192.0.2.3 - - [2026-11-29T08:00:00.250Z] "GET /s HTTP/1.1" 200 5 "-" "ua""#,
            // $time_iso8601 in place of $time_local.
            r#"192.0.2.3 - - [2026-11-29T09:00:00.250+01:00] "GET /s HTTP/1.1" 200 5"#,
        ] {
            let e = parse_access_line(line).unwrap();
            assert_eq!(e.timestamp.to_rfc3339(), expected, "{line}");
            assert_eq!(
                (e.ip.as_deref(), e.endpoint.as_str(), e.source.as_str()),
                (Some("192.0.2.3"), "/s", "access-log"),
                "{line}"
            );
        }
    }

    #[test]
    fn rejects_lines_that_are_not_access_logs() {
        for line in [
            "hello world",
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" abc 12"#,
            r#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 12"#,
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1"#,
            r#"1.2.3.4 - - [01/Jan/2026:00:00:01 +0000]"#,
            r#"- [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 12"#,
            // Found by the fuzzer: a quoted "[" once passed for an empty [time] and panicked.
            r#"1.2.3.4 - - "[" "GET / HTTP/1.1" 200 12"#,
        ] {
            assert!(decode(line.as_bytes(), arrival()).is_err(), "{line}");
        }
    }
}
