//! The room router: gives every room it serves one total order (seq gapless from 1), writes
//! each message to the store before acknowledging it, and publishes deliveries on the bus after
//! they are durable.
//!
//! Each active room has one task (a [`room`] actor) that owns its sequence. Sends queued while
//! an append is in flight are batched into the next append, so a busy room costs one store
//! write per batch, not per message. Reads (join backlog, history) go to the store directly.
//!
//! This crate does not talk gRPC or watch the ring: the standalone wiring calls [`Router`]
//! in-process with [`ownership::SoleOwner`]; the cluster wiring gives it a ring-based
//! [`ownership::Ownership`] and puts the network in front of it.

pub mod ownership;
mod room;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chorus_core::{
    RoomId,
    actors::{ActorHandle, ActorRegistry},
    bus::{Delivery, DeliveryBus, EPHEMERAL_SEQ},
    protocol::MAX_HISTORY_LIMIT,
    router::{
        EventRequest, HistoryAnchor, HistoryPage, HistoryRequest, JoinReply, JoinRequest,
        RoomGroup, RouterClient, RouterError, SendAck, SendRequest, group_by_room,
    },
    store::{MessageStore, ReadRange},
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::{
    ownership::{Ownership, SoleOwner},
    room::{RoomActor, SendJob},
};

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
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            room_queue: 1024,
            max_batch: 256,
            idle_timeout: Duration::from_secs(60),
            dedupe_cache: 1024,
            send_timeout: Duration::from_secs(10),
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
    /// A router that owns every room (the standalone wiring).
    pub fn new(
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn DeliveryBus>,
        config: RouterConfig,
    ) -> Self {
        Self::with_ownership(store, bus, Arc::new(SoleOwner), config)
    }

    /// A router that serves only the rooms `ownership` grants it.
    pub fn with_ownership(
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn DeliveryBus>,
        ownership: Arc<dyn Ownership>,
        config: RouterConfig,
    ) -> Self {
        Router {
            shared: Arc::new(Shared {
                store,
                bus,
                ownership,
                config,
                rooms: ActorRegistry::default(),
                tasks: TaskTracker::new(),
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
        let store = &self.shared.store;
        let last_seq = store.last_seq(&req.room).await?;
        let Some(since) = req.since else {
            return Ok(JoinReply {
                last_seq,
                backlog: Vec::new(),
                has_more: false,
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
        let has_more = backlog.len() > limit;
        backlog.truncate(limit);
        Ok(JoinReply {
            last_seq,
            backlog,
            has_more,
        })
    }

    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        self.shared.ownership.check(&req.room)?;
        let limit = Self::check_limit(req.limit)?;
        let range = match req.anchor {
            HistoryAnchor::After(after) => ReadRange::After(after),
            HistoryAnchor::Before(before) => ReadRange::Before(before),
            HistoryAnchor::Latest => ReadRange::Before(u64::MAX),
        };
        let mut messages = self.shared.store.read(&req.room, range, limit + 1).await?;
        let has_more = messages.len() > limit;
        if has_more {
            match range {
                ReadRange::After(_) => {
                    messages.pop();
                }
                ReadRange::Before(_) => {
                    messages.remove(0);
                }
            }
        }
        Ok(HistoryPage { messages, has_more })
    }

    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        self.shared.ownership.check(&req.room)?;
        req.validate()?;
        let delivery = Delivery {
            room: req.room.clone(),
            seq: EPHEMERAL_SEQ,
            frame: req.to_frame(),
        };
        self.shared.bus.publish(delivery).await.map_err(|e| {
            metrics::counter!("chorus_bus_publish_errors_total").increment(1);
            RouterError::Unavailable(e.to_string())
        })
    }
}
