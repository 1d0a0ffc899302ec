//! The message store, room state and lease conformance suites. The message store suite runs
//! twice: with the default bucket size (every room stays in one partition) and with buckets of
//! 3 seqs, so appends, amends and reads cross partition boundaries all the time.

use std::sync::Arc;

use chorus_core::conformance::{LeaseUnderTest, StateUnderTest, StoreUnderTest};
use chorus_store_cql::{CqlStore, DEFAULT_BUCKET_SIZE};

use super::support::Keyspace;

async fn store(bucket_size: u64) -> StoreUnderTest {
    let ks = Keyspace::new(bucket_size).await;
    let store = CqlStore::connect(&ks.config).await.expect("store connects");
    StoreUnderTest {
        store: Arc::new(store),
        guard: Box::new(ks),
    }
}

mod default_buckets {
    chorus_core::store_conformance_suite!(crate::conformance::store(
        chorus_store_cql::DEFAULT_BUCKET_SIZE
    ));
}

mod small_buckets {
    chorus_core::store_conformance_suite!(crate::conformance::store(3));
}

chorus_core::lease_conformance_suite!(async {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.expect("store connects");
    LeaseUnderTest {
        leases: Arc::new(store),
        guard: Box::new(ks),
    }
});

chorus_core::state_conformance_suite!(async {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.expect("store connects");
    StateUnderTest {
        state: Arc::new(store),
        guard: Box::new(ks),
    }
});
