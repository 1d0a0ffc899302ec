//! The simulated gateways' receiving side. Every design ends in one task per held room, as the
//! gateway's hub has: with per-room subjects that task reads its own bus subscription; with a
//! shared subscription (wildcard, per-gateway subject) one task per gateway reads it and hands
//! each message of a held room to that room's task over a channel.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use chorus_bus_nats::SEQ_HEADER;
use chorus_core::{
    RoomId,
    bus::{BusEvent, Subscription},
};
use futures_util::StreamExt;
use tokio::{sync::mpsc, task::JoinSet};

/// Deliveries queued for one room's task behind a shared subscription (more are dropped and
/// counted as gaps by the room, as a bus loss would be).
const ROOM_QUEUE: usize = 64;

/// One gateway's tallies. Written by its receiving tasks, read by the scenario's poller.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages that reached the gateway, for its rooms or not.
    pub received: AtomicU64,
    /// Messages for a room the gateway holds.
    pub wanted: AtomicU64,
    /// Messages for rooms the gateway does not hold (dropped on arrival).
    pub discarded: AtomicU64,
    /// Seqs skipped within a room (lost before a later message of the room arrived).
    pub gaps: AtomicU64,
    /// `BusEvent::Lagged` seen by room subscriptions (the bus admitting a loss: one client
    /// event reaches every subscription of the client).
    pub lagged: AtomicU64,
    /// Slow-consumer events on a shared subscription's client (its buffer was full and
    /// messages were dropped). The bus's clients report these as `lagged` instead.
    pub slow_consumer_events: AtomicU64,
    /// Deliveries a shared subscription's reader could not queue for their room's task.
    pub overflowed: AtomicU64,
}

impl Counters {
    /// A message of a held room with `seq` arrived after `last`.
    fn wanted(&self, last: &mut u64, seq: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.wanted.fetch_add(1, Ordering::Relaxed);
        if seq > *last + 1 {
            self.gaps.fetch_add(seq - *last - 1, Ordering::Relaxed);
        }
        *last = (*last).max(seq);
    }
}

/// Receives one room's subscription until the task is aborted.
pub async fn room(mut sub: Subscription, c: Arc<Counters>) {
    let mut last = 0;
    while let Some(event) = sub.next().await {
        match event {
            BusEvent::Delivery(d) => c.wanted(&mut last, d.seq),
            BusEvent::Lagged => {
                c.lagged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Where a shared subscription's message names its room.
#[derive(Debug)]
pub enum RoomFrom {
    /// The subject after this prefix (`{prefix}.room.`), as the bus encodes it.
    Subject(String),
    /// A header holding the room name.
    Header(&'static str),
}

/// A gateway's rooms, for sorting a shared subscription's messages.
#[derive(Debug)]
pub struct Demux {
    /// Room (as it appears in a message) → its task's queue of seqs.
    held: HashMap<String, mpsc::Sender<u64>>,
    from: RoomFrom,
}

impl Demux {
    /// Starts one task per room in `rooms` on `tasks`.
    pub fn new<'a>(
        rooms: impl Iterator<Item = &'a RoomId>,
        from: RoomFrom,
        c: &Arc<Counters>,
        tasks: &mut JoinSet<()>,
    ) -> Demux {
        let held = rooms
            .map(|room| {
                let key = match from {
                    RoomFrom::Subject(_) => room.as_str().replace('.', "~"),
                    RoomFrom::Header(_) => room.as_str().to_owned(),
                };
                let (tx, mut rx) = mpsc::channel(ROOM_QUEUE);
                let c = c.clone();
                tasks.spawn(async move {
                    let mut last = 0;
                    while let Some(seq) = rx.recv().await {
                        c.wanted(&mut last, seq);
                    }
                });
                (key, tx)
            })
            .collect();
        Demux { held, from }
    }

    fn room_of<'m>(&self, m: &'m async_nats::Message) -> Option<&'m str> {
        match &self.from {
            RoomFrom::Subject(prefix) => m.subject.as_str().strip_prefix(prefix.as_str()),
            RoomFrom::Header(name) => m.headers.as_ref()?.get(*name).map(|v| v.as_str()),
        }
    }
}

/// Reads a shared subscription until the task is aborted: messages of held rooms go to their
/// room's task, the others are dropped.
pub async fn demux(mut sub: async_nats::Subscriber, d: Demux, c: Arc<Counters>) {
    while let Some(m) = sub.next().await {
        let room = d.room_of(&m).and_then(|room| d.held.get(room));
        let seq = || {
            let v = m.headers.as_ref()?.get(SEQ_HEADER)?;
            v.as_str().parse::<u64>().ok()
        };
        match room.zip(room.and_then(|_| seq())) {
            Some((tx, seq)) => {
                if tx.try_send(seq).is_err() {
                    c.received.fetch_add(1, Ordering::Relaxed);
                    c.overflowed.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                c.received.fetch_add(1, Ordering::Relaxed);
                c.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
