//! The HTTP edge: body limits and the access token.

use super::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn oversized_request_bodies_are_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _client) = Server::ready(&[]).await;
    // A client announcing 2 MiB is refused before it sends any of it. (Sending the body too
    // would race the server's close: an early answer on a connection whose unread bytes make
    // the kernel reset it can be lost, whichever HTTP client sends.)
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("a connection");
    stream
        .write_all(
            format!(
                "POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                2 * 1024 * 1024
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer without the body")
        .expect("a readable answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or_default()
    );
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn with_a_token_set_pages_and_apis_need_it_and_health_says_only_its_verdict() {
    const TOKEN: &str = "s3cret-token";
    let server = Server::start_with(&[("LAKEPULSE_TOKEN", TOKEN)]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Open to probes, but the paths, brokers and errors only with the token.
    let health: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
    assert_eq!(health, json!({ "status": "ok" }));
    let detail: Value = client
        .get(server.url("/health"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["kafka"]["topic"], "web-logs");
    let live = client.get(server.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_ne!(ready.status(), 401);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready
            .get("reason")
            .is_none_or(|r| r.get("detail").is_none()),
        "{ready}"
    );
    // A scraper carries the token like any API client.
    let scrape = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 401);
    let scrape = client
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape
        .text()
        .await
        .unwrap()
        .contains("lakepulse_uptime_seconds"));

    let refused = client.get(server.url("/api/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = client
        .get(server.url("/api/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _) = sql(&client, &server, "SELECT 1").await;
    assert_eq!(status, 401);
    let allowed = client
        .get(server.url("/api/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        client
            .get(server.url("/events"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A person is sent to sign in, and comes back with a session cookie that is not the token.
    let page = client
        .get(server.url("/query?sql=SELECT%201"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/login?next=%2Fquery%3Fsql%3DSELECT%25201"
    );
    let login = |token: &'static str| {
        client
            .post(server.url("/login"))
            .form(&[("token", token), ("next", "//evil.example/")])
            .send()
    };
    assert_eq!(login("guess").await.unwrap().status(), 401);
    let signed_in = login(TOKEN).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/", "only local paths");
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=604800", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    let page = client
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("total-requests"));
    // The token itself is no cookie; a made-up session is none either.
    for forged in [
        format!("lakepulse_session={TOKEN}"),
        format!("lakepulse_session={}", "0".repeat(64)),
    ] {
        let api = client
            .get(server.url("/api/metrics"))
            .header("cookie", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 401);
    }
    // Behind an https proxy the cookie is sent over https only.
    let proxied = client
        .post(server.url("/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(proxied.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));

    // Guessing is slow: ten tries a minute from one address, then 429, even for the token.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(login("guess").await.unwrap().status().as_u16());
    }
    assert!(statuses.ends_with(&[429, 429]), "{statuses:?}");
    let limited = login(TOKEN).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "60");
}

#[tokio::test]
async fn other_hosts_and_other_sites_are_refused() {
    let (server, client) = Server::ready(&[]).await;
    let metrics = server.url("/api/metrics");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    // A name that resolves here only by DNS rebinding; addresses and localhost are answered.
    for (host, expected) in [
        ("evil.example", 421),
        ("evil.example:80", 421),
        ("localhost", 200),
        ("127.0.0.1:1", 200),
    ] {
        let asked = client.get(&metrics).header("host", host);
        assert_eq!(status(asked).await, expected, "{host}");
    }
    let listed = Server::start_with(&[("ALLOWED_HOSTS", "logs.internal")]);
    let asked = || {
        client
            .get(listed.url("/api/metrics"))
            .header("host", "logs.internal:80")
    };
    eventually(
        Duration::from_secs(120),
        "a listed host answered",
        &listed,
        || async { asked().send().await.ok().filter(|r| r.status() == 200) },
    )
    .await;

    // Another site's page may link to a page here, and nothing more: no reads from the API,
    // no posts to it or to the server functions.
    let from_elsewhere = |request: reqwest::RequestBuilder, mode: &str| {
        request
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", mode)
            .header("origin", "https://evil.example")
    };
    let link = from_elsewhere(client.get(server.url("/query?sql=SELECT%201")), "navigate");
    assert_eq!(status(link).await, 200);
    let read = from_elsewhere(client.get(&metrics), "cors");
    assert_eq!(status(read).await, 403);
    let query = client
        .post(server.url("/api/query"))
        .json(&json!({ "query": "SELECT 1" }));
    assert_eq!(status(from_elsewhere(query, "cors")).await, 403);
    // An older browser says only where the post came from.
    let form = client
        .post(server.url("/api/query"))
        .header("origin", "http://evil.example")
        .json(&json!({ "query": "SELECT 1" }));
    assert_eq!(status(form).await, 403);
    let own = client
        .post(server.url("/api/query"))
        .header("origin", format!("http://127.0.0.1:{}", server.port))
        .json(&json!({ "query": "SELECT 1" }));
    assert_eq!(status(own).await, 200);
}
