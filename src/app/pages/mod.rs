pub mod anomalies;
pub mod context;
pub mod dashboard;
pub mod logs;
pub mod query;
