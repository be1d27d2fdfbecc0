//! The consumer group: instances with one `KAFKA_GROUP_ID` split the topic's partitions through
//! Kafka's group protocol (cooperative-sticky where the broker and every member support it),
//! and each writes the rows of the partitions it is assigned to the one table.
//!
//! A partition assigned here resumes at the offset the table's txn action records for it, read
//! from the table's latest version while the assignment waits. A revoked partition's rows not
//! yet committed are dropped and left to its new owner: every commit first reads, from the
//! latest version, how far each of its partitions has landed and writes only what lies past
//! that, and Delta refuses a commit whose partitions another writer moved since that read. So a
//! row is written by its old owner or its new one, never both.

use crate::pipeline::lake;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use url::Url;

/// How long an assignment waits for the table to say where its partitions resume before
/// ingest gives up (and the process exits for a fresh start).
const RESUME_POINT_ATTEMPTS: u32 = 6;

/// Which partitions this instance writes, each under the epoch it was assigned in: rows read
/// under an earlier assignment of the same partition are stale once it was revoked, even if
/// it came back.
#[derive(Debug)]
pub struct Ownership {
    owned: Mutex<Owned>,
    /// The partitions owned, once the group has assigned any (or none) for the first time.
    changed: watch::Sender<Option<BTreeSet<i32>>>,
}

#[derive(Debug, Default)]
struct Owned {
    epochs: HashMap<i32, u64>,
    /// Where each owned partition was assigned to resume, when the table knew.
    starts: HashMap<i32, i64>,
    next_epoch: u64,
}

/// One owned partition: the assignment it is owned under and the offset it resumed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// Rows read under another epoch are not this instance's to write.
    pub epoch: u64,
    /// The offset the table said it resumes at; none when it resumed at the log's start.
    pub start: Option<i64>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            owned: Mutex::default(),
            changed: watch::channel(None).0,
        }
    }
}

impl Ownership {
    /// The epoch `partition` is owned under, if this instance writes it.
    pub fn epoch(&self, partition: i32) -> Option<u64> {
        self.lock().epochs.get(&partition).copied()
    }

    /// How `partition` is owned, if this instance writes it.
    pub fn assignment(&self, partition: i32) -> Option<Assignment> {
        let owned = self.lock();
        Some(Assignment {
            epoch: *owned.epochs.get(&partition)?,
            start: owned.starts.get(&partition).copied(),
        })
    }

    /// Each partition this instance writes, with the epoch it is owned under.
    pub fn epochs(&self) -> HashMap<i32, u64> {
        self.lock().epochs.clone()
    }

    /// Follows the partitions owned: `None` until the group's first assignment.
    pub fn watch(&self) -> watch::Receiver<Option<BTreeSet<i32>>> {
        self.changed.subscribe()
    }

    /// Takes `partitions` on, under a new epoch.
    pub fn assign(&self, partitions: &[i32]) {
        self.assign_at(partitions, &HashMap::new());
    }

    /// Takes `partitions` on, under a new epoch, each resuming at `resume_at` where given.
    pub fn assign_at(&self, partitions: &[i32], resume_at: &HashMap<i32, i64>) {
        let mut owned = self.lock();
        owned.next_epoch += 1;
        let epoch = owned.next_epoch;
        for &partition in partitions {
            owned.epochs.insert(partition, epoch);
            match resume_at.get(&partition) {
                Some(&start) => owned.starts.insert(partition, start),
                None => owned.starts.remove(&partition),
            };
        }
        self.publish(&owned);
    }

    /// Gives `partitions` up.
    pub fn revoke(&self, partitions: &[i32]) {
        let mut owned = self.lock();
        for partition in partitions {
            owned.epochs.remove(partition);
        }
        self.publish(&owned);
    }

    fn publish(&self, owned: &Owned) {
        self.changed
            .send_replace(Some(owned.epochs.keys().copied().collect()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Owned> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librdkafka's rebalance callback: sets each assigned partition's starting offset from the
/// table before consuming it, and records what this instance owns.
pub struct Rebalancer {
    topic: String,
    group: String,
    table: Url,
    ownership: std::sync::Arc<Ownership>,
    runtime: tokio::runtime::Handle,
    /// Set when an assignment could not learn where to resume: ingest stops with this reason.
    failed: watch::Sender<Option<String>>,
}

impl Rebalancer {
    /// Must be created on the (multi-threaded) runtime whose ingest task polls the consumer:
    /// the callback runs there and waits on the table read.
    pub fn new(
        topic: &str,
        group: &str,
        table: Url,
        ownership: std::sync::Arc<Ownership>,
        failed: watch::Sender<Option<String>>,
    ) -> Self {
        Rebalancer {
            topic: topic.to_owned(),
            group: group.to_owned(),
            table,
            ownership,
            runtime: tokio::runtime::Handle::current(),
            failed,
        }
    }

    /// Reads where `partitions` resume from the table's latest version, retrying a store that
    /// does not answer for a while.
    fn resume_points(&self, partitions: &[i32]) -> Result<HashMap<i32, i64>, lake::LakeError> {
        let mut attempt = 0;
        loop {
            let read = lake::resume_points(&self.table, &self.group, &self.topic, partitions);
            let read = tokio::task::block_in_place(|| self.runtime.block_on(read));
            match read {
                Ok(points) => return Ok(points),
                Err(error) if attempt + 1 < RESUME_POINT_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "could not read where the assigned partitions resume; trying again");
                    std::thread::sleep(Duration::from_secs(1 << attempt.min(4)));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        assignment: &mut TopicPartitionList,
        partitions: &[i32],
    ) -> KafkaResult<()> {
        let resume_at = match self.resume_points(partitions) {
            Ok(points) => points,
            Err(error) => {
                tracing::error!(%error, ?partitions, "could not learn where the assigned partitions resume");
                self.failed.send_replace(Some(format!(
                    "could not read where partitions {partitions:?} resume from the table: {error}"
                )));
                return Ok(());
            }
        };
        for &partition in partitions {
            let offset = resume_at
                .get(&partition)
                .map_or(Offset::Beginning, |&next| Offset::Offset(next));
            assignment.set_partition_offset(&self.topic, partition, offset)?;
        }
        // Owned before the first message can arrive, so none is taken for another's.
        self.ownership.assign_at(partitions, &resume_at);
        tracing::info!(?resume_at, ?partitions, "partitions assigned");
        match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(assignment),
            _ => consumer.assign(assignment),
        }
    }

    fn revoke(
        &self,
        consumer: &BaseConsumer<Self>,
        revoked: &TopicPartitionList,
        partitions: &[i32],
    ) -> KafkaResult<()> {
        // Disowned first: rows of these partitions still on their way are dropped, not written.
        self.ownership.revoke(partitions);
        tracing::info!(
            ?partitions,
            "partitions revoked; their rows not yet committed are left to their next owner"
        );
        match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(revoked),
            _ => consumer.unassign(),
        }
    }
}

impl ClientContext for Rebalancer {}

impl ConsumerContext for Rebalancer {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let ids: Vec<i32> = partitions
            .elements_for_topic(&self.topic)
            .iter()
            .map(|p| p.partition())
            .collect();
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, partitions, &ids)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, partitions, &ids)
            }
            other => {
                tracing::error!(?other, "rebalance failed; giving up every partition");
                let owned: Vec<i32> = self.ownership.lock().epochs.keys().copied().collect();
                self.ownership.revoke(&owned);
                consumer.unassign()
            }
        };
        if let Err(error) = outcome {
            tracing::error!(%error, ?ids, "could not apply the group's assignment");
        }
    }
}
