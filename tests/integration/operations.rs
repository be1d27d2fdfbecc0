//! What an operator and the seed's clients rely on: the server's own log lines, the probes,
//! the Prometheus exposition, and the seed's API shapes.

use super::harness::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
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

#[tokio::test]
async fn probes_tell_starting_from_ready_from_down_and_health_answers_503_when_down() {
    // No broker yet: lakepulse binds at once and waits for one.
    let broker_dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let server = Server::start_with(&[("KAFKA_BROKERS", brokers.as_str()), ("DEMO", "0")]);
    let client = reqwest::Client::new();
    let answer = |path: &'static str| {
        let (client, url) = (client.clone(), server.url(path));
        async move {
            let response = client.get(url).send().await.ok()?;
            let status = response.status().as_u16();
            Some((status, response.json::<Value>().await.ok()?))
        }
    };
    let (status, live) = eventually(Duration::from_secs(30), "/livez", &server, || {
        answer("/livez")
    })
    .await;
    assert_eq!((status, &live["status"]), (200, &json!("live")));
    assert_eq!(
        answer("/health").await,
        Some((503, json!({ "status": "starting" })))
    );
    let (status, ready) = answer("/readyz").await.expect("/readyz");
    assert_eq!(status, 503);
    assert_eq!(ready["reason"]["stage"], "starting", "{ready}");
    let page = client
        .get(server.url("/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert_eq!(page.headers()["retry-after"], "1");
    assert!(page.text().await.unwrap().contains("lakepulse is starting"));

    let mut broker = start_tansu(broker_port, broker_dir.path(), "memory://tansu/");
    let ready = eventually(Duration::from_secs(120), "/readyz 200", &server, || async {
        answer("/readyz").await.filter(|(status, _)| *status == 200)
    })
    .await;
    assert_eq!(ready.1, json!({ "status": "ready" }));
    let (status, health) = answer("/health").await.expect("/health");
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");

    broker.kill().unwrap();
    broker.wait().unwrap();
    let (status, health) = eventually(
        Duration::from_secs(60),
        "/health 503 with the broker gone",
        &server,
        || async { answer("/health").await.filter(|(status, _)| *status == 503) },
    )
    .await;
    assert_eq!(health["status"], "down", "{health}");
    assert_eq!(health["kafkaConnected"], false, "{health}");
    assert_eq!(status, 503);
    let (status, ready) = answer("/readyz").await.expect("/readyz");
    assert_eq!(
        (status, &ready["reason"]["stage"]),
        (503, &json!("kafka")),
        "{ready}"
    );
    // Alive all along: a liveness probe must not restart a process that waits for its broker.
    assert_eq!(answer("/livez").await.map(|(status, _)| status), Some(200));
}

#[tokio::test]
async fn the_seeds_requests_get_the_seeds_fields() {
    let (server, client) = Server::ready(&[("DEMO", "0")]).await;
    produce_with_rdkafka(&server.brokers(), &numbered_events("seed", 0..20)).await;
    metrics_counting(&server, &client, "", 20).await;

    // GET /health: {"status": "ok", "topic", "clients", "kafkaConnected", "metrics"}.
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["topic"], "web-logs");
    assert!(health["clients"].is_u64(), "{health}");
    assert_eq!(health["kafkaConnected"], true);
    assert_eq!(health["metrics"]["totalRequests"], 20, "{health}");

    // GET /api/metrics: the seed's metric names and types.
    let metrics: Value = get_json(&client, &server.url("/api/metrics"))
        .await
        .unwrap();
    for number in [
        "eventsPerSec",
        "errorRate",
        "avgResponseTime",
        "activeSessions",
        "dataProcessed",
        "totalRequests",
        "totalErrors",
    ] {
        assert!(metrics[number].is_number(), "{number} in {metrics}");
    }
    let last_update = metrics["lastUpdate"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_update).is_ok(),
        "{last_update}"
    );

    // POST /api/query {"query": "..."}: {"results": [{...row as object...}], "executionTime": "1.76s"}.
    let answer = eventually(Duration::from_secs(60), "the rows in the lake", &server, || async {
        let (status, answer) = sql(
            &client,
            &server,
            "SELECT endpoint, status FROM delta_lake.logs WHERE endpoint LIKE '/seed/%' ORDER BY endpoint LIMIT 3",
        )
        .await;
        (status == 200 && answer["results"].as_array()?.len() == 3).then_some(answer)
    })
    .await;
    assert_eq!(
        answer["results"][0],
        json!({ "endpoint": "/seed/0", "status": 200 }),
        "{answer}"
    );
    let time = answer["executionTime"]
        .as_str()
        .expect("executionTime as text");
    let seconds = time.strip_suffix('s').expect("in seconds");
    assert!(
        seconds.parse::<f64>().is_ok() && seconds.split('.').nth(1).map(str::len) == Some(2),
        "{time}"
    );
    // Ours beside the seed's: the columns in order, rows as arrays.
    assert_eq!(answer["columns"], json!(["endpoint", "status"]));
    assert_eq!(answer["rows"][0], json!(["/seed/0", 200]));

    // GET /api/logs?limit&level&source&endpoint and GET /api/anomalies.
    let logs: Value = get_json(&client, &server.url("/api/logs?limit=5&endpoint=/seed/7"))
        .await
        .unwrap();
    assert_eq!(logs.as_array().map(Vec::len), Some(1), "{logs}");
    assert_eq!(logs[0]["endpoint"], "/seed/7");
    let anomalies: Value = get_json(&client, &server.url("/api/anomalies"))
        .await
        .unwrap();
    assert!(anomalies.is_array());
}

#[tokio::test]
async fn prometheus_scrapes_parse_and_count_what_happened() {
    let (server, client) = Server::ready(&[("DEMO", "0")]).await;
    let mut messages = numbered_events("prom", 0..40);
    messages.push(b"{not json".to_vec());
    produce_with_rdkafka(&server.brokers(), &messages).await;
    metrics_counting(&server, &client, "", 40).await;
    committed(&server, &client, 40).await;
    assert_eq!(
        sql(&client, &server, "SELECT count(*) FROM logs").await.0,
        200
    );
    assert_eq!(sql(&client, &server, "SELEC nonsense").await.0, 400);
    // Lag is measured every few seconds beside ingest, which may have finished sooner.
    eventually(
        Duration::from_secs(30),
        "partition 0's lag",
        &server,
        || async {
            get_json(&client, &server.url("/health"))
                .await
                .filter(|health| {
                    health["kafka"]["partitions"]
                        .as_array()
                        .is_some_and(|all| all.iter().any(|p| p["partition"] == 0 && p["lag"] == 0))
                })
        },
    )
    .await;

    let scraped = run_python(&["scrape_prometheus.py", &server.url("/metrics")]);
    let families: Value = serde_json::from_str(&scraped).expect("the parser's JSON");
    let value = |family: &str, labels: Value| -> f64 {
        let samples = families[family]["samples"].as_array().unwrap_or_else(|| {
            panic!(
                "no {family} in the scrape: {}",
                families
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let sample = samples
            .iter()
            .find(|s| {
                labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("no {family} sample labelled {labels}: {samples:?}"));
        sample["value"].as_f64().unwrap()
    };
    // prometheus_client names a counter's family without `_total`.
    assert_eq!(families["lakepulse_messages_consumed"]["type"], "counter");
    assert_eq!(value("lakepulse_messages_consumed", json!({})), 41.0);
    assert_eq!(value("lakepulse_events_decoded", json!({})), 40.0);
    assert_eq!(
        value(
            "lakepulse_messages_malformed",
            json!({ "reason": "invalid_json" })
        ),
        1.0
    );
    assert_eq!(value("lakepulse_dead_letters_sent", json!({})), 1.0);
    assert_eq!(value("lakepulse_lake_rows_committed", json!({})), 40.0);
    assert_eq!(value("lakepulse_queries", json!({ "outcome": "ok" })), 1.0);
    assert_eq!(
        value("lakepulse_queries", json!({ "outcome": "sql_error" })),
        1.0
    );
    assert_eq!(
        families["lakepulse_query_duration_seconds"]["type"],
        "histogram"
    );
    assert_eq!(
        value(
            "lakepulse_query_duration_seconds",
            json!({ "outcome": "ok", "le": "+Inf" })
        ),
        1.0
    );
    assert!(
        value(
            "lakepulse_lake_commit_duration_seconds",
            json!({ "outcome": "ok", "le": "+Inf" })
        ) >= 1.0
    );
    assert_eq!(
        value(
            "lakepulse_consumer_lag_messages",
            json!({ "partition": "0" })
        ),
        0.0
    );
    assert!(value("lakepulse_lake_table_version", json!({})) >= 1.0);
    assert!(value("lakepulse_lake_table_files", json!({})) >= 1.0);
    // One instance, no compaction yet: the table is what its commits wrote.
    let table_bytes = value("lakepulse_lake_table_bytes", json!({}));
    assert!(table_bytes > 0.0);
    assert_eq!(
        value("lakepulse_lake_bytes_committed", json!({})),
        table_bytes
    );
    assert_eq!(value("lakepulse_kafka_up", json!({})), 1.0);
    assert_eq!(value("lakepulse_ready", json!({})), 1.0);
    assert_eq!(value("lakepulse_sse_clients", json!({})), 0.0);
    assert_eq!(value("lakepulse_anomalies_open", json!({})), 0.0);
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(contrib("lakepulse.service")).unwrap();
    // verify checks that ExecStart's program exists: point it at the one this test built.
    let unit = unit.replace("/usr/local/bin/lakepulse", env!("CARGO_BIN_EXE_lakepulse"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lakepulse.service");
    std::fs::write(&path, unit).unwrap();
    let verified = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (make test-tools installs it)");
    let complaints = String::from_utf8_lossy(&verified.stderr);
    // An unknown key or a bad value is only a warning, with a zero exit.
    assert!(
        verified.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

#[tokio::test]
async fn the_nginx_site_passes_pages_api_and_the_live_stream() {
    let (server, client) = Server::ready(&[("DEMO", "0")]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let site = std::fs::read_to_string(contrib("nginx.conf"))
        .unwrap()
        .replace(
            "127.0.0.1:3000",
            server.url("").trim_start_matches("http://"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    std::fs::write(dir.path().join("lakepulse.conf"), site).unwrap();
    let temp = dir.path().display();
    let main = format!(
        "daemon off;\nuser root;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n\
         fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n\
         include {temp}/lakepulse.conf;\n}}\n"
    );
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, main).unwrap();
    let nginx = |args: &[&str]| {
        std::process::Command::new("nginx")
            .args([
                "-p",
                &temp.to_string(),
                "-e",
                &format!("{temp}/error.log"),
                "-c",
            ])
            .arg(&config)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nginx (make test-tools installs it)")
    };
    let checked = nginx(&["-t"]).wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _proxy = Nginx(nginx(&[]));
    let through = format!("http://127.0.0.1:{port}");
    let health_url = format!("{through}/health");
    let health: Value = eventually(
        Duration::from_secs(30),
        "/health through nginx",
        &server,
        || get_json(&client, &health_url),
    )
    .await;
    assert_eq!(health["status"], "ok", "{health}");
    let page = client.get(format!("{through}/logs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));

    // Told to nginx by lakepulse itself, for sites configured without `proxy_buffering off`.
    let direct = client.get(server.url("/events")).send().await.unwrap();
    assert_eq!(direct.headers()["x-accel-buffering"], "no");
    drop(direct);
    let stream = client
        .get(format!("{through}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert!(
        stream.headers().get("content-encoding").is_none(),
        "the stream is not compressed"
    );
    let mut body = stream.bytes_stream();
    produce_with_rdkafka(&server.brokers(), &numbered_events("proxied", 0..1)).await;
    let arrived = tokio::time::timeout(Duration::from_secs(30), async {
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("/proxied/0") {
                return true;
            }
        }
        false
    })
    .await;
    let errors = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(
        arrived,
        Ok(true),
        "the event's log frame through nginx; its log:\n{errors}"
    );
}

/// nginx in the foreground, stopped with the test however it ends: SIGTERM to the master,
/// which ends its workers too (SIGKILL would leave them running).
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A file of `contrib/`.
fn contrib(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(name)
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_real_answers_validate_against_it() {
    let (server, client) = Server::ready(&[("DEMO", "0")]).await;
    let mut events = numbered_events("documented", 0..30);
    events.push(br#"{"endpoint":"/documented/fail","status":503,"responseTime":12.5}"#.to_vec());
    produce_with_rdkafka(&server.brokers(), &events).await;
    committed(&server, &client, 31).await;
    let get = |path: &str| json!({ "method": "GET", "path": path });
    let query =
        |sql: &str| json!({ "method": "POST", "path": "/api/query", "json": { "query": sql } });
    let calls = json!([
        get("/health"),
        get("/livez"),
        get("/readyz"),
        get("/metrics"),
        get("/api/openapi.json"),
        get("/api/metrics?window=1m"),
        get("/api/metrics?window=fortnight"),
        get("/api/visits?window=all"),
        get("/api/visits?window=fortnight"),
        get("/api/series?metric=p95&window=5m&step=10s"),
        get("/api/series?metric=nonsense"),
        get("/api/anomalies"),
        get("/api/logs?limit=5&status=5xx"),
        query("SELECT endpoint, status, response_time_ms, timestamp FROM logs ORDER BY endpoint LIMIT 3"),
        query("SELECT FROM WHERE"),
        get(&format!(
            "/api/context?source=unknown&lines=3&at={}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )),
        get("/api/saved-queries"),
        json!({ "method": "POST", "path": "/api/saved-queries", "json": { "name": "documented", "sql": "SELECT 1" } }),
        json!({ "method": "POST", "path": "/api/saved-queries", "json": { "name": "DOCUMENTED", "sql": "SELECT 2" } }),
        get("/api/saved-queries/1"),
        get("/api/saved-queries/99"),
        json!({ "method": "PATCH", "path": "/api/saved-queries/1", "json": { "name": "renamed", "version": null } }),
        json!({ "method": "PATCH", "path": "/api/saved-queries/1", "json": { "sql": " " } }),
        json!({ "method": "DELETE", "path": "/api/saved-queries/1" }),
        json!({ "method": "DELETE", "path": "/api/saved-queries/1" }),
        json!({ "method": "DELETE", "path": "/api/query/no-such-query" }),
        get("/api/lake/history?limit=5"),
        get("/api/export?sql=SELECT%20endpoint%20FROM%20logs%20LIMIT%202&format=json"),
        get("/api/export?sql=SELECT%20endpoint%20FROM%20logs%20LIMIT%202&format=csv"),
        get("/api/export?sql=SELECT%201&format=xls"),
        get("/events?status=5xx"),
        get("/login?next=/logs"),
        json!({ "method": "POST", "path": "/login", "form": { "token": "t", "next": "/" } }),
    ]);
    let answer = run_python(&["validate_openapi.py", &server.url(""), &calls.to_string()]);
    let report: Value = serde_json::from_str(&answer).expect("the validator's JSON");
    assert_eq!(report["errors"], json!([]), "{report:#}");
    let operations: BTreeSet<String> = strings(&report["operations"]);
    assert_eq!(
        strings(&report["covered"]),
        operations,
        "operations no request exercised"
    );

    // The README's API table names the same endpoints (the router serves exactly the
    // document's: a handler is mounted with its entry).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("\n## API\n")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    // The first cell of each row: `METHOD /path?query` in backticks, one or more.
    let listed: BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| ")?.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter_map(|code| {
            let (method, target) = code.split_once(' ')?;
            let path = target.split(['?', ' ']).next()?;
            let http = ["GET", "POST", "DELETE", "PUT", "PATCH"].contains(&method);
            http.then(|| format!("{method} {path}"))
        })
        .collect();
    assert_eq!(
        listed, operations,
        "the README's API table and the OpenAPI document"
    );
}

fn strings(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// Waits until lakepulse says it has committed `rows` rows to the lake.
async fn committed(server: &Server, client: &reqwest::Client, rows: u64) {
    eventually(
        Duration::from_secs(60),
        "the rows in the lake",
        server,
        || async {
            let health: Value = get_json(client, &server.url("/health")).await?;
            (health["lake"]["rowsCommitted"] == rows).then_some(())
        },
    )
    .await;
}
