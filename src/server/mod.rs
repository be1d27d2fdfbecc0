//! The server's surface, SSR only: the router mounts the app's pages, REST and SSE, behind
//! access control. Handlers stay thin; the work happens behind `Pipeline`'s methods.

pub mod access;
mod rest;
mod sse;

use crate::app::{shell, App};
use crate::pipeline::Pipeline;
use access::Guard;
use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use axum::Router;
use leptos::prelude::{provide_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;

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
    Router::new()
        .route("/health", get(rest::health))
        .route("/api/metrics", get(rest::metrics))
        .route("/api/series", get(rest::series))
        .route("/api/anomalies", get(rest::anomalies))
        .route("/api/logs", get(rest::logs))
        .route("/api/query", post(rest::query))
        .route("/api/query/{id}", delete(rest::cancel))
        .route("/api/lake/history", get(rest::lake_history))
        .route("/api/export", get(rest::export))
        .route("/events", get(sse::events))
        .route("/login", get(access::login_form).post(access::login))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(pipeline.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            access::guard,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .with_state(state)
}
