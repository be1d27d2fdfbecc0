//! Any sequence of messages through the live view, at any pace: decoded events recorded in the
//! metrics, closed buckets judged by the anomaly detector, snapshots and series read back for
//! every window. Nothing panics or wraps, and every number a viewer is shown is finite.
#![no_main]

use chrono::{TimeZone, Utc};
use lakepulse::model::Window;
use lakepulse::pipeline::anomaly::Detector;
use lakepulse::pipeline::decode::decode_message;
use lakepulse::pipeline::metrics::{LiveMetrics, SeriesMetric};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const WINDOWS: [Window; 4] = [
    Window::Minute,
    Window::FiveMinutes,
    Window::Hour,
    Window::SinceStart,
];

fuzz_target!(|data: &[u8]| {
    let arrival = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let start = Instant::now();
    let mut metrics = LiveMetrics::default();
    let mut detector = Detector::default();
    let mut elapsed = Duration::ZERO;
    // Messages end at 0xff, a byte no text holds; each one's first byte says how far the
    // wall clock moves before it arrives (up to a minute).
    for message in data.split(|b| *b == 0xff) {
        let Some((&pace, value)) = message.split_first() else {
            continue;
        };
        elapsed += Duration::from_millis(u64::from(pace) * 250);
        let now = start + elapsed;
        metrics.record_bytes(value.len());
        for item in decode_message(value, arrival) {
            match item.decoded {
                Ok(event) => metrics.record(&event, now),
                Err(error) => metrics.record_malformed(error.reason()),
            }
        }
        for bucket in metrics.close_buckets(now) {
            for (_, anomaly) in detector.observe(&bucket) {
                for shown in [anomaly.value, anomaly.peak, anomaly.baseline] {
                    assert!(shown.is_finite(), "{anomaly:?}");
                }
            }
        }
    }
    // Read back once at the end, as a viewer would (a snapshot merges an hour of sketches:
    // after every message it made a run fifty times slower). The first byte picks the view.
    let pace = data.first().copied().unwrap_or_default();
    let now = start + elapsed;
    let window = WINDOWS[usize::from(pace) % WINDOWS.len()];
    let snapshot = metrics.snapshot(now, arrival, window);
    assert!(snapshot.total_errors <= snapshot.total_requests);
    assert!((0.0..=100.0).contains(&snapshot.error_rate));
    assert!(snapshot.avg_response_time.is_finite());
    assert!(snapshot.events_per_sec.is_finite());
    for stats in &snapshot.windows {
        assert!(stats.errors <= stats.requests);
        assert!(stats.events_per_sec.is_finite() && stats.error_rate.is_finite());
        let p = &stats.percentiles;
        for shown in [stats.avg_response_time, p.p50, p.p95, p.p99]
            .into_iter()
            .flatten()
        {
            assert!(shown.is_finite(), "{stats:?}");
        }
    }
    let metric = SeriesMetric::ALL[usize::from(pace) % SeriesMetric::ALL.len()];
    let step = i64::from(pace)
        .wrapping_mul(i64::from(pace))
        .wrapping_mul(1 << 40);
    let series = metrics.series(metric, window, step, now);
    assert!(series.step_secs > 0);
    for point in series.points {
        assert!(point.v.is_none_or(f64::is_finite), "{metric:?}: {point:?}");
    }
});
