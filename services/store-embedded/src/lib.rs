//! The embedded store: Chorus's room log and room state in a single redb file, for standalone
//! mode.
//!
//! Layout (docs/adr/0001-embedded-store.md says why redb and why this layout):
//! - `messages`: `(room, seq) -> record`. A room's messages are adjacent and ordered by seq, so
//!   a history page or a resume read is one B-tree range scan. The record (`record.rs`) carries
//!   the entry's kind and current state only when it has any, and its unread-counting ordinal.
//! - `rooms`: `room -> last_seq`, read and checked by every append (the fence that keeps a log
//!   gapless).
//! - `sends`: `(room, user, client_msg_id) -> (seq, ts)`, the idempotency records, written in
//!   the same transaction as their message.
//! - `room_info`, `room_members`, `user_rooms`: room state (created rooms, member records, each
//!   user's room list and read marks), described in `state.rs`.
//!
//! Every table is created when the store opens, so a file written by an older version gains
//! the newer tables empty, and its records read back with no kind and a count of 0.
//!
//! Writes (appends, amends, state changes) go through one writer thread that drains every
//! queued write into a single transaction and commits it once with an fsync (group commit):
//! under load many rooms' writes share one sync, and an idle store still answers a single
//! write after one sync.
//!
//! It does not replicate, shard or expire anything: that is the cluster store's job. Nor does
//! it derive room state from the log: the router writes both.

mod record;
mod state;
mod writer;

use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    Message, RoomId, UserId,
    store::{MessageStore, PriorSend, ReadRange, StoreError},
};
use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::{
    state::{ROOM_INFO, ROOM_MEMBERS, USER_ROOMS},
    writer::{Job, Op, Writer},
};

const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const ROOMS: TableDefinition<&str, u64> = TableDefinition::new("rooms");
const SENDS: TableDefinition<(&str, &str, &str), (u64, u64)> = TableDefinition::new("sends");

/// Tuning for [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Most writes (appends, amends, state changes) committed by one transaction.
    pub max_batch: usize,
    /// Writes waiting for the writer before new ones are refused with `unavailable`.
    pub queue_depth: usize,
    /// How long a write may wait for its commit before it reports `unavailable` (it may still
    /// commit afterwards).
    pub append_timeout: Duration,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            max_batch: 1024,
            queue_depth: 8192,
            append_timeout: Duration::from_secs(10),
            cache_bytes: 64 << 20,
        }
    }
}

/// The redb-backed [`MessageStore`] and [`RoomStateStore`](chorus_core::state::RoomStateStore).
/// Cheap to share behind an `Arc`; owns one writer thread, which [`MessageStore::close`] stops
/// after committing everything queued. Close also lets go of the database file (once in-flight
/// reads finish), so the directory can be opened again.
pub struct EmbeddedStore {
    /// `None` once closed.
    db: RwLock<Option<Arc<Database>>>,
    jobs: mpsc::Sender<Job>,
    config: EmbeddedConfig,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("config", &self.config)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, file `chorus.redb`.
    pub fn open(dir: &Path, config: EmbeddedConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(dir.join("chorus.redb"))
            .map_err(unavailable)?;
        let tx = db.begin_write().map_err(unavailable)?;
        {
            tx.open_table(MESSAGES).map_err(unavailable)?;
            tx.open_table(ROOMS).map_err(unavailable)?;
            tx.open_table(SENDS).map_err(unavailable)?;
            tx.open_table(ROOM_INFO).map_err(unavailable)?;
            tx.open_table(ROOM_MEMBERS).map_err(unavailable)?;
            tx.open_table(USER_ROOMS).map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        let (jobs, rx) = mpsc::channel(config.queue_depth);
        Writer::spawn(db.clone(), rx, config.max_batch)?;
        Ok(EmbeddedStore {
            db: RwLock::new(Some(db)),
            jobs,
            config,
        })
    }

    /// Queues `op` for the writer thread and waits for its commit.
    async fn write(&self, op: Op) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.jobs
            .try_send(Job { op, reply })
            .map_err(|e| StoreError::Unavailable(format!("write queue: {e}")))?;
        match tokio::time::timeout(self.config.append_timeout, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Unavailable("store writer stopped".into())),
            Err(_) => Err(StoreError::Unavailable("write timed out".into())),
        }
    }

    async fn read_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self
            .db
            .read()
            .expect("db lock is never held across a panic")
            .clone()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn last_seq(&self, room: &RoomId) -> Result<u64, StoreError> {
        let room = room.clone();
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let rooms = tx.open_table(ROOMS).map_err(unavailable)?;
            Ok(rooms
                .get(room.as_str())
                .map_err(unavailable)?
                .map_or(0, |v| v.value()))
        })
        .await
    }

    async fn append(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.write(Op::append(room.clone(), messages)?).await
    }

    /// Replaces the stored records in one write, ordered with appends. An entry that is not
    /// stored (a seq beyond the log's end, or a message of another room) refuses the whole
    /// call with [`StoreError::Conflict`] (`last_seq` the room's head, `first` the offending
    /// seq) and writes nothing of it: like a refused append, it means the caller lost track
    /// of the room.
    async fn amend(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.write(Op::amend(room.clone(), messages)).await
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
        let room = room.clone();
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(MESSAGES).map_err(unavailable)?;
            let key = room.as_str();
            let mut out = Vec::with_capacity(limit.min(128));
            let decode = |entry: Result<
                (redb::AccessGuard<(&str, u64)>, redb::AccessGuard<&[u8]>),
                redb::StorageError,
            >| {
                let (k, v) = entry.map_err(unavailable)?;
                record::decode(&room, k.value().1, v.value())
            };
            match range {
                ReadRange::After(after) => {
                    let Some(start) = after.checked_add(1) else {
                        return Ok(out);
                    };
                    for entry in table
                        .range((key, start)..=(key, u64::MAX))
                        .map_err(unavailable)?
                    {
                        out.push(decode(entry)?);
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                ReadRange::Before(before) => {
                    for entry in table
                        .range((key, 0)..(key, before))
                        .map_err(unavailable)?
                        .rev()
                    {
                        out.push(decode(entry)?);
                        if out.len() == limit {
                            break;
                        }
                    }
                    out.reverse();
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_prior_send(
        &self,
        room: &RoomId,
        from: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<PriorSend>, StoreError> {
        let (room, from, cmid) = (room.clone(), from.clone(), client_msg_id.to_owned());
        self.read_blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let sends = tx.open_table(SENDS).map_err(unavailable)?;
            let found = sends
                .get((room.as_str(), from.as_str(), cmid.as_str()))
                .map_err(unavailable)?
                .map(|v| {
                    let (seq, ts) = v.value();
                    PriorSend { seq, ts }
                });
            Ok(found)
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        let job = Job {
            op: Op::Close,
            reply,
        };
        let result = if self.jobs.send(job).await.is_err() {
            Ok(()) // already closed
        } else {
            done.await
                .map_err(|_| StoreError::Unavailable("store writer stopped".into()))
                .and_then(|r| r)
        };
        self.db
            .write()
            .expect("db lock is never held across a panic")
            .take();
        result
    }
}
