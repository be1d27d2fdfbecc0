//! `/`: the overview people keep open.

use crate::app::components::{
    anomaly_list::AnomalyList,
    charts::LiveCharts,
    endpoint_table::EndpointTable,
    log_list::LogList,
    metrics_grid::MetricsGrid,
    sql_box::SqlBox,
    status_bar::StatusBar,
    visit_panels::VisitPanels,
    window_picker::{use_window, WindowPicker},
};
use crate::app::live::{connect, LiveSignals};
use crate::app::server_fns::get_overview;
use crate::model::{DashboardSnapshot, LogFilter};
use leptos::prelude::*;

/// Lines of the live tail on the overview.
const TAIL_LINES: usize = 50;

#[component]
pub fn DashboardPage() -> impl IntoView {
    // A new window is a new first paint: the stream's visit report follows the page's window.
    let window = use_window();
    let snapshot = Resource::new_blocking(
        move || window.get(),
        |window| get_overview(TAIL_LINES, window),
    );
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
    let signals = LiveSignals::new(snapshot.health)
        .with_metrics(snapshot.metrics)
        .with_logs(snapshot.recent_logs)
        .with_anomalies(snapshot.anomalies)
        .with_visits(snapshot.visits);
    connect(signals, Some(&LogFilter::default()), TAIL_LINES);
    let window = use_window();
    view! {
        <StatusBar signals />
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
        <VisitPanels visits=signals.visits />
    }
}
