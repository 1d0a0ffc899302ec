//! The fallback transport for clients that cannot open a WebSocket (a proxy or firewall in
//! the way): Server-Sent Events for the server's frames, HTTP POST for the client's.
//!
//! - `GET /v1/sse` with `Authorization: Bearer <token>` opens a stream. Its first frame is
//!   `ready` with a `session` id; every later frame is what the WebSocket would carry, one
//!   `data:` line each. Where a WebSocket would be closed with a code, the stream ends with a
//!   `close` frame carrying that code.
//! - `POST /v1/sse/<session>` with the same user's token carries client frames, one JSON
//!   object per line. They are queued for the session's connection in the order received, all
//!   of a request or none, and answered on the stream.
//!
//! The connection behind a stream is the same state machine as a WebSocket's
//! ([`crate::conn`]): the same limits, order, acks and resume. Docs: docs/protocol.md.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State, ws::Utf8Bytes},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chorus_core::{
    UserId,
    protocol::{ErrorCode, ServerFrame},
};
use tokio::sync::mpsc;

use crate::{
    auth::{AuthError, Identity},
    conn::{self, Incoming, Socket},
    server::{Shared, bearer, http_error},
};

/// Client frames a session may have queued and not yet handled. More: HTTP 429.
pub const MAX_QUEUED_FRAMES: usize = 64;
/// Smallest bound on a POST body, whatever the frame limit.
const MIN_POST_BYTES: usize = 1 << 20;
/// Written chunks waiting for the HTTP response to take them (each is one flush).
const STREAM_CHUNKS: usize = 8;

/// The open SSE sessions of a gateway, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    user: UserId,
    inbound: mpsc::Sender<Utf8Bytes>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .expect("the session map is never held across a panic")
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Removes its session from the map (and the gauge) when the connection ends.
struct Registered {
    sessions: Arc<Sessions>,
    id: String,
    gauge: metrics::Gauge,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
        self.gauge.decrement(1.0);
    }
}

/// The server side of one SSE session: client frames from the POSTs, server frames into the
/// response body.
pub(crate) struct SseSocket {
    inbound: mpsc::Receiver<Utf8Bytes>,
    out: mpsc::Sender<Bytes>,
    pending: Vec<u8>,
    _registered: Registered,
}

impl SseSocket {
    async fn write(&self, chunk: Vec<u8>) -> Result<(), String> {
        self.out
            .send(Bytes::from(chunk))
            .await
            .map_err(|_| "the stream was closed".to_owned())
    }
}

fn event(frame: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 8);
    push_event(&mut out, frame);
    out
}

/// One SSE event: server frames are single-line JSON, so one `data:` line each.
fn push_event(out: &mut Vec<u8>, frame: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(frame.as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl Socket for SseSocket {
    /// The client never answers a comment; a dead client shows as a failed write instead.
    const ANSWERS_PINGS: bool = false;

    async fn recv(&mut self) -> Incoming {
        tokio::select! {
            frame = self.inbound.recv() => match frame {
                Some(text) => Incoming::Text(text),
                None => Incoming::Closed,
            },
            // The response body was dropped: the client went away.
            _ = self.out.closed() => Incoming::Closed,
        }
    }

    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), String> {
        push_event(&mut self.pending, frame.as_str());
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.pending);
        self.write(chunk).await
    }

    async fn ping(&mut self) -> Result<(), String> {
        self.write(b": ping\n\n".to_vec()).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Result<(), String> {
        let frame = ServerFrame::Close { code, reason }.to_json();
        self.write(event(&frame)).await
    }

    async fn linger(&mut self) {}
}

/// A random session id: 128 bits, hex.
fn session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn unauthorized(e: &AuthError) -> Response {
    let message = match e {
        AuthError::Expired => "token expired",
        AuthError::Invalid(_) => "invalid token",
        AuthError::BadSubject(_) => "invalid token subject",
    };
    http_error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

/// The identity of a request's `Authorization: Bearer` header, or the refusal to send.
#[allow(
    clippy::result_large_err,
    reason = "once per request, and the refusal is the response itself"
)]
fn identify(shared: &Shared, headers: &HeaderMap) -> Result<Identity, Response> {
    match bearer(headers) {
        Some(Ok(token)) => shared.auth.verify(token).map_err(|e| unauthorized(&e)),
        Some(Err(why)) => Err(http_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            why,
        )),
        None => Err(http_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "expected Authorization: Bearer <token>",
        )),
    }
}

/// `GET /v1/sse`: opens a stream for the header's user.
pub(crate) async fn open(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let identity = match identify(&shared, &headers) {
        Ok(identity) => identity,
        Err(refusal) => {
            shared.metrics.error(ErrorCode::Unauthorized);
            return refusal;
        }
    };
    let Ok(id) = session_id() else {
        return http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "no randomness for a session id",
        );
    };
    if let Some(refusal) = shared.admit() {
        return refusal;
    }
    let (inbound_tx, inbound) = mpsc::channel(MAX_QUEUED_FRAMES);
    let (out, body) = mpsc::channel::<Bytes>(STREAM_CHUNKS);
    shared.sse.lock().insert(
        id.clone(),
        Session {
            user: identity.user.clone(),
            inbound: inbound_tx,
        },
    );
    shared.metrics.sse_sessions.increment(1.0);
    let socket = SseSocket {
        inbound,
        out,
        pending: Vec::new(),
        _registered: Registered {
            sessions: shared.sse.clone(),
            id: id.clone(),
            gauge: shared.metrics.sse_sessions.clone(),
        },
    };
    let tasks = shared.tasks.clone();
    tasks.spawn(conn::run(socket, shared, Some(Ok(identity)), Some(id)));
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), body))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            // Proxies that buffer responses (nginx) would hold the stream back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `POST /v1/sse/<session>`: queues the body's frames (JSON lines) for the session.
pub(crate) async fn post(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let identity = match identify(&shared, &headers) {
        Ok(identity) => identity,
        Err(refusal) => {
            shared.metrics.error(ErrorCode::Unauthorized);
            return refusal;
        }
    };
    let gone = || {
        http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such session; open a new stream",
        )
    };
    // Another user's session is reported like a missing one: ids are not to be probed.
    let inbound = match shared.sse.lock().get(&id) {
        Some(session) if session.user == identity.user => session.inbound.clone(),
        _ => return gone(),
    };
    let limit = post_limit(shared.config.max_frame_bytes);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        shared.metrics.error(ErrorCode::TooLarge);
        return http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            &format!("a request body may hold at most {limit} bytes"),
        );
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the body must be UTF-8 JSON lines",
        );
    };
    let frames: Vec<&str> = text
        .split('\n')
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .collect();
    if frames.is_empty() {
        return http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the body holds no frame",
        );
    }
    if frames.len() > MAX_QUEUED_FRAMES {
        return http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::LimitExceeded,
            &format!("a request may carry at most {MAX_QUEUED_FRAMES} frames"),
        );
    }
    // All of the request's frames or none, so a retry of a refused request never repeats
    // some of them.
    match inbound.try_reserve_many(frames.len()) {
        Ok(permits) => {
            for (permit, frame) in permits.zip(frames) {
                permit.send(Utf8Bytes::from(frame.to_owned()));
            }
            StatusCode::ACCEPTED.into_response()
        }
        Err(mpsc::error::TrySendError::Full(())) => {
            shared.metrics.error(ErrorCode::RateLimited);
            let body = serde_json::json!({
                "type": "error",
                "code": ErrorCode::RateLimited.as_str(),
                "message": "too many frames queued for this session; retry",
                "retry_after_ms": 100,
            });
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
        }
        Err(mpsc::error::TrySendError::Closed(())) => gone(),
    }
}

/// The largest POST body: a whole frame of the largest size, or 1 MiB of small ones.
pub(crate) fn post_limit(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_add(1024).max(MIN_POST_BYTES)
}
