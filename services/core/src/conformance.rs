//! Conformance suites: one per contract, run against every implementation.
//!
//! A backend crate runs a suite from its tests with the matching macro, giving an async
//! expression that builds a fresh, empty instance:
//!
//! ```ignore
//! chorus_core::store_conformance_suite!(async { my_backend_under_test().await });
//! ```
//!
//! Each case becomes its own `#[tokio::test]`, so a failure names the broken rule. A new backend
//! is done when its suite passes.

pub mod bus;
pub mod lease;
pub mod router;
pub mod state;
pub mod store;

use std::{any::Any, sync::Arc};

use crate::{
    Message, RoomId, UserId, bus::DeliveryBus, lease::LeaseStore, router::RouterClient,
    state::RoomStateStore, store::MessageStore,
};

/// Keeps whatever a backend under test needs alive (a temporary directory, a keyspace).
pub type Guard = Box<dyn Any + Send + Sync>;

pub struct StoreUnderTest {
    pub store: Arc<dyn MessageStore>,
    pub guard: Guard,
}

pub struct StateUnderTest {
    pub state: Arc<dyn RoomStateStore>,
    pub guard: Guard,
}

pub struct LeaseUnderTest {
    pub leases: Arc<dyn LeaseStore>,
    pub guard: Guard,
}

pub struct BusUnderTest {
    pub bus: Arc<dyn DeliveryBus>,
    pub guard: Guard,
}

/// A router wiring and the bus it publishes on, so the suite can watch deliveries.
pub struct RouterUnderTest {
    pub router: Arc<dyn RouterClient>,
    pub bus: Arc<dyn DeliveryBus>,
    pub guard: Guard,
}

pub fn room(name: &str) -> RoomId {
    RoomId::new(name).expect("suite room names are valid")
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).expect("suite user names are valid")
}

pub fn msg(room_name: &str, seq: u64, from: &str, cmid: Option<&str>, body: &str) -> Message {
    Message {
        room: room(room_name),
        seq,
        ts: 1_700_000_000_000 + seq,
        from: user(from),
        client_msg_id: cmid.map(str::to_owned),
        body: body.to_owned(),
        ext: crate::Ext::default(),
        count: seq,
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:ident, $module:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let under_test: $crate::conformance::$harness = $make.await;
                $crate::conformance::$module::$case(&under_test).await;
                drop(under_test);
            }
        )*
    };
}

/// Runs the [`MessageStore`] suite; `$make` is an async expression giving a
/// [`StoreUnderTest`] with an empty store.
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(
                StoreUnderTest,
                store,
                $make,
                [
                    empty_room_reads_nothing,
                    appends_read_back_in_order_both_ways,
                    append_refuses_gaps_and_reuse_and_writes_nothing,
                    append_is_atomic_for_a_bad_batch,
                    idempotency_records_are_per_room_and_user,
                    rooms_are_independent_under_concurrent_appends,
                    reads_respect_limit,
                    messages_round_trip_exactly,
                    entries_of_every_kind_round_trip,
                    amend_replaces_entries_in_place,
                ]
            );
        }
    };
}

/// Runs the [`DeliveryBus`] suite; `$make` is an async expression giving a [`BusUnderTest`].
#[macro_export]
macro_rules! bus_conformance_suite {
    ($make:expr) => {
        mod bus_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(
                BusUnderTest,
                bus,
                $make,
                [
                    subscriber_receives_publishes_in_order,
                    subscription_sees_only_its_room,
                    every_subscriber_receives,
                    publish_without_subscribers_succeeds,
                    dropped_subscription_does_not_block_others,
                ]
            );
        }
    };
}

/// Runs the [`RouterClient`] suite; `$make` is an async expression giving a
/// [`RouterUnderTest`] on an empty store.
#[macro_export]
macro_rules! router_conformance_suite {
    ($make:expr) => {
        mod router_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(
                RouterUnderTest,
                router,
                $make,
                [
                    concurrent_senders_get_gapless_seqs_from_one,
                    send_batch_keeps_each_rooms_order,
                    resend_with_same_client_msg_id_is_idempotent,
                    client_msg_ids_are_scoped_per_user,
                    acks_come_after_delivery_order_is_fixed,
                    join_returns_last_seq_and_paged_backlog,
                    history_pages_both_ways,
                    timestamps_never_go_backwards,
                    bad_requests_are_refused,
                    events_reach_subscribers_and_are_not_stored,
                    bad_events_are_refused,
                    private_rooms_are_enforced_at_the_router,
                ]
            );
        }
    };
}

/// Runs the [`RoomStateStore`] suite; `$make` is an async expression giving a
/// [`StateUnderTest`] with no rooms.
#[macro_export]
macro_rules! state_conformance_suite {
    ($make:expr) => {
        mod state_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(
                StateUnderTest,
                state,
                $make,
                [
                    rooms_are_created_and_updated,
                    members_list_in_order_and_page,
                    removal_keeps_bans_mutes_and_read_marks,
                    room_lists_follow_membership,
                    read_marks_for_anyone,
                    rooms_are_independent,
                ]
            );
        }
    };
}

/// Runs the [`LeaseStore`] suite; `$make` is an async expression giving a [`LeaseUnderTest`]
/// with no claims and no sessions.
#[macro_export]
macro_rules! lease_conformance_suite {
    ($make:expr) => {
        mod lease_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!(
                LeaseUnderTest,
                lease,
                $make,
                [
                    first_claim_gets_epoch_one,
                    claim_with_a_stale_expectation_is_lost,
                    release_only_by_the_current_holder,
                    concurrent_claims_have_one_winner,
                    sessions_renew_read_and_end,
                ]
            );
        }
    };
}
