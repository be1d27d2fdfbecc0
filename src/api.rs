//! The server's surface: server functions for the pages, REST and SSE for everyone else.
//! Handlers stay thin; the work happens in `pipeline`.

use crate::model::{DashboardSnapshot, LogFilter, QueryResult, WorkbenchInfo};
use leptos::prelude::*;

/// Everything the dashboard shows on first paint.
#[server]
pub async fn get_dashboard(logs: LogFilter) -> Result<DashboardSnapshot, ServerFnError> {
    Ok(expect_context::<http::AppState>().pipeline.dashboard(&logs))
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
    let state = expect_context::<http::AppState>();
    state
        .pipeline
        .run_query(&request)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// The table's columns, the query history and the table's versions, for the workbench.
#[server]
pub async fn get_workbench() -> Result<WorkbenchInfo, ServerFnError> {
    let pipeline = expect_context::<http::AppState>().pipeline;
    let failed = |e: crate::pipeline::query::QueryError| ServerFnError::new(e.to_string());
    Ok(WorkbenchInfo {
        columns: pipeline.query.columns().await.map_err(failed)?,
        history: pipeline.history.recent(20),
        versions: pipeline.query.history(20).await.map_err(failed)?,
    })
}

/// Stops a query started with this id.
#[server]
pub async fn cancel_query(id: String) -> Result<bool, ServerFnError> {
    Ok(expect_context::<http::AppState>()
        .pipeline
        .query
        .cancel(&id))
}

#[cfg(feature = "ssr")]
pub mod http {
    use crate::access::{self, AccessToken};
    use crate::app::{shell, App};
    use crate::model::QueryRequest;
    use crate::model::{
        sse, Anomaly, Health, LiveEvent, LogFilter, MetricsSnapshot, Series, Window,
    };
    use crate::pipeline::live::{Logged, SseFrame};
    use crate::pipeline::metrics::{SeriesMetric, BUCKET_SECS};
    use crate::pipeline::query::QueryError;
    use crate::pipeline::Pipeline;
    use axum::extract::Path;
    use axum::extract::{FromRef, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{delete, get, post};
    use axum::{Json, Router};
    use futures::stream::{self, Stream, StreamExt};
    use leptos::prelude::LeptosOptions;
    use leptos_axum::{generate_route_list, LeptosRoutes};
    use serde::Deserialize;
    use std::convert::Infallible;
    use std::sync::Arc;
    use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
    use tokio_stream::wrappers::BroadcastStream;

    /// Events one `log` message carries at most: at 50 000 events/s a browser still gets a
    /// screenful ten times a second, not the firehose.
    const MAX_EVENTS_PER_BATCH: usize = 500;

    /// Largest accepted request body (a SQL query is small).
    const MAX_BODY_BYTES: usize = 256 * 1024;

    #[derive(Clone, FromRef)]
    pub struct AppState {
        pub leptos_options: LeptosOptions,
        pub pipeline: Arc<Pipeline>,
        pub token: Option<AccessToken>,
    }

    pub fn router(state: AppState) -> Router {
        let routes = generate_route_list(App);
        let options = state.leptos_options.clone();
        Router::new()
            .route("/health", get(health))
            .route("/api/metrics", get(metrics))
            .route("/api/series", get(series))
            .route("/api/anomalies", get(anomalies))
            .route("/api/logs", get(logs))
            .route("/api/query", post(query))
            .route("/api/query/{id}", delete(cancel))
            .route("/api/lake/history", get(lake_history))
            .route("/api/export", get(export))
            .route("/events", get(events))
            .route("/login", get(access::login_form).post(access::login))
            .leptos_routes(&state, routes, move || shell(options.clone()))
            .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
            .layer(axum::middleware::from_fn_with_state(
                state.token.clone(),
                access::guard,
            ))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                MAX_BODY_BYTES,
            ))
            .with_state(state)
    }

    async fn health(State(pipeline): State<Arc<Pipeline>>) -> Json<Health> {
        Json(pipeline.health())
    }

    #[derive(Deserialize)]
    struct MetricsParams {
        window: Option<String>,
    }

    fn window(label: Option<&str>) -> Result<Window, BadRequest> {
        label.map_or(Ok(Window::default()), |label| {
            Window::parse(label).ok_or_else(|| {
                BadRequest(format!("unknown window {label:?}: use 1m, 5m, 1h or all"))
            })
        })
    }

    /// A request the client got wrong: HTTP 400 with `{"error": "..."}`.
    struct BadRequest(String);

    impl IntoResponse for BadRequest {
        fn into_response(self) -> Response {
            let body = Json(serde_json::json!({ "error": self.0 }));
            (StatusCode::BAD_REQUEST, body).into_response()
        }
    }

    async fn metrics(
        State(pipeline): State<Arc<Pipeline>>,
        Query(params): Query<MetricsParams>,
    ) -> Result<Json<MetricsSnapshot>, BadRequest> {
        Ok(Json(
            pipeline.live.metrics(window(params.window.as_deref())?),
        ))
    }

    #[derive(Deserialize)]
    struct SeriesParams {
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
            .map(|n| n * unit)
    }

    async fn series(
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
        Ok(Json(pipeline.live.series(metric, window, step)))
    }

    async fn anomalies(State(pipeline): State<Arc<Pipeline>>) -> Json<Vec<Anomaly>> {
        Json(pipeline.live.anomalies())
    }

    async fn logs(
        State(pipeline): State<Arc<Pipeline>>,
        Query(filter): Query<LogFilter>,
    ) -> Json<Vec<LiveEvent>> {
        Json(pipeline.live.recent_logs(&filter))
    }

    async fn query(
        State(pipeline): State<Arc<Pipeline>>,
        Json(request): Json<QueryRequest>,
    ) -> Response {
        match pipeline.run_query(&request).await {
            Ok(result) => Json(result).into_response(),
            Err(error) => query_error(error),
        }
    }

    fn query_error(error: QueryError) -> Response {
        if error.is_client_error() {
            return BadRequest(error.to_string()).into_response();
        }
        let body = Json(serde_json::json!({ "error": error.to_string() }));
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    }

    /// `DELETE /api/query/{id}`: 204 when a query ran under that id and is stopped, else 404.
    async fn cancel(State(pipeline): State<Arc<Pipeline>>, Path(id): Path<String>) -> StatusCode {
        if pipeline.query.cancel(&id) {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        }
    }

    #[derive(Deserialize)]
    struct ExportParams {
        sql: String,
        version: Option<u64>,
        format: Option<String>,
    }

    /// `GET /api/export?sql=...&format=csv|json`: a query's result as a download.
    async fn export(
        State(pipeline): State<Arc<Pipeline>>,
        Query(params): Query<ExportParams>,
    ) -> Response {
        let format = params.format.as_deref().unwrap_or("csv");
        if !matches!(format, "csv" | "json") {
            return BadRequest(format!("unknown format {format:?}: use csv or json"))
                .into_response();
        }
        let request = QueryRequest {
            query: params.sql,
            version: params.version,
            id: None,
        };
        let result = match pipeline.query.run(&request).await {
            Ok(result) => result,
            Err(error) => return query_error(error),
        };
        let (body, content_type) = match format {
            "json" => match serde_json::to_vec(&result) {
                Ok(body) => (body, "application/json"),
                Err(error) => return query_error(QueryError::Sql(error.to_string())),
            },
            _ => match result.to_csv() {
                Ok(body) => (body, "text/csv; charset=utf-8"),
                Err(error) => return query_error(QueryError::Sql(error.to_string())),
            },
        };
        let disposition = format!("attachment; filename=\"lakepulse-query.{format}\"");
        (
            [
                (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
                (axum::http::header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response()
    }

    #[derive(Deserialize)]
    struct HistoryParams {
        limit: Option<usize>,
    }

    async fn lake_history(
        State(pipeline): State<Arc<Pipeline>>,
        Query(params): Query<HistoryParams>,
    ) -> Response {
        match pipeline.query.history(params.limit.unwrap_or(100)).await {
            Ok(versions) => Json(versions).into_response(),
            Err(error) => query_error(error),
        }
    }

    /// The live stream: current metrics and health at once, then every frame the pipeline
    /// publishes. Log batches keep to the query's filters; with `Last-Event-ID` the stream
    /// first replays the kept events the client missed.
    async fn events(
        State(pipeline): State<Arc<Pipeline>>,
        Query(filter): Query<LogFilter>,
        headers: HeaderMap,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let (frames, client) = pipeline.live.subscribe();
        let mut first = vec![
            frame(sse::METRICS, &pipeline.live.metrics(Window::default())),
            frame(sse::HEALTH, &pipeline.health()),
        ];
        let resume_after = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(seq) = resume_after {
            let (missed_logs, gone) = pipeline.live.logs_after(seq);
            if gone > 0 {
                first.push(frame(
                    sse::LAGGED,
                    &serde_json::json!({ "missedEvents": gone }),
                ));
            }
            first.extend(log_batch(&missed_logs, &filter));
        }
        let live = BroadcastStream::new(frames).filter_map(move |received| {
            let _counted_while_connected = &client;
            futures::future::ready(match received {
                Ok(SseFrame::Json { event, data }) => {
                    Some(Event::default().event(event).data(&*data))
                }
                Ok(SseFrame::Logs(batch)) => log_batch(&batch, &filter),
                Err(BroadcastStreamRecvError::Lagged(skipped)) => Some(frame(
                    sse::LAGGED,
                    &serde_json::json!({ "skippedFrames": skipped }),
                )),
            })
        });
        Sse::new(stream::iter(first).chain(live).map(Ok)).keep_alive(KeepAlive::default())
    }

    /// The events of `logs` that pass `filter` as one `log` message, or nothing.
    /// The newest events of `logs` that pass `filter` (no page shows more than
    /// [`MAX_EVENTS_PER_BATCH`] at once), as one `log` message; nothing if none passes.
    fn log_batch(logs: &[Arc<Logged>], filter: &LogFilter) -> Option<Event> {
        let matching: Vec<&Arc<Logged>> = logs
            .iter()
            .filter(|l| filter.matches(&l.live.event))
            .collect();
        let newest = &matching[matching.len().saturating_sub(MAX_EVENTS_PER_BATCH)..];
        let mut data = String::from("[");
        let mut last_seq = None;
        for logged in newest {
            if last_seq.is_some() {
                data.push(',');
            }
            data.push_str(&logged.json);
            last_seq = Some(logged.live.seq);
        }
        data.push(']');
        Some(
            Event::default()
                .event(sse::LOG)
                .id(last_seq?.to_string())
                .data(data),
        )
    }

    fn frame<T: serde::Serialize>(name: &'static str, payload: &T) -> Event {
        Event::default()
            .event(name)
            .json_data(payload)
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
    }
}
