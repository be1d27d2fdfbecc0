//! Ingest: events from every kind of client and codec reach every output once; hostile messages are counted and dead-lettered.

use super::harness::*;
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

#[tokio::test]
async fn events_from_two_clients_reach_metrics_sse_sql_and_a_second_delta_reader() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let health: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
    assert_eq!(health["kafka"]["embedded"], true);
    assert_eq!(health["kafka"]["brokers"], server.brokers());
    assert_eq!(health["demoTraffic"], false);

    const RDKAFKA_EVENTS: usize = 400;
    const PYTHON_EVENTS: usize = 250;
    // One message carries a batch: a JSON event, an access-log line and a bad line.
    const BATCHED_EVENTS: usize = 2;
    const TOTAL: u64 = (RDKAFKA_EVENTS + PYTHON_EVENTS + BATCHED_EVENTS) as u64;
    // Every 20th Rust event is a 503, every 10th Python one a 500.
    const ERRORS: u64 = (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64;
    let mut values: Vec<Vec<u8>> = (0..RDKAFKA_EVENTS)
        .map(|i| {
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339(),
                "level": if i % 20 == 0 { "ERROR" } else { "INFO" },
                "source": "rust-test",
                "method": "POST",
                "endpoint": format!("/api/test/{}", i % 5),
                "status": if i % 20 == 0 { 503 } else { 201 },
                "responseTime": 40.0 + (i % 50) as f64,
                "userId": format!("u{}", i % 9),
                "sessionId": format!("s{}", i % 17),
                "ip": "2001:db8::1",
                "bytes": 1000,
                "message": "created",
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    // Not events: counted and set aside, never a row and never a crash.
    values.push(b"this is not an event".to_vec());
    values.push(br#"{"endpoint":"/truncated","sta"#.to_vec());
    values.push(b"{\"endpoint\":\"\xff\xfe\"}".to_vec());
    values.push(br#"{"endpoint":"/missing-status"}"#.to_vec());
    values.push(
        format!(
            "{}\n{} - - [{}] \"GET /from-a-log HTTP/1.1\" 200 99 \"-\" \"curl/8\"\nneither JSON nor a log line",
            r#"{"source":"rust-batch","endpoint":"/batched","status":200}"#,
            "2001:db8::2",
            chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z"),
        )
        .into_bytes(),
    );
    const MALFORMED: usize = 5;
    produce_with_rdkafka(&server.brokers(), &values).await;
    produce_with_python(
        &server.brokers(),
        PYTHON_EVENTS as u64,
        "confluent-kafka",
        "none",
    );
    let metrics = metrics_counting(&server, &client, "", TOTAL).await;
    assert_eq!(
        metrics["totalErrors"],
        (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64
    );
    assert_eq!(metrics["malformed"]["not_access_log"], 2);
    assert_eq!(metrics["malformed"]["invalid_json"], 1);
    assert_eq!(metrics["malformed"]["not_utf8"], 1);
    assert_eq!(metrics["malformed"]["missing_field"], 1);
    for field in [
        "eventsPerSec",
        "errorRate",
        "avgResponseTime",
        "activeSessions",
        "dataProcessed",
        "lastUpdate",
    ] {
        assert!(!metrics[field].is_null(), "metrics lack {field}: {metrics}");
    }

    // Every window and breakdown, by event time.
    let all: Value = client
        .get(server.url("/api/metrics?window=all"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["window"], "all");
    let windows = all["windows"].as_array().expect("windows");
    assert_eq!(
        windows
            .iter()
            .map(|w| w["window"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1m", "5m", "1h", "all"]
    );
    assert!(
        windows.iter().all(|w| w["requests"] == TOTAL),
        "{windows:?}"
    );
    assert!(all["percentiles"]["p95"].as_f64().unwrap() >= 40.0);
    assert_eq!(all["byStatus"]["2xx"], TOTAL - ERRORS);
    assert_eq!(all["bySource"]["python-client"], PYTHON_EVENTS);
    assert_eq!(all["byEndpoint"]["byVolume"].as_array().unwrap().len(), 10);
    assert!(all["errorDefinition"].as_str().unwrap().contains("500"));
    let series: Value = client
        .get(server.url("/api/series?metric=requests&window=1h&step=1m"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 60);
    let plotted: f64 = points.iter().map(|p| p["v"].as_f64().unwrap()).sum();
    assert_eq!(plotted, TOTAL as f64);
    let bad = client
        .get(server.url("/api/metrics?window=2d"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = client
        .get(server.url("/api/series?metric=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The status knows each partition and how far behind ingest is (the watcher runs every 3 s).
    let health: Value = eventually(
        Duration::from_secs(30),
        "no lag in /health",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["kafka"]["lag"] == 0).then_some(h)
        },
    )
    .await;
    let partitions = health["kafka"]["partitions"]
        .as_array()
        .expect("partitions");
    assert_eq!(partitions.len(), 3);
    assert!(
        partitions.iter().all(|p| p["available"] == true),
        "{partitions:?}"
    );
    assert_eq!(health["kafka"]["state"], "connected");
    assert!(health["lake"]["lastCommitAgeSecs"].as_f64().is_some());
    let freshness = health["lake"]["freshnessMs"].as_f64().expect("freshness");
    assert!(freshness > 0.0 && freshness < 60_000.0, "{freshness}");
    assert_eq!(health["malformed"], metrics["malformed"]);
    assert_eq!(health["kafka"]["deadLetterTopic"], "web-logs.dlq");
    let dead_letters = dead_letters(&server.brokers(), MALFORMED).await;
    assert_eq!(dead_letters.len(), MALFORMED);
    assert!(dead_letters.contains(&(
        "not_utf8".to_owned(),
        b"{\"endpoint\":\"\xff\xfe\"}".to_vec()
    )));
    assert!(dead_letters.contains(&(
        "not_access_log".to_owned(),
        b"neither JSON nor a log line".to_vec()
    )));

    let logs: Value = client
        .get(server.url("/api/logs?limit=5&source=python-client"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = logs.as_array().expect("a list of events");
    assert_eq!(logs.len(), 5);
    assert!(logs.iter().all(|e| e["source"] == "python-client"));
    // Numbered in the order consumed, newest first.
    let numbers: Vec<u64> = logs.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        numbers.len() == 5 && numbers.windows(2).all(|w| w[0] > w[1]),
        "{numbers:?}"
    );

    // SSE: the stream opens with a metrics frame that already counts everything.
    let response = client.get(server.url("/events")).send().await.expect("SSE");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let frame = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("SSE chunk")));
            if let Some(start) = text.find("event: metrics\ndata: ") {
                let rest = &text[start + "event: metrics\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    return serde_json::from_str::<Value>(&rest[..end]).expect("metrics JSON");
                }
            }
        }
        panic!("SSE stream ended: {text}");
    })
    .await
    .expect("a metrics frame within 10 s");
    assert_eq!(frame["totalRequests"], TOTAL);

    // A client that filters and resumes: `Last-Event-ID: 0` replays every kept event after
    // the first; `status=5xx` keeps the errors only.
    let errors_only = sse_log_events(
        &client,
        &server.url("/events?status=5xx"),
        "0",
        ERRORS as usize,
    )
    .await;
    assert_eq!(errors_only.len(), ERRORS as usize);
    assert!(errors_only
        .iter()
        .all(|e| e["status"].as_u64().unwrap() >= 500));

    // SQL sees every event once committed, under both table names.
    let count: Value = eventually(
        Duration::from_secs(30),
        "the lake to hold every event",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) AS n FROM logs").await;
            (status == 200 && answer["rows"][0][0].as_u64()? == TOTAL).then_some(answer)
        },
    )
    .await;
    assert_eq!(count["columns"], json!(["n"]));
    assert_eq!(count["rowCount"], 1);
    assert!(count["executionMs"].as_f64().unwrap() > 0.0);
    assert!(count["executionTime"].as_str().unwrap().ends_with('s'));
    let (status, answer) = sql(
        &client,
        &server,
        "SELECT source, count(*) AS n FROM delta_lake.logs GROUP BY source ORDER BY source",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["rows"],
        json!([
            ["access-log", 1],
            ["python-client", PYTHON_EVENTS],
            ["rust-batch", 1],
            ["rust-test", RDKAFKA_EVENTS]
        ])
    );

    // Time travel as Delta's Spark SQL writes it. Version 0 is the empty table lakepulse made;
    // a version in the middle holds exactly the rows the commits up to it added.
    let (status, answer) = sql(
        &client,
        &server,
        "SELECT count(*) AS n FROM logs VERSION AS OF 0 WHERE status > 0",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["rows"], &answer["version"]),
        (&json!([[0]]), &json!(0))
    );
    let versions: Value = get_json(&client, &server.url("/api/lake/history?limit=1000"))
        .await
        .expect("the table's history");
    let versions = versions.as_array().expect("a list of versions");
    let writes: Vec<(u64, u64)> = versions
        .iter()
        .filter(|v| v["operation"] == "WRITE")
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["rowsAdded"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        writes.len() >= 3,
        "too few commits to pick a middle one: {versions:?}"
    );
    let middle = writes[writes.len() / 2].0;
    let rows_then: u64 = writes
        .iter()
        .filter(|(v, _)| *v <= middle)
        .map(|(_, r)| r)
        .sum();
    assert!(
        0 < rows_then && rows_then < TOTAL,
        "{rows_then} rows at v{middle}"
    );
    let (status, answer) = sql(
        &client,
        &server,
        &format!("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM logs VERSION AS OF {middle}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["rows"], &answer["version"]),
        (&json!([[rows_then, rows_then]]), &json!(middle))
    );

    // A bad query is the client's fault, said clearly.
    let (status, answer) = sql(&client, &server, "SELECT no_such_column FROM logs").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("no_such_column"),
        "{answer}"
    );
    let (status, answer) = sql(&client, &server, "DROP TABLE logs").await;
    assert_eq!(status, 400, "{answer}");

    // Another Delta implementation reads the same rows: every event once.
    let lake = run_python(&["read_delta.py", server.lake_path().to_str().unwrap()]);
    let lake: Value = serde_json::from_str(lake.trim()).expect("reader JSON");
    assert_eq!(lake["rows"], TOTAL);
    assert_eq!(lake["distinct_event_ids"], TOTAL);
    assert_eq!(
        lake["errors"],
        (RDKAFKA_EVENTS / 20 + PYTHON_EVENTS / 10) as u64
    );
    assert_eq!(lake["partition_columns"], json!(["event_date"]));
    // The same question, asked of both readers, gets the same answer.
    let (_, by_status) = sql(
        &client,
        &server,
        "SELECT CAST(status AS VARCHAR) AS status, count(*) AS n FROM logs GROUP BY status",
    )
    .await;
    let ours: serde_json::Map<String, Value> = by_status["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].clone()))
        .collect();
    assert_eq!(Value::Object(ours), lake["by_status"]);
}

/// Nesting this deep would overflow a recursive parser's stack.
const DEPTH: usize = 5_000;
/// A value this large in a text field is data, not an attack: it is kept whole.
const HUGE: usize = 20_000;

/// Messages a hostile or broken producer sends, every kind; each is what it is named after
/// and nothing else (the rest of it is a valid event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hostile {
    RandomBytes,
    InvalidUtf8,
    TruncatedJson,
    WrongTypes,
    /// The status buried `DEPTH` arrays deep.
    DeepNesting,
    /// A `HUGE`-byte message: a valid event, kept.
    HugeValue,
    MissingStatus,
    FutureTime,
    NotALogLine,
}

impl Hostile {
    /// The kind of the `i`th message: the heavy kinds now and then, not one in eight.
    fn nth(i: usize) -> Hostile {
        match i % 8 {
            0 => Hostile::RandomBytes,
            1 => Hostile::InvalidUtf8,
            2 => Hostile::TruncatedJson,
            3 => Hostile::WrongTypes,
            4 if i % 1000 < 8 => Hostile::DeepNesting,
            5 if i % 1000 < 8 => Hostile::HugeValue,
            4..=6 => Hostile::MissingStatus,
            _ if i % 16 == 15 => Hostile::FutureTime,
            _ => Hostile::NotALogLine,
        }
    }

    fn message(self, i: usize, rng: &mut impl rand::Rng) -> Vec<u8> {
        match self {
            Hostile::RandomBytes => {
                // Binary noise that cannot pass for text: no newlines (those would make it a
                // batch of several bad lines) and no `[` (now and then a noise had the fields
                // around a `[time]`, and was refused for its time instead).
                let mut bytes: Vec<u8> = (0..rng.random_range(1..256))
                    .map(|_| rng.random::<u8>())
                    .map(|b| if b == b'\n' || b == b'[' { 0 } else { b })
                    .collect();
                bytes[0] = 0xff;
                bytes
            }
            Hostile::InvalidUtf8 => {
                let mut json = br#"{"endpoint":"/x","status":200,"message":""#.to_vec();
                json.extend([0xc3, 0x28, b'"', b'}']);
                json
            }
            Hostile::TruncatedJson => {
                let full = r#"{"timestamp":"2026-11-29T10:00:00Z","endpoint":"/cut","status":200,"bytes":12}"#;
                full.as_bytes()[..rng.random_range(1..full.len() - 1)].to_vec()
            }
            Hostile::WrongTypes => br#"{"endpoint":"/typed","status":"two hundred"}"#.to_vec(),
            Hostile::DeepNesting => format!(
                r#"{{"endpoint":"/deep","status":{}200{}}}"#,
                "[".repeat(DEPTH),
                "]".repeat(DEPTH)
            )
            .into_bytes(),
            Hostile::HugeValue => format!(
                r#"{{"endpoint":"/huge","status":200,"message":"{}"}}"#,
                "x".repeat(HUGE)
            )
            .into_bytes(),
            Hostile::MissingStatus => br#"{"endpoint":"/no-status","level":"INFO"}"#.to_vec(),
            // A producer whose clock is years off: set aside, or every window would follow it.
            Hostile::FutureTime => {
                br#"{"timestamp":"2099-01-01T00:00:00Z","endpoint":"/future","status":200}"#
                    .to_vec()
            }
            Hostile::NotALogLine => format!("GET /not/a/log/line {i} \u{0}\u{7}").into_bytes(),
        }
    }

    /// Which kind a dead letter's bytes are.
    fn of(payload: &[u8]) -> Hostile {
        let text = String::from_utf8_lossy(payload);
        match () {
            _ if payload.first() == Some(&0xff) => Hostile::RandomBytes,
            _ if payload.ends_with(&[0xc3, 0x28, b'"', b'}']) => Hostile::InvalidUtf8,
            _ if text.contains("/typed") => Hostile::WrongTypes,
            _ if text.contains("/deep") => Hostile::DeepNesting,
            _ if text.contains("/huge") => Hostile::HugeValue,
            _ if text.contains("/no-status") => Hostile::MissingStatus,
            _ if text.contains("2099-01-01") && text.ends_with('}') => Hostile::FutureTime,
            _ if text.starts_with("GET /not/a/log/line") => Hostile::NotALogLine,
            _ => Hostile::TruncatedJson,
        }
    }

    /// Why lakepulse sets it aside (its malformed reason and how its error begins), or None
    /// for the kinds that are events.
    fn refused_as(self) -> Option<(&'static str, &'static str)> {
        match self {
            Hostile::RandomBytes | Hostile::NotALogLine => {
                Some(("not_access_log", "not an access-log line"))
            }
            Hostile::InvalidUtf8 => Some(("not_utf8", "message is not valid UTF-8")),
            Hostile::TruncatedJson => Some(("invalid_json", "invalid JSON")),
            Hostile::WrongTypes | Hostile::DeepNesting => Some(("invalid_field", "field `status`")),
            Hostile::MissingStatus => Some(("missing_field", "missing field `status`")),
            Hostile::FutureTime => Some(("future_timestamp", "event time 2099-01-01")),
            Hostile::HugeValue => None,
        }
    }
}

#[tokio::test]
async fn hostile_messages_are_all_counted_and_dead_lettered() {
    // tansu's SQLite engine stalls (100% CPU, every request timing out) when this many
    // messages come from two producers at once, the test's and lakepulse's dead-letter
    // producer; its in-memory engine takes them. README: "The embedded broker".
    let (_broker, brokers) = own_tansu("memory://tansu/");
    let (server, client) = Server::ready(&[("KAFKA_BROKERS", brokers.as_str())]).await;
    const HOSTILE: usize = 100_000;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let mut rng = rand::rng();
    let mut deliveries = Vec::with_capacity(HOSTILE);
    let mut sent: HashMap<Hostile, u64> = HashMap::new();
    for i in 0..HOSTILE {
        let kind = Hostile::nth(i);
        *sent.entry(kind).or_default() += 1;
        let value = kind.message(i, &mut rng);
        loop {
            let record = FutureRecord::<(), [u8]>::to(TOPIC).payload(&value);
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for delivery in deliveries {
        let delivered = delivery.await.expect("not cancelled");
        delivered.map_err(|(e, _)| e).expect("delivered");
    }
    // One real event after them all: the pipeline still stands, and still counts exactly.
    let after = br#"{"endpoint":"/after","status":200}"#.to_vec();
    produce_with_rdkafka(&brokers, &[after]).await;
    let events = sent[&Hostile::HugeValue] + 1;
    let refused = HOSTILE as u64 + 1 - events;
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (kind, count) in &sent {
        if let Some((reason, _)) = kind.refused_as() {
            *expected.entry(reason).or_default() += count;
        }
    }
    let counted_as_sent = |malformed: &Value| {
        expected
            .iter()
            .all(|(reason, count)| malformed[*reason].as_u64().unwrap_or(0) >= *count)
    };

    // librdkafka may retry a produce that timed out, so the topic can hold a few copies more
    // than were sent: every message ingest read must be counted, as an event or as malformed.
    // Waiting for each reason (not their sum, which retried copies of one kind can fill while
    // another kind is still unread; tansu's watermarks can say caught up early).
    eventually(
        Duration::from_secs(180),
        "everything sent counted",
        &server,
        || async {
            let m: Value = get_json(&client, &server.url("/api/metrics")).await?;
            (counted_as_sent(&m["malformed"]) && m["totalRequests"].as_u64()? >= events)
                .then_some(())
        },
    )
    .await;
    // Then where ingest stands, from a probe answered after that: one answered before can
    // predate the messages.
    let counted_at = chrono::Utc::now();
    let (health, metrics) = eventually(
        Duration::from_secs(60),
        "ingest at the end of the topic",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            let m: Value = get_json(&client, &server.url("/api/metrics")).await?;
            caught_up(&h, counted_at).then_some((h, m))
        },
    )
    .await;
    let positions: HashMap<i32, i64> = health["kafka"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["partition"].as_i64()? as i32, p["position"].as_i64()?)))
        .collect();
    let read: i64 = positions.values().sum();
    let malformed: HashMap<String, u64> =
        serde_json::from_value(metrics["malformed"].clone()).unwrap();
    let counted = malformed.values().sum::<u64>() + metrics["totalRequests"].as_u64().unwrap();
    assert_eq!(counted, read as u64, "{malformed:?}");
    // Each kind was refused for its own reason, as often as it was sent (retried copies
    // aside, which can only add).
    for (reason, count) in &expected {
        let seen = malformed.get(*reason).copied().unwrap_or_default();
        assert!(seen >= *count, "{reason}: {seen} counted, {count} sent");
    }
    let reasons: BTreeSet<&str> = malformed.keys().map(String::as_str).collect();
    assert_eq!(
        reasons,
        expected.keys().copied().collect(),
        "reasons nothing was sent for"
    );
    assert_eq!(health["status"], "ok");

    // The dead-letter topic, read to its end, holds each refused message once, with the
    // reason the metrics counted it under, its error, and where it came from.
    let letters = dead_letters_to_end(&brokers, refused as usize, Duration::from_secs(5)).await;
    let mut by_reason: HashMap<String, u64> = HashMap::new();
    let mut sources = std::collections::HashSet::new();
    for letter in &letters {
        let kind = Hostile::of(&letter.payload);
        let (reason, error) = kind
            .refused_as()
            .unwrap_or_else(|| panic!("{kind:?} was dead-lettered: {}", letter.error));
        assert_eq!(letter.reason, reason, "{kind:?}: {}", letter.error);
        assert!(
            letter.error.starts_with(error),
            "{kind:?}: {}",
            letter.error
        );
        let position = positions[&letter.source_partition];
        assert!(
            (0..position).contains(&letter.source_offset),
            "{kind:?} from {}:{} beyond the read position {position}",
            letter.source_partition,
            letter.source_offset
        );
        assert!(
            sources.insert((letter.source_partition, letter.source_offset)),
            "dead-lettered twice: {}:{}",
            letter.source_partition,
            letter.source_offset
        );
        *by_reason.entry(letter.reason.clone()).or_default() += 1;
    }
    assert_eq!(
        by_reason, malformed,
        "dead letters by reason against the metrics"
    );

    // The huge values landed whole, each once.
    let huge = sent[&Hostile::HugeValue];
    let lengths = "SELECT count(*), min(length(message)), max(length(message)) \
                   FROM logs WHERE endpoint = '/huge'";
    let answer = eventually(
        Duration::from_secs(60),
        "the huge values in the lake",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, lengths).await;
            (status == 200 && answer["rows"][0][0] == huge).then_some(answer)
        },
    )
    .await;
    assert_eq!(answer["rows"], json!([[huge, HUGE, HUGE]]));
}

#[tokio::test]
async fn batches_from_other_clients_are_read_whatever_the_codec() {
    // kafka-python speaks the protocol through its own code, not librdkafka's, and frames
    // snappy the way Java does (xerial blocks of 32 KiB; its batches here hold several).
    // Snappy needs the patched embedded broker (scripts/tansu-snappy.patch).
    const CLIENTS: [&str; 2] = ["confluent-kafka", "kafka-python"];
    const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
    const PER_SEND: u64 = 1_000;
    let (server, client) = Server::ready(&[]).await;
    for python_client in CLIENTS {
        for codec in CODECS {
            let tag = format!("{python_client}/{codec}");
            produce_tagged_with_python(&server.brokers(), PER_SEND, python_client, codec, &tag);
        }
    }
    let total = PER_SEND * (CLIENTS.len() * CODECS.len()) as u64;
    let metrics = metrics_counting(&server, &client, "", total).await;
    assert_eq!(metrics["malformed"], json!({}));
    // Each run's events landed once each: every tag with all its numbers, none twice.
    let by_run = "SELECT split_part(message, ' ', 1) AS run, count(*) AS n, \
                  count(DISTINCT message) AS distinct_n FROM logs GROUP BY 1 ORDER BY 1";
    let answer = eventually(
        Duration::from_secs(60),
        "every run in the lake",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
            (status == 200 && answer["rows"][0][0].as_u64()? >= total).then_some(())?;
            Some(sql(&client, &server, by_run).await.1)
        },
    )
    .await;
    let mut expected: Vec<Value> = CLIENTS
        .iter()
        .flat_map(|c| {
            CODECS
                .iter()
                .map(move |codec| json!([format!("{c}/{codec}"), PER_SEND, PER_SEND]))
        })
        .collect();
    expected.sort_by_key(|row| row[0].as_str().unwrap().to_owned());
    assert_eq!(answer["rows"], Value::from(expected));
    let (_, ids) = sql(
        &client,
        &server,
        "SELECT count(DISTINCT event_id) FROM logs",
    )
    .await;
    assert_eq!(ids["rows"][0][0], total);
}

/// Dead letters are delivered before their messages' offsets move on: a stop delivers them
/// before its last commit, and a crash before that reads the messages again. One message of a
/// hundred thousand bad items is one letter, not a hundred thousand.
#[tokio::test]
async fn no_dead_letter_is_lost_to_a_sigterm_or_a_sigkill() {
    const BAD: u64 = 50;
    const ITEMS: usize = 100_000;
    // A broker of the test's own, which outlives lakepulse's stops and crashes; no commit
    // comes by itself (10 minutes), so only a stop delivers letters.
    let (_broker, brokers) = own_tansu("memory://tansu/");
    let env = [
        ("KAFKA_BROKERS", brokers.as_str()),
        ("COMMIT_INTERVAL_MS", "600000"),
    ];
    let (mut server, client) = Server::ready(&env).await;
    let bad = |round: &str| -> Vec<Vec<u8>> {
        (0..BAD)
            .map(|i| format!("not an event {round}-{i}").into_bytes())
            .collect()
    };
    let metrics_url = server.url("/api/metrics");
    let malformed_counted = |at_least: u64| {
        let (client, url) = (client.clone(), metrics_url.clone());
        async move {
            let metrics: Value = get_json(&client, &url).await?;
            let malformed = metrics["malformed"].as_object()?;
            let counted: u64 = malformed.values().filter_map(Value::as_u64).sum();
            (counted >= at_least && metrics["totalRequests"].as_u64()? >= 1).then_some(())
        }
    };
    let payloads = |letters: &[DeadLetter], round: &str| -> Vec<String> {
        let prefix = format!("not an event {round}-");
        let mut seen: Vec<String> = letters
            .iter()
            .map(|l| String::from_utf8_lossy(&l.payload).into_owned())
            .filter(|p| p.starts_with(&prefix))
            .collect();
        seen.sort();
        seen
    };
    let expected = |round: &str| -> Vec<String> {
        let mut all: Vec<String> = bad(round)
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        all.sort();
        all
    };
    let fan_out = format!("[{}1]", "1,".repeat(ITEMS - 1)).into_bytes();
    let valid = br#"{"endpoint":"/valid","status":200}"#.to_vec();

    // SIGTERM right after the messages were read.
    let mut round = bad("term");
    round.push(fan_out);
    round.push(valid.clone());
    produce_with_rdkafka(&brokers, &round).await;
    eventually(
        Duration::from_secs(60),
        "the bad messages read",
        &server,
        || malformed_counted(BAD + ITEMS as u64),
    )
    .await;
    assert!(server.stop().success());
    server.start_again();
    let letters = dead_letters_to_end(&brokers, BAD as usize + 1, Duration::from_secs(3)).await;
    assert_eq!(payloads(&letters, "term"), expected("term"), "each once");
    let fanned: Vec<&DeadLetter> = letters
        .iter()
        .filter(|l| l.payload.starts_with(b"[1,"))
        .collect();
    assert_eq!(
        fanned.len(),
        1,
        "one letter for the message of {ITEMS} bad items"
    );
    assert!(
        fanned[0]
            .error
            .starts_with(&format!("{ITEMS} items malformed")),
        "{}",
        fanned[0].error
    );

    // SIGKILL right after the messages were read: the next start reads them again.
    let mut round = bad("kill");
    round.push(valid);
    let _: Value = started(&client, &server, Duration::from_secs(120), "/health").await;
    produce_with_rdkafka(&brokers, &round).await;
    eventually(
        Duration::from_secs(60),
        "the bad messages read",
        &server,
        || malformed_counted(BAD),
    )
    .await;
    server.crash_and_restart();
    eventually(
        Duration::from_secs(120),
        "the bad messages read again",
        &server,
        || malformed_counted(BAD),
    )
    .await;
    assert!(server.stop().success());
    let letters = dead_letters_to_end(&brokers, 2 * BAD as usize + 1, Duration::from_secs(3)).await;
    assert_eq!(payloads(&letters, "kill"), expected("kill"), "each once");
}

/// Values no real request has, from an ordinary client: they neither stop ingest nor poison a
/// number on the page, the API or the stream, and the lake keeps the events.
#[tokio::test]
async fn poison_values_neither_stop_ingest_nor_poison_the_numbers() {
    let (server, client) = Server::ready(&[]).await;
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    let poison: Vec<Vec<u8>> = vec![
        br#"{"endpoint":"/huge-bytes","status":200,"bytes":18446744073709551615,"responseTime":5}"#
            .to_vec(),
        br#"{"endpoint":"/huge-bytes","status":500,"bytes":18446744073709551615,"responseTime":7}"#
            .to_vec(),
        format!(r#"192.0.2.1 - - [{now}] "GET /slow HTTP/1.1" 200 10 "-" "ua" 1.7e308ms"#)
            .into_bytes(),
        format!(r#"192.0.2.1 - - [{now}] "GET /slow HTTP/1.1" 200 10 "-" "ua" rt=1e300"#)
            .into_bytes(),
        br#"{"endpoint":"/slow","status":200,"responseTime":1.7e308}"#.to_vec(),
    ];
    produce_with_rdkafka(&server.brokers(), &poison).await;
    let after = numbered_events("after", 0..10);
    produce_with_rdkafka(&server.brokers(), &after).await;
    // Each is an event; only the impossible response times are dropped from it.
    let metrics = metrics_counting(&server, &client, "window=all", 15).await;
    assert_eq!(metrics["malformed"], json!({}));
    assert!(metrics["avgResponseTime"].is_number(), "{metrics}");
    for window in metrics["windows"].as_array().unwrap() {
        assert!(window["eventsPerSec"].is_number(), "{window}");
        assert_eq!(
            window["bytes"],
            u64::MAX,
            "the byte total sticks at the top: {window}"
        );
    }
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    eventually(
        Duration::from_secs(30),
        "the events in the lake",
        &server,
        || async {
            let (_, answer) = sql(
                &client,
                &server,
                "SELECT count(*), max(bytes), max(response_time_ms) FROM logs",
            )
            .await;
            (answer["rows"] == json!([[15, i64::MAX, 7.0]])).then_some(())
        },
    )
    .await;

    // Numbers from a client's request that would overflow are refused or held in range.
    let series = client
        .get(server.url("/api/series?metric=requests&step=999999999999999999m"))
        .send()
        .await
        .unwrap();
    assert_eq!(series.status(), 400);
    let series: Value = get_json(
        &client,
        &server.url("/api/series?metric=avgResponseTime&window=1h&step=9223372036854775807s"),
    )
    .await
    .expect("a series");
    assert_eq!(series["stepSecs"], 3600, "{series}");
    let mut resumed = client
        .get(server.url("/events"))
        .header("Last-Event-ID", "18446744073709551615")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let first = resumed.chunk().await.unwrap().expect("a first frame");
    assert!(String::from_utf8_lossy(&first).contains("event: metrics"));
}
