//! The live side: metrics, a ring of recent events, and the broadcast that feeds every SSE client.

use crate::model::{LogEvent, LogFilter, MetricsSnapshot, Series, Window};
use crate::pipeline::metrics::{LiveMetrics, SeriesMetric};
use chrono::Utc;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::broadcast;

/// Frames a slow SSE client may fall behind before it skips ahead.
const BROADCAST_CAPACITY: usize = 4096;
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// One SSE message, serialized once for all clients.
#[derive(Clone, Debug)]
pub struct SseFrame {
    pub event: &'static str,
    pub data: Arc<str>,
}

pub struct Live {
    metrics: Mutex<LiveMetrics>,
    recent: Mutex<VecDeque<LogEvent>>,
    recent_capacity: usize,
    frames: broadcast::Sender<SseFrame>,
    sse_clients: Arc<AtomicU64>,
}

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
            recent: Mutex::new(VecDeque::with_capacity(recent_capacity)),
            recent_capacity,
            frames: broadcast::channel(BROADCAST_CAPACITY).0,
            sse_clients: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn record_bytes(&self, bytes: usize) {
        lock(&self.metrics).record_bytes(bytes);
    }

    pub fn record_malformed(&self, reason: &str) {
        lock(&self.metrics).record_malformed(reason);
    }

    pub fn record(&self, event: LogEvent) {
        lock(&self.metrics).record(&event, Instant::now());
        self.publish(crate::model::sse::LOG, &event);
        let mut recent = lock(&self.recent);
        if recent.len() == self.recent_capacity {
            recent.pop_front();
        }
        recent.push_back(event);
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
    pub fn recent_logs(&self, filter: &LogFilter) -> Vec<LogEvent> {
        let limit = filter.limit.unwrap_or(DEFAULT_LOG_LIMIT);
        lock(&self.recent)
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Sends one message to every SSE client; serializes nothing when nobody listens.
    pub fn publish<T: Serialize>(&self, event: &'static str, payload: &T) {
        if self.frames.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(payload) {
            Ok(json) => {
                let _ = self.frames.send(SseFrame {
                    event,
                    data: json.into(),
                });
            }
            Err(error) => tracing::error!(%error, event, "could not serialize an SSE frame"),
        }
    }

    pub fn subscribe(&self) -> (broadcast::Receiver<SseFrame>, SseClientGuard) {
        self.sse_clients.fetch_add(1, Ordering::Relaxed);
        (
            self.frames.subscribe(),
            SseClientGuard(self.sse_clients.clone()),
        )
    }

    pub fn sse_clients(&self) -> u64 {
        self.sse_clients.load(Ordering::Relaxed)
    }
}
