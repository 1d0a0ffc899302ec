//! Ring-based room ownership with slot claims and a session (ADR 0004).
//!
//! - The ring says which router *should* serve a slot; [`Ownership::check`] refuses the rest
//!   with a typed not-owner error carrying the ring version.
//! - Before its first append in a slot, the owner *claims* the slot in the [`LeaseStore`]
//!   (compare-and-set). It takes a slot from another router only when that router released
//!   it, or its session expired more than `drift + settle` ago.
//! - The router renews its *session* (one row) every `renew_every`, while its membership
//!   heartbeats succeed. It acknowledges an append only if its session was still valid when
//!   the append finished, by its own clock: `last renewal sent + session_ttl`.
//! - When the ring moves a slot away, the router stops new appends there, waits for the ones
//!   in flight, and releases the claim so the new owner can take it at once.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chorus_core::{
    RoomId,
    lease::{ClaimOutcome, LeaseStore, SlotClaim},
    router::RouterError,
    time::now_ms,
};
use chorus_router::ownership::{AppendPermit, Fence, Ownership};
use tokio::sync::RwLock;

use crate::{
    CancelOnDrop,
    membership::RingView,
    ring::{Ring, slot_of},
};

/// Ownership timing. The safety argument (ADR 0004) needs: clocks of any two routers differ
/// by less than `drift`, and a store write that has not completed within `settle` never
/// lands.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    pub session_ttl: Duration,
    pub renew_every: Duration,
    pub drift: Duration,
    pub settle: Duration,
    /// Longest a send waits for a slot to be handed over before failing `unavailable`.
    pub claim_wait: Duration,
    /// A session is not renewed when membership heartbeats have failed for this long (the
    /// router is cut off from the cluster and must let its rooms go).
    pub heartbeat_grace: Duration,
}

impl Default for OwnershipConfig {
    fn default() -> Self {
        OwnershipConfig {
            session_ttl: Duration::from_secs(4),
            renew_every: Duration::from_secs(1),
            drift: Duration::from_millis(500),
            settle: Duration::from_secs(2),
            claim_wait: Duration::from_secs(8),
            heartbeat_grace: Duration::from_secs(3),
        }
    }
}

/// This router's session: valid until `valid_until` (Unix ms, local clock).
#[derive(Default)]
struct Session {
    valid_until: AtomicU64,
}

impl Session {
    fn valid(&self) -> bool {
        now_ms() < self.valid_until.load(Ordering::Acquire)
    }
}

/// One slot as this router holds it.
#[derive(Default)]
struct Slot {
    /// Appends hold it shared; hand-over takes it exclusively.
    lock: Arc<RwLock<()>>,
    held: AtomicBool,
    epoch: AtomicU64,
    /// One claim attempt at a time.
    claiming: tokio::sync::Mutex<()>,
}

struct SlotFence {
    _guard: tokio::sync::OwnedRwLockReadGuard<()>,
    slot: Arc<Slot>,
    session: Arc<Session>,
}

impl Fence for SlotFence {
    fn valid(&self) -> bool {
        self.slot.held.load(Ordering::Acquire) && self.session.valid()
    }
}

pub struct LeaseOwnership {
    name: String,
    holder: String,
    ring: RingView,
    leases: Arc<dyn LeaseStore>,
    config: OwnershipConfig,
    session: Arc<Session>,
    slots: Mutex<HashMap<u32, Arc<Slot>>>,
    tasks: Mutex<Vec<CancelOnDrop>>,
}

impl std::fmt::Debug for LeaseOwnership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseOwnership")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish()
    }
}

impl LeaseOwnership {
    /// Opens this router's session (one write) and starts renewing it and following the
    /// ring. `name` is the router's ring name, `holder` its process-unique session id;
    /// `heartbeat` is the Unix ms of its last accepted membership heartbeat.
    pub async fn start(
        name: String,
        holder: String,
        ring: RingView,
        leases: Arc<dyn LeaseStore>,
        heartbeat: Arc<AtomicU64>,
        config: OwnershipConfig,
    ) -> Result<Arc<LeaseOwnership>, RouterError> {
        // At 0 from the start: dashboards and alerts see the series before the first move.
        for name in [
            "chorus_router_slot_claims_total",
            "chorus_router_slot_releases_total",
            "chorus_router_session_renewals_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        let this = Arc::new(LeaseOwnership {
            name,
            holder,
            ring,
            leases,
            config,
            session: Arc::new(Session::default()),
            slots: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        this.renew().await?;
        let renewer = {
            let this = Arc::downgrade(&this);
            let every = this
                .upgrade()
                .map_or(Duration::from_secs(1), |t| t.config.renew_every);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(this) = this.upgrade() else { return };
                    let beat_age = now_ms().saturating_sub(heartbeat.load(Ordering::Acquire));
                    if beat_age > this.config.heartbeat_grace.as_millis() as u64 {
                        tracing::warn!(
                            beat_age_ms = beat_age,
                            "membership heartbeats failing; letting the session lapse"
                        );
                        continue;
                    }
                    if let Err(e) = this.renew().await {
                        tracing::warn!(error = %e, "session renewal failed");
                    }
                }
            })
        };
        let follower = {
            let this = Arc::downgrade(&this);
            let mut view = this.upgrade().map(|t| t.ring.clone());
            tokio::spawn(async move {
                let Some(view) = view.as_mut() else { return };
                while let Some(ring) = view.next().await {
                    let Some(this) = this.upgrade() else { return };
                    this.hand_over_moved_slots(&ring);
                }
            })
        };
        this.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([CancelOnDrop(renewer), CancelOnDrop(follower)]);
        Ok(this)
    }

    /// Whether this router may acknowledge appends now (its session is alive). A router
    /// whose session lapsed (database or NATS unreachable) is not ready.
    pub fn session_valid(&self) -> bool {
        self.session.valid()
    }

    async fn renew(&self) -> Result<(), RouterError> {
        let sent = now_ms();
        let until = sent + self.config.session_ttl.as_millis() as u64;
        self.leases.renew_session(&self.holder, until).await?;
        self.session.valid_until.fetch_max(until, Ordering::AcqRel);
        metrics::counter!("chorus_router_session_renewals_total").increment(1);
        Ok(())
    }

    fn not_owner(&self, ring: &Ring, room: &RoomId) -> RouterError {
        RouterError::NotOwner {
            ring_version: ring.version(),
            owner: ring.owner(room).map(|m| m.name.clone()),
        }
    }

    fn slot(&self, slot: u32) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(slot)
            .or_default()
            .clone()
    }

    /// Releases every held slot the ring no longer gives this router.
    fn hand_over_moved_slots(self: &Arc<Self>, ring: &Ring) {
        let moved: Vec<(u32, Arc<Slot>)> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(slot, s)| {
                s.held.load(Ordering::Acquire)
                    && ring.owner_of_slot(**slot).map(|m| m.name.as_str()) != Some(&self.name)
            })
            .map(|(slot, s)| (*slot, s.clone()))
            .collect();
        for (slot, state) in moved {
            let this = self.clone();
            tokio::spawn(async move { this.release(slot, &state).await });
        }
    }

    async fn release(&self, slot: u32, state: &Slot) {
        let _exclusive = state.lock.write().await;
        if !state.held.swap(false, Ordering::AcqRel) {
            return;
        }
        let epoch = state.epoch.load(Ordering::Acquire);
        match self.leases.release(slot, &self.holder, epoch).await {
            Ok(_) => {
                metrics::counter!("chorus_router_slot_releases_total").increment(1);
                tracing::info!(slot, epoch, "slot handed over");
            }
            // The claim stays ours in the store until our session expires; the next owner
            // waits for that instead.
            Err(e) => tracing::warn!(slot, error = %e, "slot release failed"),
        }
    }

    /// Claims `slot` for this router, waiting out the previous holder if it must.
    async fn acquire(&self, room: &RoomId, slot: u32, state: &Slot) -> Result<(), RouterError> {
        let _one = state.claiming.lock().await;
        if state.held.load(Ordering::Acquire) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.config.claim_wait;
        let margin = (self.config.drift + self.config.settle).as_millis() as u64;
        let started = std::time::Instant::now();
        loop {
            let ring = self.ring.current();
            if ring.owner_of_slot(slot).map(|m| m.name.as_str()) != Some(&self.name) {
                return Err(self.not_owner(&ring, room));
            }
            if !self.session.valid() {
                return Err(RouterError::Unavailable(
                    "this router's ownership session has lapsed".into(),
                ));
            }
            let current = self.leases.claim_of(slot).await?;
            // When may we take over? `None` means now.
            let wait_until = match &current {
                None => None,
                Some(c) if c.holder == self.holder && !c.released => {
                    // Ours already (a claim whose reply we lost).
                    state.epoch.store(c.epoch, Ordering::Release);
                    state.held.store(true, Ordering::Release);
                    return Ok(());
                }
                Some(c) if c.released || c.holder == self.holder => None,
                Some(c) => match self.leases.session_expiry(&c.holder).await? {
                    Some(expiry) if now_ms() < expiry + margin => Some(expiry + margin),
                    // Expired long enough ago, or ended.
                    _ => None,
                },
            };
            match wait_until {
                None => {
                    if let ClaimOutcome::Claimed { epoch } = self
                        .leases
                        .claim(slot, current.as_ref(), &self.holder)
                        .await?
                    {
                        state.epoch.store(epoch, Ordering::Release);
                        state.held.store(true, Ordering::Release);
                        let waited = started.elapsed();
                        metrics::counter!("chorus_router_slot_claims_total").increment(1);
                        metrics::histogram!("chorus_router_slot_claim_seconds")
                            .record(waited.as_secs_f64());
                        tracing::info!(
                            slot,
                            epoch,
                            from = current.as_ref().map(|c: &SlotClaim| c.holder.as_str()),
                            waited_ms = waited.as_millis() as u64,
                            "slot claimed"
                        );
                        return Ok(());
                    }
                    // Someone else moved first; look again.
                }
                Some(until) => {
                    // The holder may release sooner than its session expires: poll.
                    let wait = Duration::from_millis(until.saturating_sub(now_ms()))
                        .min(Duration::from_millis(250));
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(RouterError::Unavailable(
                            "room is being handed over between routers; retry".into(),
                        ));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(RouterError::Unavailable(
                    "room is being handed over between routers; retry".into(),
                ));
            }
        }
    }
}

#[async_trait]
impl Ownership for LeaseOwnership {
    fn check(&self, room: &RoomId) -> Result<(), RouterError> {
        let ring = self.ring.current();
        match ring.owner(room) {
            Some(m) if m.name == self.name => Ok(()),
            _ => Err(self.not_owner(&ring, room)),
        }
    }

    fn version(&self) -> u64 {
        self.ring.current().version()
    }

    async fn permit(&self, room: &RoomId) -> Result<AppendPermit, RouterError> {
        let slot = slot_of(room);
        let state = self.slot(slot);
        for _ in 0..3 {
            self.check(room)?;
            if !state.held.load(Ordering::Acquire) {
                self.acquire(room, slot, &state).await?;
            }
            let guard = state.lock.clone().read_owned().await;
            // A hand-over may have completed while we waited for the lock.
            if state.held.load(Ordering::Acquire) {
                let fence = SlotFence {
                    _guard: guard,
                    slot: state.clone(),
                    session: self.session.clone(),
                };
                if !fence.valid() {
                    return Err(RouterError::Unavailable(
                        "this router's ownership session has lapsed".into(),
                    ));
                }
                return Ok(AppendPermit::fenced(
                    state.epoch.load(Ordering::Acquire),
                    Box::new(fence),
                ));
            }
        }
        Err(RouterError::Unavailable(
            "room ownership is moving; retry".into(),
        ))
    }

    async fn shutdown(&self) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let held: Vec<(u32, Arc<Slot>)> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (slot, state) in held {
            self.release(slot, &state).await;
        }
        if let Err(e) = self.leases.end_session(&self.holder).await {
            tracing::warn!(error = %e, "could not end the ownership session; it expires on its own");
        }
    }
}
