//! `/logs`: the log explorer. Its filters live in the URL; the server renders the matching
//! recent events, then the page follows the stream with the same filters.

use crate::app::components::{log_list::LogList, status_bar::StatusBar};
use crate::app::live::{connect, LiveSignals};
use crate::app::server_fns::get_logs;
use crate::model::{LogFilter, LogsSnapshot};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

const EXPLORER_LINES: usize = 500;

/// The URL's filter, asking for a screenful of lines.
pub fn use_log_filter() -> Memo<LogFilter> {
    let query = use_query_map();
    Memo::new(move |_| {
        let query = query.read();
        LogFilter {
            limit: Some(EXPLORER_LINES),
            ..LogFilter::from_query(|name| query.get(name))
        }
    })
}

#[component]
pub fn LogsPage() -> impl IntoView {
    let filter = use_log_filter();
    let snapshot = Resource::new_blocking(move || filter.get(), get_logs);
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match snapshot.await {
                    Ok(snapshot) => view! { <Explorer snapshot filter=filter.get_untracked() /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Explorer(snapshot: LogsSnapshot, filter: LogFilter) -> impl IntoView {
    let signals = LiveSignals::new(snapshot.health).with_logs(snapshot.logs);
    connect(signals, Some(&filter), EXPLORER_LINES);
    let f = filter.clone();
    let toggle_pause = move |_| {
        if signals.paused.get_untracked() {
            signals.resume(EXPLORER_LINES);
        } else {
            signals.paused.set(true);
        }
    };
    let field = |name: &'static str,
                 label: &'static str,
                 value: Option<String>,
                 placeholder: &'static str| {
        view! {
            <label>
                {label}
                <input type="text" name=name value=value placeholder=placeholder data-testid=format!("filter-{name}") />
            </label>
        }
    };
    view! {
        <StatusBar signals />
        <section class="panel filters" aria-label="Filters">
            <Form method="GET" action="/logs">
                <label>
                    "Level "
                    <select name="level" data-testid="filter-level">
                        {["", "INFO", "WARN", "ERROR"]
                            .into_iter()
                            .map(|level| {
                                let chosen = f.level.as_deref().unwrap_or("").eq_ignore_ascii_case(level);
                                view! { <option value=level selected=chosen>{if level.is_empty() { "any" } else { level }}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                {field("source", "Source ", f.source.clone(), "any")}
                {field("endpoint", "Endpoint ", f.endpoint.clone(), "/api/orders")}
                {field("status", "Status ", f.status.clone(), "503 or 5xx")}
                <label>
                    "Text "
                    <input type="search" name="q" value=f.q.clone() placeholder="press / to search" data-shortcut="filter" data-testid="filter-q" />
                </label>
                {f.from.map(|t| view! { <input type="hidden" name="from" value=t.to_rfc3339() /> })}
                {f.to.map(|t| view! { <input type="hidden" name="to" value=t.to_rfc3339() /> })}
                <button type="submit" data-testid="filter-apply">"Apply"</button>
                <a href="/logs">"Clear"</a>
            </Form>
            <button type="button" class="pause" on:click=toggle_pause data-testid="pause" aria-pressed=move || signals.paused.get().to_string()>
                {move || if signals.paused.get() { "▶ Resume" } else { "⏸ Pause" }}
            </button>
            <Show when=move || signals.paused.get()>
                <span class="hint" data-testid="held">{move || format!("{} new events held", signals.held.get())}</span>
            </Show>
        </section>
        <LogList logs=signals.logs title="Log explorer" />
    }
}
