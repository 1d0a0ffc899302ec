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
}
