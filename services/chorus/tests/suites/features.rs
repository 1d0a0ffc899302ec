//! The chat features suite (docs/protocol.md), run against both wirings: tests/features.rs
//! (standalone) and tests/cluster_features.rs (two gateways, two routers, NATS, Cassandra).
//! In the cluster wiring consecutive clients connect to different gateways, so every relay
//! crosses gateways.

use std::time::Duration;

use crate::common::*;
use crate::wiring::start_full;
use chorus_gateway::GatewayConfig;
use chorus_router::RouterConfig;
use serde_json::{Value, json};

fn router() -> RouterConfig {
    let mut r = RouterConfig::default();
    r.live.typing_timeout = Duration::from_millis(800);
    r.live.interval = Duration::from_millis(100);
    r
}

async fn start() -> Server {
    start_full(unthrottled(), router()).await
}

/// Calls and asserts the reply type.
async fn ok(c: &mut Client, req: Value, kind: &str) -> Value {
    let f = c.call(req.clone()).await;
    assert_eq!(f["type"], kind, "{req} -> {f}");
    f
}

/// Calls and asserts an error with `code`.
async fn refused(c: &mut Client, req: Value, code: &str) -> Value {
    let f = c.call(req.clone()).await;
    assert_eq!(f["type"], "error", "{req} -> {f}");
    assert_eq!(f["code"], code, "{req} -> {f}");
    f
}

/// The next frame of type `kind`, skipping others.
async fn next_of(c: &mut Client, kind: &str) -> Value {
    loop {
        let f = c.frame().await;
        if f["type"] == kind {
            return f;
        }
    }
}

/// Frames of type `kind` arriving within `ms`.
async fn gather(c: &mut Client, kind: &str, ms: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(f) = tokio::time::timeout_at(end, c.frame()).await {
        if f["type"] == kind {
            out.push(f);
        }
    }
    out
}

async fn history(c: &mut Client, room: &str) -> Vec<Value> {
    let f = ok(
        c,
        json!({"type":"history","room":room,"limit":100}),
        "history",
    )
    .await;
    f["messages"].as_array().unwrap().clone()
}

async fn rooms(c: &mut Client) -> Vec<Value> {
    ok(c, json!({"type":"rooms"}), "rooms").await["rooms"]
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(list: &'a [Value], room: &str) -> Option<&'a Value> {
    list.iter().find(|r| r["room"] == room)
}

/// Polls `rooms` until `room`'s unread count is `n` (read marks are written each tick).
async fn wait_unread(c: &mut Client, room: &str, n: u64) {
    let mut last = Value::Null;
    for _ in 0..50 {
        let list = rooms(c).await;
        if let Some(r) = find(&list, room) {
            if r["unread"] == n {
                return;
            }
            last = r.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("unread of {room} never became {n}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_admit_members_only() {
    let server = start().await;
    let mut alice = server.client("alice").await;
    let created = ok(
        &mut alice,
        json!({"type":"create_room","room":"team","visibility":"private","members":["bob"]}),
        "ack",
    )
    .await;
    assert_eq!(created["seq"], 1);
    let joined = alice.join("team", Some(0)).await;
    assert_eq!(joined["visibility"], "private");
    let create = next_of(&mut alice, "msg").await;
    assert_eq!(create["kind"], "member");
    assert_eq!(create["member"]["action"], "create");
    assert_eq!(create["member"]["visibility"], "private");

    let mut carol = server.client("carol").await;
    for req in [
        json!({"type":"join","room":"team"}),
        json!({"type":"history","room":"team"}),
        json!({"type":"members","room":"team"}),
        json!({"type":"who","room":"team"}),
        json!({"type":"read","room":"team","seq":1}),
        json!({"type":"invite","room":"team","user":"carol"}),
    ] {
        refused(&mut carol, req, "forbidden").await;
    }
    assert!(find(&rooms(&mut carol).await, "team").is_none());

    let mut bob = server.client("bob").await;
    bob.join("team", None).await;
    ok(
        &mut alice,
        json!({"type":"send","room":"team","body":"secret plan"}),
        "ack",
    )
    .await;
    assert_eq!(bob.msgs(1).await[0]["body"], "secret plan");
    let list = rooms(&mut bob).await;
    let team = find(&list, "team").expect("bob's room list has team");
    assert_eq!(team["role"], "member");
    assert_eq!(team["visibility"], "private");

    // Invited, carol reads the backlog; removed, she stops receiving at once.
    ok(
        &mut alice,
        json!({"type":"invite","room":"team","user":"carol"}),
        "ack",
    )
    .await;
    let j = carol.join("team", Some(0)).await;
    assert_eq!(j["last_seq"], 3);
    assert_eq!(carol.msgs(3).await[1]["body"], "secret plan");
    let members = ok(
        &mut carol,
        json!({"type":"members","room":"team"}),
        "members",
    )
    .await;
    let names: Vec<_> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("alice", "owner"), ("bob", "member"), ("carol", "member")]
    );
    ok(
        &mut alice,
        json!({"type":"remove","room":"team","user":"carol"}),
        "ack",
    )
    .await;
    let removal = next_of(&mut carol, "msg").await;
    assert_eq!(removal["member"]["action"], "remove");
    let left = carol.expect("left").await;
    assert_eq!(left["reason"], "remove");
    ok(
        &mut alice,
        json!({"type":"send","room":"team","body":"after"}),
        "ack",
    )
    .await;
    carol.assert_quiet(300).await;
    refused(
        &mut carol,
        json!({"type":"join","room":"team"}),
        "forbidden",
    )
    .await;
    refused(
        &mut carol,
        json!({"type":"send","room":"team","body":"x"}),
        "forbidden",
    )
    .await;
    // Members do not moderate; a non-member does not leave.
    refused(
        &mut bob,
        json!({"type":"remove","room":"team","user":"alice"}),
        "forbidden",
    )
    .await;
    refused(
        &mut carol,
        json!({"type":"leave_room","room":"team"}),
        "not_found",
    )
    .await;
    ok(&mut bob, json!({"type":"leave_room","room":"team"}), "ack").await;
    assert!(find(&rooms(&mut bob).await, "team").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_rooms_roles_mutes_and_bans() {
    let server = start().await;
    let mut alice = server.client("alice").await;
    ok(
        &mut alice,
        json!({"type":"create_room","room":"lobby"}),
        "ack",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"create_room","room":"lobby"}),
        "conflict",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"create_room","room":"dm:alice:zed","visibility":"public"}),
        "bad_request",
    )
    .await;
    alice.join("lobby", None).await;
    let mut bob = server.joined("bob", "lobby").await;
    let mut carol = server.joined("carol", "lobby").await;
    // Joining a public room made them members.
    assert_eq!(
        find(&rooms(&mut bob).await, "lobby").unwrap()["role"],
        "member"
    );

    refused(
        &mut bob,
        json!({"type":"mute","room":"lobby","user":"carol"}),
        "forbidden",
    )
    .await;
    ok(
        &mut alice,
        json!({"type":"set_role","room":"lobby","user":"bob","role":"moderator"}),
        "ack",
    )
    .await;
    ok(
        &mut bob,
        json!({"type":"mute","room":"lobby","user":"carol","duration_ms":60000}),
        "ack",
    )
    .await;
    let f = refused(
        &mut carol,
        json!({"type":"send","room":"lobby","body":"hi"}),
        "forbidden",
    )
    .await;
    assert!(f["message"].as_str().unwrap().contains("muted"), "{f}");
    refused(
        &mut carol,
        json!({"type":"typing","room":"lobby","typing":true}),
        "forbidden",
    )
    .await;
    ok(
        &mut bob,
        json!({"type":"unmute","room":"lobby","user":"carol"}),
        "ack",
    )
    .await;
    ok(
        &mut carol,
        json!({"type":"send","room":"lobby","body":"hi"}),
        "ack",
    )
    .await;

    // A moderator cannot act on the owner, nor on another moderator's level.
    refused(
        &mut bob,
        json!({"type":"ban","room":"lobby","user":"alice"}),
        "forbidden",
    )
    .await;
    refused(
        &mut bob,
        json!({"type":"ban","room":"lobby","user":"bob"}),
        "bad_request",
    )
    .await;
    ok(
        &mut bob,
        json!({"type":"ban","room":"lobby","user":"carol"}),
        "ack",
    )
    .await;
    let left = next_of(&mut carol, "left").await;
    assert_eq!(left["reason"], "ban");
    refused(
        &mut carol,
        json!({"type":"join","room":"lobby"}),
        "forbidden",
    )
    .await;
    refused(
        &mut carol,
        json!({"type":"history","room":"lobby"}),
        "forbidden",
    )
    .await;
    ok(
        &mut bob,
        json!({"type":"unban","room":"lobby","user":"carol"}),
        "ack",
    )
    .await;
    carol.join("lobby", None).await;

    // Disconnect ends every subscription of the user (both devices), membership kept.
    let mut carol2 = server.joined("carol", "lobby").await;
    ok(
        &mut bob,
        json!({"type":"disconnect","room":"lobby","user":"carol"}),
        "ack",
    )
    .await;
    assert_eq!(next_of(&mut carol, "left").await["reason"], "disconnect");
    assert_eq!(next_of(&mut carol2, "left").await["reason"], "disconnect");
    carol.join("lobby", None).await;

    // The moderation is in the room's log, in order.
    let actions: Vec<String> = history(&mut alice, "lobby")
        .await
        .iter()
        .filter(|m| m["kind"] == "member")
        .map(|m| m["member"]["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "create", // alice, the owner: her join adds nothing
            "join",   // bob
            "join",   // carol
            "set_role",
            "mute",
            "unmute",
            "ban",
            "unban",
            "join", // carol again: the ban had ended her membership
            "disconnect"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_are_for_their_two_users() {
    let server = start().await;
    let mut alice = server.client("alice").await;
    let opened = ok(&mut alice, json!({"type":"open_dm","user":"bob"}), "ack").await;
    assert_eq!(opened["room"], "dm:alice:bob");
    assert_eq!(opened["seq"], 1);
    let mut bob = server.client("bob").await;
    let again = ok(&mut bob, json!({"type":"open_dm","user":"alice"}), "ack").await;
    assert_eq!(again["room"], "dm:alice:bob");
    assert_eq!(again["duplicate"], true);

    alice.join("dm:alice:bob", None).await;
    bob.join("dm:alice:bob", None).await;
    ok(
        &mut alice,
        json!({"type":"send","room":"dm:alice:bob","body":"psst"}),
        "ack",
    )
    .await;
    assert_eq!(bob.msgs(1).await[0]["body"], "psst");
    let list = rooms(&mut bob).await;
    let dm = find(&list, "dm:alice:bob").unwrap();
    assert_eq!(dm["visibility"], "direct");

    let mut carol = server.client("carol").await;
    refused(
        &mut carol,
        json!({"type":"join","room":"dm:alice:bob"}),
        "forbidden",
    )
    .await;
    refused(
        &mut carol,
        json!({"type":"history","room":"dm:alice:bob"}),
        "forbidden",
    )
    .await;
    // Nobody can be added to a direct room, or take one over by name.
    refused(
        &mut alice,
        json!({"type":"invite","room":"dm:alice:bob","user":"carol"}),
        "forbidden",
    )
    .await;
    refused(
        &mut carol,
        json!({"type":"create_room","room":"dm:alice:bob","visibility":"private"}),
        "conflict",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_devices_and_sends_diffs() {
    let server = start().await;
    let mut alice = server.client("alice").await;
    alice.join("hall", None).await;
    let mut bob1 = server.client("bob").await;
    let mut bob2 = server.client("bob").await;
    let j = bob1.join("hall", None).await;
    assert!(j["online"]["count"].as_u64().is_some(), "{j}");
    bob2.join("hall", None).await;
    // Bob shows up once, whatever his devices; alice may come in the same diff.
    let diff = loop {
        let d = next_of(&mut alice, "presence").await;
        if d["joined"].as_array().unwrap().contains(&json!("bob")) {
            break d;
        }
    };
    assert_eq!(diff["online"], 2, "{diff}");
    let later = gather(&mut alice, "presence", 600).await;
    assert!(later.is_empty(), "{later:?}");
    let who = ok(&mut alice, json!({"type":"who","room":"hall"}), "online").await;
    assert_eq!(who["count"], 2);
    assert_eq!(who["users"], json!(["alice", "bob"]));
    let page = ok(
        &mut alice,
        json!({"type":"who","room":"hall","limit":1}),
        "online",
    )
    .await;
    assert_eq!(
        (page["users"].clone(), page["has_more"].clone()),
        (json!(["alice"]), json!(true))
    );

    // One device leaving keeps bob online; the last one leaving does not.
    ok(&mut bob1, json!({"type":"leave","room":"hall"}), "left").await;
    assert!(gather(&mut alice, "presence", 600).await.is_empty());
    assert_eq!(
        ok(&mut alice, json!({"type":"who","room":"hall"}), "online").await["count"],
        2
    );
    drop(bob2);
    let diff = next_of(&mut alice, "presence").await;
    assert_eq!(diff["left"], json!(["bob"]), "{diff}");
    assert_eq!(diff["online"], 1);

    // A late joiner gets the list in its joined frame.
    let mut carol = server.client("carol").await;
    let j = carol.join("hall", None).await;
    assert_eq!(j["online"]["users"], json!(["alice"]), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_throttled_never_echoed_and_expires() {
    let server = start().await;
    let mut alice = server.joined("alice", "desk").await;
    let mut bob = server.joined("bob", "desk").await;
    ok(
        &mut bob,
        json!({"type":"typing","room":"desk","typing":true}),
        "ok",
    )
    .await;
    let t = next_of(&mut alice, "typing").await;
    assert_eq!(
        (t["user"].clone(), t["typing"].clone()),
        (json!("bob"), json!(true))
    );
    // Repeats inside the throttle window go nowhere; no stop: it expires by itself.
    ok(
        &mut bob,
        json!({"type":"typing","room":"desk","typing":true}),
        "ok",
    )
    .await;
    let seen = gather(&mut alice, "typing", 2000).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["typing"], false);
    // An explicit stop is relayed.
    ok(
        &mut bob,
        json!({"type":"typing","room":"desk","typing":true}),
        "ok",
    )
    .await;
    ok(
        &mut bob,
        json!({"type":"typing","room":"desk","typing":false}),
        "ok",
    )
    .await;
    let seen = gather(&mut alice, "typing", 500).await;
    let states: Vec<_> = seen.iter().map(|t| t["typing"].clone()).collect();
    assert_eq!(states, [json!(true), json!(false)]);
    // Sending ends it.
    ok(
        &mut bob,
        json!({"type":"typing","room":"desk","typing":true}),
        "ok",
    )
    .await;
    assert_eq!(next_of(&mut alice, "typing").await["typing"], true);
    ok(
        &mut bob,
        json!({"type":"send","room":"desk","body":"done"}),
        "ack",
    )
    .await;
    let stop = next_of(&mut alice, "typing").await;
    assert_eq!(
        (stop["user"].clone(), stop["typing"].clone()),
        (json!("bob"), json!(false))
    );
    // Never echoed, never stored (only bob's message is), only in joined rooms.
    assert!(gather(&mut bob, "typing", 300).await.is_empty());
    assert_eq!(history(&mut alice, "desk").await.len(), 1);
    refused(
        &mut bob,
        json!({"type":"typing","room":"elsewhere","typing":true}),
        "forbidden",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_are_coalesced_and_unread_counts_follow() {
    let server = start().await;
    let mut alice = server.client("alice").await;
    ok(
        &mut alice,
        json!({"type":"create_room","room":"news","members":["bob"]}),
        "ack",
    )
    .await;
    alice.join("news", None).await;
    for i in 0..3 {
        ok(
            &mut alice,
            json!({"type":"send","room":"news","body":format!("n{i}")}),
            "ack",
        )
        .await;
    }
    let mut bob = server.client("bob").await;
    bob.join("news", None).await;
    wait_unread(&mut bob, "news", 3).await;
    wait_unread(&mut alice, "news", 0).await; // sending marks read
    // Edits and membership changes are not unread messages.
    ok(
        &mut alice,
        json!({"type":"edit","room":"news","target":2,"body":"n0!"}),
        "ack",
    )
    .await;
    ok(
        &mut alice,
        json!({"type":"invite","room":"news","user":"carol"}),
        "ack",
    )
    .await;
    wait_unread(&mut bob, "news", 3).await;

    for seq in [2, 3, 4] {
        ok(
            &mut bob,
            json!({"type":"read","room":"news","seq":seq}),
            "ok",
        )
        .await;
    }
    let receipts = gather(&mut alice, "receipts", 800).await;
    let last = receipts.last().expect("a receipts frame");
    assert_eq!(
        last["reads"],
        json!([{"user":"bob","seq":4}]),
        "{receipts:?}"
    );
    assert!(receipts.len() <= 2, "coalesced: {receipts:?}");
    wait_unread(&mut bob, "news", 0).await;
    // Marks only move forward.
    ok(&mut bob, json!({"type":"read","room":"news","seq":1}), "ok").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = rooms(&mut bob).await;
    assert_eq!(find(&list, "news").unwrap()["read_seq"], 4);
    refused(
        &mut bob,
        json!({"type":"read","room":"news","seq":99}),
        "bad_request",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_and_replies_keep_the_log_whole() {
    let server = start().await;
    let mut alice = server.joined("alice", "talk").await;
    let mut bob = server.joined("bob", "talk").await;
    let mut watcher = server.joined("watcher", "talk").await;
    ok(
        &mut alice,
        json!({"type":"send","room":"talk","body":"helo"}),
        "ack",
    )
    .await;
    let reply = ok(
        &mut bob,
        json!({"type":"send","room":"talk","body":"hi!","reply_to":1}),
        "ack",
    )
    .await;
    assert_eq!(reply["seq"], 2);
    refused(
        &mut bob,
        json!({"type":"send","room":"talk","body":"x","reply_to":9}),
        "not_found",
    )
    .await;
    let edit = ok(
        &mut alice,
        json!({"type":"edit","room":"talk","target":1,"body":"hello"}),
        "ack",
    )
    .await;
    assert_eq!(edit["seq"], 3);
    refused(
        &mut bob,
        json!({"type":"edit","room":"talk","target":1,"body":"hacked"}),
        "forbidden",
    )
    .await;
    refused(
        &mut bob,
        json!({"type":"delete","room":"talk","target":1}),
        "forbidden",
    )
    .await;
    let live = watcher.msgs(3).await;
    assert_eq!(live[1]["reply_to"], 1);
    assert_eq!(
        (
            live[2]["kind"].clone(),
            live[2]["target"].clone(),
            live[2]["body"].clone()
        ),
        (json!("edit"), json!(1), json!("hello"))
    );

    // History shows the current state; the edit stays in the log.
    let h = history(&mut bob, "talk").await;
    assert_eq!(seqs(&h), [1, 2, 3]);
    assert_eq!(h[0]["body"], "hello");
    assert!(h[0]["edited_ts"].as_u64().is_some(), "{}", h[0]);
    assert_eq!(h[0]["edits"], json!([3]));

    ok(
        &mut alice,
        json!({"type":"delete","room":"talk","target":1}),
        "ack",
    )
    .await;
    let h = history(&mut bob, "talk").await;
    assert_eq!(seqs(&h), [1, 2, 3, 4], "a tombstone, not a hole");
    assert_eq!(
        (h[0]["deleted"].clone(), h[0]["body"].clone()),
        (json!(true), json!(""))
    );
    assert_eq!(h[2]["body"], "", "the edit's text is gone with the message");
    assert_eq!(
        (h[3]["kind"].clone(), h[3]["target"].clone()),
        (json!("delete"), json!(1))
    );
    refused(
        &mut alice,
        json!({"type":"delete","room":"talk","target":1}),
        "not_found",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"edit","room":"talk","target":1,"body":"again"}),
        "not_found",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"edit","room":"talk","target":3,"body":"x"}),
        "bad_request",
    )
    .await;

    // A resume replays the whole log, edits and tombstone included.
    let mut late = server.client("late").await;
    late.join("talk", Some(0)).await;
    assert_eq!(seqs(&late.msgs(4).await), [1, 2, 3, 4]);

    // Owners and moderators delete anyone's messages in a created room.
    let mut owner = server.client("owner").await;
    ok(
        &mut owner,
        json!({"type":"create_room","room":"modded"}),
        "ack",
    )
    .await;
    owner.join("modded", None).await;
    bob.join("modded", None).await;
    let sent = ok(
        &mut bob,
        json!({"type":"send","room":"modded","body":"spam"}),
        "ack",
    )
    .await;
    ok(
        &mut owner,
        json!({"type":"delete","room":"modded","target":sent["seq"]}),
        "ack",
    )
    .await;
    let h = history(&mut owner, "modded").await;
    assert!(
        h.iter()
            .any(|m| m["seq"] == sent["seq"] && m["deleted"] == true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_travel_with_the_message_and_are_capped() {
    let gateway = GatewayConfig {
        max_attachment_bytes: 3000,
        ..unthrottled()
    };
    let server = start_full(gateway, router()).await;
    let mut alice = server.joined("alice", "files").await;
    let mut bob = server.joined("bob", "files").await;
    let data = "QUJD".repeat(500); // 1500 bytes decoded
    let att = json!({"name":"notes.txt","content_type":"text/plain","data":data});
    ok(
        &mut alice,
        json!({"type":"send","room":"files","body":"see attached","attachments":[att]}),
        "ack",
    )
    .await;
    let m = bob.msgs(1).await.remove(0);
    assert_eq!(m["attachments"], json!([att]));
    assert_eq!(
        history(&mut bob, "files").await[0]["attachments"],
        json!([att])
    );

    let big = json!({"name":"big.bin","content_type":"application/octet-stream","data":"QUJD".repeat(1001)});
    refused(
        &mut alice,
        json!({"type":"send","room":"files","body":"","attachments":[big]}),
        "too_large",
    )
    .await;
    let bad = json!({"name":"x","content_type":"text/plain","data":"not base64!"});
    refused(
        &mut alice,
        json!({"type":"send","room":"files","body":"","attachments":[bad]}),
        "bad_request",
    )
    .await;
    let no_type = json!({"name":"x","content_type":"plain","data":"QUJD"});
    refused(
        &mut alice,
        json!({"type":"send","room":"files","body":"","attachments":[no_type]}),
        "bad_request",
    )
    .await;
    let tiny = json!({"name":"t","content_type":"text/plain","data":"QQ=="});
    let many: Vec<Value> = (0..11).map(|_| tiny.clone()).collect();
    refused(
        &mut alice,
        json!({"type":"send","room":"files","body":"","attachments":many}),
        "limit_exceeded",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"send","room":"files","body":""}),
        "bad_request",
    )
    .await;
    assert_eq!(
        history(&mut bob, "files").await.len(),
        1,
        "refusals store nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_events_are_relayed_or_persisted() {
    let server = start().await;
    let mut alice = server.joined("alice", "game").await;
    let mut bob = server.joined("bob", "game").await;
    ok(
        &mut alice,
        json!({"type":"event","room":"game","event":"cursor.move","data":{"x":3,"y":4}}),
        "ok",
    )
    .await;
    let e = next_of(&mut bob, "event").await;
    assert_eq!(
        (e["from"].clone(), e["event"].clone(), e["data"].clone()),
        (json!("alice"), json!("cursor.move"), json!({"x":3,"y":4}))
    );
    assert!(
        history(&mut bob, "game").await.is_empty(),
        "ephemeral events are not stored"
    );

    let ack = ok(
        &mut alice,
        json!({"type":"event","room":"game","event":"game.move","data":{"piece":"e4"},"persist":true,"client_msg_id":"m1"}),
        "ack",
    )
    .await;
    assert_eq!(ack["seq"], 1);
    let m = bob.msgs(1).await.remove(0);
    assert_eq!(
        (m["kind"].clone(), m["event"].clone(), m["data"].clone()),
        (json!("event"), json!("game.move"), json!({"piece":"e4"}))
    );
    let again = ok(
        &mut alice,
        json!({"type":"event","room":"game","event":"game.move","data":{"piece":"e4"},"persist":true,"client_msg_id":"m1"}),
        "ack",
    )
    .await;
    assert_eq!(
        (again["seq"].clone(), again["duplicate"].clone()),
        (json!(1), json!(true))
    );

    refused(
        &mut alice,
        json!({"type":"event","room":"game","event":"Bad Name","data":1}),
        "bad_request",
    )
    .await;
    let huge = "x".repeat(5000);
    refused(
        &mut alice,
        json!({"type":"event","room":"game","event":"big","data":huge}),
        "too_large",
    )
    .await;
    refused(
        &mut alice,
        json!({"type":"event","room":"nowhere","event":"e","data":1}),
        "forbidden",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_have_their_own_rate_limit_and_filter() {
    let router = RouterConfig {
        room_rate: 5.0,
        room_burst: 5,
        ..router()
    };
    let server = start_full(unthrottled(), router).await;
    let mut a = server.joined("a", "slow").await;
    let mut b = server.joined("b", "slow").await;
    let (mut acked, mut limited) = (0, 0);
    for i in 0..6 {
        for c in [&mut a, &mut b] {
            let f = c
                .call(json!({"type":"send","room":"slow","body":format!("m{i}"),"client_msg_id":format!("c{i}")}))
                .await;
            match f["type"].as_str() {
                Some("ack") => acked += 1,
                _ => {
                    assert_eq!(f["code"], "rate_limited", "{f}");
                    assert!(f["retry_after_ms"].as_u64().unwrap() >= 1, "{f}");
                    limited += 1;
                }
            }
        }
    }
    assert!((5..=7).contains(&acked), "{acked} acked");
    assert_eq!(acked + limited, 12);
    assert_eq!(
        history(&mut a, "slow").await.len(),
        acked,
        "refused sends store nothing"
    );

    // The default filter refuses control characters.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let f = refused(
        &mut a,
        json!({"type":"send","room":"slow","body":"ding\u{7}"}),
        "bad_request",
    )
    .await;
    assert!(f["message"].as_str().unwrap().contains("control"), "{f}");
    assert_eq!(history(&mut a, "slow").await.len(), acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_sends_have_their_own_rate() {
    let gateway = GatewayConfig {
        event_rate: 1.0,
        event_burst: 3,
        ..unthrottled()
    };
    let server = start_full(gateway, router()).await;
    let mut a = server.joined("a", "chatty").await;
    let mut answers = Vec::new();
    for req in [
        json!({"type":"typing","room":"chatty","typing":true}),
        json!({"type":"who","room":"chatty"}),
        json!({"type":"rooms"}),
        json!({"type":"event","room":"chatty","event":"ping","data":1}),
        json!({"type":"who","room":"chatty"}),
    ] {
        answers.push(a.call(req).await);
    }
    let kinds: Vec<&str> = answers
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ok", "online", "rooms", "error", "error"],
        "{answers:?}"
    );
    assert_eq!(answers[3]["code"], "rate_limited");
    assert!(answers[3]["retry_after_ms"].as_u64().unwrap() >= 1);
    // Sends have their own bucket and still go through.
    ok(
        &mut a,
        json!({"type":"send","room":"chatty","body":"still here"}),
        "ack",
    )
    .await;
}
