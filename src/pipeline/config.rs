//! Command line and environment: every knob has a flag, an env var and a sane default.

use chrono::{DateTime, Utc};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "lakepulse",
    version,
    about = "Real-time log analytics over Kafka, Delta Lake and DataFusion"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the topic, serve the dashboard, land events in Delta, answer SQL (the default).
    Serve(ServeConfig),
    /// Produce realistic web-log events to the topic over the Kafka protocol.
    Gen(GenConfig),
    /// Publish a real access log (plain or .gz) into the topic, keeping its event times.
    Replay(ReplayConfig),
}

#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Bootstrap servers of an existing Kafka cluster; unset starts the embedded broker.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    #[arg(long, env = "KAFKA_TOPIC", default_value = "web-logs")]
    pub topic: String,
    /// Port of the embedded broker on 127.0.0.1 (used when KAFKA_BROKERS is unset).
    #[arg(long, env = "EMBEDDED_BROKER_PORT", default_value_t = 9092)]
    pub embedded_broker_port: u16,
}

impl KafkaConfig {
    pub fn embedded(&self) -> bool {
        self.brokers.is_none()
    }

    /// The bootstrap address clients should use.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", self.embedded_broker_port))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "lakepulse")]
    pub group_id: String,
    /// Partitions of the topic when lakepulse has to create it.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Where the embedded broker keeps its log and the default lake lives.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The Delta table; defaults to DATA_DIR/delta/web-logs.
    #[arg(long, env = "DELTA_LAKE_PATH")]
    pub delta_lake_path: Option<PathBuf>,
    /// Demo traffic from `lakepulse gen`; on by default only with the embedded broker.
    #[arg(long, env = "DEMO", value_parser = BoolishValueParser::new())]
    pub demo: Option<bool>,
    /// Events per second of demo traffic.
    #[arg(long, env = "DEMO_RATE", default_value_t = 40)]
    pub demo_rate: u32,
    /// Longest time consumed events wait before they are committed to the lake.
    #[arg(long, env = "COMMIT_INTERVAL_MS", default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Where to POST anomalies as JSON (optional).
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,
    /// Rows that make a commit before the interval is up.
    #[arg(long, env = "COMMIT_MAX_ROWS", default_value_t = 50_000)]
    pub commit_max_rows: usize,
    /// Longest a SQL query may run before it is stopped.
    #[arg(long, env = "QUERY_TIMEOUT_SECS", default_value_t = 30)]
    pub query_timeout_secs: u64,
    /// Memory one SQL query may use (joins, sorts, aggregations) before it is refused.
    #[arg(long, env = "QUERY_MEMORY_MB", default_value_t = 512)]
    pub query_memory_mb: usize,
    /// Seconds between compactions, vacuums and checkpoints of the lake.
    #[arg(long, env = "LAKE_MAINTENANCE_SECS", default_value_t = 600)]
    pub lake_maintenance_secs: u64,
    /// The embedded broker's executable.
    #[arg(long, env = "TANSU_BIN", default_value = "tansu")]
    pub tansu_bin: PathBuf,
    /// When set, every page and API call needs this token (bearer header or login cookie).
    #[arg(long, env = "LAKEPULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token, instead of LAKEPULSE_TOKEN.
    #[arg(long, env = "LAKEPULSE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Built browser assets (the wasm bundle, CSS, public/).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
}

impl ServeConfig {
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    pub fn lake_path(&self) -> PathBuf {
        self.delta_lake_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("delta").join("web-logs"))
    }

    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or(self.kafka.embedded())
    }

    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms.max(10))
    }
}

/// A stretch of event time, as `AT:DURATION` in seconds from the first event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub at: f64,
    pub duration: f64,
}

impl Span {
    pub fn contains(&self, secs: f64) -> bool {
        secs >= self.at && secs < self.at + self.duration
    }
}

fn parse_span(text: &str) -> Result<Span, String> {
    let (at, duration) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected AT:DURATION in seconds, e.g. 600:30"))?;
    let number = |n: &str| {
        n.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    match (number(at), number(duration)) {
        (Some(at), Some(duration)) => Ok(Span { at, duration }),
        _ => Err(format!(
            "{text:?}: expected AT:DURATION in seconds, e.g. 600:30"
        )),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

#[derive(Debug, Clone, Args)]
pub struct GenConfig {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// Events per second (of event time).
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seconds of event time to cover; unset runs until stopped.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Event time of the first event (RFC 3339); default now, or with --speedup and
    /// --duration that much event time ago, so the run ends about now.
    #[arg(long, value_parser = parse_time)]
    pub start_time: Option<DateTime<Utc>>,
    /// Event time runs this many times faster than the wall clock (e.g. 60: an hour a minute).
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// No recurring error bursts or slow periods: traffic with only its natural noise.
    #[arg(long)]
    pub steady: bool,
    /// An error burst over every endpoint: AT:DURATION seconds of event time (repeatable).
    #[arg(long, value_parser = parse_span)]
    pub error_burst: Vec<Span>,
    /// Every endpoint eight times slower: AT:DURATION seconds of event time (repeatable).
    #[arg(long, value_parser = parse_span)]
    pub latency_spike: Vec<Span>,
    /// Stop when stdin reaches its end: the process that started gen with a pipe is gone,
    /// however it ended.
    #[arg(long)]
    pub while_stdin_open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// JSON events and access-log lines, told apart line by line.
    Auto,
    /// Apache/Nginx common or combined log lines.
    Combined,
    /// One JSON event per line.
    Json,
}

/// How fast to replay: the log's own pace times a factor, or as fast as the broker takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Factor(f64),
    Max,
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    text.trim_end_matches(['x', 'X'])
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .map(Speed::Factor)
        .ok_or_else(|| format!("{text:?} is not a speed: use 1x, 10x, 0.5x or max"))
}

#[derive(Debug, Clone, Args)]
pub struct ReplayConfig {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// The log file; `.gz` (or gzip content) is decompressed on the fly.
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = ReplayFormat::Auto)]
    pub format: ReplayFormat,
    /// `1x` keeps the log's own pace, `10x` is ten times faster, `max` does not wait.
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    pub speed: Speed,
}
