//! Trace context on the gateway → router call: the client span's `traceparent` travels in the
//! call's metadata, each send's own in the request message (`SendRequest.traceparent`). Span
//! names and attributes follow the OpenTelemetry RPC conventions.

use chorus_telemetry::Attr;

/// The metadata key of the caller's span context (W3C Trace Context's header name).
pub const TRACEPARENT_KEY: &str = "traceparent";

/// Name of the client and server spans of a `SendBatch` call: `{rpc.service}/{rpc.method}`.
pub const SEND_BATCH_SPAN: &str = "chorus.v1.Router/SendBatch";

/// The RPC attributes of a call of `method` carrying `sends` sends.
pub fn rpc_attrs(a: &mut Vec<Attr>, method: &'static str, sends: usize) {
    a.push(Attr::new("rpc.system", "grpc"));
    a.push(Attr::new("rpc.service", "chorus.v1.Router"));
    a.push(Attr::new("rpc.method", method));
    a.push(Attr::new("messaging.batch.message_count", sends as i64));
}
