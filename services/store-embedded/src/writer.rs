//! The single writer thread: group commit for every room, and for room state.
//!
//! Owned by the [`EmbeddedStore`](crate::EmbeddedStore) that spawned it; it stops when that
//! store sends [`Op::Close`] or is dropped (the channel closes). Each round takes every queued
//! job (up to `max_batch`), applies the valid ones in queue order in one write transaction and
//! commits once (redb `Durability::Immediate`: fsync before commit returns). Appends, amends and
//! state writes share the queue, so each is ordered after everything queued before it.
//!
//! A job that does not fit the log is refused on its own and writes nothing: an append whose
//! seqs do not continue its room's log, an amend of an entry that is not stored (both
//! [`StoreError::Conflict`]). An I/O failure fails the whole round, so every reply tells the
//! truth about durability.

use std::{collections::HashMap, sync::Arc};

use chorus_core::{Message, RoomId, UserId, store::StoreError};
use redb::{Database, ReadableTable, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::{
    MESSAGES, ROOMS, SENDS, record,
    state::{StateTables, Write},
    unavailable,
};

pub(crate) type Reply = oneshot::Sender<Result<(), StoreError>>;

pub(crate) struct Encoded {
    seq: u64,
    ts: u64,
    from: UserId,
    client_msg_id: Option<String>,
    bytes: Vec<u8>,
}

/// One queued write and where its outcome goes.
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) reply: Reply,
}

pub(crate) enum Op {
    Append {
        room: RoomId,
        messages: Vec<Encoded>,
    },
    Amend {
        room: RoomId,
        /// `(seq, record)` of each replacement, in call order.
        records: Vec<(u64, Vec<u8>)>,
        /// The seq of the first message given for another room: refused like a missing one.
        foreign: Option<u64>,
    },
    State(Write),
    /// Commit everything queued before, refuse everything after, let go of the database.
    Close,
}

impl Op {
    /// Encodes outside the writer thread, and checks that the batch is consecutive and in one
    /// room so the writer only has to check where it starts. `messages` is not empty.
    pub(crate) fn append(room: RoomId, messages: &[Message]) -> Result<Op, StoreError> {
        let first = messages[0].seq;
        let mut encoded = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if m.room != room || m.seq != first + i as u64 {
                return Err(StoreError::Conflict {
                    room,
                    last_seq: first + i as u64 - 1,
                    first,
                });
            }
            encoded.push(Encoded {
                seq: m.seq,
                ts: m.ts,
                from: m.from.clone(),
                client_msg_id: m.client_msg_id.clone(),
                bytes: record::encode(m),
            });
        }
        Ok(Op::Append {
            room,
            messages: encoded,
        })
    }

    /// Encodes the replacements outside the writer thread.
    pub(crate) fn amend(room: RoomId, messages: &[Message]) -> Op {
        let foreign = messages.iter().find(|m| m.room != room).map(|m| m.seq);
        let records = messages
            .iter()
            .map(|m| (m.seq, record::encode(m)))
            .collect();
        Op::Amend {
            room,
            records,
            foreign,
        }
    }

    fn is_state(&self) -> bool {
        matches!(self, Op::State(_))
    }
}

pub(crate) struct Writer {
    db: Arc<Database>,
    jobs: mpsc::Receiver<Job>,
    max_batch: usize,
}

impl Writer {
    pub(crate) fn spawn(
        db: Arc<Database>,
        jobs: mpsc::Receiver<Job>,
        max_batch: usize,
    ) -> Result<(), StoreError> {
        let writer = Writer {
            db,
            jobs,
            max_batch: max_batch.max(1),
        };
        std::thread::Builder::new()
            .name("chorus-store-writer".into())
            .spawn(move || writer.run())
            .map(drop)
            .map_err(unavailable)
    }

    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(job) = self.jobs.blocking_recv() {
            let mut close = None;
            match job.op {
                Op::Close => close = Some(job.reply),
                _ => batch.push(job),
            }
            while close.is_none() && batch.len() < self.max_batch {
                match self.jobs.try_recv() {
                    Ok(Job {
                        op: Op::Close,
                        reply,
                    }) => close = Some(reply),
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            if let Some(reply) = close {
                // Everything queued before the close has been committed above.
                self.jobs.close();
                while let Ok(job) = self.jobs.try_recv() {
                    let _ = job.reply.send(match job.op {
                        Op::Close => Ok(()),
                        _ => Err(StoreError::Unavailable("store is closed".into())),
                    });
                }
                // Let go of the database before answering, so that when close() returns
                // the file lock is free and the directory can be opened again.
                drop(self);
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }

    fn commit(&self, batch: &mut Vec<Job>) {
        let mut outcomes: Vec<(Reply, Result<(), StoreError>)> = Vec::with_capacity(batch.len());
        let mut jobs = batch.drain(..);
        let result = (|| -> Result<(), StoreError> {
            let tx = self.db.begin_write().map_err(unavailable)?;
            {
                let mut log = LogTables::open(&tx)?;
                let mut state = match jobs.as_slice().iter().any(|j| j.op.is_state()) {
                    true => Some(StateTables::open(&tx)?),
                    false => None,
                };
                for Job { op, reply } in jobs.by_ref() {
                    let applied = match op {
                        Op::Append { room, messages } => log.append(room, messages),
                        Op::Amend {
                            room,
                            records,
                            foreign,
                        } => log.amend(room, records, foreign),
                        Op::State(write) => state
                            .as_mut()
                            .expect("state tables are opened when the batch has a state write")
                            .apply(write)
                            .map(Ok),
                        Op::Close => unreachable!("close never enters a batch"),
                    };
                    match applied {
                        Ok(outcome) => outcomes.push((reply, outcome)),
                        Err(e) => {
                            outcomes.push((reply, Err(e.clone())));
                            return Err(e);
                        }
                    }
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(())
        })();
        // Jobs not reached before a failure; their outcome is the failure's.
        for job in jobs {
            outcomes.push((
                job.reply,
                Err(StoreError::Unavailable("write aborted".into())),
            ));
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = outcomes.len(), "store commit failed");
        }
        for (reply, outcome) in outcomes {
            // The outcomes describe the transaction only if it committed; a refusal stays true.
            let outcome = match (&result, outcome) {
                (Ok(()), outcome) => outcome,
                (Err(_), Err(conflict @ StoreError::Conflict { .. })) => Err(conflict),
                (Err(e), _) => Err(e.clone()),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// The log tables, open in the writer's transaction. The outer `Result` of each operation is
/// an I/O failure (it fails the round); the inner one is the job's own outcome.
struct LogTables<'txn> {
    messages: Table<'txn, (&'static str, u64), &'static [u8]>,
    rooms: Table<'txn, &'static str, u64>,
    sends: Table<'txn, (&'static str, &'static str, &'static str), (u64, u64)>,
    /// last_seq of rooms already appended to in this transaction.
    heads: HashMap<RoomId, u64>,
}

type Outcome = Result<Result<(), StoreError>, StoreError>;

impl<'txn> LogTables<'txn> {
    fn open(tx: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(LogTables {
            messages: tx.open_table(MESSAGES).map_err(unavailable)?,
            rooms: tx.open_table(ROOMS).map_err(unavailable)?,
            sends: tx.open_table(SENDS).map_err(unavailable)?,
            heads: HashMap::new(),
        })
    }

    fn head(&self, room: &RoomId) -> Result<u64, StoreError> {
        match self.heads.get(room) {
            Some(&last) => Ok(last),
            None => Ok(self
                .rooms
                .get(room.as_str())
                .map_err(unavailable)?
                .map_or(0, |v| v.value())),
        }
    }

    fn append(&mut self, room: RoomId, ms: Vec<Encoded>) -> Outcome {
        let last = self.head(&room)?;
        let first = ms[0].seq;
        if first != last + 1 {
            return Ok(Err(StoreError::Conflict {
                room,
                last_seq: last,
                first,
            }));
        }
        for m in &ms {
            self.messages
                .insert((room.as_str(), m.seq), m.bytes.as_slice())
                .map_err(unavailable)?;
            if let Some(cmid) = &m.client_msg_id {
                self.sends
                    .insert(
                        (room.as_str(), m.from.as_str(), cmid.as_str()),
                        (m.seq, m.ts),
                    )
                    .map_err(unavailable)?;
            }
        }
        let new_last = ms[ms.len() - 1].seq;
        self.rooms
            .insert(room.as_str(), new_last)
            .map_err(unavailable)?;
        self.heads.insert(room, new_last);
        Ok(Ok(()))
    }

    /// Replaces stored entries. Every seq is checked before anything is written, so a refused
    /// amend writes nothing; idempotency records and the room head are left as they are.
    fn amend(
        &mut self,
        room: RoomId,
        records: Vec<(u64, Vec<u8>)>,
        foreign: Option<u64>,
    ) -> Outcome {
        let mut missing = foreign;
        if missing.is_none() {
            for (seq, _) in &records {
                if self
                    .messages
                    .get((room.as_str(), *seq))
                    .map_err(unavailable)?
                    .is_none()
                {
                    missing = Some(*seq);
                    break;
                }
            }
        }
        if let Some(seq) = missing {
            let last = self.head(&room)?;
            return Ok(Err(StoreError::Conflict {
                room,
                last_seq: last,
                first: seq,
            }));
        }
        for (seq, bytes) in &records {
            self.messages
                .insert((room.as_str(), *seq), bytes.as_slice())
                .map_err(unavailable)?;
        }
        Ok(Ok(()))
    }
}
