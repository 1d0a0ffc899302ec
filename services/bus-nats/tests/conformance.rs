//! The NATS bus passes the bus conformance suite against a real nats-server. `make test`
//! starts one (scripts/nats.sh) and sets CHORUS_TEST_NATS_URL; each test uses its own subject
//! prefix, so tests run in parallel on one server.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use std::time::Duration;

use bytes::Bytes;
use chorus_bus_nats::NatsBus;
use chorus_core::{
    bus::{BusEvent, Delivery, DeliveryBus},
    conformance::{BusUnderTest, room},
};
use futures_util::StreamExt;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn nats_url() -> String {
    std::env::var("CHORUS_TEST_NATS_URL").expect(
        "CHORUS_TEST_NATS_URL is not set: run `make test` (it starts nats-server), or \
         `scripts/nats.sh start` and export CHORUS_TEST_NATS_URL=nats://127.0.0.1:4222",
    )
}

async fn bus() -> NatsBus {
    let prefix = format!(
        "test{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    NatsBus::connect(&nats_url(), &prefix)
        .await
        .expect("nats-server is reachable")
}

chorus_core::bus_conformance_suite!(async {
    BusUnderTest {
        bus: Arc::new(bus().await),
        guard: Box::new(()),
    }
});

/// Room names may contain dots (NATS token separators): each still gets its own subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_with_dots_are_delivered_and_isolated() {
    let bus = bus().await;
    let mut dotted = bus.subscribe(&room("team.eng")).await.unwrap();
    let mut parent = bus.subscribe(&room("team")).await.unwrap();
    let mut odd = bus.subscribe(&room("..x..")).await.unwrap();
    for (name, seq) in [("team.eng", 1), ("..x..", 7)] {
        let d = Delivery {
            trace: None,
            room: room(name),
            seq,
            frame: Bytes::from_static(b"{}"),
        };
        bus.publish(d).await.unwrap();
    }
    assert_eq!(next(&mut dotted).await, (room("team.eng"), 1));
    assert_eq!(next(&mut odd).await, (room("..x.."), 7));
    let quiet = tokio::time::timeout(Duration::from_millis(200), parent.next()).await;
    assert!(
        quiet.is_err(),
        "room team saw a delivery of team.eng: {quiet:?}"
    );
}

async fn next(sub: &mut chorus_core::bus::Subscription) -> (chorus_core::RoomId, u64) {
    match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        Ok(Some(BusEvent::Delivery(d))) => (d.room, d.seq),
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// A NATS restart loses whatever was published meanwhile: the subscription must say so
/// (Lagged, so the hub resyncs from the log) and then carry new deliveries again. Uses a
/// private nats-server so the shared one stays up for the other tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_is_reported_as_lag_and_delivery_resumes() {
    let port = 15000 + (std::process::id() % 1000) as u16;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/nats.sh");
    let nats = |action: &'static str| {
        let status = std::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .env("NATS_PORT", port.to_string())
            .env("NATS_HTTP_PORT", (port + 1000).to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("scripts/nats.sh runs");
        assert!(status.success(), "scripts/nats.sh {action} failed");
    };
    nats("start");
    let bus = NatsBus::connect(&format!("nats://127.0.0.1:{port}"), "restart")
        .await
        .unwrap();
    let mut sub = bus.subscribe(&room("r")).await.unwrap();
    nats("stop");
    nats("start");
    let event = tokio::time::timeout(Duration::from_secs(20), sub.next()).await;
    assert!(
        matches!(event, Ok(Some(BusEvent::Lagged))),
        "expected Lagged after the restart, got {event:?}"
    );
    // The client resubscribed on reconnect: new publishes arrive again.
    let mut got = None;
    for seq in 1..=50 {
        bus.publish(Delivery {
            trace: None,
            room: room("r"),
            seq,
            frame: Bytes::from_static(b"{}"),
        })
        .await
        .unwrap();
        if let Ok(Some(BusEvent::Delivery(d))) =
            tokio::time::timeout(Duration::from_millis(200), sub.next()).await
        {
            got = Some(d.seq);
            break;
        }
    }
    nats("clean");
    assert!(got.is_some(), "no delivery after the restart");
}
