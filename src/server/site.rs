//! The browser's files. `make site` names them by their content (`web/site.mjs`) and writes
//! that name to `bundle.txt`; pages link the files under it, so a browser may keep them for a
//! year: a new build has a new name. Their Brotli and gzip copies are made ahead of time.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use std::path::Path;
use tower_http::services::ServeDir;

/// The name the bundle's files carry in `pkg/` (`lakepulse.HASH`), as `make site` wrote it.
/// Without a built site, pages still render (unhydrated) under the plain name.
pub fn bundle_name(site_root: &Path) -> String {
    let written = site_root.join("bundle.txt");
    match std::fs::read_to_string(&written) {
        Ok(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => {
            tracing::warn!(file = %written.display(), "no built site (`make site` writes it): pages render without their scripts and styles");
            "lakepulse".to_owned()
        }
    }
}

/// `/pkg/`: the bundle's files, Brotli or gzip as the browser takes them, kept for good.
pub fn bundle_files(site_root: &Path) -> Router {
    let files = ServeDir::new(site_root.join("pkg"))
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(axum::middleware::map_response(kept_for_good))
}

/// A content-named file never changes; a missing one may yet appear, so only a found file is
/// marked.
async fn kept_for_good(mut response: Response) -> Response {
    if response.status().is_success() || response.status().is_redirection() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}
