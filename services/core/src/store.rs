//! The durable per-room log: the [`MessageStore`] contract.

use async_trait::async_trait;

use crate::{Message, RoomId, UserId};

/// Which part of a room's log to read. Both bounds are exclusive seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRange {
    /// Messages with `seq > after`, oldest first: the first `limit` of them.
    After(u64),
    /// Messages with `seq < before`, newest first: the last `limit` of them (still returned in
    /// ascending order).
    Before(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or refused the operation for now (disk full, database
    /// down, timeout). Nothing is known to have been written; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An append did not continue the room's log: its first seq was not `last_seq + 1` or its
    /// seqs were not consecutive. Nothing was written. A router that sees this has lost track
    /// of the room (another writer, or a bug) and must reload `last_seq` before going on.
    #[error("append out of order in room {room}: log ends at {last_seq}, batch starts at {first}")]
    Conflict {
        room: RoomId,
        last_seq: u64,
        first: u64,
    },
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The record of an earlier send with the same idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorSend {
    pub seq: u64,
    pub ts: u64,
}

/// A durable, per-room, append-only message log with idempotency records.
///
/// Contract (checked by the `conformance::store` suite for every backend):
/// - **Order**: a room's log is seqs `1..=last_seq` with no gap. [`append`](Self::append) takes
///   a batch of consecutive seqs starting at `last_seq + 1` and refuses anything else with
///   [`StoreError::Conflict`], writing nothing. A distributed backend may check this against
///   the head it last read or wrote for the room instead of a transaction per append: that is
///   exact while one writer appends to a room, which ownership fencing guarantees (ADR 0004).
/// - **Atomicity and durability**: an append that returns `Ok` is durable (it survives a
///   process kill); one that returns an error wrote nothing of the batch. The caller must not
///   acknowledge a message before its append returned `Ok`.
/// - **Idempotency**: every message with a `client_msg_id` also records
///   `(room, from, client_msg_id) -> (seq, ts)`, atomically with the message, and
///   [`find_prior_send`](Self::find_prior_send) returns it for as long as the message is kept.
/// - **Reads** return messages in ascending seq order and never more than `limit`, exactly as
///   appended or last amended: body, [`Ext`](crate::Ext) and [`count`](Message::count).
/// - **Rooms are independent**: appends to different rooms may run concurrently; a backend
///   should group concurrent appends into one durable write (group commit) rather than sync
///   per call.
/// - **Timeouts**: a backend bounds every operation; a timed-out operation returns
///   [`StoreError::Unavailable`].
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// The highest seq stored for `room`, 0 for a room with no messages.
    async fn last_seq(&self, room: &RoomId) -> Result<u64, StoreError>;

    /// Appends `messages` (all in `room`, consecutive seqs) atomically and durably.
    async fn append(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError>;

    /// Reads at most `limit` messages of `room` in `range`, ascending by seq.
    async fn read(
        &self,
        room: &RoomId,
        range: ReadRange,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;

    /// The earlier send of `client_msg_id` by `from` in `room`, if any.
    async fn find_prior_send(
        &self,
        room: &RoomId,
        from: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<PriorSend>, StoreError>;

    /// Replaces existing entries in place (same room and seq) with their current state: an
    /// edited or deleted message, its edits blanked by a delete. Everything of the entry is
    /// replaced except its position. Idempotent; every entry must already be stored. Not
    /// atomic across entries: after an error the caller repeats the whole call.
    async fn amend(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError>;

    /// Makes everything acknowledged so far durable and stops accepting writes. Called once at
    /// shutdown.
    async fn close(&self) -> Result<(), StoreError>;
}
