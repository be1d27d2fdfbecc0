//! Keyboard shortcuts: `/` focuses the filter, `g` then `o`/`l`/`a`/`q` goes to the overview,
//! logs, anomalies or query page. Keys typed into a field are left alone.

use leptos::prelude::*;

pub const HELP: &str =
    "/ filter · g o overview · g l logs · g a anomalies · g q query · Ctrl/⌘+Enter run SQL";

#[component]
pub fn Shortcuts() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    listen();
}

#[cfg(feature = "hydrate")]
fn listen() {
    use leptos_router::hooks::use_navigate;
    use std::cell::Cell;
    use wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement};

    /// How long after `g` the second key counts, in ms.
    const CHORD_MS: f64 = 1500.0;
    let navigate = use_navigate();
    let g_pressed_at = Cell::new(None::<f64>);
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if typing {
            return;
        }
        let now = js_sys::Date::now();
        let chord = g_pressed_at.take().is_some_and(|at| now - at < CHORD_MS);
        let go = |path: &str| navigate(path, Default::default());
        match ev.key().as_str() {
            "/" => {
                ev.prevent_default();
                let filter = document()
                    .query_selector("[data-shortcut=filter]")
                    .ok()
                    .flatten()
                    .and_then(|el| el.dyn_into::<HtmlElement>().ok());
                match filter {
                    Some(input) => {
                        let _ = input.focus();
                    }
                    None => go("/logs"),
                }
            }
            "g" => g_pressed_at.set(Some(now)),
            "o" if chord => go("/"),
            "l" if chord => go("/logs"),
            "a" if chord => go("/anomalies"),
            "q" if chord => go("/query"),
            _ => {}
        }
    });
    // The app lives as long as the page; so does the listener.
    std::mem::forget(handle);
}
