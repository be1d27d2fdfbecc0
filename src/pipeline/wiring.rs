//! `Pipeline` wires the stages together, runs the tickers between them and reports on them.
//! It is the one door to them: REST, SSE and the server functions call its methods.

use super::alert;
use super::broker::{self, BrokerError, EmbeddedBroker};
use super::config::{KafkaSource, PipelineConfig};
use super::consumer_group::{Ownership, Rebalancer};
use super::dead_letter::DeadLetters;
use super::ingest::{self, IngestError, IngestStop, KafkaLink, ToLake};
use super::lake::{self, LakeActivity, LakeError, LakeProgress, LakeSink, SinkStop};
use super::live::{Live, LiveFull, Logged, SseClientGuard, SseFrame};
use super::maintenance;
use super::metrics::SeriesMetric;
use super::prometheus;
use super::query::saved::{SavedQueries, SavedQueryChange, SavedQueryError};
use super::query::{self, Export, ExportFormat, QueryEngine, QueryError, QueryHistory};
use super::task::supervise;
use super::AbortOnDrop;
use crate::context::{self, ContextRequest, LogContext};
use crate::model::{
    sse, Anomaly, Health, HealthStatus, HistoryEntry, KafkaStatus, LakeStatus, LiveEvent,
    LogFilter, MetricsSnapshot, QueryRequest, QueryResult, SavedQuery, Series, StageState,
    TableVersion, VisitReport, Window, WorkbenchInfo,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Events kept for the live log view.
const RECENT_LOG_CAPACITY: usize = 10_000;
const LOG_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Consumed messages in flight between ingest and the lake.
const LAKE_CHANNEL_CAPACITY: usize = 10_000;
/// How long a stop waits for the lake's last commit.
const FINAL_COMMIT_GRACE: Duration = Duration::from_secs(15);
/// Recent queries and table versions the workbench lists.
const WORKBENCH_LIST: usize = 20;

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The broker could not be started or reached.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The consumer or the dead-letter producer could not be set up.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The table could not be opened or created.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The query engine could not be set up (its spill directory).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The demo traffic process could not be started.
    #[error("could not start demo traffic: {0}")]
    Demo(std::io::Error),
    /// The live view's recorder thread could not be started.
    #[error("could not start the live view's recorder thread: {0}")]
    Recorder(std::io::Error),
}

/// The running pipeline: ingest, live view, lake and query engine.
pub struct Pipeline {
    started: Instant,
    live: Arc<Live>,
    query: QueryEngine,
    history: QueryHistory,
    saved: SavedQueries,
    kafka: KafkaFacts,
    link: Arc<RwLock<KafkaLink>>,
    lake_path: String,
    lake: Arc<RwLock<LakeProgress>>,
    demo_traffic: bool,
    max_sse_clients: u64,
    /// Why ingest or the lake's sink stopped for good, once one has.
    stopped_for_good: tokio::sync::watch::Receiver<Option<String>>,
    /// Taken by `stop`, which ends them in order.
    running: std::sync::Mutex<Option<Running>>,
}

/// What does not change about the Kafka side while the pipeline runs.
struct KafkaFacts {
    brokers: String,
    embedded: bool,
    topic: String,
    dead_letter_topic: String,
    group_id: String,
}

/// What the pipeline runs besides serving. Everything that talks to Kafka ends before the
/// embedded broker does, so a stop is quiet: no client left retrying a broker that is gone.
struct Running {
    demo: Option<AbortOnDrop>,
    ingest: AbortOnDrop,
    /// The follower, and what keeps it on the partitions other instances write.
    follow: [AbortOnDrop; 2],
    /// Commits what ingest handed it, then ends.
    sink: AbortOnDrop,
    watch_connection: AbortOnDrop,
    broker: Option<EmbeddedBroker>,
}

/// One live-stream client: what it sees first, then the frames as they come. It counts as a
/// viewer for as long as it is held.
pub struct Subscription {
    /// Current metrics, sent first.
    pub metrics: MetricsSnapshot,
    /// GoAccess's report over the client's window, sent first, if it asked for one.
    pub visits: Option<VisitReport>,
    /// Current health, sent first.
    pub health: Health,
    /// For a client resuming after an event: the kept events it missed, oldest first, and
    /// how many more it missed that are no longer kept.
    pub missed: Option<(Vec<Arc<Logged>>, u64)>,
    /// Every frame published from now on.
    pub frames: broadcast::Receiver<SseFrame>,
    /// Counts the client while held.
    pub viewer: SseClientGuard,
}

impl Pipeline {
    /// Starts every stage (and the embedded broker, if asked). Ingest joins the consumer group
    /// and resumes each partition it is assigned where the table's offsets say.
    pub async fn start(config: &PipelineConfig) -> Result<Arc<Self>, PipelineError> {
        let started = Instant::now();
        prometheus::install();
        let topic = config.topic.clone();
        let broker = match &config.kafka {
            KafkaSource::Embedded { port } => Some(
                EmbeddedBroker::start(&config.tansu_bin, *port, &config.data_dir.join("broker"))
                    .await?,
            ),
            KafkaSource::Cluster(_) => None,
        };
        let bootstrap = config.kafka.bootstrap();
        broker::wait_until_reachable(&bootstrap, Duration::from_secs(60)).await?;
        broker::ensure_topic(&bootstrap, &topic, config.partitions).await?;
        let dead_letter_topic = DeadLetters::topic_for(&topic);
        broker::ensure_topic(&bootstrap, &dead_letter_topic, 1).await?;
        let dead_letters = DeadLetters::new(&bootstrap, &topic).map_err(IngestError::from)?;

        let table_url = lake::table_location(&config.lake_path)?;
        let table = lake::open_for_group(&table_url, &config.group_id).await?;
        let ownership = Arc::new(Ownership::default());
        let (unassignable, unassignable_reason) = tokio::sync::watch::channel(None);
        let rebalancer = Rebalancer::new(
            &topic,
            &config.group_id,
            table_url.clone(),
            ownership.clone(),
            unassignable,
        );
        let consumer = ingest::writer(
            &bootstrap,
            &config.group_id,
            &topic,
            rebalancer,
            config.scale_out,
        )?;
        let link = match config.scale_out {
            true => KafkaLink::joining(),
            false => KafkaLink::reading_all(
                ingest::read_every_partition(
                    &consumer,
                    &topic,
                    &config.group_id,
                    &table_url,
                    &ownership,
                )
                .await?,
            ),
        };
        let follower = ingest::follower(&bootstrap, &config.group_id)?;

        let kafka = KafkaFacts {
            brokers: bootstrap.clone(),
            embedded: broker.is_some(),
            topic: topic.clone(),
            dead_letter_topic,
            group_id: config.group_id.clone(),
        };
        let link = Arc::new(RwLock::new(link));
        let lake_progress = Arc::new(RwLock::new(LakeProgress::opened(&table)));

        let live = Arc::new(Live::new(RECENT_LOG_CAPACITY));
        Live::start_recorder(&live).map_err(PipelineError::Recorder)?;
        let (to_lake, lake_input) = tokio::sync::mpsc::channel(LAKE_CHANNEL_CAPACITY);
        let offsets_consumer = consumer.clone();
        let offsets_topic = topic.clone();
        let sink = LakeSink::new(
            table,
            &config.group_id,
            &topic,
            dead_letters,
            ownership.clone(),
            lake_progress.clone(),
            move |next| ingest::commit_offsets(&offsets_consumer, &offsets_topic, next),
        );
        // Ingest and the sink are not restarted in place: their rows in flight are gone with
        // them, and only a fresh start, reading on from the table's offsets, goes on exactly
        // once. They report down, and the process exits for its supervisor to start it again.
        let (stop_for_good, stopped_for_good) = tokio::sync::watch::channel(None);
        let stop_for_good = Arc::new(stop_for_good);
        let sink_stopped_for_good = stop_for_good.clone();
        let sink_progress = lake_progress.clone();
        let sink = supervise(
            sink.run(lake_input, config.commit_interval, config.commit_max_rows),
            move |ended| {
                let stop = match ended {
                    Ok(Ok(())) => return,
                    Ok(Err(stop)) => stop,
                    Err(panic) => SinkStop::Panicked(panic),
                };
                tracing::error!(%stop, "the lake sink stopped");
                sink_stopped_for_good.send_replace(Some(stop.to_string()));
                sink_progress
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .activity = LakeActivity::Stopped(stop);
            },
        );
        tokio::spawn(maintenance::maintain(
            table_url.clone(),
            lake_progress.clone(),
            config.lake_compact_every,
            config.lake_maintenance_every,
            config.retention,
            ownership.clone(),
        ));
        let consume_failures = Arc::new(ingest::ConsumeFailures::default());
        let ingest_link = link.clone();
        let ingest = supervise(
            ingest::run(
                consumer.clone(),
                live.clone(),
                Some(ToLake {
                    sender: to_lake,
                    ownership: ownership.clone(),
                    unassignable: unassignable_reason,
                }),
                consume_failures.clone(),
                config.access_log_format.clone(),
            ),
            move |ended| {
                let stop = ended.unwrap_or_else(IngestStop::Panicked);
                tracing::error!(%stop, "ingest stopped");
                stop_for_good.send_replace(Some(stop.to_string()));
                ingest_link
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .stopped = Some(stop);
            },
        );
        // The follower only feeds the live view: if it ends, the lake goes on, and the status
        // says which partitions stopped moving.
        let follow = [
            supervise(
                ingest::run(
                    follower.clone(),
                    live.clone(),
                    None,
                    consume_failures.clone(),
                    config.access_log_format.clone(),
                ),
                |ended| {
                    let stop = ended.unwrap_or_else(IngestStop::Panicked);
                    tracing::error!(%stop, "the follower stopped; the live view misses the partitions other instances write");
                },
            ),
            AbortOnDrop(tokio::spawn(ingest::follow_others(
                follower.clone(),
                topic.clone(),
                ownership.clone(),
                live.clone(),
            ))),
        ];
        let watch_connection = AbortOnDrop(tokio::spawn(ingest::watch_connection(
            consumer,
            follower,
            topic.clone(),
            link.clone(),
            consume_failures,
            ownership,
        )));

        let demo = match config.demo_rate {
            Some(rate) => Some(start_demo_traffic(&bootstrap, &topic, rate)?),
            None => None,
        };
        let lake_path = table_url.to_string();
        let pipeline = Arc::new(Pipeline {
            started,
            live,
            query: QueryEngine::new(table_url)
                .with_limits(config.query_timeout, config.query_memory_bytes)
                .with_spill(
                    &config.data_dir.join("query-spill"),
                    config.query_spill_bytes,
                )?
                .with_concurrency(config.query_concurrency)
                .with_cluster(config.sql_cluster.clone()),
            history: QueryHistory::open(config.data_dir.join("query-history.jsonl")),
            saved: SavedQueries::open(config.data_dir.join("saved-queries.json")),
            kafka,
            link,
            lake_path,
            lake: lake_progress,
            demo_traffic: demo.is_some(),
            max_sse_clients: config.max_sse_clients,
            stopped_for_good,
            running: std::sync::Mutex::new(Some(Running {
                demo,
                ingest,
                follow,
                sink,
                watch_connection,
                broker,
            })),
        });
        let alerter = config.alert_webhook_url.clone().map(alert::Alerter::start);
        tokio::spawn(publish_every_second(Arc::downgrade(&pipeline), alerter));
        tokio::spawn(flush_log_batches(Arc::downgrade(&pipeline.live)));
        if config.sql_cluster.is_some() {
            tokio::spawn(watch_sql_cluster(Arc::downgrade(&pipeline)));
        }
        Ok(pipeline)
    }

    /// Where every stage stands, built from their reports as of now.
    pub fn health(&self) -> Health {
        let link = self.link.read().unwrap_or_else(|e| e.into_inner()).clone();
        let lake = self.lake.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (state, detail) = link.status();
        let kafka = KafkaStatus {
            state,
            brokers: self.kafka.brokers.clone(),
            embedded: self.kafka.embedded,
            topic: self.kafka.topic.clone(),
            dead_letter_topic: self.kafka.dead_letter_topic.clone(),
            group_id: self.kafka.group_id.clone(),
            detail,
            lag: link.lag(),
            partitions: link.partitions,
            partitions_probed_at: link.probed_at,
            partitions_age_secs: link.probed_at.map(seconds_since),
        };
        let lake = LakeStatus {
            state: lake.activity.state(),
            path: self.lake_path.clone(),
            version: lake.version,
            rows_committed: lake.rows_committed,
            files: lake.files.map(|files| files.count),
            bytes: lake.files.map(|files| files.bytes),
            oldest_date: lake.files.and_then(|files| files.oldest_date),
            last_commit: lake.last_commit,
            last_commit_age_secs: lake.last_commit.map(seconds_since),
            freshness_ms: lake.freshness_ms,
            last_maintenance: lake.maintenance.at(),
            maintenance: lake.maintenance.to_string(),
            detail: lake.activity.to_string(),
        };
        let sql = self.query.status();
        Health {
            status: HealthStatus::of(kafka.state, lake.state, sql.state),
            topic: self.kafka.topic.clone(),
            clients: self.live.sse_clients(),
            kafka_connected: matches!(kafka.state, StageState::Connected | StageState::Partial),
            uptime_secs: self.started.elapsed().as_secs(),
            kafka,
            lake,
            sql,
            demo_traffic: self.demo_traffic,
            malformed: self.live.malformed(),
        }
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let open = self
            .anomalies()
            .iter()
            .filter(|a| a.ended.is_none())
            .count();
        prometheus::render(&self.health(), &self.metrics(Window::default()), open)
    }

    /// The live metrics, with breakdowns for `window`.
    pub fn metrics(&self, window: Window) -> MetricsSnapshot {
        self.live.metrics(window)
    }

    /// GoAccess's report over `window`: unique visitors, browsers, systems, referring sites,
    /// not-found paths, static files, hosts and hours.
    pub fn visits(&self, window: Window) -> VisitReport {
        self.live.visits(window)
    }

    /// One metric over `window` in steps of `step_secs`.
    pub fn series(&self, metric: SeriesMetric, window: Window, step_secs: i64) -> Series {
        self.live.series(metric, window, step_secs)
    }

    /// Open anomalies first, then ended ones, newest first.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        self.live.anomalies()
    }

    /// The newest kept events `filter` selects, newest first.
    pub fn recent_logs(&self, filter: &LogFilter) -> Vec<LiveEvent> {
        self.live.recent_logs(filter)
    }

    /// Joins the live stream, if a place is free; `resume_after` is the last event a
    /// reconnecting client saw, `visits` the window its page reports visits over.
    pub fn subscribe(
        &self,
        resume_after: Option<u64>,
        visits: Option<Window>,
    ) -> Result<Subscription, LiveFull> {
        let (frames, viewer) = self.live.subscribe(self.max_sse_clients)?;
        Ok(Subscription {
            metrics: self.metrics(Window::default()),
            visits: visits.map(|window| self.visits(window)),
            health: self.health(),
            missed: resume_after.map(|seq| self.live.logs_after(seq)),
            frames,
            viewer,
        })
    }

    /// Resolves, with the reason, once ingest or the lake's sink has stopped for good: the
    /// process should then stop and start afresh.
    pub async fn stopped_for_good(&self) -> String {
        let mut stopped = self.stopped_for_good.clone();
        let reason = match stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            // The stages' supervisors are gone only once the pipeline is: nothing to report.
            None => std::future::pending().await,
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
        drop(running.follow);
        let mut sink = running.sink;
        if tokio::time::timeout(FINAL_COMMIT_GRACE, &mut sink.0)
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
        let started = Instant::now();
        let answered = self.query.run(request).await;
        let outcome = answered.as_ref().map_or_else(QueryError::kind, |_| "ok");
        ::metrics::counter!(prometheus::QUERIES, "outcome" => outcome).increment(1);
        ::metrics::histogram!(prometheus::QUERY_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        let result = answered?;
        self.history.record(HistoryEntry {
            sql: request.query.trim().to_owned(),
            version: request.version,
            at: chrono::Utc::now(),
            rows: result.row_count,
            execution_ms: result.execution_ms,
        });
        Ok(result)
    }

    /// Runs a query for a download: CSV, NDJSON and Parquet streamed as it runs, without the
    /// row cap; JSON as the API answers.
    pub async fn export(
        &self,
        request: &QueryRequest,
        format: ExportFormat,
    ) -> Result<Export, QueryError> {
        self.query.export(request, format).await
    }

    /// The events around `request`'s instant from its source (or session): the lake's, and
    /// the live ring's that no commit holds yet. Its query is not kept in the history: the
    /// workbench's list is what people ran.
    pub async fn context(&self, request: ContextRequest) -> Result<LogContext, QueryError> {
        // The ring is read before the lake: an event it holds is then either in the lake's
        // answer or later than all of it, never in between (see `LogContext::assemble`).
        let ring = self
            .live
            .recent_logs(&LogFilter {
                limit: Some(usize::MAX),
                source: Some(request.source.clone()),
                ..LogFilter::default()
            })
            .into_iter()
            .map(|live| live.event)
            .collect();
        let answer = self.query.run(&QueryRequest::sql(request.sql())).await?;
        let lake = context::events_of(&answer.columns, answer.rows)
            .map_err(|e| QueryError::Failed(format!("reading the context's rows: {e}")))?;
        Ok(LogContext::assemble(request, lake, ring))
    }

    /// Stops the query started with this id; false if none runs under it.
    pub fn cancel_query(&self, id: &str) -> bool {
        self.query.cancel(id)
    }

    /// The saved queries, by name.
    pub fn saved_queries(&self) -> Vec<SavedQuery> {
        self.saved.list()
    }

    /// The saved query numbered `id`.
    pub fn saved_query(&self, id: u64) -> Result<SavedQuery, SavedQueryError> {
        self.saved.get(id)
    }

    /// Keeps `sql` (reading `version`, or the latest) under `name`.
    pub fn save_query(
        &self,
        name: &str,
        sql: &str,
        version: Option<u64>,
    ) -> Result<SavedQuery, SavedQueryError> {
        self.saved.create(name, sql, version)
    }

    /// Renames or rewrites a saved query.
    pub fn change_saved_query(
        &self,
        id: u64,
        change: SavedQueryChange,
    ) -> Result<SavedQuery, SavedQueryError> {
        self.saved.change(id, change)
    }

    /// Deletes a saved query.
    pub fn delete_saved_query(&self, id: u64) -> Result<(), SavedQueryError> {
        self.saved.delete(id)
    }

    /// The table's versions, newest first.
    pub async fn table_versions(&self, limit: usize) -> Result<Vec<TableVersion>, QueryError> {
        self.query.history(limit).await
    }

    /// What the SQL workbench shows beside the editor: columns, recent queries, versions.
    pub async fn workbench(&self) -> Result<WorkbenchInfo, QueryError> {
        Ok(WorkbenchInfo {
            tables: query::table_names(),
            columns: self.query.columns().await?,
            functions: query::function_names(),
            history: self.history.recent(WORKBENCH_LIST),
            saved: self.saved.list(),
            versions: self.table_versions(WORKBENCH_LIST).await?,
        })
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

/// Asks the SQL cluster's scheduler how it stands every two seconds, while the pipeline lives.
async fn watch_sql_cluster(pipeline: std::sync::Weak<Pipeline>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        pipeline.query.check_cluster().await;
    }
}

/// Seconds between two `visits` frames.
const VISITS_EVERY_TICKS: u64 = 5;

async fn publish_every_second(
    pipeline: std::sync::Weak<Pipeline>,
    alerter: Option<alert::Alerter>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0_u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        // A tick that fails is logged and the next one tries again: the detector and the
        // windows hold their state between ticks, so one bad tick must not end the loop (and
        // with it every live update and alert) while the rest of the pipeline runs on.
        let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Snapshots merge an hour of sketches: only worth it when someone is watching.
            if pipeline.live.sse_clients() > 0 {
                let metrics = pipeline.live.metrics(Window::default());
                pipeline.live.publish(sse::METRICS, &metrics);
                pipeline.live.publish(sse::HEALTH, &pipeline.health());
                // Every window's panels: four merges of up to an hour of keys, so less often.
                if ticks % VISITS_EVERY_TICKS == 1 {
                    pipeline.live.publish_visits();
                }
            }
            for anomaly in pipeline.live.detect_anomalies() {
                tracing::warn!(?anomaly, "anomaly");
                if let Some(alerter) = &alerter {
                    alerter.notify(&anomaly);
                }
            }
        }));
        if let Err(panic) = tick {
            tracing::error!(failure = %super::task::panic_message(panic), "the live update failed; trying again next second");
        }
    }
}

/// Seconds from `at` to now; never negative, should the clock step back.
fn seconds_since(at: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - at).as_seconds_f64().max(0.0)
}
