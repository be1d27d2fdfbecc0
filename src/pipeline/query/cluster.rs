//! SQL on an Apache DataFusion Ballista cluster (`SQL_CLUSTER=df://HOST:PORT`): the session a
//! query is planned in when a cluster is named, the scheduler and the executor that
//! `lakepulse sql-scheduler` and `lakepulse sql-executor` run, and what the scheduler says of
//! its executors.
//!
//! The server still parses and checks every query (read-only, no file or URL reads) and holds
//! its time limit, cancel and caps; the cluster plans and runs what passed. The scheduler and
//! the executors carry the same bounded value-building functions as the server, so a query's
//! functions mean the same wherever it runs, and read the table through the same object-store
//! handlers (credentials from their own environment, as `serve` takes them).

use super::add_functions;
use super::snapshot_scan::LakeCodec;
use async_trait::async_trait;
use ballista::prelude::SessionContextExt;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion_proto::protobuf::LogicalPlanNode;
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::{DataFusionError, Result};
use deltalake::datafusion::execution::context::QueryPlanner;
use deltalake::datafusion::execution::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry,
};
use deltalake::datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use deltalake::datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use deltalake::datafusion::logical_expr::LogicalPlan;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::logstore::object_store::ObjectStore;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// How often executors tell the scheduler they are alive, and how long the scheduler waits
/// before it takes one for gone: a killed executor's tasks go elsewhere within seconds, not
/// the three minutes of Ballista's defaults.
const HEARTBEAT: Duration = Duration::from_secs(3);
const EXECUTOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the cluster could not be named, started or asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `SQL_CLUSTER` is not `df://HOST:PORT`.
    #[error("SQL cluster {0:?}: {1}")]
    Address(String, String),
    /// A scheduler or executor stopped or could not start.
    #[error("{0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// The scheduler did not answer.
    #[error("the SQL cluster's scheduler at {0} does not answer: {1}")]
    Unreachable(String, String),
}

/// Where a Ballista cluster's scheduler listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCluster {
    host: String,
    port: u16,
}

impl FromStr for SqlCluster {
    type Err = ClusterError;

    fn from_str(text: &str) -> Result<Self, ClusterError> {
        let wrong = |why: &str| ClusterError::Address(text.into(), why.into());
        let url = Url::parse(text).map_err(|e| wrong(&e.to_string()))?;
        if url.scheme() != "df" {
            return Err(wrong("name the scheduler as df://HOST:PORT"));
        }
        Ok(SqlCluster {
            host: url
                .host_str()
                .ok_or_else(|| wrong("no host"))?
                .trim_matches(['[', ']'])
                .to_owned(),
            port: url.port().ok_or_else(|| wrong("no port"))?,
        })
    }
}

impl fmt::Display for SqlCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "df://{}:{}", self.url_host(), self.port)
    }
}

impl SqlCluster {
    /// A session whose queries the cluster plans and runs, with `state`'s configuration and
    /// the server's bounded functions; register the table in it as a
    /// [`super::snapshot_scan::SnapshotScan`].
    pub async fn session(&self, state: SessionState) -> Result<SessionContext> {
        let config = state
            .config()
            .clone()
            .with_ballista_logical_extension_codec(Arc::new(LakeCodec::default()));
        let state = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build();
        let joined = SessionContext::remote_with_state(&self.to_string(), state)
            .await?
            .state();
        let on_cluster = joined.query_planner().clone();
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(joined)
                .with_query_planner(Arc::new(DescribeHere { on_cluster }))
                .build(),
        );
        // Joining the cluster puts DataFusion's own functions back; ours go over them again.
        add_functions(&ctx)?;
        Ok(ctx)
    }

    /// The job `plan` runs as on this cluster, once executed: stopped on the scheduler when
    /// the query ends before its answer is read.
    pub fn job(&self, http: &reqwest::Client, plan: &Arc<dyn ExecutionPlan>) -> ClusterJob {
        ClusterJob {
            cluster: self.clone(),
            http: http.clone(),
            plan: plan.clone(),
            answered: false,
        }
    }

    /// How many executors the scheduler has heard from lately.
    pub async fn executors(&self, http: &reqwest::Client) -> Result<usize, ClusterError> {
        let unreachable =
            |e: reqwest::Error| ClusterError::Unreachable(self.to_string(), e.to_string());
        let executors: Vec<serde_json::Value> = http
            .get(format!(
                "http://{}:{}/api/executors",
                self.url_host(),
                self.port
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)?;
        Ok(executors.len())
    }

    fn url_host(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        }
    }
}

/// Plans `DESCRIBE` where the query was asked and everything else on the cluster: a table's
/// columns are in the asking session's catalog, and Ballista cannot send a `DescribeTable`
/// plan (DataFusion's plan serde has no form for it).
#[derive(Debug)]
struct DescribeHere {
    on_cluster: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for DescribeHere {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match plan {
            LogicalPlan::DescribeTable(_) => {
                DefaultPhysicalPlanner::default()
                    .create_physical_plan(plan, session)
                    .await
            }
            _ => self.on_cluster.create_physical_plan(plan, session).await,
        }
    }
}

/// A query's job on the cluster. Ballista's client stops waiting when the query is dropped
/// (cancelled, out of time, its client gone) but leaves the job running on the executors; this
/// asks the scheduler to cancel it then, so a stopped query stops taking the cluster's cores.
pub struct ClusterJob {
    cluster: SqlCluster,
    http: reqwest::Client,
    plan: Arc<dyn ExecutionPlan>,
    answered: bool,
}

impl ClusterJob {
    /// The answer is read: the job has ended and there is nothing to cancel.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for ClusterJob {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // No id yet: the job was never submitted, or its submission is lost with the query.
        let Some(job) = submitted_job(&self.plan) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let url = format!(
            "http://{}:{}/api/job/{job}",
            self.cluster.url_host(),
            self.cluster.port
        );
        let http = self.http.clone();
        runtime.spawn(async move {
            match http.patch(url).send().await {
                Ok(response) => {
                    tracing::info!(%job, status = response.status().as_u16(), "cancelled the cluster job of a stopped query")
                }
                Err(error) => {
                    tracing::warn!(%job, %error, "could not cancel the cluster job of a stopped query")
                }
            }
        });
    }
}

/// The id of the Ballista job `plan` submitted, if it has.
fn submitted_job(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    match plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>() {
        Some(distributed) => distributed.job_id().map(|id| id.to_string()),
        None => plan.children().into_iter().find_map(submitted_job),
    }
}

/// DataFusion's session with the server's functions: what the scheduler plans in, and where
/// the executors take their functions from.
fn sandboxed_state(config: SessionConfig) -> Result<SessionState> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let ctx = SessionContext::new_with_state(state);
    add_functions(&ctx)?;
    Ok(ctx.state())
}

/// Runs a scheduler on `bind` until it fails; executors and servers reach it as
/// `df://EXTERNAL_HOST:PORT`.
pub async fn run_scheduler(bind: SocketAddr, external_host: String) -> Result<(), ClusterError> {
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host,
        executor_timeout_seconds: EXECUTOR_TIMEOUT.as_secs(),
        expire_dead_executor_interval_seconds: HEARTBEAT.as_secs(),
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT.as_secs(),
        override_logical_codec: Some(Arc::new(LakeCodec::default())),
        override_session_builder: Some(Arc::new(sandboxed_state)),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, bind, Arc::new(config)).await?;
    Ok(())
}

/// Where an executor listens and whom it works for.
#[derive(Debug, Clone)]
pub struct ExecutorPlace {
    /// The scheduler to register with.
    pub scheduler: SqlCluster,
    /// The address to listen on; its port serves Arrow Flight (results and shuffles).
    pub bind: SocketAddr,
    /// The port of its gRPC service (the scheduler's calls).
    pub grpc_port: u16,
    /// The host name others reach it by.
    pub external_host: String,
    /// Where it writes shuffle files.
    pub work_dir: PathBuf,
    /// Tasks it runs at once.
    pub concurrent_tasks: usize,
}

/// Runs an executor until it fails or is stopped.
pub async fn run_executor(place: ExecutorPlace) -> Result<(), ClusterError> {
    std::fs::create_dir_all(&place.work_dir).map_err(|e| {
        ballista_core::error::BallistaError::General(format!(
            "work directory {}: {e}",
            place.work_dir.display()
        ))
    })?;
    let work_dir = place.work_dir.display().to_string();
    let spill_dir = place.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: place.bind.ip().to_string(),
        port: place.bind.port(),
        grpc_port: place.grpc_port,
        external_host: Some(place.external_host),
        scheduler_host: place.scheduler.host.clone(),
        scheduler_port: place.scheduler.port,
        vcores: place.concurrent_tasks.max(1),
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: HEARTBEAT.as_secs(),
        override_logical_codec: Some(Arc::new(LakeCodec::default())),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(
            &sandboxed_state(SessionConfig::new())
                .map_err(ballista_core::error::BallistaError::from)?,
        ))),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            Ok(Arc::new(
                RuntimeEnvBuilder::new()
                    .with_temp_file_path(spill_dir.clone())
                    .with_object_store_registry(Arc::new(LakeStores::default()))
                    .build()?,
            ) as Arc<RuntimeEnv>)
        })),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// DataFusion's stores (the local file system), and any object store a scan names, made
/// the way delta-rs makes it for the table.
#[derive(Debug, Default)]
struct LakeStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = deltalake::logstore::store_for(url, HashMap::<String, String>::new())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_named_as_df_host_port() {
        let named: SqlCluster = "df://sql.example:50050".parse().unwrap();
        assert_eq!(named.to_string(), "df://sql.example:50050");
        let named: SqlCluster = "df://[::1]:50050".parse().unwrap();
        assert_eq!(named.to_string(), "df://[::1]:50050");
        for wrong in [
            "sql.example:50050",
            "http://sql.example:50050",
            "df://sql.example",
        ] {
            assert!(wrong.parse::<SqlCluster>().is_err(), "{wrong}");
        }
    }
}
