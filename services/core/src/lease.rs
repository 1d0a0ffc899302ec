//! Room ownership records: the [`LeaseStore`] contract (docs/adr/0004-room-ownership.md).
//!
//! Rooms map to a fixed number of *slots*; the ring gives each slot an owner router. Before a
//! router appends to any room of a slot it must *claim* the slot here, and it may append only
//! while its *session* (a heartbeat with an expiry, one per router process) is alive. A router
//! takes a slot from another holder only once that holder released it or its session expired
//! (plus a safety margin), so two routers never sequence one room at once.
//!
//! Claims change only when ownership moves (a compare-and-set, a lightweight transaction in
//! CQL); sessions are renewed by a plain write of the holder's own row. Nothing here is on the
//! per-message path.

pub mod memory;

use async_trait::async_trait;

use crate::store::StoreError;

/// Who holds a slot, from which ownership epoch, and whether they let it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaim {
    /// The holder's session id (one per router process).
    pub holder: String,
    /// Starts at 1 and grows by one with every claim of the slot.
    pub epoch: u64,
    /// The holder handed the slot over (graceful move or shutdown); anyone may claim it.
    pub released: bool,
}

/// The outcome of a [`LeaseStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The slot is now held by the claimant at this epoch.
    Claimed { epoch: u64 },
    /// The slot's claim was not the expected one; this is the current claim (`None`: none).
    Lost(Option<SlotClaim>),
}

/// Durable ownership records shared by every router of a cluster.
///
/// Contract (checked by the `conformance::lease` suite for every backend):
/// - **Compare-and-set claims**: [`claim`](Self::claim) succeeds only if the slot's current
///   claim equals `expected` exactly (holder, epoch and released; `None` = never claimed), and
///   then sets `holder` at `expected.epoch + 1` (1 for a first claim), not released. Of any
///   number of concurrent claims with the same `expected`, at most one succeeds.
/// - **Release** marks the claim released only if it is still `(holder, epoch)`; it never
///   changes another holder's claim.
/// - **Sessions**: [`renew_session`](Self::renew_session) overwrites the holder's expiry;
///   [`end_session`](Self::end_session) removes it; [`session_expiry`](Self::session_expiry)
///   reads it back. Only a holder writes its own session.
/// - **Reads see completed writes** (linearizable for claims), and every operation is bounded
///   by a timeout that surfaces as [`StoreError::Unavailable`].
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Records that `holder` is alive until `expires_ms` (Unix milliseconds).
    async fn renew_session(&self, holder: &str, expires_ms: u64) -> Result<(), StoreError>;

    /// When `holder`'s session expires; `None` if it has none.
    async fn session_expiry(&self, holder: &str) -> Result<Option<u64>, StoreError>;

    /// Removes `holder`'s session (graceful shutdown, after releasing its slots).
    async fn end_session(&self, holder: &str) -> Result<(), StoreError>;

    /// The current claim of `slot`, if it was ever claimed.
    async fn claim_of(&self, slot: u32) -> Result<Option<SlotClaim>, StoreError>;

    /// Claims `slot` for `holder` if its current claim is exactly `expected`.
    async fn claim(
        &self,
        slot: u32,
        expected: Option<&SlotClaim>,
        holder: &str,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Releases `slot` if `holder` still holds it at `epoch`; returns whether it did.
    async fn release(&self, slot: u32, holder: &str, epoch: u64) -> Result<bool, StoreError>;
}
