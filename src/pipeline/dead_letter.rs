//! Dead letters: what a producer sent that is not an event goes to `<topic>.dlq`, the original
//! bytes with the reason in headers, so it can be inspected or replayed. The lake moves a
//! message's offset only once the broker has acknowledged its letters; until then they wait
//! with the rows (a crash before that reads the message again, so a letter may come twice but
//! is never lost).

use crate::pipeline::decode::DecodeError;
use crate::pipeline::prometheus;
use ::metrics::counter;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The reason a message lakepulse failed on is counted and dead-lettered under.
pub const UNPROCESSABLE: &str = "unprocessable";
/// One message yields at most this many letters. A message with more malformed items (a
/// batch of a million numbers, say) becomes one letter holding the whole message.
pub const MAX_LETTERS_PER_MESSAGE: usize = 16;
/// What is kept of a letter the broker refuses as too large: enough to see what it was; the
/// whole message stays in the source topic, at the partition and offset the headers name.
const TRUNCATED_PAYLOAD: usize = 64 * 1024;
/// How long the broker may take to acknowledge a letter before the lake tries again later.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A message, or one item of it, that did not decode, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    payload: Vec<u8>,
    reason: &'static str,
    error: String,
    partition: i32,
    offset: i64,
    truncated_from: Option<usize>,
}

impl DeadLetter {
    /// A letter for `raw`, the part of the message at `partition`/`offset` that failed so.
    pub fn new(raw: &[u8], error: &DecodeError, partition: i32, offset: i64) -> Self {
        DeadLetter {
            payload: raw.to_vec(),
            reason: error.reason(),
            error: error.to_string(),
            partition,
            offset,
            truncated_from: None,
        }
    }

    /// A letter for a message lakepulse itself failed on (it panicked): set aside once, so it
    /// cannot stop the pipeline again at every restart.
    pub fn unprocessable(raw: &[u8], failure: &str, partition: i32, offset: i64) -> Self {
        DeadLetter {
            payload: raw.to_vec(),
            reason: UNPROCESSABLE,
            error: format!("lakepulse failed on this message: {failure}"),
            partition,
            offset,
            truncated_from: None,
        }
    }

    /// The letters for a message whose items failed as `failures` says: one per failed item,
    /// or one for the whole message when there are more than [`MAX_LETTERS_PER_MESSAGE`].
    pub fn for_message(
        message: &[u8],
        failures: &[(&[u8], DecodeError)],
        partition: i32,
        offset: i64,
    ) -> Vec<DeadLetter> {
        match failures {
            [] => Vec::new(),
            [(_, first), ..] if failures.len() > MAX_LETTERS_PER_MESSAGE => {
                let mut letter = DeadLetter::new(message, first, partition, offset);
                letter.error = format!("{} items malformed; the first: {first}", failures.len());
                vec![letter]
            }
            _ => failures
                .iter()
                .map(|(raw, error)| DeadLetter::new(raw, error, partition, offset))
                .collect(),
        }
    }

    /// Bytes it holds while it waits.
    pub fn size(&self) -> usize {
        self.payload.len() + self.error.len()
    }

    /// The same letter cut to what a broker takes, saying how large it was.
    fn truncated(mut self) -> Self {
        if self.payload.len() > TRUNCATED_PAYLOAD {
            self.truncated_from = Some(self.payload.len());
            self.payload.truncate(TRUNCATED_PAYLOAD);
        }
        self
    }
}

/// Letters the broker did not acknowledge, and the error of the first that failed.
#[derive(Debug)]
pub struct Undelivered {
    /// They wait for the next try.
    pub letters: Vec<DeadLetter>,
    /// Why.
    pub error: KafkaError,
}

/// The producer of the dead-letter topic.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    /// The dead-letter topic of `topic`.
    pub fn topic_for(topic: &str) -> String {
        format!("{topic}.dlq")
    }

    /// A producer for the dead letters of `topic`.
    pub fn new(bootstrap: &str, topic: &str) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "20")
            // A letter is a message this broker already took, plus headers.
            .set("message.max.bytes", "100000000")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .set("enable.idempotence", "false")
            .create()?;
        Ok(DeadLetters {
            producer,
            topic: Self::topic_for(topic),
        })
    }

    /// Sends `letters` and waits until the broker has acknowledged every one. A letter the
    /// broker refuses as too large is sent again cut short; the ones that still fail come back.
    pub async fn deliver(&self, letters: Vec<DeadLetter>) -> Result<(), Undelivered> {
        let outcomes = join_all(letters.into_iter().map(|letter| async move {
            match self.send(&letter).await {
                Err(error) if too_large(&error) => {
                    let letter = letter.truncated();
                    self.send(&letter).await.map_err(|error| (letter, error))
                }
                outcome => outcome.map_err(|error| (letter, error)),
            }
        }))
        .await;
        let sent = outcomes.len();
        let failed: Vec<(DeadLetter, KafkaError)> =
            outcomes.into_iter().filter_map(Result::err).collect();
        counter!(prometheus::DEAD_LETTERS_SENT).increment((sent - failed.len()) as u64);
        counter!(prometheus::DEAD_LETTERS_FAILED).increment(failed.len() as u64);
        let Some((_, error)) = failed.first() else {
            return Ok(());
        };
        let error = error.clone();
        tracing::warn!(%error, letters = failed.len(), "the broker did not take dead letters; they wait for the next try");
        Err(Undelivered {
            letters: failed.into_iter().map(|(letter, _)| letter).collect(),
            error,
        })
    }

    async fn send(&self, letter: &DeadLetter) -> Result<(), KafkaError> {
        let (partition, offset) = (letter.partition.to_string(), letter.offset.to_string());
        let truncated_from = letter.truncated_from.map(|size| size.to_string());
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(letter.reason),
            })
            .insert(Header {
                key: "error",
                value: Some(&letter.error),
            })
            .insert(Header {
                key: "source-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "source-offset",
                value: Some(&offset),
            });
        if let Some(size) = &truncated_from {
            headers = headers.insert(Header {
                key: "truncated-from-bytes",
                value: Some(size),
            });
        }
        let record = FutureRecord::<(), [u8]>::to(&self.topic)
            .payload(&letter.payload)
            .headers(headers);
        self.producer
            .send(record, DELIVERY_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }
}

fn too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_many_bad_items_is_one_letter() {
        let bad = |raw: &'static [u8]| (raw, DecodeError::Empty);
        let few: Vec<_> = (0..MAX_LETTERS_PER_MESSAGE).map(|_| bad(b"1")).collect();
        assert_eq!(
            DeadLetter::for_message(b"[1]", &few, 0, 7).len(),
            MAX_LETTERS_PER_MESSAGE
        );
        let many: Vec<_> = (0..=MAX_LETTERS_PER_MESSAGE).map(|_| bad(b"1")).collect();
        let letters = DeadLetter::for_message(b"[1,1]", &many, 0, 7);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].payload, b"[1,1]");
        assert!(letters[0]
            .error
            .starts_with("17 items malformed; the first: "));
    }

    #[test]
    fn a_cut_letter_says_how_large_it_was() {
        let raw = vec![b'x'; TRUNCATED_PAYLOAD + 1];
        let letter = DeadLetter::new(&raw, &DecodeError::Empty, 0, 0).truncated();
        assert_eq!(letter.payload.len(), TRUNCATED_PAYLOAD);
        assert_eq!(letter.truncated_from, Some(TRUNCATED_PAYLOAD + 1));
    }
}
