//! The live tail: newest first.

use crate::app::format;
use crate::model::LogEvent;
use leptos::prelude::*;

#[component]
pub fn LogList(logs: RwSignal<Vec<LogEvent>>) -> impl IntoView {
    view! {
        <section class="panel logs" aria-label="Live logs">
            <h2>"Live logs"</h2>
            <Show when=move || logs.with(|l| !l.is_empty()) fallback=|| view! { <p class="empty">"No events yet."</p> }>
                <ol class="loglines" data-testid="log-list">
                    {move || {
                        logs.get()
                            .into_iter()
                            .map(|e| {
                                let level = e.level.to_lowercase();
                                view! {
                                    <li class=format!("logline {level}")>
                                        <time>{e.timestamp.format("%H:%M:%S%.3f").to_string()}</time>
                                        <span class="level">{e.level}</span>
                                        <span class="status">{e.status}</span>
                                        <span class="method">{e.method}</span>
                                        <span class="endpoint">{e.endpoint}</span>
                                        <span class="rt">{e.response_time.map(format::millis)}</span>
                                        <span class="source">{e.source}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ol>
            </Show>
        </section>
    }
}
