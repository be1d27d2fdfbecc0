//! `lakepulse tail FILE...`: follows access logs as `tail -F` does and publishes each new line
//! into the topic, for web servers without a Kafka client. A file rotated away (renamed or
//! removed, a new one created under its name) is read to its end before the new file is read
//! from its start; a file truncated in place (`copytruncate`) is read again from its start.
//!
//! Where each file is read up to is saved in a state file once the lines before it are
//! delivered, so a restart goes on from there: a file rotated meanwhile is found again by its
//! inode in its directory and read to its end first. After a clean stop (SIGINT, SIGTERM) no
//! line is sent twice; after a crash, the lines since the last save are sent again, as
//! Filebeat's registry does. Lines are checked as `replay` checks them: one that is not an
//! event is reported and not sent.

use crate::cli::TailArgs;
use crate::tools::publisher::Publisher;
use crate::tools::replay::check_line;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often files are looked at when nothing new was read.
const POLL: Duration = Duration::from_millis(200);
/// How long a file rotated away must stay unchanged before the next one is read: a server
/// writes on into the old file until it reopens its logs (logrotate's postrotate signal).
const ROTATED_QUIET: Duration = Duration::from_secs(1);
/// How often, at most, delivered positions are saved while lines keep coming.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Bytes read from a file at a time.
const CHUNK: usize = 256 * 1024;
/// Invalid lines reported one by one; the rest are counted.
const INVALID_LINES_SHOWN: u64 = 20;

/// Which file a path names: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// How far a followed file has been read: every line before `offset` is handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    file: Identity,
    offset: u64,
}

/// What the state file holds: each followed path's position.
type Positions = BTreeMap<PathBuf, Position>;

/// One line read, with the position after it.
#[derive(Debug)]
struct Line {
    path: PathBuf,
    /// None for standard input, which has no position.
    after: Option<Position>,
    text: Vec<u8>,
}

fn load(state: &Path) -> anyhow::Result<Positions> {
    match std::fs::read(state) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("reading the tail positions in {}", state.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Positions::new()),
        Err(error) => Err(error).with_context(|| format!("reading {}", state.display())),
    }
}

/// Writes the positions whole or not at all: a crash mid-write leaves the previous ones.
fn save(state: &Path, positions: &Positions) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(positions)?;
    crate::files::replace(state, &json)
        .with_context(|| format!("saving the tail positions in {}", state.display()))
}

/// One file followed by name.
struct Followed {
    path: PathBuf,
    /// The file being read, kept open so a file rotated away is still read to its end.
    open: Option<(File, Position)>,
    /// What follows the last newline read, waiting for the rest of its line.
    partial: Vec<u8>,
    /// Since when the open file, rotated away, has not grown.
    quiet_since: Option<Instant>,
}

impl Followed {
    fn new(path: PathBuf) -> Self {
        Followed {
            path,
            open: None,
            partial: Vec::new(),
            quiet_since: None,
        }
    }

    /// Opens the file the path names now: at the saved position if it is the same file, else
    /// at its start (or, the first time a file is seen, at its end unless `from_start`).
    fn open(&mut self, saved: Option<Position>, first_look: bool, from_start: bool) -> bool {
        let Ok(mut file) = File::open(&self.path) else {
            return false;
        };
        let Ok(metadata) = file.metadata() else {
            return false;
        };
        let identity = Identity::of(&metadata);
        let offset = match saved {
            Some(saved) if saved.file == identity && saved.offset <= metadata.len() => saved.offset,
            None if first_look && !from_start => metadata.len(),
            _ => 0,
        };
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return false;
        }
        self.open = Some((
            file,
            Position {
                file: identity,
                offset,
            },
        ));
        true
    }

    /// Reads what is new, handing on each whole line; true if anything was read.
    fn read_new(&mut self, lines: &mpsc::Sender<Line>) -> anyhow::Result<bool> {
        let Some((file, position)) = self.open.as_mut() else {
            return Ok(false);
        };
        let length = file.metadata()?.len();
        let read_up_to = position.offset + self.partial.len() as u64;
        if length < read_up_to {
            tracing::warn!(path = %self.path.display(), length, read_up_to, "the file was truncated: reading it again from its start");
            file.seek(SeekFrom::Start(0))?;
            position.offset = 0;
            self.partial.clear();
        }
        let mut chunk = vec![0; CHUNK];
        let mut any = false;
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                return Ok(any);
            }
            any = true;
            self.partial.extend_from_slice(&chunk[..n]);
            let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let rest = self.partial.split_off(last_newline + 1);
            let whole = std::mem::replace(&mut self.partial, rest);
            for text in whole.split_inclusive(|b| *b == b'\n') {
                position.offset += text.len() as u64;
                hand_on(lines, &self.path, Some(*position), text)?;
            }
        }
    }

    /// Whether the path now names another file than the one open (or none).
    fn rotated(&self) -> bool {
        let Some((_, position)) = &self.open else {
            return false;
        };
        std::fs::metadata(&self.path).map_or(true, |now| Identity::of(&now) != position.file)
    }

    /// The file was rotated away and read to its end: its last line ends there, newline or
    /// not, and the next file under its name is read from its start.
    fn close(&mut self, lines: &mpsc::Sender<Line>) -> anyhow::Result<()> {
        self.quiet_since = None;
        if let Some((_, mut position)) = self.open.take() {
            if !self.partial.is_empty() {
                position.offset += self.partial.len() as u64;
                hand_on(
                    lines,
                    &self.path,
                    Some(position),
                    &std::mem::take(&mut self.partial),
                )?;
            }
        }
        Ok(())
    }
}

/// Sends a line on, without its line ending; a blank line moves the position alone.
fn hand_on(
    lines: &mpsc::Sender<Line>,
    path: &Path,
    after: Option<Position>,
    text: &[u8],
) -> anyhow::Result<()> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    lines
        .blocking_send(Line {
            path: path.to_owned(),
            after,
            text: text.to_vec(),
        })
        .context("the publisher stopped")
}

/// The rest of a file the path named when its position was saved, if it was rotated away
/// while nobody read it and still sits in the same directory under another name.
fn read_rotated_remainder(
    path: &Path,
    saved: Position,
    lines: &mpsc::Sender<Line>,
) -> anyhow::Result<()> {
    if std::fs::metadata(path).is_ok_and(|now| Identity::of(&now) == saved.file) {
        return Ok(());
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Ok(());
    };
    let rotated = entries
        .flatten()
        .map(|entry| entry.path())
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && Identity::of(&m) == saved.file)
        });
    let Some(rotated) = rotated else {
        tracing::warn!(path = %path.display(), "the file read last was rotated away and is gone: reading the new one from its start");
        return Ok(());
    };
    tracing::info!(path = %path.display(), rotated = %rotated.display(), offset = saved.offset, "reading the rest of the file rotated away while stopped");
    let mut followed = Followed::new(path.to_owned());
    let mut file = File::open(&rotated)?;
    file.seek(SeekFrom::Start(saved.offset))?;
    followed.open = Some((file, saved));
    followed.read_new(lines)?;
    followed.close(lines)
}

/// Follows the files until `stop`, handing on every line; blocking I/O, on a thread of its own.
fn follow(
    paths: Vec<PathBuf>,
    saved: Positions,
    from_start: bool,
    lines: mpsc::Sender<Line>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut followed: Vec<Followed> = paths.into_iter().map(Followed::new).collect();
    for file in &mut followed {
        if let Some(&position) = saved.get(&file.path) {
            read_rotated_remainder(&file.path, position, &lines)?;
        }
        if !file.open(saved.get(&file.path).copied(), true, from_start) {
            tracing::info!(path = %file.path.display(), "waiting for the file to appear");
        }
    }
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for file in &mut followed {
            if file.open.is_none() && file.open(None, false, from_start) {
                tracing::info!(path = %file.path.display(), "following the file from its start");
            }
            let grew = file.read_new(&lines)?;
            any |= grew;
            // The old file to its end, then the new one: one file at a time keeps a path's
            // position a single place.
            if file.rotated() {
                let quiet_since = match grew {
                    true => *file.quiet_since.insert(Instant::now()),
                    false => *file.quiet_since.get_or_insert_with(Instant::now),
                };
                if quiet_since.elapsed() >= ROTATED_QUIET {
                    file.close(&lines)?;
                    tracing::info!(path = %file.path.display(), "the file was rotated");
                }
            }
        }
        if !any {
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

/// Reads standard input to its end.
fn read_stdin(lines: mpsc::Sender<Line>) -> anyhow::Result<()> {
    for text in std::io::stdin().lock().split(b'\n') {
        hand_on(&lines, Path::new("-"), None, &text?)?;
    }
    Ok(())
}

/// Counts and reports the lines that are not events.
#[derive(Default)]
struct Refused {
    total: u64,
}

impl Refused {
    fn report(&mut self, path: &Path, reason: &str) {
        self.total += 1;
        if self.total <= INVALID_LINES_SHOWN {
            tracing::warn!(path = %path.display(), %reason, "a line that is not an event was not published");
        } else if self.total == INVALID_LINES_SHOWN + 1 {
            tracing::warn!(
                "more lines that are not events: counted, no longer reported one by one"
            );
        }
    }
}

pub async fn run(config: TailArgs) -> anyhow::Result<()> {
    let saved = load(&config.state)?;
    let mut publisher = Publisher::connect(&config.kafka.bootstrap(), &config.kafka.topic).await?;
    let (lines_tx, mut lines) = mpsc::channel::<Line>(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let (stdin, files): (Vec<PathBuf>, Vec<PathBuf>) = config
        .files
        .iter()
        .cloned()
        .partition(|p| p == Path::new("-"));
    let following_files = !files.is_empty();
    let mut readers = Vec::new();
    if !stdin.is_empty() {
        let lines_tx = lines_tx.clone();
        readers.push(std::thread::spawn(move || read_stdin(lines_tx)));
    }
    if following_files {
        let (saved, stop, lines_tx) = (saved.clone(), stop.clone(), lines_tx.clone());
        let from_start = config.from_start;
        readers.push(std::thread::spawn(move || {
            follow(files, saved, from_start, lines_tx, stop)
        }));
    }
    drop(lines_tx);
    tracing::info!(files = ?config.files, topic = %config.kafka.topic, state = %config.state.display(), "tailing");

    let mut positions = saved;
    let mut refused = Refused::default();
    let mut unsaved = false;
    let mut last_save = Instant::now();
    let mut stopping = std::pin::pin!(stop_signal());
    loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            () = &mut stopping => {
                stop.store(true, Ordering::Relaxed);
                // The reader hands on what it holds and stops; stdin is left behind.
                None
            }
        };
        let Some(line) = line else { break };
        if !line.text.trim_ascii().is_empty() {
            match check_line(config.format, config.access_log_format.as_ref(), &line.text) {
                Ok(_) => publisher.send(None, &line.text).await?,
                Err(error) => refused.report(&line.path, &error.to_string()),
            }
        }
        if let Some(after) = line.after {
            positions.insert(line.path, after);
            unsaved = true;
        }
        if unsaved && (lines.is_empty() || last_save.elapsed() >= SAVE_EVERY) {
            // A position is saved only once every line before it is delivered.
            publisher.flush().await?;
            save(&config.state, &positions)?;
            (unsaved, last_save) = (false, Instant::now());
        }
    }
    // The file reader has stopped; what it handed on before it did is still queued.
    while let Ok(line) = lines.try_recv() {
        let is_event =
            check_line(config.format, config.access_log_format.as_ref(), &line.text).is_ok();
        if !line.text.trim_ascii().is_empty() && is_event {
            publisher.send(None, &line.text).await?;
        }
        if let Some(after) = line.after {
            positions.insert(line.path, after);
        }
    }
    let published = publisher.finish().await?;
    if following_files {
        save(&config.state, &positions)?;
    }
    for reader in readers.into_iter().filter(|r| r.is_finished()) {
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the file reader panicked"))??;
    }
    tracing::info!(
        published,
        refused = refused.total,
        "tail stopped; positions saved"
    );
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match terminate.as_mut() {
                Some(terminate) => { terminate.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
