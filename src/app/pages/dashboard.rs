//! `/`: the overview people keep open.

use crate::api::get_dashboard;
use crate::app::components::{
    anomaly_list::AnomalyList,
    charts::LiveCharts,
    endpoint_table::EndpointTable,
    log_list::LogList,
    metrics_grid::MetricsGrid,
    sql_box::SqlBox,
    status_bar::StatusBar,
    window_picker::{use_window, WindowPicker},
};
use crate::app::live::{connect, LiveSignals};
use crate::model::{DashboardSnapshot, StageState};
use leptos::prelude::*;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let snapshot = Resource::new_blocking(|| (), |_| get_dashboard());
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match snapshot.await {
                    Ok(snapshot) => view! { <LiveDashboard snapshot /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveDashboard(snapshot: DashboardSnapshot) -> impl IntoView {
    let signals = LiveSignals {
        metrics: RwSignal::new(snapshot.metrics),
        health: RwSignal::new(snapshot.health),
        logs: RwSignal::new(snapshot.recent_logs),
        anomalies: RwSignal::new(snapshot.anomalies),
        link: RwSignal::new(StageState::Connecting),
    };
    connect(signals);
    let window = use_window();
    view! {
        <StatusBar health=signals.health link=signals.link />
        <WindowPicker window />
        <MetricsGrid metrics=signals.metrics window />
        <LiveCharts metrics=signals.metrics />
        <div class="panels">
            <AnomalyList anomalies=signals.anomalies />
            <EndpointTable metrics=signals.metrics />
        </div>
        <div class="panels">
            <LogList logs=signals.logs />
            <SqlBox />
        </div>
    }
}
