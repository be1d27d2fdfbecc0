//! One line per stage: is it up, and why not.

use crate::app::format;
use crate::app::live::LiveSignals;
use crate::model::{SqlEngine, StageState};
use leptos::prelude::*;

#[component]
pub fn StatusBar(signals: LiveSignals) -> impl IntoView {
    let (health, link) = (signals.health, signals.link);
    let kafka = move || {
        let h = health.get();
        let origin = if h.kafka.embedded {
            "embedded broker"
        } else {
            "cluster"
        };
        let lag = h.kafka.lag.map_or(String::new(), |lag| {
            // Probes run every 3 s; an older answer is what a busy broker last said.
            let stale = h
                .kafka
                .partitions_age_secs
                .filter(|age| *age >= 10.0)
                .map_or(String::new(), |age| format!(" as of {age:.0} s ago"));
            format!(" · lag {}{stale}", format::count(lag as f64))
        });
        format!(
            "{} Kafka {} · {} ({origin}) · topic {} · {}{lag}",
            h.kafka.state.icon(),
            h.kafka.state.label(),
            h.kafka.brokers,
            h.kafka.topic,
            h.kafka.detail
        )
    };
    let lake = move || {
        let h = health.get();
        let version = h.lake.version.map_or("–".to_owned(), |v| v.to_string());
        let last = h
            .lake
            .last_commit_age_secs
            .map_or("no commit yet".to_owned(), |age| {
                format!("last commit {age:.0} s ago")
            });
        let fresh = h.lake.freshness_ms.map_or(String::new(), |ms| {
            format!(" · visible to SQL {} after produce", format::millis(ms))
        });
        format!(
            "{} Delta Lake {} · v{version} · {} rows committed · {last}{fresh}",
            h.lake.state.icon(),
            h.lake.state.label(),
            format::count(h.lake.rows_committed as f64)
        )
    };
    let sql = move || {
        let sql = health.get().sql;
        let executors = sql
            .executors
            .map_or(String::new(), |n| format!(" · {n} executors"));
        format!(
            "{} SQL {} · {}{executors}",
            sql.state.icon(),
            sql.state.label(),
            match sql.engine {
                SqlEngine::InProcess => "DataFusion in-process".to_owned(),
                SqlEngine::Cluster { scheduler } => format!("Ballista {scheduler}"),
            }
        )
    };
    let stream = move || {
        let state = link.get();
        let text = match state {
            StageState::Connecting => "connecting",
            StageState::Connected => "live",
            StageState::Partial => "partial",
            StageState::Down => "disconnected, retrying",
        };
        let back = signals.reconnected.get().map_or(String::new(), |at| {
            format!(" · reconnected at {}", at.format("%H:%M:%S"))
        });
        format!(
            "{} Live stream {text} · {} viewers{back}",
            state.icon(),
            health.get().clients
        )
    };
    view! {
        <section class="pipeline-status" aria-label="Pipeline status">
            <span data-testid="status-kafka" title=move || health.get().kafka.detail>{kafka}</span>
            <span
                data-testid="status-lake"
                title=move || {
                    let lake = health.get().lake;
                    format!("{} · maintenance: {}", lake.detail, lake.maintenance)
                }
            >{lake}</span>
            <span data-testid="status-sql" title=move || health.get().sql.detail>{sql}</span>
            <span data-testid="status-stream" data-state=move || link.get().label()>
                {stream}
            </span>
            <Show when=move || health.get().demo_traffic>
                <span class="badge" data-testid="status-demo">"demo traffic (DEMO=0 turns it off)"</span>
            </Show>
        </section>
    }
}
