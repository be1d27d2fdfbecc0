//! Lake maintenance, off the ingest path: every few seconds the small files the commits leave
//! are compacted, so a table being written stays fast to scan at any age (each file a query
//! opens costs it about a millisecond: 120 one-second files answered in 47-112 ms, the same rows
//! in one file in 12-30 ms); every ten minutes the days past the retention go, unreferenced
//! files are vacuumed and a checkpoint keeps log replay short.
//!
//! Files are compacted by size tier, as log-structured stores do: a few files of a tier become
//! one of the next, so each row is rewritten a handful of times on its way to a large file, and
//! a compaction never rewrites the day's large files to add a second of rows.
//!
//! One instance of a consumer group maintains the table: the one that writes partition 0. A
//! rebalance can still leave two instances each believing it does, for as long as one
//! compaction takes. Every rewrite therefore commits under one Delta `txn` fence: of two
//! rewrites read from overlapping versions, Delta refuses the second. Without the fence both
//! commit (delta-rs lets two removes of one file with `dataChange=false` through, and its own
//! optimize drops a commit's `txn` actions), and the table holds the compacted rows twice: that
//! is why compaction is written here and not left to `DeltaTable::optimize`.

use crate::pipeline::consumer_group::Ownership;
use crate::pipeline::lake::{date32, LakeError, LakeProgress, TableFiles, PARTITION_COLUMN};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::checkpoints;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::{col, lit, SessionContext};
use deltalake::kernel::schema::cast::cast_record_batch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use url::Url;

/// The partition whose writer maintains the table.
const MAINTAINER_PARTITION: i32 = 0;

/// The Delta application id every rewrite of files commits under, so that two cannot both land.
const FENCE: &str = "lakepulse:maintenance";

/// The upper bounds of the size tiers, in bytes: files of one tier are compacted together;
/// files past the last are left as they are. At 1 000 events a second a one-second commit
/// writes about 50 KB.
const TIERS: [i64; 3] = [1 << 20, 8 << 20, 64 << 20];

/// The size compaction writes files up to.
const TARGET_FILE_BYTES: u64 = 128 << 20;

/// Files a tier of a day must have before the compaction every few seconds rewrites them.
const FILES_TO_COMPACT: usize = 4;

/// How the last run of maintenance went.
#[derive(Debug, Clone, PartialEq)]
pub enum Maintenance {
    /// It has not run since start.
    NotRunYet,
    /// Another instance of the group maintains the table: the one that writes partition 0.
    ByAnotherInstance,
    /// It ran at `at` and did this.
    Done {
        /// When it finished.
        at: DateTime<Utc>,
        /// What it did.
        summary: MaintenanceSummary,
    },
    /// It failed at `at`.
    Failed {
        /// When it failed.
        at: DateTime<Utc>,
        /// Why.
        error: String,
    },
}

impl Maintenance {
    /// When it last ran, if it has.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Maintenance::NotRunYet | Maintenance::ByAnotherInstance => None,
            Maintenance::Done { at, .. } | Maintenance::Failed { at, .. } => Some(*at),
        }
    }
}

impl std::fmt::Display for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Maintenance::NotRunYet => write!(f, "not run yet"),
            Maintenance::ByAnotherInstance => {
                write!(f, "left to the instance that writes partition 0")
            }
            Maintenance::Done { summary, .. } => write!(f, "{summary}"),
            Maintenance::Failed { error, .. } => write!(f, "failed: {error}"),
        }
    }
}

/// What one run of maintenance did: a compaction, and for the full run the retention, the
/// vacuum and the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceSummary {
    /// What retention removed, when one is set.
    pub expired: Option<Expired>,
    /// What the compaction rewrote.
    pub compaction: Compaction,
    /// The vacuum and checkpoint of a full run; None for a compaction alone.
    pub cleanup: Option<Cleanup>,
}

/// Small files rewritten as larger ones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Compaction {
    /// Small files compacted away.
    pub files_removed: u64,
    /// Files they became.
    pub files_added: u64,
    /// Another maintainer's rewrite of the same versions landed first; this one was dropped.
    pub lost_to_another: bool,
}

/// The vacuum and the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanup {
    /// Unreferenced files deleted.
    pub files_vacuumed: usize,
    /// The version the checkpoint was written at.
    pub checkpoint_version: u64,
}

/// The days a retention removed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expired {
    /// Rows of earlier days were deleted.
    pub keep_from: NaiveDate,
    /// Files they were in.
    pub files: usize,
}

impl std::fmt::Display for MaintenanceSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(Expired { keep_from, files }) = self.expired {
            write!(f, "removed {files} files of days before {keep_from}, ")?;
        }
        let Compaction {
            files_removed,
            files_added,
            lost_to_another,
        } = self.compaction;
        if lost_to_another {
            write!(f, "compaction left to another instance's")?;
        } else {
            write!(f, "compacted {files_removed} files into {files_added}")?;
        }
        if let Some(Cleanup {
            files_vacuumed,
            checkpoint_version,
        }) = self.cleanup
        {
            write!(
                f,
                ", vacuumed {files_vacuumed}, checkpoint at v{checkpoint_version}"
            )?;
        }
        Ok(())
    }
}

/// Compacts every `compact_every`, and every `full_every` also applies `retention` (when
/// set), vacuums files no longer referenced (past the table's retention, 7 days by default)
/// and writes a checkpoint. Appends made meanwhile are blind appends, which Delta lets
/// through alongside a compaction. Only the instance that writes partition 0 does this.
pub async fn maintain(
    url: Url,
    progress: Arc<RwLock<LakeProgress>>,
    compact_every: Duration,
    full_every: Duration,
    retention: Option<Duration>,
    ownership: Arc<Ownership>,
) {
    let mut compact_tick = tokio::time::interval(compact_every);
    compact_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut full_tick = tokio::time::interval(full_every);
    // Compactions come every few seconds: the table is kept and brought up to date, not
    // reopened from its last checkpoint each time.
    let mut kept: Option<DeltaTable> = None;
    compact_tick.tick().await;
    full_tick.tick().await;
    loop {
        let full = tokio::select! {
            _ = compact_tick.tick() => false,
            _ = full_tick.tick() => true,
        };
        if ownership.epoch(MAINTAINER_PARTITION).is_none() {
            progress
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .maintenance = Maintenance::ByAnotherInstance;
            continue;
        }
        let outcome = match full {
            true => maintain_once(&url, retention).await,
            false => compact_once(&url, &mut kept).await,
        };
        // A compaction with nothing to do leaves the last report standing: every five seconds
        // it would hide what the full maintenance did.
        if matches!(&outcome, Ok((summary, _)) if !full && summary.compaction == Compaction::default())
        {
            continue;
        }
        let at = Utc::now();
        // The files and the summary change together, under one lock.
        let mut report = progress.write().unwrap_or_else(|e| e.into_inner());
        report.maintenance = match outcome {
            Ok((summary, files)) => {
                report.files = files;
                Maintenance::Done { at, summary }
            }
            Err(error) => {
                tracing::error!(%error, full, "lake maintenance failed");
                Maintenance::Failed {
                    at,
                    error: error.to_string(),
                }
            }
        };
    }
}

/// Compacts the table at `url` (`kept` from the last time, or opened) where small files have
/// gathered; returns what it did and the table's files after.
async fn compact_once(
    url: &Url,
    kept: &mut Option<DeltaTable>,
) -> Result<(MaintenanceSummary, Option<TableFiles>), LakeError> {
    let table = match kept {
        Some(table) => {
            table.update_incremental(None).await?;
            table
        }
        None => kept.insert(deltalake::open_table(url.clone()).await?),
    };
    let compaction = compact(table, FILES_TO_COMPACT).await?;
    let summary = MaintenanceSummary {
        expired: None,
        compaction,
        cleanup: None,
    };
    if compaction.files_removed > 0 || compaction.lost_to_another {
        tracing::info!(%summary, "lake compaction");
    }
    Ok((summary, TableFiles::of(table)))
}

/// Deletes the days past `retention`, compacts every tier of a day with two files or more,
/// vacuums and checkpoints the table at `url` once; returns what it did and the table's files
/// after.
pub async fn maintain_once(
    url: &Url,
    retention: Option<Duration>,
) -> Result<(MaintenanceSummary, Option<TableFiles>), LakeError> {
    let mut table = deltalake::open_table(url.clone()).await?;
    let mut expired = None;
    if let Some(keep_from) = retention.and_then(first_day_kept) {
        let fence = fenced(table.version());
        let (pruned, deleted) = table
            .delete()
            .with_predicate(
                col(PARTITION_COLUMN).lt(lit(ScalarValue::Date32(Some(date32(keep_from))))),
            )
            .with_commit_properties(fence)
            .await?;
        table = pruned;
        expired = Some(Expired {
            keep_from,
            files: deleted.num_removed_files,
        });
    }
    let compaction = compact(&mut table, 2).await?;
    let (table, vacuum) = table.vacuum().await?;
    checkpoints::create_checkpoint(&table, None).await?;
    let summary = MaintenanceSummary {
        expired,
        compaction,
        cleanup: Some(Cleanup {
            files_vacuumed: vacuum.files_deleted.len(),
            checkpoint_version: table.version().unwrap_or(0),
        }),
    };
    tracing::info!(%summary, "lake maintenance");
    Ok((summary, TableFiles::of(&table)))
}

/// A commit under the maintenance fence, read at `version`.
fn fenced(version: Option<u64>) -> CommitProperties {
    let next = version.map_or(0, |version| version as i64 + 1);
    CommitProperties::default().with_application_transaction(Transaction::new(FENCE, next))
}

/// Rewrites the files of each tier of each day that has at least `at_least` of them as files
/// of up to [`TARGET_FILE_BYTES`], in one commit under the fence, made against `table`'s
/// loaded version; `table` is brought to the version after. Rows are read through the same
/// scan SQL uses, so files written before a column was added get it as null.
async fn compact(table: &mut DeltaTable, at_least: usize) -> Result<Compaction, LakeError> {
    let snapshot = table.snapshot()?;
    let mut by_day_and_tier: BTreeMap<(Option<String>, usize), Vec<String>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        if let Some(tier) = TIERS.iter().position(|&bound| file.size() < bound) {
            let day = file
                .partition_values_map()
                .remove(PARTITION_COLUMN)
                .flatten();
            by_day_and_tier
                .entry((day, tier))
                .or_default()
                .push(file.path().to_string());
        }
    }
    let rewritten: HashSet<String> = by_day_and_tier
        .into_values()
        .filter(|paths| paths.len() >= at_least.max(2))
        .flatten()
        .collect();
    if rewritten.is_empty() {
        return Ok(Compaction::default());
    }
    let scan = table
        .table_provider()
        .with_file_paths(rewritten.iter().cloned())
        .await?;
    let mut rows = SessionContext::new()
        .read_table(scan)?
        .execute_stream()
        .await?;
    let mut writer = RecordBatchWriter::for_table(table)?.with_target_file_size(TARGET_FILE_BYTES);
    // The scan reads strings as views and days as dictionaries; files hold the table's types.
    let schema = writer.arrow_schema();
    while let Some(batch) = rows.try_next().await? {
        writer
            .write(cast_record_batch(&batch, schema.clone(), false, true)?)
            .await?;
    }
    let added = writer.flush().await?;
    let compaction = Compaction {
        files_removed: rewritten.len() as u64,
        files_added: added.len() as u64,
        lost_to_another: false,
    };
    let mut actions: Vec<Action> = snapshot
        .log_data()
        .iter()
        .filter(|file| rewritten.contains(file.path().as_ref()))
        .map(|file| Action::Remove(file.remove_action(false)))
        .collect();
    actions.extend(added.into_iter().map(|mut add| {
        add.data_change = false;
        Action::Add(add)
    }));
    let metrics = serde_json::json!({
        "num_removed_files": compaction.files_removed,
        "num_added_files": compaction.files_added,
    });
    let committed = CommitBuilder::from(fenced(table.version()))
        .with_actions(actions)
        .with_app_metadata([("operationMetrics".to_owned(), metrics)].into())
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Optimize {
                predicate: None,
                target_size: TARGET_FILE_BYTES as i64,
            },
        )
        .await;
    match committed {
        Ok(_) => {
            table.update_incremental(None).await?;
            Ok(compaction)
        }
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(conflict),
        }) => {
            tracing::info!(%conflict, "another maintainer's rewrite landed first; this one is dropped");
            table.update_incremental(None).await?;
            Ok(Compaction {
                lost_to_another: true,
                ..Compaction::default()
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// The earliest day a retention keeps: every event within it is kept, and a day's rows go
/// together once the whole day is past it (one `event_date` partition, dropped without
/// rewriting a file). None when it reaches before the calendar.
fn first_day_kept(retention: Duration) -> Option<NaiveDate> {
    let retention = chrono::TimeDelta::from_std(retention).ok()?;
    Some(Utc::now().checked_sub_signed(retention)?.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueryRequest;
    use crate::pipeline::lake::table_url;
    use crate::pipeline::query::QueryEngine;
    use deltalake::arrow::array::{ArrayRef, Date32Array, Int64Array};
    use deltalake::arrow::record_batch::RecordBatch;
    use deltalake::protocol::SaveMode;
    use deltalake::DeltaTableBuilder;

    /// Appends rows `ids` of one day in one file.
    async fn append(table: DeltaTable, ids: std::ops::Range<i64>) -> DeltaTable {
        let day = date32(NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let days = Date32Array::from_iter_values(ids.clone().map(|_| day));
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
            ),
            (PARTITION_COLUMN, Arc::new(days) as ArrayRef),
        ])
        .unwrap();
        table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_partition_columns([PARTITION_COLUMN])
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn of_two_compactions_read_at_one_version_only_the_first_lands() {
        let dir = tempfile::tempdir().unwrap();
        let url = table_url(&dir.path().join("t")).unwrap();
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap();
        for start in (0..50).step_by(10) {
            table = append(table, start..start + 10).await;
        }
        // Two maintainers, as a rebalance can leave for a moment, read the same version.
        let mut first = deltalake::open_table(url.clone()).await.unwrap();
        let mut second = first.clone();
        assert_eq!(
            compact(&mut first.clone(), 6).await.unwrap(),
            Compaction::default(),
            "five small files are fewer than asked for"
        );
        // An append lands between their read and their commits: a blind append, let through.
        append(table, 50..60).await;
        let compacted = compact(&mut first, 2).await.unwrap();
        let expected = Compaction {
            files_removed: 5,
            files_added: 1,
            lost_to_another: false,
        };
        assert_eq!(compacted, expected);
        let dropped = compact(&mut second, 2).await.unwrap();
        assert!(dropped.lost_to_another, "{dropped:?}");
        let answer = QueryEngine::new(url.clone())
            .run(&QueryRequest::sql(
                "SELECT count(*), count(DISTINCT id) FROM logs",
            ))
            .await
            .unwrap();
        let sixty = serde_json::Value::from(60);
        assert_eq!(answer.rows, [[sixty.clone(), sixty]]);
        let files = TableFiles::of(&deltalake::open_table(url).await.unwrap()).unwrap();
        assert_eq!(files.count, 2, "the compacted file and the append's");
    }
}
