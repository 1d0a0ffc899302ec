//! Command-line flags and their environment variables (docs/configuration.md lists them all).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chorus_gateway::{GatewayConfig, auth::parse_duration};
use chorus_router::RouterConfig;
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
    /// Run a cluster gateway: WebSocket clients in, gRPC to the routers, NATS deliveries out.
    Gateway(GatewayArgs),
    /// Run a cluster router: owns the rooms the ring gives it, writes them to the database.
    Router(RouterArgs),
    /// Create the keyspace and apply the CQL schema migrations (idempotent).
    Migrate(MigrateArgs),
    /// Print a JWT for a user, signed with CHORUS_JWT_SECRET.
    Token(TokenArgs),
    /// Send messages to a room: TEXT, or each non-empty line of stdin; one line per ack.
    Send(SendArgs),
    /// Print a room's messages as they arrive, resuming after any disconnect.
    Tail(TailArgs),
}

/// How a cluster process finds the others.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// NATS server URL (deliveries and router membership).
    #[arg(long, env = "CHORUS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Prefix of every NATS subject and bucket of this cluster; clusters sharing a NATS need
    /// different prefixes.
    #[arg(long, env = "CHORUS_CLUSTER_PREFIX", default_value = "chorus")]
    pub cluster_prefix: String,
    /// A router whose heartbeats stop for this long leaves the ring.
    #[arg(long, env = "CHORUS_MEMBER_TTL", default_value = "3s", value_parser = parse_duration)]
    pub member_ttl: Duration,
}

impl ClusterArgs {
    pub fn membership(&self) -> chorus_cluster::membership::MembershipConfig {
        chorus_cluster::membership::MembershipConfig {
            prefix: self.cluster_prefix.clone(),
            ttl: self.member_ttl,
        }
    }
}

/// The CQL database (ScyllaDB or Apache Cassandra).
#[derive(Debug, Clone, Args)]
pub struct CqlArgs {
    /// Comma-separated `host:port` contact points.
    #[arg(
        long,
        env = "CHORUS_CQL_CONTACT_POINTS",
        default_value = "127.0.0.1:9042",
        value_delimiter = ','
    )]
    pub cql_contact_points: Vec<String>,
    /// Keyspace of this cluster's tables.
    #[arg(long, env = "CHORUS_CQL_KEYSPACE", default_value = "chorus")]
    pub cql_keyspace: String,
    /// Bound of every database operation (keep it at least the server's write timeout).
    #[arg(long, env = "CHORUS_CQL_REQUEST_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub cql_request_timeout: Duration,
    /// Consistency of reads and writes.
    #[arg(long, env = "CHORUS_CQL_CONSISTENCY", value_enum, default_value_t = CqlConsistency::LocalQuorum)]
    pub cql_consistency: CqlConsistency,
    /// User to log in as, for a database with password authentication; the password comes
    /// from --cql-password (best set through its variable) or --cql-password-file.
    #[arg(long, env = "CHORUS_CQL_USERNAME")]
    pub cql_username: Option<String>,
    /// Password of --cql-username.
    #[arg(
        long,
        env = "CHORUS_CQL_PASSWORD",
        hide_env_values = true,
        conflicts_with = "cql_password_file"
    )]
    pub cql_password: Option<String>,
    /// File holding the password of --cql-username (a mounted Secret); one trailing newline
    /// is ignored.
    #[arg(long, env = "CHORUS_CQL_PASSWORD_FILE")]
    pub cql_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CqlConsistency {
    One,
    LocalOne,
    Quorum,
    LocalQuorum,
    All,
}

impl CqlArgs {
    /// The store configuration; fails on a login given by halves or an unreadable password
    /// file.
    pub fn config(&self) -> anyhow::Result<chorus_store_cql::CqlConfig> {
        use chorus_store_cql::Consistency;
        Ok(chorus_store_cql::CqlConfig {
            contact_points: self.cql_contact_points.clone(),
            keyspace: self.cql_keyspace.clone(),
            request_timeout: self.cql_request_timeout,
            consistency: match self.cql_consistency {
                CqlConsistency::One => Consistency::One,
                CqlConsistency::LocalOne => Consistency::LocalOne,
                CqlConsistency::Quorum => Consistency::Quorum,
                CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
                CqlConsistency::All => Consistency::All,
            },
            credentials: self.credentials()?,
            ..chorus_store_cql::CqlConfig::default()
        })
    }

    fn credentials(&self) -> anyhow::Result<Option<chorus_store_cql::CqlCredentials>> {
        let password = match (&self.cql_password, &self.cql_password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read --cql-password-file {}: {e}", path.display())
                })?;
                let p = text
                    .strip_suffix('\n')
                    .map(|p| p.strip_suffix('\r').unwrap_or(p))
                    .unwrap_or(&text);
                Some(p.to_owned())
            }
            (None, None) => None,
        };
        match (&self.cql_username, password) {
            (None, None) => Ok(None),
            // An empty half is refused by the store's own config check.
            (Some(u), Some(p)) => Ok(Some(chorus_store_cql::CqlCredentials {
                username: u.clone(),
                password: p,
            })),
            (Some(_), None) => anyhow::bail!(
                "--cql-username needs a password: set CHORUS_CQL_PASSWORD or --cql-password-file"
            ),
            (None, Some(_)) => {
                anyhow::bail!("a CQL password was given without --cql-username")
            }
        }
    }
}

/// OpenTelemetry traces (docs/operations/tracing.md).
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// OTLP/gRPC endpoint to export traces to (e.g. http://otel-collector:4317); unset: no
    /// tracing.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded, 0 to 1; a trace that arrives with a parent follows the
    /// parent's decision.
    #[arg(long, env = "CHORUS_TRACE_SAMPLE_RATIO", default_value_t = 0.01)]
    pub trace_sample_ratio: f64,
}

impl TraceArgs {
    /// Installs the exporter (when an endpoint is set) for process `instance` of `service`.
    pub fn init(
        &self,
        service: &str,
        instance: &str,
    ) -> Result<chorus_telemetry::Tracing, chorus_telemetry::TelemetryError> {
        chorus_telemetry::init(
            service,
            instance,
            &chorus_telemetry::TraceConfig {
                endpoint: self.otlp_endpoint.clone(),
                sample_ratio: self.trace_sample_ratio,
                ..Default::default()
            },
        )
    }
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on for WebSocket clients, health and metrics.
    #[arg(long, env = "CHORUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// HS256 secret for client tokens, at least 32 bytes (the same on every gateway).
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Deadline of one gRPC call to a router.
    #[arg(long, env = "CHORUS_ROUTER_CALL_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub router_call_timeout: Duration,
    /// gRPC connections (HTTP/2 channels) kept to each router.
    #[arg(long, env = "CHORUS_ROUTER_CHANNELS", default_value_t = 2)]
    pub router_channels: usize,
    /// Serve the web chat app at / (and the browser SDK at /sdk/).
    #[arg(long, env = "CHORUS_WEB", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub web: bool,
    /// Over how long a draining gateway (SIGTERM) tells its clients to reconnect elsewhere.
    #[arg(long, env = "CHORUS_DRAIN_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub drain_window: Duration,
    /// Continue a client's trace: the `traceparent` of its frames becomes the parent of the
    /// gateway's span (and its sampling decision is kept). Off: it is only linked.
    #[arg(long, env = "CHORUS_TRACE_CLIENT_PARENT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trace_client_parent: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// This router's ring name, stable across restarts (e.g. the pod name): 1 to 63 of
    /// a-z 0-9 -.
    #[arg(long, env = "CHORUS_ROUTER_NAME")]
    pub name: String,
    /// Address the gRPC API listens on.
    #[arg(long, env = "CHORUS_GRPC_LISTEN", default_value = "127.0.0.1:7001")]
    pub grpc_listen: SocketAddr,
    /// URL gateways use to reach this router's gRPC API (default: http:// and the bound
    /// listen address).
    #[arg(long, env = "CHORUS_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "CHORUS_HTTP_LISTEN", default_value = "127.0.0.1:9101")]
    pub http_listen: SocketAddr,
    /// How long an ownership session lasts without renewal; a crashed router's rooms move
    /// after this plus the drift and the CQL request timeout.
    #[arg(long, env = "CHORUS_SESSION_TTL", default_value = "4s", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Largest clock difference assumed between two routers.
    #[arg(long, env = "CHORUS_CLOCK_DRIFT", default_value = "500ms", value_parser = parse_duration)]
    pub clock_drift: Duration,
    /// Largest message body in bytes the router accepts (keep it equal to the gateways').
    #[arg(long, env = "CHORUS_MAX_BODY_BYTES", default_value_t = GatewayConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest total of a message's attachments in bytes (keep it equal to the gateways').
    #[arg(long, env = "CHORUS_MAX_ATTACHMENT_BYTES", default_value_t = GatewayConfig::default().max_attachment_bytes)]
    pub max_attachment_bytes: usize,
    #[command(flatten)]
    pub rooms: RoomArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub cql: CqlArgs,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Per-room limits and timings of a router.
#[derive(Debug, Clone, Args)]
pub struct RoomArgs {
    /// Entries per second one room accepts from all its senders together.
    #[arg(long, env = "CHORUS_ROOM_RATE", default_value_t = RouterConfig::default().room_rate)]
    pub room_rate: f64,
    /// Entries a room accepts in a burst above its rate.
    #[arg(long, env = "CHORUS_ROOM_BURST", default_value_t = RouterConfig::default().room_burst)]
    pub room_burst: u32,
    /// A typing user with no repeat for this long is shown as stopped.
    #[arg(long, env = "CHORUS_TYPING_TIMEOUT", default_value = "6s", value_parser = parse_duration)]
    pub typing_timeout: Duration,
    /// How often presence diffs, receipts and typing stops go out (and read marks are
    /// written).
    #[arg(long, env = "CHORUS_LIVE_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub live_interval: Duration,
    /// A gateway not heard from for this long no longer counts for presence (at least three
    /// gateway presence refresh periods).
    #[arg(long, env = "CHORUS_PRESENCE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub presence_ttl: Duration,
    /// Read receipts are relayed only in rooms with at most this many users online (marks
    /// and unread counts are kept in every room).
    #[arg(long, env = "CHORUS_RECEIPTS_MAX_ONLINE", default_value_t = chorus_router::LiveConfig::default().receipts_max_online)]
    pub receipts_max_online: usize,
}

impl RoomArgs {
    /// The router configuration, with the filter limits given.
    pub fn router_config(
        &self,
        max_body_bytes: usize,
        max_attachment_bytes: usize,
    ) -> RouterConfig {
        let defaults = RouterConfig::default();
        RouterConfig {
            room_rate: self.room_rate,
            room_burst: self.room_burst,
            live: chorus_router::LiveConfig {
                interval: self.live_interval,
                typing_timeout: self.typing_timeout,
                presence_ttl: self.presence_ttl,
                receipts_max_online: self.receipts_max_online,
            },
            filter: chorus_router::filter::DefaultFilter {
                max_body_bytes,
                max_attachment_bytes,
                ..defaults.filter.clone()
            },
            ..defaults
        }
    }
}

impl RouterArgs {
    pub fn ownership(&self) -> chorus_cluster::ownership::OwnershipConfig {
        let ttl = self.session_ttl;
        chorus_cluster::ownership::OwnershipConfig {
            session_ttl: ttl,
            renew_every: ttl / 4,
            drift: self.clock_drift,
            settle: self.cql.cql_request_timeout,
            heartbeat_grace: self.cluster.member_ttl,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Replication of the keyspace when it is created (a CQL map; ignored if it exists).
    #[arg(
        long,
        env = "CHORUS_CQL_REPLICATION",
        default_value = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )]
    pub cql_replication: String,
    #[command(flatten)]
    pub cql: CqlArgs,
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
    /// It also turns on the web app's sign-in by name (`POST /v1/dev/token`), and so requires
    /// a loopback --listen address.
    #[arg(long)]
    pub dev: bool,
    /// Serve the web chat app at / (and the browser SDK at /sdk/); `--web=false` turns it off.
    #[arg(long, env = "CHORUS_WEB", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub web: bool,
    /// Over how long a stopping server (SIGTERM) tells its clients to reconnect. Standalone has
    /// no other server to send them to, so by default it tells them all at once.
    #[arg(long, env = "CHORUS_DRAIN_WINDOW", default_value = "0s", value_parser = parse_duration)]
    pub drain_window: Duration,
    /// Continue a client's trace: the `traceparent` of its frames becomes the parent of the
    /// server's span (and its sampling decision is kept). Off: it is only linked.
    #[arg(long, env = "CHORUS_TRACE_CLIENT_PARENT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trace_client_parent: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub rooms: RoomArgs,
    #[command(flatten)]
    pub trace: TraceArgs,
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

/// Where and as whom `chorus send` and `chorus tail` connect.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Gateway base URL (http:// or https://; a ws:// or wss:// URL is used as is).
    #[arg(long, env = "CHORUS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The room.
    #[arg(long)]
    pub room: String,
    /// Client token (a JWT, e.g. from `chorus token`).
    #[arg(long, env = "CHORUS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Instead of a token: mint one for this user with the server's secret (local use).
    #[arg(long)]
    pub user: Option<String>,
    /// HS256 secret the server uses, for --user.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Print the server's frames as they came, one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Idempotency key of the message; with stdin, the prefix of each line's key.
    #[arg(long)]
    pub client_msg_id: Option<String>,
    /// Give up when the messages are not all acknowledged after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The message, words joined by spaces; without it, each non-empty line of stdin.
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the messages after this seq first (0: the whole room); without it, only new
    /// ones.
    #[arg(long)]
    pub since: Option<u64>,
    /// Exit after printing this many messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
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
    /// How long shutdown waits for connections to close after the drain window.
    #[arg(long, env = "CHORUS_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Origins of web pages served elsewhere that may use /v1/info and the SSE transport
    /// (CORS), comma-separated, or `*`. Empty: the gateway's own pages only.
    #[arg(long, env = "CHORUS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Largest total of a message's attachments in bytes (decoded); more gets `too_large`.
    #[arg(long, env = "CHORUS_MAX_ATTACHMENT_BYTES", default_value_t = GatewayConfig::default().max_attachment_bytes)]
    pub max_attachment_bytes: usize,
    /// Most attachments on one message.
    #[arg(long, env = "CHORUS_MAX_ATTACHMENTS", default_value_t = GatewayConfig::default().max_attachments)]
    pub max_attachments: usize,
    /// Sustained requests other than sends, joins and history (typing, read marks, events,
    /// room, member and presence queries) per second per connection.
    #[arg(long, env = "CHORUS_EVENT_RATE", default_value_t = GatewayConfig::default().event_rate)]
    pub event_rate: f64,
    /// Burst of those requests allowed per connection.
    #[arg(long, env = "CHORUS_EVENT_BURST", default_value_t = GatewayConfig::default().event_burst)]
    pub event_burst: u32,
    /// How often the gateway reports each room's whole subscriber list for presence.
    #[arg(long, env = "CHORUS_PRESENCE_REFRESH", default_value = "10s", value_parser = parse_duration)]
    pub presence_refresh: Duration,
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
            max_attachment_bytes: self.max_attachment_bytes,
            max_attachments: self.max_attachments,
            event_rate: self.event_rate,
            event_burst: self.event_burst,
            presence_refresh: self.presence_refresh,
            allowed_origins: self.allowed_origins.clone(),
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
        let limits = &args.limits;
        let router = args
            .rooms
            .router_config(limits.max_body_bytes, limits.max_attachment_bytes);
        assert_eq!(
            format!("{router:?}"),
            format!("{:?}", chorus_router::RouterConfig::default())
        );
    }
}
