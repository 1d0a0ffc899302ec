//! Presence reporting: each hub room tells the room's router who is subscribed here.
//!
//! A room task keeps its users' connection counts ([`RoomPresence`]), reports the users whose
//! count changed shortly after (coalesced over [`COALESCE`]), and the whole list every refresh
//! period, which is also how a router that took the room over, or that forgot this gateway,
//! learns it again. Reports go through the [`Reporter`]'s queues, one task per lane, so a
//! room's reports reach the router in order and a slow router never blocks a room's
//! deliveries. A lane sends what has queued up together ([`RouterClient::presence_batch`]:
//! one call per owning router), so a refresh of many rooms costs a few calls. A full queue
//! drops the report (counted); the next full refresh repairs it.

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use chorus_core::{
    RoomId, UserId,
    router::{PresenceSync, RouterClient},
};
use tokio::{sync::mpsc, time::Instant};

/// How long a room waits to gather changes into one report.
pub(crate) const COALESCE: Duration = Duration::from_millis(50);
/// Reports queued per lane before further ones are dropped.
const LANE_QUEUE: usize = 4096;
/// Lanes (report tasks): rooms are spread over them by name.
const LANES: usize = 4;
/// Reports a lane sends in one call (one per owning router in a cluster).
const BATCH: usize = 512;

/// Sends presence reports to routers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Reporter {
    gateway: Arc<str>,
    lanes: Arc<[mpsc::Sender<(RoomId, PresenceSync)>]>,
}

impl Reporter {
    /// Starts the lane tasks; they end when every clone of the reporter is dropped.
    pub(crate) fn new(router: Arc<dyn RouterClient>) -> Self {
        // At 0 from the start, like every counter of a rare event.
        for name in [
            "chorus_presence_reports_dropped_total",
            "chorus_presence_report_errors_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let gateway: Arc<str> = format!("gw-{}-{:x}", std::process::id(), nanos).into();
        let lanes: Vec<_> = (0..LANES)
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<(RoomId, PresenceSync)>(LANE_QUEUE);
                let router = router.clone();
                tokio::spawn(async move {
                    let mut batch = Vec::with_capacity(BATCH);
                    while rx.recv_many(&mut batch, BATCH).await > 0 {
                        let rooms: Vec<RoomId> = batch.iter().map(|(r, _)| r.clone()).collect();
                        let results = router.presence_batch(std::mem::take(&mut batch)).await;
                        for (room, result) in rooms.iter().zip(results) {
                            if let Err(e) = result {
                                metrics::counter!("chorus_presence_report_errors_total")
                                    .increment(1);
                                tracing::debug!(%room, error = %e, "presence report failed");
                            }
                        }
                    }
                });
                tx
            })
            .collect();
        Reporter {
            gateway,
            lanes: lanes.into(),
        }
    }

    fn report(&self, room: &RoomId, full: bool, users: Vec<(UserId, u32)>) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        let lane = &self.lanes[h.finish() as usize % self.lanes.len()];
        let sync = PresenceSync {
            gateway: self.gateway.to_string(),
            full,
            users,
        };
        if lane.try_send((room.clone(), sync)).is_err() {
            metrics::counter!("chorus_presence_reports_dropped_total").increment(1);
        }
    }
}

/// One hub room's subscribers by user, and what it has yet to report.
pub(crate) struct RoomPresence {
    counts: HashMap<UserId, u32>,
    dirty: HashSet<UserId>,
    due: Option<Instant>,
    next_full: Instant,
    refresh: Duration,
}

impl RoomPresence {
    pub(crate) fn new(refresh: Duration) -> Self {
        RoomPresence {
            counts: HashMap::new(),
            dirty: HashSet::new(),
            due: None,
            next_full: Instant::now() + refresh,
            refresh,
        }
    }

    pub(crate) fn add(&mut self, user: &UserId) {
        *self.counts.entry(user.clone()).or_insert(0) += 1;
        self.touch(user);
    }

    pub(crate) fn remove(&mut self, user: &UserId) {
        if let Some(n) = self.counts.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(user);
            }
        }
        self.touch(user);
    }

    fn touch(&mut self, user: &UserId) {
        self.dirty.insert(user.clone());
        self.due.get_or_insert_with(|| Instant::now() + COALESCE);
    }

    /// When [`RoomPresence::on_timer`] should run next.
    pub(crate) fn deadline(&self) -> Instant {
        self.due.map_or(self.next_full, |d| d.min(self.next_full))
    }

    /// Reports what is due.
    pub(crate) fn on_timer(&mut self, reporter: &Reporter, room: &RoomId) {
        let now = Instant::now();
        if now >= self.next_full {
            self.dirty.clear();
            self.due = None;
            self.next_full = now + self.refresh;
            let users = self.counts.iter().map(|(u, n)| (u.clone(), *n)).collect();
            reporter.report(room, true, users);
        } else if self.due.is_some_and(|d| now >= d) {
            self.flush(reporter, room);
        }
    }

    /// Reports the changed users now.
    pub(crate) fn flush(&mut self, reporter: &Reporter, room: &RoomId) {
        self.due = None;
        if self.dirty.is_empty() {
            return;
        }
        let users = self
            .dirty
            .drain()
            .map(|u| {
                let n = self.counts.get(&u).copied().unwrap_or(0);
                (u, n)
            })
            .collect();
        reporter.report(room, false, users);
    }
}
