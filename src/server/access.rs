//! Who may ask what. Every request first passes the origin check: a Host the server answers
//! to (so a page on another site cannot reach it by DNS rebinding), and nothing cross-site but
//! a person following a link to a page (so another site cannot post to the API or the server
//! functions, nor fetch from them). Then, with LAKEPULSE_TOKEN (or LAKEPULSE_TOKEN_FILE) set,
//! every page, API call and stream needs the token as `Authorization: Bearer <token>`, or the
//! session cookie `/login` hands out for it; `/login`, the static assets and a bare `/health`
//! status stay open.

use crate::app::bundle_href;
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use leptos::prelude::LeptosOptions;
use rand::RngCore;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

const COOKIE: &str = "lakepulse_session";
const OPEN_PATHS: &[&str] = &["/health", "/livez", "/readyz", "/login", "/favicon.svg"];
/// How long a sign-in lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions kept at most; past it the oldest ends.
const MAX_SESSIONS: usize = 10_000;
/// Sign-in attempts one address may make per minute.
const LOGINS_PER_MINUTE: u32 = 10;

/// The access token and what was handed out for it.
pub struct Access {
    token: Arc<str>,
    /// Session id to when it ends. The cookie holds a random id, never the token.
    sessions: Mutex<HashMap<String, Instant>>,
    logins: DefaultKeyedRateLimiter<IpAddr>,
}

/// Whether the request comes with the token, as the health view needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No token is set, or the request carries it.
    Trusted,
    /// A token is set and the request does not carry it.
    Anonymous,
}

impl Access {
    /// Access for `token`, if it is not blank.
    pub fn new(token: &str) -> Option<Arc<Self>> {
        let token = token.trim();
        let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).expect("not zero");
        (!token.is_empty()).then(|| {
            Arc::new(Access {
                token: token.into(),
                sessions: Mutex::default(),
                logins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            })
        })
    }

    fn matches(&self, offered: &str) -> bool {
        self.token.as_bytes().ct_eq(offered.as_bytes()).into()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|offered| self.matches(offered)) {
            return true;
        }
        let session = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='));
        session.is_some_and(|id| {
            self.sessions()
                .get(id)
                .is_some_and(|ends| *ends > Instant::now())
        })
    }

    /// A new session: its id, for the cookie.
    fn open_session(&self) -> String {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, ends| *ends > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, ends)| **ends)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), now + SESSION_LIFETIME);
        id
    }
}

/// The hosts the server answers to besides its own addresses.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    /// From `ALLOWED_HOSTS`: names, comma-separated, or `*` for any.
    pub fn parse(list: &str) -> Self {
        let names: Vec<String> = list
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        AllowedHosts {
            any: names.iter().any(|name| name == "*"),
            names,
        }
    }

    /// Any host at all: a token guards the server instead (a rebound page has no session).
    pub fn any() -> Self {
        AllowedHosts {
            names: Vec::new(),
            any: true,
        }
    }

    /// Whether `host` is one of the names listed (or any is).
    fn lists(&self, host: &str) -> bool {
        self.any || self.names.contains(&host_name(host).to_ascii_lowercase())
    }

    /// An address typed as such, `localhost`, or a listed name. DNS rebinding needs a name
    /// the attacker controls, so addresses are safe to answer.
    fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.lists(&name)
    }
}

/// `host[:port]` without the port (IPv6 addresses keep their brackets).
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

/// What the guard needs: the hosts to answer and the token, if one is set.
#[derive(Clone)]
pub struct Guard {
    /// Hosts the server answers to.
    pub hosts: AllowedHosts,
    /// The token every request needs, if one is set.
    pub access: Option<Arc<Access>>,
}

fn refused(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Why a request from elsewhere is refused, if it is: another site's page may link to a page
/// here, and nothing more. A post's origin must be this host, the host a proxy says it
/// forwarded for, or a name listed in ALLOWED_HOSTS (never an address: any page can be served
/// from one).
fn cross_site(request: &Request, host: Option<&str>, hosts: &AllowedHosts) -> Option<String> {
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = request.uri().path();
    let reads_a_page = matches!(*request.method(), Method::GET | Method::HEAD) && !is_api(path);
    if text("sec-fetch-site") == Some("cross-site")
        && !(reads_a_page && text("sec-fetch-mode") == Some("navigate"))
    {
        return Some(format!("cross-site requests to {path} are refused"));
    }
    // Browsers that predate Fetch Metadata still send Origin with everything but a GET.
    let origin = text("origin")?;
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let own = Some(origin_host) == host
        || Some(origin_host) == text("x-forwarded-host")
        || hosts.lists(origin_host);
    (writes && !own).then(|| format!("requests from {origin} to {path} are refused"))
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/events" || path == "/metrics"
}

/// Refuses hosts the server does not answer to and cross-site requests; then lets a request
/// through when no token is set, when it carries the token, or when it asks for something
/// open; sends people to `/login` and programs a 401. Tells the handlers who is calling.
pub async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(str::to_owned);
    if let Some(host) = host.as_deref().filter(|host| !guard.hosts.allows(host)) {
        return refused(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to {host}; add it to ALLOWED_HOSTS to reach it by that name"
            ),
        );
    }
    if let Some(reason) = cross_site(&request, host.as_deref(), &guard.hosts) {
        return refused(StatusCode::FORBIDDEN, reason);
    }
    let path = request.uri().path();
    let open = OPEN_PATHS.contains(&path) || path.starts_with("/pkg/");
    let caller = match &guard.access {
        Some(access) if !access.allows(request.headers()) => Caller::Anonymous,
        _ => Caller::Trusted,
    };
    if caller == Caller::Anonymous && !open {
        if is_api(path) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(
                    serde_json::json!({ "error": "a token is required (Authorization: Bearer ...)" }),
                ),
            )
                .into_response();
        }
        let next_path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next_path)
            .finish();
        return Redirect::to(&format!("/login?{query}")).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Where the sign-in page sends people once they are in.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginTarget {
    /// A path on this server (anything else means `/`).
    next: Option<String>,
}

/// The sign-in form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The access token.
    token: String,
    /// Where to go next: a path on this server. A form field is there or not, never null.
    #[schema(value_type = String, required = false)]
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

/// Why the sign-in page is shown again.
#[derive(Clone, Copy, PartialEq)]
enum LoginRefusal {
    WrongToken,
    TooManyTries,
}

fn login_page(options: &LeptosOptions, next: &str, refusal: Option<LoginRefusal>) -> Html<String> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let error = match refusal {
        None => "",
        Some(LoginRefusal::WrongToken) => {
            r#"<p class="error" role="alert">That token is not the one.</p>"#
        }
        Some(LoginRefusal::TooManyTries) => {
            r#"<p class="error" role="alert">Too many tries from here: wait a minute.</p>"#
        }
    };
    Html(format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>lakepulse · sign in</title><link rel="stylesheet" href="{}"></head><body><main class="login"><h1>lakepulse</h1>{error}<form method="post" action="/login"><label>Access token <input type="password" name="token" autocomplete="current-password" autofocus required></label><input type="hidden" name="next" value="{}"><button type="submit">Sign in</button></form></main></body></html>"#,
        bundle_href(options, ".css"),
        escape(next)
    ))
}

/// `GET /login`: the sign-in page.
#[utoipa::path(get, path = "/login", tag = "access", params(LoginTarget), responses(
    (status = 200, description = "the sign-in form", content_type = "text/html", body = String),
))]
pub async fn login_form(
    State(options): State<LeptosOptions>,
    Query(target): Query<LoginTarget>,
) -> Html<String> {
    login_page(&options, &local_path(target.next), None)
}

/// Checks the token (a few tries a minute per address) and hands out a session cookie.
#[utoipa::path(post, path = "/login", tag = "access",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "signed in (a session cookie set), or no token is set: on to `next`"),
        (status = 401, description = "the wrong token: the form again", content_type = "text/html", body = String),
        (status = 429, description = "too many tries from this address: the form again", content_type = "text/html", body = String),
))]
pub async fn login(
    State(guard): State<Guard>,
    State(options): State<LeptosOptions>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next);
    let Some(access) = guard.access else {
        return Redirect::to(&next).into_response();
    };
    access.logins.retain_recent();
    if access.logins.check_key(&peer.ip()).is_err() {
        let page = login_page(&options, &next, Some(LoginRefusal::TooManyTries));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            page,
        )
            .into_response();
    }
    if !access.matches(form.token.trim()) {
        return (
            StatusCode::UNAUTHORIZED,
            login_page(&options, &next, Some(LoginRefusal::WrongToken)),
        )
            .into_response();
    }
    let behind_https = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        access.open_session(),
        SESSION_LIFETIME.as_secs(),
        if behind_https { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
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

    #[test]
    fn addresses_and_listed_names_are_answered_other_names_not() {
        let hosts = AllowedHosts::parse("Logs.Example.com, intranet");
        for host in [
            "127.0.0.1:3000",
            "[::1]:3000",
            "10.1.2.3",
            "localhost:3000",
            "app.localhost",
            "logs.example.com:443",
            "intranet",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in ["evil.example:3000", "localhost.evil.example", "example.com"] {
            assert!(!hosts.allows(host), "{host}");
        }
        assert!(AllowedHosts::parse("*").allows("anything.example"));
    }
}
