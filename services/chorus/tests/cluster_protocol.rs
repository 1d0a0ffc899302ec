//! Protocol v1 against the cluster wiring: the same suite as tests/protocol.rs, with two
//! gateways and two routers on a real nats-server and a real Cassandra (`make test` starts
//! both). Each test gets its own keyspace and subject prefix.

mod common;

mod wiring {
    pub use crate::common::cluster::{start, start_with};
}

#[path = "suites/protocol.rs"]
mod protocol;
