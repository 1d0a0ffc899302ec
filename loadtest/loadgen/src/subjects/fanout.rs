//! The fan-out scenarios. G simulated gateways hold the rooms between them (room i on gateway
//! i mod G) while a separate client, standing in for the routers, publishes N messages
//! round-robin over the rooms:
//! - `rooms`: per-room subjects through [`NatsBus::publish`] and [`NatsBus::subscribe`], with
//!   one receiving task per room as the gateway's hub has;
//! - `wildcard`: the same publishes; every gateway takes `{prefix}.room.>`, so it receives every
//!   room and drops the ones it does not hold;
//! - `gateway`: per-gateway subjects `{prefix}.gw.{g}`: the publisher knows which gateway holds
//!   each room and sends each message once, to that gateway. The bus has no such mode, so this
//!   one is raw async-nats with the same headers plus the room's.
//!
//! For each: publish and receive rates, deliveries per published message, losses, and the CPU
//! time nats-server spent per published message.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use async_nats::HeaderMap;
use chorus_bus_nats::{NatsBus, SEQ_HEADER};
use chorus_core::bus::{Delivery, DeliveryBus};
use tokio::{task::JoinSet, time::Instant};

use super::{
    Report, Setup, connect_bus, connect_raw,
    receive::{self, Counters},
    subscribe_all,
};
use crate::stats;

/// The header naming the room in the `gateway` scenario (the subject names the gateway).
const ROOM_HEADER: &str = "Chorus-Room";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Per-room subjects (the bus as it is).
    Rooms,
    /// One `{prefix}.room.>` subscription per gateway.
    Wildcard,
    /// One `{prefix}.gw.{g}` subscription per gateway; the publisher picks the gateway.
    Gateway,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Rooms, Scenario::Wildcard, Scenario::Gateway];
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Rooms => "rooms",
            Scenario::Wildcard => "wildcard",
            Scenario::Gateway => "gateway",
        }
    }
}

/// The client publishing a scenario's messages (the router's side).
enum Publisher {
    Bus(NatsBus),
    /// Per-gateway subjects: `subjects[g]` is gateway g's.
    Raw {
        client: async_nats::Client,
        subjects: Vec<async_nats::Subject>,
    },
}

/// One fan-out scenario: `rate` paces the publisher (messages/s), else it publishes as fast as
/// it can. Results are reported under `{pass}_{scenario}_`.
pub async fn run(
    s: &Setup,
    scenario: Scenario,
    pass: &str,
    rate: Option<f64>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let g = s.args.gateways;
    let name = format!("{pass}_{}", scenario.name());
    // The gateways: clients, subscriptions, and their receiving tasks.
    let counters: Vec<Arc<Counters>> = (0..g).map(|_| Arc::default()).collect();
    let mut receivers = JoinSet::new();
    // Kept open until the scenario ends.
    let (mut buses, mut raw_clients) = (Vec::new(), Vec::new());
    let subscribe_started = Instant::now();
    for (gw, c) in counters.iter().enumerate() {
        let held = s.rooms.iter().skip(gw).step_by(g);
        match scenario {
            Scenario::Rooms => {
                let bus = connect_bus(s).await?;
                let mut subs = Vec::with_capacity(s.rooms.len() / g + 1);
                subscribe_all(&bus, held, s.args.subscribe_concurrency, &mut subs).await?;
                for sub in subs {
                    receivers.spawn(receive::room(sub, c.clone()));
                }
                buses.push(bus);
            }
            Scenario::Wildcard | Scenario::Gateway => {
                let client = connect_raw(&s.args.nats_url, Some(c.clone())).await?;
                let subject = match scenario {
                    Scenario::Wildcard => format!("{}.room.>", s.prefix),
                    _ => format!("{}.gw.{gw}", s.prefix),
                };
                let sub = client.subscribe(subject).await?;
                client.flush().await?;
                let from = match scenario {
                    Scenario::Wildcard => receive::RoomFrom::Subject(format!("{}.room.", s.prefix)),
                    _ => receive::RoomFrom::Header(ROOM_HEADER),
                };
                let demux = receive::Demux::new(held, from, c, &mut receivers);
                receivers.spawn(receive::demux(sub, demux, c.clone()));
                raw_clients.push(client);
            }
        }
    }
    let subscribe_took = subscribe_started.elapsed();
    let publisher = match scenario {
        Scenario::Rooms | Scenario::Wildcard => Publisher::Bus(connect_bus(s).await?),
        Scenario::Gateway => Publisher::Raw {
            client: connect_raw(&s.args.nats_url, None).await?,
            subjects: (0..g)
                .map(|gw| format!("{}.gw.{gw}", s.prefix).into())
                .collect(),
        },
    };
    // Let every SUB reach the server before the first publish (flush only writes them out).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let subs_held = s.monitor.state().await?.subscriptions;
    let before = s.monitor.varz().await?;

    let pid = s.args.nats_pid.map(|p| p.to_string());
    let server_cpu_before = pid.as_deref().and_then(stats::cpu_ticks);
    let self_cpu_before = stats::cpu_ticks("self");
    let started = Instant::now();
    publish(s, &publisher, rate).await?;
    let published = started.elapsed();

    // Wait for the deliveries: all of them, or until they stop coming.
    let per_published = match scenario {
        Scenario::Wildcard => g as u64,
        _ => 1,
    };
    let expected = s.args.messages * per_published;
    let received = || {
        counters
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let deadline = started + Duration::from_secs(s.args.timeout_secs);
    let idle = Duration::from_millis(s.args.idle_ms);
    let (mut last_count, mut last_change) = (received(), Instant::now());
    while last_count < expected {
        let now = Instant::now();
        if now >= deadline || now.duration_since(last_change.max(started + published)) >= idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let n = received();
        if n != last_count {
            (last_count, last_change) = (n, Instant::now());
        }
    }
    let delivered_in = last_change.duration_since(started);
    let server_cpu_after = pid.as_deref().and_then(stats::cpu_ticks);
    let self_cpu_after = stats::cpu_ticks("self");
    let after = s.monitor.varz().await?;

    let sum = |f: fn(&Counters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    let total = sum(|c| c.received.load(Ordering::Relaxed));
    let wanted = sum(|c| c.wanted.load(Ordering::Relaxed));
    let m = s.args.messages;
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    r.kv(&format!("{name}_subscribe_ms"), subscribe_took.as_millis());
    r.kv(
        &format!("{name}_server_subs"),
        subs_held.saturating_sub(s.baseline_subs),
    );
    r.kv(&format!("{name}_published"), m);
    r.kv(
        &format!("{name}_publish_ms"),
        format!("{:.1}", published.as_secs_f64() * 1e3),
    );
    r.kv(
        &format!("{name}_publish_per_sec"),
        format!("{:.0}", m as f64 / secs(published)),
    );
    r.kv(&format!("{name}_received"), total);
    r.kv(&format!("{name}_wanted"), wanted);
    r.kv(
        &format!("{name}_discarded"),
        sum(|c| c.discarded.load(Ordering::Relaxed)),
    );
    r.kv(&format!("{name}_lost"), m.saturating_sub(wanted));
    r.kv(
        &format!("{name}_gaps"),
        sum(|c| c.gaps.load(Ordering::Relaxed)),
    );
    r.kv(
        &format!("{name}_lagged_events"),
        sum(|c| c.lagged.load(Ordering::Relaxed)),
    );
    r.kv(
        &format!("{name}_client_slow_consumer_events"),
        sum(|c| c.slow_consumer_events.load(Ordering::Relaxed)),
    );
    r.kv(
        &format!("{name}_room_queue_overflows"),
        sum(|c| c.overflowed.load(Ordering::Relaxed)),
    );
    let slow = |v: &serde_json::Value| v["slow_consumers"].as_u64().unwrap_or(0);
    r.kv(
        &format!("{name}_server_slow_consumers"),
        slow(&after).saturating_sub(slow(&before)),
    );
    r.kv(
        &format!("{name}_received_per_published"),
        format!("{:.2}", total as f64 / m as f64),
    );
    r.kv(
        &format!("{name}_deliver_ms"),
        format!("{:.1}", delivered_in.as_secs_f64() * 1e3),
    );
    r.kv(
        &format!("{name}_receive_per_sec"),
        format!("{:.0}", total as f64 / secs(delivered_in)),
    );
    let ticks_to_ms = |t: u64| t as f64 * 1000.0 / s.args.clk_tck.max(1) as f64;
    if let (Some(a), Some(b)) = (server_cpu_before, server_cpu_after) {
        let ms = ticks_to_ms(b.saturating_sub(a));
        r.kv(&format!("{name}_server_cpu_ms"), format!("{ms:.0}"));
        r.kv(
            &format!("{name}_server_cpu_us_per_published"),
            format!("{:.3}", ms * 1e3 / m as f64),
        );
        if total > 0 {
            r.kv(
                &format!("{name}_server_cpu_us_per_received"),
                format!("{:.3}", ms * 1e3 / total as f64),
            );
        }
    }
    if let (Some(a), Some(b)) = (self_cpu_before, self_cpu_after) {
        r.kv(
            &format!("{name}_loadgen_cpu_ms"),
            format!("{:.0}", ticks_to_ms(b.saturating_sub(a))),
        );
    }

    receivers.shutdown().await;
    drop((publisher, buses, raw_clients));
    s.monitor.wait_subscriptions(s.baseline_subs).await
}

/// Publishes the scenario's messages: message k goes to room k mod R with seq k div R + 1.
/// With a `rate`, each millisecond publishes what the rate allows by then (open loop: a late
/// tick catches up).
async fn publish(s: &Setup, publisher: &Publisher, rate: Option<f64>) -> anyhow::Result<()> {
    let rooms = s.rooms.len() as u64;
    let g = s.args.gateways;
    let started = Instant::now();
    let mut allowed = 0u64;
    for k in 0..s.args.messages {
        if let Some(rate) = rate {
            while k >= allowed {
                tokio::time::sleep(Duration::from_millis(1)).await;
                allowed = (started.elapsed().as_secs_f64() * rate) as u64;
            }
        }
        let i = (k % rooms) as usize;
        let seq = k / rooms + 1;
        match publisher {
            Publisher::Bus(bus) => bus
                .publish(Delivery {
                    trace: None,
                    room: s.rooms[i].clone(),
                    seq,
                    frame: s.payload.clone(),
                })
                .await
                .context("NatsBus::publish")?,
            Publisher::Raw { client, subjects } => {
                let mut headers = HeaderMap::new();
                headers.insert(SEQ_HEADER, seq.to_string().as_str());
                headers.insert(ROOM_HEADER, s.rooms[i].as_str());
                client
                    .publish_with_headers(subjects[i % g].clone(), headers, s.payload.clone())
                    .await
                    .context("publishing to a gateway subject")?;
            }
        }
    }
    // No flush, as the bus does not flush either: the clients write out on their own.
    Ok(())
}
