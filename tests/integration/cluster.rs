//! SQL on a Ballista cluster of lakepulse's own binary (a scheduler and executors on
//! loopback): the same answers as the in-process engine on the same table version, hostile
//! SQL refused before the cluster hears of it, an executor lost mid-query, the scheduler gone
//! while ingest goes on, a stopped query's job cancelled, and executors reading a lake on
//! object storage at the version asked.

use super::harness::*;
use lakepulse::app::pages::query::SAMPLES;
use lakepulse::model::{QueryRequest, QueryResult};
use lakepulse::pipeline::lake;
use lakepulse::pipeline::query::QueryEngine;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[path = "../../benches/common/questions.rs"]
mod questions;

/// Events the comparison runs on: several files' worth, so the scan is spread over both
/// executors.
const EVENTS: u64 = 6_000;

/// `query` over table `version` through the server's API.
async fn ask(client: &reqwest::Client, server: &Server, query: &str, version: u64) -> (u16, Value) {
    let response = client
        .post(server.url("/api/query"))
        .json(&json!({ "query": query, "version": version }))
        .send()
        .await
        .expect("query request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json answer"))
}

/// Whether two cells say the same: numbers within `tolerance` of each other, relatively
/// (sums of floats differ in their last bits with the order they were added in).
fn same_cell(a: &Value, b: &Value, tolerance: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0),
        _ => a == b,
    }
}

/// The column a query orders by first, when it cuts its answer with LIMIT: rows tied on it may
/// be cut differently by two engines, so only that column's values are compared, in order.
fn cut_order_column(query: &str, columns: &[String]) -> Option<usize> {
    let upper = query.to_uppercase();
    if !upper.contains("LIMIT") {
        return None;
    }
    let after = &query[upper.find("ORDER BY")? + "ORDER BY".len()..];
    let key = after.split_whitespace().next()?.trim_end_matches(',');
    match key.parse::<usize>() {
        Ok(position) => Some(position - 1),
        Err(_) => columns.iter().position(|c| c == key),
    }
}

/// Asserts the cluster's answer is the in-process engine's: the same columns, and the same
/// rows (in any order where the query gives none). Approximate percentiles (a t-digest
/// merged in another order) may differ by `approximate`; everything else is exact but for
/// floating-point sums.
fn assert_same_answer(query: &str, cluster: &Value, local: &QueryResult, approximate: f64) {
    let columns: Vec<String> = serde_json::from_value(cluster["columns"].clone()).unwrap();
    assert_eq!(columns, local.columns, "{query}");
    let mut theirs: Vec<Vec<Value>> = serde_json::from_value(cluster["rows"].clone()).unwrap();
    let mut ours = local.rows.clone();
    assert_eq!(theirs.len(), ours.len(), "{query}: row counts");
    assert!(
        !ours.is_empty(),
        "{query}: an empty answer compares nothing"
    );
    if let Some(key) = cut_order_column(query, &columns) {
        let keys = |rows: &[Vec<Value>]| rows.iter().map(|r| r[key].clone()).collect::<Vec<_>>();
        assert_eq!(keys(&theirs), keys(&ours), "{query}: the ordered column");
        return;
    }
    let text = |row: &Vec<Value>| serde_json::to_string(&row[0]).unwrap();
    theirs.sort_by_key(text);
    ours.sort_by_key(text);
    let approximate_columns: Vec<bool> = columns
        .iter()
        .map(|c| c.contains("approx_percentile") || c.starts_with('p') && c.ends_with("_ms"))
        .collect();
    for (their_row, our_row) in theirs.iter().zip(&ours) {
        for ((a, b), approx) in their_row.iter().zip(our_row).zip(&approximate_columns) {
            let tolerance = if *approx { approximate } else { 1e-9 };
            assert!(
                same_cell(a, b, tolerance),
                "{query}: cluster {their_row:?}, in-process {our_row:?}"
            );
        }
    }
}

/// Produces [`EVENTS`] realistic events and waits until SQL on the cluster counts them all.
async fn generate_and_wait_on_cluster(server: &Server, client: &reqwest::Client) {
    generate(server, EVENTS, 5_000);
    eventually(
        Duration::from_secs(120),
        "every event in SQL on the cluster",
        server,
        || async {
            let (status, answer) = sql(client, server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0] == EVENTS).then_some(())
        },
    )
    .await;
}

/// Waits until a job runs on the cluster (`true`) or none does (`false`).
async fn until_jobs_run(cluster: &SqlCluster, client: &reqwest::Client, running: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = cluster.jobs(client).await;
        let any_running = jobs.iter().any(|job| {
            job["job_status"]
                .as_str()
                .is_some_and(|s| s.contains("Running"))
        });
        if any_running == running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a job still {}running after 30 s: {jobs:?}",
            if running { "not " } else { "" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_cluster_answers_as_the_in_process_engine_and_never_sees_hostile_sql() {
    let cluster = SqlCluster::start(2).await;
    let (server, client) = Server::ready(&[("SQL_CLUSTER", &cluster.address())]).await;
    generate_and_wait_on_cluster(&server, &client).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["sql"]["state"], "connected", "{health}");
    assert_eq!(health["sql"]["executors"], 2, "{health}");
    assert_eq!(health["sql"]["engine"]["scheduler"], cluster.address());
    let version = health["lake"]["version"].as_u64().unwrap();

    let local = QueryEngine::new(lake::table_url(&server.lake_path()).unwrap());
    let jobs_before = cluster.jobs(&client).await.len();
    let asked: Vec<&str> = questions::QUERIES
        .iter()
        .map(|question| question.sql)
        .chain(SAMPLES.iter().map(|(_, sql)| *sql))
        .collect();
    for query in &asked {
        let (status, answer) = ask(&client, &server, query, version).await;
        assert_eq!(status, 200, "{query}: {answer}\n{}", cluster.log());
        assert_eq!(answer["engine"]["kind"], "cluster", "{query}");
        assert_eq!(answer["version"], version, "{query}");
        let ours = local
            .run(&QueryRequest {
                version: Some(version),
                ..QueryRequest::sql(*query)
            })
            .await
            .unwrap_or_else(|e| panic!("{query} in-process: {e}"));
        assert_same_answer(query, &answer, &ours, 0.05);
    }
    assert_eq!(
        cluster.jobs(&client).await.len(),
        jobs_before + asked.len(),
        "each question is one job on the cluster"
    );

    // The workbench, as a shared link renders it, says where its answer was computed.
    let page = client
        .get(server.url("/query?sql=SELECT%20count(*)%20FROM%20logs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let summary = page
        .split_once(r#"data-testid="sql-summary""#)
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(summary, _)| summary)
        .unwrap_or_else(|| panic!("no answer's summary in the workbench:\n{page}"));
    assert!(
        summary.contains(&format!(" on {}", cluster.address())),
        "{summary}"
    );
    // A table's columns are in the asking server's catalog: answered there, no job sent.
    let jobs_before = cluster.jobs(&client).await.len();
    let (status, described) = ask(&client, &server, "DESCRIBE logs", version).await;
    assert_eq!(status, 200, "{described}");
    let ours = local
        .run(&QueryRequest::sql("DESCRIBE logs"))
        .await
        .unwrap();
    assert_eq!(described["rows"], serde_json::to_value(&ours.rows).unwrap());
    assert_eq!(cluster.jobs(&client).await.len(), jobs_before);
    let (status, explained) = ask(
        &client,
        &server,
        "EXPLAIN SELECT count(*) FROM logs",
        version,
    )
    .await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["rows"][1][0], "physical_plan", "{explained}");

    let jobs_before = cluster.jobs(&client).await.len();
    for hostile in [
        "DROP TABLE logs",
        "INSERT INTO logs SELECT * FROM logs",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/lakepulse-cluster-copy.csv'",
        "SELECT * FROM '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (status, answer) = sql(&client, &server, hostile).await;
        assert_eq!(status, 400, "{hostile}: {answer}");
    }
    assert_eq!(
        cluster.jobs(&client).await.len(),
        jobs_before,
        "a refused statement reaches the cluster"
    );
    assert!(!std::path::Path::new("/tmp/lakepulse-cluster-copy.csv").exists());
}

#[tokio::test]
async fn an_executor_lost_mid_query_gives_an_error_or_the_right_answer_never_a_wrong_one() {
    let mut cluster = SqlCluster::start(2).await;
    let (server, client) = Server::ready(&[("SQL_CLUSTER", &cluster.address())]).await;
    generate_and_wait_on_cluster(&server, &client).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    let version = health["lake"]["version"].as_u64().unwrap();
    // A join of every row with every other: seconds of work on both executors, with a
    // shuffle between its stages.
    let heavy =
        "SELECT count(*) FROM logs a JOIN logs b ON a.response_time_ms < b.response_time_ms";
    let local = QueryEngine::new(lake::table_url(&server.lake_path()).unwrap());
    let right = local
        .run(&QueryRequest {
            version: Some(version),
            ..QueryRequest::sql(heavy)
        })
        .await
        .unwrap()
        .rows;

    let asking = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/api/query"));
        async move {
            let response = client
                .post(url)
                .json(&json!({ "query": heavy, "version": version }))
                .send()
                .await
                .expect("query request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json answer"))
        }
    });
    until_jobs_run(&cluster, &client, true).await;
    cluster.kill_executor(0);
    let (status, answer) = asking.await.unwrap();
    match status {
        200 => assert_eq!(
            serde_json::to_value(&right).unwrap(),
            answer["rows"],
            "an answer after losing an executor must be the right one"
        ),
        _ => assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "an error says what went wrong: {status} {answer}"
        ),
    }
    // The cluster goes on with the executor left.
    eventually(
        Duration::from_secs(60),
        "a query answered by the remaining executor",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0] == EVENTS).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_query_cancelled_or_out_of_time_stops_its_job_on_the_cluster() {
    let cluster = SqlCluster::start(2).await;
    let (server, client) = Server::ready(&[
        ("SQL_CLUSTER", &cluster.address()),
        ("QUERY_TIMEOUT_SECS", "5"),
    ])
    .await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("e", 0..3_000)).await;
    eventually(
        Duration::from_secs(60),
        "the events in SQL on the cluster",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0] == 3_000).then_some(())
        },
    )
    .await;
    // Billions of row pairs: hours of work, were it left to run.
    let endless = "SELECT count(*) FROM logs a JOIN logs b ON a.kafka_offset <= b.kafka_offset \
                   JOIN logs c ON b.kafka_offset <= c.kafka_offset";
    let asking = |id: &'static str| {
        let (client, url) = (client.clone(), server.url("/api/query"));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({ "query": endless, "id": id }))
                .send()
                .await
                .expect("query request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json answer"))
        })
    };

    let cancelled = asking("endless-1");
    until_jobs_run(&cluster, &client, true).await;
    let stop = client
        .delete(server.url("/api/query/endless-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status().as_u16(), 204);
    let (status, answer) = cancelled.await.unwrap();
    assert_eq!(answer["error"], "query cancelled", "{status} {answer}");
    until_jobs_run(&cluster, &client, false).await;

    let timed_out = asking("endless-2");
    until_jobs_run(&cluster, &client, true).await;
    let (status, answer) = timed_out.await.unwrap();
    assert_eq!(
        answer["error"], "query stopped after 5s",
        "{status} {answer}"
    );
    until_jobs_run(&cluster, &client, false).await;
}

#[tokio::test]
async fn the_scheduler_gone_turns_sql_red_and_queries_503_while_ingest_goes_on() {
    let mut cluster = SqlCluster::start(1).await;
    let (server, client) = Server::ready(&[("SQL_CLUSTER", &cluster.address())]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("before", 0..100)).await;
    eventually(
        Duration::from_secs(60),
        "the events in SQL on the cluster",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0] == 100).then_some(())
        },
    )
    .await;

    cluster.kill_scheduler();
    let health = eventually(Duration::from_secs(30), "SQL down", &server, || async {
        let health = get_json(&client, &server.url("/health")).await?;
        (health["sql"]["state"] == "down").then_some(health)
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["sql"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&cluster.address())),
        "{health}"
    );
    let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains(&cluster.address())),
        "{answer}"
    );

    // Ingest, the lake and the live view go on without SQL.
    produce_with_rdkafka(&server.brokers(), &numbered_events("after", 0..100)).await;
    eventually(
        Duration::from_secs(60),
        "the new events live and committed",
        &server,
        || async {
            let metrics = get_json(&client, &server.url("/api/metrics")).await?;
            let health = get_json(&client, &server.url("/health")).await?;
            (metrics["totalRequests"] == 200 && health["lake"]["rowsCommitted"] == 200)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn executors_read_a_lake_on_object_storage_at_the_version_asked() {
    let azurite = Azurite::start();
    // Every part reads the table itself, so each has the lake's credentials.
    let cluster = SqlCluster::start_with(2, &azurite.env()).await;
    let mut env = azurite.lakepulse_env("web-logs");
    env.push(("SQL_CLUSTER", cluster.address()));
    let (server, client) = Server::ready(&borrowed(&env)).await;
    let counted_on_cluster = |events: u64| {
        let (client, server) = (&client, &server);
        async move {
            eventually(
                Duration::from_secs(120),
                "the events in SQL on the cluster",
                server,
                || async {
                    let (status, answer) = sql(client, server, "SELECT count(*) FROM logs").await;
                    (status == 200 && answer["rows"][0][0] == events).then_some(())
                },
            )
            .await
        }
    };
    produce_with_rdkafka(&server.brokers(), &numbered_events("first", 0..1_000)).await;
    counted_on_cluster(1_000).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    let first = health["lake"]["version"].as_u64().unwrap();
    produce_with_rdkafka(&server.brokers(), &numbered_events("second", 0..1_000)).await;
    counted_on_cluster(2_000).await;

    // Every endpoint is one event's: a row read twice or missed shows in the counts.
    let rows = "SELECT count(*), count(DISTINCT endpoint), \
                count(*) FILTER (WHERE endpoint LIKE '/second/%') FROM logs";
    let (status, latest) = sql(&client, &server, rows).await;
    assert_eq!(status, 200, "{latest}\n{}", cluster.log());
    assert_eq!(latest["engine"]["kind"], "cluster", "{latest}");
    assert_eq!(latest["rows"], json!([[2_000, 2_000, 1_000]]), "{latest}");
    let (status, then) = ask(&client, &server, rows, first).await;
    assert_eq!(status, 200, "{then}\n{}", cluster.log());
    assert_eq!(then["version"], first, "{then}");
    assert_eq!(then["rows"], json!([[1_000, 1_000, 0]]), "{then}");
}
