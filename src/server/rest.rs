//! The REST API: each handler reads its parameters, calls one `Pipeline` method and maps
//! errors to HTTP status by kind (the client's mistake 4xx, ours 5xx).

use super::access::Caller;
use crate::model::{Anomaly, LiveEvent, LogFilter, MetricsSnapshot, QueryRequest, Series, Window};
use crate::pipeline::metrics::{SeriesMetric, BUCKET_SECS};
use crate::pipeline::query::{ExportFormat, QueryError};
use crate::pipeline::Pipeline;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

/// Table versions `/api/lake/history` lists unless asked otherwise.
const DEFAULT_HISTORY_LIMIT: usize = 100;

/// A request the client got wrong: HTTP 400 with `{"error": "..."}`.
pub(super) struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error_response(StatusCode::BAD_REQUEST, self.0)
    }
}

fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let status = match &self {
            QueryError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            error if error.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string())
    }
}

/// Everything to a trusted caller; to anyone else, with a token set, only the verdict: the
/// paths, brokers and errors are for those who hold the token.
pub(super) async fn health(
    State(pipeline): State<Arc<Pipeline>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let health = pipeline.health();
    match caller {
        Caller::Trusted => Json(health).into_response(),
        Caller::Anonymous => Json(serde_json::json!({ "status": health.status })).into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct MetricsParams {
    window: Option<String>,
}

fn window(label: Option<&str>) -> Result<Window, BadRequest> {
    label.map_or(Ok(Window::default()), |label| {
        Window::parse(label)
            .ok_or_else(|| BadRequest(format!("unknown window {label:?}: use 1m, 5m, 1h or all")))
    })
}

pub(super) async fn metrics(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<MetricsSnapshot>, BadRequest> {
    Ok(Json(pipeline.metrics(window(params.window.as_deref())?)))
}

#[derive(Deserialize)]
pub(super) struct SeriesParams {
    metric: String,
    window: Option<String>,
    step: Option<String>,
}

/// `step` as `10s`, `1m`, `5m` or plain seconds.
fn parse_step(step: &str) -> Option<i64> {
    let (number, unit) = match step.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match step.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (step, 1),
        },
    };
    number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(unit))
}

pub(super) async fn series(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<SeriesParams>,
) -> Result<Json<Series>, BadRequest> {
    let metric = SeriesMetric::parse(&params.metric).ok_or_else(|| {
        let known: Vec<_> = SeriesMetric::ALL.iter().map(|m| m.name()).collect();
        BadRequest(format!(
            "unknown metric {:?}: one of {}",
            params.metric,
            known.join(", ")
        ))
    })?;
    let window = window(params.window.as_deref())?;
    let step = match params.step.as_deref() {
        None => BUCKET_SECS,
        Some(step) => parse_step(step)
            .ok_or_else(|| BadRequest(format!("bad step {step:?}: use e.g. 10s or 1m")))?,
    };
    Ok(Json(pipeline.series(metric, window, step)))
}

pub(super) async fn anomalies(State(pipeline): State<Arc<Pipeline>>) -> Json<Vec<Anomaly>> {
    Json(pipeline.anomalies())
}

pub(super) async fn logs(
    State(pipeline): State<Arc<Pipeline>>,
    Query(filter): Query<LogFilter>,
) -> Json<Vec<LiveEvent>> {
    Json(pipeline.recent_logs(&filter))
}

pub(super) async fn query(
    State(pipeline): State<Arc<Pipeline>>,
    Json(request): Json<QueryRequest>,
) -> Response {
    match pipeline.run_query(&request).await {
        Ok(result) => Json(result).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `DELETE /api/query/{id}`: 204 when a query ran under that id and is stopped, else 404.
pub(super) async fn cancel(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> StatusCode {
    match pipeline.cancel_query(&id) {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    }
}

#[derive(Deserialize)]
pub(super) struct ExportParams {
    sql: String,
    version: Option<u64>,
    format: Option<String>,
}

/// `GET /api/export?sql=...&format=csv|json`: a query's result as a download.
pub(super) async fn export(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<ExportParams>,
) -> Response {
    let format = match params.format.as_deref() {
        None => ExportFormat::default(),
        Some(name) => match ExportFormat::parse(name) {
            Some(format) => format,
            None => {
                return BadRequest(format!("unknown format {name:?}: use csv or json"))
                    .into_response()
            }
        },
    };
    let request = QueryRequest {
        query: params.sql,
        version: params.version,
        id: None,
    };
    match pipeline.export(&request, format).await {
        Ok(export) => (
            [
                (header::CONTENT_TYPE, export.content_type.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", export.file_name),
                ),
            ],
            export.body,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct HistoryParams {
    limit: Option<usize>,
}

pub(super) async fn lake_history(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<HistoryParams>,
) -> Response {
    let limit = params.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    match pipeline.table_versions(limit).await {
        Ok(versions) => Json(versions).into_response(),
        Err(error) => error.into_response(),
    }
}
