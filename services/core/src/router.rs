//! What a gateway asks of the router that owns a room: the [`RouterClient`] contract.
//!
//! The standalone wiring calls the router in-process; the cluster wiring calls it over gRPC
//! through the ring. Both must pass the `conformance::router` suite.

use async_trait::async_trait;

use crate::{Ext, Message, Role, RoomId, UserId, Visibility, store::StoreError};

/// One log entry to append: a chat message, or (by `ext.kind`) an edit, delete, persisted
/// event or membership change. The router authorizes and validates it against the room's
/// state at the point of the log where it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub room: RoomId,
    pub from: UserId,
    pub client_msg_id: Option<String>,
    pub body: String,
    pub ext: Ext,
    /// The trace this send belongs to (W3C `traceparent`), when tracing is on.
    pub trace: Option<crate::trace::TraceParent>,
}

impl SendRequest {
    /// A plain text message.
    pub fn text(room: RoomId, from: UserId, client_msg_id: Option<String>, body: String) -> Self {
        SendRequest {
            room,
            from,
            client_msg_id,
            body,
            ext: Ext::default(),
            trace: None,
        }
    }
}

/// One room's share of a batch: its requests in their original order, and where each one's
/// result goes in the batch's reply.
#[derive(Debug)]
pub struct RoomGroup {
    pub room: RoomId,
    pub reqs: Vec<SendRequest>,
    pub slots: Vec<usize>,
}

/// Splits a batch by room, keeping each room's order: the unit that shares one fate.
pub fn group_by_room(reqs: Vec<SendRequest>) -> Vec<RoomGroup> {
    let mut groups: Vec<RoomGroup> = Vec::new();
    for (i, req) in reqs.into_iter().enumerate() {
        match groups.iter_mut().find(|g| g.room == req.room) {
            Some(g) => {
                g.reqs.push(req);
                g.slots.push(i);
            }
            None => groups.push(RoomGroup {
                room: req.room.clone(),
                reqs: vec![req],
                slots: vec![i],
            }),
        }
    }
    groups
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAck {
    pub seq: u64,
    pub ts: u64,
    /// The send repeated an earlier `client_msg_id`; `seq`/`ts` are the original's and nothing
    /// new was stored or delivered.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub room: RoomId,
    /// The reader, authorized against the room. `None`: the gateway's own read (its hub's
    /// head and backfill reads), trusted because only gateways reach the router.
    pub user: Option<UserId>,
    /// Resume point: the backlog holds messages with `seq > since`. `None`: no backlog.
    pub since: Option<u64>,
    /// Most messages of backlog to return in this reply; the caller pages on with `history`.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReply {
    /// The room's last seq when the join was served.
    pub last_seq: u64,
    /// The first page of messages after `since`, ascending.
    pub backlog: Vec<Message>,
    /// More backlog exists after the last message returned.
    pub has_more: bool,
    /// `None` for an open room (never created).
    pub visibility: Option<Visibility>,
    /// Who is online in the room now: the count and the first page.
    pub online: OnlinePage,
}

/// A page of a room's online users, ascending by user id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlinePage {
    /// Users online in the room (with at least one subscribed connection, on any gateway).
    pub count: u64,
    pub users: Vec<UserId>,
    pub has_more: bool,
}

/// A page of a created room's members, ascending by user id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersPage {
    pub members: Vec<MemberInfo>,
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub user: UserId,
    pub role: Role,
    /// Sends refused until then (ms since the epoch); 0 when not muted.
    pub muted_until: u64,
}

/// One room of a user's room list, with its unread count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: RoomId,
    pub role: Role,
    pub visibility: Option<Visibility>,
    pub last_seq: u64,
    pub read_seq: u64,
    /// Messages and persisted events after the read mark (the user's own ones excluded, as
    /// sending marks the room read).
    pub unread: u64,
}

/// One gateway's view of who is subscribed to a room there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceSync {
    /// The gateway process (unique per process start).
    pub gateway: String,
    /// `true`: `users` is the gateway's whole list for the room (replacing what it sent
    /// before). `false`: only the users listed changed.
    pub full: bool,
    /// Users and their subscribed connections on this gateway; 0 means gone.
    pub users: Vec<(UserId, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAnchor {
    Before(u64),
    After(u64),
    /// The newest page.
    Latest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub room: RoomId,
    /// As for [`JoinRequest::user`].
    pub user: Option<UserId>,
    pub anchor: HistoryAnchor,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Ascending by seq.
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction read (older for `Before` and
    /// `Latest`, newer for `After`).
    pub has_more: bool,
}

/// An ephemeral room event (typing, presence, application events): relayed to the room's
/// current subscribers, never stored and never given a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    pub room: RoomId,
    pub from: UserId,
    /// Application-defined name, [`EVENT_KIND_MAX`] bytes at most of `[a-z0-9._-]`.
    pub event: String,
    /// A JSON value as text, [`EVENT_DATA_MAX`] bytes at most.
    pub data: String,
}

/// Longest event name, in bytes.
pub const EVENT_KIND_MAX: usize = 64;
/// Largest event payload, in bytes of JSON text.
pub const EVENT_DATA_MAX: usize = 4096;

impl EventRequest {
    /// Checks the name's syntax and the payload's size and JSON validity.
    pub fn validate(&self) -> Result<(), RouterError> {
        validate_event(&self.event, &self.data)
    }

    /// The protocol v1 `event` frame every subscriber receives.
    pub fn to_frame(&self) -> bytes::Bytes {
        #[derive(serde::Serialize)]
        struct Frame<'a> {
            #[serde(rename = "type")]
            kind_tag: &'static str,
            room: &'a RoomId,
            from: &'a UserId,
            event: &'a str,
            data: &'a serde_json::value::RawValue,
        }
        let data: &serde_json::value::RawValue =
            serde_json::from_str(&self.data).unwrap_or_else(|_| {
                // validate() refuses this; keep the frame well-formed regardless.
                serde_json::from_str("null").expect("null is JSON")
            });
        let frame = Frame {
            kind_tag: "event",
            room: &self.room,
            from: &self.from,
            event: &self.event,
            data,
        };
        bytes::Bytes::from(serde_json::to_vec(&frame).expect("event frames serialize"))
    }
}

/// Checks an application event's name and payload (ephemeral or persisted).
pub fn validate_event(event: &str, data: &str) -> Result<(), RouterError> {
    let name_ok = !event.is_empty()
        && event.len() <= EVENT_KIND_MAX
        && event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !name_ok {
        return Err(RouterError::BadRequest(format!(
            "event name must be 1 to {EVENT_KIND_MAX} characters of a-z 0-9 . _ -"
        )));
    }
    if data.len() > EVENT_DATA_MAX {
        return Err(RouterError::TooLarge(format!(
            "event data is larger than {EVENT_DATA_MAX} bytes"
        )));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(data).is_err() {
        return Err(RouterError::BadRequest("event data is not JSON".into()));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// A count limit (edits of one message, members listed).
    #[error("{0}")]
    LimitExceeded(String),
    /// The room's send rate is exceeded; nothing was stored.
    #[error("room send rate exceeded")]
    RateLimited { retry_after_ms: u64 },
    /// The room's queue is full; retry later with the same `client_msg_id`.
    #[error("room is overloaded: {0}")]
    Overloaded(String),
    #[error("router unavailable: {0}")]
    Unavailable(String),
    /// The router could not be reached (connection refused or broken): whether a send
    /// happened is unknown; a retry with the same `client_msg_id` is safe.
    #[error("router unreachable: {0}")]
    Unreachable(String),
    /// This router does not own the room under its view of the ring. Nothing was done; the
    /// caller refreshes its ring (it is behind if `ring_version` differs from its own) and
    /// retries at the owner. `owner` names the router this one believes owns the room.
    #[error("router does not own this room (ring version {ring_version:016x})")]
    NotOwner {
        ring_version: u64,
        owner: Option<String>,
    },
    #[error("request timed out")]
    Timeout,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RouterError {
    /// A short, fixed name of the kind of error, for metric labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RouterError::BadRequest(_) => "bad_request",
            RouterError::Forbidden(_) => "forbidden",
            RouterError::NotFound(_) => "not_found",
            RouterError::Conflict(_) => "conflict",
            RouterError::TooLarge(_) => "too_large",
            RouterError::LimitExceeded(_) => "limit_exceeded",
            RouterError::RateLimited { .. } => "rate_limited",
            RouterError::Overloaded(_) => "overloaded",
            RouterError::Unavailable(_) => "unavailable",
            RouterError::Unreachable(_) => "unreachable",
            RouterError::NotOwner { .. } => "not_owner",
            RouterError::Timeout => "timeout",
            RouterError::Store(_) => "store",
            RouterError::Internal(_) => "internal",
        }
    }
}

/// The room operations a gateway needs.
///
/// Contract (checked by the `conformance::router` suite for every wiring):
/// - **Total order**: a room's messages get seqs `1, 2, 3, …` with no gap and no reuse, under
///   any number of concurrent senders.
/// - **Durable acks**: `send` returns `Ok` only once the message is in the store; after an
///   error the message may be retried with the same `client_msg_id`.
/// - **Idempotency**: a send repeating `(room, from, client_msg_id)` returns the original
///   seq and ts with `duplicate = true`, stores nothing and delivers nothing.
/// - **Delivery**: every acknowledged message is published on the delivery bus after it is
///   durable, in seq order per room.
/// - **Join** returns `last_seq` and the backlog after `since`; together with a bus
///   subscription taken *before* the join, a gateway can serve every message exactly once.
/// - **Events** are relayed to current subscribers with no seq and are never stored.
/// - **Ownership**: in a cluster, a router refuses rooms it does not own with
///   [`RouterError::NotOwner`], having done nothing.
/// - **Deadlines**: every call is bounded; a call that runs out of time returns
///   [`RouterError::Timeout`] and the outcome of a send is then unknown (retry with the same
///   `client_msg_id`).
#[async_trait]
pub trait RouterClient: Send + Sync + 'static {
    /// Sends one connection's queued requests, keeping their order: requests for the same room
    /// are sequenced in the order given and share one fate (all acknowledged, or all failed
    /// with the same error), so a client's retry can never reorder them. Results come back in
    /// the order of `reqs`. Pipelining through this call is how a client that does not wait
    /// for each ack still gets its own order.
    async fn send_batch(&self, reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>>;

    /// One send: a batch of one.
    async fn send(&self, req: SendRequest) -> Result<SendAck, RouterError> {
        self.send_batch(vec![req])
            .await
            .pop()
            .unwrap_or_else(|| Err(RouterError::Internal("empty batch reply".into())))
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError>;
    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError>;

    /// Relays an ephemeral event to the room's subscribers (a bus delivery with seq
    /// [`EPHEMERAL_SEQ`](crate::bus::EPHEMERAL_SEQ)). Best effort: never stored, never
    /// backfilled.
    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError>;

    /// `user` started (`true`) or stopped typing in `room`. The room's owner relays a change
    /// (not a repeat) as an ephemeral `typing` frame, and ends it by itself when no repeat
    /// arrives within the typing timeout.
    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError>;

    /// `user` has read `room` up to `seq`. Marks only move forward; they are stored and
    /// relayed as coalesced `receipts` frames.
    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError>;

    /// A gateway's subscribers of `room`, for presence. Gateways send a full list
    /// periodically; a gateway not heard from for three periods is forgotten.
    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError>;

    /// Several rooms' presence reports, each succeeding or failing on its own; results in
    /// order. A gateway sends its reports together so that a refresh of many rooms is a few
    /// calls, not one per room.
    async fn presence_batch(
        &self,
        reports: Vec<(RoomId, PresenceSync)>,
    ) -> Vec<Result<(), RouterError>> {
        let mut results = Vec::with_capacity(reports.len());
        for (room, sync) in reports {
            results.push(self.presence(room, sync).await);
        }
        results
    }

    /// Online users of `room` after `after`, for `user` (who must be allowed to read it).
    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError>;

    /// Members of a created `room` after `after`, for `user` (who must be allowed to read it).
    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError>;

    /// `user`'s rooms with unread counts. Any router answers (it reads the store).
    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError>;
}
