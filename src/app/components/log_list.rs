//! The live tail, newest first. Click a line (or press Enter on it) for its full JSON and the
//! links to its context.

use crate::app::format;
use crate::context::{ContextRequest, Place};
use crate::model::LiveEvent;
use leptos::prelude::*;

#[component]
pub fn LogList(
    logs: RwSignal<Vec<LiveEvent>>,
    #[prop(default = "Live logs")] title: &'static str,
) -> impl IntoView {
    // The open row, by its number: it stays open while newer rows arrive above it.
    let open = RwSignal::new(None::<u64>);
    view! {
        <section class="panel logs" aria-label=title>
            <h2>{title}</h2>
            <Show when=move || logs.with(|l| !l.is_empty()) fallback=|| view! { <p class="empty">"No events yet."</p> }>
                <ol class="loglines" data-testid="log-list">
                    // Keyed by number: a batch adds its rows and drops the oldest, and the rows
                    // already shown are left as they are.
                    <For each=move || logs.get() key=|live| live.seq let:live>
                        <LogLine live open />
                    </For>
                </ol>
            </Show>
        </section>
    }
}

/// One event; `open` is the number of the line showing its detail. On a context page, `place`
/// marks the anchor, and `committed` false an event no commit holds yet.
#[component]
pub fn LogLine(
    live: LiveEvent,
    open: RwSignal<Option<u64>>,
    #[prop(optional)] place: Option<Place>,
    #[prop(default = true)] committed: bool,
) -> impl IntoView {
    let LiveEvent { seq, event } = live;
    let marks = [
        match place {
            Some(Place::Anchor) => "anchor",
            _ => "",
        },
        if committed { "" } else { "uncommitted" },
    ]
    .join(" ");
    let is_open = move || open.get() == Some(seq);
    let toggle = move |_| open.update(|o| *o = if *o == Some(seq) { None } else { Some(seq) });
    let level = event.level.to_lowercase();
    let detail = {
        let event = event.clone();
        move || {
            is_open().then(|| {
                let json = serde_json::to_string_pretty(&event).unwrap_or_default();
                let context = ContextRequest::around(&event);
                let in_session = event
                    .session_id
                    .clone()
                    .map(|s| context.in_session(Some(s)).href());
                view! {
                    <div class="event-detail">
                        <nav class="context-links" aria-label="Context">
                            <a href=context.href() data-testid="context-link">"Context"</a>
                            {in_session.map(|href| view! { <a href=href data-testid="session-context-link">"Session context"</a> })}
                        </nav>
                        <pre class="event-json" data-testid="event-json">{json}</pre>
                    </div>
                }
            })
        }
    };
    view! {
        <li data-seq=seq class=marks.trim().to_owned()>
            <button type="button" class=format!("logline {level}") aria-expanded=move || is_open().to_string() on:click=toggle>
                <time>{event.timestamp.format("%H:%M:%S%.3f").to_string()}</time>
                <span class="level">{event.level}</span>
                <span class="status">{event.status}</span>
                <span class="method">{event.method}</span>
                <span class="endpoint">{event.endpoint}</span>
                <span class="rt">{event.response_time.map(format::millis)}</span>
                <span class="source">{event.source}</span>
            </button>
            {detail}
        </li>
    }
}
