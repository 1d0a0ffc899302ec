//! One WebSocket connection: authentication, then the protocol v1 request loop.
//!
//! The connection task owns the socket. It is the only writer: frames from the hub and from
//! request tasks reach it through the connection's [`Outbox`], and a reply it writes itself is
//! written only after everything already queued, so frames of one room are never reordered.
//! Sends of one connection go through one sender task in the order received, so a client that
//! sends without waiting for acks still gets its messages sequenced in its order.
//!
//! A connection's failure is logged once, here, when the task ends.

mod features;
mod socket;

pub(crate) use socket::{Incoming, Socket};

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use chorus_core::{
    Ext, RoomId, UserId,
    protocol::{
        ClientFrame, DEFAULT_HISTORY_LIMIT, ErrorCode, MAX_CLIENT_MSG_ID_LEN, MAX_HISTORY_LIMIT,
        RequestId, ServerFrame, WireError, close,
    },
    router::{HistoryAnchor, HistoryRequest, JoinRequest, SendRequest},
    time::now_ms,
    trace::TraceParent,
};
use chorus_telemetry::{Attr, Kind};
use tokio::sync::mpsc;

use crate::{
    auth::{AuthError, Identity},
    hub::{Attach, JoinedInfo, frame_of},
    outbox::{Closed, Outbox},
    ratelimit::TokenBucket,
    server::Shared,
};

/// Backlog messages read per page while a join replays history.
const JOIN_PAGE: u32 = 100;
/// Pages a join may read before it gives up (the room outruns the reader).
const JOIN_MAX_ROUNDS: usize = 100_000;
/// How long a closing connection waits for the client's close reply.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    Shutdown,
    Unauthorized(&'static str),
    SlowConsumer,
    Resync,
    TooBig,
    Silent,
    Socket(#[allow(dead_code, reason = "read by the Debug log line")] String),
    WriteTimeout,
}

impl End {
    /// The close frame to send, if any.
    fn close_frame(&self) -> Option<(u16, &'static str)> {
        match self {
            End::ClientClosed | End::Socket(_) | End::WriteTimeout | End::Silent => None,
            End::Shutdown => Some((
                close::GOING_AWAY,
                "server shutting down; reconnect and resume",
            )),
            End::Unauthorized(why) => Some((close::UNAUTHORIZED, why)),
            End::SlowConsumer => {
                Some((close::SLOW_CONSUMER, "slow consumer; reconnect and resume"))
            }
            End::Resync => Some((
                close::TRY_AGAIN_LATER,
                "room delivery interrupted; reconnect and resume",
            )),
            End::TooBig => Some((close::TOO_BIG, "frame too large")),
        }
    }
}

struct SendJob {
    id: Option<RequestId>,
    req: SendRequest,
    started: Instant,
    /// The gateway's span of this send, from the frame to its ack or error.
    span: chorus_telemetry::Span,
}

struct Conn<S> {
    socket: S,
    /// The SSE session id, announced in `ready` (None on a WebSocket).
    session: Option<String>,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    conn_id: u64,
    user: UserId,
    expires_at: u64,
    rooms: Vec<RoomId>,
    bucket: TokenBucket,
    /// Rate of ephemeral requests (typing, read marks, relayed events).
    events: TokenBucket,
    /// When a typing start was last forwarded, per room.
    typing_sent: HashMap<RoomId, Instant>,
    /// Created with the first send; its task ends when this sender is dropped.
    sends: Option<mpsc::Sender<SendJob>>,
    /// The `traceparent` of the frame being handled, taken by the send it becomes.
    client_trace: Option<TraceParent>,
    heard_from: Instant,
    batch: Vec<Utf8Bytes>,
}

/// Serves one client transport until it ends. `header_auth` is the outcome of an
/// `Authorization` header on the request that opened it, if there was one (an SSE stream
/// always has one); `session` is the SSE session id.
pub(crate) async fn run<S: Socket>(
    socket: S,
    shared: Arc<Shared>,
    header_auth: Option<Result<Identity, AuthError>>,
    session: Option<String>,
) {
    let conn_id = shared.next_conn_id();
    shared.metrics.connections.increment(1.0);
    shared.metrics.connections_total.increment(1);
    // Boxed here and below: these run briefly, and inlined they would make every idle
    // connection's task as large as the largest of them.
    let (mut socket, outcome) = Box::pin(authenticate(socket, &shared, header_auth)).await;
    match outcome {
        Ok((identity, reply_id)) => {
            let mut conn = Conn {
                socket,
                session,
                outbox: Arc::new(Outbox::new(shared.config.outbound_queue_bytes)),
                conn_id,
                bucket: TokenBucket::new(
                    shared.config.send_rate,
                    shared.config.send_burst,
                    Instant::now(),
                ),
                events: TokenBucket::new(
                    shared.config.event_rate,
                    shared.config.event_burst,
                    Instant::now(),
                ),
                typing_sent: HashMap::new(),
                user: identity.user,
                expires_at: identity.expires_at,
                rooms: Vec::new(),
                sends: None,
                client_trace: None,
                heard_from: Instant::now(),
                batch: Vec::new(),
                shared: shared.clone(),
            };
            let end = conn.serve(reply_id).await;
            if matches!(end, End::SlowConsumer) {
                shared.metrics.slow_consumers.increment(1);
            }
            Box::pin(conn.finish(&end)).await;
            for room in &conn.rooms {
                shared.hub.detach_now(room, conn_id);
            }
            tracing::debug!(conn_id, user = %conn.user, reason = ?end, "connection closed");
        }
        Err(end) => {
            if let Some((code, reason)) = end.close_frame() {
                let _ = send_close(&mut socket, code, reason, shared.config.write_timeout).await;
            }
            tracing::debug!(conn_id, reason = ?end, "connection closed before authentication");
        }
    }
    shared.metrics.connections.decrement(1.0);
    shared.release_connection();
}

async fn send_close<S: Socket>(
    socket: &mut S,
    code: u16,
    reason: &'static str,
    limit: Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(limit, socket.close(code, reason)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn send_text<S: Socket>(socket: &mut S, text: String, limit: Duration) -> Result<(), End> {
    let written = tokio::time::timeout(limit, async {
        socket.feed(text.into()).await?;
        socket.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Socket(e)),
        Err(_) => Err(End::WriteTimeout),
    }
}

/// Refuses authentication: an `unauthorized` error frame, then the caller closes with 4001.
async fn refuse<S: Socket>(
    socket: &mut S,
    shared: &Shared,
    id: Option<&RequestId>,
    message: &'static str,
) -> End {
    shared.metrics.error(ErrorCode::Unauthorized);
    let error = WireError::new(ErrorCode::Unauthorized, message);
    let _ = send_text(
        socket,
        ServerFrame::error(id, &error).to_json(),
        shared.config.write_timeout,
    )
    .await;
    End::Unauthorized(message)
}

fn auth_message(e: &AuthError) -> &'static str {
    match e {
        AuthError::Expired => "token expired",
        AuthError::Invalid(_) => "invalid token",
        AuthError::BadSubject(_) => "invalid token subject",
    }
}

async fn authenticate<S: Socket>(
    mut socket: S,
    shared: &Shared,
    header_auth: Option<Result<Identity, AuthError>>,
) -> (S, Result<(Identity, Option<RequestId>), End>) {
    let outcome = check_credentials(&mut socket, shared, header_auth).await;
    (socket, outcome)
}

async fn check_credentials<S: Socket>(
    socket: &mut S,
    shared: &Shared,
    header_auth: Option<Result<Identity, AuthError>>,
) -> Result<(Identity, Option<RequestId>), End> {
    match header_auth {
        Some(Ok(identity)) => Ok((identity, None)),
        Some(Err(e)) => Err(refuse(socket, shared, None, auth_message(&e)).await),
        None => {
            let first = tokio::time::timeout(shared.config.auth_timeout, async {
                loop {
                    match socket.recv().await {
                        Incoming::Text(t) => return Some(Some(t)),
                        Incoming::Binary(_) => return Some(None),
                        Incoming::Control => continue,
                        Incoming::Closed | Incoming::Failed(_) => return None,
                    }
                }
            })
            .await;
            let text = match first {
                Err(_) => {
                    return Err(refuse(socket, shared, None, "authentication timed out").await);
                }
                Ok(None) => return Err(End::ClientClosed),
                Ok(Some(None)) => {
                    return Err(refuse(socket, shared, None, "authenticate first").await);
                }
                Ok(Some(Some(text))) => text,
            };
            match ClientFrame::parse(&text) {
                Ok(ClientFrame::Auth { id, token }) => match shared.auth.verify(&token) {
                    Ok(identity) => Ok((identity, id)),
                    Err(e) => Err(refuse(socket, shared, id.as_ref(), auth_message(&e)).await),
                },
                Ok(other) => Err(refuse(socket, shared, other.id(), "authenticate first").await),
                Err(bad) => {
                    Err(refuse(socket, shared, bad.id.as_ref(), "authenticate first").await)
                }
            }
        }
    }
}

impl<S: Socket> Conn<S> {
    async fn serve(&mut self, ready_id: Option<RequestId>) -> End {
        let ready = ServerFrame::Ready {
            id: ready_id.as_ref(),
            user: &self.user,
            conn_id: self.conn_id,
            session: self.session.as_deref(),
            protocol: 1,
            limits: &self.shared.limits,
        };
        if let Err(end) = Box::pin(self.write(ready.to_json())).await {
            return end;
        }
        let period = self.shared.config.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.shared.clone();
        let outbox = self.outbox.clone();
        // When the server drains, this connection's moment to go within the drain window.
        let mut drain_at: Option<tokio::time::Instant> = None;
        loop {
            let step = tokio::select! {
                biased;
                _ = shared.shutdown.cancelled(), if drain_at.is_none() => {
                    drain_at = Some(tokio::time::Instant::now() + self.drain_delay());
                    Ok(())
                }
                _ = sleep_until(drain_at) => Err(End::Shutdown),
                _ = outbox.ready() => self.flush_outbox().await,
                // Handling a client frame is boxed: frames are rate-limited, and inlined the
                // handler would make every idle connection's task a kilobyte and more larger.
                incoming = self.socket.recv() => Box::pin(self.on_incoming(incoming)).await,
                _ = ping.tick() => Box::pin(self.on_tick(period)).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// How long after a drain begins this connection is told to go: spread evenly over the
    /// drain window, so its clients do not all reconnect elsewhere at the same instant.
    fn drain_delay(&self) -> Duration {
        self.shared
            .config
            .drain_window
            .mul_f64(spread(self.conn_id))
    }

    /// Sends the close frame (after a `reconnect` frame when draining), then reads until the
    /// client's close reply (briefly), so frames the client had in flight do not turn the
    /// close into a TCP reset that loses it.
    async fn finish(&mut self, end: &End) {
        let Some((code, reason)) = end.close_frame() else {
            return;
        };
        let limit = self.shared.config.write_timeout;
        if matches!(end, End::Shutdown) {
            let frame = ServerFrame::Reconnect { reason: "shutdown" }.to_json();
            if send_text(&mut self.socket, frame, limit).await.is_err() {
                return;
            }
        }
        if send_close(&mut self.socket, code, reason, limit)
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.socket.linger()).await;
    }

    async fn on_tick(&mut self, period: Duration) -> Result<(), End> {
        if now_ms() / 1000 >= self.expires_at {
            self.reply_error(
                None,
                WireError::new(ErrorCode::Unauthorized, "token expired"),
            )
            .await?;
            return Err(End::Unauthorized("token expired"));
        }
        if S::ANSWERS_PINGS && self.heard_from.elapsed() > period * 2 {
            return Err(End::Silent);
        }
        match tokio::time::timeout(self.shared.config.write_timeout, self.socket.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Socket(e)),
            Err(_) => Err(End::WriteTimeout),
        }
    }

    async fn on_incoming(&mut self, incoming: Incoming) -> Result<(), End> {
        self.heard_from = Instant::now();
        match incoming {
            Incoming::Closed => Err(End::ClientClosed),
            // Beyond the transport cap (twice the limit): the frame was not read, so no
            // graceful refusal is possible.
            Incoming::Failed(e) => Err(End::Socket(e)),
            ref m @ (Incoming::Text(_) | Incoming::Binary(_))
                if payload_len(m) > self.shared.config.max_frame_bytes =>
            {
                let error = WireError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "frame larger than {} bytes",
                        self.shared.config.max_frame_bytes
                    ),
                );
                self.shared.metrics.error(ErrorCode::TooLarge);
                self.write(ServerFrame::error(None, &error).to_json())
                    .await?;
                Err(End::TooBig)
            }
            Incoming::Control => Ok(()),
            Incoming::Binary(_) => {
                self.shared.metrics.frame_in("binary");
                self.reply_error(
                    None,
                    WireError::new(
                        ErrorCode::BadRequest,
                        "binary frames are not supported; send JSON text",
                    ),
                )
                .await
            }
            Incoming::Text(text) => match ClientFrame::parse(&text) {
                Ok(frame) => self.on_frame(frame).await,
                Err(bad) => {
                    self.shared.metrics.frame_in("invalid");
                    self.reply_error(bad.id.as_ref(), bad.error).await
                }
            },
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Result<(), End> {
        self.client_trace = if chorus_telemetry::enabled() {
            frame.traceparent().and_then(TraceParent::parse)
        } else {
            None
        };
        // Subscriptions the hub ended (a ban, a removal) are no longer joined.
        for room in self.outbox.take_revoked() {
            self.rooms.retain(|r| *r != room);
            self.typing_sent.remove(&room);
        }
        match frame {
            ClientFrame::Ping { id } => {
                self.shared.metrics.frame_in("ping");
                self.write(ServerFrame::Pong { id: id.as_ref() }.to_json())
                    .await
            }
            ClientFrame::Auth { id, .. } => {
                self.shared.metrics.frame_in("auth");
                self.reply_error(
                    id.as_ref(),
                    WireError::new(ErrorCode::BadRequest, "already authenticated"),
                )
                .await
            }
            ClientFrame::Join { id, room, since } => {
                self.shared.metrics.frame_in("join");
                Box::pin(self.join(id, room, since)).await
            }
            ClientFrame::Leave { id, room } => {
                self.shared.metrics.frame_in("leave");
                Box::pin(self.leave(id, room)).await
            }
            frame @ (ClientFrame::Send { .. }
            | ClientFrame::Edit { .. }
            | ClientFrame::Delete { .. }
            | ClientFrame::Event { .. }
            | ClientFrame::CreateRoom { .. }
            | ClientFrame::OpenDm { .. }
            | ClientFrame::Invite { .. }
            | ClientFrame::Remove { .. }
            | ClientFrame::SetRole { .. }
            | ClientFrame::Mute { .. }
            | ClientFrame::Unmute { .. }
            | ClientFrame::Ban { .. }
            | ClientFrame::Unban { .. }
            | ClientFrame::Disconnect { .. }
            | ClientFrame::LeaveRoom { .. }
            | ClientFrame::Typing { .. }
            | ClientFrame::Read { .. }
            | ClientFrame::Rooms { .. }
            | ClientFrame::Members { .. }
            | ClientFrame::Who { .. }) => {
                self.shared.metrics.frame_in(frame.kind());
                Box::pin(self.on_feature(frame)).await
            }
            ClientFrame::History {
                id,
                room,
                before,
                after,
                limit,
            } => {
                self.shared.metrics.frame_in("history");
                Box::pin(self.history(id, room, before, after, limit)).await
            }
        }
    }

    async fn join(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        since: Option<u64>,
    ) -> Result<(), End> {
        if self.rooms.contains(&room) {
            let e = WireError::new(
                ErrorCode::BadRequest,
                "already joined; leave first to join again",
            )
            .in_room(&room);
            return self.reply_error(id.as_ref(), e).await;
        }
        let max = self.shared.config.max_rooms_per_conn;
        if self.rooms.len() >= max {
            let e = WireError::new(
                ErrorCode::LimitExceeded,
                format!("a connection may join at most {max} rooms"),
            )
            .in_room(&room);
            return self.reply_error(id.as_ref(), e).await;
        }
        match self.replay_and_attach(id.as_ref(), &room, since).await? {
            Ok(()) => {
                self.rooms.push(room);
                Ok(())
            }
            Err(e) => self.reply_error(id.as_ref(), e.in_room(&room)).await,
        }
    }

    /// The join protocol: the router authorizes and gives the backlog; with `since`, the
    /// backlog is written first and the hub takes over from the seq it reached; without, the
    /// hub queues `joined` itself ahead of the first live message.
    async fn replay_and_attach(
        &mut self,
        id: Option<&RequestId>,
        room: &RoomId,
        since: Option<u64>,
    ) -> Result<Result<(), WireError>, End> {
        let router = self.shared.router.clone();
        let req = JoinRequest {
            room: room.clone(),
            user: Some(self.user.clone()),
            since,
            limit: JOIN_PAGE,
        };
        let reply = match router.join(req).await {
            Ok(reply) => reply,
            Err(e) => return Ok(Err(WireError::from(&e))),
        };
        let hub = self.shared.hub.clone();
        let info = JoinedInfo {
            visibility: reply.visibility,
            online: reply.online.clone(),
            authorized_at: reply.last_seq,
        };
        let Some(since) = since else {
            return Ok(
                match hub
                    .attach(
                        room,
                        self.conn_id,
                        &self.user,
                        &self.outbox,
                        &info,
                        None,
                        id.cloned(),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(WireError::from(&e)),
                },
            );
        };
        self.write(
            ServerFrame::Joined {
                id,
                room,
                last_seq: reply.last_seq,
                visibility: reply.visibility,
                online: (&reply.online).into(),
            }
            .to_json(),
        )
        .await?;
        let mut cursor = since;
        let mut page = reply.backlog;
        let mut more = reply.has_more;
        for _ in 0..JOIN_MAX_ROUNDS {
            if let Some(cut) = revoked_after(&page, &self.user, reply.last_seq) {
                // Access ended after the router authorized this join (the two raced): the
                // client gets the entry that ended it, and nothing after.
                self.write_all(page[..=cut].iter().map(frame_of)).await?;
                return Ok(Err(WireError::new(
                    ErrorCode::Forbidden,
                    "access to this room was revoked",
                )));
            }
            if let Some(last) = page.last() {
                cursor = last.seq;
            }
            self.write_all(page.iter().map(frame_of)).await?;
            if !more {
                match hub
                    .attach(
                        room,
                        self.conn_id,
                        &self.user,
                        &self.outbox,
                        &info,
                        Some(cursor),
                        None,
                    )
                    .await
                {
                    Ok(Attach::Attached { .. }) => return Ok(Ok(())),
                    Ok(Attach::Behind { .. }) => {}
                    Err(e) => return Ok(Err(WireError::from(&e))),
                }
            }
            let req = HistoryRequest {
                room: room.clone(),
                user: Some(self.user.clone()),
                anchor: HistoryAnchor::After(cursor),
                limit: JOIN_PAGE,
            };
            match router.history(req).await {
                Ok(next) => {
                    page = next.messages;
                    more = next.has_more;
                }
                Err(e) => return Ok(Err(WireError::from(&e))),
            }
        }
        Ok(Err(WireError::new(
            ErrorCode::Unavailable,
            "the room is busier than this join could follow; retry",
        )))
    }

    async fn leave(&mut self, id: Option<RequestId>, room: RoomId) -> Result<(), End> {
        let Some(i) = self.rooms.iter().position(|r| *r == room) else {
            let e = WireError::new(ErrorCode::NotFound, "not joined to this room").in_room(&room);
            return self.reply_error(id.as_ref(), e).await;
        };
        self.rooms.swap_remove(i);
        let left = Utf8Bytes::from(
            ServerFrame::Left {
                id: id.as_ref(),
                room: &room,
                reason: None,
            }
            .to_json(),
        );
        self.shared
            .hub
            .detach(&room, self.conn_id, &self.outbox, left)
            .await;
        Ok(())
    }

    /// Queues one log entry with the connection's sender task. Content (`need_join`) may
    /// only go to a joined room; membership requests need no join.
    async fn submit(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        client_msg_id: Option<String>,
        body: String,
        ext: Ext,
        need_join: bool,
    ) -> Result<(), End> {
        let config = &self.shared.config;
        let refusal = if need_join && !self.rooms.contains(&room) {
            Some(WireError::new(
                ErrorCode::Forbidden,
                "join the room before sending to it",
            ))
        } else if body.len() > config.max_body_bytes {
            Some(WireError::new(
                ErrorCode::TooLarge,
                format!("body is larger than {} bytes", config.max_body_bytes),
            ))
        } else if client_msg_id
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > MAX_CLIENT_MSG_ID_LEN)
        {
            Some(WireError::new(
                ErrorCode::BadRequest,
                format!("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_LEN} bytes"),
            ))
        } else if let Err(wait) = self.bucket.try_take(Instant::now()) {
            self.shared.metrics.rate_limited.increment(1);
            Some(
                WireError::new(ErrorCode::RateLimited, "send rate exceeded")
                    .retry_after(wait.as_millis().max(1) as u64),
            )
        } else if !self.outbox.try_begin_request(config.max_in_flight) {
            Some(WireError::new(
                ErrorCode::LimitExceeded,
                format!("at most {} requests may be in flight", config.max_in_flight),
            ))
        } else {
            None
        };
        let client_trace = self.client_trace.take();
        if let Some(e) = refusal {
            return self.reply_error(id.as_ref(), e.in_room(&room)).await;
        }
        let span = self.send_span(&room, client_msg_id.as_deref(), &ext, client_trace);
        let job = SendJob {
            id,
            req: SendRequest {
                trace: span.traceparent(),
                room,
                from: self.user.clone(),
                client_msg_id,
                body,
                ext,
            },
            started: Instant::now(),
            span,
        };
        let sends = self
            .sends
            .get_or_insert_with(|| spawn_sender(self.shared.clone(), self.outbox.clone()));
        // Capacity equals the in-flight bound checked above, so this never waits.
        if sends.send(job).await.is_err() {
            self.outbox.end_request();
            return Err(End::Socket("sender task ended".into()));
        }
        Ok(())
    }

    /// The gateway's span of one send (OpenTelemetry messaging conventions: the producer of
    /// the message). The client's context is its parent only with `trace_client_parent`;
    /// otherwise it is linked.
    fn send_span(
        &self,
        room: &RoomId,
        client_msg_id: Option<&str>,
        ext: &Ext,
        client: Option<TraceParent>,
    ) -> chorus_telemetry::Span {
        if !chorus_telemetry::enabled() {
            return chorus_telemetry::Span::none();
        }
        let (parent, links) = match &client {
            Some(c) if self.shared.config.trace_client_parent => (Some(c), Vec::new()),
            Some(c) => (None, vec![c]),
            None => (None, Vec::new()),
        };
        let transport = if self.session.is_some() {
            "sse"
        } else {
            "websocket"
        };
        chorus_telemetry::start_linked("send", Kind::Producer, parent, &links, |a| {
            a.push(Attr::new("messaging.system", "chorus"));
            a.push(Attr::new("messaging.operation.type", "send"));
            a.push(Attr::new("messaging.operation.name", "send"));
            a.push(Attr::new("messaging.destination.name", room.to_string()));
            if let Some(c) = client_msg_id {
                a.push(Attr::new("messaging.message.id", c.to_owned()));
            }
            a.push(Attr::new("chorus.kind", ext.kind.as_str()));
            a.push(Attr::new("chorus.transport", transport));
        })
    }

    async fn history(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<(), End> {
        let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        let anchor = match (before, after) {
            (Some(_), Some(_)) => Err("give before or after, not both"),
            (Some(b), None) => Ok(HistoryAnchor::Before(b)),
            (None, Some(a)) => Ok(HistoryAnchor::After(a)),
            (None, None) => Ok(HistoryAnchor::Latest),
        };
        let refusal = match anchor {
            Err(why) => Some(WireError::new(ErrorCode::BadRequest, why)),
            Ok(_) if limit == 0 || limit > MAX_HISTORY_LIMIT => Some(WireError::new(
                ErrorCode::BadRequest,
                format!("limit must be between 1 and {MAX_HISTORY_LIMIT}"),
            )),
            Ok(_)
                if !self
                    .outbox
                    .try_begin_request(self.shared.config.max_in_flight) =>
            {
                Some(WireError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "at most {} requests may be in flight",
                        self.shared.config.max_in_flight
                    ),
                ))
            }
            Ok(_) => None,
        };
        let (Ok(anchor), None) = (anchor, refusal.as_ref()) else {
            let e = refusal.expect("an Err anchor always has a refusal");
            return self.reply_error(id.as_ref(), e.in_room(&room)).await;
        };
        let req = HistoryRequest {
            room,
            user: Some(self.user.clone()),
            anchor,
            limit,
        };
        let (shared, outbox) = (self.shared.clone(), self.outbox.clone());
        tokio::spawn(async move {
            let room = req.room.clone();
            let frame = match shared.router.history(req).await {
                Ok(page) => ServerFrame::History {
                    id: id.as_ref(),
                    room: &room,
                    messages: &page.messages,
                    has_more: page.has_more,
                }
                .to_json(),
                Err(e) => {
                    let e = WireError::from(&e).in_room(&room);
                    shared.metrics.error(e.code);
                    ServerFrame::error(id.as_ref(), &e).to_json()
                }
            };
            outbox.end_request();
            outbox.push(frame.into());
        });
        Ok(())
    }

    async fn reply_error(&mut self, id: Option<&RequestId>, error: WireError) -> Result<(), End> {
        self.shared.metrics.error(error.code);
        self.write(ServerFrame::error(id, &error).to_json()).await
    }

    /// Writes one frame after everything already queued.
    async fn write(&mut self, frame: String) -> Result<(), End> {
        self.write_all(std::iter::once(Utf8Bytes::from(frame)))
            .await
    }

    /// Writes `frames` after everything already queued, with one flush.
    async fn write_all(&mut self, frames: impl Iterator<Item = Utf8Bytes>) -> Result<(), End> {
        let closed = self.outbox.drain(&mut self.batch);
        self.batch.extend(frames);
        self.write_batch().await?;
        closed.map_or(Ok(()), |c| Err(closed_end(c)))
    }

    async fn flush_outbox(&mut self) -> Result<(), End> {
        let closed = self.outbox.drain(&mut self.batch);
        if let Some(c) = closed {
            self.batch.clear();
            return Err(closed_end(c));
        }
        self.write_batch().await
    }

    async fn write_batch(&mut self) -> Result<(), End> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let socket = &mut self.socket;
        let batch = &mut self.batch;
        let written = tokio::time::timeout(self.shared.config.write_timeout, async {
            for frame in batch.drain(..) {
                socket.feed(frame).await?;
            }
            socket.flush().await
        })
        .await;
        if self.batch.capacity() > 256 {
            self.batch = Vec::new();
        }
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Socket(e)),
            Err(_) => Err(End::WriteTimeout),
        }
    }
}

/// The index in `page` of an entry after seq `authorized_at` that revoked `user`'s access.
fn revoked_after(
    page: &[chorus_core::Message],
    user: &UserId,
    authorized_at: u64,
) -> Option<usize> {
    page.iter().position(|m| {
        m.seq > authorized_at
            && m.ext
                .member
                .as_ref()
                .is_some_and(|c| c.revoke && c.user == *user)
    })
}

fn payload_len(m: &Incoming) -> usize {
    match m {
        Incoming::Text(t) => t.len(),
        Incoming::Binary(len) => *len,
        _ => 0,
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A fraction in [0, 1) that spreads consecutive connection ids evenly (a SplitMix64 hash).
fn spread(conn_id: u64) -> f64 {
    let mut z = conn_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn closed_end(c: Closed) -> End {
    match c {
        Closed::SlowConsumer => End::SlowConsumer,
        Closed::Resync => End::Resync,
    }
}

/// Starts the task that forwards this connection's sends to the router in the order the
/// client sent them, and queues each ack or error. Sends that queue up while a batch is with
/// the router go together in the next [`RouterClient::send_batch`], so a client that does not
/// wait for acks is pipelined without ever being reordered.
///
/// [`RouterClient::send_batch`]: chorus_core::router::RouterClient::send_batch
fn spawn_sender(shared: Arc<Shared>, outbox: Arc<Outbox>) -> mpsc::Sender<SendJob> {
    let max = shared.config.max_in_flight.max(1);
    let (tx, mut rx) = mpsc::channel::<SendJob>(max);
    tokio::spawn(async move {
        let mut jobs = Vec::new();
        while rx.recv_many(&mut jobs, max).await > 0 {
            let mut meta = Vec::with_capacity(jobs.len());
            let mut reqs = Vec::with_capacity(jobs.len());
            for job in jobs.drain(..) {
                meta.push((
                    job.id,
                    job.req.room.clone(),
                    job.req.client_msg_id.clone(),
                    job.started,
                    job.span,
                ));
                reqs.push(job.req);
            }
            let results = shared.router.send_batch(reqs).await;
            for ((id, room, client_msg_id, started, mut span), result) in
                meta.into_iter().zip(results)
            {
                match &result {
                    Ok(ack) => {
                        span.set("chorus.seq", ack.seq as i64);
                        span.set("chorus.duplicate", ack.duplicate);
                    }
                    Err(e) => span.fail(e.label(), e.to_string()),
                }
                drop(span);
                let frame = match result {
                    Ok(ack) => {
                        shared
                            .metrics
                            .send_seconds
                            .record(started.elapsed().as_secs_f64());
                        ServerFrame::Ack {
                            id: id.as_ref(),
                            room: &room,
                            client_msg_id: client_msg_id.as_deref(),
                            seq: ack.seq,
                            ts: ack.ts,
                            duplicate: ack.duplicate,
                        }
                        .to_json()
                    }
                    Err(e) => {
                        let e = WireError::from(&e).in_room(&room);
                        shared.metrics.error(e.code);
                        ServerFrame::error(id.as_ref(), &e).to_json()
                    }
                };
                outbox.end_request();
                if !outbox.push(frame.into()) {
                    return;
                }
            }
        }
    });
    tx
}
