//! The live side: metrics, a ring of recent events, and the broadcast that feeds every SSE
//! client. Events are numbered, so a reconnecting client resumes after the last one it saw,
//! and sent in batches, so a high event rate costs a few messages a second per client.

use crate::model::{
    sse, Anomaly, LiveEvent, LogEvent, LogFilter, MetricsSnapshot, Series, VisitReport, Window,
};
use crate::pipeline::anomaly::{Change, Detector};
use crate::pipeline::dead_letter::UNPROCESSABLE;
use crate::pipeline::metrics::{LiveMetrics, SeriesMetric};
use crate::pipeline::task::panic_message;
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use std::cell::RefCell;
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
/// Events queued for the live view at most, and bytes of their text; past either, ingest
/// counts them itself.
const MAX_UNRECORDED: usize = 16_384;
const MAX_UNRECORDED_BYTES: usize = 64 * 1024 * 1024;
/// Queued events at which ingest wakes the recorder before its interval is up.
const WAKE_RECORDER_AT: usize = 1_024;
/// How long the recorder sleeps when nothing wakes it: what a reader queries counts the
/// queue first, so this bounds only how long the work waits, never what a reader sees.
const RECORDER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// A consumed event as the live view keeps it: numbered, shared with the lake's rows, and
/// serialized once for every client, when the first one is sent it: at a high rate most
/// events leave the ring unsent, and with nobody listening all of them do.
#[derive(Debug)]
pub struct Logged {
    /// Its number in the order the view took events.
    pub seq: u64,
    /// The event, its long texts cut (see [`cut_for_live_view`]).
    pub event: Arc<LogEvent>,
    json: OnceLock<String>,
}

/// How [`LiveEvent`] is serialized, borrowing the event the view shares.
#[derive(Serialize)]
struct LiveEventJson<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a LogEvent,
}

impl Logged {
    fn new(seq: u64, event: Arc<LogEvent>) -> Self {
        Logged {
            seq,
            event,
            json: OnceLock::new(),
        }
    }

    /// The event as a browser receives it: [`LiveEvent`]'s JSON.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            let live = LiveEventJson {
                seq: self.seq,
                event: &self.event,
            };
            serde_json::to_string(&live).unwrap_or_else(|error| {
                // Only a serializer bug gets here: the browser still learns the number.
                tracing::error!(%error, seq = self.seq, "could not serialize an event for the live view");
                format!("{{\"seq\":{}}}", self.seq)
            })
        })
    }

    /// The event as the REST API answers it.
    pub fn live_event(&self) -> LiveEvent {
        LiveEvent {
            seq: self.seq,
            event: LogEvent::clone(&self.event),
        }
    }

    /// About what it holds: its texts, and their JSON once rendered.
    fn size(&self) -> usize {
        2 * text_bytes(&self.event) + 256
    }
}

/// One broadcast to every SSE client. Messages are rendered once, as the bytes every client
/// is sent: with ten thousand clients, rendering them for each client starved them all.
#[derive(Clone, Debug)]
pub enum SseFrame {
    /// A whole message (metrics, health, anomalies), the same for everyone.
    Message(Arc<Rendered>),
    /// The events since the last batch; each client sends the ones its filter wants.
    Logs(Arc<LogBatch>),
    /// GoAccess's report over one window; each client sends the one its page shows.
    Visits(Window, Arc<Rendered>),
}

/// How a client takes the stream: as is, or gzip (`Accept-Encoding`), which cuts the JSON
/// several-fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEncoding {
    Identity,
    Gzip,
}

/// The gzip header every gzip stream starts with; its deflate blocks follow as messages come.
/// The stream never ends normally, so no trailer is ever sent: the browser reads each block as
/// it arrives.
pub const GZIP_STREAM_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One SSE message, rendered once for every client that gets it: as is, and deflated on its
/// own (from an empty window, ending on a byte boundary), so the same bytes continue any
/// client's gzip stream whatever came before them.
#[derive(Debug)]
pub struct Rendered {
    plain: Bytes,
    deflated: OnceLock<Result<Bytes, flate2::CompressError>>,
}

impl Rendered {
    /// `message` as every client that gets it is sent it.
    pub fn new(message: Bytes) -> Self {
        Rendered {
            plain: message,
            deflated: OnceLock::new(),
        }
    }

    /// The bytes for a stream in `encoding`; deflated the first time a gzip client asks.
    pub fn encoded(&self, encoding: StreamEncoding) -> Result<Bytes, flate2::CompressError> {
        match encoding {
            StreamEncoding::Identity => Ok(self.plain.clone()),
            StreamEncoding::Gzip => self
                .deflated
                .get_or_init(|| deflate_alone(&self.plain))
                .clone(),
        }
    }
}

thread_local! {
    /// One compressor a thread, reset for every message. A new one allocates some 300 KB; one
    /// for each client's first messages, with 5 000 clients connecting, left glibc's heap at
    /// 1.6 GB where it stays at 0.3 GB with this.
    static COMPRESSOR: RefCell<flate2::Compress> =
        // Level 1: frames are small and repetitive JSON; higher levels gain little on them.
        RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false));
}

/// `message` as raw deflate blocks that need nothing before them and end with a sync flush
/// (byte-aligned, not final): they can follow any earlier blocks of a stream.
fn deflate_alone(message: &[u8]) -> Result<Bytes, flate2::CompressError> {
    COMPRESSOR.with_borrow_mut(|compress| {
        compress.reset();
        let mut out = Vec::with_capacity(message.len() / 4 + 64);
        loop {
            let read = compress.total_in() as usize;
            compress.compress_vec(&message[read..], &mut out, flate2::FlushCompress::Sync)?;
            // The flush is complete once all is read and the output had room to spare.
            if compress.total_in() as usize == message.len() && out.len() < out.capacity() {
                return Ok(Bytes::from(out));
            }
            out.reserve(out.capacity().max(64));
        }
    })
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

/// Distinct filters whose `log` messages one batch keeps for the clients that share them;
/// a client with yet another filter gets its own.
const SHARED_FILTERS: usize = 64;

/// One batch of events for every SSE client; clients with the same filter (most of them: the
/// dashboard's) share one message.
#[derive(Debug)]
pub struct LogBatch {
    logs: Vec<Arc<Logged>>,
    by_filter: Mutex<HashMap<String, Option<Arc<Rendered>>>>,
}

impl LogBatch {
    fn new(logs: Vec<Arc<Logged>>) -> Self {
        LogBatch {
            logs,
            by_filter: Mutex::new(HashMap::new()),
        }
    }

    /// The events, oldest first.
    pub fn logs(&self) -> &[Arc<Logged>] {
        &self.logs
    }

    /// The `log` message for a client with `filter`; None when no event passes it.
    pub fn message_for(&self, filter: &StreamFilter) -> Option<Arc<Rendered>> {
        if let Some(shared) = lock(&self.by_filter).get(&filter.key) {
            return shared.clone();
        }
        // Rendered outside the lock: the clients of other filters need not wait for it.
        let message = log_message(&self.logs, &filter.filter).map(|m| Arc::new(Rendered::new(m)));
        let mut by_filter = lock(&self.by_filter);
        if by_filter.len() < SHARED_FILTERS {
            return by_filter
                .entry(filter.key.clone())
                .or_insert(message)
                .clone();
        }
        message
    }
}

/// A stream client's log filter, and the key of the messages it shares with the clients of
/// the same filter.
pub struct StreamFilter {
    pub filter: LogFilter,
    key: String,
}

impl StreamFilter {
    pub fn new(filter: LogFilter) -> Self {
        let key = format!("{}&limit={}", filter.to_query(), batch_limit(&filter));
        StreamFilter { filter, key }
    }
}

/// Events one `log` message carries for `filter`: the newest its view keeps (`limit`), at most
/// [`MAX_EVENTS_PER_BATCH`]. A view that keeps 50 lines would drop the rest of a bigger batch.
fn batch_limit(filter: &LogFilter) -> usize {
    filter
        .limit
        .unwrap_or(MAX_EVENTS_PER_BATCH)
        .clamp(1, MAX_EVENTS_PER_BATCH)
}

/// The newest events of `logs` that pass `filter` (at most [`batch_limit`]) as one `log`
/// message: a JSON array, with the last event's number as its id.
pub fn log_message(logs: &[Arc<Logged>], filter: &LogFilter) -> Option<Bytes> {
    let matching: Vec<&Arc<Logged>> = logs.iter().filter(|l| filter.matches(&l.event)).collect();
    let mut newest = &matching[matching.len().saturating_sub(batch_limit(filter))..];
    let mut bytes = 0;
    if let Some(fitting) = newest.iter().rev().position(|l| {
        bytes += l.json().len() + 1;
        bytes > MAX_BATCH_BYTES
    }) {
        newest = &newest[newest.len() - fitting.max(1)..];
    }
    let last_seq = newest.last()?.seq;
    let mut data =
        String::with_capacity(newest.iter().map(|l| l.json().len() + 1).sum::<usize>() + 1);
    data.push('[');
    for (i, logged) in newest.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str(logged.json());
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
/// long they were (a megabyte message would otherwise go to every browser, many times). Only
/// such an event is copied; the rest are shared with the lake as they are.
fn cut_for_live_view(event: Arc<LogEvent>) -> Arc<LogEvent> {
    if text_bytes(&event) <= MAX_LIVE_TEXT {
        return event;
    }
    let mut event = LogEvent::clone(&event);
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
    for text in [
        &mut event.raw,
        &mut event.user_agent,
        &mut event.referrer,
        &mut event.vhost,
        &mut event.protocol,
        &mut event.query,
        &mut event.browser,
        &mut event.os,
        &mut event.device,
        &mut event.attributes,
    ]
    .into_iter()
    .flatten()
    {
        cut(text);
    }
    Arc::new(event)
}

/// Events ingest handed to the live view and not yet recorded, and the bytes of their text.
#[derive(Default)]
struct Unrecorded {
    events: Vec<(Arc<LogEvent>, Instant)>,
    bytes: usize,
}

/// The bytes of an event's texts.
fn text_bytes(event: &LogEvent) -> usize {
    let texts = [
        &event.level,
        &event.source,
        &event.method,
        &event.endpoint,
        &event.message,
    ];
    let optional = [
        &event.user_id,
        &event.session_id,
        &event.ip,
        &event.raw,
        &event.user_agent,
        &event.referrer,
        &event.vhost,
        &event.protocol,
        &event.query,
        &event.browser,
        &event.os,
        &event.device,
        &event.attributes,
    ];
    texts.iter().map(|t| t.len()).sum::<usize>()
        + optional
            .iter()
            .filter_map(|t| t.as_ref())
            .map(String::len)
            .sum::<usize>()
}

pub struct Live {
    metrics: Mutex<LiveMetrics>,
    detector: Mutex<Detector>,
    recent: Mutex<Recent>,
    recent_capacity: usize,
    /// Events waiting for the next batch; only filled while someone listens.
    pending: Mutex<Vec<Arc<Logged>>>,
    /// Events ingest handed over, with when they arrived, not yet counted nor kept: ingest only
    /// queues them, and the recorder thread counts them on the other core (any reader counts
    /// what is queued first, so nothing it reads lags).
    unrecorded: Mutex<Unrecorded>,
    /// Held while queued events are counted: batches taken in turn are counted in turn.
    recording: Mutex<()>,
    /// The recorder thread, woken when the queue fills faster than it wakes on its own.
    recorder: OnceLock<std::thread::Thread>,
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
            unrecorded: Mutex::new(Unrecorded::default()),
            recording: Mutex::new(()),
            recorder: OnceLock::new(),
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

    /// Hands a consumed event to the live view. Counting it, numbering it and rendering its
    /// JSON was two fifths of ingest's time on its one core: here it is only queued, and the
    /// recorder thread (see [`Live::start_recorder`]) does the rest.
    pub fn record(&self, event: Arc<LogEvent>) {
        let (queued, bytes) = {
            let mut unrecorded = lock(&self.unrecorded);
            unrecorded.bytes += text_bytes(&event);
            unrecorded.events.push((event, Instant::now()));
            (unrecorded.events.len(), unrecorded.bytes)
        };
        if queued >= MAX_UNRECORDED || bytes >= MAX_UNRECORDED_BYTES {
            // The recorder fell behind (or there is none): ingest waits for the view.
            self.record_queued();
        } else if queued == WAKE_RECORDER_AT {
            if let Some(recorder) = self.recorder.get() {
                recorder.unpark();
            }
        }
    }

    /// Starts the thread that counts and keeps queued events, for as long as `live` lives.
    pub fn start_recorder(live: &Arc<Live>) -> std::io::Result<()> {
        let weak = Arc::downgrade(live);
        let thread = std::thread::Builder::new()
            .name("live-recorder".to_owned())
            .spawn(move || loop {
                std::thread::park_timeout(RECORDER_INTERVAL);
                match weak.upgrade() {
                    Some(live) => live.record_queued(),
                    None => return,
                }
            })?;
        let _ = live.recorder.set(thread.thread().clone());
        Ok(())
    }

    /// Counts the queued events into the metrics, numbers them, and keeps them for the stream
    /// and the recent logs, in the order ingest handed them over.
    fn record_queued(&self) {
        let _turn = lock(&self.recording);
        let queued = std::mem::take(&mut *lock(&self.unrecorded)).events;
        if queued.is_empty() {
            return;
        }
        {
            let mut metrics = lock(&self.metrics);
            for (event, arrived) in &queued {
                // Off ingest's guard against panics, this thread keeps its own: one event the
                // metrics fail on must not stop the live view.
                let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    metrics.record(event, *arrived)
                }));
                if let Err(panic) = counted {
                    let failure = panic_message(panic);
                    tracing::error!(%failure, endpoint = %event.endpoint, "the live metrics failed on an event; counted as unprocessable");
                    metrics.record_malformed(UNPROCESSABLE);
                }
            }
        }
        let listened = self.frames.receiver_count() > 0;
        for (event, _) in queued {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let logged = Arc::new(Logged::new(seq, cut_for_live_view(event)));
            if listened {
                let mut pending = lock(&self.pending);
                if pending.len() >= 2 * MAX_PENDING_EVENTS {
                    pending.drain(..MAX_PENDING_EVENTS);
                }
                pending.push(logged.clone());
            }
            lock(&self.recent).keep(logged, self.recent_capacity);
        }
    }

    /// Sends the events gathered since the last call as one batch.
    pub fn flush_logs(&self) {
        self.record_queued();
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
        self.record_queued();
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
        self.record_queued();
        lock(&self.metrics).snapshot(Instant::now(), Utc::now(), detail)
    }

    /// GoAccess's report over `window`.
    pub fn visits(&self, window: Window) -> VisitReport {
        self.record_queued();
        lock(&self.metrics).visits(window, Instant::now())
    }

    pub fn series(&self, metric: SeriesMetric, window: Window, step_secs: i64) -> Series {
        self.record_queued();
        lock(&self.metrics).series(metric, window, step_secs, Instant::now())
    }

    /// Newest first.
    pub fn recent_logs(&self, filter: &LogFilter) -> Vec<LiveEvent> {
        self.record_queued();
        let limit = filter.limit.unwrap_or(DEFAULT_LOG_LIMIT);
        lock(&self.recent)
            .events
            .iter()
            .rev()
            .filter(|l| filter.matches(&l.event))
            .take(limit)
            .map(|l| l.live_event())
            .collect()
    }

    /// The kept events after `seq`, oldest first, and how many events after `seq` are no
    /// longer kept (a reconnecting client missed them for good).
    pub fn logs_after(&self, seq: u64) -> (Vec<Arc<Logged>>, u64) {
        self.record_queued();
        let recent = &lock(&self.recent).events;
        let oldest_kept = recent
            .front()
            .map_or(self.next_seq.load(Ordering::Relaxed), |l| l.seq);
        let missed = oldest_kept.saturating_sub(seq.saturating_add(1));
        let logs = recent.iter().filter(|l| l.seq > seq).cloned().collect();
        (logs, missed)
    }

    /// Sends one JSON message to every SSE client; serializes nothing when nobody listens.
    pub fn publish<T: Serialize>(&self, event: &'static str, payload: &T) {
        self.publish_as(event, payload, SseFrame::Message);
    }

    /// Renders GoAccess's report over every window, once each, for the clients showing it.
    pub fn publish_visits(&self) {
        for window in Window::ALL {
            if self.frames.receiver_count() == 0 {
                return;
            }
            let visits = self.visits(window);
            self.publish_as(sse::VISITS, &visits, |message| {
                SseFrame::Visits(window, message)
            });
        }
    }

    fn publish_as<T: Serialize>(
        &self,
        event: &'static str,
        payload: &T,
        frame: impl FnOnce(Arc<Rendered>) -> SseFrame,
    ) {
        if self.frames.receiver_count() == 0 {
            return;
        }
        match json_message(event, payload) {
            Ok(message) => {
                let _ = self.frames.send(frame(Arc::new(Rendered::new(message))));
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

    fn event(endpoint: &str, status: u16) -> Arc<LogEvent> {
        let json = format!(
            r#"{{"endpoint":"{endpoint}","status":{status},"message":"hello {endpoint}"}}"#
        );
        Arc::new(decode(json.as_bytes(), Utc::now()).unwrap())
    }

    #[test]
    fn queued_events_are_counted_in_order_by_the_recorder_or_by_the_first_reader() {
        let live = Arc::new(Live::new(100));
        // Past the queue's bound ingest counts them itself; readers count the rest first.
        let events = MAX_UNRECORDED + 10;
        for i in 0..events {
            live.record(event(&format!("/e{i}"), 200));
        }
        assert_eq!(
            live.metrics(Window::SinceStart).total_requests,
            events as u64
        );
        let newest = live.recent_logs(&LogFilter::default());
        assert_eq!(newest[0].seq, events as u64);
        assert_eq!(newest[0].event.endpoint, format!("/e{}", events - 1));
        assert!(newest.windows(2).all(|pair| pair[0].seq == pair[1].seq + 1));

        Live::start_recorder(&live).unwrap();
        live.record(event("/later", 200));
        let waited = Instant::now();
        while !lock(&live.unrecorded).events.is_empty() {
            assert!(waited.elapsed().as_secs() < 10, "the recorder never came");
            std::thread::sleep(RECORDER_INTERVAL);
        }
        assert_eq!(
            live.recent_logs(&LogFilter::default())[0].event.endpoint,
            "/later"
        );
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
            batch.logs().iter().map(|l| l.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        live.flush_logs();
        assert!(frames.try_recv().is_err(), "no empty batches");

        // The ring keeps 3: a client that saw seq 1 missed 2 and 3 for good.
        let (logs, missed) = live.logs_after(1);
        assert_eq!(logs.iter().map(|l| l.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(missed, 1);
        let (logs, missed) = live.logs_after(4);
        assert_eq!(
            logs.iter()
                .map(|l| l.event.endpoint.as_str())
                .collect::<Vec<_>>(),
            ["/e4"]
        );
        assert_eq!(missed, 0);
    }

    #[test]
    fn events_go_out_as_their_live_event_and_only_a_long_one_is_copied_to_be_cut() {
        let short = event("/short", 200);
        let logged = Logged::new(7, cut_for_live_view(Arc::clone(&short)));
        assert!(Arc::ptr_eq(&logged.event, &short), "shared with the lake");
        assert_eq!(
            logged.json(),
            serde_json::to_string(&logged.live_event()).unwrap()
        );
        assert_eq!(
            serde_json::from_str::<LiveEvent>(logged.json()).unwrap(),
            LiveEvent {
                seq: 7,
                event: LogEvent::clone(&short)
            }
        );

        let mut long = LogEvent::clone(&short);
        long.user_agent = Some("é".repeat(MAX_LIVE_TEXT));
        let long = Arc::new(long);
        let cut = cut_for_live_view(Arc::clone(&long));
        let agent = cut.user_agent.as_deref().unwrap();
        assert!(agent.len() < MAX_LIVE_TEXT + 100, "{}", agent.len());
        assert!(agent.ends_with(&format!(
            "[{} bytes in all; the lake has every one]",
            2 * MAX_LIVE_TEXT
        )));
        assert_eq!(
            long.user_agent.as_deref().unwrap().len(),
            2 * MAX_LIVE_TEXT,
            "the lake's copy whole"
        );
        assert_eq!(cut.message, long.message);
    }

    #[test]
    fn messages_deflated_alone_continue_any_gzip_stream_in_any_order() {
        use std::io::Write;
        let first = Rendered::new(sse_message("metrics", None, &"{\"a\":1}".repeat(500)));
        let second = Rendered::new(sse_message("log", Some(7), "[]"));
        let inflate = |parts: &[&Rendered]| {
            let mut inflater = flate2::write::GzDecoder::new(Vec::new());
            inflater.write_all(&GZIP_STREAM_HEADER).unwrap();
            for part in parts {
                let deflated = part.encoded(StreamEncoding::Gzip).unwrap();
                inflater.write_all(&deflated).unwrap();
            }
            // No trailer ever comes: what was sent so far must read whole.
            inflater.flush().unwrap();
            String::from_utf8(inflater.get_ref().clone()).unwrap()
        };
        let plain = |r: &Rendered| {
            String::from_utf8(r.encoded(StreamEncoding::Identity).unwrap().to_vec()).unwrap()
        };
        assert_eq!(
            inflate(&[&first, &second, &first]),
            plain(&first) + &plain(&second) + &plain(&first)
        );
        assert_eq!(inflate(&[&second]), plain(&second));
        assert!(first.encoded(StreamEncoding::Gzip).unwrap().len() < plain(&first).len() / 10);
    }

    #[tokio::test]
    async fn clients_of_one_filter_share_a_message_that_keeps_their_limits_newest() {
        let live = Live::new(100);
        let (mut frames, _client) = live.subscribe(1).unwrap();
        for i in 0..5 {
            live.record(event(&format!("/e{i}"), if i == 4 { 503 } else { 200 }));
        }
        live.flush_logs();
        let SseFrame::Logs(batch) = frames.recv().await.unwrap() else {
            panic!("expected a log batch");
        };
        let newest_two = || {
            StreamFilter::new(LogFilter {
                limit: Some(2),
                ..LogFilter::default()
            })
        };
        let (one, other) = (
            batch.message_for(&newest_two()).unwrap(),
            batch.message_for(&newest_two()).unwrap(),
        );
        assert!(Arc::ptr_eq(&one, &other), "rendered once for both");
        let text = one.encoded(StreamEncoding::Identity).unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(text.starts_with("event: log\nid: 5\n"), "{text}");
        assert!(text.contains("/e3") && text.contains("/e4") && !text.contains("/e2"));
        let everything = StreamFilter::new(LogFilter::default());
        let all = batch.message_for(&everything).unwrap();
        assert!(!Arc::ptr_eq(&one, &all));
        assert!(
            String::from_utf8_lossy(&all.encoded(StreamEncoding::Identity).unwrap())
                .contains("/e0")
        );
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
