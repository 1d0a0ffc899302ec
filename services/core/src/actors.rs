//! A registry of per-key actor tasks (one task per room), shared by the router's room actors
//! and the gateway's hub.
//!
//! The registry owns the map from key to the running task's command channel. A caller gets the
//! running task's handle or starts one ([`ActorRegistry::get_or_start`]); a task removes its own
//! entry when it stops ([`ActorRegistry::forget`] with its generation, so a stopping task never
//! removes its successor). A send to a task that is stopping fails (its receiver is closed or
//! dropped) and the caller retries, which starts a fresh task.
//!
//! **At most one task per key works at a time.** A task that stops closes its channel first and
//! then finishes what was queued; a successor started meanwhile gets the predecessor's
//! [`Finished`] and must [`Finished::wait`] before it touches shared state.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{mpsc, watch};

/// Resolves once a task has stopped: it holds the matching [`FinishGuard`] until it returns.
#[derive(Debug, Clone)]
pub struct Finished(watch::Receiver<()>);

impl Finished {
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// Held by a running task; dropping it (when the task returns) resolves its [`Finished`].
#[derive(Debug)]
pub struct FinishGuard(#[allow(dead_code, reason = "held for its drop")] watch::Sender<()>);

/// What `start` gets to spawn a new task.
#[derive(Debug)]
pub struct ActorStart<C> {
    pub generation: u64,
    pub commands: mpsc::Receiver<C>,
    /// The previous task for this key if it may still be finishing its queue.
    pub predecessor: Option<Finished>,
    /// Hold until the task returns.
    pub guard: FinishGuard,
}

/// A running task's command channel and the generation that identifies it.
#[derive(Debug)]
pub struct ActorHandle<C> {
    pub generation: u64,
    pub commands: mpsc::Sender<C>,
    finished: Finished,
}

impl<C> Clone for ActorHandle<C> {
    fn clone(&self) -> Self {
        ActorHandle {
            generation: self.generation,
            commands: self.commands.clone(),
            finished: self.finished.clone(),
        }
    }
}

#[derive(Debug)]
pub struct ActorRegistry<K, C> {
    tasks: Mutex<HashMap<K, ActorHandle<C>>>,
    next_generation: AtomicU64,
}

impl<K: Hash + Eq + Clone, C> Default for ActorRegistry<K, C> {
    fn default() -> Self {
        ActorRegistry {
            tasks: Mutex::default(),
            next_generation: AtomicU64::new(1),
        }
    }
}

impl<K: Hash + Eq + Clone, C> ActorRegistry<K, C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, ActorHandle<C>>> {
        self.tasks
            .lock()
            .expect("actor registry lock is never held across a panic")
    }

    /// The running task for `key`, if any.
    pub fn get(&self, key: &K) -> Option<ActorHandle<C>> {
        self.lock()
            .get(key)
            .filter(|h| !h.commands.is_closed())
            .cloned()
    }

    /// The running task for `key`, or a new one: `start` gets what it needs to spawn the task
    /// (a channel of `capacity` commands, the predecessor to wait for) and must spawn it.
    pub fn get_or_start(
        &self,
        key: &K,
        capacity: usize,
        start: impl FnOnce(ActorStart<C>),
    ) -> ActorHandle<C> {
        let mut tasks = self.lock();
        let predecessor = match tasks.get(key) {
            Some(h) if !h.commands.is_closed() => return h.clone(),
            Some(stopping) => Some(stopping.finished.clone()),
            None => None,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (commands, rx) = mpsc::channel(capacity.max(1));
        let (done_tx, done_rx) = watch::channel(());
        let handle = ActorHandle {
            generation,
            commands,
            finished: Finished(done_rx),
        };
        tasks.insert(key.clone(), handle.clone());
        start(ActorStart {
            generation,
            commands: rx,
            predecessor,
            guard: FinishGuard(done_tx),
        });
        handle
    }

    /// Removes `key` if its entry is still the task of `generation`.
    pub fn forget(&self, key: &K, generation: u64) {
        let mut tasks = self.lock();
        if tasks.get(key).is_some_and(|h| h.generation == generation) {
            tasks.remove(key);
        }
    }

    /// Drops every handle: tasks see their channel close once in-flight callers are done.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopping_task_never_removes_its_successor() {
        let reg: ActorRegistry<&str, u8> = ActorRegistry::default();
        let mut first_start = None;
        let first = reg.get_or_start(&"room", 4, |s| first_start = Some(s));
        assert_eq!(reg.get(&"room").unwrap().generation, first.generation);
        assert!(first_start.as_ref().unwrap().predecessor.is_none());
        drop(first_start); // the first task stopped
        let mut second_start = None;
        let second = reg.get_or_start(&"room", 4, |s| second_start = Some(s));
        assert_ne!(second.generation, first.generation);
        reg.forget(&"room", first.generation);
        assert_eq!(reg.get(&"room").unwrap().generation, second.generation);
        reg.forget(&"room", second.generation);
        assert!(reg.get(&"room").is_none());
    }

    #[tokio::test]
    async fn a_successor_waits_for_its_predecessor_to_finish() {
        let reg: ActorRegistry<&str, u8> = ActorRegistry::default();
        let mut first = None;
        reg.get_or_start(&"room", 4, |s| first = Some(s));
        let ActorStart {
            mut commands,
            guard,
            ..
        } = first.unwrap();
        commands.close(); // stopping: closed, still draining its queue
        let mut second = None;
        reg.get_or_start(&"room", 4, |s| second = Some(s));
        let predecessor = second
            .unwrap()
            .predecessor
            .expect("the stopping task is the predecessor");
        let waiting = tokio::spawn(predecessor.wait());
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the successor waits while the predecessor drains"
        );
        drop(guard);
        waiting.await.unwrap();
    }
}
