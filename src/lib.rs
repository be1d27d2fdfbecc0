//! lakepulse: Kafka web-request events → live dashboard (SSE), Delta Lake table, DataFusion SQL.
#![recursion_limit = "256"]

pub mod app;
#[cfg(feature = "ssr")]
pub mod cli;
pub mod context;
#[cfg(feature = "ssr")]
pub mod files;
pub mod model;
pub mod pipeline;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod tools;
pub mod visits;

/// The server's allocator. Decoding and counting make and drop a dozen short strings per
/// event; with glibc's allocator a third of ingest's time went to malloc and free. Without
/// transparent huge pages (`no_thp`): with them, RSS under 10 000 SSE clients grew from 324 to
/// 550 MiB.
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The browser entry point: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Keys and clicks before this point reach plain HTML only; tests (and scripts driving
    // the page) wait for the mark rather than guess.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
