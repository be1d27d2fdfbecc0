//! One file per stage. Decoding is pure (no I/O), so it also builds without the server
//! feature, for the fuzz targets; everything else runs on the server.

#[cfg(feature = "ssr")]
pub mod alert;
#[cfg(feature = "ssr")]
pub mod anomaly;
#[cfg(feature = "ssr")]
pub mod broker;
#[cfg(feature = "ssr")]
pub mod config;
pub mod decode;
#[cfg(feature = "ssr")]
pub mod ingest;
#[cfg(feature = "ssr")]
pub mod lake;
#[cfg(feature = "ssr")]
pub mod live;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod query;
#[cfg(feature = "ssr")]
mod task;
#[cfg(feature = "ssr")]
mod wiring;

#[cfg(feature = "ssr")]
pub(crate) use task::AbortOnDrop;
#[cfg(feature = "ssr")]
pub use wiring::{Pipeline, PipelineError, Subscription};
