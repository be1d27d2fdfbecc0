//! Decode + aggregate a combined-format access log: lakepulse's parser and live metrics
//! against GoAccess on the same file; then the same for JSON events as `lakepulse gen` writes
//! them (no baseline: GoAccess reads no JSON). `make bench` runs it; it prints table rows.
//!
//! Two logs (1 000 000 lines each by default, `BENCH_LINES` to change) are generated once under
//! the target directory. The headline one has a real site's shape: a few thousand clients a
//! day (IPv4 and IPv6), each with its own real browser or bot user agent, visiting in sessions
//! (a page from a search engine, a link or nowhere, its assets, more pages with the previous
//! page as referer), mostly 200s and 304s with some 301, 404 and 5xx. The second gives almost
//! every line a new client and is labelled so: it makes GoAccess's visitor tables huge, which
//! measures that more than parsing. Both have paths with query strings, `-` sizes and user
//! agents with quotes, as real servers write them.

use chrono::{Duration, TimeZone, Utc};
use lakepulse::model::Window;
use lakepulse::pipeline::decode::decode;
use lakepulse::pipeline::metrics::LiveMetrics;
use lakepulse::tools::gen::Traffic;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A small linear congruential generator: the same files every time, no dependency. Returns
/// a number below its argument.
fn generator() -> impl FnMut(u64) -> u64 {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    }
}

/// Real user agents as access logs show them, browsers first and bots after.
const USER_AGENTS: [&str; 14] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

/// Where a session's first page came from.
const REFERERS: [&str; 6] = [
    "-",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/x7Yq2LkP",
    "https://news.ycombinator.com/item?id=42424242",
];

const PAGES: [&str; 10] = [
    "/",
    "/products",
    "/products/42",
    "/products/7?color=red&size=m",
    "/search?q=red+shoes",
    "/cart",
    "/checkout",
    "/blog/2026/11/new-season",
    "/about",
    "/login",
];

const ASSETS: [&str; 5] = [
    "/static/app.3f9a.js",
    "/static/app.3f9a.css",
    "/static/logo.svg",
    "/images/products/42.webp",
    "/favicon.ico",
];

/// An access log with a real site's shape (see the file's header).
fn write_realistic_log(path: &Path, lines: usize) -> std::io::Result<()> {
    const CLIENTS: u64 = 3_000;
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut next = generator();
    // Each client keeps its address and its user agent; a few bots ask for many pages.
    let clients: Vec<(String, &str)> = (0..CLIENTS)
        .map(|_| {
            let ip = if next(10) == 0 {
                format!("2001:db8:{:x}::{:x}", next(65_535), next(65_535))
            } else {
                format!(
                    "{}.{}.{}.{}",
                    1 + next(222),
                    next(256),
                    next(256),
                    1 + next(254)
                )
            };
            let agent = match next(100) {
                0..=84 => USER_AGENTS[next(9) as usize],
                85..=94 => USER_AGENTS[9 + next(3) as usize],
                _ => USER_AGENTS[12 + next(2) as usize],
            };
            (ip, agent)
        })
        .collect();
    // A day's traffic: the lines spread over 24 hours.
    let mut time = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let step = 2 * 86_400_000 / lines.max(1) as u64;
    let mut written = 0;
    while written < lines {
        // Some clients come back far more often than others.
        let regulars = next(CLIENTS) + 1;
        let (ip, agent) = &clients[next(regulars) as usize];
        let mut referer = REFERERS[next(REFERERS.len() as u64) as usize].to_owned();
        for _ in 0..1 + next(8) {
            let page = PAGES[next(PAGES.len() as u64) as usize];
            let status = match next(100) {
                0..=89 => 200,
                90..=93 => 301,
                94..=97 => 404,
                98 => 500,
                _ => 503,
            };
            let mut requests = vec![("GET", page.to_owned(), status, referer.clone())];
            if page == "/checkout" || page == "/login" {
                requests.push((
                    "POST",
                    page.to_owned(),
                    302,
                    format!("https://shop.example.com{page}"),
                ));
            }
            for asset in ASSETS.iter().take(next(ASSETS.len() as u64 + 1) as usize) {
                let status = if next(3) == 0 { 304 } else { 200 };
                requests.push((
                    "GET",
                    asset.to_string(),
                    status,
                    format!("https://shop.example.com{page}"),
                ));
            }
            for (method, path, status, from) in requests {
                time += Duration::milliseconds(next(step) as i64);
                let size = match status {
                    304 | 302 => "-".to_owned(),
                    _ => (200 + next(60_000)).to_string(),
                };
                writeln!(
                    out,
                    r#"{ip} - - [{}] "{method} {path} HTTP/1.1" {status} {size} "{from}" "{agent}""#,
                    time.format("%d/%b/%Y:%H:%M:%S %z")
                )?;
                written += 1;
            }
            referer = format!("https://shop.example.com{page}");
        }
    }
    out.flush()
}

/// An access log in which almost every line has a new client (see the file's header).
fn write_log(path: &Path, lines: usize) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let paths = [
        "/",
        "/api/products",
        "/api/products/42?ref=home",
        "/static/app.js",
        "/api/search?q=red+shoes",
        "/api/cart",
        "/login",
        "/health",
    ];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "curl/8.5.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) \\\"quoted\\\" Mobile/15E148",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ];
    let mut next = generator();
    for i in 0..lines {
        let time = (start + Duration::milliseconds(i as i64 * 7)).format("%d/%b/%Y:%H:%M:%S %z");
        let ip = if next(10) == 0 {
            format!("2001:db8::{:x}", next(65_535))
        } else {
            format!(
                "{}.{}.{}.{}",
                10 + next(200),
                next(256),
                next(256),
                1 + next(254)
            )
        };
        let status = [200, 200, 200, 200, 304, 301, 404, 500, 503, 201][next(10) as usize];
        let size = if status == 304 {
            "-".to_owned()
        } else {
            next(50_000).to_string()
        };
        let method = if next(5) == 0 { "POST" } else { "GET" };
        let referer = if next(3) == 0 {
            "-"
        } else {
            "https://shop.example.com/"
        };
        writeln!(
            out,
            r#"{ip} - - [{time}] "{method} {} HTTP/1.1" {status} {size} "{referer}" "{}""#,
            paths[next(paths.len() as u64) as usize],
            agents[next(agents.len() as u64) as usize]
        )?;
    }
    out.flush()
}

fn write_events(path: &Path, events: usize) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut traffic = Traffic::new();
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    for i in 0..events {
        let event = traffic.steady_event(start + Duration::milliseconds(i as i64 * 7));
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn lakepulse(path: &Path) -> (u64, f64) {
    let started = Instant::now();
    let mut metrics = LiveMetrics::default();
    let (mut lines, now) = (0u64, Instant::now());
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    for line in reader.split(b'\n') {
        let line = line.unwrap();
        lines += 1;
        match decode(&line, Utc::now()) {
            Ok(event) => metrics.record(&event, now),
            Err(error) => metrics.record_malformed(error.reason()),
        }
    }
    let snapshot = metrics.snapshot(now, Utc::now(), Window::SinceStart);
    assert_eq!(snapshot.total_requests, lines, "every line is a request");
    (lines, started.elapsed().as_secs_f64())
}

fn goaccess(path: &Path) -> Option<f64> {
    let started = Instant::now();
    let out = std::env::temp_dir().join("lakepulse-bench-goaccess.json");
    let status = Command::new("goaccess")
        .arg(path)
        .args(["--log-format=COMBINED", "--no-global-config", "-o"])
        .arg(&out)
        .status()
        .ok()?;
    status.success().then(|| started.elapsed().as_secs_f64())
}

/// Writes a generated access log of so many lines to a file.
type LogWriter = fn(&Path, usize) -> std::io::Result<()>;

/// Decode and aggregate on one core at the rate a byte-level parser can reach (issue 13).
const TARGET_LINES_PER_SECOND: u64 = 2_000_000;

fn main() {
    let lines: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    let logs: [(&str, &str, LogWriter); 2] = [
        (
            "realistic",
            "a real site's shape: 3 000 clients, sessions",
            write_realistic_log,
        ),
        ("new-clients", "almost every line a new client", write_log),
    ];
    for (name, shape, write) in logs {
        let path = dir.join(format!("bench-access-{name}-{lines}.log"));
        if !path.exists() {
            write(&path, lines).expect("write the bench log");
        }
        let (parsed, ours) = lakepulse(&path);
        let rate = |secs: f64| parsed as f64 / secs;
        println!(
            "| decode + aggregate | lakepulse, {parsed} combined lines, {shape} | {ours:.2} s, {:.0} lines/s | target {TARGET_LINES_PER_SECOND} lines/s ({:.2}x of it) |",
            rate(ours),
            rate(ours) / TARGET_LINES_PER_SECOND as f64
        );
        match goaccess(&path) {
            Some(theirs) => println!(
                "| decode + aggregate | GoAccess, same file | {theirs:.2} s, {:.0} lines/s | lakepulse {:.1}x faster |",
                rate(theirs),
                theirs / ours
            ),
            None => println!("| decode + aggregate | GoAccess | not run: `goaccess` missing (apt-get install goaccess) | |"),
        }
    }

    let path = dir.join(format!("bench-events-{lines}.jsonl"));
    if !path.exists() {
        write_events(&path, lines).expect("write the bench events");
    }
    let (parsed, ours) = lakepulse(&path);
    println!(
        "| decode + aggregate | lakepulse, {parsed} JSON events (`gen`) | {ours:.2} s, {:.0} events/s | GoAccess reads no JSON events; the access-log rows above are the comparison |",
        parsed as f64 / ours
    );
}
