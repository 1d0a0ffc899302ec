//! The [`RouterClient`](crate::router::RouterClient) suite.

use std::{collections::BTreeSet, time::Duration};

use futures_util::StreamExt;

use super::{RouterUnderTest, room, user};
use crate::{
    Message,
    bus::{BusEvent, EPHEMERAL_SEQ},
    router::{
        EventRequest, HistoryAnchor, HistoryRequest, JoinRequest, RouterError, SendAck, SendRequest,
    },
};

async fn send(t: &RouterUnderTest, r: &str, from: &str, cmid: Option<&str>, body: &str) -> SendAck {
    t.router
        .send(SendRequest {
            trace: None,
            room: room(r),
            from: user(from),
            client_msg_id: cmid.map(str::to_owned),
            body: body.to_owned(),
            ext: Default::default(),
        })
        .await
        .expect("send is acknowledged")
}

async fn history(
    t: &RouterUnderTest,
    r: &str,
    anchor: HistoryAnchor,
    limit: u32,
) -> (Vec<Message>, bool) {
    let page = t
        .router
        .history(HistoryRequest {
            room: room(r),
            user: None, // the gateway's own read: every room
            anchor,
            limit,
        })
        .await
        .expect("history is served");
    (page.messages, page.has_more)
}

async fn whole_log(t: &RouterUnderTest, r: &str) -> Vec<Message> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = history(t, r, HistoryAnchor::After(after), 100).await;
        if let Some(last) = page.last() {
            after = last.seq;
        }
        all.extend(page);
        if !more {
            return all;
        }
    }
}

fn seqs(ms: &[Message]) -> Vec<u64> {
    ms.iter().map(|m| m.seq).collect()
}

pub async fn concurrent_senders_get_gapless_seqs_from_one(t: &RouterUnderTest) {
    const SENDERS: usize = 8;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let router = t.router.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..EACH {
                let ack = router
                    .send(SendRequest {
                        trace: None,
                        room: room("busy"),
                        from: user(&format!("u{s}")),
                        client_msg_id: Some(format!("c{i}")),
                        body: format!("{s}/{i}"),
                        ext: Default::default(),
                    })
                    .await
                    .unwrap();
                acks.push((ack.seq, format!("{s}/{i}")));
            }
            acks
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        let acks = task.await.unwrap();
        // One sender waiting for each ack sees its own messages in increasing seq order.
        assert!(acks.windows(2).all(|w| w[0].0 < w[1].0));
        acked.extend(acks);
    }
    acked.sort();
    let total = (SENDERS * EACH) as u64;
    assert_eq!(
        acked.iter().map(|a| a.0).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let log = whole_log(t, "busy").await;
    assert_eq!(seqs(&log), (1..=total).collect::<Vec<_>>());
    for (m, (seq, body)) in log.iter().zip(&acked) {
        assert_eq!(
            (&m.seq, &m.body),
            (seq, body),
            "the log holds what was acknowledged"
        );
    }
}

pub async fn send_batch_keeps_each_rooms_order(t: &RouterUnderTest) {
    // Interleaved rooms, and a repeat of an earlier id inside the batch.
    let mut reqs = Vec::new();
    for i in 0..12 {
        let r = if i % 3 == 0 { "batch-b" } else { "batch-a" };
        reqs.push(SendRequest {
            trace: None,
            room: room(r),
            from: user("alice"),
            client_msg_id: Some(format!("c{i}")),
            body: format!("{r}/{i}"),
            ext: Default::default(),
        });
    }
    reqs.push(SendRequest {
        trace: None,
        room: room("batch-a"),
        from: user("alice"),
        client_msg_id: Some("c1".into()),
        body: "batch-a/1".into(),
        ext: Default::default(),
    });
    let results = t.router.send_batch(reqs).await;
    assert_eq!(results.len(), 13);
    let acks: Vec<SendAck> = results
        .into_iter()
        .map(|r| r.expect("acknowledged"))
        .collect();
    let a: Vec<u64> = (0..12)
        .filter(|i| i % 3 != 0)
        .map(|i| acks[i].seq)
        .collect();
    let b: Vec<u64> = (0..12)
        .filter(|i| i % 3 == 0)
        .map(|i| acks[i].seq)
        .collect();
    assert_eq!(a, (1..=8).collect::<Vec<_>>(), "room a in request order");
    assert_eq!(b, (1..=4).collect::<Vec<_>>(), "room b in request order");
    assert!(acks[12].duplicate && acks[12].seq == acks[1].seq);
    let log = whole_log(t, "batch-a").await;
    let bodies: Vec<&str> = log.iter().map(|m| m.body.as_str()).collect();
    let expected: Vec<String> = (0..12)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("batch-a/{i}"))
        .collect();
    assert_eq!(bodies, expected);
}

pub async fn resend_with_same_client_msg_id_is_idempotent(t: &RouterUnderTest) {
    let mut sub = t.bus.subscribe(&room("idem")).await.unwrap();
    let first = send(t, "idem", "alice", Some("c-1"), "hi").await;
    assert!(!first.duplicate);
    let other = send(t, "idem", "alice", Some("c-2"), "next").await;
    let again = send(t, "idem", "alice", Some("c-1"), "hi").await;
    assert!(again.duplicate);
    assert_eq!((again.seq, again.ts), (first.seq, first.ts));
    assert_eq!(seqs(&whole_log(t, "idem").await), [first.seq, other.seq]);
    // Exactly two deliveries, and nothing for the duplicate.
    let mut delivered = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        // Sequenced deliveries only: read receipts of the senders are relayed too.
        if let BusEvent::Delivery(d) = ev
            && d.seq != EPHEMERAL_SEQ
        {
            delivered.push(d.seq);
        }
    }
    assert_eq!(delivered, [first.seq, other.seq]);
}

pub async fn client_msg_ids_are_scoped_per_user(t: &RouterUnderTest) {
    let a = send(t, "scoped", "alice", Some("same"), "from alice").await;
    let b = send(t, "scoped", "bob", Some("same"), "from bob").await;
    assert!(!b.duplicate);
    assert_ne!(a.seq, b.seq);
    let c = send(t, "scoped-other", "alice", Some("same"), "elsewhere").await;
    assert!(!c.duplicate);
}

pub async fn acks_come_after_delivery_order_is_fixed(t: &RouterUnderTest) {
    let mut sub = t.bus.subscribe(&room("deliver")).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..30 {
        acked.push(
            send(
                t,
                "deliver",
                "alice",
                Some(&format!("d{i}")),
                &format!("m{i}"),
            )
            .await
            .seq,
        );
    }
    let mut delivered = Vec::new();
    while delivered.len() < acked.len() {
        match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
            Ok(Some(BusEvent::Delivery(d))) if d.seq == EPHEMERAL_SEQ => {} // receipts
            Ok(Some(BusEvent::Delivery(d))) => {
                let frame: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
                assert_eq!(frame["type"], "msg");
                assert_eq!(frame["seq"], d.seq);
                assert_eq!(frame["room"], "deliver");
                delivered.push(d.seq);
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    assert_eq!(delivered, acked, "deliveries follow seq order");
}

pub async fn join_returns_last_seq_and_paged_backlog(t: &RouterUnderTest) {
    for i in 0..12 {
        send(t, "joinable", "alice", None, &format!("m{i}")).await;
    }
    let join = |since, limit| {
        t.router.join(JoinRequest {
            room: room("joinable"),
            user: Some(user("bob")),
            since,
            limit,
        })
    };
    let live = join(None, 100).await.unwrap();
    assert_eq!(live.last_seq, 12);
    assert!(live.backlog.is_empty() && !live.has_more);
    let resumed = join(Some(7), 100).await.unwrap();
    assert_eq!(seqs(&resumed.backlog), [8, 9, 10, 11, 12]);
    assert!(!resumed.has_more);
    let paged = join(Some(0), 5).await.unwrap();
    assert_eq!(seqs(&paged.backlog), [1, 2, 3, 4, 5]);
    assert!(paged.has_more);
    let fresh = t
        .router
        .join(JoinRequest {
            room: room("never-used"),
            user: Some(user("bob")),
            since: Some(0),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(fresh.last_seq, 0);
    assert!(fresh.backlog.is_empty());
}

pub async fn history_pages_both_ways(t: &RouterUnderTest) {
    for i in 1..=25 {
        send(t, "paged", "alice", None, &format!("m{i}")).await;
    }
    let (page, more) = history(t, "paged", HistoryAnchor::Latest, 10).await;
    assert_eq!(seqs(&page), (16..=25).collect::<Vec<_>>());
    assert!(more);
    let (page, more) = history(t, "paged", HistoryAnchor::Before(16), 10).await;
    assert_eq!(seqs(&page), (6..=15).collect::<Vec<_>>());
    assert!(more);
    let (page, more) = history(t, "paged", HistoryAnchor::Before(6), 10).await;
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    assert!(!more);
    let (page, more) = history(t, "paged", HistoryAnchor::After(0), 10).await;
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    assert!(more);
    let (page, more) = history(t, "paged", HistoryAnchor::After(20), 10).await;
    assert_eq!(seqs(&page), (21..=25).collect::<Vec<_>>());
    assert!(!more);
    let mut walked = BTreeSet::new();
    let mut before = u64::MAX;
    loop {
        let (page, more) = history(t, "paged", HistoryAnchor::Before(before), 7).await;
        before = page.first().map_or(0, |m| m.seq);
        assert!(
            page.iter().all(|m| walked.insert(m.seq)),
            "no message twice"
        );
        if !more {
            break;
        }
    }
    assert_eq!(walked.len(), 25);
}

pub async fn timestamps_never_go_backwards(t: &RouterUnderTest) {
    let mut last = 0;
    for i in 0..20 {
        let ack = send(t, "clock", "alice", None, &format!("m{i}")).await;
        assert!(ack.ts >= last);
        assert!(
            ack.ts > 1_600_000_000_000,
            "ts is milliseconds since the epoch"
        );
        last = ack.ts;
    }
}

pub async fn bad_requests_are_refused(t: &RouterUnderTest) {
    send(t, "strict", "alice", None, "one").await;
    let err = t
        .router
        .join(JoinRequest {
            room: room("strict"),
            user: Some(user("bob")),
            since: Some(5),
            limit: 10,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, RouterError::BadRequest(_)),
        "since ahead of the log: {err:?}"
    );
    for limit in [0, 101] {
        let err = t
            .router
            .history(HistoryRequest {
                room: room("strict"),
                user: Some(user("bob")),
                anchor: HistoryAnchor::Latest,
                limit,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, RouterError::BadRequest(_)),
            "limit {limit}: {err:?}"
        );
    }
}

pub async fn events_reach_subscribers_and_are_not_stored(t: &RouterUnderTest) {
    let mut sub = t.bus.subscribe(&room("typing")).await.unwrap();
    t.router
        .publish_event(EventRequest {
            room: room("typing"),
            from: user("alice"),
            event: "typing.start".into(),
            data: r#"{"until":3}"#.into(),
        })
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        Ok(Some(BusEvent::Delivery(d))) => {
            assert_eq!(d.seq, EPHEMERAL_SEQ);
            let frame: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
            assert_eq!(
                frame,
                serde_json::json!({"type": "event", "room": "typing", "from": "alice",
                    "event": "typing.start", "data": {"until": 3}})
            );
        }
        other => panic!("expected the event, got {other:?}"),
    }
    // Not in the log, and the next message still gets seq 1.
    assert!(whole_log(t, "typing").await.is_empty());
    assert_eq!(send(t, "typing", "alice", None, "hi").await.seq, 1);
}

pub async fn bad_events_are_refused(t: &RouterUnderTest) {
    let event = |kind: &str, data: &str| EventRequest {
        room: room("bad-events"),
        from: user("alice"),
        event: kind.into(),
        data: data.into(),
    };
    for (kind, data) in [
        ("", "1"),
        ("Typing", "1"),
        ("typing start", "1"),
        (&"k".repeat(65), "1"),
        ("typing", "{not json"),
        ("typing", &format!("\"{}\"", "x".repeat(5000))),
    ] {
        let err = t.router.publish_event(event(kind, data)).await.unwrap_err();
        assert!(
            matches!(err, RouterError::BadRequest(_) | RouterError::TooLarge(_)),
            "{kind:?}/{data:.20}: {err:?}"
        );
    }
}

fn member_entry(r: &str, from: &str, change: crate::MemberChange) -> SendRequest {
    SendRequest {
        trace: None,
        room: room(r),
        from: user(from),
        client_msg_id: None,
        body: String::new(),
        ext: crate::Ext {
            kind: crate::Kind::Member,
            member: Some(change),
            ..Default::default()
        },
    }
}

fn change(action: crate::MemberAction, who: &str) -> crate::MemberChange {
    crate::MemberChange {
        action,
        user: user(who),
        role: None,
        until: None,
        visibility: None,
        members: Vec::new(),
        revoke: false,
    }
}

pub async fn private_rooms_are_enforced_at_the_router(t: &RouterUnderTest) {
    use crate::{MemberAction, Visibility};
    let mut create = change(MemberAction::Create, "alice");
    create.visibility = Some(Visibility::Private);
    create.members = vec![user("bob")];
    let ack = t
        .router
        .send(member_entry("vault", "alice", create))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    send(t, "vault", "bob", None, "members may send").await;

    let forbidden = |r: Result<(), RouterError>, what: &str| match r {
        Err(RouterError::Forbidden(_)) => {}
        other => panic!("{what}: expected forbidden, got {other:?}"),
    };
    let r = room("vault");
    let carol = || Some(user("carol"));
    let join = t
        .router
        .join(JoinRequest {
            room: r.clone(),
            user: carol(),
            since: Some(0),
            limit: 10,
        })
        .await;
    forbidden(join.map(|_| ()), "join");
    let hist = t
        .router
        .history(HistoryRequest {
            room: r.clone(),
            user: carol(),
            anchor: HistoryAnchor::Latest,
            limit: 10,
        })
        .await;
    forbidden(hist.map(|_| ()), "history");
    let sent = t
        .router
        .send(SendRequest {
            trace: None,
            room: r.clone(),
            from: user("carol"),
            client_msg_id: None,
            body: "let me in".into(),
            ext: Default::default(),
        })
        .await;
    forbidden(sent.map(|_| ()), "send");
    forbidden(
        t.router.typing(r.clone(), user("carol"), true).await,
        "typing",
    );
    forbidden(
        t.router.mark_read(r.clone(), user("carol"), 1).await,
        "mark_read",
    );
    let members = t.router.members(r.clone(), user("carol"), None, 10).await;
    forbidden(members.map(|_| ()), "members");
    let online = t.router.online(r.clone(), user("carol"), None, 10).await;
    forbidden(online.map(|_| ()), "online");
    let event = t
        .router
        .publish_event(EventRequest {
            room: r.clone(),
            from: user("carol"),
            event: "knock".into(),
            data: "1".into(),
        })
        .await;
    forbidden(event, "publish_event");
    let invite = t
        .router
        .send(member_entry(
            "vault",
            "carol",
            change(MemberAction::Invite, "carol"),
        ))
        .await;
    forbidden(invite.map(|_| ()), "self-invite");
    assert_eq!(
        seqs(&whole_log(t, "vault").await),
        [1, 2],
        "nothing was stored"
    );

    // Members read; the gateway's own reads (no user) always may.
    let page = t
        .router
        .history(HistoryRequest {
            room: r.clone(),
            user: Some(user("bob")),
            anchor: HistoryAnchor::Latest,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2);
    let members = t
        .router
        .members(r.clone(), user("bob"), None, 10)
        .await
        .unwrap();
    let names: Vec<&str> = members.members.iter().map(|m| m.user.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    // Bob's own message counts as read once his mark is written (the next presence tick).
    for attempt in 0.. {
        let rooms = t.router.user_rooms(user("bob")).await.unwrap();
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].room.as_str(), "vault");
        if rooms[0].unread == 0 {
            break;
        }
        assert!(attempt < 50, "bob's unread stayed {}", rooms[0].unread);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
