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

/// Context as Loki gives it: the events just before and after an instant, from the lake, of
/// one source (a name with a quote in it reaches SQL as a name, not as SQL), or of one session.
#[tokio::test]
async fn a_context_is_the_events_around_an_instant_from_one_source_or_session() {
    let (server, client) = Server::ready(&[("DEMO", "0")]).await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-05T06:00:00Z").unwrap();
    let at = |i: i64| (t0 + chrono::Duration::seconds(i)).to_rfc3339();
    let mut events = Vec::new();
    for i in 0..30 {
        let session = if i % 2 == 0 { "s-even" } else { "s-odd" };
        events.push(
            json!({ "timestamp": at(i), "source": "o'brien", "endpoint": format!("/c/{i}"),
                    "status": 200, "sessionId": session })
            .to_string()
            .into_bytes(),
        );
        events.push(
            json!({ "timestamp": at(i), "source": "other", "endpoint": format!("/x/{i}"), "status": 200 })
                .to_string()
                .into_bytes(),
        );
    }
    produce_with_rdkafka(&server.brokers(), &events).await;
    eventually(
        Duration::from_secs(60),
        "the events in SQL",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0] == 60).then_some(())
        },
    )
    .await;

    let context = |query: String| {
        let client = client.clone();
        let url = server.url(&format!("/api/context?{query}"));
        async move {
            let response = client.get(url).send().await.expect("context request");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    };
    let endpoints_and_places = |context: &Value| -> Vec<(String, String)> {
        context["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| {
                assert_eq!(l["committed"], true, "{l}");
                (
                    l["event"]["endpoint"].as_str().unwrap().to_owned(),
                    l["place"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let expected = |numbers: &[i64], anchor: i64| -> Vec<(String, String)> {
        numbers
            .iter()
            .map(|&i| {
                let place = match i.cmp(&anchor) {
                    std::cmp::Ordering::Less => "before",
                    std::cmp::Ordering::Equal => "anchor",
                    std::cmp::Ordering::Greater => "after",
                };
                (format!("/c/{i}"), place.to_owned())
            })
            .collect()
    };
    let instant = urlencoding(&at(15));
    let (status, whole) = context(format!("source=o%27brien&at={instant}&lines=5")).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(
        endpoints_and_places(&whole),
        expected(&[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 15)
    );
    let (_, session) = context(format!(
        "source=o%27brien&at={instant}&lines=3&session=s-odd"
    ))
    .await;
    assert_eq!(
        endpoints_and_places(&session),
        expected(&[9, 11, 13, 15, 17, 19, 21], 15)
    );
    // Near the end of the source's events there is less after; past them, no anchor.
    let (_, late) = context(format!(
        "source=o%27brien&at={}&lines=5",
        urlencoding(&at(40))
    ))
    .await;
    assert_eq!(
        endpoints_and_places(&late),
        expected(&[24, 25, 26, 27, 28, 29], 40)
    );
    let (status, refused) = context("source=o%27brien&at=soon".into()).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("soon"),
        "{refused}"
    );
}

fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Downloads stream past the row cap in every streamed format, and an export that overruns
/// the time limit (here: a client that does not read) breaks off, never ending as if whole.
#[tokio::test]
async fn exports_stream_past_the_row_cap_and_an_overrun_breaks_the_download_off() {
    const ROWS: usize = 25_000;
    let (server, client) = Server::ready(&[("QUERY_TIMEOUT_SECS", "5"), ("DEMO", "0")]).await;
    let export = |sql: &str, format: &str| {
        let url = server.url(&format!(
            "/api/export?sql={}&format={format}",
            urlencoding(sql)
        ));
        let client = client.clone();
        async move { client.get(url).send().await.expect("export request") }
    };
    let series = format!("SELECT value FROM generate_series(1, {ROWS}) ORDER BY value");

    let csv = export(&series, "csv").await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), ROWS + 1, "a header and every row");
    assert_eq!((lines[0], lines[ROWS]), ("value", "25000"));

    let ndjson = export(&series, "ndjson").await.text().await.unwrap();
    let values: Vec<u64> = ndjson
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["value"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(values, (1..=ROWS as u64).collect::<Vec<_>>());

    let parquet = export(&series, "parquet").await;
    assert_eq!(
        parquet.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let parquet = parquet.bytes().await.unwrap();
    let batches: Vec<_> =
        deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), ROWS);

    // The JSON answer keeps the row cap; a query that cannot run is refused before any byte.
    let json: Value = export(&series, "json").await.json().await.unwrap();
    assert_eq!(
        (json["rowCount"].as_u64(), &json["truncated"]),
        (Some(10_000), &json!(true))
    );
    let refused = export("SELECT nope FROM logs", "parquet").await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("nope"));

    // Headers come at once; the client then reads nothing past the time limit.
    let endless = export("SELECT value FROM generate_series(1, 100000000000)", "csv").await;
    assert_eq!(endless.status(), 200);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut body = endless.bytes_stream();
    let mut read = 0;
    let ended = loop {
        match futures::StreamExt::next(&mut body).await {
            Some(Ok(chunk)) => read += chunk.len(),
            Some(Err(error)) => break Err(error),
            None => break Ok(()),
        }
    };
    assert!(
        ended.is_err(),
        "the overrun export ended as if whole after {read} bytes"
    );
    // The server is none the worse.
    let (status, _) = sql(&client, &server, "SELECT 1").await;
    assert_eq!(status, 200);
}
