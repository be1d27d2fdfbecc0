//! Publishing to Kafka with back-pressure and delivery accounting, shared by `gen`, `replay`
//! and `tail`.

use anyhow::Context;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

/// How long `connect` waits for the broker's first answer.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    in_flight: FuturesUnordered<DeliveryFuture>,
    sent: u64,
    failed: u64,
}

impl Publisher {
    /// A producer for `topic`, connected: events stamped from now on are not held up by the
    /// client's start (about a second for the first batch, measured at 1 000 ev/s).
    pub async fn connect(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let publisher = Publisher::new(bootstrap, topic)?;
        let client = publisher.producer.clone();
        let topic_name = publisher.topic.clone();
        let connected = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(&topic_name), CONNECT_TIMEOUT)
                .map(|_| ())
        })
        .await?;
        if let Err(error) = connected {
            // The broker may come up later: librdkafka keeps the events and retries.
            tracing::warn!(%error, "the broker did not answer yet; producing anyway");
        }
        Ok(publisher)
    }

    fn new(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            // A batch whose answer timed out on a loaded broker is sent again; without the
            // producer id and sequence numbers the broker would keep both copies.
            .set("enable.idempotence", "true")
            .create()
            .context("creating the Kafka producer")?;
        Ok(Publisher {
            producer,
            topic: topic.to_owned(),
            in_flight: FuturesUnordered::new(),
            sent: 0,
            failed: 0,
        })
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Enqueues one message; while librdkafka's queue is full, waits for deliveries instead.
    pub async fn send(&mut self, key: Option<&[u8]>, payload: &[u8]) -> anyhow::Result<()> {
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(payload);
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    self.sent += 1;
                    while let Some(Some(delivery)) = self.in_flight.next().now_or_never() {
                        self.count(delivery);
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    match self.in_flight.next().await {
                        Some(delivery) => self.count(delivery),
                        None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => return Err(error).context("producing a message"),
            }
        }
    }

    fn count(&mut self, delivery: <DeliveryFuture as std::future::Future>::Output) {
        self.failed += u64::from(!matches!(delivery, Ok(Ok(_))));
    }

    /// Waits until every message sent so far is delivered; fails if any was not.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(delivery) = self.in_flight.next().await {
            self.count(delivery);
        }
        if self.failed > 0 {
            anyhow::bail!(
                "{} of {} messages were not delivered",
                self.failed,
                self.sent
            );
        }
        Ok(())
    }

    /// Waits for every delivery; fails if any message was not delivered.
    pub async fn finish(mut self) -> anyhow::Result<u64> {
        self.flush().await?;
        Ok(self.sent)
    }
}
