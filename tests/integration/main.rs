//! The whole path, as a user runs it: the real binary with its embedded broker, events from
//! several Kafka clients, the live API, the SSE stream, SQL, and a second Delta reader. One
//! test binary, one module per concern, over one harness.
#![cfg(feature = "ssr")]

mod harness;

mod access;
mod cluster;
mod faults;
mod goaccess;
mod group;
mod ingest;
mod lake;
mod live;
mod operations;
mod replay;
mod sql;
mod tail;
