//! The in-process lease store passes the lease conformance suite.

use std::sync::Arc;

use chorus_core::{conformance::LeaseUnderTest, lease::memory::MemoryLeases};

chorus_core::lease_conformance_suite!(async {
    LeaseUnderTest {
        leases: Arc::new(MemoryLeases::new()),
        guard: Box::new(()),
    }
});
