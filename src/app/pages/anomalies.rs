//! `/anomalies`: what left its baseline, now and before; each one links to its events in
//! `/logs` and to a ready SQL query over its time range.

use crate::app::components::{anomaly_list::shown, status_bar::StatusBar};
use crate::app::live::{connect, LiveSignals};
use crate::app::pages::query::query_href;
use crate::app::server_fns::get_anomalies;
use crate::context::sql_string;
use crate::model::{AnomaliesSnapshot, Anomaly, AnomalyKind, LogFilter};
use chrono::Duration;
use leptos::prelude::*;

/// Minutes of context around an anomaly in its links.
const CONTEXT_MINUTES: i64 = 2;

fn endpoint_of(anomaly: &Anomaly) -> Option<&str> {
    anomaly.scope.strip_prefix("endpoint:")
}

fn logs_href(anomaly: &Anomaly) -> String {
    let filter = LogFilter {
        endpoint: endpoint_of(anomaly).map(str::to_owned),
        status: (anomaly.kind == AnomalyKind::ErrorRate).then(|| "5xx".to_owned()),
        from: Some(anomaly.started - Duration::minutes(CONTEXT_MINUTES)),
        to: anomaly
            .ended
            .map(|t| t + Duration::minutes(CONTEXT_MINUTES)),
        ..LogFilter::default()
    };
    format!("/logs?{}", filter.to_query())
}

fn sql_for(anomaly: &Anomaly) -> String {
    let from = (anomaly.started - Duration::minutes(CONTEXT_MINUTES)).to_rfc3339();
    let to = anomaly
        .ended
        .map_or_else(chrono::Utc::now, |t| t + Duration::minutes(CONTEXT_MINUTES))
        .to_rfc3339();
    let endpoint = endpoint_of(anomaly)
        .map(|e| format!("\n  AND endpoint = {}", sql_string(e)))
        .unwrap_or_default();
    format!(
        "SELECT date_trunc('minute', timestamp) AS minute,\n       count(*) AS requests,\n       sum(CASE WHEN status >= 500 OR level = 'ERROR' THEN 1 ELSE 0 END) AS errors,\n       approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95_ms\nFROM logs\nWHERE timestamp BETWEEN '{from}' AND '{to}'{endpoint}\nGROUP BY 1\nORDER BY 1"
    )
}

#[component]
pub fn AnomaliesPage() -> impl IntoView {
    let snapshot = Resource::new_blocking(|| (), |_| get_anomalies());
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match snapshot.await {
                    Ok(snapshot) => view! { <Anomalies snapshot /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Anomalies(snapshot: AnomaliesSnapshot) -> impl IntoView {
    let signals = LiveSignals::new(snapshot.health).with_anomalies(snapshot.anomalies);
    connect(signals, None, 0);
    view! {
        <StatusBar signals />
        <section class="panel" aria-label="Anomalies">
            <h2>"Anomalies"</h2>
            <Show when=move || signals.anomalies.with(|a| !a.is_empty()) fallback=|| view! { <p class="empty">"Nothing unusual so far."</p> }>
                <div class="table-wrap">
                <table class="anomaly-table" data-testid="anomaly-table">
                    <thead>
                        <tr>
                            <th>"State"</th>
                            <th>"What"</th>
                            <th>"Where"</th>
                            <th class="num">"Value"</th>
                            <th class="num">"Peak"</th>
                            <th class="num">"Baseline"</th>
                            <th>"From"</th>
                            <th>"To"</th>
                            <th>"Look closer"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            signals.anomalies.get().into_iter().map(|a| {
                                let state = match a.ended { Some(_) => "ended".to_owned(), None => format!("open · {:?}", a.severity).to_lowercase() };
                                view! {
                                    <tr class:open=a.ended.is_none()>
                                        <td>{state}</td>
                                        <td>{a.kind.describe()}</td>
                                        <td><code>{a.scope.clone()}</code></td>
                                        <td class="num">{shown(a.kind, a.value)}</td>
                                        <td class="num">{shown(a.kind, a.peak)}</td>
                                        <td class="num">{shown(a.kind, a.baseline)}</td>
                                        <td>{a.started.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                                        <td>{a.ended.map(|t| t.format("%H:%M:%S").to_string())}</td>
                                        <td>
                                            <a href=logs_href(&a) data-testid="anomaly-logs">"events"</a>
                                            " · "
                                            <a href=query_href(&sql_for(&a), None) data-testid="anomaly-sql">"SQL"</a>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()
                        }}
                    </tbody>
                </table>
                </div>
            </Show>
        </section>
    }
}
