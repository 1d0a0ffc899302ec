//! Every RouterClient call crosses a real gRPC socket intact: a recording stub router behind
//! RouterGrpc sees exactly the request the gateway side made, the gateway side gets exactly
//! the reply (or the error) the stub gave, and malformed requests from the network are refused
//! before they reach the router. Needs no router, so it checks the wire on its own; the
//! conformance test checks the real router behind it.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    Attachment, Ext, Json, Kind, Message, Role, RoomId, UserId, Visibility,
    router::{
        EventRequest, HistoryAnchor, HistoryPage, HistoryRequest, JoinReply, JoinRequest,
        MemberInfo, MembersPage, OnlinePage, PresenceSync, RoomSummary, RouterClient, RouterError,
        SendAck, SendRequest,
    },
};
use chorus_router_grpc::{GrpcRouterClient, RouterGrpc, pb};
use tonic::{Code, transport::server::TcpIncoming};

fn room(s: &str) -> RoomId {
    RoomId::new(s).unwrap()
}

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// What the stub was asked, as it received it.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Send(Vec<SendRequest>),
    Join(JoinRequest),
    History(HistoryRequest),
    Event(EventRequest),
    Typing(RoomId, UserId, bool),
    MarkRead(RoomId, UserId, u64),
    Presence(RoomId, PresenceSync),
    Online(RoomId, UserId, Option<UserId>, u32),
    Members(RoomId, UserId, Option<UserId>, u32),
    UserRooms(UserId),
}

/// Records every call; answers with the canned replies below, or with `fail` when set.
#[derive(Default)]
struct Stub {
    calls: Mutex<Vec<Call>>,
    fail: Mutex<Option<RouterError>>,
}

impl Stub {
    fn record(&self, call: Call) -> Result<(), RouterError> {
        self.calls.lock().unwrap().push(call);
        match self.fail.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn last(&self) -> Call {
        self.calls.lock().unwrap().last().cloned().expect("a call")
    }
}

fn rich_ext() -> Ext {
    Ext {
        kind: Kind::Event,
        reply_to: Some(4),
        attachments: vec![Attachment {
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            data: "aGk=".into(),
        }],
        event: Some("poll.vote".into()),
        data: Some(Json::parse(r#"{"choice":2}"#).unwrap()),
        ..Ext::default()
    }
}

fn backlog() -> Vec<Message> {
    vec![
        Message {
            ext: rich_ext(),
            count: 5,
            client_msg_id: Some("c-9".into()),
            ..Message::text(room("general"), 9, 1_000, user("alice"), "hi")
        },
        Message::text(room("general"), 10, 1_001, user("bob"), "yo"),
    ]
}

fn join_reply() -> JoinReply {
    JoinReply {
        last_seq: 10,
        backlog: backlog(),
        has_more: true,
        visibility: Some(Visibility::Private),
        online: online_page(),
    }
}

fn online_page() -> OnlinePage {
    OnlinePage {
        count: 3,
        users: vec![user("alice"), user("bob")],
        has_more: true,
    }
}

fn members_page() -> MembersPage {
    MembersPage {
        members: vec![
            MemberInfo {
                user: user("alice"),
                role: Role::Owner,
                muted_until: 0,
            },
            MemberInfo {
                user: user("bob"),
                role: Role::Member,
                muted_until: 99,
            },
        ],
        has_more: false,
    }
}

fn room_list() -> Vec<RoomSummary> {
    vec![
        RoomSummary {
            room: room("general"),
            role: Role::Moderator,
            visibility: None,
            last_seq: 10,
            read_seq: 7,
            unread: 2,
        },
        RoomSummary {
            room: room("dm:alice:bob"),
            role: Role::Member,
            visibility: Some(Visibility::Direct),
            last_seq: 3,
            read_seq: 3,
            unread: 0,
        },
    ]
}

/// A send's body names the error the stub gives it; anything else is acknowledged.
fn send_outcome(body: &str, i: usize) -> Result<SendAck, RouterError> {
    match body {
        "rate" => Err(RouterError::RateLimited {
            retry_after_ms: 250,
        }),
        "limit" => Err(RouterError::LimitExceeded("too many edits".into())),
        "taken" => Err(RouterError::Conflict("room exists".into())),
        "big" => Err(RouterError::TooLarge("body too large".into())),
        "moved" => Err(RouterError::NotOwner {
            ring_version: 42,
            owner: Some("router-b".into()),
        }),
        _ => Ok(SendAck {
            seq: i as u64 + 1,
            ts: 77,
            duplicate: i % 2 == 1,
        }),
    }
}

#[async_trait]
impl RouterClient for Stub {
    async fn send_batch(&self, reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        if let Err(e) = self.record(Call::Send(reqs.clone())) {
            return vec![Err(e); reqs.len()];
        }
        reqs.iter()
            .enumerate()
            .map(|(i, r)| send_outcome(&r.body, i))
            .collect()
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError> {
        self.record(Call::Join(req))?;
        Ok(join_reply())
    }

    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        self.record(Call::History(req))?;
        Ok(HistoryPage {
            messages: backlog(),
            has_more: false,
        })
    }

    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        self.record(Call::Event(req))
    }

    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError> {
        self.record(Call::Typing(room, user, typing))
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError> {
        self.record(Call::MarkRead(room, user, seq))
    }

    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError> {
        self.record(Call::Presence(room, sync))
    }

    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError> {
        self.record(Call::Online(room, user, after, limit))?;
        Ok(online_page())
    }

    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError> {
        self.record(Call::Members(room, user, after, limit))?;
        Ok(members_page())
    }

    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        self.record(Call::UserRooms(user))?;
        Ok(room_list())
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

async fn connect(addr: SocketAddr) -> GrpcRouterClient {
    GrpcRouterClient::connect(format!("http://{addr}"), Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_call_and_reply_crosses_the_wire_intact() {
    let stub = Arc::new(Stub::default());
    let client = connect(serve(stub.clone()).await).await;

    let sends = vec![
        SendRequest {
            trace: None,
            room: room("general"),
            from: user("alice"),
            client_msg_id: Some("c-1".into()),
            body: "hi".into(),
            ext: rich_ext(),
        },
        SendRequest::text(room("general"), user("alice"), None, "again".into()),
    ];
    let acks = client.send_batch(sends.clone()).await;
    assert_eq!(stub.last(), Call::Send(sends));
    assert_eq!(
        acks,
        vec![
            Ok(SendAck {
                seq: 1,
                ts: 77,
                duplicate: false
            }),
            Ok(SendAck {
                seq: 2,
                ts: 77,
                duplicate: true
            }),
        ]
    );

    for reader in [None, Some(user("bob"))] {
        let join = JoinRequest {
            room: room("general"),
            user: reader.clone(),
            since: Some(8),
            limit: 50,
        };
        assert_eq!(client.join(join.clone()).await.unwrap(), join_reply());
        assert_eq!(stub.last(), Call::Join(join));

        let history = HistoryRequest {
            room: room("general"),
            user: reader,
            anchor: HistoryAnchor::Before(11),
            limit: 2,
        };
        let page = client.history(history.clone()).await.unwrap();
        assert_eq!(page.messages, backlog(), "ext and count survive");
        assert_eq!(stub.last(), Call::History(history));
    }

    let event = EventRequest {
        room: room("general"),
        from: user("alice"),
        event: "cursor.move".into(),
        data: r#"{"x":1}"#.into(),
    };
    client.publish_event(event.clone()).await.unwrap();
    assert_eq!(stub.last(), Call::Event(event));

    for typing in [true, false] {
        client
            .typing(room("general"), user("alice"), typing)
            .await
            .unwrap();
        assert_eq!(
            stub.last(),
            Call::Typing(room("general"), user("alice"), typing)
        );
    }

    client
        .mark_read(room("general"), user("bob"), u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        stub.last(),
        Call::MarkRead(room("general"), user("bob"), u64::MAX)
    );

    for full in [true, false] {
        let sync = PresenceSync {
            gateway: "gw-1/0123".into(),
            full,
            users: vec![(user("alice"), 2), (user("bob"), 0)],
        };
        client
            .presence(room("general"), sync.clone())
            .await
            .unwrap();
        assert_eq!(stub.last(), Call::Presence(room("general"), sync));
    }

    for after in [None, Some(user("alice"))] {
        let page = client
            .online(room("general"), user("bob"), after.clone(), 20)
            .await
            .unwrap();
        assert_eq!(page, online_page());
        assert_eq!(
            stub.last(),
            Call::Online(room("general"), user("bob"), after.clone(), 20)
        );

        let page = client
            .members(room("general"), user("bob"), after.clone(), 30)
            .await
            .unwrap();
        assert_eq!(page, members_page());
        assert_eq!(
            stub.last(),
            Call::Members(room("general"), user("bob"), after, 30)
        );
    }

    assert_eq!(client.user_rooms(user("bob")).await.unwrap(), room_list());
    assert_eq!(stub.last(), Call::UserRooms(user("bob")));
}

#[tokio::test]
async fn refusals_keep_their_kind_per_send_and_per_call() {
    let stub = Arc::new(Stub::default());
    let client = connect(serve(stub.clone()).await).await;

    let bodies = ["rate", "limit", "taken", "big", "moved", "fine"];
    let sends = bodies
        .iter()
        .map(|b| SendRequest::text(room("general"), user("alice"), None, (*b).into()))
        .collect();
    let results = client.send_batch(sends).await;
    let expected: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| send_outcome(b, i))
        .collect();
    assert_eq!(results, expected);

    let errors = [
        RouterError::RateLimited {
            retry_after_ms: 1_500,
        },
        RouterError::LimitExceeded("too many members".into()),
        RouterError::Conflict("room exists".into()),
        RouterError::TooLarge("too big".into()),
        RouterError::Forbidden("not a member".into()),
        RouterError::NotFound("no such room".into()),
        RouterError::BadRequest("limit is 0".into()),
        RouterError::NotOwner {
            ring_version: 9,
            owner: None,
        },
    ];
    for e in errors {
        *stub.fail.lock().unwrap() = Some(e.clone());
        let got = client
            .online(room("general"), user("bob"), None, 10)
            .await
            .unwrap_err();
        assert_eq!(got, e, "online");
        let got = client
            .typing(room("general"), user("bob"), true)
            .await
            .unwrap_err();
        assert_eq!(got, e, "typing");
        let got = client.user_rooms(user("bob")).await.unwrap_err();
        assert_eq!(got, e, "user_rooms");
    }
    *stub.fail.lock().unwrap() = Some(RouterError::Overloaded("queue full".into()));
    let got = client.mark_read(room("general"), user("bob"), 3).await;
    assert!(matches!(got, Err(RouterError::Overloaded(_))), "{got:?}");
}

#[tokio::test]
async fn malformed_requests_never_reach_the_router() {
    let stub = Arc::new(Stub::default());
    let addr = serve(stub.clone()).await;
    let mut raw = pb::router_client::RouterClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let send = |ext_json: &str, from: &str| pb::SendBatchRequest {
        sends: vec![pb::SendRequest {
            room: "general".into(),
            from: from.into(),
            client_msg_id: None,
            body: "x".into(),
            ext_json: ext_json.into(),
            traceparent: String::new(),
        }],
    };
    let refused = [
        raw.send_batch(send("{oops", "alice")).await.map(|_| ()),
        raw.send_batch(send(r#"{"kind":"nope"}"#, "alice"))
            .await
            .map(|_| ()),
        raw.send_batch(send("", "not a user")).await.map(|_| ()),
        raw.join(pb::JoinRequest {
            room: "general".into(),
            user: "b o b".into(),
            since: None,
            limit: 1,
        })
        .await
        .map(|_| ()),
        raw.typing(pb::TypingRequest {
            room: "".into(),
            user: "bob".into(),
            typing: true,
        })
        .await
        .map(|_| ()),
        raw.mark_read(pb::MarkReadRequest {
            room: "general".into(),
            user: "".into(),
            seq: 1,
        })
        .await
        .map(|_| ()),
        raw.presence(pb::PresenceRequest {
            room: "general".into(),
            gateway: "gw".into(),
            full: true,
            users: vec![pb::PresenceUser {
                user: "bad user".into(),
                connections: 1,
            }],
        })
        .await
        .map(|_| ()),
        raw.online(pb::OnlineRequest {
            room: "general".into(),
            user: "bob".into(),
            after: "no/slash".into(),
            limit: 1,
        })
        .await
        .map(|_| ()),
        raw.members(pb::MembersRequest {
            room: "bad room!".into(),
            user: "bob".into(),
            after: "".into(),
            limit: 1,
        })
        .await
        .map(|_| ()),
        raw.user_rooms(pb::UserRoomsRequest { user: "".into() })
            .await
            .map(|_| ()),
    ];
    for (i, r) in refused.into_iter().enumerate() {
        let status = r.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "request {i}: {status:?}"
        );
    }
    assert!(
        stub.calls.lock().unwrap().is_empty(),
        "the router saw {:?}",
        stub.calls.lock().unwrap()
    );
}
