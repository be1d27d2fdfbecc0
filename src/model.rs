//! Types the server computes with and the browser renders: one definition for both sides.

use crate::visits::Panel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One HTTP request as a web service reports it: the event schema of the `web-logs` topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub timestamp: DateTime<Utc>,
    pub level: String,
    pub source: String,
    pub method: String,
    pub endpoint: String,
    pub status: u16,
    /// Milliseconds; None when the producer did not measure it (a plain combined log line).
    pub response_time: Option<f64>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub bytes: u64,
    pub message: String,
    /// The access-log line the event was read from, as the web server wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The client's `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The `Referer` header: the page whose link or script asked for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The virtual host the request was for (its `Host` header, or the server's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// The protocol of the request line: `HTTP/1.1`, `HTTP/2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The query string, without its `?` (the endpoint is the path alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The browser or crawler the user agent names: `Chrome`, `Firefox`, `Googlebot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// The client's operating system, as its user agent names it: `Windows 10`, `Android`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The kind of device: `Desktop`, `Smartphone`, `Feature phone`, `Appliance`, `Bot`, `Other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// A crawler, or a program that calls itself a bot; None with no user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<bool>,
    /// The members of a JSON event that lakepulse has no column for, as a JSON object: a
    /// producer's own fields are kept, and SQL reads them with `json_get_str(attributes, 'k')`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

impl LogEvent {
    /// An error is a server-side failure (5xx) or anything the service itself logged as ERROR.
    pub fn is_error(&self) -> bool {
        self.status >= 500 || self.level.eq_ignore_ascii_case("ERROR")
    }
}

/// An event as the live view keeps it, numbered in the order lakepulse consumed it: a browser
/// tells rows apart by `seq`, and a reconnecting stream resumes after the last it saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LiveEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: LogEvent,
}

/// What counts as an error everywhere in lakepulse.
pub const ERROR_DEFINITION: &str = "status >= 500 or level ERROR";

/// The time windows metrics are computed over, by event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Window {
    #[serde(rename = "1m")]
    Minute,
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    Hour,
    /// Since lakepulse started.
    #[serde(rename = "all")]
    SinceStart,
}

impl Window {
    pub const ALL: [Window; 4] = [
        Window::Minute,
        Window::FiveMinutes,
        Window::Hour,
        Window::SinceStart,
    ];

    /// Length in seconds; None for "since start".
    pub fn seconds(self) -> Option<i64> {
        match self {
            Window::Minute => Some(60),
            Window::FiveMinutes => Some(300),
            Window::Hour => Some(3600),
            Window::SinceStart => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::Minute => "1m",
            Window::FiveMinutes => "5m",
            Window::Hour => "1h",
            Window::SinceStart => "all",
        }
    }

    pub fn parse(label: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.label() == label)
    }
}

/// Response-time percentiles in ms (None when no event in the window carried a time).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Everything about one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    pub window: Window,
    /// Seconds of event time the window covers so far.
    pub span_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub events_per_sec: f64,
    /// Percent.
    pub error_rate: f64,
    pub avg_response_time: Option<f64>,
    pub percentiles: Percentiles,
    pub bytes: u64,
    /// "2xx" → count, etc.
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    pub endpoint: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p95: Option<f64>,
}

/// The endpoints that stand out in a window, three ways.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EndpointRanking {
    pub by_volume: Vec<EndpointStats>,
    pub by_errors: Vec<EndpointStats>,
    pub by_p95: Vec<EndpointStats>,
}

/// The live metrics, computed from consumed events. The seed's fields are for the last
/// minute of event time; `windows` has 1m, 5m, 1h and since start; the breakdowns
/// (`percentiles`, `byStatus`, `byEndpoint`, `bySource`) are for `window`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub events_per_sec: f64,
    /// Percent of requests that were errors (see `errorDefinition`).
    pub error_rate: f64,
    /// Mean response time in ms, of the events that carry one.
    pub avg_response_time: f64,
    /// Distinct session ids in the last 5 minutes of event time.
    pub active_sessions: u64,
    /// Bytes of Kafka message values consumed since start.
    pub data_processed: u64,
    pub total_requests: u64,
    pub total_errors: u64,
    /// Messages that could not be decoded, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Wall-clock time of this snapshot.
    pub last_update: DateTime<Utc>,
    /// The event-time clock the windows end at: the newest event time seen, advanced by the
    /// wall-clock time since it arrived (so replayed logs land in their own minutes).
    pub event_time: Option<DateTime<Utc>>,
    pub error_definition: String,
    pub windows: Vec<WindowStats>,
    pub window: Window,
    pub percentiles: Percentiles,
    pub by_status: BTreeMap<String, u64>,
    pub by_endpoint: EndpointRanking,
    pub by_source: BTreeMap<String, u64>,
    /// The last ten minutes of event time in 10 s steps, oldest first: what the charts draw.
    pub timeline: Vec<TimelinePoint>,
}

/// GoAccess's report over a window of event time: unique visitors and each panel's busiest
/// keys (`GET /api/visits`, the `visits` frames of `GET /events`). `from` and `to` are the
/// window's bounds, for the same question in SQL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VisitReport {
    /// The window reported.
    pub window: Window,
    /// The first event time counted; None since start.
    pub from: Option<DateTime<Utc>>,
    /// The first event time no longer counted.
    pub to: Option<DateTime<Utc>>,
    /// Distinct client address, user agent and UTC day triples of requests not answered 4xx;
    /// exact up to 128, estimated (HyperLogLog, about 1.6 %) beyond.
    pub visitors: u64,
    /// Every panel, in [`Panel::ALL`]'s order.
    pub panels: Vec<PanelRows>,
}

/// One panel's busiest keys, busiest first (an hour-of-day panel: by hour).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PanelRows {
    /// Which panel.
    pub panel: Panel,
    /// Requests the panel counted in the window, all keys together.
    pub hits: u64,
    /// The busiest keys; "(other)" sums keys too rare to keep on their own.
    pub rows: Vec<KeyHits>,
}

/// Requests under one key of a panel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct KeyHits {
    /// The browser, path, site or hour.
    pub key: String,
    /// Requests under it.
    pub hits: u64,
}

/// One 10-second step of the charts' timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TimelinePoint {
    pub t: DateTime<Utc>,
    pub requests: u64,
    pub errors: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// One point of a chart series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesPoint {
    pub t: DateTime<Utc>,
    pub v: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub metric: String,
    pub window: Window,
    pub step_secs: i64,
    pub points: Vec<SeriesPoint>,
}

/// Where the pipeline stands, stage by stage. `status`, `topic`, `clients` and
/// `kafkaConnected` are the seed's fields; the stages' detail sits beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: HealthStatus,
    /// The topic ingest reads.
    pub topic: String,
    /// Live-stream (SSE) clients connected.
    pub clients: u64,
    /// Whether the broker answers and ingest reads (every partition, or some of them).
    pub kafka_connected: bool,
    pub uptime_secs: u64,
    pub kafka: KafkaStatus,
    pub lake: LakeStatus,
    /// Where SQL runs and whether it can.
    pub sql: SqlStatus,
    pub demo_traffic: bool,
    /// Messages set aside (copied to `kafka.deadLetterTopic`), by reason.
    pub malformed: BTreeMap<String, u64>,
}

/// The verdict of `GET /health`: `ok` is the seed's word for every stage up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The server listens; the broker, the topic or the table are still being set up.
    Starting,
    /// Every stage up.
    Ok,
    /// Serving, with a stage joining its group or some partitions without a leader.
    Degraded,
    /// Ingest cannot read or the lake cannot write.
    Down,
}

impl HealthStatus {
    /// The verdict from the stages' states. SQL that cannot run degrades the pipeline but
    /// does not stop it: ingest, the lake and the live view go on.
    pub fn of(kafka: StageState, lake: StageState, sql: StageState) -> Self {
        match (kafka, lake, sql) {
            (StageState::Down, _, _) | (_, StageState::Down, _) => HealthStatus::Down,
            (StageState::Connected, _, StageState::Connected) => HealthStatus::Ok,
            _ => HealthStatus::Degraded,
        }
    }

    /// Whether a probe should read this as working (HTTP 200) rather than 503.
    pub fn serving(self) -> bool {
        matches!(self, HealthStatus::Ok | HealthStatus::Degraded)
    }
}

/// Why an instance cannot take its share of the work yet, for `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", tag = "stage")]
pub enum NotReady {
    /// The pipeline is still starting.
    Starting,
    /// The broker is unreachable, fetches fail, ingest stopped, or the group has not assigned
    /// partitions yet.
    Kafka { state: StageState, detail: String },
    /// The last commit failed or the sink stopped.
    Lake { state: StageState, detail: String },
}

impl Health {
    /// Ready: Kafka reachable with partitions assigned, the lake writable, ingest running.
    pub fn readiness(&self) -> Result<(), NotReady> {
        match (self.kafka.state, self.lake.state) {
            (StageState::Down | StageState::Connecting, _) => Err(NotReady::Kafka {
                state: self.kafka.state,
                detail: self.kafka.detail.clone(),
            }),
            (_, StageState::Down) => Err(NotReady::Lake {
                state: self.lake.state,
                detail: self.lake.detail.clone(),
            }),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct KafkaStatus {
    pub state: StageState,
    pub brokers: String,
    pub embedded: bool,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub detail: String,
    pub partitions: Vec<PartitionProgress>,
    /// When the broker last answered a progress probe: `partitions` and `lag` are as of then.
    /// A busy broker answering late keeps the last answer, so a reader must not take an old
    /// one for now.
    pub partitions_probed_at: Option<DateTime<Utc>>,
    /// Seconds since `partitions_probed_at`, as of this report.
    pub partitions_age_secs: Option<f64>,
    /// Sum of the partitions' lag, where known.
    pub lag: Option<i64>,
}

/// How far ingest is through one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartitionProgress {
    pub partition: i32,
    /// Whether the partition has a leader broker.
    pub available: bool,
    /// Whether this instance writes it (another instance of the consumer group does if not).
    #[serde(default)]
    pub written_here: bool,
    /// Next offset ingest will read.
    pub position: Option<i64>,
    pub high_watermark: Option<i64>,
    /// Messages behind the end. Some brokers (tansu among them) report high watermarks below
    /// the true end, so this can read low.
    pub lag: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LakeStatus {
    pub state: StageState,
    pub path: String,
    pub version: Option<u64>,
    pub rows_committed: u64,
    /// Data files in the table and their bytes, as of the last commit or maintenance.
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    /// The earliest event date the table holds (see `RETENTION`).
    pub oldest_date: Option<chrono::NaiveDate>,
    pub last_commit: Option<DateTime<Utc>>,
    /// Seconds since the last commit, as of this report.
    pub last_commit_age_secs: Option<f64>,
    /// How long the last commit's events took from their producer to being visible to SQL
    /// (the slowest of them), in ms.
    pub freshness_ms: Option<f64>,
    /// When compaction, vacuum and checkpointing last ran, and what they did.
    pub last_maintenance: Option<DateTime<Utc>>,
    pub maintenance: String,
    pub detail: String,
}

/// The SQL stage: in-process, or a Ballista cluster and what its scheduler last said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SqlStatus {
    pub state: StageState,
    pub engine: SqlEngine,
    /// Executors the cluster's scheduler has heard from lately.
    pub executors: Option<usize>,
    /// Why SQL cannot run, when it cannot; the cluster's last answer otherwise.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    Connecting,
    Connected,
    Partial,
    Down,
}

impl StageState {
    pub fn label(self) -> &'static str {
        match self {
            StageState::Connecting => "connecting",
            StageState::Connected => "connected",
            StageState::Partial => "partial",
            StageState::Down => "down",
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            StageState::Connecting => "⏳",
            StageState::Connected => "🟢",
            StageState::Partial => "🟡",
            StageState::Down => "🔴",
        }
    }
}

/// One SQL query: over the latest version of the table, or over `version` (time travel).
/// With an `id`, it can be cancelled while it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    pub query: String,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub id: Option<String>,
}

impl QueryRequest {
    pub fn sql(query: impl Into<String>) -> Self {
        QueryRequest {
            query: query.into(),
            ..QueryRequest::default()
        }
    }
}

/// A query someone ran, as the workbench's history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub sql: String,
    #[serde(default)]
    pub version: Option<u64>,
    pub at: DateTime<Utc>,
    pub rows: usize,
    /// Named `executionTime` in histories written before 2026-12.
    #[serde(alias = "executionTime")]
    pub execution_ms: f64,
}

/// A query kept under a name, shared by its number (`/query?saved=3`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SavedQuery {
    /// Its number: kept through renames, never given to another query.
    pub id: u64,
    pub name: String,
    pub sql: String,
    /// The table version it reads; None for the latest.
    #[serde(default)]
    pub version: Option<u64>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One column of the `logs` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// What the SQL workbench shows beside the editor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkbenchInfo {
    /// The names the table answers to.
    pub tables: Vec<String>,
    pub columns: Vec<ColumnInfo>,
    /// Every function a query may call, by name.
    pub functions: Vec<String>,
    pub history: Vec<HistoryEntry>,
    /// The saved queries, by name.
    pub saved: Vec<SavedQuery>,
    pub versions: Vec<TableVersion>,
}

/// One commit of the Delta table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TableVersion {
    pub version: u64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    pub rows_added: Option<u64>,
    pub files_added: Option<u64>,
    pub files_removed: Option<u64>,
}

/// The answer to one SQL query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    pub execution_ms: f64,
    /// True when the result had more rows than the row cap and was cut.
    pub truncated: bool,
    /// The table version queried, when not the latest.
    #[serde(default)]
    pub version: Option<u64>,
    /// Where the query ran.
    #[serde(default)]
    pub engine: SqlEngine,
}

/// Where SQL runs: in the server, or on a Ballista cluster (`SQL_CLUSTER`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SqlEngine {
    /// DataFusion in the server's own process.
    #[default]
    InProcess,
    /// The Ballista cluster whose scheduler is at `scheduler` (`df://HOST:PORT`).
    Cluster { scheduler: String },
}

impl SqlEngine {
    /// Where, in words: "in-process" or "on df://HOST:PORT".
    pub fn describe(&self) -> String {
        match self {
            SqlEngine::InProcess => "in-process".to_owned(),
            SqlEngine::Cluster { scheduler } => format!("on {scheduler}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum AnomalyKind {
    ErrorRate,
    Latency,
    TrafficSpike,
    TrafficDrop,
}

impl AnomalyKind {
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyKind::ErrorRate => "error rate up",
            AnomalyKind::Latency => "p95 latency up",
            AnomalyKind::TrafficSpike => "traffic spike",
            AnomalyKind::TrafficDrop => "traffic drop",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

/// Something that left its baseline: per 10 s bucket of event time, overall or per endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub id: u64,
    pub kind: AnomalyKind,
    /// `overall` or `endpoint:/the/path`.
    pub scope: String,
    pub severity: Severity,
    /// The latest value (requests per 10 s, error rate in %, or p95 in ms).
    pub value: f64,
    /// The most extreme value while it lasted.
    pub peak: f64,
    /// What the detector expected.
    pub baseline: f64,
    pub started: DateTime<Utc>,
    /// None while it lasts.
    pub ended: Option<DateTime<Utc>>,
}

/// What the dashboard needs for its first paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSnapshot {
    pub health: Health,
    pub metrics: MetricsSnapshot,
    /// GoAccess's report over the page's window.
    pub visits: VisitReport,
    pub recent_logs: Vec<LiveEvent>,
    pub anomalies: Vec<Anomaly>,
}

/// What the log explorer needs for its first paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogsSnapshot {
    /// Where the pipeline stands.
    pub health: Health,
    /// The recent events the page's filter selects, newest first.
    pub logs: Vec<LiveEvent>,
}

/// What the anomalies page needs for its first paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomaliesSnapshot {
    /// Where the pipeline stands.
    pub health: Health,
    /// Open ones first, then ended ones, newest first.
    pub anomalies: Vec<Anomaly>,
}

/// The SSE event names of `GET /events`; each payload is the JSON of the matching type, but
/// `log`, which carries an array of events (batched every 100 ms) and the `id` of the last.
pub mod sse {
    pub const METRICS: &str = "metrics";
    pub const LOG: &str = "log";
    pub const HEALTH: &str = "health";
    /// The client fell behind and skipped ahead, or resumed after events it can no longer get.
    pub const LAGGED: &str = "lagged";
    /// An anomaly opened or ended.
    pub const ANOMALY: &str = "anomaly";
    /// GoAccess's report over the window the stream's `window` parameter names, every five
    /// seconds.
    pub const VISITS: &str = "visits";
}

/// Filters of the live log stream: `GET /api/logs` and `GET /events` query parameters, and
/// the log explorer's URL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
pub struct LogFilter {
    /// Events at most: the newest of `GET /api/logs`, and on `GET /events` the newest of each
    /// batch (a view that keeps 50 lines needs no more).
    pub limit: Option<usize>,
    pub level: Option<String>,
    pub source: Option<String>,
    pub endpoint: Option<String>,
    /// An exact status (`503`) or a class (`5xx`).
    pub status: Option<String>,
    /// Text the message or the endpoint contains (case-insensitive).
    pub q: Option<String>,
    /// Event time range.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// What a text filter asks for; blank is nothing.
fn wanted(filter: &Option<String>) -> Option<&str> {
    filter.as_deref().map(str::trim).filter(|w| !w.is_empty())
}

impl LogFilter {
    pub fn matches(&self, event: &LogEvent) -> bool {
        let same = |filter: &Option<String>, actual: &str| {
            wanted(filter).is_none_or(|w| w.eq_ignore_ascii_case(actual))
        };
        let status = wanted(&self.status).is_none_or(|w| match w.strip_suffix("xx") {
            Some(class) => class.parse::<u16>().is_ok_and(|c| event.status / 100 == c),
            None => w.parse::<u16>().is_ok_and(|s| s == event.status),
        });
        let text = wanted(&self.q).is_none_or(|q| {
            let q = q.to_lowercase();
            event.message.to_lowercase().contains(&q) || event.endpoint.to_lowercase().contains(&q)
        });
        same(&self.level, &event.level)
            && same(&self.source, &event.source)
            && same(&self.endpoint, &event.endpoint)
            && status
            && text
            && self.from.is_none_or(|from| event.timestamp >= from)
            && self.to.is_none_or(|to| event.timestamp <= to)
    }

    /// The filter as URL query parameters (empty ones left out), as `/logs` and `/events` take them.
    pub fn to_query(&self) -> String {
        let mut params = form_urlencoded::Serializer::new(String::new());
        let text = [
            ("level", &self.level),
            ("source", &self.source),
            ("endpoint", &self.endpoint),
            ("status", &self.status),
            ("q", &self.q),
        ];
        for (name, value) in text {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                params.append_pair(name, value);
            }
        }
        for (name, value) in [("from", self.from), ("to", self.to)] {
            if let Some(at) = value {
                params.append_pair(name, &at.to_rfc3339());
            }
        }
        params.finish()
    }

    /// Reads a filter from URL query parameters (`get` looks one up by name).
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        let time = |name| {
            get(name)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        LogFilter {
            limit: get("limit").and_then(|l| l.parse().ok()),
            level: get("level"),
            source: get("source"),
            endpoint: get("endpoint"),
            status: get("status"),
            q: get("q"),
            from: time("from"),
            to: time("to"),
        }
    }
}
