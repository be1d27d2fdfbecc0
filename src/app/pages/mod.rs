pub mod dashboard;
pub mod query;
