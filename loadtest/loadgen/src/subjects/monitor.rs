//! nats-server's monitoring endpoint: `/varz` (memory, slow consumers) and `/subsz`
//! (subscriptions), over a plain HTTP/1.0 GET.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// What nats-server holds now.
#[derive(Debug, Clone, Copy)]
pub struct ServerState {
    /// Resident memory, as `/varz` reports it.
    pub mem_bytes: u64,
    /// Subscriptions of every client (and the server's own), from `/subsz`.
    pub subscriptions: u64,
}

#[derive(Debug)]
pub struct Monitor {
    addr: String,
}

impl Monitor {
    pub fn new(addr: &str) -> Monitor {
        Monitor {
            addr: addr.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let fetch = async {
            let mut stream = TcpStream::connect(&self.addr).await?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            anyhow::Ok(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .with_context(|| format!("GET http://{}{path} timed out", self.addr))?
            .with_context(|| format!("GET http://{}{path}", self.addr))?;
        let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            bail!("GET http://{}{path}: no HTTP header end", self.addr);
        };
        if !response.starts_with(b"HTTP/1.1 200") && !response.starts_with(b"HTTP/1.0 200") {
            let status = String::from_utf8_lossy(&response[..at.min(64)]).into_owned();
            bail!("GET http://{}{path}: {status}", self.addr);
        }
        serde_json::from_slice(&response[at + 4..])
            .with_context(|| format!("GET http://{}{path}: body is not JSON", self.addr))
    }

    pub async fn varz(&self) -> anyhow::Result<serde_json::Value> {
        self.get("/varz").await
    }

    pub async fn state(&self) -> anyhow::Result<ServerState> {
        let varz = self.varz().await?;
        let subsz = self.get("/subsz").await?;
        let field = |v: &serde_json::Value, f: &str, path: &str| {
            v[f].as_u64()
                .with_context(|| format!("{path} has no numeric `{f}`"))
        };
        Ok(ServerState {
            mem_bytes: field(&varz, "mem", "/varz")?,
            subscriptions: field(&subsz, "num_subscriptions", "/subsz")?,
        })
    }

    /// Waits until the server is back to `target` subscriptions (ours are gone), so one
    /// scenario's unsubscribes do not run into the next one's figures.
    pub async fn wait_subscriptions(&self, target: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.state().await?.subscriptions;
            if now <= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("nats-server still holds {now} subscriptions after 60 s (expected {target})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
