//! Anomaly detection over closed 10-second buckets of event time, overall and per endpoint:
//! error rate, p95 latency, and traffic (spike and drop). Each series keeps an exponentially
//! weighted mean and variance as its baseline, learns only from normal buckets (an anomaly
//! does not become the new normal) and says nothing until it has seen a warm-up's worth.
//! A critical move opens an anomaly at once; a warning must last two buckets in a row, because
//! with hundreds of series judged every ten seconds a 4-sigma bucket turns up by chance.

use crate::model::{Anomaly, AnomalyKind, Severity};
use crate::pipeline::metrics::{ClosedBucket, Observation};
use chrono::DateTime;
use std::collections::{HashMap, VecDeque};

/// Weight of the newest bucket in the baseline (about the last 10 buckets matter).
const ALPHA: f64 = 0.1;
/// Buckets a series must see before it may raise anything: two minutes.
const WARM_UP: u32 = 12;
/// How far from the baseline, in standard deviations, counts as abnormal.
const SIGMAS: f64 = 4.0;
/// Below these a bucket says too little to judge.
const MIN_REQUESTS: u64 = 10;
const MIN_ERRORS: u64 = 5;
/// A p95 of fewer timings rests on the one or two slowest requests: with 20 log-normal
/// timings per bucket, a quiet endpoint "doubled" its p95 by chance in one run of ten minutes
/// out of about thirty. From 40 on, at least two timings lie above the p95.
const MIN_TIMED_FOR_P95: u64 = 40;
/// Traffic is only judged where there is enough of it for a count to mean something.
const MIN_TRAFFIC: f64 = 50.0;
/// Smallest moves worth an alert, whatever the variance: +10 points of error rate, a p95 at
/// least doubled and 50 ms slower, traffic up or down by half.
const MIN_ERROR_RATE_RISE: f64 = 10.0;
const MIN_LATENCY_FACTOR: f64 = 2.0;
const MIN_LATENCY_RISE_MS: f64 = 50.0;
const MIN_TRAFFIC_CHANGE: f64 = 0.5;
/// Endpoints followed one by one, the busiest; the others share the overall scope.
const MAX_ENDPOINT_SCOPES: usize = 200;
const HISTORY: usize = 500;

#[derive(Clone, Copy, Debug, Default)]
struct Baseline {
    seen: u32,
    mean: f64,
    variance: f64,
}

impl Baseline {
    fn learn(&mut self, x: f64) {
        if self.seen == 0 {
            self.mean = x;
        } else {
            let diff = x - self.mean;
            let step = ALPHA * diff;
            self.mean += step;
            self.variance = (1.0 - ALPHA) * (self.variance + diff * step);
        }
        self.seen += 1;
    }

    fn warm(&self) -> bool {
        self.seen >= WARM_UP
    }

    fn sigma(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// A verdict on one observation: how far past the threshold (1.0 = just past it), or normal.
fn excess(value: f64, threshold: f64, baseline: f64) -> Option<f64> {
    (value > threshold).then(|| (value - baseline) / (threshold - baseline).max(f64::EPSILON))
}

#[derive(Default)]
struct ScopeBaselines {
    traffic: Baseline,
    error_rate: Baseline,
    latency: Baseline,
}

pub struct Detector {
    scopes: HashMap<String, ScopeBaselines>,
    open: HashMap<(AnomalyKind, String), Anomaly>,
    /// Warnings seen in the last bucket only: they open if the next bucket repeats them.
    pending: HashMap<(AnomalyKind, String), Anomaly>,
    history: VecDeque<Anomaly>,
    next_id: u64,
}

impl Default for Detector {
    fn default() -> Self {
        Detector {
            scopes: HashMap::new(),
            open: HashMap::new(),
            pending: HashMap::new(),
            history: VecDeque::new(),
            next_id: 1,
        }
    }
}

/// What happened to an anomaly in the bucket just judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    /// Still going; value, peak or severity moved.
    Continued,
    Ended,
}

/// One judged series in one bucket: (kind, value, baseline, excess) when abnormal.
type Finding = (AnomalyKind, f64, f64, f64);

fn judge(baselines: &mut ScopeBaselines, o: &Observation) -> Vec<Finding> {
    let mut findings = Vec::new();

    let traffic = o.requests as f64;
    let b = baselines.traffic;
    // Request counts are Poisson-like: their spread is at least the square root of the mean,
    // however calm the last few buckets happened to be.
    let sigma = b.sigma().max(b.mean.sqrt());
    let band = (SIGMAS * sigma).max(MIN_TRAFFIC_CHANGE * b.mean);
    let spike = excess(traffic, b.mean + band, b.mean).filter(|_| traffic >= MIN_TRAFFIC);
    let drop = excess(-traffic, -(b.mean - band), -b.mean).filter(|_| b.mean >= MIN_TRAFFIC);
    match (b.warm(), spike, drop) {
        (true, Some(x), _) => findings.push((AnomalyKind::TrafficSpike, traffic, b.mean, x)),
        (true, _, Some(x)) => findings.push((AnomalyKind::TrafficDrop, traffic, b.mean, x)),
        _ => baselines.traffic.learn(traffic),
    }

    if o.requests >= MIN_REQUESTS {
        let rate = o.errors as f64 * 100.0 / o.requests as f64;
        let b = baselines.error_rate;
        let threshold = b.mean + (SIGMAS * b.sigma()).max(MIN_ERROR_RATE_RISE);
        match excess(rate, threshold, b.mean).filter(|_| b.warm() && o.errors >= MIN_ERRORS) {
            Some(x) => findings.push((AnomalyKind::ErrorRate, rate, b.mean, x)),
            None => baselines.error_rate.learn(rate),
        }
    }

    if let Some(p95) = o.p95.filter(|_| o.timed >= MIN_TIMED_FOR_P95) {
        let b = baselines.latency;
        let threshold = (b.mean * MIN_LATENCY_FACTOR)
            .max(b.mean + SIGMAS * b.sigma())
            .max(b.mean + MIN_LATENCY_RISE_MS);
        match excess(p95, threshold, b.mean).filter(|_| b.warm()) {
            Some(x) => findings.push((AnomalyKind::Latency, p95, b.mean, x)),
            None => baselines.latency.learn(p95),
        }
    }
    findings
}

impl Detector {
    /// Judges one closed bucket; returns the anomalies it opened, continued or ended.
    pub fn observe(&mut self, bucket: &ClosedBucket) -> Vec<(Change, Anomaly)> {
        let at = DateTime::from_timestamp(bucket.start, 0).unwrap_or_default();
        let mut findings: Vec<(String, Finding)> = Vec::new();
        let overall = self.scopes.entry("overall".to_owned()).or_default();
        findings.extend(
            judge(overall, &bucket.overall)
                .into_iter()
                .map(|f| ("overall".to_owned(), f)),
        );
        for (endpoint, observation) in &bucket.endpoints {
            let scope = format!("endpoint:{endpoint}");
            if !self.scopes.contains_key(&scope) && self.scopes.len() > MAX_ENDPOINT_SCOPES {
                // The busiest endpoints are followed: a newcomer busier than the quietest
                // followed endpoint usually is takes its place; a scanner's paths never are.
                match self.quietest_endpoint() {
                    Some((quietest, usual)) if observation.requests as f64 > usual => {
                        self.scopes.remove(&quietest);
                    }
                    _ => continue,
                }
            }
            let baselines = self.scopes.entry(scope.clone()).or_default();
            findings.extend(
                judge(baselines, observation)
                    .into_iter()
                    .map(|f| (scope.clone(), f)),
            );
        }

        let mut changed = Vec::new();
        let mut still_open = HashMap::new();
        let mut still_pending = HashMap::new();
        let mut last_pending = std::mem::take(&mut self.pending);
        for (scope, (kind, value, baseline, excess)) in findings {
            let severity = if excess >= 2.0 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let key = (kind, scope);
            let worse = |a: f64, b: f64| {
                if kind == AnomalyKind::TrafficDrop {
                    a.min(b)
                } else {
                    a.max(b)
                }
            };
            let (change, anomaly) = match self.open.remove(&key) {
                Some(mut open) => {
                    open.value = value;
                    open.peak = worse(open.peak, value);
                    if severity == Severity::Critical {
                        open.severity = severity;
                    }
                    (Change::Continued, open)
                }
                None => {
                    let seen_before = last_pending.remove(&key);
                    if severity == Severity::Warning && seen_before.is_none() {
                        let candidate = Anomaly {
                            id: 0,
                            kind,
                            scope: key.1.clone(),
                            severity,
                            value,
                            peak: value,
                            baseline,
                            started: at,
                            ended: None,
                        };
                        still_pending.insert(key, candidate);
                        continue;
                    }
                    self.next_id += 1;
                    let opened = Anomaly {
                        id: self.next_id - 1,
                        kind,
                        scope: key.1.clone(),
                        severity,
                        value,
                        peak: seen_before.as_ref().map_or(value, |p| worse(p.peak, value)),
                        baseline: seen_before.as_ref().map_or(baseline, |p| p.baseline),
                        started: seen_before.map_or(at, |p| p.started),
                        ended: None,
                    };
                    (Change::Opened, opened)
                }
            };
            changed.push((change, anomaly.clone()));
            still_open.insert(key, anomaly);
        }
        self.pending = still_pending;
        // Whatever did not fire again in this bucket is over.
        for (_, mut ended) in std::mem::replace(&mut self.open, still_open) {
            ended.ended = Some(at);
            changed.push((Change::Ended, ended.clone()));
            self.remember(ended);
        }
        changed
    }

    /// The followed endpoint with the least traffic as its baseline has it, and that traffic.
    fn quietest_endpoint(&self) -> Option<(String, f64)> {
        self.scopes
            .iter()
            .filter(|(scope, _)| scope.starts_with("endpoint:"))
            .map(|(scope, baselines)| (scope, baselines.traffic.mean))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(scope, usual)| (scope.clone(), usual))
    }

    fn remember(&mut self, ended: Anomaly) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ended);
    }

    /// Open anomalies first, then the ended ones, newest first.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        let mut open: Vec<Anomaly> = self.open.values().cloned().collect();
        open.sort_by_key(|a| std::cmp::Reverse(a.id));
        open.extend(self.history.iter().rev().cloned());
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::metrics::BUCKET_SECS;

    fn bucket(i: i64, requests: u64, errors: u64, p95: f64) -> ClosedBucket {
        let overall = Observation {
            requests,
            errors,
            timed: requests,
            p95: Some(p95),
        };
        ClosedBucket {
            start: 1_795_000_000 + i * BUCKET_SECS,
            endpoints: vec![("/api/x".to_owned(), overall.clone())],
            overall,
        }
    }

    #[test]
    fn the_busiest_endpoints_are_followed_whenever_they_first_came() {
        let observed = |requests| Observation {
            requests,
            errors: 0,
            timed: 0,
            p95: None,
        };
        let mut detector = Detector::default();
        // A scanner first: more one-request paths than there are places.
        let paths: Vec<(String, Observation)> = (0..2 * MAX_ENDPOINT_SCOPES)
            .map(|i| (format!("/scan/{i}"), observed(1)))
            .collect();
        detector.observe(&ClosedBucket {
            start: 0,
            overall: observed(paths.len() as u64),
            endpoints: paths,
        });
        // Then the real endpoint, busy.
        detector.observe(&ClosedBucket {
            start: BUCKET_SECS,
            overall: observed(500),
            endpoints: vec![("/api/orders".to_owned(), observed(500))],
        });
        assert!(detector.scopes.contains_key("endpoint:/api/orders"));
        assert!(detector.scopes.len() <= MAX_ENDPOINT_SCOPES + 2);
    }

    /// Steady traffic with the wobble real traffic has.
    fn steady(i: i64) -> ClosedBucket {
        let wobble = (i * 7919 % 13) as u64;
        bucket(
            i,
            480 + wobble * 3,
            2 + wobble % 3,
            180.0 + (i * 31 % 17) as f64,
        )
    }

    #[test]
    fn steady_traffic_raises_nothing_and_warm_up_is_quiet() {
        let mut detector = Detector::default();
        // A wild first minute: the detector is still learning.
        for i in 0..6 {
            assert!(detector
                .observe(&bucket(i, 5 + 200 * (i as u64 % 2), 4, 900.0))
                .is_empty());
        }
        for i in 6..66 {
            assert!(detector.observe(&steady(i)).is_empty(), "bucket {i}");
        }
        assert!(detector.anomalies().is_empty());
    }

    #[test]
    fn an_error_burst_opens_at_once_and_ends_when_it_is_over() {
        let mut detector = Detector::default();
        for i in 0..30 {
            detector.observe(&steady(i));
        }
        let opened = detector.observe(&bucket(30, 500, 200, 185.0));
        assert!(opened.iter().all(|(change, _)| *change == Change::Opened));
        let opened: Vec<Anomaly> = opened.into_iter().map(|(_, a)| a).collect();
        let kinds: Vec<_> = opened.iter().map(|a| (a.kind, a.scope.as_str())).collect();
        assert!(
            kinds.contains(&(AnomalyKind::ErrorRate, "overall")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(AnomalyKind::ErrorRate, "endpoint:/api/x")),
            "{kinds:?}"
        );
        let overall = opened.iter().find(|a| a.scope == "overall").unwrap();
        assert_eq!(overall.value, 40.0);
        assert_eq!(overall.severity, Severity::Critical);
        assert!(overall.baseline < 2.0);
        assert_eq!(overall.started.timestamp(), 1_795_000_300);
        // It goes on, then it is over.
        let going_on = detector.observe(&bucket(31, 500, 150, 185.0));
        assert!(going_on
            .iter()
            .all(|(change, _)| *change == Change::Continued));
        let ended = detector.observe(&steady(32));
        assert!(ended
            .iter()
            .all(|(c, a)| *c == Change::Ended && a.ended.is_some()));
        assert_eq!(ended.len(), 2);
        let listed = detector.anomalies();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].peak, 40.0);
        // The burst did not become the baseline: the next one is caught just the same.
        assert!(!detector.observe(&bucket(33, 500, 200, 185.0)).is_empty());
    }

    #[test]
    fn latency_spikes_and_traffic_drops_are_caught() {
        let mut detector = Detector::default();
        for i in 0..30 {
            detector.observe(&steady(i));
        }
        let slow = detector.observe(&bucket(30, 490, 2, 1500.0));
        assert!(slow
            .iter()
            .map(|(_, a)| a)
            .any(|a| a.kind == AnomalyKind::Latency && a.scope == "overall"));
        let quiet = detector.observe(&bucket(31, 0, 0, 0.0));
        assert!(quiet
            .iter()
            .map(|(_, a)| a)
            .any(|a| a.kind == AnomalyKind::TrafficDrop && a.scope == "overall" && a.value == 0.0));
        assert!(quiet
            .iter()
            .map(|(_, a)| a)
            .any(|a| a.kind == AnomalyKind::Latency && a.ended.is_some()));
        let spike = detector.observe(&bucket(32, 5000, 10, 180.0));
        assert!(spike
            .iter()
            .map(|(_, a)| a)
            .any(|a| a.kind == AnomalyKind::TrafficSpike));
    }

    #[test]
    fn a_warning_opens_only_when_the_next_bucket_repeats_it() {
        let mut detector = Detector::default();
        for i in 0..30 {
            detector.observe(&steady(i));
        }
        // Error rate up by 12 points: past the threshold, short of critical.
        let warning = |i: i64| bucket(i, 500, 62, 185.0);
        assert!(detector.observe(&warning(30)).is_empty());
        assert!(detector.observe(&steady(31)).is_empty());
        assert!(detector.observe(&warning(32)).is_empty());
        let opened = detector.observe(&warning(33));
        let overall = opened
            .iter()
            .map(|(_, a)| a)
            .find(|a| a.scope == "overall")
            .expect("opened on the second bucket in a row");
        assert_eq!(overall.kind, AnomalyKind::ErrorRate);
        assert_eq!(overall.severity, Severity::Warning);
        assert_eq!(
            overall.started.timestamp(),
            1_795_000_000 + 32 * BUCKET_SECS
        );
    }

    #[test]
    fn a_slow_request_or_two_on_a_quiet_endpoint_is_not_a_latency_anomaly() {
        let mut detector = Detector::default();
        let quiet = |i: i64, p95: f64| {
            let mut b = steady(i);
            b.endpoints[0].1 = Observation {
                requests: MIN_TIMED_FOR_P95 - 1,
                errors: 0,
                timed: MIN_TIMED_FOR_P95 - 1,
                p95: Some(p95),
            };
            b
        };
        for i in 0..30 {
            detector.observe(&quiet(i, 190.0));
        }
        assert!(detector.observe(&quiet(30, 900.0)).is_empty());
    }
}
