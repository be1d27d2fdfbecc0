//! The seed's eight numbers.

use crate::app::format;
use crate::model::MetricsSnapshot;
use leptos::prelude::*;

#[component]
fn Card(label: &'static str, testid: &'static str, value: Signal<String>) -> impl IntoView {
    view! {
        <div class="card">
            <div class="label">{label}</div>
            <div class="value" data-testid=testid>{move || value.get()}</div>
        </div>
    }
}

#[component]
pub fn MetricsGrid(metrics: RwSignal<MetricsSnapshot>) -> impl IntoView {
    let show = move |f: fn(&MetricsSnapshot) -> String| Signal::derive(move || metrics.with(f));
    view! {
        <section class="grid" aria-label="Live metrics">
            <Card label="Events / s" testid="events-per-sec" value=show(|m| format::count(m.events_per_sec)) />
            <Card label="Error rate (1 m)" testid="error-rate" value=show(|m| format::percent(m.error_rate)) />
            <Card label="Avg response (1 m)" testid="avg-response-time" value=show(|m| format::millis(m.avg_response_time)) />
            <Card label="Active sessions (5 m)" testid="active-sessions" value=show(|m| format::count(m.active_sessions as f64)) />
            <Card label="Total requests" testid="total-requests" value=show(|m| m.total_requests.to_string()) />
            <Card label="Total errors" testid="total-errors" value=show(|m| m.total_errors.to_string()) />
            <Card label="Data processed" testid="data-processed" value=show(|m| format::bytes(m.data_processed)) />
            <Card
                label="Malformed"
                testid="malformed"
                value=show(|m| m.malformed.values().sum::<u64>().to_string())
            />
        </section>
        <p class="updated">"Updated " {move || metrics.with(|m| m.last_update.format("%H:%M:%S").to_string())} " UTC"</p>
    }
}
