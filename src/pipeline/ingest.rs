//! Ingest: the Kafka consumers. The writer, a member of the consumer group, reads the
//! partitions this instance writes; the follower, outside the group, reads every other one, so
//! each instance's live view shows the whole stream. Every message is decoded once and handed
//! to the live view (the first time this instance reads its offset) and, for the writer, to the
//! lake; what does not decode is counted, logged once per message and handed to the lake as
//! dead letters, which it delivers before the message's offset moves on.

use crate::model::{PartitionProgress, StageState};
use crate::pipeline::consumer_group::{Assignment, Ownership, Rebalancer};
use crate::pipeline::dead_letter::{DeadLetter, UNPROCESSABLE};
use crate::pipeline::decode::{decode_message_as, within_clock, LogFormat};
use crate::pipeline::fault;
use crate::pipeline::lake::Consumed;
use crate::pipeline::live::Live;
use crate::pipeline::prometheus;
use crate::pipeline::task::panic_message;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The consumer that writes: a member of the consumer group.
pub type Writer = StreamConsumer<Rebalancer>;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} has no partitions")]
    NoPartitions(String),
    #[error("metadata lookup did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("could not read where the partitions resume from the table: {0}")]
    ResumePoints(String),
}

/// What both consumers share.
fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // Offsets live in the Delta table; Kafka's copy is only written after a lake commit.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A live view waits on this: a broker that answers a fetch only when its wait runs
        // out (tansu does) would hold each event up to librdkafka's default of 500 ms. A
        // broker that answers when data arrives is not asked more often.
        .set("fetch.wait.max.ms", "25")
        // Once its queue is full, librdkafka stops fetching for this long (1 s by default):
        // ingest, a little slower than the fetches, then ran dry about once per 140 000
        // events and waited 0.4 s each time.
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// The writer. Scaling out, it joins `group_id` and subscribes to `topic`, and `rebalancer`
/// sets where each partition the group assigns resumes; otherwise see [`read_every_partition`].
pub fn writer(
    bootstrap: &str,
    group_id: &str,
    topic: &str,
    rebalancer: Rebalancer,
    scale_out: bool,
) -> Result<Arc<Writer>, IngestError> {
    let consumer: Writer = consumer_config(bootstrap)
        .set("group.id", group_id)
        // Partitions move only as far as a new member needs, while the others keep flowing.
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A crashed instance's partitions move on after this long without its heartbeat.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        // Partitions added to the topic are assigned within this long.
        .set("topic.metadata.refresh.interval.ms", "10000")
        .create_with_context(rebalancer)?;
    if scale_out {
        consumer.subscribe(&[topic])?;
    }
    Ok(Arc::new(consumer))
}

/// Without scaling out: assigns the writer every partition of `topic`, each resuming where the
/// table at `table` says, as the one owner. A dead instance of a group holds its partitions
/// until the broker expires it, and tansu 0.6 does not hand them on to a restarted one, so a
/// single instance does not join the group at all.
pub async fn read_every_partition(
    writer: &Arc<Writer>,
    topic: &str,
    group_id: &str,
    table: &url::Url,
    ownership: &Ownership,
) -> Result<usize, IngestError> {
    let all = partitions(writer, topic).await?;
    let resume_at = crate::pipeline::lake::resume_points(table, group_id, topic, &all)
        .await
        .map_err(|error| IngestError::ResumePoints(error.to_string()))?;
    let mut assignment = TopicPartitionList::new();
    for &partition in &all {
        let offset = resume_at
            .get(&partition)
            .map_or(Offset::Beginning, |&next| Offset::Offset(next));
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    ownership.assign_at(&all, &resume_at);
    writer.assign(&assignment)?;
    tracing::info!(topic, ?resume_at, "consuming every partition");
    Ok(all.len())
}

/// The follower: outside the group, it reads the partitions other instances write, for the
/// live view alone.
pub fn follower(bootstrap: &str, group_id: &str) -> Result<Arc<StreamConsumer>, IngestError> {
    let consumer = consumer_config(bootstrap)
        // librdkafka assigns partitions only to a consumer with a group id. The follower never
        // joins this group nor commits to it: it assigns its partitions itself.
        .set("group.id", format!("{group_id}.follower"))
        .create()?;
    Ok(Arc::new(consumer))
}

/// Partition ids of `topic`, from the broker's metadata.
pub async fn partitions<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
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

/// Mirrors offsets the lake has made durable into Kafka, so Kafka tools see the group's progress.
pub fn commit_offsets(consumer: &Writer, topic: &str, next_offsets: &BTreeMap<i32, i64>) {
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

/// A probe that fails while messages arrived this recently is a slow answer from a busy
/// broker, not a lost one: the status keeps what it last knew.
const READ_RECENTLY: Duration = Duration::from_secs(10);
/// A broker is called unreachable once its probes have gone unanswered this long: one probe
/// that timed out while a loaded broker caught up (a 3 s metadata timeout on two busy cores)
/// is not an outage.
const UNANSWERED_FOR: Duration = Duration::from_secs(8);

/// Consume errors since the last message read, and when the last message was read.
#[derive(Default)]
pub struct ConsumeFailures(Mutex<(Option<Streak>, Option<Instant>)>);

/// When a streak of consume errors began, when the latest came, and what it said.
type Streak = (Instant, Instant, String);

impl ConsumeFailures {
    fn failed(&self, error: &KafkaError) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let streak = &mut guard.0;
        let now = Instant::now();
        // An old error followed by quiet (an idle topic) ended its streak; this one starts anew.
        let began = streak
            .as_ref()
            .filter(|(_, latest, _)| latest.elapsed() <= STILL_FAILING_WITHIN)
            .map_or(now, |(began, _, _)| *began);
        *streak = Some((began, now, error.to_string()));
    }

    fn read_one(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (None, Some(Instant::now()));
    }

    /// Whether a message was read within `within`.
    fn read_within(&self, within: Duration) -> bool {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.is_some_and(|at| at.elapsed() <= within)
    }

    /// How long consuming has been failing and the latest error, if it still is and for long
    /// enough to say so.
    fn ongoing(&self) -> Option<(Duration, String)> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (began, latest, error) = guard.0.as_ref()?;
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
    /// Partitions were assigned whose resume points the table would not give.
    #[error("ingest stopped: {0}")]
    Unassignable(String),
}

/// The writer's way to the lake.
pub struct ToLake {
    /// Consumed messages of the partitions this instance writes.
    pub sender: mpsc::Sender<Consumed>,
    /// Which partitions those are, and under which assignment.
    pub ownership: Arc<Ownership>,
    /// Set when an assignment could not learn where to resume.
    pub unassignable: watch::Receiver<Option<String>>,
}

/// Resolves with the reason once an assignment could not learn where to resume.
async fn unassignable(lake: Option<&ToLake>) -> String {
    if let Some(lake) = lake {
        let mut reason = lake.unassignable.clone();
        let waited = reason.wait_for(Option::is_some).await;
        if let Ok(reason) = waited.map(|reason| reason.clone().unwrap_or_default()) {
            return reason;
        }
    }
    std::future::pending().await
}

/// Reads messages until the stream or the lake ends, and says which did. The follower has no
/// lake.
pub async fn run<C: ConsumerContext + 'static>(
    consumer: Arc<StreamConsumer<C>>,
    live: Arc<Live>,
    lake: Option<ToLake>,
    failures: Arc<ConsumeFailures>,
    access_log_format: Option<LogFormat>,
) -> IngestStop {
    // One stream for the whole run: `recv` would set one up and tear it down per message.
    let mut messages = consumer.stream();
    let unassignable = unassignable(lake.as_ref());
    tokio::pin!(unassignable);
    let mut sequences = Sequences::default();
    let consumed_messages = ::metrics::counter!(prometheus::MESSAGES_CONSUMED);
    loop {
        let received = tokio::select! {
            received = messages.next() => received,
            reason = &mut unassignable => return IngestStop::Unassignable(reason),
        };
        let Some(received) = received else { break };
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
        let owned = lake
            .as_ref()
            .and_then(|lake| Some((&lake.sender, lake.ownership.assignment(partition)?)));
        let writing = match owned {
            Some((sender, assignment)) => match sequences.check(partition, offset, assignment) {
                InSequence::Next => Some((sender, assignment.epoch)),
                InSequence::Again => None,
                InSequence::AfterGap(from) => {
                    tracing::debug!(
                        partition,
                        reread_from = from,
                        offset,
                        "the broker skipped offsets; reading the partition again from before them"
                    );
                    if let Err(error) = consumer.seek(
                        message.topic(),
                        partition,
                        Offset::Offset(from),
                        Duration::from_secs(5),
                    ) {
                        tracing::warn!(%error, partition, "could not read the skipped offsets again");
                    }
                    continue;
                }
            },
            None => None,
        };
        let for_live = live.first_sight(partition, offset);
        if !for_live && writing.is_none() {
            continue;
        }
        let value = message.payload().unwrap_or_default();
        if for_live {
            consumed_messages.increment(1);
            live.record_bytes(value.len());
        }
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
            for item in decode_message_as(value, arrival, access_log_format.as_ref()) {
                match item.decoded.and_then(|event| within_clock(event, now)) {
                    Ok(event) => events.push(Arc::new(event)),
                    Err(error) => failures.push((item.raw, error)),
                }
            }
            for event in &events {
                fault::panic_if_marked("ingest", event);
                if for_live {
                    live.record(Arc::clone(event));
                }
            }
            if for_live {
                for (_, error) in &failures {
                    live.record_malformed(error.reason());
                }
            }
            if writing.is_none() {
                return (events, Vec::new());
            }
            if let [(_, first), ..] = failures.as_slice() {
                tracing::warn!(partition, offset, reason = first.reason(), error = %first, items = failures.len(), "malformed message set aside");
            }
            let letters = DeadLetter::for_message(value, &failures, partition, offset);
            (events, letters)
        }));
        let (events, letters) = decoded.unwrap_or_else(|panic| {
            let failure = panic_message(panic);
            if for_live {
                live.record_malformed(UNPROCESSABLE);
            }
            if writing.is_none() {
                return (Vec::new(), Vec::new());
            }
            tracing::error!(partition, offset, %failure, "lakepulse failed on a message; set aside");
            let letter = DeadLetter::unprocessable(value, &failure, partition, offset);
            (Vec::new(), vec![letter])
        });
        let Some((sender, epoch)) = writing else {
            continue;
        };
        let consumed = Consumed {
            partition,
            epoch,
            offset,
            events,
            letters,
            produced_at,
        };
        if sender.send(consumed).await.is_err() {
            return IngestStop::LakeStopped;
        }
    }
    IngestStop::StreamEnded
}

/// Where the writer's reading of each partition stands in its current assignment. Rows must
/// reach the lake in offset order, once each; a broker may hand a consumer offsets it already
/// handed it, or skip some, and librdkafka passes that on. Tansu 0.6 on object storage (its
/// memory and S3 engines) serves a fetch only from the batches that start at or after the
/// offset asked: resumed inside a batch (after a crash between two commits), the rest of that
/// batch is skipped however often it is read again from there, so a gap is read again from
/// further and further back until the read reaches before it.
#[derive(Default)]
struct Sequences(HashMap<i32, Sequence>);

struct Sequence {
    epoch: u64,
    /// The offset expected next.
    next: Option<i64>,
    /// The gap before the latest offset handed, while it is being read again.
    gap: Option<Rereading>,
}

/// A gap being read again.
#[derive(Clone, Copy)]
struct Rereading {
    /// Where the latest read again started.
    from: i64,
    /// Whether that read handed an offset before the gap: it covered the gap's start, so what
    /// is still missing is not in the broker's log (compacted away, or transaction markers).
    reached_before: bool,
}

/// Where a message stands in its partition's sequence.
#[derive(Debug, PartialEq)]
enum InSequence {
    /// The offset expected (or the first of the assignment): take it.
    Next,
    /// An offset already taken: drop it.
    Again,
    /// Offsets before this one are missing: read again from the offset given.
    AfterGap(i64),
}

impl Sequences {
    fn check(&mut self, partition: i32, offset: i64, assignment: Assignment) -> InSequence {
        let sequence = self.0.entry(partition).or_insert(Sequence {
            epoch: assignment.epoch,
            next: assignment.start,
            gap: None,
        });
        if sequence.epoch != assignment.epoch {
            *sequence = Sequence {
                epoch: assignment.epoch,
                next: assignment.start,
                gap: None,
            };
        }
        match sequence.next {
            Some(next) if offset < next => {
                if let Some(gap) = sequence.gap.as_mut() {
                    gap.reached_before |= offset >= gap.from;
                }
                InSequence::Again
            }
            Some(next) if offset > next => {
                // Each read again starts twice as far back as the one before.
                let from = match sequence.gap {
                    None => next - 1,
                    Some(Rereading {
                        from,
                        reached_before: false,
                    }) if from > 0 => next - 2 * (next - from),
                    Some(_) => {
                        tracing::info!(partition, from = next, to = offset, "offsets missing from the broker (compacted, or transaction markers); going on past them");
                        return sequence.take(offset);
                    }
                }
                .max(0);
                sequence.gap = Some(Rereading {
                    from,
                    reached_before: false,
                });
                InSequence::AfterGap(from)
            }
            _ => sequence.take(offset),
        }
    }
}

impl Sequence {
    fn take(&mut self, offset: i64) -> InSequence {
        self.next = Some(offset + 1);
        self.gap = None;
        InSequence::Next
    }
}

/// How often the follower looks for partitions added to the topic.
const FOLLOWER_REFRESH: Duration = Duration::from_secs(10);

/// Keeps the follower on every partition of `topic` this instance does not write, each from
/// the first offset the live view has not seen (or the end, for one it never read), so the
/// live view shows every partition once, whoever writes it.
pub async fn follow_others(
    follower: Arc<StreamConsumer>,
    topic: String,
    ownership: Arc<Ownership>,
    live: Arc<Live>,
) {
    let mut owned = ownership.watch();
    // Until the group's first assignment any partition may turn out to be this instance's.
    if owned.wait_for(Option::is_some).await.is_err() {
        return;
    }
    let mut following = None;
    loop {
        let written_here = owned.borrow_and_update().clone().unwrap_or_default();
        match partitions(&follower, &topic).await {
            Ok(all) => {
                let others: BTreeSet<i32> = all
                    .into_iter()
                    .filter(|p| !written_here.contains(p))
                    .collect();
                if following.as_ref() != Some(&others) {
                    match follow(&follower, &topic, &others, &live) {
                        Ok(()) => following = Some(others),
                        Err(error) => {
                            tracing::warn!(%error, "could not follow the other partitions")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not list the topic's partitions"),
        }
        tokio::select! {
            changed = owned.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(FOLLOWER_REFRESH) => {}
        }
    }
}

fn follow(
    follower: &StreamConsumer,
    topic: &str,
    partitions: &BTreeSet<i32>,
    live: &Live,
) -> Result<(), KafkaError> {
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let offset = live
            .next_unseen(partition)
            .map_or(Offset::End, Offset::Offset);
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    tracing::info!(
        ?partitions,
        "following the partitions other instances write"
    );
    follower.assign(&assignment)
}

/// What ingest last learned of its link to Kafka; the health view is built from this.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaLink {
    /// Up, partly up, or down, and why.
    pub state: LinkState,
    /// Where ingest stands in each partition, as of the last probe.
    pub partitions: Vec<PartitionProgress>,
    /// When the last probe that `partitions` come from was answered.
    pub probed_at: Option<DateTime<Utc>>,
    /// Set once ingest has stopped: whatever the broker says, nothing is read any more.
    pub stopped: Option<IngestStop>,
}

impl KafkaLink {
    /// Joining the consumer group, not probed yet.
    pub fn joining() -> Self {
        KafkaLink {
            state: LinkState::Joining,
            partitions: Vec::new(),
            probed_at: None,
            stopped: None,
        }
    }

    /// Reading all `partitions` partitions here, not probed yet.
    pub fn reading_all(partitions: usize) -> Self {
        KafkaLink {
            state: LinkState::Connected {
                partitions,
                written_here: partitions,
            },
            ..KafkaLink::joining()
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
    /// Waiting for the consumer group's first assignment.
    Joining,
    /// Every partition of the topic has a leader.
    Connected {
        /// Partitions of the topic.
        partitions: usize,
        /// Those this instance writes; other instances of the group write the rest.
        written_here: usize,
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
            LinkState::Leaderless { .. } | LinkState::Joining => StageState::Partial,
            LinkState::Unreachable { .. } | LinkState::FetchFailing { .. } => StageState::Down,
        }
    }
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkState::Joining => write!(f, "joining the consumer group"),
            LinkState::Connected {
                partitions,
                written_here,
            } if written_here == partitions => write!(f, "{partitions} partitions"),
            LinkState::Connected {
                partitions,
                written_here,
            } => write!(
                f,
                "{partitions} partitions, {written_here} written here (the group writes the rest)"
            ),
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
    writer: Arc<Writer>,
    follower: Arc<StreamConsumer>,
    topic: String,
    link: Arc<RwLock<KafkaLink>>,
    failures: Arc<ConsumeFailures>,
    ownership: Arc<Ownership>,
) {
    let owned = ownership.watch();
    // When the broker last answered a probe (or the watch began).
    let mut unanswered_since = Instant::now();
    loop {
        let (writer, follower) = (writer.clone(), follower.clone());
        let name = topic.clone();
        let written_here = owned.borrow().clone();
        let joined = written_here.is_some();
        let written_here = written_here.unwrap_or_default();
        let probe =
            tokio::task::spawn_blocking(move || progress(&writer, &follower, &name, &written_here))
                .await;
        if matches!(probe, Ok(Ok(_))) {
            unanswered_since = Instant::now();
        }
        {
            let mut link = link.write().unwrap_or_else(|e| e.into_inner());
            match probe {
                Ok(Ok(_)) if !joined => link.state = LinkState::Joining,
                Ok(Ok(partitions)) => {
                    let leaderless = partitions.iter().filter(|p| !p.available).count();
                    link.state = match leaderless {
                        0 => LinkState::Connected {
                            partitions: partitions.len(),
                            written_here: partitions.iter().filter(|p| p.written_here).count(),
                        },
                        leaderless => LinkState::Leaderless {
                            leaderless,
                            partitions: partitions.len(),
                        },
                    };
                    link.partitions = partitions;
                    link.probed_at = Some(Utc::now());
                }
                Ok(Err(error)) if failures.read_within(READ_RECENTLY) => {
                    tracing::debug!(%error, "the broker answered the probe late while messages flow");
                }
                Ok(Err(error)) if unanswered_since.elapsed() < UNANSWERED_FOR => {
                    tracing::debug!(%error, "the broker did not answer the probe; asking again before calling it down");
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

/// Where this instance stands in each partition: the writer's position in those it writes,
/// the follower's in the others.
fn progress(
    writer: &Writer,
    follower: &StreamConsumer,
    topic: &str,
    written_here: &BTreeSet<i32>,
) -> Result<Vec<PartitionProgress>, IngestError> {
    let timeout = Duration::from_secs(3);
    let metadata = writer.fetch_metadata(Some(topic), timeout)?;
    let (written, followed) = (writer.position()?, follower.position()?);
    let mut progress = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let id = partition.id();
        let here = written_here.contains(&id);
        let position = if here { &written } else { &followed }
            .find_partition(topic, id)
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0);
        let high_watermark = writer
            .fetch_watermarks(topic, id, timeout)
            .ok()
            .map(|(_, high)| high);
        progress.push(PartitionProgress {
            partition: id,
            available: partition.leader() >= 0,
            written_here: here,
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
    fn offsets_handed_again_are_dropped_and_a_gap_is_read_again_until_the_read_reaches_before_it() {
        let mut sequences = Sequences::default();
        let first = Assignment {
            epoch: 1,
            start: Some(10),
        };
        let check =
            |sequences: &mut Sequences, offset, assignment| sequences.check(0, offset, assignment);
        assert_eq!(check(&mut sequences, 10, first), InSequence::Next);
        assert_eq!(check(&mut sequences, 11, first), InSequence::Next);
        assert_eq!(check(&mut sequences, 10, first), InSequence::Again);
        // 12 and 13 skipped: read again from just before them. The read hands 11 and then 14
        // again: it reached before the gap, so the gap is the broker's log.
        assert_eq!(check(&mut sequences, 14, first), InSequence::AfterGap(11));
        assert_eq!(check(&mut sequences, 11, first), InSequence::Again);
        assert_eq!(check(&mut sequences, 14, first), InSequence::Next);
        assert_eq!(check(&mut sequences, 15, first), InSequence::Next);
        // A gap the read again fills.
        assert_eq!(check(&mut sequences, 17, first), InSequence::AfterGap(15));
        assert_eq!(check(&mut sequences, 16, first), InSequence::Next);

        // Resumed at 31 inside a batch of 28..=33 on a broker that serves a fetch only from
        // the batches starting at or after the offset asked: each read again hands 34 first,
        // until one starts at or before 28.
        let resumed = Assignment {
            epoch: 2,
            start: Some(31),
        };
        assert_eq!(check(&mut sequences, 34, resumed), InSequence::AfterGap(30));
        assert_eq!(check(&mut sequences, 34, resumed), InSequence::AfterGap(29));
        assert_eq!(check(&mut sequences, 34, resumed), InSequence::AfterGap(27));
        for again in 28..31 {
            assert_eq!(check(&mut sequences, again, resumed), InSequence::Again);
        }
        for next in 31..=34 {
            assert_eq!(check(&mut sequences, next, resumed), InSequence::Next);
        }

        // A gap at the log's start is read again once from there.
        let at_start = Assignment {
            epoch: 3,
            start: Some(0),
        };
        assert_eq!(check(&mut sequences, 2, at_start), InSequence::AfterGap(0));
        assert_eq!(check(&mut sequences, 2, at_start), InSequence::Next);
        // Resumed at the log's start: the first offset read is taken.
        let from_start = Assignment {
            epoch: 4,
            start: None,
        };
        assert_eq!(check(&mut sequences, 40, from_start), InSequence::Next);
        assert_eq!(check(&mut sequences, 39, from_start), InSequence::Again);
    }

    #[test]
    fn a_stopped_ingest_is_down_whatever_the_broker_says() {
        let mut link = KafkaLink::joining();
        assert_eq!(
            link.status(),
            (StageState::Partial, "joining the consumer group".into())
        );
        link.stopped = Some(IngestStop::Panicked("poison".into()));
        let (state, detail) = link.status();
        assert_eq!(state, StageState::Down);
        assert_eq!(detail, "ingest stopped: it panicked: poison");
    }
}
