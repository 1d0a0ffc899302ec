//! [`RoomStateStore`] on the CQL store: created rooms (`rooms`), member records
//! (`room_members`, one partition per room, users ascending) and each user's room list with
//! read marks (`user_rooms`, one partition per user, rooms ascending).
//!
//! Everything here is derived from the room logs and rewritten by the router after a crash
//! (core's `state` module), so every write is a plain idempotent upsert with a client
//! timestamp from the store's [`WriteClock`](crate::clock::WriteClock): no lightweight
//! transactions, no reads before writes. Each entry of a call takes the next timestamp, so
//! of two entries naming the same row the later one wins.
//!
//! A member record and the user's room-list row are written by one LOGGED batch per member:
//! the two rows live in different partitions (often on different nodes), and the batchlog
//! makes sure that once the batch is accepted both are applied, even if the coordinator dies.
//! One batch per member rather than per call keeps every batch tiny (Cassandra warns at
//! 5 KiB and fails at 50 KiB) and on two partitions; a call that fails may have written some
//! members, which the contract allows (the caller repeats it).
//!
//! The room-list row's role is set with `UPDATE ... SET role`, and a read mark with
//! `UPDATE ... SET read_seq, read_count`, so neither write touches the other's cells: a read
//! mark survives leaving and rejoining, and marking never makes anyone a member. A row with
//! no role (`''` after a removal, null when only ever marked) is not listed. Listings filter
//! those rows out here rather than with `ALLOW FILTERING`, and query again past the last row
//! seen until `limit` rows are listed or the partition ends.

use async_trait::async_trait;
use chorus_core::{
    RoomId, UserId,
    message::{Role, Visibility},
    state::{MemberRecord, Membership, ReadMark, RoomInfo, RoomStateStore},
    store::StoreError,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::{
    response::PagingState,
    statement::{
        batch::{Batch, BatchStatement, BatchType},
        prepared::PreparedStatement,
    },
};

use crate::{
    CqlStore,
    error::{corrupt, unavailable},
    rows::{to_i64, to_u64},
};

/// Writes of one call in flight at once (a room created with many members, a batch of read
/// receipts); the rest wait for a slot.
const CONCURRENT_WRITES: usize = 32;

/// Listed rows are owned: the clustering key outlives its page as the next query's bound.
type MemberRow = (String, Option<String>, Option<bool>, Option<i64>);
type RoomRow = (String, Option<String>, Option<i64>, Option<i64>);

/// `''` and null are "no role".
fn parse_role(role: Option<&str>) -> Result<Option<Role>, StoreError> {
    match role {
        None | Some("") => Ok(None),
        Some(r) => Role::parse(r)
            .map(Some)
            .ok_or_else(|| corrupt(format!("unknown role {r:?}"))),
    }
}

fn member_record(
    role: Option<&str>,
    banned: Option<bool>,
    muted_until: Option<i64>,
) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        role: parse_role(role)?,
        banned: banned.unwrap_or(false),
        muted_until: muted_until.map_or(Ok(0), |t| to_u64(t, "muted_until"))?,
    })
}

impl CqlStore {
    async fn read_room(&self, room: &RoomId) -> Result<Option<RoomInfo>, StoreError> {
        let row = self
            .session
            .execute_unpaged(&self.st.room_info, (room.as_str(),))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(&str, &str, i64, Option<i64>)>()
            .map_err(corrupt)?
            .map(|(visibility, created_by, created_ts, pending_from)| {
                Ok::<_, StoreError>(RoomInfo {
                    visibility: Visibility::parse(visibility).ok_or_else(|| {
                        corrupt(format!("room {room}: unknown visibility {visibility:?}"))
                    })?,
                    created_by: UserId::new(created_by)
                        .map_err(|e| corrupt(format!("room {room}: created_by: {e}")))?,
                    created_ts: to_u64(created_ts, "created_ts")?,
                    pending_from: pending_from.map_or(Ok(0), |p| to_u64(p, "pending_from"))?,
                })
            });
        row.transpose()
    }

    async fn write_room(&self, room: &RoomId, info: &RoomInfo) -> Result<(), StoreError> {
        let values = (
            room.as_str(),
            info.visibility.as_str(),
            info.created_by.as_str(),
            to_i64(info.created_ts, "created_ts")?,
            to_i64(info.pending_from, "pending_from")?,
            self.clock.next(),
        );
        self.session
            .execute_unpaged(&self.st.put_room, values)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn read_member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<MemberRecord>, StoreError> {
        self.session
            .execute_unpaged(&self.st.member, (room.as_str(), user.as_str()))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(Option<&str>, Option<bool>, Option<i64>)>()
            .map_err(corrupt)?
            .map(|(role, banned, muted)| member_record(role, banned, muted))
            .transpose()
    }

    async fn write_members(
        &self,
        room: &RoomId,
        members: &[(UserId, MemberRecord)],
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new_with_statements(
            BatchType::Logged,
            vec![
                BatchStatement::PreparedStatement(self.st.put_member.clone()),
                BatchStatement::PreparedStatement(self.st.put_user_role.clone()),
            ],
        );
        batch.set_is_idempotent(true);
        let batch = &batch;
        let r = room.as_str();
        let mut writes = Vec::with_capacity(members.len());
        for (user, record) in members {
            let (u, role) = (user.as_str(), record.role.map_or("", Role::as_str));
            let muted = to_i64(record.muted_until, "muted_until")?;
            let ts = self.clock.next();
            let values = ((r, u, role, record.banned, muted, ts), (ts, role, u, r));
            writes.push(async move { self.session.batch(batch, values).await.map(drop) });
        }
        stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .try_collect::<()>()
            .await
            .map_err(unavailable)
    }

    /// Up to `limit` listed rows of one partition past `after` (`''` is before every id),
    /// ascending. `statement` binds `(key, after, limit)`; `list` turns a row into a listed
    /// item, or `None` for one that is not listed, and gives the row's clustering key.
    async fn list<T, R>(
        &self,
        statement: &PreparedStatement,
        key: &str,
        after: &str,
        limit: usize,
        list: impl Fn(R) -> Result<(String, Option<T>), StoreError>,
    ) -> Result<Vec<T>, StoreError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let mut out = Vec::new();
        let mut after = after.to_owned();
        while out.len() < limit {
            let ask = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let mut seen: usize = 0;
            let mut paging = PagingState::start();
            loop {
                let (result, next) = self
                    .session
                    .execute_single_page(statement, (key, after.as_str(), ask), paging)
                    .await
                    .map_err(unavailable)?;
                let result = result.into_rows_result().map_err(corrupt)?;
                for row in result.rows::<R>().map_err(corrupt)? {
                    let (clustering, item) = list(row.map_err(corrupt)?)?;
                    seen += 1;
                    after = clustering;
                    out.extend(item);
                }
                match next.into_paging_control_flow() {
                    std::ops::ControlFlow::Break(()) => break,
                    std::ops::ControlFlow::Continue(state) => paging = state,
                }
            }
            if seen < ask as usize {
                break; // the partition ended
            }
        }
        Ok(out)
    }

    async fn list_members(
        &self,
        room: &RoomId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, MemberRecord)>, StoreError> {
        let after = after.map_or("", UserId::as_str);
        self.list(
            &self.st.members_after,
            room.as_str(),
            after,
            limit,
            |(user, role, banned, muted): MemberRow| {
                let record = member_record(role.as_deref(), banned, muted)?;
                let listed = match record.role {
                    Some(_) => Some((
                        UserId::new(&user)
                            .map_err(|e| corrupt(format!("member of {room}: {e}")))?,
                        record,
                    )),
                    None => None,
                };
                Ok((user, listed))
            },
        )
        .await
    }

    async fn list_rooms(&self, user: &UserId, limit: usize) -> Result<Vec<Membership>, StoreError> {
        self.list(
            &self.st.rooms_after,
            user.as_str(),
            "",
            limit,
            |(room, role, read_seq, read_count): RoomRow| {
                let listed = match parse_role(role.as_deref())? {
                    Some(role) => Some(Membership {
                        room: RoomId::new(&room)
                            .map_err(|e| corrupt(format!("room of {user}: {e}")))?,
                        role,
                        read_seq: read_seq.map_or(Ok(0), |s| to_u64(s, "read_seq"))?,
                        read_count: read_count.map_or(Ok(0), |c| to_u64(c, "read_count"))?,
                    }),
                    None => None,
                };
                Ok((room, listed))
            },
        )
        .await
    }

    async fn write_read_marks(&self, marks: &[ReadMark]) -> Result<(), StoreError> {
        let mut writes = Vec::with_capacity(marks.len());
        for mark in marks {
            let values = (
                self.clock.next(),
                to_i64(mark.seq, "read_seq")?,
                to_i64(mark.count, "read_count")?,
                mark.user.as_str(),
                mark.room.as_str(),
            );
            writes.push(async move {
                self.session
                    .execute_unpaged(&self.st.put_read_mark, values)
                    .await
                    .map(drop)
            });
        }
        stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .try_collect::<()>()
            .await
            .map_err(unavailable)
    }
}

/// Every call is bounded by the request timeout; driver errors are
/// [`StoreError::Unavailable`], undecodable rows [`StoreError::Corrupt`].
#[async_trait]
impl RoomStateStore for CqlStore {
    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, StoreError> {
        self.bounded(self.read_room(room)).await
    }

    async fn put_room(&self, room: &RoomId, info: &RoomInfo) -> Result<(), StoreError> {
        self.bounded(self.write_room(room, info)).await
    }

    async fn member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<MemberRecord>, StoreError> {
        self.bounded(self.read_member(room, user)).await
    }

    /// One LOGGED batch per member: its `room_members` row and the role in its `user_rooms`
    /// row (the read mark there is left alone).
    async fn put_members(
        &self,
        room: &RoomId,
        members: &[(UserId, MemberRecord)],
    ) -> Result<(), StoreError> {
        self.bounded(self.write_members(room, members)).await
    }

    async fn members(
        &self,
        room: &RoomId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, MemberRecord)>, StoreError> {
        self.bounded(self.list_members(room, after, limit)).await
    }

    async fn rooms_of(&self, user: &UserId, limit: usize) -> Result<Vec<Membership>, StoreError> {
        self.bounded(self.list_rooms(user, limit)).await
    }

    /// Sets only the mark's two cells of each `user_rooms` row, never its role.
    async fn put_read_marks(&self, marks: &[ReadMark]) -> Result<(), StoreError> {
        self.bounded(self.write_read_marks(marks)).await
    }
}
