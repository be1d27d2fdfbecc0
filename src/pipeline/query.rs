//! SQL over the lake: DataFusion on the latest committed version of the Delta table, read-only.

use crate::model::QueryResult;
use deltalake::arrow::json::writer::{JsonArray, WriterBuilder};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTableError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// The names the table answers to.
pub const TABLE: &str = "logs";
const SCHEMA_ALIAS: &str = "delta_lake";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("empty query")]
    Empty,
    #[error("{0}")]
    Sql(String),
    #[error("query stopped after {0:?}")]
    Timeout(Duration),
    #[error("could not read the table: {0}")]
    Table(#[from] DeltaTableError),
}

impl QueryError {
    /// Whether the fault is in the query (the client's) rather than in the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, QueryError::Table(_))
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        QueryError::Sql(e.to_string())
    }
}

#[derive(Clone)]
pub struct QueryEngine {
    table_url: Url,
    timeout: Duration,
    max_rows: usize,
}

impl QueryEngine {
    pub fn new(table_url: Url) -> Self {
        QueryEngine {
            table_url,
            timeout: Duration::from_secs(30),
            max_rows: 10_000,
        }
    }

    pub async fn run(&self, sql: &str) -> Result<QueryResult, QueryError> {
        if sql.trim().is_empty() {
            return Err(QueryError::Empty);
        }
        let started = Instant::now();
        let ctx = self.session().await?;
        // Reads only: DataFusion refuses DDL (CREATE EXTERNAL TABLE, ...), DML (INSERT, COPY)
        // and statements (SET, ...) before planning anything.
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let work = async {
            let frame = ctx.sql_with_options(sql, read_only).await?;
            let columns: Vec<String> = frame
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let batches = frame.limit(0, Some(self.max_rows + 1))?.collect().await?;
            Ok::<_, DataFusionError>((columns, batches))
        };
        let (columns, batches) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout(self.timeout))??;
        let mut result = to_result(columns, &batches)?;
        result.truncated = result.rows.len() > self.max_rows;
        result.rows.truncate(self.max_rows);
        result.row_count = result.rows.len();
        result.execution_time = started.elapsed().as_secs_f64() * 1000.0;
        Ok(result)
    }

    /// A fresh session over the table's latest version, so every query sees the last commit.
    async fn session(&self) -> Result<SessionContext, QueryError> {
        let table = deltalake::open_table(self.table_url.clone()).await?;
        let provider = table.table_provider().await?;
        let ctx = SessionContext::new();
        ctx.register_table(TABLE, provider.clone())?;
        ctx.catalog("datafusion")
            .ok_or_else(|| QueryError::Sql("default catalog missing".into()))?
            .register_schema(SCHEMA_ALIAS, Arc::new(MemorySchemaProvider::new()))?;
        ctx.register_table(format!("{SCHEMA_ALIAS}.{TABLE}").as_str(), provider)?;
        Ok(ctx)
    }
}

fn to_result(columns: Vec<String>, batches: &[RecordBatch]) -> Result<QueryResult, QueryError> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| QueryError::Sql(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let json = writer.into_inner();
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
        execution_time: 0.0,
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::lake;

    async fn empty_table() -> (tempfile::TempDir, QueryEngine) {
        let dir = tempfile::tempdir().unwrap();
        let url = lake::table_url(&dir.path().join("t")).unwrap();
        lake::open_or_create(&url).await.unwrap();
        (dir, QueryEngine::new(url))
    }

    #[tokio::test]
    async fn answers_under_both_names_and_refuses_writes() {
        let (_dir, engine) = empty_table().await;
        let answer = engine
            .run("SELECT count(*) AS n FROM delta_lake.logs")
            .await
            .unwrap();
        assert_eq!(answer.rows, vec![vec![serde_json::Value::from(0)]]);
        let answer = engine.run("SELECT * FROM logs").await.unwrap();
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
        ] {
            let error = engine.run(hostile).await.unwrap_err();
            assert!(error.is_client_error(), "{hostile}: {error}");
        }
        assert!(!std::path::Path::new("/tmp/lakepulse-copy.csv").exists());

        let error = engine.run("SELECT nope FROM logs").await.unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
        assert!(matches!(engine.run("  ").await, Err(QueryError::Empty)));
    }

    #[tokio::test]
    async fn caps_rows_and_says_so() {
        let (_dir, mut engine) = empty_table().await;
        engine.max_rows = 5;
        let answer = engine
            .run("SELECT * FROM generate_series(1, 20)")
            .await
            .unwrap();
        assert_eq!(answer.row_count, 5);
        assert!(answer.truncated);
        let answer = engine
            .run("SELECT * FROM generate_series(1, 5)")
            .await
            .unwrap();
        assert!(!answer.truncated);
    }
}
