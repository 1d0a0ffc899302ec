//! The bad-input and limits catalogue: each refusal is a documented error frame (or close
//! code), and the connection and every other connection keep working.

mod common;

use std::time::Duration;

use chorus_gateway::GatewayConfig;
use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn refused(c: &mut Client, req: Value, code: &str) -> Value {
    let f = c.call(req).await;
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["code"], code, "{f}");
    assert!(!f["message"].as_str().unwrap().is_empty());
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_bad_request_and_the_connection_survives() {
    let server = start().await;
    let mut c = server.joined("alice", "general").await;
    let mut bystander = server.joined("bob", "general").await;

    // Not JSON at all: no id can be recovered.
    c.send_raw(Message::text("{not json")).await;
    let f = c.expect("error").await;
    assert_eq!(f["code"], "bad_request");
    assert!(f.get("id").is_none());
    assert!(f["message"].as_str().unwrap().contains("malformed JSON"));

    // The id is echoed whenever the frame is an object with one.
    let f = refused(&mut c, json!({"type":"teleport"}), "bad_request").await;
    assert!(f["message"].as_str().unwrap().contains("teleport"));
    refused(
        &mut c,
        json!({"type":"send","room":"general"}),
        "bad_request",
    )
    .await; // no body
    refused(
        &mut c,
        json!({"type":"send","room":"general","body":5}),
        "bad_request",
    )
    .await;
    refused(
        &mut c,
        json!({"type":"join","room":"has space"}),
        "bad_request",
    )
    .await;
    refused(&mut c, json!({"type":"join","room":""}), "bad_request").await;
    refused(
        &mut c,
        json!({"type":"join","room":"x".repeat(129)}),
        "bad_request",
    )
    .await;
    refused(
        &mut c,
        json!({"type":"join","room":"general","since":-1}),
        "bad_request",
    )
    .await;
    refused(&mut c, json!({"type":"ping","extra":1}), "bad_request").await;
    refused(&mut c, json!({"no_type":true}), "bad_request").await;
    refused(
        &mut c,
        json!({"type":"auth","token":"again"}),
        "bad_request",
    )
    .await;
    c.send_raw(Message::text("[1,2,3]")).await;
    assert_eq!(c.expect("error").await["code"], "bad_request");
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let f = c.expect("error").await;
    assert_eq!(f["code"], "bad_request");
    assert!(f["message"].as_str().unwrap().contains("binary"));

    c.assert_alive().await;
    let ack = c.send("general", "still-ok", "hello").await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(bystander.msgs(1).await[0]["body"], "hello");
    bystander.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_rules_are_enforced_with_documented_codes() {
    let config = GatewayConfig {
        max_rooms_per_conn: 2,
        ..GatewayConfig::default()
    };
    let server = start_with(config).await;
    let mut c = server.client("alice").await;
    let f = refused(
        &mut c,
        json!({"type":"send","room":"elsewhere","body":"x"}),
        "forbidden",
    )
    .await;
    assert_eq!(f["room"], "elsewhere");
    refused(
        &mut c,
        json!({"type":"leave","room":"elsewhere"}),
        "not_found",
    )
    .await;
    c.join("r1", None).await;
    refused(&mut c, json!({"type":"join","room":"r1"}), "bad_request").await; // already joined
    c.join("r2", None).await;
    refused(&mut c, json!({"type":"join","room":"r3"}), "limit_exceeded").await;
    // since ahead of the log
    c.call(json!({"type":"leave","room":"r2"})).await;
    refused(
        &mut c,
        json!({"type":"join","room":"r2","since":10}),
        "bad_request",
    )
    .await;
    // history limits
    refused(
        &mut c,
        json!({"type":"history","room":"r1","limit":101}),
        "bad_request",
    )
    .await;
    refused(
        &mut c,
        json!({"type":"history","room":"r1","limit":0}),
        "bad_request",
    )
    .await;
    refused(
        &mut c,
        json!({"type":"history","room":"r1","before":5,"after":1}),
        "bad_request",
    )
    .await;
    // client_msg_id length
    refused(
        &mut c,
        json!({"type":"send","room":"r1","client_msg_id":"","body":"x"}),
        "bad_request",
    )
    .await;
    refused(
        &mut c,
        json!({"type":"send","room":"r1","client_msg_id":"c".repeat(65),"body":"x"}),
        "bad_request",
    )
    .await;
    c.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_and_oversized_frames_close_with_1009() {
    let server = start().await;
    let mut c = server.joined("alice", "big").await;
    let mut watcher = server.joined("bob", "big").await;
    let f = refused(
        &mut c,
        json!({"type":"send","room":"big","client_msg_id":"b1","body":"x".repeat(4097)}),
        "too_large",
    )
    .await;
    assert!(f["message"].as_str().unwrap().contains("4096"));
    // Exactly at the limit is fine, and nothing of the refused one was stored.
    let ack = c.send("big", "b2", &"y".repeat(4096)).await;
    assert_eq!(ack["seq"], 1);
    // A multi-byte body is measured in bytes.
    refused(
        &mut c,
        json!({"type":"send","room":"big","body":"é".repeat(2049)}),
        "too_large",
    )
    .await;

    let limit = chorus_gateway::GatewayConfig::default().max_frame_bytes;
    c.send_raw(Message::text("x".repeat(limit + 1))).await;
    let f = c.expect("error").await;
    assert_eq!(f["code"], "too_large");
    assert_eq!(c.closed_with().await, 1009);
    // Everyone else is unaffected.
    assert_eq!(watcher.msgs(1).await[0]["seq"], 1);
    watcher.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_rate_is_limited_with_retry_after_and_nothing_is_lost() {
    let config = GatewayConfig {
        send_rate: 5.0,
        send_burst: 3,
        ..GatewayConfig::default()
    };
    let server = start_with(config).await;
    let mut c = server.joined("alice", "rl").await;
    for i in 0..3 {
        assert_eq!(c.send("rl", &format!("c{i}"), "ok").await["type"], "ack");
    }
    let f = refused(
        &mut c,
        json!({"type":"send","room":"rl","client_msg_id":"c3","body":"too fast"}),
        "rate_limited",
    )
    .await;
    let wait = f["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 200, "retry_after_ms {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    let ack = c.send("rl", "c3", "too fast").await;
    assert_eq!(ack["type"], "ack", "the retried send goes through");
    let h = c.call(json!({"type":"history","room":"rl"})).await;
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        4,
        "refused sends stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_refusals_close_with_4001() {
    let config = GatewayConfig {
        auth_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let server = start_with(config).await;
    let url = server.ws_url();

    // Any frame before auth.
    let mut c = Client::connect_bare(&url).await;
    c.send_json(json!({"type":"join","id":7,"room":"general"}))
        .await;
    let f = c.expect("error").await;
    assert_eq!(
        (f["code"].as_str(), f["id"].as_u64()),
        (Some("unauthorized"), Some(7))
    );
    assert_eq!(c.closed_with().await, 4001);

    // A bad token in the first frame, one signed with another secret, and an expired one.
    let other = chorus_gateway::Authenticator::new(b"another-secret-another-secret-xx!").unwrap();
    let foreign = other.mint(
        &chorus_core::UserId::new("alice").unwrap(),
        Duration::from_secs(60),
    );
    for token in ["garbage".to_string(), foreign] {
        let mut c = Client::connect_bare(&url).await;
        c.send_json(json!({"type":"auth","id":"a","token":token}))
            .await;
        let f = c.expect("error").await;
        assert_eq!(f["code"], "unauthorized");
        assert_eq!(f["id"], "a");
        assert_eq!(c.closed_with().await, 4001);
    }
    let mut c = Client::connect_with_header(&url, &expired_token()).await;
    let f = c.expect("error").await;
    assert_eq!(f["message"], "token expired");
    assert_eq!(c.closed_with().await, 4001);

    // Silence past the auth timeout.
    let mut c = Client::connect_bare(&url).await;
    let f = c.expect("error").await;
    assert_eq!(f["message"], "authentication timed out");
    assert_eq!(c.closed_with().await, 4001);

    // A malformed Authorization header is refused before the upgrade.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
    }

    // And the happy path by first frame, with the id echoed on ready.
    let mut c = Client::connect_bare(&url).await;
    c.send_json(json!({"type":"auth","id":1,"token":server.token("carol")}))
        .await;
    let ready = c.expect("ready").await;
    assert_eq!(
        (ready["id"].as_u64(), ready["user"].as_str()),
        (Some(1), Some("carol"))
    );
    assert_eq!(ready["protocol"], 1);
    assert_eq!(ready["limits"]["max_body_bytes"], 4096);
    c.assert_alive().await;
}

fn expired_token() -> String {
    let claims = json!({"sub": "alice", "exp": 1000, "iat": 0});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}
