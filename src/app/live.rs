//! The browser's end of `GET /events`: SSE frames land in signals the components read.

use crate::model::{
    Anomaly, Health, LiveEvent, LogFilter, MetricsSnapshot, StageState, VisitReport,
};
use leptos::prelude::*;

/// How many anomalies a page keeps.
pub const ANOMALIES_KEPT: usize = 50;

#[derive(Clone, Copy)]
pub struct LiveSignals {
    pub metrics: RwSignal<MetricsSnapshot>,
    pub health: RwSignal<Health>,
    pub logs: RwSignal<Vec<LiveEvent>>,
    /// Open first, then ended, newest first (as `/api/anomalies`).
    pub anomalies: RwSignal<Vec<Anomaly>>,
    /// GoAccess's report over the page's window; None on pages that show none.
    pub visits: RwSignal<Option<VisitReport>>,
    /// The state of this browser's own link to the server.
    pub link: RwSignal<StageState>,
    /// When the link came back after it was lost.
    pub reconnected: RwSignal<Option<chrono::DateTime<chrono::Utc>>>,
    /// While paused, new log lines are counted and held back instead of shown.
    pub paused: RwSignal<bool>,
    pub held: RwSignal<u64>,
    /// The held lines, oldest first: resuming shows exactly these, each once (refetching
    /// the list instead raced the stream and showed lines twice).
    held_logs: StoredValue<Vec<LiveEvent>>,
}

impl LiveSignals {
    /// Signals for a page whose first paint showed `health`; what else it showed comes in
    /// with the `with_` methods, and the stream fills in the rest.
    pub fn new(health: Health) -> Self {
        LiveSignals {
            metrics: RwSignal::new(MetricsSnapshot::default()),
            health: RwSignal::new(health),
            logs: RwSignal::new(Vec::new()),
            anomalies: RwSignal::new(Vec::new()),
            visits: RwSignal::new(None),
            link: RwSignal::new(StageState::Connecting),
            reconnected: RwSignal::new(None),
            paused: RwSignal::new(false),
            held: RwSignal::new(0),
            held_logs: StoredValue::new(Vec::new()),
        }
    }

    /// The metrics of the first paint.
    pub fn with_metrics(self, metrics: MetricsSnapshot) -> Self {
        self.metrics.set(metrics);
        self
    }

    /// The log lines of the first paint, newest first.
    pub fn with_logs(self, logs: Vec<LiveEvent>) -> Self {
        self.logs.set(logs);
        self
    }

    /// The visit report of the first paint; the stream keeps it current for its window.
    pub fn with_visits(self, visits: VisitReport) -> Self {
        self.visits.set(Some(visits));
        self
    }

    /// The anomalies of the first paint.
    pub fn with_anomalies(self, anomalies: Vec<Anomaly>) -> Self {
        self.anomalies.set(anomalies);
        self
    }

    /// Takes a batch of new log lines (oldest first): shown, newest on top, keeping
    /// `log_lines`; or held while paused.
    fn receive(&self, batch: Vec<LiveEvent>, log_lines: usize) {
        if self.paused.get_untracked() {
            self.held.update(|held| *held += batch.len() as u64);
            self.held_logs.update_value(|held| {
                held.extend(batch);
                let beyond_view = held.len().saturating_sub(log_lines);
                held.drain(..beyond_view);
            });
            return;
        }
        self.logs.update(|logs| {
            let older = std::mem::take(logs);
            logs.extend(batch.into_iter().rev());
            logs.extend(older);
            logs.truncate(log_lines);
        });
    }

    /// Shows what was held while paused and follows the stream again.
    pub fn resume(&self, log_lines: usize) {
        self.paused.set(false);
        let held = self
            .held_logs
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        self.receive(held, log_lines);
        self.held.set(0);
    }
}

/// Opens `GET /events` once the page is live in a browser, with `logs`' filters and keeping
/// the newest `log_lines` events, or with no log lines at all for a page that shows none; on
/// the server it does nothing.
pub fn connect(signals: LiveSignals, logs: Option<&LogFilter>, log_lines: usize) {
    // The view keeps `log_lines` events: a batch needs bring no more than those.
    let mut url = match logs {
        Some(filter) => format!("/events?limit={log_lines}&{}", filter.to_query()),
        None => "/events?logs=false".to_owned(),
    };
    if let Some(report) = signals.visits.get_untracked() {
        url += &format!("&window={}", report.window.label());
    }
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        browser::open(signals, &url, log_lines);
        #[cfg(not(feature = "hydrate"))]
        let _ = (signals, &url, log_lines);
    });
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{LiveSignals, ANOMALIES_KEPT};
    use crate::model::{sse, Anomaly, LiveEvent, StageState};
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use serde::de::DeserializeOwned;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{Event, EventSource, MessageEvent};

    struct Subscription {
        source: EventSource,
        _listeners: Vec<Closure<dyn FnMut(Event)>>,
    }

    impl Drop for Subscription {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    fn parse<T: DeserializeOwned>(event: &Event) -> Option<T> {
        let text = event.dyn_ref::<MessageEvent>()?.data().as_string()?;
        serde_json::from_str(&text).ok()
    }

    pub fn open(signals: LiveSignals, url: &str, log_lines: usize) {
        let Ok(source) = EventSource::new(url) else {
            signals.link.set(StageState::Down);
            return;
        };
        let mut listeners = Vec::new();
        let mut listen = |name: &str, handler: Box<dyn FnMut(Event)>| {
            let closure = Closure::wrap(handler);
            let _ = source.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            listeners.push(closure);
        };
        listen(
            "open",
            Box::new(move |_| {
                if signals.link.get_untracked() == StageState::Down {
                    signals.reconnected.set(Some(chrono::Utc::now()));
                }
                signals.link.set(StageState::Connected);
            }),
        );
        // EventSource reconnects by itself; until it does, the page says it is cut off.
        listen(
            "error",
            Box::new(move |_| signals.link.set(StageState::Down)),
        );
        listen(
            sse::METRICS,
            Box::new(move |e| {
                if let Some(m) = parse(&e) {
                    signals.metrics.set(m);
                    signals.link.set(StageState::Connected);
                }
            }),
        );
        listen(
            sse::VISITS,
            Box::new(move |e| {
                if let Some(report) = parse(&e) {
                    signals.visits.set(Some(report));
                }
            }),
        );
        listen(
            sse::HEALTH,
            Box::new(move |e| {
                if let Some(h) = parse(&e) {
                    signals.health.set(h);
                }
            }),
        );
        listen(
            sse::LOG,
            Box::new(move |e| {
                if let Some(batch) = parse::<Vec<LiveEvent>>(&e) {
                    signals.receive(batch, log_lines);
                }
            }),
        );
        listen(
            sse::ANOMALY,
            Box::new(move |e| {
                if let Some(anomaly) = parse::<Anomaly>(&e) {
                    signals.anomalies.update(|list| {
                        list.retain(|a| a.id != anomaly.id);
                        list.push(anomaly);
                        // Open ones first, newest first within each group.
                        list.sort_by_key(|a| (a.ended.is_some(), std::cmp::Reverse(a.id)));
                        list.truncate(ANOMALIES_KEPT);
                    });
                }
            }),
        );
        let subscription = SendWrapper::new(Subscription {
            source,
            _listeners: listeners,
        });
        on_cleanup(move || drop(subscription));
    }
}
