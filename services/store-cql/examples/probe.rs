//! Append and read latency of the CQL store against a running cluster. Not a test: it prints
//! figures (docs/adr/0003-cql-store-schema.md quotes them with the machine they came from).
//!
//! ```sh
//! scripts/cassandra.sh start
//! cargo run --release -p chorus-store-cql --example probe -- 127.0.0.1:9042
//! ```
//!
//! It migrates a keyspace of its own (`chorus_probe_<random>`), runs each phase, and drops
//! the keyspace again.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus_core::{
    Message, RoomId, UserId,
    store::{MessageStore, ReadRange},
};
use chorus_store_cql::{CqlConfig, CqlStore, migrate};

const SEQUENTIAL: u64 = 1_000;
const ROOMS: u64 = 64;
const PER_ROOM: u64 = 100;
const BATCHES: u64 = 100;
const BATCH: u64 = 64;
const READS: usize = 500;

fn message(room: &RoomId, seq: u64, body: &str) -> Message {
    Message {
        room: room.clone(),
        seq,
        ts: chorus_core::time::now_ms(),
        from: UserId::new("probe").expect("a valid user id"),
        client_msg_id: Some(format!("p-{seq}")),
        body: body.to_owned(),
        ext: chorus_core::Ext::default(),
        count: seq,
    }
}

fn summary(what: &str, mut lat: Vec<Duration>, total: Duration, items: u64, unit: &str) {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{what:<44} {:>6} ops in {:>6.2} s: {:>8.0} {unit}/s, p50 {:>6.2} ms, p99 {:>6.2} ms, max {:>6.2} ms",
        lat.len(),
        total.as_secs_f64(),
        items as f64 / total.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let contact = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9042".to_owned());
    let config = CqlConfig {
        contact_points: vec![contact.clone()],
        keyspace: format!("chorus_probe_{:016x}", getrandom::u64()?),
        ..CqlConfig::default()
    };
    let report = migrate(&config).await?;
    println!(
        "keyspace {} on {contact}: migrations {:?} applied",
        report.keyspace, report.applied
    );
    let result = run(&config).await;
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&contact)
        .build()
        .await?;
    session
        .query_unpaged(format!("DROP KEYSPACE {}", config.keyspace), ())
        .await?;
    result
}

async fn run(config: &CqlConfig) -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(CqlStore::connect(config).await?);
    let body = "x".repeat(200);

    // 1. One room, one message per append, each waiting for the previous (a quiet room).
    let room = RoomId::new("probe-seq")?;
    let mut lat = Vec::new();
    let started = Instant::now();
    for seq in 1..=SEQUENTIAL {
        let t = Instant::now();
        store.append(&room, &[message(&room, seq, &body)]).await?;
        lat.push(t.elapsed());
    }
    summary(
        "sequential 1-message appends, 1 room",
        lat,
        started.elapsed(),
        SEQUENTIAL,
        "msg",
    );

    // 2. Many rooms at once, each appending one message at a time.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..ROOMS {
        let store = store.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let room = RoomId::new(&format!("probe-par-{r}")).expect("a valid room");
            let mut lat = Vec::new();
            for seq in 1..=PER_ROOM {
                let t = Instant::now();
                store.append(&room, &[message(&room, seq, &body)]).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, chorus_core::store::StoreError>(lat)
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await??);
    }
    summary(
        &format!("1-message appends, {ROOMS} rooms concurrently"),
        lat,
        started.elapsed(),
        ROOMS * PER_ROOM,
        "msg",
    );

    // 3. A busy room: the router batches queued sends into one append.
    let room = RoomId::new("probe-batch")?;
    let mut lat = Vec::new();
    let started = Instant::now();
    for b in 0..BATCHES {
        let batch: Vec<_> = (1..=BATCH)
            .map(|i| message(&room, b * BATCH + i, &body))
            .collect();
        let t = Instant::now();
        store.append(&room, &batch).await?;
        lat.push(t.elapsed());
    }
    summary(
        &format!("sequential {BATCH}-message appends, 1 room"),
        lat,
        started.elapsed(),
        BATCHES * BATCH,
        "msg",
    );

    // 4. Reads: a history page of the newest 50, and an idempotency lookup.
    let mut lat = Vec::new();
    let started = Instant::now();
    for _ in 0..READS {
        let t = Instant::now();
        let page = store.read(&room, ReadRange::Before(u64::MAX), 50).await?;
        assert_eq!(page.len(), 50);
        lat.push(t.elapsed());
    }
    summary(
        "history reads of 50 (Before(MAX))",
        lat,
        started.elapsed(),
        READS as u64 * 50,
        "msg",
    );
    let probe = UserId::new("probe")?;
    let mut lat = Vec::new();
    let started = Instant::now();
    for i in 0..READS as u64 {
        let t = Instant::now();
        let found = store
            .find_prior_send(&room, &probe, &format!("p-{}", 1 + i * 7))
            .await?;
        assert!(found.is_some());
        lat.push(t.elapsed());
    }
    summary(
        "find_prior_send (record + message check)",
        lat,
        started.elapsed(),
        READS as u64,
        "lookup",
    );
    Ok(())
}
