//! Room state ([`RoomStateStore`]) in the same redb file as the log.
//!
//! Tables:
//! - `room_info`: `room -> record`, a small JSON [`RoomInfo`] (`{v, b, t, p?}`).
//! - `room_members`: `(room, user) -> (role, banned, muted_until)`, a room's member records
//!   ordered by user, so a member page is one range scan.
//! - `user_rooms`: `(user, room) -> (role, read_seq, read_count)`, a user's room list and read
//!   marks, ordered by room. A row with role 0 only holds read marks (the user is not a
//!   member); a row with neither a role nor a read mark is removed.
//!
//! Roles are stored as one byte: 0 none, 1 owner, 2 moderator, 3 member.
//!
//! Writes are [`Write`]s applied by the writer thread in its group-commit transaction, so they
//! are durable when they return and ordered with the appends queued before them. Reads use
//! their own read transactions, like the log's. This module does not interpret the log: the
//! router derives these records from `member` entries and receipts.

use std::ops::Bound;

use async_trait::async_trait;
use chorus_core::{
    RoomId, UserId,
    message::{Role, Visibility},
    state::{MemberRecord, Membership, ReadMark, RoomInfo, RoomStateStore},
    store::StoreError,
};
use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{EmbeddedStore, unavailable, writer::Op};

pub(crate) const ROOM_INFO: TableDefinition<&str, &[u8]> = TableDefinition::new("room_info");
pub(crate) const ROOM_MEMBERS: TableDefinition<(&str, &str), (u8, bool, u64)> =
    TableDefinition::new("room_members");
pub(crate) const USER_ROOMS: TableDefinition<(&str, &str), (u8, u64, u64)> =
    TableDefinition::new("user_rooms");

fn role_code(role: Option<Role>) -> u8 {
    match role {
        None => 0,
        Some(Role::Owner) => 1,
        Some(Role::Moderator) => 2,
        Some(Role::Member) => 3,
    }
}

fn role_of(code: u8, at: impl FnOnce() -> String) -> Result<Option<Role>, StoreError> {
    match code {
        0 => Ok(None),
        1 => Ok(Some(Role::Owner)),
        2 => Ok(Some(Role::Moderator)),
        3 => Ok(Some(Role::Member)),
        _ => Err(StoreError::Corrupt(format!("{}: role code {code}", at()))),
    }
}

#[derive(Serialize, Deserialize)]
struct InfoRecord<'a> {
    v: Visibility,
    b: &'a str,
    t: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    p: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn encode_info(info: &RoomInfo) -> Vec<u8> {
    serde_json::to_vec(&InfoRecord {
        v: info.visibility,
        b: info.created_by.as_str(),
        t: info.created_ts,
        p: info.pending_from,
    })
    .expect("a record of strings and integers always serializes")
}

fn decode_info(room: &RoomId, bytes: &[u8]) -> Result<RoomInfo, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("room {room}: {e}"));
    let r: InfoRecord<'_> = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
    Ok(RoomInfo {
        visibility: r.v,
        created_by: UserId::new(r.b).map_err(|e| corrupt(&e))?,
        created_ts: r.t,
        pending_from: r.p,
    })
}

/// A state change queued for the writer thread, encoded by the caller.
pub(crate) enum Write {
    Room {
        room: RoomId,
        record: Vec<u8>,
    },
    Members {
        room: RoomId,
        members: Vec<(UserId, MemberRecord)>,
    },
    ReadMarks(Vec<ReadMark>),
}

/// The state tables, open in the writer's transaction.
pub(crate) struct StateTables<'txn> {
    info: Table<'txn, &'static str, &'static [u8]>,
    members: Table<'txn, (&'static str, &'static str), (u8, bool, u64)>,
    user_rooms: Table<'txn, (&'static str, &'static str), (u8, u64, u64)>,
}

impl<'txn> StateTables<'txn> {
    pub(crate) fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(StateTables {
            info: tx.open_table(ROOM_INFO).map_err(unavailable)?,
            members: tx.open_table(ROOM_MEMBERS).map_err(unavailable)?,
            user_rooms: tx.open_table(USER_ROOMS).map_err(unavailable)?,
        })
    }

    /// Applies one write. Only I/O fails here, and that fails the whole transaction.
    pub(crate) fn apply(&mut self, write: Write) -> Result<(), StoreError> {
        match write {
            Write::Room { room, record } => {
                self.info
                    .insert(room.as_str(), record.as_slice())
                    .map_err(unavailable)?;
            }
            Write::Members { room, members } => {
                for (user, record) in &members {
                    let role = role_code(record.role);
                    self.members
                        .insert(
                            (room.as_str(), user.as_str()),
                            (role, record.banned, record.muted_until),
                        )
                        .map_err(unavailable)?;
                    let key = (user.as_str(), room.as_str());
                    let (read_seq, read_count) = self
                        .user_rooms
                        .get(key)
                        .map_err(unavailable)?
                        .map_or((0, 0), |v| {
                            let (_, seq, count) = v.value();
                            (seq, count)
                        });
                    self.put_user_room(key, (role, read_seq, read_count))?;
                }
            }
            Write::ReadMarks(marks) => {
                for mark in &marks {
                    let key = (mark.user.as_str(), mark.room.as_str());
                    let role = self
                        .user_rooms
                        .get(key)
                        .map_err(unavailable)?
                        .map_or(0, |v| v.value().0);
                    self.put_user_room(key, (role, mark.seq, mark.count))?;
                }
            }
        }
        Ok(())
    }

    fn put_user_room(&mut self, key: (&str, &str), row: (u8, u64, u64)) -> Result<(), StoreError> {
        if row == (0, 0, 0) {
            self.user_rooms.remove(key).map_err(unavailable)?;
        } else {
            self.user_rooms.insert(key, row).map_err(unavailable)?;
        }
        Ok(())
    }
}

/// State writes share the log's writer queue, timeout and group commit; see
/// [`EmbeddedStore`]'s [`MessageStore`](chorus_core::store::MessageStore) impl.
#[async_trait]
impl RoomStateStore for EmbeddedStore {
    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, StoreError> {
        let room = room.clone();
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(ROOM_INFO).map_err(unavailable)?;
            let found = table.get(room.as_str()).map_err(unavailable)?;
            found.map(|v| decode_info(&room, v.value())).transpose()
        })
        .await
    }

    async fn put_room(&self, room: &RoomId, info: &RoomInfo) -> Result<(), StoreError> {
        self.write(Op::State(Write::Room {
            room: room.clone(),
            record: encode_info(info),
        }))
        .await
    }

    async fn member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let (room, user) = (room.clone(), user.clone());
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(ROOM_MEMBERS).map_err(unavailable)?;
            let found = table
                .get((room.as_str(), user.as_str()))
                .map_err(unavailable)?;
            found
                .map(|v| {
                    let (role, banned, muted_until) = v.value();
                    Ok(MemberRecord {
                        role: role_of(role, || format!("member {room}/{user}"))?,
                        banned,
                        muted_until,
                    })
                })
                .transpose()
        })
        .await
    }

    async fn put_members(
        &self,
        room: &RoomId,
        members: &[(UserId, MemberRecord)],
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        self.write(Op::State(Write::Members {
            room: room.clone(),
            members: members.to_vec(),
        }))
        .await
    }

    async fn members(
        &self,
        room: &RoomId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, MemberRecord)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (room, after) = (room.clone(), after.cloned());
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(ROOM_MEMBERS).map_err(unavailable)?;
            let start = match &after {
                Some(user) => Bound::Excluded((room.as_str(), user.as_str())),
                None => Bound::Included((room.as_str(), "")),
            };
            let mut out = Vec::with_capacity(limit.min(128));
            for entry in table
                .range::<(&str, &str)>((start, Bound::Unbounded))
                .map_err(unavailable)?
            {
                let (k, v) = entry.map_err(unavailable)?;
                let (row_room, user) = k.value();
                if row_room != room.as_str() {
                    break;
                }
                let (role, banned, muted_until) = v.value();
                let Some(role) = role_of(role, || format!("member {room}/{user}"))? else {
                    continue;
                };
                let user = UserId::new(user)
                    .map_err(|e| StoreError::Corrupt(format!("member {room}/{user}: {e}")))?;
                out.push((
                    user,
                    MemberRecord {
                        role: Some(role),
                        banned,
                        muted_until,
                    },
                ));
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn rooms_of(&self, user: &UserId, limit: usize) -> Result<Vec<Membership>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let user = user.clone();
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(USER_ROOMS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit.min(128));
            for entry in table.range((user.as_str(), "")..).map_err(unavailable)? {
                let (k, v) = entry.map_err(unavailable)?;
                let (row_user, room) = k.value();
                if row_user != user.as_str() {
                    break;
                }
                let (role, read_seq, read_count) = v.value();
                let Some(role) = role_of(role, || format!("room list {user}/{room}"))? else {
                    continue;
                };
                let room = RoomId::new(room)
                    .map_err(|e| StoreError::Corrupt(format!("room list {user}/{room}: {e}")))?;
                out.push(Membership {
                    room,
                    role,
                    read_seq,
                    read_count,
                });
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_read_marks(&self, marks: &[ReadMark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.write(Op::State(Write::ReadMarks(marks.to_vec())))
            .await
    }
}
