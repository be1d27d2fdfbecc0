//! The lake keeps every event once: through SIGKILLs, a SIGTERM and a full disk.

use super::harness::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_and_doubles_nothing() {
    use rand::Rng;
    // A broker of the test's own, which the crashes do not touch: the embedded one ends with
    // lakepulse, and a producer that sees its broker vanish mid-send may send a batch twice,
    // which would be the producer's double, not lakepulse's.
    let (_broker, brokers) = own_tansu("memory://tansu/");
    let mut server = Server::start_with(&[("KAFKA_BROKERS", brokers.as_str())]);
    let client = reqwest::Client::new();
    let healthy = |server: &Server| {
        let url = server.url("/health");
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
                .filter(|health| health["status"] != "starting")
        }
    };
    let _: Value = eventually(Duration::from_secs(120), "/health", &server, || {
        healthy(&server)
    })
    .await;

    // A producer that runs through every crash, as services do: long enough (40 s) that every
    // kill lands while it still produces.
    const EVENTS: u64 = 16_000;
    let mut gen = Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args(["gen", "--count", &EVENTS.to_string(), "--rate", "400"])
        .env("KAFKA_BROKERS", &brokers)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start gen");
    let version = |health: &Value| health["lake"]["version"].as_u64();
    let mut rng = rand::rng();
    let mut since_restart = None;
    for kill in 0..6 {
        // Every kill lands mid-ingest: a commit has landed since the last start.
        let _: Value = eventually(
            Duration::from_secs(60),
            "a commit since the restart",
            &server,
            || async {
                let health = healthy(&server).await?;
                (version(&health)? > since_restart.unwrap_or(0)).then_some(health)
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        assert!(
            gen.try_wait().expect("gen").is_none(),
            "the producer finished before kill {kill}: the kill proves nothing"
        );
        server.crash_and_restart();
        let health: Value = eventually(
            Duration::from_secs(60),
            "/health after a crash",
            &server,
            || healthy(&server),
        )
        .await;
        since_restart = version(&health);
    }
    assert!(gen.wait().expect("gen ran").success());
    let produced_at = chrono::Utc::now();
    eventually(
        Duration::from_secs(60),
        "ingest at the end of the topic",
        &server,
        || async {
            healthy(&server)
                .await
                .filter(|health| caught_up(health, produced_at))
        },
    )
    .await;

    let counted = |sql_text: &'static str| {
        let client = client.clone();
        let url = server.url("/api/query");
        async move { first_row(&client, &url, sql_text).await?.first()?.as_u64() }
    };
    eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async { (counted("SELECT count(*) FROM logs").await? >= EVENTS).then_some(()) },
    )
    .await;
    // Let any commit still in flight land, then count again: exactly once each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted("SELECT count(*) FROM logs").await, Some(EVENTS));
    assert_eq!(
        counted("SELECT count(DISTINCT event_id) FROM logs").await,
        Some(EVENTS)
    );
    assert_eq!(
        counted("SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM logs)")
            .await,
        Some(EVENTS)
    );
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], EVENTS);
    assert_eq!(lake["distinct_event_ids"], EVENTS);
}

#[tokio::test]
async fn a_restart_inside_a_producer_batch_reads_the_rest_of_that_batch() {
    // Tansu 0.6 on object storage (here its memory engine) serves a fetch only from the
    // batches that start at or after the offset asked.
    // A commit after 20 rows of one 30-message batch, then a crash: lakepulse resumes at 20,
    // inside the batch, and must still land 20..29 once.
    let (_broker, brokers) = own_tansu("memory://tansu/");
    let mut server = Server::start_with(&[
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_TOPIC_PARTITIONS", "1"),
        ("COMMIT_MAX_ROWS", "20"),
        ("COMMIT_INTERVAL_MS", "600000"),
    ]);
    let client = reqwest::Client::new();
    let _: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
    let health_url = server.url("/health");
    let rows_committed = |at_least: u64| {
        let (client, url) = (client.clone(), health_url.clone());
        async move {
            let health: Value = get_json(&client, &url).await?;
            let rows = health["lake"]["rowsCommitted"].as_u64()?;
            (rows >= at_least).then_some(rows)
        }
    };

    produce_in_one_batch(&brokers, &numbered_events("first", 0..30)).await;
    let committed = eventually(
        Duration::from_secs(60),
        "a commit of 20 rows",
        &server,
        || rows_committed(20),
    )
    .await;
    assert_eq!(
        committed, 20,
        "one commit of COMMIT_MAX_ROWS, the rest waiting"
    );
    server.crash_and_restart();
    let _: Value = started(&client, &server, Duration::from_secs(120), "/health").await;

    // The next batch shows the gap. The restarted instance counts its own commits: 10 + 30
    // rows are two commits of 20.
    produce_in_one_batch(&brokers, &numbered_events("second", 0..30)).await;
    let committed = eventually(
        Duration::from_secs(60),
        "every row committed",
        &server,
        || rows_committed(40),
    )
    .await;
    assert_eq!(committed, 40);
    let url = server.url("/api/query");
    let distinct = first_row(
        &client,
        &url,
        "SELECT count(DISTINCT kafka_offset) AS offsets, count(*) AS total FROM logs",
    )
    .await
    .expect("a count");
    assert_eq!(distinct, [Value::from(60), Value::from(60)]);
}

/// Sends `values` to the topic's partition 0 as one producer batch.
async fn produce_in_one_batch(brokers: &str, values: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "1000")
        .create()
        .expect("producer");
    let sends = values.iter().map(|value| {
        producer.send::<(), _, _>(
            FutureRecord::to(TOPIC).partition(0).payload(value),
            Duration::from_secs(10),
        )
    });
    for delivered in futures::future::join_all(sends).await {
        delivered.map_err(|(e, _)| e).expect("delivered");
    }
}

#[tokio::test]
async fn a_stop_commits_every_consumed_event_before_exiting() {
    const EVENTS: u64 = 200;
    // No commit comes by itself within the test: what lands, the stop committed.
    let (mut server, client) = Server::ready(&[("COMMIT_INTERVAL_MS", "600000")]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("stop", 0..EVENTS)).await;
    metrics_counting(&server, &client, "", EVENTS).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["lake"]["rowsCommitted"], 0, "nothing committed yet");

    let status = server.stop();
    assert!(status.success(), "lakepulse exited with {status}");
    // It stopped the broker it started, and only after its own Kafka clients: no client was
    // left to log that the broker had gone.
    let broker_gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(server.brokers()).is_err()
    });
    assert!(broker_gone, "the embedded broker outlived lakepulse");
    let log = server.log();
    let stopping = &log[log.find("shutting down").expect("a logged stop")..];
    assert!(!stopping.contains("ERROR"), "{stopping}");
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], EVENTS);
    assert_eq!(lake["distinct_event_ids"], EVENTS);
}

/// A tmpfs of its own that the test can fill up and free again. Mounting needs root, which
/// is how CI runs; anywhere else the test says so instead of passing without checking.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "this test mounts a tmpfs: run it as root");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk has no space left.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("filler removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_pauses_the_lake_with_a_clear_error_and_loses_nothing() {
    const EACH: u64 = 500;
    let disk = SmallDisk::mount("16m");
    let lake = disk.path().join("web-logs");
    let (mut server, client) = Server::ready(&[("DELTA_LAKE_PATH", lake.to_str().unwrap())]).await;
    let events = |from: u64| numbered_events("disk", from..from + EACH);
    let counts = |client: reqwest::Client, url: String| async move {
        let row = first_row(
            &client,
            &url,
            "SELECT count(*), count(DISTINCT event_id) FROM logs",
        )
        .await?;
        Some((row.first()?.as_u64()?, row.get(1)?.as_u64()?))
    };
    let query_url = server.url("/api/query");
    produce_with_rdkafka(&server.brokers(), &events(0)).await;
    eventually(Duration::from_secs(60), "the first events", &server, || {
        let answer = counts(client.clone(), query_url.clone());
        async move { (answer.await? == (EACH, EACH)).then_some(()) }
    })
    .await;

    disk.fill();
    produce_with_rdkafka(&server.brokers(), &events(EACH)).await;
    let health: Value = eventually(
        Duration::from_secs(60),
        "the lake down",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["lake"]["state"] == "down").then_some(health)
        },
    )
    .await;
    let detail = health["lake"]["detail"].as_str().unwrap();
    assert!(detail.contains("No space left on device"), "{detail}");
    // The lake cannot write: down, and a load balancer learns it from the status code alone.
    assert_eq!(health["status"], "down");
    let probe = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(probe.status(), 503);
    let ready: Value = get_json(&client, &server.url("/readyz")).await.unwrap();
    assert_eq!(ready["reason"]["stage"], "lake", "{ready}");
    // What was committed stays readable, and nothing half-written shows up in it.
    assert_eq!(
        counts(client.clone(), query_url.clone()).await,
        Some((EACH, EACH))
    );

    // Rows waiting in memory die with a crash; their offsets were never committed, so the
    // restarted server reads them from Kafka again.
    server.crash_and_restart();
    eventually(
        Duration::from_secs(120),
        "restart on a full disk",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["lake"]["state"] == "down").then_some(())
        },
    )
    .await;
    disk.free();
    eventually(Duration::from_secs(60), "every event once", &server, || {
        let answer = counts(client.clone(), query_url.clone());
        async move { (answer.await? == (2 * EACH, 2 * EACH)).then_some(()) }
    })
    .await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["lake"]["state"], "connected");
    assert_eq!(health["status"], "ok");
}

/// delta-rs writes a checkpoint after every 100th commit and reports a failure of it as the
/// write's own error, though the commit has landed. Here the checkpoint of version 99 cannot be
/// written (a directory stands where its file goes); the sink must not write those rows again.
/// Compaction is held off, so that the sink's commits are the ones that reach those versions.
#[tokio::test]
async fn a_commit_that_landed_but_reported_a_failure_is_not_written_again() {
    const EVENTS: u64 = 1_000;
    let (server, client) = Server::ready(&[
        ("COMMIT_INTERVAL_MS", "20"),
        ("LAKE_COMPACT_SECS", "100000"),
    ])
    .await;
    let log_dir = server.lake_path().join("_delta_log");
    for version in [99, 199] {
        std::fs::create_dir_all(log_dir.join(format!("{version:020}.checkpoint.parquet")))
            .expect("an obstacle where the checkpoint goes");
    }
    let version =
        || async { get_json(&client, &server.url("/health")).await?["lake"]["version"].as_u64() };
    // One event at a time, each waited for until a commit holds it, so the table crosses
    // version 199 while events flow.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", server.brokers())
        .create()
        .expect("producer");
    let mut produced = 0;
    loop {
        let before = version().await.unwrap_or(0);
        if before >= 205 {
            break;
        }
        assert!(produced < EVENTS, "the table stayed below version 205");
        let event = format!(r#"{{"endpoint":"/landed/{produced}","status":200}}"#);
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC).payload(&event),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        produced += 1;
        eventually(
            Duration::from_secs(30),
            "the next commit",
            &server,
            || async { (version().await? > before).then_some(()) },
        )
        .await;
    }
    metrics_counting(&server, &client, "", produced).await;
    let counted = |query: &'static str| {
        let client = client.clone();
        let url = server.url("/api/query");
        async move { first_row(&client, &url, query).await?.first()?.as_u64() }
    };
    eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async {
            (counted("SELECT count(DISTINCT event_id) FROM logs").await? == produced).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(counted("SELECT count(*) FROM logs").await, Some(produced));
    let log = server.log();
    assert!(
        log.matches("rows the table already holds are not written again")
            .count()
            >= 2,
        "the checkpoints at versions 99 and 199 did not fail, so nothing was tried: {log}"
    );
}

#[tokio::test]
async fn a_lake_on_object_storage_lands_every_event_once_and_answers_sql_and_other_readers() {
    const EVENTS: u64 = 3_000;
    let azurite = Azurite::start();
    let table = azurite.table("web-logs");
    let (mut server, client) = Server::ready(&borrowed(&azurite.lakepulse_env("web-logs"))).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["lake"]["path"], table);

    // Half, a crash, the other half: the restart resumes from the txn offsets in the store.
    let half = EVENTS / 2;
    produce_with_rdkafka(&server.brokers(), &numbered_events("store", 0..half)).await;
    // The same port after the restart.
    let query_url = server.url("/api/query");
    let counted = |sql_text: String| {
        let client = client.clone();
        let url = query_url.clone();
        async move { first_row(&client, &url, &sql_text).await?.first()?.as_u64() }
    };
    let count = || counted("SELECT count(*) FROM logs".into());
    eventually(
        Duration::from_secs(60),
        "half in the lake",
        &server,
        || async { (count().await? >= half).then_some(()) },
    )
    .await;
    let after_half: Value = get_json(&client, &server.url("/health")).await.unwrap();
    let half_version = after_half["lake"]["version"].as_u64().unwrap();
    server.crash_and_restart();
    let _: Value = started(
        &client,
        &server,
        Duration::from_secs(120),
        "/health after a crash",
    )
    .await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("store", half..EVENTS)).await;
    eventually(
        Duration::from_secs(60),
        "every event in the lake",
        &server,
        || async { (count().await? >= EVENTS).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count().await, Some(EVENTS));
    assert_eq!(
        counted("SELECT count(DISTINCT event_id) FROM logs".into()).await,
        Some(EVENTS)
    );
    // Time travel reads an older version from the store.
    let then = format!("SELECT count(*) FROM logs VERSION AS OF {half_version}");
    let at_half = counted(then).await.expect("an answer as of the half");
    assert!(
        (half..EVENTS).contains(&at_half),
        "{at_half} as of v{half_version}"
    );
    let (status, by_status) = sql(
        &client,
        &server,
        "SELECT status, count(*) FROM logs GROUP BY status",
    )
    .await;
    assert_eq!(
        (status, &by_status["rows"]),
        (200, &serde_json::json!([[200, EVENTS]]))
    );

    // The store the table is on is no door to its other objects.
    let elsewhere = format!(
        "SELECT * FROM '{}'",
        azurite.table("web-logs/_delta_log/00000000000000000000.json")
    );
    let (status, answer) = sql(&client, &server, &elsewhere).await;
    assert_eq!(status, 400, "{answer}");

    // Another Delta implementation reads the same table from the store, txn offsets included.
    let app_ids: Vec<String> = (0..3)
        .map(|p| format!("lakepulse:lakepulse:{TOPIC}:{p}"))
        .collect();
    let mut args = vec!["read_delta.py", table.as_str()];
    args.extend(app_ids.iter().map(String::as_str));
    let lake: Value =
        serde_json::from_str(run_python_with(&args, &azurite.env()).trim()).expect("reader JSON");
    assert_eq!(lake["rows"], EVENTS);
    assert_eq!(lake["distinct_event_ids"], EVENTS);
    let (_, ends) = sql(
        &client,
        &server,
        "SELECT kafka_partition, max(kafka_offset) + 1 FROM logs GROUP BY 1 ORDER BY 1",
    )
    .await;
    for row in ends["rows"].as_array().expect("rows") {
        let app_id = format!("lakepulse:lakepulse:{TOPIC}:{}", row[0]);
        assert_eq!(lake["txn"][&app_id], row[1], "{app_id}");
    }
}

#[tokio::test]
async fn retention_deletes_the_days_past_it_keeps_the_rest_and_time_travel_still_reaches_them() {
    let (server, client) = Server::ready(&[
        ("DEMO", "0"),
        ("RETENTION", "30d"),
        ("LAKE_MAINTENANCE_SECS", "2"),
    ])
    .await;
    let now = chrono::Utc::now();
    let days_ago = |days: i64, path: &str| -> Vec<Vec<u8>> {
        let at = (now - chrono::TimeDelta::days(days)).to_rfc3339();
        (0..5)
            .map(|i| {
                format!(r#"{{"timestamp":"{at}","endpoint":"/{path}/{i}","status":200}}"#)
                    .into_bytes()
            })
            .collect()
    };
    let mut events = days_ago(40, "expired");
    events.extend(days_ago(10, "kept"));
    events.extend(days_ago(0, "today"));
    produce_with_rdkafka(&server.brokers(), &events).await;

    let count = |filter: &'static str| {
        let client = client.clone();
        let url = server.url("/api/query");
        async move {
            let sql = format!("SELECT count(*) FROM logs WHERE {filter}");
            first_row(&client, &url, &sql).await?[0].as_u64()
        }
    };
    let deleted_at = eventually(
        Duration::from_secs(120),
        "the expired day deleted, the others kept",
        &server,
        || async {
            let history: Value =
                get_json(&client, &server.url("/api/lake/history?limit=1000")).await?;
            let deleted = history
                .as_array()?
                .iter()
                .filter(|v| v["operation"] == "DELETE")
                .filter_map(|v| v["version"].as_u64())
                .min()?;
            let left = (
                count("endpoint LIKE '/expired/%'").await?,
                count("true").await?,
            );
            (left == (0, 10)).then_some(deleted)
        },
    )
    .await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    let oldest_kept = (now - chrono::TimeDelta::days(10)).date_naive().to_string();
    eventually(
        Duration::from_secs(30),
        "/health's oldest date",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["lake"]["oldestDate"] == oldest_kept.as_str()).then_some(())
        },
    )
    .await;
    assert!(health["lake"]["maintenance"].as_str().is_some(), "{health}");
    // The version before the delete still has them, until the vacuum after the table's file
    // retention (7 days).
    let before = first_row(
        &client,
        &server.url("/api/query"),
        &format!(
            "SELECT count(*) FROM logs VERSION AS OF {} WHERE endpoint LIKE '/expired/%'",
            deleted_at - 1
        ),
    )
    .await
    .expect("time travel");
    assert!(before[0].as_u64() > Some(0), "{before:?}");
}
