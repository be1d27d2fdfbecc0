//! The lake: consumed events become rows of a Delta table, committed in batches. Each commit
//! carries, as Delta `txn` actions, the next Kafka offset of every partition it covers, so the
//! table itself says where consumption resumes.

use crate::model::{LakeStatus, LogEvent, StageState};
use chrono::{NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

pub const PARTITION_COLUMN: &str = "event_date";

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("invalid table location {0}: {1}")]
    Location(String, String),
    #[error(transparent)]
    Delta(#[from] DeltaTableError),
    #[error("the table schema does not map to Delta: {0}")]
    Schema(String),
    #[error("could not build a batch: {0}")]
    Arrow(#[from] ArrowError),
}

/// One consumed Kafka message and the events it carried: none for a message that did not
/// decode (its offset still has to move forward), several for a batch.
#[derive(Debug)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub events: Vec<LogEvent>,
}

/// One row: an event and where in Kafka it came from.
struct Row {
    partition: i32,
    offset: i64,
    /// Position of the event within its message.
    item: usize,
    event: LogEvent,
}

pub fn table_url(path: &Path) -> Result<Url, LakeError> {
    std::fs::create_dir_all(path)
        .map_err(|e| LakeError::Location(path.display().to_string(), e.to_string()))?;
    let absolute = std::fs::canonicalize(path)
        .map_err(|e| LakeError::Location(path.display().to_string(), e.to_string()))?;
    Url::from_directory_path(&absolute)
        .map_err(|()| LakeError::Location(absolute.display().to_string(), "not a directory".into()))
}

/// Opens the table at `url`, creating it (empty, partitioned by event date) the first time.
pub async fn open_or_create(url: &Url) -> Result<DeltaTable, LakeError> {
    let table = DeltaTable::try_from_url(url.clone()).await?;
    if table.version().is_some() {
        return Ok(table);
    }
    let schema = rows_to_batch("", &[], 0)?.schema();
    let columns: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| LakeError::Schema(e.to_string()))?;
    let table = table
        .create()
        .with_columns(columns.fields().cloned())
        .with_partition_columns([PARTITION_COLUMN])
        .with_table_name("logs")
        .with_comment("web request events consumed from Kafka by lakepulse")
        .await?;
    tracing::info!(%url, "created Delta table");
    Ok(table)
}

/// The lake's line of the status, as of opening `table`.
pub fn initial_status(url: &Url, table: &DeltaTable) -> LakeStatus {
    LakeStatus {
        state: StageState::Connected,
        path: url.to_string(),
        version: table.version(),
        rows_committed: 0,
        last_commit: None,
        last_commit_age_secs: None,
        detail: "waiting for events".to_owned(),
    }
}

/// The Delta application id under which a consumer group records its offsets of one partition.
fn app_id(group: &str, topic: &str, partition: i32) -> String {
    format!("lakepulse:{group}:{topic}:{partition}")
}

/// The next offset to consume of each partition, as the table's last commits recorded them.
pub async fn committed_offsets(
    table: &DeltaTable,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, LakeError> {
    let snapshot = table.snapshot()?;
    let mut offsets = HashMap::new();
    for &partition in partitions {
        if let Some(next) = snapshot
            .transaction_version(table.log_store().as_ref(), app_id(group, topic, partition))
            .await?
        {
            offsets.insert(partition, next);
        }
    }
    Ok(offsets)
}

/// Builds the rows of a commit. The empty batch of this function is the table's schema.
fn rows_to_batch(
    topic: &str,
    rows: &[Row],
    ingested_at_micros: i64,
) -> Result<RecordBatch, ArrowError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    let strings = |f: &dyn Fn(&LogEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(&r.event)).collect::<StringArray>())
    };
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "event_id",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                format!("{topic}/{}/{}/{}", r.partition, r.offset, r.item)
            }))),
            false,
        ),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter()
                        .map(|Row { event: e, .. }| e.timestamp.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            false,
        ),
        (
            PARTITION_COLUMN,
            Arc::new(Date32Array::from_iter_values(rows.iter().map(
                |Row { event: e, .. }| (e.timestamp.date_naive() - epoch).num_days() as i32,
            ))),
            false,
        ),
        ("level", strings(&|e| Some(e.level.as_str())), false),
        ("source", strings(&|e| Some(e.source.as_str())), false),
        ("method", strings(&|e| Some(e.method.as_str())), false),
        ("endpoint", strings(&|e| Some(e.endpoint.as_str())), false),
        (
            "status",
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|Row { event: e, .. }| i32::from(e.status)),
            )),
            false,
        ),
        (
            "response_time_ms",
            Arc::new(
                rows.iter()
                    .map(|Row { event: e, .. }| e.response_time)
                    .collect::<Float64Array>(),
            ),
            true,
        ),
        ("user_id", strings(&|e| e.user_id.as_deref()), true),
        ("session_id", strings(&|e| e.session_id.as_deref()), true),
        ("ip", strings(&|e| e.ip.as_deref()), true),
        (
            "bytes",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(
                |Row { event: e, .. }| i64::try_from(e.bytes).unwrap_or(i64::MAX),
            ))),
            false,
        ),
        ("message", strings(&|e| Some(e.message.as_str())), false),
        (
            "kafka_partition",
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.partition),
            )),
            false,
        ),
        (
            "kafka_offset",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
            false,
        ),
        (
            "ingested_at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|_| ingested_at_micros),
                )
                .with_timezone("UTC"),
            ),
            false,
        ),
    ];
    RecordBatch::try_from_iter_with_nullable(columns)
}

/// Told the next offset of each partition once a commit has made them durable.
type OnCommit = Box<dyn Fn(&BTreeMap<i32, i64>) + Send + Sync>;

/// Buffers consumed events and commits them to the table.
pub struct LakeSink {
    table: DeltaTable,
    group: String,
    topic: String,
    rows: Vec<Row>,
    /// Next offset per partition, as of everything received so far.
    next_offsets: BTreeMap<i32, i64>,
    status: Arc<RwLock<LakeStatus>>,
    on_commit: OnCommit,
}

impl LakeSink {
    pub fn new(
        table: DeltaTable,
        group: &str,
        topic: &str,
        status: Arc<RwLock<LakeStatus>>,
        on_commit: impl Fn(&BTreeMap<i32, i64>) + Send + Sync + 'static,
    ) -> Self {
        LakeSink {
            table,
            group: group.to_owned(),
            topic: topic.to_owned(),
            rows: Vec::new(),
            next_offsets: BTreeMap::new(),
            status,
            on_commit: Box::new(on_commit),
        }
    }

    /// Commits at least every `interval` while events flow, and whenever `max_rows` are waiting.
    /// A failed commit keeps its rows and is retried; while the buffer is full no more
    /// messages are taken, so ingest waits instead of losing anything.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Consumed>,
        interval: Duration,
        max_rows: usize,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                consumed = input.recv() => match consumed {
                    Some(consumed) => {
                        self.push(consumed);
                        while self.rows.len() >= max_rows && !self.commit().await {
                            tokio::time::sleep(interval).await;
                        }
                    }
                    None => {
                        self.commit().await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    self.commit().await;
                }
            }
        }
    }

    fn push(&mut self, consumed: Consumed) {
        self.next_offsets
            .insert(consumed.partition, consumed.offset + 1);
        for (item, event) in consumed.events.into_iter().enumerate() {
            self.rows.push(Row {
                partition: consumed.partition,
                offset: consumed.offset,
                item,
                event,
            });
        }
    }

    /// Writes the waiting rows in one Delta commit; true when nothing is left waiting.
    async fn commit(&mut self) -> bool {
        if self.rows.is_empty() {
            // Offsets of undecodable messages ride along with the next commit that has rows.
            return true;
        }
        match self.write().await {
            Ok(table) => {
                self.table = table;
                let committed = self.rows.len() as u64;
                self.rows.clear();
                (self.on_commit)(&self.next_offsets);
                let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
                status.state = StageState::Connected;
                status.version = self.table.version();
                status.rows_committed += committed;
                status.last_commit = Some(Utc::now());
                status.detail = format!("committed {committed} rows");
                true
            }
            Err(error) => {
                tracing::error!(%error, rows = self.rows.len(), "Delta commit failed; will retry");
                let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
                status.state = StageState::Down;
                status.detail = format!("commit failed, {} rows waiting: {error}", self.rows.len());
                false
            }
        }
    }

    async fn write(&self) -> Result<DeltaTable, LakeError> {
        let batch = rows_to_batch(&self.topic, &self.rows, Utc::now().timestamp_micros())?;
        let offsets = self
            .next_offsets
            .iter()
            .map(|(&partition, &next)| {
                Transaction::new(app_id(&self.group, &self.topic, partition), next)
            })
            .collect();
        let table = self
            .table
            .clone()
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_partition_columns([PARTITION_COLUMN])
            .with_commit_properties(
                CommitProperties::default().with_application_transactions(offsets),
            )
            .await?;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueryRequest;
    use crate::pipeline::decode::decode;
    use crate::pipeline::query::{QueryEngine, QueryError};
    use std::sync::Mutex;

    fn event(i: i64) -> LogEvent {
        let json = format!(
            r#"{{"timestamp":"2026-11-29T23:59:59.5Z","endpoint":"/e/{i}","status":{},"sessionId":"s{i}"}}"#,
            if i % 4 == 0 { 500 } else { 200 }
        );
        decode(json.as_bytes(), Utc::now()).unwrap()
    }

    #[tokio::test]
    async fn commits_rows_with_their_offsets_and_sql_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        let table = open_or_create(&url).await.unwrap();
        assert_eq!(table.version(), Some(0));
        let status = Arc::new(RwLock::new(initial_status(&url, &table)));
        let told = Arc::new(Mutex::new(Vec::new()));
        let told_by_sink = told.clone();
        let sink = LakeSink::new(table, "g", "web-logs", status.clone(), move |offsets| {
            told_by_sink.lock().unwrap().push(offsets.clone())
        });
        let (tx, rx) = mpsc::channel(100);
        let running = tokio::spawn(sink.run(rx, Duration::from_secs(60), 1_000));
        for offset in 0..10 {
            let partition = (offset % 2) as i32;
            let events = vec![event(offset)];
            tx.send(Consumed {
                partition,
                offset,
                events,
            })
            .await
            .unwrap();
        }
        // An undecodable message: no row, but its offset is consumed.
        tx.send(Consumed {
            partition: 1,
            offset: 10,
            events: Vec::new(),
        })
        .await
        .unwrap();
        // A batch message: two rows, told apart by their item number.
        tx.send(Consumed {
            partition: 0,
            offset: 11,
            events: vec![event(11), event(12)],
        })
        .await
        .unwrap();
        drop(tx);
        running.await.unwrap();

        let expected = HashMap::from([(0, 12), (1, 11)]);
        let reopened = open_or_create(&url).await.unwrap();
        assert_eq!(
            reopened.version(),
            Some(1),
            "one commit for the whole batch"
        );
        let resume = committed_offsets(&reopened, "g", "web-logs", &[0, 1, 2])
            .await
            .unwrap();
        assert_eq!(resume, expected);
        assert!(
            committed_offsets(&reopened, "other-group", "web-logs", &[0])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(told.lock().unwrap().len(), 1);
        assert_eq!(status.read().unwrap().rows_committed, 12);

        let engine = QueryEngine::new(url);
        let answer = engine.run(&QueryRequest::sql("SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors, min(event_date) AS day FROM logs"))
            .await
            .unwrap();
        assert_eq!(answer.columns, ["n", "ids", "errors", "day"]);
        // Time travel: version 0 is the empty table; there is no version 9.
        let before = QueryRequest {
            version: Some(0),
            ..QueryRequest::sql("SELECT count(*) AS n FROM logs")
        };
        let answer_then = engine.run(&before).await.unwrap();
        assert_eq!(answer_then.rows, [[serde_json::Value::from(0)]]);
        assert_eq!(answer_then.version, Some(0));
        let missing = QueryRequest {
            version: Some(9),
            ..before
        };
        assert!(matches!(
            engine.run(&missing).await,
            Err(QueryError::NoSuchVersion(9))
        ));
        let history = engine.history(10).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!((history[0].version, history[0].rows_added), (1, Some(12)));
        assert_eq!(history[0].operation, "WRITE");
        assert_eq!(history[1].version, 0);
        assert_eq!(
            answer.rows,
            [serde_json::json!([12, 12, 4, "2026-11-29"])
                .as_array()
                .unwrap()
                .clone()]
        );
    }
}
