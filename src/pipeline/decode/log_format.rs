//! Access-log lines read by a format string, as GoAccess reads them: its specifiers
//! (`%h %^[%d:%t %^] "%r" %s %b "%R" "%u"`) and its names for the usual formats (`COMBINED`,
//! `VCOMBINED`, `COMMON`, `VCOMMON`). The rules are GoAccess 1.7's own, quirks included, so
//! every line GoAccess counts valid for a format is an event here with the same request,
//! status and size, and a migration from GoAccess loses no line:
//!
//! - each specifier's text runs to the next character of the format (past `\`-escaped ones),
//!   trimmed; a format's other characters each skip one character of the line, unchecked;
//! - a line may end (at its newline) after any field: what it has so far is the event;
//! - a host must be an IPv4 or IPv6 address (`[::1]` too), a date and a request are needed;
//! - a status is 100-599; a size that is not a number is 0 (a negative one wraps, as C's
//!   `strtoull` reads it); a referer or user agent may be missing or unterminated;
//! - a request line is a known method (any case, as a prefix), a target, and a known protocol
//!   (`HTTP/1.0`, `HTTP/1.1`, `HTTP/2`, `HTTP/3`); other request lines are kept whole as the
//!   message, with `-` for method and endpoint;
//! - dates and times are read as glibc's `strptime` reads `%d/%b/%Y` and `%H:%M:%S` (a day past
//!   its month's end runs into the next month). The zone GoAccess skips (`%^]` after `%t`) is
//!   applied when it is one; otherwise the time is taken as UTC.
//!
//! One difference: a line that ends before its status (GoAccess counts it, with no status) has
//! status 0, "none logged".

use super::{given, level_for_status, split_target, DecodeError};
use crate::model::LogEvent;
use chrono::{Days, FixedOffset, NaiveDate, NaiveTime, TimeDelta};
use std::net::IpAddr;
use std::str::FromStr;

/// The request methods GoAccess knows, matched as a prefix of the request line in any case.
pub const HTTP_METHODS: [&str; 28] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "TRACE",
    "CONNECT",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "VERSION-CONTROL",
    "REPORT",
    "CHECKOUT",
    "CHECKIN",
    "UNCHECKOUT",
    "MKWORKSPACE",
    "UPDATE",
    "LABEL",
    "MERGE",
    "BASELINE-CONTROL",
    "MKACTIVITY",
    "ORDERPATCH",
];

/// The protocols GoAccess knows, matched as a prefix in any case.
pub const HTTP_PROTOCOLS: [&str; 4] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"];

/// GoAccess's names for the usual formats, and what they stand for.
const NAMED: [(&str, &str); 4] = [
    ("COMBINED", r#"%h %^[%d:%t %^] "%r" %s %b "%R" "%u""#),
    ("VCOMBINED", r#"%v:%^ %h %^[%d:%t %^] "%r" %s %b "%R" "%u""#),
    ("COMMON", r#"%h %^[%d:%t %^] "%r" %s %b"#),
    ("VCOMMON", r#"%v:%^ %h %^[%d:%t %^] "%r" %s %b"#),
];

/// The specifiers read: host, user, virtual host, date, time, request (whole, or method,
/// path, query and protocol), status, size, referer, user agent, time taken (ms, s, µs), and
/// `^` (skip to the next delimiter), `~` (skip spaces); `C`, `k`, `K` and `M` (cache status,
/// TLS cipher and version, MIME type) are read and not kept.
const SPECIFIERS: &str = "hevdtrmUqHsbRuLTD^~CkKM";

/// A log format as GoAccess writes it: a name of [`NAMED`] or a string of specifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    spec: String,
}

/// Why a format string cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogFormatError {
    /// A specifier lakepulse does not read (`%x`, say, or XFF's `~h{...}`).
    #[error("the log format has %{0}, which lakepulse does not read (it reads %h %e %v %d %t %r %m %U %q %H %s %b %R %u %L %T %D %^ %~)")]
    Unsupported(char),
    /// A format without which GoAccess counts no line valid.
    #[error("the log format needs %h, %d and a request (%r or %U): {0:?}")]
    Incomplete(String),
}

impl FromStr for LogFormat {
    type Err = LogFormatError;

    fn from_str(text: &str) -> Result<Self, LogFormatError> {
        let spec = NAMED
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map_or(text, |(_, spec)| spec);
        let mut specifiers = Vec::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let specifier = chars.next().unwrap_or('%');
                    if !SPECIFIERS.contains(specifier) {
                        return Err(LogFormatError::Unsupported(specifier));
                    }
                    specifiers.push(specifier);
                }
                '~' => return Err(LogFormatError::Unsupported('~')),
                _ => {}
            }
        }
        let has = |c| specifiers.contains(&c);
        if !(has('h') && has('d') && (has('r') || has('U'))) {
            return Err(LogFormatError::Incomplete(spec.to_owned()));
        }
        Ok(LogFormat {
            spec: spec.to_owned(),
        })
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.spec)
    }
}

/// What a line gave, field by field.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a str>,
    user: Option<&'a str>,
    vhost: Option<&'a str>,
    date: Option<NaiveDate>,
    time: Option<NaiveTime>,
    zone: Option<FixedOffset>,
    method: Option<&'static str>,
    /// The request target, or a request line that is not one.
    request: Option<&'a str>,
    /// Whether `request` is a target (a path and its query).
    is_target: bool,
    query: Option<&'a str>,
    protocol: Option<&'static str>,
    status: Option<u16>,
    bytes: Option<u64>,
    referrer: Option<&'a str>,
    agent: Option<&'a str>,
    response_ms: Option<f64>,
}

/// Where reading a line is: the line with its newline (GoAccess reads lines with theirs, and
/// a line that ends early ends at it) and the position in it.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// The text up to the `count`-th `delimiter` (unescaped), or to the end if there is none
    /// after an escaped one, trimmed; the cursor stops at the delimiter. None if the line has
    /// no such delimiter at all. No delimiter (the format's last specifier) takes the rest.
    fn token(&mut self, delimiter: Option<u8>, count: usize) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if let Some(d) = delimiter {
            if !bytes[self.at..].contains(&d) {
                return None;
            }
        }
        let mut seen = 0;
        let mut i = self.at;
        loop {
            let byte = bytes.get(i).copied();
            if byte.is_some() && byte == delimiter {
                seen += 1;
            }
            if (byte.is_some() && byte == delimiter && seen == count) || byte.is_none() {
                let token = &self.text[self.at..i.min(bytes.len())];
                self.at = i.min(bytes.len());
                return Some(token.trim_matches(is_c_space));
            }
            if byte == Some(b'\\') {
                i += 1;
            }
            i += 1;
        }
    }
}

/// C's `isspace`.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Why a field failed, as GoAccess says it.
fn invalid(reason: &'static str) -> DecodeError {
    DecodeError::NotAccessLog(reason)
}

impl LogFormat {
    /// Reads one line (without its newline) as GoAccess would with this format.
    pub fn parse_line(&self, line: &str) -> Result<LogEvent, DecodeError> {
        // GoAccess skips empty lines and comments without counting them.
        if line.is_empty() || line.starts_with('#') {
            return Err(DecodeError::Empty);
        }
        let text = format!("{line}\n");
        let fields = self.read(&text)?;
        let (Some(host), Some(date), Some(request)) = (fields.host, fields.date, fields.request)
        else {
            return Err(invalid("no host, date or request"));
        };
        let local = date.and_time(fields.time.unwrap_or_default());
        let timestamp = match fields.zone {
            Some(zone) => (local - zone).and_utc(),
            None => local.and_utc(),
        };
        let status = fields.status.unwrap_or(0);
        let (endpoint, query) = match fields.is_target {
            true => split_target(request),
            false => ("-", None),
        };
        Ok(LogEvent {
            timestamp,
            level: level_for_status(status).to_owned(),
            source: fields.vhost.unwrap_or("access-log").to_owned(),
            method: fields.method.unwrap_or("-").to_owned(),
            endpoint: endpoint.to_owned(),
            status,
            response_time: fields.response_ms,
            user_id: fields.user.and_then(given),
            session_id: None,
            ip: Some(host.to_owned()),
            bytes: fields.bytes.unwrap_or(0),
            message: request_line(&fields, request),
            raw: Some(line.to_owned()),
            user_agent: fields.agent.and_then(given),
            referrer: fields.referrer.and_then(given),
            vhost: fields.vhost.and_then(given),
            protocol: fields.protocol.map(str::to_owned),
            query: fields.query.or(query).map(str::to_owned),
            ..LogEvent::default()
        })
    }

    fn read<'a>(&self, text: &'a str) -> Result<Fields<'a>, DecodeError> {
        let mut fields = Fields::default();
        let mut line = Cursor { text, at: 0 };
        let format = self.spec.as_bytes();
        let mut specifier = false;
        let mut previous = None;
        for (i, &f) in format.iter().enumerate() {
            if f == b'%' {
                specifier = true;
                continue;
            }
            match line.byte() {
                None => return Err(invalid("the line ends inside a field")),
                Some(b'\n') => return Ok(fields),
                Some(_) => {}
            }
            if !specifier {
                // One character (GoAccess skips a byte; a replaced byte is three here).
                line.at += line.text[line.at..]
                    .chars()
                    .next()
                    .map_or(1, char::len_utf8);
                continue;
            }
            specifier = false;
            let delimiter = format.get(i + 1).copied();
            read_field(f, delimiter, previous, &mut line, &mut fields)?;
            previous = Some(f);
        }
        Ok(fields)
    }
}

/// The message of an event: the request line as logged.
fn request_line(fields: &Fields, request: &str) -> String {
    match (fields.method, fields.protocol) {
        (Some(method), Some(protocol)) => format!("{method} {request} {protocol}"),
        (Some(method), None) => format!("{method} {request}"),
        _ => request.to_owned(),
    }
}

/// Reads one specifier's field into `fields`. A field read already is not read again, and
/// takes nothing from the line.
fn read_field<'a>(
    specifier: u8,
    delimiter: Option<u8>,
    previous: Option<u8>,
    line: &mut Cursor<'a>,
    fields: &mut Fields<'a>,
) -> Result<(), DecodeError> {
    let required = |token: Option<&'a str>, what| token.ok_or(invalid(what));
    match specifier {
        b'd' if fields.date.is_none() => {
            let token = required(line.token(delimiter, 1), "no date")?;
            fields.date = Some(strptime_date(token).ok_or(invalid("not a date"))?);
        }
        b't' if fields.time.is_none() => {
            let token = required(line.token(delimiter, 1), "no time")?;
            let (time, leap) = strptime_time(token).ok_or(invalid("not a time"))?;
            // Seconds past 59 run into the next minute, as mktime takes them.
            fields.time = Some(time);
            if leap > 0 {
                if let Some(date) = fields.date {
                    let moved = date.and_time(time) + TimeDelta::seconds(leap);
                    fields.date = Some(moved.date());
                    fields.time = Some(moved.time());
                }
            }
        }
        b'v' if fields.vhost.is_none() => {
            fields.vhost = Some(required(line.token(delimiter, 1), "no virtual host")?);
        }
        b'e' if fields.user.is_none() => {
            fields.user = Some(required(line.token(delimiter, 1), "no user")?);
        }
        b'h' if fields.host.is_none() => {
            let mut delimiter = delimiter;
            if line.byte() == Some(b'[') && line.text.len() > line.at + 1 {
                line.at += 1;
                delimiter = Some(b']');
            }
            let host = required(line.token(delimiter, 1), "no host")?;
            if host.parse::<IpAddr>().is_err() {
                return Err(invalid("the host is not an IP address"));
            }
            fields.host = Some(host);
        }
        b'm' if fields.method.is_none() => {
            let token = required(line.token(delimiter, 1), "no method")?;
            fields.method = Some(known(&HTTP_METHODS, token).ok_or(invalid("not a method"))?);
        }
        b'U' if fields.request.is_none() => {
            let token = line.token(delimiter, 1).filter(|t| !t.is_empty());
            fields.request = Some(required(token, "no request")?);
            fields.is_target = true;
        }
        b'q' if fields.query.is_none() => {
            fields.query = line
                .token(delimiter, 1)
                .map(|q| q.strip_prefix('?').unwrap_or(q))
                .filter(|q| !q.is_empty());
        }
        b'H' if fields.protocol.is_none() => {
            let token = required(line.token(delimiter, 1), "no protocol")?;
            fields.protocol = Some(known(&HTTP_PROTOCOLS, token).ok_or(invalid("not a protocol"))?);
        }
        b'r' if fields.request.is_none() => {
            let token = required(line.token(delimiter, 1), "no request")?;
            read_request(token, fields);
        }
        b's' if fields.status.is_none() => {
            let token = required(line.token(delimiter, 1), "no status")?;
            fields.status = Some(
                c_integer(token)
                    .filter(|s| (100..=599).contains(s))
                    .map(|s| s as u16)
                    .ok_or(invalid("status is not an HTTP status"))?,
            );
        }
        b'b' if fields.bytes.is_none() => {
            let token = required(line.token(delimiter, 1), "no size")?;
            fields.bytes = Some(c_unsigned(token).unwrap_or(0));
        }
        b'R' if fields.referrer.is_none() => {
            fields.referrer = Some(line.token(delimiter, 1).unwrap_or("-"));
        }
        b'u' if fields.agent.is_none() => {
            fields.agent = Some(line.token(delimiter, 1).unwrap_or("-"));
        }
        b'L' | b'T' | b'D' if fields.response_ms.is_none() => {
            let token = required(line.token(delimiter, 1), "no time taken")?;
            let ms = match specifier {
                b'L' => c_unsigned(token).map(|ms| ms as f64),
                b'T' if token.contains('.') => token.parse::<f64>().ok().map(|s| s * 1e3),
                b'T' => c_unsigned(token).map(|s| s as f64 * 1e3),
                _ => c_unsigned(token).map(|us| us as f64 / 1e3),
            };
            fields.response_ms = ms.and_then(super::plausible_response_ms);
        }
        b'C' | b'k' | b'K' | b'M' => {
            required(line.token(delimiter, 1), "a field is missing")?;
        }
        b'~' => {
            let rest = &line.text[line.at..];
            line.at += rest.len() - rest.trim_start_matches(is_c_space).len();
        }
        b'd' | b't' | b'v' | b'e' | b'h' | b'm' | b'U' | b'q' | b'H' | b'r' | b's' | b'b'
        | b'R' | b'u' | b'L' | b'T' | b'D' => {}
        // `%^` and the like: to the next delimiter, if there is one; after the time, what is
        // skipped is the zone.
        _ => {
            let rest = &line.text[line.at..];
            let skipped = match delimiter {
                Some(d) => rest.bytes().position(|b| b == d).map(|at| &rest[..at]),
                None => Some(rest),
            };
            if let Some(skipped) = skipped {
                line.at += skipped.len();
                if previous == Some(b't') {
                    fields.zone = zone(skipped.trim_matches(is_c_space));
                }
            }
        }
    }
    Ok(())
}

/// A request line as GoAccess reads it. One without a known method is kept whole; one with a
/// method but no known protocol after its last space is no request (GoAccess's `-`).
fn read_request<'a>(line: &'a str, fields: &mut Fields<'a>) {
    match split_request(line) {
        Some((method, target, protocol)) => {
            fields.method = Some(method);
            fields.protocol = Some(protocol);
            fields.request = Some(target);
            fields.is_target = true;
        }
        None if known(&HTTP_METHODS, line).is_some() => fields.request = Some("-"),
        None => fields.request = Some(line),
    }
}

/// A request line as GoAccess splits it: a known method (any case, as a prefix), the target
/// up to the last space (trimmed), and a known protocol after it (as a prefix). The character
/// right after the method is skipped, whatever it is (GoAccess skips a byte; a byte that is
/// not UTF-8 is a character of three here).
pub(super) fn split_request(line: &str) -> Option<(&'static str, &str, &'static str)> {
    let method = known(&HTTP_METHODS, line)?;
    let after_method = &line[method.len()..];
    let last_space = after_method.rfind(' ').filter(|&at| at > 0)?;
    let protocol = known(&HTTP_PROTOCOLS, &after_method[last_space + 1..])?;
    let skipped = after_method.chars().next().map_or(1, char::len_utf8);
    let target = after_method
        .get(skipped..last_space)
        .unwrap_or("")
        .trim_matches(is_c_space);
    (!target.is_empty()).then_some((method, target, protocol))
}

/// The entry of `names` that `text` starts with, in any case.
fn known(names: &[&'static str], text: &str) -> Option<&'static str> {
    names.iter().copied().find(|name| {
        text.len() >= name.len()
            && text.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
    })
}

/// A whole token as C's `strtol` reads it: a sign, then digits.
fn c_integer(token: &str) -> Option<i64> {
    token.parse().ok()
}

/// A whole token as C's `strtoull` reads it: a sign, then digits; a negative number wraps.
fn c_unsigned(token: &str) -> Option<u64> {
    let (negative, digits) = match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// A time zone as `+hhmm` or `-hhmm`.
fn zone(text: &str) -> Option<FixedOffset> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// A number as glibc's `strptime` reads one: spaces, then at least one digit and at most
/// `width`, stopping early where another digit would pass `max`; within `min..=max`.
fn strptime_number(text: &mut &str, min: u32, max: u32, width: usize) -> Option<u32> {
    *text = text.trim_start_matches(is_c_space);
    let bytes = text.as_bytes();
    if !bytes.first()?.is_ascii_digit() {
        return None;
    }
    let (mut value, mut read) = (0u32, 0);
    loop {
        value = value * 10 + u32::from(bytes[read] - b'0');
        read += 1;
        let next_is_digit = bytes.get(read).is_some_and(u8::is_ascii_digit);
        if read >= width || value * 10 > max || !next_is_digit {
            break;
        }
    }
    *text = &text[read..];
    (min..=max).contains(&value).then_some(value)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `%d/%b/%Y` as glibc reads it: a month's full name or its first three letters, any case; a
/// day past the month's end runs into the next.
fn strptime_date(token: &str) -> Option<NaiveDate> {
    let mut text = token;
    let day = strptime_number(&mut text, 1, 31, 2)?;
    text = text.strip_prefix('/')?;
    let (month, rest) = MONTHS.iter().enumerate().find_map(|(i, name)| {
        [*name, &name[..3]].into_iter().find_map(|form| {
            let head = text.get(..form.len())?;
            head.eq_ignore_ascii_case(form)
                .then(|| (i as u32 + 1, &text[form.len()..]))
        })
    })?;
    text = rest.strip_prefix('/')?;
    let year = strptime_number(&mut text, 0, 9999, 4)?;
    if !text.is_empty() {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, month, 1)?.checked_add_days(Days::new(u64::from(day - 1)))
}

/// `%H:%M:%S` as glibc reads it, with the seconds past 59 (60 and 61) apart.
fn strptime_time(token: &str) -> Option<(NaiveTime, i64)> {
    let mut text = token;
    let hour = strptime_number(&mut text, 0, 23, 2)?;
    text = text.strip_prefix(':')?;
    let minute = strptime_number(&mut text, 0, 59, 2)?;
    text = text.strip_prefix(':')?;
    let second = strptime_number(&mut text, 0, 61, 2)?;
    if !text.is_empty() {
        return None;
    }
    let leap = i64::from(second.saturating_sub(59));
    Some((NaiveTime::from_hms_opt(hour, minute, second.min(59))?, leap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combined(line: &str) -> Result<LogEvent, DecodeError> {
        "COMBINED".parse::<LogFormat>().unwrap().parse_line(line)
    }

    #[test]
    fn reads_lines_as_goaccess_does() {
        let e = combined(r#"1.2.3.4 - frank [10/Oct/2000:13:55:36 -0700] "GET /a?x=1 HTTP/1.1" 200 2326 "http://r.example/" "Mozilla/4.08 [en]""#).unwrap();
        assert_eq!(e.timestamp.to_rfc3339(), "2000-10-10T20:55:36+00:00");
        assert_eq!(
            (
                e.method.as_str(),
                e.endpoint.as_str(),
                e.query.as_deref(),
                e.status,
                e.bytes
            ),
            ("GET", "/a", Some("x=1"), 200, 2326)
        );
        assert_eq!(e.user_agent.as_deref(), Some("Mozilla/4.08 [en]"));
        assert_eq!(e.protocol.as_deref(), Some("HTTP/1.1"));
        // What GoAccess 1.7 counts valid (each checked with `goaccess --log-format=COMBINED`).
        // A line, and its method, endpoint, status and size.
        type Case<'a> = (&'a str, (&'a str, &'a str, u16, u64));
        let cases: &[Case] = &[
            // Cut short in the user agent, in the referer, or after the size's space.
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "u"#,
                ("GET", "/a", 200, 12),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 ""#,
                ("GET", "/a", 200, 12),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 "#,
                ("GET", "/a", 200, 0),
            ),
            // No status at all.
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1""#,
                ("GET", "/a", 0, 0),
            ),
            // Sizes as strtoull reads them.
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 -12 "-" "ua""#,
                ("GET", "/a", 200, 18_446_744_073_709_551_604),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12x "-" "ua""#,
                ("GET", "/a", 200, 0),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 +12 "-" "ua""#,
                ("GET", "/a", 200, 12),
            ),
            // Methods in any case, spaces around the target, a zone no clock has.
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +9999] "get  /a  HTTP/1.1" 200 12 "-" "ua""#,
                ("GET", "/a", 200, 12),
            ),
            // Request lines that are not METHOD TARGET PROTOCOL.
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a" 200 12 "-" "ua""#,
                ("-", "-", 200, 12),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "FOO /a HTTP/1.1" 200 12 "-" "ua""#,
                ("-", "-", 200, 12),
            ),
            // An IPv6 host in brackets, a user with a space, dates glibc reads.
            (
                r#"[::1] - user name [1/OCTOBER/2000:3:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
                ("GET", "/a", 200, 12),
            ),
            (
                r#"1.2.3.4 - - [31/Feb/2000:13:55:60 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
                ("GET", "/a", 200, 12),
            ),
        ];
        for (line, (method, endpoint, status, bytes)) in cases {
            let e = combined(line).unwrap_or_else(|error| panic!("{line}: {error}"));
            assert_eq!(
                (e.method.as_str(), e.endpoint.as_str(), e.status, e.bytes),
                (*method, *endpoint, *status, *bytes),
                "{line}"
            );
        }
        let february = combined(
            r#"1.2.3.4 - - [31/Feb/2000:23:59:60 +0000] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
        )
        .unwrap();
        assert_eq!(february.timestamp.to_rfc3339(), "2000-03-03T00:00:00+00:00");
    }

    #[test]
    fn refuses_what_goaccess_refuses() {
        for line in [
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 600 12 "-" "ua""#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 2000 12 "-" "ua""#,
            r#"1.2.3.4 - - [32/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            r#"1.2.3.4 - - [10/Foo/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36.250 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            r#"notanip - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTT"#,
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700]"#,
        ] {
            assert!(combined(line).is_err(), "{line}");
        }
        // COMMON's size is the rest of the line: a combined line read as COMMON has size 0.
        let common: LogFormat = "common".parse().unwrap();
        let e = common
            .parse_line(
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "-" "ua""#,
            )
            .unwrap();
        assert_eq!((e.status, e.bytes), (200, 0));
    }

    #[test]
    fn formats_are_named_or_spelled_out() {
        let vhost: LogFormat = "VCOMBINED".parse().unwrap();
        let e = vhost
            .parse_line(r#"shop.example:443 192.0.2.1 - - [01/Jan/2026:00:00:01 +0000] "GET /cart HTTP/2" 301 0 "-" "bot""#)
            .unwrap();
        assert_eq!(
            (e.vhost.as_deref(), e.source.as_str()),
            (Some("shop.example"), "shop.example")
        );
        let nginx: LogFormat = r#"%h - %e [%d:%t %^] "%r" %s %b "%R" "%u" %T"#.parse().unwrap();
        let e = nginx
            .parse_line(r#"192.0.2.1 - bob [01/Jan/2026:00:00:01 +0100] "POST /api HTTP/1.1" 201 5 "-" "curl" 0.250"#)
            .unwrap();
        assert_eq!(
            (e.user_id.as_deref(), e.response_time),
            (Some("bob"), Some(250.0))
        );
        assert_eq!(e.timestamp.to_rfc3339(), "2025-12-31T23:00:01+00:00");
        assert_eq!(
            "%h %x".parse::<LogFormat>(),
            Err(LogFormatError::Unsupported('x'))
        );
        assert!(matches!(
            "%h %d %s".parse::<LogFormat>(),
            Err(LogFormatError::Incomplete(_))
        ));
    }
}
