//! [`CqlStore`] and its [`MessageStore`] implementation: the bucketed room logs, the append
//! fence, the idempotency records and amends (the crate docs describe the design). The row
//! encoding is in `rows`, the room state in `state`.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    Message, RoomId, UserId,
    store::{MessageStore, PriorSend, ReadRange, StoreError},
};
use futures_util::future::try_join_all;
use scylla::{
    client::session::Session,
    response::PagingState,
    statement::{
        batch::{Batch, BatchStatement, BatchType},
        prepared::PreparedStatement,
    },
};
use tokio::time::Instant;

use crate::{
    CqlConfig, CqlError,
    clock::WriteClock,
    error::{corrupt, setup_step, unavailable},
    heads::{Head, Heads},
    migrate,
    rows::{self, Row, StoredRow, to_i64, to_u64},
    session,
    statements::Statements,
};

/// Most bytes of message data (bodies, ext JSON, senders, ids, plus a per-row allowance)
/// written by one batch. A bucket's part of an append or amend larger than this is split into
/// several batches, written in order, so one huge append (the router may batch hundreds of
/// sends of up to 4 KiB) stays well under the servers' limits: ScyllaDB fails batches over
/// 1 MiB by default (`batch_size_fail_threshold_in_kb`), Cassandra mutations over half a
/// commit log segment. A failure can then leave a prefix inside that bucket too.
pub const MAX_BATCH_BYTES: usize = 512 << 10;

/// The [`MessageStore`] and [`LeaseStore`](chorus_core::lease::LeaseStore) on a CQL cluster.
///
/// Holds one driver session (connection pools to every node) shared by all rooms, and the
/// statements prepared at connect. Cheap to share behind an `Arc`; dropping it closes the
/// session. [`MessageStore::close`] refuses later appends; every append that returned `Ok`
/// was already written at the configured consistency.
pub struct CqlStore {
    pub(crate) session: Session,
    pub(crate) st: Statements,
    pub(crate) config: CqlConfig,
    pub(crate) clock: WriteClock,
    heads: Heads,
    closed: AtomicBool,
}

impl std::fmt::Debug for CqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CqlStore {
    /// Connects, checks that the keyspace has this binary's schema and bucket size (else
    /// [`CqlError::SchemaMissing`], [`CqlError::SchemaOutdated`] or
    /// [`CqlError::BucketSizeMismatch`]: run `chorus migrate`), and prepares every statement.
    pub async fn connect(config: &CqlConfig) -> Result<CqlStore, CqlError> {
        config.validate()?;
        let session = session::open(config, Duration::from_millis(200)).await?;
        let exists = setup_step(
            "read keyspaces",
            config.request_timeout,
            session.query_unpaged(
                "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
                (config.keyspace.as_str(),),
            ),
        )
        .await?
        .into_rows_result()
        .map_err(|e| CqlError::query("read keyspaces", e))?
        .rows_num()
            > 0;
        if !exists {
            return Err(CqlError::SchemaMissing {
                keyspace: config.keyspace.clone(),
            });
        }
        setup_step(
            "use keyspace",
            config.request_timeout,
            session.use_keyspace(config.keyspace.as_str(), false),
        )
        .await?;
        migrate::check(&session, config).await?;
        let st = Statements::prepare(&session, config).await?;
        tracing::info!(
            keyspace = %config.keyspace,
            contact_points = ?config.contact_points,
            bucket_size = config.bucket_size,
            "cql store connected"
        );
        Ok(CqlStore {
            session,
            st,
            heads: Heads::new(config.head_cache_rooms),
            config: config.clone(),
            clock: WriteClock::default(),
            closed: AtomicBool::new(false),
        })
    }

    /// The bucket that holds `seq` (seq >= 1).
    fn bucket(&self, seq: u64) -> i64 {
        ((seq.max(1) - 1) / self.config.bucket_size) as i64
    }

    /// Runs `fut` under the request timeout.
    pub(crate) async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.config.request_timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "cql: request timed out after {:?}",
                    self.config.request_timeout
                )))
            })
    }

    /// The room's head bucket hint: the highest bucket it has reached, 0 if none recorded.
    async fn head_bucket(&self, room: &str) -> Result<i64, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.st.read_head, (room,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?;
        Ok(rows
            .maybe_first_row::<(i64,)>()
            .map_err(corrupt)?
            .map_or(0, |(b,)| b.max(0)))
    }

    /// The highest stored seq, from the database: the head bucket hint, stepping down past
    /// empty buckets (a failed append can leave the hint one bucket ahead of the data).
    async fn read_last_seq(&self, room: &RoomId) -> Result<u64, StoreError> {
        let mut bucket = self.head_bucket(room.as_str()).await?;
        loop {
            let rows = self
                .session
                .execute_unpaged(&self.st.last_in_bucket, (room.as_str(), bucket))
                .await
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(corrupt)?;
            if let Some((seq,)) = rows.maybe_first_row::<(i64,)>().map_err(corrupt)? {
                return to_u64(seq, "seq");
            }
            if bucket == 0 {
                return Ok(0);
            }
            bucket -= 1;
        }
    }

    /// Waits out the room's settle deadline if it has one, then reads its head from the
    /// database and caches it.
    async fn reload_head(&self, room: &RoomId) -> Result<u64, StoreError> {
        let waited = match self.heads.get(room) {
            Some(Head::Settling(deadline)) => {
                tokio::time::sleep_until(deadline).await;
                Some(deadline)
            }
            _ => None,
        };
        let head = self.bounded(self.read_last_seq(room)).await?;
        self.heads.set(room, head, waited);
        Ok(head)
    }

    /// Writes an append whose fence already passed. Returns the first error; the caller makes
    /// the room settle.
    async fn write(
        &self,
        room: &RoomId,
        head: u64,
        messages: &[Message],
    ) -> Result<(), StoreError> {
        let rows = Row::encode_all(messages)?;
        let timestamp = self.clock.next();
        let r = room.as_str();

        // 1. Idempotency records, concurrently: all of them before any message.
        let mut sends = Vec::new();
        for row in &rows {
            let m = row.message;
            if let Some(cmid) = &m.client_msg_id {
                let values = (
                    r,
                    m.from.as_str(),
                    cmid.as_str(),
                    to_i64(m.seq, "seq")?,
                    to_i64(m.ts, "ts")?,
                    timestamp,
                );
                sends.push(self.session.execute_unpaged(&self.st.insert_send, values));
            }
        }
        try_join_all(sends).await.map_err(unavailable)?;

        // 2. Messages, bucket by bucket in ascending order, each bucket's rows as one
        // single-partition UNLOGGED batch (split only past MAX_BATCH_BYTES).
        let mut reached = if head == 0 { 0 } else { self.bucket(head) };
        for group in rows.chunk_by(|a, b| self.bucket(a.message.seq) == self.bucket(b.message.seq))
        {
            let bucket = self.bucket(group[0].message.seq);
            if bucket > reached {
                self.session
                    .execute_unpaged(&self.st.write_head, (r, bucket, timestamp))
                    .await
                    .map_err(unavailable)?;
                reached = bucket;
            }
            self.write_bucket(r, bucket, group, timestamp).await?;
        }
        Ok(())
    }

    /// Writes rows of one bucket, whole, as single-partition UNLOGGED batches of at most
    /// [`MAX_BATCH_BYTES`], in order.
    async fn write_bucket(
        &self,
        room: &str,
        bucket: i64,
        rows: &[Row<'_>],
        timestamp: i64,
    ) -> Result<(), StoreError> {
        let mut rest = rows;
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|row| {
                    bytes += row.weight();
                    bytes <= MAX_BATCH_BYTES
                })
                .count()
                .max(1);
            let (chunk, tail) = rest.split_at(n);
            self.write_messages(room, bucket, chunk, timestamp).await?;
            rest = tail;
        }
        Ok(())
    }

    async fn write_messages(
        &self,
        room: &str,
        bucket: i64,
        chunk: &[Row<'_>],
        timestamp: i64,
    ) -> Result<(), StoreError> {
        let values: Vec<_> = chunk
            .iter()
            .map(|row| row.values(room, bucket, timestamp))
            .collect();
        if let [one] = values.as_slice() {
            self.session
                .execute_unpaged(&self.st.insert_message, one)
                .await
                .map_err(unavailable)?;
            return Ok(());
        }
        let mut batch = Batch::new_with_statements(
            BatchType::Unlogged,
            vec![BatchStatement::PreparedStatement(self.st.insert_message.clone()); chunk.len()],
        );
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, &values)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Rewrites existing rows whole under a new timestamp, bucket by bucket, and nothing
    /// else: not the head hint, not the idempotency records.
    async fn rewrite(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        // Ascending by seq, so each bucket is one group even when the caller lists seqs out
        // of order; of two entries for one seq the later one is written (one timestamp covers
        // the whole call, so a batch holding both would not say which wins).
        let by_seq: std::collections::BTreeMap<u64, Row<'_>> = messages
            .iter()
            .map(|m| Ok((m.seq, Row::encode(m)?)))
            .collect::<Result<_, StoreError>>()?;
        let rows: Vec<Row<'_>> = by_seq.into_values().collect();
        let timestamp = self.clock.next();
        let r = room.as_str();
        let writes = rows
            .chunk_by(|a, b| self.bucket(a.message.seq) == self.bucket(b.message.seq))
            .map(|group| self.write_bucket(r, self.bucket(group[0].message.seq), group, timestamp));
        try_join_all(writes).await?;
        Ok(())
    }

    /// Reads up to `want` messages of one bucket past `bound` (`statement` decides the
    /// direction), one page at a time.
    async fn read_bucket(
        &self,
        statement: &PreparedStatement,
        room: &RoomId,
        bucket: i64,
        bound: i64,
        want: usize,
        out: &mut Vec<Message>,
    ) -> Result<(), StoreError> {
        let limit = i32::try_from(want).unwrap_or(i32::MAX);
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .session
                .execute_single_page(statement, (room.as_str(), bucket, bound, limit), paging)
                .await
                .map_err(unavailable)?;
            let result = result.into_rows_result().map_err(corrupt)?;
            for row in result.rows::<StoredRow>().map_err(corrupt)? {
                out.push(rows::decode(room, row.map_err(corrupt)?)?);
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Break(()) => return Ok(()),
                std::ops::ControlFlow::Continue(state) => paging = state,
            }
        }
    }

    async fn read_after(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(256));
        let Some(start) = after.checked_add(1).filter(|s| i64::try_from(*s).is_ok()) else {
            return Ok(out);
        };
        let bound = after as i64;
        let mut bucket = self.bucket(start);
        // The first bucket is read while the head hint is: a resume read is one round trip.
        let (head, ()) = futures_util::try_join!(
            self.head_bucket(room.as_str()),
            self.read_bucket(&self.st.read_after, room, bucket, bound, limit, &mut out)
        )?;
        while out.len() < limit && bucket < head {
            bucket += 1;
            let want = limit - out.len();
            self.read_bucket(&self.st.read_after, room, bucket, bound, want, &mut out)
                .await?;
        }
        Ok(out)
    }

    async fn read_before(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(256));
        if before <= 1 {
            return Ok(out);
        }
        let bound = i64::try_from(before).unwrap_or(i64::MAX);
        let head = self.head_bucket(room.as_str()).await?;
        let mut bucket = self.bucket(before - 1).min(head);
        loop {
            let want = limit - out.len();
            self.read_bucket(&self.st.read_before, room, bucket, bound, want, &mut out)
                .await?;
            if out.len() >= limit || bucket == 0 {
                break;
            }
            bucket -= 1;
        }
        out.reverse();
        Ok(out)
    }

    async fn prior_send(
        &self,
        room: &RoomId,
        from: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<PriorSend>, StoreError> {
        let record = self
            .session
            .execute_unpaged(
                &self.st.read_send,
                (room.as_str(), from.as_str(), client_msg_id),
            )
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(i64, i64)>()
            .map_err(corrupt)?;
        let Some((seq, _)) = record else {
            return Ok(None);
        };
        let seq = to_u64(seq, "seq")?;
        if seq == 0 {
            return Err(corrupt(format!("{room}: idempotency record with seq 0")));
        }
        // The record is written before its message, so it only counts if the message at its
        // seq is really this send.
        let message = self
            .session
            .execute_unpaged(
                &self.st.message_at,
                (room.as_str(), self.bucket(seq), seq as i64),
            )
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(String, String, i64)>()
            .map_err(corrupt)?;
        Ok(match message {
            Some((sender, cmid, ts)) if sender == from.as_str() && cmid == client_msg_id => {
                Some(PriorSend {
                    seq,
                    ts: to_u64(ts, "ts")?,
                })
            }
            _ => None,
        })
    }
}

#[async_trait]
impl MessageStore for CqlStore {
    /// Always reads the database (another router may have appended since this instance
    /// last did), after waiting out the room's settle deadline if an append failed recently.
    async fn last_seq(&self, room: &RoomId) -> Result<u64, StoreError> {
        self.reload_head(room).await
    }

    /// Fenced against the cached head (see the crate docs), then written as: idempotency
    /// records, then messages bucket by bucket. On failure the room settles for
    /// `request_timeout` before its head is read again.
    async fn append(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("cql store is closed".into()));
        }
        let Some(first) = messages.first().map(|m| m.seq) else {
            return Ok(());
        };
        for (i, m) in messages.iter().enumerate() {
            let expected = first.saturating_add(i as u64);
            if m.room != *room || m.seq != expected {
                return Err(StoreError::Conflict {
                    room: room.clone(),
                    last_seq: expected.saturating_sub(1),
                    first,
                });
            }
        }
        let head = match self.heads.get(room) {
            Some(Head::Known(head)) => head,
            _ => self.reload_head(room).await?,
        };
        if first != head + 1 {
            return Err(StoreError::Conflict {
                room: room.clone(),
                last_seq: head,
                first,
            });
        }
        match self.bounded(self.write(room, head, messages)).await {
            Ok(()) => {
                let last = messages[messages.len() - 1].seq;
                self.heads.set(room, last, None);
                Ok(())
            }
            Err(e) => {
                // Writes of this append may still land until the server times them out.
                self.heads
                    .failed(room, Instant::now() + self.config.request_timeout);
                tracing::warn!(room = %room, first, count = messages.len(), error = %e, "cql append failed; room settles");
                Err(e)
            }
        }
    }

    async fn read(
        &self,
        room: &RoomId,
        range: ReadRange,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match range {
            ReadRange::After(after) => self.bounded(self.read_after(room, after, limit)).await,
            ReadRange::Before(before) => self.bounded(self.read_before(room, before, limit)).await,
        }
    }

    /// Reads the record, then checks that the message at its seq is this send.
    async fn find_prior_send(
        &self,
        room: &RoomId,
        from: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<PriorSend>, StoreError> {
        self.bounded(self.prior_send(room, from, client_msg_id))
            .await
    }

    /// Rewrites the rows at the entries' seqs whole (every column, with a fresh client
    /// timestamp, so it wins over the original insert and any earlier amend of this process),
    /// one single-partition batch per bucket, buckets concurrently. Touches neither the head
    /// hint, nor the fence, nor the idempotency records (an amended entry keeps its sender and
    /// `client_msg_id`, so its record still checks out). That the entries exist is the
    /// caller's promise and is not checked (it would cost a read per entry); entries of
    /// another room or with seq 0 are refused with [`StoreError::Conflict`], writing nothing.
    /// Refused after [`close`](MessageStore::close), like appends.
    async fn amend(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("cql store is closed".into()));
        }
        if let Some(bad) = messages.iter().find(|m| m.room != *room || m.seq == 0) {
            return Err(StoreError::Conflict {
                room: room.clone(),
                last_seq: 0,
                first: bad.seq,
            });
        }
        self.bounded(self.rewrite(room, messages)).await
    }

    /// Refuses later appends. Nothing is buffered: every acknowledged append was written
    /// before it returned.
    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
