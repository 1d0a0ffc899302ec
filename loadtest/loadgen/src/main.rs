//! `chorus-loadgen`: load for the Chorus benchmarks (scripts/bench.sh).
//!
//! Modes:
//! - `idle`: hold N joined connections open until stdin closes (memory per idle connection);
//! - `fanout`: one sender, S subscribers in one room; throughput, order and send→deliver latency;
//! - `cluster`: senders on one gateway of a cluster, receivers on another, many rooms at a fixed
//!   rate; send→deliver latency across the cluster, and failover stalls when a router is killed;
//! - `subjects`: the NATS delivery bus's subject design at many rooms, against nats-server only
//!   (memory per subscription, fan-out cost); no Chorus server involved;
//! - `presence`: N members join one public room; presence diffs, their fan-out, `who` latency
//!   and churn;
//! - `unread`: N members of one room mark messages read; how fast marks are taken and stored,
//!   and `rooms` latency with every unread count checked, also for a user in many rooms.
//!
//! Tokens (every mode but subjects) are minted locally with the server's HS256 secret. Results
//! are `key=value` lines on stdout; progress and problems go to stderr; the exit status is
//! non-zero when anything was lost, duplicated, reordered or refused.

mod cluster;
mod conn;
mod fanout;
mod idle;
mod members;
mod peer;
mod presence;
mod proto;
mod stats;
mod subjects;
mod unread;

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::bail;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chorus-loadgen",
    version,
    about = "Load generator for Chorus benchmarks"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    mode: Mode,
}

/// How the WebSocket modes (all but `subjects`) reach a Chorus server.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Chorus server (every mode but subjects)")]
struct ServerArgs {
    /// WebSocket endpoint of the server (cluster: --send-url and --recv-url instead).
    #[arg(long, global = true, default_value = "ws://127.0.0.1:8080/v1/ws")]
    url: String,
    /// The server's HS256 JWT secret (tokens are minted locally).
    #[arg(long, global = true, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Connections being opened at once.
    #[arg(long, global = true, default_value_t = 200)]
    concurrency: usize,
    /// Attempts per connection on transient errors (refused, reset, timeout, HTTP 503).
    #[arg(long, global = true, default_value_t = 8)]
    connect_attempts: u32,
    /// Limit for one connection attempt (connect, upgrade, ready, join, joined), in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    connect_timeout_secs: u64,
    /// Prefix of the user ids the load generator connects as.
    #[arg(long, global = true, default_value = "lg")]
    user_prefix: String,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Open N connections joined to a room and hold them until stdin closes.
    Idle(idle::IdleArgs),
    /// One sender and S subscribers in a room: deliveries, order, throughput and latency.
    Fanout(fanout::FanoutArgs),
    /// Senders on one cluster gateway, receivers on another, many rooms at a fixed rate:
    /// send→deliver latency through the cluster, and stalls when a process is killed.
    Cluster(cluster::ClusterArgs),
    /// Per-room NATS subjects against a wildcard and per-gateway subjects: memory and fan-out
    /// cost at many rooms (talks to nats-server only).
    Subjects(subjects::SubjectsArgs),
    /// N members join one public room: presence diffs and their fan-out, `who` latency, churn.
    Presence(presence::PresenceArgs),
    /// N members of one room mark messages read: accepted and stored marks, `rooms` latency
    /// with unread counts checked, and a user in many rooms.
    Unread(unread::UnreadArgs),
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let server = &cli.server;
    match cli.mode {
        Mode::Idle(args) => idle::run(websocket_target(server)?, args, &server.user_prefix).await,
        Mode::Fanout(args) => {
            fanout::run(websocket_target(server)?, args, &server.user_prefix).await
        }
        Mode::Cluster(args) => {
            let send = websocket_target_at(server, &args.send_url)?;
            let recv = websocket_target_at(server, &args.recv_url)?;
            cluster::run(send, recv, args, &server.user_prefix).await
        }
        Mode::Subjects(args) => subjects::run(args).await,
        Mode::Presence(args) => {
            presence::run(websocket_target(server)?, args, &server.user_prefix).await
        }
        Mode::Unread(args) => {
            unread::run(websocket_target(server)?, args, &server.user_prefix).await
        }
    }
}

/// The Chorus server the WebSocket modes talk to, once the secret and user prefix are checked.
fn websocket_target(server: &ServerArgs) -> anyhow::Result<Arc<conn::Target>> {
    websocket_target_at(server, &server.url)
}

/// Like [`websocket_target`], at another URL (the cluster mode's two gateways).
fn websocket_target_at(server: &ServerArgs, url: &str) -> anyhow::Result<Arc<conn::Target>> {
    let Some(secret) = &server.secret else {
        bail!("no secret: pass --secret or set CHORUS_JWT_SECRET");
    };
    if secret.len() < 32 {
        bail!(
            "the secret must be at least 32 bytes, like the server's (got {})",
            secret.len()
        );
    }
    // Longest generated id is "<prefix>-idle-<n>" / "<prefix>-sub-<n>": keep them valid.
    let longest = format!("{}-idle-{}", server.user_prefix, usize::MAX);
    if !proto::valid_user(&server.user_prefix) || longest.len() > 64 {
        bail!("--user-prefix must be a short user id of [A-Za-z0-9_.@-] (at most 33 characters)");
    }
    Ok(Arc::new(conn::Target {
        url: url.to_owned(),
        key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        concurrency: server.concurrency,
        attempts: server.connect_attempts,
        attempt_timeout: Duration::from_secs(server.connect_timeout_secs.max(1)),
        token_ttl_secs: 24 * 3600,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
