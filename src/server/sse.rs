//! `GET /events`: the live stream. Current metrics and health at once, then every frame the
//! pipeline publishes; log batches keep to the query's filters, and with `Last-Event-ID` the
//! stream first replays the kept events the client missed. Messages come rendered from the
//! live stage, most of them shared by every client, and go out as they are.

use crate::model::{sse, LogFilter};
use crate::pipeline::live::{json_message, log_message, sse_message, SseFrame};
use crate::pipeline::prometheus;
use crate::pipeline::Pipeline;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};

/// A comment this often keeps proxies and browsers from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a client wants of the stream besides its log filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamParams {
    /// `false` for a page that shows no log lines: no `log` frames at all.
    logs: Option<bool>,
}

/// `GET /events`: Server-Sent Events.
#[utoipa::path(get, path = "/events", tag = "live", params(LogFilter, StreamParams,
    ("Last-Event-ID" = Option<u64>, Header, description = "the last `log` id seen: the kept events after it come first"),
), responses(
    (status = 200, description = "`metrics` and `health` every second, `log` batches every 100 ms (a JSON array of events; its id the last one's `seq`), `anomaly`, and `lagged` when a slow client skipped ahead", content_type = "text/event-stream", body = String),
    (status = 503, description = "as many clients as may connect are connected", body = super::rest::ErrorAnswer),
))]
pub(super) async fn events(
    State(pipeline): State<Arc<Pipeline>>,
    Query(filter): Query<LogFilter>,
    Query(params): Query<StreamParams>,
    headers: HeaderMap,
) -> Response {
    let wants_logs = params.logs.unwrap_or(true);
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let subscription = match pipeline.subscribe(resume_after) {
        Ok(subscription) => subscription,
        Err(full) => {
            let retry = [(header::RETRY_AFTER, "5")];
            let refused =
                super::rest::error_response(StatusCode::SERVICE_UNAVAILABLE, full.to_string());
            return (retry, refused).into_response();
        }
    };
    let mut first = vec![
        message(sse::METRICS, &subscription.metrics),
        message(sse::HEALTH, &subscription.health),
    ];
    if let Some((missed_logs, gone)) = subscription.missed {
        if gone > 0 {
            first.push(message(
                sse::LAGGED,
                &serde_json::json!({ "missedEvents": gone }),
            ));
        }
        if wants_logs {
            first.extend(log_message(&missed_logs, &filter));
        }
    }
    let viewer = subscription.viewer;
    let live = BroadcastStream::new(subscription.frames).filter_map(move |received| {
        let _counted_while_connected = &viewer;
        futures::future::ready(match received {
            Ok(SseFrame::Message(message)) => Some(message),
            Ok(SseFrame::Logs(batch)) => wants_logs.then(|| batch.message_for(&filter)).flatten(),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => Some({
                metrics::counter!(prometheus::SSE_FRAMES_DROPPED).increment(skipped);
                message(
                    sse::LAGGED,
                    &serde_json::json!({ "skippedFrames": skipped }),
                )
            }),
        })
    });
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let comments = IntervalStream::new(keep_alive).map(|_| Bytes::from_static(b":\n\n"));
    let body = stream::iter(first)
        .chain(stream::select(live, comments))
        .map(Ok::<_, Infallible>);
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // nginx passes each frame on at once even where its site config buffers.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `payload` as one message, or an `error` message saying why it could not be written.
fn message<T: serde::Serialize>(event: &'static str, payload: &T) -> Bytes {
    json_message(event, payload).unwrap_or_else(|error| {
        sse_message(
            "error",
            None,
            &serde_json::json!(error.to_string()).to_string(),
        )
    })
}
