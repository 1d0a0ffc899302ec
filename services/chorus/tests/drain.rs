//! Graceful drain: a stopping gateway fails readiness, stops accepting, tells each client
//! to reconnect (`reconnect`, then close 1001) within the drain window, and its clients
//! resume on another gateway without losing or repeating a message.

mod common;

use std::time::{Duration, Instant};

use chorus_gateway::GatewayConfig;
use common::{Client, WAIT, cluster, seqs, unthrottled};
use serde_json::json;

fn draining(window_ms: u64) -> GatewayConfig {
    GatewayConfig {
        drain_window: Duration::from_millis(window_ms),
        ..unthrottled()
    }
}

/// Reads until the `reconnect` frame and the close that follows; returns the close code.
async fn reconnect_then_close(c: &mut Client) -> u16 {
    loop {
        match c.event().await {
            common::Event::Frame(f) if f["type"] == "reconnect" => {
                assert_eq!(f["reason"], "shutdown", "{f}");
                break;
            }
            common::Event::Frame(_) => continue,
            common::Event::Closed(f) => panic!("closed before a reconnect frame: {f:?}"),
        }
    }
    c.closed_with().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_tells_websocket_and_sse_clients_to_reconnect_within_the_window() {
    let mut server = common::start_with(draining(800)).await;
    let ready_url = server.http_url("/readyz");
    assert_eq!(common::http_get_status(&ready_url).await.0, 200);
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = if i % 2 == 0 {
            server.client(&format!("ws{i}")).await
        } else {
            Client::connect_sse(&server.addr.to_string(), &server.token(&format!("sse{i}"))).await
        };
        if i % 2 == 1 {
            c.expect("ready").await;
        }
        c.join("lobby", None).await;
        clients.push(c);
    }
    let started = Instant::now();
    server.handle().shutdown();
    let waits: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                assert_eq!(reconnect_then_close(&mut c).await, 1001);
                started.elapsed()
            })
        })
        .collect();
    let mut moments = Vec::new();
    for w in waits {
        moments.push(w.await.unwrap());
    }
    // Spread over the window, not all at once, and none after it.
    let last = *moments.iter().max().unwrap();
    let first = *moments.iter().min().unwrap();
    assert!(last < Duration::from_millis(800) + WAIT / 10, "{moments:?}");
    assert!(
        last - first >= Duration::from_millis(200),
        "spread: {moments:?}"
    );
    let running = server.running.take().unwrap();
    tokio::time::timeout(WAIT, running.done)
        .await
        .expect("the server stops after the drain")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "a drained server accepts nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_drained_gateway_resume_on_another_without_loss() {
    let cluster = cluster::start_cluster(draining(300), 1, 2).await;
    let server = common::Server::for_cluster(cluster);
    let gateways: Vec<_> = server
        .cluster
        .as_ref()
        .unwrap()
        .gateways
        .iter()
        .map(|g| (g.addr, g.handle.clone()))
        .collect();
    let url = |i: usize| format!("ws://{}/v1/ws", gateways[i].0);
    // The reader is on gateway 0, which drains; the writer is on gateway 1.
    let mut reader = Client::connect_with_header(&url(0), &server.token("reader")).await;
    reader.expect("ready").await;
    reader.join("drained", Some(0)).await;
    let mut writer = Client::connect_with_header(&url(1), &server.token("writer")).await;
    writer.expect("ready").await;
    writer.join("drained", None).await;
    let total = 60u64;
    let sending = tokio::spawn(async move {
        for i in 1..=total {
            let ack = writer
                .send("drained", &format!("w{i}"), &format!("m{i}"))
                .await;
            assert_eq!(ack["type"], "ack", "{ack}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut seen = Vec::new();
    let mut drained = false;
    while (seen.len() as u64) < total {
        match reader.event().await {
            common::Event::Frame(f) if f["type"] == "msg" => {
                seen.push(f);
                if seen.len() == 10 && !drained {
                    gateways[0].1.shutdown();
                    drained = true;
                }
            }
            common::Event::Frame(f) if f["type"] == "reconnect" => {
                // What the SDK does: reconnect now (a Service would pick a ready gateway),
                // and resume from the last seq seen.
                assert_eq!(reader.closed_with().await, 1001);
                reader = Client::connect_with_header(&url(1), &server.token("reader")).await;
                reader.expect("ready").await;
                let since = seen.last().map_or(0, |m| m["seq"].as_u64().unwrap());
                reader.join("drained", Some(since)).await;
            }
            common::Event::Frame(_) => {}
            common::Event::Closed(f) => panic!("closed without a reconnect frame: {f:?}"),
        }
    }
    sending.await.unwrap();
    assert!(drained);
    assert_eq!(
        seqs(&seen),
        (1..=total).collect::<Vec<_>>(),
        "each once, in order"
    );
    let bodies: Vec<_> = seen.iter().map(|m| m["body"].clone()).collect();
    let expected: Vec<_> = (1..=total).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(bodies, expected);
    reader.assert_quiet(200).await;
}
