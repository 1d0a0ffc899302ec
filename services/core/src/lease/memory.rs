//! An in-process [`LeaseStore`]: for tests of the ownership logic and single-process wirings.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use super::{ClaimOutcome, LeaseStore, SlotClaim};
use crate::store::StoreError;

#[derive(Debug, Default)]
pub struct MemoryLeases {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, u64>,
    claims: HashMap<u32, SlotClaim>,
}

impl MemoryLeases {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl LeaseStore for MemoryLeases {
    async fn renew_session(&self, holder: &str, expires_ms: u64) -> Result<(), StoreError> {
        self.state().sessions.insert(holder.to_owned(), expires_ms);
        Ok(())
    }

    async fn session_expiry(&self, holder: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.state().sessions.get(holder).copied())
    }

    async fn end_session(&self, holder: &str) -> Result<(), StoreError> {
        self.state().sessions.remove(holder);
        Ok(())
    }

    async fn claim_of(&self, slot: u32) -> Result<Option<SlotClaim>, StoreError> {
        Ok(self.state().claims.get(&slot).cloned())
    }

    async fn claim(
        &self,
        slot: u32,
        expected: Option<&SlotClaim>,
        holder: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.state();
        let current = state.claims.get(&slot);
        if current != expected {
            return Ok(ClaimOutcome::Lost(current.cloned()));
        }
        let epoch = expected.map_or(1, |c| c.epoch + 1);
        state.claims.insert(
            slot,
            SlotClaim {
                holder: holder.to_owned(),
                epoch,
                released: false,
            },
        );
        Ok(ClaimOutcome::Claimed { epoch })
    }

    async fn release(&self, slot: u32, holder: &str, epoch: u64) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.claims.get_mut(&slot) {
            Some(c) if c.holder == holder && c.epoch == epoch => {
                c.released = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
