//! The hub repairs a lossy bus from the log: deliveries lost on the way (core NATS is at most
//! once) are backfilled before anything newer, and a backfill that reads past the hole never
//! makes the gateway deliver a message twice. The bus here drops chosen seqs on purpose, the
//! way NATS loses messages across a reconnect.

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    RoomId, UserId,
    bus::{BusError, Delivery, DeliveryBus, Subscription, memory::MemoryBus},
    router::{
        EventRequest, HistoryPage, HistoryRequest, JoinReply, JoinRequest, MembersPage, OnlinePage,
        PresenceSync, RoomSummary, RouterClient, RouterError, SendAck, SendRequest,
    },
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

/// A router on an embedded store in `dir`, publishing on `bus`.
fn router_on(dir: &tempfile::TempDir, bus: &Arc<LossyBus>) -> Arc<Router> {
    let store = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).unwrap());
    Arc::new(Router::new(
        store.clone(),
        store,
        bus.clone(),
        Default::default(),
    ))
}

/// A gateway on `router` and `bus`: its WebSocket URL, and a minter of tokens it accepts.
async fn gateway_on(
    router: Arc<dyn RouterClient>,
    bus: &Arc<LossyBus>,
) -> (String, impl Fn(&str) -> String) {
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
    let token = move |u: &str| auth.mint(&UserId::new(u).unwrap(), Duration::from_secs(60));
    (url, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_deliveries_are_backfilled_in_order_and_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(LossyBus::default());
    let (url, token) = gateway_on(router_on(&dir, &bus), &bus).await;

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

/// The router as it is, except that its history never returns the seqs in `hole`: a hole in
/// the log that no read can fill. Counts history calls.
struct HoleyRouter {
    inner: Arc<Router>,
    hole: Mutex<HashSet<u64>>,
    history_calls: AtomicU64,
}

#[async_trait]
impl RouterClient for HoleyRouter {
    async fn send_batch(&self, reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        self.inner.send_batch(reqs).await
    }
    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError> {
        self.inner.join(req).await
    }
    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        self.history_calls.fetch_add(1, Ordering::Relaxed);
        let mut page = self.inner.history(req).await?;
        let hole = self.hole.lock().unwrap().clone();
        page.messages.retain(|m| !hole.contains(&m.seq));
        Ok(page)
    }
    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        self.inner.publish_event(req).await
    }
    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError> {
        self.inner.typing(room, user, typing).await
    }
    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError> {
        self.inner.mark_read(room, user, seq).await
    }
    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError> {
        self.inner.presence(room, sync).await
    }
    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError> {
        self.inner.online(room, user, after, limit).await
    }
    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError> {
        self.inner.members(room, user, after, limit).await
    }
    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        self.inner.user_rooms(user).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_no_read_can_fill_makes_subscribers_resume_instead_of_a_busy_loop() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(LossyBus::default());
    let router = Arc::new(HoleyRouter {
        inner: router_on(&dir, &bus),
        hole: Mutex::new(HashSet::new()),
        history_calls: AtomicU64::new(0),
    });
    let (url, token) = gateway_on(router.clone(), &bus).await;

    let mut reader = Client::connect_with_header(&url, &token("reader")).await;
    reader.expect("ready").await;
    reader.join("holey", None).await;
    let mut writer = Client::connect_with_header(&url, &token("writer")).await;
    writer.expect("ready").await;
    writer.join("holey", None).await;
    writer.send("holey", "c1", "one").await;
    assert_eq!(reader.msgs(1).await[0]["seq"], 1);

    // 2 is lost on the bus and missing from every read; 3 reveals the hole.
    bus.lose.lock().unwrap().insert(2);
    router.hole.lock().unwrap().insert(2);
    writer.send("holey", "c2", "two").await;
    writer.send("holey", "c3", "three").await;
    // The reader is told to resume (close 1013) after a few attempts, not left waiting while
    // the gateway asks the router for the same page without end.
    let started = std::time::Instant::now();
    assert_eq!(reader.closed_with().await, 1013);
    let calls = router.history_calls.load(Ordering::Relaxed);
    assert!(calls <= 10, "{calls} history reads for one hole");
    println!(
        "a hole the log cannot fill: {calls} reads, subscribers resumed after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // Every subscriber of the room here resumes, the writer too.
    assert_eq!(writer.closed_with().await, 1013);
    // The room is served again on this gateway: new joins are answered and new messages flow.
    let mut again = Client::connect_with_header(&url, &token("reader")).await;
    again.expect("ready").await;
    again.join("holey", None).await;
    let mut writer = Client::connect_with_header(&url, &token("writer")).await;
    writer.expect("ready").await;
    writer.join("holey", None).await;
    writer.send("holey", "c4", "four").await;
    assert_eq!(again.msgs(1).await[0]["seq"], 4);
}
