//! SQL under attack: hostile statements refused for the reason they are hostile, runaway
//! queries stopped by a limit while the server goes on answering everyone else.

use super::harness::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The query time limit the test's server runs with.
const TIMEOUT_SECS: u64 = 5;

/// A CSV file DataFusion could read, on loopback: counts every request made for it.
async fn csv_over_http(csv: &'static str) -> (String, Arc<AtomicU64>) {
    let fetched = Arc::new(AtomicU64::new(0));
    let counter = fetched.clone();
    let app = axum::Router::new().route(
        "/remote.csv",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async move { csv }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/remote.csv", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetched)
}

#[tokio::test]
async fn hostile_sql_is_refused_or_stopped_and_the_server_stays_healthy() {
    const EVENTS: u64 = 50;
    const SECRET: &str = "name,secret\nroot,hunter2\n";
    let timeout = TIMEOUT_SECS.to_string();
    let (server, client) = Server::ready(&[("QUERY_TIMEOUT_SECS", timeout.as_str())]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("sql", 0..EVENTS)).await;
    let count = "SELECT count(*) FROM logs";
    eventually(
        Duration::from_secs(60),
        "the events in SQL",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, count).await;
            (status == 200 && answer["rows"][0][0] == EVENTS).then_some(())
        },
    )
    .await;

    // Real files and a real URL DataFusion could read if it were let: a refusal here is the
    // sandbox's, not a missing file's or a bad extension's.
    let files = tempfile::tempdir().unwrap();
    let local_csv = files.path().join("secret.csv");
    std::fs::write(&local_csv, SECRET).unwrap();
    let local_csv = local_csv.to_str().unwrap();
    let (remote_csv, fetched) = csv_over_http(SECRET).await;
    let copy_target = files.path().join("copy.parquet");
    let copy_target = copy_target.to_str().unwrap();
    let refused: [(String, &str); 9] = [
        ("DROP TABLE logs".into(), "DDL not supported"),
        (
            "CREATE TABLE copy AS SELECT * FROM logs".into(),
            "DDL not supported",
        ),
        (
            format!("CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '{local_csv}'"),
            "DDL not supported",
        ),
        (
            format!("CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '{remote_csv}'"),
            "DDL not supported",
        ),
        ("DELETE FROM logs".into(), "DML not supported"),
        (
            "INSERT INTO logs SELECT * FROM logs".into(),
            "DML not supported",
        ),
        (
            format!("COPY logs TO '{copy_target}'"),
            "DML not supported: COPY",
        ),
        (format!("SELECT * FROM '{local_csv}'"), "not found"),
        (format!("SELECT * FROM '{remote_csv}'"), "not found"),
    ];
    for (query, reason) in &refused {
        let (status, answer) = sql(&client, &server, query).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(
            error.contains(reason),
            "{query}: expected {reason:?}, got {error:?}"
        );
        assert!(
            !error.contains("hunter2"),
            "{query} leaked the file: {error}"
        );
    }
    assert!(!Path::new(copy_target).exists());
    assert_eq!(fetched.load(Ordering::Relaxed), 0, "the URL was fetched");

    // Values built far larger than their arguments are refused before they are allocated;
    // answers are cut at their byte cap as at their row cap.
    for query in [
        "SELECT length(repeat('x', 4000000000))",
        "SELECT length(lpad('x', 2000000000))",
        "SELECT cardinality(range(1, 10000000000))",
        "SELECT cardinality(array_repeat(1, 1000000000))",
        "SELECT length(replace(repeat('x', 1000000), 'x', repeat('y', 100000)))",
        // Small values, but one for every row of a batch of 8192.
        "SELECT max(length(repeat('x', 100000 + value % 2))) FROM generate_series(1, 8192)",
    ] {
        let (status, answer) = sql(&client, &server, query).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(error.contains("may build at most"), "{query}: {error}");
    }
    let (status, answer) = sql(
        &client,
        &server,
        "SELECT value, repeat('x', 4000) AS text FROM generate_series(1, 9000)",
    )
    .await;
    assert_eq!((status, &answer["truncated"]), (200, &json!(true)));
    let rows = answer["rows"].as_array().unwrap().len();
    assert!(
        (4_000..5_000).contains(&rows),
        "{rows} rows of 4 KB in 16 MiB"
    );

    // Queries that would run for hours or hold the machine's memory, all at once: a series of
    // 10^12 integers, an exploding cross join, a billion groups.
    const RUNAWAY: [&str; 3] = [
        "SELECT count(*) FROM generate_series(1, 1000000000000)",
        "SELECT count(*) FROM logs a, logs b, logs c, generate_series(1, 1000000000) g",
        "SELECT value, count(*) FROM generate_series(1, 1000000000) GROUP BY value",
    ];
    let started = Instant::now();
    let running: Vec<_> = RUNAWAY
        .into_iter()
        .map(|query| {
            let (client, url) = (client.clone(), server.url("/api/query"));
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "query": query }))
                    // Far beyond the time limit: only a query no limit stopped takes this.
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                let answer = response.json::<Value>().await.expect("JSON");
                (status, answer, started.elapsed())
            })
        })
        .collect();
    // A live-stream client, reading all along.
    let mut live = client.get(server.url("/events")).send().await.expect("SSE");
    // Let them get going, then ask the server for other things while they run: the page's
    // health at once, and ingest keeps going (queries have threads of their own).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "ok");
    let answered_in = asked.elapsed();
    produce_with_rdkafka(&server.brokers(), &numbered_events("during", 0..10)).await;
    let metrics = server.url("/api/metrics");
    eventually(
        Duration::from_secs(30),
        "ingest while queries run",
        &server,
        || async {
            let m: Value = get_json(&client, &metrics).await?;
            (m["totalRequests"] == EVENTS + 10).then_some(())
        },
    )
    .await;
    // The live stream keeps its pace: a metrics frame every second (what it sent before is
    // read first).
    metrics_frames_within(&mut live, Duration::from_millis(200)).await;
    let frames = metrics_frames_within(&mut live, Duration::from_secs(3)).await;
    assert!(
        frames >= 2,
        "{frames} metrics frames in 3 s while the queries ran"
    );
    // All that while the first two, which only the time limit can stop, still ran (a server
    // whose queries hold its own threads answers none of it until they end).
    assert!(
        running[..2].iter().all(|r| !r.is_finished()),
        "a runaway query ended before the others were answered, so this shows nothing"
    );
    assert!(
        answered_in < Duration::from_secs(2),
        "/health took {answered_in:?}"
    );
    // Other SQL is answered too, once a query thread is free, and sees the new events once
    // their commit lands.
    eventually(
        Duration::from_secs(30),
        "the new events in SQL",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, count).await;
            (status == 200 && answer["rows"][0][0] == EVENTS + 10).then_some(())
        },
    )
    .await;
    // Each is stopped by a limit (the timeout or the memory limit) or cut by the row cap,
    // and none outlives the time limit by more than a margin for the stop to take effect.
    let margin = Duration::from_secs(10);
    for (query, outcome) in RUNAWAY.into_iter().zip(running) {
        let (status, answer, took) = outcome.await.unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        let stopped = status == 400
            && (error.contains("stopped after") || error.contains("Resources exhausted"));
        let capped = status == 200 && answer["truncated"] == true;
        assert!(stopped || capped, "{query}: {status} {error}");
        assert!(
            took <= Duration::from_secs(TIMEOUT_SECS) + margin,
            "{query} ran {took:?}"
        );
    }
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn queries_past_the_limit_are_turned_away_and_a_query_whose_client_left_stops() {
    const HELD: usize = 2;
    let (server, client) =
        Server::ready(&[("QUERY_TIMEOUT_SECS", "120"), ("QUERY_CONCURRENCY", "2")]).await;
    // Runaway queries take every place; only their clients leaving can end them in time.
    let runaway = "SELECT count(*) FROM generate_series(1, 1000000000000)";
    let holders: Vec<_> = (0..HELD)
        .map(|_| {
            let (client, url) = (client.clone(), server.url("/api/query"));
            tokio::spawn(async move {
                let _ = client
                    .post(url)
                    .json(&json!({ "query": runaway }))
                    .send()
                    .await;
            })
        })
        .collect();
    eventually(
        Duration::from_secs(30),
        "the runaways admitted",
        &server,
        || async {
            let (status, _) = sql(&client, &server, "SELECT 1").await;
            (status == 429).then_some(())
        },
    )
    .await;
    let (status, answer) = sql(&client, &server, "SELECT 1").await;
    assert_eq!(status, 429, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("at once"), "{error}");

    // Their clients give up: the server stops their work, and the places are free again long
    // before the two minutes of their time limit.
    for holder in holders {
        holder.abort();
    }
    let (status, answer) = sql(&client, &server, "SELECT 1 AS one").await;
    assert_eq!((status, &answer["rows"]), (200, &json!([[1]])), "{answer}");
}

/// How many `metrics` frames the stream brings within `window`.
async fn metrics_frames_within(sse: &mut reqwest::Response, window: Duration) -> usize {
    let mut text = String::new();
    let _ = tokio::time::timeout(window, async {
        while let Ok(Some(chunk)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    text.matches("event: metrics").count()
}
