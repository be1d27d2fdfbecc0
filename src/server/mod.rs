//! The server's surface, SSR only: the router mounts the app's pages, REST and SSE, behind
//! access control. Handlers stay thin; the work happens behind `Pipeline`'s methods.

pub mod access;
mod rest;
pub mod site;
mod sse;

use crate::app::{shell, App};
use crate::pipeline::Pipeline;
use access::Guard;
use axum::extract::{FromRef, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::{Extension, Router};
use leptos::prelude::{provide_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest accepted request body (a SQL query is small).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler may ask for.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Where the site's assets are and how pages are rendered.
    pub leptos_options: LeptosOptions,
    /// The one door to the stages.
    pub pipeline: Arc<Pipeline>,
    /// The hosts it answers to and the token every request needs, if one is set.
    pub guard: Guard,
}

/// Every route: the pages (with their server functions, which find the pipeline in their
/// context), REST, SSE and `/login`.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let pipeline = state.pipeline.clone();
    // The site's files, answered with Last-Modified and 304s (the pages' fallback below hands
    // a file on without the request's headers, so it never says "not modified").
    let site = std::path::PathBuf::from(options.site_root.as_ref());
    let not_a_file = leptos_axum::file_and_error_handler::<AppState, _>(shell);
    let assets = ServeDir::new(&site)
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_a_file.with_state(state.clone()));
    // Every route but the pages (and their server functions) is in the OpenAPI document:
    // registered with `routes!`, a handler cannot be served without its entry.
    let (api, document) = OpenApiRouter::with_openapi(ApiDocument::openapi())
        .routes(routes!(rest::health))
        .routes(routes!(rest::livez))
        .routes(routes!(rest::readyz))
        .routes(routes!(rest::prometheus))
        .routes(routes!(rest::openapi))
        .routes(routes!(rest::metrics))
        .routes(routes!(rest::visits))
        .routes(routes!(rest::series))
        .routes(routes!(rest::anomalies))
        .routes(routes!(rest::logs))
        .routes(routes!(rest::query))
        .routes(routes!(rest::context))
        .routes(routes!(rest::saved_queries, rest::save_query))
        .routes(routes!(
            rest::saved_query,
            rest::change_saved_query,
            rest::delete_saved_query
        ))
        .routes(routes!(rest::cancel))
        .routes(routes!(rest::lake_history))
        .routes(routes!(rest::export))
        .routes(routes!(sse::events))
        .routes(routes!(access::login_form, access::login))
        .split_for_parts();
    api.layer(Extension(Arc::new(document)))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(pipeline.clone()),
            move || shell(options.clone()),
        )
        .nest_service("/pkg", site::bundle_files(&site))
        .fallback_service(assets)
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            access::guard,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        // Outermost but for compression, so refusals by the guard and the body limit are
        // logged too.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        // Pages and answers gzipped (the bundle's files come compressed ahead of time). The
        // live stream, which must not wait for a compressor's buffer, deflates each message
        // itself, once for all its clients (sse.rs).
        .layer(CompressionLayer::new())
        // Pages, answers and the site's other files are revalidated on every use (an unchanged
        // file costs a 304); the bundle's content-named files say they are kept for good.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .with_state(state)
}

/// The document's frame; the paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lakepulse",
        description = "Web request logs from Kafka: live metrics, anomalies and a log stream, and SQL over the Delta table they land in. With LAKEPULSE_TOKEN set, every path but /health, /livez, /readyz and /login needs `Authorization: Bearer <token>` or the session cookie /login hands out."
    ),
    tags(
        (name = "live", description = "What the live view computes from consumed events"),
        (name = "sql", description = "SQL over the Delta table"),
        (name = "operations", description = "Probes, status and metrics for operators"),
        (name = "access", description = "Signing in when a token is set"),
    )
)]
struct ApiDocument;

/// What `main` serves from the moment it binds, before the pipeline has started (which can
/// take a minute while a broker comes up): `/livez` answers, everything else is 503
/// "starting" until `app` is set, then every request goes to it.
pub fn until_started(app: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: Request| {
        let app = app.get().cloned();
        async move {
            match app {
                Some(app) => match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None => rest::starting(request).await,
            }
        }
    })
}

/// The log target of requests: `RUST_LOG=info,lakepulse::requests=warn` silences them.
const REQUESTS: &str = "lakepulse::requests";

/// One span per request, named by its route rather than its path, so that lines group by
/// endpoint and carry no query string (filters a user typed, a login token).
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    tracing::info_span!(
        target: REQUESTS,
        "request",
        method = %request.method(),
        route,
        status = tracing::field::Empty,
    )
}

/// An access-log line once the response's head is out: an SSE stream is logged when it
/// starts, not when it ends hours later.
fn log_response<B>(response: &Response<B>, latency: Duration, span: &tracing::Span) {
    let status = response.status().as_u16();
    span.record("status", status);
    tracing::info!(
        target: REQUESTS,
        status,
        latency_ms = latency.as_secs_f64() * 1e3,
        "served"
    );
}
