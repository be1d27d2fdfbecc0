//! The harness every integration test and the live benchmark share: the real binary started
//! on free ports with its own broker and a temp data dir, and the clients that talk to it
//! (rdkafka, the Python clients, HTTP, SSE).
// Each test binary or bench that includes this uses part of it.
#![allow(dead_code)]

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOPIC: &str = "web-logs";

/// A port nothing listens on, for a server a test starts a moment later. Picked below the
/// kernel's ephemeral range (32768-60999): a port the kernel hands out for `:0` may meanwhile
/// become the local port of another test's outgoing connection (the ten-thousand-client test
/// holds a third of the range), and a server meant for it then fails to bind while the test
/// talks to a stranger. Each port is handed out once per test binary.
pub fn free_port() -> u16 {
    use rand::Rng;
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::rng();
    loop {
        let port = rng.random_range(20_000..32_000);
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
}

pub struct Server {
    child: Child,
    /// The HTTP port.
    pub port: u16,
    broker_port: u16,
    /// DATA_DIR: the embedded broker's store, the lake, `server.log`.
    pub data_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
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

    pub fn spawn(port: u16, broker_port: u16, data_dir: &Path, env: &[(String, String)]) -> Child {
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
    pub async fn ready(env: &[(&str, &str)]) -> (Server, reqwest::Client) {
        let server = Server::start_with(env);
        let client = reqwest::Client::new();
        let _: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
        (server, client)
    }

    /// Kills lakepulse the way a crash would (SIGKILL: no cleanup, its broker left running)
    /// and starts it again on the same data and ports.
    pub fn crash_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.child = Server::spawn(self.port, self.broker_port, self.data_dir.path(), &self.env);
    }

    /// Kills lakepulse the way a crash would (SIGKILL), leaving it down.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// How lakepulse exited, if it did within `within`.
    pub fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for lakepulse") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The embedded broker's process id, as lakepulse recorded it.
    pub fn broker_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data_dir.path().join("broker").join("tansu.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts lakepulse again on the same data and ports, after it has exited.
    pub fn start_again(&mut self) {
        assert!(
            self.child.try_wait().expect("lakepulse").is_some(),
            "lakepulse still runs"
        );
        self.child = Server::spawn(self.port, self.broker_port, self.data_dir.path(), &self.env);
    }

    /// Stops lakepulse as an operator does (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    pub fn lake_path(&self) -> PathBuf {
        self.data_dir.path().join("delta").join("web-logs")
    }

    /// The server process's CPU time so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: Vec<f64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse().ok())
            .collect();
        ticks.iter().sum::<f64>() / 100.0
    }

    /// The server process's resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    pub fn log(&self) -> String {
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

/// Azurite, Azure Blob Storage's emulator (npm), on a free port, in memory: a real object
/// store speaking Azure's REST API, with the conditional writes Delta's commits rely on. Its
/// container `lake` is made at start.
pub struct Azurite {
    child: Child,
    port: u16,
}

impl Azurite {
    /// Starts one, and returns once it listens and holds the container.
    pub fn start() -> Azurite {
        let port = free_port();
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/servers/node_modules/.bin/azurite-blob");
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
            // Its telemetry tries to reach Azure on every start, and prints failing here.
            .arg("--disableTelemetry")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (`make test-tools` installs it)", bin.display()));
        let azurite = Azurite { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite not listening within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        run_python_with(&["azurite_container.py", "lake"], &azurite.env());
        azurite
    }

    /// What lakepulse and the Python readers need to reach it: the standard variables of
    /// object_store's Azure client.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
        ]
    }

    /// The URL of table `name` in the container.
    pub fn table(&self, name: &str) -> String {
        format!("az://lake/{name}")
    }

    /// The environment of a lakepulse whose table is `name` in the container.
    pub fn lakepulse_env(&self, name: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![("DELTA_LAKE_PATH", self.table(name))];
        env.extend(self.env());
        env
    }
}

/// `env` as [`Server::ready`] takes it.
pub fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url` as JSON; None when it does not answer or the answer is not JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Waits until lakepulse has started its pipeline (it serves `/health` from the moment it
/// binds, as "starting") and returns the first `/health` past that.
pub async fn started(
    client: &reqwest::Client,
    server: &Server,
    within: Duration,
    what: &str,
) -> Value {
    eventually(within, what, server, || async {
        get_json(client, &server.url("/health"))
            .await
            .filter(|health| health["status"] != "starting")
    })
    .await
}

/// Polls `probe` until it returns Some or `within` runs out.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, server: &Server, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_among(within, what, &[server], probe).await
}

/// [`eventually`] for what several servers decide between them: a time out shows every log.
pub async fn eventually_among<T, F, Fut>(
    within: Duration,
    what: &str,
    servers: &[&Server],
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        // A probe that never answers (a port another process took, which reads the request
        // and says nothing) fails at the deadline like any other, with the logs.
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(left, probe()).await {
            return value;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = servers
                .iter()
                .map(|server| format!("--- server log ({}) ---\n{}", server.url(""), server.log()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn python() -> PathBuf {
    let venv = std::env::var("LAKEPULSE_VENV").expect(
        "LAKEPULSE_VENV must name the venv with the Python clients (`make test` sets it up)",
    );
    Path::new(&venv).join("bin").join("python")
}

pub fn run_python(args: &[&str]) -> String {
    run_python_with(args, &[])
}

/// As [`run_python`], with `env` added to the script's environment.
pub fn run_python_with(args: &[&str], env: &[(&str, String)]) -> String {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients");
    let output = Command::new(python())
        .arg(script_dir.join(args[0]))
        .args(&args[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
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

pub async fn produce_with_rdkafka(brokers: &str, values: &[Vec<u8>]) {
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
pub fn produce_with_python(brokers: &str, count: u64, client: &str, codec: &str) {
    produce_tagged_with_python(brokers, count, client, codec, "");
}

/// As [`produce_with_python`], each event's message `TAG N` (N counting from 0) when `tag`
/// is not empty, so each run's events can be told apart in SQL.
pub fn produce_tagged_with_python(brokers: &str, count: u64, client: &str, codec: &str, tag: &str) {
    let produced = run_python(&[
        "produce.py",
        "--tag",
        tag,
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

/// Whether `/health` says ingest has read every partition to its end, in a probe the broker
/// answered after `since` (an older answer, kept while a busy broker answers late, can predate
/// the messages): no lag, or nothing in it to read (a partition nothing was consumed from has
/// no position).
pub fn caught_up(health: &Value, since: chrono::DateTime<chrono::Utc>) -> bool {
    let probed_at = health["kafka"]["partitionsProbedAt"]
        .as_str()
        .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok());
    probed_at.is_some_and(|at| at > since)
        && health["kafka"]["partitions"]
            .as_array()
            .is_some_and(|partitions| {
                !partitions.is_empty()
                    && partitions.iter().all(|p| {
                        p["lag"] == 0 || (p["position"].is_null() && p["highWatermark"] == 0)
                    })
            })
}

/// `/api/metrics?{query}` once it counts `total` requests, and not one more.
pub async fn metrics_counting(
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
    let counted_at = chrono::Utc::now();
    // Again once ingest has read to the end of every partition: a duplicate read after the
    // first sample that reached the total shows here.
    let health = server.url("/health");
    eventually(
        Duration::from_secs(60),
        "ingest at the end of the topic",
        server,
        || async {
            let h: Value = get_json(client, &health).await?;
            caught_up(&h, counted_at).then_some(())
        },
    )
    .await;
    let metrics: Value = get_json(client, &url).await.expect("the metrics");
    assert_eq!(
        metrics["totalRequests"], total,
        "counted more once ingest caught up"
    );
    metrics
}

/// Minimal JSON events with numbered endpoints under `prefix`, one per message.
pub fn numbered_events(prefix: &str, numbers: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    numbers
        .map(|i| format!(r#"{{"endpoint":"/{prefix}/{i}","status":200}}"#).into_bytes())
        .collect()
}

/// One Server-Sent Events message: its name (empty for a comment), id and data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// The messages of an SSE response as they arrive; a gzip stream is inflated as it comes, as
/// a browser does.
pub struct SseMessages {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    inflater: Option<flate2::write::GzDecoder<Vec<u8>>>,
    unread: Vec<u8>,
}

impl SseMessages {
    pub fn new(response: reqwest::Response) -> Self {
        let gzip = response
            .headers()
            .get("content-encoding")
            .is_some_and(|e| e == "gzip");
        SseMessages {
            inflater: gzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
            body: Box::pin(response.bytes_stream()),
            unread: Vec::new(),
        }
    }

    /// The next whole message; None once the stream ends.
    pub async fn next(&mut self) -> Option<SseMessage> {
        use std::io::Write;
        loop {
            if let Some(end) = self.unread.windows(2).position(|w| w == b"\n\n") {
                let message: Vec<u8> = self.unread.drain(..end + 2).collect();
                let message = String::from_utf8(message).expect("an SSE message is UTF-8");
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                        .map(str::to_owned)
                };
                return Some(SseMessage {
                    event: field("event").unwrap_or_default(),
                    id: field("id"),
                    data: field("data").unwrap_or_default(),
                });
            }
            let chunk = self.body.next().await?.expect("an SSE chunk");
            match &mut self.inflater {
                Some(inflater) => {
                    inflater.write_all(&chunk).expect("a gzip stream");
                    inflater.flush().expect("a gzip stream");
                    self.unread.append(inflater.get_mut());
                }
                None => self.unread.extend_from_slice(&chunk),
            }
        }
    }

    /// The events of the next `log` batch, and the batch's id.
    pub async fn next_log_batch(&mut self) -> Option<(Vec<Value>, String)> {
        loop {
            let message = self.next().await?;
            if message.event == "log" {
                let batch = serde_json::from_str(&message.data).expect("a JSON array");
                return Some((batch, message.id.expect("a log batch has an id")));
            }
        }
    }
}

/// Opens `/events` as a reconnecting client would and collects the events of `log` batches
/// until it has `count`.
pub async fn sse_log_events(
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
    let mut messages = SseMessages::new(response);
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while events.len() < count {
            let (batch, _) = messages.next_log_batch().await.expect("stream open");
            events.extend(batch);
        }
    })
    .await
    .expect("the log events within 30 s");
    events
}

/// One message of the dead-letter topic: the original bytes and what its headers say.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: String,
    pub error: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub payload: Vec<u8>,
}

/// Reads `count` messages of the dead-letter topic: (reason header, original bytes).
pub async fn dead_letters(brokers: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    read_dead_letters(brokers, count, Duration::ZERO)
        .await
        .into_iter()
        .map(|letter| (letter.reason, letter.payload))
        .collect()
}

/// Reads the dead-letter topic to its end: at least `at_least` messages, then on until none
/// has come for `quiet`.
pub async fn dead_letters_to_end(
    brokers: &str,
    at_least: usize,
    quiet: Duration,
) -> Vec<DeadLetter> {
    read_dead_letters(brokers, at_least, quiet).await
}

async fn read_dead_letters(brokers: &str, at_least: usize, quiet: Duration) -> Vec<DeadLetter> {
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
    loop {
        let wait = match letters.len() < at_least {
            true => Duration::from_secs(20),
            false if quiet.is_zero() => break,
            false => quiet,
        };
        let message = match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(message) => message.expect("a dead letter"),
            Err(_) if letters.len() >= at_least => break,
            Err(_) => panic!("{} dead letters within 20 s, not {at_least}", letters.len()),
        };
        let header = |name: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| panic!("a {name} header"))
        };
        letters.push(DeadLetter {
            reason: header("reason"),
            error: header("error"),
            source_partition: header("source-partition").parse().expect("a partition"),
            source_offset: header("source-offset").parse().expect("an offset"),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }
    letters
}

/// The first row of `query`'s answer from the API at `url`, or None while the server does not
/// answer it (say, while it restarts).
pub async fn first_row(client: &reqwest::Client, url: &str, query: &str) -> Option<Vec<Value>> {
    let answer: Value = client
        .post(url)
        .json(&json!({ "query": query }))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["rows"].get(0)?.as_array().cloned()
}

pub async fn sql(client: &reqwest::Client, server: &Server, query: &str) -> (u16, Value) {
    let response = client
        .post(server.url("/api/query"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("query request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json answer"))
}

/// Reads an `/events` stream until a `metrics` frame counts `total` requests.
pub async fn live_metrics_counting(sse: &mut reqwest::Response, total: u64) -> Value {
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
pub fn generate(server: &Server, count: u64, rate: u64) {
    generate_to(&server.brokers(), count, rate);
}

/// Runs `lakepulse replay` of the combined-format `log` into the server's topic, as fast as
/// it goes; its report is on stderr.
pub fn replay_combined(server: &Server, log: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lakepulse"))
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
        .expect("run replay")
}

/// Runs `lakepulse gen` against `brokers` until it has produced `count` events.
pub fn generate_to(brokers: &str, count: u64, rate: u64) {
    let gen = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args([
            "gen",
            "--count",
            &count.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .env("KAFKA_BROKERS", brokers)
        .output()
        .expect("run gen");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
}

/// Produces `count` events at `rate` on a blocking thread, so the test's own clients go on
/// reading meanwhile; resolves when the producer has finished, to when it did.
pub async fn generate_while_reading(server: &Server, count: u64, rate: u64) -> Instant {
    generate_while_reading_owned(server.brokers(), count, rate).await;
    Instant::now()
}

/// As [`generate_while_reading`], to `brokers`: a future that owns what it needs, so it can
/// run on a task of its own.
pub async fn generate_while_reading_owned(brokers: String, count: u64, rate: u64) {
    tokio::task::spawn_blocking(move || generate_to(&brokers, count, rate))
        .await
        .expect("gen ran");
}

/// A tansu broker of the test's own; `storage` as tansu's `--storage-engine` takes it.
pub fn start_tansu(port: u16, dir: &Path, storage: &str) -> Tansu {
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
        .map(|child| Tansu { child, _dir: None })
        .expect("tansu on PATH (make test-tools installs it)")
}

/// A tansu broker on a port and in a directory of its own, and its address.
pub fn own_tansu(storage: &str) -> (Tansu, String) {
    let dir = tempfile::tempdir().expect("broker dir");
    let port = free_port();
    let mut broker = start_tansu(port, dir.path(), storage);
    broker._dir = Some(dir);
    (broker, format!("127.0.0.1:{port}"))
}

/// A test's own broker, killed however the test ends: a panicking test would leave it running.
pub struct Tansu {
    child: Child,
    /// The directory it was started in, when it is the broker's own.
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Tansu {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Tansu {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Ballista cluster of lakepulse's own binary on loopback: `lakepulse sql-scheduler` and
/// executors (`lakepulse sql-executor`), each logging to its file in the work dir.
pub struct SqlCluster {
    pub scheduler_port: u16,
    scheduler: Child,
    executors: Vec<Child>,
    pub work: tempfile::TempDir,
}

impl SqlCluster {
    /// Starts a scheduler and `executors` executors of one task each, and returns once the
    /// scheduler lists them all.
    pub async fn start(executors: usize) -> SqlCluster {
        SqlCluster::start_with(executors, &[]).await
    }

    /// [`SqlCluster::start`] with `env` in every part's environment (the lake's credentials).
    pub async fn start_with(executors: usize, env: &[(&'static str, String)]) -> SqlCluster {
        let work = tempfile::tempdir().expect("temp dir");
        let scheduler_port = free_port();
        let part = |name: &str, args: &[String]| {
            let log = std::fs::File::create(work.path().join(format!("{name}.log"))).expect("log");
            Command::new(env!("CARGO_BIN_EXE_lakepulse"))
                .args(args)
                .env("RUST_LOG", "info")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a cluster part")
        };
        let scheduler = part(
            "scheduler",
            &[
                "sql-scheduler".into(),
                "--bind".into(),
                format!("127.0.0.1:{scheduler_port}"),
                "--external-host".into(),
                "127.0.0.1".into(),
            ],
        );
        // An executor that finds no scheduler exits, as Ballista's own does: on a loaded
        // machine the scheduler may take longer to listen than an executor takes to start.
        let listening = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", scheduler_port)).is_err() {
            assert!(
                Instant::now() < listening,
                "the SQL scheduler did not listen within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let executors = (0..executors)
            .map(|i| {
                part(
                    &format!("executor-{i}"),
                    &[
                        "sql-executor".into(),
                        "--scheduler".into(),
                        format!("df://127.0.0.1:{scheduler_port}"),
                        "--bind".into(),
                        format!("127.0.0.1:{}", free_port()),
                        "--grpc-port".into(),
                        free_port().to_string(),
                        "--external-host".into(),
                        "127.0.0.1".into(),
                        "--work-dir".into(),
                        work.path()
                            .join(format!("executor-{i}"))
                            .display()
                            .to_string(),
                        "--tasks".into(),
                        "1".into(),
                    ],
                )
            })
            .collect::<Vec<_>>();
        let cluster = SqlCluster {
            scheduler_port,
            scheduler,
            executors,
            work,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.executors_listed(&client).await != Some(cluster.executors.len()) {
            assert!(
                Instant::now() < deadline,
                "the scheduler did not list {} executors within 60 s:\n{}",
                cluster.executors.len(),
                cluster.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cluster
    }

    /// SQL_CLUSTER for a server using this cluster.
    pub fn address(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }

    /// The executors the scheduler lists, or None while it does not answer.
    pub async fn executors_listed(&self, client: &reqwest::Client) -> Option<usize> {
        let url = format!("http://127.0.0.1:{}/api/executors", self.scheduler_port);
        Some(get_json(client, &url).await?.as_array()?.len())
    }

    /// The jobs the scheduler has been given.
    pub async fn jobs(&self, client: &reqwest::Client) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/api/jobs", self.scheduler_port);
        get_json(client, &url)
            .await
            .and_then(|jobs| jobs.as_array().cloned())
            .expect("the scheduler's jobs")
    }

    /// Kills executor `i` as a crash would (SIGKILL).
    pub fn kill_executor(&mut self, i: usize) {
        self.executors[i].kill().expect("SIGKILL");
        self.executors[i].wait().expect("reaped");
    }

    /// Kills the scheduler as a crash would (SIGKILL).
    pub fn kill_scheduler(&mut self) {
        self.scheduler.kill().expect("SIGKILL");
        self.scheduler.wait().expect("reaped");
    }

    /// Every part's log.
    pub fn log(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self.work.path())
            .expect("work dir")
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "log") {
                logs += &format!("--- {}\n", entry.path().display());
                logs += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        logs
    }
}

impl Drop for SqlCluster {
    fn drop(&mut self) {
        for part in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = part.kill();
            let _ = part.wait();
        }
    }
}
