//! `GET /events`: the live stream. Current metrics and health at once, then every frame the
//! pipeline publishes; log batches keep to the query's filters, and with `Last-Event-ID` the
//! stream first replays the kept events the client missed. Messages come rendered from the
//! live stage, most of them shared by every client, and go out as they are, or as a gzip
//! stream (when the client takes it) of deflate blocks each message brings rendered too. A
//! `limit` sends only the newest events of each batch that the client's view keeps.

use crate::model::{sse, LogFilter};
use crate::pipeline::live::{
    json_message, log_message, sse_message, Rendered, SseFrame, StreamEncoding, StreamFilter,
    GZIP_STREAM_HEADER,
};
use crate::pipeline::prometheus;
use crate::pipeline::Pipeline;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
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
    /// The window of the `visits` frames, `1m`, `5m`, `1h` or `all`; none without it.
    window: Option<String>,
}

/// `GET /events`: Server-Sent Events.
#[utoipa::path(get, path = "/events", tag = "live", params(LogFilter, StreamParams,
    ("Last-Event-ID" = Option<u64>, Header, description = "the last `log` id seen: the kept events after it come first"),
    ("Accept-Encoding" = Option<String>, Header, description = "with `gzip`, the stream comes gzip, every message flushed as it is sent"),
), responses(
    (status = 200, description = "`metrics` and `health` every second, `visits` every five seconds, `log` batches every 100 ms (a JSON array of the newest events, at most `limit` of them; its id the last one's `seq`), `anomaly`, and `lagged` when a slow client skipped ahead", content_type = "text/event-stream", body = String),
    (status = 503, description = "as many clients as may connect are connected", body = super::rest::ErrorAnswer),
))]
pub(super) async fn events(
    State(pipeline): State<Arc<Pipeline>>,
    Query(filter): Query<LogFilter>,
    Query(params): Query<StreamParams>,
    headers: HeaderMap,
) -> Response {
    let wants_logs = params.logs.unwrap_or(true);
    let visits = match params.window.as_deref().map(Some).map(super::rest::window) {
        Some(Ok(window)) => Some(window),
        Some(Err(unknown)) => return unknown.into_response(),
        None => None,
    };
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let subscription = match pipeline.subscribe(resume_after, visits) {
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
    first.extend(
        subscription
            .visits
            .map(|report| message(sse::VISITS, &report)),
    );
    if let Some((missed_logs, gone)) = subscription.missed {
        if gone > 0 {
            first.push(message(
                sse::LAGGED,
                &serde_json::json!({ "missedEvents": gone }),
            ));
        }
        if wants_logs {
            first.extend(
                log_message(&missed_logs, &filter)
                    .map(Rendered::new)
                    .map(Arc::new),
            );
        }
    }
    let filter = StreamFilter::new(filter);
    let viewer = subscription.viewer;
    let live = BroadcastStream::new(subscription.frames).filter_map(move |received| {
        let _counted_while_connected = &viewer;
        futures::future::ready(match received {
            Ok(SseFrame::Message(message)) => Some(message),
            Ok(SseFrame::Logs(batch)) => wants_logs.then(|| batch.message_for(&filter)).flatten(),
            Ok(SseFrame::Visits(of, message)) => (Some(of) == visits).then_some(message),
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
    let comments = IntervalStream::new(keep_alive).map(|_| KEEP_ALIVE_COMMENT.clone());
    let encoding = stream_encoding(&headers);
    let gzip_header = match encoding {
        StreamEncoding::Gzip => Some(Ok(Bytes::from_static(&GZIP_STREAM_HEADER))),
        StreamEncoding::Identity => None,
    };
    let encoding_header =
        (encoding == StreamEncoding::Gzip).then_some([(header::CONTENT_ENCODING, "gzip")]);
    // A message that cannot be deflated ends the stream (the browser reconnects and resumes)
    // rather than leave a gap in it.
    let body = stream::iter(gzip_header).chain(
        stream::iter(first)
            .chain(stream::select(live, comments))
            .map(move |message| message.encoded(encoding)),
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "accept-encoding"),
            // nginx passes each frame on at once even where its site config buffers.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        encoding_header,
        Body::from_stream(body),
    )
        .into_response()
}

/// `payload` as one message, or an `error` message saying why it could not be written.
fn message<T: serde::Serialize>(event: &'static str, payload: &T) -> Arc<Rendered> {
    let message = json_message(event, payload).unwrap_or_else(|error| {
        sse_message(
            "error",
            None,
            &serde_json::json!(error.to_string()).to_string(),
        )
    });
    Arc::new(Rendered::new(message))
}

/// The comment that keeps a quiet stream open, rendered once for every client.
static KEEP_ALIVE_COMMENT: LazyLock<Arc<Rendered>> =
    LazyLock::new(|| Arc::new(Rendered::new(Bytes::from_static(b":\n\n"))));

/// gzip when the client's `Accept-Encoding` takes it (and does not refuse it with `q=0`).
fn stream_encoding(headers: &HeaderMap) -> StreamEncoding {
    let takes_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    match takes_gzip {
        true => StreamEncoding::Gzip,
        false => StreamEncoding::Identity,
    }
}
