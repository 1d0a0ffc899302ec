//! Connection lifecycle: slow consumers, dead peers, the connection limit, graceful shutdown,
//! health and metrics.

mod common;

use std::time::Duration;

use chorus_gateway::GatewayConfig;
use common::*;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client with a tiny receive buffer that never reads, so the server's queue for it fills.
async fn stalled_client(server: &Server, room: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = server.addr;
    let stream = socket.connect(addr).await.unwrap();
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token("slow")).parse().unwrap(),
    );
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let mut c = Client::over(ws);
    c.expect("ready").await;
    c.join(room, None).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_4008_and_resumes_without_loss() {
    let config = GatewayConfig {
        outbound_queue_bytes: 64 * 1024,
        ..unthrottled()
    };
    let server = start_with(config).await;
    let mut slow = stalled_client(&server, "firehose").await;
    let mut fast = server.joined("fast", "firehose").await;
    let body = "z".repeat(4000);
    let total = 1500usize;
    let mut senders = Vec::new();
    for s in 0..8 {
        let mut c = server.joined(&format!("w{s}"), "firehose").await;
        let body = body.clone();
        senders.push(tokio::spawn(async move {
            for i in (s..total).step_by(8) {
                assert_eq!(
                    c.send("firehose", &format!("c{i}"), &body).await["type"],
                    "ack"
                );
            }
        }));
    }
    // The fast reader keeps up and sees everything while the slow one is cut off.
    let got = fast.msgs(total).await;
    assert_eq!(seqs(&got), (1..=total as u64).collect::<Vec<_>>());
    for s in senders {
        s.await.unwrap();
    }
    // The slow one reads what the kernel buffered, then the 4008 close.
    let mut last_seen = 0;
    let code = loop {
        match slow.event().await {
            Event::Frame(f) if f["type"] == "msg" => {
                let seq = f["seq"].as_u64().unwrap();
                assert_eq!(seq, last_seen + 1, "no gap before the close");
                last_seen = seq;
            }
            Event::Frame(f) if is_signal(&f) => {}
            Event::Frame(f) => panic!("unexpected frame {f}"),
            Event::Closed(frame) => break frame.map(|f| u16::from(f.code)),
        }
    };
    assert_eq!(code, Some(4008));
    assert!(
        last_seen < total as u64,
        "the slow client was cut off early"
    );
    // Resuming from the last seq seen loses nothing.
    let mut back = server.client("slow").await;
    back.join("firehose", Some(last_seen)).await;
    let rest = back.msgs(total - last_seen as usize).await;
    assert_eq!(
        seqs(&rest),
        ((last_seen + 1)..=total as u64).collect::<Vec<_>>()
    );
    assert!(
        server
            .metric("chorus_gateway_slow_consumer_disconnects_total")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_clients_with_1001_and_keeps_every_acked_message() {
    let mut server = start_with(unthrottled()).await;
    let mut c = server.joined("alice", "bye").await;
    for i in 1..=20 {
        assert_eq!(
            c.send("bye", &format!("c{i}"), &format!("m{i}")).await["seq"],
            i
        );
    }
    let old_addr = server.addr;
    let handle = server.handle();
    handle.shutdown();
    assert_eq!(c.closed_with().await, 1001);
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(old_addr).await.is_err(),
        "no longer accepting"
    );
    server.restart().await;
    let mut back = server.client("alice").await;
    back.join("bye", Some(0)).await;
    let kept = back.msgs(20).await;
    assert_eq!(seqs(&kept), (1..=20).collect::<Vec<_>>());
    assert_eq!(back.send("bye", "c21", "after restart").await["seq"], 21);
    // A resend of an acknowledged message is still recognised after the restart.
    let again = back.send("bye", "c5", "m5").await;
    assert_eq!(
        (again["seq"].as_u64(), again["duplicate"].as_bool()),
        (Some(5), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_http_503() {
    let config = GatewayConfig {
        max_connections: 2,
        ..GatewayConfig::default()
    };
    let server = start_with(config).await;
    let _a = server.client("a").await;
    let mut b = server.client("b").await;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token("c")).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    // A slot frees when a connection closes.
    b.ws().close(None).await.unwrap();
    drop(b);
    let handle = server.handle();
    for _ in 0..100 {
        if handle.connections() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.client("c").await.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    let server = start_with(config).await;
    let handle = server.handle();
    let mut alive = server.client("alive").await;
    let _silent = server.client("silent").await; // never read again: never answers a ping
    assert_eq!(handle.connections(), 2);
    let mut dropped = false;
    for _ in 0..50 {
        // The live client keeps reading (and so answering pings).
        alive.assert_alive().await;
        if handle.connections() == 1 {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dropped,
        "the silent connection was dropped and the live one kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let server = start().await;
    assert_eq!(http_get(&server.http_url("/healthz")).await, "ok\n");
    assert_eq!(http_get(&server.http_url("/readyz")).await, "ready\n");
    let mut c = server.joined("alice", "m").await;
    c.send("m", "c1", "counted").await;
    let metrics = http_get(&server.http_url("/metrics")).await;
    for name in [
        "chorus_gateway_connections 1",
        "chorus_messages_sequenced_total",
        "chorus_gateway_frames_in_total{type=\"send\"}",
        "chorus_store_append_seconds_bucket",
        "chorus_gateway_send_seconds_count",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
}
