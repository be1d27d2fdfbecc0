//! `lakepulse gen`: realistic web-request events over the Kafka protocol. Traffic has a
//! daily-ish rhythm of its own: a steady mix of endpoints, sessions and users, with an error
//! burst and a slow period recurring on a fixed schedule so the dashboard has something to show.

use crate::cli::{GenArgs, Span};
use crate::model::LogEvent;
use crate::pipeline::decode::{level_for_status, too_far_ahead};
use crate::tools::publisher::Publisher;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use std::time::{Duration, Instant};

struct Route {
    method: &'static str,
    path: &'static str,
    source: &'static str,
    weight: u32,
    median_ms: f64,
    median_bytes: f64,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/products",
        source: "catalog-service",
        weight: 22,
        median_ms: 45.0,
        median_bytes: 8_200.0,
    },
    Route {
        method: "GET",
        path: "/api/products/{id}",
        source: "catalog-service",
        weight: 18,
        median_ms: 30.0,
        median_bytes: 2_100.0,
    },
    Route {
        method: "GET",
        path: "/api/search",
        source: "search-service",
        weight: 12,
        median_ms: 140.0,
        median_bytes: 5_400.0,
    },
    Route {
        method: "POST",
        path: "/api/cart",
        source: "cart-service",
        weight: 9,
        median_ms: 70.0,
        median_bytes: 640.0,
    },
    Route {
        method: "POST",
        path: "/api/checkout",
        source: "payment-service",
        weight: 4,
        median_ms: 260.0,
        median_bytes: 900.0,
    },
    Route {
        method: "POST",
        path: "/api/login",
        source: "auth-service",
        weight: 5,
        median_ms: 110.0,
        median_bytes: 420.0,
    },
    Route {
        method: "GET",
        path: "/api/orders",
        source: "order-service",
        weight: 6,
        median_ms: 85.0,
        median_bytes: 3_300.0,
    },
    Route {
        method: "GET",
        path: "/api/users/{id}",
        source: "auth-service",
        weight: 5,
        median_ms: 35.0,
        median_bytes: 1_200.0,
    },
    Route {
        method: "GET",
        path: "/static/app.js",
        source: "web-frontend",
        weight: 12,
        median_ms: 4.0,
        median_bytes: 182_000.0,
    },
    Route {
        method: "GET",
        path: "/health",
        source: "api-gateway",
        weight: 7,
        median_ms: 1.5,
        median_bytes: 60.0,
    },
];

/// Unless `--steady`: every 2 minutes, 12 s in which payments and checkout fail often...
const ERROR_BURST: (u64, u64) = (120, 12);
/// ...and every 3 minutes, 20 s in which search is five times slower.
const SLOW_PERIOD: (u64, u64) = (180, 20);
/// During `--error-burst`, the share of all requests that fail.
const BURST_FAILURE_RATE: f64 = 0.4;
/// During `--latency-spike`, how much slower every request is.
const SPIKE_SLOWDOWN: f64 = 8.0;

/// What is going wrong at one moment of the traffic.
#[derive(Clone, Copy, Debug, Default)]
struct Conditions {
    payments_failing: bool,
    search_slow: bool,
    everything_failing: bool,
    everything_slow: bool,
}

impl Conditions {
    fn at(config: &GenArgs, event_secs: f64) -> Self {
        let recurring = |(every, lasting): (u64, u64)| {
            !config.steady && (event_secs as u64) % every >= every - lasting
        };
        let during = |spans: &[Span]| spans.iter().any(|s| s.contains(event_secs));
        Conditions {
            payments_failing: recurring(ERROR_BURST),
            search_slow: recurring(SLOW_PERIOD),
            everything_failing: during(&config.error_burst),
            everything_slow: during(&config.latency_spike),
        }
    }
}

struct Session {
    id: String,
    user: Option<String>,
    ip: String,
    user_agent: &'static str,
}

/// Browsers, apps and bots as a shop's traffic has them, with their weights.
const USER_AGENTS: &[(&str, u32)] = &[
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 36),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 20),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 14),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 12),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 8),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 6),
    ("okhttp/4.12.0", 4),
];

/// Where visitors come from; most requests are the shop's own pages calling its API.
const REFERRERS: &[&str] = &[
    "https://shop.example/",
    "https://shop.example/products",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://t.co/",
];

const SEARCH_TERMS: &[&str] = &["shoes", "lamp", "usb-c+cable", "coffee", "desk", "jacket"];

/// Realistic requests: sessions that come and go, weighted routes, log-normal latencies.
pub struct Traffic {
    rng: StdRng,
    sessions: Vec<Session>,
    next_session: u64,
    latency_spread: LogNormal<f64>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic::new()
    }
}

impl Traffic {
    pub fn new() -> Self {
        let mut traffic = Traffic {
            rng: StdRng::from_os_rng(),
            sessions: Vec::new(),
            next_session: 0,
            latency_spread: LogNormal::new(0.0, 0.45).expect("valid log-normal parameters"),
        };
        traffic.sessions = (0..400).map(|_| traffic.new_session()).collect();
        traffic
    }

    fn new_session(&mut self) -> Session {
        self.next_session += 1;
        let user = self
            .rng
            .random_bool(0.7)
            .then(|| format!("user-{}", self.rng.random_range(1..=5_000)));
        let ip = if self.rng.random_bool(0.1) {
            format!(
                "2001:db8:{:x}::{:x}",
                self.rng.random_range(1..0xffff),
                self.rng.random_range(1..0xffff)
            )
        } else {
            format!(
                "{}.{}.{}.{}",
                [203, 198, 192, 100][self.rng.random_range(0..4)],
                self.rng.random_range(0..=255),
                self.rng.random_range(0..=255),
                self.rng.random_range(1..=254)
            )
        };
        let &(user_agent, _) = USER_AGENTS
            .choose_weighted(&mut self.rng, |(_, weight)| *weight)
            .unwrap_or(&USER_AGENTS[0]);
        Session {
            id: format!("sess-{:x}-{}", self.rng.random::<u32>(), self.next_session),
            user,
            ip,
            user_agent,
        }
    }

    fn pick_route(&mut self) -> &'static Route {
        ROUTES
            .choose_weighted(&mut self.rng, |route| route.weight)
            .unwrap_or(&ROUTES[0])
    }

    /// An event of ordinary traffic: no error burst, no slow period.
    pub fn steady_event(&mut self, timestamp: DateTime<Utc>) -> LogEvent {
        self.event(timestamp, Conditions::default())
    }

    fn event(&mut self, timestamp: DateTime<Utc>, now: Conditions) -> LogEvent {
        // Sessions come and go.
        if self.rng.random_bool(0.01) {
            let slot = self.rng.random_range(0..self.sessions.len());
            self.sessions[slot] = self.new_session();
        }
        let route = self.pick_route();
        let endpoint = route
            .path
            .replace("{id}", &self.rng.random_range(1..=60).to_string());
        let mut response_time = route.median_ms * self.latency_spread.sample(&mut self.rng);
        if now.search_slow && route.source == "search-service" {
            response_time *= 5.0;
        }
        if now.everything_slow {
            response_time *= SPIKE_SLOWDOWN;
        }
        let payments = matches!(route.source, "payment-service" | "cart-service");
        let roll: f64 = self.rng.random();
        let (status, message) = if now.everything_failing && roll < BURST_FAILURE_RATE {
            (503, format!("{} unavailable", route.source))
        } else if now.payments_failing && payments && roll < 0.35 {
            (503, "upstream payment provider unavailable".to_owned())
        } else if roll < 0.004 {
            (
                500,
                "unhandled exception: database connection reset".to_owned(),
            )
        } else if route.path == "/api/login" && roll < 0.08 {
            (401, "invalid credentials".to_owned())
        } else if roll < 0.025 {
            (404, format!("no route for {endpoint}"))
        } else if route.method == "POST" {
            (201, format!("{} {} created", route.method, endpoint))
        } else if route.path.starts_with("/static") && roll < 0.3 {
            (304, "not modified".to_owned())
        } else {
            (200, format!("{} {} ok", route.method, endpoint))
        };
        let bytes = if status == 304 {
            0
        } else {
            (route.median_bytes * self.rng.random_range(0.5..1.5)) as u64
        };
        let session = &self.sessions[self.rng.random_range(0..self.sessions.len())];
        let referrer = self
            .rng
            .random_bool(0.6)
            .then(|| REFERRERS[self.rng.random_range(0..REFERRERS.len())].to_owned());
        let query = (route.path == "/api/search").then(|| {
            let term = SEARCH_TERMS[self.rng.random_range(0..SEARCH_TERMS.len())];
            format!("q={term}")
        });
        LogEvent {
            timestamp,
            level: level_for_status(status).to_owned(),
            source: route.source.to_owned(),
            method: route.method.to_owned(),
            endpoint,
            status,
            response_time: Some((response_time * 100.0).round() / 100.0),
            user_id: session.user.clone(),
            session_id: Some(session.id.clone()),
            ip: Some(session.ip.clone()),
            bytes,
            message,
            user_agent: Some(session.user_agent.to_owned()),
            referrer,
            protocol: Some("HTTP/2.0".to_owned()),
            query,
            ..LogEvent::default()
        }
    }
}

fn event_span(secs: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((secs * 1e3) as i64)
}

/// Now; or, when event time runs faster than the clock for a known duration, that long ago,
/// so the run ends about now instead of ahead of every clock.
fn first_event_by_default(config: &GenArgs) -> DateTime<Utc> {
    match config.duration {
        Some(secs) if config.speedup > 1.0 => Utc::now() - event_span(secs),
        _ => Utc::now(),
    }
}

/// Resolves once stdin reaches its end (or cannot be read).
async fn stdin_closed() {
    let (closed, when_closed) = tokio::sync::oneshot::channel();
    // Reading stdin blocks; a thread of its own waits for the end.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed.send(());
    });
    let _ = when_closed.await;
}

pub async fn run(config: GenArgs) -> anyhow::Result<()> {
    let bootstrap = config.kafka.bootstrap();
    let mut publisher = Publisher::connect(&bootstrap, &config.kafka.topic).await?;
    let mut traffic = Traffic::new();
    // Rate and duration are in event time, which runs `speedup` times faster than the wall clock.
    let rate = f64::from(config.rate.max(1));
    let speedup = config.speedup.max(1e-3);
    let first_event = config
        .start_time
        .unwrap_or_else(|| first_event_by_default(&config));
    if speedup > 1.0 {
        let last_event = config.duration.map(|d| first_event + event_span(d));
        if last_event.is_none_or(|last| too_far_ahead(last, Utc::now())) {
            tracing::warn!(
                "event time will run ahead of the clock: lakepulse sets aside events more than 10 minutes ahead (give --duration, or an earlier --start-time)"
            );
        }
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let stdin_closed = async {
        match config.while_stdin_open {
            true => stdin_closed().await,
            false => std::future::pending().await,
        }
    };
    tokio::pin!(stdin_closed);
    tracing::info!(%bootstrap, topic = %config.kafka.topic, rate, speedup, "producing");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stdin_closed => {
                tracing::info!("stdin closed; stopping");
                break;
            }
        }
        let event_secs = started.elapsed().as_secs_f64() * speedup;
        let finished = config.duration.is_some_and(|d| event_secs >= d);
        let event_secs = config.duration.map_or(event_secs, |d| event_secs.min(d));
        // Catch up to where the rate says we should be, capped by --count.
        let due = ((event_secs * rate) as u64).min(config.count.unwrap_or(u64::MAX));
        while publisher.sent() < due {
            // Spread the events of this tick evenly over the event time it covers.
            let at = publisher.sent() as f64 / rate;
            let timestamp = first_event + chrono::Duration::microseconds((at * 1e6) as i64);
            let event = traffic.event(timestamp, Conditions::at(&config, at));
            let payload = serde_json::to_vec(&event)?;
            let key = event.session_id.as_deref().map(str::as_bytes);
            publisher.send(key, &payload).await?;
        }
        if finished || config.count.is_some_and(|c| publisher.sent() >= c) {
            break;
        }
    }
    let produced = publisher.finish().await?;
    tracing::info!(produced, secs = started.elapsed().as_secs_f64(), "done");
    Ok(())
}
