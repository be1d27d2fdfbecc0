//! The five questions every SQL benchmark asks, so that the figures compare.

/// One question: lakepulse's SQL, and the spelling of engines whose dialect differs.
// Each benchmark or test that includes this file reads the dialects it runs.
#[allow(dead_code)]
pub struct Question {
    /// What it asks, in words.
    pub what: &'static str,
    /// lakepulse's SQL (DataFusion's dialect).
    pub sql: &'static str,
    /// Spark SQL's spelling, where it differs.
    spark: Option<&'static str>,
    /// DuckDB's spelling, where it differs.
    duckdb: Option<&'static str>,
}

#[allow(dead_code)]
impl Question {
    /// The question in Spark SQL.
    pub fn spark(&self) -> &'static str {
        self.spark.unwrap_or(self.sql)
    }

    /// The question in DuckDB's SQL.
    pub fn duckdb(&self) -> &'static str {
        self.duckdb.unwrap_or(self.sql)
    }
}

/// The five questions.
pub const QUERIES: [Question; 5] = [
    Question {
        what: "count of errors",
        sql: "SELECT count(*) FROM logs WHERE status >= 500",
        spark: None,
        duckdb: None,
    },
    Question {
        what: "per endpoint: count, avg, p99",
        sql: "SELECT endpoint, count(*), avg(response_time_ms), \
              approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY response_time_ms) \
              FROM logs GROUP BY endpoint",
        spark: Some(
            "SELECT endpoint, count(*), avg(response_time_ms), \
             percentile_approx(response_time_ms, 0.99) FROM logs GROUP BY endpoint",
        ),
        duckdb: Some(
            "SELECT endpoint, count(*), avg(response_time_ms), \
             approx_quantile(response_time_ms, 0.99) FROM logs GROUP BY endpoint",
        ),
    },
    Question {
        what: "per-minute counts",
        sql: "SELECT date_trunc('minute', timestamp) AS minute, count(*) FROM logs GROUP BY 1 ORDER BY 1",
        spark: None,
        duckdb: None,
    },
    Question {
        what: "latest 100 errors",
        sql: "SELECT * FROM logs WHERE status >= 500 ORDER BY timestamp DESC LIMIT 100",
        spark: None,
        duckdb: None,
    },
    Question {
        what: "distinct sessions",
        sql: "SELECT count(DISTINCT session_id) FROM logs",
        spark: None,
        duckdb: None,
    },
];
