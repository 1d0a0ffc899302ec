//! Traces through a real OpenTelemetry Collector: the `chorus` binaries export OTLP/gRPC to the
//! collector that scripts/otelcol.sh builds (`make test` passes its path in CHORUS_OTELCOL),
//! and the collector forwards every span, as OTLP/JSON over HTTP, to a receiver in this test.
//!
//! - In a cluster (two routers, two gateways on the real NATS and Cassandra), one message is
//!   one trace: the client's span → the gateway's `send` → the gRPC client and server spans →
//!   the store append and the NATS publish → each gateway's `process`, with the context in the
//!   protocol frame, the gRPC metadata and request, and the NATS headers.
//! - In standalone, the same chain over the in-process bus; a client's context is only linked
//!   unless `--trace-client-parent` says to trust it; a malformed one costs nothing.

mod common;

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use common::{Client, SECRET, cluster, procs::ProcCluster, token};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// One span as the collector exported it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    instance: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    /// OTLP's SpanKind: 2 server, 3 client, 4 producer, 5 consumer.
    kind: i64,
    attrs: HashMap<String, Value>,
    links: Vec<(String, String)>,
    /// OTLP's status code: 2 is error.
    status: i64,
}

const SERVER: i64 = 2;
const CLIENT: i64 = 3;
const PRODUCER: i64 = 4;
const CONSUMER: i64 = 5;

impl Span {
    fn attr(&self, key: &str) -> Option<String> {
        let v = self.attrs.get(key)?;
        v.get("stringValue")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                v.get("intValue")
                    .map(|i| i.to_string().trim_matches('"').to_owned())
            })
            .or_else(|| v.get("boolValue").map(|b| b.to_string()))
    }
}

fn attrs(list: &Value) -> HashMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), kv["value"].clone())))
        .collect()
}

/// The spans of one OTLP/JSON `ExportTraceServiceRequest`.
fn spans_of(body: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in body["resourceSpans"].as_array().into_iter().flatten() {
        let resource = attrs(&rs["resource"]["attributes"]);
        let text = |k: &str| {
            resource
                .get(k)
                .and_then(|v| v["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                out.push(Span {
                    service: text("service.name"),
                    instance: text("service.instance.id"),
                    trace_id: s["traceId"].as_str().unwrap_or_default().to_owned(),
                    span_id: s["spanId"].as_str().unwrap_or_default().to_owned(),
                    parent: s["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    kind: s["kind"].as_i64().unwrap_or_default(),
                    attrs: attrs(&s["attributes"]),
                    links: s["links"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| {
                            (
                                l["traceId"].as_str().unwrap_or_default().to_owned(),
                                l["spanId"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                    status: s["status"]["code"].as_i64().unwrap_or_default(),
                });
            }
        }
    }
    out
}

type Received = Arc<Mutex<Vec<Span>>>;

/// A real collector on loopback, and the receiver it forwards spans to.
struct Collector {
    child: Child,
    /// Where chorus exports (OTLP/gRPC).
    endpoint: String,
    spans: Received,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Collector {
    async fn start() -> Collector {
        let bin = std::env::var("CHORUS_OTELCOL").expect(
            "CHORUS_OTELCOL names the collector scripts/otelcol.sh builds \
             (scripts/with-test-services.sh sets it; make test runs that)",
        );
        let spans: Received = Arc::default();
        let app = Router::new()
            .route(
                "/v1/traces",
                post(|State(spans): State<Received>, body: Bytes| async move {
                    let v: Value =
                        serde_json::from_slice(&body).expect("OTLP/JSON from the collector");
                    spans.lock().unwrap().extend(spans_of(&v));
                    ([("content-type", "application/json")], "{}")
                }),
            )
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let grpc = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("collector.yaml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\n\
                 exporters:\n  otlp_http:\n    endpoint: http://{sink}\n    encoding: json\n    compression: none\n\
                 service:\n  telemetry:\n    metrics:\n      level: none\n\
                 \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_http]\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("collector.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("the collector starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", grpc))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the collector did not listen on {grpc}: {}",
                std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Collector {
            child,
            endpoint: format!("http://127.0.0.1:{grpc}"),
            spans,
            _dir: dir,
        }
    }

    /// Environment that makes a chorus process export every trace here, promptly.
    fn env(&self, ratio: &str, trust_client: bool) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.endpoint.clone()),
            ("CHORUS_TRACE_SAMPLE_RATIO".into(), ratio.into()),
            (
                "CHORUS_TRACE_CLIENT_PARENT".into(),
                trust_client.to_string(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]
    }

    /// Waits until `done` holds for the spans received so far, and returns them.
    async fn until(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 30 s; received {} spans: {:#?}",
                spans.len(),
                spans
                    .iter()
                    .map(|s| format!(
                        "{} {} {} parent={} trace={}",
                        s.service, s.name, s.span_id, s.parent, s.trace_id
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A client-side context, as a traced app would put in its frames.
const CLIENT_TRACE: &str = "5a1e0c0ffee0000000000000000c4a7e";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

fn one<'a>(spans: &'a [Span], what: &str, f: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} span: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_message_is_one_trace_from_the_client_frame_to_each_delivering_gateway() {
    let collector = Collector::start().await;
    let c = ProcCluster::start_with_env(
        "traces",
        cluster::nats_url(),
        cluster::cql_contact(),
        2,
        collector.env("1", true),
    )
    .await;
    let room = "traced-room";
    let mut reader = Client::connect_with_header(&c.gateway_url(1), &token("reader")).await;
    reader.expect("ready").await;
    reader.join(room, None).await;
    let mut writer = Client::connect_with_header(&c.gateway_url(0), &token("writer")).await;
    writer.expect("ready").await;
    writer.join(room, None).await;
    let ack = writer
        .call(
            json!({"type":"send","room":room,"client_msg_id":"t-1","body":"hello",
                      "traceparent": client_traceparent()}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().unwrap();
    let msg = reader.expect("msg").await;
    assert_eq!(msg["seq"], json!(seq));

    // Both gateways have a subscriber, so both fan the message out.
    let spans = collector
        .until("cluster trace with two deliveries", |spans| {
            spans
                .iter()
                .filter(|s| s.trace_id == CLIENT_TRACE && s.name == "process")
                .count()
                >= 2
                && spans.iter().any(|s| {
                    s.trace_id == CLIENT_TRACE
                        && s.name == "chorus.v1.Router/SendBatch"
                        && s.kind == CLIENT
                })
        })
        .await;
    let trace: Vec<Span> = spans
        .into_iter()
        .filter(|s| s.trace_id == CLIENT_TRACE)
        .collect();

    // The client's span is the parent of the gateway's `send` (the gateway trusts clients here).
    let send = one(&trace, "gateway send", |s| s.name == "send");
    assert_eq!(
        (send.service.as_str(), send.kind, send.parent.as_str()),
        ("chorus-gateway", PRODUCER, CLIENT_SPAN)
    );
    assert_eq!(
        send.attr("messaging.destination.name").as_deref(),
        Some(room)
    );
    assert_eq!(send.attr("messaging.message.id").as_deref(), Some("t-1"));
    assert_eq!(send.attr("chorus.seq"), Some(seq.to_string()));
    assert_eq!(send.attr("chorus.transport").as_deref(), Some("websocket"));

    // gRPC: the call's context travels in its metadata.
    let rpc_client = one(&trace, "gRPC client", |s| {
        s.name == "chorus.v1.Router/SendBatch" && s.kind == CLIENT
    });
    assert_eq!(rpc_client.service, "chorus-gateway");
    assert_eq!(rpc_client.parent, send.span_id);
    assert_eq!(rpc_client.attr("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(rpc_client.attr("rpc.method").as_deref(), Some("SendBatch"));
    let rpc_server = one(&trace, "gRPC server", |s| {
        s.name == "chorus.v1.Router/SendBatch" && s.kind == SERVER
    });
    assert_eq!(rpc_server.service, "chorus-router");
    assert_eq!(rpc_server.parent, rpc_client.span_id);

    // The router's store write and publish continue the send's context from the request.
    let append = one(&trace, "store append", |s| s.name == "append messages");
    assert_eq!(
        (append.service.as_str(), append.kind),
        ("chorus-router", CLIENT)
    );
    assert_eq!(append.parent, rpc_server.span_id);
    assert_eq!(append.attr("db.operation.batch.size").as_deref(), Some("1"));
    let publish = one(&trace, "publish", |s| s.name == "publish");
    assert_eq!(
        (publish.service.as_str(), publish.kind),
        ("chorus-router", PRODUCER)
    );
    assert_eq!(publish.parent, rpc_server.span_id);
    assert_eq!(publish.attr("messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        publish.attr("messaging.message.id"),
        Some(format!("{room}/{seq}"))
    );

    // Each gateway's delivery continues from the NATS headers, one per gateway.
    let processes: Vec<&Span> = trace.iter().filter(|s| s.name == "process").collect();
    assert_eq!(processes.len(), 2, "{processes:#?}");
    for p in &processes {
        assert_eq!((p.service.as_str(), p.kind), ("chorus-gateway", CONSUMER));
        assert_eq!(p.parent, publish.span_id);
        assert_eq!(p.attr("messaging.system").as_deref(), Some("nats"));
        assert_eq!(p.attr("chorus.seq"), Some(seq.to_string()));
        assert_eq!(p.attr("chorus.subscribers").as_deref(), Some("1"));
    }
    let instances: std::collections::BTreeSet<&str> =
        processes.iter().map(|p| p.instance.as_str()).collect();
    assert_eq!(
        instances.len(),
        2,
        "one delivery on each gateway: {instances:?}"
    );
    assert!(
        instances
            .iter()
            .any(|i| i.ends_with(&c.gateways[1].addr.to_string())),
        "the reader's gateway delivered: {instances:?}"
    );
    assert!(
        trace.iter().all(|s| s.status != 2),
        "no span failed: {trace:#?}"
    );
}

/// `chorus standalone` with `env`, on a free port and a fresh data dir.
async fn standalone(
    name: &'static str,
    env: Vec<(String, String)>,
) -> (Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    cmd.args([
        "standalone",
        "--listen",
        "127.0.0.1:0",
        "--web=false",
        "--data-dir",
    ])
    .arg(dir.path().join("data"))
    .env("CHORUS_JWT_SECRET", SECRET);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = common::procs::log_dir("traces").join(format!("{name}.log"));
    let (child, line) =
        common::procs::spawn(cmd, log, "chorus standalone listening on http://").await;
    let addr = line
        .trim_start_matches("chorus standalone listening on http://")
        .to_owned();
    (child, format!("ws://{addr}/v1/ws"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_traces_the_in_process_path_and_only_links_an_untrusted_client_context() {
    let collector = Collector::start().await;
    let (_server, url, _dir) = standalone("standalone-untrusted", collector.env("1", false)).await;
    let mut alice = Client::connect_with_header(&url, &token("alice")).await;
    alice.expect("ready").await;
    alice.join("general", None).await;
    let ack = alice
        .call(
            json!({"type":"send","room":"general","client_msg_id":"s-1","body":"hi",
                      "traceparent": client_traceparent()}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // A malformed context is ignored: the send is acknowledged all the same.
    let ack2 = alice
        .call(
            json!({"type":"send","room":"general","client_msg_id":"s-2","body":"again",
                      "traceparent": "00-not-a-context"}),
        )
        .await;
    assert_eq!(ack2["type"], "ack", "{ack2}");

    let spans = collector
        .until("two standalone deliveries", |spans| {
            spans.iter().filter(|s| s.name == "process").count() >= 2
        })
        .await;
    // Not trusted: the server's span starts its own trace and links the client's.
    let send = one(&spans, "send of s-1", |s| {
        s.name == "send" && s.attr("messaging.message.id").as_deref() == Some("s-1")
    });
    assert_eq!(send.service, "chorus-standalone");
    assert_ne!(send.trace_id, CLIENT_TRACE);
    assert_eq!(send.parent, "");
    assert_eq!(
        send.links,
        vec![(CLIENT_TRACE.to_owned(), CLIENT_SPAN.to_owned())]
    );
    assert!(spans.iter().all(|s| s.trace_id != CLIENT_TRACE));
    // In one process the chain is send → append and publish → process, over the in-process bus.
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == send.trace_id)
        .cloned()
        .collect();
    let append = one(&trace, "append", |s| s.name == "append messages");
    assert_eq!(append.parent, send.span_id);
    let publish = one(&trace, "publish", |s| s.name == "publish");
    assert_eq!(publish.parent, send.span_id);
    assert_eq!(publish.attr("messaging.system").as_deref(), Some("chorus"));
    let process = one(&trace, "process", |s| s.name == "process");
    assert_eq!(
        (process.kind, process.parent.as_str()),
        (CONSUMER, publish.span_id.as_str())
    );
    // The malformed context's send has a trace of its own, with no link.
    let send2 = one(&spans, "send of s-2", |s| {
        s.name == "send" && s.attr("messaging.message.id").as_deref() == Some("s-2")
    });
    assert!(send2.links.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_client_decides_sampling_and_ratio_zero_records_nothing_else() {
    let collector = Collector::start().await;
    let (_server, url, _dir) = standalone("standalone-trusted", collector.env("0", true)).await;
    let mut bob = Client::connect_with_header(&url, &token("bob")).await;
    bob.expect("ready").await;
    bob.join("general", None).await;
    // Untraced sends are not sampled at ratio 0 ...
    for i in 0..5 {
        let ack = bob
            .call(
                json!({"type":"send","room":"general","client_msg_id":format!("u-{i}"),"body":"x"}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // ... a client's sampled context is recorded, whole.
    let ack = bob
        .call(
            json!({"type":"send","room":"general","client_msg_id":"traced","body":"y",
                      "traceparent": client_traceparent()}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    collector
        .until("the client's trace", |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == CLIENT_TRACE && s.name == "process")
        })
        .await;
    // Give stragglers of the unsampled sends a chance to show up (they must not).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = collector.spans.lock().unwrap().clone();
    assert!(
        spans.iter().all(|s| s.trace_id == CLIENT_TRACE),
        "only the client's trace is recorded: {spans:#?}"
    );
    let names: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["append messages", "process", "publish", "send"]
            .into_iter()
            .collect()
    );
    let send = one(&spans, "send", |s| s.name == "send");
    assert_eq!(send.parent, CLIENT_SPAN);
}
