//! The router API over gRPC (proto/chorus/v1/router.proto, compiled by build.rs with protox).
//!
//! - [`RouterGrpc`]: the server side, in front of any [`RouterClient`] (the in-process router).
//! - [`GrpcRouterClient`]: a [`RouterClient`] that calls a remote router, with a deadline on
//!   every call, so the gateway code is the same in both wirings.
//! - [`status`]: the one place where router errors become gRPC statuses and back.
//!
//! Not here: which router owns a room (the ring) or connection pooling across routers.

pub mod status;
pub mod trace;

mod client;
mod convert;
mod server;

pub use client::GrpcRouterClient;
pub use server::RouterGrpc;

/// Generated protobuf and tonic code for `chorus.v1`.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("chorus.v1");
}

pub use chorus_core::router::RouterClient;
