//! Broker faults: a broker that fails every fetch, and one down for 30 seconds.

use super::harness::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_broker_that_fails_every_fetch_is_shown_down_not_connected() {
    // A broker that still answers metadata but fails every fetch: only the consumer's own
    // errors tell that nothing arrives. Made real by taking the record table out of the
    // embedded broker's SQLite store, as a damaged or half-restored disk would; tansu then
    // drops the connection on every fetch.
    let (server, client) = Server::ready(&[]).await;
    let store = server.data_dir.path().join("broker").join("tansu.db");
    let damaged = Command::new(python())
        .arg("-c")
        .arg("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('ALTER TABLE record RENAME TO record_lost'); db.commit()")
        .arg(&store)
        .status()
        .expect("run python");
    assert!(damaged.success(), "renaming the record table in {store:?}");
    // Under load a metadata probe can time out too, and says so for a moment; the fetch
    // failure is what must be shown once it has lasted.
    eventually(
        Duration::from_secs(90),
        "Kafka shown down with the fetch error",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            let detail = h["kafka"]["detail"].as_str()?;
            (h["kafka"]["state"] == "down" && detail.contains("every fetch failing")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_broker_down_for_30_seconds_shows_red_then_green_and_loses_nothing() {
    let broker_dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let mut broker = start_tansu(broker_port, broker_dir.path(), "sqlite://tansu.db");
    let server = Server::start_with(&[("KAFKA_BROKERS", brokers.as_str()), ("DEMO", "0")]);
    let client = reqwest::Client::new();
    let state = |client: reqwest::Client, url: String| async move {
        let h: Value = get_json(&client, &url).await?;
        h["kafka"]["state"].as_str().map(str::to_owned)
    };
    eventually(
        Duration::from_secs(120),
        "lakepulse up",
        &server,
        || async {
            (state(client.clone(), server.url("/health")).await? == "connected").then_some(())
        },
    )
    .await;
    produce_with_rdkafka(&brokers, &numbered_events("outage", 0..300)).await;

    let outage = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status();
    broker.wait().unwrap();
    eventually(
        Duration::from_secs(30),
        "Kafka down in the status",
        &server,
        || async { (state(client.clone(), server.url("/health")).await? == "down").then_some(()) },
    )
    .await;
    // The rest of the pipeline keeps serving meanwhile.
    assert_eq!(
        client
            .get(server.url("/api/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    let mut broker = start_tansu(broker_port, broker_dir.path(), "sqlite://tansu.db");
    eventually(
        Duration::from_secs(60),
        "Kafka back in the status",
        &server,
        || async {
            (state(client.clone(), server.url("/health")).await? == "connected").then_some(())
        },
    )
    .await;
    let after = numbered_events("outage", 300..500);
    produce_with_rdkafka(&brokers, &after).await;

    let count = eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async {
            let (_, answer) = sql(
                &client,
                &server,
                "SELECT count(*), count(DISTINCT endpoint) FROM logs",
            )
            .await;
            (answer["rows"][0][0].as_u64()? >= 500).then_some(answer)
        },
    )
    .await;
    assert_eq!(count["rows"][0], json!([500, 500]));
    let _ = broker.kill();
    let _ = broker.wait();
}
