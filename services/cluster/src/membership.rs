//! Router membership in a NATS key-value bucket, and the ring every process builds from it.
//!
//! Each router puts `{name, addr, instance}` under its name every `ttl / 3`. The bucket's
//! `max_age` is the TTL and it has limit markers enabled, so an entry that stops being
//! refreshed (a router killed with `kill -9`, or cut off from NATS) expires and its removal
//! reaches every watcher as a purge. A router that shuts down deletes its entry at once.
//! Gateways and routers watch the bucket and rebuild the [`Ring`] on every change. Watchers
//! also drop entries they have not seen refreshed for two TTLs, in case a marker is lost.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    kv::{self, Operation},
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    CancelOnDrop,
    ring::{Member, Ring, valid_member_name},
};

/// Membership settings shared by every process of a cluster.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Subject/bucket prefix of the cluster (the bus prefix).
    pub prefix: String,
    /// A router not refreshed for this long leaves the ring.
    pub ttl: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            prefix: "chorus".into(),
            ttl: Duration::from_secs(3),
        }
    }
}

impl MembershipConfig {
    fn bucket(&self) -> String {
        format!("{}_routers", self.prefix.replace('.', "_"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("membership bucket in NATS: {0}")]
    Bucket(String),
    #[error("announcing this router in NATS: {0}")]
    Announce(String),
    #[error("invalid router name {0:?}: use 1 to 63 of a-z 0-9 -, starting with a letter or digit")]
    Name(String),
}

/// What a router puts in the bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Announcement {
    name: String,
    addr: String,
    instance: String,
}

async fn bucket(
    client: &async_nats::Client,
    config: &MembershipConfig,
) -> Result<kv::Store, MembershipError> {
    let js = jetstream::new(client.clone());
    let name = config.bucket();
    js.create_or_update_key_value(kv::Config {
        bucket: name.clone(),
        description: "Chorus routers (heartbeats with a TTL)".into(),
        history: 1,
        max_age: config.ttl,
        // File storage survives a NATS restart; a bucket lost anyway (a NATS without
        // persistence) is created again by the next heartbeat or watch.
        storage: jetstream::stream::StorageType::File,
        limit_markers: Some(config.ttl.max(Duration::from_secs(1))),
        ..Default::default()
    })
    .await
    .map_err(|e| MembershipError::Bucket(format!("{name}: {e}")))
}

/// A live view of the ring. Cheap to clone.
#[derive(Clone)]
pub struct RingView {
    rx: watch::Receiver<Arc<Ring>>,
}

impl std::fmt::Debug for RingView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingView")
            .field("version", &self.current().version())
            .finish()
    }
}

impl RingView {
    /// A view that never changes (tests, fixed topologies).
    pub fn fixed(ring: Ring) -> (RingView, watch::Sender<Arc<Ring>>) {
        let (tx, rx) = watch::channel(Arc::new(ring));
        (RingView { rx }, tx)
    }

    pub fn current(&self) -> Arc<Ring> {
        self.rx.borrow().clone()
    }

    /// Waits until the ring differs from version `seen`, or `timeout` passes; returns the
    /// ring then.
    pub async fn changed_from(&self, seen: u64, timeout: Duration) -> Arc<Ring> {
        let mut rx = self.rx.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| r.version() != seen)).await;
        self.current()
    }

    /// Waits for the next ring change (for background watchers). `None` once the watcher
    /// has stopped.
    pub async fn next(&mut self) -> Option<Arc<Ring>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }
}

/// Watches the membership bucket and keeps a [`RingView`] current until dropped.
pub struct Watcher {
    view: RingView,
    _task: CancelOnDrop,
}

impl Watcher {
    /// Starts watching; returns once the current members are known (or the bucket turned out
    /// empty).
    pub async fn start(
        client: &async_nats::Client,
        config: MembershipConfig,
    ) -> Result<Watcher, MembershipError> {
        let store = bucket(client, &config).await?;
        let (tx, rx) = watch::channel(Arc::new(Ring::empty()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(watch_loop(client.clone(), store, config, tx, ready_tx));
        // Either the initial state arrived or the loop reports why it could not start.
        let _ = ready_rx.await;
        Ok(Watcher {
            view: RingView { rx },
            _task: CancelOnDrop(task),
        })
    }

    pub fn view(&self) -> RingView {
        self.view.clone()
    }
}

async fn watch_loop(
    client: async_nats::Client,
    mut store: kv::Store,
    config: MembershipConfig,
    tx: watch::Sender<Arc<Ring>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut members: HashMap<String, (Member, Instant)> = HashMap::new();
    let publish = |members: &HashMap<String, (Member, Instant)>| {
        let ring = Ring::new(members.values().map(|(m, _)| m.clone()));
        tx.send_if_modified(|current| {
            if current.version() == ring.version() {
                return false;
            }
            tracing::info!(
                version = format_args!("{:016x}", ring.version()),
                routers = ?ring.members().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                "ring changed"
            );
            metrics::counter!("chorus_ring_changes_total").increment(1);
            metrics::gauge!("chorus_ring_routers").set(ring.members().len() as f64);
            // The low 48 bits, exact in a float: every process of a settled cluster shows the
            // same value.
            metrics::gauge!("chorus_ring_version").set((ring.version() & ((1 << 48) - 1)) as f64);
            *current = Arc::new(ring);
            true
        });
    };
    let stale_after = config.ttl * 2;
    loop {
        let mut watch = match store.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "membership watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                // The bucket may be gone (NATS restarted without persistence): make it again.
                if let Ok(again) = bucket(&client, &config).await {
                    store = again;
                }
                continue;
            }
        };
        // A fresh watch replays the current entries: rebuild from them.
        members.clear();
        let mut caught_up = false;
        let mut prune = tokio::time::interval(Duration::from_millis(500));
        loop {
            // An empty bucket replays nothing: treat a short silence as caught up.
            let idle = if caught_up {
                Duration::MAX
            } else {
                Duration::from_millis(250)
            };
            tokio::select! {
                entry = tokio::time::timeout(idle, watch.next()) => match entry {
                    Err(_) => {
                        caught_up = true;
                        publish(&members);
                        if let Some(r) = ready.take() { let _ = r.send(()); }
                    }
                    Ok(Some(Ok(entry))) => {
                        match entry.operation {
                            Operation::Put => match serde_json::from_slice::<Announcement>(&entry.value) {
                                Ok(a) if a.name == entry.key && valid_member_name(&a.name) => {
                                    members.insert(a.name.clone(), (Member { name: a.name, addr: a.addr }, Instant::now()));
                                }
                                _ => tracing::warn!(key = %entry.key, "ignoring a malformed router announcement"),
                            },
                            Operation::Delete | Operation::Purge => {
                                members.remove(&entry.key);
                            }
                        }
                        if entry.seen_current || entry.delta == 0 {
                            caught_up = true;
                        }
                        if caught_up {
                            publish(&members);
                            if let Some(r) = ready.take() { let _ = r.send(()); }
                        }
                    }
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "membership watch error; restarting the watch");
                        break;
                    }
                    Ok(None) => {
                        tracing::warn!("membership watch ended; restarting it");
                        break;
                    }
                },
                _ = prune.tick() => {
                    let before = members.len();
                    members.retain(|_, (_, seen)| seen.elapsed() < stale_after);
                    if members.len() != before && caught_up {
                        tracing::warn!("dropped routers whose heartbeats stopped without an expiry marker");
                        publish(&members);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A router's presence in the membership bucket: heartbeats until [`leave`](Self::leave) or
/// drop.
pub struct Announcer {
    store: kv::Store,
    name: String,
    task: Option<CancelOnDrop>,
}

impl Announcer {
    /// Announces `member` (with its process `instance` id) and keeps it fresh, storing the
    /// Unix ms of every accepted heartbeat in `last_ok`.
    pub async fn start(
        client: &async_nats::Client,
        config: MembershipConfig,
        member: Member,
        instance: String,
        last_ok: Arc<AtomicU64>,
    ) -> Result<Announcer, MembershipError> {
        if !valid_member_name(&member.name) {
            return Err(MembershipError::Name(member.name));
        }
        let store = bucket(client, &config).await?;
        let value = serde_json::to_vec(&Announcement {
            name: member.name.clone(),
            addr: member.addr.clone(),
            instance,
        })
        .expect("announcements serialize");
        let value = bytes::Bytes::from(value);
        store
            .put(&member.name, value.clone())
            .await
            .map_err(|e| MembershipError::Announce(e.to_string()))?;
        last_ok.store(chorus_core::time::now_ms(), Ordering::Release);
        let beat = {
            let mut store = store.clone();
            let name = member.name.clone();
            let last_ok = last_ok.clone();
            let every = config.ttl / 3;
            let client = client.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match tokio::time::timeout(every, store.put(&name, value.clone())).await {
                        Ok(Ok(_)) => last_ok.store(chorus_core::time::now_ms(), Ordering::Release),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "membership heartbeat failed");
                            // The bucket may be gone (NATS restarted without persistence).
                            if let Ok(again) = bucket(&client, &config).await {
                                store = again;
                            }
                        }
                        Err(_) => tracing::warn!("membership heartbeat timed out"),
                    }
                }
            })
        };
        Ok(Announcer {
            store,
            name: member.name,
            task: Some(CancelOnDrop(beat)),
        })
    }

    /// Stops heartbeating and removes this router from the ring at once.
    pub async fn leave(&mut self) {
        self.task.take();
        if let Err(e) = self.store.delete(&self.name).await {
            tracing::warn!(error = %e, "could not remove this router from membership; it expires on its own");
        }
    }
}
