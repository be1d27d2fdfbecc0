//! Alerts: each anomaly that opens or ends is POSTed as JSON to ALERT_WEBHOOK_URL, retried
//! with backoff, from a task of its own: a slow or dead webhook never holds up ingest.

use crate::model::Anomaly;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::mpsc;

/// Alerts waiting for delivery; beyond this they are dropped (and logged), not queued forever.
const QUEUE: usize = 256;
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct Payload<'a> {
    /// A line for chat webhooks (Slack, Mattermost) that show `text`.
    text: String,
    anomaly: &'a Anomaly,
}

fn headline(anomaly: &Anomaly) -> String {
    let state = if anomaly.ended.is_some() {
        "ended"
    } else {
        "started"
    };
    format!(
        "lakepulse: {} ({:?}) on {} {state}: {:.1} against a baseline of {:.1}",
        anomaly.kind.describe(),
        anomaly.severity,
        anomaly.scope,
        anomaly.value,
        anomaly.baseline
    )
}

#[derive(Clone)]
pub struct Alerter {
    queue: mpsc::Sender<Anomaly>,
}

impl Alerter {
    pub fn start(webhook_url: String) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(webhook_url, pending));
        Alerter { queue }
    }

    pub fn notify(&self, anomaly: &Anomaly) {
        if self.queue.try_send(anomaly.clone()).is_err() {
            tracing::error!(id = anomaly.id, "alert queue full; this alert is not sent");
        }
    }
}

async fn deliver(url: String, mut pending: mpsc::Receiver<Anomaly>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook client; alerts are off");
            return;
        }
    };
    while let Some(anomaly) = pending.recv().await {
        let payload = Payload {
            text: headline(&anomaly),
            anomaly: &anomaly,
        };
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let outcome = client.post(&url).json(&payload).send().await;
            match outcome.map(|r| r.status()) {
                Ok(status) if status.is_success() => break,
                Ok(status) => tracing::warn!(%status, attempt, "webhook refused an alert"),
                Err(error) => tracing::warn!(%error, attempt, "webhook unreachable"),
            }
            if attempt == ATTEMPTS {
                tracing::error!(
                    id = anomaly.id,
                    "alert not delivered after {ATTEMPTS} attempts"
                );
            } else {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}
