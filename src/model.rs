//! Types the server computes with and the browser renders: one definition for both sides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One HTTP request as a web service reports it: the event schema of the `web-logs` topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

impl LogEvent {
    /// An error is a server-side failure (5xx) or anything the service itself logged as ERROR.
    pub fn is_error(&self) -> bool {
        self.status >= 500 || self.level.eq_ignore_ascii_case("ERROR")
    }
}

/// The seed's live metrics, computed from consumed events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// Events per second over the last 10 seconds of arrival time.
    pub events_per_sec: f64,
    /// Percent of requests in the last minute that were errors (5xx or level ERROR).
    pub error_rate: f64,
    /// Mean response time in ms over the last minute, of the events that carry one.
    pub avg_response_time: f64,
    /// Distinct session ids seen in the last 5 minutes.
    pub active_sessions: u64,
    /// Bytes of Kafka message values consumed since start.
    pub data_processed: u64,
    pub total_requests: u64,
    pub total_errors: u64,
    /// Messages that could not be decoded, by reason.
    pub malformed: BTreeMap<String, u64>,
    pub last_update: DateTime<Utc>,
}

/// Where the pipeline stands, stage by stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// "healthy" when every stage is up, "degraded" otherwise.
    pub status: String,
    pub uptime_secs: u64,
    pub kafka: KafkaStatus,
    pub lake: LakeStatus,
    pub demo_traffic: bool,
    pub sse_clients: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaStatus {
    pub state: StageState,
    pub brokers: String,
    pub embedded: bool,
    pub topic: String,
    pub group_id: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LakeStatus {
    pub state: StageState,
    pub path: String,
    pub version: Option<u64>,
    pub rows_committed: u64,
    pub last_commit: Option<DateTime<Utc>>,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// The answer to one SQL query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    /// Milliseconds.
    pub execution_time: f64,
    /// True when the result had more rows than the row cap and was cut.
    pub truncated: bool,
}

/// What the dashboard needs for its first paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSnapshot {
    pub health: Health,
    pub metrics: MetricsSnapshot,
    pub recent_logs: Vec<LogEvent>,
}

/// The SSE event names of `GET /events`; each payload is the JSON of the matching type.
pub mod sse {
    pub const METRICS: &str = "metrics";
    pub const LOG: &str = "log";
    pub const HEALTH: &str = "health";
}

/// Filters of the live log stream (`GET /api/logs` query parameters).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    pub limit: Option<usize>,
    pub level: Option<String>,
    pub source: Option<String>,
    pub endpoint: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, event: &LogEvent) -> bool {
        fn same(wanted: &Option<String>, actual: &str) -> bool {
            wanted
                .as_deref()
                .is_none_or(|w| w.is_empty() || w.eq_ignore_ascii_case(actual))
        }
        same(&self.level, &event.level)
            && same(&self.source, &event.source)
            && same(&self.endpoint, &event.endpoint)
    }
}
