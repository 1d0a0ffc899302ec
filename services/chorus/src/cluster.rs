//! The cluster wiring: `chorus router` and `chorus gateway` as separate processes, talking
//! gRPC from gateway to router, NATS from router to gateways (and for membership), and CQL
//! from routers to the database (docs/architecture.md, ADRs 0003 to 0005).

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use anyhow::Context;
use axum::{Router as HttpRouter, http::StatusCode, response::IntoResponse, routing::get};
use chorus_bus_nats::NatsBus;
use chorus_cluster::{
    client::{RingClientConfig, RingRouterClient},
    membership::{Announcer, MembershipConfig, Watcher},
    ownership::{LeaseOwnership, OwnershipConfig},
    ring::{Member, valid_member_name},
    session_id,
};
use chorus_core::{lease::LeaseStore, state::RoomStateStore, store::MessageStore, time::now_ms};
use chorus_gateway::{Authenticator, Gateway, GatewayConfig, metrics::install_prometheus};
use chorus_router::{Router, RouterConfig};
use chorus_router_grpc::RouterGrpc;
use chorus_store_cql::{CqlConfig, CqlStore};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::standalone::{Running, bind};

/// What a gateway needs to join a cluster.
#[derive(Debug, Clone)]
pub struct GatewayNodeConfig {
    pub listen: SocketAddr,
    pub jwt_secret: Vec<u8>,
    pub gateway: GatewayConfig,
    pub nats_url: String,
    pub membership: MembershipConfig,
    pub routers: RingClientConfig,
}

/// Starts a gateway: NATS for deliveries and the ring, gRPC to the routers.
pub async fn start_gateway(config: GatewayNodeConfig) -> anyhow::Result<Running> {
    let auth = Arc::new(Authenticator::new(&config.jwt_secret)?);
    // Before anything records a metric (the ring watcher does at once).
    let prometheus = install_prometheus();
    let bus = NatsBus::connect(&config.nats_url, &config.membership.prefix)
        .await
        .context("connecting to NATS")?;
    let watcher = Watcher::start(bus.client(), config.membership.clone())
        .await
        .context("watching router membership")?;
    let view = watcher.view();
    if view.current().is_empty() {
        tracing::warn!("no router is in the ring yet; requests fail `unavailable` until one joins");
    }
    let router = Arc::new(RingRouterClient::new(view, config.routers.clone()));
    let listener = bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(
        router,
        Arc::new(bus),
        auth,
        config.gateway.clone(),
        Some(prometheus),
    );
    let handle = gateway.handle();
    tracing::info!(%addr, "gateway serving");
    let done = tokio::spawn(async move {
        let _watcher = watcher;
        gateway
            .serve(listener, HttpRouter::new())
            .await
            .context("serving")?;
        tracing::info!("gateway stopped");
        Ok(())
    });
    Ok(Running { addr, handle, done })
}

/// What a router needs to join a cluster.
#[derive(Debug, Clone)]
pub struct RouterNodeConfig {
    /// Ring name: stable across restarts (e.g. the pod name).
    pub name: String,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// The gRPC address gateways dial; defaults to `http://` + the bound listen address.
    pub advertise: Option<String>,
    /// Health and metrics listen address.
    pub http_listen: SocketAddr,
    pub nats_url: String,
    pub membership: MembershipConfig,
    pub cql: CqlConfig,
    pub router: RouterConfig,
    pub ownership: OwnershipConfig,
}

/// A started router.
pub struct RouterNode {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    pub done: JoinHandle<anyhow::Result<()>>,
}

impl RouterNode {
    /// Sending `true` makes the router leave the ring, hand every room over and close the
    /// store; `done` then resolves.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

pub async fn start_router(config: RouterNodeConfig) -> anyhow::Result<RouterNode> {
    anyhow::ensure!(
        valid_member_name(&config.name),
        "invalid --name {:?}: use 1 to 63 of a-z 0-9 -, starting with a letter or digit",
        config.name
    );
    let prometheus = install_prometheus();
    let bus = NatsBus::connect(&config.nats_url, &config.membership.prefix)
        .await
        .context("connecting to NATS")?;
    let store = Arc::new(
        CqlStore::connect(&config.cql)
            .await
            .context("connecting to the database")?,
    );
    let watcher = Watcher::start(bus.client(), config.membership.clone())
        .await
        .context("watching router membership")?;
    let holder = session_id(&config.name);
    let heartbeat = Arc::new(AtomicU64::new(now_ms()));
    let ownership = LeaseOwnership::start(
        config.name.clone(),
        holder.clone(),
        watcher.view(),
        store.clone() as Arc<dyn LeaseStore>,
        heartbeat.clone(),
        config.ownership.clone(),
    )
    .await
    .context("opening the ownership session in the database")?;
    let router = Arc::new(Router::with_ownership(
        store.clone() as Arc<dyn MessageStore>,
        store.clone() as Arc<dyn RoomStateStore>,
        Arc::new(bus.clone()),
        ownership.clone(),
        config.router.clone(),
    ));

    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_listen))?;
    let grpc_addr = grpc.local_addr()?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_listen))?;
    let http_addr = http.local_addr()?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{grpc_addr}"));

    let (stop_tx, stop_rx) = watch::channel(false);
    let (grpc_stop_tx, grpc_stop_rx) = watch::channel(false);
    let service = RouterGrpc::new(router.clone()).into_service();
    let grpc_task = tokio::spawn(async move {
        let mut grpc_stop_rx = grpc_stop_rx;
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc),
                async move {
                    let _ = grpc_stop_rx.wait_for(|s| *s).await;
                },
            )
            .await
    });
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http_app = {
        let ready = ready.clone();
        HttpRouter::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let in_ring = ready.load(std::sync::atomic::Ordering::Acquire);
                    let session = ownership.session_valid();
                    async move {
                        match (in_ring, session) {
                            (true, true) => "ready\n".into_response(),
                            (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not in the ring\n")
                                .into_response(),
                            (true, false) => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "ownership session lapsed (database or NATS unreachable)\n",
                            )
                                .into_response(),
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let body = prometheus.render();
                    async move { body }
                }),
            )
    };
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, http_app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    // Serving: now gateways may route here.
    let mut announcer = Announcer::start(
        bus.client(),
        config.membership.clone(),
        Member {
            name: config.name.clone(),
            addr: advertise.clone(),
        },
        holder,
        heartbeat,
    )
    .await
    .context("announcing this router")?;
    ready.store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(name = %config.name, %grpc_addr, %advertise, %http_addr, "router serving");

    let name = config.name.clone();
    let done = tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|s| *s).await;
        tracing::info!("router stopping: leaving the ring");
        ready.store(false, std::sync::atomic::Ordering::Release);
        announcer.leave().await;
        // Wait until our own ring no longer has us, so every later request is answered
        // not-owner (the gateways retry at the new owners) instead of being refused.
        let view = watcher.view();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while view.current().members().iter().any(|m| m.name == name)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Finish queued appends, release every slot, end the session, close the store.
        router.shutdown().await.context("router shutdown")?;
        // A moment for gateways still on the old ring to hear not-owner from us.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = grpc_stop_tx.send(true);
        grpc_task
            .await
            .context("gRPC task panicked")?
            .context("gRPC server")?;
        http_task
            .await
            .context("HTTP task panicked")?
            .context("HTTP server")?;
        drop(watcher);
        tracing::info!("router stopped");
        Ok(())
    });
    Ok(RouterNode {
        grpc_addr,
        http_addr,
        stop: stop_tx,
        done,
    })
}
