//! The cluster's delivery bus on core NATS (at most once, as the [`DeliveryBus`] contract
//! allows).
//!
//! - **Subjects**: `{prefix}.room.{room}`, one per room. A room name may contain `.`, which
//!   NATS reads as a token separator, so dots are written as `~` (a character room names
//!   cannot contain): the mapping stays one-to-one and every subject is a plain literal.
//! - **Payload**: the `msg` frame exactly as clients receive it; the seq travels in the
//!   `Chorus-Seq` header so a gateway never parses JSON to route. A traced delivery also
//!   carries the publish span's W3C `traceparent` header.
//! - **Subscribed means registered**: `subscribe` returns only after a round trip through the
//!   server, so a publish that follows can never miss the new subscription.
//! - **Publishing never flushes**: the client batches writes itself (a flush per publish costs
//!   a round trip each).
//! - **Subscribing flushes once**, so the server has registered the subscription before
//!   `subscribe` returns, as the contract requires.
//! - **Loss is reported**: when the client reconnects (messages in between are gone) or the
//!   server flags a slow consumer, every subscription yields [`BusEvent::Lagged`] and the hub
//!   recovers from the log.
//!
//! Not here: which gateways subscribe to which rooms (the hub decides), ownership of rooms, and
//! membership (separate).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use async_trait::async_trait;
use chorus_core::{
    RoomId,
    bus::{BusError, BusEvent, Delivery, DeliveryBus, Subscription},
    trace::TraceParent,
};
use futures_util::StreamExt;
use tokio::sync::broadcast;

/// The header carrying a delivery's seq.
pub const SEQ_HEADER: &str = "Chorus-Seq";
/// The header carrying a delivery's trace context (W3C Trace Context's name for it).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A connected NATS delivery bus. Cheap to clone (the client is shared).
#[derive(Clone)]
pub struct NatsBus {
    client: Client,
    prefix: String,
    /// Signalled when deliveries may have been lost for every subscription of this client.
    losses: broadcast::Sender<()>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to NATS at {url}: {source}")]
    Nats {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("invalid subject prefix {0:?}: use letters, digits, '-', '_' and single dots")]
    Prefix(String),
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl NatsBus {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`); every subject starts with `prefix`
    /// (e.g. `chorus`), so several clusters or tests can share one NATS.
    pub async fn connect(url: &str, prefix: &str) -> Result<NatsBus, ConnectError> {
        if !valid_prefix(prefix) {
            return Err(ConnectError::Prefix(prefix.to_owned()));
        }
        let (losses, _) = broadcast::channel(16);
        let signal = losses.clone();
        // The first `Connected` is the initial connection; later ones are reconnects.
        let connected_before = Arc::new(AtomicBool::new(false));
        let client = ConnectOptions::new()
            .name("chorus")
            .event_callback(move |event| {
                let signal = signal.clone();
                let connected_before = connected_before.clone();
                async move {
                    let lost = match event {
                        // Reconnected: whatever was published while we were away is lost.
                        Event::Connected => connected_before.swap(true, Ordering::AcqRel),
                        Event::SlowConsumer(_) => true,
                        _ => false,
                    };
                    match event {
                        _ if lost => {
                            tracing::warn!(%event, "nats: deliveries may have been lost; subscribers resync");
                            let _ = signal.send(());
                        }
                        Event::Disconnected => tracing::warn!("nats: disconnected"),
                        other => tracing::debug!(event = %other, "nats event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|source| ConnectError::Nats { url: url.to_owned(), source })?;
        Ok(NatsBus {
            client,
            prefix: prefix.to_owned(),
            losses,
        })
    }

    /// The underlying connection, shared with other users of NATS in the process (cluster
    /// membership).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns once the server has processed everything this client sent before, including
    /// a new subscription. `flush` only writes to the socket; a request to a subject nobody
    /// serves makes the server answer (no responders) after it has read what came first on
    /// this connection.
    async fn registered(&self) -> Result<(), BusError> {
        let probe = format!("{}.sync", self.prefix);
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.client.request(probe, Default::default()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("the server did not confirm a subscription")),
        }
    }

    /// The subject of `room`'s deliveries.
    pub fn subject(&self, room: &RoomId) -> String {
        format!("{}.room.{}", self.prefix, room.as_str().replace('.', "~"))
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[async_trait]
impl DeliveryBus for NatsBus {
    fn system(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, delivery: Delivery) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert(SEQ_HEADER, delivery.seq.to_string().as_str());
        if let Some(trace) = &delivery.trace {
            headers.insert(TRACEPARENT_HEADER, trace.as_str());
        }
        self.client
            .publish_with_headers(self.subject(&delivery.room), headers, delivery.frame)
            .await
            .map_err(unavailable)
    }

    async fn subscribe(&self, room: &RoomId) -> Result<Subscription, BusError> {
        let losses = self.losses.subscribe();
        let subscriber = self
            .client
            .subscribe(self.subject(room))
            .await
            .map_err(unavailable)?;
        self.registered().await?;
        let room = room.clone();
        let deliveries = subscriber.filter_map(move |m| {
            let room = room.clone();
            async move {
                let headers = m.headers.as_ref()?;
                let seq = headers.get(SEQ_HEADER)?.as_str().parse::<u64>().ok();
                // A malformed trace context is ignored, never a reason to drop a delivery.
                let trace = headers
                    .get(TRACEPARENT_HEADER)
                    .and_then(|v| TraceParent::parse(v.as_str()));
                match seq {
                    Some(seq) => Some(BusEvent::Delivery(Delivery {
                        room,
                        seq,
                        frame: m.payload,
                        trace,
                    })),
                    None => {
                        tracing::warn!(subject = %m.subject, "nats: delivery without a valid seq header dropped");
                        None
                    }
                }
            }
        });
        let lagged = futures_util::stream::unfold(losses, |mut rx| async move {
            match rx.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((BusEvent::Lagged, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Box::pin(futures_util::stream::select(deliveries, lagged)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("chorus"));
        assert!(valid_prefix("test-1.run_2"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a..b"));
        assert!(!valid_prefix("a.*"));
        assert!(!valid_prefix("a b"));
    }
}
