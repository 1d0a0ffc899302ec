//! The CQL store against a real Apache Cassandra 5.0 (scripts/cassandra.sh). `make test` starts
//! one on a test port through scripts/with-test-services.sh and sets CHORUS_TEST_CQL; without
//! it these tests fail and say how to run them. Every test gets its own freshly migrated
//! keyspace, dropped when the test ends, so tests run in parallel on one node.

mod conformance;
mod leases;
mod login;
mod schema;
mod state;
mod store;
mod support;
