//! The HTTP edge: body limits and the access token.

use super::harness::*;
use serde_json::Value;
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
                "POST /api/query HTTP/1.1\r\nHost: lakepulse\r\nContent-Type: application/json\r\n\
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
async fn with_a_token_set_pages_and_apis_need_it_and_health_stays_open() {
    const TOKEN: &str = "s3cret-token";
    let server = Server::start_with(&[("LAKEPULSE_TOKEN", TOKEN)]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health: Value = eventually(Duration::from_secs(120), "/health", &server, || async {
        get_json(&client, &server.url("/health")).await
    })
    .await;
    assert_eq!(health["kafka"]["topic"], "web-logs");

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

    // A person is sent to sign in, and comes back with a cookie.
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
    let bad = client
        .post(server.url("/login"))
        .form(&[("token", "guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let signed_in = client
        .post(server.url("/login"))
        .form(&[("token", TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/", "only local paths");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(server.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("total-requests"));
}
