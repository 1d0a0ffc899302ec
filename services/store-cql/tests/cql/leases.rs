//! Lightweight-transaction answers the lease suite does not reach.

use chorus_core::lease::{ClaimOutcome, LeaseStore, SlotClaim};
use chorus_store_cql::{CqlStore, DEFAULT_BUCKET_SIZE};

use super::support::Keyspace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expecting_a_claim_on_a_slot_never_claimed_is_lost_to_none() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let ghost = SlotClaim {
        holder: "r1".into(),
        epoch: 1,
        released: false,
    };
    assert_eq!(
        store.claim(9, Some(&ghost), "r2").await.unwrap(),
        ClaimOutcome::Lost(None)
    );
    assert!(!store.release(9, "r1", 1).await.unwrap());
    assert_eq!(store.claim_of(9).await.unwrap(), None);
    // Slots above i32::MAX do not fit the table: refused, not wrapped onto another slot.
    assert!(store.claim_of(u32::MAX).await.is_err());
}
