//! Room state derived from the log: created rooms, members and roles, bans and mutes, and each
//! user's read marks. The [`RoomStateStore`] contract.
//!
//! The room log is the source of truth: every change here is the effect of a `member` entry
//! (or, for read marks, of a receipt), applied by the router that owns the room after the
//! entry is durable. A router that crashed between the two finds the
//! [`RoomInfo::pending_from`] marker it wrote before the append and applies the entries
//! again; every write here is an idempotent upsert, so applying twice is harmless.

use async_trait::async_trait;

use crate::{
    RoomId, UserId,
    message::{Role, Visibility},
    store::StoreError,
};

/// A created room. Rooms that were never created ("open rooms") have none: anyone may use
/// them and nobody moderates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub visibility: Visibility,
    pub created_by: UserId,
    pub created_ts: u64,
    /// Non-zero while the effects of the entries from this seq on may not all be applied:
    /// written before such an append, cleared after its effects.
    pub pending_from: u64,
}

/// One user's standing in one room. A record with `role: None` is a non-member (removed,
/// left, or never joined) that still carries a ban or mute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberRecord {
    pub role: Option<Role>,
    pub banned: bool,
    /// Sends are refused until this time (ms since the epoch); 0 when not muted.
    pub muted_until: u64,
}

/// A user's read position in a room: the last seq read, and the unread-counting ordinal of
/// that entry ([`Message::count`](crate::Message::count)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    pub user: UserId,
    pub room: RoomId,
    pub seq: u64,
    pub count: u64,
}

/// One room of a user's room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub room: RoomId,
    pub role: Role,
    /// The user's read mark in the room (0, 0 if never marked).
    pub read_seq: u64,
    pub read_count: u64,
}

/// Durable room state.
///
/// Contract (checked by the `conformance::state` suite for every backend):
/// - **Upserts**: every `put_*` replaces what it names and is idempotent; a failed call may
///   have written part of its input, and the caller repeats it.
/// - **Members and room lists agree**: [`put_members`](Self::put_members) updates both the
///   room's member list and each user's room list; a record without a role removes the room
///   from the user's list but keeps the user's read mark.
/// - **Listing** returns members ascending by user id, after the given user, at most
///   `limit`, and only records with a role. A user's room list is ascending by room.
/// - **Read marks** are kept for any (user, room), member or not.
/// - **Timeouts** as for the message store: a timed-out call returns
///   [`StoreError::Unavailable`].
#[async_trait]
pub trait RoomStateStore: Send + Sync + 'static {
    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, StoreError>;
    async fn put_room(&self, room: &RoomId, info: &RoomInfo) -> Result<(), StoreError>;

    async fn member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<MemberRecord>, StoreError>;
    async fn put_members(
        &self,
        room: &RoomId,
        members: &[(UserId, MemberRecord)],
    ) -> Result<(), StoreError>;
    async fn members(
        &self,
        room: &RoomId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, MemberRecord)>, StoreError>;

    /// The rooms `user` is a member of, with read marks, at most `limit`.
    async fn rooms_of(&self, user: &UserId, limit: usize) -> Result<Vec<Membership>, StoreError>;
    async fn put_read_marks(&self, marks: &[ReadMark]) -> Result<(), StoreError>;
}
