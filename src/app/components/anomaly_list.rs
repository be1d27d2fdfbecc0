//! What left its baseline: open anomalies first, then the last ones that ended.

use crate::app::format;
use crate::model::{Anomaly, AnomalyKind, Severity};
use leptos::prelude::*;

pub fn shown(kind: AnomalyKind, value: f64) -> String {
    match kind {
        AnomalyKind::ErrorRate => format::percent(value),
        AnomalyKind::Latency => format::millis(value),
        AnomalyKind::TrafficSpike | AnomalyKind::TrafficDrop => {
            format!("{} / 10 s", format::count(value))
        }
    }
}

#[component]
pub fn AnomalyList(anomalies: RwSignal<Vec<Anomaly>>) -> impl IntoView {
    view! {
        <section class="panel anomalies" aria-label="Anomalies">
            <h2>"Anomalies " <a class="more" href="/anomalies">"all of them →"</a></h2>
            <Show
                when=move || anomalies.with(|a| !a.is_empty())
                fallback=|| view! { <p class="empty">"Nothing unusual."</p> }
            >
                <ul data-testid="anomaly-list">
                    {move || {
                        anomalies
                            .get()
                            .into_iter()
                            .take(8)
                            .map(|a| {
                                let icon = match (a.ended, a.severity) {
                                    (Some(_), _) => "✔",
                                    (None, Severity::Critical) => "🔴",
                                    (None, Severity::Warning) => "🟡",
                                };
                                let when = match a.ended {
                                    Some(ended) => format!("{} – {}", a.started.format("%H:%M:%S"), ended.format("%H:%M:%S")),
                                    None => format!("since {}", a.started.format("%H:%M:%S")),
                                };
                                view! {
                                    <li class:open=a.ended.is_none()>
                                        <span class="icon">{icon}</span>
                                        <strong>{a.kind.describe()}</strong>
                                        " on "
                                        <code>{a.scope.clone()}</code>
                                        ": "
                                        {shown(a.kind, a.value)}
                                        " (baseline "
                                        {shown(a.kind, a.baseline)}
                                        ") "
                                        <span class="when">{when}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </Show>
        </section>
    }
}
