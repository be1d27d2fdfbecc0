//! Light or dark: the system's choice until someone picks one, then theirs (kept in the browser).

use leptos::prelude::*;

/// Applies a saved choice before the first paint, so the page does not flash the other theme.
pub const APPLY_SAVED_THEME: &str = "try{var t=localStorage.getItem('lakepulse-theme');if(t)document.documentElement.setAttribute('data-theme',t)}catch(e){}";

#[component]
pub fn ThemeToggle() -> impl IntoView {
    let flip = move |_| {
        #[cfg(feature = "hydrate")]
        flip_theme();
    };
    view! {
        <button type="button" class="theme-toggle" on:click=flip aria-label="Switch between light and dark" title="Light / dark" data-testid="theme-toggle">
            "◐"
        </button>
    }
}

#[cfg(feature = "hydrate")]
fn flip_theme() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(root) = window.document().and_then(|d| d.document_element()) else {
        return;
    };
    let dark_now = match root.get_attribute("data-theme").as_deref() {
        Some(theme) => theme == "dark",
        None => window
            .match_media("(prefers-color-scheme: dark)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches()),
    };
    let next = if dark_now { "light" } else { "dark" };
    let _ = root.set_attribute("data-theme", next);
    if let Ok(Some(storage)) = window.local_storage() {
        let _ = storage.set_item("lakepulse-theme", next);
    }
}
