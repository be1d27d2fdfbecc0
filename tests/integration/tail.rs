//! `lakepulse tail`: an access log followed through rotations, a truncation in place and a
//! restart lands every line once.

use super::harness::*;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn start_tail(server: &Server, log: &Path, state: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lakepulse"))
        .args([
            "tail",
            log.to_str().unwrap(),
            "--from-start",
            "--format",
            "combined",
            "--state",
            state.to_str().unwrap(),
        ])
        .env("KAFKA_BROKERS", server.brokers())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tail")
}

/// The access-log line numbered `i`, its newline left to the caller.
fn line(i: usize) -> String {
    let time = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z");
    format!(r#"192.0.2.1 - - [{time}] "GET /tail/{i}?n={i} HTTP/1.1" 200 5 "-" "tail-test""#)
}

fn append(path: &Path, lines: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in lines {
        writeln!(file, "{}", line(i)).unwrap();
    }
}

/// Stops tail as an operator does (SIGTERM); it exits saying all went well.
fn stop_cleanly(mut tail: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &tail.id().to_string()])
        .status();
    let stopped = tail.wait().expect("tail exits");
    assert!(stopped.success(), "{stopped:?}");
}

/// Lets tail read what is there (it looks every 200 ms, and waits a second on a rotated file).
fn pause() {
    std::thread::sleep(Duration::from_millis(1_500));
}

#[tokio::test]
async fn a_followed_log_lands_every_line_once_through_rotations_truncation_and_a_restart() {
    let (server, client) = Server::ready(&[]).await;
    let dir = server.data_dir.path().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let state = dir.join("tail-state.json");
    append(&log, 0..10);
    let tail = start_tail(&server, &log, &state);
    pause();
    append(&log, 10..30);
    // A line written in two parts is one line.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let whole = line(30);
    let (first_half, second_half) = whole.split_at(whole.len() / 2);
    write!(file, "{first_half}").unwrap();
    file.flush().unwrap();
    pause();
    writeln!(file, "{second_half}").unwrap();
    drop(file);
    append(&log, 31..40);
    // Rotation as logrotate's `create` does it: the server writes on into the renamed file
    // until it reopens its log, the last of it without a newline.
    std::fs::rename(&log, dir.join("access.log.1")).unwrap();
    append(&dir.join("access.log.1"), 40..45);
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("access.log.1"))
        .unwrap();
    write!(old, "{}", line(45)).unwrap();
    drop(old);
    pause();
    append(&log, 46..60);
    pause();

    // A clean stop, lines written and a rotation while nothing reads, a start again.
    stop_cleanly(tail);
    assert!(std::fs::read_to_string(&state)
        .unwrap()
        .contains("access.log"));
    append(&log, 60..70);
    std::fs::rename(&log, dir.join("access.log.2")).unwrap();
    append(&log, 70..80);
    let tail = start_tail(&server, &log, &state);
    pause();
    append(&log, 80..90);
    pause();

    // copytruncate: the file is copied away and emptied in place.
    std::fs::copy(&log, dir.join("access.log.3")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    pause();
    append(&log, 90..100);
    pause();
    stop_cleanly(tail);

    const COUNTS: &str = "SELECT count(*) AS n, count(DISTINCT endpoint) AS lines, count(DISTINCT query) AS queries, min(user_agent) AS agent FROM logs WHERE endpoint LIKE '/tail/%'";
    eventually(
        Duration::from_secs(60),
        "every tailed line in the lake",
        &server,
        || async {
            let (status, answer) = sql(&client, &server, COUNTS).await;
            (status == 200 && answer["rows"][0][1].as_u64()? == 100).then_some(())
        },
    )
    .await;
    // A line sent twice could land in a later commit than the last line.
    std::thread::sleep(Duration::from_secs(3));
    let (_, answer) = sql(&client, &server, COUNTS).await;
    assert_eq!(
        answer["rows"][0],
        serde_json::json!([100, 100, 100, "tail-test"]),
        "every line once: {answer}"
    );
}
