//! Decode + aggregate a combined-format access log: lakepulse's parser and live metrics
//! against GoAccess on the same file; then the same for JSON events as `lakepulse gen` writes
//! them (no baseline: GoAccess reads no JSON). `make bench` runs it; it prints table rows.
//!
//! The log (1 000 000 lines by default, `BENCH_LINES` to change) is generated once under the
//! target directory: many clients (IPv4 and IPv6), paths with query strings, every status
//! class, `-` sizes, referers and user agents with quotes, as real servers write them.

use chrono::{Duration, TimeZone, Utc};
use lakepulse::model::Window;
use lakepulse::pipeline::decode::decode;
use lakepulse::pipeline::metrics::LiveMetrics;
use lakepulse::tools::gen::Traffic;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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
    // A small linear congruential generator: the same file every time, no dependency.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
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

fn main() {
    let lines: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    let path = dir.join(format!("bench-access-{lines}.log"));
    if !path.exists() {
        write_log(&path, lines).expect("write the bench log");
    }
    let (parsed, ours) = lakepulse(&path);
    let rate = |secs: f64| parsed as f64 / secs;
    println!(
        "| decode + aggregate | lakepulse, {parsed} combined lines | {ours:.2} s, {:.0} lines/s | |",
        rate(ours)
    );
    match goaccess(&path) {
        Some(theirs) => println!(
            "| decode + aggregate | GoAccess, same file | {theirs:.2} s, {:.0} lines/s | lakepulse {:.1}x faster |",
            rate(theirs),
            theirs / ours
        ),
        None => println!("| decode + aggregate | GoAccess | not run: `goaccess` missing (apt-get install goaccess) | |"),
    }

    let path = dir.join(format!("bench-events-{lines}.jsonl"));
    if !path.exists() {
        write_events(&path, lines).expect("write the bench events");
    }
    let (parsed, ours) = lakepulse(&path);
    println!(
        "| decode + aggregate | lakepulse, {parsed} JSON events (`gen`) | {ours:.2} s, {:.0} events/s | |",
        parsed as f64 / ours
    );
}
