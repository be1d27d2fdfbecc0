//! `Pipeline` wires the stages together, runs the tickers between them and reports on them.

use super::alert;
use super::broker::{self, BrokerError, EmbeddedBroker};
use super::config::ServeConfig;
use super::ingest::{self, DeadLetters, IngestError};
use super::lake::{self, LakeError, LakeSink};
use super::live::Live;
use super::query::{QueryEngine, QueryError, QueryHistory};
use crate::model::{
    sse, DashboardSnapshot, Health, HistoryEntry, KafkaStatus, LakeStatus, LogFilter, QueryRequest,
    QueryResult, StageState, Window,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Events kept for the live log view.
const RECENT_LOG_CAPACITY: usize = 10_000;
const LOG_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Consumed messages in flight between ingest and the lake.
const LAKE_CHANNEL_CAPACITY: usize = 10_000;
/// How long a stop waits for the lake's last commit.
const FINAL_COMMIT_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("could not start demo traffic: {0}")]
    Demo(std::io::Error),
}

pub struct Pipeline {
    started: Instant,
    pub live: Arc<Live>,
    pub query: QueryEngine,
    pub history: QueryHistory,
    kafka: Arc<RwLock<KafkaStatus>>,
    lake: Arc<RwLock<LakeStatus>>,
    demo_traffic: bool,
    /// Taken by `stop`, which ends them in order.
    running: std::sync::Mutex<Option<Running>>,
}

/// What the pipeline runs besides serving. Everything that talks to Kafka ends before the
/// embedded broker does, so a stop is quiet: no client left retrying a broker that is gone.
struct Running {
    demo: Option<AbortOnDrop>,
    ingest: AbortOnDrop,
    /// Commits what ingest handed it, then ends.
    sink: tokio::task::JoinHandle<()>,
    watch_connection: AbortOnDrop,
    broker: Option<EmbeddedBroker>,
}

impl Pipeline {
    pub async fn start(config: &ServeConfig) -> Result<Arc<Self>, PipelineError> {
        let started = Instant::now();
        let topic = config.kafka.topic.clone();
        let broker = match config.kafka.embedded() {
            true => Some(
                EmbeddedBroker::start(
                    &config.tansu_bin,
                    config.kafka.embedded_broker_port,
                    &config.data_dir.join("broker"),
                )
                .await?,
            ),
            false => None,
        };
        let bootstrap = config.kafka.bootstrap();
        broker::wait_until_reachable(&bootstrap, Duration::from_secs(60)).await?;
        broker::ensure_topic(&bootstrap, &topic, config.partitions).await?;
        let dead_letter_topic = DeadLetters::topic_for(&topic);
        broker::ensure_topic(&bootstrap, &dead_letter_topic, 1).await?;
        let dead_letters = DeadLetters::new(&bootstrap, &topic)?;

        let table_url = lake::table_url(&config.lake_path())?;
        let table = lake::open_or_create(&table_url).await?;
        let consumer = ingest::consumer(&bootstrap, &config.group_id)?;
        let partitions = ingest::partitions(&consumer, &topic).await?;
        let resume_at =
            lake::committed_offsets(&table, &config.group_id, &topic, &partitions).await?;
        ingest::assign(&consumer, &topic, &partitions, &resume_at)?;

        let kafka = Arc::new(RwLock::new(KafkaStatus {
            state: StageState::Connected,
            brokers: bootstrap.clone(),
            embedded: broker.is_some(),
            topic: topic.clone(),
            dead_letter_topic,
            group_id: config.group_id.clone(),
            detail: format!("{} partitions", partitions.len()),
            partitions: Vec::new(),
            lag: None,
        }));
        let lake_status = Arc::new(RwLock::new(lake::initial_status(&table_url, &table)));

        let live = Arc::new(Live::new(RECENT_LOG_CAPACITY));
        let (to_lake, lake_input) = tokio::sync::mpsc::channel(LAKE_CHANNEL_CAPACITY);
        let offsets_consumer = consumer.clone();
        let offsets_topic = topic.clone();
        let sink = LakeSink::new(
            table,
            &config.group_id,
            &topic,
            lake_status.clone(),
            move |next| ingest::commit_offsets(&offsets_consumer, &offsets_topic, next),
        );
        let sink = tokio::spawn(sink.run(
            lake_input,
            config.commit_interval(),
            config.commit_max_rows.max(1),
        ));
        tokio::spawn(lake::maintain(
            table_url.clone(),
            lake_status.clone(),
            Duration::from_secs(config.lake_maintenance_secs.max(1)),
        ));
        let consume_failures = Arc::new(ingest::ConsumeFailures::default());
        let ingest = AbortOnDrop(tokio::spawn(ingest::run(
            consumer.clone(),
            live.clone(),
            dead_letters,
            to_lake,
            consume_failures.clone(),
        )));
        let watch_connection = AbortOnDrop(tokio::spawn(ingest::watch_connection(
            consumer,
            topic.clone(),
            kafka.clone(),
            consume_failures,
        )));

        let demo = match config.demo_enabled() {
            true => Some(start_demo_traffic(&bootstrap, &topic, config.demo_rate)?),
            false => None,
        };
        let pipeline = Arc::new(Pipeline {
            started,
            live,
            query: QueryEngine::new(table_url).with_limits(
                Duration::from_secs(config.query_timeout_secs),
                config.query_memory_mb * 1024 * 1024,
            ),
            history: QueryHistory::open(config.data_dir.join("query-history.jsonl")),
            kafka,
            lake: lake_status,
            demo_traffic: demo.is_some(),
            running: std::sync::Mutex::new(Some(Running {
                demo,
                ingest,
                sink,
                watch_connection,
                broker,
            })),
        });
        let alerter = config.alert_webhook_url.clone().map(alert::Alerter::start);
        tokio::spawn(publish_every_second(Arc::downgrade(&pipeline), alerter));
        tokio::spawn(flush_log_batches(Arc::downgrade(&pipeline.live)));
        Ok(pipeline)
    }

    pub fn health(&self) -> Health {
        let kafka = self.kafka.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut lake = self.lake.read().unwrap_or_else(|e| e.into_inner()).clone();
        lake.last_commit_age_secs = lake
            .last_commit
            .map(|at| (chrono::Utc::now() - at).as_seconds_f64().max(0.0));
        let healthy = kafka.state == StageState::Connected && lake.state != StageState::Down;
        Health {
            status: if healthy { "healthy" } else { "degraded" }.to_owned(),
            uptime_secs: self.started.elapsed().as_secs(),
            kafka,
            lake,
            demo_traffic: self.demo_traffic,
            sse_clients: self.live.sse_clients(),
            malformed: self.live.malformed(),
        }
    }

    /// Stops consuming and lets the lake commit every event it was handed, so a stop leaves
    /// nothing for the next start to read again, and no commit cut off halfway; then the
    /// embedded broker, once nothing talks to it.
    pub async fn stop(&self) {
        let taken = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(running) = taken else { return };
        if let Some(demo) = running.demo {
            demo.stop().await;
        }
        // Dropping ingest closes the lake's input; the sink commits what is left and ends.
        drop(running.ingest);
        if tokio::time::timeout(FINAL_COMMIT_GRACE, running.sink)
            .await
            .is_err()
        {
            tracing::warn!("the lake's last commit did not finish in time; the next start reads those events again");
        }
        running.watch_connection.stop().await;
        if let Some(broker) = running.broker {
            broker.stop().await;
        }
    }

    /// Runs a query and, when it succeeds, keeps it in the history.
    pub async fn run_query(&self, request: &QueryRequest) -> Result<QueryResult, QueryError> {
        let result = self.query.run(request).await?;
        self.history.record(HistoryEntry {
            sql: request.query.trim().to_owned(),
            version: request.version,
            at: chrono::Utc::now(),
            rows: result.row_count,
            execution_time: result.execution_time,
        });
        Ok(result)
    }

    /// A page's first paint: health, metrics, anomalies and the recent events `logs` selects.
    pub fn dashboard(&self, logs: &LogFilter) -> DashboardSnapshot {
        DashboardSnapshot {
            health: self.health(),
            metrics: self.live.metrics(Window::default()),
            recent_logs: self.live.recent_logs(logs),
            anomalies: self.live.anomalies(),
        }
    }
}

/// Stops a background task, and whatever child process it owns, when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Stops the task and waits until it has dropped what it owned.
    pub(crate) async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Demo traffic is a separate producer process speaking the Kafka protocol, like any service.
fn start_demo_traffic(
    bootstrap: &str,
    topic: &str,
    rate: u32,
) -> Result<AbortOnDrop, PipelineError> {
    let exe = std::env::current_exe().map_err(PipelineError::Demo)?;
    let mut child = tokio::process::Command::new(exe)
        .args(["gen", "--rate", &rate.to_string(), "--while-stdin-open"])
        .env("KAFKA_BROKERS", bootstrap)
        .env("KAFKA_TOPIC", topic)
        // Held open until lakepulse ends, however it ends: a crash does not leave gen behind.
        .stdin(std::process::Stdio::piped())
        // Out of the terminal's process group: Ctrl-C stops lakepulse, which stops this.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(PipelineError::Demo)?;
    let lifeline = child.stdin.take();
    tracing::info!(
        rate,
        pid = child.id(),
        "demo traffic on (lakepulse gen); DEMO=0 turns it off"
    );
    Ok(AbortOnDrop(tokio::spawn(async move {
        let _lifeline = lifeline;
        match child.wait().await {
            Ok(status) => tracing::warn!(%status, "demo traffic stopped"),
            Err(error) => tracing::warn!(%error, "lost the demo traffic process"),
        }
    })))
}

/// Log events go out in batches: a few messages a second per client, whatever the event rate.
async fn flush_log_batches(live: std::sync::Weak<Live>) {
    let mut tick = tokio::time::interval(LOG_BATCH_INTERVAL);
    loop {
        tick.tick().await;
        let Some(live) = live.upgrade() else { return };
        live.flush_logs();
    }
}

async fn publish_every_second(
    pipeline: std::sync::Weak<Pipeline>,
    alerter: Option<alert::Alerter>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        // Snapshots merge an hour of sketches: only worth it when someone is watching.
        if pipeline.live.sse_clients() > 0 {
            let metrics = pipeline.live.metrics(Window::default());
            pipeline.live.publish(sse::METRICS, &metrics);
            pipeline.live.publish(sse::HEALTH, &pipeline.health());
        }
        for anomaly in pipeline.live.detect_anomalies() {
            tracing::warn!(?anomaly, "anomaly");
            if let Some(alerter) = &alerter {
                alerter.notify(&anomaly);
            }
        }
    }
}
