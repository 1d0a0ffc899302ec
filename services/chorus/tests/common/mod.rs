//! Test harness: a real server on 127.0.0.1:0 and a real client, over a WebSocket or (for
//! a server started with [`Server::over_sse`]) the SSE fallback transport.
//!
//! The wiring under test is standalone (in-process, own temporary data dir per test) unless a
//! test starts the cluster wiring through [`cluster`].

#![allow(dead_code)]

pub mod cluster;
pub mod procs;
pub mod sse;

use std::time::Duration;

use chorus::standalone::{self, Running, StandaloneConfig};
use chorus_core::UserId;
use chorus_gateway::{Authenticator, GatewayConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::CloseFrame},
};

impl Server {
    pub(crate) fn for_cluster(cluster: cluster::Cluster) -> Server {
        Server {
            addr: cluster.gateways[0].addr,
            running: None,
            auth: Authenticator::new(SECRET.as_bytes()).unwrap(),
            config: None,
            _dir: None,
            cluster: Some(cluster),
            next_gateway: Default::default(),
            sse: false,
        }
    }
}

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// A token for `user`, signed with [`SECRET`] (for servers the test started as processes).
pub fn token(user: &str) -> String {
    Authenticator::new(SECRET.as_bytes())
        .unwrap()
        .mint(&UserId::new(user).unwrap(), Duration::from_secs(3600))
}
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub running: Option<Running>,
    pub auth: Authenticator,
    pub addr: std::net::SocketAddr,
    config: Option<StandaloneConfig>,
    _dir: Option<tempfile::TempDir>,
    /// Set for the cluster wiring: its gateways, taken in turn by [`Server::client`].
    pub cluster: Option<cluster::Cluster>,
    next_gateway: std::sync::atomic::AtomicUsize,
    /// Clients of [`Server::client`] use the SSE transport.
    pub sse: bool,
}

impl Server {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// The next gateway's WebSocket URL (always the one server in standalone).
    fn next_ws_url(&self) -> String {
        match &self.cluster {
            Some(c) => {
                let i = self
                    .next_gateway
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("ws://{}/v1/ws", c.gateways[i % c.gateways.len()].addr)
            }
            None => self.ws_url(),
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(&self, user: &str) -> String {
        self.auth
            .mint(&UserId::new(user).unwrap(), Duration::from_secs(3600))
    }

    /// This server, with [`Server::client`] connecting over the SSE transport.
    pub fn over_sse(mut self) -> Server {
        self.sse = true;
        self
    }

    /// Connects with the token in the `Authorization` header and waits for `ready`.
    pub async fn client(&self, user: &str) -> Client {
        let url = self.next_ws_url();
        let mut c = if self.sse {
            let addr = url
                .strip_prefix("ws://")
                .and_then(|u| u.strip_suffix("/v1/ws"))
                .expect("a ws:// URL");
            Client::connect_sse(addr, &self.token(user)).await
        } else {
            Client::connect_with_header(&url, &self.token(user)).await
        };
        let ready = c.expect("ready").await;
        assert_eq!(ready["user"], user);
        c
    }

    /// A client joined to `room` (live only).
    pub async fn joined(&self, user: &str, room: &str) -> Client {
        let mut c = self.client(user).await;
        c.join(room, None).await;
        c
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }

    /// Starts again on the same data directory (a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let config = self
            .config
            .clone()
            .expect("restart is for the standalone wiring");
        let running = standalone::start(config).await.unwrap();
        self.addr = running.addr;
        self.running = Some(running);
    }

    pub fn handle(&self) -> chorus_gateway::GatewayHandle {
        self.running.as_ref().unwrap().handle.clone()
    }

    /// The value of a counter or gauge on `/metrics` (0 if absent). Metrics are process-wide,
    /// shared by every test in the binary: compare before and after, or assert a lower bound.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = http_get(&self.http_url("/metrics")).await;
        text.lines()
            .filter_map(|l| l.strip_prefix(line_prefix)?.strip_prefix(' '))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .sum()
    }
}

pub async fn start() -> Server {
    start_with(GatewayConfig::default()).await
}

pub async fn start_with(gateway: GatewayConfig) -> Server {
    start_full(gateway, unlimited_rooms()).await
}

/// A router without a practical room rate limit: the tests that load a room use it, and the
/// features suite tests the limit itself.
pub fn unlimited_rooms() -> chorus_router::RouterConfig {
    chorus_router::RouterConfig {
        room_rate: 1e9,
        room_burst: 1_000_000,
        ..Default::default()
    }
}

/// The standalone wiring with these gateway and router configurations.
pub async fn start_full(gateway: GatewayConfig, router: chorus_router::RouterConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = StandaloneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        jwt_secret: SECRET.as_bytes().to_vec(),
        gateway,
        router,
        store: Default::default(),
    };
    let running = standalone::start(config.clone()).await.unwrap();
    Server {
        addr: running.addr,
        running: Some(running),
        auth: Authenticator::new(SECRET.as_bytes()).unwrap(),
        config: Some(config),
        _dir: Some(dir),
        cluster: None,
        next_gateway: Default::default(),
        sse: false,
    }
}

/// Generous limits for tests that send a lot.
pub fn unthrottled() -> GatewayConfig {
    GatewayConfig {
        send_rate: 1e9,
        send_burst: 1_000_000,
        max_in_flight: 1024,
        ..GatewayConfig::default()
    }
}

pub struct Client {
    link: Link,
    pub next_id: u64,
}

enum Link {
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    Sse(Box<sse::SseLink>),
}

/// One read from a link.
enum Raw {
    Text(String),
    Closed(Option<CloseFrame>),
    Keepalive,
}

pub enum Event {
    Frame(Value),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect_with_header(url: &str, token: &str) -> Client {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connects");
        Client::over(ws)
    }

    pub async fn connect_bare(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client::over(ws)
    }

    pub fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            link: Link::Ws(Box::new(ws)),
            next_id: 1,
        }
    }

    /// Opens an SSE stream at `addr` (host:port) with the token in the header.
    pub async fn connect_sse(addr: &str, token: &str) -> Client {
        let link = sse::SseLink::open(addr, token)
            .await
            .unwrap_or_else(|(status, body)| panic!("SSE stream refused: {status} {body}"));
        Client {
            link: Link::Sse(Box::new(link)),
            next_id: 1,
        }
    }

    /// The WebSocket of a WebSocket client.
    pub fn ws(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        match &mut self.link {
            Link::Ws(ws) => ws,
            Link::Sse(_) => panic!("this client uses the SSE transport"),
        }
    }

    /// The SSE link of an SSE client.
    pub fn sse(&mut self) -> &mut sse::SseLink {
        match &mut self.link {
            Link::Sse(link) => link,
            Link::Ws(_) => panic!("this client uses a WebSocket"),
        }
    }

    async fn next_raw(&mut self) -> Raw {
        match &mut self.link {
            Link::Ws(ws) => match ws.next().await {
                Some(Ok(Message::Text(t))) => Raw::Text(t.to_string()),
                Some(Ok(Message::Close(frame))) => Raw::Closed(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Raw::Keepalive,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                ))
                | None => Raw::Closed(None),
                Some(Err(e)) => panic!("socket error {e}"),
            },
            Link::Sse(link) => match link.next_event().await {
                sse::SseEvent::Data(text) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["type"] == "close" {
                        Raw::Closed(Some(CloseFrame {
                            code: (v["code"].as_u64().unwrap() as u16).into(),
                            reason: v["reason"].as_str().unwrap_or("").to_owned().into(),
                        }))
                    } else {
                        Raw::Text(text)
                    }
                }
                sse::SseEvent::Comment => Raw::Keepalive,
                sse::SseEvent::End => Raw::Closed(None),
            },
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn send_json(&mut self, v: Value) {
        match &mut self.link {
            Link::Ws(ws) => ws.send(Message::text(v.to_string())).await.unwrap(),
            Link::Sse(link) => {
                let status = link.post(&v.to_string()).await;
                assert_eq!(status, 202, "POST of {v}");
            }
        }
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws().send(m).await.unwrap();
    }

    /// The next frame or close, skipping pings.
    pub async fn event(&mut self) -> Event {
        loop {
            let next = tokio::time::timeout(WAIT, self.next_raw())
                .await
                .expect("server answered in time");
            match next {
                Raw::Text(t) => return Event::Frame(serde_json::from_str(&t).unwrap()),
                Raw::Closed(frame) => return Event::Closed(frame),
                Raw::Keepalive => continue,
            }
        }
    }

    pub async fn frame(&mut self) -> Value {
        match self.event().await {
            Event::Frame(v) => v,
            Event::Closed(f) => panic!("connection closed: {f:?}"),
        }
    }

    /// The next frame, which must be of type `kind`. Room signals (presence, receipts,
    /// typing) that come in between are skipped unless `kind` is one.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let f = self.frame().await;
            if is_signal(&f) && !SIGNALS.contains(&kind) {
                continue;
            }
            assert_eq!(f["type"], kind, "expected {kind}, got {f}");
            return f;
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed_with(&mut self) -> u16 {
        loop {
            match self.event().await {
                Event::Closed(Some(f)) => return u16::from(f.code),
                Event::Closed(None) => panic!("closed without a close frame"),
                Event::Frame(_) => continue,
            }
        }
    }

    /// Sends a request with a fresh id and returns the reply with that id (frames of other
    /// types in between, such as `msg`, are kept in `skipped`).
    pub async fn request(&mut self, mut v: Value, skipped: &mut Vec<Value>) -> Value {
        let id = self.id();
        v["id"] = json!(id);
        self.send_json(v).await;
        loop {
            let f = self.frame().await;
            if f["id"] == json!(id) {
                return f;
            }
            skipped.push(f);
        }
    }

    pub async fn call(&mut self, v: Value) -> Value {
        let mut skipped = Vec::new();
        self.request(v, &mut skipped).await
    }

    pub async fn join(&mut self, room: &str, since: Option<u64>) -> Value {
        let mut req = json!({"type": "join", "room": room});
        if let Some(s) = since {
            req["since"] = json!(s);
        }
        let f = self.call(req).await;
        assert_eq!(f["type"], "joined", "{f}");
        f
    }

    pub async fn send(&mut self, room: &str, cmid: &str, body: &str) -> Value {
        let mut skipped = Vec::new();

        self.request(
            json!({"type":"send","room":room,"client_msg_id":cmid,"body":body}),
            &mut skipped,
        )
        .await
    }

    /// Collects `msg` frames until `n` arrived.
    pub async fn msgs(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let f = self.frame().await;
            if f["type"] == "msg" {
                out.push(f);
            }
        }
        out
    }

    /// Asserts the connection still answers a ping.
    pub async fn assert_alive(&mut self) {
        let f = self.call(json!({"type":"ping"})).await;
        assert_eq!(f["type"], "pong");
    }

    /// Asserts nothing but room signals (presence, receipts, typing) arrives for `ms`
    /// milliseconds: no stray message, reply or duplicate.
    pub async fn assert_quiet(&mut self, ms: u64) {
        let end = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(end, self.next_raw()).await {
                Err(_) => return,
                Ok(Raw::Keepalive) => continue,
                Ok(Raw::Text(t))
                    if serde_json::from_str::<Value>(&t).is_ok_and(|f| is_signal(&f)) =>
                {
                    continue;
                }
                Ok(Raw::Text(t)) => panic!("expected silence, got {t}"),
                Ok(Raw::Closed(f)) => panic!("expected silence, got a close {f:?}"),
            }
        }
    }
}

/// Frames a room sends by itself as people come, go, type and read.
pub const SIGNALS: [&str; 3] = ["presence", "receipts", "typing"];

pub fn is_signal(f: &Value) -> bool {
    f["type"].as_str().is_some_and(|t| SIGNALS.contains(&t))
}

pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

/// A minimal HTTP/1.1 GET returning the body of a 200 answer.
pub async fn http_get(url: &str) -> String {
    let (status, body) = http_get_status(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

pub async fn http_get_status(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap();
    let (status, _, body) = sse::http(host, "GET", &path, &[], b"").await;
    (status, body)
}
