//! OpenTelemetry traces for Chorus.
//!
//! [`init`] installs an OTLP/gRPC exporter (batched, sampled by trace id, parent-based) when an
//! endpoint is configured. Without one nothing is installed, [`enabled`] is false, and
//! [`start`] returns an inert [`Span`] without evaluating its attributes: tracing that is off
//! costs a branch.
//!
//! Spans cross processes as a [`TraceParent`] (W3C Trace Context): in gRPC metadata and the
//! request message between gateway and router, in NATS headers (or the in-process bus's
//! envelope) from router to gateways, and in the client protocol's frames. The span names and
//! attributes follow the OpenTelemetry semantic conventions for messaging, RPC and databases;
//! docs/operations/tracing.md lists them.

use std::{sync::OnceLock, time::Duration};

use chorus_core::{router::SendRequest, trace::TraceParent};
use opentelemetry::{
    Context, KeyValue,
    trace::{
        Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
        TraceState, Tracer, TracerProvider as _,
    },
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};

pub use opentelemetry::{KeyValue as Attr, Value};

/// The tracer of this process, once [`init`] installed an exporter.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Where and how much to trace.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// OTLP/gRPC endpoint, e.g. `http://otel-collector:4317`. `None`: tracing off.
    pub endpoint: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0. A trace that arrives with a parent follows
    /// the parent's decision.
    pub sample_ratio: f64,
    /// Longest wait for one export before it is dropped.
    pub export_timeout: Duration,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            endpoint: None,
            sample_ratio: 0.01,
            export_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("trace sample ratio {0} is not between 0 and 1")]
    BadRatio(f64),
    #[error("OTLP endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("tracing is already set up in this process")]
    AlreadyInitialized,
}

/// The installed exporter; [`shutdown`](Tracing::shutdown) sends what is still queued.
#[derive(Debug)]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Off: nothing to flush.
    pub fn off() -> Tracing {
        Tracing { provider: None }
    }

    pub fn is_on(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued (bounded by the export timeout) and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The SDK's shutdown blocks until the exporter, which runs on this runtime, has
            // sent the last batch: keep it off the runtime's workers.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the OTLP exporter for this process (`service` is `chorus-gateway`,
/// `chorus-router` or `chorus-standalone`; `instance` names the process). Must run inside the
/// tokio runtime that will carry the exports. With no endpoint, returns [`Tracing::off`].
pub fn init(
    service: &str,
    instance: &str,
    config: &TraceConfig,
) -> Result<Tracing, TelemetryError> {
    let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(Tracing::off());
    };
    if !(0.0..=1.0).contains(&config.sample_ratio) || config.sample_ratio.is_nan() {
        return Err(TelemetryError::BadRatio(config.sample_ratio));
    }
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(TelemetryError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "must start with http:// or https://".into(),
        });
    }
    if endpoint.starts_with("https://") {
        return Err(TelemetryError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "TLS to the collector is not supported; use a local collector (sidecar or node agent) over http://".into(),
        });
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(config.export_timeout)
        .build()
        .map_err(|e| TelemetryError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    let resource = Resource::builder_empty()
        .with_service_name(service.to_owned())
        .with_attributes([
            KeyValue::new("service.namespace", "chorus"),
            KeyValue::new("service.instance.id", instance.to_owned()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("chorus");
    TRACER
        .set(tracer)
        .map_err(|_| TelemetryError::AlreadyInitialized)?;
    tracing::info!(
        endpoint,
        sample_ratio = config.sample_ratio,
        "exporting traces over OTLP"
    );
    Ok(Tracing {
        provider: Some(provider),
    })
}

/// Spans are recorded in this process.
#[inline]
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// How a span relates to its peers (OpenTelemetry's span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
    Producer,
    Consumer,
    Internal,
}

impl From<Kind> for SpanKind {
    fn from(k: Kind) -> SpanKind {
        match k {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
            Kind::Producer => SpanKind::Producer,
            Kind::Consumer => SpanKind::Consumer,
            Kind::Internal => SpanKind::Internal,
        }
    }
}

/// The context a `traceparent` names, as a remote parent.
fn remote(tp: &TraceParent) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(tp.trace_id()).ok()?;
    let span_id = SpanId::from_hex(tp.span_id()).ok()?;
    let flags = if tp.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

fn traceparent_of(cx: &SpanContext) -> Option<TraceParent> {
    if !cx.is_valid() {
        return None;
    }
    TraceParent::from_parts(
        &format!("{:032x}", cx.trace_id()),
        &format!("{:016x}", cx.span_id()),
        cx.is_sampled(),
    )
}

/// A span of this process, ended when dropped. Inert when tracing is off. One pointer wide:
/// it rides in per-connection queues (a send's span waits with the send for its ack), where
/// the SDK's span, hundreds of bytes inline, would make every slot larger even with tracing
/// off.
#[derive(Debug, Default)]
pub struct Span {
    inner: Option<Box<opentelemetry_sdk::trace::Span>>,
}

impl Span {
    /// A span that records nothing.
    pub fn none() -> Span {
        Span { inner: None }
    }

    /// The context to hand on to what this span causes (`None` when tracing is off).
    pub fn traceparent(&self) -> Option<TraceParent> {
        use opentelemetry::trace::Span as _;
        traceparent_of(self.inner.as_ref()?.span_context())
    }

    /// The span records (tracing on and the trace sampled): worth computing attributes for.
    pub fn is_recording(&self) -> bool {
        use opentelemetry::trace::Span as _;
        self.inner.as_ref().is_some_and(|s| s.is_recording())
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = self.inner.as_mut() {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed, with the error's wire code (`error.type`) and message.
    pub fn fail(&mut self, error_type: &'static str, message: impl Into<String>) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = self.inner.as_mut() {
            s.set_attribute(KeyValue::new("error.type", error_type));
            s.set_status(Status::error(message.into()));
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

/// Starts span `name` of `kind` under `parent` (a new trace without one), with the attributes
/// `attrs` adds; `attrs` runs only when tracing is on.
pub fn start(
    name: &'static str,
    kind: Kind,
    parent: Option<&TraceParent>,
    attrs: impl FnOnce(&mut Vec<KeyValue>),
) -> Span {
    start_linked(name, kind, parent, &[], attrs)
}

/// As [`start`], also linking the spans of `links` (the other requests of a batch, or a
/// client's context that is not trusted as a parent).
pub fn start_linked(
    name: &'static str,
    kind: Kind,
    parent: Option<&TraceParent>,
    links: &[&TraceParent],
    attrs: impl FnOnce(&mut Vec<KeyValue>),
) -> Span {
    let Some(tracer) = TRACER.get() else {
        return Span::none();
    };
    let mut attributes = Vec::with_capacity(8);
    attrs(&mut attributes);
    let cx = match parent.and_then(remote) {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => Context::new(),
    };
    let links: Vec<Link> = links
        .iter()
        .filter_map(|tp| remote(tp))
        .map(Link::with_context)
        .collect();
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind.into())
        .with_attributes(attributes);
    if !links.is_empty() {
        builder = builder.with_links(links);
    }
    Span {
        inner: Some(Box::new(tracer.build_with_context(builder, &cx))),
    }
}

/// What a messaging span does with one message (OpenTelemetry's `messaging.operation.type`
/// and `messaging.operation.name`).
#[derive(Debug, Clone, Copy)]
pub enum MessageOp {
    /// The router publishes a sequenced message to the room's subscribers (producer).
    Publish,
    /// A gateway fans a delivery out to its connections (consumer).
    Deliver,
}

/// The span of one sequenced message of `room` on its way to subscribers, under `parent` (the
/// send's context, or the publisher's from the bus). No parent, no span: untraced work has no
/// trace to join.
pub fn message_span(
    op: MessageOp,
    system: &'static str,
    room: &str,
    seq: u64,
    parent: Option<&TraceParent>,
) -> Span {
    let Some(parent) = parent.filter(|_| enabled()) else {
        return Span::none();
    };
    let (name, kind, op_type, op_name) = match op {
        MessageOp::Publish => ("publish", Kind::Producer, "send", "publish"),
        MessageOp::Deliver => ("process", Kind::Consumer, "process", "deliver"),
    };
    start(name, kind, Some(parent), |a| {
        a.push(KeyValue::new("messaging.system", system));
        a.push(KeyValue::new("messaging.operation.type", op_type));
        a.push(KeyValue::new("messaging.operation.name", op_name));
        a.push(KeyValue::new("messaging.destination.name", room.to_owned()));
        a.push(KeyValue::new(
            "messaging.message.id",
            format!("{room}/{seq}"),
        ));
        a.push(KeyValue::new("chorus.seq", seq as i64));
    })
}

/// Most links a batch span records to the other traces in its batch.
pub const MAX_LINKS: usize = 16;

/// Starts the span of something done once for a batch (a gRPC call, a store append): under
/// the first of `traces`, linked to the other traces among them (at most [`MAX_LINKS`]). No
/// trace, no span: a batch of untraced work is not worth a root of its own.
pub fn span_for_batch<'a>(
    name: &'static str,
    kind: Kind,
    traces: impl IntoIterator<Item = &'a TraceParent>,
    attrs: impl FnOnce(&mut Vec<KeyValue>),
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let mut traces = traces.into_iter();
    let Some(parent) = traces.next() else {
        return Span::none();
    };
    let mut linked: Vec<&TraceParent> = Vec::new();
    for t in traces {
        if t.trace_id() != parent.trace_id()
            && linked.len() < MAX_LINKS
            && !linked.iter().any(|l| l.trace_id() == t.trace_id())
        {
            linked.push(t);
        }
    }
    start_linked(name, kind, Some(parent), &linked, attrs)
}

/// [`span_for_batch`] over a batch of sends; the sends of the parent's trace then continue
/// under the new span (their `trace` becomes its context), so the next process sees the call
/// in their trace.
pub fn batch_span(
    name: &'static str,
    kind: Kind,
    reqs: &mut [SendRequest],
    attrs: impl FnOnce(&mut Vec<KeyValue>),
) -> Span {
    let span = span_for_batch(
        name,
        kind,
        reqs.iter().filter_map(|r| r.trace.as_ref()),
        attrs,
    );
    adopt_into(reqs, &span);
    span
}

/// The sends of `span`'s trace continue under `span`.
pub fn adopt_into(reqs: &mut [SendRequest], span: &Span) {
    if let Some(tp) = span.traceparent() {
        for r in reqs.iter_mut() {
            if r.trace
                .as_ref()
                .is_some_and(|t| t.trace_id() == tp.trace_id())
            {
                r.trace = Some(tp.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Span>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn off_by_default_and_inert() {
        // No init in this test binary: spans record nothing and never run the attributes.
        assert!(!enabled());
        let span = start("send", Kind::Producer, None, |_| {
            panic!("attributes are computed only when tracing is on")
        });
        assert!(span.traceparent().is_none());
        assert!(!span.is_recording());
    }

    #[test]
    fn a_traceparent_round_trips_through_a_span_context() {
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let sc = remote(&tp).unwrap();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(traceparent_of(&sc), Some(tp));
    }

    #[test]
    fn refuses_a_bad_ratio_or_endpoint_without_installing_anything() {
        let bad_ratio = TraceConfig {
            endpoint: Some("http://127.0.0.1:4317".into()),
            sample_ratio: 1.5,
            ..TraceConfig::default()
        };
        assert!(matches!(
            init("chorus-test", "t", &bad_ratio),
            Err(TelemetryError::BadRatio(_))
        ));
        let bad_scheme = TraceConfig {
            endpoint: Some("127.0.0.1:4317".into()),
            sample_ratio: 1.0,
            ..TraceConfig::default()
        };
        assert!(matches!(
            init("chorus-test", "t", &bad_scheme),
            Err(TelemetryError::BadEndpoint { .. })
        ));
        assert!(!enabled());
        assert!(
            !init("chorus-test", "t", &TraceConfig::default())
                .unwrap()
                .is_on()
        );
    }
}
