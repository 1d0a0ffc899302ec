//! The router reached over a real gRPC socket (gateway side: GrpcRouterClient; router side:
//! RouterGrpc in front of the in-process router on the embedded store) passes the router
//! conformance suite: the network changes nothing a gateway can observe.

use std::{sync::Arc, time::Duration};

use chorus_core::{bus::memory::MemoryBus, conformance::RouterUnderTest};
use chorus_router::{Router, RouterConfig};
use chorus_router_grpc::{GrpcRouterClient, RouterGrpc};
use chorus_store_embedded::{EmbeddedConfig, EmbeddedStore};
use tonic::transport::server::TcpIncoming;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = RouterGrpc::new(router).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let client = GrpcRouterClient::connect(format!("http://{addr}"), Duration::from_secs(10))
        .await
        .unwrap();
    RouterUnderTest {
        router: Arc::new(client),
        bus,
        guard: Box::new(dir),
    }
});
