//! Producers that feed the topic the way real services do.

pub mod gen;
pub mod publisher;
pub mod replay;
pub mod tail;
