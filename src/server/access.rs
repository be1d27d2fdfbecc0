//! Optional access control: with LAKEPULSE_TOKEN (or LAKEPULSE_TOKEN_FILE) set, every page,
//! API call and stream needs the token, as `Authorization: Bearer <token>` or as the cookie
//! `/login` sets. `/health`, `/login` and the static assets stay open.

use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;
use subtle::ConstantTimeEq;

const COOKIE: &str = "lakepulse_token";
const OPEN_PATHS: &[&str] = &["/health", "/login", "/favicon.svg", "/echarts.min.js"];

#[derive(Clone)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| AccessToken(token.into()))
    }

    fn matches(&self, offered: &str) -> bool {
        self.0.as_bytes().ct_eq(offered.as_bytes()).into()
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='));
        bearer
            .or(cookie)
            .is_some_and(|offered| self.matches(offered))
    }
}

/// Lets a request through when no token is configured, when it carries the token, or when it
/// asks for something open; sends people to `/login` and programs a 401.
pub async fn guard(
    State(token): State<Option<AccessToken>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = OPEN_PATHS.contains(&path) || path.starts_with("/pkg/");
    match &token {
        Some(token) if !open && !token.allows(request.headers()) => {
            let wants_page = !path.starts_with("/api/") && path != "/events";
            if wants_page {
                let next_path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next_path)
                    .finish();
                Redirect::to(&format!("/login?{query}")).into_response()
            } else {
                let body = axum::Json(
                    serde_json::json!({ "error": "a token is required (Authorization: Bearer ...)" }),
                );
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    body,
                )
                    .into_response()
            }
        }
        _ => next.run(request).await,
    }
}

#[derive(Deserialize)]
pub struct LoginTarget {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only paths on this server, so the form cannot be used to send people elsewhere: browsers
/// read `//host` and `/\host` alike as another site, and a control character could split
/// the redirect's header.
fn local_path(next: Option<String>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
    })
    .unwrap_or_else(|| "/".to_owned())
}

fn login_page(next: &str, failed: bool) -> Html<String> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let error = if failed {
        r#"<p class="error" role="alert">That token is not the one.</p>"#
    } else {
        ""
    };
    Html(format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>lakepulse · sign in</title><link rel="stylesheet" href="/pkg/lakepulse.css"></head><body><main class="login"><h1>lakepulse</h1>{error}<form method="post" action="/login"><label>Access token <input type="password" name="token" autocomplete="current-password" autofocus required></label><input type="hidden" name="next" value="{}"><button type="submit">Sign in</button></form></main></body></html>"#,
        escape(next)
    ))
}

pub async fn login_form(Query(target): Query<LoginTarget>) -> Html<String> {
    login_page(&local_path(target.next), false)
}

pub async fn login(
    State(token): State<Option<AccessToken>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next);
    match token {
        Some(token) if token.matches(form.token.trim()) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                form.token.trim()
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Some(_) => (StatusCode::UNAUTHORIZED, login_page(&next, true)).into_response(),
        None => Redirect::to(&next).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_sends_people_only_to_paths_on_this_server() {
        let next = |path: &str| local_path(Some(path.to_owned()));
        assert_eq!(next("/logs?level=ERROR"), "/logs?level=ERROR");
        for elsewhere in [
            "//evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "https://evil.example",
            "/ok\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(next(elsewhere), "/", "{elsewhere:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
