//! `cluster`: send→deliver latency through a running Chorus cluster at a fixed total rate, and
//! how long rooms stall when a process of the cluster is killed during the run.
//!
//! S sender connections on one gateway (`--send-url`) and R receiver connections on another
//! (`--recv-url`) share fresh rooms, so every message crosses gateway → router → database →
//! NATS → the other gateway. The messages are paced evenly at `--rate` (open loop), each with a
//! client_msg_id, and the body carries the send time ([`traffic`]). The run reports send→deliver
//! and send→ack percentiles over the messages sent after the warm-up, the rates achieved, and
//! counts of what was sent, acknowledged, refused and delivered. Optionally it also reports the
//! CPU time of given processes (`--watch-pid`), the changes in their Prometheus metrics
//! (`--metrics`, [`metrics`]), and with `--kill-pid-file` each room's longest ack stall after
//! a SIGKILL: the failover time.
//!
//! Not here: starting, configuring or restoring the cluster, or choosing rates.
//! scripts/bench.sh does those (`BENCH_ONLY=cluster`).

mod metrics;
mod report;
mod traffic;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::{sync::watch, time::Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{
    conn::{self, Target},
    stats::{self, MachineCpu},
};
use traffic::Plan;

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Gateway the senders connect to.
    #[arg(
        long,
        env = "LOADGEN_SEND_URL",
        default_value = "ws://127.0.0.1:8081/v1/ws"
    )]
    pub send_url: String,
    /// Gateway the receivers connect to (another one, so that deliveries cross NATS to it).
    #[arg(
        long,
        env = "LOADGEN_RECV_URL",
        default_value = "ws://127.0.0.1:8082/v1/ws"
    )]
    pub recv_url: String,
    /// Rooms, fresh for each run.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Sender connections; room i is sent to by sender i mod S (at most --rooms).
    #[arg(long, default_value_t = 100)]
    pub senders: usize,
    /// Receiver connections; room i is received by receiver i mod R (default: one per room).
    #[arg(long)]
    pub receivers: Option<usize>,
    /// Messages per second over all senders, paced evenly.
    #[arg(long)]
    pub rate: f64,
    /// Seconds of sending that are measured.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// Seconds of sending at the same rate before the measured part (room ownership claims, cold
    /// caches); counted, but not in the latency figures.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Body size in bytes (the send time and message number plus padding).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Send without client_msg_id (no idempotency lookup at the router; for comparison only).
    #[arg(long)]
    pub no_client_msg_id: bool,
    /// After the last send, stop waiting for acks and deliveries after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub drain_secs: f64,
    /// SIGKILL the process whose pid is in this file during the run (failover time).
    #[arg(long)]
    pub kill_pid_file: Option<PathBuf>,
    /// When to kill, in seconds after the first send.
    #[arg(long, default_value_t = 5.0)]
    pub kill_after_secs: f64,
    /// After a kill, a room whose acks paused at least this long counts as affected.
    #[arg(long, default_value_t = 1000)]
    pub stall_threshold_ms: u64,
    /// NAME=PID: report this process's CPU time over the measured sending (repeatable).
    #[arg(long = "watch-pid", value_parser = named)]
    pub watch: Vec<(String, String)>,
    /// NAME=HOST:PORT: report what changed in this process's /metrics (repeatable).
    #[arg(long = "metrics", value_parser = named)]
    pub metrics: Vec<(String, String)>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Prefix of the room names (default: `lgc-` and a per-run nonce).
    #[arg(long)]
    pub room_prefix: Option<String>,
}

fn named(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// CPU readings at one moment: the watched processes, this one, and the machine.
struct CpuSample {
    procs: Vec<Option<u64>>,
    me: Option<u64>,
    machine: Option<MachineCpu>,
    at: Instant,
}

fn cpu_sample(watch: &[(String, String)]) -> CpuSample {
    CpuSample {
        procs: watch.iter().map(|(_, pid)| stats::cpu_ticks(pid)).collect(),
        me: stats::cpu_ticks("self"),
        machine: MachineCpu::read(),
        at: Instant::now(),
    }
}

async fn scrape_all(targets: &[(String, String)]) -> Vec<Option<metrics::Scrape>> {
    let mut out = Vec::with_capacity(targets.len());
    for (name, addr) in targets {
        match metrics::scrape(addr).await {
            Ok(s) => out.push(Some(s)),
            Err(e) => {
                eprintln!("metrics of {name}: {e:#}");
                out.push(None);
            }
        }
    }
    out
}

/// SIGKILLs the process in `pid_file` at `at`; returns its pid and when it was killed.
async fn kill_at(pid_file: PathBuf, at: Instant) -> anyhow::Result<(u32, Instant)> {
    tokio::time::sleep_until(at).await;
    let text = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", pid_file.display()))?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("running kill")?;
    let killed = Instant::now();
    if !status.success() {
        bail!("kill -KILL {pid} failed ({status})");
    }
    eprintln!("killed pid {pid} (from {})", pid_file.display());
    Ok((pid, killed))
}

pub async fn run(
    send_target: Arc<Target>,
    recv_target: Arc<Target>,
    args: ClusterArgs,
    user_prefix: &str,
) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number");
    }
    if !(args.duration_secs > 0.0 && args.warmup_secs >= 0.0 && args.drain_secs >= 0.0) {
        bail!("--duration-secs must be positive, --warmup-secs and --drain-secs not negative");
    }
    if args.kill_pid_file.is_some()
        && !(0.0..args.warmup_secs + args.duration_secs).contains(&args.kill_after_secs)
    {
        bail!("--kill-after-secs must fall within the run (warm-up plus duration)");
    }
    let n_rooms = args.rooms;
    let n_senders = args.senders;
    let n_receivers = args.receivers.unwrap_or(n_rooms);
    if n_rooms == 0 || !(1..=n_rooms).contains(&n_senders) || !(1..=n_rooms).contains(&n_receivers)
    {
        bail!("--rooms must be at least 1, and --senders and --receivers between 1 and --rooms");
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let prefix = args
        .room_prefix
        .clone()
        .unwrap_or_else(|| format!("lgc-{:x}", nonce & 0xffff_ffff_ffff));
    let rooms: Vec<String> = (0..n_rooms).map(|i| format!("{prefix}-{i}")).collect();
    let split = |n: usize| -> Vec<Vec<usize>> {
        (0..n)
            .map(|k| (0..n_rooms).filter(|i| i % n == k).collect())
            .collect()
    };
    let sender_rooms = split(n_senders);
    let receiver_rooms = split(n_receivers);
    let names = |idx: &[usize]| idx.iter().map(|&i| rooms[i].clone()).collect::<Vec<_>>();

    // Receivers first: nothing is sent before every connection has joined.
    let setup = Instant::now();
    let plan_recv = receiver_rooms
        .iter()
        .enumerate()
        .map(|(r, idx)| (format!("{user_prefix}-cr-{r}"), names(idx)))
        .collect();
    let receivers = conn::connect_many_rooms(&recv_target, plan_recv, conn::small_config())
        .await
        .with_context(|| format!("opening receivers on {}", recv_target.url))?;
    let plan_send = sender_rooms
        .iter()
        .enumerate()
        .map(|(k, idx)| (format!("{user_prefix}-cs-{k}"), names(idx)))
        .collect();
    let senders = conn::connect_many_rooms(&send_target, plan_send, WebSocketConfig::default())
        .await
        .with_context(|| format!("opening senders on {}", send_target.url))?;
    let connect_ms = setup.elapsed().as_millis();

    // The sending gateway's per-connection rate limit must allow this run's rate.
    let per_conn = args.rate / n_senders as f64;
    let limits = &senders[0].limits;
    if let Some(allowed) = limits["send_rate_per_sec"].as_f64()
        && per_conn > allowed
    {
        bail!(
            "the gateway at {} allows {allowed} sends/s per connection (burst {}), and this run \
             needs {per_conn:.1}: use more --senders, or restart the gateways with a higher \
             CHORUS_SEND_RATE and CHORUS_SEND_BURST (scripts/cluster.sh passes CHORUS_* on)",
            send_target.url,
            limits["send_burst"]
        );
    }

    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let total = (args.rate * (args.warmup_secs + args.duration_secs)).ceil() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let mut plan = Plan::new(rooms, sender_rooms, total, args.rate, start, warmup);
    plan.client_msg_ids = !args.no_client_msg_id;
    plan.body_bytes = args.body_bytes;
    plan.nonce = nonce;
    let plan = Arc::new(plan);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut recv_tasks = Vec::with_capacity(n_receivers);
    for (j, idx) in receivers.into_iter().zip(&receiver_rooms) {
        let rooms = idx.iter().copied().zip(j.last_seqs).collect();
        recv_tasks.push(tokio::spawn(traffic::receive(
            plan.clone(),
            j.ws,
            rooms,
            stop_rx.clone(),
        )));
    }
    let mut ack_tasks = Vec::with_capacity(n_senders);
    let mut send_tasks = Vec::with_capacity(n_senders);
    for (k, j) in senders.into_iter().enumerate() {
        let (sink, stream) = j.ws.split();
        ack_tasks.push(tokio::spawn(traffic::read_acks(
            plan.clone(),
            stream,
            stop_rx.clone(),
        )));
        send_tasks.push(tokio::spawn(traffic::send(plan.clone(), k, sink)));
    }
    let kill = args.kill_pid_file.clone().map(|f| {
        tokio::spawn(kill_at(
            f,
            start + Duration::from_secs_f64(args.kill_after_secs),
        ))
    });

    // The measured window: from the end of the warm-up to the last send.
    tokio::time::sleep_until(start + warmup).await;
    let cpu_before = cpu_sample(&args.watch);
    let metrics_before = scrape_all(&args.metrics).await;
    let mut sent_parts = Vec::with_capacity(n_senders);
    for t in send_tasks {
        sent_parts.push(t.await.context("sender task panicked")?);
    }
    let last_send = Instant::now();
    let cpu_after = cpu_sample(&args.watch);

    // Drain: every send answered, and every acknowledged message delivered.
    let drain_until = last_send + Duration::from_secs_f64(args.drain_secs);
    loop {
        let sent = plan.sent.load(Ordering::Acquire);
        let acked = plan.acked.load(Ordering::Acquire);
        let answered = acked + plan.refused.load(Ordering::Acquire);
        if answered >= sent && plan.acked_and_delivered.load(Ordering::Acquire) >= acked {
            break;
        }
        if Instant::now() >= drain_until {
            eprintln!(
                "gave up waiting after {:.0} s: {answered} of {sent} sends answered, {} of {acked} \
                 acknowledged messages delivered",
                args.drain_secs,
                plan.acked_and_delivered.load(Ordering::Acquire)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = Instant::now();
    let metrics_after = scrape_all(&args.metrics).await;
    let killed = match kill {
        Some(k) => Some(k.await.context("kill task panicked")??),
        None => None,
    };
    let _ = stop_tx.send(true);
    let mut acks = Vec::with_capacity(n_senders);
    for t in ack_tasks {
        acks.push(t.await.context("ack reader panicked")?);
    }
    let mut received = Vec::with_capacity(n_receivers);
    for t in recv_tasks {
        received.push(t.await.context("receiver task panicked")?);
    }

    let (text, problems) = report::figures(report::Run {
        args: &args,
        plan: &plan,
        send_url: &send_target.url,
        recv_url: &recv_target.url,
        connect_ms,
        sent: &sent_parts,
        acks: &mut acks,
        received: &mut received,
        last_send,
        drained,
        killed,
        cpu: (cpu_before, cpu_after),
        metrics: (metrics_before, metrics_after),
    })?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    }

    // Release every connection politely.
    let mut open = Vec::with_capacity(n_senders + n_receivers);
    for (s, a) in sent_parts.into_iter().zip(acks) {
        if let Ok(ws) = s.sink.reunite(a.stream) {
            open.push(ws);
        }
    }
    open.extend(received.into_iter().map(|x| x.ws));
    conn::close_all(open, Duration::from_secs(5)).await;

    if !problems.is_empty() {
        bail!("cluster run failed: {}", problems.join("; "));
    }
    Ok(())
}
