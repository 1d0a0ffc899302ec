//! The in-process delivery bus of the standalone wiring: one bounded broadcast channel per
//! room with subscribers.
//!
//! It drops nothing while subscribers keep up; a subscriber more than `capacity` deliveries
//! behind gets [`BusEvent::Lagged`] and recovers from the log, so publishers never wait.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{BusError, BusEvent, Delivery, DeliveryBus, Subscription};
use crate::RoomId;

/// Deliveries a subscriber may fall behind before it lags.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Shared by the router (publisher) and the gateway hub (subscriber) of one process. A room's
/// channel is created by the first subscription and removed by the first publish that finds no
/// receiver left.
#[derive(Clone)]
pub struct MemoryBus {
    rooms: Arc<Mutex<HashMap<RoomId, broadcast::Sender<Delivery>>>>,
    capacity: usize,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryBus {
    pub fn new(capacity: usize) -> Self {
        MemoryBus {
            rooms: Arc::default(),
            capacity: capacity.max(1),
        }
    }
}

#[async_trait]
impl DeliveryBus for MemoryBus {
    async fn publish(&self, delivery: Delivery) -> Result<(), BusError> {
        let mut rooms = self
            .rooms
            .lock()
            .expect("bus map lock is never held across a panic");
        if let Some(tx) = rooms.get(&delivery.room) {
            if tx.receiver_count() == 0 {
                rooms.remove(&delivery.room);
            } else {
                // An error means every receiver went away meanwhile: at most once allows it.
                let _ = tx.send(delivery);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, room: &RoomId) -> Result<Subscription, BusError> {
        let rx = {
            let mut rooms = self
                .rooms
                .lock()
                .expect("bus map lock is never held across a panic");
            rooms
                .entry(room.clone())
                .or_insert_with(|| broadcast::channel(self.capacity).0)
                .subscribe()
        };
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                match rx.recv().await {
                    Ok(d) => Some((BusEvent::Delivery(d), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => Some((BusEvent::Lagged, rx)),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            },
        )))
    }
}
