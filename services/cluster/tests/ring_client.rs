//! The ring client sends each new call to the right router: room-scoped calls to the room's
//! owner, a user's room list to the owner of the user's ring key; idempotent calls are retried
//! after an unavailable router or a not-owner refusal.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use chorus_cluster::{
    client::{RingClientConfig, RingRouterClient},
    membership::RingView,
    ring::{Member, Ring},
};
use chorus_core::{
    RoomId, UserId,
    router::{
        EventRequest, HistoryPage, HistoryRequest, JoinReply, JoinRequest, MembersPage, OnlinePage,
        PresenceSync, RoomSummary, RouterClient, RouterError, SendAck, SendRequest,
    },
};
use chorus_router_grpc::RouterGrpc;
use tonic::transport::server::TcpIncoming;

/// Records `(method, room or user)`; fails the next calls with the queued errors.
#[derive(Default)]
struct Stub {
    calls: Mutex<Vec<(&'static str, String)>>,
    fail: Mutex<Vec<RouterError>>,
}

impl Stub {
    fn hit(&self, what: &'static str, key: &str) -> Result<(), RouterError> {
        self.calls.lock().unwrap().push((what, key.to_owned()));
        match self.fail.lock().unwrap().pop() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

#[async_trait]
impl RouterClient for Stub {
    async fn send_batch(&self, _: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        unreachable!()
    }
    async fn join(&self, _: JoinRequest) -> Result<JoinReply, RouterError> {
        unreachable!()
    }
    async fn history(&self, _: HistoryRequest) -> Result<HistoryPage, RouterError> {
        unreachable!()
    }
    async fn publish_event(&self, _: EventRequest) -> Result<(), RouterError> {
        unreachable!()
    }
    async fn typing(&self, room: RoomId, _: UserId, _: bool) -> Result<(), RouterError> {
        self.hit("typing", room.as_str())
    }
    async fn mark_read(&self, room: RoomId, _: UserId, _: u64) -> Result<(), RouterError> {
        self.hit("mark_read", room.as_str())
    }
    async fn presence(&self, room: RoomId, _: PresenceSync) -> Result<(), RouterError> {
        self.hit("presence", room.as_str())
    }
    async fn online(
        &self,
        room: RoomId,
        _: UserId,
        _: Option<UserId>,
        _: u32,
    ) -> Result<OnlinePage, RouterError> {
        self.hit("online", room.as_str())?;
        Ok(OnlinePage::default())
    }
    async fn members(
        &self,
        room: RoomId,
        _: UserId,
        _: Option<UserId>,
        _: u32,
    ) -> Result<MembersPage, RouterError> {
        self.hit("members", room.as_str())?;
        Ok(MembersPage::default())
    }
    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        self.hit("user_rooms", user.as_str())?;
        Ok(Vec::new())
    }
}

async fn serve(stub: Arc<Stub>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouterGrpc::new(stub).into_service())
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

#[tokio::test]
async fn new_calls_go_to_the_owner_and_retry_safely() {
    let (a, b) = (Arc::new(Stub::default()), Arc::new(Stub::default()));
    let ring = Ring::new([
        Member {
            name: "router-a".into(),
            addr: format!("http://{}", serve(a.clone()).await),
        },
        Member {
            name: "router-b".into(),
            addr: format!("http://{}", serve(b.clone()).await),
        },
    ]);
    let version = ring.version();
    let owned_by = |name: &str| {
        (0..)
            .map(|i| RoomId::new(&format!("room-{i}")).unwrap())
            .find(|r| ring.owner(r).unwrap().name == name)
            .unwrap()
    };
    let (ra, rb) = (owned_by("router-a"), owned_by("router-b"));
    let user_of = |name: &str| {
        (0..)
            .map(|i| UserId::new(&format!("user-{i}")).unwrap())
            .find(|u| ring.owner(&RoomId::new(u.as_str()).unwrap()).unwrap().name == name)
            .unwrap()
    };
    let (ua, ub) = (user_of("router-a"), user_of("router-b"));
    let (view, _keep) = RingView::fixed(ring.clone());
    let client = RingRouterClient::new(view, RingClientConfig::default());
    let bob = UserId::new("bob").unwrap();

    for (room, owner, other) in [(&ra, &a, &b), (&rb, &b, &a)] {
        client
            .typing(room.clone(), bob.clone(), true)
            .await
            .unwrap();
        client
            .mark_read(room.clone(), bob.clone(), 3)
            .await
            .unwrap();
        let sync = PresenceSync {
            gateway: "gw".into(),
            full: true,
            users: vec![(bob.clone(), 1)],
        };
        client.presence(room.clone(), sync).await.unwrap();
        client
            .online(room.clone(), bob.clone(), None, 5)
            .await
            .unwrap();
        client
            .members(room.clone(), bob.clone(), None, 5)
            .await
            .unwrap();
        let r = room.to_string();
        assert_eq!(
            owner.take(),
            [
                ("typing", r.clone()),
                ("mark_read", r.clone()),
                ("presence", r.clone()),
                ("online", r.clone()),
                ("members", r)
            ]
        );
        assert!(other.take().is_empty());
    }
    for (user, owner, other) in [(&ua, &a, &b), (&ub, &b, &a)] {
        client.user_rooms(user.clone()).await.unwrap();
        assert_eq!(owner.take(), [("user_rooms", user.to_string())]);
        assert!(other.take().is_empty());
    }

    // Retried: an unavailable router, then a not-owner refusal from the same ring version.
    for e in [
        RouterError::Unavailable("db".into()),
        RouterError::NotOwner {
            ring_version: version,
            owner: None,
        },
    ] {
        a.fail.lock().unwrap().push(e.clone());
        client.mark_read(ra.clone(), bob.clone(), 4).await.unwrap();
        assert_eq!(a.take().len(), 2, "{e:?} was retried");
        a.fail.lock().unwrap().push(e.clone());
        client.user_rooms(ua.clone()).await.unwrap();
        assert_eq!(a.take().len(), 2, "{e:?} was retried");
        a.fail.lock().unwrap().push(e.clone());
        client.typing(ra.clone(), bob.clone(), false).await.unwrap();
        assert_eq!(a.take().len(), 2, "{e:?} was retried");
    }
    // A batch of presence reports: one call per owner, each report to its room's owner; one
    // the owner could not take goes again on its own.
    let sync = |n| PresenceSync {
        gateway: "gw".into(),
        full: false,
        users: vec![(bob.clone(), n)],
    };
    a.fail
        .lock()
        .unwrap()
        .push(RouterError::Unavailable("busy".into()));
    let results = client
        .presence_batch(vec![
            (ra.clone(), sync(1)),
            (rb.clone(), sync(2)),
            (ra.clone(), sync(0)),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let (r_a, r_b) = (ra.to_string(), rb.to_string());
    assert_eq!(
        a.take(),
        [
            ("presence", r_a.clone()),
            ("presence", r_a.clone()),
            ("presence", r_a.clone()),
            ("presence", r_a)
        ],
        "the refused report went again, and the room's later one after it"
    );
    assert_eq!(b.take(), [("presence", r_b)]);

    // Refusals go back at once.
    a.fail
        .lock()
        .unwrap()
        .push(RouterError::Forbidden("no".into()));
    let e = client
        .members(ra.clone(), bob.clone(), None, 5)
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::Forbidden(_)));
    assert_eq!(a.take().len(), 1);
}
