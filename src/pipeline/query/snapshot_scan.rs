//! The table as a SQL cluster reads it: one committed version's Parquet files, exactly that
//! snapshot's (a listing of the table's directory would also see the files a compaction
//! replaced and the vacuum has not yet deleted: rows twice), planned as DataFusion's own
//! Parquet scan with each file's partition values.
//!
//! delta-rs' scan cannot travel: its plan nodes have no codec that Ballista can use (1.1.3's
//! physical codec knows only a retired scan, its logical one gives up on extension nodes). So
//! the plan sent to the scheduler names the table and the version (the query's time travel, or
//! the latest the server had when the query came), the scheduler reads that version's log, and
//! what reaches the executors is a plain Parquet scan that Ballista's codecs carry as it is.

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::{DataFusionError, Result, ScalarValue, TableReference};
use deltalake::datafusion::datasource::file_format::FileFormatFactory;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::object_store::ObjectStoreUrl;
use deltalake::datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use deltalake::datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetSource,
};
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::ObjectMeta;
use deltalake::{DeltaTable, DeltaTableError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use url::Url;

/// One version of the Delta table at `table`, scanned as its Parquet files.
#[derive(Debug)]
pub struct SnapshotScan {
    table: Url,
    version: u64,
    /// The table's columns in the table's order, typed as delta-rs' own scan gives them
    /// (strings as views), so a column is the same type wherever the query runs.
    schema: SchemaRef,
    /// The columns whose values are in the log rather than in the files.
    partition_columns: Vec<String>,
}

impl SnapshotScan {
    /// The scan of `table`'s loaded version.
    pub fn of(table: &DeltaTable) -> Result<Self, DeltaTableError> {
        let snapshot = table.snapshot()?;
        let version = table.version().ok_or(DeltaTableError::NotInitialized)?;
        Ok(SnapshotScan {
            table: table.table_url().clone(),
            version,
            schema: Arc::new(transform_schema_to_view(
                &snapshot.snapshot().arrow_schema(),
            )),
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
        })
    }

    /// The version of the table this scan reads.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn is_partition(&self, field: &FieldRef) -> bool {
        self.partition_columns.contains(field.name())
    }

    /// The columns the files hold, in the table's order.
    fn file_schema(&self) -> SchemaRef {
        let fields = self.schema.fields().iter();
        Arc::new(Schema::new(
            fields
                .filter(|f| !self.is_partition(f))
                .cloned()
                .collect::<Vec<_>>(),
        ))
    }

    /// The partition columns, in the table's order.
    fn partition_fields(&self) -> Vec<FieldRef> {
        let fields = self.schema.fields().iter();
        fields.filter(|f| self.is_partition(f)).cloned().collect()
    }

    /// Where each of the table's columns is in the scan's output, which has the files'
    /// columns first and the partition columns after them.
    fn scan_positions(&self) -> Vec<usize> {
        let (mut in_files, mut in_log) = (0, self.file_schema().fields().len());
        self.schema
            .fields()
            .iter()
            .map(|field| {
                let next = if self.is_partition(field) {
                    &mut in_log
                } else {
                    &mut in_files
                };
                *next += 1;
                *next - 1
            })
            .collect()
    }

    /// The snapshot's files, as the scan reads them: paths from the store's root, with the
    /// partition values the log records for each.
    async fn files(&self) -> Result<Vec<PartitionedFile>> {
        let table = deltalake::open_table_with_version(self.table.clone(), self.version)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let snapshot = table
            .snapshot()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let root = Path::from_url_path(self.table.path())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let partitions = self.partition_fields();
        snapshot
            .log_data()
            .iter()
            .map(|file| {
                let mut values = file.partition_values_map();
                let partition_values = partitions
                    .iter()
                    .map(|field| match values.remove(field.name()).flatten() {
                        Some(text) => ScalarValue::try_from_string(text, field.data_type()),
                        None => ScalarValue::try_from(field.data_type()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let meta = ObjectMeta {
                    location: root
                        .parts()
                        .chain(file.object_store_path().parts())
                        .collect(),
                    last_modified: file.modification_datetime().unwrap_or_default(),
                    size: file.size().max(0) as u64,
                    e_tag: None,
                    version: None,
                };
                Ok(PartitionedFile::new_from_meta(meta).with_partition_values(partition_values))
            })
            .collect()
    }
}

/// The files spread over `groups` groups of about equal bytes: each group is one task, on
/// whichever executor takes it.
fn spread(mut files: Vec<PartitionedFile>, groups: usize) -> Vec<FileGroup> {
    files.sort_by_key(|file| std::cmp::Reverse(file.object_meta.size));
    let mut spread: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups.max(1)];
    for file in files {
        let lightest = spread
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.object_meta.size;
        lightest.1.push(file);
    }
    spread
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

#[async_trait::async_trait]
impl TableProvider for SnapshotScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are left to the plan above the scan, which DataFusion's optimizer pushes into
    /// the Parquet reader as delta-rs' own scan does: files and row groups are skipped by their
    /// statistics, a filter's columns are decoded first and the rest only for the rows that
    /// pass, and a TopK's bound (`ORDER BY ... LIMIT`) skips row groups as it tightens.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let store = ObjectStoreUrl::parse(&self.table[..url::Position::BeforePath])?;
        let groups = spread(
            self.files().await?,
            state.config_options().execution.target_partitions,
        );
        let source = ParquetSource::new(
            TableSchema::builder(self.file_schema())
                .with_table_partition_cols(self.partition_fields())
                .build(),
        )
        .with_table_parquet_options(state.table_options().parquet.clone())
        .with_pushdown_filters(true)
        .with_reorder_filters(true);
        let positions = self.scan_positions();
        let projection = match projection {
            Some(columns) => columns.iter().map(|&c| positions[c]).collect(),
            None => positions,
        };
        let config = FileScanConfigBuilder::new(store, Arc::new(source))
            .with_file_groups(groups)
            .with_limit(limit)
            .with_projection_indices(Some(projection))?
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// What a plan sent to the cluster says of the table: where it is and which version.
#[derive(Serialize, Deserialize)]
struct NamedSnapshot {
    table: Url,
    version: u64,
    /// The partition columns (the plan carries the schema itself).
    partition_columns: Vec<String>,
}

/// Marks a [`NamedSnapshot`] among the table encodings Ballista's own codec writes.
const SNAPSHOT_TAG: &[u8] = b"lakepulse-snapshot:";

/// Ballista's logical codec, and [`SnapshotScan`] sent by name and version: the client, the
/// scheduler and the executors all use it.
#[derive(Debug, Default)]
pub struct LakeCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LakeCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(named) = buf.strip_prefix(SNAPSHOT_TAG) else {
            return self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let named: NamedSnapshot = serde_json::from_slice(named)
            .map_err(|e| DataFusionError::Internal(format!("a table snapshot's name: {e}")))?;
        if let Some(missing) = named
            .partition_columns
            .iter()
            .find(|c| schema.field_with_name(c).is_err())
        {
            return Err(DataFusionError::Internal(format!(
                "a table snapshot partitioned by {missing}, a column it does not have"
            )));
        }
        Ok(Arc::new(SnapshotScan {
            table: named.table,
            version: named.version,
            schema,
            partition_columns: named.partition_columns,
        }))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(scan) = (node.as_ref() as &dyn std::any::Any).downcast_ref::<SnapshotScan>()
        else {
            return self
                .ballista
                .try_encode_table_provider(table_ref, node, buf);
        };
        buf.extend_from_slice(SNAPSHOT_TAG);
        serde_json::to_writer(
            buf,
            &NamedSnapshot {
                table: scan.table.clone(),
                version: scan.version,
                partition_columns: scan.partition_columns.clone(),
            },
        )
        .map_err(|e| DataFusionError::Internal(format!("naming a table snapshot: {e}")))
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}
