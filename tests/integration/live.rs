//! The live side: anomalies caught and alerted, and SSE clients that are slow or many.

use super::harness::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A webhook on loopback that keeps what it is sent.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (sent, received) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sent = sent.clone();
            async move {
                let _ = sent.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn error_bursts_and_latency_spikes_are_caught_and_alerted_steady_traffic_is_not() {
    let (hook, mut alerts) = webhook_receiver().await;
    let (server, client) = Server::ready(&[("ALERT_WEBHOOK_URL", hook.as_str())]).await;

    // Twelve minutes of event time in about twelve seconds: ten steady minutes, then a 30 s
    // error burst at 600 s and a 30 s latency spike at 660 s.
    const SPEEDUP: i64 = 60;
    let first = chrono::Utc::now() - chrono::Duration::minutes(15);
    let mut gen = tokio::process::Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args(["gen", "--steady", "--rate", "40", "--duration", "720"])
        .args(["--speedup", &SPEEDUP.to_string()])
        .args(["--start-time", &first.to_rfc3339()])
        .args(["--error-burst", "600:30", "--latency-spike", "660:30"])
        .env("KAFKA_BROKERS", server.brokers())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run gen");
    let gen_started = Instant::now();
    let at = |secs: i64| first + chrono::Duration::seconds(secs);
    // When the producer sends event second `secs`, on the wall clock.
    let sent_at = |secs: u64| gen_started + Duration::from_secs(secs) / SPEEDUP as u32;

    // Watch while it produces: when each anomaly is first listed is when it was detected.
    let detected = std::cell::RefCell::new(std::collections::HashMap::<&str, Instant>::new());
    let anomalies: Vec<Value> = eventually(
        Duration::from_secs(60),
        "both anomalies",
        &server,
        || async {
            let list: Vec<Value> =
                serde_json::from_value(get_json(&client, &server.url("/api/anomalies")).await?)
                    .ok()?;
            let mut detected = detected.borrow_mut();
            for kind in ["errorRate", "latency"] {
                if list
                    .iter()
                    .any(|a| a["kind"] == kind && a["scope"] == "overall")
                {
                    detected.entry(kind).or_insert_with(Instant::now);
                }
            }
            (detected.len() == 2).then_some(list)
        },
    )
    .await;
    let detected = detected.into_inner();
    assert!(gen.wait().await.expect("gen ran").success());
    let started = |a: &Value| {
        a["started"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let overall = |kind: &str| {
        anomalies
            .iter()
            .find(|a| a["kind"] == kind && a["scope"] == "overall")
            .unwrap()
    };
    for (kind, from) in [("errorRate", 600), ("latency", 660)] {
        let lag = (started(overall(kind)) - at(from)).num_seconds();
        assert!(
            (-10..=30).contains(&lag),
            "{kind} placed {lag} s after it began"
        );
        // Detected once its events arrived, and within seconds of them (a closed bucket is
        // judged every second), not when some later event or a restart got round to it.
        let begun = sent_at(from as u64);
        let detected_at = detected[kind];
        assert!(
            detected_at >= begun,
            "{kind} detected before its events were sent"
        );
        let after = detected_at - begun;
        // 20 s: a CI machine running the three-instance group tests beside this one took
        // 10.03 s.
        assert!(
            after <= Duration::from_secs(20),
            "{kind} detected {after:?} after its first events were sent"
        );
    }
    assert!(overall("errorRate")["peak"].as_f64().unwrap() > 20.0);
    // Nothing in the ten steady minutes (the bucket holding 600 s may start up to 10 s earlier).
    let early: Vec<&Value> = anomalies.iter().filter(|a| started(a) < at(590)).collect();
    assert!(early.is_empty(), "steady traffic raised {early:#?}");

    // Both went out through the webhook.
    let mut alerted = std::collections::HashMap::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while alerted.len() < 2 {
            let alert = alerts.recv().await.expect("webhook open");
            let kind = alert["anomaly"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if alert["anomaly"]["scope"] == "overall"
                && ["errorRate", "latency"].contains(&kind.as_str())
            {
                alerted.entry(kind).or_insert(alert);
            }
        }
    })
    .await
    .expect("the error burst and the latency spike alerted through the webhook");
    for (kind, headline) in [
        ("errorRate", "error rate up"),
        ("latency", "p95 latency up"),
    ] {
        let text = alerted[kind]["text"].as_str().unwrap();
        assert!(text.contains(headline), "{text}");
    }
}

/// The last `metrics` frame must come this soon after the producer ends (frames go out every
/// second). A live client held back by the others would wait on their sockets frame after
/// frame, for minutes; a busy machine delays it by seconds (10.5 s, the debug build beside the
/// other tests in this session's first CI run), which is not what these tests are about.
const FRESH_AFTER_PRODUCER: Duration = Duration::from_secs(30);

/// Reads the live client until a metrics frame counts `total`, while the producer runs; the
/// frame must come soon after the producer's end.
async fn counted_soon_after_producer(
    server: &Server,
    live: &mut reqwest::Response,
    total: u64,
    rate: u64,
) {
    let (counted_at, produced_at) = tokio::join!(
        async {
            live_metrics_counting(live, total).await;
            Instant::now()
        },
        generate_while_reading(server, total, rate),
    );
    let late = counted_at.saturating_duration_since(produced_at);
    assert!(
        late <= FRESH_AFTER_PRODUCER,
        "the live client saw the last events {late:?} after the producer ended"
    );
}

#[tokio::test]
async fn a_stuck_sse_client_slows_neither_ingest_nor_other_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, client) = Server::ready(&[]).await;
    // Asks for the stream and never reads a byte of it, until the end.
    let mut stuck = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stuck
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // A healthy client, there from the start.
    let mut live = client.get(server.url("/events")).send().await.expect("SSE");
    let _: Value = eventually(
        Duration::from_secs(30),
        "both clients counted",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["clients"] == 2).then_some(h)
        },
    )
    .await;

    // Far more than the socket buffers hold (about 20 MB of log frames): the stuck client
    // falls behind, while the live one counts every event as they arrive.
    const EVENTS: u64 = 60_000;
    counted_soon_after_producer(&server, &mut live, EVENTS, 20_000).await;
    // Counted while the live one is still open: a closed stream leaves the count only when
    // the server next writes to it, so counting after dropping it would race.
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(
        health["clients"], 2,
        "the stuck client is still connected, just behind, beside the live one"
    );

    // The stuck client was held back: what its socket holds now (looked at, not read, so the
    // server stays blocked) does not reach the last count. Read on, and the server sends the
    // rest, or says what was skipped (`lagged`).
    let last_count = format!("\"totalRequests\":{EVENTS},");
    let mut buffer = vec![0; 64 << 20];
    let queued = stuck
        .peek(&mut buffer)
        .await
        .expect("the stuck client's socket");
    let held = String::from_utf8_lossy(&buffer[..queued]).into_owned();
    assert!(
        held.contains("event: metrics") && !held.contains(&last_count),
        "the stuck client's socket already held everything ({queued} bytes): it was never held back"
    );
    // Only the newest bytes are searched: a frame name or count cut between two reads is
    // whole again in what is kept.
    let seen = |window: &[u8], text: &str| window.windows(text.len()).any(|w| w == text.as_bytes());
    let mut window: Vec<u8> = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let read = stuck
                .read(&mut buffer)
                .await
                .expect("the stuck client's stream");
            assert!(read > 0, "the server closed the stuck client's stream");
            window.extend_from_slice(&buffer[..read]);
            if seen(&window, &last_count) || seen(&window, "event: lagged") {
                return;
            }
            window.drain(..window.len().saturating_sub(64));
        }
    })
    .await
    .expect("the stuck client, once it reads, gets the rest or a lagged frame");
    drop((stuck, live));
}

#[tokio::test]
async fn ten_thousand_idle_sse_clients_do_not_starve_a_real_one() {
    const IDLE: u64 = 10_000;
    const EVENTS: u64 = 2_000;
    rlimit::increase_nofile_limit(u64::MAX).expect("the open files limit");
    let (server, client) = Server::ready(&[]).await;
    // Each asks for the stream and then sits there, reading nothing.
    let idle = unread_streams(&server, &client, IDLE, None).await;

    let mut live = client.get(server.url("/events")).send().await.expect("SSE");
    counted_soon_after_producer(&server, &mut live, EVENTS, 1_000).await;
    let health: Value = get_json(&client, &server.url("/health")).await.unwrap();
    assert_eq!(
        health["clients"],
        IDLE + 1,
        "the idle clients are all still there, beside the live one"
    );
    assert_eq!(health["status"], "ok");
    let (status, answer) = sql(&client, &server, "SELECT count(*) FROM logs").await;
    assert_eq!(status, 200, "{answer}");
    drop((idle, live));
}

/// A thousand clients that ask for the stream and never read it, while events come at
/// 5 000 a second: what they pin is bounded (frames are shared and bounded in bytes, a
/// client too far behind skips ahead), so the server's memory levels off instead of growing
/// with the backlog.
#[tokio::test]
async fn a_thousand_stuck_sse_clients_at_5000_events_a_second_keep_memory_bounded() {
    const STUCK: u64 = 1_000;
    const RATE: u64 = 5_000;
    const SECONDS: u64 = 40;
    rlimit::increase_nofile_limit(u64::MAX).expect("the open files limit");
    let (server, client) = Server::ready(&[]).await;
    // A small window: the kernel holds little for them, so the server feels them stop.
    let stuck = unread_streams(&server, &client, STUCK, Some(4096)).await;
    let before = server.rss_mib();
    let producing = tokio::spawn(generate_while_reading_owned(
        server.brokers(),
        RATE * SECONDS,
        RATE,
    ));
    let mut samples = Vec::new();
    while !producing.is_finished() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        samples.push(server.rss_mib());
    }
    producing.await.unwrap();
    let halfway = samples[samples.len() / 2];
    let peak = samples.iter().copied().fold(0.0, f64::max);
    let last = *samples.last().unwrap();
    eprintln!("RSS MiB before {before:.0}, halfway {halfway:.0}, peak {peak:.0}, last {last:.0}: {samples:.0?}");
    // The second half of the run adds no more than a little to the first: the backlog of
    // a thousand stuck clients is not what memory grows with.
    assert!(
        last < halfway + 150.0,
        "RSS grew from {halfway:.0} to {last:.0} MiB"
    );
    assert!(
        peak < before + 1_024.0,
        "RSS reached {peak:.0} MiB from {before:.0}"
    );
    // Healthy once ingest has worked through the backlog: on two cores shared with the other
    // tests the embedded broker may leave a probe unanswered for a while under this load,
    // which the status rightly shows meanwhile.
    let health: Value = eventually(
        Duration::from_secs(120),
        "/health ok after the load",
        &server,
        || async {
            let health: Value = get_json(&client, &server.url("/health")).await?;
            (health["status"] == "ok").then_some(health)
        },
    )
    .await;
    assert_eq!(
        health["clients"], STUCK,
        "the stuck clients are still connected"
    );
    drop(stuck);
}

#[tokio::test]
async fn live_stream_clients_past_the_limit_get_503_until_a_place_frees_up() {
    let (server, client) = Server::ready(&[("MAX_SSE_CLIENTS", "2")]).await;
    let first = client.get(server.url("/events")).send().await.expect("SSE");
    let second = client.get(server.url("/events")).send().await.expect("SSE");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = client.get(server.url("/events")).send().await.expect("SSE");
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "5");
    let error: Value = third.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("the most"),
        "{error}"
    );
    // One leaves: its place is free once the server notices (at its next write, within a
    // second while anyone watches).
    drop(first);
    eventually(Duration::from_secs(30), "a free place", &server, || async {
        let again = client.get(server.url("/events")).send().await.ok()?;
        (again.status() == 200).then_some(())
    })
    .await;
    drop(second);
}

#[tokio::test]
async fn a_gzip_client_reads_the_same_stream_and_a_limit_sends_each_batchs_newest() {
    const EVENTS: u64 = 3_000;
    let (server, client) = Server::ready(&[]).await;
    let open = |query: &'static str, gzip: bool| {
        let request = client.get(server.url(&format!("/events{query}")));
        match gzip {
            true => request.header("accept-encoding", "br;q=1.0, gzip;q=0.8"),
            false => request.header("accept-encoding", "gzip;q=0, identity"),
        }
        .send()
    };
    let plain = open("", false).await.expect("SSE");
    let gzip = open("", true).await.expect("SSE");
    let newest = open("?limit=2", true).await.expect("SSE");
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.headers()["vary"], "accept-encoding");
    let (mut plain, mut gzip, mut newest) = (
        SseMessages::new(plain),
        SseMessages::new(gzip),
        SseMessages::new(newest),
    );
    eventually(
        Duration::from_secs(30),
        "three clients",
        &server,
        || async {
            let h: Value = get_json(&client, &server.url("/health")).await?;
            (h["clients"] == 3).then_some(())
        },
    )
    .await;
    let brokers = server.brokers();
    let producing = tokio::spawn(async move {
        // In steps, so that the events come in several batches.
        for step in 0..10 {
            let from = step * EVENTS / 10;
            produce_with_rdkafka(&brokers, &numbered_events("zip", from..from + EVENTS / 10)).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let plain = log_batches_until(&mut plain, |batches| count(batches) >= EVENTS).await;
    producing.await.unwrap();
    assert_eq!(count(&plain), EVENTS, "each event once");
    let last_id = plain.last().unwrap().0.clone();
    let gzip = log_batches_until(&mut gzip, |batches| count(batches) >= EVENTS).await;
    assert_eq!(
        gzip, plain,
        "the gzip client got other messages than the plain one"
    );
    let newest = log_batches_until(&mut newest, |batches| {
        batches.last().is_some_and(|(id, _)| *id == last_id)
    })
    .await;
    assert!(
        plain.iter().any(|(_, batch)| batch.len() > 2),
        "no batch had more than 2 events: the limit was never tested"
    );
    let ids = |batches: &[(String, Vec<Value>)]| -> Vec<String> {
        batches.iter().map(|(id, _)| id.clone()).collect()
    };
    assert_eq!(ids(&newest), ids(&plain), "a batch in one stream only");
    for ((id, all), (_, kept)) in plain.iter().zip(&newest) {
        assert_eq!(kept[..], all[all.len().saturating_sub(2)..], "batch {id}");
    }
}

/// The events in `batches`.
fn count(batches: &[(String, Vec<Value>)]) -> u64 {
    batches.iter().map(|(_, batch)| batch.len() as u64).sum()
}

/// The `log` batches (id, events) `messages` brings until `enough` says so.
async fn log_batches_until(
    messages: &mut SseMessages,
    enough: impl Fn(&[(String, Vec<Value>)]) -> bool,
) -> Vec<(String, Vec<Value>)> {
    let mut batches = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !enough(&batches) {
            let (batch, id) = messages.next_log_batch().await.expect("stream open");
            batches.push((id, batch));
        }
    })
    .await
    .expect("the log batches within 60 s");
    batches
}

/// `count` clients that ask for the live stream and never read a byte of it (with a receive
/// buffer of `window` bytes, when given), once the server counts them all.
async fn unread_streams(
    server: &Server,
    client: &reqwest::Client,
    count: u64,
    window: Option<u32>,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut streams = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(window) = window {
            socket.set_recv_buffer_size(window).unwrap();
        }
        let mut stream = socket
            .connect(([127, 0, 0, 1], server.port).into())
            .await
            .expect("a connection");
        stream
            .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        streams.push(stream);
    }
    eventually(
        Duration::from_secs(60),
        "every unread stream connected",
        server,
        || async {
            let h: Value = get_json(client, &server.url("/health")).await?;
            (h["clients"] == count).then_some(())
        },
    )
    .await;
    streams
}
