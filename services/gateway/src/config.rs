//! Gateway limits and timings. Every field is a documented flag and environment variable of
//! the `chorus` binary (docs/configuration.md).

use std::time::Duration;

use chorus_core::protocol::{AnnouncedLimits, MAX_HISTORY_LIMIT};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest message `body`, in bytes (UTF-8). Larger: `too_large`, connection kept.
    pub max_body_bytes: usize,
    /// Largest WebSocket frame/message, in bytes. Larger: close 1009.
    pub max_frame_bytes: usize,
    /// Rooms one connection may have joined at once. More: `limit_exceeded`.
    pub max_rooms_per_conn: usize,
    /// Sustained sends per second per connection (token bucket refill rate).
    pub send_rate: f64,
    /// Sends a connection may make in a burst (token bucket size).
    pub send_burst: u32,
    /// Requests (sends and history reads) one connection may have in flight.
    pub max_in_flight: usize,
    /// Bytes of frames queued for one connection before it is closed as a slow consumer.
    pub outbound_queue_bytes: usize,
    /// How long a client has to send `auth` when the upgrade carried no token.
    pub auth_timeout: Duration,
    /// Interval of server WebSocket pings; a connection silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// How long one socket write may block before the connection is dropped.
    pub write_timeout: Duration,
    /// Open WebSocket connections accepted at once. More: HTTP 503 on upgrade.
    pub max_connections: usize,
    /// Per-connection WebSocket read buffer, in bytes. It is allocated for every connection
    /// for its whole life, so it dominates idle memory; a larger frame still arrives whole
    /// (the buffer grows for that connection).
    pub read_buffer_bytes: usize,
    /// Recent frames each hub room keeps to hand a joining connection over from backlog to live
    /// without another read.
    pub hub_ring: usize,
    /// How long a shutdown waits for connections to close after the drain window.
    pub drain_timeout: Duration,
    /// Over how long a draining gateway tells its connections to reconnect elsewhere (each
    /// connection at its own moment within it). Zero here, all at once; `chorus gateway`
    /// sets 10 s, as there are other gateways to spread the clients over.
    pub drain_window: Duration,
    /// Serve the web app (`/`, `/app/…`, `/sdk/…`).
    pub web: bool,
    /// Mint tokens for any user name at `POST /v1/dev/token` (standalone `--dev` only).
    pub dev_sign_in: bool,
    /// Origins allowed to call `/v1/info` and the SSE transport from a browser page served
    /// elsewhere (CORS). Empty: same origin only. `*`: any.
    pub allowed_origins: Vec<String>,
    /// Largest total of a message's attachments, decoded. Larger: `too_large`.
    pub max_attachment_bytes: usize,
    /// Most attachments on one message. More: `limit_exceeded`.
    pub max_attachments: usize,
    /// Sustained requests other than sends, joins and history (typing, read marks, events,
    /// room, member and presence queries) per second per connection.
    pub event_rate: f64,
    /// Those requests a connection may make in a burst.
    pub event_burst: u32,
    /// How often each hub room reports its whole subscriber list to the room's router.
    pub presence_refresh: Duration,
    /// A client's `traceparent` becomes the parent of the gateway's span (its trace goes on
    /// through the cluster, sampled as the client decided). Off: the client's context is only
    /// linked, and sampling is the gateway's own, so clients cannot force traces to be kept.
    pub trace_client_parent: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 4096,
            // Room for the largest attachments in base64 plus a body and the frame.
            max_frame_bytes: 384 * 1024,
            max_rooms_per_conn: 100,
            send_rate: 10.0,
            send_burst: 20,
            max_in_flight: 32,
            outbound_queue_bytes: 1 << 20,
            auth_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            read_buffer_bytes: 2048,
            hub_ring: 64,
            drain_timeout: Duration::from_secs(10),
            drain_window: Duration::ZERO,
            web: false,
            dev_sign_in: false,
            allowed_origins: Vec::new(),
            max_attachment_bytes: 256 * 1024,
            max_attachments: 10,
            event_rate: 20.0,
            event_burst: 40,
            presence_refresh: Duration::from_secs(10),
            trace_client_parent: false,
        }
    }
}

impl GatewayConfig {
    pub fn announced_limits(&self) -> AnnouncedLimits {
        AnnouncedLimits {
            max_body_bytes: self.max_body_bytes,
            max_frame_bytes: self.max_frame_bytes,
            max_rooms: self.max_rooms_per_conn,
            send_rate_per_sec: self.send_rate,
            send_burst: self.send_burst,
            max_history_limit: MAX_HISTORY_LIMIT,
            max_attachment_bytes: self.max_attachment_bytes,
        }
    }
}
