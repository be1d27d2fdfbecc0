//! What the pipeline runs with: plain settings, defaults already resolved. The command line
//! (`crate::cli`) builds them; tests and embedders can build them directly.

use super::decode::LogFormat;
use super::query::cluster::SqlCluster;
use std::path::PathBuf;
use std::time::Duration;

/// Where Kafka is.
#[derive(Debug, Clone, PartialEq)]
pub enum KafkaSource {
    /// An existing cluster, by its bootstrap servers.
    Cluster(String),
    /// The embedded broker lakepulse starts and supervises on 127.0.0.1:`port`.
    Embedded {
        /// Its port on loopback.
        port: u16,
    },
}

impl KafkaSource {
    /// The bootstrap address clients should use.
    pub fn bootstrap(&self) -> String {
        match self {
            KafkaSource::Cluster(brokers) => brokers.clone(),
            KafkaSource::Embedded { port } => format!("127.0.0.1:{port}"),
        }
    }
}

/// Everything `Pipeline::start` needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where Kafka is.
    pub kafka: KafkaSource,
    /// The embedded broker's executable (tansu).
    pub tansu_bin: PathBuf,
    /// The topic events arrive on.
    pub topic: String,
    /// The consumer group, also the key of the offsets kept in the table.
    pub group_id: String,
    /// Whether partitions are shared with the group's other instances (or all read here).
    pub scale_out: bool,
    /// Partitions of the topic when lakepulse has to create it.
    pub partitions: i32,
    /// How access-log lines are laid out; None recognises every usual shape.
    pub access_log_format: Option<LogFormat>,
    /// Where the embedded broker keeps its log and the query history lives.
    pub data_dir: PathBuf,
    /// The Delta table: a local directory or an object-store URL.
    pub lake_path: String,
    /// Events per second of demo traffic; None for no demo traffic.
    pub demo_rate: Option<u32>,
    /// Longest time consumed events wait before they are committed.
    pub commit_interval: Duration,
    /// Rows that make a commit before the interval is up.
    pub commit_max_rows: usize,
    /// Where to POST anomalies as JSON.
    pub alert_webhook_url: Option<String>,
    /// Longest a SQL query may run.
    pub query_timeout: Duration,
    /// Memory all SQL queries together may use.
    pub query_memory_bytes: usize,
    /// Disk all SQL queries together may spill to, under `data_dir`.
    pub query_spill_bytes: u64,
    /// SQL queries that may run at once.
    pub query_concurrency: usize,
    /// Live-stream (SSE) clients served at once.
    pub max_sse_clients: u64,
    /// Time between compactions of the lake's small files.
    pub lake_compact_every: Duration,
    /// Time between the lake's full maintenance: retention, compaction, vacuum, checkpoint.
    pub lake_maintenance_every: Duration,
    /// Days of events the table keeps (by event date); None keeps every row.
    pub retention: Option<Duration>,
    /// The Ballista cluster SQL runs on; none runs it in-process.
    pub sql_cluster: Option<SqlCluster>,
}
