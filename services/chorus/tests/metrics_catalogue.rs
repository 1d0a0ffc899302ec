//! The metrics catalogue (docs/operations/metrics.md) against what a cluster exposes: after
//! real traffic, every `chorus_*` family on `/metrics` is documented there, and the families
//! that measure the send → deliver path have samples. The cluster's processes run in this
//! test process and share one registry, so one scrape shows gateway, router and ring metrics.

mod common;

use std::collections::BTreeSet;

use common::{Client, cluster, http_get};

fn documented() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations/metrics.md"
    );
    std::fs::read_to_string(path).expect("docs/operations/metrics.md exists")
}

/// Metric families in a Prometheus text page (histogram series folded into their family).
fn families(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| l.starts_with("chorus_"))
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// The sum of the samples of `series` (a name, optionally with a label matcher prefix).
fn sum(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `promtool check metrics` finds nothing to say about `page` (help text, names, units).
fn promtool_is_clean(page: &str) {
    use std::io::Write;
    let promtool = std::env::var("CHORUS_PROMTOOL")
        .expect("CHORUS_PROMTOOL is set by scripts/with-test-services.sh (make test)");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exposed_metric_is_in_the_catalogue_and_the_delivery_path_is_measured() {
    let cluster = cluster::start_cluster(common::unthrottled(), 1, 1).await;
    let server = common::Server::for_cluster(cluster);
    let mut reader = server.joined("reader", "metrics-room").await;
    let mut writer = server.joined("writer", "metrics-room").await;
    for i in 0..20 {
        let ack = writer.send("metrics-room", &format!("m{i}"), "hello").await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    assert_eq!(reader.msgs(20).await.len(), 20);
    let h = writer
        .call(serde_json::json!({"type":"history","room":"metrics-room","limit":5}))
        .await;
    assert_eq!(h["type"], "history");
    let mut bad = Client::connect_bare(&server.ws_url()).await;
    bad.send_json(serde_json::json!({"type":"join","room":"x"}))
        .await;
    bad.expect("error").await;

    let page = http_get(&server.http_url("/metrics")).await;
    let catalogue = documented();
    let missing: Vec<_> = families(&page)
        .into_iter()
        .filter(|f| !catalogue.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/operations/metrics.md: {missing:?}"
    );
    // Count what is measured: an empty histogram would pass any threshold.
    for series in [
        "chorus_gateway_delivery_lag_seconds_count",
        "chorus_gateway_send_seconds_count",
        "chorus_store_append_seconds_count",
        "chorus_grpc_client_seconds_count{method=\"send_batch\"}",
        "chorus_grpc_client_seconds_count{method=\"join\"}",
        "chorus_grpc_client_seconds_count{method=\"history\"}",
        "chorus_messages_sequenced_total",
        "chorus_gateway_deliveries_total",
        "chorus_gateway_connections_total",
    ] {
        assert!(sum(&page, series) > 0.0, "{series} has no samples:\n{page}");
    }
    assert!(
        sum(&page, "chorus_ring_version") > 0.0,
        "ring version is set"
    );
    promtool_is_clean(&page);
    assert!(sum(&page, "chorus_gateway_frames_in_total{type=\"join\"}") >= 2.0);
}
