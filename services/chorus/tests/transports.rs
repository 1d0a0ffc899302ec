//! The SSE fallback transport's own rules (authentication, sessions, request bounds, close
//! frames), and what a browser loads from a gateway: `/v1/info`, the development sign-in, the
//! web app and SDK, and CORS. The protocol itself over SSE is tests/sse_protocol.rs.

mod common;

use chorus_gateway::GatewayConfig;
use common::{
    Client,
    sse::{http, post_as},
};
use serde_json::{Value, json};

fn web(dev: bool) -> GatewayConfig {
    GatewayConfig {
        web: true,
        dev_sign_in: dev,
        allowed_origins: vec!["https://app.example".into()],
        ..GatewayConfig::default()
    }
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON error: {body}"));
    assert_eq!(v["type"], "error", "{v}");
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_needs_a_valid_bearer_token() {
    let server = common::start().await;
    let addr = server.addr.to_string();
    let (status, _, body) = http(&addr, "GET", "/v1/sse", &[], b"").await;
    assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"));
    let (status, _, body) = http(
        &addr,
        "GET",
        "/v1/sse",
        &[("Authorization", "Bearer not-a-token")],
        b"",
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"));
    assert!(body.contains("invalid token"), "{body}");
    let (status, _, _) = http(
        &addr,
        "GET",
        "/v1/sse",
        &[("Authorization", "Basic abc")],
        b"",
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_reach_only_their_own_users_open_session() {
    let server = common::start().await;
    let addr = server.addr.to_string();
    let mut alice = Client::connect_sse(&addr, &server.token("alice")).await;
    let ready = alice.expect("ready").await;
    let session = ready["session"].as_str().unwrap().to_owned();
    assert_eq!(session.len(), 32);
    let ping = r#"{"type":"ping","id":1}"#;
    // Another user's token: reported as no such session (ids are not to be probed).
    let (status, body) = post_as(&addr, &server.token("mallory"), &session, ping).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    let (status, body) = post_as(&addr, &server.token("alice"), "0123abcd", ping).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    let (status, _) = post_as(&addr, "bad", &session, ping).await;
    assert_eq!(status, 401);
    // Nothing of those reached alice's connection; her own POST does.
    let (status, _) = post_as(&addr, &server.token("alice"), &session, ping).await;
    assert_eq!(status, 202);
    let pong = alice.expect("pong").await;
    assert_eq!(pong["id"], 1);
    alice.assert_quiet(200).await;
    assert_eq!(server.handle().sse_sessions(), 1);
    assert!(server.metric("chorus_gateway_sse_sessions").await >= 1.0);
    drop(alice);
    // The stream's end ends the session.
    let end = tokio::time::Instant::now() + common::WAIT;
    while server.handle().sse_sessions() > 0 {
        assert!(
            tokio::time::Instant::now() < end,
            "the session outlived its stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, _) = post_as(&addr, &server.token("alice"), &session, ping).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_carries_ordered_json_lines_within_bounds() {
    let server = common::start().await;
    let addr = server.addr.to_string();
    let token = server.token("alice");
    let mut alice = Client::connect_sse(&addr, &token).await;
    let session = alice.expect("ready").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    // Several frames in one request are handled in order.
    let lines = [
        json!({"type":"join","id":1,"room":"lines","since":0}),
        json!({"type":"send","id":2,"room":"lines","client_msg_id":"l1","body":"one"}),
        json!({"type":"send","id":3,"room":"lines","client_msg_id":"l2","body":"two"}),
    ]
    .map(|v| v.to_string())
    .join("\r\n");
    assert_eq!(post_as(&addr, &token, &session, &lines).await.0, 202);
    assert_eq!(alice.expect("joined").await["id"], 1);
    let (mut acks, mut msgs) = (Vec::new(), 0);
    while acks.len() < 2 || msgs < 2 {
        let f = alice.frame().await;
        match f["type"].as_str() {
            Some("ack") => acks.push((f["id"].clone(), f["seq"].clone())),
            Some("msg") => msgs += 1,
            _ => {}
        }
    }
    assert_eq!(acks, vec![(json!(2), json!(1)), (json!(3), json!(2))]);
    // Bounds: an empty body, too many frames, not UTF-8, too many bytes.
    let (status, body) = post_as(&addr, &token, &session, "\n \n").await;
    assert_eq!((status, error_code(&body).as_str()), (400, "bad_request"));
    let many = vec![r#"{"type":"ping"}"#; 65].join("\n");
    let (status, body) = post_as(&addr, &token, &session, &many).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "limit_exceeded")
    );
    let auth = format!("Bearer {token}");
    let path = format!("/v1/sse/{session}");
    let (status, _, body) = http(
        &addr,
        "POST",
        &path,
        &[("Authorization", &auth)],
        &[0xff, 0xfe],
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (400, "bad_request"));
    let huge = vec![b'x'; 2 << 20];
    let (status, _, body) = http(&addr, "POST", &path, &[("Authorization", &auth)], &huge).await;
    assert_eq!((status, error_code(&body).as_str()), (413, "too_large"));
    // A malformed frame is answered on the stream, like on a WebSocket; the session lives on.
    assert_eq!(
        post_as(&addr, &token, &session, "{\"type\":\"bogus\",\"id\":9}")
            .await
            .0,
        202
    );
    let e = alice.expect("error").await;
    assert_eq!(
        (e["id"].clone(), e["code"].clone()),
        (json!(9), json!("bad_request"))
    );
    alice.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_ends_the_stream_with_a_close_frame() {
    let server = common::start_with(GatewayConfig {
        max_frame_bytes: 1000,
        ..GatewayConfig::default()
    })
    .await;
    let addr = server.addr.to_string();
    let mut alice = Client::connect_sse(&addr, &server.token("alice")).await;
    alice.expect("ready").await;
    let big = json!({"type":"ping","id":"x".repeat(1200)}).to_string();
    assert_eq!(alice.sse().post(&big).await, 202);
    assert_eq!(alice.expect("error").await["code"], "too_large");
    assert_eq!(alice.closed_with().await, 1009);
    // The session is gone with its stream.
    let session = alice.sse().session.clone();
    let (status, _) = post_as(
        &addr,
        &server.token("alice"),
        &session,
        r#"{"type":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_app_the_sdk_and_info() {
    let server = common::start_with(web(false)).await;
    let addr = server.addr.to_string();
    let (status, head, body) = http(&addr, "GET", "/", &[], b"").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(
        body.contains("/sdk/index.js") || body.contains("/app/"),
        "{body}"
    );
    let (status, head, body) = http(&addr, "GET", "/sdk/index.js", &[], b"").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(
        body.contains("ChorusClient"),
        "the SDK's entry exports the client"
    );
    let (status, _, body) = http(&addr, "GET", "/app/../Cargo.toml", &[], b"").await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = http(&addr, "GET", "/v1/info", &[], b"").await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["transports"], json!(["websocket", "sse"]));
    assert_eq!(info["dev_sign_in"], false);
    // Without --dev there is no sign-in by name.
    let (status, _, body) = http(
        &addr,
        "POST",
        "/v1/dev/token",
        &[("Content-Type", "application/json")],
        br#"{"user":"alice"}"#,
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    // The app is off unless asked for (cluster gateways).
    let plain = common::start().await;
    let (status, _, _) = http(&plain.addr.to_string(), "GET", "/", &[], b"").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_sign_in_mints_a_working_token_and_checks_the_name() {
    let server = common::start_with(web(true)).await;
    let addr = server.addr.to_string();
    let json_ct = [("Content-Type", "application/json")];
    let (status, _, body) = http(
        &addr,
        "POST",
        "/v1/dev/token",
        &json_ct,
        br#"{"user":"dana"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["user"].clone(), v["expires_in"].clone()),
        (json!("dana"), json!(3600))
    );
    let mut c = Client::connect_with_header(&server.ws_url(), v["token"].as_str().unwrap()).await;
    assert_eq!(c.expect("ready").await["user"], "dana");
    for bad in [&br#"{"user":"no spaces"}"#[..], br#"{"name":"x"}"#, b"nope"] {
        let (status, _, body) = http(&addr, "POST", "/v1/dev/token", &json_ct, bad).await;
        assert_eq!((status, error_code(&body).as_str()), (400, "bad_request"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_only_the_configured_origins() {
    let server = common::start_with(web(false)).await;
    let addr = server.addr.to_string();
    let preflight = |origin: &'static str| {
        let addr = addr.clone();
        async move {
            http(
                &addr,
                "OPTIONS",
                "/v1/sse",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "GET"),
                    ("Access-Control-Request-Headers", "authorization"),
                ],
                b"",
            )
            .await
        }
    };
    let (status, head, _) = preflight("https://app.example").await;
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let (_, head, _) = preflight("https://evil.example").await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (_, head, _) = http(
        &addr,
        "GET",
        "/v1/info",
        &[("Origin", "https://app.example")],
        b"",
    )
    .await;
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
}
