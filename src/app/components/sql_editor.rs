//! A SQL textarea with syntax colours drawn underneath it; Ctrl/Cmd+Enter runs the query.

use crate::app::sql_highlight::tokenize;
use leptos::html;
use leptos::prelude::*;

#[component]
pub fn SqlEditor(initial: String) -> impl IntoView {
    let text = RwSignal::new(initial.clone());
    let colours = NodeRef::<html::Pre>::new();
    let area = NodeRef::<html::Textarea>::new();
    // What was typed before the page hydrated is the user's query: colour it, keep it.
    Effect::new(move |_| {
        if let Some(area) = area.get() {
            text.set(area.value());
        }
    });
    let highlighted = move || {
        text.with(|sql| {
            let mut pieces: Vec<_> = tokenize(sql)
                .into_iter()
                .map(|(token, piece)| view! { <span class=token.class()>{piece.to_owned()}</span> })
                .collect();
            // A trailing newline needs a character after it to take up its line.
            pieces.push(view! { <span class="">{" ".to_owned()}</span> });
            pieces
        })
    };
    view! {
        <div class="sql-editor">
            <pre node_ref=colours aria-hidden="true">{highlighted}</pre>
            <textarea
                name="sql"
                aria-label="SQL query"
                spellcheck="false"
                autocomplete="off"
                data-testid="sql-input"
                node_ref=area
                on:input=move |ev| text.set(event_target_value(&ev))
                on:scroll=move |ev| {
                    if let Some(pre) = colours.get() {
                        let area = event_target::<web_sys::HtmlTextAreaElement>(&ev);
                        pre.set_scroll_top(area.scroll_top());
                        pre.set_scroll_left(area.scroll_left());
                    }
                }
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        let area = event_target::<web_sys::HtmlTextAreaElement>(&ev);
                        if let Some(form) = area.form() {
                            let _ = form.request_submit();
                        }
                    }
                }
            >
                {initial}
            </textarea>
        </div>
    }
}
