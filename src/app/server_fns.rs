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

/// What a workbench form asks of the saved queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SavedQueryEdit {
    /// Keep `sql` (reading `version`) under `name`.
    Save,
    /// Give query `id` the name `name`.
    Rename,
    /// Make `sql` (reading `version`) query `id`'s SQL.
    Update,
    /// Delete query `id`.
    Delete,
}

/// What an edit of the saved queries did: the query as it now is (none once deleted).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedQueryEdited {
    pub edit: SavedQueryEdit,
    pub query: Option<SavedQuery>,
}

/// Saves, renames, updates or deletes a saved query, as `edit` says: one server function for
/// the workbench's forms (each function costs the page's bundle its own code).
#[server]
pub async fn edit_saved_query(
    edit: SavedQueryEdit,
    id: Option<u64>,
    name: Option<String>,
    sql: Option<String>,
    version: Option<u64>,
) -> Result<SavedQueryEdited, ServerFnError> {
    use crate::pipeline::query::saved::SavedQueryChange;
    let pipeline = pipeline();
    let id = || id.ok_or_else(|| ServerFnError::new("the saved query's number is missing"));
    let query = match edit {
        SavedQueryEdit::Save => Some(pipeline.save_query(
            name.as_deref().unwrap_or_default(),
            sql.as_deref().unwrap_or_default(),
            version,
        )),
        SavedQueryEdit::Rename => Some(pipeline.change_saved_query(
            id()?,
            SavedQueryChange {
                name: Some(name.unwrap_or_default()),
                ..SavedQueryChange::default()
            },
        )),
        SavedQueryEdit::Update => Some(pipeline.change_saved_query(
            id()?,
            SavedQueryChange {
                sql: Some(sql.unwrap_or_default()),
                version: Some(version),
                ..SavedQueryChange::default()
            },
        )),
        SavedQueryEdit::Delete => pipeline
            .delete_saved_query(id()?)
            .map(|()| None)
            .transpose(),
    }
    .transpose()
    .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(SavedQueryEdited { edit, query })
}
