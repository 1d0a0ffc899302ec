//! The single writer thread: group commit for every room.
//!
//! Owned by the [`EmbeddedStore`](crate::EmbeddedStore) that spawned it; it stops when that
//! store sends [`Job::Close`] or is dropped (the channel closes). Each round takes every queued
//! job (up to `max_batch`), applies the valid ones in one write transaction and commits once
//! (redb `Durability::Immediate`: fsync before commit returns). A job whose seqs do not continue
//! its room's log is refused on its own; an I/O failure fails the whole round, so every reply
//! tells the truth about durability.

use std::{collections::HashMap, sync::Arc};

use chorus_core::{Message, RoomId, UserId, store::StoreError};
use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use crate::{MESSAGES, ROOMS, SENDS, record, unavailable};

type Reply = oneshot::Sender<Result<(), StoreError>>;

pub(crate) struct Encoded {
    seq: u64,
    ts: u64,
    from: UserId,
    client_msg_id: Option<String>,
    bytes: Vec<u8>,
}

pub(crate) enum Job {
    Append {
        room: RoomId,
        messages: Vec<Encoded>,
        reply: Reply,
    },
    Close(Reply),
}

impl Job {
    /// Encodes outside the writer thread, and checks that the batch is consecutive and in one
    /// room so the writer only has to check where it starts.
    pub(crate) fn new(room: RoomId, messages: &[Message], reply: Reply) -> Result<Job, StoreError> {
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
        Ok(Job::Append {
            room,
            messages: encoded,
            reply,
        })
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
            match job {
                Job::Close(reply) => close = Some(reply),
                job => batch.push(job),
            }
            while close.is_none() && batch.len() < self.max_batch {
                match self.jobs.try_recv() {
                    Ok(Job::Close(reply)) => close = Some(reply),
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
                    if let Job::Append { reply, .. } = job {
                        let _ = reply.send(Err(StoreError::Unavailable("store is closed".into())));
                    }
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
        let result = (|| -> Result<(), StoreError> {
            let tx = self.db.begin_write().map_err(unavailable)?;
            {
                let mut messages = tx.open_table(MESSAGES).map_err(unavailable)?;
                let mut rooms = tx.open_table(ROOMS).map_err(unavailable)?;
                let mut sends = tx.open_table(SENDS).map_err(unavailable)?;
                // last_seq of rooms already touched in this transaction.
                let mut heads: HashMap<RoomId, u64> = HashMap::new();
                for job in batch.drain(..) {
                    let Job::Append {
                        room,
                        messages: ms,
                        reply,
                    } = job
                    else {
                        continue;
                    };
                    let last = match heads.get(&room) {
                        Some(&last) => last,
                        None => rooms
                            .get(room.as_str())
                            .map_err(unavailable)?
                            .map_or(0, |v| v.value()),
                    };
                    let first = ms[0].seq;
                    if first != last + 1 {
                        outcomes.push((
                            reply,
                            Err(StoreError::Conflict {
                                room,
                                last_seq: last,
                                first,
                            }),
                        ));
                        continue;
                    }
                    for m in &ms {
                        messages
                            .insert((room.as_str(), m.seq), m.bytes.as_slice())
                            .map_err(unavailable)?;
                        if let Some(cmid) = &m.client_msg_id {
                            sends
                                .insert(
                                    (room.as_str(), m.from.as_str(), cmid.as_str()),
                                    (m.seq, m.ts),
                                )
                                .map_err(unavailable)?;
                        }
                    }
                    let new_last = ms[ms.len() - 1].seq;
                    rooms.insert(room.as_str(), new_last).map_err(unavailable)?;
                    heads.insert(room, new_last);
                    outcomes.push((reply, Ok(())));
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(())
        })();
        // The outcomes gathered so far describe the transaction only if it committed.
        for job in batch.drain(..) {
            if let Job::Append { reply, .. } = job {
                outcomes.push((reply, Err(StoreError::Unavailable("write aborted".into()))));
            }
        }
        for (reply, outcome) in outcomes {
            let outcome = match (&result, outcome) {
                (Ok(()), outcome) => outcome,
                (Err(_), Err(conflict @ StoreError::Conflict { .. })) => Err(conflict),
                (Err(e), _) => {
                    tracing::error!(error = %e, "store commit failed");
                    Err(e.clone())
                }
            };
            let _ = reply.send(outcome);
        }
    }
}
