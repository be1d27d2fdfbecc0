//! The UI, rendered on the server and hydrated in the browser.

pub mod completion;
pub mod components;
pub mod format;
pub mod live;
pub mod pages;
pub mod server_fns;
pub mod shortcuts;
pub mod sql_highlight;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment};

/// A file of the bundle (`.css`, `.echarts.js`...), under the content-hashed name `make site`
/// gave it.
pub fn bundle_href(options: &LeptosOptions, suffix: &str) -> String {
    format!("/{}/{}{suffix}", options.site_pkg_dir, options.output_name)
}

/// The HTML document every page renders into.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let stylesheet = bundle_href(&options, ".css");
    // ECharts for charming's charts: the parts the pages draw, served by lakepulse itself.
    let echarts = bundle_href(&options, ".echarts.js");
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <script>{components::theme_toggle::APPLY_SAVED_THEME}</script>
                <link rel="stylesheet" href=stylesheet />
                <script src=echarts></script>
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The app: top bar, router and pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="lakepulse" />
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"lakepulse"</a>
                <nav class="pages" aria-label="Pages">
                    <a href="/">"Overview"</a>
                    <a href="/logs">"Logs"</a>
                    <a href="/anomalies">"Anomalies"</a>
                    <a href="/query">"Query"</a>
                    // A static page (Swagger UI), not one of the app's routes.
                    <a href="/api-docs/" rel="external">"API"</a>
                </nav>
                <span class="tagline">"Kafka → live · Delta Lake · SQL"</span>
                <components::theme_toggle::ThemeToggle />
            </header>
            <shortcuts::Shortcuts />
            <main>
                // Async: the page waits for its data so the first HTML already has the numbers.
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=pages::dashboard::DashboardPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("query") view=pages::query::QueryPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("logs") view=pages::logs::LogsPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("anomalies") view=pages::anomalies::AnomaliesPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("context") view=pages::context::ContextPage ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="shortcuts-help">"Keys: " {shortcuts::HELP}</footer>
        </Router>
    }
}
