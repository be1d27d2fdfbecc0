//! The Kafka side of the house: the embedded broker (tansu, supervised as a child process
//! tied to lakepulse's life) when no cluster is configured, and the topic lakepulse reads.

use super::prometheus;
use super::AbortOnDrop;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "the embedded broker `{0}` is not installed: run `make tools`, set TANSU_BIN, \
         or point KAFKA_BROKERS at a Kafka cluster"
    )]
    NotInstalled(PathBuf),
    #[error("could not prepare the broker's data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("could not start the embedded broker: {0}")]
    Spawn(std::io::Error),
    #[error(
        "{0} is taken by a process that is not the broker lakepulse started for this DATA_DIR: \
         stop it, set EMBEDDED_BROKER_PORT to a free port, or point KAFKA_BROKERS at it"
    )]
    PortTaken(String),
    #[error("no Kafka broker answered at {0} within {1:?}: {2}")]
    Unreachable(String, Duration, String),
    #[error("could not create topic {0}: {1}")]
    CreateTopic(String, String),
}

/// How long a broker asked to stop (SIGTERM) has before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A broker that ran this long before it exited was healthy: the next restart waits the
/// shortest back-off again.
const HEALTHY_SPELL: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
/// Where the broker's process id is kept, in its data directory.
const PID_FILE: &str = "tansu.pid";

/// The embedded broker, supervised: restarted when it exits, stopped with lakepulse however
/// lakepulse ends (`stop`, a drop, or a crash, through its lifeline).
pub struct EmbeddedBroker {
    pub address: String,
    supervisor: AbortOnDrop,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl EmbeddedBroker {
    /// Starts tansu on 127.0.0.1:`port` with its log in `data_dir` (SQLite, so it survives
    /// restarts). A broker found listening there is stopped first if it is the one an earlier
    /// run started for this `data_dir`; anything else on the port is an error, never used.
    pub async fn start(tansu: &Path, port: u16, data_dir: &Path) -> Result<Self, BrokerError> {
        let address = format!("127.0.0.1:{port}");
        std::fs::create_dir_all(data_dir)
            .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
        let data_dir = std::fs::canonicalize(data_dir)
            .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
        if TcpStream::connect(&address).await.is_ok() {
            let Some(pid) = earlier_broker(&data_dir) else {
                return Err(BrokerError::PortTaken(address));
            };
            tracing::warn!(pid, %address, "stopping the broker an earlier run left behind");
            end_process(pid).await;
        }
        let child = spawn_tansu(tansu, &address, &data_dir)?;
        tracing::info!(%address, dir = %data_dir.display(), "embedded broker started");
        let (stop, stop_asked) = tokio::sync::oneshot::channel();
        let supervisor = tokio::spawn(supervise(
            child,
            tansu.to_owned(),
            address.clone(),
            data_dir,
            stop_asked,
        ));
        Ok(EmbeddedBroker {
            address,
            supervisor: AbortOnDrop(supervisor),
            stop,
        })
    }

    /// Asks the broker to stop (SIGTERM), kills it if it has not within a few seconds, and
    /// waits until it has gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut supervisor = self.supervisor;
        let _ = (&mut supervisor.0).await;
    }
}

/// The pid of a live broker an earlier run started for `data_dir`: the pid file names it, and
/// the process works in that directory, as lakepulse starts it.
fn earlier_broker(data_dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(data_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    (cwd == data_dir).then_some(pid)
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; returns once the process is gone.
async fn end_process(pid: i32) {
    // A zombie has ended; only its parent's wait is left.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, fields)| !fields.starts_with('Z'))
        })
    };
    // SAFETY: kill(2) with a pid and a signal number touches no memory of ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        while alive() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn_tansu(tansu: &Path, address: &str, data_dir: &Path) -> Result<Child, BrokerError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("tansu.log"))
        .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
    let listener = format!("tcp://{address}");
    let lakepulse = std::process::id() as libc::pid_t;
    let mut command = Command::new(tansu);
    command
        .args(["broker", "--listener-url", &listener])
        .args(["--advertised-listener-url", &listener])
        // tansu resolves sqlite://NAME against its working directory.
        .args(["--storage-engine", "sqlite://tansu.db"])
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Out of the terminal's process group: Ctrl-C stops lakepulse, which stops the broker
        // after its own clients, instead of every client seeing it vanish first.
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls: prctl and getppid.
    unsafe {
        command.pre_exec(move || {
            // The lifeline: the kernel kills the broker when lakepulse dies, SIGKILL included.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // lakepulse died before the lifeline was tied.
            if libc::getppid() != lakepulse {
                return Err(std::io::Error::other("lakepulse exited"));
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => BrokerError::NotInstalled(tansu.to_owned()),
        _ => BrokerError::Spawn(e),
    })?;
    if let Some(pid) = child.id() {
        std::fs::write(data_dir.join(PID_FILE), pid.to_string())
            .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
    }
    Ok(child)
}

/// Waits before restarts: doubling from the shortest, back to the shortest after a healthy
/// spell, so an old crash does not slow the recovery from a new one.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(FIRST_BACKOFF)
    }

    /// The wait before the next restart of a broker that ran for `ran`.
    fn after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_SPELL {
            self.0 = FIRST_BACKOFF;
        }
        let wait = self.0;
        self.0 = (self.0 * 2).min(LONGEST_BACKOFF);
        wait
    }
}

async fn supervise(
    mut child: Child,
    tansu: PathBuf,
    address: String,
    data_dir: PathBuf,
    mut stop_asked: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::new();
    let mut started = std::time::Instant::now();
    loop {
        tokio::select! {
            exited = child.wait() => match exited {
                Ok(status) => {
                    tracing::error!(%status, log = %data_dir.join("tansu.log").display(), "embedded broker exited; restarting")
                }
                Err(error) => tracing::error!(%error, "lost the embedded broker; restarting"),
            },
            _ = &mut stop_asked => {
                if let Some(pid) = child.id() {
                    end_process(pid as i32).await;
                }
                let _ = child.wait().await;
                let _ = std::fs::remove_file(data_dir.join(PID_FILE));
                return;
            }
        }
        let mut wait = backoff.after(started.elapsed());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stop_asked => return,
            }
            match spawn_tansu(&tansu, &address, &data_dir) {
                Ok(restarted) => {
                    ::metrics::counter!(prometheus::BROKER_RESTARTS).increment(1);
                    child = restarted;
                    started = std::time::Instant::now();
                    break;
                }
                Err(error) => tracing::error!(%error, "could not restart the embedded broker"),
            }
            wait = backoff.after(Duration::ZERO);
        }
    }
}

/// Waits until a broker at `bootstrap` answers a metadata request.
pub async fn wait_until_reachable(bootstrap: &str, within: Duration) -> Result<(), BrokerError> {
    let admin = std::sync::Arc::new(admin_client(bootstrap)?);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let client = admin.clone();
        // librdkafka's metadata call blocks.
        let probe = tokio::task::spawn_blocking(move || {
            client
                .inner()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|metadata| metadata.brokers().len())
        })
        .await;
        let last_error = match probe {
            Ok(Ok(brokers)) if brokers > 0 => return Ok(()),
            Ok(Ok(_)) => "no brokers in metadata".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(BrokerError::Unreachable(
                bootstrap.to_owned(),
                within,
                last_error,
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates the topic unless it exists: tansu and many clusters do not auto-create topics.
pub async fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), BrokerError> {
    let admin = admin_client(bootstrap)?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| BrokerError::CreateTopic(topic.to_owned(), e.to_string()))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(BrokerError::CreateTopic(name, code.to_string())),
        }
    }
    Ok(())
}

fn admin_client(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, BrokerError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| BrokerError::Unreachable(bootstrap.to_owned(), Duration::ZERO, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_starts_over_after_a_healthy_spell() {
        let mut backoff = Backoff::new();
        let quick = Duration::from_secs(1);
        let waits: Vec<Duration> = (0..8).map(|_| backoff.after(quick)).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(waits[7], LONGEST_BACKOFF);
        assert_eq!(backoff.after(HEALTHY_SPELL), FIRST_BACKOFF);
        assert_eq!(backoff.after(quick), FIRST_BACKOFF * 2);
    }
}
