//! `lakepulse replay FILE`: publishes a real access log into the topic, line by line as the
//! server wrote it, so events keep their original times. Lines that are not events are not
//! published; they are reported with their line numbers at the end, as are lines too large
//! for a Kafka message.

use crate::cli::{ReplayArgs, ReplayFormat, Speed};
use crate::pipeline::decode::{decode_as, DecodeError, LogFormat};
use crate::tools::publisher::Publisher;
use anyhow::Context;
use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Invalid lines listed one by one at the end; the rest are counted.
const INVALID_LINES_SHOWN: usize = 20;

/// Counts the bytes read from the file, so progress works for compressed input too.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open(path: &Path, read: Arc<AtomicU64>) -> anyhow::Result<(Box<dyn BufRead + Send>, u64)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut magic = [0u8; 2];
    let gzipped = file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
    drop(file);
    let file = CountingReader {
        inner: File::open(path)?,
        read,
    };
    let reader: Box<dyn BufRead + Send> = if gzipped {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    Ok((reader, size))
}

/// Whether a line is an event of `format` (its access-log lines laid out as `log_format`
/// says, when it says), and its time if so.
pub(crate) fn check_line(
    format: ReplayFormat,
    log_format: Option<&LogFormat>,
    line: &[u8],
) -> Result<DateTime<Utc>, DecodeError> {
    let is_json = line.trim_ascii_start().starts_with(b"{");
    let event = match format {
        ReplayFormat::Json if !is_json => Err(DecodeError::InvalidJson("not a JSON object".into())),
        ReplayFormat::Combined if is_json => {
            Err(DecodeError::NotAccessLog("a JSON line in a combined log"))
        }
        _ => decode_as(line, Utc::now(), log_format),
    }?;
    Ok(event.timestamp)
}

/// A line librdkafka refuses before sending (over `message.max.bytes`): reported with the
/// invalid lines rather than ending the replay.
fn is_too_large(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<KafkaError>(),
        Some(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        ))
    )
}

/// Holds the replay to the log's own pace (scaled), measured from its first event.
struct Pace {
    factor: Option<f64>,
    start: Option<(DateTime<Utc>, Instant)>,
}

impl Pace {
    async fn wait_for(&mut self, event_time: DateTime<Utc>) {
        let Some(factor) = self.factor else { return };
        let (first_event, started) = *self.start.get_or_insert((event_time, Instant::now()));
        let Ok(ahead) = (event_time - first_event).to_std() else {
            return;
        };
        let due = started + ahead.div_f64(factor);
        tokio::time::sleep_until(due.into()).await;
    }
}

pub async fn run(config: ReplayArgs) -> anyhow::Result<()> {
    let bytes_read = Arc::new(AtomicU64::new(0));
    let (reader, size) = open(&config.file, bytes_read.clone())?;
    // Reading is blocking I/O: a thread of its own feeds the lines in.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4096);
    std::thread::spawn(move || {
        for line in reader.split(b'\n') {
            if lines_tx.blocking_send(line).is_err() {
                return;
            }
        }
    });

    let mut publisher = Publisher::connect(&config.kafka.bootstrap(), &config.kafka.topic).await?;
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    let mut pace = Pace {
        factor: match config.speed {
            Speed::Factor(f) => Some(f),
            Speed::Max => None,
        },
        start: None,
    };
    let started = Instant::now();
    let (mut line_number, mut blank) = (0u64, 0u64);
    let mut invalid: Vec<(u64, String)> = Vec::new();
    let mut invalid_total = 0u64;
    let mut last_redraw = Instant::now();
    while let Some(line) = lines.recv().await {
        let mut line = line.with_context(|| {
            format!("reading {} after line {line_number}", config.file.display())
        })?;
        line_number += 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.trim_ascii().is_empty() {
            blank += 1;
            continue;
        }
        let refused = match check_line(config.format, config.access_log_format.as_ref(), &line) {
            Ok(event_time) => {
                pace.wait_for(event_time).await;
                match publisher.send(None, &line).await {
                    Ok(()) => None,
                    Err(error) if is_too_large(&error) => Some(format!(
                        "{} bytes, more than a Kafka message may hold",
                        line.len()
                    )),
                    Err(error) => return Err(error),
                }
            }
            Err(error) => Some(error.to_string()),
        };
        if let Some(reason) = refused {
            invalid_total += 1;
            if invalid.len() < INVALID_LINES_SHOWN {
                invalid.push((line_number, reason));
            }
        }
        if last_redraw.elapsed() >= Duration::from_millis(200) {
            last_redraw = Instant::now();
            let rate = line_number as f64 / started.elapsed().as_secs_f64().max(1e-3);
            progress.set_position(bytes_read.load(Ordering::Relaxed));
            progress.set_message(format!("{line_number} lines, {rate:.0} lines/s"));
        }
    }
    progress.finish_and_clear();
    let published = publisher.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {} into {}: {published} events published from {line_number} lines in {secs:.1} s ({:.0} lines/s); {blank} blank, {invalid_total} invalid",
        config.file.display(),
        config.kafka.topic,
        line_number as f64 / secs.max(1e-3),
    );
    for (number, reason) in &invalid {
        eprintln!("  line {number}: {reason}");
    }
    if invalid_total > invalid.len() as u64 {
        eprintln!("  ... and {} more", invalid_total - invalid.len() as u64);
    }
    Ok(())
}
