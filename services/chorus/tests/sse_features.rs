//! The chat features over the SSE fallback transport (standalone): the same suite as
//! tests/features.rs, every client on `GET /v1/sse` + `POST /v1/sse/<session>`.

mod common;

mod wiring {
    use crate::common::Server;
    use chorus_gateway::GatewayConfig;
    use chorus_router::RouterConfig;

    pub async fn start_full(gateway: GatewayConfig, router: RouterConfig) -> Server {
        crate::common::start_full(gateway, router).await.over_sse()
    }
}

#[path = "suites/features.rs"]
mod features;
