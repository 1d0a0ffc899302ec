//! Which rooms this router may serve, and the fence around its appends.
//!
//! The standalone wiring owns every room ([`SoleOwner`]). The cluster wiring decides by the
//! ring and fences appends with slot claims and a session (chorus-cluster; ADR 0004).

use async_trait::async_trait;
use chorus_core::{RoomId, router::RouterError};

/// Keeps an append's ownership in force while it is held, and says whether it still is.
pub trait Fence: Send + Sync {
    /// True while the owner may still acknowledge what it appended under this permit.
    fn valid(&self) -> bool;
}

/// Leave to append to a room: taken before the append, checked again before acknowledging.
pub struct AppendPermit {
    /// The room's ownership epoch. When it changes, another router may have appended in
    /// between, so the room's head must be read again.
    pub epoch: u64,
    fence: Option<Box<dyn Fence>>,
}

impl AppendPermit {
    /// A permit that never lapses (sole owner).
    pub fn unfenced(epoch: u64) -> Self {
        AppendPermit { epoch, fence: None }
    }

    pub fn fenced(epoch: u64, fence: Box<dyn Fence>) -> Self {
        AppendPermit {
            epoch,
            fence: Some(fence),
        }
    }

    pub fn valid(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.valid())
    }
}

#[async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// Whether this router serves `room` now (a cheap, local check made on every request).
    /// Fails with [`RouterError::NotOwner`] otherwise.
    fn check(&self, room: &RoomId) -> Result<(), RouterError>;

    /// Waits until this router may append to `room` (taking ownership over if it must) and
    /// returns the permit to hold during the append.
    async fn permit(&self, room: &RoomId) -> Result<AppendPermit, RouterError>;

    /// Called at router shutdown once every room has stopped: hand everything over.
    async fn shutdown(&self) {}

    /// Changes whenever the set of rooms this router serves may have changed (the ring
    /// version). Room state cached under an older value may predate another owner's writes.
    fn version(&self) -> u64 {
        0
    }
}

/// Owns every room: one router process, nothing to fence against.
#[derive(Debug, Default)]
pub struct SoleOwner;

#[async_trait]
impl Ownership for SoleOwner {
    fn check(&self, _room: &RoomId) -> Result<(), RouterError> {
        Ok(())
    }

    async fn permit(&self, _room: &RoomId) -> Result<AppendPermit, RouterError> {
        Ok(AppendPermit::unfenced(0))
    }
}
