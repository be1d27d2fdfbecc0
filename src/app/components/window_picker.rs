//! The time window of the page, kept in the URL (`?window=1m|5m|1h|all`).

use crate::model::Window;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The window the URL asks for (5 minutes when it says nothing or nonsense).
pub fn use_window() -> Memo<Window> {
    let query = use_query_map();
    Memo::new(move |_| {
        query
            .read()
            .get("window")
            .and_then(|w| Window::parse(&w))
            .unwrap_or_default()
    })
}

#[component]
pub fn WindowPicker(window: Memo<Window>) -> impl IntoView {
    view! {
        <nav class="windows" aria-label="Time window">
            {Window::ALL
                .into_iter()
                .map(|w| {
                    view! {
                        <a
                            href=format!("?window={}", w.label())
                            aria-current=move || (window.get() == w).then_some("page")
                            data-testid=format!("window-{}", w.label())
                        >
                            {w.label()}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}
