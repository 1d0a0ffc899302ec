//! `subjects`: what the delivery bus's subject design costs at many rooms, measured against a
//! real nats-server (the figures of ADR 0005).
//!
//! Everything runs in this process with its own NATS clients, one step after the other, each
//! waiting until the server has dropped the previous step's subscriptions:
//! 1. **memory, wildcard**: one `{prefix}.room.>` subscription, the interest in every room at
//!    once. This process's VmRSS, and nats-server's `/varz` `mem` and `/subsz` count, before
//!    and after;
//! 2. **memory, per-room subjects**: one client (one gateway) takes a subscription per room
//!    through [`NatsBus::subscribe`], the bus code itself; the same readings, and the time it
//!    takes;
//! 3. **fan-out** ([`fanout`]): G simulated gateways hold the rooms between them while another
//!    client publishes N messages round-robin over the rooms, once as fast as it can and once
//!    paced at a fixed rate, for each of three designs: per-room subjects (the bus), a wildcard
//!    per gateway, and per-gateway subjects.
//!
//! Not here: routers, gateways, WebSockets, the log. Use a fresh nats-server of its own: the
//! figures are process-wide (memory, CPU, subscription count), and Go keeps the heap an
//! earlier run freed. Results are `key=value` lines on stdout.

mod fanout;
mod monitor;
mod receive;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, bail};
use bytes::Bytes;
use chorus_bus_nats::NatsBus;
use chorus_core::{
    RoomId,
    bus::{DeliveryBus, Subscription},
};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::stats;
use fanout::Scenario;
use monitor::{Monitor, ServerState};
use receive::Counters;

#[derive(Debug, clap::Args)]
pub struct SubjectsArgs {
    /// NATS server (one of its own: memory, CPU and subscription counts are process-wide).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// nats-server's monitoring endpoint, `host:port` (`/varz`, `/subsz`).
    #[arg(long, default_value = "127.0.0.1:8222")]
    pub nats_monitor: String,
    /// nats-server's process id: its CPU time (utime+stime) is read around each fan-out.
    #[arg(long)]
    pub nats_pid: Option<u32>,
    /// Rooms with subscribers.
    #[arg(long, default_value_t = 100_000)]
    pub rooms: usize,
    /// Messages published in each fan-out scenario, round-robin over the rooms.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Simulated gateways in the fan-out scenarios; room i is held by gateway i mod G.
    #[arg(long, default_value_t = 2)]
    pub gateways: usize,
    /// Size of each message's payload (a `msg` frame is about 150-300 bytes).
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Run the fan-out scenarios a second time with the publisher paced at this many
    /// messages/s, so that server CPU per message compares at equal load (0: skip).
    #[arg(long, default_value_t = 50_000.0)]
    pub paced_rate: f64,
    /// `NatsBus::subscribe` calls in flight at once (the hub's room tasks subscribe
    /// independently).
    #[arg(long, default_value_t = 64)]
    pub subscribe_concurrency: usize,
    /// Pause before each memory reading, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// After the last publish, stop waiting for deliveries once none arrived for this long.
    #[arg(long, default_value_t = 2000)]
    pub idle_ms: u64,
    /// Give up on one fan-out scenario after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
}

/// The `key=value` results, in the order they were measured.
#[derive(Default)]
struct Report(String);

impl Report {
    fn kv(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "{key}={value}");
    }
}

/// Scenario-independent inputs.
struct Setup {
    args: SubjectsArgs,
    prefix: String,
    rooms: Vec<RoomId>,
    monitor: Monitor,
    payload: Bytes,
    /// Subscriptions nats-server holds with none of ours (its own, JetStream's).
    baseline_subs: u64,
}

pub async fn run(args: SubjectsArgs) -> anyhow::Result<()> {
    if args.rooms == 0 || args.messages == 0 || args.gateways == 0 {
        bail!("--rooms, --messages and --gateways must be at least 1");
    }
    if !(args.paced_rate.is_finite() && args.paced_rate >= 0.0) {
        bail!("--paced-rate must be a number of messages per second (0 to skip)");
    }
    if args.gateways > args.rooms {
        bail!("--gateways must not exceed --rooms (every gateway holds at least one room)");
    }
    let monitor = Monitor::new(&args.nats_monitor);
    let varz = monitor
        .varz()
        .await
        .context("reading nats-server's /varz (is --nats-monitor right?)")?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        ^ u64::from(std::process::id());
    let prefix = format!("bench-{:08x}", nonce as u32);
    let rooms = (0..args.rooms)
        .map(|i| RoomId::new(&format!("room-{i:06}")))
        .collect::<Result<Vec<_>, _>>()
        .context("room names")?;
    let baseline_subs = monitor.state().await?.subscriptions;
    let setup = Setup {
        payload: Bytes::from(vec![b'x'; args.payload_bytes]),
        args,
        prefix,
        rooms,
        monitor,
        baseline_subs,
    };

    let mut r = Report::default();
    r.kv(
        "nats_version",
        varz["version"].as_str().unwrap_or("unknown"),
    );
    r.kv("rooms", setup.rooms.len());
    r.kv("messages", setup.args.messages);
    r.kv("gateways", setup.args.gateways);
    r.kv("payload_bytes", setup.args.payload_bytes);
    let example = format!("{}.room.{}", setup.prefix, setup.rooms[0]);
    r.kv("subject_bytes", example.len());
    r.kv("subject_example", example);
    r.kv(
        "subscribe_concurrency",
        setup.args.subscribe_concurrency.max(1),
    );

    memory_wildcard(&setup, &mut r).await?;
    memory_rooms(&setup, &mut r).await?;
    for scenario in Scenario::ALL {
        fanout::run(&setup, scenario, "fanout", None, &mut r).await?;
    }
    let rate = setup.args.paced_rate;
    if rate > 0.0 {
        r.kv("paced_rate", rate);
        for scenario in Scenario::ALL {
            fanout::run(&setup, scenario, "paced", Some(rate), &mut r).await?;
        }
    }

    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(r.0.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn self_rss_kib() -> anyhow::Result<u64> {
    stats::rss_kib("self").context("reading VmRSS from /proc/self/status")
}

/// Memory readings around taking some subscriptions.
struct MemoryDelta {
    rss_before_kib: u64,
    rss_after_kib: u64,
    server_before: ServerState,
    server_after: ServerState,
}

impl MemoryDelta {
    fn report(&self, r: &mut Report, name: &str) {
        let rss = self.rss_after_kib as i64 - self.rss_before_kib as i64;
        let (b, a) = (&self.server_before, &self.server_after);
        let subs = a.subscriptions as i64 - b.subscriptions as i64;
        let mem = a.mem_bytes as i64 - b.mem_bytes as i64;
        r.kv(&format!("{name}_rss_before_kib"), self.rss_before_kib);
        r.kv(&format!("{name}_rss_after_kib"), self.rss_after_kib);
        r.kv(&format!("{name}_rss_delta_kib"), rss);
        r.kv(&format!("{name}_server_subs_before"), b.subscriptions);
        r.kv(&format!("{name}_server_subs_after"), a.subscriptions);
        r.kv(&format!("{name}_server_subs_delta"), subs);
        r.kv(&format!("{name}_server_mem_before_kib"), b.mem_bytes / 1024);
        r.kv(&format!("{name}_server_mem_after_kib"), a.mem_bytes / 1024);
        r.kv(&format!("{name}_server_mem_delta_kib"), mem / 1024);
    }
}

/// One `{prefix}.room.>` subscription: the interest in every room at once.
async fn memory_wildcard(s: &Setup, r: &mut Report) -> anyhow::Result<()> {
    let client = connect_raw(&s.args.nats_url, None).await?;
    let settle = Duration::from_millis(s.args.settle_ms);
    tokio::time::sleep(settle).await;
    let rss_before_kib = self_rss_kib()?;
    let server_before = s.monitor.state().await?;
    let sub = client.subscribe(format!("{}.room.>", s.prefix)).await?;
    client.flush().await?;
    tokio::time::sleep(settle).await;
    let delta = MemoryDelta {
        rss_before_kib,
        rss_after_kib: self_rss_kib()?,
        server_before,
        server_after: s.monitor.state().await?,
    };
    delta.report(r, "mem_wildcard");
    drop(sub);
    drop(client);
    s.monitor.wait_subscriptions(s.baseline_subs).await
}

/// One subscription per room through the bus, on one client: one gateway holding every room.
async fn memory_rooms(s: &Setup, r: &mut Report) -> anyhow::Result<()> {
    let bus = connect_bus(s).await?;
    let mut subs: Vec<Subscription> = Vec::with_capacity(s.rooms.len());
    let settle = Duration::from_millis(s.args.settle_ms);
    tokio::time::sleep(settle).await;
    let rss_before_kib = self_rss_kib()?;
    let server_before = s.monitor.state().await?;
    let started = Instant::now();
    subscribe_all(
        &bus,
        s.rooms.iter(),
        s.args.subscribe_concurrency,
        &mut subs,
    )
    .await?;
    let took = started.elapsed();
    tokio::time::sleep(settle).await;
    let delta = MemoryDelta {
        rss_before_kib,
        rss_after_kib: self_rss_kib()?,
        server_before,
        server_after: s.monitor.state().await?,
    };
    delta.report(r, "mem_rooms");
    let n = subs.len() as f64;
    let rss = delta.rss_after_kib as f64 - delta.rss_before_kib as f64;
    let server = delta.server_after.mem_bytes as f64 - delta.server_before.mem_bytes as f64;
    r.kv("mem_rooms_subscriptions", subs.len());
    r.kv(
        "mem_rooms_subscribe_ms",
        format!("{:.0}", took.as_secs_f64() * 1e3),
    );
    r.kv(
        "mem_rooms_subscribes_per_sec",
        format!("{:.0}", n / took.as_secs_f64().max(1e-9)),
    );
    r.kv(
        "mem_rooms_gateway_bytes_per_sub",
        format!("{:.0}", rss * 1024.0 / n),
    );
    r.kv(
        "mem_rooms_server_bytes_per_sub",
        format!("{:.0}", server / n),
    );
    drop(subs);
    drop(bus);
    s.monitor.wait_subscriptions(s.baseline_subs).await
}

/// A plain async-nats client (the bus's defaults); `slow` counts the slow-consumer events it
/// reports (a subscription's buffer was full and messages were dropped).
async fn connect_raw(url: &str, slow: Option<Arc<Counters>>) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("chorus-loadgen")
        .event_callback(move |event| {
            let slow = slow.clone();
            async move {
                if let (async_nats::Event::SlowConsumer(_), Some(c)) = (event, slow) {
                    c.slow_consumer_events.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

async fn connect_bus(s: &Setup) -> anyhow::Result<NatsBus> {
    Ok(NatsBus::connect(&s.args.nats_url, &s.prefix).await?)
}

/// Subscribes to every room in `rooms` through the bus, `concurrency` at a time.
async fn subscribe_all(
    bus: &NatsBus,
    rooms: impl Iterator<Item = &RoomId>,
    concurrency: usize,
    into: &mut Vec<Subscription>,
) -> anyhow::Result<()> {
    let mut pending = futures_util::stream::iter(rooms)
        .map(|room| bus.subscribe(room))
        .buffered(concurrency.max(1));
    while let Some(sub) = pending.next().await {
        into.push(sub.context("NatsBus::subscribe")?);
    }
    Ok(())
}
