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

/// Chat webhooks (Slack, Mattermost) read `<...>` as links and mentions: a producer's path
/// must not become one.
fn escape_for_chat(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
        escape_for_chat(&anomaly.scope),
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
    // A webhook that redirects is not followed: the alert goes where it was configured to.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
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
                // The URL is a secret (Slack's carries its token): never in the logs.
                Err(error) => {
                    let error = error.without_url();
                    tracing::warn!(%error, attempt, "webhook unreachable")
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AnomalyKind, Severity};

    #[test]
    fn a_producers_path_reaches_chat_as_text_not_as_a_link_or_mention() {
        let anomaly = Anomaly {
            id: 1,
            kind: AnomalyKind::ErrorRate,
            scope: "endpoint:/<!channel>&<https://evil.example|click>".to_owned(),
            severity: Severity::Critical,
            value: 50.0,
            peak: 50.0,
            baseline: 1.0,
            started: chrono::Utc::now(),
            ended: None,
        };
        let text = headline(&anomaly);
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.contains("&lt;!channel&gt;&amp;&lt;https://evil.example|click&gt;"),
            "{text}"
        );
    }
}
