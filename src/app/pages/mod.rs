pub mod anomalies;
pub mod dashboard;
pub mod logs;
pub mod query;
