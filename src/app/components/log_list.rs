//! The live tail, newest first. Click a line (or press Enter on it) for its full JSON.

use crate::app::format;
use crate::model::LogEvent;
use leptos::prelude::*;

/// Tells rows apart across re-renders well enough to keep one open. Rows alike in all of
/// these (a client fetching one URL twice within a log's one-second resolution) are numbered
/// by their order, so a click opens one of them, not all.
fn row_key(e: &LogEvent) -> String {
    format!(
        "{}|{}|{}|{}",
        e.timestamp.timestamp_micros(),
        e.endpoint,
        e.ip.as_deref().unwrap_or(""),
        e.status
    )
}

#[component]
pub fn LogList(
    logs: RwSignal<Vec<LogEvent>>,
    #[prop(default = "Live logs")] title: &'static str,
) -> impl IntoView {
    let open = RwSignal::new(None::<String>);
    view! {
        <section class="panel logs" aria-label=title>
            <h2>{title}</h2>
            <Show when=move || logs.with(|l| !l.is_empty()) fallback=|| view! { <p class="empty">"No events yet."</p> }>
                <ol class="loglines" data-testid="log-list">
                    {move || {
                        let mut alike = std::collections::HashMap::<String, usize>::new();
                        logs.get()
                            .into_iter()
                            .map(|e| {
                                let key = row_key(&e);
                                let nth = alike.entry(key.clone()).or_default();
                                *nth += 1;
                                let key = format!("{key}#{nth}");
                                let level = e.level.to_lowercase();
                                let is_open = open.get().as_ref() == Some(&key);
                                let detail = is_open.then(|| serde_json::to_string_pretty(&e).unwrap_or_default());
                                let toggle = move |_| open.update(|o| *o = if o.as_ref() == Some(&key) { None } else { Some(key.clone()) });
                                view! {
                                    <li>
                                        <button type="button" class=format!("logline {level}") aria-expanded=is_open.to_string() on:click=toggle>
                                            <time>{e.timestamp.format("%H:%M:%S%.3f").to_string()}</time>
                                            <span class="level">{e.level}</span>
                                            <span class="status">{e.status}</span>
                                            <span class="method">{e.method}</span>
                                            <span class="endpoint">{e.endpoint}</span>
                                            <span class="rt">{e.response_time.map(format::millis)}</span>
                                            <span class="source">{e.source}</span>
                                        </button>
                                        {detail.map(|json| view! { <pre class="event-json" data-testid="event-json">{json}</pre> })}
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
