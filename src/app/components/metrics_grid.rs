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
) -> impl IntoView {
    view! {
        <div class="card">
            <div class="label">{move || label.get()}</div>
            <div class="value" data-testid=testid>
                {move || value.get()}
            </div>
        </div>
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
    let label = move |what: &'static str| {
        Signal::derive(move || format!("{what} ({})", window.get().label()))
    };
    view! {
        <section class="grid" aria-label="Metrics for the chosen window">
            <Card label=label("Events / s") testid="events-per-sec" value=windowed(|w| format::count(w.events_per_sec)) />
            <Card label=label("Error rate") testid="error-rate" value=windowed(|w| format::percent(w.error_rate)) />
            <Card label=label("p50") testid="p50" value=windowed(|w| ms(w.percentiles.p50)) />
            <Card label=label("p95") testid="p95" value=windowed(|w| ms(w.percentiles.p95)) />
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
