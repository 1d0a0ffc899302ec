//! Slot ownership: hand-over on ring changes, take-over after a holder dies, and a router
//! cut off from the cluster stops acknowledging. The lease store here is the in-process one;
//! the CQL store passes the same lease contract (chorus-store-cql), and the multi-process
//! tests in services/chorus/tests run all of this against Cassandra.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chorus_cluster::{
    membership::RingView,
    ownership::{LeaseOwnership, OwnershipConfig},
    ring::{Member, Ring},
};
use chorus_core::{
    RoomId,
    lease::{LeaseStore, memory::MemoryLeases},
    router::RouterError,
    time::now_ms,
};
use chorus_router::ownership::Ownership;

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        addr: format!("http://{name}:7001"),
    }
}

fn config() -> OwnershipConfig {
    OwnershipConfig {
        session_ttl: Duration::from_millis(800),
        renew_every: Duration::from_millis(100),
        drift: Duration::from_millis(100),
        settle: Duration::from_millis(200),
        claim_wait: Duration::from_secs(5),
        heartbeat_grace: Duration::from_millis(500),
    }
}

fn fresh_heartbeat() -> Arc<AtomicU64> {
    let beat = Arc::new(AtomicU64::new(now_ms()));
    let b = beat.clone();
    tokio::spawn(async move {
        loop {
            b.store(now_ms(), Ordering::Release);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    beat
}

/// A room the two-router ring gives to `b`.
fn room_owned_by(ring: &Ring, name: &str) -> RoomId {
    (0..)
        .map(|i| RoomId::new(&format!("room-{i}")).unwrap())
        .find(|r| ring.owner(r).unwrap().name == name)
        .unwrap()
}

async fn router(
    name: &str,
    view: &RingView,
    leases: &Arc<MemoryLeases>,
    beat: Arc<AtomicU64>,
) -> Arc<LeaseOwnership> {
    LeaseOwnership::start(
        name.into(),
        chorus_cluster::session_id(name),
        view.clone(),
        leases.clone() as Arc<dyn LeaseStore>,
        beat,
        config(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_change_hands_the_slot_over_at_once() {
    let leases = Arc::new(MemoryLeases::new());
    let (view, ring_tx) = RingView::fixed(Ring::new([member("a")]));
    let a = router("a", &view, &leases, fresh_heartbeat()).await;
    let b = router("b", &view, &leases, fresh_heartbeat()).await;
    let two = Ring::new([member("a"), member("b")]);
    let room = room_owned_by(&two, "b");

    // `a` owns everything and appends under epoch 1; `b` is refused with a's ring version.
    let permit = a.permit(&room).await.unwrap();
    assert_eq!(permit.epoch, 1);
    let one_version = view.current().version();
    match b.check(&room) {
        Err(RouterError::NotOwner {
            ring_version,
            owner,
        }) => {
            assert_eq!(ring_version, one_version);
            assert_eq!(owner.as_deref(), Some("a"));
        }
        other => panic!("expected NotOwner, got {other:?}"),
    }
    drop(permit);

    // `b` joins: `a` stops serving the room, releases the slot, and `b` claims it without
    // waiting for any expiry.
    ring_tx.send(Arc::new(two.clone())).unwrap();
    assert!(matches!(
        a.check(&room),
        Err(RouterError::NotOwner { ring_version, .. }) if ring_version == two.version()
    ));
    let started = Instant::now();
    let permit = b.permit(&room).await.unwrap();
    assert_eq!(permit.epoch, 2, "a new epoch for the new owner");
    assert!(permit.valid());
    assert!(
        started.elapsed() < config().session_ttl,
        "a released slot is taken at once, not after the session expires: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_over_waits_for_appends_in_flight() {
    let leases = Arc::new(MemoryLeases::new());
    let (view, ring_tx) = RingView::fixed(Ring::new([member("a")]));
    let a = router("a", &view, &leases, fresh_heartbeat()).await;
    let b = router("b", &view, &leases, fresh_heartbeat()).await;
    let two = Ring::new([member("a"), member("b")]);
    let room = room_owned_by(&two, "b");

    let in_flight = a.permit(&room).await.unwrap();
    ring_tx.send(Arc::new(two)).unwrap();
    let taker = tokio::spawn({
        let b = b.clone();
        let room = room.clone();
        async move { b.permit(&room).await.map(|p| p.epoch) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !taker.is_finished(),
        "b must not append while a's append is in flight"
    );
    assert!(
        in_flight.valid(),
        "a may still acknowledge what it is writing"
    );
    drop(in_flight);
    assert_eq!(taker.await.unwrap().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_is_replaced_after_its_session_expires() {
    let leases = Arc::new(MemoryLeases::new());
    let (view_a, _keep_a) = RingView::fixed(Ring::new([member("a")]));
    let a = router("a", &view_a, &leases, fresh_heartbeat()).await;
    let room = RoomId::new("busy").unwrap();
    drop(a.permit(&room).await.unwrap());
    // `a` dies: nothing renews or releases anything any more.
    drop(a);
    let died = Instant::now();

    let (view_b, _keep_b) = RingView::fixed(Ring::new([member("b")]));
    let b = router("b", &view_b, &leases, fresh_heartbeat()).await;
    let permit = b.permit(&room).await.unwrap();
    let waited = died.elapsed();
    let c = config();
    assert_eq!(permit.epoch, 2);
    assert!(
        waited >= c.session_ttl + c.drift + c.settle - Duration::from_millis(150),
        "took over after {waited:?}, before a's session could be over"
    );
    assert!(waited < Duration::from_secs(3), "took {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_cut_off_from_the_cluster_stops_acknowledging() {
    let leases = Arc::new(MemoryLeases::new());
    let (view, _keep) = RingView::fixed(Ring::new([member("a")]));
    // Membership heartbeats stopped long ago (NATS unreachable).
    let beat = Arc::new(AtomicU64::new(now_ms()));
    let a = router("a", &view, &leases, beat.clone()).await;
    let room = RoomId::new("island").unwrap();
    let permit = a.permit(&room).await.unwrap();
    assert!(permit.valid());
    beat.store(0, Ordering::Release);
    tokio::time::sleep(config().session_ttl + Duration::from_millis(200)).await;
    assert!(
        !permit.valid(),
        "an append finishing now must not be acknowledged"
    );
    drop(permit);
    assert!(matches!(
        a.permit(&room).await,
        Err(RouterError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_everything_for_an_immediate_take_over() {
    let leases = Arc::new(MemoryLeases::new());
    let (view_a, _keep_a) = RingView::fixed(Ring::new([member("a")]));
    let a = router("a", &view_a, &leases, fresh_heartbeat()).await;
    let room = RoomId::new("graceful").unwrap();
    drop(a.permit(&room).await.unwrap());
    a.shutdown().await;

    let (view_b, _keep_b) = RingView::fixed(Ring::new([member("b")]));
    let b = router("b", &view_b, &leases, fresh_heartbeat()).await;
    let started = Instant::now();
    assert_eq!(b.permit(&room).await.unwrap().epoch, 2);
    assert!(started.elapsed() < Duration::from_millis(200));
}
