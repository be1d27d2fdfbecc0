//! SQL over the lake: DataFusion on a committed version of the Delta table (the latest
//! unless the query asks for another), read-only, with a time limit, one memory pool and one
//! spill directory for all queries, a row and a byte cap on answers, bounded value-building
//! functions, and cancellable by id while it runs.

mod built_values;
pub mod cluster;
mod export;
mod gathered_percentile;

pub use export::{Export, ExportBody, ExportFormat};
pub mod saved;
pub mod snapshot_scan;

use crate::model::{
    ColumnInfo, HistoryEntry, QueryRequest, QueryResult, SqlEngine, SqlStatus, StageState,
    TableVersion,
};
use chrono::DateTime;
use cluster::SqlCluster;
use deltalake::arrow::json::writer::{JsonArray, WriterBuilder};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::catalog::{MemorySchemaProvider, TableProvider};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache, DEFAULT_METADATA_CACHE_LIMIT,
};
use deltalake::datafusion::execution::cache::default_cache::DefaultCache;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::execution::disk_manager::{DiskManager, DiskManagerMode};
use deltalake::datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::physical_plan::execute_stream;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::datafusion::sql::sqlparser::dialect::GenericDialect;
use deltalake::datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
use deltalake::DeltaTableError;
use futures::TryStreamExt;
use snapshot_scan::SnapshotScan;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use url::Url;

/// The threads queries run on, apart from the server's. A query is CPU-bound and yields
/// seldom: on the server's own threads one runaway query held `/health` for its whole time
/// limit (3.2 s under a 3 s limit), and stalled ingest and the live stream with it. Here it
/// holds only query threads, while the threads that answer HTTP, ingest events and fire the
/// query's time limit go on. Never dropped: it lives as long as the process.
fn query_runtime() -> &'static tokio::runtime::Runtime {
    static QUERY_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakepulse-query")
            .enable_all()
            .build()
            .expect("starting the query threads")
    });
    &QUERY_RUNTIME
}

/// The names the table answers to.
pub const TABLE: &str = "logs";
const SCHEMA_ALIAS: &str = "delta_lake";

/// The names the table answers to, as queries write them.
pub fn table_names() -> Vec<String> {
    vec![TABLE.to_owned(), format!("{SCHEMA_ALIAS}.{TABLE}")]
}

/// Every function a query may call (DataFusion's and those [`add_functions`] adds), by name.
pub fn function_names() -> Vec<String> {
    static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
        let ctx = SessionContext::new();
        if let Err(error) = add_functions(&ctx) {
            tracing::warn!(%error, "listing the functions without lakepulse's own");
        }
        let state = ctx.state();
        let mut names: Vec<String> = state
            .scalar_functions()
            .keys()
            .chain(state.aggregate_functions().keys())
            .chain(state.window_functions().keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    });
    NAMES.clone()
}

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing to run.
    #[error("empty query")]
    Empty,
    /// DataFusion refused or could not run the query: a mistake, a refused statement or a
    /// limit reached.
    #[error("{0}")]
    Sql(String),
    /// The query ran past its time limit.
    #[error("query stopped after {0:?}")]
    Timeout(Duration),
    /// Someone cancelled it.
    #[error("query cancelled")]
    Cancelled,
    /// The version asked for is not in the table.
    #[error("table version {0} does not exist (or was cleaned up)")]
    NoSuchVersion(u64),
    /// The table could not be read.
    #[error("could not read the table: {0}")]
    Table(#[from] DeltaTableError),
    /// As many queries as may run at once were running for the whole wait.
    #[error("{0} queries are running, the most that may run at once; try again shortly")]
    Busy(usize),
    /// The query's task failed (a panic in the engine).
    #[error("the query failed: {0}")]
    Failed(String),
    /// The SQL cluster cannot take queries.
    #[error("{0}")]
    ClusterDown(String),
    /// The result could not be written as the download asked for.
    #[error("could not write the result as {0}: {1}")]
    Export(&'static str, String),
    /// A download passed the most an export may write.
    #[error(
        "the export passed {0} bytes, the most an export may write; ask for fewer rows or columns"
    )]
    ExportTooBig(u64),
}

impl QueryError {
    /// Whether the fault is in the query (the client's) rather than in the server.
    pub fn is_client_error(&self) -> bool {
        match self {
            QueryError::Empty
            | QueryError::Sql(_)
            | QueryError::Timeout(_)
            | QueryError::Cancelled
            | QueryError::Busy(_)
            | QueryError::NoSuchVersion(_)
            | QueryError::ExportTooBig(_) => true,
            QueryError::Table(_)
            | QueryError::Failed(_)
            | QueryError::Export(..)
            | QueryError::ClusterDown(_) => false,
        }
    }

    /// The outcome label of the queries metric.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryError::Empty => "empty",
            QueryError::Sql(_) => "sql_error",
            QueryError::Timeout(_) => "timeout",
            QueryError::Cancelled => "cancelled",
            QueryError::NoSuchVersion(_) => "no_such_version",
            QueryError::Table(_) => "table_error",
            QueryError::Busy(_) => "busy",
            QueryError::Failed(_) => "failed",
            QueryError::ClusterDown(_) => "cluster_down",
            QueryError::Export(..) => "export_error",
            QueryError::ExportTooBig(_) => "export_too_big",
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        QueryError::Sql(e.to_string())
    }
}

/// How long a query waits for one of the running ones to end before it is turned away.
const ADMISSION_WAIT: Duration = Duration::from_secs(5);
/// The most an answer holds, as the JSON it is sent as; past it the answer is cut, as past
/// the row cap.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The most one export writes.
const MAX_EXPORT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Encoded chunks of an export that wait for a slow client; then the query waits too.
const EXPORT_CHUNKS_AHEAD: usize = 4;
/// Rows encoded at a time, so an answer is cut close to its byte cap.
const ENCODE_ROWS: usize = 256;

/// Runs read-only SQL over the table, within its limits.
#[derive(Clone)]
pub struct QueryEngine {
    table_url: Url,
    timeout: Duration,
    max_rows: usize,
    /// One budget for all queries together: N queries at once cannot hold N budgets.
    memory: Arc<dyn MemoryPool>,
    /// Where all queries together may spill, and how much; none by default.
    spill: Arc<DiskManager>,
    /// The Parquet footers (and page indexes) read so far, kept across queries up to
    /// DataFusion's default 50 MiB, least used out first: a data file never changes under its
    /// name, and a session of its own per query read every footer again.
    footers: Arc<FileMetadataCache>,
    /// One permit per query allowed to run at once.
    admission: Arc<Semaphore>,
    concurrency: usize,
    running: Arc<Mutex<HashMap<String, AbortHandle>>>,
    /// The latest snapshot of the table, kept up to date as queries come.
    latest: Arc<tokio::sync::Mutex<Option<deltalake::DeltaTable>>>,
    /// The Ballista cluster queries run on; none runs them in-process.
    cluster: Option<SqlCluster>,
    /// What the cluster's scheduler said when last asked.
    cluster_seen: Arc<RwLock<ClusterSeen>>,
    http: reqwest::Client,
}

/// A query ready to run: its SQL without the version clause, the version it reads, its place
/// among the queries that may run at once (held until its work ends) and its session.
struct Prepared {
    sql: String,
    version: Option<u64>,
    admitted: OwnedSemaphorePermit,
    ctx: SessionContext,
}

/// Reads only: DataFusion refuses DDL (CREATE EXTERNAL TABLE, ...), DML (INSERT, COPY) and
/// statements (SET, ...) before planning anything.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// What a cluster's scheduler said when last asked.
#[derive(Debug, Clone)]
enum ClusterSeen {
    NotAsked,
    /// It answered, knowing this many live executors.
    Executors(usize),
    /// It did not answer, for this reason.
    Unreachable(String),
}

impl QueryEngine {
    /// An engine over the table at `table_url` with the default limits.
    pub fn new(table_url: Url) -> Self {
        QueryEngine {
            table_url,
            timeout: Duration::from_secs(30),
            max_rows: 10_000,
            memory: Arc::new(GreedyMemoryPool::new(512 * 1024 * 1024)),
            spill: Arc::new(
                DiskManager::builder()
                    .with_mode(DiskManagerMode::Disabled)
                    .build()
                    .expect("a disabled disk manager needs nothing"),
            ),
            footers: Arc::new(DefaultCache::new(DEFAULT_METADATA_CACHE_LIMIT)),
            admission: Arc::new(Semaphore::new(4)),
            concurrency: 4,
            running: Arc::default(),
            latest: Arc::default(),
            cluster: None,
            cluster_seen: Arc::new(RwLock::new(ClusterSeen::NotAsked)),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Runs queries on the Ballista cluster whose scheduler is `cluster`, or in-process.
    pub fn with_cluster(self, cluster: Option<SqlCluster>) -> Self {
        QueryEngine { cluster, ..self }
    }

    /// Asks the cluster's scheduler how it stands and keeps the answer, for the status and
    /// for the queries that follow (refused at once while it does not answer). In-process,
    /// there is nothing to ask.
    pub async fn check_cluster(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let seen = match cluster.executors(&self.http).await {
            Ok(executors) => ClusterSeen::Executors(executors),
            Err(error) => ClusterSeen::Unreachable(error.to_string()),
        };
        *self
            .cluster_seen
            .write()
            .unwrap_or_else(PoisonError::into_inner) = seen;
    }

    fn cluster_seen(&self) -> ClusterSeen {
        self.cluster_seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The SQL stage as of the cluster's last answer.
    pub fn status(&self) -> SqlStatus {
        let (state, executors, detail) = match (&self.cluster, self.cluster_seen()) {
            (None, _) => (
                StageState::Connected,
                None,
                "DataFusion in this process".into(),
            ),
            (Some(_), ClusterSeen::NotAsked) => {
                (StageState::Connecting, None, "asking the scheduler".into())
            }
            (Some(_), ClusterSeen::Executors(0)) => (
                StageState::Partial,
                Some(0),
                "the scheduler has no executors: queries wait for one".into(),
            ),
            (Some(_), ClusterSeen::Executors(n)) => {
                (StageState::Connected, Some(n), format!("{n} executors"))
            }
            (Some(_), ClusterSeen::Unreachable(why)) => (StageState::Down, None, why),
        };
        SqlStatus {
            state,
            engine: self.engine(),
            executors,
            detail,
        }
    }

    /// Where queries run.
    pub fn engine(&self) -> SqlEngine {
        match &self.cluster {
            None => SqlEngine::InProcess,
            Some(cluster) => SqlEngine::Cluster {
                scheduler: cluster.to_string(),
            },
        }
    }

    /// How long a query may run, and how much memory all queries together may hold, before
    /// one is stopped.
    pub fn with_limits(self, timeout: Duration, memory_limit: usize) -> Self {
        QueryEngine {
            timeout,
            memory: Arc::new(GreedyMemoryPool::new(memory_limit)),
            ..self
        }
    }

    /// Lets queries spill to `dir` (emptied first: what a crash left there is nobody's),
    /// `max_bytes` at most for all of them together.
    pub fn with_spill(self, dir: &std::path::Path, max_bytes: u64) -> Result<Self, QueryError> {
        let unusable = |e: std::io::Error| {
            QueryError::Failed(format!("spill directory {}: {e}", dir.display()))
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(unusable)?;
        }
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let spill = DiskManager::builder()
            .with_mode(DiskManagerMode::Directories(vec![dir.to_owned()]))
            .with_max_temp_directory_size(max_bytes)
            .build()?;
        Ok(QueryEngine {
            spill: Arc::new(spill),
            ..self
        })
    }

    /// How many queries may run at once; more wait a moment, then are turned away.
    pub fn with_concurrency(self, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        QueryEngine {
            admission: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            ..self
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the query started with this id; false if none runs under it.
    pub fn cancel(&self, id: &str) -> bool {
        self.running().remove(id).map(|q| q.abort()).is_some()
    }

    /// The query's SQL and version, admitted to run, with a session over that version.
    async fn prepare(&self, request: &QueryRequest) -> Result<Prepared, QueryError> {
        let (sql, version_in_sql) = take_version_clause(request.query.trim())?;
        if sql.is_empty() {
            return Err(QueryError::Empty);
        }
        let version = match (request.version, version_in_sql) {
            (Some(asked), Some(written)) if asked != written => {
                return Err(QueryError::Sql(format!(
                    "the query reads VERSION AS OF {written} but version {asked} was asked for"
                )))
            }
            (asked, written) => written.or(asked),
        };
        if let ClusterSeen::Unreachable(why) = self.cluster_seen() {
            return Err(QueryError::ClusterDown(why));
        }
        let admitted = tokio::time::timeout(ADMISSION_WAIT, self.admission.clone().acquire_owned())
            .await
            .map_err(|_| QueryError::Busy(self.concurrency))?
            .map_err(|_| QueryError::Busy(self.concurrency))?;
        let ctx = self.session(version).await?;
        Ok(Prepared {
            sql,
            version,
            admitted,
            ctx,
        })
    }

    /// Runs one query: its answer up to the row and byte caps.
    pub async fn run(&self, request: &QueryRequest) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let Prepared {
            sql,
            version,
            admitted,
            ctx,
        } = self.prepare(request).await?;
        let max_rows = self.max_rows;
        let cluster = self.cluster.clone();
        let http = self.http.clone();
        let work = query_runtime().spawn(async move {
            // Held until the work itself ends, which may be after a timeout was answered.
            let _admitted = admitted;
            let frame = ctx.sql_with_options(&sql, read_only()).await?;
            let columns: Vec<String> = frame
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let plan = frame.create_physical_plan().await?;
            let job = cluster.map(|cluster| cluster.job(&http, &plan));
            // Read only as far as the caps; dropping the stream stops the rest of the work.
            let mut stream = execute_stream(plan, ctx.task_ctx())?;
            let mut answer = Answer::new(max_rows);
            while let Some(batch) = stream.try_next().await? {
                if !answer.take(&batch)? {
                    break;
                }
            }
            if let Some(job) = job {
                job.answered();
            }
            Ok::<_, DataFusionError>((columns, answer))
        });
        // Whatever way this ends (an answer, the time limit, the client gone and this future
        // dropped), the work stops with it and its id is forgotten.
        let _stop_with_the_request = StopOnDrop {
            work: work.abort_handle(),
            id: request.id.clone(),
            running: self.running.clone(),
        };
        if let Some(id) = &request.id {
            self.running().insert(id.clone(), work.abort_handle());
        }
        let (columns, answer) = match tokio::time::timeout(self.timeout, work).await {
            Err(_) => return Err(QueryError::Timeout(self.timeout)),
            Ok(Err(joined)) if joined.is_cancelled() => return Err(QueryError::Cancelled),
            Ok(Err(joined)) => return Err(QueryError::Failed(joined.to_string())),
            Ok(Ok(Err(error))) if self.cluster.is_some() => {
                // A cluster that stopped answering fails the query with a transport error:
                // said as the cluster being down, not as a fault in the query.
                self.check_cluster().await;
                return Err(match self.cluster_seen() {
                    ClusterSeen::Unreachable(why) => QueryError::ClusterDown(why),
                    _ => error.into(),
                });
            }
            Ok(Ok(answer)) => answer?,
        };
        let cut_by_bytes = answer.cut;
        let mut result = to_result(columns, answer.finish()?)?;
        result.truncated = cut_by_bytes || result.rows.len() > self.max_rows;
        result.rows.truncate(self.max_rows);
        result.row_count = result.rows.len();
        result.execution_ms = started.elapsed().as_secs_f64() * 1000.0;
        result.version = version;
        result.engine = self.engine();
        Ok(result)
    }

    /// Runs a query for a download. CSV, NDJSON and Parquet are encoded batch by batch as it
    /// runs, with no row cap, within the time limit and the export byte limit; JSON is the
    /// API's answer. A query that cannot run fails here, before any byte is sent.
    pub async fn export(
        &self,
        request: &QueryRequest,
        format: ExportFormat,
    ) -> Result<Export, QueryError> {
        if format == ExportFormat::Json {
            return format.whole(&self.run(request).await?);
        }
        let Prepared {
            sql, admitted, ctx, ..
        } = self.prepare(request).await?;
        let (planned, plan_answer) = tokio::sync::oneshot::channel();
        let (chunks, body) = tokio::sync::mpsc::channel(EXPORT_CHUNKS_AHEAD);
        let timeout = self.timeout;
        let (cluster, http) = (self.cluster.clone(), self.http.clone());
        let late = chunks.clone();
        let work = async move {
            let started = async {
                let plan = ctx
                    .sql_with_options(&sql, read_only())
                    .await?
                    .create_physical_plan()
                    .await?;
                let job = cluster.map(|cluster| cluster.job(&http, &plan));
                let stream = execute_stream(plan, ctx.task_ctx())?;
                let encoder = export::Encoder::new(format, &stream.schema())?;
                Ok::<_, QueryError>((stream, job, encoder))
            };
            let (mut stream, job, mut encoder) = match started.await {
                Ok(started) => {
                    let _ = planned.send(Ok(()));
                    started
                }
                Err(error) => {
                    let _ = planned.send(Err(error));
                    return;
                }
            };
            let mut written = 0;
            loop {
                let chunk = match stream.try_next().await {
                    Ok(Some(batch)) => encoder.write(&batch),
                    Ok(None) => break,
                    Err(error) => Err(error.into()),
                };
                let chunk = chunk.and_then(|bytes| {
                    written += bytes.len() as u64;
                    match written > MAX_EXPORT_BYTES {
                        true => Err(QueryError::ExportTooBig(MAX_EXPORT_BYTES)),
                        false => Ok(bytes),
                    }
                });
                let failed = chunk.is_err();
                // A client gone (its end dropped) stops the query with this stream.
                if chunks.send(chunk).await.is_err() || failed {
                    return;
                }
            }
            let _ = chunks.send(encoder.finish()).await;
            if let Some(job) = job {
                job.answered();
            }
        };
        query_runtime().spawn(async move {
            let in_time = tokio::time::timeout(timeout, work).await;
            // The query's place is given back before waiting on a slow client for the error.
            drop(admitted);
            if in_time.is_err() {
                let _ = late.send(Err(QueryError::Timeout(timeout))).await;
            }
        });
        match plan_answer.await {
            Ok(Ok(())) => Ok(format.download(ExportBody::Streamed(body))),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(QueryError::Timeout(timeout)),
        }
    }

    async fn open(&self, version: Option<u64>) -> Result<deltalake::DeltaTable, QueryError> {
        match version {
            None => self.latest().await,
            Some(v) => deltalake::open_table_with_version(self.table_url.clone(), v)
                .await
                .map_err(|_| QueryError::NoSuchVersion(v)),
        }
    }

    /// The table at its latest version. The snapshot is kept between queries and brought up
    /// to date with the commits since (reopening it replayed the log from the last checkpoint
    /// for every query).
    async fn latest(&self) -> Result<deltalake::DeltaTable, QueryError> {
        let mut kept = self.latest.lock().await;
        let table = match kept.take() {
            Some(mut table) => {
                table.update_incremental(None).await?;
                table
            }
            None => deltalake::open_table(self.table_url.clone()).await?,
        };
        *kept = Some(table.clone());
        Ok(table)
    }

    /// A fresh session over one version of the table (the latest by default, so every query
    /// sees the last commit), drawing on the budget all queries share; on the cluster when
    /// one is named.
    async fn session(&self, version: Option<u64>) -> Result<SessionContext, QueryError> {
        let table = self.open(version).await?;
        let runtime = RuntimeEnvBuilder {
            disk_manager: Some(self.spill.clone()),
            ..RuntimeEnvBuilder::new()
        }
        .with_memory_pool(self.memory.clone())
        .with_cache_manager(
            CacheManagerConfig::default().with_file_metadata_cache(Some(self.footers.clone())),
        )
        .build_arc()?;
        let config = SessionConfig::new().with_information_schema(true);
        let (ctx, provider): (SessionContext, Arc<dyn TableProvider>) = match &self.cluster {
            None => {
                let ctx = SessionContext::new_with_config_rt(config, runtime);
                add_functions(&ctx)?;
                (ctx, table.table_provider().await?)
            }
            Some(cluster) => {
                let state = SessionStateBuilder::new()
                    .with_default_features()
                    .with_config(config)
                    .with_runtime_env(runtime)
                    .build();
                (
                    cluster.session(state).await?,
                    Arc::new(SnapshotScan::of(&table)?),
                )
            }
        };
        ctx.register_table(TABLE, provider.clone())?;
        ctx.catalog("datafusion")
            .ok_or_else(|| QueryError::Sql("default catalog missing".into()))?
            .register_schema(SCHEMA_ALIAS, Arc::new(MemorySchemaProvider::new()))?;
        ctx.register_table(format!("{SCHEMA_ALIAS}.{TABLE}").as_str(), provider)?;
        Ok(ctx)
    }

    /// The columns of the latest version of the table.
    pub async fn columns(&self) -> Result<Vec<ColumnInfo>, QueryError> {
        let table = self.open(None).await?;
        let provider = table.table_provider().await?;
        Ok(provider
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnInfo {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect())
    }

    /// The table's versions, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<TableVersion>, QueryError> {
        let table = self.open(None).await?;
        let latest = table.version().unwrap_or(0);
        let commits: Vec<_> = table.history(Some(limit)).try_collect().await?;
        Ok(commits
            .into_iter()
            .zip((0..=latest).rev())
            .map(|(commit, version)| {
                let metric = |name: &str| {
                    commit
                        .info
                        .get("operationMetrics")
                        .and_then(|m| m.get(name))
                        .and_then(serde_json::Value::as_u64)
                };
                TableVersion {
                    version,
                    timestamp: commit.timestamp.and_then(DateTime::from_timestamp_millis),
                    operation: commit.operation.clone().unwrap_or_default(),
                    rows_added: metric("num_added_rows"),
                    files_added: metric("num_added_files"),
                    files_removed: metric("num_removed_files"),
                }
            })
            .collect())
    }
}

/// Stops a query's work and forgets its id when the request that started it ends.
struct StopOnDrop {
    work: AbortHandle,
    id: Option<String>,
    running: Arc<Mutex<HashMap<String, AbortHandle>>>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.work.abort();
        if let Some(id) = &self.id {
            self.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }
}

/// Queries people ran, newest last, in a JSON-lines file so they survive restarts.
pub struct QueryHistory {
    path: PathBuf,
    entries: Mutex<VecDeque<HistoryEntry>>,
}

/// Entries kept in memory (and offered in the workbench).
const HISTORY_KEPT: usize = 200;

impl QueryHistory {
    /// Loads what an earlier run left in `path`; lines that do not parse are skipped.
    pub fn open(path: PathBuf) -> Self {
        let mut entries = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for entry in text.lines().filter_map(|l| serde_json::from_str(l).ok()) {
                if entries.len() == HISTORY_KEPT {
                    entries.pop_front();
                }
                entries.push_back(entry);
            }
        }
        QueryHistory {
            path,
            entries: Mutex::new(entries),
        }
    }

    pub fn record(&self, entry: HistoryEntry) {
        let line = match serde_json::to_string(&entry) {
            Ok(line) => line,
            Err(error) => return tracing::warn!(%error, "could not record a query"),
        };
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(error) = appended {
            tracing::warn!(%error, path = %self.path.display(), "could not save the query history");
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == HISTORY_KEPT {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Newest first, each query once (its latest run).
    pub fn recent(&self, limit: usize) -> Vec<HistoryEntry> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        entries
            .iter()
            .rev()
            .filter(|e| seen.insert((e.sql.clone(), e.version)))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Takes Delta's time-travel clause, `logs VERSION AS OF n` (as Spark SQL writes it), out of
/// the query, since DataFusion's parser does not know it: the query then reads version `n`.
/// Every mention of the table must ask for the same version.
fn take_version_clause(sql: &str) -> Result<(String, Option<u64>), QueryError> {
    // A query that does not tokenize is left for DataFusion to explain.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return Ok((sql.to_owned(), None));
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i].token, Token::Whitespace(_)))
        .collect();
    let is_word = |i: usize, expected: &str| matches!(&tokens[i].token, Token::Word(w) if w.value.eq_ignore_ascii_case(expected));
    let mut version = None;
    let mut cuts = Vec::new();
    for window in significant.windows(5) {
        let &[table, kw_version, kw_as, kw_of, number] = window else {
            continue;
        };
        let clause = is_word(table, TABLE)
            && is_word(kw_version, "VERSION")
            && is_word(kw_as, "AS")
            && is_word(kw_of, "OF");
        if !clause {
            continue;
        }
        let written = match &tokens[number].token {
            Token::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            QueryError::Sql(format!(
                "VERSION AS OF takes a table version number, not {}",
                tokens[number].token
            ))
        })?;
        if version.is_some_and(|v| v != written) {
            return Err(QueryError::Sql(
                "a query reads one version of the table: every VERSION AS OF must name the same"
                    .into(),
            ));
        }
        version = Some(written);
        let end = tokens
            .get(number + 1)
            .map_or(sql.len(), |next| byte_at(sql, next.span.start));
        cuts.push(byte_at(sql, tokens[table + 1].span.start)..end);
    }
    let mut kept = String::with_capacity(sql.len());
    let mut from = 0;
    for cut in cuts {
        kept.push_str(&sql[from..cut.start]);
        from = cut.end;
    }
    kept.push_str(&sql[from..]);
    Ok((kept, version))
}

/// The byte offset of a tokenizer location (lines and columns counted from 1, in characters).
fn byte_at(sql: &str, at: Location) -> usize {
    let line_start: usize = sql
        .split_inclusive('\n')
        .take(at.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    line_start
        + sql[line_start..]
            .chars()
            .take(at.column.saturating_sub(1) as usize)
            .map(char::len_utf8)
            .sum::<usize>()
}

/// An answer as it is read: rows encoded as JSON until one more than the row cap, or until
/// the JSON reaches [`MAX_ANSWER_BYTES`].
struct Answer {
    json: deltalake::arrow::json::Writer<Vec<u8>, JsonArray>,
    rows: usize,
    max_rows: usize,
    /// Cut at the byte cap.
    cut: bool,
}

impl Answer {
    fn new(max_rows: usize) -> Self {
        Answer {
            json: WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(Vec::new()),
            rows: 0,
            max_rows,
            cut: false,
        }
    }

    /// Takes in a batch; false once the answer is full.
    fn take(&mut self, batch: &RecordBatch) -> Result<bool, DataFusionError> {
        let mut at = 0;
        while at < batch.num_rows() {
            if self.rows > self.max_rows {
                return Ok(false);
            }
            if self.json.get_ref().len() >= MAX_ANSWER_BYTES {
                self.cut = true;
                return Ok(false);
            }
            let rows = ENCODE_ROWS
                .min(batch.num_rows() - at)
                .min(self.max_rows + 1 - self.rows);
            self.json.write(&batch.slice(at, rows))?;
            self.rows += rows;
            at += rows;
        }
        Ok(self.rows <= self.max_rows)
    }

    fn finish(mut self) -> Result<Vec<u8>, QueryError> {
        self.json
            .finish()
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        Ok(self.json.into_inner())
    }
}

/// What every session of ours adds to DataFusion's functions: the JSON functions that read
/// `attributes` (`json_get_str(attributes, 'region')`, `attributes->>'region'`), the value
/// builders behind their budget, and `approx_percentile_cont` gathering values per group. The
/// server, the SQL cluster's scheduler and its executors all add them, so a query means the
/// same wherever it runs.
pub(crate) fn add_functions(ctx: &SessionContext) -> Result<(), DataFusionError> {
    datafusion_functions_json::register_all(&mut *ctx.state_ref().write())?;
    built_values::bound_value_builders(ctx);
    gathered_percentile::gather_percentile_values(ctx);
    Ok(())
}

fn to_result(columns: Vec<String>, json: Vec<u8>) -> Result<QueryResult, QueryError> {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = if json.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&json).map_err(|e| QueryError::Sql(e.to_string()))?
    };
    let rows = objects
        .into_iter()
        .map(|mut object| {
            columns
                .iter()
                .map(|c| object.remove(c).unwrap_or(serde_json::Value::Null))
                .collect()
        })
        .collect::<Vec<_>>();
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        execution_ms: 0.0,
        truncated: false,
        version: None,
        engine: SqlEngine::InProcess,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::lake;

    async fn empty_table() -> (tempfile::TempDir, QueryEngine) {
        let dir = tempfile::tempdir().unwrap();
        let url = lake::table_url(&dir.path().join("t")).unwrap();
        lake::open_for_group(&url, "g").await.unwrap();
        (dir, QueryEngine::new(url))
    }

    #[tokio::test]
    async fn answers_under_both_names_and_refuses_writes() {
        let (_dir, engine) = empty_table().await;
        let answer = engine
            .run(&QueryRequest::sql(
                "SELECT count(*) AS n FROM delta_lake.logs",
            ))
            .await
            .unwrap();
        assert_eq!(answer.rows, vec![vec![serde_json::Value::from(0)]]);
        let answer = engine
            .run(&QueryRequest::sql("SELECT * FROM logs"))
            .await
            .unwrap();
        assert_eq!(answer.row_count, 0);
        assert!(
            answer.columns.contains(&"event_id".to_owned()),
            "{:?}",
            answer.columns
        );

        for hostile in [
            "DROP TABLE logs",
            "INSERT INTO logs SELECT * FROM logs",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/lakepulse-copy.csv'",
            "SET datafusion.execution.batch_size = 1",
            "DELETE FROM logs",
            "UPDATE logs SET status = 200",
            "CREATE TABLE copied AS SELECT * FROM logs",
            "CREATE VIEW v AS SELECT 1",
            "DROP VIEW IF EXISTS v",
            "COPY logs TO '/tmp/lakepulse-copy.parquet'",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM 'file:///etc/passwd'",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_parquet('/tmp/x.parquet')",
            "CREATE EXTERNAL TABLE remote STORED AS PARQUET LOCATION 'http://127.0.0.1:9/x'",
            "SELECT 1; DROP TABLE logs",
        ] {
            let error = engine.run(&QueryRequest::sql(hostile)).await.unwrap_err();
            assert!(error.is_client_error(), "{hostile}: {error}");
        }
        assert!(!std::path::Path::new("/tmp/lakepulse-copy.csv").exists());
        assert!(!std::path::Path::new("/tmp/lakepulse-copy.parquet").exists());
        // What stays allowed: reading, explaining, describing.
        for fine in [
            "WITH e AS (SELECT * FROM logs WHERE status >= 500) SELECT count(*) FROM e",
            "EXPLAIN SELECT count(*) FROM logs",
            "DESCRIBE logs",
            "SHOW COLUMNS FROM logs",
            "SHOW TABLES",
        ] {
            engine
                .run(&QueryRequest::sql(fine))
                .await
                .unwrap_or_else(|e| panic!("{fine}: {e}"));
        }

        let answer = engine
            .run(&QueryRequest::sql(
                "SELECT count(*) FROM logs VERSION AS OF 0",
            ))
            .await
            .unwrap();
        assert_eq!(answer.version, Some(0));
        let error = engine
            .run(&QueryRequest::sql("SELECT * FROM logs VERSION AS OF 7"))
            .await
            .unwrap_err();
        assert!(matches!(error, QueryError::NoSuchVersion(7)), "{error}");

        let error = engine
            .run(&QueryRequest::sql("SELECT nope FROM logs"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
        assert!(matches!(
            engine.run(&QueryRequest::sql("  ")).await,
            Err(QueryError::Empty)
        ));
    }

    #[test]
    fn version_as_of_is_taken_out_of_the_query() {
        let cases = [
            (
                "SELECT count(*) FROM logs VERSION AS OF 3 WHERE status >= 500",
                "SELECT count(*) FROM logs WHERE status >= 500",
                Some(3),
            ),
            (
                "select * from delta_lake.logs version as of 0",
                "select * from delta_lake.logs",
                Some(0),
            ),
            (
                "SELECT 'café'\nFROM logs VERSION AS OF 2 AS l\nJOIN logs VERSION AS OF 2 AS r ON true",
                "SELECT 'café'\nFROM logs AS l\nJOIN logs AS r ON true",
                Some(2),
            ),
            (
                "SELECT 'logs VERSION AS OF 9' FROM logs",
                "SELECT 'logs VERSION AS OF 9' FROM logs",
                None,
            ),
            ("SELECT 'unterminated", "SELECT 'unterminated", None),
        ];
        for (sql, kept, version) in cases {
            let taken = take_version_clause(sql).unwrap();
            assert_eq!((taken.0.as_str(), taken.1), (kept, version), "{sql}");
        }
        for refused in [
            "SELECT * FROM logs VERSION AS OF 1 JOIN logs VERSION AS OF 2 ON true",
            "SELECT * FROM logs VERSION AS OF 'yesterday'",
            "SELECT * FROM logs VERSION AS OF -1",
        ] {
            assert!(take_version_clause(refused).is_err(), "{refused}");
        }
    }

    #[tokio::test]
    async fn caps_rows_and_says_so() {
        let (_dir, mut engine) = empty_table().await;
        engine.max_rows = 5;
        let answer = engine
            .run(&QueryRequest::sql("SELECT * FROM generate_series(1, 20)"))
            .await
            .unwrap();
        assert_eq!(answer.row_count, 5);
        assert!(answer.truncated);
        let answer = engine
            .run(&QueryRequest::sql("SELECT * FROM generate_series(1, 5)"))
            .await
            .unwrap();
        assert!(!answer.truncated);
    }

    #[tokio::test]
    async fn value_building_functions_build_within_their_budget_or_are_refused() {
        let (_dir, engine) = empty_table().await;
        let first = |sql: &'static str| {
            let engine = engine.clone();
            async move {
                engine
                    .run(&QueryRequest::sql(sql))
                    .await
                    .map(|a| a.rows[0][0].clone())
            }
        };
        for (sql, built) in [
            ("SELECT length(repeat('ab', 1000))", 2000),
            ("SELECT length(lpad('x', 1000))", 1000),
            ("SELECT cardinality(range(1, 1001))", 1000),
            ("SELECT cardinality(generate_series(1, 1000))", 1000),
            (
                "SELECT cardinality(range(DATE '2026-01-01', DATE '2026-02-01', INTERVAL '1 day'))",
                31,
            ),
            ("SELECT cardinality(array_repeat(1, 1000))", 1000),
            ("SELECT length(replace('aaa', 'a', 'bb'))", 6),
        ] {
            assert_eq!(first(sql).await.unwrap(), built, "{sql}");
        }
        for sql in [
            "SELECT length(repeat('x', 1000000000))",
            "SELECT length(repeat(repeat('x', 10000000), 10000000))",
            "SELECT length(lpad('x', 2000000000))",
            "SELECT length(rpad('x', 2000000000, 'y'))",
            "SELECT cardinality(range(1, 100000000000))",
            "SELECT cardinality(range(100000000000))",
            "SELECT cardinality(generate_series(-9223372036854775807, 9223372036854775807))",
            "SELECT cardinality(range(TIMESTAMP '1970-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second'))",
            "SELECT cardinality(array_repeat(1, 1000000000))",
            "SELECT cardinality(array_resize(make_array(1), 1000000000))",
            "SELECT length(replace(repeat('x', 1000000), 'x', repeat('y', 1000)))",
            "SELECT length(regexp_replace(repeat('x', 1000000), 'x', repeat('y', 1000), 'g'))",
            // Small values, but one for every row of a batch.
            "SELECT max(length(repeat('x', 100000 + value % 2))) FROM generate_series(1, 8192)",
        ] {
            let error = first(sql).await.unwrap_err().to_string();
            assert!(error.contains("may build at most"), "{sql}: {error}");
        }
    }

    #[tokio::test]
    async fn answers_are_cut_at_their_byte_cap() {
        let (_dir, engine) = empty_table().await;
        // 9 000 rows of 4 KB: within the row cap, four times the byte cap as JSON.
        let answer = engine
            .run(&QueryRequest::sql(
                "SELECT value, repeat('x', 4000) AS text FROM generate_series(1, 9000)",
            ))
            .await
            .unwrap();
        assert!(answer.truncated);
        // Each row is 4 000 bytes of text and a few of JSON around it.
        let rows = MAX_ANSWER_BYTES / 4100..MAX_ANSWER_BYTES / 4000 + ENCODE_ROWS + 1;
        assert!(
            rows.contains(&answer.row_count),
            "{} rows",
            answer.row_count
        );
    }

    #[test]
    fn history_survives_a_restart_and_lists_each_query_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("query-history.jsonl");
        let entry = |sql: &str| HistoryEntry {
            sql: sql.to_owned(),
            version: None,
            at: chrono::Utc::now(),
            rows: 1,
            execution_ms: 2.0,
        };
        let history = QueryHistory::open(path.clone());
        history.record(entry("SELECT 1"));
        history.record(entry("SELECT 2"));
        history.record(entry("SELECT 1"));
        drop(history);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "not json"))
            .unwrap();
        let reopened = QueryHistory::open(path);
        let sqls: Vec<String> = reopened.recent(10).into_iter().map(|e| e.sql).collect();
        assert_eq!(sqls, ["SELECT 1", "SELECT 2"]);
    }

    #[tokio::test]
    async fn limits_stop_runaway_queries_and_cancel_works() {
        let (_dir, engine) = empty_table().await;
        let mut engine = engine.with_limits(Duration::from_secs(30), 1024 * 1024);
        let error = engine
            .run(&QueryRequest::sql(
                "SELECT value, count(*) FROM generate_series(1, 2000000) GROUP BY value",
            ))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("Resources exhausted"), "{error}");

        let explosion = "SELECT count(*) FROM generate_series(1, 1000000000000) a, generate_series(1, 1000000) b";
        engine.timeout = Duration::from_millis(300);
        let error = engine.run(&QueryRequest::sql(explosion)).await.unwrap_err();
        assert!(matches!(error, QueryError::Timeout(_)), "{error}");

        engine.timeout = Duration::from_secs(30);
        let request = QueryRequest {
            id: Some("q-1".into()),
            ..QueryRequest::sql(explosion)
        };
        let running = {
            let engine = engine.clone();
            tokio::spawn(async move { engine.run(&request).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(engine.cancel("q-1"));
        let outcome = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(outcome, Err(QueryError::Cancelled)), "{outcome:?}");
        assert!(!engine.cancel("q-1"), "finished queries are forgotten");
    }
}
