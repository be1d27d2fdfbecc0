//! The server functions the pages call: each asks for what its page shows. On the server
//! they find the `Pipeline` in their context (the router provides it) and call its methods,
//! the same ones REST and SSE call.

use crate::context::{ContextRequest, LogContext};
use crate::model::{
    AnomaliesSnapshot, DashboardSnapshot, LogFilter, LogsSnapshot, QueryResult, SavedQuery, Window,
    WorkbenchInfo,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn pipeline() -> std::sync::Arc<crate::pipeline::Pipeline> {
    expect_context()
}

/// The overview's first paint: health, metrics, anomalies, GoAccess's report over `window`
/// and the newest `tail` events.
#[server]
pub async fn get_overview(tail: usize, window: Window) -> Result<DashboardSnapshot, ServerFnError> {
    let pipeline = pipeline();
    Ok(DashboardSnapshot {
        health: pipeline.health(),
        metrics: pipeline.metrics(Window::default()),
        visits: pipeline.visits(window),
        recent_logs: pipeline.recent_logs(&LogFilter {
            limit: Some(tail),
            ..LogFilter::default()
        }),
        anomalies: pipeline.anomalies(),
    })
}

/// The log explorer's first paint: health and the recent events `filter` selects.
#[server]
pub async fn get_logs(filter: LogFilter) -> Result<LogsSnapshot, ServerFnError> {
    let pipeline = pipeline();
    Ok(LogsSnapshot {
        health: pipeline.health(),
        logs: pipeline.recent_logs(&filter),
    })
}

/// The anomalies page's first paint: health and the anomalies.
#[server]
pub async fn get_anomalies() -> Result<AnomaliesSnapshot, ServerFnError> {
    let pipeline = pipeline();
    Ok(AnomaliesSnapshot {
        health: pipeline.health(),
        anomalies: pipeline.anomalies(),
    })
}

/// The context page: the events around the URL's instant from its source (or session).
#[server]
pub async fn get_context(request: ContextRequest) -> Result<LogContext, ServerFnError> {
    pipeline()
        .context(request)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Runs one read-only SQL query over the lake (at `version`, when given).
#[server]
pub async fn run_query(
    sql: String,
    version: Option<u64>,
    id: Option<String>,
) -> Result<QueryResult, ServerFnError> {
    let request = crate::model::QueryRequest {
        query: sql,
        version,
        id,
    };
    pipeline()
        .run_query(&request)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// The table's columns, the query history and the table's versions, for the workbench.
#[server]
pub async fn get_workbench() -> Result<WorkbenchInfo, ServerFnError> {
    pipeline()
        .workbench()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Stops a query started with this id.
#[server]
pub async fn cancel_query(id: String) -> Result<bool, ServerFnError> {
    Ok(pipeline().cancel_query(&id))
}

/// The saved query numbered `id`, for `/query?saved=`.
#[server]
pub async fn get_saved_query(id: u64) -> Result<SavedQuery, ServerFnError> {
    pipeline()
        .saved_query(id)
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Keeps `sql` (reading `version`) under `name`.
#[server]
pub async fn save_query(
    name: String,
    sql: String,
    version: Option<u64>,
) -> Result<SavedQuery, ServerFnError> {
    pipeline()
        .save_query(&name, &sql, version)
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Renames a saved query.
#[server]
pub async fn rename_saved_query(id: u64, name: String) -> Result<SavedQuery, ServerFnError> {
    let change = crate::pipeline::query::saved::SavedQueryChange {
        name: Some(name),
        ..Default::default()
    };
    pipeline()
        .change_saved_query(id, change)
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Replaces a saved query's SQL (and the version it reads) with what was last run.
#[server]
pub async fn update_saved_query(
    id: u64,
    sql: String,
    version: Option<u64>,
) -> Result<SavedQuery, ServerFnError> {
    let change = crate::pipeline::query::saved::SavedQueryChange {
        sql: Some(sql),
        version: Some(version),
        ..Default::default()
    };
    pipeline()
        .change_saved_query(id, change)
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Deletes a saved query.
#[server]
pub async fn delete_saved_query(id: u64) -> Result<(), ServerFnError> {
    pipeline()
        .delete_saved_query(id)
        .map_err(|e| ServerFnError::new(e.to_string()))
}
