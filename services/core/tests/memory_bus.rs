//! The in-process bus passes the bus conformance suite.

use std::sync::Arc;

use chorus_core::{bus::memory::MemoryBus, conformance::BusUnderTest};

chorus_core::bus_conformance_suite!(async {
    BusUnderTest {
        bus: Arc::new(MemoryBus::default()),
        guard: Box::new(()),
    }
});
