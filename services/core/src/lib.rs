//! Chorus core: the domain types (rooms, users, messages), the client protocol v1, the wire
//! error vocabulary, and the three contracts the gateway and router are written against:
//! [`store::MessageStore`], [`bus::DeliveryBus`] and [`router::RouterClient`].
//!
//! This crate does no I/O of its own except the in-process bus ([`bus::memory`]), which is the
//! standalone wiring's delivery bus. Backends live in their own crates and prove themselves
//! against the suites in `conformance` (feature `conformance`).

pub mod actors;
pub mod bus;
pub mod ids;
pub mod lease;
pub mod message;
pub mod protocol;
pub mod router;
pub mod state;
pub mod store;
pub mod time;
pub mod trace;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use ids::{DM_PREFIX, IdError, RoomId, UserId, dm_room};
pub use message::{
    Attachment, Ext, Json, Kind, MemberAction, MemberChange, Message, Role, Visibility,
};
