//! The protocol v1 suite, run against both wirings: tests/protocol.rs (standalone) and
//! tests/cluster_protocol.rs (two gateways, two routers, NATS, Cassandra). In the cluster
//! wiring consecutive clients connect to different gateways.

use crate::common::*;
use crate::wiring::{start, start_with};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_the_same_order() {
    let server = start_with(unthrottled()).await;
    let mut a = server.joined("alice", "general").await;
    let mut b = server.joined("bob", "general").await;
    let (mut wa, mut wb) = (server.client("alice").await, server.client("bob").await);
    wa.join("general", None).await;
    wb.join("general", None).await;
    let writers = tokio::join!(
        async {
            for i in 0..50 {
                assert_eq!(
                    wa.send("general", &format!("a{i}"), &format!("from alice {i}"))
                        .await["type"],
                    "ack"
                );
            }
        },
        async {
            for i in 0..50 {
                assert_eq!(
                    wb.send("general", &format!("b{i}"), &format!("from bob {i}"))
                        .await["type"],
                    "ack"
                );
            }
        }
    );
    let _ = writers;
    let seen_a = a.msgs(100).await;
    let seen_b = b.msgs(100).await;
    assert_eq!(seqs(&seen_a), (1..=100).collect::<Vec<_>>());
    let order = |v: &[serde_json::Value]| {
        v.iter()
            .map(|m| (m["seq"].clone(), m["body"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&seen_a), order(&seen_b), "both clients see one order");
    a.assert_quiet(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_get_gapless_seqs() {
    let server = start_with(unthrottled()).await;
    let mut tasks = Vec::new();
    for s in 0..6 {
        let mut c = server.joined(&format!("u{s}"), "busy").await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..30 {
                let ack = c.send("busy", &format!("c{i}"), "x").await;
                assert_eq!(ack["type"], "ack", "{ack}");
                seqs.push(ack["seq"].as_u64().unwrap());
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=180).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_since_after_reconnect() {
    let server = start_with(unthrottled()).await;
    let mut reader = server.client("reader").await;
    let joined = reader.join("resume", Some(0)).await;
    assert_eq!(joined["last_seq"], 0);
    let mut writer = server.joined("writer", "resume").await;
    for i in 0..5 {
        writer
            .send("resume", &format!("c{i}"), &format!("m{i}"))
            .await;
    }
    let first = reader.msgs(5).await;
    assert_eq!(seqs(&first), [1, 2, 3, 4, 5]);
    drop(reader); // connection lost
    for i in 5..12 {
        writer
            .send("resume", &format!("c{i}"), &format!("m{i}"))
            .await;
    }
    let mut back = server.client("reader").await;
    let joined = back.join("resume", Some(5)).await;
    assert_eq!(joined["last_seq"], 12);
    let missed = back.msgs(7).await;
    assert_eq!(seqs(&missed), (6..=12).collect::<Vec<_>>());
    assert_eq!(missed[0]["body"], "m5");
    writer.send("resume", "c12", "live").await;
    let live = back.msgs(1).await;
    assert_eq!(live[0]["seq"], 13);
    assert_eq!(live[0]["body"], "live");
    back.assert_quiet(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_client_msg_id_returns_the_same_seq_and_delivers_nothing_new() {
    let server = start().await;
    let mut watcher = server.joined("watcher", "idem").await;
    let mut c = server.joined("alice", "idem").await;
    let first = c.send("idem", "c-1", "hi").await;
    assert_eq!(first["type"], "ack");
    assert_eq!(first["client_msg_id"], "c-1");
    assert!(first.get("duplicate").is_none());
    let again = c.send("idem", "c-1", "hi").await;
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["ts"], first["ts"]);
    assert_eq!(again["duplicate"], true);
    // Also across connections of the same user (a reconnecting client).
    let mut c2 = server.joined("alice", "idem").await;
    let third = c2.send("idem", "c-1", "hi").await;
    assert_eq!(third["seq"], first["seq"]);
    let got = watcher.msgs(1).await;
    assert_eq!(got[0]["seq"], first["seq"]);
    assert_eq!(got[0]["from"], "alice");
    watcher.assert_quiet(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_both_ways() {
    let server = start_with(unthrottled()).await;
    let mut c = server.joined("alice", "hist").await;
    for i in 1..=120 {
        c.send("hist", &format!("c{i}"), &format!("m{i}")).await;
    }
    let latest = c
        .call(json!({"type":"history","room":"hist","limit":50}))
        .await;
    assert_eq!(latest["type"], "history");
    let msgs = latest["messages"].as_array().unwrap();
    assert_eq!(seqs(msgs), (71..=120).collect::<Vec<_>>());
    assert_eq!(latest["has_more"], true);
    let older = c
        .call(json!({"type":"history","room":"hist","before":71,"limit":100}))
        .await;
    let msgs = older["messages"].as_array().unwrap();
    assert_eq!(seqs(msgs), (1..=70).collect::<Vec<_>>());
    assert_eq!(older["has_more"], false);
    assert_eq!(msgs[0]["body"], "m1");
    let newer = c
        .call(json!({"type":"history","room":"hist","after":100,"limit":10}))
        .await;
    assert_eq!(
        seqs(newer["messages"].as_array().unwrap()),
        (101..=110).collect::<Vec<_>>()
    );
    assert_eq!(newer["has_more"], true);
    let end = c
        .call(json!({"type":"history","room":"hist","after":120}))
        .await;
    assert!(end["messages"].as_array().unwrap().is_empty());
    assert_eq!(end["has_more"], false);
    // History of a room not joined is readable (all rooms are public for now).
    let mut other = server.client("bob").await;
    let h = other
        .call(json!({"type":"history","room":"hist","limit":1}))
        .await;
    assert_eq!(seqs(h["messages"].as_array().unwrap()), [120]);
}

/// A joiner replaying from 0 while others send must see every seq exactly once, in order,
/// across the hand-over from backlog to live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_backlog_while_others_send_has_no_gap_and_no_duplicate() {
    let server = start_with(unthrottled()).await;
    let mut writer = server.joined("writer", "race").await;
    for i in 0..150 {
        writer.send("race", &format!("pre{i}"), "before").await;
    }
    let total = 450u64;
    let flood = tokio::spawn(async move {
        for i in 150..total {
            let ack = writer.send("race", &format!("c{i}"), "during").await;
            assert_eq!(ack["type"], "ack");
        }
        writer
    });
    let mut joiners = Vec::new();
    for j in 0..3 {
        let mut c = server.client(&format!("joiner{j}")).await;
        tokio::time::sleep(std::time::Duration::from_millis(20 * j)).await;
        let joined = c.join("race", Some(0)).await;
        assert!(joined["last_seq"].as_u64().unwrap() >= 150);
        joiners.push(c);
    }
    let _writer = flood.await.unwrap();
    for mut c in joiners {
        let got = c.msgs(total as usize).await;
        assert_eq!(seqs(&got), (1..=total).collect::<Vec<_>>());
        c.assert_quiet(200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_stops_delivery_and_rejoin_works() {
    let server = start().await;
    let mut a = server.joined("alice", "room-l").await;
    let mut b = server.joined("bob", "room-l").await;
    let left = a.call(json!({"type":"leave","room":"room-l"})).await;
    assert_eq!(left["type"], "left");
    assert_eq!(left["room"], "room-l");
    b.send("room-l", "x1", "after leave").await;
    a.assert_quiet(200).await;
    let joined = a.join("room-l", Some(0)).await;
    assert_eq!(joined["last_seq"], 1);
    assert_eq!(a.msgs(1).await[0]["body"], "after leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_receives_its_own_message_and_ack_carries_seq_and_ts() {
    let server = start().await;
    let mut c = server.joined("alice", "echo").await;
    let mut skipped = Vec::new();
    let ack = c
        .request(
            json!({"type":"send","room":"echo","client_msg_id":"c-1","body":"hi"}),
            &mut skipped,
        )
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["room"], "echo");
    assert_eq!(ack["seq"], 1);
    let ts = ack["ts"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        ts <= now && now - ts < 60_000,
        "ts is milliseconds since the epoch"
    );
    let msg = match skipped.pop() {
        Some(m) => m,
        None => c.expect("msg").await,
    };
    assert_eq!(
        msg,
        json!({"type":"msg","room":"echo","seq":1,"from":"alice","body":"hi","client_msg_id":"c-1","ts":ts})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_without_client_msg_id_is_accepted_but_not_deduplicated() {
    let server = start().await;
    let mut c = server.joined("alice", "plain").await;
    let a = c
        .call(json!({"type":"send","room":"plain","body":"one"}))
        .await;
    let b = c
        .call(json!({"type":"send","room":"plain","body":"one"}))
        .await;
    assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(1), Some(2)));
    assert!(a.get("client_msg_id").is_none());
}
