//! A registry of per-key actor tasks (one task per room), shared by the router's room actors
//! and the gateway's hub.
//!
//! The registry owns the map from key to the running task's command channel. A caller gets the
//! running task's handle or starts one ([`ActorRegistry::get_or_start`]); a task removes its own
//! entry when it stops ([`ActorRegistry::forget`] with its generation, so a stopping task never
//! removes its successor). A send to a task that is stopping fails (its receiver is closed or
//! dropped) and the caller retries, which starts a fresh task.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;

/// A running task's command channel and the generation that identifies it.
#[derive(Debug)]
pub struct ActorHandle<C> {
    pub generation: u64,
    pub commands: mpsc::Sender<C>,
}

impl<C> Clone for ActorHandle<C> {
    fn clone(&self) -> Self {
        ActorHandle {
            generation: self.generation,
            commands: self.commands.clone(),
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

    /// The running task for `key`, or a new one: `start` gets the new generation and the
    /// receiving end of a channel of `capacity` commands, and must spawn the task.
    pub fn get_or_start(
        &self,
        key: &K,
        capacity: usize,
        start: impl FnOnce(u64, mpsc::Receiver<C>),
    ) -> ActorHandle<C> {
        let mut tasks = self.lock();
        if let Some(h) = tasks.get(key).filter(|h| !h.commands.is_closed()) {
            return h.clone();
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (commands, rx) = mpsc::channel(capacity.max(1));
        let handle = ActorHandle {
            generation,
            commands,
        };
        tasks.insert(key.clone(), handle.clone());
        start(generation, rx);
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
        let mut first_rx = None;
        let first = reg.get_or_start(&"room", 4, |_, rx| first_rx = Some(rx));
        assert_eq!(reg.get(&"room").unwrap().generation, first.generation);
        drop(first_rx); // the first task stopped
        let second = reg.get_or_start(&"room", 4, |_, _rx| {});
        assert_ne!(second.generation, first.generation);
        reg.forget(&"room", first.generation);
        assert!(
            reg.get(&"room").is_none(),
            "second's receiver was dropped too"
        );
        let mut keep = None;
        let third = reg.get_or_start(&"room", 4, |_, rx| keep = Some(rx));
        reg.forget(&"room", first.generation);
        assert_eq!(reg.get(&"room").unwrap().generation, third.generation);
        reg.forget(&"room", third.generation);
        assert!(reg.get(&"room").is_none());
    }
}
