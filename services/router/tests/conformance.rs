//! The in-process router, on the embedded store and the in-process bus (the standalone wiring),
//! passes the router conformance suite.

use std::sync::Arc;

use chorus_core::{bus::memory::MemoryBus, conformance::RouterUnderTest};
use chorus_router::{Router, RouterConfig};
use chorus_store_embedded::{EmbeddedConfig, EmbeddedStore};

chorus_core::router_conformance_suite!(async {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let bus = Arc::new(MemoryBus::default());
    let router = Arc::new(Router::new(
        store.clone(),
        store,
        bus.clone(),
        RouterConfig::default(),
    ));
    RouterUnderTest {
        router,
        bus,
        guard: Box::new(dir),
    }
});
