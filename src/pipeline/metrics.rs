//! Metrics over consumed events, by event time: 10-second buckets for the last hour plus a
//! since-start total. Response times go into DDSketches, which merge across buckets, so every
//! window's percentiles come from the same data with a bounded (1 %) relative error.

use crate::model::{
    EndpointRanking, EndpointStats, KeyHits, LogEvent, MetricsSnapshot, PanelRows, Percentiles,
    Series, SeriesPoint, TimelinePoint, VisitReport, Window, WindowStats, ERROR_DEFINITION,
};
use crate::visits::{is_static_file, makes_a_visitor, referring_site, Panel};
use cardinality_estimator::CardinalityEstimator;
use chrono::{DateTime, Timelike, Utc};
use sketches_ddsketch::{Config, DDSketch};
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

/// A map keyed by what producers send (endpoints, sources, sessions), looked up for every
/// event: foldhash is several times faster than the standard SipHash, its per-process seed
/// keeps producers from choosing keys that collide, and hashbrown's `entry_ref` copies a key
/// only when it is new.
type Keyed<V> = hashbrown::HashMap<String, V, foldhash::fast::RandomState>;
use std::time::Instant;

pub const BUCKET_SECS: i64 = 10;
const HORIZON_SECS: i64 = 3600;
const SESSION_WINDOW_SECS: i64 = 300;
const TIMELINE_SECS: i64 = 600;
/// Distinct endpoints (and sources) kept per bucket, the busiest; the rest are summed as
/// "(other)", so a flood of unique paths cannot exhaust memory nor push real endpoints out.
const MAX_KEYS_PER_BUCKET: usize = 100;
const MAX_KEYS_SINCE_START: usize = 2000;
const OTHER: &str = "(other)";
const TOP_ENDPOINTS: usize = 10;
/// Keys of each GoAccess panel shown for a window.
const TOP_PANEL_KEYS: usize = 10;
/// Endpoints with fewer requests than this are left out of the p95 ranking: one slow call is no trend.
const MIN_REQUESTS_FOR_P95_RANK: u64 = 5;

fn new_sketch() -> DDSketch {
    DDSketch::new(Config::new(0.01, 2048, 1e-3))
}

fn quantile(sketch: &DDSketch, q: f64) -> Option<f64> {
    sketch.quantile(q).ok().flatten()
}

fn percentiles(sketch: &DDSketch) -> Percentiles {
    Percentiles {
        p50: quantile(sketch, 0.50),
        p95: quantile(sketch, 0.95),
        p99: quantile(sketch, 0.99),
    }
}

fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

fn merge_sketch(into: &mut DDSketch, from: &DDSketch) {
    // Both sketches share one config, the only case in which a merge can fail.
    let _ = into.merge(from);
}

#[derive(Clone)]
struct Totals {
    requests: u64,
    errors: u64,
    bytes: u64,
    /// 1xx..5xx.
    status_classes: [u64; 5],
    timed: u64,
    response_time_sum: f64,
    response_times: DDSketch,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            requests: 0,
            errors: 0,
            bytes: 0,
            status_classes: [0; 5],
            timed: 0,
            response_time_sum: 0.0,
            response_times: new_sketch(),
        }
    }
}

impl Totals {
    fn add(&mut self, event: &LogEvent) {
        self.requests += 1;
        self.errors += u64::from(event.is_error());
        // A producer may say any u64: the total sticks at the top rather than wrap or panic.
        self.bytes = self.bytes.saturating_add(event.bytes);
        self.status_classes[status_class(event.status)] += 1;
        if let Some(ms) = event.response_time {
            self.timed += 1;
            self.response_time_sum += ms;
            self.response_times.add(ms);
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes = self.bytes.saturating_add(other.bytes);
        for (mine, theirs) in self.status_classes.iter_mut().zip(other.status_classes) {
            *mine += theirs;
        }
        self.timed += other.timed;
        self.response_time_sum += other.response_time_sum;
        merge_sketch(&mut self.response_times, &other.response_times);
    }

    fn stats(&self, window: Window, span_secs: f64) -> WindowStats {
        WindowStats {
            window,
            span_secs,
            requests: self.requests,
            errors: self.errors,
            events_per_sec: self.requests as f64 / span_secs,
            error_rate: percent(self.errors, self.requests),
            avg_response_time: (self.timed > 0).then(|| self.response_time_sum / self.timed as f64),
            percentiles: percentiles(&self.response_times),
            bytes: self.bytes,
            by_status: self
                .status_classes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(class, n)| (format!("{}xx", class + 1), *n))
                .collect(),
        }
    }
}

#[derive(Clone)]
struct EndpointTotals {
    requests: u64,
    errors: u64,
    response_times: DDSketch,
}

impl Default for EndpointTotals {
    fn default() -> Self {
        EndpointTotals {
            requests: 0,
            errors: 0,
            response_times: new_sketch(),
        }
    }
}

impl EndpointTotals {
    fn merge(&mut self, other: &EndpointTotals) {
        self.requests += other.requests;
        self.errors += other.errors;
        merge_sketch(&mut self.response_times, &other.response_times);
    }
}

/// What a breakdown counts per key: how much it weighs, and how two fold into one.
trait Tally: Default {
    fn weight(&self) -> u64;
    fn absorb(&mut self, other: &Self);
}

impl Tally for u64 {
    fn weight(&self) -> u64 {
        *self
    }

    fn absorb(&mut self, other: &Self) {
        *self += other;
    }
}

impl Tally for EndpointTotals {
    fn weight(&self) -> u64 {
        self.requests
    }

    fn absorb(&mut self, other: &Self) {
        self.merge(other);
    }
}

/// The tally of `key` in a breakdown that keeps its heaviest keys: once it holds twice `cap`
/// keys, all but the `cap` heaviest fold into "(other)". A scanner's one-off paths end up
/// there whenever they came; the endpoints that carry the traffic keep their own counts.
fn heavy_entry<'a, V: Tally>(map: &'a mut Keyed<V>, key: &str, cap: usize) -> &'a mut V {
    // The length first: below the cap, a key needs no lookup beyond the entry's own.
    if map.len() >= 2 * cap && !map.contains_key(key) {
        fold_lightest(map, cap);
    }
    map.entry_ref(key).or_default()
}

fn fold_lightest<V: Tally>(map: &mut Keyed<V>, keep: usize) {
    let mut keys: Vec<(u64, String)> = map
        .iter()
        .filter(|(key, _)| key.as_str() != OTHER)
        .map(|(key, tally)| (tally.weight(), key.clone()))
        .collect();
    keys.sort_unstable_by(|a, b| b.cmp(a));
    let mut other = map.remove(OTHER).unwrap_or_default();
    for (_, key) in keys.into_iter().skip(keep) {
        if let Some(tally) = map.remove(&key) {
            other.absorb(&tally);
        }
    }
    map.insert(OTHER.to_owned(), other);
}

/// GoAccess's report over a stretch of event time, by the rules of `crate::visits`.
#[derive(Default)]
struct Visits {
    /// Hashes of (address, UTC day, user agent); a HyperLogLog merges across buckets as the
    /// sketches do, exact for small counts and a few kilobytes at most.
    visitors: CardinalityEstimator<str>,
    /// Hits by key, one map per panel in `Panel::ALL`'s order.
    panels: [Keyed<u64>; Panel::ALL.len()],
}

const HOURS: [&str; 24] = [
    "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15",
    "16", "17", "18", "19", "20", "21", "22", "23",
];

/// The key `panel` counts `event` under, if it counts it.
fn panel_key(panel: Panel, event: &LogEvent) -> Option<&str> {
    match panel {
        Panel::Browsers => Some(event.browser.as_deref().unwrap_or("Unknown")),
        Panel::OperatingSystems => Some(event.os.as_deref().unwrap_or("Unknown")),
        Panel::ReferringSites => event.referrer.as_deref().and_then(referring_site),
        Panel::NotFound => (event.status == 404).then_some(event.endpoint.as_str()),
        Panel::StaticFiles => (event.status != 404 && is_static_file(&event.endpoint))
            .then_some(event.endpoint.as_str()),
        Panel::VirtualHosts => event.vhost.as_deref(),
        Panel::Hosts => event.ip.as_deref(),
        Panel::HourOfDay => Some(HOURS[event.timestamp.hour() as usize]),
    }
}

impl Visits {
    fn add(&mut self, event: &LogEvent, cap: usize) {
        if makes_a_visitor(event.status) {
            // A fixed hasher: every bucket must hash one visitor alike for merges to hold.
            let visitor = foldhash::quality::FixedState::default().hash_one((
                event.ip.as_deref().unwrap_or_default(),
                event.timestamp.date_naive(),
                event.user_agent.as_deref().unwrap_or_default(),
            ));
            self.visitors.insert_hash(visitor);
        }
        for (panel, hits) in Panel::ALL.into_iter().zip(&mut self.panels) {
            if let Some(key) = panel_key(panel, event) {
                *heavy_entry(hits, key, cap) += 1;
            }
        }
    }

    fn merge(&mut self, other: &Visits) {
        self.visitors.merge(&other.visitors);
        for (mine, theirs) in self.panels.iter_mut().zip(&other.panels) {
            for (key, n) in theirs {
                *heavy_entry(mine, key, MAX_KEYS_SINCE_START) += n;
            }
        }
    }

    fn report(&self, window: Window, from: Option<i64>, to: Option<i64>) -> VisitReport {
        let panels = Panel::ALL
            .into_iter()
            .zip(&self.panels)
            .map(|(panel, hits)| {
                let mut rows: Vec<KeyHits> = hits
                    .iter()
                    .map(|(key, hits)| KeyHits {
                        key: key.clone(),
                        hits: *hits,
                    })
                    .collect();
                if panel == Panel::HourOfDay {
                    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                } else {
                    rows.sort_unstable_by(|a, b| {
                        b.hits.cmp(&a.hits).then_with(|| a.key.cmp(&b.key))
                    });
                    rows.truncate(TOP_PANEL_KEYS);
                }
                PanelRows {
                    panel,
                    hits: hits.values().sum(),
                    rows,
                }
            })
            .collect();
        VisitReport {
            window,
            from: from.and_then(|secs| DateTime::from_timestamp(secs, 0)),
            to: to.and_then(|secs| DateTime::from_timestamp(secs, 0)),
            visitors: self.visitors.estimate() as u64,
            panels,
        }
    }
}

struct Bucket {
    start: i64,
    totals: Totals,
    endpoints: Keyed<EndpointTotals>,
    sources: Keyed<u64>,
    visits: Visits,
}

impl Bucket {
    fn new(start: i64) -> Self {
        Bucket {
            start,
            totals: Totals::default(),
            endpoints: Keyed::default(),
            sources: Keyed::default(),
            visits: Visits::default(),
        }
    }

    fn add(&mut self, event: &LogEvent, cap: usize) {
        self.totals.add(event);
        let endpoint = heavy_entry(&mut self.endpoints, &event.endpoint, cap);
        endpoint.requests += 1;
        endpoint.errors += u64::from(event.is_error());
        if let Some(ms) = event.response_time {
            endpoint.response_times.add(ms);
        }
        *heavy_entry(&mut self.sources, &event.source, cap) += 1;
        self.visits.add(event, cap);
    }

    /// Adds `other` in: its totals, and its breakdowns by endpoint and source when they are
    /// asked for (only the detail window shows them, and the hour's are the costly part).
    fn merge(&mut self, other: &Bucket, breakdowns: bool) {
        self.totals.merge(&other.totals);
        if !breakdowns {
            return;
        }
        for (endpoint, totals) in &other.endpoints {
            heavy_entry(&mut self.endpoints, endpoint, MAX_KEYS_SINCE_START).merge(totals);
        }
        for (source, n) in &other.sources {
            *heavy_entry(&mut self.sources, source, MAX_KEYS_SINCE_START) += n;
        }
    }
}

/// The newest event time seen and when it arrived; event time moves on with the wall clock
/// from there, so windows empty out when traffic stops.
#[derive(Clone, Copy)]
struct EventClock {
    latest_micros: i64,
    seen_at: Instant,
}

impl EventClock {
    fn now_micros(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.seen_at).as_micros();
        self.latest_micros
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
}

pub struct LiveMetrics {
    /// Ascending by start; only the last hour of event time.
    buckets: VecDeque<Bucket>,
    since_start: Bucket,
    first_event_secs: Option<i64>,
    clock: Option<EventClock>,
    session_last_seen: Keyed<i64>,
    /// Sessions held after the last pruning: the next prunes once twice as many are held.
    sessions_after_pruning: usize,
    data_processed: u64,
    malformed: BTreeMap<String, u64>,
    /// Start of the next 10 s bucket to hand to the anomaly detector.
    next_to_close: Option<i64>,
}

/// What one closed 10-second bucket looked like, overall and per endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedBucket {
    pub start: i64,
    pub overall: Observation,
    pub endpoints: Vec<(String, Observation)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub requests: u64,
    pub errors: u64,
    /// Events that carried a response time.
    pub timed: u64,
    pub p95: Option<f64>,
}

/// Events may still arrive this long after a bucket's end before it is judged.
const CLOSE_AFTER_SECS: i64 = 2;
/// With no event for this long, buckets close by the wall clock instead.
const SILENCE_CLOSES_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

impl Default for LiveMetrics {
    fn default() -> Self {
        LiveMetrics {
            buckets: VecDeque::new(),
            since_start: Bucket::new(0),
            first_event_secs: None,
            clock: None,
            session_last_seen: Keyed::default(),
            sessions_after_pruning: 0,
            data_processed: 0,
            malformed: BTreeMap::new(),
            next_to_close: None,
        }
    }
}

fn bucket_start(secs: i64) -> i64 {
    secs.div_euclid(BUCKET_SECS) * BUCKET_SECS
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl LiveMetrics {
    /// Counts the bytes of one consumed message, decodable or not.
    pub fn record_bytes(&mut self, bytes: usize) {
        self.data_processed += bytes as u64;
    }

    pub fn malformed(&self) -> &BTreeMap<String, u64> {
        &self.malformed
    }

    pub fn record_malformed(&mut self, reason: &str) {
        *self.malformed.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn record(&mut self, event: &LogEvent, now: Instant) {
        let micros = event.timestamp.timestamp_micros();
        let secs = event.timestamp.timestamp();
        if self.clock.is_none_or(|c| micros > c.latest_micros) {
            self.clock = Some(EventClock {
                latest_micros: micros,
                seen_at: now,
            });
        }
        self.first_event_secs = Some(self.first_event_secs.map_or(secs, |f| f.min(secs)));
        self.since_start.add(event, MAX_KEYS_SINCE_START);
        let end = self
            .clock
            .map_or(secs, |c| c.now_micros(now).div_euclid(1_000_000));
        if let Some(session) = &event.session_id {
            let last = self
                .session_last_seen
                .entry_ref(session.as_str())
                .or_insert(secs);
            *last = (*last).max(secs);
            // Pruned as events come, not only when someone reads the metrics: with nobody
            // watching, a stream of new session ids would otherwise grow the map forever.
            if self.session_last_seen.len() >= (2 * self.sessions_after_pruning).max(1024) {
                self.prune_sessions(end);
            }
        }
        let start = bucket_start(secs);
        let oldest_kept = bucket_start(end) - HORIZON_SECS;
        if start < oldest_kept {
            return; // Too late for any window; it still counts since start.
        }
        let index = match self.buckets.binary_search_by_key(&start, |b| b.start) {
            Ok(index) => index,
            Err(index) => {
                self.buckets.insert(index, Bucket::new(start));
                index
            }
        };
        self.buckets[index].add(event, MAX_KEYS_PER_BUCKET);
        while self.buckets.front().is_some_and(|b| b.start < oldest_kept) {
            self.buckets.pop_front();
        }
    }

    /// The window's buckets merged (breakdowns too if asked), and the seconds of event time they cover, ending at `end`.
    fn window(&self, window: Window, end_secs: f64, breakdowns: bool) -> (Bucket, f64) {
        let first = self.first_event_secs.unwrap_or(0) as f64;
        let Some(length) = window.seconds() else {
            let mut all = Bucket::new(0);
            all.merge(&self.since_start, breakdowns);
            return (all, (end_secs - first).max(1.0));
        };
        let from = bucket_start(end_secs.floor() as i64) - length + BUCKET_SECS;
        let mut merged = Bucket::new(from);
        for bucket in self.buckets.iter().filter(|b| b.start >= from) {
            merged.merge(bucket, breakdowns);
        }
        (merged, (end_secs - (from as f64).max(first)).max(1.0))
    }

    /// Forgets sessions not seen in the session window before `end` (event time, seconds).
    fn prune_sessions(&mut self, end: i64) {
        let cutoff = end.saturating_sub(SESSION_WINDOW_SECS);
        self.session_last_seen.retain(|_, seen| *seen >= cutoff);
        self.sessions_after_pruning = self.session_last_seen.len();
    }

    fn event_time_secs(&self, now: Instant) -> Option<f64> {
        self.clock.map(|c| c.now_micros(now) as f64 / 1e6)
    }

    /// All windows, with the breakdowns for `detail`.
    pub fn snapshot(
        &mut self,
        now: Instant,
        wall_clock: DateTime<Utc>,
        detail: Window,
    ) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot {
            data_processed: self.data_processed,
            total_requests: self.since_start.totals.requests,
            total_errors: self.since_start.totals.errors,
            malformed: self.malformed.clone(),
            last_update: wall_clock,
            error_definition: ERROR_DEFINITION.to_owned(),
            window: detail,
            ..MetricsSnapshot::default()
        };
        let Some(end) = self.event_time_secs(now) else {
            return snapshot;
        };
        snapshot.event_time = DateTime::from_timestamp_micros((end * 1e6) as i64);
        self.prune_sessions(end as i64);
        snapshot.active_sessions = self.session_last_seen.len() as u64;
        for window in Window::ALL {
            let (bucket, span) = self.window(window, end, window == detail);
            let stats = bucket.totals.stats(window, span);
            if window == Window::Minute {
                snapshot.events_per_sec = stats.events_per_sec;
                snapshot.error_rate = stats.error_rate;
                snapshot.avg_response_time = stats.avg_response_time.unwrap_or(0.0);
            }
            if window == detail {
                snapshot.percentiles = stats.percentiles.clone();
                snapshot.by_status = stats.by_status.clone();
                snapshot.by_endpoint = rank_endpoints(&bucket.endpoints);
                snapshot.by_source = bucket.sources.into_iter().collect();
            }
            snapshot.windows.push(stats);
        }
        snapshot.timeline = self.timeline(end);
        snapshot
    }

    /// One point per 10 s bucket for the last ten minutes, empty buckets included.
    fn timeline(&self, end_secs: f64) -> Vec<TimelinePoint> {
        let last = bucket_start(end_secs.floor() as i64);
        let first = last - TIMELINE_SECS + BUCKET_SECS;
        (first..=last)
            .step_by(BUCKET_SECS as usize)
            .map(|start| {
                let bucket = self
                    .buckets
                    .binary_search_by_key(&start, |b| b.start)
                    .ok()
                    .map(|i| &self.buckets[i].totals);
                let p = bucket
                    .map(|t| percentiles(&t.response_times))
                    .unwrap_or_default();
                TimelinePoint {
                    t: DateTime::from_timestamp(start, 0).unwrap_or_default(),
                    requests: bucket.map_or(0, |t| t.requests),
                    errors: bucket.map_or(0, |t| t.errors),
                    p50: p.p50,
                    p95: p.p95,
                    p99: p.p99,
                }
            })
            .collect()
    }

    /// The buckets whose event time has passed (every 10 s slot, empty ones included, so a
    /// drop to nothing shows), oldest first, each handed out once.
    pub fn close_buckets(&mut self, now: Instant) -> Vec<ClosedBucket> {
        let Some(clock) = self.clock else {
            return Vec::new();
        };
        // While events flow, only they move buckets to judgment: a producer that stalls for a
        // moment must not make a half-filled bucket look like a drop. After a long silence the
        // wall clock takes over, so a drop to nothing is still seen.
        let silent = now.saturating_duration_since(clock.seen_at) >= SILENCE_CLOSES_AFTER;
        let end_micros = if silent {
            clock.now_micros(now)
        } else {
            clock.latest_micros
        };
        let end = end_micros as f64 / 1e6;
        let closable_before = bucket_start(end.floor() as i64 - CLOSE_AFTER_SECS);
        let oldest_kept = self.buckets.front().map_or(closable_before, |b| b.start);
        let mut next = self
            .next_to_close
            .unwrap_or(oldest_kept)
            .max(closable_before - HORIZON_SECS);
        let mut closed = Vec::new();
        while next < closable_before {
            let bucket = self
                .buckets
                .binary_search_by_key(&next, |b| b.start)
                .ok()
                .map(|i| &self.buckets[i]);
            closed.push(ClosedBucket {
                start: next,
                overall: bucket.map_or_else(Observation::default, |b| observe(&b.totals)),
                endpoints: bucket.map_or_else(Vec::new, |b| {
                    b.endpoints
                        .iter()
                        .filter(|(endpoint, _)| endpoint.as_str() != OTHER)
                        .map(|(endpoint, t)| {
                            let observation = Observation {
                                requests: t.requests,
                                errors: t.errors,
                                timed: t.response_times.count() as u64,
                                p95: quantile(&t.response_times, 0.95),
                            };
                            (endpoint.clone(), observation)
                        })
                        .collect()
                }),
            });
            next += BUCKET_SECS;
        }
        self.next_to_close = Some(next);
        closed
    }

    /// GoAccess's report over `window`, ending at the event-time clock.
    pub fn visits(&self, window: Window, now: Instant) -> VisitReport {
        let Some(end) = self.event_time_secs(now) else {
            return Visits::default().report(window, None, None);
        };
        let to = bucket_start(end.floor() as i64) + BUCKET_SECS;
        let Some(length) = window.seconds() else {
            return self.since_start.visits.report(window, None, Some(to));
        };
        let from = to - length;
        let mut merged = Visits::default();
        for bucket in self.buckets.iter().filter(|b| b.start >= from) {
            merged.merge(&bucket.visits);
        }
        merged.report(window, Some(from), Some(to))
    }

    /// One metric over `window` in steps of `step_secs` (a multiple of 10 s), oldest first.
    pub fn series(
        &self,
        metric: SeriesMetric,
        window: Window,
        step_secs: i64,
        now: Instant,
    ) -> Series {
        let length = window.seconds().unwrap_or(HORIZON_SECS);
        // Whole buckets, and no longer than the window: any step a client asks for is safe.
        let step = (step_secs.clamp(BUCKET_SECS, length) / BUCKET_SECS) * BUCKET_SECS;
        let mut points = Vec::new();
        if let Some(end) = self.event_time_secs(now) {
            let last = (end.floor() as i64).div_euclid(step) * step;
            let mut slot = last - length + step;
            while slot <= last {
                let mut totals = Totals::default();
                for bucket in self
                    .buckets
                    .iter()
                    .filter(|b| b.start >= slot && b.start < slot + step)
                {
                    totals.merge(&bucket.totals);
                }
                points.push(SeriesPoint {
                    t: DateTime::from_timestamp(slot, 0).unwrap_or_default(),
                    v: metric.value(&totals, step),
                });
                slot += step;
            }
        }
        Series {
            metric: metric.name().to_owned(),
            window,
            step_secs: step,
            points,
        }
    }
}

fn observe(totals: &Totals) -> Observation {
    Observation {
        requests: totals.requests,
        errors: totals.errors,
        timed: totals.timed,
        p95: quantile(&totals.response_times, 0.95),
    }
}

fn rank_endpoints(endpoints: &Keyed<EndpointTotals>) -> EndpointRanking {
    let all: Vec<EndpointStats> = endpoints
        .iter()
        .map(|(endpoint, t)| EndpointStats {
            endpoint: endpoint.clone(),
            requests: t.requests,
            errors: t.errors,
            error_rate: percent(t.errors, t.requests),
            p95: quantile(&t.response_times, 0.95),
        })
        .collect();
    let top = |mut list: Vec<EndpointStats>, key: &dyn Fn(&EndpointStats) -> f64| {
        list.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        list.truncate(TOP_ENDPOINTS);
        list
    };
    EndpointRanking {
        by_volume: top(all.clone(), &|e| e.requests as f64),
        by_errors: top(
            all.iter().filter(|e| e.errors > 0).cloned().collect(),
            &|e| e.errors as f64,
        ),
        by_p95: top(
            all.into_iter()
                .filter(|e| e.p95.is_some() && e.requests >= MIN_REQUESTS_FOR_P95_RANK)
                .collect(),
            &|e| e.p95.unwrap_or(0.0),
        ),
    }
}

/// The metrics a chart can plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesMetric {
    Requests,
    EventsPerSec,
    Errors,
    ErrorRate,
    AvgResponseTime,
    P50,
    P95,
    P99,
    Bytes,
}

impl SeriesMetric {
    pub const ALL: [SeriesMetric; 9] = [
        SeriesMetric::Requests,
        SeriesMetric::EventsPerSec,
        SeriesMetric::Errors,
        SeriesMetric::ErrorRate,
        SeriesMetric::AvgResponseTime,
        SeriesMetric::P50,
        SeriesMetric::P95,
        SeriesMetric::P99,
        SeriesMetric::Bytes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SeriesMetric::Requests => "requests",
            SeriesMetric::EventsPerSec => "eventsPerSec",
            SeriesMetric::Errors => "errors",
            SeriesMetric::ErrorRate => "errorRate",
            SeriesMetric::AvgResponseTime => "avgResponseTime",
            SeriesMetric::P50 => "p50",
            SeriesMetric::P95 => "p95",
            SeriesMetric::P99 => "p99",
            SeriesMetric::Bytes => "bytes",
        }
    }

    pub fn parse(name: &str) -> Option<SeriesMetric> {
        SeriesMetric::ALL.into_iter().find(|m| m.name() == name)
    }

    fn value(self, t: &Totals, step_secs: i64) -> Option<f64> {
        match self {
            SeriesMetric::Requests => Some(t.requests as f64),
            SeriesMetric::EventsPerSec => Some(t.requests as f64 / step_secs as f64),
            SeriesMetric::Errors => Some(t.errors as f64),
            SeriesMetric::ErrorRate => (t.requests > 0).then(|| percent(t.errors, t.requests)),
            SeriesMetric::AvgResponseTime => {
                (t.timed > 0).then(|| t.response_time_sum / t.timed as f64)
            }
            SeriesMetric::P50 => quantile(&t.response_times, 0.50),
            SeriesMetric::P95 => quantile(&t.response_times, 0.95),
            SeriesMetric::P99 => quantile(&t.response_times, 0.99),
            SeriesMetric::Bytes => Some(t.bytes as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::decode::decode;
    use std::collections::HashMap;
    use std::time::Duration;

    const T0: i64 = 1_795_000_000; // a bucket boundary: divisible by 10

    fn event(
        at_secs: f64,
        status: u16,
        response_time: f64,
        endpoint: &str,
        session: &str,
    ) -> LogEvent {
        let ts = DateTime::from_timestamp_micros((at_secs * 1e6) as i64)
            .unwrap()
            .to_rfc3339();
        let json = format!(
            r#"{{"timestamp":"{ts}","endpoint":"{endpoint}","status":{status},"responseTime":{response_time},"sessionId":"{session}","bytes":100,"source":"svc"}}"#
        );
        decode(json.as_bytes(), Utc::now()).unwrap()
    }

    /// One event every 100 ms of event time for `secs` seconds from T0, all arriving at `now`.
    fn steady(m: &mut LiveMetrics, secs: i64, now: Instant) {
        for i in 0..secs * 10 {
            let status = if i % 20 == 0 { 503 } else { 200 };
            let endpoint = if i % 2 == 0 { "/a" } else { "/b" };
            m.record(
                &event(
                    T0 as f64 + i as f64 / 10.0,
                    status,
                    (i % 100 + 1) as f64,
                    endpoint,
                    &format!("s{}", i % 30),
                ),
                now,
            );
        }
    }

    #[test]
    fn windows_follow_event_time_not_arrival() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        // Ten minutes of traffic, replayed all at once.
        steady(&mut m, 600, now);
        let s = m.snapshot(now, Utc::now(), Window::FiveMinutes);
        assert_eq!(s.event_time.unwrap().timestamp(), T0 + 599);
        let by_window: HashMap<Window, &WindowStats> =
            s.windows.iter().map(|w| (w.window, w)).collect();
        // The last minute: the buckets from 540 s on, 59.9 s of events at 10/s.
        let minute = by_window[&Window::Minute];
        assert_eq!(minute.requests, 600);
        assert!(
            (minute.events_per_sec - 600.0 / 59.9).abs() < 1e-6,
            "{}",
            minute.events_per_sec
        );
        assert_eq!(by_window[&Window::FiveMinutes].requests, 3000);
        assert_eq!(by_window[&Window::Hour].requests, 6000);
        assert_eq!(by_window[&Window::SinceStart].requests, 6000);
        assert_eq!(by_window[&Window::SinceStart].errors, 300);
        assert_eq!(by_window[&Window::SinceStart].error_rate, 5.0);
        assert_eq!(by_window[&Window::SinceStart].by_status["5xx"], 300);
        assert_eq!(s.total_requests, 6000);
        assert_eq!(s.active_sessions, 30);
        // Response times 1..=100 ms evenly: percentiles within the sketch's 1 %.
        let p = &by_window[&Window::SinceStart].percentiles;
        for (got, want) in [(p.p50, 50.0), (p.p95, 95.0), (p.p99, 99.0)] {
            let got = got.unwrap();
            assert!((got - want).abs() <= want * 0.02 + 0.5, "{got} vs {want}");
        }
        assert_eq!(s.by_endpoint.by_volume.len(), 2);
        assert_eq!(
            s.by_endpoint.by_errors[0].endpoint, "/a",
            "every 20th event is /a and a 503"
        );
        assert_eq!(s.by_source["svc"], 3000);
        assert_eq!(s.timeline.len(), 60);
        assert!(
            s.timeline.iter().all(|p| p.requests == 100),
            "ten minutes of 10/s"
        );
        assert_eq!(s.timeline.last().unwrap().t.timestamp(), T0 + 590);
    }

    #[test]
    fn windows_empty_out_as_time_passes_without_events() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        steady(&mut m, 60, now);
        let later = now + Duration::from_secs(120);
        let s = m.snapshot(later, Utc::now(), Window::Minute);
        assert_eq!(s.windows[0].requests, 0);
        assert_eq!(s.events_per_sec, 0.0);
        assert_eq!(s.windows[1].requests, 600, "still inside 5 minutes");
        assert_eq!(s.total_requests, 600);
    }

    #[test]
    fn late_events_count_since_start_only_and_memory_stays_bounded() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        m.record(&event(T0 as f64 + 7200.0, 200, 5.0, "/now", "s"), now);
        m.record(&event(T0 as f64, 500, 5.0, "/old", "s"), now);
        let s = m.snapshot(now, Utc::now(), Window::Hour);
        assert_eq!(s.windows[2].requests, 1);
        assert_eq!(s.total_requests, 2);
        // A busy endpoint, then a scanner's unique paths, then another busy endpoint: the
        // paths fold into "(other)", the busy endpoints keep their own counts.
        let at = |endpoint: &str| event(T0 as f64 + 7200.0, 200, 5.0, endpoint, "s");
        for _ in 0..50 {
            m.record(&at("/busy"), now);
        }
        for i in 0..(3 * MAX_KEYS_PER_BUCKET) {
            m.record(&at(&format!("/unique/{i}")), now);
        }
        for _ in 0..20 {
            m.record(&at("/busy-later"), now);
        }
        assert!(m
            .buckets
            .iter()
            .all(|b| b.endpoints.len() <= 2 * MAX_KEYS_PER_BUCKET + 1));
        let bucket = &m.buckets.back().unwrap().endpoints;
        assert!(bucket[OTHER].requests >= 2 * MAX_KEYS_PER_BUCKET as u64 - 100);
        assert_eq!(bucket["/busy"].requests, 50);
        assert_eq!(bucket["/busy-later"].requests, 20);
        let ranked = m.snapshot(now, Utc::now(), Window::Minute).by_endpoint;
        let top: Vec<&str> = ranked
            .by_volume
            .iter()
            .map(|e| e.endpoint.as_str())
            .collect();
        assert_eq!(top[..3], [OTHER, "/busy", "/busy-later"]);
    }

    #[test]
    fn series_are_aligned_steps_over_the_window() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        steady(&mut m, 120, now);
        let series = m.series(SeriesMetric::Requests, Window::Minute, 10, now);
        assert_eq!(series.points.len(), 6);
        assert!(
            series.points.iter().all(|p| p.v == Some(100.0)),
            "{series:?}"
        );
        assert_eq!(series.points.last().unwrap().t.timestamp(), T0 + 110);
        let rate = m.series(SeriesMetric::ErrorRate, Window::FiveMinutes, 60, now);
        assert_eq!(rate.points.len(), 5);
        assert_eq!(rate.points[0].v, None, "no events that long ago");
        assert_eq!(rate.points[4].v, Some(5.0));
    }

    #[test]
    fn buckets_close_once_in_order_with_empty_slots_included() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        assert!(m.close_buckets(now).is_empty());
        m.record(&event(T0 as f64 + 1.0, 500, 10.0, "/a", "s"), now);
        m.record(&event(T0 as f64 + 35.0, 200, 10.0, "/a", "s"), now);
        // The clock stands at T0+35: buckets T0, T0+10, T0+20 are over.
        let closed = m.close_buckets(now);
        assert_eq!(
            closed.iter().map(|b| b.start - T0).collect::<Vec<_>>(),
            [0, 10, 20]
        );
        assert_eq!(closed[0].overall.requests, 1);
        assert_eq!(closed[0].overall.errors, 1);
        assert_eq!(closed[0].endpoints[0].0, "/a");
        assert_eq!(closed[1].overall, Observation::default());
        assert!(m.close_buckets(now).is_empty(), "each bucket once");
        // A short pause in the events closes nothing; a long silence closes by the clock.
        assert!(m.close_buckets(now + Duration::from_secs(10)).is_empty());
        let later = m.close_buckets(now + Duration::from_secs(40));
        assert_eq!(
            later.iter().map(|b| b.start - T0).collect::<Vec<_>>(),
            [30, 40, 50, 60]
        );
    }

    #[test]
    fn the_largest_values_a_producer_may_send_neither_panic_nor_wrap() {
        let mut m = LiveMetrics::default();
        let now = Instant::now();
        let huge = |at: f64| {
            let mut e = event(at, 200, 1.0, "/big", "s");
            e.bytes = u64::MAX;
            e
        };
        // Two in one bucket, a third in the next: bucket totals and their merges both add.
        for at in [T0 as f64, T0 as f64 + 1.0, T0 as f64 + 11.0] {
            m.record(&huge(at), now);
        }
        let s = m.snapshot(now, Utc::now(), Window::Minute);
        assert_eq!(s.total_requests, 3);
        assert!(
            s.windows.iter().all(|w| w.bytes == u64::MAX),
            "{:?}",
            s.windows
        );
        let series = m.series(SeriesMetric::Bytes, Window::Minute, i64::MAX, now);
        assert_eq!(series.step_secs, 60, "a step past the window is the window");
        assert!(series.points.iter().all(|p| p.v.is_none_or(f64::is_finite)));
    }

    #[test]
    fn visits_are_counted_as_goaccess_counts_them_over_every_window() {
        let now = Instant::now();
        let mut m = LiveMetrics::default();
        let visit = |at: f64, ip: &str, agent: &str, status: u16, path: &str, referrer: &str| {
            let mut e = event(at, status, 5.0, path, "s");
            e.ip = Some(ip.to_owned());
            e.user_agent = Some(agent.to_owned());
            e.referrer = (referrer != "-").then(|| referrer.to_owned());
            e.browser = Some(agent.split('/').next().unwrap().to_owned());
            e
        };
        // Two hours before the rest, on the same UTC day: the same visitor as the first below.
        m.record(
            &visit(T0 as f64, "192.0.2.1", "Firefox/1", 200, "/", "-"),
            now,
        );
        let recent = T0 as f64 + 7200.0;
        for (ip, agent, status, path, referrer) in [
            (
                "192.0.2.1",
                "Firefox/1",
                200,
                "/",
                "https://www.google.com/search?q=x",
            ),
            (
                "192.0.2.1",
                "Firefox/1",
                200,
                "/app.js",
                "https://shop.example/",
            ),
            ("192.0.2.1", "Chrome/2", 200, "/", "-"), // another agent: another visitor
            ("192.0.2.2", "Firefox/1", 404, "/wp-login.php", "-"), // a 4xx makes no visitor
            ("192.0.2.2", "Firefox/1", 404, "/wp-login.php", "-"),
            ("192.0.2.3", "Firefox/1", 404, "/Logo.PNG", "-"), // not found, not static
            (
                "192.0.2.4",
                "Firefox/1",
                304,
                "/img/Logo.PNG",
                "android-app://x/",
            ),
        ] {
            m.record(&visit(recent, ip, agent, status, path, referrer), now);
        }
        // The next UTC day, for the same address and agent: a new visitor.
        let next_day = (recent / 86_400.0).floor() * 86_400.0 + 86_400.0 + 5.0;
        m.record(
            &visit(next_day, "192.0.2.1", "Firefox/1", 200, "/", "-"),
            now,
        );

        let report = m.visits(Window::SinceStart, now);
        assert_eq!(report.visitors, 4, "{report:?}");
        assert_eq!(report.from, None);
        let hour = m.visits(Window::Hour, now);
        assert_eq!(
            hour.visitors, 1,
            "only the next day's request is in the last hour"
        );
        assert_eq!(
            hour.from.unwrap().timestamp(),
            hour.to.unwrap().timestamp() - 3600
        );
        let panel = |panel: Panel| -> Vec<(String, u64)> {
            let rows = report.panels.iter().find(|p| p.panel == panel).unwrap();
            rows.rows.iter().map(|r| (r.key.clone(), r.hits)).collect()
        };
        let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
        };
        assert_eq!(
            panel(Panel::NotFound),
            owned(&[("/wp-login.php", 2), ("/Logo.PNG", 1)])
        );
        assert_eq!(
            panel(Panel::StaticFiles),
            owned(&[("/app.js", 1), ("/img/Logo.PNG", 1)])
        );
        assert_eq!(
            panel(Panel::ReferringSites),
            owned(&[("shop.example", 1), ("www.google.com", 1), ("x", 1)])
        );
        assert_eq!(
            panel(Panel::Browsers),
            owned(&[("Firefox", 8), ("Chrome", 1)])
        );
        assert_eq!(panel(Panel::Hosts)[0], ("192.0.2.1".to_owned(), 5));
        assert_eq!(panel(Panel::OperatingSystems), owned(&[("Unknown", 9)]));
        let hours = panel(Panel::HourOfDay);
        assert_eq!(hours.iter().map(|(_, n)| n).sum::<u64>(), 9);
        assert!(
            hours.windows(2).all(|w| w[0].0 < w[1].0),
            "by hour: {hours:?}"
        );
    }

    #[test]
    fn malformed_messages_are_counted_by_reason() {
        let mut m = LiveMetrics::default();
        m.record_malformed("invalid_json");
        m.record_malformed("invalid_json");
        m.record_malformed("not_utf8");
        m.record_bytes(42);
        let s = m.snapshot(Instant::now(), Utc::now(), Window::Minute);
        assert_eq!(s.malformed.get("invalid_json"), Some(&2));
        assert_eq!(s.malformed.get("not_utf8"), Some(&1));
        assert_eq!(s.data_processed, 42);
        assert_eq!(s.total_requests, 0);
    }
}
