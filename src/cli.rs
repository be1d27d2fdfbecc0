//! The command line, at the binary's edge: every knob has a flag, an env var and a sane
//! default. `serve` turns its flags into the pipeline's plain [`PipelineConfig`]; the tools
//! take theirs as they are.

use crate::pipeline::config::{KafkaSource, PipelineConfig};
use crate::pipeline::decode::LogFormat as AccessLogFormat;
use crate::pipeline::query::cluster::{ExecutorPlace, SqlCluster};
use chrono::{DateTime, Utc};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `lakepulse [COMMAND]`: serves by default.
#[derive(Debug, Parser)]
#[command(
    name = "lakepulse",
    version,
    about = "Real-time log analytics over Kafka, Delta Lake and DataFusion"
)]
pub struct Cli {
    /// What to run; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How log lines are written to stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: LogFormat,
}

/// The shape of the log lines on stderr.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, coloured only on a terminal.
    #[default]
    Text,
    /// For collectors (journald, Vector, Loki): one JSON object per line, with the fields of
    /// the spans it happened in (an HTTP request's method and route).
    Json,
}

/// The subcommands: one binary runs every part.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the topic, serve the dashboard, land events in Delta, answer SQL (the default).
    Serve(Box<ServeArgs>),
    /// Produce realistic web-log events to the topic over the Kafka protocol.
    Gen(GenArgs),
    /// Publish a real access log (plain or .gz) into the topic, keeping its event times.
    Replay(ReplayArgs),
    /// Follow access logs as `tail -F` does, publishing each new line into the topic.
    Tail(TailArgs),
    /// Run the scheduler of a Ballista cluster for SQL (servers name it in SQL_CLUSTER).
    SqlScheduler(SqlSchedulerArgs),
    /// Run an executor of a Ballista cluster for SQL; it reads the lake itself.
    SqlExecutor(SqlExecutorArgs),
}

/// `lakepulse sql-scheduler`.
#[derive(Debug, Args)]
pub struct SqlSchedulerArgs {
    /// Address to listen on (gRPC for servers and executors, and its REST API).
    #[arg(long, env = "SQL_SCHEDULER_BIND", default_value = "127.0.0.1:50050")]
    pub bind: SocketAddr,
    /// The host name executors and servers reach this scheduler by.
    #[arg(long, env = "SQL_SCHEDULER_HOST", default_value = "localhost")]
    pub external_host: String,
}

/// `lakepulse sql-executor`.
#[derive(Debug, Args)]
pub struct SqlExecutorArgs {
    /// The scheduler to work for, as df://HOST:PORT.
    #[arg(long, env = "SQL_CLUSTER", default_value = "df://localhost:50050")]
    pub scheduler: SqlCluster,
    /// Address to listen on for Arrow Flight (results and shuffle reads).
    #[arg(long, env = "SQL_EXECUTOR_BIND", default_value = "127.0.0.1:50051")]
    pub bind: SocketAddr,
    /// Port of the executor's gRPC service, on the same host.
    #[arg(long, env = "SQL_EXECUTOR_GRPC_PORT", default_value_t = 50052)]
    pub grpc_port: u16,
    /// The host name the scheduler and other executors reach this one by.
    #[arg(long, env = "SQL_EXECUTOR_HOST", default_value = "localhost")]
    pub external_host: String,
    /// Where shuffle files go.
    #[arg(
        long,
        env = "SQL_EXECUTOR_WORK_DIR",
        default_value = "data/sql-executor"
    )]
    pub work_dir: PathBuf,
    /// Tasks run at once; the machine's cores by default.
    #[arg(long, env = "SQL_EXECUTOR_TASKS")]
    pub tasks: Option<usize>,
}

impl SqlExecutorArgs {
    /// Where the executor listens and whom it works for.
    pub fn place(&self) -> ExecutorPlace {
        ExecutorPlace {
            scheduler: self.scheduler.clone(),
            bind: self.bind,
            grpc_port: self.grpc_port,
            external_host: self.external_host.clone(),
            work_dir: self.work_dir.clone(),
            concurrent_tasks: self
                .tasks
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        }
    }
}

/// Where Kafka is and which topic to use: shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers of an existing Kafka cluster; unset starts the embedded broker.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// The topic events are published to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "web-logs")]
    pub topic: String,
    /// Port of the embedded broker on 127.0.0.1 (used when KAFKA_BROKERS is unset).
    #[arg(long, env = "EMBEDDED_BROKER_PORT", default_value_t = 9092)]
    pub embedded_broker_port: u16,
}

impl KafkaArgs {
    /// The cluster named, or the embedded broker.
    pub fn source(&self) -> KafkaSource {
        match &self.brokers {
            Some(brokers) => KafkaSource::Cluster(brokers.clone()),
            None => KafkaSource::Embedded {
                port: self.embedded_broker_port,
            },
        }
    }

    /// The bootstrap address clients should use.
    pub fn bootstrap(&self) -> String {
        self.source().bootstrap()
    }
}

/// `lakepulse serve`: the pipeline's knobs and the web server's.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "lakepulse")]
    group_id: String,
    /// Share the topic's partitions with the other instances of the consumer group, through
    /// Kafka's group protocol; off, this instance reads every partition itself.
    #[arg(long, env = "SCALE_OUT", value_parser = BoolishValueParser::new(), default_value = "false")]
    scale_out: bool,
    /// Partitions of the topic when lakepulse has to create it.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3)]
    partitions: i32,
    /// How access-log lines on the topic are laid out, as GoAccess's `--log-format` takes
    /// it (COMBINED, VCOMBINED, COMMON, VCOMMON, or its specifiers), read by GoAccess's rules;
    /// unset, every usual shape is recognised line by line. JSON events are read either way.
    #[arg(long, env = "ACCESS_LOG_FORMAT")]
    access_log_format: Option<AccessLogFormat>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Where the embedded broker keeps its log and the default lake lives.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The Delta table: a directory, or s3://, az://, abfss:// or gs:// (credentials and
    /// endpoints from the store's usual AWS_*, AZURE_*, GOOGLE_* variables); defaults to
    /// DATA_DIR/delta/web-logs.
    #[arg(long, env = "DELTA_LAKE_PATH")]
    delta_lake_path: Option<String>,
    /// Demo traffic from `lakepulse gen`; on by default only with the embedded broker.
    #[arg(long, env = "DEMO", value_parser = BoolishValueParser::new())]
    demo: Option<bool>,
    /// Events per second of demo traffic.
    #[arg(long, env = "DEMO_RATE", default_value_t = 40)]
    demo_rate: u32,
    /// Longest time consumed events wait before they are committed to the lake. Half a second
    /// keeps produce -> SQL under a second at p99; each commit costs about 20 ms of a core.
    #[arg(long, env = "COMMIT_INTERVAL_MS", default_value_t = 500)]
    commit_interval_ms: u64,
    /// Where to POST anomalies as JSON (optional).
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    alert_webhook_url: Option<String>,
    /// Rows that make a commit before the interval is up.
    #[arg(long, env = "COMMIT_MAX_ROWS", default_value_t = 50_000)]
    commit_max_rows: usize,
    /// Longest a SQL query may run before it is stopped.
    #[arg(long, env = "QUERY_TIMEOUT_SECS", default_value_t = 30)]
    query_timeout_secs: u64,
    /// Memory all SQL queries together may use (joins, sorts, aggregations); a query that
    /// needs more than is left is refused.
    #[arg(long, env = "QUERY_MEMORY_MB", default_value_t = 512)]
    query_memory_mb: usize,
    /// Disk all SQL queries together may spill to (in DATA_DIR/query-spill) once their memory
    /// is used up; a query that needs more is refused.
    #[arg(long, env = "QUERY_SPILL_MB", default_value_t = 4096)]
    query_spill_mb: u64,
    /// SQL queries that may run at once; another waits up to 5 s for one to end, then is
    /// turned away (HTTP 429).
    #[arg(long, env = "QUERY_CONCURRENCY", default_value_t = 4)]
    query_concurrency: usize,
    /// The Ballista cluster SQL runs on, as df://HOST:PORT of its scheduler (see
    /// `lakepulse sql-scheduler`); unset runs SQL in this process.
    #[arg(long, env = "SQL_CLUSTER")]
    sql_cluster: Option<SqlCluster>,
    /// Live-stream (SSE) clients served at once; more get HTTP 503.
    #[arg(long, env = "MAX_SSE_CLIENTS", default_value_t = 20_000)]
    max_sse_clients: u64,
    /// Seconds between compactions of the small files the commits leave.
    #[arg(long, env = "LAKE_COMPACT_SECS", default_value_t = 5)]
    lake_compact_secs: u64,
    /// Seconds between the lake's full maintenance: retention, compaction, vacuum, checkpoint.
    #[arg(long, env = "LAKE_MAINTENANCE_SECS", default_value_t = 600)]
    lake_maintenance_secs: u64,
    /// Rows older than this (`30d`, `12w`; by event date, a whole day at a time) are deleted
    /// at each maintenance; their files go at the vacuum after the table's file retention
    /// (7 days), so time travel reaches them until then. Unset keeps every row.
    #[arg(long, env = "RETENTION", value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    /// The embedded broker's executable.
    #[arg(long, env = "TANSU_BIN", default_value = "tansu")]
    tansu_bin: PathBuf,
    /// When set, every page and API call needs this token (bearer header or login cookie).
    #[arg(long, env = "LAKEPULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token, instead of LAKEPULSE_TOKEN.
    #[arg(long, env = "LAKEPULSE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Host names the server answers to besides addresses and localhost, comma-separated
    /// (`*` for any). Unset: any with a token set, else only addresses and localhost, so a
    /// page elsewhere cannot reach the server through DNS rebinding.
    #[arg(long, env = "ALLOWED_HOSTS")]
    pub allowed_hosts: Option<String>,
    /// Built browser assets (the wasm bundle, CSS, public/); unset: `target/site` in a
    /// checkout, else `../share/lakepulse/site` beside the binary, where `make install` puts it.
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    site_root: Option<String>,
}

/// Where `make run` builds the site, relative to the checkout.
const CHECKOUT_SITE: &str = "target/site";

impl ServeArgs {
    /// Where the site's assets are: as set, in the checkout, or where `make install` put them
    /// beside the binary.
    pub fn site_root(&self) -> String {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        let installed = std::env::current_exe().ok().and_then(|exe| {
            let root = exe.parent()?.parent()?.join("share/lakepulse/site");
            root.is_dir().then(|| root.to_string_lossy().into_owned())
        });
        match installed {
            Some(root) if !Path::new(CHECKOUT_SITE).is_dir() => root,
            _ => CHECKOUT_SITE.to_owned(),
        }
    }

    /// Where the web server listens.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The pipeline's settings, defaults resolved.
    pub fn pipeline(&self) -> PipelineConfig {
        // Demo traffic is for trying lakepulse out: on with the embedded broker unless asked.
        let demo = self.demo.unwrap_or(self.kafka.brokers.is_none());
        PipelineConfig {
            kafka: self.kafka.source(),
            tansu_bin: self.tansu_bin.clone(),
            topic: self.kafka.topic.clone(),
            group_id: self.group_id.clone(),
            scale_out: self.scale_out,
            partitions: self.partitions,
            access_log_format: self.access_log_format.clone(),
            lake_path: self.delta_lake_path.clone().unwrap_or_else(|| {
                self.data_dir
                    .join("delta")
                    .join("web-logs")
                    .to_string_lossy()
                    .into_owned()
            }),
            data_dir: self.data_dir.clone(),
            demo_rate: demo.then_some(self.demo_rate),
            commit_interval: Duration::from_millis(self.commit_interval_ms.max(10)),
            commit_max_rows: self.commit_max_rows.max(1),
            alert_webhook_url: self.alert_webhook_url.clone(),
            query_timeout: Duration::from_secs(self.query_timeout_secs),
            query_memory_bytes: self.query_memory_mb.saturating_mul(1024 * 1024),
            query_spill_bytes: self.query_spill_mb.saturating_mul(1024 * 1024),
            query_concurrency: self.query_concurrency,
            max_sse_clients: self.max_sse_clients,
            lake_compact_every: Duration::from_secs(self.lake_compact_secs.max(1)),
            lake_maintenance_every: Duration::from_secs(self.lake_maintenance_secs.max(1)),
            retention: self.retention,
            sql_cluster: self.sql_cluster.clone(),
        }
    }
}

/// A stretch of event time, as `AT:DURATION` in seconds from the first event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Seconds from the first event.
    pub at: f64,
    /// Seconds it lasts.
    pub duration: f64,
}

impl Span {
    /// Whether `secs` (from the first event) falls in the span.
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

/// `lakepulse gen`: the traffic generator's knobs.
#[derive(Debug, Clone, Args)]
pub struct GenArgs {
    /// Where to produce.
    #[command(flatten)]
    pub kafka: KafkaArgs,
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

/// What the lines of a replayed file are.
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
    /// The log's own pace times this factor.
    Factor(f64),
    /// As fast as the broker takes it.
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

/// `lakepulse replay`: which file, read how, at what pace.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Where to publish.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The log file; `.gz` (or gzip content) is decompressed on the fly.
    pub file: PathBuf,
    /// What the lines are.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Auto)]
    pub format: ReplayFormat,
    /// How access-log lines are laid out, as GoAccess's `--log-format` takes it: COMBINED,
    /// VCOMBINED, COMMON, VCOMMON, or its specifiers (`%h %^[%d:%t %^] "%r" %s %b "%R" "%u"`),
    /// read by GoAccess's rules. Unset, every usual shape is recognised line by line.
    #[arg(long, env = "ACCESS_LOG_FORMAT")]
    pub access_log_format: Option<AccessLogFormat>,
    /// `1x` keeps the log's own pace, `10x` is ten times faster, `max` does not wait.
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    pub speed: Speed,
}

/// `lakepulse tail`: which files to follow, and where to remember how far they were read.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Where to publish.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The files to follow by name, through rotation and truncation; `-` reads standard input
    /// to its end.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// What the lines are.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Auto)]
    pub format: ReplayFormat,
    /// How access-log lines are laid out, as GoAccess's `--log-format` takes it: COMBINED,
    /// VCOMBINED, COMMON, VCOMMON, or its specifiers (`%h %^[%d:%t %^] "%r" %s %b "%R" "%u"`),
    /// read by GoAccess's rules. Unset, every usual shape is recognised line by line.
    #[arg(long, env = "ACCESS_LOG_FORMAT")]
    pub access_log_format: Option<AccessLogFormat>,
    /// Where each file's position is kept across restarts.
    #[arg(long, env = "TAIL_STATE", default_value = "lakepulse-tail.json")]
    pub state: PathBuf,
    /// Publish what a file already holds when it is first seen, not only what is written after.
    #[arg(long)]
    pub from_start: bool,
}
