//! The Kafka side of the house: the embedded broker (tansu, supervised as a child process)
//! when no cluster is configured, and the topic lakepulse reads.

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
    #[error("no Kafka broker answered at {0} within {1:?}: {2}")]
    Unreachable(String, Duration, String),
    #[error("could not create topic {0}: {1}")]
    CreateTopic(String, String),
}

/// The embedded broker. Dropping it stops the broker it started.
pub struct EmbeddedBroker {
    pub address: String,
    /// None when a broker was already listening (say, one a crashed run left) and is reused.
    supervisor: Option<AbortOnDrop>,
}

impl EmbeddedBroker {
    /// Starts tansu on 127.0.0.1:`port` with its log in `data_dir` (SQLite, so it survives
    /// restarts), restarting it whenever it exits.
    pub async fn start(tansu: &Path, port: u16, data_dir: &Path) -> Result<Self, BrokerError> {
        let address = format!("127.0.0.1:{port}");
        if TcpStream::connect(&address).await.is_ok() {
            tracing::warn!(%address, "a broker is already listening; reusing it");
            return Ok(EmbeddedBroker {
                address,
                supervisor: None,
            });
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
        let data_dir = std::fs::canonicalize(data_dir)
            .map_err(|e| BrokerError::DataDir(data_dir.to_owned(), e))?;
        let child = spawn_tansu(tansu, &address, &data_dir)?;
        tracing::info!(%address, dir = %data_dir.display(), "embedded broker started");
        let supervisor = tokio::spawn(supervise(
            child,
            tansu.to_owned(),
            address.clone(),
            data_dir,
        ));
        Ok(EmbeddedBroker {
            address,
            supervisor: Some(AbortOnDrop(supervisor)),
        })
    }

    /// Stops the broker it started: its supervisor ends, and the process with it.
    pub async fn stop(self) {
        if let Some(supervisor) = self.supervisor {
            supervisor.stop().await;
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
    Command::new(tansu)
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
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BrokerError::NotInstalled(tansu.to_owned()),
            _ => BrokerError::Spawn(e),
        })
}

async fn supervise(mut child: Child, tansu: PathBuf, address: String, data_dir: PathBuf) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match child.wait().await {
            Ok(status) => {
                tracing::error!(%status, log = %data_dir.join("tansu.log").display(), "embedded broker exited; restarting")
            }
            Err(error) => tracing::error!(%error, "lost the embedded broker; restarting"),
        }
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match spawn_tansu(&tansu, &address, &data_dir) {
                Ok(restarted) => {
                    child = restarted;
                    break;
                }
                Err(error) => tracing::error!(%error, "could not restart the embedded broker"),
            }
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
