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

/// GoAccess's JSON report of `lines` read with `format`, and the lines it refused.
fn goaccess_json(lines: &[Vec<u8>], format: &str) -> (Value, Vec<Vec<u8>>) {
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
    let refused = std::fs::read(&invalid).unwrap_or_default();
    let refused = refused
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (json, refused)
}

/// GoAccess's report of `lines` read with `format`, and the lines it refused.
fn goaccess(lines: &[Vec<u8>], format: &str) -> (Report, Vec<Vec<u8>>) {
    let (json, refused) = goaccess_json(lines, format);
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

/// A day and a half of a small site's traffic in COMBINED format, UTC, ending four hours
/// ago: eight clients with four agents (a browser, a phone, a crawler, none), scanners' 404s
/// and 403s, static files, referrers of every kind. At most 96 visitors (8 x 4 x 3 days).
fn site_log(rng: &mut StdRng, lines: usize) -> Vec<Vec<u8>> {
    let start = (chrono::Utc::now() - chrono::Duration::hours(40)).timestamp();
    let agents = [
        AGENTS[0],
        AGENTS[3],
        AGENTS[4],
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    ];
    let clients: Vec<String> = (1..=8)
        .map(|n| match n % 4 {
            0 => format!("2001:db8::{n:x}"),
            _ => format!("203.0.113.{n}"),
        })
        .collect();
    (0..lines)
        .map(|i| {
            let at =
                chrono::DateTime::from_timestamp(start + (i as i64) * 36 * 3600 / lines as i64, 0)
                    .unwrap()
                    .format("%d/%b/%Y:%H:%M:%S +0000");
            let (path, status) = match rng.random_range(0..10) {
                0 => ("/wp-login.php", 404),
                1 => ("/missing/page", 404),
                2 => ("/admin", 403),
                3 => ("/app.js", 200),
                4 => ("/img/Logo.PNG", 304),
                5 => ("/api/items", 500),
                _ => (["/", "/products/7", "/cart"][rng.random_range(0..3)], 200),
            };
            let referrer = [
                "-",
                "https://www.google.com/search?q=shoes",
                "http://shop.example/cart",
                "android-app://com.google.android.gm/",
                "https://news.example",
                "/relative/page",
            ][rng.random_range(0..6)];
            format!(
                r#"{} - - [{at}] "GET {path} HTTP/1.1" {status} {} "{referrer}" "{}""#,
                clients[rng.random_range(0..clients.len())],
                rng.random_range(100..5000),
                agents[rng.random_range(0..agents.len())],
            )
            .into_bytes()
        })
        .collect()
}

/// Hits by key of one of GoAccess's panels.
fn goaccess_panel(json: &Value, panel: &str) -> BTreeMap<String, u64> {
    json[panel]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("GoAccess reports no {panel} panel"))
        .iter()
        .map(|item| {
            (
                item["data"].as_str().unwrap().to_owned(),
                item["hits"]["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Hits by key of lakepulse's live report, or of its SQL's answer.
fn keyed_hits<'a>(rows: impl IntoIterator<Item = (&'a Value, &'a Value)>) -> BTreeMap<String, u64> {
    rows.into_iter()
        .map(|(key, hits)| (key.as_str().unwrap().to_owned(), hits.as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn visitors_not_found_and_referring_sites_agree_with_goaccess_live_and_in_sql() {
    use super::harness::*;
    use lakepulse::visits::{visitors_sql, Panel, Range};
    let mut rng = StdRng::seed_from_u64(404);
    let lines = site_log(&mut rng, 600);
    let (json, refused) = goaccess_json(&lines, "COMBINED");
    assert!(refused.is_empty(), "GoAccess reads every line");
    let visitors = json["general"]["unique_visitors"].as_u64().unwrap();
    let not_found = goaccess_panel(&json, "not_found");
    let sites = goaccess_panel(&json, "referring_sites");
    assert!(
        (30..=128).contains(&visitors) && not_found.len() == 2 && sites.len() == 4,
        "the log exercises every rule, and stays where the live count is exact: {visitors} visitors, {not_found:?}, {sites:?}"
    );

    let (server, client) = Server::ready(&[]).await;
    let log = server.data_dir.path().join("site.log");
    std::fs::write(&log, lines.join(&b'\n')).unwrap();
    let replay = replay_combined(&server, &log);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let total = lines.len() as u64;

    let live = eventually(
        std::time::Duration::from_secs(60),
        "every line in the live report",
        &server,
        || async {
            let report = get_json(&client, &server.url("/api/visits?window=all")).await?;
            let hits: u64 = report["panels"]
                .as_array()?
                .iter()
                .find(|p| p["panel"] == "hour_of_day")?["hits"]
                .as_u64()?;
            (hits == total).then_some(report)
        },
    )
    .await;
    let live_panel = |id: &str| {
        let panel = live["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["panel"] == id)
            .unwrap();
        keyed_hits(
            panel["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (&r["key"], &r["hits"])),
        )
    };
    assert_eq!(
        live["visitors"].as_u64(),
        Some(visitors),
        "live unique visitors"
    );
    assert_eq!(live_panel("not_found"), not_found, "live not found");
    assert_eq!(live_panel("referring_sites"), sites, "live referring sites");

    eventually(
        std::time::Duration::from_secs(60),
        "every line in the lake",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0].as_u64()? == total).then_some(())
        },
    )
    .await;
    let everything = Range::default();
    let (status, per_day) = sql(&client, &server, &visitors_sql(&everything)).await;
    assert_eq!(status, 200, "{per_day}");
    let in_sql: u64 = per_day["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[2].as_u64().unwrap())
        .sum();
    assert_eq!(in_sql, visitors, "unique visitors in SQL: {per_day}");
    for (panel, goaccess) in [
        (Panel::NotFound, &not_found),
        (Panel::ReferringSites, &sites),
    ] {
        let (status, answer) = sql(&client, &server, &panel.sql(&everything)).await;
        assert_eq!(status, 200, "{answer}");
        let rows = answer["rows"].as_array().unwrap();
        assert_eq!(
            &keyed_hits(rows.iter().map(|r| (&r[0], &r[1]))),
            goaccess,
            "{panel:?} in SQL"
        );
    }
    // The panels' other SQL runs too (a combined log names no virtual host), and a range
    // keeps to its hours.
    for panel in Panel::ALL {
        let (status, answer) = sql(&client, &server, &panel.sql(&everything)).await;
        let rows = answer["rows"].as_array().map_or(0, Vec::len);
        assert!(
            status == 200 && (rows > 0) == (panel != Panel::VirtualHosts),
            "{panel:?}: {answer}"
        );
    }
    let recent = Range {
        from: Some(chrono::Utc::now() - chrono::Duration::hours(10)),
        to: None,
    };
    let (_, answer) = sql(&client, &server, &Panel::HourOfDay.sql(&recent)).await;
    let hits: u64 = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .sum();
    assert!(
        hits > 0 && hits < total,
        "the last 6 of 36 hours: {hits} of {total}"
    );
}
