//! `lakepulse replay`: a real access log lands line by line with its own times.

use super::harness::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// A gzip'd access log with the odd lines real servers write, three lines that are not
/// events (at lines 51, 153 and 254) and a blank line.
fn write_access_log(path: &Path, valid: usize, first: chrono::DateTime<chrono::Utc>) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("log file");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for i in 0..valid {
        if i % 100 == 50 {
            writeln!(gz, "{i} is not a log line").unwrap();
        }
        if i == 120 {
            writeln!(gz).unwrap();
        }
        let time = (first + chrono::Duration::seconds(i as i64)).format("%d/%b/%Y:%H:%M:%S %z");
        if i == 200 {
            // A real line, but larger than a Kafka message may be: reported, not fatal.
            let agent = "A".repeat(2 << 20);
            writeln!(
                gz,
                r#"192.0.2.1 - - [{time}] "GET / HTTP/1.1" 200 1 "-" "{agent}""#
            )
            .unwrap();
        }
        let ip = if i % 3 == 0 {
            "2001:db8::9"
        } else {
            "198.51.100.7"
        };
        let bytes = if i % 5 == 0 {
            "-".to_owned()
        } else {
            (100 + i).to_string()
        };
        let referer = if i % 7 == 0 {
            "-"
        } else {
            "https://example.com/start"
        };
        let status = if i % 10 == 0 { 502 } else { 200 };
        writeln!(
            gz,
            r#"{ip} - - [{time}] "GET /items/{}?page=2 HTTP/1.1" {status} {bytes} "{referer}" "Mozilla/5.0 (X11; Linux) \"quoted\" agent""#,
            i % 4
        )
        .unwrap();
    }
    gz.finish().unwrap();
}

#[tokio::test]
async fn replaying_an_access_log_lands_every_valid_line_once_with_its_own_time() {
    let (server, client) = Server::ready(&[]).await;
    const LINES: usize = 300;
    let first = chrono::Utc::now() - chrono::Duration::minutes(40);
    let log = server.data_dir.path().join("access.log.gz");
    write_access_log(&log, LINES, first);

    let replay = replay_combined(&server, &log);
    let report = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{report}");
    assert!(
        report.contains(&format!("{LINES} events published")),
        "{report}"
    );
    assert!(report.contains("1 blank, 4 invalid"), "{report}");
    assert!(
        report.contains("line 204: 2097") && report.contains("more than a Kafka message"),
        "{report}"
    );
    for line in ["line 51:", "line 153:", "line 255:"] {
        assert!(report.contains(line), "{line} missing from: {report}");
    }

    let metrics = metrics_counting(&server, &client, "window=1h", LINES as u64).await;
    assert_eq!(metrics["totalErrors"], (LINES / 10) as u64);
    assert_eq!(
        metrics["malformed"],
        json!({}),
        "invalid lines are not published"
    );
    // Event time is the log's: the clock stands at the last line, 40 minutes ago.
    let event_time: chrono::DateTime<chrono::Utc> =
        metrics["eventTime"].as_str().unwrap().parse().unwrap();
    let last_line = first + chrono::Duration::seconds(LINES as i64 - 1);
    assert!(
        (event_time - last_line).num_seconds().abs() <= 5,
        "{event_time} vs {last_line}"
    );
    let hour = &metrics["windows"][2];
    assert_eq!(hour["requests"], LINES as u64);

    let count = eventually(Duration::from_secs(30), "the replayed rows", &server, || async {
        let (status, answer) = sql(
            &client,
            &server,
            "SELECT count(*) AS n, min(timestamp) AS first, count(DISTINCT endpoint) AS endpoints FROM logs",
        )
        .await;
        (status == 200 && answer["rows"][0][0].as_u64()? == LINES as u64).then_some(answer)
    })
    .await;
    let first_in_lake: chrono::DateTime<chrono::Utc> =
        count["rows"][0][1].as_str().unwrap().parse().unwrap();
    assert_eq!(first_in_lake.timestamp(), first.timestamp());
    assert_eq!(
        count["rows"][0][2], 4,
        "query strings are not part of the endpoint"
    );
    let (_, raw) = sql(
        &client,
        &server,
        "SELECT raw FROM logs ORDER BY timestamp LIMIT 1",
    )
    .await;
    assert!(
        raw["rows"][0][0]
            .as_str()
            .unwrap()
            .starts_with("2001:db8::9 - - ["),
        "the line as the server wrote it: {raw}"
    );
}
