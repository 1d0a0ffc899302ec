//! What the cluster's processes say about a run: their Prometheus `/metrics` before and
//! after, as differences (histograms as count, mean and bucket bounds of p50/p99; counters that
//! moved), over a plain HTTP/1.0 GET.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One scrape: every sample by its series (name and labels as written).
#[derive(Debug, Default, Clone)]
pub struct Scrape(BTreeMap<String, f64>);

/// GETs `http://addr/metrics`.
pub async fn scrape(addr: &str) -> anyhow::Result<Scrape> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .with_context(|| format!("GET http://{addr}/metrics timed out"))?
        .with_context(|| format!("GET http://{addr}/metrics"))?;
    let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("GET http://{addr}/metrics: no HTTP header end");
    };
    if !response.starts_with(b"HTTP/1.1 200") && !response.starts_with(b"HTTP/1.0 200") {
        let status = String::from_utf8_lossy(&response[..at.min(64)]).into_owned();
        bail!("GET http://{addr}/metrics: {status}");
    }
    Ok(parse(&String::from_utf8_lossy(&response[at + 4..])))
}

fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `series value [timestamp]`; label values here never hold spaces.
        let mut parts = line.split_ascii_whitespace();
        let (Some(series), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            samples.insert(series.to_owned(), v);
        }
    }
    Scrape(samples)
}

/// A histogram's change between two scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramDelta {
    pub count: f64,
    pub sum: f64,
    /// Cumulative counts by upper bound, ascending (`+Inf` last).
    pub buckets: Vec<(f64, f64)>,
}

impl HistogramDelta {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The upper bound of the bucket holding the `p`-th percentile.
    pub fn quantile_bound(&self, p: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = (p / 100.0 * self.count).ceil().max(1.0);
        self.buckets
            .iter()
            .find(|&&(_, c)| c >= rank)
            .map(|&(le, _)| le)
    }
}

/// The changes between two scrapes of one process: histograms by family name, and the
/// counters (`*_total` series) that moved.
#[derive(Debug, Default)]
pub struct Delta {
    pub histograms: BTreeMap<String, HistogramDelta>,
    pub counters: BTreeMap<String, f64>,
}

pub fn delta(before: &Scrape, after: &Scrape) -> Delta {
    let was = |k: &str| before.0.get(k).copied().unwrap_or(0.0);
    let mut d = Delta::default();
    for (series, &v) in &after.0 {
        if let Some(family) = series.strip_suffix("_count") {
            let sum = format!("{family}_sum");
            let Some(&sum_after) = after.0.get(&sum) else {
                continue;
            };
            let prefix = format!("{family}_bucket{{le=\"");
            let mut buckets: Vec<(f64, f64)> = after
                .0
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(k, &c)| {
                    let le = k[prefix.len()..].trim_end_matches("\"}");
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    Some((le, c - was(k)))
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            d.histograms.insert(
                family.to_owned(),
                HistogramDelta {
                    count: v - was(series),
                    sum: sum_after - was(&sum),
                    buckets,
                },
            );
        } else if series
            .split('{')
            .next()
            .is_some_and(|n| n.ends_with("_total"))
        {
            let moved = v - was(series);
            if moved != 0.0 {
                d.counters.insert(series.clone(), moved);
            }
        }
    }
    d
}

/// A series name as a `key=value` key: `a_total{code="x"}` becomes `a_total.code.x`.
pub fn key(series: &str) -> String {
    series.replace(['{', '=', ','], ".").replace(['"', '}'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# TYPE chorus_store_append_seconds histogram
chorus_store_append_seconds_bucket{le=\"0.001\"} 1
chorus_store_append_seconds_bucket{le=\"0.005\"} 2
chorus_store_append_seconds_bucket{le=\"+Inf\"} 2
chorus_store_append_seconds_sum 0.004
chorus_store_append_seconds_count 2
chorus_messages_sequenced_total 2
chorus_gateway_errors_total{code=\"unavailable\"} 1
chorus_ring_routers 2
";

    const AFTER: &str = "\
chorus_store_append_seconds_bucket{le=\"0.001\"} 3
chorus_store_append_seconds_bucket{le=\"0.005\"} 11
chorus_store_append_seconds_bucket{le=\"+Inf\"} 12
chorus_store_append_seconds_sum 0.054
chorus_store_append_seconds_count 12
chorus_messages_sequenced_total 30
chorus_gateway_errors_total{code=\"unavailable\"} 1
chorus_gateway_errors_total{code=\"limit_exceeded\"} 4
chorus_ring_routers 1
";

    #[test]
    fn histograms_and_counters_are_differences() {
        let d = delta(&parse(BEFORE), &parse(AFTER));
        let h = &d.histograms["chorus_store_append_seconds"];
        assert_eq!(h.count, 10.0);
        assert!((h.mean().unwrap() - 0.005).abs() < 1e-9);
        assert_eq!(
            h.buckets,
            [(0.001, 2.0), (0.005, 9.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(h.quantile_bound(50.0), Some(0.005));
        assert_eq!(h.quantile_bound(10.0), Some(0.001));
        assert_eq!(h.quantile_bound(99.0), Some(f64::INFINITY));
        assert_eq!(
            d.counters.keys().collect::<Vec<_>>(),
            [
                "chorus_gateway_errors_total{code=\"limit_exceeded\"}",
                "chorus_messages_sequenced_total"
            ]
        );
        assert_eq!(d.counters["chorus_messages_sequenced_total"], 28.0);
        assert_eq!(
            key("chorus_gateway_errors_total{code=\"limit_exceeded\"}"),
            "chorus_gateway_errors_total.code.limit_exceeded"
        );
    }

    #[test]
    fn an_unused_histogram_has_no_quantiles() {
        let empty = HistogramDelta {
            count: 0.0,
            sum: 0.0,
            buckets: vec![],
        };
        assert_eq!(empty.mean(), None);
        assert_eq!(empty.quantile_bound(50.0), None);
    }
}
