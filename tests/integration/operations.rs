//! What an operator reads: the server's own log lines.

use super::harness::*;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn json_logs_carry_every_request_with_its_route_status_and_latency() {
    let (server, client) = Server::ready(&[("LOG_FORMAT", "json")]).await;
    let refused = client
        .get(server.url("/api/logs?limit=5&endpoint=/secret-filter"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 421, "a foreign Host is refused");
    let _: Value = get_json(
        &client,
        &server.url("/api/logs?limit=5&endpoint=/secret-filter"),
    )
    .await
    .expect("logs");

    let served = |route: &'static str, status: u64| {
        let log = server.log();
        async move {
            let lines: Vec<Value> = log
                .lines()
                .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
                .collect();
            lines
                .iter()
                .find(|line| {
                    line["message"] == "served"
                        && line["status"] == status
                        && line["span"]["route"] == route
                        && line["span"]["method"] == "GET"
                })
                .cloned()
        }
    };
    let ok = eventually(
        Duration::from_secs(10),
        "the request's log line",
        &server,
        || served("/api/logs", 200),
    )
    .await;
    assert!(ok["latency_ms"].as_f64().is_some(), "{ok}");
    assert_eq!(ok["target"], "lakepulse::requests");
    // The guard's refusal is logged too, and no line carries the query string a user typed.
    eventually(
        Duration::from_secs(10),
        "the refusal's log line",
        &server,
        || served("/api/logs", 421),
    )
    .await;
    assert!(!server.log().contains("secret-filter"));
    // The first lines, written before any request, are JSON as well (the parse above).
    assert!(server.log().contains("lakepulse is up"));
}
