//! GoAccess as the oracle for access logs: Debian's `goaccess` and lakepulse read the same
//! generated and mutated logs (cut short at any byte, odd quoting, missing fields, odd dates,
//! IPv6, huge fields, bytes that are not UTF-8), and every line GoAccess counts valid is an
//! event with the same method, path, status and size. Compared as GoAccess reports them: the
//! valid lines, the bandwidth, the status classes, and every request's hits and bytes.

use lakepulse::model::LogEvent;
use lakepulse::pipeline::decode::{decode_as, LogFormat, HTTP_METHODS, HTTP_PROTOCOLS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

/// What a report says of a log, as both sides can say it.
#[derive(Debug, Default, PartialEq)]
struct Report {
    valid: u64,
    bandwidth: u64,
    /// Hits by status class (`2` for 2xx).
    classes: BTreeMap<char, u64>,
    /// Hits and bytes by method, protocol and path (query included, percent-decoded).
    requests: BTreeMap<(String, String, String), (u64, u64)>,
    /// Hits and bytes of the requests whose line is not METHOD TARGET PROTOCOL.
    unparsed: (u64, u64),
}

impl Report {
    fn count(&mut self, event: &LogEvent) {
        self.valid += 1;
        self.bandwidth = self.bandwidth.wrapping_add(event.bytes);
        if event.status != 0 {
            *self
                .classes
                .entry(char::from(b'0' + (event.status / 100) as u8))
                .or_default() += 1;
        }
        let known_method = HTTP_METHODS.contains(&event.method.as_str());
        let protocol = event
            .protocol
            .as_deref()
            .filter(|p| HTTP_PROTOCOLS.contains(p));
        let slot = match (known_method, protocol) {
            (true, Some(protocol)) => {
                let target = match &event.query {
                    Some(query) => format!("{}?{query}", event.endpoint),
                    None => event.endpoint.clone(),
                };
                let key = (
                    event.method.clone(),
                    protocol.to_owned(),
                    percent_decoded(&target),
                );
                self.requests.entry(key).or_default()
            }
            _ => &mut self.unparsed,
        };
        slot.0 += 1;
        slot.1 = slot.1.wrapping_add(event.bytes);
    }
}

/// Where two reports differ, briefly: the totals, and the first requests that do.
fn differences(ours: &Report, goaccess: &Report) -> String {
    let mut said = format!(
        "valid {} vs {}, bandwidth {} vs {}, classes {:?} vs {:?}, unparsed {:?} vs {:?}",
        ours.valid,
        goaccess.valid,
        ours.bandwidth,
        goaccess.bandwidth,
        ours.classes,
        goaccess.classes,
        ours.unparsed,
        goaccess.unparsed
    );
    let keys: std::collections::BTreeSet<_> = ours
        .requests
        .keys()
        .chain(goaccess.requests.keys())
        .collect();
    for key in keys
        .into_iter()
        .filter(|key| ours.requests.get(*key) != goaccess.requests.get(*key))
        .take(10)
    {
        said += &format!(
            "\n  {key:?}: lakepulse {:?}, GoAccess {:?}",
            ours.requests.get(key),
            goaccess.requests.get(key)
        );
    }
    said
}

/// A path as GoAccess shows it: `%XX` decoded, trimmed.
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, ..) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// GoAccess's report of `lines` read with `format`, and the lines it refused.
fn goaccess(lines: &[Vec<u8>], format: &str) -> (Report, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut text = Vec::new();
    for line in lines {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    std::fs::write(&log, text).unwrap();
    let (report, invalid) = (
        dir.path().join("report.json"),
        dir.path().join("invalid.log"),
    );
    let run = Command::new("goaccess")
        .arg(&log)
        .arg(format!("--log-format={format}"))
        .args(["--date-format=%d/%b/%Y", "--time-format=%H:%M:%S"])
        .args(["--no-global-config", "--max-items=1000000"])
        .arg(format!("--invalid-requests={}", invalid.display()))
        .arg("-o")
        .arg(&report)
        .output()
        .expect("goaccess runs (Debian's goaccess package; `make test-tools` installs it)");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: Value =
        serde_json::from_str(&String::from_utf8_lossy(&std::fs::read(&report).unwrap())).unwrap();
    let mut said = Report {
        valid: json["general"]["valid_requests"].as_u64().unwrap(),
        bandwidth: json["general"]["bandwidth"].as_u64().unwrap(),
        ..Report::default()
    };
    // By the code each item names (GoAccess files some codes under a class named "Unknown";
    // a code it has no name for is an item named "Unknown" in its class).
    for class in json["status_codes"]["data"].as_array().unwrap() {
        let class_name = class["data"].as_str().unwrap();
        for item in class["items"].as_array().into_iter().flatten() {
            let code = item["data"].as_str().unwrap();
            let digit = match code.as_bytes().first() {
                Some(d) if d.is_ascii_digit() => char::from(*d),
                _ => class_name.chars().next().unwrap(),
            };
            *said.classes.entry(digit).or_default() += item["hits"]["count"].as_u64().unwrap();
        }
    }
    for panel in ["requests", "static_requests", "not_found"] {
        for item in json[panel]["data"].as_array().into_iter().flatten() {
            let (hits, bytes) = (
                item["hits"]["count"].as_u64().unwrap(),
                item["bytes"]["count"].as_u64().unwrap(),
            );
            let slot = match item["method"].as_str() {
                Some("---") | None => &mut said.unparsed,
                Some(method) => said
                    .requests
                    .entry((
                        method.to_owned(),
                        item["protocol"].as_str().unwrap_or("---").to_owned(),
                        item["data"].as_str().unwrap().to_owned(),
                    ))
                    .or_default(),
            };
            slot.0 += hits;
            slot.1 = slot.1.wrapping_add(bytes);
        }
    }
    let refused = std::fs::read(&invalid).unwrap_or_default();
    let refused = refused
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (said, refused)
}

const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "curl/8.5.0",
    r#"Mozilla/5.0 (X11; Linux) \"quoted\" agent"#,
    "-",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];
const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get",
];
const PROTOCOLS: [&str; 5] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3"];
const STATUSES: [u16; 15] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 500, 502, 503, 101, 599,
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One line of `format` (a GoAccess name or [`CUSTOM`]), numbered `n`.
fn line(rng: &mut StdRng, n: usize, format: &str) -> Vec<u8> {
    let host = match rng.random_range(0..10) {
        0 => "2001:db8::7".to_owned(),
        1 => "[2001:db8::8]".to_owned(),
        _ => format!(
            "198.51.{}.{}",
            rng.random_range(0..256),
            rng.random_range(1..255)
        ),
    };
    let user = ["-", "frank", "-", "-"][rng.random_range(0..4)];
    let time = format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} {}",
        rng.random_range(1..29),
        MONTHS[rng.random_range(0..12)],
        rng.random_range(2020..2027),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        ["+0000", "-0700", "+0530"][rng.random_range(0..3)]
    );
    let query = match rng.random_range(0..4) {
        0 => format!("?q={}&page=%32", rng.random_range(0..9)),
        1 => "?a%20b=c+d".to_owned(),
        _ => String::new(),
    };
    let request = format!(
        "{} /l/{n}/{}{query} {}",
        METHODS[rng.random_range(0..METHODS.len())],
        [
            "index.html",
            "api/items",
            "static/app.js",
            "a%20b",
            "img/logo.png"
        ][rng.random_range(0..5)],
        PROTOCOLS[rng.random_range(0..PROTOCOLS.len())]
    );
    let status = STATUSES[rng.random_range(0..STATUSES.len())];
    let bytes = match rng.random_range(0..6) {
        0 => "-".to_owned(),
        _ => rng.random_range(0..100_000).to_string(),
    };
    let referer = [
        "-",
        "https://www.example.com/start",
        "http://www.google.com/search?q=x",
    ][rng.random_range(0..3)];
    let agent = AGENTS[rng.random_range(0..AGENTS.len())];
    let vhost = format!("shop{}.example:443", rng.random_range(0..3));
    let text = match format {
        "COMBINED" => format!(
            r#"{host} - {user} [{time}] "{request}" {status} {bytes} "{referer}" "{agent}""#
        ),
        "VCOMBINED" => format!(
            r#"{vhost} {host} - {user} [{time}] "{request}" {status} {bytes} "{referer}" "{agent}""#
        ),
        "COMMON" => format!(r#"{host} - {user} [{time}] "{request}" {status} {bytes}"#),
        _ => format!(
            r#"{host} - {user} [{time}] "{request}" {status} {bytes} "{referer}" "{agent}" {}.{:03}"#,
            rng.random_range(0..3),
            rng.random_range(0..1000)
        ),
    };
    text.into_bytes()
}

/// The line, changed the ways real logs and hostile clients change lines.
fn mutated(rng: &mut StdRng, mut line: Vec<u8>) -> Vec<u8> {
    let at = |rng: &mut StdRng, line: &[u8]| rng.random_range(0..line.len().max(1));
    let replace = |line: &[u8], from: &str, to: &str| -> Vec<u8> {
        String::from_utf8_lossy(line)
            .replacen(from, to, 1)
            .into_bytes()
    };
    match rng.random_range(0..16) {
        // Cut short at any byte (not to nothing: an empty line is no line).
        0..=2 => line.truncate(rng.random_range(1..line.len())),
        3 => {
            let spaces: Vec<usize> = (0..line.len()).filter(|&i| line[i] == b' ').collect();
            if let Some(&space) = spaces.get(rng.random_range(0..spaces.len().max(1))) {
                line.insert(space, b' ');
            }
        }
        4 => {
            if let Some(quote) = line.iter().position(|b| *b == b'"') {
                line.remove(quote);
            }
        }
        5 => {
            let i = at(rng, &line);
            line.insert(i, b'"');
        }
        6 => {
            let odd = [
                "32/Oct/2020",
                "31/Feb/2021",
                "10/Foo/2022",
                "1/OCTOBER/2023",
                "10/oct/2024",
            ][rng.random_range(0..5)];
            let start = line.iter().position(|b| *b == b'[').unwrap_or(0) + 1;
            let end = line[start..]
                .iter()
                .position(|b| *b == b':')
                .map_or(start, |e| start + e);
            line.splice(start..end, odd.bytes());
        }
        7 => {
            let zone = [" +9999", "", ".250 +0000", " +0100 junk"][rng.random_range(0..4)];
            if let Some(close) = line.iter().position(|b| *b == b']') {
                let open = line[..close]
                    .iter()
                    .rposition(|b| *b == b' ')
                    .unwrap_or(close);
                line.splice(open..close, zone.bytes());
            }
        }
        8 => {
            let agent = "A".repeat(100_000);
            line = replace(&line, "curl/8.5.0", &agent);
        }
        9 => {
            let i = at(rng, &line);
            line.splice(i..i, [0xff, 0xfe, 0xe9]);
        }
        10 => {
            let status = ["abc", "99", "600", "2000", "-", "+200", "200x"][rng.random_range(0..7)];
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(after) = text.find("\" ") {
                let start = after + 2;
                let end = text[start..].find(' ').map_or(text.len(), |e| start + e);
                line = format!("{}{status}{}", &text[..start], &text[end..]).into_bytes();
            }
        }
        11 => {
            let size =
                ["-", "12x", "-5", "+7", "99999999999999999999999", ""][rng.random_range(0..6)];
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(after) = text.find("\" ") {
                let status_end = text[after + 2..].find(' ').map(|e| after + 2 + e + 1);
                if let Some(start) = status_end {
                    let end = text[start..].find(' ').map_or(text.len(), |e| start + e);
                    line = format!("{}{size}{}", &text[..start], &text[end..]).into_bytes();
                }
            }
        }
        12 => line = replace(&line, " ", "\t"),
        13 => {
            let request = [
                ("GET ", "FOO "),
                (" HTTP/", " junk HTTP/"),
                (" HTTP/1.1", ""),
                ("HTTP/", "http/"),
            ][rng.random_range(0..4)];
            line = replace(&line, request.0, request.1);
        }
        14 => line.extend_from_slice(br#" extra "stuff" 0.5"#),
        _ => line = replace(&line, "198.51.", "notanip."),
    }
    line
}

/// Custom formats as nginx users write them for GoAccess: combined with `$request_time`.
const CUSTOM: &str = r#"%h %^[%d:%t %^] "%r" %s %b "%R" "%u" %T"#;

/// lakepulse's report of the lines GoAccess counted valid, read with `format` (None: as
/// lakepulse reads lines with no format named).
fn lakepulse(lines: &[Vec<u8>], refused: &[Vec<u8>], format: Option<&LogFormat>) -> Report {
    let mut unmatched: BTreeMap<&[u8], usize> = BTreeMap::new();
    for line in refused {
        *unmatched.entry(line.as_slice()).or_default() += 1;
    }
    let mut report = Report::default();
    let arrival = chrono::Utc::now();
    for line in lines {
        if let Some(left) = unmatched.get_mut(line.as_slice()).filter(|left| **left > 0) {
            *left -= 1;
            continue;
        }
        match decode_as(line, arrival, format) {
            Ok(event) => report.count(&event),
            Err(error) => panic!(
                "GoAccess counts this line valid; lakepulse ({}) refused it: {error}\n{}",
                format.map_or("no format named".to_owned(), ToString::to_string),
                String::from_utf8_lossy(line)
            ),
        }
    }
    report
}

#[test]
fn every_line_goaccess_counts_valid_is_an_event_with_the_same_request_status_and_size() {
    let mut rng = StdRng::seed_from_u64(1729);
    for format in ["COMBINED", "VCOMBINED", "COMMON", CUSTOM] {
        let lines: Vec<Vec<u8>> = (0..3_000)
            .map(|n| {
                let line = line(&mut rng, n, format);
                match rng.random_bool(0.5) {
                    true => mutated(&mut rng, line),
                    false => line,
                }
            })
            .collect();
        let (said, refused) = goaccess(&lines, format);
        assert!(
            said.valid > 1_000,
            "{format}: GoAccess counted {} valid",
            said.valid
        );
        assert!(
            refused.len() > 100,
            "{format}: the mutations reach GoAccess's refusals"
        );
        let named: LogFormat = format.parse().unwrap();
        let read = lakepulse(&lines, &refused, Some(&named));
        assert!(
            read == said,
            "{format}, named: {}",
            differences(&read, &said)
        );
        // With no format named, the usual ones are recognised: every line is read, with the
        // same status and request wherever GoAccess reads the request line. (Sizes follow a
        // named format: GoAccess's COMMON reads `12 "-" "agent"` as a size of 0.)
        if format != CUSTOM {
            let seen = lakepulse(&lines, &refused, None);
            let hits = |report: &Report| -> BTreeMap<(String, String, String), u64> {
                report
                    .requests
                    .iter()
                    .map(|(key, (hits, _))| (key.clone(), *hits))
                    .collect()
            };
            assert_eq!(
                (seen.valid, &seen.classes, hits(&seen)),
                (said.valid, &said.classes, hits(&said)),
                "{format}, recognised"
            );
        }
    }
}
