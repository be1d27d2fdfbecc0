//! The busiest endpoints of the last five minutes, with their errors and p95.

use crate::app::format;
use crate::model::MetricsSnapshot;
use leptos::prelude::*;

#[component]
pub fn EndpointTable(metrics: RwSignal<MetricsSnapshot>) -> impl IntoView {
    view! {
        <section class="panel endpoints" aria-label="Top endpoints">
            <h2>"Top endpoints (" {move || metrics.with(|m| m.window.label())} ")"</h2>
            <div class="table-wrap">
            <table data-testid="endpoint-table">
                <thead>
                    <tr>
                        <th>"Endpoint"</th>
                        <th class="num">"Requests"</th>
                        <th class="num">"Errors"</th>
                        <th class="num">"p95"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        metrics
                            .with(|m| m.by_endpoint.by_volume.clone())
                            .into_iter()
                            .map(|e| {
                                view! {
                                    <tr>
                                        <td><code>{e.endpoint}</code></td>
                                        <td class="num">{format::count(e.requests as f64)}</td>
                                        <td class="num">{format!("{} ({})", e.errors, format::percent(e.error_rate))}</td>
                                        <td class="num">{e.p95.map_or("–".to_owned(), format::millis)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
            </div>
        </section>
    }
}
