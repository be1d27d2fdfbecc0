//! The lake: consumed events become rows of a Delta table, committed in batches. Each commit
//! carries, as Delta `txn` actions, the next Kafka offset of every partition it covers, so the
//! table itself says where consumption resumes.

use crate::model::{LogEvent, StageState};
use crate::pipeline::consumer_group::Ownership;
use crate::pipeline::dead_letter::{DeadLetter, DeadLetters, Undelivered};
use crate::pipeline::fault;
use crate::pipeline::maintenance::Maintenance;
use crate::pipeline::prometheus;
use crate::pipeline::task::panic_message;
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::FutureExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
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
    #[error("reading the table's files: {0}")]
    Scan(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("could not build a batch: {0}")]
    Arrow(#[from] ArrowError),
    #[error("dead letters not acknowledged by the broker: {0}")]
    DeadLetters(rdkafka::error::KafkaError),
    #[error("the commit failed on a value: {0}")]
    Panicked(String),
    /// Another consumer group writes this table: both would write every row.
    #[error("the table at {table} is written by consumer group '{owner}', not '{group}': two groups would each write every event. Set KAFKA_GROUP_ID={owner} to share its work, or give this group its own DELTA_LAKE_PATH")]
    OtherGroup {
        table: String,
        owner: String,
        group: String,
    },
    /// The store replaced an object it was asked to create only if absent: two commits of one
    /// version would both report success, and one of them would be lost without a word.
    #[error("the store at {0} does not honour create-if-absent (a second conditional PUT of one object succeeded): commits racing for a table version could be lost. Use a store with conditional writes (If-None-Match), as AWS S3, Azure Blob Storage, Google Cloud Storage and MinIO have")]
    NoAtomicCreate(String),
    /// The store failed the create-if-absent check for another reason.
    #[error("checking that the store at {table} creates objects atomically: {error}")]
    StoreCheck {
        table: String,
        error: deltalake::ObjectStoreError,
    },
}

/// One consumed Kafka message and the events it carried: none for a message that did not
/// decode (its offset still has to move forward), several for a batch.
#[derive(Debug)]
pub struct Consumed {
    pub partition: i32,
    /// The assignment of the partition it was read under: once that is revoked, it is not
    /// this instance's to write.
    pub epoch: u64,
    pub offset: i64,
    /// Shared with the live view, which keeps the same events.
    pub events: Vec<Arc<LogEvent>>,
    /// What of the message did not decode: delivered before its offset is committed.
    pub letters: Vec<DeadLetter>,
    /// When the producer sent the message (Kafka's timestamp), for freshness.
    pub produced_at: Option<DateTime<Utc>>,
}

/// One row: an event and where in Kafka it came from.
#[derive(Clone)]
struct Row {
    partition: i32,
    epoch: u64,
    offset: i64,
    /// Position of the event within its message.
    item: usize,
    event: Arc<LogEvent>,
    produced_at: Option<DateTime<Utc>>,
}

/// Object-store schemes delta-rs is built with here (Cargo.toml's deltalake features).
const OBJECT_STORE_SCHEMES: [&str; 6] = ["s3", "s3a", "az", "abfs", "abfss", "gs"];

/// The table at `location`: an object-store URL (`s3://`, `az://`, `abfss://`, `gs://`) as
/// given, anything else a local directory, created if missing.
pub fn table_location(location: &str) -> Result<Url, LakeError> {
    match Url::parse(location) {
        Ok(url) if OBJECT_STORE_SCHEMES.contains(&url.scheme()) => Ok(url),
        Ok(url) if url.scheme() == "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| LakeError::Location(location.into(), "not a local path".into()))?;
            table_url(&path)
        }
        // One letter is a Windows drive, not a scheme.
        Ok(url) if url.scheme().len() > 1 => Err(LakeError::Location(
            location.into(),
            format!(
                "{}:// is not a store lakepulse writes to; use a directory or one of {}",
                url.scheme(),
                OBJECT_STORE_SCHEMES.map(|s| format!("{s}://")).join(", ")
            ),
        )),
        _ => table_url(Path::new(location)),
    }
}

/// The local directory `path` as a table URL, created if missing.
pub fn table_url(path: &Path) -> Result<Url, LakeError> {
    std::fs::create_dir_all(path)
        .map_err(|e| LakeError::Location(path.display().to_string(), e.to_string()))?;
    let absolute = std::fs::canonicalize(path)
        .map_err(|e| LakeError::Location(path.display().to_string(), e.to_string()))?;
    Url::from_directory_path(&absolute)
        .map_err(|()| LakeError::Location(absolute.display().to_string(), "not a directory".into()))
}

/// The table property naming the consumer group whose offsets the table's txn actions record.
const GROUP_PROPERTY: &str = "lakepulse.consumerGroup";

/// Opens the table at `url` for consumer group `group`, creating it (empty, partitioned by
/// event date, written by `group`) the first time. A table another group writes is refused:
/// each group reads every event, so both would write every row.
pub async fn open_for_group(url: &Url, group: &str) -> Result<DeltaTable, LakeError> {
    let table = match open_or_create(url, group).await {
        Ok(table) => table,
        // Another instance of the group may have created it meanwhile.
        Err(LakeError::Delta(error)) => match DeltaTable::try_from_url(url.clone()).await {
            Ok(table) if table.version().is_some() => table,
            _ => return Err(error.into()),
        },
        Err(error) => return Err(error),
    };
    require_atomic_create(table.log_store().object_store(None).as_ref(), url).await?;
    let owner = table
        .snapshot()?
        .table_config()
        .unknown_properties
        .get(GROUP_PROPERTY)
        .cloned();
    match owner {
        Some(owner) if owner == group => Ok(table),
        Some(owner) => Err(LakeError::OtherGroup {
            table: url.to_string(),
            owner,
            group: group.to_owned(),
        }),
        // Written by a lakepulse from before groups were recorded.
        None => Ok(table
            .set_tbl_properties()
            .with_properties(HashMap::from([(GROUP_PROPERTY.into(), group.into())]))
            // A property of lakepulse's own, not one of Delta's.
            .with_raise_if_not_exists(false)
            .await?),
    }
}

/// Delta's commits are safe only where creating `_delta_log/<version>.json` fails when
/// another writer created it first. Some S3-compatible servers ignore `If-None-Match` and
/// overwrite: checked once at start by creating one object twice under the table root (the
/// leading underscore keeps Delta readers from taking it for data). A local directory needs
/// no check (the file system's create-new is atomic), and a full disk there must not keep the
/// server from starting and saying so.
async fn require_atomic_create(
    store: &dyn deltalake::ObjectStore,
    url: &Url,
) -> Result<(), LakeError> {
    if url.scheme() == "file" {
        return Ok(());
    }
    use deltalake::logstore::object_store::{ObjectStoreExt, PutMode, PutPayload};
    let probe = deltalake::Path::from(format!(
        "_lakepulse/create-if-absent-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let failed = |error| LakeError::StoreCheck {
        table: url.to_string(),
        error,
    };
    let create = || {
        store.put_opts(
            &probe,
            PutPayload::from_static(b"1"),
            PutMode::Create.into(),
        )
    };
    create().await.map_err(failed)?;
    let second = create().await;
    let _ = store.delete(&probe).await;
    match second {
        Err(deltalake::ObjectStoreError::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(LakeError::NoAtomicCreate(url.to_string())),
        Err(error) => Err(failed(error)),
    }
}

async fn open_or_create(url: &Url, group: &str) -> Result<DeltaTable, LakeError> {
    // Loading where no log exists yet makes delta-kernel log an ERROR on every first start.
    let has_log = url
        .to_file_path()
        .map_or(true, |path| path.join("_delta_log").exists());
    let table = match has_log {
        true => DeltaTable::try_from_url(url.clone()).await?,
        false => DeltaTableBuilder::from_url(url.clone())?.build()?,
    };
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
        .with_configuration([(GROUP_PROPERTY, Some(group))])
        // A property of lakepulse's own, not one of Delta's.
        .with_raise_if_key_not_exists(false)
        .await?;
    tracing::info!(%url, "created Delta table");
    Ok(table)
}

/// Where the lake stands, as its sink and its maintenance report it; the health view is
/// built from this when asked.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeProgress {
    /// What the sink did last.
    pub activity: LakeActivity,
    /// The table version after the last commit, or as opened.
    pub version: Option<u64>,
    /// Rows committed since start.
    pub rows_committed: u64,
    /// Data files and their bytes in the table, as of the last commit or the opening.
    pub files: Option<TableFiles>,
    /// When the last commit landed.
    pub last_commit: Option<DateTime<Utc>>,
    /// How long the last commit's slowest event took from its producer to SQL, in ms.
    pub freshness_ms: Option<f64>,
    /// How the last compaction, vacuum and checkpoint went.
    pub maintenance: Maintenance,
}

/// How many data files a table version has, their size, and the oldest day they hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableFiles {
    /// Data files.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The earliest `event_date` partition; None for an empty table.
    pub oldest_date: Option<NaiveDate>,
}

impl TableFiles {
    /// The files of `table`'s loaded version; None before its first version.
    pub fn of(table: &DeltaTable) -> Option<Self> {
        let snapshot = table.snapshot().ok()?;
        let files = snapshot.log_data();
        Some(TableFiles {
            count: files.num_files() as u64,
            bytes: files.iter().map(|file| file.size().max(0) as u64).sum(),
            oldest_date: files
                .iter()
                .filter_map(|file| file.partition_values_map().remove(PARTITION_COLUMN)?)
                .filter_map(|day| day.parse::<NaiveDate>().ok())
                .min(),
        })
    }
}

impl LakeProgress {
    /// Nothing done yet on `table` as opened.
    pub fn opened(table: &DeltaTable) -> Self {
        LakeProgress {
            activity: LakeActivity::WaitingForEvents,
            version: table.version(),
            files: TableFiles::of(table),
            rows_committed: 0,
            last_commit: None,
            freshness_ms: None,
            maintenance: Maintenance::NotRunYet,
        }
    }
}

/// What the sink did last.
#[derive(Debug, Clone, PartialEq)]
pub enum LakeActivity {
    /// Nothing to commit since start.
    WaitingForEvents,
    /// The last commit landed with this many rows.
    Committed {
        /// Rows in that commit.
        rows: u64,
    },
    /// The sink has stopped: nothing is committed any more.
    Stopped(SinkStop),
    /// The last commit failed; its rows wait for the next try.
    CommitFailed {
        /// Rows waiting.
        waiting: usize,
        /// Why it failed.
        error: String,
    },
}

impl LakeActivity {
    /// Up unless commits are failing.
    pub fn state(&self) -> StageState {
        match self {
            LakeActivity::CommitFailed { .. } | LakeActivity::Stopped(_) => StageState::Down,
            _ => StageState::Connected,
        }
    }
}

impl std::fmt::Display for LakeActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LakeActivity::WaitingForEvents => write!(f, "waiting for events"),
            LakeActivity::Committed { rows } => write!(f, "committed {rows} rows"),
            LakeActivity::Stopped(stop) => write!(f, "{stop}"),
            LakeActivity::CommitFailed { waiting, error } => {
                write!(f, "commit failed, {waiting} rows waiting: {error}")
            }
        }
    }
}

/// Why the lake sink stopped before its input ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkStop {
    /// A commit's task failed; its rows went with it, so no later commit may carry the
    /// offsets past them.
    #[error("the lake stopped: a commit failed beyond retrying: {0}")]
    CommitLost(String),
    /// The sink itself panicked.
    #[error("the lake stopped: it panicked: {0}")]
    Panicked(String),
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

/// Where each of `partitions` resumes, as the latest version of the table at `url` records it.
pub async fn resume_points(
    url: &Url,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, LakeError> {
    let table = deltalake::open_table(url.clone()).await?;
    committed_offsets(&table, group, topic, partitions).await
}

/// Builds the rows of a commit. The empty batch of this function is the table's schema.
fn rows_to_batch(
    topic: &str,
    rows: &[Row],
    ingested_at_micros: i64,
) -> Result<RecordBatch, ArrowError> {
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
            Arc::new(Date32Array::from_iter_values(
                rows.iter()
                    .map(|Row { event: e, .. }| date32(e.timestamp.date_naive())),
            )),
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
        ("raw", strings(&|e| e.raw.as_deref()), true),
        ("user_agent", strings(&|e| e.user_agent.as_deref()), true),
        ("referrer", strings(&|e| e.referrer.as_deref()), true),
        ("vhost", strings(&|e| e.vhost.as_deref()), true),
        ("protocol", strings(&|e| e.protocol.as_deref()), true),
        ("query", strings(&|e| e.query.as_deref()), true),
        ("browser", strings(&|e| e.browser.as_deref()), true),
        ("os", strings(&|e| e.os.as_deref()), true),
        ("device", strings(&|e| e.device.as_deref()), true),
        (
            "bot",
            Arc::new(rows.iter().map(|r| r.event.bot).collect::<BooleanArray>()),
            true,
        ),
        ("attributes", strings(&|e| e.attributes.as_deref()), true),
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

/// A day as Arrow's Date32: days since 1970-01-01.
pub(crate) fn date32(day: NaiveDate) -> i32 {
    (day - NaiveDate::default()).num_days() as i32
}

/// Dead letters held at most, in bytes, before no more messages are taken until the broker
/// has acknowledged them.
const MAX_LETTER_BYTES: usize = 64 * 1024 * 1024;

/// Told the next offset of each partition once a commit has made them durable.
type OnCommit = Box<dyn Fn(&BTreeMap<i32, i64>) + Send + Sync>;

/// Buffers consumed events and commits them to the table.
pub struct LakeSink {
    table: DeltaTable,
    group: String,
    topic: String,
    rows: Vec<Row>,
    /// Dead letters of the messages received so far, not yet acknowledged by the broker.
    letters: Vec<DeadLetter>,
    letter_bytes: usize,
    dead_letters: DeadLetters,
    /// Which partitions this instance writes: rows of the others are dropped, not committed.
    ownership: Arc<Ownership>,
    /// Next offset per partition as of everything received so far, with the assignment it
    /// was read under.
    next_offsets: BTreeMap<i32, (u64, i64)>,
    progress: Arc<RwLock<LakeProgress>>,
    on_commit: OnCommit,
    /// The last commit panicked: the next writes a message at a time, to find the one to set
    /// aside.
    isolate: bool,
}

/// One commit's rows and the offsets it makes durable, and how its write went.
struct Written {
    rows: Vec<Row>,
    /// Its dead letters the broker did not take: they wait with the rows.
    undelivered: Vec<DeadLetter>,
    next_offsets: BTreeMap<i32, i64>,
    /// The table after the commit; none when there were no rows to commit.
    outcome: Result<Option<DeltaTable>, LakeError>,
}

type Writing = tokio::task::JoinHandle<Written>;

impl LakeSink {
    pub fn new(
        table: DeltaTable,
        group: &str,
        topic: &str,
        dead_letters: DeadLetters,
        ownership: Arc<Ownership>,
        progress: Arc<RwLock<LakeProgress>>,
        on_commit: impl Fn(&BTreeMap<i32, i64>) + Send + Sync + 'static,
    ) -> Self {
        LakeSink {
            table,
            group: group.to_owned(),
            topic: topic.to_owned(),
            rows: Vec::new(),
            letters: Vec::new(),
            letter_bytes: 0,
            dead_letters,
            ownership,
            next_offsets: BTreeMap::new(),
            progress,
            on_commit: Box::new(on_commit),
            isolate: false,
        }
    }

    /// Commits at least every `interval` while events flow, and whenever `max_rows` are waiting.
    /// A commit is written on a task of its own while the next one fills, one at a time, in
    /// order; its dead letters are delivered first. A failed commit keeps its rows and letters
    /// and is retried at the next interval; while the buffer is full no more messages are
    /// taken, so ingest waits instead of losing anything.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Consumed>,
        interval: Duration,
        max_rows: usize,
    ) -> Result<(), SinkStop> {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut writing: Option<Writing> = None;
        let mut due = false;
        let mut failed = false;
        loop {
            tokio::select! {
                consumed = input.recv(), if !self.full(max_rows) => match consumed {
                    Some(consumed) => self.push(consumed),
                    None => break,
                },
                written = async { writing.as_mut().expect("a write in flight").await }, if writing.is_some() => {
                    writing = None;
                    failed = !self.finish(landed_or_stop(written)?);
                }
                _ = tick.tick() => {
                    // An interval that passes with nothing waiting asks for nothing: the
                    // next rows wait for the next interval, as they would have anyway.
                    due = self.waiting();
                    failed = false;
                }
            }
            // After a failure, the next try waits for the interval even with a full buffer.
            let full = self.full(max_rows);
            if writing.is_none() && self.waiting() && !failed && (due || full) {
                writing = Some(tokio::spawn(self.write()));
                due = false;
            }
        }
        // Input closed: the write in flight, then whatever is left.
        if let Some(writing) = writing {
            self.finish(landed_or_stop(writing.await)?);
        }
        if self.waiting() {
            self.commit().await;
        }
        Ok(())
    }

    /// Rows or dead letters wait for a commit.
    fn waiting(&self) -> bool {
        !self.rows.is_empty() || !self.letters.is_empty()
    }

    /// No more messages are taken until a commit makes room.
    fn full(&self, max_rows: usize) -> bool {
        self.rows.len() + self.letters.len() >= max_rows || self.letter_bytes >= MAX_LETTER_BYTES
    }

    fn keep_letters(&mut self, letters: Vec<DeadLetter>) {
        self.letter_bytes += letters.iter().map(DeadLetter::size).sum::<usize>();
        self.letters.extend(letters);
    }

    /// Writes the waiting rows in one commit, here and now; true when it landed.
    async fn commit(&mut self) -> bool {
        let written = self.write().await;
        self.finish(written)
    }

    fn push(&mut self, consumed: Consumed) {
        self.next_offsets
            .insert(consumed.partition, (consumed.epoch, consumed.offset + 1));
        self.keep_letters(consumed.letters);
        for (item, event) in consumed.events.into_iter().enumerate() {
            fault::panic_if_marked("sink", &event);
            self.rows.push(Row {
                partition: consumed.partition,
                epoch: consumed.epoch,
                offset: consumed.offset,
                item,
                event,
                produced_at: consumed.produced_at,
            });
        }
    }

    /// Takes the waiting rows and letters into a commit: the future delivers the letters, then
    /// writes the rows with the offsets they bring the table to. With no rows the offsets move
    /// with the next commit that has some. Rows and offsets of partitions revoked since they
    /// were read are dropped here: their next owner reads them again.
    fn write(&mut self) -> impl std::future::Future<Output = Written> + Send + 'static {
        let owned = self.ownership.epochs();
        let current = |partition: &i32, epoch: &u64| owned.get(partition) == Some(epoch);
        self.rows.retain(|row| current(&row.partition, &row.epoch));
        self.next_offsets
            .retain(|partition, (epoch, _)| current(partition, epoch));
        let rows = std::mem::take(&mut self.rows);
        let letters = std::mem::take(&mut self.letters);
        self.letter_bytes = 0;
        let next_offsets: BTreeMap<i32, i64> = self
            .next_offsets
            .iter()
            .map(|(&partition, &(_, next))| (partition, next))
            .collect();
        let table = self.table.clone();
        let (group, topic) = (self.group.clone(), self.topic.clone());
        let dead_letters = self.dead_letters.clone();
        let isolate = self.isolate;
        let writing = async move {
            if let Err(Undelivered { letters, error }) = dead_letters.deliver(letters).await {
                return Written {
                    rows,
                    undelivered: letters,
                    next_offsets,
                    outcome: Err(LakeError::DeadLetters(error)),
                };
            }
            if rows.is_empty() {
                return Written {
                    rows,
                    undelivered: Vec::new(),
                    next_offsets,
                    outcome: Ok(None),
                };
            }
            let outcome = if isolate {
                write_isolating(table, &group, &topic, &rows, &next_offsets, &dead_letters).await
            } else {
                let writing = write_new_rows(table, &group, &topic, &rows, &next_offsets);
                AssertUnwindSafe(writing)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| Err(LakeError::Panicked(panic_message(panic))))
            };
            Written {
                rows,
                undelivered: Vec::new(),
                next_offsets,
                outcome: outcome.map(Some),
            }
        };
        async move {
            let started = Instant::now();
            let written = writing.await;
            let outcome = if written.outcome.is_ok() {
                "ok"
            } else {
                "failed"
            };
            ::metrics::histogram!(prometheus::COMMIT_SECONDS, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            written
        }
    }

    /// Takes in how a commit went; true when it landed. A failed one's rows wait again, ahead
    /// of those that came meanwhile.
    fn finish(&mut self, written: Written) -> bool {
        match written.outcome {
            Ok(None) => true,
            Ok(Some(table)) => {
                self.table = table;
                self.isolate = false;
                let committed = written.rows.len() as u64;
                let visible_at = Utc::now();
                let freshness_ms = written
                    .rows
                    .iter()
                    .filter_map(|r| r.produced_at)
                    .map(|at| (visible_at - at).as_seconds_f64() * 1000.0)
                    .reduce(f64::max);
                (self.on_commit)(&written.next_offsets);
                let mut progress = self.progress.write().unwrap_or_else(|e| e.into_inner());
                progress.activity = LakeActivity::Committed { rows: committed };
                progress.version = self.table.version();
                progress.rows_committed += committed;
                progress.files = TableFiles::of(&self.table);
                progress.last_commit = Some(visible_at);
                progress.freshness_ms = freshness_ms;
                true
            }
            Err(error) => {
                let mut rows = written.rows;
                rows.append(&mut self.rows);
                self.rows = rows;
                let mut letters = written.undelivered;
                letters.append(&mut self.letters);
                self.letter_bytes = 0;
                self.keep_letters(letters);
                self.isolate = matches!(error, LakeError::Panicked(_));
                tracing::error!(%error, rows = self.rows.len(), "Delta commit failed; will retry");
                self.progress
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .activity = LakeActivity::CommitFailed {
                    waiting: self.rows.len(),
                    error: error.to_string(),
                };
                false
            }
        }
    }
}

/// The commit a write task returned, or why the sink stops when the task panicked: its rows
/// went with it, so a later commit would carry the offsets past them. The next start reads
/// them again from the table's offsets.
fn landed_or_stop(written: Result<Written, tokio::task::JoinError>) -> Result<Written, SinkStop> {
    written.map_err(|error| SinkStop::CommitLost(error.to_string()))
}

/// Brings `table` to its latest version and reads the next offset its txn actions record for
/// each partition of `next_offsets`: up to there, rows have landed, whoever wrote them.
async fn latest_offsets(
    table: &mut DeltaTable,
    group: &str,
    topic: &str,
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>, LakeError> {
    table.update_incremental(None).await?;
    let partitions: Vec<i32> = next_offsets.keys().copied().collect();
    Ok(committed_offsets(table, group, topic, &partitions)
        .await?
        .into_iter()
        .collect())
}

/// Commits that lose a race for one of their partitions, read again and retried at once.
const RACES_RETRIED: u32 = 8;

/// Appends those of `rows` the table does not hold yet, with the offsets they bring their
/// partitions to. How far each partition has landed is read from the table's latest version
/// and the commit is made against that version, so rows are never written twice: not after a
/// commit reported failed that landed all the same (delta-rs runs its checkpoint and log
/// cleanup after the commit, and reports their errors as the write's), not when this instance
/// read a partition again after a rebalance, not when another instance took a partition over.
/// Delta refuses the commit if another writer moved one of its partitions since that read
/// (their txn actions share an app id); it is then read again and retried.
async fn write_new_rows(
    mut table: DeltaTable,
    group: &str,
    topic: &str,
    rows: &[Row],
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<DeltaTable, LakeError> {
    let mut races = 0;
    loop {
        // Read every time, even when the table has not moved since this sink's snapshot: that
        // snapshot may be this sink's own commit of rows read under a revoked assignment, which
        // the partition's new assignment reads again.
        let landed_before = latest_offsets(&mut table, group, topic, next_offsets).await?;
        let landed = |row: &Row| {
            landed_before
                .get(&row.partition)
                .is_some_and(|&next| row.offset < next)
        };
        let already = rows.iter().filter(|row| landed(row)).count();
        let waiting: std::borrow::Cow<[Row]> = match already {
            0 => rows.into(),
            _ => {
                tracing::warn!(
                    rows = already,
                    version = table.version(),
                    "rows the table already holds are not written again"
                );
                rows.iter().filter(|row| !landed(row)).cloned().collect()
            }
        };
        // Offsets at or behind the table's are another writer's to move.
        let advancing: BTreeMap<i32, i64> = next_offsets
            .iter()
            .filter(|(partition, next)| landed_before.get(partition) < Some(next))
            .map(|(&partition, &next)| (partition, next))
            .collect();
        if waiting.is_empty() {
            return Ok(table);
        }
        match write_rows(table.clone(), group, topic, &waiting, &advancing).await {
            Err(LakeError::Delta(error)) if lost_a_race(&error) && races < RACES_RETRIED => {
                races += 1;
                tracing::debug!(%error, races, "a concurrent commit won; reading the table again");
            }
            written => return written,
        }
    }
}

/// Whether a commit failed because another writer committed first.
fn lost_a_race(error: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        error,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::VersionAlreadyExists(_)
                    | TransactionError::MaxCommitAttempts(_)
            }
    )
}

/// After a commit panicked: writes the rows a message at a time, each commit with the offsets
/// up to its message, and sets aside as a dead letter the message whose own commit panics, so
/// one value the writer cannot take does not stop the lake. Errors (a full disk, say) are not
/// the message's fault: they end the round and its rows wait, as after any failed commit.
async fn write_isolating(
    mut table: DeltaTable,
    group: &str,
    topic: &str,
    rows: &[Row],
    next_offsets: &BTreeMap<i32, i64>,
    dead_letters: &DeadLetters,
) -> Result<DeltaTable, LakeError> {
    let mut offsets = latest_offsets(&mut table, group, topic, next_offsets).await?;
    for message in rows.chunk_by(|a, b| (a.partition, a.offset) == (b.partition, b.offset)) {
        let (partition, offset) = (message[0].partition, message[0].offset);
        if offsets.get(&partition).is_some_and(|&next| offset < next) {
            continue;
        }
        offsets.insert(partition, offset + 1);
        let writing = write_rows(table.clone(), group, topic, message, &offsets);
        match AssertUnwindSafe(writing).catch_unwind().await {
            Ok(written) => table = written?,
            Err(panic) => {
                let failure = panic_message(panic);
                tracing::error!(partition, offset, %failure, "the lake failed on a message; set aside");
                let events: Vec<&LogEvent> = message.iter().map(|row| &*row.event).collect();
                let payload = serde_json::to_vec(&events).unwrap_or_default();
                let letter = DeadLetter::unprocessable(&payload, &failure, partition, offset);
                dead_letters
                    .deliver(vec![letter])
                    .await
                    .map_err(|undelivered| LakeError::DeadLetters(undelivered.error))?;
            }
        }
    }
    Ok(table)
}

/// Appends `rows` to the table in one commit that also records `next_offsets` as Delta
/// `txn` actions, so the rows and the offsets they bring land together or not at all.
async fn write_rows(
    table: DeltaTable,
    group: &str,
    topic: &str,
    rows: &[Row],
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<DeltaTable, LakeError> {
    for row in rows {
        fault::panic_if_marked("lake", &row.event);
    }
    let batch = rows_to_batch(topic, rows, Utc::now().timestamp_micros())?;
    let offsets = next_offsets
        .iter()
        .map(|(&partition, &next)| Transaction::new(app_id(group, topic, partition), next))
        .collect();
    let before = table.clone();
    let table = table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns([PARTITION_COLUMN])
        // Columns added in later versions of lakepulse join tables written by earlier ones.
        .with_schema_mode(SchemaMode::Merge)
        .with_commit_properties(CommitProperties::default().with_application_transactions(offsets))
        .await?;
    ::metrics::counter!(prometheus::BYTES_COMMITTED).increment(added_bytes(&before, &table));
    Ok(table)
}

/// Bytes of the data files `after` has that `before` had not: what a commit wrote.
fn added_bytes(before: &DeltaTable, after: &DeltaTable) -> u64 {
    let (Ok(before), Ok(after)) = (before.snapshot(), after.snapshot()) else {
        return 0;
    };
    let known: HashSet<String> = before
        .log_data()
        .iter()
        .map(|file| file.path().into_owned())
        .collect();
    after
        .log_data()
        .iter()
        .filter(|file| !known.contains(file.path().as_ref()))
        .map(|file| file.size().max(0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueryRequest;
    use crate::pipeline::decode::decode;
    use crate::pipeline::maintenance::maintain_once;
    use crate::pipeline::query::{QueryEngine, QueryError};
    use std::sync::Mutex;

    /// Ownership of `partitions`, all under epoch 1.
    fn owning(partitions: &[i32]) -> Arc<Ownership> {
        let ownership = Arc::new(Ownership::default());
        ownership.assign(partitions);
        ownership
    }

    /// For sinks given no dead letters: a producer whose broker is never asked.
    fn unused_dead_letters() -> DeadLetters {
        DeadLetters::new("127.0.0.1:9", "web-logs").unwrap()
    }

    fn event(i: i64) -> Arc<LogEvent> {
        let json = format!(
            r#"{{"timestamp":"2026-11-29T23:59:59.5Z","endpoint":"/e/{i}","status":{},"sessionId":"s{i}"}}"#,
            if i % 4 == 0 { 500 } else { 200 }
        );
        Arc::new(decode(json.as_bytes(), Utc::now()).unwrap())
    }

    /// An S3-compatible server that accepts `If-None-Match: *` and overwrites anyway, as garage
    /// 2.5 did.
    #[derive(Debug, Default)]
    struct OverwritingStore(object_store::memory::InMemory);

    use deltalake::logstore::object_store::{
        self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMode,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use futures::stream::BoxStream;

    impl std::fmt::Display for OverwritingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a store that overwrites")
        }
    }

    #[async_trait::async_trait]
    impl deltalake::ObjectStore for OverwritingStore {
        async fn put_opts(
            &self,
            location: &deltalake::Path,
            payload: PutPayload,
            mut opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            opts.mode = PutMode::Overwrite;
            self.0.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &deltalake::Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &deltalake::Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<deltalake::Path>>,
        ) -> BoxStream<'static, object_store::Result<deltalake::Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&deltalake::Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&deltalake::Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &deltalake::Path,
            to: &deltalake::Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_that_overwrites_instead_of_creating_if_absent_is_refused() {
        use deltalake::ObjectStore;
        use futures::StreamExt;
        let url = Url::parse("s3://lake/logs").unwrap();
        let honest = object_store::memory::InMemory::new();
        require_atomic_create(&honest, &url).await.unwrap();
        assert!(
            honest.list(None).next().await.is_none(),
            "the probe is removed"
        );
        match require_atomic_create(&OverwritingStore::default(), &url).await {
            Err(LakeError::NoAtomicCreate(table)) => assert_eq!(table, "s3://lake/logs"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn locations_are_directories_or_object_store_urls() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("t");
        let url = table_location(local.to_str().unwrap()).unwrap();
        assert_eq!(url.scheme(), "file");
        assert!(local.is_dir(), "a local table's directory is made");
        for remote in [
            "s3://b/t",
            "az://c/t",
            "abfss://c@a.dfs.core.windows.net/t",
            "gs://b/t",
        ] {
            assert_eq!(table_location(remote).unwrap().as_str(), remote);
        }
        let refused = table_location("ftp://host/t").unwrap_err().to_string();
        assert!(refused.contains("ftp:// is not a store"), "{refused}");
    }

    #[tokio::test]
    async fn commits_rows_with_their_offsets_and_sql_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        let table = open_for_group(&url, "g").await.unwrap();
        assert_eq!(table.version(), Some(0));
        let status = Arc::new(RwLock::new(LakeProgress::opened(&table)));
        let told = Arc::new(Mutex::new(Vec::new()));
        let told_by_sink = told.clone();
        let sink = LakeSink::new(
            table,
            "g",
            "web-logs",
            unused_dead_letters(),
            owning(&[0, 1]),
            status.clone(),
            move |offsets| told_by_sink.lock().unwrap().push(offsets.clone()),
        );
        let (tx, rx) = mpsc::channel(100);
        let running = tokio::spawn(sink.run(rx, Duration::from_secs(60), 1_000));
        for offset in 0..10 {
            let partition = (offset % 2) as i32;
            let events = vec![event(offset)];
            tx.send(Consumed {
                partition,
                epoch: 1,
                offset,
                events,
                letters: Vec::new(),
                produced_at: Some(Utc::now()),
            })
            .await
            .unwrap();
        }
        // An undecodable message: no row, but its offset is consumed.
        tx.send(Consumed {
            partition: 1,
            epoch: 1,
            offset: 10,
            events: Vec::new(),
            letters: Vec::new(),
            produced_at: None,
        })
        .await
        .unwrap();
        // A batch message: two rows, told apart by their item number.
        tx.send(Consumed {
            partition: 0,
            epoch: 1,
            offset: 11,
            events: vec![event(11), event(12)],
            letters: Vec::new(),
            produced_at: None,
        })
        .await
        .unwrap();
        drop(tx);
        running.await.unwrap().unwrap();

        let expected = HashMap::from([(0, 12), (1, 11)]);
        let reopened = open_for_group(&url, "g").await.unwrap();
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

        let engine = QueryEngine::new(url.clone());
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

    #[tokio::test]
    async fn a_table_from_before_the_request_columns_takes_them_and_keeps_its_old_versions() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        // The table as lakepulse wrote it before it kept request headers and producers' own
        // fields: version 0 without those columns, version 1 a row.
        let added = [
            "user_agent",
            "referrer",
            "vhost",
            "protocol",
            "query",
            "attributes",
        ];
        let old_row = Row {
            partition: 0,
            epoch: 1,
            offset: 0,
            item: 0,
            event: event(0),
            produced_at: None,
        };
        let batch = rows_to_batch("web-logs", &[old_row], 0).unwrap();
        let kept: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| !added.contains(&batch.schema().field(i).name().as_str()))
            .collect();
        let old_batch = batch.project(&kept).unwrap();
        let old_columns: StructType = old_batch.schema().as_ref().try_into_kernel().unwrap();
        let table = DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap()
            .create()
            .with_columns(old_columns.fields().cloned())
            .with_partition_columns([PARTITION_COLUMN])
            .with_configuration([(GROUP_PROPERTY, Some("g"))])
            .with_raise_if_key_not_exists(false)
            .await
            .unwrap();
        table
            .write(vec![old_batch])
            .with_partition_columns([PARTITION_COLUMN])
            .await
            .unwrap();

        let table = open_for_group(&url, "g").await.unwrap();
        let status = Arc::new(RwLock::new(LakeProgress::opened(&table)));
        let sink = LakeSink::new(
            table,
            "g",
            "web-logs",
            unused_dead_letters(),
            owning(&[0]),
            status,
            |_| {},
        );
        let (tx, rx) = mpsc::channel(10);
        let running = tokio::spawn(sink.run(rx, Duration::from_secs(60), 1_000));
        let line = br#"{"endpoint":"/new","status":200,"userAgent":"curl/8.5.0","region":"eu","build":{"sha":"c0ffee"}}"#;
        tx.send(Consumed {
            partition: 0,
            epoch: 1,
            offset: 1,
            events: vec![Arc::new(decode(line, Utc::now()).unwrap())],
            letters: Vec::new(),
            produced_at: None,
        })
        .await
        .unwrap();
        drop(tx);
        running.await.unwrap().unwrap();

        let engine = QueryEngine::new(url.clone());
        let answer = engine
            .run(&QueryRequest::sql(
                "SELECT count(*) AS n, count(user_agent) AS agents, \
                 max(json_get_str(attributes, 'region')) AS region, \
                 max(attributes->'build'->>'sha') AS sha FROM logs",
            ))
            .await
            .unwrap();
        assert_eq!(
            answer.rows,
            [serde_json::json!([2, 1, "eu", "c0ffee"])
                .as_array()
                .unwrap()
                .clone()]
        );
        // The version before the new columns reads as it was written.
        let then = QueryRequest {
            version: Some(1),
            ..QueryRequest::sql("SELECT * FROM logs")
        };
        let answer_then = engine.run(&then).await.unwrap();
        assert_eq!(answer_then.rows.len(), 1);
        assert!(!answer_then.columns.contains(&"user_agent".to_owned()));
    }

    #[tokio::test]
    async fn compaction_keeps_every_row_and_offset_while_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        let mut table = open_for_group(&url, "g").await.unwrap();
        let status = Arc::new(RwLock::new(LakeProgress::opened(&table)));
        // Three commits, three small files.
        for offset in 0..3 {
            let mut sink = LakeSink::new(
                table,
                "g",
                "web-logs",
                unused_dead_letters(),
                owning(&[0, 1]),
                status.clone(),
                |_| {},
            );
            sink.push(Consumed {
                partition: 0,
                epoch: 1,
                offset,
                events: vec![event(offset)],
                letters: Vec::new(),
                produced_at: None,
            });
            assert!(sink.commit().await);
            table = sink.table;
        }
        let (summary, _) = maintain_once(&url, None).await.unwrap();
        assert_eq!(
            (
                summary.compaction.files_removed,
                summary.compaction.files_added
            ),
            (3, 1),
            "{summary}"
        );
        // Time travel to a version in the middle reads the rows the commits up to it added,
        // from the files that version referenced, compacted away since.
        let engine = QueryEngine::new(url.clone());
        let added: u64 = engine
            .history(10)
            .await
            .unwrap()
            .iter()
            .filter(|v| v.version <= 2)
            .filter_map(|v| v.rows_added)
            .sum();
        assert_eq!(added, 2);
        let then = engine
            .run(&QueryRequest::sql(
                "SELECT count(*), min(kafka_offset), max(kafka_offset) FROM logs VERSION AS OF 2",
            ))
            .await
            .unwrap();
        let expected = serde_json::json!([added, 0, 1]);
        assert_eq!(then.rows, [expected.as_array().unwrap().clone()]);
        // The sink's snapshot predates the compaction; its append still lands.
        let mut sink = LakeSink::new(
            table,
            "g",
            "web-logs",
            unused_dead_letters(),
            owning(&[0, 1]),
            status,
            |_| {},
        );
        sink.push(Consumed {
            partition: 0,
            epoch: 1,
            offset: 3,
            events: vec![event(3)],
            letters: Vec::new(),
            produced_at: None,
        });
        assert!(sink.commit().await);
        let reopened = open_for_group(&url, "g").await.unwrap();
        let resume = committed_offsets(&reopened, "g", "web-logs", &[0])
            .await
            .unwrap();
        assert_eq!(resume, HashMap::from([(0, 4)]));
        let answer = QueryEngine::new(url)
            .run(&QueryRequest::sql(
                "SELECT count(*), count(DISTINCT event_id) FROM logs",
            ))
            .await
            .unwrap();
        // count(*) too: a compaction that doubled rows keeps the distinct ids.
        let four = serde_json::Value::from(4);
        assert_eq!(answer.rows, [[four.clone(), four]]);
    }

    /// A sink holding rows of messages `offsets` of partition 0, read under epoch 1 of
    /// `ownership`.
    fn sink_holding(
        table: DeltaTable,
        ownership: Arc<Ownership>,
        offsets: std::ops::Range<i64>,
    ) -> LakeSink {
        let progress = Arc::new(RwLock::new(LakeProgress::opened(&table)));
        let mut sink = LakeSink::new(
            table,
            "g",
            "web-logs",
            unused_dead_letters(),
            ownership,
            progress,
            |_| {},
        );
        for offset in offsets {
            sink.push(Consumed {
                partition: 0,
                epoch: 1,
                offset,
                events: vec![event(offset)],
                letters: Vec::new(),
                produced_at: None,
            });
        }
        sink
    }

    async fn rows_and_ids(url: &Url) -> serde_json::Value {
        let answer = QueryEngine::new(url.clone())
            .run(&QueryRequest::sql(
                "SELECT count(*), count(DISTINCT event_id) FROM logs",
            ))
            .await
            .unwrap();
        serde_json::json!(answer.rows)
    }

    #[tokio::test]
    async fn a_partition_that_changed_hands_is_written_once_whichever_owner_commits_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        let table = open_for_group(&url, "g").await.unwrap();
        // The old owner read offsets 0..5 and lost the partition before committing; the new
        // one read 0..8 from the table's offsets and committed first. The old owner, a
        // zombie that has not heard of the rebalance yet, then commits.
        let mut new_owner = sink_holding(table.clone(), owning(&[0]), 0..8);
        let mut zombie = sink_holding(table.clone(), owning(&[0]), 0..5);
        assert!(new_owner.commit().await);
        assert!(zombie.commit().await);
        assert_eq!(rows_and_ids(&url).await, serde_json::json!([[8, 8]]));
        // The other order: the old owner's commit lands first, from a snapshot the new owner's
        // predates; the new owner writes only what lies past it.
        let table = open_for_group(&url, "g").await.unwrap();
        let mut old_owner = sink_holding(table.clone(), owning(&[0]), 8..12);
        let mut new_owner = sink_holding(table, owning(&[0]), 8..15);
        assert!(old_owner.commit().await);
        assert!(new_owner.commit().await);
        assert_eq!(rows_and_ids(&url).await, serde_json::json!([[15, 15]]));
        let reopened = open_for_group(&url, "g").await.unwrap();
        let resume = committed_offsets(&reopened, "g", "web-logs", &[0]).await;
        assert_eq!(resume.unwrap(), HashMap::from([(0, 15)]));
    }

    #[tokio::test]
    async fn rows_of_a_revoked_partition_are_left_to_its_next_owner() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        let table = open_for_group(&url, "g").await.unwrap();
        let ownership = owning(&[0]);
        let mut sink = sink_holding(table, ownership.clone(), 0..5);
        ownership.revoke(&[0]);
        // Assigned again: a new epoch, so the rows read under the old one stay dropped.
        ownership.assign(&[0]);
        assert!(sink.commit().await);
        assert_eq!(rows_and_ids(&url).await, serde_json::json!([[0, 0]]));
        let reopened = open_for_group(&url, "g").await.unwrap();
        let resume = committed_offsets(&reopened, "g", "web-logs", &[0]).await;
        assert!(resume.unwrap().is_empty(), "no offset moved past the rows");
    }

    #[tokio::test]
    async fn a_table_another_group_writes_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("web-logs")).unwrap();
        open_for_group(&url, "g").await.unwrap();
        let refused = open_for_group(&url, "h").await.unwrap_err();
        assert!(
            matches!(&refused, LakeError::OtherGroup { owner, group, .. } if owner == "g" && group == "h"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("KAFKA_GROUP_ID=g"),
            "{refused}"
        );
        open_for_group(&url, "g").await.unwrap();
    }
}
