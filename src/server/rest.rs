//! The REST API: each handler reads its parameters, calls one `Pipeline` method and maps
//! errors to HTTP status by kind (the client's mistake 4xx, ours 5xx).

use super::access::Caller;
use crate::model::{
    Anomaly, Health, HealthStatus, LiveEvent, LogFilter, MetricsSnapshot, NotReady, QueryRequest,
    QueryResult, Series, Window,
};
use crate::pipeline::metrics::{SeriesMetric, BUCKET_SECS};
use crate::pipeline::query::{ExportFormat, QueryError};
use crate::pipeline::Pipeline;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
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

/// `GET /health` as the seed wrote it: the pipeline's status with the live metrics.
#[derive(Serialize)]
struct HealthAnswer {
    #[serde(flatten)]
    health: Health,
    metrics: MetricsSnapshot,
}

/// Everything to a trusted caller; to anyone else, with a token set, only the verdict: the
/// paths, brokers and errors are for those who hold the token. 503 while down, so a load
/// balancer's health check needs no JSON.
pub(super) async fn health(
    State(pipeline): State<Arc<Pipeline>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let health = pipeline.health();
    let status = match health.status.serving() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    match caller {
        Caller::Trusted => {
            let metrics = pipeline.metrics(Window::default());
            (status, Json(HealthAnswer { health, metrics })).into_response()
        }
        Caller::Anonymous => {
            (status, Json(serde_json::json!({ "status": health.status }))).into_response()
        }
    }
}

/// `GET /livez`: the process serves HTTP (while starting too).
pub(super) async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "live" }))
}

/// `GET /readyz`: 200 once this instance takes its share of the work, else 503 with the
/// stage that holds it back (to a trusted caller, as `/health` keeps its detail).
pub(super) async fn readyz(
    State(pipeline): State<Arc<Pipeline>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match (pipeline.health().readiness(), caller) {
        (Ok(()), _) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        (Err(reason), Caller::Trusted) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready(reason))).into_response()
        }
        (Err(_), Caller::Anonymous) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not ready" })),
        )
            .into_response(),
    }
}

fn not_ready(reason: NotReady) -> serde_json::Value {
    serde_json::json!({ "status": "not ready", "reason": reason })
}

/// What every request but `/livez` gets before the pipeline has started: 503 and a retry
/// hint, as JSON for clients and as a page that reloads itself for browsers.
pub(super) async fn starting(request: Request) -> Response {
    let path = request.uri().path();
    if path == "/livez" {
        return livez().await.into_response();
    }
    let (unavailable, retry) = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
    );
    let wants_page = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let answer = match path {
        _ if wants_page => return (unavailable, retry, Html(STARTING_PAGE)).into_response(),
        "/readyz" => not_ready(NotReady::Starting),
        _ => serde_json::json!({ "status": HealthStatus::Starting }),
    };
    (unavailable, retry, Json(answer)).into_response()
}

const STARTING_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>lakepulse is starting</title></head>
<body><p>lakepulse is starting: the broker, the topic and the table are being set up. This page reloads by itself.</p></body></html>"#;

/// `GET /metrics` for Prometheus.
pub(super) async fn prometheus(State(pipeline): State<Arc<Pipeline>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        pipeline.prometheus(),
    )
        .into_response()
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
        Ok(result) => Json(QueryAnswer::from(&result)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /api/query` as the seed wrote it: `results` (a row as an object of column to value)
/// and `executionTime` (`"1.76s"`), with the result's columns, rows and the rest beside them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryAnswer<'a> {
    results: RowObjects<'a>,
    execution_time: String,
    #[serde(flatten)]
    result: &'a QueryResult,
}

impl<'a> From<&'a QueryResult> for QueryAnswer<'a> {
    fn from(result: &'a QueryResult) -> Self {
        QueryAnswer {
            results: RowObjects(result),
            execution_time: format!("{:.2}s", result.execution_ms / 1000.0),
            result,
        }
    }
}

/// Rows as objects, keys in the columns' order (a map would sort them), written straight
/// from the rows rather than copied.
struct RowObjects<'a>(&'a QueryResult);

impl Serialize for RowObjects<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Row<'a>(&'a [String], &'a [serde_json::Value]);
        impl Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut object = serializer.serialize_map(Some(self.0.len()))?;
                for (column, value) in self.0.iter().zip(self.1) {
                    object.serialize_entry(column, value)?;
                }
                object.end()
            }
        }
        let mut rows = serializer.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            rows.serialize_element(&Row(&self.0.columns, row))?;
        }
        rows.end()
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
