//! The live side: metrics, a ring of recent events, and the broadcast that feeds every SSE
//! client. Events are numbered, so a reconnecting client resumes after the last one it saw,
//! and sent in batches, so a high event rate costs a few messages a second per client.

use crate::model::{sse, Anomaly, LiveEvent, LogEvent, LogFilter, MetricsSnapshot, Series, Window};
use crate::pipeline::anomaly::{Change, Detector};
use crate::pipeline::metrics::{LiveMetrics, SeriesMetric};
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;
use tokio::sync::broadcast;

/// Frames a slow SSE client may fall behind (about 20 s of them) before it skips ahead. The
/// frames are shared, so with [`MAX_BATCH_BYTES`] this bounds what every client that stopped
/// reading pins together: some 64 MiB, however many they are.
const BROADCAST_CAPACITY: usize = 256;
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// Events one `log` message carries at most: at 50 000 events/s a browser still gets a
/// screenful ten times a second, not the firehose.
const MAX_EVENTS_PER_BATCH: usize = 500;
/// Bytes one `log` message carries at most. With the frames the broadcast holds, this bounds
/// what clients that stopped reading can pin, however many they are.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Events gathered for one batch at most; at higher rates the newest are sent.
const MAX_PENDING_EVENTS: usize = 5_000;
/// Bytes of kept recent events at most, whatever their number.
const MAX_RECENT_BYTES: usize = 64 * 1024 * 1024;
/// A text field of an event is cut to this for the live view; the lake keeps it whole.
const MAX_LIVE_TEXT: usize = 4096;

/// A consumed event as the live view keeps it: numbered, and serialized once for every client.
#[derive(Debug)]
pub struct Logged {
    pub live: LiveEvent,
    pub json: String,
}

impl Logged {
    /// About what it holds: the event and its JSON.
    fn size(&self) -> usize {
        2 * self.json.len()
    }
}

/// One broadcast to every SSE client. Messages are rendered once, as the bytes every client
/// is sent: with ten thousand clients, rendering them for each client starved them all.
#[derive(Clone, Debug)]
pub enum SseFrame {
    /// A whole message (metrics, health, anomalies), the same for everyone.
    Message(Bytes),
    /// The events since the last batch; each client sends the ones its filter wants.
    Logs(Arc<LogBatch>),
}

/// One SSE message on the wire: `event`, the `id` a client resumes after, and `data`, which
/// is compact JSON and so one line.
pub fn sse_message(event: &str, id: Option<u64>, data: &str) -> Bytes {
    let id = id.map_or(String::new(), |id| format!("id: {id}\n"));
    Bytes::from(format!("event: {event}\n{id}data: {data}\n\n"))
}

/// `payload` as one SSE message named `event`.
pub fn json_message<T: Serialize>(event: &str, payload: &T) -> serde_json::Result<Bytes> {
    Ok(sse_message(event, None, &serde_json::to_string(payload)?))
}

/// One batch of events for every SSE client; most filter nothing and share one message.
#[derive(Debug)]
pub struct LogBatch {
    logs: Vec<Arc<Logged>>,
    for_everyone: OnceLock<Option<Bytes>>,
}

impl LogBatch {
    fn new(logs: Vec<Arc<Logged>>) -> Self {
        LogBatch {
            logs,
            for_everyone: OnceLock::new(),
        }
    }

    /// The events, oldest first.
    pub fn logs(&self) -> &[Arc<Logged>] {
        &self.logs
    }

    /// The `log` message for a client with `filter`; None when no event passes it.
    pub fn message_for(&self, filter: &LogFilter) -> Option<Bytes> {
        match filter.passes_everything() {
            true => self
                .for_everyone
                .get_or_init(|| log_message(&self.logs, filter))
                .clone(),
            false => log_message(&self.logs, filter),
        }
    }
}

/// The newest events of `logs` that pass `filter` (at most [`MAX_EVENTS_PER_BATCH`]) as one
/// `log` message: a JSON array, with the last event's number as its id.
pub fn log_message(logs: &[Arc<Logged>], filter: &LogFilter) -> Option<Bytes> {
    let matching: Vec<&Arc<Logged>> = logs
        .iter()
        .filter(|l| filter.matches(&l.live.event))
        .collect();
    let mut newest = &matching[matching.len().saturating_sub(MAX_EVENTS_PER_BATCH)..];
    let mut bytes = 0;
    if let Some(fitting) = newest.iter().rev().position(|l| {
        bytes += l.json.len() + 1;
        bytes > MAX_BATCH_BYTES
    }) {
        newest = &newest[newest.len() - fitting.max(1)..];
    }
    let last_seq = newest.last()?.live.seq;
    let mut data =
        String::with_capacity(newest.iter().map(|l| l.json.len() + 1).sum::<usize>() + 1);
    data.push('[');
    for (i, logged) in newest.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str(&logged.json);
    }
    data.push(']');
    Some(sse_message(sse::LOG, Some(last_seq), &data))
}

/// The recent events, bounded in number and in bytes.
#[derive(Default)]
struct Recent {
    events: VecDeque<Arc<Logged>>,
    bytes: usize,
}

impl Recent {
    fn keep(&mut self, logged: Arc<Logged>, capacity: usize) {
        self.bytes += logged.size();
        self.events.push_back(logged);
        while self.events.len() > capacity || self.bytes > MAX_RECENT_BYTES {
            match self.events.pop_front() {
                Some(oldest) => self.bytes -= oldest.size(),
                None => break,
            }
        }
    }
}

/// The event as the live view shows it: text fields past [`MAX_LIVE_TEXT`] cut, saying how
/// long they were (a megabyte message would otherwise go to every browser, many times).
fn cut_for_live_view(mut event: LogEvent) -> LogEvent {
    let cut = |text: &mut String| {
        if text.len() > MAX_LIVE_TEXT {
            let mut end = MAX_LIVE_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let length = text.len();
            text.truncate(end);
            text.push_str(&format!(
                "… [{length} bytes in all; the lake has every one]"
            ));
        }
    };
    cut(&mut event.message);
    if let Some(raw) = event.raw.as_mut() {
        cut(raw);
    }
    event
}

pub struct Live {
    metrics: Mutex<LiveMetrics>,
    detector: Mutex<Detector>,
    recent: Mutex<Recent>,
    recent_capacity: usize,
    /// Events waiting for the next batch; only filled while someone listens.
    pending: Mutex<Vec<Arc<Logged>>>,
    next_seq: AtomicU64,
    frames: broadcast::Sender<SseFrame>,
    sse_clients: Arc<AtomicU64>,
    /// The next offset of each Kafka partition the view has not seen: the writer and the
    /// follower both read a partition while it changes hands, and the writer reads again what
    /// the table had not committed.
    unseen_from: Mutex<HashMap<i32, i64>>,
}

/// Every place among the SSE clients is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} live-stream clients are connected, the most this server takes; try again shortly")]
pub struct LiveFull(pub u64);

/// Counts one connected SSE client for as long as it lives.
pub struct SseClientGuard(Arc<AtomicU64>);

impl Drop for SseClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the live view down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    pub fn new(recent_capacity: usize) -> Self {
        Live {
            metrics: Mutex::new(LiveMetrics::default()),
            detector: Mutex::new(Detector::default()),
            recent: Mutex::new(Recent::default()),
            recent_capacity,
            pending: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(1),
            frames: broadcast::channel(BROADCAST_CAPACITY).0,
            sse_clients: Arc::new(AtomicU64::new(0)),
            unseen_from: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the message at `offset` of `partition` is new to the view, counting it seen.
    pub fn first_sight(&self, partition: i32, offset: i64) -> bool {
        let mut unseen_from = lock(&self.unseen_from);
        let next = unseen_from.entry(partition).or_insert(i64::MIN);
        let first = offset >= *next;
        if first {
            *next = offset.saturating_add(1);
        }
        first
    }

    /// The first offset of `partition` the view has not seen, if it has seen any.
    pub fn next_unseen(&self, partition: i32) -> Option<i64> {
        lock(&self.unseen_from).get(&partition).copied()
    }

    pub fn record_bytes(&self, bytes: usize) {
        lock(&self.metrics).record_bytes(bytes);
    }

    pub fn record_malformed(&self, reason: &str) {
        lock(&self.metrics).record_malformed(reason);
    }

    pub fn record(&self, event: LogEvent) {
        lock(&self.metrics).record(&event, Instant::now());
        let live = LiveEvent {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            event: cut_for_live_view(event),
        };
        let json = match serde_json::to_string(&live) {
            Ok(json) => json,
            Err(error) => {
                tracing::error!(%error, "could not serialize an event for the live view");
                return;
            }
        };
        let logged = Arc::new(Logged { live, json });
        if self.frames.receiver_count() > 0 {
            let mut pending = lock(&self.pending);
            if pending.len() >= 2 * MAX_PENDING_EVENTS {
                pending.drain(..MAX_PENDING_EVENTS);
            }
            pending.push(logged.clone());
        }
        lock(&self.recent).keep(logged, self.recent_capacity);
    }

    /// Sends the events gathered since the last call as one batch.
    pub fn flush_logs(&self) {
        let mut batch = std::mem::take(&mut *lock(&self.pending));
        batch.drain(..batch.len().saturating_sub(MAX_PENDING_EVENTS));
        if !batch.is_empty() {
            let _ = self
                .frames
                .send(SseFrame::Logs(Arc::new(LogBatch::new(batch))));
        }
    }

    /// Judges the buckets event time has left behind; every change goes to the SSE clients,
    /// and the openings and endings are returned (for alerts).
    pub fn detect_anomalies(&self) -> Vec<Anomaly> {
        let closed = lock(&self.metrics).close_buckets(Instant::now());
        let mut detector = lock(&self.detector);
        let mut notable = Vec::new();
        for bucket in &closed {
            for (change, anomaly) in detector.observe(bucket) {
                self.publish(sse::ANOMALY, &anomaly);
                if change != Change::Continued {
                    notable.push(anomaly);
                }
            }
        }
        notable
    }

    /// Open anomalies first, then ended ones, newest first.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        lock(&self.detector).anomalies()
    }

    pub fn malformed(&self) -> BTreeMap<String, u64> {
        lock(&self.metrics).malformed().clone()
    }

    /// Every window, with the breakdowns (endpoints, sources, status) for `detail`.
    pub fn metrics(&self, detail: Window) -> MetricsSnapshot {
        lock(&self.metrics).snapshot(Instant::now(), Utc::now(), detail)
    }

    pub fn series(&self, metric: SeriesMetric, window: Window, step_secs: i64) -> Series {
        lock(&self.metrics).series(metric, window, step_secs, Instant::now())
    }

    /// Newest first.
    pub fn recent_logs(&self, filter: &LogFilter) -> Vec<LiveEvent> {
        let limit = filter.limit.unwrap_or(DEFAULT_LOG_LIMIT);
        lock(&self.recent)
            .events
            .iter()
            .rev()
            .filter(|l| filter.matches(&l.live.event))
            .take(limit)
            .map(|l| l.live.clone())
            .collect()
    }

    /// The kept events after `seq`, oldest first, and how many events after `seq` are no
    /// longer kept (a reconnecting client missed them for good).
    pub fn logs_after(&self, seq: u64) -> (Vec<Arc<Logged>>, u64) {
        let recent = &lock(&self.recent).events;
        let oldest_kept = recent
            .front()
            .map_or(self.next_seq.load(Ordering::Relaxed), |l| l.live.seq);
        let missed = oldest_kept.saturating_sub(seq.saturating_add(1));
        let logs = recent
            .iter()
            .filter(|l| l.live.seq > seq)
            .cloned()
            .collect();
        (logs, missed)
    }

    /// Sends one JSON message to every SSE client; serializes nothing when nobody listens.
    pub fn publish<T: Serialize>(&self, event: &'static str, payload: &T) {
        if self.frames.receiver_count() == 0 {
            return;
        }
        match json_message(event, payload) {
            Ok(message) => {
                let _ = self.frames.send(SseFrame::Message(message));
            }
            Err(error) => tracing::error!(%error, event, "could not serialize an SSE frame"),
        }
    }

    /// A place among the SSE clients, if fewer than `max_clients` hold one: every client
    /// holds a socket and a place in the broadcast, so their number is bounded.
    pub fn subscribe(
        &self,
        max_clients: u64,
    ) -> Result<(broadcast::Receiver<SseFrame>, SseClientGuard), LiveFull> {
        self.sse_clients
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max_clients).then_some(n + 1)
            })
            .map_err(|_| LiveFull(max_clients))?;
        Ok((
            self.frames.subscribe(),
            SseClientGuard(self.sse_clients.clone()),
        ))
    }

    pub fn sse_clients(&self) -> u64 {
        self.sse_clients.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::decode::decode;

    fn event(endpoint: &str, status: u16) -> LogEvent {
        let json = format!(
            r#"{{"endpoint":"{endpoint}","status":{status},"message":"hello {endpoint}"}}"#
        );
        decode(json.as_bytes(), Utc::now()).unwrap()
    }

    #[tokio::test]
    async fn batches_reach_subscribers_and_resumption_knows_what_was_missed() {
        let live = Live::new(3);
        let (mut frames, _client) = live.subscribe(1).unwrap();
        assert_eq!(
            live.subscribe(1).err(),
            Some(LiveFull(1)),
            "one place, taken"
        );
        for i in 0..5 {
            live.record(event(&format!("/e{i}"), if i == 4 { 503 } else { 200 }));
        }
        live.flush_logs();
        let SseFrame::Logs(batch) = frames.recv().await.unwrap() else {
            panic!("expected a log batch");
        };
        assert_eq!(
            batch.logs().iter().map(|l| l.live.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        live.flush_logs();
        assert!(frames.try_recv().is_err(), "no empty batches");

        // The ring keeps 3: a client that saw seq 1 missed 2 and 3 for good.
        let (logs, missed) = live.logs_after(1);
        assert_eq!(
            logs.iter().map(|l| l.live.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(missed, 1);
        let (logs, missed) = live.logs_after(4);
        assert_eq!(
            logs.iter()
                .map(|l| l.live.event.endpoint.as_str())
                .collect::<Vec<_>>(),
            ["/e4"]
        );
        assert_eq!(missed, 0);
    }

    #[test]
    fn filters_round_trip_through_the_url() {
        let filter = LogFilter {
            level: Some("ERROR".into()),
            q: Some("a b&c".into()),
            source: Some(" ".into()),
            from: Some(Utc::now()),
            ..LogFilter::default()
        };
        let query = filter.to_query();
        assert!(!query.contains("source"), "{query}");
        let pairs: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        let back = LogFilter::from_query(|name| pairs.get(name).cloned());
        assert_eq!(back.level, filter.level);
        assert_eq!(back.q, filter.q);
        assert_eq!(
            back.from.map(|t| t.timestamp_micros()),
            filter.from.map(|t| t.timestamp_micros())
        );
    }

    #[test]
    fn filters_by_status_class_exact_status_and_text() {
        let e = event("/api/Orders", 503);
        let f = |status: Option<&str>, q: Option<&str>| LogFilter {
            status: status.map(Into::into),
            q: q.map(Into::into),
            ..LogFilter::default()
        };
        assert!(f(Some("5xx"), None).matches(&e));
        assert!(f(Some("503"), Some("orders")).matches(&e));
        assert!(f(Some(" "), Some("HELLO")).matches(&e));
        assert!(!f(Some("4xx"), None).matches(&e));
        assert!(!f(Some("500"), None).matches(&e));
        assert!(!f(None, Some("payments")).matches(&e));
        assert!(!f(Some("abc"), None).matches(&e));
    }
}
