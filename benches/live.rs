//! The live path measured on the release binary with its embedded broker, as `make run` starts
//! it: the page (time to first byte, weight), produce → SSE and produce → SQL latency at fixed
//! rates, and SSE fan-out to thousands of clients. `make bench` runs it; it prints table rows.
//!
//! Events come from `lakepulse gen --steady`, which stamps each event with the moment it is
//! due to be sent, so "now − timestamp" on arrival is the produce → delivery latency. The load
//! clients run on the same 2 cores as the server: every figure includes that contention.

use futures::StreamExt;
use hdrhistogram::Histogram;
use lakepulse::pipeline::broker;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/integration/harness.rs"]
mod harness;

use harness::{free_port, start_tansu, Server, Tansu};

#[path = "common/questions.rs"]
mod questions;

const LAKEPULSE: &str = env!("CARGO_BIN_EXE_lakepulse");
/// How long each measured run produces events.
const RUN: Duration = Duration::from_secs(15);

/// `lakepulse serve`'s default commit interval (the test harness sets a shorter one).
const DEFAULT_COMMIT_MS: &str = "500";

/// lakepulse as `make run` starts it (the default commit interval), quiet but for warnings.
async fn start(env: &[(&str, &str)]) -> Server {
    let mut settings = vec![
        ("RUST_LOG", "warn"),
        ("COMMIT_INTERVAL_MS", DEFAULT_COMMIT_MS),
    ];
    settings.extend_from_slice(env);
    Server::ready(&settings).await.0
}

/// Rows in the Delta table, as the server reports them.
async fn rows_committed(http: &reqwest::Client, server: &Server) -> u64 {
    harness::get_json(http, &server.url("/health"))
        .await
        .and_then(|h| h["lake"]["rowsCommitted"].as_u64())
        .unwrap_or(0)
}

/// Produces `rate` events/s for `RUN` with `lakepulse gen` into `brokers`, as a separate process.
fn generate(brokers: &str, rate: u64) -> Child {
    Command::new(LAKEPULSE)
        .args(["gen", "--steady", "--rate", &rate.to_string()])
        .args(["--duration", &RUN.as_secs().to_string()])
        .env("KAFKA_BROKERS", brokers)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start gen")
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, quantile: f64) -> String {
    if h.is_empty() {
        return "-".to_owned();
    }
    format!("{} ms", h.value_at_quantile(quantile))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Reads an SSE stream (inflating it if gzip), counts the events of its `log` batches and
/// records now − timestamp of each.
async fn timed_events(
    response: reqwest::Response,
    latencies: Arc<Mutex<Histogram<u64>>>,
    delivered: Arc<AtomicU64>,
) {
    let mut messages = harness::SseMessages::new(response);
    while let Some((batch, _)) = messages.next_log_batch().await {
        let arrived = now_micros();
        delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut latencies = latencies.lock().unwrap();
        for event in batch {
            let sent = event["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let Some(sent) = sent {
                let ms = (arrived - sent.timestamp_micros()) / 1000;
                let _ = latencies.record(ms.max(1) as u64);
            }
        }
    }
}

/// The newest event time SQL sees, in microseconds.
async fn newest_in_sql(http: &reqwest::Client, server: &Server) -> Option<i64> {
    let newest = "SELECT arrow_cast(max(timestamp), 'Int64') FROM logs";
    harness::first_row(http, &server.url("/api/query"), newest)
        .await?
        .first()?
        .as_i64()
}

async fn page(http: &reqwest::Client, server: &Server) {
    let mut ttfb = histogram();
    for i in 0..220 {
        let started = Instant::now();
        let response = http.get(server.url("/")).send().await.expect("GET /");
        let elapsed = started.elapsed();
        let html = response.bytes().await.expect("the page");
        // The first 20 warm the server up.
        if i >= 20 {
            let _ = ttfb.record(elapsed.as_micros().max(1) as u64);
        }
        assert!(html.len() > 1000);
    }
    println!(
        "| page | time to first byte of `/`, warm, 200 requests | p50 {:.2} ms, p99 {:.2} ms | |",
        ttfb.value_at_quantile(0.5) as f64 / 1000.0,
        ttfb.value_at_quantile(0.99) as f64 / 1000.0
    );
    let html = http
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&html).unwrap();
    let html_gzip = gzip.finish().unwrap().len();
    println!(
        "| page | `/` HTML | {:.1} KiB raw, {:.1} KiB gzip | |",
        html.len() as f64 / 1024.0,
        html_gzip as f64 / 1024.0
    );
    // The bundle's files as `make site` compressed them ahead of time.
    let site =
        PathBuf::from(std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into()));
    let bundle = std::fs::read_to_string(site.join("bundle.txt")).expect("a built site");
    let size = |path: String| std::fs::metadata(path).map_or(0, |m| m.len());
    let mut first_visit = html_gzip as u64;
    for suffix in ["_bg.wasm", ".js", ".css", ".echarts.js"] {
        let file = format!("{}/pkg/{}{suffix}", site.display(), bundle.trim());
        let (raw, br, gz) = (
            size(file.clone()),
            size(format!("{file}.br")),
            size(format!("{file}.gz")),
        );
        first_visit += br;
        println!(
            "| page | `pkg/lakepulse.HASH{suffix}` | {:.1} KiB raw, {:.1} KiB Brotli, {:.1} KiB gzip | |",
            raw as f64 / 1024.0,
            br as f64 / 1024.0,
            gz as f64 / 1024.0
        );
    }
    println!(
        "| page | first visit on the wire (`/` gzip, the bundle Brotli) | {:.0} KB | target 700 KB; 2 700 KB before (no precompression, full ECharts) |",
        first_visit as f64 / 1000.0
    );
}

/// Produce → SSE and produce → SQL at `rate` on `server`, reading from `brokers`.
async fn latency(http: &reqwest::Client, server: &Server, brokers: &str, rate: u64, setup: &str) {
    let sse = Arc::new(Mutex::new(histogram()));
    let delivered = Arc::new(AtomicU64::new(0));
    let response = http.get(server.url("/events")).send().await.expect("SSE");
    let reader = tokio::spawn(timed_events(response, sse.clone(), delivered.clone()));

    let mut sql = histogram();
    let mut visible = newest_in_sql(http, server).await.unwrap_or(now_micros());
    let step = 1_000_000 / rate as i64;
    let mut gen = generate(brokers, rate);
    let started = Instant::now();
    // Poll until the last event is visible; each newly visible event waited from its own
    // timestamp (gen spaces them evenly) to this poll.
    let mut last_seen = Instant::now();
    while started.elapsed() < RUN || last_seen.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(newest) = newest_in_sql(http, server).await else {
            continue;
        };
        let polled = now_micros();
        if newest > visible {
            let mut at = visible + step;
            while at <= newest {
                let _ = sql.record(((polled - at) / 1000).max(1) as u64);
                at += step;
            }
            visible = newest;
            last_seen = Instant::now();
        }
    }
    let _ = gen.wait();
    reader.abort();
    let sse = sse.lock().unwrap();
    let produced = rate * RUN.as_secs();
    println!(
        "| produce → SSE at {rate} ev/s | one client on `/events`, {setup}, {} of {produced} events delivered | p50 {}, p95 {}, p99 {} | target p99 250 ms |",
        delivered.load(Ordering::Relaxed),
        ms(&sse, 0.5),
        ms(&sse, 0.95),
        ms(&sse, 0.99)
    );
    println!(
        "| produce → SQL at {rate} ev/s | `max(timestamp)` polled every 100 ms, {setup} | p50 {}, p99 {} | target p99 1 000 ms |",
        ms(&sql, 0.5),
        ms(&sql, 0.99)
    );
}

/// The lines the dashboard keeps, which its stream asks for (`limit`).
const DASHBOARD_LINES: u64 = 50;

/// Counts the bytes a client receives, and does nothing else with them.
async fn counted_bytes(response: reqwest::Response, received: Arc<AtomicU64>) {
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// Frames the server skipped for clients too slow for them, as its Prometheus page says.
async fn frames_skipped(http: &reqwest::Client, server: &Server) -> f64 {
    let page = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics text");
    page.lines()
        .find_map(|l| l.strip_prefix("lakepulse_sse_frames_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What a viewer asks of `/events`.
#[derive(Clone, Copy)]
enum Viewer {
    /// As the dashboard asked until 2026-12-04: every event of each batch, uncompressed.
    WholeBatches,
    /// As the dashboard asks: gzip, and the newest [`DASHBOARD_LINES`] of each batch.
    Dashboard,
}

/// `clients` viewers on `/events` while 1 000 ev/s arrive. Fifty of them parse every message
/// (inflating it when gzip) and time every event they get; the others only count the bytes
/// they receive: parsing in ten thousand clients would take more of the 2 cores than the
/// server. Clients that ask the same are sent the same bytes, so one that kept up received
/// what the median client did; the server's count of skipped frames says whether any fell
/// behind.
async fn fan_out(http: &reqwest::Client, clients: u64, viewer: Viewer) {
    const SAMPLED: u64 = 50;
    // A server of its own: its peak RSS is this run's, not a heap an earlier run grew.
    let server = &start(&[]).await;
    let (url, encoding, asks) = match viewer {
        Viewer::WholeBatches => (
            server.url("/events"),
            "identity",
            "whole batches, uncompressed".to_owned(),
        ),
        Viewer::Dashboard => (
            server.url(&format!("/events?limit={DASHBOARD_LINES}")),
            "gzip",
            format!("gzip, newest {DASHBOARD_LINES} per batch"),
        ),
    };
    let latencies = Arc::new(Mutex::new(histogram()));
    let timed_delivered = Arc::new(AtomicU64::new(0));
    let mut received = Vec::new();
    let mut readers = Vec::new();
    for i in 0..clients {
        let response = http
            .get(&url)
            .header("accept-encoding", encoding)
            .send()
            .await
            .expect("SSE");
        readers.push(match i < SAMPLED {
            true => tokio::spawn(timed_events(
                response,
                latencies.clone(),
                timed_delivered.clone(),
            )),
            false => {
                let bytes = Arc::new(AtomicU64::new(0));
                received.push(bytes.clone());
                tokio::spawn(counted_bytes(response, bytes))
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness::get_json(http, &server.url("/health"))
        .await
        .is_none_or(|h| h["clients"].as_u64() < Some(clients))
    {
        assert!(
            Instant::now() < deadline,
            "{clients} SSE clients did not connect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let skipped_before = frames_skipped(http, server).await;
    let bytes_now = |received: &[Arc<AtomicU64>]| -> Vec<u64> {
        received.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    };
    let before = bytes_now(&received);
    let (cpu_before, started) = (server.cpu_seconds(), Instant::now());
    let mut rss_peak: f64 = server.rss_mib();
    let mut gen = generate(&server.brokers(), 1_000);
    while gen.try_wait().expect("gen").is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(server.rss_mib());
    }
    // Let the last batches arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let took = started.elapsed().as_secs_f64();
    let cpu = (server.cpu_seconds() - cpu_before) / took * 100.0;
    let skipped = frames_skipped(http, server).await - skipped_before;
    let mut during: Vec<u64> = bytes_now(&received)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    for reader in readers {
        reader.abort();
    }
    during.sort_unstable();
    let median = during.get(during.len() / 2).copied().unwrap_or(0);
    // A second's metrics and health frame either side of the run is the slack.
    let kept_up = during.iter().filter(|b| **b * 100 >= median * 95).count();
    let wire_mib_s = during.iter().sum::<u64>() as f64 / took / (1 << 20) as f64;
    let (p50, p99) = {
        let latencies = latencies.lock().unwrap();
        (ms(&latencies, 0.5), ms(&latencies, 0.99))
    };
    println!(
        "| SSE fan-out, {clients} viewers at 1000 ev/s ({asks}) | delivery p50 {p50}, p99 {p99} ({SAMPLED} clients parse and time: {} events each); {kept_up} of {} counting clients got ≥ 95% of the median {:.0} KiB; {skipped} frames skipped | server {cpu:.0}% CPU, {rss_peak:.0} MiB RSS peak; {wire_mib_s:.1} MiB/s on the wire | RSS ≤ 512 MiB, every frame delivered |",
        timed_delivered.load(Ordering::Relaxed) / SAMPLED,
        during.len(),
        median as f64 / 1024.0,
    );
}

/// Reads every message of the topic from the beginning and only counts them: the rate the
/// broker and librdkafka allow, before any decoding or writing.
fn bare_consume(brokers: &str, expected: u64) -> Duration {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-bare-consumer")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let started = Instant::now();
    let metadata = consumer
        .fetch_metadata(Some("web-logs"), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset("web-logs", partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut count = 0;
    while count < expected {
        match consumer.poll(Duration::from_secs(30)) {
            Some(Ok(_)) => count += 1,
            Some(Err(error)) => panic!("bare consumer: {error}"),
            None => panic!("bare consumer: no message within 30 s after {count}"),
        }
    }
    started.elapsed()
}

/// A tansu broker of the benchmark's own, in memory: the embedded broker's SQLite engine
/// serves an old backlog at about 10 000 messages/s (BENCHMARKS.md), which would measure
/// tansu, not the consumers.
async fn start_memory_broker(port: u16, dir: &Path, partitions: i32) -> Tansu {
    let broker = start_tansu(port, dir, "memory://tansu/");
    let brokers = format!("127.0.0.1:{port}");
    broker::wait_until_reachable(&brokers, Duration::from_secs(30))
        .await
        .expect("tansu up");
    broker::ensure_topic(&brokers, "web-logs", partitions)
        .await
        .expect("topic created");
    broker
}

async fn ingest(http: &reqwest::Client) {
    const EVENTS: u64 = 2_000_000;
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker_dir = tempfile::tempdir().expect("broker dir");
    let _broker = start_memory_broker(port, broker_dir.path(), 3).await;
    let started = Instant::now();
    let filled = Command::new(LAKEPULSE)
        .args([
            "gen",
            "--steady",
            "--rate",
            "1000000",
            "--count",
            &EVENTS.to_string(),
        ])
        .env("KAFKA_BROKERS", &brokers)
        .env("RUST_LOG", "warn")
        .status()
        .expect("gen");
    assert!(filled.success(), "gen failed");
    let fill = started.elapsed().as_secs_f64();
    println!(
        "| Kafka produce | `lakepulse gen` (rdkafka) into tansu (in-memory engine), {EVENTS} events | {fill:.1} s, {:.0} ev/s | |",
        EVENTS as f64 / fill
    );

    let bare_brokers = brokers.clone();
    let bare = tokio::task::spawn_blocking(move || bare_consume(&bare_brokers, EVENTS))
        .await
        .unwrap()
        .as_secs_f64();
    println!(
        "| Kafka ingest | bare librdkafka consumer, counts only, the {EVENTS} events from the start | {bare:.1} s, {:.0} ev/s | baseline |",
        EVENTS as f64 / bare
    );

    // lakepulse on the same topic with an empty lake: decode, live metrics and Delta commits,
    // from process start to the last row committed.
    let started = Instant::now();
    let server = start(&[("KAFKA_BROKERS", &brokers)]).await;
    while rows_committed(http, &server).await < EVENTS {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ours = started.elapsed().as_secs_f64();
    println!(
        "| Kafka ingest | lakepulse: decode + live metrics + Delta commits, same events | {ours:.1} s, {:.0} ev/s | {:.2}x the bare consumer's rate; target 0.80x |",
        EVENTS as f64 / ours,
        bare / ours
    );
}

/// Ingest shared by 1, 2 and 3 instances of one consumer group (`SCALE_OUT=1`) on one broker
/// and one table, all on this machine's two cores. Each instance writes its share and also
/// decodes every other partition for its live view. The events are produced once every
/// instance holds its partitions: tansu's memory engine cannot serve a partition taken over
/// mid-batch (README, Scaling out).
async fn scale_out(http: &reqwest::Client) {
    const EVENTS: u64 = 1_000_000;
    let mut one_instance = None;
    for instances in 1..=3 {
        let port = free_port();
        let brokers = format!("127.0.0.1:{port}");
        let broker_dir = tempfile::tempdir().expect("broker dir");
        let _broker = start_memory_broker(port, broker_dir.path(), 6).await;
        let lake = tempfile::tempdir().expect("lake dir");
        let table = lake.path().join("logs").display().to_string();
        let mut servers = Vec::new();
        for _ in 0..instances {
            servers.push(
                start(&[
                    ("KAFKA_BROKERS", &brokers),
                    ("DELTA_LAKE_PATH", &table),
                    ("SCALE_OUT", "1"),
                    ("KAFKA_TOPIC_PARTITIONS", "6"),
                ])
                .await,
            );
        }
        loop {
            let mut written = 0;
            for server in &servers {
                let health = harness::get_json(http, &server.url("/health")).await;
                written += health
                    .and_then(|h| h["kafka"]["partitions"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| p["writtenHere"] == true)
                    .count();
            }
            if written == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let started = Instant::now();
        let mut gen = Command::new(LAKEPULSE)
            .args(["gen", "--steady", "--rate", "1000000"])
            .args(["--count", &EVENTS.to_string()])
            .env("KAFKA_BROKERS", &brokers)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("gen");
        loop {
            let mut committed = 0;
            for server in &servers {
                committed += rows_committed(http, server).await;
            }
            if committed >= EVENTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed().as_secs_f64();
        let _ = gen.wait();
        let one = *one_instance.get_or_insert(took);
        println!(
            "| Kafka ingest, {instances} instance(s) | `SCALE_OUT=1`, one group, 6 partitions, tansu in memory, one table; {EVENTS} events produced while they run, to the last row committed | {took:.1} s, {:.0} ev/s | {} |",
            EVENTS as f64 / took,
            match instances {
                1 => "baseline".to_owned(),
                _ => format!("{:.2}x one instance's rate", one / took),
            }
        );
    }
}

/// Freshness at 10 000 ev/s on a fresh server reading tansu's in-memory engine: beside the
/// embedded broker's row it shows which of the two sets the figure.
async fn latency_on_memory_broker(http: &reqwest::Client) {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker_dir = tempfile::tempdir().expect("broker dir");
    let _broker = start_memory_broker(port, broker_dir.path(), 3).await;
    let server = start(&[("KAFKA_BROKERS", &brokers)]).await;
    let setup = "table on local disk, tansu in memory";
    latency(http, &server, &brokers, 10_000, setup).await;
}

/// Commit latency as users see it with the table on an object store: produce → SQL with the
/// lake on Azurite (Azure Blob Storage's emulator, on this machine, so no network latency),
/// beside the same figure on the local disk.
async fn lake_on_object_storage(http: &reqwest::Client) {
    let azurite = harness::Azurite::start();
    let server = start(&harness::borrowed(&azurite.lakepulse_env("web-logs"))).await;
    latency(http, &server, &server.brokers(), 1_000, "table on Azurite").await;
}

/// The five SQL questions through `/api/query`, one after another with 100 ms between them as a
/// dashboard's user might ask, while lakepulse writes the table from empty at 1 000 ev/s as
/// `make run` does (a commit a second; the small files compacted every 5 s):
/// `BENCH_LIVE_TABLE_MINUTES` (10) minutes, p50 and p99 per question and per minute of the
/// table's age, each through HTTP as a client sees it.
async fn live_table(http: &reqwest::Client) {
    let minutes: u64 = std::env::var("BENCH_LIVE_TABLE_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10)
        .max(1);
    let server = start(&[]).await;
    let mut gen = Command::new(LAKEPULSE)
        .args(["gen", "--steady", "--rate", "1000"])
        .args(["--duration", &(minutes * 60).to_string()])
        .env("KAFKA_BROKERS", server.brokers())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start gen");
    let url = server.url("/api/query");
    let mut by_question: Vec<Histogram<u64>> =
        questions::QUERIES.iter().map(|_| histogram()).collect();
    let mut by_minute: Vec<Histogram<u64>> = (0..minutes).map(|_| histogram()).collect();
    let mut failed = 0;
    let started = Instant::now();
    for asked in 0.. {
        let age = started.elapsed();
        if age >= Duration::from_secs(minutes * 60) {
            break;
        }
        let sql = questions::QUERIES[asked % questions::QUERIES.len()].sql;
        let began = Instant::now();
        let answered = match http
            .post(&url)
            .json(&serde_json::json!({ "query": sql }))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
            _ => false,
        };
        let took = began.elapsed().as_millis().max(1) as u64;
        if answered {
            let _ = by_question[asked % questions::QUERIES.len()].record(took);
            let _ = by_minute[(age.as_secs() / 60).min(minutes - 1) as usize].record(took);
        } else {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = gen.wait();
    let health = harness::get_json(http, &server.url("/health"))
        .await
        .unwrap_or_default();
    let setup = format!("written at 1000 ev/s for {minutes} min from empty");
    for (question, times) in questions::QUERIES.iter().zip(&by_question) {
        let what = question.what;
        println!(
            "| SQL on the live table | {what}, {setup} | p50 {}, p99 {} ({} answers) | target p50 50 ms, p99 300 ms |",
            ms(times, 0.5),
            ms(times, 0.99),
            times.len()
        );
    }
    let worst = |quantile: f64| {
        by_minute
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .max_by_key(|(_, h)| h.value_at_quantile(quantile))
            .map_or("-".to_owned(), |(minute, h)| {
                format!("{} (minute {})", ms(h, quantile), minute + 1)
            })
    };
    println!(
        "| SQL on the live table | the five questions per minute of the table's age | worst minute's p50 {}, worst minute's p99 {}; {failed} failed; {} rows in {} files at the end | target p50 50 ms, p99 300 ms at every age |",
        worst(0.5),
        worst(0.99),
        health["lake"]["rowsCommitted"],
        health["lake"]["files"]
    );
}

/// `cargo bench --bench live -- scale_out latency` runs the sections whose names contain one of
/// the words; none runs them all (cargo adds `--bench`, which is not a word).
fn wanted(section: &str) -> bool {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    words.is_empty() || words.iter().any(|w| section.contains(w.as_str()))
}

#[tokio::main]
async fn main() {
    rlimit::increase_nofile_limit(u64::MAX).expect("the open files limit");
    let http = reqwest::Client::new();
    if wanted("ingest") {
        ingest(&http).await;
    }
    if wanted("page") || wanted("latency") {
        let server = start(&[]).await;
        if wanted("page") {
            page(&http, &server).await;
        }
        if wanted("latency") {
            for rate in [1_000, 10_000, 50_000] {
                let setup = "table on local disk, embedded broker";
                latency(&http, &server, &server.brokers(), rate, setup).await;
            }
        }
    }
    if wanted("fan_out") {
        for clients in [1_000, 5_000, 10_000] {
            for viewer in [Viewer::WholeBatches, Viewer::Dashboard] {
                fan_out(&http, clients, viewer).await;
            }
        }
    }
    if wanted("latency_on_memory_broker") {
        latency_on_memory_broker(&http).await;
    }
    if wanted("lake_on_object_storage") {
        lake_on_object_storage(&http).await;
    }
    if wanted("scale_out") {
        scale_out(&http).await;
    }
    if wanted("live_table") {
        live_table(&http).await;
    }
}
