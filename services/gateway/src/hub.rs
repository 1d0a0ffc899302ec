//! The room hub: one task per room that has subscribers on this gateway.
//!
//! Each room task holds the room's single bus subscription, the contiguous head `last_seq` of
//! what it has fanned out, and a small ring of the newest frames. It fans each delivery out to
//! its subscribers' [`Outbox`]es with one shared frame.
//!
//! **No gap, no duplicate.** The bus is at most once. The task drops deliveries at or below its
//! head, and on a hole (a seq above `head + 1`, or a [`BusEvent::Lagged`]) reads the missing
//! messages from the router before going on. If the router cannot be reached to fill a hole,
//! or its reads do not go on from the head (a hole in what it returns), the task never skips
//! it: after [`BACKFILL_ATTEMPTS`] attempts it closes every subscriber's outbox with
//! [`Closed::Resync`] (close code 1013) and stops; clients reconnect and resume from their
//! last seq.
//!
//! **Race-free join.** The task subscribes to the bus *before* it asks the router for the
//! room's head, so nothing published after that point is missed. A connection joining with
//! `since` reads the backlog itself, then attaches with the seq it reached: the task either
//! serves the rest from its ring (the ring is always contiguous up to the head) or answers
//! [`Attach::Behind`] and the connection reads another page.
//!
//! **Revocation.** A `member` entry the router marked `revoke` (a ban, a disconnect, a removal
//! from a private room) ends that user's subscriptions here right after it is fanned out: they
//! get the entry, then a `left` frame with the action as `reason`, and nothing after it.
//!
//! **Presence.** Each room task counts its subscribers by user and reports them to the room's
//! router ([`presence`]).
//!
//! Ownership: the hub's registry maps a room to its running task; a task removes itself when
//! its last subscriber leaves or it fails. Shutdown reaches the tasks through their
//! subscribers: when every connection has detached, every task has stopped.

mod presence;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::extract::ws::Utf8Bytes;
use chorus_core::{
    MemberAction, Message, RoomId, UserId, Visibility,
    actors::{ActorRegistry, FinishGuard, Finished},
    bus::{BusEvent, DeliveryBus, EPHEMERAL_SEQ, Subscription},
    protocol::{RequestId, ServerFrame},
    router::{HistoryAnchor, HistoryRequest, JoinRequest, OnlinePage, RouterClient, RouterError},
};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::{
    metrics::GatewayMetrics,
    outbox::{Closed, Outbox},
};
use presence::{Reporter, RoomPresence};

/// Messages read per backfill request.
const BACKFILL_PAGE: u32 = 100;
/// Router attempts for one backfill before the room is given up (subscribers resume).
const BACKFILL_ATTEMPTS: u32 = 5;

/// The answer to an attach with a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Subscribed: everything after the cursor is (or will be) in the outbox, in order.
    Attached { last_seq: u64 },
    /// The ring does not reach back to the cursor: read more backlog and attach again.
    Behind { last_seq: u64 },
}

/// What the router said about the room when the connection joined, for its `joined` frame.
#[derive(Debug, Clone, Default)]
pub struct JoinedInfo {
    pub visibility: Option<Visibility>,
    pub online: OnlinePage,
    /// The room's last seq when the router authorized the join: a revocation of the user
    /// after it refuses the attach.
    pub authorized_at: u64,
}

/// Users whose latest membership entry the hub remembers, per room.
const MAX_STANDING: usize = 10_000;

enum Cmd {
    Attach {
        conn_id: u64,
        user: UserId,
        outbox: Arc<Outbox>,
        info: JoinedInfo,
        /// `None`: live only, and the task queues the `joined` frame itself (with `join_id`)
        /// so that it precedes the first live message.
        cursor: Option<u64>,
        join_id: Option<RequestId>,
        reply: oneshot::Sender<Result<Attach, RouterError>>,
    },
    Detach {
        conn_id: u64,
        /// A `left` frame to queue after the last message for this subscriber.
        left: Option<Utf8Bytes>,
        done: Option<oneshot::Sender<()>>,
    },
}

struct HubInner {
    router: Arc<dyn RouterClient>,
    bus: Arc<dyn DeliveryBus>,
    rooms: ActorRegistry<RoomId, Cmd>,
    ring: usize,
    metrics: GatewayMetrics,
    reporter: Reporter,
    presence_refresh: Duration,
}

/// Cheap to clone; shared by every connection of the gateway.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("ring", &self.inner.ring)
            .finish()
    }
}

impl Hub {
    /// A hub; must be called within a Tokio runtime (it starts the presence reporter).
    pub fn new(
        router: Arc<dyn RouterClient>,
        bus: Arc<dyn DeliveryBus>,
        ring: usize,
        presence_refresh: Duration,
        metrics: GatewayMetrics,
    ) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                reporter: Reporter::new(router.clone()),
                router,
                bus,
                rooms: ActorRegistry::default(),
                ring,
                metrics,
                presence_refresh,
            }),
        }
    }

    fn start_room(&self, room: &RoomId) -> chorus_core::actors::ActorHandle<Cmd> {
        let inner = &self.inner;
        inner.rooms.get_or_start(room, 256, |start| {
            let task = RoomTask {
                room: room.clone(),
                generation: start.generation,
                hub: inner.clone(),
                cmds: start.commands,
                predecessor: start.predecessor,
                _guard: start.guard,
                subs: Vec::new(),
                head: 0,
                ring: VecDeque::new(),
                presence: RoomPresence::new(inner.presence_refresh),
                standing: Default::default(),
            };
            inner.metrics.hub_rooms.increment(1.0);
            tokio::spawn(task.run());
        })
    }

    /// Subscribes `outbox` to `room` after `cursor` (see [`Attach`]). With `cursor = None` the
    /// connection gets live messages only, preceded by a `joined` frame carrying `join_id`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, each argument distinct"
    )]
    pub async fn attach(
        &self,
        room: &RoomId,
        conn_id: u64,
        user: &UserId,
        outbox: &Arc<Outbox>,
        info: &JoinedInfo,
        cursor: Option<u64>,
        join_id: Option<RequestId>,
    ) -> Result<Attach, RouterError> {
        // A room task that is stopping drops queued attaches; the next attempt starts a new one.
        for _ in 0..3 {
            let handle = self.start_room(room);
            let (reply, answer) = oneshot::channel();
            let cmd = Cmd::Attach {
                conn_id,
                user: user.clone(),
                outbox: outbox.clone(),
                info: info.clone(),
                cursor,
                join_id: join_id.clone(),
                reply,
            };
            if handle.commands.send(cmd).await.is_err() {
                self.inner.rooms.forget(room, handle.generation);
                continue;
            }
            if let Ok(result) = answer.await {
                return result;
            }
        }
        Err(RouterError::Unavailable(
            "room is restarting on this gateway".into(),
        ))
    }

    /// Unsubscribes and waits until no further frame of `room` will be queued for this
    /// connection; `left` is queued after the last one.
    pub async fn detach(&self, room: &RoomId, conn_id: u64, outbox: &Outbox, left: Utf8Bytes) {
        let handle = self.inner.rooms.get(room);
        if let Some(handle) = handle {
            let (done, finished) = oneshot::channel();
            let cmd = Cmd::Detach {
                conn_id,
                left: Some(left.clone()),
                done: Some(done),
            };
            if handle.commands.send(cmd).await.is_ok() && finished.await.is_ok() {
                return;
            }
        }
        // No task holds this subscriber any more: nothing else can be queued for it.
        outbox.push(left);
    }

    /// Unsubscribes without waiting (the connection is ending).
    pub fn detach_now(&self, room: &RoomId, conn_id: u64) {
        let handle = self.inner.rooms.get(room);
        if let Some(handle) = handle {
            let cmd = Cmd::Detach {
                conn_id,
                left: None,
                done: None,
            };
            if let Err(mpsc::error::TrySendError::Full(cmd)) = handle.commands.try_send(cmd) {
                tokio::spawn(async move { handle.commands.send(cmd).await });
            }
        }
    }
}

struct Sub {
    conn_id: u64,
    user: UserId,
    outbox: Arc<Outbox>,
    /// Seqs at or below this were already given to the connection (by its own backlog read).
    cursor: u64,
}

struct RoomTask {
    room: RoomId,
    generation: u64,
    hub: Arc<HubInner>,
    cmds: mpsc::Receiver<Cmd>,
    predecessor: Option<Finished>,
    _guard: FinishGuard,
    subs: Vec<Sub>,
    /// Every seq up to here has been fanned out (or was before this task started).
    head: u64,
    /// The newest frames, contiguous up to `head`.
    ring: VecDeque<(u64, Utf8Bytes)>,
    presence: RoomPresence,
    /// Per user, the seq of the latest entry that revoked (`true`) or granted (`false`) their
    /// access, as fanned out here; bounded by [`MAX_STANDING`].
    standing: std::collections::HashMap<UserId, (u64, bool)>,
}

/// The parts of a delivered frame the hub acts on: who it is about (typing is not echoed to
/// its user) and, for a `member` entry, whether it revokes a user's subscriptions.
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    user: Option<UserId>,
    #[serde(default)]
    member: Option<PeekMember>,
}

#[derive(Deserialize)]
struct PeekMember {
    action: MemberAction,
    user: UserId,
    #[serde(default)]
    revoke: bool,
}

fn action_name(a: MemberAction) -> &'static str {
    match a {
        MemberAction::Ban => "ban",
        MemberAction::Remove => "remove",
        MemberAction::Leave => "leave",
        MemberAction::Disconnect => "disconnect",
        _ => "revoked",
    }
}

/// Why a room task stopped serving.
struct Stop;

impl RoomTask {
    async fn run(mut self) {
        if let Some(predecessor) = self.predecessor.take() {
            predecessor.wait().await;
        }
        match self.start().await {
            Ok(mut sub) => while self.step(&mut sub).await.is_ok() {},
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "room hub could not start");
                self.cmds.close();
                while let Ok(cmd) = self.cmds.try_recv() {
                    if let Cmd::Attach { reply, .. } = cmd {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        for sub in std::mem::take(&mut self.subs) {
            self.presence.remove(&sub.user);
        }
        self.presence.flush(&self.hub.reporter, &self.room);
        self.hub.rooms.forget(&self.room, self.generation);
        self.hub.metrics.hub_rooms.decrement(1.0);
        // Queued commands are dropped unanswered: an attach retries with a new task, a detach
        // queues its own `left` (this task holds no subscriber any more).
        self.cmds.close();
        while self.cmds.try_recv().is_ok() {}
    }

    async fn start(&mut self) -> Result<Subscription, RouterError> {
        let sub = self
            .hub
            .bus
            .subscribe(&self.room)
            .await
            .map_err(|e| RouterError::Unavailable(e.to_string()))?;
        self.head = self.current_head().await?;
        Ok(sub)
    }

    async fn current_head(&self) -> Result<u64, RouterError> {
        let req = JoinRequest {
            room: self.room.clone(),
            user: None,
            since: None,
            limit: 1,
        };
        Ok(self.hub.router.join(req).await?.last_seq)
    }

    async fn step(&mut self, sub: &mut Subscription) -> Result<(), Stop> {
        let presence_due = self.presence.deadline();
        tokio::select! {
            cmd = self.cmds.recv() => match cmd {
                Some(Cmd::Attach { conn_id, user, outbox, info, cursor, join_id, reply }) => {
                    let answer = self.attach(conn_id, user, outbox, &info, cursor, join_id);
                    let _ = reply.send(answer);
                    Ok(())
                }
                Some(Cmd::Detach { conn_id, left, done }) => {
                    if let Some(i) = self.subs.iter().position(|s| s.conn_id == conn_id) {
                        let sub = self.subs.swap_remove(i);
                        self.presence.remove(&sub.user);
                        if let Some(left) = left {
                            sub.outbox.push(left);
                        }
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    if self.subs.is_empty() { Err(Stop) } else { Ok(()) }
                }
                None => Err(Stop),
            },
            _ = tokio::time::sleep_until(presence_due) => {
                self.presence.on_timer(&self.hub.reporter, &self.room);
                Ok(())
            }
            event = sub.next() => match event {
                Some(BusEvent::Delivery(d)) => {
                    let mut span = chorus_telemetry::message_span(
                        chorus_telemetry::MessageOp::Deliver,
                        self.hub.bus.system(),
                        self.room.as_str(),
                        d.seq,
                        d.trace.as_ref(),
                    );
                    let done = self.on_delivery(d.seq, d.frame).await;
                    span.set("chorus.subscribers", self.subs.len() as i64);
                    done
                }
                Some(BusEvent::Lagged) => self.resync().await,
                None => {
                    // The bus ended this subscription: take a new one, then recover what was
                    // published meanwhile from the log.
                    *sub = self.hub.bus.subscribe(&self.room).await.map_err(|e| {
                        tracing::warn!(room = %self.room, error = %e, "bus resubscribe failed");
                        self.give_up()
                    })?;
                    self.resync().await
                }
            },
        }
    }

    fn attach(
        &mut self,
        conn_id: u64,
        user: UserId,
        outbox: Arc<Outbox>,
        info: &JoinedInfo,
        cursor: Option<u64>,
        join_id: Option<RequestId>,
    ) -> Result<Attach, RouterError> {
        // Access revoked after the router authorized this join (the two raced).
        if let Some((seq, true)) = self.standing.get(&user)
            && *seq > info.authorized_at
        {
            return Err(RouterError::Forbidden(
                "access to this room was revoked".into(),
            ));
        }
        let head = self.head;
        let cursor = match cursor {
            None => {
                let joined = ServerFrame::Joined {
                    id: join_id.as_ref(),
                    room: &self.room,
                    last_seq: head,
                    visibility: info.visibility,
                    online: (&info.online).into(),
                };
                outbox.push(Utf8Bytes::from(joined.to_json()));
                head
            }
            Some(c) if c >= head => c,
            Some(c) => {
                let reaches = self.ring.front().is_some_and(|(first, _)| *first <= c + 1);
                if !reaches {
                    return Ok(Attach::Behind { last_seq: head });
                }
                for (_, frame) in self.ring.iter().filter(|(seq, _)| *seq > c) {
                    outbox.push(frame.clone());
                }
                head
            }
        };
        self.presence.add(&user);
        self.subs.push(Sub {
            conn_id,
            user,
            outbox,
            cursor,
        });
        Ok(Attach::Attached { last_seq: head })
    }

    async fn on_delivery(&mut self, seq: u64, frame: bytes::Bytes) -> Result<(), Stop> {
        if seq == EPHEMERAL_SEQ {
            // A room event: relayed to whoever is here now, outside the log's order. Typing
            // is not echoed to the typist.
            let skip = if frame.starts_with(br#"{"type":"typing""#) {
                serde_json::from_slice::<Peek>(&frame)
                    .ok()
                    .and_then(|p| p.user)
            } else {
                None
            };
            if let Ok(frame) = Utf8Bytes::try_from(frame) {
                self.subs
                    .retain(|s| skip.as_ref() == Some(&s.user) || s.outbox.push(frame.clone()));
            }
            return Ok(());
        }
        if seq <= self.head {
            return Ok(()); // already fanned out (duplicate, or recovered by a backfill)
        }
        if seq > self.head + 1 {
            self.backfill(seq - 1).await?;
            // A backfill page may reach past the hole, this very message included.
            if seq <= self.head {
                return Ok(());
            }
        }
        match Utf8Bytes::try_from(frame) {
            Ok(frame) => {
                self.fan_out(seq, frame);
                Ok(())
            }
            Err(_) => {
                tracing::error!(room = %self.room, seq, "delivery frame is not UTF-8; reading it from the log");
                self.backfill(seq).await
            }
        }
    }

    /// Fans out every message up to at least `target` from the router.
    async fn backfill(&mut self, target: u64) -> Result<(), Stop> {
        self.hub.metrics.backfills.increment(1);
        let mut failures = 0;
        while self.head < target {
            let req = HistoryRequest {
                room: self.room.clone(),
                user: None,
                anchor: HistoryAnchor::After(self.head),
                limit: BACKFILL_PAGE,
            };
            let before = self.head;
            let outcome = match self.hub.router.history(req).await {
                Ok(page) => {
                    for m in &page.messages {
                        if m.seq == self.head + 1 {
                            self.fan_out(m.seq, frame_of(m));
                            self.hub.metrics.backfilled_messages.increment(1);
                        }
                    }
                    // A page that does not go on from the head (empty, or starting past a
                    // hole the log cannot fill) is a failed attempt like an error: retried a
                    // few times, then the subscribers resume, never a loop without end.
                    if self.head > before {
                        None
                    } else {
                        Some(match page.messages.first() {
                            None => format!("no message after {before}"),
                            Some(m) => format!("the log goes on at {} after {before}", m.seq),
                        })
                    }
                }
                Err(e) => Some(e.to_string()),
            };
            match outcome {
                None => failures = 0,
                Some(outcome) => {
                    failures += 1;
                    if failures >= BACKFILL_ATTEMPTS {
                        tracing::warn!(room = %self.room, head = self.head, target, %outcome, "backfill failed; subscribers must resume");
                        return Err(self.give_up());
                    }
                    tokio::time::sleep(Duration::from_millis(50 << failures)).await;
                }
            }
        }
        Ok(())
    }

    /// After the bus admits a loss: catch up to the router's head.
    async fn resync(&mut self) -> Result<(), Stop> {
        match self.current_head().await {
            Ok(head) if head > self.head => self.backfill(head).await,
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "resync failed; subscribers must resume");
                Err(self.give_up())
            }
        }
    }

    fn give_up(&mut self) -> Stop {
        for sub in self.subs.drain(..) {
            sub.outbox.close(Closed::Resync);
        }
        Stop
    }

    fn fan_out(&mut self, seq: u64, frame: Utf8Bytes) {
        debug_assert_eq!(seq, self.head + 1);
        if self.hub.ring > 0 {
            if self.ring.len() == self.hub.ring {
                self.ring.pop_front();
            }
            self.ring.push_back((seq, frame.clone()));
        }
        let mut delivered = 0;
        self.subs.retain(|s| {
            if seq <= s.cursor {
                return true;
            }
            let queued = s.outbox.push(frame.clone());
            delivered += u64::from(queued);
            queued
        });
        self.head = seq;
        self.hub.metrics.deliveries.increment(delivered);
        if let Some(ts) = frame_ts(frame.as_bytes()) {
            let lag_ms = chorus_core::time::now_ms().saturating_sub(ts);
            self.hub
                .metrics
                .delivery_lag_seconds
                .record(lag_ms as f64 / 1000.0);
        }
        if is_member_entry(frame.as_bytes())
            && let Ok(Peek {
                member: Some(m), ..
            }) = serde_json::from_slice::<Peek>(frame.as_bytes())
        {
            let grants = matches!(
                m.action,
                MemberAction::Join | MemberAction::Invite | MemberAction::Unban
            );
            if m.revoke || grants {
                if self.standing.len() >= MAX_STANDING {
                    self.standing.clear();
                }
                self.standing.insert(m.user.clone(), (seq, m.revoke));
            }
            if m.revoke {
                self.revoke(&m.user, action_name(m.action));
            }
        }
    }

    /// Ends every subscription of `user` here: a `left` frame, and nothing more.
    fn revoke(&mut self, user: &UserId, reason: &str) {
        let left = Utf8Bytes::from(
            ServerFrame::Left {
                id: None,
                room: &self.room,
                reason: Some(reason),
            }
            .to_json(),
        );
        let room = self.room.clone();
        let presence = &mut self.presence;
        self.subs.retain(|s| {
            if s.user != *user {
                return true;
            }
            presence.remove(&s.user);
            s.outbox.revoke(&room);
            s.outbox.push(left.clone());
            false
        });
    }
}

pub(crate) fn frame_of(m: &Message) -> Utf8Bytes {
    Utf8Bytes::try_from(m.to_frame()).expect("frames serialized by serde_json are UTF-8")
}

/// Whether a frame may be a `member` entry (a cheap test before parsing).
fn is_member_entry(frame: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""kind":"member""#;
    frame.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// The `ts` of a `msg` frame, read without parsing it: `ts` is the first field of that name
/// (it follows `seq`, `from`, `body` and `client_msg_id`, whose strings cannot hold a bare
/// `"ts":`, and precedes the kind's fields, whose data could).
fn frame_ts(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b",\"ts\":";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_ts_reads_the_messages_own_ts() {
        use chorus_core::{Message, RoomId, UserId};
        let mut m = Message {
            room: RoomId::new("r").unwrap(),
            seq: 3,
            ts: 1_763_900_000_123,
            from: UserId::new("alice").unwrap(),
            client_msg_id: Some("c,\"ts\":1".into()),
            body: "say ,\"ts\":42 here".into(),
            ext: Default::default(),
            count: 1,
        };
        assert_eq!(super::frame_ts(&m.to_frame()), Some(1_763_900_000_123));
        m.client_msg_id = None;
        assert_eq!(super::frame_ts(&m.to_frame()), Some(1_763_900_000_123));
        assert_eq!(super::frame_ts(b"{\"type\":\"msg\"}"), None);
    }
}
