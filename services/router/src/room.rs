//! One room's sequencer.
//!
//! The actor is the only writer of its room while it runs: the router's registry guarantees one
//! actor per room per process, and the ownership permit taken before every append guarantees
//! one process per room (the store's append fence catches anything else). It loads
//! `last_seq` from the store lazily, and again after any failed append, because a failed write
//! leaves the durable state unknown to it.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use chorus_core::actors::{ActorStart, FinishGuard, Finished};
use chorus_core::{
    Message, RoomId, UserId, Visibility,
    bus::Delivery,
    router::{RouterError, SendAck, SendRequest},
    state::RoomInfo,
    store::ReadRange,
    time::now_ms,
    trace::TraceParent,
};
use chorus_telemetry::Attr;
use tokio::sync::{mpsc, oneshot};

use crate::{
    Shared,
    effects::{Effects, Working},
};

/// Entries read per page while recovering effects after a crash.
const RECOVERY_PAGE: usize = 100;

/// One connection's sends to this room, sequenced together in order and sharing one fate.
pub(crate) struct SendJob {
    pub(crate) reqs: Vec<SendRequest>,
    pub(crate) reply: oneshot::Sender<Vec<Result<SendAck, RouterError>>>,
}

/// The room's position: the last durable seq, its timestamp and its unread ordinal.
#[derive(Clone, Copy)]
struct Head {
    seq: u64,
    ts: u64,
    count: u64,
}

/// The room's send rate limit (every entry counts), refilled continuously.
struct RoomBucket {
    tokens: f64,
    at: Instant,
}

impl RoomBucket {
    /// Takes `n` tokens, or says how long until they are there (taking nothing).
    fn take(&mut self, n: usize, rate: f64, burst: f64) -> Result<(), u64> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else if rate <= 0.0 || n > burst {
            Err(1000)
        } else {
            Err((((n - self.tokens) / rate) * 1000.0).ceil().max(1.0) as u64)
        }
    }
}

/// Recently acknowledged `(from, client_msg_id)`s, bounded, oldest evicted first.
struct RecentSends {
    map: HashMap<(UserId, String), SendAck>,
    order: VecDeque<(UserId, String)>,
    cap: usize,
}

impl RecentSends {
    fn new(cap: usize) -> Self {
        RecentSends {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get(&self, key: &(UserId, String)) -> Option<SendAck> {
        self.map.get(key).copied()
    }

    fn insert(&mut self, key: (UserId, String), ack: SendAck) {
        if self.cap == 0 {
            return;
        }
        if self.order.len() == self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.order.push_back(key.clone());
        self.map.insert(key, ack);
    }
}

/// What each request of a batch gets once the append is decided.
enum Outcome {
    /// The request's message is at this index of the append.
    New(usize),
    /// Same key as the message at this index of the same append.
    SameAs(usize),
    /// Already durable before this batch.
    Known(SendAck),
    /// Refused on its own (not allowed, invalid, rate limited); nothing stored.
    Refused(RouterError),
}

pub(crate) struct RoomActor {
    room: RoomId,
    generation: u64,
    shared: Arc<Shared>,
    jobs: mpsc::Receiver<SendJob>,
    predecessor: Option<Finished>,
    _guard: FinishGuard,
    head: Option<Head>,
    /// The ownership epoch `head` was read under.
    head_epoch: u64,
    recent: RecentSends,
    bucket: RoomBucket,
}

impl RoomActor {
    pub(crate) fn new(room: RoomId, shared: Arc<Shared>, start: ActorStart<SendJob>) -> Self {
        let recent = RecentSends::new(shared.config.dedupe_cache);
        let bucket = RoomBucket {
            tokens: shared.config.room_burst as f64,
            at: Instant::now(),
        };
        RoomActor {
            room,
            generation: start.generation,
            shared,
            jobs: start.commands,
            predecessor: start.predecessor,
            _guard: start.guard,
            head: None,
            head_epoch: 0,
            recent,
            bucket,
        }
    }

    pub(crate) async fn run(mut self) {
        // A predecessor that went idle may still be writing what it had queued.
        if let Some(predecessor) = self.predecessor.take() {
            predecessor.wait().await;
        }
        let max_batch = self.shared.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(16);
        loop {
            let idle = self.shared.config.idle_timeout;
            match tokio::time::timeout(idle, self.jobs.recv_many(&mut batch, max_batch)).await {
                Ok(0) => break, // the router dropped our sender: shutdown
                Ok(_) => self.process(&mut batch).await,
                Err(_) => {
                    // Idle: close the queue so new sends start a successor (which waits for
                    // this actor to finish), then serve whatever was queued before the close.
                    self.jobs.close();
                    while self.jobs.recv_many(&mut batch, max_batch).await > 0 {
                        self.process(&mut batch).await;
                    }
                    break;
                }
            }
        }
        self.shared.rooms.forget(&self.room, self.generation);
    }

    async fn load_head(&mut self) -> Result<Head, RouterError> {
        if let Some(head) = self.head {
            return Ok(head);
        }
        let seq = self.shared.store.last_seq(&self.room).await?;
        let (ts, count) = if seq == 0 {
            (0, 0)
        } else {
            let last = self
                .shared
                .store
                .read(&self.room, ReadRange::Before(seq + 1), 1)
                .await?;
            last.first().map_or((0, 0), |m| (m.ts, m.count))
        };
        // The cache may predate entries another owner appended.
        self.shared.access.forget(&self.room);
        if let Some(info) = self.shared.access.store().room(&self.room).await?
            && info.pending_from > 0
        {
            self.recover(info, seq).await?;
        }
        let head = Head { seq, ts, count };
        self.head = Some(head);
        Ok(head)
    }

    /// Applies again the effects of the entries from `info.pending_from` to `last`: the
    /// process that appended them may have stopped before writing their effects.
    async fn recover(&mut self, info: RoomInfo, last: u64) -> Result<(), RouterError> {
        let from = info.pending_from;
        tracing::info!(room = %self.room, from, last, "applying the effects of entries again");
        let shared = self.shared.clone();
        let mut working = Working::new(&shared, &self.room, Some(info.clone()), last);
        let mut cursor = from - 1;
        while cursor < last {
            let page = shared
                .store
                .read(&self.room, ReadRange::After(cursor), RECOVERY_PAGE)
                .await?;
            let Some(end) = page.last().map(|m| m.seq) else {
                break;
            };
            for m in &page {
                working.apply(m).await?;
            }
            cursor = end;
        }
        let effects = std::mem::take(&mut working.effects);
        self.write_effects(effects, Some(info)).await
    }

    /// Writes a batch's effects, then clears the pending marker (`marker` is the room info
    /// written before the append, if any).
    async fn write_effects(
        &self,
        effects: Effects,
        marker: Option<RoomInfo>,
    ) -> Result<(), RouterError> {
        let shared = &self.shared;
        if !effects.amended.is_empty() {
            let amended: Vec<Message> = effects.amended.into_values().collect();
            shared.store.amend(&self.room, &amended).await?;
        }
        if !effects.members.is_empty() {
            let members: Vec<_> = effects.members.into_iter().collect();
            shared
                .access
                .store()
                .put_members(&self.room, &members)
                .await?;
            shared.access.wrote_members(&self.room, &members);
        }
        if let Some(mut info) = effects.info.or(marker) {
            info.pending_from = 0;
            shared.access.store().put_room(&self.room, &info).await?;
            shared.access.wrote_info(&self.room, &info);
        }
        Ok(())
    }

    async fn process(&mut self, batch: &mut Vec<SendJob>) {
        match self.sequence(batch).await {
            Ok((messages, outcomes)) => self.acknowledge(batch, &messages, outcomes),
            Err(e) => {
                for job in batch.drain(..) {
                    let n = job.reqs.len();
                    let _ = job.reply.send(vec![Err(e.clone()); n]);
                }
            }
        }
    }

    /// Assigns seqs to the batch's new messages (in job order, and request order within a
    /// job), appends them, and publishes them. On any failure nothing of the batch is
    /// acknowledged, so no job is ever split into acked and failed parts.
    async fn sequence(
        &mut self,
        batch: &mut [SendJob],
    ) -> Result<(Vec<Message>, Vec<Outcome>), RouterError> {
        // Ownership first: while the permit is held this router is the room's only writer.
        let permit = self.shared.ownership.permit(&self.room).await?;
        if permit.epoch != self.head_epoch {
            // Another router may have appended since our head was read.
            self.head = None;
            self.head_epoch = permit.epoch;
        }
        let head = self.load_head().await?;
        let shared = self.shared.clone();
        let info = shared.access.info(&self.room).await?;
        let mut working = Working::new(&shared, &self.room, info.clone(), head.seq);
        let mut messages: Vec<Message> = Vec::with_capacity(batch.len());
        // Each new message's trace context (its send's), for its publish span.
        let mut traces: Vec<Option<TraceParent>> = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut in_batch: HashMap<(UserId, String), usize> = HashMap::new();
        let mut ts = head.ts;
        let mut count = head.count;
        let (rate, burst) = (shared.config.room_rate, shared.config.room_burst as f64);
        for job in batch.iter_mut() {
            if let Err(retry_after_ms) = self.bucket.take(job.reqs.len(), rate, burst) {
                // The whole job, so a client's retry cannot reorder its sends.
                metrics::counter!("chorus_router_room_rate_limited_total").increment(1);
                for _ in &job.reqs {
                    outcomes.push(Outcome::Refused(RouterError::RateLimited {
                        retry_after_ms,
                    }));
                }
                continue;
            }
            for req in job.reqs.iter_mut() {
                if let Some(cmid) = &req.client_msg_id {
                    let key = (req.from.clone(), cmid.clone());
                    if let Some(&i) = in_batch.get(&key) {
                        outcomes.push(Outcome::SameAs(i));
                        continue;
                    }
                    if let Some(ack) = self.recent.get(&key) {
                        outcomes.push(Outcome::Known(SendAck {
                            duplicate: true,
                            ..ack
                        }));
                        continue;
                    }
                    if let Some(prior) = self
                        .shared
                        .store
                        .find_prior_send(&self.room, &req.from, cmid)
                        .await?
                    {
                        outcomes.push(Outcome::Known(SendAck {
                            seq: prior.seq,
                            ts: prior.ts,
                            duplicate: true,
                        }));
                        continue;
                    }
                }
                let entry_ts = ts.max(now_ms());
                let mut m = Message {
                    room: self.room.clone(),
                    seq: head.seq + messages.len() as u64 + 1,
                    ts: entry_ts,
                    from: req.from.clone(),
                    client_msg_id: req.client_msg_id.clone(),
                    body: std::mem::take(&mut req.body),
                    ext: std::mem::take(&mut req.ext),
                    count: 0,
                };
                m.count = count + u64::from(m.ext.kind.counts_as_unread());
                match working.admit(&mut m).await {
                    Ok(None) => {}
                    Ok(Some(_already_open)) => {
                        let created_ts = working.info.as_ref().map_or(0, |i| i.created_ts);
                        outcomes.push(Outcome::Known(SendAck {
                            seq: 1,
                            ts: created_ts,
                            duplicate: true,
                        }));
                        continue;
                    }
                    Err(
                        e @ (RouterError::Store(_)
                        | RouterError::Unavailable(_)
                        | RouterError::Timeout),
                    ) => {
                        return Err(e);
                    }
                    Err(e) => {
                        outcomes.push(Outcome::Refused(e));
                        continue;
                    }
                }
                if let Some(cmid) = &req.client_msg_id {
                    in_batch.insert((req.from.clone(), cmid.clone()), messages.len());
                }
                ts = entry_ts;
                count = m.count;
                outcomes.push(Outcome::New(messages.len()));
                messages.push(m);
                traces.push(req.trace.clone());
            }
        }
        if messages.is_empty() {
            return Ok((messages, outcomes));
        }
        let effects = std::mem::take(&mut working.effects);
        let marker = if effects.is_empty() {
            None
        } else {
            // Written before the append, cleared after the effects: a crash in between
            // leaves the marker, and the next load applies the effects again.
            let mut marker = info.clone().unwrap_or_else(|| RoomInfo {
                visibility: Visibility::Open,
                created_by: messages[0].from.clone(),
                created_ts: messages[0].ts,
                pending_from: 0,
            });
            marker.pending_from = messages[0].seq;
            shared.access.store().put_room(&self.room, &marker).await?;
            Some(marker)
        };
        let mut span = append_span(&self.room, &traces, messages.len());
        let started = Instant::now();
        let appended = self.shared.store.append(&self.room, &messages).await;
        metrics::histogram!("chorus_store_append_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = &appended {
            span.fail("store", e.to_string());
        }
        drop(span);
        if let Err(e) = appended {
            tracing::warn!(room = %self.room, error = %e, "append failed; reloading room head");
            self.head = None;
            return Err(e.into());
        }
        if marker.is_some()
            && let Err(e) = self.write_effects(effects, marker).await
        {
            tracing::warn!(room = %self.room, error = %e, "writing effects failed; they are applied on the next load");
            self.head = None;
            return Err(e);
        }
        if !permit.valid() {
            // Durable, but ownership lapsed during the write: the new owner may not have seen
            // it, so it must not be acknowledged here. A retry with the same client_msg_id
            // finds it if it survived.
            tracing::warn!(room = %self.room, "ownership lapsed during an append; not acknowledging");
            self.head = None;
            return Err(RouterError::Unavailable(
                "room ownership moved; retry".into(),
            ));
        }
        metrics::histogram!("chorus_router_batch_size").record(messages.len() as f64);
        metrics::counter!("chorus_messages_sequenced_total").increment(messages.len() as u64);
        let last = &messages[messages.len() - 1];
        self.head = Some(Head {
            seq: last.seq,
            ts: last.ts,
            count: last.count,
        });
        for (m, trace) in messages.iter().zip(&traces) {
            if let Some(cmid) = &m.client_msg_id {
                let ack = SendAck {
                    seq: m.seq,
                    ts: m.ts,
                    duplicate: false,
                };
                self.recent.insert((m.from.clone(), cmid.clone()), ack);
            }
            let mut span = chorus_telemetry::message_span(
                chorus_telemetry::MessageOp::Publish,
                self.shared.bus.system(),
                m.room.as_str(),
                m.seq,
                trace.as_ref(),
            );
            let delivery = Delivery {
                trace: span.traceparent(),
                room: m.room.clone(),
                seq: m.seq,
                frame: m.to_frame(),
            };
            let published = self.shared.bus.publish(delivery).await;
            if let Err(e) = &published {
                span.fail("bus", e.to_string());
            }
            drop(span);
            if let Err(e) = published {
                // Durable already: subscribers will backfill the hole from the log.
                metrics::counter!("chorus_bus_publish_errors_total").increment(1);
                tracing::warn!(room = %self.room, seq = m.seq, error = %e, "publish failed");
            }
            if m.ext.kind.counts_as_unread() {
                // Sending marks the room read for the sender, and ends their typing.
                self.shared.live.mark(&self.room, &m.from, m.seq, m.count);
                self.shared.live.typing(&self.room, &m.from, false).await;
            }
        }
        Ok((messages, outcomes))
    }

    fn acknowledge(&self, batch: &mut Vec<SendJob>, messages: &[Message], outcomes: Vec<Outcome>) {
        let ack_of = |i: usize, duplicate: bool| {
            let m = &messages[i];
            SendAck {
                seq: m.seq,
                ts: m.ts,
                duplicate,
            }
        };
        let mut outcomes = outcomes.into_iter();
        for job in batch.drain(..) {
            let results = outcomes
                .by_ref()
                .take(job.reqs.len())
                .map(|o| match o {
                    Outcome::New(i) => Ok(ack_of(i, false)),
                    Outcome::SameAs(i) => Ok(ack_of(i, true)),
                    Outcome::Known(ack) => Ok(ack),
                    Outcome::Refused(e) => Err(e),
                })
                .collect();
            let _ = job.reply.send(results);
        }
    }
}

/// The span of one room append (OpenTelemetry database conventions), under the first traced
/// message of the batch and linked to the others.
fn append_span(room: &RoomId, traces: &[Option<TraceParent>], n: usize) -> chorus_telemetry::Span {
    chorus_telemetry::span_for_batch(
        "append messages",
        chorus_telemetry::Kind::Client,
        traces.iter().flatten(),
        |a| {
            a.push(Attr::new("db.operation.name", "append"));
            a.push(Attr::new("db.collection.name", "messages"));
            a.push(Attr::new("db.operation.batch.size", n as i64));
            a.push(Attr::new("chorus.room", room.to_string()));
        },
    )
}
