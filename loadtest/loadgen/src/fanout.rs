//! `fanout`: one sender, S subscribers in one room; delivery count, order and latency.
//!
//! Send times travel in the message body as nanoseconds since an `Instant` shared by the sender
//! and the subscribers (same process), so latency needs no clock synchronization.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream::SplitStream};
use tokio::{
    sync::{Semaphore, oneshot},
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use crate::{
    conn::{self, Target, Ws},
    proto::{self, Frame},
    stats::{self, Seen, SeqCheck},
};

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Subscriber connections (each joins the room and receives every message).
    #[arg(long)]
    pub subscribers: usize,
    /// Room to use; should be fresh (nobody else sending).
    #[arg(long, default_value = "fanout")]
    pub room: String,
    /// Messages the sender sends.
    #[arg(long)]
    pub messages: u64,
    /// Fixed send rate in messages per second (paced by a timer). Without it: as fast as the
    /// window allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Most un-acknowledged sends in flight when sending as fast as possible. The server's
    /// `--max-in-flight` must be at least this.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Body size in bytes (the send time plus padding).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Give up waiting for deliveries this long after the first send.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Keep the latency of every k-th delivery per subscriber (1 = all; memory is 4 bytes per
    /// kept sample).
    #[arg(long, default_value_t = 1)]
    pub latency_every: u64,
    /// Server process id: report its CPU time (utime+stime) from first send to last delivery.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
}

/// Per-message timings shared by the sender, its ack reader and the subscribers (index: the
/// message number, 0-based).
struct Timings {
    base: Instant,
    first_seq: u64,
    /// When message i was written, in ns since `base` (set by the sender).
    sent_ns: Vec<AtomicU64>,
    /// Latency of message i's earliest delivery to any subscriber, in µs.
    first_delivery_us: Vec<AtomicU32>,
}

impl Timings {
    fn new(base: Instant, first_seq: u64, messages: u64) -> Timings {
        Timings {
            base,
            first_seq,
            sent_ns: (0..messages).map(|_| AtomicU64::new(u64::MAX)).collect(),
            first_delivery_us: (0..messages).map(|_| AtomicU32::new(u32::MAX)).collect(),
        }
    }

    fn since_base_ns(&self, t: Instant) -> u64 {
        t.duration_since(self.base).as_nanos() as u64
    }
}

fn micros(ns: u64) -> u32 {
    (ns / 1000).min(u64::from(u32::MAX)) as u32
}

/// Ascending values of a timing column, skipping unset ones.
fn collect_sorted(values: &[AtomicU32]) -> Vec<u32> {
    let mut v: Vec<u32> = values
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&us| us != u32::MAX)
        .collect();
    v.sort_unstable();
    v
}

struct SubResult {
    check: SeqCheck,
    foreign: u64,
    errors: u64,
    latencies: Vec<u32>,
    last_delivery: Option<Instant>,
    lost: Option<String>,
    ws: Option<Ws>,
}

async fn subscriber(
    mut ws: Ws,
    timings: Arc<Timings>,
    messages: u64,
    deadline: Instant,
    mut stop: oneshot::Receiver<()>,
    every: u64,
) -> SubResult {
    let mut check = SeqCheck::new(timings.first_seq, messages);
    let mut latencies = Vec::with_capacity((messages / every) as usize + 1);
    let (mut foreign, mut errors, mut last_delivery, mut lost) = (0, 0, None, None);
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    while !check.complete() {
        let next = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = &mut timeout => break,
            _ = &mut stop => break,
        };
        match next {
            Some(Ok(Message::Text(t))) => {
                let now = Instant::now();
                match proto::classify(t.as_str()) {
                    Frame::Msg { seq, sent_ns } => {
                        if check.observe(seq) != Seen::New {
                            continue;
                        }
                        last_delivery = Some(now);
                        let Some(sent) = sent_ns else {
                            foreign += 1;
                            continue;
                        };
                        let us = micros(timings.since_base_ns(now).saturating_sub(sent));
                        if check.distinct.is_multiple_of(every) {
                            latencies.push(us);
                        }
                        // In range: observe() said New.
                        let i = (seq - timings.first_seq) as usize;
                        timings.first_delivery_us[i].fetch_min(us, Ordering::Relaxed);
                    }
                    Frame::Error { code, message, .. } => {
                        errors += 1;
                        eprintln!("subscriber got error {code}: {message}");
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(frame))) => {
                lost = Some(format!("closed by server: {frame:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                lost = Some(format!("read error: {e}"));
                break;
            }
            None => {
                lost = Some("connection ended".into());
                break;
            }
        }
    }
    SubResult {
        check,
        foreign,
        errors,
        latencies,
        last_delivery,
        ws: lost.is_none().then_some(ws),
        lost,
    }
}

#[derive(Default)]
struct AckResult {
    acked: u64,
    /// send → ack, µs, ascending.
    ack_latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    lost: Option<String>,
}

/// Reads the sender's replies: acks (and refusals) free window slots. The sender's own copies of
/// the messages are read and ignored.
async fn ack_reader(
    mut stream: SplitStream<Ws>,
    messages: u64,
    window: Option<Arc<Semaphore>>,
    timings: Arc<Timings>,
    deadline: Instant,
) -> (AckResult, SplitStream<Ws>) {
    let mut r = AckResult {
        ack_latencies: Vec::with_capacity(messages as usize),
        ..AckResult::default()
    };
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    while r.acked + r.errors < messages {
        let next = tokio::select! {
            biased;
            m = stream.next() => m,
            _ = &mut timeout => break,
        };
        match next {
            Some(Ok(Message::Text(t))) => match proto::classify(t.as_str()) {
                Frame::Ack { id } => {
                    r.acked += 1;
                    // Request ids are message numbers 1..=M.
                    let sent = id
                        .and_then(|id| timings.sent_ns.get(id.wrapping_sub(1) as usize))
                        .map(|a| a.load(Ordering::Relaxed))
                        .filter(|&ns| ns != u64::MAX);
                    if let Some(sent) = sent {
                        let now = timings.since_base_ns(Instant::now());
                        r.ack_latencies.push(micros(now.saturating_sub(sent)));
                    }
                    if let Some(w) = &window {
                        w.add_permits(1);
                    }
                }
                Frame::Error { id, code, message } => {
                    r.errors += 1;
                    if r.first_error.is_none() {
                        r.first_error = Some(format!("send {id:?} refused: {code}: {message}"));
                    }
                    if let Some(w) = &window {
                        w.add_permits(1);
                    }
                }
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => {
                r.lost = Some(format!("sender closed by server: {frame:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                r.lost = Some(format!("sender read error: {e}"));
                break;
            }
            None => {
                r.lost = Some("sender connection ended".into());
                break;
            }
        }
    }
    if let Some(w) = &window {
        // Unblock a sender still waiting for a slot.
        w.close();
    }
    r.ack_latencies.sort_unstable();
    (r, stream)
}

pub async fn run(target: Arc<Target>, args: FanoutArgs, user_prefix: &str) -> anyhow::Result<()> {
    if args.messages == 0 || args.subscribers == 0 {
        bail!("--messages and --subscribers must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number");
    }
    let every = args.latency_every.max(1);
    let m = args.messages;
    let s = args.subscribers;

    let setup = Instant::now();
    let users = (0..s).map(|i| format!("{user_prefix}-sub-{i}")).collect();
    let subs = conn::connect_many(&target, users, &args.room, conn::small_config())
        .await
        .context("opening subscribers")?;
    let sender = conn::connect_joined(
        &target,
        &format!("{user_prefix}-sender"),
        &args.room,
        WebSocketConfig::default(),
    )
    .await
    .context("opening the sender")?;
    let connect_ms = setup.elapsed().as_millis();

    // Every subscriber must see exactly the sender's messages, from the room's next seq on.
    let first_seq = sender.last_seq + 1;
    if let Some(j) = subs.iter().find(|j| j.last_seq + 1 != first_seq) {
        bail!(
            "room {} is not quiet: a subscriber joined at last_seq {} but the sender at {}; use a \
             fresh --room",
            args.room,
            j.last_seq,
            sender.last_seq
        );
    }

    let base = Instant::now();
    let deadline = base + Duration::from_secs(args.timeout_secs);
    let timings = Arc::new(Timings::new(base, first_seq, m));
    let mut readers = JoinSet::new();
    // Dropping these ends the subscribers early (when the sends failed, say).
    let mut stops = Vec::with_capacity(s);
    for j in subs {
        let (stop_tx, stop_rx) = oneshot::channel();
        stops.push(stop_tx);
        readers.spawn(subscriber(
            j.ws,
            timings.clone(),
            m,
            deadline,
            stop_rx,
            every,
        ));
    }

    let pid = args.server_pid.map(|p| p.to_string());
    let server_cpu_before = pid.as_deref().and_then(stats::cpu_ticks);
    let self_cpu_before = stats::cpu_ticks("self");

    let window = args
        .rate
        .is_none()
        .then(|| Arc::new(Semaphore::new(args.window.max(1))));
    let (mut sink, stream) = sender.ws.split();
    let acks = tokio::spawn(ack_reader(
        stream,
        m,
        window.clone(),
        timings.clone(),
        deadline,
    ));

    // The sender: runs on this task.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        ^ u64::from(std::process::id());
    let mut frame = String::with_capacity(args.body_bytes + 160);
    let mut cmid = String::with_capacity(32);
    let mut ticker = args.rate.map(|rate| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        // Catch up after a late tick instead of silently lowering the rate (open loop).
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let first_send = Instant::now();
    let mut sent = 0u64;
    let mut send_failure = None;
    for i in 1..=m {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        } else if let Some(w) = &window {
            match w.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => {
                    // Window full: push out what is buffered, then wait for an ack.
                    if let Err(e) = sink.flush().await {
                        send_failure = Some(e.to_string());
                        break;
                    }
                    match w.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => break, // the ack reader gave up
                    }
                }
            }
        }
        cmid.clear();
        {
            use std::fmt::Write;
            let _ = write!(cmid, "{nonce:x}-{i}");
        }
        let sent_ns = base.elapsed().as_nanos() as u64;
        timings.sent_ns[(i - 1) as usize].store(sent_ns, Ordering::Relaxed);
        proto::send_frame(&mut frame, i, &args.room, &cmid, sent_ns, args.body_bytes);
        let r = if ticker.is_some() || i % 16 == 0 || i == m {
            sink.send(Message::text(frame.as_str())).await
        } else {
            sink.feed(Message::text(frame.as_str())).await
        };
        if let Err(e) = r {
            send_failure = Some(e.to_string());
            break;
        }
        sent += 1;
    }
    let last_send = Instant::now();

    let (ack, stream) = acks.await.context("ack reader panicked")?;
    if ack.acked < m {
        // Some sends were refused or lost: the subscribers cannot get everything; give what was
        // stored a moment to arrive instead of waiting out the whole timeout.
        let grace = Instant::now() + Duration::from_secs(3);
        tokio::spawn(async move {
            tokio::time::sleep_until(grace).await;
            drop(stops);
        });
    } else {
        // Keep the subscribers' stop channels open; they end on completion or the deadline.
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            drop(stops);
        });
    }
    let mut results = Vec::with_capacity(s);
    while let Some(r) = readers.join_next().await {
        results.push(r.context("subscriber task panicked")?);
    }
    let server_cpu_after = pid.as_deref().and_then(stats::cpu_ticks);
    let self_cpu_after = stats::cpu_ticks("self");
    let rss_after = pid.as_deref().and_then(stats::rss_kib);

    // Totals.
    let expected = s as u64 * m;
    let (mut delivered, mut gaps, mut dups, mut reorders, mut unexpected) = (0, 0, 0, 0, 0);
    let (mut foreign, mut sub_errors, mut lost, mut incomplete) = (0, 0, 0, 0);
    let mut first_lost = None;
    let mut last_delivery = None::<Instant>;
    let mut latencies = Vec::with_capacity(results.iter().map(|r| r.latencies.len()).sum());
    let mut open = Vec::with_capacity(s + 1);
    for r in results {
        delivered += r.check.distinct;
        gaps += r.check.gaps();
        dups += r.check.dups;
        reorders += r.check.reorders;
        unexpected += r.check.unexpected;
        foreign += r.foreign;
        sub_errors += r.errors;
        incomplete += u64::from(!r.check.complete());
        if let Some(why) = r.lost {
            lost += 1;
            first_lost.get_or_insert(why);
        }
        last_delivery = last_delivery.max(r.last_delivery);
        latencies.extend_from_slice(&r.latencies);
        open.extend(r.ws);
    }
    latencies.sort_unstable();
    let first_delivery = collect_sorted(&timings.first_delivery_us);

    let send_ms = last_send.duration_since(first_send).as_secs_f64() * 1e3;
    let deliver = last_delivery.map_or(Duration::ZERO, |t| t.duration_since(first_send));
    let deliver_ms = deliver.as_secs_f64() * 1e3;
    let per_sec = if deliver.is_zero() {
        0.0
    } else {
        delivered as f64 / deliver.as_secs_f64()
    };
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / latencies.len() as f64
    };

    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k}={v}\n"));
    kv("subscribers", s.to_string());
    kv("messages", m.to_string());
    kv(
        "mode",
        match args.rate {
            Some(r) => format!("rate:{r}"),
            None => format!("window:{}", args.window),
        },
    );
    kv("body_bytes", args.body_bytes.to_string());
    kv("connect_ms", connect_ms.to_string());
    kv("sent", sent.to_string());
    kv("acked", ack.acked.to_string());
    kv("send_errors", ack.errors.to_string());
    kv("expected_deliveries", expected.to_string());
    kv("delivered", delivered.to_string());
    kv("gaps", gaps.to_string());
    kv("dups", dups.to_string());
    kv("reorders", reorders.to_string());
    kv("unexpected", unexpected.to_string());
    kv("foreign", foreign.to_string());
    kv("incomplete_subscribers", incomplete.to_string());
    kv("lost_connections", lost.to_string());
    kv("send_duration_ms", format!("{send_ms:.1}"));
    kv("deliver_duration_ms", format!("{deliver_ms:.1}"));
    kv(
        "send_rate_achieved",
        format!("{:.1}", sent as f64 / (send_ms / 1e3).max(1e-9)),
    );
    kv("delivered_per_sec", format!("{per_sec:.0}"));
    kv("latency_samples", latencies.len().to_string());
    kv("latency_sample_every", every.to_string());
    kv("latency_mean_us", format!("{mean:.0}"));
    kv(
        "latency_p50_us",
        stats::percentile(&latencies, 50.0).to_string(),
    );
    kv(
        "latency_p90_us",
        stats::percentile(&latencies, 90.0).to_string(),
    );
    kv(
        "latency_p99_us",
        stats::percentile(&latencies, 99.0).to_string(),
    );
    kv(
        "latency_p999_us",
        stats::percentile(&latencies, 99.9).to_string(),
    );
    kv(
        "latency_max_us",
        latencies.last().copied().unwrap_or(0).to_string(),
    );
    // Earliest delivery of each message to any subscriber (the pipeline without the fan-out
    // spread), and send → ack (the durable write path).
    for (name, v) in [
        ("first_delivery", &first_delivery),
        ("ack", &ack.ack_latencies),
    ] {
        kv(&format!("{name}_samples"), v.len().to_string());
        for (p, label) in [(50.0, "p50"), (99.0, "p99")] {
            kv(
                &format!("{name}_latency_{label}_us"),
                stats::percentile(v, p).to_string(),
            );
        }
        kv(
            &format!("{name}_latency_max_us"),
            v.last().copied().unwrap_or(0).to_string(),
        );
    }
    let ticks_to_ms = |t: u64| t as f64 * 1000.0 / args.clk_tck.max(1) as f64;
    if let (Some(a), Some(b)) = (server_cpu_before, server_cpu_after) {
        let cpu_ms = ticks_to_ms(b.saturating_sub(a));
        kv("server_cpu_ms", format!("{cpu_ms:.0}"));
        if delivered > 0 {
            kv(
                "server_cpu_us_per_delivery",
                format!("{:.3}", cpu_ms * 1e3 / delivered as f64),
            );
        }
    }
    if let Some(rss) = rss_after {
        kv("server_rss_kib", rss.to_string());
    }
    if let (Some(a), Some(b)) = (self_cpu_before, self_cpu_after) {
        kv(
            "loadgen_cpu_ms",
            format!("{:.0}", ticks_to_ms(b.saturating_sub(a))),
        );
    }
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }

    // Release every connection politely.
    if let Ok(sender) = sink.reunite(stream) {
        open.push(sender);
    }
    conn::close_all(open, Duration::from_secs(5)).await;

    let mut problems = Vec::new();
    if let Some(e) = send_failure {
        problems.push(format!("sending failed after {sent} messages: {e}"));
    }
    if ack.acked != m {
        problems.push(format!("{} of {m} sends acknowledged", ack.acked));
    }
    if let Some(e) = ack.first_error {
        problems.push(format!("{} sends refused, first: {e}", ack.errors));
    }
    if let Some(e) = ack.lost {
        problems.push(e);
    }
    if delivered != expected {
        problems.push(format!(
            "delivered {delivered} of {expected} ({incomplete} subscribers incomplete)"
        ));
    }
    if gaps + dups + reorders + unexpected > 0 {
        problems.push(format!(
            "order violations: gaps={gaps} dups={dups} reorders={reorders} unexpected={unexpected}"
        ));
    }
    if lost > 0 {
        problems.push(format!(
            "{lost} subscribers lost their connection, first: {}",
            first_lost.unwrap_or_default()
        ));
    }
    if sub_errors > 0 {
        problems.push(format!("{sub_errors} error frames reached subscribers"));
    }
    if !problems.is_empty() {
        bail!("fanout failed: {}", problems.join("; "));
    }
    Ok(())
}
