//! The figures of a `cluster` run, as `key=value` lines, and what makes the run fail.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use tokio::time::Instant;

use super::{
    ClusterArgs, CpuSample, metrics,
    traffic::{self, Acks, Plan, Received, RoomTimes, Sent, Stall},
};
use crate::stats;

/// Everything a run collected.
pub struct Run<'a> {
    pub args: &'a ClusterArgs,
    pub plan: &'a Plan,
    pub send_url: &'a str,
    pub recv_url: &'a str,
    pub connect_ms: u128,
    pub sent: &'a [Sent],
    pub acks: &'a mut [Acks],
    pub received: &'a mut [Received],
    pub last_send: Instant,
    pub drained: Instant,
    /// The pid killed, and when.
    pub killed: Option<(u32, Instant)>,
    /// At the end of the warm-up, and after the last send.
    pub cpu: (CpuSample, CpuSample),
    /// At the end of the warm-up, and after the drain.
    pub metrics: (Vec<Option<metrics::Scrape>>, Vec<Option<metrics::Scrape>>),
}

/// The `key=value` results.
#[derive(Default)]
struct Report(String);

impl Report {
    fn kv(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "{key}={value}");
    }

    /// p50, p90, p99, p99.9, max and mean of ascending samples, as `{name}_{p}_us`.
    fn percentiles(&mut self, name: &str, sorted: &[u32]) {
        self.kv(&format!("{name}_samples"), sorted.len());
        for (p, label) in [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p999")] {
            self.kv(&format!("{name}_{label}_us"), stats::percentile(sorted, p));
        }
        self.kv(
            &format!("{name}_max_us"),
            sorted.last().copied().unwrap_or(0),
        );
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / sorted.len() as f64
        };
        self.kv(&format!("{name}_mean_us"), format!("{mean:.0}"));
    }
}

/// Every room's event times, ascending.
fn merge_times(parts: impl IntoIterator<Item = RoomTimes>) -> RoomTimes {
    let mut all = RoomTimes::new();
    for part in parts {
        for (room, mut t) in part {
            all.entry(room).or_default().append(&mut t);
        }
    }
    for t in all.values_mut() {
        t.sort_unstable();
    }
    all
}

fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

/// Nearest-rank percentile of ascending nanoseconds, as milliseconds.
fn pct_ms(sorted: &[u64], p: f64) -> String {
    if sorted.is_empty() {
        return "0".into();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The figures, and the reasons the run does not count (none: it does).
pub fn figures(run: Run) -> anyhow::Result<(String, Vec<String>)> {
    let Run {
        args,
        plan,
        connect_ms,
        last_send,
        drained,
        killed,
        ..
    } = run;
    let (cpu_before, cpu_after) = &run.cpu;
    let (metrics_before, metrics_after) = &run.metrics;
    let (acks, received, sent_parts) = (run.acks, run.received, run.sent);
    let n_rooms = plan.rooms.len();
    let n_senders = plan.senders();
    let n_receivers = received.len();
    let w_ns = plan.warmup_ns;
    let mut r = Report::default();
    r.kv("mode", "cluster");
    r.kv("send_url", run.send_url);
    r.kv("recv_url", run.recv_url);
    r.kv("rooms", n_rooms);
    r.kv("senders", n_senders);
    r.kv("receivers", n_receivers);
    r.kv("rate", args.rate);
    r.kv("warmup_secs", args.warmup_secs);
    r.kv("duration_secs", args.duration_secs);
    r.kv("body_bytes", args.body_bytes);
    r.kv("client_msg_ids", plan.client_msg_ids);
    r.kv("connect_ms", connect_ms);
    // Wall-clock time of the first send, to line the run up with the cluster's logs.
    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .saturating_sub(plan.start.elapsed());
    r.kv("start_unix_ms", start_unix.as_millis());

    let sent: u64 = sent_parts.iter().map(|s| s.sent).sum();
    let acked = plan.acked.load(Ordering::Acquire);
    let refused = plan.refused.load(Ordering::Acquire);
    let delivered = plan.delivered.load(Ordering::Acquire);
    let (missing, unacked) = plan.unmatched();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_refusal = None;
    let (mut stray_acks, mut echoes) = (0, 0);
    let mut lost = Vec::new();
    for a in acks.iter() {
        for (code, n) in &a.refusals {
            *refusals.entry(code.clone()).or_default() += n;
        }
        if first_refusal.is_none() {
            first_refusal.clone_from(&a.first_refusal);
        }
        stray_acks += a.stray_acks;
        echoes += a.echoes;
        lost.extend(a.lost.clone());
    }
    let (mut gaps, mut out_of_order, mut dups, mut foreign, mut recv_errors) = (0, 0, 0, 0, 0);
    for x in received.iter() {
        gaps += x.gaps;
        out_of_order += x.out_of_order;
        dups += x.dups;
        foreign += x.foreign;
        recv_errors += x.errors;
        lost.extend(x.lost.clone());
    }
    r.kv("messages", plan.total);
    r.kv("sent", sent);
    r.kv("acked", acked);
    r.kv("refused", refused);
    for (code, n) in &refusals {
        r.kv(&format!("refused.{code}"), n);
    }
    r.kv("delivered", delivered);
    r.kv("missing", missing);
    r.kv("delivered_unacked", unacked);
    r.kv("gaps", gaps);
    r.kv("out_of_order", out_of_order);
    r.kv("dup_deliveries", dups);
    r.kv("stray_acks", stray_acks);
    r.kv("foreign", foreign);
    r.kv("receiver_errors", recv_errors);
    r.kv("lost_connections", lost.len());
    r.kv("sender_echoes", echoes);

    // Rates over the measured window, from the end of the warm-up.
    let mut lag: Vec<u32> = sent_parts
        .iter()
        .flat_map(|s| s.lag_us.iter().copied())
        .collect();
    lag.sort_unstable();
    let mut ack_lat: Vec<u32> = acks
        .iter()
        .flat_map(|a| a.latency_us.iter().copied())
        .collect();
    ack_lat.sort_unstable();
    let samples: Vec<traffic::Sample> = received
        .iter()
        .flat_map(|x| x.latency.iter().copied())
        .collect();
    let mut lat: Vec<u32> = samples.iter().map(|s| s.us).collect();
    lat.sort_unstable();
    let rate_over = |n: usize, until_ns: Option<u64>| match until_ns {
        Some(t) if t > w_ns => n as f64 / ((t - w_ns) as f64 / 1e9),
        _ => 0.0,
    };
    let last_ack = acks.iter().filter_map(|a| a.last_measured_ns).max();
    let last_delivery = received.iter().filter_map(|x| x.last_measured_ns).max();
    r.kv("measured_sent", lag.len());
    r.kv(
        "send_rate_achieved",
        format!("{:.1}", rate_over(lag.len(), Some(plan.ns(last_send)))),
    );
    r.kv(
        "ack_rate",
        format!("{:.1}", rate_over(ack_lat.len(), last_ack)),
    );
    r.kv(
        "deliver_rate",
        format!("{:.1}", rate_over(lat.len(), last_delivery)),
    );
    r.kv(
        "drain_ms",
        drained.saturating_duration_since(last_send).as_millis(),
    );
    r.percentiles("latency", &lat);
    // The same by when the message was sent: a backlog that grows shows as a rising p99.
    let slice = |from_ms: u32, to_ms: u32| {
        let mut v: Vec<u32> = samples
            .iter()
            .filter(|s| (from_ms..to_ms).contains(&s.sent_ms))
            .map(|s| s.us)
            .collect();
        v.sort_unstable();
        v
    };
    let measured_ms = (args.duration_secs * 1e3) as u32;
    let half = measured_ms / 2;
    r.kv(
        "latency_p99_first_half_us",
        stats::percentile(&slice(0, half), 99.0),
    );
    r.kv(
        "latency_p99_second_half_us",
        stats::percentile(&slice(half, u32::MAX), 99.0),
    );
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for sec in 0..measured_ms.div_ceil(1000) {
        let v = slice(sec * 1000, (sec + 1) * 1000);
        p50s.push(format!(
            "{:.1}",
            f64::from(stats::percentile(&v, 50.0)) / 1e3
        ));
        p99s.push(format!(
            "{:.1}",
            f64::from(stats::percentile(&v, 99.0)) / 1e3
        ));
    }
    r.kv("latency_p50_by_second_ms", p50s.join(","));
    r.kv("latency_p99_by_second_ms", p99s.join(","));
    r.percentiles("ack_latency", &ack_lat);
    r.kv("send_lag_p99_us", stats::percentile(&lag, 99.0));
    r.kv("send_lag_max_us", lag.last().copied().unwrap_or(0));

    // Each room's longest pause between acks (and deliveries) after the warm-up or the kill.
    let ack_times = merge_times(acks.iter_mut().map(|a| std::mem::take(&mut a.times)));
    let deliver_times = merge_times(received.iter_mut().map(|x| std::mem::take(&mut x.times)));
    let stalls = |times: &RoomTimes, after: u64| -> Vec<Option<Stall>> {
        (0..n_rooms)
            .map(|room| {
                times
                    .get(&room)
                    .and_then(|t| traffic::longest_stall(t, after))
            })
            .collect()
    };
    let lengths = |s: &[Option<Stall>]| {
        let mut v: Vec<u64> = s.iter().flatten().map(Stall::len_ns).collect();
        v.sort_unstable();
        v
    };
    let after_warmup = lengths(&stalls(&ack_times, w_ns));
    r.kv("ack_stall_p50_ms", pct_ms(&after_warmup, 50.0));
    r.kv("ack_stall_max_ms", pct_ms(&after_warmup, 100.0));
    let after_warmup = lengths(&stalls(&deliver_times, w_ns));
    r.kv("deliver_stall_max_ms", pct_ms(&after_warmup, 100.0));

    let mut no_stall = false;
    if let Some((pid, at)) = killed {
        let kill_ns = plan.ns(at);
        let threshold = args.stall_threshold_ms * 1_000_000;
        r.kv("killed_pid", pid);
        r.kv("kill_at_ms", ms(kill_ns));
        // Wall-clock time of the kill, to line it up with the cluster's logs.
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .saturating_sub(at.elapsed());
        r.kv("kill_unix_ms", wall.as_millis());
        r.kv("stall_threshold_ms", args.stall_threshold_ms);
        let ack_stalls = stalls(&ack_times, kill_ns);
        let deliver_stalls = stalls(&deliver_times, kill_ns);
        // Kill → first ack (delivery) after the stall, per affected room.
        let (mut first_ack, mut first_delivery, mut stall_len, mut calm) =
            (vec![], vec![], vec![], vec![]);
        for (a, d) in ack_stalls.iter().zip(&deliver_stalls) {
            match a {
                Some(s) if s.len_ns() >= threshold => {
                    first_ack.push(s.to_ns.saturating_sub(kill_ns));
                    stall_len.push(s.len_ns());
                    if let Some(d) = d {
                        first_delivery.push(d.to_ns.saturating_sub(kill_ns));
                    }
                }
                Some(s) => calm.push(s.len_ns()),
                None => {}
            }
        }
        for v in [
            &mut first_ack,
            &mut first_delivery,
            &mut stall_len,
            &mut calm,
        ] {
            v.sort_unstable();
        }
        no_stall = first_ack.is_empty();
        r.kv("failover_rooms_affected", first_ack.len());
        r.kv("failover_rooms_unaffected", calm.len());
        for (name, v) in [
            ("failover_first_ack", &first_ack),
            ("failover_first_delivery", &first_delivery),
            ("failover_ack_stall", &stall_len),
        ] {
            r.kv(&format!("{name}_min_ms"), pct_ms(v, 0.0));
            r.kv(&format!("{name}_p50_ms"), pct_ms(v, 50.0));
            r.kv(&format!("{name}_max_ms"), pct_ms(v, 100.0));
        }
        r.kv("failover_unaffected_stall_max_ms", pct_ms(&calm, 100.0));
    }

    // CPU over the measured sending.
    let window = cpu_after.at.saturating_duration_since(cpu_before.at);
    let tick_ms = 1000.0 / args.clk_tck.max(1) as f64;
    let window_ms = window.as_secs_f64() * 1e3;
    r.kv("cpu_window_ms", format!("{window_ms:.0}"));
    let mut cpu = |name: &str, a: Option<u64>, b: Option<u64>| {
        if let (Some(a), Some(b)) = (a, b) {
            let used = b.saturating_sub(a) as f64 * tick_ms;
            r.kv(&format!("cpu.{name}_ms"), format!("{used:.0}"));
            r.kv(
                &format!("cpu.{name}_pct"),
                format!("{:.0}", used * 100.0 / window_ms.max(1.0)),
            );
        }
    };
    let mut ours = 0;
    for (i, (name, _)) in args.watch.iter().enumerate() {
        cpu(name, cpu_before.procs[i], cpu_after.procs[i]);
        if let (Some(a), Some(b)) = (cpu_before.procs[i], cpu_after.procs[i]) {
            ours += b.saturating_sub(a);
        }
    }
    cpu("loadgen", cpu_before.me, cpu_after.me);
    if let (Some(a), Some(b)) = (cpu_before.me, cpu_after.me) {
        ours += b.saturating_sub(a);
    }
    if let (Some(a), Some(b)) = (cpu_before.machine, cpu_after.machine) {
        let d = b.since(&a);
        // Everything else on the machine: other processes, and the kernel's own threads.
        cpu("others", Some(ours), Some(d.busy));
        let total = d.total().max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        r.kv("machine_cores", cores);
        r.kv(
            "machine_busy_pct",
            format!("{:.0}", d.busy as f64 * 100.0 / total),
        );
        r.kv(
            "machine_steal_pct",
            format!("{:.1}", d.steal as f64 * 100.0 / total),
        );
        r.kv(
            "machine_iowait_pct",
            format!("{:.1}", d.iowait as f64 * 100.0 / total),
        );
    }

    // The processes' own metrics over the measured part.
    for (((name, _), before), after) in args.metrics.iter().zip(metrics_before).zip(metrics_after) {
        let (Some(before), Some(after)) = (before, after) else {
            continue;
        };
        let d = metrics::delta(before, after);
        for (family, h) in &d.histograms {
            if h.count <= 0.0 {
                continue;
            }
            let k = format!("m.{name}.{family}");
            r.kv(&format!("{k}.count"), h.count);
            if let Some(mean) = h.mean() {
                r.kv(&format!("{k}.mean"), format!("{mean:.6}"));
            }
            for (p, label) in [(50.0, "p50_le"), (99.0, "p99_le")] {
                if let Some(le) = h.quantile_bound(p) {
                    r.kv(&format!("{k}.{label}"), le);
                }
            }
        }
        for (series, v) in &d.counters {
            r.kv(&format!("m.{name}.{}", metrics::key(series)), v);
        }
    }

    let send_failures: Vec<String> = sent_parts
        .iter()
        .filter_map(|s| s.failure.clone())
        .collect();
    let mut problems = Vec::new();
    if lat.is_empty() {
        problems.push("no delivery was measured (0 latency samples)".to_owned());
    }
    if let Some(e) = send_failures.first() {
        problems.push(format!(
            "{} senders failed, first: {e}",
            send_failures.len()
        ));
    }
    if let Some(e) = lost.first() {
        problems.push(format!("{} connections lost, first: {e}", lost.len()));
    }
    if sent < plan.total {
        problems.push(format!("sent {sent} of {} messages", plan.total));
    }
    if missing > 0 {
        problems.push(format!(
            "{missing} acknowledged messages never reached a receiver"
        ));
    }
    if gaps + out_of_order + dups > 0 {
        problems.push(format!(
            "order violations: gaps={gaps} out_of_order={out_of_order} dup_deliveries={dups}"
        ));
    }
    if recv_errors > 0 {
        problems.push(format!("{recv_errors} error frames reached receivers"));
    }
    if killed.is_none() {
        // Without a kill, every send must be acknowledged.
        if refused > 0 {
            problems.push(format!(
                "{refused} sends refused, first: {}",
                first_refusal.unwrap_or_default()
            ));
        }
        if acked + refused < sent {
            problems.push(format!("{} sends never answered", sent - acked - refused));
        }
    } else if no_stall {
        problems.push(format!(
            "no room's acks paused for {} ms after the kill: nothing to measure",
            args.stall_threshold_ms
        ));
    }
    Ok((r.0, problems))
}
