//! One file per stage. Decoding and the live view's arithmetic are pure (no I/O), so they
//! also build without the server feature, for the fuzz targets; everything else runs on the
//! server.

#[cfg(feature = "ssr")]
pub mod alert;
#[cfg(feature = "analytics")]
pub mod anomaly;
#[cfg(feature = "ssr")]
pub mod broker;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod consumer_group;
#[cfg(feature = "ssr")]
pub mod dead_letter;
#[cfg(feature = "analytics")]
pub mod decode;
#[cfg(feature = "ssr")]
mod fault;
#[cfg(feature = "ssr")]
pub mod ingest;
#[cfg(feature = "ssr")]
pub mod lake;
#[cfg(feature = "ssr")]
pub mod live;
#[cfg(feature = "ssr")]
pub mod maintenance;
#[cfg(feature = "analytics")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod prometheus;
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
