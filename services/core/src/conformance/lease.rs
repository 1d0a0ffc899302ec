//! The [`LeaseStore`](crate::lease::LeaseStore) suite.

use std::sync::Arc;

use super::LeaseUnderTest;
use crate::lease::{ClaimOutcome, SlotClaim};

fn held(holder: &str, epoch: u64) -> SlotClaim {
    SlotClaim {
        holder: holder.to_owned(),
        epoch,
        released: false,
    }
}

pub async fn first_claim_gets_epoch_one(t: &LeaseUnderTest) {
    let l = &t.leases;
    assert_eq!(l.claim_of(7).await.unwrap(), None);
    assert_eq!(
        l.claim(7, None, "r1").await.unwrap(),
        ClaimOutcome::Claimed { epoch: 1 }
    );
    assert_eq!(l.claim_of(7).await.unwrap(), Some(held("r1", 1)));
    // Another slot is untouched.
    assert_eq!(l.claim_of(8).await.unwrap(), None);
}

pub async fn claim_with_a_stale_expectation_is_lost(t: &LeaseUnderTest) {
    let l = &t.leases;
    l.claim(1, None, "r1").await.unwrap();
    // Someone who thinks the slot is still free loses and learns the current claim.
    assert_eq!(
        l.claim(1, None, "r2").await.unwrap(),
        ClaimOutcome::Lost(Some(held("r1", 1)))
    );
    // Taking over from the right expectation moves the epoch on.
    assert_eq!(
        l.claim(1, Some(&held("r1", 1)), "r2").await.unwrap(),
        ClaimOutcome::Claimed { epoch: 2 }
    );
    // The old expectation no longer matches: no one goes back to epoch 2.
    assert_eq!(
        l.claim(1, Some(&held("r1", 1)), "r3").await.unwrap(),
        ClaimOutcome::Lost(Some(held("r2", 2)))
    );
    // A wrong `released` flag is a mismatch too.
    let released = SlotClaim {
        released: true,
        ..held("r2", 2)
    };
    assert_eq!(
        l.claim(1, Some(&released), "r3").await.unwrap(),
        ClaimOutcome::Lost(Some(held("r2", 2)))
    );
}

pub async fn release_only_by_the_current_holder(t: &LeaseUnderTest) {
    let l = &t.leases;
    assert!(!l.release(3, "r1", 1).await.unwrap(), "nothing to release");
    l.claim(3, None, "r1").await.unwrap();
    assert!(!l.release(3, "r2", 1).await.unwrap(), "not the holder");
    assert!(!l.release(3, "r1", 2).await.unwrap(), "not the epoch");
    assert_eq!(l.claim_of(3).await.unwrap(), Some(held("r1", 1)));
    assert!(l.release(3, "r1", 1).await.unwrap());
    let released = SlotClaim {
        released: true,
        ..held("r1", 1)
    };
    assert_eq!(l.claim_of(3).await.unwrap(), Some(released.clone()));
    assert_eq!(
        l.claim(3, Some(&released), "r2").await.unwrap(),
        ClaimOutcome::Claimed { epoch: 2 }
    );
    assert_eq!(l.claim_of(3).await.unwrap(), Some(held("r2", 2)));
}

pub async fn concurrent_claims_have_one_winner(t: &LeaseUnderTest) {
    let l = &t.leases;
    l.claim(5, None, "old").await.unwrap();
    let expected = held("old", 1);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let l = Arc::clone(l);
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("r{i}");
            let outcome = l.claim(5, Some(&expected), &me).await.unwrap();
            (me, outcome)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (me, outcome) = task.await.unwrap();
        if outcome == (ClaimOutcome::Claimed { epoch: 2 }) {
            winners.push(me);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(l.claim_of(5).await.unwrap(), Some(held(&winners[0], 2)));
}

pub async fn sessions_renew_read_and_end(t: &LeaseUnderTest) {
    let l = &t.leases;
    assert_eq!(l.session_expiry("r1").await.unwrap(), None);
    l.renew_session("r1", 1_000).await.unwrap();
    l.renew_session("r2", 5_000).await.unwrap();
    assert_eq!(l.session_expiry("r1").await.unwrap(), Some(1_000));
    l.renew_session("r1", 2_000).await.unwrap();
    assert_eq!(l.session_expiry("r1").await.unwrap(), Some(2_000));
    l.end_session("r1").await.unwrap();
    assert_eq!(l.session_expiry("r1").await.unwrap(), None);
    assert_eq!(l.session_expiry("r2").await.unwrap(), Some(5_000));
}
