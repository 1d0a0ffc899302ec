//! Chorus cluster wiring (ADR 0004, ADR 0005):
//! - [`ring`]: rooms → slots → routers on a consistent-hash ring with a version;
//! - [`membership`]: routers announce themselves in a NATS key-value bucket with TTL
//!   heartbeats; every process watches it and builds the same ring;
//! - [`ownership`]: a router serves only its ring's slots, claims each one in the lease store
//!   before appending, and hands it over when the ring moves it;
//! - [`client`]: the gateway's router client, routing every room to its owner over pooled
//!   gRPC channels and following the ring through not-owner replies.

pub mod client;
pub mod membership;
pub mod ownership;
pub mod ring;

/// Aborts a background task when its owner goes away.
pub(crate) struct CancelOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A process-unique id for this router's ownership session: its name plus random bits, so a
/// restarted router never mistakes its predecessor's claims for its own.
pub fn session_id(name: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!("{name}/{:016x}", u64::from_le_bytes(bytes))
}
