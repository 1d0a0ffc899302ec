//! Every statement the store runs after connecting, prepared once by
//! [`CqlStore::connect`](crate::CqlStore::connect). Each binds all partition key columns, so the
//! driver can route it to a replica of its partition (token-aware routing).

use scylla::{client::session::Session, statement::prepared::PreparedStatement};

use crate::{CqlConfig, CqlError, error::setup_step};

/// Rows fetched per page by history reads; a read also stops at its `LIMIT`.
pub(crate) const PAGE_SIZE: i32 = 1_000;

/// Read as [`StoredRow`](crate::rows::StoredRow).
const MESSAGE_COLUMNS: &str = "seq, ts, sender, client_msg_id, body, ext, ordinal";

#[derive(Debug)]
pub(crate) struct Statements {
    /// [`RowValues`](crate::rows::RowValues): `(room, bucket, seq, ts, sender,
    /// client_msg_id, body, ext, ordinal, timestamp)`
    pub(crate) insert_message: PreparedStatement,
    /// `(room, sender, client_msg_id, seq, ts, timestamp)`
    pub(crate) insert_send: PreparedStatement,
    /// `(room, bucket, timestamp)`
    pub(crate) write_head: PreparedStatement,
    /// `(room) -> bucket`
    pub(crate) read_head: PreparedStatement,
    /// `(room, bucket) -> seq`, the highest in the bucket
    pub(crate) last_in_bucket: PreparedStatement,
    /// `(room, bucket, after, limit) -> message columns`, ascending
    pub(crate) read_after: PreparedStatement,
    /// `(room, bucket, before, limit) -> message columns`, descending
    pub(crate) read_before: PreparedStatement,
    /// `(room, bucket, seq) -> (sender, client_msg_id, ts)`
    pub(crate) message_at: PreparedStatement,
    /// `(room, sender, client_msg_id) -> (seq, ts)`
    pub(crate) read_send: PreparedStatement,
    /// `(holder, expires_ms, timestamp)`
    pub(crate) renew_session: PreparedStatement,
    /// `(holder) -> expires_ms`
    pub(crate) session_expiry: PreparedStatement,
    /// `(timestamp, holder)`
    pub(crate) end_session: PreparedStatement,
    /// `(slot) -> (holder, epoch, released)`, read at serial consistency
    pub(crate) claim_of: PreparedStatement,
    /// `(slot, holder)`, lightweight transaction
    pub(crate) claim_new: PreparedStatement,
    /// `(holder, epoch, slot, expected holder, expected epoch, expected released)`, lightweight
    /// transaction
    pub(crate) claim_from: PreparedStatement,
    /// `(slot, holder, epoch)`, lightweight transaction
    pub(crate) release: PreparedStatement,
    /// `(room) -> (visibility, created_by, created_ts, pending_from)`
    pub(crate) room_info: PreparedStatement,
    /// `(room, visibility, created_by, created_ts, pending_from, timestamp)`
    pub(crate) put_room: PreparedStatement,
    /// `(room, user_id) -> (role, banned, muted_until)`
    pub(crate) member: PreparedStatement,
    /// `(room, user_id, role, banned, muted_until, timestamp)`
    pub(crate) put_member: PreparedStatement,
    /// `(timestamp, role, user_id, room)`: the role only, so the read mark survives
    pub(crate) put_user_role: PreparedStatement,
    /// `(room, after user_id, limit) -> (user_id, role, banned, muted_until)`, ascending
    pub(crate) members_after: PreparedStatement,
    /// `(user_id, after room, limit) -> (room, role, read_seq, read_count)`, ascending
    pub(crate) rooms_after: PreparedStatement,
    /// `(timestamp, read_seq, read_count, user_id, room)`: the mark only, never the role
    pub(crate) put_read_mark: PreparedStatement,
}

impl Statements {
    pub(crate) async fn prepare(
        session: &Session,
        config: &CqlConfig,
    ) -> Result<Statements, CqlError> {
        let prepare = async |cql: String, idempotent: bool| {
            let mut ps = setup_step(
                &format!("prepare {cql:?}"),
                config.request_timeout,
                session.prepare(cql.as_str()),
            )
            .await?;
            // Writes carry their own timestamps, so repeating one is harmless; lightweight
            // transactions are not repeated by the driver.
            ps.set_is_idempotent(idempotent);
            Ok::<_, CqlError>(ps)
        };
        let mut read_after = prepare(
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND bucket = ? AND seq > ? LIMIT ?"
            ),
            true,
        )
        .await?;
        read_after.set_page_size(PAGE_SIZE);
        let mut read_before = prepare(
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND bucket = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
            ),
            true,
        )
        .await?;
        read_before.set_page_size(PAGE_SIZE);
        let mut claim_of = prepare(
            "SELECT holder, epoch, released FROM slot_claims WHERE slot = ?".into(),
            true,
        )
        .await?;
        claim_of.set_consistency(crate::session::serial_read(config.consistency));
        let mut members_after = prepare(
            "SELECT user_id, role, banned, muted_until FROM room_members \
             WHERE room = ? AND user_id > ? LIMIT ?"
                .into(),
            true,
        )
        .await?;
        members_after.set_page_size(PAGE_SIZE);
        let mut rooms_after = prepare(
            "SELECT room, role, read_seq, read_count FROM user_rooms \
             WHERE user_id = ? AND room > ? LIMIT ?"
                .into(),
            true,
        )
        .await?;
        rooms_after.set_page_size(PAGE_SIZE);
        Ok(Statements {
            insert_message: prepare(
                "INSERT INTO messages (room, bucket, seq, ts, sender, client_msg_id, body, ext, ordinal) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                    .into(),
                true,
            )
            .await?,
            insert_send: prepare(
                "INSERT INTO sends (room, sender, client_msg_id, seq, ts) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
                    .into(),
                true,
            )
            .await?,
            write_head: prepare(
                "INSERT INTO room_heads (room, bucket) VALUES (?, ?) USING TIMESTAMP ?".into(),
                true,
            )
            .await?,
            read_head: prepare(
                "SELECT bucket FROM room_heads WHERE room = ?".into(),
                true,
            )
            .await?,
            last_in_bucket: prepare(
                "SELECT seq FROM messages WHERE room = ? AND bucket = ? ORDER BY seq DESC LIMIT 1"
                    .into(),
                true,
            )
            .await?,
            read_after,
            read_before,
            message_at: prepare(
                "SELECT sender, client_msg_id, ts FROM messages WHERE room = ? AND bucket = ? AND seq = ?"
                    .into(),
                true,
            )
            .await?,
            read_send: prepare(
                "SELECT seq, ts FROM sends WHERE room = ? AND sender = ? AND client_msg_id = ?"
                    .into(),
                true,
            )
            .await?,
            renew_session: prepare(
                "INSERT INTO router_sessions (holder, expires_ms) VALUES (?, ?) USING TIMESTAMP ?"
                    .into(),
                true,
            )
            .await?,
            session_expiry: prepare(
                "SELECT expires_ms FROM router_sessions WHERE holder = ?".into(),
                true,
            )
            .await?,
            end_session: prepare(
                "DELETE FROM router_sessions USING TIMESTAMP ? WHERE holder = ?".into(),
                true,
            )
            .await?,
            claim_of,
            claim_new: prepare(
                "INSERT INTO slot_claims (slot, holder, epoch, released) VALUES (?, ?, 1, false) \
                 IF NOT EXISTS"
                    .into(),
                false,
            )
            .await?,
            claim_from: prepare(
                "UPDATE slot_claims SET holder = ?, epoch = ?, released = false WHERE slot = ? \
                 IF holder = ? AND epoch = ? AND released = ?"
                    .into(),
                false,
            )
            .await?,
            release: prepare(
                "UPDATE slot_claims SET released = true WHERE slot = ? IF holder = ? AND epoch = ?"
                    .into(),
                false,
            )
            .await?,
            room_info: prepare(
                "SELECT visibility, created_by, created_ts, pending_from FROM rooms WHERE room = ?"
                    .into(),
                true,
            )
            .await?,
            put_room: prepare(
                "INSERT INTO rooms (room, visibility, created_by, created_ts, pending_from) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
                    .into(),
                true,
            )
            .await?,
            member: prepare(
                "SELECT role, banned, muted_until FROM room_members WHERE room = ? AND user_id = ?"
                    .into(),
                true,
            )
            .await?,
            put_member: prepare(
                "INSERT INTO room_members (room, user_id, role, banned, muted_until) \
                 VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
                    .into(),
                true,
            )
            .await?,
            put_user_role: prepare(
                "UPDATE user_rooms USING TIMESTAMP ? SET role = ? WHERE user_id = ? AND room = ?"
                    .into(),
                true,
            )
            .await?,
            members_after,
            rooms_after,
            put_read_mark: prepare(
                "UPDATE user_rooms USING TIMESTAMP ? SET read_seq = ?, read_count = ? \
                 WHERE user_id = ? AND room = ?"
                    .into(),
                true,
            )
            .await?,
        })
    }
}
