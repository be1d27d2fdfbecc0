//! The REST API: each handler reads its parameters, calls one `Pipeline` method and maps
//! errors to HTTP status by kind (the client's mistake 4xx, ours 5xx). Each handler's
//! `utoipa::path` is its entry in `/api/openapi.json`, with the types it answers with.

use super::access::Caller;
use crate::context::{ContextRequest, LogContext};
use crate::model::{
    Anomaly, Health, HealthStatus, LiveEvent, LogFilter, MetricsSnapshot, NotReady, QueryRequest,
    QueryResult, SavedQuery, Series, TableVersion, VisitReport, Window,
};
use crate::pipeline::metrics::{SeriesMetric, BUCKET_SECS};
use crate::pipeline::query::saved::{SavedQueryChange, SavedQueryError};
use crate::pipeline::query::{ExportBody, ExportFormat, QueryError};
use crate::pipeline::Pipeline;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};

/// Table versions `/api/lake/history` lists unless asked otherwise.
const DEFAULT_HISTORY_LIMIT: usize = 100;

/// What every refusal says: HTTP 4xx or 5xx with `{"error": "..."}`.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorAnswer {
    /// What went wrong, for a person.
    error: String,
}

/// A request the client got wrong: HTTP 400.
pub(super) struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error_response(StatusCode::BAD_REQUEST, self.0)
    }
}

pub(super) fn error_response(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorAnswer { error })).into_response()
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let status = match &self {
            QueryError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            QueryError::ClusterDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            error if error.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string())
    }
}

/// `GET /health`: the seed's answer to a trusted caller, the verdict alone to anyone else.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum HealthAnswer {
    /// The pipeline's status with the live metrics, as the seed wrote it.
    Detail {
        #[serde(flatten)]
        health: Box<Health>,
        metrics: Box<MetricsSnapshot>,
    },
    /// Only the verdict: while starting, or to a caller without the token when one is set.
    Verdict(HealthVerdict),
}

/// `/health` without its detail.
#[derive(Serialize, ToSchema)]
// Nothing beside the status: the schema says so, which tells it from the detailed answer.
#[serde(deny_unknown_fields)]
pub(super) struct HealthVerdict {
    status: HealthStatus,
}

/// Everything to a trusted caller; to anyone else, with a token set, only the verdict: the
/// paths, brokers and errors are for those who hold the token. 503 while down, so a load
/// balancer's health check needs no JSON.
#[utoipa::path(get, path = "/health", tag = "operations", responses(
    (status = 200, description = "ok or degraded", body = HealthAnswer),
    (status = 503, description = "starting or down", body = HealthAnswer),
))]
pub(super) async fn health(
    State(pipeline): State<Arc<Pipeline>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let health = pipeline.health();
    let status = match health.status.serving() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let answer = match caller {
        Caller::Trusted => HealthAnswer::Detail {
            metrics: Box::new(pipeline.metrics(Window::default())),
            health: Box::new(health),
        },
        Caller::Anonymous => HealthAnswer::Verdict(HealthVerdict {
            status: health.status,
        }),
    };
    (status, Json(answer)).into_response()
}

/// What a probe reads.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProbeStatus {
    /// The process serves HTTP.
    Live,
    /// It takes its share of the work.
    Ready,
    /// It does not yet, or no longer.
    #[serde(rename = "not ready")]
    NotReady,
}

/// The answer of `/livez` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub(super) struct ProbeAnswer {
    status: ProbeStatus,
    /// What holds it back, to a trusted caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<NotReady>,
}

/// `GET /livez`: the process serves HTTP (while starting too).
#[utoipa::path(get, path = "/livez", tag = "operations", responses(
    (status = 200, description = "the process serves", body = ProbeAnswer),
))]
pub(super) async fn livez() -> Json<ProbeAnswer> {
    Json(ProbeAnswer {
        status: ProbeStatus::Live,
        reason: None,
    })
}

/// `GET /readyz`: 200 once this instance takes its share of the work, else 503 with the
/// stage that holds it back (to a trusted caller, as `/health` keeps its detail).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Kafka reachable with partitions assigned, the lake writable", body = ProbeAnswer),
    (status = 503, description = "starting, or a stage holds it back", body = ProbeAnswer),
))]
pub(super) async fn readyz(
    State(pipeline): State<Arc<Pipeline>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match pipeline.health().readiness() {
        Ok(()) => Json(ProbeAnswer {
            status: ProbeStatus::Ready,
            reason: None,
        })
        .into_response(),
        Err(reason) => not_ready((caller == Caller::Trusted).then_some(reason)),
    }
}

fn not_ready(reason: Option<NotReady>) -> Response {
    let answer = ProbeAnswer {
        status: ProbeStatus::NotReady,
        reason,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response()
}

/// What every request but `/livez` gets before the pipeline has started: 503 and a retry
/// hint, as JSON for clients and as a page that reloads itself for browsers.
pub(super) async fn starting(request: Request) -> Response {
    let path = request.uri().path();
    if path == "/livez" {
        return livez().await.into_response();
    }
    let wants_page = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let answer = match path {
        _ if wants_page => Html(STARTING_PAGE).into_response(),
        "/readyz" => not_ready(Some(NotReady::Starting)),
        _ => Json(HealthAnswer::Verdict(HealthVerdict {
            status: HealthStatus::Starting,
        }))
        .into_response(),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        answer,
    )
        .into_response()
}

const STARTING_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>lakepulse is starting</title></head>
<body><p>lakepulse is starting: the broker, the topic and the table are being set up. This page reloads by itself.</p></body></html>"#;

/// `GET /metrics` for Prometheus.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
    (status = 401, description = "a token is set and the request has none", body = ErrorAnswer),
))]
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

/// `GET /api/openapi.json`: this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses(
    (status = 200, description = "the OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
))]
pub(super) async fn openapi(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(document)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MetricsParams {
    /// The window of the breakdowns (or the report): `1m`, `5m` (default), `1h` or `all`.
    window: Option<String>,
}

pub(super) fn window(label: Option<&str>) -> Result<Window, BadRequest> {
    label.map_or(Ok(Window::default()), |label| {
        Window::parse(label)
            .ok_or_else(|| BadRequest(format!("unknown window {label:?}: use 1m, 5m, 1h or all")))
    })
}

/// `GET /api/metrics`: the live metrics.
#[utoipa::path(get, path = "/api/metrics", tag = "live", params(MetricsParams), responses(
    (status = 200, description = "the seed's metric names, with every window beside them", body = MetricsSnapshot),
    (status = 400, description = "an unknown window", body = ErrorAnswer),
))]
pub(super) async fn metrics(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<MetricsSnapshot>, BadRequest> {
    Ok(Json(pipeline.metrics(window(params.window.as_deref())?)))
}

/// `GET /api/visits`: GoAccess's report over a window of the live metrics. The same questions
/// over any range of the lake are the SQL each panel links to.
#[utoipa::path(get, path = "/api/visits", tag = "live", params(MetricsParams), responses(
    (status = 200, description = "unique visitors and each panel's busiest keys", body = VisitReport),
    (status = 400, description = "an unknown window", body = ErrorAnswer),
))]
pub(super) async fn visits(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<VisitReport>, BadRequest> {
    Ok(Json(pipeline.visits(window(params.window.as_deref())?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SeriesParams {
    /// `requests`, `eventsPerSec`, `errors`, `errorRate`, `avgResponseTime`, `p50`, `p95`,
    /// `p99` or `bytes`.
    metric: String,
    /// `1m`, `5m` (default), `1h` or `all`.
    window: Option<String>,
    /// `10s`, `1m`, or seconds; 10 s at least.
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

/// `GET /api/series`: one metric as a chart series.
#[utoipa::path(get, path = "/api/series", tag = "live", params(SeriesParams), responses(
    (status = 200, description = "the metric's points, oldest first", body = Series),
    (status = 400, description = "an unknown metric or window, or a bad step", body = ErrorAnswer),
))]
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

/// `GET /api/anomalies`.
#[utoipa::path(get, path = "/api/anomalies", tag = "live", responses(
    (status = 200, description = "open anomalies first, then ended ones, newest first", body = Vec<Anomaly>),
))]
pub(super) async fn anomalies(State(pipeline): State<Arc<Pipeline>>) -> Json<Vec<Anomaly>> {
    Json(pipeline.anomalies())
}

/// `GET /api/logs`: the recent events a filter selects.
#[utoipa::path(get, path = "/api/logs", tag = "live", params(LogFilter), responses(
    (status = 200, description = "the newest kept events that pass the filter, newest first", body = Vec<LiveEvent>),
))]
pub(super) async fn logs(
    State(pipeline): State<Arc<Pipeline>>,
    Query(filter): Query<LogFilter>,
) -> Json<Vec<LiveEvent>> {
    Json(pipeline.recent_logs(&filter))
}

/// `GET /api/context`: the events just before and after one instant from one source (or one
/// session of it), as the `/context` page shows them.
#[utoipa::path(get, path = "/api/context", tag = "sql", params(ContextRequest), responses(
    (status = 200, description = "the events around the instant, oldest first", body = LogContext),
    (status = 400, description = "no source or instant, or a bad one", body = ErrorAnswer),
    (status = 429, description = "as many queries as may run at once are running", body = ErrorAnswer),
    (status = 500, description = "the table cannot be read", body = ErrorAnswer),
))]
pub(super) async fn context(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request = match ContextRequest::from_query(|name| params.get(name).cloned()) {
        Ok(request) => request,
        Err(error) => return BadRequest(error.to_string()).into_response(),
    };
    match pipeline.context(request).await {
        Ok(context) => Json(context).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /api/query`: SQL over the lake.
#[utoipa::path(post, path = "/api/query", tag = "sql", request_body = QueryRequest, responses(
    (status = 200, description = "the seed's results and executionTime, with the result's own fields", body = QueryAnswer),
    (status = 400, description = "a bad or refused query, or one past its time or memory limit", body = ErrorAnswer),
    (status = 429, description = "as many queries as may run at once are running", body = ErrorAnswer),
    (status = 500, description = "the table cannot be read", body = ErrorAnswer),
))]
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
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryAnswer<'a> {
    /// One object per row: column name to value.
    #[schema(value_type = Vec<Object>)]
    results: RowObjects<'a>,
    /// Seconds, as `"1.76s"`.
    execution_time: String,
    #[serde(flatten)]
    #[schema(inline)]
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
#[utoipa::path(delete, path = "/api/query/{id}", tag = "sql",
    params(("id" = String, Path, description = "the `id` the query was posted with")),
    responses(
        (status = 204, description = "the query is stopped"),
        (status = 404, description = "no query runs under that id"),
))]
pub(super) async fn cancel(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> StatusCode {
    match pipeline.cancel_query(&id) {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportParams {
    /// The query.
    sql: String,
    /// The table version to query (time travel); the latest when absent.
    version: Option<u64>,
    /// `csv` (default), `json` (the API's answer, up to the row cap), `ndjson` or `parquet`.
    format: Option<String>,
}

/// `GET /api/export?sql=...&format=csv|json|ndjson|parquet`: a query's result as a download.
/// CSV, NDJSON and Parquet stream as the query runs, with no row cap; a query past its time
/// limit or the export byte limit breaks the download off rather than end it as if whole.
#[utoipa::path(get, path = "/api/export", tag = "sql", params(ExportParams), responses(
    (status = 200, description = "the result as an attachment", content(
        (String = "text/csv"),
        (QueryResult = "application/json"),
        (String = "application/x-ndjson"),
        (String = "application/vnd.apache.parquet"),
    )),
    (status = 400, description = "a bad query or format", body = ErrorAnswer),
    (status = 429, description = "as many queries as may run at once are running", body = ErrorAnswer),
    (status = 500, description = "the table cannot be read", body = ErrorAnswer),
))]
pub(super) async fn export(
    State(pipeline): State<Arc<Pipeline>>,
    Query(params): Query<ExportParams>,
) -> Response {
    let format = match params.format.as_deref() {
        None => ExportFormat::default(),
        Some(name) => match ExportFormat::parse(name) {
            Some(format) => format,
            None => {
                return BadRequest(format!(
                    "unknown format {name:?}: use {}",
                    ExportFormat::NAMES
                ))
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
        Ok(export) => {
            let body = match export.body {
                ExportBody::Whole(bytes) => Body::from(bytes),
                ExportBody::Streamed(chunks) => Body::from_stream(ReceiverStream::new(chunks)),
            };
            (
                [
                    (header::CONTENT_TYPE, export.content_type.to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", export.file_name),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryParams {
    /// Versions to list, newest first (100 unless given).
    limit: Option<usize>,
}

/// `GET /api/lake/history`: the table's versions.
#[utoipa::path(get, path = "/api/lake/history", tag = "sql", params(HistoryParams), responses(
    (status = 200, description = "the table's commits, newest first", body = Vec<TableVersion>),
    (status = 500, description = "the table cannot be read", body = ErrorAnswer),
))]
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

impl IntoResponse for SavedQueryError {
    fn into_response(self) -> Response {
        let status = match &self {
            SavedQueryError::NotFound(_) => StatusCode::NOT_FOUND,
            SavedQueryError::NameTaken(_) | SavedQueryError::Full => StatusCode::CONFLICT,
            error if error.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string())
    }
}

/// A query to keep under a name.
#[derive(Deserialize, ToSchema)]
pub(super) struct NewSavedQuery {
    /// Unique, whatever the case; 1 to 200 characters.
    name: String,
    sql: String,
    /// The table version it reads; the latest when absent.
    version: Option<u64>,
}

/// What to change of a saved query; what is left out stays.
#[derive(Deserialize, ToSchema)]
pub(super) struct SavedQueryPatch {
    name: Option<String>,
    sql: Option<String>,
    /// The table version it reads; `null` for the latest.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    version: Option<Option<u64>>,
}

/// A member that is present, `null` included, as `Some`: absent stays None.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// `GET /api/saved-queries`: every saved query, by name.
#[utoipa::path(get, path = "/api/saved-queries", tag = "sql", responses(
    (status = 200, description = "the saved queries, by name", body = Vec<SavedQuery>),
))]
pub(super) async fn saved_queries(State(pipeline): State<Arc<Pipeline>>) -> Json<Vec<SavedQuery>> {
    Json(pipeline.saved_queries())
}

/// `POST /api/saved-queries`: keeps a query under a name; `/query?saved={id}` shows it.
#[utoipa::path(post, path = "/api/saved-queries", tag = "sql", request_body = NewSavedQuery, responses(
    (status = 201, description = "saved, with its number", body = SavedQuery),
    (status = 400, description = "a blank or overlong name or query", body = ErrorAnswer),
    (status = 409, description = "the name is taken, or 1000 queries are saved", body = ErrorAnswer),
    (status = 500, description = "the file could not be written; nothing changed", body = ErrorAnswer),
))]
pub(super) async fn save_query(
    State(pipeline): State<Arc<Pipeline>>,
    Json(new): Json<NewSavedQuery>,
) -> Response {
    match pipeline.save_query(&new.name, &new.sql, new.version) {
        Ok(saved) => (StatusCode::CREATED, Json(saved)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /api/saved-queries/{id}`.
#[utoipa::path(get, path = "/api/saved-queries/{id}", tag = "sql",
    params(("id" = u64, Path, description = "the saved query's number")),
    responses(
        (status = 200, description = "the saved query", body = SavedQuery),
        (status = 404, description = "no saved query has that number", body = ErrorAnswer),
))]
pub(super) async fn saved_query(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<u64>,
) -> Response {
    match pipeline.saved_query(id) {
        Ok(saved) => Json(saved).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `PATCH /api/saved-queries/{id}`: renames or rewrites a saved query; its number, and so its
/// link, stays.
#[utoipa::path(patch, path = "/api/saved-queries/{id}", tag = "sql",
    params(("id" = u64, Path, description = "the saved query's number")),
    request_body = SavedQueryPatch,
    responses(
        (status = 200, description = "the saved query as it now is", body = SavedQuery),
        (status = 400, description = "a blank or overlong name or query", body = ErrorAnswer),
        (status = 404, description = "no saved query has that number", body = ErrorAnswer),
        (status = 409, description = "another saved query has that name", body = ErrorAnswer),
        (status = 500, description = "the file could not be written; nothing changed", body = ErrorAnswer),
))]
pub(super) async fn change_saved_query(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<u64>,
    Json(patch): Json<SavedQueryPatch>,
) -> Response {
    let change = SavedQueryChange {
        name: patch.name,
        sql: patch.sql,
        version: patch.version,
    };
    match pipeline.change_saved_query(id, change) {
        Ok(saved) => Json(saved).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `DELETE /api/saved-queries/{id}`: 204, or 404 if none has that number.
#[utoipa::path(delete, path = "/api/saved-queries/{id}", tag = "sql",
    params(("id" = u64, Path, description = "the saved query's number")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no saved query has that number", body = ErrorAnswer),
        (status = 500, description = "the file could not be written; nothing changed", body = ErrorAnswer),
))]
pub(super) async fn delete_saved_query(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<u64>,
) -> Response {
    match pipeline.delete_saved_query(id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}
