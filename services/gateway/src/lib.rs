//! The gateway: holds WebSocket clients, authenticates them, enforces per-connection limits,
//! forwards requests to the router that owns each room, and fans deliveries out to local
//! subscribers.
//!
//! - [`server`]: HTTP routes (`/v1/ws`, `/healthz`, `/readyz`, `/metrics`) and the drain.
//! - [`conn`]: one task per connection, the protocol v1 state machine, over a WebSocket or
//!   the [`sse`] fallback transport.
//! - [`web`]: `/v1/info`, the development sign-in, the embedded web app and SDK, CORS.
//! - [`hub`]: one task per room with local subscribers: a single bus subscription per room,
//!   gap detection and backfill, and the race-free hand-over from backlog to live.
//! - [`outbox`]: the bounded queue between the hub and a connection.
//!
//! It keeps no durable state and owns no room: everything a client sees comes from the router
//! and the room log, so any gateway can serve any client after a reconnect.

pub mod auth;
pub mod config;
pub mod conn;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod server;
pub mod sse;
pub mod web;

pub use auth::Authenticator;
pub use config::GatewayConfig;
pub use server::{Gateway, GatewayHandle};
