//! Delivery from the router that sequences a room to every gateway with subscribers in it:
//! the [`DeliveryBus`] contract.

pub mod memory;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::RoomId;

/// The seq of an ephemeral delivery (a room event): not in the log, never gap-checked or
/// backfilled, just relayed to whoever subscribes at the time.
pub const EPHEMERAL_SEQ: u64 = 0;

/// One sequenced message on its way to subscribers: the room, its seq, and the protocol v1
/// `msg` frame already serialized (shared by every recipient). A seq of [`EPHEMERAL_SEQ`]
/// marks an ephemeral event frame instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub room: RoomId,
    pub seq: u64,
    pub frame: Bytes,
    /// The publish span's context (W3C `traceparent`), when tracing is on: NATS carries it in
    /// a header, the in-process bus in this field. Not part of the frame clients receive.
    pub trace: Option<crate::trace::TraceParent>,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    Delivery(Delivery),
    /// The bus knows it dropped deliveries for this subscription (slow consumer, reconnect).
    /// The subscriber must recover from the log: it cannot tell which seqs were lost, nor
    /// whether the newest ones were.
    Lagged,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// A live subscription to one room. Dropping it unsubscribes.
pub type Subscription = Pin<Box<dyn Stream<Item = BusEvent> + Send>>;

/// Fan-out of sequenced messages to the gateways.
///
/// Contract (checked by the `conformance::bus` suite for every backend):
/// - **At most once**: a delivery may be lost (subscribers detect the hole by seq, or by a
///   [`BusEvent::Lagged`], and backfill from the log). It is never invented or altered.
/// - **Order**: deliveries published for a room by one publisher arrive in publish order.
/// - **Subscription point**: once [`subscribe`](Self::subscribe) has returned, every later
///   publish for that room reaches the subscription (unless lost as above).
/// - **Isolation**: a subscription sees only its room.
/// - **Cost**: one subscription per room per gateway, however many clients there watch it;
///   `publish` never waits for subscribers (a slow one lags, it does not slow the room).
#[async_trait]
pub trait DeliveryBus: Send + Sync + 'static {
    /// The messaging system, as traces name it (`messaging.system`).
    fn system(&self) -> &'static str {
        "chorus"
    }
    async fn publish(&self, delivery: Delivery) -> Result<(), BusError>;
    async fn subscribe(&self, room: &RoomId) -> Result<Subscription, BusError>;
}
