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

/// A connection that is authenticated and joined to several rooms.
pub struct JoinedRooms {
    pub ws: Ws,
    /// `last_seq` of each room's `joined` reply, in the order the rooms were given.
    pub last_seqs: Vec<u64>,
    /// The `limits` object of the server's `ready` frame.
    pub limits: serde_json::Value,
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
    let j = connect_joined_rooms(target, user, &[room], config).await?;
    Ok(Joined {
        ws: j.ws,
        last_seq: j.last_seqs[0],
    })
}

/// Like [`connect_joined`], joining each of `rooms` in turn (at most the server's `max_rooms`).
pub async fn connect_joined_rooms(
    target: &Target,
    user: &str,
    rooms: &[&str],
    config: WebSocketConfig,
) -> anyhow::Result<JoinedRooms> {
    let mut backoff = Duration::from_millis(50);
    let mut last = None;
    for attempt in 1..=target.attempts.max(1) {
        match tokio::time::timeout(
            target.attempt_timeout,
            attempt_once(target, user, rooms, config),
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
    rooms: &[&str],
    config: WebSocketConfig,
) -> Result<JoinedRooms, AttemptError> {
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
    let limits = match proto::classify(&ready) {
        proto::Frame::Other { kind } if kind == "ready" => {
            serde_json::from_str::<serde_json::Value>(&ready)
                .map(|mut v| v["limits"].take())
                .unwrap_or_default()
        }
        proto::Frame::Error { code, message, .. } => {
            return Err(AttemptError::Fatal(anyhow!(
                "server refused {user}: {code}: {message}"
            )));
        }
        _ => {
            return Err(AttemptError::Fatal(anyhow!("expected ready, got {ready}")));
        }
    };

    let mut last_seqs = Vec::with_capacity(rooms.len());
    for (i, room) in rooms.iter().enumerate() {
        ws.send(Message::text(proto::join_frame(i as u64 + 1, room)))
            .await
            .map_err(|e| AttemptError::Transient(anyhow!("sending join: {e}")))?;
        last_seqs.push(await_joined(&mut ws, user, room).await?);
    }
    Ok(JoinedRooms {
        ws,
        last_seqs,
        limits,
    })
}

/// Reads until the `joined` reply of `room` and returns its `last_seq`.
async fn await_joined(ws: &mut Ws, user: &str, room: &str) -> Result<u64, AttemptError> {
    loop {
        let text = next_text(ws).await.map_err(AttemptError::Transient)?;
        match proto::classify(&text) {
            proto::Frame::Other { kind } if kind == "joined" => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| AttemptError::Fatal(anyhow!("bad joined frame {text}: {e}")))?;
                return v["last_seq"].as_u64().ok_or_else(|| {
                    AttemptError::Fatal(anyhow!("joined without last_seq: {text}"))
                });
            }
            proto::Frame::Error { code, message, .. } => {
                return Err(AttemptError::Fatal(anyhow!(
                    "join of {room} by {user} refused: {code}: {message}"
                )));
            }
            // A live message of a room joined earlier can already arrive; the caller counts
            // from last_seq.
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
    let room = vec![room.to_owned()];
    let plan = users.into_iter().map(|u| (u, room.clone())).collect();
    let joined = connect_many_rooms(target, plan, config).await?;
    Ok(joined
        .into_iter()
        .map(|j| Joined {
            ws: j.ws,
            last_seq: j.last_seqs[0],
        })
        .collect())
}

/// Like [`connect_many`], with each user joining its own list of rooms.
pub async fn connect_many_rooms(
    target: &Arc<Target>,
    plan: Vec<(String, Vec<String>)>,
    config: WebSocketConfig,
) -> anyhow::Result<Vec<JoinedRooms>> {
    let n = plan.len();
    let permits = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, (user, rooms)) in plan.into_iter().enumerate() {
        let (target, permits) = (target.clone(), permits.clone());
        set.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return (i, None); // skipped: an earlier connection failed
            };
            let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
            let r = connect_joined_rooms(&target, &user, &rooms, config)
                .await
                .with_context(|| format!("connection {i} ({user})"));
            (i, Some(r))
        });
    }
    let mut slots: Vec<Option<JoinedRooms>> = (0..n).map(|_| None).collect();
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
