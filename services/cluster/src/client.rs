//! The gateway's view of the routers: a [`RouterClient`] that sends each room's requests to
//! its owner on the ring over pooled gRPC channels, and follows the ring as it changes.
//!
//! Retries are safe by construction and bounded by the call's deadline:
//! - `NotOwner` means the router did nothing; the client waits for its ring to catch up with
//!   the router's (the error carries the router's ring version) and retries at the new owner.
//! - Reads (join, history, online, members, user rooms) and the idempotent room updates
//!   (typing, read marks, presence) are retried after a short backoff on any unavailability.
//! - A send whose fate is unknown (timeout, router unreachable) is retried only if every
//!   request of its room group carries a `client_msg_id`, which the router deduplicates;
//!   otherwise the error goes back to the client, whose own retry decides. A reachable
//!   router's refusal (`unavailable`: the database is away, a hand-over took too long) goes
//!   back to the client at once: an outage is reported, never hidden behind retries.
//!
//! Room-scoped calls go to the room's owner. A user's room list is not room-scoped (any router
//! reads it from the store); it is routed on the ring by the user id, which spreads the load
//! and keeps one user's reads on one router's connections.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    RoomId, UserId,
    router::{
        EventRequest, HistoryPage, HistoryRequest, JoinReply, JoinRequest, MembersPage, OnlinePage,
        PresenceSync, RoomGroup, RoomSummary, RouterClient, RouterError, SendAck, SendRequest,
        group_by_room,
    },
};
use chorus_router_grpc::GrpcRouterClient;
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::{membership::RingView, ring::Ring};

#[derive(Debug, Clone)]
pub struct RingClientConfig {
    /// Deadline of one gRPC call.
    pub call_deadline: Duration,
    /// Deadline of a whole request, retries included.
    pub total_deadline: Duration,
    /// gRPC channels (HTTP/2 connections) per router, used in turn.
    pub channels_per_router: usize,
}

impl Default for RingClientConfig {
    fn default() -> Self {
        RingClientConfig {
            call_deadline: Duration::from_secs(5),
            total_deadline: Duration::from_secs(10),
            channels_per_router: 2,
        }
    }
}

struct Pool {
    addr: String,
    channels: Vec<GrpcRouterClient>,
    next: AtomicUsize,
}

pub struct RingRouterClient {
    ring: RingView,
    config: RingClientConfig,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl std::fmt::Debug for RingRouterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingRouterClient")
            .field("ring", &self.ring)
            .finish()
    }
}

/// Why one attempt failed, and what to do about it.
enum Retry {
    /// Retry after the ring moves past this version (or a short wait).
    AfterRing(u64),
    /// Retry after a backoff.
    Backoff,
    /// Give this error to the caller.
    No,
}

/// `may_repeat`: repeating the request is harmless even if it already happened (reads, or
/// sends that all carry a `client_msg_id`). `reads`: a refusal by a reachable router (the
/// database is away, say) is worth retrying too; for sends it goes back to the client at
/// once, so an outage is reported rather than hidden.
fn classify(e: &RouterError, may_repeat: bool, reads: bool) -> Retry {
    match e {
        RouterError::NotOwner { ring_version, .. } => Retry::AfterRing(*ring_version),
        RouterError::Unreachable(_) | RouterError::Timeout if may_repeat => Retry::Backoff,
        RouterError::Unavailable(_) if reads => Retry::Backoff,
        _ => Retry::No,
    }
}

/// The ring key of a call that is about a user rather than a room.
fn user_key(user: &UserId) -> RoomId {
    RoomId::new(user.as_str())
        .expect("a user id is a valid room name: its characters are a subset, its limit lower")
}

impl RingRouterClient {
    pub fn new(ring: RingView, config: RingClientConfig) -> Self {
        // At 0 from the start: dashboards and alerts see the series before the first retry.
        for name in [
            "chorus_gateway_not_owner_retries_total",
            "chorus_gateway_router_retries_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        RingRouterClient {
            ring,
            config,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `room`'s owner under `ring`.
    fn route(&self, ring: &Ring, room: &RoomId) -> Result<GrpcRouterClient, RouterError> {
        let Some(owner) = ring.owner(room) else {
            return Err(RouterError::Unavailable("no router is in the ring".into()));
        };
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        // Forget routers that left the ring (their channels close when dropped).
        if pools.len() > ring.members().len() {
            pools.retain(|name, _| ring.members().iter().any(|m| &m.name == name));
        }
        let pool = match pools.get(&owner.name) {
            Some(p) if p.addr == owner.addr => p.clone(),
            _ => {
                let channels = (0..self.config.channels_per_router.max(1))
                    .map(|_| GrpcRouterClient::lazy(owner.addr.clone(), self.config.call_deadline))
                    .collect::<Result<Vec<_>, _>>()?;
                let pool = Arc::new(Pool {
                    addr: owner.addr.clone(),
                    channels,
                    next: AtomicUsize::new(0),
                });
                pools.insert(owner.name.clone(), pool.clone());
                pool
            }
        };
        let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.channels.len();
        Ok(pool.channels[i].clone())
    }

    /// Waits before the next attempt; false if the deadline does not allow one.
    async fn pause(&self, retry: &Retry, attempt: u32, seen: u64, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let left = deadline - now;
        match retry {
            Retry::AfterRing(theirs) => {
                metrics::counter!("chorus_gateway_not_owner_retries_total").increment(1);
                // Same version: our target came from an older ring; go again at once.
                if *theirs != seen {
                    self.ring
                        .changed_from(seen, left.min(Duration::from_secs(2)))
                        .await;
                }
            }
            Retry::Backoff => {
                metrics::counter!("chorus_gateway_router_retries_total").increment(1);
                let wait = Duration::from_millis(100 << attempt.min(3)).min(left);
                self.ring.changed_from(seen, wait).await;
            }
            Retry::No => return false,
        }
        Instant::now() < deadline
    }

    /// One room-scoped call with retries.
    async fn call<T, F, Fut>(
        &self,
        room: &RoomId,
        may_repeat: bool,
        reads: bool,
        f: F,
    ) -> Result<T, RouterError>
    where
        F: Fn(GrpcRouterClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, RouterError>>,
    {
        let deadline = Instant::now() + self.config.total_deadline;
        let mut attempt = 0;
        loop {
            let ring = self.ring.current();
            let outcome = match self.route(&ring, room) {
                Ok(client) => f(client).await,
                Err(e) => Err(e),
            };
            let e = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let retry = if ring.is_empty() {
                Retry::Backoff
            } else {
                classify(&e, may_repeat, reads)
            };
            if !self.pause(&retry, attempt, ring.version(), deadline).await {
                return Err(e);
            }
            attempt += 1;
        }
    }
}

#[async_trait]
impl RouterClient for RingRouterClient {
    async fn send_batch(&self, reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        let deadline = Instant::now() + self.config.total_deadline;
        let total = reqs.len();
        // Room groups keep their order and share their fate, as the router treats them.
        let mut groups = group_by_room(reqs);
        let mut results: Vec<Option<Result<SendAck, RouterError>>> =
            (0..total).map(|_| None).collect();
        let mut attempt = 0;
        while !groups.is_empty() {
            let ring = self.ring.current();
            // One call per owner, carrying all of its room groups.
            let mut by_owner: Vec<(Option<GrpcRouterClient>, Vec<usize>)> = Vec::new();
            let mut owner_index: HashMap<String, usize> = HashMap::new();
            let mut route_errors = Vec::new();
            for (g, RoomGroup { room, .. }) in groups.iter().enumerate() {
                match (ring.owner(room), self.route(&ring, room)) {
                    (Some(owner), Ok(client)) => {
                        let i = *owner_index.entry(owner.name.clone()).or_insert_with(|| {
                            by_owner.push((Some(client), Vec::new()));
                            by_owner.len() - 1
                        });
                        by_owner[i].1.push(g);
                    }
                    (_, Err(e)) => route_errors.push((g, e)),
                    (None, Ok(_)) => route_errors.push((
                        g,
                        RouterError::Unavailable("no router is in the ring".into()),
                    )),
                }
            }
            let calls = by_owner.into_iter().map(|(client, gs)| {
                let reqs: Vec<SendRequest> = gs
                    .iter()
                    .flat_map(|g| groups[*g].reqs.iter().cloned())
                    .collect();
                async move {
                    let answers = match client {
                        Some(c) => c.send_batch(reqs).await,
                        None => Vec::new(),
                    };
                    (gs, answers)
                }
            });
            // Each group's outcome: its answers, or one error for all of it.
            let mut outcomes: Vec<Option<Result<Vec<SendAck>, RouterError>>> =
                (0..groups.len()).map(|_| None).collect();
            for (gs, answers) in join_all(calls).await {
                let mut answers = answers.into_iter();
                for g in gs {
                    let n = groups[g].reqs.len();
                    let mine: Vec<_> = answers.by_ref().take(n).collect();
                    let outcome = if mine.len() != n {
                        Err(RouterError::Internal(
                            "router answered too few sends".into(),
                        ))
                    } else {
                        // Shared fate: the first error stands for the group.
                        mine.into_iter().collect::<Result<Vec<_>, _>>()
                    };
                    outcomes[g] = Some(outcome);
                }
            }
            for (g, e) in route_errors {
                outcomes[g] = Some(Err(e));
            }
            let mut again = Vec::new();
            let mut pause: Option<Retry> = None;
            for (group, outcome) in groups.into_iter().zip(outcomes) {
                let RoomGroup { reqs, slots, .. } = &group;
                match outcome.unwrap_or_else(|| Err(RouterError::Internal("send lost".into()))) {
                    Ok(acks) => {
                        for (slot, ack) in slots.iter().zip(acks) {
                            results[*slot] = Some(Ok(ack));
                        }
                    }
                    Err(e) => {
                        let repeatable = reqs.iter().all(|r| r.client_msg_id.is_some());
                        let retry = if ring.is_empty() {
                            Retry::Backoff
                        } else {
                            classify(&e, repeatable, false)
                        };
                        if matches!(retry, Retry::No) || Instant::now() >= deadline {
                            for slot in slots {
                                results[*slot] = Some(Err(e.clone()));
                            }
                        } else {
                            // Ring waits take precedence over backoffs.
                            if !matches!(pause, Some(Retry::AfterRing(_))) {
                                pause = Some(retry);
                            }
                            again.push((group, e));
                        }
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            let retry = pause.unwrap_or(Retry::Backoff);
            if !self.pause(&retry, attempt, ring.version(), deadline).await {
                for (group, e) in again {
                    for slot in group.slots {
                        results[slot] = Some(Err(e.clone()));
                    }
                }
                break;
            }
            attempt += 1;
            groups = again.into_iter().map(|(g, _)| g).collect();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(RouterError::Internal("send lost its reply".into()))))
            .collect()
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError> {
        let room = req.room.clone();
        self.call(&room, true, true, |c| {
            let req = req.clone();
            async move { c.join(req).await }
        })
        .await
    }

    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        let room = req.room.clone();
        self.call(&room, true, true, |c| {
            let req = req.clone();
            async move { c.history(req).await }
        })
        .await
    }

    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        let room = req.room.clone();
        // An event is ephemeral; repeating one after an unknown outcome could show it twice,
        // so only not-owner (nothing done) is retried.
        self.call(&room, false, false, |c| {
            let req = req.clone();
            async move { c.publish_event(req).await }
        })
        .await
    }

    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError> {
        // A repeat of the same state changes nothing at the owner: safe to retry.
        self.call(&room, true, true, |c| {
            let (room, user) = (room.clone(), user.clone());
            async move { c.typing(room, user, typing).await }
        })
        .await
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError> {
        // Marks only move forward: a repeat changes nothing.
        self.call(&room, true, true, |c| {
            let (room, user) = (room.clone(), user.clone());
            async move { c.mark_read(room, user, seq).await }
        })
        .await
    }

    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError> {
        // A sync states connection counts, not changes to them: a repeat changes nothing.
        self.call(&room, true, true, |c| {
            let (room, sync) = (room.clone(), sync.clone());
            async move { c.presence(room, sync).await }
        })
        .await
    }

    /// One call per owner for the reports of its rooms (concurrently); a report the owner
    /// refuses or that does not arrive goes again on its own, with the retries of
    /// [`presence`](RouterClient::presence).
    async fn presence_batch(
        &self,
        reports: Vec<(RoomId, PresenceSync)>,
    ) -> Vec<Result<(), RouterError>> {
        let ring = self.ring.current();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (room, _)) in reports.iter().enumerate() {
            let owner = ring.owner(room).map(|m| m.name.clone()).unwrap_or_default();
            groups.entry(owner).or_default().push(i);
        }
        let calls = groups.into_values().map(|slots| {
            let group: Vec<_> = slots.iter().map(|&i| reports[i].clone()).collect();
            let client = self.route(&ring, &group[0].0);
            async move {
                let results = match client {
                    Ok(c) => c.presence_batch(group).await,
                    Err(e) => vec![Err(e); slots.len()],
                };
                (slots, results)
            }
        });
        let mut out: Vec<Result<(), RouterError>> = vec![Ok(()); reports.len()];
        // Per room, the first report to send again: it and every later report of that room
        // go again, in order, so the router ends with the newest counts.
        let mut again_from: HashMap<&RoomId, usize> = HashMap::new();
        for (slots, results) in join_all(calls).await {
            for (i, result) in slots.into_iter().zip(results) {
                match result {
                    Err(e) if !matches!(classify(&e, true, true), Retry::No) => {
                        let first = again_from.entry(&reports[i].0).or_insert(i);
                        *first = (*first).min(i);
                    }
                    other => out[i] = other,
                }
            }
        }
        for (i, (room, sync)) in reports.iter().enumerate() {
            if again_from.get(room).is_some_and(|&first| i >= first) {
                out[i] = self.presence(room.clone(), sync.clone()).await;
            }
        }
        out
    }

    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError> {
        self.call(&room, true, true, |c| {
            let (room, user, after) = (room.clone(), user.clone(), after.clone());
            async move { c.online(room, user, after, limit).await }
        })
        .await
    }

    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError> {
        self.call(&room, true, true, |c| {
            let (room, user, after) = (room.clone(), user.clone(), after.clone());
            async move { c.members(room, user, after, limit).await }
        })
        .await
    }

    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        self.call(&user_key(&user), true, true, |c| {
            let user = user.clone();
            async move { c.user_rooms(user).await }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chorus_core::ids::MAX_USER_LEN;

    use super::*;

    #[test]
    fn every_user_id_is_a_ring_key() {
        // The longest user id, of every character a user id may hold.
        let longest: String = UserId::EXTRA_CHARS
            .chars()
            .chain("aZ9".chars())
            .cycle()
            .take(MAX_USER_LEN)
            .collect();
        let user = UserId::new(&longest).unwrap();
        assert_eq!(user_key(&user).as_str(), user.as_str());
    }
}
