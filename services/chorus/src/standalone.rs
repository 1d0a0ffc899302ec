//! `chorus standalone`: the gateway and the router in one process, on the embedded store and
//! the in-process bus. The same code paths as a cluster, minus the network between them.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use chorus_core::bus::memory::MemoryBus;
use chorus_gateway::{
    Authenticator, Gateway, GatewayConfig, GatewayHandle, metrics::install_prometheus,
};
use chorus_router::{Router, RouterConfig};
use chorus_store_embedded::{EmbeddedConfig, EmbeddedStore};
use tokio::{
    net::{TcpListener, TcpSocket},
    task::JoinHandle,
};

#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub jwt_secret: Vec<u8>,
    pub gateway: GatewayConfig,
    pub router: RouterConfig,
    pub store: EmbeddedConfig,
}

/// A started standalone server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub handle: GatewayHandle,
    /// Resolves when the server has shut down and the store is closed.
    pub done: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Shuts down (1001 to clients, store flushed) and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.shutdown();
        self.done.await.context("server task panicked")?
    }
}

/// Opens the store, binds the listener and starts serving in the background.
pub async fn start(config: StandaloneConfig) -> anyhow::Result<Running> {
    let auth = Arc::new(Authenticator::new(&config.jwt_secret)?);
    let store = EmbeddedStore::open(&config.data_dir, config.store.clone())
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let bus = Arc::new(MemoryBus::default());
    let router = Arc::new(Router::new(
        store.clone(),
        store,
        bus.clone(),
        config.router.clone(),
    ));
    let listener = bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(
        router.clone(),
        bus,
        auth,
        config.gateway.clone(),
        Some(install_prometheus()),
    );
    let handle = gateway.handle();
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "standalone serving");
    let done = tokio::spawn(async move {
        gateway
            .serve(listener, axum::Router::new())
            .await
            .context("serving")?;
        router.shutdown().await.context("closing the store")?;
        tracing::info!("standalone stopped");
        Ok(())
    });
    Ok(Running { addr, handle, done })
}

/// Connections waiting to be accepted. Tokio's default (128) drops SYNs when clients reconnect
/// in a burst (after a restart, say), which costs each dropped client a 1 s retransmit.
const LISTEN_BACKLOG: u32 = 4096;

pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Loads the dev-mode secret from `data_dir`, or makes and saves one.
pub fn dev_secret(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("dev-jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= chorus_gateway::auth::MIN_SECRET_LEN {
            return Ok(existing);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for a dev secret: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, &secret).with_context(|| format!("saving {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
