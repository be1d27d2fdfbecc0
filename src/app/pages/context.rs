//! `/context`: the events just before and after one instant from one source (or one session
//! of it), as Loki shows a line's context. Everything it shows is in its URL; the log lines and
//! query results link here.

use crate::app::components::log_list::LogLine;
use crate::app::pages::query::query_href;
use crate::app::server_fns::get_context;
use crate::context::{ContextRequest, LogContext, Place, MAX_LINES};
use crate::model::LiveEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use std::collections::BTreeSet;

#[component]
pub fn ContextPage() -> impl IntoView {
    let query = use_query_map();
    let asked = Memo::new(move |_| {
        let query = query.read();
        ContextRequest::from_query(|name| query.get(name)).map_err(|e| e.to_string())
    });
    let context = Resource::new_blocking(
        move || asked.get(),
        |asked| async move {
            match asked {
                Ok(request) => get_context(request).await.map_err(|e| e.to_string()),
                Err(error) => Err(error),
            }
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match context.await {
                    Ok(context) => view! { <Context context /> }.into_any(),
                    Err(error) => view! { <p class="error" data-testid="context-error">{error}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Context(context: LogContext) -> impl IntoView {
    let LogContext { request, lines } = context;
    let open = RwSignal::new(None::<u64>);
    let at = request.at.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string();
    let whom = match &request.session {
        Some(session) => format!("session {session} of {}", request.source),
        None => request.source.clone(),
    };
    // The anchors' sessions, to narrow to; or the whole source again.
    let narrowing = match &request.session {
        Some(_) => vec![(
            request.in_session(None).href(),
            format!("All of {}", request.source),
        )],
        None => lines
            .iter()
            .filter(|l| l.place == Place::Anchor)
            .filter_map(|l| l.event.session_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|s| {
                let label = format!("Only session {s}");
                (request.in_session(Some(s)).href(), label)
            })
            .collect(),
    };
    let wider = (request.lines() < MAX_LINES).then(|| ContextRequest {
        lines: Some((request.lines() * 2).min(MAX_LINES)),
        ..request.clone()
    });
    let anchors = lines.iter().filter(|l| l.place == Place::Anchor).count();
    let uncommitted = lines.iter().filter(|l| !l.committed).count();
    let summary = format!(
        "{} events, {anchors} at the instant{}",
        lines.len(),
        if uncommitted > 0 {
            format!(", {uncommitted} not yet in the lake (shown from the live stream)")
        } else {
            String::new()
        }
    );
    view! {
        <section class="panel context" aria-label="Context">
            <h2>"Context of " {whom} " at " <time>{at}</time></h2>
            <p class="hint" data-testid="context-summary">{summary}</p>
            <nav class="context-actions" aria-label="Context">
                {narrowing
                    .into_iter()
                    .map(|(href, label)| view! { <a href=href data-testid="context-narrow">{label}</a> })
                    .collect_view()}
                {wider.map(|w| view! { <a href=w.href() data-testid="context-more">"More lines"</a> })}
                <a href=query_href(&request.sql(), None) data-testid="context-sql">"Open in SQL"</a>
            </nav>
            <Show when=move || anchors == 0>
                <p class="empty" data-testid="context-no-anchor">"No event of this source at that instant: the nearest are shown."</p>
            </Show>
            <ol class="loglines" data-testid="context-list">
                {lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, line)| {
                        let live = LiveEvent { seq: i as u64, event: line.event };
                        view! { <LogLine live open place=line.place committed=line.committed /> }
                    })
                    .collect_view()}
            </ol>
        </section>
    }
}
