//! The binary: parses the command line, then serves or runs a tool.

use anyhow::Context;
use clap::Parser;
use lakepulse::cli::{Cli, Command, LogFormat, ServeArgs};
use lakepulse::pipeline::query::cluster;
use lakepulse::pipeline::Pipeline;
use lakepulse::server::access::{Access, AllowedHosts, Guard};
use lakepulse::server::{router, site, until_started, AppState};
use lakepulse::tools;
use leptos::prelude::LeptosOptions;
use std::future::IntoFuture;
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tracing_subscriber::EnvFilter;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long the runtime waits for blocking threads once everything else has stopped.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// delta-rs and its kernel narrate every snapshot at info level.
const DEFAULT_LOG_FILTER: &str = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(run());
    // Dropping librdkafka's consumer waits for the broker to acknowledge its close, from
    // whichever blocking thread held it last, and tansu may never answer: give that a bound.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    result
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes are noise in a file or journald.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let command = match cli.command {
        Some(command) => command,
        None => Cli::parse_from(["lakepulse", "serve"])
            .command
            .context("`serve` is a subcommand")?,
    };
    match command {
        Command::Serve(config) => serve(*config).await,
        Command::Gen(config) => tools::gen::run(config).await,
        Command::Replay(config) => tools::replay::run(config).await,
        Command::Tail(config) => tools::tail::run(config).await,
        Command::SqlScheduler(config) => {
            tracing::info!(bind = %config.bind, "SQL scheduler starting");
            cluster::run_scheduler(config.bind, config.external_host)
                .await
                .context("running the SQL scheduler")
        }
        Command::SqlExecutor(config) => {
            let place = config.place();
            tracing::info!(bind = %place.bind, scheduler = %place.scheduler, "SQL executor starting");
            cluster::run_executor(place)
                .await
                .context("running the SQL executor")
        }
    }
}

async fn serve(config: ServeArgs) -> anyhow::Result<()> {
    // Every SSE client holds a socket: the default soft limit (often 1024) would cap the
    // dashboards one server can feed far below what it handles.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open files limit"),
    }
    let addr = config.listen_addr();
    // Bound before the pipeline starts, which can take a minute while a broker comes up: a
    // probe tells "starting" (503 with `/livez` 200) from "dead" (refused).
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let app = Arc::new(OnceLock::new());
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let serving = axum::serve(
        listener,
        until_started(app.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopped.notified().await })
    .into_future();
    tokio::pin!(serving);
    tracing::info!(url = %format!("http://{addr}"), "listening; starting the pipeline");
    let pipeline_config = config.pipeline();
    let pipeline = tokio::select! {
        started = Pipeline::start(&pipeline_config) => started.context("starting the pipeline")?,
        result = &mut serving => return result.context("serving HTTP"),
        _ = stop_requested() => return Ok(()),
    };
    let health = pipeline.health();
    let site_root = config.site_root();
    let leptos_options = LeptosOptions::builder()
        .output_name(site::bundle_name(std::path::Path::new(&site_root)))
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let access = match (&config.token, &config.token_file) {
        (Some(token), _) => Access::new(token),
        (None, Some(file)) => Access::new(
            &std::fs::read_to_string(file)
                .with_context(|| format!("reading the token file {}", file.display()))?,
        ),
        (None, None) => None,
    };
    if access.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback with no LAKEPULSE_TOKEN: anyone who can reach this port can read the logs and run SQL");
    }
    let started = app.set(router(AppState {
        leptos_options,
        pipeline: pipeline.clone(),
        guard: Guard {
            hosts: match (&config.allowed_hosts, &access) {
                (Some(list), _) => AllowedHosts::parse(list),
                (None, Some(_)) => AllowedHosts::any(),
                (None, None) => AllowedHosts::default(),
            },
            access,
        },
    }));
    debug_assert!(started.is_ok(), "the app is set once");
    tracing::info!(
        url = %format!("http://{addr}"),
        kafka = %health.kafka.brokers,
        embedded_broker = health.kafka.embedded,
        topic = %health.kafka.topic,
        lake = %health.lake.path,
        demo = health.demo_traffic,
        "lakepulse is up"
    );
    let failed = tokio::select! {
        result = &mut serving => return result.context("serving HTTP"),
        _ = stop_requested() => None,
        reason = pipeline.stopped_for_good() => {
            tracing::error!(%reason, "stopping: a fresh start resumes from the table's offsets");
            Some(reason)
        }
    };
    stop.notify_one();
    // Requests in flight get a moment to finish; SSE streams never finish by themselves.
    let served = match tokio::time::timeout(SHUTDOWN_GRACE, serving).await {
        Ok(result) => result.context("serving HTTP"),
        Err(_) => Ok(()),
    };
    pipeline.stop().await;
    match failed {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => served,
    }
}

/// Ctrl-C, SIGTERM, or SIGHUP (the terminal closed). The pipeline's stop then ends the child
/// processes it started (embedded broker, demo traffic): they run in process groups of their
/// own, so the terminal's signals reach lakepulse alone.
async fn stop_requested() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut hangup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
    tracing::info!("shutting down");
}
