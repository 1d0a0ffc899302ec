//! HTTP side of the gateway: the WebSocket endpoint, the SSE transport, the web app, health,
//! readiness, metrics, and the drain (fail readiness, stop accepting, tell every connection
//! to reconnect elsewhere over the drain window, wait for them).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use chorus_core::{
    bus::DeliveryBus,
    protocol::{AnnouncedLimits, ErrorCode},
    router::RouterClient,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    GatewayConfig, auth::Authenticator, conn, hub::Hub, metrics::GatewayMetrics, sse, web,
};

/// Everything a connection task needs, shared by all of them.
///
/// Owned by the [`Gateway`]; connection tasks hold clones of the `Arc`. `shutdown` is how a
/// shutdown reaches every connection; `tasks` is how the shutdown waits for them.
pub(crate) struct Shared {
    pub(crate) router: Arc<dyn RouterClient>,
    pub(crate) hub: Hub,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) config: GatewayConfig,
    pub(crate) limits: AnnouncedLimits,
    pub(crate) metrics: GatewayMetrics,
    pub(crate) shutdown: CancellationToken,
    /// Open SSE sessions, for their POSTs.
    pub(crate) sse: Arc<sse::Sessions>,
    draining: AtomicBool,
    connections: AtomicUsize,
    next_conn_id: AtomicU64,
    pub(crate) tasks: TaskTracker,
    prometheus: Option<PrometheusHandle>,
}

impl Shared {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a connection slot; the refusal to send when shutting down or at the limit.
    pub(crate) fn admit(&self) -> Option<Response> {
        if self.shutdown.is_cancelled() {
            return Some(http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "server is shutting down",
            ));
        }
        if !self.try_admit() {
            self.metrics.error(ErrorCode::Unavailable);
            return Some(http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "connection limit reached",
            ));
        }
        None
    }

    fn try_admit(&self) -> bool {
        let max = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A gateway ready to serve. Build with [`Gateway::new`], run with [`Gateway::serve`].
pub struct Gateway {
    shared: Arc<Shared>,
}

/// Controls a running gateway from elsewhere (signal handler, tests).
#[derive(Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("connections", &self.connections())
            .finish()
    }
}

impl GatewayHandle {
    /// Fails readiness, stops accepting, and over the drain window tells every connection to
    /// reconnect elsewhere (`reconnect`, then close 1001).
    pub fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.shared.shutdown.cancel();
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Open SSE sessions (each also counts as a connection).
    pub fn sse_sessions(&self) -> usize {
        self.shared.sse.len()
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Gateway {
    pub fn new(
        router: Arc<dyn RouterClient>,
        bus: Arc<dyn DeliveryBus>,
        auth: Arc<Authenticator>,
        config: GatewayConfig,
        prometheus: Option<PrometheusHandle>,
    ) -> Self {
        let metrics = GatewayMetrics::new();
        let hub = Hub::new(
            router.clone(),
            bus,
            config.hub_ring,
            config.presence_refresh,
            metrics.clone(),
        );
        Gateway {
            shared: Arc::new(Shared {
                router,
                hub,
                auth,
                limits: config.announced_limits(),
                config,
                metrics,
                shutdown: CancellationToken::new(),
                sse: Arc::default(),
                draining: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
                next_conn_id: AtomicU64::new(1),
                tasks: TaskTracker::new(),
                prometheus,
            }),
        }
    }

    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            shared: self.shared.clone(),
        }
    }

    /// The gateway's routes, for embedding in a larger axum app.
    pub fn routes(&self) -> Router {
        // What a page served elsewhere may call (CORS, when origins are configured).
        let api = Router::new()
            .route("/v1/info", get(web::info))
            .route("/v1/sse", get(sse::open))
            .route("/v1/sse/{session}", post(sse::post))
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                web::cors,
            ));
        let mut routes = Router::new()
            .route("/v1/ws", get(ws_upgrade))
            .route("/v1/dev/token", post(web::dev_token))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .merge(api);
        if self.shared.config.web {
            routes = routes
                .route("/", get(web::index))
                .route("/app/{*file}", get(web::app_file))
                .route("/sdk/{*file}", get(web::sdk_file));
        }
        routes.with_state(self.shared.clone())
    }

    /// Serves until [`GatewayHandle::shutdown`], then drains: every connection is told to
    /// reconnect within the drain window, and the gateway waits up to the drain timeout
    /// beyond it for them to close.
    pub async fn serve(self, listener: TcpListener, extra: Router) -> std::io::Result<()> {
        let app = self.routes().merge(extra);
        let token = self.shared.shutdown.clone();
        let user_timeout = self.shared.config.ping_interval * 2;
        let listener = listener.tap_io(move |tcp| tune(tcp, user_timeout));
        let mut http = tokio::spawn(
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .into_future(),
        );
        tokio::select! {
            _ = token.cancelled() => {}
            served = &mut http => return served.map_err(std::io::Error::other)?,
        }
        self.shared.tasks.close();
        let config = &self.shared.config;
        let limit = config.drain_window + config.drain_timeout;
        if tokio::time::timeout(limit, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.handle().connections(),
                "drain timeout: closing remaining connections"
            );
        }
        // Every connection task has ended, so what HTTP still holds (an SSE response a client
        // stopped reading) has nothing more to say.
        if tokio::time::timeout(std::time::Duration::from_secs(1), &mut http)
            .await
            .is_err()
        {
            http.abort();
        }
        Ok(())
    }
}

/// Socket options of every accepted connection.
pub(crate) fn tune(tcp: &tokio::net::TcpStream, user_timeout: std::time::Duration) {
    // Frames are already batched per flush; Nagle would only add delay (and with delayed
    // ACKs, tens of milliseconds per round trip).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    // A peer that vanished without closing (a phone that lost its network) leaves the pings
    // and frames written to it unacknowledged: give up on it after this long, not after the
    // kernel's ~15 minutes of retransmissions. A WebSocket client would also be dropped for
    // not answering pings; an SSE client cannot answer them, so this is what bounds it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(user_timeout)) {
        tracing::debug!(error = %e, "could not set TCP_USER_TIMEOUT");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = user_timeout;
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.draining.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.prometheus {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are disabled\n").into_response(),
    }
}

pub(crate) fn http_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({ "type": "error", "code": code.as_str(), "message": message });
    (status, Json(body)).into_response()
}

/// The token of an `Authorization: Bearer` header: None without the header, the reason
/// when the header is not a bearer token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Result<&str, &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err("invalid Authorization header"));
    };
    Some(
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or("expected Authorization: Bearer <token>"),
    )
}

async fn ws_upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let header_auth = match bearer(&headers) {
        None => None,
        Some(Ok(token)) => Some(shared.auth.verify(token)),
        Some(Err(why)) => {
            return http_error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, why);
        }
    };
    if let Some(refusal) = shared.admit() {
        return refusal;
    }
    let config = &shared.config;
    let on_failure = shared.clone();
    ws.read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(8 * 1024)
        // The documented limit is enforced by the connection once a frame is read whole, so
        // the refusal can be a clean close; the transport cap only stops abuse beyond it.
        .max_message_size(config.max_frame_bytes.saturating_mul(2))
        .max_frame_size(config.max_frame_bytes.saturating_mul(2))
        .on_failed_upgrade(move |_| on_failure.release_connection())
        .on_upgrade(move |socket| {
            let tasks = shared.tasks.clone();
            tasks.track_future(conn::run(socket, shared, header_auth, None))
        })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn accepted_connections_give_up_on_a_vanished_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        super::tune(&server, Duration::from_secs(60));
        let sock = socket2::SockRef::from(&server);
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(60))
        );
        assert!(sock.tcp_nodelay().unwrap());
    }
}
