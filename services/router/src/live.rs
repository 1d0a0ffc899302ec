//! Ephemeral room state at the router that owns the room: presence, typing, read receipts.
//!
//! - **Presence** is soft state fed by the gateways: each sends who is subscribed to the room
//!   there (changes as they happen, the whole list every refresh period). A user is online
//!   while any gateway counts a connection of theirs, so a user with two devices goes offline
//!   when the last one leaves. A gateway not heard from for [`LiveConfig::presence_ttl`] is
//!   forgotten (it died). A router that takes a room over knows its presence again after one
//!   refresh period.
//! - **Typing** is relayed on change only (the throttle): a repeated start extends the
//!   deadline silently, and a user whose deadline passes gets a stop without asking.
//! - **Read marks** move forward only, are written to the state store in one batch per tick,
//!   and are relayed as one `receipts` frame per room per tick.
//!
//! Every tick ([`LiveConfig::interval`]) turns what changed into frames: one `presence` diff
//! per room (bounded lists; a 10k-member room never gets a full list pushed), receipts, and
//! typing stops. Frames go out on the bus with [`EPHEMERAL_SEQ`]: best effort, never stored.
//!
//! Owned by the router: [`Live::run`] is its tick task, stopped by the router's shutdown,
//! which flushes the read marks one last time.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chorus_core::{
    RoomId, UserId,
    bus::{Delivery, DeliveryBus, EPHEMERAL_SEQ},
    router::{OnlinePage, PresenceSync},
    state::{ReadMark, RoomStateStore},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Users named in one presence diff, each of `joined` and `left`; more sets `truncated`.
pub const PRESENCE_DIFF_MAX: usize = 100;
/// Read marks per `receipts` frame.
pub const RECEIPTS_PER_FRAME: usize = 500;

/// Timing of presence, typing and receipts. Every field is a configuration option.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How often changes become frames (and read marks are written).
    pub interval: Duration,
    /// A typing user with no repeat for this long stops typing.
    pub typing_timeout: Duration,
    /// A gateway not heard from for this long is forgotten (three refresh periods).
    pub presence_ttl: Duration,
    /// Receipts are relayed only while a room has at most this many users online: every
    /// receipt goes to every subscriber, so in a large room they would cost each reader as
    /// many frames as there are readers. Marks are stored (and unread counts kept) anyway.
    pub receipts_max_online: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interval: Duration::from_millis(250),
            typing_timeout: Duration::from_secs(6),
            presence_ttl: Duration::from_secs(30),
            receipts_max_online: 1000,
        }
    }
}

struct GatewaySubs {
    users: HashMap<UserId, u32>,
    seen: Instant,
}

#[derive(Default)]
struct RoomLive {
    gateways: HashMap<String, GatewaySubs>,
    /// Connections per online user, summed over gateways.
    online: BTreeMap<UserId, u32>,
    joined: BTreeSet<UserId>,
    left: BTreeSet<UserId>,
    typing: HashMap<UserId, Instant>,
    /// Marks to relay at the next tick.
    receipts: BTreeMap<UserId, u64>,
    /// Marks to write at the next tick.
    marks: HashMap<UserId, (u64, u64)>,
    /// The highest mark seen per user since this router took the room, so marks only move
    /// forward.
    highest: HashMap<UserId, u64>,
}

impl RoomLive {
    fn idle(&self) -> bool {
        self.gateways.is_empty()
            && self.typing.is_empty()
            && self.receipts.is_empty()
            && self.marks.is_empty()
            && self.joined.is_empty()
            && self.left.is_empty()
    }

    /// Recounts `user` over every gateway and notes a transition.
    fn recount(&mut self, user: &UserId) {
        let total: u32 = self
            .gateways
            .values()
            .filter_map(|g| g.users.get(user))
            .sum();
        let was = self.online.contains_key(user);
        if total > 0 {
            self.online.insert(user.clone(), total);
            if !was && !self.left.remove(user) {
                self.joined.insert(user.clone());
            }
        } else {
            self.online.remove(user);
            if was && !self.joined.remove(user) {
                self.left.insert(user.clone());
            }
        }
    }
}

/// See the module docs.
pub(crate) struct Live {
    rooms: Mutex<HashMap<RoomId, RoomLive>>,
    config: LiveConfig,
    bus: Arc<dyn DeliveryBus>,
    state: Arc<dyn RoomStateStore>,
    stop: CancellationToken,
}

#[derive(Serialize)]
struct PresenceFrame<'a> {
    #[serde(rename = "type")]
    t: &'static str,
    room: &'a RoomId,
    online: usize,
    joined: Vec<&'a UserId>,
    left: Vec<&'a UserId>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Serialize)]
struct TypingFrame<'a> {
    #[serde(rename = "type")]
    t: &'static str,
    room: &'a RoomId,
    user: &'a UserId,
    typing: bool,
}

#[derive(Serialize)]
struct Read<'a> {
    user: &'a UserId,
    seq: u64,
}

#[derive(Serialize)]
struct ReceiptsFrame<'a> {
    #[serde(rename = "type")]
    t: &'static str,
    room: &'a RoomId,
    reads: Vec<Read<'a>>,
}

fn frame(v: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("live frames serialize"))
}

fn typing_frame(room: &RoomId, user: &UserId, typing: bool) -> Bytes {
    frame(&TypingFrame {
        t: "typing",
        room,
        user,
        typing,
    })
}

impl Live {
    pub(crate) fn new(
        config: LiveConfig,
        bus: Arc<dyn DeliveryBus>,
        state: Arc<dyn RoomStateStore>,
    ) -> Self {
        Live {
            rooms: Mutex::new(HashMap::new()),
            config,
            bus,
            state,
            stop: CancellationToken::new(),
        }
    }

    fn with_room<T>(&self, room: &RoomId, f: impl FnOnce(&mut RoomLive) -> T) -> T {
        let mut rooms = self.rooms.lock().expect("live lock is never poisoned");
        f(rooms.entry(room.clone()).or_default())
    }

    async fn publish(&self, room: &RoomId, frames: Vec<Bytes>) {
        for frame in frames {
            let delivery = Delivery {
                trace: None,
                room: room.clone(),
                seq: EPHEMERAL_SEQ,
                frame,
            };
            if let Err(e) = self.bus.publish(delivery).await {
                metrics::counter!("chorus_bus_publish_errors_total").increment(1);
                tracing::debug!(room = %room, error = %e, "live frame not published");
            }
        }
    }

    pub(crate) fn presence(&self, room: &RoomId, sync: PresenceSync) {
        self.with_room(room, |r| {
            let gw = r
                .gateways
                .entry(sync.gateway)
                .or_insert_with(|| GatewaySubs {
                    users: HashMap::new(),
                    seen: Instant::now(),
                });
            gw.seen = Instant::now();
            let mut touched: Vec<UserId> = Vec::new();
            if sync.full {
                touched.extend(gw.users.drain().map(|(u, _)| u));
            }
            for (user, conns) in sync.users {
                if conns == 0 {
                    gw.users.remove(&user);
                } else {
                    gw.users.insert(user.clone(), conns);
                }
                touched.push(user);
            }
            if gw.users.is_empty() {
                let name: Vec<String> = r
                    .gateways
                    .iter()
                    .filter(|(_, g)| g.users.is_empty())
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in name {
                    r.gateways.remove(&n);
                }
            }
            for user in &touched {
                r.recount(user);
            }
        });
    }

    pub(crate) fn online(&self, room: &RoomId, after: Option<&UserId>, limit: usize) -> OnlinePage {
        let rooms = self.rooms.lock().expect("live lock is never poisoned");
        let Some(r) = rooms.get(room) else {
            return OnlinePage::default();
        };
        let range: Box<dyn Iterator<Item = &UserId>> = match after {
            Some(a) => Box::new(
                r.online
                    .range::<UserId, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .map(|(u, _)| u),
            ),
            None => Box::new(r.online.keys()),
        };
        let mut users: Vec<UserId> = range.take(limit + 1).cloned().collect();
        let has_more = users.len() > limit;
        users.truncate(limit);
        OnlinePage {
            count: r.online.len() as u64,
            users,
            has_more,
        }
    }

    pub(crate) async fn typing(&self, room: &RoomId, user: &UserId, typing: bool) {
        let deadline = Instant::now() + self.config.typing_timeout;
        let changed = self.with_room(room, |r| {
            if typing {
                r.typing.insert(user.clone(), deadline).is_none()
            } else {
                r.typing.remove(user).is_some()
            }
        });
        if changed {
            self.publish(room, vec![typing_frame(room, user, typing)])
                .await;
        }
    }

    /// Records a read mark (forward only); it is written and relayed at the next tick.
    pub(crate) fn mark(&self, room: &RoomId, user: &UserId, seq: u64, count: u64) {
        self.with_room(room, |r| {
            let highest = r.highest.entry(user.clone()).or_insert(0);
            if seq <= *highest {
                return;
            }
            *highest = seq;
            r.marks.insert(user.clone(), (seq, count));
            r.receipts.insert(user.clone(), seq);
        });
    }

    /// Turns what changed since the last tick into frames and writes read marks.
    pub(crate) async fn tick(&self) {
        let now = Instant::now();
        let ttl = self.config.presence_ttl;
        let mut out: Vec<(RoomId, Vec<Bytes>)> = Vec::new();
        let mut marks: Vec<ReadMark> = Vec::new();
        {
            let mut rooms = self.rooms.lock().expect("live lock is never poisoned");
            for (room, r) in rooms.iter_mut() {
                let mut frames = Vec::new();
                let dead: Vec<String> = r
                    .gateways
                    .iter()
                    .filter(|(_, g)| now.duration_since(g.seen) > ttl)
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in dead {
                    if let Some(g) = r.gateways.remove(&name) {
                        tracing::info!(%room, gateway = %name, "gateway presence expired");
                        for user in g.users.keys() {
                            r.recount(user);
                        }
                    }
                }
                let expired: Vec<UserId> = r
                    .typing
                    .iter()
                    .filter(|(_, d)| **d <= now)
                    .map(|(u, _)| u.clone())
                    .collect();
                for user in expired {
                    r.typing.remove(&user);
                    frames.push(typing_frame(room, &user, false));
                }
                if !r.joined.is_empty() || !r.left.is_empty() {
                    let truncated =
                        r.joined.len() > PRESENCE_DIFF_MAX || r.left.len() > PRESENCE_DIFF_MAX;
                    frames.push(frame(&PresenceFrame {
                        t: "presence",
                        room,
                        online: r.online.len(),
                        joined: r.joined.iter().take(PRESENCE_DIFF_MAX).collect(),
                        left: r.left.iter().take(PRESENCE_DIFF_MAX).collect(),
                        truncated,
                    }));
                    r.joined.clear();
                    r.left.clear();
                }
                let mut receipts = std::mem::take(&mut r.receipts);
                if r.online.len() > self.config.receipts_max_online {
                    metrics::counter!("chorus_receipts_not_relayed_total")
                        .increment(receipts.len() as u64);
                    receipts.clear();
                }
                let reads: Vec<Read<'_>> = receipts
                    .iter()
                    .map(|(user, seq)| Read { user, seq: *seq })
                    .collect();
                for chunk in reads.chunks(RECEIPTS_PER_FRAME) {
                    frames.push(frame(&ReceiptsFrame {
                        t: "receipts",
                        room,
                        reads: chunk
                            .iter()
                            .map(|r| Read {
                                user: r.user,
                                seq: r.seq,
                            })
                            .collect(),
                    }));
                }
                for (user, (seq, count)) in r.marks.drain() {
                    marks.push(ReadMark {
                        user,
                        room: room.clone(),
                        seq,
                        count,
                    });
                }
                if !frames.is_empty() {
                    out.push((room.clone(), frames));
                }
            }
            rooms.retain(|_, r| !r.idle() || !r.online.is_empty());
        }
        for (room, frames) in out {
            self.publish(&room, frames).await;
        }
        self.write_marks(marks).await;
    }

    async fn write_marks(&self, marks: Vec<ReadMark>) {
        if marks.is_empty() {
            return;
        }
        metrics::counter!("chorus_read_marks_written_total").increment(marks.len() as u64);
        if let Err(e) = self.state.put_read_marks(&marks).await {
            // Put back what is not newer, to try again next tick.
            tracing::warn!(error = %e, marks = marks.len(), "writing read marks failed; retrying");
            let mut rooms = self.rooms.lock().expect("live lock is never poisoned");
            for m in marks {
                let r = rooms.entry(m.room).or_default();
                r.marks.entry(m.user).or_insert((m.seq, m.count));
            }
        }
    }

    /// The tick task; returns once [`Live::shutdown`] was called, after a last tick.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tick.tick() => self.tick().await,
            }
        }
        self.tick().await;
    }

    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_core::bus::{BusEvent, memory::MemoryBus};
    use futures_util::StreamExt;

    struct NoMarks;

    #[async_trait::async_trait]
    impl RoomStateStore for NoMarks {
        async fn room(
            &self,
            _: &RoomId,
        ) -> Result<Option<chorus_core::state::RoomInfo>, chorus_core::store::StoreError> {
            Ok(None)
        }
        async fn put_room(
            &self,
            _: &RoomId,
            _: &chorus_core::state::RoomInfo,
        ) -> Result<(), chorus_core::store::StoreError> {
            Ok(())
        }
        async fn member(
            &self,
            _: &RoomId,
            _: &UserId,
        ) -> Result<Option<chorus_core::state::MemberRecord>, chorus_core::store::StoreError>
        {
            Ok(None)
        }
        async fn put_members(
            &self,
            _: &RoomId,
            _: &[(UserId, chorus_core::state::MemberRecord)],
        ) -> Result<(), chorus_core::store::StoreError> {
            Ok(())
        }
        async fn members(
            &self,
            _: &RoomId,
            _: Option<&UserId>,
            _: usize,
        ) -> Result<Vec<(UserId, chorus_core::state::MemberRecord)>, chorus_core::store::StoreError>
        {
            Ok(Vec::new())
        }
        async fn rooms_of(
            &self,
            _: &UserId,
            _: usize,
        ) -> Result<Vec<chorus_core::state::Membership>, chorus_core::store::StoreError> {
            Ok(Vec::new())
        }
        async fn put_read_marks(
            &self,
            _: &[ReadMark],
        ) -> Result<(), chorus_core::store::StoreError> {
            Ok(())
        }
    }

    fn user(i: usize) -> UserId {
        UserId::new(&format!("u{i:04}")).unwrap()
    }

    #[tokio::test]
    async fn a_crowd_arriving_in_one_tick_is_one_bounded_diff() {
        let bus = Arc::new(MemoryBus::default());
        let room = RoomId::new("big").unwrap();
        let mut sub = bus.subscribe(&room).await.unwrap();
        let live = Live::new(LiveConfig::default(), bus.clone(), Arc::new(NoMarks));
        let users: Vec<(UserId, u32)> = (0..250).map(|i| (user(i), 1)).collect();
        live.presence(
            &room,
            PresenceSync {
                gateway: "gw-a".into(),
                full: true,
                users: users.clone(),
            },
        );
        // The same users on a second gateway (second devices) change nothing visible.
        live.presence(
            &room,
            PresenceSync {
                gateway: "gw-b".into(),
                full: true,
                users: users[..10].to_vec(),
            },
        );
        live.tick().await;
        let Some(BusEvent::Delivery(d)) = sub.next().await else {
            panic!("no diff")
        };
        let diff: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
        assert_eq!(diff["online"], 250);
        assert_eq!(diff["joined"].as_array().unwrap().len(), PRESENCE_DIFF_MAX);
        assert_eq!(diff["truncated"], true);
        assert_eq!(live.online(&room, None, 1000).count, 250);
        // Gateway a forgets them all: only the ten with a device on gateway b stay.
        live.presence(
            &room,
            PresenceSync {
                gateway: "gw-a".into(),
                full: true,
                users: Vec::new(),
            },
        );
        live.tick().await;
        let Some(BusEvent::Delivery(d)) = sub.next().await else {
            panic!("no diff")
        };
        let diff: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
        assert_eq!(diff["online"], 10);
        assert_eq!(diff["left"].as_array().unwrap().len(), PRESENCE_DIFF_MAX);
        let page = live.online(&room, Some(&user(4)), 3);
        assert_eq!(page.users, [user(5), user(6), user(7)]);
        assert!(page.has_more);
    }

    #[tokio::test]
    async fn a_silent_gateway_is_forgotten() {
        let bus = Arc::new(MemoryBus::default());
        let room = RoomId::new("r").unwrap();
        let config = LiveConfig {
            presence_ttl: Duration::from_millis(50),
            ..LiveConfig::default()
        };
        let live = Live::new(config, bus, Arc::new(NoMarks));
        live.presence(
            &room,
            PresenceSync {
                gateway: "gw-dead".into(),
                full: true,
                users: vec![(user(1), 2)],
            },
        );
        live.tick().await;
        assert_eq!(live.online(&room, None, 10).count, 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        live.tick().await;
        assert_eq!(live.online(&room, None, 10).count, 0);
    }

    #[tokio::test]
    async fn receipts_are_not_relayed_in_crowded_rooms_but_marks_are_kept() {
        let bus = Arc::new(MemoryBus::default());
        let room = RoomId::new("crowd").unwrap();
        let mut sub = bus.subscribe(&room).await.unwrap();
        let config = LiveConfig {
            receipts_max_online: 2,
            ..LiveConfig::default()
        };
        let live = Live::new(config, bus.clone(), Arc::new(NoMarks));
        let three = (0..3).map(|i| (user(i), 1)).collect();
        live.presence(
            &room,
            PresenceSync {
                gateway: "gw".into(),
                full: true,
                users: three,
            },
        );
        live.mark(&room, &user(1), 5, 4);
        live.tick().await;
        let mut kinds = Vec::new();
        while let Ok(Some(BusEvent::Delivery(d))) =
            tokio::time::timeout(Duration::from_millis(50), sub.next()).await
        {
            let f: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
            kinds.push(f["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(kinds, ["presence"], "no receipts frame");
        assert_eq!(
            live.rooms.lock().unwrap()[&room].highest[&user(1)],
            5,
            "the mark itself was taken"
        );
    }
}
