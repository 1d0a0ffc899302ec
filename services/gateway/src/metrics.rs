//! Gateway metrics (catalogue in docs/operations/metrics.md) and the Prometheus recorder.
//!
//! Hot-path counters are resolved once and kept as handles, so a fan-out costs one atomic add
//! per room delivery, not a registry lookup per recipient.

use std::sync::OnceLock;

use chorus_core::protocol::ErrorCode;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("the recorder is installed once, guarded by OnceLock")
        })
        .clone()
}

/// Handles used on hot paths.
#[derive(Clone)]
pub struct GatewayMetrics {
    pub connections: Gauge,
    /// Of those, connections on the SSE fallback transport.
    pub sse_sessions: Gauge,
    pub connections_total: Counter,
    pub deliveries: Counter,
    pub slow_consumers: Counter,
    pub rate_limited: Counter,
    pub backfills: Counter,
    pub backfilled_messages: Counter,
    pub hub_rooms: Gauge,
    pub send_seconds: Histogram,
    /// From a message's `ts` (when it was sequenced) to its fan-out here.
    pub delivery_lag_seconds: Histogram,
}

impl GatewayMetrics {
    pub fn new() -> Self {
        GatewayMetrics {
            connections: metrics::gauge!("chorus_gateway_connections"),
            sse_sessions: metrics::gauge!("chorus_gateway_sse_sessions"),
            connections_total: metrics::counter!("chorus_gateway_connections_total"),
            deliveries: metrics::counter!("chorus_gateway_deliveries_total"),
            slow_consumers: metrics::counter!("chorus_gateway_slow_consumer_disconnects_total"),
            rate_limited: metrics::counter!("chorus_gateway_rate_limited_total"),
            backfills: metrics::counter!("chorus_gateway_gap_backfills_total"),
            backfilled_messages: metrics::counter!("chorus_gateway_backfilled_messages_total"),
            hub_rooms: metrics::gauge!("chorus_gateway_hub_rooms"),
            send_seconds: metrics::histogram!("chorus_gateway_send_seconds"),
            delivery_lag_seconds: metrics::histogram!("chorus_gateway_delivery_lag_seconds"),
        }
    }

    pub fn error(&self, code: ErrorCode) {
        metrics::counter!("chorus_gateway_errors_total", "code" => code.as_str()).increment(1);
    }

    pub fn frame_in(&self, kind: &'static str) {
        metrics::counter!("chorus_gateway_frames_in_total", "type" => kind).increment(1);
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
