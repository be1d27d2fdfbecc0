//! The whole path, as a user runs it: the real binary with its embedded broker, events from
//! two different Kafka clients, the live API, the SSE stream, SQL, and a second Delta reader.
#![cfg(feature = "ssr")]

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "web-logs";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    port: u16,
    broker_port: u16,
    data_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (port, broker_port) = (free_port(), free_port());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Server::spawn(port, broker_port, data_dir.path(), &env);
        Server {
            child,
            port,
            broker_port,
            data_dir,
            env,
        }
    }

    fn spawn(port: u16, broker_port: u16, data_dir: &Path, env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_lakepulse"))
            .arg("serve")
            .env("PORT", port.to_string())
            .env("EMBEDDED_BROKER_PORT", broker_port.to_string())
            .env("DATA_DIR", data_dir)
            .env("DEMO", "0")
            .env("COMMIT_INTERVAL_MS", "300")
            .env_remove("KAFKA_BROKERS")
            .env_remove("DELTA_LAKE_PATH")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lakepulse")
    }

    /// Starts lakepulse and waits until it answers `/health`.
    async fn ready(env: &[(&str, &str)]) -> (Server, reqwest::Client) {
        let server = Server::start_with(env);
        let client = reqwest::Client::new();
        let _: Value = eventually(Duration::from_secs(120), "/health", &server, || async {
            get_json(&client, &server.url("/health")).await
        })
        .await;
        (server, client)
    }

    /// Kills lakepulse the way a crash would (SIGKILL: no cleanup, its broker left running)
    /// and starts it again on the same data and ports.
    fn crash_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.child = Server::spawn(self.port, self.broker_port, self.data_dir.path(), &self.env);
    }

    /// Stops lakepulse as an operator does (SIGTERM) and waits for it to exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for lakepulse") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "lakepulse did not stop within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    fn lake_path(&self) -> PathBuf {
        self.data_dir.path().join("delta").join("web-logs")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A broker orphaned by a crash test belongs to no lakepulse any more.
        let _ = Command::new("pkill")
            .args(["-f", &format!("tcp://127.0.0.1:{} ", self.broker_port)])
            .status();
        // SIGTERM, so lakepulse stops its embedded broker on the way out.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

/// GET `url` as JSON; None when it does not answer or the answer is not JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Polls `probe` until it returns Some or `within` runs out.
async fn eventually<T, F, Fut>(within: Duration, what: &str, server: &Server, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n--- server log ---\n{}",
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn python() -> PathBuf {
    let venv = std::env::var("LAKEPULSE_VENV").expect(
        "LAKEPULSE_VENV must name the venv with the Python clients (`make test` sets it up)",
    );
    Path::new(&venv).join("bin").join("python")
}

fn run_python(args: &[&str]) -> String {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients");
    let output = Command::new(python())
        .arg(script_dir.join(args[0]))
        .args(&args[1..])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{} failed: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

async fn produce_with_rdkafka(brokers: &str, values: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for (i, value) in values.iter().enumerate() {
        let key = i.to_string();
        producer
            .send(
                FutureRecord::to(TOPIC).key(&key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// Produces `count` events with a Python client (`confluent-kafka` or `kafka-python`),
/// compressed with `codec`.
fn produce_with_python(brokers: &str, count: u64, client: &str, codec: &str) {
    let produced = run_python(&[
        "produce.py",
        "--brokers",
        brokers,
        "--topic",
        TOPIC,
        "--count",
        &count.to_string(),
        "--client",
        client,
        "--compression",
        codec,
    ]);
    assert!(
        produced.contains(&format!("produced {count}")),
        "{client} {codec}"
    );
}

/// `/api/metrics?{query}` once it counts `total` requests, and not one more.
async fn metrics_counting(
    server: &Server,
    client: &reqwest::Client,
    query: &str,
    total: u64,
) -> Value {
    let url = server.url(&format!("/api/metrics?{query}"));
    let metrics: Value = eventually(
        Duration::from_secs(60),
        &format!("{total} events in the metrics"),
        server,
        || async {
            let m: Value = get_json(client, &url).await?;
            (m["totalRequests"].as_u64()? >= total).then_some(m)
        },
    )
    .await;
    assert_eq!(metrics["totalRequests"], total);
    metrics
}

/// Minimal JSON events with numbered endpoints under `prefix`, one per message.
fn numbered_events(prefix: &str, numbers: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    numbers
        .map(|i| format!(r#"{{"endpoint":"/{prefix}/{i}","status":200}}"#).into_bytes())
        .collect()
}

/// Opens `/events` as a reconnecting client would and collects the events of `log` batches
/// until it has `count`.
async fn sse_log_events(
    client: &reqwest::Client,
    url: &str,
    last_event_id: &str,
    count: usize,
) -> Vec<Value> {
    let response = client
        .get(url)
        .header("Last-Event-ID", last_event_id)
        .send()
        .await
        .expect("SSE");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while events.len() < count {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                let is_log = message.lines().any(|l| l == "event: log");
                let data = message.lines().find_map(|l| l.strip_prefix("data: "));
                if let (true, Some(data)) = (is_log, data) {
                    let batch: Vec<Value> = serde_json::from_str(data).expect("a JSON array");
                    events.extend(batch);
                }
            }
        }
    })
    .await
    .expect("the log events within 10 s");
    events
}

/// Reads `count` messages of the dead-letter topic: (reason header, original bytes).
async fn dead_letters(brokers: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-dead-letters")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("web-logs.dlq", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut letters = Vec::new();
    while letters.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("dead letters within 20 s")
            .expect("a dead letter");
        let reason = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "reason"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("a reason header");
        letters.push((reason, message.payload().unwrap_or_default().to_vec()));
    }
    letters
}

async fn sql(client: &reqwest::Client, server: &Server, query: &str) -> (u16, Value) {
    let response = client
        .post(server.url("/api/query"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("query request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json answer"))
}

#[tokio::test]
async fn events_from_two_clients_reach_metrics_sse_sql_and_a_second_delta_reader() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let health: Value = eventually(Duration::from_secs(120), "/health", &server, || async {
        get_json(&client, &server.url("/health")).await
    })
    .await;
    assert_eq!(health["kafka"]["embedded"], true);
    assert_eq!(health["kafka"]["brokers"], server.brokers());
    assert_eq!(health["demoTraffic"], false);

    const RDKAFKA_EVENTS: usize = 400;
    const PYTHON_EVENTS: usize = 250;
    // One message carries a batch: a JSON event, an access-log line and a bad line.
    const BATCHED_EVENTS: usize = 2;
    const TOTAL: u64 = (RDKAFKA_EVENTS + PYTHON_EVENTS + BATCHED_EVENTS) as u64;
    // Every 20th Rust event is a 503, every 10th Python one a 500.
    const ERRORS: u64 = (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64;
    let mut values: Vec<Vec<u8>> = (0..RDKAFKA_EVENTS)
        .map(|i| {
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339(),
                "level": if i % 20 == 0 { "ERROR" } else { "INFO" },
                "source": "rust-test",
                "method": "POST",
                "endpoint": format!("/api/test/{}", i % 5),
                "status": if i % 20 == 0 { 503 } else { 201 },
                "responseTime": 40.0 + (i % 50) as f64,
                "userId": format!("u{}", i % 9),
                "sessionId": format!("s{}", i % 17),
                "ip": "2001:db8::1",
                "bytes": 1000,
                "message": "created",
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    // Not events: counted and set aside, never a row and never a crash.
    values.push(b"this is not an event".to_vec());
    values.push(br#"{"endpoint":"/truncated","sta"#.to_vec());
    values.push(b"{\"endpoint\":\"\xff\xfe\"}".to_vec());
    values.push(br#"{"endpoint":"/missing-status"}"#.to_vec());
    values.push(
        format!(
            "{}\n{} - - [{}] \"GET /from-a-log HTTP/1.1\" 200 99 \"-\" \"curl/8\"\nneither JSON nor a log line",
            r#"{"source":"rust-batch","endpoint":"/batched","status":200}"#,
            "2001:db8::2",
            chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z"),
        )
        .into_bytes(),
    );
    const MALFORMED: usize = 5;
    produce_with_rdkafka(&server.brokers(), &values).await;
    produce_with_python(
        &server.brokers(),
        PYTHON_EVENTS as u64,
        "confluent-kafka",
        "none",
    );
    let metrics = metrics_counting(&server, &client, "", TOTAL).await;
    assert_eq!(
        metrics["totalErrors"],
        (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64
    );
    assert_eq!(metrics["malformed"]["not_access_log"], 2);
    assert_eq!(metrics["malformed"]["invalid_json"], 1);
    assert_eq!(metrics["malformed"]["not_utf8"], 1);
    assert_eq!(metrics["malformed"]["missing_field"], 1);
    for field in [
        "eventsPerSec",
        "errorRate",
        "avgResponseTime",
        "activeSessions",
        "dataProcessed",
        "lastUpdate",
    ] {
        assert!(!metrics[field].is_null(), "metrics lack {field}: {metrics}");
    }

    // Every window and breakdown, by event time.
    let all: Value = client
        .get(server.url("/api/metrics?window=all"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["window"], "all");
    let windows = all["windows"].as_array().expect("windows");
    assert_eq!(
        windows
            .iter()
            .map(|w| w["window"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1m", "5m", "1h", "all"]
    );
    assert!(
        windows.iter().all(|w| w["requests"] == TOTAL),
        "{windows:?}"
    );
    assert!(all["percentiles"]["p95"].as_f64().unwrap() >= 40.0);
    assert_eq!(all["byStatus"]["2xx"], TOTAL - ERRORS);
    assert_eq!(all["bySource"]["python-client"], PYTHON_EVENTS);
    assert_eq!(all["byEndpoint"]["byVolume"].as_array().unwrap().len(), 10);
    assert!(all["errorDefinition"].as_str().unwrap().contains("500"));
    let series: Value = client
        .get(server.url("/api/series?metric=requests&window=1h&step=1m"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 60);
    let plotted: f64 = points.iter().map(|p| p["v"].as_f64().unwrap()).sum();
    assert_eq!(plotted, TOTAL as f64);
    let bad = client
        .get(server.url("/api/metrics?window=2d"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = client
        .get(server.url("/api/series?metric=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The status knows each partition and how far behind ingest is (the watcher runs every 3 s).
    let health: Value = eventually(
        Duration::from_secs(30),
        "no lag in /health",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["kafka"]["lag"] == 0).then_some(h)
        },
    )
    .await;
    let partitions = health["kafka"]["partitions"]
        .as_array()
        .expect("partitions");
    assert_eq!(partitions.len(), 3);
    assert!(
        partitions.iter().all(|p| p["available"] == true),
        "{partitions:?}"
    );
    assert_eq!(health["kafka"]["state"], "connected");
    assert!(health["lake"]["lastCommitAgeSecs"].as_f64().is_some());
    let freshness = health["lake"]["freshnessMs"].as_f64().expect("freshness");
    assert!(freshness > 0.0 && freshness < 60_000.0, "{freshness}");
    assert_eq!(health["malformed"], metrics["malformed"]);
    assert_eq!(health["kafka"]["deadLetterTopic"], "web-logs.dlq");
    let dead_letters = dead_letters(&server.brokers(), MALFORMED).await;
    assert_eq!(dead_letters.len(), MALFORMED);
    assert!(dead_letters.contains(&(
        "not_utf8".to_owned(),
        b"{\"endpoint\":\"\xff\xfe\"}".to_vec()
    )));
    assert!(dead_letters.contains(&(
        "not_access_log".to_owned(),
        b"neither JSON nor a log line".to_vec()
    )));

    let logs: Value = client
        .get(server.url("/api/logs?limit=5&source=python-client"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = logs.as_array().expect("a list of events");
    assert_eq!(logs.len(), 5);
    assert!(logs.iter().all(|e| e["source"] == "python-client"));
    // Numbered in the order consumed, newest first.
    let numbers: Vec<u64> = logs.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        numbers.len() == 5 && numbers.windows(2).all(|w| w[0] > w[1]),
        "{numbers:?}"
    );

    // SSE: the stream opens with a metrics frame that already counts everything.
    let response = client.get(server.url("/events")).send().await.expect("SSE");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let frame = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("SSE chunk")));
            if let Some(start) = text.find("event: metrics\ndata: ") {
                let rest = &text[start + "event: metrics\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    return serde_json::from_str::<Value>(&rest[..end]).expect("metrics JSON");
                }
            }
        }
        panic!("SSE stream ended: {text}");
    })
    .await
    .expect("a metrics frame within 10 s");
    assert_eq!(frame["totalRequests"], TOTAL);

    // A client that filters and resumes: `Last-Event-ID: 0` replays every kept event after
    // the first; `status=5xx` keeps the errors only.
    let errors_only = sse_log_events(
        &client,
        &server.url("/events?status=5xx"),
        "0",
        ERRORS as usize,
    )
    .await;
    assert_eq!(errors_only.len(), ERRORS as usize);
    assert!(errors_only
        .iter()
        .all(|e| e["status"].as_u64().unwrap() >= 500));

    // SQL sees every event once committed, under both table names.
    let count: Value = eventually(
        Duration::from_secs(30),
        "the lake to hold every event",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) AS n FROM logs").await;
            (status == 200 && answer["rows"][0][0].as_u64()? == TOTAL).then_some(answer)
        },
    )
    .await;
    assert_eq!(count["columns"], json!(["n"]));
    assert_eq!(count["rowCount"], 1);
    assert!(count["executionTime"].as_f64().unwrap() > 0.0);
    let (status, answer) = sql(
        &client,
        &server,
        "SELECT source, count(*) AS n FROM delta_lake.logs GROUP BY source ORDER BY source",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["rows"],
        json!([
            ["access-log", 1],
            ["python-client", PYTHON_EVENTS],
            ["rust-batch", 1],
            ["rust-test", RDKAFKA_EVENTS]
        ])
    );

    // Time travel as Delta's Spark SQL writes it: version 0 is the empty table lakepulse made.
    let (status, answer) = sql(
        &client,
        &server,
        "SELECT count(*) AS n FROM logs VERSION AS OF 0 WHERE status > 0",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["rows"], &answer["version"]),
        (&json!([[0]]), &json!(0))
    );

    // A bad query is the client's fault, said clearly.
    let (status, answer) = sql(&client, &server, "SELECT no_such_column FROM logs").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("no_such_column"),
        "{answer}"
    );
    let (status, answer) = sql(&client, &server, "DROP TABLE logs").await;
    assert_eq!(status, 400, "{answer}");

    // Another Delta implementation reads the same rows: every event once.
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], TOTAL);
    assert_eq!(lake["distinct_event_ids"], TOTAL);
    assert_eq!(
        lake["errors"],
        (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64
    );
    assert_eq!(lake["partition_columns"], json!(["event_date"]));
    // The same question, asked of both readers, gets the same answer.
    let (_, by_status) = sql(
        &client,
        &server,
        "SELECT CAST(status AS VARCHAR) AS status, count(*) AS n FROM logs GROUP BY status",
    )
    .await;
    let ours: serde_json::Map<String, Value> = by_status["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].clone()))
        .collect();
    assert_eq!(Value::Object(ours), lake["by_status"]);
}

/// A gzip'd access log with the odd lines real servers write, three lines that are not
/// events (at lines 51, 153 and 254) and a blank line.
fn write_access_log(path: &Path, valid: usize, first: chrono::DateTime<chrono::Utc>) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("log file");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for i in 0..valid {
        if i % 100 == 50 {
            writeln!(gz, "{i} is not a log line").unwrap();
        }
        if i == 120 {
            writeln!(gz).unwrap();
        }
        let time = (first + chrono::Duration::seconds(i as i64)).format("%d/%b/%Y:%H:%M:%S %z");
        if i == 200 {
            // A real line, but larger than a Kafka message may be: reported, not fatal.
            let agent = "A".repeat(2 << 20);
            writeln!(
                gz,
                r#"192.0.2.1 - - [{time}] "GET / HTTP/1.1" 200 1 "-" "{agent}""#
            )
            .unwrap();
        }
        let ip = if i % 3 == 0 {
            "2001:db8::9"
        } else {
            "198.51.100.7"
        };
        let bytes = if i % 5 == 0 {
            "-".to_owned()
        } else {
            (100 + i).to_string()
        };
        let referer = if i % 7 == 0 {
            "-"
        } else {
            "https://example.com/start"
        };
        let status = if i % 10 == 0 { 502 } else { 200 };
        writeln!(
            gz,
            r#"{ip} - - [{time}] "GET /items/{}?page=2 HTTP/1.1" {status} {bytes} "{referer}" "Mozilla/5.0 (X11; Linux) \"quoted\" agent""#,
            i % 4
        )
        .unwrap();
    }
    gz.finish().unwrap();
}

#[tokio::test]
async fn replaying_an_access_log_lands_every_valid_line_once_with_its_own_time() {
    let (server, client) = Server::ready(&[]).await;
    const LINES: usize = 300;
    let first = chrono::Utc::now() - chrono::Duration::minutes(40);
    let log = server.data_dir.path().join("access.log.gz");
    write_access_log(&log, LINES, first);

    let replay = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--speed",
            "max",
            "--format",
            "combined",
        ])
        .env("KAFKA_BROKERS", server.brokers())
        .output()
        .expect("run replay");
    let report = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{report}");
    assert!(
        report.contains(&format!("{LINES} events published")),
        "{report}"
    );
    assert!(report.contains("1 blank, 4 invalid"), "{report}");
    assert!(
        report.contains("line 204: 2097") && report.contains("more than a Kafka message"),
        "{report}"
    );
    for line in ["line 51:", "line 153:", "line 255:"] {
        assert!(report.contains(line), "{line} missing from: {report}");
    }

    let metrics = metrics_counting(&server, &client, "window=1h", LINES as u64).await;
    assert_eq!(metrics["totalErrors"], (LINES / 10) as u64);
    assert_eq!(
        metrics["malformed"],
        json!({}),
        "invalid lines are not published"
    );
    // Event time is the log's: the clock stands at the last line, 40 minutes ago.
    let event_time: chrono::DateTime<chrono::Utc> =
        metrics["eventTime"].as_str().unwrap().parse().unwrap();
    let last_line = first + chrono::Duration::seconds(LINES as i64 - 1);
    assert!(
        (event_time - last_line).num_seconds().abs() <= 5,
        "{event_time} vs {last_line}"
    );
    let hour = &metrics["windows"][2];
    assert_eq!(hour["requests"], LINES as u64);

    let count = eventually(Duration::from_secs(30), "the replayed rows", &server, || async {
        let (status, answer) = sql(
            &client,
            &server,
            "SELECT count(*) AS n, min(timestamp) AS first, count(DISTINCT endpoint) AS endpoints FROM logs",
        )
        .await;
        (status == 200 && answer["rows"][0][0].as_u64()? == LINES as u64).then_some(answer)
    })
    .await;
    let first_in_lake: chrono::DateTime<chrono::Utc> =
        count["rows"][0][1].as_str().unwrap().parse().unwrap();
    assert_eq!(first_in_lake.timestamp(), first.timestamp());
    assert_eq!(
        count["rows"][0][2], 4,
        "query strings are not part of the endpoint"
    );
    let (_, raw) = sql(
        &client,
        &server,
        "SELECT raw FROM logs ORDER BY timestamp LIMIT 1",
    )
    .await;
    assert!(
        raw["rows"][0][0]
            .as_str()
            .unwrap()
            .starts_with("2001:db8::9 - - ["),
        "the line as the server wrote it: {raw}"
    );
}

/// A webhook on loopback that keeps what it is sent.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (sent, received) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sent = sent.clone();
            async move {
                let _ = sent.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn error_bursts_and_latency_spikes_are_caught_and_alerted_steady_traffic_is_not() {
    let (hook, mut alerts) = webhook_receiver().await;
    let (server, client) = Server::ready(&[("ALERT_WEBHOOK_URL", hook.as_str())]).await;

    // Twelve minutes of event time in about twelve seconds: ten steady minutes, then a 30 s
    // error burst at 600 s and a 30 s latency spike at 660 s.
    let first = chrono::Utc::now() - chrono::Duration::minutes(15);
    let gen = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args([
            "gen",
            "--steady",
            "--rate",
            "40",
            "--duration",
            "720",
            "--speedup",
            "60",
        ])
        .args(["--start-time", &first.to_rfc3339()])
        .args(["--error-burst", "600:30", "--latency-spike", "660:30"])
        .env("KAFKA_BROKERS", server.brokers())
        .output()
        .expect("run gen");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let at = |secs: i64| first + chrono::Duration::seconds(secs);

    let anomalies: Vec<Value> = eventually(
        Duration::from_secs(60),
        "both anomalies",
        &server,
        || async {
            let list: Vec<Value> =
                serde_json::from_value(get_json(&client, &server.url("/api/anomalies")).await?)
                    .ok()?;
            let found = |kind: &str| {
                list.iter()
                    .any(|a| a["kind"] == kind && a["scope"] == "overall")
            };
            (found("errorRate") && found("latency")).then_some(list)
        },
    )
    .await;
    let started = |a: &Value| {
        a["started"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let overall = |kind: &str| {
        anomalies
            .iter()
            .find(|a| a["kind"] == kind && a["scope"] == "overall")
            .unwrap()
    };
    for (kind, from) in [("errorRate", 600), ("latency", 660)] {
        let lag = (started(overall(kind)) - at(from)).num_seconds();
        assert!(
            (-10..=30).contains(&lag),
            "{kind} detected {lag} s after it began"
        );
    }
    assert!(overall("errorRate")["peak"].as_f64().unwrap() > 20.0);
    // Nothing in the ten steady minutes (the bucket holding 600 s may start up to 10 s earlier).
    let early: Vec<&Value> = anomalies.iter().filter(|a| started(a) < at(590)).collect();
    assert!(early.is_empty(), "steady traffic raised {early:#?}");

    let alert = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let alert = alerts.recv().await.expect("webhook open");
            if alert["anomaly"]["kind"] == "errorRate" {
                return alert;
            }
        }
    })
    .await
    .expect("the error burst alerted through the webhook");
    assert!(
        alert["text"].as_str().unwrap().contains("error rate up"),
        "{alert}"
    );
}

/// Reads an `/events` stream until a `metrics` frame counts `total` requests.
async fn live_metrics_counting(sse: &mut reqwest::Response, total: u64) -> Value {
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let chunk = sse.chunk().await.expect("chunk").expect("stream open");
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                if message.contains("event: metrics") {
                    let data = message
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .unwrap();
                    let metrics: Value = serde_json::from_str(data).unwrap();
                    if metrics["totalRequests"] == total {
                        return metrics;
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a metrics frame counting {total} requests within 60 s"))
}

/// Runs `lakepulse gen` against the server's broker until it has produced `count` events.
fn generate(server: &Server, count: u64, rate: u64) {
    let gen = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args([
            "gen",
            "--count",
            &count.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .env("KAFKA_BROKERS", server.brokers())
        .output()
        .expect("run gen");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
}

#[tokio::test]
async fn a_stuck_sse_client_slows_neither_ingest_nor_other_clients() {
    use tokio::io::AsyncWriteExt;
    let (server, client) = Server::ready(&[]).await;
    // Asks for the stream and never reads a byte of it.
    let mut stuck = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stuck
        .write_all(b"GET /events HTTP/1.1\r\nHost: lakepulse\r\n\r\n")
        .await
        .unwrap();
    let _: Value = eventually(
        Duration::from_secs(30),
        "the stuck client counted",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["sseClients"] == 1).then_some(h)
        },
    )
    .await;

    // Far more than the socket buffers hold: the stuck client falls behind for good.
    const EVENTS: u64 = 30_000;
    generate(&server, EVENTS, 20_000);

    // A healthy client still gets a live stream that counts every event.
    let mut live = client.get(server.url("/events")).send().await.expect("SSE");
    live_metrics_counting(&mut live, EVENTS).await;
    // Counted while the live one is still open: a closed stream leaves the count only when
    // the server next writes to it, so counting after dropping it would race.
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(
        health["sseClients"], 2,
        "the stuck client is still connected, just behind, beside the live one"
    );
    drop((stuck, live));
}

#[tokio::test]
async fn ten_thousand_idle_sse_clients_do_not_starve_a_real_one() {
    use tokio::io::AsyncWriteExt;
    const IDLE: u64 = 10_000;
    const EVENTS: u64 = 2_000;
    rlimit::increase_nofile_limit(u64::MAX).expect("the open files limit");
    let (server, client) = Server::ready(&[]).await;
    // Each asks for the stream and then sits there, reading nothing.
    let mut idle = Vec::with_capacity(IDLE as usize);
    for _ in 0..IDLE {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("an idle connection");
        stream
            .write_all(b"GET /events HTTP/1.1\r\nHost: lakepulse\r\n\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    eventually(
        Duration::from_secs(60),
        "every idle client connected",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["sseClients"] == IDLE).then_some(())
        },
    )
    .await;

    let mut live = client.get(server.url("/events")).send().await.expect("SSE");
    generate(&server, EVENTS, 1_000);
    live_metrics_counting(&mut live, EVENTS).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(
        health["sseClients"],
        IDLE + 1,
        "the idle clients are all still there, beside the live one"
    );
    assert_eq!(health["status"], "healthy");
    let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
    assert_eq!(status, 200, "{answer}");
    drop((idle, live));
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_and_doubles_nothing() {
    use rand::Rng;
    let mut server = Server::start();
    let client = reqwest::Client::new();
    let healthy = |server: &Server| {
        let url = server.url("/health");
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };
    let _: Value = eventually(Duration::from_secs(120), "/health", &server, || {
        healthy(&server)
    })
    .await;

    // A producer that runs through every crash, as services do.
    const EVENTS: u64 = 12_000;
    let mut gen = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args(["gen", "--count", &EVENTS.to_string(), "--rate", "1500"])
        .env("KAFKA_BROKERS", server.brokers())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start gen");
    let mut rng = rand::rng();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        server.crash_and_restart();
        let _: Value = eventually(
            Duration::from_secs(60),
            "/health after a crash",
            &server,
            || healthy(&server),
        )
        .await;
    }
    assert!(gen.wait().expect("gen ran").success());

    let counted = |sql_text: &'static str| {
        let client = client.clone();
        let url = server.url("/api/query");
        async move {
            let answer: Value = client
                .post(url)
                .json(&json!({ "query": sql_text }))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            answer["rows"][0][0].as_u64()
        }
    };
    eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async { (counted("SELECT count(*) FROM logs").await? >= EVENTS).then_some(()) },
    )
    .await;
    // Let any commit still in flight land, then count again: exactly once each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted("SELECT count(*) FROM logs").await, Some(EVENTS));
    assert_eq!(
        counted("SELECT count(DISTINCT event_id) FROM logs").await,
        Some(EVENTS)
    );
    assert_eq!(
        counted("SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM logs)")
            .await,
        Some(EVENTS)
    );
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], EVENTS);
    assert_eq!(lake["distinct_event_ids"], EVENTS);
}

/// Messages that are not events, every kind a hostile or broken producer sends: random bytes,
/// invalid UTF-8, truncated JSON, wrong types, deep nesting, huge values.
fn hostile_message(i: usize, rng: &mut impl rand::Rng) -> Vec<u8> {
    // The heavy kinds (deep nesting, huge values) now and then, not one message in eight.
    let kind = match i % 8 {
        4 | 5 if i % 1000 >= 8 => 6,
        kind => kind,
    };
    match kind {
        0 => {
            // Binary noise that cannot pass for text.
            // (No newlines: those would make it a batch of several bad lines.)
            let mut bytes: Vec<u8> = (0..rng.random_range(1..256))
                .map(|_| rng.random::<u8>())
                .map(|b| if b == b'\n' { 0 } else { b })
                .collect();
            bytes[0] = 0xff;
            bytes
        }
        1 => {
            let mut json = br#"{"endpoint":"/x","status":200,"message":""#.to_vec();
            json.extend([0xc3, 0x28, b'"', b'}']);
            json
        }
        2 => {
            let full =
                r#"{"timestamp":"2026-11-29T10:00:00Z","endpoint":"/cut","status":200,"bytes":12}"#;
            full.as_bytes()[..rng.random_range(1..full.len() - 1)].to_vec()
        }
        3 => br#"{"endpoint":["/a"],"status":"two hundred"}"#.to_vec(),
        4 => format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        5 => format!(
            r#"{{"endpoint":"/{}","status":99999999999}}"#,
            "x".repeat(20_000)
        )
        .into_bytes(),
        6 => br#"{"endpoint":"/no-status","level":"INFO"}"#.to_vec(),
        // A producer whose clock is years off: set aside, or every window would follow it.
        7 if i % 16 == 15 => {
            br#"{"timestamp":"2099-01-01T00:00:00Z","endpoint":"/future","status":200}"#.to_vec()
        }
        _ => format!("GET /not/a/log/line {i} \u{0}\u{7}").into_bytes(),
    }
}

#[tokio::test]
async fn hostile_messages_are_all_counted_and_dead_lettered() {
    // tansu's SQLite engine stalls (100% CPU, every request timing out) when this many
    // messages come from two producers at once, the test's and lakepulse's dead-letter
    // producer; its in-memory engine takes them. README: "The embedded broker".
    let broker_dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let mut broker = start_tansu(broker_port, broker_dir.path(), "memory://tansu/");
    let (server, client) = Server::ready(&[("KAFKA_BROKERS", brokers.as_str())]).await;
    const HOSTILE: usize = 100_000;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let mut rng = rand::rng();
    let mut deliveries = Vec::with_capacity(HOSTILE);
    for i in 0..HOSTILE {
        let value = hostile_message(i, &mut rng);
        loop {
            let record = FutureRecord::<(), [u8]>::to(TOPIC).payload(&value);
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for delivery in deliveries {
        let delivered = delivery.await.expect("not cancelled");
        delivered.map_err(|(e, _)| e).expect("delivered");
    }
    // One real event after them all: the pipeline still stands, and still counts exactly.
    let after = br#"{"endpoint":"/after","status":200}"#.to_vec();
    produce_with_rdkafka(&brokers, &[after]).await;

    // librdkafka may retry a produce that timed out, so the topic can hold a few copies more
    // than were sent: every message ingest read must be counted, as an event or as malformed.
    let (health, metrics) = eventually(
        Duration::from_secs(180),
        "everything read and counted",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            let m: Value = get_json(&client, &server.url("/api/metrics")).await?;
            let malformed: u64 = m["malformed"]
                .as_object()?
                .values()
                .filter_map(Value::as_u64)
                .sum();
            let done =
                h["kafka"]["lag"] == 0 && malformed >= HOSTILE as u64 && m["totalRequests"] == 1;
            done.then_some((h, m))
        },
    )
    .await;
    let read: u64 = health["kafka"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["position"].as_u64())
        .sum();
    let malformed: u64 = metrics["malformed"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(malformed + 1, read, "{}", metrics["malformed"]);
    assert!(
        metrics["malformed"]["future_timestamp"].as_u64() >= Some((HOSTILE / 16) as u64),
        "{}",
        metrics["malformed"]
    );
    assert_eq!(health["status"], "healthy");
    let letters = dead_letters(&brokers, malformed as usize).await;
    assert!(letters.iter().all(|(reason, _)| !reason.is_empty()));
    let _ = broker.kill();
    let _ = broker.wait();
}

#[tokio::test]
async fn batches_from_other_clients_are_read_whatever_the_codec() {
    // kafka-python speaks the protocol through its own code, not librdkafka's, and frames
    // snappy the way Java does (xerial blocks of 32 KiB; its batches here hold several).
    // Snappy needs the patched embedded broker (scripts/tansu-snappy.patch).
    const CLIENTS: [&str; 2] = ["confluent-kafka", "kafka-python"];
    const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
    const PER_SEND: u64 = 1_000;
    let (server, client) = Server::ready(&[]).await;
    for python_client in CLIENTS {
        for codec in CODECS {
            produce_with_python(&server.brokers(), PER_SEND, python_client, codec);
        }
    }
    let total = PER_SEND * (CLIENTS.len() * CODECS.len()) as u64;
    let metrics = metrics_counting(&server, &client, "", total).await;
    assert_eq!(metrics["malformed"], json!({}));
}

#[tokio::test]
async fn a_broker_that_fails_every_fetch_is_shown_down_not_connected() {
    // A broker that still answers metadata but fails every fetch: only the consumer's own
    // errors tell that nothing arrives. Made real by taking the record table out of the
    // embedded broker's SQLite store, as a damaged or half-restored disk would; tansu then
    // drops the connection on every fetch.
    let (server, client) = Server::ready(&[]).await;
    let store = server.data_dir.path().join("broker").join("tansu.db");
    let damaged = Command::new(python())
        .arg("-c")
        .arg("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('ALTER TABLE record RENAME TO record_lost'); db.commit()")
        .arg(&store)
        .status()
        .expect("run python");
    assert!(damaged.success(), "renaming the record table in {store:?}");
    // Under load a metadata probe can time out too, and says so for a moment; the fetch
    // failure is what must be shown once it has lasted.
    eventually(
        Duration::from_secs(90),
        "Kafka shown down with the fetch error",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            let detail = h["kafka"]["detail"].as_str()?;
            (h["kafka"]["state"] == "down" && detail.contains("every fetch failing")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _client) = Server::ready(&[]).await;
    // A client announcing 2 MiB is refused before it sends any of it. (Sending the body too
    // would race the server's close: an early answer on a connection whose unread bytes make
    // the kernel reset it can be lost, whichever HTTP client sends.)
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("a connection");
    stream
        .write_all(
            format!(
                "POST /api/query HTTP/1.1\r\nHost: lakepulse\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                2 * 1024 * 1024
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer without the body")
        .expect("a readable answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or_default()
    );
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn hostile_sql_is_refused_or_stopped_and_the_server_stays_healthy() {
    const EVENTS: u64 = 50;
    let (server, client) = Server::ready(&[("QUERY_TIMEOUT_SECS", "3")]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("sql", 0..EVENTS)).await;
    let count = "SELECT count(*) FROM logs";
    eventually(
        Duration::from_secs(60),
        "the events in SQL",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, count).await;
            (status == 200 && answer["rows"][0][0] == EVENTS).then_some(())
        },
    )
    .await;

    for refused in [
        "DROP TABLE logs",
        "DELETE FROM logs",
        "INSERT INTO logs SELECT * FROM logs",
        "CREATE TABLE copy AS SELECT * FROM logs",
        "COPY logs TO '/tmp/lakepulse-abuse.parquet'",
        "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('http://127.0.0.1:9/remote.csv')",
        "SELECT count(*) FROM generate_series(1, 1e12)",
    ] {
        let (status, answer) = sql(&client, &server, refused).await;
        assert_eq!(status, 400, "{refused}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert!(!Path::new("/tmp/lakepulse-abuse.parquet").exists());

    // Queries that would run for hours or hold the machine's memory, all at once.
    const RUNAWAY: [&str; 3] = [
        "SELECT count(*) FROM generate_series(1, 1000000000000)",
        "SELECT count(*) FROM logs a, logs b, logs c, generate_series(1, 1000000000) g",
        "SELECT value, count(*) FROM generate_series(1, 1000000000) GROUP BY value",
    ];
    let running: Vec<_> = RUNAWAY
        .into_iter()
        .map(|query| {
            let (client, url) = (client.clone(), server.url("/api/query"));
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "query": query }))
                    // Far beyond QUERY_TIMEOUT_SECS: only a query no limit stopped takes this.
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            })
        })
        .collect();
    // While they run, the server answers everyone else.
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "healthy");
    let (status, answer) = sql(&client, &server, count).await;
    assert_eq!((status, &answer["rows"][0][0]), (200, &json!(EVENTS)));
    // Each is stopped by a limit: the timeout, the memory limit, or the row cap (an answer
    // that says it was cut).
    for (query, outcome) in RUNAWAY.into_iter().zip(running) {
        let (status, answer) = outcome.await.unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        let stopped = status == 400
            && (error.contains("stopped after") || error.contains("Resources exhausted"));
        let capped = status == 200 && answer["truncated"] == true;
        assert!(stopped || capped, "{query}: {status} {error}");
    }
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "healthy");
}

#[tokio::test]
async fn a_stop_commits_every_consumed_event_before_exiting() {
    const EVENTS: u64 = 200;
    // No commit comes by itself within the test: what lands, the stop committed.
    let (mut server, client) = Server::ready(&[("COMMIT_INTERVAL_MS", "600000")]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("stop", 0..EVENTS)).await;
    metrics_counting(&server, &client, "", EVENTS).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["lake"]["rowsCommitted"], 0, "nothing committed yet");

    let status = server.stop();
    assert!(status.success(), "lakepulse exited with {status}");
    // It stopped the broker it started, and only after its own Kafka clients: no client was
    // left to log that the broker had gone.
    let broker_gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(server.brokers()).is_err()
    });
    assert!(broker_gone, "the embedded broker outlived lakepulse");
    let log = server.log();
    let stopping = &log[log.find("shutting down").expect("a logged stop")..];
    assert!(!stopping.contains("ERROR"), "{stopping}");
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], EVENTS);
    assert_eq!(lake["distinct_event_ids"], EVENTS);
}

#[tokio::test]
async fn with_a_token_set_pages_and_apis_need_it_and_health_stays_open() {
    const TOKEN: &str = "s3cret-token";
    let server = Server::start_with(&[("LAKEPULSE_TOKEN", TOKEN)]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health: Value = eventually(Duration::from_secs(120), "/health", &server, || async {
        get_json(&client, &server.url("/health")).await
    })
    .await;
    assert_eq!(health["kafka"]["topic"], "web-logs");

    let refused = client.get(server.url("/api/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = client
        .get(server.url("/api/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _) = sql(&client, &server, "SELECT 1").await;
    assert_eq!(status, 401);
    let allowed = client
        .get(server.url("/api/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        client
            .get(server.url("/events"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A person is sent to sign in, and comes back with a cookie.
    let page = client
        .get(server.url("/query?sql=SELECT%201"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/login?next=%2Fquery%3Fsql%3DSELECT%25201"
    );
    let bad = client
        .post(server.url("/login"))
        .form(&[("token", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let signed_in = client
        .post(server.url("/login"))
        .form(&[("token", TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/", "only local paths");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(server.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("total-requests"));
}

/// A tansu broker of the test's own, with its log on disk in `dir`.
/// A tansu broker of the test's own; `storage` as tansu's `--storage-engine` takes it.
fn start_tansu(port: u16, dir: &Path, storage: &str) -> Child {
    let listener = format!("tcp://127.0.0.1:{port}");
    Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
        ])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu on PATH (make test-tools installs it)")
}

#[tokio::test]
async fn a_broker_down_for_30_seconds_shows_red_then_green_and_loses_nothing() {
    let broker_dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let mut broker = start_tansu(broker_port, broker_dir.path(), "sqlite://tansu.db");
    let server = Server::start_with(&[("KAFKA_BROKERS", brokers.as_str()), ("DEMO", "0")]);
    let client = reqwest::Client::new();
    let state = |client: reqwest::Client, url: String| async move {
        let h: Value = get_json(&client, &url).await?;
        h["kafka"]["state"].as_str().map(str::to_owned)
    };
    eventually(
        Duration::from_secs(120),
        "lakepulse up",
        &server,
        || async {
            (state(client.clone(), server.url("/health")).await? == "connected").then_some(())
        },
    )
    .await;
    produce_with_rdkafka(&brokers, &numbered_events("outage", 0..300)).await;

    let outage = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status();
    broker.wait().unwrap();
    eventually(
        Duration::from_secs(30),
        "Kafka down in the status",
        &server,
        || async { (state(client.clone(), server.url("/health")).await? == "down").then_some(()) },
    )
    .await;
    // The rest of the pipeline keeps serving meanwhile.
    assert_eq!(
        client
            .get(server.url("/api/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    let mut broker = start_tansu(broker_port, broker_dir.path(), "sqlite://tansu.db");
    eventually(
        Duration::from_secs(60),
        "Kafka back in the status",
        &server,
        || async {
            (state(client.clone(), server.url("/health")).await? == "connected").then_some(())
        },
    )
    .await;
    let after = numbered_events("outage", 300..500);
    produce_with_rdkafka(&brokers, &after).await;

    let count = eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async {
            let (_, answer) = sql(
                &client,
                &server,
                "SELECT count(*), count(DISTINCT endpoint) FROM logs",
            )
            .await;
            (answer["rows"][0][0].as_u64()? >= 500).then_some(answer)
        },
    )
    .await;
    assert_eq!(count["rows"][0], json!([500, 500]));
    let _ = broker.kill();
    let _ = broker.wait();
}

/// A tmpfs of its own that the test can fill up and free again. Mounting needs root, which
/// is how CI runs; anywhere else the test says so instead of passing without checking.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "this test mounts a tmpfs: run it as root");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk has no space left.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("filler removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_pauses_the_lake_with_a_clear_error_and_loses_nothing() {
    const EACH: u64 = 500;
    let disk = SmallDisk::mount("16m");
    let lake = disk.path().join("web-logs");
    let (mut server, client) = Server::ready(&[("DELTA_LAKE_PATH", lake.to_str().unwrap())]).await;
    let events = |from: u64| numbered_events("disk", from..from + EACH);
    let counts = |client: reqwest::Client, url: String| async move {
        let answer: Value = client
            .post(url)
            .json(&json!({ "query": "SELECT count(*), count(DISTINCT event_id) FROM logs" }))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        Some((
            answer["rows"][0][0].as_u64()?,
            answer["rows"][0][1].as_u64()?,
        ))
    };
    let query_url = server.url("/api/query");
    produce_with_rdkafka(&server.brokers(), &events(0)).await;
    eventually(Duration::from_secs(60), "the first events", &server, || {
        let answer = counts(client.clone(), query_url.clone());
        async move { (answer.await? == (EACH, EACH)).then_some(()) }
    })
    .await;

    disk.fill();
    produce_with_rdkafka(&server.brokers(), &events(EACH)).await;
    let health: Value = eventually(
        Duration::from_secs(60),
        "the lake down",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["lake"]["state"] == "down").then_some(health)
        },
    )
    .await;
    let detail = health["lake"]["detail"].as_str().unwrap();
    assert!(detail.contains("No space left on device"), "{detail}");
    assert_eq!(health["status"], "degraded");
    // What was committed stays readable, and nothing half-written shows up in it.
    assert_eq!(
        counts(client.clone(), query_url.clone()).await,
        Some((EACH, EACH))
    );

    // Rows waiting in memory die with a crash; their offsets were never committed, so the
    // restarted server reads them from Kafka again.
    server.crash_and_restart();
    eventually(
        Duration::from_secs(120),
        "restart on a full disk",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["lake"]["state"] == "down").then_some(())
        },
    )
    .await;
    disk.free();
    eventually(Duration::from_secs(60), "every event once", &server, || {
        let answer = counts(client.clone(), query_url.clone());
        async move { (answer.await? == (2 * EACH, 2 * EACH)).then_some(()) }
    })
    .await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["lake"]["state"], "connected");
    assert_eq!(health["status"], "healthy");
}
