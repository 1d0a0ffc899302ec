//! Command-line flags and their environment variables (docs/configuration.md lists them all).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chorus_gateway::{GatewayConfig, auth::parse_duration};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Chorus: a horizontally sharded chat server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `chorus_gateway=debug,info`.
    #[arg(long, env = "CHORUS_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log line format.
    #[arg(long, env = "CHORUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway and the router in one process on an embedded store.
    Standalone(StandaloneArgs),
    /// Print a JWT for a user, signed with CHORUS_JWT_SECRET.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Address to listen on for WebSocket clients, health and metrics.
    #[arg(long, env = "CHORUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "CHORUS_DATA_DIR", default_value = "./chorus-data")]
    pub data_dir: PathBuf,
    /// HS256 secret for client tokens, at least 32 bytes.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Development mode: without a secret, generate one (kept in the data directory) and
    /// print how to mint tokens with it. Never use in production.
    #[arg(long)]
    pub dev: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user the token is for (its `sub` claim).
    #[arg(long)]
    pub user: String,
    /// How long the token is valid, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// HS256 secret the server uses.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
}

/// Per-connection limits and timings of a gateway.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest message body in bytes; larger sends get `too_large`.
    #[arg(long, env = "CHORUS_MAX_BODY_BYTES", default_value_t = GatewayConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest WebSocket frame in bytes; a larger frame closes the connection with 1009.
    #[arg(long, env = "CHORUS_MAX_FRAME_BYTES", default_value_t = GatewayConfig::default().max_frame_bytes)]
    pub max_frame_bytes: usize,
    /// Rooms one connection may join at once.
    #[arg(long, env = "CHORUS_MAX_ROOMS_PER_CONN", default_value_t = GatewayConfig::default().max_rooms_per_conn)]
    pub max_rooms_per_conn: usize,
    /// Sustained sends per second per connection.
    #[arg(long, env = "CHORUS_SEND_RATE", default_value_t = GatewayConfig::default().send_rate)]
    pub send_rate: f64,
    /// Burst of sends allowed per connection.
    #[arg(long, env = "CHORUS_SEND_BURST", default_value_t = GatewayConfig::default().send_burst)]
    pub send_burst: u32,
    /// Requests (sends, history reads) one connection may have in flight.
    #[arg(long, env = "CHORUS_MAX_IN_FLIGHT", default_value_t = GatewayConfig::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Bytes queued for one connection before it is closed as a slow consumer (4008).
    #[arg(long, env = "CHORUS_OUTBOUND_QUEUE_BYTES", default_value_t = GatewayConfig::default().outbound_queue_bytes)]
    pub outbound_queue_bytes: usize,
    /// Time a client has to authenticate when the upgrade carried no token.
    #[arg(long, env = "CHORUS_AUTH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub auth_timeout: Duration,
    /// Interval of server pings; a connection silent for two intervals is dropped.
    #[arg(long, env = "CHORUS_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Open WebSocket connections accepted at once; more get HTTP 503.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS", default_value_t = GatewayConfig::default().max_connections)]
    pub max_connections: usize,
    /// Per-connection WebSocket read buffer in bytes (grows for larger frames).
    #[arg(long, env = "CHORUS_WS_READ_BUFFER_BYTES", default_value_t = GatewayConfig::default().read_buffer_bytes)]
    pub ws_read_buffer_bytes: usize,
    /// How long shutdown waits for connections to close.
    #[arg(long, env = "CHORUS_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl LimitArgs {
    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            max_body_bytes: self.max_body_bytes,
            max_frame_bytes: self.max_frame_bytes,
            max_rooms_per_conn: self.max_rooms_per_conn,
            send_rate: self.send_rate,
            send_burst: self.send_burst,
            max_in_flight: self.max_in_flight,
            outbound_queue_bytes: self.outbound_queue_bytes,
            auth_timeout: self.auth_timeout,
            ping_interval: self.ping_interval,
            max_connections: self.max_connections,
            drain_timeout: self.drain_timeout,
            read_buffer_bytes: self.ws_read_buffer_bytes,
            ..GatewayConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn flag_defaults_are_the_gateway_defaults() {
        use clap::Parser;
        let cli = super::Cli::parse_from(["chorus", "standalone"]);
        let super::Command::Standalone(args) = cli.command else {
            panic!("parsed another command")
        };
        let ours = format!("{:?}", args.limits.gateway_config());
        assert_eq!(
            ours,
            format!("{:?}", chorus_gateway::GatewayConfig::default())
        );
    }
}
