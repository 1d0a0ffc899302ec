//! The room router: gives every room it serves one total order (seq gapless from 1), writes
//! each message to the store before acknowledging it, and publishes deliveries on the bus after
//! they are durable.
//!
//! Each active room has one task (a [`room`] actor) that owns its sequence. Sends queued while
//! an append is in flight are batched into the next append, so a busy room costs one store
//! write per batch, not per message. Reads (join backlog, history) go to the store directly.
//!
//! Every request is authorized here ([`access`]), so both wirings enforce the same rules; a
//! log entry's effects on derived state (edits, membership) are written by its room actor
//! ([`effects`]); presence, typing and receipts live in [`live`].
//!
//! This crate does not talk gRPC or watch the ring: the standalone wiring calls [`Router`]
//! in-process with [`ownership::SoleOwner`]; the cluster wiring gives it a ring-based
//! [`ownership::Ownership`] and puts the network in front of it.

mod access;
mod effects;
pub mod filter;
mod live;
pub mod ownership;
mod room;

pub use live::{LiveConfig, PRESENCE_DIFF_MAX};

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chorus_core::{
    Ext, Kind, MemberAction, MemberChange, Message, RoomId, UserId, Visibility,
    actors::{ActorHandle, ActorRegistry},
    bus::{Delivery, DeliveryBus, EPHEMERAL_SEQ},
    protocol::MAX_HISTORY_LIMIT,
    router::{
        EventRequest, HistoryAnchor, HistoryPage, HistoryRequest, JoinReply, JoinRequest,
        MemberInfo, MembersPage, OnlinePage, PresenceSync, RoomGroup, RoomSummary, RouterClient,
        RouterError, SendAck, SendRequest, group_by_room,
    },
    state::RoomStateStore,
    store::{MessageStore, ReadRange},
};
use futures_util::{StreamExt, stream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::{
    access::{Access, View, created},
    filter::{DefaultFilter, MessageFilter},
    live::Live,
    ownership::{Ownership, SoleOwner},
    room::{RoomActor, SendJob},
};

/// Largest history or backlog page in bytes of message data: a page stops early rather than
/// exceed it (at least one message is always returned), so pages of attachments stay well
/// inside a gRPC message.
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// Rooms listed by `user_rooms`.
pub const MAX_USER_ROOMS: usize = 1000;

/// Router tuning. Every field is a documented configuration option of the binary.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Send groups (one connection's ordered batch each) queued per room before further
    /// sends are refused with `unavailable`.
    pub room_queue: usize,
    /// Most send groups written by one append.
    pub max_batch: usize,
    /// A room with no sends for this long stops its task (it restarts on the next send).
    pub idle_timeout: Duration,
    /// Recent `client_msg_id`s per room kept in memory (older ones are found in the store).
    pub dedupe_cache: usize,
    /// Deadline of one send, from queueing to durable ack.
    pub send_timeout: Duration,
    /// Entries per second one room accepts, from all senders together.
    pub room_rate: f64,
    /// Entries a room accepts in a burst above `room_rate`.
    pub room_burst: u32,
    /// Presence, typing and receipts timing.
    pub live: LiveConfig,
    /// Limits of the default message filter.
    pub filter: DefaultFilter,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            room_queue: 1024,
            max_batch: 256,
            idle_timeout: Duration::from_secs(60),
            dedupe_cache: 1024,
            send_timeout: Duration::from_secs(10),
            room_rate: 200.0,
            room_burst: 400,
            live: LiveConfig::default(),
            filter: DefaultFilter::default(),
        }
    }
}

/// State shared by the router and its room actors.
///
/// `rooms` holds the running actors: the router starts one per room on demand; an actor
/// removes its own entry when it goes idle or its queue closes. Shutdown clears the registry,
/// which closes every actor's queue; each actor finishes what was queued and stops.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) access: Access,
    pub(crate) live: Arc<Live>,
    pub(crate) filter: Arc<dyn MessageFilter>,
    pub(crate) bus: Arc<dyn DeliveryBus>,
    pub(crate) ownership: Arc<dyn Ownership>,
    pub(crate) config: RouterConfig,
    pub(crate) rooms: ActorRegistry<RoomId, SendJob>,
    tasks: TaskTracker,
}

/// The in-process router. Clone-free: share it behind an `Arc`.
pub struct Router {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Router {
    /// A router that owns every room (the standalone wiring). Must be called within a
    /// Tokio runtime (it starts the presence tick).
    pub fn new(
        store: Arc<dyn MessageStore>,
        state: Arc<dyn RoomStateStore>,
        bus: Arc<dyn DeliveryBus>,
        config: RouterConfig,
    ) -> Self {
        Self::with_ownership(store, state, bus, Arc::new(SoleOwner), config)
    }

    /// A router that serves only the rooms `ownership` grants it, with the default filter.
    pub fn with_ownership(
        store: Arc<dyn MessageStore>,
        state: Arc<dyn RoomStateStore>,
        bus: Arc<dyn DeliveryBus>,
        ownership: Arc<dyn Ownership>,
        config: RouterConfig,
    ) -> Self {
        // Counters of rare events start at 0, so dashboards and alerts see a series (and a
        // rate of 0) before the first event rather than no data.
        for name in [
            "chorus_messages_sequenced_total",
            "chorus_router_room_overloaded_total",
            "chorus_router_room_rate_limited_total",
            "chorus_bus_publish_errors_total",
            "chorus_read_marks_written_total",
            "chorus_receipts_not_relayed_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        let filter = Arc::new(config.filter.clone());
        Self::with_filter(store, state, bus, ownership, filter, config)
    }

    /// A router with its own message filter (see [`filter`]).
    pub fn with_filter(
        store: Arc<dyn MessageStore>,
        state: Arc<dyn RoomStateStore>,
        bus: Arc<dyn DeliveryBus>,
        ownership: Arc<dyn Ownership>,
        filter: Arc<dyn MessageFilter>,
        config: RouterConfig,
    ) -> Self {
        let live = Arc::new(Live::new(config.live.clone(), bus.clone(), state.clone()));
        let tasks = TaskTracker::new();
        tasks.spawn(live.clone().run());
        Router {
            shared: Arc::new(Shared {
                store,
                access: Access::new(state, ownership.clone()),
                live,
                filter,
                bus,
                ownership,
                config,
                rooms: ActorRegistry::default(),
                tasks,
            }),
        }
    }

    fn room(&self, room: &RoomId) -> ActorHandle<SendJob> {
        let shared = &self.shared;
        shared
            .rooms
            .get_or_start(room, shared.config.room_queue, |start| {
                let actor = RoomActor::new(room.clone(), shared.clone(), start);
                shared.tasks.spawn(actor.run());
            })
    }

    /// Stops taking sends, lets every room finish what is queued, hands ownership over, then
    /// closes the store.
    pub async fn shutdown(&self) -> Result<(), RouterError> {
        self.shared.rooms.clear();
        self.shared.live.shutdown();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        self.shared.ownership.shutdown().await;
        self.shared.store.close().await?;
        Ok(())
    }

    /// Queues one room's group of sends with its actor.
    fn enqueue(
        &self,
        room: &RoomId,
        reqs: Vec<SendRequest>,
    ) -> Result<oneshot::Receiver<Vec<Result<SendAck, RouterError>>>, RouterError> {
        let mut reqs = reqs;
        // Two attempts: the first may hit an actor that is just stopping for idleness.
        for _ in 0..2 {
            let handle = self.room(room);
            let (reply, answer) = oneshot::channel();
            match handle.commands.try_send(SendJob { reqs, reply }) {
                Ok(()) => return Ok(answer),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("chorus_router_room_overloaded_total").increment(1);
                    return Err(RouterError::Overloaded(format!(
                        "more than {} sends queued",
                        self.shared.config.room_queue
                    )));
                }
                Err(mpsc::error::TrySendError::Closed(job)) => {
                    self.shared.rooms.forget(room, handle.generation);
                    reqs = job.reqs;
                }
            }
        }
        Err(RouterError::Unavailable("room is restarting".into()))
    }

    fn check_limit(limit: u32) -> Result<usize, RouterError> {
        if limit == 0 || limit > MAX_HISTORY_LIMIT {
            return Err(RouterError::BadRequest(format!(
                "limit must be between 1 and {MAX_HISTORY_LIMIT}"
            )));
        }
        Ok(limit as usize)
    }
}

#[async_trait]
impl RouterClient for Router {
    async fn send_batch(&self, reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        let deadline = tokio::time::Instant::now() + self.shared.config.send_timeout;
        // One job per room, requests in their order; remember where each result goes.
        let total = reqs.len();
        let groups = group_by_room(reqs);
        let mut pending = Vec::with_capacity(groups.len());
        for RoomGroup {
            room,
            reqs: group,
            slots,
        } in groups
        {
            let queued = self
                .shared
                .ownership
                .check(&room)
                .and_then(|()| self.enqueue(&room, group));
            pending.push((queued, slots));
        }
        let mut results: Vec<Option<Result<SendAck, RouterError>>> =
            (0..total).map(|_| None).collect();
        for (queued, slots) in pending {
            let answers = match queued {
                Ok(answer) => match tokio::time::timeout_at(deadline, answer).await {
                    Ok(Ok(answers)) => answers,
                    Ok(Err(_)) => {
                        vec![Err(RouterError::Unavailable("room stopped".into())); slots.len()]
                    }
                    Err(_) => vec![Err(RouterError::Timeout); slots.len()],
                },
                Err(e) => vec![Err(e); slots.len()],
            };
            for (slot, answer) in slots.into_iter().zip(answers) {
                results[slot] = Some(answer);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(RouterError::Internal("send lost its reply".into()))))
            .collect()
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError> {
        self.shared.ownership.check(&req.room)?;
        let visibility = self
            .authorize_read(&req.room, req.user.as_ref(), true)
            .await?;
        let store = &self.shared.store;
        let last_seq = store.last_seq(&req.room).await?;
        let online = self.shared.live.online(&req.room, None, ONLINE_PAGE);
        let Some(since) = req.since else {
            return Ok(JoinReply {
                last_seq,
                backlog: Vec::new(),
                has_more: false,
                visibility,
                online,
            });
        };
        if since > last_seq {
            return Err(RouterError::BadRequest(format!(
                "since {since} is ahead of the room's last seq {last_seq}"
            )));
        }
        let limit = Self::check_limit(req.limit)?;
        let mut backlog = store
            .read(&req.room, ReadRange::After(since), limit + 1)
            .await?;
        let mut has_more = backlog.len() > limit;
        backlog.truncate(limit);
        has_more |= trim_page(&mut backlog, false);
        Ok(JoinReply {
            last_seq,
            backlog,
            has_more,
            visibility,
            online,
        })
    }

    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        self.shared.ownership.check(&req.room)?;
        self.authorize_read(&req.room, req.user.as_ref(), false)
            .await?;
        let limit = Self::check_limit(req.limit)?;
        let range = match req.anchor {
            HistoryAnchor::After(after) => ReadRange::After(after),
            HistoryAnchor::Before(before) => ReadRange::Before(before),
            HistoryAnchor::Latest => ReadRange::Before(u64::MAX),
        };
        let mut messages = self.shared.store.read(&req.room, range, limit + 1).await?;
        let mut has_more = messages.len() > limit;
        let newest_first = matches!(range, ReadRange::Before(_));
        if has_more {
            if newest_first {
                messages.remove(0);
            } else {
                messages.pop();
            }
        }
        has_more |= trim_page(&mut messages, newest_first);
        Ok(HistoryPage { messages, has_more })
    }

    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        self.shared.ownership.check(&req.room)?;
        req.validate()?;
        self.shared
            .access
            .view(&req.room, &req.from)
            .await?
            .check_send()?;
        let delivery = Delivery {
            trace: None,
            room: req.room.clone(),
            seq: EPHEMERAL_SEQ,
            frame: req.to_frame(),
        };
        self.shared.bus.publish(delivery).await.map_err(|e| {
            metrics::counter!("chorus_bus_publish_errors_total").increment(1);
            RouterError::Unavailable(e.to_string())
        })
    }

    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError> {
        self.shared.ownership.check(&room)?;
        self.shared.access.view(&room, &user).await?.check_send()?;
        self.shared.live.typing(&room, &user, typing).await;
        Ok(())
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError> {
        self.shared.ownership.check(&room)?;
        self.shared.access.view(&room, &user).await?.check_read()?;
        if seq == 0 {
            return Ok(());
        }
        let entry = self
            .shared
            .store
            .read(&room, ReadRange::After(seq - 1), 1)
            .await?;
        match entry.first() {
            Some(m) if m.seq == seq => {
                self.shared.live.mark(&room, &user, seq, m.count);
                Ok(())
            }
            _ => Err(RouterError::BadRequest(format!(
                "seq {seq} is not in the room's log"
            ))),
        }
    }

    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError> {
        self.shared.ownership.check(&room)?;
        self.shared.live.presence(&room, sync);
        Ok(())
    }

    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError> {
        self.shared.ownership.check(&room)?;
        self.shared.access.view(&room, &user).await?.check_read()?;
        let limit = Self::check_limit(limit)?;
        Ok(self.shared.live.online(&room, after.as_ref(), limit))
    }

    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError> {
        self.shared.ownership.check(&room)?;
        let view = self.shared.access.view(&room, &user).await?;
        view.check_read()?;
        if view.visibility.is_none() {
            return Err(RouterError::NotFound("open rooms have no members".into()));
        }
        let limit = Self::check_limit(limit)?;
        let mut page = self
            .shared
            .access
            .store()
            .members(&room, after.as_ref(), limit + 1)
            .await?;
        let has_more = page.len() > limit;
        page.truncate(limit);
        let members = page
            .into_iter()
            .filter_map(|(user, r)| {
                r.role.map(|role| MemberInfo {
                    user,
                    role,
                    muted_until: r.muted_until,
                })
            })
            .collect();
        Ok(MembersPage { members, has_more })
    }

    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        let list = self
            .shared
            .access
            .store()
            .rooms_of(&user, MAX_USER_ROOMS)
            .await?;
        let shared = &self.shared;
        let summaries = stream::iter(list)
            .map(|m| async move {
                let (head, info) = tokio::try_join!(
                    async {
                        Ok::<_, RouterError>(
                            shared
                                .store
                                .read(&m.room, ReadRange::Before(u64::MAX), 1)
                                .await?,
                        )
                    },
                    shared.access.info(&m.room),
                )?;
                let (last_seq, last_count) = head.first().map_or((0, 0), |h| (h.seq, h.count));
                Ok::<_, RouterError>(RoomSummary {
                    visibility: info.and_then(|i| created(i.visibility)),
                    last_seq,
                    read_seq: m.read_seq.min(last_seq),
                    unread: last_count.saturating_sub(m.read_count),
                    role: m.role,
                    room: m.room,
                })
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        summaries.into_iter().collect()
    }
}

/// Online users listed in a join reply.
const ONLINE_PAGE: usize = 100;

/// Approximate bytes of a message in a page.
fn page_bytes(m: &Message) -> usize {
    256 + m.body.len()
        + m.ext
            .attachments
            .iter()
            .map(|a| a.data.len())
            .sum::<usize>()
}

/// Cuts `page` to [`MAX_PAGE_BYTES`] (keeping at least one message, and the newest ones when
/// `newest_first`). Returns whether anything was cut.
fn trim_page(page: &mut Vec<Message>, newest_first: bool) -> bool {
    let mut total = 0;
    let mut keep = 0;
    let sizes: Vec<usize> = if newest_first {
        page.iter().rev().map(page_bytes).collect()
    } else {
        page.iter().map(page_bytes).collect()
    };
    for size in sizes {
        if keep > 0 && total + size > MAX_PAGE_BYTES {
            break;
        }
        total += size;
        keep += 1;
    }
    if keep == page.len() {
        return false;
    }
    if newest_first {
        page.drain(..page.len() - keep);
    } else {
        page.truncate(keep);
    }
    true
}

impl Router {
    /// Checks that `user` may read `room` (the gateway itself always may) and returns the
    /// room's visibility. With `join`, a non-member joining a public room becomes a member
    /// (a `member` entry in the log).
    async fn authorize_read(
        &self,
        room: &RoomId,
        user: Option<&UserId>,
        join: bool,
    ) -> Result<Option<Visibility>, RouterError> {
        let access = &self.shared.access;
        let Some(user) = user else {
            return Ok(access.info(room).await?.and_then(|i| created(i.visibility)));
        };
        let view: View = access.view(room, user).await?;
        view.check_read()?;
        if join && view.visibility == Some(Visibility::Public) && view.role().is_none() {
            let entry = SendRequest {
                trace: None,
                room: room.clone(),
                from: user.clone(),
                client_msg_id: None,
                body: String::new(),
                ext: Ext {
                    kind: Kind::Member,
                    member: Some(MemberChange {
                        action: MemberAction::Join,
                        user: user.clone(),
                        role: None,
                        until: None,
                        visibility: None,
                        members: Vec::new(),
                        revoke: false,
                    }),
                    ..Ext::default()
                },
            };
            match self.send(entry).await {
                Ok(_) | Err(RouterError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(view.visibility)
    }
}
