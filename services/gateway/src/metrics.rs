//! Gateway metrics (catalogue in docs/operations/metrics.md) and the Prometheus recorder.
//!
//! Hot-path counters are resolved once and kept as handles, so a fan-out costs one atomic add
//! per room delivery, not a registry lookup per recipient.

use std::sync::OnceLock;

use chorus_core::protocol::ErrorCode;
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("the recorder is installed once, guarded by OnceLock");
            describe();
            handle
        })
        .clone()
}

/// Help text of every `chorus_*` family, so each comes with a `# HELP` line
/// (`promtool check metrics` asks for one). docs/operations/metrics.md is the catalogue; the
/// metrics test checks both against what the processes expose.
fn describe() {
    metrics::describe_counter!(
        "chorus_gateway_backfilled_messages_total",
        "Messages delivered by repairs of holes in a room's bus stream."
    );
    metrics::describe_gauge!(
        "chorus_gateway_connections",
        "Open client connections, WebSocket and SSE."
    );
    metrics::describe_counter!(
        "chorus_gateway_connections_total",
        "Client connections accepted."
    );
    metrics::describe_counter!(
        "chorus_gateway_deliveries_total",
        "msg frames queued to connections, one per recipient."
    );
    metrics::describe_histogram!(
        "chorus_gateway_delivery_lag_seconds",
        Unit::Seconds,
        "From a message's ts (sequenced) to its fan-out at this gateway."
    );
    metrics::describe_counter!(
        "chorus_gateway_errors_total",
        "Error replies to clients, by wire code."
    );
    metrics::describe_counter!(
        "chorus_gateway_frames_in_total",
        "Client frames received, by type."
    );
    metrics::describe_counter!(
        "chorus_gateway_gap_backfills_total",
        "Holes in a room's bus stream repaired from the log."
    );
    metrics::describe_gauge!(
        "chorus_gateway_hub_rooms",
        "Rooms with local subscribers (one bus subscription each)."
    );
    metrics::describe_counter!(
        "chorus_gateway_not_owner_retries_total",
        "Requests retried at another router because the ring moved."
    );
    metrics::describe_counter!(
        "chorus_gateway_rate_limited_total",
        "Sends refused by a connection's send rate."
    );
    metrics::describe_counter!(
        "chorus_gateway_router_retries_total",
        "Requests retried after a router was unreachable or timed out."
    );
    metrics::describe_histogram!(
        "chorus_gateway_send_seconds",
        Unit::Seconds,
        "Send to ack, as the gateway sees it."
    );
    metrics::describe_counter!(
        "chorus_gateway_slow_consumer_disconnects_total",
        "Connections closed as slow consumers (4008)."
    );
    metrics::describe_gauge!(
        "chorus_gateway_sse_sessions",
        "Open connections on the SSE fallback transport."
    );
    metrics::describe_histogram!(
        "chorus_grpc_client_seconds",
        Unit::Seconds,
        "Latency of gRPC calls to routers, by method."
    );
    metrics::describe_counter!(
        "chorus_grpc_client_errors_total",
        "Failed gRPC calls to routers, by method and error kind."
    );
    metrics::describe_counter!(
        "chorus_bus_publish_errors_total",
        "Deliveries the bus could not publish (repaired from the log)."
    );
    metrics::describe_counter!(
        "chorus_messages_sequenced_total",
        "Log entries durably appended."
    );
    metrics::describe_counter!(
        "chorus_presence_report_errors_total",
        "Presence reports a router refused or did not answer."
    );
    metrics::describe_counter!(
        "chorus_presence_reports_dropped_total",
        "Presence reports dropped on a full queue (the next refresh repairs them)."
    );
    metrics::describe_counter!(
        "chorus_read_marks_written_total",
        "Read marks written to the store."
    );
    metrics::describe_counter!(
        "chorus_receipts_not_relayed_total",
        "Read marks not relayed: the room had too many users online."
    );
    metrics::describe_counter!(
        "chorus_ring_changes_total",
        "Ring changes this process has seen."
    );
    metrics::describe_gauge!("chorus_ring_routers", "Routers in this process's ring.");
    metrics::describe_gauge!(
        "chorus_ring_version",
        "The ring's version, low 48 bits; equal on every process of a settled cluster."
    );
    metrics::describe_histogram!(
        "chorus_router_batch_size",
        Unit::Count,
        "Entries per room append."
    );
    metrics::describe_counter!(
        "chorus_router_room_overloaded_total",
        "Sends refused because a room's queue was full."
    );
    metrics::describe_counter!(
        "chorus_router_room_rate_limited_total",
        "Send batches refused by a room's rate limit."
    );
    metrics::describe_counter!(
        "chorus_router_session_renewals_total",
        "Ownership session renewals."
    );
    metrics::describe_histogram!(
        "chorus_router_slot_claim_seconds",
        Unit::Seconds,
        "From wanting a room slot to holding it."
    );
    metrics::describe_counter!(
        "chorus_router_slot_claims_total",
        "Room slots claimed (ownership moves in)."
    );
    metrics::describe_counter!(
        "chorus_router_slot_releases_total",
        "Room slots handed over (ownership moves out)."
    );
    metrics::describe_histogram!(
        "chorus_store_append_seconds",
        Unit::Seconds,
        "One room append to the store."
    );
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
