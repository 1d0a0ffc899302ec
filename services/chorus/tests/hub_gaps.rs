//! The hub repairs a lossy bus from the log: deliveries lost on the way (core NATS is at most
//! once) are backfilled before anything newer, and a backfill that reads past the hole never
//! makes the gateway deliver a message twice. The bus here drops chosen seqs on purpose, the
//! way NATS loses messages across a reconnect.

mod common;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use chorus_core::{
    RoomId,
    bus::{BusError, Delivery, DeliveryBus, Subscription, memory::MemoryBus},
};
use chorus_gateway::{Authenticator, Gateway, GatewayConfig};
use chorus_router::Router;
use chorus_store_embedded::EmbeddedStore;
use common::{Client, SECRET};

#[derive(Default)]
struct LossyBus {
    inner: MemoryBus,
    lose: Mutex<HashSet<u64>>,
}

#[async_trait]
impl DeliveryBus for LossyBus {
    async fn publish(&self, delivery: Delivery) -> Result<(), BusError> {
        if self.lose.lock().unwrap().remove(&delivery.seq) {
            return Ok(());
        }
        self.inner.publish(delivery).await
    }

    async fn subscribe(&self, room: &RoomId) -> Result<Subscription, BusError> {
        self.inner.subscribe(room).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_deliveries_are_backfilled_in_order_and_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).unwrap());
    let bus = Arc::new(LossyBus::default());
    let router = Arc::new(Router::new(
        store.clone(),
        store,
        bus.clone(),
        Default::default(),
    ));
    let auth = Arc::new(Authenticator::new(SECRET.as_bytes()).unwrap());
    let gateway = Gateway::new(
        router,
        bus.clone(),
        auth.clone(),
        GatewayConfig::default(),
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
    tokio::spawn(gateway.serve(listener, axum::Router::new()));
    let token = |u: &str| {
        auth.mint(
            &chorus_core::UserId::new(u).unwrap(),
            std::time::Duration::from_secs(60),
        )
    };

    let mut reader = Client::connect_with_header(&url, &token("reader")).await;
    reader.expect("ready").await;
    reader.join("gaps", None).await;
    let mut writer = Client::connect_with_header(&url, &token("writer")).await;
    writer.expect("ready").await;
    writer.join("gaps", None).await;

    writer.send("gaps", "c1", "one").await;
    // 2 and 3 are lost on the bus; 4 reveals the hole, and the history read that fills it
    // already contains 4.
    bus.lose.lock().unwrap().extend([2, 3]);
    for (cmid, body) in [
        ("c2", "two"),
        ("c3", "three"),
        ("c4", "four"),
        ("c5", "five"),
    ] {
        writer.send("gaps", cmid, body).await;
    }
    let got: Vec<(u64, String)> = reader
        .msgs(5)
        .await
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "one".to_owned()),
            (2, "two".to_owned()),
            (3, "three".to_owned()),
            (4, "four".to_owned()),
            (5, "five".to_owned())
        ]
    );
    // Nothing else arrives: in particular not a second 4 or 5.
    writer.send("gaps", "c6", "six").await;
    let next = reader.msgs(1).await;
    assert_eq!(next[0]["seq"], 6, "{next:?}");
}
