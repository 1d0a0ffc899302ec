//! The chat features against the cluster wiring: the same suite as tests/features.rs, with two
//! gateways and two routers on a real nats-server and a real Cassandra (`make test` starts
//! both). Each test gets its own keyspace and subject prefix.

mod common;

mod wiring {
    pub use crate::common::cluster::start_full;
}

#[path = "suites/features.rs"]
mod features;
