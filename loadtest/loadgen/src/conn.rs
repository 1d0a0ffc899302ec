//! Opening many authenticated, joined connections with bounded concurrency and retries.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet, time::Instant};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest, http::StatusCode, protocol::WebSocketConfig,
    },
};

use crate::proto;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to reach and authenticate to the server.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    pub key: jsonwebtoken::EncodingKey,
    /// Connections opened at once.
    pub concurrency: usize,
    /// Attempts per connection before giving up (transient errors only).
    pub attempts: u32,
    /// Limit for one attempt: TCP connect, upgrade, `ready`, `join` and `joined`.
    pub attempt_timeout: Duration,
    pub token_ttl_secs: u64,
}

/// A connection that is authenticated and joined to a room.
pub struct Joined {
    pub ws: Ws,
    /// `last_seq` of the `joined` reply: live messages start after it.
    pub last_seq: u64,
}

/// Small buffers for connections that mostly sit idle or receive small frames: the default
/// 128 KiB read buffer is allocated eagerly, per connection.
pub fn small_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

enum AttemptError {
    Transient(anyhow::Error),
    Fatal(anyhow::Error),
}

/// Connects as `user`, waits for `ready`, joins `room` and waits for `joined`, retrying transient
/// failures (refused/reset connections, timeouts, HTTP 503) with backoff.
pub async fn connect_joined(
    target: &Target,
    user: &str,
    room: &str,
    config: WebSocketConfig,
) -> anyhow::Result<Joined> {
    let mut backoff = Duration::from_millis(50);
    let mut last = None;
    for attempt in 1..=target.attempts.max(1) {
        match tokio::time::timeout(
            target.attempt_timeout,
            attempt_once(target, user, room, config),
        )
        .await
        {
            Ok(Ok(joined)) => return Ok(joined),
            Ok(Err(AttemptError::Fatal(e))) => return Err(e),
            Ok(Err(AttemptError::Transient(e))) => last = Some(e),
            Err(_) => {
                last = Some(anyhow!(
                    "attempt timed out after {:?}",
                    target.attempt_timeout
                ))
            }
        }
        if attempt < target.attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no attempt made"))
        .context(format!("gave up after {} attempts", target.attempts)))
}

async fn attempt_once(
    target: &Target,
    user: &str,
    room: &str,
    config: WebSocketConfig,
) -> Result<Joined, AttemptError> {
    let token =
        proto::mint(&target.key, user, target.token_ttl_secs).map_err(AttemptError::Fatal)?;
    let mut req = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| AttemptError::Fatal(anyhow!("bad --url {:?}: {e}", target.url)))?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|e| AttemptError::Fatal(anyhow!("bad token header: {e}")))?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(classify_connect_error)?;

    let ready = next_text(&mut ws).await.map_err(AttemptError::Transient)?;
    match proto::classify(&ready) {
        proto::Frame::Other { kind } if kind == "ready" => {}
        proto::Frame::Error { code, message, .. } => {
            return Err(AttemptError::Fatal(anyhow!(
                "server refused {user}: {code}: {message}"
            )));
        }
        _ => {
            return Err(AttemptError::Fatal(anyhow!("expected ready, got {ready}")));
        }
    }

    ws.send(Message::text(proto::join_frame(1, room)))
        .await
        .map_err(|e| AttemptError::Transient(anyhow!("sending join: {e}")))?;
    loop {
        let text = next_text(&mut ws).await.map_err(AttemptError::Transient)?;
        match proto::classify(&text) {
            proto::Frame::Other { kind } if kind == "joined" => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| AttemptError::Fatal(anyhow!("bad joined frame {text}: {e}")))?;
                let last_seq = v["last_seq"].as_u64().ok_or_else(|| {
                    AttemptError::Fatal(anyhow!("joined without last_seq: {text}"))
                })?;
                return Ok(Joined { ws, last_seq });
            }
            proto::Frame::Error { code, message, .. } => {
                return Err(AttemptError::Fatal(anyhow!(
                    "join of {room} by {user} refused: {code}: {message}"
                )));
            }
            // A live message of the room can already arrive; the caller counts from last_seq.
            _ => {}
        }
    }
}

fn classify_connect_error(e: tungstenite::Error) -> AttemptError {
    match e {
        tungstenite::Error::Io(e) => AttemptError::Transient(anyhow!("connect: {e}")),
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let e = anyhow!("upgrade refused with HTTP {status}: {body}");
            if status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::BAD_GATEWAY
            {
                AttemptError::Transient(e)
            } else {
                AttemptError::Fatal(e)
            }
        }
        tungstenite::Error::Url(e) => AttemptError::Fatal(anyhow!("bad --url: {e}")),
        e @ (tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(_)) => AttemptError::Transient(anyhow!("handshake: {e}")),
        e => AttemptError::Fatal(anyhow!("handshake: {e}")),
    }
}

/// The next text frame, skipping pings and pongs.
async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => bail!("server closed the connection: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("reading: {e}"),
            None => bail!("connection ended"),
        }
    }
}

/// Opens one joined connection per user, at most `target.concurrency` at a time. Fails if any
/// could not be opened (naming how many and the first few reasons).
pub async fn connect_many(
    target: &Arc<Target>,
    users: Vec<String>,
    room: &str,
    config: WebSocketConfig,
) -> anyhow::Result<Vec<Joined>> {
    let n = users.len();
    let permits = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let room: Arc<str> = room.into();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, user) in users.into_iter().enumerate() {
        let (target, permits, room) = (target.clone(), permits.clone(), room.clone());
        set.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return (i, None); // skipped: an earlier connection failed
            };
            let r = connect_joined(&target, &user, &room, config)
                .await
                .with_context(|| format!("connection {i} ({user})"));
            (i, Some(r))
        });
    }
    let mut slots: Vec<Option<Joined>> = (0..n).map(|_| None).collect();
    let mut errors = Vec::new();
    let mut skipped = 0;
    while let Some(res) = set.join_next().await {
        let (i, r) = res.context("connect task panicked")?;
        match r {
            None => skipped += 1,
            Some(Ok(j)) => slots[i] = Some(j),
            Some(Err(e)) => {
                if errors.is_empty() {
                    // Stop early instead of hammering a server that refuses us.
                    permits.close();
                }
                errors.push(e);
            }
        }
    }
    if !errors.is_empty() {
        let opened = slots.iter().filter(|s| s.is_some()).count();
        let reasons: Vec<String> = errors.iter().take(3).map(|e| format!("{e:#}")).collect();
        bail!(
            "could only open {opened} of {n} connections ({} failed, {skipped} not tried, after \
             {:?}); first errors: {}",
            errors.len(),
            started.elapsed(),
            reasons.join(" | ")
        );
    }
    Ok(slots.into_iter().map(|s| s.expect("all filled")).collect())
}

/// Closes connections politely (close frame, wait for the server's), all at once, giving up
/// after `limit`.
pub async fn close_all(conns: Vec<Ws>, limit: Duration) {
    let mut set = JoinSet::new();
    for mut ws in conns {
        set.spawn(async move {
            let _ = tokio::time::timeout(limit, async {
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        });
    }
    while set.join_next().await.is_some() {}
}
