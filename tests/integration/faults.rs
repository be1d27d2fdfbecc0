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
    let _broker = start_tansu(broker_port, broker_dir.path(), "sqlite://tansu.db");
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
}

/// The embedded broker is lakepulse's own or not used: something else on its port stops the
/// start with a clear error; a broker an earlier run left for this DATA_DIR is replaced; and
/// the broker ends with lakepulse, even when lakepulse is killed.
#[tokio::test]
async fn the_embedded_broker_is_ours_or_not_used_and_ends_with_lakepulse() {
    // A zombie has ended: only its parent's wait is left.
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, fields)| !fields.starts_with('Z'))
        })
    };
    let gone_within = |pid: i32, within: Duration| {
        let deadline = Instant::now() + within;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        !alive(pid)
    };

    // Another program on the port.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    let mut refused = Server::start_with(&[("EMBEDDED_BROKER_PORT", port.as_str())]);
    let status = refused
        .exited_within(Duration::from_secs(60))
        .expect("lakepulse stops when the broker port is taken");
    assert!(!status.success());
    let log = refused.log();
    assert!(
        log.contains("is taken by a process that is not the broker lakepulse started"),
        "{log}"
    );

    // Killed (SIGKILL): its lifeline takes the broker with it.
    let (mut server, client) = Server::ready(&[]).await;
    let broker = server.broker_pid().expect("a pid file");
    assert!(alive(broker));
    server.kill();
    assert!(
        gone_within(broker, Duration::from_secs(10)),
        "the broker outlived a killed lakepulse"
    );

    // A broker an earlier run started for this DATA_DIR, still running (as one started before
    // lifelines would be): stopped and replaced by one lakepulse supervises.
    let broker_dir = server.data_dir.path().join("broker");
    let mut leftover = start_tansu(
        server
            .brokers()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        &broker_dir,
        "sqlite://tansu.db",
    );
    std::fs::write(broker_dir.join("tansu.pid"), leftover.id().to_string()).unwrap();
    // Answering as a broker, not only accepting connections: lakepulse must find it there.
    lakepulse::pipeline::broker::wait_until_reachable(&server.brokers(), Duration::from_secs(30))
        .await
        .expect("the leftover broker answering");
    assert!(
        leftover.try_wait().unwrap().is_none(),
        "the leftover broker exited"
    );
    server.start_again();
    let _: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
    let log = server.log();
    assert!(
        log.contains("stopping the broker an earlier run left behind"),
        "{log}"
    );
    assert!(
        leftover.try_wait().unwrap().is_some(),
        "the leftover broker still runs: {log}"
    );
    let replacement = server.broker_pid().expect("a pid file");
    assert_ne!(replacement, leftover.id() as i32);

    // Stopped (SIGTERM): the broker is asked to stop, after lakepulse's own clients.
    assert!(server.stop().success());
    assert!(
        gone_within(replacement, Duration::from_secs(1)),
        "the broker outlived lakepulse"
    );
    assert!(!server
        .data_dir
        .path()
        .join("broker")
        .join("tansu.pid")
        .exists());
}

/// A message a stage fails on (a panic, as a bug would cause; injected here through a marked
/// event) is set aside as an `unprocessable` dead letter, once, and everything around it lands
/// exactly once: neither ingest nor the lake stops, now or at the next start.
#[tokio::test]
async fn a_message_a_stage_fails_on_is_set_aside_and_the_rest_lands_once() {
    let (mut server, client) = Server::ready(&[]).await;
    let marked = |stage: &str| format!(r#"{{"endpoint":"/lakepulse-fault/{stage}","status":200}}"#);
    let mut messages = numbered_events("before", 0..50);
    messages.push(marked("ingest").into_bytes());
    messages.extend(numbered_events("between", 0..50));
    messages.push(marked("lake").into_bytes());
    messages.extend(numbered_events("after", 0..50));
    produce_with_rdkafka(&server.brokers(), &messages).await;

    // The lake's marked event decodes (the live view counts it); ingest's does not.
    let metrics = metrics_counting(&server, &client, "", 151).await;
    assert_eq!(metrics["malformed"], json!({ "unprocessable": 1 }));
    let counted = |query: &'static str| {
        let (client, url) = (client.clone(), server.url("/api/query"));
        async move { first_row(&client, &url, query).await?.first()?.as_u64() }
    };
    eventually(
        Duration::from_secs(60),
        "every other event in the lake",
        &server,
        || async {
            (counted("SELECT count(DISTINCT event_id) FROM logs").await? == 150).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(counted("SELECT count(*) FROM logs").await, Some(150));
    assert_eq!(
        counted("SELECT count(*) FROM logs WHERE endpoint LIKE '/lakepulse-fault/%'").await,
        Some(0)
    );
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    let letters = dead_letters_to_end(&server.brokers(), 2, Duration::from_secs(3)).await;
    let mut faults: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l.reason.clone(),
                String::from_utf8_lossy(&l.payload).into_owned(),
            )
        })
        .collect();
    faults.sort();
    assert_eq!(faults.len(), 2, "{letters:?}");
    assert!(
        faults.iter().all(|(reason, _)| reason == "unprocessable"),
        "{letters:?}"
    );
    assert_eq!(faults[1].1, marked("ingest"));
    assert!(
        faults[0].1.contains("/lakepulse-fault/lake"),
        "{}",
        faults[0].1
    );
    assert!(letters
        .iter()
        .any(|l| l.error.contains("a fault injected in lake")));

    // A stop and a start read none of it again: only the new events are counted (enough of
    // them that every partition gets some, so ingest can say it has read each to its end).
    assert!(server.stop().success());
    server.start_again();
    let _: Value = started(
        &client,
        &server,
        Duration::from_secs(120),
        "/health after the restart",
    )
    .await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("restarted", 0..30)).await;
    let metrics = metrics_counting(&server, &client, "", 30).await;
    assert_eq!(
        metrics["malformed"],
        json!({}),
        "read again after the restart"
    );
}

/// A stage that dies (the lake's sink, here through an injected panic outside any commit) is
/// not left looking alive: lakepulse says why and exits non-zero, for its supervisor to start
/// it afresh from the table's offsets.
#[tokio::test]
async fn a_stage_that_dies_stops_the_process_with_its_reason() {
    let (mut server, _client) = Server::ready(&[]).await;
    let marked = br#"{"endpoint":"/lakepulse-fault/sink","status":200}"#.to_vec();
    produce_with_rdkafka(&server.brokers(), &[marked]).await;
    let status = server
        .exited_within(Duration::from_secs(60))
        .expect("lakepulse exits once its sink has died");
    assert!(!status.success(), "{status}");
    let log = server.log();
    assert!(
        log.contains("the lake stopped: it panicked: a fault injected in sink"),
        "{log}"
    );
    assert!(
        log.contains("a fresh start resumes from the table's offsets"),
        "{log}"
    );
}
