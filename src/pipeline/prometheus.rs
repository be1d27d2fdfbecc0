//! The Prometheus exposition of `GET /metrics`, through the `metrics` facade. What happens
//! (a message consumed, a dead letter sent, a query answered, a commit's duration) is
//! recorded where it happens; what is (lag, table version, SSE clients, open anomalies) and
//! the counts the stages already keep (events decoded, malformed by reason, rows committed)
//! are read from the stages' reports at each scrape, so nothing is counted twice.

use crate::model::{Health, MetricsSnapshot, StageState};
use ::metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Kafka messages ingest read, counted once however many consumers of this instance read them.
pub const MESSAGES_CONSUMED: &str = "lakepulse_messages_consumed_total";
/// Dead letters the broker took.
pub const DEAD_LETTERS_SENT: &str = "lakepulse_dead_letters_sent_total";
/// Dead letters the broker refused or did not answer for; they wait for the next try.
pub const DEAD_LETTERS_FAILED: &str = "lakepulse_dead_letters_failed_total";
/// Seconds a Delta commit took, its dead letters included, by outcome.
pub const COMMIT_SECONDS: &str = "lakepulse_lake_commit_duration_seconds";
/// Bytes of the data files this instance's commits wrote.
pub const BYTES_COMMITTED: &str = "lakepulse_lake_bytes_committed_total";
/// Live-stream frames a slow SSE client skipped.
pub const SSE_FRAMES_DROPPED: &str = "lakepulse_sse_frames_dropped_total";
/// SQL queries answered, by outcome.
pub const QUERIES: &str = "lakepulse_queries_total";
/// Seconds a SQL query took, by outcome.
pub const QUERY_SECONDS: &str = "lakepulse_query_duration_seconds";
/// Times the embedded broker was restarted after it exited.
pub const BROKER_RESTARTS: &str = "lakepulse_broker_restarts_total";

// Read from the stages' reports at each scrape.
const EVENTS_DECODED: &str = "lakepulse_events_decoded_total";
const CONSUMED_BYTES: &str = "lakepulse_consumed_bytes_total";
const MALFORMED: &str = "lakepulse_messages_malformed_total";
const CONSUMER_LAG: &str = "lakepulse_consumer_lag_messages";
const WRITTEN_HERE: &str = "lakepulse_partition_written_here";
const KAFKA_UP: &str = "lakepulse_kafka_up";
const LAKE_UP: &str = "lakepulse_lake_up";
const SQL_UP: &str = "lakepulse_sql_up";
const SQL_EXECUTORS: &str = "lakepulse_sql_cluster_executors";
const READY: &str = "lakepulse_ready";
const ROWS_COMMITTED: &str = "lakepulse_lake_rows_committed_total";
const TABLE_VERSION: &str = "lakepulse_lake_table_version";
const TABLE_FILES: &str = "lakepulse_lake_table_files";
const TABLE_BYTES: &str = "lakepulse_lake_table_bytes";
const SSE_CLIENTS: &str = "lakepulse_sse_clients";
const ANOMALIES_OPEN: &str = "lakepulse_anomalies_open";
const UPTIME: &str = "lakepulse_uptime_seconds";

/// Histogram buckets in seconds: a commit or a query from 5 ms to two minutes.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Histogram samples are folded into their buckets this often between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static EXPOSITION: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; later calls (a second pipeline in one process, as
/// in tests) share it. Needs a tokio runtime for the upkeep task.
pub fn install() {
    EXPOSITION.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        describe();
        if let Err(error) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed: /metrics shows only the stages' reports");
        }
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        handle
    });
}

/// The HELP lines.
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(MESSAGES_CONSUMED, "Kafka messages read");
    describe_counter!(DEAD_LETTERS_SENT, "Dead letters the broker took");
    describe_counter!(
        DEAD_LETTERS_FAILED,
        "Dead letters not delivered yet (retried)"
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Delta commit duration by outcome"
    );
    describe_counter!(
        BYTES_COMMITTED,
        Unit::Bytes,
        "Bytes of data files this instance committed"
    );
    describe_counter!(
        SSE_FRAMES_DROPPED,
        "Live-stream frames slow SSE clients skipped"
    );
    describe_counter!(QUERIES, "SQL queries by outcome");
    describe_histogram!(
        QUERY_SECONDS,
        Unit::Seconds,
        "SQL query duration by outcome"
    );
    describe_counter!(BROKER_RESTARTS, "Restarts of the embedded broker");
    describe_counter!(EVENTS_DECODED, "Events decoded from messages");
    describe_counter!(CONSUMED_BYTES, Unit::Bytes, "Bytes of message values read");
    describe_counter!(MALFORMED, "Messages or items set aside, by reason");
    describe_gauge!(CONSUMER_LAG, "Messages behind the partition's end");
    describe_gauge!(
        WRITTEN_HERE,
        "1 when this instance writes the partition to the lake"
    );
    describe_gauge!(KAFKA_UP, "1 unless ingest cannot read");
    describe_gauge!(LAKE_UP, "1 unless the lake cannot write");
    describe_gauge!(
        SQL_UP,
        "1 unless SQL cannot run (its cluster's scheduler does not answer)"
    );
    describe_gauge!(
        SQL_EXECUTORS,
        "Executors the SQL cluster's scheduler has heard from lately"
    );
    describe_gauge!(READY, "1 when /readyz answers 200");
    describe_counter!(ROWS_COMMITTED, "Rows this instance committed to the table");
    describe_gauge!(TABLE_VERSION, "Delta table version after the last commit");
    describe_gauge!(TABLE_FILES, "Data files of the table as of the last commit");
    describe_gauge!(
        TABLE_BYTES,
        Unit::Bytes,
        "Size of the table's data files as of the last commit"
    );
    describe_gauge!(SSE_CLIENTS, "Live-stream clients connected");
    describe_gauge!(ANOMALIES_OPEN, "Anomalies not yet ended");
    describe_gauge!(UPTIME, Unit::Seconds, "Seconds since the pipeline started");
}

/// The text exposition: the recorded series, with the stages' reports as of now. Empty until
/// [`install`] has run (`Pipeline::start` runs it).
pub fn render(health: &Health, live: &MetricsSnapshot, anomalies_open: usize) -> String {
    counter!(EVENTS_DECODED).absolute(live.total_requests);
    counter!(CONSUMED_BYTES).absolute(live.data_processed);
    for (reason, count) in &live.malformed {
        counter!(MALFORMED, "reason" => reason.clone()).absolute(*count);
    }
    for partition in &health.kafka.partitions {
        let labels = [("partition", partition.partition.to_string())];
        if let Some(lag) = partition.lag {
            gauge!(CONSUMER_LAG, &labels).set(lag as f64);
        }
        gauge!(WRITTEN_HERE, &labels).set(f64::from(u8::from(partition.written_here)));
    }
    let up = |state: StageState| f64::from(u8::from(state != StageState::Down));
    gauge!(KAFKA_UP).set(up(health.kafka.state));
    gauge!(LAKE_UP).set(up(health.lake.state));
    gauge!(SQL_UP).set(up(health.sql.state));
    if let Some(executors) = health.sql.executors {
        gauge!(SQL_EXECUTORS).set(executors as f64);
    }
    gauge!(READY).set(f64::from(u8::from(health.readiness().is_ok())));
    counter!(ROWS_COMMITTED).absolute(health.lake.rows_committed);
    if let Some(version) = health.lake.version {
        gauge!(TABLE_VERSION).set(version as f64);
    }
    if let Some(files) = health.lake.files {
        gauge!(TABLE_FILES).set(files as f64);
    }
    if let Some(bytes) = health.lake.bytes {
        gauge!(TABLE_BYTES).set(bytes as f64);
    }
    gauge!(SSE_CLIENTS).set(health.clients as f64);
    gauge!(ANOMALIES_OPEN).set(anomalies_open as f64);
    gauge!(UPTIME).set(health.uptime_secs as f64);
    EXPOSITION
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
