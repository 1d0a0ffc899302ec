//! Protocol v1 over the SSE fallback transport (standalone): the same suite as
//! tests/protocol.rs, every client on `GET /v1/sse` + `POST /v1/sse/<session>`, so the
//! fallback keeps the same order, acks, idempotency and resume.

mod common;

mod wiring {
    use crate::common::Server;
    use chorus_gateway::GatewayConfig;

    pub async fn start() -> Server {
        crate::common::start().await.over_sse()
    }

    pub async fn start_with(config: GatewayConfig) -> Server {
        crate::common::start_with(config).await.over_sse()
    }
}

#[path = "suites/protocol.rs"]
mod protocol;
