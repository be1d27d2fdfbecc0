//! The five questions every SQL benchmark asks, so that the figures compare.

/// (what it asks, lakepulse's SQL, Spark's SQL): the same question in each dialect.
pub const QUERIES: [(&str, &str, &str); 5] = [
    (
        "count of errors",
        "SELECT count(*) FROM logs WHERE status >= 500",
        "SELECT count(*) FROM logs WHERE status >= 500",
    ),
    (
        "per endpoint: count, avg, p99",
        "SELECT endpoint, count(*), avg(response_time_ms), \
         approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY response_time_ms) \
         FROM logs GROUP BY endpoint",
        "SELECT endpoint, count(*), avg(response_time_ms), \
         percentile_approx(response_time_ms, 0.99) FROM logs GROUP BY endpoint",
    ),
    (
        "per-minute counts",
        "SELECT date_trunc('minute', timestamp) AS minute, count(*) FROM logs GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('minute', timestamp) AS minute, count(*) FROM logs GROUP BY 1 ORDER BY 1",
    ),
    (
        "latest 100 errors",
        "SELECT * FROM logs WHERE status >= 500 ORDER BY timestamp DESC LIMIT 100",
        "SELECT * FROM logs WHERE status >= 500 ORDER BY timestamp DESC LIMIT 100",
    ),
    (
        "distinct sessions",
        "SELECT count(DISTINCT session_id) FROM logs",
        "SELECT count(DISTINCT session_id) FROM logs",
    ),
];
