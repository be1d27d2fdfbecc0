//! Ingest: the Kafka consumer. Every message is decoded once and handed to the live view and
//! to the lake; what does not decode is counted, logged once per message and handed to the
//! lake as dead letters, which it delivers before the message's offset moves on.

use crate::model::{PartitionProgress, StageState};
use crate::pipeline::dead_letter::{DeadLetter, UNPROCESSABLE};
use crate::pipeline::decode::{decode_message, within_clock};
use crate::pipeline::fault;
use crate::pipeline::lake::Consumed;
use crate::pipeline::live::Live;
use crate::pipeline::task::panic_message;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} has no partitions")]
    NoPartitions(String),
    #[error("metadata lookup did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub fn consumer(bootstrap: &str, group_id: &str) -> Result<Arc<StreamConsumer>, IngestError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        // Offsets live in the Delta table; Kafka's copy is only written after a lake commit.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A live view waits on this: a broker that answers a fetch only when its wait runs
        // out would hold each event up to librdkafka's default of 500 ms.
        .set("fetch.wait.max.ms", "100")
        // Once its queue is full, librdkafka stops fetching for this long (1 s by default):
        // ingest, a little slower than the fetches, then ran dry about once per 140 000
        // events and waited 0.4 s each time.
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    Ok(Arc::new(consumer))
}

/// Partition ids of `topic`, from the broker's metadata.
pub async fn partitions(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
) -> Result<Vec<i32>, IngestError> {
    let client = consumer.clone();
    let name = topic.to_owned();
    let ids = tokio::task::spawn_blocking(move || {
        client
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .map(|m| {
                m.topics()
                    .iter()
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect::<Vec<_>>()
            })
    })
    .await??;
    if ids.is_empty() {
        return Err(IngestError::NoPartitions(topic.to_owned()));
    }
    Ok(ids)
}

/// Reads every partition of `topic`, from the lake's offsets where it has them.
pub fn assign(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: &[i32],
    resume_at: &HashMap<i32, i64>,
) -> Result<(), IngestError> {
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let offset = resume_at
            .get(&partition)
            .map_or(Offset::Beginning, |&next| Offset::Offset(next));
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    consumer.assign(&assignment)?;
    tracing::info!(topic, ?resume_at, "consuming");
    Ok(())
}

/// Mirrors offsets the lake has made durable into Kafka, so Kafka tools see the group's progress.
pub fn commit_offsets(consumer: &StreamConsumer, topic: &str, next_offsets: &BTreeMap<i32, i64>) {
    let mut offsets = TopicPartitionList::new();
    for (&partition, &next) in next_offsets {
        if let Err(error) = offsets.add_partition_offset(topic, partition, Offset::Offset(next)) {
            tracing::warn!(%error, partition, "bad offset");
        }
    }
    if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
        tracing::warn!(%error, "could not commit offsets to Kafka (the lake has them)");
    }
}

/// How long consuming must have failed, with nothing read in between, before the status says
/// so: a broker that answers metadata but fails every fetch (a damaged store, a codec it cannot
/// serve) would otherwise look connected while nothing arrives.
const FAILING_FOR: Duration = Duration::from_secs(10);
/// librdkafka retries with a backoff of up to 10 s; an error older than this ended the streak.
const STILL_FAILING_WITHIN: Duration = Duration::from_secs(15);

/// Consume errors since the last message read: when the streak began, the latest and when.
#[derive(Default)]
pub struct ConsumeFailures(Mutex<Option<(Instant, Instant, String)>>);

impl ConsumeFailures {
    fn failed(&self, error: &KafkaError) {
        let mut streak = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // An old error followed by quiet (an idle topic) ended its streak; this one starts anew.
        let began = streak
            .as_ref()
            .filter(|(_, latest, _)| latest.elapsed() <= STILL_FAILING_WITHIN)
            .map_or(now, |(began, _, _)| *began);
        *streak = Some((began, now, error.to_string()));
    }

    fn read_one(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How long consuming has been failing and the latest error, if it still is and for long
    /// enough to say so.
    fn ongoing(&self) -> Option<(Duration, String)> {
        let streak = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (began, latest, error) = streak.as_ref()?;
        let failing_for = began.elapsed();
        (failing_for >= FAILING_FOR && latest.elapsed() <= STILL_FAILING_WITHIN)
            .then(|| (failing_for, error.clone()))
    }
}

/// Why ingest stopped reading.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestStop {
    /// The lake no longer takes events.
    #[error("ingest stopped: the lake stopped taking events")]
    LakeStopped,
    /// librdkafka ended the message stream.
    #[error("ingest stopped: the Kafka message stream ended")]
    StreamEnded,
    /// Ingest panicked.
    #[error("ingest stopped: it panicked: {0}")]
    Panicked(String),
}

/// Reads messages until the stream or the lake ends, and says which did.
pub async fn run(
    consumer: Arc<StreamConsumer>,
    live: Arc<Live>,
    lake: mpsc::Sender<Consumed>,
    failures: Arc<ConsumeFailures>,
) -> IngestStop {
    // One stream for the whole run: `recv` would set one up and tear it down per message.
    let mut messages = consumer.stream();
    while let Some(received) = messages.next().await {
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "Kafka consume error");
                failures.failed(&error);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        failures.read_one();
        let (partition, offset) = (message.partition(), message.offset());
        let value = message.payload().unwrap_or_default();
        live.record_bytes(value.len());
        let produced_at = message
            .timestamp()
            .to_millis()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let arrival = produced_at.unwrap_or_else(Utc::now);
        // A message lakepulse itself fails on is set aside like a malformed one: read again
        // at every restart, it would stop ingest for good.
        let now = Utc::now();
        let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut events = Vec::new();
            let mut failures = Vec::new();
            for item in decode_message(value, arrival) {
                match item.decoded.and_then(|event| within_clock(event, now)) {
                    Ok(event) => events.push(event),
                    Err(error) => failures.push((item.raw, error)),
                }
            }
            for event in &events {
                fault::panic_if_marked("ingest", event);
                live.record(event.clone());
            }
            for (_, error) in &failures {
                live.record_malformed(error.reason());
            }
            if let [(_, first), ..] = failures.as_slice() {
                tracing::warn!(partition, offset, reason = first.reason(), error = %first, items = failures.len(), "malformed message set aside");
            }
            let letters = DeadLetter::for_message(value, &failures, partition, offset);
            (events, letters)
        }));
        let (events, letters) = decoded.unwrap_or_else(|panic| {
            let failure = panic_message(panic);
            tracing::error!(partition, offset, %failure, "lakepulse failed on a message; set aside");
            live.record_malformed(UNPROCESSABLE);
            let letter = DeadLetter::unprocessable(value, &failure, partition, offset);
            (Vec::new(), vec![letter])
        });
        let consumed = Consumed {
            partition,
            offset,
            events,
            letters,
            produced_at,
        };
        if lake.send(consumed).await.is_err() {
            return IngestStop::LakeStopped;
        }
    }
    IngestStop::StreamEnded
}

/// What ingest last learned of its link to Kafka; the health view is built from this.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaLink {
    /// Up, partly up, or down, and why.
    pub state: LinkState,
    /// Where ingest stands in each partition, as of the last probe.
    pub partitions: Vec<PartitionProgress>,
    /// Set once ingest has stopped: whatever the broker says, nothing is read any more.
    pub stopped: Option<IngestStop>,
}

impl KafkaLink {
    /// Just assigned `partitions` partitions, not probed yet.
    pub fn assigned(partitions: usize) -> Self {
        KafkaLink {
            state: LinkState::Connected { partitions },
            partitions: Vec::new(),
            stopped: None,
        }
    }

    /// The traffic light and its reason: a stopped ingest outranks what the broker says.
    pub fn status(&self) -> (StageState, String) {
        match &self.stopped {
            Some(stop) => (StageState::Down, stop.to_string()),
            None => (self.state.stage_state(), self.state.to_string()),
        }
    }

    /// Sum of the partitions' lag, where known.
    pub fn lag(&self) -> Option<i64> {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// The state of the link to Kafka, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    /// Every partition of the topic has a leader.
    Connected {
        /// Partitions of the topic.
        partitions: usize,
    },
    /// Some partitions have no leader: their events wait.
    Leaderless {
        /// Partitions without a leader.
        leaderless: usize,
        /// Partitions of the topic.
        partitions: usize,
    },
    /// The broker did not answer the probe.
    Unreachable {
        /// What the probe got.
        error: String,
    },
    /// Metadata answers, but every fetch has failed for a while: nothing arrives.
    FetchFailing {
        /// How long nothing has been read.
        for_secs: u64,
        /// The latest fetch error.
        error: String,
    },
}

impl LinkState {
    /// The traffic light for this state.
    pub fn stage_state(&self) -> StageState {
        match self {
            LinkState::Connected { .. } => StageState::Connected,
            LinkState::Leaderless { .. } => StageState::Partial,
            LinkState::Unreachable { .. } | LinkState::FetchFailing { .. } => StageState::Down,
        }
    }
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkState::Connected { partitions } => write!(f, "{partitions} partitions"),
            LinkState::Leaderless {
                leaderless,
                partitions,
            } => write!(f, "{leaderless} of {partitions} partitions have no leader"),
            LinkState::Unreachable { error } => write!(f, "{error}"),
            LinkState::FetchFailing { for_secs, error } => {
                write!(
                    f,
                    "nothing read for {for_secs} s, every fetch failing: {error}"
                )
            }
        }
    }
}

/// Asks the broker, every few seconds, for the topic's partitions (with their leaders) and
/// their high watermarks, and compares them with where ingest stands; a broker that answers
/// this while every fetch fails is reported down all the same.
pub async fn watch_connection(
    consumer: Arc<StreamConsumer>,
    topic: String,
    link: Arc<RwLock<KafkaLink>>,
    failures: Arc<ConsumeFailures>,
) {
    loop {
        let client = consumer.clone();
        let name = topic.clone();
        let probe = tokio::task::spawn_blocking(move || progress(&client, &name)).await;
        {
            let mut link = link.write().unwrap_or_else(|e| e.into_inner());
            match probe {
                Ok(Ok(partitions)) => {
                    let leaderless = partitions.iter().filter(|p| !p.available).count();
                    link.state = match leaderless {
                        0 => LinkState::Connected {
                            partitions: partitions.len(),
                        },
                        leaderless => LinkState::Leaderless {
                            leaderless,
                            partitions: partitions.len(),
                        },
                    };
                    link.partitions = partitions;
                }
                Ok(Err(error)) => {
                    link.state = LinkState::Unreachable {
                        error: error.to_string(),
                    }
                }
                Err(error) => {
                    link.state = LinkState::Unreachable {
                        error: error.to_string(),
                    }
                }
            }
            // Whatever metadata says, nothing arriving is what a user needs to know.
            if let Some((failing_for, error)) = failures.ongoing() {
                link.state = LinkState::FetchFailing {
                    for_secs: failing_for.as_secs(),
                    error,
                };
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

fn progress(consumer: &StreamConsumer, topic: &str) -> Result<Vec<PartitionProgress>, IngestError> {
    let timeout = Duration::from_secs(3);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let positions = consumer.position()?;
    let mut progress = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let id = partition.id();
        let position = positions
            .find_partition(topic, id)
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0);
        let high_watermark = consumer
            .fetch_watermarks(topic, id, timeout)
            .ok()
            .map(|(_, high)| high);
        progress.push(PartitionProgress {
            partition: id,
            available: partition.leader() >= 0,
            position,
            high_watermark,
            lag: high_watermark
                .zip(position)
                .map(|(high, at)| (high - at).max(0)),
        });
    }
    if progress.is_empty() {
        return Err(IngestError::NoPartitions(topic.to_owned()));
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_ingest_is_down_whatever_the_broker_says() {
        let mut link = KafkaLink::assigned(3);
        assert_eq!(
            link.status(),
            (StageState::Connected, "3 partitions".into())
        );
        link.stopped = Some(IngestStop::Panicked("poison".into()));
        let (state, detail) = link.status();
        assert_eq!(state, StageState::Down);
        assert_eq!(detail, "ingest stopped: it panicked: poison");
    }
}
