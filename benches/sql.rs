//! SQL over 10 million rows: lakepulse's query engine (DataFusion on the Delta table, as
//! `/api/query` runs it) against Spark local (PySpark, `local[*]`) and DuckDB (2 threads)
//! reading the same Parquet files, and the same engine sending the queries to a Ballista
//! cluster of two executors on this machine (`SQL_CLUSTER`). `make bench` runs it; it prints
//! table rows.
//!
//! The table is written once under the cargo target directory through `LakeSink`, the sink
//! ingest uses, from the demo generator's steady traffic (`BENCH_SQL_ROWS` to change the size).
//! No compaction runs on it, so its Parquet files hold each row exactly once for Spark.

use chrono::{Duration as TimeDelta, TimeZone, Utc};
use lakepulse::model::QueryRequest;
use lakepulse::pipeline::consumer_group::Ownership;
use lakepulse::pipeline::dead_letter::DeadLetters;
use lakepulse::pipeline::lake::{self, Consumed, LakeSink};
use lakepulse::pipeline::query::QueryEngine;
use lakepulse::tools::gen::Traffic;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[path = "common/questions.rs"]
mod questions;

use questions::{Question, QUERIES};

/// Warm runs of each query; the median is reported.
const REPEATS: usize = 5;

async fn write_table(path: &Path, rows: u64) {
    std::fs::create_dir_all(path).expect("table dir");
    let url = lake::table_url(path).expect("table url");
    let table = lake::open_for_group(&url, "bench").await.expect("table");
    let status = Arc::new(RwLock::new(lake::LakeProgress::opened(&table)));
    // Every generated event decodes: the dead letters' broker is never asked.
    let dead_letters = DeadLetters::new("127.0.0.1:9", "web-logs").expect("a producer");
    // The sink writes all three partitions alone, under one assignment.
    let ownership = Arc::new(Ownership::default());
    ownership.assign(&[0, 1, 2]);
    let sink = LakeSink::new(
        table,
        "bench",
        "web-logs",
        dead_letters,
        ownership,
        status.clone(),
        |_| {},
    );
    let (input, output) = tokio::sync::mpsc::channel(10_000);
    let writer = tokio::spawn(sink.run(output, Duration::from_secs(3600), 500_000));
    let mut traffic = Traffic::new();
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    for offset in 0..rows as i64 {
        // 100 requests a second: 10 million rows span a bit more than a day.
        let event = traffic.steady_event(start + TimeDelta::milliseconds(offset * 10));
        let consumed = Consumed {
            partition: (offset % 3) as i32,
            epoch: 1,
            offset,
            events: vec![Arc::new(event)],
            letters: Vec::new(),
            produced_at: None,
        };
        input.send(consumed).await.expect("the sink runs");
    }
    drop(input);
    writer
        .await
        .expect("the sink finished")
        .expect("every commit landed");
    let rows_committed = status.read().unwrap().rows_committed;
    assert_eq!(rows_committed, rows, "every row committed");
}

/// A scheduler and two executors of one task each, run by the benchmark's own binary on
/// loopback (`BENCH_CLUSTER_EXECUTORS` to change how many); stopped when dropped.
struct Cluster {
    parts: Vec<std::process::Child>,
    address: String,
    /// The scheduler's REST API, where Ballista reports its jobs.
    api: String,
    work: PathBuf,
}

/// One job as the scheduler accounts for it, in milliseconds.
struct JobTimes {
    /// From the job's submission to its end on the scheduler.
    on_scheduler: f64,
    /// Its stages one after the other: from a stage's first task starting to its last ending.
    in_stages: f64,
    /// Every task's execution time, added over the executors.
    in_tasks: f64,
}

impl Cluster {
    fn start(work: PathBuf) -> Cluster {
        let executors: usize = std::env::var("BENCH_CLUSTER_EXECUTORS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2);
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        let scheduler = port();
        let address = format!("df://127.0.0.1:{scheduler}");
        let part = |args: Vec<String>| {
            Command::new(env!("CARGO_BIN_EXE_lakepulse"))
                .args(args)
                .env("RUST_LOG", "warn")
                .spawn()
                .expect("start a cluster part")
        };
        let mut parts = vec![part(vec![
            "sql-scheduler".into(),
            "--bind".into(),
            format!("127.0.0.1:{scheduler}"),
            "--external-host".into(),
            "127.0.0.1".into(),
        ])];
        for i in 0..executors {
            parts.push(part(vec![
                "sql-executor".into(),
                "--scheduler".into(),
                address.clone(),
                "--bind".into(),
                format!("127.0.0.1:{}", port()),
                "--grpc-port".into(),
                port().to_string(),
                "--external-host".into(),
                "127.0.0.1".into(),
                "--work-dir".into(),
                work.join(format!("executor-{i}")).display().to_string(),
                "--tasks".into(),
                "1".into(),
            ]));
        }
        let cluster = Cluster {
            parts,
            address,
            api: format!("http://127.0.0.1:{scheduler}/api"),
            work,
        };
        let executors_url = format!("{}/executors", cluster.api);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = Command::new("curl")
                .args(["-sf", &executors_url])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .and_then(|v| v.as_array().map(Vec::len));
            if listed == Some(executors) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not come up within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Cluster {
    /// Every job the scheduler ran, in the order they were submitted, timed by Ballista.
    async fn jobs(&self) -> Vec<JobTimes> {
        let http = reqwest::Client::new();
        let get = |url: String| {
            let http = http.clone();
            async move {
                http.get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .expect("the scheduler answers")
                    .json::<serde_json::Value>()
                    .await
                    .expect("the scheduler's JSON")
            }
        };
        let listed = get(format!("{}/jobs", self.api)).await;
        let mut jobs: Vec<&serde_json::Value> =
            listed.as_array().expect("a job list").iter().collect();
        jobs.sort_by_key(|job| job["start_time"].as_u64());
        let mut timed = Vec::new();
        for job in jobs {
            let stages = get(format!(
                "{}/job/{}/stages",
                self.api,
                job["job_id"].as_str().expect("an id")
            ))
            .await;
            let (mut in_stages, mut in_tasks) = (0, 0);
            for stage in stages["stages"].as_array().expect("stages") {
                let tasks: Vec<&serde_json::Value> = stage["tasks"]
                    .as_array()
                    .expect("tasks")
                    .iter()
                    .filter(|t| !t.is_null())
                    .collect();
                let first = tasks
                    .iter()
                    .filter_map(|t| t["start_exec_time"].as_u64())
                    .min();
                let last = tasks
                    .iter()
                    .filter_map(|t| t["end_exec_time"].as_u64())
                    .max();
                in_stages += last
                    .zip(first)
                    .map_or(0, |(last, first)| last.saturating_sub(first));
                in_tasks += tasks
                    .iter()
                    .filter_map(|t| t["exec_duration"].as_u64())
                    .sum::<u64>();
            }
            let span = |key: &str| job[key].as_u64().expect("a job time");
            timed.push(JobTimes {
                on_scheduler: span("end_time").saturating_sub(span("start_time")) as f64,
                in_stages: in_stages as f64,
                in_tasks: in_tasks as f64,
            });
        }
        timed
    }
}

/// The middle value of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for part in &mut self.parts {
            let _ = part.kill();
            let _ = part.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

async fn lakepulse(engine: &QueryEngine) -> (f64, Vec<(f64, usize)>) {
    let run = |sql: &'static str| {
        let engine = &engine;
        async move {
            let started = Instant::now();
            let answer = engine.run(&QueryRequest::sql(sql)).await.expect("query");
            (started.elapsed().as_secs_f64() * 1000.0, answer.row_count)
        }
    };
    let (cold, _) = run(QUERIES[0].sql).await;
    let mut warm = Vec::new();
    for Question { sql, .. } in QUERIES {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..REPEATS {
            let (ms, count) = run(sql).await;
            times.push(ms);
            rows = count;
        }
        warm.push((median(times), rows));
    }
    (cold, warm)
}

/// A baseline engine's answers to the five questions: its own process, over the same table.
struct Baseline {
    name: &'static str,
    /// Its session start, cold first query and warm medians, or why it did not run.
    answer: Result<serde_json::Value, String>,
}

impl Baseline {
    /// Runs `benches/baseline_queries.py` for `engine`, each question spelled by `dialect`.
    fn run(
        name: &'static str,
        engine: &str,
        path: &Path,
        dialect: fn(&Question) -> &'static str,
    ) -> Baseline {
        let answer = (|| {
            let venv =
                std::env::var("LAKEPULSE_VENV").map_err(|_| "LAKEPULSE_VENV unset".to_owned())?;
            let output = Command::new(Path::new(&venv).join("bin/python"))
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline_queries.py"))
                .arg(engine)
                .arg(path)
                .arg(REPEATS.to_string())
                .args(QUERIES.iter().map(dialect))
                .output()
                .map_err(|e| e.to_string())?;
            if !output.status.success() {
                return Err(String::from_utf8_lossy(&output.stderr).into_owned());
            }
            serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
        })();
        if let Err(error) = &answer {
            eprintln!("{name} did not run: {error}");
        }
        Baseline { name, answer }
    }

    fn cold(&self) -> Option<f64> {
        self.answer.as_ref().ok()?["cold_ms"].as_f64()
    }

    fn warm(&self, question: usize) -> Option<f64> {
        self.answer.as_ref().ok()?["warm"][question]["median_ms"].as_f64()
    }

    /// lakepulse's `ours` beside this engine's `theirs`, as a ratio.
    fn versus(&self, ours: f64, theirs: Option<f64>) -> String {
        let name = self.name;
        match theirs {
            None => format!("{name} not run"),
            Some(theirs) if theirs >= ours => {
                format!(
                    "{name} {theirs:.0} ms; lakepulse {:.1}x faster",
                    theirs / ours
                )
            }
            Some(theirs) => format!(
                "{name} {theirs:.0} ms; lakepulse takes {:.1}x as long",
                ours / theirs
            ),
        }
    }
}

/// Each warm question answered within this on the 10M-row table (issue 13).
const TARGET_WARM_MS: u64 = 100;

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("BENCH_SQL_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    let path = dir.join(format!("bench-delta-{rows}"));
    if !path.join("_delta_log").exists() {
        let started = Instant::now();
        write_table(&path, rows).await;
        println!(
            "| Delta write | `LakeSink`, {rows} rows in commits of 500 000 | {:.1} s, {:.0} rows/s | |",
            started.elapsed().as_secs_f64(),
            rows as f64 / started.elapsed().as_secs_f64()
        );
    }
    let table = lake::table_url(&path).expect("table url");
    let (cold, ours) = lakepulse(&QueryEngine::new(table.clone())).await;
    let cluster = Cluster::start(dir.join("bench-sql-cluster"));
    let on_cluster = QueryEngine::new(table)
        .with_cluster(Some(cluster.address.parse().expect("a cluster address")));
    let (cluster_cold, on_cluster) = lakepulse(&on_cluster).await;
    let jobs = cluster.jobs().await;
    drop(cluster);
    let spark = Baseline::run("Spark", "spark", &path, Question::spark);
    let duckdb = Baseline::run("DuckDB", "duckdb", &path, Question::duckdb);
    let versus = |ours: f64, of: &dyn Fn(&Baseline) -> Option<f64>| {
        [&spark, &duckdb]
            .map(|baseline| baseline.versus(ours, of(baseline)))
            .join("; ")
    };
    println!(
        "| SQL, {rows} rows | cold first query ({}) | lakepulse {cold:.0} ms | {} |",
        QUERIES[0].what,
        versus(cold, &Baseline::cold)
    );
    for (i, (question, (ms, result_rows))) in QUERIES.iter().zip(&ours).enumerate() {
        println!(
            "| SQL, {rows} rows | {}, warm median of {REPEATS} ({result_rows} result rows) | lakepulse {ms:.0} ms | {}; target {TARGET_WARM_MS} ms and faster than DuckDB |",
            question.what,
            versus(*ms, &|baseline| baseline.warm(i))
        );
    }
    println!(
        "| SQL on a Ballista cluster (2 executors, this machine), {rows} rows | cold first query ({}) | cluster {cluster_cold:.0} ms | in-process {cold:.0} ms; {} |",
        QUERIES[0].what,
        spark.versus(cluster_cold, spark.cold())
    );
    for (i, ((question, (ms, _)), (in_process, _))) in
        QUERIES.iter().zip(&on_cluster).zip(&ours).enumerate()
    {
        println!(
            "| SQL on a Ballista cluster (2 executors, this machine), {rows} rows | {}, warm median of {REPEATS} | cluster {ms:.0} ms | in-process {in_process:.0} ms, the cluster takes {:.1}x as long; {} |",
            question.what,
            *ms / *in_process,
            spark.versus(*ms, spark.warm(i))
        );
    }
    // The cold run's job first, then REPEATS of each query in turn.
    assert_eq!(
        jobs.len(),
        1 + REPEATS * QUERIES.len(),
        "one job per query run"
    );
    for ((question, (ms, _)), runs) in QUERIES
        .iter()
        .zip(&on_cluster)
        .zip(jobs[1..].chunks(REPEATS))
    {
        let of = |time: fn(&JobTimes) -> f64| median(runs.iter().map(time).collect());
        let on_scheduler = of(|job| job.on_scheduler);
        println!(
            "| SQL on a Ballista cluster: where the time goes (scheduler's job metrics) | {}, medians of {REPEATS} | cluster {ms:.0} ms | job on the scheduler {on_scheduler:.0} ms (its stages running {:.0} ms, task time over both executors {:.0} ms); outside the job {:.0} ms: planning, submitting, status polls every 50 ms, fetching the answer over Flight |",
            question.what,
            of(|job| job.in_stages),
            of(|job| job.in_tasks),
            (ms - on_scheduler).max(0.0)
        );
    }
    for baseline in [&spark, &duckdb] {
        if let Ok(answer) = &baseline.answer {
            println!(
                "| SQL | {} session start | {:.1} s | |",
                baseline.name,
                answer["session_ms"].as_f64().unwrap_or(0.0) / 1000.0
            );
        }
    }
}
