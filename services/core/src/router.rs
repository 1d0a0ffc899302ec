//! What a gateway asks of the router that owns a room: the [`RouterClient`] contract.
//!
//! The standalone wiring calls the router in-process; the cluster wiring calls it over gRPC
//! through the ring. Both must pass the `conformance::router` suite.

use async_trait::async_trait;

use crate::{Message, RoomId, UserId, store::StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub room: RoomId,
    pub from: UserId,
    pub client_msg_id: Option<String>,
    pub body: String,
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
    pub user: UserId,
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
    pub user: UserId,
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
    /// Application-defined type, [`EVENT_KIND_MAX`] bytes at most of `[a-z0-9._-]`.
    pub kind: String,
    /// A JSON value as text, [`EVENT_DATA_MAX`] bytes at most.
    pub data: String,
}

/// Longest event kind, in bytes.
pub const EVENT_KIND_MAX: usize = 64;
/// Largest event payload, in bytes of JSON text.
pub const EVENT_DATA_MAX: usize = 4096;

impl EventRequest {
    /// Checks the kind's syntax and the payload's size and JSON validity.
    pub fn validate(&self) -> Result<(), RouterError> {
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= EVENT_KIND_MAX
            && self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !kind_ok {
            return Err(RouterError::BadRequest(format!(
                "event kind must be 1 to {EVENT_KIND_MAX} characters of a-z 0-9 . _ -"
            )));
        }
        if self.data.len() > EVENT_DATA_MAX {
            return Err(RouterError::BadRequest(format!(
                "event data is larger than {EVENT_DATA_MAX} bytes"
            )));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&self.data).is_err() {
            return Err(RouterError::BadRequest("event data is not JSON".into()));
        }
        Ok(())
    }

    /// The protocol v1 `event` frame every subscriber receives.
    pub fn to_frame(&self) -> bytes::Bytes {
        #[derive(serde::Serialize)]
        struct Frame<'a> {
            #[serde(rename = "type")]
            kind_tag: &'static str,
            room: &'a RoomId,
            from: &'a UserId,
            kind: &'a str,
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
            kind: &self.kind,
            data,
        };
        bytes::Bytes::from(serde_json::to_vec(&frame).expect("event frames serialize"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
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
}
