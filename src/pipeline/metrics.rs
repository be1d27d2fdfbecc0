//! Sliding-window metrics over consumed events, by arrival time.

use crate::model::{LogEvent, MetricsSnapshot};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

const RATE_WINDOW_SECS: u64 = 10;
const LATENCY_WINDOW_SECS: u64 = 60;
const SESSION_WINDOW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Default, Clone, Copy)]
struct SecondBucket {
    requests: u64,
    errors: u64,
    timed: u64,
    response_time_sum: f64,
}

/// Everything the live metrics are computed from; `now` is passed in so time can be tested.
#[derive(Debug)]
pub struct LiveMetrics {
    started: Instant,
    /// (second since start, totals of that second), oldest first, at most a minute's worth.
    seconds: VecDeque<(u64, SecondBucket)>,
    session_last_seen: HashMap<String, Instant>,
    total_requests: u64,
    total_errors: u64,
    data_processed: u64,
    malformed: BTreeMap<String, u64>,
}

impl LiveMetrics {
    pub fn new(started: Instant) -> Self {
        LiveMetrics {
            started,
            seconds: VecDeque::with_capacity(LATENCY_WINDOW_SECS as usize + 1),
            session_last_seen: HashMap::new(),
            total_requests: 0,
            total_errors: 0,
            data_processed: 0,
            malformed: BTreeMap::new(),
        }
    }

    /// Counts the bytes of one consumed message, decodable or not.
    pub fn record_bytes(&mut self, bytes: usize) {
        self.data_processed += bytes as u64;
    }

    pub fn record_malformed(&mut self, reason: &str) {
        *self.malformed.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn record(&mut self, event: &LogEvent, now: Instant) {
        let error = event.is_error();
        self.total_requests += 1;
        self.total_errors += u64::from(error);
        let bucket = self.bucket_for(now);
        bucket.requests += 1;
        bucket.errors += u64::from(error);
        if let Some(ms) = event.response_time {
            bucket.timed += 1;
            bucket.response_time_sum += ms;
        }
        if let Some(session) = &event.session_id {
            self.session_last_seen.insert(session.clone(), now);
        }
    }

    fn second_of(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    fn bucket_for(&mut self, now: Instant) -> &mut SecondBucket {
        let second = self.second_of(now);
        if self.seconds.back().is_none_or(|(s, _)| *s < second) {
            self.seconds.push_back((second, SecondBucket::default()));
        }
        while self
            .seconds
            .front()
            .is_some_and(|(s, _)| *s + LATENCY_WINDOW_SECS < second)
        {
            self.seconds.pop_front();
        }
        &mut self
            .seconds
            .back_mut()
            .expect("a bucket was just ensured")
            .1
    }

    /// Totals of the completed seconds in the last `window` seconds, and how many seconds that covers.
    fn window(&self, now: Instant, window: u64) -> (SecondBucket, u64) {
        let current = self.second_of(now);
        let covered = window.min(current).max(1);
        let from = current.saturating_sub(covered);
        let mut sum = SecondBucket::default();
        for (_, b) in self
            .seconds
            .iter()
            .filter(|(s, _)| *s >= from && *s < current)
        {
            sum.requests += b.requests;
            sum.errors += b.errors;
            sum.timed += b.timed;
            sum.response_time_sum += b.response_time_sum;
        }
        (sum, covered)
    }

    pub fn snapshot(&mut self, now: Instant, wall_clock: DateTime<Utc>) -> MetricsSnapshot {
        self.session_last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) <= SESSION_WINDOW);
        let (rate, rate_secs) = self.window(now, RATE_WINDOW_SECS);
        let (minute, _) = self.window(now, LATENCY_WINDOW_SECS);
        MetricsSnapshot {
            events_per_sec: rate.requests as f64 / rate_secs as f64,
            error_rate: percent(minute.errors, minute.requests),
            avg_response_time: if minute.timed == 0 {
                0.0
            } else {
                minute.response_time_sum / minute.timed as f64
            },
            active_sessions: self.session_last_seen.len() as u64,
            data_processed: self.data_processed,
            total_requests: self.total_requests,
            total_errors: self.total_errors,
            malformed: self.malformed.clone(),
            last_update: wall_clock,
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::decode::decode;

    fn event(status: u16, response_time: f64, session: &str) -> LogEvent {
        let json = format!(
            r#"{{"timestamp":"2026-11-29T10:00:00Z","endpoint":"/api/items","status":{status},"responseTime":{response_time},"sessionId":"{session}"}}"#
        );
        decode(json.as_bytes(), Utc::now()).unwrap()
    }

    #[test]
    fn rates_and_averages_come_from_completed_seconds() {
        let t0 = Instant::now();
        let mut m = LiveMetrics::new(t0);
        for second in 0..10u64 {
            let at = t0 + Duration::from_millis(second * 1000 + 500);
            for i in 0..20 {
                let status = if i < 2 { 500 } else { 200 };
                m.record(&event(status, 100.0 + i as f64, &format!("s{i}")), at);
            }
        }
        // 0.1 s into second 10: seconds 0..=9 are complete.
        let s = m.snapshot(t0 + Duration::from_millis(10_100), Utc::now());
        assert_eq!(s.total_requests, 200);
        assert_eq!(s.total_errors, 20);
        assert_eq!(s.events_per_sec, 20.0);
        assert_eq!(s.error_rate, 10.0);
        assert!((s.avg_response_time - 109.5).abs() < 1e-9);
        assert_eq!(s.active_sessions, 20);
    }

    #[test]
    fn old_seconds_and_sessions_leave_the_windows() {
        let t0 = Instant::now();
        let mut m = LiveMetrics::new(t0);
        m.record(&event(503, 900.0, "old"), t0);
        let later = t0 + Duration::from_secs(6 * 60);
        m.record(&event(200, 10.0, "new"), later);
        let s = m.snapshot(later + Duration::from_secs(1), Utc::now());
        assert_eq!(s.total_requests, 2, "totals are since start");
        assert_eq!(s.error_rate, 0.0, "the 503 is older than a minute");
        assert_eq!(s.avg_response_time, 10.0);
        assert_eq!(s.active_sessions, 1);
        assert_eq!(s.events_per_sec, 0.1);
    }

    #[test]
    fn malformed_messages_are_counted_by_reason() {
        let mut m = LiveMetrics::new(Instant::now());
        m.record_malformed("invalid_json");
        m.record_malformed("invalid_json");
        m.record_malformed("not_utf8");
        m.record_bytes(42);
        let s = m.snapshot(Instant::now(), Utc::now());
        assert_eq!(s.malformed.get("invalid_json"), Some(&2));
        assert_eq!(s.malformed.get("not_utf8"), Some(&1));
        assert_eq!(s.data_processed, 42);
        assert_eq!(s.total_requests, 0);
    }
}
