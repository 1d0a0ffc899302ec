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
            room: room(r),
            from: user(from),
            client_msg_id: cmid.map(str::to_owned),
            body: body.to_owned(),
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
            user: user("reader"),
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
                        room: room("busy"),
                        from: user(&format!("u{s}")),
                        client_msg_id: Some(format!("c{i}")),
                        body: format!("{s}/{i}"),
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
            room: room(r),
            from: user("alice"),
            client_msg_id: Some(format!("c{i}")),
            body: format!("{r}/{i}"),
        });
    }
    reqs.push(SendRequest {
        room: room("batch-a"),
        from: user("alice"),
        client_msg_id: Some("c1".into()),
        body: "batch-a/1".into(),
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
        if let BusEvent::Delivery(d) = ev {
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
            user: user("bob"),
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
            user: user("bob"),
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
            user: user("bob"),
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
                user: user("bob"),
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
            kind: "typing.start".into(),
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
                    "kind": "typing.start", "data": {"until": 3}})
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
        kind: kind.into(),
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
            matches!(err, RouterError::BadRequest(_)),
            "{kind:?}/{data:.20}: {err:?}"
        );
    }
}
