//! `GET /events`: the live stream. Current metrics and health at once, then every frame the
//! pipeline publishes; log batches keep to the query's filters, and with `Last-Event-ID` the
//! stream first replays the kept events the client missed.

use crate::model::{sse, LogFilter};
use crate::pipeline::live::{logs_json, LogsJson, SseFrame};
use crate::pipeline::Pipeline;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

/// What a client wants of the stream besides its log filter.
#[derive(Deserialize)]
pub(super) struct StreamParams {
    /// `false` for a page that shows no log lines: no `log` frames at all.
    logs: Option<bool>,
}

pub(super) async fn events(
    State(pipeline): State<Arc<Pipeline>>,
    Query(filter): Query<LogFilter>,
    Query(params): Query<StreamParams>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let wants_logs = params.logs.unwrap_or(true);
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let subscription = pipeline.subscribe(resume_after);
    let mut first = vec![
        frame(sse::METRICS, &subscription.metrics),
        frame(sse::HEALTH, &subscription.health),
    ];
    if let Some((missed_logs, gone)) = subscription.missed {
        if gone > 0 {
            first.push(frame(
                sse::LAGGED,
                &serde_json::json!({ "missedEvents": gone }),
            ));
        }
        if wants_logs {
            first.extend(logs_json(&missed_logs, &filter).map(log_message));
        }
    }
    let viewer = subscription.viewer;
    let live = BroadcastStream::new(subscription.frames).filter_map(move |received| {
        let _counted_while_connected = &viewer;
        futures::future::ready(match received {
            Ok(SseFrame::Json { event, data }) => Some(Event::default().event(event).data(&*data)),
            Ok(SseFrame::Logs(batch)) => wants_logs
                .then(|| batch.json_for(&filter))
                .flatten()
                .map(log_message),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => Some(frame(
                sse::LAGGED,
                &serde_json::json!({ "skippedFrames": skipped }),
            )),
        })
    });
    Sse::new(stream::iter(first).chain(live).map(Ok)).keep_alive(KeepAlive::default())
}

/// One `log` message: the events' JSON array, with the last one's number as its id.
fn log_message((data, last_seq): LogsJson) -> Event {
    Event::default()
        .event(sse::LOG)
        .id(last_seq.to_string())
        .data(&*data)
}

fn frame<T: serde::Serialize>(name: &'static str, payload: &T) -> Event {
    Event::default()
        .event(name)
        .json_data(payload)
        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
}
