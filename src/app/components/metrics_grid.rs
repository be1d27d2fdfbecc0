//! The numbers: the chosen window's rate, errors and percentiles, then the running totals.

use crate::app::format;
use crate::model::{MetricsSnapshot, Window, WindowStats};
use leptos::prelude::*;

fn ms(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), format::millis)
}

#[component]
fn Card(
    #[prop(into)] label: Signal<String>,
    testid: &'static str,
    value: Signal<String>,
    /// Recent values for a sparkline (oldest first); none draws no line.
    #[prop(optional)]
    trend: Option<Signal<Vec<Option<f64>>>>,
) -> impl IntoView {
    view! {
        <div class="card">
            <div class="label">{move || label.get()}</div>
            <div class="value" data-testid=testid>
                {move || value.get()}
            </div>
            {trend.map(|trend| view! { <Sparkline points=trend /> })}
        </div>
    }
}

/// A small line of recent values, drawn as SVG so the server renders it too.
#[component]
fn Sparkline(points: Signal<Vec<Option<f64>>>) -> impl IntoView {
    const WIDTH: f64 = 100.0;
    const HEIGHT: f64 = 24.0;
    let path = move || {
        points.with(|values| {
            let top = values
                .iter()
                .flatten()
                .copied()
                .fold(0.0_f64, f64::max)
                .max(f64::EPSILON);
            let step = WIDTH / (values.len().max(2) - 1) as f64;
            values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.map(|v| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - v / top * HEIGHT))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    view! {
        <svg class="sparkline" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
            <polyline points=path fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
        </svg>
    }
}

#[component]
pub fn MetricsGrid(metrics: RwSignal<MetricsSnapshot>, window: Memo<Window>) -> impl IntoView {
    let total = move |f: fn(&MetricsSnapshot) -> String| Signal::derive(move || metrics.with(f));
    let windowed = move |f: fn(&WindowStats) -> String| {
        Signal::derive(move || {
            let w = window.get();
            metrics.with(|m| {
                m.windows
                    .iter()
                    .find(|s| s.window == w)
                    .map_or("–".to_owned(), f)
            })
        })
    };
    let trend = move |f: fn(&crate::model::TimelinePoint) -> Option<f64>| {
        Signal::derive(move || metrics.with(|m| m.timeline.iter().map(f).collect()))
    };
    let label = move |what: &'static str| {
        Signal::derive(move || format!("{what} ({})", window.get().label()))
    };
    view! {
        <section class="grid" aria-label="Metrics for the chosen window">
            <Card label=label("Events / s") testid="events-per-sec" value=windowed(|w| format::count(w.events_per_sec)) trend=trend(|p| Some(p.requests as f64)) />
            <Card label=label("Error rate") testid="error-rate" value=windowed(|w| format::percent(w.error_rate)) trend=trend(|p| (p.requests > 0).then(|| p.errors as f64 / p.requests as f64)) />
            <Card label=label("p50") testid="p50" value=windowed(|w| ms(w.percentiles.p50)) />
            <Card label=label("p95") testid="p95" value=windowed(|w| ms(w.percentiles.p95)) trend=trend(|p| p.p95) />
            <Card label=label("p99") testid="p99" value=windowed(|w| ms(w.percentiles.p99)) />
            <Card label=label("Avg response") testid="avg-response-time" value=windowed(|w| ms(w.avg_response_time)) />
            <Card label=label("Requests") testid="window-requests" value=windowed(|w| format::count(w.requests as f64)) />
            <Card label=label("Bytes served") testid="window-bytes" value=windowed(|w| format::bytes(w.bytes)) />
        </section>
        <section class="grid totals" aria-label="Totals since start">
            <Card label="Total requests" testid="total-requests" value=total(|m| m.total_requests.to_string()) />
            <Card label="Total errors" testid="total-errors" value=total(|m| m.total_errors.to_string()) />
            <Card label="Active sessions (5m)" testid="active-sessions" value=total(|m| format::count(m.active_sessions as f64)) />
            <Card label="Kafka bytes consumed" testid="data-processed" value=total(|m| format::bytes(m.data_processed)) />
            <Card label="Malformed" testid="malformed" value=total(|m| m.malformed.values().sum::<u64>().to_string()) />
        </section>
        <p class="updated">
            "Event time "
            {move || metrics.with(|m| m.event_time.map_or("–".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()))}
            " UTC · updated "
            {move || metrics.with(|m| m.last_update.format("%H:%M:%S").to_string())}
            " · errors are "
            {move || metrics.with(|m| m.error_definition.clone())}
        </p>
    }
}
